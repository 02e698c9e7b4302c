"""The designs side by side in ``vswapfast bench``: zswap entry operations
one page at a time, as the kernel does them.

For every design of ``vswapfast.designs.available_designs("compiled")``:

- **per page**: ``zswap_entry_store_many``, ``_load_many`` and
  ``_erase_many`` with ``batch=False``: a C loop without the GIL in which
  every page is its own kernel operation taking the design's locks
  (``zswap_store``, ``zswap_load``, ``zswap_invalidate``), at 1..N threads
  at once, each thread on entries it swapped out itself (``swap_out_many``:
  ``folio_alloc_swap`` and the rest of the swap-out path, so the entries lie
  where the kernel's allocator puts a thread's pages); ns per page, the
  throughput at N threads against 1 thread, and the pure twin's ns per page
  at 1 thread for reference;
- **locks per operation**: deltas of the design's ``stats()``
  (``lock_acquisitions``, ``lockless_loads``, ``load_retries``) around each
  operation, divided by the pages;
- **range operations**: the same calls with ``batch=True``, which take a
  lock once per run of entries under it; no zswap path of the kernel batches
  like this, so they are reported apart;
- **round trip**: per page, ``swap_out_many`` (allocation, swap cache,
  ``zswap_store``, the shadow left), ``zswap_entry_load_many`` and
  ``swap_free_many`` -- a swap-out and the zswap half of a swap-in, without
  the swap-in's ``swap_cache_add_folio``.

Every figure is the median of several rounds; the scaling ratios are of
figures measured in the same run.
"""

import threading
import time
from array import array

import numpy as np

from vswapfast.designs import available_designs, design_class

#: Sizes of the full run and of ``--quick``: entries per thread, timed
#: rounds (after one warm-up), entries of the pure twin.
SIZES = {
    "full": dict(entries=1 << 16, rounds=15, pure_entries=4096, pure_rounds=3),
    "quick": dict(entries=512, rounds=2, pure_entries=128, pure_rounds=1),
}
#: One kernel operation per page, in the order a round runs them (erase
#: first: the entries come out of ``swap_out_many`` holding a handle).
PAGE_OPS = ("erase", "store", "load")
#: What each round times, per-page operations, then the range ones.
ROUND = tuple(("page", op) for op in PAGE_OPS) + tuple(("range", op) for op in PAGE_OPS) + (
    ("page", "round_trip"),)
LOCK_KEYS = ("lock_acquisitions", "lockless_loads", "load_retries")
RANGE_LABEL = "range operations (no zswap path of the kernel batches like this)"


class DesignBenchError(Exception):
    """A design gave back what its contract says it cannot."""


def _lock_counts(design):
    stats = design.stats()
    return [stats[k] for k in LOCK_KEYS]


class _Worker:
    """One thread's pages: entries it swapped out itself, their handles, and
    the calls of a round.  Each call checks what the design returns, so a
    lost entry fails the bench instead of flattering a figure."""

    def __init__(self, design, index, n):
        self.design = design
        self.n = n
        self.entries = design.swap_out_many(n)      # this thread's own clusters
        base = 1 + index * n
        self.handles = array("Q", range(base, base + n))
        self.out = array("Q", bytes(8 * n))

    def run(self, kind, op):
        d, e, n = self.design, self.entries, self.n
        batch = kind == "range"
        if op == "erase":
            _expect(d.zswap_entry_erase_many(e, batch=batch), n, kind, op)
        elif op == "store":
            _expect(d.zswap_entry_store_many(e, self.handles, batch=batch), 0, kind, op)
        elif op == "load":
            _expect(d.zswap_entry_load_many(e, self.out, batch=batch), n, kind, op)
        else:
            fresh = d.swap_out_many(n)
            _expect(d.zswap_entry_load_many(fresh, self.out), n, kind, op)
            d.swap_free_many(fresh)


def _expect(got, want, kind, op):
    if got != want:
        raise DesignBenchError("%s %s returned %d (entries that held a handle), expected %d"
                               % (kind, op, got, want))


class _Team:
    """``threads`` threads, each with its own ``_Worker`` built in the
    thread; ``run(kind, op)`` has them all run one call at once and returns
    the seconds from the start signal to the last one's end.  The design's
    calls release the GIL, so the threads really run in parallel."""

    def __init__(self, design, threads, n):
        self.workers = [None] * threads
        self.task = None
        self.stop = False
        self.failed = []
        self.go = threading.Barrier(threads + 1)
        self.done = threading.Barrier(threads + 1)
        self.threads = [threading.Thread(target=self._work, args=(design, i, n), daemon=True)
                        for i in range(threads)]
        for t in self.threads:
            t.start()
        self.done.wait()                # every worker has its entries
        if self.failed:
            self.close()
            raise self.failed[0]

    def _work(self, design, index, n):
        try:
            self.workers[index] = _Worker(design, index, n)
        except BaseException as exc:    # reported by __init__
            self.failed.append(exc)
        self.done.wait()
        while True:
            self.go.wait()
            if self.stop:
                return
            try:
                if not self.failed:
                    self.workers[index].run(*self.task)
            except BaseException as exc:    # reported by run()
                self.failed.append(exc)
            self.done.wait()

    def run(self, kind, op):
        self.task = (kind, op)
        start = time.perf_counter()
        self.go.wait()
        self.done.wait()
        elapsed = time.perf_counter() - start
        if self.failed:
            raise self.failed[0]
        return elapsed

    def close(self):
        self.stop = True
        self.go.wait()
        for t in self.threads:
            t.join()


def measure(name, core, threads, n, rounds):
    """Seconds per round of every (kind, op) of ``ROUND`` for design
    ``name`` at ``threads`` threads of ``n`` entries, and the lock counter
    deltas summed over the timed rounds: ``{(kind, op): (median seconds,
    [lock acquisitions, lockless loads, load retries], fastest seconds)}``; and the CPUs the
    threads had, the process's CPU time over the wall time of the timed
    per-page operations (on a shared machine, fewer than ``threads``)."""
    cls = design_class(name, core)
    # Each thread's entries, a round trip's as many again, whole clusters
    # of slack per thread.
    design = cls(threads * (2 * n + 4096) + 4096)
    try:
        team = _Team(design, threads, n)
        try:
            times = {step: [] for step in ROUND}
            locks = {step: [0] * len(LOCK_KEYS) for step in ROUND}
            cpu = wall = 0.0
            for r in range(rounds + 1):
                for step in ROUND:
                    before = _lock_counts(design)
                    cpu_before = time.process_time()
                    elapsed = team.run(*step)
                    cpu_used = time.process_time() - cpu_before
                    after = _lock_counts(design)
                    if r:
                        times[step].append(elapsed)
                        if step[0] == "page" and step[1] in PAGE_OPS:
                            cpu += cpu_used
                            wall += elapsed
                        locks[step] = [t + a - b for t, a, b in zip(locks[step], after, before)]
        finally:
            team.close()
    finally:
        design.close()
    return ({step: (float(np.median(times[step])), locks[step], min(times[step]))
             for step in ROUND},
            cpu / wall if wall else 0.0)


def design_steps(threads):
    """The progress steps of ``design_rows``: (name, weight) per design."""
    return [("designs: %s" % name, 0.5 * (len(threads) + 1))
            for name in available_designs("compiled")]


def design_rows(threads, quick=False, track=None):
    """The per-design section of the bench, JSON-ready.

    ``threads``: the thread counts (1 first); ``track``: an object whose
    ``start(step)`` and ``finish(step)`` are called around each step of
    ``design_steps``."""
    size = SIZES["quick" if quick else "full"]
    n, rounds = size["entries"], size["rounds"]
    names = list(available_designs("compiled"))
    pure = set(available_designs("pure"))
    rows = {}
    for name in names:
        step = "designs: %s" % name
        if track is not None:
            track.start(step)
        per_count = [measure(name, "compiled", t, n, rounds) for t in threads]
        pure_ns = None
        if name in pure:
            twin = measure(name, "pure", 1, size["pure_entries"], size["pure_rounds"])[0]
            pure_ns = {op: twin[("page", op)][0] / size["pure_entries"] * 1e9
                       for op in PAGE_OPS + ("round_trip",)}
        rows[name] = _row(per_count, threads, n, rounds, pure_ns)
        if track is not None:
            track.finish(step)
    return {"config": dict(size, threads=list(threads), designs=names), "designs": rows}


def _row(measured, threads, n, rounds, pure_ns):
    per_count = [m for m, _cpus in measured]
    row = {"per_page": {}, "range": {}, "pure_ns": pure_ns,
           "cpus": [cpus for _m, cpus in measured]}
    for kind, op in ROUND:
        seconds = [m[(kind, op)][0] for m in per_count]
        fastest = [m[(kind, op)][2] for m in per_count]
        best = [t * n / s for t, s in zip(threads, fastest)]
        mops = [t * n / s / 1e6 for t, s in zip(threads, seconds)]
        figures = {"ns": [s / n * 1e9 for s in seconds],
                   "mops": mops,
                   "scaling": [m / mops[0] for m in mops],
                   # The fastest rounds: those in which every thread had a CPU
                   # on a busy machine.
                   "ns_best": [s / n * 1e9 for s in fastest],
                   "scaling_best": [b / best[0] for b in best]}
        for key, values in zip(("locks", "lockless", "retries"),
                               zip(*[m[(kind, op)][1] for m in per_count])):
            figures[key + "_per_op"] = [v / (rounds * t * n) for v, t in zip(values, threads)]
        figures["lock_free"] = not any(figures["locks_per_op"])
        if op == "round_trip":
            row["round_trip"] = figures
        else:
            row["per_page" if kind == "page" else "range"][op] = figures
    return row


# -- the table ------------------------------------------------------------------

def _scaled(figures, i):
    return "%.1f (%.2fx, best %.2fx)" % (figures["ns"][i], figures["scaling"][i],
                                         figures["scaling_best"][i])


def _ops_table(lines, rows, kind, counts, with_pure):
    add = lines.append
    header = "  %-14s %-7s %9s" % ("", "", "1 thread")
    for t in counts[1:]:
        header += " %26s" % ("%d threads" % t)
    if with_pure:
        header += " %9s" % "pure x1"
    header += " %9s %9s %9s %9s" % ("locks/op", "lockless", "retries", "lock-free")
    add(header)
    for name, row in rows.items():
        ops = row[kind]
        for op in PAGE_OPS:
            f = ops[op]
            cells = "  %-14s %-7s %9.1f" % (name if op == PAGE_OPS[0] else "", op, f["ns"][0])
            for i in range(1, len(counts)):
                cells += " %26s" % _scaled(f, i)
            if with_pure:
                cells += " %9s" % ("%.0f" % row["pure_ns"][op] if row["pure_ns"] else "-")
            cells += " %9.3f %9.3f" % (f["locks_per_op"][0], f["lockless_per_op"][0])
            cells += " %9s" % ("%.3f" % max(f["retries_per_op"]) if op == "load" else "")
            if op == "load":
                cells += " %9s" % ("yes" if f["lock_free"] else "no")
            add(cells)


def format_designs(section):
    """The section as lines of a table, ending with a blank one."""
    lines = []
    add = lines.append
    config = section["config"]
    counts = config["threads"]
    rows = {name: section["designs"][name] for name in config["designs"]}    # JSON sorts keys
    add("zswap entry ops per design, one kernel operation per page, ns per page per thread "
        "(compiled core; median of %d rounds of %d entries per thread, each thread on "
        "entries it swapped out itself; (x) = throughput over 1 thread, of the median "
        "rounds and of the fastest ones)"
        % (config["rounds"], config["entries"]))
    add("  (*_many(batch=False): C loops without the GIL, each page taking the design's "
        "locks; pure x1: the pure twin at 1 thread; from the design's lock counters, per "
        "page: locks/op taken, lockless reads made without a lock (for vswap designs the "
        "cluster map lookup before the cluster lock), retries of lockless reads (the most "
        "at any thread count); lock-free: every load took no lock at all)")
    _ops_table(lines, rows, "per_page", counts, True)
    if len(counts) > 1:
        add("  CPUs the threads had (process CPU time / wall time of the per-page operations; "
            "fewer than the threads on a busy machine): " + "; ".join(
                "%s %s" % (name, " ".join("x%d %.2f" % (t, c) for t, c in zip(counts, row["cpus"])))
                for name, row in rows.items()))
    add("")
    add("%s, ns per page per thread" % RANGE_LABEL)
    add("  (*_many(batch=True): a lock taken once per run of entries under it)")
    _ops_table(lines, rows, "range", counts, False)
    add("")
    add("swap-out + zswap load + free round trip per design, ns per page per thread")
    add("  (swap_out_many: folio_alloc_swap, zswap_store, the shadow left; "
        "zswap_entry_load_many; swap_free_many -- the swap-in's swap cache add not included)")
    header = "  %-14s %9s" % ("", "1 thread")
    for t in counts[1:]:
        header += " %26s" % ("%d threads" % t)
    add(header + " %9s %9s" % ("pure x1", "locks/page"))
    for name, row in rows.items():
        f = row["round_trip"]
        cells = "  %-14s %9.1f" % (name, f["ns"][0])
        for i in range(1, len(counts)):
            cells += " %26s" % _scaled(f, i)
        cells += " %9s" % ("%.0f" % row["pure_ns"]["round_trip"] if row["pure_ns"] else "-")
        add(cells + " %10.2f" % f["locks_per_op"][0])
    add("")
    return lines
