"""Odd buffers and sizes: the same behaviour in both cores, nothing left behind.

A folio that is a buffer but not a C-contiguous page is not a page to copy:
``read`` falls back to the pool.  A swap file size that cannot be a file is
refused before anything is opened, and a file that cannot be made leaves no
descriptor and no file behind.
"""

import gc
import os

import numpy as np
import pytest

from cores import core_names, load_zswap_core

PAGE = 4096


@pytest.fixture(params=core_names())
def zc(request):
    return load_zswap_core(request.param)


def open_fds():
    gc.collect()                # files of earlier tests closed by now
    return len(os.listdir("/proc/self/fd"))


def test_read_with_a_non_contiguous_folio(zc):
    space = zc.VSwap()
    pool = zc.Zswap(space, max_pool_bytes=1 << 40)
    e = space.alloc()
    want = (b"pool page " * 500)[:PAGE]
    assert pool.store(e, want)
    folio = np.zeros(2 * PAGE, dtype=np.uint8)[::2]      # 4096 bytes, strided
    space.swap_cache_add_folio(e, folio)
    assert pool.read(e) == want
    out = bytearray(PAGE)
    assert pool.read(e, out) is out and bytes(out) == want
    # A contiguous page in the swap cache is what read() sees first.
    space.swap_cache_replace_folio(e, folio, np.full(PAGE, 7, dtype=np.uint8))
    assert pool.read(e) == bytes([7]) * PAGE
    pool.close()


@pytest.mark.parametrize("size", [2 ** 70, 2 ** 63, -PAGE])
def test_impossible_swap_file_size(zc, tmp_path, size):
    path = str(tmp_path / "swap")
    before = open_fds()
    with pytest.raises(ValueError) as info:
        zc.SwapFile(path, size)
    assert "size must be a multiple of 4096" in str(info.value)
    assert open_fds() == before
    assert not os.path.exists(path)


def test_existing_file_untouched_by_a_bad_size(zc, tmp_path):
    path = tmp_path / "swap"
    path.write_bytes(b"keep me")
    with pytest.raises(ValueError):
        zc.SwapFile(str(path), 2 ** 70)
    assert path.read_bytes() == b"keep me"


def test_unopenable_path_leaves_nothing(zc, tmp_path):
    before = open_fds()
    with pytest.raises(OSError) as info:
        zc.SwapFile(str(tmp_path / "no" / "such" / "dir" / "swap"), 4 * PAGE)
    assert "swap" in str(info.value)
    assert open_fds() == before


def test_file_that_cannot_grow_is_removed(zc, tmp_path):
    # A size the file system refuses (past its largest file) fails in
    # ftruncate, after the file was made: it is removed again.
    path = str(tmp_path / "swap")
    before = open_fds()
    try:
        f = zc.SwapFile(path, (1 << 62) // PAGE * PAGE)
    except (OSError, MemoryError):
        assert not os.path.exists(path)
        assert open_fds() == before
    else:                                   # a file system that takes it
        f.close()
        os.unlink(path)
