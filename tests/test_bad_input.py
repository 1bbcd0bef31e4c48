"""User-reported bad inputs: each is a plain answer (a usage error naming the option, a note) instead of a
misleading result, an internal error or a model failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, run, run_json

from traincost.errors import TraincostUsageError

TINY_FC = ["fc", "--input-features", "32", "--hidden-layers", "2", "--hidden-width", "16", "--classes", "10"]
# 1e10 weights: not even batch 1 fits on an A100 (fp32 weights + gradients alone are 75 GiB)
HUGE_FC = ["fc", "--input-features", "100000", "--hidden-layers", "1", "--hidden-width", "100000"]


# ---------------------------------------------------------------- 1. a model that does not fit is not a failed one

def test_batchnorm_model_that_does_not_fit_is_reported_as_not_fitting() -> None:
    out = run_json("predict", *HUGE_FC, "--device", "A100", "--batch-size", "8", "--correction", "none")
    assert out["fits"] is False and out["max_batch_size"] == 0
    note = next(n for n in out["notes"] if "does not fit" in n)
    assert "too much" in note and "a GPU with more memory" in note
    table = run("predict", *HUGE_FC, "--device", "A100", "--batch-size", "8", "--correction", "none")
    assert table.exit_code == 0, table.output
    assert "DOES NOT FIT" in table.stdout and "failed" not in table.output


def test_max_batch_size_searches_batchnorm_models_from_batch_2() -> None:
    from traincost.flopmodel.arch import resolve
    from traincost.flopmodel.count import count, max_batch_size

    spec = resolve("fc", params={"input_features": "64", "hidden_layers": "1", "hidden_width": "64",
                                 "batchnorm": "true"})
    assert max_batch_size(spec, memory_bytes=1, start=1) == 0  # nothing fits: 0, not a model failure
    peak2 = count(spec, batch_size=2).peak_memory_bytes
    assert max_batch_size(spec, memory_bytes=peak2, start=1) == 2


def test_not_fitting_note_suggests_what_would_fit() -> None:
    out = run_json("predict", "resnet50", "--device", "T4", "--batch-size", "1024", "--correction", "none")
    assert out["fits"] is False and out["max_batch_size"] > 0
    note = next(n for n in out["notes"] if "does not fit" in n)
    assert "GiB too much" in note and "--precision bf16" in note and "a GPU with more memory" in note


# ---------------------------------------------------------------- 2. run parameters and device names

def test_batch_larger_than_the_dataset_has_a_note() -> None:
    out = run_json("predict", *TINY_FC, "--device", "A100", "--batch-size", "4096", "--dataset-size", "1000",
                   "--correction", "none")
    assert out["steps_per_epoch"] == 1
    assert any("exceeds the dataset" in n for n in out["notes"])
    table = run("predict", *TINY_FC, "--device", "A100", "--batch-size", "4096", "--dataset-size", "1000",
                "--correction", "none")
    assert "(1 step of 4,096)" in table.stdout and "exceeds the dataset" in " ".join(table.stdout.split())


@pytest.mark.parametrize("command", ["predict", "compare"])
@pytest.mark.parametrize("epochs", ["1e300", "inf", "2e6"])
def test_absurd_epochs_is_a_usage_error(command: str, epochs: str) -> None:
    device = ["--device", "A100"] if command == "predict" else ["--gpus", "A100"]
    assert_one_line_error(run(command, *TINY_FC, *device, "--batch-size", "8", "--dataset-size", "1000",
                              "--epochs", epochs), 2, "--epochs")


def test_library_bounds_epochs() -> None:
    from traincost.api import predict

    with pytest.raises(TraincostUsageError, match="epochs must be at most"):
        predict("fc", device="A100", batch_size=8, dataset_size=1000, epochs=1e300)


@pytest.mark.parametrize("devices", ["A100,A100", "A100,a100 sxm4 40gb"])
def test_compare_the_same_gpu_twice_is_one_row(devices: str) -> None:
    rows = run_json("compare", *TINY_FC, "--gpus", devices, "--batch-size", "8")
    assert len(rows) == 1
    assert any("compared once" in n for n in rows[0]["notes"])
    table = run("compare", *TINY_FC, "--gpus", devices, "--batch-size", "8")
    assert table.exit_code == 0 and "compared once" in " ".join(table.stdout.split())


def test_compare_gpus_given_a_count_points_to_num_gpus() -> None:
    line = assert_one_line_error(run("compare", *TINY_FC, "--gpus", "8", "--batch-size", "8"), 2,
                                 "--gpus '8'", "-n/--num-gpus 8")
    assert "unknown GPU" not in line


def test_compare_numeric_gpu_names_still_work() -> None:
    rows = run_json("compare", *TINY_FC, "--gpus", "3090", "--batch-size", "8")
    assert "3090" in rows[0]["device"]["name"]


@pytest.mark.parametrize("device", ["cuda", "cuda:0", "GPU"])
def test_device_cuda_says_to_name_the_gpu_or_calibrate(device: str) -> None:
    line = assert_one_line_error(run("predict", *TINY_FC, "--device", device, "--batch-size", "8"), 2,
                                 f"'{device}'", "--device A100", "traincost calibrate")
    assert "unknown GPU" not in line


# ---------------------------------------------------------------- 3. internal errors that are plain ones

@pytest.mark.parametrize("value", ["nan", "inf", "1e12"])
def test_memory_gb_out_of_range_is_a_usage_error(value: str) -> None:
    assert_one_line_error(run("count", *TINY_FC, "--batch-size", "8", "--memory-gb", value), 2, "--memory-gb")


def test_max_batch_size_search_is_bounded() -> None:
    from traincost.flopmodel.count import MAX_SEARCH_BATCH, max_batch_size

    assert max_batch_size("resnet18", memory_bytes=2**70, start=8) == MAX_SEARCH_BATCH


def test_binary_spec_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    path.write_bytes(bytes(range(128, 256)) * 4)
    line = assert_one_line_error(run("count", "--spec", str(path), "--batch-size", "8"), 2, str(path),
                                 "not a text file")
    assert "internal error" not in line


# ---------------------------------------------------------------- 4. count's and predict's largest batch

def test_count_and_predict_say_why_their_largest_batch_differs() -> None:
    table = run("count", *TINY_FC, "--batch-size", "8", "--memory-gb", "1")
    assert table.exit_code == 0, table.output
    text = " ".join(table.stdout.split())
    assert "CUDA context" in text and "traincost predict" in text
    out = run_json("count", *TINY_FC, "--batch-size", "8", "--memory-gb", "1")
    assert "notes" not in out  # JSON keys unchanged
    view = run("predict", *TINY_FC, "--device", "A100", "--batch-size", "8", "--correction", "none")
    text = " ".join(view.stdout.split())
    assert "CUDA context (500 MiB)" in text and "count --memory-gb" in text
    cpu = json.loads(run("predict", *TINY_FC, "--device", "cpu", "--batch-size", "8", "--json").stdout)
    assert cpu["context_bytes"] == 0
