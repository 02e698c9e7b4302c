"""Stateful testing of the zswap pool: random sequences of stores (zero,
text, random and real pages, single and large), loads (exclusive or not),
reads, invalidations, frees through the VSwap API, shrinks and limit
changes, checked after every step against a model of page contents.

The model knows what each swap entry holds: a page in the pool (or the ZERO
marker), a foreign object, and a page in its swap-file slot.  Which entries
a writeback picks is the pool's business (the LRU and its second chances),
so the model learns that from the slots that changed, and checks that only
pool pages were written back, with their contents.  Whether the pool is full
follows the limit rule of docs/semantics.md exactly.
"""

import gc
import weakref

import lz4.block
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize,
                                 invariant, precondition, rule,
                                 run_state_machine_as_test)

from vswapfast.errors import NoPageError, SwapFullError
from vswapfast.zswap_entry import ZswapEntryView
from vswap_support import Token
from zswap_support import (PAGE_SIZE, POOL_EVENT_COUNTERS, ZERO_PAGE,
                           check_pool_consistency, library_pages,
                           random_page, seeded, sized_page, text_pages)

PAGE = PAGE_SIZE
NO_LIMIT = 1 << 40
SHIFT = 3                 # clusters of 8 entries
MAX_CLUSTERS = 16         # at most 128 entries
SLOTS = 160               # more than there can be entries

SETTINGS = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.filter_too_much],
)


def _compressible_library_pages():
    """Library pages that every LZ4 build makes smaller than a page."""
    out = [p for p in library_pages(256)
           if len(lz4.block.compress(p, store_size=False)) < PAGE - 256]
    assert len(out) >= 32
    return out[:64]


TEXT = list(text_pages(64))
LIBRARY = _compressible_library_pages()
KINDS = ("zero", "text", "library", "random", "sized", "same-byte")


def make_page(kind, n):
    """A page of ``kind``; ``n`` picks which.  Returns (page, incompressible)."""
    if kind == "zero":
        return ZERO_PAGE, False
    if kind == "text":
        return TEXT[n % len(TEXT)], False
    if kind == "library":
        return LIBRARY[n % len(LIBRARY)], False
    if kind == "random":
        return random_page(seeded(n)), True
    if kind == "sized":
        return sized_page(seeded(n), 64 + (n * 37) % 3800), False
    return bytes([1 + n % 255]) * PAGE, False


class Desc:
    __slots__ = ("z", "zero", "incompressible", "slot", "slot_page")

    def __init__(self):
        self.z = None             # a page (bytes), FOREIGN token, or None
        self.zero = False         # z was stored as a zero-filled folio: ZERO
        self.incompressible = False
        self.slot = 0             # the descriptor's slot, as last seen
        self.slot_page = None     # what that slot holds


class ZswapMachine(RuleBasedStateMachine):
    zc = None          # the core's namespace, set by the test
    path = None        # where the swap file lives

    def __init__(self):
        super().__init__()
        zc = self.zc
        self.space = zc.VSwap(cluster_shift=SHIFT, max_clusters=MAX_CLUSTERS)
        self.sf = zc.SwapFile(self.path, (SLOTS + 1) * PAGE)
        self.pool = None
        self.descs = {}           # entry -> Desc
        self.groups = {}          # allocation start -> nr
        self.full = False         # the pool's "reached full" flag
        self.counters = None
        self.tokens = []          # weak references to foreign objects

    # -- helpers ------------------------------------------------------------

    def threshold(self):
        return self.pool.max_pool_bytes * self.pool.accept_threshold_percent / 100

    def pick_range(self, i, a, b):
        """A range inside allocation group ``i``: (start, nr)."""
        starts = sorted(self.groups)
        start = starts[i % len(starts)]
        nr = self.groups[start]
        lo = a % nr
        hi = lo + 1 + b % (nr - lo)
        return start + lo, hi - lo

    def pick_entry(self, i):
        entries = sorted(self.descs)
        return entries[i % len(entries)]

    def absorb_writebacks(self, skip=()):
        """Find the entries written back since the last step: their slot
        changed.  Each must have held a pool page, which is now in the slot.
        Entries in ``skip`` are the caller's (their zswap state is new).
        Returns how many were written back."""
        n = 0
        for e, d in self.descs.items():
            slot = self.space.get_slot(e)
            if slot == d.slot:
                continue
            if e in skip and slot == 0:
                # A store lets go of the older written-back page.
                d.slot, d.slot_page = 0, None
                continue
            assert slot != 0, "slot of %#x was cleared" % e
            assert isinstance(d.z, bytes) and not d.zero, \
                "%#x was written back but held no pool page" % e
            d.slot, d.slot_page = slot, d.z
            if e not in skip:
                d.z = None
            n += 1
        return n

    def expect_counters(self, **deltas):
        """The event counters moved by exactly ``deltas`` (others by 0);
        a value of None means "went up by at least one"."""
        st_ = self.pool.stats()
        for k in POOL_EVENT_COUNTERS:
            want = deltas.get(k, 0)
            got = st_[k] - self.counters[k]
            if want is None:
                assert got >= 1, (k, got)
            elif isinstance(want, tuple):
                assert want[0] <= got <= want[1], (k, got, want)
            else:
                assert got == want, (k, got, want)
        self.counters = {k: st_[k] for k in POOL_EVENT_COUNTERS}

    # -- setup ----------------------------------------------------------------

    @initialize(limit=st.sampled_from([NO_LIMIT, NO_LIMIT, 64 * PAGE, 24 * PAGE, 8 * PAGE]),
                threshold=st.sampled_from([90.0, 50.0, 100.0]),
                writeback=st.booleans(), exclusive=st.booleans())
    def setup(self, limit, threshold, writeback, exclusive):
        # A rejected store waits for the shrink worker it woke, so that each
        # step's outcome does not depend on timing.
        self.pool = self.zc.Zswap(self.space, self.sf, max_pool_bytes=NO_LIMIT,
                                  accept_threshold_percent=threshold,
                                  writeback=writeback, exclusive_loads=exclusive,
                                  wait_for_shrink_worker=True)
        # Start from a populated pool: groups of 8, 4, 2, 1 and 1 entries,
        # most of them holding a page.
        n = 0
        for nr in (8, 4, 2, 1, 1):
            e = self.space.alloc(nr)
            self.groups[e] = nr
            for i in range(nr):
                d = self.descs[e + i] = Desc()
                if n % 5 != 4:
                    page = ZERO_PAGE if n % 7 == 3 else TEXT[n % len(TEXT)]
                    assert self.pool.store(e + i, page)
                    d.z = page
                    d.zero = page == ZERO_PAGE
                n += 1
        self.pool.max_pool_bytes = limit
        st_ = self.pool.stats()
        self.counters = {k: st_[k] for k in POOL_EVENT_COUNTERS}

    # -- allocation -------------------------------------------------------------

    @rule(order=st.integers(0, 3))
    def alloc(self, order):
        nr = 1 << order
        try:
            e = self.space.alloc(nr)
        except SwapFullError:
            return
        self.groups[e] = nr
        for i in range(nr):
            assert e + i not in self.descs
            self.descs[e + i] = Desc()

    @precondition(lambda self: self.groups)
    @rule(i=st.integers(0, 1 << 16))
    def free(self, i):
        starts = sorted(self.groups)
        start = starts[i % len(starts)]
        nr = self.groups.pop(start)
        self.space.free(start, nr)
        for e in range(start, start + nr):
            del self.descs[e]
        self.expect_counters()

    # -- store -------------------------------------------------------------------

    @precondition(lambda self: self.groups)
    @rule(i=st.integers(0, 1 << 16), a=st.integers(0, 7), b=st.integers(0, 7),
          kinds=st.lists(st.sampled_from(KINDS), min_size=1, max_size=8),
          n=st.integers(0, 1 << 20))
    def store(self, i, a, b, kinds, n):
        start, nr = self.pick_range(i, a, b)
        pages = [make_page(kinds[k % len(kinds)], n + 7 * k) for k in range(nr)]
        rng = range(start, start + nr)
        zero_folio = all(page == ZERO_PAGE for page, _ in pages)
        size = self.pool.stats()["pool_total_size"]
        wb = self.pool.writeback_enabled
        was_full = hit = False
        if not zero_folio:
            # zswap_check_limits(), which a zero-filled folio never reaches.
            hit = size >= self.pool.max_pool_bytes
            if hit:
                self.full = True
            elif self.full and size <= self.threshold():
                self.full = False
            was_full = self.full

        ok = self.pool.store(start, b"".join(p for p, _ in pages))
        written = self.absorb_writebacks(skip=rng)
        for e in rng:
            # Stored or refused, the range's written-back pages are stale.
            assert self.space.get_slot(e) == 0, "%#x kept a superseded slot" % e

        poor = not self.pool.writeback and any(inc for _, inc in pages)
        if zero_folio:
            assert ok is True, "a zero-filled folio was refused"
            assert written == 0
            self.expect_counters()
        elif was_full:
            # Rejected; the storing thread writes nothing back, the shrink
            # worker it woke (and waited for) may have, with writeback.
            assert ok is False, "a full pool took a store"
            if not wb:
                assert written == 0
            self.expect_counters(pool_limit_hit=1 if hit else 0,
                                 written_back_pages=written,
                                 reject_reclaim_fail=(0, 1 << 30))
        else:
            assert written == 0, "writeback while the pool was not full"
            if poor:
                assert ok is False, "an incompressible page was taken without writeback"
                self.expect_counters(reject_compress_fail=1)
            else:
                assert ok is True, "store refused"
                self.expect_counters()
        event("store: %s%s%s" % ("taken" if ok else "refused",
                                  ", pool full" if was_full else "",
                                  ", wrote back" if written else ""))
        for e, (page, inc) in zip(rng, pages):
            d = self.descs[e]
            d.z = page if ok else None
            d.zero = ok and zero_folio
            d.incompressible = inc

    @precondition(lambda self: self.descs)
    @rule(i=st.integers(0, 1 << 16))
    def store_foreign(self, i):
        e = self.pick_entry(i)
        t = Token("foreign %#x" % e)
        self.tokens.append(weakref.ref(t))
        old = self.space.zswap_entry_store(e, t)
        d = self.descs[e]
        if isinstance(d.z, bytes):
            assert isinstance(old, ZswapEntryView) and old.swpentry == e
        else:
            assert old is d.z
        d.z = t
        # One backing per descriptor: the store releases a written-back slot.
        d.slot, d.slot_page = 0, None

    # -- load, read, invalidate, erase --------------------------------------------

    @precondition(lambda self: self.descs)
    @rule(i=st.integers(0, 1 << 16), into_out=st.booleans())
    def load(self, i, into_out):
        e = self.pick_entry(i)
        d = self.descs[e]
        out = bytearray(b"\xa5" * PAGE) if into_out else None
        got = self.pool.load(e, out)
        if isinstance(d.z, bytes):
            if into_out:
                assert got is out
            assert bytes(got) == d.z, "load of %#x gave another page" % e
            if self.pool.exclusive_loads:
                d.z = None
        else:
            assert got is None
            if into_out:
                assert out == b"\xa5" * PAGE
        self.expect_counters()

    @precondition(lambda self: self.descs)
    @rule(i=st.integers(0, 1 << 16))
    def read(self, i):
        e = self.pick_entry(i)
        self.check_read(e)

    @precondition(lambda self: self.groups)
    @rule(i=st.integers(0, 1 << 16), a=st.integers(0, 7), b=st.integers(0, 7))
    def invalidate(self, i, a, b):
        start, nr = self.pick_range(i, a, b)
        want = sum(self.descs[e].z is not None for e in range(start, start + nr))
        assert self.pool.invalidate(start, nr) == want
        for e in range(start, start + nr):
            self.descs[e].z = None
        self.expect_counters()

    @precondition(lambda self: self.descs)
    @rule(i=st.integers(0, 1 << 16))
    def erase_through_vswap(self, i):
        e = self.pick_entry(i)
        d = self.descs[e]
        old = self.space.zswap_entry_erase(e)
        if isinstance(d.z, bytes):
            assert isinstance(old, ZswapEntryView)
            assert old.swpentry == e and old.zero == d.zero
        else:
            assert old is d.z
        d.z = None

    # -- writeback and limits -------------------------------------------------------

    @precondition(lambda self: self.pool is not None and self.pool.stats()["lru_length"])
    @rule(nr=st.integers(1, 12))
    def shrink(self, nr):
        lru = self.pool.stats()["lru_length"]
        n = self.pool.shrink(nr)
        written = self.absorb_writebacks()
        assert n == written
        event("shrink: wrote %s" % ("none" if n == 0 else "some"))
        if self.pool.writeback_enabled:
            assert n == min(nr, lru)
        else:
            assert n == 0
        self.expect_counters(written_back_pages=n)

    @rule(what=st.sampled_from(["limit", "threshold", "writeback", "exclusive"]),
          limit=st.sampled_from([NO_LIMIT, NO_LIMIT, 96 * PAGE, 48 * PAGE, 24 * PAGE, 8 * PAGE, 0]),
          threshold=st.sampled_from([90.0, 50.0, 100.0, 10.0]),
          on=st.booleans())
    def configure(self, what, limit, threshold, on):
        pool = self.pool
        if what == "limit":
            pool.max_pool_bytes = limit
            assert pool.max_pool_bytes == limit
            assert pool.stats()["max_pool_bytes"] == limit
        elif what == "threshold":
            pool.accept_threshold_percent = threshold
            assert pool.accept_threshold_percent == threshold
        elif what == "writeback":
            pool.writeback = on
            assert pool.writeback_enabled is on
        else:
            pool.exclusive_loads = on
            assert pool.exclusive_loads is on

    # -- checks -----------------------------------------------------------------------

    def check_read(self, e):
        d = self.descs[e]
        out = bytearray(PAGE) if e & 1 else None
        if isinstance(d.z, bytes):
            want = d.z
        elif d.slot:
            want = d.slot_page
        else:
            with pytest.raises(NoPageError):
                self.pool.read(e, out)
            return
        got = self.pool.read(e, out)
        if out is not None:
            assert got is out
        assert bytes(got) == want, "read of %#x gave another page" % e

    @invariant()
    def model_matches(self):
        if self.pool is None:
            return
        space, pool = self.space, self.pool
        assert sorted(space.entries()) == sorted(self.descs)
        stored = zero = 0
        slots = set()
        for e, d in self.descs.items():
            z = space.zswap_entry_load(e)
            if isinstance(d.z, bytes):
                assert isinstance(z, ZswapEntryView), "%#x lost its pool entry" % e
                assert z.swpentry == e
                assert z.zero == d.zero
                if z.zero:
                    zero += 1
                else:
                    stored += 1
                    assert z.incompressible == (z.length == PAGE)
                    if d.incompressible:
                        assert z.incompressible
            else:
                assert z is d.z, "zswap entry of %#x" % e
            assert space.get_slot(e) == d.slot
            if d.slot:
                assert d.slot not in slots
                slots.add(d.slot)
        st_ = pool.stats()
        assert st_["stored_pages"] == stored
        assert st_["zero_pages"] == zero
        assert len(pool) == stored + zero
        assert space.stats()["zswap_entries"] == sum(
            d.z is not None for d in self.descs.values())
        check_pool_consistency(pool)
        if stored == 0:
            assert st_["pool_total_size"] == 0
        assert len(self.sf) == len(slots)
        for e in self.descs:
            self.check_read(e)

    def teardown(self):
        try:
            if self.pool is not None:
                # Nothing leaks: freeing every entry empties the pool, the
                # swap file and the space.
                for start, nr in sorted(self.groups.items()):
                    self.space.free(start, nr)
                self.groups.clear()
                self.descs.clear()
                st_ = self.pool.stats()
                for k in ("stored_pages", "zero_pages", "pool_total_size",
                          "lru_length", "compressed_bytes",
                          "stored_incompressible_pages"):
                    assert st_[k] == 0, k
                assert len(self.pool) == 0
                assert len(self.sf) == 0
                assert len(self.space) == 0
                self.pool.close()
            gc.collect()
            assert all(r() is None for r in self.tokens), "a foreign object leaked"
        finally:
            if self.pool is not None:
                try:
                    self.pool.close()
                except ValueError:
                    pass
            self.sf.close()


def test_zswap_state_machine(zcore, tmp_path):
    machine = type("ZswapMachine_" + zcore.name, (ZswapMachine,),
                   {"zc": zcore, "path": str(tmp_path / "swapfile")})
    run_state_machine_as_test(machine, settings=SETTINGS)
