"""Insights: what drives the measured training-step time of a dataset (``traincost insights``).

The seed project promised "correlations between model parameters and training time" and drew one-factor
line plots; :func:`build_report` computes them from measured datasets (:mod:`traincost.sweeps.bench` CSV,
either schema) and writes PNGs and one self-contained ``report.html``, one section per device, with a
reading generated from the numbers. It orchestrates modules of one job each:

- :mod:`traincost.reports.loading`: :func:`load_frame`, the ``ok`` rows as one numeric frame;
- :mod:`traincost.reports.predictions`: the analytic predictions (stored or recomputed) and the residual model;
- :mod:`traincost.reports.analysis`: correlations, one-factor series, accuracy, importances (pandas tables);
- :mod:`traincost.reports.reading`: the sentences that read those tables;
- :mod:`traincost.reports.figures`: the PNGs (matplotlib, Agg canvas, imported lazily);
- :mod:`traincost.reports.page`: the HTML (PNGs as base64 data URIs, no external resource).

The library never prints; errors are :mod:`traincost.errors` exceptions.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from traincost.errors import TraincostUsageError
from traincost.reports import figures
from traincost.reports.analysis import (
    FAMILY_ORDER,
    GROUP_ALL,
    accuracy_table,
    contribution_table,
    correlation_table,
    importance_table,
    marginal_series,
    one_factor_series,
    one_factor_summary,
    top_correlations,
)
from traincost.reports.loading import load_frame
from traincost.reports.page import Section, page_html, section_html
from traincost.reports.predictions import (
    Residual,
    add_predictions,
    cross_validated_ms,
    profiles_by_device,
    residual_for,
    walk_with_fit,
)
from traincost.reports.reading import reading

__all__ = ["ReportResult", "build_report", "load_frame"]


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
    #: user factory -> rows left out of the report because their model is user code (``trust_code`` False)
    user_code: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_report(dataset_paths: Sequence[str | Path], out_dir: str | Path = "insights", *,
                 analytic: str = "recompute", residual: str | Path | None = "auto", dpi: int = 80,
                 processes: int | None = None, progress: Callable[[str, int, int], None] | None = None,
                 trust_code: bool = False) -> ReportResult:
    """Read datasets, compute correlations, one-factor series, errors and importances; write PNGs and
    ``report.html`` (self-contained) into ``out_dir``; one section per device.

    ``analytic``: ``recompute`` (walk and price every row again with today's model: ~0.1 s a row, through
    :func:`traincost.sweeps.fit.build_frame`, which also gives the residual model's features) or ``stored``
    (the dataset's ``analytic_ms``, the prediction at measurement time: fast, absent from the precursor's
    files; no residual section). ``residual``: ``auto`` (the shipped model selected for the device), ``none``,
    or a model ``.json``. ``processes``: worker processes for the walk (default: up to 2 CPUs).
    ``progress(stage, done, total)`` is called while rows are walked. ``trust_code``: with ``recompute``,
    rows whose model is user code (``file.py:function``, ``package.module:function``) are predicted again,
    which imports and runs the file or module they name; without it they are left out of the report and
    counted in ``ReportResult.user_code`` (a :class:`~traincost.sweeps.fit.UserCodeError` when no row is left).
    ``stored`` runs no model code and keeps every row.
    """
    paths = [Path(p) for p in dataset_paths]
    frame = load_frame(paths)
    held: dict[str, int] = {}
    if analytic == "recompute" and not trust_code:
        frame, held = _hold_user_code(frame)
    out = _prepare_out_dir(out_dir)
    figures.figure_class()  # fail now, not after minutes of walking, when matplotlib is missing
    if residual not in (None, "none", "auto") and not Path(residual).is_file():
        raise TraincostUsageError(f"residual model not found: {residual}")
    tick = (lambda i, n: progress("walking", i, n)) if progress else None
    if processes is None:
        processes = max(1, min(2, os.cpu_count() or 1))
    walked = walk_with_fit(frame, paths, processes, tick, trust_code) if analytic == "recompute" else None
    if walked is not None:
        frame = add_predictions(frame, analytic=analytic, values=walked.analytic_ms)
    else:
        frame = add_predictions(frame, analytic=analytic, progress=tick, trust_code=trust_code)
    devices = sorted(frame["device"].unique())
    profiles = profiles_by_device(frame)
    pngs: list[Path] = []
    notes: list[str] = []
    residual_reasons: dict[str, str] = {}
    sections: list[str] = []
    readings: list[str] = []
    top_all: list[dict[str, Any]] = []
    chosen = {d: residual_for(profiles.get(d), residual, walked, paths) for d in devices}
    models = [r.model for r in chosen.values() if r.model is not None]
    if walked is not None and models:
        get_params = getattr(models[0], "get_params", None)
        cv = cross_validated_ms(walked, len(frame), get_params() if get_params else None)
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
        section, png, top = _device_section(sub, device, out, prefix, res, X, analytic, dpi, notes)
        sections.append(section_html(section))
        pngs += png
        readings += section.sentences
        top_all += [{"device": device, **r} for r in top]
    html_path = out / "report.html"
    html_path.write_text(page_html("traincost insights: " + ", ".join(p.name for p in paths), sections),
                         encoding="utf-8")
    return ReportResult(out_dir=str(out), html=str(html_path), pngs=[str(p) for p in pngs], rows=len(frame),
                        devices=devices, analytic=analytic, residual=residual_reasons, top_correlations=top_all,
                        reading=readings, notes=notes, user_code=held)


def _hold_user_code(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """``frame`` without the rows whose model is user code, and {factory: rows left out}; a
    :class:`~traincost.sweeps.fit.UserCodeError` when that leaves no row."""
    from traincost.sweeps.fit import all_user_code_error, user_code_name

    names = frame["spec"].map(user_code_name)
    mask = names.notna().to_numpy()
    if not mask.any():
        return frame, {}
    held = {str(k): int(v) for k, v in names[mask].value_counts().sort_index().items()}
    if mask.all():
        raise all_user_code_error(held, ", or --fast to use the stored predictions")
    return frame[~mask].reset_index(drop=True), held


def _device_section(frame: pd.DataFrame, device: str, out: Path, prefix: str, res: Residual,
                    X: pd.DataFrame | None, analytic: str, dpi: int,
                    notes: list[str]) -> tuple[Section, list[Path], list[dict[str, Any]]]:
    """One device's tables and reading, its PNGs written (in report order) and its top correlations."""
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
    top = top_correlations(corr, GROUP_ALL, k=12)
    per_family = pd.concat([top_correlations(corr, g, k=3, kind="architecture")
                            for g in corr["group"].unique() if g != GROUP_ALL] or [pd.DataFrame()])
    pngs: list[Path] = []

    def keep(path: Path) -> Path:
        pngs.append(path)
        return path

    section = Section(
        device=device, sentences=sentences, corr_rows=corr_rows, top=top, per_family=per_family,
        corr_png=keep(figures.plot_correlation_heatmap(
            corr, out / f"{prefix}correlation_time.png", dpi=dpi,
            title=f"{device}: correlation with measured step time ({len(corr_frame)} steps)")),
        counted_png=keep(figures.plot_time_vs_counted(corr_frame, out / f"{prefix}time_vs_counted.png", dpi=dpi)),
        summary=None if series.empty else one_factor_summary(series), accuracy=accuracy, residual_reason=res.reason)
    if series.empty:
        notes.append(f"{device}: no one-factor sweeps in the dataset; marginal plots instead")
        for family in [f for f in FAMILY_ORDER if f in set(corr_frame["family"])]:
            marg = marginal_series(corr_frame, family)
            if not marg.empty:
                path = figures.plot_marginals(marg, family, out / f"{prefix}marginal_{family}.png", dpi=dpi)
                section.factor_pngs.append((family, keep(path)))
    else:
        for family in [f for f in FAMILY_ORDER if f in set(series["family"])]:
            path = figures.plot_one_factor(series, family, out / f"{prefix}one_factor_{family}.png", dpi=dpi)
            section.factor_pngs.append((family, keep(path)))
    columns = {}
    if frame["analytic_ms"].notna().any():
        columns[analytic_label] = "analytic_ms"
    if "corrected_ms" in frame:
        columns["corrected" + (" (in-sample)" if res.in_sample else "")] = "corrected_ms"
    if "corrected_cv_ms" in frame and frame["corrected_cv_ms"].notna().any():
        columns["corrected (leave-one-family-out)"] = "corrected_cv_ms"
    if columns:
        section.predicted_png = keep(figures.plot_predicted_vs_measured(
            frame, columns, out / f"{prefix}predicted_vs_measured.png", dpi=dpi))
    else:
        notes.append(f"{device}: no analytic prediction")
    if err_corr is not None and len(err_corr):
        section.error_png = keep(figures.plot_correlation_heatmap(
            err_corr, out / f"{prefix}correlation_error.png", dpi=dpi, methods=("spearman",),
            title=f"{device}: Spearman ρ with ln(measured / analytic)"))
        section.error_top = top_correlations(err_corr, GROUP_ALL, k=8)
    if importances is None or contrib is None or contributions is None or X is None:
        notes.append(f"{device}: residual section skipped: {res.reason}")
    else:
        section.importance_png = keep(figures.plot_importances(
            importances, contrib, out / f"{prefix}residual_importance.png", dpi=dpi))
        section.contributions_png = keep(figures.plot_contribution_dependence(
            X, contributions, contrib["feature"].head(4).tolist(), out / f"{prefix}residual_contributions.png",
            dpi=dpi))
        section.contributions = contrib
    return section, pngs, top.to_dict("records")


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
