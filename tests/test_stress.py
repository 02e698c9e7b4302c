"""The thread-safety stress test (tests/stress.py), run for each core and each
zswap index design the core has, at sizes that keep this module within about
half a minute.  Bigger runs: ``python tests/stress.py --threads N --ops M
--seed S`` (see README.md, "Thread safety")."""

import os

import pytest

import stress

#: (threads, operations per thread) for each core.
SIZES = {"compiled": (4, 15000), "pure": (4, 3000)}
#: Rounds of stress.recycle() for each core.
RECYCLE_ROUNDS = {"compiled": 1000, "pure": 150}


def core_names():
    if os.environ.get("VSWAPFAST_PURE") == "1":
        return ["pure"]
    return ["compiled", "pure"]


def cases():
    # A list, not a generator: pytest deprecates parametrizing over
    # iterables that are not collections.
    return [pytest.param(core, design, seed, id="%s-%s" % (core, design))
            for seed, core in enumerate(core_names(), 1)
            for design in stress.INDEX_DESIGNS]


def need_design(core_name, design):
    if design not in stress.index_designs(core_name):
        pytest.skip("the %s core has no %r index design" % (core_name, design))


def check_result(result):
    assert result["ok"], "\n".join(result["errors"])


@pytest.mark.parametrize("core_name,design,seed", cases())
def test_stress(core_name, design, seed):
    need_design(core_name, design)
    threads, ops = SIZES[core_name]
    result = stress.run(core_name, threads, ops, seed, design)
    check_result(result)
    assert result["invariants"] == "ok"
    # The run reached what it is there for: the pool limit, writeback from
    # the store path and from shrink, refused stores, frees of live entries.
    assert result["pool_pool_limit_hit"] > 0
    assert result["pool_written_back_pages"] > result["shrink_written"] > 0
    assert result["rejected"] > 0
    assert result["pool2_reject_compress_fail"] > 0
    assert result["frees"] > 0 and result["observer_rounds"] > 0


@pytest.mark.parametrize("core_name,design,seed", cases())
def test_freed_entries_are_empty_when_taken_again(core_name, design, seed):
    """Clusters freed by one thread and taken at once by another (both in
    batch calls, without the GIL): a free must have dropped every zswap entry
    before its entries can be handed out again."""
    need_design(core_name, design)
    result = stress.recycle(core_name, design, RECYCLE_ROUNDS[core_name], seed)
    if result.get("skipped"):
        pytest.skip(result["skipped"])
    check_result(result)
    assert result["stale"] == 0


@pytest.mark.parametrize("core_name", core_names())
def test_stress_many_threads(core_name):
    """More threads than CPUs, fewer operations each."""
    result = stress.run(core_name, 12, 1500 if core_name == "compiled" else 400, 99, "vswap")
    check_result(result)
    assert result["invariants"] == "ok"


@pytest.mark.parametrize("core_name", core_names())
def test_one_thread_is_deterministic(core_name):
    """With one thread nothing interleaves: the same seed gives the same run."""
    def counts():
        result = stress.run(core_name, 1, 1500, 5, "vswap")
        check_result(result)
        return {k: v for k, v in result.items()
                if not k.startswith(("seconds", "observer", "lock_", "pool_lru_lock",
                                     "pool_index_lock", "index_lock"))}

    assert counts() == counts()
