"""``traincost predict`` and ``traincost compare`` through click's CliRunner: the contract and the error paths."""

from __future__ import annotations

import math

import pytest
from cli_helpers import assert_one_line_error, run, run_json

from traincost.hardware.profile import DeviceProfile, save_profile

JSON_KEYS = {"iteration_ms", "samples_per_s", "epoch_s", "total_s", "peak_memory_bytes", "fits", "max_batch_size",
             "cost_usd", "bound", "breakdown", "device", "interval"}

TINY_VGG = ["vgg", "--blocks", "2", "--convs-per-block", "1", "--filters", "8", "--dense-layers", "1",
            "--dense-width", "32", "--input-size", "32", "--classes", "10"]
TINY_FC = ["fc", "--input-features", "32", "--hidden-layers", "2", "--hidden-width", "16", "--classes", "10"]


# ------------------------------------------------------------------------------------------- predict


def test_predict_json_contract():
    out = run_json("predict", *TINY_VGG, "--device", "A100 SXM 80GB", "--batch-size", "16", "--epochs", "2",
                   "--dataset-size", "1000")
    assert JSON_KEYS <= set(out)
    assert set(out["device"]) == {"name", "profile_source"}
    assert out["device"] == {"name": "A100 SXM4 80GB (datasheet)", "profile_source": "datasheet"}
    assert out["interval"]["low_ms"] < out["iteration_ms"] < out["interval"]["high_ms"]  # the analytic errors
    assert out["correction"]["model"] is None and out["iteration_ms"] == out["analytic_ms"]  # no model for an A100
    assert out["bound"] in ("compute", "memory", "host")
    assert out["fits"] is True and out["max_batch_size"] >= 16
    assert out["samples_per_s"] == pytest.approx(16 / (out["iteration_ms"] / 1e3))
    assert out["epoch_s"] == pytest.approx(math.ceil(1000 / 16) * out["iteration_ms"] / 1e3)
    assert out["total_s"] == pytest.approx(2 * out["epoch_s"])
    assert out["cost_usd"] and all(v > 0 for v in out["cost_usd"].values())
    assert {p["provider"] for p in out["prices"]} == set(out["cost_usd"])
    assert all(p["source_date"] and p["source"] for p in out["prices"])
    row = out["breakdown"][0]
    assert {"module", "ms", "bound", "flops", "bytes"} <= set(row)
    assert sum(r["ms"] for r in out["breakdown"]) == pytest.approx(out["analytic_ms"])  # layers: analytic


def test_predict_on_cpu_and_a_provider():
    out = run_json("predict", *TINY_FC, "--device", "cpu", "--batch-size", "4")
    assert out["device"]["profile_source"] == "calibrated"
    assert out["cost_usd"] == {} and out["epoch_s"] is None and out["total_s"] is None
    one = run_json("predict", *TINY_FC, "--device", "T4", "--batch-size", "4", "--dataset-size", "100",
                   "--provider", "aws")
    assert list(one["cost_usd"]) == ["AWS"]


def test_predict_gpus_multiply_the_hardware():
    one = run_json("predict", *TINY_FC, "--device", "A100", "--batch-size", "8", "--dataset-size", "1000")
    two = run_json("predict", *TINY_FC, "--device", "A100", "--batch-size", "8", "--dataset-size", "1000",
                   "--gpus", "2")
    assert two["iteration_ms"] == pytest.approx(one["iteration_ms"])
    assert two["samples_per_s"] == pytest.approx(2 * one["samples_per_s"])
    assert two["steps_per_epoch"] == math.ceil(1000 / 16)
    provider = next(iter(one["cost_usd"]))
    per_gpu_hour = next(p["usd_per_gpu_hour"] for p in two["prices"] if p["provider"] == provider)
    assert two["cost_usd"][provider] == pytest.approx(two["total_s"] / 3600 * per_gpu_hour * 2)


def test_predict_table():
    result = run("predict", *TINY_VGG, "--device", "V100", "--batch-size", "8", "--epochs", "3",
                 "--dataset-size", "5000")
    assert result.exit_code == 0, result.output
    for fragment in ("step", "samples/s", "epoch", "total", "memory", "fits", "Heaviest layers", "provider"):
        assert fragment in result.stdout, fragment


def small_gpu_profile(memory_bytes: int) -> DeviceProfile:
    """A mocked GPU profile with little memory."""
    return DeviceProfile.from_dict({
        "schema_version": 1, "source": "calibrated", "name": "Small GPU", "kind": "cuda", "catalog_key": None,
        "memory_bytes": memory_bytes, "compute": {"matmul": {"fp32": {"peak": 1e12, "latency_s": 1e-5}},
                                                  "conv": {"fp32": {"peak": 2e12, "latency_s": 2e-5}}},
        "memory": {"peak": 1e11, "latency_s": 1e-6}, "reduction": {"peak": 5e10, "latency_s": 2e-6},
        "dispatch_s": 1e-5, "dispatch_autocast_s": 2e-5, "launch_s": 3e-6, "optimizer": {}, "software": {},
        "created": "2026-01-01"})


def test_predict_a_batch_that_does_not_fit(tmp_path):
    path = save_profile(small_gpu_profile(520 * 2**20), tmp_path / "small.json")
    out = run_json("predict", *TINY_VGG, "--device", str(path), "--batch-size", "4096")
    assert out["fits"] is False and 0 < out["max_batch_size"] < 4096
    assert out["max_batch_size_exact"] is True
    assert any("does not fit" in n for n in out["notes"])
    table = run("predict", *TINY_VGG, "--device", str(path), "--batch-size", "4096")
    assert table.exit_code == 0 and "DOES NOT FIT" in table.stdout
    assert f"{out['max_batch_size']:,}" in table.stdout


# ------------------------------------------------------------------------------------------- compare


def test_compare_sorted_by_total_time():
    # batch 2048: device-bound, so the GPUs differ (at small batch all are host-bound alike)
    out = run_json("compare", *TINY_VGG, "--gpus", "T4,H100 SXM,A100 SXM 80GB", "--batch-size", "2048",
                   "--epochs", "1", "--dataset-size", "100000")
    names = [e["device"]["name"] for e in out]
    assert names == ["H100 SXM5 80GB (datasheet)", "A100 SXM4 80GB (datasheet)", "T4 (datasheet)"]
    totals = [e["total_s"] for e in out]
    assert totals == sorted(totals)
    for e in out:
        assert JSON_KEYS <= set(e)


def test_compare_table_lists_devices_in_order_with_costs():
    result = run("compare", *TINY_VGG, "--gpus", "T4,H100 SXM,A100 SXM 80GB", "--batch-size", "2048",
                 "--dataset-size", "100000")
    assert result.exit_code == 0, result.output
    text = result.stdout
    order = [text.index(n) for n in ("H100 SXM5 80GB", "A100 SXM4 80GB", "T4")]
    assert order == sorted(order)
    assert "$" in text and "total" in text


def test_compare_without_a_dataset_sorts_by_step_time():
    out = run_json("compare", *TINY_FC, "--gpus", "L4, A100", "--batch-size", "8")
    assert [e["iteration_ms"] for e in out] == sorted(e["iteration_ms"] for e in out)
    assert all(e["total_s"] is None and e["cost_usd"] == {} for e in out)


# ------------------------------------------------------------------------------------------- errors


def test_unknown_gpu_lists_close_names():
    line = assert_one_line_error(run("predict", *TINY_FC, "--device", "A1000", "--batch-size", "2"), 2, "unknown GPU")
    assert "did you mean" in line or "catalog models" in line
    assert_one_line_error(run("compare", *TINY_FC, "--gpus", "A100,H1000", "--batch-size", "2"), 2, "H1000")


def test_bf16_on_a_gpu_without_it():
    assert_one_line_error(run("predict", *TINY_FC, "--device", "V100", "--batch-size", "2", "--precision", "bf16"), 2,
                 "bf16", "V100")
    assert_one_line_error(run("compare", *TINY_FC, "--gpus", "A100,T4", "--batch-size", "2", "--precision", "bf16"), 2,
                 "T4")


@pytest.mark.parametrize("extra, fragment", [
    (["--epochs", "-1", "--dataset-size", "100"], "epochs"),
    (["--dataset-size", "-100"], "--dataset-size"),
    (["--epochs", "2"], "dataset_size"),
    (["--gpus", "0"], "gpus"),
    (["--batch-size", "0"], "batch_size"),
    (["--provider", "nobody", "--dataset-size", "10"], "provider"),
])
def test_bad_run_parameters(extra, fragment):
    args = ["predict", *TINY_FC, "--device", "A100"]
    if "--batch-size" not in extra:
        args += ["--batch-size", "2"]
    assert_one_line_error(run(*args, *extra), 2, fragment)


def test_missing_device_and_gpus_options_are_usage_errors():
    assert run("predict", *TINY_FC, "--batch-size", "2").exit_code == 2
    assert run("compare", *TINY_FC, "--batch-size", "2").exit_code == 2
    assert_one_line_error(run("compare", *TINY_FC, "--gpus", " , ", "--batch-size", "2"), 2, "--gpus")


def test_correction_text_is_printed_literally():
    """A correction reason with square brackets (pip extras) is text, not rich markup."""
    import dataclasses

    from rich.console import Console

    import traincost
    from traincost.cli.render import estimate_view

    e = traincost.predict("fc", device="cpu", batch_size=4, correction=False)
    e = dataclasses.replace(e, correction={"model": None, "reason": "needs xgboost: pip install 'traincost[learn]'"})
    console = Console(width=200, record=True)
    console.print(estimate_view(e))
    assert "pip install 'traincost[learn]'" in console.export_text()
