"""Python code that runs inside a call closes the object being called.

An argument's ``__index__``, ``__bool__``, ``__float__`` or (Python 3.12+)
``__buffer__`` calls ``close()`` on the pool or swap file the call is on.
The call must either finish or raise the documented closed-object error,
and leave the space whole: the cores convert every argument before they
take the object's C state (see docs/semantics.md, "Re-entrancy and
teardown").  Each payload runs in a child process (tests/hostile.py), so a
crash is reported rather than fatal.
"""

import sys

import pytest

from cores import core_names
from hostile import POINTER_CALLS, check_child

NEEDS_BUFFER_PROTOCOL = {"store-buffer", "store_many-buffer"}


@pytest.mark.parametrize("which", POINTER_CALLS)
@pytest.mark.parametrize("core", core_names())
def test_argument_hook_closes_the_pool(core, which):
    if which in NEEDS_BUFFER_PROTOCOL and sys.version_info < (3, 12):
        pytest.skip("Python-level __buffer__ needs Python 3.12")
    check_child(core, "pointer_" + which.replace("-", "_"))


@pytest.mark.parametrize("core", core_names())
def test_buffer_export_closes_the_swap_file(core):
    check_child(core, "pointer_swapfile_buffers")


@pytest.mark.parametrize("core", core_names())
def test_constructor_setting_closes_the_bound_pool(core):
    check_child(core, "pointer_constructor_hooks")
