"""CloudPhysics VSCSI CSV block traces (--format cloudphysics, detected)."""

import random

import pytest

from trace_support import COMPRESSIONS, block_pages, check_replay, single_line_error, write
from vswapfast.traces import TraceError, read_all

READS = ["28", "08", "88", "a8"]
WRITES = ["2a", "0a", "8a", "aa"]


def vscsi_lines(n, seed, header=True):
    """Lines as in libCacheSim's data/trace.csv (version,time,op,size,lbn),
    and the pages they touch (lbn in 512-byte sectors)."""
    rng = random.Random(seed)
    lines = ["version,time,op,size,lbn"] if header else []
    keys, writes = [], []
    for i in range(n):
        write = rng.random() < 0.5
        op = rng.choice(WRITES if write else READS)
        size = rng.choice([512, 1536, 4096, 8192, 57344])
        lbn = rng.randrange(40000)
        lines.append("1,%d,%s,%d,%d" % (33898 + i // 7, op, size, lbn))
        for page in block_pages(lbn * 512, size):
            keys.append(page)
            writes.append(write)
    return "\n".join(lines) + "\n", keys, writes


@pytest.mark.parametrize("kind", COMPRESSIONS)
@pytest.mark.parametrize("header", [True, False])
def test_cloudphysics_detected_and_split(tmp_path, kind, header):
    text, keys, writes = vscsi_lines(1200, seed=1, header=header)
    path = write(tmp_path / "w01.csv", text.encode(), kind)
    got_keys, got_writes, fmt = read_all(path)
    assert fmt == "cloudphysics"
    assert got_keys.tolist() == keys
    assert got_writes.tolist() == writes


def test_cloudphysics_replay_counts(tmp_path):
    text, keys, _w = vscsi_lines(2500, seed=2)
    path = write(tmp_path / "w02.csv.zst", text.encode(), "zstd")
    check_replay(path, keys, 300, core="compiled")


def test_cloudphysics_unknown_opcode(tmp_path):
    path = write(tmp_path / "w.csv", b"version,time,op,size,lbn\n1,5,2a,512,8\n1,5,35,512,8\n")
    with pytest.raises(TraceError) as exc:
        read_all(path, "cloudphysics")
    assert single_line_error(exc) == (
        "w.csv:3: expected a SCSI read or write opcode in hex (08, 28, a8, 88 or 0a, 2a, aa, "
        "8a) in column 3 (op), got '35'")
