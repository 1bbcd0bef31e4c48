"""Microbenchmarks that calibrate a device profile: ``calibrate(device, quick, progress) -> DeviceProfile``.

What is measured (each family in its own ``try``: a failure is recorded in ``raw["errors"]`` and the run
goes on, so nothing measured is lost):

* ``matmul``: ``torch.mm`` over square sizes and a few linear-layer shapes, per math mode: ``fp32``
  (``allow_tf32=False``), ``tf32`` (CUDA, compute capability >= 8), ``bf16``, ``fp16``. On a CPU, bf16 and
  fp16 are probed first (a 128^3 GEMM) and kept only when they reach a quarter of the fp32 rate (many
  PyTorch CPU builds run fp16 GEMM at ~1 GFLOP/s: measuring it would take minutes and say nothing).
* ``conv``: ``aten.convolution`` forward and ``aten.convolution_backward`` (grad input, grad weight, both)
  over CNN layer shapes (7x7 stem, 3x3, 1x1, strided; channels 3..1024, images 7..224), per mode, NCHW and
  (full mode) channels_last. On CUDA ``fp32`` runs with ``cudnn.allow_tf32`` at PyTorch's default (True),
  i.e. as TF32, recorded as ``properties["conv_fp32_uses_tf32"]``; ``fp32_strict`` turns it off.
* ``memory``: ``torch.add(a, b, out=c)`` (work = 3 x tensor bytes) and ``reduction``: ``a.sum()``
  (work = tensor bytes), from 4 KiB up to many times the last-level cache.
* ``dispatch``: host seconds of one tiny eager op (a loop of ``torch.add`` without synchronising, / N), and
  inside ``torch.autocast`` (a tiny ``mm`` = two casts + mm: seconds / 3 aten ops); ``launch`` (CUDA): device
  time of a tiny kernel back to back (the host is made to run ahead by a ``torch.cuda._sleep`` kernel).
* ``optimizer``: ``step()`` of SGD (momentum 0.9) and AdamW, ``foreach=True``, on parameter lists shaped like
  real models, and (full CPU grid) two tiny lists that pin the step's fixed cost (a CPU's AdamW step costs
  ~100 us before its first tensor); fitted as fixed + per tensor + per byte.
* ``linear`` (full CPU grid): the three GEMMs of a linear layer as a training step runs them (forward
  ``addmm`` with the weight transposed and a bias, input-gradient ``mm``, weight-gradient ``mm`` with a
  transposed operand) over batches 8-512 and 16-4096 features; their measured / curve time is kept per op
  (``properties["gemm_shape_factors"]``, read as the conv shape factors are): at batch 8-32 the Intel Xeon
  VM ran them up to 6x below the square-GEMM curve, the AMD EPYC within ~1.4x of it.
* ``kernel`` (CPU): single memory-bound ops on curves of their own (``DeviceProfile.kernels``): batch norm
  and max pooling forward and backward (with a depth term on the channels when it fits clearly better),
  dropout's ``bernoulli_`` mask and autocast's ``_to_copy`` casts; batch norm also on 2-d (N, C) activations
  (mode suffix ``_2d``: ``BatchNorm1d``, whose CPU backward runs 3-10x below the 4-d curve). A channels_last
  batch norm whose channels do not fill whole SIMD vectors (4 or 8 channels on an AVX-512 CPU's 16 fp32
  lanes) is left out of its curve: its excess time per pixel over the curve is kept per channel count
  (``properties["kernel_tail_s_per_row"]``; the Xeon VM's backward on 8 channels runs ~16x its curve).
* ``first_touch`` (CPU): a fresh ``clone`` of 16-128 MiB against ``copy_`` into an existing tensor: from 32
  MiB glibc maps every new block afresh and the first write page-faults (``properties
  ["first_touch_s_per_byte"]``).

Matmul curves try a depth term on the smallest GEMM dimension (skinny GEMMs of linear layers at small batch,
measured in the CPU grid); conv curves one on a GEMM dimension each, and every measured convolution's
measured / curve time is kept (``properties["conv_shape_factors"]``) for
:func:`traincost.devices.shape_factor`, which corrects a curve near the shapes where it is wrong (a CPU's
4-channel convolutions run 3-8x below it).

Timing: two warm-up calls, then ``repeats`` samples of ``inner`` back-to-back calls (inner sized so that one
sample lasts ``target_sample_s``), median kept, min / max / spread recorded. CUDA: CUDA events on the
stream (device time); CPU: ``time.perf_counter`` (synchronous). Inputs are fresh ``torch.randn`` tensors
per point (never zeros: some kernels shortcut on them). Curve fitting: :mod:`traincost.calibrate.fitting`;
:func:`refit` fits a profile again from its raw measurements without the device.

Order and budget: the cheap families a profile cannot do without run first (memory, reduction, dispatch,
launch, optimizer), then matmul, then the convolutions; a size series stops growing once one call takes
longer than ``max_call_s``, and points still queued after ``deadline_s`` (full GPU 120 s, quick CPU 50 s)
are skipped and listed in ``raw["skipped"]``; Ctrl-C or SIGTERM (``timeout``) stops measuring and the
profile is fitted from what was measured (``properties["interrupted"]``). Full GPU: 643 points (560
conv), about a minute on an H200 by count (sizes x repeats x inner loops of ~2 ms); quick CPU: 218 points,
~15 s on 2 cores; full CPU: 2545 points, ~2 minutes on the 2-core AMD EPYC. ``properties["host_load"]``
says how busy the host was (other processes' CPU seconds per second): on a CPU device a busy host stalls
the intra-op thread pool and inflates every timing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import math
import os
import platform
import re
import statistics
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from traincost.calibrate.fitting import fit_curve, fit_linear_nonneg
from traincost.devices import (
    CHANNELS_LAST,
    CONV_DEPTH_KINDS,
    DEFAULT_DISPATCH_S,
    FIRST_TOUCH_MIN_BYTES,
    FLAT,
    SCHEMA_VERSION,
    TAIL_KERNEL_OPS,
    Curve,
    DeviceProfile,
    cpu_model,
    datasheet_profile,
    summarize_spread,
    vector_lanes,
)
from traincost.errors import TraincostError, TraincostUsageError
from traincost.flopmodel.walker import make_optimizer

__all__ = ["ProgressFn", "calibrate", "device_name", "device_slug", "parse_device", "plan_size", "refit"]

ProgressFn = Callable[[int, int, str], None]

_DTYPES = {"fp32": torch.float32, "fp32_strict": torch.float32, "tf32": torch.float32,
           "bf16": torch.bfloat16, "fp16": torch.float16}

# (C_in, C_out, H = W, kernel, stride): layer shapes of common CNNs.
_CONV_SHAPES = (
    (3, 64, 224, 7, 2),      # ResNet / VGG-style stem
    (64, 64, 56, 3, 1),
    (64, 256, 56, 1, 1),
    (256, 64, 56, 1, 1),
    (128, 128, 28, 3, 1),
    (128, 256, 28, 3, 2),    # strided downsampling
    (256, 256, 14, 3, 1),
    (256, 1024, 14, 1, 1),
    (512, 512, 7, 3, 1),
    (16, 16, 112, 3, 1),     # few channels, large image
)
_CONV_SHAPES_QUICK = ((3, 64, 224, 7, 2), (64, 64, 56, 3, 1), (128, 128, 28, 3, 1), (256, 1024, 14, 1, 1))
#: Small feature maps (CPU grid): the last stages of networks trained on 32-64 px inputs, where a conv's
#: weight gradient reduces over a few positions only.
_CONV_SHAPES_SMALL_MAPS = (
    (512, 512, 2, 3, 1),
    (256, 256, 4, 3, 1),
    (128, 256, 8, 3, 2),
    (64, 64, 16, 3, 1),
)
#: Thin layers (CPU grid): a few channels on a large map, as the seed's VGG family with 4-8 filters has.
_CONV_SHAPES_THIN = ((3, 8, 112, 3, 1), (4, 4, 112, 3, 1), (8, 8, 56, 3, 1))
_CONV_PASSES = ("fwd", "bwd_input", "bwd_weight", "bwd")
#: Skinny GEMMs (M, K, N) of linear layers at small batch B (CPU grid): forward (B, in) @ (in, out), grad
#: input (B, out) @ (out, in), grad weight (out, B) @ (B, in) -- the batch as M or as the reduction K.
_GEMM_SKINNY = ((8, 1024, 1024), (1024, 8, 1024), (32, 2048, 2048), (2048, 32, 2048), (128, 1024, 1024),
                (1024, 128, 1024), (2048, 256, 2048), (16, 4096, 512))

#: Linear layers (B, in, out) (CPU grid), timed as a training step runs them (``linear``): the forward
#: ``addmm(bias, x, W.t())`` (GEMM M = B, K = in, N = out, the weight transposed), the input gradient
#: ``mm(g, W)`` (B, out, in) and the weight gradient ``mm(g.t(), x)`` (out, B, in, a transposed operand). A
#: CPU runs them up to 5x off the square-GEMM curve (an fc step at batch 8-128). Work above
#: :data:`_LINEAR_MAX_FLOPS` is left to the curve (within 25 % there).
_LINEAR_BATCHES = (8, 32, 128, 512)
_LINEAR_FEATURES = (32, 128, 512, 2048)
_LINEAR_OUTPUTS = (16, 64, 256, 1024, 4096)
_LINEAR_MAX_FLOPS = 1.1e9
_LINEAR_ROLES = ("fwd", "bwd_input", "bwd_weight")
#: 2-d activations (N, C) of the kernel curves of batch norm (``BatchNorm1d`` after a linear layer, mode
#: suffix :data:`~traincost.devices.FLAT`): PyTorch's CPU batch norm runs them on another path than 4-d maps,
#: its backward 3-10x below the 4-d curve.
_FLAT_KERNEL_SHAPES = tuple((n, c) for n in (8, 64, 512) for c in (32, 256, 2048))
_FLAT_KERNEL_OPS = ("native_batch_norm", "native_batch_norm_backward")

#: Memory-bound aten ops measured on their own curve (``DeviceProfile.kernels``): PyTorch's CPU batch norm
#: and max pooling run 4-20x below the elementwise ``add`` rate every other memory-bound op is priced on,
#: dropout's mask (``bernoulli_``: one random number per element) ~100x below it; ``_to_copy`` is the
#: dtype cast autocast makes of every weight (mode = the source dtype: fp32 -> bf16, bf16 -> fp32).
#: op -> pooling windows measured ((kernel, stride, padding, ceil_mode) as the families use them).
_KERNEL_OPS = ("native_batch_norm", "native_batch_norm_backward", "max_pool2d_with_indices",
               "max_pool2d_with_indices_backward", "bernoulli_", "_to_copy")
_POOL_WINDOWS = ((2, 2, 0, False), (3, 2, 1, False), (3, 2, 0, True), (3, 1, 1, False))
#: (C, H = W) of 4-d activations; batches scale them from a few KiB to tens of MiB.
_KERNEL_MAPS = ((16, 64), (64, 32), (128, 16), (256, 8), (512, 4), (32, 112), (4, 112), (8, 64))
#: More (C, H = W) of channels_last batch norm (:data:`~traincost.devices.TAIL_KERNEL_OPS`): channel counts
#: that end each pixel in a partial AVX-512 vector above 8 (12, 24, 40), whose cost per pixel differs from
#: 8 channels' (``properties["kernel_tail_s_per_row"]``).
_TAIL_KERNEL_MAPS = ((12, 64), (24, 32), (40, 32))
#: Kernel curves that try a depth term on the activation's channels (``channels``): PyTorch's CPU batch norm
#: and pooling vectorise over C in channels_last.
_CHANNEL_KERNELS = ("native_batch_norm", "native_batch_norm_backward", "max_pool2d_with_indices",
                    "max_pool2d_with_indices_backward")
_KERNEL_MAX_BYTES = 32 << 20  # largest activation measured (fp32 bytes)
_CONV_CLASS = {"fwd": "conv", "bwd": "conv_backward", "bwd_input": "conv_bwd_input",
               "bwd_weight": "conv_bwd_weight"}
_CONV_WORK = {"fwd": 1, "bwd": 2, "bwd_input": 1, "bwd_weight": 1}
_MASKS = {"bwd_input": [True, False, False], "bwd_weight": [False, True, False], "bwd": [True, True, False]}


@dataclass(frozen=True)
class _Settings:
    """Grid and timing budget of one calibration (see :func:`_settings`)."""

    repeats: int
    target_sample_s: float
    max_inner: int
    max_call_s: float              # a size series stops growing once one call takes longer
    gemm_squares: tuple[int, ...]
    gemm_rects: tuple[tuple[int, int, int], ...]   # (M, K, N)
    conv_shapes: tuple[tuple[int, int, int, int, int], ...]
    conv_batches: tuple[int, ...]
    conv_cl_modes: tuple[str, ...]  # modes also measured in channels_last
    conv_strict: bool               # also measure fp32 conv with TF32 off (CUDA)
    mem_sizes: tuple[int, ...]      # bytes per tensor
    dispatch_n: int
    optimizer_lists: tuple[str, ...]
    deadline_s: float = 600.0       # measurement points still queued after this many seconds are skipped
    kernel_batches: tuple[int, ...] = ()   # batches of _KERNEL_MAPS for the kernel curves (() = none)
    kernel_modes: tuple[str, ...] = ()     # math modes (+ _channels_last) of the kernel curves
    first_touch_sizes: tuple[int, ...] = ()  # bytes of the fresh-allocation points (CPU; () = none)
    linear_shapes: tuple[tuple[int, int, int], ...] = ()  # (B, in, out) of the linear-layer points (() = none)
    flat_kernel_shapes: tuple[tuple[int, int], ...] = ()  # (N, C) of the 2-d batch-norm kernel points


def _geom(lo: int, hi: int, factor: int) -> tuple[int, ...]:
    out = []
    x = lo
    while x <= hi:
        out.append(x)
        x *= factor
    return tuple(out)


def _linear_shapes() -> tuple[tuple[int, int, int], ...]:
    return tuple((b, i, o) for b in _LINEAR_BATCHES for i in _LINEAR_FEATURES for o in _LINEAR_OUTPUTS
                 if 2 * b * i * o <= _LINEAR_MAX_FLOPS)


def _settings(kind: str, quick: bool, total_memory: int) -> _Settings:
    """The measurement grid. Budgets: full GPU < 3 min on an H200; quick CPU < 60 s on 2 cores."""
    if kind == "cuda":
        cap = max(4 << 20, total_memory // 16)  # three tensors of the largest size stay under 3/16 of memory
        if quick:
            return _Settings(
                repeats=3, target_sample_s=1e-3, max_inner=100, max_call_s=0.2,
                gemm_squares=(256, 1024, 4096), gemm_rects=((64, 4096, 4096),),
                conv_shapes=_CONV_SHAPES_QUICK, conv_batches=(32,), conv_cl_modes=("bf16",),
                conv_strict=False,
                mem_sizes=tuple(s for s in _geom(4 << 10, 256 << 20, 16) if s <= cap),
                dispatch_n=1000, optimizer_lists=("mlp", "resnet18_half", "many_small"), deadline_s=60.0)
        return _Settings(
            repeats=5, target_sample_s=2e-3, max_inner=200, max_call_s=0.5,
            gemm_squares=(128, 256, 512, 1024, 2048, 4096, 8192),
            gemm_rects=((64, 4096, 4096), (256, 2048, 1000), (4096, 1024, 4096), (32768, 256, 256)),
            conv_shapes=_CONV_SHAPES, conv_batches=(8, 64), conv_cl_modes=("fp32", "bf16", "fp16"),
            conv_strict=True,
            mem_sizes=tuple(s for s in _geom(4 << 10, 1 << 30, 4) if s <= cap),
            dispatch_n=2000,
            optimizer_lists=("mlp", "resnet18_half", "resnet18", "many_small", "few_large", "resnet50"),
            deadline_s=120.0)
    if quick:
        return _Settings(
            repeats=5, target_sample_s=1e-3, max_inner=500, max_call_s=0.08,
            gemm_squares=(64, 256, 768), gemm_rects=((64, 1024, 1024),),
            conv_shapes=_CONV_SHAPES_QUICK, conv_batches=(2,), conv_cl_modes=("fp32",), conv_strict=False,
            mem_sizes=_geom(4 << 10, 16 << 20, 4) + (32 << 20,),
            kernel_batches=(2, 16), kernel_modes=("fp32",), first_touch_sizes=(64 << 20,),
            dispatch_n=2000, optimizer_lists=("mlp", "resnet18_half", "many_small"), deadline_s=50.0)
    return _Settings(
        repeats=5, target_sample_s=4e-3, max_inner=1000, max_call_s=1.0,
        gemm_squares=(32, 64, 128, 256, 512, 1024, 2048),
        gemm_rects=((64, 1024, 1024), (256, 2048, 1000), (1024, 256, 1024), (8192, 64, 64)) + _GEMM_SKINNY,
        conv_shapes=_CONV_SHAPES + _CONV_SHAPES_SMALL_MAPS + _CONV_SHAPES_THIN, conv_batches=(1, 4, 16), conv_cl_modes=("fp32", "bf16"),
        conv_strict=False, mem_sizes=_geom(4 << 10, 128 << 20, 2),
        kernel_batches=(1, 8, 32), kernel_modes=("fp32", "bf16", "fp32" + CHANNELS_LAST, "bf16" + CHANNELS_LAST),
        first_touch_sizes=(16 << 20, 64 << 20, 128 << 20),
        linear_shapes=_linear_shapes(), flat_kernel_shapes=_FLAT_KERNEL_SHAPES,
        dispatch_n=5000, optimizer_lists=("tiny", "small", "mlp", "resnet18_half", "resnet18", "many_small",
                                          "few_large", "resnet50"), deadline_s=600.0)


# ------------------------------------------------------------------------------------------- devices


def parse_device(device: str) -> torch.device:
    """``'cpu'``, ``'cuda'`` or ``'cuda:N'`` -> ``torch.device``, checked against this machine.

    Raises ``TraincostUsageError`` for an unknown string, CUDA without CUDA, or a missing GPU index.
    """
    text = str(device).strip().lower()
    if text == "cpu":
        return torch.device("cpu")
    m = re.fullmatch(r"(?:cuda|gpu)(?::(\d+))?", text)
    if not m:
        raise TraincostUsageError(f"unknown device {device!r}; expected 'cpu', 'cuda' or 'cuda:N'")
    if not torch.cuda.is_available():
        built = torch.version.cuda or "no CUDA"
        raise TraincostUsageError(f"device {device!r}: CUDA is not available on this machine "
                                  f"(torch {torch.__version__}, built with {built}); use --device cpu")
    count = torch.cuda.device_count()
    index = int(m.group(1)) if m.group(1) is not None else torch.cuda.current_device()
    if index >= count:
        raise TraincostUsageError(f"device {device!r} does not exist: this machine has {count} CUDA "
                                  f"device{'s' if count != 1 else ''} (cuda:0..cuda:{count - 1})")
    return torch.device("cuda", index)


def device_name(dev: torch.device) -> str:
    """Human name: the GPU's marketing name, or ``'<CPU model> (<n> threads)'``."""
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return f"{cpu_model()} ({torch.get_num_threads()} threads)"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "device"


def device_slug(dev: torch.device) -> str:
    """File-name slug: ``cpu-2core-x86_64``, or the GPU's catalog key / name (``h200-sxm-141gb``)."""
    if dev.type == "cuda":
        key = _catalog_key(dev)
        return key or _slug(torch.cuda.get_device_name(dev))
    return f"cpu-{os.cpu_count()}core-{platform.machine().lower()}"


def _catalog_key(dev: torch.device) -> str | None:
    from traincost.catalog import resolve_gpu

    props = torch.cuda.get_device_properties(dev)
    name = props.name
    candidates = [f"{name} {round(props.total_memory / 2**30)}GB", f"{name} {round(props.total_memory / 1e9)}GB",
                  name]
    for cand in candidates:
        try:
            return resolve_gpu(cand).key
        except TraincostUsageError:
            continue
    return None


# ------------------------------------------------------------------------------------------- timing


def _stats(samples: list[float], inner: int, **extra: Any) -> dict[str, Any]:
    med = statistics.median(samples)
    return {"median_s": med, "min_s": min(samples), "max_s": max(samples), "repeats": len(samples),
            "inner": inner, "rel_range": (max(samples) - min(samples)) / med if med > 0 else 0.0, **extra}


class _CpuTimer:
    """Wall-clock timing of synchronous CPU ops."""

    kind = "cpu"

    def __init__(self, settings: _Settings) -> None:
        self.s = settings

    def sync(self) -> None:
        pass

    def measure(self, fn: Callable[[], Any]) -> dict[str, Any]:
        t0 = time.perf_counter()
        fn()  # cold call: oneDNN primitive creation, allocator warm-up
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        fn()
        est = max(time.perf_counter() - t0, 1e-7)
        inner = int(min(self.s.max_inner, max(1, math.ceil(self.s.target_sample_s / est))))
        samples = []
        for _ in range(self.s.repeats):
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            samples.append((time.perf_counter() - t0) / inner)
        return _stats(samples, inner, first_call_s=first)


class _CudaTimer:
    """Device-time measurement with CUDA events. When one call is short, a ``torch.cuda._sleep`` kernel is
    queued first so that the host runs ahead and the timed calls run back to back on the device."""

    kind = "cuda"

    def __init__(self, settings: _Settings, dev: torch.device) -> None:
        self.s = settings
        self.dev = dev
        self.cycles_per_s: float | None = None
        try:
            torch.cuda.synchronize(dev)
            a, b = self._events()
            torch.cuda._sleep(1_000_000)  # warm the sleep kernel up
            a.record()
            torch.cuda._sleep(2_000_000)
            b.record()
            b.synchronize()
            ms = a.elapsed_time(b)
            if ms > 0:
                self.cycles_per_s = 2_000_000 / (ms / 1e3)
        except Exception:  # no _sleep on this build: time without preloading
            self.cycles_per_s = None

    @staticmethod
    def _events() -> tuple[Any, Any]:
        return torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def sync(self) -> None:
        torch.cuda.synchronize(self.dev)

    def _preload(self, seconds: float) -> None:
        if self.cycles_per_s is not None and seconds > 0:
            torch.cuda._sleep(int(min(seconds, 0.05) * self.cycles_per_s))

    def measure(self, fn: Callable[[], Any]) -> dict[str, Any]:
        self.sync()
        t0 = time.perf_counter()
        fn()
        self.sync()
        first = time.perf_counter() - t0
        a, b = self._events()
        h0 = time.perf_counter()
        a.record()
        fn()
        b.record()
        host_call = time.perf_counter() - h0
        b.synchronize()
        est = max(a.elapsed_time(b) / 1e3, 1e-7)
        inner = int(min(self.s.max_inner, max(1, math.ceil(self.s.target_sample_s / est))))
        preload = est < 20 * host_call or est < 200e-6
        samples = []
        for _ in range(self.s.repeats):
            a, b = self._events()
            if preload:
                self._preload(inner * host_call * 2.0 + 200e-6)
            a.record()
            for _ in range(inner):
                fn()
            b.record()
            b.synchronize()
            samples.append(a.elapsed_time(b) / 1e3 / inner)
        return _stats(samples, inner, first_call_s=first, preloaded=bool(preload and self.cycles_per_s),
                      host_call_s=host_call)


# ------------------------------------------------------------------------------------------- math modes


@contextlib.contextmanager
def _math_mode(dev: torch.device, mode: str) -> Iterator[None]:
    """Set the TF32 switches a mode needs on CUDA (restored afterwards); nothing on a CPU."""
    if dev.type != "cuda":
        yield
        return
    base = mode.removesuffix(CHANNELS_LAST)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old_mm = torch.backends.cuda.matmul.allow_tf32
        old_cudnn = torch.backends.cudnn.allow_tf32
        try:
            torch.backends.cuda.matmul.allow_tf32 = base == "tf32"
            # PyTorch's default (True) for fp32/tf32 convolutions; off only for fp32_strict.
            torch.backends.cudnn.allow_tf32 = base != "fp32_strict"
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32 = old_mm
            torch.backends.cudnn.allow_tf32 = old_cudnn


def _cuda_modes(dev: torch.device) -> tuple[list[str], dict[str, str]]:
    major, _minor = torch.cuda.get_device_capability(dev)
    modes = ["fp32"]
    skipped: dict[str, str] = {}
    if major >= 8:
        modes.append("tf32")
    else:
        skipped["tf32"] = f"compute capability {major}.x has no TF32"
    try:
        bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:
        bf16 = torch.cuda.is_bf16_supported()
    if bf16 and major >= 8:
        modes.append("bf16")
    else:
        skipped["bf16"] = "no native bf16 on this GPU"
    modes.append("fp16")
    return modes, skipped


def _probe_rate(mode: str, n: int) -> float:
    a = torch.randn(n, n, dtype=_DTYPES[mode])
    b = torch.randn(n, n, dtype=_DTYPES[mode])
    torch.mm(a, b)
    best = float("inf")
    for _ in range(5):  # best of 5: a busy host must not decide which modes exist
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / max(best, 1e-9)


def _cpu_modes(settings: _Settings) -> tuple[list[str], dict[str, str], list[dict[str, Any]]]:
    """fp32 always; bf16 / fp16 only when a 128^3 GEMM reaches a quarter of the fp32 rate.

    The probe runs on one thread, best of 5: the ratio between dtypes, which a busy host (whose other
    processes stall a multi-threaded op for a scheduler tick) cannot distort much."""
    n = 128
    rates: dict[str, float] = {}
    probes: list[dict[str, Any]] = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for mode in ("fp32", "bf16", "fp16"):
            try:
                rates[mode] = _probe_rate(mode, n)
                probes.append({"mode": mode, "n": n, "threads": 1, "flops_per_s": rates[mode]})
            except Exception as exc:  # noqa: BLE001 - an unsupported dtype is a skip, not a failure
                probes.append({"mode": mode, "n": n, "error": _one_line(exc)})
    finally:
        torch.set_num_threads(threads)
    modes = ["fp32"]
    skipped: dict[str, str] = {"tf32": "no TF32 on a CPU"}
    for mode in ("bf16", "fp16"):
        r = rates.get(mode)
        if r is not None and r >= 0.25 * rates.get("fp32", float("inf")):
            modes.append(mode)
        else:
            skipped[mode] = (f"{mode} GEMM probe ({n}^3, 1 thread) reached {r / 1e9:.1f} GFLOP/s vs fp32 "
                             f"{rates.get('fp32', 0) / 1e9:.1f}: too slow to matter, not measured"
                             if r is not None else f"{mode} GEMM unsupported on this CPU build")
    return modes, skipped, probes


# ------------------------------------------------------------------------------------------- plan


@dataclass
class _Point:
    family: str
    label: str
    run: Callable[[], dict[str, Any]]
    series: str = ""   # points of a series run in increasing size; a slow one skips the rest


@dataclass
class _Run:
    dev: torch.device
    s: _Settings
    timer: Any
    raw: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    skipped_series: set[str] = field(default_factory=set)

    def add(self, family: str, record: dict[str, Any]) -> None:
        self.raw.setdefault(family, []).append(record)


def _randn(shape: tuple[int, ...], dtype: torch.dtype, dev: torch.device,
           memory_format: torch.memory_format | None = None) -> torch.Tensor:
    t = torch.randn(shape, dtype=dtype, device=dev)
    if memory_format is not None:
        t = t.contiguous(memory_format=memory_format)
    return t


def _gemm_point(run: _Run, mode: str, m: int, k: int, n: int) -> dict[str, Any]:
    dtype = _DTYPES[mode]
    a = _randn((m, k), dtype, run.dev)
    b = _randn((k, n), dtype, run.dev)
    with _math_mode(run.dev, mode):
        res = run.timer.measure(lambda: torch.mm(a, b))
    return {"mode": mode, "shape": [m, k, n], "work": 2 * m * k * n, **res}


def _linear_point(run: _Run, mode: str, batch: int, features: int, outputs: int, role: str) -> dict[str, Any]:
    """One GEMM of a linear layer as a training step runs it (see :data:`_LINEAR_ROLES`); ``shape`` = the
    GEMM's [M, K, N], ``op`` = the aten op (``addmm`` or ``mm``)."""
    dtype = _DTYPES[mode]
    w = _randn((outputs, features), dtype, run.dev)
    if role == "fwd":
        x, bias = _randn((batch, features), dtype, run.dev), _randn((outputs,), dtype, run.dev)
        fn, op, shape = (lambda: torch.addmm(bias, x, w.t())), "addmm", [batch, features, outputs]
    elif role == "bwd_input":
        g = _randn((batch, outputs), dtype, run.dev)
        fn, op, shape = (lambda: torch.mm(g, w)), "mm", [batch, outputs, features]
    else:
        g, x = _randn((batch, outputs), dtype, run.dev), _randn((batch, features), dtype, run.dev)
        fn, op, shape = (lambda: torch.mm(g.t(), x)), "mm", [outputs, batch, features]
    with _math_mode(run.dev, mode):
        res = run.timer.measure(fn)
    return {"mode": mode, "role": role, "op": op, "shape": shape, "work": 2 * batch * features * outputs, **res}


def _conv_point(run: _Run, mode: str, shape: tuple[int, int, int, int, int], batch: int,
                cpass: str) -> dict[str, Any]:
    cin, cout, hw, kk, stride = shape
    base = mode.removesuffix(CHANNELS_LAST)
    fmt = torch.channels_last if mode.endswith(CHANNELS_LAST) else None
    dtype = _DTYPES[base]
    pad = kk // 2
    x = _randn((batch, cin, hw, hw), dtype, run.dev, fmt)
    w = _randn((cout, cin, kk, kk), dtype, run.dev, fmt)
    args = ([stride, stride], [pad, pad], [1, 1], False, [0, 0], 1)
    ho = (hw + 2 * pad - kk) // stride + 1
    flops = 2 * batch * cout * cin * kk * kk * ho * ho
    with _math_mode(run.dev, base):
        if cpass == "fwd":
            res = run.timer.measure(lambda: torch.ops.aten.convolution(x, w, None, *args))
        else:
            go = _randn((batch, cout, ho, ho), dtype, run.dev, fmt)
            mask = _MASKS[cpass]
            res = run.timer.measure(lambda: torch.ops.aten.convolution_backward(
                go, x, w, None, *args, mask))
    return {"mode": mode, "pass": cpass, "shape": {"batch": batch, "c_in": cin, "c_out": cout, "hw": hw,
                                                    "kernel": kk, "stride": stride},
            "forward_flops": flops, "work": flops * _CONV_WORK[cpass], **res}


def _memory_point(run: _Run, nbytes: int) -> dict[str, Any]:
    n = max(1, nbytes // 4)
    a = _randn((n,), torch.float32, run.dev)
    b = _randn((n,), torch.float32, run.dev)
    c = torch.empty_like(a)
    res = run.timer.measure(lambda: torch.add(a, b, out=c))
    return {"op": "add_out", "tensor_bytes": 4 * n, "work": 3 * 4 * n, **res}


def _kernel_call(op: str, x: torch.Tensor, window: tuple[int, int, int, bool]) -> tuple[Callable[[], Any], tuple]:
    """A call of aten ``op`` on input ``x`` as a training step makes it (batch norm in training mode with
    fp32 parameters, as under autocast; pooling with ``window``), and its (args, out) for the formulas."""
    aten = torch.ops.aten
    if op == "bernoulli_":  # dropout's mask on CPU (and in the walk): empty_like(x).bernoulli_(1 - p)
        return (lambda: x.bernoulli_(0.5)), ((x, 0.5), x)
    if op == "_to_copy":  # autocast's casts: fp32 weights to the low precision, bf16 gradients back to fp32
        target = torch.float32 if x.dtype != torch.float32 else torch.bfloat16
        return (lambda: x.to(target)), ((x,), x.to(target))
    c = x.shape[1]
    params = [torch.rand(c, device=x.device) + 0.5 for _ in range(4)]  # weight, bias, running mean, var
    if op.startswith("native_batch_norm"):
        fwd_args = (x, *params, True, 0.1, 1e-5)
        y, mean, invstd = aten.native_batch_norm(*fwd_args)
        if op == "native_batch_norm":
            return (lambda: aten.native_batch_norm(*fwd_args)), (fwd_args, (y, mean, invstd))
        gy = torch.randn_like(y)
        args = (gy, x, params[0], params[2], params[3], mean, invstd, True, 1e-5, [True, True, True])
        return (lambda: aten.native_batch_norm_backward(*args)), (args, aten.native_batch_norm_backward(*args))
    k, st, pad, ceil = window
    pool_args = (x, [k, k], [st, st], [pad, pad], [1, 1], ceil)
    y, idx = aten.max_pool2d_with_indices(*pool_args)
    if op == "max_pool2d_with_indices":
        return (lambda: aten.max_pool2d_with_indices(*pool_args)), (pool_args, (y, idx))
    gy = torch.randn_like(y)
    args = (gy, x, [k, k], [st, st], [pad, pad], [1, 1], ceil, idx)
    return (lambda: aten.max_pool2d_with_indices_backward(*args)), (args, aten.max_pool2d_with_indices_backward(*args))


def _kernel_point(run: _Run, op: str, mode: str, shape: tuple[int, ...],
                  window: tuple[int, int, int, bool]) -> dict[str, Any]:
    from torch.utils._pytree import tree_map

    from traincost.flopmodel import formulas
    from traincost.flopmodel.records import TensorInfo

    base = mode.removesuffix(CHANNELS_LAST)
    fmt = torch.channels_last if mode.endswith(CHANNELS_LAST) else None
    x = _randn(shape, _DTYPES[base], run.dev, fmt)
    fn, (args, out) = _kernel_call(op, x, window)

    def info(v: Any) -> Any:
        return TensorInfo.of(v) if isinstance(v, torch.Tensor) else v

    cost = formulas.price("aten." + op, tree_map(info, args), {}, tree_map(info, out))
    res = run.timer.measure(fn)
    return {"op": op, "mode": mode + (FLAT if len(shape) == 2 else ""), "shape": list(shape),
            "window": list(window), "work": cost.bytes_read + cost.bytes_written, **res}


def _first_touch_point(run: _Run, nbytes: int) -> dict[str, Any]:
    """A fresh tensor written once (``clone``) against the same write into a tensor that exists (``copy_``):
    the difference is what the allocator and the OS add to an op whose output is newly allocated."""
    n = max(1, nbytes // 4)
    src = _randn((n,), torch.float32, run.dev)
    dst = torch.empty_like(src)
    reuse = run.timer.measure(lambda: dst.copy_(src))
    res = run.timer.measure(lambda: src.clone())
    return {"tensor_bytes": 4 * n, "work": 4 * n, "reuse_median_s": reuse["median_s"], **res}


def _reduction_point(run: _Run, nbytes: int) -> dict[str, Any]:
    n = max(1, nbytes // 4)
    a = _randn((n,), torch.float32, run.dev)
    res = run.timer.measure(lambda: a.sum())
    return {"op": "sum", "tensor_bytes": 4 * n, "work": 4 * n, **res}


def _host_loop(run: _Run, fn: Callable[[], Any], n: int, context: Callable[[], Any] | None = None
               ) -> dict[str, Any]:
    """Host seconds per call of ``fn`` in a loop of ``n`` calls, no synchronisation inside the loop."""
    samples = []
    ctx = context or contextlib.nullcontext
    with ctx():
        for _ in range(max(200, n)):  # as long as one timed loop: caches, allocator, clocks settle
            fn()
        run.timer.sync()
        for _ in range(run.s.repeats):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            t1 = time.perf_counter()
            run.timer.sync()
            samples.append((t1 - t0) / n)
    return _stats(samples, n)


def _dispatch_point(run: _Run, what: str) -> dict[str, Any]:
    dev = run.dev
    x = _randn((8,), torch.float32, dev)
    y = _randn((8,), torch.float32, dev)
    a = _randn((8, 8), torch.float32, dev)
    b = _randn((8, 8), torch.float32, dev)
    low = torch.bfloat16
    if dev.type == "cuda":
        try:
            if not torch.cuda.is_bf16_supported(including_emulation=False):
                low = torch.float16
        except TypeError:
            pass

    def autocast() -> Any:
        return torch.autocast(dev.type, dtype=low)

    n = run.s.dispatch_n
    if what == "add":
        res = _host_loop(run, lambda: torch.add(x, y), n)
        return {"op": "add", "aten_ops_per_call": 1, **res}
    if what == "mm":
        res = _host_loop(run, lambda: torch.mm(a, b), n)
        return {"op": "mm", "aten_ops_per_call": 1, **res}
    if what == "autocast_add":
        res = _host_loop(run, lambda: torch.add(x, y), n, autocast)
        return {"op": "add", "autocast": str(low).removeprefix("torch."), "aten_ops_per_call": 1, **res}
    if what == "autocast_mm":
        res = _host_loop(run, lambda: torch.mm(a, b), n, autocast)
        return {"op": "mm", "autocast": str(low).removeprefix("torch."), "aten_ops_per_call": 3, **res}
    raise ValueError(what)


def _launch_point(run: _Run) -> dict[str, Any]:
    """CUDA: device time of a tiny kernel run back to back, and the host round trip of launch + sync."""
    x = _randn((1,), torch.float32, run.dev)
    res = run.timer.measure(lambda: x.add_(1.0))
    samples = []
    for _ in range(max(run.s.repeats, 5)):
        run.timer.sync()
        t0 = time.perf_counter()
        for _ in range(20):
            x.add_(1.0)
            run.timer.sync()
        samples.append((time.perf_counter() - t0) / 20)
    return {"op": "add_", "roundtrip_s": statistics.median(samples), **res}


def _resnet_shapes(width: int, blocks: tuple[int, ...], bottleneck: bool) -> list[tuple[int, ...]]:
    shapes: list[tuple[int, ...]] = [(width, 3, 7, 7), (width,), (width,)]
    cin = width
    exp = 4 if bottleneck else 1
    for i, n in enumerate(blocks):
        w = width * 2**i
        for j in range(n):
            if bottleneck:
                convs = [(w, cin, 1, 1), (w, w, 3, 3), (w * exp, w, 1, 1)]
            else:
                convs = [(w, cin, 3, 3), (w, w, 3, 3)]
            for c in convs:
                shapes += [c, (c[0],), (c[0],)]
            if j == 0 and cin != w * exp:
                shapes += [(w * exp, cin, 1, 1), (w * exp,), (w * exp,)]
            cin = w * exp
    shapes += [(1000, cin), (1000,)]
    return shapes


def _param_list(name: str) -> list[tuple[int, ...]]:
    if name == "tiny":  # a step's fixed cost: the optimizer's Python around two tiny tensors
        return [(64,)] * 2
    if name == "small":  # a one-hidden-layer fc model: six tensors of a few KiB
        return [(64, 64), (64,), (64,), (64,), (16, 64), (16,)]
    if name == "mlp":
        return [(1024, 784), (1024,), (1024, 1024), (1024,), (10, 1024), (10,)]
    if name == "resnet18_half":
        return _resnet_shapes(32, (2, 2, 2, 2), False)
    if name == "resnet18":
        return _resnet_shapes(64, (2, 2, 2, 2), False)
    if name == "resnet50":
        return _resnet_shapes(64, (3, 4, 6, 3), True)
    if name == "many_small":
        return [(64,)] * 200 + [(64, 64, 1, 1)] * 100
    if name == "few_large":
        return [(2048, 2048)] * 4
    raise ValueError(name)


def _optimizer_point(run: _Run, opt: str, list_name: str) -> dict[str, Any]:
    shapes = _param_list(list_name)
    params = [torch.nn.Parameter(_randn(s, torch.float32, run.dev)) for s in shapes]
    for p in params:
        p.grad = _randn(tuple(p.shape), torch.float32, run.dev)
    optim = make_optimizer(opt, params)  # exactly the optimizer the walker prices
    for _ in range(2):  # state initialisation
        optim.step()
    run.timer.sync()
    t0 = time.perf_counter()
    optim.step()
    run.timer.sync()
    est = max(time.perf_counter() - t0, 1e-7)
    inner = int(min(50, max(1, math.ceil(run.s.target_sample_s / est))))
    samples = []
    for _ in range(run.s.repeats):
        run.timer.sync()
        t0 = time.perf_counter()
        for _ in range(inner):
            optim.step()
        run.timer.sync()
        samples.append((time.perf_counter() - t0) / inner)
    n_params = sum(p.numel() for p in params)
    return {"optimizer": opt, "list": list_name, "tensors": len(params), "params": n_params,
            "param_bytes": 4 * n_params, "work": 4 * n_params, **_stats(samples, inner)}


def _plan(run: _Run, modes: list[str]) -> list[_Point]:
    """Measurement points in run order: the cheap families the profile cannot do without first (memory,
    reduction, dispatch, launch, optimizer), then matmul, then convolutions (the bulk of the time), so
    that a run past ``deadline_s`` loses only conv modes measured last."""
    s = run.s
    pts: list[_Point] = []
    for nbytes in s.mem_sizes:
        pts.append(_Point("memory", f"memory add {nbytes >> 10} KiB",
                          lambda nbytes=nbytes: _memory_point(run, nbytes), "memory"))
    for nbytes in s.mem_sizes:
        pts.append(_Point("reduction", f"reduction sum {nbytes >> 10} KiB",
                          lambda nbytes=nbytes: _reduction_point(run, nbytes), "reduction"))
    for nbytes in s.first_touch_sizes:
        pts.append(_Point("first_touch", f"first touch {nbytes >> 20} MiB",
                          lambda nbytes=nbytes: _first_touch_point(run, nbytes)))
    dispatch = [_Point("dispatch", f"dispatch {what}", lambda what=what: _dispatch_point(run, what))
                for what in ("add", "mm", "autocast_add", "autocast_mm")]
    pts += dispatch
    if run.dev.type == "cuda":
        pts.append(_Point("launch", "launch latency", lambda: _launch_point(run)))
    for opt in ("sgd", "adamw"):
        for name in s.optimizer_lists:
            pts.append(_Point("optimizer", f"optimizer {opt} {name}",
                              lambda opt=opt, name=name: _optimizer_point(run, opt, name), f"optim-{opt}"))
    for mode in modes:
        for n in s.gemm_squares:
            pts.append(_Point("matmul", f"matmul {mode} {n}^3",
                              lambda mode=mode, n=n: _gemm_point(run, mode, n, n, n), f"matmul-{mode}-sq"))
        for (m, k, n) in s.gemm_rects:
            pts.append(_Point("matmul", f"matmul {mode} {m}x{k}x{n}",
                              lambda mode=mode, m=m, k=k, n=n: _gemm_point(run, mode, m, k, n)))
        for (b, i, o) in s.linear_shapes:
            for role in _LINEAR_ROLES:
                pts.append(_Point("linear", f"linear {role} {mode} b{b} {i}->{o}",
                                  lambda mode=mode, b=b, i=i, o=o, role=role:
                                  _linear_point(run, mode, b, i, o, role)))
    conv_modes = [m for m in modes if m != "tf32"]  # tf32 conv = PyTorch's default fp32 conv on CUDA
    conv_modes += [m + CHANNELS_LAST for m in s.conv_cl_modes if m in modes]
    if run.dev.type == "cuda" and s.conv_strict:
        conv_modes.append("fp32_strict")
    for mode in conv_modes:
        for cpass in _CONV_PASSES:
            for shape in s.conv_shapes:
                for batch in s.conv_batches:
                    label = f"conv {cpass} {mode} b{batch} {shape[0]}->{shape[1]} {shape[2]}px k{shape[3]}"
                    pts.append(_Point("conv", label, lambda mode=mode, shape=shape, batch=batch, cpass=cpass:
                                      _conv_point(run, mode, shape, batch, cpass),
                                      f"conv-{mode}-{cpass}-{shape}"))
    # memory curves of single ops (optional: a profile without them prices these ops on the memory curve),
    # after the convolutions so that a run past its deadline loses these first
    for op in _KERNEL_OPS:
        windows = _POOL_WINDOWS if "pool" in op else _POOL_WINDOWS[:1]
        for mode in s.kernel_modes:
            tail = op in TAIL_KERNEL_OPS and mode.endswith(CHANNELS_LAST)
            for c, hw in _KERNEL_MAPS + (_TAIL_KERNEL_MAPS if tail else ()):
                for batch in s.kernel_batches:
                    if batch * c * hw * hw * 4 > _KERNEL_MAX_BYTES:
                        continue
                    for w in windows:
                        pts.append(_Point("kernel", f"kernel {op} {mode} {batch}x{c}x{hw}x{hw} k{w[0]}s{w[1]}",
                                          lambda op=op, mode=mode, shape=(batch, c, hw, hw), w=w:
                                          _kernel_point(run, op, mode, shape, w), f"kernel-{op}-{mode}-{c}-{w}"))
    for op in _FLAT_KERNEL_OPS:
        for mode in dict.fromkeys(m.removesuffix(CHANNELS_LAST) for m in s.kernel_modes):
            for shape in s.flat_kernel_shapes:
                pts.append(_Point("kernel", f"kernel {op} {mode + FLAT} {shape[0]}x{shape[1]}",
                                  lambda op=op, mode=mode, shape=shape:
                                  _kernel_point(run, op, mode, shape, _POOL_WINDOWS[0])))
    # a second round of the (cheap) dispatch loops, far apart in time from the first: the fit keeps the
    # lower of the two, so a passing disturbance of the host does not become the profile's dispatch cost
    pts += [_Point(p.family, p.label + " (round 2)", p.run) for p in dispatch]
    return pts


def plan_size(device: str = "cpu", quick: bool = False) -> int:
    """Number of measurement points a calibration of ``device`` would run (for budgeting)."""
    dev = parse_device(device)
    total = _total_memory(dev)
    s = _settings(dev.type, quick, total)
    modes = _cuda_modes(dev)[0] if dev.type == "cuda" else ["fp32", "bf16"]
    run = _Run(dev, s, timer=None)
    return len(_plan(run, modes))


# ------------------------------------------------------------------------------------------- properties


def _total_memory(dev: torch.device) -> int:
    if dev.type == "cuda":
        return int(torch.cuda.get_device_properties(dev).total_memory)
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def _cpu_caches() -> dict[str, int]:
    out: dict[str, int] = {}
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    try:
        for idx in sorted(base.glob("index*")):
            level = (idx / "level").read_text().strip()
            kind = (idx / "type").read_text().strip().lower()
            size = (idx / "size").read_text().strip().upper()
            mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(size[-1:], 1)
            num = int(size.rstrip("KMG"))
            key = f"l{level}{'d' if kind == 'data' else 'i' if kind == 'instruction' else ''}_bytes"
            out[key] = num * mult
    except (OSError, ValueError):
        pass
    return out


def _cpu_flags() -> list[str]:
    wanted = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "amx_bf16",
              "amx_tile", "amx_fp16", "asimd", "sve", "bf16")
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.lower().startswith(("flags", "features")):
                have = set(line.split(":", 1)[1].split())
                return [f for f in wanted if f in have]
    except OSError:
        pass
    return []


def _software(dev: torch.device) -> dict[str, Any]:
    import numpy

    sw: dict[str, Any] = {"torch": torch.__version__, "python": platform.python_version(),
                          "numpy": numpy.__version__, "platform": platform.platform(),
                          "cuda": torch.version.cuda, "cudnn": None}
    if dev.type == "cuda":
        with contextlib.suppress(Exception):
            sw["cudnn"] = torch.backends.cudnn.version()
        with contextlib.suppress(Exception):
            sw["hip"] = torch.version.hip
    else:
        sw["mkldnn"] = bool(torch.backends.mkldnn.is_available())
        with contextlib.suppress(Exception):
            sw["parallel_info"] = torch.__config__.parallel_info().splitlines()[:6]
    return sw


def _properties(dev: torch.device) -> dict[str, Any]:
    props: dict[str, Any] = {"device": str(dev), "machine": platform.machine(), "cpu_model": cpu_model(),
                             "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                             "torch_interop_threads": torch.get_num_interop_threads(),
                             "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS")}
    if dev.type == "cuda":
        p = torch.cuda.get_device_properties(dev)
        props.update({
            "gpu_name": p.name, "sm_count": p.multi_processor_count,
            "compute_capability": f"{p.major}.{p.minor}", "total_memory_bytes": int(p.total_memory),
            "l2_cache_bytes": getattr(p, "L2_cache_size", None),
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
            "cudnn_enabled": bool(torch.backends.cudnn.enabled),
            "conv_fp32_uses_tf32": True,
            "matmul_fp32_uses_tf32": False,
        })
    else:
        props.update(_cpu_caches())
        props["cpu_flags"] = _cpu_flags()
        props["cpu_capability"] = str(torch.backends.cpu.get_cpu_capability())
        props["conv_fp32_uses_tf32"] = False
    return props


# ------------------------------------------------------------------------------------------- fitting


def _fit_groups(groups: dict[tuple[str, str], list[dict[str, Any]]], cache_tier: bool, prefix: str,
                errors: list[dict[str, Any]], fits: list[dict[str, Any]]) -> dict[tuple[str, str], Curve]:
    """One curve per (class or op, mode) group of measurements; a failed fit is recorded in ``errors``."""
    curves: dict[tuple[str, str], Curve] = {}
    for (cls, mode), rows in sorted(groups.items()):
        try:
            curve, rep = _fit(rows, cache_tier=cache_tier)
        except Exception as exc:  # noqa: BLE001
            errors.append({"family": "fit", "what": f"{prefix}{cls} {mode}".strip(), "error": _one_line(exc)})
            continue
        curves[(cls, mode)] = curve
        fits.append({"class": prefix.replace(" ", ":") + cls, "mode": mode, **rep.to_dict(), **curve.to_dict()})
    return curves


def _fit_curves(raw: dict[str, Any], errors: list[dict[str, Any]], fits: list[dict[str, Any]]
                ) -> tuple[dict[str, dict[str, Curve]], Curve | None, Curve | None]:
    """Compute curves per (class, mode), memory and reduction curves, from raw measurements."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in raw.get("matmul", []):
        groups.setdefault(("matmul", r["mode"]), []).append(r)
    for r in raw.get("conv", []):
        groups.setdefault((_CONV_CLASS[r["pass"]], r["mode"]), []).append(r)
    compute: dict[str, dict[str, Curve]] = {}
    for (cls, mode), curve in _fit_groups(groups, False, "", errors, fits).items():
        compute.setdefault(cls, {})[mode] = curve
    bandwidth = _fit_groups({(family, "bytes"): raw[family] for family in ("memory", "reduction") if raw.get(family)},
                            True, "", errors, fits)
    return compute, bandwidth.get(("memory", "bytes")), bandwidth.get(("reduction", "bytes"))


def _partial_vector(r: dict[str, Any], lanes: int) -> bool:
    """A channels_last kernel point of :data:`~traincost.devices.TAIL_KERNEL_OPS` whose channels are not a
    multiple of the SIMD lanes: its pixels end in partial vectors (priced by ``kernel_tail_s_per_row``)."""
    shape = r.get("shape") or []
    return (r.get("op") in TAIL_KERNEL_OPS and str(r.get("mode", "")).endswith(CHANNELS_LAST)
            and len(shape) == 4 and shape[1] % lanes != 0)


def _fit_kernels(raw: dict[str, Any], errors: list[dict[str, Any]], fits: list[dict[str, Any]], lanes: int
                 ) -> dict[str, dict[str, Curve]]:
    """Memory curves of single ops (``DeviceProfile.kernels``) per (op, mode), work = formula bytes; the
    partial-vector points (:func:`_partial_vector`) are left to :func:`_kernel_tail_table`."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in raw.get("kernel", []):
        if not _partial_vector(r, lanes):
            groups.setdefault((r["op"], r["mode"]), []).append(r)
    kernels: dict[str, dict[str, Curve]] = {}
    for (op, mode), curve in _fit_groups(groups, True, "kernel ", errors, fits).items():
        kernels.setdefault(op, {})[mode] = curve
    return kernels


def _fit(rows: list[dict[str, Any]], cache_tier: bool) -> tuple[Curve, Any]:
    """Fit one curve; with a single distinct size (a series cut short) only the peak, latency 0.

    Convolutions also try the depth term on each GEMM dimension of :data:`CONV_DEPTH_KINDS` and keep the one
    with the lowest median error (the default ``c_in_kk`` unless another is better by a clear margin):
    which dimension limits a pass differs by pass and device (a GPU's weight gradient is slow on a small
    output, a CPU's on a small reduction over 2x2 maps). Matrix multiplies try the depth term on the
    smallest of M, N and K (``min_mnk``), kept only if it clearly beats the plain curve (:func:`fit_curve`);
    batch norm and pooling kernels a depth term on the channels (``channels``) against the plain curve with
    its cache tier, kept only if it cuts the median error by the same margin."""
    work = [r["work"] for r in rows]
    times = [r["median_s"] for r in rows]
    if len(set(work)) < 2:
        return fit_curve(work, times, fixed_latency=0.0)
    if rows and _is_gemm(rows[0]):
        dims = [min(r["shape"]) for r in rows]
        curve, rep = fit_curve(work, times, depth=dims if len(set(dims)) > 1 else None)
        return (dataclasses.replace(curve, depth_kind="min_mnk") if curve.k_half > 0 else curve), rep
    if rows and rows[0].get("op") in _CHANNEL_KERNELS and not rows[0]["mode"].endswith(FLAT):
        plain = fit_curve(work, times, cache_tier=cache_tier)
        curve, rep = fit_curve(work, times, depth=[r["shape"][1] for r in rows])
        if curve.k_half > 0 and rep.median_ape < plain[1].median_ape * (1 - _DEPTH_KIND_MARGIN):
            return dataclasses.replace(curve, depth_kind="channels"), rep
        return plain
    if not (rows and isinstance(rows[0].get("shape"), dict)):
        return fit_curve(work, times, cache_tier=cache_tier)
    best = None
    for kind in CONV_DEPTH_KINDS:
        curve, rep = fit_curve(work, times, depth=[_gemm_depths(r)[kind] for r in rows], cache_tier=cache_tier)
        if curve.k_half > 0:
            curve = dataclasses.replace(curve, depth_kind=kind)
        if best is None or rep.median_ape < best[1].median_ape * (1 - _DEPTH_KIND_MARGIN):
            best = (curve, rep)
    assert best is not None
    return best


def _is_gemm(row: dict[str, Any]) -> bool:
    """A matmul measurement: ``shape`` = [M, K, N] (conv rows carry a dict, kernel rows an ``op``)."""
    shape = row.get("shape")
    return "op" not in row and isinstance(shape, list) and len(shape) == 3


#: Another depth dimension replaces the default only when it cuts the fit's median error by this fraction.
_DEPTH_KIND_MARGIN = 0.1


def _gemm_depths(row: dict[str, Any]) -> dict[str, int]:
    """The GEMM dimensions of a measured convolution (:data:`CONV_DEPTH_KINDS`), as the predictor computes
    them from shapes (:func:`traincost.predict.conv_depths`)."""
    sh = row["shape"]
    k = sh["kernel"]
    out = (sh["hw"] + 2 * (k // 2) - k) // sh["stride"] + 1
    c_in_kk, positions = sh["c_in"] * k * k, sh["batch"] * out * out
    return {"c_in_kk": c_in_kk, "c_out_kk": sh["c_out"] * k * k, "positions": positions,
            "min_c_in_kk_positions": min(c_in_kk, positions), "min_channels": min(sh["c_in"], sh["c_out"])}


def _one_line(exc: BaseException) -> str:
    first = (str(exc).splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:400]


#: Bytes an optimizer step streams per parameter byte (param, grad, state read; param, state written), for
#: telling the measured lists that fit in the cache tier from those that stream from DRAM.
_OPTIMIZER_TRAFFIC = {"sgd": 5, "adamw": 7}


def _optimizer_fit(raw: dict[str, Any], cache_bytes: float = 0.0) -> dict[str, float]:
    """Per optimizer: ``fixed_s + per_tensor_s x tensors + s_per_byte x parameter bytes`` (non-negative least
    squares over the measured lists), and ``s_per_byte_dram`` from the lists whose traffic exceeds the
    memory curve's cache tier (``cache_bytes``): in a training step forward and backward have evicted the
    parameters, gradients and state, so a model larger than the cache steps at the DRAM rate, which a
    linear fit over cached and streaming lists understates (1.5x on the CPU's ResNet-18 list)."""
    out: dict[str, float] = {}
    for opt in ("sgd", "adamw"):
        rows = [r for r in raw.get("optimizer", []) if r["optimizer"] == opt]
        if not rows:
            continue
        if len(rows) >= 3:
            fixed, per_tensor, per_byte = fit_linear_nonneg(
                [[1.0] * len(rows), [r["tensors"] for r in rows], [r["param_bytes"] for r in rows]],
                [r["median_s"] for r in rows])
        else:
            fixed, per_tensor = 0.0, 0.0
            per_byte = statistics.median(r["median_s"] / r["param_bytes"] for r in rows)
        out[f"{opt}_fixed_s"] = fixed
        out[f"{opt}_per_tensor_s"] = per_tensor
        out[f"{opt}_s_per_byte"] = per_byte
        streaming = [(r["median_s"] - fixed - per_tensor * r["tensors"]) / r["param_bytes"] for r in rows
                     if cache_bytes > 0 and r["param_bytes"] * _OPTIMIZER_TRAFFIC[opt] > cache_bytes]
        if streaming and statistics.median(streaming) > per_byte:
            out[f"{opt}_s_per_byte_dram"] = statistics.median(streaming)
    return out


# ------------------------------------------------------------------------------------------- calibrate


def _run_point(run: _Run, pt: _Point, i: int, total: int, progress: ProgressFn | None, started: float) -> None:
    """Measure one point into ``run.raw``; a failure is recorded in ``run.errors`` (never raised)."""
    s = run.s
    if progress is not None:
        progress(i, total, pt.label)
    if pt.series and pt.series in run.skipped_series:
        run.add("skipped", {"family": pt.family, "label": pt.label,
                            "reason": "an earlier, smaller size of the series exceeded max_call_s"})
        return
    if time.perf_counter() - started > s.deadline_s:
        run.add("skipped", {"family": pt.family, "label": pt.label,
                            "reason": f"calibration passed its deadline of {s.deadline_s:g} s"})
        return
    try:
        record = pt.run()
        record["label"] = pt.label
        run.add(pt.family, record)
        if pt.series and record.get("median_s", 0.0) > s.max_call_s:
            run.skipped_series.add(pt.series)
    except Exception as exc:  # noqa: BLE001 - keep what was measured, record the failure
        run.errors.append({"family": pt.family, "what": pt.label, "error": _one_line(exc),
                           "traceback": traceback.format_exc(limit=3)[-1500:]})
        if run.dev.type == "cuda":
            with contextlib.suppress(Exception):
                torch.cuda.synchronize(run.dev)
                torch.cuda.empty_cache()


def calibrate(device: str = "cuda", quick: bool = False, progress: ProgressFn | None = None) -> DeviceProfile:
    """Measure ``device`` ('cpu', 'cuda', 'cuda:N') and return its calibrated :class:`DeviceProfile`.

    ``quick`` measures a smaller grid with fewer repeats (CPU: well under a minute). ``progress`` is
    called as ``progress(done, total, label)`` before each measurement point and once at the end.
    Raises ``TraincostUsageError`` for a bad device and ``TraincostError`` only when a part the profile
    cannot do without (matmul, memory) failed entirely and no datasheet fallback exists; any other
    failure is recorded in ``raw["errors"]`` and, where a value is needed, replaced by a documented
    fallback listed in ``properties["fallbacks"]``.
    """
    dev = parse_device(device)
    started = time.perf_counter()
    cpu_started = time.process_time()
    busy_started = _host_busy_s()
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    total_memory = _total_memory(dev)
    s = _settings(dev.type, quick, total_memory)
    cuda_ctx = torch.cuda.device(dev) if dev.type == "cuda" else contextlib.nullcontext()
    with cuda_ctx:
        timer: Any = _CudaTimer(s, dev) if dev.type == "cuda" else _CpuTimer(s)
        run = _Run(dev, s, timer)
        probes: list[dict[str, Any]] = []
        if dev.type == "cuda":
            modes, skipped = _cuda_modes(dev)
        else:
            modes, skipped, probes = _cpu_modes(s)
        run.raw["probes"] = probes
        points = _plan(run, modes)
        total = len(points)
        torch.manual_seed(0)
        interrupted = False
        for i, pt in enumerate(points):
            if interrupted:
                run.add("skipped", {"family": pt.family, "label": pt.label, "reason": "interrupted"})
                continue
            try:
                _run_point(run, pt, i, total, progress, started)
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM (the CLI maps it): keep and fit what was measured
                interrupted = True
                run.add("skipped", {"family": pt.family, "label": pt.label, "reason": "interrupted"})
        if progress is not None:
            progress(total, total, "fitting")
        profile = _assemble(run, modes, skipped, quick, total_memory)
    profile.properties["interrupted"] = interrupted
    elapsed = time.perf_counter() - started
    cpu_time = time.process_time() - cpu_started
    busy = _host_busy_s()
    others = (busy - busy_started - cpu_time) if busy is not None and busy_started is not None else None
    profile.properties["calibration_s"] = round(elapsed, 2)
    profile.properties["quick"] = quick
    profile.properties["host_load"] = {
        "loadavg_start": list(load_start) if load_start else None,
        "loadavg_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "process_cpu_s_per_wall_s": round(cpu_time / elapsed, 3) if elapsed > 0 else None,
        # CPU seconds that other processes used per wall second while this ran: ~0 on a quiet host;
        # on a CPU device anything near a core means the timings are inflated.
        "other_processes_cpu_s_per_wall_s": round(max(others, 0.0) / elapsed, 3)
        if others is not None and elapsed > 0 else None,
    }
    return profile


@dataclass
class _Fitted:
    """What a fit of raw measurements gives: ``profile_fields`` are the fitted :class:`DeviceProfile` fields
    (compute, kernels, memory, reduction, dispatch_s, dispatch_autocast_s, launch_s, optimizer), passed to
    the profile as they are; ``fits`` the fit reports; ``fallbacks`` what stood in for failed parts;
    ``properties`` fitted constants kept in ``DeviceProfile.properties`` (``first_touch_s_per_byte``,
    ``conv_shape_factors``)."""

    profile_fields: dict[str, Any]
    fits: list[dict[str, Any]]
    fallbacks: list[str]
    properties: dict[str, Any] = field(default_factory=dict)


def _fit_raw(raw: dict[str, Any], kind: str, has_tf32: bool, errors: list[dict[str, Any]],
             fb: DeviceProfile | None, what: str, lanes: int) -> _Fitted:
    """Every fitted constant of a profile from its raw measurements (shared by calibrate and refit).

    ``fb``: a datasheet profile whose values stand in for a family that failed entirely (None: raise
    ``TraincostError`` when matmul or memory is missing). ``errors`` receives fit failures. ``lanes``: the
    CPU's fp32 SIMD lanes (:func:`~traincost.devices.vector_lanes`).
    """
    fits: list[dict[str, Any]] = []
    fallbacks: list[str] = []
    compute, memory, reduction = _fit_curves(raw, errors, fits)
    kernels = _fit_kernels(raw, errors, fits, lanes)

    disp: dict[tuple[str, Any], dict[str, Any]] = {}
    for r in raw.get("dispatch", []):  # the faster of the rounds of each loop
        key = (r["op"], r.get("autocast"))
        if key not in disp or r["median_s"] < disp[key]["median_s"]:
            disp[key] = r
    dispatch_s = disp[("add", None)]["median_s"] if ("add", None) in disp else None
    auto = [r["median_s"] / r["aten_ops_per_call"] for (op, ac), r in disp.items() if ac and op == "mm"]
    dispatch_autocast_s = auto[0] if auto else None
    launch_rows = raw.get("launch", [])
    launch_s = launch_rows[0]["median_s"] if launch_rows else (0.0 if kind == "cpu" else None)

    def need(name: str, value: Any, fallback: Any) -> Any:
        if value is not None:
            return value
        if fallback is None:
            errs = "; ".join(e["error"] for e in errors if e["family"] in (name, "fit"))[:300]
            raise TraincostError(f"calibration of {what} failed: no usable {name} measurement "
                                 f"({errs or 'none ran'})")
        fallbacks.append(f"{name}: datasheet-derived value used (measurement failed)")
        return fallback

    if not compute.get("matmul"):
        compute["matmul"] = need("matmul", None, dict(fb.compute["matmul"]) if fb else None)
    memory = need("memory", memory, fb.memory if fb else None)
    if reduction is None:
        reduction = memory
        fallbacks.append("reduction: memory curve used (measurement failed)")
    if dispatch_s is None:
        dispatch_s = need("dispatch", None, fb.dispatch_s if fb else DEFAULT_DISPATCH_S)
    if dispatch_autocast_s is None:
        dispatch_autocast_s = dispatch_s * 1.25
        fallbacks.append("dispatch_autocast_s: 1.25 x dispatch_s (measurement failed)")
    if launch_s is None:
        launch_s = need("launch", None, fb.launch_s if fb else 2.5e-6)

    # On a CPU, timed ops include their own dispatch: curve latencies exclude it (see traincost.devices).
    if kind == "cpu":
        compute = {cls: {m: _minus_latency(c, dispatch_s) for m, c in modes_.items()}
                   for cls, modes_ in compute.items()}
        memory = _minus_latency(memory, dispatch_s)
        reduction = _minus_latency(reduction, dispatch_s)
        kernels = {op: {m: _minus_latency(c, dispatch_s) for m, c in modes_.items()} for op, modes_ in kernels.items()}
    host_s = dispatch_s if kind == "cpu" else 0.0
    properties = {**_first_touch_fit(raw), "conv_shape_factors": _shape_factor_table(raw, compute, host_s)}
    if raw.get("linear"):
        properties["gemm_shape_factors"] = _gemm_factor_table(raw, compute, host_s)
    if kind == "cpu":
        properties["kernel_tail_s_per_row"] = _kernel_tail_table(raw, kernels, host_s, lanes)
    # On CUDA, PyTorch's default fp32 convolution is TF32: the tf32 mode of conv is the same measurement,
    # its curve and its measured shapes.
    if kind == "cuda" and has_tf32:
        table = properties["conv_shape_factors"]
        for cls, curves in compute.items():
            if cls.startswith("conv"):
                for key in ("fp32", "fp32" + CHANNELS_LAST):
                    tf32 = key.replace("fp32", "tf32")
                    if key in curves:
                        curves.setdefault(tf32, curves[key])
                    if f"{cls}/{key}" in table:
                        table.setdefault(f"{cls}/{tf32}", table[f"{cls}/{key}"])
    optimizer = _optimizer_fit(raw, memory.cache_bytes if kind == "cpu" else 0.0)
    if not optimizer and fb is not None:
        optimizer = dict(fb.optimizer)
        fallbacks.append("optimizer: datasheet-derived values used (measurement failed)")
    return _Fitted({"compute": compute, "kernels": kernels, "memory": memory, "reduction": reduction,
                    "dispatch_s": float(dispatch_s), "dispatch_autocast_s": float(dispatch_autocast_s),
                    "launch_s": float(launch_s), "optimizer": optimizer}, fits, fallbacks, properties)


def _shape_factor_table(raw: dict[str, Any], compute: dict[str, dict[str, Curve]], dispatch_s: float
                        ) -> dict[str, list[list[float]]]:
    """``properties["conv_shape_factors"]``: per conv curve (``"class/mode"``), each measured convolution as
    [C_in, C_out, kh x kw, N x H_out x W_out, measured / curve time] (:func:`traincost.devices.shape_factor`).
    ``dispatch_s``: the host part of a CPU's measured time (its curves exclude it); 0 on a GPU."""
    table: dict[str, list[list[float]]] = {}
    for r in raw.get("conv", []):
        cls = _CONV_CLASS[r["pass"]]
        curve = compute.get(cls, {}).get(r["mode"])
        if curve is None:
            continue
        depth = _gemm_depths(r)[curve.depth_kind] if curve.k_half > 0 else None
        predicted = curve.time_s(r["work"], depth)
        measured = r["median_s"] - dispatch_s
        if not (predicted > 0 and measured > 0):
            continue
        sh = r["shape"]
        k = sh["kernel"]
        out = (sh["hw"] + 2 * (k // 2) - k) // sh["stride"] + 1
        table.setdefault(f"{cls}/{r['mode']}", []).append(
            [sh["c_in"], sh["c_out"], k * k, sh["batch"] * out * out, round(measured / predicted, 4)])
    return table


def _gemm_factor_table(raw: dict[str, Any], compute: dict[str, dict[str, Curve]], dispatch_s: float
                       ) -> dict[str, list[list[float]]]:
    """``properties["gemm_shape_factors"]``: per matmul curve and aten op (``"matmul/<mode>/<op>"``, op
    ``addmm`` or ``mm``), each measured linear-layer GEMM as [M, K, N, 1, measured / curve time] (the
    coordinates :func:`traincost.devices.shape_factor` reads; the fourth is a constant). ``dispatch_s`` as
    in :func:`_shape_factor_table`."""
    table: dict[str, list[list[float]]] = {}
    for r in raw.get("linear", []):
        curve = compute.get("matmul", {}).get(r["mode"])
        if curve is None:
            continue
        predicted = curve.time_s(r["work"], min(r["shape"]) if curve.k_half > 0 else None)
        measured = r["median_s"] - dispatch_s
        if predicted > 0 and measured > 0:
            table.setdefault(f"matmul/{r['mode']}/{r['op']}", []).append(
                [*r["shape"], 1, round(measured / predicted, 4)])
    return table


def _kernel_tail_table(raw: dict[str, Any], kernels: dict[str, dict[str, Curve]], dispatch_s: float,
                       lanes: int) -> dict[str, dict[str, float]]:
    """``properties["kernel_tail_s_per_row"]``: per channels_last kernel curve of
    :data:`~traincost.devices.TAIL_KERNEL_OPS` (``"<op>/<mode>"``) and measured channel count C (not a
    multiple of ``lanes``), the median over its measured batches of (measured - dispatch - curve time) / (N x
    H x W), floored at 0: what the partial SIMD vector ending each pixel costs
    (:meth:`traincost.devices.DeviceProfile.kernel_tail_s`)."""
    per: dict[str, dict[int, list[float]]] = {}
    for r in raw.get("kernel", []):
        curve = kernels.get(r["op"], {}).get(r["mode"])
        if curve is None or not _partial_vector(r, lanes):
            continue
        n, c, h, w = r["shape"]
        predicted = curve.time_s(r["work"], c if curve.k_half > 0 else None)
        per.setdefault(f"{r['op']}/{r['mode']}", {}).setdefault(c, []).append(
            max(0.0, r["median_s"] - dispatch_s - predicted) / (n * h * w))
    return {key: {str(c): float(statistics.median(v)) for c, v in sorted(by_c.items())}
            for key, by_c in sorted(per.items())}


def _first_touch_fit(raw: dict[str, Any]) -> dict[str, float]:
    """``first_touch_s_per_byte``: the median over the measured sizes at or above
    :data:`~traincost.devices.FIRST_TOUCH_MIN_BYTES` of (fresh - reused write) / bytes, floored at 0; {}
    without such measurements. Below that size glibc serves a freed block again without asking the OS."""
    rows = [r for r in raw.get("first_touch", []) if r["tensor_bytes"] >= FIRST_TOUCH_MIN_BYTES]
    if not rows:
        return {}
    per_byte = [max(0.0, r["median_s"] - r["reuse_median_s"]) / r["tensor_bytes"] for r in rows]
    return {"first_touch_s_per_byte": float(statistics.median(per_byte))}


def _spread(raw: dict[str, Any]) -> dict[str, Any]:
    measured = {fam: rows for fam, rows in raw.items()
                if fam not in ("probes", "skipped", "fits", "errors") and isinstance(rows, list)}
    spread: dict[str, Any] = summarize_spread([r["rel_range"] for rows in measured.values() for r in rows
                                               if isinstance(r, dict) and "rel_range" in r])
    spread["by_family"] = {fam: summarize_spread([r["rel_range"] for r in rows
                                                  if isinstance(r, dict) and "rel_range" in r])
                           for fam, rows in measured.items()}
    return spread


def _datasheet_fallback(catalog_key: str | None) -> DeviceProfile | None:
    if catalog_key is None:
        return None
    from traincost.catalog import load_gpus

    spec = next((g for g in load_gpus() if g.key == catalog_key), None)
    return datasheet_profile(spec) if spec is not None else None


def _assemble(run: _Run, modes: list[str], skipped: dict[str, str], quick: bool,
              total_memory: int) -> DeviceProfile:
    dev = run.dev
    catalog_key = _catalog_key(dev) if dev.type == "cuda" else None
    props = _properties(dev)
    fitted = _fit_raw(run.raw, dev.type, "tf32" in modes, run.errors, _datasheet_fallback(catalog_key), str(dev),
                      vector_lanes(props))
    props["modes"] = modes
    props["modes_skipped"] = skipped
    props["fallbacks"] = fitted.fallbacks
    props.update(fitted.properties)
    props["curve_latency_excludes_dispatch"] = True
    props["timing"] = ("CUDA events, device time; tiny kernels preloaded behind torch.cuda._sleep"
                       if dev.type == "cuda" else "time.perf_counter, synchronous wall time")
    props["settings"] = {"repeats": run.s.repeats, "target_sample_s": run.s.target_sample_s,
                         "max_call_s": run.s.max_call_s, "deadline_s": run.s.deadline_s,
                         "points_skipped": len(run.raw.get("skipped", []))}
    raw: dict[str, Any] = dict(run.raw)
    raw["fits"] = fitted.fits
    raw["errors"] = run.errors
    return DeviceProfile(
        schema_version=SCHEMA_VERSION,
        source="calibrated",
        name=device_name(dev),
        kind=dev.type,
        catalog_key=catalog_key,
        memory_bytes=total_memory if total_memory > 0 else 1,
        **fitted.profile_fields,
        software=_software(dev),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        properties=props,
        raw=raw,
        spread=_spread(run.raw),
    )


def refit(profile: DeviceProfile) -> DeviceProfile:
    """Fit every curve of a calibrated profile again from its ``raw`` measurements (no device needed):
    for a profile measured by an older traincost, or on another machine. Measurements, software and
    device properties are kept; ``properties["refit"]`` records the date."""
    from dataclasses import replace as _replace

    if profile.source != "calibrated":
        raise TraincostUsageError(f"only calibrated profiles can be refitted, {profile.name!r} is "
                                  f"{profile.source!r}")
    raw = {k: v for k, v in profile.raw.items() if k not in ("fits", "errors")}
    errors = [e for e in profile.raw.get("errors", []) if e.get("family") != "fit"]
    has_tf32 = "tf32" in profile.properties.get("modes", [])
    fitted = _fit_raw(raw, profile.kind, has_tf32, errors, _datasheet_fallback(profile.catalog_key), profile.name,
                      vector_lanes(profile.properties))
    props = dict(profile.properties)
    props["fallbacks"] = fitted.fallbacks
    props.update(fitted.properties)
    props["refit"] = _dt.date.today().isoformat()
    return _replace(profile, **fitted.profile_fields, properties=props,
                    raw={**raw, "fits": fitted.fits, "errors": errors}, spread=_spread(raw))


def _host_busy_s() -> float | None:
    """Busy CPU seconds of the whole host since boot (Linux ``/proc/stat``), or None elsewhere."""
    try:
        fields_ = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields_[:8])
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _minus_latency(curve: Curve, dispatch_s: float) -> Curve:
    """The curve with ``dispatch_s`` taken out of its latency (every other parameter kept)."""
    return dataclasses.replace(curve, latency_s=max(0.0, curve.latency_s - dispatch_s))


if __name__ == "__main__":  # pragma: no cover - a debugging entry point; the CLI is `traincost calibrate`
    prof = calibrate(sys.argv[1] if len(sys.argv) > 1 else "cpu", quick=True,
                     progress=lambda d, t, label: print(f"{d}/{t} {label}", file=sys.stderr))
    print(prof.to_dict()["compute"])
