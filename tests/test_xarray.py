"""The xarray model (vswapfast/xarray.h and its twin vswapfast/pure/xarray.py)."""

import importlib
import random
import threading

import pytest

from cores import core_names

XARRAY_MODULES = {"compiled": "vswapfast._xarray", "pure": "vswapfast.pure.xarray"}


@pytest.fixture(params=core_names())
def XArray(request):
    return importlib.import_module(XARRAY_MODULES[request.param]).XArray


def nodes_for(indices):
    """Nodes a tree rooted at index 0 needs for ``indices`` (the kernel's
    layout: the top node covers every index from 0 up to the largest)."""
    indices = set(indices)
    if not indices or indices == {0}:
        return 0
    top = 0
    while max(indices) >> (top + 6):
        top += 6
    total = 0
    for shift in range(0, top + 6, 6):
        total += len({i >> (shift + 6) for i in indices})
    return total


def test_lone_entry_at_index_0_lives_in_the_head(XArray):
    x = XArray()
    assert x.store(0, 6) is None
    assert x.store(0, 7) == 6
    assert x.nr_nodes == 0 and x.node_bytes() == 0 and x.load(0) == 7
    assert x.store(1, 8) is None
    assert x.nr_nodes == 1 and x.height == 1
    assert x.erase(1) == 8
    assert x.nr_nodes == 0 and x.load(0) == 7   # shrunk back into the head
    assert x.erase(0) == 7 and x.empty()


@pytest.mark.parametrize("region", [0, 1, 15, 16])
def test_full_64mib_region_node_count(XArray, region):
    x = XArray()
    base = region * 16384
    indices = range(max(base, 1), base + 16384)
    for i in indices:
        assert x.store(i, i) is None
    expected = nodes_for(indices)
    assert expected == (261 if region < 16 else 262)
    assert x.nr_nodes == expected
    assert x.node_bytes() == expected * 576
    for i in indices:
        assert x.load(i) == i
    for i in indices:
        assert x.erase(i) == i
    assert x.empty() and x.nr_nodes == 0 and x.node_bytes() == 0
    assert x.free_node_bytes() == expected * 576   # type-stable: kept as nodes
    for i in indices:
        x.store(i, i + 1)
    assert x.free_node_bytes() == 0 and x.node_bytes() == expected * 576
    x.close()


def test_random_against_dict(XArray):
    rng = random.Random(12)
    x = XArray()
    model = {}
    for step in range(1500):
        i = rng.choice([0, rng.randrange(200), rng.randrange(1 << 20), rng.randrange(1 << 64)])
        if rng.random() < 0.6:
            v = rng.randrange(1 << 62)
            assert x.store(i, v) == model.get(i)
            model[i] = v
        else:
            assert x.erase(i) == model.pop(i, None)
        if step % 50 == 0:
            assert x.nr_nodes == nodes_for(model)
            assert x.node_bytes() == 576 * x.nr_nodes
    for i, v in model.items():
        assert x.load(i) == v
    for i in list(model):
        x.erase(i)
    assert x.empty() and x.nr_nodes == 0


def test_errors(XArray):
    x = XArray()
    with pytest.raises(TypeError, match="index must be an int"):
        x.store("1", 1)
    with pytest.raises(ValueError, match="index must be in"):
        x.load(-1)
    with pytest.raises(ValueError, match="value must be in"):
        x.store(1, 1 << 62)
    with pytest.raises(TypeError, match="value must be an int"):
        x.store(1, 1.0)
    x.close()
    x.close()
    with pytest.raises(ValueError, match="closed"):
        x.load(1)
    assert "closed" in repr(x)


def test_lock_free_loads_under_stores(XArray):
    """Loads run with no lock while writers grow, shrink and recycle nodes:
    a load returns None or a value stored at that index, never another's."""
    x = XArray()
    stop = threading.Event()
    errors = []
    N = 3000

    def writer(seed):
        rng = random.Random(seed)
        while not stop.is_set():
            i = rng.randrange(N) * 977     # spread over several levels
            if rng.random() < 0.5:
                x.store(i, (i << 8) | rng.randrange(256))
            else:
                x.erase(i)

    def reader(seed):
        rng = random.Random(seed)
        for _ in range(5000):
            i = rng.randrange(N) * 977
            v = x.load(i)
            if v is not None and v >> 8 != i:
                errors.append((i, v))

    writers = [threading.Thread(target=writer, args=(s,)) for s in range(2)]
    readers = [threading.Thread(target=reader, args=(s + 10,)) for s in range(2)]
    for t in writers + readers:
        t.start()
    for t in readers:
        t.join()
    stop.set()
    for t in writers:
        t.join()
    assert errors == []
    st = x.stats()
    assert st["lockless_loads"] + st["locked_loads"] == 10000
    x.close()
