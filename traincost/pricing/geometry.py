"""Shapes of priced ops: math mode, compute class, GEMM and convolution dimensions from an op's input shapes.

Pure functions of shapes and dtypes, shared by the op table and the learned correction's features.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Sequence

from traincost.hardware.profile import CONV_DEPTH_KINDS, FIRST_TOUCH_MIN_BYTES

_AUTOCAST = ("bf16", "fp16")


_MODE_OF_DTYPE = {"bfloat16": "bf16", "float16": "fp16"}


_FLOAT_DTYPES = ("float32", "float64", "bfloat16", "float16")


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
    """The depth the op table (``OpTable.depth``) passes to the op's curve: for a convolution the
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
    conv curve's depth term may use (:data:`traincost.hardware.profile.CONV_DEPTH_KINDS`, ``Curve.depth_kind``):
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
    the coordinates of :func:`traincost.hardware.profile.shape_factor`; zeros when the shapes are not a conv's."""
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
    channels_last kernel, :meth:`~traincost.hardware.profile.DeviceProfile.kernel_tail_s`), else 0."""
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
