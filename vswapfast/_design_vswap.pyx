# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The ``vswap`` design: the virtual swap space series, v6 (May 2026).

Models mm/vswap.c as the v6 series ends up (Nhat Pham, "[PATCH v6 00/22]
Virtual Swap Space", based on 6.19), with the zswap entry in the descriptor
(patch 11, "zswap: move zswap entry management to the virtual swap
descriptor", and the union of the final layout):

- ``struct swp_desc`` (24 bytes): ``union { swp_slot_t slot; struct
  zswap_entry *zswap_entry; }``, ``union { struct folio *swap_cache; void
  *shadow; }``, ``unsigned int swap_count``, ``unsigned short memcgid:16``,
  ``bool in_swapcache:1``, ``enum swap_type type:2`` (VSWAP_SWAPFILE,
  VSWAP_ZERO, VSWAP_ZSWAP, VSWAP_FOLIO).
- ``struct vswap_cluster``: ``spinlock_t lock``, ``union { rcu_head;
  list_head list; }``, ``unsigned long id``, ``count:10, order:4, cached:1,
  full:1``, ``refcount_t refcnt``, ``DECLARE_BITMAP(bitmap, 512)`` and the
  512 descriptors inline: 12,392 bytes, kvzalloc'd by ``vswap_alloc()`` when
  no cached or partial cluster has room and kvfree_rcu'd by
  ``vswap_cluster_free()`` when its refcount drops to zero.
- ``vswap_cluster_map``: ``DEFINE_XARRAY_FLAGS(vswap_cluster_map,
  XA_FLAGS_TRACK_FREE)``, cluster id -> cluster, ids from 0 (``xa_alloc``
  finds the lowest free one; cluster 0 never hands out its slot 0, so entry
  0 is never a virtual slot).  Its xa_lock is also the allocator's global
  lock (the partial cluster list).  The xarray is xarray.h's (576-byte
  nodes), read lock-free.
- ``vswap_iter()``: ``xa_load`` of the cluster under RCU (no lock), then
  ``spin_lock(&cluster->lock)`` and the slot's bitmap bit: every descriptor
  read and write holds the cluster lock -- ``swap_cache_get_folio()``,
  ``swap_cache_get_shadow()``, ``zswap_entry_load()``, ``swp_swapcount()``,
  ``swap_zeromap_batch()`` and ``swp_entry_to_swp_slot()`` included.
- Physical swap (the series' swap_map replacement): an allocated bitmap and
  a bad bitmap of one bit per device slot, ``struct swap_cluster_info`` (32
  bytes per 512 slots: lock, count, flags, order, ``table``, list) and, as
  the reverse map, the cluster's swap table: ``vswap_rmap_set()`` writes the
  virtual entry into ``ci->table`` under ``ci->lock`` and
  ``swp_slot_to_swp_entry()`` reads it with ``swap_table_get()``.  A table
  (512 x 8 bytes) exists only while its cluster has allocated slots
  (swap table phase I's dynamic tables), so only disk-backed slots cost one.

Departures (also in docs/designs.md): the per-CPU cached cluster is one
cluster for the whole design under one allocator lock (the per-CPU
``local_lock``), so threads share it; virtual slots are limited to the
device's usable slots (``nr_slots - 1``), the model's own bound (v6 caps
them at ``MAX_VSWAP`` only); ``swap_count`` starts at 1 with the folio in the
swap cache (``folio_alloc_swap`` and the unmap's ``swap_duplicate`` in one
step) and a count reaching zero releases the entry, its folio included;
``zswap_empty()`` says whether any descriptor holds a zswap entry (v6's
returns ``xa_empty(&vswap_cluster_map)``); a zswap store or ``set_zero`` on a
disk-backed descriptor releases its slot and a writeout releases its zswap
entry (one backing per descriptor); the device's slot allocator is the
xarray design's simple scan under the device lock; freed clusters stay on a
spare list (``bytes_vswap_cluster_free``, type-stable memory for the
lock-free map lookups, where the kernel waits for an RCU grace period), as
freed map nodes do (``bytes_cluster_map_free``); kvzalloc's rounding of a
12,392-byte cluster up to 16 KiB is not counted.

Lock ordering:
    allocator lock (per-CPU local_lock)  ->  vswap cluster lock
    vswap cluster lock  ->  vswap_cluster_map xa_lock  ->  map node free list
    vswap_cluster_map xa_lock  ->  vswap cluster lock with spin_trylock only
    device lock (si->lock)  ->  swap cluster lock (ci->lock)
A vswap cluster lock and a swap cluster lock are never held together (the
vswap lock is dropped before a physical slot is allocated or freed, as
``vswap_free()`` drops it around ``release_backing()``); no two cluster locks
of either kind are held at once.  Single-entry calls keep the GIL; the loops
release it; nothing is allocated, and no lock holder waits for the GIL.
"""

cimport cython
from cpython.mem cimport PyMem_RawCalloc, PyMem_RawFree
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t, uintptr_t
from libc.string cimport memset

from vswapfast.vswap_account cimport (
    vswap_account, vswap_account_add, vswap_account_calloc, vswap_account_free,
    vswap_account_bytes,
)
from vswapfast._xarray cimport (
    vxa, vxa_ctx, vxa_stats, vxa_init, vxa_ctx_init, vxa_ctx_destroy, vxa_lock, vxa_unlock,
    vxa_store_locked, vxa_load, vxa_load_locked, vxa_destroy, vxa_reserve1,
    pthread_spinlock_t, VXA_EAGAIN,
)

import array as _array

from vswapfast.errors import InvalidEntryError, SwapCacheError, SwapFullError
# the stats() dict and its keys, one definition for both cores
from vswapfast.pure.design_vswap import stats_dict as _stats_dict

from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_C_CONTIGUOUS
from vswapfast._design_args cimport (
    E_OK, E_ZERO, E_NEGATIVE, E_RANGE, E_FREE, int_arg, value_arg, memcg_arg, entry_arg,
    get_u64_buffer, get_u64_pair, check_handles, count_arg, check_backing,
    cluster_count_peek, cluster_count_set,
)

__all__ = ["VswapDesign", "BACKINGS"]

cdef extern from "pthread.h" nogil:
    int pthread_spin_init(pthread_spinlock_t *lock, int pshared)
    int pthread_spin_destroy(pthread_spinlock_t *lock)
    int pthread_spin_lock(pthread_spinlock_t *lock)
    int pthread_spin_trylock(pthread_spinlock_t *lock)
    int pthread_spin_unlock(pthread_spinlock_t *lock)

cdef extern from "vswap_sync.h" nogil:
    int vswap_this_thread()
    long long vswap_seq_add(long long *p, long long v)
    void vswap_wait_zero(long long *p)

cdef extern from * nogil:
    """
    #define MAX_CLUSTER_ID 0xFFFFFFFFULL   /* xa_limit of vswap_cluster_map: U32_MAX */
    #define NO_ID (~0UL)                   /* a cluster in no map slot (spare) */
    #define VALUE_MAX ((1ULL << 48) - 1)
    #define vd_ld(p)        __atomic_load_n((p), __ATOMIC_RELAXED)
    #define vd_st(p, v)     __atomic_store_n((p), (v), __ATOMIC_RELAXED)
    #define vd_add(p, v)    __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)
    #define vd_cas(p, o, n) __atomic_compare_exchange_n((p), (o), (n), 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)
    #define vd_xchg(p, v)   __atomic_exchange_n((p), (v), __ATOMIC_ACQ_REL)
    /* a thread slot's own counter: relaxed load and store (vxa_stat_inc) */
    #define vd_count(p)     __atomic_store_n((p), __atomic_load_n((p), __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED)
    static inline long long vd_objects(const vswap_account *a)
    { return __atomic_load_n(&a->objects, __ATOMIC_RELAXED); }

    /* enum swap_type (mm/vswap.c, v6) */
    enum { VD_SWAPFILE = 0, VD_ZERO = 1, VD_ZSWAP = 2, VD_FOLIO = 3 };

    /* struct swp_desc (mm/vswap.c, v6): the two unions are 8-byte words
     * here -- backing: the slot (SWAPFILE) or the zswap entry (ZSWAP, the
     * handle << 2 as a pointer); cache: the folio (folio << 2) or a shadow
     * (xa_mk_value: shadow << 1 | 1). */
    typedef struct {
        uint64_t backing;
        uint64_t cache;
        unsigned int swap_count;
        unsigned short memcgid : 16;
        unsigned char in_swapcache : 1;
        unsigned char type : 2;
    } vd_desc;
    _Static_assert(sizeof(vd_desc) == 24, "struct swp_desc is 24 bytes");

    /* struct list_head */
    typedef struct vd_list { struct vd_list *next, *prev; } vd_list;

    /* struct vswap_cluster (mm/vswap.c, v6), descriptors inline. */
    typedef struct vd_cluster {
        pthread_spinlock_t lock;
        union {
            struct { void *next; void (*func)(void *); } rcu;
            vd_list list;
        };
        unsigned long id;
        unsigned int count : 10;
        unsigned int order : 4;
        unsigned int cached : 1;
        unsigned int full : 1;
        unsigned int refcnt;
        uint64_t bitmap[8];
        vd_desc descriptors[512];
    } vd_cluster;
    _Static_assert(sizeof(vd_cluster) == 12392, "struct vswap_cluster is 12,392 bytes");

    /* struct swap_cluster_info (include/linux/swap.h, 6.18 .. 6.19). */
    typedef struct {
        pthread_spinlock_t lock;
        unsigned short count;
        unsigned char flags;
        unsigned char order;
        uint64_t *table;
        void *list_next, *list_prev;
    } vd_ci;
    _Static_assert(sizeof(vd_ci) == 32, "struct swap_cluster_info is 32 bytes");

    #define vd_of(l) ((vd_cluster *)((char *)(l) - offsetof(vd_cluster, list)))
    static inline void vd_head_init(vd_list *h) { h->next = h->prev = h; }
    static inline void vd_list_init(vd_cluster *c) { vd_head_init(&c->list); }
    /* the first cluster of a list, or NULL; the one after c, or NULL */
    static inline vd_cluster *vd_list_first(vd_list *h)
    { return h->next == h ? NULL : vd_of(h->next); }
    static inline vd_cluster *vd_list_after(vd_cluster *c, vd_list *h)
    { return c->list.next == h ? NULL : vd_of(c->list.next); }
    static inline void vd_list_del_init(vd_cluster *c)
    {
        c->list.next->prev = c->list.prev;
        c->list.prev->next = c->list.next;
        vd_list_init(c);
    }
    static inline void vd_list_add_tail(vd_cluster *c, vd_list *h)
    {
        c->list.prev = h->prev;
        c->list.next = h;
        h->prev->next = &c->list;
        h->prev = &c->list;
    }
    static inline void vd_list_add(vd_cluster *c, vd_list *h)
    {
        c->list.next = h->next;
        c->list.prev = h;
        h->next->prev = &c->list;
        h->next = &c->list;
    }
    /* the spare list is chained through list.next (off every list) */
    static inline vd_cluster *vd_spare_next(vd_cluster *c) { return (vd_cluster *)c->list.next; }
    static inline void vd_set_spare_next(vd_cluster *c, vd_cluster *n) { c->list.next = (vd_list *)n; }
    """
    int VD_SWAPFILE, VD_ZERO, VD_ZSWAP, VD_FOLIO
    uint64_t MAX_CLUSTER_ID
    unsigned long NO_ID
    uint64_t VALUE_MAX
    ctypedef struct vd_desc:
        uint64_t backing
        uint64_t cache
        unsigned int swap_count
        unsigned short memcgid
        unsigned char in_swapcache
        unsigned char type
    ctypedef struct vd_cluster:
        pthread_spinlock_t lock
        unsigned long id
        unsigned int count
        unsigned int order
        unsigned int cached
        unsigned int full
        unsigned int refcnt
        uint64_t bitmap[8]
        vd_desc descriptors[512]
    ctypedef struct vd_ci:
        pthread_spinlock_t lock
        unsigned short count
        uint64_t *table
    uint64_t vd_ld(uint64_t *p)
    unsigned long vd_ldl "vd_ld"(unsigned long *p)
    uint64_t *vd_ldp "vd_ld"(uint64_t **p)
    void vd_st(uint64_t *p, uint64_t v)
    void vd_stl "vd_st"(unsigned long *p, unsigned long v)
    int64_t vd_add(int64_t *p, int64_t v)
    uint64_t vd_addu "vd_add"(uint64_t *p, uint64_t v)
    bint vd_cas(int64_t *p, int64_t *old, int64_t new)
    bint vd_casp "vd_cas"(uint64_t **p, uint64_t **old, uint64_t *new)
    uint64_t *vd_xchgp "vd_xchg"(uint64_t **p, uint64_t *v)
    void vd_stp "vd_st"(uint64_t **p, uint64_t *v)
    void vd_count(unsigned long long *p)
    long long vd_objects(vswap_account *a)
    ctypedef struct vd_list:
        pass
    void vd_head_init(vd_list *h)
    void vd_list_init(vd_cluster *c)
    vd_cluster *vd_list_first(vd_list *h)
    vd_cluster *vd_list_after(vd_cluster *c, vd_list *h)
    void vd_list_del_init(vd_cluster *c)
    void vd_list_add_tail(vd_cluster *c, vd_list *h)
    void vd_list_add(vd_cluster *c, vd_list *h)
    vd_cluster *vd_spare_next(vd_cluster *c)
    void vd_set_spare_next(vd_cluster *c, vd_cluster *n)

cdef extern from *:
    int __builtin_ctzll(unsigned long long x) nogil

DEF OP_STORE = 0
DEF OP_LOAD = 1
DEF OP_ERASE = 2
DEF OP_FREE = 3

DEF VSWAP_CLUSTER_SHIFT = 9
DEF VSWAP_CLUSTER_SIZE = 512
DEF VSWAP_CLUSTER_MASK = 511
DEF SWAPFILE_CLUSTER = 512
DEF SWAP_COUNT_LIMIT = (1 << 31) - 1
DEF NR_STAT_SLOTS = 64

# accounts
DEF A_CLUSTER = 0
DEF A_CLUSTER_FREE = 1
DEF A_MAP_NODE = 2
DEF A_MAP_NODE_FREE = 3
DEF A_ALLOC_BITMAP = 4
DEF A_BAD_BITMAP = 5
DEF A_CLUSTER_INFO = 6
DEF A_RMAP = 7
DEF NR_ACCOUNTS = 8

# accounts, in the order of vswapfast.pure.design_vswap.STRUCTURES
BACKINGS = ("zswap", "disk", "zero")
MAX_VSWAP = (0xFFFFFFFF << VSWAP_CLUSTER_SHIFT) + VSWAP_CLUSTER_MASK

# loop results
DEF R_FULL = -1
DEF R_NOMEM = -2
DEF R_DEVICE_FULL = -3

# Counters of one thread slot (two cache lines): the xarray's (map
# xa_lock, lock-free map lookups) and the design's other locks.
ctypedef struct vd_stats:
    vxa_stats xa                    # user[0]: vswap cluster locks, user[1]: allocator lock
    unsigned long long dev_locks    # si->lock
    unsigned long long ci_locks     # swap cluster locks (ci->lock)
    unsigned long long pad[6]

ctypedef struct vd_design:
    uint64_t nr_slots
    uint64_t nr_pclusters
    int64_t max_used                # virtual slots allowed (nr_slots - 1)
    vxa map                         # vswap_cluster_map
    vxa_ctx map_ctx
    uint64_t id_hint                # no free cluster id below (map xa_lock)
    uint64_t id_top                 # ids ever used are below (map xa_lock)
    vd_list partial                 # partial clusters (map xa_lock)
    vd_cluster *spare               # freed clusters, kept (map xa_lock)
    pthread_spinlock_t local_lock   # the per-CPU cache's local_lock
    vd_cluster *cached              # the cached cluster (local_lock)
    pthread_spinlock_t dev_lock     # si->lock
    uint64_t next_pcluster          # dev_lock
    uint64_t *alloc_bitmap
    uint64_t *bad_bitmap
    vd_ci *pclusters
    uint64_t *table_reserve         # one swap table allocated with no lock held
    vswap_account acct[NR_ACCOUNTS]
    int64_t used
    int64_t nr_zswap
    uint64_t next_handle
    long long calls
    vd_stats *stats                 # NR_STAT_SLOTS, on cache lines of their own
    char stats_space[(NR_STAT_SLOTS + 1) * 128]


# -- locks and lookups -----------------------------------------------------

cdef inline vd_stats *vd_stats_of(vd_design *d) noexcept nogil:
    return &d.stats[vswap_this_thread() & (NR_STAT_SLOTS - 1)]

cdef inline void cluster_lock(vd_cluster *c, vd_stats *st) noexcept nogil:
    pthread_spin_lock(&c.lock)
    vd_count(&st.xa.user[0])

cdef inline void cluster_unlock(vd_cluster *c) noexcept nogil:
    pthread_spin_unlock(&c.lock)

cdef inline bint test_bit(vd_cluster *c, uint64_t i) noexcept nogil:
    return (vd_ld(&c.bitmap[i >> 6]) >> (i & 63)) & 1

cdef inline int entry_range(uint64_t e) noexcept nogil:
    if e == 0:
        return E_ZERO
    if (e >> VSWAP_CLUSTER_SHIFT) > MAX_CLUSTER_ID:
        return E_RANGE
    return E_OK

cdef vd_cluster *vswap_iter(vd_design *d, uint64_t e, vd_stats *st) noexcept nogil:
    """vswap_iter(): the cluster from vswap_cluster_map (xa_load, no lock),
    then its lock; the slot must be allocated in that very cluster (the
    struct may have been freed and reused: its id says) and hold a
    reference.  Returns the cluster locked, or NULL (nothing held)."""
    cdef uint64_t id = e >> VSWAP_CLUSTER_SHIFT
    cdef uint64_t i = e & VSWAP_CLUSTER_MASK
    cdef vd_cluster *c = <vd_cluster *>vxa_load(&d.map, id, &st.xa)
    if c == NULL:
        return NULL
    cluster_lock(c, st)
    if vd_ldl(&c.id) != id or not test_bit(c, i) or c.descriptors[i].swap_count == 0:
        cluster_unlock(c)
        return NULL
    return c

cdef inline int entry_check(vd_design *d, uint64_t e) noexcept nogil:
    """Is ``e`` allocated?  A racy lock-free look (map, then bitmap), made
    before a loop so that bad input is refused before anything is done; the
    loop itself checks each entry again under its cluster lock."""
    cdef int why = entry_range(e)
    cdef vd_cluster *c
    if why:
        return why
    c = <vd_cluster *>vxa_load(&d.map, e >> VSWAP_CLUSTER_SHIFT, NULL)
    if c == NULL or vd_ldl(&c.id) != (e >> VSWAP_CLUSTER_SHIFT) \
            or not test_bit(c, e & VSWAP_CLUSTER_MASK):
        return E_FREE
    return E_OK

cdef inline int64_t first_bad(vd_design *d, uint64_t *e, Py_ssize_t n, int *why) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        why[0] = entry_check(d, e[i])
        if why[0]:
            return i
    return -1


# -- physical swap: bitmaps, swap clusters, the reverse map ---------------

cdef inline void ci_lock(vd_ci *ci, vd_stats *st) noexcept nogil:
    pthread_spin_lock(&ci.lock)
    vd_count(&st.ci_locks)

cdef inline bint pslot_free(vd_design *d, uint64_t s) noexcept nogil:
    return not ((d.alloc_bitmap[s >> 6] | d.bad_bitmap[s >> 6]) >> (s & 63)) & 1

cdef uint64_t *table_take(vd_design *d) noexcept nogil:
    """The swap table kept for the next cluster that needs one."""
    return vd_xchgp(&d.table_reserve, NULL)

cdef int table_reserve(vd_design *d) noexcept nogil:
    """swap_cluster_alloc_table() with no lock held: one table kept for the
    allocator; -1 when out of memory."""
    cdef uint64_t *t = <uint64_t *>vswap_account_calloc(&d.acct[A_RMAP], SWAPFILE_CLUSTER * 8)
    cdef uint64_t *none = NULL
    if t == NULL:
        return -1
    if not vd_casp(&d.table_reserve, &none, t):
        vswap_account_free(&d.acct[A_RMAP], t, SWAPFILE_CLUSTER * 8)
    return 0

cdef uint64_t swap_slot_alloc(vd_design *d, vd_stats *st, int *err) noexcept nogil:
    """swap_slot_alloc(), simplified as the xarray design's allocator: under
    the device lock (si->lock), the first cluster with room from the last
    one used, then under its ci->lock the first slot neither allocated nor
    bad.  A cluster's swap table is allocated on its first use with no lock
    held (the locks are dropped and the scan retried).  0 with ``*err`` set
    (R_DEVICE_FULL or R_NOMEM) when no slot is given."""
    cdef uint64_t k, p, first, last, cap, s, found = 0
    cdef vd_ci *ci
    cdef bint need_table
    while True:
        need_table = False
        pthread_spin_lock(&d.dev_lock)
        vd_count(&st.dev_locks)
        for k in range(d.nr_pclusters):
            p = (d.next_pcluster + k) % d.nr_pclusters
            first = p * SWAPFILE_CLUSTER
            last = min(first + SWAPFILE_CLUSTER, d.nr_slots)
            cap = last - first - (1 if p == 0 else 0)
            ci = &d.pclusters[p]
            if cluster_count_peek(&ci.count) >= cap:
                continue
            ci_lock(ci, st)
            if ci.table == NULL:
                ci.table = table_take(d)
                if ci.table == NULL:
                    pthread_spin_unlock(&ci.lock)
                    need_table = True
                    break
            for s in range(first, last):
                if pslot_free(d, s):
                    d.alloc_bitmap[s >> 6] |= 1ULL << (s & 63)
                    cluster_count_set(&ci.count, ci.count + 1)
                    found = s
                    break
            pthread_spin_unlock(&ci.lock)
            if found:
                d.next_pcluster = p
                break
        pthread_spin_unlock(&d.dev_lock)
        if not need_table:
            break
        if table_reserve(d):
            err[0] = R_NOMEM
            return 0
    if not found:
        err[0] = R_DEVICE_FULL
    return found

cdef void vswap_rmap_set(vd_design *d, uint64_t slot, uint64_t ventry, vd_stats *st) noexcept nogil:
    """vswap_rmap_set(): the virtual entry into the slot's swap table word,
    under ci->lock (``swp_slot_to_swp_entry`` reads it with no lock)."""
    cdef vd_ci *ci = &d.pclusters[slot // SWAPFILE_CLUSTER]
    ci_lock(ci, st)
    vd_st(&ci.table[slot % SWAPFILE_CLUSTER], ventry)
    pthread_spin_unlock(&ci.lock)

cdef void swap_slot_free(vd_design *d, uint64_t slot, vd_stats *st) noexcept nogil:
    """swap_slot_free_nr() of one slot: under ci->lock the allocated bit
    and the reverse-map word cleared; the cluster's swap table is freed,
    after the lock, once the cluster is empty (swap_cluster_free_table)."""
    cdef vd_ci *ci = &d.pclusters[slot // SWAPFILE_CLUSTER]
    cdef uint64_t *t = NULL
    ci_lock(ci, st)
    d.alloc_bitmap[slot >> 6] &= ~(1ULL << (slot & 63))
    vd_st(&ci.table[slot % SWAPFILE_CLUSTER], 0)
    cluster_count_set(&ci.count, ci.count - 1)
    if ci.count == 0:
        t = ci.table
        ci.table = NULL
    pthread_spin_unlock(&ci.lock)
    if t != NULL:
        vswap_account_free(&d.acct[A_RMAP], t, SWAPFILE_CLUSTER * 8)


# -- virtual slots: allocation ----------------------------------------------

cdef inline bint cluster_is_alloc_candidate(vd_cluster *c) noexcept nogil:
    return c.count + 1 <= VSWAP_CLUSTER_SIZE

cdef uint64_t vswap_alloc_from_cluster(vd_cluster *c, uint64_t folio, uint16_t memcg) noexcept nogil:
    """vswap_alloc_from_cluster() + __vswap_alloc_from_cluster(), under the
    cluster lock: the lowest free slot (from 1 in cluster 0), its descriptor
    FOLIO-backed by ``folio`` in the swap cache.  0 when none is free."""
    cdef uint64_t w, i = 0 if c.id else 1
    cdef vd_desc *desc
    if not cluster_is_alloc_candidate(c):
        return 0
    while i < VSWAP_CLUSTER_SIZE:
        w = ~c.bitmap[i >> 6] & (~0ULL << (i & 63))
        if w:
            i = (i & ~63ULL) + <uint64_t>__builtin_ctzll(w)
            break
        i = (i & ~63ULL) + 64
    if i >= VSWAP_CLUSTER_SIZE:
        return 0
    vd_st(&c.bitmap[i >> 6], c.bitmap[i >> 6] | (1ULL << (i & 63)))
    c.refcnt += 1
    desc = &c.descriptors[i]
    desc.type = VD_FOLIO
    desc.backing = 0
    desc.cache = folio << 2
    desc.memcgid = memcg
    desc.swap_count = 1
    desc.in_swapcache = 1
    c.count += 1
    return i + (c.id << VSWAP_CLUSTER_SHIFT)

cdef inline void local_lock(vd_design *d, vd_stats *st) noexcept nogil:
    pthread_spin_lock(&d.local_lock)
    vd_count(&st.xa.user[1])

cdef bint reserve_used(vd_design *d) noexcept nogil:
    """One more virtual slot within the model's bound (nr_slots - 1)."""
    cdef int64_t u = vd_ld(<uint64_t *>&d.used)
    while u < d.max_used:
        if vd_cas(&d.used, &u, u + 1):
            return True
    return False

cdef vd_cluster *cluster_get(vd_design *d, vd_stats *st) noexcept nogil:
    """kvzalloc() of a cluster, with no lock held: a spare one if the design
    freed one (type-stable), else a new one.  Reset under its own lock,
    since a reader may still lock it through a stale map lookup."""
    cdef vd_cluster *c = NULL
    if vd_ldp(<uint64_t **>&d.spare) != NULL:     # no spare: no lock (kvzalloc)
        vxa_lock(&d.map, &st.xa)
        c = d.spare
        if c != NULL:
            vd_stp(<uint64_t **>&d.spare, <uint64_t *>vd_spare_next(c))
            vswap_account_add(&d.acct[A_CLUSTER_FREE], -<long long>sizeof(vd_cluster), -1)
            vswap_account_add(&d.acct[A_CLUSTER], sizeof(vd_cluster), 1)
        vxa_unlock(&d.map)
    if c == NULL:
        c = <vd_cluster *>vswap_account_calloc(&d.acct[A_CLUSTER], sizeof(vd_cluster))
        if c == NULL:
            return NULL
        pthread_spin_init(&c.lock, 0)
        vd_stl(&c.id, NO_ID)
    cluster_lock(c, st)
    memset(c.bitmap, 0, sizeof(c.bitmap))
    memset(c.descriptors, 0, sizeof(c.descriptors))
    c.count = 0
    c.order = 0
    c.cached = 0
    c.full = 0
    c.refcnt = 0
    vd_list_init(c)
    cluster_unlock(c)
    return c

cdef void cluster_put_spare_locked(vd_design *d, vd_cluster *c) noexcept nogil:
    """A cluster out of the map goes to the spare list (map xa_lock held)."""
    vd_set_spare_next(c, d.spare)
    vd_stp(<uint64_t **>&d.spare, <uint64_t *>c)
    vswap_account_add(&d.acct[A_CLUSTER], -<long long>sizeof(vd_cluster), -1)
    vswap_account_add(&d.acct[A_CLUSTER_FREE], sizeof(vd_cluster), 1)

cdef vd_cluster *vswap_new_cluster(vd_design *d, vd_stats *st, int *err) noexcept nogil:
    """vswap_alloc()'s new cluster: kvzalloc, then xa_alloc() of the lowest
    free id in vswap_cluster_map under its xa_lock (a map node is allocated
    with the lock dropped, as xas_nomem).  NULL with ``*err`` = R_FULL (no
    id left) or R_NOMEM."""
    cdef vd_cluster *c = cluster_get(d, st)
    cdef uint64_t id
    cdef uintptr_t old = 0
    cdef int rc
    if c == NULL:
        err[0] = R_NOMEM
        return NULL
    while True:
        vxa_lock(&d.map, &st.xa)
        id = d.id_hint
        while id <= MAX_CLUSTER_ID and vxa_load_locked(&d.map, id) != 0:
            id += 1
        if id > MAX_CLUSTER_ID:
            cluster_put_spare_locked(d, c)
            vxa_unlock(&d.map)
            err[0] = R_FULL
            return NULL
        vd_stl(&c.id, id)
        rc = vxa_store_locked(&d.map, &d.map_ctx, id, <uintptr_t>c, &old)
        if rc == 0:
            d.id_hint = id + 1
            if id + 1 > d.id_top:
                d.id_top = id + 1
            vxa_unlock(&d.map)
            return c
        vd_stl(&c.id, NO_ID)
        if rc == VXA_EAGAIN:
            vxa_unlock(&d.map)
            if vxa_reserve1(&d.map_ctx) == 0:
                continue
            vxa_lock(&d.map, &st.xa)
        cluster_put_spare_locked(d, c)
        vxa_unlock(&d.map)
        err[0] = R_NOMEM
        return NULL

cdef uint64_t vswap_alloc(vd_design *d, uint64_t folio, uint16_t memcg, vd_stats *st,
                          int *err) noexcept nogil:
    """vswap_alloc() of one slot: the cached cluster (local_lock, then its
    lock); else the partial clusters under the map's xa_lock, each with
    spin_trylock; else a new cluster; then the cluster is cached (or put on
    the partial list) as v6 does.  0 with ``*err`` set when none."""
    cdef vd_cluster *c
    cdef vd_cluster *p
    cdef vd_cluster *nxt
    cdef vd_cluster *local
    cdef uint64_t e = 0
    cdef bint need_caching = True
    if not reserve_used(d):
        err[0] = R_FULL
        return 0
    # the locally cached cluster
    local_lock(d, st)
    c = d.cached
    if c != NULL:
        cluster_lock(c, st)
        e = vswap_alloc_from_cluster(c, folio, memcg)
        need_caching = e == 0
        if e == 0 or not cluster_is_alloc_candidate(c):
            d.cached = NULL
            c.cached = 0
            c.refcnt -= 1
            c.full = 1
        cluster_unlock(c)
    pthread_spin_unlock(&d.local_lock)
    # the partial clusters, oldest first
    if e == 0:
        c = NULL
        vxa_lock(&d.map, &st.xa)
        p = vd_list_first(&d.partial)
        while p != NULL:
            nxt = vd_list_after(p, &d.partial)
            if pthread_spin_trylock(&p.lock) == 0:
                vd_count(&st.xa.user[0])
                e = vswap_alloc_from_cluster(p, folio, memcg)
                vd_list_del_init(p)
                p.full = e == 0 or not cluster_is_alloc_candidate(p)
                need_caching = not p.full
                cluster_unlock(p)
                if e:
                    c = p
                    break
            p = nxt
        vxa_unlock(&d.map)
    # a new cluster
    if e == 0:
        c = vswap_new_cluster(d, st, err)
        if c == NULL:
            vd_add(&d.used, -1)
            return 0
        cluster_lock(c, st)
        e = vswap_alloc_from_cluster(c, folio, memcg)
        need_caching = cluster_is_alloc_candidate(c)
        cluster_unlock(c)
    if need_caching:
        local_lock(d, st)
        local = d.cached
        if local != c:
            if local != NULL:
                cluster_lock(local, st)
                # only replace the cached cluster when it is full
                need_caching = not cluster_is_alloc_candidate(local)
                if need_caching:
                    d.cached = NULL
                    local.cached = 0
                    local.refcnt -= 1
                    local.full = 1
                cluster_unlock(local)
            cluster_lock(c, st)
            # still in the map (an entry of it freed meanwhile may have freed it)
            if c.id != NO_ID and cluster_is_alloc_candidate(c):
                if need_caching:
                    d.cached = c
                    c.refcnt += 1
                    c.cached = 1
                else:
                    vxa_lock(&d.map, &st.xa)
                    vd_list_add(c, &d.partial)
                    vxa_unlock(&d.map)
            cluster_unlock(c)
        pthread_spin_unlock(&d.local_lock)
    return e


# -- virtual slots: release -------------------------------------------------

cdef void vswap_cluster_free(vd_design *d, vd_cluster *c, vd_stats *st) noexcept nogil:
    """vswap_cluster_free(), under the cluster lock: off the partial list
    and out of vswap_cluster_map under its xa_lock; kvfree_rcu becomes the
    spare list (type-stable)."""
    cdef uint64_t id = c.id
    cdef uintptr_t old = 0
    vd_stl(&c.id, NO_ID)
    vxa_lock(&d.map, &st.xa)
    vd_list_del_init(c)
    vxa_store_locked(&d.map, &d.map_ctx, id, 0, &old)    # an erase allocates nothing
    if id < d.id_hint:
        d.id_hint = id
    cluster_put_spare_locked(d, c)
    vxa_unlock(&d.map)

cdef void release_vswap_slot(vd_design *d, vd_cluster *c, uint64_t e, vd_stats *st) noexcept nogil:
    """release_vswap_slot(), under the cluster lock: the bit cleared, the
    cluster freed at refcount zero, or back on the partial list when it
    was full and has room again."""
    cdef uint64_t i = e & VSWAP_CLUSTER_MASK
    c.count -= 1
    vd_st(&c.bitmap[i >> 6], c.bitmap[i >> 6] & ~(1ULL << (i & 63)))
    c.refcnt -= 1
    if c.refcnt == 0:
        vswap_cluster_free(d, c, st)
    elif c.full and cluster_is_alloc_candidate(c):
        c.full = 0
        if not c.cached:
            vxa_lock(&d.map, &st.xa)
            vd_list_add_tail(c, &d.partial)
            vxa_unlock(&d.map)

cdef uint64_t take_backing_locked(vd_design *d, vd_desc *desc) noexcept nogil:
    """The descriptor's backing released, under the cluster lock: its zswap
    entry dropped (zswap_entry_free), its slot returned for the caller to
    free once the lock is dropped (release_backing); 0 if none."""
    cdef uint64_t slot = 0
    if desc.type == VD_SWAPFILE:
        slot = desc.backing
    elif desc.type == VD_ZSWAP:
        vd_add(&d.nr_zswap, -1)
    desc.backing = 0
    desc.type = VD_FOLIO
    return slot

cdef void vswap_free(vd_design *d, vd_cluster *c, uint64_t e, vd_stats *st) noexcept nogil:
    """vswap_free(), entered with the cluster locked and the count at zero:
    the swap cache word (folio or shadow) and memcg id cleared, the lock
    dropped around release_backing() (the physical slot freed under its
    ci->lock), then release_vswap_slot() under the lock again."""
    cdef vd_desc *desc = &c.descriptors[e & VSWAP_CLUSTER_MASK]
    cdef uint64_t slot = take_backing_locked(d, desc)
    desc.cache = 0
    desc.in_swapcache = 0
    desc.memcgid = 0                    # mem_cgroup_clear_swap()
    cluster_unlock(c)
    if slot:
        swap_slot_free(d, slot, st)
    # the slot's reference keeps the cluster in the map meanwhile
    cluster_lock(c, st)
    release_vswap_slot(d, c, e, st)
    cluster_unlock(c)
    vd_add(&d.used, -1)

cdef int swap_free_one(vd_design *d, uint64_t e, vd_stats *st) noexcept nogil:
    """swap_free_nr() of one entry: the count dropped under the cluster
    lock; at zero, vswap_free().  E_FREE if not allocated."""
    cdef vd_cluster *c = vswap_iter(d, e, st)
    cdef vd_desc *desc
    if c == NULL:
        return E_FREE
    desc = &c.descriptors[e & VSWAP_CLUSTER_MASK]
    desc.swap_count -= 1
    if desc.swap_count:
        cluster_unlock(c)
    else:
        vswap_free(d, c, e, st)
    return E_OK


# -- descriptor operations (each under the cluster lock) ---------------------

cdef int zswap_store_one(vd_design *d, uint64_t e, uint64_t handle, uint64_t *old,
                         vd_stats *st) noexcept nogil:
    """zswap_entry_store() (patch 11): the entry into the descriptor under
    the cluster lock, its type VSWAP_ZSWAP; a disk slot it replaces is
    freed after the lock.  ``*old``: the handle replaced or 0."""
    cdef vd_cluster *c = vswap_iter(d, e, st)
    cdef vd_desc *desc
    cdef uint64_t slot = 0
    if c == NULL:
        return E_FREE
    desc = &c.descriptors[e & VSWAP_CLUSTER_MASK]
    old[0] = 0
    if desc.type == VD_ZSWAP:
        old[0] = desc.backing >> 2
    else:
        slot = take_backing_locked(d, desc)
        vd_add(&d.nr_zswap, 1)
    desc.backing = handle << 2
    desc.type = VD_ZSWAP
    cluster_unlock(c)
    if slot:
        swap_slot_free(d, slot, st)
    return E_OK

cdef int zswap_erase_one(vd_design *d, uint64_t e, uint64_t *old, vd_stats *st) noexcept nogil:
    """zswap_entry_erase() (patch 11): the zswap entry out of the
    descriptor under the cluster lock; the page is then its folio's
    (VSWAP_FOLIO).  ``*old``: the handle or 0."""
    cdef vd_cluster *c = vswap_iter(d, e, st)
    cdef vd_desc *desc
    if c == NULL:
        return E_FREE
    desc = &c.descriptors[e & VSWAP_CLUSTER_MASK]
    old[0] = 0
    if desc.type == VD_ZSWAP:
        old[0] = desc.backing >> 2
        take_backing_locked(d, desc)
    cluster_unlock(c)
    return E_OK

cdef int zswap_load_one(vd_design *d, uint64_t e, uint64_t *h, vd_stats *st) noexcept nogil:
    """zswap_entry_load() (patch 11): read under the cluster lock."""
    cdef vd_cluster *c = vswap_iter(d, e, st)
    cdef vd_desc *desc
    if c == NULL:
        return E_FREE
    desc = &c.descriptors[e & VSWAP_CLUSTER_MASK]
    h[0] = desc.backing >> 2 if desc.type == VD_ZSWAP else 0
    cluster_unlock(c)
    return E_OK

cdef int set_zero_one(vd_design *d, uint64_t e, vd_stats *st) noexcept nogil:
    """swap_zeromap_folio_set(): release_backing(), then the type
    VSWAP_ZERO under the cluster lock."""
    cdef vd_cluster *c = vswap_iter(d, e, st)
    cdef uint64_t slot
    if c == NULL:
        return E_FREE
    slot = take_backing_locked(d, &c.descriptors[e & VSWAP_CLUSTER_MASK])
    c.descriptors[e & VSWAP_CLUSTER_MASK].type = VD_ZERO
    cluster_unlock(c)
    if slot:
        swap_slot_free(d, slot, st)
    return E_OK

cdef int writeout_one(vd_design *d, uint64_t e, uint64_t *slot, vd_stats *st) noexcept nogil:
    """vswap_alloc_swap_slot(): a descriptor already disk-backed keeps its
    slot (vswap_swapfile_backed, under the cluster lock); else a slot from
    the device (swap_slot_alloc), its reverse-map word set under ci->lock
    (vswap_rmap_set), then under the cluster lock the type VSWAP_SWAPFILE
    and the slot (the zswap entry it replaces released).  E_FREE, or
    R_DEVICE_FULL / R_NOMEM."""
    cdef vd_cluster *c = vswap_iter(d, e, st)
    cdef vd_desc *desc
    cdef uint64_t s, other
    cdef int err = 0
    if c == NULL:
        return E_FREE
    desc = &c.descriptors[e & VSWAP_CLUSTER_MASK]
    if desc.type == VD_SWAPFILE:
        slot[0] = desc.backing
        cluster_unlock(c)
        return E_OK
    cluster_unlock(c)
    s = swap_slot_alloc(d, st, &err)
    if s == 0:
        return err
    vswap_rmap_set(d, s, e, st)
    c = vswap_iter(d, e, st)
    if c == NULL:
        swap_slot_free(d, s, st)
        return E_FREE
    desc = &c.descriptors[e & VSWAP_CLUSTER_MASK]
    if desc.type == VD_SWAPFILE:          # written out meanwhile
        other = desc.backing
        cluster_unlock(c)
        swap_slot_free(d, s, st)
        slot[0] = other
        return E_OK
    take_backing_locked(d, desc)
    desc.type = VD_SWAPFILE
    desc.backing = s
    cluster_unlock(c)
    slot[0] = s
    return E_OK

cdef int cache_del_one(vd_design *d, uint64_t e, uint64_t folio, uint64_t shadow, uint64_t *cur,
                       vd_stats *st) noexcept nogil:
    """swap_cache_del_folio(): under the cluster lock (swap_cache_lock_irq)
    the folio replaced by its shadow (__swap_cache_del_folio), then
    put_swap_folio() -> swapcache_clear() clears in_swapcache under the
    lock again.  1 (nothing changed, ``*cur`` the cache word) if ``folio``
    is not the cached one; E_FREE."""
    cdef vd_cluster *c = vswap_iter(d, e, st)
    cdef vd_desc *desc
    if c == NULL:
        return E_FREE
    desc = &c.descriptors[e & VSWAP_CLUSTER_MASK]
    cur[0] = desc.cache
    if desc.cache != folio << 2:
        cluster_unlock(c)
        return -1
    desc.cache = (shadow << 1) | 1
    cluster_unlock(c)
    c = vswap_iter(d, e, st)
    if c != NULL:
        c.descriptors[e & VSWAP_CLUSTER_MASK].in_swapcache = 0
        cluster_unlock(c)
    return E_OK

cdef uint64_t folio_alloc_swap_one(vd_design *d, uint64_t folio, uint16_t memcg, vd_stats *st,
                                   int *err) noexcept nogil:
    """folio_alloc_swap(): vswap_alloc(), mem_cgroup_record_swap() (the
    memcg id into the descriptor, under the cluster lock), then
    swap_cache_add_folio() (the map looked up and the cluster locked, the
    folio stored)."""
    cdef uint64_t e = vswap_alloc(d, folio, memcg, st, err)
    cdef vd_cluster *c
    if e == 0:
        return 0
    c = vswap_iter(d, e, st)
    if c != NULL:
        c.descriptors[e & VSWAP_CLUSTER_MASK].memcgid = memcg
        cluster_unlock(c)
    c = vswap_iter(d, e, st)
    if c != NULL:
        c.descriptors[e & VSWAP_CLUSTER_MASK].cache = folio << 2
        cluster_unlock(c)
    return e

cdef int64_t swap_out_loop(vd_design *d, uint64_t *out, uint64_t count, int backing,
                           uint16_t memcg, vd_stats *st) noexcept nogil:
    """swap_out_many in C: folio_alloc_swap, the backing, the folio out of
    the swap cache with a shadow, page by page.  R_FULL / R_NOMEM with every
    page of the call released."""
    cdef uint64_t k, e, h, old = 0, cur = 0
    cdef int err = 0
    cdef int64_t rc = 0
    for k in range(count):
        e = folio_alloc_swap_one(d, 1, memcg, st, &err)
        if e == 0:
            rc = err
            break
        out[k] = e
        if backing == 0:
            h = vd_addu(&d.next_handle, 1) % VALUE_MAX + 1
            zswap_store_one(d, e, h, &old, st)
        elif backing == 1:
            err = writeout_one(d, e, &old, st)
            if err:
                rc = err
                k += 1
                break
        else:
            set_zero_one(d, e, st)
        cache_del_one(d, e, 1, e, &cur, st)
    if rc:
        for e in range(k):
            swap_free_one(d, out[e], st)
    return rc


# -- life --------------------------------------------------------------------

cdef void vd_free(vd_design *d) noexcept nogil:
    """Free every structure (no call may be in flight)."""
    cdef uint64_t id, p
    cdef vd_cluster *c
    for id in range(d.id_top):
        c = <vd_cluster *>vxa_load_locked(&d.map, id)
        if c != NULL:
            pthread_spin_destroy(&c.lock)
            vswap_account_free(&d.acct[A_CLUSTER], c, sizeof(vd_cluster))
    while d.spare != NULL:
        c = d.spare
        d.spare = vd_spare_next(c)
        pthread_spin_destroy(&c.lock)
        vswap_account_free(&d.acct[A_CLUSTER_FREE], c, sizeof(vd_cluster))
    vxa_destroy(&d.map, &d.map_ctx)
    vxa_ctx_destroy(&d.map_ctx)
    if d.pclusters != NULL:
        for p in range(d.nr_pclusters):
            vswap_account_free(&d.acct[A_RMAP], d.pclusters[p].table, SWAPFILE_CLUSTER * 8)
            pthread_spin_destroy(&d.pclusters[p].lock)
        vswap_account_free(&d.acct[A_CLUSTER_INFO], d.pclusters, d.nr_pclusters * sizeof(vd_ci))
    vswap_account_free(&d.acct[A_RMAP], d.table_reserve, SWAPFILE_CLUSTER * 8)
    vswap_account_free(&d.acct[A_ALLOC_BITMAP], d.alloc_bitmap, (d.nr_slots + 63) // 64 * 8)
    vswap_account_free(&d.acct[A_BAD_BITMAP], d.bad_bitmap, (d.nr_slots + 63) // 64 * 8)
    pthread_spin_destroy(&d.dev_lock)
    pthread_spin_destroy(&d.local_lock)
    PyMem_RawFree(d)

cdef vd_design *vd_new(uint64_t nr_slots) noexcept nogil:
    """vswap_init() and swapon: the empty cluster map and the device's
    static structures (the two bitmaps, bitmap_zalloc'd, slot 0 -- the
    header -- marked bad; cluster_info).  NULL when out of memory."""
    cdef vd_design *d = <vd_design *>PyMem_RawCalloc(1, sizeof(vd_design))
    cdef uint64_t p
    if d == NULL:
        return NULL
    d.stats = <vd_stats *>((<uintptr_t>d.stats_space + 127) & ~(<uintptr_t>127))
    d.nr_slots = nr_slots
    d.nr_pclusters = (nr_slots + SWAPFILE_CLUSTER - 1) // SWAPFILE_CLUSTER
    d.max_used = nr_slots - 1
    vxa_init(&d.map)
    vxa_ctx_init(&d.map_ctx, &d.acct[A_MAP_NODE], &d.acct[A_MAP_NODE_FREE])
    vd_head_init(&d.partial)
    pthread_spin_init(&d.local_lock, 0)
    pthread_spin_init(&d.dev_lock, 0)
    d.alloc_bitmap = <uint64_t *>vswap_account_calloc(&d.acct[A_ALLOC_BITMAP], (nr_slots + 63) // 64 * 8)
    d.bad_bitmap = <uint64_t *>vswap_account_calloc(&d.acct[A_BAD_BITMAP], (nr_slots + 63) // 64 * 8)
    d.pclusters = <vd_ci *>vswap_account_calloc(&d.acct[A_CLUSTER_INFO], d.nr_pclusters * sizeof(vd_ci))
    if d.pclusters != NULL:
        for p in range(d.nr_pclusters):
            pthread_spin_init(&d.pclusters[p].lock, 0)
    if d.alloc_bitmap == NULL or d.bad_bitmap == NULL or d.pclusters == NULL:
        vd_free(d)
        return NULL
    d.bad_bitmap[0] = 1
    return d


# -- the loops ----------------------------------------------------------------

cdef vd_cluster *cluster_locked(vd_design *d, uint64_t id, vd_stats *st) noexcept nogil:
    """The cluster of id ``id`` locked (map lookup, lock, id checked), or NULL."""
    cdef vd_cluster *c = <vd_cluster *>vxa_load(&d.map, id, &st.xa)
    if c == NULL:
        return NULL
    cluster_lock(c, st)
    if vd_ldl(&c.id) != id:
        cluster_unlock(c)
        return NULL
    return c

cdef int64_t run_loop(vd_design *d, uint64_t *e, uint64_t *h, uint64_t *o, Py_ssize_t n,
                      bint batch, int op, vd_stats *st) noexcept nogil:
    """One kernel operation per entry (vswap_iter: map lookup and cluster
    lock each), or with ``batch`` one lookup and lock per run of entries in
    the same cluster (__vswap_iter under the lock held, a range walk).  An
    entry freed since the check is skipped.  Returns how many entries held
    (load, erase) or replaced (store) a handle."""
    cdef Py_ssize_t i = 0, j, k
    cdef int64_t hits = 0
    cdef uint64_t x = 0, id, s
    cdef vd_cluster *c
    cdef vd_desc *desc
    if op == OP_FREE or not batch:
        for k in range(n):
            x = 0
            if op == OP_STORE:
                zswap_store_one(d, e[k], h[k], &x, st)
            elif op == OP_LOAD:
                zswap_load_one(d, e[k], &x, st)
                o[k] = x
            elif op == OP_ERASE:
                zswap_erase_one(d, e[k], &x, st)
            else:
                swap_free_one(d, e[k], st)
            hits += x != 0
        return hits
    while i < n:
        j = i + 1
        id = e[i] >> VSWAP_CLUSTER_SHIFT
        while j < n and (e[j] >> VSWAP_CLUSTER_SHIFT) == id:
            j += 1
        c = cluster_locked(d, id, st)
        k = i
        while k < j:
            x = 0
            s = e[k] & VSWAP_CLUSTER_MASK
            if c != NULL and test_bit(c, s) and c.descriptors[s].swap_count:
                desc = &c.descriptors[s]
                if desc.type == VD_ZSWAP:
                    x = desc.backing >> 2
                if op == OP_STORE and desc.type == VD_SWAPFILE:
                    # its slot is freed with the vswap lock dropped
                    cluster_unlock(c)
                    zswap_store_one(d, e[k], h[k], &x, st)
                    c = cluster_locked(d, id, st)
                    k += 1
                    continue
                if op == OP_STORE:
                    if desc.type != VD_ZSWAP:
                        take_backing_locked(d, desc)
                        vd_add(&d.nr_zswap, 1)
                    desc.backing = h[k] << 2
                    desc.type = VD_ZSWAP
                elif op == OP_ERASE and x:
                    take_backing_locked(d, desc)
            if op == OP_LOAD:
                o[k] = x
            hits += x != 0
            k += 1
        if c != NULL:
            cluster_unlock(c)
        i = j
    return hits


# -- the Python class ----------------------------------------------------------

cdef str entry_message(object entry, int why):
    entry = int_arg(entry, "swap entry")
    if why == E_ZERO:
        return "swap entry 0 is never allocated (0 means no entry)"
    if why == E_NEGATIVE:
        return "swap entry %d is negative; entries are unsigned" % entry
    if why == E_RANGE:
        return "swap entry %d is beyond the virtual swap space (MAX_VSWAP is %d)" % (entry, MAX_VSWAP)
    return "swap entry %d is not allocated (no swap descriptor)" % entry


@cython.no_gc_clear
@cython.final
cdef class VswapDesign:
    """The virtual swap space, v6: a 24-byte swap descriptor per virtual
    slot in 512-slot clusters under per-cluster spinlocks, found through
    the vswap_cluster_map xarray; zswap entries in the descriptors; a
    physical device of two bitmaps with a reverse map for disk-backed
    slots.  Every descriptor access holds its cluster lock; only the map
    lookup is lock-free.  See docs/designs.md and this module's header.

    Thread-safe; ``close()`` waits for the calls in flight.  Every method
    converts its arguments (which may run Python code) before it takes the
    design with ``_enter()``, and runs no Python code until it leaves.
    """

    cdef vd_design *d
    cdef readonly uint64_t nr_slots

    name = "vswap"

    def __cinit__(self, nr_slots):
        nr_slots = int_arg(nr_slots, "nr_slots")
        if not 1 <= nr_slots <= (1 << 32):
            raise ValueError("nr_slots must be in 1 .. 2**32, not %d" % nr_slots)
        self.nr_slots = nr_slots
        with nogil:
            self.d = vd_new(self.nr_slots)
        if self.d == NULL:
            raise MemoryError("no memory for the swap metadata of %d slots" % nr_slots)

    def __dealloc__(self):
        self._close()

    cdef void _close(self) noexcept:
        cdef vd_design *d = self.d
        if d == NULL:
            return
        self.d = NULL                   # later calls find the design closed
        with nogil:
            vswap_wait_zero(&d.calls)
            vd_free(d)

    def close(self):
        """Free every structure once the calls in flight on other threads
        have finished; closing again does nothing; later calls raise
        ValueError."""
        self._close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._close()

    cdef vd_design *_enter(self) except NULL:
        cdef vd_design *d = self.d
        if d == NULL:
            raise ValueError("vswap design is closed")
        vswap_seq_add(&d.calls, 1)
        return d

    cdef int _leave_bad(self, vd_design *d, object entry, int why) except -1:
        """Leave the call and raise InvalidEntryError."""
        vswap_seq_add(&d.calls, -1)
        raise InvalidEntryError(entry_message(entry, why))

    cdef vd_design *_enter_entry(self, object entry, int kind, uint64_t val) except NULL:
        """_enter(), the entry in the virtual space (allocation is checked
        under the cluster lock by each operation)."""
        cdef vd_design *d = self._enter()
        cdef int why = kind if kind else entry_range(val)
        if why:
            self._leave_bad(d, entry, why)
        return d

    cdef int _raise_full(self, vd_design *d, int err) except -1:
        cdef int64_t used = d.used
        vswap_seq_add(&d.calls, -1)
        if err == R_NOMEM:
            raise MemoryError("no memory for a vswap cluster or a swap table")
        if err == R_DEVICE_FULL:
            raise SwapFullError("no free slot left on the swap device (nr_slots is %d)"
                                % self.nr_slots)
        raise SwapFullError("no free virtual swap slot left (%d of %d used)"
                            % (used, self.nr_slots - 1))

    # -- allocation ---------------------------------------------------------

    def folio_alloc_swap(self, folio, memcg=0):
        """folio_alloc_swap() (mm/vswap.c): vswap_alloc() (the cached
        cluster under the allocator lock and its cluster lock; else the
        partial list under the map's xa_lock; else a new cluster),
        mem_cgroup_record_swap() and swap_cache_add_folio() under the
        cluster lock: swap count 1, the folio in the swap cache.
        ``SwapFullError`` when no virtual slot is left."""
        cdef uint64_t f = value_arg(folio, "folio", 1)
        cdef uint16_t m = memcg_arg(memcg)
        cdef vd_design *d = self._enter()
        cdef int err = 0
        cdef uint64_t e = folio_alloc_swap_one(d, f, m, vd_stats_of(d), &err)
        if e == 0:
            self._raise_full(d, err)
        vswap_seq_add(&d.calls, -1)
        return e

    # -- swap cache ---------------------------------------------------------

    cdef uint64_t _cache_word(self, object entry) except? 0xFFFFFFFFFFFFFFFF:
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef vd_design *d = self._enter_entry(entry, kind, val)
        cdef vd_cluster *c = vswap_iter(d, val, vd_stats_of(d))
        cdef uint64_t w
        if c == NULL:
            self._leave_bad(d, entry, E_FREE)
        w = c.descriptors[val & VSWAP_CLUSTER_MASK].cache
        cluster_unlock(c)
        vswap_seq_add(&d.calls, -1)
        return w

    def swap_cache_get_folio(self, entry):
        """swap_cache_get_folio(): vswap_iter() (the cluster lock), the
        folio if the swap cache word is not a shadow; else None."""
        cdef uint64_t w = self._cache_word(entry)
        if w == 0 or w & 1:
            return None
        return w >> 2

    def swap_cache_get_shadow(self, entry):
        """swap_cache_get_shadow(): vswap_iter() (the cluster lock), the
        shadow if the swap cache word is one (xa_is_value); else None."""
        cdef uint64_t w = self._cache_word(entry)
        if w & 1:
            return w >> 1
        return None

    def swap_cache_add_folio(self, entry, folio):
        """swapcache_prepare() (in_swapcache set under the cluster lock;
        -EEXIST -> SwapCacheError), then swap_cache_add_folio() (the map
        looked up, the cluster locked, the folio stored): returns the shadow
        it replaces, or None."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef uint64_t f = value_arg(folio, "folio", 1)
        cdef vd_design *d = self._enter_entry(entry, kind, val)
        cdef vd_stats *st = vd_stats_of(d)
        cdef vd_cluster *c = vswap_iter(d, val, st)
        cdef vd_desc *desc
        cdef uint64_t old
        if c == NULL:
            self._leave_bad(d, entry, E_FREE)
        desc = &c.descriptors[val & VSWAP_CLUSTER_MASK]
        if desc.in_swapcache:
            cluster_unlock(c)
            vswap_seq_add(&d.calls, -1)
            raise SwapCacheError("swap entry %d already has a folio in the swap cache" % val)
        desc.in_swapcache = 1
        cluster_unlock(c)
        c = vswap_iter(d, val, st)
        if c == NULL:
            self._leave_bad(d, entry, E_FREE)
        desc = &c.descriptors[val & VSWAP_CLUSTER_MASK]
        old = desc.cache
        desc.cache = f << 2
        cluster_unlock(c)
        vswap_seq_add(&d.calls, -1)
        if old & 1:
            return old >> 1
        return None

    def swap_cache_del_folio(self, entry, folio, shadow=0):
        """swap_cache_del_folio(): the folio replaced by its shadow under
        the cluster lock, then put_swap_folio() clears in_swapcache under
        it again.  ``SwapCacheError`` if ``folio`` is not the cached one."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef uint64_t f = value_arg(folio, "folio", 1)
        cdef uint64_t sh = value_arg(shadow, "shadow", 0)
        cdef vd_design *d = self._enter_entry(entry, kind, val)
        cdef uint64_t cur = 0
        cdef int rc = cache_del_one(d, val, f, sh, &cur, vd_stats_of(d))
        if rc == E_FREE:
            self._leave_bad(d, entry, E_FREE)
        vswap_seq_add(&d.calls, -1)
        if rc:
            raise SwapCacheError(
                "folio %d is not the one in the swap cache of entry %d (%s)"
                % (f, val, "folio %d" % (cur >> 2) if cur and not cur & 1 else "no folio"))

    # -- zswap --------------------------------------------------------------

    def zswap_entry_store(self, entry, handle):
        """zswap_entry_store() (patch 11): into the descriptor under the
        cluster lock; returns the handle replaced, or None."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef uint64_t h = value_arg(handle, "handle", 1)
        cdef vd_design *d = self._enter_entry(entry, kind, val)
        cdef uint64_t old = 0
        if zswap_store_one(d, val, h, &old, vd_stats_of(d)):
            self._leave_bad(d, entry, E_FREE)
        vswap_seq_add(&d.calls, -1)
        return old if old else None

    def zswap_entry_load(self, entry):
        """zswap_entry_load() (patch 11): vswap_iter(), the cluster lock;
        the handle or None."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef vd_design *d = self._enter_entry(entry, kind, val)
        cdef uint64_t h = 0
        if zswap_load_one(d, val, &h, vd_stats_of(d)):
            self._leave_bad(d, entry, E_FREE)
        vswap_seq_add(&d.calls, -1)
        return h if h else None

    def zswap_entry_erase(self, entry):
        """zswap_entry_erase() (patch 11): out of the descriptor under the
        cluster lock; the handle or None."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef vd_design *d = self._enter_entry(entry, kind, val)
        cdef uint64_t old = 0
        if zswap_erase_one(d, val, &old, vd_stats_of(d)):
            self._leave_bad(d, entry, E_FREE)
        vswap_seq_add(&d.calls, -1)
        return old if old else None

    def zswap_empty(self):
        """No descriptor holds a zswap entry (a counter read, no lock)."""
        cdef vd_design *d = self._enter()
        cdef bint empty = vd_ld(<uint64_t *>&d.nr_zswap) == 0
        vswap_seq_add(&d.calls, -1)
        return empty

    # -- zero pages, disk ---------------------------------------------------

    def set_zero(self, entry):
        """swap_zeromap_folio_set(): release_backing() (a zswap entry
        dropped, a disk slot freed), then VSWAP_ZERO under the cluster
        lock."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef vd_design *d = self._enter_entry(entry, kind, val)
        if set_zero_one(d, val, vd_stats_of(d)):
            self._leave_bad(d, entry, E_FREE)
        vswap_seq_add(&d.calls, -1)

    cdef int _type_of(self, object entry, uint64_t *backing) except -1:
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef vd_design *d = self._enter_entry(entry, kind, val)
        cdef vd_cluster *c = vswap_iter(d, val, vd_stats_of(d))
        cdef int t
        if c == NULL:
            self._leave_bad(d, entry, E_FREE)
        t = c.descriptors[val & VSWAP_CLUSTER_MASK].type
        backing[0] = c.descriptors[val & VSWAP_CLUSTER_MASK].backing
        cluster_unlock(c)
        vswap_seq_add(&d.calls, -1)
        return t

    def is_zero(self, entry):
        """swap_zeromap_batch() of one entry: the type is VSWAP_ZERO (read
        under the cluster lock)."""
        cdef uint64_t b = 0
        return self._type_of(entry, &b) == VD_ZERO

    def swap_writeout(self, entry):
        """vswap_alloc_swap_slot(): a slot on the device (swap_slot_alloc:
        device lock, ci->lock), the reverse map written (vswap_rmap_set,
        ci->lock), the descriptor VSWAP_SWAPFILE under the cluster lock (its
        zswap entry released).  Returns the slot; ``SwapFullError`` when the
        device is full."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef vd_design *d = self._enter_entry(entry, kind, val)
        cdef uint64_t slot = 0
        cdef int rc = writeout_one(d, val, &slot, vd_stats_of(d))
        if rc == E_FREE:
            self._leave_bad(d, entry, E_FREE)
        if rc:
            self._raise_full(d, rc)
        vswap_seq_add(&d.calls, -1)
        return slot

    def get_slot(self, entry):
        """swp_entry_to_swp_slot(): the slot if the type is VSWAP_SWAPFILE
        (read under the cluster lock), else None."""
        cdef uint64_t b = 0
        if self._type_of(entry, &b) == VD_SWAPFILE:
            return b
        return None

    # -- counts -------------------------------------------------------------

    def swap_duplicate(self, entry):
        """swap_duplicate(): swap_count + 1 under the cluster lock; the new
        count."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef vd_design *d = self._enter_entry(entry, kind, val)
        cdef vd_cluster *c = vswap_iter(d, val, vd_stats_of(d))
        cdef vd_desc *desc
        cdef uint64_t count
        if c == NULL:
            self._leave_bad(d, entry, E_FREE)
        desc = &c.descriptors[val & VSWAP_CLUSTER_MASK]
        count = <uint64_t>desc.swap_count + 1
        if count > SWAP_COUNT_LIMIT:
            cluster_unlock(c)
            vswap_seq_add(&d.calls, -1)
            raise ValueError("swap count of entry %d would exceed 2**31 - 1" % val)
        desc.swap_count = <unsigned int>count
        cluster_unlock(c)
        vswap_seq_add(&d.calls, -1)
        return count

    def swap_count(self, entry):
        """swp_swapcount(): the count, read under the cluster lock."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef vd_design *d = self._enter_entry(entry, kind, val)
        cdef vd_cluster *c = vswap_iter(d, val, vd_stats_of(d))
        cdef uint64_t count
        if c == NULL:
            self._leave_bad(d, entry, E_FREE)
        count = c.descriptors[val & VSWAP_CLUSTER_MASK].swap_count
        cluster_unlock(c)
        vswap_seq_add(&d.calls, -1)
        return count

    def swap_free(self, entry):
        """swap_free_nr() of one entry: the count dropped under the cluster
        lock; at zero vswap_free() releases the descriptor and all it holds."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef vd_design *d = self._enter_entry(entry, kind, val)
        if swap_free_one(d, val, vd_stats_of(d)):
            self._leave_bad(d, entry, E_FREE)
        vswap_seq_add(&d.calls, -1)

    # -- loops (C, without the GIL) -----------------------------------------

    cdef int _check_entries(self, vd_design *d, uint64_t *e, Py_ssize_t n) except -1:
        cdef int why = 0
        cdef int64_t i
        with nogil:
            i = first_bad(d, e, n, &why)
        if i >= 0:
            vswap_seq_add(&d.calls, -1)
            raise InvalidEntryError("entries[%d]: %s" % (i, entry_message(e[i], why)))
        return 0

    def zswap_entry_store_many(self, entries, handles, batch=False):
        """zswap_entry_store of each page (one cluster lock each, or one per
        run in the same cluster with ``batch=True``); returns how many
        replaced a handle."""
        cdef Py_buffer ev, hv
        cdef vd_design *d
        cdef uint64_t *e
        cdef uint64_t *h
        cdef Py_ssize_t n, i
        cdef bint b = bool(batch)
        cdef int64_t replaced = 0
        n = get_u64_pair(entries, &ev, handles, &hv, "handles", False)
        try:
            e = <uint64_t *>ev.buf
            h = <uint64_t *>hv.buf
            d = self._enter()
            self._check_entries(d, e, n)
            check_handles(&d.calls, h, n)
            with nogil:
                replaced = run_loop(d, e, h, NULL, n, b, OP_STORE, vd_stats_of(d))
            vswap_seq_add(&d.calls, -1)
            return replaced
        finally:
            PyBuffer_Release(&hv)
            PyBuffer_Release(&ev)

    def zswap_entry_load_many(self, entries, out, batch=False):
        """zswap_entry_load of each page (one cluster lock each, or one per
        run in the same cluster with ``batch=True``); ``out[i]`` gets the
        handle or 0.  Returns how many held one."""
        cdef Py_buffer ev, ov
        cdef vd_design *d
        cdef uint64_t *e
        cdef uint64_t *o
        cdef Py_ssize_t n
        cdef bint b = bool(batch)
        cdef int64_t found = 0
        n = get_u64_pair(entries, &ev, out, &ov, "out", True)
        try:
            e = <uint64_t *>ev.buf
            o = <uint64_t *>ov.buf
            d = self._enter()
            self._check_entries(d, e, n)
            with nogil:
                found = run_loop(d, e, NULL, o, n, b, OP_LOAD, vd_stats_of(d))
            vswap_seq_add(&d.calls, -1)
            return found
        finally:
            PyBuffer_Release(&ov)
            PyBuffer_Release(&ev)

    def zswap_entry_erase_many(self, entries, batch=False):
        """zswap_entry_erase of each page (one cluster lock each, or one per
        run with ``batch=True``); returns how many held a handle."""
        cdef Py_buffer ev
        cdef vd_design *d
        cdef uint64_t *e
        cdef Py_ssize_t n
        cdef bint b = bool(batch)
        cdef int64_t erased = 0
        get_u64_buffer(entries, &ev, "entries", False)
        try:
            n = ev.len // 8
            e = <uint64_t *>ev.buf
            d = self._enter()
            self._check_entries(d, e, n)
            with nogil:
                erased = run_loop(d, e, NULL, NULL, n, b, OP_ERASE, vd_stats_of(d))
            vswap_seq_add(&d.calls, -1)
            return erased
        finally:
            PyBuffer_Release(&ev)

    def swap_out_many(self, count, backing="zswap", memcg=0):
        """Swap out ``count`` pages, each through folio_alloc_swap, its
        backing (zswap store of a fresh handle, swap_writeout, or set_zero)
        and swap_cache_del_folio leaving a shadow (the entry itself).
        ``SwapFullError`` (every page of the call released) when the virtual
        space or, for "disk", the device fills up."""
        cdef int64_t c, rc
        cdef int bk
        cdef uint16_t m
        cdef vd_design *d
        cdef uint64_t *o
        cdef Py_buffer ov
        count = count_arg(count)
        bk = check_backing(backing)
        m = memcg_arg(memcg)
        out = _array.array("Q", bytes(8 * count))
        c = count
        PyObject_GetBuffer(out, &ov, PyBUF_C_CONTIGUOUS)
        try:
            o = <uint64_t *>ov.buf
            d = self._enter()
            with nogil:
                rc = swap_out_loop(d, o, c, bk, m, vd_stats_of(d))
            if rc:
                self._raise_full(d, <int>rc)
            vswap_seq_add(&d.calls, -1)
        finally:
            PyBuffer_Release(&ov)
        return out

    def swap_free_many(self, entries):
        """swap_free of each entry (checked first: nothing is freed if one is
        not allocated)."""
        cdef Py_buffer ev
        cdef vd_design *d
        cdef uint64_t *e
        cdef Py_ssize_t n
        get_u64_buffer(entries, &ev, "entries", False)
        try:
            n = ev.len // 8
            e = <uint64_t *>ev.buf
            d = self._enter()
            self._check_entries(d, e, n)
            with nogil:
                run_loop(d, e, NULL, NULL, n, False, OP_FREE, vd_stats_of(d))
            vswap_seq_add(&d.calls, -1)
        finally:
            PyBuffer_Release(&ev)

    # -- introspection ------------------------------------------------------

    def metadata_bytes(self):
        """Bytes of metadata held now, from the allocation counters (static
        structures and the spare clusters and map nodes included)."""
        cdef vd_design *d = self._enter()
        cdef long long total = 0
        cdef int a
        for a in range(NR_ACCOUNTS):
            total += vswap_account_bytes(&d.acct[a])
        vswap_seq_add(&d.calls, -1)
        return total

    def stats(self):
        """Counters and byte counts; see docs/designs.md."""
        cdef vd_design *d = self._enter()
        cdef unsigned long long ll = 0, lr = 0, lk = 0, xl = 0, cl = 0, al = 0, dl = 0, pl = 0
        cdef long long objs = 0
        cdef long long nbytes[NR_ACCOUNTS]
        cdef int64_t used, nz
        cdef int a
        # Everything read into C locals before any Python object is made.
        for a in range(NR_STAT_SLOTS):
            ll += vd_ld(<uint64_t *>&d.stats[a].xa.lockless_loads)
            lr += vd_ld(<uint64_t *>&d.stats[a].xa.load_retries)
            lk += vd_ld(<uint64_t *>&d.stats[a].xa.locked_loads)
            xl += vd_ld(<uint64_t *>&d.stats[a].xa.lock_acquisitions)
            cl += vd_ld(<uint64_t *>&d.stats[a].xa.user[0])
            al += vd_ld(<uint64_t *>&d.stats[a].xa.user[1])
            dl += vd_ld(<uint64_t *>&d.stats[a].dev_locks)
            pl += vd_ld(<uint64_t *>&d.stats[a].ci_locks)
        for a in range(NR_ACCOUNTS):
            nbytes[a] = vswap_account_bytes(&d.acct[a])
            objs += vd_objects(&d.acct[a])
        used = d.used
        nz = d.nr_zswap
        vswap_seq_add(&d.calls, -1)
        return _stats_dict("compiled", self.nr_slots, used, nz, objs,
                           [nbytes[a] for a in range(NR_ACCOUNTS)],
                           ll, lr, lk, xl, cl, al, dl, pl)

    def __len__(self):
        cdef vd_design *d = self._enter()
        cdef int64_t used = d.used
        vswap_seq_add(&d.calls, -1)
        return used

    def __repr__(self):
        if self.d == NULL:
            return "<VswapDesign closed core=compiled>"
        return "<VswapDesign nr_slots=%d used=%d bytes=%d core=compiled>" % (
            self.nr_slots, len(self), self.metadata_bytes())
