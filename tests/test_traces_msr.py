"""MSR Cambridge block traces (--format msr, detected)."""

import random

import pytest

from trace_support import COMPRESSIONS, block_pages, check_replay, single_line_error, write
from vswapfast.traces import TraceError, read_all


def msr_lines(n, seed):
    """MSR Cambridge lines and the pages they touch, worked out plainly."""
    rng = random.Random(seed)
    lines, keys, writes = [], [], []
    volumes = {}
    t = 128166372003061629
    for _ in range(n):
        t += rng.randrange(1, 10000)
        host, disk = rng.choice([("hm", 0), ("hm", 1), ("web", 0)])
        offset = rng.randrange(2000) * 4096 + rng.choice([0, 512, 1024])
        size = rng.choice([512, 4096, 8192, 32768, 65536])
        write = rng.random() < 0.4
        lines.append("%d,%s,%d,%s,%d,%d,%d" % (t, host, disk, "Write" if write else "Read",
                                              offset, size, rng.randrange(100, 5000)))
        v = volumes.setdefault((host, disk), len(volumes))
        for page in block_pages(offset, size):
            keys.append(v << 48 | page)
            writes.append(write)
    return "\n".join(lines) + "\n", keys, writes


@pytest.mark.parametrize("kind", COMPRESSIONS)
def test_msr_detected_and_split(tmp_path, kind):
    text, keys, writes = msr_lines(1500, seed=1)
    path = write(tmp_path / "hm_0.csv", text.encode(), kind)
    got_keys, got_writes, fmt = read_all(path)
    assert fmt == "msr"
    assert got_keys.tolist() == keys
    assert got_writes.tolist() == writes


def test_msr_replay_counts(tmp_path):
    text, keys, _writes = msr_lines(2000, seed=2)
    path = write(tmp_path / "hm_0.csv.gz", text.encode(), "gzip")
    report = check_replay(path, keys, 500, "msr")
    assert report.swap_ins > 0


def test_msr_bad_type(tmp_path):
    text, _k, _w = msr_lines(10, seed=3)
    lines = text.splitlines()
    lines[6] = lines[6].replace("Read", "Trim").replace("Write", "Trim")
    path = write(tmp_path / "hm_0.csv", ("\n".join(lines) + "\n").encode())
    with pytest.raises(TraceError) as exc:
        read_all(path, "msr")
    assert single_line_error(exc) == (
        "hm_0.csv:7: expected R, Read, W or Write in column 4, got 'trim'")


def test_msr_short_line(tmp_path):
    path = write(tmp_path / "m.csv", b"128166372003061629,hm,0,Read,4096,4096,10\n"
                                     b"128166372003061630,hm,0,Read\n")
    with pytest.raises(TraceError) as exc:
        read_all(path, "msr")
    assert single_line_error(exc) == (
        "m.csv:2: expected at least 6 comma-separated fields, got 4: "
        "'128166372003061630,hm,0,Read'")
