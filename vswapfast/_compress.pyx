# cython: language_level=3, boundscheck=False, wraparound=False
"""Page compressors of the zswap pool: LZ4, zstd and LZO1X-1, with no GIL.

LZ4 is linked in (liblz4.so.1, as before).  zstd and LZO are loaded with
dlopen() the first time a pool asks for them, so that a machine without
libzstd.so.1 or liblzo2.so.2 still imports vswapfast and only a pool of
that compressor fails, with CompressorLibraryError.  Only the runtime
libraries are needed: the few prototypes used are declared below (all are
in each library's ABI since libzstd 1.3 and liblzo2 2.0).

Each thread that compresses or decompresses keeps its own zstd contexts and
LZO work memory (a pthread key frees them when the thread exits), as the
kernel keeps one compression context per CPU (zswap's per-CPU
acomp_ctx, crypto_acomp_streams for zstd).  Library pointers are written
once, under the GIL, before the first pool of that compressor exists, and
only read afterwards.
"""

from libc.string cimport memcpy

from vswapfast._lz4 cimport LZ4_compress_default, LZ4_decompress_safe, VSWAP_LZ4_PAGE_BOUND

from vswapfast.compressors import (
    COMPRESSORS, LIBRARIES, PAGE_BOUNDS, ZSTD_LEVEL, ZSTD_PARAMS_SOURCE_SIZE,
    check_compressor, library_error,
)

cdef extern from *:
    """
    #include <dlfcn.h>
    #include <pthread.h>
    #include <stdlib.h>
    #include <string.h>

    #define VSWAP_COMP_PAGE 4096
    /* ZSTD_COMPRESSBOUND(4096) of zstd.h. */
    #define VSWAP_ZSTD_PAGE_BOUND (4096 + (4096 >> 8) + (((128 << 10) - 4096) >> 11))
    /* liblzo2's LZO1X_1_MEM_COMPRESS: 16384 dictionary pointers. */
    #define VSWAP_LZO1X_1_MEM_COMPRESS (16384 * sizeof(unsigned char *))

    /* ZSTD_parameters of zstd.h (experimental section, stable layout). */
    typedef struct {
        unsigned windowLog, chainLog, hashLog, searchLog, minMatch, targetLength;
        int strategy;
    } vswap_zstd_cparams;
    typedef struct { int contentSizeFlag, checksumFlag, noDictIDFlag; } vswap_zstd_fparams;
    typedef struct { vswap_zstd_cparams cParams; vswap_zstd_fparams fParams; } vswap_zstd_params;

    static struct {
        void *createCCtx, *freeCCtx, *createDCtx, *freeDCtx, *isError;
        void *getParams, *compress_advanced, *decompressDCtx;
    } vswap_zstd_sym;
    static vswap_zstd_params vswap_zstd_params_page;
    static struct {
        void *compress, *decompress_safe;
    } vswap_lzo_sym;

    #define VZ(name, type) ((type)vswap_zstd_sym.name)
    typedef void *(*vz_create_t)(void);
    typedef size_t (*vz_free_t)(void *);
    typedef unsigned (*vz_iserror_t)(size_t);
    typedef vswap_zstd_params (*vz_getparams_t)(int, unsigned long long, size_t);
    typedef size_t (*vz_compress_t)(void *, void *, size_t, const void *, size_t,
                                    const void *, size_t, vswap_zstd_params);
    typedef size_t (*vz_decompress_t)(void *, void *, size_t, const void *, size_t);
    typedef int (*vl_compress_t)(const unsigned char *, unsigned long, unsigned char *,
                                 unsigned long *, void *);
    typedef int (*vl_init_t)(unsigned, int, int, int, int, int, int, int, int, int);
    typedef unsigned (*vl_version_t)(void);

    /* Per-thread state: zstd contexts and LZO work memory. */
    typedef struct {
        void *cctx, *dctx, *lzo_wrkmem;
    } vswap_comp_tls;

    static pthread_key_t vswap_comp_key;
    static pthread_once_t vswap_comp_once = PTHREAD_ONCE_INIT;
    static int vswap_comp_key_ok;
    static __thread vswap_comp_tls *vswap_comp_mine;

    static void vswap_comp_tls_free(void *arg)
    {
        vswap_comp_tls *t = (vswap_comp_tls *)arg;
        if (t->cctx)
            VZ(freeCCtx, vz_free_t)(t->cctx);
        if (t->dctx)
            VZ(freeDCtx, vz_free_t)(t->dctx);
        free(t->lzo_wrkmem);
        free(t);
    }

    static void vswap_comp_key_create(void)
    {
        vswap_comp_key_ok = pthread_key_create(&vswap_comp_key, vswap_comp_tls_free) == 0;
    }

    /* This thread's state, made on first use; NULL when out of memory. */
    static vswap_comp_tls *vswap_comp_tls_get(void)
    {
        vswap_comp_tls *t = vswap_comp_mine;
        if (t)
            return t;
        pthread_once(&vswap_comp_once, vswap_comp_key_create);
        if (!vswap_comp_key_ok)
            return NULL;
        t = (vswap_comp_tls *)calloc(1, sizeof(*t));
        if (!t)
            return NULL;
        if (pthread_setspecific(vswap_comp_key, t) != 0) {
            free(t);
            return NULL;
        }
        vswap_comp_mine = t;
        return t;
    }

    /* zstd_compress_cctx() of crypto/zstd.c: one frame, the kernel's parameters. */
    static int vswap_zstd_compress(const char *page, char *dst)
    {
        vswap_comp_tls *t = vswap_comp_tls_get();
        size_t n;
        if (!t)
            return -1;
        if (!t->cctx && !(t->cctx = VZ(createCCtx, vz_create_t)()))
            return -1;
        n = VZ(compress_advanced, vz_compress_t)(t->cctx, dst, VSWAP_ZSTD_PAGE_BOUND, page,
                                                  VSWAP_COMP_PAGE, NULL, 0,
                                                  vswap_zstd_params_page);
        if (VZ(isError, vz_iserror_t)(n))
            return -1;
        return (int)n;
    }

    static int vswap_zstd_decompress(const char *src, int length, char *page)
    {
        vswap_comp_tls *t = vswap_comp_tls_get();
        size_t n;
        if (!t)
            return -1;
        if (!t->dctx && !(t->dctx = VZ(createDCtx, vz_create_t)()))
            return -1;
        n = ((vz_decompress_t)vswap_zstd_sym.decompressDCtx)(t->dctx, page, VSWAP_COMP_PAGE,
                                                            src, (size_t)length);
        if (VZ(isError, vz_iserror_t)(n) || n != VSWAP_COMP_PAGE)
            return -1;
        return 0;
    }

    /* lzo1x_1_compress() with this thread's work memory, as crypto/lzo.c. */
    static int vswap_lzo_compress(const char *page, char *dst)
    {
        vswap_comp_tls *t = vswap_comp_tls_get();
        unsigned long n = 0;
        if (!t)
            return -1;
        if (!t->lzo_wrkmem && !(t->lzo_wrkmem = malloc(VSWAP_LZO1X_1_MEM_COMPRESS)))
            return -1;
        if (((vl_compress_t)vswap_lzo_sym.compress)((const unsigned char *)page,
                VSWAP_COMP_PAGE, (unsigned char *)dst, &n, t->lzo_wrkmem) != 0)
            return -1;
        return (int)n;
    }

    /* lzo1x_decompress_safe(): the whole block, to exactly one page. */
    static int vswap_lzo_decompress(const char *src, int length, char *page)
    {
        unsigned long n = VSWAP_COMP_PAGE;
        if (((vl_compress_t)vswap_lzo_sym.decompress_safe)((const unsigned char *)src,
                (unsigned long)length, (unsigned char *)page, &n, NULL) != 0)
            return -1;
        return n == VSWAP_COMP_PAGE ? 0 : -1;
    }

    /* dlopen() a library and look up ``n`` symbols into ``out``; NULL on
       success, else the loader's message. */
    static const char *vswap_comp_dlopen(const char *soname, const char *const *names,
                                         void **out, int n, const char **missing)
    {
        void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
        int i;
        const char *err;
        if (!h)
            return (err = dlerror()) ? err : "dlopen failed";
        for (i = 0; i < n; i++) {
            out[i] = dlsym(h, names[i]);
            if (!out[i]) {
                *missing = names[i];
                dlclose(h);
                return "a function is missing";
            }
        }
        return NULL;           /* the handle stays open for the process */
    }

    static const char *const vswap_zstd_names[] = {
        "ZSTD_createCCtx", "ZSTD_freeCCtx", "ZSTD_createDCtx", "ZSTD_freeDCtx",
        "ZSTD_isError", "ZSTD_getParams", "ZSTD_compress_advanced", "ZSTD_decompressDCtx",
    };
    static const char *const vswap_lzo_names[] = {
        "lzo1x_1_compress", "lzo1x_decompress_safe", "__lzo_init_v2", "lzo_version",
    };

    static const char *vswap_zstd_load(int level, unsigned long long src_size,
                                       const char *soname, const char **missing)
    {
        const char *err = vswap_comp_dlopen(soname, vswap_zstd_names,
                                            (void **)&vswap_zstd_sym, 8, missing);
        if (err)
            return err;
        vswap_zstd_params_page = VZ(getParams, vz_getparams_t)(level, src_size, 0);
        return NULL;
    }

    static const char *vswap_lzo_load(const char *soname, const char **missing)
    {
        void *syms[4];
        const char *err = vswap_comp_dlopen(soname, vswap_lzo_names, syms, 4, missing);
        if (err)
            return err;
        /* lzo_init(): -1 for the sizes asks liblzo2 not to compare them. */
        if (((vl_init_t)syms[2])(((vl_version_t)syms[3])(),
                                 -1, -1, -1, -1, -1, -1, -1, -1, -1) != 0)
            return "lzo_init() failed";
        vswap_lzo_sym.compress = syms[0];
        vswap_lzo_sym.decompress_safe = syms[1];
        return NULL;
    }
    """
    int vswap_zstd_compress(const char *page, char *dst) nogil
    int vswap_zstd_decompress(const char *src, int length, char *page) nogil
    int vswap_lzo_compress(const char *page, char *dst) nogil
    int vswap_lzo_decompress(const char *src, int length, char *page) nogil
    const char *vswap_zstd_load(int level, unsigned long long src_size,
                                const char *soname, const char **missing)
    const char *vswap_lzo_load(const char *soname, const char **missing)
    enum: VSWAP_ZSTD_PAGE_BOUND

DEF PAGE = 4096

if (VSWAP_LZ4_PAGE_BOUND != PAGE_BOUNDS["lz4"] or VSWAP_ZSTD_PAGE_BOUND != PAGE_BOUNDS["zstd"]
        or VSWAP_COMP_PAGE_BOUND != max(PAGE_BOUNDS.values())):
    raise ImportError("vswapfast.compressors does not match the compiled compressors")

cdef bint loaded[3]
loaded[VSWAP_COMP_LZ4] = True       # linked in


cdef int vswap_compress(int comp, const char *page, char *dst) noexcept nogil:
    """Compress one page into ``dst`` (VSWAP_COMP_PAGE_BOUND bytes).

    Locks: none (per-thread contexts).  Returns the compressed length, or
    -1 when the compressor fails (zswap_compress()'s comp_ret).  The caller
    must have set the compressor up (a pool of it exists).
    """
    if comp == VSWAP_COMP_ZSTD:
        return vswap_zstd_compress(page, dst)
    if comp == VSWAP_COMP_LZO:
        return vswap_lzo_compress(page, dst)
    cdef int n = LZ4_compress_default(page, dst, PAGE, VSWAP_LZ4_PAGE_BOUND)
    return n if n > 0 else -1


cdef int vswap_decompress(int comp, const char *src, int length, char *page) noexcept nogil:
    """Decompress a whole block to exactly one page (zswap_decompress()
    checks ``dlen == PAGE_SIZE``).  Locks: none.  0, or -1 when the block
    is corrupt (or, for zstd, no context could be allocated)."""
    if comp == VSWAP_COMP_ZSTD:
        return vswap_zstd_decompress(src, length, page)
    if comp == VSWAP_COMP_LZO:
        return vswap_lzo_decompress(src, length, page)
    return 0 if LZ4_decompress_safe(src, page, length, PAGE) == PAGE else -1


cdef int vswap_compressor_setup(object name) except -1:
    """Check ``name`` (TypeError, ValueError) and load its library once.

    Called with the GIL held when a pool is created.  Returns the
    compressor's VSWAP_COMP_* number; raises CompressorLibraryError naming
    the library and its Debian package when it cannot be loaded.
    """
    cdef int comp = COMPRESSORS.index(check_compressor(name))
    cdef const char *err
    cdef const char *missing = NULL
    if loaded[comp]:
        return comp
    soname = LIBRARIES[name][1]
    bname = soname.encode()
    if comp == VSWAP_COMP_ZSTD:
        err = vswap_zstd_load(ZSTD_LEVEL, ZSTD_PARAMS_SOURCE_SIZE, bname, &missing)
    else:
        err = vswap_lzo_load(bname, &missing)
    if err != NULL:
        detail = err.decode(errors="replace")
        if missing != NULL:
            detail = "it has no function %s" % missing.decode()
        raise library_error(name, soname, detail)
    loaded[comp] = True
    return comp


def compressor_number(name):
    """The compressor's number in the compiled core, its library loaded
    (see vswap_compressor_setup)."""
    return vswap_compressor_setup(name)


def compress_page(name, page):
    """Compress one 4096-byte page with ``name``: the block, as bytes (may be
    as long as the compressor's worst case).  For tests and the bench floor;
    ValueError on a page of another size, RuntimeError if it fails."""
    cdef int comp = vswap_compressor_setup(name)
    cdef const unsigned char[::1] data = page
    cdef char out[VSWAP_COMP_PAGE_BOUND]
    cdef int n
    if data.shape[0] != PAGE:
        raise ValueError("page must be 4096 bytes, not %d" % data.shape[0])
    with nogil:
        n = vswap_compress(comp, <const char *>&data[0], out)
    if n < 0:
        raise RuntimeError("%s failed to compress the page" % name)
    return out[:n]


def decompress_page(name, block):
    """Decompress a block made by ``name`` to one page (bytes), or None when
    it does not decompress to exactly one page."""
    cdef int comp = vswap_compressor_setup(name)
    cdef const unsigned char[::1] data = block
    cdef char out[PAGE]
    cdef int result = -1
    if data.shape[0] > 0:
        with nogil:
            result = vswap_decompress(comp, <const char *>&data[0], <int>data.shape[0], out)
    if result != 0:
        return None
    return out[:PAGE]
