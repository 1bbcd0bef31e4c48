"""Tests for traincost.flopmodel.memory: the ledger on constructed events, and invariants of walks."""

from __future__ import annotations

import pytest
import torch

import traincost
from traincost import max_batch_size, resolve
from traincost.errors import SpecError
from traincost.flopmodel.memory import (
    BLOCK_BYTES,
    CATEGORIES,
    MemoryLedger,
    round_block,
)


def meta(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.empty(shape, device="meta", dtype=dtype)


# --------------------------------------------------------------------------------------------
# the ledger on constructed events


def test_round_block() -> None:
    assert BLOCK_BYTES == 512
    assert round_block(0) == 0
    assert round_block(1) == 512
    assert round_block(512) == 512
    assert round_block(513) == 2 * 512
    assert round_block(4000) == 8 * 512  # 4000 / 512 = 7.8 -> 8 blocks


def test_ledger_forward_backward_peak() -> None:
    """parameters 100 floats, activations a (1000 floats) and b (10x10), a backward temporary c."""
    ledger = MemoryLedger()
    p = meta(100)                    # 400 B -> 512
    ledger.register([p], "parameters")
    a = meta(1000)                   # 4000 B -> 4096
    ledger.observe(a, 0, "forward")
    ledger.tick(0)
    b = meta(10, 10)                 # 400 B -> 512, kept for backward
    ledger.observe(b, 1, "forward")
    ledger.tick(1)
    del a                            # freed after op 1: alive while ops 0 and 1 ran
    ledger.mark_end_of_forward(2)
    c = meta(3000)                   # 12000 B -> 12288
    ledger.observe(c, 2, "backward")
    ledger.tick(2)
    del c
    d = meta(10)                     # 40 B -> 512
    ledger.observe(d, 3, "backward")
    ledger.tick(3)
    report = ledger.report(["forward", "forward", "backward", "backward"])

    # op 0: p + a = 512 + 4096; op 1: p + a + b = 512 + 4096 + 512 = 5120
    # op 2: p + b + c = 512 + 512 + 12288 = 13312 (a is gone); op 3: p + b + d = 1536
    assert report.peak_bytes == 512 + 512 + 12288
    assert report.peak_op_index == 2
    assert report.peak_phase == "backward"
    assert report.parameters_bytes == 512
    assert report.saved_activations_bytes == 512  # b outlives the forward pass; a does not
    assert report.transient_bytes == 12288
    assert report.at_peak == {**{c: 0 for c in CATEGORIES}, "parameters": 512, "activations": 512,
                              "backward": 12288}
    del b, d, p


def test_ledger_forward_peak_and_categories() -> None:
    ledger = MemoryLedger()
    w = meta(256, 256)               # 262144 B = 512 blocks exactly
    ledger.register([w], "parameters")
    x = meta(8, 256)                 # 8192 B
    ledger.register([x], "inputs")
    state = meta(256, 256)
    ledger.register([state], "optimizer_state")
    y = meta(8, 1000)                # 32000 B -> 32256 (63 blocks)
    ledger.observe(y, 0, "forward")
    ledger.tick(0)
    ledger.mark_end_of_forward(1)
    g = meta(256, 256)
    ledger.observe(g, 1, "backward")
    ledger.register([g], "gradients")  # re-labelled: an output of backward that is a gradient
    ledger.tick(1)
    del y
    report = ledger.report(["forward", "backward"])
    # op 1: w + x + state + y + g = 262144 + 8192 + 262144 + 32256 + 262144
    assert report.peak_bytes == 262144 + 8192 + 262144 + 32256 + 262144
    assert report.peak_op_index == 1
    assert report.gradients_bytes == 262144 and report.optimizer_state_bytes == 262144
    assert report.inputs_bytes == 8192
    assert report.fixed_bytes == 3 * 262144
    assert report.saved_activations_bytes == 32256
    assert report.transient_bytes == 0
    del w, x, state, g


def test_ledger_ignores_views_and_host_tensors() -> None:
    ledger = MemoryLedger()
    a = meta(1024)                   # 4096 B
    ledger.observe(a, 0, "forward")
    ledger.observe(a.view(32, 32), 0, "forward")  # same storage: counted once
    ledger.observe(a[:10], 0, "forward")
    ledger.observe(torch.zeros(1000), 0, "forward")  # a CPU tensor is host memory
    ledger.tick(0)
    report = ledger.report(["forward"])
    assert report.peak_bytes == 4096
    del a


def test_ledger_live_until_end_when_never_freed() -> None:
    ledger = MemoryLedger()
    kept = [meta(128)]  # 512 B each
    ledger.observe(kept[0], 0, "forward")
    ledger.tick(0)
    kept.append(meta(128))
    ledger.observe(kept[1], 1, "optimizer")
    ledger.tick(1)
    report = ledger.report(["forward", "optimizer"])
    assert report.peak_bytes == 2 * 512 and report.peak_phase == "optimizer"


# --------------------------------------------------------------------------------------------
# invariants on real walks


def test_peak_grows_with_batch(tiny) -> None:
    for name in ("fc", "vgg", "resnet", "inception"):
        peaks = [traincost.count(tiny[name], batch_size=b).peak_memory_bytes for b in (8, 64, 256)]
        assert peaks[0] < peaks[1] < peaks[2], name


def test_parameters_bytes_tiny_fc() -> None:
    spec = resolve("fc", params={"input_features": 10, "hidden_layers": 1, "hidden_width": 20,
                                 "classes": 3, "batchnorm": True})
    mem = traincost.count(spec, batch_size=2).walk.memory
    # float32 tensors rounded to 512-byte blocks: linear 20x10 = 800 B -> 1024; bias 20 -> 512;
    # bn weight, bias, running_mean, running_var: 20 floats -> 512 each; num_batches_tracked
    # (int64) -> 512; fc 3x20 = 240 B -> 512; bias 3 -> 512
    assert mem.parameters_bytes == 1024 + 512 + 4 * 512 + 512 + 512 + 512
    # gradients: the 6 trainable tensors (linear w, b, bn w, b, fc w, b)
    assert mem.gradients_bytes == 1024 + 512 + 512 + 512 + 512 + 512


def test_parameters_bytes_equal_sum_of_rounded_nbytes(tiny) -> None:
    for name in ("vgg", "resnet"):
        model = tiny[name].build()
        tensors = list(model.parameters()) + list(model.buffers())
        mem = traincost.count(tiny[name], batch_size=2).walk.memory
        assert mem.parameters_bytes == sum(round_block(t.numel() * t.element_size()) for t in tensors)
        assert mem.gradients_bytes == sum(round_block(p.numel() * p.element_size())
                                          for p in model.parameters())


@pytest.mark.parametrize(("optimizer", "states"), [("sgd", 1), ("adam", 2), ("adamw", 2)])
def test_optimizer_state_is_a_multiple_of_the_parameters(optimizer: str, states: int, tiny) -> None:
    model = tiny["resnet"].build()
    param_bytes = sum(round_block(p.numel() * p.element_size()) for p in model.parameters())
    mem = traincost.count(tiny["resnet"], batch_size=2, optimizer=optimizer).walk.memory
    assert mem.optimizer_state_bytes == states * param_bytes


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_peak_covers_steady_state(precision: str, optimizer: str, tiny) -> None:
    for name in ("vgg", "resnet"):
        mem = traincost.count(tiny[name], batch_size=4, precision=precision, optimizer=optimizer).walk.memory
        assert mem.saved_activations_bytes > 0
        assert mem.peak_bytes >= mem.parameters_bytes + mem.optimizer_state_bytes + mem.saved_activations_bytes
        # at the optimizer step every gradient is alive next to the parameters and the state
        assert mem.peak_bytes >= mem.parameters_bytes + mem.gradients_bytes + mem.optimizer_state_bytes
        assert mem.transient_bytes >= 0
        assert sum(mem.at_peak.values()) == mem.peak_bytes


def test_half_precision_saves_less_activation_memory(tiny) -> None:
    fp32 = traincost.count(tiny["vgg"], batch_size=32).walk.memory
    bf16 = traincost.count(tiny["vgg"], batch_size=32, precision="bf16").walk.memory
    assert bf16.saved_activations_bytes < fp32.saved_activations_bytes
    assert bf16.parameters_bytes == fp32.parameters_bytes  # fp32 master weights


def test_max_batch_size_brackets_the_memory(tiny) -> None:
    spec = tiny["vgg"]
    peak = {b: traincost.count(spec, batch_size=b).peak_memory_bytes for b in (10, 11, 12)}
    memory = (peak[11] + peak[12]) // 2  # between the peaks of batch 11 and 12
    best = max_batch_size(spec, memory_bytes=memory)
    assert best == 11
    assert traincost.count(spec, batch_size=best).peak_memory_bytes <= memory
    assert traincost.count(spec, batch_size=best + 1).peak_memory_bytes > memory
    assert max_batch_size(spec, memory_bytes=peak[11]) == 11  # exactly full fits


@pytest.mark.parametrize(("gib", "start"), [(0.25, 32), (1.0, 1), (4.0, 512)])
def test_max_batch_size_is_the_largest_fitting_batch(gib: float, start: int) -> None:
    spec = resolve("resnet", params={"blocks": [1, 1, 1], "block": "basic", "width": 16, "input_size": 64})
    memory = int(gib * 2**30)
    best = max_batch_size(spec, memory_bytes=memory, start=start, max_walks=12)
    assert best >= 1
    assert traincost.count(spec, batch_size=best).peak_memory_bytes <= memory
    assert traincost.count(spec, batch_size=best + 1).peak_memory_bytes > memory


def test_max_batch_size_zero_when_nothing_fits(tiny) -> None:
    one = traincost.count(tiny["vgg"], batch_size=1).peak_memory_bytes
    assert max_batch_size(tiny["vgg"], memory_bytes=one - 1) == 0
    assert max_batch_size(tiny["vgg"], memory_bytes=one) >= 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "1GB"])
def test_max_batch_size_rejects_bad_memory(bad: object, tiny) -> None:
    with pytest.raises(SpecError, match="memory_bytes"):
        max_batch_size(tiny["vgg"], memory_bytes=bad)  # type: ignore[arg-type]


def test_memory_in_to_dict(tiny) -> None:
    d = traincost.count(tiny["resnet"], batch_size=2).to_dict()
    mem = d["memory"]
    assert set(mem) == {"parameters_bytes", "gradients_bytes", "optimizer_state_bytes", "inputs_bytes",
                        "saved_activations_bytes", "transient_bytes", "peak_phase"}
    # the input: 2 x 3 x 32 x 32 float32 = 24576 B = 48 blocks
    assert mem["inputs_bytes"] == 2 * 3 * 32 * 32 * 4
    assert mem["peak_phase"] in ("forward", "backward", "optimizer")
