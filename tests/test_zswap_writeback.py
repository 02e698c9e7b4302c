"""Writeback as zswap_writeback_entry() and shrink_worker() do it, and the
one-backing rules that go with it, on both cores."""

import threading

import pytest

from vswapfast.errors import NoPageError
from zswap_support import ZERO_PAGE, check_pool_consistency, text_pages

PAGE = 4096


def T(i):
    return text_pages()[i]


def test_writeback_that_finds_its_entry_replaced_does_nothing(pool, zspace, swapfile):
    e = zspace.alloc()
    assert pool.store(e, T(0))
    before = pool.stats()
    assert pool._writeback_replaced(e, T(1)) == "gone"
    st = pool.stats()
    assert st["written_back_pages"] == before["written_back_pages"]
    assert st["zswpwb"] == before["zswpwb"]
    assert len(swapfile) == 0 and zspace.get_slot(e) == 0
    assert pool.load(e) == T(1)
    check_pool_consistency(pool)


def test_writeback_switches_the_backing_to_the_slot(pool, zspace, swapfile):
    # The control for the test above: nothing replaced, the page goes out.
    e = zspace.alloc()
    assert pool.store(e, T(0))
    assert pool.shrink(1) == 1
    assert zspace.get_slot(e) != 0 and len(swapfile) == 1
    assert pool.read(e) == T(0)


def test_writeback_hook_without_an_entry(pool, zspace):
    e = zspace.alloc()
    assert pool._writeback_replaced(e, T(0)) is None
    assert pool.load(e) is None
    with pytest.raises(ValueError):
        pool._writeback_replaced(e, b"short")


def test_store_over_a_written_back_entry_releases_the_slot(pool, zspace, swapfile):
    e = zspace.alloc()
    assert pool.store(e, T(0))
    assert pool.shrink(1) == 1
    slot = zspace.get_slot(e)
    assert slot and len(swapfile) == 1
    assert pool.store(e, T(1))
    # release_backing(): the new zswap backing lets the slot go.
    assert zspace.get_slot(e) == 0 and len(swapfile) == 0
    assert pool.read(e) == T(1)
    # A zero page is a backing too.
    assert pool.shrink(1) == 1 and len(swapfile) == 1
    assert pool.store(e, ZERO_PAGE)
    assert zspace.get_slot(e) == 0 and len(swapfile) == 0
    check_pool_consistency(pool)


def test_read_after_an_exclusive_load_of_a_newer_page(pool, zspace, swapfile):
    e = zspace.alloc()
    assert pool.store(e, T(0))
    assert pool.shrink(1) == 1          # T(0) is on disk
    assert pool.store(e, T(1))          # a newer page supersedes it
    assert pool.load(e) == T(1)         # exclusive: the swap cache has it now
    with pytest.raises(NoPageError):
        pool.read(e)                    # never the superseded T(0)
    assert len(swapfile) == 0


def test_worker_and_stores_race(make_pool, zspace, swapfile):
    # Stores from two threads keep hitting the limit while the worker writes
    # back: every page stays readable, and every counter adds up.
    limit = 48 * PAGE
    pool = make_pool(zspace, swapfile, max_pool_bytes=limit,
                     accept_threshold_percent=60.0)
    stored = {}
    lock = threading.Lock()
    errors = []

    def run(k):
        try:
            for i in range(300):
                e = zspace.alloc()
                page = T((k * 300 + i) % 256)
                if pool.store(e, page):
                    with lock:
                        stored[e] = page
        except BaseException as exc:     # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pool.flush_shrink_work()
    assert not errors
    st = pool.stats()
    # Whether the worker got past the referenced entries to write any back
    # depends on timing; that it ran does not.
    assert st["pool_limit_hit"] >= 1 and st["shrink_worker_runs"] >= 1
    assert st["written_back_pages"] == len(swapfile)
    for e, page in stored.items():
        assert pool.read(e) == page
    check_pool_consistency(pool)
