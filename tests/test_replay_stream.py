"""The streaming replay (``vswapfast.stream``): the reclaim fed a chunk at a
time gives the offline replay's misses, the replay the same report, in
memory bounded by the distinct pages."""

import gzip
import importlib
import struct
import tracemalloc

import numpy as np
import pytest

from cores import core_names
from test_cli import replay_json, vswapfast
from trace_support import compress, lru_counts, skewed, write
from vswapfast.replay import ReplayConfig, Trace, read_trace, run_replay, simulate
from vswapfast.stream import TraceStream, run_stream
from vswapfast.traces import TraceOptions
from vswapfast.traces.oracle_general import RECORD
from vswapfast.workload import PageFactory

LOOPS = {"compiled": "vswapfast._reclaim", "pure": "vswapfast.pure.reclaim"}

compiled_only = pytest.mark.skipif(
    "compiled" not in core_names(), reason="VSWAPFAST_PURE=1: the compiled core is not tested")

#: Report fields that are times (or ratios of times), which differ run to run.
TIMES = ("time_", "floor", "replay_over_floor", "swap_over_floor")


def zipf_trace(n, distinct, seed, writes=True):
    rng = np.random.default_rng(seed)
    keys = (rng.zipf(1.2, n) % distinct).astype(np.uint64) * np.uint64(7919)
    return Trace(keys, rng.random(n) < 0.3 if writes else None, "zipf", "keys")


def fed(stream, keys, writes, piece):
    """The misses of ``keys`` fed ``piece`` events at a time, concatenated."""
    outs = [stream.feed(keys[lo:lo + piece], None if writes is None else writes[lo:lo + piece])
            for lo in range(0, len(keys), piece)]
    return {name: np.concatenate([o[name] for o in outs]) for name in outs[0]
            if name != "first_miss"}


@pytest.mark.parametrize("reclaim", ["lru", "kernel"])
def test_stream_reclaim_gives_the_offline_misses(core_name, reclaim):
    n = 40_000 if core_name == "compiled" else 8000
    trace = zipf_trace(n, 1500, seed=3)
    frames = 150
    offline = simulate(trace, frames, reclaim, core_name)
    stream = importlib.import_module(LOOPS[core_name]).StreamReclaim(reclaim)
    stream.count(trace.keys[:n // 2])           # a partial first pass: the rest grows
    stream.start(frames)
    m = fed(stream, trace.keys, trace.writes, 777)
    assert stream.distinct == offline.distinct and stream.misses == offline.miss_count
    assert m["event"].tolist() == offline.miss_events.tolist()
    evicts = m["victim_pid"] >= 0
    assert np.flatnonzero(evicts).tolist() == list(range(offline.cold_fill, offline.miss_count))
    assert m["victim_key"][evicts].tolist() == offline.victim_keys.tolist()
    assert m["victim_version"][evicts].tolist() == offline.victim_versions.tolist()
    ins = np.flatnonzero(m["evicted_as"] >= 0)
    assert ins.tolist() == offline.in_miss.tolist()
    assert m["evicted_as"][ins].tolist() == offline.in_evict.tolist()
    assert m["version"][ins].tolist() == offline.victim_versions[offline.in_evict].tolist()
    if reclaim == "kernel":
        assert m["victim_shadow"][evicts].tolist() == offline.shadows.tolist()
        assert m["shadow"][ins].tolist() == offline.shadows[offline.in_evict].tolist()
        assert m["refault_clock"][ins].tolist() == offline.refault_clock.tolist()
        assert m["workingset_size"][ins].tolist() == offline.workingset_size.tolist()
        assert m["activated"][ins].tolist() == offline.activated.tolist()
        assert (stream.promotions, stream.deactivations, stream.nr_active,
                stream.nr_inactive) == (offline.promotions, offline.deactivations,
                                        offline.nr_active, offline.nr_inactive)


def test_stream_reclaim_refuses_bad_input(core_name):
    module = importlib.import_module(LOOPS[core_name])
    with pytest.raises(ValueError, match="reclaim must be"):
        module.StreamReclaim("clock")
    stream = module.StreamReclaim("lru")
    with pytest.raises(RuntimeError, match="start"):
        stream.feed(np.arange(3, dtype=np.uint64))
    with pytest.raises(ValueError, match="frames must be at least 1"):
        stream.start(0)
    stream.start(2)
    with pytest.raises(TypeError, match="keys must be"):
        stream.feed(np.ones(3, dtype=float))
    with pytest.raises(ValueError, match="writes must have as many items"):
        stream.feed(np.arange(3, dtype=np.uint64), np.ones(2, dtype=bool))


def same_report(offline, streamed):
    a, b = offline.to_dict(), streamed.to_dict()
    differ = {k: (a[k], b[k]) for k in a if not k.startswith(TIMES) and a[k] != b[k]}
    assert not differ, differ
    assert b["verified"] == b["swap_ins"] and b["mismatches"] == 0
    assert b["shadow_mismatches"] == 0


def rw_text(keys, writes):
    return "".join("%#x %s\n" % (k * 4096, "W" if w else "R")
                   for k, w in zip(keys, writes)).encode()


def trace_files(tmp_path, n):
    """(path, format options) of one trace in several formats and
    compressions: keys (gzip), rw with writes (xz), u32be (plain),
    oracleGeneral split into pages (zstd)."""
    keys = skewed(n, 700, seed=11)
    writes = [k % 3 == 0 for k in keys]
    records = np.zeros(n // 2, dtype=RECORD)
    records["obj_id"] = keys[:n // 2]
    records["size"] = 4096 * (1 + np.array(keys[:n // 2]) % 2)
    records["next"] = -1
    return [
        (write(tmp_path / "t.keys.gz", "".join("%d\n" % k for k in keys).encode(), "gzip"),
         None),
        (write(tmp_path / "t.rw.xz", rw_text(keys, writes), "xz"), None),
        (write(tmp_path / "t.u32", struct.pack(">%dI" % n, *keys)), None),
        (write(tmp_path / "t.oracleGeneral.zst", records.tobytes(), "zstd"),
         TraceOptions(split=True)),
    ]


@pytest.mark.parametrize("reclaim", ["lru", "kernel"])
def test_streaming_gives_the_offline_report(tmp_path, core_name, reclaim):
    n = 12_000 if core_name == "compiled" else 3000
    for path, options in trace_files(tmp_path, n):
        for limit in (None, 200_000):
            config = dict(core=core_name, reclaim=reclaim, pool_limit=limit, floor=False)
            offline = run_replay(read_trace(str(path), "auto", options), ReplayConfig(**config),
                                 factory=PageFactory.synthetic(templates=16))
            streamed = run_stream(TraceStream.of_file(str(path), "auto", options),
                                  ReplayConfig(**config),
                                  factory=PageFactory.synthetic(templates=16))
            same_report(offline, streamed)
            if limit is not None:
                assert streamed.writebacks > 0, path
            if path.name.startswith("t.rw"):
                assert offline.format == "rw"


@pytest.mark.parametrize("reclaim", ["lru", "kernel"])
def test_streaming_an_in_memory_trace_with_writes(core_name, reclaim):
    trace = zipf_trace(20_000 if core_name == "compiled" else 4000, 2000, seed=8)
    for frames, chunk in ((None, 1024), (50, 7)):
        config = dict(core=core_name, reclaim=reclaim, frames=frames, chunk=chunk,
                      pool_limit=300_000)
        offline = run_replay(trace, ReplayConfig(**config),
                             factory=PageFactory.synthetic(templates=16))
        streamed = run_replay(trace, ReplayConfig(stream=True, **config),
                              factory=PageFactory.synthetic(templates=16))
        same_report(offline, streamed)
        assert streamed.floor_compress is not None


@pytest.mark.parametrize("reclaim", ["lru", "kernel"])
def test_streaming_with_threads(core_name, reclaim):
    """The counts of the reclaim and of the swap work are those offline
    (where the pool's pages lie depends on the threads' interleaving)."""
    trace = zipf_trace(20_000 if core_name == "compiled" else 4000, 2000, seed=9)
    config = dict(core=core_name, reclaim=reclaim, threads=3, floor=False)
    a = run_replay(trace, ReplayConfig(**config),
                   factory=PageFactory.synthetic(templates=16)).to_dict()
    b = run_replay(trace, ReplayConfig(stream=True, **config),
                   factory=PageFactory.synthetic(templates=16)).to_dict()
    for key in ("events", "distinct_keys", "frames", "hits", "misses", "swap_outs",
                "swap_ins", "refaults", "activations", "verified", "zswap_hits",
                "zero_pages", "stored_pages", "compressed_bytes", "shadows_checked"):
        assert a[key] == b[key], key
    assert b["mismatches"] == b["shadow_mismatches"] == 0
    assert a["timeseries"]["swap_outs"] == b["timeseries"]["swap_outs"]


@compiled_only
def test_cli_streams_a_trace_file(tmp_path):
    keys = skewed(5000, 400, seed=12)
    path = write(tmp_path / "t.txt.gz", "".join("%d\n" % k for k in keys).encode(), "gzip")
    streamed = replay_json(path, "--frames", 40, "--events", 4000)
    offline = replay_json(path, "--frames", 40, "--events", 4000, "--no-stream")
    hits, cold, outs, ins = lru_counts(keys[:4000], 40)
    for report in (streamed, offline):
        assert (report["events"], report["hits"], report["cold_misses"], report["swap_outs"],
                report["swap_ins"]) == (4000, hits, cold, outs, ins)
    assert streamed["timeseries"] == offline["timeseries"]
    bar = vswapfast("replay", path, "--frames", 40, "--no-floor").stderr
    assert "counting keys" in bar and "swap work" in bar and "100%" in bar
    default = replay_json("--events", 3000, "--keys", 500, "--stream")
    assert default["events"] == 3000 and default["mismatches"] == 0


# -- memory -----------------------------------------------------------------------

def hot_cold_keys(n, seed):
    """A hot set of 300 keys and, for 1% of the events, a cold tail of 1000:
    the replay misses now and then over a long trace."""
    rng = np.random.default_rng(seed)
    return np.where(rng.random(n) < 0.01, 1000 + rng.integers(0, 1000, n),
                    rng.integers(0, 300, n))


def oracle_general(path, n):
    records = np.zeros(n, dtype=RECORD)
    records["obj_id"] = hot_cold_keys(n, seed=4)
    records["size"] = 4096
    records["next"] = -1
    path.write_bytes(compress(records.tobytes(), "zstd"))
    return path


def text_gz(path, n):
    text = "\n".join(map(str, hot_cold_keys(n, seed=5).tolist())) + "\n"
    path.write_bytes(gzip.compress(text.encode(), 1))
    return path


def peak_of_streaming(path, core_name):
    """(report, peak bytes traced) of a streaming replay of ``path``."""
    config = ReplayConfig(core=core_name, frames=400, chunk=256, floor=False)
    factory = PageFactory.synthetic(templates=16)
    tracemalloc.start()
    try:
        report = run_stream(TraceStream.of_file(str(path)), config, factory=factory)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.distinct_keys <= 1300 and report.swap_ins > 0
    assert report.verified == report.swap_ins and report.mismatches == 0
    return report, peak


def peaks_of(tmp_path, core_name, write_trace, n):
    """Peaks of streaming traces of n/2 and n events over the same keys."""
    peaks = []
    for events in (n // 2, n):
        path = write_trace(tmp_path / ("long-%d" % events), events)
        report, peak = peak_of_streaming(path, core_name)
        assert report.events == events
        peaks.append(peak)
        path.unlink()
    # Twice the events, the same memory (give or take a block of the file).
    assert peaks[1] < 1.25 * peaks[0] + (1 << 20), peaks
    return peaks


def test_streaming_memory_is_bounded_by_the_distinct_pages(tmp_path, core_name):
    """Numpy's arrays are traced (and the pure twin's pool): the replay
    holds nothing per event.  On the compiled core, the peak is far below a
    key per event (the pure twin's pool of Python objects takes more than
    its shorter trace's keys)."""
    n = 8_000_000 if core_name == "compiled" else 600_000
    peaks = peaks_of(tmp_path, core_name, oracle_general, n)
    if core_name == "compiled":
        assert peaks[1] < 8 * n / 4, peaks


@compiled_only
def test_text_trace_memory_is_bounded(tmp_path):
    """A gzip text trace of millions of events, on the compiled core."""
    peaks_of(tmp_path, "compiled", text_gz, 2_000_000)


# -- what the verification catches, streamed ---------------------------------------

def test_a_wrong_shadow_is_reported(monkeypatch):
    module = importlib.import_module(LOOPS[core_names()[0]])
    original = module.swap_cache_del_folios

    def del_with_wrong_shadows(space, entries, folio, shadows=None):
        if shadows is not None:
            shadows = np.asarray(shadows) + np.uint64(1000)
        return original(space, entries, folio, shadows)

    monkeypatch.setattr(module, "swap_cache_del_folios", del_with_wrong_shadows)
    config = ReplayConfig(core=core_names()[0], frames=100, reclaim="kernel", floor=False,
                          chunk=64, stream=True)
    report = run_replay(zipf_trace(6000, 900, seed=1), config,
                        factory=PageFactory.synthetic(templates=16))
    assert report.shadow_mismatches == report.swap_ins > 0
    assert "shadow" in report.first_mismatch and report.mismatches == 0


@pytest.mark.parametrize("threads", [1, 2])
def test_a_page_that_differs_is_reported(monkeypatch, core_name, threads):
    """Pages stored at the wrong version are caught at swap-in (all but the
    zero pages, which have no version)."""
    from vswapfast import replay
    original = replay._Replayer.swap_out

    def swap_out_wrong_version(self, keys, versions, shadows, counts, buffer):
        return original(self, keys, versions + np.uint64(1), shadows, counts, buffer)

    monkeypatch.setattr(replay._Replayer, "swap_out", swap_out_wrong_version)
    config = ReplayConfig(core=core_name, frames=100, floor=False, threads=threads, stream=True)
    report = run_replay(zipf_trace(4000, 900, seed=2), config,
                        factory=PageFactory.synthetic(templates=16))
    assert report.swap_ins / 2 < report.mismatches <= report.swap_ins
    assert "the page differs" in report.first_mismatch


def test_an_error_in_a_shard_stops_the_replay(monkeypatch):
    from vswapfast import replay

    def broken(self, *args):
        raise RuntimeError("broken swap-in")

    monkeypatch.setattr(replay._Replayer, "swap_in", broken)
    config = ReplayConfig(core=core_names()[0], frames=100, floor=False, threads=2, stream=True)
    with pytest.raises(RuntimeError, match="broken swap-in"):
        run_replay(zipf_trace(4000, 900, seed=3), config,
                   factory=PageFactory.synthetic(templates=16))
