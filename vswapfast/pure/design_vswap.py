"""The ``vswap`` design, pure-Python twin of ``vswapfast._design_vswap``.

See the compiled module's header for the kernel sources followed (mm/vswap.c
of the virtual swap series, v6), the layout, the departures and the lock
ordering.  The twin keeps the same structures and counts them at the
compiled core's sizes: 12,392 bytes per ``struct vswap_cluster`` (512
24-byte ``struct swp_desc`` inline), 576 bytes per node of the cluster map
xarray (vswapfast.pure.xarray), two bitmaps of one bit per device slot (in
whole longs), 32 bytes of ``struct swap_cluster_info`` per 512 device slots
and a 4 KiB swap table, the reverse map, per device cluster in use.  It
takes the same locks in the same order and counts them the same way.

Lock ordering: allocator lock -> vswap cluster lock -> map xa_lock (->
cluster lock with trylock only); device lock -> swap cluster lock.
"""

import threading

from vswapfast.errors import InvalidEntryError, SwapCacheError
from vswapfast.pure.design_base import BACKINGS, VALUE_LIMIT, int_arg, value_arg
from vswapfast.pure.design_vswap_base import R_DEVICE_FULL, R_FULL, VswapBase
from vswapfast.pure.xarray import NEED_NODE, XA_NODE_SIZE, Xa, XaCtx, XaStats

__all__ = ["VswapDesign", "BACKINGS", "MAX_VSWAP"]

VSWAP_CLUSTER_SHIFT = 9
VSWAP_CLUSTER_SIZE = 1 << VSWAP_CLUSTER_SHIFT
VSWAP_CLUSTER_MASK = VSWAP_CLUSTER_SIZE - 1
SWAPFILE_CLUSTER = 512
MAX_CLUSTER_ID = 0xFFFFFFFF
MAX_VSWAP = (MAX_CLUSTER_ID << VSWAP_CLUSTER_SHIFT) + VSWAP_CLUSTER_MASK
SWAP_COUNT_LIMIT = (1 << 31) - 1
MAX_SLOTS = 1 << 32

#: sizeof(struct swp_desc), sizeof(struct vswap_cluster),
#: sizeof(struct swap_cluster_info), one swap table.
SWP_DESC_SIZE = 24
VSWAP_CLUSTER_BYTES = 12392
CLUSTER_INFO_SIZE = 32
SWAP_TABLE_BYTES = SWAPFILE_CLUSTER * 8

# enum swap_type (mm/vswap.c, v6)
VSWAP_SWAPFILE, VSWAP_ZERO, VSWAP_ZSWAP, VSWAP_FOLIO = 0, 1, 2, 3

NO_ID = -1

STRUCTURES = ("vswap_cluster", "vswap_cluster_free", "cluster_map", "cluster_map_free",
              "swap_alloc_bitmap", "swap_bad_bitmap", "cluster_info", "reverse_map")


def stats_dict(core, nr_slots, used, nr_zswap, objs, nbytes, ll, lr, lk, xl, cl, al, dl, pl):
    """The stats() dict of both cores, from values read by the caller:
    ``nbytes`` in the order of STRUCTURES; ``xl`` map xa_lock, ``cl``
    vswap cluster, ``al`` allocator, ``dl`` device and ``pl`` swap cluster
    lock acquisitions."""
    b = dict(zip(STRUCTURES, nbytes))
    s = {
        "design": "vswap",
        "core": core,
        "nr_slots": nr_slots,
        "used": used,
        "metadata_bytes": sum(b.values()),
        "metadata_objects": objs,
        "lock_acquisitions": xl + cl + al + dl + pl,
        "cluster_lock_acquisitions": cl,
        "map_lock_acquisitions": xl,
        "allocator_lock_acquisitions": al,
        "device_lock_acquisitions": dl,
        "swap_cluster_lock_acquisitions": pl,
        "lockless_loads": ll,
        "load_retries": lr,
        "locked_loads": lk,
        "zswap_entries": nr_zswap,
    }
    for k, v in b.items():
        s["bytes_" + k] = v
    s["bytes_swp_desc"] = (b["vswap_cluster"] // VSWAP_CLUSTER_BYTES) * VSWAP_CLUSTER_SIZE * SWP_DESC_SIZE
    return s


def entry_message(entry, why):
    """The InvalidEntryError message of both cores."""
    if why == "zero":
        return "swap entry 0 is never allocated (0 means no entry)"
    if why == "negative":
        return "swap entry %d is negative; entries are unsigned" % entry
    if why == "range":
        return "swap entry %d is beyond the virtual swap space (MAX_VSWAP is %d)" % (
            entry, MAX_VSWAP)
    return "swap entry %d is not allocated (no swap descriptor)" % entry


def _entry_range(e):
    if e == 0:
        return "zero"
    if e < 0:
        return "negative"
    if e >> VSWAP_CLUSTER_SHIFT > MAX_CLUSTER_ID:
        return "range"
    return None


class _Cluster:
    """struct vswap_cluster: lock, list, id, count, order, cached, full,
    refcnt, the allocation bitmap (an int) and 512 descriptors (one list
    per field of struct swp_desc)."""

    __slots__ = ("lock", "id", "count", "cached", "full", "refcnt", "bitmap", "token",
                 "backing", "cache", "swap_count", "memcgid", "in_swapcache", "type")

    def __init__(self, token):
        self.lock = threading.Lock()
        self.token = token
        self.id = NO_ID
        self.reset()

    def reset(self):
        self.count = 0
        self.cached = False
        self.full = False
        self.refcnt = 0
        self.bitmap = 0
        n = VSWAP_CLUSTER_SIZE
        self.backing = [0] * n
        self.cache = [0] * n
        self.swap_count = [0] * n
        self.memcgid = [0] * n
        self.in_swapcache = [False] * n
        self.type = [VSWAP_SWAPFILE] * n

    def live(self, i):
        return self.bitmap >> i & 1 and self.swap_count[i] > 0


class VswapDesign(VswapBase):
    """The virtual swap space, v6: a 24-byte swap descriptor per virtual
    slot in 512-slot clusters under per-cluster spinlocks, found through
    the vswap_cluster_map xarray; zswap entries in the descriptors; a
    physical device of two bitmaps with a reverse map for disk-backed
    slots.  Every descriptor access holds its cluster lock; only the map
    lookup is lock-free.  See docs/designs.md."""

    _entry_message = staticmethod(entry_message)

    name = "vswap"
    _err_free = "free"

    def __init__(self, nr_slots):
        nr_slots = int_arg(nr_slots, "nr_slots")
        if not 1 <= nr_slots <= MAX_SLOTS:
            raise ValueError("nr_slots must be in 1 .. 2**32, not %d" % nr_slots)
        self._nr_slots = nr_slots
        self._nr_pclusters = -(-nr_slots // SWAPFILE_CLUSTER)
        self._max_used = nr_slots - 1
        # virtual space
        self._map = Xa()
        self._map_ctx = XaCtx()
        self._by_token = {}             # map word -> cluster (type-stable: never removed)
        self._id_hint = 0
        self._partial = []              # oldest first (map xa_lock)
        self._spare = []                # freed clusters (map xa_lock)
        self._local_lock = threading.Lock()
        self._cached = None
        self._nr_live = 0
        # the device: swapon's bitmaps (slot 0, the header, bad) and clusters
        self._alloc_bitmap = bytearray(-(-nr_slots // 64) * 8)
        self._bad_bitmap = bytearray(-(-nr_slots // 64) * 8)
        self._bad_bitmap[0] = 1
        self._dev_lock = threading.Lock()
        self._next_pcluster = 0
        self._ci_count = [0] * self._nr_pclusters
        self._ci_table = [None] * self._nr_pclusters
        self._ci_locks = [threading.Lock() for _ in range(self._nr_pclusters)]
        self._nr_tables = 0
        self._table_reserve = None
        self._st = XaStats()
        self._cl = self._al = self._dl = self._pl = 0
        self._used = 0
        self._nr_zswap = 0
        self._next_handle = 0
        self._count_lock = threading.Lock()
        self._life_init()

    # -- life -------------------------------------------------------------
    def _free(self):
        self._map.destroy(self._map_ctx)
        self._map_ctx.destroy()
        self._by_token = {}
        self._partial = []
        self._spare = []
        self._cached = None
        self._ci_table = []
        self._alloc_bitmap = self._bad_bitmap = None
        self._used = 0

    # -- locks and lookups -------------------------------------------------
    def _local_lock_take(self):
        self._local_lock.acquire()
        self._al += 1

    def _ci_lock(self, p):
        self._ci_locks[p].acquire()
        self._pl += 1

    def _map_lookup(self, cid, st):
        w = self._map.load(cid, st)
        return self._by_token[w] if w else None

    def _vswap_iter(self, e):
        """vswap_iter(): map lookup (no lock), cluster lock, the slot live
        in that very cluster.  The cluster locked, or None."""
        cid = e >> VSWAP_CLUSTER_SHIFT
        c = self._map_lookup(cid, self._st)
        if c is None:
            return None
        self._cluster_lock(c)
        if c.id != cid or not c.live(e & VSWAP_CLUSTER_MASK):
            c.lock.release()
            return None
        return c

    def _cluster_locked(self, cid):
        c = self._map_lookup(cid, self._st)
        if c is None:
            return None
        self._cluster_lock(c)
        if c.id != cid:
            c.lock.release()
            return None
        return c

    def _iter_or_raise(self, entry):
        why = _entry_range(entry)
        if why:
            raise InvalidEntryError(entry_message(entry, why))
        c = self._vswap_iter(entry)
        if c is None:
            raise InvalidEntryError(entry_message(entry, "free"))
        return c

    def _entry_check(self, e):
        """A racy lock-free look before a loop (uncounted)."""
        why = _entry_range(e)
        if why:
            return why
        c = self._map_lookup(e >> VSWAP_CLUSTER_SHIFT, None)
        if c is None or c.id != e >> VSWAP_CLUSTER_SHIFT or \
                not c.bitmap >> (e & VSWAP_CLUSTER_MASK) & 1:
            return "free"
        return None

    # -- physical swap ------------------------------------------------------
    def _pslot_free(self, s):
        return not ((self._alloc_bitmap[s >> 3] | self._bad_bitmap[s >> 3]) >> (s & 7)) & 1

    def _swap_slot_alloc(self):
        """swap_slot_alloc() as the compiled core's: (slot, 0) or (0, err)."""
        while True:
            need_table = False
            found = 0
            with self._dev_lock:
                self._dl += 1
                n = self._nr_pclusters
                for k in range(n):
                    p = (self._next_pcluster + k) % n
                    first = p * SWAPFILE_CLUSTER
                    last = min(first + SWAPFILE_CLUSTER, self._nr_slots)
                    cap = last - first - (1 if p == 0 else 0)
                    if self._ci_count[p] >= cap:
                        continue
                    self._ci_lock(p)
                    try:
                        if self._ci_table[p] is None:
                            self._ci_table[p], self._table_reserve = self._table_reserve, None
                            if self._ci_table[p] is None:
                                need_table = True
                                break
                        for s in range(first, last):
                            if self._pslot_free(s):
                                self._alloc_bitmap[s >> 3] |= 1 << (s & 7)
                                self._ci_count[p] += 1
                                found = s
                                break
                    finally:
                        self._ci_locks[p].release()
                    if found:
                        self._next_pcluster = p
                        break
            if not need_table:
                return (found, 0) if found else (0, R_DEVICE_FULL)
            # swap_cluster_alloc_table() with no lock held
            with self._count_lock:
                if self._table_reserve is None:
                    self._table_reserve = [0] * SWAPFILE_CLUSTER
                    self._nr_tables += 1

    def _rmap_set(self, slot, ventry):
        p = slot // SWAPFILE_CLUSTER
        self._ci_lock(p)
        try:
            self._ci_table[p][slot % SWAPFILE_CLUSTER] = ventry
        finally:
            self._ci_locks[p].release()

    def _swap_slot_free(self, slot):
        """swap_slot_free_nr() of one slot; the table freed when the cluster
        empties."""
        p = slot // SWAPFILE_CLUSTER
        self._ci_lock(p)
        try:
            self._alloc_bitmap[slot >> 3] &= ~(1 << (slot & 7)) & 0xFF
            self._ci_table[p][slot % SWAPFILE_CLUSTER] = 0
            self._ci_count[p] -= 1
            if not self._ci_count[p]:
                self._ci_table[p] = None
                with self._count_lock:
                    self._nr_tables -= 1
        finally:
            self._ci_locks[p].release()

    # -- allocation -----------------------------------------------------------
    @staticmethod
    def _candidate(c):
        return c.count + 1 <= VSWAP_CLUSTER_SIZE

    def _alloc_from_cluster(self, c, folio, memcg):
        """vswap_alloc_from_cluster(), under the cluster lock."""
        if not self._candidate(c):
            return 0
        start = 0 if c.id else 1
        free = ~c.bitmap & ~((1 << start) - 1) & ((1 << VSWAP_CLUSTER_SIZE) - 1)
        if not free:
            return 0
        i = (free & -free).bit_length() - 1
        c.bitmap |= 1 << i
        c.refcnt += 1
        c.type[i] = VSWAP_FOLIO
        c.backing[i] = 0
        c.cache[i] = folio << 2
        c.memcgid[i] = memcg
        c.swap_count[i] = 1
        c.in_swapcache[i] = True
        c.count += 1
        return i + (c.id << VSWAP_CLUSTER_SHIFT)

    def _cluster_get(self):
        """A spare cluster, or a new one (kvzalloc), reset under its lock."""
        c = None
        if self._spare:
            self._map.lock(self._st)
            try:
                if self._spare:
                    c = self._spare.pop()
                    self._nr_live += 1
            finally:
                self._map.unlock()
        if c is None:
            c = _Cluster((len(self._by_token) + 1) << 2)
            self._by_token[c.token] = c
            self._nr_live += 1
        self._cluster_lock(c)
        try:
            c.reset()
        finally:
            c.lock.release()
        return c

    def _new_cluster(self):
        """kvzalloc + xa_alloc of the lowest free id: (cluster, 0) or (None, err)."""
        c = self._cluster_get()
        while True:
            self._map.lock(self._st)
            try:
                cid = self._id_hint
                while cid <= MAX_CLUSTER_ID and self._map.load_locked(cid):
                    cid += 1
                if cid > MAX_CLUSTER_ID:
                    self._put_spare_locked(c)
                    return None, R_FULL
                c.id = cid
                if self._map.store_locked(self._map_ctx, cid, c.token) != NEED_NODE:
                    self._id_hint = cid + 1
                    return c, 0
                c.id = NO_ID
            finally:
                self._map.unlock()
            self._map_ctx.reserve1()

    def _vswap_alloc(self, folio, memcg):
        """vswap_alloc() as the compiled core's: (entry, 0) or (0, err)."""
        if not self._reserve_used():
            return 0, R_FULL
        e = 0
        need_caching = True
        self._local_lock_take()
        try:
            c = self._cached
            if c is not None:
                self._cluster_lock(c)
                e = self._alloc_from_cluster(c, folio, memcg)
                need_caching = e == 0
                if e == 0 or not self._candidate(c):
                    self._cached = None
                    c.cached = False
                    c.refcnt -= 1
                    c.full = True
                c.lock.release()
        finally:
            self._local_lock.release()
        if e == 0:
            c = None
            self._map.lock(self._st)
            try:
                for p in list(self._partial):
                    if p.lock.acquire(blocking=False):
                        self._cl += 1
                        e = self._alloc_from_cluster(p, folio, memcg)
                        self._partial.remove(p)
                        p.full = e == 0 or not self._candidate(p)
                        need_caching = not p.full
                        p.lock.release()
                        if e:
                            c = p
                            break
            finally:
                self._map.unlock()
        if e == 0:
            c, err = self._new_cluster()
            if c is None:
                with self._count_lock:
                    self._used -= 1
                return 0, err
            self._cluster_lock(c)
            e = self._alloc_from_cluster(c, folio, memcg)
            need_caching = self._candidate(c)
            c.lock.release()
        if need_caching:
            self._local_lock_take()
            try:
                local = self._cached
                if local is not c:
                    if local is not None:
                        self._cluster_lock(local)
                        need_caching = not self._candidate(local)
                        if need_caching:
                            self._cached = None
                            local.cached = False
                            local.refcnt -= 1
                            local.full = True
                        local.lock.release()
                    self._cluster_lock(c)
                    try:
                        if c.id != NO_ID and self._candidate(c):
                            if need_caching:
                                self._cached = c
                                c.refcnt += 1
                                c.cached = True
                            else:
                                self._map.lock(self._st)
                                self._partial.insert(0, c)
                                self._map.unlock()
                    finally:
                        c.lock.release()
            finally:
                self._local_lock.release()
        return e, 0

    # -- release ----------------------------------------------------------
    def _cluster_free(self, c):
        """vswap_cluster_free(), under the cluster lock."""
        cid = c.id
        c.id = NO_ID
        self._map.lock(self._st)
        try:
            if c in self._partial:
                self._partial.remove(c)
            self._map.store_locked(self._map_ctx, cid, 0)
            if cid < self._id_hint:
                self._id_hint = cid
            self._put_spare_locked(c)
        finally:
            self._map.unlock()

    def _release_vswap_slot(self, c, e):
        i = e & VSWAP_CLUSTER_MASK
        c.count -= 1
        c.bitmap &= ~(1 << i)
        c.refcnt -= 1
        if c.refcnt == 0:
            self._cluster_free(c)
        elif c.full and self._candidate(c):
            c.full = False
            if not c.cached:
                self._map.lock(self._st)
                self._partial.append(c)
                self._map.unlock()

    def _take_backing_locked(self, c, i):
        """release_backing() under the cluster lock: the slot to free, or 0."""
        slot = 0
        if c.type[i] == VSWAP_SWAPFILE:
            slot = c.backing[i]
        elif c.type[i] == VSWAP_ZSWAP:
            with self._count_lock:
                self._nr_zswap -= 1
        c.backing[i] = 0
        c.type[i] = VSWAP_FOLIO
        return slot

    def _vswap_free(self, c, e):
        """vswap_free(): entered locked with the count at zero, leaves unlocked."""
        i = e & VSWAP_CLUSTER_MASK
        slot = self._take_backing_locked(c, i)
        c.cache[i] = 0
        c.in_swapcache[i] = False
        c.memcgid[i] = 0
        c.lock.release()
        if slot:
            self._swap_slot_free(slot)
        self._cluster_lock(c)
        try:
            self._release_vswap_slot(c, e)
        finally:
            c.lock.release()
        with self._count_lock:
            self._used -= 1

    def _swap_free_one(self, e):
        c = self._vswap_iter(e)
        if c is None:
            return False
        i = e & VSWAP_CLUSTER_MASK
        c.swap_count[i] -= 1
        if c.swap_count[i]:
            c.lock.release()
        else:
            self._vswap_free(c, e)
        return True

    # -- descriptor operations -----------------------------------------------
    def _zswap_store_one(self, e, handle):
        """zswap_entry_store(): (ok, old handle)."""
        c = self._vswap_iter(e)
        if c is None:
            return False, 0
        i = e & VSWAP_CLUSTER_MASK
        old = slot = 0
        if c.type[i] == VSWAP_ZSWAP:
            old = c.backing[i] >> 2
        else:
            slot = self._take_backing_locked(c, i)
            with self._count_lock:
                self._nr_zswap += 1
        c.backing[i] = handle << 2
        c.type[i] = VSWAP_ZSWAP
        c.lock.release()
        if slot:
            self._swap_slot_free(slot)
        return True, old

    def _zswap_erase_one(self, e):
        c = self._vswap_iter(e)
        if c is None:
            return False, 0
        i = e & VSWAP_CLUSTER_MASK
        old = 0
        if c.type[i] == VSWAP_ZSWAP:
            old = c.backing[i] >> 2
            self._take_backing_locked(c, i)
        c.lock.release()
        return True, old

    def _zswap_load_one(self, e):
        c = self._vswap_iter(e)
        if c is None:
            return False, 0
        i = e & VSWAP_CLUSTER_MASK
        h = c.backing[i] >> 2 if c.type[i] == VSWAP_ZSWAP else 0
        c.lock.release()
        return True, h

    def _set_zero_one(self, e):
        c = self._vswap_iter(e)
        if c is None:
            return False
        i = e & VSWAP_CLUSTER_MASK
        slot = self._take_backing_locked(c, i)
        c.type[i] = VSWAP_ZERO
        c.lock.release()
        if slot:
            self._swap_slot_free(slot)
        return True

    def _writeout_one(self, e):
        """vswap_alloc_swap_slot(): (slot, 0), (0, "free") or (0, err)."""
        c = self._vswap_iter(e)
        if c is None:
            return 0, "free"
        i = e & VSWAP_CLUSTER_MASK
        if c.type[i] == VSWAP_SWAPFILE:
            slot = c.backing[i]
            c.lock.release()
            return slot, 0
        c.lock.release()
        s, err = self._swap_slot_alloc()
        if not s:
            return 0, err
        self._rmap_set(s, e)
        c = self._vswap_iter(e)
        if c is None:
            self._swap_slot_free(s)
            return 0, "free"
        if c.type[i] == VSWAP_SWAPFILE:
            other = c.backing[i]
            c.lock.release()
            self._swap_slot_free(s)
            return other, 0
        self._take_backing_locked(c, i)
        c.type[i] = VSWAP_SWAPFILE
        c.backing[i] = s
        c.lock.release()
        return s, 0

    def _cache_del_one(self, e, folio, shadow):
        """swap_cache_del_folio(): None (done), "free", or the cache word."""
        c = self._vswap_iter(e)
        if c is None:
            return "free"
        i = e & VSWAP_CLUSTER_MASK
        cur = c.cache[i]
        if cur != folio << 2:
            c.lock.release()
            return cur
        c.cache[i] = (shadow << 1) | 1
        c.lock.release()
        c = self._vswap_iter(e)
        if c is not None:
            c.in_swapcache[i] = False
            c.lock.release()
        return None

    def _folio_alloc_swap_one(self, folio, memcg):
        e, err = self._vswap_alloc(folio, memcg)
        if not e:
            return 0, err
        i = e & VSWAP_CLUSTER_MASK
        c = self._vswap_iter(e)                 # mem_cgroup_record_swap()
        if c is not None:
            c.memcgid[i] = memcg
            c.lock.release()
        c = self._vswap_iter(e)                 # swap_cache_add_folio()
        if c is not None:
            c.cache[i] = folio << 2
            c.lock.release()
        return e, 0

    # -- the API ----------------------------------------------------------
    def folio_alloc_swap(self, folio, memcg=0):
        """folio_alloc_swap() (mm/vswap.c): vswap_alloc(),
        mem_cgroup_record_swap() and swap_cache_add_folio() under the
        cluster lock: swap count 1, the folio in the swap cache."""
        folio = value_arg(folio, "folio", 1, VALUE_LIMIT - 1)
        memcg = value_arg(memcg, "memcg", 0, 65535)
        self._enter()
        try:
            e, err = self._folio_alloc_swap_one(folio, memcg)
            if not e:
                self._raise_full(err)
            return e
        finally:
            self._exit()

    def _cache_word(self, entry):
        entry = int_arg(entry, "swap entry")
        self._enter()
        try:
            c = self._iter_or_raise(entry)
            w = c.cache[entry & VSWAP_CLUSTER_MASK]
            c.lock.release()
            return w
        finally:
            self._exit()

    def swap_cache_get_folio(self, entry):
        """swap_cache_get_folio(): under the cluster lock (vswap_iter)."""
        w = self._cache_word(entry)
        return None if w == 0 or w & 1 else w >> 2

    def swap_cache_get_shadow(self, entry):
        """swap_cache_get_shadow(): under the cluster lock (vswap_iter)."""
        w = self._cache_word(entry)
        return w >> 1 if w & 1 else None

    def swap_cache_add_folio(self, entry, folio):
        """swapcache_prepare() then swap_cache_add_folio(), each under the
        cluster lock; returns the shadow replaced, or None."""
        entry = int_arg(entry, "swap entry")
        folio = value_arg(folio, "folio", 1, VALUE_LIMIT - 1)
        self._enter()
        try:
            i = entry & VSWAP_CLUSTER_MASK
            c = self._iter_or_raise(entry)
            if c.in_swapcache[i]:
                c.lock.release()
                raise SwapCacheError("swap entry %d already has a folio in the swap cache"
                                     % entry)
            c.in_swapcache[i] = True
            c.lock.release()
            c = self._iter_or_raise(entry)
            old = c.cache[i]
            c.cache[i] = folio << 2
            c.lock.release()
        finally:
            self._exit()
        return old >> 1 if old & 1 else None

    def swap_cache_del_folio(self, entry, folio, shadow=0):
        """swap_cache_del_folio() and put_swap_folio(), each under the
        cluster lock.  ``SwapCacheError`` if ``folio`` is not the cached one."""
        entry = int_arg(entry, "swap entry")
        folio = value_arg(folio, "folio", 1, VALUE_LIMIT - 1)
        shadow = value_arg(shadow, "shadow", 0, VALUE_LIMIT - 1)
        self._enter()
        try:
            why = _entry_range(entry)
            if why:
                raise InvalidEntryError(entry_message(entry, why))
            cur = self._cache_del_one(entry, folio, shadow)
        finally:
            self._exit()
        if cur == "free":
            raise InvalidEntryError(entry_message(entry, "free"))
        if cur is not None:
            raise SwapCacheError(
                "folio %d is not the one in the swap cache of entry %d (%s)"
                % (folio, entry, "folio %d" % (cur >> 2) if cur and not cur & 1
                   else "no folio"))

    def _entry_op(self, entry, op, *args):
        entry = int_arg(entry, "swap entry")
        why = None
        self._enter()
        try:
            why = _entry_range(entry)
            if not why:
                res = op(entry, *args)
                if res[0] is False:
                    why = "free"
        finally:
            self._exit()
        if why:
            raise InvalidEntryError(entry_message(entry, why))
        return res

    def zswap_entry_store(self, entry, handle):
        """zswap_entry_store() (patch 11): into the descriptor under the
        cluster lock; the handle replaced, or None."""
        entry = int_arg(entry, "swap entry")
        handle = value_arg(handle, "handle", 1, VALUE_LIMIT - 1)
        return self._entry_op(entry, self._zswap_store_one, handle)[1] or None

    def zswap_entry_load(self, entry):
        """zswap_entry_load() (patch 11): under the cluster lock."""
        return self._entry_op(entry, self._zswap_load_one)[1] or None

    def zswap_entry_erase(self, entry):
        """zswap_entry_erase() (patch 11): under the cluster lock."""
        return self._entry_op(entry, self._zswap_erase_one)[1] or None

    def set_zero(self, entry):
        """swap_zeromap_folio_set(): release_backing(), then VSWAP_ZERO."""
        self._entry_op(entry, lambda e: (self._set_zero_one(e),))

    def _type_of(self, entry):
        def read(e):
            c = self._vswap_iter(e)
            if c is None:
                return (False,)
            i = e & VSWAP_CLUSTER_MASK
            t, b = c.type[i], c.backing[i]
            c.lock.release()
            return True, t, b
        return self._entry_op(entry, read)

    def is_zero(self, entry):
        """swap_zeromap_batch() of one entry, under the cluster lock."""
        return self._type_of(entry)[1] == VSWAP_ZERO

    def swap_writeout(self, entry):
        """vswap_alloc_swap_slot(): a device slot, the reverse map, the
        descriptor VSWAP_SWAPFILE.  Returns the slot."""
        entry = int_arg(entry, "swap entry")
        self._enter()
        try:
            why = _entry_range(entry)
            if not why:
                slot, err = self._writeout_one(entry)
                if err == "free":
                    why = "free"
                elif err:
                    self._raise_full(err)
        finally:
            self._exit()
        if why:
            raise InvalidEntryError(entry_message(entry, why))
        return slot

    def get_slot(self, entry):
        """swp_entry_to_swp_slot(), under the cluster lock."""
        _, t, b = self._type_of(entry)
        return b if t == VSWAP_SWAPFILE else None

    def swap_duplicate(self, entry):
        """swap_duplicate(): swap_count + 1 under the cluster lock."""
        entry = int_arg(entry, "swap entry")
        self._enter()
        try:
            c = self._iter_or_raise(entry)
            i = entry & VSWAP_CLUSTER_MASK
            count = c.swap_count[i] + 1
            if count > SWAP_COUNT_LIMIT:
                c.lock.release()
                raise ValueError("swap count of entry %d would exceed 2**31 - 1" % entry)
            c.swap_count[i] = count
            c.lock.release()
            return count
        finally:
            self._exit()

    def swap_count(self, entry):
        """swp_swapcount(): under the cluster lock."""
        entry = int_arg(entry, "swap entry")
        self._enter()
        try:
            c = self._iter_or_raise(entry)
            count = c.swap_count[entry & VSWAP_CLUSTER_MASK]
            c.lock.release()
            return count
        finally:
            self._exit()

    def swap_free(self, entry):
        """swap_free_nr() of one entry; at zero vswap_free()."""
        self._entry_op(entry, lambda e: (self._swap_free_one(e),))

    # -- loops ------------------------------------------------------------
    def _run_loop(self, em, hm, om, batch, op):
        """The compiled core's run_loop, in Python."""
        if op == "free" or not batch:
            return self._run_per_page(em, hm, om, op)
        hits = 0
        n = len(em)
        i = 0
        while i < n:
            cid = em[i] >> VSWAP_CLUSTER_SHIFT
            j = i + 1
            while j < n and em[j] >> VSWAP_CLUSTER_SHIFT == cid:
                j += 1
            c = self._cluster_locked(cid)
            k = i
            while k < j:
                x = 0
                s = em[k] & VSWAP_CLUSTER_MASK
                if c is not None and c.live(s):
                    if c.type[s] == VSWAP_ZSWAP:
                        x = c.backing[s] >> 2
                    if op == "store" and c.type[s] == VSWAP_SWAPFILE:
                        c.lock.release()
                        x = self._zswap_store_one(em[k], hm[k])[1]
                        c = self._cluster_locked(cid)
                        k += 1
                        continue
                    if op == "store":
                        if c.type[s] != VSWAP_ZSWAP:
                            self._take_backing_locked(c, s)
                            with self._count_lock:
                                self._nr_zswap += 1
                        c.backing[s] = hm[k] << 2
                        c.type[s] = VSWAP_ZSWAP
                    elif op == "erase" and x:
                        self._take_backing_locked(c, s)
                if op == "load":
                    om[k] = x
                hits += x != 0
                k += 1
            if c is not None:
                c.lock.release()
            i = j
        return hits

    # -- introspection ----------------------------------------------------
    def _bytes(self):
        words = -(-self._nr_slots // 64) * 8
        tables = self._nr_tables
        nbytes = [self._nr_live * VSWAP_CLUSTER_BYTES,
                  len(self._spare) * VSWAP_CLUSTER_BYTES,
                  self._map_ctx.live_bytes, self._map_ctx.cached_bytes,
                  words, words, self._nr_pclusters * CLUSTER_INFO_SIZE,
                  tables * SWAP_TABLE_BYTES]
        objs = (self._nr_live + len(self._spare)
                + (self._map_ctx.live_bytes + self._map_ctx.cached_bytes) // XA_NODE_SIZE
                + 3 + tables)
        return nbytes, objs

    def stats(self):
        """Counters and byte counts; see docs/designs.md."""
        self._check_open()
        nbytes, objs = self._bytes()
        st = self._st
        return stats_dict("pure", self._nr_slots, self._used, self._nr_zswap, objs, nbytes,
                          st.lockless_loads, st.load_retries, st.locked_loads,
                          st.lock_acquisitions, self._cl, self._al, self._dl, self._pl)
