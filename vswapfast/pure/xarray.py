"""The xarray model, pure-Python twin of vswapfast/xarray.h.

A tree of 64-slot nodes (XA_CHUNK_SHIFT 6, include/linux/xarray.h) grown
from index 0 as indices grow (xas_expand), nodes freed when empty
(xas_delete_node) and the tree shrunk when its top holds only slot 0
(xas_shrink); a lone entry at index 0 lives in the head.  Every node counts
576 bytes, ``sizeof(struct xa_node)`` on x86-64, as the compiled model
allocates it.

Entries are non-zero ints that are not internal entries (``e & 3 != 2``);
node references in slots are ``_Node`` objects.  Stores and erases hold
``xa_lock``; loads take no lock and are validated with the xarray's sequence
count, retried when a writer ran meanwhile (see xarray.h for why this is
the user-space stand-in for RCU).  Freed nodes go to the ctx's free list
and are reused as nodes only.

Lock ordering: xa_lock -> ctx.lock (the node free list).
"""

import threading

__all__ = ["XA_CHUNK_SHIFT", "XA_CHUNK_SIZE", "XA_NODE_SIZE", "XaCtx", "Xa", "XArray"]

XA_CHUNK_SHIFT = 6
XA_CHUNK_SIZE = 64
XA_CHUNK_MASK = XA_CHUNK_SIZE - 1
XA_NODE_SIZE = 576
XA_MAX_SHIFT = 60
LOAD_MAX_RETRIES = 1000
#: store_locked() needs a node and the free list is empty (VXA_EAGAIN).
NEED_NODE = -1


class _Node:
    """struct xa_node: shift, offset, count, nr_values, parent, slots[64]."""

    __slots__ = ("shift", "offset", "count", "nr_values", "parent", "slots")

    def __init__(self):
        self.slots = [0] * XA_CHUNK_SIZE


class XaStats:
    """Counters of the xarray operations of one design."""

    __slots__ = ("lockless_loads", "load_retries", "locked_loads", "lock_acquisitions")

    def __init__(self):
        self.lockless_loads = 0
        self.load_retries = 0
        self.locked_loads = 0
        self.lock_acquisitions = 0


class XaCtx:
    """The nodes of a family of xarrays: counts and the free list."""

    def __init__(self):
        self.lock = threading.Lock()
        self.free = []
        self.live_nodes = 0
        self.cached_nodes = 0

    @property
    def live_bytes(self):
        return self.live_nodes * XA_NODE_SIZE

    @property
    def cached_bytes(self):
        return self.cached_nodes * XA_NODE_SIZE

    def node_alloc(self, shift, parent, offset):
        """xas_alloc() under xa_lock: a node from the free list only (None
        when it is empty; see reserve1)."""
        with self.lock:
            if not self.free:
                return None
            n = self.free.pop()
            self.cached_nodes -= 1
            for i in range(XA_CHUNK_SIZE):
                n.slots[i] = 0
            self.live_nodes += 1
        n.shift = shift
        n.offset = offset
        n.count = 0
        n.nr_values = 0
        n.parent = parent
        return n

    def reserve1(self):
        """xas_nomem(): one new node on the free list, with no lock held."""
        n = _Node()
        with self.lock:
            self.free.append(n)
            self.cached_nodes += 1

    def node_free(self, n):
        """xa_node_free(): to the free list, still a node."""
        n.parent = None
        with self.lock:
            self.free.append(n)
            self.live_nodes -= 1
            self.cached_nodes += 1

    def destroy(self):
        with self.lock:
            self.free.clear()
            self.cached_nodes = 0


def _max_index(head):
    if not isinstance(head, _Node):
        return 0
    return (1 << (head.shift + XA_CHUNK_SHIFT)) - 1


class Xa:
    """struct xarray: xa_lock, the read sequence count, xa_head."""

    __slots__ = ("xa_lock", "seq", "head")

    def __init__(self):
        self.xa_lock = threading.Lock()
        self.seq = 0
        self.head = 0

    def lock(self, st):
        """xa_lock(), counted in ``st``."""
        self.xa_lock.acquire()
        if st is not None:
            st.lock_acquisitions += 1

    def unlock(self):
        self.xa_lock.release()

    # -- under xa_lock --------------------------------------------------
    def _shrink(self, ctx):
        """xas_shrink()."""
        head = self.head
        while isinstance(head, _Node):
            n = head
            if n.count != 1:
                break
            e = n.slots[0]
            if not e:
                break
            if not isinstance(e, _Node) and n.shift:
                break
            self.head = e
            n.count = 0
            n.nr_values = 0
            n.slots[0] = 0
            ctx.node_free(n)
            if not isinstance(e, _Node):
                break
            e.parent = None
            head = e

    def _delete_node(self, ctx, n):
        """xas_delete_node()."""
        while n.count == 0:
            parent = n.parent
            offset = n.offset
            ctx.node_free(n)
            if parent is None:
                self.head = 0
                return
            parent.slots[offset] = 0
            parent.count -= 1
            n = parent
        if n.parent is None:
            self._shrink(ctx)

    def store(self, ctx, index, entry, st):
        """xa_store() / xa_erase(): under xa_lock, retaken after allocating
        a node with no lock held (xas_nomem).  The old entry (0 if none)."""
        while True:
            self.lock(st)
            try:
                old = self.store_locked(ctx, index, entry)
            finally:
                self.unlock()
            if old != NEED_NODE:
                return old
            ctx.reserve1()

    def store_locked(self, ctx, index, entry):
        """__xa_store() / __xa_erase() (entry 0): the old entry (0 if none),
        or NEED_NODE (tree unchanged) when the free list had no node: the
        caller drops its locks, calls ctx.reserve1() and retries.  The
        caller holds xa_lock."""
        head = self.head
        if not entry:
            if not isinstance(head, _Node):
                if index == 0 and head:
                    self.seq += 1
                    self.head = 0
                    self.seq += 1
                    return head
                return 0
            if index > _max_index(head):
                return 0
            n = head
            while True:
                off = (index >> n.shift) & XA_CHUNK_MASK
                e = n.slots[off]
                if not e:
                    return 0
                if not n.shift:
                    break
                n = e
            self.seq += 1
            n.slots[off] = 0
            n.count -= 1
            if e & 1:
                n.nr_values -= 1
            self._delete_node(ctx, n)
            self.seq += 1
            return e

        self.seq += 1
        try:
            if not isinstance(head, _Node) and index == 0:
                self.head = entry
                return head
            if not head:
                shift = 0
                while shift < XA_MAX_SHIFT and (index >> shift) >= XA_CHUNK_SIZE:
                    shift += XA_CHUNK_SHIFT
                top = ctx.node_alloc(shift, None, 0)
                if top is None:
                    return NEED_NODE
                head = self.head = top
            while index > _max_index(head):
                shift = head.shift + XA_CHUNK_SHIFT if isinstance(head, _Node) else 0
                top = ctx.node_alloc(shift, None, 0)
                if top is None:
                    # the nodes added above the old head only carry it
                    self._shrink(ctx)
                    return NEED_NODE
                top.slots[0] = head
                top.count = 1
                if isinstance(head, _Node):
                    head.parent = top
                    head.offset = 0
                elif head & 1:
                    top.nr_values = 1
                head = self.head = top
            n = head
            while n.shift:
                off = (index >> n.shift) & XA_CHUNK_MASK
                e = n.slots[off]
                if not e:
                    e = ctx.node_alloc(n.shift - XA_CHUNK_SHIFT, n, off)
                    if e is None:
                        if n.count == 0:
                            self._delete_node(ctx, n)
                        elif n.parent is None:
                            self._shrink(ctx)
                        return NEED_NODE
                    n.slots[off] = e
                    n.count += 1
                n = e
            off = index & XA_CHUNK_MASK
            old = n.slots[off]
            n.slots[off] = entry
            if not old:
                n.count += 1
            n.nr_values += (entry & 1) - (old & 1)
            return old
        finally:
            self.seq += 1

    # -- lock-free ------------------------------------------------------
    def _walk(self, index):
        e = self.head
        if not isinstance(e, _Node):
            return e if index == 0 else 0
        if index >> (e.shift + XA_CHUNK_SHIFT):
            return 0
        for _ in range(XA_MAX_SHIFT // XA_CHUNK_SHIFT + 2):
            n = e
            e = n.slots[(index >> n.shift) & XA_CHUNK_MASK]
            if not isinstance(e, _Node):
                return e
            if not n.shift:
                return 0
        return 0

    def load(self, index, st):
        """xa_load(): the entry at index (0 if none), with no lock;
        validated by the sequence count, retried on change."""
        for _ in range(LOAD_MAX_RETRIES):
            s1 = self.seq
            if s1 & 1:
                if st is not None:
                    st.load_retries += 1
                continue
            e = self._walk(index)
            if self.seq == s1:
                if st is not None:
                    st.lockless_loads += 1
                return e
            if st is not None:
                st.load_retries += 1
        self.lock(st)
        try:
            e = self._walk(index)
        finally:
            self.unlock()
        if st is not None:
            st.locked_loads += 1
        return e

    def load_locked(self, index):
        return self._walk(index)

    def empty(self):
        """xa_empty()."""
        return not self.head

    def destroy(self, ctx):
        """xa_destroy(): every node of the tree uncounted (no one may use
        the xarray any more)."""
        ctx.live_nodes -= self.count_nodes()
        self.head = 0

    def count_nodes(self):
        def count(e):
            if not isinstance(e, _Node):
                return 0
            total = 1
            if e.shift:
                for s in e.slots:
                    total += count(s)
            return total
        return count(self.head)

    def height(self):
        return self.head.shift // XA_CHUNK_SHIFT + 1 if isinstance(self.head, _Node) else 0


_MAX_VALUE = (1 << 62) - 1


class XArray:
    """One xarray of ints, the twin of ``vswapfast._xarray.XArray``."""

    def __init__(self):
        self._xa = Xa()
        self._ctx = XaCtx()
        self._st = XaStats()
        self._closed = False

    def close(self):
        """Free every node; later calls raise ValueError."""
        if not self._closed:
            self._closed = True
            self._xa.destroy(self._ctx)
            self._ctx.destroy()

    def _check(self, index):
        if self._closed:
            raise ValueError("xarray is closed")
        if type(index) is not int:
            raise TypeError("index must be an int, not %s" % type(index).__name__)
        if not 0 <= index < (1 << 64):
            raise ValueError("index must be in 0 .. 2**64 - 1, not %d" % index)

    def store(self, index, value):
        """xa_store(): store ``value`` at ``index``; the old value or None."""
        self._check(index)
        if type(value) is not int:
            raise TypeError("value must be an int, not %s" % type(value).__name__)
        if not 0 <= value <= _MAX_VALUE:
            raise ValueError("value must be in 0 .. 2**62 - 1, not %d" % value)
        old = self._xa.store(self._ctx, index, (value << 1) | 1, self._st)
        return None if old == 0 else old >> 1

    def erase(self, index):
        """xa_erase(): remove the value at ``index``; it or None."""
        self._check(index)
        old = self._xa.store(self._ctx, index, 0, self._st)
        return None if old == 0 else old >> 1

    def load(self, index):
        """xa_load(): the value at ``index`` or None, with no lock."""
        self._check(index)
        e = self._xa.load(index, self._st)
        return None if e == 0 else e >> 1

    def empty(self):
        if self._closed:
            raise ValueError("xarray is closed")
        return self._xa.empty()

    @property
    def nr_nodes(self):
        if self._closed:
            raise ValueError("xarray is closed")
        with self._xa.xa_lock:
            return self._xa.count_nodes()

    @property
    def height(self):
        if self._closed:
            raise ValueError("xarray is closed")
        with self._xa.xa_lock:
            return self._xa.height()

    def node_bytes(self):
        return self._ctx.live_bytes

    def free_node_bytes(self):
        return self._ctx.cached_bytes

    def stats(self):
        st = self._st
        return {
            "lockless_loads": st.lockless_loads,
            "load_retries": st.load_retries,
            "locked_loads": st.locked_loads,
            "lock_acquisitions": st.lock_acquisitions,
        }

    def __repr__(self):
        if self._closed:
            return "<XArray closed core=pure>"
        return "<XArray nodes=%d bytes=%d core=pure>" % (self.nr_nodes, self.node_bytes())
