"""What the pure-Python designs share: argument checks and the life cycle.

Every design keeps the same public API (docs/designs.md); the parts that do
not depend on its structures live here so that each design module holds
only its kernel model.  ``DesignBase`` counts the calls in flight (close()
waits for them, as the compiled cores do), checks the arguments of the
per-page ``*_many`` loops and calls the design's hooks under the count:
``_store_many``, ``_load_many``, ``_erase_many``, ``_free_many``,
``_swap_out`` and ``_free`` (close()).  Messages name the design, e.g.
"xarray design is closed".

Lock ordering: ``_close_lock`` -> ``_calls_done``; no design lock is taken
under either (close() frees the structures after the last call left).
"""

import array
import operator
import threading

from vswapfast.errors import InvalidEntryError, SwapFullError

__all__ = ["DesignBase", "BACKINGS", "VALUE_LIMIT", "buffer_u64", "int_arg", "value_arg"]

VALUE_LIMIT = 1 << 48
BACKINGS = ("zswap", "disk", "zero")


def int_arg(x, what):
    """``x`` as an int (anything with ``__index__`` but bool), else TypeError."""
    if type(x) is not int:
        if isinstance(x, bool) or not hasattr(type(x), "__index__"):
            raise TypeError("%s must be an int, not %s" % (what, type(x).__name__))
        x = operator.index(x)
    return x


def value_arg(x, what, low, high):
    """``int_arg`` in ``low .. high``, else ValueError."""
    x = int_arg(x, what)
    if not low <= x <= high:
        raise ValueError("%s must be in %d .. %s, not %d" % (
            what, low, "2**48 - 1" if high == VALUE_LIMIT - 1 else high, x))
    return x


def buffer_u64(buf, what, writable=False):
    """A flat uint64 memoryview of ``buf`` (array('Q') or alike)."""
    try:
        m = memoryview(buf)
    except TypeError:
        raise TypeError("%s must be a buffer of uint64 (array('Q')), not %s"
                        % (what, type(buf).__name__)) from None
    if m.format not in ("Q", "L", "<Q", "=Q") or m.itemsize != 8 or m.ndim != 1:
        raise TypeError("%s must be a buffer of uint64 (array('Q')), not format %r"
                        % (what, m.format))
    if writable and m.readonly:
        raise TypeError("%s must be writable" % what)
    return m.cast("B").cast("Q")


def _same_length(em, om, what):
    if len(em) != len(om):
        raise ValueError("entries and %s must have the same length, not %d and %d"
                         % (what, len(em), len(om)))


def _check_handles(hm):
    for i in range(len(hm)):
        if not 1 <= hm[i] < VALUE_LIMIT:
            raise ValueError("handles[%d] must be in 1 .. 2**48 - 1, not %d" % (i, hm[i]))


class DesignBase:
    """The life cycle and the argument-checking wrappers of a pure design.

    A subclass sets ``name``, calls ``_life_init()`` in ``__init__``, keeps
    ``_nr_slots`` and ``_used``, and provides ``_check_slot`` (or its own
    ``_check_entries``), ``_swap_free`` (or ``_free_many``), the hooks named
    in the module docstring and ``metadata_bytes``."""

    name = None

    def _life_init(self):
        self._closed = False
        self._calls = 0
        self._calls_done = threading.Condition(threading.Lock())
        self._close_lock = threading.Lock()

    # -- life -------------------------------------------------------------
    def _enter(self):
        """Count a call in flight (close() waits for it); the check and the
        count are made under the lock close() marks the design closed with."""
        with self._calls_done:
            if self._closed:
                raise ValueError("%s design is closed" % self.name)
            self._calls += 1

    def _exit(self):
        with self._calls_done:
            self._calls -= 1
            if self._calls == 0:
                self._calls_done.notify_all()

    def _check_open(self):
        if self._closed:
            raise ValueError("%s design is closed" % self.name)

    def close(self):
        """Free every structure, once the calls in flight have finished.
        Safe to call twice and from several threads; later calls raise
        ValueError."""
        with self._close_lock:
            with self._calls_done:
                if self._closed:
                    return
                self._closed = True
                while self._calls:
                    self._calls_done.wait()
            self._free()

    def _free(self):
        """Drop the design's structures (close(), no call in flight)."""
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # -- checks -----------------------------------------------------------
    def _entry_arg(self, entry):
        return int_arg(entry, "swap entry")

    def _check_entries(self, m):
        """Every entry of ``m`` allocated, else InvalidEntryError naming it."""
        for i in range(len(m)):
            try:
                self._check_slot(m[i])
            except InvalidEntryError as exc:
                raise InvalidEntryError("entries[%d]: %s" % (i, exc)) from None

    # -- loops ------------------------------------------------------------
    def zswap_entry_store_many(self, entries, handles, batch=False):
        """zswap_entry_store of each page (one lock each, or one per run
        with ``batch=True``; see the design's ``_store_many``); returns how
        many replaced a handle."""
        em = buffer_u64(entries, "entries")
        hm = buffer_u64(handles, "handles")
        batch = bool(batch)
        _same_length(em, hm, "handles")
        self._enter()
        try:
            self._check_entries(em)
            _check_handles(hm)
            return self._store_many(em, hm, batch)
        finally:
            self._exit()

    def zswap_entry_load_many(self, entries, out, batch=False):
        """zswap_entry_load of each page (see the design's ``_load_many``);
        ``out[i]`` gets the handle or 0.  Returns how many held one."""
        em = buffer_u64(entries, "entries")
        om = buffer_u64(out, "out", writable=True)
        batch = bool(batch)
        _same_length(em, om, "out")
        self._enter()
        try:
            self._check_entries(em)
            return self._load_many(em, om, batch)
        finally:
            self._exit()

    def zswap_entry_erase_many(self, entries, batch=False):
        """zswap_entry_erase of each page (see the design's
        ``_erase_many``); returns how many held a handle."""
        em = buffer_u64(entries, "entries")
        batch = bool(batch)
        self._enter()
        try:
            self._check_entries(em)
            return self._erase_many(em, batch)
        finally:
            self._exit()

    def swap_free_many(self, entries):
        """swap_free of each entry (checked first: nothing is freed if one is
        not allocated)."""
        em = buffer_u64(entries, "entries")
        self._enter()
        try:
            self._check_entries(em)
            self._free_many(em)
        finally:
            self._exit()

    def _free_many(self, em):
        for k in range(len(em)):
            self._swap_free(em[k])

    def _new_handle(self):
        self._next_handle = self._next_handle % (VALUE_LIMIT - 1) + 1
        return self._next_handle

    def swap_out_many(self, count, backing="zswap", memcg=0):
        """Swap out ``count`` pages, each through folio_alloc_swap, its
        backing (zswap store of a fresh handle, swap_writeout, or set_zero)
        and swap_cache_del_folio leaving a shadow.  The folio of each page
        is its entry, its shadow the entry too.  ``SwapFullError`` (every
        page of the call released) when the device fills up."""
        count = int_arg(count, "count")
        if count < 0:
            raise ValueError("count must be at least 0, not %d" % count)
        if not isinstance(backing, str):
            raise TypeError("backing must be a str, not %s" % type(backing).__name__)
        if backing not in BACKINGS:
            raise ValueError("backing must be one of %s, not %r" % (", ".join(BACKINGS), backing))
        memcg = value_arg(memcg, "memcg", 0, 65535)
        out = array.array("Q", bytes(8 * count))
        self._enter()
        try:
            self._swap_out(out, count, backing, memcg)
            return out
        finally:
            self._exit()

    def _swap_out(self, out, count, backing, memcg):
        """Fill ``out`` with ``_swap_out_one`` of each page; on SwapFullError
        free the pages already swapped out and raise it again."""
        done = 0
        try:
            for done in range(count):
                out[done] = self._swap_out_one(backing, memcg)
            else:
                done = count
        except SwapFullError:
            for k in range(done):
                self._swap_free(out[k])
            raise

    # -- introspection ----------------------------------------------------
    def metadata_bytes(self):
        """Bytes of metadata held now (static structures included)."""
        self._check_open()
        return sum(self._bytes()[0].values())

    @property
    def nr_slots(self):
        return self._nr_slots

    def __len__(self):
        self._check_open()
        return self._used

    def __repr__(self):
        if self._closed:
            return "<%s closed core=pure>" % type(self).__name__
        return "<%s nr_slots=%d used=%d bytes=%d core=pure>" % (
            type(self).__name__, self._nr_slots, self._used, self.metadata_bytes())
