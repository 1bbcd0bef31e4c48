"""Measure real training steps of a fixed list of models on one device and write a CSV, row by row.

    python scripts/measure_steps.py --device cuda --out h200-steps.csv --budget-minutes 4
    python scripts/measure_steps.py --device cpu --out /tmp/cpu.csv --tiny   # a quick CPU check

Each row: the model (label and spec JSON), step configuration, measured step time (median/min/max
ms), measured CUDA peak memory, and the walk's numbers at measurement time (params, FLOPs by phase,
bytes, predicted peak memory). Rows are flushed one by one; an error or OOM is recorded as the
row's status and the sweep goes on; the budget stops it cleanly between configurations. This is
the raw data the bench issue turns into `traincost bench`; real architectures measured here are
for validation (benchmarks/accuracy.py), never for training the residual.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from traincost.calibrate.steps import build_on, measure_step
from traincost.flopmodel.arch import ArchSpec, resolve
from traincost.flopmodel.count import count
from traincost.flopmodel.walker import StepConfig

FIELDS = ["model", "spec", "batch_size", "precision", "channels_last", "optimizer", "status",
          "median_ms", "min_ms", "max_ms", "repeats", "measured_peak_bytes", "predicted_peak_bytes",
          "params", "flops_forward", "flops_backward", "flops_optimizer", "bytes_read", "bytes_written",
          "ops", "device", "torch", "cuda", "cudnn", "timestamp"]

TV_MODELS = ["resnet50", "resnet18", "vgg16", "vit_b_16", "mobilenet_v3_large", "efficientnet_b0",
             "densenet121", "convnext_tiny", "inception_v3", "regnet_y_1_6gf"]
FAMILY_SPECS = [
    ("vgg", {"blocks": 4, "convs_per_block": 2, "filters": 32, "input_size": 128, "dense_layers": 1,
             "dense_width": 512, "classes": 100}),
    ("resnet", {"blocks": [2, 2, 2, 2], "block": "basic", "width": 64, "input_size": 128}),
    ("inception", {"stages": 3, "modules_per_stage": 2, "input_size": 128}),
    ("fc", {"input_features": 1024, "hidden_layers": 4, "hidden_width": 2048, "classes": 100}),
]


def _log_int(u: float, lo: int, hi: int) -> int:
    """Map u in [0, 1) to an integer log-uniformly in [lo, hi]."""
    return int(round(math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))))


def _pow2(u: float, lo: int, hi: int) -> int:
    return 2 ** _log_int(u, int(math.log2(lo)), int(math.log2(hi))) if lo > 1 else 2 ** int(u * math.log2(hi))


def random_plan(n: int, seed: int) -> list[tuple[ArchSpec, StepConfig]]:
    """Space-filling (scrambled Sobol) sample of the four families x batch x precision x layout x optimizer.

    Parameters are log-scaled where they span decades; the ranges follow the seed project's
    (../shared/seed/notes.md) scaled to steps that run in well under a second on a large GPU.
    """
    from scipy.stats import qmc

    sampler = qmc.Sobol(d=12, scramble=True, seed=seed)
    points = sampler.random(n)
    out: list[tuple[ArchSpec, StepConfig]] = []
    for i, u in enumerate(points.tolist()):
        family = ("fc", "vgg", "resnet", "inception")[i % 4]
        precision = "bf16" if u[9] < 0.5 else "fp32"
        optimizer = "adamw" if u[10] < 0.5 else "sgd"
        channels_last = family != "fc" and u[11] < 0.5
        if family == "fc":
            params = {"input_features": _log_int(u[0], 64, 4096), "hidden_layers": 1 + int(u[1] * 10),
                      "hidden_width": _log_int(u[2], 64, 4096), "dropout": 0.5 if u[3] < 0.5 else 0.0,
                      "batchnorm": bool(u[4] < 0.5), "classes": _log_int(u[5], 2, 1024)}
            batch = _pow2(u[6], 8, 1024)
        elif family == "vgg":
            params = {"blocks": 1 + int(u[0] * 5), "convs_per_block": 1 + int(u[1] * 4),
                      "filters": _pow2(u[2], 8, 128), "batchnorm": bool(u[3] < 0.7),
                      "input_size": 32 * (1 + int(u[4] * 7)), "dense_layers": int(u[5] * 3),
                      "dense_width": _log_int(u[7], 64, 4096), "classes": _log_int(u[8], 2, 1000)}
            params["input_size"] = max(params["input_size"], 2 ** params["blocks"])
            batch = _pow2(u[6], 4, 256)
        elif family == "resnet":
            stages = 2 + int(u[0] * 3)
            depth = 1 + int(u[1] * 6)
            params = {"blocks": [depth] * stages, "block": "bottleneck" if u[2] < 0.5 else "basic",
                      "width": _pow2(u[3], 16, 64), "input_size": 32 * (1 + int(u[4] * 7)),
                      "dense_layers": int(u[5] * 2), "classes": _log_int(u[8], 2, 1000)}
            batch = _pow2(u[6], 4, 256)
        else:
            params = {"stages": 1 + int(u[0] * 3), "modules_per_stage": 1 + int(u[1] * 3),
                      "f1": 32 * (1 + int(u[2] * 6)), "f2_in": 32 * (1 + int(u[3] * 6)),
                      "f2_out": 32 * (2 + int(u[7] * 8)), "f3_in": 16 * (1 + int(u[5] * 6)),
                      "f3_out": 16 * (1 + int(u[8] * 6)), "f4_out": 16 * (1 + int(u[4] * 6)),
                      "input_size": 64 + 32 * int(u[5] * 6), "classes": _log_int(u[8], 2, 1000)}
            batch = _pow2(u[6], 4, 128)
        out.append((resolve(family, params), StepConfig(batch, precision, channels_last, optimizer)))
    return out


def plan(tiny: bool) -> list[tuple[ArchSpec, StepConfig]]:
    """Models x batches x (fp32 | bf16 | bf16 + channels_last) x (sgd | adamw), most informative first."""
    if tiny:
        specs = [resolve("resnet", {"blocks": [1, 1], "block": "basic", "width": 8, "input_size": 32,
                                    "classes": 10}),
                 resolve("fc", {"input_features": 64, "hidden_layers": 2, "hidden_width": 64})]
        return [(s, StepConfig(b, p, cl, o)) for s in specs for b in (4, 16)
                for p, cl in (("fp32", False), ("bf16", True)) for o in ("sgd", "adamw")]
    out: list[tuple[ArchSpec, StepConfig]] = []
    specs = [resolve(name) for name in TV_MODELS] + [resolve(f, p) for f, p in FAMILY_SPECS]
    for batch in (64, 256, 16):
        for spec in specs:
            for precision, cl, opt in (("fp32", False, "sgd"), ("bf16", True, "adamw"),
                                       ("bf16", False, "sgd")):
                if spec.kind == "family" and spec.name == "fc":
                    cl = False
                out.append((spec, StepConfig(batch, precision, cl, opt)))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--budget-minutes", type=float, default=4.0)
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--plan", choices=("models", "random"), default="models",
                    help="models: torchvision + family list; random: Sobol sample of the four families")
    ap.add_argument("--count", type=int, default=256, help="configurations in the random plan")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--max-peak-gib", type=float, default=100.0,
                    help="skip configurations whose predicted peak memory is larger")
    args = ap.parse_args()
    device = torch.device(args.device)
    deadline = time.monotonic() + 60 * args.budget_minutes
    versions = {"torch": torch.__version__, "cuda": torch.version.cuda or "",
                "cudnn": str(torch.backends.cudnn.version() or "")}
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    new = not args.out.exists()
    with args.out.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        if new:
            writer.writeheader()
            fh.flush()
        configs = random_plan(args.count, args.seed) if args.plan == "random" else plan(args.tiny)
        for i, (spec, cfg) in enumerate(configs):
            if time.monotonic() > deadline:
                print(f"budget reached after {i} configurations", file=sys.stderr)
                break
            row = {"model": spec.label, "spec": json.dumps(spec.to_dict()), "batch_size": cfg.batch_size,
                   "precision": cfg.precision, "channels_last": cfg.channels_last,
                   "optimizer": cfg.optimizer, "device": name,
                   "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"), **versions}
            try:
                counted = count(spec, batch_size=cfg.batch_size, precision=cfg.precision,
                                channels_last=cfg.channels_last, optimizer=cfg.optimizer)
                flops = counted.flops
                row.update(params=counted.params, flops_forward=flops["forward"],
                           flops_backward=flops["backward"], flops_optimizer=flops["optimizer"],
                           bytes_read=counted.bytes["read"], bytes_written=counted.bytes["written"],
                           ops=counted.ops, predicted_peak_bytes=counted.peak_memory_bytes)
            except Exception as exc:  # the walk is informative only here
                row["status"] = f"walk error: {type(exc).__name__}: {exc}".splitlines()[0][:200]
            predicted = row.get("predicted_peak_bytes")
            if predicted and predicted > args.max_peak_gib * 2**30:
                row["status"] = "skipped: predicted peak over --max-peak-gib"
                writer.writerow(row)
                fh.flush()
                continue
            model = None
            try:
                model = build_on(spec, device)
                timing = measure_step(model, spec.sample_shape(), cfg, device, repeats=args.repeats,
                                      warmup=2 if args.plan == "random" else 3, max_seconds=5.0)
                row.update(median_ms=f"{timing.median_ms:.4f}", min_ms=f"{timing.min_ms:.4f}",
                           max_ms=f"{timing.max_ms:.4f}", repeats=timing.repeats,
                           measured_peak_bytes=timing.peak_memory_bytes)
                row.setdefault("status", "ok")
            except torch.OutOfMemoryError:
                row["status"] = "oom"
            except Exception as exc:
                row["status"] = f"error: {type(exc).__name__}: {exc}".splitlines()[0][:200]
            finally:
                model = None
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            writer.writerow(row)
            fh.flush()
            print(f"{i:4d} {row['status']:<6} {spec.label[:40]:<40} b{cfg.batch_size:<4} {cfg.precision}"
                  f"{' cl' if cfg.channels_last else ''} {cfg.optimizer} {row.get('median_ms', '')} ms",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
