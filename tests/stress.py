"""Stress test of a vswapfast core's thread safety.

    python tests/stress.py --threads N --ops M --seed S [--core compiled|pure]
                           [--index vswap|rbtree|all] [--leak-check]

or, from Python, ``run(core_modules, threads, ops, seed, index)``, which
returns a dict of counts, timings and the outcome of the checks.

Every thread runs ``ops`` random operations, drawn from its own seeded
generator, over entries of its own (each thread models them and checks
every result exactly) and entries that all threads share (a result must be
one of the pages or objects ever stored there, or nothing).  The areas:

- ``pool``: a zswap pool with exclusive loads, a small swap file and a small
  ``max_pool_bytes``, so that the limit, writeback from the store path,
  ``shrink`` and a full swap file all happen; some groups of entries also
  have a 4096-byte folio in the swap cache;
- ``pool2``: a pool with no swap file (writeback disabled, so incompressible
  pages are refused) and non-exclusive loads;
- ``plain``: a space with no pool, for the VSwap API: Python objects as
  zswap entries and folios, shadows, slots, integer handles, large ``nr``;
- ``index``: when the core has ``ZswapIndex``, one of the chosen design.

Batch calls (``alloc_many``, ``free_many``, ``zswap_entry_*_many``,
``store_many``, ``load_many``, ``invalidate_many``) are used where the core
has them.  Once every thread has finished, the final checks walk it all:
every entry owned by one thread only and ``entries()`` exactly the owned and
shared ones; every private page reading back identical; the pool statistics
against the entries found (and, for the "vswap" index, against the
``ZswapEntryView`` of every descriptor); swap-file slots against the
descriptors that name one; ``sys.getrefcount`` of every object stored
through the API; and, after invalidating and freeing everything, empty pools,
spaces and swap file with every reference given back.

While the workers run, one more thread keeps calling what looks at a space
or pool as a whole (``zswap_empty``, ``len``, ``entries``, ``stats``), so
that those reads meet every kind of change; under ThreadSanitizer that is
where unlocked reads show up.

``recycle(core_modules, index, rounds, seed)`` is a narrower check that the
command runs after each design: clusters freed by one thread and taken again
by another at once must come with nothing in their entries.

The operations each thread runs are fixed by the seed; how the threads
interleave is not.  The command prints one JSON line per run and exits with
1 if any check failed (the failures, with their stacks, go to stderr).
"""

import argparse
import array
import bisect
import collections
import functools
import gc
import glob
import importlib
import importlib.util
import json
import os
import random
import re
import shutil
import struct
import sys
import tempfile
import threading
import time
import traceback
import types

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

if __name__ == "__main__" and os.path.isdir(os.path.join(ROOT, "vswapfast")):
    # Run as a script from a checkout: test that checkout's package if its
    # extension is built there (or nothing else is installed).
    if (glob.glob(os.path.join(ROOT, "vswapfast", "_vswap*.so"))
            or importlib.util.find_spec("vswapfast") is None):
        sys.path.insert(1, ROOT)

from vswapfast.errors import (  # noqa: E402
    NoPageError, SwapCacheError, SwapFileFullError,
)
from vswapfast.zswap_entry import ZswapEntryView  # noqa: E402
from vswapfast.compressors import COMPRESSORS  # noqa: E402

try:
    from vswapfast import batch as _batch
except ImportError:      # a checkout from before the batch operations
    _batch = None

try:
    import numpy
except ImportError:      # numpy only adds buffer types to the batch calls
    numpy = None

PAGE = 4096
ZERO_PAGE = bytes(PAGE)

CORE_MODULES = {
    # name: (VSwap's module, Zswap's module, SwapFile's module)
    "compiled": ("vswapfast._vswap", "vswapfast._zswap", "vswapfast._swapfile"),
    "pure": ("vswapfast.pure", "vswapfast.pure", "vswapfast.pure"),
}
#: Where else a core's ZswapIndex may live.
INDEX_MODULES = {
    "compiled": ("vswapfast._zswap_index",),
    "pure": ("vswapfast.pure.zswap", "vswapfast.pure.zswap_index"),
}
INDEX_DESIGNS = ("vswap", "rbtree")

# Batch statuses (vswapfast.batch); unused when the core has no batch calls.
OK = getattr(_batch, "BATCH_OK", 0)
EMPTY = getattr(_batch, "BATCH_EMPTY", 1)
FOREIGN = getattr(_batch, "BATCH_FOREIGN", 2)
REJECTED = getattr(_batch, "BATCH_REJECTED", 3)
INVALID = getattr(_batch, "BATCH_INVALID", -1)
BAD_HANDLE = getattr(_batch, "BATCH_BAD_HANDLE", -2)
HANDLE_LIMIT = getattr(_batch, "HANDLE_LIMIT", 1 << 62)

#: Handles stored in shared entries: SHARED_HANDLES + k.
SHARED_HANDLES = 1 << 61
#: Most groups of entries a thread keeps in one area.
MAX_GROUPS = 12
#: Shared entries per area.
SHARED_ENTRIES = 64
#: Versions of the page of each shared pool entry.
SHARED_VERSIONS = 4
#: The 16 bytes at the start of a page that make it unique.
TAG = struct.Struct("<QQ")


class StressFailure(AssertionError):
    """A result that the model of the entries does not allow."""


def live_clusters(space):
    """The ids of the space's live clusters (its entries are all freed)."""
    found = []
    cid = 1
    while len(found) < space.nr_clusters and cid <= space.max_clusters:
        try:
            space.cluster_info(cid)
            found.append(cid)
        except KeyError:
            pass
        cid += 1
    return found


def check(cond, msg, *args):
    if not cond:
        raise StressFailure(msg % args if args else msg)


class Token:
    """An object to store through the VSwap API.

    Every Token equals every other, so a core that compares by ``==`` where
    the contract says identity is caught."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __eq__(self, other):
        return isinstance(other, Token)

    def __hash__(self):
        return 0

    def __repr__(self):
        return "Token(%r)" % (self.name,)


class _Unknown:
    """Page state: no zswap entry; the slot holds an older page or none."""

    def __repr__(self):
        return "UNKNOWN"


UNKNOWN = _Unknown()


# ---------------------------------------------------------------------------
# Cores


def load_core(core_modules):
    """A core as a namespace: ``name``, ``VSwap``, ``Zswap``, ``SwapFile`` and
    ``ZswapIndex`` (None when the core has none).

    ``core_modules`` is a core's name ("compiled" or "pure"), a tuple of the
    three modules (or their names) that hold VSwap, Zswap and SwapFile, or
    one module or namespace that holds all three.
    """
    if isinstance(core_modules, types.SimpleNamespace) and hasattr(core_modules, "_stress_core"):
        return core_modules
    if isinstance(core_modules, str):
        core_modules = CORE_MODULES[core_modules]
    elif not isinstance(core_modules, (tuple, list)):
        core_modules = (core_modules,) * 3
    vmod, zmod, smod = (importlib.import_module(m) if isinstance(m, str) else m
                        for m in core_modules)
    found = re.search(r"core=(\w+)", repr(vmod.VSwap()))
    name = found.group(1) if found else "unknown"
    return types.SimpleNamespace(
        _stress_core=True,
        name=name,
        VSwap=vmod.VSwap,
        Zswap=zmod.Zswap,
        SwapFile=smod.SwapFile,
        ZswapIndex=_find_zswap_index(name, vmod.VSwap, (zmod, vmod)),
    )


def _find_zswap_index(name, vswap_class, modules):
    """The core's ZswapIndex class, or None (a core from before it)."""
    candidates = [getattr(m, "ZswapIndex", None) for m in modules]
    for module_name in INDEX_MODULES.get(name, ()):
        try:
            candidates.append(getattr(importlib.import_module(module_name), "ZswapIndex", None))
        except ImportError:
            pass
    for cls in candidates:
        if cls is None:
            continue
        try:
            cls(vswap_class(), "vswap")
        except TypeError:           # another core's
            continue
        return cls
    return None


def make_pool(core, space, swapfile, index, **settings):
    """``Zswap(space, swapfile, index=index, **settings)``; a core from before
    the index designs is taken to have the "vswap" design only."""
    try:
        return core.Zswap(space, swapfile, index=index, **settings)
    except TypeError as exc:
        if index != "vswap" or "index" not in str(exc):
            raise
    return core.Zswap(space, swapfile, **settings)


def index_designs(core_modules):
    """The zswap index designs that a core's Zswap accepts."""
    core = load_core(core_modules)
    found = []
    for design in INDEX_DESIGNS:
        space = core.VSwap()
        try:
            pool = make_pool(core, space, None, design, max_pool_bytes=1 << 20)
        except (TypeError, ValueError):
            continue
        pool.close()
        found.append(design)
    return found


def has_batch(core):
    """Which batch calls a core has (looked up, so the test runs before
    they exist)."""
    if _batch is None:
        return set()
    names = set()
    for cls, attrs in ((core.VSwap, ("alloc_many", "free_many", "zswap_entry_store_many",
                                     "zswap_entry_load_many", "zswap_entry_erase_many")),
                       (core.Zswap, ("store_many", "load_many", "invalidate_many"))):
        names.update(a for a in attrs if hasattr(cls, a))
    return names


# ---------------------------------------------------------------------------
# Pages


def _real_pages(count):
    """benchmarks/pages.py's real_pages(count), or [] if it cannot be used."""
    path = os.path.join(ROOT, "benchmarks", "pages.py")
    if not os.path.isfile(path):
        return []
    try:
        spec = importlib.util.spec_from_file_location("_stress_real_pages", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return [p for p in module.real_pages(count) if len(p) == PAGE and p != ZERO_PAGE]
    except Exception:        # the generated pages are enough
        return []


_WORDS = ("swap", "entry", "cluster", "descriptor", "folio", "shadow", "slot",
          "zswap", "pool", "compress", "page", "lock", "the", "of", "a", "and",
          "writeback", "LRU", "referenced", "xarray", "tree", "spin", "free",
          "alloc", "0x1f00", "return", "struct", "static", "inline", "void")


@functools.lru_cache(maxsize=None)
def base_pages(seed):
    """Contents to build pages from: {kind: [page, ...]}.

    Kinds: "real" (files on this machine, if benchmarks/pages.py can read
    them), "text", "pattern" (a short pattern repeated), "sparse" (some
    random bytes, then zeros) and "random" (LZ4 cannot make it smaller).
    Everything but "real" is fixed by the seed.
    """
    rng = random.Random(seed ^ 0x5eed)
    kinds = {"text": [], "pattern": [], "sparse": [], "random": []}
    for _ in range(32):
        words = []
        size = 0
        while size <= PAGE:
            w = rng.choice(_WORDS)
            words.append(w)
            size += len(w) + 1
        kinds["text"].append(" ".join(words).encode()[:PAGE])
        pattern = rng.randbytes(rng.choice((1, 3, 8, 24, 64, 200, 512)))
        kinds["pattern"].append((pattern * (PAGE // len(pattern) + 1))[:PAGE])
        k = rng.randrange(64, 2048)
        kinds["sparse"].append(rng.randbytes(k) + bytes(PAGE - k))
        kinds["random"].append(rng.randbytes(PAGE))
    real = _real_pages(128)
    if real:
        kinds["real"] = real
    assert all(len(p) == PAGE for pages in kinds.values() for p in pages)
    return kinds


#: How often each kind is drawn; zero pages are 1 in 10.
_KIND_WEIGHTS = (("zero", 10), ("random", 10), ("text", 20), ("pattern", 15),
                 ("sparse", 15), ("real", 30))


class PageMaker:
    """Unique pages: a base page with a (thread, counter) tag in its first
    16 bytes (except zero pages, which stay zero)."""

    def __init__(self, seed, rng, who):
        self.kinds = base_pages(seed)
        table = [(k, w) for k, w in _KIND_WEIGHTS if k == "zero" or k in self.kinds]
        self.names = [k for k, _ in table]
        self.cum = list(_cumulative([w for _, w in table]))
        self.rng = rng
        self.who = who
        self.counter = 0

    def folio(self, m):
        """``m`` (page, incompressible) pairs for one folio: all zero pages,
        or none.  A folio that is zero as a whole takes the ZERO backing; a
        zero page inside any other folio is compressed with it, which the
        checks (page == ZERO_PAGE means ZERO) do not model."""
        first = self.new()
        if first[0] == ZERO_PAGE:
            return [first] * m
        made = [first]
        while len(made) < m:
            page = self.new()
            if page[0] != ZERO_PAGE:
                made.append(page)
        return made

    def new(self):
        """(page, incompressible)."""
        kind = self.names[bisect.bisect_right(self.cum, self.rng.random() * self.cum[-1])]
        if kind == "zero":
            return ZERO_PAGE, False
        self.counter += 1
        base = self.rng.choice(self.kinds[kind])
        return TAG.pack(self.who, self.counter) + base[TAG.size:], kind == "random"


def _cumulative(weights):
    total = 0
    for w in weights:
        total += w
        yield total


# ---------------------------------------------------------------------------
# Shared state


class Context:
    """Everything the threads share: cores, spaces, pools, the owner
    registry, shared entries and the objects stored through the API."""

    def __init__(self, core, threads, seed, index, tmpdir):
        self.core = core
        self.seed = seed
        self.index = index
        self.batch = has_batch(core)
        self.stop = threading.Event()
        rng = random.Random(seed)

        # The pool: exclusive loads, a small swap file, a small limit, and
        # clusters of 64 descriptors, which empty (and are released and
        # their ids handed out again, often to another thread) all the time.
        self.pspace = core.VSwap(cluster_shift=6)
        self.sf = core.SwapFile(os.path.join(tmpdir, "swapfile"),
                                (32 * threads + 65) * PAGE)
        self.pool_limits = (48 * 1024 * threads, 96 * 1024 * threads)
        # The seed picks the pools' compressor in turn, so that runs with
        # consecutive seeds cover each compressor's per-thread contexts.
        self.compressor = COMPRESSORS[seed % len(COMPRESSORS)]
        # A rejected store waits for the shrink worker it woke: a run with
        # one thread stays deterministic, and the worker still runs beside
        # the other threads of a larger run.
        self.pool = make_pool(core, self.pspace, self.sf, index,
                              max_pool_bytes=self.pool_limits[0],
                              accept_threshold_percent=80.0, compressor=self.compressor,
                              wait_for_shrink_worker=True)
        # The second pool: no swap file, non-exclusive loads.
        self.qspace = core.VSwap()
        self.pool2 = make_pool(core, self.qspace, None, index,
                               max_pool_bytes=128 * 1024 * threads, writeback=False,
                               exclusive_loads=False, compressor=self.compressor)
        # A space without a pool, for the VSwap API itself.
        self.rspace = core.VSwap()
        # A zswap index of the design under test, on a space of its own.
        self.ispace = self.zindex = None
        if core.ZswapIndex is not None:
            self.ispace = core.VSwap()
            self.zindex = core.ZswapIndex(self.ispace, index)

        self.spaces = {"pool": self.pspace, "pool2": self.qspace, "plain": self.rspace}
        if self.ispace is not None:
            self.spaces["index"] = self.ispace

        # Who owns which entry: {(area, entry): thread}.
        self.owner_lock = threading.Lock()
        self.owner = {}

        # Objects stored through the API, with their reference counts now.
        self.tokens = [Token("t%d" % i) for i in range(48)]
        self.stokens = [Token("s%d" % i) for i in range(16)]
        self.folio_pages = []
        kinds = base_pages(seed)
        for i in range(8):
            base = kinds["text"][i]
            self.folio_pages.append(b"".join([TAG.pack(0, 1 << 40 | i), base[TAG.size:]]))
        self.refs_base = {id(o): sys.getrefcount(o) for o in self.stored_objects()}

        # Shared entries: one chunk per area, allocated before the threads.
        self.sbase = self.pspace.alloc(SHARED_ENTRIES)
        self.sversions = []
        self.sallowed = []
        maker = PageMaker(seed, rng, 0)
        for i in range(SHARED_ENTRIES):
            versions = [maker.new()[0] for _ in range(SHARED_VERSIONS)]
            self.sversions.append(versions)
            self.sallowed.append(set(versions))
        self.rsbase = self.rspace.alloc(SHARED_ENTRIES)
        self.isbase = self.ispace.alloc(SHARED_ENTRIES) if self.ispace is not None else None
        self.shared = {"pool": range(self.sbase, self.sbase + SHARED_ENTRIES),
                       "pool2": range(0),
                       "plain": range(self.rsbase, self.rsbase + SHARED_ENTRIES)}
        if self.ispace is not None:
            self.shared["index"] = range(self.isbase, self.isbase + SHARED_ENTRIES)

    def stored_objects(self):
        return self.tokens + self.stokens + self.folio_pages

    def close(self):
        for pool in (self.pool, self.pool2):
            try:
                pool.close()
            except ValueError:
                pass
        self.sf.close()


# ---------------------------------------------------------------------------
# The threads


class ZModel:
    """One thread's private entries of a space whose zswap entries it sets
    through ``api`` (the VSwap itself, or a ZswapIndex).

    A zswap entry is modelled as None, ("h", handle) or ("o", token index).
    """

    def __init__(self, area, space, api, shared):
        self.area = area
        self.space = space
        self.api = api
        self.shared = shared
        self.groups = {}        # start -> nr
        self.z = {}             # entry -> state


class Worker(threading.Thread):
    def __init__(self, ctx, index, ops):
        super().__init__(name="stress-%d" % index, daemon=True)
        self.ctx = ctx
        self.index = index
        self.nops = ops
        self.rng = random.Random(ctx.seed * 1000003 + index + 1)
        self.pages = PageMaker(ctx.seed, self.rng, index + 1)
        self.counts = collections.Counter()
        self.error = None
        self.recent = collections.deque(maxlen=12)
        self.handle_counter = 0
        self.owned = {area: set() for area in ctx.spaces}

        # pool: groups {start: nr}; per entry the page read() must give (bytes,
        # None for no page, or UNKNOWN), whether the pool may hold it, every
        # page stored there, and the folio index or None.
        self.pgroups = {}
        self.ppage = {}
        self.pinz = {}
        self.phist = {}
        self.pfolio = {}
        # pool2: groups, and the page each entry holds (or None), exactly.
        self.qgroups = {}
        self.qpage = {}
        # plain: zswap entries, swap cache ((f, token) / (s, shadow) / None)
        # and slots.
        self.zr = ZModel("plain", ctx.rspace, ctx.rspace, ctx.shared["plain"])
        self.rcache = {}
        self.rslot = {}
        self.zi = None
        if ctx.zindex is not None:
            self.zi = ZModel("index", ctx.ispace, ctx.zindex, ctx.shared["index"])
        self.ops = self._op_table()

    # -- the table of operations ---------------------------------------------

    def _op_table(self):
        """[(weight, name, operation)] for what this core has."""
        b = self.ctx.batch
        table = [
            (8, self.p_alloc), (10, self.p_store), (6, self.p_load), (10, self.p_read),
            (4, self.p_invalidate), (4, self.p_free), (3, self.p_shrink),
            (1, self.p_folio_del), (1, self.p_limit), (2, self.p_api), (1, self.p_slots),
            (4, self.s_store), (2, self.s_store_range), (3, self.s_load),
            (4, self.s_read), (2, self.s_invalidate),
            (4, self.q_alloc), (5, self.q_store), (4, self.q_load), (3, self.q_read),
            (2, self.q_invalidate), (2, self.q_free),
            (6, self.r_cache), (2, self.r_slot), (3, self.walk),
        ]
        table = [(w, op.__name__, op) for w, op in table]
        wanted = [("store_many", 3, (self.p_store_many, self.q_store_many, self.s_store_many)),
                  ("load_many", 2, (self.p_load_many, self.q_load_many, self.s_load_many)),
                  ("invalidate_many", 1, (self.p_invalidate_many, self.q_invalidate_many,
                                          self.s_invalidate_many))]
        for name, w, ops in wanted:
            if name in b:
                table += [(w, op.__name__, op) for op in ops]
        if "alloc_many" in b and "free_many" in b:
            table.append((3, "p_alloc_many", self.p_alloc_many))
            if "load_many" in b and "store_many" in b:
                table.append((2, "p_churn", self.p_churn))
        zops = [(4, self.z_alloc), (2, self.z_free), (4, self.z_store), (4, self.z_load),
                (2, self.z_erase), (3, self.z_shared)]
        zbatch = [("alloc_many", 2, self.z_alloc_many), ("free_many", 2, self.z_free_many),
                  ("zswap_entry_store_many", 3, self.z_store_many),
                  ("zswap_entry_load_many", 2, self.z_load_many),
                  ("zswap_entry_erase_many", 2, self.z_erase_many)]
        for zm in (self.zr, self.zi):
            if zm is None:
                continue
            ops = list(zops)
            for name, w, op in zbatch:
                if name in ("alloc_many", "free_many"):
                    if zm.area == "plain" and name in b:
                        ops.append((w, op))
                elif hasattr(zm.api, name) and (zm.area != "plain" or name in b):
                    ops.append((w, op))
            table += [(w, "%s(%s)" % (op.__name__, zm.area), functools.partial(op, zm))
                      for w, op in ops]
        self.cum = list(_cumulative([w for w, _, _ in table]))
        return [(name, op) for _, name, op in table]

    def run(self):
        try:
            for _ in range(self.nops):
                if self.ctx.stop.is_set():
                    break
                name, op = self.ops[bisect.bisect_right(self.cum,
                                                         self.rng.random() * self.cum[-1])]
                self.recent.append(name)
                op()
        except BaseException:            # reported by run(), with the stack
            self.error = "%s, after %s:\n%s" % (self.name, list(self.recent),
                                                traceback.format_exc())
            self.ctx.stop.set()

    # -- helpers -------------------------------------------------------------

    def where(self, e):
        return "%s: entry %#x" % (self.name, e)

    def register(self, area, starts, nr):
        """Record that this thread owns [s, s + nr) for every s in ``starts``."""
        ctx = self.ctx
        mine = self.owned[area]
        with ctx.owner_lock:
            for s in starts:
                for x in range(s, s + nr):
                    other = ctx.owner.get((area, x))
                    check(other is None, "%s: %s entry %#x handed out while thread %s owns it",
                          self.name, area, x, other)
                    check(x not in ctx.shared[area], "%s: shared %s entry %#x handed out",
                          self.name, area, x)
                    ctx.owner[(area, x)] = self.index
                    mine.add(x)

    def unregister(self, area, start, nr):
        """Before freeing: afterwards another thread may be given the entries."""
        ctx = self.ctx
        mine = self.owned[area]
        with ctx.owner_lock:
            for x in range(start, start + nr):
                del ctx.owner[(area, x)]
                mine.discard(x)

    def pick_group(self, groups):
        start = self.rng.choice(list(groups))
        return start, groups[start]

    def pick_range(self, groups):
        """(start, nr, off, m): a sub-range [start + off, start + off + m) of a group."""
        start, nr = self.pick_group(groups)
        off = self.rng.randrange(nr)
        m = 1 if self.rng.random() < 0.6 else self.rng.randint(1, nr - off)
        return start, nr, off, m

    def pick_entries(self, groups, limit=16):
        """Distinct entries of several groups, sorted or shuffled."""
        pool = []
        for start in self.rng.sample(list(groups), min(len(groups), 3)):
            pool.extend(range(start, start + groups[start]))
        chosen = self.rng.sample(pool, min(len(pool), self.rng.randint(1, limit)))
        if self.rng.random() < 0.5:
            chosen.sort()
        return chosen

    def entry_buffer(self, values, narrow_ok=True):
        """An integer buffer of ``values``, of one of the types the batch
        calls take."""
        r = self.rng.random()
        if numpy is not None and r < 0.3:
            dtypes = [numpy.uint64, numpy.int64]
            if narrow_ok and all(0 <= v < 1 << 31 for v in values):
                dtypes.append(numpy.int32)
            return numpy.array(values, dtype=self.rng.choice(dtypes))
        if r < 0.5:
            return memoryview(array.array("Q", values))
        if r < 0.6 and all(v < 1 << 63 for v in values):
            return array.array("q", values)
        return array.array("Q", values)

    def out_buffer(self, n):
        """A writable uint64 buffer of ``n`` zeros, and a way to read it."""
        if numpy is not None and self.rng.random() < 0.3:
            return numpy.zeros(n, dtype=numpy.uint64)
        return array.array("Q", bytes(8 * n))

    def new_handle(self):
        self.handle_counter += 1
        return (self.index + 1) << 40 | self.handle_counter

    def pool_read(self, pool, e):
        """pool.read(e), into new bytes or a buffer; None for NoPageError."""
        try:
            if self.rng.random() < 0.3:
                out = bytearray(PAGE)
                got = pool.read(e, out)
                check(got is out, "%s: read did not return out", self.where(e))
                return bytes(out)
            return pool.read(e)
        except NoPageError:
            return None

    def pool_load(self, pool, e):
        if self.rng.random() < 0.3:
            out = bytearray(b"\xa5" * PAGE)
            got = pool.load(e, out)
            if got is None:
                check(out == b"\xa5" * PAGE, "%s: a load that found nothing wrote out",
                      self.where(e))
                return None
            check(got is out, "%s: load did not return out", self.where(e))
            return bytes(out)
        return pool.load(e)

    # -- pool: private entries -------------------------------------------------

    def p_alloc(self):
        ctx = self.ctx
        if len(self.pgroups) >= MAX_GROUPS:
            return self.p_free()
        nr = self.rng.choice((1, 1, 1, 2, 4, 8, 16))
        fk = None
        if self.rng.random() < 0.15:
            fk = self.rng.randrange(len(ctx.folio_pages))
            e = ctx.pspace.alloc(nr, ctx.folio_pages[fk])
        else:
            e = ctx.pspace.alloc(nr)
        self.counts["allocs"] += 1
        check(e % nr == 0, "%s: alloc(%d) not aligned", self.where(e), nr)
        self.register("pool", (e,), nr)
        self.p_new_group(e, nr, fk)
        if self.rng.random() < 0.85:
            self.p_store_pages(e, nr)

    def p_churn(self):
        """Whole clusters allocated, filled and freed over and over with the
        batch calls (no GIL): the ids go back and forth between threads, so a
        free that has not quite finished meets an allocation of the same
        entries by another thread.  Fresh entries must hold nothing."""
        ctx = self.ctx
        nr = ctx.pspace.cluster_size
        marker = b"\x5a" * PAGE
        for _ in range(self.rng.randint(1, 3)):
            starts = list(ctx.pspace.alloc_many(2, nr))
            fresh = [x for s in starts for x in range(s, s + nr)]
            buf = self.entry_buffer(fresh)
            out = bytearray(marker * len(fresh))
            st = list(ctx.pool.load_many(buf, out))
            found = [x for x, s in zip(fresh, st) if s != EMPTY]
            check(not found, "%s: %d fresh entries from alloc_many hold a page (the first "
                  "%#x)", self.name, len(found), found[0] if found else 0)
            self.register("pool", starts, nr)
            page = self.pages.new()[0]
            st = list(ctx.pool.store_many(buf, page * len(fresh)))
            check(all(s in (OK, REJECTED) for s in st), "%s: store_many %r", self.name, st)
            self.unregister("pool", starts[0], nr)
            self.unregister("pool", starts[1], nr)
            st = list(ctx.pspace.free_many(array.array("Q", starts), nr))
            check(st == [OK, OK], "%s: free_many statuses %r", self.name, st)
            self.counts["batch_calls"] += 4
            self.counts["allocs"] += 2
            self.counts["frees"] += 2
            self.counts["stores"] += len(fresh)
            self.counts["loads"] += len(fresh)

    def p_new_group(self, e, nr, fk):
        self.pgroups[e] = nr
        for x in range(e, e + nr):
            self.ppage[x] = None
            self.pinz[x] = False
            self.phist[x] = []
            self.pfolio[x] = fk

    def p_alloc_many(self):
        """Groups allocated and freed by the batch calls, which run without
        the GIL, so that they race with everything else the pool does."""
        ctx = self.ctx
        if len(self.pgroups) >= MAX_GROUPS or (self.pgroups and self.rng.random() < 0.5):
            nr = self.rng.choice(sorted(set(self.pgroups.values())))
            starts = [s for s, n in self.pgroups.items() if n == nr]
            starts = self.rng.sample(starts, min(len(starts), self.rng.randint(1, 3)))
            for s in starts:
                self.unregister("pool", s, nr)
            st = list(ctx.pspace.free_many(self.entry_buffer(starts), nr))
            self.counts["batch_calls"] += 1
            self.counts["frees"] += len(starts)
            check(st == [OK] * len(starts), "%s: free_many statuses %r", self.name, st)
            for s in starts:
                self.p_forget_group(s, nr)
            return
        count = self.rng.randint(1, 3)
        nr = self.rng.choice((1, 8, 64, 64))
        starts = list(ctx.pspace.alloc_many(count, nr))
        # A fresh entry holds nothing, whoever held it before: look at once,
        # while a free of the same entries by another thread may still be
        # finishing.
        fresh = [x for s in starts for x in range(s, s + nr)]
        if "load_many" in ctx.batch:
            marker = b"\x5a" * PAGE
            out = bytearray(marker * len(fresh))
            st = list(ctx.pool.load_many(self.entry_buffer(fresh), out))
            self.counts["batch_calls"] += 1
            self.counts["loads"] += len(fresh)
            found = [x for x, s in zip(fresh, st) if s != EMPTY]
            check(not found, "%s: %d fresh entries from alloc_many hold a page (the first "
                  "%#x)", self.name, len(found), found[0] if found else 0)
        self.counts["batch_calls"] += 1
        self.counts["allocs"] += count
        check(len(starts) == count and all(s % nr == 0 for s in starts),
              "%s: alloc_many(%d, %d) gave %r", self.name, count, nr, starts)
        self.register("pool", starts, nr)
        for e in starts:
            self.p_new_group(e, nr, None)
        if "store_many" in ctx.batch and self.rng.random() < 0.8:
            pages = [self.pages.new()[0] for _ in fresh]
            st = list(ctx.pool.store_many(self.entry_buffer(fresh), b"".join(pages)))
            self.counts["batch_calls"] += 1
            self.counts["stores"] += len(fresh)
            for x, p, s in zip(fresh, pages, st):
                check(s in (OK, REJECTED), "%s: store_many status %d", self.where(x), s)
                self.p_stored(x, p if s == OK else None)

    def p_store_pages(self, e, m):
        pages = [p for p, _ in self.pages.folio(m)]
        ok = self.ctx.pool.store(e, pages[0] if m == 1 else b"".join(pages))
        self.counts["stores"] += 1
        check(ok is True or ok is False, "%s: store returned %r", self.where(e), ok)
        for i, p in enumerate(pages):
            self.p_stored(e + i, p if ok else None)

    def p_stored(self, x, page):
        """The outcome of a store of ``page`` at ``x`` (None: refused)."""
        if page is not None:
            self.ppage[x] = page
            self.pinz[x] = True
            self.phist[x].append(page)
        else:
            self.counts["rejected"] += 1
            self.ppage[x] = UNKNOWN if self.phist[x] else None
            self.pinz[x] = False

    def p_store(self):
        if not self.pgroups:
            return self.p_alloc()
        start, nr, off, m = self.pick_range(self.pgroups)
        self.p_store_pages(start + off, m)

    def p_check_read(self, x):
        """read(x) gives what the model says; resolves UNKNOWN."""
        ctx = self.ctx
        got = self.pool_read(ctx.pool, x)
        self.counts["reads"] += 1
        fk = self.pfolio[x]
        if fk is not None:
            check(got == ctx.folio_pages[fk], "%s: read did not give the folio", self.where(x))
            return
        want = self.ppage[x]
        if want is UNKNOWN:
            if got is None:
                check(ctx.pspace.get_slot(x) == 0, "%s: NoPageError with a slot", self.where(x))
            else:
                check(got in self.phist[x], "%s: read gave a page never stored there",
                      self.where(x))
            self.ppage[x] = got
        elif want is None:
            check(got is None, "%s: read gave a page where there is none", self.where(x))
        else:
            check(got == want, "%s: read gave the wrong page (%s)", self.where(x),
                  "none" if got is None else "another")

    def p_read(self):
        if not self.pgroups:
            return self.p_alloc()
        start, nr, off, m = self.pick_range(self.pgroups)
        for x in range(start + off, start + off + m):
            self.p_check_read(x)

    def p_load_one(self, x):
        ctx = self.ctx
        got = self.pool_load(ctx.pool, x)
        self.counts["loads"] += 1
        if not self.pinz[x]:
            check(got is None, "%s: load found a page after it was dropped", self.where(x))
        elif got is None:
            # Written back meanwhile: the slot has the page.
            check(ctx.pspace.get_slot(x) != 0, "%s: page lost (no pool entry, no slot)",
                  self.where(x))
            self.pinz[x] = False
            self.p_check_read(x)
        else:
            check(got == self.ppage[x], "%s: load gave the wrong page", self.where(x))
            self.ppage[x] = UNKNOWN
            self.pinz[x] = False

    def p_load(self):
        if not self.pgroups:
            return self.p_alloc()
        start, nr, off, m = self.pick_range(self.pgroups)
        if self.rng.random() < 0.3:
            # Swap-in: load the whole group, then free it.
            for x in range(start, start + nr):
                self.p_load_one(x)
            return self.p_free_group(start, nr)
        for x in range(start + off, start + off + m):
            self.p_load_one(x)

    def p_invalidate(self):
        ctx = self.ctx
        if not self.pgroups:
            return self.p_alloc()
        start, nr, off, m = self.pick_range(self.pgroups)
        e = start + off
        held = [x for x in range(e, e + m) if self.pinz[x]]
        n = ctx.pool.invalidate(e, m)
        self.counts["invalidates"] += 1
        check(0 <= n <= len(held), "%s: invalidate(%d) gave %d, at most %d held",
              self.where(e), m, n, len(held))
        if len(held) == 1 and n == 0:
            # It was written back first: the slot has the page.
            x = held[0]
            check(ctx.pspace.get_slot(x) != 0, "%s: page lost", self.where(x))
            self.pinz[x] = False
            self.p_check_read(x)
            return
        for x in held:
            self.pinz[x] = False
            self.ppage[x] = UNKNOWN

    def p_free_group(self, start, nr):
        self.unregister("pool", start, nr)
        self.ctx.pspace.free(start, nr)
        self.counts["frees"] += 1
        self.p_forget_group(start, nr)

    def p_forget_group(self, start, nr):
        del self.pgroups[start]
        for x in range(start, start + nr):
            del self.ppage[x], self.pinz[x], self.phist[x], self.pfolio[x]

    def p_free(self):
        if not self.pgroups:
            return
        self.p_free_group(*self.pick_group(self.pgroups))

    def p_shrink(self):
        k = self.rng.randint(1, 8)
        w = self.ctx.pool.shrink(k)
        self.counts["shrinks"] += 1
        self.counts["shrink_written"] += w
        check(0 <= w <= k, "%s: shrink(%d) wrote %d", self.name, k, w)

    def p_folio_del(self):
        """Take a group's folio out of the swap cache: reads then find the
        pool entry or the slot."""
        ctx = self.ctx
        with_folio = [s for s in self.pgroups if self.pfolio[s] is not None]
        if not with_folio:
            return
        start = self.rng.choice(with_folio)
        nr = self.pgroups[start]
        fk = self.pfolio[start]
        shadow = self.rng.choice((None, self.rng.randrange(1 << 62)))
        ctx.pspace.swap_cache_del_folio(start, ctx.folio_pages[fk], nr, shadow)
        self.counts["swap_cache_ops"] += 1
        for x in range(start, start + nr):
            self.pfolio[x] = None
        self.p_check_read(start)

    def p_api(self):
        """The VSwap API on pool entries, which the "vswap" index keeps in
        the descriptors: a load gives a view, an erase frees the entry."""
        ctx = self.ctx
        if ctx.index != "vswap" or not self.pgroups:
            return self.p_read()
        start, nr, off, m = self.pick_range(self.pgroups)
        x = start + off
        erase = self.rng.random() < 0.4
        if erase:
            got = ctx.pspace.zswap_entry_erase(x)
        else:
            got = ctx.pspace.zswap_entry_load(x)
        self.counts["zswap_entry_ops"] += 1
        if got is None:
            if self.pinz[x]:
                check(ctx.pspace.get_slot(x) != 0, "%s: page lost", self.where(x))
                self.pinz[x] = False
                self.p_check_read(x)
            return
        check(isinstance(got, ZswapEntryView) and got.swpentry == x,
              "%s: the descriptor holds %r", self.where(x), got)
        check(self.pinz[x], "%s: a pool entry after it was dropped", self.where(x))
        check(got.zero == (self.ppage[x] == ZERO_PAGE), "%s: view %r of the wrong page",
              self.where(x), got)
        if erase:
            self.pinz[x] = False
            self.ppage[x] = UNKNOWN

    def p_slots(self):
        """Slots of the pool's swap file taken, written, read and given back
        while writeback uses the same file."""
        sf = self.ctx.sf
        held = []
        try:
            for _ in range(self.rng.randint(1, 4)):
                held.append(sf.alloc_slot())
        except SwapFileFullError:
            pass
        check(len(set(held)) == len(held), "%s: a slot handed out twice", self.name)
        pages = [self.pages.new()[0] for _ in held]
        for slot, page in zip(held, pages):
            sf.write(slot, page)
        for slot, page in zip(held, pages):
            check(sf.read(slot) == page, "%s: slot %d read back wrong", self.name, slot)
            sf.free_slot(slot)
        self.counts["slot_ops"] += 1

    def p_limit(self):
        ctx = self.ctx
        ctx.pool.max_pool_bytes = self.rng.choice(ctx.pool_limits)

    def p_store_many(self):
        ctx = self.ctx
        if not self.pgroups:
            return self.p_alloc()
        entries = self.pick_entries(self.pgroups)
        bad = self.rng.random() < 0.1
        if bad:
            entries.insert(self.rng.randrange(len(entries) + 1), 0)
        pages = [self.pages.new()[0] for _ in entries]
        st = list(ctx.pool.store_many(self.entry_buffer(entries), b"".join(pages)))
        self.counts["batch_calls"] += 1
        self.counts["stores"] += len(entries)
        check(len(st) == len(entries), "%s: store_many gave %d statuses for %d entries",
              self.name, len(st), len(entries))
        for x, p, s in zip(entries, pages, st):
            if x == 0:
                check(s == INVALID, "%s: store_many status %d for entry 0", self.name, s)
                continue
            check(s in (OK, REJECTED), "%s: store_many status %d", self.where(x), s)
            self.p_stored(x, p if s == OK else None)

    def p_load_many(self):
        ctx = self.ctx
        if not self.pgroups:
            return self.p_alloc()
        entries = self.pick_entries(self.pgroups)
        if self.rng.random() < 0.1:
            entries.insert(self.rng.randrange(len(entries) + 1), 0)
        marker = b"\x5a" * PAGE
        out = bytearray(marker * len(entries))
        st = list(ctx.pool.load_many(self.entry_buffer(entries), out))
        self.counts["batch_calls"] += 1
        self.counts["loads"] += len(entries)
        check(len(st) == len(entries), "%s: load_many status count", self.name)
        for i, (x, s) in enumerate(zip(entries, st)):
            got = bytes(out[i * PAGE:(i + 1) * PAGE])
            if x == 0:
                check(s == INVALID and got == marker, "%s: load_many of entry 0: %d",
                      self.name, s)
                continue
            if s == EMPTY:
                check(got == marker, "%s: load_many wrote a page it did not load", self.where(x))
                if self.pinz[x]:
                    check(ctx.pspace.get_slot(x) != 0, "%s: page lost", self.where(x))
                    self.pinz[x] = False
                    self.p_check_read(x)
                continue
            check(s == OK, "%s: load_many status %d", self.where(x), s)
            check(self.pinz[x], "%s: load_many found a page after it was dropped",
                  self.where(x))
            check(got == self.ppage[x], "%s: load_many gave the wrong page", self.where(x))
            self.ppage[x] = UNKNOWN
            self.pinz[x] = False

    def p_invalidate_many(self):
        ctx = self.ctx
        if not self.pgroups:
            return self.p_alloc()
        entries = self.pick_entries(self.pgroups)
        st = list(ctx.pool.invalidate_many(self.entry_buffer(entries)))
        self.counts["batch_calls"] += 1
        self.counts["invalidates"] += len(entries)
        for x, s in zip(entries, st):
            if s == OK:
                check(self.pinz[x], "%s: invalidate_many dropped an entry already gone",
                      self.where(x))
                self.pinz[x] = False
                self.ppage[x] = UNKNOWN
            else:
                check(s == EMPTY, "%s: invalidate_many status %d", self.where(x), s)
                if self.pinz[x]:
                    check(ctx.pspace.get_slot(x) != 0, "%s: page lost", self.where(x))
                    self.pinz[x] = False
                    self.p_check_read(x)

    # -- pool: shared entries ----------------------------------------------------

    def s_pick(self):
        return self.rng.randrange(SHARED_ENTRIES)

    def s_check(self, i, got, what):
        check(got is None or got in self.ctx.sallowed[i],
              "%s: %s of shared entry %#x gave a page never stored there",
              self.name, what, self.ctx.sbase + i)

    def s_store(self):
        ctx = self.ctx
        i = self.s_pick()
        ok = ctx.pool.store(ctx.sbase + i, self.rng.choice(ctx.sversions[i]))
        self.counts["stores"] += 1
        check(ok in (True, False), "%s: store returned %r", self.name, ok)

    def s_store_range(self):
        ctx = self.ctx
        i = self.s_pick()
        m = self.rng.randint(1, min(8, SHARED_ENTRIES - i))
        page = b"".join(self.rng.choice(ctx.sversions[j]) for j in range(i, i + m))
        ok = ctx.pool.store(ctx.sbase + i, page)
        self.counts["stores"] += 1
        check(ok in (True, False), "%s: store returned %r", self.name, ok)

    def s_load(self):
        i = self.s_pick()
        self.s_check(i, self.pool_load(self.ctx.pool, self.ctx.sbase + i), "load")
        self.counts["loads"] += 1

    def s_read(self):
        i = self.s_pick()
        self.s_check(i, self.pool_read(self.ctx.pool, self.ctx.sbase + i), "read")
        self.counts["reads"] += 1

    def s_invalidate(self):
        ctx = self.ctx
        i = self.s_pick()
        m = self.rng.randint(1, min(4, SHARED_ENTRIES - i))
        n = ctx.pool.invalidate(ctx.sbase + i, m)
        self.counts["invalidates"] += 1
        check(0 <= n <= m, "%s: invalidate(%d) of shared entries gave %d", self.name, m, n)

    def s_entries(self):
        idx = self.rng.sample(range(SHARED_ENTRIES), self.rng.randint(1, 12))
        if self.rng.random() < 0.5:
            idx.sort()
        return idx

    def s_store_many(self):
        ctx = self.ctx
        idx = self.s_entries()
        pages = b"".join(self.rng.choice(ctx.sversions[i]) for i in idx)
        st = list(ctx.pool.store_many(self.entry_buffer([ctx.sbase + i for i in idx]), pages))
        self.counts["batch_calls"] += 1
        self.counts["stores"] += len(idx)
        check(len(st) == len(idx) and all(s in (OK, REJECTED) for s in st),
              "%s: store_many of shared entries: %r", self.name, st)

    def s_load_many(self):
        ctx = self.ctx
        idx = self.s_entries()
        marker = b"\x5a" * PAGE
        out = bytearray(marker * len(idx))
        st = list(ctx.pool.load_many(self.entry_buffer([ctx.sbase + i for i in idx]), out))
        self.counts["batch_calls"] += 1
        self.counts["loads"] += len(idx)
        for k, (i, s) in enumerate(zip(idx, st)):
            got = bytes(out[k * PAGE:(k + 1) * PAGE])
            check(s in (OK, EMPTY), "%s: load_many status %d", self.name, s)
            if s == OK:
                self.s_check(i, got, "load_many")
            else:
                check(got == marker, "%s: load_many wrote a page it did not load", self.name)

    def s_invalidate_many(self):
        ctx = self.ctx
        idx = self.s_entries()
        st = list(ctx.pool.invalidate_many(self.entry_buffer([ctx.sbase + i for i in idx])))
        self.counts["batch_calls"] += 1
        self.counts["invalidates"] += len(idx)
        check(all(s in (OK, EMPTY) for s in st), "%s: invalidate_many: %r", self.name, st)

    # -- pool2: no writeback, non-exclusive loads --------------------------------

    def q_alloc(self):
        ctx = self.ctx
        if len(self.qgroups) >= MAX_GROUPS:
            return self.q_free()
        nr = self.rng.choice((1, 1, 2, 4, 8))
        e = ctx.qspace.alloc(nr)
        self.counts["allocs"] += 1
        self.register("pool2", (e,), nr)
        self.qgroups[e] = nr
        for x in range(e, e + nr):
            self.qpage[x] = None
        self.q_store_pages(e, nr)

    def q_store_pages(self, e, m):
        made = self.pages.folio(m)
        pages = [p for p, _ in made]
        ok = self.ctx.pool2.store(e, b"".join(pages))
        self.counts["stores"] += 1
        if any(raw for _, raw in made):
            check(ok is False, "%s: a pool without writeback took an incompressible page",
                  self.where(e))
        else:
            check(ok in (True, False), "%s: store returned %r", self.where(e), ok)
        if not ok:
            self.counts["rejected"] += 1
        for i, p in enumerate(pages):
            self.qpage[e + i] = p if ok else None

    def q_store(self):
        if not self.qgroups:
            return self.q_alloc()
        start, nr, off, m = self.pick_range(self.qgroups)
        self.q_store_pages(start + off, m)

    def q_load(self):
        if not self.qgroups:
            return self.q_alloc()
        start, nr, off, m = self.pick_range(self.qgroups)
        for x in range(start + off, start + off + m):
            got = self.pool_load(self.ctx.pool2, x)
            self.counts["loads"] += 1
            check(got == self.qpage[x], "%s: non-exclusive load gave %s", self.where(x),
                  "nothing" if got is None else "the wrong page")

    def q_read(self):
        if not self.qgroups:
            return self.q_alloc()
        start, nr, off, m = self.pick_range(self.qgroups)
        for x in range(start + off, start + off + m):
            got = self.pool_read(self.ctx.pool2, x)
            self.counts["reads"] += 1
            check(got == self.qpage[x], "%s: read gave %s", self.where(x),
                  "nothing" if got is None else "the wrong page")

    def q_invalidate(self):
        if not self.qgroups:
            return self.q_alloc()
        start, nr, off, m = self.pick_range(self.qgroups)
        e = start + off
        held = sum(self.qpage[x] is not None for x in range(e, e + m))
        n = self.ctx.pool2.invalidate(e, m)
        self.counts["invalidates"] += 1
        check(n == held, "%s: invalidate(%d) gave %d, %d held", self.where(e), m, n, held)
        for x in range(e, e + m):
            self.qpage[x] = None

    def q_free(self):
        if not self.qgroups:
            return
        start, nr = self.pick_group(self.qgroups)
        self.unregister("pool2", start, nr)
        self.ctx.qspace.free(start, nr)
        self.counts["frees"] += 1
        del self.qgroups[start]
        for x in range(start, start + nr):
            del self.qpage[x]

    def q_store_many(self):
        if not self.qgroups:
            return self.q_alloc()
        entries = self.pick_entries(self.qgroups)
        made = [self.pages.new() for _ in entries]
        st = list(self.ctx.pool2.store_many(self.entry_buffer(entries),
                                            b"".join(p for p, _ in made)))
        self.counts["batch_calls"] += 1
        self.counts["stores"] += len(entries)
        for x, (p, raw), s in zip(entries, made, st):
            check(s in (OK, REJECTED), "%s: store_many status %d", self.where(x), s)
            if raw:
                check(s == REJECTED, "%s: a pool without writeback took an incompressible page",
                      self.where(x))
            self.qpage[x] = p if s == OK else None

    def q_load_many(self):
        if not self.qgroups:
            return self.q_alloc()
        entries = self.pick_entries(self.qgroups)
        marker = b"\x5a" * PAGE
        out = bytearray(marker * len(entries))
        st = list(self.ctx.pool2.load_many(self.entry_buffer(entries), out))
        self.counts["batch_calls"] += 1
        self.counts["loads"] += len(entries)
        for i, (x, s) in enumerate(zip(entries, st)):
            got = bytes(out[i * PAGE:(i + 1) * PAGE])
            if self.qpage[x] is None:
                check(s == EMPTY and got == marker, "%s: load_many status %d, nothing held",
                      self.where(x), s)
            else:
                check(s == OK and got == self.qpage[x], "%s: load_many status %d or wrong page",
                      self.where(x), s)

    def q_invalidate_many(self):
        if not self.qgroups:
            return self.q_alloc()
        entries = self.pick_entries(self.qgroups)
        st = list(self.ctx.pool2.invalidate_many(self.entry_buffer(entries)))
        self.counts["batch_calls"] += 1
        self.counts["invalidates"] += len(entries)
        for x, s in zip(entries, st):
            want = EMPTY if self.qpage[x] is None else OK
            check(s == want, "%s: invalidate_many status %d, not %d", self.where(x), s, want)
            self.qpage[x] = None

    # -- zswap entries through the API: plain space and index ----------------------

    def z_expect(self, got, state, what, x):
        ctx = self.ctx
        if state is None:
            check(got is None, "%s: %s gave %r, expected nothing", self.where(x), what, got)
        elif state[0] == "h":
            check(type(got) is int and got == state[1], "%s: %s gave %r, expected handle %#x",
                  self.where(x), what, got, state[1])
        else:
            check(got is ctx.tokens[state[1]], "%s: %s gave %r, expected %r",
                  self.where(x), what, got, ctx.tokens[state[1]])

    def z_alloc(self, zm):
        ctx = self.ctx
        if len(zm.groups) >= MAX_GROUPS:
            return self.z_free(zm)
        plain = zm.area == "plain"
        nr = self.rng.choice((1, 1, 1, 2, 4, 8, 16, 64, 256, 512))
        fk = None
        if plain and self.rng.random() < 0.3:
            fk = self.rng.randrange(len(ctx.tokens))
            e = zm.space.alloc(nr, ctx.tokens[fk])
        else:
            e = zm.space.alloc(nr)
        self.counts["allocs"] += 1
        check(e % nr == 0, "%s: alloc(%d) not aligned", self.where(e), nr)
        self.z_new_group(zm, e, nr, fk)

    def z_new_group(self, zm, e, nr, fk=None):
        self.register(zm.area, (e,), nr)
        zm.groups[e] = nr
        for x in range(e, e + nr):
            zm.z[x] = None
            if zm.area == "plain":
                self.rcache[x] = None if fk is None else ("f", fk)
                self.rslot[x] = 0

    def z_free_group(self, zm, start, nr):
        if zm.area != "plain":
            # How a design treats entries still indexed when their
            # descriptors are freed is its own business: erase them first.
            for x in range(start, start + nr):
                if zm.z[x] is not None:
                    self.z_expect(zm.api.zswap_entry_erase(x), zm.z[x], "erase", x)
                    zm.z[x] = None
        self.unregister(zm.area, start, nr)
        zm.space.free(start, nr)
        self.counts["frees"] += 1
        del zm.groups[start]
        for x in range(start, start + nr):
            del zm.z[x]
            if zm.area == "plain":
                del self.rcache[x], self.rslot[x]

    def z_free(self, zm):
        if zm.groups:
            self.z_free_group(zm, *self.pick_group(zm.groups))

    def z_entry(self, zm):
        start, nr = self.pick_group(zm.groups)
        return start + self.rng.randrange(nr)

    def z_store(self, zm):
        if not zm.groups:
            return self.z_alloc(zm)
        x = self.z_entry(zm)
        k = self.rng.randrange(len(self.ctx.tokens))
        old = zm.api.zswap_entry_store(x, self.ctx.tokens[k])
        self.counts["zswap_entry_ops"] += 1
        self.z_expect(old, zm.z[x], "store", x)
        del old
        zm.z[x] = ("o", k)
        if zm is self.zr:
            self.rslot[x] = 0           # one backing per descriptor: the slot goes

    def z_load(self, zm):
        if not zm.groups:
            return self.z_alloc(zm)
        x = self.z_entry(zm)
        self.z_expect(zm.api.zswap_entry_load(x), zm.z[x], "load", x)
        self.counts["zswap_entry_ops"] += 1

    def z_erase(self, zm):
        if not zm.groups:
            return self.z_alloc(zm)
        x = self.z_entry(zm)
        self.z_expect(zm.api.zswap_entry_erase(x), zm.z[x], "erase", x)
        self.counts["zswap_entry_ops"] += 1
        zm.z[x] = None

    def z_shared_check(self, got, what):
        ctx = self.ctx
        ok = (got is None or any(got is t for t in ctx.stokens)
              or (type(got) is int and SHARED_HANDLES <= got < SHARED_HANDLES + len(ctx.stokens)))
        check(ok, "%s: %s of a shared entry gave %r", self.name, what, got)

    def z_shared(self, zm):
        ctx = self.ctx
        x = zm.shared[self.rng.randrange(SHARED_ENTRIES)]
        r = self.rng.random()
        self.counts["zswap_entry_ops"] += 1
        batch = hasattr(zm.api, "zswap_entry_store_many")
        if r < 0.3:
            got = zm.api.zswap_entry_store(x, self.rng.choice(ctx.stokens))
            self.z_shared_check(got, "store")
        elif r < 0.4 and batch:
            xs = self.rng.sample(zm.shared, self.rng.randint(1, 8))
            handles = [SHARED_HANDLES + self.rng.randrange(len(ctx.stokens)) for _ in xs]
            old = self.out_buffer(len(xs))
            st = list(zm.api.zswap_entry_store_many(self.entry_buffer(xs), self.entry_buffer(
                handles, False), old))
            self.counts["batch_calls"] += 1
            for s, h in zip(st, old):
                check(s in (OK, EMPTY, FOREIGN), "%s: shared store_many status %d", self.name, s)
                if s == OK:
                    self.z_shared_check(int(h), "store_many")
        elif r < 0.5 and batch:
            xs = self.rng.sample(zm.shared, self.rng.randint(1, 8))
            out = self.out_buffer(len(xs))
            st = list(zm.api.zswap_entry_load_many(self.entry_buffer(xs), out))
            self.counts["batch_calls"] += 1
            for s, h in zip(st, out):
                check(s in (OK, EMPTY, FOREIGN), "%s: shared load_many status %d", self.name, s)
                if s == OK:
                    self.z_shared_check(int(h), "load_many")
        elif r < 0.75:
            self.z_shared_check(zm.api.zswap_entry_load(x), "load")
        else:
            self.z_shared_check(zm.api.zswap_entry_erase(x), "erase")

    def z_alloc_many(self, zm):
        if len(zm.groups) >= MAX_GROUPS:
            return self.z_free_many(zm)
        count = self.rng.randint(1, 6)
        nr = self.rng.choice((1, 1, 2, 4, 8, 64))
        got = zm.space.alloc_many(count, nr)
        self.counts["batch_calls"] += 1
        self.counts["allocs"] += count
        starts = list(got)
        check(len(starts) == count, "%s: alloc_many(%d) gave %d", self.name, count, len(starts))
        check(all(s % nr == 0 and s > 0 for s in starts), "%s: alloc_many(%d, %d): %r",
              self.name, count, nr, starts)
        check(len(set(starts)) == count, "%s: alloc_many handed out a chunk twice", self.name)
        for s in starts:
            self.z_new_group(zm, s, nr)

    def z_free_many(self, zm):
        if not zm.groups:
            return self.z_alloc_many(zm)
        start, nr = self.pick_group(zm.groups)
        starts = [s for s in zm.groups if zm.groups[s] == nr]
        starts = self.rng.sample(starts, min(len(starts), self.rng.randint(1, 4)))
        for s in starts:
            self.unregister(zm.area, s, nr)
        values = list(starts)
        bad = self.rng.random() < 0.2
        if bad:
            values.append(0)
        st = list(zm.space.free_many(self.entry_buffer(values), nr))
        self.counts["batch_calls"] += 1
        self.counts["frees"] += len(starts)
        check(st == [OK] * len(starts) + [INVALID] * bad, "%s: free_many statuses %r",
              self.name, st)
        for s in starts:
            del zm.groups[s]
            for x in range(s, s + nr):
                del zm.z[x]
                if zm.area == "plain":
                    del self.rcache[x], self.rslot[x]

    def z_store_many(self, zm):
        if not zm.groups:
            return self.z_alloc(zm)
        xs = self.pick_entries(zm.groups)
        handles = [self.new_handle() for _ in xs]
        bad_at = -1
        if self.rng.random() < 0.15:
            bad_at = self.rng.randrange(len(xs))
            handles[bad_at] = self.rng.choice((0, HANDLE_LIMIT))
        values = list(xs)
        if self.rng.random() < 0.1:
            values.append(0)
            handles.append(self.new_handle())
        old = self.out_buffer(len(values)) if self.rng.random() < 0.8 else None
        st = list(zm.api.zswap_entry_store_many(self.entry_buffer(values),
                                                self.entry_buffer(handles, False), old))
        self.counts["batch_calls"] += 1
        self.counts["zswap_entry_ops"] += len(values)
        check(len(st) == len(values), "%s: store_many status count", self.name)
        for i, (x, h, s) in enumerate(zip(values, handles, st)):
            if x == 0:
                check(s == INVALID, "%s: store_many status %d for entry 0", self.name, s)
                continue
            if i == bad_at:
                check(s == BAD_HANDLE, "%s: store_many of handle %#x: %d", self.where(x), h, s)
                continue
            state = zm.z[x]
            if state is None:
                want = EMPTY
            else:
                want = OK if state[0] == "h" else FOREIGN
            check(s == want, "%s: store_many status %d, not %d (held %r)", self.where(x),
                  s, want, state)
            if old is not None and want != FOREIGN:
                check(int(old[i]) == (state[1] if want == OK else 0),
                      "%s: store_many gave old handle %#x", self.where(x), int(old[i]))
            zm.z[x] = ("h", h)
            if zm is self.zr:
                self.rslot[x] = 0       # one backing per descriptor: the slot goes

    def z_load_many(self, zm, erase=False):
        if not zm.groups:
            return self.z_alloc(zm)
        xs = self.pick_entries(zm.groups)
        out = self.out_buffer(len(xs))
        if erase:
            st = list(zm.api.zswap_entry_erase_many(self.entry_buffer(xs), out))
        else:
            st = list(zm.api.zswap_entry_load_many(self.entry_buffer(xs), out))
        self.counts["batch_calls"] += 1
        self.counts["zswap_entry_ops"] += len(xs)
        for i, (x, s) in enumerate(zip(xs, st)):
            state = zm.z[x]
            if state is None:
                check(s == EMPTY and int(out[i]) == 0, "%s: status %d, nothing held",
                      self.where(x), s)
            elif state[0] == "h":
                check(s == OK and int(out[i]) == state[1], "%s: status %d handle %#x, not %#x",
                      self.where(x), s, int(out[i]), state[1])
            else:
                check(s == FOREIGN, "%s: status %d for an object", self.where(x), s)
            if erase:
                zm.z[x] = None

    def z_erase_many(self, zm):
        self.z_load_many(zm, erase=True)

    # -- plain space: swap cache and slots ---------------------------------------

    def r_pick(self, want):
        """A range [e, e + m) of one group whose swap-cache states all satisfy
        ``want`` (now and then any range, which a call may refuse)."""
        zm = self.zr
        rng = self.rng
        fits = [x for x, state in self.rcache.items() if want(state)]
        if not fits or rng.random() < 0.1:
            start, nr, off, m = self.pick_range(zm.groups)
            return start + off, m
        e = rng.choice(fits)
        group_end = next(s + nr for s, nr in zm.groups.items() if s <= e < s + nr)
        state = self.rcache[e]
        end = e + 1
        limit = min(group_end, e + rng.choice((1, 1, 2, 4, 16, 512)))
        while end < limit and self.rcache[end] == state:
            end += 1
        return e, end - e

    def r_cache(self):
        zm = self.zr
        ctx = self.ctx
        space = ctx.rspace
        if not zm.groups:
            return self.z_alloc(zm)
        rng = self.rng
        r = rng.random()
        self.counts["swap_cache_ops"] += 1
        if r < 0.25:
            start, nr, off, m = self.pick_range(zm.groups)
            for x in range(start + off, start + off + m):
                state = self.rcache[x]
                folio = space.swap_cache_get_folio(x)
                if state is not None and state[0] == "f":
                    check(folio is ctx.tokens[state[1]], "%s: wrong folio", self.where(x))
                else:
                    check(folio is None, "%s: a folio where there is none", self.where(x))
                del folio
                shadow = space.swap_cache_get_shadow(x)
                want = state[1] if state is not None and state[0] == "s" else None
                check(shadow == want, "%s: shadow %r, not %r", self.where(x), shadow, want)
            return
        if r < 0.5:
            if rng.random() < 0.6:
                e, m = self.r_pick(lambda s: s is not None and s[0] == "s")
            else:
                e, m = self.r_pick(lambda s: s is None)
            states = [self.rcache[x] for x in range(e, e + m)]
            k = rng.randrange(len(ctx.tokens))
            busy = any(s is not None and s[0] == "f" for s in states)
            try:
                ret = space.swap_cache_add_folio(e, ctx.tokens[k], m)
            except SwapCacheError:
                check(busy, "%s: add_folio refused with no folio there", self.where(e))
                return
            check(not busy, "%s: add_folio over a folio", self.where(e))
            want = states[0][1] if states[0] is not None else None
            check(ret == want, "%s: add_folio returned %r, not %r", self.where(e), ret, want)
            for x in range(e, e + m):
                self.rcache[x] = ("f", k)
            return
        e, m = self.r_pick(lambda s: s is not None and s[0] == "f")
        states = [self.rcache[x] for x in range(e, e + m)]
        k = states[0][1] if states[0] is not None and states[0][0] == "f" and rng.random() < 0.9 \
            else rng.randrange(len(ctx.tokens))
        holds = all(s == ("f", k) for s in states)
        if r < 0.75:
            shadow = rng.choice((None, rng.randrange(1 << 62), rng.randrange(1 << 62)))
            try:
                space.swap_cache_del_folio(e, ctx.tokens[k], m, shadow)
            except SwapCacheError:
                check(not holds, "%s: del_folio refused", self.where(e))
                return
            check(holds, "%s: del_folio of a folio not there", self.where(e))
            for x in range(e, e + m):
                self.rcache[x] = None if shadow is None else ("s", shadow)
        elif r < 0.9:
            k2 = rng.randrange(len(ctx.tokens))
            try:
                space.swap_cache_replace_folio(e, ctx.tokens[k], ctx.tokens[k2], m)
            except SwapCacheError:
                check(not holds, "%s: replace_folio refused", self.where(e))
                return
            check(holds, "%s: replace_folio of a folio not there", self.where(e))
            for x in range(e, e + m):
                self.rcache[x] = ("f", k2)
        else:
            e, m = self.r_pick(lambda s: s is not None and s[0] == "s")
            space.swap_cache_clear_shadow(e, m)
            for x in range(e, e + m):
                if self.rcache[x] is not None and self.rcache[x][0] == "s":
                    self.rcache[x] = None

    def r_slot(self):
        zm = self.zr
        if not zm.groups:
            return self.z_alloc(zm)
        x = self.z_entry(zm)
        space = self.ctx.rspace
        self.counts["slot_ops"] += 1
        if self.rng.random() < 0.5:
            check(space.get_slot(x) == self.rslot[x], "%s: wrong slot", self.where(x))
            return
        new = self.rng.choice((0, self.rng.randrange(1, 1 << 64)))
        old = space.set_slot(x, new)
        check(old == self.rslot[x], "%s: set_slot returned %#x, not %#x", self.where(x),
              old, self.rslot[x])
        self.rslot[x] = new
        if new:
            zm.z[x] = None              # one backing per descriptor: the zswap entry goes

    # -- observers ---------------------------------------------------------------

    def walk(self):
        """Calls that look at a whole space or pool while others change it."""
        ctx = self.ctx
        r = self.rng.random()
        self.counts["walks"] += 1
        area = self.rng.choice(list(ctx.spaces))
        space = ctx.spaces[area]
        if r < 0.15:
            live = list(space.entries())
            check(all(a < b for a, b in zip(live, live[1:])), "%s: entries() out of order",
                  self.name)
            mine = self.owned[area]
            if mine:
                check(mine <= set(live), "%s: entries() lacks entries of this thread", self.name)
        elif r < 0.3:
            st = space.stats()
            check(st["entries"] >= 0 and st["clusters"] >= 0, "%s: stats %r", self.name, st)
            len(space)
            repr(space)
            space.zswap_empty()
            space.nr_clusters
        elif r < 0.45:
            mine = self.owned[area]
            if mine:
                x = self.rng.choice(tuple(mine))
                cid = x >> space.cluster_shift
                info = space.cluster_info(cid)
                check(info["id"] == cid and info["count"] >= 1, "%s: cluster_info %r",
                      self.name, info)
                check(x in space, "%s: %#x not in its space", self.name, x)
        elif r < 0.7:
            for pool in (ctx.pool, ctx.pool2):
                st = pool.stats()
                check(st["pool_total_size"] % PAGE == 0, "%s: pool_total_size %d",
                      self.name, st["pool_total_size"])
                len(pool)
                repr(pool)
        elif r < 0.8:
            st = ctx.sf.stats()
            check(0 <= st["used"] <= st["slots"], "%s: swap file stats %r", self.name, st)
            len(ctx.sf)
        elif ctx.zindex is not None:
            ctx.zindex.stats()
            len(ctx.zindex)
            ctx.zindex.zswap_empty()
            repr(ctx.zindex)


class Observer(threading.Thread):
    """Looks at every space and pool as a whole, over and over, until told to
    stop: the calls that read counters without the locks that guard them
    (zswap_empty, len) and the walks (entries, stats) meet every change the
    workers make."""

    def __init__(self, ctx):
        super().__init__(name="stress-observer", daemon=True)
        self.ctx = ctx
        self.done = threading.Event()
        self.rounds = 0
        self.error = None

    def run(self):
        ctx = self.ctx
        try:
            while not self.done.is_set() and not ctx.stop.is_set():
                for space in ctx.spaces.values():
                    space.zswap_empty()
                    len(space)
                    space.nr_clusters
                    if self.rounds % 8 == 0:
                        live = list(space.entries())
                        check(all(a < b for a, b in zip(live, live[1:])),
                              "observer: entries() out of order")
                        space.stats()
                for pool in (ctx.pool, ctx.pool2):
                    len(pool)
                    check(pool.stats()["pool_total_size"] % PAGE == 0,
                          "observer: pool_total_size not whole pages")
                len(ctx.sf)
                if ctx.zindex is not None:
                    ctx.zindex.zswap_empty()
                    len(ctx.zindex)
                self.rounds += 1
        except BaseException:
            self.error = "%s:\n%s" % (self.name, traceback.format_exc())
            ctx.stop.set()


# ---------------------------------------------------------------------------
# Final checks


def _check_ownership(ctx, workers):
    for area, space in ctx.spaces.items():
        owned = {}
        for w in workers:
            for x in w.owned[area]:
                check(x not in owned, "%s entry %#x owned by threads %d and %d",
                      area, x, owned.get(x, -1), w.index)
                owned[x] = w.index
        shared = set(ctx.shared[area])
        check(not shared & owned.keys(), "%s: a shared entry is owned by a thread", area)
        live = list(space.entries())
        check(live == sorted(set(live)), "%s: entries() not ascending and distinct", area)
        check(set(live) == owned.keys() | shared,
              "%s: entries() has %d entries, the threads own %d and %d are shared "
              "(%d unaccounted, %d missing)", area, len(live), len(owned), len(shared),
              len(set(live) - owned.keys() - shared), len((owned.keys() | shared) - set(live)))
        check(len(space) == len(live), "%s: len() %d, entries() %d", area, len(space), len(live))
        check({(a, x) for (a, x) in ctx.owner if a == area} == {(area, x) for x in owned},
              "%s: the owner registry disagrees with the threads", area)


def _check_pool(ctx, workers):
    pool, space, sf = ctx.pool, ctx.pspace, ctx.sf
    live = list(space.entries())
    for w in workers:
        for x in w.ppage:
            w.p_check_read(x)
    # What the pool holds, found by non-exclusive loads.
    pool.exclusive_loads = False
    held = {}
    try:
        for x in live:
            got = pool.load(x)
            if got is not None:
                held[x] = got
    finally:
        pool.exclusive_loads = True
    for w in workers:
        for x in w.ppage:
            if not w.pinz[x]:
                check(x not in held, "pool: entry %#x holds a page after it was dropped", x)
            elif x in held:
                check(held[x] == w.ppage[x], "pool: entry %#x holds the wrong page", x)
            else:
                check(space.get_slot(x) != 0, "pool: entry %#x lost its page", x)
    for i in range(SHARED_ENTRIES):
        x = ctx.sbase + i
        check(x not in held or held[x] in ctx.sallowed[i],
              "pool: shared entry %#x holds a page never stored there", x)
    st = pool.stats()
    check(st["stored_pages"] + st["zero_pages"] == len(held) == len(pool),
          "pool: stored_pages %d + zero_pages %d, len %d, but %d entries hold a page",
          st["stored_pages"], st["zero_pages"], len(pool), len(held))
    zeros = sum(p == ZERO_PAGE for p in held.values())
    # Only a folio that is zero as a whole takes the ZERO backing: the
    # threads' own folios are (PageMaker.folio), but a range of shared
    # entries (s_store_range) may hold a zero page compressed with others.
    shared = range(ctx.sbase, ctx.sbase + SHARED_ENTRIES)
    shared_zeros = sum(p == ZERO_PAGE for x, p in held.items() if x in shared)
    check(zeros - shared_zeros <= st["zero_pages"] <= zeros,
          "pool: zero_pages %d, %d zero pages held (%d of them shared)",
          st["zero_pages"], zeros, shared_zeros)
#!/usr/bin/env python3
    check(st["pool_total_size"] % PAGE == 0, "pool: pool_total_size %d", st["pool_total_size"])
    check(st["lru_length"] == st["stored_pages"], "pool: lru_length %d, stored_pages %d",
          st["lru_length"], st["stored_pages"])
    if ctx.index == "vswap":
        views = {}
        for x in live:
            z = space.zswap_entry_load(x)
            if z is not None:
                check(isinstance(z, ZswapEntryView), "pool: entry %#x holds %r", x, z)
                check(z.swpentry == x, "pool: view of %#x names %#x", x, z.swpentry)
                views[x] = z
        check(views.keys() == held.keys(), "pool: %d views, %d entries hold a page",
              len(views), len(held))
        data = [v for v in views.values() if not v.zero]
        check(st["stored_pages"] == len(data), "pool: stored_pages %d, %d views with data",
              st["stored_pages"], len(data))
        check(st["compressed_bytes"] == sum(v.length for v in data),
              "pool: compressed_bytes %d, views sum to %d", st["compressed_bytes"],
              sum(v.length for v in data))
        check(space.stats()["zswap_entries"] == len(views), "pool: space counts %d zswap "
              "entries, %d views", space.stats()["zswap_entries"], len(views))
        check(space.zswap_empty() == (not views), "pool: zswap_empty() is wrong")
    # Slots: one per descriptor that names one, all distinct.
    slots = [space.get_slot(x) for x in live]
    used = [s for s in slots if s]
    check(len(set(used)) == len(used), "pool: a swap slot is named by two descriptors")
    check(len(sf) == len(used) == space.stats()["slots"],
          "pool: swap file has %d slots in use, %d descriptors name one, stats say %d",
          len(sf), len(used), space.stats()["slots"])
    return st


def _check_pool2(ctx, workers):
    pool = ctx.pool2
    held = 0
    for w in workers:
        for x, page in w.qpage.items():
            got = pool.load(x)
            check(got == page, "pool2: entry %#x gave %s", x,
                  "nothing" if got is None else "the wrong page")
            held += page is not None
    st = pool.stats()
    check(st["stored_pages"] + st["zero_pages"] == held == len(pool),
          "pool2: stored_pages %d + zero_pages %d, len %d, but %d pages held",
          st["stored_pages"], st["zero_pages"], len(pool), held)
    check(st["written_back_pages"] == 0 and len(ctx.qspace) == ctx.qspace.stats()["entries"],
          "pool2: %r", st)
    check(st["pool_total_size"] % PAGE == 0, "pool2: pool_total_size %d", st["pool_total_size"])
    check(st["lru_length"] == st["stored_pages"], "pool2: lru_length %d, stored_pages %d",
          st["lru_length"], st["stored_pages"])
    return st


def _count_holder(holders, obj):
    if obj is not None and not isinstance(obj, (int, ZswapEntryView)):
        holders[id(obj)] = holders.get(id(obj), 0) + 1


def _check_zmodel(ctx, workers, area):
    """Private entries as modelled, shared ones allowed; returns the number of
    zswap entries found and {id(object): descriptors holding it}."""
    space = ctx.spaces[area]
    api = ctx.rspace if area == "plain" else ctx.zindex
    holders = {}
    count = 0
    for w in workers:
        zm = w.zr if area == "plain" else w.zi
        for x, state in zm.z.items():
            got = api.zswap_entry_load(x)
            w.z_expect(got, state, "final load", x)
            _count_holder(holders, got)
            count += got is not None
            if area == "plain":
                cache = w.rcache[x]
                folio = space.swap_cache_get_folio(x)
                if cache is not None and cache[0] == "f":
                    check(folio is ctx.tokens[cache[1]], "plain: %#x has the wrong folio", x)
                else:
                    check(folio is None, "plain: %#x has a folio it should not", x)
                _count_holder(holders, folio)
                shadow = space.swap_cache_get_shadow(x)
                want = cache[1] if cache is not None and cache[0] == "s" else None
                check(shadow == want, "plain: %#x has shadow %r, not %r", x, shadow, want)
                check(space.get_slot(x) == w.rslot[x], "plain: %#x has the wrong slot", x)
            del got
    for x in ctx.shared[area]:
        got = api.zswap_entry_load(x)
        workers[0].z_shared_check(got, "final load")
        _count_holder(holders, got)
        count += got is not None
        if area == "plain":
            check(space.swap_cache_get_folio(x) is None and space.get_slot(x) == 0,
                  "plain: shared entry %#x changed", x)
        del got
    return count, holders


def _check_plain(ctx, workers, holders):
    count, h = _check_zmodel(ctx, workers, "plain")
    for k, v in h.items():
        holders[k] = holders.get(k, 0) + v
    space = ctx.rspace
    st = space.stats()
    folios = shadows = slots = 0
    for w in workers:
        for x, cache in w.rcache.items():
            folios += cache is not None and cache[0] == "f"
            shadows += cache is not None and cache[0] == "s"
            slots += w.rslot[x] != 0
    check(st["zswap_entries"] == count, "plain: stats zswap_entries %d, found %d",
          st["zswap_entries"], count)
    check((st["swap_cache_folios"], st["shadows"], st["slots"]) == (folios, shadows, slots),
          "plain: stats %r, the threads have %d folios, %d shadows, %d slots",
          st, folios, shadows, slots)
    check(space.zswap_empty() == (count == 0), "plain: zswap_empty() is wrong")


def _check_refs(ctx, holders, phase):
    for obj in ctx.stored_objects():
        want = ctx.refs_base[id(obj)] + holders.get(id(obj), 0)
        got = sys.getrefcount(obj)
        check(got == want, "%s: %r has %d references, expected %d (%d held by descriptors)",
              phase, obj if not isinstance(obj, bytes) else "a folio page", got, want,
              holders.get(id(obj), 0))


def _teardown(ctx, workers):
    """Invalidate everything, check that the pools are empty, free everything,
    check that every space, the swap file and every reference is back."""
    for pool, space, area in ((ctx.pool, ctx.pspace, "pool"), (ctx.pool2, ctx.qspace, "pool2")):
        for w in workers:
            groups = w.pgroups if area == "pool" else w.qgroups
            for start, nr in groups.items():
                pool.invalidate(start, nr)
        if area == "pool":
            for i in range(0, SHARED_ENTRIES, 16):
                pool.invalidate(ctx.sbase + i, 16)
        st = pool.stats()
        for key in ("stored_pages", "zero_pages", "pool_total_size", "lru_length",
                    "compressed_bytes", "stored_incompressible_pages"):
            check(st[key] == 0, "%s: %s is %d after invalidating everything", area, key, st[key])
        check(len(pool) == 0, "%s: len %d after invalidating everything", area, len(pool))
        if ctx.index == "vswap":
            check(space.zswap_empty() and space.stats()["zswap_entries"] == 0,
                  "%s: zswap entries left after invalidating everything", area)
    # Free everything, the pool still bound (so slots go back to the file).
    for w in workers:
        for start, nr in list(w.pgroups.items()):
            w.p_free_group(start, nr)
        for start, nr in list(w.qgroups.items()):
            w.unregister("pool2", start, nr)
            ctx.qspace.free(start, nr)
        w.qgroups.clear()
        w.qpage.clear()
        for zm in (w.zr, w.zi):
            if zm is not None:
                for start, nr in list(zm.groups.items()):
                    w.z_free_group(zm, start, nr)
    if ctx.zindex is not None:
        for x in ctx.shared["index"]:
            ctx.zindex.zswap_entry_erase(x)
        check(ctx.zindex.zswap_empty() and len(ctx.zindex) == 0,
              "index: zswap_empty() False or len() %d with nothing stored", len(ctx.zindex))
    ctx.pspace.free(ctx.sbase, SHARED_ENTRIES)
    ctx.rspace.free(ctx.rsbase, SHARED_ENTRIES)
    if ctx.ispace is not None:
        ctx.ispace.free(ctx.isbase, SHARED_ENTRIES)
    for area, space in ctx.spaces.items():
        # Only clusters that a thread caches may stay, empty.
        check(len(space) == 0 and not list(space.entries())
              and all(space.cluster_info(c)["refcount"] > 1 for c in live_clusters(space)),
              "%s: %d entries in %d clusters left after freeing everything", area,
              len(space), space.nr_clusters)
    check(len(ctx.sf) == 0, "pool: %d swap slots in use after freeing everything", len(ctx.sf))
    check(not ctx.owner, "the owner registry is not empty")
    # A pool closed while it holds entries gives them all back.
    e = ctx.pspace.alloc(8)
    ctx.pool.store(e, b"".join(ctx.sversions[i][0] for i in range(8)))
    ctx.pool.close()
    check(ctx.pspace.zswap_empty(), "pool: zswap entries left after close()")
    ctx.pspace.free(e, 8)
    check(len(ctx.pspace) == 0, "pool: entries left")
    _check_refs(ctx, {}, "after freeing everything")


def final_checks(ctx, workers):
    """Raises StressFailure; returns the pool statistics before teardown."""
    _check_ownership(ctx, workers)
    stats = {"pool": _check_pool(ctx, workers), "pool2": _check_pool2(ctx, workers)}
    holders = {}
    _check_plain(ctx, workers, holders)
    if ctx.zindex is not None:
        count, h = _check_zmodel(ctx, workers, "index")
        for k, v in h.items():
            holders[k] = holders.get(k, 0) + v
        check(ctx.zindex.zswap_empty() == (count == 0), "index: zswap_empty() is wrong")
        check(len(ctx.zindex) == count, "index: len() %d, %d entries hold a zswap entry",
              len(ctx.zindex), count)
    for w in workers:
        for x, fk in w.pfolio.items():
            if fk is not None:
                holders[id(ctx.folio_pages[fk])] = holders.get(id(ctx.folio_pages[fk]), 0) + 1
    _check_refs(ctx, holders, "with everything stored")
    _teardown(ctx, workers)
    return stats


# ---------------------------------------------------------------------------
# Entry points


def run(core_modules="compiled", threads=4, ops=5000, seed=0, index="vswap", timeout=None,
        switch_interval=1e-4):
    """Run the stress test; returns a dict.

    ``switch_interval`` (seconds; see sys.setswitchinterval) is set while the
    threads run: shorter than the default, so that they interleave more often
    in the Python parts of the test and of the core.

    ``ok`` is True when no thread saw a wrong result and every final check
    passed; ``errors`` lists what went wrong (with stacks), ``invariants``
    is "ok", "skipped" (a thread failed first) or the failed check.
    """
    core = load_core(core_modules)
    if timeout is None:
        timeout = 120 + ops * threads * 0.05
    result = {"core": core.name, "index": index, "threads": threads, "ops": ops,
              "seed": seed, "errors": [], "invariants": "skipped"}
    tmpdir = tempfile.mkdtemp(prefix="vswapfast-stress-")
    ctx = None
    try:
        ctx = Context(core, threads, seed, index, tmpdir)
        result["batch"] = sorted(ctx.batch)
        result["zswap_index"] = ctx.zindex is not None
        workers = [Worker(ctx, i, ops) for i in range(threads)]
        observer = Observer(ctx)
        helpers = [observer]
        old_interval = sys.getswitchinterval()
        sys.setswitchinterval(switch_interval)
        try:
            t0 = time.perf_counter()
            for t in helpers + workers:
                t.start()
            deadline = time.monotonic() + timeout
            for w in workers:
                w.join(max(0.0, deadline - time.monotonic()))
            result["seconds"] = round(time.perf_counter() - t0, 3)
            for t in helpers:
                t.done.set()
                t.join(max(1.0, deadline - time.monotonic()))
        finally:
            sys.setswitchinterval(old_interval)
        for t in helpers:
            result[t.name.split("-")[1] + "_rounds"] = t.rounds
        hung = [t.name for t in workers + helpers if t.is_alive()]
        if hung:
            ctx.stop.set()
            result["errors"].append("threads still running after %d s: %s"
                                    % (timeout, ", ".join(hung)))
            result["hung"] = True
            result["ok"] = False
            return result
        totals = collections.Counter()
        for w in workers:
            totals.update(w.counts)
            if w.error is not None:
                result["errors"].append(w.error)
        for t in helpers:
            if t.error is not None:
                result["errors"].append(t.error)
        result.update(sorted(totals.items()))
        result["lock_acquisitions"] = result["lock_contended"] = 0
        for space in ctx.spaces.values():
            st = space.stats()
            result["lock_acquisitions"] += st.get("lock_acquisitions", 0)
            result["lock_contended"] += st.get("lock_contended", 0)
        for pool in (ctx.pool, ctx.pool2):
            st = pool.stats()
            for key in ("lru_lock_acquisitions", "lru_lock_contended",
                        "index_lock_acquisitions", "index_lock_contended"):
                if key in st:
                    result["pool_" + key] = result.get("pool_" + key, 0) + st[key]
        if ctx.zindex is not None:
            st = ctx.zindex.stats()
            result["index_lock_acquisitions"] = st.get("lock_acquisitions", 0)
            result["index_lock_contended"] = st.get("lock_contended", 0)
        if not result["errors"]:
            try:
                stats = final_checks(ctx, workers)
                result["invariants"] = "ok"
                for key in ("written_back_pages", "pool_limit_hit", "reject_reclaim_fail",
                            "stored_incompressible_pages"):
                    result["pool_" + key] = stats["pool"][key]
                result["pool2_reject_compress_fail"] = stats["pool2"]["reject_compress_fail"]
            except Exception:
                result["invariants"] = "failed"
                result["errors"].append("final checks:\n" + traceback.format_exc())
        result["ok"] = not result["errors"]
        return result
    finally:
        if ctx is not None and not result.get("hung"):
            ctx.close()
        del ctx
        shutil.rmtree(tmpdir, ignore_errors=True)


def recycle(core_modules="compiled", index="vswap", rounds=3000, seed=0, switch_interval=1e-4):
    """Whole clusters of a pool's space freed by one thread and taken again
    by another at once: a fresh entry must hold nothing.

    One thread allocates two clusters with ``alloc_many``, fills them with
    ``store_many`` and frees them with ``free_many``; the other takes
    clusters with ``alloc_many`` and looks at every entry with
    ``load_many``, keeping a few so that the lowest free cluster id, which
    the next allocation takes, is usually one the first thread has just
    freed.  Both spend their time in batch calls, without the GIL, so the
    second can meet a free that has not finished.  Returns a dict with
    ``stale``, the pages found in fresh entries (0 unless a free hands out
    entries before it has dropped their zswap entries), and ``ok``.
    """
    core = load_core(core_modules)
    result = {"core": core.name, "index": index, "recycle_rounds": rounds, "seed": seed,
              "stale": 0, "errors": []}
    if not {"alloc_many", "free_many", "load_many", "store_many"} <= has_batch(core):
        result.update(ok=True, skipped="no batch calls")
        return result
    space = core.VSwap(cluster_shift=6)
    pool = make_pool(core, space, None, index, max_pool_bytes=1 << 40)
    nr = space.cluster_size
    page = base_pages(seed)["text"][0]
    done = threading.Event()
    taken = [0]

    def churner():
        entries = array.array("Q", bytes(8 * 2 * nr))
        for _ in range(rounds):
            starts = space.alloc_many(2, nr)
            for k, s in enumerate(starts):
                entries[k * nr:(k + 1) * nr] = array.array("Q", range(s, s + nr))
            pool.store_many(entries, page * (2 * nr))
            space.free_many(starts, nr)

    def taker():
        out = bytearray(nr * PAGE)
        held = collections.deque()
        try:
            while not done.is_set():
                starts = space.alloc_many(1, nr)
                held.append(starts)
                st = pool.load_many(array.array("Q", range(starts[0], starts[0] + nr)), out)
                result["stale"] += sum(s != EMPTY for s in st)
                if len(held) > 3:
                    space.free_many(held.popleft(), nr)
                taken[0] += 1
        finally:
            while held:
                space.free_many(held.popleft(), nr)

    def guarded(fn):
        def body():
            try:
                fn()
            except BaseException:
                result["errors"].append(traceback.format_exc())
            finally:
                done.set()
        return body

    churn = threading.Thread(target=guarded(churner), name="recycle-churner", daemon=True)
    take = threading.Thread(target=guarded(taker), name="recycle-taker", daemon=True)
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(switch_interval)
    try:
        t0 = time.perf_counter()
        churn.start()
        take.start()
        churn.join(120 + rounds * 0.05)
        done.set()
        take.join(60)
        result["seconds"] = round(time.perf_counter() - t0, 3)
    finally:
        sys.setswitchinterval(old_interval)
    result["taken"] = taken[0]
    if churn.is_alive() or take.is_alive():
        result["errors"].append("recycle: threads still running")
        result.update(ok=False, hung=True)
        return result
    if result["stale"]:
        result["errors"].append(
            "%d pages found in fresh entries of the %r design: a free handed its entries "
            "out again before their zswap entries were gone" % (result["stale"], index))
    if not result["errors"]:
        try:
            check(len(space) == 0 and len(pool) == len(space), "recycle: %d entries and %d "
                  "pages left", len(space), len(pool))
        except StressFailure:
            result["errors"].append(traceback.format_exc())
    pool.close()
    result["ok"] = not result["errors"]
    return result


def _leak_check():
    """With the LeakSanitizer runtime in the process: a leak check now, while
    the interpreter is alive (its own memory is reachable, so only blocks
    nothing points to are reported).  Objects that only a live Python frame
    refers to look unreachable (CPython 3.11 keeps frames in memory that
    LeakSanitizer does not scan), so call this with no objects of the runs
    left on any frame.  Returns True if there were leaks."""
    import ctypes
    try:
        check_now = ctypes.CDLL(None).__lsan_do_recoverable_leak_check
    except AttributeError:
        raise SystemExit("--leak-check needs the LeakSanitizer runtime (ASan) preloaded")
    check_now.restype = ctypes.c_int
    return check_now() != 0


def _os_threads():
    """The threads the kernel has for this process (Python's or not)."""
    return len(os.listdir("/proc/self/task"))


def _wait_for_exited_threads(baseline, timeout=10.0):
    """Wait until the threads of the runs have left the kernel too.
    Thread.join() returns once a thread has released its state, before its
    pthread has exited; LeakSanitizer's tracer, stopping the world for the
    check, can crash on a thread that is freeing its TLS.  ``baseline``:
    the threads the process had beside Python's before the runs."""
    deadline = time.monotonic() + timeout
    while (_os_threads() > threading.active_count() + baseline
           and time.monotonic() < deadline):
        time.sleep(0.01)


def _report(result):
    """Print a result as one JSON line, its errors to stderr; True if ok."""
    errors = result.pop("errors")
    print(json.dumps(result, sort_keys=True), flush=True)
    for err in errors:
        print(err, file=sys.stderr)
    if result.get("hung"):
        import faulthandler
        faulthandler.dump_traceback(all_threads=True)
        sys.stderr.flush()
        os._exit(2)
    return result["ok"]


def _run_design(args, design):
    """The runs of one index design.  A function of its own, so that nothing
    they made is left on a live frame for the leak check (see _leak_check)."""
    ok = _report(run(args.core, args.threads, args.ops, args.seed, design, args.timeout))
    if args.recycle_rounds > 0:
        ok &= _report(recycle(args.core, design, args.recycle_rounds, args.seed))
    return ok


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--ops", type=int, default=5000, help="operations per thread")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--core", choices=sorted(CORE_MODULES), default="compiled")
    parser.add_argument("--index", choices=INDEX_DESIGNS + ("all",), default="vswap",
                        help="zswap index design; 'all' runs every design the core has")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds to wait for the threads (default: from the size)")
    parser.add_argument("--recycle-rounds", type=int, default=None,
                        help="rounds of the free-and-take-again check after each run "
                             "(default: ops / 4; 0: none)")
    parser.add_argument("--leak-check", action="store_true",
                        help="ask LeakSanitizer for unreachable memory after the runs")
    args = parser.parse_args(argv)
    # Values are kept on ``args`` rather than in locals of this frame, which
    # stays alive through the leak check (see _leak_check).
    if args.recycle_rounds is None:
        args.recycle_rounds = args.ops // 4
    designs = index_designs(args.core) if args.index == "all" else [args.index]
    native_threads = _os_threads() - threading.active_count()
    failed = False
    for design in designs:
        failed |= not _run_design(args, design)
    if args.leak_check:
        gc.collect()
        _wait_for_exited_threads(native_threads)
        if _leak_check():
            print("LeakSanitizer found leaks (report above)", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
