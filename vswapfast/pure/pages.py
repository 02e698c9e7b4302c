"""Page contents of keys, built with numpy: the pure twin of
``vswapfast._pages``.

A key's page is one of a factory's template pages, picked by a 64-bit hash of
the key, with two 8-byte words overwritten by a stamp of the key and its
version (zero templates are never stamped).  Both twins give the same bytes
for the same key and version.
"""

import numpy as np

from ..workload import mix64

PAGE_SIZE = 4096
WORDS = PAGE_SIZE // 8
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_VERSION_MUL = np.uint64(0xD6E8FEB86659FD93)


def _rows(obj, count, itemsize, what, writable):
    """``obj`` as a flat uint8 array of ``count * itemsize`` bytes."""
    view = memoryview(obj).cast("B")
    if view.nbytes != count * itemsize:
        raise ValueError("%s: expected %d bytes (%d items of %d), got %d"
                         % (what, count * itemsize, count, itemsize, view.nbytes))
    if writable and view.readonly:
        raise ValueError("%s: expected a writable buffer" % what)
    return np.frombuffer(view, dtype=np.uint8)


class PageBuilder:
    """The template pages and class table of a ``PageFactory`` (copied),
    with ``build_pages`` and ``verify_pages`` as the compiled twin has."""

    def __init__(self, templates, thresholds, class_start, class_count, template_zero,
                 seed_hash):
        self.templates = np.array(templates, dtype=np.uint8, order="C", copy=True)
        self.thresholds = np.array(thresholds, dtype=np.uint64, copy=True)
        self.class_start = np.array(class_start, dtype=np.uint64, copy=True)
        self.class_count = np.array(class_count, dtype=np.uint64, copy=True)
        self.template_zero = np.array(template_zero, dtype=bool, copy=True)
        if self.templates.ndim != 2 or self.templates.shape[1] != PAGE_SIZE \
                or self.templates.shape[0] < 1:
            raise ValueError("templates: expected an (n, 4096) array with n >= 1, got shape %r"
                             % (self.templates.shape,))
        n = self.thresholds.shape[0]
        if n < 1 or self.class_start.shape[0] != n or self.class_count.shape[0] != n:
            raise ValueError("thresholds, class_start and class_count: expected one value per "
                             "class, got %d, %d and %d" % (n, self.class_start.shape[0],
                                                           self.class_count.shape[0]))
        if self.template_zero.shape[0] != self.templates.shape[0]:
            raise ValueError("template_zero: expected %d flags, got %d"
                             % (self.templates.shape[0], self.template_zero.shape[0]))
        if (self.class_count == 0).any() or \
                (self.class_start + self.class_count > self.templates.shape[0]).any():
            raise ValueError("class_start/class_count: every class needs templates within the %d"
                             % self.templates.shape[0])
        self.seed_hash = np.uint64(int(seed_hash) & ((1 << 64) - 1))

    def _pages(self, keys, versions):
        """(pages, zero) of ``keys`` as new arrays."""
        h = mix64(keys ^ self.seed_hash)
        cls = np.searchsorted(self.thresholds, h >> np.uint64(44), side="right")
        cls = np.minimum(cls, len(self.thresholds) - 1)
        tidx = (self.class_start[cls]
                + (h & np.uint64(0xFFFFFFFF)) % self.class_count[cls]).astype(np.intp)
        out = self.templates[tidx]
        stamp = ~self.template_zero[tidx]
        if stamp.any():
            rows = np.flatnonzero(stamp)
            hs = h[rows]
            value = keys[rows] * _GOLDEN
            if versions is not None:
                value += versions[rows] * _VERSION_MUL
            value = mix64(value) | np.uint64(1)
            words = out.view(np.uint64)
            first = (hs >> np.uint64(20)).astype(np.intp) & (WORDS - 1)
            second = (first + 1 + ((hs >> np.uint64(29)).astype(np.intp) & (WORDS - 2))) \
                & (WORDS - 1)
            words[rows, first] = value
            words[rows, second] = value ^ hs
        return out, ~stamp

    def _keys(self, keys, versions):
        keys = np.frombuffer(memoryview(keys).cast("B"), dtype=np.uint8)
        if keys.nbytes % 8:
            raise ValueError("keys: expected 8-byte unsigned integers, got %d bytes"
                             % keys.nbytes)
        keys = keys.view(np.uint64)
        if versions is not None:
            versions = _rows(versions, len(keys), 8, "versions", False).view(np.uint64)
        return keys, versions

    def build_pages(self, keys, versions, out, zero):
        """Write the page of each key into the rows of ``out`` and 1 into
        ``zero`` where it is a zero page; returns None."""
        keys, versions = self._keys(keys, versions)
        out = _rows(out, len(keys), PAGE_SIZE, "out", True)
        zero = _rows(zero, len(keys), 1, "zero", True)
        pages, is_zero = self._pages(keys, versions)
        out[:] = pages.reshape(-1)
        zero[:] = is_zero

    def verify_pages(self, keys, versions, pages, differ):
        """Write 1 into ``differ`` where a row of ``pages`` is not the page
        of its key; returns how many differ."""
        keys, versions = self._keys(keys, versions)
        pages = _rows(pages, len(keys), PAGE_SIZE, "pages", False)
        differ = _rows(differ, len(keys), 1, "differ", True)
        expected, _zero = self._pages(keys, versions)
        bad = (pages.view(np.uint64).reshape(len(keys), WORDS)
               != expected.view(np.uint64)).any(axis=1)
        differ[:] = bad
        return int(np.count_nonzero(bad))

    def __repr__(self):
        return "<PageBuilder %d templates, %d classes (pure)>" % (
            len(self.templates), len(self.thresholds))
