# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""One xarray of the model in xarray.h, for tests and experiments.

The designs use the C functions directly (``cimport vswapfast._xarray``);
this class wraps one xarray with its own node context so that the model
can be checked on its own: ``store``, ``load``, ``erase``, the node count
and the bytes its nodes take (576 per node, ``struct xa_node``).
"""

from cpython.mem cimport PyMem_RawCalloc, PyMem_RawFree
from libc.stdint cimport uint64_t, uintptr_t
from libc.string cimport memset

cdef extern from "vswap_sync.h" nogil:
    int vswap_this_thread()
from vswapfast.vswap_account cimport vswap_account, vswap_account_bytes

XA_CHUNK_SHIFT = 6
XA_CHUNK_SIZE = 64
XA_NODE_SIZE = 576

_MAX_VALUE = (1 << 62) - 1


cdef class XArray:
    """An xarray of ints: ``store(index, value)``, ``load(index)``,
    ``erase(index)``; values are ints in ``0 .. 2**62 - 1``, kept as value
    entries (xa_mk_value).  Loads are lock-free (validated by the sequence
    count); stores and erases take xa_lock.  Thread-safe; ``close()`` frees
    the nodes (no call may be running on another thread then)."""

    cdef vxa xa
    cdef vxa_ctx ctx
    cdef vswap_account live
    cdef vswap_account cached
    cdef char st_space[65 * 64]
    cdef vxa_stats *st_slots        # 64 thread slots on cache lines of their own
    cdef bint closed

    def __cinit__(self):
        self.st_slots = <vxa_stats *>((<uintptr_t>self.st_space + 63) & ~(<uintptr_t>63))
        memset(self.st_slots, 0, 64 * sizeof(vxa_stats))
        vxa_init(&self.xa)
        vxa_ctx_init(&self.ctx, &self.live, &self.cached)

    def __dealloc__(self):
        self._close()

    cdef void _close(self) noexcept:
        if not self.closed:
            self.closed = True
            vxa_destroy(&self.xa, &self.ctx)
            vxa_ctx_destroy(&self.ctx)

    def close(self):
        """Free every node; later calls raise ValueError."""
        self._close()

    cdef int _check(self, index) except -1:
        if self.closed:
            raise ValueError("xarray is closed")
        if type(index) is not int:
            raise TypeError("index must be an int, not %s" % type(index).__name__)
        if not 0 <= index < (1 << 64):
            raise ValueError("index must be in 0 .. 2**64 - 1, not %d" % index)
        return 0

    def store(self, index, value):
        """xa_store(): store ``value`` at ``index``; the old value or None."""
        cdef uint64_t i
        cdef uintptr_t old = 0, e
        cdef int rc
        self._check(index)
        if type(value) is not int:
            raise TypeError("value must be an int, not %s" % type(value).__name__)
        if not 0 <= value <= _MAX_VALUE:
            raise ValueError("value must be in 0 .. 2**62 - 1, not %d" % value)
        i = index
        e = (<uintptr_t>value << 1) | 1
        with nogil:
            rc = vxa_store(&self.xa, &self.ctx, i, e, &old, self._st())
        if rc:
            raise MemoryError("no memory for an xarray node")
        return None if old == 0 else <object>(old >> 1)

    def erase(self, index):
        """xa_erase(): remove the value at ``index``; it or None."""
        cdef uint64_t i
        cdef uintptr_t old = 0
        self._check(index)
        i = index
        with nogil:
            vxa_store(&self.xa, &self.ctx, i, 0, &old, self._st())
        return None if old == 0 else <object>(old >> 1)

    def load(self, index):
        """xa_load(): the value at ``index`` or None, with no lock."""
        cdef uint64_t i
        cdef uintptr_t e
        self._check(index)
        i = index
        with nogil:
            e = vxa_load(&self.xa, i, self._st())
        return None if e == 0 else <object>(e >> 1)

    def empty(self):
        """xa_empty()."""
        if self.closed:
            raise ValueError("xarray is closed")
        return bool(vxa_empty(&self.xa))

    @property
    def nr_nodes(self):
        """Nodes in the tree now."""
        if self.closed:
            raise ValueError("xarray is closed")
        cdef long long n
        vxa_lock(&self.xa, NULL)
        n = vxa_count_nodes(self.xa.head)
        vxa_unlock(&self.xa)
        return n

    @property
    def height(self):
        """Levels of nodes (0: empty or a lone entry at index 0)."""
        if self.closed:
            raise ValueError("xarray is closed")
        cdef uintptr_t head
        cdef int h = 0
        vxa_lock(&self.xa, NULL)
        head = self.xa.head
        if (head & 3) == 2:
            h = (<vxa_node *>(head - 2)).shift // 6 + 1
        vxa_unlock(&self.xa)
        return h

    def node_bytes(self):
        """Bytes of the nodes in the tree (576 each), from the allocation
        counter."""
        return vswap_account_bytes(&self.live)

    def free_node_bytes(self):
        """Bytes of freed nodes kept for reuse (type-stable)."""
        return vswap_account_bytes(&self.cached)

    cdef inline vxa_stats *_st(self) noexcept nogil:
        return &self.st_slots[vswap_this_thread() & 63]

    def stats(self):
        """Counters: lockless_loads, load_retries, locked_loads, lock_acquisitions."""
        cdef int i
        out = dict.fromkeys(("lockless_loads", "load_retries", "locked_loads",
                             "lock_acquisitions"), 0)
        for i in range(64):
            out["lockless_loads"] += self.st_slots[i].lockless_loads
            out["load_retries"] += self.st_slots[i].load_retries
            out["locked_loads"] += self.st_slots[i].locked_loads
            out["lock_acquisitions"] += self.st_slots[i].lock_acquisitions
        return out

    def __repr__(self):
        if self.closed:
            return "<XArray closed core=compiled>"
        return "<XArray nodes=%d bytes=%d core=compiled>" % (self.nr_nodes, self.node_bytes())
