# cython: language_level=3
"""The ``swap-table-p1`` design: swap table phase I (Linux 6.18).

Kairui Song's swap table phase I moved the swap cache and its shadows out of
the per-64 MiB ``swapper_spaces`` xarrays into per-cluster tables; it is the
base of the virtual swap v6 cover letter's "before" columns.  Sources
followed (v6.18):

- mm/swap_table.h: ``struct swap_table { atomic_long_t
  entries[SWAPFILE_CLUSTER]; }`` (512 words, 4096 bytes); a word is NULL
  (``null_to_swp_tb()``), a folio pointer (``folio_to_swp_tb()``) or a
  shadow, an XA_VALUE (``shadow_swp_to_tb()``: low bit 1);
  ``__swap_table_set()`` / ``__swap_table_xchg()`` / ``__swap_table_get()``
  under ``ci->lock`` (lockdep_assert_held); ``swap_table_get()`` reads
  ``ci->table`` and the word under rcu_read_lock() with no lock and returns
  NULL when the cluster has no table.
- mm/swap.h: ``struct swap_cluster_info { spinlock_t lock; u16 count; u8
  flags; u8 order; atomic_long_t __rcu *table; struct list_head list; }``
  (32 bytes on x86-64); the lock also protects the cluster's swap_map bytes.
- mm/swap_state.c: ``swap_cache_get_folio()`` / ``swap_cache_get_shadow()``
  read the table with no lock; ``swap_cache_add_folio()`` and
  ``swap_cache_del_folio()`` (``__swap_cache_del_folio()``: the folio's
  word replaced by its shadow) take ``ci->lock``; ``__swap_cache_clear_shadow``
  when slots are freed.
- mm/swapfile.c: ``swap_map`` (1 byte per slot: count, SWAP_HAS_CACHE,
  COUNT_CONTINUED) and the zeromap stay; the table is allocated when a
  cluster is first used (``swap_cluster_alloc_table()``, retried with the
  locks dropped when the atomic allocation fails) and freed when it empties
  (``swap_cluster_free_table()``, after an RCU grace period);
  ``__swap_duplicate()`` and the frees under ``ci->lock``.
- mm/swap_cgroup.c: 2 bytes of memcg id per slot; mm/zswap.c: zswap entries
  in per-64 MiB xarrays (``xa_load`` under RCU, ``xa_store`` / ``xa_erase``
  under ``xa_lock``), modelled by xarray.h.

The implementation is shared with the ``swap-table`` design
(``vswapfast._swap_table_design``, phase 1 here) and the table with its
lock-free read is ``swap_table.h``.

Departures (also in docs/designs.md): slot allocation is a scan of clusters
from the last one used under a device lock, not the per-CPU clusters and
free/nonfull lists; counts past SWAP_MAP_MAX spill into one xarray of extra
counts (``bytes_swap_cont``) instead of continuation pages; the folio goes
into the table under the same cluster-lock hold that allocates the slot,
and ``swap_cache_del_folio`` drops SWAP_HAS_CACHE in the same hold as it
writes the shadow; a count reaching zero releases the folio too; RCU is the
per-cluster sequence count of swap_table.h, and freed tables stay on a free
list (``bytes_swap_table_free``) while the design lives.

Lock ordering:
    device lock  ->  ci->lock  ->  xa_lock (zswap tree, count continuation)
    ci->lock  ->  table free list lock;  xa_lock  ->  node free list lock
No two cluster locks or two xa_locks are held at once.
"""

from vswapfast._swap_table_design import SwapTableBase, BACKINGS

__all__ = ["SwapTableP1Design", "BACKINGS"]


class SwapTableP1Design(SwapTableBase):
    """Swap table phase I (6.18): the swap cache and shadows in per-cluster
    tables of 8-byte words (lock-free reads, writes under the cluster
    lock); ``swap_map``, ``swap_cgroup``, the zeromap; zswap entries in
    per-64 MiB xarrays.  See docs/designs.md."""

    __slots__ = ()
    name = "swap-table-p1"
    phase = 1
