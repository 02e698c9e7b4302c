"""What a call displaced is released pool entries first, Python objects last.

Batch stores, erases and frees displace a mix of pool entries and objects
whose ``__del__`` closes the pool; a pool entry released after that would
go through hooks that are gone.  Child processes.
"""

import pytest

from cores import core_names
from hostile import check_child


@pytest.mark.parametrize("name", ["release_order_store", "release_order_erase",
                                  "release_order_free", "release_order_pool_calls"])
@pytest.mark.parametrize("core", core_names())
def test_displaced_release_order(core, name):
    check_child(core, name)
