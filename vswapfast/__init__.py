"""vswapfast: the Linux virtual swap space and its zswap entries, in user space.

The compiled core is imported by default.  Set ``VSWAPFAST_PURE=1`` in the
environment to use the pure-Python twin instead; both have the same API.
"""

import os as _os

from vswapfast.errors import (
    CompressorLibraryError,
    InvalidEntryError,
    NoPageError,
    SwapCacheError,
    SwapFileFullError,
    SwapFullError,
    VSwapError,
    ZswapDecompressError,
)
from vswapfast.zswap_entry import ZswapEntryView

if _os.environ.get("VSWAPFAST_PURE", "") not in ("", "0"):
    from vswapfast.pure.vswap import (
        SWP_DESC_SIZE, VSWAP_CLUSTER_SHIFT, VSWAP_CLUSTER_SIZE, VSWAP_MAX_CLUSTERS, VSwap,
    )
    from vswapfast.pure.swapfile import PAGE_SIZE, SwapFile
    from vswapfast.pure.zswap import Zswap
    from vswapfast.pure.zswap_index import ZswapIndex
    CORE = "pure"
else:
    from vswapfast._vswap import (
        SWP_DESC_SIZE, VSWAP_CLUSTER_SHIFT, VSWAP_CLUSTER_SIZE, VSWAP_MAX_CLUSTERS, VSwap,
    )
    from vswapfast._swapfile import PAGE_SIZE, SwapFile
    from vswapfast._zswap import Zswap
    from vswapfast._zswap_index import ZswapIndex
    CORE = "compiled"

__version__ = "0.1.0"

__all__ = [
    "CORE",
    "CompressorLibraryError",
    "InvalidEntryError",
    "NoPageError",
    "PAGE_SIZE",
    "SWP_DESC_SIZE",
    "SwapCacheError",
    "SwapFile",
    "SwapFileFullError",
    "SwapFullError",
    "VSWAP_CLUSTER_SHIFT",
    "VSWAP_CLUSTER_SIZE",
    "VSWAP_MAX_CLUSTERS",
    "VSwap",
    "VSwapError",
    "Zswap",
    "ZswapDecompressError",
    "ZswapIndex",
    "ZswapEntryView",
]
