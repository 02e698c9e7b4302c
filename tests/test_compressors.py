"""The pool's compressors: lz4, zstd and lzo, in both cores.

Each compressor round-trips real pages through a pool; its blocks are the
format of the matching Python package (python-lz4, zstandard, python-lzo),
both ways, where that package is installed; both cores store the same
bytes where they call the same library; bad names and types are refused,
and a missing library is named, with its Debian package, when a pool is
created (never at import).
"""

import os
import subprocess
import sys
import threading

import pytest

from cores import NO_LIMIT, child_env
from vswapfast.compressors import COMPRESSORS, LIBRARIES, PAGE_BOUNDS
from vswapfast.errors import CompressorLibraryError, ZswapDecompressError
from zswap_support import library_pages, random_page, seeded, text_pages

PAGE = 4096


def real_pages():
    out = [p for p in library_pages(48) + text_pages(16) if any(p)]
    assert len(out) >= 32
    return out


def store_real_pages(pool, space):
    """Store each real page in a new entry; the (entry, page) pairs the pool
    took.  Without writeback a page that does not shrink is refused."""
    stored = []
    refused = 0
    for page in real_pages():
        entry = space.alloc()
        if pool.store(entry, page):
            stored.append((entry, page))
        else:
            refused += 1
    assert len(stored) >= 32
    assert pool.stats()["reject_compress_fail"] == refused
    return stored


@pytest.fixture(params=COMPRESSORS)
def compressor(request):
    return request.param


# --------------------------------------------------------------------------
# the Python package that speaks each format


def _lz4_codec():
    import lz4.block
    return (lambda block: lz4.block.decompress(block, uncompressed_size=PAGE),
            lambda page: lz4.block.compress(page, mode="default", store_size=False))


def _zstd_codec():
    zstandard = pytest.importorskip("zstandard", reason="zstandard is not installed")
    return (lambda block: zstandard.ZstdDecompressor().decompress(block, max_output_size=PAGE),
            lambda page: zstandard.ZstdCompressor(level=3).compress(page))


def _lzo_codec():
    lzo = pytest.importorskip(
        "lzo", reason="python-lzo is not installed (it builds only where the "
                      "liblzo2 headers are)")
    # level 1: lzo1x_1_compress; header=False: the bare LZO1X stream.
    return (lambda block: lzo.decompress(block, False, PAGE),
            lambda page: lzo.compress(page, 1, False))


CODECS = {"lz4": _lz4_codec, "zstd": _zstd_codec, "lzo": _lzo_codec}


# --------------------------------------------------------------------------
# round trips


def test_every_compressor_round_trips_real_pages(zcore, zspace, compressor):
    pool = zcore.Zswap(zspace, max_pool_bytes=NO_LIMIT, writeback=False, compressor=compressor)
    stored = store_real_pages(pool, zspace)
    s = pool.stats()
    assert s["stored_pages"] == len(stored)
    # Without writeback a page that does not shrink is refused, never raw.
    assert s["stored_incompressible_pages"] == 0
    assert s["compressed_bytes"] < len(stored) * PAGE * 3 // 4
    for entry, page in stored:
        assert pool.read(entry) == page            # not exclusive
        assert pool.load(entry) == page            # exclusive: erased
        assert pool.load(entry) is None
    assert len(pool) == 0
    pool.close()


def test_blocks_are_smaller_than_a_page_and_within_the_bound(zcore, zspace, compressor):
    pool = zcore.Zswap(zspace, max_pool_bytes=NO_LIMIT, writeback=False, compressor=compressor,
                       exclusive_loads=False)
    for entry, page in store_real_pages(pool, zspace):
        block = pool._block(entry)
        assert 0 < len(block) < PAGE <= PAGE_BOUNDS[compressor]
        assert zcore.Zswap._decompress_block(block, compressor) == page
    pool.close()


def test_an_incompressible_page_is_refused_without_writeback(zcore, zspace, compressor):
    # zswap_compress(): an output that is not smaller than a page is stored
    # raw only while writeback is on; otherwise -EINVAL, compress_fail.
    pool = zcore.Zswap(zspace, max_pool_bytes=NO_LIMIT, writeback=False, compressor=compressor)
    entry = zspace.alloc()
    assert not pool.store(entry, random_page(seeded(1)))
    s = pool.stats()
    assert (s["reject_compress_fail"], s["stored_pages"]) == (1, 0)
    assert s["reject_compress_poor"] == 0
    pool.close()


def test_an_incompressible_page_is_stored_raw_with_writeback(zcore, zspace, compressor,
                                                            tmp_path):
    with zcore.SwapFile(str(tmp_path / "swap"), 64 * PAGE) as swapfile:
        pool = zcore.Zswap(zspace, swapfile, max_pool_bytes=NO_LIMIT, compressor=compressor)
        entry = zspace.alloc()
        page = random_page(seeded(2))
        assert pool.store(entry, page)
        s = pool.stats()
        assert (s["stored_incompressible_pages"], s["compressed_bytes"]) == (1, PAGE)
        assert pool._block(entry) is None
        assert pool.shrink(1) == 1                 # written back, then read
        assert pool.read(entry) == page
        pool.close()


def test_corrupt_blocks_are_detected(zcore, zspace, compressor):
    pool = zcore.Zswap(zspace, max_pool_bytes=NO_LIMIT, writeback=False, compressor=compressor)
    entry = zspace.alloc()
    assert pool.store(entry, text_pages(1)[0])
    assert pool._corrupt(entry)
    with pytest.raises(ZswapDecompressError):
        pool.load(entry)
    assert pool.stats()["decompress_fail"] == 1
    assert len(pool) == 1                          # the entry is kept
    pool.close()


def test_threads_compress_with_their_own_contexts(zcore, compressor):
    # zstd contexts and LZO work memory are per thread: threads storing and
    # loading at once must each get their own pages back.
    space = zcore.VSwap()
    pool = zcore.Zswap(space, max_pool_bytes=NO_LIMIT, writeback=False, compressor=compressor)
    pages = text_pages(64)
    failures = []

    def work(k):
        try:
            for rnd in range(3):
                mine = [(space.alloc(), pages[(k * 7 + i + rnd) % len(pages)])
                        for i in range(16)]
                # A swap file is not needed: text pages all shrink.
                for entry, page in mine:
                    assert pool.store(entry, page)
                for entry, page in mine:
                    assert pool.load(entry) == page
                    space.free(entry)
        except BaseException as e:                 # noqa: BLE001 (reported below)
            failures.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
    assert len(pool) == 0
    pool.close()


# --------------------------------------------------------------------------
# the formats, against the Python packages


def test_the_python_package_reads_the_pool_blocks(zcore, zspace, compressor):
    decompress, _ = CODECS[compressor]()
    pool = zcore.Zswap(zspace, max_pool_bytes=NO_LIMIT, writeback=False, compressor=compressor)
    for entry, page in store_real_pages(pool, zspace):
        assert decompress(pool._block(entry)) == page
    pool.close()


def test_the_core_reads_the_python_package_blocks(zcore, compressor):
    _, compress = CODECS[compressor]()
    for page in real_pages():
        block = compress(page)
        if len(block) >= PAGE:
            continue                               # the pool would not keep it
        assert zcore.Zswap._decompress_block(block, compressor) == page


def test_a_bad_block_is_refused(zcore, compressor):
    for bad in (b"\xff" * 64, b"\x00", b"\x11\x00\x00"):
        with pytest.raises(ZswapDecompressError):
            zcore.Zswap._decompress_block(bad, compressor)


def test_a_block_of_another_length_is_refused(zcore, compressor):
    # Decompressing to less than a page is corrupt data (zswap_decompress()
    # checks dlen == PAGE_SIZE).
    if compressor == "lz4":
        import lz4.block
        short = lz4.block.compress(b"x" * 100, store_size=False)
    else:
        _, compress = CODECS[compressor]()
        short = compress(b"x" * 100)
    with pytest.raises(ZswapDecompressError):
        zcore.Zswap._decompress_block(short, compressor)


@pytest.mark.parametrize("name", ["zstd", "lzo"])
def test_both_cores_store_the_same_bytes(name):
    # Both cores call the same system library with the kernel's settings.
    # (LZ4 is not compared: python-lz4 bundles an LZ4 of its own.)
    from cores import load_zswap_core, core_names
    if len(core_names()) < 2:
        pytest.skip("only the pure core is being tested")
    blocks = {}
    for core_name in core_names():
        zc = load_zswap_core(core_name)
        space = zc.VSwap()
        pool = zc.Zswap(space, max_pool_bytes=NO_LIMIT, compressor=name)
        blocks[core_name] = [(page, pool._block(entry))
                             for entry, page in store_real_pages(pool, space)]
        pool.close()
    assert blocks["compiled"] == blocks["pure"]


# --------------------------------------------------------------------------
# the argument


def test_the_default_is_lz4(zcore, zspace):
    pool = zcore.Zswap(zspace, max_pool_bytes=NO_LIMIT)
    assert pool.compressor == "lz4"
    assert "compressor" not in repr(pool)
    pool.close()


def test_the_compressor_is_readable_and_in_the_repr(zcore, zspace, compressor):
    pool = zcore.Zswap(zspace, max_pool_bytes=NO_LIMIT, writeback=False, compressor=compressor)
    assert pool.compressor == compressor
    assert ("compressor=%s" % compressor in repr(pool)) == (compressor != "lz4")
    pool.close()
    assert pool.compressor == compressor           # readable when closed


@pytest.mark.parametrize("bad", ["LZ4", "lzo-rle", "deflate", ""])
def test_an_unknown_compressor_is_a_value_error_listing_the_choices(zcore, zspace, bad):
    with pytest.raises(ValueError, match="compressor must be one of lz4, zstd, lzo, not %r"
                       % bad):
        zcore.Zswap(zspace, compressor=bad)
    zcore.Zswap(zspace).close()                    # the space was left unbound


@pytest.mark.parametrize("bad", [b"lz4", None, 1, ["lz4"]])
def test_a_compressor_of_another_type_is_a_type_error(zcore, zspace, bad):
    with pytest.raises(TypeError, match="compressor must be a str, not %s"
                       % type(bad).__name__):
        zcore.Zswap(zspace, compressor=bad)
    with pytest.raises(TypeError):
        zcore.Zswap._decompress_block(b"\x00" * 8, bad)


def test_the_compressor_cannot_be_changed(zcore, zspace):
    pool = zcore.Zswap(zspace, max_pool_bytes=NO_LIMIT, compressor="zstd")
    with pytest.raises(AttributeError):
        pool.compressor = "lzo"
    pool.close()


# --------------------------------------------------------------------------
# a missing library


_MISSING_LIBRARY = r"""
import sys
import vswapfast.compressors as c
what, soname, package = c.LIBRARIES[sys.argv[2]]
c.LIBRARIES[sys.argv[2]] = (what, "libvswapfast-no-such-library.so.7", package)
from cores import load_zswap_core
from vswapfast.errors import CompressorLibraryError
zc = load_zswap_core(sys.argv[1])
space = zc.VSwap()
try:
    zc.Zswap(space, compressor=sys.argv[2])
except CompressorLibraryError as e:
    print("ERROR", e)
    zc.Zswap(space).close()      # nothing was bound to the space
    print("LZ4 OK")
"""


@pytest.mark.parametrize("name", ["zstd", "lzo"])
def test_a_missing_library_is_named_with_its_package(zcore, name):
    # In a child: this process has the real libraries loaded already.
    env, cwd = child_env(os.path.dirname(os.path.abspath(__file__)))
    run = subprocess.run([sys.executable, "-c", _MISSING_LIBRARY, zcore.name, name],
                         capture_output=True, text=True, env=env, cwd=cwd, timeout=120)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[-1] == "LZ4 OK"
    message = lines[0]
    assert "compressor %r needs the" % name in message
    assert "libvswapfast-no-such-library.so.7" in message
    assert "package %s" % LIBRARIES[name][2] in message


def test_importing_loads_no_optional_library():
    # vswapfast imports on a machine without libzstd or liblzo2.
    code = ("import vswapfast, vswapfast.pure, vswapfast._zswap\n"
            "maps = open('/proc/self/maps').read()\n"
            "print('zstd' in maps, 'lzo2' in maps)\n")
    env, cwd = child_env()
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=cwd, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["False", "False"]


def test_the_library_error_is_an_os_error():
    assert issubclass(CompressorLibraryError, OSError)
