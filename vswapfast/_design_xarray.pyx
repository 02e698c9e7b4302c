# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The ``xarray`` design: swap metadata from zswap's xarrays to the swap table.

Models Linux 6.12 .. 6.17 (x86-64): zswap keeps its entries in xarrays since
6.10 ("zswap: replace RB tree with xarray", Chris Li, which replaced the
per-64 MiB rbtrees of 6.8), the zeromap exists since 6.12 ("mm: store zero
pages to be swapped out in a bitmap", Usama Arif), and 6.18 moved the swap
cache into the swap table (swap table phase I).  Sources followed, v6.17:

- mm/zswap.c: ``zswap_trees[type]``, one ``struct xarray`` per 64 MiB
  (``swap_zswap_tree()``: ``offset >> SWAP_ADDRESS_SPACE_SHIFT``), indexed by
  the full swap offset; ``zswap_store()`` does ``xa_store()`` (takes
  ``xa_lock``) and frees the entry it replaces; ``zswap_load()`` does
  ``xa_load()`` under RCU, no lock; ``zswap_invalidate()`` does
  ``xa_erase()`` (``xa_lock``); ``zswap_swapon()`` allocates the trees.
- mm/swap_state.c: ``swapper_spaces[type]``, one ``struct address_space``
  per 64 MiB whose ``i_pages`` xarray holds folios and shadows (value
  entries) at ``swap_cache_index()`` = offset & SWAP_ADDRESS_SPACE_MASK;
  ``add_to_swap_cache()`` and ``__delete_from_swap_cache()`` under
  ``xa_lock_irq``; ``filemap_get_entry()`` / ``get_shadow_from_swap_cache()``
  read with ``xa_load`` under RCU; ``clear_shadow_from_swap_cache()`` when
  slots are freed.
- mm/swapfile.c: ``swap_map`` (1 byte per slot: count, ``SWAP_HAS_CACHE``,
  ``COUNT_CONTINUED``), ``cluster_info`` (``struct swap_cluster_info``: lock,
  count, flags, order, list: 24 bytes per 512 slots), the zeromap bitmap;
  ``__swap_duplicate()`` and ``swap_entry_range_free()`` under the cluster
  lock (``ci->lock``); ``swapcache_prepare()`` sets ``SWAP_HAS_CACHE`` under
  it (-EEXIST when set).
- mm/swap_cgroup.c: 2 bytes of memcg id per slot (ids packed in pairs into
  ``atomic_t``, 6.14+), ``swap_cgroup_record()``/``swap_cgroup_clear()``.
- include/linux/xarray.h, lib/xarray.c: the xarray and ``struct xa_node``,
  modelled in xarray.h (576-byte nodes, 64 slots).

Departures (also in docs/designs.md): slot allocation is a simple scan of
clusters from the last one used under a device lock (si->lock), then of the
cluster's swap_map under its lock -- not the per-CPU cluster and
nonfull/free lists of cluster_alloc_swap_entry(); counts past
SWAP_MAP_MAX spill into one xarray of extra counts (``bytes_swap_cont``)
instead of continuation pages; the swap cache counts a 16-byte ``struct
xarray`` per 64 MiB, not the whole ``struct address_space`` that holds it;
a count reaching zero releases the folio from the swap cache too (the
kernel keeps the slot until the folio leaves); the xarray's RCU is the
sequence-count scheme of xarray.h; freed nodes stay on a free list
(``bytes_xa_node_free``) while the design lives.

Lock ordering:
    device lock (si->lock)  ->  cluster lock (ci->lock)
    cluster lock  ->  xa_lock (zswap tree, swap cache, count continuation)
    xa_lock  ->  node free list lock (xarray.h)
No two cluster locks or two xa_locks are held at once.  The swap-cache
xa_lock is taken after the cluster lock is dropped on the allocation and
swap-cache paths (add_to_swap_cache / put_swap_folio run apart, as in the
kernel), inside it only when a count reaches zero.  Single-entry calls keep
the GIL; the loops release it; no lock holder waits for the GIL.
"""

cimport cython
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_C_CONTIGUOUS
from cpython.mem cimport PyMem_RawCalloc, PyMem_RawFree
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t, uintptr_t

from vswapfast.vswap_account cimport (
    vswap_account, vswap_account_calloc, vswap_account_free, vswap_account_bytes,
)
from vswapfast._design_args cimport (
    E_OK, E_ZERO, E_NEGATIVE, E_RANGE, E_FREE, int_arg, value_arg, memcg_arg, entry_arg,
    entry_message, get_u64_buffer, get_u64_pair, check_handles, count_arg, check_backing,
    cluster_count_peek, cluster_count_set,
)
from vswapfast._xarray cimport (
    vxa, vxa_node, vxa_ctx, vxa_stats, vxa_init, vxa_ctx_init, vxa_ctx_destroy,
    vxa_lock, vxa_unlock, vxa_store_locked, vxa_load, vxa_load_locked, vxa_empty,
    vxa_destroy, vxa_store, vxa_reserve1, pthread_spinlock_t, VXA_EAGAIN,
)

import array as _array

from vswapfast.errors import InvalidEntryError, SwapCacheError, SwapFullError

__all__ = ["XarrayDesign", "BACKINGS"]

cdef extern from "pthread.h" nogil:
    int pthread_spin_init(pthread_spinlock_t *lock, int pshared)
    int pthread_spin_destroy(pthread_spinlock_t *lock)
    int pthread_spin_lock(pthread_spinlock_t *lock)
    int pthread_spin_unlock(pthread_spinlock_t *lock)

cdef extern from * nogil:
    """
    static inline long long vswap_account_objects(const vswap_account *a)
    { return __atomic_load_n(&a->objects, __ATOMIC_RELAXED); }
    """
    long long vswap_account_objects(vswap_account *a)

cdef extern from "vswap_sync.h" nogil:
    int vswap_this_thread()
    long long vswap_seq_add(long long *p, long long v)
    void vswap_wait_zero(long long *p)

cdef extern from * nogil:
    """
    #define XD_VALUE_MAX ((1ULL << 48) - 1)
    #define xd_ld8(p)        __atomic_load_n((p), __ATOMIC_RELAXED)
    #define xd_st8(p, v)     __atomic_store_n((p), (v), __ATOMIC_RELAXED)
    #define xd_st16(p, v)    __atomic_store_n((p), (v), __ATOMIC_RELAXED)
    #define xd_ld64(p)       __atomic_load_n((p), __ATOMIC_RELAXED)
    #define xd_or64(p, v)    __atomic_fetch_or((p), (v), __ATOMIC_RELAXED)
    #define xd_and64(p, v)   __atomic_fetch_and((p), (v), __ATOMIC_RELAXED)
    #define xd_add64(p, v)   __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)
    #define xd_addu64(p, v)  __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)
    /* a thread slot's own counter: relaxed load and store, see vxa_stat_inc */
    #define xd_count(p)      __atomic_store_n((p), __atomic_load_n((p), __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED)
    #define xd_ldu64(p)      __atomic_load_n((p), __ATOMIC_RELAXED)
    /* struct swap_cluster_info (include/linux/swap.h, 6.12 .. 6.17). */
    typedef struct {
        pthread_spinlock_t lock;
        unsigned short count;
        unsigned char flags;
        unsigned char order;
        void *list_next, *list_prev;
    } xd_cluster;
    _Static_assert(sizeof(xd_cluster) == 24, "struct swap_cluster_info is 24 bytes");
    """
    uint64_t XD_VALUE_MAX
    uint8_t xd_ld8(uint8_t *p)
    void xd_st8(uint8_t *p, uint8_t v)
    void xd_st16(uint16_t *p, uint16_t v)
    uint64_t xd_ld64(uint64_t *p)
    uint64_t xd_or64(uint64_t *p, uint64_t v)
    uint64_t xd_and64(uint64_t *p, uint64_t v)
    int64_t xd_add64(int64_t *p, int64_t v)
    uint64_t xd_addu64(uint64_t *p, uint64_t v)
    void xd_count(unsigned long long *p)
    uint64_t xd_ldu64(uint64_t *p)
    ctypedef struct xd_cluster:
        pthread_spinlock_t lock
        unsigned short count

DEF SWAPFILE_CLUSTER = 512
DEF SWAP_ADDRESS_SPACE_SHIFT = 14
DEF SWAP_ADDRESS_SPACE_MASK = (1 << 14) - 1
DEF SWAP_HAS_CACHE = 0x40
DEF COUNT_CONTINUED = 0x80
DEF SWAP_MAP_MAX = 0x3E
DEF SWAP_COUNT_LIMIT = (1 << 31) - 1
DEF XARRAY_SIZE = 16
DEF NR_STAT_SLOTS = 64

# accounts
DEF A_SWAP_MAP = 0
DEF A_SWAP_CGROUP = 1
DEF A_ZEROMAP = 2
DEF A_CLUSTER_INFO = 3
DEF A_CACHE_XA = 4
DEF A_ZSWAP_XA = 5
DEF A_NODE_CACHE = 6
DEF A_NODE_ZSWAP = 7
DEF A_CONT = 8
DEF A_NODE_FREE = 9
DEF NR_ACCOUNTS = 10

_STRUCTURES = ("swap_map", "swap_cgroup", "zeromap", "cluster_info",
               "swap_cache_xarrays", "zswap_trees", "xa_node_swap_cache",
               "xa_node_zswap", "swap_cont", "xa_node_free")
BACKINGS = ("zswap", "disk", "zero")

# loop results
DEF R_FULL = -1
DEF R_NOMEM = -2

ctypedef struct xd_design:
    uint64_t nr_slots
    uint64_t nr_clusters
    uint64_t nr_regions
    uint8_t *swap_map
    uint16_t *swap_cgroup
    uint64_t *zeromap
    xd_cluster *clusters
    vxa *cache
    vxa *zswap
    vxa cont
    vxa_ctx ctx_cache
    vxa_ctx ctx_zswap
    vxa_ctx ctx_cont
    vswap_account acct[NR_ACCOUNTS]
    pthread_spinlock_t dev_lock
    uint64_t next_cluster
    int64_t used
    uint64_t next_handle
    long long calls
    vxa_stats *stats                # NR_STAT_SLOTS, on cache lines of their own
    char stats_space[(NR_STAT_SLOTS + 1) * 64]


# -- the kernel paths, in C ------------------------------------------------

cdef inline vxa_stats *xd_stats(xd_design *d) noexcept nogil:
    return &d.stats[vswap_this_thread() & (NR_STAT_SLOTS - 1)]

cdef inline int xd_check(xd_design *d, uint64_t e) noexcept nogil:
    """An allocated slot? (a racy read of swap_map, as READ_ONCE checks)"""
    if e == 0:
        return E_ZERO
    if e >= d.nr_slots:
        return E_RANGE
    if xd_ld8(&d.swap_map[e]) == 0:
        return E_FREE
    return E_OK

cdef inline void cluster_lock(xd_design *d, uint64_t e, vxa_stats *st) noexcept nogil:
    pthread_spin_lock(&d.clusters[e // SWAPFILE_CLUSTER].lock)
    xd_count(&st.user[0])

cdef inline void cluster_unlock(xd_design *d, uint64_t e) noexcept nogil:
    pthread_spin_unlock(&d.clusters[e // SWAPFILE_CLUSTER].lock)

cdef inline void zero_clear(xd_design *d, uint64_t e) noexcept nogil:
    """swap_zeromap_folio_clear(): an atomic bit operation, no lock."""
    xd_and64(&d.zeromap[e >> 6], ~(1ULL << (e & 63)))

cdef inline void zero_set(xd_design *d, uint64_t e) noexcept nogil:
    """swap_zeromap_folio_set()."""
    xd_or64(&d.zeromap[e >> 6], 1ULL << (e & 63))

cdef inline uint64_t count_locked(xd_design *d, uint64_t e) noexcept nogil:
    """The swap count (swap_count() + the continuation), under ci->lock."""
    cdef uint8_t m = d.swap_map[e]
    cdef uint64_t count = m & 0x3F
    if m & COUNT_CONTINUED:
        count += vxa_load_locked(&d.cont, e) >> 1
    return count

cdef int set_count_locked(xd_design *d, uint64_t e, uint64_t count, vxa_stats *st) noexcept nogil:
    """Write the count under ci->lock, spilling past SWAP_MAP_MAX into the
    continuation xarray (add_swap_count_continuation's pages in the kernel);
    VXA_EAGAIN when it needs a node (nothing changed): the caller drops the
    cluster lock, reserves one and retries."""
    cdef uint8_t m = d.swap_map[e]
    cdef uintptr_t old = 0
    cdef int rc = 0
    if count > SWAP_MAP_MAX:
        vxa_lock(&d.cont, st)
        rc = vxa_store_locked(&d.cont, &d.ctx_cont, e, ((count - SWAP_MAP_MAX) << 1) | 1, &old)
        vxa_unlock(&d.cont)
        if rc:
            return rc
        xd_st8(&d.swap_map[e], (m & SWAP_HAS_CACHE) | COUNT_CONTINUED | SWAP_MAP_MAX)
    else:
        if m & COUNT_CONTINUED:
            vxa_lock(&d.cont, st)
            vxa_store_locked(&d.cont, &d.ctx_cont, e, 0, &old)
            vxa_unlock(&d.cont)
        xd_st8(&d.swap_map[e], (m & SWAP_HAS_CACHE) | <uint8_t>count)
    return 0

cdef inline uintptr_t zswap_erase(xd_design *d, uint64_t e, vxa_stats *st) noexcept nogil:
    """zswap_invalidate(): xa_erase() under xa_lock; the old handle or 0."""
    cdef vxa *xa = &d.zswap[e >> SWAP_ADDRESS_SPACE_SHIFT]
    cdef uintptr_t old = 0
    vxa_lock(xa, st)
    vxa_store_locked(xa, &d.ctx_zswap, e, 0, &old)
    vxa_unlock(xa)
    return old >> 2

cdef inline int zswap_store(xd_design *d, uint64_t e, uint64_t handle, uint64_t *old_handle,
                            vxa_stats *st) noexcept nogil:
    """zswap_store(): the zeromap bit cleared (swap_writepage), then
    xa_store() under xa_lock; -1 when out of memory (nothing stored)."""
    cdef uintptr_t old = 0
    cdef int rc
    zero_clear(d, e)
    rc = vxa_store(&d.zswap[e >> SWAP_ADDRESS_SPACE_SHIFT], &d.ctx_zswap, e,
                   <uintptr_t>handle << 2, &old, st)
    old_handle[0] = old >> 2
    return -1 if rc else 0

cdef inline int cache_store(xd_design *d, uint64_t e, uintptr_t entry, uintptr_t *old,
                            vxa_stats *st) noexcept nogil:
    """add_to_swap_cache(): xa_store() in the entry's address space under
    its xa_lock (retaken after allocating a node, as xas_nomem); -1 when
    out of memory."""
    cdef int rc = vxa_store(&d.cache[e >> SWAP_ADDRESS_SPACE_SHIFT], &d.ctx_cache,
                            e & SWAP_ADDRESS_SPACE_MASK, entry, old, st)
    return -1 if rc else 0

cdef void release_locked(xd_design *d, uint64_t e, vxa_stats *st) noexcept nogil:
    """The count reached zero: release everything, under ci->lock
    (swap_entry_range_free: zswap_invalidate, clear_shadow_from_swap_cache,
    swap_cgroup_clear, the zeromap bits, swap_map)."""
    cdef vxa *xa = &d.cache[e >> SWAP_ADDRESS_SPACE_SHIFT]
    cdef uintptr_t old = 0
    zswap_erase(d, e, st)
    vxa_lock(xa, st)
    vxa_store_locked(xa, &d.ctx_cache, e & SWAP_ADDRESS_SPACE_MASK, 0, &old)
    vxa_unlock(xa)
    xd_st16(&d.swap_cgroup[e], 0)
    zero_clear(d, e)
    xd_st8(&d.swap_map[e], 0)
    cluster_count_set(&d.clusters[e // SWAPFILE_CLUSTER].count,
                      d.clusters[e // SWAPFILE_CLUSTER].count - 1)
    xd_add64(&d.used, -1)

cdef int swap_free_one(xd_design *d, uint64_t e, vxa_stats *st) noexcept nogil:
    """swap_free(): drop one reference under ci->lock; E_FREE if the slot
    was freed meanwhile."""
    cdef uint64_t count
    cluster_lock(d, e, st)
    if d.swap_map[e] == 0:
        cluster_unlock(d, e)
        return E_FREE
    count = count_locked(d, e) - 1
    # lowering a count never allocates
    set_count_locked(d, e, count, st)
    if count == 0:
        release_locked(d, e, st)
    cluster_unlock(d, e)
    return E_OK

cdef uint64_t alloc_slot(xd_design *d, vxa_stats *st) noexcept nogil:
    """cluster_alloc_swap_entry(), simplified: under the device lock, the
    first cluster with room from the last one used, then under its lock the
    first free slot of its swap_map: count 1 with SWAP_HAS_CACHE.  0 when
    the device is full."""
    cdef uint64_t k, ci, first, last, cap, s, found = 0
    cdef xd_cluster *c
    pthread_spin_lock(&d.dev_lock)
    xd_count(&st.user[1])
    for k in range(d.nr_clusters):
        ci = (d.next_cluster + k) % d.nr_clusters
        first = ci * SWAPFILE_CLUSTER
        last = min(first + SWAPFILE_CLUSTER, d.nr_slots)
        cap = last - first - (1 if ci == 0 else 0)
        c = &d.clusters[ci]
        if cluster_count_peek(&c.count) >= cap:
            continue
        pthread_spin_lock(&c.lock)
        xd_count(&st.user[0])
        for s in range(max(first, 1), last):
            if d.swap_map[s] == 0:
                xd_st8(&d.swap_map[s], SWAP_HAS_CACHE | 1)
                cluster_count_set(&c.count, c.count + 1)
                xd_add64(&d.used, 1)
                found = s
                break
        pthread_spin_unlock(&c.lock)
        if found:
            d.next_cluster = ci
            break
    pthread_spin_unlock(&d.dev_lock)
    return found

cdef int cache_del(xd_design *d, uint64_t e, uint64_t folio, uint64_t shadow, uintptr_t *cur,
                   vxa_stats *st) noexcept nogil:
    """__delete_from_swap_cache() under xa_lock (the folio replaced by its
    shadow, a value entry), then put_swap_folio() clears SWAP_HAS_CACHE
    under ci->lock.  1 (nothing changed, *cur the cached entry) if ``folio``
    is not the cached one."""
    cdef vxa *xa = &d.cache[e >> SWAP_ADDRESS_SPACE_SHIFT]
    cdef uintptr_t old = 0
    vxa_lock(xa, st)
    cur[0] = vxa_load_locked(xa, e & SWAP_ADDRESS_SPACE_MASK)
    if cur[0] != <uintptr_t>folio << 2:
        vxa_unlock(xa)
        return 1
    # replacing an entry in place allocates nothing
    vxa_store_locked(xa, &d.ctx_cache, e & SWAP_ADDRESS_SPACE_MASK,
                     (<uintptr_t>shadow << 1) | 1, &old)
    vxa_unlock(xa)
    cluster_lock(d, e, st)
    if d.swap_map[e]:
        xd_st8(&d.swap_map[e], d.swap_map[e] & ~SWAP_HAS_CACHE)
    cluster_unlock(d, e)
    return 0

cdef int64_t swap_out_loop(xd_design *d, uint64_t *out, uint64_t count, int backing,
                           uint16_t memcg, vxa_stats *st) noexcept nogil:
    """swap_out_many in C: folio_alloc_swap, the backing, the swap cache
    left with a shadow, page by page.  R_FULL / R_NOMEM with every page of
    the call released."""
    cdef uint64_t k, s, h, old_h
    cdef uintptr_t old = 0, cur = 0
    cdef int64_t rc = 0
    for k in range(count):
        s = alloc_slot(d, st)
        if s == 0:
            rc = R_FULL
            break
        out[k] = s
        xd_st16(&d.swap_cgroup[s], memcg)            # swap_cgroup_record()
        if cache_store(d, s, <uintptr_t>s << 2, &old, st):
            rc = R_NOMEM
            k += 1
            break
        if backing == 0:
            h = xd_addu64(&d.next_handle, 1) % XD_VALUE_MAX + 1
            if zswap_store(d, s, h, &old_h, st):
                rc = R_NOMEM
                k += 1
                break
        elif backing == 1:
            zswap_erase(d, s, st)
            zero_clear(d, s)
        else:
            zswap_erase(d, s, st)
            zero_set(d, s)
        cache_del(d, s, s, s, &cur, st)
    if rc:
        for s in range(k):
            swap_free_one(d, out[s], st)
    return rc

cdef void xd_free(xd_design *d) noexcept nogil:
    """Free every structure (no call may be in flight)."""
    cdef uint64_t r
    if d.cache != NULL:
        for r in range(d.nr_regions):
            vxa_destroy(&d.cache[r], &d.ctx_cache)
        vswap_account_free(&d.acct[A_CACHE_XA], d.cache, d.nr_regions * XARRAY_SIZE)
    if d.zswap != NULL:
        for r in range(d.nr_regions):
            vxa_destroy(&d.zswap[r], &d.ctx_zswap)
        vswap_account_free(&d.acct[A_ZSWAP_XA], d.zswap, d.nr_regions * XARRAY_SIZE)
    vxa_destroy(&d.cont, &d.ctx_cont)
    vxa_ctx_destroy(&d.ctx_cache)
    vxa_ctx_destroy(&d.ctx_zswap)
    vxa_ctx_destroy(&d.ctx_cont)
    if d.clusters != NULL:
        for r in range(d.nr_clusters):
            pthread_spin_destroy(&d.clusters[r].lock)
        vswap_account_free(&d.acct[A_CLUSTER_INFO], d.clusters, d.nr_clusters * sizeof(xd_cluster))
    vswap_account_free(&d.acct[A_SWAP_MAP], d.swap_map, d.nr_slots)
    vswap_account_free(&d.acct[A_SWAP_CGROUP], d.swap_cgroup, (d.nr_slots + 1) // 2 * 4)
    vswap_account_free(&d.acct[A_ZEROMAP], d.zeromap, (d.nr_slots + 63) // 64 * 8)
    pthread_spin_destroy(&d.dev_lock)
    PyMem_RawFree(d)

cdef xd_design *xd_new(uint64_t nr_slots) noexcept nogil:
    """swapon: the static structures (vzalloc'd swap_map, swap_cgroup,
    bitmap_zalloc'd zeromap, cluster_info, the address spaces and zswap
    trees); NULL when out of memory."""
    cdef xd_design *d = <xd_design *>PyMem_RawCalloc(1, sizeof(xd_design))
    cdef uint64_t r
    if d == NULL:
        return NULL
    d.stats = <vxa_stats *>((<uintptr_t>d.stats_space + 63) & ~(<uintptr_t>63))
    d.nr_slots = nr_slots
    d.nr_clusters = (nr_slots + SWAPFILE_CLUSTER - 1) // SWAPFILE_CLUSTER
    d.nr_regions = (nr_slots + SWAP_ADDRESS_SPACE_MASK) >> SWAP_ADDRESS_SPACE_SHIFT
    pthread_spin_init(&d.dev_lock, 0)
    vxa_init(&d.cont)
    vxa_ctx_init(&d.ctx_cache, &d.acct[A_NODE_CACHE], &d.acct[A_NODE_FREE])
    vxa_ctx_init(&d.ctx_zswap, &d.acct[A_NODE_ZSWAP], &d.acct[A_NODE_FREE])
    vxa_ctx_init(&d.ctx_cont, &d.acct[A_CONT], &d.acct[A_NODE_FREE])
    d.swap_map = <uint8_t *>vswap_account_calloc(&d.acct[A_SWAP_MAP], nr_slots)
    d.swap_cgroup = <uint16_t *>vswap_account_calloc(&d.acct[A_SWAP_CGROUP], (nr_slots + 1) // 2 * 4)
    d.zeromap = <uint64_t *>vswap_account_calloc(&d.acct[A_ZEROMAP], (nr_slots + 63) // 64 * 8)
    d.clusters = <xd_cluster *>vswap_account_calloc(&d.acct[A_CLUSTER_INFO],
                                                    d.nr_clusters * sizeof(xd_cluster))
    d.cache = <vxa *>vswap_account_calloc(&d.acct[A_CACHE_XA], d.nr_regions * XARRAY_SIZE)
    d.zswap = <vxa *>vswap_account_calloc(&d.acct[A_ZSWAP_XA], d.nr_regions * XARRAY_SIZE)
    if (d.swap_map == NULL or d.swap_cgroup == NULL or d.zeromap == NULL
            or d.clusters == NULL or d.cache == NULL or d.zswap == NULL):
        if d.clusters != NULL:
            for r in range(d.nr_clusters):
                pthread_spin_init(&d.clusters[r].lock, 0)
        if d.cache != NULL:
            for r in range(d.nr_regions):
                vxa_init(&d.cache[r])
        if d.zswap != NULL:
            for r in range(d.nr_regions):
                vxa_init(&d.zswap[r])
        xd_free(d)
        return NULL
    for r in range(d.nr_clusters):
        pthread_spin_init(&d.clusters[r].lock, 0)
    for r in range(d.nr_regions):
        vxa_init(&d.cache[r])
        vxa_init(&d.zswap[r])
    return d


# -- arguments: vswapfast/_design_args.pxd --------------------------------

cdef inline int64_t first_bad(xd_design *d, uint64_t *e, Py_ssize_t n, int *why) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        why[0] = xd_check(d, e[i])
        if why[0]:
            return i
    return -1


@cython.no_gc_clear
@cython.final
cdef class XarrayDesign:
    """Swap metadata from zswap's xarrays (6.10) to the swap table (6.18):
    ``swap_map``, ``swap_cgroup``, the zeromap, the swap cache and shadows
    in per-64 MiB xarrays, zswap entries in per-64 MiB xarrays.  Loads are
    lock-free; stores and erases take ``xa_lock``.  See docs/designs.md and
    this module's header for the kernel sources and the lock ordering.

    Thread-safe; ``close()`` waits for the calls in flight.  Every method
    converts its arguments (which may run Python code) before it takes the
    design with ``_enter()``, and runs no Python code until ``_exit()``.
    """

    cdef xd_design *d
    cdef readonly uint64_t nr_slots

    name = "xarray"

    def __cinit__(self, nr_slots):
        nr_slots = int_arg(nr_slots, "nr_slots")
        if not 1 <= nr_slots <= (1 << 32):
            raise ValueError("nr_slots must be in 1 .. 2**32, not %d" % nr_slots)
        self.nr_slots = nr_slots
        with nogil:
            self.d = xd_new(self.nr_slots)
        if self.d == NULL:
            raise MemoryError("no memory for the swap metadata of %d slots" % nr_slots)

    def __dealloc__(self):
        self._close()

    cdef void _close(self) noexcept:
        cdef xd_design *d = self.d
        if d == NULL:
            return
        self.d = NULL                   # later calls find the design closed
        with nogil:
            vswap_wait_zero(&d.calls)
            xd_free(d)

    def close(self):
        """Free every structure once the calls in flight on other threads
        have finished; closing again does nothing; later calls raise
        ValueError."""
        self._close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._close()

    cdef xd_design *_enter(self) except NULL:
        cdef xd_design *d = self.d
        if d == NULL:
            raise ValueError("xarray design is closed")
        vswap_seq_add(&d.calls, 1)
        return d

    cdef int _bad(self, xd_design *d, object entry, int why) except -1:
        """Leave the call and raise InvalidEntryError."""
        vswap_seq_add(&d.calls, -1)
        raise InvalidEntryError(entry_message(entry, why, self.nr_slots))

    cdef xd_design *_enter_entry(self, object entry, int kind, uint64_t val) except NULL:
        """_enter() and check the entry is an allocated slot."""
        cdef xd_design *d = self._enter()
        cdef int why = kind if kind else xd_check(d, val)
        if why:
            self._bad(d, entry, why)
        return d

    # -- allocation ---------------------------------------------------------

    def folio_alloc_swap(self, folio, memcg=0):
        """folio_alloc_swap() + add_to_swap_cache() (mm/swapfile.c,
        mm/swap_state.c): a slot from the cluster allocator (device lock,
        then cluster lock), swap count 1 with SWAP_HAS_CACHE, the memcg in
        swap_cgroup, the folio stored in the swap-cache xarray under its
        xa_lock.  ``SwapFullError`` when no slot is left."""
        cdef uint64_t f = value_arg(folio, "folio", 1)
        cdef uint16_t m = memcg_arg(memcg)
        cdef xd_design *d = self._enter()
        cdef vxa_stats *st = xd_stats(d)
        cdef uint64_t s = alloc_slot(d, st)
        cdef uintptr_t old = 0
        cdef int64_t used
        if s == 0:
            used = d.used
            vswap_seq_add(&d.calls, -1)
            raise SwapFullError("no free swap slot left (nr_slots is %d, %d used)"
                                % (self.nr_slots, used))
        xd_st16(&d.swap_cgroup[s], m)
        if cache_store(d, s, <uintptr_t>f << 2, &old, st):
            swap_free_one(d, s, st)
            vswap_seq_add(&d.calls, -1)
            raise MemoryError("no memory for a swap cache node")
        vswap_seq_add(&d.calls, -1)
        return s

    # -- swap cache ---------------------------------------------------------

    def swap_cache_get_folio(self, entry):
        """swap_cache_get_folio() / filemap_get_entry(): the cached folio or
        None; xa_load with no lock."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef xd_design *d = self._enter_entry(entry, kind, val)
        cdef uintptr_t e = vxa_load(&d.cache[val >> SWAP_ADDRESS_SPACE_SHIFT],
                                    val & SWAP_ADDRESS_SPACE_MASK, xd_stats(d))
        vswap_seq_add(&d.calls, -1)
        if e == 0 or e & 1:
            return None
        return e >> 2

    def swap_cache_get_shadow(self, entry):
        """get_shadow_from_swap_cache(): the shadow or None; xa_load, no lock."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef xd_design *d = self._enter_entry(entry, kind, val)
        cdef uintptr_t e = vxa_load(&d.cache[val >> SWAP_ADDRESS_SPACE_SHIFT],
                                    val & SWAP_ADDRESS_SPACE_MASK, xd_stats(d))
        vswap_seq_add(&d.calls, -1)
        if e & 1:
            return e >> 1
        return None

    def swap_cache_add_folio(self, entry, folio):
        """swapcache_prepare() (SWAP_HAS_CACHE set under the cluster lock,
        -EEXIST -> SwapCacheError) then add_to_swap_cache() (xa_lock):
        returns the shadow replaced, or None."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef uint64_t f = value_arg(folio, "folio", 1)
        cdef xd_design *d = self._enter_entry(entry, kind, val)
        cdef vxa_stats *st = xd_stats(d)
        cdef uintptr_t old = 0
        cluster_lock(d, val, st)
        if d.swap_map[val] == 0:
            cluster_unlock(d, val)
            self._bad(d, entry, E_FREE)
        if d.swap_map[val] & SWAP_HAS_CACHE:
            cluster_unlock(d, val)
            vswap_seq_add(&d.calls, -1)
            raise SwapCacheError("swap entry %d already has a folio in the swap cache" % val)
        xd_st8(&d.swap_map[val], d.swap_map[val] | SWAP_HAS_CACHE)
        cluster_unlock(d, val)
        if cache_store(d, val, <uintptr_t>f << 2, &old, st):
            cluster_lock(d, val, st)
            xd_st8(&d.swap_map[val], d.swap_map[val] & ~SWAP_HAS_CACHE)
            cluster_unlock(d, val)
            vswap_seq_add(&d.calls, -1)
            raise MemoryError("no memory for a swap cache node")
        vswap_seq_add(&d.calls, -1)
        if old & 1:
            return old >> 1
        return None

    def swap_cache_del_folio(self, entry, folio, shadow=0):
        """__delete_from_swap_cache() under xa_lock (the folio replaced by
        its shadow), then put_swap_folio() clears SWAP_HAS_CACHE under the
        cluster lock.  ``SwapCacheError`` if ``folio`` is not the cached one."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef uint64_t f = value_arg(folio, "folio", 1)
        cdef uint64_t sh = value_arg(shadow, "shadow", 0)
        cdef xd_design *d = self._enter_entry(entry, kind, val)
        cdef uintptr_t cur = 0
        cdef int rc = cache_del(d, val, f, sh, &cur, xd_stats(d))
        vswap_seq_add(&d.calls, -1)
        if rc:
            raise SwapCacheError(
                "folio %d is not the one in the swap cache of entry %d (%s)"
                % (f, val, "folio %d" % (cur >> 2) if cur and not cur & 1 else "no folio"))

    # -- zswap --------------------------------------------------------------

    def zswap_entry_store(self, entry, handle):
        """zswap_store(): xa_store() into the entry's zswap tree under its
        xa_lock (the zeromap bit cleared first, as swap_writepage does);
        returns the handle replaced, or None."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef uint64_t h = value_arg(handle, "handle", 1)
        cdef xd_design *d = self._enter_entry(entry, kind, val)
        cdef uint64_t old = 0
        cdef int rc = zswap_store(d, val, h, &old, xd_stats(d))
        vswap_seq_add(&d.calls, -1)
        if rc:
            raise MemoryError("no memory for a zswap tree node")
        return old if old else None

    def zswap_entry_load(self, entry):
        """zswap_load(): xa_load() with no lock; the handle or None."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef xd_design *d = self._enter_entry(entry, kind, val)
        cdef uintptr_t e = vxa_load(&d.zswap[val >> SWAP_ADDRESS_SPACE_SHIFT], val, xd_stats(d))
        vswap_seq_add(&d.calls, -1)
        return (e >> 2) if e else None

    def zswap_entry_erase(self, entry):
        """zswap_invalidate(): xa_erase() under xa_lock; the handle or None."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef xd_design *d = self._enter_entry(entry, kind, val)
        cdef uintptr_t old = zswap_erase(d, val, xd_stats(d))
        vswap_seq_add(&d.calls, -1)
        return old if old else None

    def zswap_empty(self):
        """True when no zswap tree holds an entry (xa_empty on each, no lock)."""
        cdef xd_design *d = self._enter()
        cdef uint64_t r
        cdef bint empty = True
        for r in range(d.nr_regions):
            if not vxa_empty(&d.zswap[r]):
                empty = False
                break
        vswap_seq_add(&d.calls, -1)
        return empty

    # -- zero pages, disk ---------------------------------------------------

    def set_zero(self, entry):
        """swap_writepage() of a zero-filled folio: swap_zeromap_folio_set()
        (an atomic bit operation, no lock); any zswap entry is erased (the
        page has one backing)."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef xd_design *d = self._enter_entry(entry, kind, val)
        zswap_erase(d, val, xd_stats(d))
        zero_set(d, val)
        vswap_seq_add(&d.calls, -1)

    def is_zero(self, entry):
        """swap_zeromap_batch() of one entry: the zeromap bit (no lock)."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef xd_design *d = self._enter_entry(entry, kind, val)
        cdef bint z = (xd_ld64(&d.zeromap[val >> 6]) >> (val & 63)) & 1
        xd_count(&xd_stats(d).lockless_loads)
        vswap_seq_add(&d.calls, -1)
        return z

    def swap_writeout(self, entry):
        """__swap_writepage(): the page goes to its slot on disk; the zeromap
        bit is cleared and any zswap entry erased (xa_lock).  Returns the
        slot, which is the entry itself."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef xd_design *d = self._enter_entry(entry, kind, val)
        zswap_erase(d, val, xd_stats(d))
        zero_clear(d, val)
        vswap_seq_add(&d.calls, -1)
        return val

    def get_slot(self, entry):
        """The disk slot of an allocated entry: the entry itself (a
        lock-free read of swap_map)."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef xd_design *d = self._enter_entry(entry, kind, val)
        xd_count(&xd_stats(d).lockless_loads)
        vswap_seq_add(&d.calls, -1)
        return val

    # -- counts -------------------------------------------------------------

    def swap_duplicate(self, entry):
        """__swap_duplicate(): one more reference, under the cluster lock;
        returns the new count."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef xd_design *d = self._enter_entry(entry, kind, val)
        cdef vxa_stats *st = xd_stats(d)
        cdef uint64_t count
        cdef int rc
        while True:
            cluster_lock(d, val, st)
            if d.swap_map[val] == 0:
                cluster_unlock(d, val)
                self._bad(d, entry, E_FREE)
            count = count_locked(d, val) + 1
            if count > SWAP_COUNT_LIMIT:
                cluster_unlock(d, val)
                vswap_seq_add(&d.calls, -1)
                raise ValueError("swap count of entry %d would exceed 2**31 - 1" % val)
            rc = set_count_locked(d, val, count, st)
            cluster_unlock(d, val)
            if rc != VXA_EAGAIN:
                break
            rc = vxa_reserve1(&d.ctx_cont)      # no lock held (xas_nomem)
            if rc:
                break
        vswap_seq_add(&d.calls, -1)
        if rc:
            raise MemoryError("no memory for a swap count continuation")
        return count

    def swap_count(self, entry):
        """swp_swapcount(): the count, read under the cluster lock."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef xd_design *d = self._enter_entry(entry, kind, val)
        cdef uint64_t count
        cluster_lock(d, val, xd_stats(d))
        if d.swap_map[val] == 0:
            cluster_unlock(d, val)
            self._bad(d, entry, E_FREE)
        count = count_locked(d, val)
        cluster_unlock(d, val)
        vswap_seq_add(&d.calls, -1)
        return count

    def swap_free(self, entry):
        """swap_free() / __swap_entry_free(): drop one reference under the
        cluster lock; at zero the slot and all it holds are released."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef xd_design *d = self._enter_entry(entry, kind, val)
        if swap_free_one(d, val, xd_stats(d)):
            self._bad(d, entry, E_FREE)
        vswap_seq_add(&d.calls, -1)

    # -- loops (C, without the GIL) -----------------------------------------

    cdef int _check_entries(self, xd_design *d, uint64_t *e, Py_ssize_t n) except -1:
        cdef int why = 0
        cdef int64_t i
        with nogil:
            i = first_bad(d, e, n, &why)
        if i >= 0:
            vswap_seq_add(&d.calls, -1)
            raise InvalidEntryError("entries[%d]: %s" % (i, entry_message(e[i], why, self.nr_slots)))
        return 0

    def zswap_entry_store_many(self, entries, handles, batch=False):
        """zswap_entry_store of each page (one xa_lock each, or one per run
        in the same tree with ``batch=True``); returns how many replaced a
        handle."""
        cdef Py_buffer ev, hv
        cdef xd_design *d
        cdef vxa_stats *st
        cdef uint64_t *e
        cdef uint64_t *h
        cdef Py_ssize_t n, i, j, k
        cdef bint b = bool(batch)
        cdef int64_t replaced = 0
        cdef vxa *xa
        cdef uintptr_t old = 0
        cdef int rc = 0
        n = get_u64_pair(entries, &ev, handles, &hv, "handles", False)
        try:
            e = <uint64_t *>ev.buf
            h = <uint64_t *>hv.buf
            d = self._enter()
            self._check_entries(d, e, n)
            check_handles(&d.calls, h, n)
            with nogil:
                st = xd_stats(d)
                i = 0
                while i < n and rc == 0:
                    j = i + 1
                    if b:
                        while j < n and (e[j] >> SWAP_ADDRESS_SPACE_SHIFT) == (e[i] >> SWAP_ADDRESS_SPACE_SHIFT):
                            j += 1
                    xa = &d.zswap[e[i] >> SWAP_ADDRESS_SPACE_SHIFT]
                    vxa_lock(xa, st)
                    k = i
                    while k < j:
                        zero_clear(d, e[k])
                        rc = vxa_store_locked(xa, &d.ctx_zswap, e[k], <uintptr_t>h[k] << 2, &old)
                        if rc == VXA_EAGAIN:
                            # xas_nomem: a node allocated with no lock held
                            vxa_unlock(xa)
                            rc = vxa_reserve1(&d.ctx_zswap)
                            if rc:
                                break
                            vxa_lock(xa, st)
                            continue
                        if old:
                            replaced += 1
                        k += 1
                    if rc == 0:
                        vxa_unlock(xa)
                    i = j
            vswap_seq_add(&d.calls, -1)
            if rc:
                raise MemoryError("no memory for a zswap tree node")
            return replaced
        finally:
            PyBuffer_Release(&hv)
            PyBuffer_Release(&ev)

    def zswap_entry_load_many(self, entries, out, batch=False):
        """zswap_entry_load of each page, lock-free (``batch=True``: one
        xa_lock per run in the same tree, a range walk); ``out[i]`` gets the
        handle or 0.  Returns how many held one."""
        cdef Py_buffer ev, ov
        cdef xd_design *d
        cdef vxa_stats *st
        cdef uint64_t *e
        cdef uint64_t *o
        cdef Py_ssize_t n, i, j, k
        cdef bint b = bool(batch)
        cdef int64_t found = 0
        cdef vxa *xa
        cdef uint64_t x
        n = get_u64_pair(entries, &ev, out, &ov, "out", True)
        try:
            e = <uint64_t *>ev.buf
            o = <uint64_t *>ov.buf
            d = self._enter()
            self._check_entries(d, e, n)
            with nogil:
                st = xd_stats(d)
                if not b:
                    for k in range(n):
                        x = e[k]
                        x = vxa_load(&d.zswap[x >> SWAP_ADDRESS_SPACE_SHIFT], x, st) >> 2
                        o[k] = x
                        found += x != 0
                else:
                    i = 0
                    while i < n:
                        j = i + 1
                        while j < n and (e[j] >> SWAP_ADDRESS_SPACE_SHIFT) == (e[i] >> SWAP_ADDRESS_SPACE_SHIFT):
                            j += 1
                        xa = &d.zswap[e[i] >> SWAP_ADDRESS_SPACE_SHIFT]
                        vxa_lock(xa, st)
                        for k in range(i, j):
                            x = vxa_load_locked(xa, e[k]) >> 2
                            o[k] = x
                            found += x != 0
                        vxa_unlock(xa)
                        i = j
            vswap_seq_add(&d.calls, -1)
            return found
        finally:
            PyBuffer_Release(&ov)
            PyBuffer_Release(&ev)

    def zswap_entry_erase_many(self, entries, batch=False):
        """zswap_entry_erase of each page (one xa_lock each, or one per run
        with ``batch=True``); returns how many held a handle."""
        cdef Py_buffer ev
        cdef xd_design *d
        cdef vxa_stats *st
        cdef uint64_t *e
        cdef Py_ssize_t n, i, j, k
        cdef bint b = bool(batch)
        cdef int64_t erased = 0
        cdef vxa *xa
        cdef uintptr_t old = 0
        get_u64_buffer(entries, &ev, "entries", False)
        try:
            n = ev.len // 8
            e = <uint64_t *>ev.buf
            d = self._enter()
            self._check_entries(d, e, n)
            with nogil:
                st = xd_stats(d)
                i = 0
                while i < n:
                    j = i + 1
                    if b:
                        while j < n and (e[j] >> SWAP_ADDRESS_SPACE_SHIFT) == (e[i] >> SWAP_ADDRESS_SPACE_SHIFT):
                            j += 1
                    xa = &d.zswap[e[i] >> SWAP_ADDRESS_SPACE_SHIFT]
                    vxa_lock(xa, st)
                    for k in range(i, j):
                        vxa_store_locked(xa, &d.ctx_zswap, e[k], 0, &old)
                        if old:
                            erased += 1
                    vxa_unlock(xa)
                    i = j
            vswap_seq_add(&d.calls, -1)
            return erased
        finally:
            PyBuffer_Release(&ev)

    def swap_out_many(self, count, backing="zswap", memcg=0):
        """Swap out ``count`` pages, each through folio_alloc_swap, its
        backing (zswap store of a fresh handle, swap_writeout, or set_zero)
        and swap_cache_del_folio leaving a shadow.  The folio of each page
        is its entry, its shadow the entry too.  ``SwapFullError`` (every
        page of the call released) when the device fills up."""
        cdef int64_t c, rc, used
        cdef int bk
        cdef uint16_t m
        cdef xd_design *d
        cdef uint64_t *o
        count = count_arg(count)
        bk = check_backing(backing)
        m = memcg_arg(memcg)
        out = _array.array("Q", bytes(8 * count))
        c = count
        cdef Py_buffer ov
        PyObject_GetBuffer(out, &ov, PyBUF_C_CONTIGUOUS)
        try:
            o = <uint64_t *>ov.buf
            d = self._enter()
            with nogil:
                rc = swap_out_loop(d, o, c, bk, m, xd_stats(d))
            used = d.used
            vswap_seq_add(&d.calls, -1)
        finally:
            PyBuffer_Release(&ov)
        if rc == R_FULL:
            raise SwapFullError("no free swap slot left (nr_slots is %d, %d used)"
                                % (self.nr_slots, used))
        if rc == R_NOMEM:
            raise MemoryError("no memory for an xarray node")
        return out

    def swap_free_many(self, entries):
        """swap_free of each entry (checked first: nothing is freed if one is
        not allocated)."""
        cdef Py_buffer ev
        cdef xd_design *d
        cdef vxa_stats *st
        cdef uint64_t *e
        cdef Py_ssize_t n, k
        get_u64_buffer(entries, &ev, "entries", False)
        try:
            n = ev.len // 8
            e = <uint64_t *>ev.buf
            d = self._enter()
            self._check_entries(d, e, n)
            with nogil:
                st = xd_stats(d)
                for k in range(n):
                    swap_free_one(d, e[k], st)
            vswap_seq_add(&d.calls, -1)
        finally:
            PyBuffer_Release(&ev)

    # -- introspection ------------------------------------------------------

    def metadata_bytes(self):
        """Bytes of metadata held now, from the allocation counters (static
        structures and the free list of nodes included)."""
        cdef xd_design *d = self._enter()
        cdef long long total = 0
        cdef int a
        for a in range(NR_ACCOUNTS):
            total += vswap_account_bytes(&d.acct[a])
        vswap_seq_add(&d.calls, -1)
        return total

    def stats(self):
        """Counters and byte counts; see docs/designs.md."""
        cdef xd_design *d = self._enter()
        cdef unsigned long long ll = 0, lr = 0, lk = 0, xl = 0, cl = 0, dl = 0
        cdef long long objs = 0
        cdef long long nbytes[NR_ACCOUNTS]
        cdef int64_t used
        cdef int a
        # Everything read into C locals before any Python object is made
        # (which may run Python code): no pointer kept across it.
        for a in range(NR_STAT_SLOTS):
            ll += xd_ldu64(&d.stats[a].lockless_loads)
            lr += xd_ldu64(&d.stats[a].load_retries)
            lk += xd_ldu64(&d.stats[a].locked_loads)
            xl += xd_ldu64(&d.stats[a].lock_acquisitions)
            cl += xd_ldu64(&d.stats[a].user[0])
            dl += xd_ldu64(&d.stats[a].user[1])
        for a in range(NR_ACCOUNTS):
            nbytes[a] = vswap_account_bytes(&d.acct[a])
            objs += vswap_account_objects(&d.acct[a])
        used = d.used
        vswap_seq_add(&d.calls, -1)
        b = {}
        for a in range(NR_ACCOUNTS):
            b[_STRUCTURES[a]] = nbytes[a]
        s = {
            "design": "xarray",
            "core": "compiled",
            "nr_slots": self.nr_slots,
            "used": used,
            "metadata_bytes": sum(b.values()),
            "metadata_objects": objs,
            "lock_acquisitions": xl + cl + dl,
            "xa_lock_acquisitions": xl,
            "cluster_lock_acquisitions": cl,
            "device_lock_acquisitions": dl,
            "lockless_loads": ll,
            "load_retries": lr,
            "locked_loads": lk,
        }
        for k, v in b.items():
            s["bytes_" + k] = v
        s["bytes_xa_node"] = b["xa_node_swap_cache"] + b["xa_node_zswap"]
        return s

    def __len__(self):
        cdef xd_design *d = self._enter()
        cdef int64_t used = d.used
        vswap_seq_add(&d.calls, -1)
        return used

    def __repr__(self):
        if self.d == NULL:
            return "<XarrayDesign closed core=compiled>"
        return "<XarrayDesign nr_slots=%d used=%d bytes=%d core=compiled>" % (
            self.nr_slots, len(self), self.metadata_bytes())


