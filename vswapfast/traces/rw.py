"""The ``rw`` format: ``ADDRESS R|W`` per line.

ADDRESS is a byte address, decimal or 0x hex; the page is ADDRESS // 4096.
``R`` or ``W`` (either case) says whether the access reads or writes.
``#`` starts a comment, and blank lines are skipped.
"""

import numpy as np

from vswapfast.traces.pages import PAGE_SHIFT, pieces
from vswapfast.traces.source import read_lines
from vswapfast.traces.text import bad_line, content, content_lines, parse_int

NAME = "rw"
HELP = "'ADDRESS R|W' per line; the page is ADDRESS // 4096"
EXPECTED = "'ADDRESS R|W' (ADDRESS decimal or 0x hex)"


def sniff(head, text):
    """Whether ``head`` starts as this format: its first line holds two
    tokens (so that a bad line further on is reported as a bad rw line)."""
    lines = content_lines(head, 1) if text else []
    return bool(lines) and len(lines[0].split()) == 2


def chunks(source, options):
    """Yield a Chunk of pages and writes per block of lines of ``source``."""
    for first, lines in read_lines(source):
        addresses = []
        writes = []
        add_address = addresses.append
        add_write = writes.append
        for number, line in enumerate(lines, first):
            line = content(line)
            if not line:
                continue
            parts = line.split()
            try:
                if len(parts) != 2:
                    raise ValueError
                op = parts[1].upper()
                if op not in (b"R", b"W"):
                    raise ValueError
                add_address(parse_int(parts[0]))
                add_write(op == b"W")
            except ValueError:
                raise bad_line(source, number, EXPECTED, line) from None
        if addresses:
            pages = np.array(addresses, dtype=np.uint64) >> np.uint64(PAGE_SHIFT)
            yield from pieces(pages, np.array(writes, dtype=bool))
