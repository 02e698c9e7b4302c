"""Threads storing, loading, reading, overwriting and invalidating their own
entries in one pool while another thread keeps shrinking it (writeback
racing with every operation).  Each thread checks its own pages as it goes;
afterwards every live page reads back identical and the stats balance."""

import random
import struct
import threading
import time

from vswapfast.errors import NoPageError
from vswapfast.zswap_entry import ZswapEntryView
from zswap_support import (PAGE_SIZE, ZERO_PAGE, check_pool_consistency,
                           library_pages, text_pages)

PAGE = PAGE_SIZE
WORKERS = 4
STEPS = 6000


def tagged(base, tag):
    """``base`` with a unique tag in its first 16 bytes (compressible still)."""
    return tag + base[16:]


class Worker(threading.Thread):
    def __init__(self, pool, space, index, stop):
        super().__init__(name="zswap-worker-%d" % index, daemon=True)
        self.pool, self.space, self.index, self.stop = pool, space, index, stop
        self.rng = random.Random(1000 + index)
        self.groups = {}         # start -> nr
        self.pages = {}          # entry -> page it must read back as
        self.history = {}        # entry -> every page stored there
        self.counter = 0
        self.error = None
        self.loads_after_writeback = 0

    def new_page(self):
        self.counter += 1
        kind = self.rng.randrange(10)
        if kind == 0:
            return ZERO_PAGE
        tag = struct.pack("<QQ", self.index + 1, self.counter)
        if kind == 1:
            return tagged(library_pages()[self.rng.randrange(256)], tag)
        if kind == 2:
            return tag + self.rng.randbytes(PAGE - 16)      # raw: incompressible
        return tagged(text_pages()[self.rng.randrange(256)], tag)

    def check(self, e):
        """The page of ``e`` reads back, wherever it is."""
        got = self.pool.read(e)
        assert got == self.pages[e], "%s: %#x read back wrong" % (self.name, e)

    def run(self):
        try:
            for _ in range(STEPS):
                self.step()
            for e in self.pages:
                self.check(e)
        except BaseException as exc:        # handed to the main thread
            self.error = exc
        if self.error is not None:
            self.stop.set()

    def pick(self):
        starts = list(self.groups)
        start = starts[self.rng.randrange(len(starts))]
        return start, self.groups[start]

    def step(self):
        pool, space, rng = self.pool, self.space, self.rng
        op = rng.randrange(13)
        if op < 4 or len(self.groups) < 16:
            nr = rng.choice((1, 1, 2, 4, 8))
            e = space.alloc(nr)
            pages = [self.new_page() for _ in range(nr)]
            assert pool.store(e, b"".join(pages)) is True
            self.groups[e] = nr
            for i, p in enumerate(pages):
                self.pages[e + i] = p
                self.history[e + i] = [p]
            return
        start, nr = self.pick()
        e = start + rng.randrange(nr)
        if op < 7:
            self.check(e)
        elif op < 9:
            # Overwrite one page: whatever writeback does meanwhile, the new
            # page is what reads back.
            p = self.new_page()
            assert pool.store(e, p) is True
            self.pages[e] = p
            self.history[e].append(p)
            self.check(e)
        elif op < 10:
            # Swap-in: load (or find it written back), then free the group.
            for x in range(start, start + nr):
                got = pool.load(x)
                if got is None:
                    assert space.get_slot(x) != 0, "%#x lost its page" % x
                    self.loads_after_writeback += 1
                    got = pool.read(x)
                assert got == self.pages[x], "%s: %#x loaded wrong" % (self.name, x)
                assert space.zswap_entry_load(x) is None
            self.free(start, nr)
        elif op < 12:
            # Invalidate: if writeback got there first the page is in the
            # swap file, otherwise it is gone.
            n = pool.invalidate(e)
            assert n in (0, 1)
            assert space.zswap_entry_load(e) is None
            try:
                got = pool.read(e)
            except NoPageError:
                assert n == 1 and space.get_slot(e) == 0
                got = None
            if got is not None:
                assert space.get_slot(e) != 0
                # The slot holds this page or, after an overwrite, an older
                # page of the same entry.
                assert got in self.history[e], "%#x: a page it never held" % e
                if n == 0:
                    assert got == self.pages[e]
                self.pages[e] = got
            if got is None:
                self.free(start, nr)
        else:
            self.free(start, nr)

    def free(self, start, nr):
        self.space.free(start, nr)
        del self.groups[start]
        for x in range(start, start + nr):
            del self.pages[x]
            del self.history[x]


def test_concurrent_pool(zcore, tmp_path):
    space = zcore.VSwap()
    sf = zcore.SwapFile(str(tmp_path / "swapfile"), 16385 * PAGE)
    pool = zcore.Zswap(space, sf, max_pool_bytes=1 << 40)
    stop = threading.Event()
    done = threading.Event()
    shrunk = [0, 0]
    shrink_error = []

    def shrinker():
        rng = random.Random(7)
        try:
            while not done.is_set() and not stop.is_set():
                shrunk[0] += pool.shrink(rng.randint(1, 4))
                shrunk[1] += 1
                time.sleep(0.002)       # let the pool fill up between rounds
                if shrunk[1] % 50 == 0:
                    pool.stats()
        except BaseException as exc:
            shrink_error.append(exc)

    try:
        workers = [Worker(pool, space, i, stop) for i in range(WORKERS)]
        t = threading.Thread(target=shrinker, name="zswap-shrinker", daemon=True)
        t.start()
        for w in workers:
            w.start()
        for w in workers:
            w.join(240)
            assert not w.is_alive(), "a worker hung"
        done.set()
        t.join(60)
        assert not t.is_alive(), "the shrinker hung"
        for w in workers:
            if w.error is not None:
                raise w.error
        if shrink_error:
            raise shrink_error[0]
        assert shrunk[1] > 10 and shrunk[0] > 0, "the shrinker never ran alongside"

        # Every live page reads back identical; the stats balance.
        live = {}
        for w in workers:
            live.update(w.pages)
        assert sorted(space.entries()) == sorted(live)
        views = check_pool_consistency(pool)
        for e, page in live.items():
            assert pool.read(e) == page, "%#x read back wrong" % e
        st = pool.stats()
        assert st["written_back_pages"] >= shrunk[0]
        assert st["written_back_pages"] == shrunk[0]        # no limit in reach
        assert st["stored_pages"] + st["zero_pages"] == len(views)
        assert space.stats()["zswap_entries"] == len(views)
        slots = [space.get_slot(e) for e in live]
        used = [s for s in slots if s]
        assert len(set(used)) == len(used)
        assert len(sf) == len(used)
        for e in live:
            if space.get_slot(e) == 0:
                assert isinstance(space.zswap_entry_load(e), ZswapEntryView)
        # Nothing leaks.
        for w in workers:
            for start, nr in list(w.groups.items()):
                w.free(start, nr)
        st = pool.stats()
        for k in ("stored_pages", "zero_pages", "pool_total_size", "lru_length",
                  "compressed_bytes"):
            assert st[k] == 0, k
        assert len(sf) == 0 and len(space) == 0
    finally:
        stop.set()
        done.set()
        pool.close()
        sf.close()


def test_concurrent_readers_of_shared_entries(zcore, tmp_path):
    """Readers read the same entries while one thread invalidates and
    re-stores them and another shrinks: a reader sees the old page, the new
    page, or no page, never anything else."""
    space = zcore.VSwap()
    sf = zcore.SwapFile(str(tmp_path / "swapfile"), 4097 * PAGE)
    pool = zcore.Zswap(space, sf, max_pool_bytes=1 << 40)
    base = space.alloc(64)
    versions = [tagged(text_pages()[i], struct.pack("<QQ", 9, i)) for i in range(64)]
    alt = [tagged(library_pages()[i], struct.pack("<QQ", 8, i)) for i in range(64)]
    pool.store(base, b"".join(versions))
    done = threading.Event()
    errors = []

    def reader(seed):
        rng = random.Random(seed)
        try:
            while not done.is_set():
                i = rng.randrange(64)
                try:
                    got = pool.read(base + i)
                except NoPageError:
                    continue
                assert got in (versions[i], alt[i]), "torn or foreign page at %d" % i
        except BaseException as exc:
            errors.append(exc)

    def shrinker():
        try:
            while not done.is_set():
                pool.shrink(4)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(s,), daemon=True) for s in (1, 2)]
    threads.append(threading.Thread(target=shrinker, daemon=True))
    try:
        for t in threads:
            t.start()
        rng = random.Random(3)
        for n in range(3000):
            i = rng.randrange(64)
            r = rng.randrange(3)
            if r == 0:
                pool.invalidate(base + i)
            elif r == 1:
                assert pool.store(base + i, alt[i] if n % 2 else versions[i])
            else:
                pool.load(base + i)
            if errors:
                break
        done.set()
        for t in threads:
            t.join(60)
            assert not t.is_alive()
        if errors:
            raise errors[0]
        check_pool_consistency(pool)
        space.free(base, 64)
        assert len(sf) == 0
        assert pool.stats()["pool_total_size"] == 0
    finally:
        done.set()
        pool.close()
        sf.close()
