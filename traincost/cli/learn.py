"""Commands that learn from measured datasets: ``fit`` (the residual correction), ``evaluate`` (its error,
cross-validated or held out) and ``insights`` (what drives step time: correlations, plots, a report)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from traincost.cli.app import _check_writable, main
from traincost.errors import TraincostUsageError


def _datasets(options: tuple[str, ...], extra: tuple[str, ...]) -> list[str]:
    """--dataset a.csv [b.csv ...]: the option's values and the files given after it."""
    paths = [*options, *extra]
    if not paths:
        raise TraincostUsageError("give at least one dataset: --dataset FILE.csv [FILE.csv ...]")
    for path in paths:
        if not Path(path).is_file():
            raise TraincostUsageError(f"dataset not found: {path}")
    return paths


def _profiles(paths: tuple[str, ...]) -> list[Any]:
    from traincost.hardware.profile import load_profile

    return [load_profile(p) for p in paths]


def _progress(label: str, as_json: bool) -> Any:
    """A progress callback writing '<label>: done/total rows' to stderr on a terminal, else nothing."""
    if as_json or not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        click.echo(f"\r{label}: {done}/{total} rows", err=True, nl=done >= total)

    return show


_EACH_ROW = click.option(
    "--each-row", is_flag=True,
    help="Every measured row is its own sample. Default: a configuration measured more than once on one device "
         "(sweeps of one plan) is one sample labelled with the median of its measurements.")


_TRUST_CODE = click.option(
    "--trust-code", is_flag=True,
    help="Let the dataset's rows import and run the Python files or modules they name (a model given as "
         "file.py:function or package.module:function). Only for datasets you trust. Without it those rows "
         "are skipped, with a warning giving their count.")


def _warn_user_code(held: dict[str, int]) -> None:
    """One warning line on stderr for the rows skipped because their model is user code."""
    from traincost.sweeps.fit import user_code_message

    if held:
        click.echo(f"warning: skipped {user_code_message(held)}; pass --trust-code to run them", err=True)


def _measured_frame(paths: list[str], profile_paths: tuple[str, ...], processes: int, cache_path: str | None,
                    as_json: bool, each_row: bool, trust_code: bool) -> Any:
    """The datasets walked and priced (:func:`traincost.sweeps.fit.build_frame`), repeated measurements of
    a configuration combined unless ``each_row``; rows naming user code only with ``trust_code`` (else
    skipped, with one warning line)."""
    from traincost.sweeps.fit import build_frame, combine_repeats

    frame = build_frame(paths, processes=processes, profiles=_profiles(profile_paths),
                        progress=_progress("walking", as_json), cache=cache_path, trust_code=trust_code)
    _warn_user_code(frame.user_code)
    return frame if each_row else combine_repeats(frame)


def _ape_text(summary: dict[str, float]) -> str:
    return f"{summary['median_ape']:6.1f} % / {summary['p90_ape']:6.1f} %"


def _print_report(rep: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    cov = rep.get("interval_coverage") or {}
    single = rep.get("single_measurements") or {}
    combined = bool(single) and single["n"] != rep["n"]
    title = (f"{rep['split']} split" + (f" ({rep['folds']} folds)" if rep.get("folds") else "")
             + f", {rep['n']} rows: median / p90 APE"
             + (" (a row measured more than once: the median of its runs)" if combined else ""))
    table = Table(title=title, title_justify="left")
    for col in ("family", "n", "analytic", "corrected"):
        table.add_column(col, justify="left" if col == "family" else "right")
    for fam, r in rep["per_family"].items():
        table.add_row(fam, str(r["n"]), _ape_text(r["analytic"]), _ape_text(r["corrected"]))
    table.add_row("all", str(rep["n"]), _ape_text(rep["analytic"]), _ape_text(rep["corrected"]), style="bold")
    if combined:
        table.add_row("(each run)", str(single["n"]), _ape_text(single["analytic"]), _ape_text(single["corrected"]))
    Console(width=max(Console().width, 100)).print(table)
    if cov:
        click.echo("interval coverage: " + ", ".join(f"{float(k):.0%} interval {v:.1%}" for k, v in cov.items()))
    if rep.get("skipped_rows"):
        click.echo(f"{rep['skipped_rows']} rows skipped (not ok, or their walk failed)")


@main.command("fit")
@click.option("--dataset", "dataset_opts", multiple=True, type=click.Path(dir_okay=False),
              help="Measured dataset CSV (traincost bench); repeat it or list more files after it.")
@click.argument("more_datasets", nargs=-1, type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Residual model .json (XGBoost JSON; the sidecar <name>.meta.json is written next to it).")
@click.option("--profile", "profile_paths", multiple=True, type=click.Path(dir_okay=False),
              help="Device profile .json for rows of a device with no shipped profile (repeatable).")
@click.option("--processes", type=click.IntRange(min=1), default=2, show_default=True,
              help="Worker processes walking the rows.")
@click.option("--trees", type=click.IntRange(min=1), default=300, show_default=True,
              help="Boosting rounds (XGBoost n_estimators).")
@click.option("--cache", "cache_path", type=click.Path(dir_okay=False), default=None,
              help="Feature cache CSV: rows walked before by the same code are not walked again.")
@_EACH_ROW
@_TRUST_CODE
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def fit_command(dataset_opts: tuple[str, ...], more_datasets: tuple[str, ...], output: str,
                profile_paths: tuple[str, ...], processes: int, trees: int, cache_path: str | None,
                each_row: bool, trust_code: bool, as_json: bool) -> None:
    """Train the learned correction (XGBoost on log(measured / analytic)) on measured datasets.

    Every row is walked and priced again with the current code. Cross-validates by family and by
    architecture first (the intervals come from the leave-one-family-out residuals), then fits on all rows.
    """
    from traincost.correction.artifacts import MODEL_SUFFIXES
    from traincost.sweeps.fit import fit_model, measurement_offsets

    paths = _datasets(dataset_opts, more_datasets)
    out = Path(output)
    if not out.name.endswith(MODEL_SUFFIXES) or out.name.endswith(".meta.json"):
        raise TraincostUsageError(f"-o {output}: a residual model is a .json (or gzip-compressed .json.gz) file")
    _check_writable(out)
    frame = _measured_frame(paths, profile_paths, processes, cache_path, as_json, each_row, trust_code)
    model, reports = fit_model(frame, {"n_estimators": trees})
    model.save(out)
    from traincost.correction.artifacts import sidecar_path

    summary = {"output": str(out), "sidecar": str(sidecar_path(out)), "rows": len(frame),
               "measurements": len(measurement_offsets(frame)[0]),
               "skipped_rows": len(frame.skipped), "user_code_rows": frame.user_code_rows, "scope": model.metadata_["scope"],
               "devices": [d["name"] for d in frame.devices],
               "cv": {s: {"n": r["n"], "analytic": r["analytic"], "corrected": r["corrected"],
                          "interval_coverage": r["interval_coverage"]} for s, r in reports.items()},
               "intervals": {f"{k:g}": list(v) for k, v in model.intervals_.items()}}
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(f"fitted on {len(frame)} configurations ({summary['measurements']} measurements; "
               f"{', '.join(summary['devices'])}; {summary['scope']}) -> {out} "
               f"(+ {sidecar_path(out).name})")
    for rep in reports.values():
        _print_report(rep)


@main.command("evaluate")
@click.option("--dataset", "dataset_opts", multiple=True, type=click.Path(dir_okay=False),
              help="Measured dataset CSV; repeat it or list more files after it.")
@click.argument("more_datasets", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--model", "model_path", type=click.Path(dir_okay=False), default=None,
              help="Score this residual model on the data (held out) instead of cross-validating.")
@click.option("--split", type=click.Choice(["family", "architecture", "both"]), default="family",
              show_default=True, help="Cross-validation: hold out whole families, or whole architectures.")
@click.option("--profile", "profile_paths", multiple=True, type=click.Path(dir_okay=False),
              help="Device profile .json for rows of a device with no shipped profile (repeatable).")
@click.option("--processes", type=click.IntRange(min=1), default=2, show_default=True,
              help="Worker processes walking the rows.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Write a predicted-vs-measured plot (PNG) of the (first) split.")
@click.option("--trees", type=click.IntRange(min=1), default=300, show_default=True,
              help="Boosting rounds of the cross-validated models (XGBoost n_estimators).")
@click.option("--cache", "cache_path", type=click.Path(dir_okay=False), default=None,
              help="Feature cache CSV: rows walked before by the same code are not walked again.")
@_EACH_ROW
@_TRUST_CODE
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object (a list of two with --split both).")
def evaluate_command(dataset_opts: tuple[str, ...], more_datasets: tuple[str, ...], model_path: str | None,
                     split: str, profile_paths: tuple[str, ...], processes: int, plot_path: str | None,
                     trees: int, cache_path: str | None, each_row: bool, trust_code: bool, as_json: bool) -> None:
    """Median and p90 absolute % error of the analytic and the corrected predictions, per family.

    Without --model: cross-validation that never splits one model's rows (leave one family out, or
    architectures held out in grouped folds). With --model: that model on the data as given.
    """
    from traincost.sweeps.fit import evaluate, plot

    paths = _datasets(dataset_opts, more_datasets)
    model = None
    if model_path is not None:
        from traincost.correction.estimator import load

        model = load(model_path)
    if plot_path is not None:
        if Path(plot_path).suffix.lower() not in (".png", ".svg", ".pdf"):
            raise TraincostUsageError(f"--plot {plot_path}: give a .png, .svg or .pdf file")
        _check_writable(Path(plot_path))
    frame = _measured_frame(paths, profile_paths, processes, cache_path, as_json, each_row, trust_code)
    splits = ["family", "architecture"] if split == "both" else [split]
    reports = []
    for i, s in enumerate(splits):
        rep, corrected = evaluate(frame, s, model=model, params={"n_estimators": trees})
        reports.append(rep)
        if plot_path is not None and i == 0:
            plot(frame, corrected, plot_path, title=f"{', '.join(Path(p).name for p in paths)}: split {rep['split']}")
        if model is not None:
            break
    if as_json:
        click.echo(json.dumps(reports[0] if len(reports) == 1 else reports))
        return
    for rep in reports:
        _print_report(rep)
    if plot_path is not None:
        click.echo(f"plot: {plot_path}")


@main.command("insights")
@click.option("--dataset", "datasets", multiple=True, required=True, type=click.Path(dir_okay=False),
              help="A measured dataset CSV (traincost bench); repeat for more.")
@click.option("--out", "out_dir", default="insights", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the PNGs and report.html (created).")
@click.option("--fast", is_flag=True,
              help="Use the dataset's stored analytic_ms (the prediction at measurement time) instead of "
                   "predicting every row again with today's model (~0.1 s a row).")
@click.option("--residual", default="auto", show_default=True,
              help="auto (the shipped model for the device), none, or a residual model .json.")
@click.option("--dpi", type=click.IntRange(40, 300), default=80, show_default=True, help="PNG resolution.")
@_TRUST_CODE
@click.option("--json", "as_json", is_flag=True, help="Print the paths written and the top correlations as JSON.")
def insights_command(datasets: tuple[str, ...], out_dir: str, fast: bool, residual: str, dpi: int,
                     trust_code: bool, as_json: bool) -> None:
    """What drives training-step time in measured datasets: correlations (Pearson, Spearman; overall and per
    family), the seed's one-factor plots, predicted against measured, residual importances; PNGs and one
    self-contained report.html."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from traincost.reports.insights import build_report

    for path in datasets:
        if not Path(path).is_file():
            raise TraincostUsageError(f"dataset not found: {path}")
    if residual not in ("auto", "none") and not Path(residual).is_file():
        raise TraincostUsageError(f"--residual: expected auto, none or a model .json, got {residual!r}")
    err = Console(stderr=True)
    with Progress(TextColumn("{task.description:<24}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=err, transient=True,
                  disable=as_json or not err.is_terminal) as bar:
        task = bar.add_task("predicting rows", total=None)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=f"{stage}: predicting rows")

        result = build_report(list(datasets), out_dir, analytic="stored" if fast else "recompute",
                              residual=residual, dpi=dpi, progress=progress, trust_code=trust_code)
    _warn_user_code(result.user_code)
    if as_json:
        click.echo(json.dumps({"out_dir": result.out_dir, "html": result.html, "pngs": result.pngs,
                               "rows": result.rows, "devices": result.devices, "analytic": result.analytic,
                               "residual": result.residual, "top_correlations": result.top_correlations,
                               "notes": result.notes, "user_code_rows": sum(result.user_code.values())},
                              default=float))
        return
    click.echo(f"wrote {result.html} and {len(result.pngs)} PNGs ({result.rows} steps, "
               f"analytic {'stored' if fast else 'recomputed'})")
    for line in result.reading:
        click.echo(f"- {line}")
    for note in result.notes:
        click.echo(f"note: {note}")
