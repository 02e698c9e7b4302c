"""``vswapfast replay`` on the new trace formats, as a user runs it."""

import struct

import pytest

from test_cli import bad, replay_json, vswapfast
from trace_support import compress, lru_counts, skewed, write
from test_traces_msr import msr_lines


def check(report, keys, frames):
    hits, cold, outs, ins = lru_counts(keys, frames)
    assert report["events"] == len(keys)
    assert (report["hits"], report["cold_misses"], report["swap_outs"], report["swap_ins"]) \
        == (hits, cold, outs, ins)
    assert report["verified"] == ins and report["mismatches"] == 0


def test_msr_detected(tmp_path):
    text, keys, _w = msr_lines(1500, seed=5)
    path = write(tmp_path / "hm_0.csv.xz", text.encode(), "xz")
    report = replay_json(path, "--frames", 300)
    assert report["format"] == "msr"
    check(report, keys, 300)


def test_csv_spec_and_events(tmp_path):
    keys = skewed(4000, 300, seed=6)
    text = "when,obj\n" + "".join("%d,%d\n" % (i, k) for i, k in enumerate(keys))
    path = write(tmp_path / "t.csv.gz", text.encode(), "gzip")
    report = replay_json(path, "--csv", "key=obj", "--frames", 30, "--events", 2500)
    assert report["format"] == "csv"
    check(report, keys[:2500], 30)


def test_oracle_general_zst_split_and_block_size(tmp_path):
    rows = [(0, k, 4096 * (1 + k % 3), -1) for k in skewed(3000, 200, seed=7)]
    data = b"".join(struct.pack("<IQIq", *r) for r in rows)
    path = tmp_path / "t.oracleGeneral.zst"
    path.write_bytes(compress(data, "zstd"))
    report = replay_json(path, "--frames", 20)
    assert report["format"] == "oracleGeneral"
    check(report, [r[1] for r in rows], 20)
    split = replay_json(path, "--frames", 20, "--split")
    assert split["events"] == sum(1 + r[1] % 3 for r in rows)
    blocks = replay_json(path, "--frames", 20, "--block-size", 4096, "--format",
                         "oracleGeneral")
    expect = [p for r in rows for p in range(r[1], r[1] + 1 + r[1] % 3)]
    check(blocks, expect, 20)


def test_help_lists_the_formats():
    out = vswapfast("replay", "--help").stdout
    for name in ("oracleGeneral", "msr", "cloudphysics", "csv", "gzip", "zstd", "--csv SPEC",
                 "skip-header"):
        assert name in out


def test_bad_csv_line(tmp_path):
    path = write(tmp_path / "t.csv", b"1,4096,R\n2,4096,Q\n")
    assert bad("replay", path, "--csv", "offset=2,op=3") == (
        "vswapfast: error: t.csv:2: expected R, Read, W or Write in column 3, got 'q'")


@pytest.mark.parametrize("args, message", [
    (["--format", "csv"], "--format csv needs --csv SPEC"),
    (["--csv", "colour=1"], "--csv: unknown field 'colour'"),
    (["--format", "keys", "--block-size", "512"], "--block-size is for oracleGeneral"),
    (["--split", "--block-size", "512"], "not both"),
])
def test_bad_trace_options(tmp_path, args, message):
    path = write(tmp_path / "t.txt", b"1\n2\n")
    assert message in bad("replay", path, *args)


@pytest.mark.parametrize("args", [["--csv", "key=1"], ["--split"], ["--block-size", "512"],
                                  ["--format", "msr"]])
def test_trace_options_need_a_trace(args):
    assert "is for a trace file" in bad("replay", "--events", "100", *args)
