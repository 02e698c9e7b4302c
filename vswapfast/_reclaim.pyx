# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The loops of the replay's reclaim, in C: the compiled twin of
``vswapfast.pure.reclaim`` (same functions, same results).

``lru_misses`` walks the candidate misses of an exact LRU (see
``vswapfast.replay.simulate_lru``); ``kernel_reclaim`` runs a trace through
the kernel's two-list active/inactive reclaim with workingset refault
detection (see ``vswapfast.reclaim`` for the kernel functions it follows).
Both run without the GIL over arrays they allocate before.
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
