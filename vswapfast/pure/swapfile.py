"""The backing swap file in pure Python: the twin of ``vswapfast._swapfile``.

A ``SwapFile`` is a real file cut into 4 KiB slots, the physical swap space
that a virtual swap descriptor's ``slot`` points into.  Slot 0 is the header
page and is never handed out, so ``slot == 0`` in a descriptor keeps meaning
"no slot".  The header page is left zero-filled.

Slot allocator
--------------
Slots are handed out lowest-free-first, like the cluster ids of ``VSwap``:
every slot from ``_next`` up is free, and ``_free`` is a min-heap of the
freed slots below ``_next``, so the lowest free slot is the heap's head or
else ``_next``.  ``_used`` has one byte per slot (1 = allocated), which makes
"is this slot allocated" a constant-time question.

Locking
-------
One lock, ``_lock``, guards the allocator, the file descriptor, the closed
state and ``_users``, the number of zswap pools that write back here (a file
in use by a pool cannot be closed).  Reads and writes hold it for the one
``pread``/``pwrite`` they make: that keeps a concurrent ``close()`` from
closing the descriptor (whose number the OS could then hand to another
file) under a transfer in flight, and it keeps a concurrent ``free_slot``
from slipping between the "is the slot allocated" check and the transfer.
The lock is a leaf: nothing else is locked while it is held.
"""

import heapq
import os
import threading

from ..errors import SwapFileFullError
from ..zpool import PAGE_SIZE
from .vswap import _as_int

__all__ = ["PAGE_SIZE", "SwapFile"]

#: Smallest file: the header page plus one slot.
_MIN_SIZE = 2 * PAGE_SIZE
# Offsets are off_t: the file's last byte must have one.
_MAX_SIZE = ((1 << 63) - 1) // PAGE_SIZE * PAGE_SIZE


def _type_name(obj):
    return type(obj).__name__


def _buffer(obj, name):
    """A flat unsigned-byte view of ``obj`` if it is a C-contiguous buffer.

    Return None when ``obj`` is no buffer; ``ValueError`` (naming ``name``)
    for a buffer whose bytes are not contiguous in C order.
    """
    try:
        view = memoryview(obj)
    except TypeError:
        return None
    if not view.c_contiguous:
        raise ValueError("%s must be a C-contiguous buffer" % name)
    if view.ndim == 1 and view.format == "B":
        return view
    try:
        return view.cast("B")
    except (TypeError, ValueError):
        return None


def _as_page(page):
    """Check a page argument: a C-contiguous buffer of exactly 4096 bytes.

    Return: a flat byte view of it.  ``TypeError`` for anything that is not
    such a buffer, ``ValueError`` for another size.
    """
    view = _buffer(page, "page")
    if view is None:
        raise TypeError("page must be a buffer, not %s" % _type_name(page))
    if view.nbytes != PAGE_SIZE:
        raise ValueError("page must be %d bytes, not %d" % (PAGE_SIZE, view.nbytes))
    return view


def _as_out(out):
    """Check an ``out`` argument: a writable C-contiguous 4096-byte buffer.

    Return: a flat byte view of it, or None when ``out`` is None.
    ``TypeError`` for anything that is not a writable buffer, ``ValueError``
    for another size.
    """
    if out is None:
        return None
    view = _buffer(out, "out")
    if view is None or view.readonly:
        raise TypeError("out must be a writable buffer, not %s" % _type_name(out))
    if view.nbytes != PAGE_SIZE:
        raise ValueError("out must be %d bytes, not %d" % (PAGE_SIZE, view.nbytes))
    return view


class SwapFile:
    """A real file divided into 4 KiB slots, with its own slot allocator.

    ``SwapFile(path, size)`` creates the file, or truncates an existing one,
    to ``size`` bytes: a multiple of 4096 of at least 8192.  Slot 0 is the
    header page and is never handed out; slots are ``1..nr_slots`` with
    ``nr_slots = size // 4096 - 1``.

    Thread-safe.  After ``close()`` every method call and ``nr_slots``
    raise ``ValueError("I/O on a closed swap file")``; ``close()`` itself may
    be repeated, and ``closed``, ``path``, ``size`` and ``repr`` keep
    working.  A file that a zswap pool writes back to cannot be closed until
    the pool is.
    """

    __slots__ = (
        "_path",
        "_size",
        "_nr_slots",
        "_fd",
        "_lock",
        "_used",
        "_nr_used",
        "_free",
        "_next",
        "_users",
        "_rmap",
    )

    def __init__(self, path, size):
        """Create (or truncate) the file at ``path`` with ``size`` bytes.

        ``TypeError`` for a path that is not a str, bytes or os.PathLike, or
        a size that is not an int (bools refused); ``ValueError`` for a size
        that is not a multiple of 4096 of at least 8192; ``OSError`` naming
        the file when it cannot be created.  Nothing is created on a
        ``TypeError`` or ``ValueError``.
        """
        # Set first so that __del__ of a half-built object has nothing to do.
        self._fd = -1
        path = os.fsdecode(os.fspath(path))
        if type(size) is not int:
            size = _as_int(size, "size")
        if size < _MIN_SIZE or size % PAGE_SIZE or size > _MAX_SIZE:
            raise ValueError("size must be a multiple of %d from %d to %d bytes, not %d"
                             % (PAGE_SIZE, _MIN_SIZE, _MAX_SIZE, size))
        nr_slots = size // PAGE_SIZE - 1
        # Everything that can fail for lack of memory before the file is touched.
        used = bytearray(nr_slots + 1)
        created = False
        fd = -1
        try:
            # os.open raises an OSError that carries the file name.
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                created = True
            except FileExistsError:
                fd = os.open(path, os.O_RDWR | os.O_CLOEXEC, 0o600)
            # Cut to 0, then extended: every slot reads as zeros and takes
            # no disk space until it is written.
            os.ftruncate(fd, 0)
            os.ftruncate(fd, size)
        except BaseException as exc:
            # Nothing is left behind: no descriptor, and no file we made.
            if fd >= 0:
                os.close(fd)
            if created:
                try:
                    os.unlink(path)
                except OSError:
                    pass
            if isinstance(exc, OSError) and exc.filename is None:
                raise OSError(exc.errno, exc.strerror, path) from None
            raise
        self._path = path
        self._size = size
        self._nr_slots = nr_slots
        self._lock = threading.Lock()
        # The reverse map: slot -> the swap entry whose page a zswap pool
        # wrote there (see the compiled core's swap_file.rmap).
        self._rmap = {}
        self._used = used
        self._nr_used = 0
        self._free = []
        self._next = 1
        self._users = 0
        self._fd = fd

    def __del__(self):
        # A file that was never closed gives its descriptor back here.
        fd = self._fd
        if fd >= 0:
            self._fd = -1
            os.close(fd)

    # -- properties ---------------------------------------------------------

    @property
    def path(self):
        """The file's path, as given (a str)."""
        return self._path

    @property
    def size(self):
        """The file's size in bytes, header page included."""
        return self._size

    @property
    def nr_slots(self):
        """Number of slots: ``size // 4096 - 1`` (slot 0 is the header).
        ``ValueError`` once the file is closed."""
        self._check_open()
        return self._nr_slots

    @property
    def closed(self):
        """True once ``close()`` has been called."""
        return self._fd < 0

    # -- checks ---------------------------------------------------------------

    def _check_open(self):
        """Raise unless open.  Callers check again under ``_lock``."""
        if self._fd < 0:
            raise ValueError("I/O on a closed swap file")

    def _not_allocated(self, slot):
        return ValueError("swap slot %d is not allocated (the file has slots 1..%d)"
                          % (slot, self._nr_slots))

    def _is_allocated(self, slot):
        """Caller holds ``_lock``."""
        return 0 < slot <= self._nr_slots and self._used[slot] == 1

    # -- slot allocator --------------------------------------------------------

    def alloc_slot(self):
        """Allocate the lowest free slot.

        Context: takes the file lock.

        Return: the slot (1..nr_slots).  ``SwapFileFullError`` when every
        slot is in use.
        """
        self._check_open()
        with self._lock:
            self._check_open()
            if self._free:
                slot = heapq.heappop(self._free)
            elif self._next <= self._nr_slots:
                slot = self._next
                self._next += 1
            else:
                raise SwapFileFullError("swap file %r is full: all %d slots are in use"
                                        % (self._path, self._nr_slots))
            self._used[slot] = 1
            self._nr_used += 1
            return slot

    def _free_locked(self, slot):
        """Give an allocated ``slot`` back.  Caller holds ``_lock``."""
        self._rmap.pop(slot, None)
        self._used[slot] = 0
        self._nr_used -= 1
        heapq.heappush(self._free, slot)

    def free_slot(self, slot):
        """Free ``slot``, which must be allocated (``ValueError`` otherwise).

        Context: takes the file lock.

        Return: None.
        """
        self._check_open()
        if type(slot) is not int:
            slot = _as_int(slot, "slot")
        with self._lock:
            self._check_open()
            if not self._is_allocated(slot):
                raise self._not_allocated(slot)
            self._free_locked(slot)

    # -- page I/O ----------------------------------------------------------------

    def write(self, slot, page):
        """Write ``page`` (a 4096-byte buffer) to the allocated ``slot``.

        Context: takes the file lock for the write.

        Return: None.
        """
        self._check_open()
        if type(slot) is not int:
            slot = _as_int(slot, "slot")
        view = _as_page(page)
        with self._lock:
            self._check_open()
            if not self._is_allocated(slot):
                raise self._not_allocated(slot)
            self._pwrite(slot, view)

    def read(self, slot, out=None):
        """Read the page in the allocated ``slot``.

        ``out``, when given, is a writable 4096-byte buffer that receives
        the page.

        Context: takes the file lock for the read.

        Return: ``out`` filled with the page, or the page as new bytes.
        """
        self._check_open()
        if type(slot) is not int:
            slot = _as_int(slot, "slot")
        view = _as_out(out)
        with self._lock:
            self._check_open()
            if not self._is_allocated(slot):
                raise self._not_allocated(slot)
            page = self._pread(slot, view)
        return page if out is None else out

    def _pwrite(self, slot, view):
        """Write one page at ``slot``.  Caller holds ``_lock``."""
        offset = slot * PAGE_SIZE
        done = 0
        # pwrite may write less than asked; a regular file rarely does.
        while done < PAGE_SIZE:
            done += os.pwrite(self._fd, view[done:], offset + done)

    def _pread(self, slot, view):
        """Read one page at ``slot`` into ``view``, or as new bytes when
        ``view`` is None.  Caller holds ``_lock``."""
        offset = slot * PAGE_SIZE
        if view is None:
            data = os.pread(self._fd, PAGE_SIZE, offset)
            got = len(data)
        else:
            data = view
            got = os.preadv(self._fd, [view], offset)
        if got != PAGE_SIZE:
            # Only if the file was cut short behind our back.
            raise OSError(5, "short read of swap slot %d (%d bytes)" % (slot, got),
                          self._path)
        return data

    # -- hooks for the zswap pool of this core -------------------------------------

    def _release(self, slot):
        """Free ``slot`` if it is allocated here; never raises.

        Used by the zswap pool when a descriptor drops a slot (``VSwap.free``,
        writeback replacing an older slot): a descriptor's slot may have been
        set by hand and need not belong to this file, and a closed file has
        nothing left to free.

        Context: takes the file lock.

        Return: True if the slot was freed.
        """
        with self._lock:
            if self._fd < 0 or not self._is_allocated(slot):
                return False
            self._free_locked(slot)
            return True

    def _set_owner(self, slot, entry):
        """Record that the allocated ``slot`` holds the page of swap entry
        ``entry`` (the reverse map).  Context: takes the file lock."""
        with self._lock:
            if self._fd >= 0 and self._is_allocated(slot):
                self._rmap[slot] = entry

    def _owned_locked(self, slot, entry):
        """Caller holds ``_lock``."""
        return self._fd >= 0 and self._is_allocated(slot) and self._rmap.get(slot) == entry

    def _owned(self, slot, entry):
        """Whether ``slot`` is allocated and holds the page of ``entry``: a
        slot number left in a descriptor is that entry's page only then.
        Context: takes the file lock."""
        with self._lock:
            return self._owned_locked(slot, entry)

    def _release_owned(self, slot, entry):
        """Free ``slot`` if it holds the page of ``entry``; never raises.
        Context: takes the file lock.  Return: True if it was freed."""
        with self._lock:
            if not self._owned_locked(slot, entry):
                return False
            self._free_locked(slot)
            return True

    def _read_owned(self, slot, entry, view):
        """Read ``slot`` like ``read`` if it holds the page of ``entry``,
        else return None.  Context: takes the file lock."""
        with self._lock:
            self._check_open()
            if not self._owned_locked(slot, entry):
                return None
            return self._pread(slot, view)

    def _bind(self):
        """Count a zswap pool that will write back here; ``ValueError`` if
        the file is closed.  Context: takes the file lock."""
        with self._lock:
            self._check_open()
            self._users += 1

    def _unbind(self):
        """Undo ``_bind`` when the pool closes.  Context: takes the file lock."""
        with self._lock:
            self._users -= 1

    def _read_allocated(self, slot, view):
        """Read ``slot`` like ``read``, or return None if it is not allocated.

        ``view`` is a checked ``out`` view or None.  Raises only for a
        closed file or an I/O error.

        Context: takes the file lock.
        """
        with self._lock:
            self._check_open()
            if not self._is_allocated(slot):
                return None
            return self._pread(slot, view)

    # -- lifetime and introspection ------------------------------------------------

    def close(self):
        """Close the file.  Later calls raise ``ValueError``; closing again
        does nothing.  The file stays on disk.  ``ValueError`` while a zswap
        pool writes back here (close the pool first): the pool would be left
        with descriptors pointing into a file it cannot read.

        Context: takes the file lock, so it waits for a transfer in flight.
        """
        with self._lock:
            fd = self._fd
            if fd < 0:
                return
            if self._users:
                raise ValueError("swap file %r is in use by a zswap pool" % (self._path,))
            self._fd = -1
        os.close(fd)

    def __enter__(self):
        """Return the open file itself (``ValueError`` if it is closed)."""
        self._check_open()
        return self

    def __exit__(self, *exc):
        """Close the file."""
        self.close()

    def __len__(self):
        """Number of slots in use.  Reads the count without the lock."""
        self._check_open()
        return self._nr_used

    def stats(self):
        """Summarise the allocator.

        Context: takes the file lock.

        Return: a dict with ``slots`` (nr_slots), ``used`` and ``free``.
        """
        self._check_open()
        with self._lock:
            used = self._nr_used
        return {"slots": self._nr_slots, "used": used, "free": self._nr_slots - used}

    def __repr__(self):
        """Works on a closed file too; reads the count without the lock."""
        if self._fd < 0:
            return "<SwapFile path=%r closed>" % (self._path,)
        return "<SwapFile path=%r slots=%d used=%d>" % (
            self._path, self._nr_slots, self._nr_used)
