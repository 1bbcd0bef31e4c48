"""The op table: a walked step's ops as arrays, and each op's device time on a profile.

:meth:`OpTable.device_times` is the one pricer of device time: a roofline with achieved rates per op
(``max(compute curve time, memory curve time, launch_s)``), the compute curve chosen by op class and math
mode, convolution backward split into its two passes, kernel curves and CPU tails where a profile has them.
A single op is priced as a one-row table. A fused recurrent op (``traincost.rnn``) is priced as the sum of
the ops its plan for the profile's kind lists (:mod:`traincost.flopmodel.rnnplan`), each as a row of a
table of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Any, Sequence

import numpy as np

from traincost.hardware.profile import (
    DEPTH_KINDS,
    FLAT,
    TAIL_KERNEL_OPS,
    Curve,
    DeviceProfile,
    shape_factor,
)
from traincost.pricing.geometry import (
    _FLAT_KERNEL_OPS,
    _GEMM_OPS,
    _compute_class,
    _depth,
    activation_channels,
    activation_pixels,
    conv_depths,
    conv_shape,
    fresh_output_bytes,
    gemm_min_dim,
    gemm_mkn,
    math_mode,
)

_TOP_LEVEL = "(model)"


PHASES = ("forward", "backward", "optimizer")


_PHASE_CODE = {p: i for i, p in enumerate(PHASES)}


#: Compute classes priced as the sum of the two passes of ``convolution_backward`` when a profile has both
#: curves (each on half the work, with its own GEMM depth); else on the ``conv_backward`` curve.
_SPLIT_BACKWARD = ("conv_bwd_input", "conv_bwd_weight")


@dataclass(frozen=True)
class OpTable:
    """A walked step as per-op arrays, built once and priced on any number of devices.

    ``compute_groups`` maps (curve family, math mode) to the indices of the ops priced on that compute
    curve; ``reduction`` marks ops on the reduction curve; ``kernel`` ops run on the device (not free,
    not host-only); ``opt_region`` marks the ops of ``optimizer.step()`` and ``opt_weight`` their share
    of its host cost; ``sync_index`` is the op before which the host waits for the device (fp16).
    """

    n: int
    modules: tuple[str, ...]
    module_index: np.ndarray
    flops: np.ndarray
    bytes: np.ndarray
    depth: np.ndarray
    depths: dict[str, np.ndarray]
    reduction: np.ndarray
    kernel: np.ndarray
    forward: np.ndarray
    phase: np.ndarray
    opt_region: np.ndarray
    opt_weight: np.ndarray
    fresh_bytes: np.ndarray
    pixels: np.ndarray
    conv_shapes: np.ndarray
    gemm_shapes: np.ndarray
    gemm_op: np.ndarray
    compute_groups: dict[tuple[str, str], np.ndarray]
    op_groups: dict[str, dict[str, np.ndarray]]
    sync_index: int | None
    param_tensors: int
    param_bytes: int
    working_set_bytes: int
    precision: str
    channels_last: bool
    optimizer: str
    batch_size: int
    rnn_plans: dict[int, dict[str, tuple]] = field(default_factory=dict)
    _plan_tables: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_records(cls, records: Sequence[Any], *, precision: str = "fp32", channels_last: bool = False,
                     optimizer: str = "sgd", batch_size: int = 1, param_bytes: int | None = None,
                     working_set_bytes: int = 0) -> "OpTable":
        """Arrays from OpRecords (``traincost.count(...).walk.records``) or look-alike objects."""
        n = len(records)
        modules: dict[str, int] = {}
        module_index = np.empty(n, dtype=np.int64)
        flops = np.zeros(n)
        nbytes = np.zeros(n)
        depth = np.zeros(n)
        depths = {kind: np.zeros(n) for kind in DEPTH_KINDS}
        reduction = np.zeros(n, dtype=bool)
        kernel = np.zeros(n, dtype=bool)
        forward = np.zeros(n, dtype=bool)
        phase = np.zeros(n, dtype=np.int8)
        opt_region = np.zeros(n, dtype=bool)
        opt_weight = np.zeros(n)
        fresh_bytes = np.zeros(n)
        pixels = np.zeros(n)
        conv_shapes = np.zeros((n, 4))
        gemm_shapes = np.zeros((n, 4))
        gemm_op = np.zeros(n, dtype=np.int8)
        groups: dict[tuple[str, str], list[int]] = {}
        op_groups: dict[str, dict[str, list[int]]] = {}
        region_start = None
        for i, r in enumerate(records):
            if r.phase == "optimizer" and region_start is None and r.op == "profiler._record_function_enter_new":
                region_start = i
        if region_start is None:  # no marker: every optimizer-phase op belongs to the step
            first = next((i for i, r in enumerate(records) if r.phase == "optimizer"), None)
            region_start = first
        param_tensors = 0
        rnn_plans: dict[int, dict[str, tuple]] = {}
        for i, r in enumerate(records):
            plans = (getattr(r, "extra", None) or {}).get("plans")
            if plans:
                rnn_plans[i] = plans
            name = r.module or _TOP_LEVEL
            module_index[i] = modules.setdefault(name, len(modules))
            flops[i] = r.flops
            nbytes[i] = r.bytes_read + r.bytes_written
            forward[i] = r.phase == "forward"
            phase[i] = _PHASE_CODE.get(r.phase, 2)
            kernel[i] = r.op_class != "free" and not r.host_only
            reduction[i] = r.op_class == "reduction"
            if region_start is not None and i >= region_start and r.phase == "optimizer":
                opt_region[i] = True
                opt_weight[i] = float(r.n_tensors) if r.op_class == "optimizer" else 1.0
                if r.op_class == "optimizer":
                    param_tensors = max(param_tensors, int(r.n_tensors))
            if kernel[i]:
                fresh_bytes[i] = fresh_output_bytes(r)
                depths["channels"][i] = activation_channels(r.input_shapes)
                pixels[i] = activation_pixels(r.input_shapes)
            if kernel[i] and nbytes[i] > 0:
                op = r.op.removeprefix("aten.")
                mode = math_mode(r.input_dtypes, precision)
                if op in _FLAT_KERNEL_OPS and r.input_shapes and len(r.input_shapes[0]) == 2:
                    mode += FLAT
                op_groups.setdefault(op, {}).setdefault(mode, []).append(i)
            if not kernel[i] or r.flops <= 0:
                continue
            cc = _compute_class(r.op, r.op_class, r.input_shapes, r.output_shapes)
            if cc is None:
                continue
            depth[i] = _depth(r.op_class, r.op, r.input_shapes)
            if r.op_class == "conv":
                for kind, value in conv_depths(r.op, r.input_shapes, r.output_shapes).items():
                    depths[kind][i] = value
                conv_shapes[i] = conv_shape(r.op, r.input_shapes, r.output_shapes)
            elif r.op_class == "matmul":
                depths["min_mnk"][i] = gemm_min_dim(r.op, r.input_shapes)
                mkn = gemm_mkn(r.op, r.input_shapes)
                if mkn[0] > 0:
                    gemm_shapes[i] = (*mkn, 1.0)
                    gemm_op[i] = _GEMM_OPS[r.op.removeprefix("aten.").split(".")[0]]
            groups.setdefault((cc, math_mode(r.input_dtypes, precision)), []).append(i)
        sync_index = region_start if precision == "fp16" and region_start is not None else None
        if param_bytes is None:
            param_bytes = int(max((nbytes[i] for i in range(n) if opt_region[i] and kernel[i]), default=0) / 2)
        return cls(n=n, modules=tuple(modules), module_index=module_index, flops=flops, bytes=nbytes,
                   depth=depth, depths=depths, reduction=reduction, kernel=kernel, forward=forward, phase=phase, opt_region=opt_region,
                   opt_weight=opt_weight, fresh_bytes=fresh_bytes, pixels=pixels, conv_shapes=conv_shapes,
                   gemm_shapes=gemm_shapes, gemm_op=gemm_op,
                   compute_groups={k: np.asarray(v, dtype=np.int64) for k, v in groups.items()},
                   op_groups={op: {m: np.asarray(v, dtype=np.int64) for m, v in by_mode.items()}
                              for op, by_mode in op_groups.items()},
                   sync_index=sync_index, param_tensors=param_tensors, param_bytes=int(param_bytes),
                   working_set_bytes=int(working_set_bytes),
                   precision=precision, channels_last=channels_last, optimizer=optimizer, batch_size=batch_size,
                   rnn_plans=rnn_plans)

    @classmethod
    def from_walk(cls, walk: Any) -> "OpTable":
        cfg = walk.config
        return cls.from_records(walk.records, precision=cfg.precision, channels_last=cfg.channels_last,
                                optimizer=cfg.optimizer, batch_size=cfg.batch_size, param_bytes=walk.param_bytes,
                                working_set_bytes=walk.memory.peak_bytes)

    # ---- pricing on one profile

    def _stream_curve(self, curve: Curve) -> Curve:
        """The memory curve as a training step sees it: the cache tier (measured on one tensor reused in a
        hot loop) only when the whole step's working set (the walk's peak memory) fits in that cache;
        otherwise an op's operands were evicted since they were produced (backward reads activations saved
        a whole forward pass earlier) and stream at the DRAM rate."""
        if curve.cache_bytes > 0 and self.working_set_bytes > curve.cache_bytes:
            return replace(curve, cache_bytes=0.0, cache_peak=0.0)
        return curve

    def device_times(self, profile: DeviceProfile) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(device seconds, compute-curve seconds, memory-curve seconds) per op on ``profile``.

        ``device = max(compute, memory, launch_s)`` for kernel ops, 0 for free and host-only ops (module doc;
        one op alone: :func:`price_op`).
        """
        compute = np.zeros(self.n)
        for (cc, mode), idx in self.compute_groups.items():
            if mode != "fp32" and profile.compute_curve(cc, mode, self.channels_last) is None:
                mode = "fp32"  # e.g. a float64 op: price at fp32
            compute[idx] = self._conv_or_gemm_time(profile, cc, mode, idx)
        memory = np.zeros(self.n)
        has_bytes = self.kernel & (self.bytes > 0)
        mem_idx = np.flatnonzero(has_bytes & ~self.reduction)
        red_idx = np.flatnonzero(has_bytes & self.reduction)
        memory[mem_idx] = curve_time(self._stream_curve(profile.memory), self.bytes[mem_idx])
        memory[red_idx] = curve_time(self._stream_curve(profile.reduction), self.bytes[red_idx])
        for op in profile.kernels:  # ops with a memory curve of their own
            for mode, idx in self.op_groups.get(op, {}).items():
                curve = profile.kernel_curve(op, mode, self.channels_last)
                if curve is not None:  # never faster than the plain stream (a curve measured in cache only)
                    timed = curve_time(self._stream_curve(curve), self.bytes[idx], self.depths[curve.depth_kind][idx])
                    if self.channels_last and op in TAIL_KERNEL_OPS:  # partial SIMD vectors per pixel
                        timed = timed + profile.kernel_tail_s(op, mode, self.depths["channels"][idx], self.pixels[idx])
                    memory[idx] = np.maximum(memory[idx], timed)
        if profile.first_touch_s_per_byte > 0:  # a CPU's newly mapped outputs: page faults on the first write
            memory = memory + profile.first_touch_s_per_byte * self.fresh_bytes
        device = np.where(self.kernel, np.maximum(np.maximum(compute, memory), profile.launch_s), 0.0)
        for i in self.rnn_plans:
            device[i], compute[i], memory[i] = self._plan_times(i, profile)
        return device, compute, memory

    def plan_table(self, i: int, profile: DeviceProfile) -> tuple["OpTable", np.ndarray] | None:
        """(table, runs per row) of the ops fused op ``i`` runs on ``profile``'s kind, or None without a plan.

        cuDNN runs float32 GEMMs in TF32 when the profile's convolutions do (``torch.backends.cudnn.allow_tf32``
        governs both)."""
        ops = self.rnn_plans[i].get(profile.kind)
        if ops is None:
            return None
        precision = self.precision
        if profile.kind == "cuda" and precision == "fp32" and profile.properties.get("conv_fp32_uses_tf32"):
            precision = "tf32"
        key = (i, profile.kind, precision)
        if key not in self._plan_tables:
            records = [SimpleNamespace(phase="forward", module=None, op=o.op, op_class=o.op_class, flops=o.flops,
                                       bytes_read=o.bytes_read, bytes_written=o.bytes_written,
                                       input_shapes=o.input_shapes, input_dtypes=(o.dtype,),
                                       output_shapes=o.output_shapes, output_dtypes=(o.dtype,) * len(o.output_shapes),
                                       n_tensors=1, host_only=False) for o in ops]
            table = OpTable.from_records(records, precision=precision, channels_last=False,
                                         working_set_bytes=self.working_set_bytes)
            self._plan_tables[key] = (table, np.array([float(o.count) for o in ops]))
        return self._plan_tables[key]

    def _plan_times(self, i: int, profile: DeviceProfile) -> tuple[float, float, float]:
        """(device, compute, memory) seconds of fused op ``i``: its plan's ops, each as many times as it runs;
        compute holds the compute-bound ops' time, memory the rest."""
        found = self.plan_table(i, profile)
        if found is None:
            return 0.0, 0.0, 0.0
        table, runs = found
        device, compute, memory = table.device_times(profile)
        bound = (compute >= memory) & (compute > 0)
        return (float(runs @ device), float(runs @ np.where(bound, device, 0.0)),
                float(runs @ np.where(bound, 0.0, device)))

    def _conv_or_gemm_time(self, profile: DeviceProfile, cc: str, mode: str, idx: np.ndarray) -> np.ndarray:
        """Compute-curve seconds of ops ``idx`` (class ``cc``, math ``mode``); 0 without a curve.

        A ``convolution_backward`` computing both gradients is the sum of its two passes, each on its own
        curve (``conv_bwd_input``, ``conv_bwd_weight``) with half the work, when the profile has both;
        otherwise :meth:`DeviceProfile.compute_curve`'s chain. Each curve's depth term reads the GEMM
        dimension it was fitted on (``Curve.depth_kind``); a conv curve with measured shapes
        (:meth:`DeviceProfile.shape_points`) is corrected by their factor near the op's shape
        (:func:`traincost.hardware.profile.shape_factor`)."""
        cl = self.channels_last
        flops = self.flops[idx]

        def timed(cls: str, work: np.ndarray) -> np.ndarray:
            found = profile.compute_curve_key(cls, mode, cl)
            if found is None:
                return np.zeros(len(idx))
            curve = profile.compute[found[0]][found[1]]
            t = curve_time(curve, work, self.depths[curve.depth_kind][idx])
            if cls == "matmul":
                return t * self._gemm_factor(profile, found[1], idx)
            points = profile.shape_points(*found) if cls.startswith("conv") else None
            return t * shape_factor(points, self.conv_shapes[idx]) if points is not None else t

        if cc == "conv_backward" and all(mode in profile.compute.get(c, {}) for c in _SPLIT_BACKWARD):
            return timed(_SPLIT_BACKWARD[0], flops / 2) + timed(_SPLIT_BACKWARD[1], flops / 2)
        return timed(cc, flops)

    def _gemm_factor(self, profile: DeviceProfile, key: str, idx: np.ndarray) -> np.ndarray:
        """Linear-layer shape factors of matmul ops ``idx`` on the curve ``key``: each ``mm`` / ``addmm`` near
        the profile's measured linear-layer GEMMs of the same op takes their measured / curve time
        (:meth:`DeviceProfile.gemm_shape_points`, :func:`traincost.hardware.profile.shape_factor`); 1 otherwise."""
        factor = np.ones(len(idx))
        codes = self.gemm_op[idx]
        for op, code in _GEMM_OPS.items():
            sel = codes == code
            points = profile.gemm_shape_points(key, op) if sel.any() else None
            if points is not None:
                factor[sel] = shape_factor(points, self.gemm_shapes[idx[sel]])
        return factor


#: Input dtype and step precision that make :func:`~traincost.pricing.geometry.math_mode` give each math mode.
_MODE_DTYPE = {"fp32": ("float32", "fp32"), "tf32": ("float32", "tf32"), "bf16": ("bfloat16", "bf16"),
               "fp16": ("float16", "fp16")}


def price_op(profile: DeviceProfile, op_class: str, mode: str = "fp32", flops: float = 0.0, bytes_moved: float = 0.0,
             *, op: str = "", input_shapes: Sequence[tuple[int, ...]] = (),
             output_shapes: Sequence[tuple[int, ...]] = (), channels_last: bool = False,
             working_set_bytes: int = 0) -> float:
    """Device seconds of one op on ``profile``: a one-row :class:`OpTable` priced by :meth:`OpTable.device_times`.

    ``op_class`` is the walk's class (``"matmul"``, ``"conv"``, ``"norm"``, ``"elementwise"``, ``"free"``...),
    ``mode`` the math mode of its inputs (``fp32``, ``tf32``, ``bf16``, ``fp16``), ``bytes_moved`` = bytes read
    + written. As in a walked step, the aten ``op`` name and its ``input_shapes`` / ``output_shapes`` decide the
    compute curve (which pass of a ``convolution_backward``), the depth terms, shape factors, kernel curves
    and the channels_last tail; ``working_set_bytes`` (the step's peak memory) whether a cache tier applies.
    """
    if mode not in _MODE_DTYPE:
        raise ValueError(f"mode must be one of {', '.join(_MODE_DTYPE)}, got {mode!r}")
    dtype, precision = _MODE_DTYPE[mode]
    record = SimpleNamespace(phase="forward", module=None, op=op, op_class=op_class, flops=flops,
                             bytes_read=bytes_moved, bytes_written=0, input_shapes=tuple(input_shapes),
                             input_dtypes=(dtype,), output_shapes=tuple(output_shapes),
                             output_dtypes=(dtype,) * len(output_shapes), n_tensors=0, host_only=False)
    table = OpTable.from_records([record], precision=precision, channels_last=channels_last,
                                 working_set_bytes=working_set_bytes)
    return float(table.device_times(profile)[0][0])


def curve_time(curve: Curve, work: np.ndarray, depth: np.ndarray | None = None) -> np.ndarray:
    """:meth:`Curve.time_s` over arrays of work (and conv depths; 0 = no depth term)."""
    work = np.asarray(work, dtype=float)
    if curve.cache_bytes > 0:
        rate = np.where(work <= curve.cache_bytes, curve.cache_peak, curve.peak)
    else:
        rate = np.full(work.shape, float(curve.peak))
    if curve.k_half > 0 and depth is not None:
        d = np.asarray(depth, dtype=float)
        rate = rate * np.where(d > 0, d / np.where(d > 0, d + curve.k_half, 1.0), 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(work > 0, curve.latency_s + work / rate, curve.latency_s)
