# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The compiled core of the two swap-table designs (``swap-table-p1`` and
``swap-table``): one implementation whose ``phase`` (1, or 4 for phases
III-IV) picks the structures.  Each design's own module
(``vswapfast._design_swap_table_p1``, ``vswapfast._design_swap_table``)
names the class, cites the kernel sources its layout follows and lists its
departures; the swap table itself is ``swap_table.h``.

Structures per swap device:

- phase 1 (6.18): ``swap_map`` (1 byte per slot: count, SWAP_HAS_CACHE,
  COUNT_CONTINUED; counts past SWAP_MAP_MAX in one xarray of extra counts,
  ``swap_cont``), ``swap_cgroup`` (2 bytes per slot), the zeromap bitmap,
  32-byte ``struct swap_cluster_info`` per cluster, and in each cluster in
  use a swap table whose words are the swap cache: 0, a folio (``folio <<
  2``, a pointer) or a shadow (``shadow << 1 | 1``, an XA_VALUE).
- phase 4 (III-IV): the table word is ``|COUNT:4|Z|SHADOW|1|`` or
  ``|COUNT:4|Z|PFN|10|`` (mm/swap_table.h: SWP_TB_FLAGS_BITS 5, count in
  the top 4 bits, SWP_TB_ZERO_FLAG below it); a word count of 15
  (SWP_TB_COUNT_MAX) means the count is in the cluster's ``extend_table``
  (u32 per slot, 2048 bytes); the memcg id is in the cluster's memcg table
  (u16 per slot, 1024 bytes, allocated with the swap table); 48-byte
  ``struct swap_cluster_info``.  No swap_map, swap_cgroup or zeromap.
- both: zswap entries in per-64 MiB xarrays (xarray.h), indexed by offset.

Lock ordering:
    device lock (si->lock)  ->  cluster lock (ci->lock)
    cluster lock  ->  xa_lock (zswap tree, count continuation)
    cluster lock  ->  the table free lists' locks (swap_table.h)
    xa_lock  ->  node free list lock (xarray.h)
No two cluster locks or two xa_locks are held at once.  Nothing is
allocated under a lock (a writer that needs a table, a memcg table, an
extend table or an xarray node drops its locks, allocates and retries);
frees, which take no GIL, may run under ci->lock.  Single-entry calls keep
the GIL; the loops release it; no lock holder waits for the GIL.
"""

cimport cython
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_FORMAT, PyBUF_C_CONTIGUOUS
from cpython.mem cimport PyMem_RawCalloc, PyMem_RawFree
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t, uintptr_t

from vswapfast._design_args cimport (
    E_OK, E_ZERO, E_NEGATIVE, E_RANGE, E_FREE, int_arg, value_arg, memcg_arg, entry_arg,
    get_u64_buffer, get_u64_pair, check_handles, count_arg, check_backing,
)
from vswapfast.vswap_account cimport (
    vswap_account, vswap_account_calloc, vswap_account_free, vswap_account_bytes,
)
from vswapfast._xarray cimport (
    vxa, vxa_ctx, vxa_stats, vxa_init, vxa_ctx_init, vxa_ctx_destroy,
    vxa_lock, vxa_unlock, vxa_store_locked, vxa_load, vxa_load_locked, vxa_empty,
    vxa_destroy, vxa_store, vxa_reserve1, pthread_spinlock_t, VXA_EAGAIN,
)
from vswapfast._swap_table cimport (
    vst_cluster, vst_cluster_ext, vst_ctx, vst_ctx_init, vst_ctx_destroy, vst_reserve1,
    vst_obj_get, vst_obj_put, vst_obj_destroy, vst_cluster_init, vst_cluster_destroy,
    vst_lock, vst_unlock, vst_table_install, vst_table_release, vst_get_locked,
    vst_set_locked, vst_get, VST_EAGAIN,
)

import array as _array

from vswapfast.errors import InvalidEntryError, SwapCacheError, SwapFullError

__all__ = ["SwapTableBase", "BACKINGS"]

cdef extern from "pthread.h" nogil:
    int pthread_spin_init(pthread_spinlock_t *lock, int pshared)
    int pthread_spin_destroy(pthread_spinlock_t *lock)
    int pthread_spin_lock(pthread_spinlock_t *lock)
    int pthread_spin_unlock(pthread_spinlock_t *lock)

cdef extern from "vswap_sync.h" nogil:
    int vswap_this_thread()
    long long vswap_seq_add(long long *p, long long v)
    void vswap_wait_zero(long long *p)

cdef extern from * nogil:
    """
    #define ST_VALUE_MAX ((1ULL << 48) - 1)
    /* mm/swap_table.h after phase IV, 64-bit: 5 flag bits at the top, the
     * count (SWP_TB_COUNT_BITS 4) above the zero flag. */
    #define ST_COUNT_SHIFT 60
    #define ST_COUNT_MAX 15ULL
    #define ST_ZERO (1ULL << 59)
    #define ST_FLAGS_MASK (0x1FULL << 59)
    #define st_ld8(p)        __atomic_load_n((p), __ATOMIC_RELAXED)
    #define st_st8(p, v)     __atomic_store_n((p), (v), __ATOMIC_RELAXED)
    #define st_st16(p, v)    __atomic_store_n((p), (v), __ATOMIC_RELAXED)
    #define st_ld16(p)       __atomic_load_n((p), __ATOMIC_RELAXED)
    #define st_ld64(p)       __atomic_load_n((p), __ATOMIC_RELAXED)
    #define st_or64(p, v)    __atomic_fetch_or((p), (v), __ATOMIC_RELAXED)
    #define st_and64(p, v)   __atomic_fetch_and((p), (v), __ATOMIC_RELAXED)
    #define st_add64(p, v)   __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)
    #define st_addu64(p, v)  __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)
    #define st_count(p)      __atomic_store_n((p), __atomic_load_n((p), __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED)
    #define st_ldu64(p)      __atomic_load_n((p), __ATOMIC_RELAXED)
    static inline long long st_account_objects(const vswap_account *a)
    { return __atomic_load_n(&a->objects, __ATOMIC_RELAXED); }
    """
    uint64_t ST_VALUE_MAX
    uint64_t ST_COUNT_SHIFT
    uint64_t ST_COUNT_MAX
    uint64_t ST_ZERO
    uint64_t ST_FLAGS_MASK
    uint8_t st_ld8(uint8_t *p)
    void st_st8(uint8_t *p, uint8_t v)
    void st_st16(uint16_t *p, uint16_t v)
    uint16_t st_ld16(uint16_t *p)
    uint64_t st_ld64(uint64_t *p)
    uint64_t st_or64(uint64_t *p, uint64_t v)
    uint64_t st_and64(uint64_t *p, uint64_t v)
    int64_t st_add64(int64_t *p, int64_t v)
    uint64_t st_addu64(uint64_t *p, uint64_t v)
    void st_count(unsigned long long *p)
    uint64_t st_ldu64(uint64_t *p)
    long long st_account_objects(vswap_account *a)

DEF SWAPFILE_CLUSTER = 512
DEF SWAP_ADDRESS_SPACE_SHIFT = 14
DEF SWAP_HAS_CACHE = 0x40
DEF COUNT_CONTINUED = 0x80
DEF SWAP_MAP_MAX = 0x3E
DEF SWAP_COUNT_LIMIT = (1 << 31) - 1
DEF XARRAY_SIZE = 16
DEF NR_STAT_SLOTS = 64
DEF SWAP_TABLE_SIZE = 4096
DEF MEMCG_TABLE_SIZE = 1024
DEF EXTEND_TABLE_SIZE = 2048

# accounts
DEF A_SWAP_MAP = 0
DEF A_SWAP_CGROUP = 1
DEF A_ZEROMAP = 2
DEF A_CLUSTER_INFO = 3
DEF A_SWAP_TABLE = 4
DEF A_MEMCG_TABLE = 5
DEF A_EXTEND_TABLE = 6
DEF A_ZSWAP_XA = 7
DEF A_NODE_ZSWAP = 8
DEF A_CONT = 9
DEF A_TABLE_FREE = 10
DEF A_NODE_FREE = 11
DEF NR_ACCOUNTS = 12

_ACCOUNTS = ("swap_map", "swap_cgroup", "zeromap", "cluster_info", "swap_table",
             "memcg_table", "extend_table", "zswap_trees", "xa_node_zswap", "swap_cont",
             "swap_table_free", "xa_node_free")
#: The structures each phase has (the others stay at 0 and are not reported).
_STRUCTURES = {
    1: ("swap_map", "swap_cgroup", "zeromap", "cluster_info", "swap_table",
        "zswap_trees", "xa_node_zswap", "swap_cont", "swap_table_free", "xa_node_free"),
    4: ("cluster_info", "swap_table", "memcg_table", "extend_table", "zswap_trees",
        "xa_node_zswap", "swap_table_free", "xa_node_free"),
}
BACKINGS = ("zswap", "disk", "zero")

# loop results
DEF R_FULL = -1
DEF R_NOMEM = -2

# what alloc_slot found missing (allocated with no lock held, then retried)
DEF NEED_TABLE = 1
DEF NEED_MEMCG = 2

ctypedef struct st_design:
    int phase
    uint64_t nr_slots
    uint64_t nr_clusters
    uint64_t nr_regions
    vst_cluster *clusters
    vst_cluster_ext *ext            # phase 4
    uint8_t *swap_map               # phase 1
    uint16_t *swap_cgroup           # phase 1
    uint64_t *zeromap               # phase 1
    vxa *zswap
    vxa cont                        # phase 1: counts past SWAP_MAP_MAX
    vxa_ctx ctx_zswap
    vxa_ctx ctx_cont
    vst_ctx tables
    vst_ctx memcg_tables
    vst_ctx extend_tables
    vswap_account acct[NR_ACCOUNTS]
    pthread_spinlock_t dev_lock
    uint64_t next_cluster
    int64_t used
    uint64_t next_handle
    long long calls
    vxa_stats *stats                # NR_STAT_SLOTS, on cache lines of their own
    char stats_space[(NR_STAT_SLOTS + 1) * 64]


# -- the kernel paths, in C ------------------------------------------------

cdef inline vxa_stats *st_stats(st_design *d) noexcept nogil:
    return &d.stats[vswap_this_thread() & (NR_STAT_SLOTS - 1)]

cdef inline vst_cluster *cluster_of(st_design *d, uint64_t e) noexcept nogil:
    return &d.clusters[e // SWAPFILE_CLUSTER]

cdef inline unsigned int ci_off(uint64_t e) noexcept nogil:
    return <unsigned int>(e % SWAPFILE_CLUSTER)

cdef inline uint64_t word_count(uint64_t w) noexcept nogil:
    return w >> ST_COUNT_SHIFT

cdef inline bint used_locked(st_design *d, uint64_t e) noexcept nogil:
    """Is the slot allocated?  The caller holds ci->lock."""
    if d.phase == 1:
        return d.swap_map[e] != 0
    return word_count(vst_get_locked(cluster_of(d, e), ci_off(e))) != 0

cdef inline int st_check(st_design *d, uint64_t e) noexcept nogil:
    """An allocated slot?  A racy read (READ_ONCE of swap_map in phase 1, a
    lock-free swap_table_get() in phase 4, not counted as a load)."""
    if e == 0:
        return E_ZERO
    if e >= d.nr_slots:
        return E_RANGE
    if d.phase == 1:
        if st_ld8(&d.swap_map[e]) == 0:
            return E_FREE
    elif word_count(vst_get(cluster_of(d, e), ci_off(e), NULL)) == 0:
        return E_FREE
    return E_OK

cdef inline void dev_lock(st_design *d, vxa_stats *st) noexcept nogil:
    pthread_spin_lock(&d.dev_lock)
    st_count(&st.user[1])

# -- the zero bit: the zeromap (phase 1), Z in the word (phase 4) -----------

cdef inline void zero_clear(st_design *d, uint64_t e, vxa_stats *st) noexcept nogil:
    """swap_zeromap_folio_clear(): an atomic bit operation on the zeromap
    (phase 1); __swap_table_clear_zero() under ci->lock (phase 4), taken
    only when a lock-free read sees Z set."""
    cdef vst_cluster *ci
    cdef uint64_t w
    if d.phase == 1:
        st_and64(&d.zeromap[e >> 6], ~(1ULL << (e & 63)))
        return
    ci = cluster_of(d, e)
    if not (vst_get(ci, ci_off(e), NULL) & ST_ZERO):
        return
    vst_lock(ci, st)
    w = vst_get_locked(ci, ci_off(e))
    if w & ST_ZERO:
        vst_set_locked(ci, ci_off(e), w & ~ST_ZERO)
    vst_unlock(ci)

cdef inline void zero_set(st_design *d, uint64_t e, vxa_stats *st) noexcept nogil:
    """swap_zeromap_folio_set(): the zeromap bit (phase 1, no lock) or
    __swap_table_set_zero() under ci->lock (phase 4)."""
    cdef vst_cluster *ci
    cdef uint64_t w
    if d.phase == 1:
        st_or64(&d.zeromap[e >> 6], 1ULL << (e & 63))
        return
    ci = cluster_of(d, e)
    vst_lock(ci, st)
    w = vst_get_locked(ci, ci_off(e))
    if word_count(w):
        vst_set_locked(ci, ci_off(e), w | ST_ZERO)
    vst_unlock(ci)

cdef inline bint zero_test(st_design *d, uint64_t e, vxa_stats *st) noexcept nogil:
    """The zero bit, with no lock (a counted lock-free load)."""
    if d.phase == 1:
        st_count(&st.lockless_loads)
        return (st_ld64(&d.zeromap[e >> 6]) >> (e & 63)) & 1
    return (vst_get(cluster_of(d, e), ci_off(e), st) & ST_ZERO) != 0

# -- counts ---------------------------------------------------------------

cdef inline uint64_t count_locked(st_design *d, uint64_t e) noexcept nogil:
    """swp_swapcount(): the count under ci->lock (phase 1: swap_map and
    the continuation; phase 4: the word's count, or the extend_table's when
    the word says SWP_TB_COUNT_MAX)."""
    cdef uint8_t m
    cdef uint64_t count
    if d.phase == 1:
        m = d.swap_map[e]
        count = m & 0x3F
        if m & COUNT_CONTINUED:
            count += vxa_load_locked(&d.cont, e) >> 1
        return count
    count = word_count(vst_get_locked(cluster_of(d, e), ci_off(e)))
    if count == ST_COUNT_MAX:
        count = d.ext[e // SWAPFILE_CLUSTER].extend_table[ci_off(e)]
    return count

cdef inline void extend_table_try_free(st_design *d, uint64_t e) noexcept nogil:
    """swap_extend_table_try_free(): no count left in the extend_table,
    it leaves the cluster (under ci->lock)."""
    cdef vst_cluster_ext *x = &d.ext[e // SWAPFILE_CLUSTER]
    cdef int i
    for i in range(SWAPFILE_CLUSTER):
        if x.extend_table[i]:
            return
    vst_obj_put(&d.extend_tables, x.extend_table)
    x.extend_table = NULL

cdef int set_count4_locked(st_design *d, uint64_t e, uint64_t count) noexcept nogil:
    """Phase 4 (swap_dup_entry_locked / swap_put_entry_locked): counts below
    SWP_TB_COUNT_MAX in the word, from it on in the extend_table; VST_EAGAIN
    (nothing changed) when the cluster needs an extend_table."""
    cdef vst_cluster *ci = cluster_of(d, e)
    cdef vst_cluster_ext *x = &d.ext[e // SWAPFILE_CLUSTER]
    cdef unsigned int off = ci_off(e)
    cdef uint64_t w = vst_get_locked(ci, off)
    cdef bint had = word_count(w) == ST_COUNT_MAX
    if count >= ST_COUNT_MAX:
        if x.extend_table == NULL:
            x.extend_table = <uint32_t *>vst_obj_get(&d.extend_tables)
            if x.extend_table == NULL:
                return VST_EAGAIN
        x.extend_table[off] = <uint32_t>count
        count = ST_COUNT_MAX
    vst_set_locked(ci, off, (w & ~(0xFULL << ST_COUNT_SHIFT)) | (count << ST_COUNT_SHIFT))
    if had and count < ST_COUNT_MAX:
        x.extend_table[off] = 0
        extend_table_try_free(d, e)
    return 0

cdef int set_count_locked(st_design *d, uint64_t e, uint64_t count, vxa_stats *st) noexcept nogil:
    """Write the count under ci->lock; VXA_EAGAIN / VST_EAGAIN when a node
    or an extend_table is needed (nothing changed): the caller drops the
    cluster lock, reserves one and retries."""
    cdef uint8_t m
    cdef uintptr_t old = 0
    cdef int rc = 0
    if d.phase != 1:
        return set_count4_locked(d, e, count)
    # phase 1: swap_map, past SWAP_MAP_MAX the continuation xarray (the
    # kernel's add_swap_count_continuation() pages)
    m = d.swap_map[e]
    if count > SWAP_MAP_MAX:
        vxa_lock(&d.cont, st)
        rc = vxa_store_locked(&d.cont, &d.ctx_cont, e, ((count - SWAP_MAP_MAX) << 1) | 1, &old)
        vxa_unlock(&d.cont)
        if rc:
            return rc
        st_st8(&d.swap_map[e], (m & SWAP_HAS_CACHE) | COUNT_CONTINUED | SWAP_MAP_MAX)
    else:
        if m & COUNT_CONTINUED:
            vxa_lock(&d.cont, st)
            vxa_store_locked(&d.cont, &d.ctx_cont, e, 0, &old)
            vxa_unlock(&d.cont)
        st_st8(&d.swap_map[e], (m & SWAP_HAS_CACHE) | <uint8_t>count)
    return 0

cdef int reserve_for(st_design *d, int rc) noexcept nogil:
    """Allocate, with no lock held, what a count write found missing (a
    continuation node in phase 1, an extend_table in phase 4)."""
    if rc != VXA_EAGAIN and rc != VST_EAGAIN:
        return rc
    if d.phase == 1:
        return vxa_reserve1(&d.ctx_cont)
    return vst_reserve1(&d.extend_tables)

# -- zswap ----------------------------------------------------------------

cdef inline uintptr_t zswap_erase(st_design *d, uint64_t e, vxa_stats *st) noexcept nogil:
    """zswap_invalidate(): xa_erase() under xa_lock; the old handle or 0."""
    cdef vxa *xa = &d.zswap[e >> SWAP_ADDRESS_SPACE_SHIFT]
    cdef uintptr_t old = 0
    vxa_lock(xa, st)
    vxa_store_locked(xa, &d.ctx_zswap, e, 0, &old)
    vxa_unlock(xa)
    return old >> 2

cdef inline int zswap_store(st_design *d, uint64_t e, uint64_t handle, uint64_t *old_handle,
                            vxa_stats *st) noexcept nogil:
    """zswap_store(): the zero bit cleared (swap_writeout), then xa_store()
    under xa_lock; -1 when out of memory (nothing stored)."""
    cdef uintptr_t old = 0
    cdef int rc
    zero_clear(d, e, st)
    rc = vxa_store(&d.zswap[e >> SWAP_ADDRESS_SPACE_SHIFT], &d.ctx_zswap, e,
                   <uintptr_t>handle << 2, &old, st)
    old_handle[0] = old >> 2
    return -1 if rc else 0

# -- release, allocation ----------------------------------------------------

cdef void release_locked(st_design *d, uint64_t e, vxa_stats *st) noexcept nogil:
    """The count reached zero: release everything, under ci->lock
    (swap_entries_free / __swap_cluster_free_entries: zswap_invalidate, the
    word cleared -- __swap_cache_clear_shadow --, the memcg record and the
    zero bit; the cluster's tables freed when it empties,
    swap_cluster_free_table())."""
    cdef vst_cluster *ci = cluster_of(d, e)
    cdef vst_cluster_ext *x
    zswap_erase(d, e, st)
    vst_set_locked(ci, ci_off(e), 0)
    if d.phase == 1:
        st_st16(&d.swap_cgroup[e], 0)
        st_and64(&d.zeromap[e >> 6], ~(1ULL << (e & 63)))
        st_st8(&d.swap_map[e], 0)
    else:
        d.ext[e // SWAPFILE_CLUSTER].memcg_table[ci_off(e)] = 0
    st_st16(&ci.count, ci.count - 1)        # read under the device lock only
    st_add64(&d.used, -1)
    if ci.count == 0:
        vst_table_release(ci, &d.tables)
        if d.phase != 1:
            x = &d.ext[e // SWAPFILE_CLUSTER]
            vst_obj_put(&d.memcg_tables, x.memcg_table)
            x.memcg_table = NULL
            vst_obj_put(&d.extend_tables, x.extend_table)
            x.extend_table = NULL

cdef int swap_free_one(st_design *d, uint64_t e, vxa_stats *st) noexcept nogil:
    """swap_free() / swap_put_entry_locked(): drop one reference under
    ci->lock; E_FREE if the slot was freed meanwhile."""
    cdef vst_cluster *ci = cluster_of(d, e)
    cdef uint64_t count
    vst_lock(ci, st)
    if not used_locked(d, e):
        vst_unlock(ci)
        return E_FREE
    count = count_locked(d, e) - 1
    set_count_locked(d, e, count, st)       # lowering a count never allocates
    if count == 0:
        release_locked(d, e, st)
    vst_unlock(ci)
    return E_OK

cdef inline int cluster_prepare(st_design *d, uint64_t c) noexcept nogil:
    """Under ci->lock: the cluster's tables for its first slot
    (swap_cluster_alloc_table(); after phase IV the memcg table with it).
    0, or what is missing from the free lists (nothing changed)."""
    cdef vst_cluster *ci = &d.clusters[c]
    cdef vst_cluster_ext *x
    if d.phase != 1:
        x = &d.ext[c]
        if x.memcg_table == NULL:
            x.memcg_table = <uint16_t *>vst_obj_get(&d.memcg_tables)
            if x.memcg_table == NULL:
                return NEED_MEMCG
    if vst_table_install(ci, &d.tables):
        if d.phase != 1 and ci.count == 0:
            vst_obj_put(&d.memcg_tables, d.ext[c].memcg_table)
            d.ext[c].memcg_table = NULL
        return NEED_TABLE
    return 0

cdef inline uint64_t first_free_locked(st_design *d, vst_cluster *ci, uint64_t first,
                                     uint64_t last) noexcept nogil:
    """The cluster's first free slot in first .. last - 1 (0 if none), under
    ci->lock: a zero swap_map byte (phase 1) or a zero table count (phase 4)."""
    cdef uint64_t s
    if d.phase == 1:
        for s in range(first, last):
            if d.swap_map[s] == 0:
                return s
        return 0
    for s in range(first, last):
        if word_count(ci.table.entries[s % SWAPFILE_CLUSTER]) == 0:
            return s
    return 0

cdef uint64_t alloc_slot_once(st_design *d, uint64_t folio, uint16_t memcg, int *need,
                              vxa_stats *st) noexcept nogil:
    """cluster_alloc_swap_entry() + __swap_cache_add_folio(), simplified:
    under the device lock, the first cluster with room from the last one
    used, then under its lock its tables (on first use) and its first free
    slot: count 1, the folio (0: the slot itself) in the word, the memcg
    recorded (phase 4: in the memcg table; phase 1 records swap_cgroup
    after).  0 when the device is full or (``*need`` set) a table must be
    allocated first."""
    cdef uint64_t k, c, first, last, cap, s, found = 0
    cdef vst_cluster *ci
    need[0] = 0
    dev_lock(d, st)
    for k in range(d.nr_clusters):
        c = (d.next_cluster + k) % d.nr_clusters
        first = c * SWAPFILE_CLUSTER
        last = min(first + SWAPFILE_CLUSTER, d.nr_slots)
        cap = last - first - (1 if c == 0 else 0)
        ci = &d.clusters[c]
        if st_ld16(&ci.count) >= cap:
            continue
        vst_lock(ci, st)
        need[0] = cluster_prepare(d, c)
        if need[0]:
            vst_unlock(ci)
            break
        found = first_free_locked(d, ci, max(first, 1), last)
        if found:
            s = found
            if folio == 0:
                folio = s
            if d.phase == 1:
                st_st8(&d.swap_map[s], SWAP_HAS_CACHE | 1)
                vst_set_locked(ci, ci_off(s), folio << 2)
            else:
                vst_set_locked(ci, ci_off(s), (1ULL << ST_COUNT_SHIFT) | (folio << 2) | 2)
                d.ext[c].memcg_table[ci_off(s)] = memcg
            st_st16(&ci.count, ci.count + 1)
            st_add64(&d.used, 1)
        vst_unlock(ci)
        if found:
            d.next_cluster = c
            break
    pthread_spin_unlock(&d.dev_lock)
    return found

cdef int64_t alloc_slot(st_design *d, uint64_t folio, uint16_t memcg, vxa_stats *st) noexcept nogil:
    """folio_alloc_swap(): a slot with the folio cached and the memcg
    recorded, allocating tables with no lock held as needed; the slot,
    R_FULL or R_NOMEM."""
    cdef int need = 0
    cdef uint64_t s
    while True:
        s = alloc_slot_once(d, folio, memcg, &need, st)
        if s:
            if d.phase == 1:
                st_st16(&d.swap_cgroup[s], memcg)        # swap_cgroup_record()
            return <int64_t>s
        if need == 0:
            return R_FULL
        if vst_reserve1(&d.tables if need == NEED_TABLE else &d.memcg_tables):
            return R_NOMEM

cdef int cache_del(st_design *d, uint64_t e, uint64_t folio, uint64_t shadow, uint64_t *cur,
                   vxa_stats *st) noexcept nogil:
    """swap_cache_del_folio() / __swap_cache_del_folio() under ci->lock: the
    folio's word becomes its shadow (phase 4 keeping count and Z), and in
    phase 1 SWAP_HAS_CACHE is dropped (put_swap_folio) in the same hold.
    1 (nothing changed, *cur the word's entry) if ``folio`` is not the
    cached one."""
    cdef vst_cluster *ci = cluster_of(d, e)
    cdef uint64_t w, flags = 0
    vst_lock(ci, st)
    w = vst_get_locked(ci, ci_off(e)) if used_locked(d, e) else 0
    if d.phase != 1:
        flags = w & ST_FLAGS_MASK
    cur[0] = w & ~flags
    if cur[0] != (folio << 2 | (0 if d.phase == 1 else 2)):
        vst_unlock(ci)
        return 1
    vst_set_locked(ci, ci_off(e), flags | (shadow << 1) | 1)
    if d.phase == 1:
        st_st8(&d.swap_map[e], d.swap_map[e] & ~SWAP_HAS_CACHE)
    vst_unlock(ci)
    return 0

cdef int cache_add(st_design *d, uint64_t e, uint64_t folio, uint64_t *old,
                   vxa_stats *st) noexcept nogil:
    """swapcache_prepare() then swap_cache_add_folio() (phase 1: two holds
    of ci->lock, SWAP_HAS_CACHE set in the first; phase 4: one hold,
    __swap_cache_add_check() then the word).  E_FREE, 1 when a folio is
    cached already, or 0 with *old the word replaced."""
    cdef vst_cluster *ci = cluster_of(d, e)
    cdef uint64_t w
    cdef unsigned int off = ci_off(e)
    vst_lock(ci, st)
    if not used_locked(d, e):
        vst_unlock(ci)
        return E_FREE
    if d.phase == 1:
        if d.swap_map[e] & SWAP_HAS_CACHE:
            vst_unlock(ci)
            return 1
        st_st8(&d.swap_map[e], d.swap_map[e] | SWAP_HAS_CACHE)
        vst_unlock(ci)
        vst_lock(ci, st)
        old[0] = vst_get_locked(ci, off)
        vst_set_locked(ci, off, folio << 2)
        vst_unlock(ci)
        return 0
    w = vst_get_locked(ci, off)
    if (w & 3) == 2:
        vst_unlock(ci)
        return 1
    old[0] = w & ~ST_FLAGS_MASK
    vst_set_locked(ci, off, (w & ST_FLAGS_MASK) | (folio << 2) | 2)
    vst_unlock(ci)
    return 0

cdef inline uint64_t cache_entry(st_design *d, uint64_t e, vxa_stats *st) noexcept nogil:
    """swap_table_get(): the word's swap cache entry, with no lock."""
    cdef uint64_t w = vst_get(cluster_of(d, e), ci_off(e), st)
    return w & ~ST_FLAGS_MASK if d.phase != 1 else w

cdef int64_t swap_out_loop(st_design *d, uint64_t *out, uint64_t count, int backing,
                           uint16_t memcg, vxa_stats *st) noexcept nogil:
    """swap_out_many in C: folio_alloc_swap, the backing, the swap cache
    left with a shadow, page by page.  R_FULL / R_NOMEM with every page of
    the call released."""
    cdef uint64_t k, s, h, old_h, cur = 0
    cdef int64_t rc = 0, got
    for k in range(count):
        got = alloc_slot(d, 0, memcg, st)
        if got < 0:
            rc = got
            break
        s = <uint64_t>got
        out[k] = s
        if backing == 0:
            h = st_addu64(&d.next_handle, 1) % ST_VALUE_MAX + 1
            if zswap_store(d, s, h, &old_h, st):
                rc = R_NOMEM
                k += 1
                break
        elif backing == 1:
            zswap_erase(d, s, st)
            zero_clear(d, s, st)
        else:
            zswap_erase(d, s, st)
            zero_set(d, s, st)
        cache_del(d, s, s, s, &cur, st)
    if rc:
        for s in range(k):
            swap_free_one(d, out[s], st)
    return rc

cdef void st_free(st_design *d) noexcept nogil:
    """Free every structure (no call may be in flight)."""
    cdef uint64_t r
    if d.zswap != NULL:
        for r in range(d.nr_regions):
            vxa_destroy(&d.zswap[r], &d.ctx_zswap)
        vswap_account_free(&d.acct[A_ZSWAP_XA], d.zswap, d.nr_regions * XARRAY_SIZE)
    vxa_destroy(&d.cont, &d.ctx_cont)
    vxa_ctx_destroy(&d.ctx_zswap)
    vxa_ctx_destroy(&d.ctx_cont)
    if d.clusters != NULL:
        for r in range(d.nr_clusters):
            vst_cluster_destroy(&d.clusters[r], &d.tables)
        vswap_account_free(&d.acct[A_CLUSTER_INFO], d.clusters,
                           d.nr_clusters * sizeof(vst_cluster))
    if d.ext != NULL:
        for r in range(d.nr_clusters):
            vst_obj_destroy(&d.memcg_tables, d.ext[r].memcg_table)
            vst_obj_destroy(&d.extend_tables, d.ext[r].extend_table)
        vswap_account_free(&d.acct[A_CLUSTER_INFO], d.ext,
                           d.nr_clusters * sizeof(vst_cluster_ext))
    vst_ctx_destroy(&d.tables)
    vst_ctx_destroy(&d.memcg_tables)
    vst_ctx_destroy(&d.extend_tables)
    vswap_account_free(&d.acct[A_SWAP_MAP], d.swap_map, d.nr_slots)
    vswap_account_free(&d.acct[A_SWAP_CGROUP], d.swap_cgroup, (d.nr_slots + 1) // 2 * 4)
    vswap_account_free(&d.acct[A_ZEROMAP], d.zeromap, (d.nr_slots + 63) // 64 * 8)
    pthread_spin_destroy(&d.dev_lock)
    PyMem_RawFree(d)

cdef st_design *st_new(uint64_t nr_slots, int phase) noexcept nogil:
    """swapon: the static structures (cluster_info; phase 1 also the
    vzalloc'd swap_map, swap_cgroup and bitmap_zalloc'd zeromap) and the
    zswap trees; NULL when out of memory."""
    cdef st_design *d = <st_design *>PyMem_RawCalloc(1, sizeof(st_design))
    cdef uint64_t r
    cdef bint bad
    if d == NULL:
        return NULL
    d.stats = <vxa_stats *>((<uintptr_t>d.stats_space + 63) & ~(<uintptr_t>63))
    d.phase = phase
    d.nr_slots = nr_slots
    d.nr_clusters = (nr_slots + SWAPFILE_CLUSTER - 1) // SWAPFILE_CLUSTER
    d.nr_regions = (nr_slots + (1 << SWAP_ADDRESS_SPACE_SHIFT) - 1) >> SWAP_ADDRESS_SPACE_SHIFT
    pthread_spin_init(&d.dev_lock, 0)
    vxa_init(&d.cont)
    vxa_ctx_init(&d.ctx_zswap, &d.acct[A_NODE_ZSWAP], &d.acct[A_NODE_FREE])
    vxa_ctx_init(&d.ctx_cont, &d.acct[A_CONT], &d.acct[A_NODE_FREE])
    vst_ctx_init(&d.tables, SWAP_TABLE_SIZE, &d.acct[A_SWAP_TABLE], &d.acct[A_TABLE_FREE])
    vst_ctx_init(&d.memcg_tables, MEMCG_TABLE_SIZE, &d.acct[A_MEMCG_TABLE], &d.acct[A_TABLE_FREE])
    vst_ctx_init(&d.extend_tables, EXTEND_TABLE_SIZE, &d.acct[A_EXTEND_TABLE],
                 &d.acct[A_TABLE_FREE])
    d.clusters = <vst_cluster *>vswap_account_calloc(&d.acct[A_CLUSTER_INFO],
                                                     d.nr_clusters * sizeof(vst_cluster))
    d.zswap = <vxa *>vswap_account_calloc(&d.acct[A_ZSWAP_XA], d.nr_regions * XARRAY_SIZE)
    bad = d.clusters == NULL or d.zswap == NULL
    if phase == 1:
        d.swap_map = <uint8_t *>vswap_account_calloc(&d.acct[A_SWAP_MAP], nr_slots)
        d.swap_cgroup = <uint16_t *>vswap_account_calloc(&d.acct[A_SWAP_CGROUP],
                                                         (nr_slots + 1) // 2 * 4)
        d.zeromap = <uint64_t *>vswap_account_calloc(&d.acct[A_ZEROMAP],
                                                     (nr_slots + 63) // 64 * 8)
        bad = bad or d.swap_map == NULL or d.swap_cgroup == NULL or d.zeromap == NULL
    else:
        d.ext = <vst_cluster_ext *>vswap_account_calloc(&d.acct[A_CLUSTER_INFO],
                                                        d.nr_clusters * sizeof(vst_cluster_ext))
        bad = bad or d.ext == NULL
    if d.clusters != NULL:
        for r in range(d.nr_clusters):
            vst_cluster_init(&d.clusters[r])
    if d.zswap != NULL:
        for r in range(d.nr_regions):
            vxa_init(&d.zswap[r])
    if bad:
        st_free(d)
        return NULL
    return d


# -- arguments -------------------------------------------------------------

cdef str entry_message(object entry, int why, uint64_t nr_slots, int phase):
    entry = int_arg(entry, "swap entry")
    if why == E_ZERO:
        return "swap entry 0 is the device's header page, never allocated"
    if why == E_NEGATIVE:
        return "swap entry %d is negative; entries are unsigned" % entry
    if why == E_RANGE:
        return "swap entry %d is beyond the device (nr_slots is %d)" % (entry, nr_slots)
    if phase == 1:
        return "swap entry %d is not allocated (swap_map is 0)" % entry
    return "swap entry %d is not allocated (its swap table count is 0)" % entry

cdef inline int64_t first_bad(st_design *d, uint64_t *e, Py_ssize_t n, int *why) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        why[0] = st_check(d, e[i])
        if why[0]:
            return i
    return -1


@cython.no_gc_clear
cdef class SwapTableBase:
    """The swap-table designs' compiled core; a design's class sets
    ``name`` and ``phase`` (1: phase I; 4: after phases III-IV).  See
    docs/designs.md and the design modules' headers.

    Thread-safe; ``close()`` waits for the calls in flight.  Every method
    converts its arguments (which may run Python code) before it takes the
    design with ``_enter()``, and runs no Python code until it leaves.
    """

    cdef st_design *d
    cdef readonly uint64_t nr_slots
    cdef int phase_

    name = None
    phase = 0

    def __cinit__(self, nr_slots):
        phase = type(self).phase
        if phase not in (1, 4):
            raise TypeError("SwapTableBase is the core of SwapTableP1Design and SwapTableDesign;"
                            " use one of them")
        nr_slots = int_arg(nr_slots, "nr_slots")
        if not 1 <= nr_slots <= (1 << 32):
            raise ValueError("nr_slots must be in 1 .. 2**32, not %d" % nr_slots)
        self.nr_slots = nr_slots
        self.phase_ = phase
        with nogil:
            self.d = st_new(self.nr_slots, self.phase_)
        if self.d == NULL:
            raise MemoryError("no memory for the swap metadata of %d slots" % nr_slots)

    def __dealloc__(self):
        self._close()

    cdef void _close(self) noexcept:
        cdef st_design *d = self.d
        if d == NULL:
            return
        self.d = NULL                   # later calls find the design closed
        with nogil:
            vswap_wait_zero(&d.calls)
            st_free(d)

    def close(self):
        """Free every structure once the calls in flight on other threads
        have finished; closing again does nothing; later calls raise
        ValueError."""
        self._close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._close()

    cdef st_design *_enter(self) except NULL:
        cdef st_design *d = self.d
        if d == NULL:
            raise ValueError("%s design is closed" % self.name)
        vswap_seq_add(&d.calls, 1)
        return d

    cdef int _bad(self, st_design *d, object entry, int why) except -1:
        """Leave the call and raise InvalidEntryError."""
        vswap_seq_add(&d.calls, -1)
        raise InvalidEntryError(entry_message(entry, why, self.nr_slots, self.phase_))

    cdef st_design *_enter_entry(self, object entry, int kind, uint64_t val) except NULL:
        """_enter() and check the entry is an allocated slot."""
        cdef st_design *d = self._enter()
        cdef int why = kind if kind else st_check(d, val)
        if why:
            self._bad(d, entry, why)
        return d

    # -- allocation ---------------------------------------------------------

    def folio_alloc_swap(self, folio, memcg=0):
        """folio_alloc_swap() (mm/swapfile.c): a slot from the cluster
        allocator (device lock, then the cluster lock, under which the
        cluster's tables are set up on first use and the folio goes into the
        swap table word: __swap_cache_add_folio), count 1, the memcg
        recorded.  ``SwapFullError`` when no slot is left."""
        cdef uint64_t f = value_arg(folio, "folio", 1)
        cdef uint16_t m = memcg_arg(memcg)
        cdef st_design *d = self._enter()
        cdef int64_t s, used
        with nogil:
            s = alloc_slot(d, f, m, st_stats(d))
        used = d.used
        vswap_seq_add(&d.calls, -1)
        if s == R_FULL:
            raise SwapFullError("no free swap slot left (nr_slots is %d, %d used)"
                                % (self.nr_slots, used))
        if s == R_NOMEM:
            raise MemoryError("no memory for a swap table")
        return s

    # -- swap cache ---------------------------------------------------------

    def swap_cache_get_folio(self, entry):
        """swap_cache_get_folio(): swap_table_get() with no lock; the cached
        folio or None."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef st_design *d = self._enter_entry(entry, kind, val)
        cdef uint64_t e = cache_entry(d, val, st_stats(d))
        vswap_seq_add(&d.calls, -1)
        if e == 0 or e & 1:
            return None
        return e >> 2

    def swap_cache_get_shadow(self, entry):
        """swap_cache_get_shadow(): swap_table_get() with no lock; the
        shadow or None."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef st_design *d = self._enter_entry(entry, kind, val)
        cdef uint64_t e = cache_entry(d, val, st_stats(d))
        vswap_seq_add(&d.calls, -1)
        if e & 1:
            return e >> 1
        return None

    def swap_cache_add_folio(self, entry, folio):
        """swapcache_prepare() + swap_cache_add_folio() under the cluster
        lock (-EEXIST -> SwapCacheError): returns the shadow replaced, or
        None."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef uint64_t f = value_arg(folio, "folio", 1)
        cdef st_design *d = self._enter_entry(entry, kind, val)
        cdef uint64_t old = 0
        cdef int rc = cache_add(d, val, f, &old, st_stats(d))
        if rc == E_FREE:
            self._bad(d, entry, E_FREE)
        vswap_seq_add(&d.calls, -1)
        if rc:
            raise SwapCacheError("swap entry %d already has a folio in the swap cache" % val)
        if old & 1:
            return old >> 1
        return None

    def swap_cache_del_folio(self, entry, folio, shadow=0):
        """swap_cache_del_folio(): under the cluster lock the folio's word
        becomes its shadow.  ``SwapCacheError`` if ``folio`` is not the
        cached one."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef uint64_t f = value_arg(folio, "folio", 1)
        cdef uint64_t sh = value_arg(shadow, "shadow", 0)
        cdef st_design *d = self._enter_entry(entry, kind, val)
        cdef uint64_t cur = 0
        cdef int rc = cache_del(d, val, f, sh, &cur, st_stats(d))
        vswap_seq_add(&d.calls, -1)
        if rc:
            raise SwapCacheError(
                "folio %d is not the one in the swap cache of entry %d (%s)"
                % (f, val, "folio %d" % (cur >> 2) if cur and not cur & 1 else "no folio"))

    # -- zswap --------------------------------------------------------------

    def zswap_entry_store(self, entry, handle):
        """zswap_store(): xa_store() into the entry's zswap tree under its
        xa_lock (the zero bit cleared first, as swap_writeout does);
        returns the handle replaced, or None."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef uint64_t h = value_arg(handle, "handle", 1)
        cdef st_design *d = self._enter_entry(entry, kind, val)
        cdef uint64_t old = 0
        cdef int rc = zswap_store(d, val, h, &old, st_stats(d))
        vswap_seq_add(&d.calls, -1)
        if rc:
            raise MemoryError("no memory for a zswap tree node")
        return old if old else None

    def zswap_entry_load(self, entry):
        """zswap_load(): xa_load() with no lock; the handle or None."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef st_design *d = self._enter_entry(entry, kind, val)
        cdef uintptr_t e = vxa_load(&d.zswap[val >> SWAP_ADDRESS_SPACE_SHIFT], val, st_stats(d))
        vswap_seq_add(&d.calls, -1)
        return (e >> 2) if e else None

    def zswap_entry_erase(self, entry):
        """zswap_invalidate(): xa_erase() under xa_lock; the handle or None."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef st_design *d = self._enter_entry(entry, kind, val)
        cdef uintptr_t old = zswap_erase(d, val, st_stats(d))
        vswap_seq_add(&d.calls, -1)
        return old if old else None

    def zswap_empty(self):
        """True when no zswap tree holds an entry (xa_empty on each, no lock)."""
        cdef st_design *d = self._enter()
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
        """swap_writeout() of a zero-filled folio: the zero bit set (the
        zeromap, or Z under the cluster lock); any zswap entry is erased
        (the page has one backing)."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef st_design *d = self._enter_entry(entry, kind, val)
        cdef vxa_stats *st = st_stats(d)
        zswap_erase(d, val, st)
        zero_set(d, val, st)
        vswap_seq_add(&d.calls, -1)

    def is_zero(self, entry):
        """swap_zeromap_batch() of one entry / __swap_table_test_zero(): the
        zero bit, read with no lock."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef st_design *d = self._enter_entry(entry, kind, val)
        cdef bint z = zero_test(d, val, st_stats(d))
        vswap_seq_add(&d.calls, -1)
        return z

    def swap_writeout(self, entry):
        """swap_writeout(): the page goes to its slot on disk; the zero bit
        is cleared and any zswap entry erased (xa_lock).  Returns the slot,
        which is the entry itself."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef st_design *d = self._enter_entry(entry, kind, val)
        cdef vxa_stats *st = st_stats(d)
        zswap_erase(d, val, st)
        zero_clear(d, val, st)
        vswap_seq_add(&d.calls, -1)
        return val

    def get_slot(self, entry):
        """The disk slot of an allocated entry: the entry itself (a
        lock-free read)."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef st_design *d = self._enter_entry(entry, kind, val)
        st_count(&st_stats(d).lockless_loads)
        vswap_seq_add(&d.calls, -1)
        return val

    # -- counts -------------------------------------------------------------

    def swap_duplicate(self, entry):
        """folio_dup_swap() / swap_dup_entries(): one more reference, under
        the cluster lock (the lock dropped to allocate an extend_table or a
        continuation, then retried); returns the new count."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef st_design *d = self._enter_entry(entry, kind, val)
        cdef vxa_stats *st = st_stats(d)
        cdef vst_cluster *ci = cluster_of(d, val)
        cdef uint64_t count
        cdef int rc
        while True:
            vst_lock(ci, st)
            if not used_locked(d, val):
                vst_unlock(ci)
                self._bad(d, entry, E_FREE)
            count = count_locked(d, val) + 1
            if count > SWAP_COUNT_LIMIT:
                vst_unlock(ci)
                vswap_seq_add(&d.calls, -1)
                raise ValueError("swap count of entry %d would exceed 2**31 - 1" % val)
            rc = set_count_locked(d, val, count, st)
            vst_unlock(ci)
            if rc == 0:
                break
            rc = reserve_for(d, rc)             # no lock held
            if rc:
                break
        vswap_seq_add(&d.calls, -1)
        if rc:
            raise MemoryError("no memory for a swap count table")
        return count

    def swap_count(self, entry):
        """swp_swapcount(): the count, read under the cluster lock."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef st_design *d = self._enter_entry(entry, kind, val)
        cdef vst_cluster *ci = cluster_of(d, val)
        cdef uint64_t count
        vst_lock(ci, st_stats(d))
        if not used_locked(d, val):
            vst_unlock(ci)
            self._bad(d, entry, E_FREE)
        count = count_locked(d, val)
        vst_unlock(ci)
        vswap_seq_add(&d.calls, -1)
        return count

    def swap_free(self, entry):
        """swap_free() / swap_put_entry_locked(): drop one reference under
        the cluster lock; at zero the slot and all it holds are released."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef st_design *d = self._enter_entry(entry, kind, val)
        if swap_free_one(d, val, st_stats(d)):
            self._bad(d, entry, E_FREE)
        vswap_seq_add(&d.calls, -1)

    # -- loops (C, without the GIL) -----------------------------------------

    cdef int _check_entries(self, st_design *d, uint64_t *e, Py_ssize_t n) except -1:
        cdef int why = 0
        cdef int64_t i
        with nogil:
            i = first_bad(d, e, n, &why)
        if i >= 0:
            vswap_seq_add(&d.calls, -1)
            raise InvalidEntryError("entries[%d]: %s" % (
                i, entry_message(e[i], why, self.nr_slots, self.phase_)))
        return 0

    def zswap_entry_store_many(self, entries, handles, batch=False):
        """zswap_entry_store of each page (one xa_lock each, or one per run
        in the same tree with ``batch=True``; the zero bits cleared first);
        returns how many replaced a handle."""
        cdef Py_buffer ev, hv
        cdef st_design *d
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
                st = st_stats(d)
                i = 0
                while i < n and rc == 0:
                    j = i + 1
                    if b:
                        while j < n and (e[j] >> SWAP_ADDRESS_SPACE_SHIFT) == (e[i] >> SWAP_ADDRESS_SPACE_SHIFT):
                            j += 1
                    for k in range(i, j):
                        zero_clear(d, e[k], st)
                    xa = &d.zswap[e[i] >> SWAP_ADDRESS_SPACE_SHIFT]
                    vxa_lock(xa, st)
                    k = i
                    while k < j:
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
        cdef st_design *d
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
                st = st_stats(d)
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
        cdef st_design *d
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
                st = st_stats(d)
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
        is its entry, its shadow the entry too.  ``SwapFullError``
        (every page of the call released) when the device fills up."""
        cdef int64_t c, rc, used
        cdef int bk
        cdef uint16_t m
        cdef st_design *d
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
                rc = swap_out_loop(d, o, c, bk, m, st_stats(d))
            used = d.used
            vswap_seq_add(&d.calls, -1)
        finally:
            PyBuffer_Release(&ov)
        if rc == R_FULL:
            raise SwapFullError("no free swap slot left (nr_slots is %d, %d used)"
                                % (self.nr_slots, used))
        if rc == R_NOMEM:
            raise MemoryError("no memory for a swap table or an xarray node")
        return out

    def swap_free_many(self, entries):
        """swap_free of each entry (checked first: nothing is freed if one is
        not allocated)."""
        cdef Py_buffer ev
        cdef st_design *d
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
                st = st_stats(d)
                for k in range(n):
                    swap_free_one(d, e[k], st)
            vswap_seq_add(&d.calls, -1)
        finally:
            PyBuffer_Release(&ev)

    # -- introspection ------------------------------------------------------

    def metadata_bytes(self):
        """Bytes of metadata held now, from the allocation counters (static
        structures and the free lists included)."""
        cdef st_design *d = self._enter()
        cdef long long total = 0
        cdef int a
        for a in range(NR_ACCOUNTS):
            total += vswap_account_bytes(&d.acct[a])
        vswap_seq_add(&d.calls, -1)
        return total

    def stats(self):
        """Counters and byte counts; see docs/designs.md."""
        cdef st_design *d = self._enter()
        cdef unsigned long long ll = 0, lr = 0, lk = 0, xl = 0, cl = 0, dl = 0
        cdef long long objs = 0
        cdef long long nbytes[NR_ACCOUNTS]
        cdef int64_t used
        cdef int a
        # Everything read into C locals before any Python object is made
        # (which may run Python code): no pointer kept across it.
        for a in range(NR_STAT_SLOTS):
            ll += st_ldu64(&d.stats[a].lockless_loads)
            lr += st_ldu64(&d.stats[a].load_retries)
            lk += st_ldu64(&d.stats[a].locked_loads)
            xl += st_ldu64(&d.stats[a].lock_acquisitions)
            cl += st_ldu64(&d.stats[a].user[0])
            dl += st_ldu64(&d.stats[a].user[1])
        for a in range(NR_ACCOUNTS):
            nbytes[a] = vswap_account_bytes(&d.acct[a])
            objs += st_account_objects(&d.acct[a])
        used = d.used
        vswap_seq_add(&d.calls, -1)
        b = {}
        for a in range(NR_ACCOUNTS):
            b[_ACCOUNTS[a]] = nbytes[a]
        s = {
            "design": self.name,
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
        for k in _STRUCTURES[self.phase_]:
            s["bytes_" + k] = b[k]
        s["bytes_xa_node"] = b["xa_node_zswap"]
        return s

    def __len__(self):
        cdef st_design *d = self._enter()
        cdef int64_t used = d.used
        vswap_seq_add(&d.calls, -1)
        return used

    def __repr__(self):
        if self.d == NULL:
            return "<%s closed core=compiled>" % type(self).__name__
        return "<%s nr_slots=%d used=%d bytes=%d core=compiled>" % (
            type(self).__name__, self.nr_slots, len(self), self.metadata_bytes())
