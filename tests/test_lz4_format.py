"""The pool's blocks are plain LZ4 block format, in both cores.

python-lz4 decompresses every block a pool stores, and each core's own LZ4
decompresses the blocks python-lz4 makes, page for page.
"""

import lz4.block
import pytest

from zswap_support import library_pages, text_pages

PAGE = 4096


def pages():
    out = [p for p in library_pages(48) + text_pages(16) if any(p)]
    assert len(out) >= 32
    return out


def test_python_lz4_reads_the_pool_blocks(zcore, zspace):
    pool = zcore.Zswap(zspace, max_pool_bytes=1 << 40)
    checked = 0
    for page in pages():
        entry = zspace.alloc()
        if not pool.store(entry, page):
            continue                        # incompressible, refused
        block = pool._block(entry)
        if block is None:
            continue                        # stored raw
        assert len(block) < PAGE
        assert lz4.block.decompress(block, uncompressed_size=PAGE) == page
        checked += 1
    assert checked >= 32
    pool.close()


def test_the_core_reads_python_lz4_blocks(zcore):
    for page in pages():
        block = lz4.block.compress(page, store_size=False)
        assert zcore.Zswap._decompress_block(block) == page


def test_a_bad_block_is_refused(zcore):
    from vswapfast.errors import ZswapDecompressError
    with pytest.raises(ZswapDecompressError):
        zcore.Zswap._decompress_block(b"\xff" * 64)
