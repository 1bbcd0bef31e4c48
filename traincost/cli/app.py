"""The ``traincost`` click group and what its commands share.

:class:`_Group` renders every error as one line on stderr with an exit code (1 failure, 2 usage), never
a traceback. The shared option decorators (model, step) and :func:`_resolve_model` turn the options into
an architecture spec; :func:`_check_writable` refuses an output path before any work is done.
"""

from __future__ import annotations

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
    func = click.option("--seq-len", type=click.IntRange(min=1), default=None,
                        help="Token models: sequence length (input shape (L,), int64 token ids).")(func)
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
                   family_values: dict[str, str | None], input_dtype: str | None = None,
                   seq_len: int | None = None):
    from traincost.flopmodel.arch import ArchSpec, token_input

    input_shape, input_dtype = token_input(seq_len, input_shape, input_dtype)
    given = {k: v for k, v in family_values.items() if v is not None}
    if spec_path is not None:
        if model is not None:
            raise TraincostUsageError("give either MODEL or --spec, not both")
        if given:
            raise TraincostUsageError(f"--spec carries its own parameters; do not pass --{next(iter(given)).replace('_', '-')}")
        spec = ArchSpec.from_file(spec_path)
        if input_shape is not None or input_dtype is not None:
            spec = spec.with_input(input_shape, input_dtype)
        return spec
    from traincost.queries import resolve_named

    return resolve_named(model, given, input_shape, input_dtype)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="traincost")
def main() -> None:
    """traincost: training time, memory and cost of a CNN/DNN, from its architecture alone."""


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
