"""The ``traincost`` command line. Renders results and maps errors to exit codes (1 failure, 2 usage)."""

from __future__ import annotations

import json
import sys
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
                   family_values: dict[str, str | None]):
    from traincost.flopmodel.arch import ArchSpec, resolve

    given = {k: v for k, v in family_values.items() if v is not None}
    if spec_path is not None:
        if model is not None:
            raise TraincostUsageError("give either MODEL or --spec, not both")
        if given:
            raise TraincostUsageError(f"--spec carries its own parameters; do not pass --{next(iter(given)).replace('_', '-')}")
        spec = ArchSpec.from_file(spec_path)
        if input_shape is not None:
            spec = ArchSpec(spec.kind, spec.name, spec.params, input_shape)
        return spec
    if model is None:
        raise TraincostUsageError("missing MODEL (a family, a torchvision name, file.py:factory) or --spec FILE")
    if given and model not in ("fc", "vgg", "resnet", "inception"):
        raise TraincostUsageError(
            f"--{next(iter(given)).replace('_', '-')} applies to the families fc, vgg, resnet, inception, not {model!r}")
    return resolve(model, params=given, input_shape=input_shape)


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
def count_command(model: str | None, spec_path: str | None, input_shape: str | None, batch_size: int,
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
    spec = _resolve_model(model, spec_path, input_shape, family_values)
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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
