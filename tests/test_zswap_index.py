"""Zswap index designs (docs/semantics.md, "Zswap index designs" and "Lock
statistics"): ZswapIndex in each design with the seed's zswap entry API and
its batch forms, and Zswap pools that keep their entries in each design."""

import array
import importlib
import random
import sys
import threading
import weakref

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (Bundle, RuleBasedStateMachine, invariant,
                                 multiple, precondition, rule)

from cores import NO_LIMIT, core_names, load_zswap_core
from vswapfast.batch import (BATCH_BAD_HANDLE, BATCH_CORRUPT, BATCH_EMPTY,
                             BATCH_FOREIGN, BATCH_INVALID, BATCH_OK,
                             HANDLE_LIMIT, INDEX_DESIGNS)
from vswapfast.errors import InvalidEntryError, SwapFullError
from vswap_support import Index, Token
from zswap_support import (LOCK_STAT_KEYS, POOL_STAT_KEYS, ZERO_PAGE,
                           clear_referenced, random_page, seeded, text_pages,
                           without_lock_stats)

PAGE = 4096
DESIGNS = list(INDEX_DESIGNS)
TREES = ["rbtree"]
INDEX_STAT_KEYS = {"design", "entries", "locks", "lock_acquisitions", "lock_contended"}

#: Where each core's ZswapIndex lives.
INDEX_MODULES = {"compiled": "vswapfast._zswap_index", "pure": "vswapfast.pure.zswap_index"}


def index_class(core_name):
    return importlib.import_module(INDEX_MODULES[core_name]).ZswapIndex


@pytest.fixture
def ZswapIndex(core_name):
    """The ZswapIndex class of the core under test."""
    return index_class(core_name)


@pytest.fixture(params=DESIGNS)
def design(request):
    return request.param


@pytest.fixture(params=TREES)
def tree_design(request):
    return request.param


@pytest.fixture
def index(ZswapIndex, small_space, design):
    """An index of each design over a space of 4 clusters of 8."""
    return ZswapIndex(small_space, design)


def u64(values):
    return array.array("Q", values)


def statuses(result):
    assert type(result) is array.array and result.typecode == "b"
    return list(result)


def T(i):
    return text_pages()[i]


def R(i):
    return random_page(seeded(3000 + i))


def lock_counts(ix):
    s = ix.stats()
    return s["lock_acquisitions"], s["lock_contended"]


# --------------------------------------------------------------------------
# construction


def test_default_design_is_vswap(ZswapIndex, space):
    ix = ZswapIndex(space)
    assert ix.design == "vswap"
    assert ix.space is space


def test_design_and_space(ZswapIndex, space, design):
    ix = ZswapIndex(space, design)
    assert ix.design == design
    assert ix.space is space
    assert len(ix) == 0
    assert ix.zswap_empty()


def test_repr(ZswapIndex, core_name, small_space, design):
    ix = ZswapIndex(small_space, design)
    assert repr(ix) == "<ZswapIndex core=%s design=%s entries=0 locks=0>" % (core_name, design)
    e = small_space.alloc()
    ix.zswap_entry_store(e, Token())
    assert repr(ix) == "<ZswapIndex core=%s design=%s entries=1 locks=1>" % (core_name, design)


@pytest.mark.parametrize("bad", [None, 1, "space", object()], ids=lambda v: type(v).__name__)
def test_not_a_space(ZswapIndex, bad):
    with pytest.raises(TypeError, match="space must be a VSwap"):
        ZswapIndex(bad)


def test_space_of_the_other_core(ZswapIndex, core_name):
    other = [n for n in ("compiled", "pure") if n != core_name][0]
    if other not in core_names():
        pytest.skip("only one core under test")
    other_space = load_zswap_core(other).VSwap()
    with pytest.raises(TypeError, match="space must be a VSwap of the %s core" % core_name):
        ZswapIndex(other_space)


@pytest.mark.parametrize("bad", [None, 1, b"tree", ["tree"]], ids=lambda v: type(v).__name__)
def test_design_type(ZswapIndex, space, bad):
    with pytest.raises(TypeError) as info:
        ZswapIndex(space, bad)
    assert str(info.value) == "design must be a str, not %s" % type(bad).__name__


@pytest.mark.parametrize("bad", ["", "Tree", "tree64", "xarray"])
def test_design_value(ZswapIndex, space, bad):
    with pytest.raises(ValueError) as info:
        ZswapIndex(space, bad)
    assert str(info.value) == "design must be one of vswap, rbtree, not %r" % bad


def test_stats_of_a_new_index(ZswapIndex, space, design):
    s = ZswapIndex(space, design).stats()
    assert set(s) == INDEX_STAT_KEYS
    assert s["design"] == design
    assert s["entries"] == 0
    assert s["lock_contended"] == 0
    # A tree (and its lock) is made when it is first stored in; "vswap" has
    # one lock per live cluster.
    assert s["locks"] == 0


# --------------------------------------------------------------------------
# single-entry semantics: those of VSwap's zswap entry API


def test_store_load_erase(index, small_space):
    e = small_space.alloc()
    a, b = Token("a"), Token("b")
    assert index.zswap_entry_load(e) is None
    assert index.zswap_entry_store(e, a) is None
    assert index.zswap_entry_load(e) is a
    assert index.zswap_entry_store(e, b) is a
    assert index.zswap_entry_erase(e) is b
    assert index.zswap_entry_erase(e) is None
    assert index.zswap_entry_load(e) is None


def test_empty_and_len(index, small_space):
    entries = list(small_space.alloc_many(10))
    assert index.zswap_empty() and index.zswap_empty(entries[0])
    for i, e in enumerate(entries):
        index.zswap_entry_store(e, i)
        assert len(index) == i + 1
        assert not index.zswap_empty()
    for i, e in enumerate(entries):
        assert index.zswap_entry_erase(e) == i
    assert index.zswap_empty() and len(index) == 0


def test_same_results_as_the_space(ZswapIndex, core, design):
    """The same random work on an index and on a space's own API."""
    rng = random.Random(5)
    ref = core.VSwap(cluster_shift=3)
    sp = core.VSwap(cluster_shift=3)
    ix = ZswapIndex(sp, design)
    entries = list(sp.alloc_many(20))
    assert entries == list(ref.alloc_many(20))
    objs = [Token(str(i)) for i in range(5)] + [1, 2**61, "s"]
    for _ in range(300):
        e = rng.choice(entries + [entries[-1] + 1, 0, 7])
        op = rng.choice(["store", "load", "erase", "empty"])
        obj = rng.choice(objs)
        results = []
        for target in (ref, ix):
            try:
                if op == "store":
                    results.append(target.zswap_entry_store(e, obj))
                elif op == "load":
                    results.append(target.zswap_entry_load(e))
                elif op == "erase":
                    results.append(target.zswap_entry_erase(e))
                else:
                    results.append(target.zswap_empty())
            except InvalidEntryError as exc:
                results.append(("InvalidEntryError", str(exc)))
        assert results[0] is results[1] or results[0] == results[1], (op, e)
    assert len(ix) == ref.stats()["zswap_entries"]


@pytest.mark.parametrize("method", ["zswap_entry_store", "zswap_entry_load",
                                    "zswap_entry_erase"])
@pytest.mark.parametrize("entry", [0, -1, -(1 << 70), 5 << 3, 1 << 40, 1 << 70, 9])
def test_bad_entries_raise_as_the_space_does(index, small_space, method, entry):
    small_space.alloc()                 # entry 8; 9 is free in a live cluster
    args = (Token(),) if method == "zswap_entry_store" else ()
    with pytest.raises(InvalidEntryError) as expected:
        getattr(small_space, method)(entry, *args)
    with pytest.raises(InvalidEntryError) as got:
        getattr(index, method)(entry, *args)
    assert str(got.value) == str(expected.value)
    assert len(index) == 0


@pytest.mark.parametrize("method", ["zswap_entry_store", "zswap_entry_load",
                                    "zswap_entry_erase"])
@pytest.mark.parametrize("bad", [True, 1.0, "8", None], ids=lambda v: type(v).__name__)
def test_entry_type(index, small_space, method, bad):
    small_space.alloc()
    args = (Token(),) if method == "zswap_entry_store" else ()
    with pytest.raises(TypeError, match="swap entry must be an int, not %s" % type(bad).__name__):
        getattr(index, method)(bad, *args)


def test_index_like_entries(index, small_space):
    e = small_space.alloc()
    t = Token()
    assert index.zswap_entry_store(Index(e), t) is None
    assert index.zswap_entry_load(np.uint64(e)) is t
    assert index.zswap_entry_erase(np.int32(e)) is t


def test_store_none(index, small_space):
    e = small_space.alloc()
    with pytest.raises(TypeError, match="zentry must not be None"):
        index.zswap_entry_store(e, None)
    # The type of the entry comes first.
    with pytest.raises(TypeError, match="swap entry must be an int"):
        index.zswap_entry_store("x", None)
    # And the zentry before the entry's value.
    with pytest.raises(TypeError, match="zentry must not be None"):
        index.zswap_entry_store(0, None)


def test_stored_objects_are_released(index, small_space):
    e = small_space.alloc()
    t = Token()
    r = weakref.ref(t)
    index.zswap_entry_store(e, t)
    del t
    assert r() is not None
    index.zswap_entry_erase(e)
    assert r() is None


def test_tree_designs_keep_entries_out_of_the_descriptors(ZswapIndex, small_space, tree_design):
    ix = ZswapIndex(small_space, tree_design)
    e = small_space.alloc()
    ix.zswap_entry_store(e, Token())
    assert small_space.zswap_entry_load(e) is None
    assert small_space.zswap_empty()
    assert small_space.stats()["zswap_entries"] == 0
    assert len(ix) == 1 and not ix.zswap_empty()
    # And the space's own zswap entry is another thing altogether.
    mine = Token("space")
    small_space.zswap_entry_store(e, mine)
    assert ix.zswap_entry_load(e) is not mine


def test_vswap_design_is_the_space(ZswapIndex, small_space):
    ix = ZswapIndex(small_space, "vswap")
    e = small_space.alloc()
    t = Token()
    ix.zswap_entry_store(e, t)
    assert small_space.zswap_entry_load(e) is t
    assert ix.zswap_entry_load(e) is t
    small_space.free(e)
    assert ix.zswap_empty() and len(ix) == 0


def test_indexes_of_a_design_share_nothing(ZswapIndex, small_space, tree_design):
    a = ZswapIndex(small_space, tree_design)
    b = ZswapIndex(small_space, tree_design)
    e = small_space.alloc()
    a.zswap_entry_store(e, 1)
    assert b.zswap_entry_load(e) is None
    assert len(a) == 1 and len(b) == 0


def test_tree_designs_are_not_told_of_frees(ZswapIndex, small_space, tree_design):
    """A stand-alone tree is the kernel's tree: the user erases before
    freeing.  An entry left behind stays, out of reach until its swap
    entry is allocated again."""
    ix = ZswapIndex(small_space, tree_design)
    e = small_space.alloc()
    ix.zswap_entry_store(e, 5)
    small_space.free(e)
    assert len(ix) == 1 and not ix.zswap_empty()
    with pytest.raises(InvalidEntryError):
        ix.zswap_entry_load(e)
    assert small_space.alloc() == e
    assert ix.zswap_entry_erase(e) == 5
    assert ix.zswap_empty()


# --------------------------------------------------------------------------
# batch calls


def test_batch_statuses(index, small_space):
    sp = small_space
    empty, handle, foreign, gone, int_object = (sp.alloc() for _ in range(5))
    sp.free(gone)
    index.zswap_entry_store_many(u64([handle]), u64([41]))
    obj = Token("foreign")
    r = weakref.ref(obj)
    index.zswap_entry_store(foreign, obj)
    del obj
    index.zswap_entry_store(int_object, 7)

    out = np.full(7, 99, dtype=np.uint64)
    batch = u64([empty, handle, foreign, gone, 0, int_object, 1 << 63])
    assert statuses(index.zswap_entry_load_many(batch, out)) == [
        BATCH_EMPTY, BATCH_OK, BATCH_FOREIGN, BATCH_INVALID, BATCH_INVALID,
        BATCH_FOREIGN, BATCH_INVALID]
    assert list(out) == [0, 41, 0, 0, 0, 0, 0]
    assert r() is not None

    old = np.full(8, 99, dtype=np.uint64)
    batch = u64([empty, handle, foreign, gone, 0, int_object, handle, empty])
    handles = np.array([1, 2, 3, 4, 5, 6, 7, HANDLE_LIMIT], dtype=np.uint64)
    assert statuses(index.zswap_entry_store_many(batch, handles, old)) == [
        BATCH_EMPTY, BATCH_OK, BATCH_FOREIGN, BATCH_INVALID, BATCH_INVALID,
        BATCH_FOREIGN, BATCH_OK, BATCH_BAD_HANDLE]
    assert list(old) == [0, 41, 0, 0, 0, 0, 2, 0]
    assert r() is None
    assert [index.zswap_entry_load(e) for e in (empty, handle, foreign, int_object)] \
        == [1, 7, 3, 6]

    obj = Token("again")
    r = weakref.ref(obj)
    index.zswap_entry_store(foreign, obj)
    del obj
    old = np.full(6, 99, dtype=np.int64)
    batch = u64([empty, handle, foreign, gone, int_object, empty])
    assert statuses(index.zswap_entry_erase_many(batch, old)) == [
        BATCH_OK, BATCH_OK, BATCH_FOREIGN, BATCH_INVALID, BATCH_OK, BATCH_EMPTY]
    assert list(old) == [1, 7, 0, 0, 6, 0]
    assert r() is None
    assert index.zswap_empty() and len(index) == 0


def test_batch_buffers(index, small_space):
    entries = list(small_space.alloc_many(4))
    for kind in (np.int32, np.uint64, np.int64):
        buf = np.array(entries, dtype=kind)
        assert statuses(index.zswap_entry_store_many(buf, buf)) == [BATCH_EMPTY] * 4
        out = np.zeros(4, dtype=np.uint64)
        assert statuses(index.zswap_entry_load_many(memoryview(buf), out)) == [BATCH_OK] * 4
        assert list(out) == entries
        assert statuses(index.zswap_entry_erase_many(array.array("l", entries))) \
            == [BATCH_OK] * 4


def test_batch_argument_errors(index, small_space):
    entries = list(small_space.alloc_many(2))
    with pytest.raises(TypeError) as info:
        index.zswap_entry_store_many([1, 2], u64([1, 2]))
    assert str(info.value) == "entries must be a buffer of integers, not list"
    with pytest.raises(TypeError) as info:
        index.zswap_entry_store_many(u64(entries), np.array([1.0, 2.0]))
    assert str(info.value) == "handles must be a buffer of integers, not ndarray"
    with pytest.raises(ValueError) as info:
        index.zswap_entry_store_many(u64(entries), u64([1]))
    assert str(info.value) == "handles must have as many items as entries (2), not 1"
    with pytest.raises(TypeError) as info:
        index.zswap_entry_load_many(u64(entries), bytearray(16))
    assert str(info.value) == (
        "out must be a writable C-contiguous buffer of 8-byte integers, not bytearray")
    with pytest.raises(ValueError) as info:
        index.zswap_entry_erase_many(u64(entries), np.zeros(3, dtype=np.uint64))
    assert str(info.value) == "old must have as many items as entries (2), not 3"
    assert index.zswap_empty()


def test_batch_and_single_calls_agree_across_designs(ZswapIndex, core):
    """Every design gives the same statuses and handles for the same work."""
    rng = random.Random(9)
    spaces = [core.VSwap(cluster_shift=3, max_clusters=8) for _ in DESIGNS]
    indexes = [ZswapIndex(sp, d) for sp, d in zip(spaces, DESIGNS)]
    entries = [list(sp.alloc_many(50)) for sp in spaces]
    assert all(e == entries[0] for e in entries)
    entries = entries[0]
    for sp in spaces:
        sp.free_many(u64(entries[10:15]))
    pool = entries + [0, 5, 1 << 30]
    for _ in range(40):
        picks = u64(rng.choice(pool) for _ in range(rng.randrange(0, 16)))
        op = rng.choice(["store", "load", "erase"])
        handles = u64(rng.choice([0, 3, 9, 2**40, HANDLE_LIMIT]) for _ in picks)
        results = []
        for ix in indexes:
            out = np.zeros(len(picks), dtype=np.uint64)
            if op == "store":
                st = ix.zswap_entry_store_many(picks, handles, out)
            elif op == "load":
                st = ix.zswap_entry_load_many(picks, out)
            else:
                st = ix.zswap_entry_erase_many(picks, out)
            results.append((statuses(st), list(out)))
        assert all(r == results[0] for r in results), op
        assert len({len(ix) for ix in indexes}) == 1
        e = rng.choice(entries[:10] + entries[15:])
        assert len({ix.zswap_entry_load(e) for ix in indexes}) == 1


# --------------------------------------------------------------------------
# lock statistics


def test_lock_statistics_count_every_acquisition(ZswapIndex, small_space, design):
    ix = ZswapIndex(small_space, design)
    entries = list(small_space.alloc_many(8))           # one cluster
    ix.zswap_entry_store(entries[0], 1)                  # make the tree
    a0, _ = lock_counts(ix)
    a1, _ = lock_counts(ix)
    own = a1 - a0                       # what stats() itself takes
    for e in entries:
        ix.zswap_entry_store(e, 2)
        ix.zswap_entry_load(e)
    a2, _ = lock_counts(ix)
    assert a2 - a1 - own == 16
    ix.zswap_entry_store_many(u64(entries), u64(range(1, 9)))
    a3, c3 = lock_counts(ix)
    # The trees take their lock once per entry, a cluster once per run.
    assert a3 - a2 - own == (1 if design == "vswap" else 8)
    assert 0 <= c3 <= a3


def test_vswap_design_counts_the_cluster_locks(ZswapIndex, small_space):
    ix = ZswapIndex(small_space, "vswap")
    entries = list(small_space.alloc_many(20))
    assert ix.stats()["locks"] == small_space.nr_clusters == 3
    a0, _ = lock_counts(ix)
    a1, _ = lock_counts(ix)
    own = a1 - a0
    # Any use of a cluster lock counts, the space's own calls included.
    small_space.get_slot(entries[0])
    small_space.swap_cache_get_folio(entries[19])
    a2, _ = lock_counts(ix)
    assert a2 - a1 - own >= 2


def test_contention_on_the_tree_lock(ZswapIndex, core):
    """Two threads hammering the one tree lock.  Contention is timing
    dependent: the counts must balance; contention is looked for, not
    required."""
    space = core.VSwap()
    ix = ZswapIndex(space, "rbtree")
    n = 4096                # long batches, so that the threads overlap
    halves = [list(space.alloc_many(n)) for _ in range(2)]
    ix.zswap_entry_store(halves[0][0], 1)        # the tree and its lock
    rounds = 8
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for attempt in range(5):
            barrier = threading.Barrier(2)
            errors = []

            def hammer(entries):
                try:
                    barrier.wait()
                    buf = u64(entries)
                    out = np.zeros(len(entries), dtype=np.uint64)
                    for _ in range(rounds):
                        ix.zswap_entry_store_many(buf, buf)
                        ix.zswap_entry_load_many(buf, out)
                        for e in entries[:8]:
                            ix.zswap_entry_load(e)
                except BaseException as exc:        # handed to the main thread
                    errors.append(exc)

            before, _ = lock_counts(ix)
            own = lock_counts(ix)[0] - before
            start = lock_counts(ix)[0]
            threads = [threading.Thread(target=hammer, args=(h,)) for h in halves]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert not errors, errors
            acquisitions, contended = lock_counts(ix)
            assert acquisitions - start - own == 2 * rounds * (n * 2 + 8)
            assert 0 <= contended <= acquisitions
            if contended:
                break
    finally:
        sys.setswitchinterval(old_interval)
    assert len(ix) == 2 * n
    if not contended:
        pytest.skip("no contention seen in %d attempts" % (attempt + 1))


# --------------------------------------------------------------------------
# Zswap pools of each design


@pytest.fixture
def zindex_pool(zcore, zspace, swapfile, design):
    p = zcore.Zswap(zspace, swapfile, max_pool_bytes=NO_LIMIT, index=design)
    yield p
    try:
        p.close()
    except ValueError:
        pass


def test_pool_index_property(zcore, zspace):
    p = zcore.Zswap(zspace)
    assert p.index == "vswap"
    p.close()
    assert p.index == "vswap"
    for d in DESIGNS:
        p = zcore.Zswap(zspace, index=d)
        assert p.index == d
        p.close()


def test_pool_index_argument(zcore, zspace):
    with pytest.raises(TypeError) as info:
        zcore.Zswap(zspace, index=1)
    assert str(info.value) == "index must be a str, not int"
    with pytest.raises(ValueError) as info:
        zcore.Zswap(zspace, index="btree")
    assert str(info.value) == "index must be one of vswap, rbtree, not 'btree'"
    # Types come before values.
    with pytest.raises(TypeError, match="max_pool_bytes"):
        zcore.Zswap(zspace, max_pool_bytes="1", index="btree")
    with pytest.raises(TypeError, match="index must be a str"):
        zcore.Zswap(zspace, max_pool_bytes=-1, index=None)
    # Nothing was bound.
    zcore.Zswap(zspace).close()


def test_pool_stats_keys(zindex_pool):
    s = zindex_pool.stats()
    assert set(s) == POOL_STAT_KEYS
    assert LOCK_STAT_KEYS <= set(s)


def test_pool_round_trip(zindex_pool, zspace, design):
    p = zindex_pool
    e = zspace.alloc(4)
    pages = [T(0), ZERO_PAGE, R(0), T(1)]
    assert p.store(e, b"".join(pages))
    assert len(p) == 4
    for i, page in enumerate(pages):
        assert p.read(e + i) == page
    s = p.stats()
    # Not a zero-filled folio: its zero page is compressed with the rest.
    assert s["stored_pages"] == 4 and s["zero_pages"] == 0
    assert s["stored_incompressible_pages"] == 1 and s["lru_length"] == 4
    if design == "vswap":
        assert zspace.stats()["zswap_entries"] == 4
    else:
        # The descriptors' zswap field stays empty.
        assert zspace.stats()["zswap_entries"] == 0
        assert zspace.zswap_empty()
        assert all(zspace.zswap_entry_load(e + i) is None for i in range(4))
    for i, page in enumerate(pages):
        assert p.load(e + i) == page
        assert p.load(e + i) is None
    s = p.stats()
    assert s["stored_pages"] == s["zero_pages"] == s["pool_total_size"] == 0


def test_pool_designs_behave_alike(zcore, tmp_path):
    """The same work on a pool of each design: same pages, same results,
    same counters but the lock counters."""
    rng = random.Random(23)
    pools = []
    for d in DESIGNS:
        sp = zcore.VSwap(cluster_shift=4)
        sf = zcore.SwapFile(str(tmp_path / d), 64 * PAGE)
        pools.append(zcore.Zswap(sp, sf, max_pool_bytes=10 * PAGE, index=d,
                                 wait_for_shrink_worker=True))
    try:
        entries = [list(p.space.alloc_many(40)) for p in pools]
        assert all(e == entries[0] for e in entries)
        entries = entries[0]
        choices = [T(i) for i in range(10)] + [ZERO_PAGE, R(1)]
        for step in range(150):
            op = rng.choice(["store", "store", "load", "read", "invalidate",
                             "shrink", "free", "alloc"])
            e = rng.choice(entries)
            page = rng.choice(choices)
            n = rng.randrange(1, 4)
            results = []
            for p in pools:
                try:
                    if op == "store":
                        results.append(p.store(e, page))
                    elif op == "load":
                        results.append(p.load(e))
                    elif op == "read":
                        results.append(p.read(e))
                    elif op == "invalidate":
                        results.append(p.invalidate(e))
                    elif op == "shrink":
                        results.append(p.shrink(n))
                    elif op == "free":
                        p.space.free(e)
                        results.append(None)
                    else:
                        results.append(p.space.alloc())
                except Exception as exc:            # compared across designs
                    results.append((type(exc).__name__, str(exc)))
            assert all(r == results[0] for r in results), (step, op)
            if op == "alloc" and isinstance(results[0], int):
                entries.append(results[0])
            stats = [without_lock_stats(p.stats()) for p in pools]
            assert all(s == stats[0] for s in stats), (step, op)
            assert len({len(p) for p in pools}) == 1
            slots = [[p.space.get_slot(x) for x in p.space.entries()] for p in pools]
            assert all(x == slots[0] for x in slots)
        assert stats[0]["written_back_pages"] > 0
    finally:
        for p in pools:
            p.close()
            p.swapfile.close()


def test_pool_free_invalidates(zindex_pool, zspace, swapfile):
    p = zindex_pool
    e = zspace.alloc(8)
    assert p.store(e, b"".join(T(i) for i in range(6)) + ZERO_PAGE * 2)
    assert p.shrink(2) == 2
    assert len(swapfile) == 2
    zspace.free(e, 4)
    assert len(swapfile) == 0
    assert len(p) == 4
    zspace.free_many(u64([e + 4, e + 5, e + 6, e + 7]))
    s = p.stats()
    assert len(p) == 0
    assert s["stored_pages"] == s["zero_pages"] == s["lru_length"] == 0
    assert s["pool_total_size"] == s["compressed_bytes"] == 0
    # The same entries, allocated again, hold nothing.
    again = zspace.alloc(8)
    assert again == e
    for i in range(8):
        assert p.load(again + i) is None
        assert zspace.get_slot(again + i) == 0


def test_pool_writeback(zindex_pool, zspace, swapfile, design):
    p = zindex_pool
    entries = list(zspace.alloc_many(5))
    assert statuses(p.store_many(u64(entries), b"".join(T(i) for i in range(5)))) \
        == [BATCH_OK] * 5
    # One read gives an entry its second chance.
    assert p.read(entries[0]) == T(0)
    clear_referenced(p)
    assert p.read(entries[0]) == T(0)
    assert p.shrink(3) == 3
    s = p.stats()
    assert s["written_back_pages"] == 3 and s["stored_pages"] == 2
    slots = [zspace.get_slot(e) for e in entries]
    assert slots[0] == 0 and all(slots[1:4]) and slots[4] == 0
    for i, e in enumerate(entries):
        assert p.read(e) == T(i)
    # Written back: the pool holds no entry for them any more.
    assert [p.load(e) for e in entries[1:4]] == [None] * 3
    assert p.load(entries[4]) == T(4)


def test_pool_invalidate_leaves_the_descriptors_to_the_space(zcore, zspace, tree_design):
    p = zcore.Zswap(zspace, max_pool_bytes=NO_LIMIT, index=tree_design)
    try:
        e = zspace.alloc(2)
        mine = Token("space")
        zspace.zswap_entry_store(e + 1, mine)
        assert p.store(e, T(0) + T(1))
        assert zspace.zswap_entry_load(e + 1) is mine
        assert p.invalidate(e, 2) == 2
        assert zspace.zswap_entry_load(e + 1) is mine
        assert p.invalidate(e, 2) == 0
    finally:
        p.close()
    assert zspace.zswap_entry_load(e + 1) is mine


def test_pool_close_drops_the_index(zcore, zspace, design):
    p = zcore.Zswap(zspace, max_pool_bytes=NO_LIMIT, index=design)
    entries = list(zspace.alloc_many(6))
    assert statuses(p.store_many(u64(entries), b"".join(T(i) for i in range(6)))) \
        == [BATCH_OK] * 6
    p.close()
    assert zspace.zswap_empty()
    q = zcore.Zswap(zspace, max_pool_bytes=NO_LIMIT, index=design)
    try:
        assert [q.load(e) for e in entries] == [None] * 6
        assert len(q) == 0
    finally:
        q.close()


def test_pool_corrupt_entry(zindex_pool, zspace):
    p = zindex_pool
    e = zspace.alloc()
    assert p.store(e, T(3))
    assert p._corrupt(e)
    out = bytearray(PAGE)
    assert statuses(p.load_many(u64([e]), out)) == [BATCH_CORRUPT]
    assert p.stats()["decompress_fail"] == 1
    assert len(p) == 1
    assert p.invalidate(e) == 1


def test_pool_lock_statistics(zindex_pool, zspace, design):
    p = zindex_pool
    entries = list(zspace.alloc_many(16))
    s0 = p.stats()
    assert statuses(p.store_many(u64(entries), b"".join(T(i) for i in range(16)))) \
        == [BATCH_OK] * 16
    out = bytearray(16 * PAGE)
    assert statuses(p.load_many(u64(entries), out)) == [BATCH_OK] * 16
    s1 = p.stats()
    # Every store and load took the index's lock (the cluster's, for
    # "vswap") and the LRU lock.
    assert s1["index_lock_acquisitions"] - s0["index_lock_acquisitions"] >= 32
    assert s1["lru_lock_acquisitions"] - s0["lru_lock_acquisitions"] >= 32
    for key in LOCK_STAT_KEYS:
        assert s1[key] >= s0[key] >= 0
    assert s1["index_lock_contended"] <= s1["index_lock_acquisitions"]
    assert s1["lru_lock_contended"] <= s1["lru_lock_acquisitions"]


def test_pool_threads(zcore, zspace, design):
    """Two threads storing, loading and freeing their own entries in a
    pool of each design: every page comes back and the stats balance."""
    p = zcore.Zswap(zspace, max_pool_bytes=NO_LIMIT, index=design)
    errors = []

    def work(seed):
        rng = random.Random(seed)
        try:
            for _ in range(30):
                entries = list(zspace.alloc_many(4))
                pages = [rng.choice([T(seed), T(seed + 1), ZERO_PAGE]) for _ in entries]
                st = p.store_many(u64(entries), b"".join(pages))
                assert statuses(st) == [BATCH_OK] * 4
                out = bytearray(4 * PAGE)
                if rng.random() < 0.5:
                    assert statuses(p.load_many(u64(entries), out)) == [BATCH_OK] * 4
                    assert bytes(out) == b"".join(pages)
                zspace.free_many(u64(entries))
        except BaseException as exc:                # handed to the main thread
            errors.append(exc)

    try:
        threads = [threading.Thread(target=work, args=(s,)) for s in (1, 5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        s = p.stats()
        assert len(p) == 0 and s["lru_length"] == 0
        assert s["pool_total_size"] == s["compressed_bytes"] == 0
        assert len(zspace) == 0
    finally:
        p.close()


# --------------------------------------------------------------------------
# every design against a dict


def _machine(core_name):
    zcore = load_zswap_core(core_name)
    ZswapIndex = index_class(core_name)

    class IndexDesigns(RuleBasedStateMachine):
        """The three designs, each over a space of its own, and a dict, all
        given the same calls.  Entries are erased before they are freed, as
        the kernel's users of a tree do."""

        allocated = Bundle("allocated")

        def __init__(self):
            super().__init__()
            self.spaces = [zcore.VSwap(cluster_shift=2, max_clusters=16) for _ in DESIGNS]
            self.indexes = [ZswapIndex(sp, d) for sp, d in zip(self.spaces, DESIGNS)]
            self.model = {}             # entry -> object or handle
            self.live = set()
            self.objects = [Token(str(i)) for i in range(3)]

        @staticmethod
        def same(got, expect):
            """Objects by identity, handles (ints) by value."""
            return got is expect or (type(expect) is int and got == expect)

        def each(self, method, *args):
            results = []
            for ix in self.indexes:
                try:
                    results.append(("ok", getattr(ix, method)(*args)))
                except InvalidEntryError as exc:
                    results.append(("invalid", str(exc)))
            first = results[0]
            for r in results[1:]:
                assert r[0] == first[0], (method, results)
                assert self.same(r[1], first[1]) or r[0] == "invalid" and r[1] == first[1], \
                    (method, results)
            return first

        @rule(target=allocated, nr=st.sampled_from([1, 1, 2]))
        def alloc(self, nr):
            got = []
            for sp in self.spaces:
                try:
                    got.append(sp.alloc(nr))
                except SwapFullError:
                    got.append(None)
            assert all(g == got[0] for g in got)
            if got[0] is None:
                return multiple()
            self.live.update(range(got[0], got[0] + nr))
            return got[0]

        @precondition(lambda self: self.live)
        @rule(data=st.data())
        def free(self, data):
            e = data.draw(st.sampled_from(sorted(self.live)))
            self.each("zswap_entry_erase", e)
            self.model.pop(e, None)
            for sp in self.spaces:
                sp.free(e)
            self.live.discard(e)

        @rule(e=allocated, i=st.integers(0, 2), offset=st.integers(0, 1))
        def store(self, e, i, offset):
            e += offset
            kind, got = self.each("zswap_entry_store", e, self.objects[i])
            if e in self.live:
                assert kind == "ok" and self.same(got, self.model.get(e))
                self.model[e] = self.objects[i]
            else:
                assert kind == "invalid"

        @rule(e=st.one_of(allocated, st.integers(-2, 80)))
        def load(self, e):
            kind, got = self.each("zswap_entry_load", e)
            if e in self.live:
                assert kind == "ok" and self.same(got, self.model.get(e))
            else:
                assert kind == "invalid"

        @rule(e=allocated)
        def erase(self, e):
            kind, got = self.each("zswap_entry_erase", e)
            if e in self.live:
                assert kind == "ok"
                assert self.same(got, self.model.pop(e, None))
            else:
                assert kind == "invalid"

        @rule(picks=st.lists(st.one_of(allocated, st.integers(0, 80)), max_size=8),
              handles=st.lists(st.integers(0, 2**62), min_size=8, max_size=8),
              op=st.sampled_from(["store", "load", "erase"]))
        def batch(self, picks, handles, op):
            n = len(picks)
            results = []
            for ix in self.indexes:
                out = np.zeros(n, dtype=np.uint64)
                if op == "store":
                    s = ix.zswap_entry_store_many(u64(picks), u64(handles[:n]), out)
                elif op == "load":
                    s = ix.zswap_entry_load_many(u64(picks), out)
                else:
                    s = ix.zswap_entry_erase_many(u64(picks), out)
                results.append((list(s), list(out)))
            assert all(r == results[0] for r in results)
            got_status, got_out = results[0]
            for i, e in enumerate(picks):
                if op == "store" and not 1 <= handles[i] < HANDLE_LIMIT:
                    assert got_status[i] == BATCH_BAD_HANDLE
                    continue
                if e not in self.live:
                    assert got_status[i] == BATCH_INVALID and got_out[i] == 0
                    continue
                prev = self.model.get(e)
                if prev is None:
                    assert got_status[i] == BATCH_EMPTY and got_out[i] == 0
                elif type(prev) is int:
                    assert got_status[i] == BATCH_OK and got_out[i] == prev
                else:
                    assert got_status[i] == BATCH_FOREIGN and got_out[i] == 0
                if op == "store":
                    self.model[e] = handles[i]
                elif op == "erase":
                    self.model.pop(e, None)

        @invariant()
        def sizes(self):
            for ix in self.indexes:
                assert len(ix) == len(self.model)
                assert ix.zswap_empty() == (not self.model)

    return IndexDesigns


@pytest.mark.parametrize("core_name_", core_names())
def test_designs_against_a_dict(core_name_):
    machine = _machine(core_name_)
    machine.TestCase.settings = settings(
        max_examples=60, stateful_step_count=30, deadline=None,
        suppress_health_check=[HealthCheck.too_slow])
    machine.TestCase().runTest()


# --------------------------------------------------------------------------
# "tree", the rbtree design's former name


def test_tree_is_a_deprecated_alias_of_rbtree(ZswapIndex, zcore, space):
    with pytest.warns(DeprecationWarning, match="'tree' is deprecated: it is now 'rbtree'"):
        ix = ZswapIndex(space, "tree")
    assert ix.design == "rbtree"
    e = space.alloc()
    assert ix.zswap_entry_store(e, 7) is None
    assert ix.zswap_entry_erase(e) == 7
    del ix
    with pytest.warns(DeprecationWarning, match="index 'tree' is deprecated"):
        pool = zcore.Zswap(space, None, max_pool_bytes=NO_LIMIT, index="tree")
    try:
        assert pool.index == "rbtree"
    finally:
        pool.close()
