"""Human-readable rendering for the terminal: number formats, rich tables and the compare plot."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from pathlib import Path

    from traincost.api import Estimate
    from traincost.decide import Choice
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
    parts += [Text(f"assumed: {a}") for a in d.get("assumptions", ())]
    return Group(*parts)


def print_renderable(renderable: object, console: Console | None = None) -> None:
    """Print to the terminal, at least 110 columns wide so module paths are not cut when piped."""
    if console is None:
        console = Console()
        console = Console(width=max(console.width, 110))
    console.print(renderable)


def duration(seconds: float | None) -> str:
    """``'850 ms'``, ``'42.0 s'``, ``'12.5 min'``, ``'3.2 h'``, ``'4.1 d'``; ``'-'`` for None."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1e3:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def usd(value: float | None) -> str:
    if value is None:
        return "-"
    return f"${value:,.2f}" if value >= 0.01 else f"${value:.4f}"


def short_source(source: str) -> str:
    """A price's source as a table cell: its name without the bracketed reference (repo, file, commit),
    which ``--json`` keeps whole."""
    name = source.split(" (", 1)[0].strip() or source
    return name if len(name) <= 60 else name[:57] + "..."


def _step_line(e: "Estimate") -> str:
    shape = f"batch {e.batch_size}" + (f" x {e.gpus} GPUs" if e.gpus > 1 else "") \
        + (f" on {e.nodes} nodes" if getattr(e, "nodes", 1) > 1 else "")
    name = e.device["name"]
    source = e.device["profile_source"]
    where = name if source in name else f"{name} ({source} profile)"
    return f"{shape}  {e.precision}{'  channels_last' if e.channels_last else ''}  {e.optimizer}  on {where}"


def _correction_rows(e: "Estimate") -> list[tuple[str, str]]:
    """The interval and the learned correction used, as (label, text) rows of ``traincost predict``."""
    rows = []
    corr = e.correction or {}
    if e.interval is not None:
        level = corr.get("interval_level")
        why = corr.get("interval_reasons") or []
        rows.append(("range", f"{e.interval['low_ms']:,.2f} - {e.interval['high_ms']:,.2f} ms"
                              + (f" ({level:.0%} interval" if level else " (interval")
                              + (f", widened: {'; '.join(why)})" if why else ")")))
    if corr:
        if corr.get("model"):
            text = (f"{corr['model']}: x{corr.get('factor', 1.0):.2f} on the analytic {e.analytic_ms:,.2f} ms "
                    f"({corr.get('reason', '')})")
        else:
            text = corr.get("reason", "analytic only")
        rows.append(("correction", text))
    return rows


def _reserved(e: "Estimate") -> str:
    """Why predict's largest batch is below ``traincost count --memory-gb``'s: what it keeps off the walk."""
    context = getattr(e, "context_bytes", 0)
    overhead = getattr(e, "allocator_overhead_bytes", 0)
    if not context and not overhead:
        return ""
    parts = ([f"the CUDA context ({context / 2**20:,.0f} MiB)"] if context else []) \
        + ([f"the profile's allocator/workspace overhead ({overhead / 2**20:,.0f} MiB)"] if overhead else [])
    return (f"the largest batch leaves room for {' and '.join(parts)}, "
            "which 'traincost count --memory-gb' does not count")


def estimate_view(e: "Estimate", top: int = 10) -> Group:
    """``traincost predict``: step, run, memory, cost, heaviest layers, notes."""
    head = Text.assemble((e.model, "bold"), "  ", _step_line(e))
    summary = Table(show_header=False, box=None, pad_edge=False)
    summary.add_column(style="bold")
    summary.add_column()
    summary.add_row("step", f"{e.iteration_ms:,.2f} ms  ({e.samples_per_s:,.0f} samples/s), {e.bound}-bound "
                            f"(host {e.host_ms:,.2f} ms, device busy {e.device_ms:,.2f} ms)")
    for label, text in _correction_rows(e):
        summary.add_row(label, Text(text))  # plain text: "pip install 'traincost[learn]'" is not markup
    host = getattr(e, "host", None) or {}
    if host and e.device.get("profile_source") != "calibrated" or host.get("source") == "user":
        summary.add_row("host", Text(f"{host['name']}: {host['dispatch_us']:.1f} us per eager op ({host['source']})"
                                     + (f"; {host['note']}" if host.get("note") else "")))
    if e.gpus > 1:
        link = e.interconnect or {}
        summary.add_row("data parallel", f"{e.scaling_efficiency:.0%} scaling efficiency: all-reduce "
                        f"{e.allreduce_ms:,.2f} ms per step over {link.get('intra_link', '?')}"
                        + (f" + {link['network']}" if link.get("network") else "")
                        + f", {e.exposed_comm_ms:,.2f} ms not hidden behind backward")
    if e.epoch_s is not None:
        steps = e.steps_per_epoch
        summary.add_row("epoch", f"{duration(e.epoch_s)}  ({steps:,} step{'' if steps == 1 else 's'} of "
                                 f"{e.global_batch_size:,})")
        summary.add_row("total", f"{duration(e.total_s)}  ({e.epochs:g} epoch{'' if e.epochs == 1 else 's'} of "
                                 f"{e.dataset_size:,} samples)")
    mem = f"{gib(e.peak_memory_bytes)} of {gib(e.device_memory_bytes)}"
    approx = "" if e.max_batch_size_exact else "~"
    if e.fits:
        mem += f": fits (largest batch {approx}{e.max_batch_size:,})"
    else:
        over = e.peak_memory_bytes + getattr(e, "context_bytes", 0) - e.device_memory_bytes
        mem += f": DOES NOT FIT ({gib(max(over, 0))} too much); " + (
            f"the largest batch that fits is {approx}{e.max_batch_size:,}" if e.max_batch_size > 0
            else "not even the smallest batch fits")
    reserved = _reserved(e)
    if reserved:
        mem += f"; {reserved}"
    summary.add_row("memory", Text(mem, style="" if e.fits else "bold red"))
    parts: list = [head, summary]
    if e.prices:
        cost = Table(title=("Cost of the run" if e.total_s is not None
                            else "Prices (give --dataset-size for the run's cost)")
                     + ": on-demand, each provider's newest price (full source references: --json)",
                     title_justify="left")
        for col in ("provider", "$/GPU-h", "GPUs", "run $", "price date", "source"):
            cost.add_column(col, justify="left" if col in ("provider", "price date", "source") else "right",
                            no_wrap=col != "provider", overflow="ellipsis" if col == "source" else "fold")
        for p in e.prices:
            cost.add_row(p["provider"], f"{p['usd_per_gpu_hour']:.2f}", str(p["gpus"]), usd(p["usd"]),
                         p["source_date"], Text(short_source(p["source"])))
        parts.append(cost)
    layers = Table(title=f"Heaviest layers (of {len(e.breakdown)})", title_justify="left")
    layers.add_column("module", no_wrap=True, overflow="ellipsis", max_width=48)
    for col in ("ms", "% step", "bound", "FLOP", "bytes"):
        layers.add_column(col, justify="left" if col == "bound" else "right", no_wrap=True)
    for row in e.breakdown[:top]:
        layers.add_row(row["module"], f"{row['ms']:.3f}", f"{100 * row['share']:.1f}", row["bound"],
                       si(row["flops"]), gib(row["bytes"]))
    parts.append(layers)
    for note in e.notes:
        parts.append(Text("note: " + note, style="yellow"))
    return Group(*parts)


def compare_table(estimates: list["Estimate"]) -> Group:
    """``traincost compare``: one row per device, in the order given (the CLI sorts by total time)."""
    if not estimates:
        return Group(Text("nothing to compare"))
    e0 = estimates[0]
    run = e0.total_s is not None
    head = Text.assemble((e0.model, "bold"), f"  batch {e0.batch_size}  {e0.precision}"
                         f"{'  channels_last' if e0.channels_last else ''}  {e0.optimizer}"
                         + (f"  {e0.epochs:g} epochs of {e0.dataset_size:,} samples" if run else ""))
    table = Table(title="Sorted by " + ("total time" if run else "step time") + "; cost "
                  + ("of the run" if run else "per GPU-hour (give --dataset-size for the run's cost)")
                  + " per provider, on-demand, with the price's date", title_justify="left")
    cols = ["device", "step ms", "samples/s", "bound"] + (["epoch", "total"] if run else []) \
        + ["peak mem", "fits", "cost"]
    for col in cols:
        table.add_column(col, justify="left" if col in ("device", "bound", "fits", "cost") else "right",
                         no_wrap=True)
    for e in estimates:
        if e.prices:
            cost = "\n".join((usd(p["usd"]) if run else f"${p['usd_per_gpu_hour']:.2f}/h")
                             + f" {p['provider']} ({p['source_date']}, {short_source(p['source'])})"
                             for p in e.prices)
        else:
            cost = "-"
        fits = "yes" if e.fits else f"no (max {e.max_batch_size})"
        name = e.device["name"]
        if e.device["profile_source"] not in name:
            name += f" ({e.device['profile_source']})"
        row = [name, f"{e.iteration_ms:,.2f}", f"{e.samples_per_s:,.0f}", e.bound]
        if run:
            row += [duration(e.epoch_s), duration(e.total_s)]
        row += [gib(e.peak_memory_bytes), fits, cost]
        table.add_row(*row)
    notes = [Text("note: datasheet profiles (GPUs never measured) are less certain than calibrated ones",
                  style="yellow")] if any(e.device["profile_source"] == "datasheet" for e in estimates) else []
    return Group(head, table, *notes)


def decision_table(estimates: list[Estimate], ranked: list[Choice], sort: str = "time") -> Group:
    """``traincost compare``: one row per (GPU, provider) in ``ranked`` order, Pareto rows starred, rows
    that do not fit marked; ``estimates`` (best row first) give the header and the notes."""
    if not estimates:
        return Group(Text("nothing to compare"))
    e0 = estimates[0]
    run = e0.total_s is not None
    gpus = f"  {e0.gpus} GPUs" + (f" on {e0.nodes} nodes" if e0.nodes > 1 else "") + " (DDP)" if e0.gpus > 1 else ""
    head = Text.assemble((e0.model, "bold"), f"  batch {e0.batch_size}{' per GPU' if e0.gpus > 1 else ''}{gpus}  "
                         f"{e0.precision}{'  channels_last' if e0.channels_last else ''}  {e0.optimizer}"
                         + (f"  {e0.epochs:g} epochs of {e0.dataset_size:,} samples" if run else ""))
    by = {"time": "total time" if run else "step time", "cost": "run $" if run else "$ per 1M samples"}[sort]
    table = Table(title=f"Ranked by {by} (rows that fit first); * = Pareto front: no other row both faster "
                        "and cheaper; on-demand prices with their date and [source]", title_justify="left")
    cols = ["#", "", "device", "provider (price date)", "$/GPU-h", "step ms", "samples/s"]
    cols += (["total", "run $"] if run else ["$/1M samples"])
    cols += ["scaling"] if e0.gpus > 1 else []
    cols += ["fits"]
    for col in cols:
        table.add_column(col, justify="left" if col in ("", "device", "provider (price date)", "fits") else "right",
                         no_wrap=True)
    by_name = {e.device["name"]: e for e in estimates}
    sources: dict[str, int] = {}  # short source -> its footnote number
    for c in ranked:
        e = by_name.get(c.device)
        provider = f"{c.provider} ({c.price_date})" if c.provider else "- (no price)"
        if c.provider and e is not None:
            source = next((p["source"] for p in e.prices if p["provider"] == c.provider), "")
            if source:
                provider += f" [{sources.setdefault(short_source(source), len(sources) + 1)}]"
        row = [str(c.rank), "*" if c.pareto else "", c.device, provider,
               f"{c.usd_per_gpu_hour:.2f}" if c.usd_per_gpu_hour is not None else "-",
               f"{c.step_ms:,.2f}", f"{c.samples_per_s:,.0f}"]
        if run:
            row += [duration(c.total_s), usd(c.usd)]
        else:
            row += [usd(c.usd_per_million_samples)]
        if e0.gpus > 1:
            row += [f"{e.scaling_efficiency:.0%}" if e is not None else "-"]
        row += ["yes" if c.fits else f"NO (max batch {e.max_batch_size if e is not None else '?'})"]
        table.add_row(*row, style="" if c.fits else "red")
    notes = []
    if not run:
        notes.append(Text("note: the run's $ needs --dataset-size (and --epochs); $ per 1M samples ranks the same "
                          "way for any dataset size", style="yellow"))
    if any(not c.fits for c in ranked):
        notes.append(Text("note: rows marked NO do not fit in memory at this batch: left off the Pareto front",
                          style="yellow"))
    if any(e.device["profile_source"] == "datasheet" for e in estimates):
        notes.append(Text("note: datasheet profiles (GPUs never measured) are less certain than calibrated ones",
                          style="yellow"))
    from traincost.pricing.cost import PRICE_NOTE_PREFIXES

    for e in estimates:  # a device named twice in --gpus: compared once (api.compare's note); its price notes
        notes += [Text("note: " + n, style="yellow") for n in e.notes
                  if n.endswith("compared once") or n.startswith(PRICE_NOTE_PREFIXES)]
    if sources:
        notes.append(Text("price sources (full references: --json): " + "; ".join(
            f"[{i}] {name}" for name, i in sources.items())))
    if e0.gpus > 1:
        notes.append(Text("note: scaling = throughput on the GPUs / (GPUs x one GPU): the gradient all-reduce not "
                          "hidden behind backward (--json: allreduce_ms, exposed_comm_ms)", style="yellow"))
    return Group(head, table, *notes)


def pareto_plot(ranked: list[Choice], path: Path, title: str = "") -> None:
    """Time against cost of every priced (GPU, provider) row, the Pareto front highlighted and joined,
    rows that do not fit hollow; written to ``path`` (format from its suffix). matplotlib, Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [c for c in ranked if c.cost is not None]
    run = any(c.total_s is not None for c in pts)
    scale, unit = (3600.0, "h") if run and max((c.time_s for c in pts), default=0) > 7200 else \
        ((60.0, "min") if run else (1e-3, "ms per step"))
    xlabel = f"total time ({unit})" if run else "step time (ms)"
    cheapest = {}
    for c in sorted(pts, key=lambda c: c.cost):
        cheapest.setdefault(c.device, c)
    cheapest = list(cheapest.values())
    fig, ax = plt.subplots(figsize=(8, 5.5))
    try:
        for c in pts:
            x = c.time_s / scale
            y = c.usd if (run and c.usd is not None) else c.cost
            kw = ({"color": "tab:red", "s": 60, "zorder": 3} if c.pareto else
                  {"color": "tab:gray", "s": 30, "zorder": 2} if c.fits else
                  {"facecolors": "none", "edgecolors": "tab:gray", "s": 30, "zorder": 2})
            ax.scatter([x], [y], **kw)
            if not (c.pareto or c in cheapest):  # label the front and each device's cheapest row only
                continue
            ax.annotate(f"{c.device.replace(' (datasheet)', '')}\n{c.provider}", (x, y), fontsize=7,
                        xytext=(4, 4), textcoords="offset points")
        front = sorted((c for c in pts if c.pareto), key=lambda c: c.time_s)
        if front:
            ax.plot([c.time_s / scale for c in front],
                    [c.usd if (run and c.usd is not None) else c.cost for c in front],
                    color="tab:red", linewidth=1, label="Pareto front")
            ax.legend(loc="upper right")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("run cost ($)" if run else "$ per 1M samples")
        ax.set_title(title or "time vs cost")
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
