"""Re-entrancy fuzzer: random call sequences whose arguments call back in.

Hypothesis drives a space, a swap file and a pool of one core through random
calls.  Arguments are often objects whose conversion hooks (``__index__``,
``__bool__``, ``__float__``, ``__buffer__`` where Python has it) run another
random call on the same objects first, ``close()`` included, and the zswap
entries stored through the ``VSwap`` API have a ``__del__`` that does the
same.  Every call must either succeed or raise a documented exception;
nothing may crash or hang; after every step the invariants hold:

- the space's statistics match its contents, and so do the pool's;
- every page read back is one that was stored at that entry (or there is
  none: ``NoPageError``), and no descriptor names a slot its pool does not
  own;
- once everything is freed and closed, no object stored in the space is
  still alive (no leaked references).

Run in a child process by ``tests/test_reentrancy_fuzz.py``, and by
``.ci/sanitize address`` against an AddressSanitizer build:

    python tests/reentrancy_fuzz.py --core compiled --examples 200 --seed 1
"""

import argparse
import gc
import os
import random
import sys
import tempfile
import weakref

import numpy as np
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cores import load_zswap_core  # noqa: E402
from hostile import FloatHook, buffer_hook  # noqa: E402
from vswapfast.errors import VSwapError  # noqa: E402

PAGE = 4096
NO_LIMIT = 1 << 40
#: Hooks that ran over the whole run, and how many closed a pool.
COUNTS = {"reentries": 0, "closes": 0}
#: What a call may raise: the documented errors, and nothing else.
DOCUMENTED = (ValueError, TypeError, LookupError, VSwapError, OverflowError)


def make_page(tag):
    if tag % 5 == 0:
        return bytes(PAGE)
    return (("re-entry %d " % tag) * 400).encode()[:PAGE]


class Reentry:
    """A hook body: one random call on the machine's objects, errors
    swallowed (a hook that raises just makes the outer call raise)."""

    def __init__(self, machine, seed):
        self.machine = machine
        self.rng = random.Random(seed)

    def __call__(self):
        m = self.machine
        COUNTS["reentries"] += 1
        if m.depth > 2:
            return
        m.depth += 1
        try:
            choice = self.rng.randrange(9)
            entries = sorted(m.allocated)
            e = self.rng.choice(entries) if entries else 1 << 9
            if choice == 0:
                COUNTS["closes"] += 1
                m.pool.close()
            elif choice == 1:
                m.pool.shrink(1)
            elif choice == 2:
                m.space.free(e)
                # A finalizer the free ran may have allocated e again.
                if e not in m.space:
                    m.allocated.discard(e)
            elif choice == 3:
                tag = self.rng.randrange(1000)
                if m.pool.store(e, make_page(tag)):
                    m.history.setdefault(e, set()).add(make_page(tag))
            elif choice == 4:
                m.pool.invalidate(e)
            elif choice == 5:
                m.allocated.add(m.space.alloc())
            elif choice == 6:
                m.pool.load(e)
            elif choice == 7:
                m.space.zswap_entry_erase(e)
            else:
                m.reopen()
        except DOCUMENTED:
            pass
        finally:
            m.depth -= 1


class Hooked:
    """An entry whose ``__index__`` re-enters first."""

    def __init__(self, action, value):
        self.action = action
        self.value = value

    def __index__(self):
        self.action()
        return self.value


class HookedBool:
    def __init__(self, action, value):
        self.action = action
        self.value = value

    def __bool__(self):
        self.action()
        return self.value


class Token:
    """A zswap entry stored through the VSwap API; its finalizer re-enters."""

    def __init__(self, action):
        self.action = action

    def __del__(self):
        try:
            self.action()
        except Exception:       # noqa: BLE001 - a finalizer must not raise
            pass


def machine_for(core_name):
    zc = load_zswap_core(core_name)

    class ReentryMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.tmp = tempfile.mkdtemp(prefix="vswapfast-fuzz-")
            self.space = zc.VSwap(cluster_shift=4, max_clusters=64)
            self.sf = zc.SwapFile(os.path.join(self.tmp, "swap"), 129 * PAGE)
            self.pool = None
            self.files = [self.sf]
            self.allocated = set()
            self.history = {}       # entry -> every page ever stored there
            self.tokens = []        # weak references to stored objects
            self.depth = 0
            self.reopen()

        def reopen(self):
            """A new pool, if the old one is closed (with a new file, so that
            slots left behind by the old one would show)."""
            if self.pool is not None:
                try:
                    self.pool.stats()
                    return
                except ValueError:
                    pass
            sf = zc.SwapFile(os.path.join(self.tmp, "swap%d" % len(self.files)), 129 * PAGE)
            self.files.append(sf)
            self.pool = zc.Zswap(self.space, sf, max_pool_bytes=NO_LIMIT)

        def entry_arg(self, e, hooked, seed):
            if not hooked:
                return e
            return Hooked(Reentry(self, seed), e)

        def pick(self, i):
            entries = sorted(self.allocated)
            return entries[i % len(entries)] if entries else (1 << 4)

        def call(self, fn):
            try:
                return fn()
            except DOCUMENTED:
                return None

        # -- rules ------------------------------------------------------------

        @rule(order=st.integers(0, 2))
        def alloc(self, order):
            e = self.call(lambda: self.space.alloc(1 << order))
            if e is not None:
                self.allocated.update(range(e, e + (1 << order)))

        @rule(i=st.integers(0, 1 << 10), hooked=st.booleans(), seed=st.integers())
        def free(self, i, hooked, seed):
            e = self.pick(i)
            if self.call(lambda: self.space.free(self.entry_arg(e, hooked, seed))) is None:
                if e in self.space:
                    return
            self.allocated.discard(e)

        @rule(i=st.integers(0, 1 << 10), tag=st.integers(0, 999), hooked=st.booleans(),
              seed=st.integers(), buffered=st.booleans())
        def store(self, i, tag, hooked, seed, buffered):
            e = self.pick(i)
            data = make_page(tag)
            page = data
            if buffered:
                page = buffer_hook(Reentry(self, seed), data) or data
            if self.call(lambda: self.pool.store(self.entry_arg(e, hooked, seed), page)):
                self.history.setdefault(e, set()).add(data)

        @rule(i=st.integers(0, 1 << 10), hooked=st.booleans(), seed=st.integers(),
              into=st.booleans())
        def load(self, i, hooked, seed, into):
            e = self.pick(i)
            out = bytearray(PAGE) if into else None
            got = self.call(lambda: self.pool.load(self.entry_arg(e, hooked, seed), out))
            if got is not None:
                assert bytes(got) in self.history.get(e, ()), "load of %#x" % e

        @rule(i=st.integers(0, 1 << 10), hooked=st.booleans(), seed=st.integers())
        def read(self, i, hooked, seed):
            e = self.pick(i)
            got = self.call(lambda: self.pool.read(self.entry_arg(e, hooked, seed)))
            if got is not None:
                assert bytes(got) in self.history.get(e, ()), "read of %#x" % e

        @rule(i=st.integers(0, 1 << 10), hooked=st.booleans(), seed=st.integers())
        def invalidate(self, i, hooked, seed):
            e = self.pick(i)
            self.call(lambda: self.pool.invalidate(self.entry_arg(e, hooked, seed)))

        @rule(nr=st.integers(0, 4))
        def shrink(self, nr):
            self.call(lambda: self.pool.shrink(nr))

        @rule(n=st.integers(1, 6), tag=st.integers(0, 999), seed=st.integers())
        def batch(self, n, tag, seed):
            entries = sorted(self.allocated)[:n] or [1 << 4]
            arr = np.array(entries, dtype=np.uint64)
            pages = b"".join(make_page(tag + k) for k in range(len(entries)))
            status = self.call(lambda: self.pool.store_many(arr, pages))
            if status is not None:
                for k, e in enumerate(entries):
                    if status[k] == 0:
                        self.history.setdefault(e, set()).add(make_page(tag + k))
            out = np.zeros(len(entries) * PAGE, dtype=np.uint8)
            status = self.call(lambda: self.pool.load_many(arr, out))
            if status is not None:
                for k, e in enumerate(entries):
                    if status[k] == 0:
                        assert out[k * PAGE:(k + 1) * PAGE].tobytes() in self.history.get(e, ())
            self.call(lambda: self.pool.invalidate_many(arr))
            handles = np.arange(1, len(entries) + 1, dtype=np.uint64)
            self.call(lambda: self.space.zswap_entry_store_many(arr, handles, old=handles))
            self.call(lambda: self.space.zswap_entry_erase_many(arr))

        @rule(i=st.integers(0, 1 << 10), seed=st.integers())
        def store_token(self, i, seed):
            e = self.pick(i)
            t = Token(Reentry(self, seed))
            self.tokens.append(weakref.ref(t))
            self.call(lambda: self.space.zswap_entry_store(e, t))
            del t

        @rule(i=st.integers(0, 1 << 10), hooked=st.booleans(), seed=st.integers())
        def erase(self, i, hooked, seed):
            e = self.pick(i)
            self.call(lambda: self.space.zswap_entry_erase(self.entry_arg(e, hooked, seed)))

        @rule(what=st.sampled_from(["writeback", "exclusive", "threshold", "limit"]),
              seed=st.integers(), on=st.booleans())
        def configure(self, what, seed, on):
            pool = self.pool
            if what == "writeback":
                self.call(lambda: setattr(pool, "writeback", HookedBool(Reentry(self, seed), on)))
            elif what == "exclusive":
                self.call(lambda: setattr(pool, "exclusive_loads",
                                          HookedBool(Reentry(self, seed), on)))
            elif what == "threshold":
                self.call(lambda: setattr(pool, "accept_threshold_percent",
                                          FloatHook(Reentry(self, seed), 50.0 if on else 90.0)))
            else:
                self.call(lambda: setattr(pool, "max_pool_bytes", 16 * PAGE if on else NO_LIMIT))

        @rule()
        def close(self):
            self.pool.close()

        @rule()
        def reopen_pool(self):
            self.reopen()

        # -- invariants --------------------------------------------------------

        @invariant()
        def space_matches_its_stats(self):
            space = self.space
            entries = list(space.entries())
            s = space.stats()
            assert s["entries"] == len(entries) == len(space)
            assert sorted(self.allocated) == sorted(entries)
            held = sum(space.zswap_entry_load(e) is not None for e in entries)
            assert s["zswap_entries"] == held
            assert space.zswap_empty() == (held == 0)

        @invariant()
        def pool_matches_its_stats(self):
            try:
                st_ = self.pool.stats()
            except ValueError:
                return
            assert st_["stored_pages"] + st_["zero_pages"] == len(self.pool)
            assert st_["lru_length"] <= st_["stored_pages"]
            views = [self.space.zswap_entry_load(e) for e in sorted(self.allocated)]
            pool_views = [v for v in views if hasattr(v, "zero")]
            assert st_["zero_pages"] == sum(v.zero for v in pool_views)
            assert st_["stored_pages"] == sum(not v.zero for v in pool_views)
            slots = [self.space.get_slot(e) for e in sorted(self.allocated)]
            owned = [s for s in slots if s]
            assert len(set(owned)) == len(owned), "a slot backs two entries"
            assert len(self.pool.swapfile) == len(owned), "slots without an owner"

        @invariant()
        def pages_read_back(self):
            for e in sorted(self.allocated):
                try:
                    got = self.pool.read(e)
                except DOCUMENTED:
                    continue
                assert bytes(got) in self.history.get(e, ()), "read of %#x" % e

        def teardown(self):
            for e in sorted(self.allocated):
                self.call(lambda: self.space.free(e))
            self.allocated.clear()
            self.call(self.pool.close)
            for f in self.files:
                self.call(f.close)
            self.space = self.pool = self.sf = None
            self.files = []
            gc.collect()
            alive = [t for t in self.tokens if t() is not None]
            assert not alive, "%d stored objects leaked" % len(alive)

    return ReentryMachine


def run(core_name, examples, seed):
    machine = machine_for(core_name)
    machine.TestCase.settings = settings(
        max_examples=examples, stateful_step_count=25, deadline=None, database=None,
        suppress_health_check=list(HealthCheck), derandomize=False)
    random.seed(seed)
    run_state_machine_as_test(machine, settings=machine.TestCase.settings)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--core", default="compiled", choices=["compiled", "pure"])
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    run(args.core, args.examples, args.seed)
    print("reentries %(reentries)d closes %(closes)d" % COUNTS)
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
