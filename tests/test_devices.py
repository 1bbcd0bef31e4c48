"""Tests for traincost.hardware (profile, datasheet, store): curves, profile JSON (save / load / rejection),
datasheet profiles, profile resolution, and the curve fit of traincost.calibrate.fitting on synthetic measurements."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from traincost.calibrate.fitting import fit_curve, fit_linear_nonneg
from traincost.errors import TraincostError, TraincostUsageError
from traincost.hardware.catalog import resolve_gpu
from traincost.hardware.datasheet import (
    DEFAULT_CONV,
    DEFAULT_MATMUL,
    DEFAULT_MEMORY_FRACTION,
    datasheet_profile,
    load_kernel_refs,
)
from traincost.hardware.profile import (
    SCHEMA_VERSION,
    Curve,
    DeviceProfile,
    ProfileError,
    load_profile,
    save_profile,
    vector_lanes,
)
from traincost.hardware.store import load_shipped_profiles, profile_for
from traincost.pricing.optable import price_op

ROOT = Path(__file__).resolve().parents[1]
H200_REFERENCE = ROOT / "data" / "reference" / "h200_microbench.json"


def _profile(**over) -> DeviceProfile:
    base = dict(
        schema_version=SCHEMA_VERSION, source="calibrated", name="test device", kind="cpu", catalog_key=None,
        memory_bytes=8 * 2**30,
        compute={"matmul": {"fp32": Curve(1e11, 5e-6)}, "conv": {"fp32": Curve(8e10, 2e-5)}},
        memory=Curve(3e10, 1e-6, cache_bytes=8e6, cache_peak=1.2e11), reduction=Curve(2.5e10, 1.5e-6),
        dispatch_s=1.2e-6, dispatch_autocast_s=2.5e-6, launch_s=0.0,
        optimizer={"sgd_fixed_s": 1e-5, "sgd_per_tensor_s": 1e-6, "sgd_s_per_byte": 2.5e-10},
        software={"torch": "x"}, created="2025-01-01", properties={"cpu_count": 2},
        raw={"matmul": [{"work": 1, "median_s": 1e-6}]}, spread={"points": 1},
    )
    base.update(over)
    return DeviceProfile(**base)


# ------------------------------------------------------------------ Curve


def test_curve_time_and_efficiency():
    c = Curve(peak=1e12, latency_s=10e-6)
    # 1e9 FLOP: 10 us + 1e9 / 1e12 s = 10 us + 1000 us
    assert c.time_s(1e9) == pytest.approx(1010e-6)
    # half of peak where work = latency * peak = 1e7
    assert c.achieved(1e7) == pytest.approx(0.5e12)
    assert c.efficiency(1e7, datasheet_peak=2e12) == pytest.approx(0.25)
    assert c.time_s(0) == c.latency_s
    assert c.scaled(2).peak == 2e12 and c.scaled(2).latency_s == 10e-6


def test_curve_cache_tier():
    c = Curve(peak=30e9, latency_s=1e-6, cache_bytes=16e6, cache_peak=150e9)
    assert c.time_s(15e6) == pytest.approx(1e-6 + 15e6 / 150e9)
    assert c.time_s(17e6) == pytest.approx(1e-6 + 17e6 / 30e9)
    with pytest.raises(ValueError):
        Curve(peak=0, latency_s=0)
    with pytest.raises(ValueError):
        Curve(peak=1, latency_s=-1)


# ------------------------------------------------------------------ fitting


@pytest.mark.parametrize("peak,latency", [(1e12, 20e-6), (2e11, 3e-6), (8e14, 25e-6)])
def test_fit_recovers_peak_and_latency_with_noise(peak, latency):
    rng = np.random.default_rng(0)
    work = np.geomspace(1e5, 1e12, 24)
    times = (latency + work / peak) * rng.lognormal(0.0, 0.03, work.size)  # 3 % noise
    times[5] *= 3.0  # one outlier repeat (a scheduler hiccup) must not drag the fit
    curve, report = fit_curve(work, times)
    assert curve.peak == pytest.approx(peak, rel=0.05)
    assert curve.latency_s == pytest.approx(latency, rel=0.10)
    assert report.n == 24 and report.median_ape < 0.05 and not report.cache_tier


def test_fit_finds_a_cache_tier_only_when_there_is_one():
    rng = np.random.default_rng(1)
    work = np.geomspace(1e4, 1e9, 20)
    true = Curve(peak=30e9, latency_s=1e-6, cache_bytes=2e7, cache_peak=150e9)
    times = np.array([true.time_s(w) for w in work]) * rng.lognormal(0.0, 0.02, work.size)
    curve, report = fit_curve(work, times, cache_tier=True)
    assert report.cache_tier
    assert curve.peak == pytest.approx(30e9, rel=0.05)
    assert curve.cache_peak == pytest.approx(150e9, rel=0.1)
    assert 5e6 < curve.cache_bytes < 5e7
    plain = 1e-6 + work / 30e9
    curve2, report2 = fit_curve(work, plain * rng.lognormal(0.0, 0.02, work.size), cache_tier=True)
    assert not report2.cache_tier and curve2.cache_bytes == 0


def test_fit_with_fixed_latency_and_too_few_points():
    curve, _ = fit_curve([1e9], [1e-3 + 20e-6], fixed_latency=20e-6)
    assert curve.peak == pytest.approx(1e12, rel=1e-3)
    with pytest.raises(ValueError):
        fit_curve([1e9], [1e-3])


def test_fit_linear_nonneg():
    # y = 10 us + 1 us/tensor + 2e-10 s/byte
    tensors = [6, 62, 62, 300, 4]
    nbytes = [7e6, 12e6, 47e6, 3e6, 67e6]
    y = [10e-6 + 1e-6 * t + 2e-10 * b for t, b in zip(tensors, nbytes)]
    fixed, per_tensor, per_byte = fit_linear_nonneg([[1.0] * 5, tensors, nbytes], y)
    assert fixed == pytest.approx(10e-6, rel=1e-3)
    assert per_tensor == pytest.approx(1e-6, rel=1e-3)
    assert per_byte == pytest.approx(2e-10, rel=1e-3)


# ------------------------------------------------------------------ JSON round trip and rejection


def test_profile_round_trip(tmp_path):
    prof = _profile()
    path = save_profile(prof, tmp_path / "p.json")
    back = load_profile(path)
    assert back == prof
    data = json.loads(path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["compute"]["matmul"]["fp32"] == {"peak": 1e11, "latency_s": 5e-6}
    assert data["memory"]["cache_peak"] == 1.2e11


def _write(tmp_path: Path, data) -> Path:
    path = tmp_path / "bad.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _one_line_error_naming(path: Path, exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    assert str(path) in msg
    assert isinstance(exc.value, TraincostError)
    return msg


def test_load_rejects_corrupt_json(tmp_path):
    path = _write(tmp_path, '{"schema_version": 1, "source": ')
    with pytest.raises(ProfileError) as exc:
        load_profile(path)
    assert "not valid JSON" in _one_line_error_naming(path, exc)


@pytest.mark.parametrize("field", ["memory", "dispatch_s", "compute", "schema_version", "name"])
def test_load_rejects_missing_field(tmp_path, field):
    data = _profile().to_dict()
    del data[field]
    path = _write(tmp_path, data)
    with pytest.raises(ProfileError) as exc:
        load_profile(path)
    assert f"missing field {field!r}" in _one_line_error_naming(path, exc)


def test_load_rejects_missing_curve_part_and_wrong_types(tmp_path):
    data = _profile().to_dict()
    del data["compute"]["matmul"]["fp32"]["peak"]
    path = _write(tmp_path, data)
    with pytest.raises(ProfileError) as exc:
        load_profile(path)
    assert "compute.matmul.fp32.peak" in _one_line_error_naming(path, exc)
    for key, value in (("dispatch_s", "fast"), ("memory_bytes", 1.5), ("kind", "tpu"), ("compute", [])):
        data = _profile().to_dict()
        data[key] = value
        path = _write(tmp_path, data)
        with pytest.raises(ProfileError) as exc:
            load_profile(path)
        assert key in _one_line_error_naming(path, exc)


def test_load_rejects_newer_schema(tmp_path):
    data = _profile().to_dict()
    data["schema_version"] = SCHEMA_VERSION + 1
    path = _write(tmp_path, data)
    with pytest.raises(ProfileError) as exc:
        load_profile(path)
    msg = _one_line_error_naming(path, exc)
    assert "newer" in msg and str(SCHEMA_VERSION + 1) in msg


def test_load_missing_file(tmp_path):
    with pytest.raises(ProfileError, match="no such profile file"):
        load_profile(tmp_path / "nope.json")


# ------------------------------------------------------------------ queries


def test_compute_curve_fallbacks_and_device_time():
    prof = _profile(compute={"matmul": {"fp32": Curve(1e11, 5e-6)},
                             "conv": {"fp32": Curve(8e10, 2e-5), "fp32_channels_last": Curve(1e11, 2e-5)}})
    assert prof.compute_curve("conv_bwd_input", "fp32") is prof.compute["conv"]["fp32"]
    assert prof.compute_curve("conv", "fp32", channels_last=True).peak == 1e11
    assert prof.compute_curve("attention", "fp32") is prof.compute["matmul"]["fp32"]
    assert prof.compute_curve("matmul", "bf16") is None
    # priced through the one pricer (a one-row op table):
    # matmul 1e9 FLOP: 5 us + 1e9 / 1e11 = 10.005 ms; its 12 MB move at 30 GB/s (1 us + 0.4 ms) is shorter
    assert price_op(prof, "matmul", "fp32", 1e9, 12e6) == pytest.approx(10.005e-3, rel=1e-12)
    # an elementwise op of 300 MB (beyond the 8 MB cache tier): 1 us + 300e6 / 3e10 = 10.001 ms
    assert price_op(prof, "elementwise", "fp32", 75e6, 300e6) == pytest.approx(10.001e-3, rel=1e-12)
    # 6 MB inside the cache tier streams at 120 GB/s: 1 us + 6e6 / 1.2e11 = 51 us; unless the step's working
    # set (1 GiB) does not fit in the cache: 1 us + 6e6 / 3e10 = 201 us
    assert price_op(prof, "elementwise", "fp32", 0, 6e6) == pytest.approx(51e-6, rel=1e-12)
    assert price_op(prof, "elementwise", "fp32", 0, 6e6, working_set_bytes=2**30) == pytest.approx(201e-6, rel=1e-12)
    # conv 1.6e9 FLOP: 20 us + 1.6e9 / 8e10 = 20.02 ms; channels_last: 20 us + 1.6e9 / 1e11 = 16.02 ms
    assert price_op(prof, "conv", "fp32", 1.6e9, op="aten.convolution") == pytest.approx(20.02e-3, rel=1e-12)
    assert price_op(prof, "conv", "fp32", 1.6e9, op="aten.convolution",
                    channels_last=True) == pytest.approx(16.02e-3, rel=1e-12)
    assert price_op(prof, "free", "fp32") == 0.0


# ------------------------------------------------------------------ datasheet profiles


def test_datasheet_profile_is_marked_and_scales_with_peaks():
    a100 = resolve_gpu("A100 SXM 80GB")
    h100 = resolve_gpu("H100 SXM")
    pa, ph = datasheet_profile(a100, kernel_refs=()), datasheet_profile(h100, kernel_refs=())  # the defaults alone
    for p, g in ((pa, a100), (ph, h100)):
        assert p.source == "datasheet" and p.kind == "cuda" and p.catalog_key == g.key
        assert p.memory_bytes == g.memory_bytes
        assert p.compute["matmul"]["fp32"].peak == pytest.approx(g.fp32_tflops * 1e12 * DEFAULT_MATMUL["fp32"][0])
        assert p.compute["matmul"]["bf16"].peak == pytest.approx(g.bf16_tflops * 1e12 * DEFAULT_MATMUL["bf16"][0])
        # PyTorch's fp32 conv runs as TF32 on these GPUs: it scales with the tf32 peak
        assert p.compute["conv"]["fp32"].peak == pytest.approx(g.tf32_tflops * 1e12 * DEFAULT_CONV["fp32"][0])
        assert p.compute["conv"]["fp32"].k_half == DEFAULT_CONV["fp32"][2]
        assert p.memory.peak == pytest.approx(g.mem_bandwidth_bytes_per_s * DEFAULT_MEMORY_FRACTION)
    ratio = ph.compute["matmul"]["bf16"].peak / pa.compute["matmul"]["bf16"].peak
    assert ratio == pytest.approx(h100.bf16_tflops / a100.bf16_tflops)


def test_datasheet_profile_without_tf32_or_bf16():
    v100 = resolve_gpu("V100 SXM2 16GB")
    p = datasheet_profile(v100, kernel_refs=())
    assert "bf16" not in p.compute["matmul"] and "tf32" not in p.compute["matmul"]
    assert p.compute["matmul"]["fp16"].peak == pytest.approx(125e12 * DEFAULT_MATMUL["fp16"][0])
    # no TF32: fp32 convolutions run on CUDA cores and scale with the fp32 peak
    assert p.compute["conv"]["fp32"].peak < v100.fp32_tflops * 1e12
    assert p.properties["conv_fp32_uses_tf32"] is False
    # with the shipped NeuSight curves, a V100 SXM2's CUDA-core conv is the fraction measured on its chip (a V100
    # PCIe; above 1: Winograd
    # computes a 3x3 convolution in fewer multiplications than the FLOPs counted)
    own = next(r for r in load_kernel_refs() if r["catalog_name"].startswith("V100"))["compute"]["conv"]["fp32_strict"]
    assert datasheet_profile(v100).compute["conv"]["fp32"].peak == pytest.approx(
        own["fraction"] * v100.fp32_tflops * 1e12)


def test_datasheet_profile_learns_from_calibrated_references():
    h100 = resolve_gpu("H100 SXM")
    a100 = resolve_gpu("A100 SXM 80GB")
    ref = _profile(kind="cuda", catalog_key=h100.key, name="H100 calibrated",
                   compute={"matmul": {"bf16": Curve(0.6 * h100.bf16_tflops * 1e12, 12e-6)},
                            "conv": {"fp32": Curve(0.3 * h100.tf32_tflops * 1e12, 15e-6)}},
                   memory=Curve(0.9 * h100.mem_bandwidth_bytes_per_s, 2e-6),
                   properties={"conv_fp32_uses_tf32": True})
    p = datasheet_profile(a100, [ref], kernel_refs=())
    assert p.source == "datasheet"
    assert p.compute["matmul"]["bf16"].peak == pytest.approx(0.6 * a100.bf16_tflops * 1e12)
    assert p.compute["matmul"]["bf16"].latency_s == pytest.approx(12e-6)
    assert p.compute["conv"]["fp32"].peak == pytest.approx(0.3 * a100.tf32_tflops * 1e12)
    assert p.memory.peak == pytest.approx(0.9 * a100.mem_bandwidth_bytes_per_s)
    assert p.dispatch_s == ref.dispatch_s
    # per-byte optimizer cost scales with the bandwidth ratio
    assert p.optimizer["sgd_s_per_byte"] == pytest.approx(
        2.5e-10 * h100.mem_bandwidth_gb_s / a100.mem_bandwidth_gb_s)


def _kernel_ref(name: str, matmul: float, conv: float, memory: float) -> dict:
    return {"name": f"{name} (NeuSight)", "catalog_name": name, "architecture": "x",
            "compute": {"matmul": {"fp32": {"fraction": matmul, "k_half": 0.0, "depth_kind": None}},
                        "conv": {"fp32_strict": {"fraction": conv, "k_half": 0.0, "depth_kind": None}}},
            "memory": {"fraction": memory}}


def test_datasheet_profile_takes_medians_per_gpu_and_a_gpus_own_measurement_first():
    h100 = resolve_gpu("H100 SXM")
    v100 = resolve_gpu("V100 SXM2 16GB")
    cal = [_profile(kind="cuda", catalog_key=h100.key, name=f"H100 host {i}",
                    compute={"matmul": {"fp32": Curve(f * h100.fp32_tflops * 1e12, 12e-6)}},
                    memory=Curve(0.9 * h100.mem_bandwidth_bytes_per_s, 2e-6), properties={"conv_fp32_uses_tf32": True})
           for i, f in enumerate((0.50, 0.60))]                 # one GPU calibrated twice: its median 0.55 counts once
    refs = [_kernel_ref("T4", 0.40, 0.70, 0.75), _kernel_ref("P100 PCIe 16GB", 0.70, 1.20, 0.80)]
    # matmul fp32 fractions per GPU: H100 0.55, T4 0.40, P100 0.70 -> median 0.55 (not the 4-value median 0.55/0.575)
    p = datasheet_profile(v100, cal, kernel_refs=refs)
    assert p.compute["matmul"]["fp32"].peak == pytest.approx(0.55 * v100.fp32_tflops * 1e12)
    assert p.compute["matmul"]["fp32"].latency_s == pytest.approx(12e-6)     # latencies from calibrations only
    # memory fractions: H100 0.9, T4 0.75, P100 0.80 -> 0.80; CUDA-core conv: T4 0.70, P100 1.20 -> 0.95
    assert p.memory.peak == pytest.approx(0.80 * v100.mem_bandwidth_bytes_per_s)
    assert p.compute["conv"]["fp32"].peak == pytest.approx(0.95 * v100.fp32_tflops * 1e12)
    own = datasheet_profile(resolve_gpu("T4"), cal, kernel_refs=refs)      # T4's chip measured: its fractions
    t4 = resolve_gpu("T4")
    assert own.compute["matmul"]["fp32"].peak == pytest.approx(0.40 * t4.fp32_tflops * 1e12)
    assert own.memory.peak == pytest.approx(0.75 * t4.mem_bandwidth_bytes_per_s)
    assert any("T4 (NeuSight)" in d for d in own.properties["derived_from"])


def test_shipped_kernel_refs_are_what_the_script_fits():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "fit_kernel_refs.py"), "--check"])
    assert out.returncode == 0, "traincost/data/kernel_refs.json differs: run python scripts/fit_kernel_refs.py"


def test_default_constants_match_the_h200_reference():
    """DEFAULT_MATMUL / DEFAULT_CONV / DEFAULT_MEMORY_FRACTION are fits of h200_microbench.json."""
    d = json.loads(H200_REFERENCE.read_text())
    h200 = resolve_gpu("H200")
    for mode in ("fp32", "tf32", "bf16"):
        ns = [512, 1024, 2048, 4096, 8192]
        work = [2 * n**3 for n in ns]
        times = [2 * n**3 / (d[f"matmul_{mode}_{n}_tflops"] * 1e12) for n in ns]
        curve, _ = fit_curve(work, times)
        frac, lat = DEFAULT_MATMUL[mode]
        assert curve.peak / (h200.peak_tflops(mode) * 1e12) == pytest.approx(frac, abs=2e-3)
        assert curve.latency_s == pytest.approx(lat, rel=0.02)
    assert d["copy_GBps_read_plus_write"] / h200.mem_bandwidth_gb_s == pytest.approx(DEFAULT_MEMORY_FRACTION)
    for mode, ds_mode in (("fp32", "tf32"), ("bf16", "bf16")):
        work, times, depth = [], [], []
        for key, tflops in d.items():
            if key.startswith(f"conv_{mode}_"):
                c, k, hw, r, b = (int(x.lstrip("ckhwrb")) for x in key.split("_")[2:7])
                stride = 2 if r == 7 else 1
                flops = 2 * b * c * k * r * r * (hw // stride) ** 2
                work.append(flops)
                times.append(flops / (tflops * 1e12))
                depth.append(c * r * r)
        frac, lat, k_half = DEFAULT_CONV[mode]
        curve, report = fit_curve(work, times, fixed_latency=lat, depth=depth)
        assert report.depth_term
        assert curve.peak / (h200.peak_tflops(ds_mode) * 1e12) == pytest.approx(frac, abs=2e-3)
        assert curve.k_half == pytest.approx(k_half, rel=0.01)


# ------------------------------------------------------------------ resolution


def test_profile_for_gpu_names_and_files(tmp_path):
    p = profile_for("A100 SXM 80GB")
    assert p.catalog_key == "a100-sxm4-80gb"
    assert p.source in ("datasheet", "calibrated")
    path = save_profile(_profile(), tmp_path / "mine.json")
    assert profile_for(str(path)).name == "test device"
    with pytest.raises(TraincostUsageError):
        profile_for("no such gpu 9000")
    with pytest.raises(ProfileError):
        profile_for(str(tmp_path / "missing.json"))


def test_shipped_profiles_are_valid_and_cpu_resolves():
    shipped = load_shipped_profiles()
    cpus = [p for p in shipped if p.kind == "cpu"]
    assert cpus, "a calibrated CPU profile must ship in traincost/data/profiles/"
    for p in shipped:
        assert p.source == "calibrated" and p.schema_version <= SCHEMA_VERSION
        assert p.compute["matmul"]["fp32"].peak > 0 and math.isfinite(p.memory.peak)
        assert not p.properties.get("quick"), "shipped profiles come from a full calibration"
    assert profile_for("cpu").kind == "cpu"


def test_profile_for_a_gpu_with_several_calibrated_hosts_takes_the_newest(monkeypatch):
    """Two H200 hosts are shipped (h200.json 2026-11-28, h200-2026-12-04.json): ``--device h200`` is the newest
    calibration whatever the file order; the other stays reachable by its file."""
    h200s = [p for p in load_shipped_profiles() if p.catalog_key == "h200-sxm-141gb"]
    assert len(h200s) >= 2 and len({p.name for p in h200s}) == len(h200s)  # rows name their host's profile
    newest = max(h200s, key=lambda p: p.created)
    assert profile_for("H200").name == newest.name
    older = dataclasses.replace(newest, name="older host", created="2020-01-01T00:00:00+00:00")
    later = dataclasses.replace(newest, name="later host", created="2030-01-01T00:00:00+00:00")
    for order in ((later, older), (older, later)):
        monkeypatch.setattr("traincost.hardware.store.load_shipped_profiles", lambda order=order: order)
        assert profile_for("H200").name == "later host"
    # times compare as times, not strings: 10:00+02:00 is 08:00 UTC, before 09:00 UTC; no date is the oldest
    east = dataclasses.replace(newest, name="east", created="2030-01-01T10:00:00+02:00")
    utc = dataclasses.replace(newest, name="utc", created="2030-01-01T09:00:00+00:00")
    undated = dataclasses.replace(newest, name="undated", created="")
    monkeypatch.setattr("traincost.hardware.store.load_shipped_profiles", lambda: (undated, utc, east))
    assert profile_for("H200").name == "utc"


def test_shipped_profiles_match_the_current_fitter():
    """A change to the curve fitting must be followed by ``refit`` of the full profiles in ``data/profiles/`` (and
    ``scripts/ship_profiles.py``): each refits from its own raw points to the values the package ships."""
    from traincost.calibrate.assemble import refit

    def close(a: object, b: object) -> bool:
        """Equal up to the last digits that another numpy/scipy build may change (1e-6 relative)."""
        if dataclasses.is_dataclass(a):
            return type(a) is type(b) and close(dataclasses.asdict(a), dataclasses.asdict(b))
        if isinstance(a, dict):
            return isinstance(b, dict) and a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
        if isinstance(a, float) and isinstance(b, float):
            return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-15)
        return a == b

    full = {p.name: p for p in map(load_profile, sorted((ROOT / "data" / "profiles").glob("*.json")))}
    shipped = load_shipped_profiles()
    assert sorted(full) == sorted(p.name for p in shipped)
    for p in shipped:
        again = refit(full[p.name])
        assert close(again.compute, p.compute), p.name
        assert close(again.memory, p.memory) and close(again.reduction, p.reduction), p.name
        assert close(again.optimizer, p.optimizer) and close(again.dispatch_s, p.dispatch_s), p.name


# ------------------------------------------------------------------ depth kinds and kernel curves


def test_curve_depth_kind_round_trips_and_is_validated(tmp_path):
    curve = Curve(1e12, 1e-5, k_half=64.0, depth_kind="positions")
    assert curve.to_dict() == {"peak": 1e12, "latency_s": 1e-5, "k_half": 64.0, "depth_kind": "positions"}
    assert "depth_kind" not in Curve(1e12, 1e-5, k_half=64.0).to_dict()  # the default stays implicit
    with pytest.raises(ValueError, match="depth_kind"):
        Curve(1e12, 1e-5, k_half=1.0, depth_kind="width")
    p = _profile(kernels={"native_batch_norm": {"fp32": Curve(2e9, 1e-6), "bf16_channels_last": Curve(1e9, 2e-6)}},
                 compute={"matmul": {"fp32": Curve(1e11, 5e-6)}, "conv": {"fp32": curve}})
    again = load_profile(save_profile(p, tmp_path / "p.json"))
    assert again.kernels == p.kernels and again.compute["conv"]["fp32"].depth_kind == "positions"
    data = json.loads((tmp_path / "p.json").read_text())
    data["compute"]["conv"]["fp32"]["depth_kind"] = "width"
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(ProfileError, match=r"compute\.conv\.fp32\.depth_kind"):
        load_profile(tmp_path / "bad.json")


def test_kernel_curve_fallbacks():
    bn = {"fp32": Curve(2e9, 1e-6), "fp32_channels_last": Curve(3e9, 1e-6), "bf16": Curve(1e9, 1e-6)}
    p = _profile(kernels={"native_batch_norm": bn})
    assert p.kernel_curve("aten.native_batch_norm", "fp32") is bn["fp32"]
    assert p.kernel_curve("native_batch_norm", "fp32", channels_last=True) is bn["fp32_channels_last"]
    assert p.kernel_curve("native_batch_norm", "bf16", channels_last=True) is bn["bf16"]
    assert p.kernel_curve("native_batch_norm", "fp16", channels_last=True) is bn["fp32_channels_last"]
    assert p.kernel_curve("max_pool2d_with_indices", "fp32") is None
    # the pricer reads the op's curve for the memory term: 1 us + 4e6 / 2e9 = 2.001 ms
    assert price_op(p, "norm", "fp32", 0, 4e6, op="aten.native_batch_norm") == pytest.approx(2.001e-3, rel=1e-12)
    # an op without a curve of its own: the memory curve, 4 MB in its cache tier: 1 us + 4e6 / 1.2e11 = 34.33 us
    assert price_op(p, "norm", "fp32", 0, 4e6) == pytest.approx(1e-6 + 4e6 / 1.2e11, rel=1e-12)


def test_vector_lanes_from_the_recorded_capability_else_the_flags():
    assert vector_lanes({"cpu_capability": "AVX512", "cpu_flags": []}) == 16
    assert vector_lanes({"cpu_capability": "AVX2", "cpu_flags": ["avx512f"]}) == 8   # what torch dispatches
    assert vector_lanes({"cpu_flags": ["avx", "avx2", "avx512f"]}) == 16
    assert vector_lanes({"cpu_flags": ["avx", "avx2"]}) == 8
    assert vector_lanes({"cpu_flags": ["asimd"]}) == 4 and vector_lanes({}) == 4


def test_kernel_tail_per_pixel_row_for_channels_off_the_vector_width():
    table = {"native_batch_norm_backward/fp32_channels_last": {"4": 2e-8, "8": 6e-8}}
    p = _profile(properties={"cpu_flags": ["avx512f"], "kernel_tail_s_per_row": table})
    rows = np.array([1000.0] * 6)
    got = p.kernel_tail_s("aten.native_batch_norm_backward", "fp32", np.array([4, 8, 16, 24, 32, 0]), rows)
    # measured C: its value; 16 and 32 fill whole vectors; 24 not measured: the largest measured C (8)
    assert got.tolist() == pytest.approx([1000 * 2e-8, 1000 * 6e-8, 0.0, 1000 * 6e-8, 0.0, 0.0], rel=1e-12)
    assert p.kernel_tail_s("native_batch_norm_backward", "bf16", np.array([8]), np.array([1e3])).tolist() == [0.0]
    assert p.kernel_tail_s("native_batch_norm", "fp32", np.array([8]), np.array([1e3])).tolist() == [0.0]
    gpu = _profile(kind="cuda", properties={"kernel_tail_s_per_row": table})
    assert gpu.kernel_tail_s("native_batch_norm_backward", "fp32", np.array([8]), np.array([1e3])).tolist() == [0.0]
    bad = _profile(properties={"kernel_tail_s_per_row": {"native_batch_norm/fp32_channels_last": {"8": "fast"}}})
    with pytest.raises(ProfileError, match=r"kernel_tail_s_per_row\.native_batch_norm/fp32_channels_last"):
        bad.kernel_tail_s("native_batch_norm", "fp32", np.array([8]), np.array([1e3]))
    # the pricer adds it to the kernel curve of a channels_last op: an (N, C, H, W) = (10, 8, 10, 10) input has
    # 8 channels and 1000 pixel rows: 1 us + 4e6 / 2e9 + 1000 x 60 ns = 2.061 ms
    p = _profile(kernels={"native_batch_norm_backward": {"fp32_channels_last": Curve(2e9, 1e-6)}},
                 properties={"cpu_flags": ["avx512f"], "kernel_tail_s_per_row": table})
    op, ins = "aten.native_batch_norm_backward", [(10, 8, 10, 10)]
    t = price_op(p, "norm", "fp32", 0, 4e6, op=op, input_shapes=ins, channels_last=True)
    assert t == pytest.approx(2.061e-3, rel=1e-12)
    # contiguous: no channels_last curve and no tail, the memory curve in its cache tier: 1 us + 4e6 / 1.2e11
    assert price_op(p, "norm", "fp32", 0, 4e6, op=op, input_shapes=ins) == pytest.approx(1e-6 + 4e6 / 1.2e11,
                                                                                        rel=1e-12)


def test_kernel_curve_of_a_2d_activation():
    bn = {"fp32": Curve(2e9, 1e-6), "fp32_2d": Curve(5e8, 1e-6), "bf16": Curve(1e9, 1e-6)}
    p = _profile(kernels={"native_batch_norm": bn})
    assert p.kernel_curve("native_batch_norm", "fp32_2d") is bn["fp32_2d"]
    assert p.kernel_curve("native_batch_norm", "fp32_2d", channels_last=True) is bn["fp32_2d"]
    assert p.kernel_curve("native_batch_norm", "bf16_2d") is bn["bf16"]        # no bf16_2d: the plain bf16
    assert p.kernel_curve("native_batch_norm", "fp16_2d") is bn["fp32_2d"]     # no fp16 at all: the fp32 chain
    old = _profile(kernels={"native_batch_norm": {"fp32": bn["fp32"]}})       # a profile measured before 2-d
    assert old.kernel_curve("native_batch_norm", "fp32_2d") is bn["fp32"]


def test_gemm_shape_points():
    rows = [[8, 128, 1000, 1, 2.5], [32, 128, 1000, 1, 1.5]]
    p = _profile(properties={"gemm_shape_factors": {"matmul/fp32/addmm": rows}})
    assert p.gemm_shape_points("fp32", "addmm").tolist() == rows
    assert p.gemm_shape_points("fp32", "mm") is None and p.gemm_shape_points("bf16", "addmm") is None
    assert _profile().gemm_shape_points("fp32", "addmm") is None


def test_fit_chooses_the_depth_dimension_that_explains_the_times():
    """Synthetic conv weight-gradient times whose rate depends on N x H_out x W_out only: the fit keeps the
    ``positions`` depth term and recovers its constants."""
    from traincost.calibrate.curves import _fit

    rows = []
    for c, hw in ((64, 56), (128, 28), (256, 14), (512, 7), (512, 2), (256, 4), (64, 16)):
        for batch in (1, 4, 16):
            work = 2 * batch * c * c * 9 * hw * hw
            positions = batch * hw * hw
            t = 1e-5 + work / (2e11 * positions / (positions + 300))
            rows.append({"pass": "bwd_weight", "work": work, "median_s": t,
                         "shape": {"batch": batch, "c_in": c, "c_out": c, "hw": hw, "kernel": 3, "stride": 1}})
    curve, report = _fit(rows, cache_tier=False)
    assert curve.depth_kind == "positions"
    assert curve.k_half == pytest.approx(300, rel=0.05) and curve.peak == pytest.approx(2e11, rel=0.05)
    assert report.median_ape < 0.01
