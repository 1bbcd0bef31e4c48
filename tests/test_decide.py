"""Ranking and Pareto front of (GPU, provider) choices (traincost.decide), on constructed estimates."""

from __future__ import annotations

import pytest

from traincost.api import Estimate
from traincost.decide import Choice, choices, pareto_front, rank_choices
from traincost.errors import TraincostUsageError


def test_pareto_front_on_a_constructed_table():
    #        A        B        C        D        E (tie with B)  F (does not fit)  G (no price)
    times = [1.0, 2.0, 3.0, 2.5, 2.0, 0.5, 0.1]
    costs = [10.0, 5.0, 1.0, 6.0, 5.0, 0.1, None]
    fits = [True, True, True, True, True, False, True]
    # A fastest; C cheapest; B and E equal (neither dominates the other); D is dominated by B (faster, cheaper);
    # F would dominate everything but does not fit; G has no cost
    assert pareto_front(times, costs, fits) == [True, True, True, False, True, False, False]


def test_pareto_front_edge_cases():
    assert pareto_front([], [], []) == []
    assert pareto_front([1.0], [1.0], [True]) == [True]
    assert pareto_front([1.0, 1.0], [2.0, 1.0], [True, True]) == [False, True]  # same time, cheaper wins


def _estimate(name: str, step_ms: float, prices: list[tuple[str, float]], *, fits: bool = True, gpus: int = 1,
              batch: int = 100, total_s: float | None = None) -> Estimate:
    hours = total_s / 3600 if total_s is not None else None
    quotes = [{"provider": p, "usd": (hours * rate * gpus if hours is not None else None), "usd_per_gpu_hour": rate,
               "gpus": gpus, "source": "test", "source_date": "2026-01-01", "instance_type": "", "region": ""}
              for p, rate in prices]
    return Estimate(iteration_ms=step_ms, samples_per_s=batch * gpus / (step_ms / 1e3), epoch_s=total_s,
                    total_s=total_s, peak_memory_bytes=1, fits=fits, max_batch_size=batch, cost_usd={},
                    bound="compute", breakdown=[], device={"name": name, "profile_source": "datasheet"},
                    prices=quotes, gpus=gpus, batch_size=batch)


def test_choices_one_per_price_and_dollars_per_million_samples():
    fast = _estimate("fast", 100.0, [("cloudA", 3.6), ("cloudB", 7.2)], gpus=2)
    free = _estimate("noprice", 50.0, [])
    out = choices([fast, free])
    assert [(c.device, c.provider) for c in out] == [("fast", "cloudA"), ("fast", "cloudB"), ("noprice", None)]
    # 2 GPUs x $3.6/h = $0.002/s; 2000 samples/s -> $1e-6 per sample = $1 per million samples
    assert out[0].usd_per_million_samples == pytest.approx(1.0)
    assert out[1].usd_per_million_samples == pytest.approx(2.0)
    assert out[2].usd_per_million_samples is None and out[2].estimate_index == 1


def test_rank_by_time_and_by_cost_with_front_and_misfits():
    est = [_estimate("slow-cheap", 400.0, [("c", 1.0)]),
           _estimate("fast-dear", 100.0, [("c", 8.0)]),
           _estimate("mid", 200.0, [("c", 3.0)]),            # $ per sample ~ rate x step: 600, between the two
           _estimate("middle-bad", 300.0, [("c", 4.0)]),     # 1200: slower and dearer than mid: dominated
           _estimate("huge", 10.0, [("c", 0.1)], fits=False)]
    by_time = rank_choices(choices(est), sort="time")
    assert [c.device for c in by_time] == ["fast-dear", "mid", "middle-bad", "slow-cheap", "huge"]
    assert [c.rank for c in by_time] == [1, 2, 3, 4, 5]
    assert {c.device for c in by_time if c.pareto} == {"fast-dear", "mid", "slow-cheap"}
    by_cost = rank_choices(choices(est), sort="cost")
    # $ per sample ~ rate x step: slow-cheap 400, mid 600, fast-dear 800, middle-bad 1200; misfits last
    assert [c.device for c in by_cost] == ["slow-cheap", "mid", "fast-dear", "middle-bad", "huge"]
    with pytest.raises(TraincostUsageError, match="sort"):
        rank_choices(choices(est), sort="speed")


def test_run_time_is_used_when_the_dataset_is_known():
    a = _estimate("a", 100.0, [("c", 1.0)], total_s=3600.0)
    c = choices([a])[0]
    assert isinstance(c, Choice) and c.time_s == 3600.0 and c.usd == pytest.approx(1.0)
