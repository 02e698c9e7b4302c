# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The ``rbtree`` design: swap metadata when zswap kept one red-black tree
per swap device.

Models Linux 6.5 .. 6.7 (x86-64), the last releases before the 2024
changes: 6.8 split the tree per 64 MiB ("mm/zswap: split zswap rb-tree",
Chengming Zhou) and 6.10 replaced it with xarrays ("zswap: replace RB tree
with xarray", Chris Li).  Sources followed (mm/zswap.c as of 6.6/6.7):

- mm/zswap.c: ``struct zswap_tree { struct rb_root rbroot; spinlock_t lock;
  }``, one per swap device (``zswap_trees[type]``, kzalloc'd by
  ``zswap_swapon()``); ``struct zswap_entry`` embeds the ``struct rb_node
  rbnode`` and a ``refcount``.  ``zswap_store()`` takes ``tree->lock``
  twice: once to find a duplicate (``zswap_rb_search()``) and invalidate
  it (``zswap_invalidate_entry()``: ``zswap_rb_erase()`` + ``zswap_entry_put()``),
  once, after compressing, to insert (``zswap_rb_insert()``: walk by swap
  offset, ``rb_link_node()`` + ``rb_insert_color()``; -EEXIST invalidates
  the duplicate and retries); a same-filled page is an entry of
  ``length`` 0 holding the fill value.  ``zswap_load()`` takes
  ``tree->lock`` to find the entry and take a reference
  (``zswap_entry_find_get()``), drops it to decompress, and takes it again
  to drop the reference (``zswap_entry_put()``, which frees an entry
  invalidated meanwhile).  ``zswap_invalidate()`` searches and invalidates
  under ``tree->lock``.  Every zswap lookup takes the tree lock: no
  lock-free reads.
- include/linux/rbtree_types.h, include/linux/rbtree.h, lib/rbtree.c:
  ``struct rb_node`` (``__rb_parent_color``, ``rb_right``, ``rb_left``:
  24 bytes), ``rb_link_node()``, ``rb_insert_color()``, ``rb_erase()``,
  ``RB_CLEAR_NODE`` -- modelled in rbtree.h.
- mm/swap_state.c: the swap cache and shadows in one ``struct
  address_space`` per 64 MiB (``i_pages`` xarray, ``swap_cache_index()``),
  as in the ``xarray`` design (xarray.h, shared).
- mm/swapfile.c: ``swap_map`` (1 byte per slot), ``struct
  swap_cluster_info`` of 6.7 (``spinlock_t lock; unsigned int data:24;
  unsigned int flags:8``: 8 bytes per 512 slots); no zeromap (6.12).
- mm/swap_cgroup.c before 6.14: ``swap_cgroup_ctrl[type]``: ``map``, a
  vcalloc'd array of page pointers, and one zeroed page per 2048 slots
  (``struct swap_cgroup { unsigned short id; }``), all allocated at swapon
  (``swap_cgroup_prepare()``); ``swap_cgroup_record()`` under ``ctrl->lock``.

What the index costs: the ``xarray`` design counts the xa_nodes that index
zswap entries, not the entries; here the index is the ``struct rb_node``
inside each entry, so each zswap entry counts 24 bytes (``bytes_rb_node``).
The entry's other fields (swap offset, refcount, length, handle) are
allocated with it -- a 48-byte structure -- but not counted as metadata:
every zswap has them (``entry_fields_bytes`` in stats()).

Departures (also in docs/designs.md): the slot allocator, count
continuations and swap cache are the ``xarray`` design's; a count reaching
zero releases everything under the cluster lock (zswap_invalidate and
swap_cgroup_record(0) nested in it); entries are freed after the tree lock
is dropped, not under it (nothing is allocated or freed under a lock); the
zswap pool, LRU, objcg and compression are not modelled.

Lock ordering:
    device lock (si->lock)  ->  cluster lock (ci->lock)
    cluster lock  ->  tree->lock, xa_lock (swap cache, count continuation),
                      swap_cgroup ctrl->lock (one after the other)
    xa_lock  ->  node free list lock (xarray.h)
No two cluster locks, tree locks or xa_locks are held at once; tree->lock
is never held with an xa_lock.  Single-entry calls keep the GIL; the loops
release it; no lock holder waits for the GIL.
"""

cimport cython
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_C_CONTIGUOUS
from cpython.mem cimport PyMem_RawCalloc, PyMem_RawMalloc, PyMem_RawFree
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t, uintptr_t

from vswapfast.vswap_account cimport (
    vswap_account, vswap_account_add, vswap_account_calloc, vswap_account_free,
    vswap_account_bytes,
)
from vswapfast._design_args cimport (
    E_OK, E_ZERO, E_NEGATIVE, E_RANGE, E_FREE, DESIGN_VALUE_MAX, int_arg, value_arg,
    memcg_arg, entry_arg, entry_message, get_u64_buffer, get_u64_pair, check_handles, count_arg,
    check_backing,
)
from vswapfast._rbtree cimport (
    vrb_node, vrb_root, vrb_parent, vrb_is_red, vrb_link_node, vrb_insert_color, vrb_erase,
    vrb_clear_node, vrb_empty_node, vrb_take_leaf,
)
from vswapfast._xarray cimport (
    vxa, vxa_ctx, vxa_stats, vxa_init, vxa_ctx_init, vxa_ctx_destroy,
    vxa_lock, vxa_unlock, vxa_store_locked, vxa_load, vxa_load_locked,
    vxa_destroy, vxa_store, vxa_reserve1, pthread_spinlock_t, VXA_EAGAIN,
)

import array as _array

from vswapfast.errors import InvalidEntryError, SwapCacheError, SwapFullError

__all__ = ["RbtreeDesign", "BACKINGS"]

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
    #include "rbtree.h"
    #define rd_ld8(p)        __atomic_load_n((p), __ATOMIC_RELAXED)
    #define rd_st8(p, v)     __atomic_store_n((p), (v), __ATOMIC_RELAXED)
    #define rd_add64(p, v)   __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)
    #define rd_addu64(p, v)  __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)
    #define rd_ld64(p)       __atomic_load_n((p), __ATOMIC_RELAXED)
    #define rd_count(p)      __atomic_store_n((p), __atomic_load_n((p), __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED)
    #define rd_ldu64(p)      __atomic_load_n((p), __ATOMIC_RELAXED)
    static inline long long rd_account_objects(const vswap_account *a)
    { return __atomic_load_n(&a->objects, __ATOMIC_RELAXED); }
    /* struct swap_cluster_info (include/linux/swap.h, up to 6.10). */
    typedef struct {
        pthread_spinlock_t lock;
        union {
            struct {
                unsigned int data : 24; /* the count of a used cluster */
                unsigned int flags : 8;
            };
            unsigned int word;          /* the two, for atomic access */
        };
    } rd_cluster;
    /* The count is written under the cluster's lock and peeked at without
     * it by the allocator's scan, so both go through the whole word,
     * atomically (a bit-field has no address). */
    static inline unsigned int rd_cluster_count_peek(rd_cluster *c)
    { rd_cluster x; x.word = __atomic_load_n(&c->word, __ATOMIC_RELAXED); return x.data; }
    static inline void rd_cluster_count_set(rd_cluster *c, unsigned int v)
    { rd_cluster x; x.word = c->word; x.data = v; __atomic_store_n(&c->word, x.word, __ATOMIC_RELAXED); }
    _Static_assert(sizeof(rd_cluster) == 8, "struct swap_cluster_info is 8 bytes before 6.11");
    /* struct zswap_tree (mm/zswap.c up to 6.7). */
    typedef struct {
        struct vrb_root rbroot;
        pthread_spinlock_t lock;
    } rd_tree;
    _Static_assert(sizeof(rd_tree) == 16, "struct zswap_tree is 16 bytes");
    /* The fields of struct zswap_entry the model needs: the rb_node first
     * (counted as the index), then the key and the payload. */
    typedef struct {
        struct vrb_node rbnode;
        uint64_t swpentry;              /* the swap offset: the tree's key */
        int refcount;                   /* the tree's reference + loaders' */
        unsigned int length;            /* 0: a same-filled page */
        uint64_t handle;                /* or the fill value */
    } rd_entry;
    _Static_assert(sizeof(rd_entry) == 48, "the modelled zswap entry is 48 bytes");
    #define RD_RB_NODE_SIZE ((long long)sizeof(struct vrb_node))
    #define RD_ENTRY_FIELDS_SIZE ((long long)(sizeof(rd_entry) - sizeof(struct vrb_node)))
    """
    uint8_t rd_ld8(uint8_t *p)
    void rd_st8(uint8_t *p, uint8_t v)
    int64_t rd_add64(int64_t *p, int64_t v)
    uint64_t rd_addu64(uint64_t *p, uint64_t v)
    int64_t rd_ld64(int64_t *p)
    void rd_count(unsigned long long *p)
    uint64_t rd_ldu64(uint64_t *p)
    long long rd_account_objects(vswap_account *a)
    ctypedef struct rd_cluster:
        pthread_spinlock_t lock
        unsigned int data
    unsigned int rd_cluster_count_peek(rd_cluster *c)
    void rd_cluster_count_set(rd_cluster *c, unsigned int v)
    ctypedef struct rd_tree:
        vrb_root rbroot
        pthread_spinlock_t lock
    ctypedef struct rd_entry:
        vrb_node rbnode
        uint64_t swpentry
        int refcount
        unsigned int length
        uint64_t handle
    long long RD_RB_NODE_SIZE
    long long RD_ENTRY_FIELDS_SIZE

DEF SWAPFILE_CLUSTER = 512
DEF SWAP_ADDRESS_SPACE_SHIFT = 14
DEF SWAP_ADDRESS_SPACE_MASK = (1 << 14) - 1
DEF SC_PER_PAGE_SHIFT = 11                  # PAGE_SIZE / sizeof(struct swap_cgroup)
DEF SC_PER_PAGE_MASK = (1 << 11) - 1
DEF PAGE_SIZE = 4096
DEF SWAP_HAS_CACHE = 0x40
DEF COUNT_CONTINUED = 0x80
DEF SWAP_MAP_MAX = 0x3E
DEF SWAP_COUNT_LIMIT = (1 << 31) - 1
DEF XARRAY_SIZE = 16
DEF NR_STAT_SLOTS = 64
DEF EEXIST = 17

# accounts
DEF A_SWAP_MAP = 0
DEF A_SWAP_CGROUP = 1
DEF A_CLUSTER_INFO = 2
DEF A_CACHE_XA = 3
DEF A_ZSWAP_TREE = 4
DEF A_RB_NODE = 5
DEF A_NODE_CACHE = 6
DEF A_CONT = 7
DEF A_NODE_FREE = 8
DEF NR_ACCOUNTS = 9

# per-thread lock counters (vxa_stats.user[])
DEF S_CLUSTER = 0
DEF S_DEVICE = 1
DEF S_TREE = 2
DEF S_CGROUP = 3

_STRUCTURES = ("swap_map", "swap_cgroup", "cluster_info", "swap_cache_xarrays",
               "zswap_tree", "rb_node", "xa_node_swap_cache", "swap_cont", "xa_node_free")
BACKINGS = ("zswap", "disk", "zero")

# loop results
DEF R_FULL = -1
DEF R_NOMEM = -2

ctypedef struct rd_design:
    uint64_t nr_slots
    uint64_t nr_clusters
    uint64_t nr_regions
    uint64_t nr_cgroup_pages
    uint8_t *swap_map
    uint16_t **swap_cgroup          # swap_cgroup_ctrl.map: one page per 2048 slots
    pthread_spinlock_t cgroup_lock  # swap_cgroup_ctrl.lock
    rd_cluster *clusters
    rd_tree *tree                   # zswap_trees[type]
    vxa *cache
    vxa cont
    vxa_ctx ctx_cache
    vxa_ctx ctx_cont
    vswap_account acct[NR_ACCOUNTS]
    vswap_account entry_fields      # the zswap entries' other fields (not metadata)
    pthread_spinlock_t dev_lock
    uint64_t next_cluster
    int64_t used
    int64_t stored_pages            # zswap_stored_pages
    int64_t same_filled_pages       # zswap_same_filled_pages
    uint64_t next_handle
    long long calls
    vxa_stats *stats                # NR_STAT_SLOTS, on cache lines of their own
    char stats_space[(NR_STAT_SLOTS + 1) * 64]


# -- the red-black tree of zswap entries (mm/zswap.c, up to 6.7) ------------

cdef inline vxa_stats *rd_stats(rd_design *d) noexcept nogil:
    return &d.stats[vswap_this_thread() & (NR_STAT_SLOTS - 1)]

cdef inline void tree_lock(rd_design *d, vxa_stats *st) noexcept nogil:
    pthread_spin_lock(&d.tree.lock)
    rd_count(&st.user[S_TREE])

cdef inline void tree_unlock(rd_design *d) noexcept nogil:
    pthread_spin_unlock(&d.tree.lock)

cdef inline rd_entry *entry_of(vrb_node *n) noexcept nogil:
    return <rd_entry *>n                # rbnode is the first member

cdef rd_entry *zswap_entry_alloc(rd_design *d) noexcept nogil:
    """zswap_entry_cache_alloc(): refcount 1, RB_CLEAR_NODE; no lock held.
    The rb_node is counted as the index's metadata, the rest apart."""
    cdef rd_entry *e = <rd_entry *>PyMem_RawCalloc(1, sizeof(rd_entry))
    if e == NULL:
        return NULL
    vswap_account_add(&d.acct[A_RB_NODE], RD_RB_NODE_SIZE, 1)
    vswap_account_add(&d.entry_fields, RD_ENTRY_FIELDS_SIZE, 1)
    e.refcount = 1
    vrb_clear_node(&e.rbnode)
    return e

cdef void zswap_entry_free_chain(rd_design *d, rd_entry *e) noexcept nogil:
    """zswap_free_entry() of entries whose last reference went under the
    tree lock, chained through rb_left: freed here, with no lock held."""
    cdef rd_entry *next
    while e != NULL:
        next = <rd_entry *>e.rbnode.rb_left
        if e.length == 0:
            rd_add64(&d.same_filled_pages, -1)
        rd_add64(&d.stored_pages, -1)
        PyMem_RawFree(e)
        vswap_account_add(&d.acct[A_RB_NODE], -RD_RB_NODE_SIZE, -1)
        vswap_account_add(&d.entry_fields, -RD_ENTRY_FIELDS_SIZE, -1)
        e = next

cdef inline rd_entry *zswap_rb_search(rd_design *d, uint64_t offset) noexcept nogil:
    """zswap_rb_search(), under tree->lock."""
    cdef vrb_node *n = d.tree.rbroot.rb_node
    cdef rd_entry *e
    while n != NULL:
        e = entry_of(n)
        if e.swpentry > offset:
            n = n.rb_left
        elif e.swpentry < offset:
            n = n.rb_right
        else:
            return e
    return NULL

cdef inline int zswap_rb_insert(rd_design *d, rd_entry *entry, rd_entry **dup) noexcept nogil:
    """zswap_rb_insert(), under tree->lock: -EEXIST with *dup when the offset
    is taken, else linked (rb_link_node) and rebalanced (rb_insert_color)."""
    cdef vrb_node **link = &d.tree.rbroot.rb_node
    cdef vrb_node *parent = NULL
    cdef rd_entry *my
    while link[0] != NULL:
        parent = link[0]
        my = entry_of(parent)
        if my.swpentry > entry.swpentry:
            link = &parent.rb_left
        elif my.swpentry < entry.swpentry:
            link = &parent.rb_right
        else:
            dup[0] = my
            return -EEXIST
    vrb_link_node(&entry.rbnode, parent, link)
    vrb_insert_color(&entry.rbnode, &d.tree.rbroot)
    return 0

cdef inline rd_entry *zswap_entry_put(rd_entry *e, rd_entry *to_free) noexcept nogil:
    """zswap_entry_put(), under tree->lock: the entry chained onto
    ``to_free`` when its last reference goes (freed once the lock is
    dropped); returns the chain."""
    e.refcount -= 1
    if e.refcount == 0:
        e.rbnode.rb_left = <vrb_node *>to_free
        return e
    return to_free

cdef inline rd_entry *zswap_invalidate_entry(rd_design *d, rd_entry *e,
                                             rd_entry *to_free) noexcept nogil:
    """zswap_invalidate_entry(), under tree->lock: rb_erase + RB_CLEAR_NODE,
    then drop the tree's reference."""
    if not vrb_empty_node(&e.rbnode):
        vrb_erase(&e.rbnode, &d.tree.rbroot)
        vrb_clear_node(&e.rbnode)
        return zswap_entry_put(e, to_free)
    return to_free

cdef inline uint64_t handle_of(rd_entry *e) noexcept nogil:
    """The zpool handle of an entry (0: none, or a same-filled page)."""
    if e == NULL or e.length == 0:
        return 0
    return e.handle

cdef uint64_t zswap_invalidate(rd_design *d, uint64_t offset, vxa_stats *st,
                               bint keep_same_filled=False) noexcept nogil:
    """zswap_invalidate(): search and invalidate under tree->lock; the
    handle the entry held, or 0.  ``keep_same_filled`` leaves a same-filled
    entry in place: the contract's zswap_entry_erase removes a compressed
    page, not the zero backing a same-filled entry stands for."""
    cdef rd_entry *e
    cdef rd_entry *to_free = NULL
    cdef uint64_t old = 0
    tree_lock(d, st)
    e = zswap_rb_search(d, offset)
    if e != NULL and not (keep_same_filled and e.length == 0):
        old = handle_of(e)
        to_free = zswap_invalidate_entry(d, e, NULL)
    tree_unlock(d)
    zswap_entry_free_chain(d, to_free)
    return old

cdef int zswap_store(rd_design *d, uint64_t offset, uint64_t handle, unsigned int length,
                     uint64_t *old_handle, vxa_stats *st) noexcept nogil:
    """zswap_store(): a duplicate invalidated under tree->lock, the entry
    allocated with no lock held, then inserted under tree->lock (a
    duplicate found then is invalidated and the insert retried, as the
    kernel's WARN_ON loop does).  ``length`` 0 stores a same-filled page
    whose value is ``handle``.  -1 when out of memory (the duplicate is
    gone, as in the kernel)."""
    cdef rd_entry *dup
    cdef rd_entry *entry
    cdef rd_entry *to_free = NULL
    old_handle[0] = zswap_invalidate(d, offset, st)
    entry = zswap_entry_alloc(d)
    if entry == NULL:
        return -1
    entry.swpentry = offset
    entry.length = length
    entry.handle = handle
    rd_add64(&d.stored_pages, 1)
    if length == 0:
        rd_add64(&d.same_filled_pages, 1)
    tree_lock(d, st)
    while zswap_rb_insert(d, entry, &dup) == -EEXIST:
        to_free = zswap_invalidate_entry(d, dup, to_free)
    tree_unlock(d)
    zswap_entry_free_chain(d, to_free)
    return 0

cdef int zswap_load(rd_design *d, uint64_t offset, uint64_t *handle, vxa_stats *st) noexcept nogil:
    """zswap_load(): zswap_entry_find_get() under tree->lock, the lock
    dropped while the page would be decompressed, then zswap_entry_put()
    under it again.  0 when no entry; 1 with *handle set (0 for a
    same-filled page); 2 for a same-filled page."""
    cdef rd_entry *e
    cdef rd_entry *to_free
    cdef int found
    tree_lock(d, st)
    e = zswap_rb_search(d, offset)
    if e == NULL:
        tree_unlock(d)
        handle[0] = 0
        return 0
    e.refcount += 1
    tree_unlock(d)
    # The entry is ours to read while we hold the reference.
    handle[0] = handle_of(e)
    found = 2 if e.length == 0 else 1
    tree_lock(d, st)
    to_free = zswap_entry_put(e, NULL)
    tree_unlock(d)
    zswap_entry_free_chain(d, to_free)
    return found

cdef rd_entry *tree_teardown(rd_design *d) noexcept nogil:
    """zswap_swapoff(): every entry of the tree, chained for freeing."""
    cdef rd_entry *chain = NULL
    cdef vrb_node *n = vrb_take_leaf(&d.tree.rbroot)
    while n != NULL:
        entry_of(n).rbnode.rb_left = <vrb_node *>chain
        chain = entry_of(n)
        n = vrb_take_leaf(&d.tree.rbroot)
    return chain

cdef int64_t rb_check(vrb_node *n, vrb_node *parent, uint64_t lo, uint64_t hi,
                      int64_t *count, int *depth, int level) noexcept nogil:
    """The black height below ``n``, or -1 (parent link), -2 (order),
    -3 (red-red), -4 (black heights differ)."""
    cdef int64_t l, r
    cdef rd_entry *e
    if n == NULL:
        return 1
    e = entry_of(n)
    count[0] += 1
    if level > depth[0]:
        depth[0] = level
    if vrb_parent(n) != parent:
        return -1
    if not (lo <= e.swpentry and e.swpentry <= hi):
        return -2
    if vrb_is_red(n) and (vrb_is_red(n.rb_left) or vrb_is_red(n.rb_right)):
        return -3
    l = rb_check(n.rb_left, n, lo, e.swpentry - 1 if e.swpentry else 0, count, depth, level + 1)
    if l < 0:
        return l
    if e.swpentry == 0 and n.rb_left != NULL:
        return -2
    r = rb_check(n.rb_right, n, e.swpentry + 1, hi, count, depth, level + 1)
    if r < 0:
        return r
    if l != r:
        return -4
    return l + (0 if vrb_is_red(n) else 1)


# -- swap_map, swap_cgroup, the swap cache (the xarray design's paths) -------

cdef inline int rd_check(rd_design *d, uint64_t e) noexcept nogil:
    """An allocated slot? (a racy read of swap_map, as READ_ONCE checks)"""
    if e == 0:
        return E_ZERO
    if e >= d.nr_slots:
        return E_RANGE
    if rd_ld8(&d.swap_map[e]) == 0:
        return E_FREE
    return E_OK

cdef inline void cluster_lock(rd_design *d, uint64_t e, vxa_stats *st) noexcept nogil:
    pthread_spin_lock(&d.clusters[e // SWAPFILE_CLUSTER].lock)
    rd_count(&st.user[S_CLUSTER])

cdef inline void cluster_unlock(rd_design *d, uint64_t e) noexcept nogil:
    pthread_spin_unlock(&d.clusters[e // SWAPFILE_CLUSTER].lock)

cdef inline void swap_cgroup_record(rd_design *d, uint64_t e, uint16_t id,
                                    vxa_stats *st) noexcept nogil:
    """swap_cgroup_record() (before 6.14): the id in its page of the map,
    under ctrl->lock."""
    pthread_spin_lock(&d.cgroup_lock)
    rd_count(&st.user[S_CGROUP])
    d.swap_cgroup[e >> SC_PER_PAGE_SHIFT][e & SC_PER_PAGE_MASK] = id
    pthread_spin_unlock(&d.cgroup_lock)

cdef inline uint64_t count_locked(rd_design *d, uint64_t e) noexcept nogil:
    """The swap count (swap_count() + the continuation), under ci->lock."""
    cdef uint8_t m = d.swap_map[e]
    cdef uint64_t count = m & 0x3F
    if m & COUNT_CONTINUED:
        count += vxa_load_locked(&d.cont, e) >> 1
    return count

cdef int set_count_locked(rd_design *d, uint64_t e, uint64_t count, vxa_stats *st) noexcept nogil:
    """Write the count under ci->lock, spilling past SWAP_MAP_MAX into the
    continuation xarray; VXA_EAGAIN when it needs a node (nothing changed):
    the caller drops the cluster lock, reserves one and retries."""
    cdef uint8_t m = d.swap_map[e]
    cdef uintptr_t old = 0
    cdef int rc = 0
    if count > SWAP_MAP_MAX:
        vxa_lock(&d.cont, st)
        rc = vxa_store_locked(&d.cont, &d.ctx_cont, e, ((count - SWAP_MAP_MAX) << 1) | 1, &old)
        vxa_unlock(&d.cont)
        if rc:
            return rc
        rd_st8(&d.swap_map[e], (m & SWAP_HAS_CACHE) | COUNT_CONTINUED | SWAP_MAP_MAX)
    else:
        if m & COUNT_CONTINUED:
            vxa_lock(&d.cont, st)
            vxa_store_locked(&d.cont, &d.ctx_cont, e, 0, &old)
            vxa_unlock(&d.cont)
        rd_st8(&d.swap_map[e], (m & SWAP_HAS_CACHE) | <uint8_t>count)
    return 0

cdef inline int cache_store(rd_design *d, uint64_t e, uintptr_t entry, uintptr_t *old,
                            vxa_stats *st) noexcept nogil:
    """add_to_swap_cache(): xa_store() in the entry's address space under
    its xa_lock; -1 when out of memory."""
    cdef int rc = vxa_store(&d.cache[e >> SWAP_ADDRESS_SPACE_SHIFT], &d.ctx_cache,
                            e & SWAP_ADDRESS_SPACE_MASK, entry, old, st)
    return -1 if rc else 0

cdef rd_entry *release_locked(rd_design *d, uint64_t e, vxa_stats *st) noexcept nogil:
    """The count reached zero: release everything under ci->lock
    (swap_range_free: zswap_invalidate, clear_shadow_from_swap_cache;
    mem_cgroup_uncharge_swap: swap_cgroup_record(0); swap_map).  Returns
    the zswap entry to free once the cluster lock is dropped."""
    cdef vxa *xa = &d.cache[e >> SWAP_ADDRESS_SPACE_SHIFT]
    cdef uintptr_t old = 0
    cdef rd_entry *z
    cdef rd_entry *to_free = NULL
    tree_lock(d, st)
    z = zswap_rb_search(d, e)
    if z != NULL:
        to_free = zswap_invalidate_entry(d, z, NULL)
    tree_unlock(d)
    vxa_lock(xa, st)
    vxa_store_locked(xa, &d.ctx_cache, e & SWAP_ADDRESS_SPACE_MASK, 0, &old)
    vxa_unlock(xa)
    swap_cgroup_record(d, e, 0, st)
    rd_st8(&d.swap_map[e], 0)
    rd_cluster_count_set(&d.clusters[e // SWAPFILE_CLUSTER],
                         d.clusters[e // SWAPFILE_CLUSTER].data - 1)
    rd_add64(&d.used, -1)
    return to_free

cdef int swap_free_one(rd_design *d, uint64_t e, vxa_stats *st) noexcept nogil:
    """swap_free(): drop one reference under ci->lock; E_FREE if the slot
    was freed meanwhile."""
    cdef uint64_t count
    cdef rd_entry *to_free = NULL
    cluster_lock(d, e, st)
    if d.swap_map[e] == 0:
        cluster_unlock(d, e)
        return E_FREE
    count = count_locked(d, e) - 1
    set_count_locked(d, e, count, st)          # lowering a count never allocates
    if count == 0:
        to_free = release_locked(d, e, st)
    cluster_unlock(d, e)
    zswap_entry_free_chain(d, to_free)
    return E_OK

cdef uint64_t alloc_slot(rd_design *d, vxa_stats *st) noexcept nogil:
    """scan_swap_map_slots(), simplified as in the xarray design: under the
    device lock, the first cluster with room from the last one used, then
    under its lock the first free slot of its swap_map: count 1 with
    SWAP_HAS_CACHE.  0 when the device is full."""
    cdef uint64_t k, ci, first, last, cap, s, found = 0
    cdef rd_cluster *c
    pthread_spin_lock(&d.dev_lock)
    rd_count(&st.user[S_DEVICE])
    for k in range(d.nr_clusters):
        ci = (d.next_cluster + k) % d.nr_clusters
        first = ci * SWAPFILE_CLUSTER
        last = min(first + SWAPFILE_CLUSTER, d.nr_slots)
        cap = last - first - (1 if ci == 0 else 0)
        c = &d.clusters[ci]
        if rd_cluster_count_peek(c) >= cap:
            continue
        pthread_spin_lock(&c.lock)
        rd_count(&st.user[S_CLUSTER])
        for s in range(max(first, 1), last):
            if d.swap_map[s] == 0:
                rd_st8(&d.swap_map[s], SWAP_HAS_CACHE | 1)
                rd_cluster_count_set(c, c.data + 1)
                rd_add64(&d.used, 1)
                found = s
                break
        pthread_spin_unlock(&c.lock)
        if found:
            d.next_cluster = ci
            break
    pthread_spin_unlock(&d.dev_lock)
    return found

cdef int cache_del(rd_design *d, uint64_t e, uint64_t folio, uint64_t shadow, uintptr_t *cur,
                   vxa_stats *st) noexcept nogil:
    """__delete_from_swap_cache() under xa_lock (the folio replaced by its
    shadow), then put_swap_folio() clears SWAP_HAS_CACHE under ci->lock.
    1 (nothing changed, *cur the cached entry) if ``folio`` is not the
    cached one."""
    cdef vxa *xa = &d.cache[e >> SWAP_ADDRESS_SPACE_SHIFT]
    cdef uintptr_t old = 0
    vxa_lock(xa, st)
    cur[0] = vxa_load_locked(xa, e & SWAP_ADDRESS_SPACE_MASK)
    if cur[0] != <uintptr_t>folio << 2:
        vxa_unlock(xa)
        return 1
    vxa_store_locked(xa, &d.ctx_cache, e & SWAP_ADDRESS_SPACE_MASK,
                     (<uintptr_t>shadow << 1) | 1, &old)
    vxa_unlock(xa)
    cluster_lock(d, e, st)
    if d.swap_map[e]:
        rd_st8(&d.swap_map[e], d.swap_map[e] & ~SWAP_HAS_CACHE)
    cluster_unlock(d, e)
    return 0

cdef int64_t swap_out_loop(rd_design *d, uint64_t *out, uint64_t count, int backing,
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
        swap_cgroup_record(d, s, memcg, st)
        if cache_store(d, s, <uintptr_t>s << 2, &old, st):
            rc = R_NOMEM
            k += 1
            break
        if backing == 0:
            h = rd_addu64(&d.next_handle, 1) % DESIGN_VALUE_MAX + 1
            if zswap_store(d, s, h, 1, &old_h, st):
                rc = R_NOMEM
                k += 1
                break
        elif backing == 1:
            zswap_invalidate(d, s, st)         # zswap_store() failed: the old entry is gone
        else:
            if zswap_store(d, s, 0, 0, &old_h, st):
                rc = R_NOMEM
                k += 1
                break
        cache_del(d, s, s, s, &cur, st)
    if rc:
        for s in range(k):
            swap_free_one(d, out[s], st)
    return rc

cdef void rd_free(rd_design *d) noexcept nogil:
    """Free every structure (no call may be in flight)."""
    cdef uint64_t r
    if d.tree != NULL:
        zswap_entry_free_chain(d, tree_teardown(d))
        pthread_spin_destroy(&d.tree.lock)
        vswap_account_free(&d.acct[A_ZSWAP_TREE], d.tree, sizeof(rd_tree))
    if d.cache != NULL:
        for r in range(d.nr_regions):
            vxa_destroy(&d.cache[r], &d.ctx_cache)
        vswap_account_free(&d.acct[A_CACHE_XA], d.cache, d.nr_regions * XARRAY_SIZE)
    vxa_destroy(&d.cont, &d.ctx_cont)
    vxa_ctx_destroy(&d.ctx_cache)
    vxa_ctx_destroy(&d.ctx_cont)
    if d.clusters != NULL:
        for r in range(d.nr_clusters):
            pthread_spin_destroy(&d.clusters[r].lock)
        vswap_account_free(&d.acct[A_CLUSTER_INFO], d.clusters, d.nr_clusters * sizeof(rd_cluster))
    if d.swap_cgroup != NULL:
        for r in range(d.nr_cgroup_pages):
            vswap_account_free(&d.acct[A_SWAP_CGROUP], d.swap_cgroup[r], PAGE_SIZE)
        vswap_account_free(&d.acct[A_SWAP_CGROUP], d.swap_cgroup, d.nr_cgroup_pages * sizeof(void *))
    vswap_account_free(&d.acct[A_SWAP_MAP], d.swap_map, d.nr_slots)
    pthread_spin_destroy(&d.cgroup_lock)
    pthread_spin_destroy(&d.dev_lock)
    PyMem_RawFree(d)

cdef rd_design *rd_new(uint64_t nr_slots) noexcept nogil:
    """swapon: the static structures (vzalloc'd swap_map, cluster_info,
    swap_cgroup's map and pages, the address spaces, zswap_swapon()'s
    tree); NULL when out of memory."""
    cdef rd_design *d = <rd_design *>PyMem_RawCalloc(1, sizeof(rd_design))
    cdef uint64_t r
    cdef bint ok
    if d == NULL:
        return NULL
    d.stats = <vxa_stats *>((<uintptr_t>d.stats_space + 63) & ~(<uintptr_t>63))
    d.nr_slots = nr_slots
    d.nr_clusters = (nr_slots + SWAPFILE_CLUSTER - 1) // SWAPFILE_CLUSTER
    d.nr_regions = (nr_slots + SWAP_ADDRESS_SPACE_MASK) >> SWAP_ADDRESS_SPACE_SHIFT
    d.nr_cgroup_pages = (nr_slots + SC_PER_PAGE_MASK) >> SC_PER_PAGE_SHIFT
    pthread_spin_init(&d.dev_lock, 0)
    pthread_spin_init(&d.cgroup_lock, 0)
    vxa_init(&d.cont)
    vxa_ctx_init(&d.ctx_cache, &d.acct[A_NODE_CACHE], &d.acct[A_NODE_FREE])
    vxa_ctx_init(&d.ctx_cont, &d.acct[A_CONT], &d.acct[A_NODE_FREE])
    d.swap_map = <uint8_t *>vswap_account_calloc(&d.acct[A_SWAP_MAP], nr_slots)
    d.swap_cgroup = <uint16_t **>vswap_account_calloc(&d.acct[A_SWAP_CGROUP],
                                                      d.nr_cgroup_pages * sizeof(void *))
    d.clusters = <rd_cluster *>vswap_account_calloc(&d.acct[A_CLUSTER_INFO],
                                                    d.nr_clusters * sizeof(rd_cluster))
    d.cache = <vxa *>vswap_account_calloc(&d.acct[A_CACHE_XA], d.nr_regions * XARRAY_SIZE)
    d.tree = <rd_tree *>vswap_account_calloc(&d.acct[A_ZSWAP_TREE], sizeof(rd_tree))
    ok = (d.swap_map != NULL and d.swap_cgroup != NULL and d.clusters != NULL
          and d.cache != NULL and d.tree != NULL)
    if d.swap_cgroup != NULL:
        for r in range(d.nr_cgroup_pages):      # swap_cgroup_prepare()
            d.swap_cgroup[r] = <uint16_t *>vswap_account_calloc(&d.acct[A_SWAP_CGROUP], PAGE_SIZE)
            if d.swap_cgroup[r] == NULL:
                ok = False
                break
    if d.clusters != NULL:
        for r in range(d.nr_clusters):
            pthread_spin_init(&d.clusters[r].lock, 0)
    if d.cache != NULL:
        for r in range(d.nr_regions):
            vxa_init(&d.cache[r])
    if d.tree != NULL:
        pthread_spin_init(&d.tree.lock, 0)
    if not ok:
        rd_free(d)
        return NULL
    return d


cdef inline int64_t first_bad(rd_design *d, uint64_t *e, Py_ssize_t n, int *why) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        why[0] = rd_check(d, e[i])
        if why[0]:
            return i
    return -1


@cython.no_gc_clear
@cython.final
cdef class RbtreeDesign:
    """Swap metadata when zswap kept one red-black tree per swap device
    (up to 6.7): ``swap_map``, ``swap_cgroup`` pages, the swap cache and
    shadows in per-64 MiB xarrays, zswap entries in one rbtree under one
    spinlock that loads take too.  See docs/designs.md and this module's
    header for the kernel sources and the lock ordering.

    Thread-safe; ``close()`` waits for the calls in flight.  Every method
    converts its arguments (which may run Python code) before it takes the
    design with ``_enter()``, and runs no Python code until it leaves.
    """

    cdef rd_design *d
    cdef readonly uint64_t nr_slots

    name = "rbtree"

    def __cinit__(self, nr_slots):
        nr_slots = int_arg(nr_slots, "nr_slots")
        if not 1 <= nr_slots <= (1 << 32):
            raise ValueError("nr_slots must be in 1 .. 2**32, not %d" % nr_slots)
        self.nr_slots = nr_slots
        with nogil:
            self.d = rd_new(self.nr_slots)
        if self.d == NULL:
            raise MemoryError("no memory for the swap metadata of %d slots" % nr_slots)

    def __dealloc__(self):
        self._close()

    cdef void _close(self) noexcept:
        cdef rd_design *d = self.d
        if d == NULL:
            return
        self.d = NULL                   # later calls find the design closed
        with nogil:
            vswap_wait_zero(&d.calls)
            rd_free(d)

    def close(self):
        """Free every structure once the calls in flight on other threads
        have finished; closing again does nothing; later calls raise
        ValueError."""
        self._close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._close()

    cdef rd_design *_enter(self) except NULL:
        cdef rd_design *d = self.d
        if d == NULL:
            raise ValueError("rbtree design is closed")
        vswap_seq_add(&d.calls, 1)
        return d

    cdef int _bad(self, rd_design *d, object entry, int why) except -1:
        """Leave the call and raise InvalidEntryError."""
        vswap_seq_add(&d.calls, -1)
        raise InvalidEntryError(entry_message(entry, why, self.nr_slots))

    cdef rd_design *_enter_entry(self, object entry, int kind, uint64_t val) except NULL:
        """_enter() and check the entry is an allocated slot."""
        cdef rd_design *d = self._enter()
        cdef int why = kind if kind else rd_check(d, val)
        if why:
            self._bad(d, entry, why)
        return d

    # -- allocation ---------------------------------------------------------

    def folio_alloc_swap(self, folio, memcg=0):
        """folio_alloc_swap() + add_to_swap_cache(): a slot (device lock, then
        cluster lock), swap count 1 with SWAP_HAS_CACHE, the memcg recorded
        (swap_cgroup_record under ctrl->lock), the folio stored in the
        swap-cache xarray under its xa_lock.  ``SwapFullError`` when no slot
        is left."""
        cdef uint64_t f = value_arg(folio, "folio", 1)
        cdef uint16_t m = memcg_arg(memcg)
        cdef rd_design *d = self._enter()
        cdef vxa_stats *st = rd_stats(d)
        cdef uint64_t s = alloc_slot(d, st)
        cdef uintptr_t old = 0
        cdef int64_t used
        if s == 0:
            used = d.used
            vswap_seq_add(&d.calls, -1)
            raise SwapFullError("no free swap slot left (nr_slots is %d, %d used)"
                                % (self.nr_slots, used))
        swap_cgroup_record(d, s, m, st)
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
        cdef rd_design *d = self._enter_entry(entry, kind, val)
        cdef uintptr_t e = vxa_load(&d.cache[val >> SWAP_ADDRESS_SPACE_SHIFT],
                                    val & SWAP_ADDRESS_SPACE_MASK, rd_stats(d))
        vswap_seq_add(&d.calls, -1)
        if e == 0 or e & 1:
            return None
        return e >> 2

    def swap_cache_get_shadow(self, entry):
        """get_shadow_from_swap_cache(): the shadow or None; xa_load, no lock."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef rd_design *d = self._enter_entry(entry, kind, val)
        cdef uintptr_t e = vxa_load(&d.cache[val >> SWAP_ADDRESS_SPACE_SHIFT],
                                    val & SWAP_ADDRESS_SPACE_MASK, rd_stats(d))
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
        cdef rd_design *d = self._enter_entry(entry, kind, val)
        cdef vxa_stats *st = rd_stats(d)
        cdef uintptr_t old = 0
        cluster_lock(d, val, st)
        if d.swap_map[val] == 0:
            cluster_unlock(d, val)
            self._bad(d, entry, E_FREE)
        if d.swap_map[val] & SWAP_HAS_CACHE:
            cluster_unlock(d, val)
            vswap_seq_add(&d.calls, -1)
            raise SwapCacheError("swap entry %d already has a folio in the swap cache" % val)
        rd_st8(&d.swap_map[val], d.swap_map[val] | SWAP_HAS_CACHE)
        cluster_unlock(d, val)
        if cache_store(d, val, <uintptr_t>f << 2, &old, st):
            cluster_lock(d, val, st)
            rd_st8(&d.swap_map[val], d.swap_map[val] & ~SWAP_HAS_CACHE)
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
        cdef rd_design *d = self._enter_entry(entry, kind, val)
        cdef uintptr_t cur = 0
        cdef int rc = cache_del(d, val, f, sh, &cur, rd_stats(d))
        vswap_seq_add(&d.calls, -1)
        if rc:
            raise SwapCacheError(
                "folio %d is not the one in the swap cache of entry %d (%s)"
                % (f, val, "folio %d" % (cur >> 2) if cur and not cur & 1 else "no folio"))

    # -- zswap --------------------------------------------------------------

    def zswap_entry_store(self, entry, handle):
        """zswap_store(): tree->lock taken twice (invalidate a duplicate;
        insert the new entry, allocated in between with no lock held);
        returns the handle replaced, or None."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef uint64_t h = value_arg(handle, "handle", 1)
        cdef rd_design *d = self._enter_entry(entry, kind, val)
        cdef uint64_t old = 0
        cdef int rc = zswap_store(d, val, h, 1, &old, rd_stats(d))
        vswap_seq_add(&d.calls, -1)
        if rc:
            raise MemoryError("no memory for a zswap entry")
        return old if old else None

    def zswap_entry_load(self, entry):
        """zswap_load(): the entry found and referenced under tree->lock, the
        reference dropped under it again (two acquisitions); the handle or
        None (also for a same-filled page, which has none)."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef rd_design *d = self._enter_entry(entry, kind, val)
        cdef uint64_t h = 0
        zswap_load(d, val, &h, rd_stats(d))
        vswap_seq_add(&d.calls, -1)
        return h if h else None

    def zswap_entry_erase(self, entry):
        """zswap_invalidate(): search and invalidate under tree->lock; the
        handle or None.  A same-filled entry (the page's zero backing) is
        left in place."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef rd_design *d = self._enter_entry(entry, kind, val)
        cdef uint64_t old = zswap_invalidate(d, val, rd_stats(d), True)
        vswap_seq_add(&d.calls, -1)
        return old if old else None

    def zswap_empty(self):
        """True when zswap holds no compressed page (zswap_stored_pages -
        zswap_same_filled_pages, read with no lock)."""
        cdef rd_design *d = self._enter()
        cdef bint empty = rd_ld64(&d.stored_pages) - rd_ld64(&d.same_filled_pages) == 0
        vswap_seq_add(&d.calls, -1)
        return empty

    # -- zero pages, disk ---------------------------------------------------

    def set_zero(self, entry):
        """zswap_store() of a same-filled page (zswap_is_page_same_filled):
        an entry of length 0, value 0, in the tree, replacing any entry."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef rd_design *d = self._enter_entry(entry, kind, val)
        cdef uint64_t old = 0
        cdef int rc = zswap_store(d, val, 0, 0, &old, rd_stats(d))
        vswap_seq_add(&d.calls, -1)
        if rc:
            raise MemoryError("no memory for a zswap entry")

    def is_zero(self, entry):
        """zswap_load() finding a same-filled entry (two tree->lock
        acquisitions)."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef rd_design *d = self._enter_entry(entry, kind, val)
        cdef uint64_t h = 0
        cdef int found = zswap_load(d, val, &h, rd_stats(d))
        vswap_seq_add(&d.calls, -1)
        return found == 2

    def swap_writeout(self, entry):
        """swap_writepage() when zswap_store() does not take the page: its
        duplicate check has invalidated any old entry (tree->lock), and
        __swap_writepage() writes the slot.  Returns the slot, which is the
        entry itself."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef rd_design *d = self._enter_entry(entry, kind, val)
        zswap_invalidate(d, val, rd_stats(d))
        vswap_seq_add(&d.calls, -1)
        return val

    def get_slot(self, entry):
        """The disk slot of an allocated entry: the entry itself (a
        lock-free read of swap_map)."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef rd_design *d = self._enter_entry(entry, kind, val)
        rd_count(&rd_stats(d).lockless_loads)
        vswap_seq_add(&d.calls, -1)
        return val

    # -- counts -------------------------------------------------------------

    def swap_duplicate(self, entry):
        """__swap_duplicate(): one more reference, under the cluster lock;
        returns the new count."""
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef rd_design *d = self._enter_entry(entry, kind, val)
        cdef vxa_stats *st = rd_stats(d)
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
        cdef rd_design *d = self._enter_entry(entry, kind, val)
        cdef uint64_t count
        cluster_lock(d, val, rd_stats(d))
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
        cdef rd_design *d = self._enter_entry(entry, kind, val)
        if swap_free_one(d, val, rd_stats(d)):
            self._bad(d, entry, E_FREE)
        vswap_seq_add(&d.calls, -1)

    # -- loops (C, without the GIL) -----------------------------------------

    cdef int _check_entries(self, rd_design *d, uint64_t *e, Py_ssize_t n) except -1:
        cdef int why = 0
        cdef int64_t i
        with nogil:
            i = first_bad(d, e, n, &why)
        if i >= 0:
            vswap_seq_add(&d.calls, -1)
            raise InvalidEntryError("entries[%d]: %s" % (i, entry_message(e[i], why, self.nr_slots)))
        return 0

    def zswap_entry_store_many(self, entries, handles, batch=False):
        """zswap_entry_store of each page (tree->lock twice each), or with
        ``batch=True`` the entries allocated first and all stored under one
        tree->lock (one tree per device: one run); returns how many
        replaced a handle."""
        cdef Py_buffer ev, hv
        cdef rd_design *d
        cdef uint64_t *e
        cdef uint64_t *h
        cdef Py_ssize_t n, i
        cdef bint b = bool(batch)
        cdef int64_t replaced = 0
        cdef int rc = 0
        n = get_u64_pair(entries, &ev, handles, &hv, "handles", False)
        try:
            e = <uint64_t *>ev.buf
            h = <uint64_t *>hv.buf
            d = self._enter()
            self._check_entries(d, e, n)
            check_handles(&d.calls, h, n)
            with nogil:
                if b:
                    rc = store_batch(d, e, h, n, &replaced, rd_stats(d))
                else:
                    rc = store_each(d, e, h, n, &replaced, rd_stats(d))
            vswap_seq_add(&d.calls, -1)
            if rc:
                raise MemoryError("no memory for a zswap entry")
            return replaced
        finally:
            PyBuffer_Release(&hv)
            PyBuffer_Release(&ev)

    def zswap_entry_load_many(self, entries, out, batch=False):
        """zswap_entry_load of each page (tree->lock twice each), or with
        ``batch=True`` all looked up under one tree->lock (a range walk);
        ``out[i]`` gets the handle or 0.  Returns how many held one."""
        cdef Py_buffer ev, ov
        cdef rd_design *d
        cdef vxa_stats *st
        cdef uint64_t *e
        cdef uint64_t *o
        cdef Py_ssize_t n, k
        cdef bint b = bool(batch)
        cdef int64_t found = 0
        cdef uint64_t x
        n = get_u64_pair(entries, &ev, out, &ov, "out", True)
        try:
            e = <uint64_t *>ev.buf
            o = <uint64_t *>ov.buf
            d = self._enter()
            self._check_entries(d, e, n)
            with nogil:
                st = rd_stats(d)
                if not b:
                    for k in range(n):
                        zswap_load(d, e[k], &x, st)
                        o[k] = x
                        found += x != 0
                elif n:
                    tree_lock(d, st)
                    for k in range(n):
                        x = handle_of(zswap_rb_search(d, e[k]))
                        o[k] = x
                        found += x != 0
                    tree_unlock(d)
            vswap_seq_add(&d.calls, -1)
            return found
        finally:
            PyBuffer_Release(&ov)
            PyBuffer_Release(&ev)

    def zswap_entry_erase_many(self, entries, batch=False):
        """zswap_entry_erase of each page (one tree->lock each, or one for
        all with ``batch=True``); returns how many held a handle."""
        cdef Py_buffer ev
        cdef rd_design *d
        cdef vxa_stats *st
        cdef uint64_t *e
        cdef Py_ssize_t n, k
        cdef bint b = bool(batch)
        cdef int64_t erased = 0
        cdef rd_entry *z
        cdef rd_entry *to_free = NULL
        get_u64_buffer(entries, &ev, "entries", False)
        try:
            n = ev.len // 8
            e = <uint64_t *>ev.buf
            d = self._enter()
            self._check_entries(d, e, n)
            with nogil:
                st = rd_stats(d)
                if not b:
                    for k in range(n):
                        erased += zswap_invalidate(d, e[k], st, True) != 0
                elif n:
                    tree_lock(d, st)
                    for k in range(n):
                        z = zswap_rb_search(d, e[k])
                        if z != NULL and z.length != 0:
                            erased += 1
                            to_free = zswap_invalidate_entry(d, z, to_free)
                    tree_unlock(d)
                    zswap_entry_free_chain(d, to_free)
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
        cdef rd_design *d
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
                rc = swap_out_loop(d, o, c, bk, m, rd_stats(d))
            used = d.used
            vswap_seq_add(&d.calls, -1)
        finally:
            PyBuffer_Release(&ov)
        if rc == R_FULL:
            raise SwapFullError("no free swap slot left (nr_slots is %d, %d used)"
                                % (self.nr_slots, used))
        if rc == R_NOMEM:
            raise MemoryError("no memory for a zswap entry or an xarray node")
        return out

    def swap_free_many(self, entries):
        """swap_free of each entry (checked first: nothing is freed if one is
        not allocated)."""
        cdef Py_buffer ev
        cdef rd_design *d
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
                st = rd_stats(d)
                for k in range(n):
                    swap_free_one(d, e[k], st)
            vswap_seq_add(&d.calls, -1)
        finally:
            PyBuffer_Release(&ev)

    # -- introspection ------------------------------------------------------

    def _check(self):
        """Check the red-black tree under tree->lock (for tests): the root
        black, parent links, keys in order, no red node with a red child,
        the same black height on every path.  Returns {"nodes", "height",
        "black_height"}; AssertionError naming the broken property."""
        cdef rd_design *d = self._enter()
        cdef vxa_stats *st = rd_stats(d)
        cdef int64_t count = 0, bh
        cdef int depth = 0
        cdef bint root_red
        with nogil:
            tree_lock(d, st)
            root_red = vrb_is_red(d.tree.rbroot.rb_node)
            bh = rb_check(d.tree.rbroot.rb_node, NULL, 0, <uint64_t>-1, &count, &depth, 1)
            tree_unlock(d)
        vswap_seq_add(&d.calls, -1)
        if root_red:
            raise AssertionError("red-black tree: the root is red")
        if bh < 0:
            raise AssertionError("red-black tree: %s" % {
                -1: "a node's parent link is wrong", -2: "keys out of order",
                -3: "a red node has a red child", -4: "black heights differ"}[bh])
        return {"nodes": count, "height": depth if count else 0, "black_height": bh - 1}

    def metadata_bytes(self):
        """Bytes of metadata held now, from the allocation counters (static
        structures and the free list of nodes included)."""
        cdef rd_design *d = self._enter()
        cdef long long total = 0
        cdef int a
        for a in range(NR_ACCOUNTS):
            total += vswap_account_bytes(&d.acct[a])
        vswap_seq_add(&d.calls, -1)
        return total

    def stats(self):
        """Counters and byte counts; see docs/designs.md."""
        cdef rd_design *d = self._enter()
        cdef unsigned long long ll = 0, lr = 0, lk = 0, xl = 0, cl = 0, dl = 0, tl = 0, gl = 0
        cdef long long objs = 0, fields
        cdef long long nbytes[NR_ACCOUNTS]
        cdef int64_t used, stored, same
        cdef int a
        # Everything read into C locals before any Python object is made
        # (which may run Python code): no pointer kept across it.
        for a in range(NR_STAT_SLOTS):
            ll += rd_ldu64(&d.stats[a].lockless_loads)
            lr += rd_ldu64(&d.stats[a].load_retries)
            lk += rd_ldu64(&d.stats[a].locked_loads)
            xl += rd_ldu64(&d.stats[a].lock_acquisitions)
            cl += rd_ldu64(&d.stats[a].user[S_CLUSTER])
            dl += rd_ldu64(&d.stats[a].user[S_DEVICE])
            tl += rd_ldu64(&d.stats[a].user[S_TREE])
            gl += rd_ldu64(&d.stats[a].user[S_CGROUP])
        for a in range(NR_ACCOUNTS):
            nbytes[a] = vswap_account_bytes(&d.acct[a])
            objs += rd_account_objects(&d.acct[a])
        fields = vswap_account_bytes(&d.entry_fields)
        used = d.used
        stored = rd_ld64(&d.stored_pages)
        same = rd_ld64(&d.same_filled_pages)
        vswap_seq_add(&d.calls, -1)
        b = {}
        for a in range(NR_ACCOUNTS):
            b[_STRUCTURES[a]] = nbytes[a]
        s = {
            "design": "rbtree",
            "core": "compiled",
            "nr_slots": self.nr_slots,
            "used": used,
            "metadata_bytes": sum(b.values()),
            "metadata_objects": objs,
            "lock_acquisitions": xl + cl + dl + tl + gl,
            "tree_lock_acquisitions": tl,
            "xa_lock_acquisitions": xl,
            "cluster_lock_acquisitions": cl,
            "device_lock_acquisitions": dl,
            "swap_cgroup_lock_acquisitions": gl,
            "lockless_loads": ll,
            "load_retries": lr,
            "locked_loads": lk,
            "stored_pages": stored,
            "same_filled_pages": same,
            "entry_fields_bytes": fields,
        }
        for k, v in b.items():
            s["bytes_" + k] = v
        s["bytes_xa_node"] = b["xa_node_swap_cache"]
        return s

    def __len__(self):
        cdef rd_design *d = self._enter()
        cdef int64_t used = d.used
        vswap_seq_add(&d.calls, -1)
        return used

    def __repr__(self):
        if self.d == NULL:
            return "<RbtreeDesign closed core=compiled>"
        return "<RbtreeDesign nr_slots=%d used=%d bytes=%d core=compiled>" % (
            self.nr_slots, len(self), self.metadata_bytes())


# -- the store loops -----------------------------------------------------------

cdef int store_each(rd_design *d, uint64_t *e, uint64_t *h, Py_ssize_t n, int64_t *replaced,
                    vxa_stats *st) noexcept nogil:
    """zswap_store of each page; -1 when out of memory."""
    cdef Py_ssize_t k
    cdef uint64_t old = 0
    for k in range(n):
        if zswap_store(d, e[k], h[k], 1, &old, st):
            return -1
        replaced[0] += old != 0
    return 0

cdef int store_batch(rd_design *d, uint64_t *e, uint64_t *h, Py_ssize_t n, int64_t *replaced,
                     vxa_stats *st) noexcept nogil:
    """Every entry allocated first with no lock held, then each duplicate
    invalidated and each entry inserted under one tree->lock; -1 when out
    of memory (nothing stored)."""
    cdef rd_entry **fresh
    cdef rd_entry *dup
    cdef rd_entry *to_free = NULL
    cdef Py_ssize_t k
    if n == 0:
        return 0
    fresh = <rd_entry **>PyMem_RawMalloc(n * sizeof(rd_entry *))
    if fresh == NULL:
        return -1
    for k in range(n):
        fresh[k] = zswap_entry_alloc(d)
        if fresh[k] == NULL:
            while k > 0:
                k -= 1
                fresh[k].rbnode.rb_left = <vrb_node *>to_free
                to_free = fresh[k]
                rd_add64(&d.stored_pages, 1)     # balanced by the free
                fresh[k].length = 1
            zswap_entry_free_chain(d, to_free)
            PyMem_RawFree(fresh)
            return -1
        fresh[k].swpentry = e[k]
        fresh[k].length = 1
        fresh[k].handle = h[k]
    tree_lock(d, st)
    for k in range(n):
        rd_add64(&d.stored_pages, 1)
        while zswap_rb_insert(d, fresh[k], &dup) == -EEXIST:
            replaced[0] += handle_of(dup) != 0
            to_free = zswap_invalidate_entry(d, dup, to_free)
    tree_unlock(d)
    zswap_entry_free_chain(d, to_free)
    PyMem_RawFree(fresh)
    return 0
