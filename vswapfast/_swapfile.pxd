# cython: language_level=3
"""C layout of the backing swap file, for Cython code that cimports it.

A swap file is a real file of 4 KiB slots.  Slot 0 is the header page and is
never handed out, so 0 can mean "no slot".  The slot allocator's bitmap is
guarded by ``lock``; reads and writes of slots take no lock.
"""

from libc.stdint cimport uint64_t
from vswapfast._vswap cimport pthread_spinlock_t

ctypedef struct swap_file:
    pthread_spinlock_t lock
    int fd
    uint64_t nr_slots        # slots 1..nr_slots
    uint64_t used            # allocated slots (lock)
    uint64_t hint            # no free slot below this (lock)
    uint64_t *bitmap         # allocated slots (lock); bit 0 is the header

# Take the lowest free slot, or return 0 when the file is full.  Locks: sf.lock.
cdef uint64_t swap_file_alloc_slot(swap_file *sf) noexcept nogil
# Give a slot back; returns -1 if it was not allocated.  Locks: sf.lock.
cdef int swap_file_free_slot(swap_file *sf, uint64_t slot) noexcept nogil
# Whether a slot is allocated.  Locks: sf.lock.
cdef bint swap_file_slot_allocated(swap_file *sf, uint64_t slot) noexcept nogil
# Write or read a whole page at a slot; 0 or an errno.  No lock.
cdef int swap_file_write(swap_file *sf, uint64_t slot, const void *page) noexcept nogil
cdef int swap_file_read(swap_file *sf, uint64_t slot, void *page) noexcept nogil

# Get a C-contiguous buffer of ``pages`` whole pages from ``obj`` (pages -1:
# any positive number, returned), raising TypeError/ValueError naming ``name``.
cdef Py_ssize_t page_buffer(object obj, Py_buffer *view, bint writable, str name,
                            Py_ssize_t pages) except -1

cdef class SwapFile:
    cdef swap_file *sf
    cdef readonly str path
    cdef readonly object size
    cdef int nr_users           # zswap pools writing back here; close() refuses until 0
    cdef void _close(self) noexcept
    cdef swap_file *_open(self) except NULL
    cdef uint64_t _allocated(self, object slot) except 0
