# cython: language_level=3
"""Argument conversion shared by the compiled designs' modules (cimport):
the contract's types, ranges and messages (docs/designs.md), so that every
design says the same thing about the same bad argument."""

from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_FORMAT, PyBUF_C_CONTIGUOUS
from cpython.bool cimport PyBool_Check
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.number cimport PyIndex_Check, PyNumber_Index
from libc.stdint cimport uint16_t, uint64_t

# Why an entry is not an allocated slot (entry_arg, the designs' checks).
cdef enum:
    E_OK = 0
    E_ZERO = 1
    E_NEGATIVE = 2
    E_RANGE = 3
    E_FREE = 4


cdef inline object int_arg(object x, str what):
    if type(x) is int:
        return x
    if PyBool_Check(x) or not PyIndex_Check(x):
        raise TypeError("%s must be an int, not %s" % (what, type(x).__name__))
    return PyNumber_Index(x)


cdef inline uint64_t value_arg(object x, str what, uint64_t low) except? 0xFFFFFFFFFFFFFFFF:
    """An int in low .. 2**48 - 1 (folio, shadow, handle)."""
    x = int_arg(x, what)
    if not low <= x <= 0xFFFFFFFFFFFF:
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


cdef inline int get_u64_buffer(object obj, Py_buffer *view, str what, bint writable) except -1:
    """A C-contiguous buffer of uint64 (array('Q')), writable if asked."""
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
