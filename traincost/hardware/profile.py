"""Device profiles: what one device really achieves, as the pricer needs it.

A :class:`DeviceProfile` holds fitted efficiency curves per op class and math mode, the memory and
reduction bandwidth curves, the host cost of one eager op, the device launch latency and the optimizer
step cost. Profiles are JSON files with a schema version; ``source`` is ``calibrated`` (measured by
``traincost calibrate``) or ``datasheet`` (derived for a catalog GPU by :mod:`traincost.hardware.datasheet`).

Time model of one kernel (all curves)::

    time_s(work) = latency_s + work / rate          rate = peak  (cache_peak while work <= cache_bytes;
                                                          x depth / (depth + k_half) for convolutions)

``work`` is FLOPs (2 per multiply-add) for compute curves and bytes read + written for memory curves.
Curve latencies never include the host's dispatch cost: on a GPU they are device times (CUDA events), on a
CPU the measured wall time minus ``dispatch_s``. So an op costs ``dispatch_s`` of host time plus its device
time (:meth:`traincost.pricing.optable.OpTable.device_times`, the one pricer); how the two combine is the
pricer's business (:mod:`traincost.pricing.timeline`).
The JSON layout is described in ``docs/design.md``. This module never prints and imports no torch.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from traincost.errors import TraincostError, TraincostUsageError

#: Version of the profile JSON layout. Loading a file with a newer version is refused.
SCHEMA_VERSION = 1


#: Compute op classes a profile may hold curves for. ``conv`` is the forward convolution,
#: ``conv_backward`` one ``aten.convolution_backward`` computing grad input and grad weight
#: (work = 2 x forward FLOPs), ``conv_bwd_input`` / ``conv_bwd_weight`` one of the two (work = forward FLOPs).
COMPUTE_CLASSES = ("matmul", "conv", "conv_backward", "conv_bwd_input", "conv_bwd_weight")


#: Math modes (keys of ``compute[op_class]``). ``fp32`` is PyTorch's default for float32 tensors: on CUDA
#: matmul is strict fp32 but convolution uses TF32 (``torch.backends.cudnn.allow_tf32`` defaults to True;
#: the profile says so in ``properties["conv_fp32_uses_tf32"]``); ``fp32_strict`` is conv with TF32 off.
#: A ``_channels_last`` suffix marks a convolution measured in NHWC memory format.
MATH_MODES = ("fp32", "fp32_strict", "tf32", "bf16", "fp16")


SOURCES = ("calibrated", "datasheet")


KINDS = ("cuda", "cpu")


CHANNELS_LAST = "_channels_last"


#: Mode suffix of a kernel curve (:attr:`DeviceProfile.kernels`) measured on 2-d (N, C) activations: a
#: ``BatchNorm1d`` after a linear layer, which a CPU runs on another path than 4-d maps.
FLAT = "_2d"


#: Dimensions of a convolution's implicit GEMM a curve's depth term can use (``Curve.depth_kind``):
#: ``c_in_kk`` = C_in / groups x kh x kw (forward reduction depth), ``c_out_kk`` = C_out / groups x kh x kw
#: (grad-input reduction depth), ``positions`` = N x H_out x W_out (grad-weight reduction depth), and
#: ``min_c_in_kk_positions`` = the smaller of the first and third (a weight gradient is slow when either
#: its output or its reduction is small), ``min_channels`` = min(C_in, C_out) / groups (a thin layer: a
#: CPU vectorises over channels); for a matrix multiply, ``min_mnk`` = the smallest of M, N and K (a skinny
#: GEMM: a small batch in a linear layer's forward, or as the reduction of its weight gradient); for a
#: kernel curve (:attr:`DeviceProfile.kernels`) ``channels`` = C of its 4-d activation (a CPU's channels_last
#: batch norm on 4 channels runs 15x below its rate on 64).
CONV_DEPTH_KINDS = ("c_in_kk", "c_out_kk", "positions", "min_c_in_kk_positions", "min_channels")


#: A CPU op's output of at least this many bytes is newly mapped memory on every call: glibc's malloc
#: serves it with ``mmap`` (its dynamic mmap threshold stops growing at 32 MiB on 64-bit Linux) and the
#: first write to each page faults. ``properties["first_touch_s_per_byte"]`` of a calibrated CPU profile
#: prices that write (:mod:`traincost.pricing.optable`); smaller blocks are reused without faults.
FIRST_TOUCH_MIN_BYTES = 32 << 20


DEPTH_KINDS = (*CONV_DEPTH_KINDS, "min_mnk", "channels")


#: Kernel ops whose channels_last CPU kernels vectorise over the channels of each pixel: with C not a
#: multiple of the SIMD vector's fp32 lanes (:func:`vector_lanes`) every pixel ends in a partial vector, a
#: cost per pixel the bytes curve does not see (an AVX-512 Xeon's batch-norm backward on 8 or 24 channels
#: runs 3-16x slower than its curve, on 16 or 32 at the curve). ``properties["kernel_tail_s_per_row"]``
#: holds the measured seconds per pixel row (:meth:`DeviceProfile.kernel_tail_s`).
TAIL_KERNEL_OPS = ("native_batch_norm", "native_batch_norm_backward")


#: Conv shape factors (:func:`shape_factor`): the kernel width in log units of the GEMM dimensions, and the
#: weight of the prior "the curve is right" (factor 1) against the measured neighbours.
SHAPE_FACTOR_WIDTH = 0.7


SHAPE_FACTOR_PRIOR = 0.1


def shape_factor(points: np.ndarray, shapes: np.ndarray) -> np.ndarray:
    """Multiplicative correction of a conv curve at ``shapes`` (rows of C_in / groups, C_out / groups, kh x
    kw, N x H_out x W_out) from its measured ``points`` (the same four columns + measured / curve time).

    A conv curve is smooth in FLOPs and one GEMM dimension; cuDNN's and oneDNN's algorithm choices are not
    (a CPU runs a 4-channel conv 3-8x below the curve through its measurements). Gaussian-kernel regression
    of the log factor over the measured shapes, in log space, with a prior of weight
    :data:`SHAPE_FACTOR_PRIOR` at factor 1: a shape near measured ones takes their factor, one far from all
    of them keeps the curve. Rows of zeros (not a conv) get 1."""
    q = np.log(np.maximum(np.asarray(shapes, dtype=float), 1.0))
    p = np.log(np.maximum(points[:, :4], 1.0))
    logf = np.log(np.maximum(points[:, 4], 1e-6))
    d2 = ((q[:, None, :] - p[None, :, :]) ** 2).sum(axis=2)
    w = np.exp(-0.5 * d2 / SHAPE_FACTOR_WIDTH ** 2)
    out = np.exp((w * logf).sum(axis=1) / (w.sum(axis=1) + SHAPE_FACTOR_PRIOR))
    return np.where(np.asarray(shapes, dtype=float).max(axis=1) > 0, out, 1.0)


def vector_lanes(properties: Mapping[str, Any]) -> int:
    """fp32 lanes of the SIMD vectors PyTorch's CPU kernels run on: ``properties["cpu_capability"]`` when
    calibrate recorded it (``torch.backends.cpu.get_cpu_capability()``), else from ``cpu_flags``: 16 with
    AVX-512, 8 with AVX2, 4 otherwise (SSE, NEON)."""
    capability = str(properties.get("cpu_capability") or "").upper()
    flags = properties.get("cpu_flags") or []
    if capability.startswith("AVX512") or (not capability and "avx512f" in flags):
        return 16
    if capability.startswith("AVX2") or (not capability and "avx2" in flags):
        return 8
    return 4


class ProfileError(TraincostUsageError):
    """A profile file that cannot be used: missing, corrupt, incomplete or from a newer traincost."""


@dataclass(frozen=True)
class Curve:
    """Time of one kernel as a function of its work: ``latency_s + work / rate``.

    ``peak`` is the asymptotic rate (FLOP/s for compute, bytes/s for memory), ``latency_s`` the fixed
    seconds per kernel. In the plain form (``rate = peak``) achieved / peak = ``work / (work + latency_s *
    peak)``: half of peak at ``work = latency_s * peak``. Two optional terms, each fitted only where the
    measurements demand it (see :mod:`traincost.calibrate.fitting`):

    * ``k_half`` (compute curves of convolutions): ``rate = peak * depth / (depth + k_half)`` where
      ``depth`` is one dimension of the convolution's implicit GEMM, named by ``depth_kind`` (one of
      :data:`DEPTH_KINDS`; the fit keeps the one that explains the measurements best): by default
      ``C_in / groups * kh * kw`` = ``prod(weight.shape[1:])``, the reduction depth of the forward pass (a
      shallow stem, depth 3 * 7 * 7 = 147, runs far below peak). ``0`` = no term; ``depth=None`` = no term.
    * ``cache_bytes`` / ``cache_peak`` (memory curves): work up to ``cache_bytes`` streams at
      ``cache_peak`` (a CPU's L2/L3), larger work at ``peak``. ``cache_bytes = 0`` = no tier.
    """

    peak: float
    latency_s: float
    cache_bytes: float = 0.0
    cache_peak: float = 0.0
    k_half: float = 0.0
    depth_kind: str = "c_in_kk"

    def __post_init__(self) -> None:
        if not (isinstance(self.peak, (int, float)) and math.isfinite(self.peak) and self.peak > 0):
            raise ValueError(f"Curve.peak must be a positive finite number, got {self.peak!r}")
        if not (isinstance(self.latency_s, (int, float)) and math.isfinite(self.latency_s)
                and self.latency_s >= 0):
            raise ValueError(f"Curve.latency_s must be a non-negative finite number, got {self.latency_s!r}")
        if self.cache_bytes < 0 or (self.cache_bytes > 0 and not self.cache_peak > 0):
            raise ValueError("Curve.cache_bytes > 0 needs a positive cache_peak")
        if not (math.isfinite(self.k_half) and self.k_half >= 0):
            raise ValueError(f"Curve.k_half must be a non-negative finite number, got {self.k_half!r}")
        if self.depth_kind not in DEPTH_KINDS:
            raise ValueError(f"Curve.depth_kind must be one of {', '.join(DEPTH_KINDS)}, got {self.depth_kind!r}")

    def rate(self, work: float, depth: float | None = None) -> float:
        """Asymptotic rate for this work size (``cache_peak`` inside the cache tier), times the depth
        factor ``depth / (depth + k_half)`` when both are given."""
        r = self.cache_peak if (self.cache_bytes > 0 and work <= self.cache_bytes) else self.peak
        if self.k_half > 0 and depth is not None and depth > 0:
            r *= depth / (depth + self.k_half)
        return r

    def time_s(self, work: float, depth: float | None = None) -> float:
        """Seconds for one kernel doing ``work`` (FLOPs or bytes); ``latency_s`` for zero work."""
        if work <= 0:
            return self.latency_s
        return self.latency_s + work / self.rate(work, depth)

    def achieved(self, work: float, depth: float | None = None) -> float:
        """Achieved rate ``work / time_s(work)`` (FLOP/s or bytes/s)."""
        return work / self.time_s(work, depth) if work > 0 else 0.0

    def efficiency(self, work: float, datasheet_peak: float, depth: float | None = None) -> float:
        """Achieved rate as a fraction of ``datasheet_peak`` (same unit as ``peak``)."""
        if datasheet_peak <= 0:
            raise ValueError(f"datasheet_peak must be positive, got {datasheet_peak!r}")
        return self.achieved(work, depth) / datasheet_peak

    def scaled(self, factor: float) -> "Curve":
        """The same curve with every rate multiplied by ``factor`` (latency and depth term unchanged)."""
        return replace(self, peak=self.peak * factor, cache_peak=self.cache_peak * factor)

    def to_dict(self) -> dict[str, float]:
        out = {"peak": float(self.peak), "latency_s": float(self.latency_s)}
        if self.cache_bytes > 0:
            out["cache_bytes"] = float(self.cache_bytes)
            out["cache_peak"] = float(self.cache_peak)
        if self.k_half > 0:
            out["k_half"] = float(self.k_half)
            if self.depth_kind != "c_in_kk":
                out["depth_kind"] = self.depth_kind
        return out


@dataclass(frozen=True)
class DeviceProfile:
    """Everything the predictor knows about one device. Units in names; rates in FLOP/s and bytes/s.

    ``compute[op_class][mode]``: op class in :data:`COMPUTE_CLASSES`, mode in :data:`MATH_MODES` (optionally
    with ``_channels_last``). ``memory``: elementwise kernels (work = bytes read + written);
    ``reduction``: full reductions (work = bytes read). ``kernels[op][mode]`` (optional): memory curves
    of single aten ops (name without ``aten.``; work = bytes as :mod:`traincost.flopmodel.formulas` counts
    them) that run far from the elementwise rate: on a CPU, batch norm and max pooling run 4-20x below it.
    ``dispatch_s``: host seconds of one eager aten op;
    ``dispatch_autocast_s``: the same inside ``torch.autocast`` (per aten op, casts counted as ops);
    ``launch_s``: device time of the smallest kernel back to back (0 on a CPU, where it is part of the op).
    ``optimizer``: ``{opt}_fixed_s``, ``{opt}_per_tensor_s``, ``{opt}_s_per_byte`` for ``sgd`` (momentum) and
    ``adamw``, foreach implementations, per parameter byte of fp32 parameters (wall time of ``step()``).
    ``raw``: the measurements (family -> list of dicts) and ``raw["errors"]``; ``spread``: summary of the
    relative spread of repeats; ``properties``: device facts and how it was measured.
    """

    schema_version: int
    source: str
    name: str
    kind: str
    catalog_key: str | None
    memory_bytes: int
    compute: dict[str, dict[str, Curve]]
    memory: Curve
    reduction: Curve
    dispatch_s: float
    dispatch_autocast_s: float
    launch_s: float
    optimizer: dict[str, float]
    software: dict[str, Any]
    created: str
    properties: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    spread: dict[str, Any] = field(default_factory=dict)
    kernels: dict[str, dict[str, Curve]] = field(default_factory=dict)

    # ---- queries used by the predictor

    def modes(self, op_class: str = "matmul") -> tuple[str, ...]:
        """Math modes with a curve for ``op_class`` (e.g. ``('fp32', 'bf16')`` on a CPU)."""
        return tuple(self.compute.get(op_class, {}))

    def compute_curve(self, op_class: str, mode: str, channels_last: bool = False) -> Curve | None:
        """The compute curve for ``op_class`` in math ``mode``, or ``None`` when the profile has none.

        Fallbacks, in order: a ``_channels_last`` curve when asked and present, else the plain mode;
        ``conv_bwd_input``/``conv_bwd_weight`` -> ``conv_backward`` -> ``conv``; ``attention`` -> ``matmul``.
        Modes never fall back to one another (an unsupported precision is ``None``).
        """
        found = self.compute_curve_key(op_class, mode, channels_last)
        return self.compute[found[0]][found[1]] if found else None

    def compute_curve_key(self, op_class: str, mode: str, channels_last: bool = False) -> tuple[str, str] | None:
        """(class, mode key) of the curve :meth:`compute_curve` returns, or ``None``."""
        chain = {
            "conv_bwd_input": ("conv_bwd_input", "conv_backward", "conv"),
            "conv_bwd_weight": ("conv_bwd_weight", "conv_backward", "conv"),
            "conv_backward": ("conv_backward", "conv"),
            "attention": ("attention", "matmul"),
        }.get(op_class, (op_class,))
        keys = ([mode + CHANNELS_LAST] if channels_last else []) + [mode]
        for cls in chain:
            curves = self.compute.get(cls)
            if not curves:
                continue
            for key in keys:
                if key in curves:
                    return cls, key
        return None

    @property
    def first_touch_s_per_byte(self) -> float:
        """Seconds per byte a CPU adds to the first write of a freshly mapped output (measured by calibrate,
        ``properties["first_touch_s_per_byte"]``); 0 when not measured or not a CPU."""
        return float(self.properties.get("first_touch_s_per_byte", 0.0) or 0.0) if self.kind == "cpu" else 0.0

    def shape_points(self, op_class: str, key: str) -> np.ndarray | None:
        """The measured convolutions of curve (``op_class``, ``key``) as rows (C_in / groups, C_out / groups,
        kh x kw, N x H_out x W_out, measured / curve time) from ``properties["conv_shape_factors"]`` (a
        calibrated profile's), or ``None``; see :func:`shape_factor`."""
        table = self.properties.get("conv_shape_factors") or {}
        rows = table.get(f"{op_class}/{key}")
        return np.asarray(rows, dtype=float) if rows else None

    def gemm_shape_points(self, mode: str, op: str) -> np.ndarray | None:
        """The measured linear-layer GEMMs of the matmul curve of ``mode`` run as aten ``op`` (``"mm"`` or
        ``"addmm"``) as rows (M, K, N, 1, measured / curve time) from ``properties["gemm_shape_factors"]``
        (a calibrated CPU profile's), or ``None``; see :func:`shape_factor`."""
        rows = (self.properties.get("gemm_shape_factors") or {}).get(f"matmul/{mode}/{op}")
        return np.asarray(rows, dtype=float) if rows else None

    def kernel_tail_s(self, op: str, mode: str, channels: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Seconds a channels_last CPU kernel of :data:`TAIL_KERNEL_OPS` adds to its curve for the partial
        SIMD vector ending each of its ``rows`` pixels (N x H x W) when ``channels`` is not a multiple of
        :func:`vector_lanes`: ``rows`` x the measured seconds per row at that channel count
        (``properties["kernel_tail_s_per_row"]["<op>/<mode>_channels_last"]``, keyed by C), or at the largest
        measured C for a C not measured (calibrate measures 4, 8, 12, 24 and 40; older profiles 4 and 8). 0
        where nothing was measured."""
        key = f"{op.removeprefix('aten.')}/{mode}{CHANNELS_LAST}"
        table = (self.properties.get("kernel_tail_s_per_row") or {}).get(key) if self.kind == "cpu" else None
        channels = np.asarray(channels, dtype=float)
        if not table:
            return np.zeros(channels.shape)
        try:
            measured = {int(c): float(v) for c, v in table.items()}
        except (TypeError, ValueError, AttributeError):
            measured = {}
        if not measured or not all(math.isfinite(v) and v >= 0 for v in measured.values()):
            raise ProfileError(f"profile {self.name!r}: properties.kernel_tail_s_per_row.{key} must map channel "
                               f"counts to non-negative seconds, got {table!r}"[:300])
        other = measured[max(measured)]
        lanes = vector_lanes(self.properties)
        per_row = np.array([0.0 if c <= 0 or c % lanes == 0 else measured.get(int(c), other)
                            for c in channels.ravel()]).reshape(channels.shape)
        return per_row * np.asarray(rows, dtype=float)

    def kernel_curve(self, op: str, mode: str, channels_last: bool = False) -> Curve | None:
        """The memory curve of aten ``op`` (``"native_batch_norm"`` or ``"aten.native_batch_norm"``) in math
        ``mode``, or ``None``. Fallbacks: the :data:`FLAT` curve when ``mode`` carries that suffix (a 2-d
        activation) and present, the ``_channels_last`` curve when asked and present, else the plain mode,
        else (a bandwidth-bound op: bytes already scale with the dtype) the fp32 curves."""
        curves = self.kernels.get(op.removeprefix("aten."))
        if not curves:
            return None
        flat = mode.endswith(FLAT)
        keys = [m for base in dict.fromkeys((mode.removesuffix(FLAT), "fp32"))
                for m in ([base + FLAT] if flat else []) + ([base + CHANNELS_LAST] if channels_last else [])
                + [base]]
        return next((curves[k] for k in keys if k in curves), None)

    # ---- (de)serialisation

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("compute", "kernels"):
                value = {cls: {m: c.to_dict() for m, c in modes.items()} for cls, modes in value.items()}
            elif isinstance(value, Curve):
                value = value.to_dict()
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str = "profile") -> "DeviceProfile":
        """Validate and build; ``ProfileError`` naming ``where`` and the problem on anything wrong."""
        return _from_dict(data, where)


def _err(where: str, problem: str) -> ProfileError:
    return ProfileError(f"{where}: {problem}")


def _num(value: Any, name: str, where: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _err(where, f"field {name!r} must be a number, got {type(value).__name__} {value!r}"[:200])
    if value < 0 or (positive and value == 0):
        raise _err(where, f"field {name!r} must be {'positive' if positive else 'non-negative'}, got {value!r}")
    return float(value)


def _curve(value: Any, name: str, where: str) -> Curve:
    if not isinstance(value, dict):
        raise _err(where, f"field {name!r} must be an object with peak and latency_s, got {type(value).__name__}")
    for key in ("peak", "latency_s"):
        if key not in value:
            raise _err(where, f"missing field {name}.{key}")
    peak = _num(value["peak"], f"{name}.peak", where, positive=True)
    lat = _num(value["latency_s"], f"{name}.latency_s", where)
    cache_bytes = _num(value.get("cache_bytes", 0.0), f"{name}.cache_bytes", where)
    cache_peak = _num(value.get("cache_peak", 0.0), f"{name}.cache_peak", where)
    if cache_bytes > 0 and cache_peak <= 0:
        raise _err(where, f"field {name}.cache_bytes needs a positive {name}.cache_peak")
    k_half = _num(value.get("k_half", 0.0), f"{name}.k_half", where)
    depth_kind = value.get("depth_kind", "c_in_kk")
    if depth_kind not in DEPTH_KINDS:
        raise _err(where, f"field {name}.depth_kind must be one of {', '.join(DEPTH_KINDS)}, got {depth_kind!r}")
    return Curve(peak=peak, latency_s=lat, cache_bytes=cache_bytes, cache_peak=cache_peak, k_half=k_half,
                 depth_kind=depth_kind)


_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "schema_version": int, "source": str, "name": str, "kind": str, "catalog_key": (str, type(None)),
    "memory_bytes": int, "compute": dict, "memory": dict, "reduction": dict, "dispatch_s": (int, float),
    "dispatch_autocast_s": (int, float), "launch_s": (int, float), "optimizer": dict, "software": dict,
    "created": str,
}


_OPTIONAL: dict[str, type] = {"properties": dict, "raw": dict, "spread": dict, "kernels": dict}


def _from_dict(data: Any, where: str) -> DeviceProfile:
    if not isinstance(data, dict):
        raise _err(where, f"a profile must be a JSON object, got {type(data).__name__}")
    version = data.get("schema_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise _err(where, f"schema version {version} is newer than this traincost understands "
                          f"({SCHEMA_VERSION}); upgrade traincost")
    for name, kind in _REQUIRED.items():
        if name not in data:
            raise _err(where, f"missing field {name!r}")
        value = data[name]
        if isinstance(value, bool) or not isinstance(value, kind):
            want = kind.__name__ if isinstance(kind, type) else " or ".join(
                "null" if k is type(None) else k.__name__ for k in kind)
            raise _err(where, f"field {name!r} must be {want}, got {type(value).__name__}")
    for name, kind in _OPTIONAL.items():
        if name in data and not isinstance(data[name], kind):
            raise _err(where, f"field {name!r} must be {kind.__name__}, got {type(data[name]).__name__}")
    if version < 1:
        raise _err(where, f"schema version must be >= 1, got {version}")
    if data["source"] not in SOURCES:
        raise _err(where, f"field 'source' must be one of {', '.join(SOURCES)}, got {data['source']!r}")
    if data["kind"] not in KINDS:
        raise _err(where, f"field 'kind' must be one of {', '.join(KINDS)}, got {data['kind']!r}")
    if data["memory_bytes"] <= 0:
        raise _err(where, f"field 'memory_bytes' must be positive, got {data['memory_bytes']}")
    compute: dict[str, dict[str, Curve]] = {}
    for cls, modes in data["compute"].items():
        if not isinstance(modes, dict):
            raise _err(where, f"field compute.{cls} must be an object of math mode -> curve")
        compute[cls] = {m: _curve(c, f"compute.{cls}.{m}", where) for m, c in modes.items()}
    if not compute.get("matmul"):
        raise _err(where, "missing field 'compute.matmul' (at least one matmul curve is needed)")
    kernels: dict[str, dict[str, Curve]] = {}
    for op, modes in data.get("kernels", {}).items():
        if not isinstance(modes, dict):
            raise _err(where, f"field kernels.{op} must be an object of math mode -> curve")
        kernels[op] = {m: _curve(c, f"kernels.{op}.{m}", where) for m, c in modes.items()}
    optimizer = {}
    for key, value in data["optimizer"].items():
        optimizer[key] = _num(value, f"optimizer.{key}", where)
    return DeviceProfile(
        schema_version=int(version),
        source=data["source"],
        name=data["name"],
        kind=data["kind"],
        catalog_key=data["catalog_key"],
        memory_bytes=int(data["memory_bytes"]),
        compute=compute,
        memory=_curve(data["memory"], "memory", where),
        reduction=_curve(data["reduction"], "reduction", where),
        dispatch_s=_num(data["dispatch_s"], "dispatch_s", where),
        dispatch_autocast_s=_num(data["dispatch_autocast_s"], "dispatch_autocast_s", where),
        launch_s=_num(data["launch_s"], "launch_s", where),
        optimizer=optimizer,
        software=dict(data["software"]),
        created=data["created"],
        properties=dict(data.get("properties", {})),
        raw=dict(data.get("raw", {})),
        spread=dict(data.get("spread", {})),
        kernels=kernels,
    )


def _json_default(value: Any) -> Any:
    try:  # numpy scalars and the like
        return value.item()
    except AttributeError:
        return str(value)


def save_profile(profile: DeviceProfile, path: str | os.PathLike[str]) -> Path:
    """Write ``profile`` as indented JSON (atomically: a temporary file renamed over ``path``)."""
    path = Path(path)
    text = json.dumps(profile.to_dict(), indent=1, default=_json_default, allow_nan=False) + "\n"
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise TraincostError(f"{path}: cannot write profile: {exc.strerror or exc}") from None
    return path


def load_profile(path: str | os.PathLike[str]) -> DeviceProfile:
    """Read and validate a profile JSON file.

    Raises :class:`ProfileError` (exit code 2) naming the file and the problem when it is missing,
    is not valid JSON, lacks a field, has a field of the wrong type, or has a newer schema version.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _err(str(path), "no such profile file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise _err(str(path), f"cannot read profile: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _err(str(path), f"not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})") from None
    return _from_dict(data, str(path))


def summarize_spread(rel_ranges: list[float]) -> dict[str, float]:
    """Median / p90 / max of per-point relative spreads ``(max - min) / median`` of repeats."""
    if not rel_ranges:
        return {"points": 0}
    xs = sorted(rel_ranges)
    p90 = xs[min(len(xs) - 1, int(math.ceil(0.9 * len(xs))) - 1)]
    return {"points": len(xs), "median_rel_range": float(statistics.median(xs)), "p90_rel_range": p90,
            "max_rel_range": xs[-1]}
