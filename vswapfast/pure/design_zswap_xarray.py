"""zswap entries in per-64 MiB xarrays (mm/zswap.c, 6.10 onwards).

Since 6.10 zswap keeps its entries in one xarray per 64 MiB of a swap
device (``swap_zswap_tree()``), stored and erased under its ``xa_lock`` and
loaded lock-free; the xarray and swap-table designs both model it, so the
calls over the trees live here.  A design using ``ZswapXarrays`` keeps
``_zswap`` (the trees), ``_ctx_zswap`` (their node allocator), ``_st``,
``_check_slot`` and ``_zswap_store`` (which clears the page's zero bit in
the design's own structure first).

Lock ordering: a design's cluster lock (when held) -> a tree's xa_lock ->
the node free list.
"""

from vswapfast.pure.design_base import VALUE_LIMIT, value_arg

__all__ = ["ZswapXarrays"]

SWAP_ADDRESS_SPACE_SHIFT = 14


class ZswapXarrays:
    """The zswap trees' calls shared by the xarray and swap-table designs
    (a mixin of a ``DesignBase`` subclass)."""

    @staticmethod
    def _runs(m, batch):
        """Runs ``(i, j)`` of entries in one zswap tree (``batch``) or single ones."""
        i, n = 0, len(m)
        while i < n:
            j = i + 1
            if batch:
                r = m[i] >> SWAP_ADDRESS_SPACE_SHIFT
                while j < n and m[j] >> SWAP_ADDRESS_SPACE_SHIFT == r:
                    j += 1
            yield i, j
            i = j

    def _zswap_erase(self, entry):
        xa = self._zswap[entry >> SWAP_ADDRESS_SPACE_SHIFT]
        xa.lock(self._st)
        try:
            old = xa.store_locked(self._ctx_zswap, entry, 0)
        finally:
            xa.unlock()
        return old >> 2

    def zswap_entry_store(self, entry, handle):
        """zswap_store(): xa_store() into the entry's zswap tree under its
        xa_lock (the page's zero bit cleared first, as swap_writepage does);
        returns the handle replaced, or None."""
        entry = self._entry_arg(entry)
        handle = value_arg(handle, "handle", 1, VALUE_LIMIT - 1)
        self._enter()
        try:
            self._check_slot(entry)
            old = self._zswap_store(entry, handle)
        finally:
            self._exit()
        return old or None

    def zswap_entry_load(self, entry):
        """zswap_load(): xa_load() with no lock; the handle or None."""
        entry = self._entry_arg(entry)
        self._enter()
        try:
            self._check_slot(entry)
            e = self._zswap[entry >> SWAP_ADDRESS_SPACE_SHIFT].load(entry, self._st)
        finally:
            self._exit()
        return e >> 2 or None

    def zswap_entry_erase(self, entry):
        """zswap_invalidate(): xa_erase() under xa_lock; the handle or None."""
        entry = self._entry_arg(entry)
        self._enter()
        try:
            self._check_slot(entry)
            old = self._zswap_erase(entry)
        finally:
            self._exit()
        return old or None

    def zswap_empty(self):
        """True when no zswap tree holds an entry (xa_empty on each)."""
        self._enter()
        try:
            return all(xa.empty() for xa in self._zswap)
        finally:
            self._exit()

    # -- loops ------------------------------------------------------------
    def _load_many(self, em, om, batch):
        """zswap_entry_load of each page, lock-free (``batch=True``: one
        xa_lock per run in the same tree, a range walk); ``out[i]`` gets the
        handle or 0.  Returns how many held one."""
        found = 0
        if not batch:
            for k in range(len(em)):
                e = em[k]
                h = self._zswap[e >> SWAP_ADDRESS_SPACE_SHIFT].load(e, self._st) >> 2
                om[k] = h
                found += h != 0
            return found
        for i, j in self._runs(em, True):
            xa = self._zswap[em[i] >> SWAP_ADDRESS_SPACE_SHIFT]
            xa.lock(self._st)
            try:
                for k in range(i, j):
                    h = xa.load_locked(em[k]) >> 2
                    om[k] = h
                    found += h != 0
            finally:
                xa.unlock()
        return found

    def _erase_many(self, em, batch):
        """zswap_entry_erase of each page (one xa_lock each, or one per run
        with ``batch=True``); returns how many held a handle."""
        erased = 0
        for i, j in self._runs(em, batch):
            xa = self._zswap[em[i] >> SWAP_ADDRESS_SPACE_SHIFT]
            xa.lock(self._st)
            try:
                for k in range(i, j):
                    if xa.store_locked(self._ctx_zswap, em[k], 0):
                        erased += 1
            finally:
                xa.unlock()
        return erased
