"""Epochs, total time and dollars (traincost.pricing.cost): arithmetic written out."""

from __future__ import annotations

import math

import pytest

from traincost.errors import TraincostUsageError
from traincost.hardware.catalog import Price
from traincost.pricing.cost import (
    check_run,
    plan_run,
    prices_for_profile,
    quote,
    select_provider,
)


def _price(provider: str, usd: float, date: str = "2024-01-02") -> Price:
    return Price(provider=provider, instance_type="x1", gpu_key="a100-sxm4-40gb", gpu_count=1,
                 usd_per_gpu_hour=usd, source="test table", source_date=date, region="us")


def test_steps_are_the_ceiling_of_samples_over_the_global_batch():
    plan = plan_run(0.5, batch_size=64, dataset_size=1000, epochs=3)
    assert plan.global_batch_size == 64
    assert plan.steps_per_epoch == 16          # ceil(1000 / 64) = ceil(15.625)
    assert plan.epoch_s == pytest.approx(16 * 0.5)
    assert plan.total_s == pytest.approx(3 * 16 * 0.5)
    assert plan.epochs == 3


def test_exact_multiple_has_no_extra_step():
    assert plan_run(1.0, batch_size=100, dataset_size=1000).steps_per_epoch == 10


def test_gpus_multiply_the_global_batch():
    plan = plan_run(0.25, batch_size=64, gpus=4, dataset_size=1000, epochs=2)
    assert plan.global_batch_size == 256       # 64 x 4
    assert plan.steps_per_epoch == 4           # ceil(1000 / 256) = ceil(3.9)
    assert plan.total_s == pytest.approx(2 * 4 * 0.25)


def test_epochs_default_to_one_and_no_dataset_means_no_run():
    assert plan_run(2.0, batch_size=10, dataset_size=25).total_s == pytest.approx(3 * 2.0)
    plan = plan_run(2.0, batch_size=10)
    assert (plan.steps_per_epoch, plan.epoch_s, plan.total_s, plan.epochs) == (None, None, None, None)


def test_fractional_epochs():
    assert plan_run(1.0, batch_size=10, dataset_size=100, epochs=0.5).total_s == pytest.approx(0.5 * 10 * 1.0)


@pytest.mark.parametrize("kwargs, word", [
    ({"epochs": -1, "dataset_size": 10, "gpus": 1}, "epochs"),
    ({"epochs": 0, "dataset_size": 10, "gpus": 1}, "epochs"),
    ({"epochs": math.nan, "dataset_size": 10, "gpus": 1}, "epochs"),
    ({"epochs": None, "dataset_size": -5, "gpus": 1}, "dataset_size"),
    ({"epochs": None, "dataset_size": 0, "gpus": 1}, "dataset_size"),
    ({"epochs": None, "dataset_size": 2.5, "gpus": 1}, "dataset_size"),
    ({"epochs": None, "dataset_size": None, "gpus": 0}, "gpus"),
    ({"epochs": 2, "dataset_size": None, "gpus": 1}, "dataset_size"),
])
def test_bad_run_parameters_are_usage_errors(kwargs, word):
    with pytest.raises(TraincostUsageError, match=word):
        check_run(**kwargs)


def test_dollars_are_hours_times_price_times_gpus():
    quotes = quote(7200.0, [_price("Cheap", 1.5), _price("Dear", 4.0, "2023-05-06")], gpus=2)
    assert [q.provider for q in quotes] == ["Cheap", "Dear"]
    assert quotes[0].usd == pytest.approx(2.0 * 1.5 * 2)   # 2 h x $1.5/GPU-h x 2 GPUs = $6
    assert quotes[1].usd == pytest.approx(2.0 * 4.0 * 2)   # $16
    assert quotes[1].source_date == "2023-05-06" and quotes[1].source == "test table"
    assert quotes[0].to_dict()["usd_per_gpu_hour"] == 1.5


def test_no_total_gives_prices_without_dollars():
    (q,) = quote(None, [_price("Cheap", 1.5)])
    assert q.usd is None and q.usd_per_gpu_hour == 1.5


def test_select_provider_is_case_insensitive_and_names_the_known_ones():
    quotes = quote(3600.0, [_price("Lambda", 1.0), _price("AWS", 3.0)])
    assert [q.provider for q in select_provider(quotes, "aws", "A100")] == ["AWS"]
    assert select_provider(quotes, None, "A100") == quotes
    with pytest.raises(TraincostUsageError, match="AWS, Lambda"):
        select_provider(quotes, "nope", "A100")


def test_prices_come_from_the_catalog_for_a_catalog_gpu_and_not_for_a_cpu():
    from traincost.hardware.store import profile_for

    a100 = prices_for_profile(profile_for("A100 SXM 80GB"))
    assert a100 and all(p.gpu_key == "a100-sxm4-80gb" for p in a100)
    assert [p.usd_per_gpu_hour for p in a100] == sorted(p.usd_per_gpu_hour for p in a100)
    assert prices_for_profile(profile_for("cpu")) == ()
