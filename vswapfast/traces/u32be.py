"""The ``u32be`` format: a stream of big-endian unsigned 32-bit keys.

No header and no separators; every 4 bytes are one key, one page.  This is
what a binary trace is taken to be when it is no other binary format.
"""

import numpy as np

from vswapfast.traces.pages import CHUNK_EVENTS, Chunk
from vswapfast.traces.source import read_records

NAME = "u32be"
HELP = "a stream of big-endian unsigned 32-bit keys, no header"
RECORD = 4


def sniff(head, text):
    return not text


def chunks(source, options):
    """Yield a Chunk of keys per ``CHUNK_EVENTS`` records of ``source``."""
    for _first, data in read_records(source, RECORD, CHUNK_EVENTS):
        yield Chunk(np.frombuffer(data, dtype=">u4").astype(np.uint64))
