"""``vswapfast memory``: the metadata table of every design, its JSON rows
and plot, the published figures beside the designs they describe, and bad
sizes.  The command runs in a subprocess, as a user runs it; small devices
keep it quick, but for the check of the cover letter's 32 GiB figures."""

import json
import subprocess
import sys

import pytest

from test_cli import PACKAGE_PARENT, command_env, vswapfast
from vswapfast.designs import available_designs
from vswapfast.memory import (COVER_LETTER, COVER_LETTER_SLOTS, DEVICE_STRUCTURES,
                              EXPLAIN_ABOVE, MIB, USAGES,
                              format_table, parse_nr_slots, references)

ROW_KEYS = {"design", "backing", "usage_percent", "bytes", "used_slots", "nr_slots", "structures"}


def memory_json(*args):
    proc = vswapfast("memory", "--json", "-", "--no-progress", *args)
    return json.loads(proc.stdout)


def test_rows_are_well_formed():
    rows = memory_json("--size", "4M")
    designs = available_designs("compiled")
    assert [r["design"] for r in rows[::10]] == list(designs)
    assert len(rows) == len(designs) * 2 * len(USAGES)
    for r in rows:
        assert ROW_KEYS <= set(r)
        assert r["backing"] in ("zswap", "disk")
        assert r["usage_percent"] in USAGES
        assert r["nr_slots"] == 1024
        assert r["used_slots"] == 1023 * r["usage_percent"] // 100
        assert isinstance(r["bytes"], int) and r["bytes"] >= 0
        if r["backing"] == "zswap" and r["design"] in DEVICE_STRUCTURES:
            # a zswap-only virtual swap space needs no physical device
            device = sum(r["structures"][k] for k in DEVICE_STRUCTURES[r["design"]])
            assert r["device_bytes_left_out"] == device > 0
        else:
            assert r["bytes"] > 0 and "device_bytes_left_out" not in r
    for name in designs:
        for backing in ("zswap", "disk"):
            mine = [r["bytes"] for r in rows if r["design"] == name and r["backing"] == backing]
            assert mine == sorted(mine)             # more used, more metadata


def test_table_and_plot(tmp_path):
    png = tmp_path / "memory.png"
    out = tmp_path / "memory.json"
    proc = vswapfast("memory", "--size", "1M", "--design", "rbtree", "--json", out,
                     "--plot", png, "--no-progress")
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("swap metadata of a 1 MiB swap device (256 slots)")
    assert lines[2].startswith("rbtree, zswap") and lines[3].startswith("rbtree, disk")
    assert proc.stdout.rstrip().endswith("plot written to %s" % png)
    assert [r["design"] for r in json.loads(out.read_text())] == ["rbtree"] * 10
    assert png.stat().st_size > 1000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert proc.stderr == ""


def test_plot_without_matplotlib_is_one_line(tmp_path):
    code = ("import sys; sys.modules['matplotlib'] = None; from vswapfast.cli import main; "
            "sys.exit(main(['memory', '--size', '1M', '--plot', %r]))" % str(tmp_path / "m.png"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=command_env(), cwd=PACKAGE_PARENT)
    assert proc.returncode == 2
    assert proc.stderr.startswith("vswapfast: error: --plot needs matplotlib")
    assert len(proc.stderr.splitlines()) == 1


@pytest.mark.parametrize("size, message", [
    ("0", "at least 8 KiB"),
    ("4K", "at least 8 KiB"),
    ("5000", "whole number of 4 KiB pages"),
    ("17T", "at most 16 TiB"),
    ("-1G", "must not be negative"),
    ("lots", "expected a size"),
])
def test_bad_sizes(size, message):
    proc = vswapfast("memory", "--size", size, check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("vswapfast: error:")
    assert message in proc.stderr
    assert len(proc.stderr.splitlines()) == 1


def test_bad_designs():
    proc = vswapfast("memory", "--size", "1M", "--design", "btree", check=False)
    assert proc.returncode == 2 and "--design must be one of" in proc.stderr
    missing = [d for d in ("swap-table", "vswap-table", "vswap")
               if d not in available_designs("compiled")]
    if missing:
        proc = vswapfast("memory", "--size", "1M", "--design", missing[0], check=False)
        assert proc.returncode == 2 and "has no such design yet" in proc.stderr


def test_parse_nr_slots():
    assert parse_nr_slots(32 << 30) == COVER_LETTER_SLOTS
    assert parse_nr_slots(1 << 44) == 1 << 32
    with pytest.raises(ValueError):
        parse_nr_slots((1 << 44) + 4096)


def fake_rows(design, nr_slots, per_slot, static):
    return [{"design": design, "backing": b, "usage_percent": u,
             "bytes": static + per_slot * ((nr_slots - 1) * u // 100),
             "used_slots": (nr_slots - 1) * u // 100, "nr_slots": nr_slots, "structures": {}}
            for b in ("zswap", "disk") for u in USAGES]


def test_references_go_beside_their_designs():
    """The cover letter's figures only beside swap-table-p1 and vswap of a
    32 GiB device; Kairui Song's estimates beside swap-table and
    vswap-table, as static bytes plus bytes per used slot."""
    rows = (fake_rows("swap-table-p1", COVER_LETTER_SLOTS, 16, 25 * MIB)
            + fake_rows("swap-table", 1024, 16, 5000) + fake_rows("rbtree", 1024, 24, 5000))
    refs = references(rows)
    assert refs["swap-table-p1", "zswap", 100] == (153 * MIB, "v6 cover letter (before)")
    assert refs["swap-table-p1", "disk", 25][0] == 41 * MIB
    assert refs["swap-table", "zswap", 100] == (5000 + 16 * 1023, refs["swap-table", "zswap", 0][1])
    assert refs["swap-table", "disk", 50][0] == 5000 + 8 * 511
    assert not any(k[0] == "rbtree" for k in refs)
    assert not references(fake_rows("vswap", 1024, 24, 0))     # not the letter's device
    lines = format_table(rows, COVER_LETTER_SLOTS)
    i = lines.index(next(x for x in lines if x.startswith("swap-table-p1, zswap")))
    assert lines[i + 1].lstrip().startswith("v6 cover letter (before)")
    assert lines[i + 2].lstrip().startswith("difference")


@pytest.fixture(scope="module")
def rows_32g():
    """Every compiled design's rows for the cover letter's 32 GiB device."""
    return memory_json()


@pytest.mark.parametrize("design", sorted(COVER_LETTER))
def test_100_percent_at_32g_against_the_cover_letter(design, rows_32g):
    if design not in available_designs("compiled"):
        pytest.skip("the %s design is not in the compiled core yet" % design)
    rows = [r for r in rows_32g if r["design"] == design and r["usage_percent"] == 100]
    assert len(rows) == 2
    for r in rows:
        letter = COVER_LETTER[design][r["backing"]][-1] * MIB
        assert abs(r["bytes"] - letter) <= 0.10 * letter, (r["backing"], r["bytes"] / MIB)
        assert r["reference"]["bytes"] == int(letter)


def test_every_difference_over_5_percent_is_explained(rows_32g):
    """Where a design's measured bytes are more than 5% off the published
    figure beside them, the row says why, and the reason's figures are
    measured (no reason is given where none is needed)."""
    checked = 0
    for r in rows_32g:
        ref = r.get("reference")
        if ref is None:
            continue
        checked += 1
        off = (abs(r["bytes"] - ref["bytes"]) > EXPLAIN_ABOVE * ref["bytes"] if ref["bytes"]
               else r["bytes"] > 0)
        pair = [x for x in rows_32g if (x["design"], x["backing"]) == (r["design"], r["backing"])]
        any_off = any(abs(x["bytes"] - x["reference"]["bytes"]) > EXPLAIN_ABOVE * x["reference"]["bytes"]
                      if x["reference"]["bytes"] else x["bytes"] > 0 for x in pair)
        if off:
            assert ref.get("why"), (r["design"], r["backing"], r["usage_percent"])
        assert bool(ref.get("why")) == any_off
    assert checked >= 2 * len(USAGES)


def test_help_explains_every_option():
    import argparse
    from vswapfast.cli import build_parser
    out = vswapfast("memory", "--help").stdout
    options = ["--size", "--design", "--core", "--json", "--plot", "--no-progress"]
    for option in options:
        assert option in out
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    actions = sub.choices["memory"]._actions
    assert {o for a in actions for o in a.option_strings if o.startswith("--")} == set(
        options + ["--help"])
    assert "memory" in vswapfast("--help").stdout
