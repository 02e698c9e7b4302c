"""Batch operations (docs/semantics.md, "Batch operations"): VSwap's
alloc_many, free_many and zswap_entry_*_many, and Zswap's store_many,
load_many and invalidate_many.  Statuses per entry, buffers of every integer
width, argument checking, equivalence with the single-entry calls."""

import array
import gc
import random
import re
import weakref

import numpy as np
import pytest

from cores import NO_LIMIT
from vswapfast.batch import (BATCH_BAD_HANDLE, BATCH_CORRUPT, BATCH_EMPTY,
                             BATCH_FOREIGN, BATCH_INVALID, BATCH_OK,
                             BATCH_REJECTED, HANDLE_LIMIT)
from vswapfast.errors import InvalidEntryError, SwapFullError
from vswapfast.zswap_entry import ZswapEntryView
from vswap_support import Token, assert_same_snapshot, snapshot
from zswap_support import (ZERO_PAGE, assert_same_pool_snapshot,
                           check_pool_consistency, pool_snapshot, random_page,
                           seeded, text_pages, without_lock_stats)

PAGE = 4096
OK, EMPTY, FOREIGN, REJECTED = BATCH_OK, BATCH_EMPTY, BATCH_FOREIGN, BATCH_REJECTED
INVALID, BAD_HANDLE, CORRUPT = BATCH_INVALID, BATCH_BAD_HANDLE, BATCH_CORRUPT


def statuses(result):
    """A status array as a list, after checking its type."""
    assert type(result) is array.array and result.typecode == "b"
    return list(result)


def u64(values):
    return array.array("Q", values)


def zeros64(n):
    return np.zeros(n, dtype=np.uint64)


def T(i):
    return text_pages()[i]


def R(i):
    return random_page(seeded(2000 + i))


def without_refcounts(snap):
    snap["clusters"] = {cid: {k: v for k, v in info.items() if k != "refcount"}
                        for cid, info in snap["clusters"].items()}
    return snap


def pages_of(*pages):
    return b"".join(bytes(p) for p in pages)


#: Ways of passing the same entries: every buffer of integers a caller may
#: have at hand.
ENTRY_BUFFERS = {
    "array-Q": lambda v: array.array("Q", v),
    "array-q": lambda v: array.array("q", v),
    "array-l": lambda v: array.array("l", v),
    "array-L": lambda v: array.array("L", v),
    "array-I": lambda v: array.array("I", v),
    "numpy-uint64": lambda v: np.array(v, dtype=np.uint64),
    "numpy-int64": lambda v: np.array(v, dtype=np.int64),
    "numpy-int32": lambda v: np.array(v, dtype=np.int32),
    "numpy-uint32": lambda v: np.array(v, dtype=np.uint32),
    "numpy-uint16": lambda v: np.array(v, dtype=np.uint16),
    "numpy-little-endian": lambda v: np.array(v, dtype="<i8"),
    "memoryview": lambda v: memoryview(array.array("Q", v)),
    "memoryview-readonly": lambda v: memoryview(bytes(array.array("Q", v))).cast("Q"),
}


# --------------------------------------------------------------------------
# alloc_many


def test_alloc_many_returns_first_entries(space):
    got = space.alloc_many(5)
    assert type(got) is array.array and got.typecode == "Q"
    assert list(got) == list(range(512, 517))
    assert len(space) == 5
    assert all(e in space for e in got)


def test_alloc_many_matches_alloc(core):
    a, b = core.VSwap(cluster_shift=3), core.VSwap(cluster_shift=3)
    for nr, count in ((1, 5), (4, 3), (2, 7), (1, 9), (8, 2)):
        batch = a.alloc_many(count, nr)
        single = [b.alloc(nr) for _ in range(count)]
        assert list(batch) == single
    assert_same_snapshot(snapshot(a), snapshot(b))


def test_alloc_many_nr_aligned(small_space):
    got = small_space.alloc_many(3, 4)
    assert list(got) == [8, 12, 16]
    for e in got:
        assert e % 4 == 0
        for i in range(4):
            assert e + i in small_space


def test_alloc_many_zero(space):
    got = space.alloc_many(0)
    assert type(got) is array.array and got.typecode == "Q" and len(got) == 0
    assert len(space) == 0 and space.nr_clusters == 0


def test_alloc_many_new_descriptors_are_empty(small_space):
    for e in small_space.alloc_many(8):
        assert small_space.zswap_entry_load(e) is None
        assert small_space.swap_cache_get_folio(e) is None
        assert small_space.swap_cache_get_shadow(e) is None
        assert small_space.get_slot(e) == 0


def test_alloc_many_fills_exactly(small_space):
    got = small_space.alloc_many(32)
    assert sorted(got) == list(range(8, 40))
    with pytest.raises(SwapFullError):
        small_space.alloc(1)


@pytest.mark.parametrize("before", [0, 5, 31])
def test_alloc_many_is_all_or_nothing(small_space, before):
    kept = [small_space.alloc() for _ in range(before)]
    snap = without_refcounts(snapshot(small_space))
    with pytest.raises(SwapFullError, match="no cluster id left"):
        small_space.alloc_many(32 - before + 1)
    # The entries are all given back; the thread's allocation cache, and so
    # a cluster's refcount, may have moved.
    assert_same_snapshot(snap, without_refcounts(snapshot(small_space)))
    assert list(small_space.entries()) == kept
    # What is left can still be had, in one batch.
    got = small_space.alloc_many(32 - before)
    assert len(got) == 32 - before and len(small_space) == 32


def test_alloc_many_all_or_nothing_releases_new_clusters(small_space):
    small_space.alloc(2)                # cluster 1 serves order 1
    with pytest.raises(SwapFullError):
        small_space.alloc_many(100)
    assert small_space.nr_clusters == 1
    assert len(small_space) == 2


@pytest.mark.parametrize("count", [True, 1.0, "3", None])
def test_alloc_many_count_type(space, count):
    with pytest.raises(TypeError, match="count must be an int"):
        space.alloc_many(count)


def test_alloc_many_count_value(space):
    with pytest.raises(ValueError, match=re.escape("count must be at least 0, not -1")):
        space.alloc_many(-1)


@pytest.mark.parametrize("nr, match", [
    (3, "nr must be a power of two from 1 to 512, not 3"),
    (1024, "nr must be a power of two from 1 to 512, not 1024"),
    (0, "nr must be at least 1, not 0"),
])
def test_alloc_many_nr_value(space, nr, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        space.alloc_many(2, nr)
    assert len(space) == 0


def test_alloc_many_types_before_values(space):
    with pytest.raises(TypeError, match="nr must be an int"):
        space.alloc_many(-1, "x")


# --------------------------------------------------------------------------
# the entries buffer


@pytest.mark.parametrize("kind", sorted(ENTRY_BUFFERS))
def test_entries_of_every_integer_buffer(small_space, kind):
    entries = [small_space.alloc() for _ in range(4)]
    buf = ENTRY_BUFFERS[kind](entries)
    st = small_space.zswap_entry_store_many(buf, ENTRY_BUFFERS[kind]([1, 2, 3, 4]))
    assert statuses(st) == [EMPTY] * 4
    out = zeros64(4)
    assert statuses(small_space.zswap_entry_load_many(buf, out)) == [OK] * 4
    assert list(out) == [1, 2, 3, 4]
    assert statuses(small_space.zswap_entry_erase_many(buf)) == [OK] * 4
    assert statuses(small_space.free_many(buf)) == [OK] * 4
    assert len(small_space) == 0


def test_entries_two_dimensional_buffer_is_read_in_c_order(small_space):
    entries = [small_space.alloc() for _ in range(4)]
    grid = np.array(entries, dtype=np.uint64).reshape(2, 2)
    st = small_space.zswap_entry_store_many(grid, np.array([[5, 6], [7, 8]], dtype=np.int64))
    assert statuses(st) == [EMPTY] * 4
    assert [small_space.zswap_entry_load(e) for e in entries] == [5, 6, 7, 8]


def test_entries_empty_buffer(space):
    e = space.alloc()
    for call in (lambda: space.free_many(u64([])),
                 lambda: space.zswap_entry_store_many(u64([]), u64([])),
                 lambda: space.zswap_entry_load_many(u64([]), zeros64(0)),
                 lambda: space.zswap_entry_erase_many(np.array([], dtype=np.int32))):
        assert statuses(call()) == []
    assert list(space.entries()) == [e]


NOT_INT_BUFFERS = [
    [1, 2, 3],
    (1,),
    7,
    None,
    "abc",
    np.array([1.0, 2.0]),
    array.array("d", [1.0]),
    np.array([True, False]),
]


def _name(x):
    return type(x).__name__


@pytest.mark.parametrize("bad", NOT_INT_BUFFERS, ids=_name)
@pytest.mark.parametrize("method", ["free_many", "zswap_entry_store_many",
                                    "zswap_entry_load_many", "zswap_entry_erase_many"])
def test_entries_not_a_buffer_of_integers(small_space, method, bad):
    small_space.alloc()
    args = {
        "free_many": (),
        "zswap_entry_store_many": (u64([1]),),
        "zswap_entry_load_many": (zeros64(1),),
        "zswap_entry_erase_many": (),
    }[method]
    snap = snapshot(small_space)
    with pytest.raises(TypeError) as info:
        getattr(small_space, method)(bad, *args)
    assert str(info.value) == "entries must be a buffer of integers, not %s" % _name(bad)
    assert_same_snapshot(snap, snapshot(small_space))


@pytest.mark.parametrize("bad", [
    np.arange(16, dtype=np.uint64)[::2],
    np.asfortranarray(np.arange(16, dtype=np.uint64).reshape(4, 4)),
], ids=["strided", "fortran"])
def test_entries_not_contiguous(small_space, bad):
    with pytest.raises(TypeError, match=re.escape(
            "entries must be a C-contiguous buffer of integers, not ndarray")):
        small_space.free_many(bad)


def test_entries_other_byte_order_refused(small_space):
    e = small_space.alloc()
    with pytest.raises(TypeError, match="entries must be a buffer of integers"):
        small_space.free_many(np.array([e], dtype=">u8"))
    assert e in small_space


# --------------------------------------------------------------------------
# free_many


def test_free_many_statuses(small_space):
    a, b, c = (small_space.alloc() for _ in range(3))
    d = small_space.alloc(2)            # a cluster of order 1: entries 16, 17
    small_space.free(b)
    batch = np.array([a, b, 0, -1, 1 << 40, c, a, d, 5 * 8, d + 1], dtype=np.int64)
    st = small_space.free_many(batch)
    assert statuses(st) == [OK, INVALID, INVALID, INVALID, INVALID, OK, INVALID,
                            OK, INVALID, OK]
    assert len(small_space) == 0
    assert small_space.nr_clusters == 2      # this thread's caches, orders 0 and 1


def test_free_many_range_must_lie_in_one_cluster(small_space):
    entries = [small_space.alloc() for _ in range(8)]    # one cluster, 8..15
    st = small_space.free_many(u64([8, 14, 15, 10]), nr=2)
    # 14..15 is fine; 15..16 crosses into the next cluster.
    assert statuses(st) == [OK, OK, INVALID, OK]
    assert list(small_space.entries()) == [e for e in entries if e not in (8, 9, 14, 15, 10, 11)]


def test_free_many_partly_allocated_range_frees_nothing(small_space):
    entries = [small_space.alloc() for _ in range(4)]
    small_space.free(entries[1])
    st = small_space.free_many(u64([entries[0]]), nr=2)
    assert statuses(st) == [INVALID]
    assert entries[0] in small_space


def test_free_many_crosses_clusters(small_space):
    entries = list(small_space.alloc_many(20))           # clusters 1, 2 and 3
    assert small_space.nr_clusters == 3
    random.Random(4).shuffle(entries)
    st = small_space.free_many(u64(entries[:13]))
    assert statuses(st) == [OK] * 13
    assert sorted(small_space.entries()) == sorted(entries[13:])
    st = small_space.free_many(np.array(entries[13:], dtype=np.int32))
    assert statuses(st) == [OK] * 7
    # Clusters 1 and 2 were dropped from the cache when full: released;
    # cluster 3 is this thread's cached cluster, kept.
    assert small_space.nr_clusters == 1 and len(small_space) == 0
    # Every id can be handed out again.
    assert len(small_space.alloc_many(32)) == 32


def test_free_many_relists_a_full_cluster(small_space):
    first = list(small_space.alloc_many(8))                # cluster 1, full
    second = list(small_space.alloc_many(8))               # cluster 2, full
    assert {e >> 3 for e in first} == {1} and {e >> 3 for e in second} == {2}
    assert statuses(small_space.free_many(u64(first[2:4]))) == [OK, OK]
    # Cluster 1 had been found full; the free put it back on its partial
    # list, and allocation finds it there.
    assert [small_space.alloc() for _ in range(2)] == first[2:4]
    assert small_space.nr_clusters == 2


def test_free_many_drops_what_descriptors_held(small_space):
    entries = list(small_space.alloc_many(3))
    folio, zentry = Token("folio"), Token("zentry")
    small_space.swap_cache_add_folio(entries[0], folio)
    small_space.zswap_entry_store(entries[1], zentry)
    small_space.set_slot(entries[2], 99)
    refs = [weakref.ref(folio), weakref.ref(zentry)]
    del folio, zentry
    assert statuses(small_space.free_many(u64(entries))) == [OK] * 3
    gc.collect()
    assert [r() for r in refs] == [None, None]
    assert small_space.stats()["zswap_entries"] == 0


def test_free_many_matches_free(core):
    rng = random.Random(7)
    a, b = core.VSwap(cluster_shift=4), core.VSwap(cluster_shift=4)
    ea = list(a.alloc_many(60))
    eb = [b.alloc() for _ in range(60)]
    assert ea == eb
    for _ in range(3):
        picks = [rng.choice(ea + [0, 3, 1 << 30]) for _ in range(25)]
        nr = rng.choice([1, 1, 2])
        st = statuses(a.free_many(u64(picks), nr))
        expect = []
        for e in picks:
            try:
                b.free(e, nr)
            except (InvalidEntryError, ValueError):
                expect.append(INVALID)
            else:
                expect.append(OK)
        assert st == expect
        assert_same_snapshot(snapshot(a), snapshot(b))
        ea = list(a.entries())


@pytest.mark.parametrize("nr", [True, 1.5, "1", None])
def test_free_many_nr_type(space, nr):
    e = space.alloc()
    with pytest.raises(TypeError, match="nr must be an int"):
        space.free_many(u64([e]), nr)
    assert e in space


def test_free_many_nr_value(space):
    e = space.alloc()
    with pytest.raises(ValueError, match=re.escape("nr must be at least 1, not 0")):
        space.free_many(u64([e]), 0)
    assert e in space


def test_free_many_entries_type_before_nr(space):
    with pytest.raises(TypeError, match="entries must be a buffer of integers"):
        space.free_many([1], "x")


# --------------------------------------------------------------------------
# zswap_entry_store_many / load_many / erase_many


@pytest.fixture
def mixed(small_space):
    """A space with entries in every state a batch can meet.

    Returns (space, dict of name -> entry, a weak reference to the foreign
    object, which only the space holds)."""
    sp = small_space
    e = {name: sp.alloc() for name in ("empty", "handle", "foreign", "free", "int_object")}
    sp.free(e["free"])
    sp.zswap_entry_store_many(u64([e["handle"]]), u64([41]))
    foreign = Token("foreign")
    sp.zswap_entry_store(e["foreign"], foreign)
    # An int stored through the single-entry API is an ordinary object.
    sp.zswap_entry_store(e["int_object"], 7)
    return sp, e, weakref.ref(foreign)


def test_store_many_statuses(mixed):
    sp, e, ref = mixed
    batch = u64([e["empty"], e["handle"], e["foreign"], e["free"], 0, e["int_object"],
                 1 << 63, e["empty"]])
    handles = np.array([1, 2, 3, 4, 5, 6, 7, 0], dtype=np.int64)
    old = np.full(8, 99, dtype=np.uint64)
    st = sp.zswap_entry_store_many(batch, handles, old)
    assert statuses(st) == [EMPTY, OK, FOREIGN, INVALID, INVALID, FOREIGN, INVALID,
                            BAD_HANDLE]
    assert list(old) == [0, 41, 0, 0, 0, 0, 0, 0]
    gc.collect()
    assert ref() is None                # the displaced object was released
    assert [sp.zswap_entry_load(e[k]) for k in ("empty", "handle", "foreign", "int_object")] \
        == [1, 2, 3, 6]
    assert sp.stats()["zswap_entries"] == 4


def test_store_many_handle_range(small_space):
    entries = list(small_space.alloc_many(6))
    handles = array.array("Q", [0, 1, HANDLE_LIMIT - 1, HANDLE_LIMIT, (1 << 64) - 1, 1 << 63])
    st = small_space.zswap_entry_store_many(u64(entries), handles)
    assert statuses(st) == [BAD_HANDLE, EMPTY, EMPTY, BAD_HANDLE, BAD_HANDLE, BAD_HANDLE]
    assert small_space.zswap_entry_load(entries[2]) == HANDLE_LIMIT - 1
    assert small_space.zswap_entry_load(entries[0]) is None
    negative = np.array([-5], dtype=np.int32)
    assert statuses(small_space.zswap_entry_store_many(u64(entries[:1]), negative)) == [BAD_HANDLE]


def test_store_many_bad_handle_is_checked_before_the_entry(small_space):
    st = small_space.zswap_entry_store_many(u64([0, 1 << 40]), u64([0, HANDLE_LIMIT]))
    assert statuses(st) == [BAD_HANDLE, BAD_HANDLE]


def test_load_many_statuses(mixed):
    sp, e, ref = mixed
    batch = u64([e["empty"], e["handle"], e["foreign"], e["free"], 0, e["int_object"],
                 e["handle"]])
    out = np.full(7, 99, dtype=np.uint64)
    st = sp.zswap_entry_load_many(batch, out)
    assert statuses(st) == [EMPTY, OK, FOREIGN, INVALID, INVALID, FOREIGN, OK]
    assert list(out) == [0, 41, 0, 0, 0, 0, 41]
    # Loads leave everything in place.
    assert sp.zswap_entry_load(e["foreign"]) is ref() is not None
    assert sp.zswap_entry_load(e["int_object"]) == 7
    assert sp.zswap_entry_load(e["handle"]) == 41


def test_erase_many_statuses(mixed):
    sp, e, ref = mixed
    batch = u64([e["empty"], e["handle"], e["foreign"], e["free"], 0, e["int_object"],
                 e["handle"]])
    old = np.full(7, 99, dtype=np.int64)
    st = sp.zswap_entry_erase_many(batch, old)
    assert statuses(st) == [EMPTY, OK, FOREIGN, INVALID, INVALID, FOREIGN, EMPTY]
    assert list(old) == [0, 41, 0, 0, 0, 0, 0]
    gc.collect()
    assert ref() is None
    assert sp.zswap_empty()
    assert sp.stats()["zswap_entries"] == 0


def test_erase_many_without_old(mixed):
    sp, e, _ = mixed
    st = sp.zswap_entry_erase_many(u64([e["handle"], e["empty"]]))
    assert statuses(st) == [OK, EMPTY]
    assert sp.zswap_entry_load(e["handle"]) is None


def test_handles_read_back_as_ints(small_space):
    e = small_space.alloc()
    small_space.zswap_entry_store_many(u64([e]), u64([1234]))
    got = small_space.zswap_entry_load(e)
    assert type(got) is int and got == 1234
    assert small_space.zswap_entry_store(e, Token()) == 1234
    small_space.zswap_entry_store_many(u64([e]), u64([55]))
    assert small_space.zswap_entry_erase(e) == 55
    assert small_space.zswap_entry_erase(e) is None
    assert small_space.zswap_empty()


def test_handles_count_as_zswap_entries(small_space):
    entries = list(small_space.alloc_many(10))
    assert small_space.zswap_empty()
    small_space.zswap_entry_store_many(u64(entries), u64(range(1, 11)))
    assert not small_space.zswap_empty()
    assert small_space.stats()["zswap_entries"] == 10
    assert small_space.cluster_info(1)["zswap_entries"] == 8
    assert small_space.cluster_info(2)["zswap_entries"] == 2
    assert "zswap_entries=10" in repr(small_space)
    assert statuses(small_space.free_many(u64(entries))) == [OK] * 10
    assert small_space.zswap_empty()


def test_handle_calls_cross_clusters(small_space):
    entries = list(small_space.alloc_many(30))
    rng = random.Random(11)
    order = entries[:]
    rng.shuffle(order)
    handles = [rng.randrange(1, HANDLE_LIMIT) for _ in order]
    assert statuses(small_space.zswap_entry_store_many(u64(order), u64(handles))) == [EMPTY] * 30
    out = zeros64(30)
    assert statuses(small_space.zswap_entry_load_many(u64(entries), out)) == [OK] * 30
    by_entry = dict(zip(order, handles))
    assert list(out) == [by_entry[e] for e in entries]
    for e in entries:
        assert small_space.zswap_entry_load(e) == by_entry[e]


def test_handle_calls_match_single_entry_calls(core):
    """The same random work through the batch calls and through the
    single-entry calls leaves the same state."""
    rng = random.Random(3)
    a, b = core.VSwap(cluster_shift=3, max_clusters=8), core.VSwap(cluster_shift=3, max_clusters=8)
    ea = list(a.alloc_many(40))
    assert ea == [b.alloc() for _ in range(40)]
    a.free_many(u64(ea[5:9]))
    for e in ea[5:9]:
        b.free(e)
    pool = ea + [0, 3, 1 << 20]
    for _ in range(30):
        picks = [rng.choice(pool) for _ in range(rng.randrange(0, 12))]
        op = rng.choice(["store", "load", "erase"])
        if op == "store":
            handles = [rng.choice([0, rng.randrange(1, 1000)]) for _ in picks]
            old = zeros64(len(picks))
            st = statuses(a.zswap_entry_store_many(u64(picks), u64(handles), old))
            for i, (e, h) in enumerate(zip(picks, handles)):
                if h == 0:
                    assert st[i] == BAD_HANDLE
                    continue
                try:
                    prev = b.zswap_entry_load(e)
                except InvalidEntryError:
                    assert st[i] == INVALID
                    continue
                b.zswap_entry_store(e, h)
                assert st[i] == (EMPTY if prev is None else OK)
                assert old[i] == (prev or 0)
        else:
            out = zeros64(len(picks))
            fn = a.zswap_entry_load_many if op == "load" else a.zswap_entry_erase_many
            st = statuses(fn(u64(picks), out))
            for i, e in enumerate(picks):
                try:
                    prev = (b.zswap_entry_load if op == "load" else b.zswap_entry_erase)(e)
                except InvalidEntryError:
                    assert st[i] == INVALID
                    continue
                assert st[i] == (EMPTY if prev is None else OK)
                assert out[i] == (prev or 0)
        for e in a.entries():
            assert a.zswap_entry_load(e) == b.zswap_entry_load(e)
        assert a.stats()["zswap_entries"] == b.stats()["zswap_entries"]


def test_a_run_in_one_cluster_takes_its_lock_once(small_space):
    entries = list(small_space.alloc_many(8))             # all in cluster 1
    info = small_space.cluster_info

    def lock_cost(fn):
        base = info(1)["lock_acquisitions"]
        baseline = info(1)["lock_acquisitions"] - base     # cluster_info itself
        before = info(1)["lock_acquisitions"]
        fn()
        return info(1)["lock_acquisitions"] - before - baseline

    assert lock_cost(lambda: small_space.zswap_entry_store_many(
        u64(entries), u64(range(1, 9)))) == 1
    assert lock_cost(lambda: small_space.zswap_entry_load_many(u64(entries), zeros64(8))) == 1
    assert lock_cost(lambda: small_space.zswap_entry_erase_many(u64(entries))) == 1


# --------------------------------------------------------------------------
# handles, out and old: argument checking


@pytest.mark.parametrize("bad", NOT_INT_BUFFERS, ids=_name)
def test_handles_not_a_buffer_of_integers(small_space, bad):
    e = small_space.alloc()
    with pytest.raises(TypeError) as info:
        small_space.zswap_entry_store_many(u64([e]), bad)
    assert str(info.value) == "handles must be a buffer of integers, not %s" % _name(bad)
    assert small_space.zswap_empty()


def test_handles_wrong_length(small_space):
    e = small_space.alloc()
    with pytest.raises(ValueError) as info:
        small_space.zswap_entry_store_many(u64([e, e]), u64([1, 2, 3]))
    assert str(info.value) == "handles must have as many items as entries (2), not 3"
    assert small_space.zswap_empty()


BAD_U64_OUTS = [
    [0, 0],
    bytes(16),                                  # read-only
    bytearray(16),                              # bytes, not 8-byte integers
    np.zeros(2, dtype=np.uint32),
    np.zeros(2, dtype=np.float64),
    np.zeros(4, dtype=np.uint64)[::2],
    None,
]


def _out_id(x):
    if isinstance(x, np.ndarray):
        return "ndarray-%s%s" % (x.dtype, "" if x.flags.c_contiguous else "-strided")
    return _name(x)


@pytest.mark.parametrize("bad", BAD_U64_OUTS, ids=_out_id)
def test_load_many_out_type(small_space, bad):
    entries = list(small_space.alloc_many(2))
    with pytest.raises(TypeError) as info:
        small_space.zswap_entry_load_many(u64(entries), bad)
    assert str(info.value) == (
        "out must be a writable C-contiguous buffer of 8-byte integers, not %s" % _name(bad))


@pytest.mark.parametrize("bad", [b for b in BAD_U64_OUTS if b is not None], ids=_out_id)
@pytest.mark.parametrize("method", ["zswap_entry_store_many", "zswap_entry_erase_many"])
def test_old_type(small_space, method, bad):
    entries = list(small_space.alloc_many(2))
    small_space.zswap_entry_store_many(u64(entries), u64([1, 2]))
    snap = snapshot(small_space)
    args = (u64(entries), u64([3, 4])) if method == "zswap_entry_store_many" else (u64(entries),)
    with pytest.raises(TypeError) as info:
        getattr(small_space, method)(*args, old=bad)
    assert str(info.value) == (
        "old must be a writable C-contiguous buffer of 8-byte integers, not %s" % _name(bad))
    assert_same_snapshot(snap, snapshot(small_space))
    assert [small_space.zswap_entry_load(e) for e in entries] == [1, 2]


@pytest.mark.parametrize("method, name", [
    ("zswap_entry_store_many", "old"),
    ("zswap_entry_load_many", "out"),
    ("zswap_entry_erase_many", "old"),
])
def test_out_and_old_wrong_length(small_space, method, name):
    entries = list(small_space.alloc_many(3))
    small_space.zswap_entry_store_many(u64(entries), u64([1, 2, 3]))
    args = {
        "zswap_entry_store_many": lambda o: (u64(entries), u64([4, 5, 6]), o),
        "zswap_entry_load_many": lambda o: (u64(entries), o),
        "zswap_entry_erase_many": lambda o: (u64(entries), o),
    }[method]
    snap = snapshot(small_space)
    with pytest.raises(ValueError) as info:
        getattr(small_space, method)(*args(zeros64(4)))
    assert str(info.value) == "%s must have as many items as entries (3), not 4" % name
    assert_same_snapshot(snap, snapshot(small_space))


def test_out_of_signed_64_bit_integers(small_space):
    e = small_space.alloc()
    small_space.zswap_entry_store_many(u64([e]), u64([HANDLE_LIMIT - 1]))
    out = np.zeros(1, dtype=np.int64)
    assert statuses(small_space.zswap_entry_load_many(u64([e]), out)) == [OK]
    assert out[0] == HANDLE_LIMIT - 1
    out = array.array("q", [0])
    small_space.zswap_entry_erase_many(u64([e]), out)
    assert out[0] == HANDLE_LIMIT - 1


def test_types_are_checked_before_lengths(small_space):
    e = small_space.alloc()
    with pytest.raises(TypeError, match="old must be"):
        small_space.zswap_entry_store_many(u64([e]), u64([1, 2]), old=[0])
    with pytest.raises(TypeError, match="handles must be"):
        small_space.zswap_entry_store_many(u64([e]), [1], old=zeros64(3))
    assert small_space.zswap_empty()


# --------------------------------------------------------------------------
# VSwap batch calls and a zswap pool's entries


def test_store_many_displaces_a_pool_entry(zcore, pool, zspace):
    e = zspace.alloc(2)
    assert pool.store(e, T(0) + ZERO_PAGE)
    assert len(pool) == 2
    st = zspace.zswap_entry_store_many(u64([e, e + 1]), u64([8, 9]))
    assert statuses(st) == [FOREIGN, FOREIGN]
    assert len(pool) == 0
    assert pool.stats()["pool_total_size"] == 0
    assert pool.load(e) is None
    assert zspace.zswap_entry_load(e) == 8
    check_pool_consistency(pool)


def test_load_many_leaves_pool_entries(zcore, pool, zspace):
    e = zspace.alloc()
    assert pool.store(e, T(1))
    out = zeros64(1)
    assert statuses(zspace.zswap_entry_load_many(u64([e]), out)) == [FOREIGN]
    assert out[0] == 0
    assert isinstance(zspace.zswap_entry_load(e), ZswapEntryView)
    assert pool.load(e) == T(1)


def test_erase_many_frees_pool_entries(zcore, pool, zspace):
    e = zspace.alloc(2)
    assert pool.store(e, T(2) + ZERO_PAGE)
    assert statuses(zspace.zswap_entry_erase_many(u64([e, e + 1]))) == [FOREIGN, FOREIGN]
    st = pool.stats()
    assert st["stored_pages"] == st["zero_pages"] == st["pool_total_size"] == 0
    check_pool_consistency(pool)


def test_free_many_frees_pool_entries_and_slots(zcore, pool, zspace, swapfile):
    entries = list(zspace.alloc_many(6))
    st = pool.store_many(u64(entries), pages_of(*(T(i) for i in range(6))))
    assert statuses(st) == [OK] * 6
    assert pool.shrink(3) == 3
    assert len(swapfile) == 3
    assert statuses(zspace.free_many(u64(entries))) == [OK] * 6
    assert len(swapfile) == 0
    assert len(pool) == 0 and pool.stats()["pool_total_size"] == 0


# --------------------------------------------------------------------------
# Zswap.store_many / load_many / invalidate_many


DESIGNS = ["vswap", "rbtree"]


@pytest.fixture(params=DESIGNS)
def design(request):
    return request.param


@pytest.fixture
def dpool(zcore, zspace, swapfile, design):
    """A pool of each index design, writing back to ``swapfile``."""
    p = zcore.Zswap(zspace, swapfile, max_pool_bytes=NO_LIMIT, index=design)
    yield p
    try:
        p.close()
    except ValueError:
        pass


@pytest.fixture
def dbare_pool(zcore, zspace, design):
    """A pool of each index design with no swap file and writeback off."""
    p = zcore.Zswap(zspace, max_pool_bytes=NO_LIMIT, index=design, writeback=False)
    yield p
    try:
        p.close()
    except ValueError:
        pass


def test_store_many_load_many_round_trip(dpool, zspace):
    pages = [T(0), ZERO_PAGE, R(0), T(1), ZERO_PAGE, T(2)]
    entries = list(zspace.alloc_many(len(pages)))
    st = dpool.store_many(np.array(entries, dtype=np.int64), pages_of(*pages))
    assert statuses(st) == [OK] * 6
    s = dpool.stats()
    assert s["zero_pages"] == 2 and s["stored_pages"] == 4
    assert s["stored_incompressible_pages"] == 1
    assert len(dpool) == 6
    out = bytearray(6 * PAGE)
    st = dpool.load_many(u64(entries), out)
    assert statuses(st) == [OK] * 6
    assert bytes(out) == pages_of(*pages)
    # Exclusive loads: all gone.
    assert len(dpool) == 0
    assert dpool.stats()["pool_total_size"] == 0


def test_store_many_pages_as_numpy(dpool, zspace):
    entries = list(zspace.alloc_many(3))
    pages = np.zeros((3, PAGE), dtype=np.uint8)
    pages[0, :300] = np.arange(300) % 7
    pages[2] = 9
    assert statuses(dpool.store_many(u64(entries), pages)) == [OK] * 3
    out = np.full((3, PAGE), 0xAB, dtype=np.uint8)
    assert statuses(dpool.load_many(u64(entries), out)) == [OK] * 3
    assert (out == pages).all()


def test_pool_store_many_statuses(dbare_pool, zspace):
    a, b, c = (zspace.alloc() for _ in range(3))
    zspace.free(b)
    pages = pages_of(T(0), T(1), R(1), ZERO_PAGE, T(3))
    # R(1) does not compress, and without writeback it is rejected.
    st = dbare_pool.store_many(np.array([a, b, c, 0, -4], dtype=np.int64), pages)
    assert statuses(st) == [OK, INVALID, REJECTED, INVALID, INVALID]
    s = dbare_pool.stats()
    assert s["reject_compress_fail"] == 1
    assert s["stored_pages"] == 1 and len(dbare_pool) == 1
    assert dbare_pool.load(a) == T(0)


def test_store_many_rejected_page_drops_the_stale_entry(dbare_pool, zspace):
    e = zspace.alloc()
    assert dbare_pool.store(e, T(4))
    assert statuses(dbare_pool.store_many(u64([e]), R(2))) == [REJECTED]
    assert dbare_pool.load(e) is None
    assert len(dbare_pool) == 0


def test_store_many_checks_the_limit_per_page(zcore, zspace, design):
    p = zcore.Zswap(zspace, max_pool_bytes=PAGE, index=design)
    try:
        entries = list(zspace.alloc_many(3))
        st = statuses(p.store_many(u64(entries), pages_of(T(5), T(6), T(7))))
        # The first page makes the pool hit its limit: the others are
        # refused, each one counting the limit once.
        assert st == [OK, REJECTED, REJECTED]
        assert p.stats()["pool_limit_hit"] == 2
    finally:
        p.close()


def test_load_many_statuses_leave_pages_that_did_not_load(dpool, zspace):
    good, empty, zero, gone, corrupt = (zspace.alloc() for _ in range(5))
    assert dpool.store(good, T(0))
    assert dpool.store(zero, ZERO_PAGE)
    assert dpool.store(corrupt, T(1))
    assert dpool._corrupt(corrupt)
    zspace.free(gone)
    out = bytearray(b"\x5a" * (6 * PAGE))
    st = dpool.load_many(u64([good, empty, zero, gone, corrupt, 0]), out)
    assert statuses(st) == [OK, EMPTY, OK, INVALID, CORRUPT, INVALID]
    assert out[:PAGE] == T(0)
    assert out[2 * PAGE:3 * PAGE] == ZERO_PAGE
    for i in (1, 3, 4, 5):
        assert out[i * PAGE:(i + 1) * PAGE] == b"\x5a" * PAGE
    s = dpool.stats()
    assert s["decompress_fail"] == 1
    # The corrupt entry stays; the others were loaded exclusively.
    assert len(dpool) == 1 and s["stored_pages"] == 1


def test_load_many_not_exclusive(dpool, zspace):
    entries = list(zspace.alloc_many(2))
    assert statuses(dpool.store_many(u64(entries), pages_of(T(2), ZERO_PAGE))) == [OK, OK]
    dpool.exclusive_loads = False
    out = bytearray(2 * PAGE)
    assert statuses(dpool.load_many(u64(entries), out)) == [OK, OK]
    assert statuses(dpool.load_many(u64(entries), out)) == [OK, OK]
    assert bytes(out) == pages_of(T(2), ZERO_PAGE)
    assert len(dpool) == 2


def test_invalidate_many_statuses(dpool, zspace):
    a, b, c, d = (zspace.alloc() for _ in range(4))
    assert dpool.store(a, T(3)) and dpool.store(c, ZERO_PAGE)
    zspace.free(d)
    st = dpool.invalidate_many(u64([a, b, c, d, 0, a]))
    assert statuses(st) == [OK, EMPTY, OK, INVALID, INVALID, EMPTY]
    assert len(dpool) == 0
    assert dpool.stats()["pool_total_size"] == 0


def test_pool_batches_cross_clusters(zcore, design):
    space = zcore.VSwap(cluster_shift=2)
    p = zcore.Zswap(space, max_pool_bytes=NO_LIMIT, index=design)
    try:
        entries = list(space.alloc_many(10))
        random.Random(1).shuffle(entries)
        pages = [T(i) if i % 3 else ZERO_PAGE for i in range(10)]
        assert statuses(p.store_many(u64(entries), pages_of(*pages))) == [OK] * 10
        for e, page in zip(entries, pages):
            assert p.read(e) == page
        out = bytearray(10 * PAGE)
        assert statuses(p.load_many(u64(entries[::-1]), out)) == [OK] * 10
        assert bytes(out) == pages_of(*pages[::-1])
    finally:
        p.close()


def test_pool_batches_match_single_entry_calls(zcore, tmp_path, design):
    """Random work through the batch calls and through the single-entry
    calls on two pools leaves the same pages, statuses and counters."""
    rng = random.Random(17)
    pools = []
    for name in ("a", "b"):
        sp = zcore.VSwap(cluster_shift=4)
        sf = zcore.SwapFile(str(tmp_path / name), 64 * PAGE)
        # A rejected store waits for the shrink worker it woke: both pools
        # then see the same writebacks.
        pools.append(zcore.Zswap(sp, sf, max_pool_bytes=12 * PAGE, index=design,
                                 wait_for_shrink_worker=True))
    a, b = pools
    try:
        ea = list(a.space.alloc_many(40))
        assert ea == [b.space.alloc() for _ in range(40)]
        choices = [T(i) for i in range(12)] + [ZERO_PAGE, R(5), R(6)]
        for _ in range(25):
            picks = [rng.choice(ea + [0]) for _ in range(rng.randrange(1, 8))]
            op = rng.choice(["store", "store", "load", "invalidate"])
            if op == "store":
                pages = [rng.choice(choices) for _ in picks]
                st = statuses(a.store_many(u64(picks), pages_of(*pages)))
                expect = []
                for e, page in zip(picks, pages):
                    try:
                        expect.append(OK if b.store(e, page) else REJECTED)
                    except InvalidEntryError:
                        expect.append(INVALID)
            elif op == "load":
                out = bytearray(len(picks) * PAGE)
                st = statuses(a.load_many(u64(picks), out))
                expect = []
                for i, e in enumerate(picks):
                    try:
                        page = b.load(e)
                    except InvalidEntryError:
                        expect.append(INVALID)
                        continue
                    expect.append(EMPTY if page is None else OK)
                    if page is not None:
                        assert out[i * PAGE:(i + 1) * PAGE] == page
            else:
                st = statuses(a.invalidate_many(u64(picks)))
                expect = []
                for e in picks:
                    try:
                        expect.append(OK if b.invalidate(e) else EMPTY)
                    except InvalidEntryError:
                        expect.append(INVALID)
            assert st == expect, op
            assert without_lock_stats(a.stats()) == without_lock_stats(b.stats())
        for e in ea:
            assert a.space.get_slot(e) == b.space.get_slot(e)
    finally:
        for p in pools:
            p.close()
            p.swapfile.close()


def test_pool_batch_argument_errors(dpool, zspace):
    entries = list(zspace.alloc_many(2))
    assert dpool.store(entries[0], T(0))
    snap = pool_snapshot(dpool)
    with pytest.raises(TypeError) as info:
        dpool.store_many(u64(entries), [0] * 8192)
    assert str(info.value) == "pages must be a buffer, not list"
    with pytest.raises(ValueError) as info:
        dpool.store_many(u64(entries), bytes(PAGE))
    assert str(info.value) == "pages must be 8192 bytes, not 4096"
    with pytest.raises(TypeError) as info:
        dpool.store_many([1, 2], bytes(2 * PAGE))
    assert str(info.value) == "entries must be a buffer of integers, not list"
    with pytest.raises(TypeError) as info:
        dpool.load_many(u64(entries), bytes(2 * PAGE))
    assert str(info.value) == "out must be a writable buffer, not bytes"
    with pytest.raises(TypeError) as info:
        dpool.load_many(u64(entries), None)
    assert str(info.value) == "out must be a writable buffer, not NoneType"
    with pytest.raises(ValueError) as info:
        dpool.load_many(u64(entries), bytearray(3 * PAGE))
    assert str(info.value) == "out must be 8192 bytes, not 12288"
    with pytest.raises(TypeError) as info:
        dpool.invalidate_many(np.array([1.0]))
    assert str(info.value) == "entries must be a buffer of integers, not ndarray"
    assert_same_pool_snapshot(snap, pool_snapshot(dpool))


def test_pool_batch_types_before_sizes(dpool, zspace):
    with pytest.raises(TypeError, match="entries must be"):
        dpool.store_many("x", bytes(3))


def test_pool_batches_on_a_closed_pool(dpool, zspace):
    e = zspace.alloc()
    dpool.close()
    for call in (lambda: dpool.store_many(u64([e]), bytes(PAGE)),
                 lambda: dpool.load_many(u64([e]), bytearray(PAGE)),
                 lambda: dpool.invalidate_many(u64([e]))):
        with pytest.raises(ValueError, match="zswap pool is closed"):
            call()


def test_pool_batches_with_no_entries(dpool):
    assert statuses(dpool.store_many(u64([]), b"")) == []
    assert statuses(dpool.load_many(u64([]), bytearray())) == []
    assert statuses(dpool.invalidate_many(u64([]))) == []
