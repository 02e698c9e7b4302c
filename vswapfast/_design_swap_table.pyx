# cython: language_level=3
"""The ``swap-table`` design: the swap table after phases III-IV.

Kairui Song's later phases fold the rest of the per-slot metadata into the
per-cluster swap table: phase III ("mm, swap: use the swap table to track
the swap count", 7.1) removes ``swap_map``, phase IV moves ``swap_cgroup``
into a per-cluster memcg table and the zeromap into a bit of the word.
Sources followed (the mm tree, mm-unstable/mm-new):

- mm/swap_table.h: the word, 64-bit: NULL ``0`` = free; shadow
  ``|SWAP_COUNT|Z|SHADOW_VAL|1|``; cached folio ``|SWAP_COUNT|Z|PFN|10|``;
  (vswap reverse map ``|C|offset|100|`` and bad slot ``|1...|1000|``, not
  used here).  SWP_TB_FLAGS_BITS 5 at the top: the count
  (SWP_TB_COUNT_BITS 4, SWP_TB_COUNT_MAX 15) above SWP_TB_ZERO_FLAG.
  ``__swap_table_set_zero()`` / ``__swap_table_clear_zero()`` /
  ``__swap_table_test_zero()`` and ``__swap_cgroup_set()`` /
  ``__swap_cgroup_get()`` / ``__swap_cgroup_clear()`` under ``ci->lock``;
  ``struct swap_memcg_table { unsigned short id[SWAPFILE_CLUSTER]; }``
  (1024 bytes); ``swap_table_get()`` lock-free under RCU.
- mm/swap.h: ``struct swap_cluster_info { spinlock_t lock; u16 count; u8
  flags; u8 order; atomic_long_t __rcu *table; unsigned int *extend_table;
  struct swap_memcg_table *memcg_table; struct list_head list; }`` (48
  bytes on x86-64 with CONFIG_MEMCG and the inline zero flag).
- mm/swapfile.c: ``swap_dup_entry_locked()``: counts below
  SWP_TB_COUNT_MAX in the word; at SWP_TB_COUNT_MAX the word keeps the
  maximum and the count goes to ``ci->extend_table[off]`` (``unsigned
  int`` per slot, 2048 bytes), allocated with the cluster lock dropped
  (``swap_extend_table_alloc()``, then retried); ``swap_put_entry_locked()``
  moves a count back into the word and frees the extend_table when no count
  is left in it (``swap_extend_table_try_free()``); ``swp_swapcount()``
  under ``ci->lock``; ``swap_cluster_free_table()`` frees the cluster's
  tables when it empties.
- mm/zswap.c: zswap entries in per-64 MiB xarrays (xarray.h).

The implementation is shared with the ``swap-table-p1`` design
(``vswapfast._swap_table_design``, phase 4 here) and the table with its
lock-free read is ``swap_table.h``.

Departures (also in docs/designs.md): the allocator of swap-table-p1; the
memcg table is allocated with the swap table on a cluster's first use; a
count of 1 .. 2**31 - 1 is the contract's (the kernel's slots start at count
0, pinned by the swap cache); a zswap store, like swap_writeout, clears Z
under the cluster lock only when a lock-free read sees it set; freed swap,
memcg and extend tables stay on free lists (``bytes_swap_table_free``).

Lock ordering:
    device lock  ->  ci->lock  ->  xa_lock (zswap tree)
    ci->lock  ->  table free list locks;  xa_lock  ->  node free list lock
No two cluster locks or two xa_locks are held at once.
"""

from vswapfast._swap_table_design import SwapTableBase, BACKINGS

__all__ = ["SwapTableDesign", "BACKINGS"]


class SwapTableDesign(SwapTableBase):
    """The swap table after phases III-IV: counts (4 bits in the word, an
    extend_table past 15), cgroup ids (a per-cluster memcg table) and the
    zero bit folded into per-cluster tables; lock-free reads, writes under
    the cluster lock; zswap entries in per-64 MiB xarrays.  See
    docs/designs.md."""

    __slots__ = ()
    name = "swap-table"
    phase = 4
