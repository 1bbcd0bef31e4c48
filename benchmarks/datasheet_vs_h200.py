"""What a datasheet-derived H200 profile predicts against what an H200 really reached.

    python benchmarks/datasheet_vs_h200.py [--reference calibrated_gpu.json ...] [--json]

For each point of ``data/reference/h200_microbench.json`` (one plain-PyTorch run on an H200):
matmul TFLOP/s by size and mode, device copy GB/s, eager op us, conv2d TFLOP/s for six layer shapes), it
prints the measured value, the prediction of ``datasheet_profile(H200)`` and its absolute percentage error
(APE), and the "naive" prediction (datasheet peak, what a FLOP-count estimate assumes).

Caveat: without ``--reference`` the datasheet profile uses the DEFAULT_* constants of traincost.hardware.datasheet,
which were fitted on this very file: that is an in-sample check of the curve form (2 parameters per
class and mode), not of transfer to another GPU. The ``loo`` column is honest about the form: each matmul
or conv point is predicted by a curve refitted without it (leave one out). With ``--reference`` (calibrated
GPU profiles, e.g. one measured by ``traincost calibrate`` on another GPU) the profile is learned from
those instead, which is the real datasheet use.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from traincost.calibrate.fitting import fit_curve
from traincost.hardware.catalog import resolve_gpu
from traincost.hardware.datasheet import DEFAULT_MATMUL, datasheet_profile
from traincost.hardware.profile import load_profile

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "reference" / "h200_microbench.json"


def _conv_flops(key: str) -> tuple[str, int, int]:
    """(mode, FLOPs, depth = C_in * r * r) of conv_<mode>_c<C>_k<K>_hw<HW>_r<R>_b<B>_tflops; the 7x7 stem
    has stride 2 (ResNet)."""
    parts = key.split("_")
    mode = parts[1]
    c, k, hw, r, b = (int(x.lstrip("ckhwrb")) for x in parts[2:7])
    stride = 2 if r == 7 else 1
    return mode, 2 * b * c * k * r * r * (hw // stride) ** 2, c * r * r


def _p90(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(0.9 * len(xs) + 0.999) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reference", nargs="*", default=[], help="calibrated GPU profiles to learn from")
    parser.add_argument("--profile", default=None,
                        help="judge this profile instead of the datasheet one, e.g. the calibrated "
                             "traincost/data/profiles/h200.json against the independent reference run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    data = json.loads(REFERENCE.read_text())
    h200 = resolve_gpu("H200")
    refs = [load_profile(p) for p in args.reference]
    prof = load_profile(args.profile) if args.profile else datasheet_profile(h200, refs)

    matmul_pts: dict[str, list[tuple[str, float, float]]] = {}
    conv_pts: dict[str, list[tuple[str, float, float, int]]] = {}
    for key, value in data.items():
        if key.startswith("matmul_"):
            _, mode, n, _ = key.split("_")
            work = 2 * int(n) ** 3
            matmul_pts.setdefault(mode, []).append((key, work, work / (value * 1e12)))
        elif key.startswith("conv_"):
            mode, work, depth = _conv_flops(key)
            conv_pts.setdefault(mode, []).append((key, work, work / (value * 1e12), depth))

    loo: dict[str, float] = {}
    for mode, pts in matmul_pts.items():
        for i, (key, work, _t) in enumerate(pts):
            rest = pts[:i] + pts[i + 1:]
            curve, _ = fit_curve([p[1] for p in rest], [p[2] for p in rest])
            loo[key] = curve.achieved(work) / 1e12
    for mode, pts in conv_pts.items():
        lat = DEFAULT_MATMUL["tf32" if mode == "fp32" else mode][1]
        for i, (key, work, _t, depth) in enumerate(pts):
            rest = pts[:i] + pts[i + 1:]
            curve, _ = fit_curve([p[1] for p in rest], [p[2] for p in rest], fixed_latency=lat,
                                 depth=[p[3] for p in rest])
            loo[key] = curve.achieved(work, depth) / 1e12

    rows = []
    for key, measured in data.items():
        if key.startswith("matmul_"):
            _, mode, n, _ = key.split("_")
            work = 2 * int(n) ** 3
            pred = prof.compute_curve("matmul", mode).achieved(work) / 1e12
            naive = h200.peak_tflops(mode)
            group = f"matmul {mode}"
        elif key.startswith("conv_"):
            mode, work, depth = _conv_flops(key)
            pred = prof.compute_curve("conv", mode).achieved(work, depth) / 1e12
            naive = h200.peak_tflops(mode)  # a FLOP count / fp32 datasheet estimate
            group = f"conv {mode}"
        elif key == "copy_GBps_read_plus_write":
            pred = prof.memory.achieved(2 * 2**30) / 1e9
            naive = h200.mem_bandwidth_gb_s
            group = "copy"
        elif key == "eager_small_op_us":
            pred = prof.dispatch_s * 1e6
            naive = None
            group = "dispatch"
        else:
            continue
        rows.append({"point": key, "group": group, "measured": measured, "predicted": pred,
                     "ape": abs(pred - measured) / measured, "loo": loo.get(key),
                     "loo_ape": abs(loo[key] - measured) / measured if key in loo else None,
                     "naive": naive, "naive_ape": abs(naive - measured) / measured if naive else None})

    def summary(sel: list[dict], col: str) -> dict[str, float]:
        xs = [r[col] for r in sel if r[col] is not None]
        return {"n": len(xs), "median": statistics.median(xs), "p90": _p90(xs)} if xs else {"n": 0}

    groups = sorted({r["group"] for r in rows})
    out = {"profile": prof.name, "derived_from": prof.properties.get("derived_from"), "rows": rows,
           "summary": {g: {c: summary([r for r in rows if r["group"] == g], c) for c in ("ape", "loo_ape", "naive_ape")}
                       for g in groups + ["all"]} }
    out["summary"]["all"] = {c: summary(rows, c) for c in ("ape", "loo_ape", "naive_ape")}
    if args.json:
        print(json.dumps(out, indent=1))
        return
    print(f"{prof.name}, derived from {prof.properties.get('derived_from')}")
    print(f"{'point':<42} {'measured':>9} {'datasheet':>9} {'APE':>6} {'LOO':>8} {'APE':>6} {'naive':>8} {'APE':>6}")
    for r in rows:
        loo_s = f"{r['loo']:8.1f} {r['loo_ape']:6.1%}" if r["loo"] is not None else f"{'':8} {'':6}"
        naive_s = f"{r['naive']:8.1f} {r['naive_ape']:6.1%}" if r["naive"] is not None else f"{'':8} {'':6}"
        print(f"{r['point']:<42} {r['measured']:9.1f} {r['predicted']:9.1f} {r['ape']:6.1%} {loo_s} {naive_s}")
    print()
    print(f"{'group':<14} {'n':>3} {'median APE':>11} {'p90 APE':>8} {'LOO med':>8} {'LOO p90':>8} "
          f"{'naive med':>10} {'naive p90':>10}")
    for g in groups + ["all"]:
        s = out["summary"][g]

        def f(c: str, k: str) -> str:
            return f"{s[c][k]:.1%}" if s[c]["n"] else "-"

        print(f"{g:<14} {s['ape']['n']:>3} {f('ape', 'median'):>11} {f('ape', 'p90'):>8} {f('loo_ape', 'median'):>8} "
              f"{f('loo_ape', 'p90'):>8} {f('naive_ape', 'median'):>10} {f('naive_ape', 'p90'):>10}")


if __name__ == "__main__":
    main()
