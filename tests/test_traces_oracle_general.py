"""libCacheSim oracleGeneral traces: 24-byte little-endian records."""

import struct

import numpy as np
import pytest

from trace_support import (
    COMPRESSIONS, block_pages, check_replay, compress, single_line_error, skewed, write)
from vswapfast.traces import TraceError, TraceOptions, detect, read_all


def records(rows):
    """Packed records from (time, obj_id, size, next) rows, as libCacheSim
    writes them (struct oracleGeneral_req: packed, little-endian)."""
    return b"".join(struct.pack("<IQIq", *row) for row in rows)


def trace_rows(objects, sizes=None):
    """Rows with each record's next access time (absolute, -1 for none)."""
    nxt = {}
    out = [None] * len(objects)
    for i in range(len(objects) - 1, -1, -1):
        size = 4096 if sizes is None else sizes[i]
        out[i] = (1000 + i // 10, objects[i], size, nxt.get(objects[i], -1))
        nxt[objects[i]] = i + 1
    return out


@pytest.mark.parametrize("kind", COMPRESSIONS)
def test_keys_are_object_ids(tmp_path, kind):
    objects = [(1 << 60) + 7 * k for k in skewed(3000, 400, seed=1)]
    path = write(tmp_path / "t.oracleGeneral", records(trace_rows(objects)), kind)
    keys, writes, fmt = read_all(path)
    assert fmt == "oracleGeneral"
    assert keys.tolist() == objects
    assert writes is None


def test_replay_counts_match_a_plain_lru(tmp_path):
    objects = skewed(4000, 500, seed=2)
    path = write(tmp_path / "t.zst", records(trace_rows(objects)), "zstd")
    check_replay(path, objects, 50)


def test_split_objects_into_pages(tmp_path):
    objects = [5, 9, 5, 7, 9]
    sizes = [10000, 1, 10000, 0, 4097]
    path = write(tmp_path / "t.bin", records(trace_rows(objects, sizes)))
    keys, _w, _f = read_all(path, "oracleGeneral", TraceOptions(split=True))
    # Objects are numbered in order of first appearance (5 -> 0, 9 -> 1,
    # 7 -> 2); page i of object n is n << 20 | i; size 0 is still a page.
    expect = [0, 1, 2, 1 << 20, 0, 1, 2, 2 << 20, 1 << 20, (1 << 20) + 1]
    assert keys.tolist() == expect
    check_replay(path, expect, 3, "oracleGeneral", TraceOptions(split=True))


def test_block_size_makes_block_requests(tmp_path):
    # Object ids as 512-byte sectors, sizes as request lengths.
    rows = [(0, 7, 512, -1), (0, 8, 8192, -1), (0, 100, 0, -1), (0, 16, 4096, -1)]
    path = write(tmp_path / "t.bin", records(rows))
    keys, _w, _f = read_all(path, options=TraceOptions(block_size=512))
    expect = (block_pages(7 * 512, 512) + block_pages(8 * 512, 8192) + []
              + block_pages(16 * 512, 4096))
    assert keys.tolist() == expect == [0, 1, 2, 2]


def test_detected_from_next_access_times(tmp_path):
    data = records(trace_rows(skewed(500, 50, seed=3)))
    assert detect(data, whole=True) == "oracleGeneral"
    assert detect(data[:-1], whole=True) == "u32be"           # not whole records
    keys = np.arange(1, 3000, dtype=">u4").tobytes()
    assert detect(keys, whole=True) == "u32be"


def test_record_cut_short(tmp_path):
    data = records(trace_rows([1, 2, 3]))[:-5]
    path = write(tmp_path / "cut.bin", data, "zstd")
    with pytest.raises(TraceError) as exc:
        read_all(path, "oracleGeneral")
    assert single_line_error(exc) == (
        "cut.bin: record 3 is cut short: expected 24 bytes, the file ends after 19")


def test_block_number_too_large(tmp_path):
    path = write(tmp_path / "big.bin", records([(0, 1, 512, -1), (0, 1 << 62, 512, -1)]))
    with pytest.raises(TraceError) as exc:
        read_all(path, "oracleGeneral", TraceOptions(block_size=512))
    assert single_line_error(exc).startswith(
        "big.bin: record 2: expected a block number below")


def test_chunks_are_bounded(tmp_path):
    from vswapfast.traces import CHUNK_EVENTS, iter_chunks
    objects = list(range(CHUNK_EVENTS * 2 + 5))
    data = compress(records((0, o, 4096, -1) for o in objects), "zstd")
    (tmp_path / "t.zst").write_bytes(data)
    sizes = [len(c) for c in iter_chunks(tmp_path / "t.zst")]
    assert sum(sizes) == len(objects) and max(sizes) <= CHUNK_EVENTS
