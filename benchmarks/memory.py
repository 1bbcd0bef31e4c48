"""How well the walk predicts peak training memory: predicted vs ``torch.cuda.max_memory_allocated``.

    python benchmarks/memory.py              # the 62 real-model steps, re-walked now; families as recorded
    python benchmarks/memory.py --rewalk     # re-walk the 1616 family steps too (several minutes)

Measured data: an H200 (torch 2.11, CUDA 13.0), 2026-11-28, `scripts/measure_steps.py`. The walk's
peak counts tensors only; the device adds a constant the profile measured (cuBLAS workspaces:
`properties.allocator_overhead_bytes` of `traincost/data/profiles/h200.json`) and, for some
convolutions, a cuDNN workspace that the walk cannot see. Prints median / p90 / max absolute
percentage error (APE) with and without that constant.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

import traincost
from traincost.flopmodel.arch import ArchSpec
from traincost.hardware.profile import load_profile

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "benchmarks/data/h200-models-2026-11-28.csv"
FAMILIES = ROOT / "data/datasets/h200-families-2026-11-28.csv"
PROFILE = ROOT / "traincost/data/profiles/h200.json"


def rewalk(frame: pd.DataFrame) -> pd.Series:
    """Predicted peak bytes of each row, walked now with this checkout's code."""
    peaks = []
    for row in frame.itertuples():
        spec = ArchSpec.from_dict(json.loads(row.spec))
        result = traincost.count(spec, batch_size=int(row.batch_size), precision=row.precision,
                                 channels_last=bool(row.channels_last), optimizer=row.optimizer)
        peaks.append(result.peak_memory_bytes)
    return pd.Series(peaks, index=frame.index)


def ape_row(name: str, predicted: pd.Series, measured: pd.Series) -> str:
    ape = 100 * (predicted / measured - 1).abs()
    under = 100 * (predicted < measured).mean()
    return (f"{name:<34}{len(ape):>6}{np.median(ape):>9.1f}{np.quantile(ape, 0.9):>9.1f}"
            f"{ape.max():>9.1f}{under:>9.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rewalk", action="store_true", help="re-walk the family rows too")
    args = parser.parse_args()
    overhead = load_profile(PROFILE).properties.get("allocator_overhead_bytes", 0)
    models = pd.read_csv(MODELS)
    models = models[models.status == "ok"].copy()
    models["predicted"] = rewalk(models)
    families = pd.read_csv(FAMILIES)
    families = families[families.status == "ok"].copy()
    families["predicted"] = rewalk(families) if args.rewalk else families.predicted_peak_bytes
    families["family"] = families.model.str.split("(").str[0]
    models["group"] = np.where(models.model.str.contains(r"\("), "family models", "torchvision models")

    print(f"allocator overhead from the profile: {overhead / 2**20:.1f} MiB\n")
    print(f"{'rows':<34}{'n':>6}{'median%':>9}{'p90%':>9}{'max%':>9}{'under%':>9}")
    for label, extra in (("walk peak alone", 0), ("walk peak + overhead", overhead)):
        print(f"-- {label}")
        for group, frame in models.groupby("group"):
            print(ape_row(f"  {group}", frame.predicted + extra, frame.measured_peak_bytes))
        for family, frame in families.groupby("family"):
            print(ape_row(f"  {family} (random sweep)", frame.predicted + extra, frame.measured_peak_bytes))
        both = pd.concat([models, families])
        print(ape_row("  all", both.predicted + extra, both.measured_peak_bytes))
    worst = families.assign(ratio=(families.predicted + overhead) / families.measured_peak_bytes)
    print("\nlargest under-predictions (cuDNN workspaces the walk cannot see):")
    for row in worst.nsmallest(5, "ratio").itertuples():
        print(f"  {row.ratio:5.2f}  {row.model[:90]}  b{row.batch_size} {row.precision}"
              f"{' cl' if row.channels_last else ''}")


if __name__ == "__main__":
    main()
