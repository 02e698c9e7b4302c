"""The line formats (keys, rw) and u32be streams, read in chunks."""

import numpy as np
import pytest

from trace_support import COMPRESSIONS, check_replay, single_line_error, skewed, write
from vswapfast.traces import TraceError, read_all


@pytest.mark.parametrize("kind", COMPRESSIONS)
def test_keys(tmp_path, kind):
    keys = skewed(3000, 300, seed=1)
    text = "# keys\n" + "\n".join("%#x # hex" % k if i % 5 == 0 else str(k)
                                  for i, k in enumerate(keys)) + "\n\n"
    path = write(tmp_path / "keys.txt", text.encode(), kind)
    got, writes, fmt = read_all(path)
    assert (got.tolist(), writes, fmt) == (keys, None, "keys")
    check_replay(path, keys, 40)


@pytest.mark.parametrize("kind", COMPRESSIONS)
def test_rw(tmp_path, kind):
    pages = skewed(3000, 300, seed=2)
    text = "".join("%#x %s\n" % ((p << 12) + (i % 4096), "RwWr"[i % 4])
                   for i, p in enumerate(pages))
    path = write(tmp_path / "t.rw", text.encode(), kind)
    got, writes, fmt = read_all(path)
    assert fmt == "rw" and got.tolist() == pages
    assert writes.tolist() == [i % 4 in (1, 2) for i in range(len(pages))]
    check_replay(path, pages, 40)


@pytest.mark.parametrize("kind", COMPRESSIONS)
def test_u32be(tmp_path, kind):
    keys = skewed(5000, 400, seed=3)
    path = write(tmp_path / "t.bin", np.array(keys, dtype=">u4").tobytes(), kind)
    got, writes, fmt = read_all(path)
    assert (got.tolist(), writes, fmt) == (keys, None, "u32be")
    check_replay(path, keys, 40)


def test_lines_across_read_blocks(tmp_path):
    """Lines cut by the 1 MiB read blocks are put back together, and line
    numbers run on across blocks."""
    keys = list(range(300000))
    text = "\n".join(map(str, keys)) + "\nbad\n"
    path = write(tmp_path / "long.txt", text.encode())
    with pytest.raises(TraceError) as exc:
        read_all(path)
    assert single_line_error(exc) == (
        "long.txt:300001: expected one integer key (decimal or 0x hex), got 'bad'")
    # A limit stops the read before the bad line's block is parsed.
    got, _w, _f = read_all(path, limit=1000)
    assert got.tolist() == keys[:1000]


@pytest.mark.parametrize("name, text, fmt, message", [
    ("k.txt", b"1\n2\nthree\n", "keys",
     "k.txt:3: expected one integer key (decimal or 0x hex), got 'three'"),
    ("k.txt", b"1\n-2\n", "keys", "k.txt:2: expected one integer key (decimal or 0x hex), "
                                  "got '-2'"),
    ("t.rw", b"0x1000 R\n0x2000 X\n", "rw",
     "t.rw:2: expected 'ADDRESS R|W' (ADDRESS decimal or 0x hex), got '0x2000 X'"),
    ("t.bin", b"\x00\x01\x02\x03\xff\xfe", "u32be",
     "t.bin: record 2 is cut short: expected 4 bytes, the file ends after 2"),
])
@pytest.mark.parametrize("kind", ["plain", "xz"])
def test_malformed(tmp_path, name, text, fmt, message, kind):
    path = write(tmp_path / name, text, kind)
    with pytest.raises(TraceError) as exc:
        read_all(path, fmt)
    assert single_line_error(exc) == message
