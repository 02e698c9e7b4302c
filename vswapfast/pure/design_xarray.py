"""The ``xarray`` design, pure-Python twin of ``vswapfast._design_xarray``.

See the compiled module's header for the kernel sources followed (Linux
6.12 .. 6.17: zswap in per-64 MiB xarrays since 6.10, the zeromap since
6.12, until the swap table of 6.18), the layout and the lock ordering.  The
twin keeps the same structures and counts them at the compiled core's sizes:
swap_map 1 B, swap_cgroup 2 B (in 4-byte pairs) and the zeromap 1 bit per
slot, 24-byte ``struct swap_cluster_info`` per 512 slots, a 16-byte
``struct xarray`` per 64 MiB for the swap cache and one for zswap, and
576 bytes per xarray node (vswapfast.pure.xarray).

Lock ordering: device lock -> cluster lock -> xa_lock -> node free list.
"""

import array
import threading

from vswapfast.errors import SwapFullError
from vswapfast.pure.design_base import BACKINGS, int_arg
from vswapfast.pure.design_swap_map import (
    SWAP_ADDRESS_SPACE_MASK, SWAP_ADDRESS_SPACE_PAGES, SWAP_ADDRESS_SPACE_SHIFT,
    SWAPFILE_CLUSTER, SwapMapDesign, _folio_entry,
)
from vswapfast.pure.design_zswap_xarray import ZswapXarrays
from vswapfast.pure.xarray import NEED_NODE, XA_NODE_SIZE, Xa, XaCtx, XaStats

__all__ = ["XarrayDesign", "BACKINGS"]

CLUSTER_INFO_SIZE = 24
XARRAY_SIZE = 16
MAX_SLOTS = 1 << 32

_STRUCTURES = ("swap_map", "swap_cgroup", "zeromap", "cluster_info",
               "swap_cache_xarrays", "zswap_trees", "xa_node_swap_cache",
               "xa_node_zswap", "swap_cont", "xa_node_free")


class XarrayDesign(ZswapXarrays, SwapMapDesign):
    """Swap metadata from zswap's xarrays (6.10) to the swap table (6.18):
    ``swap_map``, ``swap_cgroup``, the zeromap, the swap cache and shadows
    in per-64 MiB xarrays, zswap entries in per-64 MiB xarrays.  Loads are
    lock-free; stores and erases take ``xa_lock``.  See docs/designs.md."""

    name = "xarray"

    def __init__(self, nr_slots):
        nr_slots = int_arg(nr_slots, "nr_slots")
        if not 1 <= nr_slots <= MAX_SLOTS:
            raise ValueError("nr_slots must be in 1 .. 2**32, not %d" % nr_slots)
        self._nr_slots = nr_slots
        self._nr_clusters = -(-nr_slots // SWAPFILE_CLUSTER)
        self._nr_regions = -(-nr_slots // SWAP_ADDRESS_SPACE_PAGES)
        # Static structures (swapon: vzalloc/kvcalloc/bitmap_zalloc).
        self._swap_map = bytearray(nr_slots)
        self._swap_cgroup = array.array("H", bytes(2 * nr_slots))
        self._zeromap = bytearray(-(-nr_slots // 64) * 8)
        self._cluster_count = [0] * self._nr_clusters
        self._cluster_locks = [threading.Lock() for _ in range(self._nr_clusters)]
        self._dev_lock = threading.Lock()
        self._next_cluster = 0
        self._cache = [Xa() for _ in range(self._nr_regions)]
        self._zswap = [Xa() for _ in range(self._nr_regions)]
        self._cont = Xa()
        self._ctx_cache = XaCtx()
        self._ctx_zswap = XaCtx()
        self._ctx_cont = XaCtx()
        self._st = XaStats()
        self._cluster_locks_taken = 0
        self._device_locks_taken = 0
        self._used = 0
        self._next_handle = 0
        self._life_init()

    # -- life -------------------------------------------------------------
    def _free(self):
        for xa in self._cache:
            xa.destroy(self._ctx_cache)
        for xa in self._zswap:
            xa.destroy(self._ctx_zswap)
        self._cont.destroy(self._ctx_cont)
        for ctx in (self._ctx_cache, self._ctx_zswap, self._ctx_cont):
            ctx.destroy()
        self._swap_map = self._swap_cgroup = self._zeromap = None
        self._cache = self._zswap = []
        self._used = 0

    # -- release ----------------------------------------------------------
    def _release_locked(self, entry):
        """The entry's count reached zero: release everything it holds, under
        the cluster lock (swap_entry_range_free: zswap_invalidate,
        clear_shadow_from_swap_cache, swap_cgroup_clear, the zeromap)."""
        region = entry >> SWAP_ADDRESS_SPACE_SHIFT
        for xa, ctx, index in ((self._zswap[region], self._ctx_zswap, entry),
                               (self._cache[region], self._ctx_cache,
                                entry & SWAP_ADDRESS_SPACE_MASK)):
            xa.lock(self._st)
            try:
                xa.store_locked(ctx, index, 0)
            finally:
                xa.unlock()
        self._swap_cgroup[entry] = 0
        self._zeromap[entry >> 3] &= ~(1 << (entry & 7)) & 0xFF
        self._swap_map[entry] = 0
        self._cluster_count[entry // SWAPFILE_CLUSTER] -= 1
        self._used -= 1

    # -- allocation -------------------------------------------------------
    def _folio_alloc_swap(self, folio, memcg):
        s = self._alloc_slot()
        if not s:
            raise SwapFullError("no free swap slot left (nr_slots is %d, %d used)"
                                % (self._nr_slots, self._used))
        self._swap_cgroup[s] = memcg          # swap_cgroup_record()
        # add_to_swap_cache(): xa_lock_irq
        self._cache[s >> SWAP_ADDRESS_SPACE_SHIFT].store(
            self._ctx_cache, s & SWAP_ADDRESS_SPACE_MASK, _folio_entry(folio), self._st)
        return s

    # -- zswap ------------------------------------------------------------
    def _zswap_store(self, entry, handle):
        self._zeromap[entry >> 3] &= ~(1 << (entry & 7)) & 0xFF  # swap_zeromap_folio_clear
        old = self._zswap[entry >> SWAP_ADDRESS_SPACE_SHIFT].store(
            self._ctx_zswap, entry, handle << 2, self._st)
        return old >> 2

    # -- zero pages, disk -------------------------------------------------
    def set_zero(self, entry):
        """swap_writepage() of a zero-filled folio: swap_zeromap_folio_set()
        (an atomic bit operation, no lock); any zswap entry is erased (the
        page has one backing)."""
        entry = self._entry_arg(entry)
        self._enter()
        try:
            self._check_slot(entry)
            self._zswap_erase(entry)
            self._zeromap[entry >> 3] |= 1 << (entry & 7)
        finally:
            self._exit()

    def is_zero(self, entry):
        """swap_zeromap_batch() of one entry: the zeromap bit (no lock)."""
        entry = self._entry_arg(entry)
        self._enter()
        try:
            self._check_slot(entry)
            self._st.lockless_loads += 1
            return bool(self._zeromap[entry >> 3] >> (entry & 7) & 1)
        finally:
            self._exit()

    def swap_writeout(self, entry):
        """__swap_writepage(): the page goes to its slot on disk; the zeromap
        bit is cleared and any zswap entry erased (xa_lock).  Returns the
        slot, which is the entry itself."""
        entry = self._entry_arg(entry)
        self._enter()
        try:
            self._check_slot(entry)
            self._zswap_erase(entry)
            self._zeromap[entry >> 3] &= ~(1 << (entry & 7)) & 0xFF
        finally:
            self._exit()
        return entry

    # -- release ----------------------------------------------------------
    def _swap_free(self, entry):
        ci = entry // SWAPFILE_CLUSTER
        self._cluster_lock(ci)
        try:
            self._check_slot(entry)
            count = self._count_locked(entry) - 1
            if count:
                self._set_count_locked(entry, count)
            else:
                self._set_count_locked(entry, 0)
                self._release_locked(entry)
        finally:
            self._cluster_locks[ci].release()

    # -- loops ------------------------------------------------------------
    def _store_many(self, em, hm, batch):
        """zswap_entry_store of each page (one xa_lock each, or one per run
        in the same tree with ``batch=True``); returns how many replaced a
        handle."""
        replaced = 0
        for i, j in self._runs(em, batch):
            xa = self._zswap[em[i] >> SWAP_ADDRESS_SPACE_SHIFT]
            xa.lock(self._st)
            try:
                k = i
                while k < j:
                    e = em[k]
                    self._zeromap[e >> 3] &= ~(1 << (e & 7)) & 0xFF
                    old = xa.store_locked(self._ctx_zswap, e, hm[k] << 2)
                    if old == NEED_NODE:
                        # xas_nomem: a node allocated with no lock held
                        xa.unlock()
                        try:
                            self._ctx_zswap.reserve1()
                        finally:
                            xa.lock(self._st)
                        continue
                    if old:
                        replaced += 1
                    k += 1
            finally:
                xa.unlock()
        return replaced

    def _swap_out_one(self, backing, memcg):
        """One page of swap_out_many: folio_alloc_swap, its backing (zswap
        store of a fresh handle, swap_writeout, or set_zero), then
        swap_cache_del_folio leaving a shadow; folio and shadow are the
        entry, which is returned."""
        s = self._alloc_slot()
        if not s:
            raise SwapFullError("no free swap slot left (nr_slots is %d, %d used)"
                                % (self._nr_slots, self._used))
        self._swap_cgroup[s] = memcg
        self._cache[s >> SWAP_ADDRESS_SPACE_SHIFT].store(
            self._ctx_cache, s & SWAP_ADDRESS_SPACE_MASK, _folio_entry(s), self._st)
        if backing == "zswap":
            self._zswap_store(s, self._new_handle())
        elif backing == "disk":
            self._zswap_erase(s)
            self._zeromap[s >> 3] &= ~(1 << (s & 7)) & 0xFF
        else:
            self._zswap_erase(s)
            self._zeromap[s >> 3] |= 1 << (s & 7)
        self._cache_del(s, s, s)
        return s

    # -- introspection ----------------------------------------------------
    def _bytes(self):
        if self._closed:
            return dict.fromkeys(_STRUCTURES, 0), dict.fromkeys(_STRUCTURES, 0)
        n = self._nr_slots
        b = {
            "swap_map": n,
            "swap_cgroup": -(-n // 2) * 4,
            "zeromap": -(-n // 64) * 8,
            "cluster_info": self._nr_clusters * CLUSTER_INFO_SIZE,
            "swap_cache_xarrays": self._nr_regions * XARRAY_SIZE,
            "zswap_trees": self._nr_regions * XARRAY_SIZE,
            "xa_node_swap_cache": self._ctx_cache.live_bytes,
            "xa_node_zswap": self._ctx_zswap.live_bytes,
            "swap_cont": self._ctx_cont.live_bytes,
            "xa_node_free": (self._ctx_cache.cached_bytes + self._ctx_zswap.cached_bytes
                             + self._ctx_cont.cached_bytes),
        }
        objs = {k: 1 for k in ("swap_map", "swap_cgroup", "zeromap", "cluster_info",
                               "swap_cache_xarrays", "zswap_trees")}
        for k in ("xa_node_swap_cache", "xa_node_zswap", "swap_cont", "xa_node_free"):
            objs[k] = b[k] // XA_NODE_SIZE
        return b, objs

    def stats(self):
        """Counters and byte counts; see docs/designs.md."""
        self._check_open()
        b, objs = self._bytes()
        st = self._st
        d = {
            "design": self.name,
            "core": "pure",
            "nr_slots": self._nr_slots,
            "used": self._used,
            "metadata_bytes": sum(b.values()),
            "metadata_objects": sum(objs.values()),
            "lock_acquisitions": (st.lock_acquisitions + self._cluster_locks_taken
                                  + self._device_locks_taken),
            "xa_lock_acquisitions": st.lock_acquisitions,
            "cluster_lock_acquisitions": self._cluster_locks_taken,
            "device_lock_acquisitions": self._device_locks_taken,
            "lockless_loads": st.lockless_loads,
            "load_retries": st.load_retries,
            "locked_loads": st.locked_loads,
        }
        for k, v in b.items():
            d["bytes_" + k] = v
        d["bytes_xa_node"] = b["xa_node_swap_cache"] + b["xa_node_zswap"]
        return d
