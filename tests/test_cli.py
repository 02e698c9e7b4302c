"""The ``vswapfast`` command line: help, bench, replay and bad input.

The command runs in a subprocess (``python -m vswapfast``), as a user runs
it.  Replay counts are checked against a plain-Python LRU written here,
independent of the package's own simulation.
"""

import json
import lzma
import os
import random
import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest

from trace_support import lru_counts
from vswapfast.replay import Trace, simulate_lru
import vswapfast

# The vswapfast the tests import (installed, or built in a tree on the path):
# the command runs from there, so a source tree without the built extension
# can never shadow it.
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(vswapfast.__file__)))


def command_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = PACKAGE_PARENT + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("VSWAPFAST_PURE", None)
    return env


def vswapfast(*args, check=True):
    """Run the command; returns the CompletedProcess."""
    proc = subprocess.run([sys.executable, "-m", "vswapfast"] + [str(a) for a in args],
                          capture_output=True, text=True, env=command_env(),
                          cwd=PACKAGE_PARENT, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def replay_json(*args):
    proc = vswapfast("replay", "--json", "-", "--no-progress", "--no-floor", *args)
    return json.loads(proc.stdout)


def random_keys(n, distinct, seed):
    """A skewed access pattern: a hot set and a long tail, with phases."""
    rng = random.Random(seed)
    keys = []
    for i in range(n):
        if rng.random() < 0.7:
            base = (i // (n // 4 + 1)) * distinct // 8
            keys.append(1000 + (base + int(rng.paretovariate(1.3)) % (distinct // 4)) % distinct)
        else:
            keys.append(1000 + rng.randrange(distinct))
    return keys


def check_report(report, keys, frames):
    hits, cold, outs, ins = lru_counts(keys, frames)
    assert report["events"] == len(keys)
    assert report["distinct_keys"] == len(set(keys))
    assert report["frames"] == frames
    assert (report["hits"], report["cold_misses"], report["swap_outs"], report["swap_ins"]) == (
        hits, cold, outs, ins)
    assert report["misses"] == cold + ins
    assert report["verified"] == ins
    assert report["mismatches"] == 0
    assert report["zswap_hits"] + report["swapfile_reads"] + report["memory_reads"] == ins
    assert 0 <= report["zero_pages"] <= outs
    return hits, cold, outs, ins


# -- help ------------------------------------------------------------------------

def test_help_lists_the_commands():
    out = vswapfast("--help").stdout
    assert "bench" in out and "replay" in out


@pytest.mark.parametrize("command, options", [
    ("bench", ["--threads", "--json", "--plot", "--quick", "--seed", "--no-progress",
               "--compressor", "--pages"]),
    ("replay", ["--format", "--frames", "--events", "--keys", "--seed", "--pages", "--core",
                "--csv", "--split", "--block-size",
                "--index", "--compressor", "--threads", "--pool-limit", "--swapfile", "--swapfile-size",
                "--no-swapfile", "--no-writeback", "--chunk", "--no-floor", "--json",
                "--no-progress", "--reclaim", "--plot", "--stream", "--no-stream"]),
])
def test_help_explains_every_option(command, options):
    out = vswapfast(command, "--help").stdout
    for option in options:
        assert option in out
    # Every option of the command has help text.
    import argparse
    from vswapfast.cli import build_parser
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    actions = sub.choices[command]._actions
    assert {o for a in actions for o in a.option_strings if o.startswith("--")} == set(
        options + ["--help"])
    for action in actions:
        assert action.help and len(action.help) > 10, action.option_strings


def test_console_script_is_declared():
    tomllib = pytest.importorskip("tomllib")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    assert project["scripts"]["vswapfast"] == "vswapfast.cli:main"


# -- bench -----------------------------------------------------------------------------

def test_bench_quick_writes_json_and_png(tmp_path):
    try:
        import matplotlib
        plot = matplotlib is not None
    except ImportError:
        plot = False
    out_json = tmp_path / "bench.json"
    out_png = tmp_path / "bench.png"
    args = ["bench", "--quick", "--threads", "2", "--json", out_json]
    if plot:
        args += ["--plot", out_png]
    proc = vswapfast(*args)
    assert "zswap entry ops" in proc.stdout
    assert "bench [" in proc.stderr              # the progress bar
    results = json.loads(out_json.read_text())
    assert results["quick"] is True
    # The designs side by side, one kernel operation per page, come first.
    assert proc.stdout.startswith("zswap entry ops per design, one kernel operation per page")
    assert "range operations (no zswap path of the kernel batches like this)" in proc.stdout
    from vswapfast.designs import available_designs
    rows = results["designs"]["designs"]
    assert results["designs"]["config"]["designs"] == list(available_designs("compiled"))
    assert set(rows) == set(available_designs("compiled"))
    for row in rows.values():
        assert len(row["per_page"]["load"]["ns"]) == 2
        assert row["per_page"]["load"]["lock_free"] == (
            row["per_page"]["load"]["locks_per_op"] == [0.0, 0.0])
    for impl in ("compiled", "pure", "dict"):
        for op in ("store", "load", "erase"):
            assert results["entry_ops_ns"][impl][op] > 0
    designs = results["batch_mops"]["compiled"]
    assert set(designs) == {"vswap", "rbtree"}
    for row in designs.values():
        assert len(row["store"]) == len(row["load"]) == 2
        assert all(v > 0 for v in row["store"] + row["load"])
    for impl in ("lz4", "compiled", "pure"):
        assert all(v > 0 for v in results["pages_us"][impl].values())
    meta = results["metadata_bytes_per_entry"]
    # A descriptor is 24 bytes; cluster headers and the map add a little.
    assert 24 <= meta["compiled"]["vswap"]["descriptors"] < 64
    assert meta["pure"]["vswap"]["total"] > 0 and meta["dict"]["total"] > 0
    if plot:
        assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_is_one_line(tmp_path):
    code = ("import sys; sys.modules['matplotlib'] = None; from vswapfast.cli import main; "
            "sys.exit(main(['bench', '--quick', '--plot', %r]))" % str(tmp_path / "b.png"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=command_env(), cwd=PACKAGE_PARENT)
    assert proc.returncode == 2
    assert proc.stderr.startswith("vswapfast: error: --plot needs matplotlib")
    assert len(proc.stderr.splitlines()) == 1


def test_bench_thread_counts():
    from vswapfast.benchjob import thread_counts
    assert thread_counts(1) == [1]
    assert thread_counts(2) == [1, 2]
    assert thread_counts(6) == [1, 2, 3, 4, 6]
    assert thread_counts(20) == [1, 2, 3, 4, 8, 16, 20]


def test_bench_json_to_stdout_is_only_json():
    proc = vswapfast("bench", "--quick", "--threads", "1", "--json", "-", "--no-progress")
    assert json.loads(proc.stdout)["config"]["threads"] == [1]
    assert proc.stderr == ""


# -- replay: formats -----------------------------------------------------------------------

def test_replay_keys_format(tmp_path):
    keys = random_keys(6000, 600, seed=1)
    path = tmp_path / "keys.txt"
    path.write_text("# a comment line\n" + "\n".join(map(str, keys)) + "\n\n")
    report = replay_json(path, "--frames", 60)
    assert report["format"] == "keys"
    check_report(report, keys, 60)


def test_replay_keys_in_hex_with_comments(tmp_path):
    keys = random_keys(3000, 300, seed=2)
    path = tmp_path / "hex.txt"
    path.write_text("\n".join("%#x  # key" % k if i % 3 else str(k)
                              for i, k in enumerate(keys)))
    check_report(replay_json(path, "--frames", 40), keys, 40)


def test_replay_rw_format(tmp_path):
    rng = random.Random(3)
    pages = random_keys(5000, 500, seed=3)
    lines = ["%#x %s" % ((page << 12) + rng.randrange(4096), rng.choice("RWrw"))
             for page in pages]
    path = tmp_path / "trace.rw"
    path.write_text("\n".join(lines) + "\n")
    report = replay_json(path, "--frames", 50)
    assert report["format"] == "rw"
    check_report(report, pages, 50)


def test_replay_u32be_xz(tmp_path):
    keys = random_keys(8000, 700, seed=4)
    path = tmp_path / "trace.xz"
    path.write_bytes(lzma.compress(np.array(keys, dtype=">u4").tobytes()))
    report = replay_json(path, "--frames", 70)
    assert report["format"] == "u32be"
    check_report(report, keys, 70)


def test_replay_u32be_uncompressed_and_xz_text(tmp_path):
    keys = random_keys(4000, 400, seed=5)
    raw = tmp_path / "trace.bin"
    raw.write_bytes(np.array(keys, dtype=">u4").tobytes())
    check_report(replay_json(raw, "--format", "u32be", "--frames", 30), keys, 30)
    text = tmp_path / "keys.txt.xz"
    text.write_bytes(lzma.compress(("\n".join(map(str, keys)) + "\n").encode()))
    check_report(replay_json(text, "--frames", 30), keys, 30)


def test_replay_default_workload():
    from vswapfast.workload import default_trace
    keys = default_trace(20000, 1500, 7).tolist()
    report = replay_json("--events", 20000, "--keys", 1500, "--seed", 7, "--frames", 150)
    assert report["format"] == "generated"
    check_report(report, keys, 150)
    assert report["zero_pages"] > 0
    assert report["compression_ratio"] > 1


def test_replay_default_frames_are_a_tenth_of_the_keys(tmp_path):
    keys = random_keys(3000, 500, seed=6)
    path = tmp_path / "keys.txt"
    path.write_text("\n".join(map(str, keys)))
    report = replay_json(path)
    assert report["frames"] == len(set(keys)) // 10
    check_report(report, keys, len(set(keys)) // 10)


def test_replay_text_report_and_floor(tmp_path):
    keys = random_keys(4000, 400, seed=8)
    path = tmp_path / "keys.txt"
    path.write_text("\n".join(map(str, keys)))
    hits, cold, outs, ins = lru_counts(keys, 40)
    out = vswapfast("replay", path, "--frames", 40, "--no-progress").stdout
    assert "swap-outs    {:,}".format(outs) in out
    assert "swap-ins     {:,}: {:,} zswap hits".format(ins, ins) in out
    assert "all equal to what was swapped out" in out
    assert "LZ4 floor" in out and "vs floor" in out


# -- replay: options ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small_trace(tmp_path_factory):
    keys = random_keys(6000, 800, seed=9)
    path = tmp_path_factory.mktemp("trace") / "keys.txt"
    path.write_text("\n".join(map(str, keys)))
    return path, keys


@pytest.mark.parametrize("options", [
    ["--core", "pure"],
    ["--threads", "3"],
    ["--index", "rbtree", "--threads", "2"],
    ["--index", "rbtree", "--core", "pure"],
    ["--chunk", "7"],
    ["--no-swapfile"],
])
def test_replay_options_keep_the_counts(small_trace, options):
    path, keys = small_trace
    report = replay_json(path, "--frames", 80, *options)
    check_report(report, keys, 80)


@pytest.mark.parametrize("core", ["compiled", "pure"])
def test_replay_pool_limit_writes_back(small_trace, tmp_path, core):
    path, keys = small_trace
    swapfile = tmp_path / "swap"
    report = replay_json(path, "--frames", 80, "--pool-limit", "256K", "--swapfile", swapfile,
                         "--core", core)
    check_report(report, keys, 80)
    assert report["writebacks"] > 0
    assert report["swapfile_reads"] > 0
    assert report["pool_limit_hit"] > 0
    assert report["pool_size_peak"] <= 256 * 1024 + 64 * 1024
    assert swapfile.exists()


def test_replay_without_writeback(small_trace):
    path, keys = small_trace
    report = replay_json(path, "--frames", 80, "--pool-limit", "128K", "--no-writeback")
    check_report(report, keys, 80)
    assert report["writebacks"] == 0
    assert report["rejected"] > 0
    assert report["rejected_to_swapfile"] == report["rejected"]


def test_replay_pages_of_a_file(small_trace, tmp_path):
    path, keys = small_trace
    data = tmp_path / "data.bin"
    data.write_bytes(bytes(8192) + os.urandom(4096) + b"text " * 3000)
    report = replay_json(path, "--frames", 80, "--pages", data)
    check_report(report, keys, 80)
    assert "data.bin" in report["pages"]


# -- the LRU simulation itself -------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(4))
def test_simulate_lru_matches_a_plain_lru(seed):
    rng = random.Random(seed)
    for _ in range(150):
        n = rng.randrange(1, 300)
        distinct = rng.randrange(1, 60)
        frames = rng.randrange(1, 40)
        keys = [rng.randrange(distinct) for _ in range(n)]
        if rng.random() < 0.3:            # keys too wide to pack with the event number
            keys = [(1 << 63) + k * ((1 << 56) + 12345) for k in keys]
        lru = simulate_lru(Trace(np.array(keys, dtype=np.uint64), None, "t", "keys"), frames)
        hits, cold, outs, ins = lru_counts(keys, frames)
        assert (lru.hits, lru.cold_misses, lru.swap_outs, lru.swap_ins) == (hits, cold, outs, ins)
        # Each swap-in brings back a page of its own key.
        assert (lru.victim_keys[lru.in_evict] == np.array(keys, dtype=np.uint64)[
            _miss_positions(keys, frames)]).all()


def _miss_positions(keys, frames):
    """Event numbers of the misses on swapped-out keys (plain LRU)."""
    resident = OrderedDict()
    swapped = set()
    out = []
    for t, key in enumerate(keys):
        if key in resident:
            resident.move_to_end(key)
            continue
        if key in swapped:
            swapped.remove(key)
            out.append(t)
        resident[key] = None
        if len(resident) > frames:
            swapped.add(resident.popitem(last=False)[0])
    return np.array(out, dtype=np.int64)


# -- bad input ------------------------------------------------------------------------------------

def bad(*args):
    proc = vswapfast(*args, check=False)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("vswapfast: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_missing_trace(tmp_path):
    assert "no such file" in bad("replay", tmp_path / "nope.xz")


def test_trace_is_a_directory(tmp_path):
    assert "directory" in bad("replay", tmp_path)


def test_malformed_key_line(tmp_path):
    path = tmp_path / "keys.txt"
    path.write_text("1\n2\nthree\n4\n")
    assert "keys.txt:3" in bad("replay", path)


def test_two_keys_on_a_line(tmp_path):
    path = tmp_path / "keys.txt"
    path.write_text("1\n2\n3\n4 5 6\n")
    assert "keys.txt:4" in bad("replay", path, "--format", "keys")


def test_malformed_rw_line(tmp_path):
    path = tmp_path / "trace.rw"
    path.write_text("0x1000 R\n0x2000 W\n0x3000 X\n")
    assert "trace.rw:3" in bad("replay", path)


def test_negative_key(tmp_path):
    path = tmp_path / "keys.txt"
    path.write_text("1\n-2\n")
    assert "keys.txt:2" in bad("replay", path)


def test_empty_trace(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("\n# nothing\n")
    assert "no events" in bad("replay", path)


def test_truncated_binary_trace(tmp_path):
    path = tmp_path / "trace.bin"
    path.write_bytes(b"\x00\x01\x02\x03\xff\xfe")
    bad("replay", path)


def test_corrupt_xz(tmp_path):
    path = tmp_path / "trace.xz"
    path.write_bytes(lzma.compress(b"\x00\x00\x00\x01" * 100)[:40])
    assert "xz" in bad("replay", path)


@pytest.mark.parametrize("args", [
    ["--frames", "0"],
    ["--frames", "-3"],
    ["--frames", "many"],
    ["--pool-limit", "-5M"],
    ["--pool-limit=-1"],
    ["--pool-limit", "lots"],
    ["--index", "btree"],
    ["--core", "fortran"],
    ["--threads", "0"],
    ["--chunk", "0"],
    ["--format", "csv"],
    ["--swapfile-size", "100"],
    ["--no-swapfile", "--swapfile", "x"],
    ["--pages", "/nonexistent/pages.bin"],
    ["--swapfile", "/nonexistent/dir/swap"],
    ["--json", "/nonexistent/dir/out.json"],
    ["--bogus"],
])
def test_impossible_options(args):
    bad("replay", "--events", "1000", "--keys", "100", *args)


def test_keys_option_needs_the_default_workload(tmp_path):
    path = tmp_path / "keys.txt"
    path.write_text("1\n2\n")
    bad("replay", path, "--keys", "10")


def test_bad_bench_options():
    bad("bench", "--threads", "0")
    bad("bench", "--json", "/nonexistent/dir/out.json")


def test_no_command():
    bad()
    bad("frobnicate")


# -- compressors ------------------------------------------------------------------------------

@pytest.mark.parametrize("compressor, title", [("zstd", "zstd"), ("lzo", "LZO")])
def test_replay_with_a_compressor_reports_its_floor(small_trace, compressor, title):
    path, keys = small_trace
    out = vswapfast("replay", path, "--frames", 80, "--no-progress",
                    "--compressor", compressor).stdout
    assert "compressor %s," % compressor in out
    assert "all equal to what was swapped out" in out
    assert "%s floor" % title in out and "us per page compressed" in out
    report = json.loads(vswapfast("replay", path, "--frames", 80, "--no-progress",
                                  "--no-floor", "--json", "-",
                                  "--compressor", compressor).stdout)
    assert report["compressor"] == compressor
    assert report["mismatches"] == 0 and report["compression_ratio"] > 1


def test_replay_refuses_an_unknown_compressor(small_trace):
    path, _ = small_trace
    proc = vswapfast("replay", path, "--compressor", "deflate", check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("vswapfast: error: argument --compressor: invalid choice")
    assert len(proc.stderr.splitlines()) == 1


def test_bench_compares_the_compressors_asked_for(tmp_path):
    out_json = tmp_path / "bench.json"
    proc = vswapfast("bench", "--quick", "--threads", "1", "--no-progress",
                     "--compressor", "lzo", "--compressor", "zstd", "--json", out_json)
    assert "compressors, us per page" in proc.stdout
    results = json.loads(out_json.read_text())
    assert results["config"]["compressors"] == ["lzo", "zstd"]
    assert list(results["compressors"]) == ["lzo", "zstd"]
    for figures in results["compressors"].values():
        assert figures["library"]["ratio"] > 1
        for impl in ("library", "compiled", "pure"):
            assert all(v > 0 for v in figures[impl].values())


def test_bench_with_a_missing_library_asked_for_is_one_line(tmp_path):
    code = ("import sys, vswapfast.compressors as c\n"
            "c.LIBRARIES['lzo'] = ('LZO', 'libvswapfast-no-such-library.so.7', 'liblzo2-2')\n"
            "from vswapfast.cli import main\n"
            "sys.exit(main(['bench', '--quick', '--threads', '1', '--no-progress', "
            "'--compressor', 'lzo']))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=command_env(), cwd=PACKAGE_PARENT)
    assert proc.returncode == 2
    assert proc.stderr.startswith("vswapfast: error: compressor 'lzo' needs the LZO library")
    assert "liblzo2-2" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1
