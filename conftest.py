"""Which vswapfast the tests run against: the source tree's or the installed one.

The package sits at the top of the repository, so ``python -m pytest`` (which
puts the current directory first on ``sys.path``), and pytest itself (which
puts the directory of this file there), would import the source tree's
``vswapfast``.  That is right after an in-place build (``python setup.py
build_ext --inplace``), and wrong after ``pip install .``: the tree then has
no compiled modules.  So, before any test imports the package: a tree whose
compiled core is built (or ``VSWAPFAST_PURE=1``) is used as it is; otherwise
the tree is taken off ``sys.path`` and the installed copy is used; with
neither, the run stops at once with one line saying what to run.
"""

import importlib.machinery
import os
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
SOURCE_PACKAGE = os.path.join(ROOT, "vswapfast")


def _compiled_in(directory):
    """Whether ``directory`` holds the compiled core (``_vswap``)."""
    return any(os.path.exists(os.path.join(directory, "_vswap" + suffix))
               for suffix in importlib.machinery.EXTENSION_SUFFIXES)


def _is_root(entry):
    return os.path.realpath(entry or os.curdir) == os.path.realpath(ROOT)


def _choose_package():
    if not os.path.isdir(SOURCE_PACKAGE) or _compiled_in(SOURCE_PACKAGE):
        return
    if os.environ.get("VSWAPFAST_PURE") == "1":
        return
    elsewhere = [entry for entry in sys.path if not _is_root(entry)]
    spec = importlib.machinery.PathFinder.find_spec("vswapfast", elsewhere)
    installed = spec is not None and spec.submodule_search_locations and any(
        _compiled_in(d) for d in spec.submodule_search_locations)
    if not installed:
        # SystemExit, which pytest lets through: the one line is all the
        # output (pytest.exit here would come wrapped in an import error).
        raise SystemExit("vswapfast is neither built in this tree nor installed: run "
                         "\"pip install '.[test]'\" (or build it in place: python setup.py "
                         "build_ext --inplace)")
    sys.path[:] = elsewhere
    for name in [m for m in sys.modules if m == "vswapfast" or m.startswith("vswapfast.")]:
        del sys.modules[name]


_choose_package()
