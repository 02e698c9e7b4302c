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

from vswapfast.errors import InvalidEntryError, SwapCacheError, SwapFullError
from vswapfast.pure.design_base import (BACKINGS, VALUE_LIMIT, DesignBase, int_arg,
                                        value_arg)
from vswapfast.pure.xarray import NEED_NODE, XA_NODE_SIZE, Xa, XaCtx, XaStats

__all__ = ["XarrayDesign", "BACKINGS"]

SWAPFILE_CLUSTER = 512
SWAP_ADDRESS_SPACE_SHIFT = 14
SWAP_ADDRESS_SPACE_PAGES = 1 << SWAP_ADDRESS_SPACE_SHIFT
SWAP_ADDRESS_SPACE_MASK = SWAP_ADDRESS_SPACE_PAGES - 1
SWAP_HAS_CACHE = 0x40
COUNT_CONTINUED = 0x80
SWAP_MAP_MAX = 0x3E
SWAP_COUNT_LIMIT = (1 << 31) - 1
CLUSTER_INFO_SIZE = 24
XARRAY_SIZE = 16
MAX_SLOTS = 1 << 32

_STRUCTURES = ("swap_map", "swap_cgroup", "zeromap", "cluster_info",
               "swap_cache_xarrays", "zswap_trees", "xa_node_swap_cache",
               "xa_node_zswap", "swap_cont", "xa_node_free")


def _folio_entry(folio):
    return folio << 2                  # a folio pointer: low bits 00


def _shadow_entry(shadow):
    return (shadow << 1) | 1           # xa_mk_value(shadow)


class XarrayDesign(DesignBase):
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

    # -- checks -----------------------------------------------------------
    def _check_slot(self, entry):
        """InvalidEntryError unless ``entry`` is an allocated slot (a racy
        read of swap_map, as the kernel's READ_ONCE checks)."""
        if entry <= 0:
            if entry == 0:
                raise InvalidEntryError(
                    "swap entry 0 is the device's header page, never allocated")
            raise InvalidEntryError("swap entry %d is negative; entries are unsigned" % entry)
        if entry >= self._nr_slots:
            raise InvalidEntryError("swap entry %d is beyond the device (nr_slots is %d)"
                                    % (entry, self._nr_slots))
        if not self._swap_map[entry]:
            raise InvalidEntryError("swap entry %d is not allocated (swap_map is 0)" % entry)

    def _cluster_lock(self, ci):
        self._cluster_locks[ci].acquire()
        self._cluster_locks_taken += 1

    # -- counts (swap_map and its continuation) --------------------------
    def _count_locked(self, entry):
        m = self._swap_map[entry]
        count = m & 0x3F
        if m & COUNT_CONTINUED:
            count += self._cont.load_locked(entry) >> 1
        return count

    def _set_count_locked(self, entry, count):
        """Write the count, spilling past SWAP_MAP_MAX into the continuation
        xarray (the kernel's add_swap_count_continuation pages).  Under the
        cluster lock; the cont xa_lock nests inside it.  False (nothing
        changed) when a node is needed: the caller drops the cluster lock,
        reserves one and retries."""
        m = self._swap_map[entry] & SWAP_HAS_CACHE
        cont = self._cont
        had = self._swap_map[entry] & COUNT_CONTINUED
        if count > SWAP_MAP_MAX:
            cont.lock(self._st)
            try:
                old = cont.store_locked(self._ctx_cont, entry, ((count - SWAP_MAP_MAX) << 1) | 1)
            finally:
                cont.unlock()
            if old == NEED_NODE:
                return False
            self._swap_map[entry] = m | COUNT_CONTINUED | SWAP_MAP_MAX
        else:
            if had:
                cont.lock(self._st)
                try:
                    cont.store_locked(self._ctx_cont, entry, 0)
                finally:
                    cont.unlock()
            self._swap_map[entry] = m | count
        return True

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
    def _alloc_slot(self):
        """cluster_alloc_swap_entry(), simplified: under the device lock
        (si->lock), scan clusters from the last one used for one with a free
        slot, then take its lock (ci->lock) and scan its swap_map."""
        with self._dev_lock:
            self._device_locks_taken += 1
            n = self._nr_clusters
            for k in range(n):
                ci = (self._next_cluster + k) % n
                first = ci * SWAPFILE_CLUSTER
                last = min(first + SWAPFILE_CLUSTER, self._nr_slots)
                cap = last - first - (1 if ci == 0 else 0)
                if self._cluster_count[ci] >= cap:
                    continue
                self._cluster_lock(ci)
                try:
                    for s in range(max(first, 1), last):
                        if not self._swap_map[s]:
                            self._swap_map[s] = SWAP_HAS_CACHE | 1
                            self._cluster_count[ci] += 1
                            self._used += 1
                            self._next_cluster = ci
                            return s
                finally:
                    self._cluster_locks[ci].release()
        return 0

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

    def folio_alloc_swap(self, folio, memcg=0):
        """folio_alloc_swap() + add_to_swap_cache() (mm/swapfile.c,
        mm/swap_state.c): a slot from the cluster allocator (device lock,
        then cluster lock), swap count 1 with SWAP_HAS_CACHE, the memcg in
        swap_cgroup, the folio stored in the swap-cache xarray under its
        xa_lock.  ``SwapFullError`` when no slot is left."""
        folio = value_arg(folio, "folio", 1, VALUE_LIMIT - 1)
        memcg = value_arg(memcg, "memcg", 0, 65535)
        self._enter()
        try:
            return self._folio_alloc_swap(folio, memcg)
        finally:
            self._exit()

    # -- swap cache -------------------------------------------------------
    def _cache_load(self, entry):
        self._check_slot(entry)
        return self._cache[entry >> SWAP_ADDRESS_SPACE_SHIFT].load(
            entry & SWAP_ADDRESS_SPACE_MASK, self._st)

    def swap_cache_get_folio(self, entry):
        """swap_cache_get_folio() / filemap_get_entry(): the cached folio or
        None; xa_load with no lock."""
        entry = self._entry_arg(entry)
        self._enter()
        try:
            e = self._cache_load(entry)
        finally:
            self._exit()
        return e >> 2 if e and not e & 1 else None

    def swap_cache_get_shadow(self, entry):
        """get_shadow_from_swap_cache(): the shadow or None; xa_load, no lock."""
        entry = self._entry_arg(entry)
        self._enter()
        try:
            e = self._cache_load(entry)
        finally:
            self._exit()
        return e >> 1 if e & 1 else None

    def swap_cache_add_folio(self, entry, folio):
        """swapcache_prepare() (SWAP_HAS_CACHE set under the cluster lock,
        -EEXIST -> SwapCacheError) then add_to_swap_cache() (xa_lock):
        returns the shadow replaced, or None."""
        entry = self._entry_arg(entry)
        folio = value_arg(folio, "folio", 1, VALUE_LIMIT - 1)
        self._enter()
        try:
            self._check_slot(entry)
            ci = entry // SWAPFILE_CLUSTER
            self._cluster_lock(ci)
            try:
                self._check_slot(entry)
                if self._swap_map[entry] & SWAP_HAS_CACHE:
                    raise SwapCacheError("swap entry %d already has a folio in the swap cache"
                                         % entry)
                self._swap_map[entry] |= SWAP_HAS_CACHE
            finally:
                self._cluster_locks[ci].release()
            old = self._cache[entry >> SWAP_ADDRESS_SPACE_SHIFT].store(
                self._ctx_cache, entry & SWAP_ADDRESS_SPACE_MASK, _folio_entry(folio), self._st)
        finally:
            self._exit()
        return old >> 1 if old & 1 else None

    def _cache_del(self, entry, folio, shadow):
        xa = self._cache[entry >> SWAP_ADDRESS_SPACE_SHIFT]
        xa.lock(self._st)
        try:
            index = entry & SWAP_ADDRESS_SPACE_MASK
            cur = xa.load_locked(index)
            if cur != _folio_entry(folio):
                raise SwapCacheError(
                    "folio %d is not the one in the swap cache of entry %d (%s)"
                    % (folio, entry, "folio %d" % (cur >> 2) if cur and not cur & 1
                       else "no folio"))
            xa.store_locked(self._ctx_cache, index, _shadow_entry(shadow))
        finally:
            xa.unlock()
        ci = entry // SWAPFILE_CLUSTER
        self._cluster_lock(ci)             # put_swap_folio(): drop SWAP_HAS_CACHE
        try:
            if self._swap_map[entry]:
                self._swap_map[entry] &= ~SWAP_HAS_CACHE & 0xFF
        finally:
            self._cluster_locks[ci].release()

    def swap_cache_del_folio(self, entry, folio, shadow=0):
        """__delete_from_swap_cache() under xa_lock (the folio replaced by
        its shadow), then put_swap_folio() clears SWAP_HAS_CACHE under the
        cluster lock.  ``SwapCacheError`` if ``folio`` is not the cached one."""
        entry = self._entry_arg(entry)
        folio = value_arg(folio, "folio", 1, VALUE_LIMIT - 1)
        shadow = value_arg(shadow, "shadow", 0, VALUE_LIMIT - 1)
        self._enter()
        try:
            self._check_slot(entry)
            self._cache_del(entry, folio, shadow)
        finally:
            self._exit()

    # -- zswap ------------------------------------------------------------
    def _zswap_store(self, entry, handle):
        self._zeromap[entry >> 3] &= ~(1 << (entry & 7)) & 0xFF  # swap_zeromap_folio_clear
        old = self._zswap[entry >> SWAP_ADDRESS_SPACE_SHIFT].store(
            self._ctx_zswap, entry, handle << 2, self._st)
        return old >> 2

    def _zswap_erase(self, entry):
        xa = self._zswap[entry >> SWAP_ADDRESS_SPACE_SHIFT]
        xa.lock(self._st)
        try:
            old = xa.store_locked(self._ctx_zswap, entry, 0)
        finally:
            xa.unlock()
        return old >> 2

    def zswap_entry_store(self, entry, handle):
        """zswap_store(): xa_store() into the entry's zswap tree under its
        xa_lock (the zeromap bit cleared first, as swap_writepage does);
        returns the handle replaced, or None."""
        entry = self._entry_arg(entry)
        handle = value_arg(handle, "handle", 1, VALUE_LIMIT - 1)
        self._enter()
        try:
            self._check_slot(entry)
            old = self._zswap_store(entry, handle)
        finally:
            self._exit()
        return old or None

    def zswap_entry_load(self, entry):
        """zswap_load(): xa_load() with no lock; the handle or None."""
        entry = self._entry_arg(entry)
        self._enter()
        try:
            self._check_slot(entry)
            e = self._zswap[entry >> SWAP_ADDRESS_SPACE_SHIFT].load(entry, self._st)
        finally:
            self._exit()
        return e >> 2 or None

    def zswap_entry_erase(self, entry):
        """zswap_invalidate(): xa_erase() under xa_lock; the handle or None."""
        entry = self._entry_arg(entry)
        self._enter()
        try:
            self._check_slot(entry)
            old = self._zswap_erase(entry)
        finally:
            self._exit()
        return old or None

    def zswap_empty(self):
        """True when no zswap tree holds an entry (xa_empty on each)."""
        self._enter()
        try:
            return all(xa.empty() for xa in self._zswap)
        finally:
            self._exit()

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

    def get_slot(self, entry):
        """The disk slot of an allocated entry: the entry itself (a
        lock-free read of swap_map)."""
        entry = self._entry_arg(entry)
        self._enter()
        try:
            self._check_slot(entry)
            self._st.lockless_loads += 1
        finally:
            self._exit()
        return entry

    # -- counts -----------------------------------------------------------
    def swap_duplicate(self, entry):
        """__swap_duplicate(): one more reference, under the cluster lock;
        returns the new count."""
        entry = self._entry_arg(entry)
        self._enter()
        try:
            self._check_slot(entry)
            ci = entry // SWAPFILE_CLUSTER
            while True:
                self._cluster_lock(ci)
                try:
                    self._check_slot(entry)
                    count = self._count_locked(entry) + 1
                    if count > SWAP_COUNT_LIMIT:
                        raise ValueError("swap count of entry %d would exceed 2**31 - 1" % entry)
                    done = self._set_count_locked(entry, count)
                finally:
                    self._cluster_locks[ci].release()
                if done:
                    break
                self._ctx_cont.reserve1()         # no lock held (xas_nomem)
        finally:
            self._exit()
        return count

    def swap_count(self, entry):
        """swp_swapcount(): the count, read under the cluster lock."""
        entry = self._entry_arg(entry)
        self._enter()
        try:
            self._check_slot(entry)
            ci = entry // SWAPFILE_CLUSTER
            self._cluster_lock(ci)
            try:
                self._check_slot(entry)
                return self._count_locked(entry)
            finally:
                self._cluster_locks[ci].release()
        finally:
            self._exit()

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

    def swap_free(self, entry):
        """swap_free() / __swap_entry_free(): drop one reference under the
        cluster lock; at zero the slot and all it holds are released."""
        entry = self._entry_arg(entry)
        self._enter()
        try:
            self._check_slot(entry)
            self._swap_free(entry)
        finally:
            self._exit()

    # -- loops ------------------------------------------------------------
    def _runs(self, m, batch, region_of):
        """Runs of consecutive entries under one lock (batch) or single ones."""
        i, n = 0, len(m)
        while i < n:
            j = i + 1
            if batch:
                r = region_of(m[i])
                while j < n and region_of(m[j]) == r:
                    j += 1
            yield i, j
            i = j

    def _store_many(self, em, hm, batch):
        """zswap_entry_store of each page (one xa_lock each, or one per run
        in the same tree with ``batch=True``); returns how many replaced a
        handle."""
        replaced = 0
        for i, j in self._runs(em, batch, lambda e: e >> SWAP_ADDRESS_SPACE_SHIFT):
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

    def _load_many(self, em, om, batch):
        """zswap_entry_load of each page, lock-free (``batch=True``: one
        xa_lock per run in the same tree, a range walk); ``out[i]`` gets the
        handle or 0.  Returns how many held one."""
        found = 0
        if not batch:
            for k in range(len(em)):
                e = em[k]
                h = self._zswap[e >> SWAP_ADDRESS_SPACE_SHIFT].load(e, self._st) >> 2
                om[k] = h
                found += h != 0
            return found
        for i, j in self._runs(em, True, lambda e: e >> SWAP_ADDRESS_SPACE_SHIFT):
            xa = self._zswap[em[i] >> SWAP_ADDRESS_SPACE_SHIFT]
            xa.lock(self._st)
            try:
                for k in range(i, j):
                    h = xa.load_locked(em[k]) >> 2
                    om[k] = h
                    found += h != 0
            finally:
                xa.unlock()
        return found

    def _erase_many(self, em, batch):
        """zswap_entry_erase of each page (one xa_lock each, or one per run
        with ``batch=True``); returns how many held a handle."""
        erased = 0
        for i, j in self._runs(em, batch, lambda e: e >> SWAP_ADDRESS_SPACE_SHIFT):
            xa = self._zswap[em[i] >> SWAP_ADDRESS_SPACE_SHIFT]
            xa.lock(self._st)
            try:
                for k in range(i, j):
                    if xa.store_locked(self._ctx_zswap, em[k], 0):
                        erased += 1
            finally:
                xa.unlock()
        return erased

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

    def metadata_bytes(self):
        """Bytes of metadata held now (static structures included)."""
        self._check_open()
        return sum(self._bytes()[0].values())

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
