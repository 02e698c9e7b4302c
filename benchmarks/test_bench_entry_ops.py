"""zswap_entry_store/load/erase: compiled core, pure-Python twin, bare dict.

Each round runs the operation over the same N swap entries; the summary
divides by N.  The dict baseline makes one bound-method call per entry on
the same keys (``__setitem__``, ``get``, ``pop``), which is what the seed's
xarray calls become in pure Python.
"""

import pytest

N = 4096
#: "compiled+cache" has v6 patch 22's per-thread cluster lookup cache on.
IMPLS = ["compiled", "compiled+cache", "pure", "dict"]


class DictSpace:
    """The bare-dict baseline: one method call per operation."""

    def __init__(self):
        self.d = {}
        self.store = self.d.__setitem__
        self.load = self.d.get
        self.erase = self.d.pop


def make(impl):
    """(store, load, erase, keys) for one implementation."""
    if impl == "dict":
        # The entries a fresh space hands out: cluster 1, indexes 0..N-1.
        keys = [(1 << 9) + i for i in range(N)]
        space = DictSpace()
        erase = space.erase
        return space.store, space.load, (lambda k: erase(k, None)), keys, space
    import vswapfast._vswap
    import vswapfast.pure
    mod = vswapfast._vswap if impl.startswith("compiled") else vswapfast.pure
    space = mod.VSwap(lookup_cache=impl.endswith("+cache"))
    keys = [space.alloc() for _ in range(N)]
    return (space.zswap_entry_store, space.zswap_entry_load,
            space.zswap_entry_erase, keys, space)


@pytest.mark.parametrize("impl", IMPLS)
def test_store(benchmark, impl):
    store, load, erase, keys, space = make(impl)
    zentry = object()

    def run():
        for k in keys:
            store(k, zentry)

    benchmark.group = "zswap_entry_store"
    benchmark.extra_info.update(impl=impl, ops=N)
    benchmark(run)
    assert all(load(k) is zentry for k in keys)


@pytest.mark.parametrize("impl", IMPLS)
def test_load(benchmark, impl):
    store, load, erase, keys, space = make(impl)
    zentry = object()
    for k in keys:
        store(k, zentry)

    def run():
        for k in keys:
            load(k)

    benchmark.group = "zswap_entry_load"
    benchmark.extra_info.update(impl=impl, ops=N)
    benchmark(run)
    assert load(keys[-1]) is zentry


@pytest.mark.parametrize("impl", IMPLS)
def test_erase(benchmark, impl):
    store, load, erase, keys, space = make(impl)
    zentry = object()

    def fill():
        for k in keys:
            store(k, zentry)

    def run():
        for k in keys:
            erase(k)

    benchmark.group = "zswap_entry_erase"
    benchmark.extra_info.update(impl=impl, ops=N)
    benchmark.pedantic(run, setup=fill, rounds=200, warmup_rounds=5)
    assert load(keys[0]) is None
