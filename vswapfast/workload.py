"""Deterministic workloads: page contents that compress like memory, and the
default access pattern of ``vswapfast replay`` and ``vswapfast bench``.

Page contents
-------------
Swapped-out anonymous memory is a mix of zero-filled pages, text (logs,
source, markup, prose), pointer-rich heap data and incompressible data
(already compressed or encrypted buffers).  :class:`PageFactory` keeps a few
thousand *template* pages of each class, generated from a seed, and derives
the page of any key from one of them: the key picks the class and the
template through a 64-bit hash, and two 8-byte words of the template are
overwritten with a stamp of the key and its version.  So every key has its
own page (two keys never share contents, and a new version changes it) while
each page compresses as its class does, and making a page costs one copy of
4 KiB.  Zero templates are never stamped: a zero page stays a zero page.

:meth:`PageFactory.from_file` takes the templates from the 4 KiB pages of a
real file instead.

Access pattern
--------------
:func:`default_trace` is a seeded hot/cold pattern: in each phase most
accesses go to a hot set of keys (skewed inside it), the rest to any key,
the hot set drifts from phase to phase and a sequential scan runs now and
then, which together make a steady stream of evictions and refaults.
"""

import os

import numpy as np

PAGE_SIZE = 4096
WORDS = PAGE_SIZE // 8

#: Content classes of the synthetic mix, in template order.
CLASSES = ("zero", "text", "pointers", "random")
#: Share of keys whose page is of each class.
DEFAULT_MIX = {"zero": 0.12, "text": 0.30, "pointers": 0.43, "random": 0.15}
#: Templates per non-zero class.
DEFAULT_TEMPLATES = 1024
DEFAULT_SEED = 1

#: Size of the default access pattern.
DEFAULT_EVENTS = 600_000
DEFAULT_KEYS = 20_000

_M64 = (1 << 64) - 1


def mix64(values):
    """splitmix64's finaliser over a uint64 array (wrapping arithmetic)."""
    z = np.asarray(values, dtype=np.uint64).copy()
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def _rng(seed, stream):
    return np.random.Generator(np.random.PCG64([seed & _M64, stream]))


# -- synthetic content ------------------------------------------------------

_ONSETS = ["", "b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t",
           "v", "w", "z", "br", "ch", "cl", "dr", "fl", "gr", "pl", "pr", "sh", "sp",
           "st", "th", "tr"]
_NUCLEI = ["a", "e", "i", "o", "u", "ai", "ea", "ee", "io", "oo", "ou", "y"]
_CODAS = ["", "", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ng", "ck"]


def _vocabulary(rng, count):
    """``count`` distinct made-up words, most frequent first."""
    words = []
    seen = set()
    draws = iter(rng.integers(0, 1 << 30, count * 40).tolist())
    while len(words) < count:
        parts = []
        for _ in range(1 + next(draws) % 3):
            parts.append(_ONSETS[next(draws) % len(_ONSETS)]
                         + _NUCLEI[next(draws) % len(_NUCLEI)]
                         + _CODAS[next(draws) % len(_CODAS)])
        word = "".join(parts)
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def _text_corpus(rng, nbytes):
    """Text as it sits in memory: log lines, source code, records and prose."""
    words = _vocabulary(rng, 1200)
    weights = 1.0 / np.arange(1, len(words) + 1) ** 1.2
    weights /= weights.sum()

    picks = []

    def phrase(lo, hi):
        if len(picks) < hi:
            picks.extend(rng.choice(len(words), 8192, p=weights).tolist())
        n = lo + len(picks) % (hi - lo)
        return " ".join(words[picks.pop()] for _ in range(n))

    levels = ["DEBUG", "INFO", "INFO", "INFO", "WARN", "ERROR"]
    messages = [phrase(2, 7) for _ in range(80)]
    names = [words[i] for i in range(200)]
    keywords = ["def", "return", "if", "else", "for", "in", "self", "None", "import",
                "class", "while", "not", "and", "or", "len", "range", "True", "False"]
    code = []
    for i in range(300):
        a, b, c = (names[j] for j in rng.choice(len(names), 3, p=None))
        form = i % 6
        code.append(("def %s_%s(self, %s):" % (a, b, c),
                     "self.%s = %s(%s, None)" % (a, b, c),
                     "if %s is not None and %s.%s:" % (a, a, b),
                     "return %s.%s(%s)" % (a, b, c),
                     "for %s in self.%s:" % (a, b),
                     "%s %s %s %s" % (keywords[i % 18], a, keywords[(i * 7) % 18], b))[form])
    fields = [names[i] for i in range(24)]
    lines = []
    size = 0
    clock = 3600 * 9
    while size < nbytes:
        # Random draws for a batch of lines at a time.
        batch = 2048
        kinds = rng.integers(0, 8, batch).tolist()
        nums = iter(rng.integers(0, 1 << 20, batch * 8).tolist())
        msg = iter(rng.zipf(1.3, batch).tolist())
        for kind in kinds:
            if kind < 3:        # a log line
                clock += next(nums) % 3
                line = "2024-05-%02d %02d:%02d:%02d.%03d %-5s [%s-%d] %s id=%d took=%dms\n" % (
                    1 + clock // 86400 % 28, clock // 3600 % 24, clock // 60 % 60, clock % 60,
                    next(nums) % 1000, levels[next(nums) % len(levels)],
                    names[next(nums) % 6], next(nums) % 8,
                    messages[(next(msg) - 1) % len(messages)],
                    next(nums) % 100000, 1 + next(nums) % 500)
            elif kind < 6:      # source code
                line = "%s%s\n" % (" " * (4 * (next(nums) % 4)),
                                    code[(next(msg) * 7 + next(nums) % 3) % len(code)])
            elif kind < 7:      # a record
                line = '    {"%s": "%s", "%s_id": %d, "count": %d, "active": %s},\n' % (
                    fields[next(nums) % 8], names[next(nums) % len(names)],
                    fields[8 + next(nums) % 8], next(nums), next(nums) % 100,
                    "true" if next(nums) & 1 else "false")
            else:               # prose
                sentence = phrase(6, 14)
                line = sentence[:1].upper() + sentence[1:] + (". " if next(nums) & 3 else ".\n\n")
            lines.append(line)
            size += len(line)
            if size >= nbytes:
                break
    return np.frombuffer("".join(lines).encode("ascii"), dtype=np.uint8)


def _heap_words(rng, nwords):
    """Pointer-rich heap data: runs of objects of one type, each type with
    its own layout (a type pointer, a reference count, then fields that are
    heap pointers, small ints, zeros, floats or short strings), pointing
    mostly at objects allocated near them."""
    heap = 0x00007F3A5C000000 + (int(rng.integers(1 << 12)) << 24)
    image = np.uint64(0x000055D4E2A00000 + (int(rng.integers(1 << 12)) << 24))
    ntypes, widest = 64, 16
    type_ptr = image + (rng.integers(0, 1 << 14, ntypes).astype(np.uint64) << np.uint64(4))
    type_size = rng.choice([2, 3, 4, 4, 6, 8, 8, 12, 16], size=ntypes)
    # kinds: 0 pointer, 1 small int, 2 zero, 3 float, 4 string, 5 flags, 6 hash
    layout = rng.choice(7, size=(ntypes, widest), p=[0.34, 0.16, 0.30, 0.06, 0.06, 0.04, 0.04])
    floats = np.array([0.0, 1.0, 0.5, 2.0, 100.0, 3.25, -1.0, 0.1]).view(np.uint64)
    strings = np.frombuffer(b"name\0\0\0\0item_id\0value\0\0\0count\0\0\0"
                            b"default\0enabled\0parent\0\0", dtype=np.uint64)
    runs = rng.geometric(0.25, size=nwords // 8 + 1)
    obj_type = np.repeat(rng.integers(0, ntypes, runs.size), runs)
    sizes = type_size[obj_type]
    keep = np.searchsorted(np.cumsum(sizes), nwords) + 1
    obj_type, sizes = obj_type[:keep], sizes[:keep]
    starts = np.cumsum(sizes) - sizes
    total = int(starts[-1] + sizes[-1])
    obj = np.repeat(np.arange(sizes.size), sizes)
    field = np.arange(total) - starts[obj]
    kind = layout[obj_type[obj], field]
    # An object's address grows with its position; pointers go near it.
    here = heap + starts * 8
    target = (here[obj] + (rng.integers(-64, 64, total) * 16)).astype(np.uint64)
    small = rng.integers(0, 64, total).astype(np.uint64)
    words = np.select(
        [kind == 0, kind == 1, kind == 2, kind == 3, kind == 4, kind == 5],
        [target, small, np.uint64(0), floats[rng.integers(0, floats.size, total)],
         strings[rng.integers(0, strings.size, total)], np.uint64(0x8000000000000001)],
        default=rng.integers(0, 1 << 63, total, dtype=np.int64).astype(np.uint64))
    words[starts] = type_ptr[obj_type]
    words[starts + 1] = rng.integers(1, 8, sizes.size).astype(np.uint64)
    return words[:nwords]


def _windows(data, count, rng, align):
    """``count`` pages cut from ``data`` (a uint8 array) at random offsets."""
    last = (data.size - PAGE_SIZE) // align
    offsets = rng.integers(0, last + 1, count) * align
    view = np.lib.stride_tricks.sliding_window_view(data, PAGE_SIZE)
    return view[offsets]


class PageFactory:
    """Makes the 4 KiB page of any key (and version) from template pages.

    ``pages(keys, versions)`` returns an ``(n, 4096)`` uint8 array; the same
    key and version always give the same bytes.
    """

    def __init__(self, templates, template_class, class_names, weights, seed, source):
        self.templates = np.ascontiguousarray(templates, dtype=np.uint8)
        self.template_class = np.asarray(template_class, dtype=np.int64)
        self.class_names = tuple(class_names)
        self.seed = seed
        self.source = source
        counts = np.bincount(self.template_class, minlength=len(class_names))
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (len(class_names),) or (weights < 0).any() or weights.sum() <= 0:
            raise ValueError("class weights must be non-negative and not all zero")
        weights = np.where(counts > 0, weights, 0.0)
        weights = weights / weights.sum()
        # Class picked from the top 20 bits of the hash.
        self._thresholds = np.round(np.cumsum(weights) * (1 << 20)).astype(np.uint64)
        self._thresholds[-1] = 1 << 20
        self._class_start = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.uint64)
        self._class_count = np.maximum(counts, 1).astype(np.uint64)
        self.template_zero = ~self.templates.view(np.uint64).any(axis=1)
        self.weights = weights
        self.core = "compiled"
        self._builders = {}

    # -- construction ----------------------------------------------------

    @classmethod
    def synthetic(cls, seed=DEFAULT_SEED, templates=DEFAULT_TEMPLATES, mix=None):
        """The realistic mix: zero pages, text, pointer-rich data and
        incompressible data, in the shares of ``mix`` (default DEFAULT_MIX)."""
        mix = dict(DEFAULT_MIX if mix is None else mix)
        unknown = set(mix) - set(CLASSES)
        if unknown:
            raise ValueError("unknown page classes: %s" % ", ".join(sorted(unknown)))
        count = int(templates)
        if count < 1:
            raise ValueError("templates must be at least 1, not %d" % count)
        rng = _rng(seed, 1)
        corpus = _text_corpus(rng, max(1 << 18, min(count, 256) * PAGE_SIZE))
        heap = _heap_words(rng, max(1 << 17, min(count, 256) * WORDS)).view(np.uint8)
        noise = np.frombuffer(rng.bytes(max(1 << 20, count * 1024)), dtype=np.uint8)
        parts = [np.zeros((1, PAGE_SIZE), dtype=np.uint8),
                 _windows(corpus, count, rng, 1),
                 _windows(heap, count, rng, 8),
                 _windows(noise, count, rng, 1)]
        template_class = np.repeat(np.arange(len(CLASSES)), [len(p) for p in parts])
        return cls(np.concatenate(parts), template_class, CLASSES,
                   [mix.get(name, 0.0) for name in CLASSES], seed, "synthetic")

    @classmethod
    def from_file(cls, path, seed=DEFAULT_SEED, max_pages=1 << 16):
        """Templates from the 4 KiB pages of a file (the first ``max_pages``
        of them; a short last page is padded with zeros)."""
        size = os.path.getsize(path)
        if size == 0:
            raise ValueError("%s is empty: no pages to take" % path)
        pages = min(max_pages, -(-size // PAGE_SIZE))
        data = np.zeros(pages * PAGE_SIZE, dtype=np.uint8)
        with open(path, "rb") as f:
            got = f.readinto(memoryview(data))
        if got == 0:
            raise ValueError("%s: could not read any data" % path)
        templates = data.reshape(pages, PAGE_SIZE)
        return cls(templates, np.zeros(pages, dtype=np.int64), ("file",), [1.0], seed,
                   os.path.basename(path))

    # -- pages -----------------------------------------------------------

    def _hash(self, keys):
        keys = np.asarray(keys, dtype=np.uint64)
        return mix64(keys ^ np.uint64(mix64(np.array([self.seed & _M64]))[0]))

    def template_of(self, keys):
        """The template index of each key."""
        h = self._hash(keys)
        cls = np.searchsorted(self._thresholds, h >> np.uint64(44), side="right")
        return (self._class_start[cls]
                + (h & np.uint64(0xFFFFFFFF)) % self._class_count[cls]).astype(np.intp)

    def classes_of(self, keys):
        """The class index (into ``class_names``) of each key's page."""
        return self.template_class[self.template_of(keys)]

    def is_zero(self, keys):
        """Whether each key's page is zero-filled."""
        return self.template_zero[self.template_of(keys)]

    def pages(self, keys, versions=None):
        """The pages of ``keys`` (at ``versions``, default 0), as an
        ``(n, 4096)`` uint8 array."""
        return self.page_batch(keys, versions)[0]

    def page_batch(self, keys, versions=None, out=None):
        """``(pages, zero)``: the pages of ``keys`` as ``pages`` does, and a
        bool array that says which of them are zero-filled.  Built by the
        compiled page builder (in C, without the GIL) unless the factory was
        set to the pure one (see :meth:`use_core`); both give the same bytes.
        ``out``, if given, is a C-contiguous ``(len(keys), 4096)`` uint8
        array to build them in (and ``pages`` is ``out``)."""
        keys = np.ascontiguousarray(keys, dtype=np.uint64)
        if versions is not None:
            versions = np.ascontiguousarray(versions, dtype=np.uint64)
        if out is None:
            out = np.empty((len(keys), PAGE_SIZE), dtype=np.uint8)
        elif out.shape != (len(keys), PAGE_SIZE) or out.dtype != np.uint8 \
                or not out.flags.c_contiguous:
            raise ValueError("out: expected a C-contiguous (%d, 4096) uint8 array, got %s %r"
                             % (len(keys), out.dtype, out.shape))
        zero = np.empty(len(keys), dtype=bool)
        self.builder().build_pages(keys, versions, out, zero.view(np.uint8))
        return out, zero

    def verify(self, keys, pages, versions=None):
        """A bool array: which rows of ``pages`` differ from the pages of
        ``keys`` (at ``versions``)."""
        keys = np.ascontiguousarray(keys, dtype=np.uint64)
        if versions is not None:
            versions = np.ascontiguousarray(versions, dtype=np.uint64)
        differ = np.empty(len(keys), dtype=bool)
        self.builder().verify_pages(keys, versions, np.ascontiguousarray(pages),
                                    differ.view(np.uint8))
        return differ

    def use_core(self, core):
        """Build pages with the ``compiled`` or the ``pure`` page builder
        from now on; returns the factory."""
        if core not in ("compiled", "pure"):
            raise ValueError("unknown core %r (choose from compiled, pure)" % (core,))
        self.core = core
        return self

    def builder(self, core=None):
        """The page builder of ``core`` (default: the factory's) over this
        factory's templates.  Without the compiled one, the pure one."""
        core = core or self.core
        builder = self._builders.get(core)
        if builder is None:
            cls = None
            if core == "compiled":
                try:
                    from vswapfast._pages import PageBuilder as cls
                except ImportError:
                    cls = None
            if cls is None:
                from vswapfast.pure.pages import PageBuilder as cls
            seed_hash = int(mix64(np.array([self.seed & _M64], dtype=np.uint64))[0])
            builder = cls(self.templates, self._thresholds, self._class_start,
                          self._class_count, self.template_zero.astype(np.uint8), seed_hash)
            self._builders[core] = builder
        return builder

    def describe(self):
        if self.source == "synthetic":
            return "synthetic mix (%s)" % ", ".join(
                "%s %.0f%%" % (name, 100 * w) for name, w in zip(self.class_names, self.weights))
        return "pages of %s (%d templates)" % (self.source, len(self.templates))


# -- access pattern ---------------------------------------------------------

def default_trace(events=DEFAULT_EVENTS, keys=DEFAULT_KEYS, seed=DEFAULT_SEED):
    """The embedded default workload: a seeded hot/cold access pattern over
    ``keys`` page keys, ``events`` accesses long, as a uint64 key array."""
    events = int(events)
    keys = int(keys)
    if events < 1 or keys < 1:
        raise ValueError("the default workload needs at least one event and one key")
    rng = _rng(seed, 2)
    # Key values: scattered page numbers, as a process's pages are.
    values = np.unique(rng.integers(1 << 20, 1 << 32, keys * 2, dtype=np.uint64))
    values = rng.permutation(values)[:keys]
    while values.size < keys:          # only for tiny key counts
        values = np.unique(np.concatenate((values, rng.integers(1 << 20, 1 << 32, keys,
                                                                  dtype=np.uint64))))[:keys]
    phases = 12
    hot = max(1, keys * 3 // 20)                 # 15% of the keys
    shift = max(1, keys // 25)                   # drifts 4% per phase
    out = np.empty(events, dtype=np.int64)
    bounds = np.linspace(0, events, phases + 1).astype(np.int64)
    for phase in range(phases):
        lo, hi = int(bounds[phase]), int(bounds[phase + 1])
        n = hi - lo
        if n == 0:
            continue
        start = phase * shift
        # Skewed inside the hot set: its head is hotter than its tail.
        inside = np.minimum((rng.pareto(1.2, n) * hot / 8).astype(np.int64), hot - 1)
        ids = (start + inside) % keys
        cold = rng.random(n) < 0.12
        ids[cold] = rng.integers(0, keys, int(cold.sum()))
        if n > 20 and phase % 3 == 2:          # a sequential scan
            length = min(n // 10, keys // 5)
            at = int(rng.integers(0, n - length))
            first = int(rng.integers(0, keys))
            ids[at:at + length] = (first + np.arange(length)) % keys
        out[lo:hi] = ids
    return values[out]
