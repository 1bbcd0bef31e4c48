"""How accurate traincost's predictions are: measured training steps against predicted ones. Asserts nothing.

    python benchmarks/accuracy.py [--section cpu|h200|public|all] [--remeasure]

Three tables, each with per-row errors and the median / p90 absolute percentage error (APE). The cpu
and h200 tables show the analytic model alone and ``traincost.predict``'s default (the analytic model x
the shipped learned correction, :mod:`traincost.correction`); the public table the analytic model alone
(its rows are priced op by op, some without the optimizer step, which the correction was not fitted on).

1. **cpu**: real training steps on this machine's CPU (``traincost.sweeps.steps.build_on`` +
   ``measure_step``: warm-up, then the median of timed steps), small torchvision models and the four
   families at 64-128 px and batches 2-64, fp32, SGD (momentum) and AdamW, predicted with the shipped CPU
   profile calibrated on the same CPU model. Measurements are written to
   ``benchmarks/data/cpu-measured-<date>[-<cpu>].csv``; the newest file of each CPU model is shown, and this
   machine is measured when no file of its CPU model exists or with ``--remeasure``. A few minutes on 2 cores; a busy machine inflates them
   (the load average is recorded per row).
2. **h200**: the 62 steps of ``benchmarks/data/h200-models-2026-11-28.csv`` (torchvision models and four
   family models measured on an NVIDIA H200) predicted with the calibrated ``h200.json`` profile.
3. **public**: single-GPU rows of ``data/reference/throughput_public.csv`` whose model, GPU and
   batch can be mapped (GPU in the catalog, model buildable), predicted from *datasheet* profiles (the GPU
   never measured: H200-calibrated fractions of datasheet peaks). Step time = batch / throughput for
   images/s rows; ms/iteration rows as given. Caveats (printed): NVIDIA DLE rows read data through DALI and
   run AMP in channels_last (predicted so); "FP32" on an A100 means TF32 (predicted as tf32); aisensiy and
   u39kun rows time forward + backward without the optimizer step (predicted without it) and their "FP16" is
   ``model.half()``, not autocast (predicted as fp16 autocast); GPUs outside the catalog (Titan V, GTX 1080
   Ti, RTX 2080 / 2080 Ti) and BERT, EfficientNet-WideSE rows are left out.
3b. **bert**: the BERT pre-training rows of the same file (single GPU, batch stated) as ``hf:`` configs
   (``examples/hf/bert-large.json``, ``hf:BertConfig``), on datasheet profiles; a table of its own, so the
   figures of 3. stay comparable.

No constant of traincost is fitted on any of these rows. The host-overhead ratios of
:mod:`traincost.pricing.timeline` come from ``benchmarks/host_overhead.py`` (tiny fc models, not in these sets).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
H200_MODELS = DATA / "h200-models-2026-11-28.csv"
PUBLIC = Path(__file__).resolve().parents[1] / "data" / "reference" / "throughput_public.csv"

_VIT_TINY = {"image_size": 64, "patch_size": 8, "num_layers": 4, "num_heads": 4, "hidden_dim": 128,
             "mlp_dim": 512, "num_classes": 100}

#: (model, params, input_shape, batch, optimizer): the CPU evaluation set, fp32, NCHW.
CPU_CASES: list[tuple[str, dict[str, Any], str | None, int, str]] = [
    ("resnet18", {}, "3,64,64", 2, "sgd"),
    ("resnet18", {}, "3,64,64", 8, "sgd"),
    ("resnet18", {}, "3,96,96", 4, "adamw"),
    ("mobilenet_v3_small", {}, "3,96,96", 4, "sgd"),
    ("mobilenet_v3_small", {}, "3,128,128", 16, "adamw"),
    ("squeezenet1_1", {}, "3,128,128", 4, "sgd"),
    ("squeezenet1_1", {}, "3,96,96", 16, "adamw"),
    ("efficientnet_b0", {}, "3,64,64", 2, "sgd"),
    ("efficientnet_b0", {}, "3,96,96", 8, "adamw"),
    ("shufflenet_v2_x0_5", {}, "3,96,96", 8, "sgd"),
    ("torchvision.models.vision_transformer:VisionTransformer", _VIT_TINY, "3,64,64", 4, "sgd"),
    ("torchvision.models.vision_transformer:VisionTransformer", _VIT_TINY, "3,64,64", 16, "adamw"),
    ("fc", {"input_features": 1024, "hidden_layers": 3, "hidden_width": 1024, "classes": 100}, None, 16, "sgd"),
    ("fc", {"input_features": 1024, "hidden_layers": 3, "hidden_width": 1024, "classes": 100}, None, 64, "adamw"),
    ("fc", {"input_features": 256, "hidden_layers": 6, "hidden_width": 512, "batchnorm": False,
            "classes": 10}, None, 32, "sgd"),
    ("vgg", {"blocks": 3, "convs_per_block": 2, "filters": 16, "dense_layers": 1, "dense_width": 256,
             "input_size": 64, "classes": 100}, None, 8, "sgd"),
    ("vgg", {"blocks": 3, "convs_per_block": 2, "filters": 16, "dense_layers": 1, "dense_width": 256,
             "input_size": 64, "classes": 100}, None, 16, "adamw"),
    ("resnet", {"blocks": [1, 1, 1, 1], "block": "basic", "width": 16, "input_size": 64, "classes": 100},
     None, 8, "sgd"),
    ("resnet", {"blocks": [2, 2], "block": "bottleneck", "width": 16, "input_size": 64, "classes": 100},
     None, 4, "adamw"),
    ("inception", {"stages": 2, "modules_per_stage": 1, "f1": 16, "f2_in": 16, "f2_out": 24, "f3_in": 8,
                   "f3_out": 8, "f4_out": 8, "input_size": 64, "classes": 100}, None, 8, "sgd"),
    ("inception", {"stages": 2, "modules_per_stage": 1, "f1": 16, "f2_in": 16, "f2_out": 24, "f3_in": 8,
                   "f3_out": 8, "f4_out": 8, "input_size": 64, "classes": 100}, None, 4, "adamw"),
]


# ------------------------------------------------------------------------------------------- helpers


def ape_summary(errors_pct: list[float] | np.ndarray) -> tuple[float, float]:
    """(median, p90) of absolute percentage errors."""
    a = np.abs(np.asarray(errors_pct, dtype=float))
    a = a[np.isfinite(a)]
    if not len(a):
        return math.nan, math.nan
    return float(np.median(a)), float(np.percentile(a, 90))


def print_table(frame: pd.DataFrame, columns: list[tuple[str, str, str]]) -> None:
    """columns: (key, header, format)."""
    cells = [[(format(v, fmt) if fmt and isinstance(v, (int, float, np.floating, np.integer))
               and not (isinstance(v, float) and math.isnan(v)) else str(v)) for (k, _, fmt), v in
              zip(columns, [row[k] for k, _, _ in columns])] for _, row in frame.iterrows()]
    heads = [h for _, h, _ in columns]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(heads)]
    print("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(heads, widths))))
    for c in cells:
        print("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(c, widths))))


def _summary_lines(frame: pd.DataFrame, by: str | None = None) -> None:
    if "analytic_err_pct" in frame:
        med, p90 = ape_summary(frame["analytic_err_pct"])
        print(f"analytic model alone: rows {len(frame)}: median APE {med:.1f} %, p90 APE {p90:.1f} %, "
              f"median signed error {frame['analytic_err_pct'].median():+.1f} %")
        print("with the learned correction (traincost.predict's default):")
    med, p90 = ape_summary(frame["err_pct"])
    print(f"rows {len(frame)}: median APE {med:.1f} %, p90 APE {p90:.1f} %, "
          f"median signed error {frame['err_pct'].median():+.1f} %")
    if by:
        for key, part in frame.groupby(by, sort=True):
            m, p = ape_summary(part["err_pct"])
            print(f"  {by}={key}: rows {len(part)}, median APE {m:.1f} %, p90 APE {p:.1f} %, "
                  f"median signed {part['err_pct'].median():+.1f} %")


def _spec(model: str, params: dict[str, Any], input_shape: str | None):
    from traincost import resolve

    return resolve(model, params=params or None, input_shape=input_shape)


def _errors(res: pd.DataFrame) -> pd.DataFrame:
    """Signed percentage errors of the corrected (``predicted_ms``) and analytic predictions."""
    res["err_pct"] = (res["predicted_ms"] / res["measured_ms"] - 1) * 100
    res["analytic_err_pct"] = (res["analytic_ms"] / res["measured_ms"] - 1) * 100
    return res


def short_label(label: str, n: int = 44) -> str:
    label = label.replace("torchvision.models.vision_transformer:VisionTransformer", "vit_tiny")
    return label if len(label) <= n else label[: n - 1] + "…"


# ------------------------------------------------------------------------------------------- 1. CPU


def _cpu_files() -> dict[str, Path]:
    """The newest ``cpu-measured-*.csv`` of each CPU model (the files' ``device`` column), oldest model first."""
    newest: dict[str, Path] = {}
    for path in sorted(DATA.glob("cpu-measured-*.csv")):
        devices = pd.read_csv(path, usecols=["device"])["device"].dropna().unique()
        if len(devices):
            newest[str(devices[0])] = path
    return newest


def _cpu_profile(model_name: str):
    """The shipped CPU profile calibrated on CPU model ``model_name``, else ``None``."""
    from traincost.hardware.store import load_shipped_profiles

    return next((p for p in load_shipped_profiles()
                 if p.kind == "cpu" and p.properties.get("cpu_model") == model_name), None)


def _busy_s() -> float:
    """CPU seconds all processes have used since boot (``/proc/stat``), NaN where there is none."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()[1:]
    except OSError:
        return math.nan
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_s() -> float:
    t = os.times()
    return t.user + t.system


def _measure_quietly(run, *, max_other: float = 0.15, tries: int = 6, wait_s: float = 15.0):
    """Run ``run()`` and check that other processes used under ``max_other`` CPU seconds per second
    meanwhile (on 2 cores a busy neighbour stalls the intra-op thread pool and inflates every timing);
    otherwise wait and try again. Returns (result, other processes' CPU s per wall s)."""
    import time

    other = math.nan
    for attempt in range(tries):
        b0, o0, w0 = _busy_s(), _own_s(), time.perf_counter()
        result = run()
        wall = time.perf_counter() - w0
        other = max(0.0, ((_busy_s() - b0) - (_own_s() - o0)) / wall)
        if not other > max_other:
            return result, other
        print(f"    busy machine (other processes {other:.2f} CPU s/s): waiting {wait_s:.0f} s", file=sys.stderr)
        time.sleep(wait_s)
    return result, other


def measure_cpu(path: Path) -> pd.DataFrame:
    from traincost.flopmodel.walker import StepConfig
    from traincost.hardware.store import cpu_model, profile_for
    from traincost.sweeps.steps import build_on, measure_step

    profile = profile_for("cpu")
    threads = int(profile.properties.get("torch_threads") or os.cpu_count() or 1)
    torch.set_num_threads(threads)
    dev = torch.device("cpu")
    rows = []
    for i, (model, params, shape, batch, opt) in enumerate(CPU_CASES, 1):
        spec = _spec(model, params, shape)
        torch.manual_seed(0)
        module = build_on(spec, dev)
        cfg = StepConfig(batch_size=batch, precision="fp32", channels_last=False, optimizer=opt)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
        t, other = _measure_quietly(lambda: measure_step(module, spec.sample_shape(), cfg, dev, warmup=3,
                                                         repeats=15, max_seconds=10.0))
        rows.append({"model": spec.label, "spec": json.dumps(spec.to_dict()), "batch_size": batch,
                     "precision": "fp32", "channels_last": False, "optimizer": opt, "status": "ok",
                     "median_ms": round(t.median_ms, 4), "min_ms": round(t.min_ms, 4),
                     "max_ms": round(t.max_ms, 4), "repeats": t.repeats, "loadavg_1m": round(load, 2),
                     "other_cpu_s_per_s": round(other, 3),
                     "threads": threads, "device": cpu_model(), "torch": torch.__version__,
                     "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
        print(f"  measured {i}/{len(CPU_CASES)} {short_label(spec.label)} b{batch} {opt}: {t.median_ms:.2f} ms "
              f"(load {load:.2f}, others {other:.2f} CPU s/s)", file=sys.stderr)
    frame = pd.DataFrame(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return frame


def section_cpu(remeasure: bool) -> pd.DataFrame:
    from traincost.hardware.store import cpu_model

    files = _cpu_files()
    here = cpu_model()
    if remeasure or here not in files:
        slug = re.sub(r"[^a-z0-9]+", "-", here.lower()).strip("-")
        path = DATA / f"cpu-measured-{_dt.date.today().isoformat()}-{slug}.csv"
        print(f"measuring {len(CPU_CASES)} training steps on this CPU -> {path}", file=sys.stderr)
        measure_cpu(path)
        files[here] = path
    results = []
    for device, path in files.items():
        results.append(_cpu_table(device, path))
    return pd.concat(results, ignore_index=True)


def _cpu_table(device: str, path: Path) -> pd.DataFrame:
    from traincost import predict
    from traincost.flopmodel.arch import ArchSpec

    frame = pd.read_csv(path)
    profile = _cpu_profile(device)
    if profile is None:
        print(f"\n== 1. CPU {device} ({path.name}): no shipped profile calibrated on this CPU, skipped ==")
        return pd.DataFrame()
    out = []
    for _, r in frame.iterrows():
        spec = ArchSpec.from_dict(json.loads(r["spec"]))
        e = predict(spec, device=profile, batch_size=int(r["batch_size"]), precision=r["precision"],
                    channels_last=bool(r["channels_last"]), optimizer=r["optimizer"])
        out.append({"model": short_label(spec.label), "batch": int(r["batch_size"]), "opt": r["optimizer"],
                    "measured_ms": float(r["median_ms"]), "predicted_ms": e.iteration_ms,
                    "analytic_ms": e.analytic_ms, "host_ms": e.host_ms, "device_ms": e.device_ms, "bound": e.bound,
                    "others": r.get("other_cpu_s_per_s", math.nan), "device": device,
                    "correction": e.correction.get("model") or "none"})
    res = _errors(pd.DataFrame(out))
    print(f"\n== 1. CPU {device}: measured ({path.name}), predicted with its shipped profile {profile.name!r} "
          f"(correction: {res['correction'].iloc[0]}) ==")
    print_table(res, [("model", "model", ""), ("batch", "batch", "d"), ("opt", "opt", ""),
                       ("measured_ms", "measured ms", ".2f"), ("analytic_ms", "analytic ms", ".2f"),
                       ("analytic_err_pct", "error %", "+.1f"), ("predicted_ms", "corrected ms", ".2f"),
                       ("err_pct", "error %", "+.1f"), ("host_ms", "host ms", ".2f"),
                       ("device_ms", "device ms", ".2f"), ("bound", "bound", ""),
                       ("others", "others", ".2f")])
    _summary_lines(res, "opt")
    return res


# ------------------------------------------------------------------------------------------- 2. H200


def _h200_rows(profile) -> pd.DataFrame:
    from traincost import predict
    from traincost.flopmodel.arch import ArchSpec

    frame = pd.read_csv(H200_MODELS)
    out = []
    for _, r in frame.iterrows():
        if r.get("status", "ok") != "ok":
            continue
        spec = ArchSpec.from_dict(json.loads(r["spec"]))
        e = predict(spec, device=profile, batch_size=int(r["batch_size"]), precision=r["precision"],
                    channels_last=bool(r["channels_last"]), optimizer=r["optimizer"])
        out.append({"model": short_label(r["model"], 36), "batch": int(r["batch_size"]), "precision": r["precision"],
                    "cl": "y" if r["channels_last"] else "n", "opt": r["optimizer"],
                    "measured_ms": float(r["median_ms"]), "predicted_ms": e.iteration_ms,
                    "analytic_ms": e.analytic_ms, "host_ms": e.host_ms, "device_ms": e.device_ms, "bound": e.bound,
                    "mem_err_pct": (e.peak_memory_bytes / float(r["measured_peak_bytes"]) - 1) * 100})
    return _errors(pd.DataFrame(out))


def section_h200() -> pd.DataFrame:
    from traincost.hardware.profile import load_profile
    from traincost.hardware.store import profile_for, shipped_profiles_dir

    own = load_profile(shipped_profiles_dir() / "h200.json")
    res = _h200_rows(own)
    print(f"\n== 2. H200: {H200_MODELS.name}, predicted with the calibrated h200.json profile (the same host) ==")
    print_table(res, [("model", "model", ""), ("batch", "batch", "d"), ("precision", "prec", ""),
                       ("cl", "cl", ""), ("opt", "opt", ""), ("measured_ms", "measured ms", ".2f"),
                       ("analytic_ms", "analytic ms", ".2f"), ("analytic_err_pct", "error %", "+.1f"),
                       ("predicted_ms", "corrected ms", ".2f"), ("err_pct", "error %", "+.1f"),
                       ("host_ms", "host ms", ".2f"), ("device_ms", "device ms", ".2f"), ("bound", "bound", ""),
                       ("mem_err_pct", "peak mem err %", "+.1f")])
    _summary_lines(res, "precision")
    for bound, part in res.groupby("bound", sort=True):  # where the analytic model errs: host or device time
        am, _ = ape_summary(part["analytic_err_pct"])
        cm, _ = ape_summary(part["err_pct"])
        print(f"  bound={bound}: rows {len(part)}, analytic median APE {am:.1f} % (signed "
              f"{part['analytic_err_pct'].median():+.1f} %), corrected {cm:.1f} % (signed {part['err_pct'].median():+.1f} %)")
    m, p = ape_summary(res["mem_err_pct"])
    print(f"peak memory: median APE {m:.1f} %, p90 APE {p:.1f} %")
    # The same steps priced with the profile `--device H200` takes (the newest H200 calibration, another host:
    # h200-2026-12-04.json, whose eager dispatch is 1.5x slower): what a user whose host was not calibrated gets.
    other = profile_for("H200")
    if other.name != own.name:
        cross = _h200_rows(other)
        am, ap = ape_summary(cross["analytic_err_pct"])
        cm, cp = ape_summary(cross["err_pct"])
        bias = float(np.median(cross["predicted_ms"] / cross["measured_ms"] - 1) * 100)
        print(f"the same {len(cross)} steps with `--device H200`'s profile ({other.name!r}): analytic median APE "
              f"{am:.1f} % (p90 {ap:.1f}), corrected {cm:.1f} % (p90 {cp:.1f}), median signed error "
              f"{bias:+.1f} %")
    return res


# ------------------------------------------------------------------------------------------- 3. public


def resnext101_32x4d() -> nn.Module:
    """ResNeXt-101 32x4d (NVIDIA DLE's model): torchvision's ResNet with 32 groups of width 4."""
    from torchvision.models.resnet import Bottleneck, ResNet

    return ResNet(Bottleneck, [3, 4, 23, 3], groups=32, width_per_group=4)


def se_resnext101_32x4d() -> nn.Module:
    """SE-ResNeXt-101 32x4d: ResNeXt-101 32x4d with a squeeze-excitation gate (reduction 16) per block."""
    from torchvision.models.resnet import Bottleneck, ResNet

    class SEBottleneck(Bottleneck):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            c = self.conv3.out_channels
            self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(c, c // 16, 1), nn.ReLU(inplace=True),
                                    nn.Conv2d(c // 16, c, 1), nn.Sigmoid())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            out = out * self.se(out)
            return self.relu(out + identity)

    return ResNet(SEBottleneck, [3, 4, 23, 3], groups=32, width_per_group=4)


_SELF = str(Path(__file__).resolve())
_PUBLIC_MODELS = {
    "ResNet-50 v1.5 (NVIDIA DLE)": ("resnet50", None),
    "ResNet-50 v1.5 (pytorch/examples imagenet)": ("resnet50", None),
    "ResNet-50 (torchvision)": ("resnet50", None),
    "ResNeXt-101 32x4d (NVIDIA DLE)": (f"{_SELF}:resnext101_32x4d", "3,224,224"),
    "SE-ResNeXt-101 32x4d (NVIDIA DLE)": (f"{_SELF}:se_resnext101_32x4d", "3,224,224"),
    "efficientnet-b0 (NVIDIA DLE)": ("efficientnet_b0", "3,224,224"),
    "efficientnet-b4 (NVIDIA DLE)": ("efficientnet_b4", "3,380,380"),
}
_NO_OPTIMIZER_UNITS = ("no optimizer step", "forward+backward")


def public_row(r: pd.Series, *, units: tuple[str, ...], skip_uncertain: bool = False
               ) -> tuple[str | None, tuple[tuple[str, str | None], str, tuple[str, bool], int] | None]:
    """(why the row is left out, None) or (None, (model, catalog GPU, (precision, channels_last), batch per
    GPU)) for one row of throughput_public.csv; ``units``: accepted unit prefixes."""
    model = public_model(str(r["model"]))
    gpu = public_gpu(str(r["gpu"]))
    prec = public_precision(r)
    batch = r["batch_size_per_gpu"]
    if model is None:
        return "model not mapped", None
    if gpu is None:
        return "GPU not in the catalog", None
    if prec is None:
        return "precision not mapped", None
    if not (isinstance(batch, (int, float)) and math.isfinite(batch)):
        return "batch size not stated", None
    if not str(r["unit"]).startswith(units):
        return "unit", None
    if skip_uncertain and str(r.get("uncertain", "")).lower().startswith("yes"):
        return "marked uncertain in the source table", None
    return None, (model, gpu, prec, int(batch))


def public_model(name: str) -> tuple[str, str | None] | None:
    if name in _PUBLIC_MODELS:
        return _PUBLIC_MODELS[name]
    m = re.match(r"^([A-Za-z0-9_\-]+) \(torchvision\)$", name)
    if m:
        return m.group(1).lower().replace("-", ""), None
    return None


def public_gpu(text: str) -> str | None:
    from traincost.errors import TraincostUsageError
    from traincost.hardware.catalog import resolve_gpu

    base = re.sub(r"\(.*?\)", "", text).replace("Tesla", "").strip()
    base = base.replace("SXM3", "SXM2")  # DGX-2's V100 SXM3 32GB: the catalog's V100 SXM2 32GB (same chip)
    base = re.sub(r"-(\d+GB)$", r" \1", base).replace("-", " ")
    try:
        return resolve_gpu(base).name
    except TraincostUsageError:
        return None


def public_precision(row: pd.Series) -> tuple[str, bool] | None:
    p = str(row["precision"]).upper()
    detail = str(row.get("precision_detail", "")).lower()
    if p == "TF32":
        return "tf32", False
    if p == "FP32":
        return "fp32", "nhwc" in detail
    if p in ("AMP_FP16", "FP16"):
        cl = "nhwc" in detail or "channels_last" in detail
        return "fp16", cl
    return None


def section_public(profile_of: Any = None, *, quiet: bool = False) -> pd.DataFrame:
    """``profile_of``: GPU name -> profile (default :func:`traincost.hardware.store.profile_for`); ``quiet``: no
    per-row table."""
    from traincost import resolve
    from traincost.flopmodel.count import count
    from traincost.hardware.store import profile_for
    from traincost.pricing.optable import OpTable
    from traincost.pricing.timeline import price

    frame = pd.read_csv(PUBLIC)
    frame = frame[frame["num_gpus"] == 1]
    walks: dict[tuple, Any] = {}
    out, skipped = [], {}
    for _, r in frame.iterrows():
        why, mapped = public_row(r, units=("images/s", "ms/iteration"))
        if why:
            skipped[why] = skipped.get(why, 0) + 1
            continue
        model, gpu, (precision, cl), batch = mapped
        unit = str(r["unit"])
        no_opt = any(s in unit for s in _NO_OPTIMIZER_UNITS)
        measured_ms = batch / float(r["throughput"]) * 1e3 if unit == "images/s" else float(r["throughput"])
        key = (model, batch, precision, cl)
        if key not in walks:
            spec = resolve(model[0], input_shape=model[1])
            walk = count(spec, batch_size=batch, precision=precision, channels_last=cl, optimizer="sgd").walk
            walks[key] = (walk, OpTable.from_walk(walk),
                          OpTable.from_records([x for x in walk.records if x.phase != "optimizer"],
                                               precision=precision, channels_last=cl, optimizer="sgd",
                                               batch_size=batch, param_bytes=walk.param_bytes,
                                               working_set_bytes=walk.memory.peak_bytes))
        walk, full, fwd_bwd = walks[key]
        profile = (profile_of or profile_for)(gpu)
        pricing = price(fwd_bwd if no_opt else full, profile)
        out.append({"row": int(r["row_id"]), "source": str(r["source"]).split(" ")[0].split("/")[0][:10],
                    "model": short_label(str(r["model"]).replace(" (NVIDIA DLE)", " DLE"), 30), "gpu": gpu,
                    "precision": precision + ("+cl" if cl else ""), "batch": batch,
                    "scope": "fwd+bwd" if no_opt else "step",
                    "measured_ms": measured_ms, "predicted_ms": pricing.timeline.step_s * 1e3,
                    "host_ms": pricing.timeline.host_s * 1e3, "device_ms": pricing.timeline.device_s * 1e3})
    res = pd.DataFrame(out)
    res["err_pct"] = (res["predicted_ms"] / res["measured_ms"] - 1) * 100
    if quiet:
        return res
    print("\n== 3. Public single-GPU rows (throughput_public.csv), predicted from datasheet profiles ==")
    print("caveats: DLE rows use DALI and AMP in channels_last; A100 'FP32' = TF32 (predicted tf32); aisensiy / "
          "u39kun rows are fwd+bwd without the optimizer step (predicted without it) and their FP16 is "
          "model.half() (predicted as fp16 autocast); aisensiy times a host->device copy too")
    print("left out: " + ", ".join(f"{k} ({v})" for k, v in sorted(skipped.items())))
    print_table(res, [("row", "row", "d"), ("source", "source", ""), ("model", "model", ""), ("gpu", "gpu", ""),
                       ("precision", "prec", ""), ("batch", "batch", "d"), ("scope", "scope", ""),
                       ("measured_ms", "measured ms", ".1f"), ("predicted_ms", "predicted ms", ".1f"),
                       ("err_pct", "error %", "+.1f"), ("host_ms", "host ms", ".1f"),
                       ("device_ms", "device ms", ".1f")])
    _summary_lines(res, "source")
    for key, part in res.groupby("precision"):
        m, p = ape_summary(part["err_pct"])
        print(f"  precision={key}: rows {len(part)}, median APE {m:.1f} %, p90 APE {p:.1f} %")
    return res


_EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "hf"
#: Transformer rows of throughput_public.csv -> (hf: model, params, optimizer). The BERT-large rows accumulate
#: gradients over 32-256 micro-batches (LAMB once per accumulation): predicted as forward + backward.
_PUBLIC_TRANSFORMERS = {
    "BERT-large pretraining phase 1 (NVIDIA DLE, LAMB)": (f"hf:{_EXAMPLES / 'bert-large.json'}", {}, "adam"),
    "BERT-large pretraining phase 2 (NVIDIA DLE, LAMB)": (f"hf:{_EXAMPLES / 'bert-large.json'}", {}, "adam"),
    "BERT-base pretraining (NVIDIA DLE run_pretraining.py, FusedLAMB replaced by FusedAdam)":
        ("hf:BertConfig", {"task": "pretraining"}, "adam"),
}
#: Sequence length of rows that do not state one (BERT-base: "phase-1 data => likely 128").
_DEFAULT_PUBLIC_SEQ = 128


def section_public_transformers(profile_of: Any = None, *, quiet: bool = False) -> pd.DataFrame:
    """BERT pre-training rows of throughput_public.csv (single GPU, batch stated), ``hf:`` configs on datasheet
    profiles. Kept apart from :func:`section_public` so its figures (and ``crossgpu.py``'s) stay comparable."""
    from traincost import resolve
    from traincost.flopmodel.count import count
    from traincost.hardware.store import profile_for
    from traincost.pricing.optable import OpTable
    from traincost.pricing.timeline import price

    frame = pd.read_csv(PUBLIC)
    frame = frame[(frame["num_gpus"] == 1) & frame["model"].isin(list(_PUBLIC_TRANSFORMERS))]
    out, skipped = [], {}
    for _, r in frame.iterrows():
        gpu, batch = public_gpu(str(r["gpu"])), r["batch_size_per_gpu"]
        prec = ("fp16", False) if str(r["precision"]).upper() == "FP16_MIXED" else public_precision(r)
        why = ("GPU not in the catalog" if gpu is None else "precision not mapped" if prec is None
               else "batch size not stated" if not (isinstance(batch, (int, float)) and math.isfinite(batch))
               else None)
        if why:
            skipped[why] = skipped.get(why, 0) + 1
            continue
        model, params, optimizer = _PUBLIC_TRANSFORMERS[str(r["model"])]
        seq = re.search(r"seq_len=(\d+)", str(r["input_size"]))
        seq_len = int(seq.group(1)) if seq else _DEFAULT_PUBLIC_SEQ
        accumulated = "accumulation" in str(r["notes"])
        precision, batch = prec[0], int(batch)
        walk = count(resolve(model, params=params or None), batch_size=batch, precision=precision,
                     optimizer=optimizer, seq_len=seq_len).walk
        records = [x for x in walk.records if x.phase != "optimizer"] if accumulated else list(walk.records)
        table = OpTable.from_records(records, precision=precision, channels_last=False, optimizer=optimizer,
                                     batch_size=batch, param_bytes=walk.param_bytes,
                                     working_set_bytes=walk.memory.peak_bytes)
        timeline = price(table, (profile_of or profile_for)(gpu)).timeline
        out.append({"row": int(r["row_id"]), "model": short_label(str(r["model"]), 30), "gpu": gpu,
                    "precision": precision, "batch": batch, "seq": seq_len if seq else f"{seq_len}?",
                    "scope": "fwd+bwd" if accumulated else "step",
                    "measured_ms": batch / float(r["throughput"]) * 1e3, "predicted_ms": timeline.step_s * 1e3,
                    "host_ms": timeline.host_s * 1e3, "device_ms": timeline.device_s * 1e3})
    res = pd.DataFrame(out)
    res["err_pct"] = (res["predicted_ms"] / res["measured_ms"] - 1) * 100
    if quiet:
        return res
    print("\n== 3b. Public BERT pre-training rows (throughput_public.csv), hf: configs on datasheet profiles ==")
    print("caveats: NVIDIA's BERT fuses LayerNorm/GELU/bias kernels (traincost walks the transformers model); "
          "LAMB is predicted as Adam; rows with gradient accumulation are forward + backward; BERT-base rows do "
          f"not state the sequence length ({_DEFAULT_PUBLIC_SEQ}? assumed); SQuAD rows left out (no QA head)")
    if skipped:
        print("left out: " + ", ".join(f"{k} ({v})" for k, v in sorted(skipped.items())))
    print_table(res, [("row", "row", "d"), ("model", "model", ""), ("gpu", "gpu", ""), ("precision", "prec", ""),
                       ("batch", "batch", "d"), ("seq", "seq", ""), ("scope", "scope", ""),
                       ("measured_ms", "measured ms", ".1f"), ("predicted_ms", "predicted ms", ".1f"),
                       ("err_pct", "error %", "+.1f"), ("host_ms", "host ms", ".1f"), ("device_ms", "device ms", ".1f")])
    _summary_lines(res, "precision")
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--section", choices=["cpu", "h200", "public", "all"], default="all")
    parser.add_argument("--remeasure", action="store_true", help="measure the CPU steps again")
    args = parser.parse_args()
    results = {}
    if args.section in ("cpu", "all"):
        results["cpu"] = section_cpu(args.remeasure)
    if args.section in ("h200", "all"):
        results["h200"] = section_h200()
    if args.section in ("public", "all"):
        results["public"] = section_public()
        results["bert"] = section_public_transformers()
    print("\n== summary (targets: median <= 25 %, p90 <= 60 % on CPU and public GPU rows) ==")
    for name, res in results.items():
        if "analytic_err_pct" in res:
            m, p = ape_summary(res["analytic_err_pct"])
            print(f"{name:<7} rows {len(res):>3}  analytic   median APE {m:5.1f} %  p90 APE {p:5.1f} %")
        m, p = ape_summary(res["err_pct"])
        what = "corrected" if "analytic_err_pct" in res else "analytic "
        print(f"{name:<7} rows {len(res):>3}  {what}  median APE {m:5.1f} %  p90 APE {p:5.1f} %")


if __name__ == "__main__":
    main()
