"""MSR Cambridge block traces (SNIA IOTTA, "MSR Cambridge Traces").

One CSV line per request, no header:
``Timestamp,Hostname,DiskNumber,Type,Offset,Size,ResponseTime`` with Type
``Read`` or ``Write`` and Offset and Size in bytes.  Each request is split
into the 4 KiB pages it touches; pages of different volumes
(Hostname+DiskNumber) are different pages.
"""

from vswapfast.traces import csv as csv_format
from vswapfast.traces.csv import CsvSpec
from vswapfast.traces.text import content_lines, parse_int

NAME = "msr"
HELP = ("MSR Cambridge CSV: Timestamp,Hostname,DiskNumber,Type,Offset,Size,ResponseTime "
        "(Type Read/Write; Offset and Size in bytes)")
SPEC = CsvSpec({"key": (1, 2), "op": (3,), "offset": (4,), "size": (5,)}, header="auto",
               text="key=2+3,op=4,offset=5,size=6")


def sniff(head, text):
    lines = content_lines(head) if text else []
    return bool(lines) and all(_is_record(line) for line in lines)


def _is_record(line):
    fields = line.split(b",")
    if len(fields) != 7 or fields[3].strip().lower() not in (b"read", b"write"):
        return False
    try:
        for i in (0, 2, 4, 5, 6):
            parse_int(fields[i].strip())
    except ValueError:
        return False
    return True


def chunks(source, options):
    return csv_format.chunks(source, options, SPEC)
