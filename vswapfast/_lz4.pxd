# cython: language_level=3
"""The LZ4 block API, as the system's liblz4 exports it.

The prototypes are declared here rather than taken from lz4.h so that only
the runtime library is needed to build: these functions have been part of
LZ4's stable ABI since 1.7.
"""

cdef extern from *:
    """
    int LZ4_compress_default(const char *src, char *dst, int srcSize, int dstCapacity);
    int LZ4_decompress_safe(const char *src, char *dst, int compressedSize, int dstCapacity);
    int LZ4_versionNumber(void);
    /* LZ4_COMPRESSBOUND(isize) of lz4.h, for a 4 KiB page. */
    #define VSWAP_LZ4_PAGE_BOUND (4096 + 4096 / 255 + 16)
    """
    int LZ4_compress_default(const char *src, char *dst, int srcSize, int dstCapacity) nogil
    int LZ4_decompress_safe(const char *src, char *dst, int compressedSize, int dstCapacity) nogil
    int LZ4_versionNumber() nogil
    enum: VSWAP_LZ4_PAGE_BOUND
