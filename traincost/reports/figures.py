"""The insights report's figures: matplotlib PNGs (Agg canvas, imported lazily; pyplot is never used)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from traincost.errors import TraincostError
from traincost.reports.analysis import BAND, accuracy_table

__all__ = ["figure_class", "plot_contribution_dependence", "plot_correlation_heatmap", "plot_importances",
           "plot_marginals", "plot_one_factor", "plot_predicted_vs_measured", "plot_time_vs_counted"]

_FAMILY_COLORS = {"fc": "#1f77b4", "vgg": "#ff7f0e", "resnet": "#2ca02c", "inception": "#d62728"}
_METHOD_TITLES = {"pearson": "Pearson r", "pearson_log": "Pearson r, log–log", "spearman": "Spearman ρ"}


def figure_class() -> Any:
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
    fig = figure_class()(figsize=(width_in, height_in))
    top = 0.45 if title else 0.3
    fig.subplots_adjust(left=0.62 / width_in, right=1 - 0.12 / width_in, bottom=0.5 / height_in,
                        top=1 - top / height_in, wspace=0.32, hspace=0.45 if nrows > 1 else 0.2)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def _color(family: str) -> str:
    return _FAMILY_COLORS.get(family, "#7f7f7f")


def plot_correlation_heatmap(table: pd.DataFrame, path: Path, *, title: str, dpi: int = 80,
                             methods: Sequence[str] = ("pearson", "pearson_log", "spearman")) -> Path:
    """Features x groups heatmaps (one panel per method), values written in the cells."""
    Figure = figure_class()
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
    Figure = figure_class()
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
