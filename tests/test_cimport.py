"""The .pxd files are a C API: compile a small Cython user against them.

The user walks a range of entries with vswap_iter (one cluster lock per
cluster, never two at once) without the GIL, and reads descriptors laid out
as struct swp_desc.  It is built the way a downstream project would build
it: cythonize with the installed package on the include path.
"""

import os
import subprocess
import sys
import textwrap

import pytest

import vswapfast

USER_PYX = textwrap.dedent("""
    # cython: language_level=3
    from libc.stdint cimport uint64_t
    from vswapfast._vswap cimport (
        VSwap, swp_desc, vswap_cluster, vswap_iter, vswap_cluster_unlock,
        vswap_zswap_is_object, vswap_desc_slot, vswap_desc_zswap, vswap_desc_type,
        VSWAP_SWAPFILE, VSWAP_ZSWAP,
    )

    def sizeof_desc():
        return sizeof(swp_desc)

    def count_slots_and_zswap(VSwap space, uint64_t first, uint64_t nr):
        cdef vswap_cluster *cluster = NULL
        cdef swp_desc *desc
        cdef uint64_t val, slots = 0, zswap = 0, missing = 0, types = 0
        with nogil:
            for val in range(first, first + nr):
                desc = vswap_iter(space.vs, &cluster, val)
                if desc == NULL:
                    missing += 1
                    continue
                # One backing per descriptor, read through the accessors.
                slots += vswap_desc_slot(desc)
                zswap += vswap_zswap_is_object(vswap_desc_zswap(desc))
                if vswap_desc_type(desc) == VSWAP_ZSWAP:
                    types += 1
                elif vswap_desc_type(desc) == VSWAP_SWAPFILE:
                    types += 1000
            if cluster != NULL:
                vswap_cluster_unlock(cluster)
        return slots, zswap, missing, types
""")

SETUP_PY = textwrap.dedent("""
    from setuptools import setup, Extension
    from Cython.Build import cythonize
    import vswapfast, os
    pkg = os.path.dirname(vswapfast.__file__)
    setup(
        name="vswap_user",
        ext_modules=cythonize(
            [Extension("vswap_user", ["vswap_user.pyx"], include_dirs=[pkg])],
            include_path=[os.path.dirname(pkg)],
            quiet=True,
        ),
    )
""")


@pytest.fixture(scope="module")
def user_module(tmp_path_factory):
    pytest.importorskip("Cython")
    build = tmp_path_factory.mktemp("cimport_user")
    (build / "vswap_user.pyx").write_text(USER_PYX)
    (build / "setup.py").write_text(SETUP_PY)
    # The build imports the vswapfast under test (installed, or built in a
    # checkout that is only on this process's path).
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
        import vswap_user
        yield vswap_user
    finally:
        sys.path.remove(str(build))


def test_pxd_files_are_installed():
    pkg = os.path.dirname(vswapfast.__file__)
    for name in ("_vswap.pxd", "_swapfile.pxd", "_lz4.pxd"):
        assert os.path.exists(os.path.join(pkg, name)), name


def test_user_sees_the_kernel_layout(user_module):
    assert user_module.sizeof_desc() == 24


def test_user_walks_entries_without_the_gil(user_module):
    from vswapfast._vswap import VSwap
    space = VSwap(cluster_shift=3)
    first = space.alloc(8)
    second = space.alloc(8)
    assert second == first + 8          # the walk crosses a cluster boundary
    for i, entry in enumerate(range(first, first + 16)):
        space.set_slot(entry, i + 1)
    space.zswap_entry_store(first + 2, "z")     # releases slot 3
    space.zswap_entry_store(first + 9, "z")     # releases slot 10
    space.free(first + 5)
    slots, zswap, missing, types = user_module.count_slots_and_zswap(space, first, 17)
    assert missing == 2                 # the freed entry, and one past the end
    assert slots == sum(range(1, 17)) - 6 - 3 - 10
    assert zswap == 2
    assert types == 2 + 1000 * 13
    # Every lock was released: the space is still fully usable.
    assert space.zswap_entry_erase(first + 2) == "z"
    assert space.stats()["lock_contended"] == 0
