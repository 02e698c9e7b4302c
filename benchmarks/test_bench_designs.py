"""Per-page zswap entry store/load/erase of every design, one kernel
operation per page.

``zswap_entry_*_many(..., batch=False)`` runs a C loop without the GIL in
which each page takes the design's locks as the kernel's ``zswap_store``,
``zswap_load`` and ``zswap_invalidate`` do; the entries come from
``swap_out_many``, the kernel's whole swap-out path.  Each round runs the
operation over N entries; the summary divides by N and prints the locks
each operation took per page, from the design's lock counters.  With the
benchmarks disabled (the default: every test runs once as a plain test)
N is small, so the suite stays quick.
"""

from array import array

import pytest

from vswapfast.designs import available_designs, design_class

FULL_N = 1 << 15
QUICK_N = 256
OPS = ["store", "load", "erase"]
LOCK_KEYS = ("lock_acquisitions", "lockless_loads")


def _counts(design):
    stats = design.stats()
    return [stats[k] for k in LOCK_KEYS]


@pytest.mark.parametrize("design_name", available_designs("compiled"))
@pytest.mark.parametrize("op", OPS)
def test_per_page(benchmark, design_name, op):
    n = QUICK_N if benchmark.disabled else FULL_N
    design = design_class(design_name, "compiled")(2 * n + 4096)
    try:
        entries = design.swap_out_many(n)
        handles = array("Q", range(1, n + 1))
        out = array("Q", bytes(8 * n))
        design.zswap_entry_erase_many(entries)
        calls = {
            "store": lambda: design.zswap_entry_store_many(entries, handles),
            "load": lambda: design.zswap_entry_load_many(entries, out),
            "erase": lambda: design.zswap_entry_erase_many(entries),
        }

        def empty():
            design.zswap_entry_erase_many(entries, batch=True)

        def fill():
            design.zswap_entry_store_many(entries, handles, batch=True)

        # What each round needs first: store into empty entries, erase
        # stored ones, load stored ones (stored once, here).  A setup
        # returns None: pytest-benchmark takes anything else as arguments.
        setup = {"store": empty, "erase": fill, "load": None}[op]
        if op == "load":
            design.zswap_entry_store_many(entries, handles, batch=True)
        benchmark.group = "design per-page %s" % op
        benchmark.extra_info.update(impl=design_name, ops=n)
        if setup is not None:
            setup()
        before = _counts(design)
        assert calls[op]() == (0 if op == "store" else n)
        after = _counts(design)
        benchmark.extra_info.update(
            locks_per_op=(after[0] - before[0]) / n,
            lockless_per_op=(after[1] - before[1]) / n)
        benchmark.pedantic(calls[op], setup=setup, rounds=20, warmup_rounds=2)
        if op != "erase":
            assert design.zswap_entry_load_many(entries, out) == n
            assert out == handles
    finally:
        design.close()
