"""The zswap pool on valid input (docs/semantics.md, "zswap pool"): store and
load, zero and incompressible pages, exclusive loads, invalidation, the
VSwap API's view of pool entries, limits with hysteresis, writeback with
second chance, reads from wherever a page lives, stats and lifetime."""

import gc
import os
import weakref

import lz4.block
import numpy as np
import pytest

from cores import NO_LIMIT, core_names, load_zswap_core
from vswapfast.errors import NoPageError
from vswapfast.zpool import ZPOOL_CLASSES, size_class
from vswapfast.zswap_entry import ZswapEntryView
from vswap_support import Token
from zswap_support import (LOCK_STAT_KEYS, PAGE_SIZE, POOL_STAT_KEYS, ZERO_PAGE,
                           check_pool_consistency, clear_referenced, store_each,
                           store_retrying,
                           library_pages, random_page, seeded, sized_page,
                           text_pages, zpool_min_size)

PAGE = 4096


def T(i):
    return text_pages()[i]


def L(i):
    return library_pages()[i]


def R(i):
    return random_page(seeded(1000 + i))


def lz4_length(page):
    return len(lz4.block.compress(bytes(page), store_size=False))


def _system_lz4():
    import ctypes
    import ctypes.util
    name = ctypes.util.find_library("lz4")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name)
        fn = lib.LZ4_compress_default
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int]

    def compress_length(page):
        dst = ctypes.create_string_buffer(PAGE + PAGE // 255 + 16)
        return fn(bytes(page), dst, PAGE, len(dst))
    return compress_length


SYSTEM_LZ4_LENGTH = _system_lz4()


def lz4_lengths(page):
    """What LZ4_compress_default gives for ``page``, capped at a page: from
    python-lz4's bundled LZ4 and from the system's liblz4 (builds of the
    same version need not agree byte for byte)."""
    out = {min(lz4_length(page), PAGE)}
    if SYSTEM_LZ4_LENGTH is not None:
        out.add(min(SYSTEM_LZ4_LENGTH(page), PAGE))
    return out


def view(pool, e):
    return pool.space.zswap_entry_load(e)


def add_victim(pool, zspace):
    """Store a page that a later ``clear_bits`` writes back: stored first,
    it is the coldest entry."""
    v = zspace.alloc()
    assert pool.store(v, T(255))
    return v


def clear_bits(pool, zspace, victim):
    """Clear every ``referenced`` bit: ``shrink(1)`` gives each referenced
    entry its second chance (clearing the bit and rotating it, which keeps
    the LRU order), then writes back the coldest, ``victim``."""
    assert pool.shrink(1) == 1
    assert zspace.get_slot(victim) != 0


def stats_delta(before, after):
    return {k: after[k] - before[k] for k in before
            if k not in ("compression_ratio", "max_pool_bytes") and k not in LOCK_STAT_KEYS
            and after[k] != before[k]}


# --------------------------------------------------------------------------
# construction and settings


def test_page_size(zcore):
    assert zcore.PAGE_SIZE == PAGE == PAGE_SIZE


def test_bind_with_swapfile(make_pool, zspace, swapfile):
    p = make_pool(zspace, swapfile, max_pool_bytes=12345 * PAGE)
    assert p.space is zspace
    assert p.swapfile is swapfile
    assert p.max_pool_bytes == 12345 * PAGE
    assert p.accept_threshold_percent == 90.0
    assert p.writeback is True
    assert p.exclusive_loads is True
    assert p.writeback_enabled is True
    assert len(p) == 0


def test_bind_without_swapfile(zcore, zspace):
    p = zcore.Zswap(zspace, max_pool_bytes=PAGE)
    assert p.swapfile is None
    assert p.writeback is True
    assert p.writeback_enabled is False


def test_bind_with_swapfile_none_positional(zcore, zspace):
    p = zcore.Zswap(zspace, None, max_pool_bytes=PAGE)
    assert p.swapfile is None and p.writeback_enabled is False


def test_writeback_setting(make_pool, zspace, swapfile):
    p = make_pool(zspace, swapfile, writeback=False, max_pool_bytes=PAGE)
    assert p.writeback is False
    assert p.writeback_enabled is False
    p.writeback = True
    assert p.writeback is True and p.writeback_enabled is True
    p.writeback = False
    assert p.writeback_enabled is False


def test_settings_are_writable(pool):
    pool.max_pool_bytes = 5 * PAGE
    assert pool.max_pool_bytes == 5 * PAGE
    assert pool.stats()["max_pool_bytes"] == 5 * PAGE
    pool.accept_threshold_percent = 50.0
    assert pool.accept_threshold_percent == 50.0
    pool.exclusive_loads = False
    assert pool.exclusive_loads is False
    pool.exclusive_loads = True
    assert pool.exclusive_loads is True


def test_read_only_properties(pool):
    for name in ("space", "swapfile", "writeback_enabled"):
        with pytest.raises(AttributeError):
            setattr(pool, name, None)


@pytest.mark.parametrize("memory,percent,expected", [
    (10 ** 9, 10.0, 10 ** 8),
    (10 ** 9, 20.0, 2 * 10 ** 8),
    (1 << 30, 50.0, 1 << 29),
    (1 << 34, 100.0, 1 << 34),
    (1 << 20, 25.0, 1 << 18),
])
def test_max_pool_bytes_from_memory(zcore, zspace, memory, percent, expected):
    p = zcore.Zswap(zspace, memory_bytes=memory, max_pool_percent=percent)
    assert p.max_pool_bytes == expected
    assert p.stats()["max_pool_bytes"] == expected


def test_max_pool_percent_defaults_to_20(zcore, zspace):
    p = zcore.Zswap(zspace, memory_bytes=10 ** 10)
    assert p.max_pool_bytes == 2 * 10 ** 9


def test_memory_defaults_to_physical_memory(zcore, zspace):
    phys = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    p = zcore.Zswap(zspace)
    assert abs(p.max_pool_bytes - phys * 0.2) <= phys * 0.2 * 0.01 + PAGE


def test_explicit_max_pool_bytes_wins(zcore, zspace):
    p = zcore.Zswap(zspace, max_pool_bytes=777 * PAGE, memory_bytes=10 ** 9,
                    max_pool_percent=50.0)
    assert p.max_pool_bytes == 777 * PAGE


def test_one_pool_per_space(zcore, zspace, pool):
    with pytest.raises(ValueError) as info:
        zcore.Zswap(zspace)
    assert str(info.value) == "space already has a zswap pool"
    # The first pool is unaffected.
    e = zspace.alloc()
    assert pool.store(e, T(0)) is True
    assert pool.load(e) == T(0)


def test_new_pool_after_close(zcore, zspace, pool):
    e = zspace.alloc()
    pool.store(e, T(0))
    pool.close()
    p2 = zcore.Zswap(zspace, max_pool_bytes=NO_LIMIT)
    assert p2.store(e, T(1)) is True
    assert p2.load(e) == T(1)


def test_pools_of_two_spaces_are_independent(zcore, tmp_path):
    s1, s2 = zcore.VSwap(), zcore.VSwap()
    p1 = zcore.Zswap(s1, max_pool_bytes=NO_LIMIT)
    p2 = zcore.Zswap(s2, max_pool_bytes=NO_LIMIT)
    e1, e2 = s1.alloc(), s2.alloc()
    assert e1 == e2
    p1.store(e1, T(0))
    p2.store(e2, T(1))
    assert p1.stats()["stored_pages"] == 1 and p2.stats()["stored_pages"] == 1
    assert p1.load(e1) == T(0)
    assert p2.load(e2) == T(1)


CORE_PAIRS = [(a, b) for a in core_names() for b in core_names() if a != b]


@pytest.mark.parametrize("mine,other", CORE_PAIRS)
def test_space_of_another_core(mine, other, tmp_path):
    a, b = load_zswap_core(mine), load_zswap_core(other)
    foreign = b.VSwap()
    with pytest.raises(TypeError):
        a.Zswap(foreign)
    # The foreign space got no pool: its own core can still bind one.
    b.Zswap(foreign, max_pool_bytes=PAGE)


@pytest.mark.parametrize("mine,other", CORE_PAIRS)
def test_swapfile_of_another_core(mine, other, tmp_path):
    a, b = load_zswap_core(mine), load_zswap_core(other)
    space = a.VSwap()
    with b.SwapFile(str(tmp_path / "s"), 3 * PAGE) as sf:
        with pytest.raises(TypeError):
            a.Zswap(space, sf)
    # Nothing was bound.
    a.Zswap(space, max_pool_bytes=PAGE)


@pytest.mark.parametrize("bad", [None, object(), 5, "space", Token()],
                         ids=lambda v: type(v).__name__)
def test_not_a_space(zcore, bad):
    with pytest.raises(TypeError):
        zcore.Zswap(bad)


@pytest.mark.parametrize("bad", [object(), "swapfile", 5, Token()],
                         ids=lambda v: type(v).__name__)
def test_not_a_swapfile(zcore, zspace, bad):
    with pytest.raises(TypeError):
        zcore.Zswap(zspace, bad)
    zcore.Zswap(zspace, max_pool_bytes=PAGE)


def test_initial_stats(pool):
    st = pool.stats()
    assert set(st) == POOL_STAT_KEYS
    for k in POOL_STAT_KEYS - {"max_pool_bytes", "compression_ratio"} - LOCK_STAT_KEYS:
        assert st[k] == 0, k
    assert st["compression_ratio"] == 0.0
    assert st["max_pool_bytes"] == NO_LIMIT
    assert len(pool) == 0


def test_repr(zcore, pool, zspace):
    assert repr(pool) == ("<Zswap core=%s stored_pages=0 zero_pages=0 "
                          "pool_total_size=0 written_back_pages=0>" % zcore.name)
    e = zspace.alloc(4)
    pool.store(e, T(0) + T(1) + T(2))
    pool.store(e + 3, ZERO_PAGE)
    assert pool.shrink(1) == 1
    size = pool.stats()["pool_total_size"]
    assert size > 0
    assert repr(pool) == ("<Zswap core=%s stored_pages=2 zero_pages=1 "
                          "pool_total_size=%d written_back_pages=1>" % (zcore.name, size))


# --------------------------------------------------------------------------
# store and load


def page_kinds(p):
    return {
        "bytes": lambda: p,
        "bytearray": lambda: bytearray(p),
        "memoryview": lambda: memoryview(p),
        "memoryview-cast-Q": lambda: memoryview(bytearray(p)).cast("Q"),
        "memoryview-slice": lambda: memoryview(b"\xee" * 33 + p + b"\x11")[33:33 + len(p)],
        "numpy-uint8": lambda: np.frombuffer(p, dtype=np.uint8).copy(),
        "numpy-uint64": lambda: np.frombuffer(p, dtype=np.uint64).copy(),
        "numpy-2d": lambda: np.frombuffer(p, dtype=np.uint8).reshape(-1, 64).copy(),
        "numpy-readonly": lambda: np.frombuffer(p, dtype=np.uint16),
    }


@pytest.mark.parametrize("kind", sorted(page_kinds(b"")))
@pytest.mark.parametrize("content", ["text", "library", "zero", "random"])
def test_round_trip_buffer_kinds(pool, zspace, kind, content):
    p = {"text": T(7), "library": L(7), "zero": ZERO_PAGE, "random": R(7)}[content]
    e = zspace.alloc()
    assert pool.store(e, page_kinds(p)[kind]()) is True
    check_pool_consistency(pool)
    got = pool.load(e)
    assert type(got) is bytes
    assert got == p
    assert view(pool, e) is None
    check_pool_consistency(pool)


def out_kinds():
    return {
        "bytearray": lambda: bytearray(PAGE),
        "memoryview": lambda: memoryview(bytearray(PAGE)),
        "memoryview-cast-Q": lambda: memoryview(bytearray(PAGE)).cast("Q"),
        "numpy-uint8": lambda: np.zeros(PAGE, dtype=np.uint8),
        "numpy-uint64": lambda: np.zeros(PAGE // 8, dtype=np.uint64),
        "numpy-2d": lambda: np.zeros((64, 64), dtype=np.uint8),
    }


@pytest.mark.parametrize("kind", sorted(out_kinds()))
@pytest.mark.parametrize("content", ["text", "zero", "random"])
def test_load_into_out(pool, zspace, kind, content):
    p = {"text": T(8), "zero": ZERO_PAGE, "random": R(8)}[content]
    e = zspace.alloc()
    pool.store(e, p)
    out = out_kinds()[kind]()
    memoryview(out).cast("B")[:] = b"\x77" * PAGE   # zero pages must overwrite
    assert pool.load(e, out) is out
    assert memoryview(out).tobytes() == p
    assert view(pool, e) is None


def test_load_out_keyword(pool, zspace):
    e = zspace.alloc()
    pool.store(e, T(1))
    out = bytearray(PAGE)
    assert pool.load(e, out=out) is out
    assert out == T(1)


def test_load_out_of_an_empty_entry_is_none(pool, zspace):
    e = zspace.alloc()
    out = bytearray(b"\x01" * PAGE)
    assert pool.load(e, out) is None
    assert out == b"\x01" * PAGE


def test_view_after_store(pool, zspace):
    e = zspace.alloc()
    assert pool.store(e, T(2))
    v = view(pool, e)
    assert isinstance(v, ZswapEntryView)
    assert v == (e, v.length, True, False, False)
    assert v.swpentry == e
    assert 0 < v.length < PAGE
    assert v.referenced is True
    assert v.zero is False
    assert v.incompressible is False


@pytest.mark.parametrize("i", range(0, 40, 3))
def test_length_is_lz4_block_length(pool, zspace, i):
    # LZ4_compress_default, the plain block format: the same length as
    # python-lz4's block compressor gives.
    for p in (T(i), L(i)):
        e = zspace.alloc()
        assert pool.store(e, p)
        assert view(pool, e).length in lz4_lengths(p)


def test_stats_after_stores(pool, zspace):
    pages = [T(i) for i in range(20)] + [L(i) for i in range(20)]
    entries = []
    for p in pages:
        e = zspace.alloc()
        assert pool.store(e, p)
        entries.append(e)
    views = check_pool_consistency(pool)
    st = pool.stats()
    lengths = [views[e].length for e in entries]
    assert st["stored_pages"] == 40
    assert st["compressed_bytes"] == sum(lengths)
    # Fresh stores pack each size class's zspages.
    assert st["pool_total_size"] == zpool_min_size(lengths)
    assert st["compression_ratio"] == pytest.approx(40 * PAGE / st["pool_total_size"])
    assert zspace.stats()["zswap_entries"] == 40


def test_pool_size_of_one_object_per_class(pool, zspace):
    rng = seeded(3)
    for k in (10, 200, 900, 1500, 2100, 3000, 3900):
        e = zspace.alloc()
        pool.store(e, sized_page(rng, k))
        length = view(pool, e).length
        _, pages, _ = ZPOOL_CLASSES[size_class(length)]
        before = pool.stats()["pool_total_size"]
        assert pool.invalidate(e) == 1
        after = pool.stats()["pool_total_size"]
        assert before - after == pages * PAGE
        assert after == 0


def test_large_folio(pool, zspace):
    for nr in (2, 4, 8, 16, 512):
        e = zspace.alloc(nr)
        pages = [T((e + i) % 256) if i % 3 else L((e + i) % 256) for i in range(nr)]
        before = pool.stats()["stored_pages"]
        assert pool.store(e, b"".join(pages)) is True
        assert pool.stats()["stored_pages"] == before + nr
        for i in range(nr):
            v = view(pool, e + i)
            assert isinstance(v, ZswapEntryView) and v.swpentry == e + i
        check_pool_consistency(pool)
        # Pages load one at a time, in any order.
        for i in reversed(range(nr)):
            assert pool.load(e + i) == pages[i]
        assert pool.stats()["stored_pages"] == before
    assert pool.stats()["pool_total_size"] == 0


def test_large_folio_as_numpy(pool, zspace):
    e = zspace.alloc(4)
    data = b"".join(T(i) for i in range(4))
    arr = np.frombuffer(data, dtype=np.uint64).reshape(4, 512).copy()
    assert pool.store(e, arr)
    for i in range(4):
        assert pool.read(e + i) == T(i)


def test_large_folio_at_part_of_an_allocation(pool, zspace):
    # The range must be allocated and in one cluster; it need not be a
    # whole allocation.
    e = zspace.alloc(8)
    assert pool.store(e + 2, T(0) + T(1) + T(2))
    assert [view(pool, e + i) is not None for i in range(8)] == \
        [False, False, True, True, True, False, False, False]
    assert pool.read(e + 3) == T(1)


def test_large_folio_across_allocations(pool, zspace):
    a, b = zspace.alloc(), zspace.alloc()
    assert b == a + 1
    assert pool.store(a, T(0) + T(1))
    assert pool.load(b) == T(1)
    assert pool.load(a) == T(0)


def test_large_folio_all_zero_takes_the_zero_backing(pool, zspace):
    # swap_writeout(): is_folio_zero_filled() before zswap is asked.
    e = zspace.alloc(8)
    assert pool.store(e, ZERO_PAGE * 8)
    st = pool.stats()
    assert st["zero_pages"] == 8 and st["swpout_zero"] == 8
    assert st["stored_pages"] == 0 and st["zswpout"] == 0
    for i in range(8):
        assert view(pool, e + i).zero
        assert pool.load(e + i) == ZERO_PAGE


def test_large_folio_mixed_zero_and_data(pool, zspace):
    # A folio that is not all zero goes to zswap whole: zswap_store_page()
    # compresses its zero pages like any other.
    e = zspace.alloc(8)
    pages = [ZERO_PAGE if i % 2 else T(i) for i in range(8)]
    assert pool.store(e, b"".join(pages))
    st = pool.stats()
    assert st["zero_pages"] == 0 and st["stored_pages"] == 8
    assert st["swpout_zero"] == 0 and st["zswpout"] == 8
    assert len(pool) == 8
    for i in range(8):
        assert not view(pool, e + i).zero
    for i in range(8):
        assert pool.load(e + i) == pages[i]
    assert len(pool) == 0


def test_store_replaces_and_frees_the_stale_entry(pool, zspace):
    e = zspace.alloc()
    assert pool.store(e, T(0))
    first = view(pool, e)
    assert pool.store(e, L(1))
    st = pool.stats()
    assert st["stored_pages"] == 1
    assert st["compressed_bytes"] == view(pool, e).length
    assert st["lru_length"] == 1
    assert view(pool, e).length in lz4_lengths(L(1))
    check_pool_consistency(pool)
    assert pool.load(e) == L(1)
    assert pool.stats()["pool_total_size"] == 0


def test_store_replaces_a_zero_entry_and_vice_versa(pool, zspace):
    e = zspace.alloc()
    pool.store(e, ZERO_PAGE)
    assert pool.stats()["zero_pages"] == 1
    pool.store(e, T(3))
    st = pool.stats()
    assert (st["zero_pages"], st["stored_pages"]) == (0, 1)
    pool.store(e, ZERO_PAGE)
    st = pool.stats()
    assert (st["zero_pages"], st["stored_pages"], st["pool_total_size"]) == (1, 0, 0)
    assert pool.load(e) == ZERO_PAGE


def test_store_replaces_a_foreign_object(pool, zspace):
    e = zspace.alloc()
    t = Token("foreign")
    ref = weakref.ref(t)
    zspace.zswap_entry_store(e, t)
    del t
    assert pool.store(e, T(4))
    gc.collect()
    assert ref() is None
    assert isinstance(view(pool, e), ZswapEntryView)
    assert pool.stats()["stored_pages"] == 1


def test_store_keeps_the_folio_and_slot(pool, zspace):
    folio = Token("folio")
    e = zspace.alloc(folio=folio)
    pool.store(e, T(5))
    assert zspace.swap_cache_get_folio(e) is folio
    assert zspace.get_slot(e) == 0


# --------------------------------------------------------------------------
# zero-filled pages


@pytest.mark.parametrize("make", [
    lambda: ZERO_PAGE, lambda: bytearray(PAGE), lambda: np.zeros(512, dtype=np.uint64),
    lambda: memoryview(bytearray(PAGE)),
], ids=["bytes", "bytearray", "numpy", "memoryview"])
def test_zero_page(pool, zspace, make):
    e = zspace.alloc()
    assert pool.store(e, make()) is True
    v = view(pool, e)
    assert isinstance(v, ZswapEntryView)
    assert v.zero is True and v.length == 0 and v.incompressible is False
    assert v.swpentry == e
    st = pool.stats()
    assert st["zero_pages"] == 1
    assert st["stored_pages"] == 0
    assert st["pool_total_size"] == 0
    assert st["lru_length"] == 0
    assert st["compressed_bytes"] == 0
    assert st["compression_ratio"] == 0.0
    assert len(pool) == 1
    assert zspace.stats()["zswap_entries"] == 1
    assert not zspace.zswap_empty()
    assert pool.read(e) == ZERO_PAGE
    assert pool.load(e) == ZERO_PAGE
    assert pool.stats()["zero_pages"] == 0
    assert view(pool, e) is None
    assert zspace.zswap_empty()


def test_almost_zero_pages_are_not_zero(pool, zspace):
    for pos in (0, 1, 2047, 4095):
        p = bytearray(PAGE)
        p[pos] = 1
        e = zspace.alloc()
        pool.store(e, p)
        assert view(pool, e).zero is False
        assert pool.load(e) == p
    assert pool.stats()["zero_pages"] == 0


def test_same_filled_nonzero_page_is_compressed(pool, zspace):
    e = zspace.alloc()
    pool.store(e, b"\xff" * PAGE)
    v = view(pool, e)
    assert not v.zero and 0 < v.length < 100
    assert pool.stats()["stored_pages"] == 1
    assert pool.load(e) == b"\xff" * PAGE


def test_many_zero_pages_use_no_pool_memory(pool, zspace):
    e = zspace.alloc(512)
    assert pool.store(e, bytes(512 * PAGE))
    st = pool.stats()
    assert st["zero_pages"] == 512 and st["pool_total_size"] == 0
    assert pool.shrink(1000) == 0       # not on the LRU
    assert pool.invalidate(e, 512) == 512
    assert pool.stats()["zero_pages"] == 0


# --------------------------------------------------------------------------
# incompressible pages


def test_incompressible_stored_raw_with_writeback(pool, zspace):
    e = zspace.alloc()
    assert pool.writeback_enabled
    assert pool.store(e, R(0)) is True
    v = view(pool, e)
    assert v.incompressible is True and v.length == PAGE and not v.zero
    st = pool.stats()
    assert st["stored_incompressible_pages"] == 1
    assert st["stored_pages"] == 1
    assert st["pool_total_size"] == PAGE
    assert st["compressed_bytes"] == PAGE
    assert st["reject_compress_poor"] == 0
    check_pool_consistency(pool)
    assert pool.read(e) == R(0)
    assert pool.load(e) == R(0)
    st = pool.stats()
    assert st["stored_incompressible_pages"] == 0 and st["pool_total_size"] == 0


def test_incompressible_boundary(pool, zspace):
    # Output not smaller than a page is incompressible; smaller is kept.
    rng = seeded(11)
    for k in range(4040, 4080, 2):
        p = sized_page(rng, k)
        e = zspace.alloc()
        assert pool.store(e, p)
        v = view(pool, e)
        assert v.length in lz4_lengths(p)
        assert v.incompressible == (v.length == PAGE)
        assert pool.load(e) == p


def test_incompressible_rejected_without_swapfile(bare_pool, zspace):
    pool = bare_pool
    e = zspace.alloc()
    before = pool.stats()
    assert pool.store(e, R(1)) is False
    # zswap_compress(): an output that does not fit is -EINVAL, which
    # counts reject_compress_fail, not reject_compress_poor.
    assert stats_delta(before, pool.stats()) == {"reject_compress_fail": 1}
    assert view(pool, e) is None
    assert pool.load(e) is None
    with pytest.raises(NoPageError):
        pool.read(e)


def test_incompressible_stored_raw_with_writeback_on_and_no_swapfile(make_pool, zspace):
    # zswap_compress() asks the memcg's writeback setting only: with vswap a
    # page can be swapped out with no swap device at all.
    pool = make_pool(zspace, max_pool_bytes=NO_LIMIT)
    e = zspace.alloc()
    assert pool.store(e, R(5)) is True
    assert view(pool, e).incompressible
    assert pool.stats()["stored_incompressible_pages"] == 1
    assert pool.writeback_enabled is False
    assert pool.shrink(1) == 0
    assert pool.load(e) == R(5)


def test_incompressible_rejected_with_writeback_disabled(make_pool, zspace, swapfile):
    pool = make_pool(zspace, swapfile, writeback=False, max_pool_bytes=NO_LIMIT)
    e = zspace.alloc()
    assert pool.store(e, R(2)) is False
    st = pool.stats()
    assert st["reject_compress_fail"] == 1 and st["stored_pages"] == 0
    assert st["reject_compress_poor"] == 0
    assert view(pool, e) is None
    pool.writeback = True
    assert pool.store(e, R(2)) is True
    assert pool.stats()["stored_incompressible_pages"] == 1


def test_rejected_store_drops_the_whole_range(bare_pool, zspace):
    pool = bare_pool
    e = zspace.alloc(4)
    t = Token("old")
    ref = weakref.ref(t)
    assert pool.store(e, T(0) + T(1) + T(2) + ZERO_PAGE)   # stale entries
    zspace.zswap_entry_store(e + 2, t)
    del t
    before = pool.stats()
    assert pool.store(e, T(10) + ZERO_PAGE + R(3) + T(11)) is False
    for i in range(4):
        assert view(pool, e + i) is None
    st = pool.stats()
    assert st["reject_compress_fail"] == before["reject_compress_fail"] + 1
    assert st["stored_pages"] == 0 and st["zero_pages"] == 0
    assert st["pool_total_size"] == 0 and st["lru_length"] == 0
    gc.collect()
    assert ref() is None
    assert zspace.zswap_empty()
    check_pool_consistency(pool)


def test_rejected_store_leaves_other_entries(bare_pool, zspace):
    pool = bare_pool
    e = zspace.alloc(4)
    other = zspace.alloc()
    pool.store(other, T(9))
    assert pool.store(e + 1, T(0) + R(4)) is False
    assert view(pool, e) is None
    assert pool.read(other) == T(9)


# --------------------------------------------------------------------------
# exclusive and non-exclusive loads


def test_exclusive_load(pool, zspace):
    e = zspace.alloc()
    pool.store(e, T(6))
    assert pool.load(e) == T(6)
    assert view(pool, e) is None
    assert pool.load(e) is None
    st = pool.stats()
    assert st["stored_pages"] == 0 and st["pool_total_size"] == 0 and st["lru_length"] == 0
    assert len(pool) == 0
    assert e in zspace                 # the swap entry itself stays allocated
    with pytest.raises(NoPageError):
        pool.read(e)


def test_non_exclusive_load(make_pool, zspace, swapfile):
    pool = make_pool(zspace, swapfile, exclusive_loads=False, max_pool_bytes=NO_LIMIT)
    victim = add_victim(pool, zspace)
    e = zspace.alloc()
    pool.store(e, T(6))
    clear_bits(pool, zspace, victim)
    assert view(pool, e).referenced is False
    assert pool.load(e) == T(6)
    v = view(pool, e)
    assert v is not None and v.referenced is True
    assert pool.load(e) == T(6)
    assert pool.stats()["stored_pages"] == 1
    pool.exclusive_loads = True
    assert pool.load(e) == T(6)
    assert pool.load(e) is None


def test_non_exclusive_zero_load(zcore, zspace):
    pool = zcore.Zswap(zspace, exclusive_loads=False, max_pool_bytes=NO_LIMIT)
    e = zspace.alloc()
    pool.store(e, ZERO_PAGE)
    assert pool.load(e) == ZERO_PAGE
    assert pool.load(e) == ZERO_PAGE
    assert pool.stats()["zero_pages"] == 1


def test_load_ignores_a_foreign_object(pool, zspace):
    e = zspace.alloc()
    t = Token("foreign")
    zspace.zswap_entry_store(e, t)
    assert pool.load(e) is None
    assert zspace.zswap_entry_load(e) is t
    with pytest.raises(NoPageError):
        pool.read(e)


def test_load_does_not_use_the_slot(pool, zspace):
    # load() is the pool's: a written-back page is not a pool entry.
    e = zspace.alloc()
    pool.store(e, T(0))
    assert pool.shrink(1) == 1
    assert pool.load(e) is None
    assert pool.read(e) == T(0)


# --------------------------------------------------------------------------
# invalidate


def test_invalidate(pool, zspace):
    e = zspace.alloc(8)
    store_each(pool, e, [T(0), ZERO_PAGE, T(1), T(2), ZERO_PAGE, T(3), T(4), T(5)])
    zspace.zswap_entry_erase(e + 7)
    t = Token()
    zspace.zswap_entry_store(e + 6, t)     # a foreign object counts too
    assert pool.invalidate(e, 1) == 1
    assert pool.invalidate(e, 1) == 0
    assert pool.invalidate(e + 1, 3) == 3
    st = pool.stats()
    assert st["stored_pages"] == 1 and st["zero_pages"] == 1
    assert pool.invalidate(e + 4, 4) == 3
    assert zspace.zswap_empty()
    st = pool.stats()
    assert st["stored_pages"] == 0 and st["zero_pages"] == 0
    assert st["pool_total_size"] == 0 and st["lru_length"] == 0
    assert pool.invalidate(e, 8) == 0
    assert len(zspace) == 8


def test_invalidate_default_nr(pool, zspace):
    e = zspace.alloc(2)
    pool.store(e, T(0) + T(1))
    assert pool.invalidate(e) == 1
    assert view(pool, e + 1) is not None


def test_store_releases_the_written_back_slot(pool, zspace, swapfile):
    # One backing per descriptor: a newer page supersedes the older one in
    # the swap file, which no read may find again.
    e = zspace.alloc()
    pool.store(e, T(0))
    assert pool.shrink(1) == 1
    assert zspace.get_slot(e) != 0
    pool.store(e, T(1))
    assert zspace.get_slot(e) == 0
    assert len(swapfile) == 0
    assert pool.invalidate(e) == 1
    with pytest.raises(NoPageError):
        pool.read(e)


@pytest.mark.parametrize("how", ["load", "invalidate"])
def test_read_after_a_newer_page_left(pool, zspace, how):
    e = zspace.alloc()
    pool.store(e, T(0))
    assert pool.shrink(1) == 1
    pool.store(e, T(1))
    if how == "load":
        assert pool.load(e) == T(1)
    else:
        pool.invalidate(e)
    with pytest.raises(NoPageError):
        pool.read(e)


def test_rejected_store_releases_the_written_back_slot(make_pool, zspace, swapfile):
    pool = make_pool(zspace, swapfile, max_pool_bytes=NO_LIMIT)
    e = zspace.alloc()
    pool.store(e, T(0))
    assert pool.shrink(1) == 1
    pool.max_pool_bytes = 0
    pool.writeback = False
    assert pool.store(e, T(1)) is False
    assert zspace.get_slot(e) == 0
    assert len(swapfile) == 0
    with pytest.raises(NoPageError):
        pool.read(e)


def test_hand_set_slot_is_the_pools_page(pool, zspace, swapfile):
    # set_slot() of a slot allocated in the pool's file makes it the
    # entry's page there: read, and freed with the entry.
    e = zspace.alloc()
    slot = swapfile.alloc_slot()
    swapfile.write(slot, T(3))
    zspace.set_slot(e, slot)
    assert pool.read(e) == T(3)
    zspace.free(e)
    assert len(swapfile) == 0


def test_slot_of_another_entry_is_not_read(pool, zspace, swapfile):
    a, b = zspace.alloc(), zspace.alloc()
    pool.store(a, T(0))
    assert pool.shrink(1) == 1
    slot = zspace.get_slot(a)
    zspace.set_slot(b, slot)            # the slot now backs b alone
    assert pool.read(b) == T(0)
    with pytest.raises(NoPageError):
        pool.read(a)
    zspace.set_slot(b, 12345)           # not a slot of the file: no page
    with pytest.raises(NoPageError):
        pool.read(b)


def test_vswap_free_invalidates(pool, zspace, swapfile):
    e = zspace.alloc(4)
    store_each(pool, e, [T(0), ZERO_PAGE, T(1), R(0)])
    assert pool.stats()["stored_pages"] == 3
    zspace.free(e + 1)
    assert pool.stats()["zero_pages"] == 0
    zspace.free(e)
    st = pool.stats()
    assert st["stored_pages"] == 2
    zspace.free(e + 2, 2)
    st = pool.stats()
    assert st["stored_pages"] == 0 and st["stored_incompressible_pages"] == 0
    assert st["pool_total_size"] == 0 and st["lru_length"] == 0
    assert len(pool) == 0
    assert len(zspace) == 0


def test_vswap_free_releases_the_slot(pool, zspace, swapfile):
    es = [zspace.alloc() for _ in range(5)]
    for i, e in enumerate(es):
        pool.store(e, T(i))
    assert pool.shrink(5) == 5
    slots = [zspace.get_slot(e) for e in es]
    assert sorted(slots) == [1, 2, 3, 4, 5]
    assert len(swapfile) == 5
    zspace.free(es[2])
    assert len(swapfile) == 4
    assert swapfile.alloc_slot() == slots[2]
    swapfile.free_slot(slots[2])
    for e in es[:2] + es[3:]:
        zspace.free(e)
    assert len(swapfile) == 0
    assert swapfile.stats()["used"] == 0


def test_vswap_free_of_a_large_range_releases_slots(pool, zspace, swapfile):
    e = zspace.alloc(8)
    pool.store(e, b"".join(T(i) for i in range(8)))
    assert pool.shrink(8) == 8
    assert len(swapfile) == 8
    zspace.free(e, 8)
    assert len(swapfile) == 0


# --------------------------------------------------------------------------
# the VSwap API's view of pool entries


def test_views_through_the_vswap_api(pool, zspace):
    victim = add_victim(pool, zspace)
    e = zspace.alloc(4)
    store_each(pool, e, [T(0), ZERO_PAGE, R(0)])
    v0, v1, v2 = (zspace.zswap_entry_load(e + i) for i in range(3))
    assert all(type(v) is ZswapEntryView for v in (v0, v1, v2))
    assert v0 == ZswapEntryView(e, v0.length, True, False, False)
    assert v0.length in lz4_lengths(T(0))
    assert v1 == ZswapEntryView(e + 1, 0, v1.referenced, True, False)
    assert v2 == ZswapEntryView(e + 2, PAGE, True, False, True)
    # A snapshot: it does not follow the entry.
    clear_bits(pool, zspace, victim)
    assert v0.referenced is True
    assert zspace.zswap_entry_load(e).referenced is False
    assert not zspace.zswap_empty()
    assert zspace.stats()["zswap_entries"] == 3
    info = zspace.cluster_info(e >> zspace.cluster_shift)
    assert info["zswap_entries"] == 3


def test_erase_through_the_vswap_api_frees(pool, zspace):
    e = zspace.alloc(2)
    store_each(pool, e, [T(0), ZERO_PAGE])
    old = zspace.zswap_entry_erase(e)
    assert type(old) is ZswapEntryView and old.swpentry == e and not old.zero
    st = pool.stats()
    assert st["stored_pages"] == 0 and st["pool_total_size"] == 0 and st["lru_length"] == 0
    assert pool.load(e) is None
    old = zspace.zswap_entry_erase(e + 1)
    assert type(old) is ZswapEntryView and old.zero
    assert pool.stats()["zero_pages"] == 0
    assert len(pool) == 0
    assert pool.shrink(10) == 0


def test_store_through_the_vswap_api_frees(pool, zspace):
    e = zspace.alloc()
    pool.store(e, T(0))
    t = Token()
    old = zspace.zswap_entry_store(e, t)
    assert type(old) is ZswapEntryView and old.swpentry == e
    st = pool.stats()
    assert st["stored_pages"] == 0 and st["pool_total_size"] == 0 and st["lru_length"] == 0
    assert zspace.zswap_entry_load(e) is t
    assert pool.shrink(10) == 0
    assert pool.invalidate(e) == 1
    assert zspace.zswap_entry_load(e) is None


def test_storing_a_view_back_is_just_an_object(pool, zspace):
    e = zspace.alloc()
    pool.store(e, T(0))
    old = zspace.zswap_entry_erase(e)
    zspace.zswap_entry_store(e, old)          # a plain tuple now, not a pool entry
    assert pool.stats()["stored_pages"] == 0
    assert pool.load(e) is None
    assert pool.invalidate(e) == 1


def test_displacement_mid_lru(pool, zspace, swapfile):
    es = [zspace.alloc() for _ in range(6)]
    for i, e in enumerate(es):
        pool.store(e, T(i))
    zspace.zswap_entry_erase(es[0])
    zspace.zswap_entry_store(es[2], Token())
    zspace.free(es[4])
    assert pool.stats()["lru_length"] == 3
    assert pool.shrink(10) == 3
    assert {zspace.get_slot(e) != 0 for e in (es[1], es[3], es[5])} == {True}
    assert zspace.get_slot(es[0]) == 0
    for i in (1, 3, 5):
        assert pool.read(es[i]) == T(i)


# --------------------------------------------------------------------------
# limits and hysteresis


def fill_until_full(pool, zspace, pages, limit):
    """Store pages at fresh entries while the pool is below ``limit``."""
    stored = []
    i = 0
    while pool.stats()["pool_total_size"] < limit:
        e = zspace.alloc()
        assert pool.store(e, pages[i % len(pages)]) is True
        stored.append((e, pages[i % len(pages)]))
        i += 1
    return stored


def test_limit_and_hysteresis_without_writeback(zcore, zspace):
    limit = 64 * PAGE
    pool = zcore.Zswap(zspace, max_pool_bytes=limit, accept_threshold_percent=50.0)
    threshold = limit * 50 // 100
    pages = [T(i) for i in range(256)]
    stored = fill_until_full(pool, zspace, pages, limit)
    assert pool.stats()["pool_limit_hit"] == 0
    hits = 0
    probe = zspace.alloc()
    # Full: every store is refused until usage falls to the threshold.
    for k in range(len(stored) + 1):
        size = pool.stats()["pool_total_size"]
        before = pool.stats()
        ok = pool.store(probe, pages[k % 256])
        after = pool.stats()
        if size >= limit:
            hits += 1
            assert ok is False
        elif size > threshold:
            assert ok is False
        else:
            assert ok is True
            break
        assert after["pool_limit_hit"] == hits
        assert after["pool_total_size"] == size
        assert after["stored_pages"] == before["stored_pages"]
        assert after["reject_reclaim_fail"] == 0
        assert view(pool, probe) is None
        e, _ = stored.pop(0)
        assert pool.invalidate(e) == 1
    else:
        pytest.fail("the pool never accepted a store again")
    assert hits >= 1
    assert pool.stats()["pool_limit_hit"] == hits
    check_pool_consistency(pool)
    # Not full any more: stores go in until the limit is hit again.
    assert pool.read(probe) == pages[k % 256]
    for e, p in stored:
        assert pool.read(e) == p


def test_zero_page_accepted_while_full(zcore, zspace):
    # A zero-filled folio takes the ZERO backing before zswap is asked: it
    # uses no pool memory, so the limit neither counts it nor refuses it.
    pool = zcore.Zswap(zspace, max_pool_bytes=8 * PAGE, writeback=False)
    fill_until_full(pool, zspace, [T(i) for i in range(64)], 8 * PAGE)
    before = pool.stats()
    e = zspace.alloc()
    assert pool.store(e, ZERO_PAGE) is True
    assert pool.store(zspace.alloc(4), ZERO_PAGE * 4) is True
    after = pool.stats()
    assert after["pool_limit_hit"] == before["pool_limit_hit"]
    assert after["swpout_zero"] == before["swpout_zero"] + 5
    assert after["pool_total_size"] == before["pool_total_size"]
    assert view(pool, e).zero
    assert pool.store(zspace.alloc(), T(70)) is False     # still full


def test_full_store_drops_the_stale_entry(zcore, zspace):
    pool = zcore.Zswap(zspace, max_pool_bytes=8 * PAGE)
    stored = fill_until_full(pool, zspace, [T(i) for i in range(64)], 8 * PAGE)
    e, _ = stored[0]
    size = pool.stats()["pool_total_size"]
    n = pool.stats()["stored_pages"]
    assert pool.store(e, T(200)) is False
    assert view(pool, e) is None
    assert pool.stats()["stored_pages"] == n - 1
    assert pool.stats()["pool_total_size"] <= size
    with pytest.raises(NoPageError):
        pool.read(e)


def test_limit_is_checked_once_per_call(zcore, zspace):
    pool = zcore.Zswap(zspace, max_pool_bytes=16 * PAGE)
    # Just under the limit, a large folio goes in whole and overshoots.
    while True:
        e = zspace.alloc()
        pool.store(e, T(e % 200))
        if pool.stats()["pool_total_size"] >= 10 * PAGE:
            break
    assert pool.stats()["pool_total_size"] < 16 * PAGE
    big = zspace.alloc(64)
    assert pool.store(big, b"".join(T(100 + i) for i in range(64))) is True
    assert pool.stats()["pool_total_size"] > 16 * PAGE
    assert pool.stats()["pool_limit_hit"] == 0
    assert pool.store(zspace.alloc(), T(0)) is False
    assert pool.stats()["pool_limit_hit"] == 1


def test_zero_limit_refuses_everything(zcore, zspace):
    pool = zcore.Zswap(zspace, max_pool_bytes=0)
    e = zspace.alloc()
    for n in range(1, 4):
        assert pool.store(e, T(0)) is False
        assert pool.stats()["pool_limit_hit"] == n
    assert len(pool) == 0


def test_raising_the_limit_ends_fullness(zcore, zspace):
    pool = zcore.Zswap(zspace, max_pool_bytes=8 * PAGE)
    fill_until_full(pool, zspace, [T(i) for i in range(64)], 8 * PAGE)
    e = zspace.alloc()
    assert pool.store(e, T(100)) is False
    pool.max_pool_bytes = 100 * PAGE
    assert pool.store(e, T(100)) is True
    assert pool.stats()["max_pool_bytes"] == 100 * PAGE
    assert pool.stats()["pool_limit_hit"] == 1


def test_lowering_the_limit_makes_it_full(zcore, zspace):
    pool = zcore.Zswap(zspace, max_pool_bytes=NO_LIMIT)
    for i in range(40):
        pool.store(zspace.alloc(), T(i))
    size = pool.stats()["pool_total_size"]
    assert size > 10 * PAGE
    pool.max_pool_bytes = size
    e = zspace.alloc()
    assert pool.store(e, T(50)) is False
    assert pool.stats()["pool_limit_hit"] == 1
    pool.max_pool_bytes = size + PAGE
    # Still full: usage is above the threshold of the new limit.
    assert pool.store(e, T(50)) is False
    assert pool.stats()["pool_limit_hit"] == 1
    pool.accept_threshold_percent = 100.0
    assert pool.store(e, T(50)) is True


def test_threshold_change_applies_at_once(zcore, zspace):
    pool = zcore.Zswap(zspace, max_pool_bytes=16 * PAGE, accept_threshold_percent=10.0)
    stored = fill_until_full(pool, zspace, [T(i) for i in range(64)], 16 * PAGE)
    e = zspace.alloc()
    assert pool.store(e, T(99)) is False
    # Free a little: below the limit, far above 10 %.
    while pool.stats()["pool_total_size"] >= 16 * PAGE:
        pool.invalidate(stored.pop(0)[0])
    assert pool.store(e, T(99)) is False
    pool.accept_threshold_percent = 100.0
    assert pool.store(e, T(99)) is True


def test_rejected_store_wakes_the_shrink_worker(make_pool, zspace, swapfile):
    # zswap_store() on a full pool: rejected, and shrink_worker() writes back
    # from the cold end, in the background, until the pool is under the
    # acceptance threshold; then stores are taken again.
    limit = 32 * PAGE
    pool = make_pool(zspace, swapfile, max_pool_bytes=limit,
                     accept_threshold_percent=50.0)
    pages = [T(i) for i in range(256)]
    stored = fill_until_full(pool, zspace, pages, limit)
    order = [e for e, _ in stored]
    e = zspace.alloc()
    assert pool.store(e, T(255)) is False
    assert pool.stats()["pool_limit_hit"] == 1
    # Each rejection wakes the worker; once it has brought the pool under
    # the threshold a store is taken.
    store_retrying(pool, e, T(255))
    st = pool.stats()
    assert st["shrink_worker_runs"] >= 1
    assert st["written_back_pages"] >= 1 and st["zswpwb"] == st["written_back_pages"]
    assert st["reject_reclaim_fail"] == 0
    # Under the threshold when it was taken: the new entry's zspage aside.
    assert st["pool_total_size"] - 8 * PAGE <= limit * 50 // 100
    # The cold end went first: the written-back entries are the oldest.
    written = [x for x in order if zspace.get_slot(x) != 0]
    assert len(written) == st["written_back_pages"]
    assert written == order[:len(written)]
    for x in written:
        assert view(pool, x) is None
    for x in order[len(written):]:
        assert view(pool, x) is not None
    assert len(swapfile) == len(written)
    for x, p in stored:
        assert pool.read(x) == p
    assert pool.read(e) == T(255)
    check_pool_consistency(pool)


def test_waiting_for_the_shrink_worker(make_pool, zspace, swapfile):
    # wait_for_shrink_worker: the rejected store returns once the worker
    # has run, so what follows does not depend on timing.
    limit = 32 * PAGE
    pool = make_pool(zspace, swapfile, max_pool_bytes=limit,
                     accept_threshold_percent=50.0, wait_for_shrink_worker=True)
    assert pool.wait_for_shrink_worker is True
    fill_until_full(pool, zspace, [T(i) for i in range(256)], limit)
    runs = 0
    while not pool.store(zspace.alloc(), T(255)):
        runs += 1
        # The store came back after the run it queued.
        assert pool.stats()["shrink_worker_runs"] == runs
    assert runs >= 1 and pool.stats()["pool_total_size"] - 8 * PAGE <= limit * 50 // 100
    pool.wait_for_shrink_worker = False
    assert pool.wait_for_shrink_worker is False


def test_limit_with_too_small_a_swapfile(zcore, zspace, tmp_path):
    with zcore.SwapFile(str(tmp_path / "tiny"), 3 * PAGE) as sf:   # 2 slots
        limit = 32 * PAGE
        pool = zcore.Zswap(zspace, sf, max_pool_bytes=limit,
                           accept_threshold_percent=50.0)
        try:
            stored = fill_until_full(pool, zspace, [T(i) for i in range(256)], limit)
            e = zspace.alloc()
            for _ in range(10000):
                assert pool.store(e, T(254)) is False     # never under the threshold
                pool.flush_shrink_work()
                if pool.stats()["written_back_pages"] == 2:
                    break
            st = pool.stats()
            assert st["pool_limit_hit"] >= 1
            assert st["written_back_pages"] == 2 and len(sf) == 2
            assert view(pool, e) is None
            # The file is full: writeback is impossible, the worker does nothing.
            assert pool.store(e, T(254)) is False
            pool.flush_shrink_work()
            assert pool.stats()["written_back_pages"] == 2
            assert pool.stats()["reject_reclaim_fail"] == st["reject_reclaim_fail"]
            for x, p in stored:
                assert pool.read(x) == p
            check_pool_consistency(pool)
        finally:
            pool.close()


def test_limit_with_writeback_and_an_empty_lru(make_pool, zspace, swapfile):
    # Nothing to walk: every pass of shrink_worker() finds no candidate, and
    # it gives up after MAX_RECLAIM_RETRIES passes without a writeback.
    pool = make_pool(zspace, swapfile, max_pool_bytes=0)
    e = zspace.alloc()
    assert pool.store(e, T(0)) is False
    pool.flush_shrink_work()
    st = pool.stats()
    assert st["pool_limit_hit"] >= 1 and st["reject_reclaim_fail"] == 0
    assert st["written_back_pages"] == 0 and st["shrink_worker_runs"] == 1


def test_no_shrink_worker_without_writeback(make_pool, zspace):
    pool = make_pool(zspace, max_pool_bytes=0)
    assert pool.store(zspace.alloc(), T(0)) is False
    pool.flush_shrink_work()
    assert pool.stats()["shrink_worker_runs"] == 0


def test_close_stops_a_busy_shrink_worker(zcore, zspace, swapfile):
    for _ in range(3):
        pool = zcore.Zswap(zspace, swapfile, max_pool_bytes=64 * PAGE,
                           accept_threshold_percent=1.0)
        fill_until_full(pool, zspace, [T(i) for i in range(256)], 64 * PAGE)
        assert pool.store(zspace.alloc(), T(1)) is False
        pool.close()                    # joins the worker, mid-walk or not
        assert len(swapfile) == 0
        with pytest.raises(ValueError):
            pool.flush_shrink_work()


# --------------------------------------------------------------------------
# shrink: writeback with second chance


def test_shrink_on_an_empty_pool(pool):
    assert pool.shrink(1) == 0
    assert pool.shrink(100) == 0


def test_shrink_without_writeback(bare_pool, zspace, make_pool, swapfile):
    e = zspace.alloc()
    bare_pool.store(e, T(0))
    assert bare_pool.shrink(10) == 0
    assert view(bare_pool, e).referenced is True
    bare_pool.close()
    p = make_pool(zspace, swapfile, writeback=False, max_pool_bytes=NO_LIMIT)
    p.store(e, T(0))
    assert p.shrink(10) == 0
    assert p.stats()["written_back_pages"] == 0
    assert view(p, e) is not None


def test_second_chance_rotates_once(pool, zspace):
    es = [zspace.alloc() for _ in range(3)]
    for i, e in enumerate(es):
        pool.store(e, T(i))
    assert all(view(pool, e).referenced for e in es)
    # All referenced: each is rotated once (bit cleared, LRU order kept),
    # then the coldest is written back.
    assert pool.shrink(1) == 1
    assert zspace.get_slot(es[0]) != 0 and view(pool, es[0]) is None
    assert not any(view(pool, e).referenced for e in es[1:])
    assert pool.stats()["written_back_pages"] == 1
    assert pool.shrink(1) == 1
    assert zspace.get_slot(es[1]) != 0
    assert view(pool, es[2]) is not None and zspace.get_slot(es[2]) == 0


def test_failed_writeback_leaves_the_entry_rotated(pool, zspace, swapfile):
    # shrink_memcg_cb() rotates an entry before writing it back: a failure
    # (here a full swap file) leaves it at the hot end, still stored, and
    # counts reject_reclaim_fail.
    es = [zspace.alloc() for _ in range(3)]
    for i, e in enumerate(es):
        pool.store(e, T(i))
    taken = [swapfile.alloc_slot() for _ in range(swapfile.stats()["free"])]
    try:
        assert pool.shrink(1) == 0
    finally:
        for s in taken:
            swapfile.free_slot(s)
    st = pool.stats()
    assert st["reject_reclaim_fail"] == 1 and st["written_back_pages"] == 0
    assert not any(view(pool, e).referenced for e in es)
    # Cold to hot now: es[1], es[2], es[0].
    assert pool.shrink(1) == 1
    assert zspace.get_slot(es[1]) != 0 and zspace.get_slot(es[0]) == 0
    assert pool.shrink(1) == 1
    assert zspace.get_slot(es[2]) != 0 and zspace.get_slot(es[0]) == 0


def test_second_chance_skips_referenced_entries(pool, zspace):
    victim = add_victim(pool, zspace)
    es = [zspace.alloc() for _ in range(4)]
    for i, e in enumerate(es):
        pool.store(e, T(i))
    clear_bits(pool, zspace, victim)
    # Touch the coldest one: it is rotated, the next one is written.
    assert pool.read(es[0]) == T(0)
    assert view(pool, es[0]).referenced is True
    assert pool.shrink(1) == 1
    assert view(pool, es[0]) is not None and view(pool, es[0]).referenced is False
    assert view(pool, es[1]) is None and zspace.get_slot(es[1]) != 0
    # Order now (cold to hot): es[2], es[3], es[0].
    assert pool.shrink(2) == 2
    assert view(pool, es[0]) is not None
    assert zspace.get_slot(es[2]) and zspace.get_slot(es[3])
    assert pool.shrink(1) == 1
    assert zspace.get_slot(es[0]) != 0
    assert pool.stats()["written_back_pages"] == 5     # with the victim
    for i, e in enumerate(es):
        assert pool.read(e) == T(i)


def test_second_chance_for_several(pool, zspace):
    victim = add_victim(pool, zspace)
    es = [zspace.alloc() for _ in range(6)]
    for i, e in enumerate(es):
        pool.store(e, T(i))
    clear_bits(pool, zspace, victim)
    for i in (0, 2, 3):
        pool.read(es[i])
    # 0, 2, 3 rotate; 1, 4 are written.
    assert pool.shrink(2) == 2
    assert [zspace.get_slot(e) != 0 for e in es] == [False, True, False, False, True, False]
    # Cold to hot: 5, 0, 2, 3 (none referenced now).
    assert pool.shrink(2) == 2
    assert [zspace.get_slot(e) != 0 for e in es] == [True, True, False, False, True, True]


def test_non_exclusive_load_gives_a_second_chance(make_pool, zspace, swapfile):
    pool = make_pool(zspace, swapfile, exclusive_loads=False, max_pool_bytes=NO_LIMIT)
    victim = add_victim(pool, zspace)
    a, b = zspace.alloc(), zspace.alloc()
    pool.store(a, T(0))
    pool.store(b, T(1))
    clear_bits(pool, zspace, victim)
    assert pool.load(a) == T(0)
    assert pool.shrink(1) == 1
    assert zspace.get_slot(b) != 0 and zspace.get_slot(a) == 0


def test_shrink_writes_up_to_nr(pool, zspace):
    es = [zspace.alloc() for _ in range(10)]
    for i, e in enumerate(es):
        pool.store(e, T(i))
    assert pool.shrink(3) == 3
    assert [zspace.get_slot(e) != 0 for e in es] == [True] * 3 + [False] * 7
    assert pool.shrink(100) == 7
    assert pool.shrink(100) == 0
    st = pool.stats()
    assert st["written_back_pages"] == 10 and st["stored_pages"] == 0
    assert st["pool_total_size"] == 0 and st["lru_length"] == 0


def test_restore_puts_entry_at_the_hot_end(pool, zspace):
    victim = add_victim(pool, zspace)
    es = [zspace.alloc() for _ in range(3)]
    for i, e in enumerate(es):
        pool.store(e, T(i))
    clear_bits(pool, zspace, victim)
    pool.store(es[0], T(10))          # a new entry: hot end, referenced
    assert view(pool, es[0]).referenced is True
    assert pool.shrink(2) == 2
    assert view(pool, es[0]) is not None
    assert view(pool, es[1]) is None and view(pool, es[2]) is None


def test_restore_without_second_chance_is_still_hot(pool, zspace):
    es = [zspace.alloc() for _ in range(3)]
    for i, e in enumerate(es):
        pool.store(e, T(i))
    pool.store(es[0], T(10))
    # Everything referenced: one rotation each keeps the order 1, 2, 0.
    assert pool.shrink(1) == 1
    assert zspace.get_slot(es[1]) != 0
    assert pool.shrink(1) == 1
    assert zspace.get_slot(es[2]) != 0
    assert view(pool, es[0]) is not None


def test_writeback_then_read_from_the_swap_file(pool, zspace, swapfile):
    pages = [T(0), L(1), R(5), T(3), b"\x01" * PAGE]
    es = [zspace.alloc() for _ in pages]
    for e, p in zip(es, pages):
        pool.store(e, p)
    assert pool.shrink(10) == len(pages)
    for e, p in zip(es, pages):
        slot = zspace.get_slot(e)
        assert 1 <= slot <= swapfile.nr_slots
        assert view(pool, e) is None
        assert pool.read(e) == p
        assert swapfile.read(slot) == p
        with open(swapfile.path, "rb") as raw:
            raw.seek(slot * PAGE)
            assert raw.read(PAGE) == p
        out = bytearray(PAGE)
        assert pool.read(e, out) is out and out == p
    assert len({zspace.get_slot(e) for e in es}) == len(pages)
    assert zspace.stats()["slots"] == len(pages)
    assert len(swapfile) == len(pages)
    st = pool.stats()
    assert st["written_back_pages"] == len(pages)
    assert st["stored_pages"] == 0 and st["stored_incompressible_pages"] == 0


def test_writeback_takes_the_lowest_free_slots(pool, zspace, swapfile):
    taken = [swapfile.alloc_slot() for _ in range(5)]
    swapfile.free_slot(taken[1])
    swapfile.free_slot(taken[3])
    es = [zspace.alloc() for _ in range(3)]
    for i, e in enumerate(es):
        pool.store(e, T(i))
    assert pool.shrink(3) == 3
    assert [zspace.get_slot(e) for e in es] == [taken[1], taken[3], 6]


def test_writeback_replaces_an_older_slot(pool, zspace, swapfile):
    e = zspace.alloc()
    pool.store(e, T(0))
    assert pool.shrink(1) == 1
    s1 = zspace.get_slot(e)
    # A newer page in zswap is what read() sees; the older slot is freed.
    pool.store(e, T(1))
    assert pool.read(e) == T(1)
    assert zspace.get_slot(e) == 0
    assert len(swapfile) == 0
    assert pool.shrink(1) == 1
    assert zspace.get_slot(e) == s1         # the lowest free slot again
    assert len(swapfile) == 1
    assert pool.read(e) == T(1)


def test_large_folio_writeback(pool, zspace):
    e = zspace.alloc(16)
    pages = [T(i) for i in range(16)]
    pool.store(e, b"".join(pages))
    assert pool.shrink(16) == 16
    for i in range(16):
        assert pool.read(e + i) == pages[i]


# --------------------------------------------------------------------------
# read: wherever the page lives


@pytest.mark.parametrize("make", [bytes, bytearray,
                                  lambda p: np.frombuffer(p, dtype=np.uint8).copy(),
                                  memoryview],
                         ids=["bytes", "bytearray", "numpy", "memoryview"])
def test_read_from_the_folio(pool, zspace, make):
    folio = make(L(0))
    e = zspace.alloc(folio=folio)
    assert pool.read(e) == L(0)
    pool.store(e, T(0))
    assert pool.read(e) == L(0)            # the folio comes first
    out = bytearray(PAGE)
    assert pool.read(e, out) is out and out == L(0)
    assert view(pool, e) is not None       # nothing moved


@pytest.mark.parametrize("folio", [Token("folio"), bytes(100), bytes(2 * PAGE), 7, "x" * PAGE],
                         ids=["object", "short", "long", "int", "str"])
def test_read_skips_a_folio_that_is_not_a_page(pool, zspace, folio):
    e = zspace.alloc(folio=folio)
    with pytest.raises(NoPageError):
        pool.read(e)
    pool.store(e, T(1))
    assert pool.read(e) == T(1)


def test_read_from_zswap_does_not_move_it(pool, zspace):
    e = zspace.alloc()
    pool.store(e, T(2))
    for _ in range(3):
        assert pool.read(e) == T(2)
    assert pool.stats()["stored_pages"] == 1
    assert view(pool, e) is not None


def test_read_sets_referenced(pool, zspace):
    victim = add_victim(pool, zspace)
    e = zspace.alloc()
    pool.store(e, T(2))
    clear_bits(pool, zspace, victim)
    assert view(pool, e).referenced is False
    pool.read(e)
    assert view(pool, e).referenced is True


def test_read_zero(pool, zspace):
    e = zspace.alloc()
    pool.store(e, ZERO_PAGE)
    out = bytearray(b"\x09" * PAGE)
    assert pool.read(e, out) is out and out == ZERO_PAGE
    assert pool.read(e) == ZERO_PAGE
    assert pool.stats()["zero_pages"] == 1


def test_read_prefers_zswap_to_the_slot(pool, zspace):
    e = zspace.alloc()
    pool.store(e, T(0))
    assert pool.shrink(1) == 1
    pool.store(e, ZERO_PAGE)
    assert pool.read(e) == ZERO_PAGE
    pool.invalidate(e)
    with pytest.raises(NoPageError):        # T(0) was superseded
        pool.read(e)


def test_read_nothing(pool, zspace):
    e = zspace.alloc()
    with pytest.raises(NoPageError) as info:
        pool.read(e)
    assert isinstance(info.value, LookupError)
    zspace.swap_cache_add_folio(e, Token())
    with pytest.raises(NoPageError):
        pool.read(e)
    zspace.swap_cache_del_folio(e, zspace.swap_cache_get_folio(e), shadow=5)
    with pytest.raises(NoPageError):
        pool.read(e)


def test_read_after_load(pool, zspace):
    e = zspace.alloc()
    pool.store(e, T(0))
    pool.load(e)
    with pytest.raises(NoPageError):
        pool.read(e)


# --------------------------------------------------------------------------
# stats and close


def test_stats_track_operations(pool, zspace):
    e = zspace.alloc(8)
    pages = [T(0), L(0), ZERO_PAGE, R(0), T(1), ZERO_PAGE, L(1), T(2)]
    pool.store(e, b"".join(pages))
    views = check_pool_consistency(pool)
    assert pool.stats()["pool_total_size"] == zpool_min_size(
        [v.length for v in views.values() if not v.zero])
    sizes = [pool.stats()["pool_total_size"]]
    for i in range(8):
        pool.load(e + i)
        check_pool_consistency(pool)
        sizes.append(pool.stats()["pool_total_size"])
    assert sizes[-1] == 0
    assert all(a >= b for a, b in zip(sizes, sizes[1:]))


def test_len(pool, zspace):
    e = zspace.alloc(4)
    pool.store(e, T(0) + ZERO_PAGE + ZERO_PAGE + T(1))
    assert len(pool) == 4
    pool.invalidate(e + 1)
    assert len(pool) == 3


def test_close(pool, zspace, swapfile):
    e = zspace.alloc(4)
    pool.store(e, T(0) + ZERO_PAGE + T(1) + T(2))
    t = Token()
    other = zspace.alloc()
    zspace.zswap_entry_store(other, t)
    assert pool.shrink(1) == 1
    slot = zspace.get_slot(e)
    assert slot != 0
    pool.close()
    for i in range(4):
        assert zspace.zswap_entry_load(e + i) is None
    assert zspace.zswap_entry_load(other) is t      # not the pool's
    # No descriptor names a slot of a pool that is gone.
    assert zspace.get_slot(e) == 0
    assert len(swapfile) == 0
    assert zspace.stats()["zswap_entries"] == 1
    assert len(zspace) == 5


CLOSED_CALLS = {
    "store": lambda p, e: p.store(e, T(0)),
    "load": lambda p, e: p.load(e),
    "read": lambda p, e: p.read(e),
    "invalidate": lambda p, e: p.invalidate(e),
    "shrink": lambda p, e: p.shrink(1),
    "stats": lambda p, e: p.stats(),
}


@pytest.mark.parametrize("call", sorted(CLOSED_CALLS))
def test_closed_pool(pool, zspace, call):
    e = zspace.alloc()
    pool.store(e, T(0))
    pool.close()
    with pytest.raises(ValueError) as info:
        CLOSED_CALLS[call](pool, e)
    assert str(info.value) == "zswap pool is closed"
    assert zspace.zswap_entry_load(e) is None


def test_space_outlives_its_pool(zcore):
    space = zcore.VSwap()
    pool = zcore.Zswap(space, max_pool_bytes=NO_LIMIT)
    e = space.alloc()
    pool.store(e, T(0))
    pool.close()
    del pool
    gc.collect()
    space.free(e)
    assert len(space) == 0


def test_pool_keeps_its_space_alive(zcore):
    space = zcore.VSwap()
    pool = zcore.Zswap(space, max_pool_bytes=NO_LIMIT)
    e = space.alloc()
    pool.store(e, T(0))
    del space
    gc.collect()
    assert pool.space is not None
    assert pool.load(e) == T(0)


def test_vmstat_counters(pool, zspace):
    # The events of /proc/vmstat: ZSWPOUT, SWPOUT_ZERO, ZSWPIN, SWPIN_ZERO
    # and ZSWPWB count pages, and only go up.
    e = zspace.alloc(4)
    assert store_each(pool, e, [T(0), ZERO_PAGE, T(1), T(2)])
    st = pool.stats()
    assert (st["zswpout"], st["swpout_zero"]) == (3, 1)
    assert pool.load(e) == T(0)
    assert pool.load(e + 1) == ZERO_PAGE
    pool.read(e + 2)                        # a read is no swap-in
    st = pool.stats()
    assert (st["zswpin"], st["swpin_zero"]) == (1, 1)
    assert pool.shrink(1) == 1
    st = pool.stats()
    assert st["zswpwb"] == st["written_back_pages"] == 1
    zspace.free(e, 4)
    st = pool.stats()
    assert (st["zswpout"], st["swpout_zero"], st["zswpin"], st["swpin_zero"],
            st["zswpwb"]) == (3, 1, 1, 1, 1)
