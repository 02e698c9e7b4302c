"""Replay a page-access trace through resident frames into a virtual swap
space and its zswap pool.

Every event of a trace accesses one page (a key).  The pages live in ``N``
resident frames: an access to a page that is not resident is a miss; when
all frames are in use, the miss evicts a page, which is a *swap-out*: a new
swap entry is allocated in the ``VSwap`` and the page is stored in the
``Zswap`` pool.  Which page is evicted is the reclaim's choice: the least
recently used one (``lru``, an exact LRU) or the kernel's active/inactive
lists with workingset refault detection (``kernel``, see
:mod:`vswapfast.reclaim`).  A miss on a page that had been swapped out is a
*swap-in*: the page is loaded back (from the pool, or from the swap file if
it was written back), compared with what was swapped out, and its swap
entry is freed.

How the work is laid out
------------------------
1. :func:`read_trace` reads the keys (the formats of ``vswapfast.traces``).
2. :func:`simulate` finds every miss and every eviction without touching
   a page: :func:`simulate_lru` for the LRU, or
   :func:`vswapfast.reclaim.simulate_kernel` (a C loop over the events)
   for the kernel's reclaim, which also gives each eviction's shadow.  For
   the LRU, an access whose previous access to the same key lies at most
   ``N`` events back is always a hit, so only the other events (and the
   candidates for eviction) go through a loop (in C); the rest is numpy.
   The result lists, in order, the evictions (swap-outs) and the misses on
   swapped-out keys (swap-ins), each swap-in paired with the eviction that
   put its page out.
   Pages are built from templates in C (``vswapfast._pages``), once to be
   stored and once, compared in place, to verify what was loaded back.
3. :func:`run_replay` does the swap work in steps of misses with the batch
   calls (``VSwap.alloc_many``/``free_many``, ``Zswap.store_many``/
   ``load_many``), which run in C without the GIL in the compiled core.
   Within a step the swap-outs are stored before the swap-ins are loaded
   (each swap-in's page was stored in its step or before); under a pool
   limit, steps are kept small next to the number of pages swapped out, so
   that the pool's size, and so its writeback, stay close to a sequential
   replay's (see :func:`batch_size`).
   With several threads each one takes the keys of one shard (the keys are
   split into disjoint sets by a hash) and runs its shard's swap work in
   order, all against the same space and pool.
4. :func:`measure_floor` times the compression work alone for the same
   run: compression of every swapped-out page and decompression of every
   swapped-in page, with the pool's compressor's library (python-lz4 for
   lz4; for zstd and lzo the system library the compiled core calls).

This is the offline replay: it holds the whole trace and every miss.
``vswapfast.stream`` replays a trace file as a stream instead, in memory
bounded by the distinct pages, with the same report (``vswapfast replay``
does so by default; ``ReplayConfig(stream=True)`` from Python).
"""

import os
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, Optional

import numpy as np

from vswapfast.batch import (BATCH_CORRUPT, BATCH_EMPTY, BATCH_OK, BATCH_REJECTED, INDEX_DESIGNS,
                             index_alias)
from vswapfast.compressors import COMPRESSORS
from vswapfast.errors import NoPageError, SwapFileFullError
from vswapfast.reclaim import (RECLAIMS, ReclaimResult, loops, refault_is_recent, simulate_kernel,
                               sort_by_key as _sort_by_key)
from vswapfast.workload import PAGE_SIZE, PageFactory, default_trace, mix64

#: Trace formats: see ``vswapfast.traces`` (one module per format).
FORMATS = ("auto", "keys", "rw", "u32be", "oracleGeneral", "csv", "msr", "cloudphysics")
CORES = ("compiled", "pure")
DEFAULT_CHUNK = 1024
#: Most pool samples of a replay's time series (and of its pool peak).
MAX_SAMPLES = 128


class ReplayError(Exception):
    """Bad input to a replay (a trace that cannot be read, an impossible
    setting).  The message is one line, meant for the user."""


# -- cores --------------------------------------------------------------------

@dataclass(frozen=True)
class Core:
    """One core's classes."""
    name: str
    VSwap: type
    Zswap: type
    SwapFile: type
    ZswapIndex: Optional[type]


class _SwapCacheFolio:
    """The folio the replay's pages pass through the swap cache as.  Not a
    page buffer, so that the pool's read() passes it over."""

    __slots__ = ()

    def __repr__(self):
        return "<replay folio>"


def load_core(name):
    """The classes of the ``compiled`` or the ``pure`` core."""
    if name == "compiled":
        try:
            from vswapfast import _swapfile, _vswap, _zswap
        except ImportError as exc:
            raise ReplayError("the compiled core is not available (%s); build it with "
                              "'python setup.py build_ext --inplace', or use --core pure"
                              % exc) from None
        try:
            from vswapfast._zswap_index import ZswapIndex
        except ImportError:
            ZswapIndex = None
        return Core("compiled", _vswap.VSwap, _zswap.Zswap, _swapfile.SwapFile, ZswapIndex)
    if name == "pure":
        from vswapfast import pure
        return Core("pure", pure.VSwap, pure.Zswap, pure.SwapFile,
                    getattr(pure, "ZswapIndex", None))
    raise ReplayError("unknown core %r (choose from %s)" % (name, ", ".join(CORES)))


# -- traces -------------------------------------------------------------------

@dataclass
class Trace:
    """A page-access trace: one key per event, and which events write."""
    keys: np.ndarray                    # uint64
    writes: Optional[np.ndarray]        # bool, or None when the format has no writes
    name: str
    format: str

    def __len__(self):
        return len(self.keys)

    def head(self, events):
        """The first ``events`` events."""
        return Trace(self.keys[:events], None if self.writes is None else self.writes[:events],
                     self.name, self.format)


def default_workload(events=None, keys=None, seed=None):
    """The embedded default trace (see ``vswapfast.workload.default_trace``)."""
    from vswapfast import workload
    events = workload.DEFAULT_EVENTS if events is None else events
    keys = workload.DEFAULT_KEYS if keys is None else keys
    seed = workload.DEFAULT_SEED if seed is None else seed
    return Trace(default_trace(events, keys, seed), None,
                 "default workload (hot/cold, %s keys, seed %d)" % ("{:,}".format(keys), seed),
                 "generated")


def read_trace(path, fmt="auto", options=None, limit=None, progress=None):
    """Read a trace file in one of ``vswapfast.traces.FORMATS`` (any of them
    plain, xz-, gzip- or zstd-compressed) into a :class:`Trace`.

    ``options`` is a ``vswapfast.traces.TraceOptions`` (CSV columns, object
    splitting, block size); ``limit`` stops after that many events;
    ``progress(fraction)`` is called as the file is read.  The file is read
    in chunks (``vswapfast.traces.TraceReader``), concatenated here for the
    offline replay (``vswapfast.stream`` replays the chunks as they come).
    """
    from vswapfast import traces
    keys, writes, fmt = traces.read_all(path, fmt, options, limit=limit, progress=progress)
    if len(keys) == 0:
        raise ReplayError("trace %s has no events" % path)
    return Trace(keys, writes, os.path.basename(str(path)) or str(path), fmt)


# -- the LRU ------------------------------------------------------------------

#: The result of :func:`simulate_lru` (and of ``--reclaim kernel``).
LruResult = ReclaimResult


def simulate_lru(trace, frames, core="compiled"):
    """Run ``trace`` through an LRU of ``frames`` resident pages.

    The LRU holds, at any time, the ``frames`` keys with the most recent
    last accesses: the keys whose last access comes at or after an event
    ``b`` that moves only when a page is evicted.  So an access is a hit
    exactly when the previous access to its key is at or after ``b``; one at
    most ``frames`` events after that previous access always is, and only
    the other accesses go through the loop.  A miss, once the frames are
    full, evicts the key whose last access is the first one at or after
    ``b`` not yet followed by a later access to its key, and ``b`` moves
    past it.  Only a last access followed by no access to its key within
    ``frames`` events can be that one, so the loop walks those alone; it
    runs in C (``vswapfast._reclaim.lru_misses``) unless ``core`` is
    ``pure``.
    """
    keys = trace.keys
    n = len(keys)
    frames = int(frames)
    if frames < 1:
        raise ReplayError("frames must be at least 1, not %d" % frames)
    order, sorted_keys = _sort_by_key(keys)
    # new[i]: sorted event i is the first access to its key; new[n] closes.
    new = np.ones(n + 1, dtype=bool)
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=new[1:n])
    del sorted_keys
    distinct = int(np.count_nonzero(new[:n]))
    far = np.diff(order) > frames
    # Events that may miss: first accesses, and accesses more than `frames`
    # events after the previous access to their key.
    maybe = new[:n].copy()
    maybe[1:] |= far
    at = np.flatnonzero(maybe)
    check = order[at]
    check_prev = np.where(new[at], -1, order[at - 1])
    # Last accesses that may become the LRU victim: followed by no access to
    # their key, or by one more than `frames` events later.
    maybe = new[1:].copy()
    maybe[:-1] |= far
    at = np.flatnonzero(maybe)
    cand = order[at]
    cand_next = np.where(new[at + 1], n, order[np.minimum(at + 1, n - 1)])
    del order, new, far, maybe, at
    check, check_prev = _sort_pairs(check, check_prev + 1, n)
    check_prev -= 1
    cand, cand_next = _sort_pairs(cand, cand_next, n)

    miss_events, miss_prev, victim_pos = loops(core).lru_misses(
        check, check_prev, cand, cand_next, frames, n)
    swapin = np.flatnonzero(miss_prev >= 0)
    in_evict = np.searchsorted(victim_pos, miss_prev[swapin])
    versions = None
    if trace.writes is not None and trace.writes.any():
        versions = _versions(trace, victim_pos)
    cold_misses = len(miss_prev) - len(swapin)
    return LruResult(
        events=n, frames=frames, distinct=distinct, hits=n - len(miss_prev),
        cold_misses=cold_misses, miss_count=len(miss_prev),
        cold_fill=min(frames, len(miss_prev)), victim_pos=victim_pos,
        victim_keys=keys[victim_pos], victim_versions=versions,
        in_miss=swapin, in_evict=in_evict, miss_events=miss_events)


def simulate(trace, frames, reclaim="lru", core="compiled"):
    """The misses and evictions of ``trace`` through ``frames`` resident
    pages under ``reclaim`` (``lru`` or ``kernel``, see
    ``vswapfast.reclaim``), with the loops of ``core``."""
    if reclaim == "lru":
        return simulate_lru(trace, frames, core)
    if reclaim == "kernel":
        if int(frames) < 1:
            raise ReplayError("frames must be at least 1, not %d" % frames)
        return simulate_kernel(trace, frames, core, versions_of=_versions)
    raise ReplayError("unknown reclaim %r (choose from %s)" % (reclaim, ", ".join(RECLAIMS)))


def _count_distinct(keys):
    """How many distinct keys (a plain sort: numpy's hash-based unique is
    several times slower on large uint64 arrays)."""
    if len(keys) == 0:
        return 0
    ordered = np.sort(keys)
    return 1 + int(np.count_nonzero(ordered[1:] != ordered[:-1]))


def _sort_pairs(first, second, n):
    """``first`` (distinct values in [0, n)) sorted, with ``second`` (values
    in [0, n]) kept alongside."""
    bits = max(1, int(n).bit_length())
    if 2 * bits <= 64:
        packed = first.astype(np.uint64) << np.uint64(bits)
        packed |= second.astype(np.uint64)
        packed.sort()
        return ((packed >> np.uint64(bits)).astype(np.int64),
                (packed & np.uint64((1 << bits) - 1)).astype(np.int64))
    order = np.argsort(first)
    return first[order], second[order]


def _versions(trace, positions):
    """How many writes each key had up to and including each position."""
    keys = trace.keys
    order, sorted_keys = _sort_by_key(keys)
    sorted_writes = trace.writes[order].astype(np.int64)
    running = np.cumsum(sorted_writes)
    start = np.ones(len(keys), dtype=bool)
    start[1:] = sorted_keys[1:] != sorted_keys[:-1]
    first = np.maximum.accumulate(np.where(start, np.arange(len(keys)), 0))
    before = running[first] - sorted_writes[first]
    count = np.empty(len(keys), dtype=np.int64)
    count[order] = running - before
    return count[positions].astype(np.uint64)


# -- the replay -----------------------------------------------------------------

@dataclass
class ReplayConfig:
    frames: Optional[int] = None          # None: 10% of the distinct keys
    core: str = "compiled"
    index: str = "vswap"
    threads: int = 1
    pool_limit: Optional[int] = None      # bytes; None: no limit
    swapfile: Optional[str] = None        # None: a temporary file
    use_swapfile: bool = True
    swapfile_size: Optional[int] = None   # None: a slot for every distinct key
    writeback: bool = True
    chunk: int = DEFAULT_CHUNK
    floor: bool = True
    compressor: str = "lz4"               # the pool's compressor (vswapfast.compressors)
    accept_threshold_percent: float = 90.0
    reclaim: str = "lru"                  # lru or kernel (see vswapfast.reclaim)
    timeseries_bins: int = 200            # intervals of the report's time series
    stream: bool = False                  # stream the trace (vswapfast.stream)

    def check(self):
        if self.reclaim not in RECLAIMS:
            raise ReplayError("unknown reclaim %r (choose from %s)"
                              % (self.reclaim, ", ".join(RECLAIMS)))
        if not 1 <= self.timeseries_bins <= 1 << 20:
            raise ReplayError("timeseries_bins must be between 1 and 1048576, not %d"
                              % self.timeseries_bins)
        if self.frames is not None and self.frames < 1:
            raise ReplayError("--frames must be at least 1, not %d" % self.frames)
        if self.core not in CORES:
            raise ReplayError("unknown core %r (choose from %s)" % (self.core, ", ".join(CORES)))
        self.index = index_alias(self.index, "index")
        if self.index not in INDEX_DESIGNS:
            raise ReplayError("unknown index design %r (choose from %s)"
                              % (self.index, ", ".join(INDEX_DESIGNS)))
        if not 1 <= self.threads <= 256:
            raise ReplayError("--threads must be between 1 and 256, not %d" % self.threads)
        if self.pool_limit is not None and self.pool_limit < 0:
            raise ReplayError("--pool-limit must not be negative")
        if not 1 <= self.chunk <= 1 << 16:
            raise ReplayError("--chunk must be between 1 and 65536, not %d" % self.chunk)
        if self.swapfile_size is not None and self.swapfile_size < 2 * PAGE_SIZE:
            raise ReplayError("--swapfile-size must be at least 8 KiB")
        if self.compressor not in COMPRESSORS:
            raise ReplayError("unknown compressor %r (choose from %s)"
                              % (self.compressor, ", ".join(COMPRESSORS)))


@dataclass
class ReplayReport:
    """What a replay did and how long it took (times in seconds)."""
    trace: str
    format: str
    pages: str
    core: str
    index: str
    threads: int
    events: int
    distinct_keys: int
    frames: int
    reclaim: str = "lru"
    hits: int = 0
    misses: int = 0
    cold_misses: int = 0
    swap_outs: int = 0
    swap_ins: int = 0
    refaults: int = 0
    activations: int = 0
    promotions: int = 0
    deactivations: int = 0
    shadows_checked: int = 0
    shadow_mismatches: int = 0
    zswap_hits: int = 0
    swapfile_reads: int = 0
    memory_reads: int = 0
    zero_pages: int = 0
    rejected: int = 0
    rejected_to_swapfile: int = 0
    rejected_in_memory: int = 0
    writebacks: int = 0
    pool_limit: Optional[int] = None
    pool_limit_hit: int = 0
    pool_size: int = 0
    pool_size_peak: int = 0
    stored_pages: int = 0
    compressed_bytes: int = 0
    compression_ratio: float = 0.0
    verified: int = 0
    mismatches: int = 0
    first_mismatch: Optional[str] = None
    time_read: float = 0.0
    time_pages: float = 0.0
    time_simulate: float = 0.0
    time_swap: float = 0.0
    time_core: float = 0.0
    floor_compress: Optional[float] = None
    floor_decompress: Optional[float] = None
    floor_call_cost: Optional[float] = None
    compressor: str = "lz4"
    chunk: int = DEFAULT_CHUNK
    batch: int = 0
    swapfile: Optional[str] = None
    lock_stats: Dict[str, int] = field(default_factory=dict)
    # Cluster-lock acquisitions of the space (and, for the tree designs,
    # tree-lock acquisitions) per swapped-out page, over the whole run.
    cluster_locks_per_page: float = 0.0
    tree_locks_per_page: float = 0.0
    timeseries: Optional[Dict[str, list]] = None

    @property
    def time_replay(self):
        """The reclaim simulation and the swap work: the replay proper."""
        return self.time_simulate + self.time_swap

    @property
    def floor(self):
        if self.floor_compress is None:
            return None
        return self.floor_compress + self.floor_decompress

    def to_dict(self):
        out = asdict(self)
        out["time_replay"] = self.time_replay
        out["floor"] = self.floor
        if self.floor:
            out["replay_over_floor"] = self.time_replay / self.floor
            out["swap_over_floor"] = self.time_swap / self.floor
        return out

    def _reclaim_lines(self, count, pct):
        """Lines on the kernel reclaim's refaults and shadows (none for lru)."""
        if self.reclaim != "kernel":
            return []
        return [
            "refaults     %s, %s activated by their refault distance%s; %s pages promoted "
            "on a second access, %s deactivated" % (
                count(self.refaults), count(self.activations),
                pct(self.activations, self.refaults), count(self.promotions),
                count(self.deactivations)),
            "shadows      %s read back from the swap descriptors, %s" % (
                count(self.shadows_checked),
                "each as left at swap-out" if not self.shadow_mismatches
                else "%s DIFFER" % count(self.shadow_mismatches)),
        ]

    def format_text(self):
        """The report as lines of text."""
        def count(n):
            return "{:,}".format(n)

        def pct(part, whole):
            return " (%.1f%%)" % (100.0 * part / whole) if whole else ""

        def mib(n):
            return "%.1f MiB" % (n / 1048576.0)

        lines = [
            "trace        %s [%s]: %s events, %s distinct keys" % (
                self.trace, self.format, count(self.events), count(self.distinct_keys)),
            "pages        %s" % self.pages,
            "setup        core %s, index %s, compressor %s, %d thread%s, %s frames, %s reclaim, "
            "pool limit %s, %s, batches of %s misses" % (
                self.core, self.index, self.compressor, self.threads,
                "" if self.threads == 1 else "s",
                count(self.frames), self.reclaim, "none" if self.pool_limit is None else mib(self.pool_limit),
                "swap file %s" % self.swapfile if self.swapfile else "no swap file",
                count(self.batch)),
            "",
            "hits         %s%s" % (count(self.hits), pct(self.hits, self.events)),
            "misses       %s (%s cold, %s swap-ins)" % (
                count(self.misses), count(self.cold_misses), count(self.swap_ins)),
            *self._reclaim_lines(count, pct),
            "swap-outs    %s (%s zero pages%s)" % (
                count(self.swap_outs), count(self.zero_pages),
                ", %s rejected by the pool" % count(self.rejected) if self.rejected else ""),
            "swap-ins     %s: %s zswap hits, %s from the swap file%s" % (
                count(self.swap_ins), count(self.zswap_hits), count(self.swapfile_reads),
                ", %s refused pages kept in memory" % count(self.memory_reads)
                if self.memory_reads else ""),
            "writebacks   %s (pool limit hit %s times)" % (
                count(self.writebacks), count(self.pool_limit_hit)),
            "pool         %s now, %s at most; %s pages stored, compression ratio %.2f" % (
                mib(self.pool_size), mib(self.pool_size_peak), count(self.stored_pages),
                self.compression_ratio),
            "verified     %s swapped-in pages, %s" % (
                count(self.verified),
                "all equal to what was swapped out" if not self.mismatches
                else "%s DIFFER (first: %s)" % (count(self.mismatches), self.first_mismatch)),
            "",
            "time         read %.2f s, page templates %.2f s, reclaim %.2f s, swap work %.2f s "
            "(in the core %.2f s%s)" % (self.time_read, self.time_pages, self.time_simulate,
                                        self.time_swap, self.time_core,
                                        ", summed over threads" if self.threads > 1 else ""),
            "replay       %.2f s (reclaim + swap work)" % self.time_replay,
        ]
        if self.lock_stats:
            locks = self.lock_stats

            def taken(name):
                acquired = locks.get(name + "_lock_acquisitions", 0)
                contended = locks.get(name + "_lock_contended", 0)
                return "%s taken, %s contended%s" % (count(acquired), count(contended),
                                                     pct(contended, acquired))
            lines.insert(-3, "locks        index (%s): %s; pool LRU: %s" % (
                self.index, taken("index"), taken("lru")))
            lines.insert(-3, "per page     %.1f cluster-lock acquisitions%s per swapped-out "
                         "page (swap-out, swap-in and free)" % (
                             self.cluster_locks_per_page,
                             ", %.1f tree-lock" % self.tree_locks_per_page
                             if self.tree_locks_per_page else ""))
        if self.floor is not None:
            lines.append(
                "%-12s %.2f s: %s compressing %s pages %.2f s, decompressing "
                "%s pages %.2f s" % (FLOOR_TITLES[self.compressor] + " floor", self.floor,
                                     FLOOR_LIBRARIES[self.compressor],
                                     count(self.swap_outs), self.floor_compress,
                                     count(self.swap_ins), self.floor_decompress))
            lines.append("             %s: %.2f us per page compressed, %.2f us per page "
                         "decompressed; compression ratio %.2f in the pool" % (
                             self.compressor,
                             1e6 * self.floor_compress / max(1, self.swap_outs),
                             1e6 * self.floor_decompress / max(1, self.swap_ins),
                             self.compression_ratio))
            if self.floor_call_cost is not None:
                lines.append("             (the same calls on empty input take %.2f s)"
                             % self.floor_call_cost)
            if self.floor > 0:
                lines.append("vs floor     replay %.2fx, swap work %.2fx" % (
                    self.time_replay / self.floor, self.time_swap / self.floor))
        return lines


def batch_size(distinct, frames, chunk, threads, pool_limit=None):
    """Misses per batch step: ``chunk`` swap-outs for each thread; with a
    pool limit, at most a 32nd of the pages that can be swapped out at once
    (``distinct`` keys through ``frames`` frames).

    Within a step the swap-outs are stored before the swap-ins are loaded,
    so up to a step's worth of pages are swapped out at the same time that a
    strictly sequential replay would already have brought back.  Under a
    pool limit, keeping the step small next to the swapped-out population
    keeps the pool's size, and so when it writes back, close to the
    sequential replay's.
    """
    step = max(1, chunk * threads)
    if pool_limit is not None:
        population = max(1, distinct - frames)
        step = min(step, max(8, population // 32))
    return step


def _chunk_bounds(lru, step):
    """Cut points, in miss numbers, every ``step`` misses."""
    return np.arange(0, lru.miss_count + step, step)


def shard_of(keys, threads):
    """The shard (thread) of each key: the keys split into ``threads``
    disjoint sets by a hash."""
    return (mix64(np.asarray(keys, dtype=np.uint64)) % np.uint64(threads)).astype(np.int64)


def _shards(lru, threads):
    """For each shard: (its eviction numbers, its swap-in numbers)."""
    if threads == 1:
        return [(np.arange(lru.swap_outs), np.arange(lru.swap_ins))]
    shard_of_evict = shard_of(lru.victim_keys, threads)
    shard_of_in = shard_of_evict[lru.in_evict]
    return [(np.flatnonzero(shard_of_evict == s), np.flatnonzero(shard_of_in == s))
            for s in range(threads)]


def _take(values, at):
    """``values[at]``, or None when there are no values."""
    return None if values is None else values[at]


@dataclass
class Refaults:
    """How the kernel's reclaim judged a batch of swap-ins: the shadow of
    each one's eviction, the clock at the refault, the workingset size and
    whether the page was activated."""
    shadows: np.ndarray
    clock: np.ndarray
    workingset_size: np.ndarray
    activated: np.ndarray


class _Replayer:
    """The swap work of one replay, shared by its worker threads: swap-outs
    and swap-ins in batches, given as the keys of the pages (and their
    versions, shadows and refaults), so that the offline replay and the
    streaming one (``vswapfast.stream``) share it."""

    def __init__(self, factory, core, config, progress, events):
        self.factory = factory
        self.core = core
        self.config = config
        self.progress = progress
        self.events = events
        self.lock = threading.Lock()
        self.shadow_calls = loops(core.name)
        # The folio every page passes through the swap cache as: one object,
        # so that no Python object is made per page.
        self.folio = _SwapCacheFolio()
        self.in_memory = {}
        self.totals = dict(zswap_hits=0, swapfile_reads=0, memory_reads=0, zero_pages=0,
                           rejected=0,
                           rejected_to_swapfile=0, rejected_in_memory=0, verified=0,
                           mismatches=0, shadows_checked=0, shadow_mismatches=0)
        self.samples = dict(event=[], pool_size=[], stored_pages=[], compressed_bytes=[],
                            compression_ratio=[], writebacks=[])
        # The pool is sampled after the first step that ends at or past each
        # of these events, and at the end (pool stats walk every cluster:
        # not at every step).
        self.sample_marks = np.linspace(0, events, MAX_SAMPLES + 1)[1:]
        self.next_mark = 0
        self.first_mismatch = None
        self.pool_peak = 0
        self.time_core = 0.0
        self.errors = []

    def setup(self, tmpdir, step, distinct):
        core, config = self.core, self.config
        self.space = core.VSwap()
        self.swapfile = None
        self.swapfile_path = None
        if config.use_swapfile:
            path = config.swapfile or os.path.join(tmpdir, "replay.swap")
            size = config.swapfile_size
            if size is None:
                # A slot for every page that can be swapped out at once.
                size = (distinct + step + 2) * PAGE_SIZE
            size = max(2 * PAGE_SIZE, size // PAGE_SIZE * PAGE_SIZE)
            try:
                self.swapfile = core.SwapFile(path, size)
            except OSError as exc:
                raise ReplayError("cannot create the swap file %s (%s)"
                                  % (path, exc.strerror or exc)) from None
            self.swapfile_path = config.swapfile or "(temporary)"
        limit = config.pool_limit if config.pool_limit is not None else 1 << 62
        # A store that a full pool rejects waits for the shrink worker it
        # woke, so that a replay gives the same counts on every run.
        self.pool = core.Zswap(self.space, self.swapfile, max_pool_bytes=limit,
                               writeback=config.writeback, index=config.index,
                               compressor=config.compressor,
                               accept_threshold_percent=config.accept_threshold_percent,
                               wait_for_shrink_worker=True)

    def close(self):
        self.pool.close()
        if self.swapfile is not None:
            self.swapfile.close()

    def new_counts(self):
        """A worker's own counters, added to the totals by add_counts()."""
        counts = dict.fromkeys(self.totals, 0)
        counts["time_core"] = 0.0
        return counts

    def add_counts(self, counts):
        with self.lock:
            self.time_core += counts.pop("time_core")
            for key, value in counts.items():
                self.totals[key] += value

    # -- one shard's batch ---------------------------------------------------

    def swap_out(self, keys, versions, shadows, counts, buffer):
        """Swap out the pages of ``keys`` (at ``versions``, or 0 for None),
        built in ``buffer`` (rows reused from step to step), leaving
        ``shadows`` (or 0 for None) in their swap entries; returns the swap
        entries (uint64)."""
        pool, space = self.pool, self.space
        n = len(keys)
        pages, zero = self.factory.page_batch(keys, versions, out=buffer[:n])
        counts["zero_pages"] += int(np.count_nonzero(zero))
        # The whole swap-out through the descriptors, a page at a time:
        # folio_alloc_swap() (the entry, then the folio in its swap cache),
        # zswap_store(), and __remove_mapping() -> __swap_cache_del_folio(),
        # which leaves the shadow of workingset_eviction() (0 under the exact
        # LRU, which keeps none).
        start = time.perf_counter()
        entries = space.alloc_many(n)
        self._swap_cache_call("adding the folio of", entries, self.shadow_calls.swap_cache_add_folios(
            space, entries, self.folio, np.empty(n, dtype=np.uint64)))
        status = pool.store_many(entries, pages)
        counts["time_core"] += time.perf_counter() - start
        entries = np.frombuffer(entries, dtype=np.uint64)
        status = np.frombuffer(status, dtype=np.int8)
        if not (status == BATCH_OK).all():
            for i in np.flatnonzero(status != BATCH_OK).tolist():
                if status[i] != BATCH_REJECTED:
                    raise RuntimeError("storing swap entry %#x failed (status %d)"
                                       % (entries[i], status[i]))
                self._rejected(int(entries[i]), pages[i], counts)
        if shadows is None:
            shadows = np.zeros(n, np.uint64)
        start = time.perf_counter()
        self._swap_cache_call("leaving the shadow of", entries,
                              self.shadow_calls.swap_cache_del_folios(
                                  space, entries, self.folio, shadows))
        counts["time_core"] += time.perf_counter() - start
        return entries

    @staticmethod
    def _swap_cache_call(what, entries, status):
        status = np.frombuffer(status, dtype=np.int8)
        if not (status == BATCH_OK).all():
            i = int(np.flatnonzero(status != BATCH_OK)[0])
            raise RuntimeError("%s swap entry %#x failed (status %d)"
                               % (what, entries[i], status[i]))

    def _check_shadows(self, entries, read, refaults, counts):
        """As the swap-in path hands the shadow that swap_cache_add_folio()
        replaced to workingset_refault(): it must be the one left at
        swap-out, and judge the refault as the simulation did."""
        recent = refault_is_recent(read, refaults.clock, refaults.workingset_size)
        bad = (read != refaults.shadows) | (recent != refaults.activated)
        counts["shadows_checked"] += len(entries)
        if bad.any():
            counts["shadow_mismatches"] += int(np.count_nonzero(bad))
            if self.first_mismatch is None:
                i = int(np.flatnonzero(bad)[0])
                self.first_mismatch = "swap entry %#x: shadow %d, expected %d" % (
                    entries[i], int(read[i]), refaults.shadows[i])

    def _rejected(self, entry, page, counts):
        """A page the pool refused goes straight to the swap file, as the
        kernel's swap-out does; without one it stays in memory."""
        counts["rejected"] += 1
        if self.swapfile is not None:
            try:
                slot = self.swapfile.alloc_slot()
            except SwapFileFullError:
                pass
            else:
                self.swapfile.write(slot, page)
                self.space.set_slot(entry, slot)
                counts["rejected_to_swapfile"] += 1
                return
        self.in_memory[entry] = page.copy()
        counts["rejected_in_memory"] += 1

    def swap_in(self, entries, keys, versions, refaults, counts):
        """Swap in the pages of ``entries``, which must be the pages of
        ``keys`` at ``versions`` (0 for None); ``refaults``, for the
        kernel's reclaim, how each refault was judged (else None)."""
        pool, space = self.pool, self.space
        n = len(entries)
        out = np.empty((n, PAGE_SIZE), dtype=np.uint8)
        # The whole swap-in through the descriptors, a page at a time:
        # swapcache_prepare() and swap_cache_add_folio() (which hand back the
        # shadow), zswap_load() (or the swap file), then, once the page is
        # mapped and its swap entry let go, delete_from_swap_cache() and the
        # free.
        shadows = np.empty(n, dtype=np.uint64)
        start = time.perf_counter()
        self._swap_cache_call("adding the folio of", entries,
                              self.shadow_calls.swap_cache_add_folios(
                                  space, entries, self.folio, shadows))
        status = np.frombuffer(pool.load_many(entries, out), dtype=np.int8)
        ok = status == BATCH_OK
        counts["zswap_hits"] += int(np.count_nonzero(ok))
        lost = []
        if not ok.all():
            for i in np.flatnonzero(~ok).tolist():
                entry = int(entries[i])
                if status[i] == BATCH_EMPTY:
                    page = self.in_memory.pop(entry, None)
                    if page is not None:
                        out[i] = page
                        counts["memory_reads"] += 1
                        continue
                    try:
                        pool.read(entry, out[i])
                        counts["swapfile_reads"] += 1
                        continue
                    except NoPageError:
                        pass
                lost.append((i, "corrupt in the pool" if status[i] == BATCH_CORRUPT
                             else "no page anywhere"))
        counts["time_core"] += time.perf_counter() - start
        # Verify: each page must equal the page that was swapped out.
        differ = self.factory.verify(keys, out, versions)
        if lost or differ.any():
            differ[[i for i, _reason in lost]] = True
            bad = np.flatnonzero(differ)
            counts["mismatches"] += len(bad)
            if self.first_mismatch is None:
                i = int(bad[0])
                reason = dict(lost).get(i, "the page differs")
                self.first_mismatch = "key %d, swap entry %#x: %s" % (
                    keys[i], entries[i], reason)
        counts["verified"] += n
        if refaults is not None:
            self._check_shadows(entries, shadows, refaults, counts)
        start = time.perf_counter()
        self._swap_cache_call("deleting the folio of", entries,
                              self.shadow_calls.swap_cache_del_folios(
                                  space, entries, self.folio))
        status = np.frombuffer(space.free_many(entries), dtype=np.int8)
        counts["time_core"] += time.perf_counter() - start
        if not (status == BATCH_OK).all():
            raise RuntimeError("freeing swapped-in entries failed")

    def maybe_sample(self, event, last=False):
        """After a step's swap-outs (the pool at its largest in the step),
        ending at ``event``: sample the pool if the step reaches the next
        sample mark, or if it is the ``last`` one."""
        marks = self.sample_marks
        if last or (self.next_mark < len(marks) and event >= marks[self.next_mark]):
            self.sample(event)
            self.next_mark = int(np.searchsorted(marks, event, "right"))

    def sample(self, event):
        """The pool's state at ``event``, for the time series and the pool's
        peak."""
        stats = self.pool.stats()
        samples = self.samples
        if samples["event"] and samples["event"][-1] == event:
            for values in samples.values():
                values.pop()
        self.pool_peak = max(self.pool_peak, stats["pool_total_size"])
        samples["event"].append(event)
        samples["pool_size"].append(stats["pool_total_size"])
        samples["stored_pages"].append(stats["stored_pages"])
        samples["compressed_bytes"].append(stats["compressed_bytes"])
        samples["compression_ratio"].append(stats["compression_ratio"])
        samples["writebacks"].append(stats["written_back_pages"])

    def work(self, lru, shard, evs, ins, bounds):
        """The offline replay's swap work of one shard: evictions ``evs``
        and swap-ins ``ins`` of ``lru``, in steps cut at miss numbers
        ``bounds``."""
        try:
            counts = self.new_counts()
            entries = self.entries
            ev_miss = lru.cold_fill + evs
            in_miss = lru.in_miss[ins]
            ev_cut = np.searchsorted(ev_miss, bounds)
            in_cut = np.searchsorted(in_miss, bounds)
            chunks = len(bounds) - 1
            pages = np.empty((min(len(evs), max(1, int(np.diff(ev_cut).max(initial=1)))),
                              PAGE_SIZE), dtype=np.uint8)
            for c in range(chunks):
                if self.errors:
                    return
                ev = evs[ev_cut[c]:ev_cut[c + 1]]
                if len(ev):
                    entries[ev] = self.swap_out(lru.victim_keys[ev], _take(lru.victim_versions, ev),
                                                _take(lru.shadows, ev), counts, pages)
                if shard == 0:
                    last = c + 1 == chunks
                    self.maybe_sample(lru.events if last else
                                      int(lru.miss_events[min(bounds[c + 1], lru.miss_count) - 1]),
                                      last)
                part = ins[in_cut[c]:in_cut[c + 1]]
                if len(part):
                    at = lru.in_evict[part]
                    refaults = None
                    if lru.shadows is not None:
                        refaults = Refaults(lru.shadows[at], lru.refault_clock[part],
                                            lru.workingset_size[part], lru.activated[part])
                    self.swap_in(entries[at], lru.victim_keys[at], _take(lru.victim_versions, at),
                                 refaults, counts)
                if shard == 0 and self.progress is not None:
                    self.progress((c + 1) / chunks)
            self.add_counts(counts)
        except BaseException as exc:
            self.errors.append(exc)


def prepare(config, factory=None, time_pages=0.0):
    """(core, factory, time_pages) of a replay: ``config`` checked, its
    core loaded, the page factory made (the synthetic mix) if not given."""
    config.check()
    core = load_core(config.core)
    if factory is None:
        start = time.perf_counter()
        factory = PageFactory.synthetic()
        time_pages = time.perf_counter() - start
    factory.use_core(core.name)
    return core, factory, time_pages


def new_report(name, fmt, factory, core, config, events, distinct, frames):
    """A report of the replay of a trace (its counts to be filled in)."""
    return ReplayReport(
        trace=name, format=fmt, pages=factory.describe(), core=core.name,
        index=config.index, threads=config.threads, events=events, distinct_keys=distinct,
        frames=frames, reclaim=config.reclaim, pool_limit=config.pool_limit,
        chunk=config.chunk, compressor=config.compressor)


def finish_report(report, replayer, swap_outs):
    """The pool's and the swap work's counts into ``report``, at the end of
    the run."""
    if replayer.errors:
        raise replayer.errors[0]
    replayer.sample(report.events)            # the end of the run
    stats = replayer.pool.stats()
    for key, value in replayer.totals.items():
        setattr(report, key, value)
    report.swapfile = replayer.swapfile_path
    report.first_mismatch = replayer.first_mismatch
    report.time_core = replayer.time_core
    report.writebacks = stats["written_back_pages"]
    report.pool_limit_hit = stats["pool_limit_hit"]
    report.pool_size = stats["pool_total_size"]
    report.pool_size_peak = max(replayer.pool_peak, stats["pool_total_size"])
    report.stored_pages = stats["stored_pages"]
    report.compressed_bytes = stats["compressed_bytes"]
    report.compression_ratio = stats["compression_ratio"]
    report.lock_stats = {k: stats[k] for k in (
        "index_lock_acquisitions", "index_lock_contended",
        "lru_lock_acquisitions", "lru_lock_contended") if k in stats}
    if swap_outs:
        cluster_locks = replayer.space.stats()["lock_acquisitions"]
        report.cluster_locks_per_page = cluster_locks / swap_outs
        if report.index != "vswap":
            report.tree_locks_per_page = stats["index_lock_acquisitions"] / swap_outs


def run_replay(trace, config, factory=None, progress=None, time_read=0.0, time_pages=0.0):
    """Replay ``trace`` as ``config`` says; returns a :class:`ReplayReport`.

    ``progress``, if given, is called as ``progress(fraction, label)`` as
    the swap work and the floor go on (from one thread).  ``time_read`` and
    ``time_pages`` are the seconds the caller took to read the trace and
    make ``factory``, for the report.  With ``config.stream``, the trace is
    replayed as ``vswapfast.stream.run_stream`` replays a trace file.
    """
    if config.stream:
        from vswapfast.stream import TraceStream, run_stream
        return run_stream(TraceStream.of_trace(trace), config, factory, progress,
                          time_read, time_pages)
    core, factory, time_pages = prepare(config, factory, time_pages)
    share = 0.6 if config.floor else 1.0

    def swap_progress(fraction):
        progress(fraction * share, "swap work")

    def floor_progress(fraction):
        progress(share + fraction * (1 - share), "%s floor" % FLOOR_TITLES[config.compressor])

    if progress is not None:
        progress(0.0, "%s reclaim" % config.reclaim)
    start = time.perf_counter()
    frames = config.frames
    if frames is None:
        frames = max(1, _count_distinct(trace.keys) // 10)
    lru = simulate(trace, frames, config.reclaim, core.name)
    time_simulate = time.perf_counter() - start

    report = new_report(trace.name, trace.format, factory, core, config, lru.events,
                        lru.distinct, frames)
    report.hits, report.misses, report.cold_misses = lru.hits, lru.miss_count, lru.cold_misses
    report.swap_outs, report.swap_ins = lru.swap_outs, lru.swap_ins
    report.refaults, report.activations = lru.refaults, lru.activations
    report.promotions, report.deactivations = lru.promotions, lru.deactivations
    report.time_read, report.time_pages, report.time_simulate = time_read, time_pages, time_simulate

    step = batch_size(lru.distinct, frames, config.chunk, config.threads, config.pool_limit)
    report.batch = step
    with tempfile.TemporaryDirectory(prefix="vswapfast-") as tmpdir:
        replayer = _Replayer(factory, core, config,
                             swap_progress if progress is not None else None, lru.events)
        replayer.setup(tmpdir, step, lru.distinct)
        replayer.entries = np.zeros(lru.swap_outs, dtype=np.uint64)
        try:
            shards = _shards(lru, config.threads)
            bounds = _chunk_bounds(lru, step)
            start = time.perf_counter()
            if config.threads == 1:
                replayer.work(lru, 0, shards[0][0], shards[0][1], bounds)
            else:
                workers = [threading.Thread(target=replayer.work,
                                            args=(lru, s, evs, ins, bounds),
                                            name="replay-%d" % s, daemon=True)
                           for s, (evs, ins) in enumerate(shards)]
                for w in workers:
                    w.start()
                try:
                    for w in workers:
                        w.join()
                except BaseException as exc:        # interrupted: stop the others
                    replayer.errors.append(exc)
                    for w in workers:
                        w.join()
                    raise
            report.time_swap = time.perf_counter() - start
            finish_report(report, replayer, lru.swap_outs)
            report.timeseries = timeseries(lru, replayer.samples, config.timeseries_bins,
                                           config.pool_limit)
        finally:
            replayer.close()

    if config.floor:
        report.floor_compress, report.floor_decompress = measure_floor(
            lru, factory, step, floor_progress if progress is not None else None,
            config.compressor)
        if config.compressor == "lz4":
            report.floor_call_cost = floor_call_cost(lru.swap_outs, lru.swap_ins)
    return report


def timeseries_edges(events, bins=200):
    """The ``bins + 1`` event numbers that cut a run of ``events`` events
    into the time series' intervals."""
    bins = max(1, min(int(bins), max(1, events)))
    edges = np.linspace(0, events, bins + 1).round().astype(np.int64)
    edges[-1] = events
    return edges


def timeseries(lru, samples, bins=200, pool_limit=None):
    """The run over the trace's time (events), as lists for JSON:
    ``edges`` (``bins + 1`` event numbers) and, per interval, ``swap_outs``,
    ``swap_ins``, ``refaults`` and ``activations`` (kernel reclaim);
    then the pool as sampled after each batch step: at ``sample_event``,
    ``pool_size`` (bytes), ``pool_limit`` (bytes, or None), ``stored_pages``,
    ``compressed_bytes``, ``compression_ratio`` and ``writebacks`` (pages
    written back so far)."""
    edges = timeseries_edges(lru.events, bins)

    def per_interval(events):
        counts, _ = np.histogram(events, bins=edges)
        return counts

    activations = None
    if lru.activated is not None:
        activations = per_interval(lru.swapin_events[lru.activated])
    return series_of(edges, per_interval(lru.evict_events), per_interval(lru.swapin_events),
                     activations, samples, pool_limit)


def series_of(edges, swap_outs, swap_ins, activations, samples, pool_limit):
    """The time series of :func:`timeseries` from its per-interval counts
    (``activations`` None under the LRU) and the pool's samples."""
    out = dict(edges=edges.tolist(), swap_outs=np.asarray(swap_outs).tolist(),
               swap_ins=np.asarray(swap_ins).tolist())
    if activations is not None:
        out["refaults"] = out["swap_ins"]
        out["activations"] = np.asarray(activations).tolist()
    out["sample_event"] = list(samples["event"])
    for key in ("pool_size", "stored_pages", "compressed_bytes", "compression_ratio",
                "writebacks"):
        out[key] = list(samples[key])
    out["pool_limit"] = pool_limit
    return out


#: What the floor of each compressor runs, and the name it goes by.
FLOOR_LIBRARIES = {"lz4": "python-lz4", "zstd": "libzstd", "lzo": "liblzo2"}
FLOOR_TITLES = {"lz4": "LZ4", "zstd": "zstd", "lzo": "LZO"}


def _floor_calls(compressor):
    """compress(row) and decompress(block) of the floor of ``compressor``:
    python-lz4 for lz4, else the system library through the compiled
    core's thin wrapper (or the pure twin's, if it is not built)."""
    if compressor == "lz4":
        import lz4.block
        compress_block, decompress_block = lz4.block.compress, lz4.block.decompress
        return (lambda row: compress_block(row, store_size=False),
                lambda block: decompress_block(block, uncompressed_size=PAGE_SIZE))
    try:
        from vswapfast._compress import compress_page, decompress_page
    except ImportError:
        from vswapfast.pure.compress import compress_page, decompress_page
    return (lambda row: compress_page(compressor, row),
            lambda block: decompress_page(compressor, block))


def measure_floor(lru, factory, step=DEFAULT_CHUNK, progress=None, compressor="lz4"):
    """Seconds the library of ``compressor`` takes to compress every
    swapped-out page and to decompress every swapped-in page of ``lru``'s
    run, in the same order and steps of ``step`` misses as the replay;
    making the pages is not timed."""
    compress, decompress = _floor_calls(compressor)
    blocks = {}
    t_compress = 0.0
    t_decompress = 0.0
    bounds = _chunk_bounds(lru, step)
    ev_cut = np.searchsorted(lru.cold_fill + np.arange(lru.swap_outs), bounds)
    in_cut = np.searchsorted(lru.in_miss, bounds)
    perf_counter = time.perf_counter
    for c in range(len(bounds) - 1):
        lo, hi = int(ev_cut[c]), int(ev_cut[c + 1])
        if hi > lo:
            versions = None if lru.victim_versions is None else lru.victim_versions[lo:hi]
            pages, _zero = factory.page_batch(lru.victim_keys[lo:hi], versions)
            view = memoryview(pages).cast("B")
            rows = [view[i:i + PAGE_SIZE] for i in range(0, len(view), PAGE_SIZE)]
            start = perf_counter()
            out = [compress(row) for row in rows]
            t_compress += perf_counter() - start
            blocks.update(zip(range(lo, hi), out))
        lo, hi = int(in_cut[c]), int(in_cut[c + 1])
        if hi > lo:
            todo = [blocks.pop(e) for e in lru.in_evict[lo:hi].tolist()]
            start = perf_counter()
            for block in todo:
                decompress(block)
            t_decompress += perf_counter() - start
        if progress is not None:
            progress((c + 1) / (len(bounds) - 1))
    return t_compress, t_decompress


def floor_call_cost(compressions, decompressions, sample=100_000):
    """Seconds the floor's loops would take on empty input: what of the
    floor is the Python loop and python-lz4's call, not LZ4 on pages."""
    import lz4.block
    compress = lz4.block.compress
    decompress = lz4.block.decompress
    empty = b""
    block = compress(empty, store_size=False)
    n = max(1, min(sample, compressions))
    rows = [empty] * n
    start = time.perf_counter()
    [compress(row, store_size=False) for row in rows]
    per_compress = (time.perf_counter() - start) / n
    n = max(1, min(sample, decompressions))
    blocks = [block] * n
    start = time.perf_counter()
    for b in blocks:
        decompress(b, uncompressed_size=1)
    per_decompress = (time.perf_counter() - start) / n
    return per_compress * compressions + per_decompress * decompressions
