"""Int arguments whose subclass operators lie.

Every size, count, shift, slot and shadow argument is converted to a plain
int (operator.index semantics, which runs none of the subclass's methods)
before any check, so a subclass cannot pass a check with one value and be
used with another.  Both cores give the answers they give for plain ints.
"""

import gc
import os
import sys

import pytest

from cores import core_names, load_zswap_core


class Liar(int):
    """Claims to be a power of two, in range, and not negative."""

    def __and__(self, other):
        return 0

    __rand__ = __and__

    def __lt__(self, other):
        return False

    def __le__(self, other):
        return True

    def __gt__(self, other):
        return False

    def __ge__(self, other):
        return True

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = int.__hash__

    def __index__(self):
        raise AssertionError("__index__ of an int subclass must not run")

    def __int__(self):
        raise AssertionError("__int__ of an int subclass must not run")


@pytest.fixture(params=core_names())
def zc(request):
    return load_zswap_core(request.param)


def same_error(call_liar, call_int):
    """Both calls raise the same exception type and message."""
    with pytest.raises(Exception) as liar:
        call_liar()
    with pytest.raises(Exception) as plain:
        call_int()
    assert type(liar.value) is type(plain.value)
    assert str(liar.value) == str(plain.value)


def test_alloc_nr_not_a_power_of_two(zc):
    space = zc.VSwap()
    folio = object()
    before = sys.getrefcount(folio)
    same_error(lambda: space.alloc(Liar(3), folio), lambda: space.alloc(3, folio))
    same_error(lambda: space.alloc(Liar(0)), lambda: space.alloc(0))
    same_error(lambda: space.alloc(Liar(1024)), lambda: space.alloc(1024))
    gc.collect()                # tracebacks of the errors hold frames
    assert sys.getrefcount(folio) == before
    assert len(space) == 0


def test_alloc_and_free_with_a_subclass_balance_references(zc):
    space = zc.VSwap()
    folio = object()
    before = sys.getrefcount(folio)
    e = space.alloc(Liar(4), folio)
    assert sys.getrefcount(folio) == before + 4
    space.free(e, Liar(4))
    assert sys.getrefcount(folio) == before
    es = space.alloc_many(Liar(3), Liar(2))
    assert len(es) == 3 and len(space) == 6
    space.free_many(es, Liar(2))
    assert len(space) == 0


@pytest.mark.parametrize("shift,clusters", [(12, 4), (0, 4), (3, 0), (3, 1 << 30)])
def test_space_geometry(zc, shift, clusters):
    same_error(lambda: zc.VSwap(Liar(shift), Liar(clusters)),
               lambda: zc.VSwap(shift, clusters))


def test_counts_slots_and_shadows(zc):
    space = zc.VSwap()
    e = space.alloc()
    same_error(lambda: space.alloc_many(Liar(-1)), lambda: space.alloc_many(-1))
    same_error(lambda: space.free(e, Liar(0)), lambda: space.free(e, 0))
    same_error(lambda: space.set_slot(e, Liar(-1)), lambda: space.set_slot(e, -1))
    same_error(lambda: space.set_slot(e, Liar(1 << 64)), lambda: space.set_slot(e, 1 << 64))
    folio = object()
    space.swap_cache_add_folio(e, folio)
    same_error(lambda: space.swap_cache_del_folio(e, folio, shadow=Liar(1 << 62)),
               lambda: space.swap_cache_del_folio(e, folio, shadow=1 << 62))
    assert space.set_slot(e, Liar(7)) == 0 and space.get_slot(e) == 7
    space.swap_cache_del_folio(e, folio, nr=Liar(1), shadow=Liar(5))
    assert space.swap_cache_get_shadow(e) == 5
    space.swap_cache_clear_shadow(e, Liar(1))
    assert space.swap_cache_get_shadow(e) is None
    space.free(e)


def test_swap_file_size(zc, tmp_path):
    path = str(tmp_path / "swap")
    same_error(lambda: zc.SwapFile(path, Liar(4097)), lambda: zc.SwapFile(path, 4097))
    same_error(lambda: zc.SwapFile(path, Liar(0)), lambda: zc.SwapFile(path, 0))
    assert not os.path.exists(path)
    f = zc.SwapFile(path, Liar(3 * 4096))
    assert f.nr_slots == 2
    same_error(lambda: f.free_slot(Liar(5)), lambda: f.free_slot(5))
    f.close()


def test_pool_settings(zc):
    space = zc.VSwap()
    same_error(lambda: zc.Zswap(space, max_pool_bytes=Liar(-5)),
               lambda: zc.Zswap(space, max_pool_bytes=-5))
    same_error(lambda: zc.Zswap(space, memory_bytes=Liar(-5)),
               lambda: zc.Zswap(space, memory_bytes=-5))
    pool = zc.Zswap(space, max_pool_bytes=Liar(1 << 20))
    assert pool.max_pool_bytes == 1 << 20
    same_error(lambda: setattr(pool, "max_pool_bytes", Liar(-1)),
               lambda: setattr(pool, "max_pool_bytes", -1))
    same_error(lambda: pool.shrink(Liar(-1)), lambda: pool.shrink(-1))
    same_error(lambda: pool.invalidate(space.alloc(), Liar(0)),
               lambda: pool.invalidate(space.alloc(), 0))
    assert pool.max_pool_bytes == 1 << 20
    pool.close()


class LyingFloat(float):
    def __lt__(self, other):
        return False

    def __le__(self, other):
        return True

    def __gt__(self, other):
        return False

    def __ge__(self, other):
        return True


def test_float_settings(zc):
    space = zc.VSwap()
    same_error(lambda: zc.Zswap(space, max_pool_percent=LyingFloat(150.0)),
               lambda: zc.Zswap(space, max_pool_percent=150.0))
    same_error(lambda: zc.Zswap(space, accept_threshold_percent=LyingFloat(0.0)),
               lambda: zc.Zswap(space, accept_threshold_percent=0.0))
    pool = zc.Zswap(space, max_pool_bytes=1 << 20)
    same_error(lambda: setattr(pool, "accept_threshold_percent", LyingFloat(101.0)),
               lambda: setattr(pool, "accept_threshold_percent", 101.0))
    assert pool.accept_threshold_percent == 90.0
    pool.close()
