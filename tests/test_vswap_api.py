"""The behaviour of every operation of a virtual swap space, as specified in
docs/semantics.md, on valid input."""

import gc
import sys

import pytest

from vswapfast.errors import (InvalidEntryError, SwapCacheError,
                              SwapFullError)
from vswap_support import (CLUSTER_INFO_KEYS, STAT_KEYS, IntSubclass, backing,
                           Token, Worker, index_types)


def cluster_of(space, entry):
    return entry >> space.cluster_shift


def index_of(space, entry):
    return entry & (space.cluster_size - 1)


def counters(space):
    s = space.stats()
    return {k: s[k] for k in ("entries", "clusters", "zswap_entries",
                              "swap_cache_folios", "shadows", "slots")}


def alloc_n(space, n, nr=1):
    return [space.alloc(nr) for _ in range(n)]


# --------------------------------------------------------------------------
# constants and construction


def test_constants(core):
    assert core.SWP_DESC_SIZE == 24
    assert core.VSWAP_CLUSTER_SHIFT == 9
    assert core.VSWAP_CLUSTER_SIZE == 512
    assert core.VSWAP_MAX_CLUSTERS == 2 ** 20
    assert core.VSWAP_CLUSTER_SIZE == 1 << core.VSWAP_CLUSTER_SHIFT


def test_default_geometry(space):
    assert space.cluster_shift == 9
    assert space.cluster_size == 512
    assert space.max_clusters == 2 ** 20
    assert space.nr_clusters == 0
    assert len(space) == 0


@pytest.mark.parametrize("shift", range(1, 10))
def test_cluster_shift_sets_cluster_size(core, shift):
    s = core.VSwap(cluster_shift=shift)
    assert s.cluster_shift == shift
    assert s.cluster_size == 1 << shift
    assert s.stats()["cluster_size"] == 1 << shift
    assert s.alloc() == 1 << shift


@pytest.mark.parametrize("max_clusters", [1, 4, 1000, 2 ** 24])
def test_max_clusters(core, max_clusters):
    s = core.VSwap(max_clusters=max_clusters)
    assert s.max_clusters == max_clusters
    assert s.stats()["max_clusters"] == max_clusters


def test_positional_constructor(core):
    s = core.VSwap(3, 4)
    assert (s.cluster_shift, s.cluster_size, s.max_clusters) == (3, 8, 4)


def test_geometry_is_read_only(space):
    for name in ("cluster_shift", "cluster_size", "max_clusters",
                 "nr_clusters"):
        with pytest.raises(AttributeError):
            setattr(space, name, 5)
    assert space.cluster_shift == 9 and space.cluster_size == 512


def test_spaces_are_independent(core):
    a = core.VSwap(cluster_shift=3)
    b = core.VSwap(cluster_shift=3)
    ea = a.alloc()
    assert b.alloc() == ea == 8
    a.zswap_entry_store(ea, Token())
    assert b.zswap_entry_load(ea) is None
    assert b.zswap_empty() and not a.zswap_empty()
    a.free(ea)
    assert ea in b and ea not in a


# --------------------------------------------------------------------------
# allocation


@pytest.mark.parametrize("shift", [1, 3, 9])
def test_first_entry_is_start_of_cluster_one(core, shift):
    s = core.VSwap(cluster_shift=shift)
    e = s.alloc()
    assert e == 1 << shift
    assert cluster_of(s, e) == 1
    assert 0 not in s


def test_order0_fills_cluster_then_takes_next(small_space):
    s = small_space
    got = alloc_n(s, 9)
    assert got == list(range(8, 16)) + [16]
    assert s.nr_clusters == 2
    assert len(s) == 9


def test_orders_live_in_separate_clusters(small_space):
    s = small_space
    a = s.alloc(1)
    b = s.alloc(2)
    c = s.alloc(4)
    assert (a, b, c) == (8, 16, 24)
    assert s.alloc(1) == 9
    assert s.alloc(2) == 18
    assert s.alloc(4) == 28
    assert s.alloc(8) == 32
    assert [s.cluster_info(i)["order"] for i in (1, 2, 3, 4)] == [0, 1, 2, 3]
    # no cluster id is left for an order-1 cluster even though clusters of
    # other orders have room
    assert s.alloc(2) == 20
    assert s.alloc(2) == 22
    with pytest.raises(SwapFullError):
        s.alloc(2)
    assert s.alloc(1) == 10


@pytest.mark.parametrize("nr", [1, 2, 4, 8, 16, 32, 64, 128, 256, 512])
def test_alloc_is_aligned_and_contiguous(space, nr):
    seen = set()
    for _ in range(3 * 512 // nr):
        e = space.alloc(nr)
        assert e % nr == 0
        assert index_of(space, e) + nr <= 512
        for x in range(e, e + nr):
            assert x in space
            assert x not in seen
            seen.add(x)
    assert len(space) == len(seen) == 3 * 512
    assert space.nr_clusters == 3
    assert sorted(seen) == list(range(512, 4 * 512))
    assert list(space.entries()) == sorted(seen)


def test_whole_cluster_allocation(small_space):
    s = small_space
    assert s.alloc(8) == 8
    assert s.alloc(8) == 16
    assert s.cluster_info(1)["count"] == 8
    assert s.cluster_info(1)["order"] == 3


def test_lowest_free_chunk_first(small_space):
    s = small_space
    got = alloc_n(s, 5)
    assert got == [8, 9, 10, 11, 12]
    s.free(11)
    s.free(9)
    assert s.alloc() == 9
    assert s.alloc() == 11
    assert s.alloc() == 13


def test_lowest_free_aligned_chunk(small_space):
    s = small_space
    a, b, c = s.alloc(2), s.alloc(2), s.alloc(2)
    assert (a, b, c) == (8, 10, 12)
    s.free(a)          # half of the first chunk: no aligned pair is free there
    assert s.alloc(2) == 14
    s.free(a + 1)
    assert s.alloc(2) == 8
    s.free(11)
    s.free(12)        # 11 and 12 are free, but they are not an aligned pair
    assert s.alloc(2) == 16
    assert s.nr_clusters == 2
    assert 11 not in s and 12 not in s


def test_new_descriptors_start_clean(small_space):
    s = small_space
    e = s.alloc()
    assert s.get_slot(e) == 0
    assert s.zswap_entry_load(e) is None
    assert s.swap_cache_get_folio(e) is None
    assert s.swap_cache_get_shadow(e) is None


def test_reused_descriptors_start_clean(small_space):
    s = small_space
    e = s.alloc(2)
    keep = s.alloc(2)   # keeps the cluster alive across the free
    f = Token("f")
    s.zswap_entry_store(e, Token("z"))
    s.swap_cache_add_folio(e, f)
    s.swap_cache_add_folio(e + 1, f)
    s.swap_cache_del_folio(e + 1, f, shadow=5)
    s.set_slot(e, 77)
    s.set_slot(e + 1, 78)
    s.free(e, 2)
    assert s.nr_clusters == 1
    assert s.alloc(2) == e
    for x in (e, e + 1):
        assert s.get_slot(x) == 0
        assert s.zswap_entry_load(x) is None
        assert s.swap_cache_get_folio(x) is None
        assert s.swap_cache_get_shadow(x) is None
    assert counters(s) == {"entries": 4, "clusters": 1, "zswap_entries": 0,
                           "swap_cache_folios": 0, "shadows": 0, "slots": 0}
    assert keep in s


def test_reused_cluster_id_starts_clean(small_space):
    s = small_space
    e = s.alloc(2, folio=Token())
    s.zswap_entry_store(e, Token())
    s.set_slot(e + 1, 3)
    s.free(e, 2)
    assert s.nr_clusters == 1        # empty, but kept by the thread that caches it
    assert s.alloc(2) == e
    for x in (e, e + 1):
        assert s.get_slot(x) == 0
        assert s.zswap_entry_load(x) is None
        assert s.swap_cache_get_folio(x) is None
    assert s.zswap_empty()


def test_alloc_with_folio(small_space):
    s = small_space
    f = Token("folio")
    e = s.alloc(4, folio=f)
    for x in range(e, e + 4):
        assert s.swap_cache_get_folio(x) is f
        assert s.swap_cache_get_shadow(x) is None
        assert s.zswap_entry_load(x) is None
        assert s.get_slot(x) == 0
    assert s.stats()["swap_cache_folios"] == 4
    g = Token("g")
    e2 = s.alloc(1, g)
    assert s.swap_cache_get_folio(e2) is g
    assert s.stats()["swap_cache_folios"] == 5
    e3 = s.alloc(folio=None)
    assert s.swap_cache_get_folio(e3) is None
    assert s.stats()["swap_cache_folios"] == 5


def test_alloc_default_nr_is_one(small_space):
    s = small_space
    e = s.alloc()
    assert s.cluster_info(1)["order"] == 0
    assert s.alloc(1) == e + 1


def test_partial_clusters_are_used_oldest_first(small_space):
    s = small_space
    assert alloc_n(s, 8) == list(range(8, 16))          # cluster 1 full
    assert s.alloc() == 16                              # cluster 2
    assert alloc_n(s, 7) == list(range(17, 24))         # cluster 2 full
    assert s.alloc() == 24                              # cluster 3
    s.free(20)      # cluster 2 was found full: back on the partial list
    s.free(10)      # cluster 1 too, after cluster 2
    assert alloc_n(s, 7) == list(range(25, 32))         # cached cluster 3
    # cluster 3 is full; the partial list holds 3 (full), 2, then 1
    assert s.alloc() == 20
    assert s.alloc() == 10
    with pytest.raises(SwapFullError):
        alloc_n(s, 9)


def test_full_cluster_rejoins_when_a_whole_chunk_is_free(small_space):
    """"Room" for a cluster of order k is a free aligned chunk of 2**k
    descriptors: a free that leaves only half a chunk does not put a cluster
    that was found full back on the partial list; the free that completes
    the chunk does, at the tail."""
    s = small_space
    assert [s.alloc(2) for _ in range(4)] == [8, 10, 12, 14]   # cluster 1
    assert s.alloc(2) == 16         # cluster 1 found full: cluster 2
    assert [s.alloc(2) for _ in range(3)] == [18, 20, 22]
    assert s.alloc(2) == 24         # cluster 2 found full: cluster 3
    assert [s.alloc(2) for _ in range(3)] == [26, 28, 30]
    s.free(8)           # half a chunk: cluster 1 has no room yet
    s.free(18, 2)       # cluster 2 has room: partial list 3, 2
    s.free(9)           # now cluster 1 has room: partial list 3, 2, 1
    # cluster 3 (cached, and the head) is full; then cluster 2, then 1
    assert s.alloc(2) == 18
    assert s.alloc(2) == 8
    assert s.alloc(2) == 32         # every cluster is full: cluster 4


def test_partial_cluster_is_used_before_a_new_one(small_space, worker):
    s = small_space
    first = alloc_n(s, 8)           # fills cluster 1
    assert s.alloc() == 16          # found full: dropped from the cache, on no list
    s.free(first[3])                # room again: it joins the partial list
    # a thread without a cached cluster takes the partial cluster, which
    # leaves the list and becomes that thread's own
    assert worker.call(s.alloc) == first[3]
    assert s.cluster_info(1)["refcount"] == 2
    assert s.nr_clusters == 2
    s.free(first[5])
    assert s.alloc() == 17          # this thread keeps to its own cluster 2


def test_released_cluster_ids_are_reused_lowest_first(small_space):
    s = small_space
    ones = alloc_n(s, 8)                # cluster 1, order 0
    twos = [s.alloc(2) for _ in range(4)]   # cluster 2, order 1
    assert s.alloc(1) == 24             # cluster 1 full: dropped, cluster 3
    assert s.alloc(2) == 32             # cluster 2 full: dropped, cluster 4
    # Empty and cached by no thread: released.
    for e in twos:
        s.free(e, 2)
    for e in ones:
        s.free(e)
    assert s.nr_clusters == 2
    with pytest.raises(KeyError):
        s.cluster_info(1)
    with pytest.raises(KeyError):
        s.cluster_info(2)
    assert s.alloc(8) == 8              # id 1 again, now of order 3
    assert s.cluster_info(1)["order"] == 3
    assert s.alloc(4) == 16             # id 2 again, order 2
    assert [s.cluster_info(i)["order"] for i in (1, 2, 3, 4)] == [3, 2, 0, 1]


def test_thread_cached_cluster_is_preferred(small_space, worker, worker2):
    s = small_space
    assert worker.call(s.alloc) == 8            # worker caches cluster 1
    assert s.alloc() == 16                      # this thread: a cluster of its own
    assert worker2.call(s.alloc) == 24          # and worker2 too
    assert worker.call(s.alloc) == 9
    assert s.alloc() == 17
    s.free(10 - 1)
    # the worker's cached cluster has room again: it is used first
    assert worker.call(s.alloc) == 9
    assert [s.cluster_info(i)["refcount"] for i in (1, 2, 3)] == [2, 2, 2]


def test_cached_cluster_is_per_order(small_space):
    s = small_space
    a = s.alloc(1)
    b = s.alloc(2)
    assert s.alloc(1) == a + 1
    assert s.alloc(2) == b + 2
    assert s.cluster_info(1)["refcount"] == 2
    assert s.cluster_info(2)["refcount"] == 2


def test_refcount_counts_thread_caches(small_space, worker):
    s = small_space
    e = s.alloc()
    assert s.cluster_info(1)["refcount"] == 2
    worker.call(s.alloc)                        # a cluster of its own
    assert s.cluster_info(1)["refcount"] == 2
    assert s.cluster_info(2)["refcount"] == 2
    # this thread replaces its order-0 cache only once it is full
    alloc_n(s, 7)
    assert s.cluster_info(1)["refcount"] == 2
    assert s.alloc() == 24
    assert s.cluster_info(1)["refcount"] == 1   # the map's alone
    assert s.cluster_info(3)["refcount"] == 2
    # an allocation of another order does not touch the order-0 caches
    worker.call(s.alloc, 2)
    assert s.cluster_info(2)["refcount"] == 2
    assert s.cluster_info(4)["refcount"] == 2
    assert e in s


def test_every_live_thread_has_its_own_cache(core):
    """One cache per thread, not per some slot that threads could share:
    65 live threads each allocate from a cluster of their own, which their
    cache refers to on top of the map."""
    s = core.VSwap()
    workers = [Worker() for _ in range(65)]
    try:
        got = [w.call(s.alloc) for w in workers]
        assert got == [i << 9 for i in range(1, 66)]
        assert all(s.cluster_info(i)["refcount"] == 2 for i in range(1, 66))
        assert [w.call(s.alloc) for w in workers] == [(i << 9) + 1 for i in range(1, 66)]
    finally:
        for w in workers:
            w.close()


def test_cached_cluster_that_empties_is_kept(small_space, worker):
    s = small_space
    e = s.alloc()
    s.free(e)
    # Not released under its cacher: the cache's reference keeps it.
    assert s.nr_clusters == 1
    info = s.cluster_info(1)
    assert (info["count"], info["refcount"]) == (0, 2)
    assert s.alloc() == e
    # An empty cluster that no thread caches is released at once.
    rest = alloc_n(s, 7)
    assert s.alloc() == 16              # cluster 1 dropped from the cache
    for x in [e] + rest:
        s.free(x)
    assert s.nr_clusters == 1
    with pytest.raises(KeyError):
        s.cluster_info(1)
    # the id comes back for a new cluster of this worker's
    assert worker.call(s.alloc, 2) == 8
    assert s.cluster_info(1)["refcount"] == 2


def test_swap_full(core):
    s = core.VSwap(cluster_shift=3, max_clusters=1)
    assert alloc_n(s, 8) == list(range(8, 16))
    with pytest.raises(SwapFullError, match=r"^no cluster id left: all 1 "
                       r"clusters are in use$"):
        s.alloc()
    with pytest.raises(SwapFullError):
        s.alloc(2)
    assert len(s) == 8 and s.nr_clusters == 1
    st = s.stats()
    assert (st["used"], st["alloc_reject"]) == (8, 2)


def test_swap_full_message_names_max_clusters(small_space):
    s = small_space
    for nr in (1, 2, 4, 8):
        s.alloc(nr)
    with pytest.raises(SwapFullError, match=r"all 4 clusters are in use"):
        s.alloc(8)


def test_swap_full_is_a_memory_error(small_space):
    for nr in (1, 2, 4, 8):
        small_space.alloc(nr)
    with pytest.raises(MemoryError):
        small_space.alloc(8)


def test_room_after_swap_full_is_found(core, worker):
    s = core.VSwap(cluster_shift=3, max_clusters=1)
    alloc_n(s, 8)
    with pytest.raises(SwapFullError):
        s.alloc()
    s.free(12)
    # the cluster was found full and dropped from this thread's cache; the
    # free put it on the partial list, so a thread without a cached cluster
    # finds it, and makes it its own
    assert worker.call(s.alloc) == 12
    s.free(9)
    with pytest.raises(SwapFullError):
        s.alloc()                   # the worker's now: not for this thread
    assert worker.call(s.alloc) == 9


def test_last_cluster_id_is_usable(small_space):
    s = small_space
    got = [s.alloc(8) for _ in range(4)]
    assert got == [8, 16, 24, 32]
    assert 39 in s
    assert s.get_slot(39) == 0
    assert s.cluster_info(4)["count"] == 8
    with pytest.raises(SwapFullError):
        s.alloc()


def test_cluster_shift_one(core):
    s = core.VSwap(cluster_shift=1, max_clusters=3)
    assert s.alloc(2) == 2
    assert s.alloc() == 4
    assert s.alloc() == 5
    assert s.alloc() == 6
    with pytest.raises(SwapFullError):
        s.alloc(2)


# --------------------------------------------------------------------------
# free


def test_free_drops_everything(small_space):
    s = small_space
    f = Token("f")
    z0, z1 = Token("z0"), Token("z1")
    base = sys.getrefcount(f), sys.getrefcount(z0), sys.getrefcount(z1)
    e = s.alloc(4, folio=f)
    s.zswap_entry_store(e, z0)
    s.zswap_entry_store(e + 1, z1)
    s.swap_cache_del_folio(e + 2, f, shadow=123)
    s.set_slot(e + 3, 99)
    assert counters(s) == {"entries": 4, "clusters": 1, "zswap_entries": 2,
                           "swap_cache_folios": 3, "shadows": 1, "slots": 1}
    s.free(e, 4)
    # The emptied cluster stays, kept by the thread that caches it.
    assert counters(s) == {"entries": 0, "clusters": 1, "zswap_entries": 0,
                           "swap_cache_folios": 0, "shadows": 0, "slots": 0}
    assert s.zswap_empty()
    assert (sys.getrefcount(f), sys.getrefcount(z0),
            sys.getrefcount(z1)) == base


def test_free_releases_empty_cluster(small_space):
    s = small_space
    e = s.alloc()
    rest = alloc_n(s, 7)
    keep = s.alloc()                    # cluster 1 full: dropped from the cache
    assert s.nr_clusters == 2 and len(s) == 9
    for x in rest:
        s.free(x)
    s.free(e)
    assert s.nr_clusters == 1 and len(s) == 1
    assert e not in s
    assert list(s.entries()) == [keep]
    with pytest.raises(KeyError):
        s.cluster_info(1)
    with pytest.raises(InvalidEntryError):
        s.zswap_entry_load(e)
    assert keep in s


def test_free_keeps_cluster_while_entries_remain(small_space):
    s = small_space
    a, b = s.alloc(), s.alloc()
    s.free(a)
    assert s.nr_clusters == 1
    assert s.cluster_info(1)["count"] == 1
    assert a not in s and b in s
    s.free(b)
    assert s.nr_clusters == 1           # cached: kept


def test_free_subrange_of_a_large_allocation(small_space):
    s = small_space
    f = Token()
    e = s.alloc(4, folio=f)
    s.set_slot(e + 3, 5)
    s.free(e + 1, 2)
    assert [x in s for x in range(e, e + 4)] == [True, False, False, True]
    assert s.swap_cache_get_folio(e) is f
    assert s.swap_cache_get_folio(e + 3) is f
    assert s.get_slot(e + 3) == 5
    assert len(s) == 2
    assert s.cluster_info(1)["count"] == 2


def test_free_range_spanning_several_allocations(small_space):
    s = small_space
    got = alloc_n(s, 6)
    s.free(got[1], 4)
    assert list(s.entries()) == [got[0], got[5]]
    s.free(got[0])
    s.free(got[5])
    assert len(s) == 0 and s.nr_clusters == 1


def test_free_whole_cluster_range(space):
    e = space.alloc(512)
    space.free(e, 512)
    assert len(space) == 0 and space.nr_clusters == 1
    assert space.alloc(512) == e


def test_free_accepts_index_objects(small_space):
    s = small_space
    for make in index_types():
        a, b = s.alloc(), s.alloc()
        s.free(make(a))
        s.free(make(b), 1)
        assert len(s) == 0


# --------------------------------------------------------------------------
# zswap entries


def test_zswap_store_load_erase(small_space):
    s = small_space
    e = s.alloc()
    z1, z2 = Token("z1"), Token("z2")
    assert s.zswap_entry_load(e) is None
    assert s.zswap_entry_store(e, z1) is None
    assert s.zswap_entry_load(e) is z1
    assert s.zswap_entry_store(e, z2) is z1
    assert s.zswap_entry_load(e) is z2
    assert s.zswap_entry_erase(e) is z2
    assert s.zswap_entry_load(e) is None
    assert s.zswap_entry_erase(e) is None
    assert s.zswap_entry_load(e) is None


def test_zswap_store_same_object_twice(small_space):
    s = small_space
    e = s.alloc()
    z = Token()
    assert s.zswap_entry_store(e, z) is None
    assert s.zswap_entry_store(e, z) is z
    assert s.stats()["zswap_entries"] == 1


def test_zswap_entries_are_any_object(small_space):
    s = small_space
    got = alloc_n(s, 6)
    values = [0, False, "", (), 3.5, s]
    for e, v in zip(got, values):
        assert s.zswap_entry_store(e, v) is None
    for e, v in zip(got, values):
        assert s.zswap_entry_load(e) is v
    assert s.stats()["zswap_entries"] == 6
    assert not s.zswap_empty()
    for e, v in zip(got, values):
        assert s.zswap_entry_erase(e) is v
    assert s.zswap_empty()


def test_zswap_counts_descriptors(small_space):
    s = small_space
    got = alloc_n(s, 9)
    z = Token()
    for e in got:
        s.zswap_entry_store(e, z)
    assert s.stats()["zswap_entries"] == 9
    assert s.cluster_info(1)["zswap_entries"] == 8
    assert s.cluster_info(2)["zswap_entries"] == 1
    s.zswap_entry_erase(got[0])
    assert s.cluster_info(1)["zswap_entries"] == 7
    assert s.stats()["zswap_entries"] == 8


def test_zswap_empty_is_exact(small_space):
    s = small_space
    assert s.zswap_empty()
    a = s.alloc()
    b = s.alloc(2)
    # clusters exist, but no descriptor holds a zswap entry
    assert s.zswap_empty()
    s.zswap_entry_store(b + 1, Token())
    assert not s.zswap_empty()
    s.zswap_entry_store(a, Token())
    s.zswap_entry_erase(b + 1)
    assert not s.zswap_empty()
    s.zswap_entry_erase(a)
    assert s.zswap_empty()
    s.zswap_entry_store(a, Token())
    s.free(a)       # free drops the zswap entry
    assert s.zswap_empty()
    assert s.nr_clusters == 2     # both kept by this thread's caches


def test_zswap_empty_ignores_its_argument(small_space):
    s = small_space
    a = s.alloc()
    b = s.alloc()
    s.zswap_entry_store(a, Token())
    assert s.zswap_empty(b) is False
    assert s.zswap_empty(a) is False
    assert s.zswap_empty(None) is False
    s.zswap_entry_erase(a)
    assert s.zswap_empty(a) is True
    assert s.zswap_empty(b) is True


def test_zswap_does_not_touch_swap_cache(small_space):
    s = small_space
    f = Token("f")
    e = s.alloc(folio=f)
    s.zswap_entry_store(e, Token("z"))
    s.zswap_entry_erase(e)
    assert s.swap_cache_get_folio(e) is f


def test_zswap_store_releases_the_slot(small_space):
    # One backing per descriptor (v6 zswap_entry_store() -> release_backing()).
    s = small_space
    e = s.alloc()
    s.set_slot(e, 7)
    z = Token("z")
    assert s.zswap_entry_store(e, z) is None
    assert s.get_slot(e) == 0
    assert s.zswap_entry_load(e) is z
    assert s.set_slot(e, 9) == 0         # the zswap entry goes in its turn
    assert s.zswap_entry_load(e) is None
    assert s.get_slot(e) == 9


# --------------------------------------------------------------------------
# swap cache and shadows


def test_swap_cache_add_get_del(small_space):
    s = small_space
    e = s.alloc()
    f = Token("f")
    assert s.swap_cache_get_folio(e) is None
    assert s.swap_cache_add_folio(e, f) is None
    assert s.swap_cache_get_folio(e) is f
    assert s.swap_cache_get_shadow(e) is None
    assert s.stats()["swap_cache_folios"] == 1
    assert s.swap_cache_del_folio(e, f) is None
    assert s.swap_cache_get_folio(e) is None
    assert s.swap_cache_get_shadow(e) is None
    assert s.stats()["swap_cache_folios"] == 0
    assert s.stats()["shadows"] == 0


def test_swap_cache_del_leaves_shadow(small_space):
    s = small_space
    e = s.alloc()
    f = Token()
    s.swap_cache_add_folio(e, f)
    s.swap_cache_del_folio(e, f, shadow=0xabc)
    assert s.swap_cache_get_folio(e) is None
    assert s.swap_cache_get_shadow(e) == 0xabc
    assert s.stats()["shadows"] == 1
    assert s.stats()["swap_cache_folios"] == 0


def test_shadow_zero_is_a_shadow(small_space):
    s = small_space
    e = s.alloc()
    f = Token()
    s.swap_cache_add_folio(e, f)
    s.swap_cache_del_folio(e, f, 1, 0)
    assert s.swap_cache_get_shadow(e) == 0
    assert s.swap_cache_get_shadow(e) is not None
    assert s.stats()["shadows"] == 1
    assert s.swap_cache_add_folio(e, f) == 0
    assert s.swap_cache_get_shadow(e) is None


def test_largest_shadow(small_space):
    s = small_space
    e = s.alloc()
    f = Token()
    s.swap_cache_add_folio(e, f)
    s.swap_cache_del_folio(e, f, shadow=2 ** 62 - 1)
    assert s.swap_cache_get_shadow(e) == 2 ** 62 - 1


def test_swap_cache_add_replaces_shadows(small_space):
    s = small_space
    e = s.alloc(4)
    f, g = Token("f"), Token("g")
    s.swap_cache_add_folio(e, f, nr=4)
    s.swap_cache_del_folio(e, f, nr=2, shadow=11)
    s.swap_cache_del_folio(e + 2, f, nr=2, shadow=22)
    assert [s.swap_cache_get_shadow(x) for x in range(e, e + 4)] == \
        [11, 11, 22, 22]
    # returns the shadow of the first entry of the range
    assert s.swap_cache_add_folio(e + 1, g, nr=2) == 11
    assert [s.swap_cache_get_shadow(x) for x in range(e, e + 4)] == \
        [11, None, None, 22]
    assert [s.swap_cache_get_folio(x) for x in range(e, e + 4)] == \
        [None, g, g, None]
    assert s.swap_cache_add_folio(e + 3, g) == 22
    assert s.stats()["shadows"] == 1
    assert s.stats()["swap_cache_folios"] == 3


def test_swap_cache_add_returns_none_without_shadow_at_entry(small_space):
    s = small_space
    e = s.alloc(2)
    f = Token()
    s.swap_cache_add_folio(e + 1, f)
    s.swap_cache_del_folio(e + 1, f, shadow=9)
    # the first entry holds no shadow; the second one's is dropped anyway
    assert s.swap_cache_add_folio(e, f, nr=2) is None
    assert s.swap_cache_get_shadow(e + 1) is None
    assert s.swap_cache_get_folio(e + 1) is f


def test_swap_cache_large_folio(small_space):
    s = small_space
    f, g = Token("f"), Token("g")
    e = s.alloc(8, folio=f)
    s.swap_cache_replace_folio(e, f, g, nr=8)
    assert all(s.swap_cache_get_folio(x) is g for x in range(e, e + 8))
    s.swap_cache_del_folio(e + 4, g, nr=4, shadow=3)
    assert [s.swap_cache_get_shadow(x) for x in range(e, e + 8)] == \
        [None] * 4 + [3] * 4
    s.swap_cache_replace_folio(e, g, f, nr=4)
    assert all(s.swap_cache_get_folio(x) is f for x in range(e, e + 4))
    assert s.stats()["swap_cache_folios"] == 4
    assert s.stats()["shadows"] == 4


def test_swap_cache_replace(small_space):
    s = small_space
    e = s.alloc(2)
    old, new = Token("old"), Token("new")
    s.swap_cache_add_folio(e, old, 2)
    assert s.swap_cache_replace_folio(e, old, new, 2) is None
    assert s.swap_cache_get_folio(e) is new
    assert s.swap_cache_get_folio(e + 1) is new
    s.swap_cache_replace_folio(e + 1, new, old)
    assert s.swap_cache_get_folio(e) is new
    assert s.swap_cache_get_folio(e + 1) is old
    s.swap_cache_replace_folio(e, new, new)
    assert s.swap_cache_get_folio(e) is new
    assert s.stats()["swap_cache_folios"] == 2


def test_swap_cache_identity_not_equality(small_space):
    s = small_space
    e = s.alloc()
    f, twin = Token(), Token()
    assert f == twin
    s.swap_cache_add_folio(e, f)
    with pytest.raises(SwapCacheError):
        s.swap_cache_del_folio(e, twin)
    with pytest.raises(SwapCacheError):
        s.swap_cache_replace_folio(e, twin, Token())
    assert s.swap_cache_get_folio(e) is f
    s.swap_cache_del_folio(e, f)
    assert s.swap_cache_get_folio(e) is None


def test_int_folio_is_a_folio_not_a_shadow(small_space):
    s = small_space
    e = s.alloc(2)
    s.swap_cache_add_folio(e, 5)
    assert s.swap_cache_get_folio(e) == 5
    assert s.swap_cache_get_shadow(e) is None
    assert s.stats()["swap_cache_folios"] == 1
    assert s.stats()["shadows"] == 0
    s.swap_cache_clear_shadow(e)
    assert s.swap_cache_get_folio(e) == 5
    with pytest.raises(SwapCacheError):
        s.swap_cache_add_folio(e, 6)
    s.swap_cache_del_folio(e, 5, shadow=5)
    assert s.swap_cache_get_folio(e) is None
    assert s.swap_cache_get_shadow(e) == 5
    e2 = s.alloc(folio=0)
    assert s.swap_cache_get_folio(e2) == 0
    assert s.swap_cache_get_shadow(e2) is None
    assert s.stats()["swap_cache_folios"] == 1


def test_swap_cache_get_folio_is_none_for_shadow(small_space):
    s = small_space
    e = s.alloc()
    f = Token()
    s.swap_cache_add_folio(e, f)
    s.swap_cache_del_folio(e, f, shadow=1)
    assert s.swap_cache_get_folio(e) is None
    assert s.swap_cache_get_shadow(e) == 1


def test_swap_cache_clear_shadow(small_space):
    s = small_space
    f, g = Token("f"), Token("g")
    e = s.alloc(4, folio=f)
    s.swap_cache_del_folio(e, f, shadow=1)
    s.swap_cache_del_folio(e + 2, f, shadow=2)
    s.swap_cache_del_folio(e + 3, f)
    s.swap_cache_replace_folio(e + 1, f, g)
    # e: shadow 1, e+1: folio g, e+2: shadow 2, e+3: nothing
    assert s.swap_cache_clear_shadow(e, nr=4) is None
    assert [s.swap_cache_get_shadow(x) for x in range(e, e + 4)] == [None] * 4
    assert [s.swap_cache_get_folio(x) for x in range(e, e + 4)] == \
        [None, g, None, None]
    assert s.stats()["shadows"] == 0
    assert s.stats()["swap_cache_folios"] == 1
    s.swap_cache_clear_shadow(e + 1)
    assert s.swap_cache_get_folio(e + 1) is g


def test_swap_cache_clear_shadow_on_a_single_entry(small_space):
    s = small_space
    f = Token()
    e = s.alloc(2, folio=f)
    s.swap_cache_del_folio(e, f, nr=2, shadow=4)
    s.swap_cache_clear_shadow(e + 1)
    assert s.swap_cache_get_shadow(e) == 4
    assert s.swap_cache_get_shadow(e + 1) is None


@pytest.mark.parametrize("backing_kind", ["zswap", "slot"])
def test_swap_cache_does_not_touch_zswap_or_slot(small_space, backing_kind):
    s = small_space
    e = s.alloc()
    z = Token("z")
    if backing_kind == "zswap":
        s.zswap_entry_store(e, z)
    else:
        s.set_slot(e, 3)
    f = Token("f")
    s.swap_cache_add_folio(e, f)
    s.swap_cache_replace_folio(e, f, Token("g"))
    s.swap_cache_del_folio(e, s.swap_cache_get_folio(e), shadow=8)
    s.swap_cache_clear_shadow(e)
    if backing_kind == "zswap":
        assert s.zswap_entry_load(e) is z
        assert s.get_slot(e) == 0
    else:
        assert s.zswap_entry_load(e) is None
        assert s.get_slot(e) == 3


# --------------------------------------------------------------------------
# slots


def test_slots(small_space):
    s = small_space
    e = s.alloc(2)
    assert s.get_slot(e) == 0
    assert s.set_slot(e, 41) == 0
    assert s.get_slot(e) == 41
    assert s.set_slot(e, 2 ** 64 - 1) == 41
    assert s.get_slot(e) == 2 ** 64 - 1
    assert s.get_slot(e + 1) == 0
    assert s.stats()["slots"] == 1
    s.set_slot(e + 1, 1)
    assert s.stats()["slots"] == 2
    assert s.set_slot(e, 0) == 2 ** 64 - 1
    assert s.stats()["slots"] == 1
    assert s.set_slot(e, 0) == 0
    assert s.stats()["slots"] == 1


def test_set_slot_accepts_int_subclass(small_space):
    s = small_space
    e = s.alloc()
    s.set_slot(e, IntSubclass(12))
    assert s.get_slot(e) == 12


# --------------------------------------------------------------------------
# entries given as __index__ objects


def test_every_entry_method_accepts_index_objects(small_space):
    s = small_space
    e = s.alloc(2)
    for conv in index_types():
        x = conv(e)
        f, z = Token(), Token()
        assert s.zswap_entry_store(x, z) is None
        assert s.zswap_entry_load(x) is z
        assert s.zswap_entry_erase(x) is z
        assert s.swap_cache_add_folio(x, f) is None
        assert s.swap_cache_get_folio(x) is f
        g = Token()
        s.swap_cache_replace_folio(x, f, g)
        s.swap_cache_del_folio(x, g, shadow=6)
        assert s.swap_cache_get_shadow(x) == 6
        s.swap_cache_clear_shadow(x)
        assert s.swap_cache_get_shadow(x) is None
        assert s.set_slot(x, 9) in (0, 9)
        assert s.get_slot(x) == 9
    s.free(index_types()[-1](e), 2)
    assert len(s) == 0


# --------------------------------------------------------------------------
# introspection


def test_len_and_nr_clusters(small_space):
    s = small_space
    assert len(s) == 0 and s.nr_clusters == 0
    s.alloc(4)
    s.alloc(1)
    s.alloc(1)
    assert len(s) == 6
    assert s.nr_clusters == 2


def test_contains(small_space):
    s = small_space
    e = s.alloc(2)
    assert e in s and e + 1 in s
    assert e + 2 not in s
    for make in index_types():
        assert make(e) in s
        assert make(e + 2) not in s
    for other in (0, -1, -e, 1, 7, 2 ** 64, 2 ** 200, -2 ** 200,
                  (s.max_clusters + 1) << 3, float(e), str(e), None, True,
                  False, [e], (e,), object(), 1j):
        assert (other in s) is False


def test_contains_after_free(small_space):
    s = small_space
    e = s.alloc()
    keep = s.alloc()
    s.free(e)
    assert e not in s
    assert keep in s


def test_entries_ascending(small_space):
    s = small_space
    a = s.alloc(4)          # cluster 1
    s.alloc(4)
    x = s.alloc(4)          # cluster 1 full: dropped, cluster 2
    b = s.alloc(1)          # cluster 3
    s.free(a, 4)
    s.free(a + 4, 4)        # cluster 1 released: id 1 is free again
    rest = alloc_n(s, 7)    # fills cluster 3
    c = s.alloc(1)          # a new cluster with the lowest id: 1
    assert cluster_of(s, c) == 1 and c < b
    got = list(s.entries())
    assert got == sorted([b, c] + rest + list(range(x, x + 4)))
    assert got[0] == c


def test_entries_is_iterable_twice(small_space):
    s = small_space
    got = alloc_n(s, 3)
    it = s.entries()
    assert iter(it) is it
    assert list(it) == got
    assert list(it) == []
    assert list(s.entries()) == got


def test_entries_survives_changes_during_the_walk(core):
    s = core.VSwap(cluster_shift=3, max_clusters=64)
    live = alloc_n(s, 40)                  # clusters 1..5
    stable = set(live) - set(range(24, 48))
    touched = set(range(24, 48))
    it = s.entries()
    first = next(it)
    assert first == 8
    for e in range(24, 48):
        s.free(e)                          # releases clusters 3, 4 and 5
    added = alloc_n(s, 20)
    touched |= set(added)
    rest = list(it)
    seen = [first] + rest
    assert seen == sorted(seen)
    assert len(set(seen)) == len(seen)
    assert stable <= set(seen)
    assert set(seen) <= stable | touched


def test_cluster_info(small_space):
    s = small_space
    e = s.alloc(2)
    s.alloc(2)
    s.zswap_entry_store(e, Token())
    info = s.cluster_info(1)
    assert set(info) == CLUSTER_INFO_KEYS
    assert info["id"] == 1
    assert info["order"] == 1
    assert info["count"] == 4
    assert info["refcount"] == 2
    assert info["zswap_entries"] == 1
    assert info["lock_acquisitions"] >= 1
    assert info["lock_contended"] == 0
    assert backing(info) == {"none": 3, "zero": 0, "zswap": 1, "swapfile": 0, "folio": 0}
    assert all(type(v) is int for v in info.values())


def test_cluster_info_count_follows_frees(small_space):
    s = small_space
    e = s.alloc(4)
    s.free(e + 1)
    assert s.cluster_info(1)["count"] == 3
    s.alloc(4)
    assert s.cluster_info(1)["count"] == 7


def test_cluster_info_missing(small_space):
    s = small_space
    for cid in (0, 1, 2, 4, 5, -1, 2 ** 70):
        with pytest.raises(KeyError):
            s.cluster_info(cid)
    s.alloc()
    s.cluster_info(1)
    with pytest.raises(KeyError):
        s.cluster_info(2)


def test_stats_of_an_empty_space(core):
    s = core.VSwap(cluster_shift=4, max_clusters=9)
    st = s.stats()
    assert set(st) == STAT_KEYS
    assert st == {"entries": 0, "used": 0, "alloc_reject": 0,
                  "clusters": 0, "zswap_entries": 0,
                  "swap_cache_folios": 0, "shadows": 0, "slots": 0,
                  "lock_acquisitions": 0, "lock_contended": 0,
                  "cluster_size": 16, "max_clusters": 9,
                  "backing_none": 0, "backing_zero": 0, "backing_zswap": 0,
                  "backing_swapfile": 0, "backing_folio": 0}


def test_stats_values(small_space):
    s = small_space
    f = Token()
    e = s.alloc(4, folio=f)
    e1 = s.alloc()
    e2 = s.alloc()
    s.zswap_entry_store(e1, Token())
    s.zswap_entry_store(e2, Token())
    s.zswap_entry_store(e, Token())
    s.swap_cache_del_folio(e, f, shadow=1)
    s.swap_cache_del_folio(e + 1, f)
    s.set_slot(e2, 10)                  # releases e2's zswap entry
    st = s.stats()
    assert set(st) == STAT_KEYS
    assert all(type(v) is int for v in st.values())
    assert {k: st[k] for k in ("entries", "clusters", "zswap_entries",
                                "swap_cache_folios", "shadows", "slots",
                                "cluster_size", "max_clusters")} == {
        "entries": 6, "clusters": 2, "zswap_entries": 2,
        "swap_cache_folios": 2, "shadows": 1, "slots": 1,
        "cluster_size": 8, "max_clusters": 4}
    # e: zswap; e + 1: its folio left, nothing; e + 2, e + 3: their folio.
    assert backing(st) == {"none": 1, "zero": 0, "zswap": 2, "swapfile": 1, "folio": 2}
    assert st["lock_contended"] == 0


def test_lock_counters(small_space):
    s = small_space
    e = s.alloc()
    before = s.stats()["lock_acquisitions"]
    assert before >= 1
    c_before = s.cluster_info(1)["lock_acquisitions"]
    s.zswap_entry_load(e)
    s.get_slot(e)
    after = s.stats()["lock_acquisitions"]
    assert after >= before + 2
    assert s.cluster_info(1)["lock_acquisitions"] >= c_before + 2
    assert s.cluster_info(1)["lock_acquisitions"] <= s.stats()[
        "lock_acquisitions"]
    s.free(e)       # the cluster goes; its lock use stays counted
    assert s.stats()["lock_acquisitions"] >= after + 1
    assert s.stats()["lock_contended"] == 0


def test_repr(space, core_name):
    assert repr(space) == ("<VSwap core=%s entries=0 clusters=0 "
                           "zswap_entries=0 cluster_size=512>" % core_name)
    e = space.alloc()
    space.alloc()
    space.alloc()
    assert repr(space) == ("<VSwap core=%s entries=3 clusters=1 "
                           "zswap_entries=0 cluster_size=512>" % core_name)
    space.zswap_entry_store(e, Token())
    space.alloc(2)
    assert repr(space) == ("<VSwap core=%s entries=5 clusters=2 "
                           "zswap_entries=1 cluster_size=512>" % core_name)


def test_repr_small_clusters(small_space, core_name):
    small_space.alloc(8)
    assert repr(small_space) == (
        "<VSwap core=%s entries=8 clusters=1 zswap_entries=0 "
        "cluster_size=8>" % core_name)


# --------------------------------------------------------------------------
# references


def test_destroying_a_space_releases_its_objects(core):
    s = core.VSwap(cluster_shift=3)
    f, z = Token("f"), Token("z")
    base_f, base_z = sys.getrefcount(f), sys.getrefcount(z)
    e = s.alloc(4, folio=f)
    s.zswap_entry_store(e, z)
    assert sys.getrefcount(f) == base_f + 4
    assert sys.getrefcount(z) == base_z + 1
    del s
    gc.collect()
    assert sys.getrefcount(f) == base_f
    assert sys.getrefcount(z) == base_z
