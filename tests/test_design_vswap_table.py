"""The ``vswap-table`` design on its own: RFC v2's per-slot words (8 bytes
of swap table, 8 of virtual table, 2 of memcg table per virtual slot, 8 of
device swap table per disk-backed slot), the locks each call takes, the
lock-free swap-table reads under concurrent frees and reuse, allocations
cross-checked with tracemalloc, and a threaded stress with invariants."""

import random
import sys
import threading
import tracemalloc
from array import array

import pytest

from cores import core_names
from vswapfast.designs import design_class

CLUSTER = 80 + 4096 + 4096 + 1024   # swap_cluster_info_dynamic, swap, virtual, memcg tables
TABLE = 4096
EXTEND = 2048
NODE = 576

compiled_only = pytest.mark.skipif(
    "compiled" not in core_names(), reason="VSWAPFAST_PURE=1: the compiled core is not tested")


@pytest.fixture(params=core_names())
def D(request):
    return design_class("vswap-table", request.param)


def static_bytes(n):
    """cluster_info[] of the device and its cluster 0's table (the header
    slot), and the vswap device's cluster 0 (its slot 0 bad)."""
    return -(-n // 512) * 48 + TABLE + CLUSTER


def test_layout(D):
    with D(4096) as d:
        s = d.stats()
        assert d.metadata_bytes() == static_bytes(4096)
        assert s["bytes_cluster_info_dynamic"] == 80
        assert s["bytes_swap_table"] == s["bytes_virtual_table"] == TABLE
        assert s["bytes_memcg_table"] == 1024
        assert s["bytes_reverse_map"] == 0
        assert d.folio_alloc_swap(1) == 1                 # slot 0 is bad
        assert d.metadata_bytes() == static_bytes(4096)


@pytest.mark.parametrize("backing", ["zswap", "zero", "disk"])
def test_bytes_per_used_slot(D, backing):
    """18 bytes per virtual slot (8 + 8 + 2, in whole clusters, plus the
    80-byte cluster), and 8 more per disk-backed slot, in whole device
    clusters."""
    n = 8 * 512
    with D(n) as d:
        base = d.metadata_bytes()
        es = d.swap_out_many(n - 1, backing)
        s = d.stats()
        extra = 7 * CLUSTER + NODE                       # cluster 0 exists already
        if backing == "disk":
            extra += 7 * TABLE                           # device cluster 0's exists
            assert s["bytes_reverse_map"] == 7 * TABLE
        else:
            assert s["bytes_reverse_map"] == 0
        assert d.metadata_bytes() - base == extra
        assert (s["bytes_swap_table"] + s["bytes_virtual_table"] + s["bytes_memcg_table"]) \
            == 8 * 512 * 18
        d.swap_free_many(es)
        s = d.stats()
        assert s["used"] == 0 and s["bytes_reverse_map"] == 0
        assert s["bytes_cluster_info_dynamic"] == 80     # cluster 0 stays
        # dead clusters keep their swap tables (type-stable); the virtual
        # and memcg tables are freed
        assert s["bytes_swap_table_free"] == 7 * TABLE
        assert s["bytes_virtual_table"] == TABLE and s["bytes_memcg_table"] == 1024
        d.swap_out_many(n - 1, backing)
        assert d.metadata_bytes() - base == extra


def test_reverse_map_only_for_disk(D):
    with D(4096) as d:
        z = d.swap_out_many(100, "zswap")
        assert d.stats()["bytes_reverse_map"] == 0
        slot = d.swap_writeout(z[0])
        assert d.get_slot(z[0]) == slot and d.zswap_entry_load(z[0]) is None
        assert d.swap_writeout(z[0]) == slot             # folio_realloc_swap keeps it
        d.zswap_entry_store(z[0], 9)                     # the backing released
        assert d.get_slot(z[0]) is None
        d.swap_writeout(z[1])
        d.set_zero(z[1])
        assert d.is_zero(z[1]) and d.get_slot(z[1]) is None


def test_extend_table(D):
    """Counts past the 4-bit count of the word go to an extend table,
    allocated when needed and freed when no slot needs it."""
    with D(4096) as d:
        e = d.folio_alloc_swap(1)
        for n in range(2, 15):
            assert d.swap_duplicate(e) == n
        assert d.stats()["bytes_extend_table"] == 0
        assert d.swap_duplicate(e) == 15
        assert d.stats()["bytes_extend_table"] == EXTEND
        assert d.swap_count(e) == 15
        d.swap_free(e)
        assert d.swap_count(e) == 14
        assert d.stats()["bytes_extend_table"] == 0


def test_locks_per_operation(D):
    with D(1 << 14) as d:
        def taken(call, *args):
            before = d.stats()
            call(*args)
            after = d.stats()
            return {k: after[k] - before[k] for k in
                    ("lock_acquisitions", "cluster_lock_acquisitions", "map_lock_acquisitions",
                     "allocator_lock_acquisitions", "device_lock_acquisitions",
                     "swap_device_lock_acquisitions", "swap_cluster_lock_acquisitions",
                     "lockless_loads")}
        # the first allocation isolates cluster 0 from the nonfull list
        t = taken(d.folio_alloc_swap, 1)
        assert t["allocator_lock_acquisitions"] == 1 and t["device_lock_acquisitions"] == 1
        assert t["cluster_lock_acquisitions"] == 1
        # then the per-CPU cluster: the allocator lock, a map lookup, the cluster lock
        t = taken(d.folio_alloc_swap, 2)
        assert t == {"lock_acquisitions": 2, "cluster_lock_acquisitions": 1,
                     "map_lock_acquisitions": 0, "allocator_lock_acquisitions": 1,
                     "device_lock_acquisitions": 0, "swap_device_lock_acquisitions": 0,
                     "swap_cluster_lock_acquisitions": 0, "lockless_loads": 1}
        e = 2
        # swap table reads: no lock (the map lookup and the word)
        for call in (d.swap_cache_get_folio, d.swap_cache_get_shadow, d.is_zero):
            t = taken(call, e)
            assert t["lock_acquisitions"] == 0 and t["lockless_loads"] == 2, call
        # the virtual table is read and written under the cluster lock
        for call, args in ((d.zswap_entry_store, (e, 5)), (d.zswap_entry_load, (e,)),
                           (d.get_slot, (e,)), (d.swap_count, (e,)), (d.swap_duplicate, (e,)),
                           (d.zswap_entry_erase, (e,)), (d.swap_free, (e,)),
                           (d.swap_cache_del_folio, (e, 2, 7))):
            t = taken(call, *args)
            assert t["lock_acquisitions"] == t["cluster_lock_acquisitions"] == 1, call
            assert t["lockless_loads"] == 1, call
        assert taken(d.swap_cache_add_folio, e, 4)["cluster_lock_acquisitions"] == 2
        # a writeout into a device cluster with a table: three cluster
        # locks (release, vswap_to_phys, the PHYS word), the device lock,
        # the device cluster's lock (the slot and its reverse map)
        t = taken(d.swap_writeout, e)
        assert t["cluster_lock_acquisitions"] == 3
        assert t["swap_device_lock_acquisitions"] == 1
        assert t["swap_cluster_lock_acquisitions"] == 1
        d.swap_cache_del_folio(e, 4)
        t = taken(d.swap_free, e)
        assert t["cluster_lock_acquisitions"] == 1 and t["swap_cluster_lock_acquisitions"] == 1
        entries = d.swap_out_many(3 * 512, "zswap")
        runs = len({x >> 9 for x in entries})
        out = array("Q", bytes(8 * len(entries)))
        t = taken(d.zswap_entry_load_many, entries, out, False)
        assert t["cluster_lock_acquisitions"] == len(entries)
        t = taken(d.zswap_entry_load_many, entries, out, True)
        assert t["cluster_lock_acquisitions"] == runs
        assert all(out)


@compiled_only
def test_metadata_bytes_match_tracemalloc():
    D = design_class("vswap-table", "compiled")
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
        assert m1 - m0 == 15 * CLUSTER + NODE + 15 * TABLE
        assert abs((t1 - t0) - (m1 - m0) - sys.getsizeof(entries)) < 1024
        d.swap_free_many(entries)
        m2, t2 = d.metadata_bytes(), tracemalloc.get_traced_memory()[0]
        assert abs((t2 - t1) - (m2 - m1)) < 1024
        del entries
        before_close = tracemalloc.get_traced_memory()[0]
        held = d.metadata_bytes()
        d.close()
        after_close = tracemalloc.get_traced_memory()[0]
        assert 0 <= (before_close - after_close) - held < 16384
    finally:
        tracemalloc.stop()


def test_lock_free_reads_under_frees_and_reuse(D):
    """Writers fill and empty whole clusters (freeing them, reusing the
    spare structs and their tables for other indices) while readers read
    swap-table words with no lock: a read finds the entry gone
    (InvalidEntryError) or a word written for that very entry."""
    compiled = "compiled" in repr(D(1))
    rounds = 60 if compiled else 6
    d = D(1 << 14)
    errors = []
    stop = threading.Event()
    live = []

    def writer():
        rng = random.Random(1)
        for _ in range(rounds):
            es = d.swap_out_many(rng.randrange(600, 1600), "zswap")
            live.append(es)
            for e in es[::11]:
                d.swap_cache_add_folio(e, e)
                d.swap_cache_del_folio(e, e, e)
            if len(live) > 2:
                d.swap_free_many(live.pop(0))
        stop.set()

    def reader(seed):
        rng = random.Random(seed)
        while not stop.is_set():
            if not live:
                continue
            try:
                es = live[rng.randrange(len(live))]
            except (IndexError, ValueError):
                continue
            for _ in range(50):
                e = es[rng.randrange(len(es))]
                try:
                    s = d.swap_cache_get_shadow(e)
                    f = d.swap_cache_get_folio(e)
                    z = d.is_zero(e)
                except LookupError:
                    continue
                if s is not None and s != e:
                    errors.append(("shadow", e, s))
                if f is not None and f != e:
                    errors.append(("folio", e, f))
                if z:
                    errors.append(("zero", e))

    threads = [threading.Thread(target=writer)] + \
        [threading.Thread(target=reader, args=(s,)) for s in (2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for es in live:
        d.swap_free_many(es)
    s = d.stats()
    d.close()
    assert errors == []
    assert s["used"] == 0 and s["zswap_entries"] == 0
    assert s["lockless_loads"] > 0


def test_threads_keep_invariants(D):
    """Threads allocate, back, read, duplicate and free their own entries:
    counts stay right and once all is freed only the static structures,
    cluster 0 and the kept tables remain."""
    compiled = "compiled" in repr(D(1))
    rounds = 300 if compiled else 40
    d = D(1 << 14)
    base = d.metadata_bytes()
    errors = []

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
                    assert d.zswap_entry_load(e) == (e << 8) | seed
                elif k == 1:
                    slot = d.swap_writeout(e)
                    assert d.get_slot(e) == slot
                else:
                    d.set_zero(e)
                    assert d.is_zero(e)
                d.swap_cache_del_folio(e, seed, e)
                assert d.swap_cache_get_shadow(e) == e
                if rng.random() < 0.3:
                    assert d.swap_duplicate(e) == 2
                    d.swap_free(e)
                    assert d.swap_count(e) == 1
                if len(mine) > 40:
                    d.swap_free(mine.pop(rng.randrange(len(mine))))
            d.swap_free_many(array("Q", mine))
        except Exception as exc:             # pragma: no cover
            errors.append((seed, repr(exc)))

    threads = [threading.Thread(target=worker, args=(s,)) for s in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s = d.stats()
    d.close()
    assert errors == []
    assert s["used"] == 0 and s["zswap_entries"] == 0 and s["bytes_reverse_map"] == 0
    assert s["metadata_bytes"] == base + s["bytes_cluster_info_dynamic_free"] + \
        s["bytes_swap_table_free"] + s["bytes_cluster_map"] + s["bytes_cluster_map_free"] + \
        (s["bytes_cluster_info_dynamic"] - 80) // 80 * CLUSTER
