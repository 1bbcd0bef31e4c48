"""traincost.reports: correlations, one-factor series, accuracy, residual tables and the insights report."""

from __future__ import annotations

import base64
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from insights_data import CPU, VGG_BASE, row, write_legacy, write_synthetic

from traincost.errors import TraincostError, TraincostUsageError
from traincost.reports import analysis, insights, loading
from traincost.sweeps.bench import write_dataset

# ------------------------------------------------------------------------------------------ correlations


def _frame(**cols: list) -> pd.DataFrame:
    n = len(next(iter(cols.values())))
    base = {"family": ["fc"] * n, "device": [CPU] * n}
    return pd.DataFrame({**base, **cols})


def test_monotone_feature_has_spearman_one_and_hand_pearson():
    x = [1.0, 2.0, 4.0, 8.0, 16.0]
    y = [3 * v * v for v in x]  # 3, 12, 48, 192, 768: monotone, a power law
    table = analysis.correlation_table(_frame(flops_total=x, measured_ms=y))
    got = table[(table.group == "all") & (table.feature == "flops_total")].iloc[0]
    # Pearson by hand: mean x = 31/5 = 6.2, mean y = 1023/5 = 204.6
    dx = [v - 6.2 for v in x]
    dy = [v - 204.6 for v in y]
    r = sum(a * b for a, b in zip(dx, dy)) / math.sqrt(sum(a * a for a in dx) * sum(b * b for b in dy))
    assert got.spearman == pytest.approx(1.0)
    assert got.pearson == pytest.approx(r)
    assert 0.9 < r < 0.99  # the raw Pearson of a curved relation is below 1 ...
    assert got.pearson_log == pytest.approx(1.0)  # ... and exactly 1 on log-log axes (slope 2)
    assert got.n == 5 and got.kind == "counted"


def test_decreasing_and_unrelated_features():
    y = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    table = analysis.correlation_table(_frame(measured_ms=y, hidden_layers=[6, 5, 4, 3, 2, 1],
                                              classes=[1, -1, -1, 1, 1, -1], dropout=[0.5] * 6))
    got = table[table.group == "all"].set_index("feature")
    assert got.loc["hidden_layers", "spearman"] == pytest.approx(-1.0)
    assert got.loc["hidden_layers", "kind"] == "architecture"
    # classes = +-1: Pearson by hand, mean y 3.5, mean x 0: sum(x*(y-3.5)) / sqrt(6 * 17.5)
    assert got.loc["classes", "pearson"] == pytest.approx(
        (-2.5 + 1.5 + 0.5 + 0.5 + 1.5 - 2.5) / math.sqrt(6 * 17.5))
    assert "dropout" not in got.index  # constant: dropped


def test_groups_overall_and_per_family():
    frame = pd.DataFrame({
        "family": ["fc"] * 5 + ["vgg"] * 5, "device": [CPU] * 10,
        "measured_ms": [1, 2, 3, 4, 5, 10, 20, 30, 40, 50],
        "flops_total": [1, 2, 3, 4, 5, 10, 20, 30, 40, 50],
        "filters": [np.nan] * 5 + [50, 40, 30, 20, 10],  # a vgg parameter, absent from fc rows
        "batch_size": [1, 1, 2, 2, 2, 1, 1, 2, 2, 2],
    })
    table = analysis.correlation_table(frame)
    assert list(dict.fromkeys(table.group)) == ["all", "fc", "vgg"]
    filters = table[table.feature == "filters"]
    assert filters.group.tolist() == ["vgg"]  # not in 'all': missing on fc rows
    assert filters.spearman.iloc[0] == pytest.approx(-1.0)
    flops = table[table.feature == "flops_total"].set_index("group")
    assert flops.spearman.tolist() == pytest.approx([1.0, 1.0, 1.0])
    batch = table[table.feature == "batch_size"].set_index("group")
    # binary batch: the log scale applies to time only; Pearson of log10(time) with the raw batch
    logy = np.log10(frame.measured_ms[:5])
    assert batch.loc["fc", "pearson_log"] == pytest.approx(np.corrcoef([1, 1, 2, 2, 2], logy)[0, 1])


def test_top_correlations_orders_by_absolute_value():
    table = pd.DataFrame({"group": ["all"] * 3 + ["fc"], "feature": ["a", "b", "c", "a"],
                          "kind": ["counted", "step", "counted", "counted"], "n": 5,
                          "pearson": 0.0, "pearson_log": 0.0, "spearman": [0.3, -0.9, 0.5, 1.0]})
    assert analysis.top_correlations(table, k=2).feature.tolist() == ["b", "c"]
    assert analysis.top_correlations(table, kind="counted").feature.tolist() == ["c", "a"]


def test_unknown_target_is_a_usage_error():
    with pytest.raises(TraincostUsageError, match="nope"):
        analysis.correlation_table(_frame(measured_ms=[1, 2]), target="nope")


# ------------------------------------------------------------------------------------------ loading, one factor


def test_load_frame_reads_specs_and_step(tmp_path):
    frame = loading.load_frame([write_synthetic(tmp_path)])
    assert len(frame) == 16
    assert set(frame.family) == {"fc", "vgg"}
    vgg = frame[frame.family == "vgg"]
    assert vgg.filters.notna().all() and vgg.hidden_width.isna().all()
    assert frame.flops_total.iloc[0] == pytest.approx(1e6 // 3 + 2e6 // 3 + 1e6 // 100)
    assert set(frame.low_precision) == {0.0, 1.0}
    assert frame.stored_analytic_ms.notna().all()


def test_load_frame_legacy_columns_take_family_from_spec(tmp_path):
    frame = loading.load_frame([write_legacy(tmp_path)])
    assert len(frame) == 12 and set(frame.family) == {"fc", "vgg"}
    assert frame.stored_analytic_ms.isna().all()  # the precursor stored no analytic prediction
    assert set(frame.device) == {"NVIDIA H200"}


def test_resnet_block_lists_become_totals(tmp_path):
    params = {"blocks": [2, 3], "block": "basic", "width": 8, "input_size": 32, "classes": 10}
    path = write_dataset([row("resnet", params)], tmp_path / "r.csv")
    frame = loading.load_frame([path])
    assert frame.loc[0, "blocks"] == 5 and frame.loc[0, "stages"] == 2 and frame.loc[0, "bottleneck"] == 0


def test_one_factor_series_adds_the_base_and_sorts(tmp_path):
    frame = loading.load_frame([write_synthetic(tmp_path)])
    series = analysis.one_factor_series(frame)
    assert set(zip(series.family, series.factor)) == {("vgg", "filters"), ("vgg", "batch_size")}
    filters = series[series.factor == "filters"]
    assert filters.x.tolist() == [4, 8, 16]  # the base (4 filters) first, then sorted
    assert filters.measured_ms.tolist() == [2.0, 4.0, 8.0]
    batch = series[series.factor == "batch_size"]
    assert batch.x.tolist() == [8, 16] and batch.measured_ms.tolist() == [2.0, 3.0]
    summary = analysis.one_factor_summary(series).set_index("factor")
    assert summary.loc["filters", "swing"] == pytest.approx(8.0 / 2.0)
    assert summary.loc["batch_size", "swing"] == pytest.approx(3.0 / 2.0)
    assert summary.index[0] == "filters"  # the largest swing first


def test_no_seed_sweeps_gives_an_empty_series(tmp_path):
    frame = loading.load_frame([write_legacy(tmp_path)])
    assert analysis.one_factor_series(frame).empty


# ------------------------------------------------------------------------------------------ accuracy, residual


def test_accuracy_table_by_hand():
    frame = pd.DataFrame({"family": ["fc", "fc", "vgg", "vgg"], "measured_ms": [10.0, 10.0, 10.0, 10.0],
                          "pred": [9.5, 12.0, 5.0, 10.0]})
    acc = analysis.accuracy_table(frame, "pred").set_index("group")
    # APE 5, 20, 50, 0 %: median 12.5; within 10 %: 2 of 4
    assert acc.loc["all", "median_ape"] == pytest.approx(12.5)
    assert acc.loc["all", "within_band"] == pytest.approx(50.0)
    assert acc.loc["vgg", "median_ratio"] == pytest.approx((2.0 + 1.0) / 2)


class _FakeModel:
    def __init__(self) -> None:
        self.feature_names_ = ["a", "b", "c"]
        self.feature_importances_ = np.array([0.2, 0.5, 0.3])


def test_importance_and_contribution_tables():
    imp = analysis.importance_table(_FakeModel())
    assert imp.feature.tolist() == ["b", "c", "a"]
    contribs = pd.DataFrame({"a": [0.1, -0.3], "b": [0.0, 0.1], "bias": [1.0, 1.0]})
    table = analysis.contribution_table(contribs).set_index("feature")
    assert "bias" not in table.index
    assert table.loc["a", "mean_abs"] == pytest.approx(0.2)
    assert table.loc["a", "mean"] == pytest.approx(-0.1)
    assert table.loc["a", "share"] == pytest.approx(0.2 / 0.25)


# ------------------------------------------------------------------------------------------ the report


def _assert_self_contained(html_text: str, pngs: list[str]) -> None:
    for png in pngs:
        encoded = base64.b64encode(Path(png).read_bytes()).decode("ascii")
        assert f"data:image/png;base64,{encoded}" in html_text, png
    sources = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)""", html_text)
    assert sources and all(s.startswith("data:") for s in sources), [s[:40] for s in sources]
    assert "<script" not in html_text and "<link" not in html_text and "url(" not in html_text


@pytest.fixture(scope="module")
def two_devices(tmp_path_factory):
    """The report of the synthetic CPU dataset (stored analytic, a vgg seed sweep) and a precursor-schema H200
    one (no analytic, no sweeps); no residual."""
    folder = tmp_path_factory.mktemp("two")
    data = write_synthetic(folder)
    result = insights.build_report([data, write_legacy(folder)], folder / "out" / "deep", analytic="stored",
                                   residual="auto", dpi=30)
    return data, result


def test_report_writes_pngs_and_self_contained_html(two_devices):
    _, result = two_devices
    out = Path(result.out_dir)
    assert out.name == "deep" and out.parent.name == "out"  # created with its parents
    assert result.devices == sorted([CPU, "NVIDIA H200"])
    names = sorted(Path(p).name for p in result.pngs)
    cpu = [f"amd-epyc-2-threads-{n}.png" for n in ("correlation_time", "time_vs_counted", "one_factor_vgg",
                                                     "predicted_vs_measured", "correlation_error")]
    h200 = [f"nvidia-h200-{n}.png" for n in ("correlation_time", "time_vs_counted", "marginal_fc", "marginal_vgg")]
    assert names == sorted(cpu + h200)
    for p in result.pngs:
        assert Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html_text = (out / "report.html").read_text(encoding="utf-8")
    _assert_self_contained(html_text, result.pngs)
    assert len(re.findall(r"<img ", html_text)) == len(result.pngs)


def test_report_says_what_it_skipped(two_devices):
    _, result = two_devices
    html_text = Path(result.html).read_text(encoding="utf-8")
    assert "no one-factor sweeps" in html_text and "No analytic prediction" in html_text
    assert "run without --fast" in html_text  # why the residual section is skipped
    assert any("no one-factor sweeps" in n for n in result.notes)


def test_report_reading_comes_from_the_numbers(two_devices):
    data, result = two_devices
    frame = loading.load_frame([data])
    random_rows = frame[~frame.sweep.str.startswith("seed:")]
    best = analysis.top_correlations(analysis.correlation_table(random_rows), kind="counted").iloc[0]
    assert any(f"{best.feature} (Spearman ρ={best.spearman:.2f}" in s for s in result.reading)
    t = frame.measured_ms
    assert any(f"step time {t.min():.2f}–{t.max():.1f} ms" in s for s in result.reading), result.reading[0]
    acc = analysis.accuracy_table(frame, "stored_analytic_ms").set_index("group")
    assert any(f"median error {acc.loc['all', 'median_ape']:.1f} %" in s for s in result.reading)
    assert any("vgg filters ×4.0" in s for s in result.reading)  # the one-factor swing, 2 -> 8 ms
    assert {r["device"] for r in result.top_correlations} == {CPU, "NVIDIA H200"}


@pytest.mark.parametrize("make, match", [
    (lambda d: d / "missing.csv", "not found"),
    (lambda d: (d / "other.csv").write_text("a,b\n1,2\n") and d / "other.csv", "not a traincost dataset"),
    (lambda d: write_dataset([row("fc", {"input_features": 8}, status="oom")], d / "oom.csv"), "no 'ok' rows"),
])
def test_bad_datasets_are_usage_errors(tmp_path, make, match):
    with pytest.raises(TraincostUsageError, match=match):
        insights.build_report([make(tmp_path)], tmp_path / "out", analytic="stored", residual="none")


def test_unwritable_out_dir_is_a_usage_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(TraincostUsageError, match="it is a file"):
        insights.build_report([write_synthetic(tmp_path)], blocker, analytic="stored", residual="none")
    with pytest.raises(TraincostUsageError, match="cannot write the report"):
        insights.build_report([write_synthetic(tmp_path)], blocker / "sub", analytic="stored", residual="none")


def test_missing_matplotlib_is_a_failure(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(TraincostError, match="needs matplotlib") as info:
        insights.build_report([write_synthetic(tmp_path)], tmp_path / "out", analytic="stored", residual="none")
    assert not isinstance(info.value, TraincostUsageError)


def test_report_with_a_residual_model(tmp_path):
    """Walk tiny rows with today's model, fit a small residual on them, and report with it."""
    fit = pytest.importorskip("traincost.sweeps.fit")
    from traincost.correction.estimator import ResidualModel

    rows = []
    for i in range(3):
        flops = 1e6 * (i + 1)
        rows.append(row("fc", {"input_features": 8 + 4 * i, "hidden_layers": 1 + i % 2, "hidden_width": 8 + 8 * i,
                               "dropout": 0.0, "batchnorm": False, "classes": 10},
                        measured_ms=0.3 + 0.1 * i, flops=flops, key=f"fc{i}"))
        rows.append(row("vgg", {**VGG_BASE, "filters": 2 + i}, measured_ms=1.0 + 0.3 * i, flops=flops,
                        key=f"vgg{i}"))
    data = write_dataset(rows, tmp_path / "walk.csv")
    walked = fit.build_frame([data], processes=1)
    model = ResidualModel(n_estimators=5, max_depth=2).fit(walked.X, walked.y)
    model.metadata_ = {"datasets": walked.datasets, "devices": walked.devices, "scope": "device"}
    model_path = model.save(tmp_path / "residual.json")
    result = insights.build_report([data], tmp_path / "out", analytic="recompute", residual=str(model_path),
                                   processes=1, dpi=40)
    names = {Path(p).name for p in result.pngs}
    assert {"residual_importance.png", "residual_contributions.png"} <= names
    html_text = Path(result.html).read_text(encoding="utf-8")
    assert "in-sample: the model was trained on these rows" in html_text
    assert "Corrected, cross-validated" in html_text
    assert any("residual model's correction leans most on" in s for s in result.reading)
    _assert_self_contained(html_text, result.pngs)
