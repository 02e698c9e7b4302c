"""The ``swap-table-p1`` and ``swap-table`` designs on their own: byte
counts of the per-cluster tables (allocated on a cluster's first use, freed
when it empties), the counts' extend_table and the Z bit, allocations
cross-checked with tracemalloc, the locks per call, and the lock-free table
reads under concurrent stores, erases and table reuse."""

import random
import threading
import tracemalloc
from array import array

import pytest

from cores import core_names
from vswapfast.designs import design_class
from vswapfast.errors import InvalidEntryError

NODE = 576
REGION = 16384
CLUSTER = 512
TABLE = 4096
MEMCG_TABLE = 1024
EXTEND_TABLE = 2048

compiled_only = pytest.mark.skipif(
    "compiled" not in core_names(), reason="VSWAPFAST_PURE=1: the compiled core is not tested")


def params(names):
    return [pytest.param((core, name), id="%s-%s" % (name, core))
            for name in names for core in core_names()]


BOTH = params(("swap-table-p1", "swap-table"))
P4 = params(("swap-table",))


@pytest.fixture(params=BOTH)
def D(request):
    core, name = request.param
    return design_class(name, core)


@pytest.fixture(params=P4)
def D4(request):
    core, name = request.param
    return design_class(name, core)


def static_bytes(name, n):
    clusters = -(-n // CLUSTER)
    regions = -(-n // REGION)
    if name == "swap-table-p1":
        return n + -(-n // 2) * 4 + -(-n // 64) * 8 + clusters * 32 + regions * 16
    return clusters * 48 + regions * 16


def per_cluster(name):
    """Bytes a cluster in use holds beyond the static structures."""
    return TABLE + (MEMCG_TABLE if name == "swap-table" else 0)


def test_static_structures(D):
    for n in (1, 511, 512, 513, REGION + 1, 8 * 1024 * 1024):
        with D(n) as d:
            s = d.stats()
            assert d.metadata_bytes() == static_bytes(D.name, n)
            assert s["bytes_cluster_info"] == -(-n // CLUSTER) * (32 if D.name.endswith("p1") else 48)
            assert s["bytes_zswap_trees"] == -(-n // REGION) * 16
            assert s["bytes_swap_table"] == s["bytes_xa_node"] == 0
            if D.name == "swap-table-p1":
                assert s["bytes_swap_map"] == n
                assert s["bytes_swap_cgroup"] == -(-n // 2) * 4
                assert s["bytes_zeromap"] == -(-n // 64) * 8
            else:
                for gone in ("swap_map", "swap_cgroup", "zeromap"):
                    assert "bytes_" + gone not in s
                assert s["bytes_memcg_table"] == s["bytes_extend_table"] == 0


def test_table_on_first_use_freed_when_cluster_empties(D):
    with D(4 * CLUSTER) as d:
        base = d.metadata_bytes()
        e = d.folio_alloc_swap(7)
        s = d.stats()
        assert s["bytes_swap_table"] == TABLE
        assert d.metadata_bytes() == base + per_cluster(D.name)
        more = [d.folio_alloc_swap(8) for _ in range(CLUSTER - 2)]   # cluster 0 full
        assert d.stats()["bytes_swap_table"] == TABLE
        other = d.folio_alloc_swap(9)
        assert other // CLUSTER == 1
        assert d.stats()["bytes_swap_table"] == 2 * TABLE
        for x in more + [e]:
            d.swap_free(x)
        s = d.stats()
        # cluster 0 emptied: its tables left it for the free list, still held
        assert s["bytes_swap_table"] == TABLE
        assert s["bytes_swap_table_free"] == per_cluster(D.name)
        assert d.metadata_bytes() == base + 2 * per_cluster(D.name)
        assert d.swap_cache_get_folio(other) == 9
        d.swap_free(other)
        s = d.stats()
        assert s["bytes_swap_table"] == 0 and s["used"] == 0
        assert s["bytes_swap_table_free"] == 2 * per_cluster(D.name)
        # reused from the free list: nothing more is allocated
        held = d.metadata_bytes()
        es = d.swap_out_many(3 * CLUSTER, "zswap")       # clusters 1, 2 and 3
        s = d.stats()
        assert s["bytes_swap_table"] == 3 * TABLE
        assert s["bytes_swap_table_free"] == 0           # two reused, one new
        d.swap_free_many(es)
        assert d.metadata_bytes() == held + per_cluster(D.name) + d.stats()["bytes_xa_node_free"]


def test_full_use_costs_8_bytes_a_slot_of_table(D):
    n = 4 * REGION
    with D(n) as d:
        d.swap_out_many(n - 1, "disk")
        s = d.stats()
        assert s["bytes_swap_table"] == n // CLUSTER * TABLE == 8 * n
        if D.name == "swap-table":
            assert s["bytes_memcg_table"] == 2 * n
        assert s["bytes_xa_node"] == 0
        assert d.metadata_bytes() == static_bytes(D.name, n) + n // CLUSTER * per_cluster(D.name)


def test_locks_per_operation(D):
    p1 = D.name == "swap-table-p1"
    with D(4 * REGION) as d:
        def taken(call, *args):
            before = d.stats()
            call(*args)
            after = d.stats()
            return {k: after[k] - before[k] for k in
                    ("lock_acquisitions", "xa_lock_acquisitions", "cluster_lock_acquisitions",
                     "device_lock_acquisitions", "lockless_loads")}
        # The first slot of a cluster needs its tables: the locks are
        # dropped to allocate them and the allocation retried.
        t = taken(d.folio_alloc_swap, 1)
        assert t["device_lock_acquisitions"] == t["cluster_lock_acquisitions"] == (2 if p1 else 3)
        assert t["xa_lock_acquisitions"] == 0
        t = taken(d.folio_alloc_swap, 2)
        assert t == dict(lock_acquisitions=2, xa_lock_acquisitions=0, cluster_lock_acquisitions=1,
                         device_lock_acquisitions=1, lockless_loads=0)
        e = 2
        assert taken(d.zswap_entry_store, e, 5)["xa_lock_acquisitions"] == 2   # a new node
        assert taken(d.zswap_entry_store, e, 6)["lock_acquisitions"] == 1
        for load in (d.zswap_entry_load, d.swap_cache_get_folio, d.swap_cache_get_shadow,
                     d.is_zero, d.get_slot):
            t = taken(load, e)
            assert t["lock_acquisitions"] == 0 and t["lockless_loads"] == 1
        assert taken(d.swap_cache_del_folio, e, 2, 9)["cluster_lock_acquisitions"] == 1
        t = taken(d.swap_cache_add_folio, e, 3)
        assert t["cluster_lock_acquisitions"] == (2 if p1 else 1)
        assert t["xa_lock_acquisitions"] == 0
        assert taken(d.swap_duplicate, e)["lock_acquisitions"] == 1
        assert taken(d.swap_count, e)["lock_acquisitions"] == 1
        assert taken(d.swap_free, e)["lock_acquisitions"] == 1       # count 2 -> 1
        t = taken(d.set_zero, e)
        assert t["xa_lock_acquisitions"] == 1
        assert t["cluster_lock_acquisitions"] == (0 if p1 else 1)   # Z is under ci->lock
        t = taken(d.swap_writeout, e)                                # Z seen set: cleared
        assert t["cluster_lock_acquisitions"] == (0 if p1 else 1)
        t = taken(d.swap_writeout, e)                                # Z clear: no ci->lock
        assert t["cluster_lock_acquisitions"] == 0
        t = taken(d.swap_free, e)
        assert t["cluster_lock_acquisitions"] == 1 and t["xa_lock_acquisitions"] == 1
        entries = d.swap_out_many(3 * REGION, "disk")
        handles = array("Q", range(1, len(entries) + 1))
        d.zswap_entry_store_many(entries, handles)
        t = taken(d.zswap_entry_store_many, entries, handles, True)
        assert t["xa_lock_acquisitions"] == 4 and t["cluster_lock_acquisitions"] == 0
        out = array("Q", bytes(8 * len(entries)))
        t = taken(d.zswap_entry_load_many, entries, out, False)
        assert t["lock_acquisitions"] == 0 and t["lockless_loads"] == len(entries)


def test_count_spills_into_extend_table(D4):
    with D4(2048) as d:
        e = d.folio_alloc_swap(1)
        for n in range(2, 15):
            assert d.swap_duplicate(e) == n
        assert d.stats()["bytes_extend_table"] == 0               # 14 fits in 4 bits
        assert d.swap_duplicate(e) == 15                           # SWP_TB_COUNT_MAX
        s = d.stats()
        assert s["bytes_extend_table"] == EXTEND_TABLE
        for n in range(16, 300):
            assert d.swap_duplicate(e) == n
        assert d.swap_count(e) == 299
        e2 = d.folio_alloc_swap(2)
        for n in range(2, 20):
            d.swap_duplicate(e2)                                   # the same cluster's table
        assert d.stats()["bytes_extend_table"] == EXTEND_TABLE
        for n in range(298, 13, -1):
            d.swap_free(e)
            assert d.swap_count(e) == n
        assert d.stats()["bytes_extend_table"] == EXTEND_TABLE    # e2 still uses it
        for n in range(18, 14, -1):
            d.swap_free(e2)
        assert d.swap_count(e2) == 15
        d.swap_free(e2)
        s = d.stats()
        assert s["bytes_extend_table"] == 0                       # try_free: none left
        assert s["bytes_swap_table_free"] == EXTEND_TABLE
        assert d.swap_count(e) == d.swap_count(e2) == 14
        assert d.swap_cache_get_folio(e) == 1


def test_zero_bit_in_the_word(D4):
    with D4(2048) as d:
        e = d.folio_alloc_swap(3)
        d.swap_duplicate(e)
        d.set_zero(e)
        assert d.is_zero(e)
        assert d.swap_count(e) == 2 and d.swap_cache_get_folio(e) == 3
        d.swap_cache_del_folio(e, 3, 77)
        assert d.is_zero(e) and d.swap_cache_get_shadow(e) == 77
        assert d.swap_cache_add_folio(e, 4) == 77
        assert d.is_zero(e)                   # Z survives the swap cache
        d.zswap_entry_store(e, 9)             # a zswap store clears it
        assert not d.is_zero(e) and d.zswap_entry_load(e) == 9
        d.set_zero(e)
        assert d.zswap_entry_load(e) is None
        d.swap_free(e)
        d.swap_free(e)
        e2 = d.folio_alloc_swap(5)
        assert e2 == e and not d.is_zero(e2)


def test_memcg_table_with_the_swap_table(D4):
    with D4(4 * CLUSTER) as d:
        a = d.swap_out_many(CLUSTER - 1, "zswap", memcg=7)
        s = d.stats()
        assert s["bytes_memcg_table"] == MEMCG_TABLE
        b = d.swap_out_many(CLUSTER + 1, "zero", memcg=65535)
        s = d.stats()
        assert s["bytes_memcg_table"] == 3 * MEMCG_TABLE == s["bytes_swap_table"] // 4
        d.swap_free_many(a)
        assert d.stats()["bytes_memcg_table"] == 2 * MEMCG_TABLE
        d.swap_free_many(b)
        s = d.stats()
        assert s["bytes_memcg_table"] == 0
        assert s["bytes_swap_table_free"] == 3 * (TABLE + MEMCG_TABLE)


def test_cores_agree_on_a_fill():
    if len(core_names()) < 2:
        pytest.skip("one core")
    for name in ("swap-table-p1", "swap-table"):
        got = []
        for core in ("compiled", "pure"):
            with design_class(name, core)(3 * REGION) as d:
                es = d.swap_out_many(2 * REGION, "zswap")
                d.swap_free_many(array("Q", es[::3]))
                d.swap_out_many(100, "zero")
                s = d.stats()
                s.pop("core")
                got.append(s)
        assert got[0] == got[1]


@compiled_only
@pytest.mark.parametrize("name", ["swap-table-p1", "swap-table"])
def test_metadata_bytes_match_tracemalloc(name):
    """Every allocation of the compiled design is counted: the traced raw
    allocations move exactly as metadata_bytes() does."""
    D = design_class(name, "compiled")
    n = 4 * REGION
    tracemalloc.start()
    try:
        s0 = tracemalloc.get_traced_memory()[0]
        d = D(n)
        s1 = tracemalloc.get_traced_memory()[0]
        assert 0 <= (s1 - s0) - d.metadata_bytes() < 16384
        m0, t0 = d.metadata_bytes(), tracemalloc.get_traced_memory()[0]
        entries = d.swap_out_many(n - 1, "disk")
        m1, t1 = d.metadata_bytes(), tracemalloc.get_traced_memory()[0]
        assert m1 - m0 == n // CLUSTER * per_cluster(name)
        handles = array("Q", range(1, len(entries) + 1))
        m2, t2 = d.metadata_bytes(), tracemalloc.get_traced_memory()[0]
        d.zswap_entry_store_many(entries, handles)
        for _ in range(70):
            d.swap_duplicate(entries[5])
        m3, t3 = d.metadata_bytes(), tracemalloc.get_traced_memory()[0]
        assert m3 - m2 == 4 * 261 * NODE + (EXTEND_TABLE if name == "swap-table" else NODE)
        assert abs((t3 - t2) - (m3 - m2)) < 512
        d.swap_free_many(entries)
        m4, t4 = d.metadata_bytes(), tracemalloc.get_traced_memory()[0]
        assert m4 == m3                       # freed tables and nodes are kept
        assert abs(t4 - t3) < 512
        del entries, handles
        before_close = tracemalloc.get_traced_memory()[0]
        held = d.metadata_bytes()
        d.close()
        after_close = tracemalloc.get_traced_memory()[0]
        assert 0 <= (before_close - after_close) - held < 16384
    finally:
        tracemalloc.stop()


def test_lock_free_reads_under_stores_erases_and_table_reuse(D):
    """A writer fills clusters, moves folios in and out of the swap cache,
    stores and erases zswap entries and frees whole clusters (their tables
    go to the free list and come back in other clusters) while readers read
    the tables and the zswap trees with no lock: a read gives None, an
    InvalidEntryError (the slot was free), or a value written for that very
    entry -- never one of another entry's, even through a recycled table."""
    compiled = "compiled" in repr(D(1))
    clusters = 24 if compiled else 6
    rounds = 30 if compiled else 4
    n = clusters * CLUSTER
    d = D(n + 1)
    errors = []
    stop = threading.Event()

    def writer(seed):
        rng = random.Random(seed)
        try:
            for r in range(rounds):
                # a different first cluster each round: tables change cluster
                skip = d.swap_out_many(rng.randrange(1, clusters) * CLUSTER // 2, "disk")
                es = d.swap_out_many(min(n - len(skip), n // 2), "disk")
                d.swap_free_many(skip)
                d.zswap_entry_store_many(es, array("Q", [(e << 15) | r for e in es]),
                                         batch=bool(r & 1))
                for _ in range(100):
                    e = es[rng.randrange(len(es))]
                    d.swap_cache_add_folio(e, e)
                    d.zswap_entry_store(e, (e << 15) | r)
                    d.swap_cache_del_folio(e, e, e)
                d.zswap_entry_erase_many(array("Q", es[::5]))
                d.swap_free_many(es)
        except BaseException as exc:          # pragma: no cover
            errors.append(("writer", exc))
        stop.set()

    def reader(seed):
        rng = random.Random(seed)
        while not stop.is_set():
            for _ in range(200):
                e = rng.randrange(1, n + 1)
                try:
                    f = d.swap_cache_get_folio(e)
                    s = d.swap_cache_get_shadow(e)
                    h = d.zswap_entry_load(e)
                except InvalidEntryError:
                    continue
                if f is not None and f != e:
                    errors.append(("folio", e, f))
                if s is not None and s != e:
                    errors.append(("shadow", e, s))
                if h is not None and h >> 15 != e:
                    errors.append(("handle", e, h))

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
    assert s["used"] == 0 and s["bytes_swap_table"] == 0
    assert s["bytes_swap_table_free"] > 0
    assert s["lockless_loads"] > 0
    assert s["locked_loads"] <= s["lockless_loads"]
