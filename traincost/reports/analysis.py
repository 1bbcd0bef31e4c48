"""Statistics of an insights frame, as pandas tables (no plotting, no HTML).

- :func:`correlation_table`, :func:`top_correlations`: Pearson, Pearson on log scales and Spearman of every
  feature with a target, overall and per family (constant and too-sparse columns dropped).
- :func:`one_factor_series`, :func:`one_factor_summary`: the seed's one-factor-at-a-time grids (``sweep`` =
  ``seed:<family>:<factor>``, the ``seed:<family>:base`` row added to every factor) as (x, measured,
  predicted) series and their swings; :func:`marginal_series` for datasets without such grids.
- :func:`accuracy_table`, :func:`importance_table`, :func:`contribution_table`: prediction error and the
  residual model's importances and mean XGBoost ``pred_contribs``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from traincost.errors import TraincostError, TraincostUsageError
from traincost.reports.loading import feature_kinds

__all__ = ["BAND", "FAMILY_ORDER", "GROUP_ALL", "accuracy_table", "contribution_table", "correlation_table",
           "importance_table", "marginal_series", "one_factor_series", "one_factor_summary", "top_correlations"]

GROUP_ALL = "all"
FAMILY_ORDER = ("fc", "vgg", "resnet", "inception")
BAND = 0.10


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


# ----------------------------------------------------------------------------------- accuracy


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
