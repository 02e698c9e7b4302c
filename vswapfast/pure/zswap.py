"""The zswap pool in pure Python: the twin of ``vswapfast._zswap``.

This module follows upstream ``mm/zswap.c`` with the zswap entry kept in the
virtual swap descriptor, as the seed patch does.  It has the same API and
behaviour as the compiled core (see ``docs/semantics.md``, "zswap pool") and
is the reference the compiled core is tested against.

Objects in a descriptor's zswap field
-------------------------------------
    _ZswapEntry   ``struct zswap_entry``: the swap entry, the compressed
                  ``length``, the ``referenced`` bit, the pool object
                  (``handle``: a zspage and an object index) and the LRU
                  state.  A page that LZ4 does not shrink is stored raw
                  (``incompressible``, ``length`` 4096).
    _ZERO         the one ZERO marker, for a zero-filled page: no pool
                  memory, not on the LRU, counted in ``zero_pages``.

Any other object in the field was put there through the ``VSwap`` API; the
pool never reads it, and only drops it (invalidate, rejected stores).

Index designs
-------------
With ``index="vswap"`` (the default) the pool's objects live in the
descriptors' zswap field, as above.  With ``"rbtree"`` they
live in a ``_TreeIndex`` of the pool (``vswapfast/pure/zswap_index.py``),
keyed by swap entry, and the descriptors' zswap field is left to the
``VSwap`` API.  The pool then checks entries without the cluster lock, takes
a tree lock once per entry, and takes the cluster lock only where the
descriptor itself is read or written (``read``, writeback's slot).  A
``VSwap.free`` tells the pool which range it freed (``_range_freed``), under
the cluster lock, so that the index never keeps an entry whose descriptor
is gone.

Pool memory
-----------
``_ZPool`` is a size-class allocator in the manner of zsmalloc, on the
geometry of ``vswapfast.zpool``.  Each class carves objects out of zspages
(a ``bytearray`` of ``pages_per_zspage`` pages each), and the compressed
bytes really live there.  Both lists below are stacks, as in the compiled
core, so that both put the same objects in the same zspages:

- a class keeps the zspages that have a free object on a list and
  allocates from its head; a new zspage is pushed on the head, a zspage
  leaves the list when it fills up and is pushed back on the head when an
  object of it is freed; a zspage whose objects are all free is released
  at once;
- a zspage hands out its free objects last-freed first (at first in index
  order, 0, 1, 2, ...).

``pool_total_size`` is the bytes of all zspages.

Lifetime of an entry
--------------------
``refs`` counts the descriptor's reference (from the store that creates the
entry until it is erased from the descriptor) plus one pin per reader that
uses the entry's data with no lock held (load, read, writeback).  Whoever
drops the last reference frees the pool object, so a concurrent invalidate
never frees data under a reader.  ``linked`` is True while a descriptor
holds the entry; ``on_lru`` while it is on the LRU.  Writeback takes an
entry off the LRU while it works on it (as the kernel isolates it), so
concurrent shrinkers do not pick the same one.

The LRU is an ``OrderedDict`` of entries: the first key is the cold end.

A pool binds itself to its space with a weak reference (see
``vswapfast/pure/vswap.py``), and a pool that is dropped without ``close()``
is closed by its finalizer, as the compiled pool is when it is deallocated.

Locking
-------
    cluster lock  ->  tree lock  ->  _lru_lock  ->  size-class lock  ->  _ZPool.total_lock
                                                                         _stats_lock
    cluster lock  ->  the swap file's lock

A tree lock (tree designs only) guards its tree.  ``_lru_lock`` counts its
use, as cluster and tree locks do (``stats()``), and guards the LRU and, of
every entry, ``referenced``, ``refs``,
``on_lru`` and ``linked``.  A size class's lock guards its zspages.  The two
locks on the right are leaves: nothing is taken while either is held.
``_stats_lock`` guards the counters and the "pool is full" state.  Compression
and decompression run with no lock held (python-lz4 also drops the GIL for
them), and so do writeback's swap-file transfers; ``read`` holds the
cluster lock while it reads a slot, so that the slot cannot change hands
under it.  The swap file's lock is a leaf too.

The pool works on the space's clusters directly, through the same lookups
``VSwap`` uses, and keeps to the ``VSwap`` rule that no user code runs under
a cluster lock: displaced objects are released after it is dropped.
"""

import os
import threading
import weakref
from collections import OrderedDict

from ..batch import (
    BATCH_CORRUPT,
    BATCH_EMPTY,
    BATCH_INVALID,
    BATCH_REJECTED,
)
from ..errors import (
    InvalidEntryError,
    NoPageError,
    SwapFileFullError,
    ZswapDecompressError,
)
from ..compressors import compressor_repr
from ..zpool import PAGE_SIZE, ZPOOL_CLASSES, size_class
from .compress import compressor as _compressor
from ..zswap_entry import ZswapEntryView
from .swapfile import SwapFile, _as_out, _buffer
from .vswap import (
    ZSWAP_ZERO,
    VSwap,
    _CountedLock,
    _desc_drop_slot,
    _desc_set_slot,
    _desc_set_zswap,
    _desc_slot,
    _desc_zswap,
    _Shadow,
    _as_entry,
    _as_int,
    _check_nr,
    _entries_arg,
    _lock_cluster,
    _qualified_type,
    _status_array,
)
from .zswap_index import _TreeIndex, check_design, check_design_type

__all__ = ["PAGE_SIZE", "Zswap"]

#: ValueError for a ``pages`` or ``out`` buffer of a batch call that does not
#: hold one page per entry.
BAD_PAGES_SIZE = "%s must be %d bytes, not %d"

#: A zero-filled page, compared against and handed out as the page of ZERO.
_ZERO_PAGE = bytes(PAGE_SIZE)
# A larger max_pool_bytes is taken as this (the compiled core keeps it in a
# signed 64-bit int); no pool gets anywhere near it.
_MAX_POOL_BYTES_CAP = 1 << 62

# What writing back one entry came to.
_WRITTEN = "written"    # the page is in the swap file, the entry is freed
_RACED = "raced"        # the descriptor no longer held the entry: nothing done
_FULL = "full"          # the swap file has no free slot
_FAILED = "failed"      # the data is corrupt or could not be written: the entry stays

# shrink_memcg() of 6.18 walks one entry per node (nr_to_walk = 1); later
# trees walk up to SWAP_CLUSTER_MAX (32).
SHRINK_MEMCG_WALK = 1
MAX_RECLAIM_RETRIES = 16        # mm/internal.h
_SHRINK_DONE = 0        # shrink_memcg(): at least one entry written back
_SHRINK_ENOENT = 1      # nothing to walk, or writeback disabled or impossible
_SHRINK_EAGAIN = 2      # entries walked, none written back


#: The one ZERO marker that every pool puts in descriptors (the ZERO
#: backing type; see vswapfast/pure/vswap.py).
_ZERO = ZSWAP_ZERO


# -- pool memory ----------------------------------------------------------------

class _ZsPage:
    """A zspage: ``pages`` contiguous pages carved into objects of one class.

    ``free`` is the stack of free object indices (its top is the last
    item) and ``inuse`` counts the others.  Guarded by the class lock.
    """

    __slots__ = ("size_class", "data", "free", "inuse")

    def __init__(self, cls):
        self.size_class = cls
        self.data = bytearray(cls.pages * PAGE_SIZE)
        self.free = list(range(cls.objs - 1, -1, -1))
        self.inuse = 0


class _SizeClass:
    """One size class of the pool: objects of ``size`` bytes.

    ``partial`` holds the zspages with a free object, as a stack: a dict
    keeps insertion order, so its last key is the head, and a zspage can
    leave it from anywhere.
    """

    __slots__ = ("lock", "size", "pages", "objs", "partial")

    def __init__(self, size, pages, objs):
        self.lock = threading.Lock()
        self.size = size
        self.pages = pages
        self.objs = objs
        self.partial = {}


class _ZPool:
    """The size-class allocator behind a pool (a zs_pool).

    An object is named by its handle, a zspage and an object index.
    """

    __slots__ = ("classes", "total_lock", "total_size")

    def __init__(self):
        self.classes = [_SizeClass(*geometry) for geometry in ZPOOL_CLASSES]
        self.total_lock = threading.Lock()
        # Bytes of all zspages.  Written under total_lock, read without it.
        self.total_size = 0

    def malloc(self, length):
        """Allocate an object for ``length`` (1..4096) bytes.

        Context: takes the class lock, and ``total_lock`` when a zspage is
        created.

        Return: the handle ``(zspage, index)``.  ``MemoryError`` when a new
        zspage is needed and cannot be allocated.
        """
        cls = self.classes[size_class(length)]
        with cls.lock:
            if cls.partial:
                zspage = next(reversed(cls.partial))
            else:
                zspage = _ZsPage(cls)
                cls.partial[zspage] = None
                with self.total_lock:
                    self.total_size += cls.pages * PAGE_SIZE
            index = zspage.free.pop()
            zspage.inuse += 1
            if zspage.inuse == cls.objs:
                del cls.partial[zspage]
        return zspage, index

    def free(self, zspage, index):
        """Free object ``index`` of ``zspage``; release the zspage if it is
        left empty.

        Context: takes the class lock, and ``total_lock`` to release.
        """
        cls = zspage.size_class
        with cls.lock:
            zspage.free.append(index)
            zspage.inuse -= 1
            if zspage.inuse == 0:
                cls.partial.pop(zspage, None)
                with self.total_lock:
                    self.total_size -= cls.pages * PAGE_SIZE
            elif zspage not in cls.partial:
                # It was full: back on the head of the list.
                cls.partial[zspage] = None


class _ZswapEntry:
    """``struct zswap_entry``: one page in the pool.

    ``swpentry``, ``length``, ``incompressible`` and the handle
    (``zspage``, ``index``) are set before the entry is published and never
    change; the rest is guarded by the pool's LRU lock.
    """

    __slots__ = (
        "swpentry",
        "length",
        "incompressible",
        "zspage",
        "index",
        "referenced",
        "refs",
        "linked",
        "on_lru",
    )

    def __init__(self, swpentry, length, incompressible, zspage, index):
        self.swpentry = swpentry
        self.length = length
        self.incompressible = incompressible
        self.zspage = zspage
        self.index = index
        self.referenced = False
        # The creator's reference, which becomes the descriptor's.
        self.refs = 1
        self.linked = False
        self.on_lru = False

    def data(self):
        """A view of the stored bytes.  Caller holds a reference."""
        zspage = self.zspage
        offset = self.index * zspage.size_class.size
        return memoryview(zspage.data)[offset:offset + self.length]


# -- argument checks ------------------------------------------------------------

def _as_real(x, name):
    """``x``, an int or a float (not a bool), as a float.

    Converted once, before any check, so that a subclass whose operators
    lie cannot pass a check with one value and be used with another.
    """
    if type(x) is not float and (not isinstance(x, (int, float)) or isinstance(x, bool)):
        raise TypeError("%s must be a number, not %s" % (name, type(x).__name__))
    return float(x)


def _check_at_least_0(value, name):
    if value < 0:
        raise ValueError("%s must be at least 0, not %d" % (name, value))


def _check_threshold(value, given):
    """``value``: the float of the setting ``given``."""
    # Written so that NaN fails too.
    if not 0 < value <= 100:
        raise ValueError("accept_threshold_percent must be in (0, 100], not %r"
                         % (given,))


def _check_pages_size(name, n, size):
    """``ValueError`` (``BAD_PAGES_SIZE``) unless ``size`` is ``n`` pages."""
    if size != n * PAGE_SIZE:
        raise ValueError(BAD_PAGES_SIZE % (name, n * PAGE_SIZE, size))


def _physical_memory():
    """The machine's physical memory in bytes."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def _lock_range(space, entry, nr):
    """Checks 3 to 5 of the ``VSwap`` contract for ``[entry, entry + nr)``.

    Return: ``(cluster, index)`` with the cluster lock held; raises, with no
    lock held, for a bad entry, a range that crosses a cluster boundary or
    an entry that is not allocated.
    """
    cluster, index = space._lookup_range(entry, nr)
    _lock_cluster(cluster)
    try:
        space._check_allocated(cluster, index, nr)
    except BaseException:
        cluster.lock.release()
        raise
    return cluster, index


def _folio_is_zero_filled(view, nr):
    """``is_folio_zero_filled()``: every page of the folio is zero."""
    for i in range(nr):
        if view[i * PAGE_SIZE:(i + 1) * PAGE_SIZE] != _ZERO_PAGE:
            return False
    return True


def _prepare_publish(entry):
    """Before a new entry becomes visible: pinned (for
    ``_lru_add_published``), and ``linked``, which whoever drops it first
    clears.  No lock: nobody else can see it yet."""
    entry.refs += 1
    entry.linked = True


class _ShrinkWork:
    """``shrink_wq`` with ``zswap_shrink_work`` for one pool: a thread,
    started on first use, that runs ``shrink_worker()`` once per queueing,
    as ``queue_work()`` would (a no-op while pending, queued again while
    running).  The thread holds the pool only by a weak reference between
    runs, so that a pool nobody holds is still collected and closed."""

    __slots__ = ("cond", "pending", "running", "stop", "thread", "runs", "wait")

    def __init__(self, wait):
        self.cond = threading.Condition(threading.Lock())
        self.pending = False
        self.running = False
        self.stop = False
        self.thread = None
        self.runs = 0
        self.wait = wait

    def queue(self, pool):
        """``queue_work()``.  Context: the work's lock."""
        with self.cond:
            if self.stop or self.pending:
                return
            self.pending = True
            if self.thread is None:
                self.thread = threading.Thread(
                    target=_shrink_thread_main, args=(self, weakref.ref(pool)),
                    name="zswap-shrink", daemon=True)
                self.thread.start()
            self.cond.notify_all()

    def flush(self):
        """``flush_work()``.  Context: the work's lock, released while waiting."""
        with self.cond:
            while self.thread is not None and (self.pending or self.running):
                self.cond.wait()

    def shutdown(self):
        """Stop the thread and join it (unless called on it, by a pool
        collected there).  Context: the work's lock."""
        with self.cond:
            self.stop = True
            thread = self.thread
            self.cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join()


def _shrink_thread_main(work, pool_ref):
    cond = work.cond
    with cond:
        while True:
            while not work.pending and not work.stop:
                cond.wait()
            if work.stop:
                break
            work.pending = False
            work.running = True
            cond.release()
            try:
                pool = pool_ref()
                if pool is not None and not pool._closed:
                    pool._shrink_worker(work)
                # No reference is kept between runs.
                pool = None
            except Exception:           # pragma: no cover - a bug, not a state
                pool = None
            finally:
                cond.acquire()
                work.running = False
                work.runs += 1
                cond.notify_all()
        work.pending = False
        cond.notify_all()


class Zswap:
    """A compressed page pool whose entries live in a VSwap's descriptors.

    See ``docs/semantics.md``, section "zswap pool", for the full contract.
    A space has at most one pool.  Thread-safe: stores, loads, reads,
    invalidations and shrinking may run concurrently, with each other and
    with the ``VSwap`` API.  After ``close()`` every method call and
    setting raises ``ValueError("zswap pool is closed")``; ``close()``
    itself may be repeated, and ``space``, ``swapfile`` and ``repr`` keep
    working.  A pool that is dropped without ``close()`` is closed when it
    is collected.
    """

    __slots__ = (
        "_space",
        "_swapfile",
        "_max_pool_bytes",
        "_accept_threshold_percent",
        "_writeback",
        "_exclusive_loads",
        "_index_design",
        "_compressor",
        "_trees",
        "_closed",
        "_zpool",
        "_lru_lock",
        "_lru",
        "_stats_lock",
        "_reached_full",
        "_stored_pages",
        "_stored_incompressible_pages",
        "_compressed_bytes",
        "_zero_pages",
        "_zswpout",
        "_zswpin",
        "_zswpwb",
        "_swpout_zero",
        "_swpin_zero",
        "_pool_limit_hit",
        "_written_back_pages",
        "_reject_reclaim_fail",
        "_reject_alloc_fail",
        "_reject_kmemcache_fail",
        "_reject_compress_fail",
        "_reject_compress_poor",
        "_decompress_fail",
        "_shrink",
        "__weakref__",
    )

    def __init__(self, space, swapfile=None, *, max_pool_bytes=None,
                 max_pool_percent=20.0, memory_bytes=None,
                 accept_threshold_percent=90.0, writeback=True,
                 exclusive_loads=True, index="vswap", compressor="lz4",
                 wait_for_shrink_worker=False):
        """Create a pool for ``space``, writing back to ``swapfile`` if given.

        ``max_pool_bytes`` defaults to ``memory_bytes * max_pool_percent /
        100`` and ``memory_bytes`` to the machine's physical memory; a
        ``max_pool_bytes`` above 2**62 is taken as 2**62.  ``index`` is
        where the pool keeps its entries: ``"vswap"`` in the descriptors,
        ``"rbtree"`` in an index of that design (``"tree"``, its former
        name, a deprecated alias; see
        ``vswapfast/pure/zswap_index.py``), the descriptors' zswap field
        then staying as it is.  ``compressor`` is ``"lz4"``, ``"zstd"`` or
        ``"lzo"`` (``vswapfast.compressors``); its library is loaded here,
        ``CompressorLibraryError`` if it cannot be.  A store refused because
        the pool is full queues the background shrink worker (a thread, as
        the kernel's ``shrink_worker()``), which writes back from the cold
        end until the pool is under the acceptance threshold;
        ``wait_for_shrink_worker`` makes that store wait for it, so that runs
        are reproducible (the kernel does not wait).  ``TypeError`` for a space or swap file of
        another core (or not one at all) and for settings of the wrong
        type; ``ValueError`` for negative byte counts, a
        ``max_pool_percent`` outside ``[0, 100]``, an
        ``accept_threshold_percent`` outside ``(0, 100]``, an unknown
        ``index``, a space that already has a pool, and a closed swap file.

        Context: takes the space's map lock and, under it, the swap file's
        lock to bind to them.
        """
        # Until bound, close() and the finalizer have nothing to undo.
        self._closed = True
        # Types first, then values, then state, as everywhere else.
        if not isinstance(space, VSwap):
            raise TypeError("space must be a VSwap of the pure core, not %s"
                            % _qualified_type(space))
        if swapfile is not None and not isinstance(swapfile, SwapFile):
            raise TypeError("swapfile must be a SwapFile of the pure core or None, not %s"
                            % _qualified_type(swapfile))
        if max_pool_bytes is not None:
            max_pool_bytes = _as_int(max_pool_bytes, "max_pool_bytes")
        max_percent = _as_real(max_pool_percent, "max_pool_percent")
        if memory_bytes is not None:
            memory_bytes = _as_int(memory_bytes, "memory_bytes")
        accept_percent = _as_real(accept_threshold_percent, "accept_threshold_percent")
        check_design_type(index, "index")
        if max_pool_bytes is not None:
            _check_at_least_0(max_pool_bytes, "max_pool_bytes")
        # Written so that NaN fails too.
        if not 0 <= max_percent <= 100:
            raise ValueError("max_pool_percent must be in [0, 100], not %r"
                             % (max_pool_percent,))
        if memory_bytes is not None:
            _check_at_least_0(memory_bytes, "memory_bytes")
        _check_threshold(accept_percent, accept_threshold_percent)
        index = check_design(index, "index")
        # Checks the name, then loads its library: here, not at import.
        compressor = _compressor(compressor)
        if max_pool_bytes is None:
            if memory_bytes is None:
                memory_bytes = _physical_memory()
            # A float product, truncated, as the compiled core computes it.
            max_pool_bytes = int(memory_bytes * max_percent / 100)

        self._space = space
        self._swapfile = swapfile
        self._max_pool_bytes = min(max_pool_bytes, _MAX_POOL_BYTES_CAP)
        self._accept_threshold_percent = accept_percent
        self._writeback = bool(writeback)
        self._exclusive_loads = bool(exclusive_loads)
        self._index_design = index
        self._compressor = compressor
        # None for "vswap": the entries live in the descriptors.
        self._trees = None if index == "vswap" else _TreeIndex(index)
        self._zpool = _ZPool()
        self._lru_lock = _CountedLock()
        self._lru = OrderedDict()
        self._stats_lock = threading.Lock()
        # zswap_pool_reached_full: set when the limit is hit, cleared once
        # the pool is back under the acceptance threshold.
        self._reached_full = False
        self._stored_pages = 0
        self._stored_incompressible_pages = 0
        self._compressed_bytes = 0
        self._zero_pages = 0
        # Events with the names of their /proc/vmstat counters (see stats()).
        self._zswpout = 0
        self._zswpin = 0
        self._zswpwb = 0
        self._swpout_zero = 0
        self._swpin_zero = 0
        self._pool_limit_hit = 0
        self._written_back_pages = 0
        self._reject_reclaim_fail = 0
        self._reject_alloc_fail = 0
        # Kept for upstream's set of names: allocating an entry object
        # does not fail here.
        self._reject_kmemcache_fail = 0
        self._reject_compress_fail = 0
        self._reject_compress_poor = 0
        self._decompress_fail = 0
        self._shrink = _ShrinkWork(bool(wait_for_shrink_worker))

        # Last, once the pool is ready for the space's calls into it.
        with space._map_lock:
            if space._zswap_pool is not None:
                raise ValueError("space already has a zswap pool")
            if swapfile is not None:
                swapfile._bind()        # ValueError if it is closed
            space._zswap_pool = weakref.ref(self)
            self._closed = False

    def __del__(self):
        # A pool nobody holds any more gives its entries back to its space,
        # which may then take another pool.  (getattr: __init__ may not
        # have run at all.)
        if not getattr(self, "_closed", True):
            self.close()

    # -- properties and settings ------------------------------------------------

    @property
    def index(self):
        """Where the pool keeps its entries: ``"vswap"`` or ``"rbtree"``.
        Works on a closed pool too."""
        return self._index_design

    @property
    def compressor(self):
        """``"lz4"``, ``"zstd"`` or ``"lzo"`` (``vswapfast.compressors``),
        fixed at creation.  Works on a closed pool too."""
        return self._compressor.name

    @property
    def space(self):
        """The ``VSwap`` whose descriptors this pool's entries belong to."""
        return self._space

    @property
    def swapfile(self):
        """The ``SwapFile`` written back to, or None."""
        return self._swapfile

    @property
    def max_pool_bytes(self):
        """The pool limit in bytes of zspages.  Settable: an int of at
        least 0 (above 2**62 taken as 2**62); takes effect at the next
        store."""
        self._check_open()
        return self._max_pool_bytes

    @max_pool_bytes.setter
    def max_pool_bytes(self, value):
        self._check_open()
        value = _as_int(value, "max_pool_bytes")
        _check_at_least_0(value, "max_pool_bytes")
        self._max_pool_bytes = min(value, _MAX_POOL_BYTES_CAP)

    @property
    def accept_threshold_percent(self):
        """How far (in percent of ``max_pool_bytes``) a full pool must
        shrink before it accepts stores again.  Settable: a number in
        ``(0, 100]``, read back as a float."""
        self._check_open()
        return self._accept_threshold_percent

    @accept_threshold_percent.setter
    def accept_threshold_percent(self, value):
        self._check_open()
        percent = _as_real(value, "accept_threshold_percent")
        _check_threshold(percent, value)
        self._check_open()
        self._accept_threshold_percent = percent

    @property
    def writeback(self):
        """Whether writeback is wanted (settable; any value, taken as a bool)."""
        self._check_open()
        return self._writeback

    @writeback.setter
    def writeback(self, value):
        self._check_open()
        value = bool(value)
        self._check_open()
        self._writeback = value

    @property
    def exclusive_loads(self):
        """Whether a successful load frees the entry (settable, as a bool)."""
        self._check_open()
        return self._exclusive_loads

    @exclusive_loads.setter
    def exclusive_loads(self, value):
        self._check_open()
        value = bool(value)
        self._check_open()
        self._exclusive_loads = value

    @property
    def writeback_enabled(self):
        """True when ``writeback`` is set and there is a swap file (which
        cannot be closed while the pool is open)."""
        self._check_open()
        return self._writeback and self._swapfile is not None

    def _check_open(self):
        if self._closed:
            raise ValueError("zswap pool is closed")

    def _accept_bytes(self):
        """The acceptance threshold in bytes (a float, as the kernel's
        ``zswap_accept_thr_pages()`` in bytes)."""
        return self._max_pool_bytes * self._accept_threshold_percent / 100

    # -- entry lifetime ---------------------------------------------------------------

    def _free_entry(self, entry):
        """Free the pool object of an entry nobody references any more.

        Context: takes the size-class lock, then the stats lock.
        """
        self._zpool.free(entry.zspage, entry.index)
        with self._stats_lock:
            self._stored_pages -= 1
            self._compressed_bytes -= entry.length
            if entry.incompressible:
                self._stored_incompressible_pages -= 1

    def _put(self, entry):
        """Drop a pin (or an uninstalled entry's only reference).

        Context: takes the LRU lock; frees the entry if that was the last
        reference.
        """
        with self._lru_lock:
            entry.refs -= 1
            if entry.refs:
                return
        self._free_entry(entry)

    def _pin(self, entry):
        """Take a reference for reading the data with no lock held.

        Caller holds the lock of the descriptor or tree that holds
        ``entry``, which keeps that reference alive meanwhile.
        Context: takes the LRU lock.
        """
        with self._lru_lock:
            entry.refs += 1

    def _unpin_referenced(self, entry):
        """Set ``referenced`` and drop a pin, in one LRU-lock section."""
        with self._lru_lock:
            entry.referenced = True
            entry.refs -= 1
            if entry.refs:
                return
        self._free_entry(entry)

    # -- hooks called by VSwap (see vswapfast/pure/vswap.py) --------------------------

    def _view(self, obj, entry):
        """The ``ZswapEntryView`` for a pool object stored at ``entry``, or
        ``obj`` itself if it is not one.  Takes no lock: only ``referenced``
        can change, and it is read once."""
        if type(obj) is _ZswapEntry:
            return ZswapEntryView(obj.swpentry, obj.length, obj.referenced,
                                  False, obj.incompressible)
        if obj is _ZERO:
            return ZswapEntryView(entry, 0, False, True, False)
        return obj

    def _release_entry(self, obj):
        """Free a pool object that was just erased from its descriptor.

        Objects that are not the pool's are ignored.  Called with no lock
        held, by the ``VSwap`` API and by the pool itself; works on a closed
        pool too.

        Context: the stats lock for ZERO; for an entry, the LRU lock, and
        if that was the last reference, the size-class lock.
        """
        if type(obj) is _ZswapEntry:
            with self._lru_lock:
                if obj.on_lru:
                    del self._lru[obj]
                    obj.on_lru = False
                obj.linked = False
                obj.refs -= 1
                if obj.refs:
                    return
            self._free_entry(obj)
        elif obj is _ZERO:
            with self._stats_lock:
                self._zero_pages -= 1

    def _range_freed(self, entry, nr):
        """Take the pool's entries of a freed range out of its tree index.

        ``VSwap.free`` calls this with the range's cluster lock held, once
        the bitmap has let go of the range (see ``VSwap._free_locked``), so
        that no entry outlives its swap entry.  With the "vswap" design
        there is nothing to do: the free finds the entries in the
        descriptors.  Works on a closed pool too (its trees are empty).

        Context: the tree lock once per entry, as ``zswap_invalidate`` is
        called per page.

        Return: the objects taken out, for ``_release_entry`` once no lock
        is held.
        """
        if self._trees is None:
            return ()
        taken = [self._tree_pop(e) for e in range(entry, entry + nr)]
        return [obj for obj in taken if obj is not None]

    def _release_slot(self, entry, slot):
        """Free ``slot`` in the swap file if it holds the page of ``entry``
        there (a descriptor that ``VSwap.free`` dropped held it).  Never
        raises.

        Context: takes the swap file's lock.
        """
        swapfile = self._swapfile
        if swapfile is not None:
            swapfile._release_owned(slot, entry)

    def _slot_assigned(self, entry, slot):
        """``VSwap.set_slot`` gave ``entry`` the slot ``slot``: if it is
        allocated in the pool's file, it now holds the page of ``entry``.

        Context: caller holds the cluster lock; takes the file's lock.
        """
        swapfile = self._swapfile
        if swapfile is not None:
            swapfile._set_owner(slot, entry)

    def _take_stale_slot(self, cluster, index, entry):
        """``release_backing()`` of a store: the descriptor of ``entry``,
        which gets a newer page, lets go of the slot the pool wrote its
        older page to, so that no read finds that page again.

        Context: caller holds the cluster lock; takes the file's lock.

        Return: the slot, to free with ``_release_slot`` once the cluster
        lock is dropped, or 0.
        """
        slot = _desc_slot(cluster, index)
        swapfile = self._swapfile
        if not slot or swapfile is None or not swapfile._owned(slot, entry):
            return 0
        return _desc_drop_slot(cluster, index)

    # -- store --------------------------------------------------------------------------

    def store(self, entry, page):
        """Store ``page`` (``nr * 4096`` bytes) at the ``nr`` entries from ``entry``.

        As ``swap_writeout()`` then ``zswap_store()``: a zero-filled folio
        takes the ZERO backing, with no limit check; otherwise the pool
        limit is checked once (``zswap_check_limits()``; a full pool
        rejects the store and queues the background shrink worker), then
        each page becomes an entry of the pool's compressor (a zero page of
        a mixed folio too, as ``zswap_store_page()`` does).  On success
        each descriptor's old zswap entry is freed and the new entries go
        to the hot end of the LRU, ``referenced`` set.
        On rejection none of the ``nr`` entries is left with a zswap entry.

        Context: takes the cluster lock to check the range; no lock while
        compressing; then the cluster lock, and after it the LRU lock, to put
        the entries in.  With a tree index: no cluster lock, and each
        entry's tree lock, and after it the LRU lock, to put it in.  No
        writeback.

        Return: True if stored, False if rejected (the reason is counted).
        """
        self._check_open()
        if type(entry) is not int:
            entry = _as_entry(entry)
        view = _buffer(page, "page")
        if view is None:
            raise TypeError("page must be a buffer, not %s" % type(page).__name__)
        size = view.nbytes
        if size == 0 or size % PAGE_SIZE:
            raise ValueError("page must be a positive multiple of %d bytes, not %d"
                             % (PAGE_SIZE, size))
        nr = size // PAGE_SIZE
        # The range checks now, so that a bad call changes nothing; the
        # range is checked again when the entries go in.
        self._check_range(entry, nr)
        self._check_open()          # argument hooks may have closed the pool
        return self._store(entry, view, nr)

    def _store(self, entry, view, nr):
        """``store`` once its arguments are checked: ``view`` is ``nr``
        pages for the range from ``entry``."""
        # swap_writeout(): a zero-filled folio takes the ZERO backing before
        # zswap is asked (no pool memory, no limit, never rejected).
        if _folio_is_zero_filled(view, nr):
            new = [_ZERO] * nr
        else:
            if self._check_limits():
                self._reject(entry, nr)
                return False
            new = []
        try:
            for i in range(len(new), nr):
                obj = self._compress(view[i * PAGE_SIZE:(i + 1) * PAGE_SIZE],
                                     entry + i, self._writeback)
                if obj is None:
                    break
                new.append(obj)
            stored = len(new) == nr
            if stored and self._trees is None:
                old = self._install(entry, nr, new)
        except BaseException:
            self._discard(new)
            raise
        if stored and self._trees is not None:
            # Publishes entry by entry: it cleans up after itself.
            old = self._install_tree(entry, new)
        if not stored:
            # As upstream: the pages compressed so far are freed, and the
            # stale entries of the whole range are dropped, so that nothing
            # older can be mistaken for the page that was not stored.
            self._discard(new)
            self._reject(entry, nr)
            return False
        for obj in old:
            self._release_entry(obj)
        return True

    def _reject(self, entry, nr):
        """The failure exit of ``zswap_store()``: the stale entries of the
        range are dropped, and if the pool is full the shrink work is
        queued (``if (!ret && zswap_pool_reached_full) queue_work()``).  The
        storing thread writes nothing back; with ``wait_for_shrink_worker``
        it waits for the work it queued.  Context: as ``_drop_stale``, then
        the shrink work's lock."""
        self._drop_stale(entry, nr)
        if self._reached_full and self.writeback_enabled:
            work = self._shrink
            work.queue(self)
            if work.wait:
                work.flush()

    def _check_range(self, entry, nr):
        """Checks 3 to 5 for ``[entry, entry + nr)``; raise if they fail.

        Context: the cluster lock, or with a tree index no lock at all (the
        tree designs read the bitmap without the cluster lock).
        """
        if self._trees is None:
            cluster, _ = _lock_range(self._space, entry, nr)
            cluster.lock.release()
        else:
            self._space._check_range_unlocked(entry, nr)

    def _check_limits(self):
        """``zswap_check_limits()``: whether the pool is full.

        Counts ``pool_limit_hit`` when the pool is at or over its limit.  A
        full pool stays full until it is at or under the acceptance
        threshold.  Context: the stats lock.

        Return: True if the store must be rejected.
        """
        with self._stats_lock:
            total = self._zpool.total_size
            if total >= self._max_pool_bytes:
                self._pool_limit_hit += 1
                self._reached_full = True
            elif self._reached_full and total <= self._accept_bytes():
                self._reached_full = False
            return self._reached_full

    def _compress(self, page, swpentry, writeback):
        """Make the pool object for one page (a 4096-byte view).

        Context: no lock while compressing; the size-class lock to allocate,
        the stats lock to count.

        Return: a new unpublished ``_ZswapEntry`` (holding one reference),
        or None when the page is rejected (counted).
        """
        raw = page.tobytes()
        data = self._compressor.compress(raw)
        incompressible = data is None or len(data) >= PAGE_SIZE
        if incompressible:
            # zswap_compress(): stored as-is while writeback is enabled (to
            # keep the LRU order of writebacks), else rejected.  Every kernel
            # compressor reports an output that does not fit in a page as
            # -EINVAL, counted in reject_compress_fail.
            if not writeback:
                with self._stats_lock:
                    self._reject_compress_fail += 1
                return None
            data = raw
        length = len(data)
        try:
            zspage, index = self._zpool.malloc(length)
        except MemoryError:
            with self._stats_lock:
                self._reject_alloc_fail += 1
            return None
        offset = index * zspage.size_class.size
        # The object is ours alone until it is published: no lock needed.
        zspage.data[offset:offset + length] = data
        with self._stats_lock:
            self._stored_pages += 1
            self._compressed_bytes += length
            if incompressible:
                self._stored_incompressible_pages += 1
        return _ZswapEntry(swpentry, length, incompressible, zspage, index)

    def _discard(self, new):
        """Free objects made by ``_compress`` that were never published."""
        for obj in new:
            if obj is not _ZERO:
                self._put(obj)

    def _install(self, entry, nr, new):
        """Put the new objects in the ``nr`` descriptors from ``entry``.

        Raises (publishing nothing) if the range is no longer allocated or
        the pool was closed meanwhile; checking ``_closed`` under the cluster
        lock is what lets ``close()`` find every entry it must take out.

        Context: takes the cluster lock, under it the stats lock; then, with
        no cluster lock held, the LRU lock (``_lru_add_published``).

        Return: the objects the descriptors held before (None left out).
        """
        cluster, index = _lock_range(self._space, entry, nr)
        stale = []
        try:
            self._check_open()
            old = []
            for obj in new:
                if obj is not _ZERO:
                    _prepare_publish(obj)
            for i in range(nr):
                slot = self._take_stale_slot(cluster, index + i, entry + i)
                if slot:
                    stale.append((entry + i, slot))
                old.append(_desc_zswap(cluster, index + i))
                # A slot number left here is none of the pool's file.
                _desc_set_zswap(cluster, index + i, new[i])
            zeros = sum(1 for obj in new if obj is _ZERO)
            with self._stats_lock:
                self._zero_pages += zeros
                self._swpout_zero += zeros
                self._zswpout += nr - zeros
        finally:
            cluster.lock.release()
        self._lru_add_published(new)
        for swpentry, slot in stale:
            self._release_slot(swpentry, slot)
        return [obj for obj in old if obj is not None]

    def _lru_add_published(self, new):
        """``zswap_lru_add()`` after ``zswap_entry_store()``, with no cluster
        or tree lock held (patch 11 takes the LRU lock outside the cluster
        lock): put each newly published entry at the hot end, referenced,
        unless it was dropped meanwhile, and drop the pin the store took
        before publishing it.  Context: the LRU lock; frees an entry whose
        last reference that was with no lock held."""
        freed = []
        with self._lru_lock:
            for obj in new:
                if obj is _ZERO:
                    continue
                if obj.linked:
                    obj.referenced = True
                    obj.on_lru = True
                    self._lru[obj] = None
                obj.refs -= 1
                if not obj.refs:
                    freed.append(obj)
        for obj in freed:
            self._free_entry(obj)

    def _install_tree(self, entry, new):
        """Put the new objects in the tree index, for the entries from ``entry``.

        One entry at a time, each under its tree lock, where the entry's
        descriptor is checked again (the bitmap, without the cluster lock)
        and so is ``_closed``, as ``_install`` does under the cluster lock.
        An entry freed meanwhile, or a pool closed meanwhile, stops the
        walk: the objects not yet published are freed, the ones published
        stay (their entries are allocated, or ``close()`` takes them), and
        the error is raised.  Only a call racing with a free or a close of
        its own range sees that.

        Context: each entry's tree lock, under it the stats lock; the LRU
        lock and the releases with no lock held.

        Return: the objects the index held before.
        """
        space = self._space
        trees = self._trees
        old = []
        error = None
        for i, obj in enumerate(new):
            swpentry = entry + i
            tree = trees.tree_for_store(swpentry)
            # The cluster lock first, as writeback takes them: the
            # descriptor lets go of an older written-back page under it.
            cluster = space._clusters.get(swpentry >> space._shift)
            stale = 0
            if cluster is None:
                error = space._not_allocated(swpentry)
            else:
                _lock_cluster(cluster)
                try:
                    with tree:
                        if self._closed:
                            error = ValueError("zswap pool is closed")
                        elif not space._allocated(swpentry):
                            error = space._not_allocated(swpentry)
                        else:
                            prev = tree.entries.get(swpentry)
                            self._link(obj)
                            tree.entries[swpentry] = obj
                    if error is None:
                        stale = self._take_stale_slot(cluster, swpentry & space._mask, swpentry)
                finally:
                    cluster.lock.release()
            if error is None:
                self._lru_add_published((obj,))
            if stale:
                self._release_slot(swpentry, stale)
            if error is not None:
                self._discard(new[i:])
                for stale in old:
                    self._release_entry(stale)
                raise error
            if prev is not None:
                old.append(prev)
        return old

    def _link(self, obj):
        """Count an object about to be published; an entry is pinned and
        marked for ``_lru_add_published``.  Caller holds the lock of the
        tree it is published in.  Context: the stats lock."""
        if obj is _ZERO:
            with self._stats_lock:
                self._zero_pages += 1
                self._swpout_zero += 1
            return
        _prepare_publish(obj)
        with self._stats_lock:
            self._zswpout += 1

    def _tree_pop(self, entry):
        """Erase ``entry`` from the tree index.  Context: its tree lock.

        Return: the pool object it held, or None.
        """
        tree = self._trees.tree(entry)
        if tree is None:
            return None
        with tree:
            return tree.entries.pop(entry, None)

    def _tree_get_pinned(self, entry):
        """Look ``entry`` up in the tree index, pinning a pool entry.

        Context: the entry's tree lock, under it the LRU lock to pin.

        Return: the ``_ZswapEntry`` (pinned), ``_ZERO``, or None.
        """
        tree = self._trees.tree(entry)
        if tree is None:
            return None
        with tree:
            obj = tree.entries.get(entry)
            if type(obj) is _ZswapEntry:
                self._pin(obj)
        return obj

    def _drop_stale(self, entry, nr):
        """Erase and free the zswap entries of a range a store gave up on.

        Entries freed since the call's checks are skipped (a freed
        descriptor has no zswap entry, and ``VSwap.free`` empties a tree
        index of the range).

        Context: takes the cluster lock, or with a tree index each entry's
        tree lock; then releases outside it.
        """
        space = self._space
        dropped = []
        if self._trees is not None:
            dropped = [self._tree_pop(entry + i) for i in range(nr)]
        cluster = space._clusters.get(entry >> space._shift)
        stale = []
        if cluster is not None:
            index = entry & space._mask
            end = index + nr
            _lock_cluster(cluster)
            try:
                if self._trees is None:
                    dropped = [_desc_zswap(cluster, i) for i in range(index, end)]
                    for i in range(index, end):
                        if dropped[i - index] is not None:
                            _desc_set_zswap(cluster, i, None)
                # Its written-back pages are stale too.
                for i in range(nr):
                    if cluster.bitmap >> (index + i) & 1:
                        slot = self._take_stale_slot(cluster, index + i, entry + i)
                        if slot:
                            stale.append((entry + i, slot))
            finally:
                cluster.lock.release()
        for swpentry, slot in stale:
            self._release_slot(swpentry, slot)
        for obj in dropped:
            if obj is not None:
                self._release_entry(obj)

    # -- load and read -------------------------------------------------------------------

    def _decompress(self, entry):
        """The page of a pinned entry, as new bytes.

        Context: no lock.  Counts ``decompress_fail`` (stats lock) and
        raises ``ZswapDecompressError`` when the data does not decompress to
        exactly one page.
        """
        data = entry.data()
        if entry.incompressible:
            return data.tobytes()
        page = self._compressor.decompress(data)
        if page is None:
            with self._stats_lock:
                self._decompress_fail += 1
            raise ZswapDecompressError("swap entry %#x: compressed data is corrupt"
                                       % entry.swpentry)
        return page

    def _erase_if_same(self, entry, obj):
        """Erase ``obj`` from the descriptor of ``entry`` if it still holds it,
        and free it.

        A descriptor that was freed holds no zswap entry, so identity alone
        decides.  Context: the cluster lock (with a tree index, the entry's
        tree lock), then the release outside it.
        """
        if self._trees is not None:
            tree = self._trees.tree(entry)
            with tree:
                if tree.entries.get(entry) is not obj:
                    return
                del tree.entries[entry]
            self._release_entry(obj)
            return
        space = self._space
        cluster = space._clusters.get(entry >> space._shift)
        if cluster is None:
            return
        index = entry & space._mask
        _lock_cluster(cluster)
        try:
            if _desc_zswap(cluster, index) is not obj:
                return
            _desc_set_zswap(cluster, index, None)  # vswap_store_folio()
        finally:
            cluster.lock.release()
        self._release_entry(obj)

    def load(self, entry, out=None):
        """Load the page that this pool holds for ``entry``.

        ``out``, when given, is a writable 4096-byte buffer for the page.
        With ``exclusive_loads`` (the default) a successful load erases and
        frees the entry; otherwise the entry stays and is marked referenced.
        A failed decompression leaves the entry in place.

        Context: the cluster lock and, under it, the LRU lock to pin the
        entry; no lock while decompressing; then the cluster lock again to
        erase (or the LRU lock to mark it referenced).  With a tree index,
        the entry's tree lock instead of the cluster lock.

        Return: ``out`` or new bytes with the page; None when the entry has
        no pool entry.  ``ZswapDecompressError`` for corrupt data.
        """
        self._check_open()
        if type(entry) is not int:
            entry = _as_entry(entry)
        out_view = _as_out(out)
        self._check_open()          # argument hooks may have closed the pool
        if self._trees is None:
            cluster, index = _lock_range(self._space, entry, 1)
            try:
                obj = _desc_zswap(cluster, index)
                if type(obj) is _ZswapEntry:
                    self._pin(obj)
                elif obj is not _ZERO:
                    obj = None
            finally:
                cluster.lock.release()
        else:
            self._space._check_range_unlocked(entry, 1)
            obj = self._tree_get_pinned(entry)
        if obj is None:
            return None
        if obj is _ZERO:
            page = _ZERO_PAGE
        else:
            try:
                page = self._decompress(obj)
            except BaseException:
                self._put(obj)
                raise
        if self._exclusive_loads:
            self._erase_if_same(entry, obj)
            if obj is not _ZERO:
                self._put(obj)
        elif obj is not _ZERO:
            self._unpin_referenced(obj)
        # A swap-in, as swap_read_folio() counts it.
        with self._stats_lock:
            if obj is _ZERO:
                self._swpin_zero += 1
            else:
                self._zswpin += 1
        if out_view is None:
            return page
        out_view[:] = page
        return out

    def read(self, entry, out=None):
        """Read the page of ``entry`` wherever it lives, without moving it.

        In order: a swap-cache folio that is a buffer of exactly 4096 bytes;
        this pool's entry (marked referenced); the descriptor's slot in the
        swap file.

        Context: the cluster lock and, under it, the LRU lock to pin a pool
        entry (with a tree index: the entry's tree lock under the cluster
        lock, and the LRU lock under that); then no lock while copying or
        decompressing.  For the slot, the cluster lock again and, under it,
        the swap file's lock.

        Return: ``out`` or new bytes with the page.  ``NoPageError`` when
        there is none; ``ZswapDecompressError`` for corrupt pool data.
        """
        self._check_open()
        if type(entry) is not int:
            entry = _as_entry(entry)
        out_view = _as_out(out)
        self._check_open()          # argument hooks may have closed the pool
        cluster, index = _lock_range(self._space, entry, 1)
        try:
            folio = cluster.swap_cache[index]
            if self._trees is None:
                obj = _desc_zswap(cluster, index)
                if type(obj) is _ZswapEntry:
                    self._pin(obj)
            else:
                obj = self._tree_get_pinned(entry)
        finally:
            cluster.lock.release()

        page = None
        if folio is not None and type(folio) is not _Shadow:
            try:
                folio_view = _buffer(folio, "folio")
            except ValueError:          # not contiguous: not a page to copy
                folio_view = None
            if folio_view is not None and folio_view.nbytes == PAGE_SIZE:
                page = folio_view.tobytes()
        if type(obj) is _ZswapEntry:
            if page is not None:
                self._put(obj)
            else:
                try:
                    page = self._decompress(obj)
                except BaseException:
                    self._put(obj)
                    raise
                self._unpin_referenced(obj)
        elif obj is _ZERO and page is None:
            page = _ZERO_PAGE
        if page is None:
            page = self._read_slot(entry, out_view)
            if page is None:
                raise NoPageError("swap entry %#x holds no page: no folio, zswap "
                                  "entry or swap slot" % entry)
            # Read straight into out, or as new bytes.
            return page if out_view is None else out
        if out_view is None:
            return page
        out_view[:] = page
        return out

    def _read_slot(self, entry, out_view):
        """Read the page in the swap-file slot of ``entry``.

        The slot is read with the cluster lock held: a slot can only leave
        its descriptor under that lock (and is freed in the file after), so
        it cannot be freed and handed to another page under the read.  A
        slot that is not allocated in the swap file holds no page.

        Context: the cluster lock, then under it the swap file's lock.

        Return: ``out_view`` filled, new bytes, or None when there is no
        slot (or no swap file).
        """
        swapfile = self._swapfile
        cluster, index = _lock_range(self._space, entry, 1)
        try:
            slot = _desc_slot(cluster, index)
            if not slot or swapfile is None:
                return None
            return swapfile._read_owned(slot, entry, out_view)
        finally:
            cluster.lock.release()

    # -- invalidate ------------------------------------------------------------------------

    def invalidate(self, entry, nr=1):
        """Erase and free the zswap entries of the ``nr`` entries from ``entry``.

        Pool entries, ZERO markers and any other object in the field alike.
        With a tree index, the pool's entries in the index; what the
        descriptors' zswap field holds is then the space's business, and is
        left alone.

        Context: takes the cluster lock (with a tree index, each entry's tree
        lock); frees outside it.

        Return: how many zswap entries were erased.
        """
        self._check_open()
        if type(entry) is not int:
            entry = _as_entry(entry)
        if type(nr) is not int:
            nr = _as_int(nr, "nr")
        _check_nr(nr)
        self._check_open()          # argument hooks may have closed the pool
        if self._trees is not None:
            self._space._check_range_unlocked(entry, nr)
            dropped = [self._tree_pop(entry + i) for i in range(nr)]
            dropped = [obj for obj in dropped if obj is not None]
            for obj in dropped:
                self._release_entry(obj)
            return len(dropped)
        cluster, index = _lock_range(self._space, entry, nr)
        try:
            end = index + nr
            dropped = [_desc_zswap(cluster, i) for i in range(index, end)]
            for i in range(index, end):
                if dropped[i - index] is not None:
                    _desc_set_zswap(cluster, i, None)
            count = sum(1 for obj in dropped if obj is not None)
        finally:
            cluster.lock.release()
        for obj in dropped:
            if obj is not None:
                self._release_entry(obj)
        return count

    # -- writeback -------------------------------------------------------------------------

    def shrink(self, nr):
        """Write back up to ``nr`` entries from the cold end of the LRU.

        A direct walk of the LRU as the kernel's shrinker scan does it
        (``_lru_walk``), long enough to give every entry its second chance
        and then write ``nr``; it ends at a full swap file.

        Context: as ``_lru_walk``.

        Return: how many entries were written back; 0 when writeback is
        disabled or ``nr`` is 0.
        """
        self._check_open()
        if type(nr) is not int:
            nr = _as_int(nr, "nr")
        if nr < 0:
            raise ValueError("nr must be at least 0, not %d" % nr)
        if not self.writeback_enabled or nr == 0:
            return 0
        with self._lru_lock:
            budget = len(self._lru)
        return self._lru_walk(budget + nr, nr, True)[0]

    def _lru_walk(self, nr_to_walk, max_written, stop_when_full):
        """``list_lru_walk_one()`` with ``shrink_memcg_cb()``: visit up to
        ``nr_to_walk`` entries from the cold end, writing back until
        ``max_written`` were.

        Each visited entry moves to the hot end first (``LRU_ROTATE``, or
        ``list_move_tail()`` before the lock is dropped): a referenced one
        has the bit cleared and stays there (second chance); any other is
        written back, staying on the LRU until it is freed, so that a
        failure leaves it rotated.  A failure counts
        ``reject_reclaim_fail``.  ``stop_when_full`` ends the walk at a full
        swap file.

        Context: the LRU lock to pick and rotate; none while writing back.

        Return: (written back, visited).
        """
        swapfile = self._swapfile
        lru = self._lru
        written = scanned = 0
        while nr_to_walk > 0 and written < max_written:
            with self._lru_lock:
                if not lru:
                    break
                entry = next(iter(lru))
                nr_to_walk -= 1
                scanned += 1
                lru.move_to_end(entry)
                if entry.referenced:
                    entry.referenced = False
                    continue
                entry.refs += 1         # pinned while written back
            try:
                result = self._writeback_entry(entry, swapfile)
            finally:
                self._put(entry)
            if result is _WRITTEN:
                written += 1
                continue
            with self._stats_lock:
                self._reject_reclaim_fail += 1
            if result is _FULL and stop_when_full:
                break
        return written, scanned

    def _writeback_possible(self):
        """``zswap_writeback_possible()``: writeback is on and the swap file
        has a free slot.  Reads the count without the file's lock."""
        swapfile = self._swapfile
        return (self._writeback and swapfile is not None and not swapfile.closed
                and swapfile._nr_used < swapfile._nr_slots)

    def _shrink_memcg(self):
        """``shrink_memcg()`` for the model's one memcg (and node): walk
        ``SHRINK_MEMCG_WALK`` entries.  Context: as ``_lru_walk``.

        Return: ``_SHRINK_DONE``, ``_SHRINK_EAGAIN`` or ``_SHRINK_ENOENT``
        (the kernel's 0, -EAGAIN and -ENOENT).
        """
        if not self._writeback_possible():
            return _SHRINK_ENOENT
        written, scanned = self._lru_walk(SHRINK_MEMCG_WALK, SHRINK_MEMCG_WALK, False)
        if not scanned:
            return _SHRINK_ENOENT
        return _SHRINK_DONE if written else _SHRINK_EAGAIN

    def _shrink_worker(self, work):
        """``shrink_worker()``: write back until the pool is under the
        acceptance threshold, giving up after ``MAX_RECLAIM_RETRIES``
        failures.  The model has one memcg, so the kernel's round robin over
        memcgs is root, end of pass, root, ...: a pass with no candidate is
        a failure, and so is every -EAGAIN.  Ends too when the pool is
        closing.  Context: as ``_shrink_memcg``; no pool-wide lock."""
        if not self._writeback_possible():
            return
        thr = self._accept_bytes()
        failures = attempts = 0
        end_of_pass = False
        while True:
            if end_of_pass:
                end_of_pass = False
                if not attempts:
                    failures += 1
                    if failures == MAX_RECLAIM_RETRIES:
                        break
                attempts = 0
            else:
                end_of_pass = True
                ret = self._shrink_memcg()
                if ret != _SHRINK_ENOENT:
                    attempts += 1
                    if ret != _SHRINK_DONE:
                        failures += 1
                        if failures == MAX_RECLAIM_RETRIES:
                            break
            if (self._zpool.total_size <= thr or not self._writeback_possible()
                    or work.stop or self._closed):
                break

    def flush_shrink_work(self):
        """``flush_work(&zswap_shrink_work)``: wait until the background
        shrink worker has nothing queued and is not running.  Context: the
        worker's queue lock (released while waiting)."""
        self._check_open()
        self._shrink.flush()

    @property
    def wait_for_shrink_worker(self):
        """Whether a store that queues the shrink worker waits for it."""
        self._check_open()
        return self._shrink.wait

    @wait_for_shrink_worker.setter
    def wait_for_shrink_worker(self, value):
        self._check_open()
        self._shrink.wait = bool(value)

    def _entry_still_stored(self, entry):
        """``entry == zswap_entry_load(swpentry)``: whether the descriptor
        (or tree) of ``entry`` still holds it.  Context: the cluster lock,
        or with a tree index the entry's tree lock."""
        swpentry = entry.swpentry
        if self._trees is not None:
            tree = self._trees.tree(swpentry)
            if tree is None:
                return False
            with tree:
                return tree.entries.get(swpentry) is entry
        space = self._space
        cluster = space._clusters.get(swpentry >> space._shift)
        if cluster is None:
            return False
        _lock_cluster(cluster)
        try:
            return _desc_zswap(cluster, swpentry & space._mask) is entry
        finally:
            cluster.lock.release()

    def _writeback_entry(self, entry, swapfile):
        """``zswap_writeback_entry()``: write one pinned entry to a new slot.

        In the kernel's order: check under the cluster lock that the
        descriptor still holds the entry (``_RACED`` if not: nothing is
        done); take a slot (``_FULL``); decompress and write with no lock
        held (``_FAILED``, counted in ``decompress_fail`` for corrupt data:
        the slot is given back and the entry stays); then switch the
        descriptor's backing from the entry to the slot under the cluster
        lock if it still holds the entry (``_RACED`` if not, the slot given
        back).  A written entry is freed, off the LRU.  The kernel's
        swap-cache folio is not modelled (docs/semantics.md).

        Context: the cluster lock; the swap file's lock; no lock while
        decompressing and writing; the cluster lock again; the LRU lock to
        free.

        Return: ``_WRITTEN``, ``_RACED``, ``_FULL`` or ``_FAILED``.
        """
        if not self._entry_still_stored(entry):
            return _RACED
        try:
            slot = swapfile.alloc_slot()
        except (SwapFileFullError, ValueError):
            return _FULL
        try:
            page = self._decompress(entry)
            swapfile.write(slot, page)
            old_slot = self._commit_writeback(entry, slot)
        except (ZswapDecompressError, OSError):
            swapfile._release(slot)
            return _FAILED
        except BaseException:
            swapfile._release(slot)
            raise
        if old_slot is None:
            swapfile._release(slot)
            return _RACED
        if old_slot and old_slot != slot:
            swapfile._release_owned(old_slot, entry.swpentry)
        self._release_entry(entry)
        with self._stats_lock:
            self._written_back_pages += 1
            self._zswpwb += 1
        return _WRITTEN

    def _commit_writeback(self, entry, slot):
        """Move the descriptor of ``entry`` from the pool entry to ``slot``.

        Context: takes the cluster lock (and under it, with a tree index,
        the entry's tree lock).

        Return: the descriptor's previous slot (0 for none), or None if the
        descriptor (or the index) no longer holds ``entry``.
        """
        space = self._space
        swpentry = entry.swpentry
        cluster = space._clusters.get(swpentry >> space._shift)
        if cluster is None:
            return None
        index = swpentry & space._mask
        _lock_cluster(cluster)
        try:
            if self._trees is None:
                if _desc_zswap(cluster, index) is not entry:
                    return None
                # _desc_set_slot() below erases it.
            else:
                # While the cluster lock is held, an entry in the tree has
                # an allocated descriptor: VSwap.free empties the tree of a
                # range under this lock (see _range_freed).
                tree = self._trees.tree(swpentry)
                # One backing: a descriptor holding a zswap value of the
                # space's own (VSwap.zswap_entry_store) is given no slot.
                if _desc_zswap(cluster, index) is not None:
                    return None
                with tree:
                    if tree.entries.get(swpentry) is not entry:
                        return None
                    del tree.entries[swpentry]
            # vswap_alloc_swap_slot(): the ZSWAP backing becomes SWAPFILE.
            old_slot, _ = _desc_set_slot(cluster, index, slot)
            self._swapfile._set_owner(slot, swpentry)
        finally:
            cluster.lock.release()
        return old_slot

    # -- batch calls -------------------------------------------------------------------------
    #
    # Each entry is handled as the single-entry call would handle it, with
    # its status (vswapfast.batch) in place of a return value or an
    # InvalidEntryError.  The call carries on past bad entries and undoes
    # nothing.  Other errors (a pool closed meanwhile) are raised.

    @staticmethod
    def _pages_view(pages, name, writable):
        """A flat byte view of the ``pages`` (or ``out``) of a batch call.

        ``TypeError`` for anything but a buffer (``"pages must be a buffer,
        not %s"``) or, when ``writable``, a writable one (``"out must be a
        writable buffer, not %s"``); ``ValueError`` for a buffer that is not
        C-contiguous.  The size is the caller's to check.
        """
        view = _buffer(pages, name)
        if view is None or (writable and view.readonly):
            raise TypeError("%s must be a %sbuffer, not %s"
                            % (name, "writable " if writable else "", type(pages).__name__))
        return view

    def store_many(self, entries, pages):
        """Store page ``i`` of ``pages`` at ``entries[i]``, each as ``store``.

        ``pages`` is a buffer of ``len(entries) * 4096`` bytes.  Each page
        is a store of its own: the limit is checked once per page.

        Context: as ``store``, per entry.

        Return: an ``array('b')``: ``BATCH_OK``, ``BATCH_REJECTED`` or
        ``BATCH_INVALID``.
        """
        self._check_open()
        values = _entries_arg(entries)
        view = self._pages_view(pages, "pages", False)
        self._check_open()          # argument hooks may have closed the pool
        _check_pages_size("pages", len(values), view.nbytes)
        status = _status_array(len(values))
        space = self._space
        for i, entry in enumerate(values):
            try:
                # As the compiled loop: the entry is checked without its
                # cluster lock, which only the store itself then takes.
                space._check_range_unlocked(entry, 1)
                stored = self._store(entry, view[i * PAGE_SIZE:(i + 1) * PAGE_SIZE], 1)
            except InvalidEntryError:
                status[i] = BATCH_INVALID
                continue
            if not stored:
                status[i] = BATCH_REJECTED
        return status

    def load_many(self, entries, out):
        """Load the page of ``entries[i]`` into page ``i`` of ``out``, each
        as ``load`` (exclusive unless ``exclusive_loads`` is off).

        ``out`` is a writable buffer of ``len(entries) * 4096`` bytes.  The
        page of an entry that does not load is left as it was.

        Context: as ``load``, per entry.

        Return: an ``array('b')``: ``BATCH_OK``, ``BATCH_EMPTY`` (no pool
        entry), ``BATCH_CORRUPT`` (counted in ``decompress_fail``; the entry
        stays) or ``BATCH_INVALID``.
        """
        self._check_open()
        values = _entries_arg(entries)
        view = self._pages_view(out, "out", True)
        self._check_open()          # argument hooks may have closed the pool
        _check_pages_size("out", len(values), view.nbytes)
        status = _status_array(len(values))
        for i, entry in enumerate(values):
            try:
                page = self.load(entry, view[i * PAGE_SIZE:(i + 1) * PAGE_SIZE])
            except InvalidEntryError:
                status[i] = BATCH_INVALID
                continue
            except ZswapDecompressError:
                status[i] = BATCH_CORRUPT
                continue
            if page is None:
                status[i] = BATCH_EMPTY
        return status

    def invalidate_many(self, entries):
        """``invalidate(entry)`` for each of ``entries``.

        Context: as ``invalidate``, per entry.

        Return: an ``array('b')``: ``BATCH_OK`` (a zswap entry was
        dropped), ``BATCH_EMPTY`` or ``BATCH_INVALID``.
        """
        self._check_open()
        values = _entries_arg(entries)
        status = _status_array(len(values))
        for i, entry in enumerate(values):
            try:
                dropped = self.invalidate(entry)
            except InvalidEntryError:
                status[i] = BATCH_INVALID
                continue
            if not dropped:
                status[i] = BATCH_EMPTY
        return status

    # -- lifetime ----------------------------------------------------------------------------

    def close(self):
        """Drop every entry and written-back page of the pool from the space
        and unbind from it.

        Later calls raise ``ValueError``; closing again does nothing.
        Descriptors let go of the slots the pool wrote their pages to, which
        go back to the swap file: no descriptor is left naming a slot of a
        pool that is gone.  The swap file stays open (and can now be
        closed).

        Context: the map lock to mark the pool closed and list the clusters;
        each cluster's lock (with a tree index, each tree's lock) in turn to
        take the pool's objects out; the map lock to unbind; frees with no
        lock held.
        """
        if self._closed:
            return
        space = self._space
        with space._map_lock:
            if self._closed:
                return
            # From here on no store publishes an entry (_install checks this
            # under the cluster lock, _install_tree under the tree lock), so
            # the walk below misses none.
            self._closed = True
            clusters = list(space._clusters.values())
        # No store queues the shrink work any more: stop its thread, which
        # may be writing back, before the walk below.
        self._shrink.shutdown()
        taken = []
        stale = []
        if self._trees is not None:
            # Listed after _closed is set: a tree made later gets no entry.
            for tree in self._trees.trees():
                with tree:
                    taken += tree.entries.values()
                    tree.entries.clear()
        base = space._shift
        for cluster in clusters:
            _lock_cluster(cluster)
            try:
                if cluster.nr_zswap and self._trees is None:
                    for i in range(len(cluster.type)):
                        obj = _desc_zswap(cluster, i)
                        if type(obj) is _ZswapEntry or obj is _ZERO:
                            _desc_set_zswap(cluster, i, None)
                            taken.append(obj)
                if self._swapfile is not None and cluster.bitmap:
                    for i in range(len(cluster.type)):
                        if _desc_slot(cluster, i) and cluster.bitmap >> i & 1:
                            entry = (cluster.id << base) | i
                            slot = self._take_stale_slot(cluster, i, entry)
                            if slot:
                                stale.append((entry, slot))
            finally:
                cluster.lock.release()
        for entry, slot in stale:
            self._release_slot(entry, slot)
        # After the walk: a VSwap call that displaced one of our objects
        # before the walk got to its cluster still finds the pool bound.
        with space._map_lock:
            space._zswap_pool = None
        if self._swapfile is not None:
            self._swapfile._unbind()
        for obj in taken:
            self._release_entry(obj)

    # -- test hook ---------------------------------------------------------------------------

    def _pinned_block(self, entry, raw=False):
        """The pool entry of ``entry`` that holds LZ4 data (or, with ``raw``,
        any data), pinned, or None (no zswap entry, ZERO, an object that is
        not the pool's, or a page stored raw).

        Context: the cluster lock (with a tree index, the tree lock) and the
        LRU lock to pin the entry.
        """
        self._check_open()
        if type(entry) is not int:
            entry = _as_entry(entry)
        if self._trees is None:
            cluster, index = _lock_range(self._space, entry, 1)
            try:
                obj = _desc_zswap(cluster, index)
                if type(obj) is not _ZswapEntry or (obj.incompressible and not raw):
                    return None
                self._pin(obj)
            finally:
                cluster.lock.release()
            return obj
        self._space._check_range_unlocked(entry, 1)
        obj = self._tree_get_pinned(entry)
        if type(obj) is not _ZswapEntry:
            return None
        if obj.incompressible and not raw:
            self._put(obj)
            return None
        return obj

    def _corrupt(self, entry):
        """Test hook: make the compressed data of ``entry`` undecodable.

        Overwrites the entry's pool object with 0xFF bytes: a literal run
        longer than the block, which no LZ4 decoder accepts, so loading or
        reading the entry afterwards fails with ``ZswapDecompressError``.
        Nothing is done for an entry without compressed data (as in the
        kernel, wrong bytes of a raw page could not be detected).

        Return: True if the data was overwritten, False if there was none.
        """
        obj = self._pinned_block(entry)
        if obj is None:
            return False
        try:
            obj.data()[:] = b"\xff" * obj.length
        finally:
            self._put(obj)
        return True

    def _writeback_replaced(self, entry, page):
        """Test hook for the writeback race: pin the pool entry of ``entry``
        as the shrinker would, store ``page`` over it, then write the pinned
        entry back.  Return: what ``_writeback_entry`` did ("written",
        "gone", "full" or "failed"), or None if ``entry`` had no pool entry
        (nothing is stored)."""
        view = _buffer(page, "page")
        if view is None or view.nbytes != PAGE_SIZE:
            raise ValueError("page must be a buffer of %d bytes" % PAGE_SIZE)
        obj = self._pinned_block(entry, raw=True)
        if obj is None:
            return None
        try:
            self.store(entry, page)
            if self._swapfile is None:
                return "full"
            result = self._writeback_entry(obj, self._swapfile)
        finally:
            self._put(obj)
        return {_WRITTEN: "written", _RACED: "gone", _FULL: "full"}.get(result, "failed")

    def _block(self, entry):
        """Test hook: the block the pool's compressor stored for ``entry``,
        as bytes, or None."""
        obj = self._pinned_block(entry)
        if obj is None:
            return None
        try:
            return obj.data().tobytes()
        finally:
            self._put(obj)

    @staticmethod
    def _decompress_block(block, compressor="lz4"):
        """Test hook: decompress a block made elsewhere with this core's
        ``compressor``, to one page; ``ZswapDecompressError`` if it is not one."""
        page = _compressor(compressor).decompress(bytes(block)) if len(block) else None
        if page is None:
            raise ZswapDecompressError("the block does not decompress to one page")
        return page

    # -- introspection -----------------------------------------------------------------------

    def stats(self):
        """Summarise the pool, with upstream's debugfs names.

        Context: the index's locks in turn for their counters (the "vswap"
        design's are the space's cluster locks: the map lock, then each
        cluster's lock), then the LRU lock, then the stats lock.  The lock
        acquisitions of the call itself are included in the counts.

        Return: a dict with ``stored_pages``, ``stored_incompressible_pages``,
        ``pool_total_size``, ``pool_limit_hit``, ``written_back_pages``,
        ``reject_reclaim_fail``, ``reject_alloc_fail``,
        ``reject_kmemcache_fail``, ``reject_compress_fail``,
        ``reject_compress_poor``, ``decompress_fail``, ``zero_pages``,
        ``compressed_bytes``, the vmstat events ``zswpout``, ``zswpin``,
        ``zswpwb``, ``swpout_zero`` and ``swpin_zero``, ``lru_length``,
        ``max_pool_bytes``,
        ``compression_ratio`` (``stored_pages * 4096 / pool_total_size``,
        0.0 for an empty pool), and the lock counters
        ``index_lock_acquisitions``, ``index_lock_contended`` (for "vswap"
        the cluster locks over the life of the space, whatever took them)
        and ``lru_lock_acquisitions``, ``lru_lock_contended``.
        """
        self._check_open()
        if self._trees is None:
            index_acquisitions, index_contended, _ = self._space._lock_totals()
        else:
            index_acquisitions, index_contended, _ = self._trees.lock_totals()
        lru_lock = self._lru_lock
        with lru_lock:
            lru_length = len(self._lru)
            lru_acquisitions = lru_lock.lock_acquisitions
            lru_contended = lru_lock.lock_contended
        with self._stats_lock:
            stored = self._stored_pages
            total = self._zpool.total_size
            return {
                "stored_pages": stored,
                "stored_incompressible_pages": self._stored_incompressible_pages,
                "pool_total_size": total,
                "pool_limit_hit": self._pool_limit_hit,
                "written_back_pages": self._written_back_pages,
                "reject_reclaim_fail": self._reject_reclaim_fail,
                "reject_alloc_fail": self._reject_alloc_fail,
                "reject_kmemcache_fail": self._reject_kmemcache_fail,
                "reject_compress_fail": self._reject_compress_fail,
                "reject_compress_poor": self._reject_compress_poor,
                "decompress_fail": self._decompress_fail,
                "zero_pages": self._zero_pages,
                "compressed_bytes": self._compressed_bytes,
                "zswpout": self._zswpout,
                "zswpin": self._zswpin,
                "zswpwb": self._zswpwb,
                "swpout_zero": self._swpout_zero,
                "swpin_zero": self._swpin_zero,
                "lru_length": lru_length,
                "shrink_worker_runs": self._shrink.runs,
                "max_pool_bytes": self._max_pool_bytes,
                "compression_ratio": stored * PAGE_SIZE / total if total else 0.0,
                "index_lock_acquisitions": index_acquisitions,
                "index_lock_contended": index_contended,
                "lru_lock_acquisitions": lru_acquisitions,
                "lru_lock_contended": lru_contended,
            }

    def __len__(self):
        """``stored_pages + zero_pages``.  Context: takes the stats lock."""
        self._check_open()
        with self._stats_lock:
            return self._stored_pages + self._zero_pages

    def __repr__(self):
        """Works on a closed pool too; reads the counters without a lock."""
        if self._closed:
            return "<Zswap core=pure closed>"
        # The compressor is shown when it is not the default.
        return ("<Zswap core=pure stored_pages=%d zero_pages=%d pool_total_size=%d "
                "written_back_pages=%d%s>" % (self._stored_pages, self._zero_pages,
                                              self._zpool.total_size,
                                              self._written_back_pages,
                                              compressor_repr(self._compressor.name)))
