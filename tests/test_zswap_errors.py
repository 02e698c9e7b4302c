"""Bad input to every zswap pool method: the exception, its message, and
that a call that raises changes nothing (stats, descriptors, swap file and
page contents)."""


import numpy as np
import pytest

from cores import NO_LIMIT
from vswapfast.errors import (InvalidEntryError, NoPageError,
                              ZswapDecompressError, VSwapError,
                              bad_entry_message)
from vswapfast.zswap_entry import ZswapEntryView
from vswap_support import BAD_ENTRY_TYPES, Index, Token
from zswap_support import (PAGE_SIZE, ZERO_PAGE, assert_same_pool_snapshot,
                           check_pool_consistency, pool_snapshot, random_page,
                           seeded, text_pages)

PAGE = PAGE_SIZE


def T(i):
    return text_pages()[i]


RAW = random_page(seeded(77))


class Pop:
    """A pool on a small space (clusters of 8, at most 4) in a known state.

    cluster 1 (order 0): 8 text page, 9 zero page, 10 freed, 11 written back
        (in the swap file only), 12 allocated with no page, 13 a foreign
        object; 14, 15 never allocated
    cluster 2 (order 1): 16 text page, 17 raw (incompressible) page
    cluster 3 (order 2): 24..27 a large folio of text pages
    cluster 4: none; entries from 40 on are beyond the map
    """

    def __init__(self, zcore, path):
        self.space = s = zcore.VSwap(cluster_shift=3, max_clusters=4)
        self.sf = zcore.SwapFile(path, 65 * PAGE)
        self.pool = p = zcore.Zswap(s, self.sf, max_pool_bytes=NO_LIMIT)
        assert [s.alloc() for _ in range(6)] == [8, 9, 10, 11, 12, 13]
        s.free(10)
        assert s.alloc(2) == 16
        assert s.alloc(4) == 24
        self.pages = {8: T(0), 9: ZERO_PAGE, 11: T(1), 16: T(2), 17: RAW,
                      24: T(3), 25: T(4), 26: T(5), 27: T(6)}
        assert p.store(11, T(1))
        assert p.shrink(1) == 1                 # 11 is the coldest
        assert s.get_slot(11) != 0
        assert p.store(8, T(0))
        assert p.store(9, ZERO_PAGE)
        self.token = Token("foreign")
        s.zswap_entry_store(13, self.token)
        assert p.store(16, T(2) + RAW)
        assert p.store(24, T(3) + T(4) + T(5) + T(6))
        check_pool_consistency(p)

    def check_contents(self):
        for e, page in self.pages.items():
            assert self.pool.read(e) == page, "page of %#x" % e
        assert self.space.zswap_entry_load(13) is self.token
        check_pool_consistency(self.pool)

    def close(self):
        try:
            self.pool.close()
        except ValueError:
            pass
        self.sf.close()


@pytest.fixture
def zpop(zcore, tmp_path):
    p = Pop(zcore, str(tmp_path / "swapfile"))
    yield p
    p.close()


def assert_fails(zpop, exc_type, fn, match=None):
    """``fn`` raises ``exc_type``; nothing observable changes."""
    before = pool_snapshot(zpop.pool)
    with pytest.raises(exc_type, match=match) as info:
        fn()
    assert_same_pool_snapshot(before, pool_snapshot(zpop.pool))
    zpop.check_contents()
    return info.value


def assert_bad_entry(zpop, fn, entry, why):
    exc = assert_fails(zpop, InvalidEntryError, fn)
    assert type(exc) is InvalidEntryError
    assert isinstance(exc, LookupError) and isinstance(exc, VSwapError)
    assert str(exc) == bad_entry_message(entry, 3, 4, why)


ENTRY_METHODS = {
    "store": lambda p, e: p.store(e, T(10)),
    "store-zero": lambda p, e: p.store(e, ZERO_PAGE),
    "store-large": lambda p, e: p.store(e, T(10) + T(11)),
    "load": lambda p, e: p.load(e),
    "load-out": lambda p, e: p.load(e, bytearray(PAGE)),
    "read": lambda p, e: p.read(e),
    "read-out": lambda p, e: p.read(e, bytearray(PAGE)),
    "invalidate": lambda p, e: p.invalidate(e),
    "invalidate-range": lambda p, e: p.invalidate(e, 2),
}


BAD_ENTRY_VALUES = [
    (0, "zero"),
    (-1, "negative"),
    (-8, "negative"),
    (-2 ** 70, "negative"),
    (1, "free"),            # cluster 0 never exists
    (7, "free"),
    (10, "free"),           # freed
    (14, "free"),           # never allocated, in a live cluster
    (20, "free"),
    (28, "free"),
    (32, "free"),           # cluster 4 does not exist
    (39, "free"),
    (40, "range"),          # cluster 5 > max_clusters
    (2 ** 63, "range"),
    (2 ** 64, "range"),
    (2 ** 200, "range"),
]


# --------------------------------------------------------------------------
# entries


@pytest.mark.parametrize("method", sorted(ENTRY_METHODS))
@pytest.mark.parametrize("bad", BAD_ENTRY_TYPES, ids=lambda v: type(v).__name__)
def test_entry_type(zpop, method, bad):
    fn = ENTRY_METHODS[method]
    exc = assert_fails(zpop, TypeError, lambda: fn(zpop.pool, bad))
    assert str(exc) == "swap entry must be an int, not %s" % type(bad).__name__


@pytest.mark.parametrize("method", sorted(ENTRY_METHODS))
@pytest.mark.parametrize("entry,why", BAD_ENTRY_VALUES,
                         ids=["%s-%s" % (hex(e), w) for e, w in BAD_ENTRY_VALUES])
def test_entry_value(zpop, method, entry, why):
    if method in ("store-large", "invalidate-range") and entry in (7, 39):
        pytest.skip("the range crosses a cluster boundary first")
    fn = ENTRY_METHODS[method]
    assert_bad_entry(zpop, lambda: fn(zpop.pool, entry), entry, why)


@pytest.mark.parametrize("method", sorted(ENTRY_METHODS))
def test_index_entries_are_accepted_and_checked(zpop, method):
    fn = ENTRY_METHODS[method]
    assert_bad_entry(zpop, lambda: fn(zpop.pool, Index(14)), 14, "free")
    assert_bad_entry(zpop, lambda: fn(zpop.pool, np.int64(0)), 0, "zero")


def test_index_entries_work(zpop):
    p = zpop.pool
    assert p.read(Index(8)) == T(0)
    assert p.read(np.uint64(24)) == T(3)
    assert p.store(Index(12), T(20))
    assert p.load(np.int32(12)) == T(20)
    assert p.invalidate(Index(12)) == 0


@pytest.mark.parametrize("entry,pages", [(31, 2), (30, 4), (15, 2), (27, 8),
                                         (12, 8), (39, 2)])
def test_store_range_crosses_a_cluster(zpop, entry, pages):
    exc = assert_fails(zpop, ValueError,
                       lambda: zpop.pool.store(entry, b"".join(T(i) for i in range(pages))))
    assert str(exc) == ("range [%#x, %#x) crosses a cluster boundary (cluster size 8)"
                        % (entry, entry + pages))


@pytest.mark.parametrize("entry,nr", [(31, 2), (30, 4), (15, 2), (27, 8), (12, 8)])
def test_invalidate_range_crosses_a_cluster(zpop, entry, nr):
    exc = assert_fails(zpop, ValueError, lambda: zpop.pool.invalidate(entry, nr))
    assert str(exc) == ("range [%#x, %#x) crosses a cluster boundary (cluster size 8)"
                        % (entry, entry + nr))


@pytest.mark.parametrize("entry,pages,first", [
    (8, 4, 10),      # 8, 9 allocated, 10 freed
    (9, 2, 10),
    (12, 4, 14),     # 12, 13 allocated, 14 not
    (16, 4, 18),
    (26, 4, 28),
    (24, 8, 28),
])
def test_store_range_not_all_allocated(zpop, entry, pages, first):
    fn = lambda: zpop.pool.store(entry, b"".join(T(20 + i) for i in range(pages)))
    assert_bad_entry(zpop, fn, first, "free")


@pytest.mark.parametrize("entry,nr,first", [(8, 4, 10), (12, 4, 14), (16, 4, 18),
                                            (24, 8, 28), (26, 3, 28)])
def test_invalidate_range_not_all_allocated(zpop, entry, nr, first):
    assert_bad_entry(zpop, lambda: zpop.pool.invalidate(entry, nr), first, "free")


@pytest.mark.parametrize("nr", [1.0, True, False, None, "1", [1]],
                         ids=lambda v: type(v).__name__)
def test_invalidate_nr_type(zpop, nr):
    exc = assert_fails(zpop, TypeError, lambda: zpop.pool.invalidate(8, nr))
    assert str(exc) == "nr must be an int, not %s" % type(nr).__name__


@pytest.mark.parametrize("nr", [0, -1, -8])
def test_invalidate_nr_value(zpop, nr):
    exc = assert_fails(zpop, ValueError, lambda: zpop.pool.invalidate(8, nr))
    assert str(exc) == "nr must be at least 1, not %d" % nr


def test_invalidate_type_before_entry(zpop):
    # Types are checked first: a bad nr with a bad entry is a TypeError.
    assert_fails(zpop, TypeError, lambda: zpop.pool.invalidate(0, "1"))
    assert_fails(zpop, TypeError, lambda: zpop.pool.invalidate("8", 0))


# --------------------------------------------------------------------------
# pages


NOT_BUFFERS = ["x" * PAGE, None, PAGE, [0] * PAGE, object(), 1.5, Token()]


@pytest.mark.parametrize("bad", NOT_BUFFERS, ids=lambda v: type(v).__name__)
@pytest.mark.parametrize("entry", [8, 12, 24])
def test_store_not_a_buffer(zpop, bad, entry):
    exc = assert_fails(zpop, TypeError, lambda: zpop.pool.store(entry, bad))
    assert str(exc) == "page must be a buffer, not %s" % type(bad).__name__


@pytest.mark.parametrize("n", [0, 1, 100, PAGE - 1, PAGE + 1, 2 * PAGE - 1,
                               2 * PAGE + 8, 3 * PAGE + 2048])
@pytest.mark.parametrize("entry", [8, 12, 24])
def test_store_wrong_size(zpop, n, entry):
    for page in (bytes(n), bytearray(b"a" * n), np.zeros(n, dtype=np.uint8)):
        exc = assert_fails(zpop, ValueError, lambda: zpop.pool.store(entry, page))
        assert str(exc) == "page must be a positive multiple of 4096 bytes, not %d" % n


def test_store_wrong_size_by_itemsize(zpop):
    page = np.zeros(511, dtype=np.uint64)
    exc = assert_fails(zpop, ValueError, lambda: zpop.pool.store(8, page))
    assert str(exc) == "page must be a positive multiple of 4096 bytes, not %d" % (511 * 8)


NON_CONTIGUOUS = {
    "numpy-strided": lambda: np.frombuffer(T(9) * 2, dtype=np.uint8)[::2],
    "numpy-fortran": lambda: np.asfortranarray(
        np.frombuffer(T(9), dtype=np.uint8).reshape(64, 64)),
    "memoryview-strided": lambda: memoryview(bytearray(T(9) * 2))[::2],
    "numpy-strided-zero": lambda: np.zeros(2 * PAGE, dtype=np.uint8)[::2],
}


@pytest.mark.parametrize("kind", sorted(NON_CONTIGUOUS))
@pytest.mark.parametrize("entry", [8, 12])
def test_store_non_contiguous(zpop, kind, entry):
    page = NON_CONTIGUOUS[kind]()
    assert memoryview(page).nbytes == PAGE
    assert_fails(zpop, (TypeError, ValueError, BufferError),
                 lambda: zpop.pool.store(entry, page))


def readonly_numpy():
    a = np.zeros(PAGE, dtype=np.uint8)
    a.flags.writeable = False
    return a


NOT_WRITABLE = {
    "bytes": lambda: bytes(PAGE),
    "memoryview-bytes": lambda: memoryview(bytes(PAGE)),
    "memoryview-readonly": lambda: memoryview(bytearray(PAGE)).toreadonly(),
    "numpy-readonly": readonly_numpy,
    "str": lambda: "x" * PAGE,
    "list": lambda: [0] * PAGE,
    "int": lambda: 5,
}

# Entries whose page each reader finds, and the reader.
OUT_CASES = [("load", 8), ("load", 9), ("load", 16), ("load", 17), ("load", 25),
             ("read", 8), ("read", 9), ("read", 11), ("read", 17)]


@pytest.mark.parametrize("method,entry", OUT_CASES)
@pytest.mark.parametrize("kind", sorted(NOT_WRITABLE))
def test_out_not_writable(zpop, method, entry, kind):
    out = NOT_WRITABLE[kind]()
    fn = getattr(zpop.pool, method)
    exc = assert_fails(zpop, TypeError, lambda: fn(entry, out))
    assert str(exc) == "out must be a writable buffer, not %s" % type(out).__name__


@pytest.mark.parametrize("method,entry", OUT_CASES)
@pytest.mark.parametrize("n", [0, 1, PAGE - 1, PAGE + 1, 2 * PAGE])
def test_out_wrong_size(zpop, method, entry, n):
    out = bytearray(b"\x5a" * n)
    fn = getattr(zpop.pool, method)
    exc = assert_fails(zpop, ValueError, lambda: fn(entry, out))
    assert str(exc) in ("out must be 4096 bytes, not %d" % n,
                        "page must be 4096 bytes, not %d" % n)
    assert out == b"\x5a" * n


WRITABLE_NON_CONTIGUOUS = {
    "numpy-strided": lambda: np.zeros(2 * PAGE, dtype=np.uint8)[::2],
    "numpy-fortran": lambda: np.zeros((64, 64), dtype=np.uint8, order="F"),
    "memoryview-strided": lambda: memoryview(bytearray(2 * PAGE))[::2],
}


@pytest.mark.parametrize("method,entry", OUT_CASES)
@pytest.mark.parametrize("kind", sorted(WRITABLE_NON_CONTIGUOUS))
def test_out_non_contiguous(zpop, method, entry, kind):
    out = WRITABLE_NON_CONTIGUOUS[kind]()
    assert memoryview(out).nbytes == PAGE
    fn = getattr(zpop.pool, method)
    assert_fails(zpop, (TypeError, ValueError, BufferError), lambda: fn(entry, out))


def test_good_out_still_works(zpop):
    out = np.zeros(PAGE, dtype=np.uint8)
    assert zpop.pool.read(8, out) is out and out.tobytes() == T(0)


# --------------------------------------------------------------------------
# no page


@pytest.mark.parametrize("entry", [12, 13])
def test_read_no_page(zpop, entry):
    exc = assert_fails(zpop, NoPageError, lambda: zpop.pool.read(entry))
    assert isinstance(exc, LookupError) and isinstance(exc, VSwapError)
    out = bytearray(b"\x01" * PAGE)
    assert_fails(zpop, NoPageError, lambda: zpop.pool.read(entry, out))
    assert out == b"\x01" * PAGE


def test_load_no_page_is_not_an_error(zpop):
    before = pool_snapshot(zpop.pool)
    assert zpop.pool.load(12) is None
    assert zpop.pool.load(13) is None      # a foreign object is not the pool's
    assert zpop.pool.load(11) is None      # written back: in the swap file only
    assert_same_pool_snapshot(before, pool_snapshot(zpop.pool))
    zpop.check_contents()


# --------------------------------------------------------------------------
# corrupted pool data


@pytest.mark.parametrize("entry", [8, 16, 24, 27])
@pytest.mark.parametrize("exclusive", [True, False])
def test_corrupt_block_load(zpop, entry, exclusive):
    p = zpop.pool
    p.exclusive_loads = exclusive
    p._corrupt(entry)
    v = zpop.space.zswap_entry_load(entry)
    before = pool_snapshot(p)
    for n in (1, 2):
        with pytest.raises(ZswapDecompressError) as info:
            p.load(entry)
        assert isinstance(info.value, VSwapError)
        assert str(info.value) == "swap entry %#x: compressed data is corrupt" % entry
        after = pool_snapshot(p)
        assert after["stats"]["decompress_fail"] == before["stats"]["decompress_fail"] + n
        after["stats"]["decompress_fail"] = before["stats"]["decompress_fail"]
        after["repr"] = before["repr"]
        assert_same_pool_snapshot(before, after)
    # Still in place: found by the VSwap API, still counted.
    assert zpop.space.zswap_entry_load(entry) == v
    assert p.stats()["stored_pages"] == 7
    # A load into out leaves out alone as far as the contract goes, and
    # raises the same way.
    with pytest.raises(ZswapDecompressError):
        p.load(entry, bytearray(PAGE))
    assert p.stats()["decompress_fail"] == 3
    # Other entries are unaffected.
    for e, page in zpop.pages.items():
        if e != entry:
            assert p.read(e) == page
    # The corrupt entry can still be invalidated (and its memory freed).
    assert p.invalidate(entry) == 1
    assert p.stats()["stored_pages"] == 6
    check_pool_consistency(p)


def test_corrupt_block_read(zpop):
    p = zpop.pool
    p._corrupt(8)
    with pytest.raises(ZswapDecompressError) as info:
        p.read(8)
    assert str(info.value) == "swap entry %#x: compressed data is corrupt" % 8
    assert p.stats()["decompress_fail"] == 1
    assert isinstance(zpop.space.zswap_entry_load(8), ZswapEntryView)


def test_corrupt_block_is_replaced_by_a_store(zpop):
    p = zpop.pool
    p._corrupt(8)
    assert p.store(8, T(30))
    assert p.load(8) == T(30)
    assert p.stats()["decompress_fail"] == 0


# --------------------------------------------------------------------------
# shrink


@pytest.mark.parametrize("nr", ["1", 1.0, None, [1]], ids=lambda v: type(v).__name__)
def test_shrink_nr_type(zpop, nr):
    assert_fails(zpop, TypeError, lambda: zpop.pool.shrink(nr))


def take_free_slots(sf, leave=0):
    return [sf.alloc_slot() for _ in range(sf.stats()["free"] - leave)]


def test_shrink_with_a_full_swap_file(zpop):
    p, sf = zpop.pool, zpop.sf
    taken = take_free_slots(sf)
    assert sf.stats()["free"] == 0
    # The first call gives every referenced entry its second chance, then
    # fails on the coldest one (8), which the walk left rotated to the hot
    # end, and stops: the file is full.
    before = p.stats()
    assert p.shrink(3) == 0
    for e in (8, 16, 17, 24, 25, 26, 27):
        v = zpop.space.zswap_entry_load(e)
        assert v is not None and v.referenced is False
    st = p.stats()
    assert st["reject_reclaim_fail"] == before["reject_reclaim_fail"] + 1
    assert st["written_back_pages"] == before["written_back_pages"]
    # Each later call fails on the next coldest entry, rotating it: nothing
    # is written, nothing is lost.
    assert p.shrink(3) == 0
    assert p.shrink(1) == 0
    assert p.stats()["reject_reclaim_fail"] == before["reject_reclaim_fail"] + 3
    assert p.stats()["lru_length"] == before["lru_length"]
    zpop.check_contents()
    # Cold to hot now: 24, 25, 26, 27, 8, 16, 17; a free slot takes 24.
    sf.free_slot(taken[0])
    assert p.shrink(1) == 1
    assert zpop.space.get_slot(24) == taken[0]
    assert [zpop.space.get_slot(e) for e in (8, 16, 17, 25)] == [0, 0, 0, 0]


def test_shrink_with_a_nearly_full_swap_file(zpop):
    p, sf, s = zpop.pool, zpop.sf, zpop.space
    taken = take_free_slots(sf, leave=2)
    assert p.shrink(5) == 2
    assert sf.stats()["free"] == 0
    # The coldest entries went: 8 (stored before 16, 17, 24..27), then 16.
    written = [e for e in (8, 16, 17, 24, 25, 26, 27) if s.get_slot(e)]
    assert written == [8, 16]
    st = p.stats()
    assert st["written_back_pages"] == 3          # 11 when the state was built
    zpop.check_contents()
    # The entry that found the file full (17) was rotated to the hot end:
    # with a slot free again the next call writes the coldest, 24.
    sf.free_slot(taken[-1])
    assert p.shrink(1) == 1
    assert s.get_slot(24) == taken[-1] and s.get_slot(17) == 0
    zpop.check_contents()


def test_store_limit_path_with_a_full_swap_file(zpop):
    p, sf = zpop.pool, zpop.sf
    take_free_slots(sf)
    p.max_pool_bytes = p.stats()["pool_total_size"]
    before = p.stats()
    assert p.store(12, T(40)) is False
    p.flush_shrink_work()
    st = p.stats()
    assert st["pool_limit_hit"] == before["pool_limit_hit"] + 1
    # Writeback is impossible: the shrink worker did nothing.
    assert st["reject_reclaim_fail"] == before["reject_reclaim_fail"]
    assert st["written_back_pages"] == before["written_back_pages"]
    assert st["stored_pages"] == before["stored_pages"]
    assert zpop.space.zswap_entry_load(12) is None
    zpop.check_contents()


# --------------------------------------------------------------------------
# construction and settings


@pytest.mark.parametrize("bad", [None, object(), 5, "space", Token()],
                         ids=lambda v: type(v).__name__)
def test_constructor_space_type(zcore, bad):
    with pytest.raises(TypeError):
        zcore.Zswap(bad)


def test_constructor_second_pool(zpop, zcore):
    before = pool_snapshot(zpop.pool)
    with pytest.raises(ValueError) as info:
        zcore.Zswap(zpop.space, max_pool_bytes=PAGE)
    assert str(info.value) == "space already has a zswap pool"
    with pytest.raises(ValueError):
        zcore.Zswap(zpop.space, zpop.sf, max_pool_bytes=PAGE)
    assert_same_pool_snapshot(before, pool_snapshot(zpop.pool))
    zpop.check_contents()


@pytest.mark.parametrize("name,bad", [
    ("max_pool_bytes", "1"), ("max_pool_bytes", 1.5j),
    ("accept_threshold_percent", "90"), ("accept_threshold_percent", None),
])
def test_setting_type(zpop, name, bad):
    old = getattr(zpop.pool, name)
    with pytest.raises(TypeError):
        setattr(zpop.pool, name, bad)
    assert getattr(zpop.pool, name) == old
    zpop.check_contents()


CLOSED_CALLS = {
    "store": lambda p: p.store(12, T(0)),
    "load": lambda p: p.load(8),
    "load-out": lambda p: p.load(8, bytearray(PAGE)),
    "read": lambda p: p.read(11),
    "invalidate": lambda p: p.invalidate(8),
    "shrink": lambda p: p.shrink(1),
    "stats": lambda p: p.stats(),
}


@pytest.mark.parametrize("call", sorted(CLOSED_CALLS))
def test_closed_pool(zpop, call):
    zpop.pool.close()
    with pytest.raises(ValueError) as info:
        CLOSED_CALLS[call](zpop.pool)
    assert str(info.value) == "zswap pool is closed"
    s = zpop.space
    # close() dropped the pool's entries; the rest of the space stands.
    for e in (8, 9, 16, 17, 24, 25, 26, 27):
        assert s.zswap_entry_load(e) is None
    assert s.zswap_entry_load(13) is zpop.token
    assert s.get_slot(11) == 0          # the pool's written-back page went with it
    assert sorted(s.entries()) == [8, 9, 11, 12, 13, 16, 17, 24, 25, 26, 27]
