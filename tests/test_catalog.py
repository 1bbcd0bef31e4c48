"""Tests for traincost.hardware.catalog: GPU table, name resolution, prices."""

from __future__ import annotations

import dataclasses
import re

import pytest

from traincost.errors import TraincostUsageError
from traincost.hardware.catalog import (
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

GPUS = load_gpus()
KEYS = {g.key for g in GPUS}


def test_catalog_size_and_unique_keys():
    assert len(GPUS) >= 50
    assert len(KEYS) == len(GPUS)


@pytest.mark.parametrize("gpu", GPUS, ids=lambda g: g.key)
def test_every_row_has_required_numbers_and_source(gpu: GPUSpec):
    assert gpu.fp32_tflops > 0
    assert gpu.memory_gb > 0
    assert gpu.mem_bandwidth_gb_s > 0
    assert gpu.source.strip()
    # what the cross-GPU kernel model needs, for every row
    assert gpu.sm_count is not None and gpu.sm_count > 0
    assert gpu.l2_cache_mb is not None and 0.5 <= gpu.l2_cache_mb <= 256
    assert gpu.boost_clock_mhz is not None and 500 <= gpu.boost_clock_mhz <= 3500
    assert gpu.l2_bytes == round(gpu.l2_cache_mb * 2**20)
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", gpu.key)
    for value in (gpu.tf32_tflops, gpu.fp16_tflops, gpu.bf16_tflops, gpu.nvlink_gb_s, gpu.tdp_w):
        assert value is None or value > 0
    # tensor rates are at least the plain fp32 rate where present; fp16 >= tf32 (tensor cores)
    for value in (gpu.tf32_tflops, gpu.fp16_tflops, gpu.bf16_tflops):
        assert value is None or value >= gpu.fp32_tflops * 0.99
    if gpu.tf32_tflops is not None:
        assert gpu.fp16_tflops is not None and gpu.fp16_tflops >= gpu.tf32_tflops
    if gpu.bf16_tflops is not None and gpu.fp16_tflops is not None:
        assert gpu.bf16_tflops == gpu.fp16_tflops  # one tensor rate for both on every catalog GPU


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
        # every GPU of the catalog extension, as people type it
        ("P100 PCIe", "p100-pcie-16gb"),
        ("P100 16GB", "p100-pcie-16gb"),
        ("P100 SXM2", "p100-sxm2-16gb"),
        ("Tesla P100-SXM2-16GB", "p100-sxm2-16gb"),
        ("V100 PCIe 32GB", "v100-pcie-32gb"),
        ("V100-SXM3-32GB", "v100-sxm2-32gb"),
        ("A16", "a16"),
        ("A30", "a30"),
        ("A40", "a40"),
        ("NVIDIA A40", "a40"),
        ("L40", "l40"),
        ("L40S", "l40s"),
        ("H100 NVL", "h100-nvl-94gb"),
        ("NVIDIA H100 NVL", "h100-nvl-94gb"),
        ("H20", "h20"),
        ("GH200", "gh200-96gb"),
        ("GB200", "gb200"),
        ("GB200 NVL72", "gb200"),
        ("Quadro RTX 5000", "quadro-rtx-5000"),
        ("Quadro RTX 6000", "quadro-rtx-6000"),
        ("Quadro RTX 8000", "quadro-rtx-8000"),
        ("RTX 8000", "quadro-rtx-8000"),
        ("RTX 5000", "quadro-rtx-5000"),  # no RTX 5000 Ada in the catalog
        ("RTX 6000 24GB", "quadro-rtx-6000"),  # the memory decides
        ("RTX A4000", "rtx-a4000"),
        ("A4500", "rtx-a4500"),
        ("RTX A5000", "rtx-a5000"),
        ("A5000", "rtx-a5000"),
        ("NVIDIA RTX A5500", "rtx-a5500"),
        ("A6000", "rtx-a6000"),
        ("Quadro RTX A6000 48GB", "rtx-a6000"),
        ("RTX 6000 Ada", "rtx-6000-ada"),
        ("NVIDIA RTX 6000 Ada Generation", "rtx-6000-ada"),
        ("GTX 1080 Ti", "gtx-1080-ti"),
        ("1080 Ti", "gtx-1080-ti"),
        ("NVIDIA GeForce GTX 1080 Ti", "gtx-1080-ti"),
        ("RTX 2080", "rtx-2080"),
        ("RTX 2080 Ti", "rtx-2080-ti"),
        ("2080 Ti", "rtx-2080-ti"),
        ("Titan RTX", "titan-rtx"),
        ("NVIDIA TITAN RTX", "titan-rtx"),
        ("Titan V", "titan-v"),
        ("TITAN V", "titan-v"),
        ("RTX 3060", "rtx-3060"),
        ("RTX 3070", "rtx-3070"),
        ("RTX 3080", "rtx-3080"),
        ("RTX 3080 Ti", "rtx-3080-ti"),
        ("RTX 4080", "rtx-4080"),
        ("RTX 4090", "rtx-4090"),
        ("RTX 5090", "rtx-5090"),
        ("NVIDIA GeForce RTX 5090", "rtx-5090"),
        ("Tesla P4", "p4"),
        ("MI250X", "mi250x"),
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


@pytest.mark.parametrize(
    "name",
    ["", "   ", "foo", "A100 24GB", "H100 foo", "RTX 5000 Ada", "1080", "3080 12GB", "Titan", "H100 NVL 80GB"],
)
def test_unknown_names_raise_usage_error(name: str):
    # "1080" is the GTX 1080, not the 1080 Ti; "3080 12GB" is neither catalogued 3080; "Titan" is any Titan
    with pytest.raises(TraincostUsageError, match="unknown GPU"):
        resolve_gpu(name)


@pytest.mark.parametrize("name", ["RTX 6000", "rtx6000", "NVIDIA RTX 6000", "6000"])
def test_ambiguous_name_lists_the_candidates(name: str):
    with pytest.raises(TraincostUsageError) as info:
        resolve_gpu(name)
    msg = str(info.value)
    assert msg.startswith(f"ambiguous GPU {name!r}") and "\n" not in msg
    for candidate in ("Quadro RTX 6000", "RTX 6000 Ada", "RTX A6000"):
        assert candidate in msg


def test_no_alias_is_shared_by_two_gpus():
    from traincost.hardware.catalog import _tokens

    owner: dict[frozenset[str], str] = {}
    for g in GPUS:
        for text in (g.key, g.name, *g.aliases):
            toks = frozenset(_tokens(text))
            assert toks, text
            assert owner.setdefault(toks, g.key) == g.key, f"{text!r} names both {owner[toks]} and {g.key}"


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
        # catalog extension: NVIDIA / AMD datasheets and whitepapers
        ("P100 SXM2", "fp32_tflops", 10.6),
        ("A40", "fp32_tflops", 37.4),
        ("A40", "bf16_tflops", 149.7),
        ("A40", "mem_bandwidth_gb_s", 696),
        ("A30", "tf32_tflops", 82),
        ("A30", "mem_bandwidth_gb_s", 933),
        ("L40", "fp16_tflops", 181),  # 362.1 with sparsity / 2
        ("H100 NVL", "bf16_tflops", 835.5),  # 1671 with sparsity / 2
        ("H100 NVL", "memory_gb", 94),
        ("H20", "bf16_tflops", 148),
        ("GB200", "bf16_tflops", 2500),
        ("A10G", "bf16_tflops", 70),  # GA102 with FP32 accumulate at half rate, 80 SMs x 512 x 1.71 GHz
        ("Quadro RTX 8000", "fp16_tflops", 130.5),
        ("RTX A5000", "fp32_tflops", 27.8),
        ("RTX 6000 Ada", "fp16_tflops", 364.2),  # 1457 FP8 with sparsity / 4
        ("RTX 3090", "mem_bandwidth_gb_s", 936.2),
        ("RTX 3090", "fp16_tflops", 71),  # FP32 accumulate, dense
        ("RTX 4090", "bf16_tflops", 165.2),
        ("RTX 2080 Ti", "fp16_tflops", 53.8),
        ("GTX 1080 Ti", "fp32_tflops", 11.34),
        ("RTX 3080", "mem_bandwidth_gb_s", 760),
        ("RTX 5090", "mem_bandwidth_gb_s", 1792),
        # L2 cache (MB) and boost clock (MHz)
        ("V100", "l2_cache_mb", 6),
        ("A100", "l2_cache_mb", 40),
        ("H100 SXM", "l2_cache_mb", 50),
        ("RTX 3090", "l2_cache_mb", 6),
        ("RTX 4090", "l2_cache_mb", 72),
        ("T4", "l2_cache_mb", 4),
        ("P100", "l2_cache_mb", 4),
        ("V100", "boost_clock_mhz", 1530),
        ("A100", "boost_clock_mhz", 1410),
        ("T4", "boost_clock_mhz", 1590),
    ],
)
def test_datasheet_spot_checks(name: str, field: str, expected: float):
    assert getattr(resolve_gpu(name), field) == pytest.approx(expected)


def test_unit_properties():
    a100 = resolve_gpu("A100 SXM4 80GB")
    assert a100.memory_bytes == 80 * 2**30  # 85_899_345_920
    assert a100.mem_bandwidth_bytes_per_s == pytest.approx(2039e9)
    assert a100.l2_bytes == 40 * 2**20
    assert resolve_gpu("K80").l2_bytes == 1536 * 1024


@pytest.mark.parametrize(
    "name",
    ["K80", "P100", "P100 SXM2", "GTX 1080 Ti", "Tesla P4", "V100", "V100 PCIe", "Titan V", "T4", "RTX 2080 Ti",
     "RTX 2080", "Titan RTX", "Quadro RTX 5000", "Quadro RTX 8000"],
)
def test_no_tf32_or_bf16_before_ampere(name: str):
    gpu = resolve_gpu(name)
    assert gpu.tf32_tflops is None and gpu.bf16_tflops is None
    if gpu.architecture.startswith(("Kepler", "Pascal")):  # no tensor cores: fp16 is the non-tensor rate
        assert gpu.fp16_tflops is None or gpu.fp16_tflops <= 2.02 * gpu.fp32_tflops


def test_fp32_matches_sm_count_times_boost_clock():
    # FP32 lanes per SM: 64 on GP100, GV100, Turing and GA100; 128 on GP102/GP104, GA10x, Ada, GH100 and GB202;
    # 192 on Kepler. The datasheet FP32 is SMs x lanes x 2 x boost clock (within 4 %). Not checked: AMD, the
    # H20 (compute capped in firmware) and B200/GB200 (NVIDIA publishes no clock).
    lanes = {"GA100": 64, "GV100": 64, "TU1": 64, "GP100": 64, "GP10": 128, "GA10": 128, "AD10": 128,
             "GH100": 128, "GB202": 128, "GK210": 192}
    checked = 0
    for g in GPUS:
        per_sm = next((n for chip, n in lanes.items() if chip in g.architecture), None)
        if g.vendor != "NVIDIA" or per_sm is None or g.key in ("h20",):  # H20: compute capped by firmware
            continue
        want = g.sm_count * per_sm * 2 * g.boost_clock_mhz * 1e6 / 1e12
        assert g.fp32_tflops == pytest.approx(want, rel=0.04), g.key
        checked += 1
    assert checked >= 40


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


def test_prices_for_keeps_the_newest_price_per_provider():
    a100 = resolve_gpu("A100")
    got = prices_for(a100)
    assert got == prices_for("a100 sxm4 40gb")
    providers = [p.provider for p in got]
    assert len(providers) == len(set(providers))
    assert [p.usd_per_gpu_hour for p in got] == sorted(p.usd_per_gpu_hour for p in got)
    for p in got:
        same = [q for q in PRICES if q.provider == p.provider and q.gpu_key == a100.key]
        newest = max(q.source_date for q in same)
        assert p.source_date == newest
        assert p.usd_per_gpu_hour == min(q.usd_per_gpu_hour for q in same if q.source_date == newest)
    aws = next(p for p in got if p.provider == "AWS")  # 2026 list price, not the 2023 row (4.10)
    assert (aws.instance_type, aws.usd_per_gpu_hour, aws.source_date) == ("p4d.24xlarge", 2.7447, "2026-10-10")


def test_prices_for_gpu_without_prices_is_empty():
    assert prices_for("GTX 1080 Ti") == ()


def test_prices_for_unknown_gpu_raises():
    with pytest.raises(TraincostUsageError):
        prices_for("H1000")


# ---------------------------------------------------------------- links (data parallel)


def test_every_link_has_a_rate_a_factor_and_sources():
    from traincost.hardware.catalog import load_links

    links = load_links()
    assert {"nvlink2", "nvlink3", "nvlink4", "nvlink5", "pcie3", "pcie4", "pcie5", "ib-edr", "ib-hdr", "ib-ndr",
            "eth-100g", "eth-200g", "eth-400g"} <= {link.key for link in links}
    for link in links:
        assert link.gb_s > 0 and 0 < link.achieved_factor <= 1 and link.hop_latency_us > 0
        assert link.source and link.achieved_source and re.fullmatch(r"\d{4}-\d{2}-\d{2}", link.source_date)
        assert link.busbw_bytes_per_s == link.gb_s * 1e9 * link.achieved_factor


def test_link_rates_by_hand():
    from traincost.hardware.catalog import resolve_link

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
                                       ("MI300X", "infinity-fabric"), ("K80", "pcie3"), ("P100 SXM2", "nvlink1"),
                                       ("H20", "nvlink4"), ("GB200", "nvlink5"), ("H100 NVL", "pcie5"),
                                       ("A40", "pcie4"), ("Quadro RTX 8000", "pcie3"), ("RTX 5090", "pcie5"),
                                       ("GTX 1080 Ti", "pcie3")])
def test_intra_node_link_of_catalog_gpus(gpu, link):
    from traincost.hardware.catalog import intra_node_link

    assert intra_node_link(resolve_gpu(gpu)).key == link


def test_every_catalog_gpu_has_an_intra_node_link():
    from traincost.hardware.catalog import intra_node_link

    for g in GPUS:
        assert intra_node_link(g).kind in ("nvlink", "pcie")
