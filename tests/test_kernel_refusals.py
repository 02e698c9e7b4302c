"""`vswapfast kernel` refusals and --dry-run, against fake sysfs/procfs
trees: they run everywhere, root or not, and change nothing."""

import os
import subprocess
import sys

import pytest

from cores import child_env
from vswapfast import kernel
from vswapfast.kernel import KernelConfig, KernelError, Machine, preflight, run_kernel

VMSTAT = """nr_free_pages 1000
pswpin 0
pswpout 0
swpin_zero 0
swpout_zero 0
zswpin 0
zswpout 0
zswpwb 0
"""
CRYPTO = "name         : lzo\ndriver       : lzo-scomp\n\nname         : lzo-rle\n"
SWAPS_EMPTY = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"


def make_tree(root, enabled="N", swaps=(), cgroup="v1", debugfs=False, stored=0,
              crypto=CRYPTO):
    """A fake /sys and /proc under ``root``: a machine that passes every
    check unless told otherwise."""
    sysfs = root / "sys"
    proc = root / "proc"
    params = sysfs / "module" / "zswap" / "parameters"
    params.mkdir(parents=True)
    for name, value in (("enabled", enabled), ("compressor", "lzo"),
                        ("max_pool_percent", "20"), ("accept_threshold_percent", "90"),
                        ("shrinker_enabled", "N")):
        (params / name).write_text(value + "\n")
    cg = sysfs / "fs" / "cgroup"
    cg.mkdir(parents=True)
    if cgroup == "v1":
        (cg / "memory").mkdir()
        (cg / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    elif cgroup == "v2":
        (cg / "cgroup.controllers").write_text("cpu io memory pids\n")
        (cg / "cgroup.subtree_control").write_text("memory pids\n")
    elif cgroup == "v2-off":
        (cg / "cgroup.controllers").write_text("cpu io memory pids\n")
        (cg / "cgroup.subtree_control").write_text("pids\n")
    (sysfs / "kernel" / "debug").mkdir(parents=True)
    mounts = "proc /proc proc rw 0 0\n"
    if debugfs:
        z = sysfs / "kernel" / "debug" / "zswap"
        z.mkdir()
        (z / "stored_pages").write_text("%d\n" % stored)
        (z / "pool_total_size").write_text("%d\n" % (stored * 2048))
        mounts += "debugfs %s debugfs rw 0 0\n" % (sysfs / "kernel" / "debug")
    (proc / "sys" / "vm").mkdir(parents=True)
    (proc / "sys" / "vm" / "page-cluster").write_text("3\n")
    (proc / "vmstat").write_text(VMSTAT)
    (proc / "swaps").write_text(SWAPS_EMPTY + "".join(
        "%s file 524284 0 -2\n" % s for s in swaps))
    (proc / "crypto").write_text(crypto)
    (proc / "meminfo").write_text("MemTotal:       24683520 kB\nMemFree: 1 kB\n")
    (proc / "mounts").write_text(mounts)
    return sysfs, proc


def snapshot(root):
    """Every file under ``root`` with its contents, and every directory."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        out[dirpath] = None
        for name in filenames:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[path] = f.read()
    return out


def machine(tmp_path, euid=0, **kw):
    sysfs, proc = make_tree(tmp_path, **kw)
    return Machine(sys=str(sysfs), proc=str(proc), euid=euid)


CONFIG = KernelConfig(pages=64, frames=16)


def test_a_good_machine_passes(tmp_path):
    pre = preflight(machine(tmp_path), CONFIG)
    assert pre.cgroup.version == 1
    assert pre.params["enabled"] == "N"
    assert pre.memtotal == 24683520 * 1024
    assert pre.page_cluster == 3
    assert "zswpout" in pre.vmstat_names


def test_cgroup_v2_is_found(tmp_path):
    pre = preflight(machine(tmp_path, cgroup="v2"), CONFIG)
    assert pre.cgroup.version == 2
    assert pre.cgroup.limit_file == "memory.max"


@pytest.mark.parametrize("kw, message", [
    (dict(euid=1000), "needs root"),
    (dict(cgroup=None), "no memory cgroup controller"),
    (dict(cgroup="v2-off"), "no memory cgroup controller"),
    (dict(enabled="Y"), "zswap is already enabled"),
    (dict(swaps=("/dev/vdb",)), "swap is already active (/dev/vdb)"),
    (dict(debugfs=True, stored=12), "zswap already holds 12 pages"),
    (dict(crypto="name : deflate\n"), "no 'lzo' compressor"),
])
def test_refusals(tmp_path, kw, message):
    m = machine(tmp_path, **kw)
    before = snapshot(tmp_path)
    with pytest.raises(KernelError) as info:
        run_kernel(KernelConfig(pages=64, frames=16), machine=m)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert info.value.status == 2
    assert snapshot(tmp_path) == before


def test_refusal_without_zswap(tmp_path):
    m = machine(tmp_path)
    for name in os.listdir(m.zswap_params):
        os.unlink(os.path.join(m.zswap_params, name))
    with pytest.raises(KernelError, match="this kernel has no zswap"):
        run_kernel(KernelConfig(pages=64, frames=16), machine=m)


def test_debugfs_mounted_and_empty_is_fine(tmp_path):
    pre = preflight(machine(tmp_path, debugfs=True, stored=0), CONFIG)
    assert pre.debugfs_mounted


def test_dry_run_lists_every_change_and_makes_none(tmp_path):
    m = machine(tmp_path, euid=1000)
    before = snapshot(tmp_path)
    config = KernelConfig(pages=64, frames=16, compressor="lzo-rle", max_pool_percent=10,
                          shrinker=True, page_cluster=0, directory=str(tmp_path))
    lines = run_kernel(config, machine=m, dry_run=True)
    text = "\n".join(lines)
    assert "not root: a real run would refuse" in text
    assert "mount debugfs" in text
    assert "swap file" in text and "mkdtemp" in text
    assert "compressor = lzo-rle (was lzo" in text
    assert "max_pool_percent = 10 (was 20" in text
    assert "shrinker_enabled = Y (was N" in text
    assert "enabled = Y (was N" in text
    assert "page-cluster = 0 (was 3" in text
    assert "memory.limit_in_bytes" in text
    # Unchanged parameters are not written.
    assert "accept_threshold_percent =" not in text
    assert snapshot(tmp_path) == before


def test_dry_run_still_refuses(tmp_path):
    m = machine(tmp_path, euid=1000, enabled="Y")
    with pytest.raises(KernelError, match="already enabled"):
        run_kernel(KernelConfig(pages=64, frames=16), machine=m, dry_run=True)


def test_dry_run_with_debugfs_mounted_does_not_mount(tmp_path):
    m = machine(tmp_path, debugfs=True)
    lines = run_kernel(KernelConfig(pages=64, frames=16), machine=m, dry_run=True)
    assert not any("mount debugfs" in line for line in lines)


@pytest.mark.parametrize("kw, message", [
    (dict(workload="nope"), "unknown workload"),
    (dict(pages=0), "--pages must be at least 1"),
    (dict(max_pool_percent=101), "--max-pool-percent"),
    (dict(fill="300", workload="memhog"), "--fill must be"),
    (dict(page_cluster=11), "--page-cluster"),
    (dict(trace="x.keys"), "for the replay workload"),
])
def test_bad_config(kw, message):
    with pytest.raises(KernelError, match=message):
        KernelConfig(**kw).check()


def _cli(*args):
    env, cwd = child_env()
    return subprocess.run([sys.executable, "-m", "vswapfast", "kernel", *args],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          cwd=cwd, env=env, timeout=120)


def test_cli_refusal_is_one_line_and_status_2(tmp_path):
    sysfs, proc = make_tree(tmp_path, enabled="Y")
    before = snapshot(tmp_path)
    r = _cli("--sysfs", str(sysfs), "--procfs", str(proc), "--pages", "64")
    assert r.returncode == 2
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("vswapfast: error: ")
    # As root the first refusal is zswap's state; otherwise it is root itself.
    assert "already enabled" in lines[0] or "needs root" in lines[0]
    assert snapshot(tmp_path) == before


def test_cli_dry_run(tmp_path):
    sysfs, proc = make_tree(tmp_path)
    before = snapshot(tmp_path)
    r = _cli("memhog", "--sysfs", str(sysfs), "--procfs", str(proc), "--pages", "64",
             "--dry-run", "--dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("dry run: nothing changed; a run would:")
    assert "enabled = Y (was N" in r.stdout
    assert snapshot(tmp_path) == before


def test_cli_trace_only_for_replay():
    r = _cli("usemem", "some.trace", "--dry-run")
    assert r.returncode == 2
    assert "a trace is for the replay workload" in r.stderr


def test_program_matches_the_replay_pages():
    """The child writes, for each key, the page the replay gives it."""
    config = KernelConfig(workload="replay", keys=300, events=3000, frames=50)
    workload = kernel.build_workload(config)
    program = kernel.build_program(workload)
    keys = workload.trace.keys
    firsts = program.content >= 0
    expected = workload.factory.pages(keys[firsts])
    assert (program.pages[program.content[firsts]] == expected).all()
    assert program.slots == len(set(keys.tolist()))
    # One store per distinct key (no writes in the default trace).
    assert firsts.sum() == program.slots


def test_filled_pages():
    pages, zero = kernel.FilledPages("mixed").page_batch([0, 1, 2, 3])
    assert zero.tolist() == [True, False, True, False]
    assert (pages[1] == pages[1][0]).all() and pages[1][0] != 0
    pages, zero = kernel.FilledPages("0xa5").page_batch([7])
    assert (pages == 0xA5).all() and not zero.any()


def test_cli_help_names_every_option():
    r = _cli("--help")
    assert r.returncode == 0
    for option in ("--pages", "--frames", "--fill", "--compressor", "--model-compressor",
                   "--max-pool-percent", "--accept-threshold-percent", "--shrinker",
                   "--page-cluster", "--swapfile-size", "--dir", "--core", "--reclaim",
                   "--sysfs", "--procfs", "--dry-run", "--json"):
        assert option in r.stdout


def test_dry_run_of_the_kernel_reclaim(tmp_path):
    m = machine(tmp_path, euid=1000)
    lines = run_kernel(KernelConfig(workload="replay", keys=300, events=3000,
                                    reclaim="kernel"), machine=m, dry_run=True)
    assert any("memory cgroup" in line for line in lines)


def test_filled_pages_replay_through_the_model():
    """The replay takes FilledPages as it takes a PageFactory, and verifies
    every swapped-in page against it."""
    from vswapfast.replay import ReplayConfig, run_replay
    config = KernelConfig(workload="memhog", pages=512, frames=128, fill="mixed")
    workload = kernel.build_workload(config)
    report = run_replay(workload.trace, ReplayConfig(frames=128, floor=False),
                        factory=workload.factory)
    assert report.swap_ins == 512 and report.mismatches == 0
    assert report.verified == 512
    assert report.zero_pages == report.swap_outs // 2 or abs(
        report.zero_pages - report.swap_outs / 2) <= 1
