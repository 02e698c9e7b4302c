# Type stubs for the replay's reclaim loops.  The compiled core
# (vswapfast._reclaim) and the pure twin (vswapfast.pure.reclaim) both
# implement exactly this.
from array import array
from typing import Any, Dict, Tuple

import numpy as np

def lru_misses(check: Any, check_prev: Any, cand: Any, cand_next: Any, frames: int,
               n: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]: ...
def kernel_reclaim(ids: Any, ndistinct: int, frames: int) -> Dict[str, Any]: ...
def leave_shadows(space: Any, entries: Any, shadows: Any) -> "array[int]": ...
def read_shadows(space: Any, entries: Any, out: Any) -> "array[int]": ...
def swap_cache_add_folios(space: Any, entries: Any, folio: object,
                          shadows_out: Any) -> "array[int]": ...
def swap_cache_del_folios(space: Any, entries: Any, folio: object,
                          shadows: Any = None) -> "array[int]": ...

MISS_FIELDS: Tuple[Tuple[str, Any], ...]

class StreamReclaim:
    reclaim: str
    started: bool
    frames: int
    distinct: int
    events: int
    misses: int
    evictions: int
    swap_ins: int
    promotions: int
    deactivations: int
    activations: int
    resident: int
    nonresident_age: int
    nr_active: int
    nr_inactive: int
    def __init__(self, reclaim: str = "lru") -> None: ...
    def count(self, keys: Any) -> None: ...
    def start(self, frames: int) -> None: ...
    def feed(self, keys: Any, writes: Any = None) -> Dict[str, Any]: ...
