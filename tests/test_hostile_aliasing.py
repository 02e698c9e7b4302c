"""Batch calls whose output buffer is (or overlaps) one of their inputs.

Both cores read every input as if before any output is written: the twin
reads them into lists first, the compiled core copies an input that shares
memory with an output.  The results must be the same as with separate
buffers, on both cores.
"""

import numpy as np
import pytest

from cores import core_names, load_zswap_core

PAGE = 4096


def page(i):
    return (("alias %d " % i) * 600).encode()[:PAGE]


@pytest.fixture(params=core_names())
def zc(request):
    return load_zswap_core(request.param)


def stored(space, n):
    entries = np.array(space.alloc_many(n), dtype=np.uint64)
    handles = np.arange(100, 100 + n, dtype=np.uint64)
    assert list(space.zswap_entry_store_many(entries, handles)) == [1] * n
    return entries, handles


def test_store_many_old_is_handles(zc):
    space = zc.VSwap()
    entries, _ = stored(space, 20)
    handles = np.arange(500, 520, dtype=np.uint64)
    status = space.zswap_entry_store_many(entries, handles, old=handles)
    assert list(status) == [0] * 20                 # each displaced a handle
    assert handles.tolist() == list(range(100, 120))    # ... written over the input
    out = np.zeros(20, dtype=np.uint64)
    space.zswap_entry_load_many(entries, out)
    assert out.tolist() == list(range(500, 520))


def test_store_many_old_is_entries(zc):
    space = zc.VSwap()
    entries, _ = stored(space, 8)
    keep = entries.copy()
    status = space.zswap_entry_store_many(entries, np.arange(1, 9, dtype=np.uint64),
                                          old=entries)
    assert list(status) == [0] * 8
    assert entries.tolist() == list(range(100, 108))
    out = np.zeros(8, dtype=np.uint64)
    space.zswap_entry_load_many(keep, out)
    assert out.tolist() == list(range(1, 9))


@pytest.mark.parametrize("erase", [False, True])
def test_load_erase_many_into_entries(zc, erase):
    space = zc.VSwap()
    entries, handles = stored(space, 16)
    keep = entries.copy()
    if erase:
        status = space.zswap_entry_erase_many(entries, entries)
    else:
        status = space.zswap_entry_load_many(entries, entries)
    assert list(status) == [0] * 16
    assert entries.tolist() == handles.tolist()
    assert space.zswap_empty() is erase
    assert sorted(space.entries()) == sorted(keep.tolist())


def test_shifted_overlap(zc):
    space = zc.VSwap()
    entries, handles = stored(space, 16)
    buf = np.zeros(17, dtype=np.uint64)
    buf[:16] = entries
    # Output one item after the input: writing out[i] overwrites entries[i+1].
    status = space.zswap_entry_load_many(buf[:16], buf[1:])
    assert list(status) == [0] * 16
    assert buf[1:].tolist() == handles.tolist()


def test_index_designs_alias_too(zc):
    import importlib
    mod = importlib.import_module("vswapfast._zswap_index" if zc.name == "compiled"
                                  else "vswapfast.pure")
    for design in ("vswap", "rbtree"):
        space = zc.VSwap()
        ix = mod.ZswapIndex(space, design)
        entries = np.array(space.alloc_many(8), dtype=np.uint64)
        handles = np.arange(1, 9, dtype=np.uint64)
        ix.zswap_entry_store_many(entries, handles)
        again = np.arange(50, 58, dtype=np.uint64)
        assert list(ix.zswap_entry_store_many(entries, again, old=again)) == [0] * 8
        assert again.tolist() == list(range(1, 9))
        keep = entries.copy()
        assert list(ix.zswap_entry_load_many(entries, entries)) == [0] * 8
        assert entries.tolist() == list(range(50, 58))
        assert sorted(space.entries()) == sorted(keep.tolist())


def test_pool_load_many_out_holds_entries(zc, tmp_path):
    space = zc.VSwap()
    pool = zc.Zswap(space, max_pool_bytes=1 << 40)
    n = 8
    entries = space.alloc_many(n)
    for i, e in enumerate(entries):
        assert pool.store(e, page(i))
    out = np.zeros(n * PAGE, dtype=np.uint8)
    # The entries live in the first bytes of the output pages.
    view = out[:n * 8].view(np.uint64)
    view[:] = np.array(entries, dtype=np.uint64)
    status = pool.load_many(view, out)
    assert list(status) == [0] * n
    for i in range(n):
        assert out[i * PAGE:(i + 1) * PAGE].tobytes() == page(i)
    pool.close()
