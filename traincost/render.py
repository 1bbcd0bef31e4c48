"""Human-readable rendering: number formats and rich tables. Only the CLI calls this."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from traincost.flopmodel.count import CountResult


def si(value: float, unit: str = "", base: int = 1000) -> str:
    """``1.23 G`` style: ``si(4.1e9, 'FLOP')`` -> ``'4.10 GFLOP'``; ``base=1024`` gives KiB/MiB/GiB."""
    prefixes = ["", "K", "M", "G", "T", "P", "E"]
    value = float(value)
    i = 0
    while abs(value) >= base and i < len(prefixes) - 1:
        value /= base
        i += 1
    prefix = prefixes[i] + ("i" if base == 1024 and i else "")
    return f"{value:.2f} {prefix}{unit}" if i else f"{value:.0f} {unit}".rstrip()


def gib(nbytes: float) -> str:
    return si(nbytes, "B", 1024)


def count_table(result: "CountResult", top: int = 15) -> Group:
    """Heaviest layers, totals by phase and by op class, memory, and unpriced ops."""
    d = result.to_dict()
    head = Text.assemble(
        (f"{d['model']}", "bold"),
        f"  batch {d['batch_size']}  input {tuple(d['input_shape'])}  {d['precision']}"
        f"{'  channels_last' if d['channels_last'] else ''}  {d['optimizer']}\n",
        f"params {d['params']:,}   ops {d['ops']:,}   peak memory {gib(d['peak_memory_bytes'])}")

    layers = Table(title=f"Heaviest layers (of {len(d['layers'])})", title_justify="left")
    width = max([len(row["module"]) for row in d["layers"][:top]] + [6])
    layers.add_column("module", no_wrap=True, min_width=min(width, 48), overflow="ellipsis")
    for col in ("ops", "fwd FLOP", "bwd FLOP", "read", "written", "% FLOP"):
        layers.add_column(col, justify="right", no_wrap=True)
    total = max(d["flops"]["total"], 1)
    for row in d["layers"][:top]:
        layers.add_row(row["module"], str(row["ops"]), si(row["forward_flops"]), si(row["backward_flops"]),
                       gib(row["bytes_read"]), gib(row["bytes_written"]), f"{100 * row['flops'] / total:.1f}")

    totals = Table(title="Totals", title_justify="left")
    for col in ("phase", "FLOP"):
        totals.add_column(col, justify="left" if col == "phase" else "right")
    for phase in ("forward", "backward", "optimizer", "total"):
        totals.add_row(phase, si(d["flops"][phase]))
    totals.add_row("bytes read", gib(d["bytes"]["read"]))
    totals.add_row("bytes written", gib(d["bytes"]["written"]))

    mem = d["memory"]
    memory = Table(title=f"Memory (peak during {mem['peak_phase']})", title_justify="left")
    memory.add_column("part")
    memory.add_column("bytes", justify="right")
    for key in ("parameters_bytes", "gradients_bytes", "optimizer_state_bytes", "inputs_bytes",
                "saved_activations_bytes", "transient_bytes"):
        memory.add_row(key.removesuffix("_bytes").replace("_", " "), gib(mem[key]))
    memory.add_row("peak", gib(d["peak_memory_bytes"]))

    parts: list = [head, layers, totals, memory]
    if d["unpriced_ops"]:
        parts.append(Text("unpriced ops (no formula, not counted): " + ", ".join(
            f"{op} x{n}" for op, n in sorted(d["unpriced_ops"].items())), style="yellow"))
    return Group(*parts)


def print_renderable(renderable: object, console: Console | None = None) -> None:
    """Print to the terminal, at least 110 columns wide so module paths are not cut when piped."""
    if console is None:
        console = Console()
        console = Console(width=max(console.width, 110))
    console.print(renderable)
