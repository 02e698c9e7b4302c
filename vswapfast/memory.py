"""The metadata table of ``vswapfast memory``: the bytes of swap metadata
each design holds for a swap device of a given size at 0, 25, 50, 75 and
100% use, backed by zswap and backed by disk.  A virtual design's
zswap-backed rows leave out the physical device's structures, which a
zswap-only virtual swap space does not need (``DEVICE_STRUCTURES``).

Every figure is measured by filling the design's real structures: the design
is created for the device, ``swap_out_many(n, backing=...)`` swaps pages out
in steps up to each usage level, and ``metadata_bytes()`` and the
``bytes_*`` of ``stats()`` are read there.  Slot 0 of a device is never given
out, so 100% means every allocatable slot (``nr_slots - 1``).

Published figures are put beside the designs they describe, when those
designs are present:

- the virtual swap v6 cover letter's table for a 32 GB swap file (MB):
  its "before" columns beside ``swap-table-p1`` (its base, swap table
  phase I), its vswap columns beside ``vswap``;
- Kairui Song's per-slot estimates for the swap table designs (8 B per used
  slot plain, 16 B with zswap or a ghost slot, 24 B with a reverse map),
  beside ``swap-table`` (zswap 16, disk 8) and ``vswap-table`` (zswap 16,
  disk 24), as the design's static bytes (its 0% figure) plus the
  estimate per used slot.
"""

import time

from vswapfast.designs import available_designs, design_class

__all__ = ["USAGES", "BACKINGS", "DEFAULT_SIZE", "PAGE_SIZE", "COVER_LETTER",
           "PER_SLOT_ESTIMATES", "measure", "references", "explanations", "format_table",
           "parse_nr_slots"]

PAGE_SIZE = 4096
USAGES = (0, 25, 50, 75, 100)
BACKINGS = ("zswap", "disk")
DEFAULT_SIZE = 32 << 30                 # 8,388,608 slots
MAX_SLOTS = 1 << 32
MIB = 1 << 20
#: Pages per swap_out_many call: small enough to show progress.
STEP = 1 << 16

#: The v6 cover letter's table, MB, for a 32 GB swap file (8,388,608 slots):
#: design -> backing -> one figure per usage of USAGES.
COVER_LETTER = {
    "swap-table-p1": {"zswap": (25, 57, 89, 121, 153), "disk": (25, 41, 57, 73, 89)},
    "vswap": {"zswap": (0, 48.25, 96.5, 144.75, 193), "disk": (2, 66.25, 130.5, 194.75, 259)},
}
#: The device the cover letter measured.
COVER_LETTER_SLOTS = 8388608

#: The physical swap device's structures in the virtual designs.  A
#: zswap-only virtual swap space needs no device (the v6 cover letter's
#: zswap column has none), so zswap-backed rows leave them out (and say how
#: many bytes, as ``device_bytes_left_out``).
DEVICE_STRUCTURES = {
    "vswap": ("swap_alloc_bitmap", "swap_bad_bitmap", "cluster_info"),
    "vswap-table": ("cluster_info", "device_swap_table"),
}

#: Kairui Song's estimates, bytes per used slot: design -> backing -> bytes.
PER_SLOT_ESTIMATES = {
    "swap-table": {"zswap": 16, "disk": 8},
    "vswap-table": {"zswap": 16, "disk": 24},
}


def parse_nr_slots(size):
    """The slots of a device of ``size`` bytes; ValueError saying why not."""
    if size % PAGE_SIZE:
        raise ValueError("the size must be a whole number of 4 KiB pages, not %d bytes" % size)
    slots = size // PAGE_SIZE
    if slots < 2:
        raise ValueError("the size must be at least 8 KiB (the header page and one slot), "
                         "not %d bytes" % size)
    if slots > MAX_SLOTS:
        raise ValueError("the size must be at most 16 TiB (2**32 slots), not %d bytes" % size)
    return slots


def _targets(nr_slots):
    """The used slots at each usage of USAGES."""
    allocatable = nr_slots - 1
    return [allocatable * u // 100 for u in USAGES]


def _fill(design, count, backing, progress):
    """Swap out ``count`` pages in steps (each step a progress tick)."""
    left = count
    while left:
        n = min(left, STEP)
        design.swap_out_many(n, backing)
        left -= n
        progress(n)


def measure(nr_slots, designs=None, core="compiled", progress=None):
    """The rows of the table: one per design, backing and usage, each
    ``{"design", "backing", "usage_percent", "bytes", "used_slots",
    "nr_slots", "structures"}`` (``structures``: the ``bytes_*`` of
    stats()).  ``designs`` defaults to every design ``core`` has;
    ``progress(fraction, label)`` is called as pages are swapped out."""
    if designs is None:
        designs = available_designs(core)
    targets = _targets(nr_slots)
    total = max(1, len(designs) * len(BACKINGS) * targets[-1])
    done = [0]

    rows = []
    for name in designs:
        cls = design_class(name, core)
        for backing in BACKINGS:
            label = "%s, %s" % (name, backing)

            def tick(n, label=label):
                done[0] += n
                if progress is not None:
                    progress(done[0] / total, label)

            with cls(nr_slots) as design:
                used = 0
                for usage, target in zip(USAGES, targets):
                    _fill(design, target - used, backing, tick)
                    used = target
                    s = design.stats()
                    structures = {k[len("bytes_"):]: v for k, v in sorted(s.items())
                                  if k.startswith("bytes_")}
                    row = {
                        "design": name,
                        "backing": backing,
                        "usage_percent": usage,
                        "bytes": design.metadata_bytes(),
                        "used_slots": s["used"],
                        "nr_slots": nr_slots,
                        "structures": structures,
                    }
                    if backing == "zswap" and name in DEVICE_STRUCTURES:
                        device = sum(structures.get(k, 0) for k in DEVICE_STRUCTURES[name])
                        row["bytes"] -= device
                        row["device_bytes_left_out"] = device
                    rows.append(row)
    return rows


def references(rows):
    """The published figures for ``rows``: {(design, backing, usage):
    (bytes, source)}, for the designs and device sizes they describe."""
    out = {}
    static = {(r["design"], r["backing"]): r["bytes"] for r in rows if r["usage_percent"] == 0}
    for r in rows:
        key = (r["design"], r["backing"], r["usage_percent"])
        letter = COVER_LETTER.get(r["design"])
        if letter is not None and r["nr_slots"] == COVER_LETTER_SLOTS:
            mb = letter[r["backing"]][USAGES.index(r["usage_percent"])]
            column = "vswap" if r["design"] == "vswap" else "before"
            out[key] = (int(mb * MIB), "v6 cover letter (%s)" % column)
        estimate = PER_SLOT_ESTIMATES.get(r["design"])
        if estimate is not None:
            per_slot = estimate[r["backing"]]
            out[key] = (static[r["design"], r["backing"]] + per_slot * r["used_slots"],
                        "Kairui Song, static + %d B/slot" % per_slot)
    return out


#: Beyond this difference from a published figure, the table says why.
EXPLAIN_ABOVE = 0.05


class _Fill:
    """One design and backing's rows, for what the explanations measure."""

    def __init__(self, rows):
        by_usage = {r["usage_percent"]: r for r in rows}
        self.empty, self.full = by_usage[USAGES[0]], by_usage[USAGES[-1]]

    def per_slot(self, structure):
        """Bytes of ``structure`` per used slot, from empty to full."""
        grown = (self.full["structures"].get(structure, 0)
                 - self.empty["structures"].get(structure, 0))
        return grown / max(1, self.full["used_slots"])

    def static_mib(self, *structures):
        return sum(self.empty["structures"].get(s, 0) for s in structures) / MIB


#: Why a design's measured bytes depart from the published figure beside it:
#: (design, backing) -> a function of its _Fill giving one line.
_WHY = {
    ("swap-table-p1", "zswap"): lambda f: (
        "the letter counts 8 B per zswap xarray entry; the xa_nodes (576 B per 64 "
        "entries, and the nodes above them) take %.2f B" % f.per_slot("xa_node_zswap")),
    ("swap-table", "zswap"): lambda f: (
        "the estimate leaves out the memcg table (%.2f B per used slot) and counts the "
        "zswap xarray at 8 B per entry, whose nodes take %.2f B"
        % (f.per_slot("memcg_table"), f.per_slot("xa_node_zswap"))),
    ("swap-table", "disk"): lambda f: (
        "the estimate leaves out the memcg table: %.2f B per used slot"
        % f.per_slot("memcg_table")),
    ("vswap", "disk"): lambda f: (
        "the letter's 2 MB are the device's bitmaps; the model also counts its "
        "cluster_info, %.2f MiB" % f.static_mib("cluster_info")),
    ("vswap-table", "zswap"): lambda f: _vswap_table_why(f),
    ("vswap-table", "disk"): lambda f: _vswap_table_why(f),
}


def _vswap_table_why(f):
    return ("the estimate leaves out the memcg table (%.2f B per used slot) and the "
            "dynamic clusters with their map (%.2f B)"
            % (f.per_slot("memcg_table"),
               f.per_slot("cluster_info_dynamic") + f.per_slot("cluster_map")))


def explanations(rows):
    """{(design, backing): line} for every design and backing whose bytes
    differ from the published figure beside them by more than 5% at some
    usage: what the figure leaves out, measured from the design's
    structures."""
    refs = references(rows)
    out = {}
    for (name, backing), why in _WHY.items():
        mine = [r for r in rows if r["design"] == name and r["backing"] == backing]
        if len(mine) != len(USAGES):
            continue
        far = False
        for r in mine:
            ref = refs.get((name, backing, r["usage_percent"]))
            if ref is None:
                break
            far |= (abs(r["bytes"] - ref[0]) > EXPLAIN_ABOVE * ref[0]) if ref[0] else bool(r["bytes"])
        else:
            if far:
                out[name, backing] = why(_Fill(mine))
    return out


def _difference(measured, reference):
    if reference == 0:
        return "-" if measured else "0%"
    return "%+.1f%%" % (100.0 * (measured - reference) / reference)


def format_table(rows, nr_slots, core="compiled"):
    """The table as lines of text (MiB), the references and the differences
    under the designs they describe."""
    refs = references(rows)
    why = explanations(rows)
    lines = ["swap metadata of a %s swap device (%s slots), %s core, MiB"
             % (_size_text(nr_slots * PAGE_SIZE), format(nr_slots, ","), core),
             "%-34s %s" % ("design, backing", " ".join("%9s" % ("%d%%" % u) for u in USAGES))]
    by_key = {(r["design"], r["backing"], r["usage_percent"]): r for r in rows}
    seen = []
    for r in rows:
        if (r["design"], r["backing"]) not in seen:
            seen.append((r["design"], r["backing"]))
    for name, backing in seen:
        cells = [by_key[name, backing, u]["bytes"] for u in USAGES]
        lines.append("%-34s %s" % ("%s, %s" % (name, backing),
                                   " ".join("%9.2f" % (b / MIB) for b in cells)))
        ref = [refs.get((name, backing, u)) for u in USAGES]
        if all(x is not None for x in ref):
            lines.append("  %-32s %s" % (ref[0][1][:32],
                                         " ".join("%9.2f" % (x[0] / MIB) for x in ref)))
            lines.append("  %-32s %s" % ("difference",
                                         " ".join("%9s" % _difference(b, x[0])
                                                  for b, x in zip(cells, ref))))
            if (name, backing) in why:
                lines.append("  why: " + why[name, backing])
    return lines


def _size_text(size):
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return "%d %s" % (size >> shift, unit)
    return "%d-byte" % size


class Timer:
    """Calls ``update`` only once the work has run for ``delay`` seconds, so
    that a table filled in a moment draws no progress bar."""

    def __init__(self, update, delay=2.0):
        self.update = update
        self.delay = delay
        self.start = time.monotonic()
        self.drawn = False

    def __call__(self, fraction, label):
        if self.drawn or time.monotonic() - self.start > self.delay:
            self.drawn = True
            self.update(fraction, label)
