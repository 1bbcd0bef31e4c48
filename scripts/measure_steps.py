"""Measure real training steps of a fixed list of models on one device and write a CSV, row by row.

    python scripts/measure_steps.py --device cuda --out h200-steps.csv --budget-minutes 4
    python scripts/measure_steps.py --device cpu --out /tmp/cpu.csv --tiny   # a quick CPU check

A thin wrapper over ``traincost.sweeps.bench`` (what ``traincost bench`` runs) for the two lists
``traincost bench`` does not offer: ``--plan models`` (torchvision models and four fixed family
members: validation data for benchmarks/accuracy.py, never training data for the residual) and the
precursor's ``--plan random`` (the sample that produced data/datasets/h200-families-2026-11-28.csv with
``--seed 2026``). Rows have the dataset columns of ``traincost bench`` (schema 1); an existing
``--out`` of that schema is continued (configurations already in it are not measured again).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from traincost.sweeps.bench import Settings, run_sweep
from traincost.sweeps.plans import models_plan, precursor_random_plan


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--budget-minutes", type=float, default=4.0)
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--plan", choices=("models", "random"), default="models",
                    help="models: torchvision + family list; random: the precursor's Sobol sample of the four families")
    ap.add_argument("--count", type=int, default=256, help="configurations in the random plan")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--max-peak-gib", type=float, default=100.0,
                    help="skip configurations whose predicted peak memory is larger")
    args = ap.parse_args()
    device = torch.device(args.device)
    configs = precursor_random_plan(args.count, args.seed) if args.plan == "random" else models_plan(args.tiny)
    settings = Settings(warmup=2 if args.plan == "random" else 3, repeats=args.repeats, max_seconds=5.0)

    def progress(event) -> None:  # noqa: ANN001
        row = event.row
        if row is None:
            return
        print(f"{event.done - 1:4d} {row['status']:<6} {row['model'][:40]:<40} b{row['batch_size']:<4} "
              f"{row['precision']}{' cl' if row['channels_last'] else ''} {row['optimizer']} "
              f"{row.get('median_ms', '')} ms", flush=True)

    resume = args.out.exists() and args.out.stat().st_size > 0
    summary = run_sweep(configs, args.out, device, resume=resume, budget_s=60 * args.budget_minutes,
                        settings=settings, memory_bytes=int(args.max_peak_gib * 2**30), progress=progress)
    if summary.stopped_by_budget:
        print(f"budget reached after {summary.already_done + summary.written} configurations", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
