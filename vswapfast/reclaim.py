"""How the replay picks the pages to swap out: ``lru`` or ``kernel``.

``lru`` is an exact LRU of the resident frames (``vswapfast.replay.simulate_lru``).

``kernel`` is the two-list reclaim of Linux without the multi-gen LRU
(CONFIG_LRU_GEN off, as in 6.18), for one lruvec of anonymous pages with swap
space available, and workingset refault detection through shadow entries:

- A page faulted in goes to the head of the inactive list, as
  ``folio_add_lru()`` puts a new anonymous folio (mm/swap.c).
- Every access, the faulting one included, is ``folio_mark_accessed()``
  (mm/swap.c): inactive and unreferenced -> referenced; inactive and
  referenced -> moved to the head of the active list, unreferenced, and
  ``workingset_activation()`` ages the non-resident clock by one page;
  active and unreferenced -> referenced.  So a page's second access
  promotes it.
- A miss with every frame in use reclaims one page.  First, as
  ``shrink_lruvec()`` does for the anon lists, when ``inactive_is_low()``
  (mm/vmscan.c: ``inactive * inactive_ratio < active``, the ratio being
  ``int_sqrt(10 * gb)`` for ``gb`` GiB on the two lists, else 1),
  ``shrink_active_list()`` takes SWAP_CLUSTER_MAX (32) pages from the active
  tail and puts them at the inactive head, in their order, inactive (an
  anonymous page is never kept active there: only executable file pages
  are).  Then ``shrink_inactive_list()`` evicts the inactive tail:
  ``folio_check_references()`` reclaims an anonymous folio that no page
  table references, whatever its referenced flag.
- The evicted page is swapped out; ``workingset_eviction()`` (mm/workingset.c)
  returns its shadow, the lruvec's ``nonresident_age`` at eviction, and ages
  that clock by one page.  The replay keeps the shadow where the kernel
  does: ``__swap_cache_del_folio()`` leaves it in the swap entry's
  swap-cache slot, here the descriptor's swap-cache/shadow union, through
  ``VSwap.swap_cache_del_folio(entry, folio, shadow=...)``.
- A miss on a swapped-out page is a refault.  ``workingset_refault()`` and
  ``workingset_test_recent()`` take the refault distance, the clock now
  minus the shadow, and compare it with the workingset size, which for an
  anonymous refault with swap space and no file pages is the active anon
  list's size.  Within it, the page is activated (put on the active list,
  the clock aged by one page, WORKINGSET_ACTIVATE counted); otherwise it
  starts on the inactive list.  WORKINGSET_REFAULT counts every refault.

Deliberate simplifications are in docs/semantics.md ("The replay's
reclaim").

The loops are in ``vswapfast._reclaim`` (compiled, no GIL) and
``vswapfast.pure.reclaim`` (its plain-Python twin).
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np

RECLAIMS = ("lru", "kernel")


class ReclaimError(ValueError):
    """An impossible reclaim setting (a one-line message for the user)."""


@dataclass
class ReclaimResult:
    """Misses and evictions of a reclaim policy over a trace.

    The ``i``-th eviction (swap-out) is of the key last accessed at event
    ``victim_pos[i]``; it happens at miss number ``cold_fill + i``.  The
    ``j``-th swap-in is at miss number ``in_miss[j]`` and brings back the
    page of eviction ``in_evict[j]``.  ``miss_events`` is the event of each
    miss.  With the kernel's reclaim, ``shadows`` holds each eviction's
    shadow (its eviction clock) and, per swap-in, ``refault_clock``,
    ``workingset_size`` and ``activated`` say how its refault was judged.
    """
    events: int
    frames: int
    distinct: int
    hits: int
    cold_misses: int
    miss_count: int
    cold_fill: int
    victim_pos: np.ndarray
    victim_keys: np.ndarray
    victim_versions: Optional[np.ndarray]
    in_miss: np.ndarray
    in_evict: np.ndarray
    miss_events: Optional[np.ndarray] = None
    reclaim: str = "lru"
    shadows: Optional[np.ndarray] = None
    refault_clock: Optional[np.ndarray] = None
    workingset_size: Optional[np.ndarray] = None
    activated: Optional[np.ndarray] = None
    promotions: int = 0
    deactivations: int = 0
    nr_active: int = 0
    nr_inactive: int = 0

    @property
    def swap_outs(self):
        return len(self.victim_pos)

    @property
    def swap_ins(self):
        return len(self.in_evict)

    @property
    def refaults(self):
        """Swap-ins judged by workingset_refault() (kernel reclaim), else 0."""
        return 0 if self.activated is None else len(self.activated)

    @property
    def activations(self):
        """Refaults activated (WORKINGSET_ACTIVATE), else 0."""
        return 0 if self.activated is None else int(np.count_nonzero(self.activated))

    @property
    def evict_events(self):
        """The event at which each eviction happens (the miss that needed
        its frame)."""
        return self.miss_events[self.cold_fill:self.cold_fill + self.swap_outs]

    @property
    def swapin_events(self):
        """The event of each swap-in."""
        return self.miss_events[self.in_miss]


def loops(core="compiled"):
    """The module with ``lru_misses`` and ``kernel_reclaim`` for ``core``:
    the compiled one (falling back to the pure twin when it is not built)
    or the pure one."""
    if core not in ("compiled", "pure"):
        raise ReclaimError("unknown core %r (choose from compiled, pure)" % (core,))
    if core == "compiled":
        try:
            from vswapfast import _reclaim
            return _reclaim
        except ImportError:
            pass
    from vswapfast.pure import reclaim
    return reclaim


def sort_by_key(keys):
    """(order, sorted keys): the events sorted by key, in time order within
    a key.  When key and event number fit in 64 bits together, one sort of
    ``key << bits | event`` (a plain, vectorised sort of values) does it."""
    n = len(keys)
    bits = max(1, int(n - 1).bit_length())
    if n:
        low = int(keys.min())
        if int(keys.max()) - low < 1 << (64 - bits):
            packed = (keys - np.uint64(low)) << np.uint64(bits)
            packed |= np.arange(n, dtype=np.uint64)
            packed.sort()
            order = (packed & np.uint64((1 << bits) - 1)).astype(np.int64)
            packed >>= np.uint64(bits)
            return order, packed
    order = np.argsort(keys, kind="stable")
    return order, keys[order]


def dense_ids(keys):
    """``(ids, distinct)``: each key replaced by its rank among the distinct
    keys (int64), and how many there are."""
    keys = np.asarray(keys, dtype=np.uint64)
    n = len(keys)
    if n == 0:
        return np.zeros(0, dtype=np.int64), 0
    order, sorted_keys = sort_by_key(keys)
    new = np.empty(n, dtype=np.int64)
    new[0] = 0
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=new[1:], casting="unsafe")
    ranks = np.cumsum(new, out=new)
    ids = np.empty(n, dtype=np.int64)
    ids[order] = ranks
    return ids, int(ranks[-1]) + 1


def simulate_kernel(trace, frames, core="compiled", versions_of=None):
    """Run ``trace`` through ``frames`` resident pages under the kernel's
    active/inactive reclaim (see the module's docstring); returns a
    :class:`ReclaimResult`.  ``versions_of(trace, positions)``, if given,
    gives the versions of the evicted pages (for traces with writes).

    Callable from Python with any object with ``keys`` (and ``writes``)
    arrays, e.g. a ``vswapfast.replay.Trace``.
    """
    frames = int(frames)
    if frames < 1:
        raise ReclaimError("frames must be at least 1, not %d" % frames)
    keys = np.asarray(trace.keys)
    ids, distinct = dense_ids(keys)
    r = loops(core).kernel_reclaim(ids, distinct, frames)
    victim_pos = r["victims"]
    versions = None
    writes = getattr(trace, "writes", None)
    if versions_of is not None and writes is not None and writes.any():
        versions = versions_of(trace, victim_pos)
    misses = len(r["miss_events"])
    return ReclaimResult(
        events=len(keys), frames=frames, distinct=distinct, hits=len(keys) - misses,
        cold_misses=misses - len(r["in_miss"]), miss_count=misses,
        cold_fill=min(frames, misses), victim_pos=victim_pos,
        victim_keys=keys[victim_pos], victim_versions=versions,
        in_miss=r["in_miss"], in_evict=r["in_evict"], miss_events=r["miss_events"],
        reclaim="kernel", shadows=r["shadows"], refault_clock=r["refault_clock"],
        workingset_size=r["workingset_size"], activated=r["activated"],
        promotions=int(r["promotions"]), deactivations=int(r["deactivations"]),
        nr_active=int(r["nr_active"]), nr_inactive=int(r["nr_inactive"]))


def refault_is_recent(shadow, refault_clock, workingset_size):
    """workingset_test_recent() for anonymous refaults: whether the refault
    distance (the clock at refault minus the shadow, unsigned) is within the
    workingset size.  Arrays in, a bool array out."""
    distance = (np.asarray(refault_clock, dtype=np.uint64)
                - np.asarray(shadow, dtype=np.uint64))
    return distance <= np.asarray(workingset_size, dtype=np.int64).astype(np.uint64)
