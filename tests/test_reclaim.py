"""``--reclaim kernel``: the active/inactive lists with workingset refault
detection, against a small independent model written here, on hand-made
traces whose answer is worked out by hand and on random ones; then end to
end, with the shadows kept in the swap descriptors.
"""

import importlib
import random

import numpy as np
import pytest

from vswapfast.reclaim import ReclaimError, simulate_kernel
from vswapfast.replay import ReplayConfig, ReplayError, Trace, _Replayer, run_replay, simulate
from vswapfast.workload import PageFactory

LOOPS = {"compiled": "vswapfast._reclaim", "pure": "vswapfast.pure.reclaim"}


@pytest.fixture
def loops(core_name):
    """The reclaim loops of the core under test (never a silent fallback)."""
    return importlib.import_module(LOOPS[core_name])


def trace_of(keys, writes=None):
    return Trace(np.array(keys, dtype=np.uint64), writes, "hand-made", "keys")


def reference_kernel(keys, frames):
    """The kernel's two lists the plain way: Python lists, head first.

    Every access marks the page accessed (second access: to the active
    head); a miss with all frames in use first moves up to 32 pages from
    the active tail to the inactive head when the inactive list is smaller
    than the active one (the ratio is 1 below 1 GiB), then evicts the
    inactive tail, whose shadow is the eviction clock; a refault whose
    distance is within the active list's size starts active.  Evictions and
    activations age the clock by one.
    """
    assert frames < 1 << 18
    inactive, active = [], []
    referenced, shadow = {}, {}
    age = 0
    out = dict(misses=0, cold=0, refaults=0, activations=0, promotions=0, evicted=[],
               decisions=[])

    def mark_accessed(key):
        nonlocal age
        if not referenced.get(key):
            referenced[key] = True
        elif key in inactive:
            inactive.remove(key)
            active.insert(0, key)
            referenced[key] = False
            age += 1
            out["promotions"] += 1

    for key in keys:
        if key in inactive or key in active:
            mark_accessed(key)
            continue
        out["misses"] += 1
        if len(inactive) + len(active) == frames:
            if len(inactive) < len(active):
                moved = active[-32:]
                del active[-32:]
                inactive[0:0] = moved
            victim = inactive.pop()
            referenced[victim] = False
            shadow[victim] = age
            age += 1
            out["evicted"].append(victim)
        if key in shadow:
            out["refaults"] += 1
            recent = age - shadow.pop(key) <= len(active)
            out["decisions"].append(recent)
            if recent:
                active.insert(0, key)
                age += 1
                out["activations"] += 1
            else:
                inactive.insert(0, key)
        else:
            out["cold"] += 1
            inactive.insert(0, key)
        mark_accessed(key)
    out["active"] = active
    out["inactive"] = inactive
    return out


def run_loops(loops, keys, frames):
    ids = np.array(keys, dtype=np.int64)
    return loops.kernel_reclaim(ids, int(ids.max()) + 1, frames)


# -- hand-made traces -------------------------------------------------------------

def test_a_refault_beyond_the_workingset_starts_inactive(loops):
    # frames 2: 1, 2 fill the inactive list; 3 evicts 1 (shadow 0); 1 evicts
    # 2 (shadow 1) and refaults at clock 2: distance 2, active list empty.
    r = run_loops(loops, [1, 2, 3, 1], 2)
    assert r["victims"].tolist() == [0, 1]          # events of 1's and 2's last accesses
    assert r["shadows"].tolist() == [0, 1]
    assert r["in_evict"].tolist() == [0]
    assert r["refault_clock"].tolist() == [2]
    assert r["workingset_size"].tolist() == [0]
    assert r["activated"].tolist() == [False]
    assert r["activations"] == 0 and r["promotions"] == 0
    assert len(r["miss_events"]) == 4


def test_a_refault_within_the_workingset_is_activated(loops):
    # frames 4: 1 and 5 are accessed twice (promoted: the active list holds
    # 2 pages, clock 2); 2, 3 fill the frames; 4 evicts 2 (shadow 2); the
    # refault of 2 evicts 3 (clock 4): distance 2 <= 2 active pages.
    keys = [1, 1, 5, 5, 2, 3, 4, 2]
    r = run_loops(loops, keys, 4)
    assert [keys[v] for v in r["victims"]] == [2, 3]
    assert r["shadows"].tolist() == [2, 3]
    assert r["refault_clock"].tolist() == [4]
    assert r["workingset_size"].tolist() == [2]
    assert r["activated"].tolist() == [True]
    assert r["activations"] == 1 and r["promotions"] == 2
    assert r["nr_active"] == 3 and r["nr_inactive"] == 1
    assert r["nonresident_age"] == 5
    # An exact LRU evicts 1, the least recently used, instead.
    lru = simulate(trace_of(keys), 4, "lru")
    assert lru.victim_keys.tolist() == [1]


def test_a_low_inactive_list_is_refilled_from_the_active_tail(loops):
    # frames 3: 1 and 2 promoted (active [2, 1]), 3 inactive; 4 finds the
    # inactive list low (1 < 2): both active pages move, in order, to the
    # inactive head ([2, 1, 3]) and 3, the tail, is evicted; then 3 evicts 1.
    keys = [1, 1, 2, 2, 3, 4, 3]
    r = run_loops(loops, keys, 3)
    assert [keys[v] for v in r["victims"]] == [3, 1]
    assert r["deactivations"] == 2
    assert r["activated"].tolist() == [False]
    ref = reference_kernel(keys, 3)
    assert ref["evicted"] == [3, 1]


def test_every_page_accessed_once_is_a_fifo(loops):
    keys = list(range(10)) * 3
    r = run_loops(loops, keys, 4)
    assert len(r["miss_events"]) == 30
    assert [keys[v] for v in r["victims"]][:6] == [0, 1, 2, 3, 4, 5]
    assert not r["activated"].any() and r["promotions"] == 0


# -- against the reference model --------------------------------------------------

@pytest.mark.parametrize("seed", range(6))
def test_kernel_reclaim_matches_the_reference_model(loops, seed):
    rng = random.Random(seed)
    nkeys = rng.choice([5, 20, 60, 200])
    frames = rng.randint(1, max(1, nkeys // 2))
    hot = max(1, nkeys // 5)
    keys = [rng.randrange(hot) if rng.random() < 0.6 else rng.randrange(nkeys)
            for _ in range(rng.randint(1, 3000))]
    ref = reference_kernel(keys, frames)
    r = run_loops(loops, keys, frames)
    assert len(r["miss_events"]) == ref["misses"]
    assert [keys[v] for v in r["victims"]] == ref["evicted"]
    assert r["activated"].tolist() == ref["decisions"]
    assert r["activations"] == ref["activations"]
    assert r["promotions"] == ref["promotions"]
    assert r["nr_active"] == len(ref["active"])
    assert r["nr_inactive"] == len(ref["inactive"])


def test_both_cores_give_the_same_result():
    compiled = importlib.import_module(LOOPS["compiled"])
    pure = importlib.import_module(LOOPS["pure"])
    rng = np.random.default_rng(3)
    ids = np.where(rng.random(20000) < 0.7, rng.integers(0, 300, 20000),
                   rng.integers(0, 3000, 20000)).astype(np.int64)
    a = compiled.kernel_reclaim(ids, 3000, 500)
    b = pure.kernel_reclaim(ids, 3000, 500)
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(np.asarray(a[key]), np.asarray(b[key])), key


def test_simulate_kernel_maps_keys_and_pairs_swap_ins(core_name):
    keys = [1 << 40, 7, 1 << 40, 7, 99, 123456789, 1 << 40, 5, 99]
    r = simulate_kernel(trace_of(keys), 3, core_name)
    assert r.reclaim == "kernel"
    ref = reference_kernel(keys, 3)
    assert r.victim_keys.tolist() == ref["evicted"]
    assert r.miss_count == ref["misses"] and r.cold_misses == ref["cold"]
    assert r.refaults == ref["refaults"] and r.activations == ref["activations"]
    # Each swap-in brings back the page its key was evicted with.
    assert [keys[e] for e in r.miss_events[r.in_miss]] == r.victim_keys[r.in_evict].tolist()
    assert r.hits + r.miss_count == len(keys)


def test_bad_reclaim_input_is_refused(loops):
    with pytest.raises(ValueError):
        loops.kernel_reclaim(np.array([0, 1, 2], dtype=np.int64), 2, 1)   # id out of range
    with pytest.raises(ValueError):
        loops.kernel_reclaim(np.array([0], dtype=np.int64), 1, 0)
    with pytest.raises(ReclaimError):
        simulate_kernel(trace_of([1, 2]), 0)
    with pytest.raises(ReplayError, match="unknown reclaim"):
        simulate(trace_of([1, 2]), 1, "clock")
    with pytest.raises(ReplayError, match="unknown reclaim"):
        ReplayConfig(reclaim="clock").check()


# -- end to end ----------------------------------------------------------------------

def small_trace(seed=1, events=6000, nkeys=900):
    rng = np.random.default_rng(seed)
    keys = np.where(rng.random(events) < 0.6, rng.integers(0, nkeys // 6, events),
                    rng.integers(0, nkeys, events)).astype(np.uint64)
    return Trace(keys, rng.random(events) < 0.2, "small", "rw")


@pytest.mark.parametrize("threads", [1, 2])
def test_replay_keeps_shadows_in_the_swap_descriptors(core_name, threads):
    trace = small_trace()
    config = ReplayConfig(frames=100, core=core_name, reclaim="kernel", floor=False,
                          threads=threads, chunk=64)
    report = run_replay(trace, config, factory=PageFactory.synthetic(templates=16))
    lru = simulate(trace, 100, "kernel", core_name)
    assert report.reclaim == "kernel"
    assert report.swap_outs == lru.swap_outs and report.swap_ins == lru.swap_ins
    assert report.refaults == report.swap_ins > 0
    assert report.activations == lru.activations > 0
    assert report.shadows_checked == report.swap_ins
    assert report.shadow_mismatches == 0
    assert report.verified == report.swap_ins and report.mismatches == 0


def test_a_wrong_shadow_in_a_descriptor_is_reported(monkeypatch):
    from vswapfast.reclaim import loops as reclaim_loops
    module = reclaim_loops("compiled")
    original = module.swap_cache_del_folios

    def del_with_wrong_shadows(space, entries, folio, shadows=None):
        if shadows is not None:
            shadows = np.asarray(shadows) + np.uint64(1000)
        return original(space, entries, folio, shadows)

    monkeypatch.setattr(module, "swap_cache_del_folios", del_with_wrong_shadows)
    config = ReplayConfig(frames=100, reclaim="kernel", floor=False, chunk=64)
    report = run_replay(small_trace(), config, factory=PageFactory.synthetic(templates=16))
    assert report.shadow_mismatches == report.swap_ins > 0
    assert "shadow" in report.first_mismatch
    assert report.mismatches == 0


def test_lru_reports_no_refaults():
    config = ReplayConfig(frames=100, floor=False, chunk=64)
    report = run_replay(small_trace(), config, factory=PageFactory.synthetic(templates=16))
    assert report.reclaim == "lru"
    assert report.refaults == report.activations == report.shadows_checked == 0


# -- shadows in the descriptors, in batches ------------------------------------------

def test_leave_and_read_shadows_in_batches(loops, core):
    from vswapfast.batch import BATCH_EMPTY, BATCH_FOREIGN, BATCH_INVALID, BATCH_OK
    space = core.VSwap()
    entries = np.frombuffer(space.alloc_many(600), dtype=np.uint64)   # two clusters
    folio = object()
    space.swap_cache_add_folio(int(entries[5]), folio)
    shadows = np.arange(600, dtype=np.uint64) * np.uint64(3) + np.uint64(1)
    status = loops.leave_shadows(space, entries, shadows)
    expected = [BATCH_OK] * 600
    expected[5] = BATCH_FOREIGN
    assert list(status) == expected
    assert space.swap_cache_get_folio(int(entries[5])) is folio      # left as it was
    assert space.swap_cache_get_shadow(int(entries[7])) == 22
    assert space.swap_cache_get_shadow(int(entries[599])) == 599 * 3 + 1
    space.free(int(entries[9]))
    out = np.zeros(600, dtype=np.uint64)
    status = loops.read_shadows(space, entries, out)
    expected[5] = BATCH_EMPTY
    expected[9] = BATCH_INVALID
    assert list(status) == expected
    ok = np.array(expected) == BATCH_OK
    assert np.array_equal(out[ok], shadows[ok])
    assert out[5] == out[9] == 0
    # A shadow from the single-entry API reads the same.
    space.swap_cache_del_folio(int(entries[5]), folio, 1, 77)
    assert list(loops.read_shadows(space, entries[5:6], out[:1])) == [BATCH_OK]
    assert out[0] == 77
    assert list(loops.leave_shadows(space, np.array([0], dtype=np.uint64),
                                    np.array([1], dtype=np.uint64))) == [BATCH_INVALID]


def test_bad_shadow_batches_are_refused(loops, core):
    space = core.VSwap()
    entries = np.frombuffer(space.alloc_many(4), dtype=np.uint64)
    with pytest.raises(ValueError, match="2\\*\\*62"):
        loops.leave_shadows(space, entries, np.full(4, 1 << 62, dtype=np.uint64))
    assert space.swap_cache_get_shadow(int(entries[0])) is None       # nothing changed
    with pytest.raises(ValueError):
        loops.leave_shadows(space, entries, np.zeros(3, dtype=np.uint64))
    with pytest.raises((TypeError, ValueError)):
        loops.read_shadows(space, entries, np.zeros(3, dtype=np.uint64))
    with pytest.raises((TypeError, ValueError, BufferError)):
        loops.read_shadows(space, entries, bytes(32))


@pytest.mark.parametrize("seed", range(3))
def test_lru_loop_of_both_cores_agree_with_a_plain_lru(core_name, seed):
    from collections import OrderedDict
    rng = random.Random(seed)
    keys = [rng.randrange(rng.choice([10, 100, 400])) for _ in range(4000)]
    frames = rng.randint(1, 60)
    lru = simulate(trace_of(keys), frames, "lru", core_name)
    resident, evicted = OrderedDict(), []
    for key in keys:
        if key in resident:
            resident.move_to_end(key)
            continue
        if len(resident) == frames:
            evicted.append(resident.popitem(last=False)[0])
        resident[key] = True
    assert lru.victim_keys.tolist() == evicted
    # Each eviction happens at a miss, after the victim's last access.
    assert (lru.victim_pos < lru.evict_events).all()


# -- the swap cache through a swap-out and a swap-in, one page at a time ---------------

def test_swap_cache_add_and_del_folios(loops, core):
    import sys
    from vswapfast.batch import BATCH_FOREIGN, BATCH_INVALID, BATCH_OK
    space = core.VSwap()
    entries = np.frombuffer(space.alloc_many(600), dtype=np.uint64)   # two clusters
    folio, other = object(), object()
    base = sys.getrefcount(folio)
    space.swap_cache_add_folio(int(entries[7]), other)
    bad = np.append(entries, np.uint64(0))
    shadows = np.empty(len(bad), dtype=np.uint64)
    status = list(loops.swap_cache_add_folios(space, bad, folio, shadows))
    assert status == [BATCH_OK] * 7 + [BATCH_FOREIGN] + [BATCH_OK] * 592 + [BATCH_INVALID]
    assert (shadows == 0).all()
    assert sys.getrefcount(folio) - base == 599
    assert space.swap_cache_get_folio(int(entries[0])) is folio
    # __swap_cache_del_folio(): the shadow takes the folio's place.
    left = np.arange(600, dtype=np.uint64) * np.uint64(5) + np.uint64(2)
    status = list(loops.swap_cache_del_folios(space, entries, folio, left))
    assert status == [BATCH_OK] * 7 + [BATCH_FOREIGN] + [BATCH_OK] * 592
    assert sys.getrefcount(folio) == base
    assert space.swap_cache_get_folio(int(entries[7])) is other
    assert space.swap_cache_get_shadow(int(entries[9])) == 47
    # The swap-in hands the shadows back as it adds the folio again.
    out = np.empty(600, dtype=np.uint64)
    status = list(loops.swap_cache_add_folios(space, entries, folio, out))
    assert status[7] == BATCH_FOREIGN and out[7] == 0
    assert (np.delete(out, 7) == np.delete(left, 7)).all()
    assert list(loops.swap_cache_del_folios(space, entries, folio)) == status
    assert sys.getrefcount(folio) == base
    assert space.swap_cache_get_folio(int(entries[0])) is None
    assert space.swap_cache_get_shadow(int(entries[0])) is None
    with pytest.raises(TypeError):
        loops.swap_cache_add_folios(space, entries, 5, out)
    with pytest.raises(TypeError):
        loops.swap_cache_del_folios(space, entries, None)
    with pytest.raises(ValueError):
        loops.swap_cache_del_folios(space, entries[:1], folio, np.array([1 << 62], np.uint64))
    with pytest.raises(ValueError):
        loops.swap_cache_add_folios(space, entries, folio, out[:3])
    space.swap_cache_del_folio(int(entries[7]), other)


def test_swap_cache_loops_take_the_cluster_lock_per_page(loops, core):
    # As the kernel takes ci->lock per folio: 512 entries of one cluster,
    # 512 acquisitions each way (the batch loops above take it once a run).
    space = core.VSwap()
    entries = np.frombuffer(space.alloc_many(512), dtype=np.uint64)
    folio = object()
    def taken(fn):
        # stats() itself takes the cluster lock once: measured, then left out.
        before = space.stats()["lock_acquisitions"]
        between = space.stats()["lock_acquisitions"]
        fn()
        return space.stats()["lock_acquisitions"] - between - (between - before)

    assert taken(lambda: loops.swap_cache_add_folios(
        space, entries, folio, np.empty(512, dtype=np.uint64))) == 512
    assert taken(lambda: loops.swap_cache_del_folios(space, entries, folio)) == 512


@pytest.mark.parametrize("index", ["vswap", "rbtree"])
def test_replay_reports_lock_acquisitions_per_page(core_name, index):
    # Each swapped-out page: allocation, the folio into the swap cache,
    # zswap_store(), the shadow left (4 cluster-lock acquisitions with the
    # descriptors); each swap-in: the folio back, zswap_load() (and its
    # erase), the swap cache emptied, the free (4 or 5).
    config = ReplayConfig(core=core_name, index=index, frames=100, floor=False, chunk=64)
    report = run_replay(small_trace(), config, factory=PageFactory.synthetic(templates=16))
    assert report.mismatches == 0 and report.swap_ins > 0
    share = report.swap_ins / report.swap_outs
    if index == "vswap":
        assert 4 + 4 * share <= report.cluster_locks_per_page <= 4.2 + 5 * share
        assert report.tree_locks_per_page == 0
    else:
        assert report.tree_locks_per_page > 1
    assert any("cluster-lock acquisitions" in line for line in report.format_text())
    assert report.to_dict()["cluster_locks_per_page"] == report.cluster_locks_per_page
