"""Ground truth: a workload under the running kernel's zswap and under the model.

``run_kernel(config)`` runs one workload twice:

* **kernel side**: in a child process confined by a memory cgroup whose limit
  is the workload's frames plus the child's own measured baseline, with a
  swap file of its own (in a private ``mkdtemp`` directory) and zswap
  enabled with the run's compressor, ``max_pool_percent``,
  ``accept_threshold_percent`` and shrinker setting.  While the child runs,
  debugfs (``zswap/pool_total_size``, ``zswap/stored_pages``) is sampled for
  the peaks; ``/proc/vmstat`` is read before and after for the deltas of
  ``zswpout``, ``zswpin``, ``zswpwb``, ``pswpout``, ``pswpin``,
  ``swpout_zero`` and ``swpin_zero``.
* **model side**: the same accesses, page contents and settings through
  :func:`vswapfast.replay.run_replay`, an exact LRU of the same frames.

Workloads: ``usemem`` (write N pages, then read them back), ``memhog``
(the same over same-filled pages) and ``replay`` (a trace and ``--frames``,
the page contents ``vswapfast replay`` gives it).

What it touches, and how it puts it back
----------------------------------------
Every change is an entry on an undo stack, undone in reverse order on
success, on error, on Ctrl-C and on SIGTERM/SIGHUP (the signals are blocked
while undoing): the child is killed, the cgroup removed, the swap file
swapped off and deleted with its directory, each zswap parameter written
back to its old value (``enabled`` first), and debugfs unmounted if this
run mounted it.  Parameters that already have the run's value are not
written.

It refuses to start (:class:`KernelError`, one line) without root, without
zswap, without a memory cgroup controller (v1 ``memory.limit_in_bytes`` or
v2 ``memory.max`` with the controller enabled for children), without the
compressor in the kernel, without ``mkswap``/``swapon``/``swapoff``, and
when zswap may be in use by someone else: zswap already enabled, any swap
device already active (zswap only holds pages of active swap, and another
device would take part of the run's swap-outs and pollute the global vmstat
counters), or pages already in the pool (read when debugfs is mounted;
with no swap active the pool cannot hold any).  ``dry_run`` checks the same
(except root) and lists every change without making any.

The paths of sysfs and procfs come from a :class:`Machine`, so that the
checks can be pointed at a fake tree.
"""

import ctypes
import dataclasses
import errno
import mmap
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from vswapfast.workload import PAGE_SIZE, PageFactory

WORKLOADS = ("usemem", "memhog", "replay")
#: vmstat counters read before and after (those present are used).
VMSTAT_COUNTERS = ("zswpout", "zswpin", "zswpwb", "pswpout", "pswpin",
                   "swpout_zero", "swpin_zero")
ZSWAP_PARAMS = ("compressor", "max_pool_percent", "accept_threshold_percent",
                "shrinker_enabled", "enabled")
DEFAULT_PAGES = 24576           # 96 MiB of workload pages
DEFAULT_FRAMES = 8192           # 32 MiB of frames
CGROUP_PREFIX = "vswapfast-kernel-"


class KernelError(Exception):
    """A refusal or bad input (exit status 2); the message is one line."""
    status = 2


class KernelFailure(KernelError):
    """A step of a run failed, or the run was interrupted (exit status 1);
    every change made was undone first."""
    status = 1


# -- the machine --------------------------------------------------------------

@dataclass(frozen=True)
class Machine:
    """Where sysfs and procfs are (a fake tree in tests), and who we are."""
    sys: str = "/sys"
    proc: str = "/proc"
    euid: Optional[int] = None          # None: os.geteuid()

    @property
    def zswap_params(self):
        return os.path.join(self.sys, "module", "zswap", "parameters")

    @property
    def debugfs(self):
        return os.path.join(self.sys, "kernel", "debug")

    @property
    def cgroup_root(self):
        return os.path.join(self.sys, "fs", "cgroup")

    @property
    def page_cluster(self):
        return os.path.join(self.proc, "sys", "vm", "page-cluster")

    def proc_file(self, name):
        return os.path.join(self.proc, name)

    def is_root(self):
        return (os.geteuid() if self.euid is None else self.euid) == 0


def _read(path):
    with open(path) as f:
        return f.read().strip()


def _write(path, value):
    with open(path, "w") as f:
        f.write(str(value))


def read_vmstat(machine):
    """The counters of ``VMSTAT_COUNTERS`` that ``/proc/vmstat`` has."""
    out = {}
    with open(machine.proc_file("vmstat")) as f:
        for line in f:
            name, _, value = line.partition(" ")
            if name in VMSTAT_COUNTERS:
                out[name] = int(value)
    return out


def read_zswap_params(machine):
    """The zswap module parameters of ``ZSWAP_PARAMS``, as text."""
    return {name: _read(os.path.join(machine.zswap_params, name)) for name in ZSWAP_PARAMS}


def active_swaps(machine):
    """The devices and files of ``/proc/swaps`` (after its header)."""
    with open(machine.proc_file("swaps")) as f:
        lines = f.read().splitlines()[1:]
    return [line.split()[0] for line in lines if line.strip()]


def kernel_compressors(machine):
    """Algorithm names of ``/proc/crypto``."""
    names = set()
    with open(machine.proc_file("crypto")) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.strip() == "name":
                names.add(value.strip())
    return names


def mem_total(machine):
    """MemTotal of ``/proc/meminfo``, in bytes."""
    with open(machine.proc_file("meminfo")) as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise KernelError("no MemTotal in %s" % machine.proc_file("meminfo"))


def debugfs_mounted(machine):
    """Whether debugfs is mounted at ``machine.debugfs``."""
    try:
        with open(machine.proc_file("mounts")) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[1] == machine.debugfs and parts[2] == "debugfs":
                    return True
    except OSError:
        pass
    return False


@dataclass
class Cgroup:
    """The memory cgroup hierarchy to create the run's group in."""
    version: int
    parent: str

    @property
    def limit_file(self):
        return "memory.limit_in_bytes" if self.version == 1 else "memory.max"

    @property
    def usage_file(self):
        return "memory.usage_in_bytes" if self.version == 1 else "memory.current"


def find_memory_cgroup(machine):
    """The memory controller: v1 at ``fs/cgroup/memory``, or v2 at
    ``fs/cgroup`` with ``memory`` in ``cgroup.subtree_control`` (so a child
    group has ``memory.max``).  None when there is neither."""
    v1 = os.path.join(machine.cgroup_root, "memory")
    if os.path.isfile(os.path.join(v1, "memory.limit_in_bytes")):
        return Cgroup(1, v1)
    root = machine.cgroup_root
    try:
        controllers = _read(os.path.join(root, "cgroup.controllers")).split()
        subtree = _read(os.path.join(root, "cgroup.subtree_control")).split()
    except OSError:
        return None
    if "memory" in controllers and "memory" in subtree:
        return Cgroup(2, root)
    return None


# -- configuration ------------------------------------------------------------

@dataclass
class KernelConfig:
    """One ``vswapfast kernel`` run."""
    workload: str = "usemem"
    pages: int = DEFAULT_PAGES          # usemem/memhog: pages written then read
    frames: Optional[int] = None        # None: DEFAULT_FRAMES, or 10% of a trace's keys
    trace: Optional[str] = None         # replay: the trace (None: the default workload)
    trace_format: str = "auto"
    events: Optional[int] = None
    keys: Optional[int] = None
    seed: int = 42
    fill: str = "mixed"                 # memhog: "mixed" or a byte value 0..255
    compressor: str = "lzo"
    model_compressor: Optional[str] = None     # None: the same as compressor
    max_pool_percent: int = 20
    accept_threshold_percent: int = 90
    shrinker: bool = False
    page_cluster: Optional[int] = None  # vm.page-cluster for the run (None: leave it)
    swapfile_size: Optional[int] = None  # None: a slot per distinct page, plus 16 MiB
    directory: Optional[str] = None      # where the private directory is made
    core: str = "compiled"
    reclaim: str = "lru"                # the model's reclaim: lru or kernel
    sample_interval: float = 0.01
    timeout: float = 600.0

    def check(self):
        if self.workload not in WORKLOADS:
            raise KernelError("unknown workload %r (choose from %s)"
                              % (self.workload, ", ".join(WORKLOADS)))
        if self.pages < 1:
            raise KernelError("--pages must be at least 1, not %d" % self.pages)
        if self.frames is not None and self.frames < 1:
            raise KernelError("--frames must be at least 1, not %d" % self.frames)
        if not 0 <= self.max_pool_percent <= 100:
            raise KernelError("--max-pool-percent must be in 0..100, not %d"
                              % self.max_pool_percent)
        if not 0 <= self.accept_threshold_percent <= 100:
            raise KernelError("--accept-threshold-percent must be in 0..100, not %d"
                              % self.accept_threshold_percent)
        if self.workload != "replay" and (self.trace or self.events or self.keys):
            raise KernelError("a trace, --events and --keys are for the replay workload")
        fill_value(self.fill)
        if self.page_cluster is not None and not 0 <= self.page_cluster <= 10:
            raise KernelError("--page-cluster must be in 0..10, not %d" % self.page_cluster)
        if not re.match(r"^[a-z0-9-]+$", self.compressor):
            raise KernelError("bad compressor name %r" % self.compressor)


def fill_value(fill):
    """``None`` for ``mixed``, else the byte value of ``fill``."""
    if fill == "mixed":
        return None
    try:
        value = int(str(fill), 0)
    except ValueError:
        value = -1
    if not 0 <= value <= 255:
        raise KernelError("--fill must be 'mixed' or a byte value 0..255, not %r" % (fill,))
    return value


# -- workloads ----------------------------------------------------------------

class FilledPages:
    """Same-filled pages, as memhog writes: each key's page repeats one byte.

    ``mixed``: even keys are zero pages, odd keys repeat a non-zero byte of
    the key; otherwise every page repeats ``fill``.  Same interface as
    :class:`vswapfast.workload.PageFactory` for what the replay uses.
    """

    def __init__(self, fill="mixed"):
        self.fill = fill_value(fill)

    def _bytes(self, keys):
        keys = np.asarray(keys, dtype=np.uint64)
        if self.fill is None:
            byte = np.where(keys % np.uint64(2) == 0, 0,
                            ((keys >> np.uint64(1)) % np.uint64(255)) + np.uint64(1))
        else:
            byte = np.full(len(keys), self.fill, dtype=np.uint64)
        return byte.astype(np.uint8)

    def page_batch(self, keys, versions=None, out=None):
        """``(pages, zero)`` as ``PageFactory.page_batch``; ``out`` is filled
        when given."""
        byte = self._bytes(keys)
        if out is None:
            out = np.empty((len(byte), PAGE_SIZE), dtype=np.uint8)
        out[:] = byte[:, None]
        return out, byte == 0

    def pages(self, keys, versions=None):
        return self.page_batch(keys, versions)[0]

    def verify(self, keys, pages, versions=None):
        """Which rows of ``pages`` differ from the pages of ``keys``."""
        return (np.asarray(pages) != self._bytes(keys)[:, None]).any(axis=1)

    def use_core(self, core):
        """Nothing to choose: the pages are built by numpy either way."""
        return self

    def describe(self):
        if self.fill is None:
            return "same-filled pages (half zero, half a non-zero byte)"
        return "same-filled pages (byte %#04x)" % self.fill


@dataclass
class Workload:
    """A trace, its page contents and its frames: what both sides run."""
    name: str
    trace: object                       # vswapfast.replay.Trace
    factory: object
    frames: int
    description: str


def build_workload(config):
    """The :class:`Workload` of ``config`` (the trace is read here)."""
    from vswapfast.replay import Trace, default_workload, read_trace
    if config.workload in ("usemem", "memhog"):
        n = config.pages
        keys = np.concatenate([np.arange(n), np.arange(n)]).astype(np.uint64)
        trace = Trace(keys, None, "%s-like: write %s pages, then read them back"
                      % (config.workload, "{:,}".format(n)), "generated")
        factory = (PageFactory.synthetic(seed=config.seed) if config.workload == "usemem"
                   else FilledPages(config.fill))
        frames = config.frames if config.frames is not None else min(DEFAULT_FRAMES, n)
        return Workload(config.workload, trace, factory, frames, trace.name)
    if config.trace is None:
        trace = default_workload(events=config.events, keys=config.keys, seed=config.seed)
    else:
        trace = read_trace(config.trace, config.trace_format)
        if config.events is not None:
            trace = trace.head(config.events)
    frames = config.frames
    if frames is None:
        # Not the replay's 10% of the keys: a cgroup of a few MiB under
        # swap readahead ends in the OOM killer.
        frames = min(DEFAULT_FRAMES, max(1, len(np.unique(trace.keys)) // 2))
    return Workload("replay", trace, PageFactory.synthetic(seed=config.seed), frames,
                    trace.name)


@dataclass
class Program:
    """What the child does, event by event: write page ``content[i]`` (an
    index into ``pages``) into slot ``slot[i]`` of its region, or, where
    ``content[i]`` is -1, read one byte of it."""
    slot: np.ndarray                    # int64, per event
    content: np.ndarray                 # int64, per event
    pages: np.ndarray                   # (m, 4096) uint8
    slots: int


def build_program(workload):
    """The child's :class:`Program` for ``workload``: the first access to a
    key and every write store the page the replay would give that key at
    that point (same key, same version); the other accesses read it."""
    from vswapfast.replay import _versions
    trace = workload.trace
    keys = np.asarray(trace.keys, dtype=np.uint64)
    distinct, slot = np.unique(keys, return_inverse=True)
    slot = slot.astype(np.int64)
    first = np.zeros(len(keys), dtype=bool)
    _, first_pos = np.unique(slot, return_index=True)
    first[first_pos] = True
    store = first if trace.writes is None else (first | np.asarray(trace.writes, dtype=bool))
    where = np.flatnonzero(store)
    versions = None if trace.writes is None else _versions(trace, where)
    pages, _zero = workload.factory.page_batch(keys[where], versions)
    content = np.full(len(keys), -1, dtype=np.int64)
    content[where] = np.arange(len(where))
    return Program(slot, content, np.ascontiguousarray(pages), len(distinct))


# -- undo stack and signals ---------------------------------------------------

class _Undo:
    """Changes made so far, each with how to undo it; undone in reverse."""

    def __init__(self, log):
        self.steps = []
        self.log = log
        self.errors = []

    def push(self, description, undo):
        self.steps.append((description, undo))

    def unwind(self):
        while self.steps:
            description, undo = self.steps.pop()
            try:
                undo()
                self.log("undone: %s" % description)
            except Exception as exc:        # keep undoing the rest
                self.errors.append("%s: %s" % (description, exc))
                self.log("FAILED to undo: %s (%s)" % (description, exc))


class _Terminated(BaseException):
    """SIGTERM or SIGHUP arrived."""


def _on_terminate(signum, frame):
    raise _Terminated("terminated by signal %d" % signum)


_CATCH = (signal.SIGTERM, signal.SIGHUP)
_BLOCK = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}


# -- commands -----------------------------------------------------------------

def _run(argv):
    """Run a system command; a failure is a KernelError naming it."""
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, check=False)
    except OSError as exc:
        raise KernelFailure("cannot run %s (%s)" % (argv[0], exc.strerror or exc)) from None
    if proc.returncode != 0:
        message = " ".join((proc.stderr or proc.stdout).split()) or "exit status %d" % (
            proc.returncode)
        raise KernelFailure("%s failed: %s" % (" ".join(argv), message))
    return proc.stdout


_TOOLS = ("mkswap", "swapon", "swapoff", "mount", "umount")


def _tool(name):
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if path is None:
        raise KernelError("%s not found (Debian package util-linux / mount)" % name)
    return path


# -- checks ---------------------------------------------------------------------

@dataclass
class Preflight:
    """What the checks found: the state the run starts from."""
    params: Dict[str, str]
    cgroup: Cgroup
    debugfs_mounted: bool
    memtotal: int
    vmstat_names: List[str]
    page_cluster: Optional[int]
    notes: List[str] = field(default_factory=list)


def preflight(machine, config, dry_run=False):
    """Check that the run may start; returns a :class:`Preflight` or
    raises :class:`KernelError` saying why not (root is not needed for a
    dry run)."""
    if not dry_run and not machine.is_root():
        raise KernelError("vswapfast kernel needs root: it sets zswap parameters, a memory "
                          "cgroup and a swap file (try --dry-run to see what it would do)")
    if not os.path.isfile(os.path.join(machine.zswap_params, "enabled")):
        raise KernelError("this kernel has no zswap (%s is missing)" % machine.zswap_params)
    try:
        params = read_zswap_params(machine)
    except OSError as exc:
        raise KernelError("cannot read the zswap parameters (%s)" % (exc.strerror or exc)) \
            from None
    cgroup = find_memory_cgroup(machine)
    if cgroup is None:
        raise KernelError("no memory cgroup controller (neither %s/memory/memory.limit_in_bytes "
                          "nor memory in %s/cgroup.subtree_control)"
                          % (machine.cgroup_root, machine.cgroup_root))
    if params["enabled"] in ("Y", "y", "1"):
        raise KernelError("zswap is already enabled; it may be in use by someone else "
                          "(disable it with 'echo N > %s/enabled' if it is not)"
                          % machine.zswap_params)
    swaps = active_swaps(machine)
    if swaps:
        raise KernelError("swap is already active (%s); zswap would serve it too and its "
                          "traffic would mix with the run's: swapoff it first"
                          % ", ".join(swaps))
    mounted = debugfs_mounted(machine)
    if mounted:
        stored = _debugfs_value(machine, "stored_pages")
        if stored:
            raise KernelError("zswap already holds %d pages; it is in use by someone else"
                              % stored)
    if config.compressor not in kernel_compressors(machine):
        raise KernelError("the kernel has no %r compressor (see /proc/crypto)"
                          % config.compressor)
    vmstat = read_vmstat(machine)
    if "zswpout" not in vmstat:
        raise KernelError("%s has no zswpout counter" % machine.proc_file("vmstat"))
    for name in ("mkswap", "swapon", "swapoff") + (() if mounted else ("mount", "umount")):
        _tool(name)
    try:
        page_cluster = int(_read(machine.page_cluster))
    except (OSError, ValueError):
        if config.page_cluster is not None:
            raise KernelError("cannot read %s" % machine.page_cluster) from None
        page_cluster = None
    pre = Preflight(params, cgroup, mounted, mem_total(machine), sorted(vmstat), page_cluster)
    if not machine.is_root():
        pre.notes.append("not root: a real run would refuse to start")
    return pre


def _debugfs_value(machine, name):
    try:
        return int(_read(os.path.join(machine.debugfs, "zswap", name)))
    except (OSError, ValueError):
        return None


def wanted_params(config):
    """The zswap parameters of the run, as sysfs spells them."""
    return {
        "compressor": config.compressor,
        "max_pool_percent": str(config.max_pool_percent),
        "accept_threshold_percent": str(config.accept_threshold_percent),
        "shrinker_enabled": "Y" if config.shrinker else "N",
        "enabled": "Y",
    }


def swapfile_bytes(config, slots):
    """The swap file's size: the configured one, or a slot for every
    distinct page plus 16 MiB, in whole MiB."""
    if config.swapfile_size is not None:
        size = config.swapfile_size
    else:
        size = slots * PAGE_SIZE + (16 << 20)
    return max(1 << 20, -(-size // (1 << 20)) * (1 << 20))


def plan(machine, config, pre, slots, frames):
    """Every change a run makes, in order, as lines of text."""
    lines = []
    if not pre.debugfs_mounted:
        lines.append("mount debugfs at %s (unmounted afterwards)" % machine.debugfs)
    parent = config.directory or tempfile.gettempdir()
    lines.append("create a private directory (mkdtemp, mode 0700) in %s, removed afterwards"
                 % parent)
    lines.append("create a %d MiB swap file in it (mkswap), swapon it; swapoff and delete "
                 "it afterwards" % (swapfile_bytes(config, slots) >> 20))
    for name, value in wanted_params(config).items():
        old = pre.params[name]
        if old != value:
            lines.append("write %s = %s (was %s; restored afterwards)"
                         % (os.path.join(machine.zswap_params, name), value, old))
    if config.page_cluster is not None and config.page_cluster != pre.page_cluster:
        lines.append("write %s = %d (was %s; restored afterwards)"
                     % (machine.page_cluster, config.page_cluster, pre.page_cluster))
    lines.append("create memory cgroup %s/%s<pid>, %s = child's baseline + %d frames "
                 "(%d MiB); removed afterwards"
                 % (pre.cgroup.parent, CGROUP_PREFIX, pre.cgroup.limit_file, frames,
                    frames * PAGE_SIZE >> 20))
    lines.append("run the workload in a child process in that cgroup; killed if still "
                 "running at the end")
    return lines


# -- the kernel side ----------------------------------------------------------

@dataclass
class KernelSide:
    """What the kernel did."""
    vmstat: Dict[str, int]
    baseline: int
    limit: int
    stored_pages_end: int
    pool_bytes_end: int
    stored_pages_peak: int
    pool_bytes_peak: int
    samples: int
    seconds: float
    params: Dict[str, str]
    page_cluster: Optional[int]


class _Sampler(threading.Thread):
    """Reads debugfs zswap every ``interval`` seconds; keeps the peaks."""

    def __init__(self, machine, interval):
        super().__init__(name="zswap-sampler", daemon=True)
        self.machine = machine
        self.interval = interval
        self.stop = threading.Event()
        self.stored_peak = 0
        self.pool_peak = 0
        self.samples = 0

    def sample(self):
        stored = _debugfs_value(self.machine, "stored_pages") or 0
        pool = _debugfs_value(self.machine, "pool_total_size") or 0
        self.stored_peak = max(self.stored_peak, stored)
        self.pool_peak = max(self.pool_peak, pool)
        self.samples += 1
        return stored, pool

    def run(self):
        while not self.stop.is_set():
            self.sample()
            self.stop.wait(self.interval)


_MCL_CURRENT, _MCL_ONFAULT = 1, 4
CHUNK = 4096


def _child(program, rfd, wfd):
    """The workload process.  Steps, each on the parent's word (one byte on
    ``rfd``): join the cgroup (done by the parent), warm up and lock what is
    already resident (``mlockall(MCL_CURRENT | MCL_ONFAULT)``: the
    interpreter is the baseline, not the workload), map the region, run,
    report, exit."""
    status = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        for sig in _CATCH:
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        os.read(rfd, 1)                             # in the cgroup now
        pages = memoryview(program.pages).cast("B")
        scratch = mmap.mmap(-1, 2 * PAGE_SIZE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        warm = np.full(min(CHUNK, len(program.slot)), -1, dtype=np.int64)
        warm[0] = 0
        _execute(scratch, pages, program.slot[:len(warm)] % 2, warm)
        scratch.close()
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.mlockall(_MCL_CURRENT | _MCL_ONFAULT) != 0:
            os.write(wfd, b"m")
            os._exit(3)
        region = mmap.mmap(-1, program.slots * PAGE_SIZE,
                           flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if hasattr(region, "madvise") and hasattr(mmap, "MADV_NOHUGEPAGE"):
            region.madvise(mmap.MADV_NOHUGEPAGE)
        os.write(wfd, b"r")                         # ready: measure the baseline
        os.read(rfd, 1)                             # go
        _execute(region, pages, program.slot, program.content)
        os.write(wfd, b"d")                         # done: read the pool now
        os.read(rfd, 1)
        status = 0
    except BaseException:
        status = 1
    finally:
        os._exit(status)


def _execute(region, pages, slot, content):
    """Run the events in chunks (small lists, reused memory)."""
    for lo in range(0, len(slot), CHUNK):
        for s, c in zip(slot[lo:lo + CHUNK].tolist(), content[lo:lo + CHUNK].tolist()):
            off = s * PAGE_SIZE
            if c < 0:
                region[off]
            else:
                region[off:off + PAGE_SIZE] = pages[c * PAGE_SIZE:(c + 1) * PAGE_SIZE]


def _expect(rfd, want, pid, what, timeout, oom_kills=lambda: None):
    """Wait for the child's byte ``want``; a child that closed its end
    instead is dead or dying, and is reaped to say how it died."""
    import select
    ready, _, _ = select.select([rfd], [], [], timeout)
    got = os.read(rfd, 1) if ready else b""
    if got != want:
        if not ready:
            raise KernelFailure("the workload process did not %s within %.0f s" % (what, timeout))
        if got == b"m":
            raise KernelFailure("the workload process could not mlockall its baseline")
        _, status = os.waitpid(pid, 0)
        why = _describe_status(status)
        if oom_kills():
            why = ("the cgroup's OOM killer: the kernel found nothing more to reclaim; "
                   "try more --frames, or --page-cluster 0 against swap readahead")
        raise KernelFailure("the workload process died before it could %s (%s)" % (what, why))


def _describe_status(status):
    if os.WIFSIGNALED(status):
        return "killed by signal %d" % os.WTERMSIG(status)
    return "exit status %d" % os.WEXITSTATUS(status)


class KernelRun:
    """The kernel side of one run, with everything it changes undone by
    :meth:`close` (which :func:`run_kernel_side` always calls)."""

    def __init__(self, machine, config, pre, program, frames, log):
        self.machine = machine
        self.config = config
        self.pre = pre
        self.program = program
        self.frames = frames
        self.log = log
        self.undo = _Undo(log)
        self.child = None
        self.cgroup_dir = None

    # each step pushes its undo before anything can fail after it

    def mount_debugfs(self):
        if self.pre.debugfs_mounted:
            return
        _run([_tool("mount"), "-t", "debugfs", "debugfs", self.machine.debugfs])
        self.undo.push("mount debugfs at %s" % self.machine.debugfs,
                       lambda: _run([_tool("umount"), self.machine.debugfs]))

    def make_swapfile(self):
        parent = self.config.directory or tempfile.gettempdir()
        directory = tempfile.mkdtemp(prefix="vswapfast-kernel-", dir=parent)
        self.undo.push("private directory %s" % directory, lambda: os.rmdir(directory))
        path = os.path.join(directory, "swapfile")
        size = swapfile_bytes(self.config, self.program.slots)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        self.undo.push("swap file %s" % path, lambda: os.unlink(path))
        try:
            os.posix_fallocate(fd, 0, size)
        except OSError as exc:
            raise KernelFailure("cannot allocate a %d MiB swap file in %s (%s)"
                              % (size >> 20, directory, exc.strerror or exc)) from None
        finally:
            os.close(fd)
        _run([_tool("mkswap"), path])
        _run([_tool("swapon"), path])
        self.undo.push("swapon %s" % path, lambda: _run([_tool("swapoff"), path]))
        self.swapfile = path

    def set_params(self):
        params = wanted_params(self.config)
        for name in ZSWAP_PARAMS:           # "enabled" last
            old = self.pre.params[name]
            if old == params[name]:
                continue
            path = os.path.join(self.machine.zswap_params, name)
            self.undo.push("%s = %s (was %s)" % (path, params[name], old),
                           lambda path=path, old=old: _write(path, old))
            try:
                _write(path, params[name])
            except OSError as exc:
                raise KernelFailure("cannot set zswap %s to %s (%s)"
                                  % (name, params[name], exc.strerror or exc)) from None

    def set_page_cluster(self):
        want, old = self.config.page_cluster, self.pre.page_cluster
        if want is None or want == old:
            return
        path = self.machine.page_cluster
        self.undo.push("%s = %d (was %d)" % (path, want, old), lambda: _write(path, old))
        _write(path, want)

    def oom_kills(self):
        """OOM kills in the run's cgroup so far (v1 ``memory.oom_control``,
        v2 ``memory.events``); None when unknown."""
        name = "memory.oom_control" if self.pre.cgroup.version == 1 else "memory.events"
        try:
            with open(os.path.join(self.cgroup_dir, name)) as f:
                for line in f:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except (OSError, ValueError, TypeError):
            pass
        return None

    def make_cgroup(self):
        cg = self.pre.cgroup
        path = os.path.join(cg.parent, "%s%d" % (CGROUP_PREFIX, os.getpid()))
        os.mkdir(path)
        self.undo.push("memory cgroup %s" % path, lambda: _rmdir_cgroup(path))
        self.cgroup_dir = path

    def start_child(self):
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        pid = os.fork()
        if pid == 0:                                    # pragma: no cover (child)
            os.close(to_child_w)
            os.close(from_child_r)
            _child(self.program, to_child_r, from_child_w)
        os.close(to_child_r)
        os.close(from_child_w)
        self.child = pid
        self.to_child = to_child_w
        self.from_child = from_child_r
        self.undo.push("workload process %d" % pid, self._reap_child)
        _write(os.path.join(self.cgroup_dir, "cgroup.procs"), pid)
        os.write(self.to_child, b"j")

    def _reap_child(self):
        pid, self.child = self.child, None
        if pid is None:             # already reaped
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        for fd in (self.to_child, self.from_child):
            try:
                os.close(fd)
            except OSError:
                pass

    def run(self):
        """Make the changes, run the child, and return a :class:`KernelSide`."""
        # A signal in the middle of a step could leave its change off the
        # undo stack: hold the signals until every step is recorded.
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCK)
        try:
            self.mount_debugfs()
            self.make_swapfile()
            self.set_params()
            self.set_page_cluster()
            self.make_cgroup()
            params = read_zswap_params(self.machine)
            page_cluster = int(_read(self.machine.page_cluster))
            self.start_child()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        timeout = self.config.timeout
        _expect(self.from_child, b"r", self.child, "start", timeout, self.oom_kills)
        usage_path = os.path.join(self.cgroup_dir, self.pre.cgroup.usage_file)
        baseline = int(_read(usage_path))
        limit = baseline + self.frames * PAGE_SIZE
        _write(os.path.join(self.cgroup_dir, self.pre.cgroup.limit_file), limit)
        sampler = _Sampler(self.machine, self.config.sample_interval)
        before = read_vmstat(self.machine)
        start = time.perf_counter()
        sampler.start()
        try:
            os.write(self.to_child, b"g")
            _expect(self.from_child, b"d", self.child, "finish the workload", timeout,
                    self.oom_kills)
            seconds = time.perf_counter() - start
            stored_end, pool_end = sampler.sample()
            after = read_vmstat(self.machine)
        finally:
            sampler.stop.set()
            sampler.join()
        os.write(self.to_child, b"x")
        _, status = os.waitpid(self.child, 0)
        self.child = None
        if status != 0:
            raise KernelFailure("the workload process failed (%s)" % _describe_status(status))
        vmstat = {name: after[name] - before[name] for name in after if name in before}
        return KernelSide(vmstat, baseline, limit, stored_end, pool_end,
                          sampler.stored_peak, sampler.pool_peak, sampler.samples,
                          seconds, params, page_cluster)

    def close(self):
        """Undo every change, with the signals that would interrupt it blocked."""
        old = signal.pthread_sigmask(signal.SIG_BLOCK, _BLOCK)
        try:
            if self.child is not None and not any(
                    d.startswith("workload process") for d, _ in self.undo.steps):
                self._reap_child()
            self.undo.unwind()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        if self.undo.errors:
            raise KernelFailure("could not restore everything: %s" % "; ".join(self.undo.errors))


def _rmdir_cgroup(path):
    """Remove a cgroup once its processes are gone (the kernel may take a
    moment to drop an exited task)."""
    for _ in range(200):
        try:
            os.rmdir(path)
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
            time.sleep(0.01)
    os.rmdir(path)


def run_kernel_side(machine, config, pre, program, frames, log=lambda line: None):
    """Run ``program`` under the kernel's zswap; every change is undone
    before this returns or raises, also on Ctrl-C and SIGTERM/SIGHUP."""
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        handlers = {sig: signal.signal(sig, _on_terminate) for sig in _CATCH}
    run = KernelRun(machine, config, pre, program, frames, log)
    try:
        return run.run()
    except _Terminated as exc:
        raise KernelFailure(str(exc)) from None
    finally:
        try:
            run.close()
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)


# -- the model side -------------------------------------------------------------

def run_model_side(config, workload, pool_limit):
    """The same accesses through vswapfast's replay (an exact LRU of the same
    frames), with the run's pool limit and compressor.  Returns the
    :class:`vswapfast.replay.ReplayReport` and the peak of stored pages."""
    from vswapfast.replay import ReplayConfig, ReplayError, run_replay
    compressor = config.model_compressor or config.compressor
    names = {f.name for f in dataclasses.fields(ReplayConfig)}
    extra = {}
    if "compressor" in names:
        extra["compressor"] = compressor
    elif compressor != "lz4":
        raise KernelError("the model has no %r compressor in this build (only lz4); use "
                          "--model-compressor lz4 to compare counts only" % compressor)
    if "accept_threshold_percent" in names:
        extra["accept_threshold_percent"] = config.accept_threshold_percent
    if "reclaim" in names:
        extra["reclaim"] = config.reclaim
    elif config.reclaim != "lru":
        raise KernelError("the model has no %r reclaim in this build" % config.reclaim)
    rconfig = ReplayConfig(frames=workload.frames, core=config.core, pool_limit=pool_limit,
                           floor=False, **extra)
    try:
        report = run_replay(workload.trace, rconfig, factory=workload.factory)
    except ReplayError as exc:
        raise KernelError(str(exc)) from None
    return report, _model_stored_peak(workload, config)


def _model_stored_peak(workload, config):
    """Most non-zero pages the model's reclaim has swapped out at once (what
    the pool holds at its fullest when nothing is written back or rejected)."""
    from vswapfast import replay
    if hasattr(replay, "simulate"):
        lru = replay.simulate(workload.trace, workload.frames, config.reclaim, config.core)
    else:
        lru = replay.simulate_lru(workload.trace, workload.frames)
    if not lru.swap_outs:
        return 0
    zero = workload.factory.page_batch(lru.victim_keys, lru.victim_versions)[1]
    steps = np.zeros(lru.miss_count + 1, dtype=np.int64)
    np.add.at(steps, lru.cold_fill + np.arange(lru.swap_outs), (~zero).astype(np.int64))
    np.add.at(steps, lru.in_miss, -(~zero[lru.in_evict]).astype(np.int64))
    # At a miss the swap-in comes first, then the eviction that makes room.
    return int(np.cumsum(steps).max())


# -- the comparison -------------------------------------------------------------

@dataclass
class Comparison:
    """One run, kernel against model."""
    workload: str
    description: str
    pages: str
    frames: int
    settings: Dict[str, object]
    kernel: Dict[str, Optional[float]]
    model: Dict[str, Optional[float]]
    kernel_detail: Dict[str, object]
    model_detail: Dict[str, object]

    ROWS = (
        ("swap_outs", "swap-outs"),
        ("swap_ins", "swap-ins"),
        ("zero_pages", "zero pages (swap-out)"),
        ("written_back", "written-back pages"),
        ("stored_pages", "stored pages (end)"),
        ("stored_pages_peak", "stored pages (peak)"),
        ("pool_bytes", "pool bytes (end)"),
        ("pool_bytes_peak", "pool bytes (peak)"),
        ("bytes_per_page", "bytes per stored page"),
    )

    def ratio(self, key):
        k, m = self.kernel.get(key), self.model.get(key)
        if k is None or m is None or k == 0:
            return None
        return m / k

    def to_dict(self):
        out = dataclasses.asdict(self)
        out["ratio"] = {key: self.ratio(key) for key, _ in self.ROWS}
        return out

    def format_text(self):
        def num(v):
            if v is None:
                return "n/a"
            if isinstance(v, float) and not v.is_integer():
                return "{:,.1f}".format(v)
            return "{:,}".format(int(v))

        s = self.settings
        lines = [
            "workload     %s" % self.description,
            "pages        %s" % self.pages,
            "model        %s core, %s reclaim" % (s["core"], s["reclaim"]),
            "frames       %s (%d MiB); compressor %s (model: %s), max_pool_percent %s, "
            "accept_threshold_percent %s, shrinker %s, page-cluster %s" % (
                "{:,}".format(self.frames), self.frames * PAGE_SIZE >> 20, s["compressor"],
                s["model_compressor"], s["max_pool_percent"], s["accept_threshold_percent"],
                "on" if s["shrinker"] else "off", s["page_cluster"]),
            "",
            "%-24s %14s %14s %8s" % ("", "kernel", "model", "model/k"),
        ]
        for key, label in self.ROWS:
            r = self.ratio(key)
            lines.append("%-24s %14s %14s %8s" % (label, num(self.kernel.get(key)),
                                                  num(self.model.get(key)),
                                                  "n/a" if r is None else "%.3f" % r))
        kd = self.kernel_detail
        lines += [
            "",
            "kernel       vmstat deltas: %s" % ", ".join(
                "%s %s" % (k, "{:,}".format(v)) for k, v in sorted(kd["vmstat"].items())),
            "             cgroup limit %.1f MiB (baseline %.1f MiB + frames), %d debugfs "
            "samples, workload %.1f s" % (kd["limit"] / 1048576, kd["baseline"] / 1048576,
                                          kd["samples"], kd["seconds"]),
        ]
        return lines


def _per_page(pool, stored):
    return pool / stored if stored else None


def compare(config, workload, kernel, model, model_stored_peak):
    """The :class:`Comparison` of a kernel side and a model side."""
    v = kernel.vmstat
    # A page leaves memory as one of: a zswap store (zswap_store() counts
    # zswpout), a zero-filled slot (swap_writeout()'s zeromap path counts
    # swpout_zero), or a write to the swap device (__swap_writepage(),
    # count_swpout_vm_event() counts pswpout).  zswap_writeback_entry()
    # counts zswpwb and then writes with __swap_writepage(), so pswpout also
    # holds the written-back pages, which left memory earlier as zswpout.
    pswpout_direct = v.get("pswpout", 0) - v.get("zswpwb", 0)
    k = {
        "swap_outs": v.get("zswpout", 0) + v.get("swpout_zero", 0) + pswpout_direct,
        # zswap_load() counts zswpin, swap_read_folio_zeromap() swpin_zero,
        # the device read pswpin; readahead pages count when they are read.
        "swap_ins": v.get("zswpin", 0) + v.get("pswpin", 0) + v.get("swpin_zero", 0),
        "zero_pages": v.get("swpout_zero"),
        "written_back": v.get("zswpwb"),
        "stored_pages": kernel.stored_pages_end,
        "stored_pages_peak": kernel.stored_pages_peak,
        "pool_bytes": kernel.pool_bytes_end,
        "pool_bytes_peak": kernel.pool_bytes_peak,
        "bytes_per_page": _per_page(kernel.pool_bytes_end, kernel.stored_pages_end),
    }
    m = {
        "swap_outs": model.swap_outs,
        "swap_ins": model.swap_ins,
        "zero_pages": model.zero_pages,
        "written_back": model.writebacks,
        "stored_pages": model.stored_pages,
        "stored_pages_peak": model_stored_peak,
        "pool_bytes": model.pool_size,
        "pool_bytes_peak": model.pool_size_peak,
        "bytes_per_page": _per_page(model.pool_size, model.stored_pages),
    }
    settings = {
        "compressor": config.compressor,
        "model_compressor": config.model_compressor or config.compressor,
        "max_pool_percent": config.max_pool_percent,
        "accept_threshold_percent": config.accept_threshold_percent,
        "shrinker": config.shrinker,
        "page_cluster": kernel.page_cluster,
        "core": config.core,
        "reclaim": config.reclaim,
    }
    return Comparison(workload.name, workload.description, workload.factory.describe(),
                      workload.frames, settings, k, m, dataclasses.asdict(kernel),
                      {"rejected": model.rejected, "pool_limit": model.pool_limit,
                       "pool_limit_hit": model.pool_limit_hit, "mismatches": model.mismatches,
                       "compression_ratio": model.compression_ratio})


def run_kernel(config, machine=None, dry_run=False, log=lambda line: None):
    """Run ``config``'s workload under the kernel and the model.

    Returns a :class:`Comparison`, or with ``dry_run`` the list of changes a
    run would make (and makes none).  Raises :class:`KernelError` for a
    refusal or a failed step, after undoing every change made.
    """
    machine = machine or Machine()
    config.check()
    pre = preflight(machine, config, dry_run=dry_run)
    workload = build_workload(config)
    if dry_run:
        slots = len(np.unique(workload.trace.keys))
        return pre.notes + plan(machine, config, pre, slots, workload.frames)
    program = build_program(workload)
    pool_limit = pre.memtotal * config.max_pool_percent // 100
    # The model first: a failure there costs no kernel settings.
    model, stored_peak = run_model_side(config, workload, pool_limit)
    kernel = run_kernel_side(machine, config, pre, program, workload.frames, log)
    return compare(config, workload, kernel, model, stored_peak)
