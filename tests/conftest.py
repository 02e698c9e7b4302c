"""Fixtures shared by the whole suite.

Every test that takes ``core`` runs once per core: the compiled core
(``vswapfast._vswap``) and the pure-Python twin (``vswapfast.pure``).  With
``VSWAPFAST_PURE=1`` in the environment only the pure twin is tested (useful
while the compiled core is not built).  The compiled core is never skipped
silently: if it cannot be imported, its tests error out.
"""

import importlib

import pytest

from cores import CORE_MODULES, NO_LIMIT, core_names, load_zswap_core
from vswap_support import Worker



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


@pytest.fixture
def zcore(core_name):
    """One core's ``VSwap``, ``Zswap``, ``SwapFile`` and ``PAGE_SIZE``.

    ``zcore.name`` is the core's name as ``repr`` reports it.
    """
    return load_zswap_core(core_name)




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
    """A pool on ``zspace`` with no swap file and writeback disabled."""
    p = zcore.Zswap(zspace, max_pool_bytes=NO_LIMIT, writeback=False)
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
