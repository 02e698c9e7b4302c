# cython: language_level=3
"""The xarray model (xarray.h), for cimport by the designs that keep
swap-cache or zswap entries in xarrays.  See xarray.h for the layout, the
lock-free read scheme and the lock ordering."""

from libc.stdint cimport uint32_t, uint64_t, uintptr_t
from vswapfast.vswap_account cimport vswap_account

cdef extern from "xarray.h" nogil:
    ctypedef int pthread_spinlock_t
    int VXA_CHUNK_SHIFT
    int VXA_CHUNK_SIZE
    int VXA_ENOMEM
    int VXA_EAGAIN
    struct vxa_node:
        unsigned char shift
        unsigned char offset
        unsigned char count
        unsigned char nr_values
        uintptr_t slots[64]
    struct vxa:
        pthread_spinlock_t xa_lock
        uint32_t seq
        uintptr_t head
    ctypedef struct vxa_stats:
        unsigned long long lockless_loads
        unsigned long long load_retries
        unsigned long long locked_loads
        unsigned long long lock_acquisitions
        unsigned long long user[4]
    ctypedef struct vxa_ctx:
        vswap_account *live
        vswap_account *cached
    bint vxa_valid_entry(uintptr_t e)
    void vxa_init(vxa *xa)
    void vxa_ctx_init(vxa_ctx *ctx, vswap_account *live, vswap_account *cached)
    void vxa_ctx_destroy(vxa_ctx *ctx)
    void vxa_lock(vxa *xa, vxa_stats *st)
    void vxa_unlock(vxa *xa)
    int vxa_store_locked(vxa *xa, vxa_ctx *ctx, uint64_t index, uintptr_t entry,
                         uintptr_t *old)
    int vxa_reserve1(vxa_ctx *ctx)
    int vxa_store(vxa *xa, vxa_ctx *ctx, uint64_t index, uintptr_t entry, uintptr_t *old,
                  vxa_stats *st)
    uintptr_t vxa_load(vxa *xa, uint64_t index, vxa_stats *st)
    uintptr_t vxa_load_locked(vxa *xa, uint64_t index)
    bint vxa_empty(vxa *xa)
    void vxa_destroy(vxa *xa, vxa_ctx *ctx)
    long long vxa_count_nodes(uintptr_t head)
