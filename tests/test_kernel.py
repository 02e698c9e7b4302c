"""`vswapfast kernel` on the real kernel: where the machine allows it (root,
zswap, a memory cgroup, nobody else using zswap or swap), a small run, and
every setting back as it was afterwards, also when the workload process is
killed and when the command gets SIGTERM or SIGINT mid-run."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from cores import child_env
from vswapfast.kernel import (
    CGROUP_PREFIX, KernelConfig, KernelError, KernelFailure, Machine, active_swaps,
    debugfs_mounted, find_memory_cgroup, preflight, read_zswap_params, run_kernel,
)

MACHINE = Machine()


def _why_not():
    try:
        preflight(MACHINE, KernelConfig())
    except KernelError as exc:
        return str(exc)
    except OSError as exc:
        return "cannot read the machine's state (%s)" % exc
    return None


WHY_NOT = _why_not()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason="no kernel run here: %s" % WHY_NOT)


def _core():
    try:
        import vswapfast._zswap  # noqa: F401
        return "compiled"
    except ImportError:
        return "pure"


def state(directory):
    """Everything a run may touch."""
    cg = find_memory_cgroup(MACHINE)
    with open(os.path.join(MACHINE.proc, "sys", "vm", "page-cluster")) as f:
        page_cluster = f.read()
    return {
        "params": read_zswap_params(MACHINE),
        "swaps": active_swaps(MACHINE),
        "debugfs": debugfs_mounted(MACHINE),
        "cgroups": sorted(n for n in os.listdir(cg.parent) if n.startswith(CGROUP_PREFIX)),
        "page_cluster": page_cluster,
        "directory": sorted(os.listdir(directory)),
    }


def config(tmp_path, **kw):
    kw.setdefault("pages", 8192)
    kw.setdefault("frames", 2048)
    return KernelConfig(directory=str(tmp_path), core=_core(), **kw)


def test_usemem_against_the_model(tmp_path):
    before = state(tmp_path)
    result = run_kernel(config(tmp_path, page_cluster=0))
    assert state(tmp_path) == before
    k, m = result.kernel, result.model
    assert k["swap_outs"] > 0 and k["swap_ins"] > 0 and k["stored_pages"] > 0
    # The acceptance of the calibration: counts within 10%, pool bytes per
    # stored page within 5%.
    assert abs(result.ratio("swap_outs") - 1) <= 0.10, result.format_text()
    assert abs(result.ratio("swap_ins") - 1) <= 0.10, result.format_text()
    assert abs(result.ratio("bytes_per_page") - 1) <= 0.05, result.format_text()
    assert result.kernel_detail["params"]["enabled"] == "Y"
    assert result.kernel_detail["params"]["compressor"] == "lzo"
    assert result.kernel_detail["page_cluster"] == 0


def test_memhog_zero_pages(tmp_path):
    before = state(tmp_path)
    result = run_kernel(config(tmp_path, workload="memhog"))
    assert state(tmp_path) == before
    assert result.kernel["zero_pages"] > 0
    assert abs(result.ratio("zero_pages") - 1) <= 0.10, result.format_text()


def _kill_when_running(stop, sig=signal.SIGKILL, target=None):
    """Once a workload process is in a run's cgroup and zswap holds pages,
    send ``sig`` to it (or to ``target``)."""
    cg = find_memory_cgroup(MACHINE)
    stored = os.path.join(MACHINE.debugfs, "zswap", "stored_pages")
    while not stop.is_set():
        for name in os.listdir(cg.parent):
            if not name.startswith(CGROUP_PREFIX):
                continue
            try:
                with open(os.path.join(cg.parent, name, "cgroup.procs")) as f:
                    pids = [int(p) for p in f.read().split()]
                with open(stored) as f:
                    pages = int(f.read())
            except (OSError, ValueError):
                continue
            if pids and pages > 1000:
                os.kill(target if target is not None else pids[0], sig)
                return
        time.sleep(0.005)


def test_child_killed_mid_run(tmp_path):
    before = state(tmp_path)
    stop = threading.Event()
    killer = threading.Thread(target=_kill_when_running, args=(stop,), daemon=True)
    killer.start()
    try:
        with pytest.raises(KernelFailure, match="died|failed"):
            run_kernel(config(tmp_path, pages=65536, frames=4096))
    finally:
        stop.set()
        killer.join()
    assert state(tmp_path) == before


@pytest.mark.parametrize("sig, status, message", [
    (signal.SIGTERM, 1, "terminated by signal"),
    (signal.SIGINT, 130, "interrupted"),
])
def test_command_signalled_mid_run(tmp_path, sig, status, message):
    before = state(tmp_path)
    env, cwd = child_env()
    proc = subprocess.Popen(
        [sys.executable, "-m", "vswapfast", "kernel", "--pages", "65536", "--frames", "4096",
         "--dir", str(tmp_path), "--core", _core()],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd, env=env)
    stop = threading.Event()
    killer = threading.Thread(target=_kill_when_running, args=(stop, sig, proc.pid),
                              daemon=True)
    killer.start()
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        stop.set()
        killer.join()
    assert proc.returncode == status, err
    assert message in err
    assert state(tmp_path) == before
