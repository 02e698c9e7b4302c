# cython: language_level=3
"""Page compressors of the zswap pool, callable from C with no GIL.

The pool (vswapfast/_zswap.pyx) cimports these; vswapfast.compressors has
the names and bounds both cores share.
"""

cdef enum:
    VSWAP_COMP_LZ4 = 0
    VSWAP_COMP_ZSTD = 1
    VSWAP_COMP_LZO = 2
    # The largest worst-case output for one page of any compressor
    # (lzo1x_worst_compress(4096)); vswapfast.compressors.PAGE_BOUNDS.
    VSWAP_COMP_PAGE_BOUND = 4421

cdef int vswap_compress(int comp, const char *page, char *dst) noexcept nogil
cdef int vswap_decompress(int comp, const char *src, int length, char *page) noexcept nogil
cdef int vswap_compressor_setup(object name) except -1
