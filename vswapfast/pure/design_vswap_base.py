"""What the two virtual swap designs share (``vswap`` and ``vswap-table``).

Both give each swapped-out page a virtual swap entry whose backing (zswap,
zero, a device slot, a folio) lives in per-cluster metadata reached through
a cluster map; both count the backings under one count lock, keep spare
clusters for reuse and run the per-page ``*_many`` loops through the
design's ``_run_loop``.  See each design module's header for the kernel
sources (the virtual swap series), the structures and the departures.

Lock ordering: a design's locks, then ``_count_lock`` innermost.
"""

from vswapfast.errors import InvalidEntryError, SwapFullError
from vswapfast.pure.design_base import VALUE_LIMIT, DesignBase

__all__ = ["VswapBase"]

# loop results shared by both designs
R_FULL, R_NOMEM, R_DEVICE_FULL = -1, -2, -3


class VswapBase(DesignBase):
    """The parts of a virtual swap design that do not depend on its
    per-cluster layout.  The design supplies ``_run_loop(em, hm, om,
    batch, op)`` and ``_folio_alloc_swap_one(folio, memcg)`` (both
    returning what the compiled core's loops return), sets ``_err_free``
    (its "entry not allocated" result) and ``_entry_message`` (its
    InvalidEntryError message) and keeps ``_count_lock``, ``_used``, ``_max_used``,
    ``_nr_zswap``, ``_spare``, ``_nr_live`` and ``_cl``."""

    def _cluster_lock(self, c):
        c.lock.acquire()
        self._cl += 1

    def _reserve_used(self):
        with self._count_lock:
            if self._used >= self._max_used:
                return False
            self._used += 1
            return True

    def _put_spare_locked(self, c):
        self._spare.append(c)
        self._nr_live -= 1

    def _raise_full(self, err):
        if err == R_NOMEM:
            raise MemoryError("no memory for a vswap cluster or a swap table")
        if err == R_DEVICE_FULL:
            raise SwapFullError("no free slot left on the swap device (nr_slots is %d)"
                                % self._nr_slots)
        raise SwapFullError("no free virtual swap slot left (%d of %d used)"
                            % (self._used, self._nr_slots - 1))

    def zswap_empty(self):
        """No virtual swap entry holds a zswap entry (the count of them)."""
        self._enter()
        try:
            return self._nr_zswap == 0
        finally:
            self._exit()

    # -- loops ------------------------------------------------------------
    def _check_entries(self, m):
        for i in range(len(m)):
            why = self._entry_check(m[i])
            if why:
                raise InvalidEntryError("entries[%d]: %s" % (i, self._entry_message(m[i], why)))

    def _run_per_page(self, em, hm, om, op):
        """``op`` on each page, one kernel operation (and its locks) each:
        the compiled core's run_loop without ``batch``; how many held or
        replaced a handle."""
        hits = 0
        for k in range(len(em)):
            e = em[k]
            x = 0
            if op == "store":
                x = self._zswap_store_one(e, hm[k])[1]
            elif op == "load":
                x = self._zswap_load_one(e)[1]
                om[k] = x
            elif op == "erase":
                x = self._zswap_erase_one(e)[1]
            else:
                self._swap_free_one(e)
            hits += x != 0
        return hits

    def _store_many(self, em, hm, batch):
        """The zswap store of each page (one cluster lock each, or one per
        run in a cluster with ``batch=True``); how many replaced a handle."""
        return self._run_loop(em, hm, None, batch, "store")

    def _load_many(self, em, om, batch):
        """The zswap load of each page (cluster lock each, or per run);
        ``om[i]`` the handle or 0; how many held one."""
        return self._run_loop(em, None, om, batch, "load")

    def _erase_many(self, em, batch):
        """The zswap backing of each page released; how many held one."""
        return self._run_loop(em, None, None, batch, "erase")

    def _free_many(self, em):
        self._run_loop(em, None, None, False, "free")

    def _swap_out(self, out, count, backing, memcg):
        """Swap out ``count`` pages (folio_alloc_swap, the backing,
        swap_cache_del_folio leaving the entry as shadow); on an error every
        page of the call is released before SwapFullError (or MemoryError)."""
        done = 0
        err = 0
        while done < count:
            e, err = self._folio_alloc_swap_one(1, memcg)
            if not e:
                break
            out[done] = e
            done += 1
            if backing == "zswap":
                self._zswap_store_one(e, self._new_handle())
            elif backing == "disk":
                _, err = self._writeout_one(e)
                if err:
                    break
            else:
                self._set_zero_one(e)
            self._cache_del_one(e, 1, e)
        if err:
            for k in range(done):
                self._swap_free_one(out[k])
            self._raise_full(err if err != self._err_free else R_FULL)

    def _new_handle(self):
        with self._count_lock:
            self._next_handle += 1
            return self._next_handle % (VALUE_LIMIT - 1) + 1

    # -- introspection ----------------------------------------------------
    def metadata_bytes(self):
        """Bytes of metadata held now (static structures included)."""
        self._check_open()
        return sum(self._bytes()[0])
