"""The xarray model is a C API for the designs: a Cython user built against
vswapfast/_xarray.pxd (as the swap-table designs reuse it for their zswap
xarrays) gets the kernel's node layout, counted allocation and lock-free
loads."""

import os
import subprocess
import sys
import textwrap

import pytest

import vswapfast

USER_PYX = textwrap.dedent("""
    # cython: language_level=3
    from libc.stdint cimport uint64_t, uintptr_t
    from vswapfast.vswap_account cimport vswap_account, vswap_account_bytes
    from vswapfast._xarray cimport (
        vxa, vxa_node, vxa_ctx, vxa_stats, vxa_init, vxa_ctx_init, vxa_ctx_destroy,
        vxa_store, vxa_load, vxa_destroy,
    )

    def sizeof_node():
        return sizeof(vxa_node), sizeof(vxa)

    def fill_region(uint64_t base):
        cdef vxa xa
        cdef vxa_ctx ctx
        cdef vswap_account live, cached
        cdef vxa_stats st
        cdef uintptr_t old = 0
        cdef uint64_t i, bad = 0
        cdef long long node_bytes, after_destroy
        live.bytes = live.objects = live.peak_bytes = 0
        cached.bytes = cached.objects = cached.peak_bytes = 0
        st.lockless_loads = st.load_retries = st.locked_loads = st.lock_acquisitions = 0
        with nogil:
            vxa_init(&xa)
            vxa_ctx_init(&ctx, &live, &cached)
            for i in range(max(base, 1), base + 16384):
                vxa_store(&xa, &ctx, i, i << 2, &old, &st)
            for i in range(max(base, 1), base + 16384):
                if vxa_load(&xa, i, &st) != i << 2:
                    bad += 1
            node_bytes = vswap_account_bytes(&live)
            vxa_destroy(&xa, &ctx)
            vxa_ctx_destroy(&ctx)
            after_destroy = vswap_account_bytes(&live) + vswap_account_bytes(&cached)
        return node_bytes, bad, st.lockless_loads, after_destroy
""")

SETUP_PY = textwrap.dedent("""
    from setuptools import setup, Extension
    from Cython.Build import cythonize
    import vswapfast, os
    pkg = os.path.dirname(vswapfast.__file__)
    setup(
        name="xarray_user",
        ext_modules=cythonize(
            [Extension("xarray_user", ["xarray_user.pyx"], include_dirs=[pkg])],
            include_path=[os.path.dirname(pkg)],
            quiet=True,
        ),
    )
""")


@pytest.fixture(scope="module")
def user_module(tmp_path_factory):
    pytest.importorskip("Cython")
    build = tmp_path_factory.mktemp("xarray_user")
    (build / "xarray_user.pyx").write_text(USER_PYX)
    (build / "setup.py").write_text(SETUP_PY)
    env = dict(os.environ)
    parent = os.path.dirname(os.path.dirname(os.path.abspath(vswapfast.__file__)))
    env["PYTHONPATH"] = parent + os.pathsep + env.get("PYTHONPATH", "")
    result = subprocess.run(
        [sys.executable, "setup.py", "build_ext", "--inplace"],
        cwd=build, capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    sys.path.insert(0, str(build))
    try:
        import xarray_user
        yield xarray_user
    finally:
        sys.path.remove(str(build))


def test_xarray_files_are_installed():
    pkg = os.path.dirname(vswapfast.__file__)
    for name in ("_xarray.pxd", "xarray.h", "vswap_account.pxd", "vswap_account.h"):
        assert os.path.exists(os.path.join(pkg, name)), name


def test_user_sees_the_kernel_layout(user_module):
    assert user_module.sizeof_node() == (576, 16)


@pytest.mark.parametrize("region, nodes", [(0, 261), (1, 261), (16, 262)])
def test_user_fills_a_region(user_module, region, nodes):
    node_bytes, bad, lockless, after = user_module.fill_region(region * 16384)
    assert node_bytes == nodes * 576
    assert bad == 0
    assert lockless == 16384 - (region == 0)
    assert after == 0
