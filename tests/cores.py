"""Which cores the suite runs against, and how to load each one.

Kept out of conftest.py so that test modules can import these names: the
benchmarks have a conftest.py of their own, and a plain ``import conftest``
would find whichever was imported first.
"""

import importlib
import os
import types

CORE_MODULES = {
    "compiled": "vswapfast._vswap",
    "pure": "vswapfast.pure",
}


def core_names():
    if os.environ.get("VSWAPFAST_PURE") == "1":
        return ["pure"]
    return ["compiled", "pure"]


ZSWAP_CORE_MODULES = {
    # name: (VSwap's module, Zswap's module, SwapFile's module)
    "compiled": ("vswapfast._vswap", "vswapfast._zswap", "vswapfast._swapfile"),
    "pure": ("vswapfast.pure", "vswapfast.pure", "vswapfast.pure"),
}


def load_zswap_core(name):
    vswap_mod, zswap_mod, swapfile_mod = (
        importlib.import_module(m) for m in ZSWAP_CORE_MODULES[name])
    return types.SimpleNamespace(
        name=name,
        VSwap=vswap_mod.VSwap,
        Zswap=zswap_mod.Zswap,
        SwapFile=swapfile_mod.SwapFile,
        PAGE_SIZE=zswap_mod.PAGE_SIZE,
    )


def package_parent():
    """The directory the vswapfast under test is imported from: the
    checkout when it is built in place, site-packages when it is
    installed."""
    import vswapfast
    return os.path.dirname(os.path.dirname(os.path.abspath(vswapfast.__file__)))


def child_env(*paths):
    """(env, cwd) for a child process that must import the vswapfast under
    test, and ``paths`` besides: the package's directory first on
    PYTHONPATH, and the working directory there too, since ``python -c``
    and ``python -m`` put the working directory first on sys.path (a
    checkout without its compiled modules would shadow the installed
    package)."""
    parent = package_parent()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([parent, *paths, env.get("PYTHONPATH", "")])
    return env, parent


#: A pool limit no test reaches unless it means to.
NO_LIMIT = 1 << 40
