"""Helpers of the trace format tests: writing traces (compressed or not),
the pages a block request touches worked out plainly, and an LRU written
the plain way to check the replay's counts against."""

import gzip
import lzma
import random
from collections import OrderedDict

import numpy as np

from vswapfast.replay import ReplayConfig, Trace, read_trace, run_replay, simulate_lru

COMPRESSIONS = ("plain", "xz", "gzip", "zstd")


def compress(data, kind):
    """``data`` compressed with ``kind`` (one of COMPRESSIONS)."""
    if kind == "plain":
        return data
    if kind == "xz":
        return lzma.compress(data)
    if kind == "gzip":
        return gzip.compress(data)
    if kind == "zstd":
        import zstandard
        return zstandard.ZstdCompressor().compress(data)
    raise ValueError(kind)


def write(path, data, kind="plain"):
    path.write_bytes(compress(data, kind))
    return path


def block_pages(offset, size):
    """The 4 KiB pages a request of ``size`` bytes at ``offset`` touches."""
    return list(range(offset // 4096, (offset + size - 1) // 4096 + 1)) if size else []


def lru_counts(keys, frames):
    """(hits, cold misses, swap-outs, swap-ins) of an LRU of ``frames``
    pages over ``keys``, the plain way."""
    resident = OrderedDict()
    swapped = set()
    hits = cold = outs = ins = 0
    for key in keys:
        if key in resident:
            resident.move_to_end(key)
            hits += 1
            continue
        if key in swapped:
            swapped.remove(key)
            ins += 1
        else:
            cold += 1
        resident[key] = None
        if len(resident) > frames:
            victim, _ = resident.popitem(last=False)
            swapped.add(victim)
            outs += 1
    return hits, cold, outs, ins


def skewed(n, distinct, seed):
    """A skewed access pattern over ``distinct`` values."""
    rng = random.Random(seed)
    return [min(int(rng.paretovariate(1.2)) - 1, distinct - 1) if rng.random() < 0.7
            else rng.randrange(distinct) for _ in range(n)]


def check_replay(path, expected_keys, frames, fmt="auto", options=None, core="pure"):
    """Replay the trace at ``path`` and check its counts against the plain
    LRU over ``expected_keys``; returns the report."""
    trace = read_trace(str(path), fmt, options)
    assert trace.keys.tolist() == list(expected_keys)
    lru = simulate_lru(trace, frames)
    hits, cold, outs, ins = lru_counts(expected_keys, frames)
    assert (lru.hits, lru.cold_misses, lru.swap_outs, lru.swap_ins) == (hits, cold, outs, ins)
    report = run_replay(trace, ReplayConfig(frames=frames, core=core, floor=False))
    assert (report.hits, report.cold_misses, report.swap_outs, report.swap_ins) == (
        hits, cold, outs, ins)
    assert report.verified == ins and report.mismatches == 0
    return report


def single_line_error(excinfo):
    """The message of a raised TraceError, checked to be one line."""
    message = str(excinfo.value)
    assert "\n" not in message
    return message


__all__ = ["COMPRESSIONS", "Trace", "block_pages", "check_replay", "compress", "lru_counts",
           "np", "single_line_error", "skewed", "write"]
