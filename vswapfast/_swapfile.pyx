# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The backing swap file: a real file divided into 4 KiB slots.

Writeback moves pages here from the zswap pool; a descriptor's ``slot`` names
the page's slot.  Slot I/O is pread/pwrite with the GIL released.
"""

from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from cpython.bool cimport PyBool_Check
from cpython.mem cimport PyMem_RawCalloc, PyMem_RawFree
from libc.stdint cimport uint64_t
from libc.errno cimport errno, EINTR
from posix.unistd cimport close as c_close

import os

from vswapfast._vswap cimport (
    pthread_spin_init, pthread_spin_destroy, pthread_spin_lock, pthread_spin_unlock,
    PTHREAD_PROCESS_PRIVATE,
)
from vswapfast.errors import SwapFileFullError

cdef extern from "<unistd.h>" nogil:
    ssize_t pwrite(int fd, const void *buf, size_t count, long offset)
    ssize_t pread(int fd, void *buf, size_t count, long offset)

cdef extern from *:
    int ctz64 "__builtin_ctzll"(unsigned long long x) nogil

DEF PAGE = 4096
PAGE_SIZE = PAGE


cdef uint64_t swap_file_alloc_slot(swap_file *sf) noexcept nogil:
    cdef uint64_t w, nwords = (sf.nr_slots >> 6) + 1, free, slot = 0
    pthread_spin_lock(&sf.lock)
    for w in range(sf.hint >> 6, nwords):
        free = ~sf.bitmap[w]
        if free:
            slot = (w << 6) + ctz64(free)
            break
    if slot:
        sf.bitmap[slot >> 6] |= <uint64_t>1 << (slot & 63)
        sf.used += 1
        sf.hint = slot + 1
    pthread_spin_unlock(&sf.lock)
    return slot


cdef inline bint slot_bit(swap_file *sf, uint64_t slot) noexcept nogil:
    return 1 <= slot <= sf.nr_slots and (sf.bitmap[slot >> 6] >> (slot & 63)) & 1


cdef bint swap_file_slot_allocated(swap_file *sf, uint64_t slot) noexcept nogil:
    cdef bint allocated
    pthread_spin_lock(&sf.lock)
    allocated = slot_bit(sf, slot)
    pthread_spin_unlock(&sf.lock)
    return allocated


cdef int swap_file_free_slot(swap_file *sf, uint64_t slot) noexcept nogil:
    cdef int result = -1
    pthread_spin_lock(&sf.lock)
    if slot_bit(sf, slot):
        sf.bitmap[slot >> 6] &= ~(<uint64_t>1 << (slot & 63))
        sf.used -= 1
        if slot < sf.hint:
            sf.hint = slot
        result = 0
    pthread_spin_unlock(&sf.lock)
    return result


cdef int swap_file_write(swap_file *sf, uint64_t slot, const void *page) noexcept nogil:
    cdef ssize_t n
    while True:
        n = pwrite(sf.fd, page, PAGE, <long>(slot * PAGE))
        if n == PAGE:
            return 0
        if n < 0 and errno == EINTR:
            continue
        return errno if n < 0 else 5   # a short write: EIO


cdef int swap_file_read(swap_file *sf, uint64_t slot, void *page) noexcept nogil:
    cdef ssize_t n
    while True:
        n = pread(sf.fd, page, PAGE, <long>(slot * PAGE))
        if n == PAGE:
            return 0
        if n < 0 and errno == EINTR:
            continue
        return errno if n < 0 else 5


cdef Py_ssize_t page_buffer(object obj, Py_buffer *view, bint writable, str name,
                            Py_ssize_t pages) except -1:
    try:
        PyObject_GetBuffer(obj, view, PyBUF_SIMPLE)
    except (BufferError, ValueError):
        # No contiguous view (numpy says ValueError).
        raise ValueError("%s must be a C-contiguous buffer" % name)
    except TypeError:
        if writable:
            raise TypeError("%s must be a writable buffer, not %s" % (name, type(obj).__name__))
        raise TypeError("%s must be a buffer, not %s" % (name, type(obj).__name__))
    if writable and view.readonly:
        PyBuffer_Release(view)
        raise TypeError("%s must be a writable buffer, not %s" % (name, type(obj).__name__))
    if pages >= 0 and view.len != pages * PAGE:
        PyBuffer_Release(view)
        raise ValueError("%s must be %d bytes, not %d" % (name, pages * PAGE, view.len))
    if pages < 0 and (view.len == 0 or view.len % PAGE):
        PyBuffer_Release(view)
        raise ValueError("%s must be a positive multiple of %d bytes, not %d"
                         % (name, PAGE, view.len))
    return view.len // PAGE


cdef class SwapFile:
    """A real file divided into 4 KiB slots, with its own slot allocator.

    ``SwapFile(path, size)`` creates or truncates ``path`` to ``size`` bytes.
    Slot 0 is the header page; slots are 1..nr_slots.  Thread-safe.
    """

    def __cinit__(self, path, size):
        cdef swap_file *sf
        cdef uint64_t nwords
        path = os.fspath(path)
        if not isinstance(path, str):
            path = os.fsdecode(path)
        if PyBool_Check(size) or not isinstance(size, int):
            raise TypeError("size must be an int, not %s" % type(size).__name__)
        if size < 2 * PAGE or size % PAGE:
            raise ValueError("size must be a multiple of %d of at least %d bytes, not %d"
                             % (PAGE, 2 * PAGE, size))
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            os.ftruncate(fd, size)
        except OSError:
            os.close(fd)
            raise
        sf = <swap_file *>PyMem_RawCalloc(1, sizeof(swap_file))
        nwords = (size // PAGE >> 6) + 1
        if sf != NULL:
            sf.bitmap = <uint64_t *>PyMem_RawCalloc(nwords, sizeof(uint64_t))
        if sf == NULL or sf.bitmap == NULL:
            PyMem_RawFree(sf)
            os.close(fd)
            raise MemoryError()
        sf.fd = fd
        sf.nr_slots = size // PAGE - 1
        sf.bitmap[0] = 1            # the header page
        # Slots past the end of the file, in the last word, are never free.
        sf.bitmap[nwords - 1] |= ~((<uint64_t>2 << (sf.nr_slots & 63)) - 1)
        sf.hint = 1
        pthread_spin_init(&sf.lock, PTHREAD_PROCESS_PRIVATE)
        self.sf = sf
        self.path = path
        self.size = size

    def __dealloc__(self):
        self._close()

    cdef void _close(self) noexcept:
        cdef swap_file *sf = self.sf
        if sf == NULL:
            return
        self.sf = NULL
        c_close(sf.fd)
        pthread_spin_destroy(&sf.lock)
        PyMem_RawFree(sf.bitmap)
        PyMem_RawFree(sf)

    cdef swap_file *_open(self) except NULL:
        if self.sf == NULL:
            raise ValueError("I/O on a closed swap file")
        return self.sf

    cdef uint64_t _allocated(self, object slot) except 0:
        """Check that ``slot`` is an allocated slot; return it."""
        cdef swap_file *sf = self._open()
        if PyBool_Check(slot) or not isinstance(slot, int):
            raise TypeError("slot must be an int, not %s" % type(slot).__name__)
        if not 1 <= slot <= sf.nr_slots or not swap_file_slot_allocated(sf, slot):
            raise ValueError("swap slot %d is not allocated (the file has slots 1..%d)"
                             % (slot, sf.nr_slots))
        return slot

    @property
    def nr_slots(self):
        """Slots that can be handed out (1..nr_slots)."""
        return self._open().nr_slots

    @property
    def closed(self):
        return self.sf == NULL

    def alloc_slot(self):
        """Take the lowest free slot.  Locks: the allocator.  Raises
        SwapFileFullError when every slot is in use."""
        cdef swap_file *sf = self._open()
        cdef uint64_t slot = swap_file_alloc_slot(sf)
        if slot == 0:
            raise SwapFileFullError("swap file %r is full: all %d slots are in use"
                                    % (self.path, sf.nr_slots))
        return slot

    def free_slot(self, slot):
        """Give an allocated slot back.  Locks: the allocator."""
        cdef uint64_t s = self._allocated(slot)
        if swap_file_free_slot(self.sf, s) != 0:
            raise ValueError("swap slot %d is not allocated (the file has slots 1..%d)"
                             % (slot, self.sf.nr_slots))

    def write(self, slot, page):
        """Write one page (a buffer of 4096 bytes) to an allocated slot."""
        cdef Py_buffer view
        cdef uint64_t s = self._allocated(slot)
        cdef int err
        page_buffer(page, &view, False, "page", 1)
        try:
            with nogil:
                err = swap_file_write(self.sf, s, view.buf)
        finally:
            PyBuffer_Release(&view)
        if err:
            raise OSError(err, os.strerror(err), self.path)

    def read(self, slot, out=None):
        """Read the page at an allocated slot into ``out`` (a writable buffer
        of 4096 bytes, returned) or into new bytes."""
        cdef Py_buffer view
        cdef uint64_t s = self._allocated(slot)
        cdef int err
        cdef char *buf
        if out is None:
            result = PyBytes_FromStringAndSize(NULL, PAGE)
            buf = PyBytes_AS_STRING(result)
            with nogil:
                err = swap_file_read(self.sf, s, buf)
        else:
            page_buffer(out, &view, True, "out", 1)
            try:
                with nogil:
                    err = swap_file_read(self.sf, s, view.buf)
            finally:
                PyBuffer_Release(&view)
            result = out
        if err:
            raise OSError(err, os.strerror(err), self.path)
        return result

    def close(self):
        """Close the file; later calls raise ValueError.  A file that a zswap
        pool still writes back to cannot be closed (close the pool first)."""
        if self.nr_users:
            raise ValueError("swap file %r is in use by a zswap pool" % (self.path,))
        self._close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __len__(self):
        """Slots in use."""
        cdef swap_file *sf = self._open()
        cdef uint64_t used
        pthread_spin_lock(&sf.lock)
        used = sf.used
        pthread_spin_unlock(&sf.lock)
        return used

    def stats(self):
        cdef swap_file *sf = self._open()
        used = len(self)
        return {"slots": sf.nr_slots, "used": used, "free": sf.nr_slots - used}

    def __repr__(self):
        if self.sf == NULL:
            return "<SwapFile path=%r closed>" % (self.path,)
        return "<SwapFile path=%r slots=%d used=%d>" % (self.path, self.sf.nr_slots, len(self))
