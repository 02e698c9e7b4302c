"""Helpers shared by the vswapfast tests (not a test module)."""

import queue
import threading
from fractions import Fraction

try:
    import numpy
except ImportError:     # numpy is optional: its integer types are extra cases
    numpy = None

#: Counters of lock use.  They are diagnostics, not state: a call that fails a
#: swap-cache state check has taken the cluster lock to find that out, and
#: taking snapshots takes locks too, so snapshots leave them out.
LOCK_COUNTERS = ("lock_acquisitions", "lock_contended")

#: Descriptors per backing type (v6's enum swap_type, and "none").
BACKING_KEYS = {
    "backing_none", "backing_zero", "backing_zswap", "backing_swapfile", "backing_folio",
}

STAT_KEYS = {
    "entries", "clusters", "zswap_entries", "swap_cache_folios", "shadows",
    "slots", "lock_acquisitions", "lock_contended", "cluster_size", "used", "alloc_reject",
    "max_clusters",
} | BACKING_KEYS

CLUSTER_INFO_KEYS = {
    "id", "order", "count", "refcount", "zswap_entries",
    "lock_acquisitions", "lock_contended",
} | BACKING_KEYS


def backing(space_or_stats):
    """The descriptors per backing type of a space (or of a stats() or
    cluster_info() dict), as {type: count} without the "backing_" prefix."""
    st = space_or_stats if isinstance(space_or_stats, dict) else space_or_stats.stats()
    return {k[len("backing_"):]: v for k, v in st.items() if k.startswith("backing_")}


class Token:
    """A distinct object to store as a zswap entry or a folio.

    Equality is deliberately broad (every Token equals every other), so a core
    that compares by ``==`` where the contract says identity is caught.
    """

    __slots__ = ("name", "__weakref__")

    def __init__(self, name=""):
        self.name = name

    def __eq__(self, other):
        return isinstance(other, Token)

    def __hash__(self):
        return 0

    def __repr__(self):
        return "Token(%r)" % (self.name,)


class Index:
    """Not an int, but usable as one through ``__index__``."""

    def __init__(self, value):
        self.value = value

    def __index__(self):
        return self.value


class IntSubclass(int):
    pass


def index_types():
    """Types that are not int but turn into one through ``__index__``,
    plus an int subclass."""
    types = [Index, IntSubclass]
    if numpy is not None:
        types += [numpy.int64, numpy.uint64, numpy.int32, numpy.uint16]
    return types


#: Counters of events, which a refused call counts like any other.
EVENT_COUNTERS = LOCK_COUNTERS + ("alloc_reject",)


def _strip(d):
    return {k: v for k, v in d.items() if k not in EVENT_COUNTERS}


def snapshot(space):
    """Everything observable about ``space`` except its event counters.

    Objects are kept (not their ids) so the comparison can use identity.
    """
    entries = list(space.entries())
    descs = {}
    for e in entries:
        descs[e] = (
            space.zswap_entry_load(e),
            space.swap_cache_get_folio(e),
            space.swap_cache_get_shadow(e),
            space.get_slot(e),
        )
    clusters = {}
    for cid in sorted({e >> space.cluster_shift for e in entries}):
        clusters[cid] = _strip(space.cluster_info(cid))
    return {
        "stats": _strip(space.stats()),
        "entries": entries,
        "len": len(space),
        "nr_clusters": space.nr_clusters,
        "zswap_empty": space.zswap_empty(),
        "descs": descs,
        "clusters": clusters,
    }


def assert_same_snapshot(before, after):
    for key in ("stats", "entries", "len", "nr_clusters", "zswap_empty",
                "clusters"):
        assert before[key] == after[key], key
    assert before["descs"].keys() == after["descs"].keys()
    for e, (z0, f0, s0, sl0) in before["descs"].items():
        z1, f1, s1, sl1 = after["descs"][e]
        assert z1 is z0, "zswap entry of %#x changed" % e
        assert f1 is f0, "folio of %#x changed" % e
        assert s1 == s0, "shadow of %#x changed" % e
        assert sl1 == sl0, "slot of %#x changed" % e


class Worker:
    """A thread that runs calls on request.

    The thread lives until ``close``, so the allocation caches a space keeps
    for it stay in place between calls.
    """

    def __init__(self):
        self._queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            item = self._queue.get()
            if item is None:
                return
            fn, args, kwargs, box, done = item
            try:
                box.append((True, fn(*args, **kwargs)))
            except BaseException as exc:  # handed back to the caller
                box.append((False, exc))
            del fn, args, kwargs, item
            done.set()

    def call(self, fn, *args, **kwargs):
        box = []
        done = threading.Event()
        self._queue.put((fn, args, kwargs, box, done))
        assert done.wait(60), "worker thread did not answer"
        ok, value = box.pop()
        if not ok:
            raise value
        return value

    def close(self):
        self._queue.put(None)
        self._thread.join(60)


#: Swap entry arguments of every wrong type; both cores refuse each with
#: TypeError before looking at anything else.
BAD_ENTRY_TYPES = [1.0, 8.0, True, False, None, "8", b"8", [8], (8,),
                   Fraction(8), 8j, object()]
