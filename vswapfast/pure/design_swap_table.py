"""The ``swap-table`` design, pure-Python twin of
``vswapfast._design_swap_table``.

The swap table after phases III-IV: see the compiled module's header for
the kernel sources followed and the departures, and
``vswapfast.pure.swap_table_design`` for the shared implementation.  The
twin counts the compiled core's structures at its sizes: 48-byte ``struct
swap_cluster_info`` per 512 slots, per cluster in use a 4096-byte swap
table and a 1024-byte memcg table, a 2048-byte extend_table while a count
of the cluster is 15 or more, a 16-byte ``struct xarray`` per 64 MiB for
zswap and 576 bytes per xarray node.

Lock ordering: device lock -> ci->lock -> xa_lock -> a free list's lock.
"""

from vswapfast.pure.swap_table_design import BACKINGS, SwapTableBase

__all__ = ["SwapTableDesign", "BACKINGS"]


class SwapTableDesign(SwapTableBase):
    """The swap table after phases III-IV: counts (4 bits in the word, an
    extend_table past 15), cgroup ids (a per-cluster memcg table) and the
    zero bit folded into per-cluster tables; lock-free reads, writes under
    the cluster lock; zswap entries in per-64 MiB xarrays.  See
    docs/designs.md."""

    name = "swap-table"
    phase = 4
