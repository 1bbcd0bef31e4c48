"""The measurement grid of a calibration: math modes' dtypes, the shapes of every family, and the settings
(sizes, repeats, time budget) per device kind and quick / full run (:func:`_settings`).

It also says how raw records are keyed where measuring and fitting must agree (a conv pass's compute class
and work multiple, the kernels whose curves try a channels depth term) and how a failure is written into
``raw["errors"]`` (:func:`_one_line`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from traincost.hardware.profile import CHANNELS_LAST

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
#: suffix :data:`~traincost.hardware.profile.FLAT`): PyTorch's CPU batch norm runs them on another path than 4-d maps,
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
#: More (C, H = W) of channels_last batch norm (:data:`~traincost.hardware.profile.TAIL_KERNEL_OPS`): channel counts
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


def _one_line(exc: BaseException) -> str:
    """A failure as one line for ``raw["errors"]``: its type and the first line of its message."""
    first = (str(exc).splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:400]
