"""What the designs with a ``swap_map`` share (the rbtree and xarray designs).

Until the swap table (6.18) every swap device kept a byte of count per slot
in ``swap_map`` (its continuation pages past SWAP_MAP_MAX), the
``SWAP_HAS_CACHE`` bit, the cluster allocator of mm/swapfile.c and the swap
cache in per-64 MiB xarrays (mm/swap_state.c).  The rbtree (up to 6.7) and
xarray (6.10 .. 6.17) designs differ in zswap, swap_cgroup and what a slot
releases; ``SwapMapDesign`` holds the rest, and the design supplies
``_folio_alloc_swap``, ``_swap_free`` and ``_release_locked``.  See each
design module's header for the kernel sources and the structures.

Lock ordering: device lock -> cluster lock -> xa_lock -> node free list.
"""

from vswapfast.errors import InvalidEntryError, SwapCacheError
from vswapfast.pure.design_base import VALUE_LIMIT, DesignBase, value_arg
from vswapfast.pure.xarray import NEED_NODE

__all__ = ["SwapMapDesign"]

SWAPFILE_CLUSTER = 512
SWAP_ADDRESS_SPACE_SHIFT = 14
SWAP_ADDRESS_SPACE_PAGES = 1 << SWAP_ADDRESS_SPACE_SHIFT
SWAP_ADDRESS_SPACE_MASK = SWAP_ADDRESS_SPACE_PAGES - 1
SWAP_HAS_CACHE = 0x40
COUNT_CONTINUED = 0x80
SWAP_MAP_MAX = 0x3E
SWAP_COUNT_LIMIT = (1 << 31) - 1


def _folio_entry(folio):
    return folio << 2                  # a folio pointer: low bits 00


def _shadow_entry(shadow):
    return (shadow << 1) | 1           # xa_mk_value(shadow)


class SwapMapDesign(DesignBase):
    """``swap_map`` counts, the cluster allocator and the swap cache in
    per-64 MiB xarrays, as mm/swapfile.c and mm/swap_state.c kept them
    before the swap table."""

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
