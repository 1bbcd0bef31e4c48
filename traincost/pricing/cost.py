"""Epochs, total time and dollars: from one step time to the cost of a training run.

Arithmetic only (no torch, no walk)::

    global batch      = batch_size (per GPU) x gpus
    steps per epoch   = ceil(dataset_size / global batch)       (the last, partial batch is a step too)
    epoch_s           = steps per epoch x iteration_s
    total_s           = epochs x epoch_s
    usd (provider)    = total_s / 3600 x usd_per_gpu_hour x gpus

Prices come from :func:`traincost.hardware.catalog.prices_for` (on-demand, cheapest row per provider) and every
quote keeps the price's source and date. Multi-GPU: ``gpus`` multiplies the hardware (and the bill) with
the per-GPU batch unchanged; the step time it is given already holds the gradient all-reduce
(:mod:`traincost.pricing.parallel`, applied by :func:`traincost.api.data_parallel`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from traincost.errors import TraincostUsageError

if TYPE_CHECKING:
    from traincost.hardware.catalog import Price
    from traincost.hardware.profile import DeviceProfile

__all__ = ["PriceQuote", "RunPlan", "check_run", "plan_run", "prices_for_profile", "quote", "select_provider"]


@dataclass(frozen=True)
class RunPlan:
    """Steps and seconds of a run; ``None`` where the dataset size (and so the epoch) is unknown."""

    global_batch_size: int
    steps_per_epoch: int | None
    epochs: float | None
    epoch_s: float | None
    total_s: float | None


@dataclass(frozen=True)
class PriceQuote:
    """The dollars of one run at one provider's on-demand price, with where the price comes from."""

    provider: str
    usd: float | None                # None when the run length is unknown (no dataset size)
    usd_per_gpu_hour: float
    gpus: int
    source: str
    source_date: str
    instance_type: str
    region: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_run(*, epochs: float | None, dataset_size: int | None, gpus: int) -> None:
    """Validate the run parameters once (usage errors naming the bad value)."""
    if not _is_int(gpus) or gpus < 1:
        raise TraincostUsageError(f"gpus must be a positive integer, got {gpus!r}")
    if dataset_size is not None and (not _is_int(dataset_size) or dataset_size < 1):
        raise TraincostUsageError(f"dataset_size must be a positive integer (samples), got {dataset_size!r}")
    if epochs is not None:
        if isinstance(epochs, bool) or not isinstance(epochs, (int, float)) or not math.isfinite(epochs) \
                or epochs <= 0:
            raise TraincostUsageError(f"epochs must be a positive number, got {epochs!r}")
        if dataset_size is None:
            raise TraincostUsageError("epochs needs dataset_size (samples per epoch) to turn into steps")


def plan_run(iteration_s: float, *, batch_size: int, gpus: int = 1, dataset_size: int | None = None,
             epochs: float | None = None) -> RunPlan:
    """Steps per epoch, epoch and total seconds for a step of ``iteration_s`` seconds.

    ``epochs`` defaults to 1 when only ``dataset_size`` is given; without ``dataset_size`` there is no epoch.
    """
    check_run(epochs=epochs, dataset_size=dataset_size, gpus=gpus)
    global_batch = batch_size * gpus
    if dataset_size is None:
        return RunPlan(global_batch, None, None, None, None)
    steps = -(-dataset_size // global_batch)  # ceil
    n_epochs = 1 if epochs is None else epochs
    epoch_s = steps * iteration_s
    return RunPlan(global_batch, steps, n_epochs, epoch_s, n_epochs * epoch_s)


def prices_for_profile(profile: DeviceProfile) -> tuple[Price, ...]:
    """On-demand prices of the profile's catalog GPU (cheapest first); none for a CPU or an unknown GPU."""
    if profile.kind != "cuda" or not profile.catalog_key:
        return ()
    from traincost.hardware.catalog import load_gpus, prices_for

    if profile.catalog_key not in {g.key for g in load_gpus()}:
        return ()
    return prices_for(profile.catalog_key)


def quote(total_s: float | None, prices: Iterable[Price], gpus: int = 1) -> list[PriceQuote]:
    """One quote per price: ``total_s / 3600 x usd_per_gpu_hour x gpus`` dollars (``None`` without a total)."""
    out = []
    for p in prices:
        usd = None if total_s is None else total_s / 3600.0 * p.usd_per_gpu_hour * gpus
        out.append(PriceQuote(provider=p.provider, usd=usd, usd_per_gpu_hour=p.usd_per_gpu_hour, gpus=gpus,
                              source=p.source, source_date=p.source_date, instance_type=p.instance_type,
                              region=p.region))
    return out


def select_provider(quotes: list[PriceQuote], provider: str | None, device_name: str) -> list[PriceQuote]:
    """Only ``provider``'s quote (case-insensitive); a usage error listing the known ones if it has none."""
    if provider is None:
        return quotes
    wanted = provider.strip().lower()
    kept = [q for q in quotes if q.provider.lower() == wanted]
    if not kept:
        known = ", ".join(sorted({q.provider for q in quotes})) or "none"
        raise TraincostUsageError(f"no price from provider {provider!r} for {device_name}; "
                                  f"providers with a price: {known}")
    return kept
