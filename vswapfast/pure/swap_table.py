"""The swap table model, pure-Python twin of vswapfast/swap_table.h.

Per cluster of 512 slots a ``struct swap_table`` of 512 words (4096 bytes,
mm/swap_table.h), allocated on the cluster's first use and freed when it
empties; ``struct swap_cluster_info`` (32 bytes in 6.18, 48 after phase IV
with ``extend_table`` and ``memcg_table``).  Words are written under
``ci->lock``; ``table_get()`` reads with no lock, validated by the
cluster's sequence count, which writers make odd while they install or
remove the table; freed tables go to a free list and are reused as tables
only (see swap_table.h for why this stands in for RCU).

Lock ordering: ci->lock -> ctx.lock (a free list).
"""

import threading

__all__ = ["CLUSTER", "SWAP_TABLE_SIZE", "MEMCG_TABLE_SIZE", "EXTEND_TABLE_SIZE",
           "CLUSTER_INFO_SIZE", "CLUSTER_EXT_SIZE", "TableCtx", "Cluster", "table_get"]

CLUSTER = 512
SWAP_TABLE_SIZE = 4096          # struct swap_table: atomic_long_t entries[512]
MEMCG_TABLE_SIZE = 1024         # struct swap_memcg_table: unsigned short id[512]
EXTEND_TABLE_SIZE = 2048        # unsigned int extend_table[512]
CLUSTER_INFO_SIZE = 32          # struct swap_cluster_info, 6.18
CLUSTER_EXT_SIZE = 16           # extend_table and memcg_table pointers (phase IV)
LOAD_MAX_RETRIES = 1000


class TableCtx:
    """One kind of per-cluster table: those in use, and a free list of those
    freed, kept while the design lives (counted at ``size`` bytes each)."""

    def __init__(self, size):
        self.lock = threading.Lock()
        self.size = size
        self.free = []
        self.live = 0
        self.cached = 0

    @property
    def live_bytes(self):
        return self.live * self.size

    @property
    def cached_bytes(self):
        return self.cached * self.size

    def reserve1(self):
        """A new table on the free list, allocated with no lock held."""
        t = [0] * CLUSTER
        with self.lock:
            self.free.append(t)
            self.cached += 1

    def get(self):
        """A zeroed table from the free list, or None when it is empty."""
        with self.lock:
            if not self.free:
                return None
            t = self.free.pop()
            self.cached -= 1
            self.live += 1
        for i in range(CLUSTER):
            t[i] = 0
        return t

    def put(self, t):
        """A table leaves its cluster for the free list."""
        if t is None:
            return
        with self.lock:
            self.free.append(t)
            self.live -= 1
            self.cached += 1

    def destroy(self):
        self.free = []
        self.live = self.cached = 0


class Cluster:
    """struct swap_cluster_info: lock, count, table; the read sequence
    count; phase IV's extend_table and memcg_table."""

    __slots__ = ("lock", "count", "table", "seq", "extend_table", "memcg_table")

    def __init__(self):
        self.lock = threading.Lock()
        self.count = 0
        self.table = None
        self.seq = 0
        self.extend_table = None
        self.memcg_table = None

    def install(self, tables):
        """swap_cluster_alloc_table() under ci->lock: False when the free
        list is empty (the caller reserves one with no lock and retries)."""
        if self.table is not None:
            return True
        t = tables.get()
        if t is None:
            return False
        self.seq += 1
        self.table = t
        self.seq += 1
        return True

    def release(self, tables):
        """swap_cluster_free_table() under ci->lock, the cluster empty."""
        t = self.table
        if t is None:
            return
        self.seq += 1
        self.table = None
        self.seq += 1
        tables.put(t)

    def get_locked(self, off):
        """__swap_table_get(), under ci->lock."""
        t = self.table
        return t[off] if t is not None else 0


def table_get(ci, off, st, lock_counter=None):
    """swap_table_get(): the word at ``off`` with no lock (0 without a
    table), validated by the cluster's sequence count; after
    LOAD_MAX_RETRIES failures under ci->lock (``lock_counter()`` counts it)."""
    for _ in range(LOAD_MAX_RETRIES):
        s1 = ci.seq
        if s1 & 1:
            if st is not None:
                st.load_retries += 1
            continue
        t = ci.table
        w = t[off] if t is not None else 0
        if ci.seq == s1:
            if st is not None:
                st.lockless_loads += 1
            return w
        if st is not None:
            st.load_retries += 1
    with ci.lock:
        if st is not None and lock_counter is not None:
            lock_counter()
        w = ci.get_locked(off)
    if st is not None:
        st.locked_loads += 1
    return w
