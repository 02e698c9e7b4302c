# cython: language_level=3
"""The swap table model (swap_table.h), for cimport by the swap-table
designs.  See swap_table.h for the layout, the lock-free read scheme and the
lock ordering."""

from libc.stdint cimport uint16_t, uint32_t, uint64_t
from vswapfast.vswap_account cimport vswap_account
from vswapfast._xarray cimport vxa_stats, pthread_spinlock_t

cdef extern from "swap_table.h" nogil:
    int VST_CLUSTER
    int VST_EAGAIN
    int VST_ENOMEM
    struct vst_table:
        uint64_t entries[512]
    struct vst_cluster:
        pthread_spinlock_t lock
        uint16_t count
        vst_table *table
        uint64_t seq
    struct vst_cluster_ext:
        uint32_t *extend_table
        uint16_t *memcg_table
    ctypedef struct vst_ctx:
        size_t size
        vswap_account *live
        vswap_account *cached
    void vst_ctx_init(vst_ctx *ctx, size_t size, vswap_account *live, vswap_account *cached)
    void vst_ctx_destroy(vst_ctx *ctx)
    int vst_reserve1(vst_ctx *ctx)
    void *vst_obj_get(vst_ctx *ctx)
    void vst_obj_put(vst_ctx *ctx, void *p)
    void vst_obj_destroy(vst_ctx *ctx, void *p)
    void vst_cluster_init(vst_cluster *ci)
    void vst_cluster_destroy(vst_cluster *ci, vst_ctx *tables)
    void vst_lock(vst_cluster *ci, vxa_stats *st)
    void vst_unlock(vst_cluster *ci)
    int vst_table_install(vst_cluster *ci, vst_ctx *tables)
    void vst_table_release(vst_cluster *ci, vst_ctx *tables)
    uint64_t vst_get_locked(vst_cluster *ci, unsigned off)
    void vst_set_locked(vst_cluster *ci, unsigned off, uint64_t v)
    uint64_t vst_get(vst_cluster *ci, unsigned off, vxa_stats *st)
