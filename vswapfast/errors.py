"""Exceptions shared by the compiled core and the pure-Python twin.

Both cores raise exactly these types with the same messages, so code written
against one core handles errors from the other unchanged.
"""

__all__ = [
    "VSwapError",
    "InvalidEntryError",
    "SwapFullError",
    "SwapCacheError",
    "SwapFileFullError",
    "NoPageError",
    "ZswapDecompressError",
    "CompressorLibraryError",
    "bad_entry_message",
]


class VSwapError(Exception):
    """Base class of every error vswapfast raises on purpose."""


class InvalidEntryError(VSwapError, LookupError):
    """A swap entry has no allocated descriptor.

    Raised for 0, negative values, values beyond the cluster map, entries of
    clusters that do not exist, and entries that were never allocated or have
    been freed.  The operation changed nothing.
    """


class SwapFullError(VSwapError, MemoryError):
    """No cluster id is left for a new cluster (``max_clusters`` reached)."""


class SwapCacheError(VSwapError):
    """The swap cache of an entry is not in the state the operation needs.

    For example adding a folio where one is already cached (the kernel's
    ``-EEXIST``), or deleting/replacing a folio that is not the one cached.
    """


class SwapFileFullError(VSwapError):
    """The swap file has no free slot left."""


class NoPageError(VSwapError, LookupError):
    """An allocated swap entry holds no page: no folio, zswap entry or slot."""


class ZswapDecompressError(VSwapError):
    """A compressed page could not be decompressed to a whole page.

    The pool data is corrupt.  The zswap entry is left in place and the
    pool's ``decompress_fail`` counter is incremented.
    """


class CompressorLibraryError(VSwapError, OSError):
    """The shared library a pool's compressor needs could not be loaded.

    Raised when a pool with that compressor is created (never at import);
    the message names the library and the Debian package that provides it.
    """


def bad_entry_message(entry, cluster_shift, max_clusters, why):
    """Format the one message both cores use for an unusable swap entry.

    ``why`` is one of ``"zero"``, ``"negative"``, ``"range"``, ``"free"``.
    """
    if why == "zero":
        return "swap entry 0 is never allocated (0 means 'no entry')"
    if why == "negative":
        return "swap entry %d is negative; entries are unsigned" % entry
    if why == "range":
        return ("swap entry %#x is beyond the cluster map (cluster %d, "
                "max_clusters is %d)" % (entry, entry >> cluster_shift, max_clusters))
    return ("swap entry %#x has no allocated descriptor (cluster %d, index %d)"
            % (entry, entry >> cluster_shift, entry & ((1 << cluster_shift) - 1)))
