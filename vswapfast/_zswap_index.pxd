# cython: language_level=3
"""C layout of the zswap entry index designs, for Cython code that cimports it.

"vswap" keeps zswap entries in the swap descriptors (the seed patch);
"rbtree" in one red-black tree under one spinlock, as zswap kept them up
to 6.7 (one zswap_tree per swap device, loads under its lock too).  The
tree holds the same tagged values as the descriptor's zswap_entry field.

Lock ordering: vswap cluster lock -> tree lock (-> pool lru_lock).
"""

from libc.stdint cimport uint32_t, int64_t, uint64_t
from vswapfast._vswap cimport VSwap, vswap_space, pthread_spinlock_t
from vswapfast._rbtree cimport vrb_node, vrb_root

cdef enum:
    ZSWAP_INDEX_VSWAP = 0
    ZSWAP_INDEX_TREE = 1

# A node of the tree: zswap_entry's rbnode, its swap entry, the value.
ctypedef struct zswap_tree_node:
    vrb_node rb                  # must stay first: a value's node is found from it
    uint64_t key
    void *value

ctypedef struct zswap_tree:
    pthread_spinlock_t lock
    uint64_t lock_acquisitions   # lock
    uint64_t lock_contended      # lock
    vrb_root rbroot              # lock
    int64_t nr_entries           # lock

ctypedef struct zswap_index:
    int design
    vswap_space *vs
    uint64_t nr_trees            # 1 for "tree", 0 for "vswap"
    zswap_tree **trees           # the tree, made on first use
    pthread_spinlock_t dir_lock  # installs the tree

cdef zswap_index *zswap_index_new(vswap_space *vs, int design) noexcept nogil
cdef void zswap_index_free(zswap_index *ix) noexcept nogil
# The tree that holds ``val`` (made if ``create``), or NULL.
cdef zswap_tree *zswap_index_tree(zswap_index *ix, uint64_t val, bint create) noexcept nogil
cdef uint64_t zswap_tree_key(zswap_index *ix, uint64_t val) noexcept nogil
cdef void zswap_tree_lock(zswap_tree *t) noexcept nogil
cdef void zswap_tree_unlock(zswap_tree *t) noexcept nogil
# The slot of ``key`` (made if ``create``; NULL if absent or out of memory).
# Caller holds the tree lock.
cdef void **zswap_tree_slot(zswap_tree *t, uint64_t key, bint create) noexcept nogil
# Put ``value`` (NULL erases) in a slot from zswap_tree_slot; returns the
# old value.  Caller holds the tree lock.
cdef void *zswap_tree_set(zswap_tree *t, uint64_t key, void **slot, void *value) noexcept nogil
# Call ``fn(ctx, value)`` for every value and empty the index.  No lock: the
# caller owns the index.
cdef void zswap_index_drain(zswap_index *ix, void (*fn)(void *, void *) noexcept nogil,
                            void *ctx) noexcept nogil

cdef class ZswapIndex:
    cdef zswap_index *ix
    cdef readonly VSwap space
    cdef readonly str design
    cdef uint64_t _entry(self, object entry) except 0
    cdef object _swap(self, object entry, object zentry, bint erase)
    cdef int64_t _entries(self) noexcept
    cdef object _load_erase_many(self, object entries, object out, bint erase)
