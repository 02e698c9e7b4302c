"""The read-only view of a zswap pool entry, shared by both cores."""

from typing import NamedTuple


class ZswapEntryView(NamedTuple):
    """What ``VSwap.zswap_entry_load`` (or ``_erase``/``_store``) returns for
    an entry that a ``Zswap`` pool put in a descriptor.

    The pool owns the entry itself; this is a snapshot of it.  An entry
    displaced through the VSwap API is freed by its pool.
    """

    swpentry: int       #: the swap entry it was stored for
    length: int         #: compressed length in bytes; 0 for a zero-filled page
    referenced: bool    #: second-chance bit of the LRU
    zero: bool          #: a zero-filled page, held without pool memory
    incompressible: bool  #: stored raw because LZ4 did not make it smaller
