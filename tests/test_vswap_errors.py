"""Bad input to every method: the exception type, its message, the order in
which arguments are checked, and that a call that raises changes nothing."""

import gc
import re
import sys
from fractions import Fraction

import pytest

from vswapfast.errors import (InvalidEntryError, SwapCacheError,
                              SwapFullError, VSwapError, bad_entry_message)
from vswap_support import (BAD_ENTRY_TYPES, Index, Token, assert_same_snapshot, numpy,
                           snapshot)



def refs(obj):
    """sys.getrefcount after collecting cycles.

    A caught exception's traceback can keep the frames of a failed call (and
    their arguments) alive in a cycle until the collector runs.
    """
    gc.collect()
    return sys.getrefcount(obj)


def assert_fails(space, exc_type, fn, match=None):
    """Call ``fn``; it must raise ``exc_type`` and leave ``space`` as it was."""
    before = snapshot(space)
    with pytest.raises(exc_type, match=match) as info:
        fn()
    assert_same_snapshot(before, snapshot(space))
    return info.value


def assert_bad_entry(space, fn, entry, why):
    exc = assert_fails(space, InvalidEntryError, fn)
    assert type(exc) is InvalidEntryError
    assert isinstance(exc, LookupError) and isinstance(exc, VSwapError)
    assert str(exc) == bad_entry_message(entry, space.cluster_shift,
                                         space.max_clusters, why)


@pytest.fixture
def pop(small_space):
    """A small space in a known, varied state.

    cluster 1 (order 0): 8 zswap entry, 9 folio h, 10 freed, 11 slot 5, 12
        plain; 13..15 never allocated
    cluster 2 (order 1): 16, 17 folio f (16 also a zswap entry), 18, 19 plain
    cluster 3 (order 2): 24, 25, 27 folio g, 26 shadow 77, 27 slot 2**64-1
    cluster 4: none; entries from 40 on are beyond the map
    """
    s = small_space
    objs = {k: Token(k) for k in ("f", "g", "h", "z8", "z16")}
    assert [s.alloc() for _ in range(5)] == [8, 9, 10, 11, 12]
    s.free(10)
    assert s.alloc(2, folio=objs["f"]) == 16
    assert s.alloc(2) == 18
    assert s.alloc(4, folio=objs["g"]) == 24
    s.zswap_entry_store(8, objs["z8"])
    s.zswap_entry_store(16, objs["z16"])
    s.swap_cache_add_folio(9, objs["h"])
    s.swap_cache_del_folio(26, objs["g"], shadow=77)
    s.set_slot(11, 5)
    s.set_slot(27, 2 ** 64 - 1)
    return s, objs


# Every method that takes an entry, called with otherwise valid arguments.
ENTRY_METHODS = {
    "free": lambda s, e: s.free(e),
    "zswap_entry_store": lambda s, e: s.zswap_entry_store(e, Token()),
    "zswap_entry_load": lambda s, e: s.zswap_entry_load(e),
    "zswap_entry_erase": lambda s, e: s.zswap_entry_erase(e),
    "swap_cache_get_folio": lambda s, e: s.swap_cache_get_folio(e),
    "swap_cache_add_folio": lambda s, e: s.swap_cache_add_folio(e, Token()),
    "swap_cache_del_folio": lambda s, e: s.swap_cache_del_folio(e, Token()),
    "swap_cache_replace_folio":
        lambda s, e: s.swap_cache_replace_folio(e, Token(), Token()),
    "swap_cache_get_shadow": lambda s, e: s.swap_cache_get_shadow(e),
    "swap_cache_clear_shadow": lambda s, e: s.swap_cache_clear_shadow(e),
    "get_slot": lambda s, e: s.get_slot(e),
    "set_slot": lambda s, e: s.set_slot(e, 1),
}

# The methods that take a range (entry, nr).
RANGE_METHODS = {
    "free": lambda s, e, nr: s.free(e, nr),
    "swap_cache_add_folio": lambda s, e, nr: s.swap_cache_add_folio(e, Token(), nr),
    "swap_cache_del_folio": lambda s, e, nr: s.swap_cache_del_folio(e, Token(), nr),
    "swap_cache_replace_folio":
        lambda s, e, nr: s.swap_cache_replace_folio(e, Token(), Token(), nr),
    "swap_cache_clear_shadow": lambda s, e, nr: s.swap_cache_clear_shadow(e, nr),
}


BAD_ENTRY_VALUES = [
    (0, "zero"),
    (-1, "negative"),
    (-8, "negative"),
    (-2 ** 70, "negative"),
    (1, "free"),            # cluster 0 never exists
    (7, "free"),
    (10, "free"),           # freed
    (13, "free"),           # never allocated, in a live cluster
    (15, "free"),
    (20, "free"),
    (28, "free"),
    (32, "free"),           # cluster 4 does not exist
    (39, "free"),
    (40, "range"),          # cluster 5 > max_clusters
    (47, "range"),
    (2 ** 31, "range"),
    (2 ** 63 - 1, "range"),
    (2 ** 63, "range"),
    (2 ** 64 - 1, "range"),
    (2 ** 64, "range"),
    (2 ** 64 + 8, "range"),
    (2 ** 200, "range"),
]


# --------------------------------------------------------------------------
# entries


@pytest.mark.parametrize("method", sorted(ENTRY_METHODS))
@pytest.mark.parametrize("bad", BAD_ENTRY_TYPES, ids=lambda v: type(v).__name__)
def test_entry_type(pop, method, bad):
    s, _ = pop
    fn = ENTRY_METHODS[method]
    exc = assert_fails(s, TypeError, lambda: fn(s, bad))
    assert str(exc) == "swap entry must be an int, not %s" % type(bad).__name__


@pytest.mark.parametrize("method", sorted(ENTRY_METHODS))
@pytest.mark.parametrize("entry,why", BAD_ENTRY_VALUES,
                         ids=["%s-%s" % (hex(e), w) for e, w in BAD_ENTRY_VALUES])
def test_entry_value(pop, method, entry, why):
    s, _ = pop
    fn = ENTRY_METHODS[method]
    assert_bad_entry(s, lambda: fn(s, entry), entry, why)


INDEX_CASES = [
    (Index, 0, "zero"),
    (Index, -3, "negative"),
    (Index, 13, "free"),
    (Index, 2 ** 70, "range"),
]
if numpy is not None:
    INDEX_CASES += [
        (numpy.int64, 0, "zero"),
        (numpy.int64, -1, "negative"),
        (numpy.int64, 10, "free"),
        (numpy.int64, 2 ** 63 - 1, "range"),
        (numpy.uint64, 2 ** 64 - 1, "range"),
        (numpy.int8, -128, "negative"),
    ]


@pytest.mark.parametrize("method", sorted(ENTRY_METHODS))
@pytest.mark.parametrize("make,entry,why", INDEX_CASES,
                         ids=lambda v: getattr(v, "__name__", repr(v)))
def test_index_entry_value(pop, method, make, entry, why):
    s, _ = pop
    fn = ENTRY_METHODS[method]
    assert_bad_entry(s, lambda: fn(s, make(entry)), entry, why)


@pytest.mark.parametrize("method", sorted(ENTRY_METHODS))
def test_entry_of_a_released_cluster(small_space, method):
    s = small_space
    e = s.alloc(8)
    s.alloc(8)                  # cluster 1 full: dropped from the cache
    keep = s.alloc(2)
    s.free(e, 8)                # empty, cached by no thread: released
    assert s.nr_clusters == 2
    for x in (e, e + 3, e + 7):
        assert_bad_entry(s, lambda: ENTRY_METHODS[method](s, x), x, "free")
    assert keep in s


@pytest.mark.parametrize("method", sorted(ENTRY_METHODS))
def test_entry_of_an_empty_space(small_space, method):
    s = small_space
    assert_bad_entry(s, lambda: ENTRY_METHODS[method](s, 8), 8, "free")
    assert s.nr_clusters == 0


@pytest.mark.parametrize("method", sorted(ENTRY_METHODS))
def test_bad_entry_default_geometry(space, method):
    s = space
    s.alloc()
    fn = ENTRY_METHODS[method]
    assert_bad_entry(s, lambda: fn(s, 513), 513, "free")
    assert_bad_entry(s, lambda: fn(s, 511), 511, "free")
    beyond = (2 ** 20 + 1) << 9
    assert_bad_entry(s, lambda: fn(s, beyond), beyond, "range")
    last = (2 ** 20 << 9) | 511
    assert_bad_entry(s, lambda: fn(s, last), last, "free")


def test_free_twice(pop):
    s, _ = pop
    s.free(12)
    assert_bad_entry(s, lambda: s.free(12), 12, "free")


# --------------------------------------------------------------------------
# nr and ranges


@pytest.mark.parametrize("method", sorted(RANGE_METHODS))
@pytest.mark.parametrize("nr", [1.0, 2.0, True, False, None, "1", b"1", [1]],
                         ids=lambda v: type(v).__name__)
def test_nr_type(pop, method, nr):
    s, _ = pop
    fn = RANGE_METHODS[method]
    assert_fails(s, TypeError, lambda: fn(s, 16, nr),
                 match=r"^nr must be an int, not %s$" % type(nr).__name__)


@pytest.mark.parametrize("method", sorted(RANGE_METHODS))
@pytest.mark.parametrize("nr", [0, -1, -2, -2 ** 70])
def test_nr_value(pop, method, nr):
    s, _ = pop
    fn = RANGE_METHODS[method]
    assert_fails(s, ValueError, lambda: fn(s, 16, nr),
                 match=r"^nr must be at least 1, not %d$" % nr)


RANGE_CASES = [
    # entry, nr, (exception, entry named or message)
    (12, 2, ("free", 13)),
    (8, 4, ("free", 10)),
    (9, 7, ("free", 10)),
    (10, 3, ("free", 10)),
    (18, 4, ("free", 20)),
    (24, 8, ("free", 28)),
    (26, 6, ("free", 28)),
    (15, 2, ("cross", None)),
    (8, 9, ("cross", None)),
    (16, 2 ** 70, ("cross", None)),
    (13, 2 ** 64, ("cross", None)),     # crossing is checked before holes
    (31, 2, ("cross", None)),
    (33, 8, ("cross", None)),           # cluster 4 does not exist
    (0, 2, ("zero", 0)),                # the entry is checked first
    (0, 2 ** 70, ("zero", 0)),
    (-1, 9, ("negative", -1)),
    (40, 9, ("range", 40)),
    (2 ** 64, 2, ("range", 2 ** 64)),
    (7, 2, ("cross", None)),            # cluster 0: crosses before "free"
    (6, 2, ("free", 6)),
]


@pytest.mark.parametrize("method", sorted(RANGE_METHODS))
@pytest.mark.parametrize("entry,nr,expect", RANGE_CASES,
                         ids=["%#x+%d" % (e, min(n, 99)) for e, n, _ in RANGE_CASES])
def test_bad_range(pop, method, entry, nr, expect):
    s, _ = pop
    fn = RANGE_METHODS[method]
    kind, named = expect
    if kind == "cross":
        msg = "range [%#x, %#x) crosses a cluster boundary (cluster size 8)" % (
            entry, entry + nr)
        exc = assert_fails(s, ValueError, lambda: fn(s, entry, nr))
        assert str(exc) == msg
    else:
        assert_bad_entry(s, lambda: fn(s, entry, nr), named, kind)


def test_free_of_a_partly_allocated_range_frees_nothing(small_space):
    s = small_space
    a = [s.alloc() for _ in range(3)]
    z = Token()
    s.zswap_entry_store(a[2], z)
    s.free(a[1])
    assert_bad_entry(s, lambda: s.free(a[0], 3), a[1], "free")
    assert a[0] in s and a[2] in s
    assert s.zswap_entry_load(a[2]) is z
    assert_bad_entry(s, lambda: s.free(a[0], 4), a[1], "free")


def test_crossing_range_default_geometry(space):
    e = space.alloc(512)
    exc = assert_fails(space, ValueError, lambda: space.free(e + 500, 13))
    assert str(exc) == ("range [%#x, %#x) crosses a cluster boundary "
                        "(cluster size 512)" % (e + 500, e + 513))
    space.free(e + 500, 12)
    assert len(space) == 500


# --------------------------------------------------------------------------
# alloc


@pytest.mark.parametrize("nr", [1.0, 4.0, True, False, None, "1", [1]],
                         ids=lambda v: type(v).__name__)
def test_alloc_nr_type(pop, nr):
    s, _ = pop
    assert_fails(s, TypeError, lambda: s.alloc(nr),
                 match=r"^nr must be an int, not %s$" % type(nr).__name__)


@pytest.mark.parametrize("nr", [3, 5, 6, 7, 9, 12, 16, 32, 1024, 2 ** 64,
                                2 ** 70 + 1, 2 ** 70])
def test_alloc_nr_not_a_power_of_two_up_to_cluster_size(pop, nr):
    s, _ = pop
    assert_fails(s, ValueError, lambda: s.alloc(nr),
                 match=r"^nr must be a power of two from 1 to 8, not %d$" % nr)


@pytest.mark.parametrize("nr", [0, -1, -2, -8, -2 ** 70])
def test_alloc_nr_not_positive(pop, nr):
    s, _ = pop
    assert_fails(s, ValueError, lambda: s.alloc(nr), match=r"^nr must be ")


def test_alloc_nr_default_geometry(space):
    assert_fails(space, ValueError, lambda: space.alloc(1024),
                 match=r"^nr must be a power of two from 1 to 512, not 1024$")
    assert_fails(space, ValueError, lambda: space.alloc(513),
                 match=r"^nr must be a power of two from 1 to 512, not 513$")
    assert space.alloc(512) == 512


def test_alloc_swap_full_changes_nothing(pop):
    s, _ = pop
    s.alloc(8)                      # cluster 4: no id left
    # The first try finds this thread's cached cluster of order 3 full and
    # drops it from the cache, as folio_alloc_swap() does, before it fails.
    with pytest.raises(SwapFullError):
        s.alloc(8)
    f = Token()
    base = refs(f)
    assert_fails(s, SwapFullError, lambda: s.alloc(8, folio=f),
                 match=r"^no cluster id left: all 4 clusters are in use$")
    assert refs(f) == base
    # cluster 1 (order 0) still has room
    assert s.alloc(1, folio=f) == 10


def test_failed_alloc_keeps_no_reference(pop):
    s, _ = pop
    f = Token()
    base = refs(f)
    for nr in (3, 0, 16):
        assert_fails(s, ValueError, lambda: s.alloc(nr, folio=f))
    assert_fails(s, TypeError, lambda: s.alloc(1.0, folio=f))
    assert refs(f) == base


# --------------------------------------------------------------------------
# slots


@pytest.mark.parametrize("slot", [1.0, True, False, None, "1", b"", [1],
                                  Fraction(1)], ids=lambda v: type(v).__name__)
def test_slot_type(pop, slot):
    s, _ = pop
    assert_fails(s, TypeError, lambda: s.set_slot(11, slot),
                 match=r"^slot must be an int, not %s$" % type(slot).__name__)


@pytest.mark.parametrize("slot", [-1, -2 ** 63, -2 ** 64, -2 ** 70, 2 ** 64,
                                  2 ** 64 + 1, 2 ** 100])
def test_slot_value(pop, slot):
    s, _ = pop
    assert_fails(s, ValueError, lambda: s.set_slot(11, slot),
                 match=r"^slot must be in \[0, 2\*\*64\), not %d$" % slot)


def test_slot_checked_before_entry(pop):
    s, _ = pop
    assert_fails(s, ValueError, lambda: s.set_slot(0, -1), match="^slot ")
    assert_fails(s, ValueError, lambda: s.set_slot(13, 2 ** 64), match="^slot ")
    assert_fails(s, TypeError, lambda: s.set_slot(0, "1"), match="^slot ")
    assert_fails(s, TypeError, lambda: s.set_slot(-5, None), match="^slot ")
    assert_fails(s, TypeError, lambda: s.set_slot("x", -1), match="^swap entry")
    assert_fails(s, TypeError, lambda: s.set_slot(None, 1), match="^swap entry")


# --------------------------------------------------------------------------
# shadows


@pytest.mark.parametrize("shadow", [1.0, True, False, "1", b"", [1], Token()],
                         ids=lambda v: type(v).__name__)
def test_shadow_type(pop, shadow):
    s, objs = pop
    assert_fails(s, TypeError,
                 lambda: s.swap_cache_del_folio(9, objs["h"], shadow=shadow),
                 match=r"^shadow must be an int or None, not %s$"
                 % type(shadow).__name__)


@pytest.mark.parametrize("shadow", [-1, -2 ** 62, 2 ** 62, 2 ** 62 + 1,
                                    2 ** 63, 2 ** 64, 2 ** 100])
def test_shadow_value(pop, shadow):
    s, objs = pop
    assert_fails(s, ValueError,
                 lambda: s.swap_cache_del_folio(9, objs["h"], shadow=shadow),
                 match=r"^shadow must be in \[0, 2\*\*62\), not %d$" % shadow)


def test_shadow_checked_before_entry_and_state(pop):
    s, objs = pop
    # bad entry, bad shadow value: the value comes first
    assert_fails(s, ValueError,
                 lambda: s.swap_cache_del_folio(0, objs["h"], shadow=-1),
                 match="^shadow ")
    # wrong folio (a state error) and a bad shadow: the value comes first
    assert_fails(s, ValueError,
                 lambda: s.swap_cache_del_folio(9, Token(), shadow=2 ** 62),
                 match="^shadow ")
    # bad nr value and bad shadow type: types come first
    assert_fails(s, TypeError,
                 lambda: s.swap_cache_del_folio(9, objs["h"], 0, "x"),
                 match="^shadow ")


# --------------------------------------------------------------------------
# None where an object is needed


def test_none_zentry(pop):
    s, _ = pop
    for e in (8, 12, 0, 13):
        assert_fails(s, TypeError, lambda: s.zswap_entry_store(e, None),
                     match=r"^zentry must not be None; use zswap_entry_erase$")
    assert_fails(s, TypeError, lambda: s.zswap_entry_store("x", None))


def test_none_folio(pop):
    s, objs = pop
    for e in (12, 9, 0, 13):
        assert_fails(s, TypeError, lambda: s.swap_cache_add_folio(e, None),
                     match=r"^folio must not be None$")
        assert_fails(s, TypeError, lambda: s.swap_cache_del_folio(e, None),
                     match=r"^folio must not be None$")
        # the contract names zentry, folio and new, not old: a None old is
        # refused either as a type error or because no descriptor holds it
        assert_fails(s, (TypeError, SwapCacheError, InvalidEntryError),
                     lambda: s.swap_cache_replace_folio(e, None, Token()))
        assert_fails(s, TypeError,
                     lambda: s.swap_cache_replace_folio(e, objs["h"], None),
                     match=r"^new must not be None$")
    # types first: a bad nr value does not hide the None
    assert_fails(s, TypeError, lambda: s.swap_cache_add_folio(16, None, 0),
                 match=r"^folio must not be None$")
    assert_fails(s, TypeError,
                 lambda: s.swap_cache_replace_folio(16, objs["f"], None, -1),
                 match=r"^new must not be None$")


# --------------------------------------------------------------------------
# the order of the checks


def test_types_before_values(pop):
    s, _ = pop
    assert_fails(s, TypeError, lambda: s.free("x", 0), match="^swap entry")
    assert_fails(s, TypeError, lambda: s.free(0, 1.0), match="^nr ")
    assert_fails(s, TypeError, lambda: s.free(-1, None), match="^nr ")
    assert_fails(s, TypeError, lambda: s.swap_cache_clear_shadow(1.5, -3),
                 match="^swap entry")
    assert_fails(s, TypeError, lambda: s.swap_cache_add_folio(None, None, 0))


def test_values_before_entry(pop):
    s, _ = pop
    assert_fails(s, ValueError, lambda: s.free(0, 0), match="^nr ")
    assert_fails(s, ValueError, lambda: s.free(-5, -1), match="^nr ")
    assert_fails(s, ValueError, lambda: s.free(2 ** 80, 0), match="^nr ")
    assert_fails(s, ValueError,
                 lambda: s.swap_cache_add_folio(13, Token(), 0), match="^nr ")


def test_entry_before_range(pop):
    s, _ = pop
    assert_bad_entry(s, lambda: s.free(0, 100), 0, "zero")
    assert_bad_entry(s, lambda: s.free(48, 100), 48, "range")
    assert_bad_entry(s, lambda: s.swap_cache_clear_shadow(-7, 100), -7,
                     "negative")


def test_range_before_holes(pop):
    s, _ = pop
    exc = assert_fails(s, ValueError, lambda: s.free(14, 3))
    assert "crosses a cluster boundary" in str(exc)


def test_holes_before_state(pop):
    s, objs = pop
    # 9 holds a folio (a state error for add), 10 is free
    assert_bad_entry(s, lambda: s.swap_cache_add_folio(8, Token(), 4), 10,
                     "free")
    # 16, 17 hold f, 18, 19 hold nothing, 20 was never allocated
    assert_bad_entry(s, lambda: s.swap_cache_del_folio(16, objs["f"], 8), 20,
                     "free")
    assert_bad_entry(
        s, lambda: s.swap_cache_replace_folio(18, Token(), Token(), 4), 20,
        "free")


# --------------------------------------------------------------------------
# swap-cache state


def test_add_where_a_folio_is_cached(pop):
    s, objs = pop
    f = Token()
    base = refs(f)
    assert_fails(s, SwapCacheError, lambda: s.swap_cache_add_folio(9, f),
                 match=r"^swap entry 0x9 already has a folio in the swap "
                       r"cache$")
    assert_fails(s, SwapCacheError, lambda: s.swap_cache_add_folio(16, f, 2),
                 match=r"already has a folio in the swap cache$")
    assert_fails(s, SwapCacheError, lambda: s.swap_cache_add_folio(24, f, 4))
    # only the last descriptor of the range holds a folio (9 is h)
    assert_fails(s, SwapCacheError, lambda: s.swap_cache_add_folio(8, f, 2))
    # 26 holds a shadow only, but 27 holds g
    assert_fails(s, SwapCacheError, lambda: s.swap_cache_add_folio(26, f, 2))
    # the same folio again
    assert_fails(s, SwapCacheError,
                 lambda: s.swap_cache_add_folio(16, objs["f"]))
    assert refs(f) == base
    assert s.swap_cache_get_shadow(26) == 77


def test_add_conflict_names_the_entry(small_space):
    s = small_space
    e = s.alloc(4)
    s.swap_cache_add_folio(e + 2, Token())
    exc = assert_fails(s, SwapCacheError,
                       lambda: s.swap_cache_add_folio(e + 2, Token()))
    assert str(exc) == ("swap entry %#x already has a folio in the swap cache"
                        % (e + 2))
    assert not isinstance(exc, LookupError)
    assert isinstance(exc, VSwapError)


def test_del_of_a_folio_not_held(pop):
    s, objs = pop
    msg = r"does not hold that folio in the swap cache$"
    # wrong folio
    assert_fails(s, SwapCacheError, lambda: s.swap_cache_del_folio(9, Token()),
                 match=r"^swap entry 0x9 does not hold that folio in the swap "
                       r"cache$")
    # equal but not the same object
    assert_fails(s, SwapCacheError,
                 lambda: s.swap_cache_del_folio(16, Token("f")), match=msg)
    # no folio at all
    assert_fails(s, SwapCacheError,
                 lambda: s.swap_cache_del_folio(12, objs["h"]), match=msg)
    # a shadow
    assert_fails(s, SwapCacheError,
                 lambda: s.swap_cache_del_folio(26, objs["g"]), match=msg)
    assert_fails(s, SwapCacheError,
                 lambda: s.swap_cache_del_folio(26, objs["g"], shadow=5),
                 match=msg)
    # the range is only partly that folio: 26 holds a shadow
    assert_fails(s, SwapCacheError,
                 lambda: s.swap_cache_del_folio(24, objs["g"], 4, 9), match=msg)
    # 16, 17 hold f but 18, 19 do not
    assert_fails(s, SwapCacheError,
                 lambda: s.swap_cache_del_folio(16, objs["f"], 4), match=msg)
    # 18, 19 hold nothing
    assert_fails(s, SwapCacheError,
                 lambda: s.swap_cache_del_folio(18, objs["f"], 2), match=msg)


def test_del_conflict_names_the_entry(small_space):
    s = small_space
    e = s.alloc()
    exc = assert_fails(s, SwapCacheError,
                       lambda: s.swap_cache_del_folio(e, Token()))
    assert str(exc) == ("swap entry %#x does not hold that folio in the swap "
                        "cache" % e)


def test_replace_of_a_folio_not_held(pop):
    s, objs = pop
    new = Token()
    base = refs(new)
    msg = r"does not hold that folio in the swap cache$"
    assert_fails(s, SwapCacheError,
                 lambda: s.swap_cache_replace_folio(9, objs["f"], new),
                 match=msg)
    assert_fails(s, SwapCacheError,
                 lambda: s.swap_cache_replace_folio(9, Token("h"), new),
                 match=msg)
    assert_fails(s, SwapCacheError,
                 lambda: s.swap_cache_replace_folio(12, objs["h"], new),
                 match=msg)
    assert_fails(s, SwapCacheError,
                 lambda: s.swap_cache_replace_folio(24, objs["g"], new, 4),
                 match=msg)
    assert_fails(s, SwapCacheError,
                 lambda: s.swap_cache_replace_folio(26, objs["g"], new),
                 match=msg)
    assert_fails(s, SwapCacheError,
                 lambda: s.swap_cache_replace_folio(16, objs["f"], new, 4),
                 match=msg)
    assert refs(new) == base


def test_swap_cache_errors_keep_no_reference(pop):
    s, objs = pop
    f = Token()
    base = refs(f)
    for _ in range(3):
        with pytest.raises(SwapCacheError):
            s.swap_cache_add_folio(24, f, 4)
        with pytest.raises(SwapCacheError):
            s.swap_cache_del_folio(24, f, 4)
        with pytest.raises(SwapCacheError):
            s.swap_cache_replace_folio(24, f, Token(), 4)
        with pytest.raises(InvalidEntryError):
            s.swap_cache_add_folio(13, f)
        with pytest.raises(InvalidEntryError):
            s.zswap_entry_store(13, f)
    assert refs(f) == base


# --------------------------------------------------------------------------
# cluster_info and the constructor


@pytest.mark.parametrize("cid", [0, -1, 4, 5, 2 ** 24, 2 ** 64, 2 ** 70])
def test_cluster_info_missing(pop, cid):
    s, _ = pop
    assert_fails(s, KeyError, lambda: s.cluster_info(cid))


def test_cluster_info_of_a_released_cluster(small_space):
    s = small_space
    e = s.alloc(8)
    s.alloc(8)                  # cluster 1 full: dropped from the cache
    s.free(e, 8)
    assert_fails(s, KeyError, lambda: s.cluster_info(1))


@pytest.mark.parametrize("shift", [0, -1, 10, 16, 64, 2 ** 70])
def test_bad_cluster_shift(core, shift):
    with pytest.raises(ValueError,
                       match=r"^cluster_shift must be in \[1, 9\], not %d$"
                       % shift):
        core.VSwap(cluster_shift=shift)


@pytest.mark.parametrize("maxc", [0, -1, 2 ** 24 + 1, 2 ** 32, 2 ** 64,
                                  2 ** 70])
def test_bad_max_clusters(core, maxc):
    with pytest.raises(ValueError,
                       match=r"^max_clusters must be in \[1, 16777216\], "
                             r"not %d$" % maxc):
        core.VSwap(max_clusters=maxc)


def test_exception_hierarchy():
    assert issubclass(InvalidEntryError, LookupError)
    assert not issubclass(InvalidEntryError, KeyError)
    assert issubclass(SwapFullError, MemoryError)
    for cls in (InvalidEntryError, SwapFullError, SwapCacheError):
        assert issubclass(cls, VSwapError)


def test_in_never_raises(pop):
    s, _ = pop
    before = snapshot(s)
    for x in BAD_ENTRY_TYPES + [e for e, _ in BAD_ENTRY_VALUES] + [
            Index(-1), Index(2 ** 70), Index(10)]:
        assert (x in s) is False
    assert_same_snapshot(before, snapshot(s))
    assert re.match(r"^<VSwap ", repr(s))
