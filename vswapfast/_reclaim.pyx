# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The loops of the replay's reclaim, in C: the compiled twin of
``vswapfast.pure.reclaim`` (same functions, same results).

``lru_misses`` walks the candidate misses of an exact LRU (see
``vswapfast.replay.simulate_lru``); ``kernel_reclaim`` runs a trace through
the kernel's two-list active/inactive reclaim with workingset refault
detection (see ``vswapfast.reclaim`` for the kernel functions it follows).
Both run without the GIL over arrays they allocate before.
``StreamReclaim`` runs either one fed a chunk of the trace at a time, for
the streaming replay (``vswapfast.stream``), with state per distinct page;
it takes no lock (one thread uses it at a time: a flag refuses a second).
"""

import numpy as np

from libc.stdint cimport int64_t, uint64_t, uint8_t, uintptr_t

from vswapfast._vswap cimport (
    BATCH_EMPTY, BATCH_FOREIGN, BATCH_INVALID, BATCH_OK, VSwap, swp_desc, status_array,
    u64_array, u64_array_get, u64_array_release, vswap_cache_is_folio, vswap_cluster,
    vswap_cluster_unlock, vswap_iter, vswap_space, vswap_desc_cache_changed,
)

DEF SHADOW_LIMIT = 1 << 62

DEF SWAP_CLUSTER_MAX = 32
DEF GB_SHIFT = 18

SWAP_CLUSTER_MAX_PAGES = SWAP_CLUSTER_MAX

# Page states of kernel_reclaim.
DEF NEVER = 0
DEF INACTIVE = 1
DEF ACTIVE = 2
DEF SWAPPED = 3


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
    cdef const int64_t[::1] ct = np.ascontiguousarray(check, dtype=np.int64)
    cdef const int64_t[::1] cp = np.ascontiguousarray(check_prev, dtype=np.int64)
    cdef const int64_t[::1] cd = np.ascontiguousarray(cand, dtype=np.int64)
    cdef const int64_t[::1] cn = np.ascontiguousarray(cand_next, dtype=np.int64)
    if ct.shape[0] != cp.shape[0] or cd.shape[0] != cn.shape[0]:
        raise ValueError("check/check_prev and cand/cand_next must have equal lengths")
    cdef Py_ssize_t nchecks = ct.shape[0], ncand = cd.shape[0]
    cdef int64_t cold = frames
    if cold < 0:
        raise ValueError("frames must not be negative, not %d" % cold)
    miss_t = np.empty(nchecks, dtype=np.int64)
    miss_p = np.empty(nchecks, dtype=np.int64)
    victims = np.empty(nchecks, dtype=np.int64)
    cdef int64_t[::1] mt = miss_t, mp = miss_p, vv = victims
    cdef Py_ssize_t i, misses = 0, nv = 0, vi = 0
    cdef int64_t t, p, b = 0
    cdef bint bad = False
    with nogil:
        for i in range(nchecks):
            t = ct[i]
            p = cp[i]
            if p >= b:
                continue                    # a hit
            mt[misses] = t
            mp[misses] = p
            misses += 1
            if cold:                        # filling free frames
                cold -= 1
                continue
            while vi < ncand and cn[vi] <= t:   # superseded by a later access
                vi += 1
            if vi >= ncand:
                bad = True
                break
            vv[nv] = cd[vi]
            b = cd[vi] + 1
            nv += 1
            vi += 1
    if bad:
        raise ValueError("no eviction candidate left: the candidate arrays do not match "
                         "the checks")
    return miss_t[:misses].copy(), miss_p[:misses].copy(), victims[:nv].copy()


cdef struct lists_t:
    int64_t *prev
    int64_t *nxt
    int64_t count[3]
    int64_t head[3]


cdef inline void lru_add_head(lists_t *l, int lru, int64_t page) noexcept nogil:
    cdef int64_t head = l.head[lru], first = l.nxt[head]
    l.nxt[head] = page
    l.prev[page] = head
    l.nxt[page] = first
    l.prev[first] = page
    l.count[lru] += 1


cdef inline void lru_del(lists_t *l, int lru, int64_t page) noexcept nogil:
    cdef int64_t p = l.prev[page], q = l.nxt[page]
    l.nxt[p] = q
    l.prev[q] = p
    l.count[lru] -= 1


cdef inline uint64_t int_sqrt(uint64_t x) noexcept nogil:
    """int_sqrt(): the integer square root, rounded down."""
    cdef uint64_t r = 0, bit = 1ULL << 62
    while bit > x:
        bit >>= 2
    while bit:
        if x >= r + bit:
            x -= r + bit
            r = (r >> 1) + bit
        else:
            r >>= 1
        bit >>= 2
    return r


def kernel_reclaim(ids, Py_ssize_t ndistinct, frames):
    """Run the page ids of a trace (int64, each in ``[0, ndistinct)``)
    through ``frames`` resident pages under the kernel's active/inactive
    reclaim.  Returns a dict of arrays and counts; see
    ``vswapfast.reclaim.simulate_kernel`` for what each one means."""
    cdef const int64_t[::1] ev = np.ascontiguousarray(ids, dtype=np.int64)
    cdef Py_ssize_t n = ev.shape[0], t
    cdef int64_t nframes = frames
    if nframes < 1:
        raise ValueError("frames must be at least 1, not %d" % nframes)
    if ndistinct < 0:
        raise ValueError("ndistinct must not be negative")
    if n and (np.min(ids) < 0 or np.max(ids) >= ndistinct):
        raise ValueError("page ids must lie in [0, %d)" % ndistinct)
    links = np.empty((2, ndistinct + 2), dtype=np.int64)
    state_a = np.zeros(ndistinct, dtype=np.uint8)
    ref_a = np.zeros(ndistinct, dtype=np.uint8)
    last_a = np.zeros(ndistinct, dtype=np.int64)
    shadow_a = np.zeros(ndistinct, dtype=np.uint64)
    evicted_a = np.zeros(ndistinct, dtype=np.int64)
    miss_t = np.empty(n, dtype=np.int64)
    miss_p = np.empty(n, dtype=np.int64)
    victims = np.empty(n, dtype=np.int64)
    clocks = np.empty(n, dtype=np.uint64)
    in_miss = np.empty(n, dtype=np.int64)
    in_evict = np.empty(n, dtype=np.int64)
    refault_clock = np.empty(n, dtype=np.uint64)
    ws_size = np.empty(n, dtype=np.int64)
    activated = np.zeros(n, dtype=np.uint8)
    cdef int64_t[:, ::1] lk = links
    cdef uint8_t[::1] state = state_a, referenced = ref_a, act = activated
    cdef int64_t[::1] last = last_a, evicted_as = evicted_a
    cdef uint64_t[::1] shadow = shadow_a, clk = clocks, rclk = refault_clock
    cdef int64_t[::1] mt = miss_t, mp = miss_p, vv = victims, im = in_miss, ie = in_evict
    cdef int64_t[::1] wss = ws_size
    cdef lists_t l
    cdef Py_ssize_t i, misses = 0, nv = 0, nin = 0
    cdef int64_t page, victim, resident = 0, k, inactive, active, ws
    cdef uint64_t age = 0, gb, ratio
    cdef int64_t promotions = 0, deactivations = 0, activations = 0
    cdef int st, lru
    for i in range(ndistinct + 2):
        lk[0, i] = i
        lk[1, i] = i
    l.prev = &lk[0, 0]
    l.nxt = &lk[1, 0]
    l.head[INACTIVE] = ndistinct
    l.head[ACTIVE] = ndistinct + 1
    l.count[0] = l.count[1] = l.count[2] = 0
    with nogil:
        for t in range(n):
            page = ev[t]
            st = state[page]
            if st != INACTIVE and st != ACTIVE:
                mt[misses] = t
                mp[misses] = last[page] if st == SWAPPED else -1
                misses += 1
                if resident == nframes:
                    # inactive_is_low(), then shrink_active_list() of
                    # SWAP_CLUSTER_MAX pages from the active tail.
                    inactive = l.count[INACTIVE]
                    active = l.count[ACTIVE]
                    gb = <uint64_t>(inactive + active) >> GB_SHIFT
                    ratio = int_sqrt(10 * gb) if gb else 1
                    if <uint64_t>inactive * ratio < <uint64_t>active:
                        k = active if active < SWAP_CLUSTER_MAX else SWAP_CLUSTER_MAX
                        while k > 0:
                            victim = l.prev[l.head[ACTIVE]]
                            lru_del(&l, ACTIVE, victim)
                            state[victim] = INACTIVE
                            lru_add_head(&l, INACTIVE, victim)
                            deactivations += 1
                            k -= 1
                    # shrink_inactive_list(): the inactive tail is evicted,
                    # leaving its shadow (workingset_eviction()).
                    victim = l.prev[l.head[INACTIVE]]
                    lru_del(&l, INACTIVE, victim)
                    state[victim] = SWAPPED
                    referenced[victim] = 0
                    shadow[victim] = age
                    age += 1
                    evicted_as[victim] = nv
                    vv[nv] = last[victim]
                    clk[nv] = shadow[victim]
                    nv += 1
                else:
                    resident += 1
                lru = INACTIVE
                if st == SWAPPED:
                    # workingset_refault(): activate when the refault
                    # distance is within the workingset (the active list).
                    ws = l.count[ACTIVE]
                    im[nin] = misses - 1
                    ie[nin] = evicted_as[page]
                    rclk[nin] = age
                    wss[nin] = ws
                    if age - shadow[page] <= <uint64_t>ws:
                        act[nin] = 1
                        lru = ACTIVE
                        age += 1
                        activations += 1
                    nin += 1
                state[page] = lru
                lru_add_head(&l, lru, page)
            # folio_mark_accessed()
            if not referenced[page]:
                referenced[page] = 1
            elif state[page] == INACTIVE:
                lru_del(&l, INACTIVE, page)
                state[page] = ACTIVE
                lru_add_head(&l, ACTIVE, page)
                referenced[page] = 0
                age += 1
                promotions += 1
            last[page] = t
    return dict(
        miss_events=miss_t[:misses].copy(),
        miss_prev=miss_p[:misses].copy(),
        victims=victims[:nv].copy(),
        shadows=clocks[:nv].copy(),
        in_miss=in_miss[:nin].copy(),
        in_evict=in_evict[:nin].copy(),
        refault_clock=refault_clock[:nin].copy(),
        workingset_size=ws_size[:nin].copy(),
        activated=activated[:nin].astype(bool),
        nr_active=l.count[ACTIVE],
        nr_inactive=l.count[INACTIVE],
        nonresident_age=age,
        promotions=promotions,
        deactivations=deactivations,
        activations=activations,
    )


# -- shadows in the swap descriptors ------------------------------------------------

def leave_shadows(VSwap space, entries, shadows):
    """For each entry, what reclaim leaves once its swapped-out folio is
    gone: __remove_mapping() -> __swap_cache_del_folio() puts the shadow of
    workingset_eviction() in the swap-cache slot, here the descriptor's
    swap-cache/shadow union (as ``swap_cache_add_folio`` then
    ``swap_cache_del_folio(..., shadow=...)`` would, in one lock hold).

    ``shadows`` are ints in [0, 2**62), one per entry (ValueError
    otherwise).  Returns an ``array('b')`` of statuses: BATCH_OK;
    BATCH_FOREIGN when a folio is in the entry's swap cache (left as it
    was); BATCH_INVALID for an entry with no allocated descriptor.
    Locks: one cluster at a time, each once per run of entries in it; the
    GIL is released."""
    cdef vswap_space *vs = space.vs
    cdef u64_array a, s
    cdef signed char *status
    cdef Py_ssize_t i
    cdef vswap_cluster *c = NULL
    cdef swp_desc *desc
    u64_array_get(&a, entries, "entries", False, -1)
    try:
        u64_array_get(&s, shadows, "shadows", False, a.n)
        try:
            for i in range(a.n):
                if s.values[i] >= SHADOW_LIMIT:
                    raise ValueError("shadows must be in [0, 2**62), not %d (item %d)"
                                     % (s.values[i], i))
            out = status_array(a.n, &status)
            with nogil:
                for i in range(a.n):
                    desc = vswap_iter(vs, &c, a.values[i])
                    if desc == NULL:
                        status[i] = BATCH_INVALID
                    elif vswap_cache_is_folio(desc):
                        status[i] = BATCH_FOREIGN
                    else:
                        desc.cache.shadow = (<uintptr_t>s.values[i] << 1) | 1
                        status[i] = BATCH_OK
                if c != NULL:
                    vswap_cluster_unlock(c)
        finally:
            u64_array_release(&s)
    finally:
        u64_array_release(&a)
    return out


def read_shadows(VSwap space, entries, out):
    """The shadow of each entry, as the swap-in path reads it for
    workingset_refault() (swap_cache_get_shadow()), into ``out`` (a
    writable buffer of as many 8-byte integers; 0 where there is none).
    Returns an ``array('b')`` of statuses: BATCH_OK; BATCH_EMPTY when the
    entry holds no shadow (nothing, or a folio); BATCH_INVALID for an entry
    with no allocated descriptor.  Locks: one cluster at a time; no GIL."""
    cdef vswap_space *vs = space.vs
    cdef u64_array a, o
    cdef signed char *status
    cdef Py_ssize_t i
    cdef vswap_cluster *c = NULL
    cdef swp_desc *desc
    cdef uintptr_t shadow
    u64_array_get(&a, entries, "entries", False, -1)
    try:
        u64_array_get(&o, out, "out", True, a.n)
        try:
            result = status_array(a.n, &status)
            with nogil:
                for i in range(a.n):
                    o.values[i] = 0
                    desc = vswap_iter(vs, &c, a.values[i])
                    if desc == NULL:
                        status[i] = BATCH_INVALID
                        continue
                    shadow = desc.cache.shadow
                    if shadow & 1:
                        o.values[i] = shadow >> 1
                        status[i] = BATCH_OK
                    else:
                        status[i] = BATCH_EMPTY
                if c != NULL:
                    vswap_cluster_unlock(c)
        finally:
            u64_array_release(&o)
    finally:
        u64_array_release(&a)
    return result


# ---------------------------------------------------------------------------
# The swap cache through a swap-out and a swap-in, one page at a time: the
# replay's lifecycle, with the cluster lock taken per page as the kernel
# takes ci->lock per folio (the batch loops above take it once per run).
# ---------------------------------------------------------------------------

cdef extern from "Python.h":
    Py_ssize_t Py_REFCNT(object o)
    void Py_SET_REFCNT(object o, Py_ssize_t n)


cdef int folio_arg(object folio) except -1:
    if folio is None or isinstance(folio, int):
        raise TypeError("folio must be an object other than None or an int, not %s"
                        % type(folio).__name__)
    return 0


def swap_cache_add_folios(VSwap space, entries, folio, shadows_out):
    """swapcache_prepare() and swap_cache_add_folio() of a swap-in (or of
    folio_alloc_swap()), per entry: ``folio`` enters the entry's swap cache
    and the shadow it replaces, which the kernel hands to
    workingset_refault(), is written to ``shadows_out`` (a writable buffer
    of as many 8-byte integers; 0 where there was none).  The descriptor
    keeps a reference to ``folio``.

    Returns an ``array('b')`` of statuses: BATCH_OK; BATCH_FOREIGN when a
    folio is already there (left as it is: the kernel's -EEXIST);
    BATCH_INVALID for an entry with no allocated descriptor.  Locks: the
    entry's cluster, taken and dropped per entry; the GIL is released, the
    references are taken in one step before and the unused ones given back
    after."""
    cdef vswap_space *vs = space.vs
    cdef u64_array a, o
    cdef signed char *status
    cdef Py_ssize_t i, added = 0
    cdef vswap_cluster *c
    cdef swp_desc *desc
    cdef uintptr_t old
    cdef void *f
    folio_arg(folio)
    f = <void *>folio
    u64_array_get(&a, entries, "entries", False, -1)
    try:
        u64_array_get(&o, shadows_out, "shadows_out", True, a.n)
        try:
            result = status_array(a.n, &status)
            Py_SET_REFCNT(folio, Py_REFCNT(folio) + a.n)
            with nogil:
                for i in range(a.n):
                    c = NULL
                    o.values[i] = 0
                    desc = vswap_iter(vs, &c, a.values[i])
                    if desc == NULL:
                        status[i] = BATCH_INVALID
                        continue
                    if vswap_cache_is_folio(desc):
                        status[i] = BATCH_FOREIGN
                    else:
                        old = desc.cache.shadow
                        if old & 1:
                            o.values[i] = old >> 1
                        desc.cache.swap_cache = f
                        vswap_desc_cache_changed(desc)
                        added += 1
                        status[i] = BATCH_OK
                    vswap_cluster_unlock(c)
            Py_SET_REFCNT(folio, Py_REFCNT(folio) - (a.n - added))
        finally:
            u64_array_release(&o)
    finally:
        u64_array_release(&a)
    return result


def swap_cache_del_folios(VSwap space, entries, folio, shadows=None):
    """__swap_cache_del_folio() per entry: where the entry's swap cache
    holds ``folio``, the shadow of workingset_eviction() takes its place
    (``shadows``, ints in [0, 2**62), one per entry), or nothing when
    ``shadows`` is None (delete_from_swap_cache() before a free).

    Returns an ``array('b')`` of statuses: BATCH_OK; BATCH_FOREIGN when the
    swap cache does not hold ``folio`` (left as it is); BATCH_INVALID for an
    entry with no allocated descriptor.  Locks: the entry's cluster, taken
    and dropped per entry; the GIL is released, and the references the
    descriptors held are dropped in one step after."""
    cdef vswap_space *vs = space.vs
    cdef u64_array a, s
    cdef signed char *status
    cdef Py_ssize_t i, removed = 0
    cdef vswap_cluster *c
    cdef swp_desc *desc
    cdef bint has_shadows = shadows is not None
    cdef void *f
    folio_arg(folio)
    f = <void *>folio
    s.has_view = False
    s.copy = NULL
    u64_array_get(&a, entries, "entries", False, -1)
    try:
        if has_shadows:
            u64_array_get(&s, shadows, "shadows", False, a.n)
            for i in range(a.n):
                if s.values[i] >= SHADOW_LIMIT:
                    raise ValueError("shadows must be in [0, 2**62), not %d (item %d)"
                                     % (s.values[i], i))
        result = status_array(a.n, &status)
        with nogil:
            for i in range(a.n):
                c = NULL
                desc = vswap_iter(vs, &c, a.values[i])
                if desc == NULL:
                    status[i] = BATCH_INVALID
                    continue
                if desc.cache.swap_cache != f:
                    status[i] = BATCH_FOREIGN
                else:
                    if has_shadows:
                        desc.cache.shadow = (<uintptr_t>s.values[i] << 1) | 1
                    else:
                        desc.cache.swap_cache = NULL
                    vswap_desc_cache_changed(desc)
                    removed += 1
                    status[i] = BATCH_OK
                vswap_cluster_unlock(c)
        # The descriptors' references: the caller's own keeps the folio alive.
        Py_SET_REFCNT(folio, Py_REFCNT(folio) - removed)
    finally:
        if has_shadows:
            u64_array_release(&s)
        u64_array_release(&a)
    return result


# -- the reclaim fed a chunk at a time --------------------------------------------

# Nodes of StreamReclaim's lists: the heads of the inactive and the active
# list (the exact LRU uses the inactive one alone), then page id p at node
# p + PAGE_NODE.
DEF INACTIVE_HEAD = 0
DEF ACTIVE_HEAD = 1
DEF PAGE_NODE = 2

# Arrays of a StreamReclaim's misses, per miss of a fed chunk: (name, dtype).
MISS_FIELDS = (
    ("event", np.int64), ("key", np.uint64), ("pid", np.int64), ("version", np.uint64),
    ("evicted_as", np.int64), ("victim_key", np.uint64), ("victim_pid", np.int64),
    ("victim_version", np.uint64), ("victim_shadow", np.uint64),
    ("refault_clock", np.uint64), ("workingset_size", np.int64), ("activated", np.uint8),
    ("shadow", np.uint64),
)


cdef inline uint64_t hash_key(uint64_t x) noexcept nogil:
    """splitmix64's finaliser: spreads keys over the hash table."""
    x ^= x >> 30
    x *= <uint64_t>0xbf58476d1ce4e5b9ULL
    x ^= x >> 27
    x *= <uint64_t>0x94d049bb133111ebULL
    x ^= x >> 31
    return x


cdef struct miss_out:
    int64_t *event
    uint64_t *key
    int64_t *pid
    uint64_t *version
    int64_t *evicted_as
    uint64_t *victim_key
    int64_t *victim_pid
    uint64_t *victim_version
    uint64_t *victim_shadow
    uint64_t *refault_clock
    int64_t *workingset_size
    uint8_t *activated
    uint64_t *shadow


cdef inline void *data_of(object array):
    """The data of a C-contiguous numpy array this module allocated."""
    cdef uint8_t[::1] view = array.reshape(-1).view(np.uint8)
    if view.shape[0] == 0:
        return NULL
    return &view[0]


cdef class StreamReclaim:
    """The reclaim of ``kernel_reclaim`` (``reclaim="kernel"``) or an exact
    LRU (``reclaim="lru"``), fed the keys of a trace a chunk at a time.

    Its state is per distinct page: a hash map from key to a dense page id
    (``count`` fills it: a first pass over the trace, for the number of
    distinct keys), and per page id its key, list links, state, writes and
    shadow.  ``start(frames)`` begins the simulation; each ``feed(keys,
    writes)`` returns the misses of that chunk (see ``feed``).  Memory
    grows with the distinct pages, not with the events fed.

    Not for use by two threads at once (a RuntimeError says so).
    """
    cdef readonly str reclaim
    cdef bint kernel
    cdef bint busy
    cdef readonly bint started
    cdef readonly int64_t frames, distinct, events, misses, evictions, swap_ins
    cdef readonly int64_t promotions, deactivations, activations, resident
    cdef readonly uint64_t nonresident_age
    cdef int64_t mask, capacity, room
    cdef object slot_keys_a, slot_ids_a, keys_a, prev_a, next_a, state_a, ref_a
    cdef object writes_a, shadow_a, evno_a
    cdef uint64_t *slot_keys
    cdef int64_t *slot_ids
    cdef uint64_t *page_keys
    cdef uint8_t *state
    cdef uint8_t *referenced
    cdef uint64_t *writes
    cdef uint64_t *shadow
    cdef int64_t *evno
    cdef lists_t l

    def __cinit__(self, reclaim="lru"):
        if reclaim not in ("lru", "kernel"):
            raise ValueError("reclaim must be 'lru' or 'kernel', not %r" % (reclaim,))
        self.reclaim = reclaim
        self.kernel = reclaim == "kernel"
        self.l.count[0] = self.l.count[1] = self.l.count[2] = 0
        self.l.head[INACTIVE] = INACTIVE_HEAD
        self.l.head[ACTIVE] = ACTIVE_HEAD
        self._make_room()

    cdef int _enter(self) except -1:
        if self.busy:
            raise RuntimeError("this StreamReclaim is in use by another thread")
        self.busy = True
        return 0

    cdef int _grow(self, int64_t need) except -1:
        """Room for ``need`` page ids, and a hash table at most half full
        with them."""
        cdef int64_t cap = self.capacity, slots
        cdef Py_ssize_t i
        if need > cap:
            cap = max(need, 2 * cap, 1024)
            self.keys_a = _grown(self.keys_a, cap, np.uint64)
            self.prev_a = _grown(self.prev_a, cap + PAGE_NODE, np.int64)
            self.next_a = _grown(self.next_a, cap + PAGE_NODE, np.int64)
            self.state_a = _grown(self.state_a, cap, np.uint8)
            self.ref_a = _grown(self.ref_a, cap, np.uint8)
            self.writes_a = _grown(self.writes_a, cap, np.uint64)
            self.shadow_a = _grown(self.shadow_a, cap, np.uint64)
            self.evno_a = _grown(self.evno_a, cap, np.int64)
            if self.capacity == 0:
                for i in range(PAGE_NODE):
                    self.prev_a[i] = self.next_a[i] = i
            self.capacity = cap
            self.page_keys = <uint64_t *>data_of(self.keys_a)
            self.l.prev = <int64_t *>data_of(self.prev_a)
            self.l.nxt = <int64_t *>data_of(self.next_a)
            self.state = <uint8_t *>data_of(self.state_a)
            self.referenced = <uint8_t *>data_of(self.ref_a)
            self.writes = <uint64_t *>data_of(self.writes_a)
            self.shadow = <uint64_t *>data_of(self.shadow_a)
            self.evno = <int64_t *>data_of(self.evno_a)
        slots = 1 if self.slot_ids_a is None else self.mask + 1
        if slots >= 2 * need:
            return 0
        slots = max(slots, 2)
        while slots < 2 * need:
            slots *= 2
        self.slot_keys_a = np.empty(slots, dtype=np.uint64)
        self.slot_ids_a = np.full(slots, -1, dtype=np.int64)
        self.slot_keys = <uint64_t *>data_of(self.slot_keys_a)
        self.slot_ids = <int64_t *>data_of(self.slot_ids_a)
        self.mask = slots - 1
        with nogil:
            for i in range(self.distinct):
                self._insert(self.page_keys[i], i)
        return 0

    cdef int _make_room(self) except -1:
        """Room for one more page id, at least: the arrays and the hash
        table doubled when full."""
        self._grow(self.distinct + 1)
        # A new key may take an id while distinct < room.
        self.room = min(self.capacity, (self.mask + 1) // 2)
        return 0

    cdef inline void _insert(self, uint64_t key, int64_t pid) noexcept nogil:
        cdef int64_t h = <int64_t>(hash_key(key) & <uint64_t>self.mask)
        while self.slot_ids[h] >= 0:
            h = (h + 1) & self.mask
        self.slot_keys[h] = key
        self.slot_ids[h] = pid

    cdef inline int64_t _page_id(self, uint64_t key) noexcept nogil:
        """The page id of ``key``, a new one for a key not seen before
        (room for it was made by _grow)."""
        cdef int64_t h = <int64_t>(hash_key(key) & <uint64_t>self.mask), pid
        while True:
            pid = self.slot_ids[h]
            if pid < 0:
                pid = self.distinct
                self.distinct += 1
                self.slot_keys[h] = key
                self.slot_ids[h] = pid
                self.page_keys[pid] = key
                return pid
            if self.slot_keys[h] == key:
                return pid
            h = (h + 1) & self.mask

    def count(self, keys):
        """Give page ids to the new keys among ``keys`` (a first pass over
        the trace: ``distinct`` is then the number of distinct keys)."""
        cdef const uint64_t[::1] k = _keys_arg(keys)
        cdef Py_ssize_t i, n = k.shape[0]
        i = 0
        self._enter()
        try:
            while i < n:
                self._make_room()
                with nogil:
                    # Each key takes at most one new id: stop at the room.
                    while i < n and self.distinct < self.room:
                        self._page_id(k[i])
                        i += 1
        finally:
            self.busy = False

    def start(self, frames):
        """Begin the simulation with ``frames`` resident pages."""
        cdef int64_t nframes = frames
        if nframes < 1:
            raise ValueError("frames must be at least 1, not %d" % nframes)
        if self.started:
            raise RuntimeError("the simulation has already started")
        if self.busy:
            raise RuntimeError("this StreamReclaim is in use by another thread")
        self.frames = nframes
        self.started = True

    cdef inline int64_t _evict(self) noexcept nogil:
        """Reclaim one page; returns its id."""
        cdef lists_t *l = &self.l
        cdef int64_t inactive, active, k, node
        cdef uint64_t gb, ratio
        if self.kernel:
            # inactive_is_low(), then shrink_active_list() of
            # SWAP_CLUSTER_MAX pages from the active tail (as kernel_reclaim).
            inactive = l.count[INACTIVE]
            active = l.count[ACTIVE]
            gb = <uint64_t>(inactive + active) >> GB_SHIFT
            ratio = int_sqrt(10 * gb) if gb else 1
            if <uint64_t>inactive * ratio < <uint64_t>active:
                k = active if active < SWAP_CLUSTER_MAX else SWAP_CLUSTER_MAX
                while k > 0:
                    node = l.prev[ACTIVE_HEAD]
                    lru_del(l, ACTIVE, node)
                    self.state[node - PAGE_NODE] = INACTIVE
                    lru_add_head(l, INACTIVE, node)
                    self.deactivations += 1
                    k -= 1
        # shrink_inactive_list() (the LRU's tail, for the exact LRU), with
        # workingset_eviction()'s shadow.
        node = l.prev[INACTIVE_HEAD]
        lru_del(l, INACTIVE, node)
        node -= PAGE_NODE
        self.state[node] = SWAPPED
        self.referenced[node] = 0
        self.evno[node] = self.evictions
        self.evictions += 1
        if self.kernel:
            self.shadow[node] = self.nonresident_age
            self.nonresident_age += 1
        return node

    cdef inline void _access(self, int64_t page, int64_t t, const uint8_t *wr, Py_ssize_t i,
                             miss_out *o, Py_ssize_t *nmiss) noexcept nogil:
        """One event: page ``page`` accessed at event ``t``."""
        cdef int st = self.state[page], lru = INACTIVE
        cdef int64_t victim, ws, m
        cdef lists_t *l = &self.l
        if st != INACTIVE and st != ACTIVE:
            m = nmiss[0]
            nmiss[0] = m + 1
            o.event[m] = t
            o.key[m] = self.page_keys[page]
            o.pid[m] = page
            o.version[m] = self.writes[page]
            o.evicted_as[m] = self.evno[page] if st == SWAPPED else -1
            o.victim_pid[m] = -1
            o.victim_key[m] = o.victim_version[m] = o.victim_shadow[m] = 0
            o.refault_clock[m] = o.shadow[m] = 0
            o.workingset_size[m] = 0
            o.activated[m] = 0
            self.misses += 1
            if self.resident == self.frames:
                victim = self._evict()
                o.victim_pid[m] = victim
                o.victim_key[m] = self.page_keys[victim]
                o.victim_version[m] = self.writes[victim]
                o.victim_shadow[m] = self.shadow[victim]
            else:
                self.resident += 1
            if st == SWAPPED:
                self.swap_ins += 1
                if self.kernel:
                    # workingset_refault(): activate when the refault
                    # distance is within the workingset (the active list).
                    ws = l.count[ACTIVE]
                    o.refault_clock[m] = self.nonresident_age
                    o.workingset_size[m] = ws
                    o.shadow[m] = self.shadow[page]
                    if self.nonresident_age - self.shadow[page] <= <uint64_t>ws:
                        o.activated[m] = 1
                        lru = ACTIVE
                        self.nonresident_age += 1
                        self.activations += 1
            self.state[page] = lru
            lru_add_head(l, lru, page + PAGE_NODE)
        elif not self.kernel:               # an LRU hit: to the head
            lru_del(l, INACTIVE, page + PAGE_NODE)
            lru_add_head(l, INACTIVE, page + PAGE_NODE)
        if self.kernel:
            # folio_mark_accessed()
            if not self.referenced[page]:
                self.referenced[page] = 1
            elif self.state[page] == INACTIVE:
                lru_del(l, INACTIVE, page + PAGE_NODE)
                self.state[page] = ACTIVE
                lru_add_head(l, ACTIVE, page + PAGE_NODE)
                self.referenced[page] = 0
                self.nonresident_age += 1
                self.promotions += 1
        if wr != NULL and wr[i]:
            self.writes[page] += 1

    def feed(self, keys, writes=None):
        """Run the next events of the trace: ``keys`` (uint64) and which of
        them write (bool, or None for none).  Returns a dict of arrays, one
        item per miss of these events, in order (names in MISS_FIELDS):

        ``event`` (its number in the trace), ``key``, ``pid`` (its page id),
        ``version`` (the writes to the key before it), ``evicted_as`` (for a
        swap-in, the number of the eviction that put its page out; -1 for a
        cold miss); for a miss that evicts (every miss once the frames are
        full), ``victim_key``, ``victim_pid``, ``victim_version`` (its
        writes) and ``victim_shadow`` (workingset_eviction()'s shadow;
        0 under the LRU), else ``victim_pid`` -1; for a swap-in under the
        kernel's reclaim, ``refault_clock``, ``workingset_size``,
        ``activated`` and ``shadow`` (that of its eviction).  The dict's
        ``first_miss`` is the number of its first miss in the trace.
        """
        cdef const uint64_t[::1] k = _keys_arg(keys)
        cdef Py_ssize_t i, n = k.shape[0], nmiss = 0
        cdef const uint8_t[::1] w
        cdef const uint8_t *wr = NULL
        cdef miss_out o
        cdef int64_t t0 = self.events, first = self.misses
        if not self.started:
            raise RuntimeError("start(frames) the simulation before feeding it")
        if writes is not None:
            w = np.ascontiguousarray(writes, dtype=bool).view(np.uint8)
            if w.shape[0] != n:
                raise ValueError("writes must have as many items as keys (%d), not %d"
                                 % (n, w.shape[0]))
            if n:
                wr = &w[0]
        out = {name: np.empty(n, dtype=dtype) for name, dtype in MISS_FIELDS}
        o.event = <int64_t *>data_of(out["event"])
        o.key = <uint64_t *>data_of(out["key"])
        o.pid = <int64_t *>data_of(out["pid"])
        o.version = <uint64_t *>data_of(out["version"])
        o.evicted_as = <int64_t *>data_of(out["evicted_as"])
        o.victim_key = <uint64_t *>data_of(out["victim_key"])
        o.victim_pid = <int64_t *>data_of(out["victim_pid"])
        o.victim_version = <uint64_t *>data_of(out["victim_version"])
        o.victim_shadow = <uint64_t *>data_of(out["victim_shadow"])
        o.refault_clock = <uint64_t *>data_of(out["refault_clock"])
        o.workingset_size = <int64_t *>data_of(out["workingset_size"])
        o.activated = <uint8_t *>data_of(out["activated"])
        o.shadow = <uint64_t *>data_of(out["shadow"])
        i = 0
        self._enter()
        try:
            while i < n:
                self._make_room()
                with nogil:
                    while i < n and self.distinct < self.room:
                        self._access(self._page_id(k[i]), t0 + i, wr, i, &o, &nmiss)
                        i += 1
            self.events += n
        finally:
            self.busy = False
        result = {name: out[name][:nmiss] for name, _dtype in MISS_FIELDS}
        result["activated"] = result["activated"].view(bool)
        result["first_miss"] = first
        return result

    @property
    def nr_active(self):
        return self.l.count[ACTIVE]

    @property
    def nr_inactive(self):
        return self.l.count[INACTIVE]

    def __repr__(self):
        return "<StreamReclaim %s: %d distinct keys, %d events, %d misses>" % (
            self.reclaim, self.distinct, self.events, self.misses)


def _grown(old, Py_ssize_t size, dtype):
    """A zeroed array of ``size`` items starting with ``old``'s."""
    new = np.zeros(size, dtype=dtype)
    if old is not None:
        new[:len(old)] = old
    return new


def _keys_arg(keys):
    """``keys`` as a C-contiguous uint64 array (TypeError otherwise)."""
    array = np.asarray(keys)
    if array.ndim != 1 or (len(array) and array.dtype.kind not in "ui"):
        raise TypeError("keys must be a 1-d array of unsigned integers, not %s %r"
                        % (array.dtype, array.shape))
    return np.ascontiguousarray(array, dtype=np.uint64)
