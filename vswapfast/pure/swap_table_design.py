"""The two swap-table designs, pure-Python twin of
``vswapfast._swap_table_design``: one implementation whose ``phase`` (1, or
4 for phases III-IV) picks the structures.  See that module and the design
modules (``vswapfast._design_swap_table_p1``, ``vswapfast._design_swap_table``)
for the kernel sources followed; the twin keeps the same structures and
counts them at the compiled core's sizes.

Lock ordering: device lock -> ci->lock -> xa_lock -> a free list's lock.
"""

import array
import threading

from vswapfast.errors import InvalidEntryError, SwapCacheError, SwapFullError
from vswapfast.pure.design_base import (BACKINGS, VALUE_LIMIT, DesignBase, int_arg,
                                        value_arg)
from vswapfast.pure.swap_table import (CLUSTER, CLUSTER_EXT_SIZE, CLUSTER_INFO_SIZE,
                                       EXTEND_TABLE_SIZE, MEMCG_TABLE_SIZE, SWAP_TABLE_SIZE,
                                       Cluster, TableCtx, table_get)
from vswapfast.pure.design_zswap_xarray import ZswapXarrays
from vswapfast.pure.xarray import NEED_NODE, XA_NODE_SIZE, Xa, XaCtx, XaStats

__all__ = ["SwapTableBase", "BACKINGS"]

SWAP_ADDRESS_SPACE_SHIFT = 14
SWAP_ADDRESS_SPACE_PAGES = 1 << SWAP_ADDRESS_SPACE_SHIFT
SWAP_HAS_CACHE = 0x40
COUNT_CONTINUED = 0x80
SWAP_MAP_MAX = 0x3E
SWAP_COUNT_LIMIT = (1 << 31) - 1
XARRAY_SIZE = 16
MAX_SLOTS = 1 << 32
# mm/swap_table.h after phase IV, 64-bit
COUNT_SHIFT = 60
COUNT_MAX = 15
COUNT_MASK = 0xF << COUNT_SHIFT
ZERO = 1 << 59
FLAGS_MASK = 0x1F << 59

_STRUCTURES = {
    1: ("swap_map", "swap_cgroup", "zeromap", "cluster_info", "swap_table",
        "zswap_trees", "xa_node_zswap", "swap_cont", "swap_table_free", "xa_node_free"),
    4: ("cluster_info", "swap_table", "memcg_table", "extend_table", "zswap_trees",
        "xa_node_zswap", "swap_table_free", "xa_node_free"),
}


class SwapTableBase(ZswapXarrays, DesignBase):
    """The swap-table designs' twin core; a design's class sets ``name`` and
    ``phase`` (1: phase I; 4: after phases III-IV).  See docs/designs.md."""

    name = None
    phase = 0

    def __init__(self, nr_slots):
        if self.phase not in (1, 4):
            raise TypeError("SwapTableBase is the core of SwapTableP1Design and SwapTableDesign;"
                            " use one of them")
        nr_slots = int_arg(nr_slots, "nr_slots")
        if not 1 <= nr_slots <= MAX_SLOTS:
            raise ValueError("nr_slots must be in 1 .. 2**32, not %d" % nr_slots)
        self._p1 = self.phase == 1
        self._nr_slots = nr_slots
        self._nr_clusters = -(-nr_slots // CLUSTER)
        self._nr_regions = -(-nr_slots // SWAP_ADDRESS_SPACE_PAGES)
        self._clusters = [Cluster() for _ in range(self._nr_clusters)]
        if self._p1:
            # swapon: vzalloc'd swap_map, swap_cgroup, bitmap_zalloc'd zeromap
            self._swap_map = bytearray(nr_slots)
            self._swap_cgroup = array.array("H", bytes(2 * nr_slots))
            self._zeromap = bytearray(-(-nr_slots // 64) * 8)
        self._tables = TableCtx(SWAP_TABLE_SIZE)
        self._memcg_tables = TableCtx(MEMCG_TABLE_SIZE)
        self._extend_tables = TableCtx(EXTEND_TABLE_SIZE)
        self._dev_lock = threading.Lock()
        self._next_cluster = 0
        self._zswap = [Xa() for _ in range(self._nr_regions)]
        self._cont = Xa()
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
        for xa in self._zswap:
            xa.destroy(self._ctx_zswap)
        self._cont.destroy(self._ctx_cont)
        for ctx in (self._ctx_zswap, self._ctx_cont, self._tables, self._memcg_tables,
                    self._extend_tables):
            ctx.destroy()
        self._clusters = []
        self._zswap = []
        self._swap_map = self._swap_cgroup = self._zeromap = None
        self._used = 0

    # -- checks -----------------------------------------------------------
    def _used_locked(self, entry):
        """Is the slot allocated?  Under ci->lock (or racy, as READ_ONCE)."""
        if self._p1:
            return self._swap_map[entry] != 0
        ci = self._clusters[entry // CLUSTER]
        return ci.get_locked(entry % CLUSTER) >> COUNT_SHIFT != 0

    def _check_slot(self, entry):
        """InvalidEntryError unless ``entry`` is an allocated slot (a racy
        read: swap_map, or an uncounted lock-free swap_table_get())."""
        if entry <= 0:
            if entry == 0:
                raise InvalidEntryError(
                    "swap entry 0 is the device's header page, never allocated")
            raise InvalidEntryError("swap entry %d is negative; entries are unsigned" % entry)
        if entry >= self._nr_slots:
            raise InvalidEntryError("swap entry %d is beyond the device (nr_slots is %d)"
                                    % (entry, self._nr_slots))
        if self._p1:
            if not self._swap_map[entry]:
                raise InvalidEntryError("swap entry %d is not allocated (swap_map is 0)" % entry)
        elif not table_get(self._clusters[entry // CLUSTER], entry % CLUSTER, None) >> COUNT_SHIFT:
            raise InvalidEntryError(
                "swap entry %d is not allocated (its swap table count is 0)" % entry)

    def _lock(self, ci):
        ci.lock.acquire()
        self._cluster_locks_taken += 1

    def _count_lock(self):
        self._cluster_locks_taken += 1

    def _get(self, entry, st):
        """swap_table_get() with no lock."""
        return table_get(self._clusters[entry // CLUSTER], entry % CLUSTER, st,
                         self._count_lock)

    # -- the zero bit -------------------------------------------------------
    def _zero_clear(self, entry):
        """swap_zeromap_folio_clear() (phase 1, atomic) or
        __swap_table_clear_zero() under ci->lock when Z is seen set."""
        if self._p1:
            self._zeromap[entry >> 3] &= ~(1 << (entry & 7)) & 0xFF
            return
        if not self._get(entry, None) & ZERO:
            return
        ci = self._clusters[entry // CLUSTER]
        self._lock(ci)
        try:
            off = entry % CLUSTER
            w = ci.get_locked(off)
            if w & ZERO:
                ci.table[off] = w & ~ZERO
        finally:
            ci.lock.release()

    def _zero_set(self, entry):
        if self._p1:
            self._zeromap[entry >> 3] |= 1 << (entry & 7)
            return
        ci = self._clusters[entry // CLUSTER]
        self._lock(ci)
        try:
            off = entry % CLUSTER
            w = ci.get_locked(off)
            if w >> COUNT_SHIFT:
                ci.table[off] = w | ZERO
        finally:
            ci.lock.release()

    # -- counts -----------------------------------------------------------
    def _count_locked(self, entry):
        if self._p1:
            m = self._swap_map[entry]
            count = m & 0x3F
            if m & COUNT_CONTINUED:
                count += self._cont.load_locked(entry) >> 1
            return count
        ci = self._clusters[entry // CLUSTER]
        count = ci.get_locked(entry % CLUSTER) >> COUNT_SHIFT
        if count == COUNT_MAX:
            count = ci.extend_table[entry % CLUSTER]
        return count

    def _set_count_locked(self, entry, count):
        """Write the count under ci->lock; False (nothing changed) when a
        continuation node or an extend_table is needed."""
        if not self._p1:
            return self._set_count4_locked(entry, count)
        m = self._swap_map[entry] & SWAP_HAS_CACHE
        had = self._swap_map[entry] & COUNT_CONTINUED
        cont = self._cont
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

    def _set_count4_locked(self, entry, count):
        """swap_dup_entry_locked / swap_put_entry_locked: the word's count,
        the extend_table's from SWP_TB_COUNT_MAX on."""
        ci = self._clusters[entry // CLUSTER]
        off = entry % CLUSTER
        w = ci.get_locked(off)
        had = w >> COUNT_SHIFT == COUNT_MAX
        if count >= COUNT_MAX:
            if ci.extend_table is None:
                ci.extend_table = self._extend_tables.get()
                if ci.extend_table is None:
                    return False
            ci.extend_table[off] = count
            count = COUNT_MAX
        ci.table[off] = (w & ~COUNT_MASK) | (count << COUNT_SHIFT)
        if had and count < COUNT_MAX:
            ci.extend_table[off] = 0
            if not any(ci.extend_table):            # swap_extend_table_try_free()
                self._extend_tables.put(ci.extend_table)
                ci.extend_table = None
        return True

    def _reserve_for_count(self):
        if self._p1:
            self._ctx_cont.reserve1()
        else:
            self._extend_tables.reserve1()

    # -- zswap ------------------------------------------------------------
    def _zswap_store(self, entry, handle):
        self._zero_clear(entry)
        old = self._zswap[entry >> SWAP_ADDRESS_SPACE_SHIFT].store(
            self._ctx_zswap, entry, handle << 2, self._st)
        return old >> 2

    # -- release, allocation ------------------------------------------------
    def _release_locked(self, entry):
        """The count reached zero: release everything under ci->lock; the
        cluster's tables go when it empties (swap_cluster_free_table)."""
        ci = self._clusters[entry // CLUSTER]
        off = entry % CLUSTER
        self._zswap_erase(entry)
        ci.table[off] = 0
        if self._p1:
            self._swap_cgroup[entry] = 0
            self._zeromap[entry >> 3] &= ~(1 << (entry & 7)) & 0xFF
            self._swap_map[entry] = 0
        else:
            ci.memcg_table[off] = 0
        ci.count -= 1
        self._used -= 1
        if ci.count == 0:
            ci.release(self._tables)
            if not self._p1:
                self._memcg_tables.put(ci.memcg_table)
                ci.memcg_table = None
                self._extend_tables.put(ci.extend_table)
                ci.extend_table = None

    def _swap_free(self, entry):
        ci = self._clusters[entry // CLUSTER]
        self._lock(ci)
        try:
            if not self._used_locked(entry):
                return False
            count = self._count_locked(entry) - 1
            self._set_count_locked(entry, count)    # lowering never allocates
            if count == 0:
                self._release_locked(entry)
            return True
        finally:
            ci.lock.release()

    def _cluster_prepare(self, c):
        """Under ci->lock: the cluster's tables for its first slot; None, or
        the free list found empty."""
        ci = self._clusters[c]
        if not self._p1 and ci.memcg_table is None:
            ci.memcg_table = self._memcg_tables.get()
            if ci.memcg_table is None:
                return self._memcg_tables
        if not ci.install(self._tables):
            if not self._p1 and ci.count == 0:
                self._memcg_tables.put(ci.memcg_table)
                ci.memcg_table = None
            return self._tables
        return None

    def _alloc_slot_once(self, folio, memcg):
        """cluster_alloc_swap_entry() + __swap_cache_add_folio(), simplified
        (see the compiled core): (slot or 0, free list to refill or None)."""
        with self._dev_lock:
            self._device_locks_taken += 1
            n = self._nr_clusters
            for k in range(n):
                c = (self._next_cluster + k) % n
                first = c * CLUSTER
                last = min(first + CLUSTER, self._nr_slots)
                cap = last - first - (1 if c == 0 else 0)
                ci = self._clusters[c]
                if ci.count >= cap:
                    continue
                self._lock(ci)
                try:
                    need = self._cluster_prepare(c)
                    if need is not None:
                        return 0, need
                    for s in range(max(first, 1), last):
                        if not self._used_locked(s):
                            f = folio or s
                            if self._p1:
                                self._swap_map[s] = SWAP_HAS_CACHE | 1
                                ci.table[s % CLUSTER] = f << 2
                            else:
                                ci.table[s % CLUSTER] = (1 << COUNT_SHIFT) | (f << 2) | 2
                                ci.memcg_table[s % CLUSTER] = memcg
                            ci.count += 1
                            self._used += 1
                            self._next_cluster = c
                            return s, None
                finally:
                    ci.lock.release()
        return 0, None

    def _alloc_slot(self, folio, memcg):
        while True:
            s, need = self._alloc_slot_once(folio, memcg)
            if s:
                if self._p1:
                    self._swap_cgroup[s] = memcg        # swap_cgroup_record()
                return s
            if need is None:
                raise SwapFullError("no free swap slot left (nr_slots is %d, %d used)"
                                    % (self._nr_slots, self._used))
            need.reserve1()                             # no lock held

    def folio_alloc_swap(self, folio, memcg=0):
        """folio_alloc_swap(): a slot from the cluster allocator (device
        lock, then the cluster lock, under which the cluster's tables are
        set up on first use and the folio goes into the word), count 1, the
        memcg recorded.  ``SwapFullError`` when no slot is left."""
        folio = value_arg(folio, "folio", 1, VALUE_LIMIT - 1)
        memcg = value_arg(memcg, "memcg", 0, 65535)
        self._enter()
        try:
            return self._alloc_slot(folio, memcg)
        finally:
            self._exit()

    # -- swap cache -------------------------------------------------------
    def _cache_entry(self, entry):
        self._check_slot(entry)
        w = self._get(entry, self._st)
        return w if self._p1 else w & ~FLAGS_MASK

    def swap_cache_get_folio(self, entry):
        """swap_cache_get_folio(): swap_table_get() with no lock; the cached
        folio or None."""
        entry = self._entry_arg(entry)
        self._enter()
        try:
            e = self._cache_entry(entry)
        finally:
            self._exit()
        return e >> 2 if e and not e & 1 else None

    def swap_cache_get_shadow(self, entry):
        """swap_cache_get_shadow(): swap_table_get() with no lock; the
        shadow or None."""
        entry = self._entry_arg(entry)
        self._enter()
        try:
            e = self._cache_entry(entry)
        finally:
            self._exit()
        return e >> 1 if e & 1 else None

    def _cache_add(self, entry, folio):
        ci = self._clusters[entry // CLUSTER]
        off = entry % CLUSTER
        self._lock(ci)
        try:
            self._check_slot(entry)
            if self._p1:
                if self._swap_map[entry] & SWAP_HAS_CACHE:
                    raise SwapCacheError("swap entry %d already has a folio in the swap cache"
                                         % entry)
                self._swap_map[entry] |= SWAP_HAS_CACHE     # swapcache_prepare()
            else:
                w = ci.get_locked(off)
                if w & 3 == 2:
                    raise SwapCacheError("swap entry %d already has a folio in the swap cache"
                                         % entry)
                ci.table[off] = (w & FLAGS_MASK) | (folio << 2) | 2
                return w & ~FLAGS_MASK
        finally:
            ci.lock.release()
        self._lock(ci)                                      # swap_cache_add_folio()
        try:
            old = ci.get_locked(off)
            ci.table[off] = folio << 2
        finally:
            ci.lock.release()
        return old

    def swap_cache_add_folio(self, entry, folio):
        """swapcache_prepare() + swap_cache_add_folio() under the cluster
        lock (-EEXIST -> SwapCacheError): returns the shadow replaced, or
        None."""
        entry = self._entry_arg(entry)
        folio = value_arg(folio, "folio", 1, VALUE_LIMIT - 1)
        self._enter()
        try:
            self._check_slot(entry)
            old = self._cache_add(entry, folio)
        finally:
            self._exit()
        return old >> 1 if old & 1 else None

    def _cache_del(self, entry, folio, shadow):
        ci = self._clusters[entry // CLUSTER]
        off = entry % CLUSTER
        self._lock(ci)
        try:
            w = ci.get_locked(off) if self._used_locked(entry) else 0
            flags = 0 if self._p1 else w & FLAGS_MASK
            cur = w & ~flags
            if cur != (folio << 2 | (0 if self._p1 else 2)):
                raise SwapCacheError(
                    "folio %d is not the one in the swap cache of entry %d (%s)"
                    % (folio, entry, "folio %d" % (cur >> 2) if cur and not cur & 1
                       else "no folio"))
            ci.table[off] = flags | (shadow << 1) | 1
            if self._p1:
                self._swap_map[entry] &= ~SWAP_HAS_CACHE & 0xFF
        finally:
            ci.lock.release()

    def swap_cache_del_folio(self, entry, folio, shadow=0):
        """swap_cache_del_folio(): under the cluster lock the folio's word
        becomes its shadow.  ``SwapCacheError`` if ``folio`` is not the
        cached one."""
        entry = self._entry_arg(entry)
        folio = value_arg(folio, "folio", 1, VALUE_LIMIT - 1)
        shadow = value_arg(shadow, "shadow", 0, VALUE_LIMIT - 1)
        self._enter()
        try:
            self._check_slot(entry)
            self._cache_del(entry, folio, shadow)
        finally:
            self._exit()

    # -- zero pages, disk -------------------------------------------------
    def set_zero(self, entry):
        """swap_writeout() of a zero-filled folio: the zero bit set; any
        zswap entry erased."""
        entry = self._entry_arg(entry)
        self._enter()
        try:
            self._check_slot(entry)
            self._zswap_erase(entry)
            self._zero_set(entry)
        finally:
            self._exit()

    def is_zero(self, entry):
        """The zero bit, read with no lock."""
        entry = self._entry_arg(entry)
        self._enter()
        try:
            self._check_slot(entry)
            if self._p1:
                self._st.lockless_loads += 1
                return bool(self._zeromap[entry >> 3] >> (entry & 7) & 1)
            return bool(self._get(entry, self._st) & ZERO)
        finally:
            self._exit()

    def swap_writeout(self, entry):
        """swap_writeout(): the zero bit cleared, any zswap entry erased;
        returns the slot, the entry itself."""
        entry = self._entry_arg(entry)
        self._enter()
        try:
            self._check_slot(entry)
            self._zswap_erase(entry)
            self._zero_clear(entry)
        finally:
            self._exit()
        return entry

    def get_slot(self, entry):
        """The disk slot of an allocated entry: the entry itself."""
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
        """folio_dup_swap(): one more reference under the cluster lock (the
        lock dropped to allocate an extend_table or a continuation);
        returns the new count."""
        entry = self._entry_arg(entry)
        self._enter()
        try:
            self._check_slot(entry)
            ci = self._clusters[entry // CLUSTER]
            while True:
                self._lock(ci)
                try:
                    self._check_slot(entry)
                    count = self._count_locked(entry) + 1
                    if count > SWAP_COUNT_LIMIT:
                        raise ValueError("swap count of entry %d would exceed 2**31 - 1" % entry)
                    done = self._set_count_locked(entry, count)
                finally:
                    ci.lock.release()
                if done:
                    return count
                self._reserve_for_count()           # no lock held
        finally:
            self._exit()

    def swap_count(self, entry):
        """swp_swapcount(): the count, read under the cluster lock."""
        entry = self._entry_arg(entry)
        self._enter()
        try:
            self._check_slot(entry)
            ci = self._clusters[entry // CLUSTER]
            self._lock(ci)
            try:
                self._check_slot(entry)
                return self._count_locked(entry)
            finally:
                ci.lock.release()
        finally:
            self._exit()

    def swap_free(self, entry):
        """swap_free(): drop one reference under the cluster lock; at zero
        the slot and all it holds are released."""
        entry = self._entry_arg(entry)
        self._enter()
        try:
            self._check_slot(entry)
            if not self._swap_free(entry):
                self._check_slot(entry)
        finally:
            self._exit()

    # -- loops ------------------------------------------------------------
    def _store_many(self, em, hm, batch):
        """zswap_entry_store of each page (one xa_lock each, or one per run
        with ``batch=True``; the zero bits cleared first); returns how many
        replaced a handle."""
        replaced = 0
        for i, j in self._runs(em, batch):
            for k in range(i, j):
                self._zero_clear(em[k])
            xa = self._zswap[em[i] >> SWAP_ADDRESS_SPACE_SHIFT]
            xa.lock(self._st)
            try:
                k = i
                while k < j:
                    old = xa.store_locked(self._ctx_zswap, em[k], hm[k] << 2)
                    if old == NEED_NODE:
                        xa.unlock()                 # xas_nomem
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
        """One page of swap_out_many: folio_alloc_swap, its backing and
        swap_cache_del_folio leaving a shadow; the folio and the shadow of
        the page are its entry, which is returned."""
        s = self._alloc_slot(0, memcg)
        if backing == "zswap":
            self._zswap_store(s, self._new_handle())
        elif backing == "disk":
            self._zswap_erase(s)
            self._zero_clear(s)
        else:
            self._zswap_erase(s)
            self._zero_set(s)
        self._cache_del(s, s, s)
        return s

    # -- introspection ----------------------------------------------------
    def _bytes(self):
        n = self._nr_slots
        c = self._nr_clusters
        b = {
            "cluster_info": c * CLUSTER_INFO_SIZE + (0 if self._p1 else c * CLUSTER_EXT_SIZE),
            "swap_table": self._tables.live_bytes,
            "memcg_table": self._memcg_tables.live_bytes,
            "extend_table": self._extend_tables.live_bytes,
            "zswap_trees": self._nr_regions * XARRAY_SIZE,
            "xa_node_zswap": self._ctx_zswap.live_bytes,
            "swap_cont": self._ctx_cont.live_bytes,
            "swap_table_free": (self._tables.cached_bytes + self._memcg_tables.cached_bytes
                                + self._extend_tables.cached_bytes),
            "xa_node_free": self._ctx_zswap.cached_bytes + self._ctx_cont.cached_bytes,
        }
        objs = (1 if self._p1 else 2) + 1
        objs += self._tables.live + self._memcg_tables.live + self._extend_tables.live
        objs += self._tables.cached + self._memcg_tables.cached + self._extend_tables.cached
        objs += (b["xa_node_zswap"] + b["swap_cont"] + b["xa_node_free"]) // XA_NODE_SIZE
        if self._p1:
            b.update(swap_map=n, swap_cgroup=-(-n // 2) * 4, zeromap=-(-n // 64) * 8)
            objs += 3
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
            "metadata_objects": objs,
            "lock_acquisitions": (st.lock_acquisitions + self._cluster_locks_taken
                                  + self._device_locks_taken),
            "xa_lock_acquisitions": st.lock_acquisitions,
            "cluster_lock_acquisitions": self._cluster_locks_taken,
            "device_lock_acquisitions": self._device_locks_taken,
            "lockless_loads": st.lockless_loads,
            "load_retries": st.load_retries,
            "locked_loads": st.locked_loads,
        }
        for k in _STRUCTURES[self.phase]:
            d["bytes_" + k] = b[k]
        d["bytes_xa_node"] = b["xa_node_zswap"]
        return d
