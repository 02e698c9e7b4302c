"""Stateful testing of every swap metadata design against a dict model of the
contract (docs/designs.md), on both cores.

The model fixes only what the contract fixes: where a design may differ (does
a zswap store clear the zero bit? does set_zero drop the zswap entry?) the
model forgets the value (UNKNOWN) and learns it back from the next read.
"""

import pytest
from array import array
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (Bundle, RuleBasedStateMachine, consumes, invariant,
                                 rule, run_state_machine_as_test)

from design_support import PHYSICAL, design_params, make
from vswapfast.errors import InvalidEntryError, SwapCacheError, SwapFullError

SETTINGS = settings(
    max_examples=40,
    stateful_step_count=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)

UNKNOWN = object()
NR_SLOTS = 40
values = st.integers(1, (1 << 48) - 1) | st.integers(1, 5)
shadows = st.integers(0, (1 << 48) - 1)


class Page:
    def __init__(self, folio, memcg):
        self.count = 1
        self.folio = folio
        self.shadow = None
        self.handle = None
        self.zero = False


def machine_for(param):
    class DesignMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.d = make(param, NR_SLOTS)
            self.model = {}

        def teardown(self):
            self.d.close()

        def pick(self, data_index):
            if not self.model:
                return None
            keys = sorted(self.model)
            return keys[data_index % len(keys)]

        @rule(folio=values, memcg=st.integers(0, 65535))
        def alloc(self, folio, memcg):
            full = param[1] in PHYSICAL and len(self.model) == NR_SLOTS - 1
            try:
                e = self.d.folio_alloc_swap(folio, memcg)
            except SwapFullError:
                assert full or param[1] not in PHYSICAL
                return
            assert not full
            assert e not in self.model
            self.model[e] = Page(folio, memcg)

        @rule(i=st.integers(0, 100), out=st.sampled_from(["zswap", "disk", "zero"]),
              n=st.integers(0, 5))
        def swap_out_many(self, i, out, n):
            before = len(self.model)
            try:
                es = self.d.swap_out_many(n, out)
            except SwapFullError:
                assert len(self.d) == before
                return
            for e in es:
                assert e not in self.model
                p = self.model[e] = Page(e, 0)
                p.folio = None
                p.shadow = UNKNOWN
                p.handle = UNKNOWN if out == "zswap" else None
                p.zero = out == "zero"

        @rule(i=st.integers(0, 100))
        def duplicate(self, i):
            e = self.pick(i)
            if e is None:
                return
            p = self.model[e]
            p.count += 1
            assert self.d.swap_duplicate(e) == p.count

        @rule(i=st.integers(0, 100))
        def free(self, i):
            e = self.pick(i)
            if e is None:
                return
            self.d.swap_free(e)
            p = self.model[e]
            p.count -= 1
            if p.count == 0:
                del self.model[e]

        @rule(i=st.integers(0, 100), h=values)
        def zstore(self, i, h):
            e = self.pick(i)
            if e is None:
                return
            p = self.model[e]
            old = self.d.zswap_entry_store(e, h)
            if p.handle is not UNKNOWN:
                assert old == p.handle
            p.handle = h
            p.zero = UNKNOWN

        @rule(i=st.integers(0, 100))
        def zerase(self, i):
            e = self.pick(i)
            if e is None:
                return
            p = self.model[e]
            old = self.d.zswap_entry_erase(e)
            if p.handle is not UNKNOWN:
                assert old == p.handle
            p.handle = None

        @rule(i=st.integers(0, 100))
        def set_zero(self, i):
            e = self.pick(i)
            if e is None:
                return
            self.d.set_zero(e)
            p = self.model[e]
            p.zero = True
            p.handle = UNKNOWN if p.handle is not None else None

        @rule(i=st.integers(0, 100))
        def writeout(self, i):
            e = self.pick(i)
            if e is None:
                return
            slot = self.d.swap_writeout(e)
            assert self.d.get_slot(e) == slot
            p = self.model[e]
            p.handle = None
            p.zero = UNKNOWN

        @rule(i=st.integers(0, 100), shadow=shadows)
        def cache_del(self, i, shadow):
            e = self.pick(i)
            if e is None:
                return
            p = self.model[e]
            if p.folio is None:
                with pytest.raises(SwapCacheError):
                    self.d.swap_cache_del_folio(e, 1, shadow)
                return
            with pytest.raises(SwapCacheError):
                self.d.swap_cache_del_folio(e, p.folio % ((1 << 48) - 1) + 1, shadow)
            self.d.swap_cache_del_folio(e, p.folio, shadow)
            p.folio = None
            p.shadow = shadow

        @rule(i=st.integers(0, 100), folio=values)
        def cache_add(self, i, folio):
            e = self.pick(i)
            if e is None:
                return
            p = self.model[e]
            if p.folio is not None:
                with pytest.raises(SwapCacheError):
                    self.d.swap_cache_add_folio(e, folio)
                return
            old = self.d.swap_cache_add_folio(e, folio)
            if p.shadow is not UNKNOWN:
                assert old == p.shadow
            p.folio = folio
            p.shadow = None

        @rule(x=st.integers(-5, NR_SLOTS + 5) | st.integers(1 << 40, 1 << 70))
        def invalid(self, x):
            if x in self.model:
                return
            with pytest.raises(InvalidEntryError):
                self.d.swap_count(x)
            with pytest.raises(InvalidEntryError):
                self.d.zswap_entry_store(x, 1)

        @invariant()
        def agrees(self):
            d = self.d
            assert len(d) == len(self.model)
            assert d.stats()["used"] == len(self.model)
            if self.model:
                es = array("Q", sorted(self.model))
                out = array("Q", bytes(8 * len(es)))
                d.zswap_entry_load_many(es, out)
            for k, (e, p) in enumerate(sorted(self.model.items())):
                assert d.swap_count(e) == p.count
                assert d.swap_cache_get_folio(e) == p.folio
                if p.folio is None:
                    shadow = d.swap_cache_get_shadow(e)
                    if p.shadow is UNKNOWN:
                        p.shadow = shadow
                    assert shadow == p.shadow
                h = d.zswap_entry_load(e)
                if p.handle is UNKNOWN:
                    p.handle = h
                assert h == p.handle
                assert out[k] == (h or 0)
                z = d.is_zero(e)
                if p.zero is UNKNOWN:
                    p.zero = z
                assert z == p.zero
            if all(p.handle is None for p in self.model.values()):
                assert d.zswap_empty()

    return DesignMachine


@pytest.mark.parametrize("param", design_params())
def test_design_state_machine(param):
    run_state_machine_as_test(machine_for(param), settings=SETTINGS)
