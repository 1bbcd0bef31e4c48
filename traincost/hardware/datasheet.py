"""Profiles of GPUs never measured, derived from their datasheet.

A datasheet profile is the GPU's datasheet peaks times the fraction of datasheet that calibrated GPUs reach
(or documented defaults measured on one H200 run). Predictions from these are less certain and say so.
"""

from __future__ import annotations

import functools
import json
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from traincost.errors import TraincostUsageError
from traincost.hardware.profile import (
    CHANNELS_LAST,
    SCHEMA_VERSION,
    Curve,
    DeviceProfile,
)

if TYPE_CHECKING:
    from traincost.hardware.catalog import GPUSpec


#: Catalog key of the GPU the defaults were measured on.
DEFAULT_REFERENCE_KEY = "h200-sxm-141gb"


#: matmul fitted on sizes 512..8192 (square): 2-parameter curve -> (peak / datasheet, latency_s).
#: fp32: peak 51.4 of 67 TFLOP/s (fit median APE 0.8 %); tf32: 390.8 of 494.7 (6.3 %); bf16: 809.8 of
#: 989.4 (2.2 %). fp16 was not measured: the bf16 values are used.
DEFAULT_MATMUL = {
    "fp32": (0.7670, 36.2e-6),
    "tf32": (0.7900, 23.7e-6),
    "bf16": (0.8185, 21.2e-6),
    "fp16": (0.8185, 21.2e-6),
}


#: conv2d forward, batch 64, six ResNet layer shapes, NCHW -> (peak / datasheet, latency_s, k_half): peak and
#: depth term fitted (robust, log time) with the latency fixed to the matmul latency of the math mode the
#: conv runs in. "fp32" ran as TF32: fraction of the tf32 datasheet (peak 199 TFLOP/s, k_half 600; fit
#: median APE 5.8 %, 22 % without the depth term); bf16: 243 TFLOP/s of 989.4, k_half 494 (11 %, 20 %
#: without). NCHW 16-bit convs pay layout transposes. fp16 was not measured: the bf16 values are used.
DEFAULT_CONV = {
    "fp32": (0.4026, 23.7e-6, 600.4),
    "bf16": (0.2454, 21.2e-6, 494.0),
    "fp16": (0.2454, 21.2e-6, 494.0),
}


#: assumption: true-fp32 (CUDA-core) convolution reaches the fraction of fp32 peak that fp32 GEMM does,
#: without a depth term.
DEFAULT_CONV_FP32_STRICT = (*DEFAULT_MATMUL["fp32"], 0.0)


#: assumption: a convolution backward (grad input + grad weight) runs at this fraction of the forward rate.
CONV_BACKWARD_VS_FORWARD = 0.85


#: assumption: 16-bit convolutions in channels_last run this much faster than NCHW (the reference README:
#: bf16 autocast + channels_last runs a ResNet-50 step almost twice as fast as NCHW on the H200), capped
#: at the matmul fraction of the same mode.
CONV_CHANNELS_LAST_SPEEDUP_16BIT = 2.0


#: device copy bandwidth (read + write): 4202 of 4800 GB/s.
DEFAULT_MEMORY_FRACTION = 4202.446 / 4800.0


#: assumption: reductions stream at the copy fraction.
DEFAULT_REDUCTION_FRACTION = DEFAULT_MEMORY_FRACTION


#: assumption: device time of a tiny kernel back to back on a recent NVIDIA GPU (typical 2-3 us).
DEFAULT_LAUNCH_S = 2.5e-6


#: assumption: latency of memory-bound / reduction kernels (a few waves of a tiny kernel).
DEFAULT_MEMORY_LATENCY_S = 3.0e-6


DEFAULT_REDUCTION_LATENCY_S = 5.0e-6


#: eager host cost of one tiny op on the H200's host: 6.95 us ("eager_small_op_us").
DEFAULT_DISPATCH_S = 6.950e-6


#: assumption: autocast adds this much host cost per aten op (casts counted as their own ops).
DEFAULT_AUTOCAST_DISPATCH_RATIO = 1.25


#: assumption: foreach optimizer steps move this many bytes per parameter byte (fp32 params):
#: SGD momentum 8 (buf*=m, buf+=g, p-=lr*buf), AdamW about 20 (decay, lerp, mul, addcmul, sqrt, div, add,
#: addcdiv), at the copy bandwidth; plus a fixed host part per step and a small per-tensor part.
DEFAULT_OPTIMIZER_PASSES = {"sgd": 8.0, "adamw": 20.0}


DEFAULT_OPTIMIZER_FIXED_S = {"sgd": 60e-6, "adamw": 150e-6}


DEFAULT_OPTIMIZER_PER_TENSOR_S = {"sgd": 0.3e-6, "adamw": 1.0e-6}


#: Version of the derivation of unmeasured GPUs (the golden test stores it with the datasheet rows): 1 took the
#: H200's fractions of datasheet peak with its depth terms as measured; 2 adds the NeuSight reference curves of five
#: GPUs (fp32 GEMM, CUDA-core convolution, elementwise bandwidth), takes medians per GPU before across GPUs, uses a
#: GPU's own chip's measured curves where they exist.
DATASHEET_VERSION = 2


@dataclass(frozen=True)
class _Learned:
    """One reference's curve of one (class, mode), as fractions and terms that carry to another GPU."""

    gpu: str                   # catalog key of the reference GPU
    fraction: float            # achieved peak / datasheet peak
    k_half: float              # depth term (0: none)
    depth_kind: str
    latency_s: float | None    # None: not measured (NeuSight's times carry its host's floor)


def _per_gpu_median(values: Sequence[tuple[str, float]]) -> float:
    """Median over GPUs of each GPU's median: two calibrations of one GPU count once."""
    by_gpu: dict[str, list[float]] = {}
    for key, value in values:
        by_gpu.setdefault(key, []).append(value)
    return _median([_median(v) for _, v in sorted(by_gpu.items())])


def _own_or_all(values: list, gpu: "GPUSpec", by_key: Mapping[str, "GPUSpec"],
                key: Callable[[Any], str] = lambda v: v.gpu) -> list:
    """The references measured on ``gpu``'s own chip (the catalog's ``architecture``, e.g. ``Volta (GV100)``:
    a V100 PCIe measures for a V100 SXM2) when there are any, else all of them."""
    own = [v for v in values if by_key[key(v)].architecture == gpu.architecture]
    return own or values


def _catalog_spec(name: str, by_key: Mapping[str, "GPUSpec"]) -> "GPUSpec | None":
    from traincost.hardware.catalog import resolve_gpu

    try:
        spec = resolve_gpu(name)
    except TraincostUsageError:
        return None
    return spec if spec.key in by_key else None


@functools.lru_cache(maxsize=1)
def _shipped_kernel_refs() -> tuple[Mapping[str, Any], ...]:
    path = resources.files("traincost") / "data" / "kernel_refs.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("schema_version") != 1 or not isinstance(data.get("references"), list):
        raise TraincostUsageError(f"{path}: not a kernel reference file of schema_version 1")
    return tuple(data["references"])


def load_kernel_refs() -> list[Mapping[str, Any]]:
    """The shipped reference curves of GPUs measured by NeuSight (``scripts/fit_kernel_refs.py``)."""
    return list(_shipped_kernel_refs())


def _datasheet_peak_flops(gpu: "GPUSpec", op_class: str, mode: str, conv_uses_tf32: bool) -> float | None:
    """Datasheet FLOP/s that a measured curve of (class, mode) is a fraction of; None if unsupported."""
    base = mode.removesuffix(CHANNELS_LAST)
    if base == "fp32_strict":
        tf = gpu.fp32_tflops
    elif base == "fp32" and op_class.startswith("conv") and conv_uses_tf32 and gpu.tf32_tflops:
        tf = gpu.tf32_tflops
    else:
        try:
            tf = gpu.peak_tflops(base)
        except TraincostUsageError:
            return None
    return tf * 1e12 if tf else None


def _median(values: list[float]) -> float:
    return float(statistics.median(values))


def _default_compute(gpu: "GPUSpec") -> dict[str, dict[str, Curve]]:
    """Compute curves of a GPU from the DEFAULT_* constants (the H200 reference run)."""
    has_tf32 = bool(gpu.tf32_tflops)
    compute: dict[str, dict[str, Curve]] = {"matmul": {}, "conv": {}}
    for mode, (frac, lat) in DEFAULT_MATMUL.items():
        ds = _datasheet_peak_flops(gpu, "matmul", mode, conv_uses_tf32=False)
        if ds is not None:
            compute["matmul"][mode] = Curve(peak=ds * frac, latency_s=lat)
    conv_modes: dict[str, tuple[float, float, float]] = dict(DEFAULT_CONV)
    if has_tf32:
        conv_modes["tf32"] = DEFAULT_CONV["fp32"]
    else:
        conv_modes["fp32"] = DEFAULT_CONV_FP32_STRICT
    conv_modes["fp32_strict"] = DEFAULT_CONV_FP32_STRICT
    for mode, (frac, lat, k_half) in conv_modes.items():
        if mode == "fp32_strict" or (mode == "fp32" and not has_tf32):
            ds: float | None = gpu.fp32_tflops * 1e12
        else:
            ds = _datasheet_peak_flops(gpu, "conv", mode, conv_uses_tf32=True)
        if ds is None:
            continue
        compute["conv"][mode] = Curve(peak=ds * frac, latency_s=lat, k_half=k_half)
        if mode in ("bf16", "fp16"):
            cl = min(frac * CONV_CHANNELS_LAST_SPEEDUP_16BIT, DEFAULT_MATMUL[mode][0])
            compute["conv"][mode + CHANNELS_LAST] = Curve(peak=ds * cl, latency_s=lat, k_half=k_half)
    for cls in ("conv_backward", "conv_bwd_input", "conv_bwd_weight"):
        compute[cls] = {m: c.scaled(CONV_BACKWARD_VS_FORWARD) for m, c in compute["conv"].items()}
    return compute


def datasheet_profile(gpu: "GPUSpec", reference: list[DeviceProfile] | tuple[DeviceProfile, ...] | None = None,
                      *, kernel_refs: Sequence[Mapping[str, Any]] | None = None) -> DeviceProfile:
    """A profile for a catalog GPU never measured: its datasheet peaks times the achieved fraction.

    With calibrated CUDA profiles in ``reference`` (those whose ``catalog_key`` is in the catalog) and the
    NeuSight reference curves ``kernel_refs`` (default: the shipped ones; ``()`` for none), each (op class, mode)
    rate is the median over reference GPUs (each GPU's own median first) of achieved peak / datasheet peak, times
    this GPU's datasheet peak, or the fraction measured on this GPU's own chip where a reference has it; depth terms are the
    references' medians (scaling them with the ridge point, FLOP/s per byte/s, was tried: it made the public
    whole-model rows worse, ``benchmarks/crossgpu.py``). Latencies, dispatch and optimizer constants are the
    calibrated references' medians (memory rates and optimizer per-byte costs scale with the bandwidth). (class, mode) pairs the references lack
    and everything when none is given come from the ``DEFAULT_*`` constants of this module (one H200 run).
    On a GPU with TF32, PyTorch's default fp32 convolution runs as TF32, so ``fp32`` conv curves scale with
    the TF32 peak there, and with the fp32 peak (the ``fp32_strict`` fraction) on older GPUs. Modes the GPU
    lacks (bf16 before Ampere, tf32) get no curve.
    """
    from traincost.hardware.catalog import load_gpus

    by_key = {g.key: g for g in load_gpus()}
    refs = [p for p in (reference or ()) if p.source == "calibrated" and p.kind == "cuda"
            and p.catalog_key in by_key]
    has_tf32 = bool(gpu.tf32_tflops)
    compute = _default_compute(gpu)
    memory = Curve(peak=gpu.mem_bandwidth_bytes_per_s * DEFAULT_MEMORY_FRACTION, latency_s=DEFAULT_MEMORY_LATENCY_S)
    reduction = Curve(peak=gpu.mem_bandwidth_bytes_per_s * DEFAULT_REDUCTION_FRACTION,
                      latency_s=DEFAULT_REDUCTION_LATENCY_S)
    dispatch_s = DEFAULT_DISPATCH_S
    dispatch_autocast_s = DEFAULT_DISPATCH_S * DEFAULT_AUTOCAST_DISPATCH_RATIO
    launch_s = DEFAULT_LAUNCH_S
    optimizer: dict[str, float] = {}
    for opt, passes in DEFAULT_OPTIMIZER_PASSES.items():
        optimizer[f"{opt}_fixed_s"] = DEFAULT_OPTIMIZER_FIXED_S[opt]
        optimizer[f"{opt}_per_tensor_s"] = DEFAULT_OPTIMIZER_PER_TENSOR_S[opt]
        optimizer[f"{opt}_s_per_byte"] = passes / memory.peak
    assumptions = [
        "defaults: conv backward = forward rate x CONV_BACKWARD_VS_FORWARD",
        "defaults: fp16 = bf16 fractions (fp16 not in the reference run)",
        "defaults: 16-bit channels_last conv = NCHW x CONV_CHANNELS_LAST_SPEEDUP_16BIT (capped at matmul)",
        "defaults: launch, memory/reduction latencies, autocast dispatch, optimizer constants are assumptions",
    ]
    derived_from = ["data/reference/h200_microbench.json (traincost.hardware.datasheet.DEFAULT_*)"]

    def bw(r: DeviceProfile) -> float:
        return by_key[r.catalog_key].mem_bandwidth_bytes_per_s  # type: ignore[index]

    kernel_refs = load_kernel_refs() if kernel_refs is None else list(kernel_refs)
    # each NeuSight reference with its catalog GPU, resolved once (references outside the catalog are left out)
    neusight = [(r, spec) for r in kernel_refs if (spec := _catalog_spec(r["catalog_name"], by_key)) is not None]
    if refs or neusight:
        derived_from = sorted(r.name for r in refs) + sorted(r["name"] for r, _ in neusight)
        derived_from.append("DEFAULT_* for (class, mode) pairs they lack")
        assumptions.append("memory cache tiers of the references are dropped (cache sizes differ)")
        learned: dict[tuple[str, str], list[_Learned]] = {}
        for ref in refs:
            rgpu = by_key[ref.catalog_key]  # type: ignore[index]
            tf32_conv = bool(ref.properties.get("conv_fp32_uses_tf32", True)) and bool(rgpu.tf32_tflops)
            for cls, modes in ref.compute.items():
                for mode, curve in modes.items():
                    ds = _datasheet_peak_flops(rgpu, cls, mode, tf32_conv)
                    if ds:
                        learned.setdefault((cls, mode), []).append(_Learned(
                            rgpu.key, curve.peak / ds, curve.k_half, curve.depth_kind, curve.latency_s))
        for kref, rgpu in neusight:
            for cls, modes in sorted(kref["compute"].items()):
                for mode, fit in sorted(modes.items()):
                    ds = _datasheet_peak_flops(rgpu, cls, mode, conv_uses_tf32=False)
                    if ds:
                        learned.setdefault((cls, mode), []).append(_Learned(
                            rgpu.key, float(fit["fraction"]), float(fit["k_half"]), fit["depth_kind"] or "c_in_kk",
                            None))

        def summary(key: tuple[str, str], target_ds: float) -> Curve:
            vals = _own_or_all(learned[key], gpu, by_key)
            kinds = [v.depth_kind for v in vals if v.k_half > 0]
            kind = max(sorted(set(kinds)), key=kinds.count) if kinds else "c_in_kk"  # ties: by name, not set order
            halves = [(v.gpu, v.k_half) for v in vals if v.k_half > 0 and v.depth_kind == kind]
            latencies = [(v.gpu, v.latency_s) for v in vals if v.latency_s is not None]
            default = compute.get(key[0], {}).get(key[1])
            return Curve(peak=target_ds * _per_gpu_median([(v.gpu, v.fraction) for v in vals]),
                         latency_s=(_per_gpu_median(latencies) if latencies
                                    else default.latency_s if default else DEFAULT_MEMORY_LATENCY_S),
                         k_half=_per_gpu_median(halves) if len(halves) * 2 >= len(vals) else 0.0, depth_kind=kind)

        for (cls, mode) in sorted(learned):
            base = mode.removesuffix(CHANNELS_LAST)
            if cls.startswith("conv") and base == "fp32" and not has_tf32:
                continue  # CUDA-core fp32 conv: from fp32_strict below
            ds = _datasheet_peak_flops(gpu, cls, mode, conv_uses_tf32=True)
            if ds is not None:
                compute.setdefault(cls, {})[mode] = summary((cls, mode), ds)
        if not has_tf32:
            for cls in sorted({c for c, _ in learned if c.startswith("conv")}):
                for suffix in ("", CHANNELS_LAST):
                    src = next((k for k in ((cls, "fp32_strict" + suffix), (cls, "fp32_strict"))
                                if k in learned), None)
                    if src is not None:
                        compute.setdefault(cls, {})["fp32" + suffix] = summary(src, gpu.fp32_tflops * 1e12)

        mem_fractions = [(r.catalog_key, r.memory.peak / bw(r)) for r in refs]
        mem_fractions += [(spec.key, float(k["memory"]["fraction"])) for k, spec in neusight if k.get("memory")]
        mem_fractions = _own_or_all(mem_fractions, gpu, by_key, key=lambda v: v[0])
        if mem_fractions:
            memory = Curve(peak=gpu.mem_bandwidth_bytes_per_s * _per_gpu_median(mem_fractions),
                           latency_s=_median([r.memory.latency_s for r in refs]) if refs else DEFAULT_MEMORY_LATENCY_S)
    if refs:
        reduction = Curve(peak=gpu.mem_bandwidth_bytes_per_s * _median([r.reduction.peak / bw(r) for r in refs]),
                          latency_s=_median([r.reduction.latency_s for r in refs]))
        dispatch_s = _median([r.dispatch_s for r in refs])
        dispatch_autocast_s = _median([r.dispatch_autocast_s for r in refs])
        launch_s = _median([r.launch_s for r in refs])
        for key in sorted({k for r in refs for k in r.optimizer}):
            vals = []
            for r in refs:
                if key in r.optimizer:
                    v = r.optimizer[key]
                    if key.endswith("_s_per_byte"):  # bandwidth-bound: scale by the bandwidth ratio
                        v *= bw(r) / gpu.mem_bandwidth_bytes_per_s
                    vals.append(v)
            optimizer[key] = _median(vals)
    return DeviceProfile(
        schema_version=SCHEMA_VERSION,
        source="datasheet",
        name=f"{gpu.name} (datasheet)",
        kind="cuda",
        catalog_key=gpu.key,
        memory_bytes=gpu.memory_bytes,
        compute=compute,
        memory=memory,
        reduction=reduction,
        dispatch_s=dispatch_s,
        dispatch_autocast_s=dispatch_autocast_s,
        launch_s=launch_s,
        optimizer=optimizer,
        software={},
        created=max((r.created for r in refs), default=""),
        properties={
            "sm_count": gpu.sm_count,
            "datasheet_tflops": {m: gpu.peak_tflops(m) for m in ("fp32", "tf32", "bf16", "fp16")},
            "mem_bandwidth_bytes_per_s": gpu.mem_bandwidth_bytes_per_s,
            "conv_fp32_uses_tf32": has_tf32,
            "derived_from": derived_from,
            "host_from": sorted(r.name for r in refs),  # the calibrated hosts whose dispatch costs are used
            "assumptions": assumptions,
        },
    )
