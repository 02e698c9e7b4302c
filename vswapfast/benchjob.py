"""The measurements of ``vswapfast bench``.

A compact benchmark of the designs, on the embedded default page mix:

- **entry ops**: per-operation cost of ``zswap_entry_store``, ``_load`` and
  ``_erase`` for the compiled core, the pure-Python twin and a bare dict
  (one bound-method call per entry on the same keys);
- **batch throughput**: the batch zswap entry calls (store, load) of each
  index design ("vswap", "rbtree") at 1..N threads, each thread
  working on its own array of entries in clusters of its own;
- **designs**: every design of ``vswapfast.designs`` side by side, one
  kernel operation per page (``vswapfast.benchdesigns``): ns per page at
  1..N threads, locks per operation, range operations apart, and a
  swap-out/swap-in round trip;
- **pages**: ``Zswap`` page store and load, single calls and batch calls,
  for both cores, against raw LZ4 (python-lz4 compressing and decompressing
  the same pages in a Python loop);
- **compressors**: for each compressor asked for (lz4, zstd, lzo), batch
  store and load per page for both cores and the compression ratio, next
  to the raw library (the same system library the compiled core calls, in a
  C loop over the same pages' non-zero ones);
- **metadata**: bytes per swap entry of descriptors and zswap index, measured
  with tracemalloc while a space allocates entries and stores a handle in
  each (the compiled core allocates with ``PyMem_Raw*``, which tracemalloc
  sees), for both cores and each design, and for a bare dict.

Each figure is the median of several rounds; every ratio is of two figures
measured in the same run.
"""

import gc
import os
import platform
import sys
import tempfile
import threading
import time
import tracemalloc

import numpy as np

from vswapfast.batch import INDEX_DESIGNS
from vswapfast.benchdesigns import (RANGE_LABEL, DesignBenchError, design_rows, design_steps,
                                    format_designs)
from vswapfast.workload import DEFAULT_SEED, PAGE_SIZE, PageFactory

#: Sizes of the full run and of ``--quick``.
SIZES = {
    "full": dict(entry_n=4096, entry_rounds=25, batch_n=16384, batch_repeat=100,
                 batch_rounds=9, pure_batch_n=16384, pure_batch_repeat=1, pages_n=2048,
                 pages_rounds=7, meta_n=1 << 19, meta_pure_n=1 << 19,
                 lifecycle_events=200000),
    "quick": dict(entry_n=512, entry_rounds=3, batch_n=2048, batch_repeat=2,
                  batch_rounds=2, pure_batch_n=512, pure_batch_repeat=1, pages_n=96,
                  pages_rounds=2, meta_n=1 << 13, meta_pure_n=1 << 12,
                  lifecycle_events=20000),
}
OPS = ("store", "load", "erase")
BATCH_OPS = ("store", "load")


class BenchError(Exception):
    """A benchmark that cannot run (a one-line message for the user)."""


# -- progress bar -------------------------------------------------------------

class Progress:
    """A progress bar on stderr, drawn by hand.

    On a terminal it is redrawn in place; otherwise (a log, a pipe) a line is
    written each time it moves on by a tenth.  Nothing is written before the
    first update, and ``close`` ends the line.
    """

    WIDTH = 30

    def __init__(self, title, enabled=True, stream=None):
        self.title = title
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.drawn = False
        self.last_draw = 0.0
        self.last_tenth = -1
        self.fraction = 0.0
        self.label = ""

    def update(self, fraction, label=None):
        if not self.enabled:
            return
        self.fraction = min(max(fraction, 0.0), 1.0)
        if label is not None:
            self.label = label
        if self.tty:
            now = time.monotonic()
            if now - self.last_draw < 0.1 and self.fraction < 1.0:
                return
            self.last_draw = now
            self._draw("\r", "")
        else:
            tenth = int(self.fraction * 10)
            if tenth != self.last_tenth:
                self.last_tenth = tenth
                self._draw("", "\n")

    def _draw(self, start, end):
        filled = int(round(self.fraction * self.WIDTH))
        text = "%s [%s%s] %3d%%  %s" % (self.title, "#" * filled, "." * (self.WIDTH - filled),
                                        int(self.fraction * 100), self.label)
        if self.tty:
            columns = 80
            try:
                columns = os.get_terminal_size(self.stream.fileno()).columns
            except (OSError, ValueError, AttributeError):
                pass
            text = text[:max(10, columns - 1)].ljust(max(10, columns - 1))
        try:
            self.stream.write(start + text + end)
            self.stream.flush()
        except (OSError, ValueError):
            self.enabled = False
        self.drawn = True

    def close(self):
        """Finish the bar: clear it on a terminal."""
        if self.enabled and self.drawn and self.tty:
            try:
                self.stream.write("\r" + " " * (self.WIDTH + len(self.title) + 20) + "\r")
                self.stream.flush()
            except (OSError, ValueError):
                pass
        self.drawn = False


class _Steps:
    """Progress over a known list of weighted steps."""

    def __init__(self, progress, steps):
        self.progress = progress
        self.total = float(sum(w for _name, w in steps)) or 1.0
        self.weights = dict(steps)
        self.done = 0.0

    def start(self, name):
        if self.progress is not None:
            self.progress.update(self.done / self.total, name)

    def finish(self, name):
        self.done += self.weights[name]
        if self.progress is not None:
            self.progress.update(self.done / self.total, name)


# -- helpers --------------------------------------------------------------------

def _median(values):
    return float(np.median(values))


def _timed(fn, rounds, setup=None):
    """Median seconds of ``fn()`` over ``rounds`` (after one warm-up)."""
    times = []
    for i in range(rounds + 1):
        if setup is not None:
            setup()
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        if i:
            times.append(elapsed)
    return _median(times)


def _cores():
    from vswapfast.replay import ReplayError, load_core
    cores = {}
    for name in ("compiled", "pure"):
        try:
            cores[name] = load_core(name)
        except ReplayError as exc:
            if name == "compiled":
                raise BenchError(str(exc)) from None
    return cores


# -- entry ops ------------------------------------------------------------------

def entry_ops(core, n, rounds):
    """Seconds per zswap_entry_store/load/erase for a core (or None: a
    bare dict)."""
    zentry = object()
    if core is None:
        table = {}
        keys = [(1 << 9) + i for i in range(n)]
        store, load, pop = table.__setitem__, table.get, table.pop

        def run_erase():
            for k in keys:
                pop(k, None)
    else:
        space = core.VSwap()
        keys = [int(e) for e in space.alloc_many(n)]
        store = space.zswap_entry_store
        load = space.zswap_entry_load
        erase = space.zswap_entry_erase

        def run_erase():
            for k in keys:
                erase(k)

    def run_store():
        for k in keys:
            store(k, zentry)

    def run_load():
        for k in keys:
            load(k)

    out = {"store": _timed(run_store, rounds) / n}
    run_store()
    out["load"] = _timed(run_load, rounds) / n
    out["erase"] = _timed(run_erase, rounds, setup=run_store) / n
    return out


# -- batch throughput -------------------------------------------------------------

class _Runner:
    """Threads that each run one call ``repeat`` times per round."""

    def __init__(self, calls, repeat):
        self.calls = calls
        self.repeat = repeat
        self.go = threading.Barrier(len(calls) + 1)
        self.done = threading.Barrier(len(calls) + 1)
        self.stop = False
        self.failed = []
        self.workers = [threading.Thread(target=self._work, args=(c,), daemon=True)
                        for c in calls]
        for w in self.workers:
            w.start()

    def _work(self, call):
        while True:
            self.go.wait()
            if self.stop:
                return
            try:
                for _ in range(self.repeat):
                    call()
            except BaseException as exc:       # reported by run()
                self.failed.append(exc)
            self.done.wait()

    def run(self):
        self.go.wait()
        self.done.wait()
        if self.failed:
            raise self.failed[0]

    def close(self):
        self.stop = True
        self.go.wait()
        for w in self.workers:
            w.join()


def _thread_entries(space, threads, n):
    """One uint64 array of ``n`` entries per thread, each allocated by its
    thread (so in clusters of its own)."""
    per = [None] * threads

    def alloc(t):
        per[t] = np.frombuffer(space.alloc_many(n), dtype=np.uint64)

    workers = [threading.Thread(target=alloc, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return per


def batch_throughput(core, design, threads, op, n, repeat, rounds):
    """Batch zswap entry calls per second over all threads."""
    space = core.VSwap()
    index = core.ZswapIndex(space, design)
    per_thread = _thread_entries(space, threads, n)
    calls = []
    for entries in per_thread:
        handles = entries + np.uint64(1)
        out = np.zeros(len(entries), dtype=np.uint64)
        index.zswap_entry_store_many(entries, handles)
        if op == "store":
            calls.append(lambda e=entries, h=handles, o=out: index.zswap_entry_store_many(e, h, o))
        else:
            calls.append(lambda e=entries, o=out: index.zswap_entry_load_many(e, o))
    runner = _Runner(calls, repeat)
    try:
        seconds = _timed(runner.run, rounds)
    finally:
        runner.close()
    out = np.zeros(n, dtype=np.uint64)
    index.zswap_entry_load_many(per_thread[0], out)
    if not (out == per_thread[0] + np.uint64(1)).all():
        raise BenchError("batch %s on design %s lost entries" % (op, design))
    return n * threads * repeat / seconds


# -- pages ---------------------------------------------------------------------------

def page_costs(core, pages, rounds, tmpdir, compressor="lz4"):
    """Seconds per page: store/load by single calls and by batch calls, in a
    pool of ``compressor``."""
    n = len(pages)
    space = core.VSwap()
    swapfile = core.SwapFile(os.path.join(tmpdir, "bench-%s.swap" % core.name), 16 * PAGE_SIZE)
    pool = core.Zswap(space, swapfile, max_pool_bytes=1 << 40, compressor=compressor)
    try:
        entries = space.alloc_many(n)
        entry_list = [int(e) for e in entries]
        view = memoryview(pages).cast("B")
        rows = [view[i:i + PAGE_SIZE] for i in range(0, n * PAGE_SIZE, PAGE_SIZE)]
        pairs = list(zip(entry_list, rows))
        store = pool.store
        load = pool.load
        out = np.empty_like(pages)
        page_out = bytearray(PAGE_SIZE)
        # The ratios of a pool that has stored each page once: the rounds
        # below store over their own entries, which leaves zspages part
        # empty (nothing compacts them).
        pool.store_many(entries, pages)
        fresh = pool.stats()

        def store_single():
            for entry, row in pairs:
                store(entry, row)

        def load_single():
            for entry in entry_list:
                load(entry, page_out)

        result = {
            "store": _timed(store_single, rounds) / n,
            "store_many": _timed(lambda: pool.store_many(entries, pages), rounds) / n,
        }
        pool.exclusive_loads = False        # every round loads the same pages
        result["load"] = _timed(load_single, rounds) / n
        result["load_many"] = _timed(lambda: pool.load_many(entries, out), rounds) / n
        if not np.array_equal(out, pages):
            raise BenchError("the %s core gave back pages that differ" % core.name)
        result["compression_ratio"] = fresh["compression_ratio"]
        result["compressed_ratio"] = (fresh["stored_pages"] * PAGE_SIZE
                                      / fresh["compressed_bytes"]
                                      if fresh["compressed_bytes"] else 0.0)
        return result
    finally:
        pool.close()
        swapfile.close()


def lz4_costs(pages, rounds):
    """Seconds per page of python-lz4 compress and decompress."""
    import lz4.block
    compress, decompress = lz4.block.compress, lz4.block.decompress
    view = memoryview(pages).cast("B")
    rows = [view[i:i + PAGE_SIZE] for i in range(0, len(view), PAGE_SIZE)]
    blocks = [compress(row, store_size=False) for row in rows]
    n = len(rows)

    def run_compress():
        for row in rows:
            compress(row, store_size=False)

    def run_decompress():
        for block in blocks:
            decompress(block, uncompressed_size=PAGE_SIZE)

    return {
        "compress": _timed(run_compress, rounds) / n,
        "decompress": _timed(run_decompress, rounds) / n,
        "ratio": n * PAGE_SIZE / sum(len(b) for b in blocks),
    }


def library_costs(name, pages, rounds):
    """Seconds per page of the system library of compressor ``name`` alone
    on ``pages``: compressing the pages that are not zero-filled (the work
    zswap cannot avoid) and decompressing their blocks, in C loops with no
    GIL (``vswapfast._compress.library_floor``; the pure twin's Python loop
    if the compiled core is not built), divided by all the pages so that it
    compares with the pools' cost per page.  Also the ratio of page bytes
    to block bytes over the non-zero pages, a block that does not shrink
    counting as a page (zswap stores it raw)."""
    try:
        from vswapfast._compress import library_floor
    except ImportError:
        from vswapfast.pure.compress import library_floor
    n = len(pages)
    runs = [library_floor(name, pages) for _ in range(rounds + 1)][1:]
    lengths = runs[0][2]
    nonzero = [length for length in lengths if length]
    return {
        "compress": _median([r[0] for r in runs]) / n,
        "decompress": _median([r[1] for r in runs]) / n,
        "ratio": (len(nonzero) * PAGE_SIZE / sum(min(k, PAGE_SIZE) for k in nonzero)
                  if nonzero else 0.0),
    }


def _load_compressors(names):
    """Load the library of each compressor; BenchError if one cannot be."""
    from vswapfast.errors import CompressorLibraryError
    try:
        from vswapfast._compress import compressor_number
    except ImportError:
        from vswapfast.pure.compress import compressor_number
    for name in names:
        try:
            compressor_number(name)
        except CompressorLibraryError as exc:
            raise BenchError(str(exc)) from None


def compressor_costs(cores, names, pages, rounds, tmpdir, explicit, track):
    """Per compressor: the raw library and both cores' pools on ``pages``.

    A compressor whose library cannot be loaded is an error when it was
    asked for by name (``explicit``), else it is left out with the reason.
    Returns ({name: {"library": ..., core: ...}}, {name: reason}).
    """
    from vswapfast.errors import CompressorLibraryError
    out, skipped = {}, {}
    for name in names:
        step = "compressor: %s" % name
        track.start(step)
        try:
            figures = {"library": library_costs(name, pages, rounds)}
        except CompressorLibraryError as exc:
            if explicit:
                raise BenchError(str(exc)) from None
            skipped[name] = str(exc)
            track.finish(step)
            continue
        for core_name, core in cores.items():
            core_rounds = rounds if core_name == "compiled" else max(1, rounds // 2)
            figures[core_name] = page_costs(core, pages, core_rounds, tmpdir, compressor=name)
        out[name] = {impl: {k: (v * 1e6 if k != "ratio" and not k.endswith("_ratio") else v)
                            for k, v in f.items()} for impl, f in figures.items()}
        track.finish(step)
    return out, skipped


# -- metadata ------------------------------------------------------------------------

def metadata_bytes(core, design, n):
    """Bytes per swap entry (descriptors, zswap index) for ``n`` entries
    each holding a zswap handle, as tracemalloc counts them."""
    handles = np.arange(1, n + 1, dtype=np.uint64)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        if core is None:
            # A bare dict from swap entry to handle, both Python ints.
            entries = np.arange(1 << 9, (1 << 9) + n, dtype=np.uint64)
            mid = tracemalloc.get_traced_memory()[0] - entries.nbytes
            table = dict(zip(entries.tolist(), handles.tolist()))
            end = tracemalloc.get_traced_memory()[0] - entries.nbytes
            assert len(table) == n
            del table
            return {"descriptors": 0.0, "index": (end - mid) / n, "total": (end - base) / n}
        space = core.VSwap()
        entries = space.alloc_many(n)
        mid = tracemalloc.get_traced_memory()[0] - sys.getsizeof(entries)
        if design == "vswap" or core.ZswapIndex is None:
            index = space
        else:
            index = core.ZswapIndex(space, design)
        status = index.zswap_entry_store_many(entries, handles)
        end = (tracemalloc.get_traced_memory()[0] - sys.getsizeof(entries)
               - sys.getsizeof(status))
        if set(status) - {0, 1}:
            raise BenchError("storing handles failed on the %s core" % core.name)
        del index, space
        return {"descriptors": (mid - base) / n, "index": (end - mid) / n,
                "total": (end - base) / n}
    finally:
        tracemalloc.stop()


# -- the whole job ---------------------------------------------------------------------

def lifecycle_locks(design, events, seed):
    """Lock acquisitions per swapped-out page when the default workload is
    replayed through the compiled core with ``design``: every page's whole
    swap-out (allocation, the folio in the swap cache, zswap_store(), the
    shadow left) and swap-in (the folio back in the swap cache, zswap_load(),
    the swap cache emptied, the free), one kernel operation per page."""
    from vswapfast.replay import ReplayConfig, default_workload, run_replay
    report = run_replay(default_workload(events, seed=seed),
                        ReplayConfig(index=design, floor=False))
    outs = max(report.swap_outs, 1)
    return {"swap_outs": report.swap_outs, "swap_ins": report.swap_ins,
            "cluster_locks_per_page": report.cluster_locks_per_page,
            "tree_locks_per_page": report.tree_locks_per_page,
            "lru_locks_per_page": report.lock_stats.get("lru_lock_acquisitions", 0) / outs}


def thread_counts(highest):
    """1, 2, 3, 4, then powers of two, and ``highest`` itself."""
    counts = {t for t in (1, 2, 3, 4) if t <= highest}
    t = 8
    while t < highest:
        counts.add(t)
        t *= 2
    counts.add(highest)
    return sorted(counts)


def run_bench(threads=None, quick=False, seed=DEFAULT_SEED, progress=None,
              compressors=None, factory=None):
    """Run every measurement; returns the results as a JSON-ready dict.

    ``compressors``: the compressors to compare (default: every one whose
    library loads); ``factory``: where the pages come from (default: the
    synthetic mix of ``seed``).
    """
    from vswapfast.compressors import COMPRESSORS, check_compressor
    size = SIZES["quick" if quick else "full"]
    cores = _cores()
    explicit = compressors is not None
    compressors = [check_compressor(c) for c in (compressors or COMPRESSORS)]
    if explicit:
        _load_compressors(compressors)      # fail now, not after the rest
    if threads is None:
        threads = max(2, os.cpu_count() or 1)
    counts = thread_counts(threads)
    designs = list(INDEX_DESIGNS)
    batch_cores = [name for name in ("compiled", "pure")
                   if name in cores and cores[name].ZswapIndex is not None]

    steps = [("entry ops: %s" % impl, 1.0) for impl in ("compiled", "pure", "dict")]
    for name in batch_cores:
        for design in designs:
            for t in counts:
                steps.append(("batch: %s %s x%d" % (name, design, t), 1.0))
    steps += design_steps(counts)
    steps += [("pages: LZ4", 1.5), ("pages: compiled", 1.5), ("pages: pure", 4.0)]
    steps += [("compressor: %s" % c, 6.0) for c in compressors]
    meta = [("compiled", d) for d in designs] + [("pure", d) for d in designs] + [("dict", None)]
    meta = [(c, d) for c, d in meta
            if c == "dict" or (c in cores and (d == "vswap" or cores[c].ZswapIndex is not None))]
    if "compiled" in cores:
        steps += [("lifecycle: %s" % d, 2.0) for d in designs]
    steps += [("metadata: %s%s" % (c, "" if d is None else " " + d),
               3.0 if c == "pure" else 1.0) for c, d in meta]
    track = _Steps(progress, steps)
    started = time.perf_counter()

    results = {
        "vswapfast_bench": 1,
        "quick": bool(quick),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "numpy": np.__version__,
        },
        "config": dict(size, threads=counts, designs=designs, seed=seed,
                       compressors=compressors),
    }
    try:
        import lz4
        results["machine"]["python_lz4"] = lz4.__version__
        results["machine"]["lz4_library"] = lz4.library_version_string()
    except (ImportError, AttributeError):
        pass

    # entry ops
    ops = {}
    for impl in ("compiled", "pure", "dict"):
        name = "entry ops: %s" % impl
        track.start(name)
        if impl == "dict" or impl in cores:
            core = None if impl == "dict" else cores[impl]
            ops[impl] = {op: s * 1e9 for op, s in
                         entry_ops(core, size["entry_n"], size["entry_rounds"]).items()}
        track.finish(name)
    results["entry_ops_ns"] = ops
    ratios = {}
    for op in OPS:
        if "pure" in ops:
            ratios["%s pure/compiled" % op] = ops["pure"][op] / ops["compiled"][op]
        ratios["%s compiled/dict" % op] = ops["compiled"][op] / ops["dict"][op]
    results["entry_ops_ratios"] = ratios

    # batch throughput
    batch = {}
    for name in batch_cores:
        repeat = size["batch_repeat"] if name == "compiled" else size["pure_batch_repeat"]
        n = size["batch_n"] if name == "compiled" else size["pure_batch_n"]
        for design in designs:
            row = {op: [] for op in BATCH_OPS}
            for t in counts:
                step = "batch: %s %s x%d" % (name, design, t)
                track.start(step)
                for op in BATCH_OPS:
                    row[op].append(batch_throughput(cores[name], design, t, op, n, repeat,
                                                    size["batch_rounds"]) / 1e6)
                track.finish(step)
            row["scaling"] = {op: [v / row[op][0] for v in row[op]] for op in BATCH_OPS}
            batch.setdefault(name, {})[design] = row
    results["batch_mops"] = batch
    try:
        results["designs"] = design_rows(counts, quick=quick, track=track)
    except DesignBenchError as exc:
        raise BenchError("designs: %s" % exc) from None

    # pages
    if factory is None:
        factory = PageFactory.synthetic(seed)
    pages = factory.pages(np.arange(1, size["pages_n"] + 1, dtype=np.uint64) * np.uint64(7919))
    page_results = {}
    with tempfile.TemporaryDirectory(prefix="vswapfast-bench-") as tmpdir:
        track.start("pages: LZ4")
        page_results["lz4"] = lz4_costs(pages, size["pages_rounds"])
        track.finish("pages: LZ4")
        for name in ("compiled", "pure"):
            step = "pages: %s" % name
            track.start(step)
            if name in cores:
                rounds = size["pages_rounds"] if name == "compiled" else max(
                    1, size["pages_rounds"] // 2)
                page_results[name] = page_costs(cores[name], pages, rounds, tmpdir)
            track.finish(step)
        results["compressors"], results["compressors_skipped"] = compressor_costs(
            cores, compressors, pages, size["pages_rounds"], tmpdir, explicit, track)
    page_us = {}
    for impl, figures in page_results.items():
        page_us[impl] = {k: (v * 1e6 if not k.endswith("ratio") else v)
                         for k, v in figures.items()}
    results["pages_us"] = page_us
    results["pages"] = {"count": len(pages), "mix": factory.describe(),
                        "zero_share": float(np.mean(factory.is_zero(
                            np.arange(1, size["pages_n"] + 1, dtype=np.uint64)
                            * np.uint64(7919))))}
    lz4r = page_us["lz4"]
    page_ratios = {}
    for name in ("compiled", "pure"):
        if name in page_us:
            page_ratios["%s store_many/lz4 compress" % name] = (
                page_us[name]["store_many"] / lz4r["compress"])
            page_ratios["%s load_many/lz4 decompress" % name] = (
                page_us[name]["load_many"] / lz4r["decompress"])
    results["pages_ratios"] = page_ratios

    # metadata
    metadata = {}
    for c, d in meta:
        step = "metadata: %s%s" % (c, "" if d is None else " " + d)
        track.start(step)
        if c == "dict":
            metadata["dict"] = metadata_bytes(None, None, size["meta_n"])
        else:
            n = size["meta_n"] if c == "compiled" else size["meta_pure_n"]
            metadata.setdefault(c, {})[d] = metadata_bytes(cores[c], d, n)
        track.finish(step)
    results["metadata_bytes_per_entry"] = metadata
    results["metadata_entries"] = {"compiled": size["meta_n"], "pure": size["meta_pure_n"],
                                   "dict": size["meta_n"]}
    if "compiled" in cores:
        lifecycle = {}
        for design in designs:
            step = "lifecycle: %s" % design
            track.start(step)
            lifecycle[design] = lifecycle_locks(design, size["lifecycle_events"], seed)
            track.finish(step)
        results["lifecycle_locks"] = lifecycle
    results["elapsed_s"] = time.perf_counter() - started
    return results


# -- the table ---------------------------------------------------------------------------

def format_bench(results):
    """The results as lines of a table."""
    lines = []
    add = lines.append
    if "designs" in results:
        lines.extend(format_designs(results["designs"]))
    ops = results["entry_ops_ns"]
    add("zswap entry ops, ns per op (median of %d rounds of %d entries)"
        % (results["config"]["entry_rounds"], results["config"]["entry_n"]))
    add("  %-10s %10s %10s %10s" % ("", "store", "load", "erase"))
    for impl in ("compiled", "pure", "dict"):
        if impl in ops:
            add("  %-10s %10.1f %10.1f %10.1f" % ((impl,) + tuple(ops[impl][op] for op in OPS)))
    if "pure" in ops:
        add("  %-10s %9.1fx %9.1fx %9.1fx" % (("pure/compiled",) + tuple(
            ops["pure"][op] / ops["compiled"][op] for op in OPS)))
    add("  %-10s %9.2fx %9.2fx %9.2fx" % (("compiled/dict",) + tuple(
        ops["compiled"][op] / ops["dict"][op] for op in OPS)))
    add("")

    batch = results["batch_mops"]
    counts = results["config"]["threads"]
    for name, designs in batch.items():
        add("batch zswap entry calls of the seed's index designs, %s core, %s: million "
            "entries per second (threads 1..%d; x = scaling over 1 thread)"
            % (name, RANGE_LABEL, counts[-1]))
        add("  %-16s " % "" + " ".join("%14s" % ("%d thread%s" % (t, "" if t == 1 else "s"))
                                      for t in counts))
        for design, row in designs.items():
            for op in BATCH_OPS:
                cells = []
                for i, v in enumerate(row[op]):
                    cells.append("%14s" % ("%.1f" % v if i == 0 else
                                           "%.1f (%.2fx)" % (v, row["scaling"][op][i])))
                add("  %-16s " % ("%s %s" % (design, op)) + " ".join(cells))
        add("")

    pages = results["pages_us"]
    add("zswap pages, us per page (%d pages: %s)" % (
        results["pages"]["count"], results["pages"]["mix"]))
    add("  (ratio: page bytes / LZ4 output for raw LZ4; the pool's compression_ratio for the "
        "cores, which counts allocator overhead and leaves zero pages out)")
    add("  %-10s %10s %10s %10s %10s %8s" % ("", "store", "store_many", "load", "load_many",
                                             "ratio"))
    lz4r = pages["lz4"]
    add("  %-10s %10.2f %10s %10.2f %10s %8.2f" % ("raw LZ4", lz4r["compress"], "",
                                                    lz4r["decompress"], "", lz4r["ratio"]))
    for name in ("compiled", "pure"):
        if name in pages:
            p = pages[name]
            add("  %-10s %10.2f %10.2f %10.2f %10.2f %8.2f" % (
                name, p["store"], p["store_many"], p["load"], p["load_many"],
                p["compression_ratio"]))
    for name in ("compiled", "pure"):
        if name in pages:
            p = pages[name]
            add("  %-10s store_many %.2fx of LZ4 compress, load_many %.2fx of LZ4 decompress"
                % (name, p["store_many"] / lz4r["compress"], p["load_many"] / lz4r["decompress"]))
    add("")

    lines.extend(format_compressors(results))

    meta = results["metadata_bytes_per_entry"]
    entries = results["metadata_entries"]
    add("metadata of the seed's VSwap and its zswap index options, bytes per swap entry holding a "
        "zswap handle (tracemalloc; each design's own metadata: vswapfast memory)")
    add("  %-22s %12s %12s %10s" % ("", "descriptors", "zswap index", "total"))
    for name in ("compiled", "pure"):
        for design, m in meta.get(name, {}).items():
            add("  %-22s %12.1f %12.1f %10.1f" % ("%s %s (%dk)" % (name, design,
                                                                  entries[name] // 1024),
                                                  m["descriptors"], m["index"], m["total"]))
    if "dict" in meta:
        m = meta["dict"]
        add("  %-22s %12s %12.1f %10.1f" % ("bare dict (%dk)" % (entries["dict"] // 1024), "",
                                           m["index"], m["total"]))
    add("")
    lifecycle = results.get("lifecycle_locks")
    if lifecycle:
        add("lock acquisitions per swapped-out page, the whole swap-out and swap-in "
            "(replay of the default workload, compiled core)")
        add("  %-10s %10s %10s %10s %12s" % ("", "cluster", "tree", "LRU", "swap-ins"))
        for design, row in lifecycle.items():
            add("  %-10s %10.2f %10.2f %10.2f %11.0f%%" % (
                design, row["cluster_locks_per_page"], row["tree_locks_per_page"],
                row["lru_locks_per_page"],
                100.0 * row["swap_ins"] / max(row["swap_outs"], 1)))
        add("")
    add("elapsed %.1f s" % results["elapsed_s"])
    return lines


def format_compressors(results):
    """The per-compressor table (lines, ending with a blank one)."""
    lines = []
    add = lines.append
    comps = results.get("compressors", {})
    if not comps and not results.get("compressors_skipped"):
        return lines
    add("compressors, us per page of batch calls (%d pages: %s)" % (
        results["pages"]["count"], results["pages"]["mix"]))
    add("  (library: the system library alone on the non-zero pages, in a C loop, per page "
        "of all; ratio: page bytes / block bytes over the non-zero pages, a block that "
        "does not shrink counting as a page (for a pool: stored_pages * 4096 / "
        "compressed_bytes); pool ratio: the pool's compression_ratio, allocator overhead "
        "included, each page stored once)")
    add("  %-6s %-9s %10s %10s %10s %10s" % ("", "", "store", "load", "ratio",
                                              "pool ratio"))
    for name, figures in comps.items():
        lib = figures["library"]
        add("  %-6s %-9s %10.2f %10.2f %10.2f %10s" % (name, "library", lib["compress"],
                                                       lib["decompress"], lib["ratio"], ""))
        for core_name in ("compiled", "pure"):
            if core_name in figures:
                p = figures[core_name]
                add("  %-6s %-9s %10.2f %10.2f %10.2f %10.2f" % (
                    "", core_name, p["store_many"], p["load_many"], p["compressed_ratio"],
                    p["compression_ratio"]))
        if "compiled" in figures:
            p = figures["compiled"]
            add("  %-6s compiled store %.2fx, load %.2fx of the library" % (
                "", p["store_many"] / lib["compress"], p["load_many"] / lib["decompress"]))
    for name, reason in results.get("compressors_skipped", {}).items():
        add("  %-6s left out: %s" % (name, reason))
    add("")
    return lines
