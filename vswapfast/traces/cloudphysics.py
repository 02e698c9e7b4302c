"""CloudPhysics VSCSI block traces in CSV, as libCacheSim reads them.

libCacheSim ships a sample of these traces as ``data/trace.csv`` (and
``data/cloudPhysicsIO.csv``) with the header ``version,time,op,size,lbn``,
and reads them with ``time-col=2, obj-id-col=5, obj-size-col=4`` (its
docs, ``doc/quickstart_cachesim.md`` and FAQ.md): column 3 is the SCSI
opcode in hex (``28`` READ(10), ``2a`` WRITE(10), ...), column 4 the
request size in bytes, column 5 the logical block number in 512-byte
sectors (consecutive 512-byte requests in the sample are at consecutive
block numbers).  Where libCacheSim takes the block number as the object,
each request here is split into the 4 KiB pages it touches.  The header
line is optional.
"""

from vswapfast.traces import csv as csv_format
from vswapfast.traces.csv import SCSI_OPS, CsvSpec
from vswapfast.traces.text import content_lines, parse_int

NAME = "cloudphysics"
HELP = ("CloudPhysics VSCSI CSV as libCacheSim reads it: version,time,op,size,lbn (op a "
        "SCSI opcode in hex, size in bytes, lbn in 512-byte sectors)")
SECTOR = 512
HEADER = b"version,time,op,size,lbn"
SPEC = CsvSpec({"op": (2,), "size": (3,), "offset": (4,)}, header="auto", unit=SECTOR,
               ops="scsi", text="op=3,size=4,offset=5,unit=512,ops=scsi")


def sniff(head, text):
    lines = content_lines(head) if text else []
    if not lines:
        return False
    if lines[0].replace(b" ", b"").lower() == HEADER:
        lines = lines[1:]
    return bool(lines) and all(_is_record(line) for line in lines)


def _is_record(line):
    fields = line.split(b",")
    if len(fields) != 5:
        return False
    try:
        for i in (0, 1, 3, 4):
            parse_int(fields[i].strip())
        return int(fields[2].strip(), 16) in SCSI_OPS
    except ValueError:
        return False


def chunks(source, options):
    return csv_format.chunks(source, options, SPEC)
