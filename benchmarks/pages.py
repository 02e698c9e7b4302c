"""Pages that compress like real memory, taken from files on this machine.

Benchmarks and the command line use the same mix: shared libraries (machine
code and tables), Python sources (text), and a share of zero pages, as
swapped anonymous memory has.
"""

import os
import sysconfig

PAGE = 4096


def _library_paths():
    """Shared objects this process has mapped (read from /proc/self/maps)."""
    paths = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                parts = line.split()
                if len(parts) >= 6 and ".so" in parts[5] and parts[5] not in paths:
                    paths.append(parts[5])
    except OSError:
        pass
    return paths


def _source_paths():
    stdlib = sysconfig.get_paths()["stdlib"]
    out = []
    for root, _dirs, files in os.walk(stdlib):
        out.extend(os.path.join(root, f) for f in sorted(files) if f.endswith(".py"))
        if len(out) > 400:
            break
    return out


def real_pages(count, zero_share=0.1):
    """``count`` distinct-content pages: library code, source text, zeros."""
    pages = []
    zero = bytes(PAGE)
    sources = _library_paths() + _source_paths()
    data = bytearray()
    for path in sources:
        try:
            with open(path, "rb") as f:
                data += f.read()
        except OSError:
            continue
        if len(data) >= count * PAGE:
            break
    every = int(1 / zero_share) if zero_share else 0
    offset = 0
    while len(pages) < count:
        if every and len(pages) % every == every - 1:
            pages.append(zero)
            continue
        if offset + PAGE > len(data):
            offset = 0
            data = data[1:] if len(data) > PAGE else data   # shift to vary repeats
        pages.append(bytes(data[offset:offset + PAGE]))
        offset += PAGE
    return pages
