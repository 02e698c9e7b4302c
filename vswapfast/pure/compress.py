"""Page compressors of the pure twin: the twin of ``vswapfast._compress``.

LZ4 through python-lz4 (``lz4.block``); zstd and LZO through ctypes on the
same runtime libraries the compiled core loads (libzstd.so.1 and
liblzo2.so.2), called the way the kernel's crypto/zstd.c and crypto/lzo.c
call theirs, so that both cores store the same bytes.  A library is loaded
by the first pool that asks for it, never at import.  ctypes drops the GIL
for the duration of each call, as python-lz4 does.

Each thread keeps its own zstd contexts and LZO work memory (the kernel's
per-CPU compression contexts), freed when the thread ends.
"""

import ctypes
import threading

import lz4.block

from ..compressors import (
    COMPRESSORS, LIBRARIES, PAGE_BOUNDS, ZSTD_LEVEL, ZSTD_PARAMS_SOURCE_SIZE,
    check_compressor, library_error,
)

__all__ = ["compressor", "compressor_number", "compress_page", "decompress_page"]

PAGE = 4096

# liblzo2's LZO1X_1_MEM_COMPRESS: 16384 dictionary pointers.
_LZO1X_1_MEM_COMPRESS = 16384 * ctypes.sizeof(ctypes.c_void_p)


class _ZstdCParams(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint) for name in (
        "windowLog", "chainLog", "hashLog", "searchLog", "minMatch", "targetLength")
    ] + [("strategy", ctypes.c_int)]


class _ZstdFParams(ctypes.Structure):
    _fields_ = [("contentSizeFlag", ctypes.c_int), ("checksumFlag", ctypes.c_int),
                ("noDictIDFlag", ctypes.c_int)]


class _ZstdParams(ctypes.Structure):
    """ZSTD_parameters of zstd.h."""
    _fields_ = [("cParams", _ZstdCParams), ("fParams", _ZstdFParams)]


def _load(name, functions):
    """Load ``name``'s library and set the prototypes of ``functions``
    ({symbol: (restype, argtypes)}); CompressorLibraryError if it fails."""
    soname = LIBRARIES[name][1]
    try:
        lib = ctypes.CDLL(soname)
    except OSError as e:
        raise library_error(name, soname, str(e)) from None
    for symbol, (restype, argtypes) in functions.items():
        try:
            f = getattr(lib, symbol)
        except AttributeError:
            raise library_error(name, soname, "it has no function %s" % symbol) from None
        f.restype = restype
        f.argtypes = argtypes
    return lib


class _Lz4:
    """LZ4_compress_default / LZ4_decompress_safe, through python-lz4."""

    name = "lz4"

    def compress(self, raw):
        """The block for one page (bytes), or None if compression failed."""
        try:
            return lz4.block.compress(raw, mode="default", store_size=False)
        except lz4.block.LZ4BlockError:
            return None

    def decompress(self, data):
        """The page, or None unless the block decodes to exactly one page
        (python-lz4 returns a shorter page rather than failing)."""
        try:
            page = lz4.block.decompress(data, uncompressed_size=PAGE)
        except lz4.block.LZ4BlockError:
            return None
        return page if len(page) == PAGE else None


class _ZstdContexts:
    """One thread's zstd contexts; freed with the thread's local storage."""

    def __init__(self, lib):
        self.lib = lib
        self.cctx = lib.ZSTD_createCCtx()
        self.dctx = lib.ZSTD_createDCtx()
        self.out = ctypes.create_string_buffer(PAGE_BOUNDS["zstd"])
        if not self.cctx or not self.dctx:
            self.close()
            raise MemoryError("no memory for zstd contexts")

    def close(self):
        if self.cctx:
            self.lib.ZSTD_freeCCtx(self.cctx)
            self.cctx = None
        if self.dctx:
            self.lib.ZSTD_freeDCtx(self.dctx)
            self.dctx = None

    __del__ = close


class _Zstd:
    """zstd as crypto/zstd.c uses it: ZSTD_DEF_LEVEL with the parameters
    for ZSTD_MAX_SIZE, one frame per page (zstd_compress_cctx())."""

    name = "zstd"

    def __init__(self):
        vp, sz = ctypes.c_void_p, ctypes.c_size_t
        self.lib = _load("zstd", {
            "ZSTD_createCCtx": (vp, []), "ZSTD_freeCCtx": (sz, [vp]),
            "ZSTD_createDCtx": (vp, []), "ZSTD_freeDCtx": (sz, [vp]),
            "ZSTD_isError": (ctypes.c_uint, [sz]),
            "ZSTD_getParams": (_ZstdParams, [ctypes.c_int, ctypes.c_ulonglong, sz]),
            "ZSTD_compress_advanced": (sz, [vp, ctypes.c_char_p, sz, ctypes.c_char_p, sz,
                                            vp, sz, _ZstdParams]),
            "ZSTD_decompressDCtx": (sz, [vp, vp, sz, ctypes.c_char_p, sz]),
        })
        self.params = self.lib.ZSTD_getParams(ZSTD_LEVEL, ZSTD_PARAMS_SOURCE_SIZE, 0)
        self.local = threading.local()

    def _contexts(self):
        ctx = getattr(self.local, "ctx", None)
        if ctx is None:
            ctx = self.local.ctx = _ZstdContexts(self.lib)
        return ctx

    def compress(self, raw):
        try:
            ctx = self._contexts()
        except MemoryError:
            return None
        n = self.lib.ZSTD_compress_advanced(ctx.cctx, ctx.out, PAGE_BOUNDS["zstd"], raw, PAGE,
                                            None, 0, self.params)
        if self.lib.ZSTD_isError(n):
            return None
        return ctx.out.raw[:n]

    def decompress(self, data):
        ctx = self._contexts()
        page = bytearray(PAGE)
        out = (ctypes.c_char * PAGE).from_buffer(page)
        n = self.lib.ZSTD_decompressDCtx(ctx.dctx, out, PAGE, bytes(data), len(data))
        del out
        if self.lib.ZSTD_isError(n) or n != PAGE:
            return None
        return bytes(page)


class _Lzo:
    """LZO1X-1 (crypto/lzo.c: lzo1x_1_compress with LZO1X_1_MEM_COMPRESS of
    work memory; lzo1x_decompress_safe)."""

    name = "lzo"

    def __init__(self):
        ub, ul = ctypes.c_char_p, ctypes.POINTER(ctypes.c_ulong)
        self.lib = _load("lzo", {
            "lzo1x_1_compress": (ctypes.c_int, [ub, ctypes.c_ulong, ctypes.c_void_p, ul,
                                                ctypes.c_void_p]),
            "lzo1x_decompress_safe": (ctypes.c_int, [ub, ctypes.c_ulong, ctypes.c_void_p, ul,
                                                     ctypes.c_void_p]),
            "__lzo_init_v2": (ctypes.c_int, [ctypes.c_uint] + [ctypes.c_int] * 9),
            "lzo_version": (ctypes.c_uint, []),
        })
        # lzo_init(): -1 for the sizes asks liblzo2 not to compare them.
        lzo_init = getattr(self.lib, "__lzo_init_v2")     # no name mangling
        if lzo_init(self.lib.lzo_version(), *([-1] * 9)) != 0:
            raise library_error("lzo", LIBRARIES["lzo"][1], "lzo_init() failed")
        self.local = threading.local()

    def compress(self, raw):
        local = self.local
        wrkmem = getattr(local, "wrkmem", None)
        if wrkmem is None:
            wrkmem = local.wrkmem = ctypes.create_string_buffer(_LZO1X_1_MEM_COMPRESS)
            local.out = ctypes.create_string_buffer(PAGE_BOUNDS["lzo"])
        n = ctypes.c_ulong(0)
        if self.lib.lzo1x_1_compress(raw, PAGE, local.out, ctypes.byref(n), wrkmem) != 0:
            return None
        return local.out.raw[:n.value]

    def decompress(self, data):
        page = bytearray(PAGE)
        out = (ctypes.c_char * PAGE).from_buffer(page)
        n = ctypes.c_ulong(PAGE)
        r = self.lib.lzo1x_decompress_safe(bytes(data), len(data), out, ctypes.byref(n), None)
        del out
        if r != 0 or n.value != PAGE:
            return None
        return bytes(page)


_made = {"lz4": _Lz4()}
_make_lock = threading.Lock()
_KINDS = {"zstd": _Zstd, "lzo": _Lzo}


def compressor(name):
    """The compressor ``name`` (TypeError, ValueError for a bad name), its
    library loaded on first use (CompressorLibraryError if it cannot be).
    Its ``compress(raw)`` returns the block or None; ``decompress(data)``
    the page or None.  Context: takes a module lock on first use."""
    check_compressor(name)
    c = _made.get(name)
    if c is None:
        with _make_lock:
            c = _made.get(name)
            if c is None:
                c = _made[name] = _KINDS[name]()
    return c


def compressor_number(name):
    """The compressor's position in ``COMPRESSORS``, its library loaded."""
    compressor(name)
    return COMPRESSORS.index(name)


def compress_page(name, page):
    """One 4096-byte page compressed with ``name``: the block, as bytes."""
    raw = bytes(page)
    if len(raw) != PAGE:
        raise ValueError("page must be 4096 bytes, not %d" % len(raw))
    block = compressor(name).compress(raw)
    if block is None:
        raise RuntimeError("%s failed to compress the page" % name)
    return block


def decompress_page(name, block):
    """A block of ``name`` decompressed to one page, or None if it does not
    decompress to exactly one page."""
    data = bytes(block)
    if not data:
        compressor(name)
        return None
    return compressor(name).decompress(data)
