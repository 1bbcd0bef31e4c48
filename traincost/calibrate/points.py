"""Measuring single points: one function per family, each a raw record of one shape, mode and size.

Inputs are fresh ``torch.randn`` tensors per point (never zeros: some kernels shortcut on them). The
families:

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
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from traincost.calibrate.grid import _CONV_WORK, _DTYPES, _MASKS, _Settings
from traincost.calibrate.timing import _stats
from traincost.flopmodel.walker import make_optimizer
from traincost.hardware.profile import CHANNELS_LAST, FLAT


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
