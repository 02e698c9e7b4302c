# Type stubs for the compiled page compressors (vswapfast._compress); the
# pure twin's are vswapfast.pure.compress, with the same functions.
from typing import Any, Optional

def compressor_number(name: str) -> int:
    """The compressor's number, its library loaded (CompressorLibraryError
    if it cannot be; TypeError, ValueError for a bad name)."""

def compress_page(name: str, page: Any) -> bytes:
    """One 4096-byte page compressed with ``name``: the block."""

def decompress_page(name: str, block: Any) -> Optional[bytes]:
    """A block of ``name`` decompressed to one page, or None if it does not
    decompress to exactly one page."""
