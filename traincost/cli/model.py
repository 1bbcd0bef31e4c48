"""Commands on one model: ``count`` (walk a training step), ``predict`` (time, memory and cost on one
device), ``compare`` (several devices and providers, Pareto front) and ``gpus`` (the GPU catalog)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import click

from traincost.cli.app import (
    _check_writable,
    _model_options,
    _resolve_model,
    _step_options,
    main,
)
from traincost.errors import TraincostUsageError
from traincost.queries import check_run_options


@main.command("count")
@_model_options
@_step_options
@click.option("--memory-gb", type=float, default=None,
              help="Also find the largest batch whose predicted peak fits in this many GiB.")
@click.option("--top", type=click.IntRange(min=1), default=15, show_default=True, help="Layers to show.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def count_command(model: str | None, spec_path: str | None, input_shape: str | None, seq_len: int | None,
                  input_dtype: str | None, batch_size: int,
                  precision: str, channels_last: bool, optimizer: str, memory_gb: float | None,
                  top: int, as_json: bool, **family_values: str | None) -> None:
    """Walk one training step (forward, loss, backward, optimizer) and count its work.

    MODEL is a family (fc, vgg, resnet, inception, with its --options), a torchvision name
    (resnet50, vit_b_16, ...), a timm model (timm:convnext_tiny), a Hugging Face transformer from its
    config (hf:path/to/config.json or hf:GPT2Config, with --seq-len), a user model file.py:factory or
    package.module:factory (with --input-shape), or use --spec FILE.
    """
    from traincost.flopmodel.count import MAX_SEARCH_BATCH, count, max_batch_size

    if batch_size < 1:
        raise TraincostUsageError(f"--batch-size must be a positive integer, got {batch_size}")
    if memory_gb is not None and (not math.isfinite(memory_gb) or memory_gb <= 0 or memory_gb > _MAX_MEMORY_GB):
        raise TraincostUsageError(f"--memory-gb must be a positive number of GiB up to {_MAX_MEMORY_GB} (1 PiB), "
                                  f"got {memory_gb:g}")
    spec = _resolve_model(model, spec_path, input_shape, family_values, input_dtype, seq_len)
    result = count(spec, batch_size=batch_size, precision=precision, channels_last=channels_last,
                   optimizer=optimizer)
    out = result.to_dict()
    if memory_gb is not None:
        out["memory_bytes"] = int(memory_gb * 2**30)
        out["memory_bytes"] = max(out["memory_bytes"], 1)
        out["max_batch_size"] = max_batch_size(spec, memory_bytes=out["memory_bytes"], precision=precision,
                                               channels_last=channels_last, optimizer=optimizer,
                                               start=batch_size)
    if as_json:
        click.echo(json.dumps(out))
        return
    from traincost.cli.render import count_table, print_renderable

    print_renderable(count_table(result, top=top))
    if memory_gb is not None:
        capped = " (the search stops there)" if out["max_batch_size"] >= MAX_SEARCH_BATCH else ""
        click.echo(f"largest batch that fits in {memory_gb:g} GiB: {out['max_batch_size']}{capped} (the walk's "
                   "peak alone; 'traincost predict' also keeps room for the CUDA context, ~500 MiB, and the "
                   "profile's allocator/workspace overhead, so its largest batch on a GPU of this size is smaller)")


#: The most memory ``count --memory-gb`` searches a batch for (GiB): 1 PiB.
_MAX_MEMORY_GB = 2**20


@main.command("gpus")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def gpus_command(as_json: bool) -> None:
    """List the GPU catalog: datasheet peaks, memory, bandwidth and the cheapest on-demand price."""
    from traincost.queries import gpu_catalog

    rows = gpu_catalog()
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


def _price_options(price_per_hour: float | None, prices: str | None, provider: str | None) -> Any:
    """--price-per-hour / --prices as a checked :class:`~traincost.pricing.cost.PriceTable` (usage errors naming
    the option; a bad row of the --prices file names file:line and column), before any walking."""
    from traincost.pricing.cost import USER_PROVIDER, price_table

    if price_per_hour is not None:
        if prices is not None:
            raise TraincostUsageError("give --price-per-hour (one price for every GPU-hour) or --prices FILE (a "
                                      "price table), not both")
        if not math.isfinite(price_per_hour) or price_per_hour <= 0:
            raise TraincostUsageError(f"--price-per-hour must be a positive number of USD per GPU-hour, "
                                      f"got {price_per_hour:g}")
        if provider is not None and provider.strip().lower() != USER_PROVIDER:
            raise TraincostUsageError(f"--provider {provider!r} picks a price of the table, which "
                                      "--price-per-hour replaces: give one of them")
    return price_table(price_per_hour, prices)


def _run_options(func: Any) -> Any:
    """--epochs, --dataset-size, --provider, --price-per-hour, --prices (shared by predict and compare)."""
    func = click.option("--prices", "prices_file", type=str, default=None, metavar="FILE",
                        help="Your own price table instead of the shipped one: a CSV with the columns of "
                             "traincost/data/prices.csv (provider, gpu_key, gpu_count, price_usd_per_gpu_hour, "
                             "price_type, source, source_date, ...); each provider's newest on-demand row is "
                             "used.")(func)
    func = click.option("--price-per-hour", "price_per_hour", type=float, default=None, metavar="USD",
                        help="Your price for one GPU-hour (overrides the price table; shown as provider "
                             "'your price'): run $ = hours x USD x GPUs.")(func)
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


def _correction_arg(value: str) -> Any:
    """--correction: ``none``/``off`` -> False (analytic only), ``auto`` or a model path as given."""
    text = value.strip()
    if text.lower() in ("none", "off", "false", "no", "analytic"):
        return False
    if text.lower() != "auto" and not Path(text).is_file():
        raise TraincostUsageError(f"--correction: residual model not found: {text} (auto, none or a .json from "
                                  "'traincost fit')")
    return text


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
@click.option("--host", "host", default=None,
              help="The CPU that launches the GPU's kernels, when not the profile's: a factor on every host cost "
                   "(0.7 = 30 %% faster per op) or a calibrated GPU profile .json whose host to take.")
@click.option("--correction", default="auto", show_default=True,
              help="Learned correction: auto (the shipped residual model for the device, else a cross-device "
                   "one), none (analytic model alone) or a residual model .json from 'traincost fit'.")
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True, help="Layers to show.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def predict_command(model: str | None, spec_path: str | None, input_shape: str | None, seq_len: int | None,
                    input_dtype: str | None,
                    batch_size: int, precision: str, channels_last: bool, optimizer: str, device: str,
                    epochs: float | None, dataset_size: int | None, provider: str | None,
                    price_per_hour: float | None, prices_file: str | None, gpus: int,
                    nodes: int, network: str | None, host: str | None, correction: str, top: int,
                    as_json: bool, **family_values: str | None) -> None:
    """Predict the training step time, memory and cost of MODEL on one device.

    MODEL as in 'traincost count'. Prints step time, samples/s, epoch and total time (with
    --dataset-size), peak memory against the device memory (and the largest batch that fits), the run's
    cost per provider with each price's date and source (each provider's newest on-demand price; yours with
    --price-per-hour or --prices), the bound (compute, memory or host) and the heaviest layers.
    """
    from traincost.api import predict, with_provider

    check_run_options(epochs, dataset_size)
    table = _price_options(price_per_hour, prices_file, provider)
    spec = _resolve_model(model, spec_path, input_shape, family_values, input_dtype, seq_len)
    estimate = predict(spec, device=device, batch_size=batch_size, precision=precision,
                       channels_last=channels_last, optimizer=optimizer, epochs=epochs,
                       dataset_size=dataset_size, gpus=gpus, nodes=nodes, network=network, host=host,
                       correction=_correction_arg(correction), prices=table)
    estimate = with_provider(estimate, provider)
    if as_json:
        click.echo(json.dumps(estimate.to_dict()))
        return
    from traincost.cli.render import estimate_view, print_renderable

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
@click.option("--host", "host", default=None,
              help="The CPU that launches the GPU's kernels, when not the profile's: a factor on every host cost "
                   "(0.7 = 30 %% faster per op) or a calibrated GPU profile .json whose host to take.")
@click.option("--sort", "sort", type=click.Choice(["time", "cost"]), default="time", show_default=True,
              help="Rank by run time or by dollars (per sample without --dataset-size).")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=True), default=None,
              help="Also write a time-vs-cost scatter with the Pareto front (.png, .pdf, .svg, .jpg).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list (sorted like the table).")
def compare_command(model: str | None, spec_path: str | None, input_shape: str | None, seq_len: int | None,
                    input_dtype: str | None,
                    batch_size: int, precision: str, channels_last: bool, optimizer: str, devices: str,
                    epochs: float | None, dataset_size: int | None, provider: str | None,
                    price_per_hour: float | None, prices_file: str | None, num_gpus: int,
                    nodes: int, network: str | None, host: str | None, sort: str, plot_path: str | None,
                    as_json: bool, **family_values: str | None) -> None:
    """Compare MODEL's training on several GPUs and providers: time, dollars, Pareto front, fit.

    One walk, priced on each device, --num-gpus GPUs each (DDP data parallel) at --batch-size. One row per
    (GPU, provider): with --dataset-size (and --epochs) the run's total time and dollars, without it the step
    time and dollars per million samples. Rows marked * are on the Pareto front (no other row both faster
    and cheaper); rows that do not fit in memory are marked and left off the front. --sort time|cost.
    """
    from traincost.api import compare
    from traincost.queries import (
        check_num_gpus,
        compare_rows,
        device_names,
        ranked_comparison,
    )

    names = device_names(devices)
    check_num_gpus(num_gpus)
    check_run_options(epochs, dataset_size)
    table = _price_options(price_per_hour, prices_file, provider)
    if plot_path is not None:
        _check_plot_path(Path(plot_path))
    spec = _resolve_model(model, spec_path, input_shape, family_values, input_dtype, seq_len)
    estimates = compare(spec, devices=names, batch_size=batch_size, precision=precision,
                        channels_last=channels_last, optimizer=optimizer, epochs=epochs,
                        dataset_size=dataset_size, gpus=num_gpus, nodes=nodes, network=network, host=host,
                        prices=table)
    estimates, ranked, order = ranked_comparison(estimates, provider, sort)
    if plot_path is not None:
        from traincost.cli.render import pareto_plot

        pareto_plot(ranked, Path(plot_path), title=f"{estimates[0].model}: time vs cost")
    if as_json:
        click.echo(json.dumps(compare_rows(estimates, ranked, order)))
        return
    from rich.console import Console

    from traincost.cli.render import decision_table, print_renderable

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
