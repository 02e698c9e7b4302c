"""From records to page accesses: the chunks every reader yields, block
requests split into the 4 KiB pages they touch, and objects split into
pages.

A block request (a byte offset and a size) touches every 4 KiB page from
the one holding its first byte to the one holding its last; it becomes one
access per page, in address order, each a write if the request was one.
A request of 0 bytes touches no page.  This is the splitting libCacheSim
leaves to its users for block traces: its maintainers' answer to "Question
about handling block traces" (https://github.com/1a1a11a/libCacheSim/issues/99)
is to split requests into 4K blocks before or while reading.
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
#: Events per chunk a reader aims at (a chunk is half a MiB of keys).
CHUNK_EVENTS = 1 << 16
#: The largest request or object, in bytes: 4 GiB (1M pages).
MAX_REQUEST = 1 << 32
#: Bits of a page key left to the page number when a key also names a
#: volume or an object: volumes of up to 2**60 bytes, objects of up to
#: 2**PAGE_INDEX_BITS pages.
VOLUME_SHIFT = 48
PAGE_INDEX_BITS = 20


@dataclass
class Chunk:
    """Consecutive events of a trace: ``keys`` (uint64 page keys) and
    ``writes`` (bool, one per key; None when the format has no writes)."""
    keys: np.ndarray
    writes: Optional[np.ndarray] = None

    def __len__(self):
        return len(self.keys)

    def __repr__(self):
        return "<Chunk of %d events%s>" % (len(self.keys),
                                          "" if self.writes is None else ", with writes")


def pieces(keys, writes=None, limit=CHUNK_EVENTS):
    """Yield Chunks of at most ``limit`` events over ``keys`` and ``writes``."""
    for lo in range(0, len(keys), limit):
        yield Chunk(keys[lo:lo + limit], None if writes is None else writes[lo:lo + limit])


def page_counts(offsets, sizes):
    """How many 4 KiB pages each request (uint64 ``offsets``, ``sizes`` in
    bytes) touches; 0 for a request of 0 bytes."""
    first = offsets >> np.uint64(PAGE_SHIFT)
    end = offsets + sizes                      # one past the last byte
    last = (end - np.uint64(1)) >> np.uint64(PAGE_SHIFT)
    counts = (last - first + np.uint64(1)).astype(np.int64)
    counts[sizes == 0] = 0
    return first, counts


def expand(first, counts, writes=None, limit=CHUNK_EVENTS):
    """Yield Chunks of the pages ``first[i] .. first[i] + counts[i] - 1`` of
    every request ``i`` in order, cut between requests into chunks of about
    ``limit`` pages (a single request larger than that is a chunk of its
    own)."""
    n = len(first)
    ends = np.cumsum(counts)
    lo = 0
    while lo < n:
        base = int(ends[lo - 1]) if lo else 0
        hi = int(np.searchsorted(ends, base + limit, side="right"))
        hi = max(hi, lo + 1)
        c = counts[lo:hi]
        total = int(ends[hi - 1]) - base
        if total:
            starts = np.repeat(ends[lo:hi] - c - base, c)
            step = np.arange(total, dtype=np.int64) - starts
            keys = np.repeat(first[lo:hi], c) + step.astype(np.uint64)
            w = None if writes is None else np.repeat(writes[lo:hi], c)
            yield Chunk(keys, w)
        lo = hi


class Ordinals:
    """Dense numbers for the distinct values of a column (volume names,
    object ids), in order of first appearance.  Memory grows with the
    distinct values, not with the records.

    Integer values (numpy arrays) are looked up in sorted arrays, all in
    numpy: a large sorted run and a smaller one that new values are merged
    into, itself merged into the large one when it reaches a quarter of its
    size, so each value is re-sorted a few times at most.  Other values
    (names) go through a dict.  One instance numbers one kind of value.
    """

    def __init__(self):
        self.numbers = {}
        self.count = 0
        empty = np.zeros(0, dtype=np.uint64)
        self.runs = [(empty, np.zeros(0, dtype=np.int64)),
                     (empty, np.zeros(0, dtype=np.int64))]

    def __len__(self):
        return self.count

    def of(self, values):
        """The numbers of ``values`` (a list, or a 1-D uint64 array), as int64."""
        if not isinstance(values, np.ndarray):
            numbers = self.numbers
            out = np.array([numbers.setdefault(v, len(numbers)) for v in values],
                           dtype=np.int64)
            self.count = len(numbers)
            return out
        values = values.astype(np.uint64, copy=False)
        unique, first, inverse = np.unique(values, return_index=True, return_inverse=True)
        mapped = np.full(len(unique), -1, dtype=np.int64)
        for keys, nums in self.runs:
            if len(keys):
                at = np.minimum(np.searchsorted(keys, unique), len(keys) - 1)
                hit = keys[at] == unique
                mapped[hit] = nums[at[hit]]
        new = np.flatnonzero(mapped < 0)
        if len(new):
            # Numbered in the order they first appear.
            order = new[np.argsort(first[new], kind="stable")]
            mapped[order] = np.arange(self.count, self.count + len(order))
            self.count += len(order)
            self._add(unique[new], mapped[new])
        return mapped[inverse.reshape(-1)]

    def _add(self, keys, nums):
        (big_keys, big_nums), (small_keys, small_nums) = self.runs
        keys = np.concatenate([small_keys, keys])
        nums = np.concatenate([small_nums, nums])
        order = np.argsort(keys, kind="stable")
        keys, nums = keys[order], nums[order]
        if len(keys) * 4 >= len(big_keys):
            keys = np.concatenate([big_keys, keys])
            nums = np.concatenate([big_nums, nums])
            order = np.argsort(keys, kind="stable")
            self.runs = [(keys[order], nums[order]),
                         (np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64))]
        else:
            self.runs[1] = (keys, nums)


def volume_keys(volumes, pages):
    """Page keys ``volume << VOLUME_SHIFT | page`` (volume numbers from
    :class:`Ordinals`)."""
    return (volumes.astype(np.uint64) << np.uint64(VOLUME_SHIFT)) | pages


def object_pages(ordinals, objects, sizes, writes=None, limit=CHUNK_EVENTS):
    """Yield Chunks splitting each object into the 4 KiB pages its size
    covers (at least one): the key of page ``i`` of an object is its dense
    number (from ``ordinals``) ``<< PAGE_INDEX_BITS | i``."""
    numbers = ordinals.of(objects).astype(np.uint64)
    counts = np.maximum((sizes.astype(np.int64) + PAGE_SIZE - 1) >> PAGE_SHIFT, 1)
    first = numbers << np.uint64(PAGE_INDEX_BITS)
    return expand(first, counts, writes, limit)
