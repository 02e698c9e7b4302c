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
    # Reverse map (lock): the swap entry whose page a zswap pool wrote to each
    # slot, 0 for a slot the pool did not fill.  A descriptor's slot is the
    # pool's page only while the map names that descriptor's entry, so a
    # slot number left behind anywhere can never be read as someone's page.
    uint64_t *rmap
    long long calls          # calls in flight that use the file; close() waits

# Take the lowest free slot, or return 0 when the file is full.  Locks: sf.lock.
cdef uint64_t swap_file_alloc_slot(swap_file *sf) noexcept nogil
# Whether a slot is free (get_nr_swap_pages() > 0).  Locks: sf.lock.
cdef bint swap_file_has_free_slot(swap_file *sf) noexcept nogil
# Give a slot back; returns -1 if it was not allocated.  Locks: sf.lock.
cdef int swap_file_free_slot(swap_file *sf, uint64_t slot) noexcept nogil
# Whether a slot is allocated.  Locks: sf.lock.
cdef bint swap_file_slot_allocated(swap_file *sf, uint64_t slot) noexcept nogil
# Record that the allocated ``slot`` holds the page of swap entry ``val``.
# Locks: sf.lock.
cdef void swap_file_set_owner(swap_file *sf, uint64_t slot, uint64_t val) noexcept nogil
# Whether ``slot`` is allocated and holds the page of swap entry ``val``.
# Locks: sf.lock.
cdef bint swap_file_slot_owned(swap_file *sf, uint64_t slot, uint64_t val) noexcept nogil
# Free ``slot`` if it holds the page of ``val``; returns whether it did.
# Locks: sf.lock.
cdef bint swap_file_free_owned(swap_file *sf, uint64_t slot, uint64_t val) noexcept nogil
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
    cdef swap_file *_enter(self) except NULL
    cdef swap_file *_open(self) except NULL
    cdef int _transfer(self, object slot, uint64_t s, char *buf, bint write) except -1
