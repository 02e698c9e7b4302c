"""The backing swap file (docs/semantics.md, "Swap file"): sizes, the slot
allocator, page I/O with every kind of buffer, errors, and that the data is
really in the file at ``slot * 4096``."""

import os

import numpy as np
import pytest

from vswapfast.errors import SwapFileFullError, VSwapError
from zswap_support import PAGE_SIZE, seeded, text_pages

PAGE = 4096


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "swap")


@pytest.fixture
def sf(zcore, path):
    """A swap file of 8 slots."""
    f = zcore.SwapFile(path, 9 * PAGE)
    yield f
    f.close()


def pattern(n):
    """A page no other pattern equals."""
    return seeded(n).randbytes(PAGE)


def on_disk(path, slot):
    with open(path, "rb") as f:
        f.seek(slot * PAGE)
        return f.read(PAGE)


def state(sf):
    return (sf.stats(), len(sf), repr(sf), sf.closed)


def assert_fails(sf, exc_type, fn, match=None):
    """``fn`` raises ``exc_type`` and leaves the allocator as it was."""
    before = state(sf)
    with pytest.raises(exc_type, match=match) as info:
        fn()
    assert state(sf) == before
    return info.value


def not_allocated(slot, nr_slots):
    return "swap slot %d is not allocated (the file has slots 1..%d)" % (slot, nr_slots)


# --------------------------------------------------------------------------
# creation and geometry


def test_page_size(zcore):
    assert zcore.PAGE_SIZE == PAGE == PAGE_SIZE


@pytest.mark.parametrize("pages", [2, 3, 9, 64, 1000])
def test_sizes(zcore, path, pages):
    with zcore.SwapFile(path, pages * PAGE) as f:
        assert f.size == pages * PAGE
        assert f.nr_slots == pages - 1
        assert len(f) == 0
        assert f.stats() == {"slots": pages - 1, "used": 0, "free": pages - 1}
        assert not f.closed
        assert f.path == path
        assert os.path.getsize(path) == pages * PAGE


def test_pathlike(zcore, tmp_path):
    p = tmp_path / "swap.pathlike"
    with zcore.SwapFile(p, 2 * PAGE) as f:
        assert f.path == str(p)
        assert isinstance(f.path, str)
    assert os.path.getsize(p) == 2 * PAGE


def test_truncates_an_existing_file(zcore, path):
    with open(path, "wb") as f:
        f.write(b"\xaa" * (20 * PAGE + 17))
    with zcore.SwapFile(path, 4 * PAGE) as f:
        assert f.size == 4 * PAGE
        assert os.path.getsize(path) == 4 * PAGE
        # Truncation to zero first: no old data survives.
        with open(path, "rb") as raw:
            assert raw.read() == bytes(4 * PAGE)


def test_grows_a_short_existing_file(zcore, path):
    with open(path, "wb") as f:
        f.write(b"x" * 100)
    with zcore.SwapFile(path, 3 * PAGE) as f:
        assert os.path.getsize(path) == 3 * PAGE
        assert f.nr_slots == 2


@pytest.mark.parametrize("size", [0, PAGE, PAGE + 1, 2 * PAGE - 1, 2 * PAGE + 1,
                                  3 * PAGE - 2048, -PAGE, -2 * PAGE, 10 ** 6])
def test_bad_size_value(zcore, path, size):
    with pytest.raises(ValueError):
        zcore.SwapFile(path, size)


@pytest.mark.parametrize("size", [8192.0, True, False, "8192", None, b"8192",
                                  np.float64(8192)],
                         ids=lambda v: type(v).__name__)
def test_bad_size_type(zcore, path, size):
    with pytest.raises(TypeError):
        zcore.SwapFile(path, size)


def test_size_int_subclass_and_numpy_int(zcore, tmp_path):
    class Size(int):
        pass

    with zcore.SwapFile(tmp_path / "a", Size(3 * PAGE)) as f:
        assert f.nr_slots == 2
    with zcore.SwapFile(tmp_path / "b", int(np.int64(3 * PAGE))) as f:
        assert f.nr_slots == 2


def test_missing_directory(zcore, tmp_path):
    p = str(tmp_path / "no" / "such" / "dir" / "swap")
    with pytest.raises(OSError) as info:
        zcore.SwapFile(p, 2 * PAGE)
    assert p in str(info.value) or info.value.filename == p
    assert not os.path.exists(p)


def test_directory(zcore, tmp_path):
    d = tmp_path / "adir"
    d.mkdir()
    with pytest.raises(OSError) as info:
        zcore.SwapFile(str(d), 2 * PAGE)
    assert str(d) in str(info.value) or info.value.filename == str(d)
    assert d.is_dir()


def test_geometry_is_read_only(sf):
    for name in ("path", "size", "nr_slots", "closed"):
        with pytest.raises(AttributeError):
            setattr(sf, name, 5)
    assert sf.nr_slots == 8 and sf.size == 9 * PAGE


# --------------------------------------------------------------------------
# the slot allocator


def test_slots_are_lowest_free_and_never_zero(sf):
    assert [sf.alloc_slot() for _ in range(8)] == list(range(1, 9))
    assert len(sf) == 8
    assert sf.stats() == {"slots": 8, "used": 8, "free": 0}


def test_lowest_free_after_frees(sf):
    for _ in range(8):
        sf.alloc_slot()
    sf.free_slot(5)
    sf.free_slot(2)
    sf.free_slot(7)
    assert sf.stats() == {"slots": 8, "used": 5, "free": 3}
    assert sf.alloc_slot() == 2
    assert sf.alloc_slot() == 5
    sf.free_slot(1)
    assert sf.alloc_slot() == 1
    assert sf.alloc_slot() == 7
    assert len(sf) == 8


def test_lowest_free_below_the_last_handed_out(sf):
    a = [sf.alloc_slot() for _ in range(4)]
    assert a == [1, 2, 3, 4]
    sf.free_slot(1)
    assert sf.alloc_slot() == 1
    sf.free_slot(3)
    sf.free_slot(2)
    assert sf.alloc_slot() == 2
    assert sf.alloc_slot() == 3
    assert sf.alloc_slot() == 5


def test_lowest_free_across_words(zcore, path):
    # More than 64 slots, so a bitmap spans several words.
    with zcore.SwapFile(path, 201 * PAGE) as f:
        assert [f.alloc_slot() for _ in range(200)] == list(range(1, 201))
        for s in (199, 130, 64, 65, 3):
            f.free_slot(s)
        assert [f.alloc_slot() for _ in range(5)] == [3, 64, 65, 130, 199]
        with pytest.raises(SwapFileFullError):
            f.alloc_slot()


def test_full(sf, path):
    for _ in range(8):
        sf.alloc_slot()
    exc = assert_fails(sf, SwapFileFullError, sf.alloc_slot)
    assert isinstance(exc, VSwapError)
    assert str(exc) == "swap file %r is full: all %d slots are in use" % (path, 8)
    # Still full, same message, still consistent.
    assert_fails(sf, SwapFileFullError, sf.alloc_slot)
    sf.free_slot(4)
    assert sf.alloc_slot() == 4


def test_smallest_file(zcore, path):
    with zcore.SwapFile(path, 2 * PAGE) as f:
        assert f.nr_slots == 1
        assert f.alloc_slot() == 1
        with pytest.raises(SwapFileFullError):
            f.alloc_slot()
        f.free_slot(1)
        assert f.alloc_slot() == 1


@pytest.mark.parametrize("slot", [0, 1, 8, 9, 10, -1, 2 ** 64, 2 ** 64 + 1])
def test_free_unallocated(sf, slot):
    exc = assert_fails(sf, ValueError, lambda: sf.free_slot(slot))
    assert str(exc) == not_allocated(slot, 8)


def test_free_twice(sf):
    s = sf.alloc_slot()
    sf.free_slot(s)
    exc = assert_fails(sf, ValueError, lambda: sf.free_slot(s))
    assert str(exc) == not_allocated(s, 8)


@pytest.mark.parametrize("slot", ["1", 1.0, None, [1], b"1"],
                         ids=lambda v: type(v).__name__)
def test_bad_slot_type(sf, slot):
    sf.alloc_slot()
    assert_fails(sf, TypeError, lambda: sf.free_slot(slot))
    assert_fails(sf, TypeError, lambda: sf.read(slot))
    assert_fails(sf, TypeError, lambda: sf.write(slot, bytes(PAGE)))


# --------------------------------------------------------------------------
# page I/O


def test_write_read_round_trip(sf, path):
    pages = {}
    for i in range(8):
        s = sf.alloc_slot()
        pages[s] = pattern(s)
        sf.write(s, pages[s])
    for s, p in pages.items():
        got = sf.read(s)
        assert type(got) is bytes
        assert got == p
    # In the file, at slot * 4096, while the file is still open.
    for s, p in pages.items():
        assert on_disk(path, s) == p


def test_data_survives_close(zcore, path):
    f = zcore.SwapFile(path, 5 * PAGE)
    slots = [f.alloc_slot() for _ in range(4)]
    for s in slots:
        f.write(s, pattern(100 + s))
    f.close()
    with open(path, "rb") as raw:
        data = raw.read()
    assert len(data) == 5 * PAGE
    for s in slots:
        assert data[s * PAGE:(s + 1) * PAGE] == pattern(100 + s)


def test_overwrite(sf, path):
    s = sf.alloc_slot()
    sf.write(s, pattern(1))
    sf.write(s, pattern(2))
    assert sf.read(s) == pattern(2)
    assert on_disk(path, s) == pattern(2)


def test_write_touches_one_slot(sf, path):
    slots = [sf.alloc_slot() for _ in range(3)]
    for s in slots:
        sf.write(s, pattern(s))
    sf.write(slots[1], bytes(PAGE))
    assert on_disk(path, slots[0]) == pattern(slots[0])
    assert on_disk(path, slots[1]) == bytes(PAGE)
    assert on_disk(path, slots[2]) == pattern(slots[2])


def page_kinds():
    p = text_pages()[3]
    return {
        "bytes": lambda: p,
        "bytearray": lambda: bytearray(p),
        "memoryview": lambda: memoryview(p),
        "memoryview-bytearray": lambda: memoryview(bytearray(p)),
        "memoryview-cast-Q": lambda: memoryview(bytearray(p)).cast("Q"),
        "memoryview-slice": lambda: memoryview(b"\0" * 100 + p + b"\1" * 7)[100:100 + PAGE],
        "numpy-uint8": lambda: np.frombuffer(p, dtype=np.uint8).copy(),
        "numpy-uint64": lambda: np.frombuffer(p, dtype=np.uint64).copy(),
        "numpy-2d": lambda: np.frombuffer(p, dtype=np.uint8).reshape(64, 64).copy(),
        "numpy-readonly": lambda: np.frombuffer(p, dtype=np.uint32),
    }


@pytest.mark.parametrize("kind", sorted(page_kinds()))
def test_write_buffer_kinds(sf, path, kind):
    expected = text_pages()[3]
    s = sf.alloc_slot()
    sf.write(s, page_kinds()[kind]())
    assert sf.read(s) == expected
    assert on_disk(path, s) == expected


def out_kinds():
    return {
        "bytearray": lambda: bytearray(PAGE),
        "memoryview": lambda: memoryview(bytearray(PAGE)),
        "memoryview-cast-Q": lambda: memoryview(bytearray(PAGE)).cast("Q"),
        "numpy-uint8": lambda: np.zeros(PAGE, dtype=np.uint8),
        "numpy-uint64": lambda: np.zeros(PAGE // 8, dtype=np.uint64),
        "numpy-2d": lambda: np.zeros((64, 64), dtype=np.uint8),
    }


@pytest.mark.parametrize("kind", sorted(out_kinds()))
def test_read_into_out(sf, kind):
    expected = text_pages()[5]
    s = sf.alloc_slot()
    sf.write(s, expected)
    out = out_kinds()[kind]()
    got = sf.read(s, out)
    assert got is out
    assert bytes(memoryview(out).cast("B")) == expected


def test_read_into_out_keyword(sf):
    s = sf.alloc_slot()
    sf.write(s, pattern(4))
    out = bytearray(PAGE)
    assert sf.read(s, out=out) is out
    assert out == pattern(4)
    assert sf.read(s, None) == pattern(4)


def test_read_into_a_slice_of_a_larger_buffer(sf):
    s = sf.alloc_slot()
    sf.write(s, pattern(8))
    big = bytearray(3 * PAGE)
    view = memoryview(big)[PAGE:2 * PAGE]
    assert sf.read(s, view) is view
    assert big[:PAGE] == bytes(PAGE)
    assert big[PAGE:2 * PAGE] == pattern(8)
    assert big[2 * PAGE:] == bytes(PAGE)


@pytest.mark.parametrize("bad", ["x" * PAGE, None, 4096, [0] * PAGE, object(), 1.5],
                         ids=lambda v: type(v).__name__)
def test_write_not_a_buffer(sf, path, bad):
    s = sf.alloc_slot()
    sf.write(s, pattern(1))
    exc = assert_fails(sf, TypeError, lambda: sf.write(s, bad))
    assert str(exc) == "page must be a buffer, not %s" % type(bad).__name__
    assert sf.read(s) == pattern(1)


@pytest.mark.parametrize("n", [0, 1, PAGE - 1, PAGE + 1, 2 * PAGE, 3 * PAGE - 8])
def test_write_wrong_size(sf, path, n):
    s = sf.alloc_slot()
    sf.write(s, pattern(1))
    for page in (bytes(n), bytearray(n), np.zeros(n, dtype=np.uint8)):
        exc = assert_fails(sf, ValueError, lambda: sf.write(s, page))
        assert str(exc) == "page must be 4096 bytes, not %d" % n
    assert on_disk(path, s) == pattern(1)


def test_write_wrong_size_by_itemsize(sf):
    s = sf.alloc_slot()
    page = np.zeros(511, dtype=np.uint64)
    exc = assert_fails(sf, ValueError, lambda: sf.write(s, page))
    assert str(exc) == "page must be 4096 bytes, not %d" % (511 * 8)


NON_CONTIGUOUS = {
    "numpy-strided": lambda: np.frombuffer(pattern(1) * 2, dtype=np.uint8)[::2],
    "numpy-fortran": lambda: np.asfortranarray(
        np.frombuffer(pattern(2), dtype=np.uint8).reshape(64, 64)),
    "memoryview-strided": lambda: memoryview(bytearray(2 * PAGE))[::2],
}


@pytest.mark.parametrize("kind", sorted(NON_CONTIGUOUS))
def test_write_non_contiguous(sf, path, kind):
    s = sf.alloc_slot()
    sf.write(s, pattern(5))
    page = NON_CONTIGUOUS[kind]()
    assert memoryview(page).nbytes == PAGE
    assert_fails(sf, (TypeError, ValueError, BufferError), lambda: sf.write(s, page))
    assert on_disk(path, s) == pattern(5)


@pytest.mark.parametrize("kind", sorted(NON_CONTIGUOUS))
def test_read_into_non_contiguous(sf, kind):
    s = sf.alloc_slot()
    sf.write(s, pattern(5))
    out = NON_CONTIGUOUS[kind]()
    before = bytes(memoryview(out).tobytes())
    assert_fails(sf, (TypeError, ValueError, BufferError), lambda: sf.read(s, out))
    assert memoryview(out).tobytes() == before


def readonly_numpy():
    a = np.zeros(PAGE, dtype=np.uint8)
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("make", [
    lambda: bytes(PAGE),
    lambda: memoryview(bytes(PAGE)),
    lambda: memoryview(bytearray(PAGE)).toreadonly(),
    readonly_numpy,
    lambda: "x" * PAGE,
    lambda: [0] * PAGE,
    lambda: 7,
], ids=["bytes", "memoryview-bytes", "memoryview-readonly", "numpy-readonly",
        "str", "list", "int"])
def test_read_into_non_writable(sf, make):
    s = sf.alloc_slot()
    sf.write(s, pattern(6))
    out = make()
    exc = assert_fails(sf, TypeError, lambda: sf.read(s, out))
    assert str(exc) == "out must be a writable buffer, not %s" % type(out).__name__


@pytest.mark.parametrize("n", [0, 1, PAGE - 1, PAGE + 1, 2 * PAGE])
def test_read_into_wrong_size(sf, n):
    s = sf.alloc_slot()
    sf.write(s, pattern(6))
    out = bytearray(b"\x5a" * n)
    exc = assert_fails(sf, ValueError, lambda: sf.read(s, out))
    # The contract gives the page message; naming the argument is as good.
    assert str(exc) in ("out must be 4096 bytes, not %d" % n,
                        "page must be 4096 bytes, not %d" % n)
    assert out == b"\x5a" * n


@pytest.mark.parametrize("slot", [0, 3, 8, 9, 100, -1, 2 ** 64])
def test_io_on_unallocated_slots(sf, path, slot):
    assert (sf.alloc_slot(), sf.alloc_slot()) == (1, 2)
    sf.write(1, pattern(1))
    check_io_refused(sf, path, slot)


def test_io_on_a_freed_slot(sf, path):
    assert (sf.alloc_slot(), sf.alloc_slot()) == (1, 2)
    sf.write(1, pattern(1))
    sf.free_slot(1)
    check_io_refused(sf, path, 1)


def check_io_refused(sf, path, slot):
    with open(path, "rb") as raw:
        before_disk = raw.read()
    exc = assert_fails(sf, ValueError, lambda: sf.read(slot))
    assert str(exc) == not_allocated(slot, 8)
    out = bytearray(PAGE)
    exc = assert_fails(sf, ValueError, lambda: sf.read(slot, out))
    assert str(exc) == not_allocated(slot, 8)
    assert out == bytes(PAGE)
    exc = assert_fails(sf, ValueError, lambda: sf.write(slot, pattern(2)))
    assert str(exc) == not_allocated(slot, 8)
    with open(path, "rb") as raw:
        assert raw.read() == before_disk


def test_freed_slot_keeps_its_data_until_rewritten(sf, path):
    # Freeing is bookkeeping only; a re-allocated slot is overwritten by
    # its next write.
    s = sf.alloc_slot()
    sf.write(s, pattern(1))
    sf.free_slot(s)
    assert sf.alloc_slot() == s
    sf.write(s, pattern(2))
    assert sf.read(s) == pattern(2)


# --------------------------------------------------------------------------
# introspection, closing


def test_len_and_stats_follow_the_allocator(sf):
    slots = []
    for i in range(8):
        slots.append(sf.alloc_slot())
        assert len(sf) == i + 1
        assert sf.stats() == {"slots": 8, "used": i + 1, "free": 7 - i}
    for i, s in enumerate(slots):
        sf.free_slot(s)
        assert len(sf) == 7 - i
        assert sf.stats() == {"slots": 8, "used": 7 - i, "free": i + 1}


def test_repr(sf, path):
    assert repr(sf) == "<SwapFile path=%r slots=8 used=0>" % path
    sf.alloc_slot()
    sf.alloc_slot()
    assert repr(sf) == "<SwapFile path=%r slots=8 used=2>" % path


def test_context_manager(zcore, path):
    with zcore.SwapFile(path, 3 * PAGE) as f:
        assert isinstance(f, zcore.SwapFile)
        assert not f.closed
        s = f.alloc_slot()
        f.write(s, pattern(3))
    assert f.closed
    assert on_disk(path, s) == pattern(3)


def test_context_manager_closes_on_error(zcore, path):
    with pytest.raises(KeyError):
        with zcore.SwapFile(path, 3 * PAGE) as f:
            raise KeyError("x")
    assert f.closed


CLOSED_CALLS = {
    "alloc_slot": lambda f: f.alloc_slot(),
    "free_slot": lambda f: f.free_slot(1),
    "write": lambda f: f.write(1, bytes(PAGE)),
    "read": lambda f: f.read(1),
    "read-out": lambda f: f.read(1, bytearray(PAGE)),
}


@pytest.mark.parametrize("call", sorted(CLOSED_CALLS))
def test_closed(zcore, path, call):
    f = zcore.SwapFile(path, 3 * PAGE)
    f.alloc_slot()
    f.write(1, pattern(1))
    f.close()
    assert f.closed
    with pytest.raises(ValueError) as info:
        CLOSED_CALLS[call](f)
    assert str(info.value) == "I/O on a closed swap file"
    assert f.closed
    assert on_disk(path, 1) == pattern(1)


def test_close_releases_the_file(zcore, path):
    f = zcore.SwapFile(path, 3 * PAGE)
    fd_dir = "/proc/self/fd"
    if not os.path.isdir(fd_dir):
        pytest.skip("no /proc/self/fd")

    def open_on_path():
        n = 0
        for fd in os.listdir(fd_dir):
            try:
                if os.readlink(os.path.join(fd_dir, fd)) == os.path.realpath(path):
                    n += 1
            except OSError:
                pass
        return n

    assert open_on_path() == 1
    f.close()
    assert open_on_path() == 0


def test_two_files_are_independent(zcore, tmp_path):
    a = zcore.SwapFile(tmp_path / "a", 3 * PAGE)
    b = zcore.SwapFile(tmp_path / "b", 3 * PAGE)
    assert a.alloc_slot() == 1
    assert b.alloc_slot() == 1
    a.write(1, pattern(1))
    b.write(1, pattern(2))
    assert a.read(1) == pattern(1)
    assert b.read(1) == pattern(2)
    a.close()
    assert b.read(1) == pattern(2)
    b.close()
