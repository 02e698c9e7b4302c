"""The swap metadata designs, side by side.

Each design is a complete model of the metadata a swapped-out page costs in
one stage of the kernel's history (or of the virtual swap series), with one
Python API (see ``docs/designs.md``), in its own module of the compiled core
(``vswapfast._design_<name>``) and of the pure-Python twin
(``vswapfast.pure.design_<name>``), ``<name>`` being the design's name with
``-`` spelt ``_``.

``DESIGNS`` lists them in the order of history.
"""

import importlib
import os

__all__ = ["DESIGNS", "design_class", "available_designs"]

#: Design name -> the class its modules define.
_CLASSES = {
    "rbtree": "RbtreeDesign",
    "xarray": "XarrayDesign",
    "swap-table-p1": "SwapTableP1Design",
    "swap-table": "SwapTableDesign",
    "vswap": "VswapDesign",
    "vswap-table": "VswapTableDesign",
}

#: Every design, oldest first.
DESIGNS = tuple(_CLASSES)


def _default_core():
    return "pure" if os.environ.get("VSWAPFAST_PURE", "") not in ("", "0") else "compiled"


def _module_name(name, core):
    stem = name.replace("-", "_")
    if core == "compiled":
        return "vswapfast._design_" + stem
    return "vswapfast.pure.design_" + stem


def design_class(name, core=None):
    """The class of design ``name`` in ``core`` ("compiled" or "pure"; by
    default the core ``vswapfast`` imported).

    Raises ``ValueError`` for an unknown design or core, ``TypeError`` when
    either is not a str.
    """
    if not isinstance(name, str):
        raise TypeError("design must be a str, not %s" % type(name).__name__)
    if name not in _CLASSES:
        raise ValueError("design must be one of %s, not %r" % (", ".join(DESIGNS), name))
    if core is None:
        core = _default_core()
    if not isinstance(core, str):
        raise TypeError("core must be a str, not %s" % type(core).__name__)
    if core not in ("compiled", "pure"):
        raise ValueError("core must be 'compiled' or 'pure', not %r" % (core,))
    module = importlib.import_module(_module_name(name, core))
    return getattr(module, _CLASSES[name])


def available_designs(core=None):
    """The designs whose module ``core`` has, oldest first."""
    found = []
    for name in DESIGNS:
        try:
            design_class(name, core)
        except ImportError:
            continue
        found.append(name)
    return tuple(found)
