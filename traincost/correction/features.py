"""Features of one priced training step for the learned correction: walk sizes per op group, the
analytic components, per-op regimes (thin convolutions, small maps, skinny GEMMs, fresh allocations) and
the device's own features.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from traincost.errors import TraincostError

#: Op classes of the walk (``OpRecord.op_class``) -> the feature group they are counted in (None: free).
CLASS_GROUPS: dict[str, str | None] = {
    "matmul": "matmul", "attention": "matmul", "rnn": "matmul", "conv": "conv", "norm": "norm", "pool": "pool",
    "elementwise": "elementwise", "softmax": "elementwise", "loss": "elementwise", "copy": "elementwise",
    "embedding": "elementwise", "unpriced": "elementwise", "reduction": "reduction", "optimizer": "optimizer",
    "free": None,
}


GROUPS = ("matmul", "conv", "norm", "pool", "elementwise", "reduction", "optimizer")


PRECISIONS = ("fp32", "tf32", "bf16", "fp16")


#: Per-op regimes (:func:`regime_features`): newly allocated output bytes (all, and those of at least 32 MiB
#: that a CPU maps afresh), elements drawn by random ops (dropout masks), the analytic step's share spent in
#: thin convolutions (min(C_in, C_out) / groups < :data:`THIN_CHANNELS`), in convolutions on small maps
#: (H_out x W_out <= :data:`SMALL_MAP_POSITIONS`) and in skinny GEMMs (min(M, N, K) < :data:`SKINNY_GEMM`),
#: and the number of parameter tensors (per-tensor loops of the optimizer and of autograd).
REGIME_FEATURES = ("log_alloc_bytes", "log_alloc_large_bytes", "log_rng_elements", "share_conv_thin",
                   "share_conv_smallmap", "share_mm_skinny", "log_param_tensors")


THIN_CHANNELS = 16


SMALL_MAP_POSITIONS = 16


SKINNY_GEMM = 64


_RNG_OPS = ("bernoulli_", "bernoulli", "native_dropout", "rand", "rand_like", "randn", "uniform_", "normal_")


#: The feature names, in the order of the model's columns. Sizes are ``log1p`` of FLOPs, bytes or counts;
#: times ``log`` of milliseconds; shares are fractions of the analytic step or of its device time.
FEATURES: tuple[str, ...] = (
    # the analytic prediction and its components
    "log_analytic_ms", "log_compute_ms", "log_memory_ms", "log_exposed_host_ms",
    "share_compute", "share_memory", "share_host",
    # device time share of each op group (analytic)
    *(f"share_dev_{g}" for g in GROUPS),
    # work by op group and phase
    "log_flops_matmul", "log_flops_conv",
    *(f"log_bytes_{g}" for g in GROUPS),
    "log_flops_forward", "log_flops_backward", "log_bytes_forward", "log_bytes_backward",
    "log_ops", "log_kernels", "log_bytes_per_kernel", "log_params", "log_activation_bytes", "log_peak_bytes",
    # regimes the curves price least well, op by op (see :func:`regime_features`)
    *REGIME_FEATURES,
    # the step configuration
    "log_batch", *(f"precision_{p}" for p in PRECISIONS), "channels_last", "optimizer_adam",
    # the device
    "device_cuda", "device_datasheet", "log_matmul_peak_tflops", "log_memory_gb_per_s",
    "log_dispatch_us", "log_launch_us",
)


def _log1p(x: float) -> float:
    return math.log1p(max(float(x), 0.0))


def _log_ms(x_ms: float) -> float:
    return math.log(max(float(x_ms), 1e-6))


def _matmul_mode(precision: str) -> str:
    return precision if precision in PRECISIONS else "fp32"


def device_features(profile: Any, precision: str) -> dict[str, float]:
    """The device part of the features (a :class:`~traincost.hardware.profile.DeviceProfile`)."""
    curve = profile.compute_curve("matmul", _matmul_mode(precision))
    if curve is None:
        curve = profile.compute_curve("matmul", "fp32")
    peak = float(curve.peak) if curve is not None else 0.0
    return {
        "device_cuda": float(profile.kind == "cuda"),
        "device_datasheet": float(profile.source == "datasheet"),
        "log_matmul_peak_tflops": math.log(max(peak / 1e12, 1e-6)),
        "log_memory_gb_per_s": math.log(max(float(profile.memory.peak) / 1e9, 1e-6)),
        "log_dispatch_us": _log1p(float(profile.dispatch_s) * 1e6),
        "log_launch_us": _log1p(float(profile.launch_s) * 1e6),
    }


def step_features(walk: Any, pricing: Any, profile: Any, *, precision: str, channels_last: bool,
                  optimizer: str, batch_size: int) -> dict[str, float]:
    """The :data:`FEATURES` of one walked step (``traincost.count(...).walk``) priced on ``profile``.

    ``pricing``: :func:`traincost.pricing.timeline.price` of the walk's op table (one entry per record, same order).
    """
    records = walk.records
    n = len(records)
    device_s = np.asarray(pricing.device_s, dtype=float)
    if len(device_s) != n:
        raise TraincostError(f"pricing has {len(device_s)} ops, the walk {n}: not the same step")
    step_ms = float(pricing.timeline.step_s) * 1e3
    compute_ms = float(np.sum(pricing.compute_s)) * 1e3
    memory_ms = float(np.sum(pricing.memory_s)) * 1e3
    host_ms = float(np.sum(pricing.timeline.exposed_host_s)) * 1e3
    total = max(compute_ms + memory_ms + host_ms, 1e-12)
    group_flops = dict.fromkeys(GROUPS, 0.0)
    group_bytes = dict.fromkeys(GROUPS, 0.0)
    group_dev = dict.fromkeys(GROUPS, 0.0)
    phase_flops = {"forward": 0.0, "backward": 0.0}
    phase_bytes = {"forward": 0.0, "backward": 0.0}
    kernels = 0
    kernel_bytes = 0.0
    for i, r in enumerate(records):
        g = CLASS_GROUPS.get(r.op_class, "elementwise")
        nbytes = float(r.bytes_read + r.bytes_written)
        if r.phase in phase_flops:
            phase_flops[r.phase] += r.flops
            phase_bytes[r.phase] += nbytes
        if g is None:
            continue
        group_flops[g] += r.flops
        group_bytes[g] += nbytes
        group_dev[g] += device_s[i]
        if device_s[i] > 0:
            kernels += 1
            kernel_bytes += nbytes
    dev_total = max(sum(group_dev.values()), 1e-30)
    out: dict[str, float] = {
        "log_analytic_ms": _log_ms(step_ms), "log_compute_ms": _log_ms(compute_ms),
        "log_memory_ms": _log_ms(memory_ms), "log_exposed_host_ms": _log_ms(host_ms),
        "share_compute": compute_ms / total, "share_memory": memory_ms / total, "share_host": host_ms / total,
    }
    out.update({f"share_dev_{g}": group_dev[g] / dev_total for g in GROUPS})
    out["log_flops_matmul"] = _log1p(group_flops["matmul"])
    out["log_flops_conv"] = _log1p(group_flops["conv"])
    out.update({f"log_bytes_{g}": _log1p(group_bytes[g]) for g in GROUPS})
    out.update({"log_flops_forward": _log1p(phase_flops["forward"]),
                "log_flops_backward": _log1p(phase_flops["backward"]),
                "log_bytes_forward": _log1p(phase_bytes["forward"]),
                "log_bytes_backward": _log1p(phase_bytes["backward"])})
    out.update(regime_features(records, device_s, step_ms / 1e3))
    memory = walk.memory
    out.update({
        "log_ops": _log1p(n), "log_kernels": _log1p(kernels),
        "log_bytes_per_kernel": _log1p(kernel_bytes / max(kernels, 1)),
        "log_params": _log1p(walk.params), "log_activation_bytes": _log1p(memory.saved_activations_bytes),
        "log_peak_bytes": _log1p(memory.peak_bytes),
        "log_batch": math.log(max(int(batch_size), 1)),
    })
    out.update({f"precision_{p}": float(precision == p) for p in PRECISIONS})
    out["channels_last"] = float(bool(channels_last))
    out["optimizer_adam"] = float(optimizer in ("adam", "adamw"))
    out.update(device_features(profile, precision))
    return {name: float(out[name]) for name in FEATURES}


def regime_features(records: Sequence[Any], device_s: Sequence[float], step_s: float) -> dict[str, float]:
    """The :data:`REGIME_FEATURES` of a walk's records priced at ``device_s`` (seconds per record) in an
    analytic step of ``step_s`` seconds."""
    from traincost.pricing.geometry import conv_depths, fresh_output_bytes, gemm_min_dim

    alloc = alloc_large = rng = thin = smallmap = skinny = 0.0
    tensors = 0
    for r, dev in zip(records, device_s):
        if r.op_class == "free" or r.host_only:
            continue
        name = r.op.removeprefix("aten.").split(".")[0]
        alloc += fresh_output_bytes(r, 1)
        alloc_large += fresh_output_bytes(r)
        if name in _RNG_OPS:
            rng += float(math.prod(r.output_shapes[0]) if r.output_shapes else
                         math.prod(r.input_shapes[0]) if r.input_shapes else 0)
        if r.op_class == "optimizer":
            tensors = max(tensors, int(r.n_tensors))
        elif r.op_class == "conv":
            d = conv_depths(r.op, r.input_shapes, r.output_shapes)
            batch = (r.input_shapes[0][0] if r.input_shapes and r.input_shapes[0] else 0) or 1
            if 0 < d["min_channels"] < THIN_CHANNELS:
                thin += dev
            if 0 < d["positions"] / batch <= SMALL_MAP_POSITIONS:
                smallmap += dev
        elif r.op_class == "matmul" and 0 < gemm_min_dim(r.op, r.input_shapes) < SKINNY_GEMM:
            skinny += dev
    step = max(float(step_s), 1e-30)
    return {"log_alloc_bytes": _log1p(alloc), "log_alloc_large_bytes": _log1p(alloc_large),
            "log_rng_elements": _log1p(rng), "share_conv_thin": thin / step, "share_conv_smallmap": smallmap / step,
            "share_mm_skinny": skinny / step, "log_param_tensors": _log1p(tensors)}


def features_frame(rows: Sequence[Mapping[str, float]]) -> pd.DataFrame:
    """Rows of :func:`step_features` as a frame with the :data:`FEATURES` columns, in order."""
    return pd.DataFrame([[float(r[name]) for name in FEATURES] for r in rows], columns=list(FEATURES),
                        dtype=float)
