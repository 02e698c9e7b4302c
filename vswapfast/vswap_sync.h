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

/*
 * Calls in flight on an object that close() waits for, and the users of a
 * bound zswap pool's hooks: sequentially consistent, so that "announce,
 * then look" on one side and "retract, then wait" on the other never miss
 * each other.
 */
#define vswap_seq_add(p, v)       __atomic_add_fetch((p), (v), __ATOMIC_SEQ_CST)
#define vswap_seq_load(p)         __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define vswap_seq_store(p, v)     __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)

#include <sched.h>
/* Wait, with no lock and no GIL held, until *p reads 0. */
static inline void vswap_wait_zero(long long *p)
{
    while (__atomic_load_n(p, __ATOMIC_SEQ_CST) != 0)
        sched_yield();
}

/* Reference counts and statistics counters. */
#define vswap_atomic_add(p, v)     __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)
#define vswap_ref_get(p)           __atomic_add_fetch((p), 1, __ATOMIC_RELAXED)
#define vswap_ref_put(p)           __atomic_sub_fetch((p), 1, __ATOMIC_ACQ_REL)

/*
 * A small number per live thread: the user-space stand-in for the kernel's
 * smp_processor_id() when choosing a per-CPU cache.  A thread takes the
 * lowest free number on first use and gives it back when it exits, so the
 * numbers stay as small as the number of threads alive at once.
 */
#define VSWAP_MAX_THREAD_NR 65536

static pthread_mutex_t vswap_thread_nr_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t vswap_thread_nr_once = PTHREAD_ONCE_INIT;
static pthread_key_t vswap_thread_nr_key;
static unsigned long long vswap_thread_nr_used[VSWAP_MAX_THREAD_NR / 64];
static __thread int vswap_thread_nr = -1;

static void vswap_thread_nr_put(void *value)
{
    int nr = (int)(long)value - 1;
    pthread_mutex_lock(&vswap_thread_nr_lock);
    vswap_thread_nr_used[nr >> 6] &= ~(1ULL << (nr & 63));
    pthread_mutex_unlock(&vswap_thread_nr_lock);
}

static void vswap_thread_nr_init(void)
{
    pthread_key_create(&vswap_thread_nr_key, vswap_thread_nr_put);
}

static int vswap_thread_nr_get(void)
{
    int w, nr = 0;
    pthread_once(&vswap_thread_nr_once, vswap_thread_nr_init);
    pthread_mutex_lock(&vswap_thread_nr_lock);
    for (w = 0; w < VSWAP_MAX_THREAD_NR / 64; w++) {
        if (~vswap_thread_nr_used[w]) {
            nr = w * 64 + __builtin_ctzll(~vswap_thread_nr_used[w]);
            vswap_thread_nr_used[w] |= 1ULL << (nr & 63);
            break;
        }
    }
    pthread_mutex_unlock(&vswap_thread_nr_lock);
    if (w == VSWAP_MAX_THREAD_NR / 64)
        return 0;    /* more live threads than numbers: share number 0 */
    pthread_setspecific(vswap_thread_nr_key, (void *)(long)(nr + 1));
    return nr;
}

static inline int vswap_this_thread(void)
{
    if (vswap_thread_nr < 0)
        vswap_thread_nr = vswap_thread_nr_get();
    return vswap_thread_nr;
}

/*
 * The last cluster this thread looked up, and the space it belongs to (by
 * serial number, never reused): the per-CPU cluster cache of the kernel's
 * v6 patch 22, checked before the cluster map.
 */
static unsigned long long vswap_space_serials;
static __thread unsigned long long vswap_lookup_serial;
static __thread void *vswap_lookup_cluster;

static inline unsigned long long vswap_new_serial(void)
{
    return __atomic_add_fetch(&vswap_space_serials, 1, __ATOMIC_RELAXED);
}

#endif /* VSWAPFAST_VSWAP_SYNC_H */
