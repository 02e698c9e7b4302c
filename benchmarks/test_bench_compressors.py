"""Page store and load per compressor: the compiled pool against its
compressor's library.

The floor is the system library the compiled core calls (through
``vswapfast._compress``), one Python call per page, on the same pages: the
compression work alone, which any pool on that library has to pay.  The
summary prints, per compressor, the pool's cost over the floor's.
"""

import pytest

from pages import real_pages

import vswapfast._compress
import vswapfast._vswap
import vswapfast._zswap
from vswapfast.compressors import COMPRESSORS

N = 1024
PAGES = [p for p in real_pages(N) if any(p)]


def make_pool(compressor):
    space = vswapfast._vswap.VSwap()
    pool = vswapfast._zswap.Zswap(space, max_pool_bytes=1 << 40, compressor=compressor)
    return pool, [space.alloc() for _ in PAGES]


@pytest.mark.parametrize("impl", ["compiled", "floor"])
@pytest.mark.parametrize("compressor", COMPRESSORS)
def test_compressor_store(benchmark, compressor, impl):
    benchmark.group = "store %s" % compressor
    benchmark.extra_info.update(impl=impl, ops=len(PAGES), compressor=compressor)
    if impl == "floor":
        compress = vswapfast._compress.compress_page

        def run():
            for page in PAGES:
                compress(compressor, page)

        benchmark(run)
        return
    pool, entries = make_pool(compressor)
    store = pool.store
    pairs = list(zip(entries, PAGES))

    def run():
        for entry, page in pairs:
            store(entry, page)

    benchmark(run)
    stats = pool.stats()
    assert stats["stored_pages"] + stats["reject_compress_poor"] == len(PAGES)


@pytest.mark.parametrize("impl", ["compiled", "floor"])
@pytest.mark.parametrize("compressor", COMPRESSORS)
def test_compressor_load(benchmark, compressor, impl):
    benchmark.group = "load %s" % compressor
    if impl == "floor":
        blocks = [vswapfast._compress.compress_page(compressor, p) for p in PAGES]
        blocks = [b for b in blocks if len(b) < 4096]
        benchmark.extra_info.update(impl=impl, ops=len(blocks), compressor=compressor)
        decompress = vswapfast._compress.decompress_page

        def run():
            for block in blocks:
                decompress(compressor, block)

        benchmark(run)
        return
    pool, entries = make_pool(compressor)
    stored = [e for e, p in zip(entries, PAGES) if pool.store(e, p)]
    benchmark.extra_info.update(impl=impl, ops=len(stored), compressor=compressor)
    pool.exclusive_loads = False       # every round loads the same pages
    load = pool.load
    out = bytearray(4096)

    def run():
        for entry in stored:
            load(entry, out)

    benchmark(run)
