"""The ``rbtree`` design, pure-Python twin of ``vswapfast._design_rbtree``.

See the compiled module's header for the kernel sources followed (Linux
6.5 .. 6.7: zswap's entries in one red-black tree per swap device under one
spinlock that loads take too), the layout and the lock ordering.  The twin
keeps the zswap entries in a dict under the tree lock -- the same entries,
looked up, stored and erased under the same locks as many times -- and
counts them at the compiled core's sizes: 24 bytes of ``struct rb_node``
per zswap entry, a 16-byte ``struct zswap_tree``; swap_map 1 B per slot,
swap_cgroup a page per 2048 slots and a pointer to each, an 8-byte
``struct swap_cluster_info`` per 512 slots, a 16-byte ``struct xarray`` per
64 MiB for the swap cache and 576 bytes per xarray node.

Lock ordering: device lock -> cluster lock -> tree lock, xa_lock, swap_cgroup
lock (one at a time) -> node free list.
"""

import array
import threading

from vswapfast.errors import SwapFullError
from vswapfast.pure.design_base import BACKINGS, VALUE_LIMIT, int_arg, value_arg
from vswapfast.pure.design_swap_map import (
    SWAP_ADDRESS_SPACE_MASK, SWAP_ADDRESS_SPACE_PAGES, SWAP_ADDRESS_SPACE_SHIFT,
    SWAPFILE_CLUSTER, SwapMapDesign, _folio_entry,
)
from vswapfast.pure.xarray import XA_NODE_SIZE, Xa, XaCtx, XaStats

__all__ = ["RbtreeDesign", "BACKINGS"]

SC_PER_PAGE = 2048                  # PAGE_SIZE / sizeof(struct swap_cgroup)
PAGE_SIZE = 4096
CLUSTER_INFO_SIZE = 8
XARRAY_SIZE = 16
ZSWAP_TREE_SIZE = 16
RB_NODE_SIZE = 24
ENTRY_FIELDS_SIZE = 24              # the modelled entry's other fields (not metadata)
MAX_SLOTS = 1 << 32

_STRUCTURES = ("swap_map", "swap_cgroup", "cluster_info", "swap_cache_xarrays",
               "zswap_tree", "rb_node", "xa_node_swap_cache", "swap_cont", "xa_node_free")


class RbtreeDesign(SwapMapDesign):
    """Swap metadata when zswap kept one red-black tree per swap device
    (up to 6.7): ``swap_map``, ``swap_cgroup`` pages, the swap cache and
    shadows in per-64 MiB xarrays, zswap entries in one tree under one
    spinlock that loads take too.  See docs/designs.md."""

    name = "rbtree"

    def __init__(self, nr_slots):
        nr_slots = int_arg(nr_slots, "nr_slots")
        if not 1 <= nr_slots <= MAX_SLOTS:
            raise ValueError("nr_slots must be in 1 .. 2**32, not %d" % nr_slots)
        self._nr_slots = nr_slots
        self._nr_clusters = -(-nr_slots // SWAPFILE_CLUSTER)
        self._nr_regions = -(-nr_slots // SWAP_ADDRESS_SPACE_PAGES)
        self._nr_cgroup_pages = -(-nr_slots // SC_PER_PAGE)
        self._swap_map = bytearray(nr_slots)
        self._swap_cgroup = array.array("H", bytes(2 * nr_slots))
        self._cgroup_lock = threading.Lock()
        self._cluster_count = [0] * self._nr_clusters
        self._cluster_locks = [threading.Lock() for _ in range(self._nr_clusters)]
        self._dev_lock = threading.Lock()
        self._next_cluster = 0
        self._cache = [Xa() for _ in range(self._nr_regions)]
        self._cont = Xa()
        self._ctx_cache = XaCtx()
        self._ctx_cont = XaCtx()
        # zswap_trees[type]: offset -> [handle or fill value, length]
        self._tree = {}
        self._tree_lock = threading.Lock()
        self._st = XaStats()
        self._cluster_locks_taken = 0
        self._device_locks_taken = 0
        self._tree_locks_taken = 0
        self._cgroup_locks_taken = 0
        self._same_filled = 0
        self._used = 0
        self._next_handle = 0
        self._life_init()

    # -- life -------------------------------------------------------------
    def _free(self):
        for xa in self._cache:
            xa.destroy(self._ctx_cache)
        self._cont.destroy(self._ctx_cont)
        for ctx in (self._ctx_cache, self._ctx_cont):
            ctx.destroy()
        self._swap_map = self._swap_cgroup = None
        self._cache = []
        self._tree = {}
        self._used = 0

    # -- locks ------------------------------------------------------------
    def _lock_tree(self):
        self._tree_lock.acquire()
        self._tree_locks_taken += 1

    # -- the zswap tree (mm/zswap.c up to 6.7) ----------------------------
    def _invalidate_locked(self, entry, keep_same_filled=False):
        """zswap_invalidate_entry() of the entry at ``entry``, under the tree
        lock; the handle it held (0 for none or a same-filled page).
        ``keep_same_filled``: a same-filled entry stays (zswap_entry_erase)."""
        z = self._tree.get(entry)
        if z is None or (keep_same_filled and z[1] == 0):
            return 0
        del self._tree[entry]
        if z[1] == 0:
            self._same_filled -= 1
            return 0
        return z[0]

    def _zswap_invalidate(self, entry, keep_same_filled=False):
        """zswap_invalidate(): search and invalidate under tree->lock."""
        self._lock_tree()
        try:
            return self._invalidate_locked(entry, keep_same_filled)
        finally:
            self._tree_lock.release()

    def _zswap_store(self, entry, handle, length):
        """zswap_store(): a duplicate invalidated under tree->lock, then the
        new entry inserted under it (two acquisitions)."""
        old = self._zswap_invalidate(entry)
        self._lock_tree()
        try:
            self._invalidate_locked(entry)
            self._tree[entry] = [handle, length]
            if length == 0:
                self._same_filled += 1
        finally:
            self._tree_lock.release()
        return old

    def _zswap_load(self, entry):
        """zswap_load(): find and reference under tree->lock, then drop the
        reference under it again.  (found, handle) with found 0 (none), 1
        or 2 (a same-filled page, handle 0)."""
        self._lock_tree()
        try:
            z = self._tree.get(entry)
        finally:
            self._tree_lock.release()
        if z is None:
            return 0, 0
        self._lock_tree()                  # zswap_entry_put()
        self._tree_lock.release()
        if z[1] == 0:
            return 2, 0
        return 1, z[0]

    # -- swap_cgroup --------------------------------------------------------
    def _swap_cgroup_record(self, entry, memcg):
        """swap_cgroup_record() (before 6.14), under ctrl->lock."""
        with self._cgroup_lock:
            self._cgroup_locks_taken += 1
            self._swap_cgroup[entry] = memcg

    # -- release ----------------------------------------------------------
    def _release_locked(self, entry):
        """The count reached zero: release everything under the cluster lock
        (zswap_invalidate, clear_shadow_from_swap_cache, swap_cgroup_record(0))."""
        self._zswap_invalidate(entry)
        xa = self._cache[entry >> SWAP_ADDRESS_SPACE_SHIFT]
        xa.lock(self._st)
        try:
            xa.store_locked(self._ctx_cache, entry & SWAP_ADDRESS_SPACE_MASK, 0)
        finally:
            xa.unlock()
        self._swap_cgroup_record(entry, 0)
        self._swap_map[entry] = 0
        self._cluster_count[entry // SWAPFILE_CLUSTER] -= 1
        self._used -= 1

    # -- allocation -------------------------------------------------------
    def _folio_alloc_swap(self, folio, memcg):
        s = self._alloc_slot()
        if not s:
            raise SwapFullError("no free swap slot left (nr_slots is %d, %d used)"
                                % (self._nr_slots, self._used))
        self._swap_cgroup_record(s, memcg)
        self._cache[s >> SWAP_ADDRESS_SPACE_SHIFT].store(
            self._ctx_cache, s & SWAP_ADDRESS_SPACE_MASK, _folio_entry(folio), self._st)
        return s

    # -- zswap ------------------------------------------------------------
    def zswap_entry_store(self, entry, handle):
        """zswap_store(): tree->lock twice (invalidate a duplicate, insert);
        returns the handle replaced, or None."""
        entry = self._entry_arg(entry)
        handle = value_arg(handle, "handle", 1, VALUE_LIMIT - 1)
        self._enter()
        try:
            self._check_slot(entry)
            old = self._zswap_store(entry, handle, 1)
        finally:
            self._exit()
        return old or None

    def zswap_entry_load(self, entry):
        """zswap_load(): tree->lock twice (find and get, put); the handle or
        None."""
        entry = self._entry_arg(entry)
        self._enter()
        try:
            self._check_slot(entry)
            return self._zswap_load(entry)[1] or None
        finally:
            self._exit()

    def zswap_entry_erase(self, entry):
        """zswap_invalidate(): under tree->lock; the handle or None (a
        same-filled entry, the page's zero backing, stays)."""
        entry = self._entry_arg(entry)
        self._enter()
        try:
            self._check_slot(entry)
            return self._zswap_invalidate(entry, True) or None
        finally:
            self._exit()

    def zswap_empty(self):
        """True when zswap holds no compressed page (stored pages minus
        same-filled pages)."""
        self._enter()
        try:
            return len(self._tree) - self._same_filled == 0
        finally:
            self._exit()

    # -- zero pages, disk -------------------------------------------------
    def set_zero(self, entry):
        """zswap_store() of a same-filled page: an entry of length 0."""
        entry = self._entry_arg(entry)
        self._enter()
        try:
            self._check_slot(entry)
            self._zswap_store(entry, 0, 0)
        finally:
            self._exit()

    def is_zero(self, entry):
        """zswap_load() finding a same-filled entry (tree->lock twice)."""
        entry = self._entry_arg(entry)
        self._enter()
        try:
            self._check_slot(entry)
            return self._zswap_load(entry)[0] == 2
        finally:
            self._exit()

    def swap_writeout(self, entry):
        """swap_writepage() when zswap does not take the page: any old entry
        invalidated (tree->lock); returns the slot, the entry itself."""
        entry = self._entry_arg(entry)
        self._enter()
        try:
            self._check_slot(entry)
            self._zswap_invalidate(entry)
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
            self._set_count_locked(entry, count)
            if not count:
                self._release_locked(entry)
        finally:
            self._cluster_locks[ci].release()

    # -- loops ------------------------------------------------------------
    def _store_many(self, em, hm, batch):
        """zswap_entry_store of each page (tree->lock twice each), or all
        under one tree->lock with ``batch=True``; how many replaced a handle."""
        replaced = 0
        if not batch:
            for k in range(len(em)):
                replaced += self._zswap_store(em[k], hm[k], 1) != 0
            return replaced
        if len(em):
            self._lock_tree()
            try:
                for k in range(len(em)):
                    replaced += self._invalidate_locked(em[k]) != 0
                    self._tree[em[k]] = [hm[k], 1]
            finally:
                self._tree_lock.release()
        return replaced

    def _load_many(self, em, om, batch):
        """zswap_entry_load of each page (tree->lock twice each), or all under
        one tree->lock with ``batch=True``; ``out[i]`` the handle or 0."""
        found = 0
        if not batch:
            for k in range(len(em)):
                h = self._zswap_load(em[k])[1]
                om[k] = h
                found += h != 0
            return found
        if len(em):
            self._lock_tree()
            try:
                for k in range(len(em)):
                    z = self._tree.get(em[k])
                    h = z[0] if z is not None and z[1] else 0
                    om[k] = h
                    found += h != 0
            finally:
                self._tree_lock.release()
        return found

    def _erase_many(self, em, batch):
        """zswap_entry_erase of each page (one tree->lock each, or one for
        all with ``batch=True``); how many held a handle."""
        erased = 0
        if not batch:
            for k in range(len(em)):
                erased += self._zswap_invalidate(em[k], True) != 0
            return erased
        if len(em):
            self._lock_tree()
            try:
                for k in range(len(em)):
                    erased += self._invalidate_locked(em[k], True) != 0
            finally:
                self._tree_lock.release()
        return erased

    def _swap_out_one(self, backing, memcg):
        """One page of swap_out_many: folio_alloc_swap, the backing (zswap
        store of a fresh handle, swap_writeout, or set_zero), then
        swap_cache_del_folio leaving a shadow (folio and shadow: the entry,
        which is returned)."""
        s = self._alloc_slot()
        if not s:
            raise SwapFullError("no free swap slot left (nr_slots is %d, %d used)"
                                % (self._nr_slots, self._used))
        self._swap_cgroup_record(s, memcg)
        self._cache[s >> SWAP_ADDRESS_SPACE_SHIFT].store(
            self._ctx_cache, s & SWAP_ADDRESS_SPACE_MASK, _folio_entry(s), self._st)
        if backing == "zswap":
            self._zswap_store(s, self._new_handle(), 1)
        elif backing == "disk":
            self._zswap_invalidate(s)
        else:
            self._zswap_store(s, 0, 0)
        self._cache_del(s, s, s)
        return s

    # -- introspection ----------------------------------------------------
    def _check(self):
        """The tree's consistency, for tests: every key a slot, under the
        tree lock; {"nodes": entries} (the twin keeps no red-black shape)."""
        self._enter()
        try:
            self._lock_tree()
            try:
                for k, (value, length) in self._tree.items():
                    if not 1 <= k < self._nr_slots:
                        raise AssertionError("zswap tree: key %d out of the device" % k)
                    if length not in (0, 1):
                        raise AssertionError("zswap tree: bad length %r" % (length,))
                same = sum(1 for v in self._tree.values() if v[1] == 0)
                if same != self._same_filled:
                    raise AssertionError("zswap tree: %d same-filled entries, %d counted"
                                         % (same, self._same_filled))
                return {"nodes": len(self._tree)}
            finally:
                self._tree_lock.release()
        finally:
            self._exit()

    def _bytes(self):
        n = self._nr_slots
        b = {
            "swap_map": n,
            "swap_cgroup": self._nr_cgroup_pages * (PAGE_SIZE + 8),
            "cluster_info": self._nr_clusters * CLUSTER_INFO_SIZE,
            "swap_cache_xarrays": self._nr_regions * XARRAY_SIZE,
            "zswap_tree": ZSWAP_TREE_SIZE,
            "rb_node": len(self._tree) * RB_NODE_SIZE,
            "xa_node_swap_cache": self._ctx_cache.live_bytes,
            "swap_cont": self._ctx_cont.live_bytes,
            "xa_node_free": self._ctx_cache.cached_bytes + self._ctx_cont.cached_bytes,
        }
        objs = {"swap_map": 1, "swap_cgroup": 1 + self._nr_cgroup_pages, "cluster_info": 1,
                "swap_cache_xarrays": 1, "zswap_tree": 1, "rb_node": len(self._tree)}
        for k in ("xa_node_swap_cache", "swap_cont", "xa_node_free"):
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
                                  + self._device_locks_taken + self._tree_locks_taken
                                  + self._cgroup_locks_taken),
            "tree_lock_acquisitions": self._tree_locks_taken,
            "xa_lock_acquisitions": st.lock_acquisitions,
            "cluster_lock_acquisitions": self._cluster_locks_taken,
            "device_lock_acquisitions": self._device_locks_taken,
            "swap_cgroup_lock_acquisitions": self._cgroup_locks_taken,
            "lockless_loads": st.lockless_loads,
            "load_retries": st.load_retries,
            "locked_loads": st.locked_loads,
            "stored_pages": len(self._tree),
            "same_filled_pages": self._same_filled,
            "entry_fields_bytes": len(self._tree) * ENTRY_FIELDS_SIZE,
        }
        for k, v in b.items():
            d["bytes_" + k] = v
        d["bytes_xa_node"] = b["xa_node_swap_cache"]
        return d
