# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The backing swap file: a real file divided into 4 KiB slots.

Writeback moves pages here from the zswap pool; a descriptor's ``slot`` names
the page's slot.  Slot I/O is pread/pwrite with the GIL released.
"""

from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from cpython.bool cimport PyBool_Check
from cpython.long cimport PyLong_Check
from cpython.number cimport PyNumber_Index
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
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


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
        sf.rmap[slot] = 0
        sf.used += 1
        sf.hint = slot + 1
    pthread_spin_unlock(&sf.lock)
    return slot


cdef bint swap_file_has_free_slot(swap_file *sf) noexcept nogil:
    cdef bint free
    pthread_spin_lock(&sf.lock)
    free = sf.used < sf.nr_slots
    pthread_spin_unlock(&sf.lock)
    return free


cdef inline bint slot_bit(swap_file *sf, uint64_t slot) noexcept nogil:
    return 1 <= slot <= sf.nr_slots and (sf.bitmap[slot >> 6] >> (slot & 63)) & 1


cdef bint swap_file_slot_allocated(swap_file *sf, uint64_t slot) noexcept nogil:
    cdef bint allocated
    pthread_spin_lock(&sf.lock)
    allocated = slot_bit(sf, slot)
    pthread_spin_unlock(&sf.lock)
    return allocated


cdef inline void free_locked(swap_file *sf, uint64_t slot) noexcept nogil:
    sf.bitmap[slot >> 6] &= ~(<uint64_t>1 << (slot & 63))
    sf.rmap[slot] = 0
    sf.used -= 1
    if slot < sf.hint:
        sf.hint = slot


cdef int swap_file_free_slot(swap_file *sf, uint64_t slot) noexcept nogil:
    cdef int result = -1
    pthread_spin_lock(&sf.lock)
    if slot_bit(sf, slot):
        free_locked(sf, slot)
        result = 0
    pthread_spin_unlock(&sf.lock)
    return result


cdef void swap_file_set_owner(swap_file *sf, uint64_t slot, uint64_t val) noexcept nogil:
    pthread_spin_lock(&sf.lock)
    if slot_bit(sf, slot):
        sf.rmap[slot] = val
    pthread_spin_unlock(&sf.lock)


cdef bint swap_file_slot_owned(swap_file *sf, uint64_t slot, uint64_t val) noexcept nogil:
    cdef bint owned
    pthread_spin_lock(&sf.lock)
    owned = val != 0 and slot_bit(sf, slot) and sf.rmap[slot] == val
    pthread_spin_unlock(&sf.lock)
    return owned


cdef bint swap_file_free_owned(swap_file *sf, uint64_t slot, uint64_t val) noexcept nogil:
    cdef bint owned
    pthread_spin_lock(&sf.lock)
    owned = val != 0 and slot_bit(sf, slot) and sf.rmap[slot] == val
    if owned:
        free_locked(sf, slot)
    pthread_spin_unlock(&sf.lock)
    return owned


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


cdef extern from "vswap_sync.h" nogil:
    long long vswap_seq_add(long long *p, long long v)
    void vswap_wait_zero(long long *p)

# Offsets are off_t: the file's last byte must have one.
_MAX_SIZE = ((1 << 63) - 1) // PAGE * PAGE


cdef object size_arg(object size):
    """``size`` as an exact int (int subclasses converted without running
    their methods), checked, before anything is opened or allocated."""
    if PyBool_Check(size) or not PyLong_Check(size):
        raise TypeError("size must be an int, not %s" % type(size).__name__)
    size = PyNumber_Index(size)
    if size < 2 * PAGE or size % PAGE or size > _MAX_SIZE:
        raise ValueError("size must be a multiple of %d from %d to %d bytes, not %d"
                         % (PAGE, 2 * PAGE, _MAX_SIZE, size))
    return size


cdef swap_file *swap_file_new(uint64_t nr_slots) except NULL:
    """The allocator of a file of ``nr_slots`` slots, with no file yet."""
    cdef uint64_t nwords = (nr_slots >> 6) + 1
    cdef swap_file *sf = <swap_file *>PyMem_RawCalloc(1, sizeof(swap_file))
    if sf == NULL:
        raise MemoryError()
    sf.fd = -1
    pthread_spin_init(&sf.lock, PTHREAD_PROCESS_PRIVATE)
    sf.bitmap = <uint64_t *>PyMem_RawCalloc(nwords, sizeof(uint64_t))
    sf.rmap = <uint64_t *>PyMem_RawCalloc(nr_slots + 1, sizeof(uint64_t))
    if sf.bitmap == NULL or sf.rmap == NULL:
        swap_file_free(sf)
        raise MemoryError("cannot allocate the slot maps of %d slots" % nr_slots)
    sf.nr_slots = nr_slots
    sf.bitmap[0] = 1            # the header page
    # Slots past the end of the file, in the last word, are never free.
    sf.bitmap[nwords - 1] |= ~((<uint64_t>2 << (sf.nr_slots & 63)) - 1)
    sf.hint = 1
    return sf


cdef void swap_file_free(swap_file *sf) noexcept:
    if sf.fd >= 0:
        c_close(sf.fd)
    pthread_spin_destroy(&sf.lock)
    PyMem_RawFree(sf.bitmap)
    PyMem_RawFree(sf.rmap)
    PyMem_RawFree(sf)


cdef class SwapFile:
    """A real file divided into 4 KiB slots, with its own slot allocator.

    ``SwapFile(path, size)`` creates or truncates ``path`` to ``size`` bytes.
    Slot 0 is the header page; slots are 1..nr_slots.  Thread-safe, and
    ``close()`` waits for reads and writes in flight on other threads.
    """

    def __cinit__(self, path, size):
        cdef swap_file *sf
        cdef bint created = False
        path = os.fspath(path)
        if not isinstance(path, str):
            path = os.fsdecode(path)
        size = size_arg(size)
        # Everything that can fail for lack of memory before the file is touched.
        sf = swap_file_new(size // PAGE - 1)
        try:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | _O_CLOEXEC, 0o600)
                created = True
            except FileExistsError:
                fd = os.open(path, os.O_RDWR | _O_CLOEXEC, 0o600)
            sf.fd = fd
            # Cut to 0, then extended: every slot reads as zeros and takes
            # no disk space until it is written.
            os.ftruncate(fd, 0)
            os.ftruncate(fd, size)
        except BaseException as exc:
            swap_file_free(sf)
            if created:
                try:
                    os.unlink(path)
                except OSError:
                    pass
            if isinstance(exc, OSError) and exc.filename is None:
                raise OSError(exc.errno, exc.strerror, path) from None
            raise
        self.sf = sf
        self.path = path
        self.size = size

    def __dealloc__(self):
        self._close()

    cdef void _close(self) noexcept:
        """Free the file's state once no call is in flight.  GIL held."""
        cdef swap_file *sf = self.sf
        if sf == NULL:
            return
        self.sf = NULL
        with nogil:
            vswap_wait_zero(&sf.calls)
        swap_file_free(sf)

    cdef swap_file *_enter(self) except NULL:
        """The open file, with a call in flight counted: pair with
        swap_file_exit().  Take it after converting every argument."""
        cdef swap_file *sf = self.sf
        if sf == NULL:
            raise ValueError("I/O on a closed swap file")
        vswap_seq_add(&sf.calls, 1)
        return sf

    cdef swap_file *_open(self) except NULL:
        if self.sf == NULL:
            raise ValueError("I/O on a closed swap file")
        return self.sf

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
        cdef uint64_t s
        cdef swap_file *sf
        self._open()
        s = slot_arg(slot)
        sf = self._open()
        if swap_file_free_slot(sf, s) != 0:
            raise_not_allocated(slot, sf)

    def write(self, slot, page):
        """Write one page (a buffer of 4096 bytes) to an allocated slot.
        No lock and no GIL during the write."""
        cdef Py_buffer view
        cdef uint64_t s
        self._open()
        s = slot_arg(slot)
        page_buffer(page, &view, False, "page", 1)
        try:
            self._transfer(slot, s, <char *>view.buf, True)
        finally:
            PyBuffer_Release(&view)

    def read(self, slot, out=None):
        """Read the page at an allocated slot into ``out`` (a writable buffer
        of 4096 bytes, returned) or into new bytes.  No lock and no GIL
        during the read."""
        cdef Py_buffer view
        cdef uint64_t s
        cdef char *buf
        self._open()
        s = slot_arg(slot)
        if out is None:
            result = PyBytes_FromStringAndSize(NULL, PAGE)
            buf = PyBytes_AS_STRING(result)
        else:
            page_buffer(out, &view, True, "out", 1)
            buf = <char *>view.buf
            result = out
        try:
            self._transfer(slot, s, buf, False)
        finally:
            if out is not None:
                PyBuffer_Release(&view)
        return result

    cdef int _transfer(self, object slot, uint64_t s, char *buf, bint write) except -1:
        """pwrite or pread one page at allocated slot ``s``, with no lock and
        no GIL, counted in flight so that close() waits for it.  Arguments
        are converted already: nothing here runs Python code until the
        transfer is over."""
        cdef swap_file *sf
        cdef int err = 0
        cdef bint allocated
        self._open()
        if not swap_file_slot_allocated(self.sf, s):
            raise_not_allocated(slot, self.sf)
        sf = self._enter()
        with nogil:
            allocated = swap_file_slot_allocated(sf, s)
            if allocated:
                err = swap_file_write(sf, s, buf) if write else swap_file_read(sf, s, buf)
            vswap_seq_add(&sf.calls, -1)
        if not allocated:
            raise ValueError("swap slot %d was freed during the %s"
                             % (s, "write" if write else "read"))
        if err:
            raise OSError(err, os.strerror(err), self.path)
        return 0

    def close(self):
        """Close the file; later calls raise ValueError.  Waits for reads and
        writes in flight on other threads.  A file that a zswap pool still
        writes back to cannot be closed (close the pool first)."""
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
        cdef uint64_t nr_slots = sf.nr_slots
        used = len(self)
        return {"slots": nr_slots, "used": used, "free": nr_slots - used}

    def __repr__(self):
        if self.sf == NULL:
            return "<SwapFile path=%r closed>" % (self.path,)
        return "<SwapFile path=%r slots=%d used=%d>" % (self.path, self.sf.nr_slots, len(self))


cdef uint64_t slot_arg(object slot) except? 0:
    """A slot argument as a C value; TypeError for a non-int, and values
    outside [1, 2**64) become 0, which no slot is."""
    if PyBool_Check(slot) or not PyLong_Check(slot):
        raise TypeError("slot must be an int, not %s" % type(slot).__name__)
    slot = PyNumber_Index(slot)
    if slot < 1 or slot >= (1 << 64):
        return 0
    return slot


cdef int raise_not_allocated(object slot, swap_file *sf) except -1:
    raise ValueError("swap slot %d is not allocated (the file has slots 1..%d)"
                     % (PyNumber_Index(slot), sf.nr_slots))
