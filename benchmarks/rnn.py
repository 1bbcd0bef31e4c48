"""Recurrent layers priced as they run: fused (cuDNN / oneDNN) against the per-step walk. Prints tables;
asserts nothing.

    python benchmarks/rnn.py [--no-measure] [--repeat 5]

For LSTMs and GRUs of a few sizes (batch 64, seq 50, input = hidden, a linear head on every step): the
analytic step predicted on an A100, an H100 (datasheet profiles) and the shipped CPU profile, with the walk
as it was (every per-step aten op of the meta decomposition, ``before``) and fused (``after``); ops walked
and walk seconds; and, unless ``--no-measure``, the step measured on this CPU (SGD, fp32, median of
``--repeat`` steps after 2 warm-ups) for the sizes that take under a second. A second table measures the
host cost of the aten ops a C++ composite dispatches (``COMPOSITE_OP_RATIO``): tiny GRUs and RNNs whose
kernels are a few bytes, per op, against one bare ``torch.add``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
from torch import nn

from traincost.api import resolve_device
from traincost.flopmodel import autocast
from traincost.flopmodel.walker import StepConfig, walk
from traincost.pricing.optable import OpTable
from traincost.pricing.timeline import price

DEVICES = ("A100", "H100", "cpu")
SIZES = (("LSTM", 2, 256), ("GRU", 2, 256), ("LSTM", 1, 128), ("LSTM", 2, 512), ("GRU", 2, 1024))
SEQ, BATCH = 50, 64


class Model(nn.Module):
    def __init__(self, mode: str, layers: int, hidden: int) -> None:
        super().__init__()
        self.rnn = getattr(nn, mode)(hidden, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0]).transpose(1, 2)


def _walk(model: nn.Module, hidden: int, fused: bool) -> tuple[OpTable, int, float]:
    saved = autocast.VF_MODES
    if not fused:
        autocast.VF_MODES = {}  # CudaOpMode leaves the _VF call to the meta decomposition
    try:
        t0 = time.perf_counter()
        w = walk(model, (SEQ, hidden), StepConfig(batch_size=BATCH))
        seconds = time.perf_counter() - t0
    finally:
        autocast.VF_MODES = saved
    return OpTable.from_walk(w), len(w.records), seconds


def _measure(model: nn.Module, hidden: int, repeat: int) -> float:
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(BATCH, SEQ, hidden)
    target = torch.zeros(BATCH, SEQ, dtype=torch.long)
    times = []
    for i in range(repeat + 2):
        t0 = time.perf_counter()
        loss = nn.functional.cross_entropy(model(x), target)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _bare_add_s() -> float:
    a, b = torch.ones(4), torch.ones(4)
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(2000):
            torch.add(a, b)
        times.append((time.perf_counter() - t0) / 2000)
    return statistics.median(times)


def _composite_ratio(mode: str, ops_fwd: int, ops_bwd: int) -> tuple[float, float]:
    """Host seconds per dispatched op of a tiny recurrent call (forward, backward), from two lengths."""
    def step(seq: int) -> tuple[float, float]:
        m = getattr(nn, mode)(2, 2, 1)
        x = torch.randn(seq, 1, 2, requires_grad=True)
        fwd, bwd = [], []
        for _ in range(7):
            t0 = time.perf_counter()
            y = m(x)[0]
            t1 = time.perf_counter()
            y.backward(torch.ones_like(y))
            bwd.append(time.perf_counter() - t1)
            fwd.append(t1 - t0)
        return statistics.median(fwd), statistics.median(bwd)

    (f1, b1), (f2, b2) = step(200), step(400)
    return (f2 - f1) / 200 / ops_fwd, (b2 - b1) / 200 / ops_bwd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-measure", action="store_true")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    profiles = {d: resolve_device(d) for d in DEVICES}
    print(f"batch {BATCH}, seq {SEQ}, fp32, SGD; analytic step ms (before: per-step walk -> after: fused); "
          f"CPU profile: {profiles['cpu'].name}, this CPU with {torch.get_num_threads()} threads")
    print(f"{'model':<14} {'ops before':>10} {'ops after':>9} {'walk s':>13} "
          + " ".join(f"{d + ' ms':>17}" for d in DEVICES) + f" {'CPU measured':>12}")
    for mode, layers, hidden in SIZES:
        torch.manual_seed(0)
        model = Model(mode, layers, hidden)
        before, n_before, s_before = _walk(model, hidden, fused=False)
        after, n_after, s_after = _walk(model, hidden, fused=True)
        cells = []
        for d in DEVICES:
            b = price(before, profiles[d]).timeline.step_s * 1e3
            a = price(after, profiles[d]).timeline.step_s * 1e3
            cells.append(f"{b:7.1f} -> {a:6.2f}")
        measured = "-"
        if not args.no_measure and hidden <= 512:
            measured = f"{_measure(model, hidden, args.repeat) * 1e3:.1f}"
        print(f"{mode}-{layers}x{hidden:<6} {n_before:>10} {n_after:>9} {s_before:5.2f} -> {s_after:4.2f} "
              + " ".join(f"{c:>17}" for c in cells) + f" {measured:>12}")
    if args.no_measure:
        return
    bare = _bare_add_s()
    print(f"\nhost per dispatched op inside a C++ composite (1 thread), bare torch.add {bare * 1e6:.2f} us:")
    torch.set_num_threads(1)
    for mode, ops_fwd, ops_bwd in (("GRU", 19, 27), ("RNN", 5, 14)):
        f, b = _composite_ratio(mode, ops_fwd, ops_bwd)
        print(f"  {mode}: forward {f * 1e6:.2f} us = {f / bare:.2f} x, backward {b * 1e6:.2f} us = {b / bare:.2f} x")


if __name__ == "__main__":
    main()
