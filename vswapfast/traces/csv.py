"""CSV traces with a column mapping (``--csv SPEC``).

SPEC is a comma-separated list of ``FIELD=COLUMN`` items and flags:

``key=COL``
    without ``offset``: the object id, a non-negative integer (decimal or
    0x hex); one object is one page (with ``split`` and ``size``: the
    pages its size covers).  With ``offset``: the volume (disk, LUN,
    host...) the request goes to, any text; ``key=2+3`` joins columns.
    Pages of different volumes are different pages.
``offset=COL``
    the request's start, in bytes (or in units of ``unit`` bytes): the
    record is a block request, split into the 4 KiB pages it touches.
``size=COL``
    the request's (or object's) length in bytes.  Without it a block
    request touches the one page holding its offset.
``op=COL``
    read or write: ``R``, ``Read``, ``W``, ``Write`` (any case); with
    ``ops=scsi``, a SCSI opcode in hex.  Without it every access reads.
``unit=BYTES``
    bytes per unit of ``offset`` (default 1; 512 for sector numbers).
``skip-header``
    the first line is a header, not a record.
``delimiter=NAME``
    ``comma`` (default), ``semicolon``, ``tab``, ``space`` (runs of
    blanks) or ``pipe``.
``ops=scsi``
    the ``op`` column holds SCSI opcodes (see ``cloudphysics``).
``split``
    objects with a ``size`` are split into pages (as ``--split``).

A column is its 1-based number, or its name in the header line (matched
without regard to case or surrounding quotes); naming a column implies
``skip-header``.  Columns not named are ignored (timestamps, response
times).  Blank lines are skipped.  A record with a missing or malformed
field stops the read with the file, the line and what was expected.
"""

from operator import itemgetter, methodcaller

import numpy as np

from vswapfast.traces.pages import (
    MAX_REQUEST, PAGE_SHIFT, VOLUME_SHIFT, Ordinals, expand, object_pages, page_counts,
    pieces, volume_keys)
from vswapfast.traces.source import TraceError, read_lines, show
from vswapfast.traces.text import parse_int

NAME = "csv"
HELP = "CSV with a column mapping given by --csv SPEC"

DELIMITERS = {"comma": b",", "semicolon": b";", "tab": b"\t", "space": None, "pipe": b"|"}
FIELDS = ("key", "offset", "size", "op")
#: Read and write words of the ``op`` column.
WORD_OPS = {b"r": False, b"read": False, b"w": True, b"write": True}
#: SCSI read and write opcodes, as the kernel names them in
#: include/scsi/scsi_proto.h (READ_6, READ_10, READ_12, READ_16 and the
#: WRITE_ ones).
SCSI_OPS = {0x08: False, 0x28: False, 0xa8: False, 0x88: False,
            0x0a: True, 0x2a: True, 0xaa: True, 0x8a: True}
#: Offsets (in bytes) stop below this: with a request of up to
#: MAX_REQUEST bytes, every page number stays below 2**VOLUME_SHIFT.
MAX_OFFSET = 1 << (VOLUME_SHIFT + PAGE_SHIFT - 1)
#: The same, keyed by their usual spellings (looked up without any
#: normalising first).
_WORD_TOKENS = {spelling: write for word, write in WORD_OPS.items()
                for spelling in (word, word.upper(), word.capitalize())}
_SCSI_TOKENS = {spelling: write for code, write in SCSI_OPS.items()
                for spelling in (b"%02x" % code, b"%02X" % code, b"0x%02x" % code)}
SCSI_EXPECTED = "a SCSI read or write opcode in hex (08, 28, a8, 88 or 0a, 2a, aa, 8a)"


class CsvSpec:
    """A parsed ``--csv`` SPEC (see the module's docstring).

    ``columns`` maps ``key``/``offset``/``size``/``op`` to a tuple of
    columns, each a 0-based index or a header name (resolved when the
    header is read).  ``header`` is True, False or ``"auto"`` (presets: the
    first line is a header when its ``offset`` field is not a number).
    """

    def __init__(self, columns, header=False, delimiter="comma", unit=1, ops="words",
                 split=False, text=None):
        self.columns = dict(columns)
        self.header = header
        self.delimiter = delimiter
        self.unit = unit
        self.ops = ops
        self.split = split
        self.text = text
        self.check()

    @classmethod
    def parse(cls, text):
        """A CsvSpec from SPEC text; a TraceError says what is wrong."""
        columns = {}
        header = False
        options = {}
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            name, eq, value = item.partition("=")
            name = name.strip().lower()
            value = value.strip()
            if not eq:
                if name in ("skip-header", "header"):
                    header = True
                elif name == "split":
                    options["split"] = True
                else:
                    raise TraceError("--csv: unknown flag %r (expected key=, offset=, size=, "
                                     "op=, unit=, delimiter=, ops=, skip-header or split)"
                                     % item)
                continue
            if name in FIELDS:
                if name in columns:
                    raise TraceError("--csv: %s is given twice" % name)
                columns[name] = tuple(_column(name, c) for c in value.split("+"))
                if name != "key" and len(columns[name]) > 1:
                    raise TraceError("--csv: only key may join columns, not %s" % name)
            elif name == "unit":
                try:
                    options["unit"] = int(value)
                except ValueError:
                    raise TraceError("--csv: unit must be a number of bytes, not %r"
                                     % value) from None
            elif name == "delimiter":
                options["delimiter"] = value.lower()
            elif name == "ops":
                options["ops"] = value.lower()
            else:
                raise TraceError("--csv: unknown field %r (expected key, offset, size, op, "
                                 "unit, delimiter or ops)" % name)
        if any(isinstance(c, str) for cols in columns.values() for c in cols):
            header = True
        return cls(columns, header=header, text=text, **options)

    def check(self):
        if "key" not in self.columns and "offset" not in self.columns:
            raise TraceError("--csv: a key or an offset column is needed (e.g. "
                             "'key=1' or 'offset=5,size=6')")
        if self.delimiter not in DELIMITERS:
            raise TraceError("--csv: delimiter must be one of %s, not %r"
                             % (", ".join(DELIMITERS), self.delimiter))
        if self.ops not in ("words", "scsi"):
            raise TraceError("--csv: ops must be 'scsi' (the default reads R/Read/W/Write), "
                             "not %r" % self.ops)
        if self.unit < 1:
            raise TraceError("--csv: unit must be at least 1 byte, not %d" % self.unit)
        if self.split and ("offset" in self.columns or "size" not in self.columns):
            raise TraceError("--csv: split is for objects with sizes: key= and size=, "
                             "without offset=")
        if self.unit != 1 and "offset" not in self.columns:
            raise TraceError("--csv: unit is the unit of the offset column, which is not given")

    @property
    def block(self):
        """Whether records are block requests (an ``offset`` column)."""
        return "offset" in self.columns

    def __repr__(self):
        return "CsvSpec(%r)" % (self.text if self.text is not None else self.columns)


def _column(field, text):
    if text.isdigit():
        number = int(text)
        if number < 1:
            raise TraceError("--csv: columns are numbered from 1, not %s=%s" % (field, text))
        return number - 1
    if not text:
        raise TraceError("--csv: %s= needs a column number or a header name" % field)
    return text.strip().strip('"').lower()


class _Columns:
    """The spec's columns as 0-based indices, and their names for messages."""

    def __init__(self, spec, header_fields):
        self.index = {}
        self.label = {}
        names = None
        if header_fields is not None:
            names = [f.strip().strip(b'"').decode("ascii", "replace").lower()
                     for f in header_fields]
        for field, cols in spec.columns.items():
            resolved = []
            for c in cols:
                if isinstance(c, str):
                    if names is None or c not in names:
                        raise TraceError("--csv: no column named %r in the header%s" % (
                            c, "" if names is None else " (%s)" % ", ".join(names)))
                    c = names.index(c)
                resolved.append(c)
            self.index[field] = tuple(resolved)
            self.label[field] = "+".join(
                "%d (%s)" % (c + 1, names[c]) if names and c < len(names) else str(c + 1)
                for c in resolved)
        self.width = 1 + max(c for cols in self.index.values() for c in cols)


def chunks(source, options, spec=None):
    """Yield Chunks of the pages of ``source``'s records, read as ``spec``
    (default: ``options.csv``) says."""
    spec = spec if spec is not None else options.csv
    if spec is None:
        raise TraceError("trace %s: --format csv needs --csv SPEC (e.g. --csv "
                         "offset=5,size=6,op=4)" % source.name)
    split = spec.split or options.split
    delimiter = DELIMITERS[spec.delimiter]
    columns = None
    volumes = Ordinals()
    objects = Ordinals()
    for first, lines in read_lines(source):
        rows = list(map(methodcaller("split", delimiter), lines))
        # Line numbers of the rows: a range, until blank lines are dropped.
        numbers = range(first, first + len(lines))
        width = columns.width if columns is not None else 1
        if rows and min(map(len, rows)) < width or not all(map(bytes.strip, lines)):
            numbers, rows = _drop_blank(numbers, lines, rows)
        if columns is None:
            if not rows:
                continue
            columns, numbers, rows = _start(spec, numbers, rows)
            if not rows:
                continue
        yield from _records(source, spec, columns, numbers, rows, split, volumes, objects)


def _drop_blank(numbers, lines, rows):
    keep = [i for i, line in enumerate(lines) if line.strip()]
    return [numbers[i] for i in keep], [rows[i] for i in keep]


def _start(spec, numbers, rows):
    """The resolved columns, and the rows (and their numbers) left once the
    header is off."""
    header = spec.header
    if header == "auto":
        probe = _Columns(spec, None)
        col = probe.index.get("offset", probe.index.get("key"))[0]
        try:
            parse_int(rows[0][col].strip())
            header = False
        except (IndexError, ValueError):
            header = True
    if header:
        return _Columns(spec, rows[0]), numbers[1:], rows[1:]
    return _Columns(spec, None), numbers, rows


def _records(source, spec, columns, numbers, rows, split, volumes, objects):
    if min(map(len, rows)) < columns.width:
        i = next(i for i, fields in enumerate(rows) if len(fields) < columns.width)
        raise TraceError("%s:%d: expected at least %d %s-separated fields, got %d: %s" % (
            source.name, numbers[i], columns.width, spec.delimiter, len(rows[i]),
            show(b",".join(rows[i]))))
    writes = None
    if "op" in columns.index:
        writes = _ops(source, spec, columns, numbers, rows)
    sizes = None
    if "size" in columns.index:
        sizes = _integers(source, columns, numbers, rows, "size", "a size in bytes",
                          MAX_REQUEST)
    if spec.block:
        offsets = _integers(source, columns, numbers, rows, "offset",
                            "a byte offset" if spec.unit == 1 else
                            "an offset in units of %d bytes" % spec.unit,
                            MAX_OFFSET // spec.unit)
        offsets *= np.uint64(spec.unit)
        if sizes is None:
            sizes = np.ones(len(rows), dtype=np.uint64)
        first, counts = page_counts(offsets, sizes)
        if "key" in columns.index:
            names = list(map(itemgetter(*columns.index["key"]), rows))
            first = volume_keys(volumes.of(names), first)
        yield from expand(first, counts, writes)
        return
    keys = _integers(source, columns, numbers, rows, "key",
                     "an integer key (decimal or 0x hex)")
    if split and sizes is not None:
        yield from object_pages(objects, keys, sizes, writes)
    else:
        yield from pieces(keys, writes)


def _integers(source, columns, numbers, rows, field, expected, limit=1 << 64):
    tokens = list(map(itemgetter(columns.index[field][0]), rows))
    try:
        values = np.array(list(map(int, tokens)), dtype=np.uint64)
    except (ValueError, OverflowError):
        values = None
    if values is not None and (limit >= 1 << 64 or not (values >= np.uint64(limit)).any()):
        return values
    out = []
    for number, token in zip(numbers, tokens):
        try:
            value = parse_int(token.strip())
            if value >= limit:
                raise ValueError
        except ValueError:
            raise TraceError("%s:%d: expected %s%s in column %s, got %s" % (
                source.name, number, expected,
                " below %s" % _number(limit) if limit < 1 << 64 else "",
                columns.label[field], show(token.strip()))) from None
        out.append(value)
    return np.array(out, dtype=np.uint64)


def _number(n):
    """``n`` as a power of two when it is one (2**32), else in digits."""
    if n & (n - 1) == 0:
        return "2**%d" % (n.bit_length() - 1)
    return str(n)


def _ops(source, spec, columns, numbers, rows):
    tokens = list(map(itemgetter(columns.index["op"][0]), rows))
    table = _SCSI_TOKENS if spec.ops == "scsi" else _WORD_TOKENS
    try:
        # Tokens as they are usually spelled are looked up as they are.
        return np.array(list(map(table.__getitem__, tokens)), dtype=bool)
    except KeyError:
        pass
    if spec.ops == "scsi":
        expected, lookup, table = SCSI_EXPECTED, _scsi_opcode, SCSI_OPS
    else:
        expected, lookup, table = "R, Read, W or Write", _word, WORD_OPS
    out = []
    for number, token in zip(numbers, tokens):
        token = token.strip().lower()
        try:
            out.append(table[lookup(token)])
        except (KeyError, ValueError):
            raise TraceError("%s:%d: expected %s in column %s, got %s" % (
                source.name, number, expected, columns.label["op"], show(token))) from None
    return np.array(out, dtype=bool)


def _word(token):
    return token.strip(b'"')


def _scsi_opcode(token):
    if token[:2] == b"0x":
        token = token[2:]
    return int(token, 16)
