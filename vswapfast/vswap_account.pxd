# cython: language_level=3
"""Counted allocation of a design's metadata (vswap_account.h), for cimport."""

cdef extern from "vswap_account.h" nogil:
    ctypedef struct vswap_account:
        long long bytes
        long long objects
        long long peak_bytes
    void vswap_account_add(vswap_account *a, long long bytes, long long objects)
    void *vswap_account_calloc(vswap_account *a, size_t size)
    void vswap_account_free(vswap_account *a, void *p, size_t size)
    long long vswap_account_bytes(const vswap_account *a)
