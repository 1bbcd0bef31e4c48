"""The ``traincost`` command line. Renders results and maps errors to exit codes (1 failure, 2 usage)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from traincost.errors import TraincostError, TraincostUsageError

_FAMILY_OPTIONS = (
    # (option, help) — the union of the four families' parameters; each family takes its own.
    ("input-features", "fc: input features"),
    ("hidden-layers", "fc: hidden layers"),
    ("hidden-width", "fc: hidden width"),
    ("dropout", "fc: dropout rate"),
    ("batchnorm", "fc/vgg: batch norm (true/false)"),
    ("blocks", "vgg: blocks (int); resnet: blocks per stage (e.g. 3,4,6,3)"),
    ("convs-per-block", "vgg: convolutions per block"),
    ("filters", "vgg: base filters, doubling per block"),
    ("block", "resnet: basic or bottleneck"),
    ("width", "resnet: base width"),
    ("stages", "inception: stages"),
    ("modules-per-stage", "inception: modules per stage"),
    ("f1", "inception: 1x1 branch width"),
    ("f2-in", "inception: 3x3 branch reduce width"),
    ("f2-out", "inception: 3x3 branch width"),
    ("f3-in", "inception: 5x5 branch reduce width"),
    ("f3-out", "inception: 5x5 branch width"),
    ("f4-out", "inception: pool branch width"),
    ("dense-layers", "vgg/resnet/inception: hidden dense layers in the head"),
    ("dense-width", "vgg/resnet/inception: dense layer width"),
    ("input-size", "vgg/resnet/inception: input image side in pixels"),
    ("classes", "all families: output classes"),
)


class _Group(click.Group):
    """Turns library errors into one line on stderr and an exit code; never a traceback."""

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        """click's own usage errors (a missing option, a bad choice) as one line too, not a usage block."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as exc:
            if isinstance(exc, getattr(click.exceptions, "NoArgsIsHelpError", ())):
                exc.show()  # bare `traincost`: the help text, as click shows it
                sys.exit(exc.exit_code)
            hint = ""
            if isinstance(exc, click.UsageError) and exc.ctx is not None:
                hint = f" (see '{exc.ctx.command_path} --help')"
            message = " ".join(exc.format_message().split())
            click.echo(f"Error: {message}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except TraincostUsageError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(2)
        except TraincostError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(1)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("Interrupted", err=True)
            ctx.exit(130)
        except Exception as exc:  # a bug: still one line, exit 1
            first = (str(exc).splitlines() or [""])[0]
            click.echo(f"Error: internal error: {type(exc).__name__}: {first}", err=True)
            ctx.exit(1)


def _family_options(func: Any) -> Any:
    for name, help_text in reversed(_FAMILY_OPTIONS):
        func = click.option(f"--{name}", name.replace("-", "_"), type=str, default=None,
                            help=help_text)(func)
    return func


def _model_options(func: Any) -> Any:
    """MODEL argument, --spec, --input-shape and the family parameters."""
    func = _family_options(func)
    func = click.option("--input-dtype", type=click.Choice(["float32", "float16", "bfloat16", "int64", "int32"]),
                        default=None, help="Input dtype: int64 for token models (embedding inputs).")(func)
    func = click.option("--input-shape", type=str, default=None,
                        help="Per-sample input shape, e.g. 3,224,224 (required for file.py:factory models).")(func)
    func = click.option("--spec", "spec_path", type=click.Path(dir_okay=False), default=None,
                        help="A JSON/YAML file holding one architecture description.")(func)
    return click.argument("model", required=False)(func)


def _step_options(func: Any) -> Any:
    func = click.option("--optimizer", type=click.Choice(["sgd", "adam", "adamw"]), default="sgd",
                        show_default=True)(func)
    func = click.option("--channels-last", is_flag=True, help="NHWC memory format for images.")(func)
    func = click.option("--precision", type=click.Choice(["fp32", "tf32", "bf16", "fp16"]),
                        default="fp32", show_default=True,
                        help="fp32 = PyTorch defaults; bf16/fp16 = autocast (fp16 with GradScaler).")(func)
    return click.option("--batch-size", type=int, required=True, help="Samples per step (per GPU).")(func)


def _resolve_model(model: str | None, spec_path: str | None, input_shape: str | None,
                   family_values: dict[str, str | None], input_dtype: str | None = None):
    from traincost.flopmodel.arch import ArchSpec, resolve

    given = {k: v for k, v in family_values.items() if v is not None}
    if spec_path is not None:
        if model is not None:
            raise TraincostUsageError("give either MODEL or --spec, not both")
        if given:
            raise TraincostUsageError(f"--spec carries its own parameters; do not pass --{next(iter(given)).replace('_', '-')}")
        spec = ArchSpec.from_file(spec_path)
        if input_shape is not None or input_dtype is not None:
            spec = ArchSpec(spec.kind, spec.name, spec.params,
                            input_shape if input_shape is not None else spec.input_shape,
                            input_dtype or spec.input_dtype)
        return spec
    if model is None:
        raise TraincostUsageError("missing MODEL (a family, a torchvision name, file.py:factory) or --spec FILE")
    if given and model not in ("fc", "vgg", "resnet", "inception"):
        raise TraincostUsageError(
            f"--{next(iter(given)).replace('_', '-')} applies to the families fc, vgg, resnet, inception, not {model!r}")
    return resolve(model, params=given, input_shape=input_shape, input_dtype=input_dtype)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="traincost")
def main() -> None:
    """traincost: training time, memory and cost of a CNN/DNN, from its architecture alone."""


@main.command("count")
@_model_options
@_step_options
@click.option("--memory-gb", type=float, default=None,
              help="Also find the largest batch whose predicted peak fits in this many GiB.")
@click.option("--top", type=click.IntRange(min=1), default=15, show_default=True, help="Layers to show.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def count_command(model: str | None, spec_path: str | None, input_shape: str | None,
                  input_dtype: str | None, batch_size: int,
                  precision: str, channels_last: bool, optimizer: str, memory_gb: float | None,
                  top: int, as_json: bool, **family_values: str | None) -> None:
    """Walk one training step (forward, loss, backward, optimizer) and count its work.

    MODEL is a family (fc, vgg, resnet, inception, with its --options), a torchvision name
    (resnet50, vit_b_16, ...), a user model file.py:factory or package.module:factory (with
    --input-shape), or use --spec FILE.
    """
    from traincost.flopmodel.count import count, max_batch_size

    if batch_size < 1:
        raise TraincostUsageError(f"--batch-size must be a positive integer, got {batch_size}")
    if memory_gb is not None and memory_gb <= 0:
        raise TraincostUsageError(f"--memory-gb must be positive, got {memory_gb}")
    spec = _resolve_model(model, spec_path, input_shape, family_values, input_dtype)
    result = count(spec, batch_size=batch_size, precision=precision, channels_last=channels_last,
                   optimizer=optimizer)
    out = result.to_dict()
    if memory_gb is not None:
        out["memory_bytes"] = int(memory_gb * 2**30)
        out["max_batch_size"] = max_batch_size(spec, memory_bytes=out["memory_bytes"], precision=precision,
                                               channels_last=channels_last, optimizer=optimizer,
                                               start=batch_size)
    if as_json:
        click.echo(json.dumps(out))
        return
    from traincost.render import count_table, print_renderable

    print_renderable(count_table(result, top=top))
    if memory_gb is not None:
        click.echo(f"largest batch that fits in {memory_gb:g} GiB: {out['max_batch_size']}")


# ------------------------------------------------------------------ calibrate, gpus (issue 3)


def _check_writable(path: "Path") -> None:
    """Fail now, before minutes of measuring, if ``path`` cannot be written (usage error, exit 2)."""
    import os
    import tempfile

    if path.is_dir():
        raise TraincostUsageError(f"output {str(path)!r} is a directory; give a file name such as profile.json")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise TraincostUsageError(f"cannot write {str(path)!r}: {str(parent)!r} {what}")
    if path.exists() and not os.access(path, os.W_OK):
        raise TraincostUsageError(f"cannot write {str(path)!r}: permission denied")
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".traincost-write-test-"):
            pass
    except OSError as exc:
        raise TraincostUsageError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None


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
        "spread": {k: v for k, v in profile.spread.items() if k != "by_family"},
    }


@main.command("calibrate")
@click.option("--device", default="cuda", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--quick", is_flag=True, help="A smaller grid and fewer repeats (CPU: under a minute).")
@click.option("-o", "--output", type=click.Path(dir_okay=True), default=None,
              help="Profile JSON to write [default: ./<device-slug>.json].")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def calibrate_command(device: str, quick: bool, output: str | None, as_json: bool) -> None:
    """Measure a device with microbenchmarks and write its profile (JSON).

    GEMM and convolution throughput per math mode, memory and reduction bandwidth, eager dispatch cost,
    launch latency and optimizer steps; fitted efficiency curves plus every raw measurement.
    """
    import os

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from traincost.calibrate.microbench import calibrate, device_slug, parse_device
    from traincost.devices import save_profile

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

        profile = _calibrate_until_terminated(calibrate, str(dev), quick, progress)
    save_profile(profile, path)
    summary = _calibration_summary(profile)
    summary["output"] = str(path)
    if as_json:
        click.echo(json.dumps(summary, default=str))
        return
    _print_calibration(summary)


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
    if summary.get("interrupted"):
        console.print("[yellow]interrupted: the profile holds what was measured until then "
                      "(raw.skipped lists the rest)[/]")
    others = (summary.get("host_load") or {}).get("other_processes_cpu_s_per_wall_s")
    if summary["kind"] == "cpu" and others is not None and others > 0.25:
        console.print(f"[yellow]warning: other processes used {others:.2f} CPU s per second during the "
                      "calibration: the CPU timings are inflated; calibrate again on an idle machine[/]")
    console.print(f"wrote {summary['output']}")


@main.command("gpus")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def gpus_command(as_json: bool) -> None:
    """List the GPU catalog: datasheet peaks, memory, bandwidth and the cheapest on-demand price."""
    from traincost import catalog
    from traincost.devices import load_shipped_profiles

    calibrated = {p.catalog_key for p in load_shipped_profiles() if p.source == "calibrated" and p.catalog_key}
    prices_for = getattr(catalog, "prices_for", None)
    rows = []
    for g in catalog.load_gpus():
        cheapest = None
        if prices_for is not None:
            prices = prices_for(g)
            if prices:
                p = prices[0]
                cheapest = {"usd_per_gpu_hour": p.usd_per_gpu_hour, "provider": p.provider,
                            "date": p.source_date, "source": p.source}
        rows.append({
            "name": g.name, "key": g.key, "fp32_tflops": g.fp32_tflops, "tf32_tflops": g.tf32_tflops,
            "bf16_tflops": g.bf16_tflops, "fp16_tflops": g.fp16_tflops, "memory_gb": g.memory_gb,
            "mem_bandwidth_gb_s": g.mem_bandwidth_gb_s, "sm_count": g.sm_count, "launch_year": g.launch_year,
            "profile": "calibrated" if g.key in calibrated else "datasheet", "cheapest": cheapest,
        })
    if as_json:
        click.echo(json.dumps(rows))
        return
    from rich.console import Console
    from rich.table import Table

    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:g}"

    table = Table(title=f"GPU catalog: {len(rows)} GPUs, dense TFLOP/s, cheapest on-demand price "
                        "(--json for keys and sources)", title_justify="left")
    for col in ("name", "fp32", "tf32", "bf16", "fp16", "mem GB", "GB/s", "profile", "$/GPU-h", "provider (date)"):
        table.add_column(col, justify="left" if col in ("name", "profile", "provider (date)") else "right",
                         no_wrap=col != "provider (date)")
    for r in rows:
        c = r["cheapest"]
        table.add_row(r["name"], num(r["fp32_tflops"]), num(r["tf32_tflops"]), num(r["bf16_tflops"]),
                      num(r["fp16_tflops"]), num(r["memory_gb"]), num(r["mem_bandwidth_gb_s"]), r["profile"],
                      f"{c['usd_per_gpu_hour']:.2f}" if c else "-", f"{c['provider']} ({c['date']})" if c else "-")
    Console(width=None if sys.stdout.isatty() else 140).print(table)


# ------------------------------------------------------------------ predict, compare (issue 4)


def _run_options(func: Any) -> Any:
    """--epochs, --dataset-size, --provider (shared by predict and compare)."""
    func = click.option("--provider", default=None,
                        help="Only this cloud provider's price (e.g. aws, gcp, lambda).")(func)
    func = click.option("--dataset-size", type=int, default=None,
                        help="Samples per epoch; steps per epoch = ceil(S / (batch x GPUs)).")(func)
    return click.option("--epochs", type=float, default=None,
                        help="Epochs of the run (default 1 when --dataset-size is given).")(func)


def _parallel_options(func: Any) -> Any:
    """--nodes, --network (data parallel over several servers; shared by predict and compare)."""
    func = click.option("--network", default=None,
                        help="Network between nodes, needed with --nodes > 1: a links.csv key (ib-edr, ib-hdr, "
                             "ib-ndr, eth-100g, eth-200g, eth-400g), NICs per node as '8x ib-hdr'.")(func)
    return click.option("--nodes", type=int, default=1, show_default=True,
                        help="Servers the GPUs are spread over (GPUs divisible by nodes).")(func)


@main.command("predict")
@_model_options
@_step_options
@click.option("--device", required=True,
              help="cpu, a GPU name (A100, 'H100 SXM', T4, ...) or a device profile .json.")
@_run_options
@click.option("--gpus", type=int, default=1, show_default=True,
              help="GPUs in all, each at --batch-size: DDP data parallel, step = one GPU's step + the gradient "
                   "all-reduce not hidden behind backward.")
@_parallel_options
@click.option("--correction", default="auto", show_default=True,
              help="Learned correction: auto (the shipped residual model for the device, else a cross-device "
                   "one), none (analytic model alone) or a residual model .json from 'traincost fit'.")
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True, help="Layers to show.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def predict_command(model: str | None, spec_path: str | None, input_shape: str | None, input_dtype: str | None,
                    batch_size: int, precision: str, channels_last: bool, optimizer: str, device: str,
                    epochs: float | None, dataset_size: int | None, provider: str | None, gpus: int,
                    nodes: int, network: str | None, correction: str, top: int, as_json: bool,
                    **family_values: str | None) -> None:
    """Predict the training step time, memory and cost of MODEL on one device.

    MODEL as in 'traincost count'. Prints step time, samples/s, epoch and total time (with
    --dataset-size), peak memory against the device memory (and the largest batch that fits), the run's
    cost per provider with each price's date, the bound (compute, memory or host) and the heaviest layers.
    """
    from traincost.predict import predict, with_provider

    spec = _resolve_model(model, spec_path, input_shape, family_values, input_dtype)
    estimate = predict(spec, device=device, batch_size=batch_size, precision=precision,
                       channels_last=channels_last, optimizer=optimizer, epochs=epochs,
                       dataset_size=dataset_size, gpus=gpus, nodes=nodes, network=network,
                       correction=_correction_arg(correction))
    estimate = with_provider(estimate, provider)
    if as_json:
        click.echo(json.dumps(estimate.to_dict()))
        return
    from traincost.render import estimate_view, print_renderable

    print_renderable(estimate_view(estimate, top=top))


@main.command("compare")
@_model_options
@_step_options
@click.option("--gpus", "devices", required=True,
              help='Comma-separated devices to compare, e.g. "H100 SXM,A100 SXM 80GB,L4" (GPU names, cpu or '
                   "profile .json files).")
@_run_options
@click.option("-n", "--num-gpus", "num_gpus", type=int, default=1, show_default=True,
              help="GPUs per run (data parallel, each at --batch-size); --gpus is the device list.")
@_parallel_options
@click.option("--sort", "sort", type=click.Choice(["time", "cost"]), default="time", show_default=True,
              help="Rank by run time or by dollars (per sample without --dataset-size).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=True), default=None,
              help="Also write a time-vs-cost scatter with the Pareto front (.png, .pdf, .svg, .jpg).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list (sorted like the table).")
def compare_command(model: str | None, spec_path: str | None, input_shape: str | None, input_dtype: str | None,
                    batch_size: int, precision: str, channels_last: bool, optimizer: str, devices: str,
                    epochs: float | None, dataset_size: int | None, provider: str | None, num_gpus: int,
                    nodes: int, network: str | None, sort: str, plot_path: str | None, as_json: bool,
                    **family_values: str | None) -> None:
    """Compare MODEL's training on several GPUs and providers: time, dollars, Pareto front, fit.

    One walk, priced on each device, --num-gpus GPUs each (DDP data parallel) at --batch-size. One row per
    (GPU, provider): with --dataset-size (and --epochs) the run's total time and dollars, without it the step
    time and dollars per million samples. Rows marked * are on the Pareto front (no other row both faster
    and cheaper); rows that do not fit in memory are marked and left off the front. --sort time|cost.
    """
    from traincost.decide import choices, rank_choices
    from traincost.predict import compare

    names = [d.strip() for d in devices.split(",") if d.strip()]
    if not names:
        raise TraincostUsageError("--gpus needs at least one device, e.g. --gpus \"A100,H100\"")
    if num_gpus < 1:
        raise TraincostUsageError(f"--num-gpus must be a positive integer, got {num_gpus}")
    if plot_path is not None:
        _check_plot_path(Path(plot_path))
    spec = _resolve_model(model, spec_path, input_shape, family_values, input_dtype)
    estimates = compare(spec, devices=names, batch_size=batch_size, precision=precision,
                        channels_last=channels_last, optimizer=optimizer, epochs=epochs,
                        dataset_size=dataset_size, gpus=num_gpus, nodes=nodes, network=network)
    if provider is not None:
        estimates = _only_provider(estimates, provider)
    ranked = rank_choices(choices(estimates), sort=sort)
    best = {}
    for c in ranked:
        best.setdefault(c.estimate_index, c.rank)
    order = sorted(range(len(estimates)), key=lambda i: best[i])
    if plot_path is not None:
        from traincost.render import pareto_plot

        pareto_plot(ranked, Path(plot_path), title=f"{estimates[0].model}: time vs cost")
    if as_json:
        rows = []
        for i in order:
            mine = [c.to_dict() for c in ranked if c.estimate_index == i]
            rows.append({**estimates[i].to_dict(), "pareto": any(c["pareto"] for c in mine), "rank": best[i],
                         "ranking": mine})
        click.echo(json.dumps(rows))
        return
    from rich.console import Console

    from traincost.render import decision_table, print_renderable

    console = Console()
    print_renderable(decision_table([estimates[i] for i in order], ranked, sort=sort),
                     Console(width=max(console.width, 150)))
    if plot_path is not None:
        click.echo(f"wrote {plot_path}")


_PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def _check_plot_path(path: Path) -> None:
    """A usage error now (before the walk) when the plot cannot be written or its format is unknown."""
    if path.suffix.lower() not in _PLOT_SUFFIXES:
        raise TraincostUsageError(f"--plot {str(path)!r}: the file name must end in one of "
                                  f"{', '.join(_PLOT_SUFFIXES)}")
    _check_writable(path)


def _compare_key(estimate: Any) -> tuple[float, str]:
    """Total time when the run is known, else the step time (same order: the steps are the same)."""
    total = estimate.total_s if estimate.total_s is not None else estimate.iteration_ms / 1e3
    return (total, estimate.device["name"])


def _only_provider(estimates: list[Any], provider: str) -> list[Any]:
    """Keep only ``provider``'s price on every estimate; a usage error if no device has one from it."""
    import dataclasses

    wanted = provider.strip().lower()
    out, found = [], False
    for e in estimates:
        prices = [p for p in e.prices if p["provider"].lower() == wanted]
        found = found or bool(prices)
        out.append(dataclasses.replace(e, prices=prices, cost_usd={p["provider"]: p["usd"] for p in prices
                                                                   if p["usd"] is not None}))
    if not found:
        known = sorted({p["provider"] for e in estimates for p in e.prices})
        raise TraincostUsageError(f"no price from provider {provider!r} for these devices; providers with a "
                                  f"price: {', '.join(known) or 'none'}")
    return out


# ------------------------------------------------------------------ bench, merge (issue 5)


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
    import dataclasses
    import os
    import signal
    import threading
    import time

    from traincost.calibrate import bench
    from traincost.calibrate.microbench import parse_device
    from traincost.calibrate.plans import parse_shard, shard as take_shard

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
    try:
        done_keys = bench.existing_keys(out) if resume else set()
    except bench.DatasetError as exc:
        raise bench.DatasetError(f"cannot resume: {exc}; write to a new file (traincost merge combines them)") from None
    configs = bench.plan_for_device(plan_name, dev, limit=limit, seed=seed, resume_keys=done_keys)
    if shard_at is not None:
        configs = take_shard(configs, *shard_at)
    settings = bench.DEFAULT_SETTINGS["cuda" if dev.type == "cuda" else "cpu"]
    chosen = {"repeats": repeats, "warmup": warmup, "quiet_wait_s": quiet_wait, "min_seconds": min_time}
    settings = dataclasses.replace(settings, **{k: v for k, v in chosen.items() if v is not None})
    budget_s = None if budget_minutes is None else max(0.0, 60 * budget_minutes - (time.monotonic() - started))

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

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

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    in_main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGTERM, on_term) if in_main else None
    try:
        with bar:
            summary = bench.run_sweep(configs, out, dev, resume=resume, budget_s=budget_s, settings=settings,
                                      profile=profile_path, progress=progress)
    except KeyboardInterrupt:
        rows = len(bench.existing_keys(out)) if out.exists() else 0
        click.echo(f"Interrupted: {out} keeps its {rows} finished rows; rerun with --resume to continue", err=True)
        sys.exit(130)
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, old)
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
    from traincost.calibrate.bench import merge_datasets, write_dataset

    for path in inputs:
        if not Path(path).is_file():
            raise TraincostUsageError(f"dataset not found: {path}")
    out = Path(output)
    _check_writable(out)
    merged = merge_datasets(list(inputs))
    write_dataset(merged.rows, out)
    result = {"output": str(out), "files": merged.files, "rows_read": merged.read, "rows": len(merged.rows),
              "duplicates_dropped": merged.duplicates}
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"merged {merged.read} rows from {merged.files} files into {out}: {len(merged.rows)} rows "
               f"({merged.duplicates} duplicates dropped)")


# ------------------------------------------------------------------ insights (issue 8)


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
@click.option("--json", "as_json", is_flag=True, help="Print the paths written and the top correlations as JSON.")
def insights_command(datasets: tuple[str, ...], out_dir: str, fast: bool, residual: str, dpi: int,
                     as_json: bool) -> None:
    """What drives training-step time in measured datasets: correlations (Pearson, Spearman; overall and per
    family), the seed's one-factor plots, predicted against measured, residual importances; PNGs and one
    self-contained report.html."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from traincost.insights import build_report

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
                              residual=residual, dpi=dpi, progress=progress)
    if as_json:
        click.echo(json.dumps({"out_dir": result.out_dir, "html": result.html, "pngs": result.pngs,
                               "rows": result.rows, "devices": result.devices, "analytic": result.analytic,
                               "residual": result.residual, "top_correlations": result.top_correlations,
                               "notes": result.notes}, default=float))
        return
    click.echo(f"wrote {result.html} and {len(result.pngs)} PNGs ({result.rows} steps, "
               f"analytic {'stored' if fast else 'recomputed'})")
    for line in result.reading:
        click.echo(f"- {line}")
    for note in result.notes:
        click.echo(f"note: {note}")


# ------------------------------------------------------------------ fit, evaluate (issue 6)


def _correction_arg(value: str) -> Any:
    """--correction: ``none``/``off`` -> False (analytic only), ``auto`` or a model path as given."""
    text = value.strip()
    if text.lower() in ("none", "off", "false", "no", "analytic"):
        return False
    if text.lower() != "auto" and not Path(text).is_file():
        raise TraincostUsageError(f"--correction: residual model not found: {text} (auto, none or a .json from "
                                  "'traincost fit')")
    return text


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
    from traincost.devices import load_profile

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


def _measured_frame(paths: list[str], profile_paths: tuple[str, ...], processes: int, cache_path: str | None,
                    as_json: bool, each_row: bool) -> Any:
    """The datasets walked and priced (:func:`traincost.calibrate.fit.build_frame`), repeated measurements of
    a configuration combined unless ``each_row``."""
    from traincost.calibrate.fit import build_frame, combine_repeats

    frame = build_frame(paths, processes=processes, profiles=_profiles(profile_paths),
                        progress=_progress("walking", as_json), cache=cache_path)
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
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def fit_command(dataset_opts: tuple[str, ...], more_datasets: tuple[str, ...], output: str,
                profile_paths: tuple[str, ...], processes: int, trees: int, cache_path: str | None,
                each_row: bool, as_json: bool) -> None:
    """Train the learned correction (XGBoost on log(measured / analytic)) on measured datasets.

    Every row is walked and priced again with the current code. Cross-validates by family and by
    architecture first (the intervals come from the leave-one-family-out residuals), then fits on all rows.
    """
    from traincost.calibrate.fit import fit_model, measurement_offsets

    paths = _datasets(dataset_opts, more_datasets)
    out = Path(output)
    if out.suffix != ".json":
        raise TraincostUsageError(f"-o {output}: a residual model is a .json file")
    _check_writable(out)
    frame = _measured_frame(paths, profile_paths, processes, cache_path, as_json, each_row)
    model, reports = fit_model(frame, {"n_estimators": trees})
    model.save(out)
    from traincost.correction import sidecar_path

    summary = {"output": str(out), "sidecar": str(sidecar_path(out)), "rows": len(frame),
               "measurements": len(measurement_offsets(frame)[0]),
               "skipped_rows": len(frame.skipped), "scope": model.metadata_["scope"],
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
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object (a list of two with --split both).")
def evaluate_command(dataset_opts: tuple[str, ...], more_datasets: tuple[str, ...], model_path: str | None,
                     split: str, profile_paths: tuple[str, ...], processes: int, plot_path: str | None,
                     trees: int, cache_path: str | None, each_row: bool, as_json: bool) -> None:
    """Median and p90 absolute % error of the analytic and the corrected predictions, per family.

    Without --model: cross-validation that never splits one model's rows (leave one family out, or
    architectures held out in grouped folds). With --model: that model on the data as given.
    """
    from traincost.calibrate.fit import evaluate, plot

    paths = _datasets(dataset_opts, more_datasets)
    model = None
    if model_path is not None:
        from traincost.correction import load

        model = load(model_path)
    if plot_path is not None:
        if Path(plot_path).suffix.lower() not in (".png", ".svg", ".pdf"):
            raise TraincostUsageError(f"--plot {plot_path}: give a .png, .svg or .pdf file")
        _check_writable(Path(plot_path))
    frame = _measured_frame(paths, profile_paths, processes, cache_path, as_json, each_row)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
