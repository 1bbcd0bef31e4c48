"""The predictor: a walked training step x a device profile -> time, memory and cost (an :class:`Estimate`).

The model (DESIGN.md, "The cost model")
---------------------------------------
**Per op, on the device** (:meth:`OpTable.device_times`): a roofline with achieved rates, exactly
:meth:`traincost.devices.DeviceProfile.device_time_s`::

    t_device = max(compute curve time(flops, depth), memory curve time(bytes), launch_s)

Every curve time already holds the curve's own per-kernel latency (``latency_s + work / rate``), which is
how the curves were fitted (CUDA-event time of one kernel), so ``launch_s`` is a floor, not an extra term.
The compute curve is chosen by op class and math mode:

* ``matmul`` -> ``matmul``; ``attention`` -> the matmul curves of its dtype;
* ``aten.convolution`` -> ``conv`` with ``depth = prod(weight.shape[1:])`` (``C_in / groups x kh x kw``,
  the reduction depth of its implicit GEMM) for the depth term of conv curves;
  ``aten.convolution_backward`` -> ``conv_bwd_input`` plus ``conv_bwd_weight``, each on half the work (= 2
  x forward FLOPs) when it computes both and the profile has both curves (else ``conv_backward``), one of
  them when it computes one (the first conv of a network has no grad input). A conv curve's depth term
  reads the GEMM dimension its fit chose (``Curve.depth_kind``, :func:`conv_depths`): e.g. a CPU's weight
  gradient over a 2x2 map at batch 8 reduces over 32 positions only and runs far below peak; a matmul
  curve fitted with a ``min_mnk`` term reads the smallest GEMM dimension (:func:`gemm_min_dim`: a CPU
  multiplies the 16-row activations of a linear layer at batch 16 far below its peak);
* math mode = the op's first floating input dtype: bfloat16 -> ``bf16``, float16 -> ``fp16``, float32 ->
  ``tf32`` for precision tf32, else ``fp32`` (on CUDA PyTorch runs fp32 convolutions as TF32 by default:
  a calibrated profile's conv ``fp32`` curve was measured that way, a datasheet profile scales it so);
  ``*_channels_last`` curves for a channels_last step where the profile has them.

Ops of other classes (elementwise, copy, norm, pool, softmax, loss, embedding, optimizer, unpriced) are
priced by their bytes on the memory curve (``reduction`` on the reduction curve), or on the op's own
curve where the profile has one (``DeviceProfile.kernels``: a CPU's batch norm and max pooling); ``free`` ops (views) and
``host_only`` ops (the optimizers' CPU step counters) run no kernel: no device time.

Memory curves have a cache tier (a faster rate below ``cache_bytes``), measured on one tensor reused in a
hot loop; a training step keeps it only when its whole working set (the walk's peak memory) fits in that
cache, else operands stream at the DRAM rate (backward reads activations saved a whole forward pass ago).

**Per op, on the host**: the profile's ``dispatch_s`` is one bare ``torch.add`` in a Python loop; an op of a
training step costs more: forward ops ``dispatch_s x HOST_OP_RATIO["forward"]`` (``dispatch_autocast_s x``
under bf16/fp16 autocast: ``nn.Module.__call__``, the functional API, autograd's graph recording), backward
ops ``dispatch_s x HOST_OP_RATIO["backward"]`` (the autograd engine), free ops included (they are real
eager dispatches); ``zero_grad`` adds ``ZERO_GRAD_PER_TENSOR_RATIO x dispatch_s`` per parameter tensor.
The ratios are measured per host by ``benchmarks/host_overhead.py`` (tiny models whose step is host time) and
kept in the profile (``properties["host_op_ratio"]``, :func:`host_op_ratios`); a profile without them uses the
AMD EPYC's. They do not transfer: the Intel Xeon's bare dispatch is 0.66x the AMD's, a training op's ~0.97x.

**Optimizer step.** The profile's optimizer constants were measured on exactly this (``step()`` of the
foreach optimizer, wall time) and hold what per-op pricing misses (the Python per-parameter loops, e.g.
Adam's bias corrections): the ops from ``optimizer.step()``'s ``record_function`` marker to its end cost
``{opt}_fixed_s + {opt}_per_tensor_s x tensors`` of host time in all (spread over them by tensors
touched); their device time is the per-op memory curve on a GPU, and ``{opt}_s_per_byte x parameter
bytes`` on a CPU, where the wall time it was fitted on is the sum of host and device
(``{opt}_s_per_byte_dram``, the rate of lists that stream from DRAM, when the step's working set exceeds
the memory curve's cache tier). ``adam`` uses the
``adamw`` constants; a profile without constants for the optimizer prices its ops one by one.

**Fresh memory (CPU).** An op output of at least 32 MiB (:data:`traincost.devices.FIRST_TOUCH_MIN_BYTES`) is
mapped afresh by glibc on every call and its first write page-faults: a CPU profile's
``properties["first_touch_s_per_byte"]`` (measured: a fresh ``clone`` against ``copy_`` into an existing
tensor, ~0.3 ms per MiB on this VM) times those bytes is added to the op's memory time (and to the
optimizer's per-byte time: Adam's ``sqrt`` of a large moment is such an output).
Under fp16 the GradScaler reads ``found_inf`` back before the step: the host waits for the device there.

**Timelines.** A GPU (profile kind ``cuda``) runs kernels asynchronously; op by op::

    host_t += t_host;  start = max(device_t, host_t);  device_t = start + t_device

and the step takes ``max(host_t, device_t)``: host-bound at small batch, device-bound at large batch. A CPU
(kind ``cpu``) runs ops one after another: the step is the sum of host and device time of every op
(curve latencies on a CPU exclude the dispatch, see :mod:`traincost.devices`).

**Bound.** Each op's share of the step is split into exposed host time (the device idle, waiting for the
host: all host time on a CPU), compute time (ops whose compute term is the max) and memory time (the
others, latency floors included); a layer's and the step's bound is the largest of the three.

**Memory.** ``peak_memory_bytes`` = the walk's peak (comparable to ``torch.cuda.max_memory_allocated``) +
the profile's ``properties["allocator_overhead_bytes"]`` (cuBLAS workspaces: 65 MiB measured on the H200;
0 where absent). ``fits`` = peak + :data:`CUDA_CONTEXT_BYTES` (on GPUs; the CUDA context lives outside the
allocator) <= the device memory. ``max_batch_size``: exact (a few more walks,
:func:`traincost.flopmodel.count.max_batch_size`) when the batch does not fit; when it fits, a linear
extrapolation from the one walk's memory report (``max_batch_size_exact = False``; 0-7 % below the exact
search on torchvision models), to keep predict fast. ``compare`` extrapolates for every device.

**Multi-GPU.** ``gpus=G`` (on ``nodes`` servers) is DDP data parallel: per-GPU batch = ``batch_size``, global
batch = ``G x batch_size``, step = the single-GPU step (after any learned correction) + the gradient all-reduce
not hidden behind backward (:func:`data_parallel`, the model in :mod:`traincost.parallel`); the bill x G.
``Estimate.allreduce_ms``, ``exposed_comm_ms``, ``scaling_efficiency`` (1.0, 0 ms on one GPU).

No learned correction yet: ``Estimate.interval`` is ``None`` (the residual issue fills it).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from traincost.cost import PriceQuote, check_run, plan_run, prices_for_profile, quote, select_provider
from traincost.devices import (
    CONV_DEPTH_KINDS,
    DEPTH_KINDS,
    FIRST_TOUCH_MIN_BYTES,
    FLAT,
    TAIL_KERNEL_OPS,
    Curve,
    DeviceProfile,
    ProfileError,
    cpu_model,
    profile_for,
    shape_factor,
)
from traincost.errors import TraincostUsageError
from traincost.parallel import check_parallel

__all__ = ["CUDA_CONTEXT_BYTES", "HOST_OP_RATIO", "ZERO_GRAD_PER_TENSOR_RATIO", "Estimate", "OpTable", "Pricing",
           "Timeline", "breakdown", "compare", "curve_time", "data_parallel", "math_mode", "predict", "price",
           "resolve_device", "simulate", "with_provider"]

#: Device memory a CUDA process holds outside the caching allocator (context, kernels, cuDNN/cuBLAS
#: handles): about 500 MiB on recent GPUs and drivers. Counted against the device memory for ``fits``.
CUDA_CONTEXT_BYTES = 500 * 2**20

#: Host seconds of one recorded op of a training step, as a multiple of the profile's ``dispatch_s`` (one
#: bare ``torch.add`` in a loop), by phase: a forward op also pays ``nn.Module.__call__``, the functional
#: API and autograd's graph recording; a backward op the autograd engine. Measured by
#: ``benchmarks/host_overhead.py`` on tiny fc models (kernels of a few hundred bytes: the step is host time)
#: on the 2-core AMD EPYC of the shipped CPU profile: forward 4.27 (3.75-5.17), backward 2.08 (1.98-2.17).
#: The default for a profile whose host was not measured (:func:`host_op_ratios`; the Intel Xeon's: 6.26,
#: 3.33); on a GPU host an assumption (its dispatch_s includes the CUDA launch).
HOST_OP_RATIO = {"forward": 4.3, "backward": 2.1}
#: ``optimizer.zero_grad(set_to_none=True)`` after the step: host seconds per parameter tensor, as a multiple
#: of ``dispatch_s`` (same script: 0.79, range 0.57-2.30).
ZERO_GRAD_PER_TENSOR_RATIO = 0.8

_AUTOCAST = ("bf16", "fp16")
_MODE_OF_DTYPE = {"bfloat16": "bf16", "float16": "fp16"}
_FLOAT_DTYPES = ("float32", "float64", "bfloat16", "float16")
_TOP_LEVEL = "(model)"
PHASES = ("forward", "backward", "optimizer")
_PHASE_CODE = {p: i for i, p in enumerate(PHASES)}
BOUNDS = ("compute", "memory", "host")


def math_mode(dtypes: Iterable[str], precision: str) -> str:
    """Math mode of an op from its input dtypes: the first floating dtype decides (see module doc)."""
    for d in dtypes:
        if d in _MODE_OF_DTYPE:
            return _MODE_OF_DTYPE[d]
        if d in ("float32", "float64"):
            return "tf32" if precision == "tf32" else "fp32"
    return "tf32" if precision == "tf32" else "fp32"


def _compute_class(op: str, op_class: str, input_shapes: Sequence[tuple[int, ...]],
                   output_shapes: Sequence[tuple[int, ...]]) -> str | None:
    """The profile's compute curve family for this op, or None for ops priced by bytes."""
    if op_class in ("matmul", "attention"):
        return op_class
    if op_class != "conv":
        return None
    if "backward" not in op:
        return "conv"
    if len(input_shapes) < 3:
        return "conv_backward"
    x_shape, w_shape = input_shapes[1], input_shapes[2]
    outs = list(output_shapes)
    grad_in = bool(outs) and outs[0] == x_shape
    rest = outs[1:] if grad_in else outs
    grad_w = bool(rest) and rest[0] == w_shape
    if grad_in and grad_w:
        return "conv_backward"
    if grad_w:
        return "conv_bwd_weight"
    if grad_in:
        return "conv_bwd_input"
    return "conv_backward"


def _depth(op_class: str, op: str, input_shapes: Sequence[tuple[int, ...]]) -> float:
    """The depth :meth:`DeviceProfile.device_time_s` passes to the op's curve: for a convolution the
    reduction depth of its forward implicit GEMM, ``prod(weight.shape[1:])`` (``C_in / groups x kh x kw``);
    for a matrix multiply the smallest of M, N, K (:func:`gemm_min_dim`); for a norm or pooling op its
    channels (:func:`activation_channels`, read by a kernel curve fitted on them); 0 for other ops."""
    if op_class == "matmul":
        return gemm_min_dim(op, input_shapes)
    if op_class in ("norm", "pool"):
        return activation_channels(input_shapes)
    if op_class != "conv":
        return 0.0
    w = input_shapes[2] if "backward" in op and len(input_shapes) >= 3 else (
        input_shapes[1] if len(input_shapes) >= 2 else ())
    return float(math.prod(w[1:])) if len(w) >= 2 else 0.0


def conv_depths(op: str, input_shapes: Sequence[tuple[int, ...]],
                output_shapes: Sequence[tuple[int, ...]]) -> dict[str, float]:
    """The GEMM dimensions of a convolution (``aten.convolution`` or ``aten.convolution_backward``) that a
    conv curve's depth term may use (:data:`traincost.devices.CONV_DEPTH_KINDS`, ``Curve.depth_kind``):
    ``c_in_kk`` = C_in / groups x kh x kw, ``c_out_kk`` = C_out / groups x kh x kw, ``positions`` = N x
    H_out x W_out, ``min_c_in_kk_positions``, ``min_channels`` = min(C_in, C_out) / groups. Zeros (no depth
    term) when the shapes are not a conv's."""
    zero = dict.fromkeys(CONV_DEPTH_KINDS, 0.0)
    try:
        if "backward" in op:
            out, x, w = input_shapes[0], input_shapes[1], input_shapes[2]
        else:
            x, w, out = input_shapes[0], input_shapes[1], output_shapes[0]
        groups = max(1, x[1] // w[1]) if w[1] else 1
        c_in_kk = float(math.prod(w[1:]))
        positions = float(out[0] * math.prod(out[2:]))
        depths = {"c_in_kk": c_in_kk, "c_out_kk": w[0] / groups * math.prod(w[2:]), "positions": positions,
                  "min_c_in_kk_positions": min(c_in_kk, positions), "min_channels": min(w[1], w[0] / groups)}
    except (IndexError, TypeError, ZeroDivisionError):
        return zero
    return {k: float(v) for k, v in depths.items()} if len(w) >= 3 else zero


def fresh_output_bytes(record: Any, min_bytes: int = FIRST_TOUCH_MIN_BYTES) -> float:
    """Bytes of an op's newly allocated outputs of at least ``min_bytes`` each (0 for in-place ops, whose
    outputs are their inputs); by default those a CPU's OS maps afresh on every call."""
    name = record.op.removeprefix("aten.").split(".")[0]
    if name.endswith("_") or not record.output_shapes:
        return 0.0
    dtypes = tuple(getattr(record, "output_dtypes", ()))
    total = 0.0
    for k, shape in enumerate(record.output_shapes):
        nbytes = math.prod(shape) * _itemsize(dtypes[k] if k < len(dtypes) else "float32")
        if nbytes >= min_bytes:
            total += nbytes
    return total


_ITEMSIZE = {"float64": 8, "float32": 4, "bfloat16": 2, "float16": 2, "int64": 8, "int32": 4, "int16": 2,
             "int8": 1, "uint8": 1, "bool": 1, "complex64": 8, "complex128": 16}


def _itemsize(dtype: str) -> int:
    return _ITEMSIZE.get(str(dtype).removeprefix("torch."), 4)


def conv_shape(op: str, input_shapes: Sequence[tuple[int, ...]],
               output_shapes: Sequence[tuple[int, ...]]) -> tuple[float, float, float, float]:
    """(C_in / groups, C_out / groups, kh x kw, N x H_out x W_out) of a convolution (forward or backward),
    the coordinates of :func:`traincost.devices.shape_factor`; zeros when the shapes are not a conv's."""
    d = conv_depths(op, input_shapes, output_shapes)
    if d["c_in_kk"] <= 0:
        return (0.0, 0.0, 0.0, 0.0)
    w = input_shapes[2] if "backward" in op else input_shapes[1]
    kk = float(math.prod(w[2:]))
    return (d["c_in_kk"] / kk, d["c_out_kk"] / kk, kk, d["positions"])


def activation_channels(input_shapes: Sequence[tuple[int, ...]]) -> float:
    """C of an op's first input when it is a 4-d (N, C, H, W) activation (a kernel curve's ``channels``
    depth), else 0 (no depth term)."""
    return float(input_shapes[0][1]) if input_shapes and len(input_shapes[0]) == 4 else 0.0


def activation_pixels(input_shapes: Sequence[tuple[int, ...]]) -> float:
    """N x H x W of an op's first input when it is a 4-d (N, C, H, W) activation (the rows of a
    channels_last kernel, :meth:`~traincost.devices.DeviceProfile.kernel_tail_s`), else 0."""
    s = input_shapes[0] if input_shapes else ()
    return float(s[0] * s[2] * s[3]) if len(s) == 4 else 0.0


#: aten ops whose 2-d (N, C) input is priced on a kernel curve of its own (mode suffix ``FLAT``).
_FLAT_KERNEL_OPS = ("native_batch_norm", "native_batch_norm_backward")
#: Codes of ``OpTable.gemm_op``: the matmul ops a profile's linear-layer shape factors correct.
_GEMM_OPS = {"mm": 1, "addmm": 2}


def gemm_mkn(op: str, input_shapes: Sequence[tuple[int, ...]]) -> tuple[float, float, float]:
    """(M, K, N) of ``aten.mm`` ((M, K) @ (K, N)) or ``aten.addmm`` (bias, (M, K), (K, N)), the coordinates of
    a linear-layer shape factor (:meth:`DeviceProfile.gemm_shape_points`); zeros for other ops or shapes."""
    name = op.removeprefix("aten.").split(".")[0]
    shapes = input_shapes[1:3] if name == "addmm" else input_shapes[:2]
    if name not in _GEMM_OPS or len(shapes) < 2 or len(shapes[0]) != 2 or len(shapes[1]) != 2 \
            or shapes[0][1] != shapes[1][0]:
        return (0.0, 0.0, 0.0)
    return (float(shapes[0][0]), float(shapes[0][1]), float(shapes[1][1]))


def gemm_min_dim(op: str, input_shapes: Sequence[tuple[int, ...]]) -> float:
    """The smallest of M, N and K of a matrix multiply (``aten.mm``: (M, K) @ (K, N); ``aten.addmm``: bias,
    (M, K), (K, N); ``aten.bmm``: batches of them), the depth a matmul curve's ``min_mnk`` term reads; 0
    (no depth term) for other ops or shapes."""
    name = op.removeprefix("aten.").split(".")[0]
    shapes = input_shapes[1:3] if name == "addmm" else input_shapes[:2]
    if name not in ("mm", "addmm", "bmm") or len(shapes) < 2:
        return 0.0
    a, b = shapes
    if len(a) < 2 or len(b) < 2 or a[-1] != b[-2]:
        return 0.0
    return float(min(a[-2], a[-1], b[-1]))


#: Compute classes priced as the sum of the two passes of ``convolution_backward`` when a profile has both
#: curves (each on half the work, with its own GEMM depth); else on the ``conv_backward`` curve.
_SPLIT_BACKWARD = ("conv_bwd_input", "conv_bwd_weight")


# ------------------------------------------------------------------------------------------- op table


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
        for i, r in enumerate(records):
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
                   precision=precision, channels_last=channels_last, optimizer=optimizer, batch_size=batch_size)

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

        ``device = max(compute, memory, launch_s)`` for kernel ops, 0 for free and host-only ops: the
        same number as ``profile.device_time_s`` for each op.
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
        return device, compute, memory

    def _conv_or_gemm_time(self, profile: DeviceProfile, cc: str, mode: str, idx: np.ndarray) -> np.ndarray:
        """Compute-curve seconds of ops ``idx`` (class ``cc``, math ``mode``); 0 without a curve.

        A ``convolution_backward`` computing both gradients is the sum of its two passes, each on its own
        curve (``conv_bwd_input``, ``conv_bwd_weight``) with half the work, when the profile has both;
        otherwise :meth:`DeviceProfile.compute_curve`'s chain. Each curve's depth term reads the GEMM
        dimension it was fitted on (``Curve.depth_kind``); a conv curve with measured shapes
        (:meth:`DeviceProfile.shape_points`) is corrected by their factor near the op's shape
        (:func:`traincost.devices.shape_factor`)."""
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
        (:meth:`DeviceProfile.gemm_shape_points`, :func:`traincost.devices.shape_factor`); 1 otherwise."""
        factor = np.ones(len(idx))
        codes = self.gemm_op[idx]
        for op, code in _GEMM_OPS.items():
            sel = codes == code
            points = profile.gemm_shape_points(key, op) if sel.any() else None
            if points is not None:
                factor[sel] = shape_factor(points, self.gemm_shapes[idx[sel]])
        return factor


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


# ------------------------------------------------------------------------------------------- timeline


@dataclass(frozen=True)
class Timeline:
    """Result of simulating one step. Seconds; per-op arrays of the op's share of the step.

    ``exposed_host_s[i]``: time the device sat idle waiting for the host to dispatch op ``i`` (on a
    CPU: all of op ``i``'s host time); ``step_s = sum(exposed_host_s) + sum(device_s)``.
    """

    step_s: float
    host_s: float           # host busy time (sum of host costs)
    device_s: float         # device busy time (sum of device costs)
    exposed_host_s: np.ndarray


def simulate(host_s: np.ndarray, device_s: np.ndarray, *, synchronous: bool,
             sync_before: int | None = None) -> Timeline:
    """Walk the host and device timelines op by op (see module doc).

    ``synchronous`` (a CPU): the step is the sum of host and device times. Otherwise (a GPU)::

        host_t += host_s[i]; start = max(device_t, host_t); device_t = start + device_s[i]

    and ``step = max(host_t, device_t)``. ``sync_before``: before op ``i`` the host waits for the device
    to drain (``host_t = max(host_t, device_t)``), as ``.item()`` does. Vectorised: with ``S`` the running
    sum of device times and ``h`` the host time at each dispatch, ``device_t[i] = S[i] + max over k <= i of
    (h[k] - S[k-1])`` (a max-plus scan).
    """
    host_s = np.asarray(host_s, dtype=float)
    device_s = np.asarray(device_s, dtype=float)
    n = len(host_s)
    if synchronous:
        return Timeline(float(host_s.sum() + device_s.sum()), float(host_s.sum()), float(device_s.sum()),
                        host_s.copy())
    exposed = np.zeros(n)
    h0 = d0 = 0.0
    cuts = [0, n] if sync_before is None or not 0 < sync_before < n else [0, sync_before, n]
    for a, b in zip(cuts[:-1], cuts[1:]):
        if a > 0:  # sync: the host waits for the device
            h0 = max(h0, d0)
        h = h0 + np.cumsum(host_s[a:b])
        s = np.cumsum(device_s[a:b])
        s_prev = np.concatenate(([0.0], s[:-1]))
        d = s + np.maximum(d0, np.maximum.accumulate(h - s_prev))
        d_prev = np.concatenate(([d0], d[:-1]))
        exposed[a:b] = np.maximum(0.0, h - d_prev)
        if b > a:
            h0, d0 = float(h[-1]), float(d[-1])
    step = max(h0, d0)
    return Timeline(float(step), float(host_s.sum()), float(device_s.sum()), exposed)


# ------------------------------------------------------------------------------------------- pricing


@dataclass(frozen=True)
class Pricing:
    """Per-op host, device, compute and memory seconds of one step on one profile, and its timeline."""

    host_s: np.ndarray
    device_s: np.ndarray
    compute_s: np.ndarray     # device time of compute-bound ops (0 for the others)
    memory_s: np.ndarray      # device time of the other kernel ops
    timeline: Timeline


def _optimizer_key(optimizer: str) -> str:
    return "adamw" if optimizer in ("adam", "adamw") else optimizer


def host_op_ratios(profile: DeviceProfile) -> dict[str, float]:
    """Host cost of a training step's op per ``dispatch_s``: ``forward``, ``backward`` and
    ``zero_grad_per_tensor``, from the profile's ``properties["host_op_ratio"]`` where its host was measured
    (``benchmarks/host_overhead.py --write``), else :data:`HOST_OP_RATIO` and
    :data:`ZERO_GRAD_PER_TENSOR_RATIO` (measured on the AMD EPYC). A value that is not a positive number is
    a :class:`~traincost.devices.ProfileError`."""
    measured = profile.properties.get("host_op_ratio") or {}
    if not isinstance(measured, Mapping):
        raise ProfileError(f"profile {profile.name!r}: properties.host_op_ratio must be an object, got {measured!r}")
    out = {**HOST_OP_RATIO, "zero_grad_per_tensor": ZERO_GRAD_PER_TENSOR_RATIO}
    for key in out:
        if key in measured:
            value = measured[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ProfileError(f"profile {profile.name!r}: properties.host_op_ratio.{key} must be a positive "
                                   f"number, got {value!r}")
            out[key] = float(value)
    return out


def price(table: OpTable, profile: DeviceProfile) -> Pricing:
    """Host and device time of every op of ``table`` on ``profile``, and the simulated step."""
    device, compute, memory = table.device_times(profile)
    cpu = profile.kind == "cpu"
    autocast = table.precision in _AUTOCAST
    ratio = host_op_ratios(profile)
    host = np.full(table.n, float(profile.dispatch_s))  # optimizer-phase ops outside step(): bare calls
    fwd_dispatch = profile.dispatch_autocast_s if autocast else profile.dispatch_s
    host[table.phase == 0] = fwd_dispatch * ratio["forward"]
    host[table.phase == 1] = profile.dispatch_s * ratio["backward"]
    key = _optimizer_key(table.optimizer)
    consts = profile.optimizer
    region = table.opt_region
    if region.any() and all(f"{key}_{part}" in consts for part in ("fixed_s", "per_tensor_s", "s_per_byte")):
        weights = table.opt_weight[region]
        total_host = consts[f"{key}_fixed_s"] + consts[f"{key}_per_tensor_s"] * table.param_tensors
        host[region] = total_host * weights / weights.sum()
        if cpu:  # wall time on a CPU = host + device: the per-byte term is the device part
            kernels = region & table.kernel
            per_byte = consts[f"{key}_s_per_byte"]
            cache = profile.memory.cache_bytes
            if f"{key}_s_per_byte_dram" in consts and cache > 0 and table.working_set_bytes > cache:
                per_byte = consts[f"{key}_s_per_byte_dram"]  # the step evicted parameters, grads and state
            total_dev = per_byte * table.param_bytes
            share = np.where(kernels, table.bytes, 0.0)
            if share.sum() <= 0:
                share = kernels.astype(float)
            device = device.copy()
            if share.sum() > 0:
                device[region] = total_dev * share[region] / share.sum()
            else:
                device[region] = 0.0
            # the measured lists had no tensor large enough to be mapped afresh: their first touch is extra
            device[region] += profile.first_touch_s_per_byte * table.fresh_bytes[region]
            compute = np.where(region, 0.0, compute)
            memory = np.where(region, device, memory)
    if table.n:  # optimizer.zero_grad(set_to_none=True) after the step: a Python loop over the parameters
        host[-1] += ratio["zero_grad_per_tensor"] * profile.dispatch_s * table.param_tensors
    is_compute = (compute >= memory) & (compute > 0)
    compute_s = np.where(is_compute, device, 0.0)
    memory_s = device - compute_s
    timeline = simulate(host, device, synchronous=cpu, sync_before=None if cpu else table.sync_index)
    return Pricing(host, device, compute_s, memory_s, timeline)


def _bound(host: float, compute: float, memory: float) -> str:
    values = {"compute": compute, "memory": memory, "host": host}
    return max(BOUNDS, key=lambda k: values[k])


def breakdown(table: OpTable, pricing: Pricing, flops: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Per-layer rows (module, ms, bound, flops, bytes, ops, host_ms, compute_ms, memory_ms, share),
    heaviest first; the ``ms`` of all rows add up to the step."""
    m = len(table.modules)
    idx = table.module_index
    exposed = np.bincount(idx, weights=pricing.timeline.exposed_host_s, minlength=m)
    comp = np.bincount(idx, weights=pricing.compute_s, minlength=m)
    mem = np.bincount(idx, weights=pricing.memory_s, minlength=m)
    fl = np.bincount(idx, weights=table.flops if flops is None else flops, minlength=m)
    by = np.bincount(idx, weights=table.bytes, minlength=m)
    ops = np.bincount(idx, minlength=m)
    step = max(pricing.timeline.step_s, 1e-30)
    rows = []
    for j, name in enumerate(table.modules):
        total = exposed[j] + comp[j] + mem[j]
        rows.append({"module": name, "ms": float(total * 1e3),
                     "bound": _bound(exposed[j], comp[j], mem[j]),
                     "flops": int(round(fl[j])), "bytes": int(round(by[j])), "ops": int(ops[j]),
                     "host_ms": float(exposed[j] * 1e3), "compute_ms": float(comp[j] * 1e3),
                     "memory_ms": float(mem[j] * 1e3), "share": float(total / step)})
    rows.sort(key=lambda r: (-r["ms"], r["module"]))
    return rows


# ------------------------------------------------------------------------------------------- Estimate


@dataclass(frozen=True)
class Estimate:
    """A prediction for one model, step configuration and device. Units in names.

    ``cost_usd``: provider -> dollars for the run (``total_s``), on-demand, cheapest price of each
    provider; ``prices`` the same quotes with $/GPU-hour, source and date (also when the run length is
    unknown). ``breakdown``: per-layer rows, heaviest first. ``device``: ``{name, profile_source}``.
    ``iteration_ms``: the step, corrected by the learned residual when one applies (``analytic_ms`` x
    exp(residual); ``analytic_ms`` the physics model alone; host/device/compute/memory ms and the
    ``breakdown`` rows stay analytic: they add up to ``analytic_ms``).
    ``interval``: ``{low_ms, high_ms}``, an 80 % interval (split-conformal quantiles of cross-validated
    residuals; widened for datasheet profiles and inputs outside the training data), ``None`` without
    interval data. ``correction``: ``{model, reason, ...}``: the residual model used (``None``: analytic only)
    and why (:mod:`traincost.correction`).
    """

    iteration_ms: float
    samples_per_s: float
    epoch_s: float | None
    total_s: float | None
    peak_memory_bytes: int
    fits: bool
    max_batch_size: int | None
    cost_usd: dict[str, float]
    bound: str
    breakdown: list[dict[str, Any]]
    device: dict[str, Any]
    interval: dict[str, float] | None = None
    analytic_ms: float = 0.0
    correction: dict[str, Any] = field(default_factory=dict)
    prices: list[dict[str, Any]] = field(default_factory=list)
    model: str = ""
    batch_size: int = 0
    global_batch_size: int = 0
    gpus: int = 1
    nodes: int = 1
    allreduce_ms: float = 0.0          # all gradient buckets' all-reduce time per step (data parallel)
    exposed_comm_ms: float = 0.0       # the part of it not hidden behind backward: added to the step
    scaling_efficiency: float = 1.0    # throughput on G GPUs / (G x one GPU at the same per-GPU batch)
    interconnect: dict[str, Any] | None = None  # {intra_link, network, buckets, grad_bytes} when gpus > 1
    precision: str = "fp32"
    channels_last: bool = False
    optimizer: str = "sgd"
    dataset_size: int | None = None
    epochs: float | None = None
    steps_per_epoch: int | None = None
    host_ms: float = 0.0
    device_ms: float = 0.0
    compute_ms: float = 0.0
    memory_ms: float = 0.0
    exposed_host_ms: float = 0.0
    flops: int = 0
    bytes: int = 0
    ops: int = 0
    walk_peak_bytes: int = 0
    allocator_overhead_bytes: int = 0
    context_bytes: int = 0
    device_memory_bytes: int = 0
    max_batch_size_exact: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract of ``traincost predict --json`` (plain Python types)."""
        return asdict(self)


def resolve_device(device: str | DeviceProfile) -> DeviceProfile:
    """``device`` as a profile: a :class:`DeviceProfile` as is, else :func:`traincost.devices.profile_for`."""
    if isinstance(device, DeviceProfile):
        return device
    if not isinstance(device, str):
        raise TraincostUsageError(f"device must be 'cpu', a GPU name, a profile .json or a DeviceProfile, "
                                  f"got {type(device).__name__}")
    return profile_for(device)


def foreign_cpu(profile: DeviceProfile) -> str | None:
    """A note when a calibrated CPU profile was measured on another CPU model than this machine's (the
    shipped profile closest to this machine is used, but another CPU's rates can be 2x off), else None."""
    if profile.kind != "cpu" or profile.source != "calibrated":
        return None
    measured_on = profile.properties.get("cpu_model")
    here = cpu_model()
    if not measured_on or measured_on == here:
        return None
    return (f"profile {profile.name!r} was calibrated on another CPU ({measured_on}; this machine: {here}): "
            f"to predict this CPU, run 'traincost calibrate --device cpu -o cpu.json' and pass --device cpu.json")


def check_precision(profile: DeviceProfile, precision: str) -> None:
    """A usage error when ``profile`` cannot run ``precision`` (no matmul curve in that math mode)."""
    mode = {"fp32": "fp32", "tf32": "tf32", "bf16": "bf16", "fp16": "fp16"}.get(precision)
    if mode is None:
        raise TraincostUsageError(f"precision must be one of fp32, tf32, bf16, fp16, got {precision!r}")
    if profile.compute_curve("matmul", mode) is None:
        have = ", ".join(profile.modes("matmul")) or "none"
        why = ("the GPU has no " + precision + " support" if profile.kind == "cuda" and profile.source == "datasheet"
               else "the profile has no " + precision + " measurements")
        raise TraincostUsageError(f"{profile.name} cannot run {precision}: {why} (supported: {have})")


def _allocator_overhead(profile: DeviceProfile) -> int:
    value = profile.properties.get("allocator_overhead_bytes", 0)
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else 0


def _estimate_max_batch(memory: Any, batch: int, usable_walk_bytes: int) -> int:
    """Largest batch whose walk peak fits ``usable_walk_bytes``, from one walk's memory report: peak memory
    is about affine in the batch; two affine lower bounds (the parts live at the peak, and the steady
    parameters + gradients + optimizer state + saved activations) are both kept under the budget."""
    if usable_walk_bytes <= 0:
        return 0
    at = memory.at_peak
    per_batch = at.get("inputs", 0) + at.get("activations", 0) + at.get("backward", 0)
    fixed_peak = memory.peak_bytes - per_batch
    lines = [(fixed_peak, per_batch / batch),
             (memory.fixed_bytes, (memory.saved_activations_bytes + memory.inputs_bytes) / batch)]
    best = None
    for fixed, slope in lines:
        if fixed > usable_walk_bytes:
            return 0
        if slope <= 0:
            continue
        cap = int((usable_walk_bytes - fixed) // slope)
        best = cap if best is None else min(best, cap)
    return max(best if best is not None else batch, 0)


@dataclass(frozen=True)
class _Step:
    """What predict and compare share: the walk, its table and how to re-walk for the largest batch."""

    label: str
    table: OpTable
    memory: Any
    flops: int
    bytes: int
    ops: int
    exact_max_batch: Callable[[int], int]
    walk: Any = None  # the Walk (records, params, memory): the learned correction's features


def _walk(model: Any, *, batch_size: int, input_shape: Any, precision: str, channels_last: bool,
          optimizer: str) -> _Step:
    from traincost.flopmodel.count import count, max_batch_size

    result = count(model, batch_size=batch_size, input_shape=input_shape, precision=precision,
                   channels_last=channels_last, optimizer=optimizer)
    table = OpTable.from_walk(result.walk)
    cache: dict[int, int] = {}

    def exact(usable: int) -> int:
        if usable <= 0:
            return 0
        if usable not in cache:
            cache[usable] = max_batch_size(model, memory_bytes=usable, input_shape=input_shape,
                                           precision=precision, channels_last=channels_last,
                                           optimizer=optimizer, start=max(1, _estimate_max_batch(
                                               result.walk.memory, batch_size, usable)))
        return cache[usable]

    return _Step(result.label, table, result.walk.memory, int(result.flops["total"]),
                 int(sum(result.bytes.values())), result.ops, exact, result.walk)


def _correction_source(correction: Any) -> Any:
    """``predict``'s ``correction`` argument as ``"auto"``, ``None`` (analytic only) or a fitted model
    (a path is loaded and checked now: a usage error before any walking)."""
    import os

    if correction is None or correction is False:
        return None
    if correction is True or (isinstance(correction, str) and correction.strip().lower() == "auto"):
        return "auto"
    if isinstance(correction, (str, os.PathLike)):
        from traincost.correction import load

        return load(correction)
    if hasattr(correction, "predict") and hasattr(correction, "feature_names_"):
        return correction
    raise TraincostUsageError(f"correction must be 'auto', a residual model .json path, a fitted ResidualModel, "
                              f"or False/None for the analytic model alone, got {correction!r}")


def _apply_correction(step: _Step, pricing: Pricing, profile: DeviceProfile,
                      correction: Any) -> tuple[float, dict[str, float] | None, dict[str, Any]]:
    """(step seconds, interval, correction info) of one single-GPU step: the analytic step times
    exp(learned residual) when a residual model applies (``correction``: see :func:`_correction_source`)."""
    from pathlib import Path

    from traincost import correction as corr

    analytic_s = pricing.timeline.step_s
    source = _correction_source(correction)
    model, reason = None, "analytic only: correction disabled"
    if source == "auto":
        model, reason = corr.select_residual(profile)
    elif source is not None:
        model, reason = source, "given model"
    table = step.table
    features = None
    if step.walk is not None:
        features = corr.step_features(step.walk, pricing, profile, precision=table.precision,
                                      channels_last=table.channels_last, optimizer=table.optimizer,
                                      batch_size=table.batch_size)
    elif model is not None:
        model, reason = None, "analytic only: the step has no walk records for the correction's features"
    model_features = features
    if model is not None:
        proxy, why = corr.proxy_features(model, profile, table.precision)
        if proxy is None:
            model, reason = None, f"analytic only: {reason}; {why}"
        elif proxy:
            model_features, reason = {**features, **proxy}, f"{reason}; {why}"
    info: dict[str, Any] = {"model": None, "reason": reason}
    step_s = analytic_s
    if model is not None:
        residual = float(model.predict(corr.features_frame([model_features]))[0])
        step_s = analytic_s * math.exp(residual)
        path = model.metadata_.get("path") if isinstance(getattr(model, "metadata_", None), dict) else None
        info.update(model=Path(path).name if path else "ResidualModel", log_residual=residual,
                    factor=math.exp(residual))
        stale = corr.staleness(model, profile)
        if stale:
            info.update(stale=True, reason=f"{reason}; STALE: {stale}: refit with 'traincost fit'")
        quantiles, ranges = model.intervals_, model.feature_ranges_
    else:
        quantiles, ranges = corr.analytic_intervals(profile), {}
    outside = corr.out_of_range(features, ranges) if features is not None else []
    # a device outside the model's training data (proxy device features): wider, except a calibrated CPU,
    # whose unwidened interval already covered 84 % / 80 % of the other CPU's runs at 80 % (NOTES, session 5)
    if model is not None and model_features is not features and not corr.unseen_cpu_applies(profile):
        outside.append("the device")
    factors = corr.interval_factors(quantiles, datasheet=profile.source == "datasheet", out_of_range_features=outside)
    interval = None
    if factors is not None:
        interval = {"low_ms": step_s * factors.low * 1e3, "high_ms": step_s * factors.high * 1e3}
        info.update(interval_level=factors.level, interval_widened_by=factors.widened_by,
                    interval_basis=("cross-validated residuals of " + str(info["model"]) if model is not None
                                    else f"the analytic model's errors on measured {profile.kind} steps"),
                    interval_reasons=list(factors.reasons))
    return step_s, interval, info


def _estimate(step: _Step, profile: DeviceProfile, *, epochs: float | None, dataset_size: int | None,
              gpus: int, exact_max_batch: bool = True, correction: Any = "auto") -> Estimate:
    table = step.table
    pricing = price(table, profile)
    tl = pricing.timeline
    analytic_s = tl.step_s
    iteration_s, interval, correction_info = _apply_correction(step, pricing, profile, correction)
    plan = plan_run(iteration_s, batch_size=table.batch_size, gpus=gpus, dataset_size=dataset_size, epochs=epochs)
    notes: list[str] = []
    # memory
    overhead = _allocator_overhead(profile)
    context = CUDA_CONTEXT_BYTES if profile.kind == "cuda" else 0
    walk_peak = int(step.memory.peak_bytes)
    peak = walk_peak + overhead
    fits = peak + context <= profile.memory_bytes
    usable_walk = profile.memory_bytes - context - overhead
    if fits:
        max_batch = max(_estimate_max_batch(step.memory, table.batch_size, usable_walk), table.batch_size)
        exact = False
    else:
        if exact_max_batch:
            max_batch = step.exact_max_batch(usable_walk)
        else:
            max_batch = min(_estimate_max_batch(step.memory, table.batch_size, usable_walk), table.batch_size - 1)
        exact = exact_max_batch
        notes.append(f"batch {table.batch_size} does not fit in {profile.memory_bytes / 2**30:.1f} GiB "
                     f"(needs {(peak + context) / 2**30:.1f} GiB); the largest batch that fits is "
                     f"{'' if exact else 'about '}{max_batch}")
    # cost
    quotes: list[PriceQuote] = quote(plan.total_s, prices_for_profile(profile), gpus)
    cost = {q.provider: q.usd for q in quotes if q.usd is not None}
    if profile.source == "datasheet":
        notes.append("datasheet profile: rates are datasheet peaks x fractions reached by calibrated GPUs; "
                     "less certain than a calibrated profile")
    if dataset_size is None:
        notes.append("no dataset size: epoch, total time and run cost need --dataset-size")
    other_cpu = foreign_cpu(profile)
    if other_cpu:
        notes.append(other_cpu)
    exposed = float(tl.exposed_host_s.sum())
    comp = float(pricing.compute_s.sum())
    mem = float(pricing.memory_s.sum())
    return Estimate(
        iteration_ms=iteration_s * 1e3,
        samples_per_s=plan.global_batch_size / iteration_s if iteration_s > 0 else math.inf,
        epoch_s=plan.epoch_s,
        total_s=plan.total_s,
        peak_memory_bytes=int(peak),
        fits=bool(fits),
        max_batch_size=int(max_batch),
        cost_usd=cost,
        bound=_bound(exposed, comp, mem),
        breakdown=breakdown(table, pricing),
        device={"name": profile.name, "profile_source": profile.source},
        interval=interval,
        analytic_ms=analytic_s * 1e3,
        correction=correction_info,
        prices=[q.to_dict() for q in quotes],
        model=step.label,
        batch_size=table.batch_size,
        global_batch_size=plan.global_batch_size,
        gpus=gpus,
        precision=table.precision,
        channels_last=table.channels_last,
        optimizer=table.optimizer,
        dataset_size=dataset_size,
        epochs=plan.epochs,
        steps_per_epoch=plan.steps_per_epoch,
        host_ms=tl.host_s * 1e3,
        device_ms=tl.device_s * 1e3,
        compute_ms=comp * 1e3,
        memory_ms=mem * 1e3,
        exposed_host_ms=exposed * 1e3,
        flops=step.flops,
        bytes=step.bytes,
        ops=step.ops,
        walk_peak_bytes=walk_peak,
        allocator_overhead_bytes=overhead,
        context_bytes=context,
        device_memory_bytes=int(profile.memory_bytes),
        max_batch_size_exact=exact,
        notes=notes,
    )


def data_parallel(step: _Step, profile: DeviceProfile, estimate: Estimate, *, gpus: int, nodes: int = 1,
                  network: str | None = None) -> Estimate:
    """``estimate`` (one GPU's step, as :func:`_estimate` made it, learned correction included) on ``gpus``
    GPUs of ``nodes`` servers with DDP (:mod:`traincost.parallel`): the step grows by the gradient all-reduce
    not hidden behind backward; epoch, total and cost follow. Applied after ``_estimate``, whatever it does
    to the single-GPU step. One GPU: ``estimate`` unchanged."""
    if gpus <= 1:
        return estimate
    from traincost.catalog import GPUS_PER_NODE
    from traincost.parallel import data_parallel as dp_step
    from traincost.parallel import fabric_for, grad_events

    table = step.table
    records = getattr(step.walk, "records", None)
    dp = dp_step(table, price(table, profile), fabric_for(profile, gpus=gpus, nodes=nodes, network=network),
                 grad_events(records) if records is not None else None)
    single_s = estimate.iteration_ms / 1e3
    iteration_s = single_s + dp.exposed_comm_s
    plan = plan_run(iteration_s, batch_size=table.batch_size, gpus=gpus, dataset_size=estimate.dataset_size,
                    epochs=estimate.epochs)
    quotes = quote(plan.total_s, prices_for_profile(profile), gpus)
    interval = estimate.interval
    if interval is not None:
        interval = {k: (v + dp.exposed_comm_ms if k.endswith("_ms") else v) for k, v in interval.items()}
    where = f"{dp.intra_link}" + (f", {dp.network} between {nodes} nodes" if nodes > 1 else "")
    notes = [*estimate.notes,
             (f"data parallel (DDP): {gpus} GPUs x batch {table.batch_size}, gradients "
              f"{dp.grad_bytes / 2**20:.0f} MiB in {len(dp.buckets)} buckets all-reduced over {where}: "
              f"{dp.allreduce_ms:.2f} ms, {dp.exposed_comm_ms:.2f} ms not hidden behind backward (scaling "
              f"efficiency {dp.scaling_efficiency:.0%} of linear; NCCL/compute contention, stragglers and input "
              "pipelines not modelled)")]
    if gpus // nodes > GPUS_PER_NODE:
        notes.append(f"{gpus // nodes} GPUs per node is more than a usual server holds ({GPUS_PER_NODE}); predicted "
                     f"as one {dp.intra_link} domain (a DGX-2 has 16 V100); use nodes= for a cluster")
    if dp.unmatched_grad_bytes:
        notes.append(f"{dp.unmatched_grad_bytes / 2**20:.1f} MiB of gradients without a ready time in the walk: "
                     "all-reduced at the end of backward")
    return replace(
        estimate, iteration_ms=iteration_s * 1e3,
        samples_per_s=plan.global_batch_size / iteration_s if iteration_s > 0 else math.inf,
        epoch_s=plan.epoch_s, total_s=plan.total_s, prices=[q.to_dict() for q in quotes],
        cost_usd={q.provider: q.usd for q in quotes if q.usd is not None}, interval=interval, nodes=nodes,
        allreduce_ms=dp.allreduce_ms, exposed_comm_ms=dp.exposed_comm_ms,
        scaling_efficiency=single_s / iteration_s if iteration_s > 0 else 1.0,
        interconnect={"intra_link": dp.intra_link, "network": dp.network or None, "grad_bytes": dp.grad_bytes,
                      "buckets": len(dp.buckets)},
        notes=notes)


def with_provider(estimate: Estimate, provider: str | None) -> Estimate:
    """``estimate`` with only ``provider``'s price (case-insensitive); a usage error naming the providers
    that have a price when it has none."""
    if provider is None:
        return estimate
    quotes = [PriceQuote(**q) for q in estimate.prices]
    kept = select_provider(quotes, provider, estimate.device["name"])
    return replace(estimate, prices=[q.to_dict() for q in kept],
                   cost_usd={q.provider: q.usd for q in kept if q.usd is not None})


def _check_common(precision: str, gpus: int, epochs: float | None, dataset_size: int | None,
                  batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise TraincostUsageError(f"batch_size must be a positive integer, got {batch_size!r}")
    if precision not in ("fp32", "tf32", "bf16", "fp16"):
        raise TraincostUsageError(f"precision must be one of fp32, tf32, bf16, fp16, got {precision!r}")
    check_run(epochs=epochs, dataset_size=dataset_size, gpus=gpus)


def _check_device(profile: DeviceProfile, precision: str, gpus: int) -> None:
    check_precision(profile, precision)
    if profile.kind == "cpu" and gpus != 1:
        raise TraincostUsageError(f"gpus={gpus} needs a GPU device; {profile.name} is a CPU")


def predict(model: Any, *, device: str | DeviceProfile, batch_size: int,
            input_shape: tuple[int, ...] | str | None = None, precision: str = "fp32",
            channels_last: bool = False, optimizer: str = "sgd", epochs: float | None = None,
            dataset_size: int | None = None, gpus: int = 1, nodes: int = 1,
            network: str | None = None, correction: Any = "auto") -> Estimate:
    """Predict one training step of ``model`` on ``device``, and the run when ``dataset_size`` is given.

    ``model``: a family/torchvision name, spec path, ``ArchSpec`` or ``nn.Module`` (as ``traincost.count``).
    ``device``: ``"cpu"``, a GPU name (``"A100"``, ``"H100 SXM"``), a profile ``.json`` path or a
    :class:`~traincost.devices.DeviceProfile`. ``batch_size`` is per GPU; ``gpus`` > 1 is DDP data parallel on
    ``nodes`` servers (:func:`data_parallel`; ``network`` between nodes, e.g. ``"ib-hdr"`` or ``"8x ib-hdr"``).
    ``epochs`` defaults to 1 when only ``dataset_size`` is given. ``correction``: ``"auto"`` (the shipped
    residual model for the device, else a cross-device one, else none), a residual model ``.json`` path, or
    ``False``/``None`` for the analytic model alone (``Estimate.correction`` says which was used).
    Raises ``TraincostUsageError`` for an unknown device, a precision the device lacks (bf16 on a V100),
    or bad run parameters; a batch that does not fit is still predicted (``fits=False``).
    """
    _check_common(precision, gpus, epochs, dataset_size, batch_size)
    profile = resolve_device(device)
    _check_device(profile, precision, gpus)
    check_parallel(gpus, nodes, network)
    source = _correction_source(correction)
    step = _walk(model, batch_size=batch_size, input_shape=input_shape, precision=precision,
                 channels_last=channels_last, optimizer=optimizer)
    return data_parallel(step, profile, _estimate(step, profile, epochs=epochs, dataset_size=dataset_size, gpus=gpus,
                                                  correction=source),
                         gpus=gpus, nodes=nodes, network=network)


def compare(model: Any, *, devices: Sequence[str | DeviceProfile] | str, batch_size: int,
            input_shape: tuple[int, ...] | str | None = None, precision: str = "fp32",
            channels_last: bool = False, optimizer: str = "sgd", epochs: float | None = None,
            dataset_size: int | None = None, gpus: int = 1, nodes: int = 1,
            network: str | None = None, correction: Any = "auto") -> list[Estimate]:
    """One :class:`Estimate` per device, in the order given, from ONE walk of the model.

    The walk depends on the model, batch and precision, not on the device: it is priced again for each
    device. ``devices``: a list (or a comma-separated string) of what :func:`predict` accepts. Every device
    is resolved and checked first: an unknown name or a precision a device lacks is one usage error naming
    them all. ``correction`` as in :func:`predict`, chosen per device.
    """
    _check_common(precision, gpus, epochs, dataset_size, batch_size)
    source = _correction_source(correction)
    if isinstance(devices, str):
        devices = [d.strip() for d in devices.split(",") if d.strip()]
    devices = list(devices)
    if not devices:
        raise TraincostUsageError("devices is empty; give at least one device")
    profiles = []
    problems = []
    for d in devices:
        try:
            p = resolve_device(d)
            _check_device(p, precision, gpus)
            profiles.append(p)
        except TraincostUsageError as exc:
            problems.append(str(exc))
    if problems:
        raise TraincostUsageError("; ".join(problems))
    check_parallel(gpus, nodes, network)
    step = _walk(model, batch_size=batch_size, input_shape=input_shape, precision=precision,
                 channels_last=channels_last, optimizer=optimizer)
    return [data_parallel(step, p, _estimate(step, p, epochs=epochs, dataset_size=dataset_size, gpus=gpus,
                                             exact_max_batch=False, correction=source),
                          gpus=gpus, nodes=nodes, network=network)
            for p in profiles]
