"""Virtual swap space in pure Python: the twin of the compiled core.

This module follows ``mm/vswap.c`` of the virtual swap space series, with the
zswap entry kept in the swap descriptor as the seed patch does.  It has the
same API and behaviour as ``vswapfast._vswap`` (see ``docs/semantics.md``)
and serves as the reference the compiled core is tested against, so it is
written to be read first and to be fast second.

Layout
------
A swap entry is ``cluster_id << cluster_shift | index``.  Each cluster
(``_Cluster``) owns ``1 << cluster_shift`` descriptors, kept as three
parallel lists that mirror the fields of ``struct swp_desc``:

    backing       the union of the physical swap slot and the zswap entry:
                  a slot (an int) when the type is SWAPFILE, the zswap
                  entry object when it is ZSWAP, else None
    type          the backing type (v6's ``enum swap_type``): NONE,
                  SWAPFILE, ZERO, ZSWAP or FOLIO (the swap-cache folio)
    swap_cache    the union: a folio (any object), a ``_Shadow``, or None

One backing per descriptor, as v6 patch 14 makes it: storing a new backing
releases the old one (``release_backing()``).  Read and write ``backing``
and ``type`` only through the ``_desc_*`` accessors below, as the compiled
core does through the ``vswap_desc_*`` ones of ``_vswap.pxd``.

plus an allocation bitmap (a Python int, bit ``i`` set = descriptor ``i``
allocated).

Locking
-------
    _Cluster.lock  ->  VSwap._map_lock          (v6 mm/vswap.c)

The map lock guards the cluster map, cluster id allocation, the per-order
partial lists, the per-thread allocation caches and the lock statistics of
released clusters.  A cluster's lock guards its bitmap, count, descriptors
and ``nr_zswap``.  ``full`` and ``refcount`` change only with both locks
held, so either lock is enough to read them.

A thread holds at most one cluster lock at a time.  Allocation, which walks
the partial lists under the map lock, takes cluster locks there only with a
non-blocking try (``spin_trylock``), skipping a busy cluster.  Lookups of a single entry read the
cluster map without the map lock (a dict read is atomic, as an RCU lookup of
the xarray is in the kernel) and then validate under the cluster lock: a
released cluster has an empty bitmap, so a stale lookup finds nothing
allocated.

No user code runs under a cluster lock: descriptors are compared by
identity only, and objects displaced from descriptors are dropped after the
lock is released (dropping the last reference may run a ``__del__``).

The zswap pool
--------------
A ``Zswap`` pool (``vswapfast.pure.zswap``) binds itself to at most one
space by setting ``_zswap_pool`` to a weak reference to itself under the map
lock (weak, so that a pool nobody holds is closed and gives its entries
back, rather than living on in its space), and puts its own objects in the
descriptors' zswap field: pool entries and the ZERO marker.  This class
never looks inside them.  The zswap calls here and ``free`` take a strong
reference to the pool under the cluster lock and, once that lock is
dropped, hand the pool what they read or displaced:

    pool._view(obj, entry)     the ZswapEntryView that stands for a pool
                               object stored at ``entry``; any other object
                               is returned unchanged
    pool._release_entry(obj)   free a pool object displaced from a
                               descriptor; any other object is ignored
    pool._release_slot(entry, slot)
                               free ``slot`` in the pool's swap file if it
                               holds the page of ``entry`` there (the
                               file's reverse map says so)
    pool._slot_assigned(entry, slot)
                               called by ``set_slot`` under the cluster
                               lock: a slot allocated in the pool's file
                               now holds the page of ``entry``
    pool._range_freed(entry, nr)
                               called by ``free`` under the cluster lock,
                               once the bitmap has let go of the range: a
                               pool that keeps its entries in an index of
                               its own (the tree designs) takes those of the
                               range out and returns them, to be handed to
                               ``_release_entry`` after the lock

Reading ``_zswap_pool`` under the cluster lock matters when the pool is
closed: it takes its objects out of every cluster, under each cluster's
lock, before it unbinds, so whoever displaced one of them first still sees
the pool.  The pool in turn works on the clusters directly, in the lock
order cluster lock -> its own locks.

Batch calls
-----------
The ``*_many`` calls take a buffer of entries and return one status per
entry (``vswapfast.batch``).  A run of entries in one cluster takes its lock
once (``_ClusterRun``), and what they displace is released after the last
lock is dropped.  The batch zswap-entry calls store integer handles,
wrapped in ``_Handle`` so that they can be told from any other object (an
int stored through ``zswap_entry_store`` included); the single-entry calls
return a handle as its int.
"""

import array
import ctypes
import heapq
import operator
import sys
import threading

from ..batch import (
    BATCH_BAD_HANDLE,
    BATCH_EMPTY,
    BATCH_FOREIGN,
    BATCH_INVALID,
    BATCH_OK,
    HANDLE_LIMIT,
)
from ..errors import (
    InvalidEntryError,
    SwapCacheError,
    SwapFullError,
    bad_entry_message,
)

__all__ = [
    "SWP_DESC_SIZE",
    "VSWAP_CLUSTER_SHIFT",
    "VSWAP_CLUSTER_SIZE",
    "VSWAP_MAX_CLUSTERS",
    "VSwap",
]


class _SwpDescCache(ctypes.Union):
    """The swap-cache half of ``struct swp_desc``: a folio or a shadow."""

    _fields_ = [
        ("swap_cache", ctypes.c_void_p),
        ("shadow", ctypes.c_void_p),
    ]


class _SwpDescBacking(ctypes.Union):
    """The backing half of ``struct swp_desc``: a slot or a zswap entry."""

    _fields_ = [
        ("slot", ctypes.c_uint64),
        ("zswap_entry", ctypes.c_void_p),
    ]


class _SwpDesc(ctypes.Structure):
    """``struct swp_desc`` as the v6 series lays it out (24 bytes).

    ``swap_count``, ``memcgid`` and ``in_swapcache`` are the kernel's and not
    used by the model yet; ``type`` is 3 bits here (the kernel's 2 bits
    plus the model's NONE).
    """

    _anonymous_ = ("backing", "cache")
    _fields_ = [
        ("backing", _SwpDescBacking),
        ("cache", _SwpDescCache),
        ("swap_count", ctypes.c_uint32),
        ("memcgid", ctypes.c_uint16),
        ("in_swapcache", ctypes.c_uint8, 1),
        ("type", ctypes.c_uint8, 3),
    ]


# The backing types (v6 ``enum swap_type``, and the model's NONE: the
# kernel hands every entry out FOLIO-backed, here an entry may be allocated
# with no folio, and a folio may leave the swap cache of an entry it backs).
VSWAP_NONE = 0
VSWAP_SWAPFILE = 1
VSWAP_ZERO = 2
VSWAP_ZSWAP = 3
VSWAP_FOLIO = 4
_TYPE_NAMES = ("none", "swapfile", "zero", "zswap", "folio")


class _ZeroMarker:
    """The type of ``ZSWAP_ZERO``, which stands for the ZERO backing type
    where a zswap value is read or stored (the compiled core's
    ``VSWAP_ZSWAP_ZERO``): a zero-filled page, no pool memory."""

    __slots__ = ()

    def __repr__(self):
        return "<zswap ZERO>"


#: The one ZERO marker: ``_desc_zswap`` returns it for a ZERO-backed
#: descriptor, and ``_desc_set_zswap`` makes a descriptor ZERO-backed for it.
ZSWAP_ZERO = _ZeroMarker()


#: sizeof(struct swp_desc): the per-entry descriptor, as in the kernel.
SWP_DESC_SIZE = ctypes.sizeof(_SwpDesc)
#: Default log2 of the cluster size (VSWAP_CLUSTER_SHIFT).
VSWAP_CLUSTER_SHIFT = 9
#: Default number of descriptors in a cluster (1 << VSWAP_CLUSTER_SHIFT).
VSWAP_CLUSTER_SIZE = 1 << VSWAP_CLUSTER_SHIFT
#: Default number of cluster ids the map can hand out.
VSWAP_MAX_CLUSTERS = 1 << 20

# Bounds of the constructor arguments and of the values a descriptor holds.
_MAX_CLUSTER_SHIFT = 9
_MAX_CLUSTERS_LIMIT = 1 << 24
_SLOT_LIMIT = 1 << 64
_SHADOW_LIMIT = 1 << 62


class _Shadow:
    """A shadow value in the swap-cache union.

    The kernel tells a shadow from a folio pointer by a tag bit
    (``xa_is_value``); here the wrapper type is the tag, so that any object,
    an int included, can be a folio.
    """

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


class _Handle:
    """An integer handle in a descriptor's zswap field.

    The batch zswap-entry calls store handles, ints in ``[1, 2**62)``.  The
    compiled core tags them in the pointer; here the wrapper type is the
    tag, so that an int stored through ``zswap_entry_store`` stays an
    ordinary object (``BATCH_FOREIGN`` to the batch calls).  The
    single-entry calls hand a handle out as its plain int.
    """

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __repr__(self):
        return "<zswap handle %d>" % self.value


def _unwrap(obj):
    """What the single-entry API returns for a zswap field's ``obj``."""
    return obj.value if type(obj) is _Handle else obj


class _Cluster:
    """``struct vswap_cluster``: one lock, one bitmap, one descriptor array.

    ``refcount`` is 1 for the cluster map plus 1 per thread allocation cache
    that points here; it is 0 once the cluster has been released.
    """

    __slots__ = (
        "lock",
        "id",
        "count",
        "order",
        "refcount",
        "full",
        "bitmap",
        "backing",
        "type",
        "swap_cache",
        "nr_zswap",
        "lock_acquisitions",
        "lock_contended",
    )

    def __init__(self, cluster_id, order, size):
        self.lock = threading.Lock()
        self.id = cluster_id
        self.count = 0
        self.order = order
        self.refcount = 1
        self.full = False
        self.bitmap = 0
        self.backing = [None] * size
        self.type = [VSWAP_NONE] * size
        self.swap_cache = [None] * size
        self.nr_zswap = 0
        self.lock_acquisitions = 0
        self.lock_contended = 0


# -- the backing of a descriptor --------------------------------------------
#
# One backing at a time.  The setters hand back what they displaced, for the
# caller to release once the cluster lock is dropped (a slot through the
# bound pool's ``_release_slot``, a pool entry through ``_release_entry``,
# any other object by dropping it), as ``release_backing()`` drops the
# cluster lock to free physical slots.  Callers hold the cluster lock.

def _is_folio(value):
    """Whether a swap-cache value is a folio (not a shadow, not empty)."""
    return value is not None and type(value) is not _Shadow


def _desc_fallback(cluster, i):
    """The type of a descriptor whose backing is released with nothing in
    its place: FOLIO when its swap cache holds a folio (the only copy, as
    ``vswap_store_folio()`` leaves it after an exclusive load), else NONE."""
    return VSWAP_FOLIO if _is_folio(cluster.swap_cache[i]) else VSWAP_NONE


def _desc_zswap(cluster, i):
    """The zswap value of descriptor ``i``: its zswap entry when ZSWAP-backed,
    ``ZSWAP_ZERO`` when ZERO, else None (``zswap_entry_load()``)."""
    kind = cluster.type[i]
    if kind == VSWAP_ZSWAP:
        return cluster.backing[i]
    if kind == VSWAP_ZERO:
        return ZSWAP_ZERO
    return None


def _desc_slot(cluster, i):
    """The slot of a SWAPFILE-backed descriptor, else 0
    (``swp_entry_to_swp_slot()``)."""
    return cluster.backing[i] if cluster.type[i] == VSWAP_SWAPFILE else 0


def _desc_set_zswap(cluster, i, z):
    """Make zswap value ``z`` the backing (``zswap_entry_store()``: ZSWAP, or
    ZERO for ``ZSWAP_ZERO``); None releases a zswap backing, leaving
    ``_desc_fallback``.  Keeps ``nr_zswap``.  The caller read the old zswap
    value (``_desc_zswap``) to release it.  Return: the slot displaced from a
    SWAPFILE backing (0: none), to release too."""
    kind = cluster.type[i]
    old_slot = cluster.backing[i] if kind == VSWAP_SWAPFILE else 0
    had = kind == VSWAP_ZSWAP or kind == VSWAP_ZERO
    if z is None:
        cluster.backing[i] = None
        cluster.type[i] = _desc_fallback(cluster, i)
        if had:
            cluster.nr_zswap -= 1
        return old_slot
    if z is ZSWAP_ZERO:
        cluster.backing[i] = None
        cluster.type[i] = VSWAP_ZERO
    else:
        cluster.backing[i] = z
        cluster.type[i] = VSWAP_ZSWAP
    if not had:
        cluster.nr_zswap += 1
    return old_slot


def _desc_drop_slot(cluster, i):
    """Release a SWAPFILE backing, leaving ``_desc_fallback``.  Return: its
    slot, or 0 (nothing changed) when the descriptor has none."""
    if cluster.type[i] != VSWAP_SWAPFILE:
        return 0
    slot = cluster.backing[i]
    cluster.backing[i] = None
    cluster.type[i] = _desc_fallback(cluster, i)
    return slot


def _desc_set_slot(cluster, i, slot):
    """Make ``slot`` the backing (SWAPFILE, as ``vswap_alloc_swap_slot()``
    sets it at writeback); 0 releases a slot backing only.  Keeps
    ``nr_zswap``.  Return: ``(old slot or 0, old zswap value or None)``."""
    if not slot:
        return _desc_drop_slot(cluster, i), None
    old_slot = _desc_slot(cluster, i)
    z = _desc_zswap(cluster, i)
    if z is not None:
        cluster.nr_zswap -= 1
    cluster.backing[i] = slot
    cluster.type[i] = VSWAP_SWAPFILE
    return old_slot, z


def _desc_cache_changed(cluster, i):
    """After the swap cache of descriptor ``i`` changed: a descriptor with no
    backing whose folio enters the swap cache is backed by it (v6 allocates
    with the folio: FOLIO); a FOLIO-backed one whose folio leaves has no
    backing left (the kernel frees the entry or backs it elsewhere first)."""
    kind = cluster.type[i]
    if kind == VSWAP_NONE and _is_folio(cluster.swap_cache[i]):
        cluster.type[i] = VSWAP_FOLIO
    elif kind == VSWAP_FOLIO and not _is_folio(cluster.swap_cache[i]):
        cluster.type[i] = VSWAP_NONE


def _backing_counts(d, types):
    """Add the descriptors per backing type to ``d``, by the names of v6's
    enum swap_type (and the model's "none"): ``backing_none``,
    ``backing_zero``, ``backing_zswap``, ``backing_swapfile``,
    ``backing_folio``."""
    for name in ("none", "zero", "zswap", "swapfile", "folio"):
        d["backing_" + name] = types[_TYPE_NAMES.index(name)]
    return d


def _lock_counted(holder):
    """Take ``holder.lock``, counting the acquisition and any contention.

    Every lock whose use the statistics report goes through here: cluster
    locks, the trees of the zswap index designs and a zswap pool's LRU
    lock.
    ``holder`` has the attributes ``lock``, ``lock_acquisitions`` and
    ``lock_contended``.  "Contended" means the first, non-blocking try
    failed, where a spinlock would have had to spin.  The counters are
    written once the lock is held, so the lock guards them like the rest of
    what it protects.
    """
    lock = holder.lock
    if lock.acquire(False):
        holder.lock_acquisitions += 1
        return
    lock.acquire()
    holder.lock_acquisitions += 1
    holder.lock_contended += 1


#: Cluster locks are the commonest holders; the name says what is locked.
_lock_cluster = _lock_counted


class _CountedLock:
    """A lock on its own that counts its use through ``_lock_counted``.

    Usable in a ``with`` statement.  The counters are read under the lock.
    """

    __slots__ = ("lock", "lock_acquisitions", "lock_contended")

    def __init__(self):
        self.lock = threading.Lock()
        self.lock_acquisitions = 0
        self.lock_contended = 0

    def __enter__(self):
        _lock_counted(self)
        return self

    def __exit__(self, *exc):
        self.lock.release()


def _as_entry(x):
    """Convert a swap entry argument that is not an exact int."""
    # bool has __index__ but True/False as swap entries are always a bug.
    if not isinstance(x, bool):
        try:
            return operator.index(x)
        except TypeError:
            pass
    raise TypeError("swap entry must be an int, not %s" % type(x).__name__)


def _as_int(x, name):
    """Check that ``x`` is an int (not a bool) and return it as an exact int."""
    if type(x) is int:
        return x
    if isinstance(x, int) and not isinstance(x, bool):
        return operator.index(x)
    raise TypeError("%s must be an int, not %s" % (name, type(x).__name__))


def _qualified_type(obj):
    """``module.QualName`` of the type of ``obj``, for messages that must
    tell one core's class from the other's."""
    cls = type(obj)
    return "%s.%s" % (cls.__module__, cls.__qualname__)


def _as_shadow(x):
    """Check that ``x`` is an int or None (not a bool)."""
    if x is None or type(x) is int:
        return x
    if isinstance(x, int) and not isinstance(x, bool):
        return operator.index(x)
    raise TypeError("shadow must be an int or None, not %s" % type(x).__name__)


def _check_nr(nr):
    if nr < 1:
        raise ValueError("nr must be at least 1, not %d" % nr)


def _lowest_bit(x):
    """Index of the lowest set bit of ``x`` (which must not be 0)."""
    return (x & -x).bit_length() - 1


# -- batch arguments ------------------------------------------------------------
#
# Shared by VSwap, ZswapIndex and Zswap, so that every batch call says the
# same thing about the same mistake.

#: TypeError for an ``entries`` or ``handles`` argument that is no buffer of
#: integers (not a buffer, a format other than a native integer).
BAD_INT_BUFFER = "%s must be a buffer of integers, not %s"
#: TypeError for such a buffer whose items are not contiguous in C order.
BAD_INT_LAYOUT = "%s must be a C-contiguous buffer of integers, not %s"
#: TypeError for an ``out`` or ``old`` argument of the handle calls.
BAD_U64_OUT = "%s must be a writable C-contiguous buffer of 8-byte integers, not %s"
#: ValueError for ``handles``, ``out`` or ``old`` of another length.
BAD_ITEM_COUNT = "%s must have as many items as entries (%d), not %d"

# Integer format codes of the struct module.  Lower case is signed.
_INT_CODES = frozenset("bBhHiIlLqQnN")
# Prefixes that leave a format in the machine's own byte order.
_NATIVE_PREFIXES = ("@", "=", "<" if sys.byteorder == "little" else ">")
# A native code of each (signed, itemsize), to read the items with.
_NATIVE_CODE = {
    (True, 1): "b", (True, 2): "h", (True, 4): "i", (True, 8): "q",
    (False, 1): "B", (False, 2): "H", (False, 4): "I", (False, 8): "Q",
}


def _int_view(obj, name):
    """A memoryview of ``obj`` if it is a C-contiguous buffer of integers.

    Return: ``(view, code)``, ``code`` the native format to read it as.
    ``TypeError`` otherwise (``BAD_INT_BUFFER`` or ``BAD_INT_LAYOUT``).
    """
    try:
        view = memoryview(obj)
    except TypeError:
        raise TypeError(BAD_INT_BUFFER % (name, type(obj).__name__)) from None
    code = view.format
    if len(code) == 2 and code[0] in _NATIVE_PREFIXES:
        code = code[1:]
    code = _NATIVE_CODE.get((code.islower(), view.itemsize)) if code in _INT_CODES else None
    if code is None:
        raise TypeError(BAD_INT_BUFFER % (name, type(obj).__name__))
    if not view.c_contiguous:
        raise TypeError(BAD_INT_LAYOUT % (name, type(obj).__name__))
    return view, code


def _int_items(view, code):
    """The items of a view from ``_int_view``, in C order, as a list of ints.

    Any number of dimensions (a 0-d buffer is one item).
    """
    return view.cast("B").cast(code).tolist()


def _u64_out(obj, name):
    """A writable flat view of ``obj``, a C-contiguous buffer of 8-byte
    integers (signed or not: the values written are below 2**62).

    ``TypeError`` (``BAD_U64_OUT``) for anything else.
    """
    try:
        view = memoryview(obj)
    except TypeError:
        view = None
    if view is not None:
        code = view.format
        if len(code) == 2 and code[0] in _NATIVE_PREFIXES:
            code = code[1:]
        if (code in _INT_CODES and view.itemsize == 8 and view.c_contiguous
                and not view.readonly):
            return view.cast("B").cast("q" if code.islower() else "Q")
    raise TypeError(BAD_U64_OUT % (name, type(obj).__name__))


def _fill_u64(view, values):
    """Write ``values`` (ints in ``[0, 2**62)``) into a view from ``_u64_out``."""
    view[:] = array.array(view.format, values)


def _check_item_count(name, n, count):
    if count != n:
        raise ValueError(BAD_ITEM_COUNT % (name, n, count))


def _entries_arg(entries):
    """The ``entries`` of a batch call as a list of ints (type checked)."""
    return _int_items(*_int_view(entries, "entries"))


def _status_array(n):
    """A new status array of ``n`` items, all ``BATCH_OK``."""
    return array.array("b", [BATCH_OK]) * n


class _ClusterRun:
    """The cluster lock a batch call holds across a run of its entries.

    Consecutive entries in one cluster take its lock once, as the kernel's
    ``vswap_iter`` loop does; moving to another cluster drops the lock
    first, so at most one cluster lock is ever held.
    """

    __slots__ = ("cluster",)

    def __init__(self):
        self.cluster = None

    def lock(self, cluster):
        """Hold ``cluster``'s lock (and no other)."""
        if cluster is not self.cluster:
            self.release()
            _lock_cluster(cluster)
            self.cluster = cluster

    def release(self):
        if self.cluster is not None:
            self.cluster.lock.release()
            self.cluster = None


class _Dropped:
    """What a free took out of descriptors, to release with no lock held.

    ``objects`` keeps every displaced object alive until ``release``;
    ``pool_entries`` and ``pool_slots`` pair a zswap pool with an object or
    a slot to hand to its ``_release_entry`` or ``_release_slot``.
    """

    __slots__ = ("objects", "pool_entries", "pool_slots")

    def __init__(self):
        self.objects = []
        self.pool_entries = []
        self.pool_slots = []

    def release(self):
        """Hand the pool objects and slots back, then drop the objects.

        Caller holds no lock.  Last, the objects: a ``__del__`` run by
        dropping them sees the free complete, cluster release included.
        """
        for pool, obj in self.pool_entries:
            pool._release_entry(obj)
        for pool, entry, slot in self.pool_slots:
            pool._release_slot(entry, slot)
        self.pool_entries = self.pool_slots = None
        self.objects = None


def _release_displaced(displaced):
    """Release the ``(pool, object)`` pairs a batch call displaced.

    Caller holds no lock.  A pool frees its own objects; anything else is
    released by dropping the last reference to it, here, last.
    """
    for pool, obj in displaced:
        if pool is not None:
            pool._release_entry(obj)
    displaced.clear()


class VSwap:
    """A virtual swap space: clusters of swap descriptors behind a cluster map.

    Swap entries are ints: ``cluster_id << cluster_shift | index``.  Cluster
    ids start at 1, so entry 0 is never handed out.  Every descriptor has one
    backing (none, a physical slot, a zero page, a zswap entry or its
    swap-cache folio: v6's ``enum swap_type``) and a swap-cache folio (any
    object) or a shadow (an int), as ``struct swp_desc``.

    Ranges (``entry, nr``) must lie inside one cluster; every entry in a range
    must be allocated, otherwise the call raises and changes nothing.
    Objects stored in descriptors are held by strong references and released
    when erased, replaced, freed, or when the space is destroyed.

    Locking: the map lock, then at most one cluster lock.  Operations on one
    entry or range take only that entry's cluster lock.
    """

    __slots__ = (
        "_shift",
        "_size",
        "_mask",
        "_max_clusters",
        "_chunk_masks",
        "_map_lock",
        "_clusters",
        "_free_ids",
        "_next_id",
        "_partial",
        "_alloc_cache",
        "_released_acquisitions",
        "_released_contended",
        "_zswap_pool",
        "_lookup_cache",
        "_alloc_reject",
    )

    def __init__(self, cluster_shift=VSWAP_CLUSTER_SHIFT,
                 max_clusters=VSWAP_MAX_CLUSTERS, lookup_cache=False):
        """Create an empty space with clusters of ``1 << cluster_shift``.

        ``cluster_shift`` is 1..9 and ``max_clusters`` 1..2**24 (both ints,
        not bools): ``TypeError`` or ``ValueError`` otherwise.
        """
        cluster_shift = _as_int(cluster_shift, "cluster_shift")
        max_clusters = _as_int(max_clusters, "max_clusters")
        if not 1 <= cluster_shift <= _MAX_CLUSTER_SHIFT:
            raise ValueError("cluster_shift must be in [1, %d], not %d"
                             % (_MAX_CLUSTER_SHIFT, cluster_shift))
        if not 1 <= max_clusters <= _MAX_CLUSTERS_LIMIT:
            raise ValueError("max_clusters must be in [1, %d], not %d"
                             % (_MAX_CLUSTERS_LIMIT, max_clusters))
        size = 1 << cluster_shift
        self._shift = cluster_shift
        self._size = size
        self._mask = size - 1
        self._max_clusters = max_clusters
        # For each order, the bits at the start of every aligned chunk:
        # bitmap_find_next_zero_area() with align_mask = nr - 1.
        self._chunk_masks = [
            sum(1 << i for i in range(0, size, 1 << order))
            for order in range(cluster_shift + 1)
        ]
        self._map_lock = threading.Lock()
        # Cluster id -> _Cluster: the vswap_cluster_map xarray.
        self._clusters = {}
        # Ids below _next_id that were released, as a min-heap, so that the
        # lowest free id is either its head or _next_id (xa_alloc's choice).
        self._free_ids = []
        self._next_id = 1
        # Per order, the partial clusters in list order: id -> _Cluster.
        # Dicts keep insertion order, so the first key is the list head.
        self._partial = [{} for _ in range(cluster_shift + 1)]
        # (thread ident, order) -> _Cluster: the per-CPU cluster caches.
        # Kept in the space rather than in threading.local() so that a
        # release can drop every cache that points at the cluster, and so
        # that refcount can count them.  Written under the map lock, read
        # without it by the allocation fast path (the hint is validated
        # under the cluster lock).  A cache outlives its thread until the
        # cluster is released, as a per-CPU cache outlives a task.
        self._alloc_cache = {}
        self._released_acquisitions = 0
        self._released_contended = 0
        # A weak reference to the bound Zswap pool, or None (see the
        # module comment).
        self._zswap_pool = None
        # v6 patch 22's per-CPU cluster lookup cache: a speed switch of the
        # compiled core; here a lookup is one dict read either way.
        self._lookup_cache = bool(lookup_cache)
        # Allocations refused for want of a cluster id (map lock).
        self._alloc_reject = 0

    # -- geometry -------------------------------------------------------

    @property
    def cluster_shift(self):
        """log2 of the number of descriptors in a cluster."""
        return self._shift

    @property
    def cluster_size(self):
        """Number of descriptors in a cluster (``1 << cluster_shift``)."""
        return self._size

    @property
    def max_clusters(self):
        """Highest cluster id the map can hand out (ids start at 1)."""
        return self._max_clusters

    @property
    def lookup_cache(self):
        """Whether each thread checks the cluster it last looked up before
        the cluster map (v6 patch 22).  False is the seed's own patch 11:
        every operation looks its cluster up in the map."""
        return self._lookup_cache

    @property
    def nr_clusters(self):
        """Number of live clusters.  Takes the map lock."""
        with self._map_lock:
            return len(self._clusters)

    # -- argument checking ----------------------------------------------

    def _bad_entry(self, entry):
        """The InvalidEntryError for an entry that fails step 3 of the checks."""
        if entry == 0:
            why = "zero"
        elif entry < 0:
            why = "negative"
        else:
            why = "range"
        return InvalidEntryError(
            bad_entry_message(entry, self._shift, self._max_clusters, why))

    def _not_allocated(self, entry):
        return InvalidEntryError(
            bad_entry_message(entry, self._shift, self._max_clusters, "free"))

    def _lookup_range(self, entry, nr):
        """Checks 3 to 5 up to the lock: return the cluster and the index.

        Raises for a bad entry, a range that crosses a cluster boundary, or
        an entry whose cluster does not exist.  Takes no lock.
        """
        cluster_id = entry >> self._shift
        if entry <= 0 or cluster_id > self._max_clusters:
            raise self._bad_entry(entry)
        index = entry & self._mask
        if index + nr > self._size:
            raise ValueError(
                "range [%#x, %#x) crosses a cluster boundary (cluster size %d)"
                % (entry, entry + nr, self._size))
        cluster = self._clusters.get(cluster_id)
        if cluster is None:
            raise self._not_allocated(entry)
        return cluster, index

    def _check_allocated(self, cluster, index, nr):
        """Check 5: raise for the first unallocated entry of the range.

        Caller holds the cluster lock.
        """
        bits = ((1 << nr) - 1) << index
        missing = bits & ~cluster.bitmap
        if missing:
            raise self._not_allocated(
                (cluster.id << self._shift) | _lowest_bit(missing))

    # -- allocation -----------------------------------------------------

    def _find_chunk(self, cluster, nr):
        """Index of the lowest free aligned run of ``nr`` descriptors, or -1.

        Caller holds the cluster lock or owns an unpublished cluster.
        """
        if cluster.count + nr > self._size:
            return -1
        free = ~cluster.bitmap & ((1 << self._size) - 1)
        # Fold the free map onto itself: after the step with shift s, bit i
        # is set iff descriptors i .. i + 2s - 1 are all free.
        shift = 1
        while shift < nr:
            free &= free >> shift
            shift <<= 1
        free &= self._chunk_masks[cluster.order]
        return _lowest_bit(free) if free else -1

    def _take_chunk(self, cluster, nr, folio):
        """Allocate the lowest free chunk of ``cluster``: the entry, or 0.

        Caller holds the cluster lock or owns an unpublished cluster.
        New descriptors have no slot, no zswap entry and ``folio`` (or
        nothing) in the swap cache, which backs them (type FOLIO, or NONE);
        freed descriptors were left with no backing.
        """
        index = self._find_chunk(cluster, nr)
        if index < 0:
            return 0
        end = index + nr
        cluster.bitmap |= ((1 << nr) - 1) << index
        cluster.count += nr
        if folio is not None:
            # __vswap_alloc_from_cluster(): FOLIO-backed by the folio.
            cluster.swap_cache[index:end] = [folio] * nr
            cluster.type[index:end] = [VSWAP_FOLIO] * nr
        return (cluster.id << self._shift) | index

    def _new_cluster_id(self):
        """The lowest free cluster id.  Caller holds the map lock."""
        if self._free_ids:
            return heapq.heappop(self._free_ids)
        cluster_id = self._next_id
        if cluster_id > self._max_clusters:
            self._alloc_reject += 1
            raise SwapFullError("no cluster id left: all %d clusters are in use"
                                % self._max_clusters)
        self._next_id = cluster_id + 1
        return cluster_id

    def alloc(self, nr=1, folio=None):
        """Allocate ``nr`` (a power of two) contiguous, aligned swap entries.

        Tries the calling thread's cached cluster for that order, then the
        partial clusters of that order from the head, then a new cluster
        with the lowest free id.  The cluster used becomes the thread's
        cached cluster for that order.  The new descriptors have slot 0, no
        zswap entry and ``folio`` in the swap cache (None: empty).

        Context: takes the cached cluster's lock; if that cluster cannot
        serve, the map lock and, under it, the lock of each partial cluster
        tried.  A new cluster is filled before it is published, unlocked.

        Return: the first entry.  Raises ``SwapFullError`` when a new
        cluster is needed and every cluster id is in use.
        """
        if type(nr) is not int:
            nr = _as_int(nr, "nr")
        return self._alloc(nr, folio, self._alloc_order(nr))

    def _alloc_order(self, nr):
        """Check the value of an allocation's ``nr``: return its order."""
        _check_nr(nr)
        if nr & (nr - 1) or nr > self._size:
            raise ValueError("nr must be a power of two from 1 to %d, not %d"
                             % (self._size, nr))
        return nr.bit_length() - 1

    def _alloc(self, nr, folio, order):
        """``alloc`` once its arguments are checked, as v6's
        ``folio_alloc_swap()``: the thread's cached cluster of that order;
        else a partial cluster, taken off its list into the thread's cache;
        else a new cluster, which becomes the thread's cached cluster and
        goes on no list.  So each thread allocates from clusters of its own.

        Context: the cached cluster's lock (the map lock inside it to drop
        the cluster when full); then the map lock, trying partial clusters
        without blocking.
        """
        key = (threading.get_ident(), order)
        entry = self._alloc_cached(key, nr, folio, order)
        if entry:
            return entry
        with self._map_lock:
            partial = self._partial[order]
            for cluster in list(partial.values()):
                # spin_trylock: the map lock is held, and cluster locks come
                # first; a busy cluster is skipped.
                if not cluster.lock.acquire(False):
                    continue
                try:
                    cluster.lock_acquisitions += 1
                    del partial[cluster.id]     # list_del_init
                    entry = self._take_chunk(cluster, nr, folio)
                    if not entry:
                        cluster.full = True     # cannot happen: only cachers allocate
                        continue
                    self._alloc_cache[key] = cluster
                    cluster.refcount += 1
                    return entry
                finally:
                    cluster.lock.release()
            cluster = _Cluster(self._new_cluster_id(), order, self._size)
            entry = self._take_chunk(cluster, nr, folio)
            self._clusters[cluster.id] = cluster
            self._alloc_cache[key] = cluster
            cluster.refcount += 1
        return entry

    def _alloc_cached(self, key, nr, folio, order):
        """Allocate from the thread's cached cluster of ``order``: entry, or
        0 when there is none or it is full.  A full cached cluster is dropped
        from the cache (replaced only when full) and goes on no list until a
        free gives it room.

        Context: the cluster lock; the map lock inside it to drop it.
        """
        cluster = self._alloc_cache.get(key)
        if cluster is None:
            return 0
        _lock_cluster(cluster)
        try:
            # The thread's own entry: only this thread changes it, and a
            # cached cluster is never released.
            if self._alloc_cache.get(key) is not cluster or cluster.order != order:
                return 0
            entry = self._take_chunk(cluster, nr, folio)
            if entry:
                return entry
            with self._map_lock:
                del self._alloc_cache[key]
                cluster.refcount -= 1
                cluster.full = True
            return 0
        finally:
            cluster.lock.release()

    def _release(self, cluster):
        """Take an empty cluster that no thread caches out of the space and
        recycle its id.

        Caller holds the cluster lock and the map lock.  The cluster object
        may still be reached by lookups that raced with the release; its
        empty bitmap and zero refcount make them fail validation.
        """
        del self._clusters[cluster.id]
        self._partial[cluster.order].pop(cluster.id, None)
        cluster.refcount = 0
        cluster.full = False
        # Lookups that raced with the release may still lock the dead
        # cluster afterwards; those few acquisitions go uncounted.
        self._released_acquisitions += cluster.lock_acquisitions
        self._released_contended += cluster.lock_contended
        heapq.heappush(self._free_ids, cluster.id)

    def _after_free(self, cluster):
        """Release a cluster a free emptied, unless a thread caches it (its
        cacher keeps it), or put one that was dropped when full back on the
        tail of its partial list once it has room for its order.

        Context: caller holds the cluster lock; takes the map lock inside it.
        """
        if cluster.count == 0:
            if cluster.refcount != 1:
                return
        elif not (cluster.full and self._find_chunk(cluster, 1 << cluster.order) >= 0):
            return
        with self._map_lock:
            if cluster.count == 0:
                self._release(cluster)
            else:
                cluster.full = False
                self._partial[cluster.order][cluster.id] = cluster

    def free(self, entry, nr=1):
        """Free the ``nr`` entries from ``entry``.

        Drops their zswap entries, folios and shadows and clears their
        slots.  A cluster left with no entries is released (it leaves the
        map, the partial list and every thread cache; its id can be reused).
        A cluster that allocation had found full rejoins the tail of its
        partial list once a chunk of its order is free again.  With a zswap
        pool bound, the pool frees the dropped pool entries (those in its
        own index too) and releases the dropped slots in its swap file.

        Context: takes the cluster lock; to release or relist the cluster,
        then the map lock and the cluster lock again.  The dropped objects
        are released after the cluster lock.
        """
        if type(entry) is not int:
            entry = _as_entry(entry)
        if type(nr) is not int:
            nr = _as_int(nr, "nr")
        _check_nr(nr)
        cluster, index = self._lookup_range(entry, nr)
        dropped = _Dropped()
        _lock_cluster(cluster)
        try:
            self._check_allocated(cluster, index, nr)
            self._free_locked(cluster, index, nr, dropped)
            self._after_free(cluster)
        finally:
            cluster.lock.release()
        dropped.release()

    def _free_locked(self, cluster, index, nr, dropped):
        """Free the ``nr`` allocated descriptors from ``index`` of ``cluster``.

        Caller holds the cluster lock and has checked that the range is
        allocated.  What the descriptors held is added to ``dropped`` (a
        ``_Dropped``), to be released once no lock is held.  With a zswap
        pool bound, the pool is told of the freed range while the lock is
        still held (``_range_freed``), after the bitmap has let go of it, so
        that no entry of the pool outlives its descriptor: a pool that
        keeps entries outside the descriptors checks the bitmap under its
        own lock before it adds one, so it either sees the range free or has
        added the entry before this takes it out.

        The caller settles the cluster with ``_after_free`` before it
        drops the lock.
        """
        end = index + nr
        cache = cluster.swap_cache
        # release_backing() of vswap_free(): whatever backs each descriptor.
        gone = [_desc_zswap(cluster, i) for i in range(index, end)]
        slots = [_desc_slot(cluster, i) for i in range(index, end)]
        # Keep the displaced objects alive until the lock is dropped.
        dropped.objects += gone
        dropped.objects += cache[index:end]
        # Not list.count(None): that compares with ==, i.e. user code.
        nr_zswap = sum(1 for z in gone if z is not None)
        # Under the lock: see "The zswap pool" above.
        pool = self._bound_pool()
        if pool is not None:
            first = (cluster.id << self._shift) | index
            dropped.pool_slots += [(pool, first + i, slot)
                                   for i, slot in enumerate(slots) if slot]
            dropped.pool_entries += [(pool, z) for z in gone if z is not None]
        cluster.backing[index:end] = [None] * nr
        cluster.type[index:end] = [VSWAP_NONE] * nr
        cache[index:end] = [None] * nr
        cluster.nr_zswap -= nr_zswap
        cluster.bitmap &= ~(((1 << nr) - 1) << index)
        cluster.count -= nr
        if pool is not None:
            dropped.pool_entries += [(pool, obj) for obj in pool._range_freed(first, nr)]

    def _bound_pool(self):
        """The bound zswap pool (a strong reference), or None.

        Read it under the cluster lock of the descriptors whose pool objects
        are about to be handed to it: see "The zswap pool" above.
        """
        pool = self._zswap_pool
        return pool() if pool is not None else None

    # -- zswap entries (seed patch) ---------------------------------------

    def zswap_entry_store(self, entry, zentry):
        """Store ``zentry`` as the zswap entry of ``entry``: its backing is
        now this zswap entry (type ZSWAP), and the old backing is released
        (``zswap_entry_store()`` calls ``release_backing()``): a slot goes
        back to the bound pool's swap file.

        Context: takes the entry's cluster lock.

        Return: the previous zswap entry (the caller frees it), or None.  A
        zswap pool's entry is freed by its pool, and what is returned is a
        ``ZswapEntryView`` of it; a handle stored by a batch call is
        returned as its int.
        """
        if type(entry) is not int:
            entry = _as_entry(entry)
        if zentry is None:
            raise TypeError("zentry must not be None; use zswap_entry_erase")
        cluster_id = entry >> self._shift
        if entry <= 0 or cluster_id > self._max_clusters:
            raise self._bad_entry(entry)
        cluster = self._clusters.get(cluster_id)
        if cluster is not None:
            index = entry & self._mask
            _lock_cluster(cluster)
            try:
                allocated = cluster.bitmap >> index & 1
                if allocated:
                    old = _desc_zswap(cluster, index)
                    old_slot = _desc_set_zswap(cluster, index, zentry)
                    # Under the lock: see "The zswap pool" above.
                    pool = self._zswap_pool
                    if pool is not None:
                        pool = pool()
            finally:
                cluster.lock.release()
            if allocated:
                if old_slot and pool is not None:
                    pool._release_slot(entry, old_slot)
                return self._displaced(old, pool, entry)
        raise self._not_allocated(entry)

    def zswap_entry_load(self, entry):
        """Look up the zswap entry of ``entry``.

        Context: takes the entry's cluster lock.

        Return: the zswap entry, or None.  A zswap pool's entry reads as a
        ``ZswapEntryView`` snapshot, and a handle stored by a batch call as
        its int.
        """
        if type(entry) is not int:
            entry = _as_entry(entry)
        cluster_id = entry >> self._shift
        if entry <= 0 or cluster_id > self._max_clusters:
            raise self._bad_entry(entry)
        cluster = self._clusters.get(cluster_id)
        if cluster is not None:
            index = entry & self._mask
            _lock_cluster(cluster)
            try:
                allocated = cluster.bitmap >> index & 1
                if allocated:
                    value = _desc_zswap(cluster, index)
                    # Under the lock: see "The zswap pool" above.
                    pool = self._zswap_pool
                    if pool is not None:
                        pool = pool()
            finally:
                cluster.lock.release()
            if allocated:
                if type(value) is _Handle:
                    return value.value
                if pool is not None and value is not None:
                    return pool._view(value, entry)
                return value
        raise self._not_allocated(entry)

    def zswap_entry_erase(self, entry):
        """Clear the zswap entry (or zero page) of ``entry``: its ZSWAP or
        ZERO backing is released and the descriptor is left backed by its
        swap-cache folio if it has one (as ``vswap_store_folio()`` leaves it
        after an exclusive load), else by nothing.  Any other backing is
        left alone.

        Context: takes the entry's cluster lock.

        Return: the zswap entry that was erased, or None.  A zswap pool's
        entry is freed by its pool, and what is returned is a
        ``ZswapEntryView`` of it; a handle is returned as its int.
        """
        if type(entry) is not int:
            entry = _as_entry(entry)
        cluster_id = entry >> self._shift
        if entry <= 0 or cluster_id > self._max_clusters:
            raise self._bad_entry(entry)
        cluster = self._clusters.get(cluster_id)
        if cluster is not None:
            index = entry & self._mask
            _lock_cluster(cluster)
            try:
                allocated = cluster.bitmap >> index & 1
                if allocated:
                    old = _desc_zswap(cluster, index)
                    if old is not None:
                        _desc_set_zswap(cluster, index, None)   # no slot here
                    # Under the lock: see "The zswap pool" above.
                    pool = self._zswap_pool
                    if pool is not None:
                        pool = pool()
            finally:
                cluster.lock.release()
            if allocated:
                return self._displaced(old, pool, entry)
        raise self._not_allocated(entry)

    @staticmethod
    def _displaced(old, pool, entry):
        """What store and erase return for the zswap entry they displaced:
        a handle's int, a pool entry's view (the pool then frees the entry;
        no lock is held), or the object itself."""
        if type(old) is _Handle:
            return old.value
        if pool is not None and old is not None:
            view = pool._view(old, entry)
            pool._release_entry(old)
            return view
        return old

    def zswap_empty(self, entry=None):
        """Tell whether no descriptor of the space holds a zswap entry.

        ``entry`` is accepted for the kernel's signature and not used.
        Sums the per-cluster counts: a concurrent store may or may not be
        seen, but an entry stored before the call and still stored is.

        Context: takes the map lock; reads each count without its lock.

        Return: True or False.
        """
        with self._map_lock:
            for cluster in self._clusters.values():
                if cluster.nr_zswap:
                    return False
        return True

    # -- batch operations ---------------------------------------------------
    #
    # Statuses from vswapfast.batch, one per entry.  A bad entry is reported
    # where it is and the call carries on; nothing done for the other
    # entries is undone.  Arguments are checked as everywhere else (types of
    # all arguments, then their values) before anything is done.

    def _batch_cluster(self, entry, nr):
        """Checks 3 and 4 of a batch entry, and its cluster lookup.

        Takes no lock.  Return: the entry's cluster, or None when the entry
        is not usable.  The caller checks allocation (check 5) under the
        cluster lock.
        """
        cluster_id = entry >> self._shift
        if (entry <= 0 or cluster_id > self._max_clusters
                or (entry & self._mask) + nr > self._size):
            return None
        return self._clusters.get(cluster_id)

    def alloc_many(self, count, nr=1):
        """``count`` allocations of ``nr`` entries each, as ``alloc`` (no folio).

        All or nothing: when an allocation fails (``SwapFullError``), the
        entries allocated so far are freed again before the error is raised.

        Context: as ``alloc``, once per allocation.

        Return: the first entry of each allocation, as ``array('Q')``.
        """
        if type(count) is not int:
            count = _as_int(count, "count")
        if type(nr) is not int:
            nr = _as_int(nr, "nr")
        if count < 0:
            raise ValueError("count must be at least 0, not %d" % count)
        order = self._alloc_order(nr)
        got = array.array("Q")
        try:
            for _ in range(count):
                got.append(self._alloc(nr, None, order))
        except BaseException:
            for entry in got:
                self.free(entry, nr)
            raise
        return got

    def free_many(self, entries, nr=1):
        """``free(entry, nr)`` for each of ``entries``.

        Context: as ``free``, per entry (the compiled loop takes the
        cluster lock once per entry too); releasing what the descriptors
        held comes after the call.

        Return: an ``array('b')`` of ``BATCH_OK`` or ``BATCH_INVALID``.
        """
        values = _entries_arg(entries)
        if type(nr) is not int:
            nr = _as_int(nr, "nr")
        _check_nr(nr)
        status = _status_array(len(values))
        dropped = _Dropped()
        run = _ClusterRun()
        try:
            for i, entry in enumerate(values):
                cluster = self._batch_cluster(entry, nr)
                if cluster is None:
                    status[i] = BATCH_INVALID
                    continue
                run.lock(cluster)
                index = entry & self._mask
                if ~cluster.bitmap >> index & ((1 << nr) - 1):
                    status[i] = BATCH_INVALID
                    continue
                self._free_locked(cluster, index, nr, dropped)
                self._after_free(cluster)
                run.release()
        finally:
            run.release()
        dropped.release()
        return status

    def zswap_entry_store_many(self, entries, handles, old=None):
        """Store ``handles[i]`` as the zswap entry of ``entries[i]``.

        ``handles`` is a buffer of integers with as many items as
        ``entries``; ``old``, if given, a writable buffer of 8-byte integers
        of that length, which receives each displaced handle (0 where none
        was).  A handle must be in ``[1, 2**62)``: that is checked before
        the entry.

        Context: each run of entries in one cluster takes its lock once.
        Displaced objects that are not handles are released after it.

        Return: an ``array('b')``: ``BATCH_OK`` (a handle was displaced),
        ``BATCH_EMPTY`` (nothing was), ``BATCH_FOREIGN`` (another zswap
        entry was displaced and released), ``BATCH_INVALID`` or
        ``BATCH_BAD_HANDLE``.
        """
        values = _entries_arg(entries)
        handles_view = _int_view(handles, "handles")
        old_view = None if old is None else _u64_out(old, "old")
        n = len(values)
        handle_values = _int_items(*handles_view)
        _check_item_count("handles", n, len(handle_values))
        if old_view is not None:
            _check_item_count("old", n, len(old_view))

        status = _status_array(n)
        olds = [0] * n
        displaced = []          # (pool, object): released after the lock
        slots = []              # (pool, entry, slot): released after the lock
        run = _ClusterRun()
        try:
            for i, entry in enumerate(values):
                handle = handle_values[i]
                if not 1 <= handle < HANDLE_LIMIT:
                    status[i] = BATCH_BAD_HANDLE
                    continue
                cluster = self._batch_cluster(entry, 1)
                if cluster is None:
                    status[i] = BATCH_INVALID
                    continue
                run.lock(cluster)
                index = entry & self._mask
                if not cluster.bitmap >> index & 1:
                    status[i] = BATCH_INVALID
                    continue
                prev = _desc_zswap(cluster, index)
                old_slot = _desc_set_zswap(cluster, index, _Handle(handle))
                if old_slot:
                    # Under the lock: see "The zswap pool" above.
                    pool = self._bound_pool()
                    if pool is not None:
                        slots.append((pool, entry, old_slot))
                if prev is None:
                    status[i] = BATCH_EMPTY
                elif type(prev) is _Handle:
                    olds[i] = prev.value
                else:
                    status[i] = BATCH_FOREIGN
                    # Under the lock: see "The zswap pool" above.
                    displaced.append((self._bound_pool(), prev))
        finally:
            run.release()
        if old_view is not None:
            _fill_u64(old_view, olds)
        for pool, entry, slot in slots:
            pool._release_slot(entry, slot)
        _release_displaced(displaced)
        return status

    def zswap_entry_load_many(self, entries, out):
        """Read the handle in the zswap entry of each of ``entries``.

        ``out`` is a writable buffer of 8-byte integers with as many items
        as ``entries``; it receives each handle (0 where there is none).

        Context: each run of entries in one cluster takes its lock once.

        Return: an ``array('b')``: ``BATCH_OK``, ``BATCH_EMPTY``,
        ``BATCH_FOREIGN`` (a zswap entry that is not a handle, left alone)
        or ``BATCH_INVALID``.
        """
        values = _entries_arg(entries)
        out_view = _u64_out(out, "out")
        _check_item_count("out", len(values), len(out_view))
        status, handles, _ = self._load_erase_many(values, False)
        _fill_u64(out_view, handles)
        return status

    def zswap_entry_erase_many(self, entries, old=None):
        """Erase the zswap entry of each of ``entries``.

        ``old``, if given, is a writable buffer of 8-byte integers with as
        many items as ``entries``; it receives each erased handle (0 where
        there was none).

        Context: each run of entries in one cluster takes its lock once.
        Erased objects that are not handles are released after it.

        Return: an ``array('b')``: ``BATCH_OK`` (a handle was erased),
        ``BATCH_EMPTY``, ``BATCH_FOREIGN`` (another zswap entry was erased
        and released) or ``BATCH_INVALID``.
        """
        values = _entries_arg(entries)
        old_view = None if old is None else _u64_out(old, "old")
        if old_view is not None:
            _check_item_count("old", len(values), len(old_view))
        status, handles, displaced = self._load_erase_many(values, True)
        if old_view is not None:
            _fill_u64(old_view, handles)
        _release_displaced(displaced)
        return status

    def _load_erase_many(self, values, erase):
        """The loop of ``zswap_entry_load_many`` and ``_erase_many``.

        Return: the statuses, the handles (0 where none) and, when erasing,
        the ``(pool, object)`` pairs to release with no lock held.
        """
        n = len(values)
        status = _status_array(n)
        handles = [0] * n
        displaced = []
        run = _ClusterRun()
        try:
            for i, entry in enumerate(values):
                cluster = self._batch_cluster(entry, 1)
                if cluster is None:
                    status[i] = BATCH_INVALID
                    continue
                run.lock(cluster)
                index = entry & self._mask
                if not cluster.bitmap >> index & 1:
                    status[i] = BATCH_INVALID
                    continue
                value = _desc_zswap(cluster, index)
                if value is None:
                    status[i] = BATCH_EMPTY
                    continue
                if type(value) is _Handle:
                    handles[i] = value.value
                else:
                    status[i] = BATCH_FOREIGN
                    if not erase:
                        continue
                    # Under the lock: see "The zswap pool" above.
                    displaced.append((self._bound_pool(), value))
                if erase:
                    _desc_set_zswap(cluster, index, None)   # no slot here
        finally:
            run.release()
        return status, handles, displaced

    # -- for the zswap indexes and the pool ------------------------------------

    def _allocated(self, entry):
        """Whether ``entry`` (which passed check 3) has an allocated
        descriptor, read without the cluster lock.

        Exact unless an allocation or a free of ``entry`` races with the
        call: a dict read and an int read are atomic, and a released
        cluster has an empty bitmap.
        """
        cluster = self._clusters.get(entry >> self._shift)
        return cluster is not None and bool(cluster.bitmap >> (entry & self._mask) & 1)

    def _check_range_unlocked(self, entry, nr):
        """Checks 3 to 5 for ``[entry, entry + nr)`` without the cluster lock.

        Raises as the locked checks do.  Return: ``(cluster, index)``.
        """
        cluster, index = self._lookup_range(entry, nr)
        self._check_allocated(cluster, index, nr)
        return cluster, index

    def _lock_totals(self):
        """The cluster locks' counters over the life of the space.

        Context: takes the map lock, then each cluster's lock in turn to
        read its counters (those acquisitions are included).

        Return: ``(acquisitions, contended, live clusters)``.
        """
        with self._map_lock:
            acquisitions = self._released_acquisitions
            contended = self._released_contended
            clusters = list(self._clusters.values())
        # Cluster locks come before the map lock: taken after it is dropped.
        for cluster in clusters:
            _lock_cluster(cluster)
            try:
                acquisitions += cluster.lock_acquisitions
                contended += cluster.lock_contended
            finally:
                cluster.lock.release()
        return acquisitions, contended, len(clusters)

    def _zswap_count(self):
        """Descriptors holding a zswap entry.  Context: takes the map lock;
        reads each cluster's count without its lock."""
        with self._map_lock:
            return sum(cluster.nr_zswap for cluster in self._clusters.values())

    # -- swap cache and shadows -------------------------------------------

    def swap_cache_get_folio(self, entry):
        """Look up the swap-cache folio of ``entry``.

        Context: takes the entry's cluster lock.

        Return: the folio, or None (no folio, or a shadow).
        """
        if type(entry) is not int:
            entry = _as_entry(entry)
        cluster, index = self._lookup_range(entry, 1)
        _lock_cluster(cluster)
        try:
            self._check_allocated(cluster, index, 1)
            value = cluster.swap_cache[index]
        finally:
            cluster.lock.release()
        return None if type(value) is _Shadow else value

    def swap_cache_add_folio(self, entry, folio, nr=1):
        """Put ``folio`` in the swap cache of the ``nr`` entries from ``entry``.

        No descriptor of the range may hold a folio (``SwapCacheError``, the
        kernel's -EEXIST); shadows are replaced.

        Context: takes the cluster lock.

        Return: the shadow ``entry`` held, or None.
        """
        if type(entry) is not int:
            entry = _as_entry(entry)
        if folio is None:
            raise TypeError("folio must not be None")
        if type(nr) is not int:
            nr = _as_int(nr, "nr")
        _check_nr(nr)
        cluster, index = self._lookup_range(entry, nr)
        end = index + nr
        _lock_cluster(cluster)
        try:
            self._check_allocated(cluster, index, nr)
            cache = cluster.swap_cache
            for i in range(index, end):
                value = cache[i]
                if value is not None and type(value) is not _Shadow:
                    raise SwapCacheError(
                        "swap entry %#x already has a folio in the swap cache"
                        % ((cluster.id << self._shift) | i))
            old = cache[index]
            cache[index:end] = [folio] * nr
            for i in range(index, end):
                _desc_cache_changed(cluster, i)
        finally:
            cluster.lock.release()
        return old.value if old is not None else None

    def swap_cache_del_folio(self, entry, folio, nr=1, shadow=None):
        """Take ``folio`` out of the swap cache of the ``nr`` entries.

        Every descriptor of the range must hold ``folio`` itself
        (``SwapCacheError`` otherwise).  Each then holds ``shadow``, or
        nothing when ``shadow`` is None.

        Context: takes the cluster lock.

        Return: None.
        """
        if type(entry) is not int:
            entry = _as_entry(entry)
        if folio is None:
            raise TypeError("folio must not be None")
        if type(nr) is not int:
            nr = _as_int(nr, "nr")
        shadow = _as_shadow(shadow)
        _check_nr(nr)
        if shadow is not None and not 0 <= shadow < _SHADOW_LIMIT:
            raise ValueError("shadow must be in [0, 2**62), not %d" % shadow)
        cluster, index = self._lookup_range(entry, nr)
        end = index + nr
        # One shared wrapper: a shadow is a value, never mutated.
        value = None if shadow is None else _Shadow(shadow)
        _lock_cluster(cluster)
        try:
            self._check_allocated(cluster, index, nr)
            self._check_holds(cluster, index, end, folio)
            # The caller still holds folio, so no last reference drops here.
            cluster.swap_cache[index:end] = [value] * nr
            for i in range(index, end):
                _desc_cache_changed(cluster, i)
        finally:
            cluster.lock.release()

    def _check_holds(self, cluster, index, end, folio):
        """Raise unless descriptors index..end-1 all hold ``folio``.

        Identity only: comparing with == could run user code under the
        cluster lock.  Caller holds the cluster lock.
        """
        cache = cluster.swap_cache
        for i in range(index, end):
            if cache[i] is not folio or folio is None:
                raise SwapCacheError(
                    "swap entry %#x does not hold that folio in the swap cache"
                    % ((cluster.id << self._shift) | i))

    def swap_cache_replace_folio(self, entry, old, new, nr=1):
        """Replace ``old`` by ``new`` in the swap cache of the ``nr`` entries.

        Every descriptor of the range must hold ``old`` itself
        (``SwapCacheError`` otherwise; None is never a cached folio).  As
        ``__swap_cache_replace_folio``.

        Context: takes the cluster lock.

        Return: None.
        """
        if type(entry) is not int:
            entry = _as_entry(entry)
        if new is None:
            raise TypeError("new must not be None")
        if type(nr) is not int:
            nr = _as_int(nr, "nr")
        _check_nr(nr)
        cluster, index = self._lookup_range(entry, nr)
        end = index + nr
        _lock_cluster(cluster)
        try:
            self._check_allocated(cluster, index, nr)
            self._check_holds(cluster, index, end, old)
            # The caller still holds old, so no last reference drops here.
            cluster.swap_cache[index:end] = [new] * nr
        finally:
            cluster.lock.release()

    def swap_cache_get_shadow(self, entry):
        """Look up the shadow of ``entry``.

        Context: takes the entry's cluster lock.

        Return: the shadow (an int), or None (no shadow, or a folio).
        """
        if type(entry) is not int:
            entry = _as_entry(entry)
        cluster, index = self._lookup_range(entry, 1)
        _lock_cluster(cluster)
        try:
            self._check_allocated(cluster, index, 1)
            value = cluster.swap_cache[index]
        finally:
            cluster.lock.release()
        return value.value if type(value) is _Shadow else None

    def swap_cache_clear_shadow(self, entry, nr=1):
        """Drop the shadows of the ``nr`` entries from ``entry``.

        Folios are left alone.

        Context: takes the cluster lock.

        Return: None.
        """
        if type(entry) is not int:
            entry = _as_entry(entry)
        if type(nr) is not int:
            nr = _as_int(nr, "nr")
        _check_nr(nr)
        cluster, index = self._lookup_range(entry, nr)
        _lock_cluster(cluster)
        try:
            self._check_allocated(cluster, index, nr)
            cache = cluster.swap_cache
            for i in range(index, index + nr):
                if type(cache[i]) is _Shadow:
                    cache[i] = None
        finally:
            cluster.lock.release()

    # -- physical backing slot ----------------------------------------------

    def get_slot(self, entry):
        """Look up the physical swap slot of ``entry``.

        Context: takes the entry's cluster lock.

        Return: the slot, 0 unless the backing is a slot
        (``swp_entry_to_swp_slot()``).
        """
        if type(entry) is not int:
            entry = _as_entry(entry)
        cluster, index = self._lookup_range(entry, 1)
        _lock_cluster(cluster)
        try:
            self._check_allocated(cluster, index, 1)
            return _desc_slot(cluster, index)
        finally:
            cluster.lock.release()

    def set_slot(self, entry, slot):
        """Make ``slot`` the backing of ``entry`` (type SWAPFILE, as
        ``vswap_alloc_swap_slot()`` sets it); 0 releases a slot backing,
        leaving the swap-cache folio (if any) as the backing.  The old
        backing is released (``release_backing()``): a zswap entry is freed
        (a pool's by its pool, any other object dropped), an old slot goes
        back to the bound pool's swap file.

        With a zswap pool bound, a slot allocated in the pool's swap file
        becomes the page of ``entry`` there (the file's reverse map), which
        the pool reads and frees; any other slot number is kept but never
        read as a page.

        Context: takes the entry's cluster lock, and under it the swap
        file's lock.

        Return: the previous slot (0 when the backing was not a slot).
        """
        if type(entry) is not int:
            entry = _as_entry(entry)
        if type(slot) is not int:
            slot = _as_int(slot, "slot")
        if not 0 <= slot < _SLOT_LIMIT:
            raise ValueError("slot must be in [0, 2**64), not %d" % slot)
        cluster, index = self._lookup_range(entry, 1)
        _lock_cluster(cluster)
        try:
            self._check_allocated(cluster, index, 1)
            old, old_zswap = _desc_set_slot(cluster, index, slot)
            # Under the lock: see "The zswap pool" above.
            pool = self._bound_pool()
            if pool is not None and slot:
                pool._slot_assigned(entry, slot)
        finally:
            cluster.lock.release()
        if pool is not None:
            if old and old != slot:
                pool._release_slot(entry, old)
            if old_zswap is not None:
                pool._release_entry(old_zswap)
        # Last, the object's reference: dropping it may run a __del__.
        old_zswap = None
        return old

    # -- introspection --------------------------------------------------------

    def __len__(self):
        """Number of allocated entries.

        Context: takes the map lock; reads each count without its lock.
        """
        with self._map_lock:
            return sum(cluster.count for cluster in self._clusters.values())

    def __contains__(self, entry):
        """Tell whether ``entry`` is an int with an allocated descriptor.

        Anything else is not in the space: never raises.

        Context: takes the entry's cluster lock if its cluster exists.
        """
        if type(entry) is not int:
            try:
                entry = _as_entry(entry)
            except TypeError:
                return False
        cluster_id = entry >> self._shift
        if entry <= 0 or cluster_id > self._max_clusters:
            return False
        cluster = self._clusters.get(cluster_id)
        if cluster is None:
            return False
        _lock_cluster(cluster)
        try:
            return bool(cluster.bitmap >> (entry & self._mask) & 1)
        finally:
            cluster.lock.release()

    def entries(self):
        """Iterate over the allocated entries in ascending order.

        Context: takes the map lock once to list the clusters, then each
        cluster's lock while reading its bitmap; no lock is held between
        items.  Entries allocated or freed during the walk may or may not
        appear.

        Return: an iterator of ints.
        """
        with self._map_lock:
            clusters = sorted(self._clusters.items())
        shift = self._shift
        for cluster_id, cluster in clusters:
            _lock_cluster(cluster)
            try:
                bitmap = cluster.bitmap if cluster.refcount else 0
            finally:
                cluster.lock.release()
            base = cluster_id << shift
            while bitmap:
                low = bitmap & -bitmap
                yield base | (low.bit_length() - 1)
                bitmap ^= low

    def cluster_info(self, cluster_id):
        """Describe the live cluster ``cluster_id``.

        Context: takes the cluster's lock (which is counted in the
        returned ``lock_acquisitions``).

        Return: a dict with ``id``, ``order``, ``count``, ``refcount``,
        ``zswap_entries``, ``lock_acquisitions``, ``lock_contended`` and
        the descriptors per backing type (``backing_*``).
        Raises ``KeyError(cluster_id)`` when no live cluster has that id.
        """
        key = cluster_id
        if type(key) is not int:
            try:
                key = _as_entry(key)
            except TypeError:
                raise KeyError(cluster_id) from None
        cluster = self._clusters.get(key)
        if cluster is None:
            raise KeyError(cluster_id)
        _lock_cluster(cluster)
        try:
            # Released meanwhile: no live cluster has that id (now).
            if cluster.refcount == 0:
                raise KeyError(cluster_id)
            types = [0] * len(_TYPE_NAMES)
            self._count_types(cluster, types)
            return _backing_counts({
                "id": cluster.id,
                "order": cluster.order,
                "count": cluster.count,
                "refcount": cluster.refcount,
                "zswap_entries": cluster.nr_zswap,
                "lock_acquisitions": cluster.lock_acquisitions,
                "lock_contended": cluster.lock_contended,
            }, types)
        finally:
            cluster.lock.release()

    def stats(self):
        """Summarise the space.

        Context: takes the map lock to list the clusters, then each
        cluster's lock in turn (those acquisitions are included in
        ``lock_acquisitions``).

        Return: a dict with ``entries``, ``clusters``, ``zswap_entries``,
        ``swap_cache_folios``, ``shadows``, ``slots``, the descriptors per
        backing type (``backing_none``, ``backing_zero``, ``backing_zswap``,
        ``backing_swapfile``, ``backing_folio``), ``lock_acquisitions``,
        ``lock_contended`` (over the life of the space, released clusters
        included), ``cluster_size`` and ``max_clusters``.
        """
        entries = zswap_entries = folios = shadows = slots = 0
        types = [0] * len(_TYPE_NAMES)
        with self._map_lock:
            acquisitions = self._released_acquisitions
            contended = self._released_contended
            clusters = list(self._clusters.values())
        nr_clusters = 0
        # Cluster locks come before the map lock: taken after it is dropped.
        for cluster in clusters:
            _lock_cluster(cluster)
            try:
                if cluster.refcount:
                    nr_clusters += 1
                    entries += cluster.count
                    zswap_entries += cluster.nr_zswap
                    for value in cluster.swap_cache:
                        if value is not None:
                            if type(value) is _Shadow:
                                shadows += 1
                            else:
                                folios += 1
                    slots += self._count_types(cluster, types)
                acquisitions += cluster.lock_acquisitions
                contended += cluster.lock_contended
            finally:
                cluster.lock.release()
        return _backing_counts({
            "entries": entries,
            "used": entries,
            "alloc_reject": self._alloc_reject,
            "clusters": nr_clusters,
            "zswap_entries": zswap_entries,
            "swap_cache_folios": folios,
            "shadows": shadows,
            "slots": slots,
            "lock_acquisitions": acquisitions,
            "lock_contended": contended,
            "cluster_size": self._size,
            "max_clusters": self._max_clusters,
        }, types)

    def _count_types(self, cluster, types):
        """Add the allocated descriptors of ``cluster`` to ``types`` (a list
        indexed by backing type).  Caller holds the cluster lock.

        Return: how many are SWAPFILE-backed (hold a slot).
        """
        bitmap = cluster.bitmap
        kinds = cluster.type
        slots = 0
        while bitmap:
            low = bitmap & -bitmap
            kind = kinds[low.bit_length() - 1]
            types[kind] += 1
            slots += kind == VSWAP_SWAPFILE
            bitmap ^= low
        return slots

    def __repr__(self):
        """Context: takes the map lock; reads the counts without cluster locks."""
        with self._map_lock:
            entries = sum(c.count for c in self._clusters.values())
            nr_zswap = sum(c.nr_zswap for c in self._clusters.values())
            nr_clusters = len(self._clusters)
        return ("<VSwap core=pure entries=%d clusters=%d zswap_entries=%d "
                "cluster_size=%d>" % (entries, nr_clusters, nr_zswap, self._size))
