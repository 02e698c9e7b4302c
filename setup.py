"""Build the native core of vswapfast.

Sanitizer builds for the stress tests: set VSWAPFAST_SANITIZE=address or
VSWAPFAST_SANITIZE=thread when building (see README.md).
"""
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


def extensions():
    cflags, ldflags = compile_flags()
    return [
        Extension(
            "vswapfast._vswap",
            ["vswapfast/_vswap.pyx"],
            include_dirs=["vswapfast"],
            extra_compile_args=cflags,
            extra_link_args=ldflags,
        ),
    ]


setup(
    ext_modules=cythonize(
        extensions(),
        compiler_directives={"language_level": "3"},
    ),
)
