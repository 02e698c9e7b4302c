"""Figures of ``vswapfast bench --plot``, ``replay --plot`` and ``memory --plot``, drawn
with matplotlib (Agg).

matplotlib is imported only here, and only when a figure is asked for, so
the rest of the package works without it.
"""

import numpy as np


class PlotError(Exception):
    """The figure cannot be drawn (a one-line message for the user)."""


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise PlotError("--plot needs matplotlib, which is not installed (pip install "
                        "'vswapfast[plot]', or pip install matplotlib)") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def plot_bench(results, path):
    """Draw the results of ``run_bench`` into a PNG at ``path``."""
    plt = _pyplot()
    designs = "designs" in results
    fig, axes = plt.subplots(3 if designs else 2, 2, figsize=(13, 14 if designs else 9.5))
    try:
        if designs:
            _design_ops(axes[0][0], results)
            _design_throughput(axes[0][1], results)
            axes = axes[1:]
        _throughput(axes[0][0], results)
        _entry_ops(axes[0][1], results)
        _pages(axes[1][0], results)
        _metadata(axes[1][1], results)
        fig.suptitle("vswapfast bench: %d CPUs, Python %s%s" % (
            results["machine"]["cpus"], results["machine"]["python"],
            " (quick)" if results.get("quick") else ""))
        fig.tight_layout(rect=(0, 0, 1, 0.96))
        try:
            fig.savefig(path, dpi=100, format="png")
        except OSError as exc:
            raise PlotError("cannot write the plot %s (%s)" % (path, exc.strerror or exc)) from None
    finally:
        plt.close(fig)


_DESIGN_COLOURS = {"vswap": "tab:blue", "rbtree": "tab:red"}


def _throughput(ax, results):
    counts = results["config"]["threads"]
    for core, designs in results["batch_mops"].items():
        for design, row in designs.items():
            for op, style in (("store", "-"), ("load", "--")):
                ax.plot(counts, row[op], style, marker="o" if core == "compiled" else "s",
                        color=_DESIGN_COLOURS.get(design), alpha=1.0 if core == "compiled" else 0.5,
                        label="%s %s %s" % (core, design, op))
    ax.set_xticks(counts)
    ax.set_xlabel("threads")
    ax.set_ylabel("million entries / s (log)")
    ax.set_yscale("log")
    ax.set_title("batch zswap entry calls (range operations): throughput per index design")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)


def _design_ops(ax, results):
    rows = {name: results["designs"]["designs"][name]
            for name in results["designs"]["config"]["designs"]}
    values = {op: {name: row["per_page"][op]["ns"][0] for name, row in rows.items()}
              for op in ("store", "load", "erase")}
    _grouped_bars(ax, list(rows), list(values), values, log=True)
    ax.set_ylabel("ns per page, 1 thread (log)")
    ax.set_title("designs: zswap entry ops, one kernel operation per page")


def _design_throughput(ax, results):
    counts = results["designs"]["config"]["threads"]
    for i, name in enumerate(results["designs"]["config"]["designs"]):
        row = results["designs"]["designs"][name]
        colour = "C%d" % i
        for op, style in (("store", "-"), ("load", "--")):
            ax.plot(counts, row["per_page"][op]["mops"], style, marker="o", color=colour,
                    label="%s %s" % (name, op))
    ax.set_xticks(counts)
    ax.set_xlabel("threads")
    ax.set_ylabel("million pages / s (log)")
    ax.set_yscale("log")
    ax.set_title("designs: per-page operations, throughput against threads")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)


def _grouped_bars(ax, groups, series, values, log=False, unit=""):
    """Bars of ``values[s][g]`` for each group and series."""
    x = np.arange(len(groups))
    width = 0.8 / max(1, len(series))
    for i, name in enumerate(series):
        heights = [values[name].get(g, np.nan) for g in groups]
        bars = ax.bar(x + (i - (len(series) - 1) / 2) * width, heights, width, label=name)
        for bar, h in zip(bars, heights):
            if h == h:      # not NaN
                ax.annotate("%.3g%s" % (h, unit), (bar.get_x() + bar.get_width() / 2, h),
                            ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x)
    ax.set_xticklabels(groups)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)


def _entry_ops(ax, results):
    ops = results["entry_ops_ns"]
    impls = [i for i in ("compiled", "pure", "dict") if i in ops]
    _grouped_bars(ax, ["store", "load", "erase"], impls, ops, log=True)
    ax.set_ylabel("ns per operation (log)")
    ax.set_title("zswap_entry_store / load / erase: cost per op")


def _pages(ax, results):
    pages = results["pages_us"]
    values = {"raw LZ4": {"store": pages["lz4"]["compress"], "load": pages["lz4"]["decompress"]}}
    for core in ("compiled", "pure"):
        if core in pages:
            values[core] = {"store": pages[core]["store"], "load": pages[core]["load"]}
            values[core + " batch"] = {"store": pages[core]["store_many"],
                                       "load": pages[core]["load_many"]}
    _grouped_bars(ax, ["store", "load"], list(values), values)
    ax.set_ylabel("us per page")
    ax.set_title("zswap page store / load against raw LZ4 (%d pages)" % results["pages"]["count"])


def _metadata(ax, results):
    meta = results["metadata_bytes_per_entry"]
    labels, desc, index = [], [], []
    for core in ("compiled", "pure"):
        for design, m in meta.get(core, {}).items():
            labels.append("%s\n%s" % (core, design))
            desc.append(m["descriptors"])
            index.append(m["index"])
    if "dict" in meta:
        labels.append("bare\ndict")
        desc.append(0.0)
        index.append(meta["dict"]["index"])
    x = np.arange(len(labels))
    ax.bar(x, desc, 0.6, label="descriptors")
    ax.bar(x, index, 0.6, bottom=desc, label="zswap index")
    for xi, d, i in zip(x, desc, index):
        ax.annotate("%.1f" % (d + i), (xi, d + i), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel("bytes per swap entry")
    ax.set_title("seed's VSwap + zswap index option: bytes per swap entry")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)


def plot_replay(report, path):
    """Draw a replay's time series (``ReplayReport.to_dict()``, with its
    ``timeseries``) into a PNG at ``path``: over the trace's events, the
    swap-outs and swap-ins per interval, the pool size against its limit,
    the compression ratio and the pages written back."""
    series = report.get("timeseries")
    if not series:
        raise PlotError("the replay has no time series to draw")
    plt = _pyplot()
    fig, axes = plt.subplots(4, 1, figsize=(11, 11), sharex=True)
    try:
        _swap_traffic(axes[0], series)
        _pool_size(axes[1], series)
        _ratio(axes[2], series)
        _writebacks(axes[3], series)
        axes[3].set_xlabel("trace events")
        fig.suptitle("vswapfast replay: %s, %s frames, %s reclaim, core %s" % (
            report["trace"], "{:,}".format(report["frames"]), report.get("reclaim", "lru"),
            report["core"]))
        fig.tight_layout(rect=(0, 0, 1, 0.97))
        try:
            fig.savefig(path, dpi=100, format="png")
        except OSError as exc:
            raise PlotError("cannot write the plot %s (%s)" % (path, exc.strerror or exc)) from None
    finally:
        plt.close(fig)


def _steps(ax, edges, values, **kwargs):
    ax.stairs(values, edges, **kwargs)


def _swap_traffic(ax, series):
    edges = series["edges"]
    _steps(ax, edges, series["swap_outs"], label="swap-outs", color="tab:red")
    _steps(ax, edges, series["swap_ins"], label="swap-ins", color="tab:blue")
    if "activations" in series:
        _steps(ax, edges, series["activations"], label="refaults activated",
               color="tab:green", linestyle="--")
    width = (edges[-1] - edges[0]) / max(1, len(edges) - 1)
    ax.set_ylabel("pages per %s events" % "{:,.0f}".format(width))
    ax.set_title("swap traffic per interval")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)


def _pool_size(ax, series):
    x = series["sample_event"]
    ax.plot(x, np.asarray(series["pool_size"], dtype=float) / 1048576.0, color="tab:purple",
            label="pool size")
    if series.get("pool_limit") is not None:
        ax.axhline(series["pool_limit"] / 1048576.0, color="black", linestyle=":",
                   label="pool limit")
    ax.set_ylabel("MiB")
    ax.set_title("zswap pool size")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)


def _ratio(ax, series):
    # An empty pool has no ratio: leave a gap rather than draw a zero.
    ratio = np.asarray(series["compression_ratio"], dtype=float)
    ratio[np.asarray(series["stored_pages"]) == 0] = np.nan
    ax.plot(series["sample_event"], ratio, color="tab:orange")
    ax.set_ylabel("stored / compressed")
    ax.set_title("pool compression ratio")
    ax.grid(True, alpha=0.3)


def _writebacks(ax, series):
    ax.plot(series["sample_event"], series["writebacks"], color="tab:brown")
    ax.set_ylabel("pages (cumulative)")
    ax.set_title("pages written back to the swap file")
    ax.grid(True, alpha=0.3)


def plot_memory(rows, path):
    """Draw the rows of ``vswapfast memory`` into a PNG at ``path``: MiB
    against usage per design, zswap and disk side by side, the published
    figures as open markers of the same colour."""
    from vswapfast.memory import BACKINGS, MIB, references
    plt = _pyplot()
    refs = references(rows)
    fig, axes = plt.subplots(1, len(BACKINGS), figsize=(13, 5.5), sharey=True)
    try:
        designs = list(dict.fromkeys(r["design"] for r in rows))
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for ax, backing in zip(axes, BACKINGS):
            for i, name in enumerate(designs):
                mine = [r for r in rows if r["design"] == name and r["backing"] == backing]
                x = [r["usage_percent"] for r in mine]
                colour = colours[i % len(colours)]
                ax.plot(x, [r["bytes"] / MIB for r in mine], "o-", color=colour, label=name)
                ref = [refs.get((name, backing, u)) for u in x]
                if ref and all(v is not None for v in ref):
                    ax.plot(x, [v[0] / MIB for v in ref], "s--", color=colour, mfc="none",
                            label="%s: %s" % (name, ref[0][1]))
            ax.set_title("backed by %s" % backing)
            ax.set_xlabel("swap device used (%)")
            ax.set_xticks([0, 25, 50, 75, 100])
            ax.grid(True, alpha=0.3)
        axes[0].set_ylabel("metadata (MiB)")
        axes[-1].legend(fontsize=8, loc="upper left")
        slots = rows[0]["nr_slots"] if rows else 0
        fig.suptitle("vswapfast memory: swap metadata of a %.3g GiB device (%d slots)"
                     % (slots * 4096 / (1 << 30), slots))
        fig.tight_layout(rect=(0, 0, 1, 0.95))
        try:
            fig.savefig(path, dpi=100, format="png")
        except OSError as exc:
            raise PlotError("cannot write the plot %s (%s)" % (path, exc.strerror or exc)) from None
    finally:
        plt.close(fig)
