# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The zswap entry index designs: where zswap entries are kept.

The seed patch keeps them in the swap descriptors, under the per-cluster
locks ("vswap").  The design it replaces is here as a baseline in the same
C core, so that comparisons are fair: one red-black tree under one
spinlock ("rbtree"; "tree", its former name, is a deprecated alias), as
zswap kept its entries up to 6.7 (mm/zswap.c:
zswap_trees[type], tree->lock taken by zswap_store, zswap_load and
zswap_invalidate; zswap_rb_search / zswap_rb_insert walk the tree by swap
offset, rb_link_node + rb_insert_color insert, rb_erase removes).  A node
is a struct rb_node (rbtree.h, the kernel's layout) with the swap entry
and the value, allocated on store and freed on erase.  The
vswapfast.designs "rbtree" design models the whole of that era's swap
metadata; this index is its zswap tree alone, under the seed's API.

The tree design takes its lock once per entry, as zswap_invalidate did
(zswap_load took it twice, once to find and once to put the entry; the
index, which has no reference counts, takes it once).  It refuses entries
without an allocated descriptor using a lock-free read of the allocation
bitmap, so that it takes no cluster lock: its cost is the tree's alone.
"""

cimport cython
from cpython.bool cimport PyBool_Check
from cpython.number cimport PyIndex_Check
from cpython.mem cimport PyMem_RawCalloc, PyMem_RawFree
from cpython.ref cimport PyObject, Py_INCREF, Py_XINCREF, Py_XDECREF, Py_DECREF
from libc.stdint cimport uint32_t, int64_t, uint64_t, uintptr_t

from vswapfast._rbtree cimport vrb_node, vrb_link_node, vrb_insert_color, vrb_erase, vrb_take_leaf
from vswapfast._vswap cimport (
    VSwap, vswap_space, pthread_spin_init, pthread_spin_destroy, pthread_spin_trylock,
    pthread_spin_lock, pthread_spin_unlock, PTHREAD_PROCESS_PRIVATE,
    vswap_entry_allocated_nolock, vswap_zswap_is_object, vswap_zswap_is_handle,
    vswap_handle_field, vswap_batch_displaced, entry_val, zswap_store_many, zswap_load_erase_many,
    batch_store, batch_load_erase,
    BATCH_OK, BATCH_EMPTY, BATCH_FOREIGN, BATCH_REJECTED, BATCH_INVALID, BATCH_BAD_HANDLE,
)
from vswapfast.batch import INDEX_DESIGNS, index_alias
from vswapfast.errors import InvalidEntryError, bad_entry_message

cdef extern from "vswap_sync.h" nogil:
    zswap_tree *load_tree "vswap_load_acquire"(zswap_tree **p)
    void store_tree "vswap_store_release"(zswap_tree **p, zswap_tree *v)
    int64_t load_i64 "vswap_load_relaxed"(int64_t *p)
    uint64_t load_u64 "vswap_load_relaxed"(uint64_t *p)
    void store_u64 "vswap_store_relaxed"(uint64_t *p, uint64_t v)

DESIGNS = {name: i for i, name in enumerate(INDEX_DESIGNS)}


# ---------------------------------------------------------------------------
# Trees
# ---------------------------------------------------------------------------

cdef void zswap_tree_lock(zswap_tree *t) noexcept nogil:
    """Take a tree lock, counting contention as the cluster locks do."""
    if pthread_spin_trylock(&t.lock) != 0:
        pthread_spin_lock(&t.lock)
        store_u64(&t.lock_contended, t.lock_contended + 1)
    # Atomic stores: stats() reads the counters without the lock.
    store_u64(&t.lock_acquisitions, t.lock_acquisitions + 1)


cdef void zswap_tree_unlock(zswap_tree *t) noexcept nogil:
    pthread_spin_unlock(&t.lock)


cdef inline zswap_tree_node *node_of_slot(void **slot) noexcept nogil:
    """The node whose value ``slot`` is."""
    cdef zswap_tree_node probe
    return <zswap_tree_node *>(<char *>slot - (<char *>&probe.value - <char *>&probe))


cdef void **zswap_tree_slot(zswap_tree *t, uint64_t key, bint create) noexcept nogil:
    """zswap_rb_search() of ``key``; with ``create`` and no node yet,
    zswap_rb_insert() of one with no value (rb_link_node, then
    rb_insert_color).  The node's value slot, or NULL if absent or out of
    memory.  Caller holds the tree lock."""
    cdef vrb_node **link = &t.rbroot.rb_node
    cdef vrb_node *parent = NULL
    cdef zswap_tree_node *n
    while link[0] != NULL:
        parent = link[0]
        n = <zswap_tree_node *>parent
        if n.key > key:
            link = &parent.rb_left
        elif n.key < key:
            link = &parent.rb_right
        else:
            return &n.value
    if not create:
        return NULL
    n = <zswap_tree_node *>PyMem_RawCalloc(1, sizeof(zswap_tree_node))
    if n == NULL:
        return NULL
    n.key = key
    vrb_link_node(&n.rb, parent, link)
    vrb_insert_color(&n.rb, &t.rbroot)
    return &n.value


cdef void *zswap_tree_set(zswap_tree *t, uint64_t key, void **slot, void *value) noexcept nogil:
    """Put ``value`` in a slot of zswap_tree_slot(); NULL erases the node
    (rb_erase) and frees it.  Returns the old value.  Caller holds the
    tree lock."""
    cdef void *old = slot[0]
    cdef zswap_tree_node *n
    if value == NULL:
        if old != NULL:
            t.nr_entries -= 1
        n = node_of_slot(slot)
        vrb_erase(&n.rb, &t.rbroot)
        PyMem_RawFree(n)
        return old
    if old == NULL:
        t.nr_entries += 1
    slot[0] = value
    return old


cdef void tree_drain(zswap_tree *t, void (*fn)(void *, void *) noexcept nogil,
                     void *ctx) noexcept nogil:
    """Call ``fn(ctx, value)`` for each value and free every node, leaves
    first (no rebalancing: the tree is going)."""
    cdef vrb_node *r = vrb_take_leaf(&t.rbroot)
    cdef zswap_tree_node *n
    while r != NULL:
        n = <zswap_tree_node *>r
        if fn != NULL and n.value != NULL:
            fn(ctx, n.value)
        PyMem_RawFree(n)
        r = vrb_take_leaf(&t.rbroot)


# ---------------------------------------------------------------------------
# Indexes
# ---------------------------------------------------------------------------

cdef zswap_index *zswap_index_new(vswap_space *vs, int design) noexcept nogil:
    cdef zswap_index *ix = <zswap_index *>PyMem_RawCalloc(1, sizeof(zswap_index))
    if ix == NULL:
        return NULL
    ix.design = design
    ix.vs = vs
    if design == ZSWAP_INDEX_TREE:
        ix.nr_trees = 1
    if ix.nr_trees:
        ix.trees = <zswap_tree **>PyMem_RawCalloc(ix.nr_trees, sizeof(zswap_tree *))
        if ix.trees == NULL:
            PyMem_RawFree(ix)
            return NULL
    pthread_spin_init(&ix.dir_lock, PTHREAD_PROCESS_PRIVATE)
    return ix


cdef uint64_t zswap_tree_key(zswap_index *ix, uint64_t val) noexcept nogil:
    """The key of ``val`` in its tree: the entry itself (one tree)."""
    return val


cdef zswap_tree *zswap_index_tree(zswap_index *ix, uint64_t val, bint create) noexcept nogil:
    """The tree is made on first use, unlocked, and published under dir_lock."""
    cdef uint64_t n = 0
    cdef zswap_tree *t
    cdef zswap_tree *fresh
    if n >= ix.nr_trees:
        return NULL
    t = load_tree(&ix.trees[n])
    if t != NULL or not create:
        return t
    fresh = <zswap_tree *>PyMem_RawCalloc(1, sizeof(zswap_tree))
    if fresh == NULL:
        return NULL
    pthread_spin_init(&fresh.lock, PTHREAD_PROCESS_PRIVATE)
    pthread_spin_lock(&ix.dir_lock)
    t = ix.trees[n]
    if t == NULL:
        store_tree(&ix.trees[n], fresh)
        t, fresh = fresh, NULL
    pthread_spin_unlock(&ix.dir_lock)
    if fresh != NULL:
        pthread_spin_destroy(&fresh.lock)
        PyMem_RawFree(fresh)
    return t


cdef void zswap_index_drain(zswap_index *ix, void (*fn)(void *, void *) noexcept nogil,
                            void *ctx) noexcept nogil:
    cdef uint64_t n
    cdef zswap_tree *t
    for n in range(ix.nr_trees):
        t = ix.trees[n]
        if t == NULL or t.rbroot.rb_node == NULL:
            continue
        tree_drain(t, fn, ctx)
        t.nr_entries = 0


cdef void zswap_index_free(zswap_index *ix) noexcept nogil:
    cdef uint64_t n
    if ix == NULL:
        return
    zswap_index_drain(ix, NULL, NULL)
    for n in range(ix.nr_trees):
        if ix.trees[n] != NULL:
            pthread_spin_destroy(&ix.trees[n].lock)
            PyMem_RawFree(ix.trees[n])
    PyMem_RawFree(ix.trees)
    pthread_spin_destroy(&ix.dir_lock)
    PyMem_RawFree(ix)


# ---------------------------------------------------------------------------
# Batch loops of the tree designs: one tree lock per entry.
# ---------------------------------------------------------------------------

cdef Py_ssize_t tree_store_many(void *ctx, const uint64_t *vals, const uint64_t *handles,
                                Py_ssize_t n, uint64_t *old, signed char *status,
                                void **displaced, void **pinned) noexcept nogil:
    cdef zswap_index *ix = <zswap_index *>ctx
    cdef Py_ssize_t i, ndisplaced = 0
    cdef zswap_tree *t
    cdef void **slot
    cdef void *z
    cdef uint64_t val, handle
    for i in range(n):
        # Inputs first: ``old`` may be the caller's ``handles``.
        val = vals[i]
        handle = handles[i]
        if old != NULL:
            old[i] = 0
        if handle == 0 or handle >= (<uint64_t>1 << 62):
            status[i] = BATCH_BAD_HANDLE
            continue
        if not vswap_entry_allocated_nolock(ix.vs, val):
            status[i] = BATCH_INVALID
            continue
        t = zswap_index_tree(ix, val, True)
        if t == NULL:
            status[i] = BATCH_REJECTED
            continue
        zswap_tree_lock(t)
        slot = zswap_tree_slot(t, zswap_tree_key(ix, val), True)
        if slot == NULL:
            zswap_tree_unlock(t)
            status[i] = BATCH_REJECTED
            continue
        z = zswap_tree_set(t, zswap_tree_key(ix, val), slot, vswap_handle_field(handle))
        zswap_tree_unlock(t)
        ndisplaced = vswap_batch_displaced(z, i, old, status, displaced, ndisplaced)
    return ndisplaced


cdef Py_ssize_t tree_load_erase_many(void *ctx, const uint64_t *vals, Py_ssize_t n,
                                     uint64_t *out, signed char *status, bint erase,
                                     void **displaced, void **pinned) noexcept nogil:
    cdef zswap_index *ix = <zswap_index *>ctx
    cdef Py_ssize_t i, ndisplaced = 0
    cdef zswap_tree *t
    cdef void **slot
    cdef void *z
    cdef uint64_t key, val
    for i in range(n):
        val = vals[i]
        if out != NULL:
            out[i] = 0
        if not vswap_entry_allocated_nolock(ix.vs, val):
            status[i] = BATCH_INVALID
            continue
        t = zswap_index_tree(ix, val, False)
        if t == NULL:
            status[i] = BATCH_EMPTY
            continue
        key = zswap_tree_key(ix, val)
        zswap_tree_lock(t)
        slot = zswap_tree_slot(t, key, False)
        z = slot[0] if slot != NULL else NULL
        if z != NULL and erase and (vswap_zswap_is_handle(z) or displaced != NULL):
            zswap_tree_set(t, key, slot, NULL)
        zswap_tree_unlock(t)
        if z == NULL:
            status[i] = BATCH_EMPTY
        elif vswap_zswap_is_handle(z):
            if out != NULL:
                out[i] = <uintptr_t>z >> 2
            status[i] = BATCH_OK
        else:
            status[i] = BATCH_FOREIGN
            if erase:
                displaced[ndisplaced] = z
                ndisplaced += 1
    return ndisplaced


cdef void drop_object(void *ctx, void *z) noexcept nogil:
    """Release a value of a standalone index: Python objects only."""
    if vswap_zswap_is_object(z):
        with gil:
            Py_XDECREF(<PyObject *>z)


# ---------------------------------------------------------------------------
# The Python class
# ---------------------------------------------------------------------------

cdef inline object field_value(void *z):
    """A tree value as Python: None, a handle's int, or the object (whose
    reference the caller owns)."""
    if z == NULL:
        return None
    if vswap_zswap_is_handle(z):
        return <uint64_t>(<uintptr_t>z >> 2)
    result = <object>z
    Py_DECREF(result)
    return result


@cython.no_gc_clear
cdef class ZswapIndex:
    """A zswap entry index of one design over a VSwap: "vswap" (in the
    descriptors) or "rbtree" (one red-black tree, one lock).  The seed's zswap entry
    API and its batch forms.

    A tree index is not told of frees: its entries outlive a free of their
    swap entry until erased, as with the pre-patch trees.

    Torn down only by deallocation, which drains the trees before the space
    is let go (``no_gc_clear``: the collector never drops ``space`` first).
    """

    def __cinit__(self, space, design="vswap"):
        if not isinstance(space, VSwap):
            raise TypeError("space must be a VSwap of the compiled core, not %s.%s"
                            % (type(space).__module__, type(space).__qualname__))
        if not isinstance(design, str):
            raise TypeError("design must be a str, not %s" % type(design).__name__)
        design = index_alias(design, "design")
        if design not in DESIGNS:
            raise ValueError("design must be one of %s, not %r"
                             % (", ".join(INDEX_DESIGNS), design))
        self.space = space
        self.design = design
        self.ix = zswap_index_new((<VSwap>space).vs, DESIGNS[design])
        if self.ix == NULL:
            raise MemoryError()

    def __dealloc__(self):
        if self.ix != NULL:
            zswap_index_drain(self.ix, drop_object, NULL)
            zswap_index_free(self.ix)
            self.ix = NULL

    # -- single entries ------------------------------------------------------

    cdef uint64_t _entry(self, object entry) except 0:
        """A checked entry with an allocated descriptor (tree designs)."""
        cdef uint64_t val = entry_val(self.ix.vs, entry)
        if not vswap_entry_allocated_nolock(self.ix.vs, val):
            raise InvalidEntryError(bad_entry_message(
                val, self.space.cluster_shift, self.space.max_clusters, "free"))
        return val

    cdef object _swap(self, object entry, object zentry, bint erase):
        """Put ``zentry`` (or nothing, if ``erase``) in the tree; return the
        old value.  Locks: the entry's tree."""
        cdef uint64_t val = self._entry(entry)
        cdef zswap_tree *t = zswap_index_tree(self.ix, val, not erase)
        cdef uint64_t key = zswap_tree_key(self.ix, val)
        cdef void **slot
        cdef void *old
        if t == NULL:
            if erase:
                return None
            raise MemoryError()
        if not erase:
            Py_INCREF(zentry)
        zswap_tree_lock(t)
        slot = zswap_tree_slot(t, key, not erase)
        if slot == NULL:
            zswap_tree_unlock(t)
            if erase:
                return None
            Py_DECREF(zentry)
            raise MemoryError()
        old = zswap_tree_set(t, key, slot, NULL if erase else <void *>zentry)
        zswap_tree_unlock(t)
        return field_value(old)

    def zswap_entry_store(self, entry, zentry):
        """Store ``zentry`` for ``entry``; returns the old zswap entry or None.
        Locks: its cluster ("vswap") or its tree."""
        if self.ix.design == ZSWAP_INDEX_VSWAP:
            return self.space.zswap_entry_store(entry, zentry)
        if PyBool_Check(entry) or not PyIndex_Check(entry):
            raise TypeError("swap entry must be an int, not %s" % type(entry).__name__)
        if zentry is None:
            raise TypeError("zentry must not be None; use zswap_entry_erase")
        return self._swap(entry, zentry, False)

    def zswap_entry_load(self, entry):
        """The zswap entry of ``entry``, or None.  Locks: its cluster or tree."""
        cdef uint64_t val
        cdef zswap_tree *t
        cdef void **slot
        cdef void *z = NULL
        if self.ix.design == ZSWAP_INDEX_VSWAP:
            return self.space.zswap_entry_load(entry)
        val = self._entry(entry)
        t = zswap_index_tree(self.ix, val, False)
        if t == NULL:
            return None
        zswap_tree_lock(t)
        slot = zswap_tree_slot(t, zswap_tree_key(self.ix, val), False)
        if slot != NULL:
            z = slot[0]
            if vswap_zswap_is_object(z):
                Py_XINCREF(<PyObject *>z)
        zswap_tree_unlock(t)
        return field_value(z)

    def zswap_entry_erase(self, entry):
        """Erase the zswap entry of ``entry``; returns it or None."""
        if self.ix.design == ZSWAP_INDEX_VSWAP:
            return self.space.zswap_entry_erase(entry)
        return self._swap(entry, None, True)

    def zswap_empty(self, entry=None):
        """True when the index holds no zswap entry (exact)."""
        if self.ix.design == ZSWAP_INDEX_VSWAP:
            return self.space.zswap_empty()
        return self._entries() == 0

    cdef int64_t _entries(self) noexcept:
        cdef int64_t total = 0
        cdef uint64_t n
        cdef zswap_tree *t
        for n in range(self.ix.nr_trees):
            t = load_tree(&self.ix.trees[n])
            if t != NULL:
                zswap_tree_lock(t)
                total += t.nr_entries
                zswap_tree_unlock(t)
        return total

    def __len__(self):
        """zswap entries held."""
        if self.ix.design == ZSWAP_INDEX_VSWAP:
            return self.space.stats()["zswap_entries"]
        return self._entries()

    # -- batches ------------------------------------------------------------

    def zswap_entry_store_many(self, entries, handles, old=None):
        """As VSwap.zswap_entry_store_many, in this design.  No GIL."""
        if self.ix.design == ZSWAP_INDEX_VSWAP:
            return batch_store(self.ix.vs, entries, handles, old, zswap_store_many, self.ix.vs)
        return batch_store(self.ix.vs, entries, handles, old, tree_store_many, self.ix)

    def zswap_entry_load_many(self, entries, out):
        """As VSwap.zswap_entry_load_many, in this design.  No GIL."""
        return self._load_erase_many(entries, out, False)

    def zswap_entry_erase_many(self, entries, old=None):
        """As VSwap.zswap_entry_erase_many, in this design.  No GIL."""
        return self._load_erase_many(entries, old, True)

    cdef object _load_erase_many(self, object entries, object out, bint erase):
        if self.ix.design == ZSWAP_INDEX_VSWAP:
            return batch_load_erase(self.ix.vs, entries, out, erase,
                                    zswap_load_erase_many, self.ix.vs)
        return batch_load_erase(self.ix.vs, entries, out, erase, tree_load_erase_many, self.ix)

    # -- introspection ------------------------------------------------------

    def stats(self):
        """design, entries, locks and their acquisitions and contention."""
        cdef uint64_t n, acq = 0, cont = 0, locks = 0
        cdef zswap_tree *t
        if self.ix.design == ZSWAP_INDEX_VSWAP:
            s = self.space.stats()
            return {"design": self.design, "entries": s["zswap_entries"],
                    "locks": s["clusters"], "lock_acquisitions": s["lock_acquisitions"],
                    "lock_contended": s["lock_contended"]}
        for n in range(self.ix.nr_trees):
            t = load_tree(&self.ix.trees[n])
            if t != NULL:
                locks += 1
                acq += load_u64(&t.lock_acquisitions)
                cont += load_u64(&t.lock_contended)
        return {"design": self.design, "entries": self._entries(), "locks": locks,
                "lock_acquisitions": acq, "lock_contended": cont}

    def __repr__(self):
        s = self.stats()
        return ("<ZswapIndex core=compiled design=%s entries=%d locks=%d>"
                % (self.design, s["entries"], s["locks"]))
