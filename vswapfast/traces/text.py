"""What the line-based formats share: comments, integers, telling text
from binary data."""

from vswapfast.traces.source import TraceError, show


def content(line):
    """A line without its ``#`` comment and surrounding blanks."""
    hash_at = line.find(b"#")
    if hash_at >= 0:
        line = line[:hash_at]
    return line.strip()


def parse_int(token):
    """A non-negative integer below 2**64: decimal, or hex with 0x."""
    if token[:2] in (b"0x", b"0X"):
        value = int(token[2:], 16)
    else:
        value = int(token, 10)
    if value < 0 or value >= 1 << 64:
        raise ValueError("out of range")
    return value


def looks_like_text(head):
    """Whether ``head`` is printable ASCII (with line ends and tabs)."""
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\r\n\t\f\v" for c in text)


def content_lines(head, count=8):
    """The first ``count`` lines of ``head`` that hold something (the last
    line of ``head`` may be cut, so it is left out unless it is all)."""
    lines = head.split(b"\n")
    if len(lines) > 1:
        lines = lines[:-1]
    out = []
    for line in lines:
        line = content(line)
        if line:
            out.append(line)
            if len(out) == count:
                break
    return out


def bad_line(source, number, expected, line):
    """The error for line ``number`` of ``source``: what was expected, and
    what was found."""
    return TraceError("%s:%d: expected %s, got %s" % (source.name, number, expected,
                                                      show(line.strip())))
