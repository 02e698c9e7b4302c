"""Which swap metadata designs the suite runs, on which cores."""

import pytest

from cores import core_names
from vswapfast.designs import available_designs, design_class

#: Designs whose loads (zswap_entry_load, swap_cache_get_*) take no lock.
#: Not vswap (v6's vswap_iter() locks the cluster for every descriptor read)
#: nor vswap-table (RFC v2 reads the swap cache under RCU, but
#: vswap_zswap_load() takes the cluster lock).
LOCK_FREE_LOADS = {"xarray", "swap-table-p1", "swap-table"}
#: Designs whose entries are the device's slots (slot 0 never given out);
#: the virtual designs' entries are virtual slots.
PHYSICAL = {"rbtree", "xarray", "swap-table-p1", "swap-table"}


def design_params():
    """(core, design name) pairs for every design each core has."""
    params = []
    for core in core_names():
        for name in available_designs(core):
            params.append(pytest.param((core, name), id="%s-%s" % (name, core)))
    return params


def both_cores_params():
    """Designs both cores have (for comparing them)."""
    cores = core_names()
    if len(cores) < 2:
        return []
    names = set(available_designs("compiled")) & set(available_designs("pure"))
    return [pytest.param(n, id=n) for n in sorted(names)]


def make(param, nr_slots=4096):
    core, name = param
    return design_class(name, core)(nr_slots)
