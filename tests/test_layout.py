"""The descriptor layout: ``struct swp_desc`` is 24 bytes in both cores."""


def test_swp_desc_size(core):
    assert core.SWP_DESC_SIZE == 24


def test_cluster_descriptor_array_is_12_kib(core):
    # 512 descriptors of 24 bytes: the kernel's separate 12 KiB allocation
    assert core.VSWAP_CLUSTER_SIZE * core.SWP_DESC_SIZE == 12 * 1024


def test_both_cores_agree_on_constants(core):
    import vswapfast.pure as pure
    for name in ("SWP_DESC_SIZE", "VSWAP_CLUSTER_SHIFT", "VSWAP_CLUSTER_SIZE",
                 "VSWAP_MAX_CLUSTERS"):
        assert getattr(core, name) == getattr(pure, name), name
        assert type(getattr(core, name)) is int, name
