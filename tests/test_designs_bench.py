"""The designs section of ``vswapfast bench`` (vswapfast.benchdesigns), in
quick mode: a row per available design, figures that make sense, and the
locks each design's operations take as its lock counters show them."""

import time

import pytest

from vswapfast.benchdesigns import PAGE_OPS, RANGE_LABEL, design_rows, format_designs
from vswapfast.designs import available_designs

DESIGNS = available_designs("compiled")
#: Designs whose zswap loads are lock-free (xa_load() under RCU, or the
#: swap table read under RCU): docs/designs.md, "Locks per call".
LOCK_FREE_LOADS = {"xarray", "swap-table-p1", "swap-table"}

pytestmark = pytest.mark.skipif(not DESIGNS, reason="the compiled core is not built")


@pytest.fixture(scope="module")
def section():
    return design_rows([1, 2], quick=True)


def test_a_row_per_available_design(section):
    assert section["config"]["designs"] == list(DESIGNS)
    assert list(section["designs"]) == list(DESIGNS)
    assert section["config"]["threads"] == [1, 2]


def test_figures_per_design(section):
    for name, row in section["designs"].items():
        for kind in ("per_page", "range"):
            for op in PAGE_OPS:
                figures = row[kind][op]
                assert len(figures["ns"]) == len(figures["scaling"]) == 2, (name, kind, op)
                assert all(v > 0 for v in figures["ns"] + figures["mops"]), (name, kind, op)
                assert figures["scaling"][0] == figures["scaling_best"][0] == 1.0
                assert all(b <= m for b, m in zip(figures["ns_best"], figures["ns"]))
        assert all(v > 0 for v in row["round_trip"]["ns"])
        assert row["round_trip"]["locks_per_op"][0] > 1      # allocation and free lock
        assert len(row["cpus"]) == 2 and all(c > 0 for c in row["cpus"])
        assert set(row["pure_ns"]) == set(PAGE_OPS) | {"round_trip"}
        assert all(v > 0 for v in row["pure_ns"].values())


def test_every_per_page_operation_takes_its_locks(section):
    for name, row in section["designs"].items():
        per_page, ranged = row["per_page"], row["range"]
        for op in ("store", "erase"):
            # One kernel operation per page: at least one lock per page.
            assert per_page[op]["locks_per_op"][0] >= 1, (name, op)
            # A range operation takes its lock once per run of entries.
            assert ranged[op]["locks_per_op"][0] < 0.1, (name, op)
        # Same figures at every thread count: each page one operation.
        for op in ("store", "erase"):
            locks = per_page[op]["locks_per_op"]
            assert locks[0] == pytest.approx(locks[1]), (name, op)


def test_lock_free_loads_take_no_lock(section):
    for name in LOCK_FREE_LOADS & set(DESIGNS):
        load = section["designs"][name]["per_page"]["load"]
        assert load["locks_per_op"] == [0.0, 0.0], name
        assert load["lockless_per_op"][0] == 1.0, name
        assert load["lock_free"] is True, name


def test_locked_loads_take_a_lock(section):
    for name in {"rbtree", "vswap"} & set(DESIGNS):
        load = section["designs"][name]["per_page"]["load"]
        assert load["locks_per_op"][0] >= 1, name
        assert load["lock_free"] is False, name


def test_table(section):
    text = "\n".join(format_designs(section))
    assert "one kernel operation per page" in text
    assert RANGE_LABEL in text
    assert "round trip" in text
    for name in DESIGNS:
        assert text.count("\n  %s " % name) == 3, name      # per page, range, round trip


@pytest.mark.parametrize("name", DESIGNS)
def test_per_page_loops_let_other_threads_run(name):
    """The bench's threads run in parallel only if a per-page loop runs
    without the GIL: while one thread erases and stores its pages over and
    over (one lock per page each time), another reads ``stats()`` and sees
    a lock count part way through a call, which it could not if the calls
    held the GIL."""
    import threading
    from array import array

    from vswapfast.designs import design_class

    n = 1 << 16
    design = design_class(name, "compiled")(2 * n + 4096)
    try:
        entries = design.swap_out_many(n)
        handles = array("Q", range(1, n + 1))
        stop = threading.Event()

        def churn():
            while not stop.is_set():
                design.zswap_entry_erase_many(entries)
                design.zswap_entry_store_many(entries, handles)

        start = design.stats()["lock_acquisitions"]
        worker = threading.Thread(target=churn)
        worker.start()
        try:
            seen = set()
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not any(c % n for c in seen):
                seen.add(design.stats()["lock_acquisitions"] - start)
        finally:
            stop.set()
            worker.join()
        assert any(c % n for c in seen), sorted(seen)[:10]
    finally:
        design.close()


def test_a_lost_entry_is_a_bench_error(monkeypatch):
    """A design whose load misses an entry stops the bench with a one-line
    BenchError instead of giving a figure."""
    from vswapfast import benchdesigns
    from vswapfast.benchjob import BenchError, run_bench

    def miss(self, kind, op):
        benchdesigns._expect(0, self.n, kind, op)

    monkeypatch.setattr(benchdesigns._Worker, "run", miss)
    with pytest.raises(BenchError, match="designs: page erase returned 0"):
        run_bench(threads=1, quick=True, compressors=["lz4"])


def test_one_thread_table():
    section = design_rows([1], quick=True)
    text = "\n".join(format_designs(section))
    assert "2 threads" not in text and "CPUs the threads had" not in text
    for row in section["designs"].values():
        assert len(row["per_page"]["store"]["ns"]) == 1
