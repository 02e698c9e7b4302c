"""The API contract every swap metadata design keeps (docs/designs.md),
run against every design of both cores: designs added later join here."""

import gc
import threading
from array import array

import pytest

from design_support import LOCK_FREE_LOADS, PHYSICAL, both_cores_params, design_params, make
from vswapfast.designs import design_class
from vswapfast.errors import InvalidEntryError, SwapCacheError, SwapFullError

STAT_KEYS = {"design", "nr_slots", "used", "metadata_bytes", "metadata_objects",
             "lock_acquisitions", "lockless_loads", "load_retries"}


@pytest.fixture(params=design_params())
def param(request):
    return request.param


@pytest.fixture
def d(param):
    design = make(param)
    yield design
    design.close()


def test_folio_alloc_swap(d, param):
    e = d.folio_alloc_swap(17, memcg=3)
    assert type(e) is int and e > 0
    if param[1] in PHYSICAL:
        assert 1 <= e < 4096
    assert d.swap_cache_get_folio(e) == 17
    assert d.swap_cache_get_shadow(e) is None
    assert d.swap_count(e) == 1
    assert d.zswap_entry_load(e) is None
    assert d.is_zero(e) is False
    assert len(d) == 1 and d.stats()["used"] == 1
    e2 = d.folio_alloc_swap(18)
    assert e2 != e and len(d) == 2


def test_swap_cache_and_shadow(d):
    e = d.folio_alloc_swap(5)
    with pytest.raises(SwapCacheError):
        d.swap_cache_add_folio(e, 6)          # a folio is already there
    with pytest.raises(SwapCacheError):
        d.swap_cache_del_folio(e, 6)          # not the cached folio
    assert d.swap_cache_get_folio(e) == 5
    assert d.swap_cache_del_folio(e, 5, shadow=1234) is None
    assert d.swap_cache_get_folio(e) is None
    assert d.swap_cache_get_shadow(e) == 1234
    with pytest.raises(SwapCacheError):
        d.swap_cache_del_folio(e, 5)          # gone already
    assert d.swap_cache_add_folio(e, 9) == 1234   # the shadow it replaces
    assert d.swap_cache_get_folio(e) == 9
    assert d.swap_cache_get_shadow(e) is None
    d.swap_cache_del_folio(e, 9)              # shadow 0 is a shadow
    assert d.swap_cache_get_shadow(e) == 0
    assert d.swap_cache_add_folio(e, 10) == 0
    d.swap_cache_del_folio(e, 10, (1 << 48) - 1)
    assert d.swap_cache_get_shadow(e) == (1 << 48) - 1


def test_zswap_entries(d):
    assert d.zswap_empty()
    e = d.folio_alloc_swap(5)
    assert d.zswap_entry_store(e, 100) is None
    assert not d.zswap_empty()
    assert d.zswap_entry_load(e) == 100
    assert d.zswap_entry_store(e, (1 << 48) - 1) == 100
    assert d.zswap_entry_load(e) == (1 << 48) - 1
    assert d.zswap_entry_erase(e) == (1 << 48) - 1
    assert d.zswap_entry_erase(e) is None
    assert d.zswap_entry_load(e) is None
    assert d.zswap_empty()


def test_zero_and_writeout(d):
    e = d.folio_alloc_swap(5)
    d.set_zero(e)
    assert d.is_zero(e) is True
    e2 = d.folio_alloc_swap(6)
    d.zswap_entry_store(e2, 7)
    slot = d.swap_writeout(e2)
    assert type(slot) is int and slot > 0
    assert d.zswap_entry_load(e2) is None       # the zswap entry is erased
    assert d.get_slot(e2) == slot
    assert d.is_zero(e2) is False


def test_counts_and_release(d):
    base = d.metadata_bytes()
    e = d.folio_alloc_swap(5, memcg=9)
    assert d.swap_duplicate(e) == 2
    for n in range(3, 200):                     # past SWAP_MAP_MAX
        assert d.swap_duplicate(e) == n
    assert d.swap_count(e) == 199
    d.zswap_entry_store(e, 44)
    d.swap_cache_del_folio(e, 5, shadow=3)
    for n in range(198, 0, -1):
        d.swap_free(e)
        assert d.swap_count(e) == n
    d.swap_free(e)                              # count zero: all released
    assert len(d) == 0
    assert d.zswap_empty()
    for call in (d.swap_count, d.zswap_entry_load, d.swap_cache_get_shadow,
                 d.swap_cache_get_folio, d.is_zero, d.swap_free, d.get_slot):
        with pytest.raises(InvalidEntryError):
            call(e)
    # Reusing the slots costs nothing more: nothing leaked.
    after_first = d.metadata_bytes()
    for _ in range(3):
        e = d.folio_alloc_swap(5)
        d.zswap_entry_store(e, 4)
        d.swap_cache_del_folio(e, 5, 1)
        d.swap_free(e)
    assert d.metadata_bytes() == after_first
    assert after_first >= base


def test_released_entry_is_fresh_when_reallocated(d):
    entries = [d.folio_alloc_swap(i + 1) for i in range(50)]
    for e in entries:
        d.zswap_entry_store(e, 9)
        d.set_zero(e)
        d.swap_cache_del_folio(e, entries.index(e) + 1, 77)
        d.swap_free(e)
    for i in range(50):
        e = d.folio_alloc_swap(1000 + i)
        assert d.zswap_entry_load(e) is None
        assert d.swap_cache_get_shadow(e) is None
        assert d.is_zero(e) is False
        assert d.swap_count(e) == 1


BAD_TYPES = ["1", 1.0, None, True, b"x"]


@pytest.mark.parametrize("bad", BAD_TYPES, ids=repr)
def test_bad_types(d, bad):
    e = d.folio_alloc_swap(5)
    for call in (d.swap_cache_get_folio, d.swap_cache_get_shadow, d.zswap_entry_load,
                 d.zswap_entry_erase, d.set_zero, d.is_zero, d.swap_writeout,
                 d.get_slot, d.swap_duplicate, d.swap_count, d.swap_free):
        with pytest.raises(TypeError, match="must be an int"):
            call(bad)
    with pytest.raises(TypeError, match="must be an int"):
        d.folio_alloc_swap(bad)
    with pytest.raises(TypeError, match="must be an int"):
        d.folio_alloc_swap(5, memcg=bad)
    with pytest.raises(TypeError, match="must be an int"):
        d.zswap_entry_store(e, bad)
    with pytest.raises(TypeError, match="must be an int"):
        d.swap_cache_add_folio(e, bad)
    with pytest.raises(TypeError, match="must be an int"):
        d.swap_cache_del_folio(e, 5, bad)
    assert len(d) == 1 and d.swap_count(e) == 1


def test_bad_values(d):
    e = d.folio_alloc_swap(5)
    for folio in (0, -1, 1 << 48):
        with pytest.raises(ValueError, match="folio must be in"):
            d.folio_alloc_swap(folio)
        with pytest.raises(ValueError, match="folio must be in"):
            d.swap_cache_del_folio(e, folio)
    for memcg in (-1, 65536):
        with pytest.raises(ValueError, match="memcg must be in"):
            d.folio_alloc_swap(1, memcg)
    for handle in (0, -1, 1 << 48):
        with pytest.raises(ValueError, match="handle must be in"):
            d.zswap_entry_store(e, handle)
    for shadow in (-1, 1 << 48):
        with pytest.raises(ValueError, match="shadow must be in"):
            d.swap_cache_del_folio(e, 5, shadow)
    d.folio_alloc_swap(1, 65535)
    assert len(d) == 2 and d.swap_cache_get_folio(e) == 5


def test_invalid_entries(d):
    e = d.folio_alloc_swap(5)
    bad = [0, -1, -(1 << 70), 1 << 64, 1 << 80]
    if e + 1 < 4096:
        bad.append(e + 1)                     # never allocated
    for x in bad:
        for call in (d.swap_cache_get_folio, d.swap_cache_get_shadow, d.zswap_entry_load,
                     d.zswap_entry_erase, d.set_zero, d.is_zero, d.swap_writeout,
                     d.get_slot, d.swap_duplicate, d.swap_count, d.swap_free):
            with pytest.raises(InvalidEntryError):
                call(x)
        with pytest.raises(InvalidEntryError):
            d.zswap_entry_store(x, 1)
        with pytest.raises(InvalidEntryError):
            d.swap_cache_add_folio(x, 1)
        with pytest.raises(InvalidEntryError):
            d.swap_cache_del_folio(x, 1)
    assert len(d) == 1 and d.zswap_empty()


def test_device_full(param):
    design = make(param, nr_slots=8)
    try:
        got = []
        with pytest.raises(SwapFullError):
            for _ in range(100):
                got.append(design.folio_alloc_swap(1))
        if param[1] in PHYSICAL:
            assert sorted(got) == list(range(1, 8))
        n = len(design)
        with pytest.raises(SwapFullError):
            design.swap_out_many(1)
        assert len(design) == n
        design.swap_free(got[0])
        with pytest.raises(SwapFullError):
            design.swap_out_many(2)             # nothing left half done
        assert len(design) == n - 1
        assert len(design.swap_out_many(1)) == 1
    finally:
        design.close()


def test_close(param):
    design = make(param)
    e = design.folio_alloc_swap(3)
    assert repr(design).startswith("<%s nr_slots=4096 used=1 bytes=" % type(design).__name__)
    assert repr(design).endswith("core=%s>" % param[0])
    design.close()
    design.close()
    repr(design)
    for call, args in ((design.swap_count, (e,)), (design.folio_alloc_swap, (1,)),
                       (design.zswap_entry_load, (e,)), (design.metadata_bytes, ()),
                       (design.stats, ()), (design.zswap_empty, ()), (len, (design,)),
                       (design.swap_out_many, (1,)),
                       (design.swap_free_many, (array("Q", [e]),))):
        with pytest.raises(ValueError):
            call(*args)
    with make(param) as d2:
        d2.folio_alloc_swap(1)
    with pytest.raises(ValueError):
        d2.swap_out_many(1)


def test_close_against_calls_in_flight(param):
    """close() on one thread while others run loops without the GIL: every
    call either completes or raises ValueError; nothing crashes."""
    design = make(param, nr_slots=1 << 16)
    entries = design.swap_out_many(20000)
    handles = array("Q", range(1, 20001))
    out = array("Q", bytes(8 * 20000))
    errors = []
    started = threading.Barrier(3)

    def worker():
        started.wait()
        try:
            for _ in range(50):
                design.zswap_entry_store_many(entries, handles)
                design.zswap_entry_load_many(entries, out)
        except ValueError:
            pass
        except BaseException as exc:      # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    started.wait()
    design.close()
    for t in threads:
        t.join()
    assert errors == []
    with pytest.raises(ValueError):
        design.zswap_entry_load(entries[0])


def test_stats(d, param):
    s = d.stats()
    assert STAT_KEYS <= set(s)
    assert s["design"] == param[1]
    assert s["nr_slots"] == 4096
    assert any(k.startswith("bytes_") for k in s)
    assert s["metadata_bytes"] == d.metadata_bytes()
    e = d.folio_alloc_swap(1)
    d.zswap_entry_store(e, 2)
    before = d.stats()
    assert d.zswap_entry_load(e) == 2
    assert d.swap_cache_get_folio(e) == 1
    assert d.swap_cache_get_shadow(e) is None
    after = d.stats()
    if param[1] in LOCK_FREE_LOADS:
        assert after["lock_acquisitions"] == before["lock_acquisitions"]
        assert after["lockless_loads"] == before["lockless_loads"] + 3
    d.zswap_entry_store(e, 3)
    assert d.stats()["lock_acquisitions"] > after["lock_acquisitions"]


@pytest.mark.parametrize("batch", [False, True])
def test_many_agree_with_single_calls(param, batch):
    a, b = make(param, 1 << 16), make(param, 1 << 16)
    try:
        ea = a.swap_out_many(3000, "disk")
        eb = array("Q", [b.folio_alloc_swap(e) for e in ea])
        for e in eb:
            b.swap_writeout(e)
            b.swap_cache_del_folio(e, e, e)
        assert list(ea) == list(eb)
        for e in ea:
            assert a.swap_cache_get_shadow(e) == b.swap_cache_get_shadow(e)
        part = array("Q", ea[::3])
        handles = array("Q", range(7, 7 + len(part)))
        assert a.zswap_entry_store_many(part, handles, batch=batch) == 0
        for e, h in zip(part, handles):
            assert b.zswap_entry_store(e, h) is None
        assert a.zswap_entry_store_many(part, handles, batch=batch) == len(part)
        out = array("Q", bytes(8 * len(ea)))
        assert a.zswap_entry_load_many(ea, out, batch=batch) == len(part)
        assert list(out) == [b.zswap_entry_load(e) or 0 for e in ea]
        evens = array("Q", ea[::2])
        n = sum(b.zswap_entry_erase(e) is not None for e in evens)
        assert a.zswap_entry_erase_many(evens, batch=batch) == n
        for e in ea:
            assert a.zswap_entry_load(e) == b.zswap_entry_load(e)
        assert a.metadata_bytes() == b.metadata_bytes()
        assert len(a) == len(b) == 3000
        a.swap_free_many(ea)
        for e in eb:
            b.swap_free(e)
        assert len(a) == len(b) == 0 and a.zswap_empty() and b.zswap_empty()
        assert a.metadata_bytes() == b.metadata_bytes()
    finally:
        a.close()
        b.close()


def test_swap_out_many_backings(d):
    z = d.swap_out_many(100, "zswap", memcg=4)
    k = d.swap_out_many(100, "disk")
    o = d.swap_out_many(100, "zero")
    assert len(set(z) | set(k) | set(o)) == 300 and len(d) == 300
    assert all(d.zswap_entry_load(e) for e in z)
    assert len({d.zswap_entry_load(e) for e in z}) == 100     # fresh handles
    assert all(d.zswap_entry_load(e) is None and not d.is_zero(e) for e in k)
    assert all(d.is_zero(e) for e in o)
    for e in list(z) + list(k) + list(o):
        assert d.swap_cache_get_folio(e) is None
        assert d.swap_cache_get_shadow(e) is not None
        assert d.swap_count(e) == 1
    assert d.swap_out_many(0) == array("Q")
    d.swap_free_many(z)
    d.swap_free_many(k)
    d.swap_free_many(o)
    assert len(d) == 0 and d.zswap_empty()


def test_many_argument_errors(d):
    e = d.folio_alloc_swap(1)
    good = array("Q", [e])
    with pytest.raises(TypeError, match="uint64"):
        d.zswap_entry_store_many([e], good)
    with pytest.raises(TypeError, match="uint64"):
        d.zswap_entry_load_many(array("l", [e]), good)
    with pytest.raises(TypeError, match="writable"):
        d.zswap_entry_load_many(good, memoryview(array("Q", [0])).toreadonly())
    with pytest.raises(ValueError, match="same length"):
        d.zswap_entry_store_many(good, array("Q", [1, 2]))
    with pytest.raises(ValueError, match="handles"):
        d.zswap_entry_store_many(good, array("Q", [0]))
    with pytest.raises(InvalidEntryError, match=r"entries\[1\]"):
        d.zswap_entry_store_many(array("Q", [e, 0]), array("Q", [1, 2]))
    assert d.zswap_entry_load(e) is None      # nothing done
    with pytest.raises(InvalidEntryError):
        d.swap_free_many(array("Q", [e, e + 1 if e + 1 < 4096 else 0]))
    assert d.swap_count(e) == 1
    with pytest.raises(ValueError, match="backing"):
        d.swap_out_many(1, "tape")
    with pytest.raises(TypeError):
        d.swap_out_many(1, 3)
    with pytest.raises(ValueError):
        d.swap_out_many(-1)
    assert len(d) == 1


@pytest.mark.parametrize("name", both_cores_params())
def test_cores_give_the_same_messages(name):
    designs = [design_class(name, core)(4096) for core in ("compiled", "pure")]
    try:
        msgs = []
        for d in designs:
            e = d.folio_alloc_swap(5)
            got = []
            for call in (lambda: d.swap_count(0), lambda: d.swap_count(-3),
                         lambda: d.swap_count(1 << 70), lambda: d.swap_count(4000),
                         lambda: d.swap_count("x"), lambda: d.folio_alloc_swap(0),
                         lambda: d.zswap_entry_store(e, 1 << 48),
                         lambda: d.swap_cache_add_folio(e, 3),
                         lambda: d.swap_cache_del_folio(e, 4),
                         lambda: d.folio_alloc_swap(1, 70000),
                         lambda: d.zswap_entry_store_many(array("Q", [e, 0]), array("Q", [1, 1])),
                         lambda: type(d)(0), lambda: type(d)(1.5)):
                try:
                    call()
                except Exception as exc:
                    got.append((type(exc), str(exc)))
                else:
                    got.append(None)
            msgs.append(got)
        assert msgs[0] == msgs[1]
        assert designs[0].stats().keys() == designs[1].stats().keys()
    finally:
        for d in designs:
            d.close()


def test_no_leak_across_instances(param):
    """Designs created and dropped without close() free their memory."""
    for _ in range(3):
        d = make(param, 1 << 15)
        d.swap_out_many(1000)
        del d
        gc.collect()


@pytest.mark.parametrize("name", both_cores_params())
def test_cores_count_the_same(name):
    """The same calls on both cores: the same results, bytes and counters."""
    results, stats = [], []
    for core in ("compiled", "pure"):
        d = design_class(name, core)(3 * 16384)
        try:
            got = []
            es = d.swap_out_many(20000, "zswap")
            got.append(list(es[:10]))
            e = d.folio_alloc_swap(7, 5)
            for _ in range(70):
                d.swap_duplicate(e)
            got.append(d.swap_count(e))
            got.append(d.zswap_entry_store(e, 3))
            got.append(d.zswap_entry_load(e))
            part = array("Q", es[::5])
            got.append(d.zswap_entry_erase_many(part, batch=True))
            got.append(d.zswap_entry_store_many(part, array("Q", range(1, len(part) + 1))))
            d.swap_free_many(array("Q", es[::2]))
            got.append(d.metadata_bytes())
            s = d.stats()
            s.pop("core", None)
            stats.append(s)
            results.append(got)
        finally:
            d.close()
    assert results[0] == results[1]
    assert stats[0] == stats[1]


def test_argument_that_closes_the_design(param):
    """An argument whose __index__ closes the design: the call finds it
    closed (ValueError), nothing crashes, nothing is left half done."""
    design = make(param)
    e = design.folio_alloc_swap(1)

    class Closer:
        def __init__(self, value):
            self.value = value

        def __index__(self):
            design.close()
            return self.value

    with pytest.raises(ValueError, match="closed"):
        design.zswap_entry_store(e, Closer(5))
    for call, args in ((design.swap_count, (Closer(e),)),
                       (design.folio_alloc_swap, (Closer(3),)),
                       (design.swap_out_many, (Closer(2),))):
        with pytest.raises(ValueError, match="closed"):
            call(*args)
