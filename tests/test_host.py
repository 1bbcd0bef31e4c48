"""The host that launches a GPU's kernels: stated in every estimate, replaceable by a factor or another profile."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import traincost
from traincost.cli import main
from traincost.correction.artifacts import profile_hash
from traincost.errors import TraincostUsageError
from traincost.hardware.host import host_summary, with_host, without_host_override
from traincost.hardware.profile import load_profile
from traincost.hardware.store import profile_for, shipped_profiles_dir

TINY = traincost.ArchSpec("family", "fc", {"input_features": 64, "hidden_layers": 2, "hidden_width": 64})


def test_a_factor_scales_every_host_cost_and_no_device_cost():
    gpu = profile_for("A100 SXM 80GB")
    fast = with_host(gpu, 0.5)
    assert fast.dispatch_s == pytest.approx(gpu.dispatch_s * 0.5)
    assert fast.dispatch_autocast_s == pytest.approx(gpu.dispatch_autocast_s * 0.5)
    assert fast.optimizer["sgd_fixed_s"] == pytest.approx(gpu.optimizer["sgd_fixed_s"] * 0.5)
    assert fast.optimizer["adamw_per_tensor_s"] == pytest.approx(gpu.optimizer["adamw_per_tensor_s"] * 0.5)
    assert fast.optimizer["sgd_s_per_byte"] == gpu.optimizer["sgd_s_per_byte"]          # device time on a GPU
    assert fast.compute == gpu.compute and fast.memory == gpu.memory and fast.launch_s == gpu.launch_s
    assert with_host(fast, 2.0).dispatch_s == pytest.approx(gpu.dispatch_s * 2.0)        # relative to the profile's
    assert without_host_override(fast) == gpu


def test_a_host_bound_step_scales_with_the_host_and_says_so():
    base = traincost.predict(TINY, device="A100 SXM 80GB", batch_size=2, correction=None)
    fast = traincost.predict(TINY, device="A100 SXM 80GB", batch_size=2, correction=None, host=0.5)
    assert base.bound == "host" and base.host["source"] == "assumed" and base.host["factor"] == 1.0
    assert fast.host_ms == pytest.approx(base.host_ms * 0.5)
    assert fast.host["source"] == "user" and fast.host["factor"] == 0.5 and fast.host["name"].endswith("x0.5")


def test_another_calibrated_profile_lends_its_host():
    old, new = load_profile(shipped_profiles_dir() / "h200.json"), profile_for("H200")  # two hosts of one GPU
    assert old.dispatch_s != new.dispatch_s
    moved = with_host(new, old)
    assert moved.dispatch_s == old.dispatch_s and moved.compute == new.compute
    assert host_summary(moved)["source"] == "user" and old.name in host_summary(moved)["name"]
    assert profile_hash(moved) == profile_hash(new)            # the device is the same: its residual still applies


def test_bad_hosts_are_usage_errors():
    gpu = profile_for("T4")
    for bad in (0.0, -1, 100, float("nan"), True, "fast"):
        with pytest.raises(TraincostUsageError):
            traincost.predict(TINY, device=gpu, batch_size=2, correction=None, host=bad)
    with pytest.raises(TraincostUsageError, match="its own host"):
        traincost.predict(TINY, device="cpu", batch_size=2, correction=None, host=0.5)
    with pytest.raises(TraincostUsageError, match="calibrated GPU profile"):
        traincost.predict(TINY, device=gpu, batch_size=2, correction=None, host=profile_for("cpu"))


def test_cli_host_option_and_json_key():
    runner = CliRunner()
    args = ["predict", "fc", "--input-features", "64", "--hidden-layers", "2", "--hidden-width", "64",
            "--batch-size", "2", "--device", "T4", "--correction", "none", "--json"]
    out = runner.invoke(main, args + ["--host", "0.8"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["host"]["factor"] == 0.8
    bad = runner.invoke(main, args + ["--host", "fast"])
    assert bad.exit_code == 2 and "host must be a factor" in bad.output and "Traceback" not in bad.output
