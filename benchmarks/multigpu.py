"""How accurate the data-parallel model is: multi-GPU rows of the public throughput table. Asserts nothing.

    python benchmarks/multigpu.py

Rows: ``data/reference/throughput_public.csv`` with 4 to 32 GPUs (NVIDIA DeepLearningExamples READMEs
and Oneflow-Inc/DLPerf) whose model, GPU, precision and per-GPU batch map the way ``benchmarks/accuracy.py``'s
public section maps them (its helpers are imported, not copied). Each is predicted from the GPU's
*datasheet* profile: one walk per (model, batch, precision, layout), the single-GPU step priced as
``accuracy.py`` does, then :func:`traincost.pricing.parallel.data_parallel` (DDP buckets, ring all-reduce over the
GPU's NVLink/PCIe link, the network between nodes, overlap with backward).

Topology per row (from the sources, not fitted):

* DLPerf: "N node(s) x 8 GPUs"; 8x V100-SXM2-16GB per node, one InfiniBand EDR 100 Gb/s NIC per node
  (DLPerf ``NVIDIADeepLearningExamples/README.md``: "InfiniBand 100 Gb/sec (4X EDR)", one ``mlx5_0``).
* DLE on DGX A100: 8 GPUs per node; more GPUs = more DGX A100 nodes, 8 HDR 200 Gb/s compute NICs each
  (DGX A100 datasheet) -> ``8x ib-hdr``.
* DLE on DGX-1 (V100 SXM2): 8 GPUs, one node. DLE on DGX-2 (V100 SXM3, mapped to the catalog's SXM2 32GB as
  ``accuracy.py`` does): 16 GPUs in ONE node over NVSwitch (predicted as one 16-GPU NVLink 2 domain).

Errors: throughput (images/s over all GPUs) predicted / measured - 1; the median and p90 of |error| (APE).
Scaling efficiency (throughput on G / (G x the same source's 1-GPU row at the same model, GPU, precision
and per-GPU batch)) where that 1-GPU row exists: predicted vs measured, in points and as APE. For contrast
the same rows with no communication at all (G x the single-GPU prediction). No constant is fitted on these
rows: link rates and factors come from ``traincost/data/links.csv`` (datasheets + public nccl-tests runs).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


def _accuracy_module() -> Any:
    """``benchmarks/accuracy.py`` as a module (its public-row helpers: model, GPU and precision mapping)."""
    spec = importlib.util.spec_from_file_location("traincost_bench_accuracy", HERE / "accuracy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


acc = _accuracy_module()


def _nodes_and_network(row: pd.Series, gpus: int) -> tuple[int, str | None, str]:
    """(nodes, network, topology label) of a multi-GPU row, from its source and notes."""
    notes = str(row.get("notes", ""))
    gpu = str(row["gpu"])
    m = re.search(r"(\d+) node\(s\) x (\d+) GPUs", notes)
    if m:
        nodes = int(m.group(1))
        return nodes, ("ib-edr" if nodes > 1 else None), f"{nodes}x{m.group(2)} DLPerf"
    if "DGX-2" in gpu:
        return 1, None, f"1x{gpus} DGX-2"
    if "DGX A100" in gpu and gpus > 8:
        return gpus // 8, "8x ib-hdr", f"{gpus // 8}x8 DGX A100"
    return 1, None, f"1x{gpus}"


def _measured_one_gpu(frame: pd.DataFrame, row: pd.Series) -> float | None:
    """Throughput of the same source's 1-GPU row with the same model, GPU, precision and per-GPU batch (the
    closest one listed before this row)."""
    same = frame[(frame["num_gpus"] == 1) & (frame["source"] == row["source"])
                 & (frame["source_ref"] == row["source_ref"]) & (frame["model"] == row["model"])
                 & (frame["gpu"] == row["gpu"]) & (frame["precision"] == row["precision"])
                 & (frame["batch_size_per_gpu"] == row["batch_size_per_gpu"])
                 & (frame["unit"] == row["unit"])]
    before = same[same["row_id"] < row["row_id"]]
    pick = before if len(before) else same
    if not len(pick):
        return None
    return float(pick.sort_values("row_id").iloc[-1]["throughput"])


def predict_rows() -> tuple[pd.DataFrame, dict[str, int]]:
    from traincost import resolve
    from traincost.flopmodel.count import count
    from traincost.hardware.store import profile_for
    from traincost.pricing.optable import OpTable
    from traincost.pricing.parallel import data_parallel, fabric_for, grad_events
    from traincost.pricing.timeline import price

    frame = pd.read_csv(acc.PUBLIC)
    rows = frame[(frame["num_gpus"] >= 4) & (frame["num_gpus"] <= 32)]
    walks: dict[tuple, Any] = {}
    out, skipped = [], {}
    for _, r in rows.iterrows():
        why, mapped = acc.public_row(r, units=("images/s",), skip_uncertain=True)
        if why:
            skipped[why] = skipped.get(why, 0) + 1
            continue
        model, gpu, (precision, cl), batch = mapped
        gpus = int(r["num_gpus"])
        key = (model, batch, precision, cl)
        if key not in walks:
            spec = resolve(model[0], input_shape=model[1])
            walk = count(spec, batch_size=batch, precision=precision, channels_last=cl, optimizer="sgd").walk
            walks[key] = (OpTable.from_walk(walk), grad_events(walk.records))
        table, grads = walks[key]
        profile = profile_for(gpu)
        pricing = price(table, profile)
        nodes, network, topo = _nodes_and_network(r, gpus)
        fabric = fabric_for(profile, gpus=gpus, nodes=nodes, network=network)
        dp = data_parallel(table, pricing, fabric, grads)
        measured = float(r["throughput"])
        one = _measured_one_gpu(frame, r)
        out.append({
            "row": int(r["row_id"]), "source": "DLPerf" if "DLPerf" in str(r["source"]) else "DLE",
            "model": acc.short_label(str(r["model"]).replace(" (NVIDIA DLE)", " DLE"), 30), "gpu": gpu,
            "precision": precision + ("+cl" if cl else ""), "batch": batch, "gpus": gpus, "topology": topo,
            "link": fabric.intra_link + (f"+{fabric.network}" if fabric.network else ""),
            "measured": measured, "predicted": gpus * batch / (dp.step_ms / 1e3),
            "no_comm": gpus * batch / (dp.single_step_ms / 1e3),
            "allreduce_ms": dp.allreduce_ms, "exposed_ms": dp.exposed_comm_ms, "step_ms": dp.step_ms,
            "eff_pred": dp.scaling_efficiency, "eff_meas": measured / (gpus * one) if one else math.nan,
        })
    res = pd.DataFrame(out)
    res["err_pct"] = (res["predicted"] / res["measured"] - 1) * 100
    res["no_comm_err_pct"] = (res["no_comm"] / res["measured"] - 1) * 100
    res["eff_err_pts"] = (res["eff_pred"] - res["eff_meas"]) * 100
    res["eff_ape"] = (res["eff_pred"] / res["eff_meas"] - 1) * 100
    return res, skipped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    res, skipped = predict_rows()
    print("== Multi-GPU public rows (4-32 GPUs), datasheet profiles + the data-parallel model ==")
    print("left out: " + (", ".join(f"{k} ({v})" for k, v in sorted(skipped.items())) or "none"))
    acc.print_table(res, [
        ("row", "row", "d"), ("source", "source", ""), ("model", "model", ""), ("gpu", "gpu", ""),
        ("precision", "prec", ""), ("batch", "b/GPU", "d"), ("gpus", "G", "d"), ("topology", "nodes", ""),
        ("link", "links", ""), ("measured", "measured img/s", ".0f"), ("predicted", "predicted", ".0f"),
        ("err_pct", "error %", "+.1f"), ("allreduce_ms", "allreduce ms", ".2f"), ("exposed_ms", "exposed ms", ".2f"),
        ("eff_meas", "eff meas", ".3f"), ("eff_pred", "eff pred", ".3f"), ("eff_err_pts", "eff err pts", "+.1f")])
    print()
    med, p90 = acc.ape_summary(res["err_pct"])
    print(f"throughput, {len(res)} rows: median APE {med:.1f} %, p90 APE {p90:.1f} %, median signed "
          f"{res['err_pct'].median():+.1f} %")
    med0, p900 = acc.ape_summary(res["no_comm_err_pct"])
    print(f"  same rows, no communication (G x one GPU): median APE {med0:.1f} %, p90 APE {p900:.1f} %")
    for key, part in res.groupby("source"):
        m, p = acc.ape_summary(part["err_pct"])
        print(f"  source={key}: rows {len(part)}, median APE {m:.1f} %, p90 APE {p:.1f} %, "
              f"median signed {part['err_pct'].median():+.1f} %")
    for key, part in res.groupby("gpus"):
        m, p = acc.ape_summary(part["err_pct"])
        print(f"  G={key}: rows {len(part)}, median APE {m:.1f} %, p90 APE {p:.1f} %")
    eff = res[np.isfinite(res["eff_meas"])]
    if len(eff):
        m, p = acc.ape_summary(eff["eff_ape"])
        pts = eff["eff_err_pts"].abs()
        print(f"scaling efficiency, {len(eff)} rows with the same source's 1-GPU row: median APE {m:.1f} %, "
              f"p90 APE {p:.1f} %; |error| median {pts.median():.1f} points, p90 {np.percentile(pts, 90):.1f} "
              f"points; measured median {eff['eff_meas'].median():.3f} (range {eff['eff_meas'].min():.3f}-"
              f"{eff['eff_meas'].max():.3f}), predicted median {eff['eff_pred'].median():.3f}")
        for by in ("source", "precision"):
            for key, part in eff.groupby(by):
                m, p = acc.ape_summary(part["eff_ape"])
                print(f"  {by}={key}: rows {len(part)}, efficiency median APE {m:.1f} %, p90 APE {p:.1f} %, "
                      f"measured median {part['eff_meas'].median():.3f}, predicted median "
                      f"{part['eff_pred'].median():.3f}")


if __name__ == "__main__":
    main()
