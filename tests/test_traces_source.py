"""Opening traces: compression by magic bytes, format detection, bad files,
and the chunk API."""

import numpy as np
import pytest

from trace_support import compress, single_line_error, write
from vswapfast.traces import (
    FORMATS, TraceError, TraceOptions, TraceReader, TraceSource, compression_of, detect,
    iter_chunks, read_all)


@pytest.mark.parametrize("kind, name", [("xz", "xz"), ("gzip", "gzip"), ("zstd", "zstd"),
                                        ("plain", None)])
def test_compression_by_magic_not_name(tmp_path, kind, name):
    # The file name says nothing (or lies): the first bytes decide.
    path = write(tmp_path / "trace.gz", b"1\n2\n3\n", kind)
    with TraceSource(path) as source:
        assert source.compression == name
        assert source.read(100) == b"1\n2\n3\n"
        assert source.read(100) == b""
    assert compression_of(compress(b"x", kind)) == name


def test_concatenated_zstd_frames(tmp_path):
    path = tmp_path / "t.zst"
    path.write_bytes(compress(b"1\n2\n", "zstd") + compress(b"3\n", "zstd"))
    assert read_all(path)[0].tolist() == [1, 2, 3]


@pytest.mark.parametrize("kind", ["xz", "gzip", "zstd"])
def test_corrupt_compressed_data(tmp_path, kind):
    data = compress(np.arange(5000, dtype=">u4").tobytes(), kind)
    path = tmp_path / "t.bin"
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(TraceError) as exc:
        read_all(path)
    message = single_line_error(exc)
    assert message.startswith("trace %s: corrupt %s data" % (path, kind))


def test_missing_and_directory(tmp_path):
    with pytest.raises(TraceError, match="no such file"):
        read_all(tmp_path / "nope")
    with pytest.raises(TraceError, match="is a directory"):
        read_all(tmp_path)


@pytest.mark.parametrize("head, fmt", [
    (b"1\n2\n", "keys"),
    (b"# c\n\n0x10 R\n", "rw"),
    (b"128166372003061629,hm,1,Read,3154152960,32768,1179\n", "msr"),
    (b"version,time,op,size,lbn\n1,33898,2a,512,42932745\n", "cloudphysics"),
    (b"1,33898,28,512,42932745\n1,33898,2a,4096,8\n", "cloudphysics"),
    (np.arange(10, dtype=">u4").tobytes(), "u32be"),
])
def test_detect(head, fmt):
    assert detect(head, whole=True) == fmt


def test_unknown_csv_needs_a_spec(tmp_path):
    path = write(tmp_path / "t.csv", b"a,b,c\n1,2,3\n")
    with pytest.raises(TraceError) as exc:
        read_all(path)
    assert single_line_error(exc) == (
        "trace %s: the trace looks like CSV but fits no preset (msr, cloudphysics): give its "
        "columns with --csv SPEC" % path)


def test_csv_format_needs_a_spec(tmp_path):
    path = write(tmp_path / "t.csv", b"1,2\n")
    with pytest.raises(TraceError, match="--format csv needs --csv SPEC"):
        read_all(path, "csv")


@pytest.mark.parametrize("fmt, options, message", [
    ("yaml", TraceOptions(), "unknown trace format 'yaml'"),
    ("keys", TraceOptions(block_size=512), "--block-size is for oracleGeneral traces"),
    ("auto", TraceOptions(block_size=512), "--block-size is for oracleGeneral traces, and"),
    ("auto", TraceOptions(split=True), "--split is for objects with sizes"),
    ("keys", TraceOptions(split=True), "--split is for objects with sizes"),
])
def test_options_that_do_not_fit(tmp_path, fmt, options, message):
    path = write(tmp_path / "t.txt", b"1\n")
    with pytest.raises(TraceError, match=message):
        read_all(path, fmt, options)


def test_reader_api(tmp_path):
    path = write(tmp_path / "t.rw.xz", b"0x1000 R\n0x3000 W\n", "xz")
    with TraceReader(path) as reader:
        assert reader.format == "rw" and reader.name == "t.rw.xz"
        assert "xz" in repr(reader)
        chunks = list(reader)
    assert [c.keys.tolist() for c in chunks] == [[1, 3]]
    assert [c.writes.tolist() for c in chunks] == [[False, True]]
    assert chunks[0].keys.dtype == np.uint64
    fractions = []
    list(iter_chunks(path, progress=fractions.append))
    assert fractions == [1.0]


def test_replay_formats_match():
    from vswapfast.replay import FORMATS as REPLAY_FORMATS
    assert REPLAY_FORMATS == FORMATS


def test_empty_trace(tmp_path):
    from vswapfast.replay import ReplayError, read_trace
    path = write(tmp_path / "e.txt.gz", b"\n# nothing\n", "gzip")
    with pytest.raises(ReplayError, match="has no events"):
        read_trace(str(path))


@pytest.mark.parametrize("text", [b"1\n" * 200000, b"0x1000 W\n" * 100000])
def test_text_chunks_are_bounded(tmp_path, text):
    from vswapfast.traces import CHUNK_EVENTS
    path = write(tmp_path / "t.txt", text)
    sizes = [len(c) for c in iter_chunks(path)]
    assert sum(sizes) == text.count(b"\n") and max(sizes) <= CHUNK_EVENTS
