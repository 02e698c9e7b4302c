"""CSV traces with a column mapping (--csv SPEC)."""

import random

import pytest

from trace_support import (
    COMPRESSIONS, block_pages, check_replay, single_line_error, skewed, write)
from vswapfast.traces import CsvSpec, TraceError, TraceOptions, read_all


def requests(n, seed):
    """(volume, offset, size, write) block requests, skewed over offsets."""
    rng = random.Random(seed)
    out = []
    for k in skewed(n, 300, seed):
        size = rng.choice([512, 4096, 4096, 8192, 12288, 65536, 0])
        offset = k * 4096 + rng.choice([0, 0, 512, 3584])
        out.append((rng.choice(["sda", "sdb"]), offset, size, rng.random() < 0.3))
    return out


def plain_pages(reqs):
    """Page keys and writes of ``reqs``, worked out one request at a time:
    volumes numbered by first appearance, in the key's top bits."""
    volumes = {}
    keys, writes = [], []
    for volume, offset, size, w in reqs:
        v = volumes.setdefault(volume, len(volumes))
        for page in block_pages(offset, size):
            keys.append(v << 48 | page)
            writes.append(w)
    return keys, writes


@pytest.mark.parametrize("kind", COMPRESSIONS)
def test_block_requests_by_column_number(tmp_path, kind):
    reqs = requests(2000, seed=1)
    text = "".join("%d,%s,%d,%d,%s\n" % (i, v, o, s, "W" if w else "R")
                   for i, (v, o, s, w) in enumerate(reqs))
    path = write(tmp_path / "t.csv", text.encode(), kind)
    spec = CsvSpec.parse("key=2,offset=3,size=4,op=5")
    keys, writes, fmt = read_all(path, options=TraceOptions(csv=spec))
    expect_keys, expect_writes = plain_pages(reqs)
    assert fmt == "csv"
    assert keys.tolist() == expect_keys
    assert writes.tolist() == expect_writes
    check_replay(path, expect_keys, 60, options=TraceOptions(csv=spec))


def test_columns_by_header_name(tmp_path):
    reqs = requests(500, seed=2)
    text = "Time;Disk;Op;Bytes;Where\n" + "".join(
        "%d;%s;%s;%d;%d\n" % (i, v, "Write" if w else "read", s, o)
        for i, (v, o, s, w) in enumerate(reqs))
    path = write(tmp_path / "t.csv", text.encode())
    spec = CsvSpec.parse("key=disk, offset=Where, size=bytes, op=OP, delimiter=semicolon")
    keys, writes, _f = read_all(path, "csv", TraceOptions(csv=spec))
    assert (keys.tolist(), writes.tolist()) == plain_pages(reqs)


def test_object_keys_with_sizes_and_split(tmp_path):
    path = write(tmp_path / "t.csv", b"id,size\n0x10,100\n7,9000\n16,1\n")
    plain = read_all(path, options=TraceOptions(csv=CsvSpec.parse("key=1,skip-header")))
    assert plain[0].tolist() == [16, 7, 16]
    split = read_all(path, options=TraceOptions(
        csv=CsvSpec.parse("key=1,size=2,skip-header,split")))
    assert split[0].tolist() == [0, 1 << 20, (1 << 20) + 1, (1 << 20) + 2, 0]


def test_offset_in_sectors_and_no_size(tmp_path):
    path = write(tmp_path / "t.csv", b"8\n9\n16\n")
    keys, writes, _f = read_all(path, options=TraceOptions(
        csv=CsvSpec.parse("offset=1,unit=512")))
    assert keys.tolist() == [1, 1, 2] and writes is None


def test_space_delimited_keys_replay(tmp_path):
    keys = skewed(3000, 300, seed=4)
    path = write(tmp_path / "t.txt", "".join("x  %d\n" % k for k in keys).encode(), "gzip")
    options = TraceOptions(csv=CsvSpec.parse("key=2,delimiter=space"))
    check_replay(path, keys, 30, "csv", options)


@pytest.mark.parametrize("spec, message", [
    ("", "--csv: a key or an offset column is needed (e.g. 'key=1' or 'offset=5,size=6')"),
    ("key=0", "--csv: columns are numbered from 1, not key=0"),
    ("key=1,key=2", "--csv: key is given twice"),
    ("offset=1+2", "--csv: only key may join columns, not offset"),
    ("key=1,colour=2", "--csv: unknown field 'colour' (expected key, offset, size, op, "
                       "unit, delimiter or ops)"),
    ("key=1,fast", "--csv: unknown flag 'fast' (expected key=, offset=, size=, op=, unit=, "
                   "delimiter=, ops=, skip-header or split)"),
    ("key=1,delimiter=star", "--csv: delimiter must be one of comma, semicolon, tab, space, "
                             "pipe, not 'star'"),
    ("key=1,unit=512", "--csv: unit is the unit of the offset column, which is not given"),
    ("key=1,split", "--csv: split is for objects with sizes: key= and size=, without offset="),
])
def test_bad_specs(spec, message):
    with pytest.raises(TraceError) as exc:
        CsvSpec.parse(spec)
    assert single_line_error(exc) == message


@pytest.mark.parametrize("text, spec, message", [
    (b"1,2\n3\n", "key=2", "t.csv:2: expected at least 2 comma-separated fields, got 1: '3'"),
    (b"1,2\n3,x4\n", "key=2", "t.csv:2: expected an integer key (decimal or 0x hex) in "
                              "column 2, got 'x4'"),
    (b"h\n\n1,4096,R\n2,-1,W\n", "offset=2,op=3,skip-header",
     "t.csv:4: expected a byte offset below 2**59 in column 2, got '-1'"),
    (b"a,b\n1,2\n", "key=c", "--csv: no column named 'c' in the header (a, b)"),
    (b"off,sz,op\n1,2,R\n3,4,X\n", "offset=off,size=sz,op=op",
     "t.csv:3: expected R, Read, W or Write in column 3 (op), got 'x'"),
    (b"1,99999999999\n", "offset=1,size=2",
     "t.csv:1: expected a size in bytes below 2**32 in column 2, got '99999999999'"),
])
def test_malformed_records(tmp_path, text, spec, message):
    path = write(tmp_path / "t.csv", text, "xz")
    with pytest.raises(TraceError) as exc:
        read_all(path, options=TraceOptions(csv=CsvSpec.parse(spec)))
    assert single_line_error(exc) == message
