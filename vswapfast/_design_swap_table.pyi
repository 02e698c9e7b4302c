# Type stubs for the ``swap-table`` design.  The compiled core
# (vswapfast._design_swap_table) and the pure-Python twin
# (vswapfast.pure.design_swap_table) both implement exactly this (docs/designs.md).
from vswapfast._swap_table_design import BACKINGS as BACKINGS, SwapTableBase

class SwapTableDesign(SwapTableBase):
    """The swap table after phases III-IV."""
