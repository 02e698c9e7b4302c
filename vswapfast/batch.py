"""Status codes of the batch operations, shared by both cores.

Every batch call takes an array of swap entries (any buffer of integers:
``array('Q')``, a numpy integer array, a memoryview) and returns an
``array('b')`` with one status per entry, so that one bad entry is reported
where it is without stopping or undoing the rest.
"""

import warnings

#: Done: the entry held what the operation worked on.
BATCH_OK = 0
#: A valid entry that held nothing (a load or erase found no zswap entry).
BATCH_EMPTY = 1
#: The entry held a zswap entry that is not a handle (a Python object or a
#: pool entry); a store displaced it, a load reports it and leaves it.
BATCH_FOREIGN = 2
#: The zswap pool refused the page (limit, poor compression, no memory).
BATCH_REJECTED = 3
#: No allocated descriptor (0, negative, beyond the map, free, or a range
#: that crosses a cluster).
BATCH_INVALID = -1
#: A handle outside [1, 2**62).
BATCH_BAD_HANDLE = -2
#: The compressed data did not decompress to a page (decompress_fail).
BATCH_CORRUPT = -3

#: Handles that batch operations store are ints in [1, HANDLE_LIMIT).
HANDLE_LIMIT = 1 << 62

#: The zswap index designs a pool can use.
INDEX_DESIGNS = ("vswap", "rbtree")
#: Former names of index designs: name -> the design's name now.
INDEX_ALIASES = {"tree": "rbtree"}


def index_alias(design, name):
    """The name now of index design ``design`` (a str): a former name
    (``INDEX_ALIASES``) warns with a DeprecationWarning and gives the new
    one; any other str is returned as it is, for the caller to check."""
    new = INDEX_ALIASES.get(design)
    if new is None:
        return design
    warnings.warn("%s %r is deprecated: it is now %r" % (name, design, new),
                  DeprecationWarning, stacklevel=3)
    return new
