# Type stubs for the ``swap-table-p1`` design.  The compiled core
# (vswapfast._design_swap_table_p1) and the pure-Python twin
# (vswapfast.pure.design_swap_table_p1) both implement exactly this (docs/designs.md).
from vswapfast._swap_table_design import BACKINGS as BACKINGS, SwapTableBase

class SwapTableP1Design(SwapTableBase):
    """Swap table phase I (6.18)."""
