"""Several threads on one space.

Each thread checks every result against its own model of the entries it
owns; afterwards the space must agree with the union of the models.  Threads
that share entries must neither lose nor duplicate a stored object.
"""

import collections
import random
import sys
import threading

import pytest

from vswapfast.errors import SwapFullError
from vswap_support import Token

N_THREADS = 4
N_OPS = 20_000
SEED = 20260505


@pytest.fixture
def fast_switching():
    """Switch threads often, so operations interleave finely."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def run_threads(targets, timeout=300):
    errors = []

    def wrap(fn):
        def run():
            try:
                fn()
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)
        return run

    threads = [threading.Thread(target=wrap(t), daemon=True) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "a thread did not finish"
    if errors:
        raise errors[0]


class Owner:
    """One thread's private entries and the objects it stores in them."""

    def __init__(self, tid, space, owners, pool_size=24):
        self.tid = tid
        self.space = space
        self.owners = owners           # entry -> tid, shared by all threads
        self.rng = random.Random(SEED + tid)
        self.pool = [Token("t%d-%d" % (tid, i)) for i in range(pool_size)]
        self.model = {}                # entry -> [zentry, folio, shadow, slot]
        self.order = {}                # entry -> order of its allocation
        self.allocs = []               # (entry, nr)
        self.mutations = 0

    def obj(self, i):
        return None if i is None else self.pool[i]

    def live_run(self):
        """A contiguous run of owned entries inside one allocation."""
        while self.allocs:
            k = self.rng.randrange(len(self.allocs))
            e, nr = self.allocs[k]
            live = [x for x in range(e, e + nr) if x in self.model]
            if not live:
                self.allocs[k] = self.allocs[-1]
                self.allocs.pop()
                continue
            start = self.rng.choice(live)
            end = start + 1
            while end in self.model and end < e + nr and \
                    self.rng.random() < 0.6:
                end += 1
            return start, end - start
        return None

    def step(self):
        s, m, rng = self.space, self.model, self.rng
        op = rng.random()
        if op < 0.16 or not m:
            if len(m) > 600:
                op = 0.2
            else:
                nr = 1 << rng.randrange(min(4, s.cluster_shift + 1))
                fi = rng.randrange(len(self.pool)) if rng.random() < 0.3 \
                    else None
                e = s.alloc(nr, self.obj(fi))
                self.mutations += 1
                size = s.cluster_size
                assert e % nr == 0 and (e & (size - 1)) + nr <= size
                for x in range(e, e + nr):
                    assert x not in m
                    other = self.owners.setdefault(x, self.tid)
                    assert other == self.tid, \
                        "entry %#x handed to thread %d too" % (x, other)
                    m[x] = [None, fi, None, 0]
                    self.order[x] = nr.bit_length() - 1
                self.allocs.append((e, nr))
                return
        run = self.live_run()
        if run is None:
            return
        e, nr = run
        d = m[e]
        if op < 0.30:
            for x in range(e, e + nr):
                del self.owners[x]       # before the space can reuse it
            s.free(e, nr)
            self.mutations += 1
            for x in range(e, e + nr):
                del m[x]
                del self.order[x]
        elif op < 0.42:
            zi = rng.randrange(len(self.pool))
            assert s.zswap_entry_store(e, self.pool[zi]) is self.obj(d[0])
            self.mutations += 1
            d[0] = zi
            d[3] = 0                    # one backing: the slot goes
        elif op < 0.50:
            assert s.zswap_entry_erase(e) is self.obj(d[0])
            self.mutations += 1
            d[0] = None
        elif op < 0.56:
            assert s.zswap_entry_load(e) is self.obj(d[0])
        elif op < 0.66:
            rng_ = range(e, e + nr)
            folios = {m[x][1] for x in rng_}
            if folios == {None}:
                fi = rng.randrange(len(self.pool))
                assert s.swap_cache_add_folio(e, self.pool[fi], nr) == d[2]
                for x in rng_:
                    m[x][1], m[x][2] = fi, None
            elif len(folios) == 1:
                fi = folios.pop()
                shadow = rng.choice([None, rng.randrange(2 ** 62)])
                assert s.swap_cache_del_folio(e, self.pool[fi], nr,
                                              shadow) is None
                for x in rng_:
                    m[x][1], m[x][2] = None, shadow
            else:
                assert s.swap_cache_get_folio(e) is self.obj(d[1])
                return
            self.mutations += 1
        elif op < 0.72:
            folios = {m[x][1] for x in range(e, e + nr)}
            if len(folios) == 1 and None not in folios:
                fi = folios.pop()
                ni = rng.randrange(len(self.pool))
                s.swap_cache_replace_folio(e, self.pool[fi], self.pool[ni], nr)
                for x in range(e, e + nr):
                    m[x][1] = ni
            else:
                s.swap_cache_clear_shadow(e, nr)
                for x in range(e, e + nr):
                    m[x][2] = None
            self.mutations += 1
        elif op < 0.80:
            assert s.swap_cache_get_folio(e) is self.obj(d[1])
            assert s.swap_cache_get_shadow(e) == d[2]
        elif op < 0.90:
            slot = rng.choice([0, rng.randrange(1, 2 ** 64)])
            assert s.set_slot(e, slot) == d[3]
            self.mutations += 1
            d[3] = slot
            if slot:
                d[0] = None             # one backing: the zswap entry goes
        else:
            assert s.get_slot(e) == d[3]
            assert e in s

    def run(self, n_ops, start):
        start.wait()
        for _ in range(n_ops):
            self.step()

    def held(self):
        """How many descriptors hold each pool object."""
        counts = collections.Counter()
        for d in self.model.values():
            if d[0] is not None:
                counts[d[0]] += 1
            if d[1] is not None:
                counts[d[1]] += 1
        return counts


def check_space_matches(space, owners_list):
    union = {}
    for o in owners_list:
        for e, d in o.model.items():
            assert e not in union, "entry %#x owned by two threads" % e
            union[e] = (o, d)
    assert list(space.entries()) == sorted(union)
    assert len(space) == len(union)
    shift = space.cluster_shift
    clusters = collections.defaultdict(list)
    for e in union:
        clusters[e >> shift].append(e)
    # Besides the clusters with entries, only empty ones that a thread
    # caches (at most one per thread and order) may be live.
    cached = space.nr_clusters - len(clusters)
    assert 0 <= cached <= len(owners_list) * (shift + 1)
    for e, (o, d) in union.items():
        assert space.zswap_entry_load(e) is o.obj(d[0])
        assert space.swap_cache_get_folio(e) is o.obj(d[1])
        assert space.swap_cache_get_shadow(e) == d[2]
        assert space.get_slot(e) == d[3]
    for cid, es in clusters.items():
        info = space.cluster_info(cid)
        assert info["count"] == len(es)
        assert {union[e][0].order[e] for e in es} == {info["order"]}
        assert info["zswap_entries"] == sum(union[e][1][0] is not None
                                            for e in es)
        assert info["refcount"] >= 1
    st = space.stats()
    ds = [d for _, d in union.values()]
    assert st["entries"] == len(union)
    assert st["clusters"] == len(clusters) + cached
    assert st["zswap_entries"] == sum(d[0] is not None for d in ds)
    assert st["swap_cache_folios"] == sum(d[1] is not None for d in ds)
    assert st["shadows"] == sum(d[2] is not None for d in ds)
    assert st["slots"] == sum(d[3] != 0 for d in ds)
    assert space.zswap_empty() is all(d[0] is None for d in ds)
    assert 0 <= st["lock_contended"] <= st["lock_acquisitions"]
    assert st["lock_acquisitions"] >= sum(o.mutations for o in owners_list)


@pytest.mark.parametrize("shift", [1, 2, 3, 5])
def test_threads_on_their_own_entries(core, fast_switching, shift):
    space = core.VSwap(cluster_shift=shift, max_clusters=1 << 16)
    owners = {}
    workers = [Owner(tid, space, owners) for tid in range(N_THREADS)]
    bases = [[sys.getrefcount(w.pool[i]) for i in range(len(w.pool))]
             for w in workers]
    start = threading.Barrier(N_THREADS + 1)
    stop = threading.Event()
    walks = [0]

    def walker():
        # reads the whole space while it changes
        start.wait()
        while True:
            done = stop.is_set()
            seen = list(space.entries())
            assert seen == sorted(set(seen))
            st = space.stats()
            assert st["entries"] >= 0 and st["clusters"] >= 0
            for cid in {e >> shift for e in seen[:8]}:
                try:
                    assert space.cluster_info(cid)["count"] >= 0
                except KeyError:
                    pass        # released meanwhile
            walks[0] += 1
            if done:
                break

    def workers_then_stop():
        try:
            run_threads([lambda w=w: w.run(N_OPS, start) for w in workers])
        finally:
            stop.set()

    run_threads([workers_then_stop, walker])
    assert walks[0] > 0
    check_space_matches(space, workers)
    assert set(owners) == set().union(*(w.model for w in workers))
    for w, base in zip(workers, bases):
        held = w.held()
        assert [sys.getrefcount(w.pool[i]) for i in range(len(w.pool))] == \
            [b + held[i] for i, b in enumerate(base)]
    # free everything: every reference comes back, and only the clusters
    # that a thread still caches (one per thread and order) stay, empty
    for w in workers:
        for e in sorted(w.model):
            space.free(e)
        w.model.clear()
    assert len(space) == 0 and space.nr_clusters <= N_THREADS * (shift + 1)
    assert space.zswap_empty()
    for w, base in zip(workers, bases):
        assert [sys.getrefcount(w.pool[i]) for i in range(len(w.pool))] == base


def test_threads_racing_on_shared_entries(core, fast_switching):
    space = core.VSwap(cluster_shift=2, max_clusters=64)
    shared = [space.alloc() for _ in range(6)]      # two clusters
    assert space.nr_clusters == 2
    pinned = space.alloc()
    pin = Token("pinned")
    space.zswap_entry_store(pinned, pin)
    n_ops = N_OPS
    stored = [[] for _ in range(N_THREADS)]
    returned = [[] for _ in range(N_THREADS)]
    start = threading.Barrier(N_THREADS + 1)
    stop = threading.Event()
    empties = []

    def racer(tid):
        rng = random.Random(SEED * 7 + tid)
        mine_stored, mine_returned = stored[tid], returned[tid]
        start.wait()
        for i in range(n_ops):
            e = shared[rng.randrange(len(shared))]
            op = rng.random()
            if op < 0.5:
                tok = Token((tid, i))
                mine_stored.append(tok)
                old = space.zswap_entry_store(e, tok)
                if old is not None:
                    mine_returned.append(old)
            elif op < 0.8:
                old = space.zswap_entry_erase(e)
                if old is not None:
                    mine_returned.append(old)
            else:
                got = space.zswap_entry_load(e)
                assert got is None or type(got) is Token

    def checker():
        # an entry stored before the call and still stored: never empty
        start.wait()
        while True:
            done = stop.is_set()
            empties.append(space.zswap_empty())
            if done:
                break

    def racers_then_stop():
        try:
            run_threads([lambda t=t: racer(t) for t in range(N_THREADS)])
        finally:
            stop.set()

    run_threads([racers_then_stop, checker])
    assert empties and not any(empties)
    final = [space.zswap_entry_load(e) for e in shared]
    all_stored = [t for lst in stored for t in lst]
    accounted = [t for lst in returned for t in lst] + \
        [t for t in final if t is not None]
    counts = collections.Counter(id(t) for t in accounted)
    assert len(counts) == len(accounted), "an object came back twice"
    assert set(counts) == {id(t) for t in all_stored}, "an object was lost"
    assert space.stats()["zswap_entries"] == \
        1 + sum(t is not None for t in final)
    assert space.zswap_entry_load(pinned) is pin
    for e in shared:
        space.zswap_entry_erase(e)
    space.zswap_entry_erase(pinned)
    assert space.zswap_empty()


def test_threads_racing_alloc_and_free_in_shared_clusters(core,
                                                         fast_switching):
    """Threads allocating and freeing in small clusters, each from clusters
    of its own that others take over from the partial list once their
    cacher has dropped them: no entry is handed out twice, nothing is lost."""
    space = core.VSwap(cluster_shift=2, max_clusters=64)
    owners = {}
    start = threading.Barrier(N_THREADS)
    counts = [0] * N_THREADS

    def churn(tid):
        rng = random.Random(SEED * 13 + tid)
        mine = []
        start.wait()
        for _ in range(N_OPS):
            if rng.random() < 0.5 and len(mine) < 6:
                nr = 1 << rng.randrange(2)
                try:
                    e = space.alloc(nr)
                except SwapFullError:
                    continue
                for x in range(e, e + nr):
                    assert owners.setdefault(x, tid) == tid
                space.zswap_entry_store(e, tid)
                mine.append((e, nr))
                counts[tid] += 1
            elif mine:
                e, nr = mine.pop(rng.randrange(len(mine)))
                assert space.zswap_entry_load(e) == tid
                for x in range(e, e + nr):
                    del owners[x]
                space.free(e, nr)
        for e, nr in mine:
            assert space.zswap_entry_load(e) == tid
            for x in range(e, e + nr):
                del owners[x]
            space.free(e, nr)

    run_threads([lambda t=t: churn(t) for t in range(N_THREADS)])
    assert all(c > 100 for c in counts)
    # Only clusters that a thread caches (one per order) may stay, empty.
    assert len(space) == 0 and space.nr_clusters <= 2 * N_THREADS and not owners
    assert space.zswap_empty()
    st = space.stats()
    assert st["entries"] == st["zswap_entries"] == 0
    assert st["clusters"] == space.nr_clusters


@pytest.mark.parametrize("threads", [2, 4, 8])
def test_threads_allocate_from_clusters_of_their_own(core, fast_switching, threads):
    """v6's folio_alloc_swap(): a thread allocates from its cached cluster,
    a cluster it takes from the partial list leaves the list, and a new
    cluster is the taker's: allocating at once, no cluster ever holds
    entries of two threads."""
    space = core.VSwap(cluster_shift=4, max_clusters=1 << 12)
    start = threading.Barrier(threads)
    done = threading.Barrier(threads)
    got = [[] for _ in range(threads)]

    def allocate(tid):
        rng = random.Random(SEED * 31 + tid)
        start.wait()
        for _ in range(400):
            nr = 1 << rng.randrange(2)
            got[tid].append((space.alloc(nr), nr))
        # Alive until all are done: a thread that exits leaves its number,
        # and so its cached clusters, to the next thread (as a CPU's
        # per-CPU cache outlives the task that filled it).
        done.wait()

    run_threads([lambda t=t: allocate(t) for t in range(threads)])
    holders = {}
    for tid, mine in enumerate(got):
        for e, nr in mine:
            holders.setdefault(e >> 4, set()).add(tid)
    mixed = [cid for cid, tids in holders.items() if len(tids) > 1]
    assert len(holders) >= threads
    assert not mixed, "clusters shared by threads: %s" % mixed
    for mine in got:
        for e, nr in mine:
            space.free(e, nr)
    assert len(space) == 0
