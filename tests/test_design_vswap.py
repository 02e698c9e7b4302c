"""The ``vswap`` design on its own: v6's layout (24-byte descriptors in
12,392-byte clusters), bytes per used slot for each backing, the reverse
map only for disk-backed slots, the locks each call takes, allocations
cross-checked with tracemalloc, and a threaded stress with invariants."""

import random
import sys
import threading
import tracemalloc
from array import array

import pytest

from cores import core_names
from vswapfast.designs import design_class
from vswapfast.errors import SwapFullError

DESC = 24
CLUSTER = 12392              # struct vswap_cluster: 40-byte head, bitmap, 512 descriptors
TABLE = 4096                 # a device cluster's swap table (the reverse map)
NODE = 576

compiled_only = pytest.mark.skipif(
    "compiled" not in core_names(), reason="VSWAPFAST_PURE=1: the compiled core is not tested")


@pytest.fixture(params=core_names())
def D(request):
    return design_class("vswap", request.param)


def static_bytes(n):
    """The device: two bitmaps (whole longs) and 32-byte cluster_info."""
    return 2 * (-(-n // 64) * 8) + -(-n // 512) * 32


def test_layout(D):
    with D(4096) as d:
        assert d.metadata_bytes() == static_bytes(4096)
        d.folio_alloc_swap(1)
        s = d.stats()
        assert s["bytes_vswap_cluster"] == CLUSTER
        assert s["bytes_swp_desc"] == 512 * DESC
        assert CLUSTER - 512 * DESC == 40 + 64          # head and bitmap
        assert s["bytes_cluster_map"] == 0               # one cluster: in the head
        assert d.metadata_bytes() == static_bytes(4096) + CLUSTER


def test_entries_and_clusters(D):
    """Cluster 0 never gives out its slot 0: entry 0 is never a virtual
    slot; entries fill clusters in order, lowest free id first."""
    with D(1 << 13) as d:
        es = d.swap_out_many(511 + 512 + 3, "zero")
        assert list(es[:3]) == [1, 2, 3]
        assert es[510] == 511 and es[511] == 512 and es[-1] == 512 * 2 + 2
        assert d.stats()["bytes_vswap_cluster"] == 3 * CLUSTER
        # a map of ids 0..2 needs one node
        assert d.stats()["bytes_cluster_map"] == NODE


@pytest.mark.parametrize("backing", ["zswap", "zero", "disk"])
def test_bytes_per_used_slot(D, backing):
    """24 bytes of descriptor per virtual slot (in whole clusters), and a
    4 KiB swap table per device cluster holding disk-backed slots."""
    n = 8 * 512
    with D(n) as d:
        base = d.metadata_bytes()
        es = d.swap_out_many(8 * 512 - 1, backing)
        s = d.stats()
        extra = 8 * CLUSTER + NODE
        if backing == "disk":
            extra += 8 * TABLE
            assert s["bytes_reverse_map"] == 8 * TABLE
        else:
            assert s["bytes_reverse_map"] == 0
        assert d.metadata_bytes() - base == extra
        assert s["bytes_swp_desc"] // len(es) == DESC
        d.swap_free_many(es)
        s = d.stats()
        assert s["used"] == 0 and s["bytes_reverse_map"] == 0
        assert s["bytes_vswap_cluster"] == 0
        # freed clusters are kept, type-stable, and reused
        assert s["bytes_vswap_cluster_free"] == 8 * CLUSTER
        d.swap_out_many(8 * 512 - 1, backing)
        assert d.metadata_bytes() - base == extra


def test_reverse_map_only_for_disk(D):
    with D(4096) as d:
        z = d.swap_out_many(100, "zswap")
        assert d.stats()["bytes_reverse_map"] == 0
        slot = d.swap_writeout(z[0])
        assert d.get_slot(z[0]) == slot and d.zswap_entry_load(z[0]) is None
        assert d.stats()["bytes_reverse_map"] == TABLE
        assert d.swap_writeout(z[0]) == slot              # already disk-backed
        d.zswap_entry_store(z[0], 9)                      # one backing: the slot is freed
        assert d.get_slot(z[0]) is None
        assert d.stats()["bytes_reverse_map"] == 0
        d.swap_writeout(z[1])
        d.set_zero(z[1])
        assert d.stats()["bytes_reverse_map"] == 0 and d.is_zero(z[1])


def test_virtual_space_bound(D):
    """Virtual slots are bounded by the device's usable slots; a disk
    writeout needs a device slot."""
    with D(8) as d:
        es = [d.folio_alloc_swap(1) for _ in range(7)]
        with pytest.raises(SwapFullError, match="no free virtual swap slot"):
            d.folio_alloc_swap(1)
        for e in es:
            d.swap_writeout(e)
        assert sorted(d.get_slot(e) for e in es) == list(range(1, 8))


def test_locks_per_operation(D):
    with D(1 << 14) as d:
        def taken(call, *args):
            before = d.stats()
            call(*args)
            after = d.stats()
            return {k: after[k] - before[k] for k in
                    ("lock_acquisitions", "cluster_lock_acquisitions", "map_lock_acquisitions",
                     "allocator_lock_acquisitions", "device_lock_acquisitions",
                     "swap_cluster_lock_acquisitions", "lockless_loads")}
        # the first allocation: the partial list and xa_alloc under the
        # map's xa_lock, the new cluster reset and filled, then cached
        t = taken(d.folio_alloc_swap, 1)
        assert t["map_lock_acquisitions"] == 2 and t["allocator_lock_acquisitions"] == 2
        e = d.folio_alloc_swap(2)
        # from the cached cluster: the allocator lock and three cluster
        # locks (vswap_alloc, mem_cgroup_record_swap, swap_cache_add_folio)
        t = taken(d.folio_alloc_swap, 3)
        assert t == {"lock_acquisitions": 4, "cluster_lock_acquisitions": 3,
                     "map_lock_acquisitions": 0, "allocator_lock_acquisitions": 1,
                     "device_lock_acquisitions": 0, "swap_cluster_lock_acquisitions": 0,
                     "lockless_loads": 2}
        # every descriptor read and write: one map lookup, one cluster lock
        for call, args in ((d.zswap_entry_store, (e, 5)), (d.zswap_entry_load, (e,)),
                           (d.swap_cache_get_folio, (e,)), (d.swap_cache_get_shadow, (e,)),
                           (d.is_zero, (e,)), (d.get_slot, (e,)), (d.swap_count, (e,)),
                           (d.swap_duplicate, (e,)), (d.zswap_entry_erase, (e,)),
                           (d.swap_free, (e,))):
            t = taken(call, *args)
            assert t["lock_acquisitions"] == t["cluster_lock_acquisitions"] == 1, call
            assert t["lockless_loads"] == 1, call
        t = taken(d.swap_cache_del_folio, e, 2, 7)
        assert t["lock_acquisitions"] == 2 and t["lockless_loads"] == 2
        t = taken(d.swap_cache_add_folio, e, 4)
        assert t["lock_acquisitions"] == 2
        # the first writeout of a device cluster allocates its swap table
        # with the locks dropped, then retries
        t = taken(d.swap_writeout, e)
        assert t["cluster_lock_acquisitions"] == 2 and t["device_lock_acquisitions"] == 2
        assert t["swap_cluster_lock_acquisitions"] == 3
        e2 = d.folio_alloc_swap(9)
        t = taken(d.swap_writeout, e2)
        assert t["cluster_lock_acquisitions"] == 2 and t["device_lock_acquisitions"] == 1
        assert t["swap_cluster_lock_acquisitions"] == 2   # swap_slot_alloc, vswap_rmap_set
        # freeing a disk-backed entry: the vswap lock dropped around the
        # slot's release (ci->lock)
        d.swap_cache_del_folio(e2, 9)
        t = taken(d.swap_free, e2)
        assert t["cluster_lock_acquisitions"] == 2 and t["swap_cluster_lock_acquisitions"] == 1
        entries = d.swap_out_many(3 * 512, "zswap")
        runs = len({x >> 9 for x in entries})
        out = array("Q", bytes(8 * len(entries)))
        t = taken(d.zswap_entry_load_many, entries, out, False)
        assert t["cluster_lock_acquisitions"] == len(entries) == t["lockless_loads"]
        t = taken(d.zswap_entry_load_many, entries, out, True)
        assert t["cluster_lock_acquisitions"] == runs == t["lockless_loads"]
        assert all(out)


def test_zswap_in_the_descriptor(D):
    with D(4096) as d:
        e = d.folio_alloc_swap(3)
        before = d.metadata_bytes()
        assert d.zswap_entry_store(e, 11) is None
        assert d.metadata_bytes() == before                  # no zswap tree
        assert d.stats()["zswap_entries"] == 1 and not d.zswap_empty()
        d.set_zero(e)                                        # one backing
        assert d.zswap_entry_load(e) is None and d.zswap_empty()
        assert d.zswap_entry_store(e, 12) is None
        assert not d.is_zero(e)


@compiled_only
def test_metadata_bytes_match_tracemalloc():
    """Every allocation of the compiled design is counted."""
    D = design_class("vswap", "compiled")
    n = 16 * 512
    tracemalloc.start()
    try:
        s0 = tracemalloc.get_traced_memory()[0]
        d = D(n)
        s1 = tracemalloc.get_traced_memory()[0]
        assert 0 <= (s1 - s0) - d.metadata_bytes() < 16384
        m0, t0 = d.metadata_bytes(), tracemalloc.get_traced_memory()[0]
        entries = d.swap_out_many(n - 1, "disk")
        m1, t1 = d.metadata_bytes(), tracemalloc.get_traced_memory()[0]
        assert m1 - m0 == 16 * CLUSTER + NODE + 16 * TABLE
        # the entries' own array is traced too
        assert abs((t1 - t0) - (m1 - m0) - sys.getsizeof(entries)) < 1024
        d.swap_free_many(entries)
        m2, t2 = d.metadata_bytes(), tracemalloc.get_traced_memory()[0]
        assert m2 - m1 == -16 * TABLE
        assert abs((t2 - t1) - (m2 - m1)) < 1024
        del entries
        before_close = tracemalloc.get_traced_memory()[0]
        held = d.metadata_bytes()
        d.close()
        after_close = tracemalloc.get_traced_memory()[0]
        assert 0 <= (before_close - after_close) - held < 16384
    finally:
        tracemalloc.stop()


def test_threads_keep_invariants(D):
    """Threads allocate, back (zswap, disk, zero), read, duplicate and free
    their own entries while readers look at everyone's: every read sees a
    value stored for that very entry, counts never go wrong, and once all
    is freed nothing is held but the static structures, the cached cluster
    and the spare clusters and nodes."""
    compiled = "compiled" in repr(D(1))
    rounds = 300 if compiled else 40
    d = D(1 << 14)
    base = d.metadata_bytes()
    errors = []
    shared = []
    stop = threading.Event()

    def worker(seed):
        rng = random.Random(seed)
        mine = []
        try:
            for r in range(rounds):
                e = d.folio_alloc_swap(seed)
                mine.append(e)
                k = rng.randrange(3)
                if k == 0:
                    d.zswap_entry_store(e, (e << 8) | seed)
                elif k == 1:
                    d.swap_writeout(e)
                else:
                    d.set_zero(e)
                d.swap_cache_del_folio(e, seed, e)
                if rng.random() < 0.3:
                    assert d.swap_duplicate(e) == 2
                    d.swap_free(e)
                    assert d.swap_count(e) == 1
                shared.append(e)
                if len(mine) > 40:
                    x = mine.pop(rng.randrange(len(mine)))
                    d.swap_free(x)
            d.swap_free_many(array("Q", mine))
        except Exception as exc:             # pragma: no cover
            errors.append(("worker", seed, repr(exc)))

    def reader():
        rng = random.Random(7)
        while not stop.is_set():
            if not shared:
                continue
            e = shared[rng.randrange(len(shared))]
            try:
                h = d.zswap_entry_load(e)
                if h is not None and h >> 8 != e:
                    errors.append(("handle", e, h))
                s = d.swap_cache_get_shadow(e)
                if s is not None and s != e:
                    errors.append(("shadow", e, s))
                slot = d.get_slot(e)
                if slot is not None and not 1 <= slot < (1 << 14):
                    errors.append(("slot", e, slot))
            except LookupError:
                pass                         # freed meanwhile

    threads = [threading.Thread(target=worker, args=(s,)) for s in (1, 2, 3)]
    readers = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads + readers:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    s = d.stats()
    d.close()
    assert errors == []
    assert s["used"] == 0 and s["zswap_entries"] == 0
    # the cached cluster stays, empty: the cache's reference keeps it (v6
    # frees uncached empty clusters only)
    assert s["bytes_vswap_cluster"] in (0, CLUSTER) and s["bytes_reverse_map"] == 0
    assert s["metadata_bytes"] == base + s["bytes_vswap_cluster"] + \
        s["bytes_vswap_cluster_free"] + s["bytes_cluster_map"] + s["bytes_cluster_map_free"]
