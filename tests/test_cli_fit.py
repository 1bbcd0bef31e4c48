"""``traincost fit`` and ``traincost evaluate`` through click's CliRunner: contracts and error paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("xgboost")

from cli_helpers import assert_one_line_error, run, run_json
from test_fit import tiny_dataset

APE_KEYS = {"median_ape", "p90_ape"}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return tiny_dataset(tmp_path_factory.mktemp("clifit") / "tiny.csv")


@pytest.fixture(scope="module")
def fitted(data, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("model") / "residual.json"
    summary = run_json("fit", "--dataset", str(data), "-o", str(out), "--processes", "1", "--trees", "20")
    return out, summary


def test_fit_writes_model_and_sidecar(fitted):
    out, summary = fitted
    assert out.is_file() and out.with_name("residual.meta.json").is_file()
    assert summary["rows"] == 12 and summary["scope"] == "device" and summary["devices"] == ["AMD EPYC (2 threads)"]
    assert set(summary["cv"]) == {"family", "architecture"}
    assert APE_KEYS == set(summary["cv"]["family"]["corrected"])
    assert summary["intervals"]["0.8"][0] <= summary["intervals"]["0.8"][1]


def test_predict_uses_the_fitted_model_when_given(fitted):
    out, _ = fitted
    e = run_json("predict", "fc", "--input-features", "32", "--hidden-layers", "2", "--hidden-width", "16",
                 "--classes", "10", "--batch-size", "4", "--device", "cpu", "--correction", str(out))
    assert e["correction"]["model"] == "residual.json" and e["interval"]["low_ms"] <= e["interval"]["high_ms"]
    assert e["iteration_ms"] == pytest.approx(e["analytic_ms"] * e["correction"]["factor"])
    off = run_json("predict", "fc", "--batch-size", "4", "--device", "cpu", "--correction", "none")
    assert off["correction"]["model"] is None and off["iteration_ms"] == off["analytic_ms"]
    text = run("predict", "fc", "--batch-size", "4", "--device", "cpu", "--correction", str(out))
    assert text.exit_code == 0 and "correction" in text.stdout and "residual.json" in text.stdout
    assert "80% interval" in text.stdout


def test_evaluate_json_contract_and_plot(data, tmp_path):
    png = tmp_path / "p.png"
    rep = run_json("evaluate", "--dataset", str(data), "--processes", "1", "--trees", "20", "--plot", str(png))
    assert {"split", "n", "analytic", "corrected", "per_family"} <= set(rep)
    assert rep["split"] == "family" and rep["n"] == 12
    assert set(rep["analytic"]) == APE_KEYS and set(rep["corrected"]) == APE_KEYS
    assert set(rep["per_family"]) == {"fc", "vgg"} and set(rep["per_family"]["fc"]) == {"n", "analytic", "corrected"}
    assert png.read_bytes()[:4] == b"\x89PNG"
    both = run_json("evaluate", str(data), "--split", "both", "--processes", "1", "--trees", "20")  # file given positionally
    assert [r["split"] for r in both] == ["family", "architecture"]


def test_evaluate_a_given_model_holds_the_data_out(data, fitted):
    out, _ = fitted
    rep = run_json("evaluate", "--dataset", str(data), "--model", str(out), "--processes", "1", "--trees", "20")
    assert rep["split"] == "holdout" and rep["n"] == 12 and set(rep["interval_coverage"]) == {"0.8", "0.9"}


def test_evaluate_text_shows_both_predictions(data):
    result = run("evaluate", "--dataset", str(data), "--processes", "1", "--trees", "20")
    assert result.exit_code == 0, result.output
    assert "analytic" in result.stdout and "corrected" in result.stdout and "interval coverage" in result.stdout


# ------------------------------------------------------------------------------------------ errors


def test_missing_dataset_is_a_usage_error(tmp_path):
    assert_one_line_error(run("fit", "--dataset", str(tmp_path / "no.csv"), "-o", str(tmp_path / "m.json")), 2,
                          "dataset not found", "no.csv")
    assert_one_line_error(run("evaluate", "--dataset", str(tmp_path / "no.csv")), 2, "dataset not found")
    assert_one_line_error(run("fit", "-o", str(tmp_path / "m.json")), 2, "give at least one dataset")


def test_empty_or_foreign_csv_is_a_usage_error(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    assert_one_line_error(run("evaluate", "--dataset", str(tmp_path / "empty.csv")), 2, "empty file")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    assert_one_line_error(run("fit", "--dataset", str(tmp_path / "other.csv"), "-o", str(tmp_path / "m.json")), 2,
                          "not a traincost dataset")


def test_unwritable_output_is_refused_before_walking(data, tmp_path):
    assert_one_line_error(run("fit", "--dataset", str(data), "-o", str(tmp_path / "nodir" / "m.json")), 2,
                          "cannot write")
    assert_one_line_error(run("fit", "--dataset", str(data), "-o", str(tmp_path / "m.xgb")), 2, ".json")
    assert_one_line_error(run("evaluate", "--dataset", str(data), "--plot", str(tmp_path / "nodir" / "p.png")), 2,
                          "cannot write")


def test_too_few_families_for_leave_one_family_out(tmp_path):
    one = tiny_dataset(tmp_path / "one.csv", families=("fc",), per_family=4)
    assert_one_line_error(run("evaluate", "--dataset", str(one), "--processes", "1", "--trees", "20"), 2,
                          "at least 2 families")
    rep = run_json("evaluate", "--dataset", str(one), "--split", "architecture", "--processes", "1", "--trees", "20")
    assert rep["split"] == "architecture" and rep["n"] == 4


def test_a_model_of_another_schema_is_refused(data, fitted, tmp_path):
    out, _ = fitted
    bad = tmp_path / "bad.json"
    bad.write_bytes(out.read_bytes())
    meta = json.loads(out.with_name("residual.meta.json").read_text())
    meta["schema_version"] = 2
    (tmp_path / "bad.meta.json").write_text(json.dumps(meta))
    assert_one_line_error(run("evaluate", "--dataset", str(data), "--model", str(bad)), 2, "bad.json",
                          "schema_version 2")
    assert_one_line_error(run("predict", "fc", "--batch-size", "2", "--device", "cpu", "--correction", str(bad)), 2,
                          "schema_version 2")
    assert_one_line_error(run("predict", "fc", "--batch-size", "2", "--device", "cpu", "--correction",
                              str(tmp_path / "none.json")), 2, "residual model not found")
