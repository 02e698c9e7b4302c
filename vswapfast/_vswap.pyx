# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: always_allow_keywords=False
"""The virtual swap space: clusters of swap descriptors behind a cluster map.

This is mm/vswap.c in user space.  A swap entry is ``cluster_id << shift |
index``; its descriptor (``struct swp_desc``, 24 bytes) lives in the
cluster's descriptor array, guarded by the cluster's spinlock.

The cluster map is a two-level table of cluster pointers that readers walk
without a lock.  Where the kernel frees a cluster after an RCU grace period,
this core keeps cluster structs type-stable: a released struct goes to a
spare list and is reused as a cluster, never returned to the allocator while
the space lives.  A reader that raced with a release may therefore lock a
stale struct, but only ever a valid one, and it checks ``live`` and ``id``
under the lock before touching anything else (SLAB_TYPESAFE_BY_RCU style).
The descriptor array is freed on release; only lock holders that have seen
``live`` read it.

Lock ordering (v6 mm/vswap.c):
    cluster lock  ->  map_lock
At most one cluster lock is held at a time.  Allocation, which looks at
the partial lists under map_lock, takes cluster locks there only with
spin_trylock, skipping a busy cluster.  Neither lock is held while
Python code may run: objects displaced from descriptors are released after
the cluster lock is dropped.  Single-entry calls keep the GIL (their critical
section is shorter than a GIL round trip); nothing here waits for the GIL
while holding a spinlock.
"""

from cpython.ref cimport PyObject, Py_INCREF, Py_DECREF, Py_XINCREF, Py_XDECREF
from cpython.bool cimport PyBool_Check
from cpython.mem cimport PyMem_RawCalloc, PyMem_RawMalloc, PyMem_RawFree
from cpython.buffer cimport (
    PyObject_GetBuffer, PyBuffer_Release, PyBUF_FORMAT, PyBUF_C_CONTIGUOUS, PyBUF_WRITABLE,
)
from cpython cimport array
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_AsUnsignedLongLong, PyLong_Check
from cpython.number cimport PyIndex_Check, PyNumber_Index
from libc.stdint cimport uint8_t, uint32_t, int32_t, uint64_t, uintptr_t
from libc.string cimport memset, memcpy

from operator import index as _index

from vswapfast.errors import (
    InvalidEntryError, SwapCacheError, SwapFullError, bad_entry_message,
)
from vswapfast.zswap_entry import ZswapEntryView
import array as _array_module
import vswapfast.batch as _batch

cdef array.array _STATUS_TEMPLATE = _array_module.array("b")
cdef array.array _ENTRY_TEMPLATE = _array_module.array("Q")
if (_batch.BATCH_OK, _batch.BATCH_EMPTY, _batch.BATCH_FOREIGN, _batch.BATCH_REJECTED,
        _batch.BATCH_INVALID, _batch.BATCH_BAD_HANDLE, _batch.BATCH_CORRUPT) != (
        BATCH_OK, BATCH_EMPTY, BATCH_FOREIGN, BATCH_REJECTED,
        BATCH_INVALID, BATCH_BAD_HANDLE, BATCH_CORRUPT):
    raise ImportError("vswapfast.batch does not match the compiled statuses")

cdef extern from "vswap_sync.h" nogil:
    vswap_cluster **load_leaf "vswap_load_acquire"(vswap_cluster ***p)
    vswap_cluster *load_cluster "vswap_load_acquire"(vswap_cluster **p)
    void store_leaf "vswap_store_release"(vswap_cluster ***p, vswap_cluster **v)
    void store_cluster "vswap_store_release"(vswap_cluster **p, vswap_cluster *v)
    int32_t load_relaxed_i32 "vswap_load_relaxed"(int32_t *p)
    void store_relaxed_u64 "vswap_store_relaxed"(uint64_t *p, uint64_t v)
    void store_relaxed_u32 "vswap_store_relaxed"(uint32_t *p, uint32_t v)
    void store_relaxed_u8 "vswap_store_relaxed"(uint8_t *p, uint8_t v)
    uint64_t load_relaxed_u64 "vswap_load_relaxed"(uint64_t *p)
    uint64_t add_u64 "vswap_atomic_add"(uint64_t *p, uint64_t v)
    uint32_t load_relaxed_u32 "vswap_load_relaxed"(uint32_t *p)
    uint8_t load_relaxed_u8 "vswap_load_relaxed"(uint8_t *p)
    int vswap_this_thread()
    # The thread's cluster lookup cache (vswap_sync.h).
    uint64_t vswap_lookup_serial
    void *vswap_lookup_cluster
    uint64_t vswap_new_serial()

cdef extern from *:
    int popcount64 "__builtin_popcountll"(unsigned long long x) nogil
    int ctz64 "__builtin_ctzll"(unsigned long long x) nogil

SWP_DESC_SIZE = sizeof(swp_desc)
VSWAP_CLUSTER_SHIFT = VSWAP_MAX_SHIFT
VSWAP_CLUSTER_SIZE = 1 << VSWAP_MAX_SHIFT
VSWAP_MAX_CLUSTERS = 1 << 20
# Beyond this the map directory alone would outweigh any realistic use.
_MAX_CLUSTERS_LIMIT = 1 << 24
# A swap-cache shadow value fits in a pointer with the low bit as its tag.
_SHADOW_LIMIT = 1 << 62

# Results of the allocator's C paths.
cdef enum:
    ALLOC_OK = 0
    ALLOC_NO_ID = -1
    ALLOC_NO_MEMORY = -2


# ---------------------------------------------------------------------------
# Allocation bitmap of a cluster.  Callers hold the cluster lock.
# ---------------------------------------------------------------------------

cdef inline uint64_t word_mask(uint32_t lo, uint32_t n) noexcept nogil:
    if n >= 64:
        return <uint64_t>-1
    return ((<uint64_t>1 << n) - 1) << lo


cdef uint32_t bitmap_count(vswap_cluster *c, uint32_t start, uint32_t nr) noexcept nogil:
    """Allocated descriptors in [start, start + nr)."""
    cdef uint32_t i = start, end = start + nr, n, total = 0
    while i < end:
        n = 64 - (i & 63)
        if n > end - i:
            n = end - i
        total += popcount64(c.bitmap[i >> 6] & word_mask(i & 63, n))
        i += n
    return total


cdef int bitmap_first_clear(vswap_cluster *c, uint32_t start, uint32_t nr) noexcept nogil:
    """The first free descriptor in [start, start + nr), or -1."""
    cdef uint32_t i = start, end = start + nr, n
    cdef uint64_t free
    while i < end:
        n = 64 - (i & 63)
        if n > end - i:
            n = end - i
        free = ~c.bitmap[i >> 6] & word_mask(i & 63, n)
        if free:
            return (i & ~63u) + ctz64(free)
        i += n
    return -1


cdef void bitmap_assign(vswap_cluster *c, uint32_t start, uint32_t nr, bint value) noexcept nogil:
    cdef uint32_t i = start, end = start + nr, n
    cdef uint64_t mask
    while i < end:
        n = 64 - (i & 63)
        if n > end - i:
            n = end - i
        mask = word_mask(i & 63, n)
        if value:
            store_relaxed_u64(&c.bitmap[i >> 6], c.bitmap[i >> 6] | mask)
        else:
            store_relaxed_u64(&c.bitmap[i >> 6], c.bitmap[i >> 6] & ~mask)
        i += n


cdef int find_free_chunk(vswap_cluster *c, uint32_t size, int order) noexcept nogil:
    """The lowest free naturally aligned chunk of 1 << order, or -1."""
    cdef uint32_t nr = 1u << order, start = 0
    if order == 0:
        return bitmap_first_clear(c, 0, size)
    while start < size:
        if bitmap_count(c, start, nr) == 0:
            return start
        start += nr
    return -1


# ---------------------------------------------------------------------------
# Cluster locks and lookup.
# ---------------------------------------------------------------------------

cdef vswap_cluster *vswap_cluster_lookup_lock(vswap_space *vs, uint64_t id) noexcept nogil:
    """Find cluster ``id`` without the map lock and return it locked, or NULL.

    Locks: returns with the cluster lock held.  The struct read from the map
    may have been released and reused meanwhile; it is only trusted once
    ``live`` and ``id`` have been checked under its lock.
    """
    global vswap_lookup_serial, vswap_lookup_cluster
    cdef vswap_cluster **leaf
    cdef vswap_cluster *c
    if id == 0 or id > vs.max_clusters:
        return NULL
    if vs.lookup_cache and vswap_lookup_serial == vs.serial:
        # The thread's last cluster; a stale one fails the same checks.
        c = <vswap_cluster *>vswap_lookup_cluster
        vswap_cluster_lock(c)
        if c.live and c.id == id:
            return c
        vswap_cluster_unlock(c)
    leaf = load_leaf(&vs.dir[id >> VSWAP_LEAF_SHIFT])
    if leaf == NULL:
        return NULL
    c = load_cluster(&leaf[id & (VSWAP_LEAF_SIZE - 1)])
    if c == NULL:
        return NULL
    vswap_cluster_lock(c)
    if not c.live or c.id != id:
        vswap_cluster_unlock(c)
        return NULL
    if vs.lookup_cache:
        vswap_lookup_serial = vs.serial
        vswap_lookup_cluster = c
    return c


cdef bint vswap_entry_allocated_nolock(vswap_space *vs, uint64_t val) noexcept nogil:
    """Whether ``val`` has an allocated descriptor, read without any lock.

    Exact unless a free or allocation of ``val`` races with the call.  The
    cluster struct is type-stable, and its id, live flag and bitmap are
    written with relaxed atomic stores, so the racy reads are well defined.
    """
    cdef uint64_t id = val >> vs.cluster_shift
    cdef uint32_t index = val & (vs.cluster_size - 1)
    cdef vswap_cluster **leaf
    cdef vswap_cluster *c
    if id == 0 or id > vs.max_clusters:
        return False
    leaf = load_leaf(&vs.dir[id >> VSWAP_LEAF_SHIFT])
    if leaf == NULL:
        return False
    c = load_cluster(&leaf[id & (VSWAP_LEAF_SIZE - 1)])
    if c == NULL or load_relaxed_u32(&c.id) != id or not load_relaxed_u8(&c.live):
        return False
    return (load_relaxed_u64(&c.bitmap[index >> 6]) >> (index & 63)) & 1


cdef swp_desc *vswap_iter(vswap_space *vs, vswap_cluster **cluster, uint64_t val) noexcept nogil:
    """Return the descriptor of ``val`` with its cluster locked, or NULL.

    ``*cluster`` is the cluster locked by the previous call (or NULL).  When
    ``val`` lies in another cluster the old one is unlocked before the new one
    is locked: never two cluster locks at once.  On NULL no lock is held and
    ``*cluster`` is NULL.
    """
    cdef uint64_t id = val >> vs.cluster_shift
    cdef uint32_t index = val & (vs.cluster_size - 1)
    cdef vswap_cluster *c = cluster[0]
    if c != NULL and c.id != id:
        vswap_cluster_unlock(c)
        c = NULL
    if c == NULL:
        c = vswap_cluster_lookup_lock(vs, id)
        if c == NULL:
            cluster[0] = NULL
            return NULL
    if not vswap_desc_allocated(c, index):
        vswap_cluster_unlock(c)
        cluster[0] = NULL
        return NULL
    cluster[0] = c
    return &c.descriptors[index]


# ---------------------------------------------------------------------------
# The allocator.  Called with the GIL held but touching no Python objects.
# ---------------------------------------------------------------------------

cdef uint32_t next_live_id(vswap_space *vs, uint32_t start) noexcept nogil:
    """The lowest cluster id >= start in use, or 0.  Caller holds map_lock."""
    cdef uint32_t w = start >> 6, nwords = (vs.max_clusters >> 6) + 1
    cdef uint64_t bits
    if start > vs.max_clusters:
        return 0
    bits = vs.id_bitmap[w] & ~word_mask(0, start & 63)
    while True:
        bits &= ~(<uint64_t>(w == 0))        # id 0 is reserved, never a cluster
        if bits:
            start = (w << 6) + ctz64(bits)
            return start if start <= vs.max_clusters else 0
        w += 1
        if w >= nwords:
            return 0
        bits = vs.id_bitmap[w]


cdef uint32_t lowest_free_id(vswap_space *vs) noexcept nogil:
    """The lowest unused cluster id, or 0.  Caller holds map_lock."""
    cdef uint32_t w, nwords = (vs.max_clusters >> 6) + 1
    cdef uint64_t free
    for w in range(vs.id_hint >> 6, nwords):
        free = ~vs.id_bitmap[w]
        if free:
            return (w << 6) + ctz64(free)
    return 0


cdef void partial_append(vswap_space *vs, vswap_cluster *c) noexcept nogil:
    cdef int order = c.order
    c.partial_next = NULL
    c.partial_prev = vs.partial_tail[order]
    if c.partial_prev != NULL:
        c.partial_prev.partial_next = c
    else:
        vs.partial_head[order] = c
    vs.partial_tail[order] = c
    c.on_partial = 1


cdef void partial_remove(vswap_space *vs, vswap_cluster *c) noexcept nogil:
    cdef int order = c.order
    if c.partial_prev != NULL:
        c.partial_prev.partial_next = c.partial_next
    else:
        vs.partial_head[order] = c.partial_next
    if c.partial_next != NULL:
        c.partial_next.partial_prev = c.partial_prev
    else:
        vs.partial_tail[order] = c.partial_prev
    c.partial_prev = c.partial_next = NULL
    c.on_partial = 0


cdef inline vswap_cluster **cache_slot(vswap_space *vs, int thread, int order) noexcept nogil:
    """Where thread ``thread`` caches its cluster of ``order``, or NULL if its
    chunk of the cache table does not exist yet."""
    cdef vswap_cluster **chunk = load_leaf(&vs.cache[thread // VSWAP_CACHE_CHUNK_THREADS])
    if chunk == NULL:
        return NULL
    return &chunk[(thread % VSWAP_CACHE_CHUNK_THREADS) * VSWAP_NR_ORDERS + order]


cdef bint cache_set(vswap_space *vs, vswap_cluster **slot, vswap_cluster *c) noexcept nogil:
    """Make ``c`` the cached cluster in ``slot`` (which holds no cluster: a
    cached cluster is dropped only when full).  Caller holds map_lock and
    the cluster lock.  Returns False when the thread has no cache."""
    if slot == NULL:
        return False
    c.refcnt += 1
    store_cluster(slot, c)
    return True


cdef void take_chunk(vswap_space *vs, vswap_cluster *c, uint32_t start, uint32_t nr,
                     void *folio) noexcept nogil:
    """Hand out [start, start + nr) of a locked cluster (__vswap_alloc_from_cluster)."""
    cdef uint32_t i
    bitmap_assign(c, start, nr, True)
    for i in range(nr):
        vswap_desc_init(&c.descriptors[start + i], folio)
    vswap_counter_add(&c.count, nr)


cdef int alloc_from_cached(vswap_space *vs, vswap_cluster **slot, int order, void *folio,
                           uint64_t *entry) noexcept nogil:
    """Allocate from the thread's cached cluster of ``order`` (v6
    folio_alloc_swap(): the per-CPU cluster first).

    Locks: that cluster; if it is full, map_lock inside it (the kernel's
    order), to drop it from the cache: a cached cluster is replaced only
    when it is full.  The dropped cluster is on no list ("full") until a
    free gives it room.  Returns 1 with ``*entry`` set, or 0.
    """
    cdef vswap_cluster *c = load_cluster(slot) if slot != NULL else NULL
    cdef int start
    if c == NULL:
        return 0
    vswap_cluster_lock(c)
    # Cached clusters are never released, so c is live and of ``order``;
    # the slot is checked again in case this thread number was reused.
    if load_cluster(slot) == c and c.live and c.order == order:
        start = find_free_chunk(c, vs.cluster_size, order)
        if start >= 0:
            take_chunk(vs, c, start, 1u << order, folio)
            entry[0] = (<uint64_t>c.id << vs.cluster_shift) | <uint32_t>start
            vswap_cluster_unlock(c)
            return 1
        pthread_spin_lock(&vs.map_lock)
        if slot[0] == c:
            store_cluster(slot, NULL)
            c.refcnt -= 1
            c.full = 1
        pthread_spin_unlock(&vs.map_lock)
    vswap_cluster_unlock(c)
    return 0


cdef int alloc_from_partial(vswap_space *vs, vswap_cluster **slot, int order, void *folio,
                            uint64_t *entry) noexcept nogil:
    """Take a partial cluster of ``order`` for this thread, oldest first.

    Caller holds map_lock.  A cluster that another thread has locked is
    skipped (spin_trylock: the kernel takes cluster locks before the map
    lock).  The cluster leaves the partial list (list_del_init) and becomes
    the thread's cached cluster, so no other thread allocates from it.
    Returns 1 with ``*entry`` set, or 0.
    """
    cdef vswap_cluster *c = vs.partial_head[order]
    cdef vswap_cluster *next_c
    cdef int start
    while c != NULL:
        next_c = c.partial_next
        if pthread_spin_trylock(&c.lock) != 0:
            c = next_c
            continue
        c.lock_acquisitions += 1
        partial_remove(vs, c)
        start = find_free_chunk(c, vs.cluster_size, order)
        if start < 0:
            c.full = 1                  # cannot happen: only cachers allocate
            vswap_cluster_unlock(c)
            c = next_c
            continue
        take_chunk(vs, c, start, 1u << order, folio)
        entry[0] = (<uint64_t>c.id << vs.cluster_shift) | <uint32_t>start
        if not cache_set(vs, slot, c):
            partial_append(vs, c)       # no cache for this thread: shared
        vswap_cluster_unlock(c)
        return 1
    return 0


cdef void cluster_install(vswap_space *vs, vswap_cluster *c, uint32_t id, int order,
                          swp_desc *descriptors, void *folio) noexcept nogil:
    """Make ``c`` cluster ``id``, hand out its first chunk, and publish it.
    Caller holds map_lock.

    ``c`` may be a reused struct that a stale reader has locked: its lock is
    taken by trylock, which such a reader lets go of at once without taking
    map_lock, and ``live`` is set last.
    """
    cdef int w
    while pthread_spin_trylock(&c.lock) != 0:
        pass
    store_relaxed_u32(&c.id, id)
    c.order = order
    vswap_store_relaxed_i32(&c.count, 0)
    vswap_store_relaxed_i32(&c.nr_zswap, 0)
    c.refcnt = 1
    c.full = 0
    for w in range(VSWAP_BITMAP_WORDS):
        store_relaxed_u64(&c.bitmap[w], 0)
    c.descriptors = descriptors
    c.lock_acquisitions = 1
    c.lock_contended = 0
    take_chunk(vs, c, 0, 1u << order, folio)
    store_relaxed_u8(&c.live, 1)
    vswap_cluster_unlock(c)
    vs.id_bitmap[id >> 6] |= <uint64_t>1 << (id & 63)
    vs.id_hint = id + 1
    vs.nr_clusters += 1
    store_cluster(&vs.dir[id >> VSWAP_LEAF_SHIFT][id & (VSWAP_LEAF_SIZE - 1)], c)


cdef int vswap_alloc(vswap_space *vs, int order, void *folio, uint64_t *entry) noexcept nogil:
    """Allocate 1 << order entries whose swap cache is ``folio``, as v6's
    folio_alloc_swap() does: the thread's cached cluster of that order; else
    a partial cluster, taken off the list into the thread's cache; else a
    new cluster, which becomes the thread's cached cluster and goes on no
    list.  So each thread allocates from clusters of its own.

    Locks: the cached cluster (and map_lock inside it to drop it when full);
    then map_lock, trying partial clusters with spin_trylock.  Memory is
    allocated with no lock held, and the partial list is looked at again
    afterwards.  Returns ALLOC_OK with ``*entry`` set, ALLOC_NO_ID or
    ALLOC_NO_MEMORY.
    """
    cdef int thread = vswap_this_thread()
    cdef vswap_cluster ***chunkp = &vs.cache[thread // VSWAP_CACHE_CHUNK_THREADS]
    cdef vswap_cluster **new_chunk = NULL
    cdef vswap_cluster *c = NULL
    cdef vswap_cluster *new_struct = NULL
    cdef vswap_cluster **new_leaf = NULL
    cdef swp_desc *new_descs = NULL
    cdef uint32_t id
    cdef int result = ALLOC_OK
    cdef vswap_cluster ***leafp

    if alloc_from_cached(vs, cache_slot(vs, thread, order), order, folio, entry):
        return ALLOC_OK
    if load_leaf(chunkp) == NULL:
        # The thread's first allocation: its cache chunk is made unlocked.
        # Without memory for it the thread simply allocates uncached.
        new_chunk = <vswap_cluster **>PyMem_RawCalloc(
            VSWAP_CACHE_CHUNK_THREADS * VSWAP_NR_ORDERS, sizeof(vswap_cluster *))
    while True:
        pthread_spin_lock(&vs.map_lock)
        if new_chunk != NULL and chunkp[0] == NULL:
            store_leaf(chunkp, new_chunk)
            new_chunk = NULL
        if alloc_from_partial(vs, cache_slot(vs, thread, order), order, folio, entry):
            break
        id = lowest_free_id(vs)
        if id == 0 or id > vs.max_clusters:
            result = ALLOC_NO_ID
            break
        leafp = &vs.dir[id >> VSWAP_LEAF_SHIFT]
        if leafp[0] == NULL and new_leaf != NULL:
            store_leaf(leafp, new_leaf)
            new_leaf = NULL
        if leafp[0] != NULL and new_descs != NULL and (vs.spare != NULL or new_struct != NULL):
            if vs.spare != NULL:
                c = vs.spare
                vs.spare = c.free_next
            else:
                c = new_struct
                new_struct = NULL
                c.all_next = vs.all_clusters
                vs.all_clusters = c
            cluster_install(vs, c, id, order, new_descs, folio)
            new_descs = NULL
            entry[0] = <uint64_t>id << vs.cluster_shift
            if not cache_set(vs, cache_slot(vs, thread, order), c):
                # No cache for this thread (no memory for it): the cluster
                # is shared through the partial list instead.
                partial_append(vs, c)
            break
        # Something is missing: allocate it unlocked, then look again.
        pthread_spin_unlock(&vs.map_lock)
        if load_leaf(leafp) == NULL and new_leaf == NULL:
            new_leaf = <vswap_cluster **>PyMem_RawCalloc(VSWAP_LEAF_SIZE, sizeof(vswap_cluster *))
            if new_leaf == NULL:
                result = ALLOC_NO_MEMORY
                break
        if new_descs == NULL:
            new_descs = <swp_desc *>PyMem_RawCalloc(vs.cluster_size, sizeof(swp_desc))
            if new_descs == NULL:
                result = ALLOC_NO_MEMORY
                break
        if new_struct == NULL:
            new_struct = <vswap_cluster *>PyMem_RawCalloc(1, sizeof(vswap_cluster))
            if new_struct == NULL:
                result = ALLOC_NO_MEMORY
                break
            pthread_spin_init(&new_struct.lock, PTHREAD_PROCESS_PRIVATE)
    if result != ALLOC_NO_MEMORY:
        pthread_spin_unlock(&vs.map_lock)
    if new_struct != NULL:
        pthread_spin_destroy(&new_struct.lock)
    PyMem_RawFree(new_struct)
    PyMem_RawFree(new_leaf)
    PyMem_RawFree(new_descs)
    PyMem_RawFree(new_chunk)
    if result != ALLOC_OK:
        add_u64(&vs.alloc_reject, 1)
    return result


cdef swp_desc *cluster_release(vswap_space *vs, vswap_cluster *c) noexcept nogil:
    """Take an empty cluster, cached by no thread, out of the map and park
    its struct.

    Caller holds the cluster lock and map_lock inside it.  Returns the
    descriptor array, for the caller to free with no lock held.
    """
    cdef swp_desc *descriptors = c.descriptors
    cdef uint32_t id = c.id
    store_relaxed_u8(&c.live, 0)
    c.descriptors = NULL
    vs.released_lock_acquisitions += c.lock_acquisitions
    vs.released_lock_contended += c.lock_contended
    store_cluster(&vs.dir[id >> VSWAP_LEAF_SHIFT][id & (VSWAP_LEAF_SIZE - 1)], NULL)
    vs.id_bitmap[id >> 6] &= ~(<uint64_t>1 << (id & 63))
    if id < vs.id_hint:
        vs.id_hint = id
    if c.on_partial:
        partial_remove(vs, c)
    c.refcnt = 0
    c.full = 0
    c.free_next = vs.spare
    vs.spare = c
    vs.nr_clusters -= 1
    return descriptors


cdef inline bint cluster_needs_put(vswap_space *vs, vswap_cluster *c) noexcept nogil:
    """After a free, whether ``c`` must be released (empty and cached by no
    thread) or go back on the partial list (dropped when full, and now with
    room for its order).  Caller holds the cluster lock, which with
    map_lock guards ``refcnt`` and ``full``."""
    if c.count == 0:
        return c.refcnt == 1
    # Room for this cluster's order, not just a lower count, brings a full
    # cluster back: a sub-range free of a large chunk may not.
    return c.full and find_free_chunk(c, vs.cluster_size, c.order) >= 0


cdef swp_desc *cluster_put(vswap_space *vs, vswap_cluster *c) noexcept nogil:
    """Release ``c`` or put it back on the partial list (list_add_tail), as
    cluster_needs_put() found.  Caller holds the cluster lock; takes map_lock
    inside it.  Returns descriptors to free once no lock is held, or NULL."""
    cdef swp_desc *descriptors = NULL
    pthread_spin_lock(&vs.map_lock)
    if c.count == 0 and c.refcnt == 1:
        descriptors = cluster_release(vs, c)
    elif c.full:
        c.full = 0
        partial_append(vs, c)
    pthread_spin_unlock(&vs.map_lock)
    return descriptors


cdef int free_locked(vswap_space *vs, vswap_cluster *c, swp_desc *desc, uint32_t n,
                     PyObject **objs) noexcept nogil:
    """Free ``n`` allocated descriptors from ``desc`` of locked cluster ``c``.

    Tells a tree-indexed pool of the freed range while still holding the
    cluster lock; releases the cluster or puts it back on its partial list
    if need be (map_lock inside the cluster lock); drops it; hands pool entries
    and slots to the bound pool with no lock held.  The Python objects the
    descriptors held (at most 2 * n) are left in ``objs`` for the caller to
    release with the GIL; returns how many.
    """
    cdef void *owned[VSWAP_CLUSTER_MAX]
    cdef uint64_t slots[VSWAP_CLUSTER_MAX]
    cdef uint32_t i, id = c.id, start = desc - c.descriptors
    cdef uint64_t val = (<uint64_t>id << vs.cluster_shift) | start
    cdef uint64_t slot_vals[VSWAP_CLUSTER_MAX]
    cdef int nobjs = 0, nowned = 0, nslots = 0, k
    cdef swp_desc *released = NULL
    # The bound pool, read under the cluster lock that its close() takes:
    # while this lock is held and the pool's entries or slots are here, it
    # has not finished closing.
    cdef void *owner = vswap_load_owner(&vs.zswap_owner)
    cdef void *z
    # release_backing() of vswap_free(): whatever backs each descriptor.
    for i in range(n):
        z = vswap_desc_zswap(&desc[i])
        if vswap_zswap_is_object(z):
            objs[nobjs] = <PyObject *>z
            nobjs += 1
        elif vswap_zswap_is_pool(z):
            owned[nowned] = z
            nowned += 1
        if z != NULL:
            vswap_counter_add(&c.nr_zswap, -1)
        if vswap_desc_slot(&desc[i]) != 0 and owner != NULL:
            slots[nslots] = vswap_desc_slot(&desc[i])
            slot_vals[nslots] = val + i
            nslots += 1
        if vswap_cache_is_folio(&desc[i]):
            objs[nobjs] = <PyObject *>desc[i].cache.swap_cache
            nobjs += 1
    memset(desc, 0, n * sizeof(swp_desc))
    bitmap_assign(c, start, n, False)
    vswap_counter_add(&c.count, -<int32_t>n)
    if owner != NULL and vs.range_freed != NULL:
        # Under the cluster lock (which comes before the tree locks), so that
        # no store into a re-allocated entry can slip in before the pool
        # has dropped the old one.
        vs.range_freed(owner, val, n)
    if nowned:
        owner = vswap_zswap_get(vs)
    elif nslots:
        # Slot numbers only: a closing pool may have walked past this
        # cluster (they are none of its pages) and unbound already.
        owner = vswap_zswap_tryget(vs)
    if cluster_needs_put(vs, c):
        released = cluster_put(vs, c)
    vswap_cluster_unlock(c)
    PyMem_RawFree(released)
    if (nowned or nslots) and owner != NULL:
        for k in range(nowned):
            vs.zswap_release(owner, owned[k])
        for k in range(nslots):
            vs.slot_release(owner, slot_vals[k], slots[k])
        vswap_zswap_put(vs)
    return nobjs


cdef swp_desc *range_lock_nogil(vswap_space *vs, uint64_t val, uint32_t nr,
                                vswap_cluster **cluster) noexcept nogil:
    """range_lock() for batch calls: the locked first descriptor of an
    allocated range inside one cluster, or NULL (nothing locked)."""
    cdef uint32_t index = val & (vs.cluster_size - 1)
    cdef vswap_cluster *c
    if nr == 0 or nr > vs.cluster_size - index:
        return NULL
    c = vswap_cluster_lookup_lock(vs, val >> vs.cluster_shift)
    if c == NULL:
        return NULL
    if bitmap_first_clear(c, index, nr) >= 0:
        vswap_cluster_unlock(c)
        return NULL
    cluster[0] = c
    return &c.descriptors[index]


# ---------------------------------------------------------------------------
# Batch calls: loops over arrays of entries, with no GIL.
# ---------------------------------------------------------------------------

cdef Py_ssize_t zswap_store_many(void *ctx, const uint64_t *vals, const uint64_t *handles,
                                 Py_ssize_t n, uint64_t *old, signed char *status,
                                 void **displaced, void **pinned) noexcept nogil:
    """Store handles; a run of entries in one cluster takes its lock once
    (vswap_iter).  Displaced non-handles go to ``displaced`` (returns how
    many): the caller releases them with no lock held.  A displaced slot is
    released at once, with the cluster lock dropped for it and the pool
    pinned, as release_backing() drops it to free physical slots."""
    cdef vswap_space *vs = <vswap_space *>ctx
    cdef vswap_cluster *c = NULL
    cdef swp_desc *desc
    cdef void *z
    cdef uint64_t val, handle, old_slot
    cdef Py_ssize_t i, ndisplaced = 0
    for i in range(n):
        val = vals[i]
        handle = handles[i]
        if old != NULL:
            old[i] = 0
        if handle == 0 or handle >= (<uint64_t>1 << 62):
            status[i] = BATCH_BAD_HANDLE
            continue
        desc = vswap_iter(vs, &c, val)
        if desc == NULL:
            status[i] = BATCH_INVALID
            continue
        z = vswap_desc_zswap(desc)
        old_slot = vswap_desc_set_zswap(c, desc, vswap_handle_field(handle))
        if vswap_zswap_is_pool(z) and pinned[0] == NULL:
            pinned[0] = vswap_zswap_get(vs)
        ndisplaced = vswap_batch_displaced(z, i, old, status, displaced, ndisplaced)
        if old_slot != 0:
            if pinned[0] == NULL:
                pinned[0] = vswap_zswap_tryget(vs)
            if pinned[0] != NULL:
                vswap_cluster_unlock(c)
                c = NULL
                vs.slot_release(pinned[0], val, old_slot)
    if c != NULL:
        vswap_cluster_unlock(c)
    return ndisplaced


cdef Py_ssize_t zswap_load_erase_many(void *ctx, const uint64_t *vals, Py_ssize_t n,
                                      uint64_t *out, signed char *status, bint erase,
                                      void **displaced, void **pinned) noexcept nogil:
    """Load (or erase) the handles of many entries, one lock per cluster run.
    Erased non-handles go to ``displaced``; returns how many."""
    cdef vswap_space *vs = <vswap_space *>ctx
    cdef vswap_cluster *c = NULL
    cdef swp_desc *desc
    cdef void *z
    cdef uint64_t val
    cdef Py_ssize_t i, ndisplaced = 0
    for i in range(n):
        val = vals[i]
        if out != NULL:
            out[i] = 0
        desc = vswap_iter(vs, &c, val)
        if desc == NULL:
            status[i] = BATCH_INVALID
            continue
        z = vswap_desc_zswap(desc)
        if z == NULL:
            status[i] = BATCH_EMPTY
            continue
        if vswap_zswap_is_handle(z):
            if out != NULL:
                out[i] = <uintptr_t>z >> 2
            status[i] = BATCH_OK
        else:
            status[i] = BATCH_FOREIGN
            if not erase:
                continue
            if vswap_zswap_is_pool(z) and pinned[0] == NULL:
                pinned[0] = vswap_zswap_get(vs)
            displaced[ndisplaced] = z
            ndisplaced += 1
        if erase:
            vswap_desc_set_zswap(c, desc, NULL)     # a zswap backing: no slot
    if c != NULL:
        vswap_cluster_unlock(c)
    return ndisplaced


cdef void release_displaced(vswap_space *vs, void **displaced, Py_ssize_t n,
                            void *pinned) noexcept:
    """Release zswap entries displaced by a batch: first every pool entry,
    through the hooks of ``pinned``, the pool the loop pinned when it
    displaced the first one (a pool cannot finish closing, nor another bind,
    while it is pinned), then the Python objects, whose __del__ may do
    anything, the pool's close() included.  GIL held, no vswap lock."""
    cdef Py_ssize_t i
    if pinned != NULL:
        for i in range(n):
            if vswap_zswap_is_pool(displaced[i]):
                vs.zswap_release(pinned, displaced[i])
                displaced[i] = NULL
        vswap_zswap_put(vs)
    for i in range(n):
        Py_XDECREF(<PyObject *>displaced[i])


cdef object batch_store(vswap_space *vs, object entries, object handles, object old,
                        store_many_fn fn, void *ctx):
    cdef u64_array a, h, o
    cdef signed char *status
    cdef void **displaced = NULL
    cdef void *pinned = NULL
    cdef Py_ssize_t ndisplaced = 0
    u64_array_get(&a, entries, "entries", False, -1)
    memset(&h, 0, sizeof(h))
    memset(&o, 0, sizeof(o))
    try:
        u64_array_get(&h, handles, "handles", False, -1)
        if old is not None:
            u64_array_get(&o, old, "old", True, -1)
        u64_array_len(&h, "handles", a.n)
        if old is not None:
            u64_array_len(&o, "old", a.n)
            # Every input is read before any output is written, as in the
            # twin: inputs that share memory with ``old`` are copied first.
            u64_array_unshare(&a, &o)
            u64_array_unshare(&h, &o)
        result = status_array(a.n, &status)
        displaced = <void **>PyMem_RawMalloc(max(a.n, 1) * sizeof(void *))
        if displaced == NULL:
            raise MemoryError()
        with nogil:
            ndisplaced = fn(ctx, a.values, h.values, a.n, o.values, status, displaced, &pinned)
        release_displaced(vs, displaced, ndisplaced, pinned)
    finally:
        PyMem_RawFree(displaced)
        u64_array_release(&a)
        u64_array_release(&h)
        u64_array_release(&o)
    return result


cdef object batch_load_erase(vswap_space *vs, object entries, object out, bint erase,
                             load_erase_many_fn fn, void *ctx):
    cdef u64_array a, o
    cdef signed char *status
    cdef void **displaced = NULL
    cdef void *pinned = NULL
    cdef Py_ssize_t ndisplaced = 0
    u64_array_get(&a, entries, "entries", False, -1)
    memset(&o, 0, sizeof(o))
    try:
        if out is not None or not erase:        # a load must have an out
            u64_array_get(&o, out, "old" if erase else "out", True, a.n)
            u64_array_unshare(&a, &o)
        result = status_array(a.n, &status)
        if erase:
            displaced = <void **>PyMem_RawMalloc(max(a.n, 1) * sizeof(void *))
            if displaced == NULL:
                raise MemoryError()
        with nogil:
            ndisplaced = fn(ctx, a.values, a.n, o.values, status, erase, displaced, &pinned)
        release_displaced(vs, displaced, ndisplaced, pinned)
    finally:
        PyMem_RawFree(displaced)
        u64_array_release(&a)
        u64_array_release(&o)
    return result


cdef Py_ssize_t u64_array_get(u64_array *a, object obj, str name, bint writable,
                              Py_ssize_t n) except -1:
    cdef Py_ssize_t i, count
    cdef bytes fmt
    cdef char kind
    memset(a, 0, sizeof(u64_array))
    if writable:
        message = "%s must be a writable C-contiguous buffer of 8-byte integers, not %s"
    else:
        message = "%s must be a buffer of integers, not %s"
    try:
        PyObject_GetBuffer(obj, &a.view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS
                           | (PyBUF_WRITABLE if writable else 0))
    except (BufferError, ValueError):
        # No C-contiguous (or writable) view of a buffer (numpy says ValueError).
        if writable:
            raise TypeError(message % (name, type(obj).__name__))
        raise TypeError("%s must be a C-contiguous buffer of integers, not %s"
                        % (name, type(obj).__name__))
    except TypeError:
        raise TypeError(message % (name, type(obj).__name__))
    a.has_view = True
    fmt = a.view.format if a.view.format != NULL else b"B"
    fmt = fmt.lstrip(b"@=<")
    kind = fmt[0] if len(fmt) == 1 else 0
    if kind == 0 or kind not in b"bBhHiIlLqQnN" or (writable and a.view.itemsize != 8):
        u64_array_release(a)
        raise TypeError(message % (name, type(obj).__name__))
    count = a.view.len // a.view.itemsize
    a.n = count
    if n >= 0:
        u64_array_len(a, name, n)
    if a.view.itemsize == 8:
        a.values = <uint64_t *>a.view.buf
        return count
    a.copy = PyMem_RawMalloc(max(count, 1) * sizeof(uint64_t))
    if a.copy == NULL:
        u64_array_release(a)
        raise MemoryError()
    a.values = <uint64_t *>a.copy
    for i in range(count):
        if kind == b'b':
            a.values[i] = <uint64_t>(<signed char *>a.view.buf)[i]
        elif kind == b'B':
            a.values[i] = (<unsigned char *>a.view.buf)[i]
        elif kind == b'h':
            a.values[i] = <uint64_t>(<short *>a.view.buf)[i]
        elif kind == b'H':
            a.values[i] = (<unsigned short *>a.view.buf)[i]
        elif kind == b'i' or kind == b'l':
            a.values[i] = <uint64_t>(<int *>a.view.buf)[i]
        else:
            a.values[i] = (<unsigned int *>a.view.buf)[i]
    return count


cdef int u64_array_unshare(u64_array *a, u64_array *out) except -1:
    """Give input ``a`` a private copy if its values share memory with the
    output ``out``, so that writing an output never changes an input not
    yet read (aliased or overlapping buffers)."""
    return u64_array_unshare_bytes(a, <char *>out.values, out.n * <Py_ssize_t>sizeof(uint64_t))


cdef int u64_array_unshare_bytes(u64_array *a, char *out, Py_ssize_t nbytes) except -1:
    """u64_array_unshare() against any output buffer of ``nbytes``."""
    cdef char *lo = <char *>a.values
    cdef char *hi = lo + a.n * <Py_ssize_t>sizeof(uint64_t)
    cdef void *copy
    if a.copy != NULL or a.n == 0 or nbytes == 0 or hi <= out or out + nbytes <= lo:
        return 0
    copy = PyMem_RawMalloc(a.n * sizeof(uint64_t))
    if copy == NULL:
        raise MemoryError()
    memcpy(copy, a.values, a.n * sizeof(uint64_t))
    a.copy = copy
    a.values = <uint64_t *>copy
    return 0


cdef int u64_array_len(u64_array *a, str name, Py_ssize_t n) except -1:
    if a.n != n:
        raise ValueError("%s must have as many items as entries (%d), not %d" % (name, n, a.n))
    return 0


cdef void u64_array_release(u64_array *a) noexcept:
    if a.has_view:
        PyBuffer_Release(&a.view)
        a.has_view = False
    PyMem_RawFree(a.copy)
    a.copy = NULL


cdef object status_array(Py_ssize_t n, signed char **data):
    cdef array.array out = array.clone(_STATUS_TEMPLATE, n, zero=True)
    data[0] = out.data.as_schars
    return out


# ---------------------------------------------------------------------------
# Arguments from Python.
# ---------------------------------------------------------------------------

cdef enum:
    ENTRY_OK = 0
    ENTRY_NEGATIVE = 1
    ENTRY_HUGE = 2


cdef inline int entry_arg(object x, uint64_t *val) except -1:
    """Convert a swap entry argument: type check only, value left for later."""
    cdef long long v
    cdef int overflow
    if type(x) is not int:
        if PyBool_Check(x) or not PyIndex_Check(x):
            raise TypeError("swap entry must be an int, not %s" % type(x).__name__)
        x = _index(x)
    v = PyLong_AsLongLongAndOverflow(x, &overflow)
    if overflow:
        return ENTRY_HUGE if overflow > 0 else ENTRY_NEGATIVE
    if v < 0:
        return ENTRY_NEGATIVE
    val[0] = <uint64_t>v
    return ENTRY_OK


cdef object int_arg(object x, str name):
    """An ``nr``-like argument as an exact int; TypeError for anything but
    an int (bool refused).

    An int subclass is converted as operator.index() converts it, without
    running any of its methods: every later check and conversion works on
    the plain value, so a subclass whose operators lie cannot pass a check
    with one value and be used with another.
    """
    if type(x) is int:
        return x
    if PyBool_Check(x) or not PyLong_Check(x):
        raise TypeError("%s must be an int, not %s" % (name, type(x).__name__))
    return PyNumber_Index(x)


cdef uint32_t nr_value(object nr) except 0:
    """Check the value of an ``nr`` already known to be an int."""
    if nr < 1:
        raise ValueError("nr must be at least 1, not %d" % nr)
    # Anything above a cluster fails the range check later with its message.
    return <uint32_t>min(nr, <uint64_t>1 << 31)


cdef uint64_t slot_arg(object slot) except? 0:
    slot = int_arg(slot, "slot")
    if slot < 0 or slot >= (1 << 64):
        raise ValueError("slot must be in [0, 2**64), not %d" % slot)
    return PyLong_AsUnsignedLongLong(slot)


cdef uint32_t nr_arg(object nr) except 0:
    return nr_value(int_arg(nr, "nr"))


cdef object shadow_type(object shadow):
    """A shadow argument as an exact int, or None (see int_arg)."""
    if shadow is None:
        return None
    if PyBool_Check(shadow) or not PyLong_Check(shadow):
        raise TypeError("shadow must be an int or None, not %s" % type(shadow).__name__)
    return int_arg(shadow, "shadow")


cdef uintptr_t shadow_value(object shadow) except? 0:
    """A checked shadow as stored in the union: value << 1 | 1; None is 0."""
    if shadow is None:
        return 0
    if shadow < 0 or shadow >= _SHADOW_LIMIT:
        raise ValueError("shadow must be in [0, 2**62), not %d" % shadow)
    return (<uintptr_t>PyLong_AsUnsignedLongLong(shadow) << 1) | 1


cdef inline bint cache_is_shadow(swp_desc *desc) noexcept nogil:
    return desc.cache.shadow & 1


cdef inline object steal(PyObject *obj):
    """Return a reference taken under a cluster lock, or None for NULL."""
    if obj == NULL:
        return None
    result = <object>obj
    Py_DECREF(result)
    return result


cdef void release_all(PyObject **objs, int n) noexcept:
    """Drop references collected under a cluster lock, after unlocking."""
    cdef int i
    for i in range(n):
        Py_XDECREF(objs[i])



# ---------------------------------------------------------------------------
# Checks of swap entries against a space, and helpers of the methods below.
# ---------------------------------------------------------------------------

cdef int raise_bad_entry(vswap_space *vs, object entry, str why) except -1:
    raise InvalidEntryError(bad_entry_message(
        _index(entry), vs.cluster_shift, vs.max_clusters, why))

cdef inline int check_entry(vswap_space *vs, object entry, int kind, uint64_t val) except -1:
    """Step 3 of the checks: 0, negative, or beyond the cluster map."""
    if kind == ENTRY_OK and val != 0 and (val >> vs.cluster_shift) <= vs.max_clusters:
        return 0
    if kind == ENTRY_NEGATIVE:
        return raise_bad_entry(vs, entry, "negative")
    if kind == ENTRY_OK and val == 0:
        return raise_bad_entry(vs, entry, "zero")
    return raise_bad_entry(vs, entry, "range")

cdef uint64_t entry_val(vswap_space *vs, object entry) except 0:
    """Convert and check a lone swap entry argument (steps 1 and 3)."""
    cdef uint64_t val = 0
    check_entry(vs, entry, entry_arg(entry, &val), val)
    return val

cdef inline swp_desc *desc_lock(vswap_space *vs, uint64_t val, vswap_cluster **cluster) except NULL:
    """The allocated descriptor of ``val``, its cluster locked, or raise."""
    cdef swp_desc *desc
    cluster[0] = NULL
    desc = vswap_iter(vs, cluster, val)
    if desc == NULL:
        raise_bad_entry(vs, val, "free")
    return desc

cdef swp_desc *range_lock(vswap_space *vs, uint64_t val, uint32_t nr, object nr_arg,
                          vswap_cluster **cluster) except NULL:
    """The first descriptor of an allocated range inside one cluster,
    with the cluster locked (steps 4 and 5), or raise."""
    cdef uint32_t index = val & (vs.cluster_size - 1)
    cdef vswap_cluster *c
    cdef int hole
    if nr > vs.cluster_size - index:
        raise ValueError("range [%#x, %#x) crosses a cluster boundary (cluster size %d)"
                         % (val, val + nr_arg, vs.cluster_size))
    c = vswap_cluster_lookup_lock(vs, val >> vs.cluster_shift)
    if c == NULL:
        raise_bad_entry(vs, val, "free")
    hole = bitmap_first_clear(c, index, nr)
    if hole >= 0:
        vswap_cluster_unlock(c)
        raise_bad_entry(vs, val - index + hole, "free")
    cluster[0] = c
    return &c.descriptors[index]

cdef swp_desc *range_args(vswap_space *vs, object entry, object nr,
                          vswap_cluster **cluster, uint32_t *nr_out) except NULL:
    """Checks 1 to 5 for an (entry, nr) range with no other arguments; the
    converted ``nr`` goes to ``nr_out``."""
    cdef uint64_t val = 0
    cdef int kind = entry_arg(entry, &val)
    nr = int_arg(nr, "nr")
    nr_out[0] = nr_value(nr)
    check_entry(vs, entry, kind, val)
    return range_lock(vs, val, nr_out[0], nr, cluster)

cdef int swap_cache_swap(vswap_space *vs, object entry, int kind, uint64_t val,
                         uint32_t n, object nr, object old, void *new) except -1:
    """Swap ``old`` for ``new`` (a folio, an encoded shadow, or NULL) in the
    swap cache of a range, provided every descriptor holds ``old``.

    Locks: the cluster; references are dropped after it is unlocked.
    """
    cdef vswap_cluster *c
    cdef swp_desc *desc
    cdef uint32_t i
    check_entry(vs, entry, kind, val)
    desc = range_lock(vs, val, n, nr, &c)
    for i in range(n):
        if desc[i].cache.swap_cache != <void *>old:
            vswap_cluster_unlock(c)
            raise SwapCacheError("swap entry %#x does not hold that folio in the swap cache"
                                 % (val + i))
    for i in range(n):
        desc[i].cache.swap_cache = new
        vswap_desc_cache_changed(&desc[i])
    vswap_cluster_unlock(c)
    for i in range(n):
        if new != NULL and not (<uintptr_t>new & 1):
            Py_XINCREF(<PyObject *>new)
        Py_DECREF(old)
    return 0

cdef void count_types(vswap_space *vs, vswap_cluster *c, uint64_t *types) noexcept nogil:
    """Add the allocated descriptors of locked cluster ``c`` to ``types``,
    per backing type."""
    cdef uint32_t i
    for i in range(vs.cluster_size):
        if vswap_desc_allocated(c, i):
            types[vswap_desc_type(&c.descriptors[i])] += 1


cdef dict backing_dict(dict d, uint64_t *types):
    """Add the descriptors per backing type to ``d``, by the names of v6's
    enum swap_type (and the model's "none"): backing_none, backing_zero,
    backing_zswap, backing_swapfile, backing_folio."""
    d["backing_none"] = types[VSWAP_NONE]
    d["backing_zero"] = types[VSWAP_ZERO]
    d["backing_zswap"] = types[VSWAP_ZSWAP]
    d["backing_swapfile"] = types[VSWAP_SWAPFILE]
    d["backing_folio"] = types[VSWAP_FOLIO]
    return d


cdef uint32_t next_id(vswap_space *vs, uint32_t start) noexcept nogil:
    """next_live_id() taking map_lock itself."""
    cdef uint32_t id
    pthread_spin_lock(&vs.map_lock)
    id = next_live_id(vs, start)
    pthread_spin_unlock(&vs.map_lock)
    return id

cdef list cluster_entries(vswap_space *vs, uint32_t id):
    """The allocated entries of cluster ``id``, read under its lock."""
    cdef uint64_t bitmap[VSWAP_BITMAP_WORDS]
    cdef uint64_t base = <uint64_t>id << vs.cluster_shift
    cdef uint32_t w
    cdef uint64_t bits
    cdef vswap_cluster *c = vswap_cluster_lookup_lock(vs, id)
    if c == NULL:
        return []
    memcpy(bitmap, c.bitmap, sizeof(bitmap))
    vswap_cluster_unlock(c)
    out = []
    for w in range(VSWAP_BITMAP_WORDS):
        bits = bitmap[w]
        while bits:
            out.append(base + (w << 6) + ctz64(bits))
            bits &= bits - 1
    return out


# ---------------------------------------------------------------------------
# Entries owned by a bound zswap pool.
# ---------------------------------------------------------------------------

cdef inline void zswap_peek(vswap_space *vs, uint64_t val, void *zswap_entry,
                            zswap_entry_info *info) noexcept nogil:
    """Describe a pool-owned zswap entry.  Caller holds the cluster lock."""
    if zswap_entry == <void *>VSWAP_ZSWAP_ZERO:
        memset(info, 0, sizeof(info[0]))
        info.swpentry = val
        info.zero = 1
    else:
        vs.zswap_peek(vs.zswap_owner, zswap_entry, info)


cdef inline object zswap_field(void *z):
    """A zswap_entry field that is no pool's, as Python: None, a batch
    handle's int, or the object (whose reference the caller took)."""
    if z == NULL:
        return None
    if vswap_zswap_is_handle(z):
        return <uint64_t>(<uintptr_t>z >> 2)
    return steal(<PyObject *>z)


cdef object zswap_view(zswap_entry_info *info):
    return ZswapEntryView(info.swpentry, info.length, bool(info.referenced),
                          bool(info.zero), bool(info.incompressible))


cdef uint64_t vswap_check_range(VSwap space, object entry, object nr,
                                uint32_t *nr_out) except 0:
    cdef vswap_cluster *c
    cdef swp_desc *desc = range_args(space.vs, entry, nr, &c, nr_out)
    cdef uint64_t val = (<uint64_t>c.id << space.vs.cluster_shift) | <uint32_t>(desc - c.descriptors)
    vswap_cluster_unlock(c)
    return val


cdef void release_backing_hooks(vswap_space *vs, void *owner, void *z, uint64_t val,
                                uint64_t slot) noexcept nogil:
    """The hooks' half of release_backing(): hand a pool entry (``z``, if it
    is the pool's) and a slot (``slot``, if not 0) that left the descriptor
    of ``val`` under its cluster lock, with the pool pinned there, to the
    pool; then unpin it.  No lock held."""
    if vswap_zswap_is_pool(z):
        vs.zswap_release(owner, z)
    if slot != 0:
        vs.slot_release(owner, val, slot)
    vswap_zswap_put(vs)


cdef void release_pool_entry(vswap_space *vs, void *owner, void *z) noexcept nogil:
    """Hand a pool entry taken out under the cluster lock, with the pool
    pinned there (vswap_zswap_get), to the pool; then unpin it.  No lock."""
    vs.zswap_release(owner, z)
    vswap_zswap_put(vs)


cdef void vswap_zswap_bind(vswap_space *vs, void *owner, zswap_release_fn release,
                           zswap_peek_fn peek, slot_release_fn slot_release,
                           slot_owned_fn slot_owned, slot_assign_fn slot_assign,
                           range_freed_fn range_freed) noexcept nogil:
    # No wait for the previous pool's pinned threads: they run its hooks
    # with the owner they captured, and the hooks are the same functions
    # for every pool.  (Waiting here, with the GIL held, could deadlock
    # with a pinned thread that needs the GIL to finish.)
    vs.zswap_release = release
    vs.zswap_peek = peek
    vs.slot_release = slot_release
    vs.slot_owned = slot_owned
    vs.slot_assign = slot_assign
    vs.range_freed = range_freed
    vswap_store_owner(&vs.zswap_owner, owner)


cdef void vswap_zswap_unbind(vswap_space *vs) noexcept nogil:
    """Close of a pool, the space's side (see the .pxd).

    The pool's objects leave each cluster under its lock, while the pool is
    still published: a thread that took one out before the walk reached its
    cluster pinned the pool there, and is waited for at the end.  Once
    zswap_owner is cleared, taking every cluster lock once more lets any
    holder that read the old value under it finish (the grace period of the
    kernel's RCU, done with the locks themselves).
    """
    cdef void *owned[VSWAP_CLUSTER_MAX]
    cdef uint64_t slots[VSWAP_CLUSTER_MAX]
    cdef uint64_t vals[VSWAP_CLUSTER_MAX]
    cdef void *owner = vs.zswap_owner
    cdef void *z
    cdef vswap_cluster *c
    cdef swp_desc *desc
    cdef uint64_t val
    cdef uint32_t id = 0, i, n, nslots, k
    if owner == NULL:
        return
    while True:
        id = next_id(vs, id + 1)
        if id == 0:
            break
        c = vswap_cluster_lookup_lock(vs, id)
        if c == NULL:
            continue
        n = nslots = 0
        for i in range(vs.cluster_size):
            if not vswap_desc_allocated(c, i):
                continue
            desc = &c.descriptors[i]
            z = vswap_desc_zswap(desc)
            if vswap_zswap_is_pool(z):
                owned[n] = z
                n += 1
                vswap_desc_set_zswap(c, desc, NULL)
            val = (<uint64_t>id << vs.cluster_shift) | i
            if vswap_desc_slot(desc) != 0 and vs.slot_owned(owner, val, vswap_desc_slot(desc)):
                slots[nslots] = vswap_desc_drop_slot(desc)
                vals[nslots] = val
                nslots += 1
        vswap_cluster_unlock(c)
        for k in range(n):
            vs.zswap_release(owner, owned[k])
        for k in range(nslots):
            vs.slot_release(owner, vals[k], slots[k])
    vswap_store_owner(&vs.zswap_owner, NULL)
    id = 0
    while True:
        id = next_id(vs, id + 1)
        if id == 0:
            break
        c = vswap_cluster_lookup_lock(vs, id)
        if c != NULL:
            vswap_cluster_unlock(c)
    vswap_wait_zero(&vs.zswap_users)


# ---------------------------------------------------------------------------
# The space.
# ---------------------------------------------------------------------------

cdef class VSwap:
    """A virtual swap space: clusters of swap descriptors behind a cluster map.

    ``VSwap(cluster_shift=9, max_clusters=VSWAP_MAX_CLUSTERS)``.  Swap entries
    are ints ``cluster_id << cluster_shift | index``; ids start at 1, so entry
    0 is never handed out.  Each descriptor has one backing (none, a
    physical slot, a zero page, a zswap entry or its swap-cache folio: v6's
    enum swap_type) and a swap-cache folio or shadow; objects are held by
    strong references.  See docs/semantics.md for the full contract.

    Thread safety: any method may be called from several threads at once.
    Objects stored here should not refer back to the space: the space does
    not take part in cyclic garbage collection.
    """

    def __cinit__(self, cluster_shift=VSWAP_MAX_SHIFT, max_clusters=VSWAP_MAX_CLUSTERS,
                  lookup_cache=False):
        cdef vswap_space *vs
        cdef uint32_t nwords
        cluster_shift = int_arg(cluster_shift, "cluster_shift")
        max_clusters = int_arg(max_clusters, "max_clusters")
        if not 1 <= cluster_shift <= VSWAP_MAX_SHIFT:
            raise ValueError("cluster_shift must be in [1, %d], not %d"
                             % (VSWAP_MAX_SHIFT, cluster_shift))
        if not 1 <= max_clusters <= _MAX_CLUSTERS_LIMIT:
            raise ValueError("max_clusters must be in [1, %d], not %d"
                             % (_MAX_CLUSTERS_LIMIT, max_clusters))
        vs = <vswap_space *>PyMem_RawCalloc(1, sizeof(vswap_space))
        if vs == NULL:
            raise MemoryError()
        vs.cluster_shift = cluster_shift
        vs.cluster_size = 1u << vs.cluster_shift
        vs.max_clusters = max_clusters
        vs.dir_size = (vs.max_clusters >> VSWAP_LEAF_SHIFT) + 1
        nwords = (vs.max_clusters >> 6) + 1
        vs.dir = <vswap_cluster ***>PyMem_RawCalloc(vs.dir_size, sizeof(vswap_cluster **))
        vs.id_bitmap = <uint64_t *>PyMem_RawCalloc(nwords, sizeof(uint64_t))
        if vs.dir == NULL or vs.id_bitmap == NULL:
            PyMem_RawFree(vs.dir)
            PyMem_RawFree(vs.id_bitmap)
            PyMem_RawFree(vs)
            raise MemoryError()
        # Id 0 and the ids past max_clusters in the last word are never free.
        vs.id_bitmap[0] = 1
        vs.id_bitmap[nwords - 1] |= ~word_mask(0, (vs.max_clusters & 63) + 1)
        vs.id_hint = 1
        vs.serial = vswap_new_serial()
        vs.lookup_cache = bool(lookup_cache)
        pthread_spin_init(&vs.map_lock, PTHREAD_PROCESS_PRIVATE)
        self.vs = vs

    def __dealloc__(self):
        cdef vswap_space *vs = self.vs
        cdef vswap_cluster *c
        cdef vswap_cluster *next_c
        cdef swp_desc *desc
        cdef uint32_t i
        cdef uint32_t leaf
        if vs == NULL:
            return
        self.vs = NULL
        # No other reference to the space exists, so nothing can race here.
        c = vs.all_clusters
        while c != NULL:
            next_c = c.all_next
            if c.live:
                for i in range(vs.cluster_size):
                    if not vswap_desc_allocated(c, i):
                        continue
                    desc = &c.descriptors[i]
                    if vswap_zswap_is_object(vswap_desc_zswap(desc)):
                        Py_XDECREF(<PyObject *>vswap_desc_zswap(desc))
                    if vswap_cache_is_folio(desc):
                        Py_XDECREF(<PyObject *>desc.cache.swap_cache)
            PyMem_RawFree(c.descriptors)
            pthread_spin_destroy(&c.lock)
            PyMem_RawFree(c)
            c = next_c
        for leaf in range(vs.dir_size):
            PyMem_RawFree(vs.dir[leaf])
        for leaf in range(VSWAP_CACHE_CHUNKS):
            PyMem_RawFree(vs.cache[leaf])
        PyMem_RawFree(vs.dir)
        PyMem_RawFree(vs.id_bitmap)
        pthread_spin_destroy(&vs.map_lock)
        PyMem_RawFree(vs)

    # -- properties ---------------------------------------------------------

    @property
    def cluster_shift(self):
        """log2 of the number of descriptors in a cluster."""
        return self.vs.cluster_shift

    @property
    def cluster_size(self):
        """Descriptors in a cluster."""
        return self.vs.cluster_size

    @property
    def max_clusters(self):
        """The highest cluster id the map hands out."""
        return self.vs.max_clusters

    @property
    def lookup_cache(self):
        """Whether each thread checks the cluster it last looked up before
        the cluster map (v6 patch 22).  False is the seed's own patch 11:
        every operation looks its cluster up in the map."""
        return bool(self.vs.lookup_cache)

    @property
    def nr_clusters(self):
        """Live clusters.  Locks: map_lock."""
        cdef uint32_t n
        pthread_spin_lock(&self.vs.map_lock)
        n = self.vs.nr_clusters
        pthread_spin_unlock(&self.vs.map_lock)
        return n

    # -- allocation ---------------------------------------------------------

    def alloc(self, nr=1, folio=None):
        """Allocate ``nr`` (a power of two) contiguous, aligned entries in one
        cluster, each with ``folio`` in its swap cache; return the first.

        Locks: the thread's cached cluster; failing that the map lock, then
        one cluster at a time.  Raises SwapFullError when a new cluster is
        needed and no id is left.
        """
        cdef uint64_t entry = 0
        cdef uint32_t n, i
        cdef int order = 0, result
        nr = int_arg(nr, "nr")
        if nr < 1:
            raise ValueError("nr must be at least 1, not %d" % nr)
        if nr > self.vs.cluster_size or nr & (nr - 1):
            raise ValueError("nr must be a power of two from 1 to %d, not %d"
                             % (self.vs.cluster_size, nr))
        n = nr
        while (1u << order) < n:
            order += 1
        if folio is not None:
            for i in range(n):
                Py_INCREF(folio)
        result = vswap_alloc(self.vs, order,
                             <void *>folio if folio is not None else NULL, &entry)
        if result == ALLOC_OK:
            return entry
        if folio is not None:
            for i in range(n):
                Py_DECREF(folio)
        if result == ALLOC_NO_ID:
            raise SwapFullError("no cluster id left: all %d clusters are in use"
                                % self.vs.max_clusters)
        raise MemoryError("cannot allocate a cluster")

    def free(self, entry, nr=1):
        """Free ``nr`` entries from ``entry`` (one cluster), dropping their
        zswap entries, folios and shadows; release the cluster if it empties.

        Locks: the cluster; then, if it emptied or had been full, the map
        lock and the cluster again.  Returns None.
        """
        cdef vswap_cluster *c
        cdef uint32_t n
        cdef swp_desc *desc = range_args(self.vs, entry, nr, &c, &n)
        cdef PyObject *objs[2 * VSWAP_CLUSTER_MAX]
        release_all(objs, free_locked(self.vs, c, desc, n, objs))

    # -- zswap entries ------------------------------------------------------

    def zswap_entry_store(self, entry, zentry):
        """Store ``zentry`` in the descriptor of ``entry``: its backing is
        now this zswap entry (type ZSWAP), and the old backing is released
        (zswap_entry_store() calls release_backing()): a slot goes back to
        the bound pool's swap file.

        Locks: the entry's cluster.  Returns the old zswap entry (for the
        caller to free) or None; a pool-owned old entry is freed by its pool
        and returned as a ZswapEntryView.
        """
        cdef vswap_cluster *c
        cdef swp_desc *desc
        cdef void *old
        cdef void *owner = NULL
        cdef zswap_entry_info info
        cdef uint64_t val = 0, old_slot
        cdef int kind = entry_arg(entry, &val)
        if zentry is None:
            raise TypeError("zentry must not be None; use zswap_entry_erase")
        check_entry(self.vs, entry, kind, val)
        desc = desc_lock(self.vs, val, &c)
        old = vswap_desc_zswap(desc)
        if vswap_zswap_is_pool(old):
            zswap_peek(self.vs, val, old, &info)
        Py_INCREF(zentry)
        old_slot = vswap_desc_set_zswap(c, desc, <void *>zentry)
        if vswap_zswap_is_pool(old):
            owner = vswap_zswap_get(self.vs)
        elif old_slot != 0:
            owner = vswap_zswap_tryget(self.vs)
        vswap_cluster_unlock(c)
        if owner == NULL:
            return zswap_field(old)
        release_backing_hooks(self.vs, owner, old, val, old_slot)
        if not vswap_zswap_is_pool(old):
            return zswap_field(old)
        return zswap_view(&info)

    def zswap_entry_load(self, entry):
        """Return the zswap entry of ``entry``, or None (a ZswapEntryView for
        an entry owned by a zswap pool).  Locks: its cluster."""
        cdef vswap_cluster *c
        cdef uint64_t val = entry_val(self.vs, entry)
        cdef swp_desc *desc = desc_lock(self.vs, val, &c)
        cdef void *z = vswap_desc_zswap(desc)
        cdef zswap_entry_info info
        if not vswap_zswap_is_pool(z):
            if vswap_zswap_is_object(z):
                Py_XINCREF(<PyObject *>z)
            vswap_cluster_unlock(c)
            return zswap_field(z)
        zswap_peek(self.vs, val, z, &info)
        vswap_cluster_unlock(c)
        return zswap_view(&info)

    def zswap_entry_erase(self, entry):
        """Clear the zswap entry (or zero page) of ``entry``: its ZSWAP or
        ZERO backing is released and the descriptor is left backed by its
        swap-cache folio if it has one (as vswap_store_folio() leaves it
        after an exclusive load), else by nothing.  Any other backing is
        left alone.

        Locks: its cluster.  Returns the old zswap entry or None; a
        pool-owned entry is freed by its pool and returned as a view.
        """
        cdef vswap_cluster *c
        cdef uint64_t val = entry_val(self.vs, entry)
        cdef swp_desc *desc = desc_lock(self.vs, val, &c)
        cdef void *old = vswap_desc_zswap(desc)
        cdef void *owner = NULL
        cdef zswap_entry_info info
        if old != NULL:
            vswap_desc_set_zswap(c, desc, NULL)     # a zswap backing: no slot
            if vswap_zswap_is_pool(old):
                zswap_peek(self.vs, val, old, &info)
                owner = vswap_zswap_get(self.vs)
        vswap_cluster_unlock(c)
        if owner == NULL:
            return zswap_field(old)
        release_pool_entry(self.vs, owner, old)
        return zswap_view(&info)

    def zswap_empty(self, entry=None):
        """True when no descriptor of the space holds a zswap entry.

        Exact, unlike the seed's ``xa_empty(&vswap_cluster_map)``: sums the
        per-cluster counts, read without their locks.  Locks: map_lock (so no
        cluster comes or goes during the walk).  ``entry`` is not used.
        """
        cdef vswap_space *vs = self.vs
        cdef vswap_cluster *c
        cdef uint32_t id = 0
        cdef bint empty = True
        pthread_spin_lock(&vs.map_lock)
        while empty:
            id = next_live_id(vs, id + 1)
            if id == 0:
                break
            c = vs.dir[id >> VSWAP_LEAF_SHIFT][id & (VSWAP_LEAF_SIZE - 1)]
            empty = load_relaxed_i32(&c.nr_zswap) == 0
        pthread_spin_unlock(&vs.map_lock)
        return empty

    # -- swap cache ---------------------------------------------------------

    def swap_cache_get_folio(self, entry):
        """The folio in the swap cache of ``entry``, or None.  Locks: its cluster."""
        cdef vswap_cluster *c
        cdef swp_desc *desc = desc_lock(self.vs, entry_val(self.vs, entry), &c)
        cdef PyObject *folio = NULL
        if vswap_cache_is_folio(desc):
            folio = <PyObject *>desc.cache.swap_cache
            Py_XINCREF(folio)
        vswap_cluster_unlock(c)
        return steal(folio)

    def swap_cache_add_folio(self, entry, folio, nr=1):
        """Put ``folio`` in the swap cache of ``nr`` entries from ``entry``.

        Every descriptor must be free of a folio (SwapCacheError otherwise);
        shadows are replaced.  Locks: the cluster.  Returns the shadow that
        ``entry`` held, or None.
        """
        cdef vswap_cluster *c
        cdef swp_desc *desc
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef uint32_t n, i
        cdef uintptr_t shadow
        if folio is None:
            raise TypeError("folio must not be None")
        n = nr_arg(nr)
        check_entry(self.vs, entry, kind, val)
        desc = range_lock(self.vs, val, n, nr, &c)
        for i in range(n):
            if vswap_cache_is_folio(&desc[i]):
                vswap_cluster_unlock(c)
                raise SwapCacheError("swap entry %#x already has a folio in the swap cache"
                                     % (val + i))
        shadow = desc[0].cache.shadow
        for i in range(n):
            Py_INCREF(folio)
            desc[i].cache.swap_cache = <void *>folio
            vswap_desc_cache_changed(&desc[i])
        vswap_cluster_unlock(c)
        if shadow & 1:
            return shadow >> 1
        return None

    def swap_cache_del_folio(self, entry, folio, nr=1, shadow=None):
        """Remove ``folio`` from the swap cache of ``nr`` entries from ``entry``,
        leaving ``shadow`` (an int) or nothing.

        Every descriptor must hold ``folio`` itself (SwapCacheError
        otherwise).  Locks: the cluster.  Returns None.
        """
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef uint32_t n
        if folio is None:
            raise TypeError("folio must not be None")
        nr = int_arg(nr, "nr")
        shadow = shadow_type(shadow)
        n = nr_value(nr)
        swap_cache_swap(self.vs, entry, kind, val, n, nr, folio, <void *>shadow_value(shadow))

    def swap_cache_replace_folio(self, entry, old, new, nr=1):
        """Replace folio ``old`` by ``new`` in the swap cache of ``nr`` entries
        from ``entry`` (__swap_cache_replace_folio).

        Every descriptor must hold ``old`` (SwapCacheError otherwise).
        Locks: the cluster.  Returns None.
        """
        cdef uint64_t val = 0
        cdef int kind = entry_arg(entry, &val)
        cdef uint32_t n
        if new is None:
            raise TypeError("new must not be None")
        n = nr_arg(nr)
        swap_cache_swap(self.vs, entry, kind, val, n, nr, old, <void *>new)

    def swap_cache_get_shadow(self, entry):
        """The shadow in the swap cache of ``entry``, or None.  Locks: its cluster."""
        cdef vswap_cluster *c
        cdef swp_desc *desc = desc_lock(self.vs, entry_val(self.vs, entry), &c)
        cdef uintptr_t shadow = desc.cache.shadow
        vswap_cluster_unlock(c)
        if shadow & 1:
            return shadow >> 1
        return None

    def swap_cache_clear_shadow(self, entry, nr=1):
        """Drop the shadows of ``nr`` entries from ``entry``; folios stay.

        Locks: the cluster.  Returns None.
        """
        cdef vswap_cluster *c
        cdef uint32_t n, i
        cdef swp_desc *desc = range_args(self.vs, entry, nr, &c, &n)
        for i in range(n):
            if cache_is_shadow(&desc[i]):
                desc[i].cache.swap_cache = NULL
        vswap_cluster_unlock(c)

    # -- physical slot ------------------------------------------------------

    def get_slot(self, entry):
        """The physical swap slot backing ``entry``: 0 unless its backing is
        a slot (swp_entry_to_swp_slot()).  Locks: its cluster."""
        cdef vswap_cluster *c
        cdef swp_desc *desc = desc_lock(self.vs, entry_val(self.vs, entry), &c)
        cdef uint64_t slot = vswap_desc_slot(desc)
        vswap_cluster_unlock(c)
        return slot

    def set_slot(self, entry, slot):
        """Make the physical swap slot ``slot`` the backing of ``entry``
        (type SWAPFILE, as vswap_alloc_swap_slot() sets it); 0 releases a
        slot backing, leaving the swap-cache folio (if any) as the backing.
        The old backing is released (release_backing()): a zswap entry is
        freed (a pool's by its pool, an object's reference dropped), an old
        slot goes back to the bound pool's swap file.

        With a zswap pool bound, a slot allocated in the pool's swap file
        becomes the page of ``entry`` there (the file's reverse map), which
        the pool reads and frees; any other slot number is kept but never
        read as a page.  Locks: its cluster.  Returns the old slot (0 when
        the backing was not a slot).
        """
        cdef vswap_cluster *c
        cdef swp_desc *desc
        cdef uint64_t val = 0, old, old_released
        cdef void *owner
        cdef void *pinned = NULL
        cdef void *z = NULL
        cdef int kind = entry_arg(entry, &val)
        cdef uint64_t new = slot_arg(slot)
        check_entry(self.vs, entry, kind, val)
        desc = desc_lock(self.vs, val, &c)
        old = vswap_desc_set_slot(c, desc, new, &z)
        owner = vswap_load_owner(&self.vs.zswap_owner)
        if owner != NULL and new != 0:
            self.vs.slot_assign(owner, val, new)
        if old == new:
            old_released = 0            # the same slot stays
        else:
            old_released = old
        if vswap_zswap_is_pool(z):
            pinned = vswap_zswap_get(self.vs)
        elif old_released != 0:
            pinned = vswap_zswap_tryget(self.vs)
        vswap_cluster_unlock(c)
        if pinned != NULL:
            release_backing_hooks(self.vs, pinned, z, val, old_released)
        if vswap_zswap_is_object(z):
            Py_XDECREF(<PyObject *>z)       # after the lock: __del__ may run
        return old

    # -- batch calls (statuses in vswapfast.batch) --------------------------

    def alloc_many(self, count, nr=1):
        """``count`` allocations of ``nr`` entries each, as ``alloc``; returns
        their first entries as array('Q').  All or nothing: on SwapFullError
        the entries allocated so far are freed.  Locks: as ``alloc``, per
        allocation, with the GIL released."""
        cdef vswap_space *vs = self.vs
        cdef Py_ssize_t n, i, done = 0
        cdef uint32_t size
        cdef int order = 0, result = ALLOC_OK
        cdef array.array out
        cdef uint64_t *entries
        cdef vswap_cluster *c
        cdef swp_desc *desc
        cdef PyObject *objs[2 * VSWAP_CLUSTER_MAX]
        count = int_arg(count, "count")
        nr = int_arg(nr, "nr")
        if count < 0:
            raise ValueError("count must be at least 0, not %d" % count)
        if nr < 1:
            raise ValueError("nr must be at least 1, not %d" % nr)
        if nr > vs.cluster_size or nr & (nr - 1):
            raise ValueError("nr must be a power of two from 1 to %d, not %d"
                             % (vs.cluster_size, nr))
        n = count
        size = nr
        while (1u << order) < size:
            order += 1
        out = array.clone(_ENTRY_TEMPLATE, n, zero=True)
        entries = <uint64_t *>out.data.as_voidptr
        with nogil:
            for i in range(n):
                result = vswap_alloc(vs, order, NULL, &entries[i])
                if result != ALLOC_OK:
                    break
                done += 1
            if result != ALLOC_OK:
                for i in range(done):
                    desc = range_lock_nogil(vs, entries[i], size, &c)
                    if desc != NULL:
                        free_locked(vs, c, desc, size, objs)
        if result == ALLOC_NO_ID:
            raise SwapFullError("no cluster id left: all %d clusters are in use"
                                % vs.max_clusters)
        if result != ALLOC_OK:
            raise MemoryError("cannot allocate a cluster")
        return out

    def free_many(self, entries, nr=1):
        """``free(entry, nr)`` for each entry: BATCH_OK or BATCH_INVALID.

        Locks: as ``free``, per entry, with the GIL released (taken back only
        to release Python objects the descriptors held)."""
        cdef vswap_space *vs = self.vs
        cdef u64_array a
        cdef signed char *status
        cdef Py_ssize_t i
        cdef uint32_t size
        cdef vswap_cluster *c
        cdef swp_desc *desc
        cdef PyObject *objs[2 * VSWAP_CLUSTER_MAX]
        cdef int nobjs
        u64_array_get(&a, entries, "entries", False, -1)
        try:
            size = nr_value(int_arg(nr, "nr"))
            out = status_array(a.n, &status)
            with nogil:
                for i in range(a.n):
                    desc = range_lock_nogil(vs, a.values[i], size, &c)
                    if desc == NULL:
                        status[i] = BATCH_INVALID
                        continue
                    nobjs = free_locked(vs, c, desc, size, objs)
                    if nobjs:
                        with gil:
                            release_all(objs, nobjs)
        finally:
            u64_array_release(&a)
        return out

    def zswap_entry_store_many(self, entries, handles, old=None):
        """Store integer handles (in [1, 2**62)) as the zswap entries of many
        entries; displaced handles go to ``old`` if given.  Returns statuses.

        Locks: each run of entries in one cluster takes its lock once; the
        GIL is released."""
        return batch_store(self.vs, entries, handles, old, zswap_store_many, self.vs)

    def zswap_entry_load_many(self, entries, out):
        """Load the handles of many entries into ``out`` (0 where there is
        none).  Returns statuses.  Locks: one per cluster run; no GIL."""
        return batch_load_erase(self.vs, entries, out, False, zswap_load_erase_many, self.vs)

    def zswap_entry_erase_many(self, entries, old=None):
        """Erase the zswap entries of many entries; erased handles go to
        ``old`` if given, other entries are released.  Returns statuses.
        Locks: one per cluster run; no GIL."""
        return batch_load_erase(self.vs, entries, old, True, zswap_load_erase_many, self.vs)

    # -- introspection ------------------------------------------------------

    def __len__(self):
        """Allocated entries.  Locks: map_lock; counts read without cluster locks."""
        cdef vswap_space *vs = self.vs
        cdef uint32_t id = 0
        cdef Py_ssize_t total = 0
        pthread_spin_lock(&vs.map_lock)
        while True:
            id = next_live_id(vs, id + 1)
            if id == 0:
                break
            total += load_relaxed_i32(&vs.dir[id >> VSWAP_LEAF_SHIFT][id & (VSWAP_LEAF_SIZE - 1)].count)
        pthread_spin_unlock(&vs.map_lock)
        return total

    def __contains__(self, entry):
        """True when ``entry`` is an int with an allocated descriptor."""
        cdef vswap_cluster *c = NULL
        cdef uint64_t val = 0
        if type(entry) is bool or not PyIndex_Check(entry):
            return False
        if entry_arg(entry, &val) != ENTRY_OK or val == 0:
            return False
        if vswap_iter(self.vs, &c, val) == NULL:
            return False
        vswap_cluster_unlock(c)
        return True

    def entries(self):
        """Iterate over allocated entries in ascending order.

        Each cluster is read under its lock; entries allocated or freed during
        the walk may or may not appear.
        """
        cdef uint32_t id = 0
        while True:
            id = next_id(self.vs, id + 1)
            if id == 0:
                return
            yield from cluster_entries(self.vs, id)

    def __iter__(self):
        return self.entries()

    def cluster_info(self, cluster_id):
        """A dict describing live cluster ``cluster_id``, with its descriptors
        per backing type (``backing_*``); KeyError if none.

        Locks: map_lock, then the cluster.
        """
        cdef vswap_cluster *c
        cdef uint32_t id
        cdef int order, count, refcnt, nr_zswap
        cdef uint64_t acq, cont
        cdef uint64_t types[VSWAP_NR_TYPES]
        if PyBool_Check(cluster_id) or not PyLong_Check(cluster_id):
            raise KeyError(cluster_id)
        if not 1 <= int_arg(cluster_id, "cluster_id") <= self.vs.max_clusters:
            raise KeyError(cluster_id)
        c = vswap_cluster_lookup_lock(self.vs, <uint32_t>int_arg(cluster_id, "cluster_id"))
        if c == NULL:
            raise KeyError(cluster_id)
        # refcnt is written under both locks: the cluster lock is enough.
        id, order, count, refcnt, nr_zswap = c.id, c.order, c.count, c.refcnt, c.nr_zswap
        acq, cont = c.lock_acquisitions, c.lock_contended
        memset(types, 0, sizeof(types))
        count_types(self.vs, c, types)
        vswap_cluster_unlock(c)
        return backing_dict({"id": id, "order": order, "count": count, "refcount": refcnt,
                             "zswap_entries": nr_zswap, "lock_acquisitions": acq,
                             "lock_contended": cont}, types)

    def stats(self):
        """Counters of the whole space, as a dict (see docs/semantics.md),
        with the descriptors per backing type (``backing_none``,
        ``backing_zero``, ``backing_zswap``, ``backing_swapfile``,
        ``backing_folio``).

        Locks: map_lock briefly per cluster to find it, then its lock.
        """
        cdef vswap_space *vs = self.vs
        cdef vswap_cluster *c
        cdef swp_desc *desc
        cdef uint32_t id = 0, i
        cdef uint64_t entries = 0, clusters = 0, zswap = 0, folios = 0
        cdef uint64_t shadows = 0, slots = 0, acq, cont
        cdef uint64_t types[VSWAP_NR_TYPES]
        memset(types, 0, sizeof(types))
        pthread_spin_lock(&vs.map_lock)
        acq = vs.released_lock_acquisitions
        cont = vs.released_lock_contended
        pthread_spin_unlock(&vs.map_lock)
        while True:
            id = next_id(self.vs, id + 1)
            if id == 0:
                break
            c = vswap_cluster_lookup_lock(vs, id)
            if c == NULL:
                continue
            clusters += 1
            entries += c.count
            zswap += c.nr_zswap
            for i in range(vs.cluster_size):
                if not vswap_desc_allocated(c, i):
                    continue
                desc = &c.descriptors[i]
                folios += vswap_cache_is_folio(desc)
                shadows += cache_is_shadow(desc)
                slots += vswap_desc_slot(desc) != 0
            count_types(vs, c, types)
            acq += c.lock_acquisitions
            cont += c.lock_contended
            vswap_cluster_unlock(c)
        return backing_dict({"entries": entries, "used": entries,
                "alloc_reject": load_relaxed_u64(&vs.alloc_reject),
                "clusters": clusters, "zswap_entries": zswap,
                "swap_cache_folios": folios, "shadows": shadows, "slots": slots,
                "lock_acquisitions": acq, "lock_contended": cont,
                "cluster_size": vs.cluster_size, "max_clusters": vs.max_clusters}, types)

    def __repr__(self):
        s = self.stats()
        return ("<VSwap core=compiled entries=%d clusters=%d zswap_entries=%d cluster_size=%d>"
                % (s["entries"], s["clusters"], s["zswap_entries"], s["cluster_size"]))
