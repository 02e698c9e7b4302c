"""libCacheSim's ``oracleGeneral`` binary traces.

The format of the public trace collections libCacheSim publishes (plain,
or zstd-compressed as ``.oracleGeneral.zst``).  Each request is a packed,
little-endian record of 24 bytes, as libCacheSim's reader
``oracleGeneralBin_read_one_req`` in
``libCacheSim/traceReader/customizedReader/oracle/oracleGeneralBin.h``
reads it (``item_size = 24``):

    offset  0  u32  clock_time          (seconds)
    offset  4  u64  obj_id
    offset 12  u32  obj_size            (bytes)
    offset 16  i64  next_access_vtime   (-1 or INT64_MAX: never again)

The key of a record is its object id: one object, one page.  With
``split``, an object is the 4 KiB pages its size covers (an object of size
0 still one page).  With ``block_size``, object ids are block numbers (e.g.
512-byte sectors of a block trace converted by libCacheSim) and sizes are
request lengths: each record is the block request at ``obj_id *
block_size`` and touches the pages it covers (none for size 0, which
libCacheSim too can skip, ``ignore_size_zero_req``).  Timestamps and next
access times are not used by the replay; next access times tell the format
apart from other binary data.
"""

import numpy as np

from vswapfast.traces.pages import (
    CHUNK_EVENTS, MAX_REQUEST, Chunk, Ordinals, expand, object_pages, page_counts)
from vswapfast.traces.source import TraceError, read_records

NAME = "oracleGeneral"
HELP = ("libCacheSim's binary records (u32 time, u64 object id, u32 size, i64 next "
        "access; little-endian, 24 bytes), plain or zstd-compressed; an object is a page "
        "(see --split and --block-size)")
RECORD = np.dtype([("time", "<u4"), ("obj_id", "<u8"), ("size", "<u4"),
                   ("next", "<i8")])
assert RECORD.itemsize == 24
INT64_MAX = (1 << 63) - 1
#: Next access times beyond this are taken for something else than a
#: request count (no trace has 2**48 requests).
MAX_VTIME = 1 << 48


def sniff(head, text, whole=False):
    """Whether ``head`` holds oracleGeneral records: at least two, each
    with a next access time that is -1, INT64_MAX or a plausible request
    count.  ``whole``: ``head`` is the whole file, which must then be whole
    records."""
    if text or len(head) < 2 * RECORD.itemsize:
        return False
    if whole and len(head) % RECORD.itemsize:
        return False
    records = np.frombuffer(head, dtype=RECORD, count=len(head) // RECORD.itemsize)
    nxt = records["next"]
    plausible = (nxt == -1) | (nxt == INT64_MAX) | ((nxt > 0) & (nxt < MAX_VTIME))
    return bool(plausible.all())


def chunks(source, options):
    """Yield Chunks of the pages of ``source``'s records, in order."""
    ordinals = Ordinals()
    for first, data in read_records(source, RECORD.itemsize, CHUNK_EVENTS):
        records = np.frombuffer(data, dtype=RECORD)
        if options.block_size is not None:
            yield from _block_requests(source, first, records, options.block_size)
        elif options.split:
            yield from object_pages(ordinals, records["obj_id"], records["size"])
        else:
            yield Chunk(records["obj_id"].astype(np.uint64))


def _block_requests(source, first, records, block_size):
    ids = records["obj_id"]
    limit = ((1 << 64) - MAX_REQUEST) // block_size
    over = np.flatnonzero(ids >= np.uint64(limit))
    if len(over):
        i = int(over[0])
        raise TraceError("%s: record %d: expected a block number below %d (blocks of %d "
                         "bytes), got %d" % (source.name, first + i, limit, block_size,
                                             int(ids[i])))
    offsets = ids * np.uint64(block_size)
    start, counts = page_counts(offsets, records["size"].astype(np.uint64))
    return expand(start, counts)
