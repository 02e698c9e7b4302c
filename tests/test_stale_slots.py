"""No descriptor names a slot its pool does not own; no read returns a
superseded page.

The swap file keeps a reverse map from each slot to the swap entry whose
page a pool put there (the v6 series keeps one for disk-backed slots); a
descriptor's slot is that entry's page only while the map says so.  A
closed pool takes its written-back pages with it, and a newer store lets go
of the older page in the file (one backing per descriptor).

One backing per descriptor (v6 patches 13-14): a descriptor is backed by
exactly one of nothing, a zero page, a zswap entry, a slot, or its
swap-cache folio, and storing a backing releases the old one.  The tests
below follow the type through the pool, the VSwap API and a plain space.
"""

import array
import random
import sys
import threading

import pytest

from cores import core_names, load_zswap_core
from vswap_support import Token, backing
from vswapfast.batch import BATCH_EMPTY
from vswapfast.errors import NoPageError

PAGE = 4096


def page(tag):
    return (("%s " % tag) * PAGE).encode()[:PAGE]


@pytest.fixture(params=core_names())
def zc(request):
    return load_zswap_core(request.param)


def test_closed_pool_leaves_no_slot_for_the_next(zc, tmp_path):
    space = zc.VSwap()
    file_a = zc.SwapFile(str(tmp_path / "a"), 17 * PAGE)
    pool = zc.Zswap(space, file_a, max_pool_bytes=1 << 40)
    a = space.alloc()
    assert pool.store(a, page("A"))
    assert pool.shrink(1) == 1
    assert space.get_slot(a) != 0
    pool.close()
    assert space.get_slot(a) == 0
    assert len(file_a) == 0

    file_b = zc.SwapFile(str(tmp_path / "b"), 17 * PAGE)
    pool = zc.Zswap(space, file_b, max_pool_bytes=1 << 40)
    b = space.alloc()
    assert pool.store(b, page("B"))
    assert pool.shrink(1) == 1
    slot_b = space.get_slot(b)
    with pytest.raises(NoPageError):
        pool.read(a)                    # never B's page
    space.free(a)
    assert len(file_b) == 1             # B's slot survived A's free
    c = space.alloc()
    assert pool.store(c, page("C"))
    assert pool.shrink(1) == 1
    assert space.get_slot(c) != slot_b  # the next writeback took another slot
    assert pool.read(b) == page("B")
    assert pool.read(c) == page("C")
    pool.close()
    file_a.close()
    file_b.close()


def test_hand_set_stale_slot_of_another_file(zc, tmp_path):
    # A slot number set by hand while another pool's file was bound is not
    # the new pool's page.
    space = zc.VSwap()
    file_a = zc.SwapFile(str(tmp_path / "a"), 9 * PAGE)
    a = space.alloc()
    slot = file_a.alloc_slot()
    file_a.write(slot, page("A"))
    space.set_slot(a, slot)             # no pool bound: just a number
    file_b = zc.SwapFile(str(tmp_path / "b"), 9 * PAGE)
    pool = zc.Zswap(space, file_b, max_pool_bytes=1 << 40)
    b = space.alloc()
    assert pool.store(b, page("B"))
    assert pool.shrink(1) == 1
    assert space.get_slot(b) == slot    # the same number, in another file
    with pytest.raises(NoPageError):
        pool.read(a)
    space.free(a)
    assert pool.read(b) == page("B")
    assert len(file_b) == 1
    pool.close()
    file_a.close()
    file_b.close()


@pytest.mark.parametrize("exclusive", [True, False])
def test_read_after_a_newer_page_was_loaded(zc, tmp_path, exclusive):
    space = zc.VSwap()
    f = zc.SwapFile(str(tmp_path / "s"), 9 * PAGE)
    pool = zc.Zswap(space, f, max_pool_bytes=1 << 40, exclusive_loads=exclusive)
    e = space.alloc()
    assert pool.store(e, page("old"))
    assert pool.shrink(1) == 1
    assert pool.store(e, page("new"))
    assert pool.load(e) == page("new")
    if exclusive:
        with pytest.raises(NoPageError):
            pool.read(e)
    else:
        assert pool.read(e) == page("new")
    assert len(f) == 0
    pool.close()
    f.close()


def test_writeback_after_a_newer_store(zc, tmp_path):
    space = zc.VSwap()
    f = zc.SwapFile(str(tmp_path / "s"), 9 * PAGE)
    pool = zc.Zswap(space, f, max_pool_bytes=1 << 40)
    e = space.alloc()
    for i in range(5):
        assert pool.store(e, page(i))
        assert pool.shrink(1) == 1
        assert len(f) == 1              # one page per descriptor, ever
        assert pool.read(e) == page(i)
    pool.close()
    assert len(f) == 0
    f.close()


# -- one backing per descriptor (v6 patches 13-14) ----------------------------

def only(**counts):
    """A backing census with every type at 0 but ``counts``."""
    census = dict.fromkeys(("none", "zero", "zswap", "swapfile", "folio"), 0)
    census.update(counts)
    return census


def test_store_over_a_written_back_entry_releases_the_slot(zc, tmp_path):
    space = zc.VSwap()
    f = zc.SwapFile(str(tmp_path / "s"), 9 * PAGE)
    pool = zc.Zswap(space, f, max_pool_bytes=1 << 40)
    e = space.alloc()
    assert pool.store(e, page("old"))
    assert pool.shrink(1) == 1
    slot = space.get_slot(e)
    assert slot != 0 and len(f) == 1
    assert backing(space) == only(swapfile=1)
    assert pool.store(e, page("new"))
    # zswap_entry_store() -> release_backing(): the slot goes back to the file.
    assert space.get_slot(e) == 0
    assert len(f) == 0
    assert backing(space) == only(zswap=1)
    assert pool.read(e) == page("new")
    # The slot is free for the next writeback.
    assert pool.shrink(1) == 1
    assert space.get_slot(e) == slot
    pool.close()
    f.close()


def test_read_after_an_exclusive_load_of_a_newer_page_raises(zc, tmp_path):
    space = zc.VSwap()
    f = zc.SwapFile(str(tmp_path / "s"), 9 * PAGE)
    pool = zc.Zswap(space, f, max_pool_bytes=1 << 40)
    e = space.alloc()
    assert pool.store(e, page("old"))
    assert pool.shrink(1) == 1
    assert pool.store(e, page("new"))
    assert pool.load(e) == page("new")  # exclusive: the entry goes too
    with pytest.raises(NoPageError):
        pool.read(e)                    # never the superseded old page
    assert space.get_slot(e) == 0 and len(f) == 0
    assert backing(space) == only(none=1)
    pool.close()
    f.close()


def test_backing_types_through_the_pool(zc, tmp_path):
    space = zc.VSwap()
    f = zc.SwapFile(str(tmp_path / "s"), 9 * PAGE)
    pool = zc.Zswap(space, f, max_pool_bytes=1 << 40)
    folio = Token("folio")
    e = space.alloc(folio=folio)
    assert backing(space) == only(folio=1)      # folio_alloc_swap()
    assert pool.store(e, bytes(PAGE))
    assert backing(space) == only(zero=1)       # swap_zeromap_folio_set()
    view = space.zswap_entry_load(e)
    assert view.zero and view.swpentry == e
    assert space.stats()["zswap_entries"] == 1
    assert pool.store(e, page("a"))
    assert backing(space) == only(zswap=1)      # the zero page is released
    assert pool.stats()["zero_pages"] == 0
    assert pool.shrink(1) == 1
    assert backing(space) == only(swapfile=1)   # vswap_alloc_swap_slot()
    assert space.stats()["zswap_entries"] == 0 and space.stats()["slots"] == 1
    assert pool.stats()["stored_pages"] == 0
    assert space.zswap_entry_erase(e) is None   # no zswap backing to erase
    assert backing(space) == only(swapfile=1) and len(f) == 1
    assert pool.store(e, page("b"))
    assert backing(space) == only(zswap=1) and len(f) == 0
    assert pool.load(e) == page("b")
    # An exclusive load leaves the folio as the only copy (vswap_store_folio()).
    assert backing(space) == only(folio=1)
    assert space.swap_cache_get_folio(e) is folio
    space.swap_cache_del_folio(e, folio, shadow=3)
    assert backing(space) == only(none=1)
    space.swap_cache_add_folio(e, folio)
    assert backing(space) == only(folio=1)
    assert pool.store(e, page("c"))
    assert pool.shrink(1) == 1
    assert backing(space) == only(swapfile=1)
    pool.close()
    # The pool took its pages with it; the folio is what is left.
    assert backing(space) == only(folio=1)
    assert space.get_slot(e) == 0 and len(f) == 0
    space.free(e)
    assert backing(space) == only()
    f.close()


def test_close_leaves_no_backing_of_the_pool(zc, tmp_path):
    space = zc.VSwap()
    f = zc.SwapFile(str(tmp_path / "s"), 9 * PAGE)
    pool = zc.Zswap(space, f, max_pool_bytes=1 << 40)
    es = [space.alloc() for _ in range(4)]
    for i, e in enumerate(es):
        assert pool.store(e, bytes(PAGE) if i == 0 else page(i))
    assert pool.shrink(2) == 2
    token = Token("own")
    space.zswap_entry_store(es[3], token)       # the space's own entry stays
    assert backing(space) == only(zero=1, swapfile=2, zswap=1)
    pool.close()
    assert backing(space) == only(none=3, zswap=1)
    assert space.zswap_entry_load(es[3]) is token
    assert [space.get_slot(e) for e in es] == [0] * 4
    assert len(f) == 0
    f.close()


def test_vswap_api_stores_release_the_pools_slot(zc, tmp_path):
    # zswap_entry_store, its batch form and set_slot over a written-back
    # page: the slot goes back to the pool's file.
    space = zc.VSwap()
    f = zc.SwapFile(str(tmp_path / "s"), 9 * PAGE)
    pool = zc.Zswap(space, f, max_pool_bytes=1 << 40)
    a, b, c = space.alloc(), space.alloc(), space.alloc()
    for e in (a, b, c):
        assert pool.store(e, page(e))
    assert pool.shrink(3) == 3
    assert len(f) == 3
    token = Token("z")
    assert space.zswap_entry_store(a, token) is None
    assert len(f) == 2 and space.get_slot(a) == 0
    status = space.zswap_entry_store_many(array.array("Q", [b]), array.array("Q", [5]))
    assert list(status) == [BATCH_EMPTY]
    assert len(f) == 1 and space.get_slot(b) == 0
    new_slot = f.alloc_slot()
    old = space.get_slot(c)
    assert space.set_slot(c, new_slot) == old   # the pool's page of c moves
    assert len(f) == 1                          # the old slot went back
    assert space.set_slot(c, 0) == new_slot     # released: c has no page now
    assert len(f) == 0
    with pytest.raises(NoPageError):
        pool.read(c)
    assert backing(space) == only(zswap=2, none=1)
    pool.close()
    f.close()


def test_set_slot_over_a_pool_entry_frees_it(zc, tmp_path):
    space = zc.VSwap()
    f = zc.SwapFile(str(tmp_path / "s"), 9 * PAGE)
    pool = zc.Zswap(space, f, max_pool_bytes=1 << 40)
    e = space.alloc()
    assert pool.store(e, page("p"))
    assert pool.stats()["stored_pages"] == 1
    slot = f.alloc_slot()
    f.write(slot, page("q"))
    assert space.set_slot(e, slot) == 0
    assert pool.stats()["stored_pages"] == 0 and len(pool) == 0
    assert pool.load(e) is None
    assert pool.read(e) == page("q")
    pool.close()
    f.close()


def test_backing_types_of_a_plain_space(zc):
    space = zc.VSwap(cluster_shift=3)
    e = space.alloc()
    assert backing(space) == only(none=1)
    folio = Token("f")
    space.swap_cache_add_folio(e, folio)
    assert backing(space) == only(folio=1)
    z = Token("z")
    base = sys.getrefcount(z)
    assert space.zswap_entry_store(e, z) is None
    assert backing(space) == only(zswap=1)
    assert space.cluster_info(1)["backing_zswap"] == 1
    assert space.set_slot(e, 7) == 0
    assert backing(space) == only(swapfile=1)
    assert sys.getrefcount(z) == base           # the zswap entry was released
    assert space.zswap_entry_load(e) is None
    assert space.set_slot(e, 0) == 7
    assert backing(space) == only(folio=1)      # what is left: the folio
    assert space.set_slot(e, 0) == 0            # no slot: nothing changes
    space.swap_cache_del_folio(e, folio)
    assert backing(space) == only(none=1)
    space.set_slot(e, 9)
    status = space.zswap_entry_store_many(array.array("Q", [e]), array.array("Q", [4]))
    assert list(status) == [BATCH_EMPTY]
    assert backing(space) == only(zswap=1) and space.get_slot(e) == 0
    assert space.zswap_entry_erase(e) == 4
    assert backing(space) == only(none=1)
    space.free(e)
    assert backing(space) == only()


def test_stores_over_writebacks_from_threads(zc, tmp_path):
    # Stores supersede written-back pages while another thread writes back:
    # no slot is leaked or named twice, no read finds a superseded page.
    space = zc.VSwap(cluster_shift=4)
    f = zc.SwapFile(str(tmp_path / "s"), 257 * PAGE)
    pool = zc.Zswap(space, f, max_pool_bytes=1 << 40)
    nthreads, per = 3, 24
    entries = [[space.alloc() for _ in range(per)] for _ in range(nthreads)]
    last = [{} for _ in range(nthreads)]
    errors = []
    stop = threading.Event()

    def writer(t):
        try:
            rng = random.Random(t)
            for i in range(200):
                e = rng.choice(entries[t])
                p = page("%d-%d" % (t, i))
                assert pool.store(e, p)
                last[t][e] = p
                if i % 7 == 0:
                    assert pool.read(e) == p
        except BaseException as exc:    # handed back below
            errors.append(exc)

    def shrinker():
        while not stop.is_set():
            pool.shrink(3)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(nthreads)]
    back = threading.Thread(target=shrinker)
    back.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    back.join()
    assert not errors, errors
    everything = [e for es in entries for e in es]
    named = [s for s in (space.get_slot(e) for e in everything) if s]
    assert len(set(named)) == len(named) == len(f) == space.stats()["slots"]
    stored = sum(len(d) for d in last)
    census = backing(space)
    assert census["zswap"] + census["swapfile"] == stored
    assert census["none"] == len(everything) - stored
    for d in last:
        for e, p in d.items():
            assert pool.read(e) == p
    pool.close()
    assert len(f) == 0 and space.stats()["slots"] == 0
    f.close()
