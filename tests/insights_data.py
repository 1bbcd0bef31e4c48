"""Small dataset CSVs for the insights tests (bench schema and the precursor's), written to a tmp folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from traincost.sweeps.bench import FIELDS, LEGACY_FIELDS, write_dataset

CPU = "AMD EPYC (2 threads)"


def spec_json(family: str, params: dict[str, Any]) -> str:
    return json.dumps({"schema_version": 1, "model": family, "params": params})


def row(family: str, params: dict[str, Any], *, sweep: str = "random:sobol:seed=0", batch: int = 8,
        measured_ms: float = 1.0, analytic_ms: float | None = 0.5, flops: float = 1e6, key: str = "",
        precision: str = "fp32", status: str = "ok") -> dict[str, str]:
    """One dataset row; the counted features are synthetic (proportional to ``flops``)."""
    out = {f: "" for f in FIELDS}
    out.update({"schema_version": "1", "config_key": key or f"{family}-{len(json.dumps(params))}-{flops:g}-{batch}",
                "sweep": sweep, "family": family, "model": family, "spec": spec_json(family, params),
                "batch_size": str(batch), "precision": precision, "channels_last": "False", "optimizer": "sgd",
                "status": status, "median_ms": f"{measured_ms:.6g}", "params": str(int(flops / 100)),
                "flops_forward": str(int(flops / 3)), "flops_backward": str(int(2 * flops / 3)),
                "flops_optimizer": str(int(flops / 100)), "bytes_read": str(int(flops / 4)),
                "bytes_written": str(int(flops / 8)), "ops": str(40 + int(flops) % 7),
                "predicted_peak_bytes": str(int(flops / 2)),
                "analytic_ms": "" if analytic_ms is None else f"{analytic_ms:.6g}",
                "profile_source": "calibrated", "profile_name": CPU, "device": CPU})
    return out


VGG_BASE = {"blocks": 1, "convs_per_block": 2, "filters": 4, "batchnorm": True, "dense_layers": 1,
            "dense_width": 16, "input_size": 32, "classes": 2}


def synthetic_rows() -> list[dict[str, str]]:
    """12 random fc/vgg rows whose time grows with FLOPs, and a vgg seed sweep (base, filters x2, batch x1)."""
    rows = []
    for i in range(6):
        flops = 1e6 * (i + 1) ** 2
        rows.append(row("fc", {"input_features": 8 + i, "hidden_layers": 1 + i % 3, "hidden_width": 16 * (i + 1),
                               "dropout": 0.0, "batchnorm": i % 2 == 0, "classes": 10},
                        measured_ms=0.2 + flops / 1e6, analytic_ms=0.1 + flops / 2e6, flops=flops,
                        precision="bf16" if i % 2 else "fp32"))
        rows.append(row("vgg", {**VGG_BASE, "filters": 4 * (i + 1), "input_size": 32 + 8 * i},
                        measured_ms=1.0 + 2 * flops / 1e6, analytic_ms=0.5 + flops / 1e6, flops=2 * flops,
                        batch=4 * (1 + i % 2)))
    rows.append(row("vgg", VGG_BASE, sweep="seed:vgg:base", measured_ms=2.0, flops=1e6, key="base"))
    rows.append(row("vgg", {**VGG_BASE, "filters": 16}, sweep="seed:vgg:filters", measured_ms=8.0, flops=4e6,
                    key="f16"))
    rows.append(row("vgg", {**VGG_BASE, "filters": 8}, sweep="seed:vgg:filters", measured_ms=4.0, flops=2e6,
                    key="f8"))
    rows.append(row("vgg", VGG_BASE, sweep="seed:vgg:batch_size", batch=16, measured_ms=3.0, flops=2e6,
                    key="b16"))
    return rows


def write_synthetic(folder: Path, name: str = "tiny.csv") -> Path:
    return write_dataset(synthetic_rows(), folder / name)


def write_legacy(folder: Path, name: str = "legacy.csv") -> Path:
    """The precursor's columns (no family, sweep, analytic_ms): family comes from the spec's ``model``."""
    path = folder / name
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=LEGACY_FIELDS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for r in synthetic_rows()[:12]:
            r = dict(r, device="NVIDIA H200")
            writer.writerow(r)
    return path
