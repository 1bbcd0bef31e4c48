"""Prices: the merged 2026 table, newest price per provider, --price-per-hour, --prices FILE, price notes.

Dollars are written out by hand: hours x $/GPU-hour x GPUs.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, run, run_json

import traincost
from traincost.api import with_provider
from traincost.errors import TraincostUsageError
from traincost.hardware.catalog import (
    Price,
    load_price_file,
    load_prices,
    newest_price_date,
    prices_for,
)
from traincost.pricing.cost import (
    USER_PROVIDER,
    PriceTable,
    price_notes,
    price_table,
    quote,
)

ROOT = Path(__file__).resolve().parents[1]
TINY_FC = ["fc", "--input-features", "32", "--hidden-layers", "2", "--hidden-width", "16", "--classes", "10"]
HEADER = "provider,instance_type,gpu_key,gpu_count,price_usd_per_gpu_hour,price_usd_per_instance_hour,price_type," \
         "region,source,source_date,notes\n"


def _fc():
    from traincost.flopmodel.arch import resolve

    return resolve("fc", params={"input_features": "32", "hidden_layers": "2", "hidden_width": "16", "classes": "10"})


def _price(provider: str, usd: float, date: str, gpu: str = "l4", count: int = 1) -> Price:
    return Price(provider=provider, instance_type="x", gpu_key=gpu, gpu_count=count, usd_per_gpu_hour=usd,
                 source="test", source_date=date, region="")


def _write(tmp_path: Path, body: str, name: str = "mine.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + body, encoding="utf-8")
    return path


# ------------------------------------------------------------------ the shipped table after the merge


def test_the_2026_reference_is_merged_with_dates_and_sources():
    merged = [p for p in load_prices() if p.source_date.startswith("2026-")]
    assert len(merged) == 133                      # 136 reference rows less 3 B300 (not in the catalog)
    assert len(load_prices()) == 189 + 133
    assert min(p.source_date for p in merged) == "2026-03-21"
    assert newest_price_date(load_prices()) == "2026-10-10"
    assert all(p.source and p.source_date for p in load_prices())
    assert len({p.gpu_key for p in load_prices()}) == 25
    assert len({p.provider for p in load_prices()}) == 28
    ref = ROOT / "data" / "reference" / "prices_2025_2026.csv"
    with open(ref, encoding="utf-8", newline="") as f:
        assert sum(1 for _ in csv.DictReader(f)) == 136
    assert (ROOT / "data" / "reference" / "prices_2025_2026.md").is_file()


@pytest.mark.parametrize("gpu", ["H200", "B200", "MI300X", "H100", "L4", "L40S", "RTX 4090"])
def test_gpus_of_the_report_have_a_2026_price(gpu):
    got = prices_for(gpu)
    assert got and max(p.source_date for p in got) >= "2026-01-01"


def test_aws_h100_and_l4_prices():
    aws = next(p for p in prices_for("H100") if p.provider == "AWS")
    assert (aws.usd_per_gpu_hour, aws.source_date) == (6.88, "2026-10-10")   # p5 after the 2025 cut (was 12.29)
    assert aws.instance_type in ("p5.48xlarge", "p5.4xlarge")
    assert {p.provider for p in prices_for("L4")} >= {"Vast.ai", "Jarvislabs", "RunPod", "Scaleway"}
    assert next(p for p in prices_for("H200") if p.provider == "AWS").usd_per_gpu_hour == 7.912


def test_newest_price_per_provider_then_cheapest_then_fewest_gpus():
    rows = [_price("A", 1.0, "2023-08-16"), _price("A", 3.0, "2026-10-10", count=8),
            _price("A", 3.0, "2026-10-10", count=1), _price("A", 4.0, "2026-10-10"),
            _price("B", 2.0, "2025-01-01"), _price("B", 9.0, "2024-01-01"), _price("C", 5.0, "2026-01-01", gpu="t4")]
    got = prices_for("L4", rows)
    assert [(p.provider, p.usd_per_gpu_hour, p.gpu_count, p.source_date) for p in got] == [
        ("B", 2.0, 1, "2025-01-01"), ("A", 3.0, 1, "2026-10-10")]


def test_quote_is_hours_times_price_times_gpus():
    q = quote(7200.0, [_price("A", 2.5, "2026-01-01")], gpus=4)[0]
    assert q.usd == pytest.approx(2 * 2.5 * 4)     # 2 h x $2.50 x 4 GPUs = $20
    assert (q.source, q.source_date) == ("test", "2026-01-01")


# ------------------------------------------------------------------ notes


def test_no_price_note_says_how_to_give_one():
    (note,) = price_notes([], "GTX 1080 Ti (datasheet)", "2026-10-10")
    assert "no price known for GTX 1080 Ti" in note and "--price-per-hour" in note and "--prices" in note
    assert "\n" not in note


def test_stale_note_is_relative_to_the_table_not_the_clock():
    old = quote(None, [_price("A", 1.0, "2025-01-01"), _price("B", 2.0, "2024-01-01")])
    assert price_notes(old, "L4", "2026-01-01") == []                   # 365 days: not over a year
    (note,) = price_notes(old, "L4", "2026-01-02")                      # 366 days
    assert "the newest price for L4" in note and "2025-01-01" in note and "2026-01-02" in note
    assert price_notes(quote(None, [_price(USER_PROVIDER, 1.0, "given")]), "L4", None) == []


# ------------------------------------------------------------------ price_per_hour and prices arguments


def test_price_table_arguments_are_checked():
    assert price_table() == PriceTable()
    assert price_table(price_per_hour=2).per_gpu_hour == 2.0
    for bad in (0, -1.0, math.nan, math.inf, True, "2"):
        with pytest.raises(TraincostUsageError, match="price_per_hour"):
            price_table(price_per_hour=bad)
    with pytest.raises(TraincostUsageError, match="not both"):
        price_table(price_per_hour=1.0, prices=[_price("A", 1.0, "2026-01-01")])
    with pytest.raises(TraincostUsageError, match=r"prices\[0\]"):
        price_table(prices=[_price("A", -1.0, "2026-01-01")])
    with pytest.raises(TraincostUsageError, match="empty"):
        price_table(prices=[])


def test_predict_with_a_price_per_hour_one_and_two_gpus():
    one = traincost.predict(_fc(), device="L4", batch_size=16, dataset_size=1000, epochs=3, correction=False,
                            price_per_hour=2.5)
    assert list(one.cost_usd) == [USER_PROVIDER]
    assert one.cost_usd[USER_PROVIDER] == pytest.approx(one.total_s / 3600 * 2.5 * 1)
    (p,) = one.prices
    assert (p["provider"], p["source_date"], p["usd_per_gpu_hour"]) == (USER_PROVIDER, "given", 2.5)
    assert p["source"]
    assert not [n for n in one.notes if "price" in n]
    two = traincost.predict(_fc(), device="L4", batch_size=16, dataset_size=1000, epochs=3, correction=False,
                            gpus=2, price_per_hour=2.5)
    assert two.cost_usd[USER_PROVIDER] == pytest.approx(two.total_s / 3600 * 2.5 * 2)


def test_price_per_hour_prices_a_cpu_too():
    e = traincost.predict(_fc(), device="cpu", batch_size=16, dataset_size=1000, correction=False,
                          price_per_hour=0.1)
    assert e.cost_usd[USER_PROVIDER] == pytest.approx(e.total_s / 3600 * 0.1)


def test_predict_with_a_prices_file(tmp_path):
    path = _write(tmp_path, "Acme,a1,L4,1,1.20,1.20,on-demand,eu,my quote,2026-05-01,\n"
                            "Acme,a1,L4,1,0.90,0.90,on-demand,eu,my quote,2025-01-01,older\n"
                            "Acme,a1,L4,1,0.10,0.10,spot,eu,my quote,2026-05-01,skipped\n"
                            "Beta,,nvidia l4,2,1.50,3.00,on-demand,us,their page,2026-04-01,\n")
    e = traincost.predict(_fc(), device="L4", batch_size=16, dataset_size=1000, correction=False, gpus=2,
                          prices=str(path))
    hours = e.total_s / 3600
    assert e.cost_usd == pytest.approx({"Acme": hours * 1.20 * 2, "Beta": hours * 1.50 * 2})
    assert [p["source_date"] for p in e.prices] == ["2026-05-01", "2026-04-01"]
    assert e.price_table == {"source": str(path), "newest_date": "2026-05-01"}
    # the same file on another GPU: no price, and the note says how to give one
    h = traincost.predict(_fc(), device="H100", batch_size=16, correction=False, prices=path)
    assert h.prices == [] and any(n.startswith("no price known for H100") for n in h.notes)


def test_a_stale_user_table_gets_a_note(tmp_path):
    path = _write(tmp_path, "Acme,,L4,1,1.00,,on-demand,,q,2024-01-01,\nAcme,,T4,1,0.5,,on-demand,,q,2026-06-01,\n")
    e = traincost.predict(_fc(), device="L4", batch_size=16, correction=False, prices=path)
    assert any(n.startswith("the newest price for L4") and "2024-01-01" in n for n in e.notes)


@pytest.mark.parametrize("body, where", [
    ("Acme,,L4,1,abc,,on-demand,,q,2026-01-01,\n", ":2: column price_usd_per_gpu_hour"),
    ("Acme,,L4,1,-2,,on-demand,,q,2026-01-01,\n", ":2: column price_usd_per_gpu_hour"),
    ("Acme,,L4,1,1,,on-demand,,q,2026-01-01,\nAcme,,L4,1,1,,on-demand,,q,2026-13-01,\n", ":3: column source_date"),
    ("Acme,,L4,1,1,,on-demand,,q,01/02/2026,\n", ":2: column source_date"),
    ("Acme,,Z9000,1,1,,on-demand,,q,2026-01-01,\n", ":2: column gpu_key"),
    ("Acme,,L4,0,1,,on-demand,,q,2026-01-01,\n", ":2: column gpu_count"),
    ("Acme,,L4,1,1,,on-demand,,,2026-01-01,\n", ":2: column source"),
    (",,L4,1,1,,on-demand,,q,2026-01-01,\n", ":2: column provider"),
    ("Acme,,L4,1,1,,,,q,2026-01-01,\n", ":2: column price_type"),
    ('Acme,,L4,1,1,,on-demand,,q,2026-01-01,"two\nlines"\nAcme,,L4,1,x,,on-demand,,q,2026-01-01,\n',
     ":4: column price_usd_per_gpu_hour"),
    ("Acme,,L4,1,1,,spot,,q,2026-01-01,\n", "no on-demand price"),
])
def test_a_bad_prices_file_names_file_line_and_column(tmp_path, body, where):
    path = _write(tmp_path, body)
    with pytest.raises(TraincostUsageError) as info:
        load_price_file(path)
    assert str(path) in str(info.value) and where in str(info.value)


def test_a_prices_file_without_a_column_or_unreadable(tmp_path):
    path = tmp_path / "short.csv"
    path.write_text("provider,gpu_key,price_usd_per_gpu_hour\nAcme,L4,1\n")
    with pytest.raises(TraincostUsageError, match=r"short\.csv:1: missing columns gpu_count, price_type"):
        load_price_file(path)
    with pytest.raises(TraincostUsageError, match="cannot read"):
        load_price_file(tmp_path / "absent.csv")


def test_with_provider_redoes_the_price_notes():
    e = traincost.predict(_fc(), device="H100", batch_size=16, correction=False)
    assert not any(n.startswith("the newest price") for n in e.notes)       # 2026 prices
    old = [p for p in e.prices if p["source_date"] < "2025-10-10"]
    assert old, "some provider's newest H100 price is older than a year"
    one = with_provider(e, old[0]["provider"])
    assert any(n.startswith("the newest price for H100") for n in one.notes)


def test_k80_prices_are_old_and_said_so():
    e = traincost.predict(_fc(), device="K80", batch_size=16, correction=False)
    assert e.prices and any(n.startswith("the newest price for K80") for n in e.notes)


# ------------------------------------------------------------------ CLI


def test_cli_predict_price_per_hour_json_and_text():
    out = run_json("predict", *TINY_FC, "--device", "L4", "--batch-size", "16", "--dataset-size", "1000",
                   "--gpus", "4", "--price-per-hour", "1.5", "--correction", "none")
    assert out["cost_usd"] == {USER_PROVIDER: pytest.approx(out["total_s"] / 3600 * 1.5 * 4)}
    text = run("predict", *TINY_FC, "--device", "L4", "--batch-size", "16", "--dataset-size", "1000",
               "--price-per-hour", "1.5", "--correction", "none")
    assert text.exit_code == 0 and "your price" in text.stdout and "given" in text.stdout


def test_cli_predict_shows_each_price_date_and_source():
    text = run("predict", *TINY_FC, "--device", "H200", "--batch-size", "16", "--dataset-size", "1000",
               "--correction", "none")
    assert text.exit_code == 0
    assert "2026-10-10" in text.stdout and "ewyluda/gpu-price-index" in text.stdout


def test_cli_predict_without_a_price_says_why():
    text = run("predict", *TINY_FC, "--device", "GTX 1080 Ti", "--batch-size", "16", "--correction", "none")
    assert text.exit_code == 0
    assert "no price known for GTX 1080 Ti" in " ".join(text.stdout.split())
    assert "--price-per-hour" in text.stdout


def test_cli_compare_with_a_prices_file(tmp_path):
    path = _write(tmp_path, "Acme,,L4,1,1.00,,on-demand,,q,2026-05-01,\nAcme,,T4,1,0.50,,on-demand,,q,2026-05-01,\n")
    rows = run_json("compare", *TINY_FC, "--gpus", "L4,T4", "--batch-size", "16", "--dataset-size", "1000",
                    "--prices", str(path))
    by = {r["device"]["name"]: r for r in rows}
    for name, usd in (("L4 (datasheet)", 1.0), ("T4 (datasheet)", 0.5)):
        assert by[name]["cost_usd"] == {"Acme": pytest.approx(by[name]["total_s"] / 3600 * usd)}


def test_cli_compare_price_per_hour_and_no_price_note():
    rows = run_json("compare", *TINY_FC, "--gpus", "L4,GTX 1080 Ti", "--batch-size", "16", "-n", "2",
                    "--dataset-size", "1000", "--price-per-hour", "3")
    for r in rows:
        assert r["cost_usd"] == {USER_PROVIDER: pytest.approx(r["total_s"] / 3600 * 3 * 2)}
    text = run("compare", *TINY_FC, "--gpus", "L4,GTX 1080 Ti", "--batch-size", "16")
    assert text.exit_code == 0 and "no price known for GTX 1080 Ti" in " ".join(text.stdout.split())
    assert "price sources" in text.stdout


@pytest.mark.parametrize("extra, fragments", [
    (["--price-per-hour", "-1"], ["--price-per-hour"]),
    (["--price-per-hour", "nan"], ["--price-per-hour"]),
    (["--price-per-hour", "abc"], ["price-per-hour"]),
    (["--price-per-hour", "1", "--prices", "x.csv"], ["not both"]),
    (["--price-per-hour", "1", "--provider", "aws"], ["--provider", "--price-per-hour"]),
    (["--prices", "absent.csv"], ["absent.csv", "cannot read"]),
])
@pytest.mark.parametrize("command", ["predict", "compare"])
def test_cli_price_usage_errors(command, extra, fragments):
    where = ["--device", "L4"] if command == "predict" else ["--gpus", "L4,T4"]
    result = run(command, *TINY_FC, *where, "--batch-size", "16", *extra)
    assert_one_line_error(result, 2, *fragments)


@pytest.mark.parametrize("command", ["predict", "compare"])
def test_cli_bad_prices_row_names_file_line_and_column(tmp_path, command):
    path = _write(tmp_path, "Acme,,L4,1,1,,on-demand,,q,2026-01-01,\nAcme,,L4,1,1,,on-demand,,q,yesterday,\n")
    where = ["--device", "L4"] if command == "predict" else ["--gpus", "L4,T4"]
    result = run(command, *TINY_FC, *where, "--batch-size", "16", "--prices", str(path))
    assert_one_line_error(result, 2, f"{path}:3: column source_date")
