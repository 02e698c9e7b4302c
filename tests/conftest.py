"""Fixtures shared by the whole suite.

Every test that takes ``core`` runs once per core: the compiled core
(``vswapfast._vswap``) and the pure-Python twin (``vswapfast.pure``).  With
``VSWAPFAST_PURE=1`` in the environment only the pure twin is tested (useful
while the compiled core is not built).  The compiled core is never skipped
silently: if it cannot be imported, its tests error out.
"""

import importlib
import os

import pytest

from vswap_support import Worker

CORE_MODULES = {
    "compiled": "vswapfast._vswap",
    "pure": "vswapfast.pure",
}


def core_names():
    if os.environ.get("VSWAPFAST_PURE") == "1":
        return ["pure"]
    return ["compiled", "pure"]


@pytest.fixture(params=core_names())
def core_name(request):
    """The name a core gives itself in ``repr(space)``."""
    return request.param


@pytest.fixture
def core(core_name):
    """The core module under test (``vswapfast._vswap`` or ``vswapfast.pure``)."""
    return importlib.import_module(CORE_MODULES[core_name])


@pytest.fixture
def space(core):
    """A space with the default geometry (512 descriptors per cluster)."""
    return core.VSwap()


@pytest.fixture
def small_space(core):
    """Clusters of 8 descriptors and at most 4 clusters: boundaries are near."""
    return core.VSwap(cluster_shift=3, max_clusters=4)


@pytest.fixture
def worker():
    """A second thread that keeps its own allocation caches between calls."""
    w = Worker()
    yield w
    w.close()


@pytest.fixture
def worker2():
    w = Worker()
    yield w
    w.close()


ZSWAP_CORE_MODULES = {
    # name: (VSwap's module, Zswap's module, SwapFile's module)
    "compiled": ("vswapfast._vswap", "vswapfast._zswap", "vswapfast._swapfile"),
    "pure": ("vswapfast.pure", "vswapfast.pure", "vswapfast.pure"),
}


@pytest.fixture
def zcore(core_name):
    """One core's ``VSwap``, ``Zswap``, ``SwapFile`` and ``PAGE_SIZE``.

    ``zcore.name`` is the core's name as ``repr`` reports it.
    """
    return load_zswap_core(core_name)


def load_zswap_core(name):
    import types

    vswap_mod, zswap_mod, swapfile_mod = (
        importlib.import_module(m) for m in ZSWAP_CORE_MODULES[name])
    return types.SimpleNamespace(
        name=name,
        VSwap=vswap_mod.VSwap,
        Zswap=zswap_mod.Zswap,
        SwapFile=swapfile_mod.SwapFile,
        PAGE_SIZE=zswap_mod.PAGE_SIZE,
    )


#: A pool limit no test reaches unless it means to.
NO_LIMIT = 1 << 40


def close_pool(p):
    """Close a pool unless the test already did."""
    try:
        p.close()
    except ValueError:
        pass


@pytest.fixture
def zspace(zcore):
    """A space of ``zcore`` with the default geometry."""
    return zcore.VSwap()


@pytest.fixture
def swapfile(zcore, tmp_path):
    """A swap file of 1024 slots in the test's directory."""
    f = zcore.SwapFile(str(tmp_path / "swapfile"), 1025 * 4096)
    yield f
    f.close()


@pytest.fixture
def pool(zcore, zspace, swapfile):
    """A pool on ``zspace`` writing back to ``swapfile``, with no limit in reach."""
    p = zcore.Zswap(zspace, swapfile, max_pool_bytes=NO_LIMIT)
    yield p
    close_pool(p)


@pytest.fixture
def bare_pool(zcore, zspace):
    """A pool on ``zspace`` with no swap file (writeback disabled)."""
    p = zcore.Zswap(zspace, max_pool_bytes=NO_LIMIT)
    yield p
    close_pool(p)


@pytest.fixture
def make_pool(zcore, zspace, swapfile):
    """``make_pool(space, swapfile=None, **settings)``: a pool of ``zcore``
    that is closed after the test (before ``swapfile`` is)."""
    made = []

    def make(*args, **kwargs):
        p = zcore.Zswap(*args, **kwargs)
        made.append(p)
        return p

    yield make
    for p in reversed(made):
        close_pool(p)
