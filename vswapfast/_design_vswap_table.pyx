# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The ``vswap-table`` design: the virtual swap space, swap table edition.

Models Nhat Pham's "[RFC PATCH v2 0/7] mm, swap: Virtual Swap Space (Swap
Table Edition)" (2026-06-12, on mm-unstable with swap table phase IV), from
its patches on lore:

- 1/7 "mm, swap: add virtual swap device infrastructure": no mm/vswap.c; a
  virtual swap device (``SWP_VSWAP``) whose clusters are ``struct
  swap_cluster_info_dynamic { struct swap_cluster_info ci; unsigned int
  index; struct rcu_head rcu; }`` kept in ``si->cluster_info_pool``
  (``xa_init_flags(XA_FLAGS_ALLOC)``), found with ``xa_load`` under RCU by
  ``__swap_offset_to_cluster()``; ``swap_cluster_lock()`` locks and checks
  ``CLUSTER_FLAG_DEAD``; cluster 0 is made at init with slot 0 bad; new
  clusters come from ``alloc_swap_scan_dynamic()`` (kzalloc, the swap table,
  ``xa_alloc`` from 1) and go in ``vswap_free_cluster()`` (off the lists
  under ``si->lock``, tables freed, ``xa_erase``, DEAD, ``kfree_rcu``).
  Swap-cache reads (``swap_cache_get_folio``, ``swap_cache_get_shadow``) and
  ``swap_zeromap_batch()`` read the swap table under ``rcu_read_lock()``.
- 2/7 "support zswap and zeroswap as vswap backends": ``atomic_long_t
  *virtual_table`` in the dynamic cluster, 512 words kcalloc'd per cluster,
  tag in the low 3 bits: NONE 000, PHYS 001 (the physical entry << 3),
  ZSWAP 010 (the ``zswap_entry`` pointer).  Folios and shadows stay in the
  swap table word (with the count and the zero flag); there is no FOLIO
  tag.  ``vswap_zswap_store()`` / ``vswap_zswap_load()`` take the cluster
  lock; ``__vswap_release_backing()`` frees a zswap entry or a physical
  slot and clears the zero flag.
- 3/7 "support physical swap as a vswap backend": ``folio_realloc_swap()``
  allocates a physical slot and writes, in the physical cluster's swap
  table, the Pointer-tagged reverse map ``|C|vswap offset|100|``, then the
  PHYS word in the virtual table; ``vswap_to_phys()`` reads it under the
  cluster lock.
- 6/7 "defer memcg_table allocation on physical clusters": virtual
  clusters get a memcg table (u16 per slot) with their swap table; physical
  clusters holding only vswap backings get none.

Per virtual slot: 8 bytes of swap table, 8 of virtual table and 2 of memcg
table, in 512-slot clusters with an 80-byte ``swap_cluster_info_dynamic``;
per disk-backed slot 8 more bytes of the physical cluster's swap table.
Phase IV's ``struct swap_cluster_info`` (lock, count, flags, order,
``table``, ``extend_table``, ``memcg_table``, list: 48 bytes) is the one of
the notes of this project's design table; the extend table (a 4-byte count
per slot past the 4-bit count of the table word) is allocated when a count
overflows.  Not found in the patches, so the model's own: the bit positions
of the count and the zero flag in a word (count in bits 60-63, zero flag
bit 59), when an extend table is freed (when no slot needs it), and the
virtual table of cluster 0 (1/7 creates cluster 0 without one; the model
gives it one so that its slots can be used).

Departures (also in docs/designs.md): the per-CPU vswap cluster is one
cluster offset for the whole design under one allocator lock, and a new
dynamic cluster is allocated with that lock dropped (the kernel uses
GFP_ATOMIC under it); virtual slots are bounded by the device's usable
slots; ``swap_count`` starts at 1 with the folio cached and a count reaching
zero releases everything, the folio included; ``zswap_empty()`` counts
zswap-backed slots; the memcg id is written with the allocation, under the
same lock; the physical slot of a released backing is freed after the
virtual cluster lock is dropped (``__swap_cluster_free_phys_backing()``
nests the physical cluster lock inside it); the device's slot allocator is
the xarray design's scan under its ``si->lock``; freed clusters, with their
swap tables, stay on a spare list (type-stable memory for the lock-free
reads, where the kernel waits for RCU grace periods), as freed map nodes do.

Lock-free reads: a reader looks the cluster up in the map (xarray.h's
validated ``xa_load``), reads the cluster's sequence count (kept in the
first word of its ``rcu_head``, which the kernel only uses once the cluster
is dead), the table pointer and the word, then the count again: a count
that changed means the cluster was freed or reused meanwhile (retry); an
odd one means dead (the entry is gone).  Words are read and written whole
and atomically, so a reader sees a word as it was before or after a write,
as an RCU reader of ``swap_table_get()`` does.

Lock ordering:
    allocator lock (per-CPU local_lock)  ->  vswap cluster lock
    vswap cluster lock  ->  vswap si->lock (cluster lists)
    vswap cluster lock  ->  cluster_info_pool xa_lock  ->  map node free list
    vswap si->lock  ->  vswap cluster lock with spin_trylock only
    device si->lock  ->  device cluster lock (ci->lock)
A vswap cluster lock and a device cluster lock are never held together; no
two cluster locks of either kind are held at once.  Single-entry calls keep
the GIL; the loops release it; nothing is allocated, and no lock holder
waits for the GIL.
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
# the stats() dict, the structures and the messages: one definition for both cores
from vswapfast.pure.design_vswap_table import stats_dict as _stats_dict
from vswapfast.pure.design_vswap_table import entry_message as _entry_message

from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_C_CONTIGUOUS
from vswapfast._design_args cimport (
    E_OK, E_ZERO, E_NEGATIVE, E_RANGE, E_FREE, int_arg, value_arg, memcg_arg, entry_arg,
    get_u64_buffer, get_u64_pair, check_handles, count_arg, check_backing,
)

__all__ = ["VswapTableDesign", "BACKINGS"]

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
    #define VT_VALUE_MAX ((1ULL << 48) - 1)
    #define VT_NO_INDEX 0xFFFFFFFFu
    /* the vswap device: ALIGN_DOWN(UINT_MAX, SWAPFILE_CLUSTER) pages (1/7) */
    #define VT_MAX_PAGES 4294966784ULL
    #define VT_MAX_INDEX (VT_MAX_PAGES / 512 - 1)
    #define vt_ld(p)        __atomic_load_n((p), __ATOMIC_RELAXED)
    #define vt_lda(p)       __atomic_load_n((p), __ATOMIC_ACQUIRE)
    #define vt_st(p, v)     __atomic_store_n((p), (v), __ATOMIC_RELAXED)
    #define vt_str(p, v)    __atomic_store_n((p), (v), __ATOMIC_RELEASE)
    #define vt_add(p, v)    __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)
    #define vt_cas(p, o, n) __atomic_compare_exchange_n((p), (o), (n), 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)
    #define vt_xchg(p, v)   __atomic_exchange_n((p), (v), __ATOMIC_ACQ_REL)
    #define vt_fence()      __atomic_thread_fence(__ATOMIC_ACQUIRE)
    #define vt_count(p)     __atomic_store_n((p), __atomic_load_n((p), __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED)
    static inline long long vt_objects(const vswap_account *a)
    { return __atomic_load_n(&a->objects, __ATOMIC_RELAXED); }

    /* Swap table words (mm/swap_table.h, phase IV): 0 free; a shadow
     * |COUNT|Z|SHADOW|1|; a cached folio |COUNT|Z|PFN|10| (here the folio
     * number in place of the PFN); a bad slot; on device clusters the Pointer-tagged
     * reverse map |C|vswap offset|100| (3/7). */
    #define SWP_TB_COUNT_SHIFT 60
    #define SWP_TB_COUNT_MAX 15ULL            /* past it: the extend table */
    #define SWP_TB_ZERO (1ULL << 59)
    #define SWP_TB_FLAGS (~0ULL << 59)
    #define SWP_TB_BAD ((~0ULL << 4) | 0x8ULL)   /* |1...|1000| */
    #define SWP_TB_PTR_MARK 0x4ULL
    /* virtual table words (2/7, 3/7) */
    #define VSWAP_NONE 0ULL
    #define VSWAP_SWAPFILE 1ULL
    #define VSWAP_ZSWAP 2ULL
    #define VTABLE_TAG_BITS 3
    #define VTABLE_TAG_MASK 7ULL

    enum { CLUSTER_FLAG_NONE = 0, CLUSTER_FLAG_NONFULL = 2, CLUSTER_FLAG_FULL = 4,
           CLUSTER_FLAG_DEAD = 6 };

    typedef struct vt_list { struct vt_list *next, *prev; } vt_list;

    /* struct swap_cluster_info (mm/swap.h, phase IV) */
    typedef struct {
        pthread_spinlock_t lock;
        unsigned short count;
        unsigned char flags;
        unsigned char order;
        uint64_t *table;                 /* atomic_long_t __rcu * */
        unsigned int *extend_table;
        uint16_t *memcg_table;           /* struct swap_memcg_table * */
        vt_list list;
    } vt_ci;
    _Static_assert(sizeof(vt_ci) == 48, "struct swap_cluster_info is 48 bytes");

    /* struct swap_cluster_info_dynamic (1/7, 2/7) */
    typedef struct vt_cluster {
        vt_ci ci;
        unsigned int index;
        struct { uint64_t seq; void (*func)(void *); } rcu;   /* rcu_head; see above */
        uint64_t *virtual_table;         /* atomic_long_t * */
    } vt_cluster;
    _Static_assert(sizeof(vt_cluster) == 80, "struct swap_cluster_info_dynamic is 80 bytes");

    #define vt_of(l) ((vt_cluster *)((char *)(l) - offsetof(vt_cluster, ci.list)))
    static inline void vt_head_init(vt_list *h) { h->next = h->prev = h; }
    static inline void vt_list_init(vt_cluster *c) { vt_head_init(&c->ci.list); }
    static inline vt_cluster *vt_list_first(vt_list *h)
    { return h->next == h ? NULL : vt_of(h->next); }
    static inline vt_cluster *vt_list_after(vt_cluster *c, vt_list *h)
    { return c->ci.list.next == h ? NULL : vt_of(c->ci.list.next); }
    static inline void vt_list_del_init(vt_cluster *c)
    {
        c->ci.list.next->prev = c->ci.list.prev;
        c->ci.list.prev->next = c->ci.list.next;
        vt_list_init(c);
    }
    static inline void vt_list_add_tail(vt_cluster *c, vt_list *h)
    {
        c->ci.list.prev = h->prev;
        c->ci.list.next = h;
        h->prev->next = &c->ci.list;
        h->prev = &c->ci.list;
    }
    static inline vt_cluster *vt_spare_next(vt_cluster *c) { return (vt_cluster *)c->ci.list.next; }
    static inline void vt_set_spare_next(vt_cluster *c, vt_cluster *n) { c->ci.list.next = (vt_list *)n; }
    """
    uint64_t VT_VALUE_MAX
    unsigned int VT_NO_INDEX
    uint64_t VT_MAX_PAGES, VT_MAX_INDEX
    int SWP_TB_COUNT_SHIFT
    uint64_t SWP_TB_COUNT_MAX, SWP_TB_ZERO, SWP_TB_FLAGS, SWP_TB_BAD, SWP_TB_PTR_MARK
    uint64_t VSWAP_NONE, VSWAP_SWAPFILE, VSWAP_ZSWAP, VTABLE_TAG_MASK
    int VTABLE_TAG_BITS
    int CLUSTER_FLAG_NONE, CLUSTER_FLAG_NONFULL, CLUSTER_FLAG_FULL, CLUSTER_FLAG_DEAD
    ctypedef struct vt_list:
        pass
    ctypedef struct vt_ci:
        pthread_spinlock_t lock
        unsigned short count
        unsigned char flags
        uint64_t *table
        unsigned int *extend_table
        uint16_t *memcg_table
    ctypedef struct vt_rcu:
        uint64_t seq
    ctypedef struct vt_cluster:
        vt_ci ci
        unsigned int index
        vt_rcu rcu
        uint64_t *virtual_table
    uint64_t vt_ld(uint64_t *p)
    uint64_t vt_lda(uint64_t *p)
    unsigned int vt_ldi "vt_ld"(unsigned int *p)
    unsigned char vt_ldc "vt_ld"(unsigned char *p)
    uint16_t vt_ldh "vt_ld"(uint16_t *p)
    uint64_t *vt_ldp "vt_lda"(uint64_t **p)
    void vt_st(uint64_t *p, uint64_t v)
    void vt_str(uint64_t *p, uint64_t v)
    void vt_sti "vt_st"(unsigned int *p, unsigned int v)
    void vt_stc "vt_st"(unsigned char *p, unsigned char v)
    void vt_sth "vt_st"(uint16_t *p, uint16_t v)
    void vt_stp "vt_str"(uint64_t **p, uint64_t *v)
    int64_t vt_add(int64_t *p, int64_t v)
    uint64_t vt_addu "vt_add"(uint64_t *p, uint64_t v)
    bint vt_cas(int64_t *p, int64_t *old, int64_t new)
    bint vt_casp "vt_cas"(uint64_t **p, uint64_t **old, uint64_t *new)
    uint64_t *vt_xchgp "vt_xchg"(uint64_t **p, uint64_t *v)
    void vt_fence()
    void vt_count(unsigned long long *p)
    long long vt_objects(vswap_account *a)
    void vt_head_init(vt_list *h)
    void vt_list_init(vt_cluster *c)
    vt_cluster *vt_list_first(vt_list *h)
    vt_cluster *vt_list_after(vt_cluster *c, vt_list *h)
    void vt_list_del_init(vt_cluster *c)
    void vt_list_add_tail(vt_cluster *c, vt_list *h)
    vt_cluster *vt_spare_next(vt_cluster *c)
    void vt_set_spare_next(vt_cluster *c, vt_cluster *n)

DEF SWAPFILE_CLUSTER = 512
DEF CLUSTER_SHIFT = 9
DEF CLUSTER_MASK = 511
DEF TABLE_BYTES = 4096          # struct swap_table: 512 atomic_long_t
DEF VTABLE_BYTES = 4096         # the virtual table: 512 atomic_long_t
DEF MEMCG_BYTES = 1024          # struct swap_memcg_table: 512 unsigned short
DEF EXTEND_BYTES = 2048         # the extend table: 512 unsigned int
DEF SWAP_COUNT_LIMIT = (1 << 31) - 1
DEF NR_STAT_SLOTS = 64
DEF READ_MAX_RETRIES = 1000

# accounts, in the order of vswapfast.pure.design_vswap_table.STRUCTURES
DEF A_CLUSTER = 0
DEF A_CLUSTER_FREE = 1
DEF A_TABLE = 2
DEF A_TABLE_FREE = 3
DEF A_VTABLE = 4
DEF A_MEMCG = 5
DEF A_EXTEND = 6
DEF A_MAP_NODE = 7
DEF A_MAP_NODE_FREE = 8
DEF A_CLUSTER_INFO = 9
DEF A_DEVICE_TABLE = 10
DEF NR_ACCOUNTS = 11

BACKINGS = ("zswap", "disk", "zero")

# results
DEF R_FULL = -1
DEF R_NOMEM = -2
DEF R_DEVICE_FULL = -3
DEF R_BUSY = -4                 # swap_cache_add: a folio is cached
DEF R_NOT_CACHED = -5           # swap_cache_del: not the cached folio

DEF OP_STORE = 0
DEF OP_LOAD = 1
DEF OP_ERASE = 2
DEF OP_FREE = 3

ctypedef struct vt_stats:
    vxa_stats xa                    # user[0]: vswap cluster locks, user[1]: allocator lock
    unsigned long long dev_locks    # the vswap device's si->lock
    unsigned long long pdev_locks   # the swap device's si->lock
    unsigned long long ci_locks     # the swap device's cluster locks
    unsigned long long pad[5]

ctypedef struct vt_design:
    uint64_t nr_slots
    uint64_t nr_pclusters
    int64_t max_used
    vxa map                         # si->cluster_info_pool
    vxa_ctx map_ctx
    uint64_t id_top                 # cluster indices ever used are below (map xa_lock)
    pthread_spinlock_t dev_lock     # the vswap device's si->lock: its cluster lists
    vt_list nonfull
    vt_list full
    vt_cluster *spare               # freed clusters with their tables (map xa_lock)
    pthread_spinlock_t local_lock   # percpu_vswap_cluster.lock
    unsigned int cur                # percpu_vswap_cluster.offset[0] >> 9, or VT_NO_INDEX
    pthread_spinlock_t pdev_lock    # the swap device's si->lock
    uint64_t next_pcluster
    vt_ci *pclusters                # the swap device's cluster_info[]
    uint64_t *table_reserve
    vswap_account acct[NR_ACCOUNTS]
    int64_t used
    int64_t nr_zswap
    uint64_t next_handle
    long long calls
    vt_stats *stats
    char stats_space[(NR_STAT_SLOTS + 1) * 128]


# -- swap table words ---------------------------------------------------------

cdef inline uint64_t tb_count(vt_ci *ci, uint64_t w, uint64_t off) noexcept nogil:
    """swp_tb_get_count(), with the extend table past the 4-bit count."""
    cdef uint64_t c = w >> SWP_TB_COUNT_SHIFT
    if c == SWP_TB_COUNT_MAX and ci.extend_table != NULL:
        return ci.extend_table[off]
    return c

cdef inline bint tb_is_folio(uint64_t w) noexcept nogil:
    return (w & 3) == 2

cdef inline bint tb_is_shadow(uint64_t w) noexcept nogil:
    return (w & 1) == 1 and w != SWP_TB_BAD

cdef inline bint tb_used(uint64_t w) noexcept nogil:
    """An allocated virtual slot (not free, not the bad header slot)."""
    return w != 0 and w != SWP_TB_BAD

cdef inline uint64_t tb_payload(uint64_t w) noexcept nogil:
    return w & ~SWP_TB_FLAGS


# -- locks, lookups, lock-free reads -------------------------------------------

cdef inline vt_stats *vt_stats_of(vt_design *d) noexcept nogil:
    return &d.stats[vswap_this_thread() & (NR_STAT_SLOTS - 1)]

cdef inline void cluster_lock(vt_cluster *c, vt_stats *st) noexcept nogil:
    pthread_spin_lock(&c.ci.lock)
    vt_count(&st.xa.user[0])

cdef inline void cluster_unlock(vt_cluster *c) noexcept nogil:
    pthread_spin_unlock(&c.ci.lock)

cdef inline void dev_lock(vt_design *d, vt_stats *st) noexcept nogil:
    pthread_spin_lock(&d.dev_lock)
    vt_count(&st.dev_locks)

cdef inline int entry_range(uint64_t e) noexcept nogil:
    if e == 0:
        return E_ZERO
    if e >= VT_MAX_PAGES:
        return E_RANGE
    return E_OK

cdef vt_cluster *swap_cluster_lock(vt_design *d, uint64_t idx, vt_stats *st) noexcept nogil:
    """swap_cluster_lock() on the vswap device (1/7): the cluster from
    cluster_info_pool (xa_load, no lock), then its lock; NULL if it is not
    there or DEAD (or, the struct being reused, another cluster's)."""
    cdef vt_cluster *c = <vt_cluster *>vxa_load(&d.map, idx, &st.xa)
    if c == NULL:
        return NULL
    cluster_lock(c, st)
    if vt_ldc(&c.ci.flags) == CLUSTER_FLAG_DEAD or vt_ldi(&c.index) != idx:
        cluster_unlock(c)
        return NULL
    return c

cdef vt_cluster *entry_lock(vt_design *d, uint64_t e, vt_stats *st) noexcept nogil:
    """The entry's cluster locked if the entry is allocated, else NULL."""
    cdef vt_cluster *c = swap_cluster_lock(d, e >> CLUSTER_SHIFT, st)
    if c != NULL and not tb_used(c.ci.table[e & CLUSTER_MASK]):
        cluster_unlock(c)
        return NULL
    return c

cdef int swap_table_read(vt_design *d, uint64_t e, uint64_t *word, vt_stats *st) noexcept nogil:
    """swap_table_get() under rcu_read_lock(): the entry's swap table word
    with no lock, validated by the cluster's sequence count (see the
    module header).  E_FREE if the entry is not allocated."""
    cdef uint64_t idx = e >> CLUSTER_SHIFT
    cdef vt_cluster *c
    cdef uint64_t s1, s2, w
    cdef uint64_t *t
    cdef int tries
    for tries in range(READ_MAX_RETRIES):
        c = <vt_cluster *>vxa_load(&d.map, idx, &st.xa)
        if c == NULL:
            return E_FREE
        s1 = vt_lda(&c.rcu.seq)
        if s1 & 1:
            return E_FREE           # dead: its entries are gone
        t = vt_ldp(&c.ci.table)
        w = vt_lda(&t[e & CLUSTER_MASK]) if t != NULL else 0
        vt_fence()
        s2 = vt_ld(&c.rcu.seq)
        if s1 == s2:
            if vt_ldi(&c.index) != idx or not tb_used(w):
                return E_FREE
            vt_count(&st.xa.lockless_loads)
            word[0] = w
            return E_OK
        vt_count(&st.xa.load_retries)
    c = entry_lock(d, e, st)       # writers kept winning: read under the lock
    if c == NULL:
        return E_FREE
    word[0] = c.ci.table[e & CLUSTER_MASK]
    cluster_unlock(c)
    vt_count(&st.xa.locked_loads)
    return E_OK

cdef inline int entry_check(vt_design *d, uint64_t e) noexcept nogil:
    """Is ``e`` allocated?  The lock-free read, uncounted, before a loop."""
    cdef uint64_t w = 0
    cdef int why = entry_range(e)
    cdef vt_stats scratch
    if why:
        return why
    memset(&scratch, 0, sizeof(scratch))
    return swap_table_read(d, e, &w, &scratch)

cdef inline int64_t first_bad(vt_design *d, uint64_t *e, Py_ssize_t n, int *why) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        why[0] = entry_check(d, e[i])
        if why[0]:
            return i
    return -1


# -- the swap device: cluster_info[], swap tables holding the reverse map -----

cdef inline void ci_lock(vt_ci *ci, vt_stats *st) noexcept nogil:
    pthread_spin_lock(&ci.lock)
    vt_count(&st.ci_locks)

cdef int table_reserve(vt_design *d) noexcept nogil:
    """swap_cluster_alloc_table() of a device cluster, with no lock held;
    -1 when out of memory."""
    cdef uint64_t *t = <uint64_t *>vswap_account_calloc(&d.acct[A_DEVICE_TABLE], TABLE_BYTES)
    cdef uint64_t *none = NULL
    if t == NULL:
        return -1
    if not vt_casp(&d.table_reserve, &none, t):
        vswap_account_free(&d.acct[A_DEVICE_TABLE], t, TABLE_BYTES)
    return 0

cdef uint64_t device_slot_alloc(vt_design *d, uint64_t ventry, vt_stats *st, int *err) noexcept nogil:
    """folio_realloc_swap()'s swap_alloc_fast/slow, simplified as the
    xarray design's allocator: under the device's si->lock the first
    cluster with room from the last one used, under its ci->lock the first
    free (NULL) word, which gets the Pointer-tagged reverse map of
    ``ventry`` (__swap_cluster_alloc_entries, 3/7).  A cluster's swap table
    is allocated with the locks dropped; no memcg table (6/7).  0 with
    ``*err`` set when none."""
    cdef uint64_t k, p, first, last, cap, s, found = 0
    cdef vt_ci *ci
    cdef bint need_table
    while True:
        need_table = False
        pthread_spin_lock(&d.pdev_lock)
        vt_count(&st.pdev_locks)
        for k in range(d.nr_pclusters):
            p = (d.next_pcluster + k) % d.nr_pclusters
            first = p * SWAPFILE_CLUSTER
            last = min(first + SWAPFILE_CLUSTER, d.nr_slots)
            cap = last - first
            ci = &d.pclusters[p]
            # A peek without ci->lock, as the kernel's cluster_is_full():
            # the count is written atomically under the lock.
            if vt_ldh(&ci.count) >= cap:
                continue
            ci_lock(ci, st)
            if ci.table == NULL:
                ci.table = vt_xchgp(&d.table_reserve, NULL)
                if ci.table == NULL:
                    pthread_spin_unlock(&ci.lock)
                    need_table = True
                    break
            for s in range(first, last):
                if ci.table[s - first] == 0:
                    vt_st(&ci.table[s - first], (ventry << 3) | SWP_TB_PTR_MARK)
                    vt_sth(&ci.count, ci.count + 1)
                    found = s
                    break
            pthread_spin_unlock(&ci.lock)
            if found:
                d.next_pcluster = p
                break
        pthread_spin_unlock(&d.pdev_lock)
        if not need_table:
            break
        if table_reserve(d):
            err[0] = R_NOMEM
            return 0
    if not found:
        err[0] = R_DEVICE_FULL
    return found

cdef void device_slot_free(vt_design *d, uint64_t slot, vt_stats *st) noexcept nogil:
    """__swap_cluster_free_phys_backing(): under ci->lock the word cleared
    and the count dropped; an empty cluster's table is freed after the lock
    (free_cluster -> swap_cluster_free_table)."""
    cdef vt_ci *ci = &d.pclusters[slot // SWAPFILE_CLUSTER]
    cdef uint64_t *t = NULL
    ci_lock(ci, st)
    vt_st(&ci.table[slot % SWAPFILE_CLUSTER], 0)
    vt_sth(&ci.count, ci.count - 1)
    if ci.count == 0:
        t = ci.table
        ci.table = NULL
    pthread_spin_unlock(&ci.lock)
    if t != NULL:
        vswap_account_free(&d.acct[A_DEVICE_TABLE], t, TABLE_BYTES)


# -- virtual clusters -------------------------------------------------------------

cdef void cluster_publish_seq(vt_cluster *c) noexcept nogil:
    vt_str(&c.rcu.seq, c.rcu.seq + 1)

cdef vt_cluster *cluster_get(vt_design *d, vt_stats *st) noexcept nogil:
    """alloc_swap_scan_dynamic()'s kzalloc + swap_cluster_alloc_table()
    (with the memcg table) + vswap_cluster_alloc_vtable(), with no lock
    held: a spare cluster, its swap table kept, or a new one.  Reset under
    its own lock (a stale reader may lock it), its sequence count even."""
    cdef vt_cluster *c = NULL
    cdef uint64_t *vt
    cdef uint16_t *mt
    cdef int k
    vt = <uint64_t *>vswap_account_calloc(&d.acct[A_VTABLE], VTABLE_BYTES)
    mt = <uint16_t *>vswap_account_calloc(&d.acct[A_MEMCG], MEMCG_BYTES)
    if vt == NULL or mt == NULL:
        vswap_account_free(&d.acct[A_VTABLE], vt, VTABLE_BYTES)
        vswap_account_free(&d.acct[A_MEMCG], mt, MEMCG_BYTES)
        return NULL
    if vt_ldp(<uint64_t **>&d.spare) != NULL:
        vxa_lock(&d.map, &st.xa)
        c = d.spare
        if c != NULL:
            vt_stp(<uint64_t **>&d.spare, <uint64_t *>vt_spare_next(c))
            vswap_account_add(&d.acct[A_CLUSTER_FREE], -<long long>sizeof(vt_cluster), -1)
            vswap_account_add(&d.acct[A_CLUSTER], sizeof(vt_cluster), 1)
            vswap_account_add(&d.acct[A_TABLE_FREE], -TABLE_BYTES, -1)
            vswap_account_add(&d.acct[A_TABLE], TABLE_BYTES, 1)
        vxa_unlock(&d.map)
    if c == NULL:
        c = <vt_cluster *>vswap_account_calloc(&d.acct[A_CLUSTER], sizeof(vt_cluster))
        if c != NULL:
            c.ci.table = <uint64_t *>vswap_account_calloc(&d.acct[A_TABLE], TABLE_BYTES)
            if c.ci.table == NULL:
                vswap_account_free(&d.acct[A_CLUSTER], c, sizeof(vt_cluster))
                c = NULL
        if c == NULL:
            vswap_account_free(&d.acct[A_VTABLE], vt, VTABLE_BYTES)
            vswap_account_free(&d.acct[A_MEMCG], mt, MEMCG_BYTES)
            return NULL
        pthread_spin_init(&c.ci.lock, 0)
        c.rcu.seq = 1               # dead until published
        c.index = VT_NO_INDEX
    cluster_lock(c, st)
    for k in range(SWAPFILE_CLUSTER):
        vt_st(&c.ci.table[k], 0)       # words lock-free readers may read
    c.virtual_table = vt
    c.ci.memcg_table = mt
    c.ci.extend_table = NULL
    c.ci.count = 0
    vt_stc(&c.ci.flags, CLUSTER_FLAG_NONE)
    vt_list_init(c)
    cluster_unlock(c)
    return c

cdef void cluster_put_spare_locked(vt_design *d, vt_cluster *c) noexcept nogil:
    """kfree_rcu() of a dead cluster: to the spare list with its swap table
    (map xa_lock held)."""
    vt_set_spare_next(c, d.spare)
    vt_stp(<uint64_t **>&d.spare, <uint64_t *>c)
    vswap_account_add(&d.acct[A_CLUSTER], -<long long>sizeof(vt_cluster), -1)
    vswap_account_add(&d.acct[A_CLUSTER_FREE], sizeof(vt_cluster), 1)
    vswap_account_add(&d.acct[A_TABLE], -TABLE_BYTES, -1)
    vswap_account_add(&d.acct[A_TABLE_FREE], TABLE_BYTES, 1)

cdef void cluster_drop_tables(vt_design *d, uint64_t *vt, uint16_t *mt,
                              unsigned int *ext) noexcept nogil:
    """vswap_cluster_free_vtable() and the memcg and extend tables of a
    dead cluster, detached under its lock: read under the cluster lock
    only, so freed at once, after the lock."""
    vswap_account_free(&d.acct[A_VTABLE], vt, VTABLE_BYTES)
    vswap_account_free(&d.acct[A_MEMCG], mt, MEMCG_BYTES)
    vswap_account_free(&d.acct[A_EXTEND], ext, EXTEND_BYTES)

ctypedef struct vt_detached:
    uint64_t *vt
    uint16_t *mt
    unsigned int *ext
    uint64_t slot

cdef vt_cluster *alloc_swap_scan_dynamic(vt_design *d, vt_stats *st, int *err) noexcept nogil:
    """alloc_swap_scan_dynamic(): a new cluster, its index from xa_alloc()
    in cluster_info_pool (the lowest free from 1, under the pool's xa_lock;
    a node is allocated with the lock dropped, as xas_nomem).  Returned
    unlocked, published, off every list."""
    cdef vt_cluster *c = cluster_get(d, st)
    cdef uint64_t idx
    cdef uintptr_t old = 0
    cdef uint64_t *vt
    cdef uint16_t *mt
    cdef int rc
    if c == NULL:
        err[0] = R_NOMEM
        return NULL
    while True:
        vxa_lock(&d.map, &st.xa)
        idx = 1
        while idx <= VT_MAX_INDEX and vxa_load_locked(&d.map, idx) != 0:
            idx += 1
        if idx > VT_MAX_INDEX:
            rc = -1
        else:
            # atomic stores, no cluster lock: only stale readers can see it
            vt_sti(&c.index, <unsigned int>idx)
            cluster_publish_seq(c)              # even: live
            rc = vxa_store_locked(&d.map, &d.map_ctx, idx, <uintptr_t>c, &old)
            if rc == 0:
                if idx + 1 > d.id_top:
                    d.id_top = idx + 1
                vxa_unlock(&d.map)
                return c
            cluster_publish_seq(c)              # odd again
            vt_sti(&c.index, VT_NO_INDEX)
        if rc == VXA_EAGAIN:
            vxa_unlock(&d.map)
            if vxa_reserve1(&d.map_ctx) == 0:
                continue
            vxa_lock(&d.map, &st.xa)
        vt = c.virtual_table
        mt = c.ci.memcg_table
        c.virtual_table = NULL
        c.ci.memcg_table = NULL
        cluster_put_spare_locked(d, c)
        vxa_unlock(&d.map)
        cluster_drop_tables(d, vt, mt, NULL)
        err[0] = R_NOMEM if rc == VXA_EAGAIN else R_FULL
        return NULL

cdef void vswap_free_cluster(vt_design *d, vt_cluster *c, vt_detached *out, vt_stats *st) noexcept nogil:
    """vswap_free_cluster(), under the cluster lock: off the lists under
    si->lock, xa_erase() from cluster_info_pool, DEAD (the sequence count
    odd), kfree_rcu (here: the spare list).  The virtual, memcg and extend
    tables are detached into ``out`` for the caller to free once the lock
    is dropped."""
    cdef uintptr_t old = 0
    out.vt = c.virtual_table
    out.mt = c.ci.memcg_table
    out.ext = c.ci.extend_table
    c.virtual_table = NULL
    c.ci.memcg_table = NULL
    c.ci.extend_table = NULL
    if c.ci.flags != CLUSTER_FLAG_NONE:
        dev_lock(d, st)
        vt_list_del_init(c)
        pthread_spin_unlock(&d.dev_lock)
    vxa_lock(&d.map, &st.xa)
    vxa_store_locked(&d.map, &d.map_ctx, c.index, 0, &old)   # an erase allocates nothing
    vt_stc(&c.ci.flags, CLUSTER_FLAG_DEAD)
    cluster_publish_seq(c)
    cluster_put_spare_locked(d, c)
    vxa_unlock(&d.map)

cdef void relocate_full_locked(vt_design *d, vt_cluster *c, vt_stats *st) noexcept nogil:
    """relocate_cluster() of a cluster that filled up: to the full list
    (si->lock inside the cluster lock)."""
    dev_lock(d, st)
    if c.ci.flags != CLUSTER_FLAG_NONE:
        vt_list_del_init(c)
    vt_list_add_tail(c, &d.full)
    vt_stc(&c.ci.flags, CLUSTER_FLAG_FULL)
    pthread_spin_unlock(&d.dev_lock)

cdef void partial_free_locked(vt_design *d, vt_cluster *c, vt_stats *st) noexcept nogil:
    """partial_free_cluster(): a full cluster with room again goes to the
    tail of the nonfull list."""
    if c.ci.flags == CLUSTER_FLAG_FULL:
        dev_lock(d, st)
        vt_list_del_init(c)
        vt_list_add_tail(c, &d.nonfull)
        vt_stc(&c.ci.flags, CLUSTER_FLAG_NONFULL)
        pthread_spin_unlock(&d.dev_lock)


# -- allocation ---------------------------------------------------------------------

cdef uint64_t alloc_in_cluster(vt_design *d, vt_cluster *c, uint64_t folio, uint16_t memcg,
                               vt_stats *st) noexcept nogil:
    """alloc_swap_scan_cluster() + __swap_cluster_alloc_entries() of one
    slot, under the cluster lock: the first free word gets the folio (the
    swap cache) with count 1, the memcg id its memcg table entry; a full
    cluster moves to the full list.  0 if none is free."""
    cdef uint64_t off
    if c.ci.count >= SWAPFILE_CLUSTER:
        return 0
    for off in range(SWAPFILE_CLUSTER):
        if c.ci.table[off] == 0:
            break
    else:
        return 0
    vt_str(&c.ci.table[off], (1ULL << SWP_TB_COUNT_SHIFT) | (folio << 2) | 2)
    c.ci.memcg_table[off] = memcg
    c.virtual_table[off] = VSWAP_NONE
    c.ci.count += 1
    if c.ci.count == SWAPFILE_CLUSTER:
        relocate_full_locked(d, c, st)
    return (<uint64_t>c.index << CLUSTER_SHIFT) | off

cdef bint reserve_used(vt_design *d) noexcept nogil:
    cdef int64_t u = vt_ld(<uint64_t *>&d.used)
    while u < d.max_used:
        if vt_cas(&d.used, &u, u + 1):
            return True
    return False

cdef uint64_t vswap_alloc(vt_design *d, uint64_t folio, uint16_t memcg, vt_stats *st,
                          int *err) noexcept nogil:
    """vswap_alloc() (2/7) of one slot: the per-CPU vswap cluster
    (local_lock, swap_cluster_lock); else cluster_alloc_swap_entry(): a
    nonfull cluster isolated under si->lock with spin_trylock, else a new
    dynamic cluster; the cluster with room becomes the per-CPU one."""
    cdef vt_cluster *c = NULL
    cdef vt_cluster *p
    cdef uint64_t e = 0
    cdef unsigned int cur
    if not reserve_used(d):
        err[0] = R_FULL
        return 0
    pthread_spin_lock(&d.local_lock)
    vt_count(&st.xa.user[1])
    cur = d.cur
    if cur != VT_NO_INDEX:
        c = swap_cluster_lock(d, cur, st)
        if c != NULL:
            e = alloc_in_cluster(d, c, folio, memcg, st)
            if c.ci.count == SWAPFILE_CLUSTER:
                d.cur = VT_NO_INDEX
            cluster_unlock(c)
        if e == 0:
            d.cur = VT_NO_INDEX
    if e == 0:
        # isolate_lock_cluster(): a nonfull cluster, trylocked under si->lock
        c = NULL
        dev_lock(d, st)
        p = vt_list_first(&d.nonfull)
        while p != NULL:
            if pthread_spin_trylock(&p.ci.lock) == 0:
                vt_count(&st.xa.user[0])
                vt_list_del_init(p)
                vt_stc(&p.ci.flags, CLUSTER_FLAG_NONE)
                c = p
                break
            p = vt_list_after(p, &d.nonfull)
        pthread_spin_unlock(&d.dev_lock)
        if c != NULL:
            e = alloc_in_cluster(d, c, folio, memcg, st)
            if e and c.ci.count < SWAPFILE_CLUSTER:
                d.cur = c.index
            cluster_unlock(c)
    pthread_spin_unlock(&d.local_lock)
    if e == 0:
        # alloc_swap_scan_dynamic(), with the local lock dropped
        c = alloc_swap_scan_dynamic(d, st, err)
        if c == NULL:
            vt_add(&d.used, -1)
            return 0
        pthread_spin_lock(&d.local_lock)
        vt_count(&st.xa.user[1])
        cluster_lock(c, st)
        e = alloc_in_cluster(d, c, folio, memcg, st)
        if d.cur == VT_NO_INDEX:
            d.cur = c.index
        elif c.ci.flags == CLUSTER_FLAG_NONE:
            dev_lock(d, st)
            vt_list_add_tail(c, &d.nonfull)
            vt_stc(&c.ci.flags, CLUSTER_FLAG_NONFULL)
            pthread_spin_unlock(&d.dev_lock)
        cluster_unlock(c)
        pthread_spin_unlock(&d.local_lock)
    return e


# -- release -------------------------------------------------------------------------

cdef uint64_t release_backing_locked(vt_design *d, vt_cluster *c, uint64_t off) noexcept nogil:
    """__vswap_release_backing() of one slot, under the cluster lock: a
    zswap entry dropped, the zero flag cleared, the word NONE; a physical
    slot is returned for the caller to free once the lock is dropped."""
    cdef uint64_t v = c.virtual_table[off]
    cdef uint64_t slot = 0
    if (v & VTABLE_TAG_MASK) == VSWAP_SWAPFILE:
        slot = v >> VTABLE_TAG_BITS
    elif (v & VTABLE_TAG_MASK) == VSWAP_ZSWAP:
        vt_add(&d.nr_zswap, -1)
    c.virtual_table[off] = VSWAP_NONE
    if c.ci.table[off] & SWP_TB_ZERO:
        vt_str(&c.ci.table[off], c.ci.table[off] & ~SWP_TB_ZERO)
    return slot

cdef int set_count_locked(vt_design *d, vt_cluster *c, uint64_t off, uint64_t count) noexcept nogil:
    """The count into the word, past 14 into the extend table (allocated
    by the caller with no lock held: -1 when it is needed and missing)."""
    cdef uint64_t w = c.ci.table[off]
    cdef uint64_t in_word = count
    if count >= SWP_TB_COUNT_MAX:
        if c.ci.extend_table == NULL:
            return -1
        c.ci.extend_table[off] = <unsigned int>count
        in_word = SWP_TB_COUNT_MAX
    elif c.ci.extend_table != NULL and c.ci.extend_table[off]:
        c.ci.extend_table[off] = 0
    vt_str(&c.ci.table[off], (w & ~(0xFULL << SWP_TB_COUNT_SHIFT)) | (in_word << SWP_TB_COUNT_SHIFT))
    return 0

cdef unsigned int *extend_table_take_if_unused(vt_cluster *c) noexcept nogil:
    """The extend table if no slot needs it any more (detached), else NULL."""
    cdef unsigned int *t = c.ci.extend_table
    cdef int k
    if t == NULL:
        return NULL
    for k in range(SWAPFILE_CLUSTER):
        if t[k]:
            return NULL
    c.ci.extend_table = NULL
    return t

cdef void cluster_free_entry_locked(vt_design *d, vt_cluster *c, uint64_t off, vt_detached *out,
                                    vt_stats *st) noexcept nogil:
    """__swap_cluster_free_entries() of one slot (count zero): the backing
    released (a device slot into ``out``), the memcg id cleared, the word
    NULL, the cluster freed when empty (vswap_free_cluster, its tables
    into ``out``) or back on the nonfull list."""
    out.slot = release_backing_locked(d, c, off)
    c.ci.memcg_table[off] = 0
    if c.ci.extend_table != NULL:
        c.ci.extend_table[off] = 0
    vt_str(&c.ci.table[off], 0)
    c.ci.count -= 1
    if c.ci.count == 0 and c.index != 0:
        vswap_free_cluster(d, c, out, st)
    else:
        partial_free_locked(d, c, st)

cdef void finish_free(vt_design *d, vt_detached *out, vt_stats *st) noexcept nogil:
    """After the cluster lock: the device slot and a dead cluster's tables."""
    cluster_drop_tables(d, out.vt, out.mt, out.ext)
    if out.slot:
        device_slot_free(d, out.slot, st)
    vt_add(&d.used, -1)

cdef int swap_free_one(vt_design *d, uint64_t e, vt_stats *st) noexcept nogil:
    """swap_put_entries_cluster() of one entry under the cluster lock; at
    zero, __swap_cluster_free_entries().  E_FREE if not allocated."""
    cdef vt_cluster *c = entry_lock(d, e, st)
    cdef uint64_t off = e & CLUSTER_MASK
    cdef uint64_t count
    cdef unsigned int *ext = NULL
    cdef vt_detached out
    if c == NULL:
        return E_FREE
    count = tb_count(&c.ci, c.ci.table[off], off) - 1
    if count:
        set_count_locked(d, c, off, count)       # lowering never needs a table
        ext = extend_table_take_if_unused(c)
        cluster_unlock(c)
        if ext != NULL:
            vswap_account_free(&d.acct[A_EXTEND], ext, EXTEND_BYTES)
        return E_OK
    memset(&out, 0, sizeof(out))
    cluster_free_entry_locked(d, c, off, &out, st)
    cluster_unlock(c)
    finish_free(d, &out, st)
    return E_OK


# -- backings -------------------------------------------------------------------------

cdef int zswap_store_one(vt_design *d, uint64_t e, uint64_t handle, uint64_t *old,
                         vt_stats *st) noexcept nogil:
    """vswap_zswap_store() (2/7): under the cluster lock the previous
    backing released (__vswap_release_backing) and the ZSWAP word set."""
    cdef vt_cluster *c = entry_lock(d, e, st)
    cdef uint64_t off = e & CLUSTER_MASK
    cdef uint64_t v, slot
    if c == NULL:
        return E_FREE
    v = c.virtual_table[off]
    old[0] = v >> VTABLE_TAG_BITS if (v & VTABLE_TAG_MASK) == VSWAP_ZSWAP else 0
    slot = release_backing_locked(d, c, off)
    c.virtual_table[off] = (handle << VTABLE_TAG_BITS) | VSWAP_ZSWAP
    vt_add(&d.nr_zswap, 1)
    cluster_unlock(c)
    if slot:
        device_slot_free(d, slot, st)
    return E_OK

cdef int zswap_load_one(vt_design *d, uint64_t e, uint64_t *h, vt_stats *st) noexcept nogil:
    """vswap_zswap_load() (2/7): the virtual table word under the cluster lock."""
    cdef vt_cluster *c = entry_lock(d, e, st)
    cdef uint64_t v
    if c == NULL:
        return E_FREE
    v = c.virtual_table[e & CLUSTER_MASK]
    cluster_unlock(c)
    h[0] = v >> VTABLE_TAG_BITS if (v & VTABLE_TAG_MASK) == VSWAP_ZSWAP else 0
    return E_OK

cdef int zswap_erase_one(vt_design *d, uint64_t e, uint64_t *old, vt_stats *st) noexcept nogil:
    """zswap_load()'s folio_release_vswap_backing() of a zswap-backed slot
    (the entry freed, the word NONE), under the cluster lock."""
    cdef vt_cluster *c = entry_lock(d, e, st)
    cdef uint64_t off = e & CLUSTER_MASK
    cdef uint64_t v
    if c == NULL:
        return E_FREE
    v = c.virtual_table[off]
    old[0] = 0
    if (v & VTABLE_TAG_MASK) == VSWAP_ZSWAP:
        old[0] = v >> VTABLE_TAG_BITS
        release_backing_locked(d, c, off)
    cluster_unlock(c)
    return E_OK

cdef int set_zero_one(vt_design *d, uint64_t e, vt_stats *st) noexcept nogil:
    """swap_zeromap_folio_set() (2/7): under the cluster lock the backing
    released, then the zero flag set in the swap table word."""
    cdef vt_cluster *c = entry_lock(d, e, st)
    cdef uint64_t off = e & CLUSTER_MASK
    cdef uint64_t slot
    if c == NULL:
        return E_FREE
    slot = release_backing_locked(d, c, off)
    vt_str(&c.ci.table[off], c.ci.table[off] | SWP_TB_ZERO)
    cluster_unlock(c)
    if slot:
        device_slot_free(d, slot, st)
    return E_OK

cdef int writeout_one(vt_design *d, uint64_t e, uint64_t *slot, vt_stats *st) noexcept nogil:
    """swap_writeout() of a vswap folio (3/7): folio_release_non_phys_swap_backing()
    (a zswap entry or the zero flag dropped, under the cluster lock), then
    folio_realloc_swap(): vswap_to_phys() (cluster lock) keeps an existing
    slot; else a device slot with its reverse map, then the PHYS word under
    the cluster lock."""
    cdef vt_cluster *c = entry_lock(d, e, st)
    cdef uint64_t off = e & CLUSTER_MASK
    cdef uint64_t v, s, other
    cdef int err = 0
    if c == NULL:
        return E_FREE
    if (c.virtual_table[off] & VTABLE_TAG_MASK) != VSWAP_SWAPFILE:
        release_backing_locked(d, c, off)
    cluster_unlock(c)
    c = entry_lock(d, e, st)                       # vswap_to_phys()
    if c == NULL:
        return E_FREE
    v = c.virtual_table[off]
    cluster_unlock(c)
    if (v & VTABLE_TAG_MASK) == VSWAP_SWAPFILE:
        slot[0] = v >> VTABLE_TAG_BITS
        return E_OK
    s = device_slot_alloc(d, e, st, &err)
    if s == 0:
        return err
    c = entry_lock(d, e, st)
    if c == NULL:
        device_slot_free(d, s, st)
        return E_FREE
    v = c.virtual_table[off]
    if (v & VTABLE_TAG_MASK) == VSWAP_SWAPFILE:     # written out meanwhile
        cluster_unlock(c)
        device_slot_free(d, s, st)
        slot[0] = v >> VTABLE_TAG_BITS
        return E_OK
    release_backing_locked(d, c, off)
    c.virtual_table[off] = (s << VTABLE_TAG_BITS) | VSWAP_SWAPFILE
    cluster_unlock(c)
    slot[0] = s
    return E_OK

cdef int cache_del_one(vt_design *d, uint64_t e, uint64_t folio, uint64_t shadow, uint64_t *cur,
                       vt_stats *st) noexcept nogil:
    """swap_cache_del_folio() / __swap_cache_del_folio(): under the cluster
    lock the folio word replaced by its shadow (count and zero flag kept).
    R_NOT_CACHED (``*cur`` the word) if ``folio`` is not the cached one."""
    cdef vt_cluster *c = entry_lock(d, e, st)
    cdef uint64_t off = e & CLUSTER_MASK
    cdef uint64_t w
    if c == NULL:
        return E_FREE
    w = c.ci.table[off]
    cur[0] = w
    if not tb_is_folio(w) or tb_payload(w) != (folio << 2) | 2:
        cluster_unlock(c)
        return R_NOT_CACHED
    vt_str(&c.ci.table[off], (w & SWP_TB_FLAGS) | (shadow << 1) | 1)
    cluster_unlock(c)
    return E_OK

cdef int cache_add_one(vt_design *d, uint64_t e, uint64_t folio, uint64_t *old,
                       vt_stats *st) noexcept nogil:
    """__swap_cache_alloc() (1/7): __swap_cache_add_check() under the
    cluster lock, then again with __swap_cache_do_add_folio() (the shadow
    replaced by the folio).  R_BUSY if a folio is cached."""
    cdef vt_cluster *c = entry_lock(d, e, st)
    cdef uint64_t off = e & CLUSTER_MASK
    cdef uint64_t w
    if c == NULL:
        return E_FREE
    w = c.ci.table[off]
    cluster_unlock(c)
    if tb_is_folio(w):
        return R_BUSY
    c = entry_lock(d, e, st)
    if c == NULL:
        return E_FREE
    w = c.ci.table[off]
    if tb_is_folio(w):
        cluster_unlock(c)
        return R_BUSY
    old[0] = w
    vt_str(&c.ci.table[off], (w & SWP_TB_FLAGS) | (folio << 2) | 2)
    cluster_unlock(c)
    return E_OK

cdef int64_t swap_out_loop(vt_design *d, uint64_t *out, uint64_t count, int backing,
                           uint16_t memcg, vt_stats *st) noexcept nogil:
    """swap_out_many in C, page by page; R_FULL / R_NOMEM / R_DEVICE_FULL
    with every page of the call released."""
    cdef uint64_t k, e, h, old = 0, cur = 0
    cdef int err = 0
    cdef int64_t rc = 0
    for k in range(count):
        e = vswap_alloc(d, 1, memcg, st, &err)
        if e == 0:
            rc = err
            break
        out[k] = e
        if backing == 0:
            h = vt_addu(&d.next_handle, 1) % VT_VALUE_MAX + 1
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

cdef vt_cluster *cluster_locked(vt_design *d, uint64_t idx, vt_stats *st) noexcept nogil:
    return swap_cluster_lock(d, idx, st)

cdef int64_t run_loop(vt_design *d, uint64_t *e, uint64_t *h, uint64_t *o, Py_ssize_t n,
                      bint batch, int op, vt_stats *st) noexcept nogil:
    """One kernel operation per entry (swap_cluster_lock each), or with
    ``batch`` one lookup and lock per run of entries in the same cluster.
    An entry freed since the check is skipped.  Returns how many held
    (load, erase) or replaced (store) a handle."""
    cdef Py_ssize_t i = 0, j, k
    cdef int64_t hits = 0
    cdef uint64_t x = 0, idx, off, v, slot
    cdef vt_cluster *c
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
        idx = e[i] >> CLUSTER_SHIFT
        while j < n and (e[j] >> CLUSTER_SHIFT) == idx:
            j += 1
        c = cluster_locked(d, idx, st)
        k = i
        while k < j:
            x = 0
            off = e[k] & CLUSTER_MASK
            if c != NULL and tb_used(c.ci.table[off]):
                v = c.virtual_table[off]
                if (v & VTABLE_TAG_MASK) == VSWAP_ZSWAP:
                    x = v >> VTABLE_TAG_BITS
                if op == OP_STORE:
                    slot = release_backing_locked(d, c, off)
                    c.virtual_table[off] = (h[k] << VTABLE_TAG_BITS) | VSWAP_ZSWAP
                    vt_add(&d.nr_zswap, 1)
                    if slot:
                        # the device slot is freed with the vswap lock dropped
                        cluster_unlock(c)
                        device_slot_free(d, slot, st)
                        c = cluster_locked(d, idx, st)
                elif op == OP_ERASE and x:
                    release_backing_locked(d, c, off)
            if op == OP_LOAD:
                o[k] = x
            hits += x != 0
            k += 1
        if c != NULL:
            cluster_unlock(c)
        i = j
    return hits


# -- life ------------------------------------------------------------------------------

cdef void vt_free(vt_design *d) noexcept nogil:
    """Free every structure (no call may be in flight)."""
    cdef uint64_t idx, p
    cdef vt_cluster *c
    for idx in range(d.id_top):
        c = <vt_cluster *>vxa_load_locked(&d.map, idx)
        if c != NULL:
            cluster_drop_tables(d, c.virtual_table, c.ci.memcg_table, c.ci.extend_table)
            vswap_account_free(&d.acct[A_TABLE], c.ci.table, TABLE_BYTES)
            pthread_spin_destroy(&c.ci.lock)
            vswap_account_free(&d.acct[A_CLUSTER], c, sizeof(vt_cluster))
    while d.spare != NULL:
        c = d.spare
        d.spare = vt_spare_next(c)
        vswap_account_free(&d.acct[A_TABLE_FREE], c.ci.table, TABLE_BYTES)
        pthread_spin_destroy(&c.ci.lock)
        vswap_account_free(&d.acct[A_CLUSTER_FREE], c, sizeof(vt_cluster))
    vxa_destroy(&d.map, &d.map_ctx)
    vxa_ctx_destroy(&d.map_ctx)
    if d.pclusters != NULL:
        for p in range(d.nr_pclusters):
            vswap_account_free(&d.acct[A_DEVICE_TABLE], d.pclusters[p].table, TABLE_BYTES)
            pthread_spin_destroy(&d.pclusters[p].lock)
        vswap_account_free(&d.acct[A_CLUSTER_INFO], d.pclusters, d.nr_pclusters * sizeof(vt_ci))
    vswap_account_free(&d.acct[A_DEVICE_TABLE], d.table_reserve, TABLE_BYTES)
    pthread_spin_destroy(&d.dev_lock)
    pthread_spin_destroy(&d.pdev_lock)
    pthread_spin_destroy(&d.local_lock)
    PyMem_RawFree(d)

cdef vt_design *vt_new(uint64_t nr_slots) noexcept nogil:
    """vswap_init() + setup_swap_clusters_info() of the vswap device (the
    pool with cluster 0, its slot 0 bad) and swapon of the swap device
    (cluster_info[], cluster 0's swap table with its header slot bad).
    NULL when out of memory."""
    cdef vt_design *d = <vt_design *>PyMem_RawCalloc(1, sizeof(vt_design))
    cdef vt_cluster *c0
    cdef vt_stats scratch
    cdef uintptr_t old = 0
    cdef uint64_t p
    if d == NULL:
        return NULL
    d.stats = <vt_stats *>((<uintptr_t>d.stats_space + 127) & ~(<uintptr_t>127))
    d.nr_slots = nr_slots
    d.nr_pclusters = (nr_slots + SWAPFILE_CLUSTER - 1) // SWAPFILE_CLUSTER
    d.max_used = nr_slots - 1
    d.cur = VT_NO_INDEX
    vxa_init(&d.map)
    vxa_ctx_init(&d.map_ctx, &d.acct[A_MAP_NODE], &d.acct[A_MAP_NODE_FREE])
    vt_head_init(&d.nonfull)
    vt_head_init(&d.full)
    pthread_spin_init(&d.dev_lock, 0)
    pthread_spin_init(&d.pdev_lock, 0)
    pthread_spin_init(&d.local_lock, 0)
    d.pclusters = <vt_ci *>vswap_account_calloc(&d.acct[A_CLUSTER_INFO], d.nr_pclusters * sizeof(vt_ci))
    if d.pclusters == NULL:
        vt_free(d)
        return NULL
    for p in range(d.nr_pclusters):
        pthread_spin_init(&d.pclusters[p].lock, 0)
    d.pclusters[0].table = <uint64_t *>vswap_account_calloc(&d.acct[A_DEVICE_TABLE], TABLE_BYTES)
    memset(&scratch, 0, sizeof(scratch))
    c0 = cluster_get(d, &scratch)
    if d.pclusters[0].table == NULL or c0 == NULL:
        vt_free(d)
        return NULL
    d.pclusters[0].table[0] = SWP_TB_BAD
    d.pclusters[0].count = 1
    c0.index = 0
    c0.rcu.seq = 2
    c0.ci.table[0] = SWP_TB_BAD
    c0.ci.count = 1
    c0.ci.flags = CLUSTER_FLAG_NONFULL
    vt_list_add_tail(c0, &d.nonfull)
    vxa_store_locked(&d.map, &d.map_ctx, 0, <uintptr_t>c0, &old)    # index 0: in the head
    d.id_top = 1
    return d


# -- the Python class ------------------------------------------------------------------

@cython.no_gc_clear
@cython.final
cdef class VswapTableDesign:
    """The virtual swap space, swap table edition (RFC v2): virtual slots
    in dynamic swap-table clusters found through an xarray, an 8-byte swap
    table word (folio or shadow, count, zero flag), an 8-byte virtual table
    word (zswap entry or device slot) and a 2-byte memcg id per slot, the
    reverse map in the swap device's tables for disk-backed slots only.
    Swap-cache and zero-flag reads are lock-free; the virtual table is read
    under the cluster lock.  See docs/designs.md and this module's header.

    Thread-safe; ``close()`` waits for the calls in flight.
    """

    cdef vt_design *d
    cdef readonly uint64_t nr_slots

    name = "vswap-table"

    def __cinit__(self, nr_slots):
        nr_slots = int_arg(nr_slots, "nr_slots")
        if not 1 <= nr_slots <= (1 << 32):
            raise ValueError("nr_slots must be in 1 .. 2**32, not %d" % nr_slots)
        self.nr_slots = nr_slots
        with nogil:
            self.d = vt_new(self.nr_slots)
        if self.d == NULL:
            raise MemoryError("no memory for the swap metadata of %d slots" % nr_slots)

    def __dealloc__(self):
        self._close()

    cdef void _close(self) noexcept:
        cdef vt_design *d = self.d
        if d == NULL:
            return
        self.d = NULL
        with nogil:
            vswap_wait_zero(&d.calls)
            vt_free(d)

    def close(self):
        """Free every structure once the calls in flight on other threads
        have finished; closing again does nothing; later calls raise
        ValueError."""
        self._close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._close()

    cdef vt_design *_enter(self) except NULL:
        cdef vt_design *d = self.d
        if d == NULL:
            raise ValueError("vswap-table design is closed")
        vswap_seq_add(&d.calls, 1)
        return d

    cdef int _leave_bad(self, vt_design *d, object entry, int why) except -1:
        vswap_seq_add(&d.calls, -1)
        raise InvalidEntryError(_entry_message(int_arg(entry, "swap entry"), why))

    cdef vt_design *_enter_entry(self, object entry, int kind, uint64_t val) except NULL:
        cdef vt_design *d = self._enter()
        cdef int why = kind if kind else entry_range(val)
        if why:
            self._leave_bad(d, entry, why)
        return d

    cdef int _raise_full(self, vt_design *d, int err) except -1:
        cdef int64_t used = d.used
        vswap_seq_add(&d.calls, -1)
        if err == R_NOMEM:
            raise MemoryError("no memory for a vswap cluster or a swap table")
        if err == R_DEVICE_FULL:
            raise SwapFullError("no free slot left on the swap device (nr_slots is %d)"
                                % self.nr_slots)
        raise SwapFullError("no free virtual swap slot left (%d of %d used)"
                            % (used, self.nr_slots - 1))

    def folio_alloc_swap(self, folio, memcg=0):
        """folio_alloc_swap() -> vswap_alloc() (2/7): a virtual slot from the
        per-CPU vswap cluster (allocator lock, cluster lock), a nonfull
        cluster (si->lock) or a new dynamic one; the folio in its swap
        table word with count 1, the memcg id in its memcg table."""
        cdef uint64_t f = value_arg(folio, "folio", 1)
        cdef uint16_t m = memcg_arg(memcg)
        cdef vt_design *d = self._enter()
        cdef int err = 0
        cdef uint64_t e = vswap_alloc(d, f, m, vt_stats_of(d), &err)
        if e == 0:
            self._raise_full(d, err)
        vswap_seq_add(&d.calls, -1)
        return e

    cdef uint64_t _word(self, object entry) except? 0xFFFFFFFFFFFFFFFF:
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef vt_design *d = self._enter_entry(entry, kind, val)
        cdef uint64_t w = 0
        if swap_table_read(d, val, &w, vt_stats_of(d)):
            self._leave_bad(d, entry, E_FREE)
        vswap_seq_add(&d.calls, -1)
        return w

    def swap_cache_get_folio(self, entry):
        """swap_cache_get_folio(): swap_table_get() under RCU, no lock."""
        cdef uint64_t w = self._word(entry)
        if tb_is_folio(w):
            return tb_payload(w) >> 2
        return None

    def swap_cache_get_shadow(self, entry):
        """swap_cache_get_shadow(): swap_table_get() under RCU, no lock."""
        cdef uint64_t w = self._word(entry)
        if tb_is_shadow(w):
            return tb_payload(w) >> 1
        return None

    def swap_cache_add_folio(self, entry, folio):
        """__swap_cache_alloc(): the add check and the add, each under the
        cluster lock; returns the shadow replaced, or None."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef uint64_t f = value_arg(folio, "folio", 1)
        cdef vt_design *d = self._enter_entry(entry, kind, val)
        cdef uint64_t old = 0
        cdef int rc = cache_add_one(d, val, f, &old, vt_stats_of(d))
        if rc == E_FREE:
            self._leave_bad(d, entry, E_FREE)
        vswap_seq_add(&d.calls, -1)
        if rc == R_BUSY:
            raise SwapCacheError("swap entry %d already has a folio in the swap cache" % val)
        if tb_is_shadow(old):
            return tb_payload(old) >> 1
        return None

    def swap_cache_del_folio(self, entry, folio, shadow=0):
        """swap_cache_del_folio(): the folio replaced by its shadow under
        the cluster lock.  ``SwapCacheError`` if ``folio`` is not cached."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef uint64_t f = value_arg(folio, "folio", 1)
        cdef uint64_t sh = value_arg(shadow, "shadow", 0)
        cdef vt_design *d = self._enter_entry(entry, kind, val)
        cdef uint64_t cur = 0
        cdef int rc = cache_del_one(d, val, f, sh, &cur, vt_stats_of(d))
        if rc == E_FREE:
            self._leave_bad(d, entry, E_FREE)
        vswap_seq_add(&d.calls, -1)
        if rc:
            raise SwapCacheError(
                "folio %d is not the one in the swap cache of entry %d (%s)"
                % (f, val, "folio %d" % (tb_payload(cur) >> 2) if tb_is_folio(cur) else "no folio"))

    def zswap_entry_store(self, entry, handle):
        """vswap_zswap_store() (2/7): under the cluster lock; returns the
        handle replaced, or None."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef uint64_t h = value_arg(handle, "handle", 1)
        cdef vt_design *d = self._enter_entry(entry, kind, val)
        cdef uint64_t old = 0
        if zswap_store_one(d, val, h, &old, vt_stats_of(d)):
            self._leave_bad(d, entry, E_FREE)
        vswap_seq_add(&d.calls, -1)
        return old if old else None

    def zswap_entry_load(self, entry):
        """vswap_zswap_load() (2/7): under the cluster lock."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef vt_design *d = self._enter_entry(entry, kind, val)
        cdef uint64_t h = 0
        if zswap_load_one(d, val, &h, vt_stats_of(d)):
            self._leave_bad(d, entry, E_FREE)
        vswap_seq_add(&d.calls, -1)
        return h if h else None

    def zswap_entry_erase(self, entry):
        """folio_release_vswap_backing() of a zswap-backed slot, under the
        cluster lock; the handle or None."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef vt_design *d = self._enter_entry(entry, kind, val)
        cdef uint64_t old = 0
        if zswap_erase_one(d, val, &old, vt_stats_of(d)):
            self._leave_bad(d, entry, E_FREE)
        vswap_seq_add(&d.calls, -1)
        return old if old else None

    def zswap_empty(self):
        """No virtual table word holds a zswap entry (a counter read)."""
        cdef vt_design *d = self._enter()
        cdef bint empty = vt_ld(<uint64_t *>&d.nr_zswap) == 0
        vswap_seq_add(&d.calls, -1)
        return empty

    def set_zero(self, entry):
        """swap_zeromap_folio_set() (2/7): the backing released and the
        zero flag set, under the cluster lock."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef vt_design *d = self._enter_entry(entry, kind, val)
        if set_zero_one(d, val, vt_stats_of(d)):
            self._leave_bad(d, entry, E_FREE)
        vswap_seq_add(&d.calls, -1)

    def is_zero(self, entry):
        """swap_zeromap_batch() of one entry: the zero flag of its swap
        table word, read under RCU with no lock."""
        return bool(self._word(entry) & SWP_TB_ZERO)

    def swap_writeout(self, entry):
        """swap_writeout() of a vswap folio: folio_release_non_phys_swap_backing(),
        folio_realloc_swap() (a device slot with its reverse map, the PHYS
        word).  Returns the device slot; ``SwapFullError`` when the device
        is full."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef vt_design *d = self._enter_entry(entry, kind, val)
        cdef uint64_t slot = 0
        cdef int rc = writeout_one(d, val, &slot, vt_stats_of(d))
        if rc == E_FREE:
            self._leave_bad(d, entry, E_FREE)
        if rc:
            self._raise_full(d, rc)
        vswap_seq_add(&d.calls, -1)
        return slot

    def get_slot(self, entry):
        """vswap_to_phys() (3/7): the PHYS word under the cluster lock."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef vt_design *d = self._enter_entry(entry, kind, val)
        cdef vt_cluster *c = entry_lock(d, val, vt_stats_of(d))
        cdef uint64_t v
        if c == NULL:
            self._leave_bad(d, entry, E_FREE)
        v = c.virtual_table[val & CLUSTER_MASK]
        cluster_unlock(c)
        vswap_seq_add(&d.calls, -1)
        if (v & VTABLE_TAG_MASK) == VSWAP_SWAPFILE:
            return v >> VTABLE_TAG_BITS
        return None

    def swap_duplicate(self, entry):
        """swap_dup_entries_cluster(): the count + 1 under the cluster lock
        (the extend table allocated with the lock dropped, then a retry)."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef vt_design *d = self._enter_entry(entry, kind, val)
        cdef vt_stats *st = vt_stats_of(d)
        cdef vt_cluster *c
        cdef uint64_t off = val & CLUSTER_MASK
        cdef uint64_t count
        cdef unsigned int *ext
        while True:
            c = entry_lock(d, val, st)
            if c == NULL:
                self._leave_bad(d, entry, E_FREE)
            count = tb_count(&c.ci, c.ci.table[off], off) + 1
            if count > SWAP_COUNT_LIMIT:
                cluster_unlock(c)
                vswap_seq_add(&d.calls, -1)
                raise ValueError("swap count of entry %d would exceed 2**31 - 1" % val)
            if set_count_locked(d, c, off, count) == 0:
                cluster_unlock(c)
                break
            cluster_unlock(c)
            # swap_extend_table_alloc(), with no lock held
            ext = <unsigned int *>vswap_account_calloc(&d.acct[A_EXTEND], EXTEND_BYTES)
            if ext == NULL:
                vswap_seq_add(&d.calls, -1)
                raise MemoryError("no memory for a swap extend table")
            c = entry_lock(d, val, st)
            if c != NULL and c.ci.extend_table == NULL:
                c.ci.extend_table = ext
                ext = NULL
            if c != NULL:
                cluster_unlock(c)
            if ext != NULL:
                vswap_account_free(&d.acct[A_EXTEND], ext, EXTEND_BYTES)
        vswap_seq_add(&d.calls, -1)
        return count

    def swap_count(self, entry):
        """swp_swapcount(): the count, read under the cluster lock."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef vt_design *d = self._enter_entry(entry, kind, val)
        cdef vt_cluster *c = entry_lock(d, val, vt_stats_of(d))
        cdef uint64_t count
        if c == NULL:
            self._leave_bad(d, entry, E_FREE)
        count = tb_count(&c.ci, c.ci.table[val & CLUSTER_MASK], val & CLUSTER_MASK)
        cluster_unlock(c)
        vswap_seq_add(&d.calls, -1)
        return count

    def swap_free(self, entry):
        """swap_put_entries_cluster() of one entry under the cluster lock;
        at zero the slot and everything it holds are released."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef vt_design *d = self._enter_entry(entry, kind, val)
        if swap_free_one(d, val, vt_stats_of(d)):
            self._leave_bad(d, entry, E_FREE)
        vswap_seq_add(&d.calls, -1)

    # -- loops ---------------------------------------------------------------

    cdef int _check_entries(self, vt_design *d, uint64_t *e, Py_ssize_t n) except -1:
        cdef int why = 0
        cdef int64_t i
        with nogil:
            i = first_bad(d, e, n, &why)
        if i >= 0:
            vswap_seq_add(&d.calls, -1)
            raise InvalidEntryError("entries[%d]: %s" % (i, _entry_message(e[i], why)))
        return 0

    def zswap_entry_store_many(self, entries, handles, batch=False):
        """vswap_zswap_store of each page (one cluster lock each, or one per
        run in a cluster with ``batch=True``); how many replaced a handle."""
        cdef Py_buffer ev, hv
        cdef vt_design *d
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
                replaced = run_loop(d, e, h, NULL, n, b, OP_STORE, vt_stats_of(d))
            vswap_seq_add(&d.calls, -1)
            return replaced
        finally:
            PyBuffer_Release(&hv)
            PyBuffer_Release(&ev)

    def zswap_entry_load_many(self, entries, out, batch=False):
        """vswap_zswap_load of each page (cluster lock each, or per run);
        ``out[i]`` the handle or 0; how many held one."""
        cdef Py_buffer ev, ov
        cdef vt_design *d
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
                found = run_loop(d, e, NULL, o, n, b, OP_LOAD, vt_stats_of(d))
            vswap_seq_add(&d.calls, -1)
            return found
        finally:
            PyBuffer_Release(&ov)
            PyBuffer_Release(&ev)

    def zswap_entry_erase_many(self, entries, batch=False):
        """The zswap backing of each page released (cluster lock each, or
        per run); how many held a handle."""
        cdef Py_buffer ev
        cdef vt_design *d
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
                erased = run_loop(d, e, NULL, NULL, n, b, OP_ERASE, vt_stats_of(d))
            vswap_seq_add(&d.calls, -1)
            return erased
        finally:
            PyBuffer_Release(&ev)

    def swap_out_many(self, count, backing="zswap", memcg=0):
        """Swap out ``count`` pages (folio_alloc_swap, the backing,
        swap_cache_del_folio leaving the entry as shadow).  ``SwapFullError``
        (every page of the call released) when full."""
        cdef int64_t c, rc
        cdef int bk
        cdef uint16_t m
        cdef vt_design *d
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
                rc = swap_out_loop(d, o, c, bk, m, vt_stats_of(d))
            if rc:
                self._raise_full(d, <int>rc)
            vswap_seq_add(&d.calls, -1)
        finally:
            PyBuffer_Release(&ov)
        return out

    def swap_free_many(self, entries):
        """swap_free of each entry (checked first)."""
        cdef Py_buffer ev
        cdef vt_design *d
        cdef uint64_t *e
        cdef Py_ssize_t n
        get_u64_buffer(entries, &ev, "entries", False)
        try:
            n = ev.len // 8
            e = <uint64_t *>ev.buf
            d = self._enter()
            self._check_entries(d, e, n)
            with nogil:
                run_loop(d, e, NULL, NULL, n, False, OP_FREE, vt_stats_of(d))
            vswap_seq_add(&d.calls, -1)
        finally:
            PyBuffer_Release(&ev)

    # -- introspection -------------------------------------------------------

    def metadata_bytes(self):
        """Bytes of metadata held now, from the allocation counters."""
        cdef vt_design *d = self._enter()
        cdef long long total = 0
        cdef int a
        for a in range(NR_ACCOUNTS):
            total += vswap_account_bytes(&d.acct[a])
        vswap_seq_add(&d.calls, -1)
        return total

    def stats(self):
        """Counters and byte counts; see docs/designs.md."""
        cdef vt_design *d = self._enter()
        cdef unsigned long long ll = 0, lr = 0, lk = 0, xl = 0, cl = 0, al = 0
        cdef unsigned long long dl = 0, ql = 0, pl = 0
        cdef long long objs = 0
        cdef long long nbytes[NR_ACCOUNTS]
        cdef int64_t used, nz
        cdef int a
        for a in range(NR_STAT_SLOTS):
            ll += vt_ld(<uint64_t *>&d.stats[a].xa.lockless_loads)
            lr += vt_ld(<uint64_t *>&d.stats[a].xa.load_retries)
            lk += vt_ld(<uint64_t *>&d.stats[a].xa.locked_loads)
            xl += vt_ld(<uint64_t *>&d.stats[a].xa.lock_acquisitions)
            cl += vt_ld(<uint64_t *>&d.stats[a].xa.user[0])
            al += vt_ld(<uint64_t *>&d.stats[a].xa.user[1])
            dl += vt_ld(<uint64_t *>&d.stats[a].dev_locks)
            ql += vt_ld(<uint64_t *>&d.stats[a].pdev_locks)
            pl += vt_ld(<uint64_t *>&d.stats[a].ci_locks)
        for a in range(NR_ACCOUNTS):
            nbytes[a] = vswap_account_bytes(&d.acct[a])
            objs += vt_objects(&d.acct[a])
        used = d.used
        nz = d.nr_zswap
        vswap_seq_add(&d.calls, -1)
        return _stats_dict("compiled", self.nr_slots, used, nz, objs,
                           [nbytes[a] for a in range(NR_ACCOUNTS)],
                           ll, lr, lk, xl, cl, al, dl, ql, pl)

    def __len__(self):
        cdef vt_design *d = self._enter()
        cdef int64_t used = d.used
        vswap_seq_add(&d.calls, -1)
        return used

    def __repr__(self):
        if self.d == NULL:
            return "<VswapTableDesign closed core=compiled>"
        return "<VswapTableDesign nr_slots=%d used=%d bytes=%d core=compiled>" % (
            self.nr_slots, len(self), self.metadata_bytes())
