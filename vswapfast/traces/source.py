"""Opening a trace file: compression found by magic bytes, read as a stream.

A trace may be plain, or xz-, gzip- or zstd-compressed; which one is told
by the first bytes of the file, never by its name.  The file is read in
blocks, so a compressed trace is never decompressed whole in memory.
"""

import gzip
import lzma
import os
import zlib

from vswapfast.replay import ReplayError

XZ_MAGIC = b"\xfd7zXZ\x00"
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

#: Bytes read from the file at a time.
BLOCK = 1 << 20
#: Bytes of text parsed at a time: a block's lines as Python objects take
#: some 20 times its size.
TEXT_BLOCK = 1 << 18
#: Bytes of decompressed data looked at to tell the format.
SNIFF = 1 << 16


class TraceError(ReplayError):
    """A trace that cannot be read: missing, corrupt or malformed.  The
    message is one line naming the file (and, for a bad record, the record
    and what was expected)."""


def compression_of(head):
    """The compression whose magic ``head`` starts with: ``xz``, ``gzip``,
    ``zstd`` or None for a plain file."""
    if head.startswith(XZ_MAGIC):
        return "xz"
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return None


class _ZstdStream:
    """A readable stream of zstd-compressed ``raw``, frame after frame.

    zstandard's own stream reader ends quietly at a frame cut short, which
    would lose the end of a truncated trace without a word; here a file
    that ends inside a frame is an error.  The file is fed in small blocks,
    so that what is decompressed at once stays small.
    """

    FEED = 1 << 16

    def __init__(self, raw, zstandard):
        self._raw = raw
        self._zstd = zstandard
        self._dctx = zstandard.ZstdDecompressor()
        self._obj = self._dctx.decompressobj()
        self._in_frame = False
        self._buffer = bytearray()
        self._done = False

    def _feed(self, data):
        while data:
            self._in_frame = True
            self._buffer += self._obj.decompress(data)
            if not self._obj.eof:
                return
            data = self._obj.unused_data
            self._obj = self._dctx.decompressobj()
            self._in_frame = False

    def read(self, n):
        while len(self._buffer) < n and not self._done:
            data = self._raw.read(self.FEED)
            if not data:
                self._done = True
                if self._in_frame:
                    raise self._zstd.ZstdError("the file ends inside a frame")
                break
            self._feed(data)
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out

    def close(self):
        self._buffer = bytearray()


def _zstd_reader(raw, path):
    try:
        import zstandard
    except ImportError:
        raise TraceError("trace %s is zstd-compressed and the zstandard package is not "
                         "installed (pip install zstandard)" % path) from None
    return _ZstdStream(raw, zstandard)


def _corruption_errors():
    errors = [lzma.LZMAError, EOFError, zlib.error, gzip.BadGzipFile]
    try:
        import zstandard
        errors.append(zstandard.ZstdError)
    except ImportError:
        pass
    return tuple(errors)


class TraceSource:
    """A trace file opened for streaming: ``read(n)`` returns up to ``n``
    decompressed bytes (fewer only at the end), ``peek()`` the first
    ``SNIFF`` decompressed bytes without consuming them.

    ``name`` is the file's base name (for messages), ``path`` its path,
    ``compression`` what it was compressed with (or None), ``size`` its size
    on disk and ``consumed()`` how many of those bytes have been read, for a
    progress bar.  Use it as a context manager; it owns the open file.
    """

    def __init__(self, path):
        self.path = str(path)
        self.name = os.path.basename(self.path) or self.path
        try:
            self._raw = open(self.path, "rb")
        except FileNotFoundError:
            raise TraceError("trace %s: no such file" % self.path) from None
        except IsADirectoryError:
            raise TraceError("trace %s: is a directory" % self.path) from None
        except OSError as exc:
            raise TraceError("trace %s: cannot read it (%s)"
                             % (self.path, exc.strerror or exc)) from None
        try:
            self.size = os.fstat(self._raw.fileno()).st_size
            self.compression = compression_of(self._raw.read(8))
            self._raw.seek(0)
            if self.compression == "xz":
                self._stream = lzma.LZMAFile(self._raw)
            elif self.compression == "gzip":
                self._stream = gzip.GzipFile(fileobj=self._raw)
            elif self.compression == "zstd":
                self._stream = _zstd_reader(self._raw, self.path)
            else:
                self._stream = self._raw
        except BaseException:
            self._raw.close()
            raise
        self._head = b""
        self._head_pos = 0
        self._started = False
        self._errors = _corruption_errors()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Close the file (and the decompressor over it)."""
        try:
            if self._stream is not self._raw:
                self._stream.close()
        finally:
            self._raw.close()

    def consumed(self):
        """Bytes of the file on disk read so far."""
        try:
            return self._raw.tell()
        except (OSError, ValueError):
            return 0

    def describe(self):
        """The file's name, and its compression if any."""
        return self.name if self.compression is None else "%s (%s)" % (self.name,
                                                                       self.compression)

    def _read_stream(self, n):
        out = []
        want = n
        try:
            while want > 0:
                block = self._stream.read(want)
                if not block:
                    break
                out.append(block)
                want -= len(block)
        except self._errors as exc:
            raise TraceError("trace %s: corrupt %s data (%s)"
                             % (self.path, self.compression, exc)) from None
        except OSError as exc:
            raise TraceError("trace %s: cannot read it (%s)"
                             % (self.path, exc.strerror or exc)) from None
        return b"".join(out)

    def peek(self):
        """The first ``SNIFF`` decompressed bytes (fewer in a short file),
        which later ``read`` calls still return."""
        if self._started:
            raise RuntimeError("peek() after read()")
        if len(self._head) < SNIFF:
            self._head += self._read_stream(SNIFF - len(self._head))
        return self._head

    def read(self, n=BLOCK):
        """Up to ``n`` decompressed bytes; ``b""`` at the end."""
        self._started = True
        if self._head_pos < len(self._head):
            part = self._head[self._head_pos:self._head_pos + n]
            self._head_pos += len(part)
            if len(part) == n:
                return part
            return part + self._read_stream(n - len(part))
        return self._read_stream(n)

    def __repr__(self):
        return "<TraceSource %s, %d bytes on disk>" % (self.describe(), self.size)


def read_lines(source, block=TEXT_BLOCK):
    """Yield ``(first line number, list of lines)`` over ``source``'s text,
    a block at a time: each list holds whole lines, without their ends."""
    rest = b""
    number = 1
    while True:
        data = source.read(block)
        if not data:
            break
        data = rest + data
        cut = data.rfind(b"\n")
        if cut < 0:
            rest = data
            continue
        lines = data[:cut].split(b"\n")
        rest = data[cut + 1:]
        yield number, lines
        number += len(lines)
    if rest:
        yield number, [rest]


def read_records(source, size, count):
    """Yield ``(first record number, bytes)`` over ``source`` in parts of
    ``count`` records of ``size`` bytes each.  A file that ends inside a
    record is a ``TraceError`` naming that record."""
    number = 1
    want = size * count
    while True:
        data = source.read(want)
        if not data:
            return
        whole = len(data) // size * size
        if whole < len(data):
            bad = number + whole // size
            raise TraceError("%s: record %d is cut short: expected %d bytes, the file "
                             "ends after %d" % (source.name, bad, size, len(data) - whole))
        yield number, data
        number += whole // size


def show(token, width=40):
    """``token`` (bytes) as a short quoted string for a message."""
    text = token.decode("ascii", "replace") if isinstance(token, bytes) else str(token)
    return repr(text if len(text) <= width else text[:width - 3] + "...")


class TraceOptions:
    """How records become pages, for the formats that leave a choice.

    ``split``: an object with a size (``oracleGeneral``, a CSV with ``key``
    and ``size``) is the 4 KiB pages its size covers, not one page.
    ``block_size``: ``oracleGeneral`` object ids are block numbers of this
    many bytes and sizes are request lengths: each record is a block request
    at ``obj_id * block_size``, split into the pages it touches.
    ``csv``: the column mapping of a ``csv`` trace (a ``CsvSpec``).
    """

    def __init__(self, split=False, block_size=None, csv=None):
        if block_size is not None and block_size < 1:
            raise TraceError("the block size must be at least 1 byte, not %d" % block_size)
        if split and block_size is not None:
            raise TraceError("objects are split into pages, or read as block requests: "
                             "not both")
        self.split = bool(split)
        self.block_size = block_size
        self.csv = csv

    def __repr__(self):
        return "TraceOptions(split=%r, block_size=%r, csv=%r)" % (
            self.split, self.block_size, self.csv)
