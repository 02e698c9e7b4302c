"""The page builder: the compiled one (in C) and its numpy twin give the
bytes of the Python builder they replaced, so that a replay still verifies
every swapped-in page against the page it swapped out."""

import importlib

import numpy as np
import pytest

from vswapfast.workload import PAGE_SIZE, PageFactory, mix64

BUILDERS = {"compiled": "vswapfast._pages", "pure": "vswapfast.pure.pages"}


def old_page_batch(factory, keys, versions=None):
    """The pages of ``keys`` as the Python builder made them: the template
    picked by a hash of the key, two words stamped with the key and version."""
    keys = np.asarray(keys, dtype=np.uint64)
    h = mix64(keys ^ np.uint64(mix64(np.array([factory.seed & ((1 << 64) - 1)]))[0]))
    cls = np.searchsorted(factory._thresholds, h >> np.uint64(44), side="right")
    tidx = (factory._class_start[cls]
            + (h & np.uint64(0xFFFFFFFF)) % factory._class_count[cls]).astype(np.intp)
    out = factory.templates[tidx]
    stamp = ~factory.template_zero[tidx]
    rows = np.flatnonzero(stamp)
    hs = h[rows]
    value = keys[rows] * np.uint64(0x9E3779B97F4A7C15)
    if versions is not None:
        value += np.asarray(versions, dtype=np.uint64)[rows] * np.uint64(0xD6E8FEB86659FD93)
    value = mix64(value) | np.uint64(1)
    words = out.view(np.uint64)
    first = (hs >> np.uint64(20)).astype(np.intp) & 511
    second = (first + 1 + ((hs >> np.uint64(29)).astype(np.intp) & 510)) & 511
    words[rows, first] = value
    words[rows, second] = value ^ hs
    return out, ~stamp


@pytest.fixture
def builder_core(core_name):
    importlib.import_module(BUILDERS[core_name])     # never a silent fallback
    return core_name


def factories():
    yield PageFactory.synthetic(seed=1, templates=64)
    yield PageFactory.synthetic(seed=12345, templates=32, mix={"text": 1.0, "zero": 0.5})
    yield PageFactory.synthetic(seed=2, templates=16, mix={"random": 1.0})


@pytest.mark.parametrize("with_versions", [False, True])
def test_pages_equal_the_old_builder(builder_core, with_versions):
    rng = np.random.default_rng(7)
    keys = np.concatenate((rng.integers(0, 1 << 64, 3000, dtype=np.uint64),
                           np.array([0, 1, (1 << 64) - 1], dtype=np.uint64)))
    versions = rng.integers(0, 1 << 64, len(keys), dtype=np.uint64) if with_versions else None
    for factory in factories():
        factory.use_core(builder_core)
        pages, zero = factory.page_batch(keys, versions)
        old_pages, old_zero = old_page_batch(factory, keys, versions)
        assert pages.shape == (len(keys), PAGE_SIZE) and pages.dtype == np.uint8
        assert np.array_equal(pages, old_pages)
        assert np.array_equal(zero, old_zero)
        assert zero.any() == ("zero" in factory.class_names and factory.weights[0] > 0)


def test_pages_of_a_file_equal_the_old_builder(builder_core, tmp_path):
    path = tmp_path / "data"
    path.write_bytes(bytes(range(256)) * 50 + b"\0" * 4096 * 2)     # 5 pages, 2 of zeros
    factory = PageFactory.from_file(str(path)).use_core(builder_core)
    keys = np.arange(2000, dtype=np.uint64) * np.uint64(0x10001)
    pages, zero = factory.page_batch(keys)
    old_pages, old_zero = old_page_batch(factory, keys)
    assert np.array_equal(pages, old_pages) and np.array_equal(zero, old_zero)
    assert zero.any() and not zero.all()


def test_verify_finds_exactly_the_changed_pages(builder_core):
    factory = PageFactory.synthetic(seed=3, templates=32).use_core(builder_core)
    rng = np.random.default_rng(1)
    keys = rng.integers(0, 1 << 40, 500, dtype=np.uint64)
    versions = rng.integers(0, 4, 500).astype(np.uint64)
    pages, _zero = factory.page_batch(keys, versions)
    assert not factory.verify(keys, pages, versions).any()
    changed = rng.choice(500, 40, replace=False)
    for row in changed:
        pages[row, rng.integers(0, PAGE_SIZE)] ^= np.uint8(1 + rng.integers(0, 255))
    differ = factory.verify(keys, pages, versions)
    assert sorted(np.flatnonzero(differ).tolist()) == sorted(changed.tolist())
    # Another version of a key is another page (zero pages aside).
    other = factory.verify(keys, factory.page_batch(keys, versions + np.uint64(1))[0], versions)
    assert np.array_equal(other, ~factory.is_zero(keys))


def test_builders_refuse_bad_buffers(builder_core):
    factory = PageFactory.synthetic(templates=8)
    builder = factory.builder(builder_core)
    keys = np.arange(4, dtype=np.uint64)
    out = np.empty((4, PAGE_SIZE), dtype=np.uint8)
    zero = np.empty(4, dtype=np.uint8)
    with pytest.raises(ValueError, match="out"):
        builder.build_pages(keys, None, out[:3], zero)
    with pytest.raises(ValueError, match="zero"):
        builder.build_pages(keys, None, out, zero[:2])
    with pytest.raises(ValueError, match="versions"):
        builder.build_pages(keys, np.zeros(3, dtype=np.uint64), out, zero)
    with pytest.raises(ValueError, match="keys"):
        builder.build_pages(b"12345", None, out, zero)
    with pytest.raises(BufferError if builder_core == "compiled" else ValueError):
        builder.build_pages(keys, None, bytes(4 * PAGE_SIZE), zero)
    with pytest.raises(ValueError, match="pages"):
        builder.verify_pages(keys, None, out[:2], zero)
    with pytest.raises(ValueError, match="templates"):
        type(builder)(np.zeros((2, 100), dtype=np.uint8), [1], [0], [2], [1, 1], 0)
    with pytest.raises(ValueError, match="class"):
        type(builder)(np.zeros((2, PAGE_SIZE), dtype=np.uint8), [1], [0], [3], [1, 1], 0)
    assert "PageBuilder" in repr(builder)
