"""The ``swap-table-p1`` design, pure-Python twin of
``vswapfast._design_swap_table_p1``.

Swap table phase I (Linux 6.18): see the compiled module's header for the
kernel sources followed and the departures, and
``vswapfast.pure.swap_table_design`` for the shared implementation.  The
twin counts the compiled core's structures at its sizes: swap_map 1 B,
swap_cgroup 2 B (in 4-byte pairs) and the zeromap 1 bit per slot, 32-byte
``struct swap_cluster_info`` per 512 slots, a 4096-byte swap table per
cluster in use, a 16-byte ``struct xarray`` per 64 MiB for zswap and 576
bytes per xarray node.

Lock ordering: device lock -> ci->lock -> xa_lock -> a free list's lock.
"""

from vswapfast.pure.swap_table_design import BACKINGS, SwapTableBase

__all__ = ["SwapTableP1Design", "BACKINGS"]


class SwapTableP1Design(SwapTableBase):
    """Swap table phase I (6.18): the swap cache and shadows in per-cluster
    tables of 8-byte words (lock-free reads, writes under the cluster
    lock); ``swap_map``, ``swap_cgroup``, the zeromap; zswap entries in
    per-64 MiB xarrays.  See docs/designs.md."""

    name = "swap-table-p1"
    phase = 1
