"""The replay as a time series: ``--json`` carries it, ``--plot`` draws it."""

import json

import numpy as np
import pytest

from test_cli import vswapfast

from vswapfast.replay import ReplayConfig, Trace, run_replay, timeseries
from vswapfast.workload import PageFactory

SMALL = ("--events", "30000", "--keys", "3000", "--no-progress", "--no-floor")


def check_shape(report, bins):
    series = report["timeseries"]
    edges = series["edges"]
    assert len(edges) == bins + 1
    assert edges[0] == 0 and edges[-1] == report["events"]
    assert all(a < b for a, b in zip(edges, edges[1:]))
    for key in ("swap_outs", "swap_ins"):
        assert len(series[key]) == bins
    assert sum(series["swap_outs"]) == report["swap_outs"]
    assert sum(series["swap_ins"]) == report["swap_ins"]
    samples = len(series["sample_event"])
    assert samples >= 1
    for key in ("pool_size", "stored_pages", "compressed_bytes", "compression_ratio",
                "writebacks"):
        assert len(series[key]) == samples, key
    assert series["sample_event"] == sorted(series["sample_event"])
    assert series["sample_event"][-1] <= report["events"]
    assert series["pool_size"][-1] == report["pool_size"]
    assert series["writebacks"][-1] == report["writebacks"]
    assert series["writebacks"] == sorted(series["writebacks"])
    assert max(series["pool_size"]) <= report["pool_size_peak"]
    return series


def test_json_has_the_time_series(tmp_path):
    out = tmp_path / "run.json"
    proc = vswapfast("replay", *SMALL, "--json", out, "--pool-limit", "2M")
    assert "timeseries" not in proc.stdout          # the text report
    report = json.loads(out.read_text())
    series = check_shape(report, 200)
    assert series["pool_limit"] == 2 << 20
    assert report["writebacks"] > 0                 # the limit was felt
    assert "refaults" not in series


def test_json_time_series_of_the_kernel_reclaim(tmp_path):
    report = json.loads(vswapfast("replay", *SMALL, "--reclaim", "kernel", "--json", "-").stdout)
    series = check_shape(report, 200)
    assert report["reclaim"] == "kernel"
    assert sum(series["refaults"]) == report["refaults"] == report["swap_ins"]
    assert sum(series["activations"]) == report["activations"] > 0
    assert report["shadows_checked"] == report["swap_ins"]
    assert report["shadow_mismatches"] == 0
    assert series["pool_limit"] is None


def test_time_series_bins_follow_the_config():
    rng = np.random.default_rng(5)
    trace = Trace(rng.integers(0, 500, 4000).astype(np.uint64), None, "t", "keys")
    report = run_replay(trace, ReplayConfig(frames=50, floor=False, timeseries_bins=7),
                        factory=PageFactory.synthetic(templates=8))
    check_shape(report.to_dict(), 7)


def test_a_trace_shorter_than_the_bins_gets_one_bin_per_event():
    trace = Trace(np.array([1, 2, 3, 1, 2, 3], dtype=np.uint64), None, "t", "keys")
    report = run_replay(trace, ReplayConfig(frames=2, floor=False),
                        factory=PageFactory.synthetic(templates=8))
    series = check_shape(report.to_dict(), 6)
    assert series["swap_outs"] == [0, 0, 1, 1, 1, 1]
    assert series["swap_ins"] == [0, 0, 0, 1, 1, 1]


def test_plot_is_written(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "run.png"
    proc = vswapfast("replay", *SMALL, "--reclaim", "kernel", "--pool-limit", "2M",
                     "--plot", out)
    assert "plot written to" in proc.stdout
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(data) > 20000


def test_plot_to_a_missing_directory_fails_before_the_replay(tmp_path):
    proc = vswapfast("replay", *SMALL, "--plot", tmp_path / "no" / "run.png", check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("vswapfast: error: --plot")
    assert len(proc.stderr.splitlines()) == 1


def test_progress_bar_on_stderr_for_the_kernel_reclaim_and_a_plot(tmp_path):
    pytest.importorskip("matplotlib")
    proc = vswapfast("replay", "--events", "20000", "--keys", "2000", "--no-floor",
                     "--reclaim", "kernel", "--plot", tmp_path / "p.png", "--json",
                     tmp_path / "r.json")
    assert "replay [" in proc.stderr and "kernel reclaim" in proc.stderr
    assert "100%" in proc.stderr
    assert "replay [" not in proc.stdout
