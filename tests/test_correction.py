"""The learned correction (traincost.correction): estimator contract, persistence, intervals, selection."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tomllib

pytest.importorskip("xgboost")

import traincost
from traincost.correction import artifacts, estimator, features, select
from traincost.errors import TraincostError, TraincostUsageError
from traincost.hardware.store import load_shipped_profiles

ROOT = Path(__file__).resolve().parents[1]
FAST = {"n_estimators": 60, "learning_rate": 0.2, "max_depth": 3, "n_jobs": 1}


def synthetic(n: int = 200, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """FEATURES columns of random values; the target depends on two of them only."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, len(features.FEATURES))), columns=list(features.FEATURES))
    y = 0.5 * X["share_dev_norm"].to_numpy() - 0.3 * (X["log_batch"].to_numpy() > 0)
    return X, y


@pytest.fixture(scope="module")
def fitted() -> estimator.ResidualModel:
    X, y = synthetic()
    return estimator.ResidualModel(**FAST).fit(X, y)


# ------------------------------------------------------------------------------------------ estimator contract


def test_num_parallel_tree_grows_that_many_trees_per_round():
    X, y = synthetic()
    for rounds, per_round in ((7, 1), (7, 3)):
        m = estimator.ResidualModel(**{**FAST, "n_estimators": rounds, "num_parallel_tree": per_round}).fit(X, y)
        assert len(m.booster_.get_dump()) == rounds * per_round


def test_params_are_stored_as_given_and_clone_is_unfitted(fitted):
    m = estimator.ResidualModel(n_estimators=7, learning_rate=0.2)
    assert m.get_params()["n_estimators"] == 7 and m.get_params()["learning_rate"] == 0.2
    assert set(m.get_params()) == {"n_estimators", "max_depth", "learning_rate", "subsample", "colsample_bytree",
                                   "min_child_weight", "reg_lambda", "objective", "random_state", "n_jobs",
                                   "num_parallel_tree"}
    assert m.set_params(max_depth=2) is m and m.max_depth == 2
    with pytest.raises(TraincostUsageError, match="unknown ResidualModel parameter 'depth'"):
        m.set_params(depth=3)
    twin = estimator.clone(fitted)
    assert twin is not fitted and twin.get_params() == fitted.get_params()
    assert not hasattr(twin, "booster_")
    with pytest.raises(estimator.NotFittedError):
        twin.predict(synthetic(5)[0])


def test_sklearn_clone_works_without_sklearn_being_a_dependency(fitted):
    base = pytest.importorskip("sklearn.base")
    twin = base.clone(fitted)
    assert twin.get_params() == fitted.get_params() and not hasattr(twin, "booster_")


def test_not_fitted_is_a_traincost_error():
    m = estimator.ResidualModel()
    for call in (lambda: m.predict(np.zeros((1, 3))), lambda: m.contributions(np.zeros((1, 3))),
                 lambda: m.feature_importances_, lambda: m.save("x.json")):
        with pytest.raises(estimator.NotFittedError) as info:
            call()
        assert isinstance(info.value, TraincostError)


def test_fit_returns_self_and_learns_the_signal(fitted):
    X, y = synthetic(400, seed=1)
    model = estimator.ResidualModel(**FAST)
    assert model.fit(X, y) is model
    assert model.n_features_in_ == len(features.FEATURES) and model.feature_names_ == list(features.FEATURES)
    err = np.abs(model.predict(X) - y)
    assert err.mean() < 0.5 * np.abs(y - y.mean()).mean()
    imp = model.feature_importances_
    assert imp.sum() == pytest.approx(1.0)
    assert set(np.array(features.FEATURES)[np.argsort(imp)[-2:]]) == {"share_dev_norm", "log_batch"}


def test_fit_refuses_bad_input():
    X, y = synthetic(10)
    with pytest.raises(TraincostUsageError, match="10 rows but y has 9"):
        estimator.ResidualModel(**FAST).fit(X, y[:9])
    with pytest.raises(TraincostUsageError, match="non-finite"):
        estimator.ResidualModel(**FAST).fit(X, np.full(10, np.nan))


def test_predict_matches_columns_by_name_and_contributions_add_up(fitted):
    X, _ = synthetic(20, seed=3)
    shuffled = X[list(reversed(X.columns))]
    assert np.array_equal(fitted.predict(X), fitted.predict(shuffled))
    with pytest.raises(TraincostUsageError, match="lacks the model's features"):
        fitted.predict(X.drop(columns=["log_batch"]))
    contrib = fitted.contributions(X)
    assert list(contrib.columns) == [*features.FEATURES, "bias"]
    np.testing.assert_allclose(contrib.sum(axis=1).to_numpy(), fitted.predict(X), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------ persistence


def test_save_load_round_trip_gives_identical_predictions(fitted, tmp_path):
    fitted.set_intervals(np.linspace(-0.5, 0.5, 101))
    path = fitted.save(tmp_path / "m.json", metadata={"scope": "device", "devices": []})
    meta = json.loads((tmp_path / "m.meta.json").read_text())
    assert meta["schema_version"] == artifacts.SCHEMA_VERSION and meta["feature_names"] == list(features.FEATURES)
    assert meta["package_version"] == traincost.__version__ and meta["training_rows"] == 200
    assert len(meta["training_data_sha256"]) == 64 and meta["intervals"]["0.8"][0] < 0 < meta["intervals"]["0.8"][1]
    loaded = estimator.load(path)
    X, _ = synthetic(50, seed=5)
    assert np.array_equal(loaded.predict(X), fitted.predict(X))
    assert loaded.intervals_ == fitted.intervals_
    assert loaded.feature_ranges_ == fitted.feature_ranges_
    assert loaded.get_params() == fitted.get_params()


def _saved(fitted, tmp_path) -> Path:
    return fitted.save(tmp_path / "m.json")


def _edit_sidecar(path: Path, **changes) -> None:
    side = artifacts.sidecar_path(path)
    meta = json.loads(side.read_text())
    meta.update(changes)
    side.write_text(json.dumps(meta))


def test_wrong_schema_is_refused_with_one_clear_line(fitted, tmp_path):
    path = _saved(fitted, tmp_path)
    _edit_sidecar(path, schema_version=99)
    with pytest.raises(artifacts.ResidualModelError, match=r"m\.json: residual model schema_version 99 is not supported") as e:
        estimator.load(path)
    assert "\n" not in str(e.value) and isinstance(e.value, TraincostUsageError)


def test_wrong_features_are_refused(fitted, tmp_path):
    path = _saved(fitted, tmp_path)
    _edit_sidecar(path, feature_names=[*features.FEATURES[:-1], "log_something_else"])
    with pytest.raises(artifacts.ResidualModelError, match="features differ.*missing log_launch_us.*unexpected "
                                                   "log_something_else"):
        estimator.load(path)


def test_a_model_fitted_on_other_features_cannot_be_loaded(tmp_path):
    X = pd.DataFrame(np.random.default_rng(0).normal(size=(30, 3)), columns=["a", "b", "c"])
    path = estimator.ResidualModel(**FAST).fit(X, X["a"].to_numpy()).save(tmp_path / "other.json")
    with pytest.raises(artifacts.ResidualModelError, match="features differ"):
        estimator.load(path)


def test_a_replaced_model_file_or_missing_sidecar_is_refused(fitted, tmp_path):
    path = _saved(fitted, tmp_path)
    path.write_text(path.read_text() + " ")  # still valid JSON, another file
    with pytest.raises(artifacts.ResidualModelError, match="does not match its sidecar"):
        estimator.load(path)
    artifacts.sidecar_path(path).unlink()
    with pytest.raises(artifacts.ResidualModelError, match="no sidecar m.meta.json"):
        estimator.load(path)
    with pytest.raises(artifacts.ResidualModelError, match="residual model not found"):
        estimator.load(tmp_path / "nope.json")


# ------------------------------------------------------------------------------------------ intervals


def test_conformal_quantiles_by_hand():
    r = np.arange(1, 10)  # 1..9, shuffled order must not matter
    np.random.default_rng(0).shuffle(r)
    # n = 9, level 0.8: a = 0.1; high = ceil(10 * 0.9) = 9th -> 9, low = floor(10 * 0.1) = 1st -> 1
    assert estimator.conformal_quantiles(r, 0.8) == (1.0, 9.0)
    # level 0.5: a = 0.25; high = ceil(10 * 0.75) = 8th -> 8, low = floor(2.5) = 2nd -> 2
    assert estimator.conformal_quantiles(r, 0.5) == (2.0, 8.0)
    # n = 19 (1..19), level 0.8: high = ceil(20 * 0.9) = 18th, low = floor(20 * 0.1) = 2nd
    assert estimator.conformal_quantiles(np.arange(1, 20), 0.8) == (2.0, 18.0)
    with pytest.raises(TraincostUsageError):
        estimator.conformal_quantiles([], 0.8)


def test_interval_factors_widen_the_half_width():
    q = {0.8: (-0.2, 0.4)}
    f = select.interval_factors(q, datasheet=False)
    assert (f.low, f.high) == pytest.approx((math.exp(-0.2), math.exp(0.4)))
    # datasheet: centre 0.1, half 0.3 x 2 = 0.6 -> [-0.5, 0.7]
    f = select.interval_factors(q, datasheet=True)
    assert (f.low, f.high) == pytest.approx((math.exp(-0.5), math.exp(0.7)))
    # + out of range: half 0.3 x 2 x 1.5 = 0.9 -> [-0.8, 1.0]
    f = select.interval_factors(q, datasheet=True, out_of_range_features=["log_batch"])
    assert (f.low, f.high) == pytest.approx((math.exp(-0.8), math.exp(1.0)))
    assert f.widened_by == 3.0 and "log_batch" in f.reasons[1]
    assert select.interval_factors({}, datasheet=False) is None


def test_out_of_range_uses_a_margin_and_skips_constant_features():
    ranges = {"a": (0.0, 10.0), "b": (5.0, 5.0)}
    assert select.out_of_range({"a": 10.5, "b": 99.0}, ranges) == []        # pad = 0.1 x 10 = 1
    assert select.out_of_range({"a": 11.5, "b": 5.0}, ranges) == ["a"]
    assert select.out_of_range({"a": -1.5}, ranges) == ["a"]


# ------------------------------------------------------------------------------------------ features


def test_step_features_of_a_real_walk():
    from traincost.hardware.store import profile_for
    from traincost.pricing.optable import OpTable
    from traincost.pricing.timeline import price

    profile = profile_for("cpu")
    walk = traincost.count("fc", batch_size=8, precision="bf16", optimizer="adamw").walk
    pricing = price(OpTable.from_walk(walk), profile)
    f = features.step_features(walk, pricing, profile, precision="bf16", channels_last=False, optimizer="adamw",
                        batch_size=8)
    assert list(f) == list(features.FEATURES) and all(math.isfinite(v) for v in f.values())
    assert f["log_analytic_ms"] == pytest.approx(math.log(pricing.timeline.step_s * 1e3))
    assert f["share_compute"] + f["share_memory"] + f["share_host"] == pytest.approx(1.0)
    assert sum(f[f"share_dev_{g}"] for g in features.GROUPS) == pytest.approx(1.0)
    assert f["log_batch"] == pytest.approx(math.log(8))
    assert (f["precision_bf16"], f["precision_fp32"], f["optimizer_adam"], f["device_cuda"]) == (1, 0, 1, 0)
    assert f["log_flops_conv"] == 0.0 and f["log_flops_matmul"] > 10     # an fc model: no convolutions
    assert f["log_params"] == pytest.approx(math.log1p(walk.params))


def test_regime_features_by_hand():
    from types import SimpleNamespace

    def r(op, op_class, ins=(), outs=(), n_tensors=1):
        return SimpleNamespace(op=op, op_class=op_class, input_shapes=ins, output_shapes=outs,
                               output_dtypes=("float32",) * len(outs), n_tensors=n_tensors, host_only=False)

    records = [
        r("aten.convolution", "conv", ((8, 4, 32, 32), (4, 4, 3, 3)), ((8, 4, 32, 32),)),       # thin: 4 channels
        r("aten.convolution", "conv", ((8, 64, 4, 4), (64, 64, 3, 3)), ((8, 64, 4, 4),)),       # 4 x 4 map
        r("aten.mm", "matmul", ((16, 512), (512, 512)), ((16, 512),)),                          # skinny: M = 16
        r("aten.bernoulli_", "elementwise", ((16, 512),), ((16, 512),)),                        # in place
        r("aten.view", "free", ((8, 4, 32, 32),), ((8, 4096),)),                                # free: skipped
        r("aten._foreach_add_", "optimizer", (), (), n_tensors=5),
    ]
    f = features.regime_features(records, [1e-3, 2e-3, 3e-3, 4e-3, 0.0, 1e-3], 20e-3)
    assert f["share_conv_thin"] == pytest.approx(1e-3 / 20e-3)
    assert f["share_conv_smallmap"] == pytest.approx(2e-3 / 20e-3)
    assert f["share_mm_skinny"] == pytest.approx(3e-3 / 20e-3)
    assert f["log_rng_elements"] == pytest.approx(math.log1p(16 * 512))
    assert f["log_alloc_bytes"] == pytest.approx(math.log1p(4 * (8 * 4 * 32 * 32 + 8 * 64 * 4 * 4 + 16 * 512)))
    assert f["log_alloc_large_bytes"] == 0.0 and f["log_param_tensors"] == pytest.approx(math.log1p(5))


# ------------------------------------------------------------------------------------------ selection, predict


def _mock_profile(name: str, kind: str = "cpu"):
    from traincost.hardware.store import profile_for

    cpu = profile_for("cpu")
    import dataclasses

    return dataclasses.replace(cpu, name=name, kind=kind)


def test_select_residual_device_first_then_cross_device_then_none(tmp_path):
    X, y = synthetic(60)
    here, other = _mock_profile("Mock CPU A"), _mock_profile("Mock CPU B")
    gpu = _mock_profile("Mock GPU", kind="cuda")
    estimator.ResidualModel(**FAST).fit(X, y).save(tmp_path / "a.json", metadata={
        "scope": "device", "devices": [select.device_key(here)]})
    assert select.select_residual(here, tmp_path / "empty")[0] is None
    model, why = select.select_residual(here, tmp_path)
    assert model is not None and Path(model.metadata_["path"]).name == "a.json" and "this device" in why
    model, why = select.select_residual(other, tmp_path)
    assert model is None and "no residual model trained on Mock CPU B" in why
    estimator.ResidualModel(**FAST).fit(X, y).save(tmp_path / "z-all.json", metadata={
        "scope": "cross-device", "devices": [select.device_key(here), select.device_key(gpu)],
        "analytic_intervals": {"cpu": {"0.8": [0.1, 0.9]}}})
    assert select.select_residual(here, tmp_path)[1].startswith("trained on this device")
    model, why = select.select_residual(gpu, tmp_path)                  # no device model: the cross-device one
    assert Path(model.metadata_["path"]).name == "z-all.json" and why.startswith("cross-device model")
    other_gpu = _mock_profile("Mock GPU 2", kind="cuda")
    model, why = select.select_residual(other_gpu, tmp_path)            # a GPU in no training data: none ...
    assert model is None and "not applied to devices outside its training data" in why
    model, why = select.select_residual(other_gpu, tmp_path, unseen=True)   # ... unless asked for
    assert Path(model.metadata_["path"]).name == "z-all.json" and "not in its training data" in why
    model, why = select.select_residual(other, tmp_path)                # a calibrated CPU in none: the cross-device one
    assert Path(model.metadata_["path"]).name == "z-all.json" and "not in its training data" in why
    import dataclasses

    assert select.select_residual(dataclasses.replace(other, source="datasheet"), tmp_path)[0] is None
    # an unseen device borrows the device features of the nearest trained device of its kind, none of another
    proxy, why = select.proxy_features(model, other, "fp32")
    assert proxy == features.device_features(here, "fp32") and "Mock CPU A" in why
    assert select.proxy_features(model, _mock_profile("Mock GPU 2", kind="cuda"), "fp32")[0] == features.device_features(gpu, "fp32")
    assert select.proxy_features(model, here, "fp32") == ({}, "")
    cpu_only = estimator.ResidualModel(**FAST).fit(X, y)
    cpu_only.metadata_ = {"devices": [select.device_key(here)]}
    assert select.proxy_features(cpu_only, gpu, "fp32")[0] is None
    assert select.analytic_intervals(other, tmp_path) == {0.8: (0.1, 0.9)}
    assert select.analytic_intervals(gpu, tmp_path) == {}
    (tmp_path / "broken.json").write_text("{}")
    assert "skipped" in select.select_residual(here, tmp_path)[1]


def test_predict_applies_a_given_model_and_can_be_switched_off(tmp_path):
    from traincost.hardware.store import profile_for
    from traincost.pricing.optable import OpTable
    from traincost.pricing.timeline import price

    profile = profile_for("cpu")
    X, y = synthetic(80)
    model = estimator.ResidualModel(**FAST).fit(X, y).set_intervals(np.linspace(-0.3, 0.3, 50))
    path = model.save(tmp_path / "r.json", metadata={"scope": "device", "devices": [select.device_key(profile)]})
    e = traincost.predict("fc", device=profile, batch_size=4, correction=str(path))
    walk = traincost.count("fc", batch_size=4).walk
    pricing = price(OpTable.from_walk(walk), profile)
    f = features.step_features(walk, pricing, profile, precision="fp32", channels_last=False, optimizer="sgd", batch_size=4)
    r = float(model.predict(features.features_frame([f]))[0])
    assert e.analytic_ms == pytest.approx(pricing.timeline.step_s * 1e3)
    assert e.iteration_ms == pytest.approx(e.analytic_ms * math.exp(r))
    assert e.correction["model"] == "r.json" and e.correction["factor"] == pytest.approx(math.exp(r))
    assert e.interval["low_ms"] < e.iteration_ms < e.interval["high_ms"]
    assert "stale" not in e.correction                      # no model_version recorded: nothing to compare
    model.metadata_["model_version"] = artifacts.model_version() + 1   # fitted on another analytic model
    stale = traincost.predict("fc", device=profile, batch_size=4, correction=model)
    assert stale.correction["stale"] and f"analytic model version {artifacts.model_version() + 1}" in stale.correction["reason"]
    assert "refit with 'traincost fit'" in stale.correction["reason"]
    model.metadata_["model_version"] = artifacts.model_version()
    assert "stale" not in traincost.predict("fc", device=profile, batch_size=4, correction=model).correction
    model.metadata_["devices"] = [{**select.device_key(profile), "profile_sha256": "another"}]  # recalibrated since
    stale = traincost.predict("fc", device=profile, batch_size=4, correction=model)
    assert stale.correction["stale"] and f"another version of the {profile.name}" in stale.correction["reason"]
    off = traincost.predict("fc", device=profile, batch_size=4, correction=False)
    assert off.iteration_ms == off.analytic_ms == pytest.approx(e.analytic_ms) and off.correction["model"] is None
    with pytest.raises(TraincostUsageError, match="residual model not found"):
        traincost.predict("fc", device=profile, batch_size=4, correction=str(tmp_path / "missing.json"))


def test_a_device_outside_the_training_data_widens_the_interval_except_a_calibrated_cpu():
    X, y = synthetic(80)
    model = estimator.ResidualModel(**FAST).fit(X, y).set_intervals(np.linspace(-0.3, 0.3, 50))
    model.feature_ranges_ = {}                 # no feature out of range: only the device can widen it
    here, gpu = _mock_profile("Mock CPU A"), _mock_profile("Mock GPU", kind="cuda")
    model.metadata_ = {"scope": "cross-device", "devices": [select.device_key(here), select.device_key(gpu)]}

    def widening(profile):
        e = traincost.predict("fc", device=profile, batch_size=4, correction=model)
        return e.correction["interval_widened_by"], " ".join(e.correction["interval_reasons"])

    assert widening(here) == (1.0, "")                                     # trained on it
    assert widening(_mock_profile("Mock CPU B")) == (1.0, "")              # unseen calibrated CPU: as trained
    factor, why = widening(_mock_profile("Mock GPU B", kind="cuda"))       # unseen GPU: wider
    assert factor == pytest.approx(select.OUT_OF_RANGE_WIDEN) and "the device" in why


# ------------------------------------------------------------------------------------------ shipped models


def test_shipped_models_load_and_ship_as_package_data():
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["traincost"]
    assert "data/residual/*.json.gz" in patterns and "data/residual/*.json" in patterns
    folder = artifacts.shipped_dir()
    for name in ("cpu-2core-x86_64", "cpu-intel-xeon-2core", "h200", "all"):
        path = folder / f"{name}.json.gz"
        assert path.is_file() and artifacts.sidecar_path(path).is_file()
        assert any(path.relative_to(folder.parent.parent).match(p) for p in patterns)
        assert any(artifacts.sidecar_path(path).relative_to(folder.parent.parent).match(p) for p in patterns)
        meta = artifacts.read_sidecar(path)                         # current features, schema, intact model file
        assert meta["intervals"]["0.8"] and meta["training_rows"] > 500
    assert artifacts.read_sidecar(folder / "all.json.gz")["scope"] == "cross-device"
    h200 = artifacts.read_sidecar(folder / "h200.json.gz")     # both H200 hosts, each with its own profile: a device model
    assert h200["scope"] == "device" and {d["catalog_key"] for d in h200["devices"]} == {"h200-sxm-141gb"}
    assert {d["name"] for d in h200["devices"]} == {p.name for p in load_shipped_profiles()
                                                    if p.catalog_key == "h200-sxm-141gb"}


def test_a_users_own_calibration_of_a_shipped_device_is_not_stale():
    """Calibrating a device again (same name as a shipped profile, other numbers) keeps the device's correction,
    with a stated reason; only a change of the profile the model was fitted on makes it stale."""
    import dataclasses

    from traincost.hardware.store import load_shipped_profiles

    shipped = next(p for p in load_shipped_profiles() if p.kind == "cpu")
    mine = dataclasses.replace(shipped, dispatch_s=shipped.dispatch_s * 1.1)
    e = traincost.predict("fc", device=mine, batch_size=4)
    assert not e.correction.get("stale") and "another calibration" in e.correction["reason"]
    assert "another calibration" not in traincost.predict("fc", device=shipped, batch_size=4).correction["reason"]
    import copy

    model = copy.copy(select.select_residual(shipped)[0])         # a copy: the loaded model is cached
    model.metadata_ = {**model.metadata_, "devices": [{**d, "profile_sha256": "0" * 16}
                                                      for d in model.metadata_["devices"]]}
    assert "another version" in select.staleness(model, mine)     # the shipped profile it was fitted on changed
