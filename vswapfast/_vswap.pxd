# cython: language_level=3
"""C layout of the virtual swap space, for Cython code that cimports it.

    from vswapfast._vswap cimport VSwap, swp_desc, vswap_iter, vswap_cluster_unlock

Lock ordering (v6 mm/vswap.c):
    vswap_cluster.lock  ->  vswap_space.map_lock
(allocation takes cluster locks under map_lock only with spin_trylock).
A thread holds at most one cluster lock at a time, and never acquires the
GIL (or calls into Python) while it holds a cluster lock or the map lock.
"""

from libc.stdint cimport uint8_t, uint16_t, uint32_t, int32_t, uint64_t, uintptr_t

cdef extern from "<pthread.h>" nogil:
    ctypedef int pthread_spinlock_t
    int PTHREAD_PROCESS_PRIVATE
    int pthread_spin_init(pthread_spinlock_t *lock, int pshared)
    int pthread_spin_destroy(pthread_spinlock_t *lock)
    int pthread_spin_lock(pthread_spinlock_t *lock)
    int pthread_spin_trylock(pthread_spinlock_t *lock)
    int pthread_spin_unlock(pthread_spinlock_t *lock)

cdef enum:
    # Largest cluster (VSWAP_CLUSTER_SHIFT) and the bitmap words it needs.
    VSWAP_MAX_SHIFT = 9
    VSWAP_BITMAP_WORDS = 8
    VSWAP_CLUSTER_MAX = 512
    # Allocation orders 0..VSWAP_MAX_SHIFT.
    VSWAP_NR_ORDERS = 10
    # Per-thread allocation caches, in chunks of this many threads, for up to
    # VSWAP_MAX_THREAD_NR (vswap_sync.h) threads alive at once.
    VSWAP_CACHE_CHUNK_THREADS = 64
    VSWAP_CACHE_CHUNKS = 1024
    # The cluster map is a directory of leaves of this many cluster pointers.
    VSWAP_LEAF_SHIFT = 10
    VSWAP_LEAF_SIZE = 1024

ctypedef struct swp_slot_t:
    uint64_t val

# The swap-cache folio or, with the low bit set, a shadow (xa_mk_value).
ctypedef union swp_desc_cache:
    void *swap_cache
    uintptr_t shadow

# The backing word: a physical swap slot or a zswap entry, as the ``type``
# of the descriptor says (v6 patch 14, "decouple virtual swap slot from
# backing store": ``union { swp_slot_t slot; struct zswap_entry *zswap_entry; }``).
ctypedef union swp_desc_backing:
    swp_slot_t slot
    void *zswap_entry

# The backing types of a descriptor (v6 ``enum swap_type``: SWAPFILE, ZERO,
# ZSWAP, FOLIO).  NONE is the model's own: the kernel hands every entry out
# FOLIO-backed (folio_alloc_swap() allocates with the folio), while here an
# entry may be allocated with no folio, and a folio may leave the swap cache
# of an entry it backs.  Five values: a 3-bit field.
cdef enum:
    VSWAP_NONE = 0               # no backing: the page is nowhere
    VSWAP_SWAPFILE = 1           # backing.slot, a slot of the bound pool's swap file
    VSWAP_ZERO = 2               # a zero-filled page: no memory, word 0
    VSWAP_ZSWAP = 3              # backing.zswap_entry (never NULL)
    VSWAP_FOLIO = 4              # only the swap-cache folio (cache.swap_cache); word 0
    VSWAP_NR_TYPES = 5
    # ``flags``: bit 0 in_swapcache, bits 1..3 the type.
    VSWAP_FLAG_IN_SWAPCACHE = 1
    VSWAP_TYPE_SHIFT = 1
    VSWAP_TYPE_MASK = 7

# Swap descriptor: the metadata of one swapped-out page, 24 bytes as the
# series ends up (v6 mm/vswap.c ``struct swp_desc``).  ``swap_count``,
# ``memcgid`` and the in_swapcache bit are laid out as the kernel's but not
# used by the model yet (always 0; see docs/semantics.md).  Read and write
# ``backing`` and the type only through the vswap_desc_* accessors below.
ctypedef struct swp_desc:
    swp_desc_backing backing     # slot (SWAPFILE) or zswap entry (ZSWAP); else 0
    swp_desc_cache cache         # swap-cache folio or shadow, or NULL
    uint32_t swap_count          # not used yet
    uint16_t memcgid             # not used yet
    uint8_t flags                # in_swapcache (bit 0, not used yet), type (bits 1..3)
    uint8_t pad

ctypedef struct vswap_cluster:
    pthread_spinlock_t lock
    uint32_t id
    int32_t count                # allocated descriptors (cluster lock)
    int32_t order                # the one allocation order this cluster serves
    int32_t refcnt               # map + thread caches holding it (both locks)
    int32_t nr_zswap             # descriptors holding a zswap entry (cluster lock)
    uint8_t live                 # published in the map (map lock + cluster lock)
    uint8_t full                 # dropped from a cache when full: on no list (both locks)
    uint8_t on_partial           # on its order's partial list (map lock)
    uint64_t bitmap[VSWAP_BITMAP_WORDS]   # allocated descriptors (cluster lock)
    uint64_t lock_acquisitions   # cluster lock
    uint64_t lock_contended      # cluster lock
    vswap_cluster *partial_prev  # partial list (map lock)
    vswap_cluster *partial_next
    vswap_cluster *free_next     # spare cluster structs (map lock)
    vswap_cluster *all_next      # every struct ever made, for teardown
    swp_desc *descriptors        # 1 << cluster_shift descriptors

# A zswap value, as vswap_desc_zswap() reads it and vswap_desc_set_zswap()
# takes it: NULL (no zswap backing); a Python object stored through the
# VSwap API (an aligned PyObject *, low bits 00); a zswap pool's native
# entry (its address | VSWAP_ZSWAP_NATIVE); a handle stored by a batch call
# (handle << 2 | VSWAP_ZSWAP_HANDLE, handle >= 1); or VSWAP_ZSWAP_ZERO, which
# stands for the ZERO backing type ("handle 0"; the descriptor's word is 0).
# Every value but NULL and the ZERO marker is kept in backing.zswap_entry
# with the type VSWAP_ZSWAP.
cdef enum:
    VSWAP_ZSWAP_NATIVE = 1
    VSWAP_ZSWAP_HANDLE = 2
    VSWAP_ZSWAP_ZERO = 2
    VSWAP_ZSWAP_TAGS = 3

# What a pool tells the VSwap API about one of its entries.
ctypedef struct zswap_entry_info:
    uint64_t swpentry
    uint32_t length
    uint8_t referenced
    uint8_t zero
    uint8_t incompressible

# Hooks of a bound zswap pool.
ctypedef void (*zswap_release_fn)(void *owner, void *zswap_entry) noexcept nogil
ctypedef void (*zswap_peek_fn)(void *owner, void *zswap_entry, zswap_entry_info *info) noexcept nogil
ctypedef void (*slot_release_fn)(void *owner, uint64_t val, uint64_t slot) noexcept nogil
ctypedef bint (*slot_owned_fn)(void *owner, uint64_t val, uint64_t slot) noexcept nogil
ctypedef void (*slot_assign_fn)(void *owner, uint64_t val, uint64_t slot) noexcept nogil
ctypedef void (*range_freed_fn)(void *owner, uint64_t val, uint32_t nr) noexcept nogil

ctypedef struct vswap_space:
    pthread_spinlock_t map_lock
    uint64_t serial              # unique per space, keys the thread lookup cache
    int cluster_shift
    uint32_t cluster_size
    uint32_t max_clusters        # cluster ids are 1..max_clusters
    uint8_t lookup_cache         # check the thread's last cluster first (patch 22)
    uint32_t dir_size
    vswap_cluster ***dir         # two-level cluster map: dir[id >> 10][id & 1023]
    uint64_t *id_bitmap          # ids in use (map lock); id 0 is never free
    uint32_t id_hint             # no free id below this (map lock)
    uint32_t nr_clusters         # live clusters (map lock)
    vswap_cluster *partial_head[VSWAP_NR_ORDERS]
    vswap_cluster *partial_tail[VSWAP_NR_ORDERS]
    # Thread n's cached cluster of order o is cache[n // 64][n % 64 * 10 + o];
    # chunks are published once and read without a lock, entries written
    # under map_lock.
    vswap_cluster **cache[VSWAP_CACHE_CHUNKS]
    vswap_cluster *spare         # released structs kept for reuse (type-stable)
    vswap_cluster *all_clusters
    uint64_t alloc_reject        # allocations refused (no cluster id, no memory; atomic)
    uint64_t released_lock_acquisitions   # folded in when a cluster is released
    uint64_t released_lock_contended
    # The bound zswap pool, if any (NULL: none).  Read under a cluster lock
    # by whoever found one of its entries or slots there; a hook that runs
    # after that lock is dropped runs between vswap_zswap_get() and
    # vswap_zswap_put(), which a closing pool waits for.  zswap_peek,
    # slot_owned and range_freed run under the cluster lock.  The hooks are
    # set before owner is published; they are the same functions for every
    # pool, so threads still pinned to a closing pool are not disturbed.
    void *zswap_owner
    long long zswap_users        # hook users in flight (vswap_seq_*)
    zswap_release_fn zswap_release
    zswap_peek_fn zswap_peek
    slot_release_fn slot_release
    slot_owned_fn slot_owned     # whether a descriptor's slot is the pool's page
    slot_assign_fn slot_assign   # set_slot() gave a descriptor a slot of the pool's file
    range_freed_fn range_freed   # after a free, for pools that index entries elsewhere

cdef extern from "vswap_sync.h" nogil:
    void vswap_store_relaxed_i32 "vswap_store_relaxed"(int32_t *p, int32_t v)
    long long vswap_seq_add(long long *p, long long v)
    long long vswap_seq_load(long long *p)
    void vswap_wait_zero(long long *p)
    void *vswap_load_owner "vswap_load_acquire"(void **p)
    void vswap_store_owner "vswap_store_release"(void **p, void *v)


cdef inline void *vswap_zswap_get(vswap_space *vs) noexcept nogil:
    """Pin the bound pool for hooks run after the cluster lock is dropped.

    Caller holds the cluster lock of a descriptor in which it found the
    pool's entry or slot (so the pool has not finished closing).  Returns
    the pool (never NULL then); pair with vswap_zswap_put() once the hooks
    have run, before any Python code may run.
    """
    vswap_seq_add(&vs.zswap_users, 1)
    return vswap_load_owner(&vs.zswap_owner)


cdef inline void *vswap_zswap_tryget(vswap_space *vs) noexcept nogil:
    """vswap_zswap_get() for a caller that found no object of the pool under
    its cluster lock (a slot number, which may be no page of the pool's):
    the pool may be closing, its walk past this cluster.  Returns the pinned
    pool, or NULL, pinning nothing, when none is bound."""
    cdef void *owner
    vswap_seq_add(&vs.zswap_users, 1)
    owner = vswap_load_owner(&vs.zswap_owner)
    if owner == NULL:
        vswap_seq_add(&vs.zswap_users, -1)
    return owner


cdef inline void vswap_zswap_put(vswap_space *vs) noexcept nogil:
    vswap_seq_add(&vs.zswap_users, -1)


cdef inline void vswap_counter_add(int32_t *counter, int32_t delta) noexcept nogil:
    """Change a cluster counter (count, nr_zswap) under the cluster lock.

    Walkers (len, zswap_empty) read these without the lock; a relaxed atomic
    store makes that read well defined at no cost.
    """
    vswap_store_relaxed_i32(counter, counter[0] + delta)


cdef inline void vswap_cluster_lock(vswap_cluster *cluster) noexcept nogil:
    """Take a cluster's spinlock, counting a failed first try as contention.

    The counters are written under the lock they count, so they cost no
    shared cache line beyond the lock's own.
    """
    if pthread_spin_trylock(&cluster.lock) != 0:
        pthread_spin_lock(&cluster.lock)
        cluster.lock_contended += 1
    cluster.lock_acquisitions += 1


cdef inline void vswap_cluster_unlock(vswap_cluster *cluster) noexcept nogil:
    pthread_spin_unlock(&cluster.lock)


cdef inline bint vswap_desc_allocated(vswap_cluster *cluster, uint32_t index) noexcept nogil:
    """Whether descriptor ``index`` is allocated.  Caller holds the cluster lock."""
    return (cluster.bitmap[index >> 6] >> (index & 63)) & 1


cdef inline bint vswap_cache_is_folio(swp_desc *desc) noexcept nogil:
    """Whether the swap-cache union holds a folio (not a shadow, not empty)."""
    return desc.cache.swap_cache != NULL and not (desc.cache.shadow & 1)


cdef inline bint vswap_zswap_is_object(void *zswap_entry) noexcept nogil:
    """Whether a zswap_entry field holds a Python object (a reference)."""
    return zswap_entry != NULL and not (<uintptr_t>zswap_entry & VSWAP_ZSWAP_TAGS)


cdef inline bint vswap_zswap_is_handle(void *zswap_entry) noexcept nogil:
    """Whether a zswap_entry field holds a batch handle."""
    return (<uintptr_t>zswap_entry & VSWAP_ZSWAP_TAGS) == VSWAP_ZSWAP_HANDLE \
        and zswap_entry != <void *>VSWAP_ZSWAP_ZERO


cdef inline bint vswap_zswap_is_pool(void *zswap_entry) noexcept nogil:
    """Whether a zswap_entry field holds what a zswap pool owns: a native
    entry or the ZERO marker."""
    return (<uintptr_t>zswap_entry & VSWAP_ZSWAP_NATIVE) != 0 \
        or zswap_entry == <void *>VSWAP_ZSWAP_ZERO


# ---------------------------------------------------------------------------
# The backing of a descriptor.  One backing at a time, as v6 patch 14 makes
# it: storing a new one releases the old (release_backing()).  The setters
# hand back what they displaced; the caller releases it once the cluster
# lock is dropped (a slot through the bound pool's slot_release hook, a pool
# entry through zswap_release, a Python object's reference with the GIL),
# as release_backing() drops the cluster lock to free physical slots.
# Callers hold the cluster lock.
# ---------------------------------------------------------------------------

cdef inline int vswap_desc_type(swp_desc *desc) noexcept nogil:
    """The backing type (VSWAP_NONE .. VSWAP_FOLIO)."""
    return (desc.flags >> VSWAP_TYPE_SHIFT) & VSWAP_TYPE_MASK


cdef inline void vswap_desc_set_type(swp_desc *desc, int type) noexcept nogil:
    desc.flags = <uint8_t>((desc.flags & ~(VSWAP_TYPE_MASK << VSWAP_TYPE_SHIFT))
                           | (type << VSWAP_TYPE_SHIFT))


cdef inline void vswap_desc_init(swp_desc *desc, void *folio) noexcept nogil:
    """A newly allocated descriptor (__vswap_alloc_from_cluster()): FOLIO-backed
    by ``folio`` in its swap cache, or with no backing when there is none."""
    desc.backing.slot.val = 0
    desc.cache.swap_cache = folio
    desc.swap_count = 0
    desc.memcgid = 0
    desc.pad = 0
    desc.flags = 0
    vswap_desc_set_type(desc, VSWAP_FOLIO if folio != NULL else VSWAP_NONE)


cdef inline int vswap_desc_fallback(swp_desc *desc) noexcept nogil:
    """The type of a descriptor whose backing is released with nothing in
    its place: FOLIO when its swap cache holds a folio (the folio is then the
    only copy, as vswap_store_folio() makes it after an exclusive zswap
    load), else NONE."""
    return VSWAP_FOLIO if vswap_cache_is_folio(desc) else VSWAP_NONE


cdef inline void *vswap_desc_zswap(swp_desc *desc) noexcept nogil:
    """The zswap value (see above) of a descriptor: its zswap entry when it
    is ZSWAP-backed, the ZERO marker when ZERO, else NULL (zswap_entry_load()
    returns NULL unless the type is VSWAP_ZSWAP)."""
    cdef int type = vswap_desc_type(desc)
    if type == VSWAP_ZSWAP:
        return desc.backing.zswap_entry
    if type == VSWAP_ZERO:
        return <void *>VSWAP_ZSWAP_ZERO
    return NULL


cdef inline uint64_t vswap_desc_slot(swp_desc *desc) noexcept nogil:
    """The physical slot of a SWAPFILE-backed descriptor, else 0
    (swp_entry_to_swp_slot())."""
    if vswap_desc_type(desc) == VSWAP_SWAPFILE:
        return desc.backing.slot.val
    return 0


cdef inline uint64_t vswap_desc_set_zswap(vswap_cluster *cluster, swp_desc *desc,
                                          void *z) noexcept nogil:
    """Make zswap value ``z`` the backing (zswap_entry_store(): ZSWAP, or
    ZERO for the marker, as swap_zeromap_folio_set() marks it); NULL
    releases the zswap backing, leaving vswap_desc_fallback().  Keeps the
    cluster's ``nr_zswap`` (descriptors with a zswap value).  The caller
    has read the old zswap value (vswap_desc_zswap()) to release it; returns
    the slot displaced from a SWAPFILE backing (0: none), to release too."""
    cdef int old_type = vswap_desc_type(desc)
    cdef uint64_t old_slot
    cdef bint had
    if old_type == VSWAP_ZSWAP and z != NULL and z != <void *>VSWAP_ZSWAP_ZERO:
        desc.backing.zswap_entry = z        # the common case: entry for entry
        return 0
    old_slot = desc.backing.slot.val if old_type == VSWAP_SWAPFILE else 0
    had = old_type == VSWAP_ZSWAP or old_type == VSWAP_ZERO
    desc.backing.slot.val = 0
    if z == NULL:
        vswap_desc_set_type(desc, vswap_desc_fallback(desc))
    elif z == <void *>VSWAP_ZSWAP_ZERO:
        vswap_desc_set_type(desc, VSWAP_ZERO)
    else:
        desc.backing.zswap_entry = z
        vswap_desc_set_type(desc, VSWAP_ZSWAP)
    if had and z == NULL:
        vswap_counter_add(&cluster.nr_zswap, -1)
    elif not had and z != NULL:
        vswap_counter_add(&cluster.nr_zswap, 1)
    return old_slot


cdef inline uint64_t vswap_desc_drop_slot(swp_desc *desc) noexcept nogil:
    """Release a SWAPFILE backing, leaving vswap_desc_fallback(); returns its
    slot, or 0 (and changes nothing) when the descriptor has none."""
    cdef uint64_t slot = vswap_desc_slot(desc)
    if slot != 0:
        desc.backing.slot.val = 0
        vswap_desc_set_type(desc, vswap_desc_fallback(desc))
    return slot


cdef inline uint64_t vswap_desc_set_slot(vswap_cluster *cluster, swp_desc *desc, uint64_t slot,
                                         void **old_zswap) noexcept nogil:
    """Make physical ``slot`` the backing (SWAPFILE, as vswap_alloc_swap_slot()
    sets it at writeback); 0 releases a slot backing (only), leaving
    vswap_desc_fallback().  Returns the slot displaced (0: none); the zswap
    value displaced goes to ``*old_zswap`` (NULL: none).  Keeps ``nr_zswap``."""
    cdef uint64_t old_slot = vswap_desc_slot(desc)
    cdef void *z
    old_zswap[0] = NULL
    if slot == 0:
        return vswap_desc_drop_slot(desc)
    z = vswap_desc_zswap(desc)
    old_zswap[0] = z
    if z != NULL:
        vswap_counter_add(&cluster.nr_zswap, -1)
    desc.backing.slot.val = slot
    vswap_desc_set_type(desc, VSWAP_SWAPFILE)
    return old_slot


cdef inline void vswap_desc_cache_changed(swp_desc *desc) noexcept nogil:
    """After the swap cache of a descriptor changed: a descriptor with no
    backing whose folio enters the swap cache is backed by it (v6 allocates
    with the folio: type FOLIO); a FOLIO-backed descriptor whose folio leaves
    the swap cache has no backing left (the kernel never lets that happen:
    it frees the entry, or gives it another backing first)."""
    cdef int type = vswap_desc_type(desc)
    if type == VSWAP_NONE and vswap_cache_is_folio(desc):
        vswap_desc_set_type(desc, VSWAP_FOLIO)
    elif type == VSWAP_FOLIO and not vswap_cache_is_folio(desc):
        vswap_desc_set_type(desc, VSWAP_NONE)


# Statuses of the batch calls (the same numbers as vswapfast.batch).
cdef enum:
    BATCH_OK = 0
    BATCH_EMPTY = 1
    BATCH_FOREIGN = 2
    BATCH_REJECTED = 3
    BATCH_INVALID = -1
    BATCH_BAD_HANDLE = -2
    BATCH_CORRUPT = -3

cdef inline void *vswap_handle_field(uint64_t handle) noexcept nogil:
    """A batch handle as the zswap_entry field holds it."""
    return <void *>((<uintptr_t>handle << 2) | VSWAP_ZSWAP_HANDLE)


cdef inline Py_ssize_t vswap_batch_displaced(void *z, Py_ssize_t i, uint64_t *old,
                                             signed char *status, void **displaced,
                                             Py_ssize_t ndisplaced) noexcept nogil:
    """Record what a batch store displaced from entry ``i``: nothing, a handle
    (into ``old``), or another entry (into ``displaced``, for the caller to
    release).  Returns the new count of displaced entries."""
    if z == NULL:
        status[i] = BATCH_EMPTY
    elif vswap_zswap_is_handle(z):
        if old != NULL:
            old[i] = <uintptr_t>z >> 2
        status[i] = BATCH_OK
    else:
        displaced[ndisplaced] = z
        ndisplaced += 1
        status[i] = BATCH_FOREIGN
    return ndisplaced


# Lookup, usable from other Cython code without the GIL.
cdef vswap_cluster *vswap_cluster_lookup_lock(vswap_space *vs, uint64_t id) noexcept nogil
cdef swp_desc *vswap_iter(vswap_space *vs, vswap_cluster **cluster, uint64_t val) noexcept nogil
cdef bint vswap_entry_allocated_nolock(vswap_space *vs, uint64_t val) noexcept nogil

cdef class VSwap:
    cdef vswap_space *vs

# The loops of the batch zswap entry calls: each design has its own, run
# with no GIL over ``ctx`` (the space, or an index); they return how many
# non-handle entries they displaced into ``displaced``.
ctypedef Py_ssize_t (*store_many_fn)(void *ctx, const uint64_t *vals, const uint64_t *handles,
                                     Py_ssize_t n, uint64_t *old, signed char *status,
                                     void **displaced, void **pinned) noexcept nogil
ctypedef Py_ssize_t (*load_erase_many_fn)(void *ctx, const uint64_t *vals, Py_ssize_t n,
                                          uint64_t *out, signed char *status, bint erase,
                                          void **displaced, void **pinned) noexcept nogil
cdef Py_ssize_t zswap_store_many(void *vs, const uint64_t *vals, const uint64_t *handles,
                                 Py_ssize_t n, uint64_t *old, signed char *status,
                                 void **displaced, void **pinned) noexcept nogil
cdef Py_ssize_t zswap_load_erase_many(void *vs, const uint64_t *vals, Py_ssize_t n,
                                      uint64_t *out, signed char *status, bint erase,
                                      void **displaced, void **pinned) noexcept nogil
# The Python side of those calls, shared by every design: argument checks,
# the status array, the GIL released around ``fn``, displaced entries
# released afterwards.
cdef object batch_store(vswap_space *vs, object entries, object handles, object old,
                        store_many_fn fn, void *ctx)
cdef object batch_load_erase(vswap_space *vs, object entries, object out, bint erase,
                             load_erase_many_fn fn, void *ctx)
# Argument checks with the VSwap messages, for other classes of the core.
cdef uint64_t entry_val(vswap_space *vs, object entry) except 0

# For a zswap pool: check an (entry, nr) range of allocated descriptors in
# one cluster, raising the VSwap exceptions; returns the first entry value.
cdef uint64_t vswap_check_range(VSwap space, object entry, object nr,
                                uint32_t *nr_out) except 0
# An int argument as an exact int (TypeError otherwise, bool refused); an
# int subclass is converted without running any of its methods.
cdef object int_arg(object x, str name)
# Unbind a closing pool (the model's swapoff): take every pool-owned zswap
# entry (native and ZERO) and every slot the pool owns (slot_owned) out of
# the descriptors, leaving vswap_desc_fallback(), and hand them to the
# pool's hooks, clear zswap_owner, let every cluster lock
# holder that may have read it finish, and wait for hook users in flight.
# Locks: map_lock briefly, then one cluster at a time; none while waiting.
cdef void vswap_zswap_unbind(vswap_space *vs) noexcept nogil
# Bind a pool: set the hooks, then publish ``owner``.  Caller checked that
# no pool is bound (GIL held); threads still pinned to a closing previous
# pool keep the owner they captured.
cdef void vswap_zswap_bind(vswap_space *vs, void *owner, zswap_release_fn release,
                           zswap_peek_fn peek, slot_release_fn slot_release,
                           slot_owned_fn slot_owned, slot_assign_fn slot_assign,
                           range_freed_fn range_freed) noexcept nogil

# An integer buffer seen as uint64 values: the buffer itself when its items
# are 8-byte integers, else a converted copy.  Negative values wrap to huge
# ones, which no swap entry is.
ctypedef struct u64_array:
    uint64_t *values
    Py_ssize_t n
    void *copy
    Py_buffer view
    bint has_view

# Get ``obj`` as values (n < 0: any length; else exactly n items).  A
# writable array must have 8-byte integer items.  Raises TypeError or
# ValueError naming ``name``.
cdef Py_ssize_t u64_array_get(u64_array *a, object obj, str name, bint writable,
                              Py_ssize_t n) except -1
cdef void u64_array_release(u64_array *a) noexcept
cdef int u64_array_len(u64_array *a, str name, Py_ssize_t n) except -1
# Copy input ``a`` if it shares memory with output ``out`` (aliased batch
# arguments): inputs are read as if before any output is written.
cdef int u64_array_unshare(u64_array *a, u64_array *out) except -1
cdef int u64_array_unshare_bytes(u64_array *a, char *out, Py_ssize_t nbytes) except -1
# A new array('b') of n statuses and its data.
cdef object status_array(Py_ssize_t n, signed char **data)
