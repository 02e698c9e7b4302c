"""The pure-Python core of vswapfast.

Same API and behaviour as the compiled core: the ``VSwap`` class
(``vswapfast._vswap``), the zswap pool ``Zswap`` (``vswapfast._zswap``), the
zswap entry index ``ZswapIndex`` (``vswapfast._zswap_index``), the backing
``SwapFile`` (``vswapfast._swapfile``), the layout constants, the shared
exceptions and ``ZswapEntryView``.
"""

from ..errors import (
    CompressorLibraryError,
    InvalidEntryError,
    NoPageError,
    SwapCacheError,
    SwapFileFullError,
    SwapFullError,
    VSwapError,
    ZswapDecompressError,
)
from ..zswap_entry import ZswapEntryView
from .swapfile import PAGE_SIZE, SwapFile
from .vswap import (
    SWP_DESC_SIZE,
    VSWAP_CLUSTER_SHIFT,
    VSWAP_CLUSTER_SIZE,
    VSWAP_MAX_CLUSTERS,
    VSwap,
)
from .zswap import Zswap
from .zswap_index import ZswapIndex

#: Which core this is, as ``repr(space)`` reports it.
CORE = "pure"

__all__ = [
    "CORE",
    "CompressorLibraryError",
    "PAGE_SIZE",
    "SWP_DESC_SIZE",
    "VSWAP_CLUSTER_SHIFT",
    "VSWAP_CLUSTER_SIZE",
    "VSWAP_MAX_CLUSTERS",
    "VSwap",
    "Zswap",
    "ZswapIndex",
    "SwapFile",
    "ZswapEntryView",
    "VSwapError",
    "InvalidEntryError",
    "SwapFullError",
    "SwapCacheError",
    "SwapFileFullError",
    "NoPageError",
    "ZswapDecompressError",
]
