"""The ``vswap-table`` design, pure-Python twin of ``vswapfast._design_vswap_table``.

See the compiled module's header for the RFC v2 patches followed, the
layout, what the patches do not say, the departures and the lock ordering.
The twin keeps the same structures and counts them at the compiled core's
sizes: an 80-byte ``swap_cluster_info_dynamic``, a 4 KiB swap table, a
4 KiB virtual table and a 1 KiB memcg table per 512-slot virtual cluster
(a 2 KiB extend table when a count overflows), 576-byte nodes of
``cluster_info_pool``, 48 bytes of ``swap_cluster_info`` per 512 device
slots and a 4 KiB swap table, holding the reverse map, per device cluster
in use.  It takes the same locks in the same order and counts them the
same way; its lock-free reads are the compiled core's, retries included.

Lock ordering: allocator lock -> vswap cluster lock -> vswap si->lock,
cluster_info_pool xa_lock (si->lock -> cluster lock with trylock only);
device si->lock -> device cluster lock.
"""

import threading

from vswapfast.errors import InvalidEntryError, SwapCacheError
from vswapfast.pure.design_base import BACKINGS, VALUE_LIMIT, int_arg, value_arg
from vswapfast.pure.design_vswap_base import R_DEVICE_FULL, R_FULL, VswapBase
from vswapfast.pure.xarray import NEED_NODE, XA_NODE_SIZE, Xa, XaCtx, XaStats

__all__ = ["VswapTableDesign", "BACKINGS", "STRUCTURES"]

SWAPFILE_CLUSTER = 512
CLUSTER_SHIFT = 9
CLUSTER_MASK = SWAPFILE_CLUSTER - 1
VT_MAX_PAGES = 4294966784            # ALIGN_DOWN(UINT_MAX, SWAPFILE_CLUSTER)
VT_MAX_INDEX = VT_MAX_PAGES // SWAPFILE_CLUSTER - 1
NO_INDEX = 0xFFFFFFFF
SWAP_COUNT_LIMIT = (1 << 31) - 1
MAX_SLOTS = 1 << 32
READ_MAX_RETRIES = 1000

#: sizeof(struct swap_cluster_info_dynamic), sizeof(struct swap_cluster_info),
#: a swap table, a virtual table, a memcg table, an extend table.
CLUSTER_DYN_SIZE = 80
CLUSTER_INFO_SIZE = 48
TABLE_BYTES = 4096
VTABLE_BYTES = 4096
MEMCG_BYTES = 1024
EXTEND_BYTES = 2048

# swap table words (the compiled core's encoding)
SWP_TB_COUNT_SHIFT = 60
SWP_TB_COUNT_MAX = 15
SWP_TB_ZERO = 1 << 59
SWP_TB_FLAGS = ((1 << 64) - 1) & ~((1 << 59) - 1)
SWP_TB_BAD = (((1 << 64) - 1) & ~0xF) | 0x8
SWP_TB_PTR_MARK = 0x4
# virtual table words
VSWAP_NONE, VSWAP_SWAPFILE, VSWAP_ZSWAP = 0, 1, 2
VTABLE_TAG_BITS = 3
VTABLE_TAG_MASK = 7

CLUSTER_FLAG_NONE, CLUSTER_FLAG_NONFULL, CLUSTER_FLAG_FULL, CLUSTER_FLAG_DEAD = 0, 2, 4, 6

# entry checks (the compiled core's E_* codes) and results (with VswapBase's R_*)
E_OK, E_ZERO, E_NEGATIVE, E_RANGE, E_FREE = 0, 1, 2, 3, 4
R_BUSY, R_NOT_CACHED = -4, -5

STRUCTURES = ("cluster_info_dynamic", "cluster_info_dynamic_free", "swap_table",
              "swap_table_free", "virtual_table", "memcg_table", "extend_table",
              "cluster_map", "cluster_map_free", "cluster_info", "device_swap_table")


def stats_dict(core, nr_slots, used, nr_zswap, objs, nbytes, ll, lr, lk, xl, cl, al, dl, ql, pl):
    """The stats() dict of both cores, from values read by the caller:
    ``nbytes`` in the order of STRUCTURES; lock acquisitions: ``xl`` the
    pool's xa_lock, ``cl`` vswap clusters, ``al`` the allocator, ``dl`` the
    vswap device's si->lock, ``ql`` the swap device's si->lock, ``pl`` its
    clusters."""
    b = dict(zip(STRUCTURES, nbytes))
    s = {
        "design": "vswap-table",
        "core": core,
        "nr_slots": nr_slots,
        "used": used,
        "metadata_bytes": sum(b.values()),
        "metadata_objects": objs,
        "lock_acquisitions": xl + cl + al + dl + ql + pl,
        "cluster_lock_acquisitions": cl,
        "map_lock_acquisitions": xl,
        "allocator_lock_acquisitions": al,
        "device_lock_acquisitions": dl,
        "swap_device_lock_acquisitions": ql,
        "swap_cluster_lock_acquisitions": pl,
        "lockless_loads": ll,
        "load_retries": lr,
        "locked_loads": lk,
        "zswap_entries": nr_zswap,
    }
    for k, v in b.items():
        s["bytes_" + k] = v
    # the reverse map: the device's swap tables beyond cluster 0's (the header)
    s["bytes_reverse_map"] = max(0, b["device_swap_table"] - TABLE_BYTES)
    return s


def entry_message(entry, why):
    """The InvalidEntryError message of both cores (``why`` an E_* code)."""
    if why == E_ZERO:
        return "swap entry 0 is never allocated (0 means no entry)"
    if why == E_NEGATIVE:
        return "swap entry %d is negative; entries are unsigned" % entry
    if why == E_RANGE:
        return "swap entry %d is beyond the virtual swap device (%d pages)" % (
            entry, VT_MAX_PAGES)
    return "swap entry %d is not allocated (its swap table word is free)" % entry


def _entry_range(e):
    if e == 0:
        return E_ZERO
    if e < 0:
        return E_NEGATIVE
    if e >= VT_MAX_PAGES:
        return E_RANGE
    return E_OK


def _tb_is_folio(w):
    return w & 3 == 2


def _tb_is_shadow(w):
    return w & 1 == 1 and w != SWP_TB_BAD


def _tb_used(w):
    return w != 0 and w != SWP_TB_BAD


def _tb_payload(w):
    return w & ~SWP_TB_FLAGS


class _Cluster:
    """struct swap_cluster_info_dynamic: the embedded swap_cluster_info
    (lock, count, flags, table, extend and memcg tables), index, the
    sequence count (the rcu_head's word) and the virtual table."""

    __slots__ = ("lock", "count", "flags", "table", "extend", "memcg", "index", "seq",
                 "vtable", "token")

    def __init__(self, token):
        self.lock = threading.Lock()
        self.token = token
        self.count = 0
        self.flags = CLUSTER_FLAG_NONE
        self.table = [0] * SWAPFILE_CLUSTER
        self.extend = None
        self.memcg = None
        self.vtable = None
        self.index = NO_INDEX
        self.seq = 1


class VswapTableDesign(VswapBase):
    """The virtual swap space, swap table edition (RFC v2); see the
    compiled module and docs/designs.md."""

    _entry_message = staticmethod(entry_message)

    name = "vswap-table"
    _err_free = E_FREE

    def __init__(self, nr_slots):
        nr_slots = int_arg(nr_slots, "nr_slots")
        if not 1 <= nr_slots <= MAX_SLOTS:
            raise ValueError("nr_slots must be in 1 .. 2**32, not %d" % nr_slots)
        self._nr_slots = nr_slots
        self._nr_pclusters = -(-nr_slots // SWAPFILE_CLUSTER)
        self._max_used = nr_slots - 1
        self._map = Xa()
        self._map_ctx = XaCtx()
        self._by_token = {}
        self._id_top = 0
        self._dev_lock = threading.Lock()
        self._nonfull = []
        self._full = []
        self._spare = []
        self._local_lock = threading.Lock()
        self._cur = NO_INDEX
        self._count_lock = threading.Lock()
        # counted structures
        self._nr_live = 0               # clusters, each with its swap table
        self._nr_vtables = 0
        self._nr_memcg = 0
        self._nr_extend = 0
        self._nr_dev_tables = 0
        # the swap device
        self._pdev_lock = threading.Lock()
        self._next_pcluster = 0
        self._pci_count = [0] * self._nr_pclusters
        self._pci_table = [None] * self._nr_pclusters
        self._pci_locks = [threading.Lock() for _ in range(self._nr_pclusters)]
        self._table_reserve = None
        self._st = XaStats()
        self._cl = self._al = self._dl = self._ql = self._pl = 0
        self._used = 0
        self._nr_zswap = 0
        self._next_handle = 0
        self._life_init()
        # swapon of the device: cluster 0's table, the header slot bad
        self._pci_table[0] = [0] * SWAPFILE_CLUSTER
        self._pci_table[0][0] = SWP_TB_BAD
        self._pci_count[0] = 1
        self._nr_dev_tables = 1
        # the vswap device: cluster 0 in the pool, its slot 0 bad
        c0 = self._cluster_get(XaStats())
        self._cl = 0
        c0.index = 0
        c0.seq = 2
        c0.table[0] = SWP_TB_BAD
        c0.count = 1
        c0.flags = CLUSTER_FLAG_NONFULL
        self._nonfull.append(c0)
        self._map.store_locked(self._map_ctx, 0, c0.token)
        self._id_top = 1

    # -- life -------------------------------------------------------------
    def _free(self):
        self._map.destroy(self._map_ctx)
        self._map_ctx.destroy()
        self._by_token = {}
        self._nonfull = []
        self._full = []
        self._spare = []
        self._pci_table = []
        self._used = 0

    # -- locks, lookups, lock-free reads ----------------------------------
    def _dev_lock_take(self):
        self._dev_lock.acquire()
        self._dl += 1

    def _lookup(self, idx, st):
        w = self._map.load(idx, st)
        return self._by_token[w] if w else None

    def _swap_cluster_lock(self, idx):
        c = self._lookup(idx, self._st)
        if c is None:
            return None
        self._cluster_lock(c)
        if c.flags == CLUSTER_FLAG_DEAD or c.index != idx:
            c.lock.release()
            return None
        return c

    def _entry_lock(self, e):
        c = self._swap_cluster_lock(e >> CLUSTER_SHIFT)
        if c is not None and not _tb_used(c.table[e & CLUSTER_MASK]):
            c.lock.release()
            return None
        return c

    def _swap_table_read(self, e, st):
        """The compiled core's swap_table_read(): (E_OK, word) or (E_FREE, 0)."""
        idx = e >> CLUSTER_SHIFT
        for _ in range(READ_MAX_RETRIES):
            c = self._lookup(idx, st)
            if c is None:
                return E_FREE, 0
            s1 = c.seq
            if s1 & 1:
                return E_FREE, 0
            w = c.table[e & CLUSTER_MASK]
            if c.seq == s1:
                if c.index != idx or not _tb_used(w):
                    return E_FREE, 0
                st.lockless_loads += 1
                return E_OK, w
            st.load_retries += 1
        c = self._entry_lock(e)
        if c is None:
            return E_FREE, 0
        w = c.table[e & CLUSTER_MASK]
        c.lock.release()
        st.locked_loads += 1
        return E_OK, w

    def _entry_check(self, e):
        why = _entry_range(e)
        if why:
            return why
        return self._swap_table_read(e, XaStats())[0]

    # -- the swap device --------------------------------------------------
    def _device_slot_alloc(self, ventry):
        """(slot, 0) or (0, err), as the compiled core's."""
        while True:
            need_table = False
            found = 0
            with self._pdev_lock:
                self._ql += 1
                n = self._nr_pclusters
                for k in range(n):
                    p = (self._next_pcluster + k) % n
                    first = p * SWAPFILE_CLUSTER
                    last = min(first + SWAPFILE_CLUSTER, self._nr_slots)
                    if self._pci_count[p] >= last - first:
                        continue
                    self._pci_locks[p].acquire()
                    self._pl += 1
                    try:
                        t = self._pci_table[p]
                        if t is None:
                            t, self._table_reserve = self._table_reserve, None
                            self._pci_table[p] = t
                            if t is None:
                                need_table = True
                                break
                        for s in range(first, last):
                            if t[s - first] == 0:
                                t[s - first] = (ventry << 3) | SWP_TB_PTR_MARK
                                self._pci_count[p] += 1
                                found = s
                                break
                    finally:
                        self._pci_locks[p].release()
                    if found:
                        self._next_pcluster = p
                        break
            if not need_table:
                return (found, 0) if found else (0, R_DEVICE_FULL)
            with self._count_lock:
                if self._table_reserve is None:
                    self._table_reserve = [0] * SWAPFILE_CLUSTER
                    self._nr_dev_tables += 1

    def _device_slot_free(self, slot):
        p = slot // SWAPFILE_CLUSTER
        self._pci_locks[p].acquire()
        self._pl += 1
        try:
            self._pci_table[p][slot % SWAPFILE_CLUSTER] = 0
            self._pci_count[p] -= 1
            if not self._pci_count[p]:
                self._pci_table[p] = None
                with self._count_lock:
                    self._nr_dev_tables -= 1
        finally:
            self._pci_locks[p].release()

    # -- virtual clusters -------------------------------------------------
    def _cluster_get(self, st):
        with self._count_lock:
            self._nr_vtables += 1
            self._nr_memcg += 1
        c = None
        if self._spare:
            self._map.lock(st)
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
            for k in range(SWAPFILE_CLUSTER):
                c.table[k] = 0
            c.vtable = [VSWAP_NONE] * SWAPFILE_CLUSTER
            c.memcg = [0] * SWAPFILE_CLUSTER
            c.extend = None
            c.count = 0
            c.flags = CLUSTER_FLAG_NONE
        finally:
            c.lock.release()
        return c

    def _drop_tables(self, vt, mt, ext):
        with self._count_lock:
            self._nr_vtables -= vt is not None
            self._nr_memcg -= mt is not None
            self._nr_extend -= ext is not None

    def _alloc_swap_scan_dynamic(self):
        c = self._cluster_get(self._st)
        while True:
            self._map.lock(self._st)
            try:
                idx = 1
                while idx <= VT_MAX_INDEX and self._map.load_locked(idx):
                    idx += 1
                if idx <= VT_MAX_INDEX:
                    c.index = idx
                    c.seq += 1
                    if self._map.store_locked(self._map_ctx, idx, c.token) != NEED_NODE:
                        self._id_top = max(self._id_top, idx + 1)
                        return c, 0
                    c.seq += 1
                    c.index = NO_INDEX
                else:
                    vt, mt = c.vtable, c.memcg
                    c.vtable = c.memcg = None
                    self._put_spare_locked(c)
                    self._drop_tables(vt, mt, None)
                    return None, R_FULL
            finally:
                self._map.unlock()
            self._map_ctx.reserve1()

    def _vswap_free_cluster(self, c):
        """Under the cluster lock; returns the detached tables."""
        out = (c.vtable, c.memcg, c.extend)
        c.vtable = c.memcg = c.extend = None
        if c.flags != CLUSTER_FLAG_NONE:
            self._dev_lock_take()
            try:
                self._list_del(c)
            finally:
                self._dev_lock.release()
        self._map.lock(self._st)
        try:
            self._map.store_locked(self._map_ctx, c.index, 0)
            c.flags = CLUSTER_FLAG_DEAD
            c.seq += 1
            self._put_spare_locked(c)
        finally:
            self._map.unlock()
        return out

    def _list_del(self, c):
        if c.flags == CLUSTER_FLAG_NONFULL:
            self._nonfull.remove(c)
        elif c.flags == CLUSTER_FLAG_FULL:
            self._full.remove(c)

    def _relocate_full_locked(self, c):
        self._dev_lock_take()
        try:
            if c.flags != CLUSTER_FLAG_NONE:
                self._list_del(c)
            self._full.append(c)
            c.flags = CLUSTER_FLAG_FULL
        finally:
            self._dev_lock.release()

    def _partial_free_locked(self, c):
        if c.flags == CLUSTER_FLAG_FULL:
            self._dev_lock_take()
            try:
                self._full.remove(c)
                self._nonfull.append(c)
                c.flags = CLUSTER_FLAG_NONFULL
            finally:
                self._dev_lock.release()

    # -- allocation -------------------------------------------------------
    def _alloc_in_cluster(self, c, folio, memcg):
        if c.count >= SWAPFILE_CLUSTER:
            return 0
        t = c.table
        for off in range(SWAPFILE_CLUSTER):
            if t[off] == 0:
                break
        else:
            return 0
        t[off] = (1 << SWP_TB_COUNT_SHIFT) | (folio << 2) | 2
        c.memcg[off] = memcg
        c.vtable[off] = VSWAP_NONE
        c.count += 1
        if c.count == SWAPFILE_CLUSTER:
            self._relocate_full_locked(c)
        return (c.index << CLUSTER_SHIFT) | off

    def _vswap_alloc(self, folio, memcg):
        if not self._reserve_used():
            return 0, R_FULL
        e = 0
        with self._local_lock:
            self._al += 1
            cur = self._cur
            if cur != NO_INDEX:
                c = self._swap_cluster_lock(cur)
                if c is not None:
                    e = self._alloc_in_cluster(c, folio, memcg)
                    if c.count == SWAPFILE_CLUSTER:
                        self._cur = NO_INDEX
                    c.lock.release()
                if e == 0:
                    self._cur = NO_INDEX
            if e == 0:
                c = None
                self._dev_lock_take()
                try:
                    for p in self._nonfull:
                        if p.lock.acquire(blocking=False):
                            self._cl += 1
                            self._nonfull.remove(p)
                            p.flags = CLUSTER_FLAG_NONE
                            c = p
                            break
                finally:
                    self._dev_lock.release()
                if c is not None:
                    e = self._alloc_in_cluster(c, folio, memcg)
                    if e and c.count < SWAPFILE_CLUSTER:
                        self._cur = c.index
                    c.lock.release()
        if e == 0:
            c, err = self._alloc_swap_scan_dynamic()
            if c is None:
                with self._count_lock:
                    self._used -= 1
                return 0, err
            with self._local_lock:
                self._al += 1
                self._cluster_lock(c)
                try:
                    e = self._alloc_in_cluster(c, folio, memcg)
                    if self._cur == NO_INDEX:
                        self._cur = c.index
                    elif c.flags == CLUSTER_FLAG_NONE:
                        self._dev_lock_take()
                        self._nonfull.append(c)
                        c.flags = CLUSTER_FLAG_NONFULL
                        self._dev_lock.release()
                finally:
                    c.lock.release()
        return e, 0

    # the memcg and the folio are recorded inside, under the cluster lock
    _folio_alloc_swap_one = _vswap_alloc

    # -- counts and release -----------------------------------------------
    @staticmethod
    def _count_of(c, w, off):
        n = w >> SWP_TB_COUNT_SHIFT
        if n == SWP_TB_COUNT_MAX and c.extend is not None:
            return c.extend[off]
        return n

    @staticmethod
    def _set_count_locked(c, off, count):
        w = c.table[off]
        in_word = count
        if count >= SWP_TB_COUNT_MAX:
            if c.extend is None:
                return False
            c.extend[off] = count
            in_word = SWP_TB_COUNT_MAX
        elif c.extend is not None and c.extend[off]:
            c.extend[off] = 0
        c.table[off] = (w & ~(0xF << SWP_TB_COUNT_SHIFT)) | (in_word << SWP_TB_COUNT_SHIFT)
        return True

    def _release_backing_locked(self, c, off):
        v = c.vtable[off]
        slot = 0
        if v & VTABLE_TAG_MASK == VSWAP_SWAPFILE:
            slot = v >> VTABLE_TAG_BITS
        elif v & VTABLE_TAG_MASK == VSWAP_ZSWAP:
            with self._count_lock:
                self._nr_zswap -= 1
        c.vtable[off] = VSWAP_NONE
        c.table[off] &= ~SWP_TB_ZERO
        return slot

    def _swap_free_one(self, e):
        c = self._entry_lock(e)
        if c is None:
            return False
        off = e & CLUSTER_MASK
        count = self._count_of(c, c.table[off], off) - 1
        if count:
            self._set_count_locked(c, off, count)
            ext = None
            if c.extend is not None and not any(c.extend):
                ext, c.extend = c.extend, None
            c.lock.release()
            if ext is not None:
                with self._count_lock:
                    self._nr_extend -= 1
            return True
        slot = self._release_backing_locked(c, off)
        c.memcg[off] = 0
        if c.extend is not None:
            c.extend[off] = 0
        c.table[off] = 0
        c.count -= 1
        tables = (None, None, None)
        if c.count == 0 and c.index != 0:
            tables = self._vswap_free_cluster(c)
        else:
            self._partial_free_locked(c)
        c.lock.release()
        self._drop_tables(*tables)
        if slot:
            self._device_slot_free(slot)
        with self._count_lock:
            self._used -= 1
        return True

    # -- backings ---------------------------------------------------------
    def _zswap_store_one(self, e, handle):
        c = self._entry_lock(e)
        if c is None:
            return False, 0
        off = e & CLUSTER_MASK
        v = c.vtable[off]
        old = v >> VTABLE_TAG_BITS if v & VTABLE_TAG_MASK == VSWAP_ZSWAP else 0
        slot = self._release_backing_locked(c, off)
        c.vtable[off] = (handle << VTABLE_TAG_BITS) | VSWAP_ZSWAP
        with self._count_lock:
            self._nr_zswap += 1
        c.lock.release()
        if slot:
            self._device_slot_free(slot)
        return True, old

    def _zswap_load_one(self, e):
        c = self._entry_lock(e)
        if c is None:
            return False, 0
        v = c.vtable[e & CLUSTER_MASK]
        c.lock.release()
        return True, (v >> VTABLE_TAG_BITS if v & VTABLE_TAG_MASK == VSWAP_ZSWAP else 0)

    def _zswap_erase_one(self, e):
        c = self._entry_lock(e)
        if c is None:
            return False, 0
        off = e & CLUSTER_MASK
        v = c.vtable[off]
        old = 0
        if v & VTABLE_TAG_MASK == VSWAP_ZSWAP:
            old = v >> VTABLE_TAG_BITS
            self._release_backing_locked(c, off)
        c.lock.release()
        return True, old

    def _set_zero_one(self, e):
        c = self._entry_lock(e)
        if c is None:
            return (False,)
        off = e & CLUSTER_MASK
        slot = self._release_backing_locked(c, off)
        c.table[off] |= SWP_TB_ZERO
        c.lock.release()
        if slot:
            self._device_slot_free(slot)
        return (True,)

    def _writeout_one(self, e):
        """(slot, 0), (0, E_FREE) or (0, err)."""
        off = e & CLUSTER_MASK
        c = self._entry_lock(e)
        if c is None:
            return 0, E_FREE
        if c.vtable[off] & VTABLE_TAG_MASK != VSWAP_SWAPFILE:
            self._release_backing_locked(c, off)
        c.lock.release()
        c = self._entry_lock(e)
        if c is None:
            return 0, E_FREE
        v = c.vtable[off]
        c.lock.release()
        if v & VTABLE_TAG_MASK == VSWAP_SWAPFILE:
            return v >> VTABLE_TAG_BITS, 0
        s, err = self._device_slot_alloc(e)
        if not s:
            return 0, err
        c = self._entry_lock(e)
        if c is None:
            self._device_slot_free(s)
            return 0, E_FREE
        v = c.vtable[off]
        if v & VTABLE_TAG_MASK == VSWAP_SWAPFILE:
            c.lock.release()
            self._device_slot_free(s)
            return v >> VTABLE_TAG_BITS, 0
        self._release_backing_locked(c, off)
        c.vtable[off] = (s << VTABLE_TAG_BITS) | VSWAP_SWAPFILE
        c.lock.release()
        return s, 0

    def _cache_del_one(self, e, folio, shadow):
        """(E_OK, _), (E_FREE, _) or (R_NOT_CACHED, word)."""
        c = self._entry_lock(e)
        if c is None:
            return E_FREE, 0
        off = e & CLUSTER_MASK
        w = c.table[off]
        if not _tb_is_folio(w) or _tb_payload(w) != (folio << 2) | 2:
            c.lock.release()
            return R_NOT_CACHED, w
        c.table[off] = (w & SWP_TB_FLAGS) | (shadow << 1) | 1
        c.lock.release()
        return E_OK, 0

    def _cache_add_one(self, e, folio):
        c = self._entry_lock(e)
        if c is None:
            return E_FREE, 0
        off = e & CLUSTER_MASK
        w = c.table[off]
        c.lock.release()
        if _tb_is_folio(w):
            return R_BUSY, 0
        c = self._entry_lock(e)
        if c is None:
            return E_FREE, 0
        w = c.table[off]
        if _tb_is_folio(w):
            c.lock.release()
            return R_BUSY, 0
        c.table[off] = (w & SWP_TB_FLAGS) | (folio << 2) | 2
        c.lock.release()
        return E_OK, w

    # -- the API ----------------------------------------------------------
    def _entry_op(self, entry, op, *args):
        """Run ``op(entry, *args)`` (a tuple whose first item is False when
        the entry is not allocated) inside the call; InvalidEntryError."""
        entry = int_arg(entry, "swap entry")
        self._enter()
        try:
            why = _entry_range(entry)
            if not why:
                res = op(entry, *args)
                if res[0] is False:
                    why = E_FREE
        finally:
            self._exit()
        if why:
            raise InvalidEntryError(entry_message(entry, why))
        return res

    def folio_alloc_swap(self, folio, memcg=0):
        """folio_alloc_swap() -> vswap_alloc() (2/7)."""
        folio = value_arg(folio, "folio", 1, VALUE_LIMIT - 1)
        memcg = value_arg(memcg, "memcg", 0, 65535)
        self._enter()
        try:
            e, err = self._vswap_alloc(folio, memcg)
            if not e:
                self._raise_full(err)
            return e
        finally:
            self._exit()

    def _word(self, entry):
        def read(e):
            why, w = self._swap_table_read(e, self._st)
            return (why == E_OK, w)
        return self._entry_op(entry, read)[1]

    def swap_cache_get_folio(self, entry):
        """swap_table_get() under RCU, no lock."""
        w = self._word(entry)
        return _tb_payload(w) >> 2 if _tb_is_folio(w) else None

    def swap_cache_get_shadow(self, entry):
        """swap_table_get() under RCU, no lock."""
        w = self._word(entry)
        return _tb_payload(w) >> 1 if _tb_is_shadow(w) else None

    def swap_cache_add_folio(self, entry, folio):
        """__swap_cache_alloc(): the check and the add under the cluster lock."""
        entry = int_arg(entry, "swap entry")
        folio = value_arg(folio, "folio", 1, VALUE_LIMIT - 1)

        def add(e):
            rc, old = self._cache_add_one(e, folio)
            return (rc != E_FREE, rc, old)
        _, rc, old = self._entry_op(entry, add)
        if rc == R_BUSY:
            raise SwapCacheError("swap entry %d already has a folio in the swap cache" % entry)
        return _tb_payload(old) >> 1 if _tb_is_shadow(old) else None

    def swap_cache_del_folio(self, entry, folio, shadow=0):
        """swap_cache_del_folio(): the folio replaced by its shadow."""
        entry = int_arg(entry, "swap entry")
        folio = value_arg(folio, "folio", 1, VALUE_LIMIT - 1)
        shadow = value_arg(shadow, "shadow", 0, VALUE_LIMIT - 1)

        def delete(e):
            rc, cur = self._cache_del_one(e, folio, shadow)
            return (rc != E_FREE, rc, cur)
        _, rc, cur = self._entry_op(entry, delete)
        if rc:
            raise SwapCacheError(
                "folio %d is not the one in the swap cache of entry %d (%s)"
                % (folio, entry, "folio %d" % (_tb_payload(cur) >> 2) if _tb_is_folio(cur)
                   else "no folio"))

    def zswap_entry_store(self, entry, handle):
        """vswap_zswap_store() (2/7), under the cluster lock."""
        entry = int_arg(entry, "swap entry")
        handle = value_arg(handle, "handle", 1, VALUE_LIMIT - 1)
        return self._entry_op(entry, self._zswap_store_one, handle)[1] or None

    def zswap_entry_load(self, entry):
        """vswap_zswap_load() (2/7), under the cluster lock."""
        return self._entry_op(entry, self._zswap_load_one)[1] or None

    def zswap_entry_erase(self, entry):
        """folio_release_vswap_backing() of a zswap-backed slot."""
        return self._entry_op(entry, self._zswap_erase_one)[1] or None

    def set_zero(self, entry):
        """swap_zeromap_folio_set() (2/7)."""
        self._entry_op(entry, self._set_zero_one)

    def is_zero(self, entry):
        """The zero flag, read under RCU with no lock."""
        return bool(self._word(entry) & SWP_TB_ZERO)

    def swap_writeout(self, entry):
        """folio_release_non_phys_swap_backing() + folio_realloc_swap()."""
        entry = int_arg(entry, "swap entry")
        self._enter()
        try:
            why = _entry_range(entry)
            if not why:
                slot, err = self._writeout_one(entry)
                if err == E_FREE:
                    why = E_FREE
                elif err:
                    self._raise_full(err)
        finally:
            self._exit()
        if why:
            raise InvalidEntryError(entry_message(entry, why))
        return slot

    def get_slot(self, entry):
        """vswap_to_phys() (3/7), under the cluster lock."""
        def read(e):
            c = self._entry_lock(e)
            if c is None:
                return (False, 0)
            v = c.vtable[e & CLUSTER_MASK]
            c.lock.release()
            return (True, v)
        v = self._entry_op(entry, read)[1]
        return v >> VTABLE_TAG_BITS if v & VTABLE_TAG_MASK == VSWAP_SWAPFILE else None

    def swap_duplicate(self, entry):
        """swap_dup_entries_cluster(), under the cluster lock."""
        entry = int_arg(entry, "swap entry")
        off = entry & CLUSTER_MASK
        self._enter()
        try:
            why = _entry_range(entry)
            if why:
                raise InvalidEntryError(entry_message(entry, why))
            while True:
                c = self._entry_lock(entry)
                if c is None:
                    raise InvalidEntryError(entry_message(entry, E_FREE))
                count = self._count_of(c, c.table[off], off) + 1
                if count > SWAP_COUNT_LIMIT:
                    c.lock.release()
                    raise ValueError("swap count of entry %d would exceed 2**31 - 1" % entry)
                done = self._set_count_locked(c, off, count)
                c.lock.release()
                if done:
                    return count
                with self._count_lock:        # swap_extend_table_alloc(), no lock held
                    self._nr_extend += 1
                ext = [0] * SWAPFILE_CLUSTER
                c = self._entry_lock(entry)
                if c is not None and c.extend is None:
                    c.extend = ext
                    ext = None
                if c is not None:
                    c.lock.release()
                if ext is not None:
                    with self._count_lock:
                        self._nr_extend -= 1
        finally:
            self._exit()

    def swap_count(self, entry):
        """swp_swapcount(), under the cluster lock."""
        def read(e):
            c = self._entry_lock(e)
            if c is None:
                return (False, 0)
            off = e & CLUSTER_MASK
            n = self._count_of(c, c.table[off], off)
            c.lock.release()
            return (True, n)
        return self._entry_op(entry, read)[1]

    def swap_free(self, entry):
        """swap_put_entries_cluster() of one entry."""
        self._entry_op(entry, lambda e: (self._swap_free_one(e),))

    # -- loops ------------------------------------------------------------
    def _run_loop(self, em, hm, om, batch, op):
        if op == "free" or not batch:
            return self._run_per_page(em, hm, om, op)
        hits = 0
        n = len(em)
        i = 0
        while i < n:
            idx = em[i] >> CLUSTER_SHIFT
            j = i + 1
            while j < n and em[j] >> CLUSTER_SHIFT == idx:
                j += 1
            c = self._swap_cluster_lock(idx)
            for k in range(i, j):
                x = 0
                off = em[k] & CLUSTER_MASK
                if c is not None and _tb_used(c.table[off]):
                    v = c.vtable[off]
                    if v & VTABLE_TAG_MASK == VSWAP_ZSWAP:
                        x = v >> VTABLE_TAG_BITS
                    if op == "store":
                        slot = self._release_backing_locked(c, off)
                        c.vtable[off] = (hm[k] << VTABLE_TAG_BITS) | VSWAP_ZSWAP
                        with self._count_lock:
                            self._nr_zswap += 1
                        if slot:
                            c.lock.release()
                            self._device_slot_free(slot)
                            c = self._swap_cluster_lock(idx)
                    elif op == "erase" and x:
                        self._release_backing_locked(c, off)
                if op == "load":
                    om[k] = x
                hits += x != 0
            if c is not None:
                c.lock.release()
            i = j
        return hits

    # -- introspection ----------------------------------------------------
    def _bytes(self):
        nspare = len(self._spare)
        nbytes = [self._nr_live * CLUSTER_DYN_SIZE, nspare * CLUSTER_DYN_SIZE,
                  self._nr_live * TABLE_BYTES, nspare * TABLE_BYTES,
                  self._nr_vtables * VTABLE_BYTES, self._nr_memcg * MEMCG_BYTES,
                  self._nr_extend * EXTEND_BYTES,
                  self._map_ctx.live_bytes, self._map_ctx.cached_bytes,
                  self._nr_pclusters * CLUSTER_INFO_SIZE,
                  self._nr_dev_tables * TABLE_BYTES]
        objs = (2 * (self._nr_live + nspare) + self._nr_vtables + self._nr_memcg
                + self._nr_extend
                + (self._map_ctx.live_bytes + self._map_ctx.cached_bytes) // XA_NODE_SIZE
                + 1 + self._nr_dev_tables)
        return nbytes, objs

    def stats(self):
        """Counters and byte counts; see docs/designs.md."""
        self._check_open()
        nbytes, objs = self._bytes()
        st = self._st
        return stats_dict("pure", self._nr_slots, self._used, self._nr_zswap, objs, nbytes,
                          st.lockless_loads, st.load_retries, st.locked_loads,
                          st.lock_acquisitions, self._cl, self._al, self._dl, self._ql,
                          self._pl)
