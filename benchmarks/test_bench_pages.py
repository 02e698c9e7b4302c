"""Page store and load: the compiled pool, the pure twin, and raw LZ4.

The floor is python-lz4's ``block.compress``/``block.decompress`` over the
same pages in a Python loop: the compression work alone, with a Python call
per page, which is what any pool built on LZ4 has to pay.  The two-thread
group stores as many pages per thread as the one-thread group stores in all;
the summary prints the throughput ratio.
"""

import threading

import lz4.block
import pytest

from pages import real_pages

import vswapfast._swapfile
import vswapfast._vswap
import vswapfast._zswap
import vswapfast.pure

N = 2048
PAGES = real_pages(N)
MODULES = {
    "compiled": (vswapfast._vswap, vswapfast._zswap),
    "pure": (vswapfast.pure, vswapfast.pure),
}


def make_pool(impl):
    vswap_mod, zswap_mod = MODULES[impl]
    space = vswap_mod.VSwap()
    pool = zswap_mod.Zswap(space, max_pool_bytes=1 << 40)
    entries = [space.alloc() for _ in range(N)]
    return space, pool, entries


@pytest.mark.parametrize("impl", ["compiled", "pure", "lz4"])
def test_page_store(benchmark, impl):
    benchmark.group = "page store"
    benchmark.extra_info.update(impl=impl, ops=N)
    if impl == "lz4":
        compress = lz4.block.compress

        def run():
            for page in PAGES:
                compress(page, store_size=False)

        benchmark(run)
        return
    space, pool, entries = make_pool(impl)
    store = pool.store
    pairs = list(zip(entries, PAGES))

    def run():
        for entry, page in pairs:
            store(entry, page)

    benchmark(run)
    # Without a swap file an incompressible page is refused, and counted.
    stats = pool.stats()
    assert stats["stored_pages"] + stats["zero_pages"] + stats["reject_compress_poor"] >= N


@pytest.mark.parametrize("impl", ["compiled", "pure", "lz4"])
def test_page_load(benchmark, impl):
    benchmark.group = "page load"
    benchmark.extra_info.update(impl=impl, ops=N)
    if impl == "lz4":
        blocks = [lz4.block.compress(p, store_size=False) for p in PAGES]
        decompress = lz4.block.decompress

        def run():
            for block in blocks:
                decompress(block, uncompressed_size=4096)

        benchmark(run)
        return
    space, pool, entries = make_pool(impl)
    pool.exclusive_loads = False       # every round loads the same pages
    stored = [pool.store(entry, page) for entry, page in zip(entries, PAGES)]
    load = pool.load
    out = bytearray(4096)

    def run():
        for entry in entries:
            load(entry, out)

    benchmark(run)
    first = stored.index(True)
    assert pool.load(entries[first]) == PAGES[first]


@pytest.mark.parametrize("impl", ["compiled", "lz4"])
@pytest.mark.parametrize("threads", [1, 2])
def test_page_store_threads(benchmark, threads, impl):
    """Each thread stores N pages into its own entries (its own clusters).

    The lz4 rows compress the same pages in as many threads (python-lz4
    releases the GIL too): how far this machine lets page work scale at all.
    """
    space, pool, _ = make_pool("compiled")
    per_thread = [[space.alloc() for _ in range(N)] for _ in range(threads)]
    barrier = threading.Barrier(threads + 1)
    rounds = []

    def worker(entries):
        store = pool.store
        compress = lz4.block.compress
        pairs = list(zip(entries, PAGES))
        while True:
            barrier.wait()
            if rounds and rounds[-1] is None:
                return
            if impl == "lz4":
                for entry, page in pairs:
                    compress(page, store_size=False)
            else:
                for entry, page in pairs:
                    store(entry, page)
            barrier.wait()

    workers = [threading.Thread(target=worker, args=(e,)) for e in per_thread]
    for w in workers:
        w.start()

    def run():
        rounds.append(True)
        barrier.wait()          # go
        barrier.wait()          # all done

    benchmark.group = "page store threads"
    benchmark.extra_info.update(impl=impl, threads=threads, ops=N * threads)
    try:
        benchmark.pedantic(run, rounds=20, warmup_rounds=2)
    finally:
        rounds.append(None)
        barrier.wait()
        for w in workers:
            w.join()
    if impl == "compiled":
        assert len(pool) + pool.stats()["reject_compress_poor"] >= N * threads
