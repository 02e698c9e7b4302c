"""Stateful testing: random sequences of operations, valid and invalid, checked
step by step against a plain-Python model of the contract.

The model predicts everything, allocation included: it keeps each cluster's
allocation bitmap, the per-order partial lists, each thread's cached cluster
per order and the "dropped when full" flags, exactly as docs/semantics.md
describes them (v6's folio_alloc_swap(): a thread allocates from clusters of
its own).
"""

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize,
                                 invariant, rule, run_state_machine_as_test)

from vswapfast.errors import (InvalidEntryError, SwapCacheError,
                              SwapFullError, bad_entry_message)
from vswap_support import EVENT_COUNTERS, LOCK_COUNTERS, Token, Worker

GEOMETRIES = [
    # cluster_shift, max_clusters
    (3, 4),       # tiny: boundaries and SwapFullError all the time
    (3, 64),
    (1, 5),       # clusters of two descriptors
    (9, 2 ** 20),  # the default geometry
]

SETTINGS = settings(
    max_examples=100,
    stateful_step_count=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow,
                           HealthCheck.filter_too_much,
                           HealthCheck.data_too_large],
)

NO_ERROR = None

# Two threads besides the main one, alive for the whole session: a space
# keeps one allocation cache per thread, and reusing the same threads keeps
# the runs from creating hundreds of threads.
_WORKERS = {}


class Desc:
    __slots__ = ("zentry", "folio", "shadow", "slot")

    def __init__(self, folio=None):
        self.zentry = None
        self.folio = folio
        self.shadow = None
        self.slot = 0


class Model:
    """The contract of one space, as seen from a single thread."""

    def __init__(self, shift, max_clusters):
        self.shift = shift
        self.size = 1 << shift
        self.max_clusters = max_clusters
        self.clusters = {}          # id -> {"order", "used", "full"}
        self.partial = {o: [] for o in range(shift + 1)}
        self.cache = {}             # (thread, order) -> cluster id
        self.descs = {}             # entry -> Desc
        self.origin = {}            # entry -> (first entry, nr) of its alloc

    # -- allocation ------------------------------------------------------

    def _chunk(self, cid, nr):
        used = self.clusters[cid]["used"]
        for i in range(0, self.size, nr):
            if not any(j in used for j in range(i, i + nr)):
                return i
        return None

    def alloc(self, nr, folio, thread=0):
        """The entry ``alloc`` must return in ``thread``, or SwapFullError."""
        order = nr.bit_length() - 1
        key = (thread, order)
        cid = self.cache.get(key)
        idx = None
        if cid is not None:
            idx = self._chunk(cid, nr)
            if idx is None:
                # Full: dropped from the cache, on no list until a free
                # gives it room.
                del self.cache[key]
                self.clusters[cid]["full"] = True
        if idx is None:
            plist = self.partial[order]
            while plist:
                head = plist.pop(0)         # off the list, into the cache
                idx = self._chunk(head, nr)
                if idx is not None:
                    cid = head
                    break
                self.clusters[head]["full"] = True
        if idx is None:
            cid = next((i for i in range(1, self.max_clusters + 1)
                        if i not in self.clusters), None)
            if cid is None:
                return SwapFullError
            self.clusters[cid] = {"order": order, "used": set(),
                                  "full": False}
            idx = 0
        self.cache[key] = cid
        self.clusters[cid]["used"].update(range(idx, idx + nr))
        entry = cid << self.shift | idx
        for e in range(entry, entry + nr):
            self.descs[e] = Desc(folio)
            self.origin[e] = (entry, nr)
        return entry

    def free(self, entry, nr):
        cid = entry >> self.shift
        c = self.clusters[cid]
        for e in range(entry, entry + nr):
            del self.descs[e]
            del self.origin[e]
            c["used"].discard(e & (self.size - 1))
        if not c["used"]:
            if cid in self.cache.values():
                return              # kept by the thread that caches it
            del self.clusters[cid]
            plist = self.partial[c["order"]]
            if cid in plist:
                plist.remove(cid)
        elif c["full"] and self._chunk(cid, 1 << c["order"]) is not None:
            # the free gave room back (a whole chunk of the cluster's order)
            # to a cluster that allocation had found full
            c["full"] = False
            self.partial[c["order"]].append(cid)

    # -- checks ------------------------------------------------------------

    def entry_error(self, entry, nr=1):
        """(exception type, message) for steps 3-5 of the checks, or None."""
        why = None
        if entry == 0:
            why = "zero"
        elif entry < 0:
            why = "negative"
        elif entry >> self.shift > self.max_clusters:
            why = "range"
        if why:
            return InvalidEntryError, bad_entry_message(
                entry, self.shift, self.max_clusters, why)
        if (entry & (self.size - 1)) + nr > self.size:
            return ValueError, (
                "range [%#x, %#x) crosses a cluster boundary (cluster size %d)"
                % (entry, entry + nr, self.size))
        for e in range(entry, entry + nr):
            if e not in self.descs:
                return InvalidEntryError, bad_entry_message(
                    e, self.shift, self.max_clusters, "free")
        return NO_ERROR

    # -- derived counters ----------------------------------------------------

    def counters(self):
        d = self.descs.values()
        return {
            "entries": len(self.descs),
            "used": len(self.descs),
            "clusters": len(self.clusters),
            "zswap_entries": sum(x.zentry is not None for x in d),
            "swap_cache_folios": sum(x.folio is not None for x in d),
            "shadows": sum(x.shadow is not None for x in d),
            "slots": sum(x.slot != 0 for x in d),
            "cluster_size": self.size,
            "max_clusters": self.max_clusters,
            **{"backing_" + t: sum(backing_type(x) == t for x in d)
               for t in ("none", "zero", "zswap", "swapfile", "folio")},
        }


def backing_type(d):
    """One backing per descriptor (v6 enum swap_type): the zswap entry or
    the slot, whichever it holds (never both), else the swap-cache folio."""
    if d.zentry is not None:
        return "zswap"
    if d.slot:
        return "swapfile"
    return "folio" if d.folio is not None else "none"


ENTRY = st.tuples(st.integers(0, 15), st.integers(0, 2 ** 24))
NR = st.integers(0, 2 ** 16)
SLOT = st.one_of(st.sampled_from([0, 1, 2 ** 63, 2 ** 64 - 1, -1, 2 ** 64]),
                 st.integers(0, 2 ** 64 - 1))
SHADOW = st.one_of(st.none(), st.sampled_from([0, 1, 2 ** 62 - 1, -1, 2 ** 62]),
                   st.integers(0, 2 ** 62 - 1))
FOLIO_CHOICE = st.integers(0, 5)


class VSwapMachine(RuleBasedStateMachine):

    def __init__(self, core, shift, max_clusters):
        super().__init__()
        self.space = core.VSwap(cluster_shift=shift, max_clusters=max_clusters)
        self.model = Model(shift, max_clusters)
        self.shared_folios = [Token("shared%d" % i) for i in range(2)]
        self.counter = 0

    def worker(self, thread):
        if thread not in _WORKERS:
            _WORKERS[thread] = Worker()
        return _WORKERS[thread]

    # -- building blocks ----------------------------------------------------

    def token(self, kind):
        self.counter += 1
        return Token("%s%d" % (kind, self.counter))

    def pick(self, choice, prefer=None):
        """An entry: mostly a live one, preferably one for which
        ``prefer(desc)`` holds; sometimes any int, live or not."""
        kind, n = choice
        live = sorted(self.model.descs)
        size = self.model.size
        if prefer is not None and kind < 8:
            good = [e for e in live if prefer(self.model.descs[e])]
            if good:
                return good[n % len(good)]
        if kind < 13 and live:
            return live[n % len(live)]
        if kind < 14:
            span = (min(self.model.max_clusters, 64) + 2) << self.model.shift
            return n % span - 1
        special = [0, -1, -2 ** 70, 2 ** 64, 2 ** 64 + size,
                   (self.model.max_clusters + 1) << self.model.shift,
                   self.model.max_clusters << self.model.shift]
        return special[n % len(special)]

    def nr_for(self, n, entry):
        """A range length for ``entry``: mostly inside its cluster."""
        size = self.model.size
        room = size - (entry & (size - 1))
        kind, n = n % 10, n // 10
        if kind < 4:
            return 1
        if kind < 7:
            return 1 + n % room
        if kind == 7:
            return 1 << (n % (self.model.shift + 1))
        if kind == 8:
            return room + 1 + n % 3
        return [0, -1, -2 ** 70, 2 ** 70][n % 4]

    def folio_for(self, choice, entry):
        """A folio to pass: the one held at ``entry``, a shared one, or new."""
        d = self.model.descs.get(entry)
        if choice <= 2 and d is not None and d.folio is not None:
            return d.folio
        if choice == 3:
            return self.shared_folios[0]
        if choice == 4:
            return self.shared_folios[1]
        return self.token("folio")

    def expect(self, error, fn):
        """Run ``fn``; it must raise ``error`` = (type, message or None)."""
        exc_type, message = error
        try:
            result = fn()
        except exc_type as exc:
            assert type(exc) is exc_type, repr(exc)
            if message is not None:
                assert str(exc) == message
            return
        raise AssertionError("expected %s(%r), got result %r"
                             % (exc_type.__name__, message, result))

    # -- allocation ------------------------------------------------------------

    def do_alloc(self, order, with_folio, thread=0):
        m = self.model
        folio = self.token("alloc") if with_folio else None
        if thread:
            call_in = self.worker(thread).call
        else:
            call_in = lambda fn, *args: fn(*args)
        if not isinstance(order, int):
            self.expect((TypeError, "nr must be an int, not float"),
                        lambda: call_in(self.space.alloc, order, folio))
            return
        nr = 1 << order if order >= 0 else 0
        if nr < 1:
            self.expect((ValueError, None),
                        lambda: call_in(self.space.alloc, nr, folio))
            return
        if nr > m.size:
            self.expect((ValueError, "nr must be a power of two from 1 to %d, "
                         "not %d" % (m.size, nr)),
                        lambda: call_in(self.space.alloc, nr, folio))
            return
        expected = m.alloc(nr, folio, thread)
        if expected is SwapFullError:
            self.expect((SwapFullError,
                         "no cluster id left: all %d clusters are in use"
                         % m.max_clusters),
                        lambda: call_in(self.space.alloc, nr, folio))
            return
        got = call_in(self.space.alloc, nr, folio) if with_folio else \
            call_in(self.space.alloc, nr)
        assert got == expected, (got, expected, nr, thread)

    @initialize(orders=st.lists(st.integers(0, 9), max_size=24),
                folios=st.integers(0, 2 ** 24))
    def populate(self, orders, folios):
        for i, order in enumerate(orders):
            self.do_alloc(order % (self.model.shift + 1), folios >> i & 1)

    @rule(orders=st.lists(st.integers(0, 9), min_size=1, max_size=3),
          folios=st.integers(0, 63))
    def alloc(self, orders, folios):
        # mostly small orders, as in a real swap space
        for i, order in enumerate(orders):
            order = order % (self.model.shift + 1)
            if i % 2:
                order = min(order, 1)
            self.do_alloc(order, folios >> i & 1)

    @rule(thread=st.integers(1, 2),
          orders=st.lists(st.integers(0, 9), min_size=1, max_size=3),
          folios=st.integers(0, 7))
    def alloc_in_another_thread(self, thread, orders, folios):
        """Threads with their own cached clusters share the partial lists."""
        for i, order in enumerate(orders):
            order = order % (self.model.shift + 1)
            if i % 2:
                order = min(order, 1)
            self.do_alloc(order, folios >> i & 1, thread)

    @rule(order=st.sampled_from([-1, 10, 11, 64, 3.5]))
    def alloc_bad_nr(self, order):
        self.do_alloc(order, False)

    @rule(order=st.integers(0, 9))
    def alloc_any_order(self, order):
        self.do_alloc(order, order % 2)

    @rule(choice=ENTRY, nr=NR)
    def free(self, choice, nr):
        m = self.model
        entry = self.pick(choice)
        nr = self.nr_for(nr, entry)
        if nr < 1:
            self.expect((ValueError, "nr must be at least 1, not %d" % nr),
                        lambda: self.space.free(entry, nr))
            return
        err = m.entry_error(entry, nr)
        if err:
            self.expect(err, lambda: self.space.free(entry, nr))
            return
        assert self.space.free(entry, nr) is None
        m.free(entry, nr)

    @rule(choice=ENTRY, sub=st.integers(0, 2 ** 16))
    def free_aligned(self, choice, sub):
        """Free a whole naturally aligned run, the way folios are freed."""
        m = self.model
        entry = self.pick(choice)
        if entry not in m.descs:
            return
        order = m.clusters[entry >> m.shift]["order"]
        nr = 1 << (sub % (order + 1))
        start = entry & ~(nr - 1)
        err = m.entry_error(start, nr)
        if err:
            self.expect(err, lambda: self.space.free(start, nr))
            return
        self.space.free(start, nr)
        m.free(start, nr)

    def free_runs(self, entries):
        """Free ``entries`` (sorted, one cluster) run by contiguous run."""
        runs = []
        for e in entries:
            if runs and runs[-1][0] + runs[-1][1] == e:
                runs[-1][1] += 1
            else:
                runs.append([e, 1])
        for start, nr in runs:
            assert self.space.free(start, nr) is None
            self.model.free(start, nr)

    @rule(choice=ENTRY)
    def free_allocation(self, choice):
        """Free what is left of the allocation an entry came from."""
        m = self.model
        entry = self.pick(choice)
        if entry not in m.descs:
            return
        start, nr = m.origin[entry]
        self.free_runs([e for e in range(start, start + nr) if e in m.descs])

    @rule(choice=ENTRY)
    def drain_cluster(self, choice):
        """Free every entry of a cluster: the cluster is released, unless a
        thread caches it."""
        m = self.model
        entry = self.pick(choice)
        if entry not in m.descs:
            return
        cid = entry >> m.shift
        self.free_runs(sorted(e for e in m.descs if e >> m.shift == cid))
        if cid in m.cache.values():
            assert cid in m.clusters
            assert self.space.cluster_info(cid)["count"] == 0
            return
        assert cid not in m.clusters
        with pytest.raises(KeyError):
            self.space.cluster_info(cid)

    # -- zswap -----------------------------------------------------------------

    @rule(choice=ENTRY)
    def zswap_store(self, choice):
        m = self.model
        entry = self.pick(choice)
        z = self.token("z")
        err = m.entry_error(entry)
        if err:
            self.expect(err, lambda: self.space.zswap_entry_store(entry, z))
            return
        old = self.space.zswap_entry_store(entry, z)
        assert old is m.descs[entry].zentry
        m.descs[entry].zentry = z
        m.descs[entry].slot = 0         # release_backing(): the slot goes

    @rule(choice=ENTRY)
    def zswap_load(self, choice):
        entry = self.pick(choice, lambda d: d.zentry is not None)
        err = self.model.entry_error(entry)
        if err:
            self.expect(err, lambda: self.space.zswap_entry_load(entry))
            return
        assert self.space.zswap_entry_load(entry) is \
            self.model.descs[entry].zentry

    @rule(choice=ENTRY)
    def zswap_erase(self, choice):
        entry = self.pick(choice, lambda d: d.zentry is not None)
        err = self.model.entry_error(entry)
        if err:
            self.expect(err, lambda: self.space.zswap_entry_erase(entry))
            return
        assert self.space.zswap_entry_erase(entry) is \
            self.model.descs[entry].zentry
        self.model.descs[entry].zentry = None

    @rule(choice=ENTRY)
    def zswap_empty(self, choice):
        expected = all(d.zentry is None for d in self.model.descs.values())
        assert self.space.zswap_empty() is expected
        assert self.space.zswap_empty(self.pick(choice)) is expected

    # -- swap cache ------------------------------------------------------------

    @rule(choice=ENTRY, nr=NR, folio_choice=FOLIO_CHOICE)
    def swap_cache_add(self, choice, nr, folio_choice):
        m = self.model
        entry = self.pick(choice, lambda d: d.shadow is not None)
        nr = self.nr_for(nr, entry)
        folio = self.folio_for(folio_choice, entry)
        call = lambda: self.space.swap_cache_add_folio(entry, folio, nr)
        if nr < 1:
            return self.expect((ValueError, "nr must be at least 1, not %d"
                                % nr), call)
        err = m.entry_error(entry, nr)
        if err:
            return self.expect(err, call)
        rng = range(entry, entry + nr)
        busy = [e for e in rng if m.descs[e].folio is not None]
        if busy:
            return self.expect((SwapCacheError, None), call)
        assert call() == m.descs[entry].shadow
        for e in rng:
            m.descs[e].folio = folio
            m.descs[e].shadow = None

    @rule(choice=ENTRY, nr=NR, folio_choice=FOLIO_CHOICE, shadow=SHADOW)
    def swap_cache_del(self, choice, nr, folio_choice, shadow):
        m = self.model
        entry = self.pick(choice, lambda d: d.folio is not None)
        nr = self.nr_for(nr, entry)
        folio = self.folio_for(folio_choice, entry)
        call = lambda: self.space.swap_cache_del_folio(entry, folio, nr, shadow)
        if nr < 1:
            return self.expect((ValueError, "nr must be at least 1, not %d"
                                % nr), call)
        if shadow is not None and not 0 <= shadow < 2 ** 62:
            return self.expect((ValueError, "shadow must be in [0, 2**62), "
                                "not %d" % shadow), call)
        err = m.entry_error(entry, nr)
        if err:
            return self.expect(err, call)
        rng = range(entry, entry + nr)
        if any(m.descs[e].folio is not folio for e in rng):
            return self.expect((SwapCacheError, None), call)
        assert call() is None
        for e in rng:
            m.descs[e].folio = None
            m.descs[e].shadow = shadow

    @rule(choice=ENTRY, nr=NR, folio_choice=FOLIO_CHOICE,
          new_choice=FOLIO_CHOICE)
    def swap_cache_replace(self, choice, nr, folio_choice, new_choice):
        m = self.model
        entry = self.pick(choice, lambda d: d.folio is not None)
        nr = self.nr_for(nr, entry)
        old = self.folio_for(folio_choice, entry)
        new = self.folio_for(new_choice + 3, entry)
        call = lambda: self.space.swap_cache_replace_folio(entry, old, new, nr)
        if nr < 1:
            return self.expect((ValueError, "nr must be at least 1, not %d"
                                % nr), call)
        err = m.entry_error(entry, nr)
        if err:
            return self.expect(err, call)
        rng = range(entry, entry + nr)
        if any(m.descs[e].folio is not old for e in rng):
            return self.expect((SwapCacheError, None), call)
        assert call() is None
        for e in rng:
            m.descs[e].folio = new

    @rule(choice=ENTRY)
    def swap_cache_get(self, choice):
        entry = self.pick(choice, lambda d: d.folio is not None or d.shadow is not None)
        err = self.model.entry_error(entry)
        if err:
            self.expect(err, lambda: self.space.swap_cache_get_folio(entry))
            self.expect(err, lambda: self.space.swap_cache_get_shadow(entry))
            return
        d = self.model.descs[entry]
        assert self.space.swap_cache_get_folio(entry) is d.folio
        assert self.space.swap_cache_get_shadow(entry) == d.shadow

    @rule(choice=ENTRY, nr=NR)
    def swap_cache_clear_shadow(self, choice, nr):
        m = self.model
        entry = self.pick(choice, lambda d: d.shadow is not None)
        nr = self.nr_for(nr, entry)
        call = lambda: self.space.swap_cache_clear_shadow(entry, nr)
        if nr < 1:
            return self.expect((ValueError, "nr must be at least 1, not %d"
                                % nr), call)
        err = m.entry_error(entry, nr)
        if err:
            return self.expect(err, call)
        assert call() is None
        for e in range(entry, entry + nr):
            m.descs[e].shadow = None

    # -- slots -----------------------------------------------------------------

    @rule(choice=ENTRY, slot=SLOT)
    def set_slot(self, choice, slot):
        m = self.model
        entry = self.pick(choice, lambda d: d.slot != 0)
        call = lambda: self.space.set_slot(entry, slot)
        if not 0 <= slot < 2 ** 64:
            return self.expect((ValueError, "slot must be in [0, 2**64), "
                                "not %d" % slot), call)
        err = m.entry_error(entry)
        if err:
            return self.expect(err, call)
        assert call() == m.descs[entry].slot
        m.descs[entry].slot = slot
        if slot:
            m.descs[entry].zentry = None    # release_backing(): the zswap entry goes

    @rule(choice=ENTRY)
    def get_slot(self, choice):
        entry = self.pick(choice, lambda d: d.slot != 0)
        err = self.model.entry_error(entry)
        if err:
            return self.expect(err, lambda: self.space.get_slot(entry))
        assert self.space.get_slot(entry) == self.model.descs[entry].slot

    # -- bad types -------------------------------------------------------------

    @rule(choice=ENTRY, which=st.integers(0, 7),
          bad=st.sampled_from([None, 1.0, True, "1"]))
    def bad_types(self, choice, which, bad):
        entry = self.pick(choice)
        s = self.space
        calls = [
            lambda: s.zswap_entry_load(bad),
            lambda: s.free(bad),
            lambda: s.free(entry, bad),
            lambda: s.set_slot(entry, bad),
            lambda: s.swap_cache_add_folio(entry, Token(), bad),
            lambda: s.zswap_entry_store(entry, None),
            lambda: s.swap_cache_replace_folio(entry, Token(), None),
            lambda: s.swap_cache_del_folio(entry, Token(), 1, bad)
            if bad is not None else s.swap_cache_del_folio(entry, None),
        ]
        self.expect((TypeError, None), calls[which])

    @rule(choice=ENTRY)
    def contains(self, choice):
        entry = self.pick(choice)
        assert (entry in self.space) is (entry in self.model.descs)

    # -- invariants ------------------------------------------------------------

    @invariant()
    def counters_match(self):
        s, m = self.space, self.model
        assert len(s) == len(m.descs)
        # nr_clusters is derivable: the distinct clusters of live entries,
        # and the empty clusters that a thread caches
        assert s.nr_clusters == len({e >> m.shift for e in m.descs}
                                    | set(m.cache.values())) == len(m.clusters)
        assert s.zswap_empty() is all(d.zentry is None
                                      for d in m.descs.values())
        stats = s.stats()
        assert {k: v for k, v in stats.items()
                if k not in EVENT_COUNTERS} == m.counters()
        assert stats["lock_contended"] == 0

    @invariant()
    def entries_match(self):
        assert list(self.space.entries()) == sorted(self.model.descs)

    @invariant()
    def clusters_match(self):
        s, m = self.space, self.model
        for cid, c in m.clusters.items():
            info = s.cluster_info(cid)
            refcount = 1 + sum(1 for v in m.cache.values() if v == cid)
            zs = sum(1 for e, d in m.descs.items()
                     if e >> m.shift == cid and d.zentry is not None)
            assert (info["id"], info["order"], info["count"],
                    info["refcount"], info["zswap_entries"]) == \
                (cid, c["order"], len(c["used"]), refcount, zs), cid

    def teardown(self):
        s, m = self.space, self.model
        for e, d in m.descs.items():
            assert s.zswap_entry_load(e) is d.zentry
            assert s.swap_cache_get_folio(e) is d.folio
            assert s.swap_cache_get_shadow(e) == d.shadow
            assert s.get_slot(e) == d.slot


@pytest.mark.parametrize("shift,max_clusters", GEOMETRIES,
                         ids=["shift%d-max%d" % g for g in GEOMETRIES])
def test_state_machine(core, shift, max_clusters):
    run_state_machine_as_test(
        lambda: VSwapMachine(core, shift, max_clusters), settings=SETTINGS)
