"""Fit reference kernel curves of the five NeuSight GPUs: ``traincost/data/kernel_refs.json``.

    python scripts/fit_kernel_refs.py [--check]

NeuSight measured ~187k forward ops (FP32, TF32 off) on Tesla P4, T4, P100, V100 and A100
(``data/reference/neusight/``). Each GPU's ops are fitted with traincost's own curve fitter
(:func:`traincost.calibrate.fitting.fit_curve`) into the curves a calibration would hold: ``matmul/fp32``
(``linear`` and ``bmm``; depth = the smallest GEMM dimension), ``conv/fp32_strict`` (depth = C_in x kh x kw) and
the elementwise ``memory`` curve (``add``, ``mul``, ``relu``, ``gelu``; work = bytes read + written). Only the
device-bound rows are fitted (time at least ``DEVICE_BOUND`` x the op's fastest row on that GPU): NeuSight's
latencies carry a 25-60 us host floor per op that is the measuring machine's, not the GPU's, so the curves keep
rates and depth terms and leave latencies to calibrated references. Each curve is stored as a fraction of the
GPU's datasheet peak (``traincost.hardware.datasheet`` multiplies it by another GPU's peak), with the GPU's
datasheet features and the fit's median error. ``--check`` exits 1 when the stored file differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "data" / "reference" / "neusight"
OUT = ROOT / "traincost" / "data" / "kernel_refs.json"
#: rows at least this many times their op's fastest latency on that GPU are device-bound.
DEVICE_BOUND = 3.0
#: NeuSight file name -> (catalog name, architecture); conv ran on the 80 GB A100 PCIe (same chip, 1935 GB/s).
GPUS = {
    "Tesla_P4": ("Tesla P4", "Pascal"),
    "Tesla_T4": ("T4", "Turing"),
    "Tesla_P100-PCIE-16GB": ("P100 PCIe 16GB", "Pascal"),
    "Tesla_V100-PCIE-32GB": ("V100 PCIe 32GB", "Volta"),
    "NVIDIA_A100-PCIE-40GB": ("A100 PCIe 40GB", "Ampere"),
    "NVIDIA_A100_80GB_PCIe": ("A100 PCIe 80GB", "Ampere"),
}
ELEMENTWISE = ("add", "mul", "relu", "gelu")


def _features(name: str) -> dict:
    if name == "NVIDIA_A100_80GB_PCIe":   # no config of its own: the 40 GB card's chip with 1935 GB/s
        cfg = {**json.loads((SOURCE / "device_configs" / "NVIDIA_A100-PCIE-40GB.json").read_text()), "Mem_Bw": 1935}
    else:
        cfg = json.loads((SOURCE / "device_configs" / f"{name}.json").read_text())
    return {"sm_count": cfg["Num_Sm"], "fp32_tflops": cfg["SingleFLOPs"] / 1e3, "mem_bandwidth_gb_s": cfg["Mem_Bw"],
            "l2_mb": cfg["L2Cache"], "clock_mhz": cfg["Freq"]}


def op_work(frame: pd.DataFrame) -> pd.DataFrame:
    """FLOPs, bytes and depth of every NeuSight row (FP32: 4 bytes per element)."""
    f = frame.copy()
    out = pd.DataFrame(index=f.index)
    out["op"], out["gpu"], out["t_s"] = f["op"], f["gpu"], f["latency_ms"] * 1e-3
    gemm = f["op"].isin(["linear", "bmm"])
    rows = np.where(f["op"] == "linear", f["B"] * f["M"], f["M"]).astype(float)
    batch = np.where(f["op"] == "bmm", f["B"], 1).astype(float)
    n, k = f["N"].astype(float), f["K"].astype(float)
    out.loc[gemm, "flops"] = (2 * batch * rows * n * k)[gemm]
    out.loc[gemm, "bytes"] = (4 * batch * (rows * k + k * n + rows * n))[gemm]
    out.loc[gemm, "depth"] = np.minimum(np.minimum(rows, n), k)[gemm]
    conv = f["op"] == "conv"
    c = f[conv].astype({"B": float, "C_in": float, "C_out": float, "kernel": float, "size": float})
    h_out = np.floor((c["size"] + 2 * c["padding"] - c["kernel"]) / c["stride"]) + 1
    out.loc[conv, "flops"] = 2 * c["B"] * c["C_out"] * h_out ** 2 * c["C_in"] * c["kernel"] ** 2
    out.loc[conv, "bytes"] = 4 * (c["B"] * c["C_in"] * c["size"] ** 2 + c["C_out"] * c["C_in"] * c["kernel"] ** 2
                                  + c["B"] * c["C_out"] * h_out ** 2)
    out.loc[conv, "depth"] = c["C_in"] * c["kernel"] ** 2
    mem = ~(gemm | conv)
    elems = (f["B"] * f["H"]).astype(float)
    reads = np.where(f["op"].isin(["add", "mul"]), 2.0, 1.0)
    out.loc[mem, "flops"] = 0.0
    out.loc[mem, "bytes"] = (4 * elems * (reads + 1))[mem]
    out.loc[mem, "depth"] = np.nan
    return out


def device_bound(work: pd.DataFrame) -> pd.Series:
    fastest = work.groupby(["op", "gpu"])["t_s"].transform("min")
    return work["t_s"] >= DEVICE_BOUND * fastest


def load() -> pd.DataFrame:
    return op_work(pd.read_csv(SOURCE / "ops.csv.gz"))


def fit_refs(work: pd.DataFrame) -> list[dict]:
    from traincost.calibrate.fitting import fit_curve

    bound = work[device_bound(work)]
    refs = []
    for name in sorted(GPUS):
        label, arch = GPUS[name]
        feats = _features(name)
        peak = feats["fp32_tflops"] * 1e12
        bw = feats["mem_bandwidth_gb_s"] * 1e9
        mine = bound[bound["gpu"] == name]
        curves: dict = {}
        for cls, mode, ops in (("matmul", "fp32", ("linear", "bmm")), ("conv", "fp32_strict", ("conv",))):
            rows = mine[mine["op"].isin(ops)]
            if len(rows) < 50:
                continue
            curve, rep = fit_curve(rows["flops"].to_numpy(), rows["t_s"].to_numpy(), depth=rows["depth"].to_numpy())
            curves.setdefault(cls, {})[mode] = {
                "fraction": curve.peak / peak, "k_half": curve.k_half,
                "depth_kind": ("min_mnk" if cls == "matmul" else "c_in_kk") if curve.k_half > 0 else None,
                "points": int(len(rows)), "median_ape": rep.median_ape}
        rows = mine[mine["op"].isin(ELEMENTWISE)]
        memory = None
        if len(rows) >= 20:
            curve, rep = fit_curve(rows["bytes"].to_numpy(), rows["t_s"].to_numpy())
            memory = {"fraction": curve.peak / bw, "points": int(len(rows)), "median_ape": rep.median_ape}
        refs.append({"name": f"{label} (NeuSight)", "neusight_file": name, "catalog_name": label,
                     "architecture": arch, "features": feats, "compute": curves, "memory": memory})
    return refs


def render(refs: list[dict]) -> str:
    doc = {"schema_version": 1,
           "source": "NeuSight (ASPLOS 2025) public per-op latencies, MIT licence: data/reference/neusight/",
           "made_by": "python scripts/fit_kernel_refs.py", "device_bound_factor": DEVICE_BOUND,
           "references": refs}
    return json.dumps(doc, indent=1, sort_keys=True, default=float) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when the stored file is not what this writes")
    args = ap.parse_args(argv)
    text = render(fit_refs(load()))
    if args.check:
        return 0 if OUT.is_file() and OUT.read_text() == text else 1
    OUT.write_text(text)
    for ref in json.loads(text)["references"]:
        parts = [f"{c}/{m} {v['fraction']:.2f} (k {v['k_half']:.0f}, {v['median_ape']:.1f} %)"
                 for c, modes in ref["compute"].items() for m, v in modes.items()]
        mem = ref["memory"]
        parts.append(f"memory {mem['fraction']:.2f} ({mem['median_ape'] * 100:.0f} %)" if mem else "memory -")
        print(f"{ref['name']:28s} " + "; ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
