"""CUDA autocast and CUDA kernel choices, reproduced on meta tensors.

``torch.autocast("cuda")`` needs a CUDA device, and autograd cannot run backward on fake CUDA tensors
without one. So the walk runs on the meta device and this ``TorchFunctionMode`` applies CUDA's
autocast policy itself (the op lists of ``ATen/autocast_mode.h``, torch 2.4+), above autograd as the
real Autocast dispatch key is: its casts are real, differentiable ``_to_copy`` ops that the walker
records, forward and backward. Casts of leaf parameters are cached for the region, as autocast does.

A function mode sees the Python-level call (``F.linear``, ``F.layer_norm``, ``Tensor.softmax``), not
the aten ops inside a composite, so composites are handled by name: ``cross_entropy`` is rewritten to
the ops CUDA runs (``log_softmax`` in fp32 + ``nll_loss``), ``scaled_dot_product_attention`` to the
kernel CUDA picks (flash for fp16/bf16, memory-efficient otherwise, whatever the precision; grouped-query
attention's K/V heads repeated to the query's, as the math kernel does), ``interpolate`` gets its inner ops'
policy, and the recurrent ``_VF`` functions (``nn.LSTM``, ``nn.GRU``, ``nn.RNN``) run as the one fused cuDNN call
CUDA makes (:mod:`traincost.flopmodel.rnn`). ``multi_head_attention_forward`` (a Python composite)
runs with the mode re-entered, so its in-projection, attention and out-projection each meet the
policy and the attention kernel choice, as under CUDA autocast.
"""

from __future__ import annotations

import types
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_map

from traincost.flopmodel.rnn import VF_MODES, fused_vf

LOWER_PRECISION_OPS = frozenset({
    "_convolution", "conv1d", "conv2d", "conv3d", "conv_tbc", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d", "convolution", "prelu", "addmm", "addmv", "addr", "matmul", "__matmul__",
    "__rmatmul__", "einsum", "mm", "mv", "linalg_vecdot", "linear", "addbmm", "baddbmm", "bmm",
    "chain_matmul", "linalg_multi_dot", "lstm_cell", "gru_cell", "rnn_tanh_cell", "rnn_relu_cell",
    "scaled_dot_product_attention",
})
#: torchvision ops whose autocast kernel runs in fp32 and returns the input's dtype (``torchvision/csrc/ops/autocast``).
TORCHVISION_FP32_OPS = frozenset({"roi_align", "ps_roi_align", "roi_pool", "ps_roi_pool", "deform_conv2d"})
FP32_OPS = frozenset({
    "acos", "asin", "cosh", "erfinv", "exp", "expm1", "log", "log10", "log2", "log1p", "reciprocal",
    "rsqrt", "sinh", "tan", "pow", "__pow__", "softplus", "layer_norm", "native_layer_norm", "rms_norm",
    "group_norm", "frobenius_norm", "nuclear_norm", "cosine_similarity", "poisson_nll_loss",
    "cosine_embedding_loss", "nll_loss", "nll_loss2d", "hinge_embedding_loss", "kl_div", "l1_loss",
    "smooth_l1_loss", "huber_loss", "mse_loss", "margin_ranking_loss", "multilabel_margin_loss",
    "soft_margin_loss", "triplet_margin_loss", "multi_margin_loss", "binary_cross_entropy_with_logits",
    "dist", "pdist", "cdist", "renorm", "logsumexp", "upsample_nearest1d", "upsample_nearest2d",
    "upsample_nearest3d", "upsample_linear1d", "upsample_bilinear2d", "upsample_trilinear3d",
    "upsample_bicubic2d", "interpolate",
})
FP32_SET_OPT_DTYPE_OPS = frozenset({
    "prod", "softmax", "log_softmax", "cumprod", "cumsum", "linalg_vector_norm", "linalg_matrix_norm",
    "sum",
})
PROMOTE_OPS = frozenset({
    "addcdiv", "addcmul", "atan2", "bilinear", "cross", "dot", "vdot", "grid_sampler", "index_put",
    "tensordot", "scatter_add",
})
_LOWER = (torch.float16, torch.bfloat16)


def _name(func: Any) -> str:
    return getattr(func, "__name__", "")


def _without_torch_function_check(fn: Any) -> Any:
    """A copy of the Python function ``fn`` whose ``has_torch_function`` check is off.

    Run inside the mode, the copy's body calls (``linear``, ``scaled_dot_product_attention``,
    ``softmax``) each reach ``__torch_function__``, as each aten op meets CUDA's autocast; calling
    ``fn`` itself there would re-dispatch ``fn`` to the mode forever.
    """
    scope = dict(fn.__globals__)
    scope["has_torch_function"] = lambda *_args: False
    copy = types.FunctionType(fn.__code__, scope, fn.__name__, fn.__defaults__, fn.__closure__)
    copy.__kwdefaults__ = fn.__kwdefaults__
    return copy


#: ``F.multi_head_attention_forward`` (nn.MultiheadAttention in training: ViT, transformers).
_MHA_BODY = _without_torch_function_check(F.multi_head_attention_forward)


class CudaOpMode(TorchFunctionMode):
    """Applies CUDA's autocast policy (when ``dtype`` is set) and CUDA's attention kernel choice."""

    def __init__(self, dtype: torch.dtype | None) -> None:
        super().__init__()
        self.dtype = dtype
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def _cast(self, x: Any, dtype: torch.dtype, eligible: tuple[torch.dtype, ...]) -> Any:
        if not isinstance(x, torch.Tensor) or x.dtype not in eligible or x.dtype == dtype:
            return x
        cacheable = x.is_leaf and x.requires_grad and dtype in _LOWER
        if cacheable:
            hit = self._cache.get(id(x))
            if hit is not None and hit[0] is x:
                return hit[1]
        y = x.to(dtype)
        if cacheable:
            self._cache[id(x)] = (x, y)
        return y

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        name = _name(func)
        if name == "scaled_dot_product_attention":
            return self._sdpa(*args, **kwargs)
        if name == "cross_entropy":
            return self._cross_entropy(*args, **kwargs)
        if name == "multi_head_attention_forward":
            with self:
                return _MHA_BODY(*args, **kwargs)
        if self.dtype is not None and name in TORCHVISION_FP32_OPS and str(func).startswith("torchvision."):
            return self._in_fp32(func, args, kwargs)
        if name in VF_MODES:
            out = fused_vf(name, args, kwargs, self.dtype)
            if out is not NotImplemented:
                return out
        if self.dtype is not None:
            args, kwargs = self._apply_policy(name, args, kwargs)
        return func(*args, **kwargs)

    def _in_fp32(self, func: Any, args: tuple, kwargs: dict) -> Any:
        """torchvision's autocast kernels: inputs cast to fp32, the result cast back to the input's dtype."""
        first = args[0]
        args, kwargs = tree_map(lambda x: self._cast(x, torch.float32, _LOWER), (args, kwargs))
        out = func(*args, **kwargs)
        if isinstance(out, torch.Tensor) and first.dtype in _LOWER and out.is_floating_point():
            return out.to(first.dtype)
        return out

    def _apply_policy(self, name: str, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        dtype = self.dtype
        if name in LOWER_PRECISION_OPS:
            eligible = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
            return tree_map(lambda x: self._cast(x, dtype, eligible), (args, kwargs))
        if name in FP32_OPS:
            return tree_map(lambda x: self._cast(x, torch.float32, _LOWER), (args, kwargs))
        if name in FP32_SET_OPT_DTYPE_OPS:
            first = args[0] if args else None
            if (isinstance(first, torch.Tensor) and first.dtype in _LOWER
                    and kwargs.get("dtype") is None and not _has_positional_dtype(args)):
                kwargs = {**kwargs, "dtype": torch.float32}
            return args, kwargs
        if name in PROMOTE_OPS:
            floats = [x.dtype for x in _tensors(args, kwargs) if x.is_floating_point()]
            if len(set(floats)) > 1:
                widest = torch.float32 if torch.float32 in floats else max(floats, key=lambda d: d.itemsize)
                return tree_map(lambda x: self._cast(x, widest, _LOWER + (torch.float32,)), (args, kwargs))
        return args, kwargs

    def _cross_entropy(self, input: torch.Tensor, target: torch.Tensor, weight: Any = None,
                       size_average: Any = None, ignore_index: int = -100, reduce: Any = None,
                       reduction: str = "mean", label_smoothing: float = 0.0) -> torch.Tensor:
        with self:
            if target.is_floating_point() or label_smoothing:
                return F.cross_entropy(input, target, weight, size_average, ignore_index, reduce,
                                       reduction, label_smoothing)
            log_probs = F.log_softmax(input, dim=1 if input.dim() > 1 else 0)
            return F.nll_loss(log_probs, target, weight, None, ignore_index, None, reduction)

    def _sdpa(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
              attn_mask: torch.Tensor | None = None, dropout_p: float = 0.0, is_causal: bool = False,
              scale: float | None = None, enable_gqa: bool = False) -> torch.Tensor:
        if self.dtype is not None:
            query, key, value = (self._cast(t, self.dtype, (torch.float32, torch.float64))
                                 for t in (query, key, value))
        if query.dim() != 4:  # the mode is off here: F's own dispatch, not this method again
            return F.scaled_dot_product_attention(query, key, value, attn_mask, dropout_p,
                                                  is_causal, scale=scale, enable_gqa=enable_gqa)
        with self:
            if enable_gqa and key.shape[-3] != query.shape[-3]:  # grouped-query: K/V heads repeated
                groups = query.shape[-3] // key.shape[-3]
                key, value = key.repeat_interleave(groups, -3), value.repeat_interleave(groups, -3)
            if query.dtype in _LOWER and attn_mask is None and query.shape[-1] <= 256:
                out = torch.ops.aten._scaled_dot_product_flash_attention(
                    query, key, value, dropout_p, is_causal, False, scale=scale)
                return out[0]
            out = torch.ops.aten._scaled_dot_product_efficient_attention(
                query, key, value, attn_mask, True, dropout_p, is_causal, scale=scale)
            return out[0]


def _tensors(args: tuple, kwargs: dict) -> list[torch.Tensor]:
    found: list[torch.Tensor] = []
    tree_map(lambda x: found.append(x) if isinstance(x, torch.Tensor) else None, (args, kwargs))
    return found


def _has_positional_dtype(args: tuple) -> bool:
    return any(isinstance(a, torch.dtype) for a in args)
