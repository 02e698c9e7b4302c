# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""zswap on the swap descriptors: a compressed page pool (LZ4, zstd or LZO).

This is mm/zswap.c after the seed patch: a pool entry (``struct
zswap_entry``) lives in its page's swap descriptor, not in a global tree.
Pages are compressed (vswapfast._compress) with no lock and no GIL held;
the compressed bytes live in a size-class allocator modelled on zsmalloc
(geometry in vswapfast.zpool); entries sit on an LRU with second chance and
are written back to a swap file from its cold end.

Lock ordering:
    vswap cluster lock  ->  pool lru_lock  ->  size class lock
The only path that takes lru_lock without the cluster lock is the shrinker
taking an entry off the LRU; it then checks, under the cluster lock, that
the descriptor still holds that entry before acting on it.

Lifetime: an entry has a reference count.  Its descriptor holds one
reference (dropped by whoever erases it from the descriptor, after taking it
off the LRU); a reader that decompresses outside the cluster lock takes
another under that lock.  The last put frees the pool object and the entry.
An entry is only ever put on the LRU under the cluster lock of a descriptor
that holds it, so once erased it can never go back on.
"""

from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_C_CONTIGUOUS
cimport cython
from cpython.bool cimport PyBool_Check
from cpython.float cimport PyFloat_Check
from cpython.long cimport PyLong_Check
from cpython.number cimport PyIndex_Check
from cpython.mem cimport PyMem_RawCalloc, PyMem_RawMalloc, PyMem_RawFree
from cpython.ref cimport PyObject, Py_XDECREF
from libc.stdint cimport uint8_t, uint32_t, int32_t, int64_t, uint64_t, uintptr_t
from libc.string cimport memcpy, memset

import os

from vswapfast._compress cimport (
    vswap_compress, vswap_decompress, vswap_compressor_setup, VSWAP_COMP_PAGE_BOUND,
)
from vswapfast._swapfile cimport (
    SwapFile, swap_file, swap_file_alloc_slot, swap_file_free_slot, swap_file_has_free_slot,
    swap_file_slot_owned, swap_file_free_owned, swap_file_set_owner,
    swap_file_read, swap_file_write, page_buffer,
)
from vswapfast._vswap cimport (
    VSwap, vswap_space, vswap_cluster, swp_desc, zswap_entry_info, range_freed_fn,
    vswap_cluster_lookup_lock, vswap_cluster_unlock, vswap_iter, vswap_desc_allocated,
    vswap_zswap_is_object, vswap_zswap_is_pool, vswap_cache_is_folio,
    vswap_desc_zswap, vswap_desc_slot, vswap_desc_set_zswap, vswap_desc_set_slot,
    vswap_desc_drop_slot,
    vswap_check_range, vswap_zswap_bind, vswap_zswap_unbind, vswap_counter_add, int_arg,
    pthread_spinlock_t, pthread_spin_init, pthread_spin_destroy, pthread_spin_trylock,
    pthread_spin_lock, pthread_spin_unlock, PTHREAD_PROCESS_PRIVATE,
    VSWAP_ZSWAP_NATIVE, VSWAP_ZSWAP_ZERO, VSWAP_CLUSTER_MAX,
)
from vswapfast._zswap_index cimport (
    zswap_index, zswap_tree, zswap_index_new, zswap_index_free, zswap_index_tree,
    zswap_tree_key, zswap_tree_lock, zswap_tree_unlock, zswap_tree_slot, zswap_tree_set,
    zswap_index_drain, ZSWAP_INDEX_VSWAP,
)
from vswapfast._vswap cimport (
    vswap_entry_allocated_nolock, u64_array, u64_array_get, u64_array_release, status_array,
    u64_array_unshare_bytes,
    BATCH_OK, BATCH_EMPTY, BATCH_REJECTED, BATCH_INVALID, BATCH_CORRUPT,
)
from vswapfast._zswap_index import DESIGNS as _INDEX_DESIGNS
from vswapfast.batch import INDEX_DESIGNS, index_alias
from vswapfast.errors import (
    InvalidEntryError, NoPageError, ZswapDecompressError, bad_entry_message,
)
from vswapfast.compressors import compressor_repr
from vswapfast.zpool import (
    ZPOOL_CLASSES, ZPOOL_CLASS_INDEX, ZS_HANDLE_SIZE as _ZS_HANDLE_SIZE,
    ZS_MIN_ALLOC_SIZE as _ZS_MIN_ALLOC_SIZE, ZS_SIZE_CLASS_DELTA as _ZS_SIZE_CLASS_DELTA,
    ZS_SIZE_CLASSES as _ZS_SIZE_CLASSES,
)

cdef extern from "vswap_sync.h" nogil:
    int64_t load_i64 "vswap_load_relaxed"(int64_t *p)
    void store_i64 "vswap_store_relaxed"(int64_t *p, int64_t v)
    uint8_t load_u8 "vswap_load_relaxed"(uint8_t *p)
    void store_u8 "vswap_store_relaxed"(uint8_t *p, uint8_t v)
    int64_t atomic_add_i64 "vswap_atomic_add"(int64_t *p, int64_t v)
    int32_t ref_get "vswap_ref_get"(int32_t *p)
    int32_t ref_put "vswap_ref_put"(int32_t *p)
    int vswap_this_thread()
    uint64_t load_u64 "vswap_load_relaxed"(uint64_t *p)
    zswap_tree *load_tree "vswap_load_acquire"(zswap_tree **p)
    long long vswap_seq_add(long long *p, long long v)
    void vswap_wait_zero(long long *p)

cdef extern from "<pthread.h>" nogil:
    ctypedef unsigned long pthread_t
    ctypedef struct pthread_mutex_t:
        pass
    ctypedef struct pthread_cond_t:
        pass
    int pthread_mutex_init(pthread_mutex_t *m, const void *attr)
    int pthread_mutex_destroy(pthread_mutex_t *m)
    int pthread_mutex_lock(pthread_mutex_t *m)
    int pthread_mutex_unlock(pthread_mutex_t *m)
    int pthread_cond_init(pthread_cond_t *c, const void *attr)
    int pthread_cond_destroy(pthread_cond_t *c)
    int pthread_cond_wait(pthread_cond_t *c, pthread_mutex_t *m)
    int pthread_cond_signal(pthread_cond_t *c)
    int pthread_cond_broadcast(pthread_cond_t *c)
    int pthread_create(pthread_t *t, const void *attr,
                       void *(*start)(void *) noexcept nogil, void *arg)
    int pthread_join(pthread_t t, void **ret)

DEF PAGE = 4096
PAGE_SIZE = PAGE
# Room for zsmalloc's ZS_SIZE_CLASSES class indexes; merged classes use fewer.
DEF NR_CLASSES = 255
DEF NR_STAT_SLOTS = 64

# The geometry comes from vswapfast.zpool, the one place both cores read it.
cdef uint32_t ZS_MIN_ALLOC = _ZS_MIN_ALLOC_SIZE
cdef uint32_t CLASS_DELTA = _ZS_SIZE_CLASS_DELTA
cdef uint32_t HANDLE_SIZE = _ZS_HANDLE_SIZE
cdef int nr_classes = len(ZPOOL_CLASSES)
if (nr_classes > NR_CLASSES or _ZS_SIZE_CLASSES != NR_CLASSES
        or len(ZPOOL_CLASS_INDEX) != NR_CLASSES or max(ZPOOL_CLASSES)[0] != PAGE):
    raise ImportError("vswapfast.zpool does not match the compiled pool (%d class indexes)"
                      % NR_CLASSES)
# Kernel class index -> position of its (possibly merged) class.
cdef uint8_t class_of_index[NR_CLASSES]
for _i, _c in enumerate(ZPOOL_CLASS_INDEX):
    class_of_index[_i] = _c

# Counters, summed over per-thread slots (the kernel's are atomics or
# per-CPU); the first ones carry upstream's debugfs names.
cdef enum:
    STORED_PAGES
    STORED_INCOMPRESSIBLE_PAGES
    POOL_LIMIT_HIT
    WRITTEN_BACK_PAGES
    REJECT_RECLAIM_FAIL
    REJECT_ALLOC_FAIL
    REJECT_KMEMCACHE_FAIL
    REJECT_COMPRESS_FAIL
    REJECT_COMPRESS_POOR
    DECOMPRESS_FAIL
    ZERO_PAGES
    COMPRESSED_BYTES
    # Events with the names of their /proc/vmstat counters: pages stored as
    # compressed entries (ZSWPOUT) or as zero pages (SWPOUT_ZERO), pages
    # swapped in from an entry (ZSWPIN) or a zero page (SWPIN_ZERO), and
    # pages written back (ZSWPWB).
    ZSWPOUT
    ZSWPIN
    ZSWPWB
    SWPOUT_ZERO
    SWPIN_ZERO
    NR_COUNTERS

if NR_COUNTERS > 24:
    raise ImportError("zswap_counters has room for 24 counters, not %d" % NR_COUNTERS)

COUNTER_NAMES = (
    "stored_pages", "stored_incompressible_pages", "pool_limit_hit",
    "written_back_pages", "reject_reclaim_fail", "reject_alloc_fail",
    "reject_kmemcache_fail", "reject_compress_fail", "reject_compress_poor",
    "decompress_fail", "zero_pages", "compressed_bytes",
    "zswpout", "zswpin", "zswpwb", "swpout_zero", "swpin_zero",
)

cdef enum:
    STORE_OK
    STORE_REJECTED
    STORE_GONE          # an entry of the range was freed meanwhile
    LOAD_OK
    LOAD_NONE           # no pool entry
    LOAD_CORRUPT
    LOAD_GONE
    WB_OK
    WB_FULL             # the swap file has no slot
    WB_FAIL             # decompression or I/O failed; the entry stays
    WB_GONE             # the entry left its descriptor meanwhile


# ---------------------------------------------------------------------------
# Data structures
# ---------------------------------------------------------------------------

ctypedef struct zspage:
    zspage *prev                 # the class's partial list (class lock)
    zspage *next
    char *mem                    # pages * PAGE bytes
    uint32_t inuse               # class lock
    uint32_t free_head           # first free object; each free object holds the next
    uint32_t cls
    uint8_t on_partial

ctypedef struct size_class:
    pthread_spinlock_t lock
    uint32_t size                # object size
    uint32_t pages               # pages per zspage
    uint32_t objs                # objects per zspage
    zspage *partial              # zspages with a free object (lock)

ctypedef struct zswap_entry:
    uint64_t swpentry
    uint32_t length              # compressed length; PAGE when stored raw
    uint8_t referenced           # second-chance bit, read and written racily
    uint8_t incompressible
    uint8_t on_lru               # lru_lock
    uint8_t linked               # published and not yet dropped (lru_lock)
    int32_t refs
    zspage *zspage
    uint32_t obj
    zswap_entry *lru_prev        # lru_lock
    zswap_entry *lru_next

ctypedef struct zswap_counters:
    int64_t v[24]                # NR_COUNTERS, padded to three cache lines

ctypedef struct zswap_pool:
    zswap_counters stats[NR_STAT_SLOTS]
    vswap_space *vs
    zswap_index *ix              # where entries are kept; NULL: the descriptors
    swap_file *sf                # NULL: no writeback target
    pthread_spinlock_t lru_lock
    uint64_t lru_lock_acquisitions   # lru_lock
    uint64_t lru_lock_contended
    zswap_entry *lru_head        # hot end
    zswap_entry *lru_tail        # cold end
    int64_t lru_length
    int64_t pool_pages           # pages of all zspages (atomic)
    int64_t max_pool_bytes       # settings, read racily like the kernel's
    int64_t accept_bytes
    uint8_t reached_full
    uint8_t writeback
    uint8_t exclusive_loads
    # The shrink work (shrink_wq / zswap_shrink_work): a thread started on
    # first use; queue_shrink_work() sets pending, the thread runs
    # shrink_worker() once per queueing, as queue_work() would.
    pthread_mutex_t shrink_lock
    pthread_cond_t shrink_cond           # pending set, or stop (shrink_lock)
    pthread_cond_t shrink_idle           # a run ended (shrink_lock)
    pthread_t shrink_thread
    uint8_t shrink_started               # shrink_lock
    uint8_t shrink_pending               # shrink_lock
    uint8_t shrink_running               # shrink_lock
    uint8_t shrink_stop                  # written under shrink_lock, read racily
    uint8_t shrink_wait                  # a rejected store waits for the work it queued
    int64_t shrink_runs                  # shrink_lock
    long long calls              # Zswap method calls in flight; close() waits
    uint8_t compressor           # VSWAP_COMP_*, fixed for the pool's life
    size_class classes[NR_CLASSES]


cdef inline void count(zswap_pool *p, int counter, int64_t delta) noexcept nogil:
    atomic_add_i64(&p.stats[vswap_this_thread() & (NR_STAT_SLOTS - 1)].v[counter], delta)


cdef int64_t counter_sum(zswap_pool *p, int counter) noexcept nogil:
    cdef int64_t total = 0
    cdef int slot
    for slot in range(NR_STAT_SLOTS):
        total += load_i64(&p.stats[slot].v[counter])
    return total


cdef inline void *entry_tag(zswap_entry *e) noexcept nogil:
    return <void *>(<uintptr_t>e | VSWAP_ZSWAP_NATIVE)


cdef inline zswap_entry *entry_untag(void *z) noexcept nogil:
    return <zswap_entry *>(<uintptr_t>z & ~(<uintptr_t>VSWAP_ZSWAP_NATIVE))


cdef inline bint is_native(void *z) noexcept nogil:
    return (<uintptr_t>z & VSWAP_ZSWAP_NATIVE) != 0


# ---------------------------------------------------------------------------
# The size-class allocator (zsmalloc's role)
# ---------------------------------------------------------------------------

cdef inline char *zs_obj(zswap_pool *p, zspage *zp, uint32_t obj) noexcept nogil:
    return zp.mem + <size_t>obj * p.classes[zp.cls].size


cdef inline void partial_push(size_class *cls, zspage *zp) noexcept nogil:
    zp.prev = NULL
    zp.next = cls.partial
    if cls.partial != NULL:
        cls.partial.prev = zp
    cls.partial = zp
    zp.on_partial = 1


cdef inline void partial_unlink(size_class *cls, zspage *zp) noexcept nogil:
    if zp.prev != NULL:
        zp.prev.next = zp.next
    else:
        cls.partial = zp.next
    if zp.next != NULL:
        zp.next.prev = zp.prev
    zp.prev = zp.next = NULL
    zp.on_partial = 0


cdef zspage *zspage_new(zswap_pool *p, uint32_t ci) noexcept nogil:
    """A zspage of class ``ci`` with every object free.  No lock held."""
    cdef size_class *cls = &p.classes[ci]
    cdef zspage *zp = <zspage *>PyMem_RawCalloc(1, sizeof(zspage))
    cdef uint32_t i
    if zp == NULL:
        return NULL
    zp.mem = <char *>PyMem_RawMalloc(<size_t>cls.pages * PAGE)
    if zp.mem == NULL:
        PyMem_RawFree(zp)
        return NULL
    zp.cls = ci
    for i in range(cls.objs):
        (<uint32_t *>(zp.mem + <size_t>i * cls.size))[0] = i + 1
    atomic_add_i64(&p.pool_pages, cls.pages)
    return zp


cdef void zspage_free(zswap_pool *p, zspage *zp) noexcept nogil:
    atomic_add_i64(&p.pool_pages, -<int64_t>p.classes[zp.cls].pages)
    PyMem_RawFree(zp.mem)
    PyMem_RawFree(zp)


cdef inline uint32_t class_of_length(uint32_t length) noexcept nogil:
    """The class zs_malloc() takes for ``length`` bytes: the handle is added
    before the lookup, and get_size_class_index() clamps to the last (huge)
    class; merged indexes share their class.  No lock."""
    cdef uint32_t size = length + HANDLE_SIZE
    cdef uint32_t idx = 0
    if size > ZS_MIN_ALLOC:
        idx = (size - ZS_MIN_ALLOC + CLASS_DELTA - 1) // CLASS_DELTA
    if idx > NR_CLASSES - 1:
        idx = NR_CLASSES - 1
    return class_of_index[idx]


cdef int zs_malloc(zswap_pool *p, uint32_t length, zspage **zpp, uint32_t *objp) noexcept nogil:
    """Allocate an object for ``length`` bytes.  Locks: its class.  0 or -1."""
    cdef uint32_t ci = class_of_length(length)
    cdef size_class *cls = &p.classes[ci]
    cdef zspage *zp
    cdef zspage *fresh = NULL
    pthread_spin_lock(&cls.lock)
    if cls.partial == NULL:
        # Allocate with the lock dropped, then look again.
        pthread_spin_unlock(&cls.lock)
        fresh = zspage_new(p, ci)
        if fresh == NULL:
            return -1
        pthread_spin_lock(&cls.lock)
        partial_push(cls, fresh)
    zp = cls.partial
    objp[0] = zp.free_head
    zp.free_head = (<uint32_t *>zs_obj(p, zp, zp.free_head))[0]
    zp.inuse += 1
    if zp.inuse == cls.objs:
        partial_unlink(cls, zp)
    pthread_spin_unlock(&cls.lock)
    zpp[0] = zp
    return 0


cdef void zs_free(zswap_pool *p, zspage *zp, uint32_t obj) noexcept nogil:
    """Free an object; an emptied zspage goes back to the system.  Locks: its class."""
    cdef size_class *cls = &p.classes[zp.cls]
    cdef bint release = False
    pthread_spin_lock(&cls.lock)
    (<uint32_t *>zs_obj(p, zp, obj))[0] = zp.free_head
    zp.free_head = obj
    zp.inuse -= 1
    if zp.inuse == 0:
        if zp.on_partial:
            partial_unlink(cls, zp)
        release = True
    elif not zp.on_partial:
        partial_push(cls, zp)
    pthread_spin_unlock(&cls.lock)
    if release:
        zspage_free(p, zp)


# ---------------------------------------------------------------------------
# Entries and the LRU
# ---------------------------------------------------------------------------

cdef void entry_put(zswap_pool *p, zswap_entry *e) noexcept nogil:
    """Drop a reference; the last one frees the pool object and the entry."""
    if ref_put(&e.refs) != 0:
        return
    zs_free(p, e.zspage, e.obj)
    count(p, STORED_PAGES, -1)
    count(p, COMPRESSED_BYTES, -<int64_t>e.length)
    if e.incompressible:
        count(p, STORED_INCOMPRESSIBLE_PAGES, -1)
    PyMem_RawFree(e)


cdef inline void lru_lock(zswap_pool *p) noexcept nogil:
    """Take lru_lock, counting contention as the cluster locks do."""
    if pthread_spin_trylock(&p.lru_lock) != 0:
        pthread_spin_lock(&p.lru_lock)
        p.lru_lock_contended += 1
    p.lru_lock_acquisitions += 1


cdef inline void lru_unlock(zswap_pool *p) noexcept nogil:
    pthread_spin_unlock(&p.lru_lock)


# ---------------------------------------------------------------------------
# Where an entry's zswap entry lives: its descriptor, or a tree of the index
# ---------------------------------------------------------------------------

ctypedef struct zslot:
    void **slot                  # the tree designs' slot
    swp_desc *desc               # the descriptor design's descriptor
    vswap_cluster *cluster       # locked, for the descriptor design
    zswap_tree *tree             # locked, for the tree designs
    uint64_t key

cdef enum:
    ZSLOT_LOCKED = 1
    ZSLOT_NONE = 0               # a valid entry with no slot in its tree yet
    ZSLOT_INVALID = -1           # no allocated descriptor
    ZSLOT_NO_MEMORY = -2


cdef int zslot_lock(zswap_pool *p, uint64_t val, zslot *z, bint create) noexcept nogil:
    """Lock the home of ``val``'s zswap entry and find its slot.

    Locks: the cluster (descriptor design) or the entry's tree.  Returns
    ZSLOT_LOCKED with ``z.slot`` (or ``z.desc``) set, or another ZSLOT_*
    with nothing held.  Read and write it with zslot_get() and zslot_set().
    """
    cdef swp_desc *desc
    z.cluster = NULL
    z.tree = NULL
    if p.ix == NULL:
        desc = vswap_iter(p.vs, &z.cluster, val)
        if desc == NULL:
            return ZSLOT_INVALID
        z.desc = desc
        return ZSLOT_LOCKED
    if not vswap_entry_allocated_nolock(p.vs, val):
        return ZSLOT_INVALID
    z.tree = zswap_index_tree(p.ix, val, create)
    if z.tree == NULL:
        return ZSLOT_NO_MEMORY if create else ZSLOT_NONE
    z.key = zswap_tree_key(p.ix, val)
    zswap_tree_lock(z.tree)
    if create and not vswap_entry_allocated_nolock(p.vs, val):
        # Freed since the check above: a free tells the pool under its
        # cluster lock, so seen under the tree lock it cannot be undone.
        zswap_tree_unlock(z.tree)
        return ZSLOT_INVALID
    z.slot = zswap_tree_slot(z.tree, z.key, create)
    if z.slot == NULL:
        zswap_tree_unlock(z.tree)
        return ZSLOT_NO_MEMORY if create else ZSLOT_NONE
    return ZSLOT_LOCKED


cdef inline void *zslot_get(zslot *z) noexcept nogil:
    """The zswap value in a locked slot (the descriptor's: vswap_desc_zswap())."""
    if z.tree != NULL:
        return z.slot[0]
    return vswap_desc_zswap(z.desc)


cdef inline void zslot_set(zslot *z, void *value) noexcept nogil:
    """Replace the value in a locked slot, keeping its home's counts.  In a
    descriptor the value is the backing (vswap_desc_set_zswap()); a store
    releases the pool's slot first (take_stale_slot), so a slot number it
    displaces here is none of the pool's file."""
    if z.tree != NULL:
        zswap_tree_set(z.tree, z.key, z.slot, value)
        return
    vswap_desc_set_zswap(z.cluster, z.desc, value)


cdef inline void zslot_unlock(zslot *z) noexcept nogil:
    if z.tree != NULL:
        zswap_tree_unlock(z.tree)
    else:
        vswap_cluster_unlock(z.cluster)


cdef inline void lru_link(zswap_pool *p, zswap_entry *e, bint hot) noexcept nogil:
    """Put ``e`` at the hot (head) or cold (tail) end.  Caller holds lru_lock
    and the cluster lock of a descriptor that holds ``e``."""
    e.on_lru = 1
    p.lru_length += 1
    if hot:
        e.lru_prev = NULL
        e.lru_next = p.lru_head
        if p.lru_head != NULL:
            p.lru_head.lru_prev = e
        else:
            p.lru_tail = e
        p.lru_head = e
    else:
        e.lru_next = NULL
        e.lru_prev = p.lru_tail
        if p.lru_tail != NULL:
            p.lru_tail.lru_next = e
        else:
            p.lru_head = e
        p.lru_tail = e


cdef inline void lru_unlink(zswap_pool *p, zswap_entry *e) noexcept nogil:
    """Caller holds lru_lock."""
    if e.lru_prev != NULL:
        e.lru_prev.lru_next = e.lru_next
    else:
        p.lru_head = e.lru_next
    if e.lru_next != NULL:
        e.lru_next.lru_prev = e.lru_prev
    else:
        p.lru_tail = e.lru_prev
    e.lru_prev = e.lru_next = NULL
    e.on_lru = 0
    p.lru_length -= 1


cdef void zswap_drop(zswap_pool *p, void *z) noexcept nogil:
    """Free a pool entry (or ZERO) just erased from its descriptor.

    Locks: lru_lock, then the class lock via the last put; no vswap lock.
    """
    cdef zswap_entry *e
    if z == <void *>VSWAP_ZSWAP_ZERO:
        count(p, ZERO_PAGES, -1)
        return
    e = entry_untag(z)
    lru_lock(p)
    e.linked = 0                    # a store not yet done linking it leaves it off
    if e.on_lru:
        lru_unlink(p, e)
    lru_unlock(p)
    entry_put(p, e)


cdef void lru_add_published(zswap_pool *p, zswap_entry *e) noexcept nogil:
    """zswap_lru_add() after zswap_entry_store(), with no cluster lock held
    (patch 11 takes the LRU lock outside the cluster lock): put a newly
    published entry at the hot end unless it was dropped meanwhile, then
    drop the pin the store took before publishing it.  Locks: lru_lock."""
    lru_lock(p)
    if e.linked:
        lru_link(p, e, True)
    lru_unlock(p)
    entry_put(p, e)


# Hooks called by the VSwap core (see vswap_space in _vswap.pxd).

cdef void hook_release(void *owner, void *z) noexcept nogil:
    zswap_drop(<zswap_pool *>owner, z)


cdef void hook_peek(void *owner, void *z, zswap_entry_info *info) noexcept nogil:
    cdef zswap_entry *e = entry_untag(z)
    info.swpentry = e.swpentry
    info.length = e.length
    info.referenced = load_u8(&e.referenced)
    info.zero = 0
    info.incompressible = e.incompressible


cdef void hook_range_freed(void *owner, uint64_t val, uint32_t nr) noexcept nogil:
    """A tree-indexed pool drops the entries of freed swap entries, which
    its trees would otherwise keep."""
    cdef zswap_pool *p = <zswap_pool *>owner
    cdef zswap_tree *t
    cdef void **slot
    cdef void *old
    cdef uint32_t i
    for i in range(nr):
        t = zswap_index_tree(p.ix, val + i, False)
        if t == NULL:
            continue
        zswap_tree_lock(t)
        slot = zswap_tree_slot(t, zswap_tree_key(p.ix, val + i), False)
        old = zswap_tree_set(t, zswap_tree_key(p.ix, val + i), slot, NULL) if slot != NULL else NULL
        zswap_tree_unlock(t)
        if vswap_zswap_is_pool(old):
            zswap_drop(p, old)


cdef void drain_one(void *owner, void *z) noexcept nogil:
    if vswap_zswap_is_pool(z):
        zswap_drop(<zswap_pool *>owner, z)


cdef void hook_slot_release(void *owner, uint64_t val, uint64_t slot) noexcept nogil:
    """A descriptor let go of ``slot``: free it if it is this pool's page of
    ``val`` (the reverse map says so), and only then."""
    cdef zswap_pool *p = <zswap_pool *>owner
    if p.sf != NULL:
        swap_file_free_owned(p.sf, slot, val)


cdef void hook_slot_assign(void *owner, uint64_t val, uint64_t slot) noexcept nogil:
    """VSwap.set_slot() put ``slot`` in the descriptor of ``val``: if the slot
    is allocated in this pool's file, it now holds the page of ``val``."""
    cdef zswap_pool *p = <zswap_pool *>owner
    if p.sf != NULL:
        swap_file_set_owner(p.sf, slot, val)


cdef bint hook_slot_owned(void *owner, uint64_t val, uint64_t slot) noexcept nogil:
    cdef zswap_pool *p = <zswap_pool *>owner
    return p.sf != NULL and swap_file_slot_owned(p.sf, slot, val)


cdef inline uint64_t take_stale_slot(zswap_pool *p, swp_desc *desc, uint64_t val) noexcept nogil:
    """release_backing() of a store: a descriptor that gets a new zswap
    entry lets go of the slot the pool wrote its older page to, so that no
    read finds that page again.  Caller holds the cluster lock; frees the
    returned slot (0: none) with swap_file_free_owned() after unlocking."""
    cdef uint64_t slot = vswap_desc_slot(desc)
    if slot == 0 or p.sf == NULL or not swap_file_slot_owned(p.sf, slot, val):
        return 0
    return vswap_desc_drop_slot(desc)


# ---------------------------------------------------------------------------
# Compression
# ---------------------------------------------------------------------------

cdef inline bint page_is_zero(const char *page) noexcept nogil:
    cdef const uint64_t *words = <const uint64_t *>page
    cdef int i
    for i in range(PAGE // 8):
        if words[i]:
            return False
    return True


cdef int decompress_entry(zswap_pool *p, zswap_entry *e, char *out) noexcept nogil:
    """Decompress a pinned entry into ``out``; 0, or -1 when the data is corrupt."""
    cdef const char *obj = zs_obj(p, e.zspage, e.obj)
    if e.incompressible:
        memcpy(out, obj, PAGE)
        return 0
    return vswap_decompress(p.compressor, obj, <int>e.length, out)


cdef zswap_entry *compress_page(zswap_pool *p, uint64_t swpentry, const char *page,
                                char *buf, bint keep_raw, int *reject) noexcept nogil:
    """Compress a page into a new entry (refs 1, not yet stored).

    Returns NULL with ``*reject`` set to the counter to bump on refusal.
    """
    cdef int length = vswap_compress(p.compressor, page, buf)
    cdef const char *data = buf
    cdef bint raw = False
    cdef zswap_entry *e
    cdef zspage *zp
    cdef uint32_t obj
    if length <= 0 or length >= PAGE:
        # zswap_compress(): a page the compressor fails on or cannot
        # shrink below a page is stored as-is while writeback is enabled
        # (to keep the LRU order of writebacks), else rejected.  Every
        # kernel compressor reports an output that does not fit in a page
        # as -EINVAL, which counts reject_compress_fail (reject_compress_poor
        # is -ENOSPC only).
        if not keep_raw:
            reject[0] = REJECT_COMPRESS_FAIL
            return NULL
        data, length, raw = page, PAGE, True
    e = <zswap_entry *>PyMem_RawCalloc(1, sizeof(zswap_entry))
    if e == NULL:
        reject[0] = REJECT_KMEMCACHE_FAIL
        return NULL
    if zs_malloc(p, length, &zp, &obj) != 0:
        PyMem_RawFree(e)
        reject[0] = REJECT_ALLOC_FAIL
        return NULL
    memcpy(zs_obj(p, zp, obj), data, length)
    e.swpentry = swpentry
    e.length = length
    e.referenced = 1
    e.incompressible = raw
    e.refs = 1
    e.zspage = zp
    e.obj = obj
    count(p, STORED_PAGES, 1)
    count(p, COMPRESSED_BYTES, length)
    if raw:
        count(p, STORED_INCOMPRESSIBLE_PAGES, 1)
    return e


# ---------------------------------------------------------------------------
# Limits and writeback
# ---------------------------------------------------------------------------

cdef inline int64_t pool_total_size(zswap_pool *p) noexcept nogil:
    return load_i64(&p.pool_pages) * PAGE


cdef bint check_limits(zswap_pool *p, bint count_hit) noexcept nogil:
    """zswap_check_limits(): whether the pool is full, with hysteresis."""
    cdef int64_t cur = pool_total_size(p)
    if cur >= load_i64(&p.max_pool_bytes):
        if count_hit:
            count(p, POOL_LIMIT_HIT, 1)
        store_u8(&p.reached_full, 1)
    elif load_u8(&p.reached_full) and cur <= load_i64(&p.accept_bytes):
        store_u8(&p.reached_full, 0)
    return load_u8(&p.reached_full)


cdef inline bint writeback_enabled(zswap_pool *p) noexcept nogil:
    return p.sf != NULL and load_u8(&p.writeback)


cdef inline bint writeback_possible(zswap_pool *p) noexcept nogil:
    """zswap_writeback_possible(): with vswap, a page can only be written
    back while the swap device has a free slot (get_nr_swap_pages() > 0).
    Locks: the swap file's lock, to read its count."""
    return writeback_enabled(p) and swap_file_has_free_slot(p.sf)


cdef bint entry_still_stored(zswap_pool *p, zswap_entry *e) noexcept nogil:
    """``entry == zswap_entry_load(swpentry)`` of zswap_writeback_entry():
    whether the descriptor (or tree) of ``e`` still holds ``e``.
    Locks: the entry's home, dropped before returning."""
    cdef zslot z
    cdef bint same
    if zslot_lock(p, e.swpentry, &z, False) != ZSLOT_LOCKED:
        return False
    same = zslot_get(&z) == entry_tag(e)
    zslot_unlock(&z)
    return same


cdef int writeback_entry(zswap_pool *p, zswap_entry *e) noexcept nogil:
    """zswap_writeback_entry(): write a pinned entry to a new swap-file slot.

    In the kernel's order: check under the cluster lock that the descriptor
    still holds ``e`` (WB_GONE, the kernel's -ENOMEM, when it does not: the
    entry was invalidated or replaced, and nothing is done); allocate the
    slot (WB_FULL); decompress and write with no lock held (WB_FAIL, the
    slot freed and the entry left where it is); then, under the cluster
    lock again, switch the descriptor's backing from the entry to the slot
    if it still holds ``e`` (else WB_GONE, the slot freed).  On WB_OK the
    entry is freed (off the LRU, as zswap_entry_free() does) and ZSWPWB and
    written_back_pages are counted.

    Departure: the kernel first adds a swap-cache folio for the entry
    (swap_cache_alloc_folio), which a concurrent swap-in waits on; the
    model has no folio, so the second check under the cluster lock is what
    keeps a swap-in or a new store from being overwritten.

    Locks: the entry's home; the swap file's lock; the cluster lock, and
    for the tree designs the tree lock inside it; lru_lock to free.
    """
    cdef char page[PAGE]
    cdef uint64_t slot, old_slot = 0
    cdef vswap_cluster *c = NULL
    cdef swp_desc *desc
    cdef zswap_tree *t
    cdef void **tslot
    cdef void *oldz
    cdef bint done = False
    if not entry_still_stored(p, e):
        return WB_GONE
    slot = swap_file_alloc_slot(p.sf)
    if slot == 0:
        return WB_FULL
    if decompress_entry(p, e, page) != 0:
        count(p, DECOMPRESS_FAIL, 1)
        swap_file_free_slot(p.sf, slot)
        return WB_FAIL
    if swap_file_write(p.sf, slot, page) != 0:
        swap_file_free_slot(p.sf, slot)
        return WB_FAIL
    # The descriptor's slot and the entry change together: the cluster lock,
    # and for the tree designs the tree lock inside it.
    desc = vswap_iter(p.vs, &c, e.swpentry)
    if desc != NULL:
        if p.ix == NULL:
            if vswap_desc_zswap(desc) == entry_tag(e):
                done = True             # vswap_desc_set_slot() below erases it
        else:
            t = zswap_index_tree(p.ix, e.swpentry, False)
            # One backing: a descriptor holding a zswap value of the space's
            # own (VSwap.zswap_entry_store) is given no slot.
            if t != NULL and vswap_desc_zswap(desc) == NULL:
                zswap_tree_lock(t)
                tslot = zswap_tree_slot(t, zswap_tree_key(p.ix, e.swpentry), False)
                if tslot != NULL and tslot[0] == entry_tag(e):
                    zswap_tree_set(t, zswap_tree_key(p.ix, e.swpentry), tslot, NULL)
                    done = True
                zswap_tree_unlock(t)
        if done:
            # vswap_alloc_swap_slot(): the ZSWAP backing becomes SWAPFILE.
            old_slot = vswap_desc_set_slot(c, desc, slot, &oldz)
            swap_file_set_owner(p.sf, slot, e.swpentry)
        vswap_cluster_unlock(c)
    if not done:
        swap_file_free_slot(p.sf, slot)
        return WB_GONE
    count(p, WRITTEN_BACK_PAGES, 1)
    count(p, ZSWPWB, 1)
    zswap_drop(p, entry_tag(e))     # the descriptor's reference, off the LRU
    if old_slot:
        swap_file_free_owned(p.sf, old_slot, e.swpentry)
    return WB_OK


cdef int64_t lru_walk(zswap_pool *p, int64_t nr_to_walk, int64_t max_written,
                      int64_t *scanned, bint stop_when_full) noexcept nogil:
    """list_lru_walk_one() with shrink_memcg_cb(): visit up to
    ``nr_to_walk`` entries from the cold end, writing back until
    ``max_written`` were; returns how many were.

    Each visited entry is rotated to the hot end first (LRU_ROTATE, or
    list_move_tail() before the lock is dropped): a referenced one has the
    bit cleared and is left there (second chance); any other is written
    back, staying on the LRU until it is freed, so that a failure leaves it
    rotated as the kernel does.  A failure counts reject_reclaim_fail.  The
    walk restarts from the cold end after each writeback (LRU_RETRY,
    LRU_REMOVED_RETRY).  ``stop_when_full`` ends it at a full swap file.

    Locks: lru_lock to pick and rotate; dropped for the writeback, which
    takes the locks of writeback_entry().  The entry is pinned meanwhile
    (the kernel compares a stale pointer instead; user space must not).
    """
    cdef int64_t written = 0
    cdef zswap_entry *e
    cdef int result
    lru_lock(p)
    while nr_to_walk > 0 and written < max_written:
        e = p.lru_tail
        if e == NULL:
            break
        nr_to_walk -= 1
        scanned[0] += 1
        lru_unlink(p, e)
        lru_link(p, e, True)
        if load_u8(&e.referenced):
            store_u8(&e.referenced, 0)
            continue
        ref_get(&e.refs)
        lru_unlock(p)
        result = writeback_entry(p, e)
        entry_put(p, e)
        if result == WB_OK:
            written += 1
        else:
            count(p, REJECT_RECLAIM_FAIL, 1)
            if result == WB_FULL and stop_when_full:
                return written
        lru_lock(p)
    lru_unlock(p)
    return written


cdef int64_t pool_shrink(zswap_pool *p, int64_t nr) noexcept nogil:
    """Write back up to ``nr`` entries from the cold end; returns how many.

    A direct walk of the LRU as the kernel's shrinker scan does it
    (lru_walk()), long enough to give every entry its second chance and
    then write ``nr``; it ends at a full swap file.
    Locks: as lru_walk().
    """
    cdef int64_t budget, scanned = 0, cap = (<int64_t>1) << 62
    if not writeback_enabled(p) or nr == 0:
        return 0
    lru_lock(p)
    budget = p.lru_length
    lru_unlock(p)
    budget = budget + nr if nr < cap - budget else cap
    return lru_walk(p, budget, nr, &scanned, True)


cdef enum:
    # shrink_memcg() of 6.18 walks one entry per node (nr_to_walk = 1);
    # later trees walk up to SWAP_CLUSTER_MAX (32).
    SHRINK_MEMCG_WALK = 1
    MAX_RECLAIM_RETRIES = 16     # mm/internal.h
    SHRINK_DONE = 0      # at least one entry written back
    SHRINK_ENOENT = 1    # nothing to walk, or writeback disabled/impossible
    SHRINK_EAGAIN = 2    # entries walked, none written back


cdef int shrink_memcg(zswap_pool *p) noexcept nogil:
    """shrink_memcg() for the one memcg (and node) of the model: walk
    SHRINK_MEMCG_WALK entries of the LRU.  Returns SHRINK_DONE, SHRINK_EAGAIN or
    SHRINK_ENOENT, as the kernel's 0, -EAGAIN and -ENOENT.  Locks: as
    lru_walk()."""
    cdef int64_t scanned = 0, shrunk
    if not writeback_possible(p):
        return SHRINK_ENOENT
    shrunk = lru_walk(p, SHRINK_MEMCG_WALK, SHRINK_MEMCG_WALK, &scanned, False)
    if scanned == 0:
        return SHRINK_ENOENT
    return SHRINK_DONE if shrunk else SHRINK_EAGAIN


cdef void shrink_worker(zswap_pool *p) noexcept nogil:
    """shrink_worker(): write back until the pool is under the acceptance
    threshold, giving up after MAX_RECLAIM_RETRIES failures.

    The model has one memcg, the root, so the kernel's round robin over
    memcgs (mem_cgroup_iter()) is root, end of pass, root, ...: a pass
    that found no candidate (every shrink_memcg() -ENOENT) is a failure,
    and so is every -EAGAIN.  Also ends when the pool is closing (the
    kernel's swapoff flushes the work instead).  Locks: as shrink_memcg(),
    one entry's locks at a time; no pool-wide lock is held.
    """
    cdef int failures = 0, attempts = 0, ret
    cdef bint end_of_pass = False
    cdef int64_t thr
    if not writeback_possible(p):
        return
    thr = load_i64(&p.accept_bytes)
    while True:
        if end_of_pass:
            end_of_pass = False
            if attempts == 0:
                failures += 1
                if failures == MAX_RECLAIM_RETRIES:
                    break
            attempts = 0
        else:
            end_of_pass = True
            ret = shrink_memcg(p)
            if ret != SHRINK_ENOENT:
                attempts += 1
                if ret != SHRINK_DONE:
                    failures += 1
                    if failures == MAX_RECLAIM_RETRIES:
                        break
        if (pool_total_size(p) <= thr or not writeback_possible(p)
                or load_u8(&p.shrink_stop)):
            break


cdef void *shrink_thread_main(void *arg) noexcept nogil:
    """The shrink workqueue's thread: run shrink_worker() once per
    queueing until the pool stops it.  Locks: shrink_lock to take work."""
    cdef zswap_pool *p = <zswap_pool *>arg
    pthread_mutex_lock(&p.shrink_lock)
    while True:
        while not p.shrink_pending and not p.shrink_stop:
            pthread_cond_wait(&p.shrink_cond, &p.shrink_lock)
        if p.shrink_stop:
            break
        p.shrink_pending = 0
        p.shrink_running = 1
        pthread_mutex_unlock(&p.shrink_lock)
        shrink_worker(p)
        pthread_mutex_lock(&p.shrink_lock)
        p.shrink_running = 0
        p.shrink_runs += 1
        pthread_cond_broadcast(&p.shrink_idle)
    p.shrink_pending = 0
    pthread_cond_broadcast(&p.shrink_idle)
    pthread_mutex_unlock(&p.shrink_lock)
    return NULL


cdef void queue_shrink_work(zswap_pool *p) noexcept nogil:
    """queue_work(shrink_wq, &zswap_shrink_work): a no-op while the work is
    pending; queued again if it is running.  Starts the thread on first
    use.  Locks: shrink_lock."""
    pthread_mutex_lock(&p.shrink_lock)
    if not p.shrink_stop and not p.shrink_pending:
        p.shrink_pending = 1
        if not p.shrink_started:
            if pthread_create(&p.shrink_thread, NULL, shrink_thread_main, p) == 0:
                p.shrink_started = 1
            else:
                p.shrink_pending = 0     # no thread: as if the work failed at once
        pthread_cond_signal(&p.shrink_cond)
    pthread_mutex_unlock(&p.shrink_lock)


cdef void flush_shrink_work(zswap_pool *p) noexcept nogil:
    """flush_work(): wait until the shrink work is neither pending nor
    running.  Locks: shrink_lock (released while waiting)."""
    pthread_mutex_lock(&p.shrink_lock)
    while p.shrink_started and (p.shrink_pending or p.shrink_running):
        pthread_cond_wait(&p.shrink_idle, &p.shrink_lock)
    pthread_mutex_unlock(&p.shrink_lock)


cdef void stop_shrink_worker(zswap_pool *p) noexcept nogil:
    """Stop the shrink thread and join it (the pool is closing: no call is
    in flight to queue it again).  Locks: shrink_lock."""
    cdef bint started
    pthread_mutex_lock(&p.shrink_lock)
    store_u8(&p.shrink_stop, 1)
    started = p.shrink_started
    pthread_cond_broadcast(&p.shrink_cond)
    pthread_mutex_unlock(&p.shrink_lock)
    if started:
        pthread_join(p.shrink_thread, NULL)


# ---------------------------------------------------------------------------
# Store, load, invalidate
# ---------------------------------------------------------------------------

cdef void free_new(zswap_pool *p, void **news, uint32_t n) noexcept nogil:
    cdef uint32_t i
    for i in range(n):
        if is_native(news[i]):
            entry_put(p, entry_untag(news[i]))


cdef int erase_range(zswap_pool *p, uint64_t val, uint32_t nr, void **olds) noexcept nogil:
    """Erase the zswap entries of a range into ``olds``; returns how many,
    or -1 if a descriptor of the range is not allocated (nothing erased).
    Locks: the cluster, or each entry's tree in turn."""
    cdef vswap_space *vs = p.vs
    cdef uint32_t index = val & (vs.cluster_size - 1), i
    cdef vswap_cluster *c
    cdef int n = 0
    cdef swp_desc *desc
    cdef zslot z
    if p.ix != NULL:
        for i in range(nr):
            if not vswap_entry_allocated_nolock(vs, val + i):
                return -1
        for i in range(nr):
            if zslot_lock(p, val + i, &z, False) != ZSLOT_LOCKED:
                continue
            if zslot_get(&z) != NULL:
                olds[n] = zslot_get(&z)
                n += 1
                zslot_set(&z, NULL)
            zslot_unlock(&z)
        return n
    c = vswap_cluster_lookup_lock(vs, val >> vs.cluster_shift)
    if c == NULL:
        return -1
    for i in range(nr):
        if not vswap_desc_allocated(c, index + i):
            vswap_cluster_unlock(c)
            return -1
    for i in range(nr):
        desc = &c.descriptors[index + i]
        if vswap_desc_zswap(desc) != NULL:
            olds[n] = vswap_desc_zswap(desc)
            n += 1
            vswap_desc_set_zswap(c, desc, NULL)
    vswap_cluster_unlock(c)
    return n


cdef int drop_pool_entries(zswap_pool *p, void **olds, int n) noexcept nogil:
    """Free the pool-owned ones of erased entries, packing the Python objects
    to the front of ``olds``; returns how many objects remain there."""
    cdef int i, nobj = 0
    for i in range(n):
        if vswap_zswap_is_object(olds[i]):
            olds[nobj] = olds[i]
            nobj += 1
        elif vswap_zswap_is_pool(olds[i]):
            zswap_drop(p, olds[i])
    return nobj


cdef void release_stale_slots(zswap_pool *p, uint64_t val, uint32_t nr) noexcept nogil:
    """A rejected store supersedes the range's written-back pages too: let
    go of the pool's slots of the range (take_stale_slot).  Locks: the
    cluster; the file's lock after it is dropped."""
    cdef uint64_t stale[VSWAP_CLUSTER_MAX]
    cdef vswap_cluster *c = NULL
    cdef swp_desc *desc
    cdef uint32_t i
    if p.sf == NULL:
        return
    for i in range(nr):
        stale[i] = 0
        desc = vswap_iter(p.vs, &c, val + i)
        if desc != NULL:
            stale[i] = take_stale_slot(p, desc, val + i)
    if c != NULL:
        vswap_cluster_unlock(c)
    for i in range(nr):
        if stale[i]:
            swap_file_free_owned(p.sf, stale[i], val + i)


cdef int reject_store(zswap_pool *p, uint64_t val, uint32_t nr, void **olds,
                      int *nolds) noexcept nogil:
    """The end of a rejected zswap_store(): as upstream, the range's stale
    entries are dropped, so that nothing older can be taken for the page
    that was not stored (and so are its written-back pages here)."""
    cdef int n = erase_range(p, val, nr, olds)
    if n < 0:
        return STORE_GONE
    nolds[0] = drop_pool_entries(p, olds, n)
    release_stale_slots(p, val, nr)
    return STORE_REJECTED


cdef int store_rejected(zswap_pool *p, uint64_t val, uint32_t nr, void **olds,
                        int *nolds) noexcept nogil:
    """The failure exit of zswap_store(): the stale entries of the range
    are dropped (reject_store()), and if the pool is full the shrink work
    is queued, as ``if (!ret && zswap_pool_reached_full) queue_work()``.
    The storing thread writes nothing back; with ``shrink_wait`` it waits
    for the work it queued (reproducible runs, not the kernel)."""
    cdef int result = reject_store(p, val, nr, olds, nolds)
    if load_u8(&p.reached_full) and writeback_enabled(p):
        queue_shrink_work(p)
        if load_u8(&p.shrink_wait):
            flush_shrink_work(p)
    return result


cdef inline bint folio_is_zero_filled(const char *src, uint32_t nr) noexcept nogil:
    """is_folio_zero_filled(): every page of the folio is zero."""
    cdef uint32_t i
    for i in range(nr):
        if not page_is_zero(src + <size_t>i * PAGE):
            return False
    return True


cdef int pool_store(zswap_pool *p, uint64_t val, uint32_t nr, const char *src,
                    void **olds, int *nolds) noexcept nogil:
    """swap_writeout() of a folio of ``nr`` pages at ``nr`` entries (one
    cluster), then zswap_store().

    A zero-filled folio takes the ZERO backing (v6's VSWAP_ZERO, upstream's
    zeromap) before zswap is asked: no pool memory, no limit check, never
    rejected, counted in SWPOUT_ZERO.  Otherwise zswap_store(): the limit
    is checked once (zswap_check_limits()), then every page is compressed
    with no lock held (a zero page of a mixed folio too, as
    zswap_store_page() does) and each entry is installed under its home's
    lock, then put on the LRU with that lock dropped (zswap_lru_add()).  Displaced Python objects are
    left in ``olds`` for the caller to release with the GIL.
    """
    cdef char buf[VSWAP_COMP_PAGE_BOUND]
    cdef void *news[VSWAP_CLUSTER_MAX]
    cdef uint64_t stale[VSWAP_CLUSTER_MAX]
    cdef vswap_space *vs = p.vs
    cdef uint32_t index = val & (vs.cluster_size - 1), i, made = 0
    cdef zswap_entry *e
    cdef zslot z
    cdef vswap_cluster *c
    cdef swp_desc *desc
    cdef int reject = -1, n, result
    cdef bint gone = False
    nolds[0] = 0
    if folio_is_zero_filled(src, nr):
        for i in range(nr):
            news[i] = <void *>VSWAP_ZSWAP_ZERO
    else:
        if check_limits(p, True):
            return store_rejected(p, val, nr, olds, nolds)
        for i in range(nr):
            e = compress_page(p, val + i, src + <size_t>i * PAGE, buf,
                              load_u8(&p.writeback), &reject)
            if e == NULL:
                count(p, reject, 1)
                free_new(p, news, made)
                return store_rejected(p, val, nr, olds, nolds)
            news[i] = entry_tag(e)
            made += 1
    # Each entry goes in under its home's lock, and onto the LRU after that
    # lock is dropped (patch 11: the LRU lock is never taken inside the
    # cluster lock); the descriptor lets go of an older written-back page
    # under its cluster lock, taken before a tree's (the writeback order).
    for i in range(nr):
        stale[i] = 0
        c = NULL
        desc = NULL
        if p.ix != NULL:
            desc = vswap_iter(vs, &c, val + i)
        if p.ix == NULL or desc != NULL:
            result = zslot_lock(p, val + i, &z, True)
        else:
            result = ZSLOT_INVALID
        if result != ZSLOT_LOCKED:
            if c != NULL:
                vswap_cluster_unlock(c)
            # Freed meanwhile (or no tree memory): this page is dropped.
            free_new(p, &news[i], 1)
            news[i] = NULL
            gone = True
            continue
        if p.ix == NULL:
            desc = &z.cluster.descriptors[(val + i) & (vs.cluster_size - 1)]
        stale[i] = take_stale_slot(p, desc, val + i)
        if zslot_get(&z) != NULL:
            olds[nolds[0]] = zslot_get(&z)
            nolds[0] += 1
        if is_native(news[i]):
            # Pinned and marked before it is visible: whoever drops it
            # before lru_add_published() links it clears ``linked``.
            e = entry_untag(news[i])
            ref_get(&e.refs)
            e.linked = 1
        zslot_set(&z, news[i])
        zslot_unlock(&z)
        if c != NULL:
            vswap_cluster_unlock(c)
        if is_native(news[i]):
            lru_add_published(p, entry_untag(news[i]))
    for i in range(nr):
        if news[i] == <void *>VSWAP_ZSWAP_ZERO:
            count(p, ZERO_PAGES, 1)
            count(p, SWPOUT_ZERO, 1)
        elif news[i] != NULL:
            count(p, ZSWPOUT, 1)
        if stale[i]:
            swap_file_free_owned(p.sf, stale[i], val + i)
    nolds[0] = drop_pool_entries(p, olds, nolds[0])
    return STORE_GONE if gone else STORE_OK


cdef int pool_load(zswap_pool *p, uint64_t val, char *out, bint exclusive,
                   bint swapin) noexcept nogil:
    """zswap_load(): decompress the page of ``val`` into ``out``.  A
    ``swapin`` (not a read that leaves the page where it is) counts ZSWPIN,
    or SWPIN_ZERO for a zero page, as swap_read_folio() does.

    Locks: the entry's home, to find and pin the entry (and, when
    exclusive, to erase it afterwards if it is still there); none while
    decompressing.
    """
    cdef zslot z
    cdef void *found
    cdef zswap_entry *e
    cdef bint erased = False
    cdef int result = zslot_lock(p, val, &z, False)
    if result == ZSLOT_INVALID:
        return LOAD_GONE
    if result != ZSLOT_LOCKED:
        return LOAD_NONE
    found = zslot_get(&z)
    if not vswap_zswap_is_pool(found):
        zslot_unlock(&z)
        return LOAD_NONE
    if found == <void *>VSWAP_ZSWAP_ZERO:
        if exclusive:
            zslot_set(&z, NULL)
        zslot_unlock(&z)
        memset(out, 0, PAGE)
        if exclusive:
            zswap_drop(p, found)
        if swapin:
            count(p, SWPIN_ZERO, 1)
        return LOAD_OK
    e = entry_untag(found)
    ref_get(&e.refs)
    zslot_unlock(&z)
    if decompress_entry(p, e, out) != 0:
        count(p, DECOMPRESS_FAIL, 1)
        entry_put(p, e)
        return LOAD_CORRUPT
    if exclusive:
        if zslot_lock(p, val, &z, False) == ZSLOT_LOCKED:
            if zslot_get(&z) == found:
                zslot_set(&z, NULL)
                erased = True
            zslot_unlock(&z)
        if erased:
            zswap_drop(p, found)
    else:
        store_u8(&e.referenced, 1)
    entry_put(p, e)
    if swapin:
        count(p, ZSWPIN, 1)
    return LOAD_OK


cdef enum:
    READ_NO_SLOT = -1
    READ_GONE = -2


cdef int read_slot(zswap_pool *p, uint64_t val, char *out) noexcept nogil:
    """Read the page in the swap-file slot of ``val``: 0, an errno, READ_NO_SLOT
    or READ_GONE.

    Locks: the cluster, to read the slot, and again after the read to check
    that the descriptor still names that slot; a slot that changed meanwhile
    (written back anew, or freed and given to another page) is read again.
    The file is never read under a spinlock.
    """
    cdef vswap_cluster *c
    cdef swp_desc *desc
    cdef uint64_t slot, again
    cdef int err
    while True:
        c = NULL
        desc = vswap_iter(p.vs, &c, val)
        if desc == NULL:
            return READ_GONE
        slot = vswap_desc_slot(desc)
        vswap_cluster_unlock(c)
        if slot == 0 or p.sf == NULL or not swap_file_slot_owned(p.sf, slot, val):
            return READ_NO_SLOT
        err = swap_file_read(p.sf, slot, out)
        if err:
            return err
        c = NULL
        desc = vswap_iter(p.vs, &c, val)
        if desc == NULL:
            return READ_GONE
        again = vswap_desc_slot(desc)
        vswap_cluster_unlock(c)
        if again == slot:
            return 0


cdef void release_objects(void **objs, int n) noexcept:
    """Drop Python objects displaced from descriptors (GIL held, no lock)."""
    cdef int i
    for i in range(n):
        Py_XDECREF(<PyObject *>objs[i])


# ---------------------------------------------------------------------------
# The pool
# ---------------------------------------------------------------------------

def qualified_type(obj):
    return "%s.%s" % (type(obj).__module__, type(obj).__qualname__)


cdef object exact_int(object x, str name):
    """An int setting as an exact int (see _vswap.int_arg)."""
    return int_arg(x, name)


cdef double number_arg(object x, str name) except? -1.0:
    """An int or float setting as a C double: TypeError for anything else
    (bool refused).  Converted once, before any check, so that a subclass
    cannot pass a check with one value and be used with another."""
    if PyBool_Check(x) or not (PyLong_Check(x) or PyFloat_Check(x)):
        raise TypeError("%s must be a number, not %s" % (name, type(x).__name__))
    return float(x)


cdef int check_at_least_0(object value, str name) except -1:
    if value < 0:
        raise ValueError("%s must be at least 0, not %d" % (name, value))
    return 0


def _physical_memory():
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


cdef void index_lock_totals(zswap_index *ix, uint64_t *acq, uint64_t *cont) noexcept nogil:
    """Acquisitions and contention of the tree locks of an index."""
    cdef uint64_t n
    cdef zswap_tree *t
    for n in range(ix.nr_trees):
        t = load_tree(&ix.trees[n])
        if t != NULL:
            acq[0] += load_u64(&t.lock_acquisitions)
            cont[0] += load_u64(&t.lock_contended)


cdef enum:
    FLAG_WRITEBACK
    FLAG_EXCLUSIVE_LOADS
    FLAG_SHRINK_WAIT


cdef inline uint8_t *pool_flag(zswap_pool *p, int which) noexcept nogil:
    """The pool's boolean setting ``which`` (FLAG_*), read and written racily
    like the kernel's module parameters."""
    if which == FLAG_WRITEBACK:
        return &p.writeback
    if which == FLAG_EXCLUSIVE_LOADS:
        return &p.exclusive_loads
    return &p.shrink_wait


cdef inline void pool_exit(zswap_pool *p) noexcept nogil:
    """End a call that Zswap._enter() counted."""
    vswap_seq_add(&p.calls, -1)


cdef void pool_free(zswap_pool *p) noexcept nogil:
    cdef int ci
    pthread_cond_destroy(&p.shrink_idle)
    pthread_cond_destroy(&p.shrink_cond)
    pthread_mutex_destroy(&p.shrink_lock)
    for ci in range(nr_classes):
        pthread_spin_destroy(&p.classes[ci].lock)
    pthread_spin_destroy(&p.lru_lock)
    PyMem_RawFree(p)


@cython.no_gc_clear
cdef class Zswap:
    """A compressed page pool whose entries live in a VSwap's descriptors.

    ``Zswap(space, swapfile=None, *, max_pool_bytes=None, max_pool_percent=20,
    memory_bytes=None, accept_threshold_percent=90, writeback=True,
    exclusive_loads=True, index="vswap", compressor="lz4",
    wait_for_shrink_worker=False)``; ``compressor`` is ``"lz4"``, ``"zstd"``
    or ``"lzo"`` (vswapfast.compressors).  A store refused because the pool
    is full queues the background shrink worker (shrink_worker()), which
    writes back from the cold end of the LRU until the pool is under the
    acceptance threshold; ``wait_for_shrink_worker`` makes that store wait
    for it, so that runs are reproducible (the kernel does not wait).
    See docs/semantics.md ("zswap pool").
    Thread-safe: store, load, read, invalidate and shrink may run on several
    threads at once, with compression and I/O outside the GIL; ``close()``
    waits for the calls in flight.

    Every method converts its arguments (which may run Python code, the
    pool's own ``close()`` included) before it takes the pool with
    ``_enter()``, and runs no Python code until ``pool_exit()``.  The pool
    is torn down by ``close()`` or deallocation alone, never by the garbage
    collector's clearing of ``space`` (``no_gc_clear``), so the space it
    walks is alive.
    """

    cdef zswap_pool *p
    cdef readonly VSwap space
    cdef readonly SwapFile swapfile
    cdef readonly str index
    cdef readonly str compressor
    cdef double _accept_percent

    def __cinit__(self, space, swapfile=None, *, max_pool_bytes=None,
                  max_pool_percent=20.0, memory_bytes=None,
                  accept_threshold_percent=90.0, writeback=True, exclusive_loads=True,
                  index="vswap", compressor="lz4", wait_for_shrink_worker=False):
        cdef zswap_pool *p
        cdef size_class *cls
        cdef int ci, comp
        cdef double max_percent, accept_percent
        cdef bint wb, exclusive, wait_shrink
        # Types first, then values, then state, as everywhere else.
        if not isinstance(space, VSwap):
            raise TypeError("space must be a VSwap of the compiled core, not %s"
                            % qualified_type(space))
        if swapfile is not None and not isinstance(swapfile, SwapFile):
            raise TypeError("swapfile must be a SwapFile of the compiled core or None, not %s"
                            % qualified_type(swapfile))
        if max_pool_bytes is not None:
            max_pool_bytes = exact_int(max_pool_bytes, "max_pool_bytes")
        max_percent = number_arg(max_pool_percent, "max_pool_percent")
        if memory_bytes is not None:
            memory_bytes = exact_int(memory_bytes, "memory_bytes")
        accept_percent = number_arg(accept_threshold_percent, "accept_threshold_percent")
        if not isinstance(index, str):
            raise TypeError("index must be a str, not %s" % type(index).__name__)
        index = index_alias(index, "index")
        if max_pool_bytes is not None:
            check_at_least_0(max_pool_bytes, "max_pool_bytes")
        if not 0 <= max_percent <= 100:
            raise ValueError("max_pool_percent must be in [0, 100], not %r"
                             % (max_pool_percent,))
        if memory_bytes is not None:
            check_at_least_0(memory_bytes, "memory_bytes")
        if not 0 < accept_percent <= 100:
            raise ValueError("accept_threshold_percent must be in (0, 100], not %r"
                             % (accept_threshold_percent,))
        if index not in _INDEX_DESIGNS:
            raise ValueError("index must be one of %s, not %r" % (", ".join(INDEX_DESIGNS), index))
        # The compressor's library is loaded here, not at import.
        comp = vswap_compressor_setup(compressor)
        wb = bool(writeback)
        exclusive = bool(exclusive_loads)
        wait_shrink = bool(wait_for_shrink_worker)
        if max_pool_bytes is None:
            if memory_bytes is None:
                memory_bytes = _physical_memory()
            max_pool_bytes = int(memory_bytes * max_percent / 100)
        max_pool_bytes = min(max_pool_bytes, 1 << 62)
        # State, after every conversion: nothing below runs Python code.
        if (<VSwap>space).vs.zswap_owner != NULL:
            raise ValueError("space already has a zswap pool")
        if swapfile is not None and (<SwapFile>swapfile).sf == NULL:
            raise ValueError("I/O on a closed swap file")
        p = <zswap_pool *>PyMem_RawCalloc(1, sizeof(zswap_pool))
        if p == NULL:
            raise MemoryError()
        p.vs = (<VSwap>space).vs
        if _INDEX_DESIGNS[index] != ZSWAP_INDEX_VSWAP:
            p.ix = zswap_index_new(p.vs, _INDEX_DESIGNS[index])
            if p.ix == NULL:
                PyMem_RawFree(p)
                raise MemoryError()
        self.compressor = compressor
        p.compressor = comp
        pthread_spin_init(&p.lru_lock, PTHREAD_PROCESS_PRIVATE)
        pthread_mutex_init(&p.shrink_lock, NULL)
        pthread_cond_init(&p.shrink_cond, NULL)
        pthread_cond_init(&p.shrink_idle, NULL)
        p.shrink_wait = wait_shrink
        for ci in range(nr_classes):
            cls = &p.classes[ci]
            cls.size, cls.pages, cls.objs = ZPOOL_CLASSES[ci]
            pthread_spin_init(&cls.lock, PTHREAD_PROCESS_PRIVATE)
        self.index = index
        self.space = space
        self._accept_percent = accept_percent
        store_i64(&p.max_pool_bytes, max_pool_bytes)
        store_i64(&p.accept_bytes, <int64_t>(max_pool_bytes * accept_percent / 100))
        p.writeback = wb
        p.exclusive_loads = exclusive
        if swapfile is not None:
            self.swapfile = swapfile
            p.sf = (<SwapFile>swapfile).sf
            (<SwapFile>swapfile).nr_users += 1
        self.p = p
        vswap_zswap_bind(p.vs, p, hook_release, hook_peek, hook_slot_release, hook_slot_owned,
                         hook_slot_assign,
                         hook_range_freed if p.ix != NULL else <range_freed_fn>NULL)

    def __dealloc__(self):
        self._close()

    cdef void _close(self) noexcept:
        """Drop every entry and written-back page of the pool from the space,
        unbind it, and free it: once the calls in flight have finished, and
        once every thread of the space that may still use its hooks has.

        GIL held on entry; released while waiting and tearing down (the
        calls in flight may need it to finish).
        """
        cdef zswap_pool *p = self.p
        if p == NULL:
            return
        self.p = NULL                   # later calls find the pool closed
        with nogil:
            vswap_wait_zero(&p.calls)
            # No call is left to queue the shrink work: stop its thread
            # before the pool's structures go.
            stop_shrink_worker(p)
            # Descriptors first: slots, and the entries of the vswap design;
            # then no thread of the space reaches the pool any more.
            vswap_zswap_unbind(p.vs)
            if p.ix != NULL:
                zswap_index_drain(p.ix, drain_one, p)
                zswap_index_free(p.ix)
        if self.swapfile is not None:
            self.swapfile.nr_users -= 1
        pool_free(p)

    cdef zswap_pool *_enter(self) except NULL:
        """The open pool, with this call counted in flight (close() waits
        for it): pair with pool_exit().  Take it after converting every
        argument, and run no Python code until pool_exit()."""
        cdef zswap_pool *p = self.p
        if p == NULL:
            raise ValueError("zswap pool is closed")
        vswap_seq_add(&p.calls, 1)
        return p

    cdef int _check_open(self) except -1:
        """Raise if closed, for a closed-pool error before argument errors,
        as the twin reports it.  Keeps no pointer."""
        if self.p == NULL:
            raise ValueError("zswap pool is closed")
        return 0

    def close(self):
        """Drop every entry and written-back page of the pool from the space,
        unbind it and free it.  Waits for calls in flight on other threads;
        later calls raise ValueError("zswap pool is closed").  Closing again
        does nothing."""
        self._close()

    # -- settings -----------------------------------------------------------

    @property
    def max_pool_bytes(self):
        """The pool size limit in bytes (max_pool_percent of memory)."""
        cdef zswap_pool *p = self._enter()
        cdef int64_t value = load_i64(&p.max_pool_bytes)
        pool_exit(p)
        return value

    @max_pool_bytes.setter
    def max_pool_bytes(self, value):
        cdef zswap_pool *p
        cdef int64_t limit
        self._check_open()
        value = exact_int(value, "max_pool_bytes")
        check_at_least_0(value, "max_pool_bytes")
        limit = min(value, 1 << 62)
        p = self._enter()
        store_i64(&p.max_pool_bytes, limit)
        store_i64(&p.accept_bytes, <int64_t>(limit * self._accept_percent / 100))
        pool_exit(p)

    @property
    def accept_threshold_percent(self):
        """Below this share of the limit a full pool takes stores again."""
        self._check_open()
        return self._accept_percent

    @accept_threshold_percent.setter
    def accept_threshold_percent(self, value):
        cdef zswap_pool *p
        cdef double percent
        self._check_open()
        percent = number_arg(value, "accept_threshold_percent")
        if not 0 < percent <= 100:
            raise ValueError("accept_threshold_percent must be in (0, 100], not %r" % (value,))
        p = self._enter()
        self._accept_percent = percent
        store_i64(&p.accept_bytes, <int64_t>(load_i64(&p.max_pool_bytes) * percent / 100))
        pool_exit(p)

    cdef bint _get_flag(self, int which) except -1:
        cdef zswap_pool *p = self._enter()
        cdef bint value = load_u8(pool_flag(p, which))
        pool_exit(p)
        return value

    cdef int _set_flag(self, int which, object value) except -1:
        cdef zswap_pool *p
        cdef bint v
        self._check_open()
        v = bool(value)                 # may run Python code: before _enter()
        p = self._enter()
        store_u8(pool_flag(p, which), v)
        pool_exit(p)
        return 0

    @property
    def writeback(self):
        """Whether the pool may write pages back to its swap file."""
        return self._get_flag(FLAG_WRITEBACK)

    @writeback.setter
    def writeback(self, value):
        self._set_flag(FLAG_WRITEBACK, value)

    @property
    def exclusive_loads(self):
        """Whether a successful load erases the entry (upstream's behaviour)."""
        return self._get_flag(FLAG_EXCLUSIVE_LOADS)

    @exclusive_loads.setter
    def exclusive_loads(self, value):
        self._set_flag(FLAG_EXCLUSIVE_LOADS, value)

    @property
    def writeback_enabled(self):
        """writeback is on and there is a swap file to write to."""
        cdef zswap_pool *p = self._enter()
        cdef bint value = writeback_enabled(p)
        pool_exit(p)
        return value

    # -- operations ---------------------------------------------------------

    def store(self, entry, page):
        """zswap_store(): compress ``page`` (``nr * 4096`` bytes) into the
        ``nr`` entries from ``entry``.

        Locks: none while compressing; then the cluster and lru_lock once.
        The GIL is released for the whole page work.  Returns True, or False
        when the pool refused the pages (limit, poor compression, no memory);
        a refused store leaves none of the entries with a zswap entry.
        """
        cdef zswap_pool *p
        cdef Py_buffer view
        cdef void *olds[VSWAP_CLUSTER_MAX]
        cdef int nolds = 0, result
        cdef Py_ssize_t nr
        cdef uint32_t n
        cdef uint64_t val
        self._check_open()
        if PyBool_Check(entry) or not PyIndex_Check(entry):
            raise TypeError("swap entry must be an int, not %s" % type(entry).__name__)
        nr = page_buffer(page, &view, False, "page", -1)
        try:
            val = vswap_check_range(self.space, entry, nr, &n)
            p = self._enter()
            with nogil:
                result = pool_store(p, val, n, <const char *>view.buf, olds, &nolds)
                pool_exit(p)
        finally:
            PyBuffer_Release(&view)
        release_objects(olds, nolds)
        if result == STORE_GONE:
            raise InvalidEntryError("swap entry %#x was freed during the store" % val)
        return result == STORE_OK

    cdef uint64_t _one_entry(self, object entry) except 0:
        cdef uint32_t n
        return vswap_check_range(self.space, entry, 1, &n)

    def load(self, entry, out=None):
        """zswap_load(): the page of ``entry`` into ``out`` (a writable buffer
        of 4096 bytes, returned) or into new bytes; None when the entry has no
        pool entry.  Exclusive unless ``exclusive_loads`` is off.

        Locks: the cluster, briefly; decompression runs with no lock and no
        GIL.  Raises ZswapDecompressError on corrupt data (entry kept).
        """
        cdef zswap_pool *p
        cdef uint64_t val
        cdef int result
        cdef Py_buffer view
        cdef char *buf
        self._check_open()
        val = self._one_entry(entry)
        if out is None:
            target = PyBytes_FromStringAndSize(NULL, PAGE)
            buf = PyBytes_AS_STRING(target)
        else:
            page_buffer(out, &view, True, "out", 1)
            buf = <char *>view.buf
            target = out
        try:
            p = self._enter()
            with nogil:
                result = pool_load(p, val, buf, load_u8(&p.exclusive_loads), True)
                pool_exit(p)
        finally:
            if out is not None:
                PyBuffer_Release(&view)
        return self._loaded(result, val, target)

    cdef object _loaded(self, int result, uint64_t val, object target):
        if result == LOAD_OK:
            return target
        if result == LOAD_NONE:
            return None
        if result == LOAD_CORRUPT:
            raise ZswapDecompressError("swap entry %#x: compressed data is corrupt" % val)
        raise InvalidEntryError(bad_entry_message(val, self.space.cluster_shift,
                                                  self.space.max_clusters, "free"))

    def read(self, entry, out=None):
        """The page of ``entry`` wherever it lives, without moving it: its
        swap-cache folio (a 4096-byte buffer), its zswap entry, or the
        pool's page in the swap file.  Raises NoPageError when there is none.

        Locks: the cluster, briefly, for each place looked at.
        """
        cdef zswap_pool *p
        cdef uint64_t val
        cdef Py_buffer view
        cdef int result, err = 0
        cdef char *buf
        self._check_open()
        val = self._one_entry(entry)
        folio = self.space.swap_cache_get_folio(val)
        if out is None:
            target = PyBytes_FromStringAndSize(NULL, PAGE)
            buf = PyBytes_AS_STRING(target)
        else:
            page_buffer(out, &view, True, "out", 1)
            buf = <char *>view.buf
            target = out
        try:
            if folio is not None and self._copy_folio(folio, buf):
                return target
            p = self._enter()
            with nogil:
                result = pool_load(p, val, buf, False, False)
                if result == LOAD_NONE:
                    err = read_slot(p, val, buf)
                pool_exit(p)
            if result != LOAD_NONE:
                return self._loaded(result, val, target)
            if err == READ_NO_SLOT:
                raise NoPageError("swap entry %#x holds no page: no folio, zswap "
                                  "entry or swap slot" % val)
            if err == READ_GONE:
                raise InvalidEntryError(bad_entry_message(
                    val, self.space.cluster_shift, self.space.max_clusters, "free"))
            if err:
                raise OSError(err, os.strerror(err), self.swapfile.path)
            return target
        finally:
            if out is not None:
                PyBuffer_Release(&view)

    cdef bint _copy_folio(self, object folio, char *out) except -1:
        """Copy a folio that is a C-contiguous buffer of exactly one page;
        False for anything else (the page is then looked for elsewhere)."""
        cdef Py_buffer fview
        try:
            PyObject_GetBuffer(folio, &fview, PyBUF_C_CONTIGUOUS)
        except (TypeError, BufferError, ValueError):
            # Not a buffer, or not a contiguous one (numpy says ValueError).
            return False
        try:
            if fview.len != PAGE:
                return False
            memcpy(out, fview.buf, PAGE)
            return True
        finally:
            PyBuffer_Release(&fview)

    def invalidate(self, entry, nr=1):
        """zswap_invalidate(): erase and free the zswap entries of ``nr``
        entries from ``entry``.  Locks: the cluster, then lru_lock per pool
        entry.  Returns how many entries there were."""
        cdef zswap_pool *p
        cdef void *olds[VSWAP_CLUSTER_MAX]
        cdef uint64_t val
        cdef uint32_t n
        cdef int found, nobj
        self._check_open()
        val = vswap_check_range(self.space, entry, nr, &n)
        p = self._enter()
        with nogil:
            found = erase_range(p, val, n, olds)
            nobj = drop_pool_entries(p, olds, found) if found > 0 else 0
            pool_exit(p)
        if found < 0:
            raise InvalidEntryError("swap entry %#x was freed during the invalidate" % val)
        release_objects(olds, nobj)
        return found

    def shrink(self, nr):
        """Write back up to ``nr`` entries from the cold end of the LRU, with
        second chance; returns how many were written.  0 when writeback is
        disabled.  Locks: lru_lock, then one cluster at a time."""
        cdef zswap_pool *p
        cdef int64_t n, written
        self._check_open()
        nr = exact_int(nr, "nr")
        if nr < 0:
            raise ValueError("nr must be at least 0, not %d" % nr)
        n = min(nr, 1 << 62)
        p = self._enter()
        with nogil:
            written = pool_shrink(p, n)
            pool_exit(p)
        return written

    def flush_shrink_work(self):
        """flush_work(&zswap_shrink_work): wait until the background shrink
        worker has nothing queued and is not running.  The GIL is released
        while waiting.  Locks: the worker's queue lock."""
        cdef zswap_pool *p
        self._check_open()
        p = self._enter()
        with nogil:
            flush_shrink_work(p)
            pool_exit(p)

    @property
    def wait_for_shrink_worker(self):
        """Whether a store that queues the shrink worker waits for it."""
        return self._get_flag(FLAG_SHRINK_WAIT)

    @wait_for_shrink_worker.setter
    def wait_for_shrink_worker(self, value):
        self._set_flag(FLAG_SHRINK_WAIT, value)

    # -- batch calls (statuses in vswapfast.batch) --------------------------

    def store_many(self, entries, pages):
        """``store`` one page per entry from ``pages`` (len(entries) * 4096
        bytes): BATCH_OK, BATCH_REJECTED or BATCH_INVALID each.

        Locks: as ``store``, per entry; the GIL is released for the batch."""
        cdef zswap_pool *p
        cdef u64_array a
        cdef Py_buffer view
        cdef bint has_view = False
        cdef signed char *status
        cdef void *olds[1]
        cdef void **displaced = NULL
        cdef Py_ssize_t i, nd = 0
        cdef int nolds, result
        cdef const char *src
        self._check_open()
        u64_array_get(&a, entries, "entries", False, -1)
        try:
            page_buffer(pages, &view, False, "pages", a.n)
            has_view = True
            out = status_array(a.n, &status)
            displaced = <void **>PyMem_RawMalloc(max(a.n, 1) * sizeof(void *))
            if displaced == NULL:
                raise MemoryError()
            src = <const char *>view.buf
            p = self._enter()
            with nogil:
                for i in range(a.n):
                    if not vswap_entry_allocated_nolock(p.vs, a.values[i]):
                        status[i] = BATCH_INVALID
                        continue
                    result = pool_store(p, a.values[i], 1, src + i * PAGE, olds, &nolds)
                    if nolds:
                        displaced[nd] = olds[0]
                        nd += 1
                    status[i] = (BATCH_OK if result == STORE_OK else
                                 BATCH_REJECTED if result == STORE_REJECTED else BATCH_INVALID)
                pool_exit(p)
            release_objects(displaced, nd)
        finally:
            PyMem_RawFree(displaced)
            if has_view:
                PyBuffer_Release(&view)
            u64_array_release(&a)
        return out

    def load_many(self, entries, out):
        """``load`` each entry into its page of ``out`` (a writable buffer of
        len(entries) * 4096 bytes): BATCH_OK, BATCH_EMPTY, BATCH_CORRUPT or
        BATCH_INVALID each.  Locks: as ``load``, per entry; no GIL.

        ``out`` may share memory with ``entries``: the entries are read
        before any page is written."""
        cdef zswap_pool *p
        cdef u64_array a
        cdef Py_buffer view
        cdef bint has_view = False
        cdef signed char *status
        cdef Py_ssize_t i
        cdef int result
        cdef char *dst
        self._check_open()
        u64_array_get(&a, entries, "entries", False, -1)
        try:
            page_buffer(out, &view, True, "out", a.n)
            has_view = True
            u64_array_unshare_bytes(&a, <char *>view.buf, view.len)
            result_array = status_array(a.n, &status)
            dst = <char *>view.buf
            p = self._enter()
            with nogil:
                for i in range(a.n):
                    result = pool_load(p, a.values[i], dst + i * PAGE,
                                       load_u8(&p.exclusive_loads), True)
                    status[i] = (BATCH_OK if result == LOAD_OK else
                                 BATCH_EMPTY if result == LOAD_NONE else
                                 BATCH_CORRUPT if result == LOAD_CORRUPT else BATCH_INVALID)
                pool_exit(p)
        finally:
            if has_view:
                PyBuffer_Release(&view)
            u64_array_release(&a)
        return result_array

    def invalidate_many(self, entries):
        """``invalidate`` each entry: BATCH_OK (an entry was dropped),
        BATCH_EMPTY or BATCH_INVALID.  Locks: as ``invalidate``; no GIL."""
        cdef zswap_pool *p
        cdef u64_array a
        cdef signed char *status
        cdef void *olds[1]
        cdef void **displaced = NULL
        cdef Py_ssize_t i, nd = 0
        cdef int found
        self._check_open()
        u64_array_get(&a, entries, "entries", False, -1)
        try:
            out = status_array(a.n, &status)
            displaced = <void **>PyMem_RawMalloc(max(a.n, 1) * sizeof(void *))
            if displaced == NULL:
                raise MemoryError()
            p = self._enter()
            with nogil:
                for i in range(a.n):
                    found = erase_range(p, a.values[i], 1, olds)
                    if found < 0:
                        status[i] = BATCH_INVALID
                        continue
                    status[i] = BATCH_OK if found else BATCH_EMPTY
                    if found and drop_pool_entries(p, olds, found):
                        displaced[nd] = olds[0]
                        nd += 1
                pool_exit(p)
            release_objects(displaced, nd)
        finally:
            PyMem_RawFree(displaced)
            u64_array_release(&a)
        return out

    # -- introspection ------------------------------------------------------

    def stats(self):
        """Counters with upstream's debugfs names, plus pool geometry.

        Every figure is read in C first; the dict is built once the pool is
        let go (building it can run a collection, and so a __del__ that
        closes the pool)."""
        cdef zswap_pool *p
        cdef int64_t counters[NR_COUNTERS]
        cdef int64_t lru_length, total, limit, shrink_runs
        cdef uint64_t lru_acq, lru_cont, acq = 0, cont = 0
        cdef bint trees
        cdef int i
        self._check_open()
        p = self._enter()
        for i in range(NR_COUNTERS):
            counters[i] = counter_sum(p, i)
        lru_lock(p)
        lru_length = p.lru_length
        lru_acq, lru_cont = p.lru_lock_acquisitions, p.lru_lock_contended
        lru_unlock(p)
        total = pool_total_size(p)
        limit = load_i64(&p.max_pool_bytes)
        trees = p.ix != NULL
        if trees:
            index_lock_totals(p.ix, &acq, &cont)
        pthread_mutex_lock(&p.shrink_lock)
        shrink_runs = p.shrink_runs
        pthread_mutex_unlock(&p.shrink_lock)
        pool_exit(p)
        out = {name: counters[i] for i, name in enumerate(COUNTER_NAMES)}
        out["pool_total_size"] = total
        out["lru_length"] = lru_length
        out["shrink_worker_runs"] = shrink_runs
        out["max_pool_bytes"] = limit
        out["compression_ratio"] = (out["stored_pages"] * PAGE / total) if total else 0.0
        out["lru_lock_acquisitions"] = lru_acq
        out["lru_lock_contended"] = lru_cont
        if not trees:
            # The entries' locks are the space's cluster locks.
            s = self.space.stats()
            acq, cont = s["lock_acquisitions"], s["lock_contended"]
        out["index_lock_acquisitions"] = acq
        out["index_lock_contended"] = cont
        return out

    def __len__(self):
        """Pages held: stored_pages + zero_pages."""
        cdef zswap_pool *p
        cdef int64_t n
        self._check_open()
        p = self._enter()
        n = counter_sum(p, STORED_PAGES) + counter_sum(p, ZERO_PAGES)
        pool_exit(p)
        return n

    def __repr__(self):
        if self.p == NULL:
            return "<Zswap core=compiled closed>"
        try:
            s = self.stats()
        except ValueError:              # closed by a collection meanwhile
            return "<Zswap core=compiled closed>"
        # The compressor is shown when it is not the default.
        return ("<Zswap core=compiled stored_pages=%d zero_pages=%d pool_total_size=%d "
                "written_back_pages=%d%s>" % (s["stored_pages"], s["zero_pages"],
                                              s["pool_total_size"], s["written_back_pages"],
                                              compressor_repr(self.compressor)))

    def _corrupt(self, entry):
        """Test hook: overwrite the stored bytes of ``entry``'s pool entry so
        that decompression fails.  Returns False if it has none, or holds the
        page raw (nothing could tell the bytes are wrong)."""
        cdef zswap_pool *p
        cdef uint64_t val
        cdef zslot z
        cdef zswap_entry *e
        cdef bint done = False
        self._check_open()
        val = self._one_entry(entry)
        p = self._enter()
        if zslot_lock(p, val, &z, False) == ZSLOT_LOCKED:
            if is_native(zslot_get(&z)) and not entry_untag(zslot_get(&z)).incompressible:
                e = entry_untag(zslot_get(&z))
                # 0xff bytes: for LZ4 a literal run longer than the block, for
                # zstd a bad magic number, for LZO a run past the input.
                memset(zs_obj(p, e.zspage, e.obj), 0xff, e.length)
                done = True
            zslot_unlock(&z)
        pool_exit(p)
        return done

    def _writeback_replaced(self, entry, page):
        """Test hook for the writeback race: pin the pool entry of ``entry``
        as the shrinker would, store ``page`` over it, then write the pinned
        entry back.  Returns what writeback_entry() did: "written",
        "gone" (it found the entry replaced and did nothing), "full" or
        "failed"; None if ``entry`` had no pool entry (nothing is stored)."""
        cdef zswap_pool *p
        cdef Py_buffer view
        cdef void *olds[1]
        cdef int nolds = 0, result = -1
        cdef uint64_t val
        cdef zslot z
        cdef zswap_entry *e = NULL
        self._check_open()
        val = self._one_entry(entry)
        page_buffer(page, &view, False, "page", 1)
        try:
            p = self._enter()
            with nogil:
                if zslot_lock(p, val, &z, False) == ZSLOT_LOCKED:
                    if is_native(zslot_get(&z)):
                        e = entry_untag(zslot_get(&z))
                        ref_get(&e.refs)
                    zslot_unlock(&z)
                if e != NULL:
                    pool_store(p, val, 1, <const char *>view.buf, olds, &nolds)
                    result = writeback_entry(p, e) if p.sf != NULL else WB_FULL
                    entry_put(p, e)
                pool_exit(p)
        finally:
            PyBuffer_Release(&view)
        release_objects(olds, nolds)
        if result < 0:
            return None
        return {WB_OK: "written", WB_GONE: "gone", WB_FULL: "full"}.get(result, "failed")

    def _block(self, entry):
        """Test hook: the block the pool's compressor stored for ``entry``,
        as bytes, or None (no pool entry with compressed data)."""
        cdef zswap_pool *p
        cdef uint64_t val
        cdef zslot z
        cdef zswap_entry *e = NULL
        cdef char copy[PAGE]
        cdef uint32_t length = 0
        self._check_open()
        val = self._one_entry(entry)
        p = self._enter()
        if zslot_lock(p, val, &z, False) == ZSLOT_LOCKED:
            if is_native(zslot_get(&z)) and not entry_untag(zslot_get(&z)).incompressible:
                e = entry_untag(zslot_get(&z))
                ref_get(&e.refs)
            zslot_unlock(&z)
        if e != NULL:
            length = e.length
            memcpy(copy, zs_obj(p, e.zspage, e.obj), length)
            entry_put(p, e)
        pool_exit(p)
        if e == NULL:
            return None
        return PyBytes_FromStringAndSize(copy, length)

    @staticmethod
    def _decompress_block(block, compressor="lz4"):
        """Test hook: decompress a block made elsewhere with this core's
        ``compressor`` (the system's library), to one page."""
        cdef int comp = vswap_compressor_setup(compressor)
        cdef const unsigned char[::1] data = block
        cdef bytes page = PyBytes_FromStringAndSize(NULL, PAGE)
        if data.shape[0] == 0 or vswap_decompress(comp, <const char *>&data[0], <int>data.shape[0],
                                                  PyBytes_AS_STRING(page)) != 0:
            raise ZswapDecompressError("the block does not decompress to one page")
        return page
