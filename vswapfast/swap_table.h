/*
 * A model of the kernel's swap table (mm/swap_table.h, mm/swap.h,
 * mm/swapfile.c; Kairui Song's series, phase I in 6.18): per cluster of
 * SWAPFILE_CLUSTER (512) slots, ``struct swap_table { atomic_long_t
 * entries[512]; }`` (4096 bytes), pointed to by ``ci->table`` in ``struct
 * swap_cluster_info``, allocated on the cluster's first use and freed when
 * the cluster empties (swap_cluster_free_table()).  For the designs that
 * keep their swap cache (and, after phases III-IV, counts and the zero
 * bit) in it.
 *
 * ``struct vst_cluster`` has the fields and the size of the 6.18 ``struct
 * swap_cluster_info`` on x86-64: spinlock_t lock, u16 count, u8 flags, u8
 * order, atomic_long_t __rcu *table, struct list_head list (32 bytes).  The
 * model's allocator keeps no cluster lists (see the designs' departures),
 * so the list_head's two words hold the cluster's read sequence count
 * instead.  Phase III-IV's extra pointers (``unsigned int *extend_table``,
 * ``struct swap_memcg_table *memcg_table``: 48 bytes in all) are in
 * ``struct vst_cluster_ext``, allocated beside the clusters by the design
 * that has them.
 *
 * Locking.  Table words and ``ci->table`` are written under ``ci->lock``
 * (__swap_table_set(), __swap_table_xchg()).  swap_table_get() reads with
 * no lock: the kernel reads ``ci->table`` and the word under
 * rcu_read_lock() and frees a table after a grace period.  Here a freed
 * table goes to the free list of its ``vst_ctx`` and is only ever reused as
 * a table while the ctx lives (type-stable), and every lock-free read is
 * validated by the cluster's sequence count: a writer makes it odd before
 * it installs or removes ``ci->table`` and even after, under ``ci->lock``;
 * a reader reads it before and after reading the pointer and the word and
 * retries when it changed or was odd.  A table word is one aligned 8-byte
 * atomic, so a word write needs no count: a reader sees the old or the new
 * word, as atomic_long_read() does; only the pointer-then-word path can see
 * a table that moved to another cluster, and moving it changes this
 * cluster's count.  After VST_LOAD_MAX_RETRIES failures a reader takes
 * ``ci->lock`` (``locked_loads``).
 *
 * Nothing is allocated under a lock (an allocation may take the GIL when
 * tracemalloc traces it): a writer that needs a table and finds the free
 * list empty drops its locks, calls vst_reserve1() and retries, as
 * the kernel's swap_cluster_alloc_table() falls back to a sleeping
 * allocation with the locks dropped.
 *
 * Lock ordering: ci->lock -> ctx->lock (the table free list).
 */
#ifndef VSWAPFAST_SWAP_TABLE_H
#define VSWAPFAST_SWAP_TABLE_H

#include <pthread.h>
#include <stdint.h>
#include <sched.h>
#include "vswap_account.h"
#include "xarray.h"              /* vxa_stats, vxa_stat_inc */

#define VST_CLUSTER 512          /* SWAPFILE_CLUSTER with CONFIG_THP_SWAP */
#define VST_LOAD_MAX_RETRIES 1000
#define VST_EAGAIN (-11)         /* a table is needed: vst_reserve1(), retry */
#define VST_ENOMEM (-12)

/* struct swap_table (mm/swap_table.h). */
struct vst_table {
    uint64_t entries[VST_CLUSTER];
};

/* struct swap_cluster_info (mm/swap.h, 6.18), x86-64. */
struct vst_cluster {
    pthread_spinlock_t lock;
    uint16_t count;                 /* slots in use */
    uint8_t flags;
    uint8_t order;
    struct vst_table *table;        /* NULL until first use */
    uint64_t seq;                   /* the list_head: the read sequence count */
    uint64_t pad;
};

/* Phase III-IV's extra pointers of struct swap_cluster_info. */
struct vst_cluster_ext {
    uint32_t *extend_table;         /* counts past the word's, u32 per slot */
    uint16_t *memcg_table;          /* struct swap_memcg_table: u16 id[512] */
};

_Static_assert(sizeof(struct vst_table) == 4096, "struct swap_table is 4096 bytes");
_Static_assert(sizeof(struct vst_cluster) == 32, "struct swap_cluster_info is 32 bytes in 6.18");
_Static_assert(sizeof(struct vst_cluster) + sizeof(struct vst_cluster_ext) == 48,
               "struct swap_cluster_info is 48 bytes after phase IV");

/*
 * A cache of one kind of per-cluster object (swap tables; after phase IV
 * memcg tables and extend tables too): the accounting of those in use and
 * a free list of those freed, kept while the design lives so that a swap
 * table is only ever reused as a swap table.  Objects on the list are
 * linked through their first word.  ``ctx->lock`` nests inside ci->lock.
 */
typedef struct {
    pthread_spinlock_t lock;
    void *free;
    size_t size;                    /* bytes of one object */
    vswap_account *live;            /* objects in clusters */
    vswap_account *cached;          /* objects on the free list */
} vst_ctx;

static inline void vst_ctx_init(vst_ctx *ctx, size_t size, vswap_account *live,
                                vswap_account *cached)
{
    pthread_spin_init(&ctx->lock, PTHREAD_PROCESS_PRIVATE);
    ctx->free = NULL;
    ctx->size = size;
    ctx->live = live;
    ctx->cached = cached;
}

/* Free the free list (no cluster may be in use). */
static inline void vst_ctx_destroy(vst_ctx *ctx)
{
    void *p = ctx->free, *next;
    while (p) {
        next = (void *)(uintptr_t)*(uint64_t *)p;
        vswap_account_free(ctx->cached, p, ctx->size);
        p = next;
    }
    ctx->free = NULL;
    pthread_spin_destroy(&ctx->lock);
}

/* One new object on the free list, allocated with no lock held (the
 * allocator may take the GIL when tracemalloc traces it).  0, or
 * VST_ENOMEM. */
static inline int vst_reserve1(vst_ctx *ctx)
{
    void *p = vswap_account_calloc(ctx->cached, ctx->size);
    if (!p)
        return VST_ENOMEM;
    pthread_spin_lock(&ctx->lock);
    __atomic_store_n((uint64_t *)p, (uint64_t)(uintptr_t)ctx->free, __ATOMIC_RELAXED);
    ctx->free = p;
    pthread_spin_unlock(&ctx->lock);
    return 0;
}

/* An object from the free list, zeroed with atomic stores (lock-free
 * readers of a swap table's last cluster may still read it); NULL when the
 * list is empty: the caller drops its locks, calls vst_reserve1() and
 * retries. */
static inline void *vst_obj_get(vst_ctx *ctx)
{
    uint64_t *p;
    size_t i;

    pthread_spin_lock(&ctx->lock);
    p = (uint64_t *)ctx->free;
    if (p) {
        ctx->free = (void *)(uintptr_t)p[0];
        vswap_account_add(ctx->cached, -(long long)ctx->size, -1);
        vswap_account_add(ctx->live, (long long)ctx->size, 1);
    }
    pthread_spin_unlock(&ctx->lock);
    if (p)
        for (i = 0; i < ctx->size / 8; i++)
            __atomic_store_n(&p[i], 0, __ATOMIC_RELAXED);
    return p;
}

/* An object leaves its cluster for the free list (where the kernel frees
 * it, after a grace period for a swap table). */
static inline void vst_obj_put(vst_ctx *ctx, void *p)
{
    if (!p)
        return;
    pthread_spin_lock(&ctx->lock);
    __atomic_store_n((uint64_t *)p, (uint64_t)(uintptr_t)ctx->free, __ATOMIC_RELAXED);
    ctx->free = p;
    vswap_account_add(ctx->live, -(long long)ctx->size, -1);
    vswap_account_add(ctx->cached, (long long)ctx->size, 1);
    pthread_spin_unlock(&ctx->lock);
}

/* Free an object still in a cluster (at teardown, nothing running). */
static inline void vst_obj_destroy(vst_ctx *ctx, void *p)
{
    vswap_account_free(ctx->live, p, ctx->size);
}

static inline void vst_cluster_init(struct vst_cluster *ci)
{
    pthread_spin_init(&ci->lock, PTHREAD_PROCESS_PRIVATE);
}

/* Free the cluster's table (no reader or writer may run). */
static inline void vst_cluster_destroy(struct vst_cluster *ci, vst_ctx *tables)
{
    vst_obj_destroy(tables, ci->table);
    ci->table = NULL;
    pthread_spin_destroy(&ci->lock);
}

/* spin_lock(&ci->lock), counted in the thread's slot (user[0]). */
static inline void vst_lock(struct vst_cluster *ci, vxa_stats *st)
{
    pthread_spin_lock(&ci->lock);
    vxa_stat_inc(st, user[0]);
}

static inline void vst_unlock(struct vst_cluster *ci)
{
    pthread_spin_unlock(&ci->lock);
}

/* Writers, under ci->lock: open and close a change of ci->table. */
static inline void vst_write_begin(struct vst_cluster *ci)
{
    __atomic_store_n(&ci->seq, ci->seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

static inline void vst_write_end(struct vst_cluster *ci)
{
    __atomic_store_n(&ci->seq, ci->seq + 1, __ATOMIC_RELEASE);
}

/*
 * swap_cluster_alloc_table() under ci->lock: give the cluster a table from
 * the free list, zeroed, then published (rcu_assign_pointer) inside an odd
 * sequence count.  0 when the cluster has one (now or already), VST_EAGAIN
 * when the free list is empty.
 */
static inline int vst_table_install(struct vst_cluster *ci, vst_ctx *tables)
{
    struct vst_table *t;

    if (ci->table)
        return 0;
    t = (struct vst_table *)vst_obj_get(tables);
    if (!t)
        return VST_EAGAIN;
    vst_write_begin(ci);
    __atomic_store_n(&ci->table, t, __ATOMIC_RELEASE);
    vst_write_end(ci);
    return 0;
}

/*
 * swap_cluster_free_table() under ci->lock, the cluster empty: the table
 * leaves the cluster inside an odd sequence count and goes to the free
 * list, still a table.
 */
static inline void vst_table_release(struct vst_cluster *ci, vst_ctx *tables)
{
    struct vst_table *t = ci->table;

    if (!t)
        return;
    vst_write_begin(ci);
    __atomic_store_n(&ci->table, (struct vst_table *)NULL, __ATOMIC_RELEASE);
    vst_write_end(ci);
    vst_obj_put(tables, t);
}

/* __swap_table_get(): the word, the caller holding ci->lock (0 without a table). */
static inline uint64_t vst_get_locked(struct vst_cluster *ci, unsigned off)
{
    struct vst_table *t = ci->table;
    return t ? __atomic_load_n(&t->entries[off], __ATOMIC_RELAXED) : 0;
}

/* __swap_table_set(): write a word under ci->lock (the table exists). */
static inline void vst_set_locked(struct vst_cluster *ci, unsigned off, uint64_t v)
{
    __atomic_store_n(&ci->table->entries[off], v, __ATOMIC_RELAXED);
}

/*
 * swap_table_get(): the word at off with no lock (0 when the cluster has no
 * table), validated by the cluster's sequence count (see above).
 */
static inline uint64_t vst_get(struct vst_cluster *ci, unsigned off, vxa_stats *st)
{
    uint64_t s1, s2, w;
    struct vst_table *t;
    int tries;

    for (tries = 0; tries < VST_LOAD_MAX_RETRIES; tries++) {
        s1 = __atomic_load_n(&ci->seq, __ATOMIC_ACQUIRE);
        if (s1 & 1) {
            vxa_stat_inc(st, load_retries);
            sched_yield();
            continue;
        }
        t = __atomic_load_n(&ci->table, __ATOMIC_ACQUIRE);
        w = t ? __atomic_load_n(&t->entries[off], __ATOMIC_RELAXED) : 0;
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        s2 = __atomic_load_n(&ci->seq, __ATOMIC_RELAXED);
        if (s1 == s2) {
            vxa_stat_inc(st, lockless_loads);
            return w;
        }
        vxa_stat_inc(st, load_retries);
    }
    vst_lock(ci, st);
    w = vst_get_locked(ci, off);
    vst_unlock(ci);
    vxa_stat_inc(st, locked_loads);
    return w;
}

#endif /* VSWAPFAST_SWAP_TABLE_H */
