"""The report's reading: sentences generated from the statistics tables, no fixed conclusion."""

from __future__ import annotations

import numpy as np
import pandas as pd

from traincost.reports.analysis import (
    FAMILY_ORDER,
    GROUP_ALL,
    one_factor_summary,
    top_correlations,
)
from traincost.reports.loading import STEP_FEATURES

__all__ = ["reading"]


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
