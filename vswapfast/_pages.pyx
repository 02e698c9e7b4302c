# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Page contents of keys, built in C: the compiled twin of
``vswapfast.pure.pages``.

A key's page is one of a factory's template pages, picked by a 64-bit hash of
the key, with two 8-byte words overwritten by a stamp of the key and its
version (zero templates are never stamped).  ``build_pages`` writes the pages
of a batch of keys and ``verify_pages`` checks a batch of pages against them,
both with the GIL released and without a Python call per page.  The bytes are
exactly those of the pure twin: the replay verifies every swapped-in page
against them, whichever core built the page that was swapped out.
"""

from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_WRITABLE
from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcpy, memcmp

DEF PAGE = 4096
DEF WORDS = 512

cdef uint64_t GOLDEN = 0x9E3779B97F4A7C15ULL
cdef uint64_t VERSION_MUL = 0xD6E8FEB86659FD93ULL


cdef inline uint64_t mix64(uint64_t z) noexcept nogil:
    z ^= z >> 30
    z *= 0xBF58476D1CE4E5B9ULL
    z ^= z >> 27
    z *= 0x94D049BB133111EBULL
    z ^= z >> 31
    return z


cdef struct factory_view:
    const uint8_t *templates
    Py_ssize_t ntemplates
    const uint64_t *thresholds
    Py_ssize_t nclasses
    const uint64_t *class_start
    const uint64_t *class_count
    const uint8_t *template_zero
    uint64_t seed_hash


cdef inline Py_ssize_t template_of(const factory_view *f, uint64_t h) noexcept nogil:
    """The template of a key's hash: the class from its top 20 bits (the
    first threshold above them, as numpy's searchsorted side='right'),
    then a template of the class from its low 32 bits."""
    cdef uint64_t top = h >> 44
    cdef Py_ssize_t c = 0
    while c < f.nclasses - 1 and f.thresholds[c] <= top:
        c += 1
    return <Py_ssize_t>(f.class_start[c] + (h & 0xFFFFFFFFULL) % f.class_count[c])


cdef inline bint make_page(const factory_view *f, uint64_t key, uint64_t version,
                           uint8_t *out) noexcept nogil:
    """Write the page of ``key`` at ``version`` to ``out``; whether it is a
    zero page."""
    cdef uint64_t h = mix64(key ^ f.seed_hash)
    cdef Py_ssize_t t = template_of(f, h)
    cdef uint64_t value, first, second
    cdef uint64_t *words = <uint64_t *>out
    memcpy(out, f.templates + t * PAGE, PAGE)
    if f.template_zero[t]:
        return True
    value = mix64(key * GOLDEN + version * VERSION_MUL) | 1
    first = (h >> 20) & (WORDS - 1)
    second = (first + 1 + ((h >> 29) & (WORDS - 2))) & (WORDS - 1)
    words[first] = value
    words[second] = value ^ h
    return False


cdef inline bint page_equal(const factory_view *f, uint64_t key, uint64_t version,
                            const uint8_t *page) noexcept nogil:
    """Whether ``page`` is the page of ``key`` at ``version``: its template
    compared in place around the two stamped words, which are compared with
    the stamp (no copy of the expected page)."""
    cdef uint64_t h = mix64(key ^ f.seed_hash)
    cdef Py_ssize_t t = template_of(f, h)
    cdef const uint8_t *tp = f.templates + t * PAGE
    cdef const uint64_t *words = <const uint64_t *>page
    cdef uint64_t value, first, second, lo, hi
    if f.template_zero[t]:
        return memcmp(tp, page, PAGE) == 0
    value = mix64(key * GOLDEN + version * VERSION_MUL) | 1
    first = (h >> 20) & (WORDS - 1)
    second = (first + 1 + ((h >> 29) & (WORDS - 2))) & (WORDS - 1)
    if words[first] != value or words[second] != (value ^ h):
        return False
    lo = first if first < second else second
    hi = second if first < second else first
    return (memcmp(tp, page, lo * 8) == 0
            and memcmp(tp + (lo + 1) * 8, page + (lo + 1) * 8, (hi - lo - 1) * 8) == 0
            and memcmp(tp + (hi + 1) * 8, page + (hi + 1) * 8, (WORDS - hi - 1) * 8) == 0)


cdef int _get(object obj, Py_buffer *view, int flags, Py_ssize_t itemsize, Py_ssize_t count,
              str what) except -1:
    """A contiguous buffer of ``count`` items of ``itemsize`` bytes."""
    PyObject_GetBuffer(obj, view, flags)
    if view.len != count * itemsize:
        PyBuffer_Release(view)
        raise ValueError("%s: expected %d bytes (%d items of %d), got %d"
                         % (what, count * itemsize, count, itemsize, view.len))
    return 0


cdef class PageBuilder:
    """The template pages and class table of a ``PageFactory``, held for
    C code: ``build_pages`` and ``verify_pages`` read them without the GIL.

    The arrays are copied at construction, so nothing the caller does later
    changes (or frees) what the C loops read.
    """
    cdef factory_view f
    cdef object _keep

    def __init__(self, templates, thresholds, class_start, class_count, template_zero,
                 uint64_t seed_hash):
        import numpy as np
        templates = np.array(templates, dtype=np.uint8, order="C", copy=True)
        thresholds = np.array(thresholds, dtype=np.uint64, copy=True)
        class_start = np.array(class_start, dtype=np.uint64, copy=True)
        class_count = np.array(class_count, dtype=np.uint64, copy=True)
        template_zero = np.array(template_zero, dtype=np.uint8, copy=True)
        if templates.ndim != 2 or templates.shape[1] != PAGE or templates.shape[0] < 1:
            raise ValueError("templates: expected an (n, 4096) array with n >= 1, got shape %r"
                             % (templates.shape,))
        n = thresholds.shape[0]
        if n < 1 or class_start.shape[0] != n or class_count.shape[0] != n:
            raise ValueError("thresholds, class_start and class_count: expected one value per "
                             "class, got %d, %d and %d" % (n, class_start.shape[0],
                                                           class_count.shape[0]))
        if template_zero.shape[0] != templates.shape[0]:
            raise ValueError("template_zero: expected %d flags, got %d"
                             % (templates.shape[0], template_zero.shape[0]))
        if (class_count == 0).any() or (class_start + class_count > templates.shape[0]).any():
            raise ValueError("class_start/class_count: every class needs templates within the %d"
                             % templates.shape[0])
        self._keep = (templates, thresholds, class_start, class_count, template_zero)
        cdef const uint8_t[:, ::1] t = templates
        cdef const uint64_t[::1] th = thresholds
        cdef const uint64_t[::1] cs = class_start
        cdef const uint64_t[::1] cc = class_count
        cdef const uint8_t[::1] tz = template_zero
        self.f.templates = &t[0, 0]
        self.f.ntemplates = templates.shape[0]
        self.f.thresholds = &th[0]
        self.f.nclasses = n
        self.f.class_start = &cs[0]
        self.f.class_count = &cc[0]
        self.f.template_zero = &tz[0]
        self.f.seed_hash = seed_hash

    def build_pages(self, keys, versions, out, zero):
        """Write the page of each key (at its version; ``versions`` may be
        None for version 0) into the rows of ``out`` (n * 4096 writable
        bytes), and 1 into ``zero`` (n writable bytes) where the page is a
        zero page, else 0.  Runs without the GIL; returns None."""
        cdef Py_buffer kb, vb, ob, zb
        cdef Py_ssize_t n, i
        cdef const uint64_t *k
        cdef const uint64_t *v = NULL
        cdef uint8_t *o
        cdef uint8_t *z
        PyObject_GetBuffer(keys, &kb, PyBUF_SIMPLE)
        n = kb.len // 8
        try:
            if kb.len % 8:
                raise ValueError("keys: expected 8-byte unsigned integers, got %d bytes" % kb.len)
            _get(out, &ob, PyBUF_WRITABLE, PAGE, n, "out")
            try:
                _get(zero, &zb, PyBUF_WRITABLE, 1, n, "zero")
                try:
                    if versions is not None:
                        _get(versions, &vb, PyBUF_SIMPLE, 8, n, "versions")
                    try:
                        k = <const uint64_t *>kb.buf
                        o = <uint8_t *>ob.buf
                        z = <uint8_t *>zb.buf
                        if versions is not None:
                            v = <const uint64_t *>vb.buf
                        with nogil:
                            for i in range(n):
                                z[i] = make_page(&self.f, k[i], v[i] if v != NULL else 0,
                                                 o + i * PAGE)
                    finally:
                        if versions is not None:
                            PyBuffer_Release(&vb)
                finally:
                    PyBuffer_Release(&zb)
            finally:
                PyBuffer_Release(&ob)
        finally:
            PyBuffer_Release(&kb)

    def verify_pages(self, keys, versions, pages, differ):
        """Compare each row of ``pages`` (n * 4096 bytes) with the page of
        its key (at its version, or 0 when ``versions`` is None); write 1
        into ``differ`` (n writable bytes) where they differ, else 0.
        Runs without the GIL; returns how many differ."""
        cdef Py_buffer kb, vb, pb, db
        cdef Py_ssize_t n, i, bad = 0
        cdef const uint64_t *k
        cdef const uint64_t *v = NULL
        cdef const uint8_t *p
        cdef uint8_t *d
        PyObject_GetBuffer(keys, &kb, PyBUF_SIMPLE)
        n = kb.len // 8
        try:
            if kb.len % 8:
                raise ValueError("keys: expected 8-byte unsigned integers, got %d bytes" % kb.len)
            _get(pages, &pb, PyBUF_SIMPLE, PAGE, n, "pages")
            try:
                _get(differ, &db, PyBUF_WRITABLE, 1, n, "differ")
                try:
                    if versions is not None:
                        _get(versions, &vb, PyBUF_SIMPLE, 8, n, "versions")
                    try:
                        k = <const uint64_t *>kb.buf
                        p = <const uint8_t *>pb.buf
                        d = <uint8_t *>db.buf
                        if versions is not None:
                            v = <const uint64_t *>vb.buf
                        with nogil:
                            for i in range(n):
                                d[i] = not page_equal(&self.f, k[i], v[i] if v != NULL else 0,
                                                      p + i * PAGE)
                                bad += d[i]
                    finally:
                        if versions is not None:
                            PyBuffer_Release(&vb)
                finally:
                    PyBuffer_Release(&db)
            finally:
                PyBuffer_Release(&pb)
        finally:
            PyBuffer_Release(&kb)
        return bad

    def __repr__(self):
        return "<PageBuilder %d templates, %d classes>" % (self.f.ntemplates, self.f.nclasses)
