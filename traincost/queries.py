"""``predict``, ``compare`` and ``gpus`` as the front ends take them: the command line and the web app.

Both front ends call these functions in the same order, so the same input gives the same JSON object and the
same error line. The messages name the CLI's options (``--epochs``); the web app's query parameters carry
the same names with underscores (``epochs``). Nothing here imports torch at module level: ``traincost --help``
stays fast.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from traincost.errors import TraincostUsageError

if TYPE_CHECKING:
    from traincost.api import Estimate
    from traincost.decide import Choice
    from traincost.flopmodel.arch import ArchSpec

#: The families whose parameters the front ends take one by one (``--hidden-width``, ``hidden_width=``).
FAMILY_NAMES = ("fc", "vgg", "resnet", "inception")


def check_run_options(epochs: float | None, dataset_size: int | None) -> None:
    """--epochs and --dataset-size as usage errors naming the option (the library names the argument)."""
    from traincost.api import MAX_EPOCHS

    if epochs is not None and (not math.isfinite(epochs) or epochs <= 0 or epochs > MAX_EPOCHS):
        raise TraincostUsageError(f"--epochs must be a positive number up to {MAX_EPOCHS:g}, got {epochs:g}")
    if dataset_size is not None and dataset_size < 1:
        raise TraincostUsageError(f"--dataset-size must be a positive integer (samples), got {dataset_size}")


def resolve_named(model: str | None, family_values: Mapping[str, Any], input_shape: str | None = None,
                  input_dtype: str | None = None) -> "ArchSpec":
    """MODEL and the family parameters given (``None`` values: not given) as a spec; a parameter given to a
    model that is not a family is a usage error naming the option."""
    from traincost.flopmodel.arch import resolve

    given = {k: v for k, v in family_values.items() if v is not None}
    if model is None:
        raise TraincostUsageError("missing MODEL (a family, a torchvision name, timm:<name>, hf:<config.json>, "
                                  "file.py:factory) or --spec FILE")
    if given and model not in FAMILY_NAMES:
        raise TraincostUsageError(
            f"--{next(iter(given)).replace('_', '-')} applies to the families fc, vgg, resnet, inception, not {model!r}")
    return resolve(model, params=given, input_shape=input_shape, input_dtype=input_dtype)


def device_names(devices: str) -> list[str]:
    """``compare --gpus``: the comma-separated device list, checked (a bare count is not a GPU model)."""
    names = [d.strip() for d in devices.split(",") if d.strip()]
    if not names:
        raise TraincostUsageError("--gpus needs at least one device, e.g. --gpus \"A100,H100\"")
    counts = [n for n in names if n.isdigit() and not _is_gpu_name(n)]  # "3090" is a GPU, "8" is not
    if counts:
        raise TraincostUsageError(f"--gpus {counts[0]!r}: --gpus is the list of GPU models to compare (e.g. "
                                  f"--gpus \"A100,H100\"); use -n/--num-gpus {counts[0]} for GPUs per run")
    return names


def check_num_gpus(num_gpus: int) -> None:
    """``compare --num-gpus``: GPUs per run."""
    if num_gpus < 1:
        raise TraincostUsageError(f"--num-gpus must be a positive integer, got {num_gpus}")


def _is_gpu_name(name: str) -> bool:
    from traincost.hardware.catalog import resolve_gpu

    try:
        resolve_gpu(name)
    except TraincostUsageError:
        return False
    return True


def only_provider(estimates: list["Estimate"], provider: str) -> list["Estimate"]:
    """Keep only ``provider``'s price on every estimate; a usage error if no device has one from it."""
    from traincost.api import with_quotes
    from traincost.pricing.cost import PriceQuote

    wanted = provider.strip().lower()
    out, found = [], False
    for e in estimates:
        prices = [PriceQuote(**p) for p in e.prices if p["provider"].lower() == wanted]
        found = found or bool(prices)
        out.append(with_quotes(e, prices, provider=provider))
    if not found:
        known = sorted({p["provider"] for e in estimates for p in e.prices})
        raise TraincostUsageError(f"no price from provider {provider!r} for these devices; providers with a "
                                  f"price: {', '.join(known) or 'none'}")
    return out


def ranked_comparison(estimates: list["Estimate"], provider: str | None = None,
                      sort: str = "time") -> tuple[list["Estimate"], list["Choice"], list[int]]:
    """``compare``'s decision: (estimates, with only ``provider``'s prices when given; every (device, provider)
    choice ranked by ``sort`` with the Pareto front marked; the estimates' indices, best row first)."""
    from traincost.decide import choices, rank_choices

    if provider is not None:
        estimates = only_provider(estimates, provider)
    ranked = rank_choices(choices(estimates), sort=sort)
    best: dict[int, int] = {}
    for c in ranked:
        best.setdefault(c.estimate_index, c.rank)
    order = sorted(range(len(estimates)), key=lambda i: best[i])
    return estimates, ranked, order


def compare_rows(estimates: Sequence["Estimate"], ranked: Sequence["Choice"], order: Sequence[int]) -> list[dict]:
    """The list ``compare --json`` prints: each estimate, best first, with ``pareto`` (one of its choices is on
    the front), ``rank`` (its best choice's) and ``ranking`` (its choices)."""
    rows = []
    for i in order:
        mine = [c.to_dict() for c in ranked if c.estimate_index == i]
        rows.append({**estimates[i].to_dict(), "pareto": any(c["pareto"] for c in mine),
                     "rank": min(c["rank"] for c in mine), "ranking": mine})
    return rows


def gpu_catalog() -> list[dict[str, Any]]:
    """The list ``gpus --json`` prints: datasheet peaks, memory, bandwidth, whether a calibrated profile
    ships, and the cheapest on-demand price with its provider, date and source."""
    from traincost.hardware import catalog
    from traincost.hardware.store import load_shipped_profiles

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
    return rows
