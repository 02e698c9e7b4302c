"""The loops of the replay's reclaim, in plain Python: the pure twin of
``vswapfast._reclaim`` (same functions, same results).

``lru_misses`` walks the candidate misses of an exact LRU (see
``vswapfast.replay.simulate_lru``); ``kernel_reclaim`` runs a trace through
the kernel's two-list active/inactive reclaim with workingset refault
detection (see ``vswapfast.reclaim`` for the kernel functions it follows).
``StreamReclaim`` runs either one fed a chunk of the trace at a time, for
the streaming replay (``vswapfast.stream``), with state per distinct page.
"""

from array import array

import numpy as np

from vswapfast.batch import BATCH_EMPTY, BATCH_FOREIGN, BATCH_INVALID, BATCH_OK
from vswapfast.errors import InvalidEntryError, SwapCacheError

_SHADOW_LIMIT = 1 << 62

#: Pages shrink_active_list() moves per call (SWAP_CLUSTER_MAX).
SWAP_CLUSTER_MAX = 32
#: 30 - PAGE_SHIFT: pages per GiB as a shift, for inactive_is_low().
GB_SHIFT = 18

# Page states of kernel_reclaim.
NEVER, INACTIVE, ACTIVE, SWAPPED = 0, 1, 2, 3
#: StreamReclaim's list node of page id 0 (nodes 0 and 1 head the lists).
PAGE_NODE = 2


def lru_misses(check, check_prev, cand, cand_next, frames, n):
    """The misses and evictions of an exact LRU of ``frames`` pages.

    ``check``: the events that may miss, in order, with ``check_prev``, the
    previous access to their key (-1 for none); ``cand``: the last accesses
    that may be evicted, in order, with ``cand_next``, the next access to
    their key (``n`` for none).  Returns ``(miss_events, miss_prev,
    victims)``: the event of each miss, the previous access of its key
    (-1 for a cold miss) and, per eviction, the event of the victim's last
    access; all int64 arrays.
    """
    if len(check) != len(check_prev) or len(cand) != len(cand_next):
        raise ValueError("check/check_prev and cand/cand_next must have equal lengths")
    if int(frames) < 0:
        raise ValueError("frames must not be negative, not %d" % frames)
    cand_list = np.asarray(cand, dtype=np.int64).tolist()
    cand_list.append(n)
    cand_next_list = np.asarray(cand_next, dtype=np.int64).tolist()
    cand_next_list.append(1 << 62)
    miss_t = []
    miss_p = []
    victims = []
    add_t, add_p, add_v = miss_t.append, miss_p.append, victims.append
    b = 0
    vi = 0
    cold = int(frames)
    for t, p in zip(np.asarray(check).tolist(), np.asarray(check_prev).tolist()):
        if p >= b:
            continue                        # a hit
        add_t(t)
        add_p(p)
        if cold:                            # filling free frames
            cold -= 1
            continue
        while cand_next_list[vi] <= t:      # superseded by a later access
            vi += 1
        if vi >= len(cand_list) - 1:
            raise ValueError("no eviction candidate left: the candidate arrays do not "
                             "match the checks")
        v = cand_list[vi]
        add_v(v)
        b = v + 1
        vi += 1
    return (np.array(miss_t, dtype=np.int64), np.array(miss_p, dtype=np.int64),
            np.array(victims, dtype=np.int64))


def _isqrt(x):
    """int_sqrt(): the integer square root, rounded down."""
    r = int(x ** 0.5)
    while r * r > x:
        r -= 1
    while (r + 1) * (r + 1) <= x:
        r += 1
    return r


class _Lists:
    """The two LRU lists as arrays of links: node ``ndistinct`` heads the
    inactive list, node ``ndistinct + 1`` the active one; ``nxt`` points
    from head to tail."""

    def __init__(self, ndistinct):
        size = ndistinct + 2
        self.prev = list(range(size))
        self.nxt = list(range(size))
        self.head = (None, ndistinct, ndistinct + 1)   # indexed by INACTIVE/ACTIVE
        self.count = [0, 0, 0]

    def add_head(self, lru, page):
        head = self.head[lru]
        first = self.nxt[head]
        self.nxt[head] = page
        self.prev[page] = head
        self.nxt[page] = first
        self.prev[first] = page
        self.count[lru] += 1

    def delete(self, lru, page):
        p, q = self.prev[page], self.nxt[page]
        self.nxt[p] = q
        self.prev[q] = p
        self.count[lru] -= 1

    def tail(self, lru):
        return self.prev[self.head[lru]]


def kernel_reclaim(ids, ndistinct, frames):
    """Run the page ids of a trace (int64, each in ``[0, ndistinct)``)
    through ``frames`` resident pages under the kernel's active/inactive
    reclaim.  Returns a dict of arrays and counts; see
    ``vswapfast.reclaim.simulate_kernel`` for what each one means."""
    ids = np.asarray(ids, dtype=np.int64)
    frames = int(frames)
    ndistinct = int(ndistinct)
    if frames < 1:
        raise ValueError("frames must be at least 1, not %d" % frames)
    if ndistinct < 0:
        raise ValueError("ndistinct must not be negative")
    if len(ids) and (ids.min() < 0 or ids.max() >= ndistinct):
        raise ValueError("page ids must lie in [0, %d)" % ndistinct)
    lists = _Lists(ndistinct)
    state = [NEVER] * ndistinct
    referenced = [False] * ndistinct
    last = [0] * ndistinct
    shadow = [0] * ndistinct
    evicted_as = [0] * ndistinct
    age = 0                         # lruvec->nonresident_age
    counts = dict(promotions=0, deactivations=0, activations=0)
    miss_t, miss_p, victims, clocks = [], [], [], []
    in_miss, in_evict, refault_clock, ws_size, activated = [], [], [], [], []
    resident = 0

    def mark_accessed(page):
        # folio_mark_accessed(): inactive,unreferenced -> referenced;
        # inactive,referenced -> active (workingset_activation ages the
        # non-resident clock); active,unreferenced -> referenced.
        nonlocal age
        if not referenced[page]:
            referenced[page] = True
        elif state[page] == INACTIVE:
            lists.delete(INACTIVE, page)
            state[page] = ACTIVE
            lists.add_head(ACTIVE, page)
            referenced[page] = False
            age += 1
            counts["promotions"] += 1

    def reclaim_one():
        nonlocal age
        inactive, active = lists.count[INACTIVE], lists.count[ACTIVE]
        gb = (inactive + active) >> GB_SHIFT
        ratio = _isqrt(10 * gb) if gb else 1
        if inactive * ratio < active:                   # inactive_is_low()
            for _ in range(min(SWAP_CLUSTER_MAX, active)):   # shrink_active_list()
                page = lists.tail(ACTIVE)
                lists.delete(ACTIVE, page)
                state[page] = INACTIVE
                lists.add_head(INACTIVE, page)
                counts["deactivations"] += 1
        page = lists.tail(INACTIVE)                     # shrink_inactive_list()
        lists.delete(INACTIVE, page)
        state[page] = SWAPPED
        referenced[page] = False
        shadow[page] = age                              # workingset_eviction()
        age += 1
        evicted_as[page] = len(victims)
        victims.append(last[page])
        clocks.append(shadow[page])

    for t, page in enumerate(ids.tolist()):
        st = state[page]
        if st == INACTIVE or st == ACTIVE:
            mark_accessed(page)
            last[page] = t
            continue
        miss_t.append(t)
        miss_p.append(last[page] if st == SWAPPED else -1)
        if resident == frames:
            reclaim_one()
        else:
            resident += 1
        lru = INACTIVE
        if st == SWAPPED:                               # workingset_refault()
            ws = lists.count[ACTIVE]
            recent = age - shadow[page] <= ws
            in_miss.append(len(miss_t) - 1)
            in_evict.append(evicted_as[page])
            refault_clock.append(age)
            ws_size.append(ws)
            activated.append(recent)
            if recent:
                lru = ACTIVE
                age += 1
                counts["activations"] += 1
        state[page] = lru
        lists.add_head(lru, page)
        mark_accessed(page)
        last[page] = t

    out = dict(
        miss_events=np.array(miss_t, dtype=np.int64),
        miss_prev=np.array(miss_p, dtype=np.int64),
        victims=np.array(victims, dtype=np.int64),
        shadows=np.array(clocks, dtype=np.uint64),
        in_miss=np.array(in_miss, dtype=np.int64),
        in_evict=np.array(in_evict, dtype=np.int64),
        refault_clock=np.array(refault_clock, dtype=np.uint64),
        workingset_size=np.array(ws_size, dtype=np.int64),
        activated=np.array(activated, dtype=bool),
        nr_active=lists.count[ACTIVE],
        nr_inactive=lists.count[INACTIVE],
        nonresident_age=age,
    )
    out.update(counts)
    return out


# -- the reclaim fed a chunk at a time ------------------------------------------------

#: Arrays of a StreamReclaim's misses, per miss of a fed chunk: (name, dtype).
MISS_FIELDS = (
    ("event", np.int64), ("key", np.uint64), ("pid", np.int64), ("version", np.uint64),
    ("evicted_as", np.int64), ("victim_key", np.uint64), ("victim_pid", np.int64),
    ("victim_version", np.uint64), ("victim_shadow", np.uint64),
    ("refault_clock", np.uint64), ("workingset_size", np.int64), ("activated", np.uint8),
    ("shadow", np.uint64),
)


class StreamReclaim:
    """The reclaim of ``kernel_reclaim`` (``reclaim="kernel"``) or an exact
    LRU (``reclaim="lru"``), fed the keys of a trace a chunk at a time.

    Its state is per distinct page: a dict from key to a dense page id
    (``count`` fills it: a first pass over the trace, for the number of
    distinct keys), and per page id its key, list links, state, writes and
    shadow.  ``start(frames)`` begins the simulation; each ``feed(keys,
    writes)`` returns the misses of that chunk (see ``feed``).  Memory
    grows with the distinct pages, not with the events fed.
    """

    def __init__(self, reclaim="lru"):
        if reclaim not in ("lru", "kernel"):
            raise ValueError("reclaim must be 'lru' or 'kernel', not %r" % (reclaim,))
        self.reclaim = reclaim
        self.kernel = reclaim == "kernel"
        self.started = False
        self.frames = self.events = self.misses = self.evictions = self.swap_ins = 0
        self.promotions = self.deactivations = self.activations = self.resident = 0
        self.nonresident_age = 0
        self._ids = {}
        self._keys = []
        self._lists = _GrowingLists()
        self._state, self._referenced, self._writes, self._shadow, self._evno = [], [], [], [], []

    @property
    def distinct(self):
        return len(self._keys)

    @property
    def nr_active(self):
        return self._lists.count[ACTIVE]

    @property
    def nr_inactive(self):
        return self._lists.count[INACTIVE]

    def _page_id(self, key):
        pid = self._ids.get(key)
        if pid is None:
            pid = self._ids[key] = len(self._keys)
            self._keys.append(key)
            for values in (self._state, self._referenced, self._writes, self._shadow,
                           self._evno):
                values.append(0)
            self._lists.grow()
        return pid

    def count(self, keys):
        """Give page ids to the new keys among ``keys`` (a first pass over
        the trace: ``distinct`` is then the number of distinct keys)."""
        for key in _keys_arg(keys).tolist():
            self._page_id(key)

    def start(self, frames):
        """Begin the simulation with ``frames`` resident pages."""
        frames = int(frames)
        if frames < 1:
            raise ValueError("frames must be at least 1, not %d" % frames)
        if self.started:
            raise RuntimeError("the simulation has already started")
        self.frames = frames
        self.started = True

    def _evict(self):
        """Reclaim one page; returns its id."""
        lists, state = self._lists, self._state
        if self.kernel:
            # inactive_is_low(), then shrink_active_list() (as kernel_reclaim).
            inactive, active = lists.count[INACTIVE], lists.count[ACTIVE]
            gb = (inactive + active) >> GB_SHIFT
            ratio = _isqrt(10 * gb) if gb else 1
            if inactive * ratio < active:
                for _ in range(min(SWAP_CLUSTER_MAX, active)):
                    node = lists.tail(ACTIVE)
                    lists.delete(ACTIVE, node)
                    state[node - PAGE_NODE] = INACTIVE
                    lists.add_head(INACTIVE, node)
                    self.deactivations += 1
        # shrink_inactive_list() (the LRU's tail, for the exact LRU), with
        # workingset_eviction()'s shadow.
        node = lists.tail(INACTIVE)
        lists.delete(INACTIVE, node)
        page = node - PAGE_NODE
        state[page] = SWAPPED
        self._referenced[page] = False
        self._evno[page] = self.evictions
        self.evictions += 1
        if self.kernel:
            self._shadow[page] = self.nonresident_age
            self.nonresident_age += 1
        return page

    def _access(self, page, t, write, out):
        """One event: page ``page`` accessed at event ``t``."""
        state, lists, referenced = self._state, self._lists, self._referenced
        st = state[page]
        if st != INACTIVE and st != ACTIVE:
            self.misses += 1
            row = [t, self._keys[page], page, self._writes[page],
                   self._evno[page] if st == SWAPPED else -1, 0, -1, 0, 0, 0, 0, 0, 0]
            if self.resident == self.frames:
                victim = self._evict()
                row[5:9] = [self._keys[victim], victim, self._writes[victim],
                            self._shadow[victim]]
            else:
                self.resident += 1
            lru = INACTIVE
            if st == SWAPPED:
                self.swap_ins += 1
                if self.kernel:                     # workingset_refault()
                    ws = lists.count[ACTIVE]
                    row[9:13] = [self.nonresident_age, ws, 0, self._shadow[page]]
                    if self.nonresident_age - self._shadow[page] <= ws:
                        row[11] = 1
                        lru = ACTIVE
                        self.nonresident_age += 1
                        self.activations += 1
            state[page] = lru
            lists.add_head(lru, page + PAGE_NODE)
            out.append(row)
        elif not self.kernel:                       # an LRU hit: to the head
            lists.delete(INACTIVE, page + PAGE_NODE)
            lists.add_head(INACTIVE, page + PAGE_NODE)
        if self.kernel:                             # folio_mark_accessed()
            if not referenced[page]:
                referenced[page] = True
            elif state[page] == INACTIVE:
                lists.delete(INACTIVE, page + PAGE_NODE)
                state[page] = ACTIVE
                lists.add_head(ACTIVE, page + PAGE_NODE)
                referenced[page] = False
                self.nonresident_age += 1
                self.promotions += 1
        if write:
            self._writes[page] += 1

    def feed(self, keys, writes=None):
        """Run the next events of the trace: ``keys`` (uint64) and which of
        them write (bool, or None for none).  Returns a dict of arrays, one
        item per miss of these events, in order; see the compiled core's
        ``StreamReclaim.feed`` for what each one holds."""
        if not self.started:
            raise RuntimeError("start(frames) the simulation before feeding it")
        keys = _keys_arg(keys)
        if writes is not None:
            writes = np.ascontiguousarray(writes, dtype=bool)
            if len(writes) != len(keys):
                raise ValueError("writes must have as many items as keys (%d), not %d"
                                 % (len(keys), len(writes)))
            writes = writes.tolist()
        else:
            writes = [False] * len(keys)
        first = self.misses
        rows = []
        page_id, access = self._page_id, self._access
        for i, (key, write) in enumerate(zip(keys.tolist(), writes)):
            access(page_id(key), self.events + i, write, rows)
        self.events += len(keys)
        columns = list(zip(*rows)) if rows else [()] * len(MISS_FIELDS)
        out = {name: np.array(column, dtype=dtype)
               for (name, dtype), column in zip(MISS_FIELDS, columns)}
        out["activated"] = out["activated"].astype(bool)
        out["first_miss"] = first
        return out

    def __repr__(self):
        return "<StreamReclaim %s: %d distinct keys, %d events, %d misses>" % (
            self.reclaim, self.distinct, self.events, self.misses)


class _GrowingLists(_Lists):
    """_Lists that grow a page at a time: the heads are nodes 0 (inactive)
    and 1 (active), page id p is node p + PAGE_NODE."""

    def __init__(self):
        super().__init__(0)

    def grow(self):
        self.prev.append(len(self.prev))
        self.nxt.append(len(self.nxt))


def _keys_arg(keys):
    """``keys`` as a C-contiguous uint64 array (TypeError otherwise)."""
    array = np.asarray(keys)
    if array.ndim != 1 or (len(array) and array.dtype.kind not in "ui"):
        raise TypeError("keys must be a 1-d array of unsigned integers, not %s %r"
                        % (array.dtype, array.shape))
    return np.ascontiguousarray(array, dtype=np.uint64)


# -- shadows in the swap descriptors ------------------------------------------------

#: The folio that stands for a page while it is reclaimed: only its identity
#: matters to the swap cache.
_RECLAIMED = object()


def _values(obj, name, count=None, writable=False):
    view = memoryview(obj)
    if view.format not in ("Q", "q", "L", "l", "<Q", "<q") or view.itemsize != 8:
        if writable:
            raise TypeError("%s must be a writable buffer of 8-byte integers" % name)
        values = np.asarray(obj).astype(np.uint64)
    else:
        values = np.frombuffer(view.cast("B"), dtype=np.uint64)
    if writable and view.readonly:
        raise TypeError("%s must be a writable buffer of 8-byte integers" % name)
    if count is not None and len(values) != count:
        raise ValueError("%s must have %d items, not %d" % (name, count, len(values)))
    return values


def leave_shadows(space, entries, shadows):
    """For each entry, the shadow reclaim leaves once its folio is gone
    (``swap_cache_add_folio`` then ``swap_cache_del_folio(...,
    shadow=...)``).  Returns an ``array('b')`` of statuses: BATCH_OK;
    BATCH_FOREIGN when a folio is in the entry's swap cache (left as it
    was); BATCH_INVALID for an entry with no allocated descriptor."""
    vals = _values(entries, "entries")
    shadows = _values(shadows, "shadows", len(vals))
    for i, value in enumerate(shadows.tolist()):
        if value >= _SHADOW_LIMIT:
            raise ValueError("shadows must be in [0, 2**62), not %d (item %d)" % (value, i))
    status = array("b", bytes(len(vals)))
    for i, (entry, shadow) in enumerate(zip(vals.tolist(), shadows.tolist())):
        try:
            space.swap_cache_add_folio(entry, _RECLAIMED)
        except SwapCacheError:
            status[i] = BATCH_FOREIGN
            continue
        except (InvalidEntryError, ValueError):
            status[i] = BATCH_INVALID
            continue
        space.swap_cache_del_folio(entry, _RECLAIMED, 1, shadow)
        status[i] = BATCH_OK
    return status


def read_shadows(space, entries, out):
    """The shadow of each entry into ``out`` (0 where there is none).
    Returns an ``array('b')`` of statuses: BATCH_OK; BATCH_EMPTY when the
    entry holds no shadow; BATCH_INVALID for an entry with no allocated
    descriptor."""
    vals = _values(entries, "entries")
    values = _values(out, "out", len(vals), writable=True)
    status = array("b", bytes(len(vals)))
    for i, entry in enumerate(vals.tolist()):
        values[i] = 0
        try:
            shadow = space.swap_cache_get_shadow(entry)
        except (InvalidEntryError, ValueError):
            status[i] = BATCH_INVALID
            continue
        if shadow is None:
            status[i] = BATCH_EMPTY
        else:
            values[i] = shadow
            status[i] = BATCH_OK
    return status


# -- the swap cache through a swap-out and a swap-in, one page at a time ----------------


def _folio_arg(folio):
    if folio is None or isinstance(folio, int):
        raise TypeError("folio must be an object other than None or an int, not %s"
                        % type(folio).__name__)


def _per_entry(vals, call):
    """``call(entry)`` for each entry, as a batch call: the statuses
    (BATCH_OK; BATCH_FOREIGN for a SwapCacheError; BATCH_INVALID for an
    entry with no allocated descriptor) and what each call returned (None
    where it failed)."""
    status = array("b", bytes(len(vals)))
    results = []
    for i, entry in enumerate(vals.tolist()):
        result = None
        try:
            result = call(entry)
        except SwapCacheError:
            status[i] = BATCH_FOREIGN
        except (InvalidEntryError, ValueError):
            status[i] = BATCH_INVALID
        else:
            status[i] = BATCH_OK
        results.append(result)
    return status, results


def swap_cache_add_folios(space, entries, folio, shadows_out):
    """``swapcache_prepare()`` and ``swap_cache_add_folio()`` per entry:
    ``folio`` enters the entry's swap cache and the shadow it replaces is
    written to ``shadows_out`` (0 where there was none).  Returns an
    ``array('b')`` of statuses: BATCH_OK; BATCH_FOREIGN when a folio is
    already there (left as it is); BATCH_INVALID for an entry with no
    allocated descriptor.  Context: the entry's cluster lock, per entry."""
    _folio_arg(folio)
    vals = _values(entries, "entries")
    out = _values(shadows_out, "shadows_out", len(vals), writable=True)
    status, shadows = _per_entry(vals, lambda entry: space.swap_cache_add_folio(entry, folio))
    for i, shadow in enumerate(shadows):
        out[i] = shadow or 0
    return status


def swap_cache_del_folios(space, entries, folio, shadows=None):
    """``__swap_cache_del_folio()`` per entry: where the entry's swap cache
    holds ``folio``, ``shadows[i]`` takes its place (nothing when
    ``shadows`` is None).  Returns an ``array('b')`` of statuses:
    BATCH_OK; BATCH_FOREIGN when the swap cache does not hold ``folio``;
    BATCH_INVALID for an entry with no allocated descriptor.  Context: the
    entry's cluster lock, per entry."""
    _folio_arg(folio)
    vals = _values(entries, "entries")
    left = iter([None] * len(vals))
    if shadows is not None:
        shadows = _values(shadows, "shadows", len(vals)).tolist()
        for i, value in enumerate(shadows):
            if value >= _SHADOW_LIMIT:
                raise ValueError("shadows must be in [0, 2**62), not %d (item %d)" % (value, i))
        left = iter(shadows)
    return _per_entry(vals, lambda entry: space.swap_cache_del_folio(
        entry, folio, 1, next(left)))[0]
