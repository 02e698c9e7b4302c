"""Geometry of the compressed-page pool, shared by both cores.

The pool is a size-class allocator laid out as zsmalloc lays itself out on
x86-64 with 4 KiB pages and the default ``CONFIG_ZSMALLOC_CHAIN_SIZE=8``
(mm/zsmalloc.c), so that ``pool_total_size`` is comparable with the
kernel's zswap ``pool_total_size``:

* ``ZS_SIZE_CLASSES`` (255) class indexes, object sizes ``ZS_MIN_ALLOC_SIZE``
  (32) plus a multiple of ``ZS_SIZE_CLASS_DELTA`` (``PAGE_SIZE >> CLASS_BITS``
  = 16), the last one clamped to ``PAGE_SIZE``;
* each class carves objects out of zspages of 1 to 8 pages, the count
  chosen by ``calculate_zspage_chain_size()``: the least tail waste, the
  smallest count on a tie;
* ``zs_create_pool()`` walks the classes from the largest down and merges a
  class into the larger one before it when both have the same pages per
  zspage and objects per zspage (``can_merge()``): an object of a merged
  index takes the larger class's object size.  The classes left are
  ``ZPOOL_CLASSES``; ``ZPOOL_CLASS_INDEX`` maps each of the 255 indexes to
  one of them;
* ``zs_malloc()`` adds ``ZS_HANDLE_SIZE`` (8) to the requested size before
  the class lookup, and ``get_size_class_index()`` clamps to the last class,
  so a 4096-byte (stored raw) page still takes the 4096-byte huge class.

``pool_total_size`` counts the pages of all zspages, so allocator overhead
is included, as the kernel's ``zs_get_total_pages()`` does.

The compiled core copies these tables into C when it is imported, so the two
cores agree on every size.
"""

PAGE_SIZE = 4096
PAGE_SHIFT = 12
#: x86-64: ``MAX_POSSIBLE_PHYSMEM_BITS`` (arch/x86/include/asm/sparsemem.h).
MAX_POSSIBLE_PHYSMEM_BITS = 52
BITS_PER_LONG = 64
#: ``OBJ_INDEX_BITS`` = ``BITS_PER_LONG - _PFN_BITS`` (``_PFN_BITS`` =
#: ``MAX_POSSIBLE_PHYSMEM_BITS - PAGE_SHIFT``); only ``ZS_MIN_ALLOC_SIZE``
#: depends on it, and it stays 32 with or without ``OBJ_TAG_BITS``.
OBJ_INDEX_BITS = BITS_PER_LONG - (MAX_POSSIBLE_PHYSMEM_BITS - PAGE_SHIFT)
#: The default ``CONFIG_ZSMALLOC_CHAIN_SIZE``: a zspage is at most this many pages.
ZS_MAX_PAGES_PER_ZSPAGE = 8
CLASS_BITS = 8
ZS_HANDLE_SIZE = 8
ZS_MIN_ALLOC_SIZE = max(32, (ZS_MAX_PAGES_PER_ZSPAGE << PAGE_SHIFT) >> OBJ_INDEX_BITS)
ZS_MAX_ALLOC_SIZE = PAGE_SIZE
ZS_SIZE_CLASS_DELTA = PAGE_SIZE >> CLASS_BITS
#: ``DIV_ROUND_UP(ZS_MAX_ALLOC_SIZE - ZS_MIN_ALLOC_SIZE, ZS_SIZE_CLASS_DELTA) + 1``
ZS_SIZE_CLASSES = -(-(ZS_MAX_ALLOC_SIZE - ZS_MIN_ALLOC_SIZE) // ZS_SIZE_CLASS_DELTA) + 1

# Older names, kept for the code that reads them.
ZPOOL_CLASS_DELTA = ZS_SIZE_CLASS_DELTA
ZPOOL_MAX_PAGES_PER_ZSPAGE = ZS_MAX_PAGES_PER_ZSPAGE


def calculate_zspage_chain_size(size):
    """Pages per zspage for objects of ``size`` bytes, as mm/zsmalloc.c's
    ``calculate_zspage_chain_size()``: the count of 1..8 pages whose tail
    (``pages * PAGE_SIZE % size``) is the smallest, the first on a tie."""
    best, min_waste = 1, None
    for pages in range(1, ZS_MAX_PAGES_PER_ZSPAGE + 1):
        waste = pages * PAGE_SIZE % size
        if min_waste is None or waste < min_waste:
            best, min_waste = pages, waste
    return best


pages_per_zspage = calculate_zspage_chain_size


def get_size_class_index(size):
    """Class index (0..ZS_SIZE_CLASSES-1) of a ``size``-byte request, handle
    included, as mm/zsmalloc.c's ``get_size_class_index()``."""
    idx = 0
    if size > ZS_MIN_ALLOC_SIZE:
        idx = -(-(size - ZS_MIN_ALLOC_SIZE) // ZS_SIZE_CLASS_DELTA)
    return min(ZS_SIZE_CLASSES - 1, idx)


def _create_classes():
    """The classes of ``zs_create_pool()``: walk the indexes from the
    largest down; an index with the same (pages per zspage, objects per
    zspage) as the class before it shares that class (``can_merge()``).
    Returns (classes ascending, index -> class position, huge_class_size)."""
    descending = []
    owner = [0] * ZS_SIZE_CLASSES
    huge_class_size = 0
    for i in range(ZS_SIZE_CLASSES - 1, -1, -1):
        size = min(ZS_MIN_ALLOC_SIZE + i * ZS_SIZE_CLASS_DELTA, ZS_MAX_ALLOC_SIZE)
        pages = calculate_zspage_chain_size(size)
        objs = pages * PAGE_SIZE // size
        # The first class (from the top) whose zspage holds more than one
        # object: requests from here up (handle included) are "huge".
        if pages != 1 and objs != 1 and not huge_class_size:
            huge_class_size = size - (ZS_HANDLE_SIZE - 1)
        if descending and descending[-1][1:] == (pages, objs):
            owner[i] = len(descending) - 1
            continue
        descending.append((size, pages, objs))
        owner[i] = len(descending) - 1
    last = len(descending) - 1
    return (tuple(reversed(descending)), tuple(last - o for o in owner), huge_class_size)


#: Per class, smallest first: (object size, pages per zspage, objects per zspage).
#: ZPOOL_CLASS_INDEX[i]: the position in ZPOOL_CLASSES of kernel class index ``i``.
#: ZS_HUGE_CLASS_SIZE: ``zs_huge_class_size()``, compressed lengths from which
#: an object takes a zspage of one page to itself.
ZPOOL_CLASSES, ZPOOL_CLASS_INDEX, ZS_HUGE_CLASS_SIZE = _create_classes()


def size_class(length):
    """Position in ``ZPOOL_CLASSES`` of the class ``zs_malloc()`` uses for
    an object of ``length`` bytes (1..PAGE_SIZE): the handle is added, then
    the index is looked up and mapped to its (possibly merged) class."""
    return ZPOOL_CLASS_INDEX[get_size_class_index(length + ZS_HANDLE_SIZE)]
