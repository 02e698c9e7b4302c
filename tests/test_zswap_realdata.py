"""Round trips of real data through the zswap pool: pages of shared
libraries and Python source found on this machine, and the memory of a live
Python process.  A share of the pages is written back to the swap file and
read from there.  Every page must come back byte for byte."""

import hashlib
import itertools
import os
import subprocess
import sys
import sysconfig

import pytest

from zswap_support import (PAGE_SIZE, ZERO_PAGE, check_pool_consistency,
                           iter_file_pages, shared_library_files, stdlib_files,
                           store_retrying)

PAGE = PAGE_SIZE

#: Pages of real files per core.
FILE_PAGES = 100_000

#: Folio sizes used in turn for the stores (pages).
FOLIO_SIZES = (1, 16, 2, 8, 1, 4, 16, 1)


def digest(page):
    return hashlib.blake2b(page, digest_size=16).digest()


def other_files():
    """Files of the installed packages, for machines with few libraries."""
    found = []
    for key in ("purelib", "platlib"):
        root = sysconfig.get_paths().get(key)
        if not root or not os.path.isdir(root):
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                found.append(os.path.join(dirpath, name))
    return sorted(set(found))


def real_file_pages(n):
    """``n`` pages: the standard library's source, then shared libraries,
    then the files of installed packages."""
    sources = itertools.chain(iter_file_pages(stdlib_files()),
                              iter_file_pages(shared_library_files()),
                              iter_file_pages(other_files()))
    return itertools.islice((page for _, _, page in sources), n)


def folios(pages):
    """Group an iterator of pages into lists of FOLIO_SIZES pages in turn."""
    sizes = itertools.cycle(FOLIO_SIZES)
    pages = iter(pages)
    while True:
        nr = next(sizes)
        group = list(itertools.islice(pages, nr))
        if not group:
            return
        while len(group) & (len(group) - 1):      # the tail: powers of two only
            yield [group.pop()]
        yield group


def store_all(pool, space, pages):
    """Store every page; returns {entry: digest} and the number of zero pages.

    A store that a full pool rejects is made again once the shrink worker
    it woke has run (the kernel would write that folio to disk instead)."""
    digests = {}
    zero = 0
    for group in folios(pages):
        nr = len(group)
        e = space.alloc(nr)
        data = group[0] if nr == 1 else b"".join(group)
        store_retrying(pool, e, data)
        for i, page in enumerate(group):
            digests[e + i] = digest(page)
        # Only a folio that is zero as a whole takes the ZERO backing.
        zero += nr * all(page == ZERO_PAGE for page in group)
    return digests, zero


def verify_all(pool, space, digests):
    """Every entry's page comes back: loaded from the pool, or read from
    the swap file if it was written back.  Returns how many came from
    the swap file."""
    from_file = 0
    out = bytearray(PAGE)
    bad = []
    for n, (e, d) in enumerate(sorted(digests.items())):
        if space.get_slot(e):
            assert pool.load(e) is None
            page = pool.read(e, out) if n % 2 else pool.read(e)
            from_file += 1
        else:
            page = pool.load(e, out) if n % 2 else pool.load(e)
            assert page is not None, "entry %#x lost its page" % e
        if digest(page) != d:
            bad.append(e)
    assert not bad, "%d pages came back different, first at %#x" % (len(bad), bad[0])
    return from_file


def report(record_property, label, stats, nr_pages, zero):
    ratio = stats["compression_ratio"]
    record_property("%s_pages" % label, nr_pages)
    record_property("%s_zero_pages" % label, zero)
    record_property("%s_compression_ratio" % label, round(ratio, 3))
    record_property("%s_lz4_ratio" % label,
                    round(stats["stored_pages"] * PAGE / max(stats["compressed_bytes"], 1), 3))
    print("%s: %d pages (%d zero), pool compression ratio %.3f (LZ4 alone %.3f), "
          "%d incompressible" % (label, nr_pages, zero, ratio,
                                 stats["stored_pages"] * PAGE / max(stats["compressed_bytes"], 1),
                                 stats["stored_incompressible_pages"]))


def test_real_files(zcore, tmp_path, record_property):
    space = zcore.VSwap()
    share = FILE_PAGES // 8
    sf = zcore.SwapFile(str(tmp_path / "swapfile"), (share + 64) * PAGE)
    pool = zcore.Zswap(space, sf, max_pool_bytes=1 << 40)
    try:
        digests, zero = store_all(pool, space, real_file_pages(FILE_PAGES))
        assert len(digests) == FILE_PAGES, "this machine has too few files to read"
        st = pool.stats()
        assert st["stored_pages"] + st["zero_pages"] == FILE_PAGES
        assert st["zero_pages"] == zero
        assert st["reject_compress_poor"] == 0 and st["reject_alloc_fail"] == 0
        assert st["compression_ratio"] > 1.0
        check_pool_consistency(pool)
        report(record_property, "files", st, FILE_PAGES, zero)

        # A share goes to the swap file, coldest (first stored) first.
        assert pool.shrink(share) == share
        st = pool.stats()
        assert st["written_back_pages"] == share
        assert len(sf) == share
        assert st["stored_pages"] + st["zero_pages"] == FILE_PAGES - share
        written = [e for e in sorted(digests) if space.get_slot(e)]
        assert len(written) == share

        # A sample read in place first (nothing moves).
        for e in sorted(digests)[::997]:
            assert digest(pool.read(e)) == digests[e]
        assert pool.stats()["stored_pages"] == st["stored_pages"]

        assert verify_all(pool, space, digests) == share
        st = pool.stats()
        assert st["stored_pages"] == 0 and st["zero_pages"] == 0
        assert st["pool_total_size"] == 0 and st["lru_length"] == 0
        assert st["decompress_fail"] == 0
        # Freeing the entries gives the slots back.
        for e in written:
            space.free(e)
        assert len(sf) == 0
    finally:
        pool.close()
        sf.close()


CHILD = r"""
import collections, decimal, email.parser, json, random, re, sys, textwrap
import xml.dom.minidom

random.seed(7)
table = {i: str(i) * (i % 7 + 1) for i in range(150000)}
words = ["".join(random.choice("abcdefghijklmnop") for _ in range(random.randint(3, 12)))
         for _ in range(40000)]
counts = collections.Counter(words)
doc = json.dumps({"table": list(table.items())[:30000], "top": counts.most_common(2000)})
parsed = json.loads(doc)
numbers = [decimal.Decimal(i) / 7 for i in range(20000)]
pattern = re.compile(r"(\w+)@(\w+)\.com")
found = [pattern.findall("user%d@host%d.com" % (i, i)) for i in range(5000)]
dom = xml.dom.minidom.parseString(
    "<r>" + "".join("<i n='%d'>%s</i>" % (i, w) for i, w in enumerate(words[:3000])) + "</r>")
msg = email.parser.Parser().parsestr("Subject: x\n\n" + textwrap.fill(" ".join(words[:5000])))
blob = bytearray(4096 * 64)          # zero-filled pages in the heap
sys.stdout.write("ready\n")
sys.stdout.flush()
sys.stdin.read()
"""


def live_process_pages():
    """The pages of every readable private mapping of a running Python
    process that has done some work.  Regions the kernel will not let us
    read (such as [vvar]) are skipped."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, env=env)
    try:
        line = child.stdout.readline()
        assert line == b"ready\n", "the child process did not start"
        pid = child.pid
        try:
            maps = open("/proc/%d/maps" % pid).read().splitlines()
            mem = open("/proc/%d/mem" % pid, "rb", buffering=0)
        except OSError as exc:
            pytest.skip("cannot read another process's memory here: %s" % exc)
        pages = []
        regions = skipped = 0
        with mem:
            for line in maps:
                fields = line.split()
                perms = fields[1]
                if perms[0] != "r" or perms[3] != "p":
                    continue
                start, end = (int(x, 16) for x in fields[0].split("-"))
                try:
                    mem.seek(start)
                    data = mem.read(end - start)
                except (OSError, OverflowError, ValueError):
                    skipped += 1
                    continue
                if not data:
                    skipped += 1
                    continue
                regions += 1
                data = data[:len(data) - len(data) % PAGE]
                pages.extend(data[i:i + PAGE] for i in range(0, len(data), PAGE))
        return pages, regions, skipped
    finally:
        child.stdin.close()
        child.wait(60)
        child.stdout.close()


def test_live_process_memory(zcore, tmp_path, record_property):
    pages, regions, skipped = live_process_pages()
    assert regions >= 10
    assert len(pages) >= 2000, "too little process memory read"
    assert sum(p == ZERO_PAGE for p in pages) >= 64

    space = zcore.VSwap()
    sf = zcore.SwapFile(str(tmp_path / "swapfile"), (len(pages) + 64) * PAGE)
    # First find the pool's size for all of it, then make a pool that holds
    # a third of that: the limit path writes the rest back.
    probe_space = zcore.VSwap()
    probe = zcore.Zswap(probe_space, sf, max_pool_bytes=1 << 40)
    try:
        _, zero = store_all(probe, probe_space, pages)
        full_size = probe.stats()["pool_total_size"]
        report(record_property, "process", probe.stats(), len(pages), zero)
    finally:
        probe.close()
    del probe, probe_space

    limit = full_size // 3
    pool = zcore.Zswap(space, sf, max_pool_bytes=limit, accept_threshold_percent=80.0)
    try:
        digests, z = store_all(pool, space, pages)
        assert z == zero
        st = pool.stats()
        assert st["pool_limit_hit"] >= 1
        assert st["written_back_pages"] > 0
        assert st["reject_reclaim_fail"] == 0
        assert st["pool_total_size"] <= limit
        assert len(sf) == st["written_back_pages"]
        check_pool_consistency(pool)
        record_property("process_written_back", st["written_back_pages"])
        from_file = verify_all(pool, space, digests)
        assert from_file == st["written_back_pages"]
        st = pool.stats()
        assert st["stored_pages"] == 0 and st["pool_total_size"] == 0
        assert st["decompress_fail"] == 0
    finally:
        pool.close()
        sf.close()
