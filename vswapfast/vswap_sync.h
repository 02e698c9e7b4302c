/*
 * Synchronisation helpers of the vswap core that Cython cannot spell:
 * acquire/release atomics for lock-free cluster-map lookups, and a small
 * number per thread that picks the thread's allocation-cache slot.
 */
#ifndef VSWAPFAST_VSWAP_SYNC_H
#define VSWAPFAST_VSWAP_SYNC_H

#include <pthread.h>

/* Pointers published in the cluster map are read without the map lock. */
#define vswap_load_acquire(p)     __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define vswap_store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
/* Counters read racily by walkers (zswap_empty) while writers hold a lock. */
#define vswap_load_relaxed(p)     __atomic_load_n((p), __ATOMIC_RELAXED)
#define vswap_store_relaxed(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

/* Reference counts and statistics counters. */
#define vswap_atomic_add(p, v)     __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)
#define vswap_ref_get(p)           __atomic_add_fetch((p), 1, __ATOMIC_RELAXED)
#define vswap_ref_put(p)           __atomic_sub_fetch((p), 1, __ATOMIC_ACQ_REL)

static int vswap_thread_counter;
static __thread int vswap_thread_nr = -1;

/* A per-thread number, handed out on first use: the user-space stand-in for
 * the kernel's smp_processor_id() when choosing a per-CPU cache. */
static inline int vswap_this_thread(void)
{
    if (vswap_thread_nr < 0)
        vswap_thread_nr = __atomic_fetch_add(&vswap_thread_counter, 1,
                                             __ATOMIC_RELAXED) & 0x7fffffff;
    return vswap_thread_nr;
}

#endif /* VSWAPFAST_VSWAP_SYNC_H */
