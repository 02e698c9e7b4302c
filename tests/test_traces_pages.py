"""Block requests split into the 4 KiB pages they touch."""

import random

import numpy as np

from trace_support import block_pages
from vswapfast.traces.pages import Ordinals, expand, page_counts


def test_pages_touched_match_a_plain_loop():
    rng = random.Random(1)
    offsets = [rng.choice([0, 1, 4095, 4096, 8191]) + 4096 * rng.randrange(100)
               for _ in range(2000)]
    sizes = [rng.choice([0, 1, 511, 512, 4095, 4096, 4097, 8192, 65536, 1 << 20])
             for _ in range(2000)]
    writes = np.array([rng.random() < 0.5 for _ in range(2000)])
    first, counts = page_counts(np.array(offsets, dtype=np.uint64),
                                np.array(sizes, dtype=np.uint64))
    chunks = list(expand(first, counts, writes, limit=1000))
    expect_keys, expect_writes = [], []
    for o, s, w in zip(offsets, sizes, writes.tolist()):
        pages = block_pages(o, s)
        expect_keys += pages
        expect_writes += [w] * len(pages)
    assert np.concatenate([c.keys for c in chunks]).tolist() == expect_keys
    assert np.concatenate([c.writes for c in chunks]).tolist() == expect_writes
    # Chunks are cut between requests, near the limit: only a single
    # request larger than the limit (1 MiB = 256 pages is not) goes past it.
    assert all(len(c) <= 1000 for c in chunks)


def test_a_request_larger_than_a_chunk_is_a_chunk():
    first, counts = page_counts(np.array([0, 1 << 30], dtype=np.uint64),
                                np.array([4096, 8 << 20], dtype=np.uint64))
    chunks = list(expand(first, counts, limit=100))
    assert [len(c) for c in chunks] == [1, 2048]
    assert chunks[1].keys[0] == (1 << 30) >> 12


def test_ordinals_by_first_appearance():
    o = Ordinals()
    assert o.of(np.array([50, 7, 50, 9], dtype=np.uint64)).tolist() == [0, 1, 0, 2]
    assert o.of(np.array([9, 1], dtype=np.uint64)).tolist() == [2, 3]
    assert len(o) == 4
    names = Ordinals()
    assert names.of([b"sda", b"sdb", b"sda"]).tolist() == [0, 1, 0]
    assert names.of([b"sdc", b"sdb"]).tolist() == [2, 1]


def test_ordinals_over_many_chunks_match_a_dict():
    rng = np.random.default_rng(5)
    o = Ordinals()
    plain = {}
    for size in (1, 10, 1000, 5000, 3, 20000, 7):
        values = rng.integers(0, 30000, size).astype(np.uint64)
        expect = [plain.setdefault(v, len(plain)) for v in values.tolist()]
        assert o.of(values).tolist() == expect
    assert len(o) == len(plain)
