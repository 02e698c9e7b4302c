"""A pool or an index in a reference cycle is torn down in a safe order.

The garbage collector may clear a cycle's objects in any order; the pool's
own teardown must still find its space alive (the compiled classes are
``no_gc_clear`` and close themselves in ``__dealloc__`` before they let go
of the space).  Child processes: a wrong order is a use after free.
"""

import pytest

from cores import core_names
from hostile import check_child


@pytest.mark.parametrize("name", ["cycle_pool_subclass", "cycle_index_subclass",
                                  "cycle_through_descriptor"])
@pytest.mark.parametrize("core", core_names())
def test_cycle_teardown(core, name):
    check_child(core, name)
