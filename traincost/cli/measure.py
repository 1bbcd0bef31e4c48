"""Commands that measure: ``calibrate`` (a device profile from microbenchmarks), ``bench`` (real training
steps into a dataset CSV) and ``merge`` (combine dataset CSVs)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from traincost.cli.app import _check_writable, main
from traincost.errors import TraincostError, TraincostUsageError


def _calibration_summary(profile: Any) -> dict[str, Any]:
    """The headline numbers of a profile (rates in TFLOP/s, GB/s; times in us)."""
    compute = {cls: {mode: {"peak_tflops": c.peak / 1e12, "latency_us": c.latency_s * 1e6}
                     for mode, c in modes.items()} for cls, modes in profile.compute.items()}
    return {
        "name": profile.name, "kind": profile.kind, "catalog_key": profile.catalog_key,
        "compute": compute,
        "memory_gb_per_s": profile.memory.peak / 1e9,
        "memory_cache_gb_per_s": profile.memory.cache_peak / 1e9 if profile.memory.cache_bytes else None,
        "memory_cache_bytes": profile.memory.cache_bytes or None,
        "reduction_gb_per_s": profile.reduction.peak / 1e9,
        "dispatch_us": profile.dispatch_s * 1e6, "dispatch_autocast_us": profile.dispatch_autocast_s * 1e6,
        "launch_us": profile.launch_s * 1e6, "optimizer": profile.optimizer,
        "errors": len(profile.raw.get("errors", [])), "fallbacks": profile.properties.get("fallbacks", []),
        "modes_skipped": profile.properties.get("modes_skipped", {}),
        "calibration_s": profile.properties.get("calibration_s"),
        "host_load": profile.properties.get("host_load", {}),
        "interrupted": bool(profile.properties.get("interrupted")),
        "implausible": profile.properties.get("implausible") or [],
        "remeasured": profile.properties.get("remeasured") or [],
        "spread": {k: v for k, v in profile.spread.items() if k != "by_family"},
    }


@main.command("calibrate")
@click.option("--device", default="cuda", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--quick", is_flag=True, help="A smaller grid and fewer repeats (CPU: under a minute).")
@click.option("-o", "--output", type=click.Path(dir_okay=True), default=None,
              help="Profile JSON to write [default: ./<device-slug>.json].")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option("--force", is_flag=True,
              help="Write the profile even if a fitted constant is physically implausible (listed in "
                   "properties.implausible).")
def calibrate_command(device: str, quick: bool, output: str | None, as_json: bool, force: bool) -> None:
    """Measure a device with microbenchmarks and write its profile (JSON).

    GEMM and convolution throughput per math mode, memory and reduction bandwidth, eager dispatch cost,
    launch latency and optimizer steps; fitted efficiency curves plus every raw measurement.

    A profile whose constants are physically implausible (a busy machine) is measured once more where it is
    wrong, then refused (exit 1; its measurements are kept in <output>.implausible.json) unless --force.
    Ctrl-C keeps what was measured, writes it and exits 130.
    """
    import os

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from traincost.calibrate.host import device_slug, parse_device
    from traincost.calibrate.measure import calibrate
    from traincost.hardware.profile import save_profile

    dev = parse_device(device)
    path = Path(output) if output else Path(f"{device_slug(dev)}.json")
    _check_writable(path)
    err = Console(stderr=True)
    if dev.type == "cpu" and hasattr(os, "getloadavg") and os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
        err.print(f"[yellow]warning: the machine is busy (load {os.getloadavg()[0]:.1f} on "
                  f"{os.cpu_count()} CPUs): CPU timings will be slower than on an idle machine[/]")
    with Progress(TextColumn("{task.description:<48}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=err,
                  transient=True) as bar:
        task = bar.add_task(f"calibrating {dev}", total=None)

        def progress(done: int, total: int, label: str) -> None:
            bar.update(task, completed=done, total=total, description=label[:48])

        try:
            profile = _calibrate_until_terminated(calibrate, str(dev), quick, progress)
        except KeyboardInterrupt:  # before any measurement, or while fitting
            click.echo(f"Interrupted: calibration of {dev} stopped before a profile was fitted; "
                       f"nothing written", err=True)
            sys.exit(130)
    interrupted = bool(profile.properties.get("interrupted"))
    problems = profile.properties.get("implausible") or []
    if problems and not force:
        from traincost.calibrate.plausibility import describe

        kept = path.with_name(f"{path.stem}.implausible{path.suffix or '.json'}")
        save_profile(profile, kept)
        again = profile.properties.get("remeasured") or []
        line = (f"implausible calibration of {dev}"
                f"{' (after measuring ' + ', '.join(again) + ' again)' if again else ''}: "
                f"{describe(problems)}; {path} not written, the measurements are in {kept}; calibrate again "
                f"on a quiet machine, or pass --force to write it anyway")
        if interrupted:
            click.echo(f"Interrupted: {_kept_line(profile)}; {line}", err=True)
            sys.exit(130)
        raise TraincostError(line)
    save_profile(profile, path)
    summary = _calibration_summary(profile)
    summary["output"] = str(path)
    if as_json:
        click.echo(json.dumps(summary, default=str))
    else:
        _print_calibration(summary)
    if problems:
        from traincost.calibrate.plausibility import describe

        click.echo(f"warning: written with --force although implausible: {describe(problems)} "
                   f"(properties.implausible lists all {len(problems)})", err=True)
    if interrupted:
        click.echo(f"Interrupted: wrote {path}: {_kept_line(profile)}; calibrate again for a complete profile",
                   err=True)
        sys.exit(130)


#: ``raw`` keys that are not measurement families.
_NOT_FAMILIES = ("probes", "skipped", "fits", "errors", "discarded")


def _kept_line(profile: Any) -> str:
    """What an interrupted calibration kept: measured points, families missing or cut short."""
    measured = {fam: len(rows) for fam, rows in profile.raw.items()
                if fam not in _NOT_FAMILIES and isinstance(rows, list)}
    left: dict[str, int] = {}
    for s in profile.raw.get("skipped", []):
        if isinstance(s, dict) and s.get("reason") == "interrupted":
            left[s.get("family", "?")] = left.get(s.get("family", "?"), 0) + 1
    missing = [fam for fam in left if not measured.get(fam)]
    short = [f"{fam} ({n} left)" for fam, n in left.items() if measured.get(fam)]
    out = f"kept {sum(measured.values())} measured points"
    out += f"; missing: {', '.join(missing)}" if missing else ""
    out += f"; cut short: {', '.join(short)}" if short else ""
    return out


def _calibrate_until_terminated(calibrate: Any, device: str, quick: bool, progress: Any) -> Any:
    """Run ``calibrate`` with SIGTERM (e.g. from ``timeout``) mapped to KeyboardInterrupt, which
    ``calibrate`` answers by fitting and returning what it measured so far."""
    import signal
    import threading

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        return calibrate(device, quick=quick, progress=progress)
    old = signal.signal(signal.SIGTERM, on_term)
    try:
        return calibrate(device, quick=quick, progress=progress)
    finally:
        signal.signal(signal.SIGTERM, old)


def _print_calibration(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{summary['name']}  ({summary['kind']}, calibrated in {summary['calibration_s']} s)",
                  title_justify="left")
    for col in ("curve", "mode", "peak", "latency"):
        table.add_column(col, justify="left" if col in ("curve", "mode") else "right")
    for cls, modes in summary["compute"].items():
        for mode, c in modes.items():
            table.add_row(cls, mode, f"{c['peak_tflops'] * 1e3:,.1f} GFLOP/s", f"{c['latency_us']:.1f} us")
    mem = f"{summary['memory_gb_per_s']:,.1f} GB/s"
    if summary["memory_cache_gb_per_s"]:
        mem += f" ({summary['memory_cache_gb_per_s']:,.1f} below {summary['memory_cache_bytes'] / 2**20:.1f} MiB)"
    table.add_row("memory", "read+write", mem, "")
    table.add_row("reduction", "read", f"{summary['reduction_gb_per_s']:,.1f} GB/s", "")
    table.add_row("dispatch", "eager op", "", f"{summary['dispatch_us']:.2f} us")
    table.add_row("dispatch", "autocast op", "", f"{summary['dispatch_autocast_us']:.2f} us")
    table.add_row("launch", "tiny kernel", "", f"{summary['launch_us']:.2f} us")
    opt = summary["optimizer"]
    for name in ("sgd", "adamw"):
        if f"{name}_s_per_byte" in opt:
            table.add_row("optimizer", name, f"{1 / max(opt[name + '_s_per_byte'], 1e-30) / 1e9:,.2f} GB/s",
                          f"{opt[name + '_fixed_s'] * 1e6:.0f} us + {opt[name + '_per_tensor_s'] * 1e6:.2f} us/tensor")
    console = Console(width=None if sys.stdout.isatty() else 120)
    console.print(table)
    spread = summary["spread"]
    if spread.get("points"):
        console.print(f"spread of repeats (max-min)/median: median {spread['median_rel_range']:.1%}, "
                      f"p90 {spread['p90_rel_range']:.1%} over {spread['points']} points")
    for mode, why in summary["modes_skipped"].items():
        console.print(f"not measured: {mode}: {why}")
    if summary["errors"]:
        console.print(f"[yellow]{summary['errors']} measurement(s) failed: see raw.errors in the profile[/]")
    for fb in summary["fallbacks"]:
        console.print(f"[yellow]fallback: {fb}[/]")
    if summary.get("remeasured"):
        console.print(f"[yellow]measured again (implausible at first): {', '.join(summary['remeasured'])}[/]")
    if summary.get("interrupted"):
        console.print("[yellow]interrupted: the profile holds what was measured until then "
                      "(raw.skipped lists the rest)[/]")
    others = (summary.get("host_load") or {}).get("other_processes_cpu_s_per_wall_s")
    if summary["kind"] == "cpu" and others is not None and others > 0.25:
        console.print(f"[yellow]warning: other processes used {others:.2f} CPU s per second during the "
                      "calibration: the CPU timings are inflated; calibrate again on an idle machine[/]")
    console.print(f"wrote {summary['output']}")


def describe_skipped(skipped: dict[str, list[int]], first: int = 5) -> str | None:
    """One line naming the lines a dataset read skipped (``file:line``, the first ``first``), or ``None``."""
    where = [f"{name}:{line}" for name, lines in skipped.items() for line in lines]
    if not where:
        return None
    more = f" and {len(where) - first} more" if len(where) > first else ""
    return (f"skipped {len(where)} line{'s' if len(where) != 1 else ''} that {'are' if len(where) != 1 else 'is'} "
            f"not a complete row: {', '.join(where[:first])}{more}")


@main.command("bench")
@click.option("--device", default="cuda", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--plan", "plan_name", required=True,
              help="seed (the seed project's one-factor-at-a-time grids), random (Sobol sample) or PLAN.yaml.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Dataset CSV; rows are appended one by one.")
@click.option("--limit", type=int, default=None,
              help="At most K configurations (random: draws K; default 256). Applied before --shard.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random plan.")
@click.option("--budget-minutes", type=float, default=None,
              help="Stop cleanly between configurations after this many minutes.")
@click.option("--resume", is_flag=True, help="Continue --out: keep its rows, measure only what is missing.")
@click.option("--shard", default=None, help="i/n: take every n-th configuration from the i-th (0-based).")
@click.option("--repeats", type=int, default=None, help="Timed steps per configuration [cpu 5, cuda 10].")
@click.option("--warmup", type=int, default=None, help="Warm-up steps per configuration [cpu 3, cuda 3].")
@click.option("--min-time", "min_time", type=float, default=None,
              help="Seconds of timed steps per configuration at least: short steps are timed more than "
                   "--repeats times [cpu 0.5, cuda 0].")
@click.option("--quiet-wait", type=float, default=None,
              help="cpu: wait up to this many seconds before each configuration for other processes to go "
                   "idle, and re-measure one they disturbed; 0: never wait [cpu 120].")
@click.option("--profile", "profile_path", type=click.Path(dir_okay=False), default=None,
              help="Profile .json for the analytic_ms column [default: the shipped/datasheet profile].")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def bench_command(device: str, plan_name: str, out_path: str, limit: int | None, seed: int,
                  budget_minutes: float | None, resume: bool, shard: str | None, repeats: int | None,
                  warmup: int | None, min_time: float | None, quiet_wait: float | None, profile_path: str | None,
                  as_json: bool) -> None:
    """Measure real training steps of a plan of configurations and append them to a dataset CSV.

    Each configuration: build the model on the device, warm up, time steps on synthetic data (median,
    min, max), record measured peak memory (CUDA), the walk's features and the analytic prediction.
    An OOM or error is recorded as the row's status and the sweep goes on; a killed sweep continues
    with --resume; --shard i/n splits a sweep across a Slurm job array (combine with traincost merge).
    """
    import signal
    import threading
    import time

    from traincost.calibrate.host import parse_device
    from traincost.sweeps import bench
    from traincost.sweeps.plans import parse_shard

    if limit is not None and limit < 1:
        raise TraincostUsageError(f"--limit must be a positive integer, got {limit}")
    if budget_minutes is not None and not budget_minutes > 0:
        raise TraincostUsageError(f"--budget-minutes must be positive, got {budget_minutes}")
    for name, value in (("--repeats", repeats), ("--warmup", warmup)):
        if value is not None and value < (1 if name == "--repeats" else 0):
            raise TraincostUsageError(f"{name} must be {'positive' if name == '--repeats' else 'non-negative'}, "
                                      f"got {value}")
    if quiet_wait is not None and quiet_wait < 0:
        raise TraincostUsageError(f"--quiet-wait must be 0 or more seconds, got {quiet_wait}")
    if min_time is not None and not 0 <= min_time <= 60:
        raise TraincostUsageError(f"--min-time must be 0-60 seconds, got {min_time}")
    shard_at = parse_shard(shard) if shard is not None else None
    if profile_path is not None and not Path(profile_path).is_file():
        raise TraincostUsageError(f"--profile: profile file not found: {profile_path}")
    dev = parse_device(device)
    out = Path(out_path)
    _check_writable(out)
    if out.exists() and out.stat().st_size > 0 and not resume:
        raise TraincostUsageError(f"{out} already exists: pass --resume to continue it, or choose another --out")
    started = time.monotonic()

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    in_main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGTERM, on_term) if in_main else None  # SIGTERM also releases the lock
    try:
        # one writer at a time, from reading what is there to the last row (run_sweep takes it again, reentrantly)
        with bench.DatasetLock(out) as lock:
            if lock.note:
                click.echo(f"note: {lock.note}", err=True)
            _bench_locked(bench, dev, plan_name, out, limit, seed, budget_minutes, resume, shard, shard_at, repeats,
                          warmup, min_time, quiet_wait, profile_path, as_json, started)
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, old)


def _bench_locked(bench: Any, dev: Any, plan_name: str, out: Path, limit: int | None, seed: int,
                  budget_minutes: float | None, resume: bool, shard: str | None, shard_at: Any,
                  repeats: int | None, warmup: int | None, min_time: float | None, quiet_wait: float | None,
                  profile_path: str | None, as_json: bool, started: float) -> None:
    """``bench`` once ``out`` is locked."""
    import dataclasses
    import os
    import time

    from traincost.sweeps.plans import shard as take_shard

    if out.exists() and out.stat().st_size > 0 and not resume:  # again: written while we waited for the lock
        raise TraincostUsageError(f"{out} already exists: pass --resume to continue it, or choose another --out")
    existing: list[dict[str, str]] = []
    if resume and out.exists() and out.stat().st_size > 0:
        try:
            existing = bench.read_dataset(out)
        except bench.DatasetError as exc:
            raise bench.DatasetError(f"cannot resume: {exc}; write to a new file (traincost merge combines them)") \
                from None
        skipped = describe_skipped({str(out): existing.skipped})
        if skipped:
            click.echo(f"warning: {skipped} (left in the file, not counted as measured)", err=True)
    done_keys = {r["config_key"] for r in existing}
    configs = bench.plan_for_device(plan_name, dev, limit=limit, seed=seed, resume_keys=done_keys)
    if shard_at is not None:
        configs = take_shard(configs, *shard_at)
    bench.check_resume(out, existing, configs, dev)  # another plan or device: refuse before measuring
    settings = bench.DEFAULT_SETTINGS["cuda" if dev.type == "cuda" else "cpu"]
    chosen = {"repeats": repeats, "warmup": warmup, "quiet_wait_s": quiet_wait, "min_seconds": min_time}
    settings = dataclasses.replace(settings, **{k: v for k, v in chosen.items() if v is not None})
    budget_s = None if budget_minutes is None else max(0.0, 60 * budget_minutes - (time.monotonic() - started))

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    err = Console(stderr=True)
    if (dev.type == "cpu" and settings.quiet_wait_s == 0 and hasattr(os, "getloadavg")
            and os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1)):
        err.print(f"[yellow]warning: the machine is busy (load {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs) "
                  "and --quiet-wait is 0: CPU timings will be slower than on an idle machine[/]", soft_wrap=True)
    bar = Progress(TextColumn("{task.description:<40}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=err, transient=True,
                   disable=not err.is_terminal)
    task = bar.add_task("bench", total=None)

    def progress(event: Any) -> None:
        if event.row is None:
            bar.update(task, total=event.total, completed=0)
            return
        row = event.row
        text = (f"{row['status'][:24]:<6} {row['model'][:60]} b{row['batch_size']} {row['precision']}"
                f"{' cl' if row['channels_last'] else ''} {row['optimizer']}")
        bar.update(task, completed=event.done, description=text[:40])
        if not err.is_terminal:
            median = row.get("median_ms")
            timing = f"{median:.2f} ms" if isinstance(median, float) else ""
            left = (event.elapsed_s / event.done * (event.total - event.done)) if event.done else 0.0
            err.print(f"{event.done}/{event.total} {text} {timing} (ETA {left / 60:.1f} min)", highlight=False,
                      soft_wrap=True)

    try:
        with bar:
            summary = bench.run_sweep(configs, out, dev, resume=resume, budget_s=budget_s, settings=settings,
                                      profile=profile_path, progress=progress)
    except KeyboardInterrupt:
        rows = len(bench.existing_keys(out)) if out.exists() else 0
        click.echo(f"Interrupted: {out} keeps its {rows} finished rows; rerun with --resume to continue", err=True)
        sys.exit(130)
    result = summary.to_dict()
    result["plan"] = plan_name
    result["shard"] = shard
    if as_json:
        click.echo(json.dumps(result))
        return
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary.statuses.items())) or "none"
    click.echo(f"{summary.written} rows written to {out} ({counts}) in {summary.elapsed_s / 60:.1f} min on "
               f"{summary.device}; {summary.already_done} already there; {summary.remaining} left")
    if summary.stopped_by_budget:
        click.echo(f"budget of {budget_minutes:g} min reached: rerun with --resume to measure the rest")
    if summary.analytic_profile is None:
        click.echo("no profile for this device: analytic_ms is empty (pass --profile FILE.json)")


@main.command("merge")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Merged dataset CSV.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def merge_command(inputs: tuple[str, ...], output: str, as_json: bool) -> None:
    """Combine dataset CSVs (shards of a sweep, runs on other machines) into one, one row per configuration.

    Duplicates (same configuration key: spec, batch, precision, layout, optimizer, device) keep the
    newest ok row. Files with other columns or another schema version are refused.
    """
    from traincost.sweeps.bench import DatasetLock, merge_datasets, write_dataset

    for path in inputs:
        if not Path(path).is_file():
            raise TraincostUsageError(f"dataset not found: {path}")
    out = Path(output)
    _check_writable(out)
    with DatasetLock(out) as lock:  # never replace a dataset a bench is appending to
        if lock.note:
            click.echo(f"note: {lock.note}", err=True)
        merged = merge_datasets(list(inputs))
        write_dataset(merged.rows, out)
    skipped = describe_skipped(merged.skipped)
    if skipped:
        click.echo(f"warning: {skipped} (left out of {out})", err=True)
    result = {"output": str(out), "files": merged.files, "rows_read": merged.read, "rows": len(merged.rows),
              "duplicates_dropped": merged.duplicates}
    if merged.skipped:
        result["skipped_lines"] = [f"{name}:{line}" for name, lines in merged.skipped.items() for line in lines]
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"merged {merged.read} rows from {merged.files} files into {out}: {len(merged.rows)} rows "
               f"({merged.duplicates} duplicates dropped)")
