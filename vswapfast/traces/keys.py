"""The ``keys`` format: one integer key per line.

A key is decimal or 0x hex, below 2**64; ``#`` starts a comment, and blank
lines are skipped.  Every key is one page.  No writes.
"""

import numpy as np

from vswapfast.traces.pages import pieces
from vswapfast.traces.source import read_lines
from vswapfast.traces.text import bad_line, content, content_lines, parse_int

NAME = "keys"
HELP = "one integer key per line (decimal or 0x hex; '#' comments)"
EXPECTED = "one integer key (decimal or 0x hex)"


def sniff(head, text):
    """Whether ``head`` (the start of the decompressed file) is this format:
    its first line holds one token."""
    lines = content_lines(head, 1) if text else []
    return bool(lines) and len(lines[0].split()) == 1


def chunks(source, options):
    """Yield a Chunk of keys per block of lines of ``source``."""
    for first, lines in read_lines(source):
        try:
            # The common case: every line is one decimal key.
            keys = np.array(list(map(int, lines)), dtype=np.uint64)
        except (ValueError, OverflowError):
            keys = _parse_slowly(source, first, lines)
        yield from pieces(keys)


def _parse_slowly(source, first, lines):
    values = []
    for number, line in enumerate(lines, first):
        line = content(line)
        if not line:
            continue
        parts = line.split()
        try:
            if len(parts) != 1:
                raise ValueError
            values.append(parse_int(parts[0]))
        except ValueError:
            raise bad_line(source, number, EXPECTED, line) from None
    return np.array(values, dtype=np.uint64)
