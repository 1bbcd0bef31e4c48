"""Registry of per-op formulas: aten op -> FLOPs, bytes moved and operator class.

The walker calls :func:`price` once per aten op of a training step, with the op's
overload-packet name (``str(func.overloadpacket)``, e.g. ``"aten.convolution"``) and its
arguments and result as pytrees in which every tensor is a :class:`TensorInfo`.
Every formula is a pure function of shapes, dtypes and the non-tensor arguments.

Conventions
-----------
* ``flops`` counts 2 per multiply-add (FLOPs, not MACs), as ``torch.utils.flop_counter``.
  Elementwise ops count one FLOP per output element per arithmetic operation; each
  transcendental (exp, log, erf, tanh, sqrt, ...) counts as one operation. The per-op
  constants are the ``*_FLOPS`` tables below, each written as the arithmetic it counts.
* ``bytes_read`` defaults to the bytes of every tensor in ``args`` and ``kwargs`` (lists
  summed; ``out=``-style kwargs excluded), ``bytes_written`` to the bytes of every tensor
  in ``out``. Formulas override this where the default misstates the traffic (in-place
  copies, fills, gathers, scatters, pooling/loss backward, two-pass norms, conv backward
  output masks, fused optimizers); each override says why in its docstring or comment.
* ``op_class`` is one of :data:`traincost.flopmodel.records.OP_CLASSES`.
* Ops in :data:`FREE_OPS` (views, metadata, aliasing, pure allocation, profiler markers)
  cost ``OpCost(0, 0, 0, "free")``. Any other op without a formula prices as ``None``: the
  walker reports it as unpriced, never as silently zero.
* A registered formula that cannot read its arguments raises :class:`FormulaError`.

Where this deliberately differs from ``torch.utils.flop_counter``
-----------------------------------------------------------------
* ``addmm``/``baddbmm`` add one FLOP per output element for the bias add (``beta != 0``);
  a convolution with a bias adds one FLOP per output element; ``flop_counter`` counts
  the products only. ``mm``, ``bmm``, bias-free convolutions and the SDPA ops agree exactly.
* ``convolution_backward``: grad_weight of a *grouped* convolution costs the forward FLOPs;
  ``flop_counter`` multiplies it by ``groups`` (it treats the weight-gradient conv as
  ungrouped), which overstates a depthwise conv's weight gradient by its channel count.
  For ``groups == 1`` the two agree exactly. The bias gradient (``output_mask[2]``) adds a
  reduction over grad_output (one FLOP per element), which ``flop_counter`` leaves out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from math import ceil, floor, log2, prod

from traincost.errors import TraincostError
from traincost.flopmodel.records import OP_CLASSES, OpCost, TensorInfo

__all__ = ["FREE_OPS", "FormulaError", "price", "registered_ops"]


class FormulaError(TraincostError):
    """A registered formula could not read the arguments it was given (a bug, not bad input)."""


Formula = Callable[[tuple, dict, object], OpCost]

_REGISTRY: dict[str, Formula] = {}

_FREE = OpCost(0, 0, 0, "free")

#: Views, metadata queries, aliasing, pure allocation and profiler markers: no kernel runs.
FREE_OPS: frozenset[str] = frozenset(
    "aten." + n
    for n in (
        # views and reshapes that never copy
        "view", "_unsafe_view", "_reshape_alias", "view_as", "t", "t_", "transpose", "transpose_",
        "permute", "expand", "expand_as", "squeeze", "squeeze_", "unsqueeze", "unsqueeze_",
        "select", "slice", "narrow", "as_strided", "as_strided_", "alias", "detach", "detach_",
        "split", "split_with_sizes", "unsafe_split", "unsafe_split_with_sizes", "chunk",
        "unsafe_chunk", "unbind", "tensor_split", "diagonal", "unfold", "movedim", "swapaxes",
        "swapdims", "view_as_real", "view_as_complex", "real", "imag", "_conj", "conj",
        "_neg_view", "resolve_conj", "resolve_neg", "lift", "lift_fresh", "set_",
        # allocation without initialisation
        "empty", "empty_like", "empty_strided", "empty_permuted", "new_empty", "new_empty_strided",
        "resize_", "resize_as_", "_resize_output_",
        # metadata and bookkeeping
        "sym_size", "sym_stride", "sym_numel", "sym_storage_offset", "size", "stride", "dim",
        "numel", "is_contiguous", "is_same_size", "is_complex", "is_floating_point", "is_nonzero",
        "_has_compatible_shallow_copy_type", "record_stream", "_version",
        "_assert_scalar", "_assert_tensor_metadata", "_assert_async", "sym_constrain_range",
        "sym_constrain_range_for_size", "_functional_sym_constrain_range",
        "_functional_sym_constrain_range_for_size", "requires_grad_", "retain_grad",
    )
) | frozenset(
    {
        "prim.device",
        "prim.layout",
        "prim.dtype",
        "profiler._record_function_enter",
        "profiler._record_function_enter_new",
        "profiler._record_function_exit",
    }
)


# --------------------------------------------------------------------------------------
# pytree helpers


def _tensors(obj: object) -> Iterator[TensorInfo]:
    """Every TensorInfo in a pytree of tuples, lists and dicts."""
    if isinstance(obj, TensorInfo):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for x in obj:
            yield from _tensors(x)
    elif isinstance(obj, dict):
        for x in obj.values():
            yield from _tensors(x)


def _nbytes(obj: object) -> int:
    return sum(t.nbytes for t in _tensors(obj))


def _numel(obj: object) -> int:
    return sum(t.numel for t in _tensors(obj))


# kwarg-only names that hold results of ``.out`` overloads: written, not read.
_OUT_KWARGS = frozenset(
    {"out", "out0", "out1", "out2", "out3", "output", "grad_input", "grad_weight", "grad_bias",
     "save_mean", "save_invstd", "reserve", "total_weight", "indices"}
)


def _in_kwargs(kwargs: dict) -> dict:
    return {k: v for k, v in kwargs.items() if k not in _OUT_KWARGS}


def _read(args: tuple, kwargs: dict) -> int:
    """Default bytes read: every input tensor once."""
    return _nbytes(args) + _nbytes(_in_kwargs(kwargs))


def _get(args: tuple, kwargs: dict, i: int, name: str, default: object = None) -> object:
    """Argument ``i`` (positional) or ``name`` (keyword), else ``default``."""
    if len(args) > i:
        return args[i]
    return kwargs.get(name, default)


def _tensor(x: object, what: str) -> TensorInfo:
    if not isinstance(x, TensorInfo):
        raise FormulaError(f"expected a tensor for {what}, got {x!r}")
    return x


def _first_tensor(obj: object) -> TensorInfo | None:
    return next(_tensors(obj), None)


def _out_numel(args: tuple, out: object) -> int:
    """Elements of the (first) output; of the first tensor argument when out has none."""
    t = _first_tensor(out)
    if t is None:
        t = _first_tensor(args)
    return t.numel if t is not None else 0


def _cost(flops: int, read: int, written: int, op_class: str) -> OpCost:
    assert op_class in OP_CLASSES, op_class
    return OpCost(int(flops), int(read), int(written), op_class)


def _register(*names: str) -> Callable[[Formula], Formula]:
    def deco(f: Formula) -> Formula:
        for n in names:
            key = n if "." in n else "aten." + n
            if key in _REGISTRY:
                raise RuntimeError(f"duplicate formula for {key}")
            _REGISTRY[key] = f
        return f

    return deco


def _is_one(x: object) -> bool:
    return x is None or (isinstance(x, (int, float)) and not isinstance(x, bool) and x == 1)


# --------------------------------------------------------------------------------------
# matmul


def _mm_flops(a: TensorInfo, b: TensorInfo) -> int:
    m, k = a.shape
    k2, n = b.shape
    if k != k2:
        raise FormulaError(f"mm: inner dimensions differ: {a.shape} @ {b.shape}")
    return 2 * m * n * k


def _bmm_flops(a: TensorInfo, b: TensorInfo) -> int:
    bs, m, k = a.shape
    bs2, k2, n = b.shape
    if k != k2 or bs != bs2:
        raise FormulaError(f"bmm: shapes do not match: {a.shape} @ {b.shape}")
    return 2 * bs * m * n * k


@_register("mm", "_scaled_mm", "_int_mm")
def _mm(args, kwargs, out):
    """2*m*n*k."""
    a, b = _tensor(args[0], "mm self"), _tensor(args[1], "mm mat2")
    return _cost(_mm_flops(a, b), _read(args, kwargs), _nbytes(out), "matmul")


@_register("addmm")
def _addmm(args, kwargs, out):
    """2*m*n*k for the product + m*n for the bias add (none when beta == 0)."""
    a, b = _tensor(args[1], "addmm mat1"), _tensor(args[2], "addmm mat2")
    beta = _get(args, kwargs, 3, "beta", 1)
    bias_add = 0 if beta == 0 else a.shape[0] * b.shape[1]
    return _cost(_mm_flops(a, b) + bias_add, _read(args, kwargs), _nbytes(out), "matmul")


@_register("bmm")
def _bmm(args, kwargs, out):
    """2*b*m*n*k."""
    a, b = _tensor(args[0], "bmm self"), _tensor(args[1], "bmm mat2")
    return _cost(_bmm_flops(a, b), _read(args, kwargs), _nbytes(out), "matmul")


@_register("baddbmm")
def _baddbmm(args, kwargs, out):
    """2*b*m*n*k for the product + b*m*n for adding ``self`` (none when beta == 0)."""
    a, b = _tensor(args[1], "baddbmm batch1"), _tensor(args[2], "baddbmm batch2")
    beta = _get(args, kwargs, 3, "beta", 1)
    add = 0 if beta == 0 else a.shape[0] * a.shape[1] * b.shape[2]
    return _cost(_bmm_flops(a, b) + add, _read(args, kwargs), _nbytes(out), "matmul")


@_register("matmul", "mv", "dot", "vdot")
def _matmul(args, kwargs, out):
    """Broadcast matmul: 2 * (output elements) * k, k = the contracted size (a.shape[-1])."""
    a = _tensor(args[0], "matmul self")
    k = a.shape[-1] if a.shape else 1
    n_out = max(_out_numel(args, out), 1)
    return _cost(2 * n_out * k, _read(args, kwargs), _nbytes(out), "matmul")


@_register("addmv")
def _addmv(args, kwargs, out):
    """2*m*k for the product + m for adding ``self``."""
    a = _tensor(args[1], "addmv mat")
    m, k = a.shape
    beta = _get(args, kwargs, 3, "beta", 1)
    return _cost(2 * m * k + (0 if beta == 0 else m), _read(args, kwargs), _nbytes(out), "matmul")


@_register("linear")
def _linear(args, kwargs, out):
    """2 * rows * in * out for the product + rows * out for the bias (composite; rarely seen)."""
    x, w = _tensor(args[0], "linear input"), _tensor(args[1], "linear weight")
    bias = _get(args, kwargs, 2, "bias")
    rows = prod(x.shape[:-1])
    n_out, n_in = w.shape
    flops = 2 * rows * n_in * n_out + (rows * n_out if isinstance(bias, TensorInfo) else 0)
    return _cost(flops, _read(args, kwargs), _nbytes(out), "matmul")


# --------------------------------------------------------------------------------------
# convolution


def _conv_flops(x: TensorInfo, w: TensorInfo, y: TensorInfo, transposed: bool) -> int:
    """Forward FLOPs of a (possibly grouped) convolution, ``torch.utils.flop_counter`` style.

    Normal: 2 * N * prod(out spatial) * C_out * (C_in / groups) * prod(kernel), with the
    weight (C_out, C_in/groups, *k). Transposed: the weight is (C_in, C_out/groups, *k) and
    every *input* point is multiplied with the kernel: 2 * N * prod(in spatial) * C_in *
    (C_out/groups) * prod(kernel). Padding is not discounted.
    """
    spatial = (x if transposed else y).shape[2:]
    c0, c1, *kernel = w.shape
    return 2 * x.shape[0] * prod(spatial) * c0 * c1 * prod(kernel)


def _conv_forward(transposed: bool | int, bias_index: int | None) -> Formula:
    """``transposed``: a bool, or the index of the op's ``transposed`` argument."""

    def formula(args, kwargs, out):
        x, w = _tensor(args[0], "conv input"), _tensor(args[1], "conv weight")
        y = _tensor(_first_tensor(out), "conv output")
        tr = bool(args[transposed]) if not isinstance(transposed, bool) else transposed
        flops = _conv_flops(x, w, y, tr)
        if bias_index is not None:
            bias = _get(args, kwargs, bias_index, "bias")
            if isinstance(bias, TensorInfo):
                flops += y.numel  # bias add: one per output element
        return _cost(flops, _read(args, kwargs), _nbytes(out), "conv")

    formula.__doc__ = "Convolution forward: products (flop_counter) + 1 per output for a bias."
    return formula


_register("convolution", "_convolution", "convolution_overrideable")(_conv_forward(6, 2))
_register("conv1d", "conv2d", "conv3d")(_conv_forward(False, 2))
_register("conv_transpose1d", "conv_transpose2d", "conv_transpose3d")(_conv_forward(True, 2))
_register("cudnn_convolution")(_conv_forward(False, None))
_register("cudnn_convolution_transpose")(_conv_forward(True, None))
_register("miopen_convolution", "miopen_depthwise_convolution", "mkldnn_convolution")(
    _conv_forward(False, 2)
)
_register("miopen_convolution_transpose")(_conv_forward(True, 2))
_register(
    "_slow_conv2d_forward", "thnn_conv2d", "_conv_depthwise2d", "conv_depthwise3d",
    "slow_conv3d_forward", "slow_conv3d", "slow_conv_dilated2d", "slow_conv_dilated3d",
)(_conv_forward(False, 3))
_register("slow_conv_transpose2d", "slow_conv_transpose3d")(_conv_forward(True, 3))


def _conv_backward(transposed_index: int | None, mask_index: int) -> Formula:
    def formula(args, kwargs, out):
        go = _tensor(args[0], "grad_output")
        x = _tensor(args[1], "conv input")
        w = _tensor(args[2], "conv weight")
        transposed = bool(args[transposed_index]) if transposed_index is not None else False
        mask = _get(args, kwargs, mask_index, "output_mask", (True, True, True))
        fwd = _conv_flops(x, w, go, transposed)
        flops = 0
        read = go.nbytes
        if mask[0]:  # grad_input = conv_transpose(grad_output, weight): the forward FLOPs
            flops += fwd
            read += w.nbytes
        if mask[1]:  # grad_weight = conv(input, grad_output): the forward FLOPs
            flops += fwd
            read += x.nbytes
        if len(mask) > 2 and mask[2]:  # grad_bias = sum of grad_output over N and space
            flops += go.numel
        # bytes: grad_output always; weight only for grad_input, input only for grad_weight
        return _cost(flops, read, _nbytes(out), "conv")

    formula.__doc__ = (
        "Convolution backward: grad_input and grad_weight each cost the forward FLOPs "
        "(grouped convs included), grad_bias one add per grad_output element."
    )
    return formula


_register("convolution_backward")(_conv_backward(7, 10))
# convolution_backward_overrideable has no bias_sizes argument: transposed is argument 6
_register("convolution_backward_overrideable")(_conv_backward(6, 9))
_register("_slow_conv2d_backward")(_conv_backward(None, 6))


# --------------------------------------------------------------------------------------
# scaled dot-product attention (formulas of torch.utils.flop_counter)


def _sdpa_flops(q: tuple, k: tuple, v: tuple) -> int:
    """Q @ K^T (2*b*h*s_q*s_k*d_q) + P @ V (2*b*h*s_q*s_k*d_v); GQA: h = query heads."""
    b, h, s_q, d_q = q
    _, h_kv, s_k, d_k = k
    d_v = v[-1]
    if d_k != d_q or h % h_kv:
        raise FormulaError(f"sdpa: incompatible q {q}, k {k}, v {v}")
    return 2 * b * h * s_q * s_k * d_q + 2 * b * h * s_q * s_k * d_v


def _sdpa_backward_flops(go: tuple, q: tuple, k: tuple, v: tuple) -> int:
    """Recompute scores (QK^T), dP = dO V^T, dV = P^T dO, dQ = dS K, dK = dS^T Q: five bmms."""
    b, h, s_q, d_q = q
    _, h_kv, s_k, d_k = k
    d_v = v[-1]
    if d_k != d_q or h % h_kv or tuple(go[:3]) != (b, h, s_q):
        raise FormulaError(f"sdpa backward: incompatible grad {go}, q {q}, k {k}, v {v}")
    return 2 * b * h * (
        s_q * d_q * s_k  # scores
        + s_q * d_v * s_k  # grad of P
        + s_k * s_q * d_v  # grad V
        + s_q * s_k * d_q  # grad Q
        + d_q * s_q * s_k  # grad K
    )


def _bhsd(t: TensorInfo, layout_bshd: bool) -> tuple:
    s = t.shape
    return (s[0], s[2], s[1], s[3]) if layout_bshd else tuple(s)


def _sdpa_forward(layout_bshd: bool = False) -> Formula:
    def formula(args, kwargs, out):
        q, k, v = (_tensor(args[i], "q/k/v") for i in range(3))
        flops = _sdpa_flops(_bhsd(q, layout_bshd), _bhsd(k, layout_bshd), _bhsd(v, layout_bshd))
        # bytes: q, k, v (+ an attention mask/bias) read; output + logsumexp written.
        # The L x L score matrix never reaches memory in the fused kernels.
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        written = sum(t.nbytes for t in outs[:2] if isinstance(t, TensorInfo))
        return _cost(flops, _read(args, kwargs), written, "attention")

    formula.__doc__ = "Fused SDPA forward: the two bmms of torch.utils.flop_counter."
    return formula


def _sdpa_backward(layout_bshd: bool = False) -> Formula:
    def formula(args, kwargs, out):
        go, q, k, v = (_tensor(args[i], "grad/q/k/v") for i in range(4))
        flops = _sdpa_backward_flops(
            _bhsd(go, layout_bshd), _bhsd(q, layout_bshd), _bhsd(k, layout_bshd),
            _bhsd(v, layout_bshd),
        )
        # bytes: grad_out, q, k, v, out, logsumexp (+ mask, rng state) read; grads written.
        return _cost(flops, _read(args, kwargs), _nbytes(out), "attention")

    formula.__doc__ = "Fused SDPA backward: the five bmms of torch.utils.flop_counter."
    return formula


_register(
    "_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_cudnn_attention", "_scaled_dot_product_flash_attention_for_cpu",
    "_scaled_dot_product_fused_attention_overrideable",
)(_sdpa_forward())
_register(
    "_scaled_dot_product_flash_attention_backward",
    "_scaled_dot_product_efficient_attention_backward",
    "_scaled_dot_product_cudnn_attention_backward",
    "_scaled_dot_product_flash_attention_for_cpu_backward",
    "_scaled_dot_product_fused_attention_overrideable_backward",
)(_sdpa_backward())
# the low-level kernels take (batch, seq, heads, dim) tensors
_register("_flash_attention_forward", "_efficient_attention_forward")(_sdpa_forward(True))
_register("_flash_attention_backward", "_efficient_attention_backward")(_sdpa_backward(True))


# --------------------------------------------------------------------------------------
# elementwise


def _alpha(extra_index: int) -> Callable[[tuple, dict], int]:
    """1 for the op, +1 when an ``alpha`` scale other than 1 multiplies the second operand."""
    return lambda a, kw: 1 + (0 if _is_one(_get(a, kw, extra_index, "alpha", 1)) else 1)


def _value_scaled(a: tuple, kw: dict) -> int:
    """addcmul/addcdiv: t1 (*|/) t2, + self = 2; +1 when ``value`` != 1 scales the product."""
    return 2 + (0 if _is_one(_get(a, kw, 3, "value", 1)) else 1)


def _gelu(a: tuple, kw: dict) -> int:
    # erf form: x/sqrt2, erf, +1, *x, *0.5 = 5.
    # tanh form: x*x*x (2), *0.044715, +x, *sqrt(2/pi), tanh, +1, *x, *0.5 = 9.
    return 9 if _get(a, kw, 1, "approximate", "none") == "tanh" else 5


def _gelu_backward(a: tuple, kw: dict) -> int:
    # erf form: cdf = 0.5*(1+erf(x/sqrt2)) (4), pdf = exp(-x*x/2)/sqrt(2pi) (4),
    #           x*pdf + cdf (2), *grad (1) = 11.
    # tanh form: inner k*(x + c*x^3) (5), tanh (1), 0.5*(1+t) (2), 1-t*t (2),
    #            k*(1+3c*x^2) (3), 0.5*x*sech2*dinner (3), sum (1), *grad (1) = 18.
    return 18 if _get(a, kw, 2, "approximate", "none") == "tanh" else 11


def _clamp(a: tuple, kw: dict) -> int:
    # one compare-select per bound given
    return max(1, sum(_get(a, kw, i, n) is not None for i, n in ((1, "min"), (2, "max"))))


#: FLOPs per output element. Ints are constants; callables read the arguments.
#: Each op is registered out of place and in place (``name`` and ``name_``).
ELEMENTWISE_FLOPS: dict[str, int | Callable[[tuple, dict], int]] = {
    # binary arithmetic: one operation (+1 for an alpha scale)
    "add": _alpha(2), "sub": _alpha(2), "rsub": _alpha(2), "mul": 1, "div": 1,
    "true_divide": 1, "floor_divide": 2, "remainder": 3, "fmod": 2, "pow": 1,
    "maximum": 1, "minimum": 1, "fmax": 1, "fmin": 1, "atan2": 1, "copysign": 1, "xlogy": 2,
    # unary arithmetic and transcendentals: one operation
    "neg": 1, "abs": 1, "sign": 1, "sgn": 1, "reciprocal": 1, "sqrt": 1, "rsqrt": 1,
    "square": 1, "exp": 1, "exp2": 1, "expm1": 1, "log": 1, "log2": 1, "log10": 1,
    "log1p": 1, "sin": 1, "cos": 1, "tan": 1, "erf": 1, "erfc": 1, "erfinv": 1,
    "floor": 1, "ceil": 1, "round": 1, "trunc": 1, "frac": 1, "tanh": 1, "atan": 1,
    "nan_to_num": 3,  # isnan, isinf, select
    # compound arithmetic
    "addcmul": _value_scaled,  # self + value * t1 * t2
    "addcdiv": _value_scaled,  # self + value * t1 / t2
    "lerp": 3,  # self + weight * (end - self): sub, mul, add
    "clamp": _clamp, "clip": _clamp, "clamp_min": 1, "clamp_max": 1,
    # comparisons, logic and selects: one operation
    "eq": 1, "ne": 1, "lt": 1, "le": 1, "gt": 1, "ge": 1, "logical_and": 1, "logical_or": 1,
    "logical_xor": 1, "logical_not": 1, "bitwise_and": 1, "bitwise_or": 1, "bitwise_xor": 1,
    "bitwise_not": 1, "isnan": 1, "isinf": 2, "isfinite": 2, "where": 1, "masked_fill": 1,
    # activations and their backward
    "relu": 1,  # max(x, 0)
    "threshold": 1,  # x > t ? x : v
    "threshold_backward": 1,  # x > t ? grad : 0
    "leaky_relu": 2,  # compare, mul
    "leaky_relu_backward": 2,  # compare, mul
    "hardtanh": 2,  # max, min (relu6 decomposes here)
    "hardtanh_backward": 2,  # two compares -> select
    "hardsigmoid": 4,  # x/6 + 0.5 (2), clamp to [0, 1] (2)
    "hardsigmoid_backward": 3,  # two compares, grad/6
    "hardswish": 5,  # x * hardsigmoid(x): 4 + 1
    "hardswish_backward": 5,  # two compares, (2x + 3)/6 (2), * grad
    "sigmoid": 4,  # 1 / (1 + exp(-x)): neg, exp, add, div
    "sigmoid_backward": 3,  # grad * y * (1 - y): sub, mul, mul
    "tanh_backward": 3,  # grad * (1 - y*y): mul, sub, mul
    "silu": 5,  # x * sigmoid(x): 4 + 1
    "silu_backward": 9,  # s = sigmoid(x) (4); grad * s * (1 + x*(1 - s)): sub, mul, add, mul, mul
    "gelu": _gelu,
    "gelu_backward": _gelu_backward,
    "elu": 4,  # x > 0 ? x : alpha * (exp(x) - 1): compare, exp, sub, mul
    "elu_backward": 3,  # compare, exp-or-(y + alpha), mul grad
    "softplus": 6,  # x*beta > threshold ? x : log(1 + exp(beta*x)) / beta
    "softplus_backward": 7,  # compare, grad * sigmoid(beta*x) (4 + 2)
    "mish": 6,  # x * tanh(softplus(x)): exp, add, log, compare, tanh, mul
    "mish_backward": 12,  # sigmoid (4), tanh(softplus) (4), product rule (4)
    "log_sigmoid_forward": 5,  # -softplus(-x): neg, exp, add, log, neg
    "log_sigmoid_backward": 5,  # grad * (1 - sigmoid(x)) with the buffer
    "_prelu_kernel": 2,  # x > 0 ? x : w * x
    "_prelu_kernel_backward": 4,  # grad_input (2) + grad_weight product (2)
    "glu": 5,  # a * sigmoid(b): 4 + 1 per output
    "glu_backward": 8,  # sigmoid (4), grad_a = g*s (1), grad_b = g*a*s*(1-s) (3)
    "logit": 3,  # log(x / (1 - x))
    "logit_backward": 4,
}

#: ops that only exist in one of the two forms
_EW_OUT_OF_PLACE_ONLY = frozenset(
    {"threshold_backward", "leaky_relu_backward", "hardtanh_backward", "hardsigmoid_backward",
     "hardswish_backward", "sigmoid_backward", "tanh_backward", "silu_backward",
     "gelu_backward", "elu_backward", "softplus_backward", "mish_backward",
     "log_sigmoid_forward", "log_sigmoid_backward", "_prelu_kernel", "_prelu_kernel_backward",
     "glu", "glu_backward", "logit_backward", "isnan", "isinf", "isfinite", "where",
     "maximum", "minimum", "fmax", "fmin", "softplus", "square", "nan_to_num", "rsub",
     "xlogy"}
)


def _elementwise(per_element: int | Callable[[tuple, dict], int]) -> Formula:
    def formula(args, kwargs, out):
        c = per_element(args, kwargs) if callable(per_element) else per_element
        # default bytes: inputs read once (broadcast operands at their own size), output
        # written once; an in-place op returns its mutated input, so it is written once.
        return _cost(c * _out_numel(args, out), _read(args, kwargs), _nbytes(out), "elementwise")

    return formula


for _name, _c in ELEMENTWISE_FLOPS.items():
    _f = _elementwise(_c)
    _register(_name)(_f)
    if _name not in _EW_OUT_OF_PLACE_ONLY:
        _register(_name + "_")(_f)


#: random fills: one operation per random number (the Philox arithmetic is not counted).
RNG_FLOPS = 1


@_register("bernoulli_", "uniform_", "normal_", "random_", "exponential_", "geometric_",
           "cauchy_", "log_normal_")
def _rng_inplace(args, kwargs, out):
    """In-place random fill: ``self`` is only written; a probability tensor is read."""
    return _cost(RNG_FLOPS * _out_numel(args, out), _read(args[1:], kwargs), _nbytes(out),
                 "elementwise")


@_register("bernoulli", "rand", "randn", "randint", "normal", "poisson")
def _rng(args, kwargs, out):
    """Random tensor: written; a probability/mean tensor argument is read."""
    return _cost(RNG_FLOPS * _out_numel(args, out), _read(args, kwargs), _nbytes(out),
                 "elementwise")


@_register("rand_like", "randn_like", "randint_like")
def _rng_like(args, kwargs, out):
    """Random tensor shaped like a template: written only (the template is not read)."""
    return _cost(RNG_FLOPS * _out_numel(args, out), 0, _nbytes(out), "elementwise")

#: dropout forward: random number, compare with p, multiply by mask, scale by 1/(1-p).
DROPOUT_FLOPS = 4
#: dropout backward: grad * mask * scale.
DROPOUT_BACKWARD_FLOPS = 2


@_register("native_dropout", "_fused_dropout")
def _dropout(args, kwargs, out):
    """Reads input; writes output and mask (default bytes). Eval mode: a copy, no FLOPs."""
    train = _get(args, kwargs, 2, "train", True)
    c = DROPOUT_FLOPS if train is not False else 0
    return _cost(c * _tensor(args[0], "dropout input").numel, _read(args, kwargs),
                 _nbytes(out), "elementwise")


@_register("native_dropout_backward")
def _dropout_backward(args, kwargs, out):
    return _cost(DROPOUT_BACKWARD_FLOPS * _out_numel(args, out), _read(args, kwargs),
                 _nbytes(out), "elementwise")


# --------------------------------------------------------------------------------------
# reductions: 1 FLOP per input element (+ noted extras)


def _reduction(per_input: int, per_output: int = 0) -> Formula:
    def formula(args, kwargs, out):
        x = _tensor(args[0], "reduction input")
        flops = per_input * x.numel + per_output * _numel(out)
        return _cost(flops, _read(args, kwargs), _nbytes(out), "reduction")

    return formula


for _n in ("sum", "nansum", "amax", "amin", "max", "min", "argmax", "argmin", "prod", "any",
           "all", "aminmax", "count_nonzero", "cumsum", "cumprod", "cummax", "cummin",
           "logcumsumexp"):
    _register(_n)(_reduction(1))
_register("mean", "nanmean")(_reduction(1, 1))  # sum + one divide per output
# var/std: mean (1), x - mean (1), square (1), accumulate (1) per input; divide (+ sqrt)
_register("var", "var_mean")(_reduction(4, 1))
_register("std", "std_mean")(_reduction(4, 2))
# p-norm: |x|^p (1) + accumulate (1) per input, root per output
_register("norm", "linalg_vector_norm", "frobenius_norm")(_reduction(2, 1))
_register("logsumexp")(_reduction(3, 2))  # max, exp, add per input; log, add per output
_register("_local_scalar_dense")(
    lambda args, kwargs, out: _cost(0, _read(args, kwargs), 0, "copy")
)  # .item(): a one-element device-to-host copy (and a sync on a GPU)


# --------------------------------------------------------------------------------------
# normalisation


#: batch/group/layer norm forward, training, per element:
#: mean (1 add) + variance (sub, square, add = 3) + normalise ((x - mean) * invstd = 2)
#: + affine (* weight, + bias = 2) = 8. Per channel/group: invstd (add eps, rsqrt = 2).
NORM_TRAIN_FLOPS = 1 + 3 + 2 + 2
#: affine-less training forward: 8 - 2.
NORM_TRAIN_NO_AFFINE_FLOPS = NORM_TRAIN_FLOPS - 2
#: batch norm forward with running statistics (eval): x * scale + shift = 2 per element,
#: with per-channel scale = weight * rsqrt(var + eps), shift = bias - mean * scale.
NORM_EVAL_FLOPS = 2
#: running-statistics update per channel: mean and var each m*(1-mom) + x*mom (3), unbiased
#: correction of var (1).
NORM_RUNNING_UPDATE_FLOPS_PER_CHANNEL = 7
#: training backward per element: pass 1 sums dy (1), xhat = (x - mean) * invstd (2),
#: dy * xhat (1) and its sum (1) = 5 (these sums are grad_bias and grad_weight); pass 2:
#: xhat (2), xhat * mean(dy*xhat) (1), dy - mean(dy) (1), minus (1), * (invstd * weight) (1) = 6.
NORM_BACKWARD_FLOPS = 5 + 6
#: the weight/bias gradient part alone (pass 1).
NORM_BACKWARD_PARAM_FLOPS = 5
#: eval-mode batch-norm backward: grad_input = dy * (invstd * weight) = 1 per element.
NORM_EVAL_BACKWARD_FLOPS = 1
#: RMS norm forward: square, add (2), rsqrt per row, * rstd (1), * weight (1) = 4.
RMS_NORM_FLOPS = 4
#: RMS norm backward: dy*w (1), dy*w*x sum (2), x*rstd^3*sum (2), combine (2) = 7; +2 for dw.
RMS_NORM_BACKWARD_FLOPS = 7


def _bn_training(args: tuple) -> bool:
    """The ``training`` flag: argument 5, or 3 for ``_native_batch_norm_legit.no_stats``."""
    for i in (5, 3):
        if len(args) > i and isinstance(args[i], bool):
            return args[i]
    raise FormulaError("batch norm: no training flag in the arguments")


def _batch_norm_forward(always_training: bool, running_index: int = 3) -> Formula:
    def formula(args, kwargs, out):
        x = _tensor(args[0], "norm input")
        w = _get(args, kwargs, 1, "weight")
        training = always_training or _bn_training(args)
        channels = x.shape[1] if len(x.shape) > 1 else 1
        if training:
            c = NORM_TRAIN_FLOPS if isinstance(w, TensorInfo) else NORM_TRAIN_NO_AFFINE_FLOPS
            flops = c * x.numel + 2 * channels
            if isinstance(_get(args, kwargs, running_index, "running_mean"), TensorInfo):
                flops += NORM_RUNNING_UPDATE_FLOPS_PER_CHANNEL * channels
            # two passes over the input (statistics, then normalise): input read twice
            read = _read(args, kwargs) + x.nbytes
        else:
            flops = NORM_EVAL_FLOPS * x.numel + 4 * channels
            read = _read(args, kwargs)
        return _cost(flops, read, _nbytes(out), "norm")

    formula.__doc__ = "Batch norm forward: 8 per element training (input read twice), 2 eval."
    return formula


_register("native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_functional",
          "cudnn_batch_norm", "miopen_batch_norm")(_batch_norm_forward(False))
_register("_native_batch_norm_legit_no_training", "_batch_norm_no_update")(
    lambda args, kwargs, out: _cost(
        NORM_EVAL_FLOPS * _tensor(args[0], "norm input").numel, _read(args, kwargs),
        _nbytes(out), "norm")
)
_register("_batch_norm_with_update", "_batch_norm_with_update_functional")(
    _batch_norm_forward(True)
)


def _norm_backward(grad_index: int, input_index: int, mask_index: int | None,
                   training: Callable[[tuple, dict], bool] = lambda a, kw: True,
                   two_pass: bool = True) -> Formula:
    def formula(args, kwargs, out):
        go = _tensor(args[grad_index], "grad_out")
        x = _tensor(args[input_index], "norm input")
        mask = _get(args, kwargs, mask_index, "output_mask") if mask_index is not None else None
        mask = tuple(mask) if mask is not None else (True, True, True)
        need_params = any(mask[1:])
        if not training(args, kwargs):
            flops = NORM_EVAL_BACKWARD_FLOPS * go.numel * bool(mask[0])
            flops += (3 * go.numel) if need_params else 0  # dy * xhat, sums
            passes = 1
        elif mask[0]:
            flops = NORM_BACKWARD_FLOPS * go.numel
            passes = 2
        else:
            flops = NORM_BACKWARD_PARAM_FLOPS * go.numel if need_params else 0
            passes = 1
        # bytes: grad_out and input are read once per pass; the small tensors once
        small = _read(args, kwargs) - go.nbytes - x.nbytes
        passes = passes if two_pass else 1
        read = passes * (go.nbytes + x.nbytes) + small
        return _cost(flops, read, _nbytes(out), "norm")

    formula.__doc__ = "Norm backward: 11 per element (two passes over grad_out and input)."
    return formula


_register("native_batch_norm_backward")(
    _norm_backward(0, 1, 9, training=lambda a, kw: bool(_get(a, kw, 7, "train", True)))
)
_register("batch_norm_backward")(
    _norm_backward(0, 1, 9, training=lambda a, kw: bool(_get(a, kw, 7, "update", True)))
)
_register("cudnn_batch_norm_backward", "miopen_batch_norm_backward")(_norm_backward(1, 0, None))
_register("native_group_norm_backward")(_norm_backward(0, 1, 9))


@_register("native_group_norm")
def _group_norm(args, kwargs, out):
    """Group norm forward: 8 per element; two passes over the input (statistics, apply)."""
    x = _tensor(args[0], "group norm input")
    w = _get(args, kwargs, 1, "weight")
    c = NORM_TRAIN_FLOPS if isinstance(w, TensorInfo) else NORM_TRAIN_NO_AFFINE_FLOPS
    return _cost(c * x.numel, _read(args, kwargs) + x.nbytes, _nbytes(out), "norm")


@_register("native_layer_norm")
def _layer_norm(args, kwargs, out):
    """Layer norm forward: 8 per element. A row fits on chip: the input is read once."""
    x = _tensor(args[0], "layer norm input")
    w = _get(args, kwargs, 2, "weight")
    c = NORM_TRAIN_FLOPS if isinstance(w, TensorInfo) else NORM_TRAIN_NO_AFFINE_FLOPS
    return _cost(c * x.numel, _read(args, kwargs), _nbytes(out), "norm")


@_register("native_layer_norm_backward")
def _layer_norm_backward(args, kwargs, out):
    """Layer norm backward.

    grad_input: 11 per element (as batch norm), reading grad_out and input once (a row fits
    on chip). grad_weight = sum over rows of dy * xhat: xhat (2), mul (1), add (1) = 4 per
    element; grad_bias = sum of dy: 1 per element; the column reductions read grad_out and
    input a second time.
    """
    go, x = _tensor(args[0], "grad_out"), _tensor(args[1], "layer norm input")
    mask = tuple(_get(args, kwargs, 7, "output_mask", (True, True, True)))
    flops = NORM_BACKWARD_FLOPS * go.numel if mask[0] else 0
    flops += (4 * go.numel if mask[1] else 0) + (go.numel if mask[2] else 0)
    small = _read(args, kwargs) - go.nbytes - x.nbytes
    passes = int(bool(mask[0])) + int(bool(mask[1] or mask[2]))
    return _cost(flops, passes * (go.nbytes + x.nbytes) + small, _nbytes(out), "norm")


@_register("_fused_rms_norm")
def _rms_norm(args, kwargs, out):
    x = _tensor(args[0], "rms norm input")
    return _cost(RMS_NORM_FLOPS * x.numel, _read(args, kwargs), _nbytes(out), "norm")


@_register("_fused_rms_norm_backward")
def _rms_norm_backward(args, kwargs, out):
    go = _tensor(args[0], "grad_out")
    mask = tuple(_get(args, kwargs, 5, "output_mask", (True, True)))
    flops = (RMS_NORM_BACKWARD_FLOPS * go.numel if mask[0] else 0) + (
        2 * go.numel if mask[1] else 0
    )
    return _cost(flops, _read(args, kwargs), _nbytes(out), "norm")


# --------------------------------------------------------------------------------------
# pooling


def _ints(x: object, n: int, default: int | None = None) -> list[int]:
    """An int or int list argument expanded to ``n`` spatial dims (empty -> default)."""
    if x is None or (isinstance(x, (list, tuple)) and len(x) == 0):
        return [default] * n if default is not None else []
    if isinstance(x, int):
        return [x] * n
    x = list(x)
    return x * n if len(x) == 1 else x


def _window(args: tuple, kwargs: dict, ki: int, n: int) -> int:
    """Kernel elements from the ``kernel_size`` argument at index ``ki``."""
    return prod(_ints(_get(args, kwargs, ki, "kernel_size"), n))


def _pool(spatial_dims: int, kind: str) -> Formula:
    """kind: 'max' (kernel compares per output), 'avg' (kernel adds + 1 divide per output)."""

    def formula(args, kwargs, out):
        _tensor(args[0], "pool input")  # checks the argument; the cost follows the output
        window = _window(args, kwargs, 1, spatial_dims)
        y = _tensor(_first_tensor(out), "pool output")
        per_out = window if kind == "max" else window + 1
        # bytes: the input read once (overlapping windows hit in cache); values (and
        # indices for max_pool*_with_indices) written: the default.
        return _cost(per_out * y.numel, _read(args, kwargs), _nbytes(out), "pool")

    formula.__doc__ = f"{kind} pool forward: window ops per output element."
    return formula


_register("max_pool1d", "max_pool1d_with_indices")(_pool(1, "max"))
_register("max_pool2d", "max_pool2d_with_indices", "mkldnn_max_pool2d")(_pool(2, "max"))
_register("max_pool3d", "max_pool3d_with_indices", "mkldnn_max_pool3d")(_pool(3, "max"))
_register("avg_pool1d")(_pool(1, "avg"))
_register("avg_pool2d")(_pool(2, "avg"))
_register("avg_pool3d")(_pool(3, "avg"))


@_register("max_pool2d_with_indices_backward", "max_pool3d_with_indices_backward",
           "adaptive_max_pool2d_backward", "adaptive_max_pool3d_backward")
def _max_pool_backward(args, kwargs, out):
    """Scatter of grad_output through the saved indices: 1 add per grad_output element.

    bytes: grad_output and indices read (``self`` is passed only for its shape);
    grad_input written in full (zero fill + scatter).
    """
    go = _tensor(args[0], "grad_output")
    idx = args[-1] if isinstance(args[-1], TensorInfo) else kwargs.get("indices")
    read = go.nbytes + (idx.nbytes if isinstance(idx, TensorInfo) else 0)
    return _cost(go.numel, read, _nbytes(out), "pool")


def _avg_pool_backward(spatial_dims: int) -> Formula:
    def formula(args, kwargs, out):
        """grad_output / divisor added into each window: (window + 1) per grad_output element.

        bytes: grad_output read (``self`` only gives the shape), grad_input written.
        """
        go = _tensor(args[0], "grad_output")
        window = _window(args, kwargs, 2, spatial_dims)
        return _cost((window + 1) * go.numel, go.nbytes, _nbytes(out), "pool")

    return formula


_register("avg_pool2d_backward")(_avg_pool_backward(2))
_register("avg_pool3d_backward")(_avg_pool_backward(3))


def _adaptive_window_sum(in_size: int, out_size: int) -> int:
    """Sum over output positions of the adaptive window length (PyTorch's start/end rule)."""
    return sum(
        ceil((i + 1) * in_size / out_size) - floor(i * in_size / out_size)
        for i in range(out_size)
    )


def _adaptive_flops(x_shape: tuple, out_shape: tuple, n: int) -> int:
    """Adds over every window (exact, windows may overlap) for all leading (N, C) planes."""
    lead = prod(x_shape[:-n])
    return lead * prod(_adaptive_window_sum(i, o) for i, o in zip(x_shape[-n:], out_shape[-n:]))


def _adaptive_pool(n: int, kind: str) -> Formula:
    def formula(args, kwargs, out):
        """Adaptive pool: window adds (avg: + 1 divide per output) or window compares (max)."""
        x = _tensor(args[0], "pool input")
        y = _tensor(_first_tensor(out), "pool output")
        flops = _adaptive_flops(x.shape, y.shape, n) + (y.numel if kind == "avg" else 0)
        return _cost(flops, _read(args, kwargs), _nbytes(out), "pool")

    return formula


_register("_adaptive_avg_pool2d", "adaptive_avg_pool2d", "mkldnn_adaptive_avg_pool2d")(
    _adaptive_pool(2, "avg")
)
_register("_adaptive_avg_pool3d", "adaptive_avg_pool3d")(_adaptive_pool(3, "avg"))
_register("adaptive_avg_pool1d")(_adaptive_pool(1, "avg"))
_register("adaptive_max_pool2d")(_adaptive_pool(2, "max"))
_register("adaptive_max_pool3d")(_adaptive_pool(3, "max"))


def _adaptive_avg_backward(n: int) -> Formula:
    def formula(args, kwargs, out):
        """grad/window spread over every window: the forward's adds + 1 divide per grad_output.

        bytes: grad_output read (``self`` only gives the shape); grad_input written.
        """
        go = _tensor(args[0], "grad_output")
        x = _tensor(args[1], "pool input")
        flops = _adaptive_flops(x.shape, go.shape, n) + go.numel
        return _cost(flops, go.nbytes, _nbytes(out), "pool")

    return formula


_register("_adaptive_avg_pool2d_backward")(_adaptive_avg_backward(2))
_register("_adaptive_avg_pool3d_backward")(_adaptive_avg_backward(3))


# --------------------------------------------------------------------------------------
# softmax

#: softmax forward per element: max (1), x - max (1), exp (1), sum (1), divide (1) = 5.
SOFTMAX_FLOPS = 5
#: log_softmax forward per element: max (1), x - max (1), exp (1), sum (1), - log(sum) (1) = 5
#: (the log itself is one per row).
LOG_SOFTMAX_FLOPS = 5
#: softmax backward per element: y * dy (1), sum (1), dy - sum (1), * y (1) = 4.
SOFTMAX_BACKWARD_FLOPS = 4
#: log_softmax backward per element: sum dy (1), exp(y) (1), * sum (1), dy - (1) = 4.
LOG_SOFTMAX_BACKWARD_FLOPS = 4
#: masked/safe softmax: + 1 select per element for the mask / the all -inf rows.
MASKED_SOFTMAX_FLOPS = SOFTMAX_FLOPS + 1


def _softmax(per_element: int) -> Formula:
    def formula(args, kwargs, out):
        return _cost(per_element * _out_numel(args, out), _read(args, kwargs), _nbytes(out),
                     "softmax")

    return formula


_register("_softmax", "softmax")(_softmax(SOFTMAX_FLOPS))
_register("_log_softmax", "log_softmax")(_softmax(LOG_SOFTMAX_FLOPS))
_register("_safe_softmax", "_masked_softmax")(_softmax(MASKED_SOFTMAX_FLOPS))
_register("_softmax_backward_data")(_softmax(SOFTMAX_BACKWARD_FLOPS))
_register("_log_softmax_backward_data")(_softmax(LOG_SOFTMAX_BACKWARD_FLOPS))
_register("_masked_softmax_backward")(_softmax(SOFTMAX_BACKWARD_FLOPS + 1))


# --------------------------------------------------------------------------------------
# losses


def _nll_targets(args: tuple, kwargs: dict) -> tuple[TensorInfo, TensorInfo, TensorInfo | None]:
    x = _tensor(args[0], "nll input")
    t = _tensor(args[1], "nll target")
    w = _get(args, kwargs, 2, "weight")
    return x, t, w if isinstance(w, TensorInfo) else None


@_register("nll_loss_forward", "nll_loss2d_forward", "nll_loss", "nll_loss2d", "nll_loss_nd")
def _nll(args, kwargs, out):
    """Per target element: gather and accumulate (1), * class weight (+1).

    bytes: the target, one gathered element of the input per target (not the whole input)
    and the gathered class weights are read; loss and total_weight written.
    """
    x, t, w = _nll_targets(args, kwargs)
    weighted = w is not None
    n = t.numel
    read = t.nbytes + n * x.itemsize + (n * w.itemsize if weighted else 0)
    return _cost(n * (1 + weighted), read, _nbytes(out), "loss")


@_register("nll_loss_backward", "nll_loss2d_backward")
def _nll_backward(args, kwargs, out):
    """Per target element: -grad / total_weight written at the target (1), * weight (+1).

    bytes: grad_output, target, total_weight (and gathered weights) read; ``self`` is passed
    only for its shape. grad_input is written in full (zero fill + scatter).
    """
    go = _tensor(args[0], "grad_output")
    _tensor(args[1], "nll input")  # checks the argument: only its shape matters, and the output has it
    t = _tensor(args[2], "nll target")
    w = _get(args, kwargs, 3, "weight")
    weighted = isinstance(w, TensorInfo)
    n = t.numel
    tw = _get(args, kwargs, 6, "total_weight")
    read = go.nbytes + t.nbytes + (tw.nbytes if isinstance(tw, TensorInfo) else 0)
    read += n * w.itemsize if weighted else 0
    return _cost(n * (1 + weighted), read, _nbytes(out), "loss")


#: pointwise losses, FLOPs per input element (reduction included)
LOSS_FLOPS: dict[str, int] = {
    "mse_loss": 3,  # sub, square, accumulate
    "mse_loss_backward": 3,  # sub, * 2/N, * grad
    "l1_loss": 3,  # sub, abs, accumulate
    "smooth_l1_loss": 5,  # sub, abs, compare, square-or-sub, accumulate
    "smooth_l1_loss_backward": 4,
    "huber_loss": 5,
    "huber_loss_backward": 4,
    "binary_cross_entropy": 8,  # log x, log(1-x), sub, mul, mul, add, neg, accumulate
    "binary_cross_entropy_backward": 6,  # (x - t) / (x * (1 - x)) * grad: sub, sub, mul, div, mul, *w
    "binary_cross_entropy_with_logits": 9,  # (1-t)x + log(1+exp(-x)) stable form + accumulate
    "soft_margin_loss": 5,
    "soft_margin_loss_backward": 5,
}
for _n, _c in LOSS_FLOPS.items():
    _register(_n)(
        (lambda c: lambda args, kwargs, out: _cost(
            c * _tensor(args[0], "loss input").numel, _read(args, kwargs), _nbytes(out), "loss"
        ))(_c)
    )


def _sort(dim_at: int) -> Formula:
    """A sort along one dimension: ``ceil(log2 n)`` compare-exchanges per element.

    GPUs sort rows with a bitonic or radix sort whose passes stay on chip for the row lengths a model
    sorts (detector scores, top-k of logits), so bytes are the input once and the outputs once.
    """
    def formula(args, kwargs, out):
        x = _tensor(args[0], "sort input")
        dim = _get(args, kwargs, dim_at, "dim", -1)
        n = x.shape[dim] if x.shape and isinstance(dim, int) else max(x.numel, 1)
        return _cost(x.numel * max(1, ceil(log2(max(n, 2)))), _read(args, kwargs), _nbytes(out), "reduction")

    return formula


@_register("histc", "bincount")
def _histogram(args, kwargs, out):
    """A histogram: one bin index and one (atomic) add per input element; the bins written."""
    x = _tensor(args[0], "histogram input")
    return _cost(2 * x.numel, _read(args, kwargs), _nbytes(out), "reduction")


_register("sort", "argsort", "median", "nanmedian")(_sort(1))
_register("topk", "kthvalue")(_sort(2))
_register("msort")(_sort(0))


@_register("randperm")
def _randperm(args, kwargs, out):
    """A random permutation: one random key and a sort of the keys per element (written once)."""
    n = _out_numel(args, out)
    return _cost(n * (1 + max(1, ceil(log2(max(n, 2))))), 0, _nbytes(out), "elementwise")


@_register("torchvision.nms")
def _nms(args, kwargs, out):
    """Non-maximum suppression over n boxes: an IoU (about 12 FLOPs) per pair, a bit mask of n x n written."""
    boxes = _tensor(args[0], "nms boxes")
    n = boxes.shape[0]
    return _cost(12 * n * n // 2, _read(args, kwargs), n * ceil(n / 64) * 8 + _nbytes(out), "reduction")


def _roi_samples(args: tuple, kwargs: dict, ratio_at: int) -> int:
    ratio = _get(args, kwargs, ratio_at, "sampling_ratio", 2)
    return max(int(ratio), 1) ** 2 if isinstance(ratio, int) and ratio > 0 else 4


@_register("torchvision.roi_align")
def _roi_align(args, kwargs, out):
    """Average of ``sampling_ratio**2`` bilinear samples per output bin: 4 gathers and 7 FLOPs a sample.

    bytes: one feature value per sample from memory (a sample's 4 neighbours are its neighbours' too:
    they come from cache) and the boxes read; the pooled output written.
    """
    x = _tensor(args[0], "roi_align input")
    samples = _roi_samples(args, kwargs, 5) * _out_numel(args, out)
    return _cost(8 * samples, samples * x.itemsize + _nbytes(args[1]), _nbytes(out), "pool")


@_register("torchvision._roi_align_backward")
def _roi_align_backward(args, kwargs, out):
    """Each output-bin gradient scattered to the 4 neighbours of each sample (atomic adds into a zeroed map)."""
    grad = _tensor(args[0], "roi_align grad")
    samples = _roi_samples(args, kwargs, 10) * grad.numel
    return _cost(8 * samples, grad.nbytes + _nbytes(args[1]), _nbytes(out) + samples * grad.itemsize, "pool")


@_register("grid_sampler_2d", "grid_sampler_3d", "_grid_sampler_2d_cpu_fallback")
def _grid_sampler(args, kwargs, out):
    """Bilinear sampling: 4 (2d) or 8 (3d) gathered neighbours and about 2 FLOPs each per output element."""
    corners = 8 if _tensor(args[1], "grid").shape[-1] == 3 else 4
    n = _out_numel(args, out)
    x = _tensor(args[0], "grid_sampler input")
    return _cost(2 * corners * n, corners * n * x.itemsize + _nbytes(args[1]), _nbytes(out), "pool")


@_register("grid_sampler_2d_backward", "grid_sampler_3d_backward")
def _grid_sampler_backward(args, kwargs, out):
    """Gradients scattered to the neighbours (input) and gathered from them (grid): twice the forward."""
    corners = 8 if _tensor(args[2], "grid").shape[-1] == 3 else 4
    go = _tensor(args[0], "grad_output")
    return _cost(4 * corners * go.numel, go.nbytes + _nbytes(args[2]) + corners * go.numel * go.itemsize,
                 _nbytes(out), "pool")


# --------------------------------------------------------------------------------------
# embedding


@_register("embedding")
def _embedding(args, kwargs, out):
    """A gather: no FLOPs; bytes read = the indices + the gathered rows (not the table)."""
    _tensor(args[0], "embedding weight")
    idx = _tensor(args[1], "embedding indices")
    return _cost(0, idx.nbytes + _nbytes(out), _nbytes(out), "embedding")


@_register("embedding_dense_backward", "embedding_backward")
def _embedding_backward(args, kwargs, out):
    """Scatter-add of grad_output rows into a zeroed table: 1 add per grad_output element.

    bytes: grad_output and indices read (default); the whole grad table written (zero fill).
    """
    go = _tensor(args[0], "grad_output")
    return _cost(go.numel, _read(args, kwargs), _nbytes(out), "embedding")


@_register("embedding_renorm_")
def _embedding_renorm(args, kwargs, out):
    idx = _tensor(args[1], "indices")
    w = _tensor(args[0], "weight")
    rows = idx.numel * (w.shape[-1] if w.shape else 1)
    return _cost(3 * rows, idx.nbytes + rows * w.itemsize, rows * w.itemsize, "embedding")


# --------------------------------------------------------------------------------------
# copies and data movement (0 FLOPs)


def _copy_default(args, kwargs, out):
    """Pure data movement: inputs read, outputs written (default bytes)."""
    return _cost(0, _read(args, kwargs), _nbytes(out), "copy")


_register(
    "clone", "_to_copy", "contiguous", "cat", "concat", "concatenate", "stack", "hstack",
    "vstack", "constant_pad_nd", "roll", "flip", "repeat", "repeat_interleave", "tile",
    "select_backward", "slice_backward", "diagonal_backward", "as_strided_scatter",
    "slice_scatter", "select_scatter", "diagonal_scatter", "narrow_copy", "unfold_backward",
    "lift_fresh_copy", "copy", "alias_copy", "view_copy", "permute_copy", "expand_copy",
    "t_copy", "transpose_copy", "unsqueeze_copy", "squeeze_copy", "slice_copy", "select_copy",
    "split_copy", "split_with_sizes_copy", "unbind_copy", "detach_copy", "as_strided_copy",
    "_reshape_copy", "pixel_shuffle", "pixel_unshuffle",
    "channel_shuffle", "native_channel_shuffle", "im2col", "col2im", "reflection_pad1d",
    "reflection_pad2d", "reflection_pad3d", "replication_pad1d", "replication_pad2d",
    "replication_pad3d", "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d",
    "_upsample_nearest_exact1d", "_upsample_nearest_exact2d", "_upsample_nearest_exact3d",
    "tril", "triu", "_to_dense", "to_dense", "masked_select", "nonzero", "_pin_memory",
    "_copy_from", "_copy_from_and_resize",
)(_copy_default)


@_register("copy_")
def _copy_(args, kwargs, out):
    """``self.copy_(src)``: src read, self written (self's old contents are not read)."""
    dst, src = _tensor(args[0], "copy_ self"), _tensor(args[1], "copy_ src")
    return _cost(0, src.nbytes, dst.nbytes, "copy")


def _write_only(read_from: int | None = None) -> Formula:
    def formula(args, kwargs, out):
        """A fill: only the output is written; ``*_like``/``new_*`` templates are not read."""
        read = 0
        if read_from is not None:  # fill_.Tensor / masked fill value tensors
            read = _nbytes(args[read_from:])
        return _cost(0, read, _nbytes(out), "copy")

    return formula


_register("zeros", "ones", "full", "zeros_like", "ones_like", "full_like", "new_zeros",
          "new_ones", "new_full", "scalar_tensor", "zero_", "arange", "linspace", "logspace",
          "eye")(_write_only())
_register("fill_", "fill")(_write_only(read_from=1))


def _gather_bytes(args: tuple, out: object, skip: int) -> int:
    """Index tensors + the gathered elements (as many as the output holds)."""
    return sum(t.nbytes for i, a in enumerate(args) if i != skip for t in _tensors(a)) + _nbytes(out)


@_register("index", "_unsafe_index", "index_select", "gather", "take", "take_along_dim")
def _index(args, kwargs, out):
    """Gather: bytes read = indices + gathered elements (not the whole source)."""
    return _cost(0, _gather_bytes(args, out, skip=0), _nbytes(out), "copy")


def _scatter_like(values_index: int, accumulate: Callable[[tuple, dict], bool],
                  inplace: bool) -> Formula:
    def formula(args, kwargs, out):
        """Scatter/index_put: values and indices read, scattered elements written.

        Out of place, ``self`` is first copied: read and written in full as well.
        Accumulating variants add 1 FLOP per value and also read the target elements.
        """
        self_ = _tensor(args[0], "scatter self")
        vals = _get(args, kwargs, values_index, "src")
        if not isinstance(vals, TensorInfo):  # a scalar value: one element per index entry
            vals = _first_tensor(args[1:])
        n_vals = vals.numel if isinstance(vals, TensorInfo) else 0
        moved = n_vals * self_.itemsize
        idx = sum(t.nbytes for i, a in enumerate(args) if i not in (0, values_index)
                  for t in _tensors(a))
        acc = accumulate(args, kwargs)
        read = idx + moved + (moved if acc else 0)
        written = moved
        if not inplace:
            read += self_.nbytes
            written = _nbytes(out)
        return _cost(n_vals if acc else 0, read, written, "copy")

    return formula


def _accumulate_arg(i: int, name: str = "accumulate") -> Callable[[tuple, dict], bool]:
    return lambda a, kw: bool(_get(a, kw, i, name, False))


_register("index_put", "_unsafe_index_put")(_scatter_like(2, _accumulate_arg(3), inplace=False))
_register("index_put_", "_index_put_impl_")(_scatter_like(2, _accumulate_arg(3), inplace=True))
_register("scatter")(_scatter_like(3, lambda a, kw: kw.get("reduce") is not None, inplace=False))
_register("scatter_")(_scatter_like(3, lambda a, kw: kw.get("reduce") is not None, inplace=True))
_register("scatter_add", "scatter_reduce", "index_add")(
    _scatter_like(3, lambda a, kw: True, inplace=False)
)
_register("scatter_add_", "scatter_reduce_", "index_add_")(
    _scatter_like(3, lambda a, kw: True, inplace=True)
)
_register("index_copy")(_scatter_like(3, lambda a, kw: False, inplace=False))
_register("index_copy_")(_scatter_like(3, lambda a, kw: False, inplace=True))
_register("masked_scatter")(_scatter_like(2, lambda a, kw: False, inplace=False))
_register("masked_scatter_")(_scatter_like(2, lambda a, kw: False, inplace=True))
_register("index_fill", "index_fill_")(
    lambda args, kwargs, out: _cost(0, _read(args[2:], kwargs), _nbytes(out), "copy")
)


#: bilinear upsampling: 4 taps * (mul + add) per output element = 8 (+ index math not counted)
UPSAMPLE_BILINEAR_FLOPS = 8


@_register("upsample_bilinear2d", "_upsample_bilinear2d_aa", "upsample_linear1d",
           "upsample_trilinear3d", "upsample_bicubic2d", "_upsample_bicubic2d_aa")
def _upsample_interp(args, kwargs, out):
    return _cost(UPSAMPLE_BILINEAR_FLOPS * _out_numel(args, out), _read(args, kwargs),
                 _nbytes(out), "elementwise")


@_register("upsample_bilinear2d_backward", "upsample_linear1d_backward",
           "upsample_trilinear3d_backward", "upsample_bicubic2d_backward",
           "_upsample_bilinear2d_aa_backward", "_upsample_bicubic2d_aa_backward",
           "upsample_nearest1d_backward", "upsample_nearest2d_backward",
           "upsample_nearest3d_backward", "_upsample_nearest_exact2d_backward",
           "reflection_pad2d_backward", "replication_pad2d_backward", "reflection_pad1d_backward",
           "replication_pad1d_backward", "reflection_pad3d_backward", "replication_pad3d_backward")
def _spread_backward(args, kwargs, out):
    """Gradients scattered back onto the input grid: 1 add per grad_output element (x taps)."""
    go = _tensor(args[0], "grad_output")
    return _cost(go.numel, go.nbytes, _nbytes(out), "copy")


# --------------------------------------------------------------------------------------
# optimizer: _foreach_* and fused kernels, summed over the tensor lists


def _list(x: object) -> list:
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _foreach_scalar_scaled(a: tuple, kw: dict, i: int, name: str) -> bool:
    """True when a value/alpha/scalars argument scales by something other than 1."""
    v = _get(a, kw, i, name, 1)
    if isinstance(v, TensorInfo):
        return True
    if isinstance(v, (list, tuple)):
        return any(isinstance(s, TensorInfo) or not _is_one(s) for s in v)
    return not _is_one(v)


def _fe_alpha(a: tuple, kw: dict) -> int:
    """add/sub with alpha: 1 + 1 for the alpha multiply (only the list-list form has alpha)."""
    return 1 + (0 if _is_one(kw.get("alpha", 1)) else 1)


def _fe_addc(a: tuple, kw: dict) -> int:
    """addcmul/addcdiv: 2 (+1 for a value/scalars scale other than 1), as the single op."""
    return 2 + _foreach_scalar_scaled(a, kw, 3, "value")


#: FLOPs per element of ``self`` (the first list), per ``_foreach_`` op.
FOREACH_FLOPS: dict[str, int | Callable[[tuple, dict], int]] = {
    "add": _fe_alpha, "sub": _fe_alpha, "mul": 1, "div": 1, "addcmul": _fe_addc,
    "addcdiv": _fe_addc, "lerp": 3, "maximum": 1, "minimum": 1, "clamp_min": 1, "clamp_max": 1,
    "sqrt": 1, "rsqrt": 1, "neg": 1, "reciprocal": 1, "pow": 1, "abs": 1, "exp": 1, "log": 1,
    "log1p": 1, "expm1": 1, "sign": 1, "sigmoid": 4, "tanh": 1, "erf": 1, "floor": 1,
    "ceil": 1, "round": 1, "trunc": 1, "frac": 1, "sin": 1, "cos": 1, "zero": 0, "copy": 0,
    "norm": 2,  # |x|^p and accumulate per element (the root per tensor is negligible)
    "max": 1,
}

_FOREACH_NO_INPLACE = frozenset({"norm", "max"})
_FOREACH_INPLACE_ONLY = frozenset({"zero", "copy"})


def _foreach(per_element: int | Callable[[tuple, dict], int], inplace: bool,
             write_only: bool = False) -> Formula:
    def formula(args, kwargs, out):
        """Per element of every tensor in ``self`` (summed over the list).

        bytes: every tensor of every list argument read; in place, ``self`` is written (the op
        returns nothing), otherwise the returned list.
        """
        self_list = _list(args[0])
        if not all(isinstance(t, TensorInfo) for t in self_list):  # _foreach_pow.ScalarAndTensor
            self_list = _list(args[1])
        n = sum(t.numel for t in self_list)
        c = per_element(args, kwargs) if callable(per_element) else per_element
        written = sum(t.nbytes for t in self_list) if inplace else _nbytes(out)
        read = _read(args, kwargs)
        if write_only:  # _foreach_zero_
            read = 0
        elif inplace and c == 0:  # _foreach_copy_: src read, self only written
            read -= sum(t.nbytes for t in self_list)
        return _cost(c * n, read, written, "optimizer")

    return formula


for _name, _c in FOREACH_FLOPS.items():
    if _name not in _FOREACH_INPLACE_ONLY:
        _register("_foreach_" + _name)(_foreach(_c, inplace=False))
    if _name not in _FOREACH_NO_INPLACE:
        _register("_foreach_" + _name + "_")(_foreach(_c, inplace=True, write_only=_name == "zero"))


#: Adam step per element: exp_avg lerp (sub, mul, add = 3); exp_avg_sq = b2*v + (1-b2)*g*g
#: (mul, mul, mul, add = 4); denom = sqrt(v) / sqrt(bias_correction2) + eps (3);
#: param -= step_size * m / denom (div, mul, sub = 3). Scalars per tensor are not counted.
ADAM_FLOPS = 3 + 4 + 3 + 3
#: + Adam's L2 weight decay (grad += wd * param: 2), AdamW's decoupled decay
#: (param *= 1 - lr * wd: 1), amsgrad (max: 1), grad unscale with a grad scaler (1),
#: maximize (neg: 1).
ADAM_L2_DECAY_FLOPS, ADAMW_DECAY_FLOPS, AMSGRAD_FLOPS, UNSCALE_FLOPS = 2, 1, 1, 1
#: SGD per element: param -= lr * d (mul, sub = 2); momentum buf = m*buf + (1-damp)*grad
#: (mul, add = 2; +1 with dampening; first step copies grad: 0); nesterov d = g + m*buf (2);
#: weight decay g += wd * param (2).
SGD_FLOPS, SGD_MOMENTUM_FLOPS, SGD_NESTEROV_FLOPS, SGD_DECAY_FLOPS = 2, 2, 2, 2
#: Adagrad per element: sum += g*g (2), std = sqrt(sum) + eps (2), param -= clr * g / std (3).
ADAGRAD_FLOPS = 7


def _fused_common(args, kwargs, written_lists: tuple) -> tuple[int, int, int]:
    """Elements of ``self``, bytes of every input, bytes of the lists the kernel rewrites."""
    n = sum(t.numel for t in _list(args[0]))
    read = _read(args, kwargs)
    written = sum(_nbytes(args[i]) for i in written_lists if i < len(args))
    return n, read, written


def _fused_adam(decoupled: bool) -> Formula:
    def formula(args, kwargs, out):
        """Fused Adam(W): reads params, grads, exp_avgs, exp_avg_sqs (+ max), steps;
        writes params, exp_avgs, exp_avg_sqs (+ max_exp_avg_sqs)."""
        n, read, written = _fused_common(args, kwargs, (0, 2, 3, 4))
        c = ADAM_FLOPS
        if kwargs.get("weight_decay", 0):
            c += ADAMW_DECAY_FLOPS if decoupled else ADAM_L2_DECAY_FLOPS
        c += AMSGRAD_FLOPS if kwargs.get("amsgrad") else 0
        c += UNSCALE_FLOPS if isinstance(kwargs.get("grad_scale"), TensorInfo) else 0
        c += 1 if kwargs.get("maximize") else 0
        return _cost(c * n, read, written, "optimizer")

    return formula


_register("_fused_adam_", "_fused_adam")(_fused_adam(False))
_register("_fused_adamw_", "_fused_adamw")(_fused_adam(True))


@_register("_fused_sgd_", "_fused_sgd")
def _fused_sgd(args, kwargs, out):
    """Fused SGD: reads params, grads (+ momentum buffers); writes params (+ buffers)."""
    momentum = kwargs.get("momentum", 0)
    n, read, written = _fused_common(args, kwargs, (0, 2) if momentum else (0,))
    c = SGD_FLOPS
    if kwargs.get("weight_decay", 0):
        c += SGD_DECAY_FLOPS
    if momentum and not kwargs.get("is_first_step", False):
        c += SGD_MOMENTUM_FLOPS + (1 if kwargs.get("dampening", 0) else 0)
    if momentum and kwargs.get("nesterov"):
        c += SGD_NESTEROV_FLOPS
    c += UNSCALE_FLOPS if isinstance(kwargs.get("grad_scale"), TensorInfo) else 0
    c += 1 if kwargs.get("maximize") else 0
    return _cost(c * n, read, written, "optimizer")


@_register("_fused_adagrad_", "_fused_adagrad")
def _fused_adagrad(args, kwargs, out):
    n, read, written = _fused_common(args, kwargs, (0, 2))
    c = ADAGRAD_FLOPS + (SGD_DECAY_FLOPS if kwargs.get("weight_decay", 0) else 0)
    return _cost(c * n, read, written, "optimizer")


@_register("_amp_foreach_non_finite_check_and_unscale_")
def _amp_unscale(args, kwargs, out):
    """Grad unscale: isfinite check (1) + multiply by 1/scale (1) per element; grads rewritten."""
    grads = _list(args[0])
    n = sum(t.numel for t in grads)
    return _cost(2 * n, _read(args, kwargs), _nbytes(grads) + _nbytes(args[1]), "optimizer")


@_register("_amp_update_scale_")
def _amp_update_scale(args, kwargs, out):
    """Loss-scale update: a handful of scalar operations on one-element tensors."""
    return _cost(4, _read(args, kwargs), _nbytes(args[:2]), "optimizer")


# --------------------------------------------------------------------------------------
# public API


def price(op: str, args: tuple, kwargs: dict, out: object) -> OpCost | None:
    """FLOPs, bytes and class of one aten op, or None when the op has no formula.

    Args:
        op: the overload-packet name, ``str(func.overloadpacket)``, e.g. ``"aten.convolution"``.
        args, kwargs, out: the op's arguments and result with every tensor replaced by a
            :class:`TensorInfo`.

    Returns:
        ``OpCost(flops, bytes_read, bytes_written, op_class)``; ``OpCost(0, 0, 0, "free")``
        for :data:`FREE_OPS`; ``None`` for an op that is neither registered nor free.

    Raises:
        FormulaError: a registered formula could not read the arguments.
    """
    if op in FREE_OPS:
        return _FREE
    f = _REGISTRY.get(op)
    if f is None:
        return None
    kwargs = kwargs or {}
    try:
        return f(tuple(args), kwargs, out)
    except FormulaError:
        raise
    except (TypeError, ValueError, IndexError, AttributeError, KeyError) as e:
        raise FormulaError(f"{op}: cannot price arguments: {e}") from e


def registered_ops() -> frozenset[str]:
    """Names of the ops with a formula (the priced ones; :data:`FREE_OPS` is separate)."""
    return frozenset(_REGISTRY)
