"""Streaming: reading a long trace takes memory for a chunk and the
distinct pages, not for the whole trace."""

import gzip
import tracemalloc

import numpy as np

from trace_support import compress
from vswapfast.traces import TraceOptions, iter_chunks
from vswapfast.traces.oracle_general import RECORD

RECORDS = 2_000_000


def _peak_while_streaming(path, options=None):
    """(events, distinct keys, peak bytes traced) of streaming ``path``."""
    tracemalloc.start()
    try:
        events = 0
        seen = np.zeros(0, dtype=np.uint64)
        for chunk in iter_chunks(path, options=options):
            events += len(chunk)
            seen = np.union1d(seen, chunk.keys)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return events, len(seen), peak


def test_oracle_general_stream_is_bounded(tmp_path):
    records = np.zeros(RECORDS, dtype=RECORD)
    rng = np.random.default_rng(1)
    records["obj_id"] = rng.integers(0, 5000, RECORDS)
    records["size"] = 8192
    records["next"] = -1
    decoded = records.nbytes                    # 48 MB of records
    path = tmp_path / "long.oracleGeneral.zst"
    path.write_bytes(compress(records.tobytes(), "zstd"))
    del records
    events, distinct, peak = _peak_while_streaming(path, TraceOptions(split=True))
    assert events == 2 * RECORDS and distinct == 2 * 5000
    assert peak < decoded / 4, (peak, decoded)


def test_text_stream_is_bounded(tmp_path):
    keys = np.random.default_rng(2).integers(0, 3000, RECORDS // 2)
    text = ("\n".join(map(str, keys.tolist())) + "\n").encode()
    decoded = len(text) + keys.nbytes           # the text, or its keys as an array
    path = tmp_path / "long.txt.gz"
    path.write_bytes(gzip.compress(text, compresslevel=1))
    del text
    events, distinct, peak = _peak_while_streaming(path)
    assert events == len(keys) and distinct == len(np.unique(keys))
    assert peak < decoded / 2, (peak, decoded)
