"""Trace formats for ``vswapfast replay``: one module per format.

=================  ==========================================================
``keys``           one integer key per line (:mod:`.keys`)
``rw``             ``ADDRESS R|W`` per line (:mod:`.rw`)
``u32be``          big-endian unsigned 32-bit keys (:mod:`.u32be`)
``oracleGeneral``  libCacheSim's 24-byte binary records (:mod:`.oracle_general`)
``csv``            CSV with a column mapping, ``--csv SPEC`` (:mod:`.csv`)
``msr``            MSR Cambridge block traces (:mod:`.msr`)
``cloudphysics``   CloudPhysics VSCSI CSV block traces (:mod:`.cloudphysics`)
=================  ==========================================================

Any of them may be xz-, gzip- or zstd-compressed; the compression is told
by the file's magic bytes (:mod:`.source`).  ``auto`` tells the format from
the first 64 KiB of decompressed data: ``cloudphysics`` and ``msr`` by their
lines' structure, ``rw`` and ``keys`` by their tokens, ``oracleGeneral`` by
its next-access fields, and any other binary data is ``u32be``.  A generic
CSV cannot be told apart from others: it needs ``--csv SPEC``.

Block requests (a byte offset and a size: ``msr``, ``cloudphysics``, a
``csv`` with an ``offset`` column, ``oracleGeneral`` with a block size) are
split into the 4 KiB pages they touch, one event per page, in order
(:mod:`.pages`).

The chunk API
-------------
``TraceReader(path, fmt="auto", options=None, progress=None)`` opens the
trace and tells its format (``reader.format``); iterating over it (or over
``iter_chunks(path, ...)``) yields :class:`Chunk` objects in trace order: ``chunk.keys`` is a uint64 numpy
array of page keys, ``chunk.writes`` a bool array of the same length (or
None when the format has no writes).  A chunk holds at most about
``CHUNK_EVENTS`` events (a single request larger than that is a chunk of its
own); the reader holds one chunk and one block of the file at a time, plus,
for volume or object names, a table that grows with the distinct names.  So
memory is bounded by the distinct pages, not by the trace's length.  The
file is closed at the end of the iteration, or by ``reader.close()``.  ``progress``, if
given, is called with the fraction of the file (on disk) read so far.

:func:`read_all` concatenates the chunks into one array (for the offline
replay; the streaming one, ``vswapfast.stream``, takes the chunks as they
come).  A bad file or record raises
:class:`TraceError` (a ``ReplayError``) with a one-line message naming the
file, the line or record, and what was expected.
"""

import numpy as np

from vswapfast.traces import cloudphysics, csv, keys, msr, oracle_general, rw, u32be
from vswapfast.traces.csv import CsvSpec
from vswapfast.traces.pages import CHUNK_EVENTS, PAGE_SIZE, Chunk
from vswapfast.traces.source import (
    SNIFF, TraceError, TraceOptions, TraceSource, compression_of)
from vswapfast.traces.text import content_lines, looks_like_text

#: Every format by name.
READERS = {m.NAME: m for m in (keys, rw, u32be, oracle_general, csv, msr, cloudphysics)}
#: The names ``--format`` takes (``vswapfast.replay.FORMATS`` repeats them).
FORMATS = ("auto",) + tuple(READERS)

__all__ = ["CHUNK_EVENTS", "Chunk", "CsvSpec", "FORMATS", "PAGE_SIZE", "READERS",
           "TraceError", "TraceOptions", "TraceReader", "TraceSource", "compression_of", "detect",
           "iter_chunks", "read_all"]


def detect(head, whole=False):
    """The format of a trace whose decompressed data starts with ``head``
    (``whole``: ``head`` is all of it).  A TraceError for a CSV that no
    preset fits, which needs ``--csv``."""
    text = looks_like_text(head)
    for name in ("cloudphysics", "msr"):
        if READERS[name].sniff(head, text):
            return name
    if text:
        first = content_lines(head, 1)
        if first and b"," in first[0]:
            raise TraceError("the trace looks like CSV but fits no preset (msr, "
                             "cloudphysics): give its columns with --csv SPEC")
        return "rw" if rw.sniff(head, text) else "keys"
    if oracle_general.sniff(head, text, whole=whole):
        return "oracleGeneral"
    return "u32be"


def _check(fmt, options):
    if fmt not in FORMATS:
        raise TraceError("unknown trace format %r (choose from %s)"
                         % (fmt, ", ".join(FORMATS)))
    if options.csv is not None and fmt not in ("auto", "csv"):
        raise TraceError("--csv gives the columns of a csv trace, not of --format %s" % fmt)
    if options.block_size is not None and fmt not in ("auto", "oracleGeneral"):
        raise TraceError("--block-size is for oracleGeneral traces, not --format %s" % fmt)


def _has_objects(fmt, options):
    """Whether the records of ``fmt`` are objects with sizes."""
    if fmt == "oracleGeneral":
        return True
    spec = options.csv
    return fmt == "csv" and spec is not None and not spec.block and "size" in spec.columns


def open_trace(path, fmt="auto", options=None):
    """(TraceSource, format name): ``path`` opened, its format told.  The
    caller closes the source."""
    options = options if options is not None else TraceOptions()
    _check(fmt, options)
    source = TraceSource(path)
    try:
        if fmt == "auto":
            if options.csv is not None:
                fmt = "csv"
            else:
                head = source.peek()
                try:
                    fmt = detect(head, whole=len(head) < SNIFF)
                except TraceError as exc:
                    raise TraceError("trace %s: %s" % (source.path, exc)) from None
        if options.block_size is not None and fmt != "oracleGeneral":
            raise TraceError("--block-size is for oracleGeneral traces, and %s is %s"
                             % (source.path, fmt))
        if options.split and not _has_objects(fmt, options):
            raise TraceError("--split is for objects with sizes (oracleGeneral, or csv with "
                             "key= and size= but no offset=), and %s is %s"
                             % (source.path, fmt))
    except BaseException:
        source.close()
        raise
    return source, fmt


class TraceReader:
    """A trace opened for reading in chunks: iterate over it for its
    :class:`Chunk` objects, in order (once).  ``format`` is the format's
    name (told from the contents for ``auto``), ``name`` the file's, and
    ``source`` the :class:`TraceSource`.  Close it, or use it as a context
    manager; iterating to the end closes it too."""

    def __init__(self, path, fmt="auto", options=None, progress=None):
        self.options = options if options is not None else TraceOptions()
        self.source, self.format = open_trace(path, fmt, self.options)
        self.name = self.source.name
        self.progress = progress

    def __iter__(self):
        source = self.source
        try:
            for chunk in READERS[self.format].chunks(source, self.options):
                yield chunk
                if self.progress is not None and source.size:
                    self.progress(min(1.0, source.consumed() / source.size))
        finally:
            source.close()

    def close(self):
        self.source.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return "<TraceReader %s [%s]>" % (self.source.describe(), self.format)


def iter_chunks(path, fmt="auto", options=None, progress=None):
    """Yield the Chunks of the trace at ``path`` (see the module's
    docstring); the file is closed when the generator ends or is closed."""
    with TraceReader(path, fmt, options, progress) as reader:
        yield from reader


def read_all(path, fmt="auto", options=None, limit=None, progress=None):
    """(keys, writes, format): every page access of the trace at ``path``
    as one uint64 array, its writes (a bool array, or None when the format
    has no writes), and the format's name.  ``limit`` stops after that many
    events (the rest of the file is not read)."""
    keys_parts = []
    write_parts = []
    count = 0
    with TraceReader(path, fmt, options, progress) as reader:
        for chunk in reader:
            k, w = chunk.keys, chunk.writes
            if limit is not None and count + len(k) > limit:
                k = k[:limit - count]
                w = None if w is None else w[:limit - count]
            keys_parts.append(k)
            write_parts.append(w)
            count += len(k)
            if limit is not None and count >= limit:
                break
    keys_all = np.concatenate(keys_parts) if keys_parts else np.zeros(0, dtype=np.uint64)
    writes = None
    if any(w is not None for w in write_parts):
        writes = np.concatenate([np.zeros(len(k), dtype=bool) if w is None else w
                                 for k, w in zip(keys_parts, write_parts)])
    return keys_all, writes, reader.format
