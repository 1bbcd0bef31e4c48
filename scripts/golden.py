"""Write (or check) the stored expected analytic predictions of the reference steps.

``python scripts/golden.py`` prints, and with ``--write`` stores in ``tests/golden/analytic.json``, the
analytic step time (``analytic_ms``, no learned correction) and the peak memory of a dozen reference steps
on each shipped device profile and on a few datasheet GPUs, with the analytic model's version
(:data:`traincost.pricing.MODEL_VERSION`) and of the derivation of datasheet profiles
(:data:`traincost.hardware.datasheet.DATASHEET_VERSION`). ``tests/test_golden.py`` fails when today's code gives
another number under the same versions: a change to pricing bumps the model version, a change to the derivation
of unmeasured GPUs the datasheet version, and rewrites this file; a refactor leaves all alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "analytic.json"

#: (label, model, params) - generated families, torchvision classics, a transformer, depthwise convs.
STEPS: list[dict] = [
    {"label": "resnet-basic", "model": "resnet", "params": {"blocks": [2, 2, 2, 2], "block": "basic", "width": 32,
                                                            "input_size": 64}, "batch_size": 32, "precision": "fp32"},
    {"label": "resnet-bottleneck-tiny", "model": "resnet", "params": {"blocks": [1, 1, 1, 1], "block": "bottleneck",
                                                                      "width": 16, "input_size": 32},
     "batch_size": 8, "precision": "fp32"},
    {"label": "vgg-cl-adamw", "model": "vgg", "params": {"blocks": 3, "convs_per_block": 2, "filters": 32,
                                                         "input_size": 64}, "batch_size": 64, "precision": "bf16",
     "channels_last": True, "optimizer": "adamw"},
    {"label": "inception", "model": "inception", "params": {"stages": 2, "modules_per_stage": 2, "input_size": 64},
     "batch_size": 16, "precision": "fp32"},
    {"label": "fc-adam", "model": "fc", "params": {"input_features": 784, "hidden_layers": 3, "hidden_width": 1000},
     "batch_size": 256, "precision": "fp32", "optimizer": "adam"},
    {"label": "fc-tiny", "model": "fc", "params": {"input_features": 64, "hidden_layers": 2, "hidden_width": 64},
     "batch_size": 16, "precision": "bf16"},
    {"label": "resnet50-bf16-cl", "model": "resnet50", "batch_size": 64, "precision": "bf16", "channels_last": True},
    {"label": "resnet18-tf32", "model": "resnet18", "batch_size": 32, "precision": "tf32"},
    {"label": "mobilenet_v2-fp16", "model": "mobilenet_v2", "batch_size": 32, "precision": "fp16"},
    {"label": "vit_b_16-bf16-adamw", "model": "vit_b_16", "batch_size": 8, "precision": "bf16", "optimizer": "adamw"},
    {"label": "densenet121-fp32", "model": "densenet121", "batch_size": 8, "precision": "fp32"},
    {"label": "convnext_tiny-fp16-cl", "model": "convnext_tiny", "batch_size": 16, "precision": "fp16",
     "channels_last": True},
]

#: shipped profiles (by file) and datasheet GPUs (by catalog name).
DEVICES = ["cpu-2core-x86_64.json", "cpu-intel-xeon-2core.json", "h200.json", "h200-2026-12-04.json",
           "V100 SXM2 16GB", "RTX 3090", "A100 SXM 80GB", "H100 SXM", "L4"]

#: data-parallel steps (model, device, batch, precision, gpus, nodes, network).
PARALLEL = [
    {"label": "resnet50-8xA100", "model": "resnet50", "device": "A100 SXM 80GB", "batch_size": 64,
     "precision": "fp16", "gpus": 8},
    {"label": "resnet50-32xV100-4nodes", "model": "resnet50", "device": "V100 SXM2 16GB", "batch_size": 64,
     "precision": "fp16", "gpus": 32, "nodes": 4, "network": "ib-edr"},
]


def _model(step: dict):
    from traincost.flopmodel.arch import ArchSpec

    return ArchSpec("family", step["model"], dict(step["params"])) if "params" in step else step["model"]


def _device(name: str):
    from traincost.hardware.store import shipped_profiles_dir

    return str(shipped_profiles_dir() / name) if name.endswith(".json") else name


def compute() -> dict:
    import traincost
    from traincost.hardware.datasheet import DATASHEET_VERSION
    from traincost.pricing import MODEL_VERSION

    rows = []
    for step in STEPS:
        opts = {k: step[k] for k in ("precision", "channels_last", "optimizer") if k in step}
        devices = [d for d in DEVICES if _supports(d, opts["precision"])]
        estimates = traincost.compare(_model(step), devices=[_device(d) for d in devices],
                                      batch_size=step["batch_size"], correction=None, **opts)
        for name, est in zip(devices, estimates):
            rows.append({"step": step["label"], "device": name, "analytic_ms": est.analytic_ms,
                         "peak_memory_bytes": est.peak_memory_bytes, "bound": est.bound})
    for step in PARALLEL:
        opts = {k: step[k] for k in ("precision", "gpus", "nodes", "network") if k in step}
        est = traincost.predict(_model(step), device=step["device"], batch_size=step["batch_size"],
                                correction=None, **opts)
        rows.append({"step": step["label"], "device": step["device"], "analytic_ms": est.analytic_ms,
                     "iteration_ms": est.iteration_ms, "exposed_comm_ms": est.exposed_comm_ms,
                     "peak_memory_bytes": est.peak_memory_bytes, "bound": est.bound})
    return {"schema_version": 1, "model_version": MODEL_VERSION, "datasheet_version": DATASHEET_VERSION, "rows": rows}


def _supports(device: str, precision: str) -> bool:
    from traincost.api import check_precision, resolve_device
    from traincost.errors import TraincostUsageError

    try:
        check_precision(resolve_device(_device(device)), precision)
    except TraincostUsageError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help=f"store the values in {GOLDEN.relative_to(ROOT)}")
    args = ap.parse_args(argv)
    data = compute()
    text = json.dumps(data, indent=1, sort_keys=True) + "\n"
    if args.write:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
