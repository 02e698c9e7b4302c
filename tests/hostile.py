"""Hostile call sequences, each run in a child process (not a test module).

Every payload here drives one core the way a hostile user would: arguments
whose conversion hooks (``__index__``, ``__bool__``, ``__float__``,
``__buffer__``) call ``close()`` on the very object being called, objects
whose ``__del__`` closes a pool, reference cycles through a pool, ``close()``
racing calls in flight, aliased batch buffers, int subclasses whose
operators lie, odd buffers and sizes, and slot numbers left behind.

A payload either finishes (the child prints ``OK`` and exits 0) or fails an
assertion (exit 1 with a traceback); a crash or a hang is what the tests
catch by running it in a child: a negative exit status is the signal that
killed it.

    python tests/hostile.py CORE PAYLOAD      # one payload, as the tests run it
    python tests/hostile.py --list
"""

import gc
import os
import subprocess
import sys
import tempfile
import threading

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PAGE = 4096
NO_LIMIT = 1 << 40

#: What a call on a closed object raises (documented in docs/semantics.md).
CLOSED_POOL = "zswap pool is closed"
CLOSED_FILE = "I/O on a closed swap file"

PAYLOADS = {}


def payload(fn):
    PAYLOADS[fn.__name__] = fn
    return fn


def page(i):
    """A compressible page that tells ``i`` apart."""
    return (("page %d " % i) * 600).encode()[:PAGE]


# --------------------------------------------------------------------------
# running payloads


def child_env():
    import vswapfast
    env = dict(os.environ)
    parent = os.path.dirname(os.path.dirname(os.path.abspath(vswapfast.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([parent, HERE, env.get("PYTHONPATH", "")])
    env.pop("VSWAPFAST_PURE", None)
    return env


def run_child(core, name, timeout=120):
    """Run payload ``name`` against ``core`` in a child; return the
    CompletedProcess (a hang is killed and reported as one)."""
    try:
        return subprocess.run([sys.executable, os.path.join(HERE, "hostile.py"), core, name],
                              capture_output=True, text=True, env=child_env(),
                              timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(exc.cmd, "hang", exc.stdout or "",
                                           "hung for %d s" % timeout)


def check_child(core, name, timeout=120):
    proc = run_child(core, name, timeout)
    if proc.returncode == "hang":
        raise AssertionError("%s on the %s core hung" % (name, core))
    if isinstance(proc.returncode, int) and proc.returncode < 0:
        raise AssertionError("%s on the %s core was killed by signal %d\n%s"
                             % (name, core, -proc.returncode, proc.stderr[-3000:]))
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), \
        "%s on the %s core failed:\n%s%s" % (name, core, proc.stdout[-2000:], proc.stderr[-3000:])


# --------------------------------------------------------------------------
# hooks


class Hook:
    """Runs ``action`` the first time Python asks it for a value."""

    def __init__(self, action, value):
        self.action = action
        self.value = value
        self.fired = False

    def fire(self):
        if not self.fired:
            self.fired = True
            try:
                self.action()
            except ValueError:
                pass            # e.g. a swap file still in use: refused, not a crash
        return self.value


class IndexHook(Hook):
    def __index__(self):
        return self.fire()


class BoolHook(Hook):
    def __bool__(self):
        return self.fire()


class FloatHook(float):
    """A float whose ``float()`` runs the action first."""

    def __new__(cls, action, value):
        obj = super().__new__(cls, value)
        obj.hook = Hook(action, value)
        return obj

    def __float__(self):
        return float(self.hook.fire())


def buffer_hook(action, data):
    """An object exporting ``data`` through a Python ``__buffer__`` (3.12+)."""
    if sys.version_info < (3, 12):
        return None

    class BufferHook:
        def __buffer__(self, flags):
            action()
            return memoryview(data)

    return BufferHook()


def expect_ok_or_closed(call, closed=CLOSED_POOL):
    """Run ``call``: it succeeds, or raises the documented closed-object
    error (or another documented exception).  Returns the result or the
    exception."""
    try:
        return call()
    except ValueError as exc:
        if str(exc) != closed:
            raise
        return exc


class Env:
    """A core's classes, a space, a swap file and a pool."""

    def __init__(self, core, swapfile=True, **settings):
        from cores import load_zswap_core
        self.core = core
        self.zc = load_zswap_core(core)
        self.tmp = tempfile.mkdtemp(prefix="vswapfast-hostile-")
        self.space = self.zc.VSwap()
        self.sf = self.zc.SwapFile(os.path.join(self.tmp, "swap"), 257 * PAGE) if swapfile else None
        settings.setdefault("max_pool_bytes", NO_LIMIT)
        self.pool = self.zc.Zswap(self.space, self.sf, **settings)

    def stored(self, n=4):
        """``n`` entries holding pages, two of them written back."""
        entries = [self.space.alloc() for _ in range(n)]
        for i, e in enumerate(entries):
            assert self.pool.store(e, page(i))
        if self.sf is not None:
            assert self.pool.shrink(2) == 2
        return entries


# --------------------------------------------------------------------------
# class 1: Python code runs while the core holds a pointer


def _closing_calls(env, entries):
    """(name, call) pairs whose argument closes the pool on conversion."""
    pool, space = env.pool, env.space
    e = entries[0]

    def idx():
        return IndexHook(pool.close, e)

    out = bytearray(PAGE)
    calls = [
        ("store", lambda: pool.store(idx(), page(9))),
        ("load", lambda: pool.load(idx())),
        ("load-out", lambda: pool.load(idx(), out)),
        ("read", lambda: pool.read(idx())),
        ("read-out", lambda: pool.read(idx(), out)),
        ("invalidate", lambda: pool.invalidate(idx())),
        ("writeback-setter", lambda: setattr(pool, "writeback", BoolHook(pool.close, True))),
        ("exclusive-setter", lambda: setattr(pool, "exclusive_loads", BoolHook(pool.close, True))),
        ("threshold-setter", lambda: setattr(pool, "accept_threshold_percent",
                                             FloatHook(pool.close, 50.0))),
        ("vswap-free", lambda: space.free(idx())),
        ("vswap-erase", lambda: space.zswap_entry_erase(idx())),
        ("vswap-store", lambda: space.zswap_entry_store(idx(), object())),
    ]
    buf = buffer_hook(pool.close, bytes(page(7)))
    if buf is not None:
        calls.append(("store-buffer", lambda: pool.store(e, buf)))
        calls.append(("store_many-buffer",
                      lambda: pool.store_many(np.array([e], dtype=np.uint64),
                                              buffer_hook(pool.close, bytes(page(7))))))
    return calls


def _pointer_payload(core, which):
    env = Env(core)
    entries = env.stored()
    name, call = [c for c in _closing_calls(env, entries) if c[0] == which][0]
    expect_ok_or_closed(call)
    # The pool is closed now (or the call finished first): either way the
    # space stands and every later call says so.
    try:
        env.pool.stats()
    except ValueError as exc:
        assert str(exc) == CLOSED_POOL
    env.pool.close()
    assert sorted(env.space.entries()) == sorted(x for x in entries
                                                 if x in env.space)
    for x in env.space.entries():
        assert env.space.get_slot(x) == 0       # the pool's pages went with it


POINTER_CALLS = ("store", "load", "load-out", "read", "read-out", "invalidate",
                 "writeback-setter", "exclusive-setter", "threshold-setter",
                 "vswap-free", "vswap-erase", "vswap-store",
                 "store-buffer", "store_many-buffer")

for _which in POINTER_CALLS:
    def _make(which):
        def fn(core):
            _pointer_payload(core, which)
        fn.__name__ = "pointer_" + which.replace("-", "_")
        return fn
    payload(_make(_which))


@payload
def pointer_swapfile_buffers(core):
    """SwapFile.write/read with a buffer whose export closes the file."""
    from cores import load_zswap_core
    zc = load_zswap_core(core)
    tmp = tempfile.mkdtemp(prefix="vswapfast-hostile-")
    sf = zc.SwapFile(os.path.join(tmp, "swap"), 9 * PAGE)
    slot = sf.alloc_slot()
    sf.write(slot, page(1))
    w = buffer_hook(sf.close, page(2))
    if w is not None:
        expect_ok_or_closed(lambda: sf.write(slot, w), CLOSED_FILE)
    sf2 = zc.SwapFile(os.path.join(tmp, "swap2"), 9 * PAGE)
    slot = sf2.alloc_slot()
    target = bytearray(PAGE)
    r = buffer_hook(sf2.close, target)
    if r is not None:
        expect_ok_or_closed(lambda: sf2.read(slot, r), CLOSED_FILE)
    sf.close()
    sf2.close()


@payload
def pointer_constructor_hooks(core):
    """Zswap(...) whose bool and float settings run Python that closes a
    pool of the same space, or makes one."""
    from cores import load_zswap_core
    zc = load_zswap_core(core)
    space = zc.VSwap()
    first = zc.Zswap(space, max_pool_bytes=NO_LIMIT)
    e = space.alloc()
    first.store(e, page(1))
    # Closing the bound pool from a hook lets the new one bind.
    pool = zc.Zswap(space, max_pool_bytes=NO_LIMIT,
                    accept_threshold_percent=FloatHook(first.close, 80.0))
    assert pool.store(e, page(2))
    assert pool.load(e) == page(2)
    pool.close()


# --------------------------------------------------------------------------
# class 2: teardown order of an object in a reference cycle


@payload
def cycle_pool_subclass(core):
    from cores import load_zswap_core
    zc = load_zswap_core(core)

    class Pool(zc.Zswap):
        pass

    tmp = tempfile.mkdtemp(prefix="vswapfast-hostile-")
    for round_ in range(20):
        space = zc.VSwap()
        sf = zc.SwapFile(os.path.join(tmp, "swap%d" % round_), 65 * PAGE)
        pool = Pool(space, sf, max_pool_bytes=NO_LIMIT)
        pool.me = pool.store            # a bound method of itself: a cycle
        entries = [space.alloc() for _ in range(8)]
        for i, e in enumerate(entries):
            pool.store(e, page(i))
        pool.shrink(3)
        del space, sf, pool             # only the cycle holds the pool now
        gc.collect()


@payload
def cycle_index_subclass(core):
    from cores import load_zswap_core
    import importlib
    mod = importlib.import_module("vswapfast._zswap_index" if core == "compiled"
                                  else "vswapfast.pure")
    zc = load_zswap_core(core)

    class Index(mod.ZswapIndex):
        pass

    for design in ("vswap", "rbtree"):
        for _ in range(10):
            space = zc.VSwap()
            ix = Index(space, design)
            ix.me = ix.zswap_entry_store
            e = space.alloc()
            ix.zswap_entry_store(e, object())
            del space, ix
            gc.collect()


@payload
def cycle_through_descriptor(core):
    """A pool reachable from an object it holds in a descriptor."""
    from cores import load_zswap_core
    zc = load_zswap_core(core)

    class Token:
        pass

    for _ in range(20):
        space = zc.VSwap()
        pool = zc.Zswap(space, max_pool_bytes=NO_LIMIT)
        t = Token()
        t.pool = pool
        e = space.alloc()
        space.zswap_entry_store(e, t)
        f = space.alloc()
        pool.store(f, page(1))
        del t, pool
        gc.collect()
        space.free(e)
        gc.collect()


# --------------------------------------------------------------------------
# class 3: close() while other threads are inside calls without the GIL


def _race(core, work, rounds=30, threads=2):
    """Run ``work(env, stop)`` on ``threads`` threads and close the pool
    (and then the file) under them, ``rounds`` times."""
    for r in range(rounds):
        env = Env(core)
        entries = env.stored(16)
        errors = []

        def run():
            from vswapfast.errors import NoPageError
            try:
                work(env, entries)
            except ValueError as exc:
                if str(exc) not in (CLOSED_POOL, CLOSED_FILE):
                    errors.append(exc)
            except NoPageError:
                pass            # the other thread loaded the page first
            except BaseException as exc:      # noqa: BLE001 - reported below
                errors.append(exc)

        ts = [threading.Thread(target=run) for _ in range(threads)]
        for t in ts:
            t.start()
        if r % 3:
            # Let the calls get going first, most rounds.
            for _ in range(r % 7):
                os.sched_yield()
        env.pool.close()
        for t in ts:
            t.join()
        assert not errors, errors
        env.sf.close()
        for e in env.space.entries():
            assert env.space.get_slot(e) == 0


def _batch_work(env, entries):
    pool = env.pool
    arr = np.array(entries * 32, dtype=np.uint64)
    pages = np.frombuffer(b"".join(page(i % 7) for i in range(len(arr))), dtype=np.uint8)
    out = np.empty(len(arr) * PAGE, dtype=np.uint8)
    for _ in range(20):
        pool.store_many(arr, pages)
        pool.load_many(arr, out)
        pool.invalidate_many(arr)


def _page_work(env, entries):
    pool = env.pool
    for i in range(200):
        e = entries[i % len(entries)]
        pool.store(e, page(i))
        pool.read(e)
        pool.load(e)


def _writeback_work(env, entries):
    pool = env.pool
    for i in range(100):
        for e in entries[:4]:
            pool.store(e, page(i))
        pool.shrink(4)


def _vswap_work(env, entries):
    space = env.space
    for _ in range(50):
        es = space.alloc_many(64)
        space.zswap_entry_store_many(es, np.arange(1, 65, dtype=np.uint64))
        space.zswap_entry_erase_many(es)
        space.free_many(es)
    space.free_many(np.array(entries, dtype=np.uint64))


@payload
def race_batch(core):
    _race(core, _batch_work)


@payload
def race_pages(core):
    _race(core, _page_work)


@payload
def race_writeback(core):
    _race(core, _writeback_work)


@payload
def race_vswap_hooks(core):
    _race(core, _vswap_work)


@payload
def race_rebind(core):
    """A batch erase displacing pool entries (which pins the pool until it
    has handed them back, with the GIL) while the main thread closes the
    pool and binds a new one to the space, again and again."""
    from cores import load_zswap_core
    zc = load_zswap_core(core)
    space = zc.VSwap()
    entries = np.array(space.alloc_many(256), dtype=np.uint64)
    pools = [zc.Zswap(space, max_pool_bytes=NO_LIMIT)]
    stop = threading.Event()
    errors = []

    def erase():
        try:
            while not stop.is_set():
                space.zswap_entry_erase_many(entries)
        except BaseException as exc:      # noqa: BLE001 - reported below
            errors.append(exc)

    t = threading.Thread(target=erase)
    t.start()
    try:
        for r in range(200):
            pool = pools[-1]
            expect_ok_or_closed(lambda: pool.store_many(
                entries[:64], b"".join(page(i) for i in range(64))))
            pool.close()
            pools.append(zc.Zswap(space, max_pool_bytes=NO_LIMIT))
    finally:
        stop.set()
        t.join()
    assert not errors, errors
    pools[-1].close()


@payload
def race_swapfile_close(core):
    """SwapFile.close() racing reads and writes on other threads."""
    from cores import load_zswap_core
    zc = load_zswap_core(core)
    tmp = tempfile.mkdtemp(prefix="vswapfast-hostile-")
    for r in range(40):
        sf = zc.SwapFile(os.path.join(tmp, "swap"), 65 * PAGE)
        slots = [sf.alloc_slot() for _ in range(8)]
        errors = []

        def run():
            try:
                buf = bytearray(PAGE)
                for i in range(500):
                    s = slots[i % 8]
                    sf.write(s, page(i))
                    sf.read(s, buf)
            except ValueError as exc:
                if str(exc) != CLOSED_FILE:
                    errors.append(exc)

        ts = [threading.Thread(target=run) for _ in range(2)]
        for t in ts:
            t.start()
        for _ in range(r % 5):
            os.sched_yield()
        sf.close()
        for t in ts:
            t.join()
        assert not errors, errors


# --------------------------------------------------------------------------
# class 4: release order of what a batch displaced


class Closer:
    """A zswap entry object whose finalizer closes a pool."""

    def __init__(self, pool):
        self.pool = pool

    def __del__(self):
        try:
            self.pool.close()
        except ValueError:
            pass


def _release_order(core, op):
    env = Env(core)
    space, pool = env.space, env.pool
    entries = space.alloc_many(64)
    for i, e in enumerate(entries):
        if i % 2:
            space.zswap_entry_store(e, Closer(pool))
        else:
            assert pool.store(e, page(i))
    if op == "store":
        status = space.zswap_entry_store_many(entries, np.arange(1, 65, dtype=np.uint64))
    elif op == "erase":
        status = space.zswap_entry_erase_many(entries)
    else:
        status = space.free_many(entries)
    assert len(status) == 64
    gc.collect()
    assert space.stats()["zswap_entries"] == (64 if op == "store" else 0)
    expect_ok_or_closed(pool.stats)


@payload
def release_order_store(core):
    _release_order(core, "store")


@payload
def release_order_erase(core):
    _release_order(core, "erase")


@payload
def release_order_free(core):
    _release_order(core, "free")


@payload
def release_order_pool_calls(core):
    """Zswap.store/invalidate displacing objects whose __del__ closes the pool."""
    env = Env(core)
    space, pool = env.space, env.pool
    e = space.alloc(4)
    for i in range(4):
        space.zswap_entry_store(e + i, Closer(pool))
    expect_ok_or_closed(lambda: pool.store(e, page(0) * 1 + page(1) + page(2) + page(3)))
    env2 = Env(core)
    f = env2.space.alloc(4)
    for i in range(4):
        env2.space.zswap_entry_store(f + i, Closer(env2.pool))
    expect_ok_or_closed(lambda: env2.pool.invalidate(f, 4))
    arr = np.array([f, f + 1], dtype=np.uint64)
    expect_ok_or_closed(lambda: env2.pool.invalidate_many(arr))


def main(argv):
    if argv[1:2] == ["--list"]:
        print("\n".join(sorted(PAYLOADS)))
        return 0
    core, name = argv[1], argv[2]
    PAYLOADS[name](core)
    gc.collect()
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
