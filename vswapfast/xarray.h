/*
 * A model of the kernel's xarray (include/linux/xarray.h, lib/xarray.c),
 * for the swap metadata designs that keep swap-cache and zswap entries in
 * xarrays (one per 64 MiB of swap space).
 *
 * Layout: a tree of 64-slot nodes (XA_CHUNK_SHIFT 6).  ``struct vxa_node``
 * has the fields and the size of the kernel's ``struct xa_node`` on x86-64
 * (shift, offset, count, nr_values, parent, array, union {private_list,
 * rcu_head}, slots[64], marks[3][1]: 576 bytes).  ``struct vxa`` has the
 * size of ``struct xarray`` (16 bytes); its 32-bit ``xa_flags`` word holds
 * the sequence count of the lock-free reads instead (no xarray of the
 * modelled designs uses flags beyond the lock type).
 *
 * Entries are non-zero words that are not internal entries ((e & 3) != 2),
 * as the kernel's: aligned pointers (low bits 00) and value entries (low
 * bit 1, xa_mk_value).  Node pointers in slots and in the head are internal
 * entries (node | 2, xa_mk_node).  A lone entry at index 0 lives in the head
 * itself, as in the kernel.  The tree covers indices from 0, so the height
 * is set by the largest index stored (xas_expand) and shrinks back when the
 * top node holds only its first slot (xas_shrink); empty nodes are freed
 * as stores of NULL leave them (xas_delete_node).
 *
 * Locking.  Stores and erases hold xa_lock (a spinlock, as xa_lock()).
 * Loads take no lock: where the kernel's xa_load runs under rcu_read_lock
 * and relies on nodes being freed after a grace period, this model keeps
 * nodes type-stable -- a freed node goes to the free list of its
 * ``vxa_ctx`` (shared by the xarrays of one design, under its own lock,
 * taken inside xa_lock only) and is only ever reused as a node, never given
 * back to the allocator while the ctx lives -- and validates every
 * lock-free read with the xarray's sequence count: writers make it odd
 * before changing the tree and even after (a seqcount, under xa_lock), a
 * reader reads it before and after its walk and retries when it changed or
 * was odd.  Every word a reader reads is read atomically, so a walk through
 * a recycled node reads valid memory and its result is thrown away.  A
 * reader that failed VXA_LOAD_MAX_RETRIES times takes xa_lock (counted
 * apart: ``locked_loads``), so readers cannot starve under a storm of
 * writes.
 *
 * Lock ordering: xa_lock -> ctx->lock (the node free list).
 */
#ifndef VSWAPFAST_XARRAY_H
#define VSWAPFAST_XARRAY_H

#include <pthread.h>
#include <stdint.h>
#include <stddef.h>
#include <sched.h>
#include "vswap_account.h"

#define VXA_CHUNK_SHIFT 6
#define VXA_CHUNK_SIZE (1 << VXA_CHUNK_SHIFT)
#define VXA_CHUNK_MASK (VXA_CHUNK_SIZE - 1)
#define VXA_MAX_MARKS 3
#define VXA_MAX_SHIFT 60            /* 64-bit indices: at most 11 levels */
#define VXA_LOAD_MAX_RETRIES 1000
#define VXA_ENOMEM (-12)
#define VXA_EAGAIN (-11)          /* a node is needed: vxa_reserve1(), retry */

struct vxa;

/* struct xa_node (include/linux/xarray.h), x86-64. */
struct vxa_node {
    unsigned char shift;            /* bits of the index below this node */
    unsigned char offset;           /* slot in the parent */
    unsigned char count;            /* non-NULL slots (nodes included) */
    unsigned char nr_values;        /* value entries among them */
    struct vxa_node *parent;        /* NULL at the top */
    struct vxa *array;              /* the xarray the node belongs to */
    union {
        struct { void *next, *prev; } private_list;  /* here: free list link */
        struct { void *next; void (*func)(void *); } rcu_head;
    };
    uintptr_t slots[VXA_CHUNK_SIZE];
    unsigned long marks[VXA_MAX_MARKS][1];
};

/* struct xarray: xa_lock, xa_flags (here: the read sequence count), xa_head. */
struct vxa {
    pthread_spinlock_t xa_lock;
    uint32_t seq;
    uintptr_t head;
};

_Static_assert(sizeof(struct vxa_node) == 576, "struct xa_node is 576 bytes on x86-64");
_Static_assert(sizeof(struct vxa) == 16, "struct xarray is 16 bytes on x86-64");

/* Statistics of one thread slot, on a cache line of its own.  A slot is
 * meant for one thread: counted with a relaxed load and store (no locked
 * instruction); should more threads than slots share one, counts may be
 * lost, never torn. */
#define vxa_stat_inc(st, field) \
    do { if (st) __atomic_store_n(&(st)->field, \
            __atomic_load_n(&(st)->field, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED); } while (0)
typedef struct {
    unsigned long long lockless_loads;   /* loads that took no lock */
    unsigned long long load_retries;     /* lock-free walks thrown away */
    unsigned long long locked_loads;     /* loads that gave up and locked */
    unsigned long long lock_acquisitions;/* xa_lock taken */
    unsigned long long user[4];          /* the xarray user's own locks */
} vxa_stats;

_Static_assert(sizeof(vxa_stats) == 64, "one thread slot of statistics per cache line");

/* The nodes of a family of xarrays: their accounting and free list. */
typedef struct {
    pthread_spinlock_t lock;        /* the free list */
    struct vxa_node *free;
    vswap_account *live;            /* nodes in trees */
    vswap_account *cached;          /* nodes on the free list */
} vxa_ctx;

/* Words readers may read without the lock: written with release stores
 * and read with acquire loads, so that a node published in a slot or the
 * head is seen initialised (rcu_assign_pointer / rcu_dereference); plain
 * moves on x86-64. */
#define vxa_ld(p)      __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define vxa_st(p, v)   __atomic_store_n((p), (v), __ATOMIC_RELEASE)

static inline int vxa_is_node(uintptr_t e) { return (e & 3) == 2 && e > 4096; }
static inline struct vxa_node *vxa_to_node(uintptr_t e) { return (struct vxa_node *)(e - 2); }
static inline uintptr_t vxa_mk_node(struct vxa_node *n) { return (uintptr_t)n | 2; }
/* An entry the xarray can hold: not NULL and not internal. */
static inline int vxa_valid_entry(uintptr_t e) { return e != 0 && (e & 3) != 2; }

static inline void vxa_init(struct vxa *xa)
{
    pthread_spin_init(&xa->xa_lock, PTHREAD_PROCESS_PRIVATE);
    xa->seq = 0;
    xa->head = 0;
}

static inline void vxa_ctx_init(vxa_ctx *ctx, vswap_account *live, vswap_account *cached)
{
    pthread_spin_init(&ctx->lock, PTHREAD_PROCESS_PRIVATE);
    ctx->free = NULL;
    ctx->live = live;
    ctx->cached = cached;
}

/* Free every node of the free list (no xarray of ctx may be in use). */
static inline void vxa_ctx_destroy(vxa_ctx *ctx)
{
    struct vxa_node *n = ctx->free, *next;
    while (n) {
        next = (struct vxa_node *)n->private_list.next;
        vswap_account_free(ctx->cached, n, sizeof(*n));
        n = next;
    }
    ctx->free = NULL;
    pthread_spin_destroy(&ctx->lock);
}

/* xa_lock(): take the lock, counted. */
static inline void vxa_lock(struct vxa *xa, vxa_stats *st)
{
    pthread_spin_lock(&xa->xa_lock);
    vxa_stat_inc(st, lock_acquisitions);
}

static inline void vxa_unlock(struct vxa *xa)
{
    pthread_spin_unlock(&xa->xa_lock);
}

/* Writers, under xa_lock: open and close a change (write_seqcount_begin/end). */
static inline void vxa_write_begin(struct vxa *xa)
{
    vxa_st(&xa->seq, xa->seq + 1);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

static inline void vxa_write_end(struct vxa *xa)
{
    __atomic_store_n(&xa->seq, xa->seq + 1, __ATOMIC_RELEASE);
}

/* A node for a store under xa_lock (xas_alloc): from the free list only --
 * nothing is allocated under a lock (the allocator may take the GIL while
 * tracemalloc traces it).  NULL when the list is empty: the store fails
 * with VXA_EAGAIN and vxa_store() fills the list outside the lock and
 * retries, as xas_nomem() does.  Every slot is written atomically, since
 * lock-free readers may still be walking a recycled node. */
static inline struct vxa_node *vxa_node_alloc(struct vxa *xa, vxa_ctx *ctx,
                                              unsigned shift, struct vxa_node *parent,
                                              unsigned offset)
{
    struct vxa_node *n;
    int i;

    pthread_spin_lock(&ctx->lock);
    n = ctx->free;
    if (n) {
        ctx->free = (struct vxa_node *)n->private_list.next;
        vswap_account_add(ctx->cached, -(long long)sizeof(*n), -1);
        vswap_account_add(ctx->live, (long long)sizeof(*n), 1);
    }
    pthread_spin_unlock(&ctx->lock);
    if (!n)
        return NULL;
    for (i = 0; i < VXA_CHUNK_SIZE; i++)
        vxa_st(&n->slots[i], 0);
    vxa_st(&n->shift, (unsigned char)shift);
    n->offset = (unsigned char)offset;
    n->count = 0;
    n->nr_values = 0;
    n->parent = parent;
    n->array = xa;
    n->private_list.next = n->private_list.prev = NULL;
    return n;
}

/* xas_nomem(): one new node on the free list, allocated with no lock held.
 * 0, or VXA_ENOMEM. */
static inline int vxa_reserve1(vxa_ctx *ctx)
{
    struct vxa_node *n = (struct vxa_node *)vswap_account_calloc(ctx->cached, sizeof(*n));
    if (!n)
        return VXA_ENOMEM;
    pthread_spin_lock(&ctx->lock);
    n->private_list.next = ctx->free;
    ctx->free = n;
    pthread_spin_unlock(&ctx->lock);
    return 0;
}

/* xa_node_free(): where the kernel defers the free past an RCU grace
 * period, the node goes to the free list, still a node. */
static inline void vxa_node_free(vxa_ctx *ctx, struct vxa_node *n)
{
    n->array = NULL;
    n->parent = NULL;
    pthread_spin_lock(&ctx->lock);
    n->private_list.next = ctx->free;
    ctx->free = n;
    vswap_account_add(ctx->live, -(long long)sizeof(*n), -1);
    vswap_account_add(ctx->cached, (long long)sizeof(*n), 1);
    pthread_spin_unlock(&ctx->lock);
}

/* The largest index the tree below head can hold. */
static inline uint64_t vxa_max_index(uintptr_t head)
{
    unsigned shift;
    if (!vxa_is_node(head))
        return 0;
    shift = vxa_to_node(head)->shift + VXA_CHUNK_SHIFT;
    return shift >= 64 ? ~0ULL : (1ULL << shift) - 1;
}

/* xas_shrink(): while the top node holds only slot 0, lift that slot into
 * the head (a non-node entry only from a leaf). */
static inline void vxa_shrink(struct vxa *xa, vxa_ctx *ctx)
{
    uintptr_t head = xa->head, e;
    struct vxa_node *n;

    while (vxa_is_node(head)) {
        n = vxa_to_node(head);
        if (n->count != 1)
            break;
        e = n->slots[0];
        if (!e)
            break;
        if (!vxa_is_node(e) && n->shift)
            break;
        vxa_st(&xa->head, e);
        n->count = 0;
        n->nr_values = 0;
        vxa_st(&n->slots[0], 0);
        vxa_node_free(ctx, n);
        if (!vxa_is_node(e))
            break;
        vxa_to_node(e)->parent = NULL;
        head = e;
    }
}

/* xas_delete_node(): free n and its ancestors while they are empty, then
 * shrink the tree from the top. */
static inline void vxa_delete_node(struct vxa *xa, vxa_ctx *ctx, struct vxa_node *n)
{
    struct vxa_node *parent;
    unsigned offset;

    while (n->count == 0) {
        parent = n->parent;
        offset = n->offset;
        vxa_node_free(ctx, n);
        if (!parent) {
            vxa_st(&xa->head, 0);
            return;
        }
        vxa_st(&parent->slots[offset], 0);
        parent->count--;
        n = parent;
    }
    if (!n->parent)
        vxa_shrink(xa, ctx);
}

/*
 * __xa_store() / __xa_erase() (lib/xarray.c): store ``entry`` (0 erases) at
 * ``index``.  The caller holds xa_lock.  Returns the old entry in *old and
 * 0, or VXA_EAGAIN (tree unchanged) when the free list had no node left:
 * the caller drops its locks, calls vxa_reserve1() and retries.
 */
static inline int vxa_store_locked(struct vxa *xa, vxa_ctx *ctx, uint64_t index,
                                   uintptr_t entry, uintptr_t *old)
{
    uintptr_t head = xa->head, e;
    struct vxa_node *n, *child, *top;
    unsigned shift, off;

    *old = 0;
    if (!entry) {
        /* xa_erase: walk down; nothing to do if the slot is empty. */
        if (!vxa_is_node(head)) {
            if (index == 0 && head) {
                *old = head;
                vxa_write_begin(xa);
                vxa_st(&xa->head, 0);
                vxa_write_end(xa);
            }
            return 0;
        }
        if (index > vxa_max_index(head))
            return 0;
        n = vxa_to_node(head);
        for (;;) {
            off = (index >> n->shift) & VXA_CHUNK_MASK;
            e = n->slots[off];
            if (!e)
                return 0;
            if (!n->shift)
                break;
            n = vxa_to_node(e);
        }
        *old = e;
        vxa_write_begin(xa);
        vxa_st(&n->slots[off], 0);
        n->count--;
        if (e & 1)
            n->nr_values--;
        vxa_delete_node(xa, ctx, n);
        vxa_write_end(xa);
        return 0;
    }

    vxa_write_begin(xa);
    if (!vxa_is_node(head) && index == 0) {
        *old = head;
        vxa_st(&xa->head, entry);
        vxa_write_end(xa);
        return 0;
    }
    /* xas_expand(): grow from the top until index fits. */
    if (!head) {
        shift = 0;
        while (shift < VXA_MAX_SHIFT && (index >> shift) >= VXA_CHUNK_SIZE)
            shift += VXA_CHUNK_SHIFT;
        top = vxa_node_alloc(xa, ctx, shift, NULL, 0);
        if (!top)
            goto nomem;
        vxa_st(&xa->head, vxa_mk_node(top));
        head = xa->head;
    }
    while (index > vxa_max_index(head)) {
        shift = vxa_is_node(head) ? vxa_to_node(head)->shift + VXA_CHUNK_SHIFT : 0;
        top = vxa_node_alloc(xa, ctx, shift, NULL, 0);
        if (!top)
            goto nomem;
        vxa_st(&top->slots[0], head);
        top->count = 1;
        if (vxa_is_node(head)) {
            vxa_to_node(head)->parent = top;
            vxa_to_node(head)->offset = 0;
        } else if (head & 1) {
            top->nr_values = 1;
        }
        vxa_st(&xa->head, vxa_mk_node(top));
        head = xa->head;
    }
    /* xas_create(): down to the leaf, adding the missing nodes. */
    n = vxa_to_node(head);
    while (n->shift) {
        off = (index >> n->shift) & VXA_CHUNK_MASK;
        e = n->slots[off];
        if (!e) {
            child = vxa_node_alloc(xa, ctx, n->shift - VXA_CHUNK_SHIFT, n, off);
            if (!child) {
                if (n->count == 0)
                    vxa_delete_node(xa, ctx, n);
                else if (!n->parent)
                    vxa_shrink(xa, ctx);
                goto nomem_locked;
            }
            vxa_st(&n->slots[off], vxa_mk_node(child));
            n->count++;
            n = child;
        } else {
            n = vxa_to_node(e);
        }
    }
    off = index & VXA_CHUNK_MASK;
    e = n->slots[off];
    *old = e;
    vxa_st(&n->slots[off], entry);
    if (!e)
        n->count++;
    n->nr_values += (entry & 1) - (e & 1);
    vxa_write_end(xa);
    return 0;

nomem:
    /* A new top of an empty tree, or a growth step: the tree still holds
     * what it held (the nodes added above the old head only carry it). */
    if (vxa_is_node(xa->head))
        vxa_shrink(xa, ctx);
nomem_locked:
    vxa_write_end(xa);
    return VXA_EAGAIN;
}

/* xa_store() / xa_erase(): take xa_lock, store, and when a node is
 * needed drop the lock, allocate one and retry (xas_nomem).  0, or
 * VXA_ENOMEM (nothing changed). */
static inline int vxa_store(struct vxa *xa, vxa_ctx *ctx, uint64_t index, uintptr_t entry,
                            uintptr_t *old, vxa_stats *st)
{
    int rc;
    for (;;) {
        vxa_lock(xa, st);
        rc = vxa_store_locked(xa, ctx, index, entry, old);
        vxa_unlock(xa);
        if (rc != VXA_EAGAIN)
            return rc;
        if (vxa_reserve1(ctx))
            return VXA_ENOMEM;
    }
}

/* One lock-free walk: the entry at index as the tree is now (may be torn). */
static inline uintptr_t vxa_walk(struct vxa *xa, uint64_t index)
{
    uintptr_t e = vxa_ld(&xa->head);
    struct vxa_node *n;
    unsigned shift;
    int depth;

    if (!vxa_is_node(e))
        return index == 0 ? e : 0;
    for (depth = 0; depth <= VXA_MAX_SHIFT / VXA_CHUNK_SHIFT + 1; depth++) {
        n = vxa_to_node(e);
        shift = vxa_ld(&n->shift);
        if (shift > VXA_MAX_SHIFT)
            return 0;
        if (depth == 0 && shift + VXA_CHUNK_SHIFT < 64 && (index >> (shift + VXA_CHUNK_SHIFT)))
            return 0;
        e = vxa_ld(&n->slots[(index >> shift) & VXA_CHUNK_MASK]);
        if (!vxa_is_node(e))
            return e;
        if (!shift)         /* a node below a leaf: torn, the seq will say */
            return 0;
    }
    return 0;
}

/*
 * xa_load() (lib/xarray.c): the entry at index, with no lock; 0 if none.
 * Validated by the sequence count (see the header comment).
 */
static inline uintptr_t vxa_load(struct vxa *xa, uint64_t index, vxa_stats *st)
{
    uint32_t s1, s2;
    uintptr_t e;
    int tries;

    for (tries = 0; tries < VXA_LOAD_MAX_RETRIES; tries++) {
        s1 = __atomic_load_n(&xa->seq, __ATOMIC_ACQUIRE);
        if (s1 & 1) {
            vxa_stat_inc(st, load_retries);
            sched_yield();
            continue;
        }
        e = vxa_walk(xa, index);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        s2 = vxa_ld(&xa->seq);
        if (s1 == s2) {
            vxa_stat_inc(st, lockless_loads);
            return e;
        }
        vxa_stat_inc(st, load_retries);
    }
    vxa_lock(xa, st);
    e = vxa_walk(xa, index);
    vxa_unlock(xa);
    vxa_stat_inc(st, locked_loads);
    return e;
}

/* The entry at index, the caller holding xa_lock. */
static inline uintptr_t vxa_load_locked(struct vxa *xa, uint64_t index)
{
    return vxa_walk(xa, index);
}

/* xa_empty(): no entry at all (lock-free, a snapshot). */
static inline int vxa_empty(struct vxa *xa)
{
    return vxa_ld(&xa->head) == 0;
}

/* Free every node of the tree (xa_destroy); no reader or writer may run. */
static inline void vxa_destroy(struct vxa *xa, vxa_ctx *ctx)
{
    uintptr_t head = xa->head;
    struct vxa_node *n, *parent;
    unsigned off;

    if (vxa_is_node(head)) {
        n = vxa_to_node(head);
        off = 0;
        /* depth-first, freeing each node after its children */
        for (;;) {
            while (off < VXA_CHUNK_SIZE && !(n->shift && vxa_is_node(n->slots[off])))
                off++;
            if (off < VXA_CHUNK_SIZE) {
                uintptr_t c = n->slots[off];
                n->slots[off] = 0;
                n = vxa_to_node(c);
                off = 0;
                continue;
            }
            parent = n->parent;
            off = n->offset + 1;
            vswap_account_free(ctx->live, n, sizeof(*n));
            if (!parent)
                break;
            n = parent;
        }
    }
    xa->head = 0;
    pthread_spin_destroy(&xa->xa_lock);
}

/* Nodes in the tree (walk, under xa_lock or with no writer). */
static inline long long vxa_count_nodes(uintptr_t e)
{
    long long nodes = 0;
    struct vxa_node *n;
    int i;
    if (!vxa_is_node(e))
        return 0;
    n = vxa_to_node(e);
    nodes = 1;
    if (n->shift)
        for (i = 0; i < VXA_CHUNK_SIZE; i++)
            nodes += vxa_count_nodes(n->slots[i]);
    return nodes;
}

#endif /* VSWAPFAST_XARRAY_H */
