"""Which GPU and provider to train on: (GPU, provider) options ranked by time and by dollars, Pareto front.

Pure functions over :class:`traincost.api.Estimate` objects (one per device, with their price quotes).
One :class:`Choice` per (device, provider quote); a device without a price is one choice with no provider.

* **time** of a choice: the run's ``total_s`` when the dataset size is known, else its step time (the same
  order: every device runs the same steps, the per-GPU batch and GPU count are shared).
* **cost**: the run's dollars when known; always ``usd_per_million_samples`` = ``usd_per_gpu_hour x gpus /
  3600 / samples_per_s x 1e6``, which orders choices exactly as the run's dollars would for any dataset size.
* **Pareto front** (on time and $ per sample): a choice is on it when it fits in memory, has a price, and no
  other such choice is at least as fast and as cheap and strictly better in one of them. Ties on both stay
  on the front together.
* **ranking**: choices that fit first, then by time (``sort="time"``; ties by cost) or by cost
  (``sort="cost"``; ties by time; unpriced last); ``rank`` is the 1-based position.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from traincost.errors import TraincostUsageError

if TYPE_CHECKING:
    from traincost.api import Estimate

__all__ = ["SORTS", "Choice", "choices", "pareto_front", "rank_choices"]

SORTS: tuple[str, ...] = ("time", "cost")


@dataclass(frozen=True)
class Choice:
    """One (device, provider) option. Seconds, dollars; ``None`` where unknown."""

    device: str
    provider: str | None
    gpus: int
    step_ms: float
    samples_per_s: float
    total_s: float | None
    usd: float | None
    usd_per_gpu_hour: float | None
    usd_per_million_samples: float | None
    price_date: str | None
    fits: bool
    estimate_index: int
    pareto: bool = False
    rank: int = 0

    @property
    def time_s(self) -> float:
        """The run's total seconds when known, else one step's seconds."""
        return self.total_s if self.total_s is not None else self.step_ms / 1e3

    @property
    def cost(self) -> float | None:
        """What the Pareto front and the cost ranking compare: dollars per million samples."""
        return self.usd_per_million_samples

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def choices(estimates: Sequence[Estimate]) -> list[Choice]:
    """One :class:`Choice` per (estimate, price quote), in the estimates' order; an estimate without a
    price gives one choice with ``provider=None``."""
    out: list[Choice] = []
    for i, e in enumerate(estimates):
        quotes = e.prices or [None]
        for q in quotes:
            per_hour = q["usd_per_gpu_hour"] if q is not None else None
            per_million = (per_hour * e.gpus / 3600.0 / e.samples_per_s * 1e6
                           if per_hour is not None and e.samples_per_s > 0 and math.isfinite(e.samples_per_s)
                           else None)
            out.append(Choice(device=e.device["name"], provider=q["provider"] if q is not None else None,
                              gpus=e.gpus, step_ms=e.iteration_ms, samples_per_s=e.samples_per_s,
                              total_s=e.total_s, usd=q["usd"] if q is not None else None,
                              usd_per_gpu_hour=per_hour, usd_per_million_samples=per_million,
                              price_date=q["source_date"] if q is not None else None, fits=bool(e.fits),
                              estimate_index=i))
    return out


def pareto_front(times: Sequence[float], costs: Sequence[float | None], eligible: Sequence[bool]) -> list[bool]:
    """For each point, whether it is on the Pareto front of (time, cost), both minimised: eligible, with a
    cost, and no other such point has ``time <= t and cost <= c`` with one of them strictly smaller."""
    pts = [(i, float(t), float(c)) for i, (t, c, ok) in enumerate(zip(times, costs, eligible))
           if ok and c is not None and math.isfinite(t) and math.isfinite(c)]
    front = [False] * len(times)
    for i, t, c in pts:
        front[i] = not any(t2 <= t and c2 <= c and (t2 < t or c2 < c) for j, t2, c2 in pts if j != i)
    return front


def rank_choices(items: Sequence[Choice], sort: str = "time") -> list[Choice]:
    """``items`` with ``pareto`` and ``rank`` set, sorted: fitting choices first, then by ``sort`` (``"time"``
    or ``"cost"``; module doc)."""
    if sort not in SORTS:
        raise TraincostUsageError(f"sort must be one of {', '.join(SORTS)}, got {sort!r}")
    front = pareto_front([c.time_s for c in items], [c.cost for c in items], [c.fits for c in items])
    marked = [replace(c, pareto=p) for c, p in zip(items, front)]
    inf = math.inf

    def key(c: Choice) -> tuple:
        cost = c.cost if c.cost is not None else inf
        main = (c.time_s, cost) if sort == "time" else (cost, c.time_s)
        return (not c.fits, *main, c.device, c.provider or "")

    ordered = sorted(marked, key=key)
    return [replace(c, rank=r) for r, c in enumerate(ordered, start=1)]
