"""Batch zswap entry calls per index design, at 1..N threads.

Each thread runs a batch call over its own array of entries; the entries of
"own" threads lie in clusters no other thread touches, those of "shared"
threads are interleaved so that every cluster is shared.  The floor is a
plain C loop over the same array that fetches each entry's value from a
flat table (numpy's take): the least any batch load can cost per entry.  The summary prints each design's
throughput against its one-thread figure, and the lock counters of the run.
"""

import os
import threading

import numpy as np
import pytest

import vswapfast._vswap
import vswapfast._zswap_index

N = 16384                       # entries per thread: 32 clusters
REPEAT = 40                     # batch calls per thread per round, so that a
                                # round outlasts waking the threads
THREADS = sorted({1, 2, max(2, os.cpu_count() or 1)})
#: "vswap+cache" is the seed with v6 patch 22's per-thread cluster lookup
#: cache on (VSwap(lookup_cache=True)); "vswap" is patch 11 alone.
DESIGNS = ["vswap", "vswap+cache", "rbtree"]
OPS = ["store", "load", "erase"]


def thread_entries(space, threads, placement):
    """One uint64 array of entries per thread."""
    if placement == "own":
        per = []
        lock = threading.Lock()

        def alloc():
            entries = space.alloc_many(N)       # this thread's own clusters
            with lock:
                per.append(np.frombuffer(entries, dtype=np.uint64))

        workers = [threading.Thread(target=alloc) for _ in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        return per
    every = np.frombuffer(space.alloc_many(N * threads), dtype=np.uint64)
    return [every[t::threads].copy() for t in range(threads)]


class Runner:
    """Threads that run one batch call each time ``run`` is called."""

    def __init__(self, calls):
        self.calls = calls
        self.go = threading.Barrier(len(calls) + 1)
        self.done = threading.Barrier(len(calls) + 1)
        self.stop = False
        self.workers = [threading.Thread(target=self._work, args=(c,)) for c in calls]
        for w in self.workers:
            w.start()

    def _work(self, call):
        while True:
            self.go.wait()
            if self.stop:
                return
            for _ in range(REPEAT):
                call()
            self.done.wait()

    def run(self):
        self.go.wait()
        self.done.wait()

    def close(self):
        self.stop = True
        self.go.wait()
        for w in self.workers:
            w.join()


def make_calls(index, op, per_thread):
    calls = []
    for entries in per_thread:
        handles = entries + np.uint64(1)
        out = np.zeros(len(entries), dtype=np.uint64)
        if op == "store":
            calls.append(lambda e=entries, h=handles, o=out: index.zswap_entry_store_many(e, h, o))
        elif op == "load":
            calls.append(lambda e=entries, o=out: index.zswap_entry_load_many(e, o))
        else:
            # Erase, then put the handles back, so every round erases N
            # entries; the store is timed too and reported as its own row.
            calls.append(lambda e=entries, h=handles, o=out: (
                index.zswap_entry_erase_many(e, o), index.zswap_entry_store_many(e, h)))
    return calls


@pytest.mark.parametrize("placement", ["own", "shared"])
@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("design", DESIGNS)
@pytest.mark.parametrize("op", OPS)
def test_batch(benchmark, op, design, threads, placement):
    space = vswapfast._vswap.VSwap(lookup_cache=design == "vswap+cache")
    index = vswapfast._zswap_index.ZswapIndex(space, design.split("+")[0])
    per_thread = thread_entries(space, threads, placement)
    for entries in per_thread:
        index.zswap_entry_store_many(entries, entries + np.uint64(1))
    before = index.stats()
    runner = Runner(make_calls(index, op, per_thread))
    benchmark.group = "batch %s, %s clusters" % ("erase+store" if op == "erase" else op,
                                                   placement)
    benchmark.extra_info.update(impl=design, threads=threads, ops=N * threads * REPEAT)
    try:
        benchmark.pedantic(runner.run, rounds=10, warmup_rounds=1)
    finally:
        runner.close()
    after = index.stats()
    benchmark.extra_info.update(
        lock_acquisitions=after["lock_acquisitions"] - before["lock_acquisitions"],
        lock_contended=after["lock_contended"] - before["lock_contended"])
    out = np.zeros(N, dtype=np.uint64)
    assert set(index.zswap_entry_load_many(per_thread[0], out)) == {0}
    assert (out == per_thread[0] + np.uint64(1)).all()


@pytest.mark.parametrize("placement", ["own", "shared"])
def test_batch_floor(benchmark, placement):
    """The plain loop: for each entry of the array, fetch its value from a
    flat table indexed by entry (no lock, no check), as a load must."""
    space = vswapfast._vswap.VSwap()
    entries = thread_entries(space, 1, placement)[0]
    table = np.arange(int(entries.max()) + 1, dtype=np.uint64) + np.uint64(1)
    out = np.zeros(N, dtype=np.uint64)
    benchmark.group = "batch load, %s clusters" % placement
    benchmark.extra_info.update(impl="floor", ops=N)
    benchmark.pedantic(np.take, args=(table, entries), kwargs={"out": out},
                       rounds=200, warmup_rounds=5)
    assert (out == entries + np.uint64(1)).all()
