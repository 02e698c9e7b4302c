"""No descriptor names a slot its pool does not own; no read returns a
superseded page.

The swap file keeps a reverse map from each slot to the swap entry whose
page a pool put there (the v6 series keeps one for disk-backed slots); a
descriptor's slot is that entry's page only while the map says so.  A
closed pool takes its written-back pages with it, and a newer store lets go
of the older page in the file (one backing per descriptor).
"""

import pytest

from cores import core_names, load_zswap_core
from vswapfast.errors import NoPageError

PAGE = 4096


def page(tag):
    return (("%s " % tag) * PAGE).encode()[:PAGE]


@pytest.fixture(params=core_names())
def zc(request):
    return load_zswap_core(request.param)


def test_closed_pool_leaves_no_slot_for_the_next(zc, tmp_path):
    space = zc.VSwap()
    file_a = zc.SwapFile(str(tmp_path / "a"), 17 * PAGE)
    pool = zc.Zswap(space, file_a, max_pool_bytes=1 << 40)
    a = space.alloc()
    assert pool.store(a, page("A"))
    assert pool.shrink(1) == 1
    assert space.get_slot(a) != 0
    pool.close()
    assert space.get_slot(a) == 0
    assert len(file_a) == 0

    file_b = zc.SwapFile(str(tmp_path / "b"), 17 * PAGE)
    pool = zc.Zswap(space, file_b, max_pool_bytes=1 << 40)
    b = space.alloc()
    assert pool.store(b, page("B"))
    assert pool.shrink(1) == 1
    slot_b = space.get_slot(b)
    with pytest.raises(NoPageError):
        pool.read(a)                    # never B's page
    space.free(a)
    assert len(file_b) == 1             # B's slot survived A's free
    c = space.alloc()
    assert pool.store(c, page("C"))
    assert pool.shrink(1) == 1
    assert space.get_slot(c) != slot_b  # the next writeback took another slot
    assert pool.read(b) == page("B")
    assert pool.read(c) == page("C")
    pool.close()
    file_a.close()
    file_b.close()


def test_hand_set_stale_slot_of_another_file(zc, tmp_path):
    # A slot number set by hand while another pool's file was bound is not
    # the new pool's page.
    space = zc.VSwap()
    file_a = zc.SwapFile(str(tmp_path / "a"), 9 * PAGE)
    a = space.alloc()
    slot = file_a.alloc_slot()
    file_a.write(slot, page("A"))
    space.set_slot(a, slot)             # no pool bound: just a number
    file_b = zc.SwapFile(str(tmp_path / "b"), 9 * PAGE)
    pool = zc.Zswap(space, file_b, max_pool_bytes=1 << 40)
    b = space.alloc()
    assert pool.store(b, page("B"))
    assert pool.shrink(1) == 1
    assert space.get_slot(b) == slot    # the same number, in another file
    with pytest.raises(NoPageError):
        pool.read(a)
    space.free(a)
    assert pool.read(b) == page("B")
    assert len(file_b) == 1
    pool.close()
    file_a.close()
    file_b.close()


@pytest.mark.parametrize("exclusive", [True, False])
def test_read_after_a_newer_page_was_loaded(zc, tmp_path, exclusive):
    space = zc.VSwap()
    f = zc.SwapFile(str(tmp_path / "s"), 9 * PAGE)
    pool = zc.Zswap(space, f, max_pool_bytes=1 << 40, exclusive_loads=exclusive)
    e = space.alloc()
    assert pool.store(e, page("old"))
    assert pool.shrink(1) == 1
    assert pool.store(e, page("new"))
    assert pool.load(e) == page("new")
    if exclusive:
        with pytest.raises(NoPageError):
            pool.read(e)
    else:
        assert pool.read(e) == page("new")
    assert len(f) == 0
    pool.close()
    f.close()


def test_writeback_after_a_newer_store(zc, tmp_path):
    space = zc.VSwap()
    f = zc.SwapFile(str(tmp_path / "s"), 9 * PAGE)
    pool = zc.Zswap(space, f, max_pool_bytes=1 << 40)
    e = space.alloc()
    for i in range(5):
        assert pool.store(e, page(i))
        assert pool.shrink(1) == 1
        assert len(f) == 1              # one page per descriptor, ever
        assert pool.read(e) == page(i)
    pool.close()
    assert len(f) == 0
    f.close()
