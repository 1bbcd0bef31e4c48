"""How much the learned correction helps: analytic vs corrected step time, cross-validated. Asserts nothing.

    python benchmarks/residual.py [--cache FILE] [--trees N] [--seeds N]

Tables (the numbers of ``traincost evaluate``):

1. **Cross-validation on the committed training datasets** (``data/datasets/``): the CPU datasets
   (three sweeps of the same configurations, combined as ``traincost fit`` combines them: one sample per
   configuration, labelled with the median of its three measurements; the last columns judge the same
   out-of-fold predictions against every single run; ``cpu (each row)`` fits each run as its own row), the H200
   families datasets of two hosts and all together, each with leave-one-family-out (``family``) and
   leave-architectures-out in 5 grouped folds (``architecture``): median / p90 absolute percentage error
   of the analytic model and of the corrected one, and the coverage of the 80 % / 90 % intervals (each
   held-out fold's interval from the other folds' residuals, widened as ``predict`` widens it).
1b. **Leave one CPU out**; 1c. **leave one H200 host out** (the residual of one host on the other's rows);
1d. **CPU leave-one-family-out over seeds** of the residual's row and column subsampling (``--seeds``, 6): one
   seed's median moves by a few tenths of a point, so a target near the line is judged on the mean.
2. **Per family**, leave-one-family-out.
3. **Held-out validation** (never trained on): ``benchmarks/data/h200-models-*.csv`` (torchvision models on
   the H200) scored with the shipped ``h200.json`` and ``all.json``; ``benchmarks/data/cpu-measured-*.csv``
   (torchvision and family models on this CPU) with the shipped ``cpu-2core-x86_64.json`` and ``all.json``.

Every row is walked and priced with the current code (minutes on 2 cores); ``--cache`` keeps the features
of rows already walked by the same code (default: a file in the temporary directory).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT / "data" / "datasets"
BENCH = ROOT / "benchmarks" / "data"
#: Three sweeps of the same 861 configurations on the AMD EPYC build machine, hours apart (2026-11-28 21:25,
#: 2026-11-29 01:13, 2026-11-29 02:57 with --min-time 0.5).
CPU = tuple(sorted(DATASETS.glob("cpu-2core-x86_64*.csv")))
#: The same 861 configurations three times on a second CPU, an Intel Xeon (AMX) build machine, 2026-12-04.
INTEL = tuple(sorted(DATASETS.glob("cpu-intel-xeon-2core*.csv")))
#: The H200 families on two lent H200 machines: 1616 configurations on 2026-11-28 (profile h200.json), 114 seed
#: and 371 random ones on 2026-12-04 (profile h200-2026-12-04.json: the same GPU, a 1.5x slower host dispatch).
H200 = tuple(sorted(DATASETS.glob("h200-families-*.csv")))


def _pct(s: dict[str, float]) -> str:
    return f"{s['median_ape']:6.1f} {s['p90_ape']:6.1f}"


def _cov(c: dict[str, float] | None) -> str:
    if not c:
        return "     -      -"
    return f"{100 * c.get('0.8', float('nan')):5.1f}% {100 * c.get('0.9', float('nan')):5.1f}%"


def _header() -> None:
    print(f"{'data':<22} {'split':<13} {'n':>5}  {'analytic med p90':>16}  {'corrected med p90':>17}  "
          f"{'cover 80% 90%':>14}  {'runs':>5} {'single-run corrected':>20}")


def _line(name: str, rep: dict) -> None:
    single = rep.get("single_measurements") or {}
    runs = (f"{single['n']:>5} {_pct(single['corrected']):>20}" if single and single["n"] != rep["n"] else "")
    print(f"{name:<22} {rep['split']:<13} {rep['n']:>5}  {_pct(rep['analytic']):>16}  {_pct(rep['corrected']):>17}  "
          f"{_cov(rep['interval_coverage']):>14}  {runs}")


def _concat(a, b):
    """Two frames as one (rows of both, their datasets and devices)."""
    import pandas as pd

    from traincost.sweeps.fit import Frame

    return Frame(pd.concat([a.X, b.X], ignore_index=True), np.concatenate([a.y, b.y]),
                 pd.concat([a.meta, b.meta], ignore_index=True), [], a.datasets + b.datasets, a.devices + b.devices)


def _cpu_measured_as_dataset(path: Path, out: Path, profile_name: str) -> Path:
    """``benchmarks/data/cpu-measured-*.csv`` (accuracy.py's own columns) as a bench-schema dataset of the
    shipped profile ``profile_name`` (the one calibrated on the CPU model that measured it)."""
    import csv

    from traincost.sweeps.bench import FIELDS, write_dataset

    rows = []
    with path.open(newline="") as fh:
        for i, r in enumerate(csv.DictReader(fh)):
            spec = json.loads(r["spec"])
            rows.append({**{f: "" for f in FIELDS}, "schema_version": "1", "config_key": f"cpu-measured-{i}",
                         "family": spec.get("model", ""), "model": r["model"], "spec": r["spec"],
                         "batch_size": r["batch_size"], "precision": r["precision"],
                         "channels_last": r["channels_last"], "optimizer": r["optimizer"], "status": r["status"],
                         "median_ms": r["median_ms"], "device": profile_name, "profile_name": profile_name})
    write_dataset(rows, out)
    return out


def lofo_seed_medians(frame, params: dict, seeds: int) -> list[float]:
    """The leave-one-family-out corrected median APE of ``frame`` for each of ``seeds`` seeds of the residual's
    subsampling (``random_state`` 0..seeds-1)."""
    from traincost.sweeps.fit import evaluate

    return [evaluate(frame, "family", params={**params, "random_state": seed})[0]["corrected"]["median_ape"]
            for seed in range(seeds)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "traincost-residual-features.csv"),
                        help="feature cache CSV (rows walked by the same code are not walked again)")
    parser.add_argument("--trees", type=int, default=300, help="boosting rounds of the cross-validated models")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=6,
                        help="seeds of the residual's subsampling for table 1d (CPU leave-one-family-out)")
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")

    from accuracy import (  # this folder: the CPU measurement files and their profiles
        _cpu_files,
        _cpu_profile,
    )

    from traincost.correction.artifacts import shipped_dir
    from traincost.correction.estimator import load
    from traincost.correction.select import select_residual
    from traincost.sweeps.fit import (
        build_frame,
        combine_repeats,
        evaluate,
        fit_model,
    )

    params = {"n_estimators": args.trees}
    cpu_rows = build_frame(list(CPU), processes=args.processes, cache=args.cache)
    frames = {"cpu-2core-x86_64": combine_repeats(cpu_rows), "cpu (each row)": cpu_rows}
    if INTEL:
        frames["cpu-intel-xeon-2core"] = combine_repeats(build_frame(list(INTEL), processes=args.processes,
                                                                     cache=args.cache))
        frames["both cpus"] = _concat(frames["cpu-2core-x86_64"], frames["cpu-intel-xeon-2core"])
    frames["h200-families"] = combine_repeats(build_frame(list(H200), processes=args.processes, cache=args.cache))
    cpus = frames.get("both cpus", frames["cpu-2core-x86_64"])
    frames["all (cross-device)"] = _concat(cpus, frames["h200-families"])

    print("== 1. Cross-validation on the training datasets (median / p90 absolute % error) ==")
    _header()
    family_reports = {}
    for name, fr in frames.items():
        several_devices = fr.meta["device"].nunique() > 1
        for split in ("family", "architecture"):
            rep, _ = evaluate(fr, split, params=params)
            _line(name, rep)
            if split == "family":
                family_reports[name] = rep
            if several_devices:  # the rows of each device within this split's folds
                for dev, r in rep["per_device"].items():
                    print(f"{'  ' + dev[:20]:<22} {split:<13} {r['n']:>5}  {_pct(r['analytic']):>16}  "
                          f"{_pct(r['corrected']):>17}")

    if INTEL:
        print("\n== 1b. Leave one CPU out: the cross-device model of one CPU's sweeps + the H200, on the other CPU ==")
        print("(as predict corrects a calibrated CPU outside the training data: its own profile, the nearest trained "
              "CPU's device features, the trained intervals)")
        _header()
        pairs = (("cpu-2core-x86_64", "cpu-intel-xeon-2core"), ("cpu-intel-xeon-2core", "cpu-2core-x86_64"))
        for train, test in pairs:
            model, _ = fit_model(_concat(frames[train], frames["h200-families"]), params)
            rep, _ = evaluate(frames[test], model=model)
            _line(f"{test[:12]} <- {train[:7]}", {**rep, "split": "other cpu"})

    h200 = frames["h200-families"]
    hosts = sorted(set(h200.meta["device"]))
    if len(hosts) > 1:
        print("\n== 1c. Leave one H200 host out: the H200 residual of one host's rows, on the other host's rows ==")
        print("(each host's rows priced with its own calibrated profile; as predict corrects a newly calibrated host)")
        _header()
        for test in hosts:
            held = (h200.meta["device"] == test).to_numpy()
            model, _ = fit_model(h200.subset(np.flatnonzero(~held)), params)
            rep, _ = evaluate(h200.subset(np.flatnonzero(held)), model=model)
            _line(f"{test[-22:]}", {**rep, "split": "other host"})

    print(f"\n== 1d. CPU leave-one-family-out over {args.seeds} seeds of the residual's subsampling "
          "(random_state 0..N-1) ==")
    print(f"{'data':<22} {'corrected median APE: mean':>27} {'sd':>5} {'min':>6} {'max':>6}   per seed")
    for name in ("cpu-2core-x86_64", "cpu-intel-xeon-2core"):
        if name not in frames:
            continue
        meds = lofo_seed_medians(frames[name], params, args.seeds)
        print(f"{name:<22} {np.mean(meds):>27.2f} {np.std(meds):>5.2f} {min(meds):>6.2f} {max(meds):>6.2f}   "
              + " ".join(f"{m:.2f}" for m in meds))

    print("\n== 2. Leave-one-family-out, per family ==")
    print(f"{'data':<22} {'family':<13} {'n':>5}  {'analytic med p90':>16}  {'corrected med p90':>17}")
    for name, rep in family_reports.items():
        for fam, r in rep["per_family"].items():
            print(f"{name:<22} {fam:<13} {r['n']:>5}  {_pct(r['analytic']):>16}  {_pct(r['corrected']):>17}")

    print("\n== 3. Held-out validation: shipped models on measurements never trained on ==")
    _header()
    held = []
    for path in sorted(BENCH.glob("h200-models-*.csv"))[-1:]:
        held.append((path.name, path, ("h200.json", "all.json")))
    tmp = Path(tempfile.mkdtemp(prefix="traincost-residual-"))
    for device, path in _cpu_files().items():       # the newest measurement file of each CPU model
        profile = _cpu_profile(device)
        if profile is None:
            continue
        own, _why = select_residual(profile)
        models = tuple(dict.fromkeys([Path(own.metadata_["path"]).name, "all.json"] if own else ["all.json"]))
        held.append((path.name, _cpu_measured_as_dataset(path, tmp / path.name, profile.name), models))
    for name, path, models in held:
        fr = build_frame([path], processes=args.processes, cache=args.cache)
        for model_name in models:
            model_path = shipped_dir() / model_name
            if not model_path.is_file():
                print(f"{name[:22]:<22} {model_name}: not shipped")
                continue
            rep, _ = evaluate(fr, model=load(model_path))
            rep = {**rep, "split": model_name[:13]}
            _line(name[:22], rep)
        if len(fr.skipped):
            print(f"  ({len(fr.skipped)} rows skipped: {fr.skipped[0][:100]})")
    print("\nsplit 'family': one fold per family; 'architecture': 5 folds of whole architectures (spec JSON); "
          "held-out rows: the shipped model as is. Coverage: share of measured steps inside the interval.")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
