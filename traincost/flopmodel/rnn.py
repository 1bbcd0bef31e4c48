"""``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` walked as one fused op per call, as CUDA runs them.

On meta, ``torch._VF.lstm`` (and ``gru``, ``rnn_tanh``, ``rnn_relu``) decomposes into thousands of
per-step aten ops; on CUDA PyTorch calls ``_cudnn_rnn`` once for all layers and directions. The walk
records what CUDA dispatches: :func:`fused_vf` (called by :class:`~traincost.flopmodel.autocast.CudaOpMode`
for the ``_VF`` functions) runs the custom ops ``traincost::rnn`` / ``traincost::rnn_backward`` on meta.
Their outputs have the shapes cuDNN's have, and the forward returns cuDNN's reserve space (the gates and
states every step keeps for backward, :meth:`~traincost.flopmodel.rnnplan.RnnSpec.reserve_bytes`), saved
by autograd until backward like any saved activation. What each device kind runs for the op, and so its
price, is :mod:`traincost.flopmodel.rnnplan`'s.

As on CUDA: under autocast (bf16 or fp16) the call runs in float16 (``_cudnn_rnn_cast_reflatten`` casts
input, states and weights to half whatever the autocast dtype); a bfloat16 input outside autocast, a
packed sequence and tensors off the meta device keep the per-step decomposition (cuDNN does not take
bfloat16; a packed sequence is priced per step).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor

from traincost.flopmodel import rnnplan

#: ``torch._VF`` function -> the op's ``mode``.
VF_MODES = {"lstm": "LSTM", "gru": "GRU", "rnn_tanh": "RNN_TANH", "rnn_relu": "RNN_RELU"}


def _shape_spec(input: Tensor, weights: list[Tensor], mode: str, hidden_size: int, proj_size: int,
                num_layers: int, bidirectional: bool, has_biases: bool, dropout: float,
                train: bool) -> rnnplan.RnnSpec:
    seq, batch, size = input.shape
    return rnnplan.RnnSpec(mode, int(size), hidden_size, proj_size, num_layers, bidirectional, has_biases,
                           int(seq), int(batch), dropout, train, str(weights[0].dtype).removeprefix("torch."))


@torch.library.custom_op("traincost::rnn", mutates_args=())
def rnn_op(input: Tensor, hx: Tensor, cx: Optional[Tensor], weights: list[Tensor], mode: str,
           hidden_size: int, proj_size: int, num_layers: int, bidirectional: bool, has_biases: bool,
           dropout: float, train: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """A whole recurrent call (time-major input): output, h_n, c_n (empty but for an LSTM), reserve."""
    raise NotImplementedError("traincost::rnn runs on the meta device only")


@rnn_op.register_fake
def _rnn_fake(input, hx, cx, weights, mode, hidden_size, proj_size, num_layers, bidirectional,  # noqa: ANN001
              has_biases, dropout, train):  # noqa: ANN001, ANN202
    spec = _shape_spec(input, weights, mode, hidden_size, proj_size, num_layers, bidirectional, has_biases,
                       dropout, train)
    out = input.new_empty((spec.seq, spec.batch, spec.dirs * spec.out_size))
    cy = cx.new_empty(cx.shape) if cx is not None else input.new_empty((0,))
    reserve = input.new_empty((spec.reserve_bytes() // spec.itemsize,))
    return out, hx.new_empty(hx.shape), cy, reserve


@torch.library.custom_op("traincost::rnn_backward", mutates_args=())
def rnn_backward_op(input: Tensor, hx: Tensor, cx: Optional[Tensor], weights: list[Tensor], output: Tensor,
                    reserve: Tensor, grad_output: Optional[Tensor], grad_hy: Optional[Tensor],
                    grad_cy: Optional[Tensor], mode: str, hidden_size: int, proj_size: int, num_layers: int,
                    bidirectional: bool, has_biases: bool, dropout: float,
                    train: bool) -> tuple[Tensor, Tensor, Tensor, list[Tensor]]:
    """Gradients of :func:`rnn_op`: input, h_0, c_0 (empty but for an LSTM) and every weight."""
    raise NotImplementedError("traincost::rnn_backward runs on the meta device only")


@rnn_backward_op.register_fake
def _rnn_backward_fake(input, hx, cx, weights, output, reserve, grad_output, grad_hy, grad_cy,  # noqa: ANN001
                       *scalars):  # noqa: ANN002, ANN202
    gcx = torch.empty_like(cx) if cx is not None else input.new_empty((0,))
    return torch.empty_like(input), torch.empty_like(hx), gcx, [torch.empty_like(w) for w in weights]


def _setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
    input, hx, cx, weights, *scalars = inputs
    ctx.scalars = tuple(scalars)
    ctx.n_weights = len(weights)
    ctx.has_cx = cx is not None
    ctx.set_materialize_grads(False)  # cuDNN takes undefined gradients of unused outputs
    ctx.save_for_backward(input, hx, *([cx] if cx is not None else []), *weights, output[0], output[3])


def _backward(ctx: Any, grad_output: Tensor | None, grad_hy: Tensor | None, grad_cy: Tensor | None,
              grad_reserve: Tensor | None) -> tuple:
    saved = list(ctx.saved_tensors)
    input, hx = saved[0], saved[1]
    cx = saved[2] if ctx.has_cx else None
    rest = saved[3 if ctx.has_cx else 2:]
    weights, output, reserve = rest[:ctx.n_weights], rest[-2], rest[-1]
    gx, ghx, gcx, gw = torch.ops.traincost.rnn_backward(
        input, hx, cx, weights, output, reserve, grad_output, grad_hy, grad_cy if ctx.has_cx else None, *ctx.scalars)
    return (gx, ghx, gcx if ctx.has_cx else None, list(gw), *([None] * len(ctx.scalars)))


rnn_op.register_autograd(_backward, setup_context=_setup_context)


def _is_unpacked(name: str, args: tuple) -> bool:
    """``_VF`` signatures: ``lstm(input, [h, c], params, ...)`` / ``gru(input, h, params, ...)`` with 9
    arguments; the packed-sequence overloads take ``(data, batch_sizes, hx, params, ...)``."""
    if len(args) != 9:
        return False
    return isinstance(args[1], (list, tuple)) if name == "lstm" else isinstance(args[2], (list, tuple))


def _all_meta(tensors: list[Any]) -> bool:
    return all(isinstance(t, Tensor) and t.is_meta for t in tensors)


def fused_vf(name: str, args: tuple, kwargs: dict, autocast_dtype: torch.dtype | None) -> Any:
    """The result of ``torch._VF.<name>(*args)`` computed as one fused op, or ``NotImplemented`` when CUDA
    would not run it on cuDNN either (see module doc): the caller then runs the decomposition."""
    mode = VF_MODES.get(name)
    if mode is None or kwargs or not _is_unpacked(name, args):
        return NotImplemented
    input, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first = args
    states = list(hx) if name == "lstm" else [hx]
    params = list(params)
    if not _all_meta([input, *states, *params]) or input.dim() != 3 or not params:
        return NotImplemented
    if input.dtype not in (torch.float32, torch.float64, torch.float16):
        return NotImplemented  # cuDNN takes no bfloat16: CUDA runs the per-step decomposition
    if autocast_dtype is not None and input.dtype != torch.float64:
        input, states, params = (input.to(torch.float16), [s.to(torch.float16) for s in states],
                                 [p.to(torch.float16) for p in params])
    hidden = int(states[-1].shape[2])
    proj = int(states[0].shape[2]) if name == "lstm" and states[0].shape[2] != hidden else 0
    x = input.transpose(0, 1) if batch_first else input
    out, hy, cy, _reserve = torch.ops.traincost.rnn(
        x, states[0], states[1] if name == "lstm" else None, params, mode, hidden, proj, int(num_layers),
        bool(bidirectional), bool(has_biases), float(dropout), bool(train))
    if batch_first:
        out = out.transpose(0, 1)
    return (out, hy, cy) if name == "lstm" else (out, hy)
