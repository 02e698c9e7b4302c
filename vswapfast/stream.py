"""Replay a trace as a stream: memory bounded by the distinct pages.

The offline replay (:func:`vswapfast.replay.run_replay`) holds the whole
trace and every miss at once.  Here the trace is read twice, a chunk at a
time:

1. A first pass counts the distinct keys (and the events): they set the
   default frames (10% of the distinct keys), the batch step under a pool
   limit and the swap file's size, as they do offline.  The reclaim's hash
   map from key to a dense page id is filled on the way
   (``StreamReclaim.count``).
2. The second pass feeds the reclaim (``StreamReclaim`` of
   ``vswapfast._reclaim``, or its twin in ``vswapfast.pure.reclaim``: the
   exact LRU or the kernel's two lists, one state per distinct page) a few
   thousand events at a time; it returns their misses, with each
   eviction's victim, version and shadow and each swap-in's refault.  The
   misses are cut into the same steps of misses as offline, and each step's
   swap work (``_Replayer.swap_out``/``swap_in``, shared with the offline
   replay) is done as soon as the step is complete.  The swap entry of a
   swapped-out page is kept per page id.

So the replay holds, besides its pool and space, a few arrays per distinct
page and the misses of at most a step and a chunk; its counts, time series
and verification are those of the offline replay.
"""

import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Optional

import numpy as np

from vswapfast.reclaim import loops
from vswapfast.replay import (
    FLOOR_TITLES, PAGE_SIZE, Refaults, ReplayError, _floor_calls, _Replayer, batch_size,
    finish_report, floor_call_cost, new_report, prepare, series_of, shard_of,
    timeseries_edges)

#: Events fed to the reclaim at a time: what it returns per miss of them
#: (a hundred bytes) stays small next to a chunk of the trace.
FEED_EVENTS = 1 << 13
#: The share of the progress bar the first pass takes.
COUNT_SHARE = 0.2

#: The fields of the reclaim's misses the swap work uses.
_FIELDS = ("event", "key", "pid", "version", "evicted_as", "victim_key", "victim_pid",
           "victim_version", "victim_shadow", "refault_clock", "workingset_size", "activated",
           "shadow")


class TraceStream:
    """A trace read a chunk at a time, from its start, as often as needed:
    ``chunks(progress)`` yields ``(keys, writes)`` pairs (``writes`` None
    when the format has none); ``progress(fraction)`` is called as it goes
    on.  ``name`` and ``format`` are for the report."""

    def __init__(self, name, fmt, open_chunks):
        self.name = name
        self.format = fmt
        self._open = open_chunks

    def chunks(self, progress=None):
        return self._open(progress)

    @classmethod
    def of_trace(cls, trace, chunk=1 << 16):
        """A :class:`vswapfast.replay.Trace` in memory, in chunks of
        ``chunk`` events (progress over its events)."""
        def open_chunks(progress):
            n = len(trace.keys)
            for lo in range(0, n, chunk):
                hi = min(n, lo + chunk)
                yield trace.keys[lo:hi], None if trace.writes is None else trace.writes[lo:hi]
                if progress is not None:
                    progress(hi / n)
        return cls(trace.name, trace.format, open_chunks)

    @classmethod
    def of_file(cls, path, fmt="auto", options=None, limit=None):
        """The trace file at ``path`` in one of ``vswapfast.traces.FORMATS``
        (progress over the file's bytes); ``limit`` stops after that many
        events.  The format is told now (a TraceError for a bad file)."""
        from vswapfast import traces
        source, fmt = traces.open_trace(path, fmt, options)
        source.close()

        def open_chunks(progress):
            count = 0
            with traces.TraceReader(path, fmt, options, progress) as reader:
                for chunk in reader:
                    keys, writes = chunk.keys, chunk.writes
                    if limit is not None and count + len(keys) >= limit:
                        keys = keys[:limit - count]
                        writes = None if writes is None else writes[:limit - count]
                        yield keys, writes
                        return
                    count += len(keys)
                    yield keys, writes
        return cls(os.path.basename(str(path)) or str(path), fmt, open_chunks)


@dataclass
class _Part:
    """One shard's part of one step: its swap-outs (eviction numbers, victim
    keys, page ids, versions, shadows) and its swap-ins (the eviction each
    one brings back, keys, page ids, versions, refaults)."""
    out_evno: np.ndarray
    out_key: np.ndarray
    out_pid: np.ndarray
    out_version: np.ndarray
    out_shadow: Optional[np.ndarray]
    in_evno: np.ndarray
    in_key: np.ndarray
    in_pid: np.ndarray
    in_version: np.ndarray
    refaults: Optional[Refaults]


@dataclass
class _Step:
    """The misses of one step, cut into one part per shard; ``event`` is
    the event of its last miss (the trace's length for the last step)."""
    parts: list
    event: int
    last: bool


class _StreamRun:
    """The second pass: the reclaim fed chunk by chunk, its misses cut into
    steps, each step's swap work done by the shards' threads."""

    def __init__(self, replayer, reclaim, config, step, frames, events, factory):
        self.replayer = replayer
        self.reclaim = reclaim
        self.config = config
        self.step = step
        self.frames = frames
        self.events = events
        self.factory = factory
        self.kernel = config.reclaim == "kernel"
        self.threads = config.threads
        # The swap entry of each swapped-out page, by page id.
        self.entries = np.zeros(max(1, reclaim.distinct), dtype=np.uint64)
        self.pending = None
        self.pending_first = 0          # the miss number of the first pending miss
        self.edges = timeseries_edges(events, config.timeseries_bins)
        bins = len(self.edges) - 1
        self.series = dict(swap_outs=np.zeros(bins, np.int64), swap_ins=np.zeros(bins, np.int64),
                           activations=np.zeros(bins, np.int64))
        self.counts = [replayer.new_counts() for _ in range(self.threads)]
        # Each shard's page buffer, as large as its largest step's swap-outs.
        self.buffers = [np.empty((0, PAGE_SIZE), dtype=np.uint8)] * self.threads
        self.pool = (ThreadPoolExecutor(self.threads, thread_name_prefix="replay")
                     if self.threads > 1 else None)
        self.floor = _Floor(factory, config.compressor) if config.floor else None
        self.time_read = self.time_simulate = self.time_swap = 0.0

    def close(self):
        if self.pool is not None:
            self.pool.shutdown(wait=True)

    def run(self, stream, progress=None):
        chunks = iter(stream.chunks(progress))
        while True:
            start = time.perf_counter()
            chunk = next(chunks, None)
            self.time_read += time.perf_counter() - start
            if chunk is None:
                break
            keys, writes = chunk
            for lo in range(0, len(keys), FEED_EVENTS):
                hi = lo + FEED_EVENTS
                start = time.perf_counter()
                misses = self.reclaim.feed(keys[lo:hi], None if writes is None else writes[lo:hi])
                self._add(misses)
                self.time_simulate += time.perf_counter() - start
                self._run_full_steps()
        self._run_steps([self._cut(self.pending, self.pending_first, self.events, True)])
        for counts in self.counts:
            self.replayer.add_counts(counts)

    def _add(self, misses):
        """The misses of a feed into the time series and the pending misses."""
        edges = self.edges
        evicts = misses["victim_pid"] >= 0
        ins = misses["evicted_as"] >= 0
        bins = len(edges) - 1

        def per_interval(events):
            return np.bincount(np.searchsorted(edges, events, "right") - 1, minlength=bins)
        self.series["swap_outs"] += per_interval(misses["event"][evicts])
        self.series["swap_ins"] += per_interval(misses["event"][ins])
        if self.kernel:
            self.series["activations"] += per_interval(misses["event"][misses["activated"]])
        fresh = {name: misses[name] for name in _FIELDS}
        if self.pending is None:
            self.pending = fresh
            self.pending_first = misses["first_miss"]
        else:
            self.pending = {name: np.concatenate((self.pending[name], fresh[name]))
                            for name in _FIELDS}

    def _run_full_steps(self):
        pending = self.pending
        n = len(pending["event"])
        if n < self.step:
            return
        full = n // self.step * self.step
        steps = []
        for lo in range(0, full, self.step):
            part = {name: values[lo:lo + self.step] for name, values in pending.items()}
            steps.append(self._cut(part, self.pending_first + lo, int(part["event"][-1]), False))
        self.pending = {name: values[full:].copy() for name, values in pending.items()}
        self.pending_first += full
        self._run_steps(steps)

    def _cut(self, misses, first_miss, event, last):
        """A step of ``misses``, the first of them miss number
        ``first_miss``, cut into its shards' parts."""
        evicts = np.flatnonzero(misses["victim_pid"] >= 0)
        ins = np.flatnonzero(misses["evicted_as"] >= 0)
        if self.threads == 1:
            shards = [(evicts, ins)]
        else:
            out_shard = shard_of(misses["victim_key"][evicts], self.threads)
            in_shard = shard_of(misses["key"][ins], self.threads)
            shards = [(evicts[out_shard == s], ins[in_shard == s]) for s in range(self.threads)]
        parts = []
        for ev, sw in shards:
            refaults = None
            if self.kernel:
                refaults = Refaults(misses["shadow"][sw], misses["refault_clock"][sw],
                                    misses["workingset_size"][sw], misses["activated"][sw])
            parts.append(_Part(
                # Eviction i is miss frames + i (every miss evicts once the
                # frames are full), as evicted_as numbers them.
                out_evno=first_miss + ev - self.frames, out_key=misses["victim_key"][ev],
                out_pid=misses["victim_pid"][ev], out_version=misses["victim_version"][ev],
                out_shadow=misses["victim_shadow"][ev] if self.kernel else None,
                in_evno=misses["evicted_as"][sw], in_key=misses["key"][sw],
                in_pid=misses["pid"][sw], in_version=misses["version"][sw], refaults=refaults))
        return _Step(parts, event, last)

    def _run_steps(self, steps):
        start = time.perf_counter()
        if self.reclaim.distinct > len(self.entries):
            grown = np.zeros(self.reclaim.distinct, dtype=np.uint64)
            grown[:len(self.entries)] = self.entries
            self.entries = grown
        replayer = self.replayer
        futures = []
        try:
            if self.pool is None:
                self._shard_work(0, steps)
            else:
                futures = [self.pool.submit(self._shard_work, s, steps)
                           for s in range(self.threads)]
                for future in futures:
                    future.result()
        except BaseException as exc:            # interrupted: stop the others
            replayer.errors.append(exc)
            wait(futures)
            raise
        if replayer.errors:
            raise replayer.errors[0]
        self.time_swap += time.perf_counter() - start
        if self.floor is not None:
            for step in steps:
                self.floor.step(step.parts)

    def _shard_work(self, shard, steps):
        """One shard's swap work over ``steps``, in order."""
        replayer, counts = self.replayer, self.counts[shard]
        entries = self.entries
        try:
            for step in steps:
                if replayer.errors:
                    return
                part = step.parts[shard]
                local = None
                if len(part.out_key):
                    if len(self.buffers[shard]) < len(part.out_key):
                        self.buffers[shard] = np.empty((len(part.out_key), PAGE_SIZE),
                                                       dtype=np.uint8)
                    local = replayer.swap_out(part.out_key, part.out_version, part.out_shadow,
                                              counts, self.buffers[shard])
                if shard == 0:
                    replayer.maybe_sample(step.event, step.last)
                mine = np.zeros(len(part.out_key), dtype=bool)
                if len(part.in_key):
                    got = entries[part.in_pid]
                    if local is not None:
                        # A page swapped out and back in within the step:
                        # its entry is this step's, not yet kept by page id.
                        at = np.minimum(np.searchsorted(part.out_evno, part.in_evno),
                                        len(part.out_evno) - 1)
                        here = part.out_evno[at] == part.in_evno
                        got[here] = local[at[here]]
                        mine[at[here]] = True
                    replayer.swap_in(got, part.in_key, part.in_version, part.refaults, counts)
                if local is not None:
                    # The pages still out after the step: each page once.
                    entries[part.out_pid[~mine]] = local[~mine]
        except BaseException as exc:
            replayer.errors.append(exc)


class _Floor:
    """The compression floor of a streamed replay, step by step: the
    library compresses each step's swapped-out pages and decompresses its
    swapped-in ones, as ``vswapfast.replay.measure_floor`` does offline;
    only the library's calls are timed."""

    def __init__(self, factory, compressor):
        self.factory = factory
        self.compress, self.decompress = _floor_calls(compressor)
        self.blocks = {}
        self.t_compress = 0.0
        self.t_decompress = 0.0

    def step(self, parts):
        perf_counter = time.perf_counter
        for part in parts:
            if not len(part.out_key):
                continue
            pages, _zero = self.factory.page_batch(part.out_key, part.out_version)
            view = memoryview(pages).cast("B")
            rows = [view[i:i + PAGE_SIZE] for i in range(0, len(view), PAGE_SIZE)]
            compress = self.compress
            start = perf_counter()
            out = [compress(row) for row in rows]
            self.t_compress += perf_counter() - start
            self.blocks.update(zip(part.out_evno.tolist(), out))
        for part in parts:
            if not len(part.in_key):
                continue
            todo = [self.blocks.pop(e) for e in part.in_evno.tolist()]
            decompress = self.decompress
            start = perf_counter()
            for block in todo:
                decompress(block)
            self.t_decompress += perf_counter() - start


def _scaled(progress, lo, hi, label):
    """``progress(fraction, label)`` for a fraction of the run in [lo, hi]."""
    if progress is None:
        return None
    return lambda fraction: progress(lo + fraction * (hi - lo), label)


def count_keys(stream, reclaim, progress=None):
    """The first pass: every key of ``stream`` given a page id by
    ``reclaim``; returns the number of events."""
    events = 0
    for keys, _writes in stream.chunks(progress):
        reclaim.count(keys)
        events += len(keys)
    return events


def run_stream(stream, config, factory=None, progress=None, time_read=0.0, time_pages=0.0):
    """Replay the :class:`TraceStream` ``stream`` as ``config`` says (the
    counts of :func:`vswapfast.replay.run_replay`); returns a
    ``ReplayReport``.  ``progress(fraction, label)``, if given, is called as
    the two passes go on.  The report's read time is both passes' reading
    (and the first pass's counting of keys)."""
    core, factory, time_pages = prepare(config, factory, time_pages)
    reclaim = loops(core.name).StreamReclaim(config.reclaim)
    start = time.perf_counter()
    events = count_keys(stream, reclaim, _scaled(progress, 0.0, COUNT_SHARE, "counting keys"))
    time_read += time.perf_counter() - start
    if events == 0:
        raise ReplayError("trace %s has no events" % stream.name)
    distinct = reclaim.distinct
    frames = config.frames if config.frames is not None else max(1, distinct // 10)
    reclaim.start(frames)
    step = batch_size(distinct, frames, config.chunk, config.threads, config.pool_limit)
    report = new_report(stream.name, stream.format, factory, core, config, events, distinct,
                        frames)
    report.batch = step
    with tempfile.TemporaryDirectory(prefix="vswapfast-") as tmpdir:
        replayer = _Replayer(factory, core, config, None, events)
        replayer.setup(tmpdir, step, distinct)
        run = _StreamRun(replayer, reclaim, config, step, frames, events, factory)
        try:
            label = "swap work" if not config.floor else "swap work and %s floor" % (
                FLOOR_TITLES[config.compressor])
            run.run(stream, _scaled(progress, COUNT_SHARE, 1.0, label))
            finish_report(report, replayer, reclaim.evictions)
            series = run.series
            report.timeseries = series_of(
                run.edges, series["swap_outs"], series["swap_ins"],
                series["activations"] if run.kernel else None, replayer.samples,
                config.pool_limit)
        finally:
            run.close()
            replayer.close()
    report.misses = reclaim.misses
    report.hits = events - reclaim.misses
    report.swap_outs = reclaim.evictions
    report.swap_ins = reclaim.swap_ins
    report.cold_misses = reclaim.misses - reclaim.swap_ins
    if run.kernel:
        report.refaults = reclaim.swap_ins
        report.activations = reclaim.activations
        report.promotions = reclaim.promotions
        report.deactivations = reclaim.deactivations
    report.time_read = time_read + run.time_read
    report.time_pages = time_pages
    report.time_simulate = run.time_simulate
    report.time_swap = run.time_swap
    if run.floor is not None:
        report.floor_compress = run.floor.t_compress
        report.floor_decompress = run.floor.t_decompress
        if config.compressor == "lz4":
            report.floor_call_cost = floor_call_cost(report.swap_outs, report.swap_ins)
    return report
