"""Insights: what drives the measured training-step time of a dataset (``traincost insights``).

The seed project promised "correlations between model parameters and training time" and drew one-factor
line plots; this module computes them from a measured dataset (:mod:`traincost.calibrate.bench` CSV, either
schema) and writes a report:

- :func:`load_frame`: the ``ok`` rows as one numeric frame: the measured step time (``measured_ms``), the
  family parameters from the spec JSON (lists such as ResNet's ``blocks`` become their total and a
  ``stages`` count, booleans 0/1, ``block`` a ``bottleneck`` indicator), the step configuration
  (``batch_size``, ``low_precision`` = bf16/fp16 autocast, ``channels_last``, ``adam`` = adam/adamw) and the
  walk's counted features (FLOPs, bytes, ops, parameters, peak memory).
- :func:`correlation_table`: Pearson, Pearson on log scales and Spearman of every feature with a target,
  overall and per family (constant and too-sparse columns dropped).
- :func:`one_factor_series`: the seed's one-factor-at-a-time grids (``sweep`` = ``seed:<family>:<factor>``,
  the ``seed:<family>:base`` row added to every factor) as (x, measured, predicted) series.
- :func:`accuracy_table`, :func:`importance_table`, :func:`contribution_table`: prediction error and the
  residual model's importances and mean XGBoost ``pred_contribs``.
- :func:`build_report`: PNGs (matplotlib, Agg canvas, imported lazily) and one self-contained
  ``report.html`` (PNGs as base64 data URIs, no external resource) with a reading generated from the numbers.

The library never prints; errors are :mod:`traincost.errors` exceptions.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from traincost.errors import TraincostError, TraincostUsageError

__all__ = ["COUNTED_FEATURES", "STEP_FEATURES", "ReportResult", "accuracy_table", "add_predictions",
           "build_report", "contribution_table", "correlation_table", "feature_kinds", "importance_table",
           "load_frame", "marginal_series", "one_factor_series", "one_factor_summary", "reading", "top_correlations"]

#: The walk's counted features (dataset columns, plus derived totals), in display order.
COUNTED_FEATURES = ["flops_total", "flops_forward", "flops_backward", "flops_optimizer", "bytes_total",
                    "bytes_read", "bytes_written", "flops_per_byte", "ops", "params", "predicted_peak_bytes"]
#: The step configuration as numbers.
STEP_FEATURES = ["batch_size", "low_precision", "channels_last", "adam"]
_NUMERIC_COLUMNS = ["median_ms", "analytic_ms", "batch_size", "params", "flops_forward", "flops_backward",
                    "flops_optimizer", "bytes_read", "bytes_written", "ops", "predicted_peak_bytes",
                    "measured_peak_bytes"]
#: Columns of the frame that are not features.
_META = {"dataset", "config_key", "corrected_cv_ms", "device", "family", "sweep", "spec", "precision", "optimizer", "profile_name",
         "measured_ms", "stored_analytic_ms", "analytic_ms", "corrected_ms", "log_error"}
GROUP_ALL = "all"
FAMILY_ORDER = ("fc", "vgg", "resnet", "inception")
BAND = 0.10


# ------------------------------------------------------------------------------------------- loading


def _spec_features(spec_json: str) -> tuple[str, dict[str, float]]:
    """(family, numeric family parameters) of one ``spec`` cell; ``("", {})`` when unreadable."""
    try:
        spec = json.loads(spec_json)
        family = str(spec.get("model", ""))
        params = spec.get("params") or {}
    except (json.JSONDecodeError, AttributeError, TypeError):
        return "", {}
    out: dict[str, float] = {}
    for name, value in params.items():
        if isinstance(value, (int, float)):  # bools too: 0/1
            out[name] = float(value)
        elif isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value):
            out[name] = float(sum(value))  # resnet blocks per stage -> residual blocks in all
            out["stages"] = float(len(value))
        elif name == "block" and isinstance(value, str):
            out["bottleneck"] = float(value == "bottleneck")
    return family, out


def load_frame(paths: Sequence[str | Path]) -> pd.DataFrame:
    """The ``ok`` rows of dataset CSVs (bench schema or the precursor's columns) as one numeric frame.

    Columns: ``dataset`` (file name), ``config_key``, ``device``, ``family``, ``sweep``, ``spec``, ``measured_ms`` (median step),
    ``stored_analytic_ms`` (the analytic prediction at measurement time; NaN when the file has none),
    :data:`STEP_FEATURES`, :data:`COUNTED_FEATURES` and the family parameters. Raises
    :class:`~traincost.errors.TraincostUsageError` (via ``read_dataset``) for a missing or foreign file and
    when no row is ``ok`` with a positive time.
    """
    from traincost.calibrate.bench import STATUS_OK, read_dataset

    if not paths:
        raise TraincostUsageError("insights needs at least one dataset (--dataset FILE.csv)")
    records: list[dict[str, Any]] = []
    for path in paths:
        rows = read_dataset(path)
        kept = 0
        for row in rows:
            if row["status"] != STATUS_OK:
                continue
            family, params = _spec_features(row["spec"])
            rec: dict[str, Any] = {"dataset": Path(path).name, "config_key": row["config_key"],
                                   "device": row["device"] or "unknown",
                                   "family": row["family"] or family, "sweep": row["sweep"], "spec": row["spec"],
                                   "precision": row["precision"], "optimizer": row["optimizer"],
                                   "channels_last": float(row["channels_last"].strip().lower() == "true"),
                                   "profile_name": row["profile_name"]}
            for col in _NUMERIC_COLUMNS:
                rec[col] = pd.to_numeric(row[col], errors="coerce")
            rec.update(params)
            records.append(rec)
            kept += 1
        if kept == 0:
            raise TraincostUsageError(f"{path}: no 'ok' rows to analyse ({len(rows)} rows in all)")
    frame = pd.DataFrame.from_records(records)
    frame = frame.rename(columns={"median_ms": "measured_ms", "analytic_ms": "stored_analytic_ms"})
    frame = frame[np.isfinite(frame["measured_ms"]) & (frame["measured_ms"] > 0)].reset_index(drop=True)
    if frame.empty:
        raise TraincostUsageError("no 'ok' row with a positive measured time in " + ", ".join(map(str, paths)))
    frame["low_precision"] = frame["precision"].isin(["bf16", "fp16"]).astype(float)
    frame["adam"] = frame["optimizer"].isin(["adam", "adamw"]).astype(float)
    frame["flops_total"] = frame["flops_forward"] + frame["flops_backward"] + frame["flops_optimizer"]
    frame["bytes_total"] = frame["bytes_read"] + frame["bytes_written"]
    frame["flops_per_byte"] = frame["flops_total"] / frame["bytes_total"].where(frame["bytes_total"] > 0)
    frame = frame.drop(columns=["measured_peak_bytes"])
    return frame


def feature_kinds(frame: pd.DataFrame) -> dict[str, str]:
    """Feature column -> ``counted``, ``step`` or ``architecture`` (family parameters), in display order."""
    kinds = {c: "counted" for c in COUNTED_FEATURES if c in frame}
    kinds.update({c: "step" for c in STEP_FEATURES if c in frame})
    for col in frame.columns:
        if col not in kinds and col not in _META and pd.api.types.is_numeric_dtype(frame[col]):
            kinds[col] = "architecture"
    return kinds


# ----------------------------------------------------------------------------------- correlations


def _groups(frame: pd.DataFrame, by: str | None) -> list[tuple[str, pd.DataFrame]]:
    out = [(GROUP_ALL, frame)]
    if by is not None and by in frame:
        names = sorted(frame[by].dropna().unique(), key=lambda f: (FAMILY_ORDER.index(f)
                                                                   if f in FAMILY_ORDER else 99, f))
        out += [(str(n), frame[frame[by] == n]) for n in names]
    return out


def _log_or_raw(col: pd.Series) -> pd.Series:
    """log10 of a strictly positive, non-binary column; the column itself otherwise."""
    values = col.dropna()
    if len(values) and (values > 0).all() and values.nunique() > 2:
        return np.log10(col)
    return col


def correlation_table(frame: pd.DataFrame, target: str = "measured_ms", features: Iterable[str] | None = None,
                      by: str | None = "family", min_rows: int = 5) -> pd.DataFrame:
    """Correlation of each feature with ``target``, overall (group ``all``) and per ``by`` group.

    Columns: ``group``, ``feature``, ``kind``, ``n`` (rows with both values), ``pearson``, ``pearson_log``
    (Pearson of log10 target against log10 feature where the feature is positive and not binary, the raw
    feature otherwise) and ``spearman``. A feature is left out of a group when it is constant there, has
    fewer than ``min_rows`` values, or (group ``all``) is missing from some rows (a family's own parameter).
    """
    if target not in frame:
        raise TraincostUsageError(f"no column {target!r} to correlate with")
    kinds = feature_kinds(frame)
    names = [f for f in (features if features is not None else kinds) if f in frame and f != target]
    rows: list[dict[str, Any]] = []
    for group, sub in _groups(frame, by):
        sub = sub[np.isfinite(sub[target].astype(float))]
        for name in names:
            pair = sub[[name, target]].dropna()
            if len(pair) < min_rows or pair[name].nunique() <= 1 or pair[target].nunique() <= 1:
                continue
            if group == GROUP_ALL and by is not None and sub[name].isna().any():
                continue
            x, y = pair[name].astype(float), pair[target].astype(float)
            logy = _log_or_raw(y) if target != "log_error" else y
            rows.append({"group": group, "feature": name, "kind": kinds.get(name, "other"), "n": len(pair),
                         "pearson": float(x.corr(y, method="pearson")),
                         "pearson_log": float(_log_or_raw(x).corr(logy, method="pearson")),
                         "spearman": float(x.corr(y, method="spearman"))})
    return pd.DataFrame(rows, columns=["group", "feature", "kind", "n", "pearson", "pearson_log", "spearman"])


def top_correlations(table: pd.DataFrame, group: str = GROUP_ALL, k: int = 10,
                     method: str = "spearman", kind: str | None = None) -> pd.DataFrame:
    """The ``k`` rows of one group with the largest ``|method|``, strongest first."""
    sub = table[table["group"] == group]
    if kind is not None:
        sub = sub[sub["kind"] == kind]
    sub = sub.dropna(subset=[method])
    return sub.reindex(sub[method].abs().sort_values(ascending=False).index).head(k).reset_index(drop=True)


# ----------------------------------------------------------------------------------- one factor


def one_factor_series(frame: pd.DataFrame) -> pd.DataFrame:
    """The seed's one-factor grids: rows ``family, factor, x, measured_ms`` (+ predictions present), sorted.

    A grid is the rows whose ``sweep`` is ``seed:<family>:<factor>`` plus the family's ``seed:<family>:base``
    row (the other factors at the base). Empty frame when the dataset has no seed sweeps.
    """
    cols = ["family", "factor", "x", "measured_ms"] + [c for c in ("analytic_ms", "stored_analytic_ms",
                                                                  "corrected_ms") if c in frame]
    sweeps = frame["sweep"].fillna("").astype(str)
    seed = frame[sweeps.str.startswith("seed:")]
    parts: list[pd.DataFrame] = []
    for sweep_name, rows in seed.groupby(sweeps[seed.index], sort=True):
        bits = sweep_name.split(":")
        if len(bits) != 3 or bits[2] == "base":
            continue
        family, factor = bits[1], bits[2]
        column = factor  # a frame column; resnet "blocks" is the total of the per-stage list there
        base = seed[sweeps[seed.index] == f"seed:{family}:base"]
        series = pd.concat([base, rows])
        if column not in series or series[column].isna().all():
            continue
        out = pd.DataFrame({"family": family, "factor": factor, "x": series[column].astype(float).to_numpy()})
        for col in cols[3:]:
            out[col] = series[col].astype(float).to_numpy()
        parts.append(out.sort_values("x", kind="stable"))
    if not parts:
        return pd.DataFrame(columns=cols)
    return pd.concat(parts, ignore_index=True)


def one_factor_summary(series: pd.DataFrame) -> pd.DataFrame:
    """Per (family, factor): x range, measured time at its ends and their ratio (``swing``), strongest first."""
    rows = []
    for (family, factor), s in series.groupby(["family", "factor"], sort=False):
        s = s.sort_values("x")
        first, last = s.iloc[0], s.iloc[-1]
        rows.append({"family": family, "factor": factor, "points": len(s), "x_low": first["x"],
                     "x_high": last["x"], "ms_at_low": first["measured_ms"], "ms_at_high": last["measured_ms"],
                     "swing": last["measured_ms"] / first["measured_ms"],
                     "spearman": float(s["x"].corr(s["measured_ms"], method="spearman"))
                     if s["x"].nunique() > 1 else float("nan")})
    out = pd.DataFrame(rows, columns=["family", "factor", "points", "x_low", "x_high", "ms_at_low", "ms_at_high",
                                      "swing", "spearman"])
    if out.empty:
        return out
    strength = np.abs(np.log(out["swing"].astype(float)))
    return out.reindex(strength.sort_values(ascending=False).index).reset_index(drop=True)


def marginal_series(frame: pd.DataFrame, family: str, bins: int = 6) -> pd.DataFrame:
    """Median step time against each parameter of one family over random samples (the others vary too).

    For datasets without one-factor grids: rows ``family, factor, x`` (the bin's median value), ``n``,
    ``measured_ms`` (median), ``q25_ms``, ``q75_ms`` and ``analytic_ms`` (median, when present). A parameter
    with at most ``bins`` distinct values is grouped by value, else by quantile bins.
    """
    sub = frame[frame["family"] == family]
    kinds = feature_kinds(sub)
    names = [n for n, k in kinds.items() if k == "architecture" and sub[n].notna().all() and sub[n].nunique() > 1]
    if "batch_size" in sub and sub["batch_size"].nunique() > 1:
        names.append("batch_size")
    parts = []
    for name in names:
        x = sub[name].astype(float)
        key = x if x.nunique() <= bins else pd.qcut(x, bins, duplicates="drop")
        grouped = sub.assign(_x=x).groupby(key, observed=True, sort=True)
        part = pd.DataFrame({"x": grouped["_x"].median(), "n": grouped.size(),
                             "measured_ms": grouped["measured_ms"].median(),
                             "q25_ms": grouped["measured_ms"].quantile(0.25),
                             "q75_ms": grouped["measured_ms"].quantile(0.75)})
        if "analytic_ms" in sub and sub["analytic_ms"].notna().any():
            part["analytic_ms"] = grouped["analytic_ms"].median()
        part.insert(0, "factor", name)
        part.insert(0, "family", family)
        parts.append(part.reset_index(drop=True))
    if not parts:
        return pd.DataFrame(columns=["family", "factor", "x", "n", "measured_ms", "q25_ms", "q75_ms"])
    return pd.concat(parts, ignore_index=True)


# ----------------------------------------------------------------------------------- predictions


def _row_profile(device: Any, profile_name: Any) -> Any:
    """The profile a dataset row names (:func:`traincost.calibrate.fit.resolve_row_profile`: its
    ``profile_name``, else its ``device``), or None when there is none."""
    from traincost.calibrate.fit import resolve_row_profile

    row = {"device": str(device), "profile_name": profile_name if isinstance(profile_name, str) else ""}
    try:
        return resolve_row_profile(row)
    except (TraincostError, ValueError):
        return None


def _profiles_by_device(frame: pd.DataFrame) -> dict[str, Any]:
    """Device name -> a profile of that device (its first row's own), to choose the section's residual model
    (absent when there is none)."""
    out: dict[str, Any] = {}
    for device, rows in frame.groupby("device"):
        match = _row_profile(device, rows["profile_name"].iloc[0] if "profile_name" in rows else "")
        if match is not None:
            out[str(device)] = match
    return out


def _recomputed_analytic_ms(frame: pd.DataFrame, progress: Callable[[int, int], None] | None) -> pd.Series:
    """``traincost.predict``'s iteration time of every row on its device's profile (NaN where it fails)."""
    from traincost.flopmodel.arch import ArchSpec
    from traincost.predict import predict

    profiles: dict[tuple[str, str], Any] = {}  # (device, profile_name) -> the row's own profile (hosts differ)
    values = np.full(len(frame), np.nan)
    for i, row in enumerate(frame.itertuples(index=False)):
        name = getattr(row, "profile_name", "")
        key = (str(row.device), name if isinstance(name, str) else "")
        if key not in profiles:
            profiles[key] = _row_profile(*key)
        profile = profiles[key]
        if profile is not None:
            try:
                spec = ArchSpec.from_dict(json.loads(row.spec))
                est = predict(spec, device=profile, batch_size=int(row.batch_size), precision=row.precision,
                              channels_last=bool(row.channels_last), optimizer=row.optimizer)
                values[i] = est.iteration_ms
            except (TraincostError, ValueError, RuntimeError):
                pass
        if progress is not None:
            progress(i + 1, len(frame))
    return pd.Series(values, index=frame.index)


def add_predictions(frame: pd.DataFrame, *, analytic: str = "recompute", values: pd.Series | None = None,
                    progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """A copy of ``frame`` with ``analytic_ms`` and ``log_error`` = ln(measured / analytic).

    ``analytic``: ``recompute`` (``traincost.predict`` of every row with today's model: slow, ~0.1 s a row;
    ``values`` when given, computed elsewhere) or ``stored`` (the dataset's ``analytic_ms`` column, the
    prediction at measurement time; NaN where absent).
    """
    if analytic not in ("recompute", "stored"):
        raise TraincostUsageError(f"analytic must be 'recompute' or 'stored', got {analytic!r}")
    out = frame.copy()
    if values is not None:
        out["analytic_ms"] = np.asarray(values, dtype=float)
    elif analytic == "stored":
        out["analytic_ms"] = out["stored_analytic_ms"]
    else:
        out["analytic_ms"] = _recomputed_analytic_ms(out, progress)
    ok = (out["analytic_ms"] > 0) & np.isfinite(out["analytic_ms"])
    out["log_error"] = np.where(ok, np.log(out["measured_ms"] / out["analytic_ms"].where(ok)), np.nan)
    return out


def accuracy_table(frame: pd.DataFrame, predicted: str, by: str | None = "family") -> pd.DataFrame:
    """Error of column ``predicted`` against ``measured_ms``, overall and per group.

    Columns: ``group``, ``n``, ``median_ape`` and ``p90_ape`` (absolute percentage error, %), ``within_band``
    (% of rows within +-10 %), ``median_ratio`` (measured / predicted).
    """
    rows = []
    if predicted in frame:
        for group, sub in _groups(frame, by):
            pred = sub[predicted].astype(float)
            ok = np.isfinite(pred) & (pred > 0)
            if not ok.any():
                continue
            meas, pred = sub["measured_ms"][ok], pred[ok]
            ape = (pred - meas).abs() / meas * 100
            rows.append({"group": group, "n": int(ok.sum()), "median_ape": float(ape.median()),
                         "p90_ape": float(ape.quantile(0.9)), "within_band": float((ape <= BAND * 100).mean() * 100),
                         "median_ratio": float((meas / pred).median())})
    return pd.DataFrame(rows, columns=["group", "n", "median_ape", "p90_ape", "within_band", "median_ratio"])


# ----------------------------------------------------------------------------------- residual model


def importance_table(model: Any) -> pd.DataFrame:
    """``feature, importance`` of a fitted residual model (``feature_names_``, ``feature_importances_``), sorted."""
    names = list(model.feature_names_)
    values = np.asarray(model.feature_importances_, dtype=float)
    if len(names) != len(values):
        raise TraincostError(f"residual model has {len(names)} feature names but {len(values)} importances")
    table = pd.DataFrame({"feature": names, "importance": values})
    return table.sort_values("importance", ascending=False, kind="stable").reset_index(drop=True)


def contribution_table(contributions: pd.DataFrame) -> pd.DataFrame:
    """Per feature of a ``pred_contribs`` frame (one column per feature + ``bias``): mean |contribution|,
    mean contribution (both in ln(measured/analytic) units) and the share of the total mean |contribution|;
    largest first, ``bias`` left out."""
    cols = [c for c in contributions.columns if c != "bias"]
    values = contributions[cols].astype(float)
    mean_abs = values.abs().mean()
    total = float(mean_abs.sum()) or 1.0
    table = pd.DataFrame({"feature": cols, "mean_abs": mean_abs.to_numpy(), "mean": values.mean().to_numpy(),
                          "share": (mean_abs / total).to_numpy()})
    return table.sort_values("mean_abs", ascending=False, kind="stable").reset_index(drop=True)


# ----------------------------------------------------------------------------------- the reading


def _fmt_num(value: float) -> str:
    if not np.isfinite(value):
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2g}" if abs(value) < 1 else f"{value:.2f}"


def _rho(table: pd.DataFrame, group: str, feature: str, method: str = "spearman") -> float:
    hit = table[(table["group"] == group) & (table["feature"] == feature)]
    return float(hit[method].iloc[0]) if len(hit) else float("nan")


def _strength(rho: float) -> str:
    a = abs(rho)
    return ("very strongly" if a >= 0.9 else "strongly" if a >= 0.7 else "moderately" if a >= 0.4
            else "weakly" if a >= 0.2 else "hardly")


def reading(frame: pd.DataFrame, corr: pd.DataFrame, *, error_corr: pd.DataFrame | None = None,
            one_factor: pd.DataFrame | None = None, accuracy: dict[str, pd.DataFrame] | None = None,
            contributions: pd.DataFrame | None = None, corr_rows: str = "all rows") -> list[str]:
    """Sentences that read the numbers: what orders step time, per family, in the sweeps, and the error.

    Every number comes from the arguments (the tables above); nothing is a fixed conclusion.
    """
    out: list[str] = []
    t = frame["measured_ms"]
    fams = [f for f in FAMILY_ORDER if f in set(frame["family"])] + sorted(set(frame["family"]) - set(FAMILY_ORDER))
    out.append(f"{len(frame)} measured steps ({', '.join(f'{(frame.family == f).sum()} {f}' for f in fams)}) on "
               f"{', '.join(sorted(frame['device'].unique()))}: step time {_fmt_num(t.min())}–{_fmt_num(t.max())} ms "
               f"(median {_fmt_num(t.median())} ms). Correlations use {corr_rows}.")
    counted = top_correlations(corr, GROUP_ALL, k=3, kind="counted")
    if len(counted):
        best = counted.iloc[0]
        others = ", ".join(f"{f} ρ={_rho(corr, GROUP_ALL, f):.2f}" for f in ("flops_total", "bytes_total", "ops",
                                                                          "params") if f != best["feature"]
                           and np.isfinite(_rho(corr, GROUP_ALL, f)))
        out.append(f"Over all families the counted feature that orders step time best is {best['feature']} "
                   f"(Spearman ρ={best['spearman']:.2f}; Pearson r={best['pearson']:.2f} raw, "
                   f"{best['pearson_log']:.2f} on log–log axes, so it explains "
                   f"{best['pearson_log'] ** 2:.0%} of the variance of log step time); {others}. "
                   f"Work counted by the walk orders step time {_strength(best['spearman'])}.")
    step_parts = []
    for feat in STEP_FEATURES:
        overall = _rho(corr, GROUP_ALL, feat)
        within = [r for r in (_rho(corr, fam, feat) for fam in fams) if np.isfinite(r)]
        if not np.isfinite(overall) and not within:
            continue
        text = f"{feat} ρ={overall:.2f} overall" if np.isfinite(overall) else feat
        if within:
            text += (f", {min(within):.2f} to {max(within):.2f} within a family" if len(within) > 1
                     else f", {within[0]:.2f} within its family")
        if len(within) > 1 and np.isfinite(overall) and abs(float(np.median(within)) - overall) > 0.2:
            binary = frame[feat].dropna().isin([0, 1]).all()
            per = frame.groupby("family")[feat].mean() if binary else frame.groupby("family")[feat].median()
            what = "share of rows" if binary else "median"
            text += (" (overall and within-family differ: the families were sampled differently, "
                     f"{what} " + ", ".join(f"{f} {per[f]:.0%}" if binary else f"{f} {per[f]:g}"
                                            for f in fams if f in per) + ")")
        step_parts.append(text)
    if step_parts:
        out.append("Step configuration: " + "; ".join(step_parts) + ".")
    for fam in fams:
        arch = top_correlations(corr, fam, k=50, kind="architecture")
        if arch.empty:
            continue
        top = arch.head(2)
        weak = arch.iloc[-1]
        flops = _rho(corr, fam, "flops_total")
        parts = ", then ".join(f"{r.feature} (ρ={r.spearman:.2f})" for r in top.itertuples())
        out.append(f"{fam}: strongest parameter {parts}; weakest {weak['feature']} (ρ={weak['spearman']:.2f}); "
                   f"FLOPs per step ρ={flops:.2f}.")
    if one_factor is not None and not one_factor.empty:
        summary = one_factor_summary(one_factor)
        big = summary.head(3)
        small = summary.tail(3).iloc[::-1]
        out.append("One-factor sweeps (the seed's grids, other factors at the base): the largest swings are "
                   + "; ".join(f"{r.family} {r.factor} ×{r.swing:.1f} ({r.x_low:g}→{r.x_high:g}: "
                               f"{_fmt_num(r.ms_at_low)}→{_fmt_num(r.ms_at_high)} ms)" for r in big.itertuples())
                   + "; the smallest " + "; ".join(f"{r.family} {r.factor} {100 * (r.swing - 1):+.0f} %"
                                                   for r in small.itertuples()) + ".")
    for label, acc in (accuracy or {}).items():
        if acc.empty:
            continue
        a = acc[acc["group"] == GROUP_ALL].iloc[0]
        per = acc[acc["group"] != GROUP_ALL]
        worst = per.sort_values("median_ape").iloc[-1] if len(per) else None
        out.append(f"{label}: median error {a.median_ape:.1f} % (p90 {a.p90_ape:.1f} %), {a.within_band:.1f} % of "
                   f"steps within ±10 %, median measured/predicted {a.median_ratio:.2f}"
                   + (f"; worst family {worst['group']} ({worst['median_ape']:.1f} %)." if worst is not None else "."))
    if error_corr is not None and not error_corr.empty:
        top = top_correlations(error_corr, GROUP_ALL, k=3)
        if len(top):
            first = top.iloc[0]
            trend = (f"falls as {first['feature']} grows: the model misses most where it is small"
                     if first["spearman"] < 0 else
                     f"rises as {first['feature']} grows: the model misses most where it is large")
            out.append(f"The analytic model's error ln(measured/analytic) follows {first['feature']} most "
                       f"(ρ={first['spearman']:.2f}; then " + ", ".join(
                           f"{r.feature} ρ={r.spearman:.2f}" for r in top.iloc[1:].itertuples())
                       + f"): the ratio {trend}.")
    if contributions is not None and not contributions.empty:
        top = contributions.head(3)
        out.append("The residual model's correction leans most on "
                   + ", ".join(f"{r.feature} (mean |contribution| {r.mean_abs:.3f} ln units, "
                               f"{100 * r.share:.0f} %)" for r in top.itertuples()) + ".")
    return out


# ----------------------------------------------------------------------------------- figures

_FAMILY_COLORS = {"fc": "#1f77b4", "vgg": "#ff7f0e", "resnet": "#2ca02c", "inception": "#d62728"}
_METHOD_TITLES = {"pearson": "Pearson r", "pearson_log": "Pearson r, log–log", "spearman": "Spearman ρ"}


def _figure_class() -> Any:
    """matplotlib's ``Figure`` (rendered by the Agg canvas; pyplot and its global state are never used)."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise TraincostError("insights needs matplotlib for its plots: pip install 'traincost[insights]' "
                             "(or pip install matplotlib)") from None
    return Figure


def _save(fig: Any, path: Path, dpi: int) -> Path:
    """Render ``fig`` with the Agg canvas to a PNG of at most 256 colours (plots lose nothing; ~3x smaller)."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, format="png")
    try:
        from PIL import Image  # a dependency of matplotlib

        with Image.open(buffer) as image:
            image.convert("RGB").quantize(colors=256).save(path, format="PNG", optimize=True)
    except ImportError:  # pragma: no cover - pillow ships with matplotlib
        path.write_bytes(buffer.getvalue())
    return path


def _grid(width_in: float, height_in: float, nrows: int, ncols: int, *, title: bool = False) -> tuple[Any, Any]:
    """A figure of ``nrows x ncols`` axes with fixed margins in inches (cheaper than a layout engine)."""
    fig = _figure_class()(figsize=(width_in, height_in))
    top = 0.45 if title else 0.3
    fig.subplots_adjust(left=0.62 / width_in, right=1 - 0.12 / width_in, bottom=0.5 / height_in,
                        top=1 - top / height_in, wspace=0.32, hspace=0.45 if nrows > 1 else 0.2)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def _color(family: str) -> str:
    return _FAMILY_COLORS.get(family, "#7f7f7f")


def plot_correlation_heatmap(table: pd.DataFrame, path: Path, *, title: str, dpi: int = 80,
                             methods: Sequence[str] = ("pearson", "pearson_log", "spearman")) -> Path:
    """Features x groups heatmaps (one panel per method), values written in the cells."""
    Figure = _figure_class()
    groups = list(dict.fromkeys(table["group"]))
    kinds_order = {"counted": 0, "step": 1, "architecture": 2}
    feats = (table.drop_duplicates("feature").assign(k=lambda d: d["kind"].map(kinds_order).fillna(3))
             .sort_values(["k"], kind="stable")["feature"].tolist())
    fig = Figure(figsize=(1.8 + 0.6 * len(groups) * len(methods), 1.2 + 0.22 * len(feats)), layout="constrained")
    axes = fig.subplots(1, len(methods), sharey=True, squeeze=False)[0]
    image = None
    for ax, method in zip(axes, methods):
        grid = table.pivot_table(index="feature", columns="group", values=method, aggfunc="first")
        grid = grid.reindex(index=feats, columns=groups)
        image = ax.imshow(grid.to_numpy(dtype=float), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
        ax.set_xticks(range(len(groups)), groups, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(feats)), feats, fontsize=8)
        ax.set_title(_METHOD_TITLES.get(method, method), fontsize=9)
        for (i, j), v in np.ndenumerate(grid.to_numpy(dtype=float)):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6.5,
                        color="white" if abs(v) > 0.6 else "black")
    if image is not None:
        fig.colorbar(image, ax=list(axes), shrink=0.5, pad=0.01)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path, dpi)


def plot_one_factor(series: pd.DataFrame, family: str, path: Path, *, dpi: int = 80) -> Path:
    """The seed-style one-factor plots of one family: time against each swept factor, measured and predicted."""
    sub = series[series["family"] == family]
    factors = list(dict.fromkeys(sub["factor"]))
    ncols = min(4, len(factors))
    nrows = math.ceil(len(factors) / ncols)
    fig, grid = _grid(3.4 * ncols, 2.6 * nrows + 0.5, nrows, ncols, title=True)
    axes = grid.ravel()
    styles = [("measured_ms", "measured", "-o", "black"), ("analytic_ms", "analytic", "--s", _color(family)),
              ("corrected_ms", "corrected", ":^", "#9467bd")]
    for ax, factor in zip(axes, factors):
        s = sub[sub["factor"] == factor]
        for col, label, style, color in styles:
            if col in s and s[col].notna().any():
                ax.plot(s["x"], s[col], style, color=color, label=label, markersize=3, linewidth=1)
        _factor_axis(ax, s["x"], factor, base_two=True)
    for ax in axes[len(factors):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{family}: one factor at a time (other factors at the seed's base)", fontsize=10)
    return _save(fig, path, dpi)


def _factor_axis(ax: Any, xs: pd.Series, factor: str, *, base_two: bool) -> None:
    """A step-time-against-``factor`` axis: log x when the values span more than 16x (base 2 for powers of
    two when ``base_two``), y from 0, small labels."""
    x = xs[xs > 0]
    if len(x) and x.max() / x.min() > 16:
        powers_of_two = base_two and bool(np.all(np.log2(x) == np.round(np.log2(x))))
        ax.set_xscale("log", base=2) if powers_of_two else ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel(factor, fontsize=8)
    ax.set_ylabel("step time (ms)", fontsize=8)
    ax.tick_params(labelsize=7)


def plot_marginals(series: pd.DataFrame, family: str, path: Path, *, dpi: int = 80) -> Path:
    """Median step time (and its interquartile band) against each parameter of one family, random samples."""
    factors = list(dict.fromkeys(series["factor"]))
    ncols = min(4, len(factors))
    nrows = math.ceil(len(factors) / ncols)
    fig, grid = _grid(3.4 * ncols, 2.6 * nrows + 0.5, nrows, ncols, title=True)
    axes = grid.ravel()
    for ax, factor in zip(axes, factors):
        s = series[series["factor"] == factor]
        ax.fill_between(s["x"], s["q25_ms"], s["q75_ms"], color="#cccccc", label="25–75 %")
        ax.plot(s["x"], s["measured_ms"], "-o", color="black", markersize=3, linewidth=1, label="measured median")
        if "analytic_ms" in s and s["analytic_ms"].notna().any():
            ax.plot(s["x"], s["analytic_ms"], "--s", color=_color(family), markersize=3, linewidth=1,
                    label="analytic median")
        _factor_axis(ax, s["x"], factor, base_two=False)
    for ax in axes[len(factors):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{family}: median time against each parameter (random samples: the other parameters vary too)",
                 fontsize=10)
    return _save(fig, path, dpi)


def plot_time_vs_counted(frame: pd.DataFrame, path: Path, *, dpi: int = 80,
                         features: Sequence[str] = ("flops_total", "bytes_total", "params", "ops")) -> Path:
    """Measured step time against counted features, log–log, one colour per family (the seed's aux-var plots)."""
    feats = [f for f in features if f in frame and (frame[f] > 0).any()]
    fig, grid = _grid(3.6 * len(feats), 3.3, 1, len(feats))
    axes = grid[0]
    for ax, feat in zip(axes, feats):
        for family, rows in frame.groupby("family", sort=False):
            ok = rows[feat] > 0
            ax.scatter(rows[feat][ok], rows["measured_ms"][ok], s=5, alpha=0.5, color=_color(family), label=family)
        rho = frame[feat].corr(frame["measured_ms"], method="spearman")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(feat, fontsize=8)
        ax.set_title(f"Spearman ρ={rho:.2f}", fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("measured step time (ms)", fontsize=8)
    axes[0].legend(fontsize=7, markerscale=2)
    return _save(fig, path, dpi)


def plot_predicted_vs_measured(frame: pd.DataFrame, columns: dict[str, str], path: Path, *, dpi: int = 80) -> Path:
    """Predicted against measured step time, log–log, y = x and the ±10 % band; one panel per prediction."""
    fig, grid = _grid(4.2 * len(columns), 4.2, 1, len(columns), title=True)
    axes = grid[0]
    for ax, (label, col) in zip(axes, columns.items()):
        ok = frame[col].notna() & (frame[col] > 0)
        sub = frame[ok]
        lo = float(min(sub["measured_ms"].min(), sub[col].min())) * 0.8
        hi = float(max(sub["measured_ms"].max(), sub[col].max())) * 1.25
        line = np.geomspace(lo, hi, 50)
        ax.fill_between(line, line * (1 - BAND), line * (1 + BAND), color="#bbbbbb", alpha=0.6, label="±10 %")
        ax.plot(line, line, color="black", linewidth=0.8)
        for family, rows in sub.groupby("family", sort=False):
            ax.scatter(rows["measured_ms"], rows[col], s=5, alpha=0.6, color=_color(family), label=family)
        acc = accuracy_table(sub, col, by=None)
        if len(acc):
            a = acc.iloc[0]
            ax.set_title(f"{label}\nmedian error {a.median_ape:.1f} %, {a.within_band:.0f} % within ±10 %",
                         fontsize=8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel("measured step time (ms)", fontsize=8)
        ax.set_ylabel("predicted step time (ms)", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7, markerscale=2)
    return _save(fig, path, dpi)


def plot_importances(importances: pd.DataFrame, contributions: pd.DataFrame, path: Path, *, dpi: int = 80,
                     top: int = 15) -> Path:
    """Bars: the residual model's feature importances and mean |pred_contribs| per feature."""
    Figure = _figure_class()
    fig = Figure(figsize=(10, 0.9 + 0.25 * top), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    imp = importances.head(top).iloc[::-1]
    ax1.barh(imp["feature"], imp["importance"], color="#4c72b0")
    ax1.set_title("feature importance (booster)", fontsize=9)
    con = contributions.head(top).iloc[::-1]
    ax2.barh(con["feature"], con["mean_abs"], color="#dd8452")
    ax2.set_title("mean |contribution| to ln(measured/analytic)", fontsize=9)
    for ax in (ax1, ax2):
        ax.tick_params(labelsize=7)
    return _save(fig, path, dpi)


def plot_contribution_dependence(features: pd.DataFrame, contributions: pd.DataFrame, names: Sequence[str],
                                 path: Path, *, dpi: int = 80) -> Path:
    """Per top feature: its value against its contribution (XGBoost pred_contribs), one point per step."""
    names = [n for n in names if n in features and n in contributions][:4]
    fig, grid = _grid(3.4 * max(1, len(names)), 3.0, 1, max(1, len(names)))
    axes = grid[0]
    for ax, name in zip(axes, names):
        x = features[name].astype(float)
        ax.scatter(x, contributions[name], s=4, alpha=0.4, color="#555555")
        if (x > 0).all() and x.max() / max(x.min(), 1e-300) > 100:
            ax.set_xscale("log")
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_xlabel(name, fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("contribution (ln units)", fontsize=8)
    return _save(fig, path, dpi)


# ----------------------------------------------------------------------------------- residual model


@dataclass
class _Residual:
    """The residual model used for one device and why (or why not); ``in_sample`` when it was trained on
    these datasets (None: unknown)."""

    model: Any | None
    reason: str
    in_sample: bool | None = None


@dataclass
class _Walked:
    """Every row walked and priced again by :func:`traincost.calibrate.fit.build_frame`, aligned with the
    insights frame: today's ``analytic_ms``, the residual features ``X`` (NaN rows where the walk failed)
    and the fit module's own frame (for cross-validation)."""

    analytic_ms: pd.Series
    X: pd.DataFrame
    fit_frame: Any


def _walk_with_fit(frame: pd.DataFrame, paths: Sequence[Path], processes: int,
                   progress: Callable[[int, int], None] | None) -> _Walked | None:
    """Today's analytic time and residual features of every row, from the fit module (one walk a row in
    ``processes`` worker processes); ``None`` when this traincost has no fit module."""
    try:
        from traincost.calibrate.fit import build_frame
    except ImportError:
        return None
    fitted = build_frame(list(paths), processes=processes, progress=progress)
    slots: dict[tuple[str, str], list[int]] = {}
    for i, (dataset, key) in enumerate(zip(frame["dataset"], frame["config_key"])):
        slots.setdefault((str(dataset), str(key)), []).append(i)
    position = np.full(len(fitted.meta), -1)
    for j, (dataset, key) in enumerate(zip(fitted.meta["dataset"], fitted.meta["config_key"])):
        free = slots.get((str(dataset), str(key)))
        if free:
            position[j] = free.pop(0)
    hit = position >= 0
    analytic = np.full(len(frame), np.nan)
    analytic[position[hit]] = fitted.meta["analytic_ms"].to_numpy(dtype=float)[hit]
    X = pd.DataFrame(np.nan, index=frame.index, columns=fitted.X.columns)
    X.iloc[position[hit]] = fitted.X.to_numpy(dtype=float)[hit]
    fitted.meta = fitted.meta.assign(_row=position)
    return _Walked(pd.Series(analytic, index=frame.index), X, fitted)


def _select_residual(profile: Any, residual: str | Path) -> tuple[Any | None, str]:
    """(model or None, reason): ``residual`` = ``"auto"`` (the shipped selection) or a model path."""
    try:
        from traincost import correction
    except ImportError:
        return None, "this traincost has no residual model module (traincost.correction)"
    if str(residual) == "auto":
        return correction.select_residual(profile)
    return correction.load(residual), f"{Path(residual).name}: given with --residual"


def _residual_for(profile: Any | None, residual: str | Path | None, walked: _Walked | None,
                  paths: Sequence[Path]) -> _Residual:
    if residual is None or str(residual) == "none":
        return _Residual(None, "not asked for (--residual none)")
    if walked is None:
        return _Residual(None, "its features need every row walked again: run without --fast")
    if profile is None:
        return _Residual(None, "no device profile for this device, so no residual model can be selected")
    model, reason = _select_residual(profile, residual)
    if model is None:
        return _Residual(None, reason)
    trained = {str(d.get("sha256", "")) for d in (getattr(model, "metadata_", {}) or {}).get("datasets") or []
               if isinstance(d, dict)}
    mine = {hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
    return _Residual(model, reason, bool(trained & mine) if trained else None)


def _cross_validated_ms(walked: _Walked, n_rows: int, params: dict[str, Any] | None) -> np.ndarray | None:
    """Leave-one-family-out corrected predictions (``fit.evaluate``: each family predicted by a model with the
    hyperparameters ``params`` trained on the other families) aligned with the insights frame; ``None`` when
    the fit module refuses (one family)."""
    from traincost.calibrate.fit import FitError, evaluate

    try:
        _, corrected = evaluate(walked.fit_frame, "family", params=params)
    except FitError:
        return None
    out = np.full(n_rows, np.nan)
    rows = walked.fit_frame.meta["_row"].to_numpy()
    out[rows[rows >= 0]] = np.asarray(corrected, dtype=float)[rows >= 0]
    return out


# ----------------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class ReportResult:
    """What :func:`build_report` wrote and found. Paths are strings; correlations as records."""

    out_dir: str
    html: str
    pngs: list[str]
    rows: int
    devices: list[str]
    analytic: str
    residual: dict[str, str]
    top_correlations: list[dict[str, Any]]
    reading: list[str]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _prepare_out_dir(out_dir: str | Path) -> Path:
    """Create ``out_dir`` (and parents) and check it can be written: a usage error naming it otherwise."""
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise TraincostUsageError(f"cannot write the report to {str(path)!r}: it is a file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".traincost-write-test-"):
            pass
    except OSError as exc:
        raise TraincostUsageError(f"cannot write the report to {str(path)!r}: {exc.strerror or exc}") from None
    return path


def _slug(text: str) -> str:
    keep = "".join(c.lower() if c.isalnum() else "-" for c in text)
    return "-".join(p for p in keep.split("-") if p) or "device"


def _html_table(table: pd.DataFrame, formats: dict[str, str] | None = None) -> str:
    formats = formats or {}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    body = []
    for row in table.itertuples(index=False):
        cells = []
        for col, value in zip(table.columns, row):
            fmt = formats.get(col)
            if isinstance(value, float) and not np.isfinite(value):
                text = ""
            elif fmt is not None and isinstance(value, (int, float, np.number)):
                text = format(value, fmt)
            else:
                text = str(value)
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.5em}h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
h3{font-size:1.05em}table{border-collapse:collapse;font-size:.85em;margin:.5em 0 1em}
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child,td:nth-child(2){text-align:left}
figure{margin:.5em 0}img{max-width:100%;height:auto}.note{color:#555;font-size:.9em}
ul.reading li{margin:.3em 0}
"""

_CORR_FORMATS = {"pearson": ".2f", "pearson_log": ".2f", "spearman": ".2f"}
_ACC_FORMATS = {"median_ape": ".1f", "p90_ape": ".1f", "within_band": ".1f", "median_ratio": ".2f"}


def build_report(dataset_paths: Sequence[str | Path], out_dir: str | Path = "insights", *,
                 analytic: str = "recompute", residual: str | Path | None = "auto", dpi: int = 80,
                 processes: int | None = None,
                 progress: Callable[[str, int, int], None] | None = None) -> ReportResult:
    """Read datasets, compute correlations, one-factor series, errors and importances; write PNGs and
    ``report.html`` (self-contained) into ``out_dir``; one section per device.

    ``analytic``: ``recompute`` (walk and price every row again with today's model: ~0.1 s a row, through
    :func:`traincost.calibrate.fit.build_frame`, which also gives the residual model's features) or ``stored``
    (the dataset's ``analytic_ms``, the prediction at measurement time: fast, absent from the precursor's
    files; no residual section). ``residual``: ``auto`` (the shipped model selected for the device), ``none``,
    or a model ``.json``. ``processes``: worker processes for the walk (default: up to 2 CPUs).
    ``progress(stage, done, total)`` is called while rows are walked.
    """
    paths = [Path(p) for p in dataset_paths]
    frame = load_frame(paths)
    out = _prepare_out_dir(out_dir)
    _figure_class()  # fail now, not after minutes of walking, when matplotlib is missing
    if residual not in (None, "none", "auto") and not Path(residual).is_file():
        raise TraincostUsageError(f"residual model not found: {residual}")
    tick = (lambda i, n: progress("walking", i, n)) if progress else None
    if processes is None:
        processes = max(1, min(2, os.cpu_count() or 1))
    walked = _walk_with_fit(frame, paths, processes, tick) if analytic == "recompute" else None
    if walked is not None:
        frame = add_predictions(frame, analytic=analytic, values=walked.analytic_ms)
    else:
        frame = add_predictions(frame, analytic=analytic, progress=tick)
    devices = sorted(frame["device"].unique())
    profiles = _profiles_by_device(frame)
    pngs: list[Path] = []
    notes: list[str] = []
    residual_reasons: dict[str, str] = {}
    sections: list[str] = []
    readings: list[str] = []
    top_all: list[dict[str, Any]] = []
    chosen = {d: _residual_for(profiles.get(d), residual, walked, paths) for d in devices}
    models = [r.model for r in chosen.values() if r.model is not None]
    if walked is not None and models:
        get_params = getattr(models[0], "get_params", None)
        cv = _cross_validated_ms(walked, len(frame), get_params() if get_params else None)
        if cv is not None:
            frame["corrected_cv_ms"] = cv
    for device in devices:
        mask = (frame["device"] == device).to_numpy()
        sub = frame[mask].reset_index(drop=True)
        res = chosen[device]
        X = walked.X[mask].reset_index(drop=True) if walked is not None else None
        if res.model is not None and X is not None:
            ok = X.notna().all(axis=1).to_numpy()
            corrected = np.full(len(sub), np.nan)
            corrected[ok] = sub["analytic_ms"].to_numpy()[ok] * np.exp(res.model.predict(X[ok]))
            sub["corrected_ms"] = corrected
            X = X[ok]
        residual_reasons[device] = res.reason
        prefix = "" if len(devices) == 1 else _slug(device) + "-"
        section, png, read, top = _device_section(sub, device, out, prefix, res, X, analytic, dpi, notes)
        sections.append(section)
        pngs += png
        readings += read
        top_all += [{"device": device, **r} for r in top]
    title = "traincost insights: " + ", ".join(p.name for p in paths)
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p class='note'>What drives measured training-step time: correlations of every architecture parameter "
            f"and counted feature with the measured step time, the seed project's one-factor plots, predicted "
            f"against measured, and the learned residual. Generated by <code>traincost insights</code>; every "
            f"number and sentence below is computed from the data.</p>{''.join(sections)}</body></html>")
    html_path = out / "report.html"
    html_path.write_text(page, encoding="utf-8")
    return ReportResult(out_dir=str(out), html=str(html_path), pngs=[str(p) for p in pngs], rows=len(frame),
                        devices=devices, analytic=analytic, residual=residual_reasons, top_correlations=top_all,
                        reading=readings, notes=notes)


def _device_section(frame: pd.DataFrame, device: str, out: Path, prefix: str, res: _Residual,
                    X: pd.DataFrame | None, analytic: str, dpi: int, notes: list[str]) -> tuple[str, list[Path], list[str], list[dict[str, Any]]]:
    """HTML of one device's section, the PNGs written, the reading and the top correlations."""
    pngs: list[Path] = []
    parts: list[str] = [f"<h2>{html.escape(device)}</h2>"]
    sweeps = frame["sweep"].fillna("").astype(str)
    random_rows = frame[~sweeps.str.startswith("seed:")]
    if len(random_rows) >= 30 and len(random_rows) < len(frame):
        corr_frame, corr_rows = random_rows, (f"the {len(random_rows)} randomly sampled steps (the seed's "
                                              f"one-factor grids, {len(frame) - len(random_rows)} steps, are left "
                                              "out: they cluster around one base configuration)")
    else:
        corr_frame, corr_rows = frame, f"all {len(frame)} steps"
    corr = correlation_table(corr_frame, "measured_ms")
    err_corr = correlation_table(corr_frame, "log_error") if corr_frame["log_error"].notna().sum() >= 5 else None
    series = one_factor_series(frame)
    analytic_label = ("analytic (today's model)" if analytic == "recompute"
                      else "analytic (stored: at measurement time)")
    accuracy: dict[str, pd.DataFrame] = {}
    acc = accuracy_table(frame, "analytic_ms")
    if len(acc):
        accuracy[analytic_label.capitalize()] = acc
    if "corrected_ms" in frame:
        sample = {True: "in-sample: the model was trained on these rows", False: "out-of-sample",
                  None: "training data not recorded"}[res.in_sample]
        accuracy[f"Corrected (analytic × residual; {sample})"] = accuracy_table(frame, "corrected_ms")
    if "corrected_cv_ms" in frame and frame["corrected_cv_ms"].notna().any():
        accuracy["Corrected, cross-validated (each family predicted by a residual trained on the others)"] = (
            accuracy_table(frame, "corrected_cv_ms"))
    contrib = importances = contributions = None
    if res.model is not None and X is not None and len(X):
        importances = importance_table(res.model)
        contributions = res.model.contributions(X)
        contrib = contribution_table(contributions)
    sentences = reading(frame, corr, error_corr=err_corr, one_factor=series, accuracy=accuracy,
                        contributions=contrib, corr_rows=corr_rows)
    parts.append("<h3>Reading</h3><ul class='reading'>" + "".join(f"<li>{html.escape(s)}</li>" for s in sentences)
                 + "</ul>")

    # correlations
    p = plot_correlation_heatmap(corr, out / f"{prefix}correlation_time.png", dpi=dpi,
                                 title=f"{device}: correlation with measured step time ({len(corr_frame)} steps)")
    pngs.append(p)
    top = top_correlations(corr, GROUP_ALL, k=12)
    per_family = pd.concat([top_correlations(corr, g, k=3, kind="architecture")
                            for g in corr["group"].unique() if g != GROUP_ALL] or [pd.DataFrame()])
    parts.append("<h3>Correlation with measured step time</h3>"
                 f"<p class='note'>Rows: {html.escape(corr_rows)}. Pearson on raw values, Pearson on log10 scales "
                 "(log10 of time; log10 of the feature when it is positive and not binary) and Spearman (ranks). "
                 "'all' holds the features every family has; a family's own parameters appear in its column. "
                 "Constant columns are dropped. Correlation is not causation: within a family the random samples "
                 "vary the parameters nearly independently, so a weak ρ there means the parameter moves time "
                 "little beside the others; across families, differences in how each family was sampled "
                 "also show up.</p>"
                 + _img(p, "correlation heatmap") + "<p>Strongest over all families:</p>"
                 + _html_table(top[["feature", "kind", "n", "pearson", "pearson_log", "spearman"]], _CORR_FORMATS))
    if len(per_family):
        parts.append("<p>Strongest architecture parameters per family:</p>"
                     + _html_table(per_family[["group", "feature", "n", "pearson", "pearson_log", "spearman"]],
                                   _CORR_FORMATS))
    # aux vars
    p = plot_time_vs_counted(corr_frame, out / f"{prefix}time_vs_counted.png", dpi=dpi)
    pngs.append(p)
    parts.append("<h3>Step time against counted work</h3>" + _img(p, "time against counted features"))
    # one factor
    parts.append("<h3>One factor at a time</h3>")
    if series.empty:
        parts.append("<p class='note'>This dataset has no one-factor sweeps (rows whose <code>sweep</code> is "
                     "<code>seed:&lt;family&gt;:&lt;factor&gt;</code>, from <code>traincost bench --plan seed</code>). "
                     "Shown instead: the median measured time against each parameter over the random samples, "
                     "where the other parameters vary at the same time (a marginal view, not one factor at a "
                     "time).</p>")
        notes.append(f"{device}: no one-factor sweeps in the dataset; marginal plots instead")
        for family in [f for f in FAMILY_ORDER if f in set(corr_frame["family"])]:
            marg = marginal_series(corr_frame, family)
            if not marg.empty:
                p = plot_marginals(marg, family, out / f"{prefix}marginal_{family}.png", dpi=dpi)
                pngs.append(p)
                parts.append(_img(p, f"{family} marginal plots"))
    else:
        summary = one_factor_summary(series)
        parts.append("<p class='note'>The seed project's grids: each factor swept with the others at the seed's "
                     "base configuration (scaled to the device). Measured (black) and predicted.</p>")
        for family in [f for f in FAMILY_ORDER if f in set(series["family"])]:
            p = plot_one_factor(series, family, out / f"{prefix}one_factor_{family}.png", dpi=dpi)
            pngs.append(p)
            parts.append(_img(p, f"{family} one-factor plots"))
        parts.append("<p>Swing of each factor over its range (measured time at the largest value / at the "
                     "smallest):</p>" + _html_table(summary, {"x_low": "g", "x_high": "g", "ms_at_low": ".2f",
                                                             "ms_at_high": ".2f", "swing": ".2f", "spearman": ".2f"}))
    # predicted vs measured
    parts.append("<h3>Predicted against measured</h3>")
    columns = {}
    if frame["analytic_ms"].notna().any():
        columns[analytic_label] = "analytic_ms"
    if "corrected_ms" in frame:
        columns["corrected" + (" (in-sample)" if res.in_sample else "")] = "corrected_ms"
    if "corrected_cv_ms" in frame and frame["corrected_cv_ms"].notna().any():
        columns["corrected (leave-one-family-out)"] = "corrected_cv_ms"
    if columns:
        p = plot_predicted_vs_measured(frame, columns, out / f"{prefix}predicted_vs_measured.png", dpi=dpi)
        pngs.append(p)
        parts.append(_img(p, "predicted against measured"))
        for label, acc in accuracy.items():
            parts.append(f"<p>{html.escape(label)} (errors in %, band ±10 %):</p>" + _html_table(acc, _ACC_FORMATS))
    else:
        parts.append("<p class='note'>No analytic prediction: the dataset stores none (run without "
                     "<code>--fast</code> to recompute it) or no profile exists for this device.</p>")
        notes.append(f"{device}: no analytic prediction")
    if err_corr is not None and len(err_corr):
        p = plot_correlation_heatmap(err_corr, out / f"{prefix}correlation_error.png", dpi=dpi,
                                     methods=("spearman",),
                                     title=f"{device}: Spearman ρ with ln(measured / analytic)")
        pngs.append(p)
        parts.append("<h3>What the analytic model misses</h3><p class='note'>Correlation of each feature with the "
                     "analytic model's error ln(measured / analytic), the residual model's target: positive means "
                     "the model is relatively too fast where the feature is large.</p>" + _img(p, "error heatmap")
                     + _html_table(top_correlations(err_corr, GROUP_ALL, k=8)[["feature", "kind", "n", "spearman"]],
                                   _CORR_FORMATS))
    # residual
    parts.append("<h3>Residual model</h3>")
    if importances is None or contrib is None or contributions is None or X is None:
        parts.append(f"<p class='note'>Skipped: {html.escape(res.reason)}.</p>")
        notes.append(f"{device}: residual section skipped: {res.reason}")
    else:
        p = plot_importances(importances, contrib, out / f"{prefix}residual_importance.png", dpi=dpi)
        pngs.append(p)
        q = plot_contribution_dependence(X, contributions,
                                         contrib["feature"].head(4).tolist(),
                                         out / f"{prefix}residual_contributions.png", dpi=dpi)
        pngs.append(q)
        parts.append(f"<p class='note'>{html.escape(res.reason)}. Importance: the booster's total gain, "
                     "normalised. Contributions: XGBoost pred_contribs (SHAP values) on these rows, in "
                     "ln(measured/analytic) units; a row's contributions plus the bias sum to its correction.</p>"
                     + _img(p, "residual importances") + _img(q, "residual contributions")
                     + _html_table(contrib.head(12), {"mean_abs": ".4f", "mean": "+.4f", "share": ".1%"}))
    return "".join(parts), pngs, sentences, top.to_dict("records")
