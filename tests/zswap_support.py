"""Helpers shared by the zswap pool and swap file tests (not a test module).

Real pages come from files found at run time: the Python standard library's
``.py`` files and the shared libraries this process has mapped (and their
neighbours in the same directories).  Everything is sorted, so the same
machine always yields the same pages.
"""

import functools
import os
import random
import sysconfig

from vswapfast.zpool import PAGE_SIZE, ZPOOL_CLASSES, size_class
from vswapfast.zswap_entry import ZswapEntryView
from vswap_support import LOCK_COUNTERS

ZERO_PAGE = bytes(PAGE_SIZE)

POOL_STAT_KEYS = {
    "stored_pages", "stored_incompressible_pages", "pool_total_size",
    "pool_limit_hit", "written_back_pages", "reject_reclaim_fail",
    "reject_alloc_fail", "reject_kmemcache_fail", "reject_compress_fail",
    "reject_compress_poor", "decompress_fail", "zero_pages",
    "compressed_bytes", "lru_length", "shrink_worker_runs", "max_pool_bytes",
    "compression_ratio",
    "zswpout", "zswpin", "zswpwb", "swpout_zero", "swpin_zero",
    "lru_lock_acquisitions", "lru_lock_contended",
    "index_lock_acquisitions", "index_lock_contended",
}
#: Lock counters: with the "vswap" index they count the space's cluster
#: locks, which the space's own calls take too.
LOCK_STAT_KEYS = {
    "lru_lock_acquisitions", "lru_lock_contended",
    "index_lock_acquisitions", "index_lock_contended",
}

#: Counters of events (never go down).
POOL_EVENT_COUNTERS = (
    "pool_limit_hit", "written_back_pages", "reject_reclaim_fail",
    "reject_alloc_fail", "reject_kmemcache_fail", "reject_compress_fail",
    "reject_compress_poor", "decompress_fail",
)


# --------------------------------------------------------------------------
# page sources


def stdlib_files():
    """The standard library's ``.py`` files, sorted (site-packages excluded)."""
    root = sysconfig.get_paths()["stdlib"]
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames
                             if d not in ("site-packages", "dist-packages",
                                          "__pycache__"))
        for name in sorted(filenames):
            if name.endswith(".py"):
                found.append(os.path.join(dirpath, name))
    return sorted(found)


def _mapped_files(maps="/proc/self/maps"):
    paths = set()
    try:
        with open(maps) as f:
            for line in f:
                fields = line.split(None, 5)
                if len(fields) == 6 and fields[5].startswith("/"):
                    paths.add(fields[5].strip())
    except OSError:
        pass
    return paths


def shared_library_files():
    """Shared libraries: those mapped by this process, and every other
    ``.so`` file in the directories they (and the interpreter's own
    libraries) live in.  Sorted."""
    import ctypes  # noqa: F401  (maps libffi)
    import ctypes.util  # noqa: F401
    import lz4.block  # noqa: F401
    import numpy  # noqa: F401

    dirs = set()
    for path in _mapped_files():
        if ".so" in os.path.basename(path) and os.path.isfile(path):
            dirs.add(os.path.dirname(path))
    for var in ("LIBDIR", "DESTSHARED"):
        d = sysconfig.get_config_var(var)
        if d and os.path.isdir(d):
            dirs.add(d)
    found = set()
    for d in dirs:
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for name in names:
            if ".so" not in name:
                continue
            path = os.path.join(d, name)
            if os.path.isfile(path) and not os.path.islink(path):
                found.add(os.path.realpath(path))
    return sorted(found)


def iter_file_pages(paths):
    """(path, offset, page) for every page of every file; the last page of a
    file is padded with zeros.  Unreadable files are skipped."""
    for path in paths:
        try:
            f = open(path, "rb")
        except OSError:
            continue
        with f:
            offset = 0
            while True:
                try:
                    chunk = f.read(PAGE_SIZE)
                except OSError:
                    break
                if not chunk:
                    break
                if len(chunk) < PAGE_SIZE:
                    chunk += bytes(PAGE_SIZE - len(chunk))
                yield path, offset, chunk
                offset += PAGE_SIZE


@functools.lru_cache(maxsize=None)
def text_pages(n=256):
    """``n`` pages of Python source, none of them zero-filled."""
    out = []
    for _, _, page in iter_file_pages(stdlib_files()):
        if page != ZERO_PAGE:
            out.append(page)
            if len(out) == n:
                break
    assert len(out) == n, "not enough standard library source"
    return tuple(out)


@functools.lru_cache(maxsize=None)
def library_pages(n=256):
    """``n`` pages of machine code and data from shared libraries, none of
    them zero-filled, taken from a spread of files."""
    out = []
    for path in shared_library_files():
        taken = 0
        for _, _, page in iter_file_pages([path]):
            if page != ZERO_PAGE:
                out.append(page)
                taken += 1
                if taken == 8:
                    break
        if len(out) >= n:
            break
    assert len(out) >= n, "not enough shared library data"
    return tuple(out[:n])


def random_page(rng):
    """A page of random bytes: LZ4 cannot make it smaller."""
    return rng.randbytes(PAGE_SIZE)


def sized_page(rng, k):
    """``k`` random bytes then zeros: compresses to a little more than ``k``."""
    return rng.randbytes(k) + bytes(PAGE_SIZE - k)


def seeded(seed):
    return random.Random(seed)


# --------------------------------------------------------------------------
# pool geometry


def _class_counts(lengths):
    counts = {}
    for length in lengths:
        assert 1 <= length <= PAGE_SIZE, length
        c = size_class(length)
        counts[c] = counts.get(c, 0) + 1
    return counts


def zpool_min_size(lengths):
    """Bytes of zspages needed to hold objects of these lengths, packed."""
    total = 0
    for c, n in _class_counts(lengths).items():
        _, pages, objs = ZPOOL_CLASSES[c]
        total += -(-n // objs) * pages * PAGE_SIZE
    return total


def zpool_max_size(lengths):
    """The most a pool that frees empty zspages can hold for these objects:
    one zspage per object."""
    total = 0
    for c, n in _class_counts(lengths).items():
        _, pages, _ = ZPOOL_CLASSES[c]
        total += n * pages * PAGE_SIZE
    return total


# --------------------------------------------------------------------------
# state of a pool, for "a call that raises changes nothing"


def _strip(d):
    return {k: v for k, v in d.items() if k not in LOCK_COUNTERS}


def store_retrying(pool, entry, page, tries=100000):
    """Store ``page`` at ``entry``, storing again after each rejection once
    the shrink worker it woke has run (each run of a pool full of freshly
    stored, referenced entries rotates a few and gives up, as the kernel's
    shrink_worker() does).  Returns how many stores were rejected first."""
    for rejected in range(tries):
        if pool.store(entry, page):
            return rejected
        pool.flush_shrink_work()
    raise AssertionError("store at %#x still refused after %d tries" % (entry, tries))


def store_each(pool, entry, pages):
    """Store ``pages`` one folio each at ``entry``, ``entry + 1``, ...: a
    zero page alone is a zero-filled folio, which takes the ZERO backing
    (a zero page inside a larger folio is compressed with it).  True if
    every store was taken."""
    return all([pool.store(entry + i, page) for i, page in enumerate(pages)])


def pool_views(pool):
    """{entry: ZswapEntryView} for every descriptor holding a pool entry."""
    space = pool.space
    out = {}
    for e in space.entries():
        z = space.zswap_entry_load(e)
        if isinstance(z, ZswapEntryView):
            out[e] = z
    return out


def without_lock_stats(stats):
    """Pool stats less the lock counters, which move whenever a lock is
    taken, even by a call that then changes nothing."""
    return {k: v for k, v in stats.items() if k not in LOCK_STAT_KEYS}


def pool_snapshot(pool, space=None, swapfile=None):
    """Everything observable about a pool, its space and its swap file
    without reading pages (a read sets ``referenced``)."""
    space = pool.space if space is None else space
    swapfile = pool.swapfile if swapfile is None else swapfile
    entries = list(space.entries())
    descs = {}
    for e in entries:
        descs[e] = (space.zswap_entry_load(e), space.get_slot(e),
                    space.swap_cache_get_folio(e))
    return {
        "stats": without_lock_stats(pool.stats()),
        "len": len(pool),
        "repr": repr(pool),
        "space": _strip(space.stats()),
        "entries": entries,
        "descs": descs,
        "swapfile": (None if swapfile is None
                     else (swapfile.stats(), len(swapfile))),
    }


def assert_same_pool_snapshot(before, after):
    for key in ("stats", "len", "repr", "space", "entries", "swapfile"):
        assert before[key] == after[key], key
    for e, (z0, slot0, f0) in before["descs"].items():
        z1, slot1, f1 = after["descs"][e]
        if isinstance(z0, ZswapEntryView) or z0 is None:
            assert z1 == z0, "zswap entry of %#x changed" % e
        else:
            assert z1 is z0, "zswap entry of %#x changed" % e
        assert slot1 == slot0, "slot of %#x changed" % e
        assert f1 is f0, "folio of %#x changed" % e


def check_pool_consistency(pool, views=None):
    """Stats agree with the descriptors and with the allocator geometry.

    Returns the views."""
    if views is None:
        views = pool_views(pool)
    st = pool.stats()
    assert set(st) == POOL_STAT_KEYS
    data = [v for v in views.values() if not v.zero]
    zero = [v for v in views.values() if v.zero]
    for e, v in views.items():
        assert v.swpentry == e
        if v.zero:
            assert v.length == 0 and not v.incompressible
        else:
            assert 1 <= v.length <= PAGE_SIZE
            assert v.incompressible == (v.length == PAGE_SIZE)
    assert st["stored_pages"] == len(data)
    assert st["zero_pages"] == len(zero)
    assert st["stored_incompressible_pages"] == sum(v.incompressible for v in data)
    assert st["compressed_bytes"] == sum(v.length for v in data)
    assert st["lru_length"] == len(data)
    assert len(pool) == len(data) + len(zero)
    size = st["pool_total_size"]
    assert size % PAGE_SIZE == 0
    lengths = [v.length for v in data]
    assert zpool_min_size(lengths) <= size <= zpool_max_size(lengths)
    if not data:
        assert size == 0
        assert st["compression_ratio"] == 0.0
    else:
        assert abs(st["compression_ratio"] - st["stored_pages"] * PAGE_SIZE / size) <= 1e-9 * st["compression_ratio"]
    for k in POOL_EVENT_COUNTERS:
        assert st[k] >= 0
    return views


def clear_referenced(pool):
    """Clear every ``referenced`` bit without writing anything back, keeping
    the LRU order.

    With the swap file full, ``shrink(1)`` gives each referenced entry its
    second chance (clearing the bit and rotating it: a full turn keeps the
    order), then fails on the coldest entry, which the failed writeback
    rotates to the hot end as the kernel's LRU walk does (counting
    ``reject_reclaim_fail``).  ``lru_length - 1`` more failures turn the
    LRU back to its order."""
    sf = pool.swapfile
    n = pool.stats()["lru_length"]
    taken = [sf.alloc_slot() for _ in range(sf.stats()["free"])]
    try:
        written = sum(pool.shrink(1) for _ in range(n))
    finally:
        for s in taken:
            sf.free_slot(s)
    assert written == 0
