"""close() while other threads are inside calls that released the GIL.

Batch calls, page stores and loads, writeback, and the space's own calls
that hand entries and slots to the pool's hooks run on two threads while
the main thread closes the pool (and a swap file while it is read and
written).  ``close()`` waits for the calls in flight; a call that starts
after it raises the closed-object error.  Child processes.
"""

import pytest

from cores import core_names
from hostile import check_child


@pytest.mark.parametrize("name", ["race_batch", "race_pages", "race_writeback",
                                  "race_vswap_hooks", "race_rebind", "race_swapfile_close"])
@pytest.mark.parametrize("core", core_names())
def test_close_races_calls_in_flight(core, name):
    check_child(core, name, timeout=300)
