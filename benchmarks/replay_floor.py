"""The replay against its LZ4 floor, on the shipped traces and on a block
trace dominated by cold misses; and the compiled core against ``--core
pure`` end to end (process start to exit).

Run it as a script for the README's figures::

    python benchmarks/replay_floor.py TRACES_DIR [--quick]

Every ratio is of two figures measured in the same run, each the best of
``--repeat`` tries (the load of a shared machine shifts within a run).
"""

import argparse
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from vswapfast.replay import ReplayConfig, Trace, read_trace, run_replay  # noqa: E402
from vswapfast.workload import PageFactory  # noqa: E402


def cold_block_trace(pages=1_000_000, seed=1, streams=8, reread=0.15):
    """A block trace whose misses are mostly cold: requests of 1 to 16
    pages (4 to 64 KiB), most of them continuing one of a few sequential
    streams through new pages, the rest re-reading a request's worth of
    pages already seen.  Returns the page keys (uint64)."""
    rng = np.random.default_rng(seed)
    count = pages // 4 + 1
    lengths = rng.integers(1, 17, count)
    stream = rng.integers(0, streams, count)
    again = rng.random(count) < reread
    heads = (np.arange(streams, dtype=np.int64) << 40)
    out = np.empty(int(lengths.sum()), dtype=np.int64)
    at = 0
    seen_lo = []
    for length, s, back in zip(lengths.tolist(), stream.tolist(), again.tolist()):
        if back and seen_lo:
            start = seen_lo[int(rng.integers(0, len(seen_lo)))]
        else:
            start = int(heads[s])
            heads[s] += length
            seen_lo.append(start)
        out[at:at + length] = np.arange(start, start + length)
        at += length
        if at >= pages:
            break
    return out[:min(at, pages)].astype(np.uint64)


def block_trace(pages=1_000_000, seed=1):
    keys = cold_block_trace(pages, seed)
    return Trace(keys, None, "cold-miss block trace (%s pages)" % "{:,}".format(len(keys)),
                 "generated")


def replay_vs_floor(trace, frames=None, core="compiled", stream=False):
    """The report of one replay with its floor: ``time_replay / floor``
    is the replay's own work over LZ4's (``stream``: the streaming replay)."""
    config = ReplayConfig(frames=frames, core=core, stream=stream)
    return run_replay(trace, config, factory=PageFactory.synthetic())


def end_to_end(args, core):
    """Seconds of ``python -m vswapfast replay ARGS --core CORE --no-floor``,
    process start to exit."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "vswapfast", "replay", *args, "--core", core,
                    "--no-floor", "--no-progress"], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("traces", help="directory with orm-busy.trace.xz and web07.trace.xz")
    parser.add_argument("--quick", action="store_true", help="short traces")
    parser.add_argument("--no-pure", action="store_true", help="skip the end-to-end runs")
    parser.add_argument("--stream", action="store_true",
                        help="the streaming replay (vswapfast.stream) instead of the offline one")
    parser.add_argument("--repeat", type=int, default=3,
                        help="tries of each figure; the best one counts (default 3)")
    args = parser.parse_args(argv)
    events = 200_000 if args.quick else None
    cases = []
    for name, frames in (("orm-busy.trace.xz", 8000), ("web07.trace.xz", None)):
        path = os.path.join(args.traces, name)
        trace = read_trace(path)
        if events:
            trace = trace.head(events)
        cases.append((name, trace, frames, [path, "--frames", str(frames)] if frames
                      else [path]))
    block = block_trace(100_000 if args.quick else 1_000_000)
    block_path = os.path.join(os.environ.get("TMPDIR", "/tmp"), "vswapfast-block-keys.txt")
    np.savetxt(block_path, block.keys, fmt="%d")
    cases.append(("block (cold misses)", block, None, [block_path]))
    try:
        for name, trace, frames, cli in cases:
            # On a shared machine the load shifts within a run: each figure
            # is the best of --repeat tries, replay and floor alternating.
            reports = [replay_vs_floor(trace, frames, stream=args.stream)
                       for _ in range(args.repeat)]
            report = reports[0]
            replay = min(r.time_replay for r in reports)
            floor = min(r.floor for r in reports)
            line = ("%-22s %9s swap-outs %9s swap-ins  replay %6.2f s (reclaim %.2f, core "
                    "%.2f)  floor %6.2f s  replay/floor %.2fx" % (
                        name, "{:,}".format(report.swap_outs), "{:,}".format(report.swap_ins),
                        replay, min(r.time_simulate for r in reports),
                        min(r.time_core for r in reports), floor, replay / floor))
            if not args.no_pure:
                if events:
                    cli = cli + ["--events", str(events)]
                compiled = min(end_to_end(cli, "compiled") for _ in range(args.repeat))
                pure = min(end_to_end(cli, "pure") for _ in range(max(1, args.repeat - 1)))
                line += "  end to end: compiled %.2f s, pure %.2f s (%.2fx)" % (
                    compiled, pure, pure / compiled)
            print(line, flush=True)
    finally:
        os.unlink(block_path)


if __name__ == "__main__":
    main()
