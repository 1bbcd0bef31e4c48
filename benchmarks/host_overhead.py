"""How much host time one recorded op of a *training step* costs, per bare eager dispatch.

    python benchmarks/host_overhead.py [--repeats 300] [--runs N] [--profile P.json [--write]]

A device profile measures ``dispatch_s``: one bare ``torch.add`` in a Python loop. An op of a training
step costs more on the host: the forward op goes through ``nn.Module.__call__``, the functional API and
autograd (a graph node, saved tensors); a backward op through the autograd engine; ``zero_grad`` loops over
the parameters in Python. This script measures that on this machine's CPU with *tiny* models of the four
families (every kernel a few hundred bytes, so the step time is host time), phase by phase (forward + loss,
backward, optimizer step, zero_grad), subtracts the little device time the predictor gives their kernels on
the shipped CPU profile, and divides by the walk's op count and the profile's ``dispatch_s``.

The medians over the fc models are the defaults ``HOST_OP_RATIO`` and ``ZERO_GRAD_PER_TENSOR_RATIO`` of
:mod:`traincost.pricing.timeline` (measured on the AMD EPYC); they do not transfer to other hosts (the Intel Xeon:
forward 6.26, backward 3.33 over five runs, against 4.27, 2.08), so ``--write`` stores them in the profile of the host
measured (``properties.host_op_ratio``), where ``predict`` takes them from. The tiny models are not in any evaluation set (benchmarks/accuracy.py). Asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from traincost import resolve
from traincost.flopmodel.count import count
from traincost.flopmodel.walker import make_optimizer
from traincost.hardware.profile import load_profile, save_profile
from traincost.hardware.store import cpu_model, profile_for
from traincost.pricing.optable import OpTable
from traincost.sweeps.steps import _loss, build_on

TINY = [
    ("fc", {"input_features": 32, "hidden_layers": 8, "hidden_width": 16, "classes": 10}, 2),
    ("fc", {"input_features": 16, "hidden_layers": 3, "hidden_width": 8, "batchnorm": False, "classes": 4}, 1),
    ("fc", {"input_features": 64, "hidden_layers": 16, "hidden_width": 32, "dropout": 0.0, "classes": 10}, 4),
    ("vgg", {"blocks": 2, "convs_per_block": 2, "filters": 4, "dense_layers": 1, "dense_width": 8,
             "input_size": 8, "classes": 10}, 1),
    ("resnet", {"blocks": [1, 1], "block": "bottleneck", "width": 4, "input_size": 16, "classes": 10}, 1),
    ("resnet", {"blocks": [2, 2], "block": "basic", "width": 4, "input_size": 16, "classes": 10}, 1),
    ("inception", {"stages": 1, "modules_per_stage": 1, "f1": 4, "f2_in": 4, "f2_out": 4, "f3_in": 2,
                   "f3_out": 2, "f4_out": 2, "input_size": 32, "classes": 10}, 1),
]


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(name: str, params: dict, batch: int, optimizer: str, repeats: int, profile) -> dict:
    spec = resolve(name, params=params)
    dev = torch.device("cpu")
    model = build_on(spec, dev).train()
    opt = make_optimizer(optimizer, [p for p in model.parameters() if p.requires_grad])
    x = torch.randn((batch, *spec.sample_shape()))
    y = torch.randint(0, 1000, (batch,))
    state = {}

    def fwd():
        state["loss"] = _loss(model(x), y)

    def bwd():
        state["loss"].backward()

    def step():
        opt.step()

    def zero():
        opt.zero_grad(set_to_none=True)

    for _ in range(20):  # warm up (allocator, oneDNN primitives, optimizer state)
        fwd(); bwd(); step(); zero()
    phases = {"forward": [], "backward": [], "optimizer": [], "zero_grad": []}
    for _ in range(repeats):
        for key, fn in (("forward", fwd), ("backward", bwd), ("optimizer", step), ("zero_grad", zero)):
            t0 = time.perf_counter()
            fn()
            phases[key].append(time.perf_counter() - t0)
    measured = {k: statistics.median(v) for k, v in phases.items()}
    walk = count(spec, batch_size=batch, optimizer=optimizer).walk
    table = OpTable.from_walk(walk)
    device, _, _ = table.device_times(profile)
    out = {"model": spec.label[:60], "optimizer": optimizer, "params": len(list(model.parameters()))}
    for code, ph in enumerate(("forward", "backward", "optimizer")):
        mask = table.phase == code
        ops = int(mask.sum())
        host = measured[ph] - float(device[mask].sum())
        out[f"{ph}_ops"] = ops
        out[f"{ph}_ms"] = measured[ph] * 1e3
        out[f"{ph}_ratio"] = host / ops / profile.dispatch_s if ops else float("nan")
    out["zero_grad_ms"] = measured["zero_grad"] * 1e3
    out["zero_grad_ratio"] = measured["zero_grad"] / out["params"] / profile.dispatch_s
    key = "adamw" if optimizer in ("adam", "adamw") else optimizer
    c = profile.optimizer
    out["optimizer_constants_ms"] = (c[f"{key}_fixed_s"] + c[f"{key}_per_tensor_s"] * table.param_tensors
                                     + c[f"{key}_s_per_byte"] * table.param_bytes) * 1e3
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--runs", type=int, default=1, help="measure the models this many times; the constants "
                                                             "are the median over runs of each run's fc median")
    parser.add_argument("--profile", help="CPU profile .json [default: the shipped CPU profile closest to this "
                                          "machine]; with --write it must be one calibrated on this CPU model")
    parser.add_argument("--write", action="store_true",
                        help="store the constants in --profile (properties.host_op_ratio)")
    args = parser.parse_args()
    if args.write and not args.profile:
        parser.error("--write needs --profile: the file of this machine's profile")
    profile = profile_for(args.profile or "cpu")
    if args.write and profile.properties.get("cpu_model") != cpu_model():
        parser.error(f"--profile {args.profile} was calibrated on {profile.properties.get('cpu_model')!r}, "
                     f"this machine is {cpu_model()!r}: its host ratios would be another host's")
    torch.set_num_threads(int(profile.properties.get("torch_threads") or os.cpu_count() or 1))
    print(f"profile {profile.name}: dispatch_s {profile.dispatch_s * 1e6:.2f} us; load {os.getloadavg()[0]:.2f}")
    keys = ("forward_ratio", "backward_ratio", "zero_grad_ratio")
    per_run: dict[str, list[float]] = {k: [] for k in keys}
    for run in range(1, args.runs + 1):
        rows = [measure(n, p, b, opt, args.repeats, profile) for n, p, b in TINY for opt in ("sgd", "adamw")]
        print(f"run {run} of {args.runs}")
        print(f"{'model':<62}{'opt':>6}{'fwd ops':>8}{'fwd x':>7}{'bwd ops':>8}{'bwd x':>7}{'opt ms':>8}"
              f"{'consts':>8}{'zero x':>8}")
        for r in rows:
            print(f"{r['model']:<62}{r['optimizer']:>6}{r['forward_ops']:>8}{r['forward_ratio']:>7.2f}"
                  f"{r['backward_ops']:>8}{r['backward_ratio']:>7.2f}{r['optimizer_ms']:>8.3f}"
                  f"{r['optimizer_constants_ms']:>8.3f}{r['zero_grad_ratio']:>8.2f}")
        # the fc rows are the clean ones: no convolution, so the device time subtracted is a few us; on the
        # conv rows the CPU profile's conv latencies (fitted on real layer shapes, tens of us) exceed what a
        # 4-channel conv takes, and the remainder (the host part) comes out too small or negative.
        for subset, keep in (("fc rows (the constants)", lambda r: r["model"].startswith("fc(")),
                             ("all rows", lambda r: True)):
            for key in keys:
                vals = [r[key] for r in rows if keep(r)]
                print(f"{subset}: median {key}: {np.median(vals):.2f}  (range {min(vals):.2f}-{max(vals):.2f})")
                if subset.startswith("fc"):
                    per_run[key].append(float(np.median(vals)))
    const = {k: round(float(np.median(v)), 2) for k, v in per_run.items()}
    if args.runs > 1:
        print("over runs: " + ", ".join(f"{k} {const[k]:.2f} ({min(v):.2f}-{max(v):.2f})" for k, v in per_run.items()))
    if args.write:
        path = Path(args.profile)
        ratios = {"forward": const["forward_ratio"], "backward": const["backward_ratio"],
                  "zero_grad_per_tensor": const["zero_grad_ratio"],
                  "runs": {k: [round(x, 2) for x in v] for k, v in per_run.items()},
                  "measured": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                  "how": f"benchmarks/host_overhead.py --repeats {args.repeats} --runs {args.runs}: median over runs "
                         f"of the tiny fc models' median (host time per op) / dispatch_s, load "
                         f"{os.getloadavg()[0]:.2f}"}
        again = load_profile(path)
        save_profile(dataclasses.replace(again, properties={**again.properties, "host_op_ratio": ratios}), path)
        print(f"wrote properties.host_op_ratio {ratios['forward']} / {ratios['backward']} / "
              f"{ratios['zero_grad_per_tensor']} to {path}")


if __name__ == "__main__":
    main()
