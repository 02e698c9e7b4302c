"""The ``rbtree`` design on its own: the red-black tree's invariants after
random and concurrent operations, byte counts from the kernel's layouts
(24-byte rb_node per zswap entry, swap_cgroup pages), allocations
cross-checked with tracemalloc, and the tree lock every zswap load takes."""

import math
import random
import threading
import tracemalloc
from array import array

import pytest

from cores import core_names
from vswapfast.designs import design_class

RB_NODE = 24
XA_NODE = 576
REGION = 16384

compiled_only = pytest.mark.skipif(
    "compiled" not in core_names(), reason="VSWAPFAST_PURE=1: the compiled core is not tested")


@pytest.fixture(params=core_names())
def D(request):
    return design_class("rbtree", request.param)


def static_bytes(n):
    pages = -(-n // 2048)
    return n + pages * (4096 + 8) + -(-n // 512) * 8 + -(-n // REGION) * 16 + 16


def check(d):
    """The tree's invariants (the compiled core checks the red-black shape,
    the twin its entries) and its byte count; the number of entries."""
    c = d._check()
    s = d.stats()
    assert c["nodes"] == s["stored_pages"]
    assert s["bytes_rb_node"] == RB_NODE * c["nodes"]
    if "black_height" in c and c["nodes"]:
        # a red-black tree of n nodes is at most 2 log2(n + 1) high
        assert c["height"] <= 2 * math.log2(c["nodes"] + 1)
    return c["nodes"]


def test_static_structures(D):
    for n in (1, 511, 512, 513, 2048, 2049, REGION + 1, 8 * 1024 * 1024):
        with D(n) as d:
            s = d.stats()
            assert d.metadata_bytes() == static_bytes(n)
            assert s["bytes_swap_map"] == n
            assert s["bytes_swap_cgroup"] == -(-n // 2048) * (4096 + 8)
            assert s["bytes_cluster_info"] == -(-n // 512) * 8
            assert s["bytes_swap_cache_xarrays"] == -(-n // REGION) * 16
            assert s["bytes_zswap_tree"] == 16
            assert s["bytes_rb_node"] == s["bytes_xa_node"] == 0


def test_bytes_per_page(D):
    """zswap: 24 bytes of rb_node per page plus the swap cache's shadows
    (261 xa_nodes per full 64 MiB region); disk: the shadows only; a zero
    page is a same-filled zswap entry, an rb_node too."""
    with D(2 * REGION) as d:
        z = d.swap_out_many(2 * REGION - 1, "zswap")
        s = d.stats()
        assert s["bytes_rb_node"] == RB_NODE * len(z)
        assert s["bytes_xa_node_swap_cache"] == 2 * 261 * XA_NODE
        assert d.metadata_bytes() == static_bytes(2 * REGION) + RB_NODE * len(z) + 2 * 261 * XA_NODE
        assert check(d) == len(z)
        d.swap_free_many(z)
        assert d.stats()["bytes_rb_node"] == 0
        k = d.swap_out_many(1000, "disk")
        assert d.stats()["bytes_rb_node"] == 0
        o = d.swap_out_many(1000, "zero")
        s = d.stats()
        assert s["bytes_rb_node"] == RB_NODE * 1000 and s["same_filled_pages"] == 1000
        assert d.zswap_empty()                   # no compressed page
        d.swap_free_many(k)
        d.swap_free_many(o)
        assert check(d) == 0


def test_invariants_after_random_operations(D):
    rng = random.Random(7)
    n = 4096 if "compiled" in repr(D(1)) else 1200
    with D(n + 1) as d:
        entries = list(d.swap_out_many(n, "disk"))
        held = {}
        for step in range(40):
            batch = rng.sample(entries, rng.randrange(1, n // 4))
            op = rng.randrange(4)
            if op == 0:
                hs = array("Q", [rng.randrange(1, 1 << 48) for _ in batch])
                d.zswap_entry_store_many(array("Q", batch), hs, batch=bool(step & 1))
                held.update(zip(batch, hs))
            elif op == 1:
                d.zswap_entry_erase_many(array("Q", batch), batch=bool(step & 2))
                for e in batch:
                    held.pop(e, None)
            elif op == 2:
                for e in batch[:50]:
                    h = rng.randrange(1, 1 << 48)
                    assert d.zswap_entry_store(e, h) == held.get(e)
                    held[e] = h
            else:
                for e in batch[:50]:
                    d.set_zero(e)
                    held.pop(e, None)
            assert check(d) >= len(held)
            out = array("Q", bytes(8 * len(entries)))
            assert d.zswap_entry_load_many(array("Q", entries), out) == len(held)
            assert all(out[i] == held.get(e, 0) for i, e in enumerate(entries))
        d.swap_free_many(array("Q", entries))
        assert check(d) == 0


def test_locks_per_operation(D):
    with D(4 * REGION) as d:
        def taken(call, *args):
            before = d.stats()
            call(*args)
            after = d.stats()
            return {k: after[k] - before[k] for k in
                    ("lock_acquisitions", "tree_lock_acquisitions", "xa_lock_acquisitions",
                     "cluster_lock_acquisitions", "device_lock_acquisitions",
                     "swap_cgroup_lock_acquisitions", "lockless_loads")}
        t = taken(d.folio_alloc_swap, 1)
        assert t["device_lock_acquisitions"] == 1 and t["cluster_lock_acquisitions"] == 1
        assert t["swap_cgroup_lock_acquisitions"] == 1 and t["tree_lock_acquisitions"] == 0
        e = d.folio_alloc_swap(2)
        # zswap_store: the duplicate check, then the insert
        t = taken(d.zswap_entry_store, e, 5)
        assert t["tree_lock_acquisitions"] == 2 and t["lock_acquisitions"] == 2
        # zswap_load: find and get, then put -- loads take the tree lock
        for load in (d.zswap_entry_load, d.is_zero):
            t = taken(load, e)
            assert t["tree_lock_acquisitions"] == 2 and t["lockless_loads"] == 0
        for load in (d.swap_cache_get_folio, d.swap_cache_get_shadow, d.get_slot):
            t = taken(load, e)
            assert t["lock_acquisitions"] == 0 and t["lockless_loads"] == 1
        assert taken(d.zswap_entry_erase, e)["tree_lock_acquisitions"] == 1
        assert taken(d.swap_writeout, e)["tree_lock_acquisitions"] == 1
        assert taken(d.set_zero, e)["tree_lock_acquisitions"] == 2
        t = taken(d.swap_free, e)
        assert t["cluster_lock_acquisitions"] == 1 and t["tree_lock_acquisitions"] == 1
        assert t["swap_cgroup_lock_acquisitions"] == 1
        entries = d.swap_out_many(3 * REGION, "disk")
        handles = array("Q", range(1, len(entries) + 1))
        t = taken(d.zswap_entry_store_many, entries, handles, False)
        assert t["tree_lock_acquisitions"] == 2 * len(entries)
        t = taken(d.zswap_entry_store_many, entries, handles, True)
        assert t["tree_lock_acquisitions"] == 1            # one tree per device
        out = array("Q", bytes(8 * len(entries)))
        t = taken(d.zswap_entry_load_many, entries, out, False)
        assert t["tree_lock_acquisitions"] == 2 * len(entries) and t["lockless_loads"] == 0
        t = taken(d.zswap_entry_load_many, entries, out, True)
        assert t["tree_lock_acquisitions"] == 1
        t = taken(d.zswap_entry_erase_many, entries, True)
        assert t["tree_lock_acquisitions"] == 1
        t = taken(d.swap_out_many, 10, "zswap")
        assert t["tree_lock_acquisitions"] == 20 and t["device_lock_acquisitions"] == 10


def test_erase_leaves_a_zero_page(D):
    """zswap_entry_erase removes a compressed page; a same-filled entry is
    the page's zero backing and stays until a store, a writeout or the
    release replaces it."""
    with D(64) as d:
        e = d.folio_alloc_swap(1)
        d.set_zero(e)
        assert d.zswap_entry_erase(e) is None and d.is_zero(e)
        assert d.zswap_entry_store(e, 9) is None and not d.is_zero(e)
        d.set_zero(e)
        assert d.swap_writeout(e) == e and not d.is_zero(e)
        assert check(d) == 0


@compiled_only
def test_metadata_bytes_match_tracemalloc():
    """Every allocation is counted: the traced raw allocations move as
    metadata_bytes() does plus the zswap entries' other fields (24 bytes
    each, in stats()["entry_fields_bytes"])."""
    D = design_class("rbtree", "compiled")
    n = 4 * REGION
    tracemalloc.start()
    try:
        s0 = tracemalloc.get_traced_memory()[0]
        d = D(n)
        s1 = tracemalloc.get_traced_memory()[0]
        assert 0 <= (s1 - s0) - d.metadata_bytes() < 16384
        entries = d.swap_out_many(n - 1, "disk")
        handles = array("Q", range(1, len(entries) + 1))
        m2, t2 = d.metadata_bytes(), tracemalloc.get_traced_memory()[0]
        assert d.zswap_entry_store_many(entries, handles) == 0
        m3, t3 = d.metadata_bytes(), tracemalloc.get_traced_memory()[0]
        assert m3 - m2 == RB_NODE * len(entries)
        assert d.stats()["entry_fields_bytes"] == 24 * len(entries)
        assert abs((t3 - t2) - 2 * (m3 - m2)) < 512
        d.zswap_entry_erase_many(entries, batch=True)
        d.swap_free_many(entries)
        m4, t4 = d.metadata_bytes(), tracemalloc.get_traced_memory()[0]
        # the entries freed; the swap cache's nodes kept on the free list
        assert m4 - m3 == -RB_NODE * len(entries)
        assert abs((t4 - t3) - 2 * (m4 - m3)) < 512
        del entries, handles
        before_close = tracemalloc.get_traced_memory()[0]
        held = d.metadata_bytes()
        d.close()
        after_close = tracemalloc.get_traced_memory()[0]
        assert 0 <= (before_close - after_close) - held < 16384
    finally:
        tracemalloc.stop()


def test_threads_keep_the_tree_valid(D):
    """Writers store, replace, zero and erase while readers load (taking
    the tree lock and a reference): every load gives None or a handle
    stored for that entry, and the tree is a valid red-black tree after."""
    compiled = "compiled" in repr(D(1))
    n = 3 * REGION if compiled else 1500
    rounds = 30 if compiled else 3
    d = D(n + 1)
    entries = d.swap_out_many(n, "disk")
    spread = array("Q", entries[::7])
    errors = []
    stop = threading.Event()
    writers_left = [2]
    lock = threading.Lock()

    def writer(seed):
        rng = random.Random(seed)
        for r in range(rounds):
            k = rng.randrange(1, 1 << 15)
            handles = array("Q", [(e << 15) | k for e in entries])
            d.zswap_entry_store_many(entries, handles, batch=bool(r & 1))
            d.zswap_entry_erase_many(spread if r % 3 else entries, batch=bool(r & 2))
            for _ in range(20):
                e = entries[rng.randrange(len(entries))]
                d.zswap_entry_store(e, (e << 15) | 1)
                d.set_zero(e)
                d.zswap_entry_erase(e)
        with lock:
            writers_left[0] -= 1
            if not writers_left[0]:
                stop.set()

    def reader(seed):
        rng = random.Random(seed)
        out = array("Q", bytes(8 * len(entries)))
        while not stop.is_set():
            d.zswap_entry_load_many(entries, out, batch=bool(rng.randrange(2)))
            for i in range(0, len(out), 97):
                h = out[i]
                if h and h >> 15 != entries[i]:
                    errors.append(("many", entries[i], h))
            for _ in range(50):
                e = entries[rng.randrange(len(entries))]
                h = d.zswap_entry_load(e)
                if h is not None and h >> 15 != e:
                    errors.append(("one", e, h))
                d.is_zero(e)

    threads = [threading.Thread(target=writer, args=(1,)),
               threading.Thread(target=writer, args=(4,)),
               threading.Thread(target=reader, args=(2,)),
               threading.Thread(target=reader, args=(3,))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        check(d)
        d.swap_free_many(entries)
        assert check(d) == 0 and d.stats()["bytes_rb_node"] == 0
    finally:
        d.close()
