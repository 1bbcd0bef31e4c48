"""Recurrent layers walked as one fused op and priced as each device kind runs them (hand arithmetic)."""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
import pytest
import torch
from cli_helpers import run_json
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from traincost.flopmodel.rnnplan import CELL_FLOPS, RnnSpec, host_ops, plan
from traincost.flopmodel.walker import StepConfig, walk
from traincost.hardware.profile import SCHEMA_VERSION, Curve, DeviceProfile
from traincost.pricing.optable import OpTable
from traincost.pricing.timeline import COMPOSITE_OP_RATIO, host_op_ratios, price


class _Last(nn.Module):
    """A recurrent layer and a linear head on its (batch, seq, hidden) output."""

    def __init__(self, rnn: nn.Module, out: int) -> None:
        super().__init__()
        self.rnn = rnn
        self.head = nn.Linear(out, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0]).transpose(1, 2)


def _walk(rnn: nn.Module, seq: int, size: int, batch: int, out: int, precision: str = "fp32"):
    return walk(_Last(rnn, out), (seq, size), StepConfig(batch_size=batch, precision=precision))


def _fused(w, phase: str):
    found = [r for r in w.records if r.op == ("traincost.rnn" if phase == "forward" else "traincost.rnn_backward")]
    assert len(found) == 1
    return found[0]


T, B, I, H = 5, 3, 8, 16


def test_lstm_is_one_fused_op_per_phase_with_hand_flops():
    w = _walk(nn.LSTM(I, H, 1, batch_first=True), T, I, B, H)
    # no per-step ops: the fused op, the head and the loss only
    assert not [r for r in w.records if r.op in ("aten.sigmoid_", "aten.addmm") and r.module == "rnn"]
    gates = 4 * H
    fwd = 2 * T * B * I * gates + 2 * T * B * H * gates + 30 * T * B * H  # input GEMM, recurrent GEMM, cells
    assert CELL_FLOPS["LSTM"] == 4 * 3 + 3 * 4 + 1 + 3 + 1 + 1
    assert _fused(w, "forward").flops == fwd
    assert _fused(w, "forward").module == "rnn"
    # backward: data and weight gradients each repeat both GEMMs; the cell backward twice the cell; bias sum
    bwd = 2 * (2 * T * B * I * gates) + 2 * (2 * T * B * H * gates) + 2 * 30 * T * B * H + T * B * gates
    assert _fused(w, "backward").flops == bwd
    assert _fused(w, "backward").module == "rnn"


@pytest.mark.parametrize("mode, cell", [("GRU", 22), ("RNN_RELU", 4)])
def test_gru_and_rnn_hand_flops(mode, cell):
    rnn = nn.GRU(I, H, 1) if mode == "GRU" else nn.RNN(I, H, 1, nonlinearity="relu")
    w = walk(_TimeMajor(rnn), (T, I), StepConfig(batch_size=B))
    gates = (3 if mode == "GRU" else 1) * H
    assert CELL_FLOPS[mode] == cell
    assert _fused(w, "forward").flops == 2 * T * B * I * gates + 2 * T * B * H * gates + cell * T * B * H
    assert _fused(w, "forward").extra["rnn"].mode == mode


class _TimeMajor(nn.Module):
    """A time-major recurrent layer (input (seq, batch, features)) whose loss reads (batch, classes, seq)."""

    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        self.rnn = rnn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rnn(x.transpose(0, 1))[0].permute(1, 2, 0)


def test_shapes_and_gradients_of_a_deep_bidirectional_projected_lstm():
    rnn = nn.LSTM(I, H, 2, batch_first=True, bidirectional=True, proj_size=4, dropout=0.5)
    w = _walk(rnn, T, I, B, 2 * 4)
    spec = _fused(w, "forward").extra["rnn"]
    assert (spec.num_layers, spec.dirs, spec.proj_size, spec.out_size, spec.seq, spec.batch) == (2, 2, 4, 4, T, B)
    assert _fused(w, "forward").output_shapes[0] == (T, B, 2 * 4)
    grads = [r for r in w.records if r.op == "traincost.rnn_backward"][0].output_shapes
    assert sorted(grads[3:]) == sorted(tuple(p.shape) for p in rnn.parameters())
    assert w.memory.gradients_bytes >= sum(p.numel() * 4 for p in rnn.parameters())


def test_reserve_space_is_a_saved_activation():
    w = _walk(nn.LSTM(I, H, 2, batch_first=True), T, I, B, H)
    spec = _fused(w, "forward").extra["rnn"]
    # gates and the cell state of every step, layer and direction, and the inner layer's output
    assert spec.reserve_bytes() == (2 * T * B * (4 * H + H) + T * B * H) * 4
    assert w.memory.saved_activations_bytes >= spec.reserve_bytes()


def test_autocast_runs_cudnn_in_float16():
    w = _walk(nn.LSTM(I, H, 1, batch_first=True), T, I, B, H, precision="bf16")
    r = _fused(w, "forward")
    assert r.extra["rnn"].dtype == "float16" and r.input_dtypes[0] == "float16"


def _cuda_profile(launch_s: float) -> DeviceProfile:
    return DeviceProfile(
        schema_version=SCHEMA_VERSION, source="calibrated", name="test gpu", kind="cuda", catalog_key=None,
        memory_bytes=8 * 2**30, compute={"matmul": {"fp32": Curve(1e13, 1e-6)}},
        memory=Curve(1e12, 1e-6), reduction=Curve(1e12, 1e-6), dispatch_s=5e-6, dispatch_autocast_s=6e-6,
        launch_s=launch_s, optimizer={}, software={"torch": "x"}, created="2025-01-01",
        properties={"conv_fp32_uses_tf32": False})


def _fused_row(table: OpTable, op: str) -> int:
    return next(i for i in table.rnn_plans if table.rnn_plans[i]["cuda"][0].op == op)


def test_cuda_time_is_the_kernels_of_every_step_at_least_a_launch_each():
    """A 1-layer RNN: forward = 1 input GEMM + T recurrent GEMMs + T cell kernels, one after the other; with
    tiny kernels each costs the launch latency, so the fused op is (1 + 2T) launches."""
    w = walk(_TimeMajor(nn.RNN(I, H, 1)), (T, I), StepConfig(batch_size=B))
    table = OpTable.from_walk(w)
    launch = 20e-6  # above every curve's time for these few-kFLOP kernels
    profile = _cuda_profile(launch)
    device, _, _ = table.device_times(profile)
    fwd = _fused_row(table, "aten._cudnn_rnn")
    assert device[fwd] == pytest.approx((1 + 2 * T) * launch)
    # backward: T cell-backward and T recurrent-gradient kernels, then input, W_ih, W_hh gradients, bias sum
    bwd = _fused_row(table, "aten._cudnn_rnn_backward")
    assert device[bwd] == pytest.approx((2 * T + 4) * launch)
    # host: one op each, however many steps
    host = price(table, profile).host_s
    ratios = host_op_ratios(profile)
    assert host[fwd] == pytest.approx(5e-6 * ratios["forward"] + 5e-6 * COMPOSITE_OP_RATIO)
    assert host[bwd] == pytest.approx(5e-6 * ratios["backward"])


def test_cuda_time_of_a_large_input_gemm_is_its_flops_at_the_curve():
    """With no launch floor, the input GEMM (seq x batch, in) @ (in, 4h) costs latency + FLOPs / peak."""
    spec = RnnSpec("LSTM", 512, 64, 0, 1, False, True, 400, 64, 0.0, True, "float32")
    ops = plan(spec, "cuda", False)
    gemm = ops[1]
    assert gemm.input_shapes == ((400 * 64, 512), (512, 256)) and gemm.count == 1
    assert gemm.flops == 2 * 400 * 64 * 512 * 256
    w = walk(_TimeMajor(nn.LSTM(512, 64, 1)), (400, 512), StepConfig(batch_size=64))
    table = OpTable.from_walk(w)
    sub, runs = table.plan_table(_fused_row(table, "aten._cudnn_rnn"), _cuda_profile(0.0))
    t, _, _ = sub.device_times(_cuda_profile(0.0))
    assert t[1] == pytest.approx(1e-6 + gemm.flops / 1e13)
    assert runs[1] == 1 and runs[2] == 400  # the recurrent GEMM runs once per step


class _Dispatched(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        self.ops.append(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


def _cpu_ops(mode: str, seq: int, layers: int, bidirectional: bool, proj: int = 0) -> tuple[Counter, Counter]:
    """The aten ops PyTorch dispatches on this CPU inside one ``torch._VF`` recurrent call and its backward."""
    torch.manual_seed(0)
    kw = {"bidirectional": bidirectional}
    m = (nn.LSTM(I, H, layers, proj_size=proj, **kw) if mode == "LSTM" else nn.GRU(I, H, layers, **kw)
         if mode == "GRU" else nn.RNN(I, H, layers, **kw))
    d = 2 if bidirectional else 1
    x = torch.randn(seq, B, I, requires_grad=True)
    h0 = torch.zeros(layers * d, B, proj or H)
    hx = [h0, torch.zeros(layers * d, B, H)] if mode == "LSTM" else h0
    vf = {"LSTM": torch._VF.lstm, "GRU": torch._VF.gru, "RNN_TANH": torch._VF.rnn_tanh}[mode]
    fwd, bwd = _Dispatched(), _Dispatched()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "LSTM with projections is not supported with oneDNN"
        with fwd:
            out = vf(x, hx, m._flat_weights, True, layers, 0.0, True, bidirectional, False)
    grad = torch.ones_like(out[0])
    with bwd:
        torch.autograd.backward(out[0], grad)
    return Counter(fwd.ops), Counter(bwd.ops)


def _plan_ops(spec: RnnSpec, backward: bool) -> Counter:
    """The dispatched aten ops of the CPU plan, by name."""
    out: Counter = Counter()
    for o in plan(spec, "cpu", backward):
        if o.host:
            out[o.op] += o.count
    return out


@pytest.mark.parametrize("mode, proj", [("GRU", 0), ("RNN_TANH", 0), ("LSTM", 4)])
def test_cpu_plan_is_the_per_step_decomposition_this_cpu_dispatches(mode, proj):
    """GRU, RNN and LSTM with projections: one layer and direction, op for op as ATen runs it."""
    seq = 4
    fwd, bwd = _cpu_ops(mode, seq, 1, False, proj)
    spec = RnnSpec(mode, I, H, proj, 1, False, True, seq, B, 0.0, True, "float32")
    assert _plan_ops(spec, False) == fwd
    assert _plan_ops(spec, True) == bwd
    # ops per cell: the count grows by a fixed number of ops per step
    per_step = host_ops(plan(spec.__class__(**{**spec.to_dict(), "seq": seq + 1}), "cpu", False)) - host_ops(
        plan(spec, "cpu", False))
    assert per_step == {"GRU": 19, "RNN_TANH": 5, "LSTM": 20}[mode]


def test_cpu_plan_of_deep_bidirectional_gru_is_close_to_what_runs():
    """Two layers, two directions: the per-step ops exactly x layers x directions; the joins between
    layers (a few stacks, unbinds and gradient sums) within 3 %."""
    seq = 4
    fwd, bwd = _cpu_ops("GRU", seq, 2, True)
    spec = RnnSpec("GRU", I, H, 0, 2, True, True, seq, B, 0.0, True, "float32")
    for real, backward in ((fwd, False), (bwd, True)):
        planned = host_ops(plan(spec, "cpu", backward))
        assert abs(planned - sum(real.values())) <= 0.03 * sum(real.values())


@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, False), (1, True), (2, True)])
def test_cpu_lstm_runs_onednn_one_op_per_layer_and_direction(layers, bidirectional):
    fwd, bwd = _cpu_ops("LSTM", 3, layers, bidirectional)
    spec = RnnSpec("LSTM", I, H, 0, layers, bidirectional, True, 3, B, 0.0, True, "float32")
    assert _plan_ops(spec, False) == fwd
    assert _plan_ops(spec, True) == bwd
    assert fwd["aten.mkldnn_rnn_layer"] == layers * (2 if bidirectional else 1)


def test_cpu_host_time_is_every_dispatched_op():
    """On a CPU profile the fused GRU costs the host time of every op of its decomposition."""
    seq = 6
    w = walk(_TimeMajor(nn.GRU(I, H, 1)), (seq, I), StepConfig(batch_size=B))
    table = OpTable.from_walk(w)
    cpu = DeviceProfile(**{**_cuda_profile(0.0).__dict__, "kind": "cpu", "name": "test cpu"})
    host = price(table, cpu).host_s
    fwd = next(i for i in table.rnn_plans if w.records[i].op == "traincost.rnn")
    bwd = next(i for i in table.rnn_plans if w.records[i].op == "traincost.rnn_backward")
    ratios = host_op_ratios(cpu)
    assert host[fwd] == pytest.approx(5e-6 * (ratios["forward"] + COMPOSITE_OP_RATIO * (19 * seq + 8)))
    assert host[bwd] == pytest.approx(5e-6 * ratios["backward"] * (27 * seq + 14 - 4))
    # device: the sum of the decomposition's ops, each priced as a walked op would be
    sub, runs = table.plan_table(fwd, cpu)
    assert table.device_times(cpu)[0][fwd] == pytest.approx(float(np.dot(runs, sub.device_times(cpu)[0])))


def test_predict_a_2_layer_lstm_on_a100_is_a_few_milliseconds(data_dir):
    """2-layer LSTM(256), seq 50, batch 64, fp32 on an A100 (TF32 in cuDNN).

    Physical bounds: the GEMMs are ~20 GFLOP (forward 2 x 2 x 2 x 3200 x 256 x 1024 = 6.7 GFLOP, backward
    twice that): >= 0.13 ms at the A100's 156 TFLOP/s TF32 peak; and the recurrence is sequential: 2
    layers x 50 steps x (2 forward + 2 backward kernels) = 400 dependent kernels of >= ~1 us each on any
    GPU: > 0.3 ms. Above: the same kernels at the A100's rates are a few ms, far from the ~150 ms that the
    per-step decomposition's Python host cost (5,900 ops) gave. < 10 ms."""
    out = run_json("predict", f"{data_dir / 'rnn_model.py'}:make_lstm", "--input-shape", "50,256",
                   "--batch-size", "64", "--device", "A100", "--correction", "none")
    assert 0.3 < out["analytic_ms"] < 10.0
    assert out["iteration_ms"] == out["analytic_ms"]
