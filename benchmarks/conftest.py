"""Shared fixtures of the benchmarks, and a summary of ratios.

Every figure the summary prints is a ratio of two medians measured in the
same run, since absolute times on a shared machine drift from run to run.
"""

import pytest

import vswapfast._vswap
import vswapfast.pure

CORES = {"compiled": vswapfast._vswap, "pure": vswapfast.pure}


@pytest.fixture(params=sorted(CORES))
def core(request):
    return CORES[request.param]


def _per_op(bench):
    stats = bench.stats
    ops = bench.extra_info.get("ops", 1)
    return stats.median / ops


def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or session.disabled or not session.benchmarks:
        return
    groups = {}
    locks = {}
    for bench in session.benchmarks:
        if bench.stats is None or "impl" not in bench.extra_info:
            continue
        impl = bench.extra_info["impl"]
        if "threads" in bench.extra_info:
            impl = "%s x%d" % (impl, bench.extra_info["threads"])
        groups.setdefault(bench.group, {})[impl] = _per_op(bench)
        if "locks_per_op" in bench.extra_info:
            locks.setdefault(bench.group, []).append(
                (impl, bench.extra_info["locks_per_op"], bench.extra_info["lockless_per_op"]))
        elif "lock_acquisitions" in bench.extra_info:
            locks.setdefault(bench.group, []).append(
                (impl, bench.extra_info["lock_acquisitions"], bench.extra_info["lock_contended"]))
    if not groups:
        return
    write = terminalreporter.write_line
    terminalreporter.section("vswapfast: per-operation medians and ratios (one run)")
    for group in sorted(groups):
        impls = groups[group]
        base = impls.get("dict") or impls.get("lz4") or impls.get("floor")
        parts = []
        for impl in sorted(impls, key=impls.get):
            text = "%s %.1f ns" % (impl, impls[impl] * 1e9)
            if base and impls[impl] is not base:
                text += " (%.2fx)" % (impls[impl] / base)
            parts.append(text)
        if "compiled" in impls and "pure" in impls:
            parts.append("pure/compiled %.1fx" % (impls["pure"] / impls["compiled"]))
        one = [k for k in impls if k.endswith(" x1")]
        for k in one:
            for other in impls:
                if other.startswith(k[:-1]) and other != k:
                    threads = int(other.rsplit("x", 1)[1])
                    parts.append("%s throughput %.2fx of x1" % (other, impls[k] / impls[other]))
        write("%-28s %s" % (group, "; ".join(parts)))
        if group in locks and group.startswith("design "):
            write("%-28s locks/op: %s" % ("", "; ".join(
                "%s %.2f (lock-free reads %.2f)" % (impl, per_op, lockless)
                for impl, per_op, lockless in sorted(locks[group]))))
        elif group in locks:
            write("%-28s locks: %s" % ("", "; ".join(
                "%s %d taken, %.1f%% contended" % (impl, acq, 100.0 * cont / acq if acq else 0)
                for impl, acq, cont in sorted(locks[group]))))
