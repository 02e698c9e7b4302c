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

from libc.stdint cimport int64_t, uint64_t, uint8_t

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
