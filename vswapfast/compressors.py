"""The compressors a zswap pool can use, as the kernel's crypto API names them.

One place for what both cores share: the names, the runtime library each
needs (and the Debian package that provides it), each compressor's worst
case output for a 4 KiB page, and the checks on a ``compressor`` argument.

- ``lz4``: LZ4 block format, ``LZ4_compress_default`` (crypto/lz4.c calls
  ``LZ4_compress_default`` with its work memory).
- ``zstd``: a zstd frame at level 3 with the parameters zstd derives for a
  256 KiB source, as crypto/zstd.c does (``ZSTD_DEF_LEVEL`` 3,
  ``zstd_get_params(ZSTD_DEF_LEVEL, ZSTD_MAX_SIZE)`` with ``ZSTD_MAX_SIZE``
  ``1 << 18``, then ``zstd_compress_cctx()``).
- ``lzo``: LZO1X-1 (crypto/lzo.c calls ``lzo1x_1_compress`` with
  ``LZO1X_1_MEM_COMPRESS`` bytes of work memory), the kernel's ``lzo``.

The kernel's LZO is its own implementation of LZO1X-1 and its zstd a copy
of upstream zstd; user space uses liblzo2 and libzstd, whose output is the
same format (each decodes the other's) but not always the same bytes.
"""

from .errors import CompressorLibraryError

__all__ = [
    "COMPRESSORS",
    "DEFAULT_COMPRESSOR",
    "LIBRARIES",
    "PAGE_BOUNDS",
    "ZSTD_LEVEL",
    "ZSTD_PARAMS_SOURCE_SIZE",
    "check_compressor",
    "compressor_repr",
    "library_error",
]

PAGE = 4096

#: Every compressor a pool takes, the default first.
COMPRESSORS = ("lz4", "zstd", "lzo")
DEFAULT_COMPRESSOR = "lz4"

#: compressor -> (what the library is, its runtime file name, Debian package).
LIBRARIES = {
    "lz4": ("LZ4", "liblz4.so.1", "liblz4-1"),
    "zstd": ("Zstandard", "libzstd.so.1", "libzstd1"),
    "lzo": ("LZO", "liblzo2.so.2", "liblzo2-2"),
}

#: crypto/zstd.c: ZSTD_DEF_LEVEL, and the source size its parameters are
#: derived for (ZSTD_MAX_SIZE, BIT(ZSTD_MAX_WINDOWLOG) = 1 << 18).
ZSTD_LEVEL = 3
ZSTD_PARAMS_SOURCE_SIZE = 1 << 18

#: The worst-case output for one page: LZ4_COMPRESSBOUND of lz4.h,
#: ZSTD_COMPRESSBOUND of zstd.h, and lzo1x_worst_compress() of the kernel's
#: include/linux/lzo.h (liblzo2's LZO1X-1 needs 2 bytes less; the kernel's
#: bound also covers lzo-rle).  Must match vswapfast/_compress.pxd.
PAGE_BOUNDS = {
    "lz4": PAGE + PAGE // 255 + 16,
    "zstd": PAGE + (PAGE >> 8) + (((128 << 10) - PAGE) >> 11),
    "lzo": PAGE + PAGE // 16 + 64 + 3 + 2,
}


def check_compressor(value):
    """The compressor name ``value``, checked: TypeError if it is not a str,
    ValueError listing the choices if it is not one of them."""
    if not isinstance(value, str):
        raise TypeError("compressor must be a str, not %s" % type(value).__name__)
    if value not in COMPRESSORS:
        raise ValueError("compressor must be one of %s, not %r"
                         % (", ".join(COMPRESSORS), value))
    return value


def library_error(compressor, soname, detail):
    """The CompressorLibraryError for a library that did not load: it names
    the library file that was tried and the Debian package to install."""
    what, _, package = LIBRARIES[compressor]
    return CompressorLibraryError(
        "compressor %r needs the %s library %s (on Debian and Ubuntu the "
        "package %s), which could not be loaded: %s"
        % (compressor, what, soname, package, detail))


def compressor_repr(name):
    """The part of a pool's repr that names its compressor: empty for the
    default, so that a default pool's repr is what it always was."""
    return "" if name == DEFAULT_COMPRESSOR else " compressor=%s" % name
