"""GPUs never measured: datasheet profiles against measurements on GPUs they were not derived from. Asserts nothing.

    python benchmarks/crossgpu.py [--section ops|models|all] [--per-op N]

1. **ops** (leave one GPU out): NeuSight's forward ops (``data/reference/neusight/``: linear, bmm, conv2d, layer
   norm, elementwise; FP32 with TF32 off) on Tesla P4, T4, P100, V100 and A100. For each GPU in turn, its datasheet
   profile is derived (:func:`traincost.hardware.datasheet.datasheet_profile`) from the shipped calibrated profiles
   and the NeuSight reference curves of the OTHER GPUs, and prices every op through the one pricer
   (:class:`traincost.pricing.optable.OpTable`). Rows are device-bound ones (at least 3x the op's fastest time on
   that GPU: NeuSight's times carry a 25-60 us host floor per op that belongs to its measuring machine). Median /
   p90 absolute percentage error (APE) per op class and GPU, and the same with the H200 references alone (how
   every unmeasured GPU was derived before NeuSight's curves were used).
2. **models** (every GPU held out by construction: no public row's GPU has a calibrated profile): the single-GPU
   rows of ``data/reference/throughput_public.csv`` as ``benchmarks/accuracy.py --section public`` prices them,
   summarised per GPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import fit_kernel_refs as refs_script  # noqa: E402

SEED = 0
CLASSES = {"linear": "gemm", "bmm": "gemm", "conv": "conv", "ln": "norm", "add": "elementwise", "mul": "elementwise",
           "relu": "elementwise", "gelu": "elementwise"}


def ape_summary(err_pct: pd.Series) -> tuple[float, float]:
    a = np.abs(np.asarray(err_pct, dtype=float))
    return (float(np.median(a)), float(np.percentile(a, 90))) if len(a) else (math.nan, math.nan)


def _records(frame: pd.DataFrame, raw: pd.DataFrame) -> list[SimpleNamespace]:
    """One walk-like record per NeuSight row: the aten op, its shapes, FLOPs and bytes (fp32)."""
    out = []
    for (_, w), (_, r) in zip(frame.iterrows(), raw.loc[frame.index].iterrows()):
        op = r["op"]
        if op == "linear":
            m, k, n = int(r["B"] * r["M"]), int(r["K"]), int(r["N"])
            name, cls, ins, outs = "aten.mm", "matmul", ((m, k), (k, n)), ((m, n),)
        elif op == "bmm":
            b, m, k, n = int(r["B"]), int(r["M"]), int(r["K"]), int(r["N"])
            name, cls, ins, outs = "aten.bmm", "matmul", ((b, m, k), (b, k, n)), ((b, m, n),)
        elif op == "conv":
            b, ci, co, kk, s = (int(r[c]) for c in ("B", "C_in", "C_out", "kernel", "size"))
            ho = (s + 2 * int(r["padding"]) - kk) // int(r["stride"]) + 1
            name, cls, ins, outs = "aten.convolution", "conv", ((b, ci, s, s), (co, ci, kk, kk)), ((b, co, ho, ho),)
        elif op == "ln":
            shape = (int(r["B"]), int(r["H"]))
            name, cls, ins, outs = "aten.native_layer_norm", "norm", (shape,), (shape,)
        else:
            shape = (int(r["B"]), int(r["H"]))
            name, cls = f"aten.{op}", "elementwise"
            ins, outs = ((shape, shape) if op in ("add", "mul") else (shape,)), (shape,)
        nbytes = w["bytes"] if op != "ln" else 4.0 * 2 * r["B"] * r["H"]
        out.append(SimpleNamespace(phase="forward", module=None, op=name, op_class=cls, flops=float(w["flops"] or 0),
                                   bytes_read=float(nbytes), bytes_written=0, input_shapes=ins,
                                   input_dtypes=("float32",) * len(ins), output_shapes=outs,
                                   output_dtypes=("float32",), n_tensors=0, host_only=False))
    return out


def _strict(profile):
    """The profile as NeuSight ran: convolutions with TF32 off (the ``fp32_strict`` curves as ``fp32``)."""
    compute = {cls: dict(modes) for cls, modes in profile.compute.items()}
    for cls, modes in compute.items():
        if "fp32_strict" in modes:
            modes["fp32"] = modes["fp32_strict"]
    return dataclasses.replace(profile, compute=compute)


def section_ops(per_op: int) -> pd.DataFrame:
    from traincost.hardware.catalog import resolve_gpu
    from traincost.hardware.datasheet import datasheet_profile, load_kernel_refs
    from traincost.hardware.store import load_shipped_profiles
    from traincost.pricing.optable import OpTable

    raw = pd.read_csv(refs_script.SOURCE / "ops.csv.gz")
    work = refs_script.op_work(raw)
    work = work[refs_script.device_bound(work)]
    rng = np.random.default_rng(SEED)
    picked = []
    for _, part in sorted(work.groupby(["op", "gpu"]), key=lambda kv: kv[0]):
        picked.append(part.iloc[np.sort(rng.choice(len(part), min(per_op, len(part)), replace=False))])
    work = pd.concat(picked)
    calibrated = load_shipped_profiles()
    kernel_refs = load_kernel_refs()
    rows = []
    for gpu_file, part in sorted(work.groupby("gpu"), key=lambda kv: kv[0]):
        label = refs_script.GPUS[gpu_file][0]
        spec = resolve_gpu(label)
        others = [r for r in kernel_refs if r["catalog_name"] != label and r["catalog_name"][:4] != label[:4]]
        derived = {"with NeuSight refs": datasheet_profile(spec, calibrated, kernel_refs=others),
                   "H200 refs only": datasheet_profile(spec, calibrated, kernel_refs=())}
        table = OpTable.from_records(_records(part, raw), precision="fp32")
        for how, profile in derived.items():
            device_s = table.device_times(_strict(profile))[0]
            for (_, w), t in zip(part.iterrows(), device_s):
                rows.append({"gpu": label, "how": how, "class": CLASSES[w["op"]], "op": w["op"],
                             "err_pct": (t / w["t_s"] - 1) * 100})
    res = pd.DataFrame(rows)
    print("== 1. Op level, leave one GPU out: NeuSight forward ops (FP32, TF32 off), device-bound rows ==")
    print(f"{'gpu':18s} {'class':12s} {'rows':>5s}   " + "   ".join(f"{h:>24s}" for h in res["how"].unique()))
    for (gpu, cls), part in res.groupby(["gpu", "class"]):
        cells = []
        for how in res["how"].unique():
            m, p = ape_summary(part[part["how"] == how]["err_pct"])
            cells.append(f"median {m:5.1f} p90 {p:6.1f}")
        print(f"{gpu:18s} {cls:12s} {len(part) // 2:5d}   " + "   ".join(f"{c:>24s}" for c in cells))
    print("overall:")
    for how, part in res.groupby("how", sort=False):
        m, p = ape_summary(part["err_pct"])
        by_class = ", ".join(f"{c} {ape_summary(q['err_pct'])[0]:.1f}" for c, q in part.groupby("class"))
        print(f"  {how:20s} rows {len(part):6d}: median APE {m:5.1f} %, p90 {p:6.1f} %  ({by_class})")
    return res


def _chip(architecture: str) -> str:
    """``Ampere (GA100)`` -> ``GA100``: GPUs of one chip are held out together."""
    found = re.search(r"\(([^)]+)\)", architecture)
    return found.group(1) if found else architecture


def logo_profile_of(kernel_refs: list | None) -> Any:
    """GPU name -> its datasheet profile derived without any reference of the same chip (leave one GPU out)."""
    from traincost.hardware.catalog import load_gpus, resolve_gpu
    from traincost.hardware.datasheet import datasheet_profile, load_kernel_refs
    from traincost.hardware.store import load_shipped_profiles

    refs = load_kernel_refs() if kernel_refs is None else kernel_refs
    calibrated = load_shipped_profiles()
    by_key = {g.key: g for g in load_gpus()}

    def profile_of(name: str) -> Any:
        spec = resolve_gpu(name)
        chip = _chip(spec.architecture)
        others = [r for r in refs if _chip(resolve_gpu(r["catalog_name"]).architecture) != chip]
        cal = [p for p in calibrated if p.catalog_key not in by_key or _chip(by_key[p.catalog_key].architecture) != chip]
        return datasheet_profile(spec, cal, kernel_refs=others)

    return profile_of


def section_models() -> pd.DataFrame:
    import accuracy

    variants = {"with NeuSight refs": logo_profile_of(None), "H200 refs only": logo_profile_of([])}
    results = {how: accuracy.section_public(profile_of, quiet=True) for how, profile_of in variants.items()}
    print("\n== 2. Whole models, leave one GPU (chip) out: public single-GPU rows, datasheet profiles ==")
    print(f"{'gpu':22s} {'rows':>4s}   " + "   ".join(f"{h:>40s}" for h in results))
    first = next(iter(results.values()))
    for gpu in sorted(first["gpu"].unique()):
        cells = []
        for res in results.values():
            part = res[res["gpu"] == gpu]
            m, p = ape_summary(part["err_pct"])
            cells.append(f"median {m:5.1f} p90 {p:6.1f} signed {float(np.median(part['err_pct'])):+6.1f}")
        print(f"{gpu:22s} {int((first['gpu'] == gpu).sum()):4d}   " + "   ".join(f"{c:>40s}" for c in cells))
    for how, res in results.items():
        per_gpu = [ape_summary(part["err_pct"])[0] for _, part in res.groupby("gpu")]
        m, p = ape_summary(res["err_pct"])
        print(f"overall {how:20s}: rows {len(res)}, GPUs {len(per_gpu)}: median APE {m:.1f} %, p90 {p:.1f} %; "
              f"median of per-GPU medians {float(np.median(per_gpu)):.1f} %")
        for prec, part in res.groupby("precision"):
            pm, pp = ape_summary(part["err_pct"])
            print(f"    precision={prec}: rows {len(part)}, median APE {pm:.1f} %, p90 {pp:.1f} %")
    return first


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--section", choices=["ops", "models", "all"], default="all")
    ap.add_argument("--per-op", type=int, default=400, help="device-bound rows per (op, GPU) (default 400)")
    args = ap.parse_args(argv)
    if args.section in ("ops", "all"):
        section_ops(args.per_op)
    if args.section in ("models", "all"):
        section_models()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
