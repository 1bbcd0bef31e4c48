"""The kernels a recurrent layer (``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN``) runs, by device kind.

The walk records one fused op per recurrent call (``traincost.rnn`` forward, ``traincost.rnn_backward``
backward; :mod:`traincost.flopmodel.rnn`) and this module lists, from that op's shapes alone, what each
kind of device really runs for it:

* ``cuda``: PyTorch calls ``_cudnn_rnn``, one call for all layers and directions. Inside, cuDNN runs per
  layer and direction one GEMM for the input projection of every time step, then per time step a small
  recurrent GEMM (batch x out) @ (out x gates) and one fused elementwise cell kernel, each waiting for the
  step before. Backward: per step the cell's backward kernel and the recurrent data-gradient GEMM, then
  the input-gradient GEMM and the weight gradients as GEMMs over all steps at once. The C++ launches
  cost no Python host time; each kernel takes at least the device's launch latency.
* ``cpu``: an LSTM without projections runs oneDNN (``mkldnn_rnn_layer``: one aten op per layer and
  direction, the same GEMM/cell structure inside); a GRU, a plain RNN or an LSTM with projections runs
  ATen's per-step decomposition, every aten op of it dispatched from C++ (the tables below, taken from
  the aten ops PyTorch 2.x dispatches on CPU for one layer and direction).

A plan is a tuple of :class:`PlanOp`: an op, its shapes, FLOPs and bytes for one run, how many times it
runs (``count``) and whether each run is a dispatched aten op (``host``: it costs host time) or a kernel
launched inside a library call. Pure functions of shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from math import prod

import torch

from traincost.flopmodel import formulas
from traincost.flopmodel.records import OpCost, TensorInfo

#: ``mode`` of a recurrent op -> gates per hidden unit.
GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}

#: FLOPs per (batch, hidden) element of one time step of the fused forward cell kernel (cuDNN's and
#: oneDNN's), counted as :mod:`~traincost.flopmodel.formulas` counts ops (a sigmoid is 4: neg, exp,
#: add, div; a tanh 1):
#: LSTM: 4 gates x 3 adds (input part + recurrent part + two biases) = 12, 3 sigmoids = 12, tanh(g) = 1,
#: c' = f*c + i*g = 3, tanh(c') = 1, h' = o*tanh(c') = 1: 30.
#: GRU: r, z: 2 x 3 adds = 6, 2 sigmoids = 8; n = tanh(x_n + b_in + r * (h_n + b_hn)): 4 + tanh 1 = 5;
#: h' = n + z * (h - n) = 3: 22.
#: RNN: 3 adds + tanh or relu = 4.
CELL_FLOPS = {"LSTM": 30, "GRU": 22, "RNN_TANH": 4, "RNN_RELU": 4}

#: The backward cell kernel: each forward operation costs its local derivative and the product with the
#: incoming gradient, about twice the forward's FLOPs.
CELL_BACKWARD_FACTOR = 2

#: States per (batch, hidden) element a step keeps for backward besides its gates: LSTM the cell state,
#: GRU the recurrent part of its candidate (h_n + b_hn), RNN none.
SAVED_STATES = {"LSTM": 1, "GRU": 1, "RNN_TANH": 0, "RNN_RELU": 0}


@dataclass(frozen=True)
class RnnSpec:
    """One recurrent call: mode, sizes, layers, directions; ``seq`` x ``batch`` time-major input."""

    mode: str
    input_size: int
    hidden_size: int
    proj_size: int
    num_layers: int
    bidirectional: bool
    has_biases: bool
    seq: int
    batch: int
    dropout: float
    train: bool
    dtype: str

    @property
    def dirs(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def gates(self) -> int:
        return GATES[self.mode] * self.hidden_size

    @property
    def out_size(self) -> int:
        """Size of a step's output h: the projection when there is one, else the hidden size."""
        return self.proj_size or self.hidden_size

    def layer_input(self, layer: int) -> int:
        return self.input_size if layer == 0 else self.dirs * self.out_size

    @property
    def itemsize(self) -> int:
        return _ITEMSIZE.get(self.dtype, 4)

    @property
    def dropout_layers(self) -> int:
        """Layer outputs dropout runs on (between layers, in training)."""
        return self.num_layers - 1 if self.train and self.dropout > 0 else 0

    def reserve_bytes(self) -> int:
        """Bytes the forward keeps for backward besides its inputs and output (cuDNN's reserve space):
        every step's gates and saved states for every layer and direction, and the outputs of the inner
        layers (the next layer's inputs)."""
        steps = self.num_layers * self.dirs * self.seq * self.batch
        per_step = self.gates + SAVED_STATES[self.mode] * self.hidden_size
        inner = (self.num_layers - 1) * self.seq * self.batch * self.dirs * self.out_size
        return (steps * per_step + inner) * self.itemsize

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


_ITEMSIZE = {"float64": 8, "float32": 4, "bfloat16": 2, "float16": 2}
_DTYPES = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16,
           "float16": torch.float16}


@dataclass(frozen=True)
class PlanOp:
    """One op of a plan: shapes and work of one run, ``count`` runs; ``host``: each run is a dispatched
    aten op (host time), else a kernel a library launches from C++."""

    op: str
    op_class: str
    flops: int
    bytes_read: int
    bytes_written: int
    input_shapes: tuple[tuple[int, ...], ...]
    output_shapes: tuple[tuple[int, ...], ...]
    dtype: str
    count: int
    host: bool

    def to_dict(self) -> dict:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def _aten(op: str, ins: list[tuple[int, ...]], outs: list[tuple[int, ...]], dtype: str, count: int,
          host: bool) -> PlanOp:
    """An aten op priced by the formula registry, as the walk prices it."""
    torch_dtype = _DTYPES.get(dtype, torch.float32)
    args = tuple(TensorInfo(tuple(s), torch_dtype) for s in ins)
    out = tuple(TensorInfo(tuple(s), torch_dtype) for s in outs)
    cost = formulas.price("aten." + op, args, {}, out[0] if len(out) == 1 else out)
    if cost is None:  # a table bug, not the user's
        raise formulas.FormulaError(f"rnn plan: aten.{op} has no formula")
    return PlanOp("aten." + op, cost.op_class, cost.flops, cost.bytes_read, cost.bytes_written,
                  tuple(tuple(s) for s in ins), tuple(tuple(s) for s in outs), dtype, count, host)


def _kernel(op: str, op_class: str, flops: int, read: int, written: int, shape: tuple[int, ...], dtype: str,
            count: int) -> PlanOp:
    return PlanOp(op, op_class, int(flops), int(read), int(written), (shape,), (shape,), dtype, count, False)


# ---- the fused kernels (cuDNN; oneDNN inside ``mkldnn_rnn_layer``)


def _fused_forward(s: RnnSpec, layer: int) -> list[PlanOp]:
    """One layer and direction of the fused forward: input GEMM, then per step recurrent GEMM + cell."""
    T, B, H, P, GH, I, dt = s.seq, s.batch, s.hidden_size, s.out_size, s.gates, s.layer_input(layer), s.dtype
    n = B * H * s.itemsize
    state = (2 if s.mode == "LSTM" else 1) * n  # h (and c) in and out
    ops = [_aten("mm", [(T * B, I), (I, GH)], [(T * B, GH)], dt, 1, False),
           _aten("mm", [(B, P), (P, GH)], [(B, GH)], dt, T, False),
           _kernel("rnn_cell", "elementwise", CELL_FLOPS[s.mode] * B * H,
                   2 * B * GH * s.itemsize + (2 * GH * s.itemsize if s.has_biases else 0) + state,
                   state + (B * GH + SAVED_STATES[s.mode] * B * H) * s.itemsize, (B, H), dt, T)]
    if s.proj_size:
        ops.append(_aten("mm", [(B, H), (H, P)], [(B, P)], dt, T, False))
    return ops


def _fused_backward(s: RnnSpec, layer: int) -> list[PlanOp]:
    """One layer and direction of the fused backward: per step cell backward + recurrent data-gradient
    GEMM, then the input gradient and the weight gradients as GEMMs over all steps."""
    T, B, H, P, GH, I, dt = s.seq, s.batch, s.hidden_size, s.out_size, s.gates, s.layer_input(layer), s.dtype
    n = B * H * s.itemsize
    saved = (B * GH + SAVED_STATES[s.mode] * B * H) * s.itemsize
    ops = [_kernel("rnn_cell_backward", "elementwise", CELL_BACKWARD_FACTOR * CELL_FLOPS[s.mode] * B * H,
                   saved + 2 * n * (2 if s.mode == "LSTM" else 1), B * GH * s.itemsize + n, (B, H), dt, T),
           _aten("mm", [(B, GH), (GH, P)], [(B, P)], dt, T, False),
           _aten("mm", [(T * B, GH), (GH, I)], [(T * B, I)], dt, 1, False),
           _aten("mm", [(GH, T * B), (T * B, I)], [(GH, I)], dt, 1, False),
           _aten("mm", [(GH, T * B), (T * B, P)], [(GH, P)], dt, 1, False)]
    if s.proj_size:
        ops += [_aten("mm", [(B, P), (P, H)], [(B, H)], dt, T, False),
                _aten("mm", [(P, T * B), (T * B, H)], [(P, H)], dt, 1, False)]
    if s.has_biases:
        ops.append(_aten("sum", [(T * B, GH)], [(GH,)], dt, 1, False))
    return ops


def _dropout(s: RnnSpec, backward: bool) -> list[PlanOp]:
    if not s.dropout_layers:
        return []
    shape = (s.seq, s.batch, s.dirs * s.out_size)
    if backward:
        return [_aten("mul", [shape, shape], [shape], s.dtype, s.dropout_layers, False)]
    return [_aten("bernoulli_", [shape], [shape], s.dtype, s.dropout_layers, False),
            _aten("mul", [shape, shape], [shape], s.dtype, s.dropout_layers, False)]


def _layers(s: RnnSpec, each: object) -> list[PlanOp]:
    return [op for layer in range(s.num_layers) for _ in range(s.dirs) for op in each(s, layer)]


def _cuda(s: RnnSpec, backward: bool) -> tuple[PlanOp, ...]:
    call = PlanOp("aten._cudnn_rnn_backward" if backward else "aten._cudnn_rnn", "free", 0, 0, 0, (), (),
                  s.dtype, 1, True)
    kernels = _layers(s, _fused_backward if backward else _fused_forward)
    return (call, *kernels, *_dropout(s, backward))


# ---- CPU: oneDNN's LSTM layer

def uses_onednn(s: RnnSpec) -> bool:
    """Whether a CPU runs this call on oneDNN (``aten::mkldnn_rnn_layer``): an LSTM without projections in
    float32 (bfloat16 and float16 only on CPUs with those instructions; priced here as float32 does)."""
    return s.mode == "LSTM" and not s.proj_size and s.dtype in ("float32", "bfloat16", "float16")


def _onednn(s: RnnSpec, backward: bool) -> tuple[PlanOp, ...]:
    """Per layer and direction one ``mkldnn_rnn_layer`` (its kernels inside) and the aten ops around it."""
    L, D, B, H, T, dt = s.num_layers, s.dirs, s.batch, s.hidden_size, s.seq, s.dtype
    name = "aten.mkldnn_rnn_layer_backward" if backward else "aten.mkldnn_rnn_layer"
    ops: list[PlanOp] = [PlanOp(name, "free", 0, 0, 0, (), (), dt, L * D, True)]
    ops += _layers(s, _fused_backward if backward else _fused_forward)
    free = lambda op, n: PlanOp("aten." + op, "free", 0, 0, 0, (), (), dt, n, True)  # noqa: E731
    if backward:
        ops += [free("detach", 7 * L * D + 1)]
        if D == 2:
            ops += [free("slice", 2 * L), _aten("add", [(T, B, D * H)] * 2, [(T, B, D * H)], dt, L, True)]
    else:
        ops += [free("select", 2 * L * D), free("detach", 3 * L * D),
                _aten("stack", [(L * D * B, H)], [(L * D, B, H)], dt, 2, True)]
        if D == 2:
            ops.append(_aten("cat", [(T, B, H), (T, B, H)], [(T, B, 2 * H)], dt, L, True))
    return (*ops, *_host_dropout(s, backward))


def _host_dropout(s: RnnSpec, backward: bool) -> list[PlanOp]:
    """Dropout between layers as ATen dispatches it on CPU: empty_like, bernoulli_, div_, mul; backward mul."""
    if not s.dropout_layers:
        return []
    shape, n, dt = (s.seq, s.batch, s.dirs * s.out_size), s.dropout_layers, s.dtype
    if backward:
        return [_aten("mul", [shape, shape], [shape], dt, n, True)]
    return [PlanOp("aten.empty_like", "free", 0, 0, 0, (shape,), (shape,), dt, n, True),
            _aten("bernoulli_", [shape], [shape], dt, n, True), _aten("div_", [shape], [shape], dt, n, True),
            _aten("mul", [shape, shape], [shape], dt, n, True)]


# ---- CPU: ATen's per-step decomposition (GRU, RNN, LSTM with projections)

#: One layer and direction of ATen's decomposition on CPU, as rows (op, per step, once, input shapes,
#: output shapes): the op runs ``per_step x seq + once`` times (``once`` < 0: the first or last step skips
#: it, e.g. no recurrent data gradient into the initial state). Shape symbols: B batch, H hidden, P step
#: output (H, or the projection), G gates x H, I the layer's input size, T seq, TB seq x batch; a stack or
#: cat of many tensors is written as the one tensor of the same bytes.
_FREE_FWD = [("t", 1, 1, ["G,P"], ["P,G"]), ("view", 0, 2, ["T,B,I"], ["TB,I"]),
             ("addmm", 0, 1, ["G", "TB,I", "I,G"], ["TB,G"])]
_FWD = {
    "GRU": [("addmm", 1, 0, ["G", "B,P", "P,G"], ["B,G"]), ("unsafe_split", 2, 0, ["B,G"], ["B,H"]),
            ("add_", 3, 0, ["B,H", "B,H"], ["B,H"]), ("sigmoid_", 2, 0, ["B,H"], ["B,H"]),
            ("detach", 3, 0, ["B,H"], ["B,H"]), ("clone", 2, 0, ["B,H"], ["B,H"]),
            ("mul_", 2, 0, ["B,H", "B,H"], ["B,H"]), ("add", 1, 0, ["B,H", "B,H"], ["B,H"]),
            ("tanh_", 1, 0, ["B,H"], ["B,H"]), ("sub", 1, 0, ["B,H", "B,H"], ["B,H"]),
            ("unbind", 0, 2, ["T,B,G"], ["B,G"]), ("stack", 0, 2, ["TB,P"], ["T,B,P"])],
    "RNN": [("addmm", 1, 0, ["G", "B,P", "P,G"], ["B,G"]), ("add_", 1, 0, ["B,H", "B,H"], ["B,H"]),
            ("ACT", 1, 0, ["B,H"], ["B,H"]), ("detach", 1, 0, ["B,H"], ["B,H"]),
            ("unbind", 0, 2, ["T,B,G"], ["B,G"]), ("stack", 0, 2, ["TB,P"], ["T,B,P"])],
    "LSTM": [("addmm", 1, 0, ["G", "B,P", "P,G"], ["B,G"]), ("add_", 1, 0, ["B,G", "B,G"], ["B,G"]),
             ("unsafe_split", 1, 0, ["B,G"], ["B,H"]), ("sigmoid_", 3, 0, ["B,H"], ["B,H"]),
             ("tanh_", 1, 0, ["B,H"], ["B,H"]), ("detach", 5, 0, ["B,H"], ["B,H"]),
             ("mul", 3, 0, ["B,H", "B,H"], ["B,H"]), ("add_", 1, 0, ["B,H", "B,H"], ["B,H"]),
             ("tanh", 1, 0, ["B,H"], ["B,H"]), ("unbind", 0, 3, ["T,B,G"], ["B,G"]),
             ("stack", 0, 2, ["TB,P"], ["T,B,P"]), ("stack", 0, 1, ["B,H"], ["1,B,H"])],
}
_PROJ_FWD = [("t", 1, 0, ["P,H"], ["H,P"]), ("mm", 1, 0, ["B,H", "H,P"], ["B,P"])]
_BWD_COMMON = [("select", 1, 0, ["T,B,P"], ["B,P"]), ("t", 4, 3, ["G,P"], ["P,G"]),
               ("mm", 1, -1, ["B,G", "G,P"], ["B,P"]), ("mm", 1, 0, ["G,B", "B,P"], ["G,P"]),
               ("sum", 1, 0, ["B,G"], ["G"]), ("view", 1, 3, ["G"], ["1,G"]),
               ("add", 1, -1, ["G", "G"], ["G"]), ("add", 1, -1, ["G,P", "G,P"], ["G,P"]),
               ("mm", 0, 1, ["TB,G", "G,I"], ["TB,I"]), ("mm", 0, 1, ["G,TB", "TB,I"], ["G,I"]),
               ("sum", 0, 1, ["TB,G"], ["G"]), ("stack", 0, 1, ["TB,G"], ["T,B,G"]),
               ("detach", 0, 5, ["G"], ["G"])]
_BWD = {
    "GRU": [("mul", 4, 0, ["B,H", "B,H"], ["B,H"]), ("neg", 1, 0, ["B,H"], ["B,H"]),
            ("add", 3, -2, ["B,H", "B,H"], ["B,H"]), ("detach", 3, 0, ["B,H"], ["B,H"]),
            ("tanh_backward", 1, 0, ["B,H", "B,H"], ["B,H"]),
            ("sigmoid_backward", 2, 0, ["B,H", "B,H"], ["B,H"]), ("cat", 2, 0, ["B,G"], ["B,G"])],
    "RNN": [("add", 1, -1, ["B,H", "B,H"], ["B,H"]), ("detach", 1, 0, ["B,H"], ["B,H"]),
            ("ACT_BACKWARD", 1, 0, ["B,H", "B,H"], ["B,H"])],
    "LSTM": [("mul", 6, -1, ["B,H", "B,H"], ["B,H"]), ("add", 1, -1, ["B,H", "B,H"], ["B,H"]),
             ("detach", 5, 0, ["B,H"], ["B,H"]), ("tanh_backward", 2, 0, ["B,H", "B,H"], ["B,H"]),
             ("sigmoid_backward", 3, 0, ["B,H", "B,H"], ["B,H"]), ("cat", 1, 0, ["B,G"], ["B,G"])],
}
_PROJ_BWD = [("t", 4, 0, ["P,H"], ["H,P"]), ("mm", 1, 0, ["B,P", "P,H"], ["B,H"]),
             ("mm", 1, 0, ["P,B", "B,H"], ["P,H"]), ("add", 1, -1, ["P,H", "P,H"], ["P,H"]),
             ("add", 1, -1, ["B,P", "B,P"], ["B,P"]), ("detach", 0, 1, ["P,H"], ["P,H"])]


def _family(mode: str) -> str:
    return "RNN" if mode.startswith("RNN") else mode


def _shape(template: str, sym: dict[str, int]) -> tuple[int, ...]:
    return tuple(prod(sym[p] for p in dim.split("*")) if not dim.isdigit() else int(dim)
                 for dim in template.split(","))


def _decomposed(s: RnnSpec, backward: bool) -> tuple[PlanOp, ...]:
    """ATen's per-step decomposition, every op a dispatched aten op (host time each)."""
    family = _family(s.mode)
    act = "relu" if s.mode == "RNN_RELU" else "tanh"
    act_bwd = "threshold_backward" if s.mode == "RNN_RELU" else "tanh_backward"
    ops: list[PlanOp] = []
    for layer in range(s.num_layers):
        sym = {"B": s.batch, "H": s.hidden_size, "P": s.out_size, "G": s.gates, "I": s.layer_input(layer),
               "T": s.seq, "TB": s.seq * s.batch}
        if backward:
            rows = _BWD_COMMON + _BWD[family] + (_PROJ_BWD if s.proj_size else [])
        else:
            rows = _FREE_FWD + _FWD[family] + (_PROJ_FWD if s.proj_size else [])
        for op, per_step, once, ins, outs in rows:
            count = (per_step * s.seq + once) * s.dirs
            if count <= 0:
                continue
            op = {"ACT": act, "ACT_BACKWARD": act_bwd}.get(op, op)
            shapes_in = [_shape(t, sym) for t in ins]
            shapes_out = [_shape(t, sym) for t in outs]
            if "aten." + op in formulas.FREE_OPS:
                ops.append(PlanOp("aten." + op, "free", 0, 0, 0, tuple(shapes_in), tuple(shapes_out),
                                  s.dtype, count, True))
            else:
                ops.append(_aten(op, shapes_in, shapes_out, s.dtype, count, True))
        if s.bidirectional and not backward:
            ops.append(_aten("cat", [(s.seq, s.batch, s.out_size)] * 2, [(s.seq, s.batch, 2 * s.out_size)],
                             s.dtype, 1, True))
    return (*ops, *_host_dropout(s, backward))


# ---- public API


@lru_cache(maxsize=256)
def plan(spec: RnnSpec, kind: str, backward: bool) -> tuple[PlanOp, ...]:
    """The ops a ``kind`` (``"cuda"`` or ``"cpu"``) device runs for the forward (or backward) of ``spec``."""
    if kind == "cuda":
        return _cuda(spec, backward)
    if uses_onednn(spec):
        return _onednn(spec, backward)
    return _decomposed(spec, backward)


def host_ops(ops: tuple[PlanOp, ...]) -> int:
    """Dispatched aten ops of a plan (each costs host time)."""
    return sum(op.count for op in ops if op.host)


def fused_cost(spec: RnnSpec, backward: bool) -> OpCost:
    """FLOPs and bytes of the fused op: the sum of cuDNN's kernels (:func:`plan` for ``cuda``)."""
    ops = plan(spec, "cuda", backward)
    return OpCost(sum(o.flops * o.count for o in ops), sum(o.bytes_read * o.count for o in ops),
                  sum(o.bytes_written * o.count for o in ops), "rnn")


def spec_from_args(name: str, args: tuple) -> RnnSpec:
    """The :class:`RnnSpec` of a recorded ``traincost.rnn`` / ``traincost.rnn_backward`` call (tensors as
    :class:`TensorInfo`): the layout of :func:`traincost.flopmodel.rnn.rnn_op`'s arguments."""
    x, weights = args[0], args[3]
    mode, hidden, proj, layers, bidirectional, has_biases, dropout, train = args[-8:]
    seq, batch, size = x.shape
    return RnnSpec(mode=str(mode), input_size=int(size), hidden_size=int(hidden), proj_size=int(proj),
                   num_layers=int(layers), bidirectional=bool(bidirectional), has_biases=bool(has_biases),
                   seq=int(seq), batch=int(batch), dropout=float(dropout), train=bool(train),
                   dtype=str(weights[0].dtype).removeprefix("torch.") if weights else "float32")


RNN_OPS = ("traincost.rnn", "traincost.rnn_backward")


def record_extra(name: str, args: tuple) -> dict:
    """``OpRecord.extra`` of a recurrent op: its spec and the plans of both device kinds; ``{}`` otherwise."""
    if name not in RNN_OPS:
        return {}
    spec = spec_from_args(name, args)
    backward = name == RNN_OPS[1]
    return {"rnn": spec, "plans": {kind: plan(spec, kind, backward) for kind in ("cuda", "cpu")}}


def _formula(name: str):  # noqa: ANN202
    def f(args: tuple, kwargs: dict, out: object) -> OpCost:
        return fused_cost(spec_from_args(name, args), name == RNN_OPS[1])
    return f


for _name in RNN_OPS:
    formulas._register(_name)(_formula(_name))
