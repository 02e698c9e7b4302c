/* Counted allocation of a design's metadata structures.
 *
 * Every structure a swap metadata design allocates for its pages goes
 * through these, so that the design can say how many bytes it holds at any
 * moment, from the allocations themselves.  They allocate from Python's raw
 * domain (PyMem_RawCalloc), which tracemalloc traces: a test cross-checks
 * the counters against it.  The counters are updated atomically, so they
 * can be read without the design's locks.
 */
#ifndef VSWAPFAST_VSWAP_ACCOUNT_H
#define VSWAPFAST_VSWAP_ACCOUNT_H

#include <Python.h>
#include <stddef.h>

typedef struct {
    long long bytes;        /* bytes allocated and not yet freed */
    long long objects;      /* allocations not yet freed */
    long long peak_bytes;   /* high-water mark of bytes */
} vswap_account;

static inline void vswap_account_add(vswap_account *a, long long bytes, long long objects)
{
    long long now = __atomic_add_fetch(&a->bytes, bytes, __ATOMIC_RELAXED);
    long long peak;

    __atomic_add_fetch(&a->objects, objects, __ATOMIC_RELAXED);
    peak = __atomic_load_n(&a->peak_bytes, __ATOMIC_RELAXED);
    while (now > peak &&
           !__atomic_compare_exchange_n(&a->peak_bytes, &peak, now, 1,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

/* Zeroed memory for one structure of ``size`` bytes, counted in ``a``;
 * NULL when out of memory (nothing counted). */
static inline void *vswap_account_calloc(vswap_account *a, size_t size)
{
    void *p = PyMem_RawCalloc(1, size);

    if (p)
        vswap_account_add(a, (long long)size, 1);
    return p;
}

/* Free what vswap_account_calloc(a, size) returned (NULL is a no-op). */
static inline void vswap_account_free(vswap_account *a, void *p, size_t size)
{
    if (!p)
        return;
    PyMem_RawFree(p);
    vswap_account_add(a, -(long long)size, -1);
}

static inline long long vswap_account_bytes(const vswap_account *a)
{
    return __atomic_load_n(&a->bytes, __ATOMIC_RELAXED);
}

#endif
