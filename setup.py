"""Build the native core of vswapfast.

Sanitizer builds for the stress tests: set VSWAPFAST_SANITIZE=address or
VSWAPFAST_SANITIZE=thread when building (see README.md).
"""
import ctypes.util
import glob
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

SANITIZERS = {"address", "thread"}


def compile_flags():
    cflags = ["-O3", "-fno-strict-aliasing"]
    ldflags = []
    sanitize = os.environ.get("VSWAPFAST_SANITIZE", "")
    if sanitize:
        if sanitize not in SANITIZERS:
            raise SystemExit("VSWAPFAST_SANITIZE must be one of %s, not %r"
                             % (", ".join(sorted(SANITIZERS)), sanitize))
        cflags = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=" + sanitize]
        ldflags = ["-fsanitize=" + sanitize]
    return cflags, ldflags


def find_lz4():
    """The file name of the system's LZ4 library, for the linker.

    Only the runtime library is needed: the few block-API functions used are
    declared in vswapfast/_lz4.pxd (ABI-stable since LZ4 1.7), so the -dev
    package with its headers and liblz4.so link is not required.
    """
    name = ctypes.util.find_library("lz4")
    if name is None:
        raise SystemExit(
            "vswapfast needs the LZ4 library (liblz4.so.1; on Debian and Ubuntu "
            "the package liblz4-1), and none was found")
    return name


def extensions():
    cflags, ldflags = compile_flags()
    def extension(name, libraries=(), link=()):
        return Extension(
            "vswapfast." + name,
            ["vswapfast/%s.pyx" % name],
            include_dirs=["vswapfast"],
            extra_compile_args=cflags,
            extra_link_args=ldflags + ["-l:" + lib for lib in libraries] + list(link),
        )

    # Every vswapfast/_*.pyx is a module; these need more than libc.
    needs = {
        "_zswap": dict(libraries=[find_lz4()]),
        # libzstd and liblzo2 are loaded at run time (dlopen), by the first
        # pool that uses them: neither is needed to build or import.
        "_compress": dict(libraries=[find_lz4()], link=["-ldl", "-pthread"]),
    }
    names = sorted(os.path.basename(path)[:-len(".pyx")]
                   for path in glob.glob(os.path.join("vswapfast", "_*.pyx")))
    return [extension(name, **needs.get(name, {})) for name in names]


setup(
    ext_modules=cythonize(
        extensions(),
        compiler_directives={"language_level": "3"},
    ),
)
