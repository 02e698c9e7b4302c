"""Reference counting, re-entrancy from ``__del__`` and memory use.

Descriptors hold strong references: one per descriptor holding an object.
They are dropped when the object is erased, replaced or freed, and when the
space is destroyed.  Objects are released after the cluster lock is dropped,
so a ``__del__`` that calls back into the same space must not deadlock.
"""

import faulthandler
import gc
import random
import sys
import threading
import tracemalloc

import pytest

from vswapfast.errors import InvalidEntryError
from vswap_support import Token, Worker


def refs(obj):
    # minus this function's own reference (the argument)
    return sys.getrefcount(obj) - 1


# --------------------------------------------------------------------------
# one reference per descriptor


def test_zswap_entry_references(small_space):
    s = small_space
    z = Token("z")
    base = refs(z)
    es = [s.alloc() for _ in range(5)]
    for i, e in enumerate(es):
        assert s.zswap_entry_store(e, z) is None
        assert refs(z) == base + i + 1
    # loads hand out new references without keeping any
    for e in es:
        assert s.zswap_entry_load(e) is z
    assert refs(z) == base + 5
    # storing over it hands the old reference to the caller
    y = Token("y")
    base_y = refs(y)
    old = s.zswap_entry_store(es[0], y)
    assert refs(y) == base_y + 1
    assert old is z
    assert refs(z) == base + 5
    del old
    assert refs(z) == base + 4
    assert s.zswap_entry_erase(es[1]) is z
    assert refs(z) == base + 3
    s.free(es[2])
    assert refs(z) == base + 2
    s.free(es[3])
    s.free(es[4])
    assert refs(z) == base
    assert refs(y) == base_y + 1
    s.free(es[0])
    assert refs(y) == base_y


def test_folio_references(small_space):
    s = small_space
    f, g = Token("f"), Token("g")
    bf, bg = refs(f), refs(g)
    e = s.alloc(8, folio=f)
    assert refs(f) == bf + 8
    s.swap_cache_replace_folio(e, f, g, 4)
    assert (refs(f), refs(g)) == (bf + 4, bg + 4)
    s.swap_cache_del_folio(e + 4, f, 4, shadow=3)
    assert refs(f) == bf
    s.swap_cache_add_folio(e + 4, f, 2)
    assert refs(f) == bf + 2
    s.swap_cache_del_folio(e, g, 2)
    assert refs(g) == bg + 2
    s.swap_cache_clear_shadow(e, 8)     # folios are left alone
    assert (refs(f), refs(g)) == (bf + 2, bg + 2)
    for x in range(e, e + 8):
        s.swap_cache_get_folio(x)
    assert (refs(f), refs(g)) == (bf + 2, bg + 2)
    s.free(e, 3)
    assert refs(g) == bg + 1
    s.free(e + 3, 5)
    assert (refs(f), refs(g)) == (bf, bg)


def test_alloc_folio_references(small_space):
    s = small_space
    f = Token()
    base = refs(f)
    es = [s.alloc(2, folio=f) for _ in range(3)]
    assert refs(f) == base + 6
    for e in es:
        s.free(e, 2)
    assert refs(f) == base


def test_replace_with_itself_keeps_count(small_space):
    s = small_space
    f = Token()
    base = refs(f)
    e = s.alloc(4, folio=f)
    s.swap_cache_replace_folio(e, f, f, 4)
    assert refs(f) == base + 4
    s.zswap_entry_store(e, f)
    assert s.zswap_entry_store(e, f) is f
    assert refs(f) == base + 5
    s.free(e, 4)
    assert refs(f) == base


def test_destroying_the_space_drops_every_reference(core):
    f, g, z = Token("f"), Token("g"), Token("z")
    bases = [refs(f), refs(g), refs(z)]
    s = core.VSwap(cluster_shift=3, max_clusters=64)
    for i in range(100):
        e = s.alloc(1 << (i % 3), folio=f if i % 2 else None)
        s.zswap_entry_store(e, z)
        if i % 2 == 0:
            s.swap_cache_add_folio(e, g)
    assert refs(z) == bases[2] + 100
    del s
    gc.collect()
    assert [refs(f), refs(g), refs(z)] == bases


def test_space_holds_no_reference_to_index_objects(small_space):
    from vswap_support import Index
    s = small_space
    e = s.alloc()
    idx = Index(e)
    base = refs(idx)
    for _ in range(3):
        s.zswap_entry_store(idx, Token())
        s.zswap_entry_load(idx)
        s.set_slot(idx, 5)
        idx in s
        with pytest.raises(InvalidEntryError):
            s.get_slot(Index(e + 1))
    assert refs(idx) == base


# --------------------------------------------------------------------------
# many random operations


def _random_ops(space, pool, rng, n_ops):
    """Run ``n_ops`` random operations on ``space``.

    Returns the model: entry -> [zentry index, folio index, shadow, slot],
    using indexes into ``pool`` so the model itself holds no references.
    """
    model = {}
    allocs = []            # (entry, nr) of live allocations, maybe partly freed
    size = space.cluster_size
    keys = None            # live entries, refreshed now and then
    for step in range(n_ops):
        op = rng.random()
        # phases: growing, then draining (which releases clusters)
        draining = (step // 5000) % 2 == 1
        if draining and op < 0.36:
            op = 0.18 + op / 2
        if op < 0.18 or not model:
            if len(model) > 3000:
                continue
            nr = 1 << rng.randrange(4)
            fi = rng.randrange(len(pool)) if rng.random() < 0.5 else None
            e = space.alloc(nr, pool[fi] if fi is not None else None)
            assert e % nr == 0 and (e & (size - 1)) + nr <= size
            for x in range(e, e + nr):
                assert x not in model
                model[x] = [None, fi, None, 0]
            allocs.append((e, nr))
            continue
        if op < 0.36:
            i = rng.randrange(len(allocs))
            e, nr = allocs[i]
            live = [x for x in range(e, e + nr) if x in model]
            if not live:
                allocs[i] = allocs[-1]
                allocs.pop()
                continue
            # a sub-range: one contiguous live run from a random start
            start = rng.choice(live)
            end = start
            while end + 1 in model and end + 1 < e + nr and rng.random() < 0.7:
                end += 1
            space.free(start, end - start + 1)
            for x in range(start, end + 1):
                del model[x]
            continue
        if step % 32 == 0 or keys is None:
            keys = list(model)
        entry = keys[rng.randrange(len(keys))]
        if entry not in model:
            continue
        d = model[entry]
        if op < 0.48:
            zi = rng.randrange(len(pool))
            old = space.zswap_entry_store(entry, pool[zi])
            assert old is (pool[d[0]] if d[0] is not None else None)
            d[0] = zi
            d[3] = 0                    # one backing: the slot goes
        elif op < 0.56:
            old = space.zswap_entry_erase(entry)
            assert old is (pool[d[0]] if d[0] is not None else None)
            d[0] = None
        elif op < 0.60:
            got = space.zswap_entry_load(entry)
            assert got is (pool[d[0]] if d[0] is not None else None)
        elif op < 0.70:
            if d[1] is None:
                fi = rng.randrange(len(pool))
                assert space.swap_cache_add_folio(entry, pool[fi]) == d[2]
                d[1], d[2] = fi, None
            else:
                shadow = rng.choice([None, rng.randrange(2 ** 62)])
                space.swap_cache_del_folio(entry, pool[d[1]], shadow=shadow)
                d[1], d[2] = None, shadow
        elif op < 0.78:
            if d[1] is not None:
                ni = rng.randrange(len(pool))
                space.swap_cache_replace_folio(entry, pool[d[1]], pool[ni])
                d[1] = ni
            else:
                space.swap_cache_clear_shadow(entry)
                d[2] = None
        elif op < 0.84:
            got = space.swap_cache_get_folio(entry)
            assert got is (pool[d[1]] if d[1] is not None else None)
            assert space.swap_cache_get_shadow(entry) == d[2]
        elif op < 0.92:
            slot = rng.choice([0, rng.randrange(1, 2 ** 64)])
            assert space.set_slot(entry, slot) == d[3]
            d[3] = slot
            if slot:
                d[0] = None             # one backing: the zswap entry goes
        else:
            assert space.get_slot(entry) == d[3]
    return model


def test_random_operations_keep_refcounts_balanced(core):
    rng = random.Random(20260505)
    pool = [Token("p%d" % i) for i in range(48)]
    base = [sys.getrefcount(pool[i]) for i in range(len(pool))]
    space = core.VSwap(cluster_shift=5, max_clusters=4096)
    model = _random_ops(space, pool, rng, 100_000)
    gc.collect()
    held = [0] * len(pool)
    for d in model.values():
        if d[0] is not None:
            held[d[0]] += 1
        if d[1] is not None:
            held[d[1]] += 1
    got = [sys.getrefcount(pool[i]) for i in range(len(pool))]
    assert got == [b + h for b, h in zip(base, held)]
    st = space.stats()
    assert st["entries"] == len(model)
    assert st["zswap_entries"] == sum(d[0] is not None for d in model.values())
    assert st["swap_cache_folios"] == sum(d[1] is not None
                                          for d in model.values())
    assert st["shadows"] == sum(d[2] is not None for d in model.values())
    assert st["slots"] == sum(d[3] != 0 for d in model.values())
    assert list(space.entries()) == sorted(model)
    del space
    gc.collect()
    assert [sys.getrefcount(pool[i]) for i in range(len(pool))] == base


# --------------------------------------------------------------------------
# __del__ calling back into the space


def run_guarded(fn, timeout=30):
    """Run ``fn`` in a thread; fail (rather than hang) if it deadlocks."""
    box = []

    def target():
        try:
            fn()
            box.append(None)
        except BaseException as exc:  # handed back below
            box.append(exc)

    # A deadlock that keeps the interpreter lock would stop this thread from
    # ever timing out: the watchdog then dumps the stacks and ends the run.
    faulthandler.dump_traceback_later(timeout * 4, exit=True)
    try:
        t = threading.Thread(target=target, daemon=True)
        t.start()
        t.join(timeout)
        assert not t.is_alive(), "deadlock: the call never returned"
    finally:
        faulthandler.cancel_dump_traceback_later()
    if box[0] is not None:
        raise box[0]


class CallsBack:
    """Calls ``action`` from ``__del__`` and records what happened."""

    def __init__(self, action, log):
        self.action = action
        self.log = log

    def __del__(self):
        try:
            self.log.append(("ok", self.action()))
        except BaseException as exc:
            self.log.append(("error", exc))


def assert_all_ok(log, n):
    assert len(log) == n, log
    errors = [v for k, v in log if k == "error"]
    assert not errors, errors


def test_del_on_free_calls_back_into_the_same_cluster(small_space):
    s = small_space
    a, b, c = s.alloc(), s.alloc(), s.alloc()
    log = []

    def action():
        # same cluster as the entry being freed
        s.zswap_entry_store(b, Token("from __del__"))
        assert s.zswap_entry_load(b) is not None
        s.set_slot(b, 5)                # releases that zswap entry
        assert s.zswap_entry_load(b) is None
        assert a not in s
        return s.stats()["entries"], list(s.entries())

    s.zswap_entry_store(a, CallsBack(action, log))
    run_guarded(lambda: s.free(a))
    assert_all_ok(log, 1)
    assert log[0][1] == (2, [b, c])
    assert s.get_slot(b) == 5


def test_del_on_set_slot_calls_back_into_the_same_cluster(small_space):
    # set_slot releases the zswap entry it displaces (one backing per
    # descriptor) after the cluster lock is dropped.
    s = small_space
    a, b = s.alloc(), s.alloc()
    log = []

    def action():
        s.zswap_entry_store(b, Token("from __del__"))
        return s.get_slot(a), s.zswap_entry_load(a)

    s.zswap_entry_store(a, CallsBack(action, log))
    assert run_guarded(lambda: s.set_slot(a, 9)) is None
    assert_all_ok(log, 1)
    assert log[0][1] == (9, None)       # the new backing was already in place
    assert s.zswap_entry_load(b) is not None


def test_del_of_a_folio_on_free_calls_back(small_space):
    s = small_space
    log = []
    keep = s.alloc()

    def action():
        e = s.alloc(4)          # the same cluster order as the freed folio
        s.swap_cache_add_folio(e, Token(), 4)
        s.free(keep)
        return e

    e = s.alloc(4, folio=CallsBack(action, log))
    run_guarded(lambda: s.free(e, 4))
    assert_all_ok(log, 1)
    new = log[0][1]
    assert new in s and keep not in s
    assert s.swap_cache_get_folio(new) is not None


def test_del_on_cluster_release_calls_back(small_space):
    s = small_space
    log = []

    def action():
        # the cluster is being released: allocate (maybe reusing its id)
        e = s.alloc()
        s.zswap_entry_store(e, Token())
        return e

    e = s.alloc()
    rest = [s.alloc() for _ in range(7)]
    s.free(s.alloc())           # cluster 1 full: dropped from the cache
    for x in rest:
        s.free(x)
    s.zswap_entry_store(e, CallsBack(action, log))
    run_guarded(lambda: s.free(e))      # releases cluster 1
    assert_all_ok(log, 1)
    new = log[0][1]
    # The callback's thread has no cache of its own: a new cluster, with the
    # id just released; this thread's cached cluster 2 stays.
    assert new == 8
    assert new in s and len(s) == 1 and s.nr_clusters == 2
    assert s.cluster_info(new >> 3)["count"] == 1
    assert s.zswap_entry_load(new) is not None
    assert not s.zswap_empty()


def test_del_chain_frees_more_entries(small_space):
    s = small_space
    log = []
    es = [s.alloc() for _ in range(8)]
    # freeing es[0] drops an object whose __del__ frees es[1], and so on
    for i in range(7):
        nxt = es[i + 1]
        s.zswap_entry_store(es[i], CallsBack(
            (lambda n: lambda: s.free(n))(nxt), log))
    s.swap_cache_add_folio(es[7], CallsBack(lambda: s.stats(), log))
    run_guarded(lambda: s.free(es[0]))
    assert_all_ok(log, 8)
    assert len(s) == 0 and s.nr_clusters == 1     # kept by its cacher


def test_del_on_erase_and_store_calls_back(small_space):
    s = small_space
    a, b = s.alloc(), s.alloc()
    log = []
    s.zswap_entry_store(a, CallsBack(lambda: s.zswap_entry_erase(b), log))
    s.zswap_entry_store(b, Token())
    # the displaced object is handed back and released by the caller
    run_guarded(lambda: s.zswap_entry_store(a, Token()))
    s.zswap_entry_store(b, CallsBack(lambda: s.zswap_entry_load(a), log))
    run_guarded(lambda: s.zswap_entry_erase(b))
    assert_all_ok(log, 2)
    assert s.zswap_entry_load(b) is None


def test_del_on_replace_and_del_folio_calls_back(small_space):
    s = small_space
    e = s.alloc(2)
    log = []

    def run():
        s.swap_cache_add_folio(e, CallsBack(lambda: s.get_slot(e + 1), log), 2)
        s.swap_cache_replace_folio(e, s.swap_cache_get_folio(e), Token(), 2)
        s.swap_cache_del_folio(e, s.swap_cache_get_folio(e), 2, shadow=1)
        s.swap_cache_add_folio(e, CallsBack(
            lambda: s.swap_cache_clear_shadow(e, 2), log))
        s.swap_cache_del_folio(e, s.swap_cache_get_folio(e))

    run_guarded(run)
    gc.collect()
    assert_all_ok(log, 2)


def test_del_when_the_space_is_destroyed_calls_another_space(core):
    other = core.VSwap(cluster_shift=3)
    log = []
    s = core.VSwap(cluster_shift=3)
    for _ in range(5):
        e = s.alloc(folio=CallsBack(lambda: other.alloc(), log))
        s.zswap_entry_store(e, CallsBack(lambda: len(other), log))

    def destroy():
        nonlocal s
        s = None
        gc.collect()

    run_guarded(destroy)
    assert_all_ok(log, 10)
    assert len(other) == 5


def test_del_from_another_thread_during_free(small_space):
    """__del__ runs outside the lock even when a second thread is busy."""
    s = small_space
    log = []
    stop = threading.Event()
    keep = s.alloc()

    def spin():
        while not stop.is_set():
            s.zswap_entry_load(keep)

    t = threading.Thread(target=spin, daemon=True)
    t.start()
    try:
        def run():
            for _ in range(200):
                e = s.alloc()
                s.zswap_entry_store(e, CallsBack(
                    lambda: s.zswap_entry_store(keep, Token()), log))
                s.free(e)
        run_guarded(run)
    finally:
        stop.set()
        t.join(30)
    assert_all_ok(log, 200)


# --------------------------------------------------------------------------
# memory


def _fill_and_destroy(core, worker):
    s = core.VSwap(cluster_shift=6, max_clusters=1024)
    objs = [Token(i) for i in range(32)]
    es = []
    for i in range(1500):
        nr = 1 << (i % 4)
        e = s.alloc(nr, folio=objs[i % 32] if i % 3 == 0 else None)
        es.append((e, nr))
        s.zswap_entry_store(e, objs[(i * 7) % 32])
        s.set_slot(e, i + 1)
        if i % 3 == 0:
            s.swap_cache_del_folio(e, objs[i % 32], nr, shadow=i)
    for e, nr in es[::2]:
        s.free(e, nr)
    # another thread allocates too, so its cached clusters point into this
    # space when the space goes away
    w = worker.call(s.alloc)
    worker.call(s.alloc, 4)
    s.zswap_entry_store(w, Token())
    list(s.entries())
    s.stats()
    del s, es, objs
    gc.collect()


def test_no_memory_growth_across_spaces(core):
    worker = Worker()
    try:
        gc.collect()
        tracemalloc.start()
        try:
            _fill_and_destroy(core, worker)     # warm-up
            gc.collect()
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(10):
                _fill_and_destroy(core, worker)
            gc.collect()
            after = tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()
    finally:
        worker.close()
    # a single cluster left behind per cycle would exceed this
    assert after - before < 8 * 1024, (before, after)


def test_no_memory_growth_within_a_space(core):
    s = core.VSwap(cluster_shift=4, max_clusters=4096)
    objs = [Token(i) for i in range(16)]

    def churn():
        es = [s.alloc(1 << (i % 3), folio=objs[i % 16]) for i in range(2000)]
        for i, e in enumerate(es):
            s.zswap_entry_store(e, objs[(i + 1) % 16])
            s.set_slot(e, i + 1)
        for i, e in enumerate(es):
            s.free(e, 1 << (i % 3))
        # Only the clusters this thread caches (one per order) stay.
        assert len(s) == 0 and s.nr_clusters <= 3

    gc.collect()
    tracemalloc.start()
    try:
        churn()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(5):
            churn()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < 8 * 1024, (before, after)
