"""Geometry of the compressed-page pool, shared by both cores.

The pool is a size-class allocator in the manner of zsmalloc: a compressed
page of ``n`` bytes takes an object of the smallest class that fits it, and
each class carves its objects out of "zspages" of 1 to 8 pages (the kernel's
default CONFIG_ZSMALLOC_CHAIN_SIZE),
the count chosen to waste the least space.  ``pool_total_size`` counts the
pages of all zspages, so allocator overhead is included.

The compiled core copies these tables into C when it is imported, so the two
cores agree on every size.
"""

PAGE_SIZE = 4096
#: Smallest object, and the step between classes.
ZPOOL_CLASS_DELTA = 32
#: A zspage is at most this many pages.
ZPOOL_MAX_PAGES_PER_ZSPAGE = 8
#: Object sizes of the classes: 32, 64, ..., 4096.
ZPOOL_CLASS_SIZES = tuple(range(ZPOOL_CLASS_DELTA, PAGE_SIZE + 1, ZPOOL_CLASS_DELTA))


def pages_per_zspage(size):
    """The zspage length (in pages) that wastes the least for objects of ``size``."""
    best_pages, best_used = 1, -1.0
    for pages in range(1, ZPOOL_MAX_PAGES_PER_ZSPAGE + 1):
        span = pages * PAGE_SIZE
        used = (span // size) * size / span
        if used > best_used:
            best_pages, best_used = pages, used
    return best_pages


#: Per class: (object size, pages per zspage, objects per zspage).
ZPOOL_CLASSES = tuple(
    (size, pages_per_zspage(size), pages_per_zspage(size) * PAGE_SIZE // size)
    for size in ZPOOL_CLASS_SIZES
)


def size_class(length):
    """Index of the class that holds an object of ``length`` bytes (1..PAGE_SIZE)."""
    return (length + ZPOOL_CLASS_DELTA - 1) // ZPOOL_CLASS_DELTA - 1
