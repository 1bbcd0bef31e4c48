"""Training and cross-validating the correction (traincost.sweeps.fit) on tiny datasets built here."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("xgboost")

from traincost.flopmodel.arch import resolve
from traincost.sweeps import fit as F
from traincost.sweeps.bench import FIELDS, write_dataset

CPU = "AMD EPYC (2 threads)"  # the shipped CPU profile's name


def tiny_rows(families: tuple[str, ...] = ("fc", "vgg"), per_family: int = 6) -> list[dict[str, str]]:
    """Dataset rows of tiny models on the shipped CPU profile; ``analytic_ms`` is a stale 999."""
    rows = []
    for fam in families:
        for i in range(per_family):
            if fam == "fc":
                params = {"input_features": 16 + 8 * i, "hidden_layers": 1 + i % 3, "hidden_width": 16 + 4 * i,
                          "classes": 10}
            else:
                params = {"blocks": 2, "convs_per_block": 1, "filters": 4 + 2 * i, "dense_layers": 1,
                          "dense_width": 16, "input_size": 16, "classes": 10}
            spec = resolve(fam, params=params)
            rows.append({**{f: "" for f in FIELDS}, "schema_version": "1", "config_key": f"{fam}-{i}",
                         "family": fam, "model": spec.label, "spec": json.dumps(spec.to_dict()),
                         "batch_size": str(2 + i), "precision": "fp32", "channels_last": "False",
                         "optimizer": "sgd" if i % 2 else "adamw", "status": "ok",
                         "median_ms": f"{1.0 + 0.37 * i + (0.5 if fam == 'vgg' else 0.0):.4f}",
                         "analytic_ms": "999", "device": CPU, "profile_name": CPU})
    return rows


def tiny_dataset(path: Path, **kwargs) -> Path:
    write_dataset(tiny_rows(**kwargs), path)
    return path


@pytest.fixture(scope="module")
def frame(tmp_path_factory) -> F.Frame:
    path = tiny_dataset(tmp_path_factory.mktemp("fit") / "tiny.csv")
    return F.build_frame([path], processes=1)


# ------------------------------------------------------------------------------------------ features


def test_build_frame_walks_every_row_with_the_current_code(frame, tmp_path):
    from traincost.api import predict
    from traincost.hardware.store import load_shipped_profiles

    assert len(frame) == 12 and list(frame.X.columns) == list(F.FEATURES)
    row = frame.meta.iloc[0]
    assert row["family"] == "fc" and row["device"] == CPU and row["kind"] == "cpu"
    # the analytic time is today's prediction, not the CSV's stale 999
    spec = resolve("fc", params={"input_features": 16, "hidden_layers": 1, "hidden_width": 16, "classes": 10})
    amd = next(p for p in load_shipped_profiles() if p.name == CPU)   # not profile_for("cpu"): any machine
    now = predict(spec, device=amd, batch_size=2, optimizer="adamw", correction=False).iteration_ms
    assert row["analytic_ms"] == pytest.approx(now)
    assert frame.y[0] == pytest.approx(math.log(1.0 / now))
    assert frame.datasets[0]["rows"] == 12 and len(frame.datasets[0]["sha256"]) == 64
    assert frame.devices[0]["name"] == CPU and "fp32" in frame.devices[0]["features"]


def test_the_feature_cache_skips_walks_of_the_same_code(frame, tmp_path, monkeypatch):
    data = tiny_dataset(tmp_path / "d.csv")
    cache = tmp_path / "cache.csv"
    first = F.build_frame([data], processes=1, cache=cache)
    assert cache.is_file() and np.array_equal(first.X.to_numpy(), frame.X.to_numpy())

    def no_walks(task):
        raise AssertionError("walked again")

    monkeypatch.setattr(F, "_features_chunk", no_walks)
    again = F.build_frame([data], processes=1, cache=cache)
    assert np.array_equal(again.X.to_numpy(), first.X.to_numpy()) and np.array_equal(again.y, first.y)
    monkeypatch.setattr(F, "model_version", lambda: "another")        # other code: everything is walked
    with pytest.raises(AssertionError, match="walked again"):
        F.build_frame([data], processes=1, cache=cache)


def test_the_cache_hashes_each_profile_once_not_once_per_row(tmp_path, monkeypatch):
    data = tiny_dataset(tmp_path / "d.csv")                           # 12 rows, one profile
    hashed = []
    real = F._profile_hash
    monkeypatch.setattr(F, "_profile_hash", lambda p: hashed.append(p.name) or real(p))
    F.build_frame([data], processes=1, cache=tmp_path / "cache.csv")
    assert hashed == [CPU]


def test_rows_not_ok_or_unwalkable_are_skipped_and_listed(tmp_path):
    rows = tiny_rows(per_family=2)
    rows[0]["status"] = "oom"
    rows[1]["spec"] = json.dumps({"schema_version": 1, "model": "fc", "params": {"hidden_layers": -3}})
    write_dataset(rows, tmp_path / "d.csv")
    fr = F.build_frame([tmp_path / "d.csv"], processes=1)
    assert len(fr) == 2 and len(fr.skipped) == 2
    assert any("oom" in s for s in fr.skipped) and any("fc-1" in s for s in fr.skipped)


def test_a_dataset_without_measured_rows_is_refused(tmp_path):
    rows = tiny_rows(per_family=1)
    for r in rows:
        r["status"] = "error: x"
    write_dataset(rows, tmp_path / "bad.csv")
    with pytest.raises(F.FitError, match="bad.csv: no measured rows"):
        F.build_frame([tmp_path / "bad.csv"], processes=1)
    with pytest.raises(F.FitError, match="no dataset given"):
        F.build_frame([], processes=1)


# ------------------------------------------------------------------------------------------ splits


def test_group_folds_never_split_a_group():
    groups = ["a", "b", "a", "c", "d", "b", "e", "e", "c", "a"]
    for n_splits in (None, 2, 3):
        folds = F.group_folds(groups, n_splits)
        assert len(folds) == (5 if n_splits is None else n_splits)
        seen = np.concatenate([test for _, test in folds])
        assert sorted(seen.tolist()) == list(range(len(groups)))           # every row tested exactly once
        for train, test in folds:
            assert set(train) | set(test) == set(range(len(groups))) and not set(train) & set(test)
            assert not {groups[i] for i in train} & {groups[i] for i in test}
    with pytest.raises(F.FitError, match="at least 2 groups"):
        F.group_folds(["x", "x"])


def test_cross_validation_trains_without_the_held_out_family(frame, monkeypatch):
    seen: list[tuple[set, set]] = []
    real = F.ResidualModel

    class Spy(real):
        def fit(self, X, y):
            self._train_families = set(frame.meta["family"].iloc[X.index])
            return super().fit(X, y)

        def predict(self, X):
            seen.append((self._train_families, set(frame.meta["family"].iloc[X.index])))
            return super().predict(X)

    monkeypatch.setattr(F, "ResidualModel", Spy)
    oof = F.cross_validate(frame, "family", {"n_estimators": 5})
    assert np.isfinite(oof).all() and len(seen) == 2
    for train_fams, test_fams in seen:
        assert not train_fams & test_fams
    seen.clear()
    F.cross_validate(frame, "architecture", {"n_estimators": 5})
    assert len(seen) == 5


def test_one_family_cannot_be_left_out(frame):
    one = frame.subset(np.flatnonzero(frame.meta["family"] == "fc"))
    with pytest.raises(F.FitError, match="at least 2 families.*fc"):
        F.split_folds(one, "family")
    assert len(F.split_folds(one, "architecture")) == 5


# ------------------------------------------------------------------------------------------ metrics


def test_ape_summary_by_hand():
    # errors 10, 10, 50, 0 %: median 10; p90 of [0, 10, 10, 50] at position 0.9 x 3 = 2.7 -> 10 + 0.7 x 40 = 38
    s = F.ape_summary([110, 90, 150, 100], [100, 100, 100, 100])
    assert s == pytest.approx({"median_ape": 10.0, "p90_ape": 38.0})


def test_cv_coverage_counts_rows_inside_intervals_from_other_folds():
    X = pd.DataFrame({"device_datasheet": [0.0] * 6, "v": [1.0] * 6})
    fr = F.Frame(X, np.zeros(6), pd.DataFrame({"family": list("aabbcc")}))
    folds = F.group_folds(fr.meta["family"].tolist())
    # fold a: residuals of b, c = [0, 0, 0, 5]; 50 % interval: n = 4, a = 0.25, low = floor(1.25) = 1st = 0,
    # high = ceil(3.75) = 4th = 5 -> a's residuals 0.1, 6 -> 0.1 inside, 6 outside
    residuals = np.array([0.1, 6.0, 0.0, 0.0, 0.0, 5.0])
    cov = F.cv_coverage(fr, folds, residuals, levels=(0.5,))
    # fold b: others [0.1, 6, 0, 5] -> [0, 6]: both 0 inside; fold c: others [0.1, 6, 0, 0] -> [0, 6]: 0, 5 inside
    assert cov == {"0.5": pytest.approx(5 / 6)}


def _repeat_frame() -> F.Frame:
    """Four rows: configuration k1 measured twice (100 and 400 ms) and k2 once on one device, k1 once on another."""
    X = pd.DataFrame({"device_datasheet": [0.0] * 4, "v": [1.0, 1.0, 2.0, 1.0]})
    meta = pd.DataFrame({"family": ["a", "a", "b", "a"], "device": ["d", "d", "d", "e"],
                         "config_key": ["k1", "k1", "k2", "k1"], "measured_ms": [100.0, 400.0, 50.0, 30.0],
                         "analytic_ms": [100.0, 100.0, 25.0, 10.0], "dataset": ["s1", "s2", "s1", "s1"]})
    return F.Frame(X, np.log(meta["measured_ms"] / meta["analytic_ms"]).to_numpy(), meta)


def test_combine_repeats_labels_a_configuration_with_its_median_measurement():
    fr = F.combine_repeats(_repeat_frame())
    assert len(fr) == 3 and fr.meta["config_key"].tolist() == ["k1", "k2", "k1"]  # by device, then key
    # k1 on d: the median of log 100 and log 400 = log 200 (geometric mean of two); analytic 100
    assert fr.meta["measured_ms"].tolist() == pytest.approx([200.0, 50.0, 30.0])
    assert fr.y == pytest.approx([math.log(200 / 100), math.log(50 / 25), math.log(30 / 10)])
    assert fr.meta["measurements"].tolist() == ["100;400", "50", "30"]
    assert fr.meta["dataset"].tolist() == ["s1+s2", "s1", "s1"]
    rows, offsets = F.measurement_offsets(fr)
    assert rows.tolist() == [0, 0, 1, 2]
    assert offsets == pytest.approx([math.log(100 / 200), math.log(400 / 200), 0.0, 0.0])
    # the same measurements in another order give the same frame
    rev = _repeat_frame().subset(np.array([3, 2, 1, 0]))
    again = F.combine_repeats(rev)
    assert again.meta["config_key"].tolist() == fr.meta["config_key"].tolist()
    assert again.y == pytest.approx(fr.y) and again.meta["measurements"].tolist() == ["400;100", "50", "30"]
    plain_rows, plain = F.measurement_offsets(_repeat_frame())
    assert plain_rows.tolist() == [0, 1, 2, 3] and not plain.any()


def test_reports_judge_single_measurements_too():
    fr = F.combine_repeats(_repeat_frame())
    rep = F.report(fr, "family", np.array([200.0, 50.0, 30.0]), None, None)
    assert rep["n"] == 3 and rep["corrected"]["median_ape"] == pytest.approx(0.0, abs=1e-9)
    single = rep["single_measurements"]
    # runs 100, 400, 50, 30 against predictions 200, 200, 50, 30: errors 100, 50, 0, 0 % -> median 25
    assert single["n"] == 4 and single["corrected"]["median_ape"] == pytest.approx(25.0)


def test_cv_coverage_of_a_combined_row_counts_each_measurement():
    X = pd.DataFrame({"device_datasheet": [0.0] * 3, "v": [1.0] * 3})
    meta = pd.DataFrame({"family": ["a", "b", "c"], "measured_ms": [1.0, 1.0, 1.0],
                         "measurements": ["1", "1", f"{math.exp(-0.5):.6g};{math.exp(0.5):.6g}"]})
    fr = F.Frame(X, np.zeros(3), meta)
    folds = F.group_folds(meta["family"].tolist())
    # 50 % interval from the other folds' single-measurement residuals:
    # fold a: others [0, -0.5, 0.5] -> n 3, low = floor(0.25 x 4) = 1st = -0.5, high = ceil(0.75 x 4) = 3rd = 0.5
    # -> a's 0 inside; b likewise; fold c: others [0, 0] -> [0, 0]: c's -0.5 and 0.5 outside -> 2 of 4
    cov = F.cv_coverage(fr, folds, np.zeros(3), levels=(0.5,))
    assert cov == {"0.5": pytest.approx(2 / 4)}


def test_evaluate_reports_both_predictions_per_family(frame):
    rep, corrected = F.evaluate(frame, "family", params={"n_estimators": 5})
    assert {"split", "n", "analytic", "corrected", "per_family"} <= set(rep)
    assert rep["split"] == "family" and rep["n"] == 12 and rep["folds"] == 2
    assert set(rep["per_family"]) == {"fc", "vgg"} and rep["per_family"]["vgg"]["n"] == 6
    m, a = frame.meta["measured_ms"].to_numpy(), frame.meta["analytic_ms"].to_numpy()
    assert rep["analytic"] == pytest.approx(F.ape_summary(a, m))
    assert rep["corrected"] == pytest.approx(F.ape_summary(corrected, m))
    assert 0 <= rep["interval_coverage"]["0.8"] <= 1


def test_fit_model_stores_intervals_scope_and_cv(frame, tmp_path):
    model, reports = F.fit_model(frame, {"n_estimators": 5})
    assert set(reports) == {"family", "architecture"}
    assert model.metadata_["scope"] == "device" and model.metadata_["interval_split"] == "family"
    lo, hi = model.intervals_[0.8]
    assert lo <= hi and set(model.metadata_["analytic_intervals"]) == {"cpu"}
    path = model.save(tmp_path / "m.json")
    from traincost.correction.estimator import load

    again = load(path)
    assert again.metadata_["cv"]["family"]["n"] == 12 and np.array_equal(again.predict(frame.X), model.predict(frame.X))


def test_a_rows_profile_name_wins_over_its_device_whatever_the_order():
    """Two hosts of one GPU: both profiles could match the row's ``device``; its ``profile_name`` decides."""
    from traincost.hardware.store import load_shipped_profiles

    h200s = [p for p in load_shipped_profiles() if p.catalog_key == "h200-sxm-141gb"]
    old = next(p for p in h200s if p.name == "NVIDIA H200")
    new = next(p for p in h200s if p.name != "NVIDIA H200")
    row = {"profile_name": new.name, "device": "NVIDIA H200"}
    for given in ([old, new], [new, old], []):
        assert F.resolve_row_profile(row, given).name == new.name
        assert F.resolve_row_profile({"profile_name": "", "device": "NVIDIA H200"}, given).name == old.name


def test_scope_one_gpu_of_several_hosts_is_a_device_model():
    """Hosts of one catalog GPU (the two H200 profiles) make a device model; CPUs (no catalog key) or a CPU and a
    GPU make a cross-device one."""
    h200a = {"name": "NVIDIA H200", "kind": "cuda", "catalog_key": "h200-sxm-141gb"}
    h200b = {**h200a, "name": "NVIDIA H200 (2026-12-04 host)"}
    cpu_a = {"name": "AMD EPYC (2 threads)", "kind": "cpu", "catalog_key": None}
    cpu_b = {**cpu_a, "name": "Intel(R) Xeon(R) Processor (2 threads)"}
    a100 = {"name": "A100", "kind": "cuda", "catalog_key": "a100-sxm4-80gb"}
    assert F._scope([h200a]) == F._scope([cpu_a]) == F._scope([h200a, h200b]) == "device"
    for devices in ([cpu_a, cpu_b], [cpu_a, h200a], [h200a, a100], [h200a, h200b, cpu_a]):
        assert F._scope(devices) == "cross-device", devices


def test_plot_writes_a_png(frame, tmp_path):
    out = F.plot(frame, frame.meta["analytic_ms"].to_numpy() * 1.1, tmp_path / "p.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_given_model_is_scored_as_predict_applies_it(frame):
    model, _ = F.fit_model(frame, {"n_estimators": 5})
    assert np.array_equal(F.model_residuals(model, frame), model.predict(frame.X))   # its own device
    gpu = {**frame.devices[0], "name": "Some GPU", "kind": "cuda"}
    other = F.Frame(frame.X, frame.y, frame.meta.assign(device="Some GPU", kind="cuda"), devices=[gpu])
    assert not F.model_residuals(model, other).any()               # no cuda device in its training: analytic only
    rep, corrected = F.evaluate(other, model=model)
    assert rep["split"] == "holdout" and np.allclose(corrected, other.meta["analytic_ms"])


def test_a_broken_worker_pool_falls_back_to_walking_here(tmp_path, monkeypatch):
    class Broken:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            raise F.BrokenProcessPool("a worker died")

        def __exit__(self, *exc):
            return False

    data = tiny_dataset(tmp_path / "d.csv", per_family=9)      # 18 rows: 2 chunks, so a pool is tried
    here = F.build_frame([data], processes=1)
    monkeypatch.setattr(F, "ProcessPoolExecutor", Broken)
    tried = []
    monkeypatch.setattr(Broken, "__init__", lambda self, *a, **k: tried.append(k["max_workers"]))
    again = F.build_frame([data], processes=2)
    assert tried == [2] and len(again) == 18
    assert np.array_equal(again.X.to_numpy(), here.X.to_numpy()) and np.array_equal(again.y, here.y)
