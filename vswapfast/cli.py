"""The ``vswapfast`` command: ``bench``, ``replay``, ``kernel`` and ``memory``.

Errors in what the user gave (a missing or malformed trace, an impossible
option value) end the command with one line on stderr,
``vswapfast: error: ...``, and exit status 2.  A replay whose swapped-in
pages differ from what was swapped out exits with status 1.
"""

import argparse
import json
import os
import re
import sys
import time

PROG = "vswapfast"

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


class UsageError(Exception):
    """Bad input from the command line."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, and which takes values
    such as ``-5M`` as values (to refuse them for being negative)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-\d[\w.]*$")

    def error(self, message):
        message = " ".join(str(message).split())
        self.exit(2, "%s: error: %s (see '%s --help')\n" % (PROG, message, self.prog))


def _size(text):
    """A byte count: 4096, 64K, 64M, 1.5G, 64MiB (binary units)."""
    match = _SIZE.match(text)
    if not match:
        if text.strip().startswith("-"):
            raise argparse.ArgumentTypeError("must not be negative, not %r" % text)
        raise argparse.ArgumentTypeError("expected a size such as 4096, 512K, 64M or 1G, "
                                         "not %r" % text)
    value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    return int(value)


def _count(minimum, maximum=None):
    def parse(text):
        try:
            value = int(text.replace("_", ""), 10)
        except ValueError:
            raise argparse.ArgumentTypeError("expected an integer, not %r" % text) from None
        if value < minimum:
            raise argparse.ArgumentTypeError("must be at least %d, not %d" % (minimum, value))
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError("must be at most %d, not %d" % (maximum, value))
        return value
    return parse


def build_parser():
    from vswapfast import __version__
    from vswapfast.batch import INDEX_ALIASES, INDEX_DESIGNS
    from vswapfast.reclaim import RECLAIMS
    from vswapfast.compressors import COMPRESSORS
    from vswapfast.replay import CORES, DEFAULT_CHUNK
    from vswapfast.traces import FORMATS
    from vswapfast.workload import DEFAULT_EVENTS, DEFAULT_KEYS, DEFAULT_SEED

    parser = _Parser(
        prog=PROG,
        description="Benchmark the virtual swap space designs and replay page-access "
                    "traces through vswap + zswap.",
        epilog="Run '%s COMMAND --help' for the options of a command." % PROG)
    parser.add_argument("--version", action="version", version="%(prog)s " + __version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    # -- bench --------------------------------------------------------------
    bench = commands.add_parser(
        "bench", help="benchmark the cores and the zswap index designs",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Run a compact benchmark on the embedded default workload and print a table:

  - designs: for every swap metadata design (vswapfast.designs), ns per
    page of zswap entry store / load / erase done as the kernel does them,
    one operation per page with the design's locks, at 1..N threads, the
    pure twin at 1 thread, and the locks each operation takes; the same
    calls as range operations apart; a swap-out + load + free round trip;
  - zswap entry ops: ns per zswap_entry_store / load / erase for the
    compiled core, the pure-Python twin and a bare dict;
  - batch throughput: million entries/s of the batch zswap entry calls
    (range operations) of the seed's index designs (vswap, rbtree) at 1..N
    threads, each thread on entries of its own;
  - pages: us per page of Zswap store / load (single and batch calls) for
    both cores, against raw LZ4 (python-lz4) on the same pages;
  - compressors: us per page of batch store / load for both cores and the
    compression ratio, per compressor (lz4, zstd, lzo), next to the system
    library compressing and decompressing the same pages;
  - metadata: bytes per swap entry holding a zswap handle (descriptors and
    zswap index), counted with tracemalloc, for both cores, each design and
    a bare dict.

Every ratio is between figures measured in the same run.  A progress bar
is drawn on stderr.  The full run takes about half a minute to a minute.""")
    bench.add_argument("--threads", type=_count(1, 64), metavar="N", default=None,
                       help="measure the designs and batch throughput at 1..N threads: 1, "
                            "2, 3, 4, then powers of two, and N (default: the number of CPUs, at least 2)")
    bench.add_argument("--json", metavar="FILE",
                       help="also write every figure as JSON to FILE ('-' for stdout, "
                            "instead of the table)")
    bench.add_argument("--plot", metavar="FILE",
                       help="draw the figures into a PNG at FILE: the designs' per-page "
                            "costs and throughput against threads, batch throughput per "
                            "index design, per-op cost bars, page costs, metadata "
                            "(needs matplotlib)")
    bench.add_argument("--quick", action="store_true",
                       help="tiny sizes and few rounds: finishes in seconds, for checking "
                            "that everything runs (the figures are not meaningful)")
    bench.add_argument("--seed", type=_count(0), default=DEFAULT_SEED, metavar="N",
                       help="seed of the page contents (default: %(default)s)")
    bench.add_argument("--compressor", action="append", choices=COMPRESSORS,
                       metavar="NAME",
                       help="compare this compressor (%s; repeat for several; default: "
                            "every one whose library is installed)" % ", ".join(COMPRESSORS))
    bench.add_argument("--pages", metavar="FILE",
                       help="take page contents from the 4 KiB pages of FILE (its first "
                            "256 MiB) instead of the synthetic mix")
    bench.add_argument("--no-progress", action="store_true",
                       help="do not draw the progress bar")
    bench.set_defaults(func=cmd_bench)

    # -- replay -------------------------------------------------------------
    replay = commands.add_parser(
        "replay", help="replay a page-access trace through LRU or kernel-like reclaim "
                       "into vswap + zswap",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Replay a page-access trace through N resident frames.  Each event accesses
one page.  When a miss finds every frame in use, a page is evicted: a
swap-out, which allocates a swap entry and stores the page in the zswap
pool.  A miss on a page that was swapped out is a swap-in: the page is
loaded back (from the pool, or from the swap file if the pool wrote it
back), compared with what was swapped out, and its swap entry is freed.

Which page is evicted (--reclaim):
  lru     the least recently used one (an exact LRU)
  kernel  the kernel's two lists (6.18 without the multi-gen LRU): pages
          start inactive, a second access makes them active, the inactive
          tail is evicted and the active tail refills the inactive list when
          it runs low; an evicted page leaves a shadow (its eviction clock)
          in its swap descriptor, and a refault whose distance is within the
          active list starts active.  The report counts refaults and
          activations and checks every shadow read back.

Page contents compress like real memory: a mix of zero pages, text,
pointer-rich data and incompressible data (or the pages of a file, with
--pages).  Every key has its own page; writes (in rw, msr and cloudphysics
traces, and csv traces with op=) change it.

The report gives the swap-outs, swap-ins, zswap hits, zero pages,
writebacks, pool size and compression ratio, and the time of the replay
next to the floor: the compressor's library (python-lz4 for lz4)
compressing every swapped-out page and decompressing every swapped-in page
of the same run, which no core can beat.
--json writes it with the run as a time series over the trace's events
(swap-outs, swap-ins, refaults and activations per interval; pool size,
compression ratio and writebacks as sampled); --plot draws that series.

Trace formats (any of them may be xz-, gzip- or zstd-compressed, which is
told by the file's first bytes; auto tells all but csv from the contents):
  keys           one integer key per line (decimal or 0x hex; '#' comments)
  rw             'ADDRESS R|W' per line; the page is ADDRESS // 4096
  u32be          a stream of big-endian unsigned 32-bit keys, no header
  oracleGeneral  libCacheSim's binary records, 24 bytes little-endian: u32
                 time, u64 object id, u32 size, i64 next access; an object is
                 a page (--split: the pages of its size; --block-size N: the
                 id is a block number of N bytes and the record a request)
  csv            CSV with columns named by --csv SPEC (see below)
  msr            MSR Cambridge CSV: Timestamp,Hostname,DiskNumber,Type,
                 Offset,Size,ResponseTime (Type Read/Write, bytes)
  cloudphysics   CloudPhysics VSCSI CSV as libCacheSim reads it:
                 version,time,op,size,lbn (op a SCSI opcode in hex, size in
                 bytes, lbn in 512-byte sectors; the header is optional)
Block requests (msr, cloudphysics, csv with offset=, oracleGeneral with
--block-size) become one access per 4 KiB page they touch, in order; a write
request writes every page.  The trace is read in chunks, with a progress bar,
and replayed as a stream (--stream, the default for a trace file on the
compiled core): a first pass counts its distinct keys, a second one feeds
the reclaim and the swap work a chunk at a time, so that memory grows with
the distinct pages, not with the trace's length.  --no-stream reads the
whole trace into memory first and simulates the reclaim over it at once;
the counts are the same.

--csv SPEC is a comma-separated list of FIELD=COLUMN items and flags; a
COLUMN is a 1-based number or a name in the header line (which implies
skip-header):
  key=COL       object id (integer); with offset=, the volume (text;
                key=2+3 joins columns): pages of each volume are apart
  offset=COL    byte offset of a block request (unit=BYTES for sectors)
  size=COL      request or object size in bytes (default: one page)
  op=COL        R, Read, W or Write (ops=scsi: a SCSI opcode in hex)
  skip-header   the first line is a header
  delimiter=D   comma (default), semicolon, tab, space or pipe
  split         as --split
For example, MSR Cambridge is 'key=2+3,op=4,offset=5,size=6' and
CloudPhysics 'op=3,size=4,offset=5,unit=512,ops=scsi,skip-header'.

With no TRACE, the embedded default workload is replayed: a seeded hot/cold
access pattern (%s events over %s keys, unless --events/--keys say otherwise).

Exit status: 0 when every swapped-in page was verified, 1 when some differ,
2 for bad input.""" % ("{:,}".format(DEFAULT_EVENTS), "{:,}".format(DEFAULT_KEYS)))
    replay.add_argument("trace", nargs="?", metavar="TRACE",
                        help="the trace file (default: the embedded default workload)")
    replay.add_argument("--format", choices=FORMATS, default="auto",
                        help="trace format, one of %s (default: auto, detected from the "
                             "contents; csv needs --csv; see the list above)"
                             % ", ".join(FORMATS[1:]))
    replay.add_argument("--csv", metavar="SPEC",
                        help="read the trace as CSV with these columns, e.g. "
                             "'offset=5,size=6,op=4' or 'key=1,skip-header' (see above)")
    replay.add_argument("--split", action="store_true",
                        help="objects with a size (oracleGeneral, csv with key= and size=) "
                             "are the 4 KiB pages their size covers, not one page each")
    replay.add_argument("--block-size", type=_count(1), metavar="BYTES",
                        help="oracleGeneral object ids are block numbers of BYTES bytes "
                             "(e.g. 512) and sizes request lengths: each record is a block "
                             "request split into the pages it touches")
    replay.add_argument("--frames", type=_count(1), metavar="N",
                        help="resident page frames of the LRU (default: 10%% of the "
                             "trace's distinct keys)")
    replay.add_argument("--events", type=_count(1), metavar="N",
                        help="replay only the first N events (default workload: its length, "
                             "default %s)" % "{:,}".format(DEFAULT_EVENTS))
    replay.add_argument("--keys", type=_count(1), metavar="N",
                        help="distinct keys of the default workload (default %s; only "
                             "without TRACE)" % "{:,}".format(DEFAULT_KEYS))
    replay.add_argument("--seed", type=_count(0), default=DEFAULT_SEED, metavar="N",
                        help="seed of the default workload and of the page contents "
                             "(default: %(default)s)")
    replay.add_argument("--pages", metavar="FILE",
                        help="take page contents from the 4 KiB pages of FILE (its first "
                             "256 MiB) instead of the synthetic mix")
    replay.add_argument("--reclaim", choices=RECLAIMS, default="lru",
                        help="which pages are swapped out: an exact LRU (lru), or the "
                             "kernel's active/inactive lists with workingset refault "
                             "detection through shadows in the swap descriptors (kernel) "
                             "(default: %(default)s)")
    replay.add_argument("--core", choices=CORES, default="compiled",
                        help="the compiled core or its pure-Python twin (default: "
                             "%(default)s)")
    replay.add_argument("--index", choices=INDEX_DESIGNS + tuple(INDEX_ALIASES), default="vswap",
                        help="where the pool keeps its zswap entries: in the swap "
                             "descriptors (vswap) or one red-black tree under one lock, as "
                             "zswap up to 6.7 (rbtree; 'tree' is its deprecated former name) "
                             "(default: %(default)s)")
    replay.add_argument("--compressor", choices=COMPRESSORS, default="lz4",
                        help="the pool's compressor, as the kernel's zswap names them; the "
                             "floor is then that compressor's library (default: %(default)s)")
    replay.add_argument("--threads", type=_count(1, 256), default=1, metavar="N",
                        help="replay shards: the keys are split into N disjoint sets, each "
                             "replayed by its own thread against the same space and pool "
                             "(default: %(default)s)")
    replay.add_argument("--pool-limit", type=_size, metavar="SIZE",
                        help="most bytes the zswap pool may use, e.g. 64M (default: no "
                             "limit); past it the pool writes back to the swap file")
    replay.add_argument("--swapfile", metavar="FILE",
                        help="the swap file behind the pool (created or truncated, and "
                             "left in place; default: a temporary file, removed afterwards)")
    replay.add_argument("--swapfile-size", type=_size, metavar="SIZE",
                        help="size of the swap file (default: a 4 KiB slot per distinct key)")
    replay.add_argument("--no-swapfile", action="store_true",
                        help="no swap file: no writeback, and pages the pool refuses stay "
                             "in memory uncompressed")
    replay.add_argument("--no-writeback", action="store_true",
                        help="the pool never writes back; pages it refuses go straight to "
                             "the swap file")
    replay.add_argument("--chunk", type=_count(1, 1 << 16), default=DEFAULT_CHUNK, metavar="N",
                        help="at most N swap-outs per batch call and thread (default: "
                             "%(default)s; with --pool-limit, at most a 32nd of the pages "
                             "that can be swapped out at once, so that batching changes "
                             "little when the pool writes back)")
    replay.add_argument("--stream", action=argparse.BooleanOptionalAction, default=None,
                        help="replay the trace as a stream, in two passes over the file, "
                             "with memory for its distinct pages only (default for a "
                             "trace file on the compiled core), or (--no-stream) read it "
                             "whole into memory first (default for the default workload "
                             "and the pure core, whose streaming reclaim is slower)")
    replay.add_argument("--no-floor", action="store_true",
                        help="do not measure the floor (the compressor's library alone)")
    replay.add_argument("--json", metavar="FILE",
                        help="also write the report as JSON to FILE ('-' for stdout, "
                             "instead of the text), with the run as a time series over "
                             "the trace's events")
    replay.add_argument("--plot", metavar="FILE",
                        help="draw the run into a PNG at FILE over the trace's events: "
                             "swap-outs and swap-ins per interval, pool size against its "
                             "limit, compression ratio, writebacks (needs matplotlib)")
    replay.add_argument("--no-progress", action="store_true",
                        help="do not draw the progress bar")
    replay.set_defaults(func=cmd_replay)
    _add_kernel(commands, DEFAULT_SEED)
    _add_memory(commands)
    return parser


def _add_memory(commands):
    from vswapfast.memory import DEFAULT_SIZE
    memory = commands.add_parser(
        "memory", help="the swap metadata of every design at 0..100%% use of a device",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Print the bytes of swap metadata (MiB) each design of the compiled core
holds for a swap device of --size at 0, 25, 50, 75 and 100% use, its pages
backed by zswap and backed by disk.  Every figure is measured by filling
the design's real structures (swap_out_many in steps, then
metadata_bytes()); 100% is every slot but the header page.

Beside swap-table-p1 and vswap, when present and the device is 32 GiB, the
virtual swap v6 cover letter's figures ("before" and vswap columns) and
the difference; beside swap-table and vswap-table, Kairui Song's per-slot
estimates (8 B plain, 16 B with zswap or a ghost slot, 24 B with a reverse
map) added to the design's static bytes.  A 32 GiB table takes a minute or
two; a progress bar is drawn on stderr when it takes more than a moment.""")
    memory.add_argument("--size", type=_size, default=DEFAULT_SIZE, metavar="SIZE",
                        help="the swap device's size: 32G, 1G, 512M ... (binary units, a "
                             "whole number of 4 KiB pages; default: 32G, 8,388,608 slots)")
    memory.add_argument("--design", action="append", metavar="NAME",
                        help="measure this design only (repeat for several; default: every "
                             "design the core has)")
    memory.add_argument("--core", choices=("compiled", "pure"), default="compiled",
                        help="the core whose designs are measured (default: %(default)s; "
                             "the pure twin counts the same bytes, slowly)")
    memory.add_argument("--json", metavar="FILE",
                        help="also write the rows (design, backing, usage_percent, bytes, "
                             "used_slots, nr_slots, structures, reference) as JSON to FILE "
                             "('-' for stdout, instead of the table)")
    memory.add_argument("--plot", metavar="FILE",
                        help="draw MiB against usage per design, zswap and disk side by side, "
                             "with the published figures, into a PNG at FILE (needs matplotlib)")
    memory.add_argument("--no-progress", action="store_true",
                        help="do not draw the progress bar")
    memory.set_defaults(func=cmd_memory)


def _add_kernel(commands, default_seed):
    from vswapfast.kernel import DEFAULT_FRAMES, DEFAULT_PAGES, WORKLOADS
    from vswapfast.replay import CORES, FORMATS
    kernel = commands.add_parser(
        "kernel", help="run a workload under the kernel's zswap and under the model, "
                       "side by side",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Run one workload twice: under the running kernel's zswap, in a child process
confined by a memory cgroup of --frames pages (plus the child's own
baseline) with a swap file of its own, and under vswapfast's model (an exact
LRU of the same frames and vswapfast's pool), with the same pages, the same
accesses and the same zswap settings; print them side by side.

Workloads:
  usemem  write --pages pages (the replay's synthetic page mix), then read
          them back
  memhog  the same over same-filled pages (--fill)
  replay  a trace (or the embedded default workload) with --frames, the page
          contents 'vswapfast replay' gives it

Needs root, zswap (CONFIG_ZSWAP), a memory cgroup controller, mkswap/swapon.
Refuses to start when zswap is enabled or swap is already active (someone may
be using them).  Every setting it changes (zswap parameters, the cgroup, the
swap file, a debugfs mount) is put back on success, on error, on Ctrl-C and
on SIGTERM; --dry-run lists the changes without making any.

Exit status: 0 on success, 2 for a refusal or bad input, 1 when a step
failed.""")
    kernel.add_argument("workload", nargs="?", choices=WORKLOADS, default="usemem",
                        help="the workload (default: %(default)s)")
    kernel.add_argument("trace", nargs="?", metavar="TRACE",
                        help="replay: the trace file (default: the embedded default workload)")
    kernel.add_argument("--format", choices=FORMATS, default="auto",
                        help="trace format (default: auto)")
    kernel.add_argument("--pages", type=_count(1), default=DEFAULT_PAGES, metavar="N",
                        help="usemem/memhog: pages written and read back (default: "
                             "%(default)s, 96 MiB)")
    kernel.add_argument("--frames", type=_count(1), metavar="N",
                        help="resident frames: the cgroup's room for the workload (default: "
                             "%d, 32 MiB, or half the distinct pages if fewer)"
                             % DEFAULT_FRAMES)
    kernel.add_argument("--events", type=_count(1), metavar="N",
                        help="replay: only the first N events")
    kernel.add_argument("--keys", type=_count(1), metavar="N",
                        help="replay: distinct keys of the default workload")
    kernel.add_argument("--seed", type=_count(0), default=default_seed, metavar="N",
                        help="seed of the default workload and the page contents "
                             "(default: %(default)s)")
    kernel.add_argument("--fill", default="mixed", metavar="BYTE",
                        help="memhog: the byte every page repeats, or 'mixed' (half zero "
                             "pages, half a non-zero byte) (default: %(default)s)")
    kernel.add_argument("--compressor", default="lzo",
                        help="zswap's compressor, for the kernel and the model (default: "
                             "%(default)s, the kernel's)")
    kernel.add_argument("--model-compressor", metavar="NAME",
                        help="another compressor for the model only (pool sizes are then "
                             "not comparable)")
    kernel.add_argument("--max-pool-percent", type=_count(0, 100), default=20, metavar="P",
                        help="zswap max_pool_percent (default: %(default)s)")
    kernel.add_argument("--accept-threshold-percent", type=_count(0, 100), default=90,
                        metavar="P", help="zswap accept_threshold_percent (default: "
                                          "%(default)s)")
    kernel.add_argument("--shrinker", action="store_true",
                        help="enable zswap's shrinker (default: off; the model has none)")
    kernel.add_argument("--page-cluster", type=_count(0, 10), metavar="N",
                        help="set vm.page-cluster (swap readahead of 2^N pages; 0: none) "
                             "for the run, restored afterwards (default: leave it)")
    kernel.add_argument("--swapfile-size", type=_size, metavar="SIZE",
                        help="size of the swap file (default: a slot per distinct page "
                             "plus 16 MiB)")
    kernel.add_argument("--dir", metavar="DIR",
                        help="where to make the private directory of the swap file "
                             "(default: the temporary directory; not tmpfs)")
    kernel.add_argument("--core", choices=CORES, default="compiled",
                        help="the model's core (default: %(default)s)")
    kernel.add_argument("--reclaim", choices=("lru", "kernel"), default="lru",
                        help="the model's reclaim: an exact LRU, or the kernel's "
                             "active/inactive lists (see 'vswapfast replay --help') "
                             "(default: %(default)s)")
    kernel.add_argument("--sysfs", default="/sys", metavar="DIR",
                        help="where sysfs is mounted (default: %(default)s)")
    kernel.add_argument("--procfs", default="/proc", metavar="DIR",
                        help="where procfs is mounted (default: %(default)s)")
    kernel.add_argument("--dry-run", action="store_true",
                        help="check the machine and print every change a run would make; "
                             "change nothing")
    kernel.add_argument("--json", metavar="FILE",
                        help="also write the comparison as JSON to FILE ('-' for stdout, "
                             "instead of the text)")
    kernel.add_argument("--verbose", action="store_true",
                        help="say what is undone at the end")
    kernel.set_defaults(func=cmd_kernel)


# -- commands ---------------------------------------------------------------------

def _write_json(data, path):
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    if path == "-":
        sys.stdout.write(text)
        return
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as exc:
        raise UsageError("cannot write %s (%s)" % (path, exc.strerror or exc)) from None


def _check_writable(path, what):
    """Fail early, before minutes of work, if ``path`` cannot be written."""
    if path is None or path == "-":
        return
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError("%s %s is a directory" % (what, path))
    if not os.path.isdir(directory):
        raise UsageError("%s %s: no such directory %s" % (what, path, directory))
    if not os.access(directory, os.W_OK):
        raise UsageError("%s %s: directory %s is not writable" % (what, path, directory))


def cmd_bench(args):
    from vswapfast.benchjob import Progress, format_bench, run_bench
    _check_writable(args.json, "--json")
    _check_writable(args.plot, "--plot")
    if args.plot:
        from vswapfast.plot import _pyplot
        _pyplot()               # fail now if matplotlib is missing
    factory = _page_factory(args.pages, args.seed)
    progress = Progress("bench", enabled=not args.no_progress)
    try:
        results = run_bench(threads=args.threads, quick=args.quick, seed=args.seed,
                            progress=progress, factory=factory,
                            compressors=_unique(args.compressor))
    finally:
        progress.close()
    if args.json != "-":
        print("\n".join(format_bench(results)))
    if args.json:
        _write_json(results, args.json)
    if args.plot:
        from vswapfast.plot import plot_bench
        plot_bench(results, args.plot)
        if args.json != "-":
            print("plot written to %s" % args.plot)
    return 0


def _unique(names):
    """The names given, each once, in order; None for none."""
    return list(dict.fromkeys(names)) if names else None


def _page_factory(path, seed):
    """The pages of ``path`` (--pages), or None for the synthetic mix."""
    from vswapfast.workload import PageFactory
    if not path:
        return None
    try:
        return PageFactory.from_file(path, seed=seed)
    except (OSError, ValueError) as exc:
        message = getattr(exc, "strerror", None) or str(exc)
        raise UsageError("--pages %s: %s" % (path, message)) from None


def _trace_options(args):
    """The TraceOptions of ``args`` (--csv, --split, --block-size)."""
    from vswapfast.traces import CsvSpec, TraceOptions
    if args.format == "csv" and args.csv is None:
        raise UsageError("--format csv needs --csv SPEC (e.g. --csv offset=5,size=6,op=4)")
    spec = CsvSpec.parse(args.csv) if args.csv is not None else None
    return TraceOptions(split=args.split, block_size=args.block_size, csv=spec)


def _read_trace(args, read_trace, Progress):
    """The trace file of ``args``, read with a progress bar (for any read
    longer than a moment)."""
    options = _trace_options(args)
    progress = Progress("read", enabled=not args.no_progress)
    start = time.monotonic()

    def update(fraction):
        # A read over in a moment draws nothing.
        if progress.drawn or time.monotonic() - start > 1.0:
            progress.update(fraction, "trace")

    try:
        return read_trace(args.trace, args.format, options, limit=args.events,
                          progress=update)
    finally:
        progress.close()


def cmd_replay(args):
    from vswapfast.benchjob import Progress
    from vswapfast.replay import ReplayConfig, default_workload, read_trace, run_replay
    from vswapfast.workload import PageFactory

    if args.trace is not None and args.keys is not None:
        raise UsageError("--keys is for the default workload; it cannot be used with a trace")
    from vswapfast.batch import INDEX_ALIASES
    if args.index in INDEX_ALIASES:
        sys.stderr.write("%s: warning: --index %s is deprecated, use --index %s\n"
                         % (PROG, args.index, INDEX_ALIASES[args.index]))
        args.index = INDEX_ALIASES[args.index]
    if args.trace is None:
        for given, option in ((args.format != "auto", "--format"), (args.csv, "--csv"),
                              (args.split, "--split"),
                              (args.block_size is not None, "--block-size")):
            if given:
                raise UsageError("%s is for a trace file; none is given" % option)
    if args.no_swapfile and (args.swapfile or args.swapfile_size is not None):
        raise UsageError("--no-swapfile cannot be used with --swapfile or --swapfile-size")
    if args.swapfile_size is not None and args.swapfile_size < 8192:
        raise UsageError("--swapfile-size must be at least 8K, not %d" % args.swapfile_size)
    _check_writable(args.swapfile, "--swapfile")
    _check_writable(args.json, "--json")
    _check_writable(args.plot, "--plot")
    if args.plot:
        from vswapfast.plot import _pyplot
        _pyplot()               # fail now if matplotlib is missing
    config = ReplayConfig(
        frames=args.frames, core=args.core, index=args.index, threads=args.threads,
        pool_limit=args.pool_limit, swapfile=args.swapfile,
        use_swapfile=not args.no_swapfile, swapfile_size=args.swapfile_size,
        writeback=not args.no_writeback, chunk=args.chunk, floor=not args.no_floor,
        reclaim=args.reclaim,
        compressor=args.compressor)
    config.check()
    # A trace file streams on the compiled core unless --no-stream.  The
    # default workload is made in memory, and the pure twin's streaming
    # reclaim runs in Python an event at a time (its offline one is
    # vectorised): they stream only with --stream.
    stream = args.stream
    if stream is None:
        stream = args.trace is not None and args.core == "compiled"

    start = time.perf_counter()
    if args.trace is None:
        trace = default_workload(events=args.events, keys=args.keys, seed=args.seed)
        config.stream = stream
    elif stream:
        from vswapfast.stream import TraceStream
        trace = TraceStream.of_file(args.trace, args.format, _trace_options(args),
                                    limit=args.events)
    else:
        trace = _read_trace(args, read_trace, Progress)
    time_read = time.perf_counter() - start

    start = time.perf_counter()
    if args.pages:
        try:
            factory = PageFactory.from_file(args.pages, seed=args.seed)
        except (OSError, ValueError) as exc:
            message = getattr(exc, "strerror", None) or str(exc)
            raise UsageError("--pages %s: %s" % (args.pages, message)) from None
    else:
        factory = PageFactory.synthetic(seed=args.seed)
    time_pages = time.perf_counter() - start

    progress = Progress("replay", enabled=not args.no_progress)
    try:
        if args.trace is not None and stream:
            from vswapfast.stream import run_stream
            report = run_stream(trace, config, factory=factory, progress=progress.update,
                                time_read=time_read, time_pages=time_pages)
        else:
            report = run_replay(trace, config, factory=factory, progress=progress.update,
                                time_read=time_read, time_pages=time_pages)
    finally:
        progress.close()
    if args.json != "-":
        print("\n".join(report.format_text()))
    if args.json:
        _write_json(report.to_dict(), args.json)
    if args.plot:
        from vswapfast.plot import plot_replay
        plot_replay(report.to_dict(), args.plot)
        if args.json != "-":
            print("plot written to %s" % args.plot)
    if report.shadow_mismatches:
        sys.stderr.write("%s: error: %d shadows read back from the swap descriptors differ "
                         "from those left at swap-out (first: %s)\n"
                         % (PROG, report.shadow_mismatches, report.first_mismatch))
        return 1
    if report.mismatches:
        sys.stderr.write("%s: error: %d swapped-in pages differ from what was swapped out "
                         "(first: %s)\n" % (PROG, report.mismatches, report.first_mismatch))
        return 1
    return 0


def cmd_kernel(args):
    from vswapfast.kernel import KernelConfig, Machine, run_kernel
    if args.workload != "replay" and args.trace is not None:
        raise UsageError("a trace is for the replay workload")
    _check_writable(args.json, "--json")
    config = KernelConfig(
        workload=args.workload, pages=args.pages, frames=args.frames, trace=args.trace,
        trace_format=args.format, events=args.events, keys=args.keys, seed=args.seed,
        fill=args.fill, compressor=args.compressor, model_compressor=args.model_compressor,
        max_pool_percent=args.max_pool_percent,
        accept_threshold_percent=args.accept_threshold_percent, shrinker=args.shrinker,
        page_cluster=args.page_cluster, swapfile_size=args.swapfile_size, directory=args.dir,
        core=args.core, reclaim=args.reclaim)

    def log(line):
        if args.verbose:
            sys.stderr.write("%s: %s\n" % (PROG, line))

    machine = Machine(sys=args.sysfs, proc=args.procfs)
    result = run_kernel(config, machine=machine, dry_run=args.dry_run, log=log)
    if args.dry_run:
        print("dry run: nothing changed; a run would:")
        for line in result:
            print("  " + line)
        return 0
    if args.json != "-":
        print("\n".join(result.format_text()))
    if args.json:
        _write_json(result.to_dict(), args.json)
    return 0


def cmd_memory(args):
    from vswapfast.benchjob import Progress
    from vswapfast.designs import DESIGNS, available_designs
    from vswapfast.memory import (Timer, explanations, format_table, measure, parse_nr_slots,
                                  references)
    try:
        nr_slots = parse_nr_slots(args.size)
    except ValueError as exc:
        raise UsageError("--size: %s" % exc) from None
    available = available_designs(args.core)
    designs = available
    if args.design:
        for name in args.design:
            if name not in DESIGNS:
                raise UsageError("--design must be one of %s, not %r" % (", ".join(DESIGNS), name))
            if name not in available:
                raise UsageError("--design %s: the %s core has no such design yet (it has %s)"
                                 % (name, args.core, ", ".join(available) or "none"))
        designs = _unique(args.design)
    if not designs:
        raise UsageError("the %s core has no design to measure" % args.core)
    _check_writable(args.json, "--json")
    _check_writable(args.plot, "--plot")
    if args.plot:
        from vswapfast.plot import _pyplot
        _pyplot()               # fail now if matplotlib is missing
    progress = Progress("memory", enabled=not args.no_progress)
    try:
        rows = measure(nr_slots, designs, core=args.core, progress=Timer(progress.update))
    finally:
        progress.close()
    refs = references(rows)
    why = explanations(rows)
    for r in rows:
        ref = refs.get((r["design"], r["backing"], r["usage_percent"]))
        if ref is not None:
            r["reference"] = {"bytes": ref[0], "source": ref[1]}
            if (r["design"], r["backing"]) in why:
                r["reference"]["why"] = why[r["design"], r["backing"]]
    if args.json != "-":
        print("\n".join(format_table(rows, nr_slots, args.core)))
    if args.json:
        _write_json(rows, args.json)
    if args.plot:
        from vswapfast.plot import plot_memory
        plot_memory(rows, args.plot)
        if args.json != "-":
            print("plot written to %s" % args.plot)
    return 0


# -- entry point ---------------------------------------------------------------------

def _fail(message, status=2):
    message = " ".join(str(message).split()) or "failed"
    sys.stderr.write("%s: error: %s\n" % (PROG, message))
    return status


def main(argv=None):
    """Run the command line; returns the exit status."""
    from vswapfast.benchjob import BenchError
    from vswapfast.kernel import KernelError
    from vswapfast.plot import PlotError
    from vswapfast.replay import ReplayError

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        return _fail("a command is needed: bench, replay, kernel or memory (see '%s --help')"
                     % PROG)
    try:
        return args.func(args)
    except (UsageError, ReplayError, BenchError, PlotError) as exc:
        return _fail(exc)
    except KernelError as exc:
        return _fail(exc, exc.status)
    except MemoryError:
        return _fail("out of memory (try a smaller trace, --events, or fewer --frames)", 1)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except BrokenPipeError:
        # The reader went away (| head): say nothing more on stdout.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except OSError as exc:
        where = " (%s)" % exc.filename if getattr(exc, "filename", None) else ""
        return _fail("%s%s" % (exc.strerror or exc, where))

