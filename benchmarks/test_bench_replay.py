"""The replay's own work against its LZ4 floor on a block trace dominated by
cold misses: most misses bring a new page, so nearly every event is a
swap-out and building pages, the reclaim and the batch calls all weigh.

``impl=compiled`` is the replay (reclaim and swap work, no floor) through
the compiled core, ``impl=stream`` the same replay streamed
(``vswapfast.stream``); ``impl=floor`` is python-lz4 compressing and
decompressing the same pages in the same steps.  The summary prints their
ratio.  ``python benchmarks/replay_floor.py TRACES_DIR`` measures the same on
the shipped traces and the compiled core against ``--core pure`` end to end.
"""

import pytest

from replay_floor import block_trace

from vswapfast.replay import ReplayConfig, batch_size, measure_floor, run_replay, simulate
from vswapfast.workload import PageFactory

PAGES = 100_000
TRACE = block_trace(PAGES)
FACTORY = PageFactory.synthetic()


@pytest.mark.parametrize("impl", ["compiled", "stream", "floor"])
def test_replay_cold_block_trace(benchmark, impl):
    benchmark.group = "replay, cold-miss block trace"
    frames = max(1, PAGES // 10)
    config = ReplayConfig(frames=frames, floor=False, stream=impl == "stream")
    lru = simulate(TRACE, frames)
    benchmark.extra_info.update(impl=impl, ops=lru.swap_outs + lru.swap_ins)
    if impl == "floor":
        step = batch_size(lru.distinct, lru.frames, config.chunk, 1)
        benchmark.pedantic(measure_floor, args=(lru, FACTORY, step), rounds=1, iterations=1)
        return
    report = benchmark.pedantic(run_replay, args=(TRACE, config, FACTORY), rounds=1,
                                iterations=1)
    assert report.swap_outs == lru.swap_outs and report.swap_ins == lru.swap_ins
    assert report.mismatches == 0 and report.verified == report.swap_ins
