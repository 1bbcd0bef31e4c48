"""Tests for traincost.catalog: GPU table, name resolution, prices."""

from __future__ import annotations

import dataclasses
import re

import pytest

from traincost.catalog import (
    DTYPES,
    GPUSpec,
    Price,
    gpus_frame,
    load_gpus,
    load_prices,
    prices_for,
    prices_frame,
    resolve_gpu,
)
from traincost.errors import TraincostUsageError

GPUS = load_gpus()
KEYS = {g.key for g in GPUS}


def test_catalog_size_and_unique_keys():
    assert len(GPUS) >= 20
    assert len(KEYS) == len(GPUS)


@pytest.mark.parametrize("gpu", GPUS, ids=lambda g: g.key)
def test_every_row_has_required_numbers_and_source(gpu: GPUSpec):
    assert gpu.fp32_tflops > 0
    assert gpu.memory_gb > 0
    assert gpu.mem_bandwidth_gb_s > 0
    assert gpu.source.strip()
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", gpu.key)
    for value in (gpu.tf32_tflops, gpu.fp16_tflops, gpu.bf16_tflops, gpu.nvlink_gb_s, gpu.tdp_w):
        assert value is None or value > 0
    # tensor rates are at least the plain fp32 rate where present
    for value in (gpu.tf32_tflops, gpu.bf16_tflops):
        assert value is None or value >= gpu.fp32_tflops * 0.99


def test_spec_is_frozen_and_hashable():
    gpu = GPUS[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        gpu.fp32_tflops = 1.0  # type: ignore[misc]
    assert isinstance(gpu.aliases, tuple)
    assert len({*GPUS}) == len(GPUS)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("H100 SXM", "h100-sxm5-80gb"),
        ("h100-sxm5", "h100-sxm5-80gb"),
        ("H100", "h100-sxm5-80gb"),
        ("A100 SXM 80GB", "a100-sxm4-80gb"),
        ("A100 PCIe 40GB", "a100-pcie-40gb"),
        ("a100", "a100-sxm4-40gb"),
        ("V100 SXM2 32GB", "v100-sxm2-32gb"),
        ("V100", "v100-sxm2-16gb"),
        ("RTX 3090", "rtx-3090"),
        ("3090", "rtx-3090"),
        ("T4", "t4"),
        ("tesla t4", "t4"),
        ("L4", "l4"),
        ("B200", "b200-sxm-180gb"),
        ("H200", "h200-sxm-141gb"),
        ("MI300X", "mi300x"),
        # forgiving variants: vendor prefixes, nvidia-smi names, separators, bare memory
        ("NVIDIA H100 80GB HBM3", "h100-sxm5-80gb"),
        ("NVIDIA H100 PCIe", "h100-pcie-80gb"),
        ("NVIDIA A100-SXM4-40GB", "a100-sxm4-40gb"),
        ("nvidia a100 80gb pcie", "a100-pcie-80gb"),
        ("A100_SXM4_80GB", "a100-sxm4-80gb"),
        ("a100 80", "a100-sxm4-80gb"),
        ("A100 80 GB", "a100-sxm4-80gb"),
        ("Tesla V100-SXM2-16GB", "v100-sxm2-16gb"),
        ("v100 pcie", "v100-pcie-16gb"),
        ("NVIDIA GeForce RTX 4090", "rtx-4090"),
        ("rtx3090", "rtx-3090"),
        ("NVIDIA RTX A6000", "rtx-a6000"),
        ("A10G", "a10g"),
        ("a10", "a10"),
        ("H100 HGX", "h100-sxm5-80gb"),
        ("GH200", "gh200-96gb"),
        ("AMD Instinct MI300X", "mi300x"),
        ("Tesla K80", "k80"),
        ("a100-sxm4-80gb", "a100-sxm4-80gb"),
    ],
)
def test_resolve_gpu(name: str, key: str):
    assert resolve_gpu(name).key == key


@pytest.mark.parametrize("gpu", GPUS, ids=lambda g: g.key)
def test_key_name_and_aliases_resolve_to_their_own_row(gpu: GPUSpec):
    for text in (gpu.key, gpu.name, *gpu.aliases):
        assert resolve_gpu(text).key == gpu.key, text


def test_unknown_gpu_lists_close_names():
    with pytest.raises(TraincostUsageError) as info:
        resolve_gpu("H1000")
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("unknown GPU 'H1000'; did you mean: ")
    suggestions = msg.split("did you mean: ")[1].split(", ")
    assert 1 <= len(suggestions) <= 5
    assert "H100 SXM5 80GB" in suggestions and "H100 PCIe 80GB" in suggestions


@pytest.mark.parametrize("name", ["", "   ", "foo", "A100 24GB", "H100 NVL", "RTX 6000 Ada"])
def test_unknown_names_raise_usage_error(name: str):
    with pytest.raises(TraincostUsageError, match="unknown GPU"):
        resolve_gpu(name)


def test_known_model_wrong_variant_suggests_its_variants():
    with pytest.raises(TraincostUsageError, match="A100 SXM4 40GB.*A100 PCIe 80GB"):
        resolve_gpu("A100 24GB")


def test_peak_tflops_per_dtype():
    h100 = resolve_gpu("H100")
    assert h100.peak_tflops("fp32") == h100.fp32_tflops == 67
    assert h100.peak_tflops("tf32") == 494.7
    assert h100.peak_tflops("fp16") == 989.4
    assert h100.peak_tflops("bf16") == 989.4
    assert h100.peak_tflops("torch.bfloat16") == 989.4
    assert h100.peak_tflops("float32") == 67
    v100 = resolve_gpu("V100")
    assert v100.peak_tflops("tf32") is None  # Volta: no TF32
    assert v100.peak_tflops("bf16") is None  # Volta: no BF16
    for dtype in DTYPES:
        value = resolve_gpu("A100").peak_tflops(dtype)
        assert value is not None and value > 0
    with pytest.raises(TraincostUsageError, match="unknown dtype"):
        h100.peak_tflops("int8")


@pytest.mark.parametrize(
    ("name", "field", "expected"),
    [
        ("H100 SXM", "bf16_tflops", 989.4),  # whitepaper dense; datasheet 1979 is with sparsity
        ("H100 SXM", "mem_bandwidth_gb_s", 3350),
        ("H100 PCIe", "fp32_tflops", 51),
        ("A100", "bf16_tflops", 312),
        ("A100", "tf32_tflops", 156),
        ("A100", "fp32_tflops", 19.5),
        ("A100 SXM4 80GB", "mem_bandwidth_gb_s", 2039),
        ("A100 PCIe 80GB", "mem_bandwidth_gb_s", 1935),
        ("V100", "fp32_tflops", 15.7),
        ("V100", "fp16_tflops", 125),
        ("V100 PCIe", "fp32_tflops", 14.0),
        ("T4", "fp16_tflops", 65),
        ("T4", "mem_bandwidth_gb_s", 320),
        ("L4", "bf16_tflops", 121),  # 242 with sparsity / 2
        ("L40S", "tdp_w", 350),
        ("B200", "tf32_tflops", 1125),
        ("B200", "memory_gb", 180),
        ("H200", "memory_gb", 141),
        ("H200", "mem_bandwidth_gb_s", 4800),
        ("MI300X", "bf16_tflops", 1307.4),
        ("K80", "fp32_tflops", 4.365),  # 8.73 per 2-die board / 2
        ("P100", "fp16_tflops", 18.7),  # non-tensor FP16 rate
    ],
)
def test_datasheet_spot_checks(name: str, field: str, expected: float):
    assert getattr(resolve_gpu(name), field) == pytest.approx(expected)


def test_unit_properties():
    a100 = resolve_gpu("A100 SXM4 80GB")
    assert a100.memory_bytes == 80 * 2**30  # 85_899_345_920
    assert a100.mem_bandwidth_bytes_per_s == pytest.approx(2039e9)


def test_gpus_frame_is_a_fresh_copy():
    df = gpus_frame()
    assert len(df) == len(GPUS)
    assert {"key", "name", "fp32_tflops", "memory_gb", "mem_bandwidth_gb_s", "source"} <= set(df.columns)
    df.loc[0, "fp32_tflops"] = -1.0
    assert gpus_frame().loc[0, "fp32_tflops"] > 0


PRICES = load_prices()


def test_prices_map_to_catalog_are_positive_and_dated():
    assert len(PRICES) >= 100
    for p in PRICES:
        assert isinstance(p, Price)
        assert p.gpu_key in KEYS
        assert p.usd_per_gpu_hour > 0
        assert p.gpu_count >= 1
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", p.source_date)
        assert p.source.strip() and p.provider.strip()


def test_price_file_columns_and_only_on_demand():
    df = prices_frame()
    assert list(df.columns) == [
        "provider", "instance_type", "gpu_key", "gpu_count", "price_usd_per_gpu_hour",
        "price_usd_per_instance_hour", "price_type", "region", "source", "source_date", "notes",
    ]
    assert set(df["price_type"]) == {"on-demand"}
    assert len(df) == len(PRICES)


def test_prices_for_keeps_cheapest_per_provider():
    a100 = resolve_gpu("A100")
    got = prices_for(a100)
    assert got == prices_for("a100 sxm4 40gb")
    providers = [p.provider for p in got]
    assert len(providers) == len(set(providers))
    assert [p.usd_per_gpu_hour for p in got] == sorted(p.usd_per_gpu_hour for p in got)
    for p in got:
        same = [q.usd_per_gpu_hour for q in PRICES if q.provider == p.provider and q.gpu_key == a100.key]
        assert p.usd_per_gpu_hour == min(same)
    aws = next(p for p in got if p.provider == "AWS")
    assert (aws.instance_type, aws.usd_per_gpu_hour, aws.source_date) == ("p4d.24xlarge", 4.10, "2023-08-16")


def test_prices_for_gpu_without_prices_is_empty():
    assert prices_for("MI300X") == ()


def test_prices_for_unknown_gpu_raises():
    with pytest.raises(TraincostUsageError):
        prices_for("H1000")


# ---------------------------------------------------------------- links (data parallel)


def test_every_link_has_a_rate_a_factor_and_sources():
    from traincost.catalog import load_links

    links = load_links()
    assert {"nvlink2", "nvlink3", "nvlink4", "nvlink5", "pcie3", "pcie4", "pcie5", "ib-edr", "ib-hdr", "ib-ndr",
            "eth-100g", "eth-200g", "eth-400g"} <= {link.key for link in links}
    for link in links:
        assert link.gb_s > 0 and 0 < link.achieved_factor <= 1 and link.hop_latency_us > 0
        assert link.source and link.achieved_source and re.fullmatch(r"\d{4}-\d{2}-\d{2}", link.source_date)
        assert link.busbw_bytes_per_s == link.gb_s * 1e9 * link.achieved_factor


def test_link_rates_by_hand():
    from traincost.catalog import resolve_link

    assert resolve_link("nvlink4").gb_s == 450  # 18 links x 25 GB/s per direction
    assert resolve_link("PCIe 4").gb_s == 31.5  # 16 GT/s x 16 lanes x 128/130 / 8
    assert resolve_link("HDR").gb_s == 25  # 200 Gb/s / 8
    assert resolve_link("ib-hdr", kind="network").kind == "network"
    with pytest.raises(TraincostUsageError, match="unknown network link"):
        resolve_link("nvlink4", kind="network")
    with pytest.raises(TraincostUsageError, match="ib-hdr"):
        resolve_link("token ring")


@pytest.mark.parametrize("gpu, link", [("H100 SXM", "nvlink4"), ("H200", "nvlink4"), ("A100 SXM 80GB", "nvlink3"),
                                       ("V100", "nvlink2"), ("B200", "nvlink5"), ("A100 PCIe", "pcie4"),
                                       ("H100 PCIe", "pcie5"), ("T4", "pcie3"), ("L4", "pcie4"),
                                       ("MI300X", "infinity-fabric"), ("K80", "pcie3")])
def test_intra_node_link_of_catalog_gpus(gpu, link):
    from traincost.catalog import intra_node_link

    assert intra_node_link(resolve_gpu(gpu)).key == link


def test_every_catalog_gpu_has_an_intra_node_link():
    from traincost.catalog import intra_node_link

    for g in GPUS:
        assert intra_node_link(g).kind in ("nvlink", "pcie")
