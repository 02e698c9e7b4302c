# Type stubs for the zswap pool.  The compiled core (vswapfast._zswap) and the
# pure-Python twin (vswapfast.pure.zswap) both implement exactly this.
import os
from array import array
from typing import Any, Dict, Optional, SupportsIndex, Union

from vswapfast._swapfile import SwapFile
from vswapfast._vswap import VSwap

PAGE_SIZE: int

class Zswap:
    """A compressed page pool (LZ4, zstd or LZO) whose entries live in a VSwap's descriptors.

    See docs/semantics.md, section "zswap pool", for the full contract.
    """

    def __init__(
        self,
        space: VSwap,
        swapfile: Optional[SwapFile] = None,
        *,
        max_pool_bytes: Optional[int] = None,
        max_pool_percent: float = 20.0,
        memory_bytes: Optional[int] = None,
        accept_threshold_percent: float = 90.0,
        writeback: bool = True,
        exclusive_loads: bool = True,
        index: str = "vswap",
        compressor: str = "lz4",
        wait_for_shrink_worker: bool = False,
    ) -> None: ...
    @property
    def index(self) -> str: ...
    @property
    def compressor(self) -> str:
        """"lz4", "zstd" or "lzo" (vswapfast.compressors); fixed at creation."""
    @property
    def space(self) -> VSwap: ...
    @property
    def swapfile(self) -> Optional[SwapFile]: ...
    max_pool_bytes: int
    accept_threshold_percent: float
    writeback: bool
    exclusive_loads: bool
    wait_for_shrink_worker: bool
    @property
    def writeback_enabled(self) -> bool: ...

    def store(self, entry: int, page: Any) -> bool: ...
    def load(self, entry: int, out: Any = None) -> Any: ...
    def read(self, entry: int, out: Any = None) -> Any: ...
    def invalidate(self, entry: int, nr: int = 1) -> int: ...
    def shrink(self, nr: int) -> int: ...
    def flush_shrink_work(self) -> None:
        """Wait until the background shrink worker is idle (flush_work)."""
    def store_many(self, entries: Any, pages: Any) -> "array[int]": ...
    def load_many(self, entries: Any, out: Any) -> "array[int]": ...
    def invalidate_many(self, entries: Any) -> "array[int]": ...
    def close(self) -> None: ...
    def stats(self) -> Dict[str, Union[int, float]]: ...
    def __len__(self) -> int: ...
    def __repr__(self) -> str: ...

