"""Epochs, total time and dollars: from one step time to the cost of a training run.

Arithmetic only (no torch, no walk)::

    global batch      = batch_size (per GPU) x gpus
    steps per epoch   = ceil(dataset_size / global batch)       (the last, partial batch is a step too)
    epoch_s           = steps per epoch x iteration_s
    total_s           = epochs x epoch_s
    usd (provider)    = total_s / 3600 x usd_per_gpu_hour x gpus

Prices come from a :class:`PriceTable`: the shipped ``traincost/data/prices.csv``, a user's CSV of the same
columns, or one user price per GPU-hour (provider ``"your price"``). Of a table, each provider's newest
on-demand price for the GPU is used (:func:`traincost.hardware.catalog.prices_for`) and every quote keeps the
price's source and date. :func:`price_notes` says when a device has no price (and how to give one) and when
the newest price used is over a year older than the table's newest date (the table's, not the clock's: the
same input gives the same answer). Multi-GPU: ``gpus`` multiplies the hardware (and the bill) with
the per-GPU batch unchanged; the step time it is given already holds the gradient all-reduce
(:mod:`traincost.pricing.parallel`, applied by :func:`traincost.api.data_parallel`).
"""

from __future__ import annotations

import datetime
import math
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from traincost.errors import TraincostUsageError

if TYPE_CHECKING:
    from traincost.hardware.catalog import Price
    from traincost.hardware.profile import DeviceProfile

__all__ = ["USER_PROVIDER", "PriceQuote", "PriceTable", "RunPlan", "check_run", "plan_run", "price_notes",
           "price_table", "prices_for_profile", "quote", "select_provider"]

#: The provider name of a price given with ``--price-per-hour`` / ``price_per_hour``.
USER_PROVIDER = "your price"
#: The ``source_date`` of that price: it has no publication date, it is the user's.
USER_DATE = "given"
#: A price older than this many days before the table's newest date is stale (a note says so).
STALE_DAYS = 365


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


@dataclass(frozen=True)
class PriceTable:
    """Where a prediction's prices come from: ``rows`` (a price table; ``None``: the shipped one) or one
    ``per_gpu_hour`` price the user gives (it overrides any table). ``source`` names it for the JSON."""

    rows: tuple[Price, ...] | None = None
    per_gpu_hour: float | None = None
    source: str = "traincost/data/prices.csv (shipped)"

    @property
    def newest_date(self) -> str | None:
        """The table's newest ``source_date`` (ISO); ``None`` for a user's one price."""
        if self.per_gpu_hour is not None:
            return None
        from traincost.hardware.catalog import load_prices, newest_price_date

        return newest_price_date(load_prices() if self.rows is None else self.rows)

    def to_dict(self) -> dict[str, Any]:
        """``Estimate.price_table``: ``{source, newest_date}``."""
        return {"source": self.source, "newest_date": self.newest_date}


def price_table(price_per_hour: float | None = None, prices: Any = None) -> PriceTable:
    """The :class:`PriceTable` of ``predict``/``compare``'s ``price_per_hour`` and ``prices`` arguments.

    ``price_per_hour``: USD for one GPU-hour (the run costs hours x it x GPUs), shown as provider
    ``"your price"``. ``prices``: a CSV path with the columns of ``traincost/data/prices.csv``
    (:func:`traincost.hardware.catalog.load_price_file`: a bad row is a usage error naming file:line and
    column) or an iterable of :class:`~traincost.hardware.catalog.Price`; it replaces the shipped table.
    Neither: the shipped table. Both: a usage error.
    """
    if price_per_hour is not None and prices is not None:
        raise TraincostUsageError("give price_per_hour (one price for every GPU-hour) or prices (a price table), "
                                  "not both")
    if price_per_hour is not None:
        if isinstance(price_per_hour, bool) or not isinstance(price_per_hour, (int, float)) \
                or not math.isfinite(price_per_hour) or price_per_hour <= 0:
            raise TraincostUsageError(f"price_per_hour must be a positive number of USD per GPU-hour, "
                                      f"got {price_per_hour!r}")
        return PriceTable(per_gpu_hour=float(price_per_hour), source="given as the price per GPU-hour")
    if prices is None:
        return PriceTable()
    from traincost.hardware.catalog import Price, load_gpus, load_price_file

    if isinstance(prices, (str, os.PathLike)):
        return PriceTable(rows=load_price_file(prices), source=os.fspath(prices))
    if isinstance(prices, PriceTable):
        return prices
    try:
        rows = tuple(prices)
    except TypeError:
        raise TraincostUsageError(f"prices must be a CSV path or Price rows, got {type(prices).__name__}") from None
    known = {g.key for g in load_gpus()}
    for i, p in enumerate(rows):
        if not isinstance(p, Price):
            raise TraincostUsageError(f"prices[{i}] is a {type(p).__name__}, not a Price")
        if p.gpu_key not in known or not (math.isfinite(p.usd_per_gpu_hour) and p.usd_per_gpu_hour > 0) \
                or not p.source or not _iso(p.source_date):
            raise TraincostUsageError(f"prices[{i}] ({p.provider} {p.gpu_key}): a price needs a catalog gpu_key, "
                                      "a positive usd_per_gpu_hour, a source and an ISO source_date")
    if not rows:
        raise TraincostUsageError("prices is empty: give at least one Price, or None for the shipped table")
    return PriceTable(rows=rows, source="given Price rows")


def _iso(text: str) -> datetime.date | None:
    try:
        return datetime.date.fromisoformat(text)
    except (TypeError, ValueError):
        return None


def prices_for_profile(profile: DeviceProfile, table: PriceTable | None = None) -> tuple[Price, ...]:
    """On-demand prices of the profile's catalog GPU from ``table`` (default: the shipped one), cheapest
    first; none for a CPU or an unknown GPU. A user's ``per_gpu_hour`` is the only price, on any device."""
    from traincost.hardware.catalog import Price, load_gpus, prices_for

    table = table or PriceTable()
    if table.per_gpu_hour is not None:
        return (Price(provider=USER_PROVIDER, instance_type="", gpu_key=profile.catalog_key or "", gpu_count=1,
                      usd_per_gpu_hour=table.per_gpu_hour, source=table.source, source_date=USER_DATE,
                      region=""),)
    if profile.kind != "cuda" or not profile.catalog_key:
        return ()
    if profile.catalog_key not in {g.key for g in load_gpus()}:
        return ()
    return prices_for(profile.catalog_key, table.rows)


#: How every price note starts (:func:`price_notes`): how to find them among an estimate's notes.
PRICE_NOTE_PREFIXES = ("no price known for ", "the newest price for ")


def price_notes(quotes: Iterable[PriceQuote], device_name: str, newest_date: str | None,
                *, filtered: str | None = None) -> list[str]:
    """The notes about a device's prices: none known (and how to give one), or the newest one used over
    :data:`STALE_DAYS` days older than ``newest_date`` (the price table's newest date, not today).
    ``filtered``: the provider the quotes were narrowed to, if any."""
    quotes = list(quotes)
    if not quotes:
        where = f" from {filtered}" if filtered else ""
        return [f"no price known for {device_name}{where}: give one with --price-per-hour USD (one GPU-hour) or "
                "--prices FILE (a CSV with the columns of traincost/data/prices.csv); in Python price_per_hour= "
                "or prices="]
    dated = [(d, q) for q in quotes if (d := _iso(q.source_date)) is not None]
    table_newest = _iso(newest_date) if newest_date else None
    if not dated or table_newest is None:
        return []
    day, q = max(dated, key=lambda dq: dq[0])
    age = (table_newest - day).days
    if age <= STALE_DAYS:
        return []
    return [f"the newest price for {device_name} is {age / 365.25:.1f} years older than the price table's newest "
            f"({q.provider}, {q.source_date}; table: {newest_date}): today's prices may differ; give yours with "
            "--price-per-hour or --prices"]


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
