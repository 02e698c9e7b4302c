# cython: language_level=3
"""Argument conversion shared by the designs of the compiled core (cimport):
every design takes the same Python values and raises the same errors with
the same messages (docs/designs.md, "The API every design has")."""

from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_FORMAT, PyBUF_C_CONTIGUOUS
from cpython.bool cimport PyBool_Check
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.number cimport PyIndex_Check, PyNumber_Index
from libc.stdint cimport uint16_t, uint64_t

cdef extern from "vswap_sync.h" nogil:
    long long vswap_seq_add(long long *p, long long v)
    # A physical cluster's count: written under its ci->lock, peeked at
    # without it by the allocators' scans (as cluster_is_full()), so both
    # are atomic.
    unsigned short cluster_count_peek "vswap_load_relaxed"(unsigned short *p)
    void cluster_count_set "vswap_store_relaxed"(unsigned short *p, unsigned short v)

# entry check results
cdef enum:
    E_OK = 0
    E_ZERO = 1
    E_NEGATIVE = 2
    E_RANGE = 3
    E_FREE = 4

cdef extern from * nogil:
    """
    #define DESIGN_VALUE_MAX ((1ULL << 48) - 1)
    """
    uint64_t DESIGN_VALUE_MAX


cdef inline object int_arg(object x, str what):
    """An int, or TypeError naming ``what`` (bools refused)."""
    if type(x) is int:
        return x
    if PyBool_Check(x) or not PyIndex_Check(x):
        raise TypeError("%s must be an int, not %s" % (what, type(x).__name__))
    return PyNumber_Index(x)


cdef inline uint64_t value_arg(object x, str what, uint64_t low) except? 0xFFFFFFFFFFFFFFFF:
    """An int in low .. 2**48 - 1 (folio, shadow, handle)."""
    x = int_arg(x, what)
    if not low <= x <= DESIGN_VALUE_MAX:
        raise ValueError("%s must be in %d .. 2**48 - 1, not %d" % (what, low, x))
    return <uint64_t>x


cdef inline uint16_t memcg_arg(object x) except? 0xFFFF:
    x = int_arg(x, "memcg")
    if not 0 <= x <= 65535:
        raise ValueError("memcg must be in 0 .. 65535, not %d" % x)
    return <uint16_t>x


cdef inline int entry_arg(object x, uint64_t *val) except -1:
    """A swap entry argument: its type checked, its value kept for the
    check under the call (E_NEGATIVE / E_RANGE when it cannot be a slot)."""
    cdef long long v
    cdef int overflow
    x = int_arg(x, "swap entry")
    v = PyLong_AsLongLongAndOverflow(x, &overflow)
    if overflow:
        val[0] = 0
        return E_RANGE if overflow > 0 else E_NEGATIVE
    if v < 0:
        return E_NEGATIVE
    val[0] = <uint64_t>v
    return E_OK


cdef inline str entry_message(object entry, int why, uint64_t nr_slots):
    entry = int_arg(entry, "swap entry")
    if why == E_ZERO:
        return "swap entry 0 is the device's header page, never allocated"
    if why == E_NEGATIVE:
        return "swap entry %d is negative; entries are unsigned" % entry
    if why == E_RANGE:
        return "swap entry %d is beyond the device (nr_slots is %d)" % (entry, nr_slots)
    return "swap entry %d is not allocated (swap_map is 0)" % entry


cdef inline int get_u64_buffer(object obj, Py_buffer *view, str what, bint writable) except -1:
    """A C-contiguous buffer of uint64, or TypeError saying what was found."""
    try:
        PyObject_GetBuffer(obj, view, PyBUF_FORMAT | PyBUF_C_CONTIGUOUS)
    except (TypeError, BufferError, ValueError):
        raise TypeError("%s must be a buffer of uint64 (array('Q')), not %s"
                        % (what, type(obj).__name__)) from None
    fmt = view.format.decode("ascii") if view.format != NULL else "B"
    if fmt not in ("Q", "L", "<Q", "=Q") or view.itemsize != 8 or view.ndim != 1:
        PyBuffer_Release(view)
        raise TypeError("%s must be a buffer of uint64 (array('Q')), not format %r"
                        % (what, fmt))
    if writable and view.readonly:
        PyBuffer_Release(view)
        raise TypeError("%s must be writable" % what)
    return 0


cdef inline int check_backing(object backing) except -1:
    """The index of a swap_out_many backing in ("zswap", "disk", "zero")."""
    if not isinstance(backing, str):
        raise TypeError("backing must be a str, not %s" % type(backing).__name__)
    if backing not in ("zswap", "disk", "zero"):
        raise ValueError("backing must be one of zswap, disk, zero, not %r" % (backing,))
    return ("zswap", "disk", "zero").index(backing)


cdef inline object count_arg(object count):
    """swap_out_many's page count: an int, at least 0."""
    count = int_arg(count, "count")
    if count < 0:
        raise ValueError("count must be at least 0, not %d" % count)
    return count


cdef inline Py_ssize_t get_u64_pair(object entries, Py_buffer *ev, object other, Py_buffer *ov,
                                    str what, bint writable) except -1:
    """The buffers of ``entries`` and of ``other`` (handles or out), of one
    length, which is returned; on an error neither is held."""
    cdef Py_ssize_t n
    get_u64_buffer(entries, ev, "entries", False)
    try:
        get_u64_buffer(other, ov, what, writable)
    except BaseException:
        PyBuffer_Release(ev)
        raise
    n = ev.len // 8
    if n != ov.len // 8:
        PyBuffer_Release(ov)
        PyBuffer_Release(ev)
        raise ValueError("entries and %s must have the same length, not %d and %d"
                         % (what, n, ov.len // 8))
    return n


cdef inline int check_handles(long long *calls, const uint64_t *h, Py_ssize_t n) except -1:
    """ValueError naming the first handle out of 1 .. 2**48 - 1, after
    leaving the call counted in ``calls`` (the design's calls in flight)."""
    cdef Py_ssize_t i
    for i in range(n):
        if not 1 <= h[i] <= DESIGN_VALUE_MAX:
            vswap_seq_add(calls, -1)
            raise ValueError("handles[%d] must be in 1 .. 2**48 - 1, not %d" % (i, h[i]))
    return 0
