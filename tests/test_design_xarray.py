"""The ``xarray`` design on its own: byte counts from the xarray's real node
layout, allocations cross-checked with tracemalloc, its locks, and the
lock-free loads under concurrent stores and erases."""

import importlib
import random
import threading
import tracemalloc
from array import array

import pytest

from cores import core_names
from vswapfast.designs import design_class

NODE = 576
REGION = 16384

compiled_only = pytest.mark.skipif(
    "compiled" not in core_names(), reason="VSWAPFAST_PURE=1: the compiled core is not tested")


@pytest.fixture(params=core_names())
def D(request):
    return design_class("xarray", request.param)


def static_bytes(n):
    clusters = -(-n // 512)
    regions = -(-n // REGION)
    return n + -(-n // 2) * 4 + -(-n // 64) * 8 + clusters * 24 + regions * 16 * 2


def test_static_structures(D):
    for n in (1, 511, 512, 513, REGION, REGION + 1, 8 * 1024 * 1024):
        with D(n) as d:
            s = d.stats()
            assert d.metadata_bytes() == static_bytes(n)
            assert s["bytes_swap_map"] == n
            assert s["bytes_swap_cgroup"] == -(-n // 2) * 4
            assert s["bytes_zeromap"] == -(-n // 64) * 8
            assert s["bytes_cluster_info"] == -(-n // 512) * 24
            assert s["bytes_zswap_trees"] == s["bytes_swap_cache_xarrays"] == -(-n // REGION) * 16
            assert s["bytes_xa_node"] == 0


def test_full_zswap_xarray_is_261_nodes(D):
    """A fully used 64 MiB region: 256 leaves, 4 nodes above them and one
    top node (the tree covers indices from 0), 261 x 576 bytes; the swap
    cache, indexed by offset & 16383, has the same shape in every region."""
    with D(2 * REGION) as d:
        entries = d.swap_out_many(2 * REGION - 1, "zswap")
        s = d.stats()
        assert s["bytes_xa_node_zswap"] == 2 * 261 * NODE
        assert s["bytes_xa_node_swap_cache"] == 2 * 261 * NODE
        assert s["bytes_xa_node"] == 4 * 261 * NODE
        assert d.metadata_bytes() == static_bytes(2 * REGION) + 4 * 261 * NODE
        # Erasing the zswap entries frees the zswap nodes (to the free list).
        assert d.zswap_entry_erase_many(entries) == len(entries)
        s = d.stats()
        assert s["bytes_xa_node_zswap"] == 0
        assert s["bytes_xa_node_free"] == 2 * 261 * NODE
        d.swap_free_many(entries)
        s = d.stats()
        assert s["bytes_xa_node"] == 0 and s["used"] == 0
        assert d.metadata_bytes() == static_bytes(2 * REGION) + 4 * 261 * NODE


@compiled_only
def test_region_16_needs_one_more_level():
    d = design_class("xarray", "compiled")(17 * REGION)
    try:
        d.swap_out_many(16 * REGION - 1, "disk")
        e = d.swap_out_many(REGION, "zswap")
        assert e[0] == 16 * REGION and e[-1] == 17 * REGION - 1
        assert d.stats()["bytes_xa_node_zswap"] == 262 * NODE
    finally:
        d.close()


def test_locks_per_operation(D):
    with D(4 * REGION) as d:
        def taken(call, *args):
            before = d.stats()
            call(*args)
            after = d.stats()
            return {k: after[k] - before[k] for k in
                    ("lock_acquisitions", "xa_lock_acquisitions", "cluster_lock_acquisitions",
                     "device_lock_acquisitions", "lockless_loads")}
        # A store that needs a node drops xa_lock, allocates it and takes
        # the lock again (xas_nomem): nothing is allocated under a lock.
        t = taken(d.folio_alloc_swap, 1)
        assert t["device_lock_acquisitions"] == 1 and t["cluster_lock_acquisitions"] == 1
        assert t["xa_lock_acquisitions"] == 2
        assert taken(d.zswap_entry_store, 1, 5)["xa_lock_acquisitions"] == 2
        t = taken(d.folio_alloc_swap, 2)                # the leaf exists now
        assert t["xa_lock_acquisitions"] == 1 and t["lock_acquisitions"] == 3
        e = 2
        assert taken(d.zswap_entry_store, e, 5)["lock_acquisitions"] == 1
        for load in (d.zswap_entry_load, d.swap_cache_get_folio, d.swap_cache_get_shadow):
            t = taken(load, e)
            assert t["lock_acquisitions"] == 0 and t["lockless_loads"] == 1
        for load in (d.is_zero, d.get_slot):
            t = taken(load, e)
            assert t["lock_acquisitions"] == 0 and t["lockless_loads"] == 1
        assert taken(d.zswap_entry_erase, e)["xa_lock_acquisitions"] == 1
        assert taken(d.swap_duplicate, e)["cluster_lock_acquisitions"] == 1
        t = taken(d.swap_free, e)
        assert t["lock_acquisitions"] == 1              # count 2 -> 1
        t = taken(d.swap_free, e)
        assert t["cluster_lock_acquisitions"] == 1 and t["xa_lock_acquisitions"] == 2
        entries = d.swap_out_many(3 * REGION, "disk")
        handles = array("Q", range(1, len(entries) + 1))
        d.zswap_entry_store_many(entries, handles)      # the nodes, once
        t = taken(d.zswap_entry_store_many, entries, handles, False)
        assert t["xa_lock_acquisitions"] == len(entries)
        t = taken(d.zswap_entry_store_many, entries, handles, True)
        assert t["xa_lock_acquisitions"] == 4            # one per 64 MiB run
        out = array("Q", bytes(8 * len(entries)))
        t = taken(d.zswap_entry_load_many, entries, out, False)
        assert t["lock_acquisitions"] == 0 and t["lockless_loads"] == len(entries)
        t = taken(d.zswap_entry_load_many, entries, out, True)
        assert t["xa_lock_acquisitions"] == 4 and t["lockless_loads"] == 0


def test_count_continuation(D):
    with D(1024) as d:
        e = d.folio_alloc_swap(1)
        for n in range(2, 63):
            d.swap_duplicate(e)
        assert d.stats()["bytes_swap_cont"] == 0
        assert d.swap_duplicate(e) == 63
        assert d.stats()["bytes_swap_cont"] == NODE       # one leaf of extra counts
        assert d.swap_count(e) == 63
        d.swap_free(e)
        assert d.swap_count(e) == 62
        assert d.stats()["bytes_swap_cont"] == 0


def test_zero_and_zswap_exclude_each_other(D):
    with D(1024) as d:
        e = d.folio_alloc_swap(1)
        d.zswap_entry_store(e, 3)
        d.set_zero(e)                    # zero-filled: no zswap entry
        assert d.is_zero(e) and d.zswap_entry_load(e) is None
        d.zswap_entry_store(e, 4)        # swap_writepage clears the zeromap bit
        assert not d.is_zero(e)


@compiled_only
def test_metadata_bytes_match_tracemalloc():
    """Every allocation of the compiled design is counted: the traced raw
    allocations move exactly as metadata_bytes() does."""
    D = design_class("xarray", "compiled")
    n = 4 * REGION
    tracemalloc.start()
    try:
        s0 = tracemalloc.get_traced_memory()[0]
        d = D(n)
        s1 = tracemalloc.get_traced_memory()[0]
        # the design struct itself (stats of 64 thread slots) is not metadata
        assert 0 <= (s1 - s0) - d.metadata_bytes() < 16384
        entries = d.swap_out_many(n - 1, "disk")
        m1, t1 = d.metadata_bytes(), tracemalloc.get_traced_memory()[0]
        handles = array("Q", range(1, len(entries) + 1))
        out = array("Q", bytes(8 * len(entries)))
        m2, t2 = d.metadata_bytes(), tracemalloc.get_traced_memory()[0]
        assert d.zswap_entry_store_many(entries, handles) == 0
        m3, t3 = d.metadata_bytes(), tracemalloc.get_traced_memory()[0]
        assert m3 - m2 == 4 * 261 * NODE
        assert abs((t3 - t2) - (m3 - m2)) < 512
        d.zswap_entry_erase_many(entries)
        d.swap_free_many(entries)
        m4, t4 = d.metadata_bytes(), tracemalloc.get_traced_memory()[0]
        assert abs((t4 - t3) - (m4 - m3)) < 512
        del entries, handles, out
        before_close = tracemalloc.get_traced_memory()[0]
        held = d.metadata_bytes()
        d.close()
        after_close = tracemalloc.get_traced_memory()[0]
        assert 0 <= (before_close - after_close) - held < 16384
    finally:
        tracemalloc.stop()


def test_lock_free_loads_under_stores_and_erases(D):
    """Writers store, replace and erase zswap entries and swap-cache shadows
    (growing, shrinking and recycling nodes) while readers load with no lock:
    a load returns None or a value stored for that very entry."""
    compiled = "compiled" in repr(D(1))
    n = 3 * REGION if compiled else 2000
    rounds = 40 if compiled else 4
    d = D(n + 1)
    entries = d.swap_out_many(n, "disk")
    spread = array("Q", entries[::7])
    errors = []
    stop = threading.Event()

    def writer(seed):
        rng = random.Random(seed)
        for r in range(rounds):
            k = rng.randrange(1, 1 << 15)
            handles = array("Q", [(e << 15) | k for e in entries])
            d.zswap_entry_store_many(entries, handles, batch=bool(r & 1))
            d.zswap_entry_erase_many(spread if r % 3 else entries)
            for _ in range(20):
                e = entries[rng.randrange(len(entries))]
                d.zswap_entry_store(e, (e << 15) | 1)
                d.zswap_entry_erase(e)
                f = d.swap_cache_add_folio(e, e)
                d.swap_cache_del_folio(e, e, e + 1)
        stop.set()

    def reader(seed):
        rng = random.Random(seed)
        out = array("Q", bytes(8 * len(entries)))
        while not stop.is_set():
            d.zswap_entry_load_many(entries, out)
            for i in range(0, len(out), 97):
                h = out[i]
                if h and h >> 15 != entries[i]:
                    errors.append(("many", entries[i], h))
            for _ in range(50):
                e = entries[rng.randrange(len(entries))]
                h = d.zswap_entry_load(e)
                if h is not None and h >> 15 != e:
                    errors.append(("one", e, h))
                s = d.swap_cache_get_shadow(e)
                if s is not None and s not in (e, e + 1):
                    errors.append(("shadow", e, s))
                f = d.swap_cache_get_folio(e)
                if f is not None and f != e:
                    errors.append(("folio", e, f))

    threads = [threading.Thread(target=writer, args=(1,)),
               threading.Thread(target=reader, args=(2,)),
               threading.Thread(target=reader, args=(3,))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s = d.stats()
    d.close()
    assert errors == []
    assert s["lockless_loads"] > 0
    assert s["locked_loads"] <= s["lockless_loads"]
