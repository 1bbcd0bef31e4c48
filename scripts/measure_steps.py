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
        for i, (spec, cfg) in enumerate(plan(args.tiny)):
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
            try:
                model = build_on(spec, device)
                timing = measure_step(model, spec.sample_shape(), cfg, device)
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
