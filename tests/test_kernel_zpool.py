"""The pool's size classes against zsmalloc's, as mm/zsmalloc.c lays them out
on x86-64 with 4 KiB pages and CONFIG_ZSMALLOC_CHAIN_SIZE=8.

The expected values are worked out by hand from the kernel source
(ZS_MIN_ALLOC_SIZE, ZS_SIZE_CLASS_DELTA = PAGE_SIZE >> CLASS_BITS,
calculate_zspage_chain_size(), zs_create_pool()'s merging and huge class,
zs_malloc()'s handle), not from vswapfast.zpool.
"""

import pytest

from vswapfast import zpool


def test_constants():
    assert zpool.ZS_MIN_ALLOC_SIZE == 32        # MAX(32, 8 << 12 >> 24)
    assert zpool.ZS_SIZE_CLASS_DELTA == 16      # 4096 >> 8
    assert zpool.ZS_SIZE_CLASSES == 255         # DIV_ROUND_UP(4096 - 32, 16) + 1
    assert zpool.ZS_HANDLE_SIZE == 8
    assert len(zpool.ZPOOL_CLASS_INDEX) == 255


@pytest.mark.parametrize("size, pages, objs", [
    (32, 1, 128),
    (48, 3, 256),       # 3 * 4096 % 48 == 0
    (208, 3, 59),       # the example of "zsmalloc: rework zspage chain size selection"
    (1024, 1, 4),
    (2048, 1, 2),
    (3264, 4, 5),       # 4 * 4096 - 5 * 3264 = 64, the least tail
    (3632, 8, 9),       # the largest class with more than one object per zspage
    (4096, 1, 1),
])
def test_class_geometry(size, pages, objs):
    assert zpool.calculate_zspage_chain_size(size) == pages
    assert (size, pages, objs) in zpool.ZPOOL_CLASSES


def test_merging():
    sizes = [c[0] for c in zpool.ZPOOL_CLASSES]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)
    # No two neighbouring classes could have been merged.
    for a, b in zip(zpool.ZPOOL_CLASSES, zpool.ZPOOL_CLASSES[1:]):
        assert a[1:] != b[1:]
    # 3648 .. 4080 fit one object in one page, like 4096: merged into it.
    for size in range(3648, 4096, 16):
        assert size not in sizes
        assert zpool.ZPOOL_CLASS_INDEX[(size - 32) // 16] == len(sizes) - 1
    assert len(zpool.ZPOOL_CLASSES) == 119
    assert zpool.ZPOOL_CLASSES[-1] == (4096, 1, 1)


def test_lookup_adds_the_handle():
    sizes = [c[0] for c in zpool.ZPOOL_CLASSES]

    def size_of(length):
        return zpool.ZPOOL_CLASSES[zpool.size_class(length)][0]

    assert size_of(1) == 32
    assert size_of(24) == 32            # 24 + 8 == 32
    assert size_of(25) == 48
    assert size_of(200) == 208
    assert size_of(3624) == 3632        # 3624 + 8 == 3632
    assert zpool.ZS_HUGE_CLASS_SIZE == 3625     # 3632 - (8 - 1)
    assert size_of(3625) == 4096
    assert size_of(4096) == 4096        # clamped to the last class
    for length in range(1, 4097):
        size = size_of(length)
        assert size >= min(length + 8, 4096)
        assert size in sizes


def test_cores_account_the_kernel_geometry(zcore):
    """A pool of one stored 200-byte-ish page takes one zspage of its class."""
    import numpy as np
    space = zcore.VSwap()
    pool = zcore.Zswap(space, None, max_pool_bytes=1 << 30)
    page = np.zeros(4096, dtype=np.uint8)
    page[::64] = np.arange(64, dtype=np.uint8) + 1      # compresses small, not zero
    entry = space.alloc()
    assert pool.store(entry, page)
    st = pool.stats()
    length = st["compressed_bytes"]
    _size, pages, _objs = zpool.ZPOOL_CLASSES[zpool.size_class(length)]
    assert st["pool_total_size"] == pages * 4096
    pool.close()
