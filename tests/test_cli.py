"""Tests for ``traincost count`` through click's CliRunner: output contract and every error path."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import assert_one_line_error, run, run_json

CONTRACT_KEYS = {"params", "flops", "bytes", "peak_memory_bytes", "ops", "unpriced_ops", "layers"}

TINY_VGG = ["vgg", "--blocks", "2", "--convs-per-block", "1", "--filters", "8", "--dense-layers", "1",
            "--dense-width", "32", "--input-size", "32", "--classes", "10"]


# --------------------------------------------------------------------------------------------
# the output


def test_count_resnet50_json_contract() -> None:
    out = run_json("count", "resnet50", "--batch-size", "64")
    assert CONTRACT_KEYS <= set(out)
    assert set(out["flops"]) == {"forward", "backward", "optimizer", "total"}
    assert set(out["bytes"]) == {"read", "written"}
    assert out["params"] == 25_557_032
    assert out["flops"]["total"] == out["flops"]["forward"] + out["flops"]["backward"] + out["flops"]["optimizer"]
    assert out["unpriced_ops"] == {}
    assert out["ops"] == sum(row["ops"] for row in out["layers"])
    assert sum(row["flops"] for row in out["layers"]) == out["flops"]["total"]
    assert out["batch_size"] == 64 and out["input_shape"] == [3, 224, 224]
    # forward conv FLOPs of resnet50 at 224 are about 4.1 GMAC = 8.2 GFLOP per image
    assert 8.0e9 * 64 < out["flops"]["forward"] < 8.5e9 * 64
    assert out["peak_memory_bytes"] > 0


def test_count_vgg_family_options() -> None:
    out = run_json("count", "vgg", "--blocks", "5", "--convs-per-block", "3", "--filters", "64",
                   "--input-size", "224", "--batch-size", "32")
    assert out["model"].startswith("vgg(blocks=5, convs_per_block=3, filters=64")
    assert out["batch_size"] == 32 and out["input_shape"] == [3, 224, 224]
    # first conv: 2 * 32 * 64 * 3 * 3 * 3 * 224 * 224
    conv = next(row for row in out["layers"] if row["module"] == "stages.0.conv0.conv")
    assert conv["forward_flops"] == 2 * 32 * 64 * 3 * 3 * 3 * 224 * 224


def test_count_spec_yaml(data_dir: Path) -> None:
    out = run_json("count", "--spec", str(data_dir / "net.yaml"), "--batch-size", "8")
    assert out["model"].startswith("vgg(blocks=2")
    assert out["batch_size"] == 8 and out["input_shape"] == [3, 32, 32]


def test_count_spec_json_matches_options(data_dir: Path) -> None:
    spec = run_json("count", "--spec", str(data_dir / "net.json"), "--batch-size", "4")
    opts = run_json("count", "resnet", "--blocks", "1,1", "--block", "basic", "--width", "8",
                    "--input-size", "32", "--classes", "10", "--batch-size", "4")
    assert spec["flops"] == opts["flops"] and spec["params"] == opts["params"]


def test_count_resnet_blocks_list() -> None:
    out = run_json("count", "resnet", "--blocks", "3,4,6,3", "--batch-size", "2")
    assert out["params"] == 25_557_032
    assert "blocks=[3,4,6,3]" in out["model"]


def test_count_step_options() -> None:
    out = run_json("count", *TINY_VGG, "--batch-size", "4", "--precision", "bf16", "--channels-last",
                   "--optimizer", "adamw")
    assert out["precision"] == "bf16" and out["channels_last"] is True and out["optimizer"] == "adamw"


def test_count_user_factory(data_dir: Path) -> None:
    out = run_json("count", f"{data_dir / 'user_model.py'}:make", "--input-shape", "3,16,16",
                   "--batch-size", "2")
    assert out["model"].endswith("user_model.py:make")
    assert out["params"] == 8 * 3 * 3 * 3 + 2 * 8 + 8 * 10 + 10
    assert {"conv", "bn", "fc", "(loss)", "(optimizer)"} <= {row["module"] for row in out["layers"]}


def test_count_table_output() -> None:
    result = run("count", *TINY_VGG, "--batch-size", "4", "--top", "3")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "Heaviest layers" in text and "Totals" in text and "Memory" in text
    for word in ("forward", "backward", "optimizer", "total", "bytes read", "peak"):
        assert word in text
    assert "stages.0.conv0.conv" in text  # the heaviest layer of this net
    assert "Traceback" not in result.output and result.stderr == ""
    assert not text.lstrip().startswith("{")


def test_count_table_shows_the_top_layers_only() -> None:
    three = run("count", *TINY_VGG, "--batch-size", "4", "--top", "3").stdout
    everything = run("count", *TINY_VGG, "--batch-size", "4", "--top", "100").stdout
    assert "(loss)" in everything and "(loss)" not in three


def test_count_memory_gb() -> None:
    out = run_json("count", *TINY_VGG, "--batch-size", "4", "--memory-gb", "0.01")
    assert out["memory_bytes"] == int(0.01 * 2**30)
    best = out["max_batch_size"]
    assert best >= 1
    fits = run_json("count", *TINY_VGG, "--batch-size", str(best))
    too_big = run_json("count", *TINY_VGG, "--batch-size", str(best + 1))
    assert fits["peak_memory_bytes"] <= out["memory_bytes"] < too_big["peak_memory_bytes"]
    table = run("count", *TINY_VGG, "--batch-size", "4", "--memory-gb", "0.01")
    assert table.exit_code == 0
    assert f"largest batch that fits in 0.01 GiB: {best}" in table.stdout


def test_version_and_help() -> None:
    assert run("--version").exit_code == 0
    result = run("count", "--help")
    assert result.exit_code == 0 and "--batch-size" in result.stdout and "--spec" in result.stdout


# --------------------------------------------------------------------------------------------
# every error path: one line, the right exit code, no traceback


def test_unknown_name() -> None:
    line = assert_one_line_error(run("count", "resnt50", "--batch-size", "2"), 2, "'resnt50'")
    assert "resnet50" in line


def test_unknown_name_far_from_everything() -> None:
    assert_one_line_error(run("count", "zzzzzzzz", "--batch-size", "2"), 2, "'zzzzzzzz'")


@pytest.mark.parametrize("batch", ["0", "-4"])
def test_zero_or_negative_batch_size(batch: str) -> None:
    assert_one_line_error(run("count", "resnet50", "--batch-size", batch), 2, "--batch-size", batch)


def test_non_integer_batch_size() -> None:
    assert_one_line_error(run("count", "resnet50", "--batch-size", "lots"), 2, "--batch-size", "lots")


def test_missing_batch_size() -> None:
    assert_one_line_error(run("count", "resnet50"), 2, "--batch-size")


def test_negative_filters() -> None:
    assert_one_line_error(run("count", "vgg", "--filters", "-8", "--batch-size", "2"), 2, "filters", "-8")


@pytest.mark.parametrize(("option", "value"), [("--blocks", "0"), ("--input-size", "8"),
                                                ("--dropout", "1.5"), ("--block", "huge")])
def test_bad_family_values(option: str, value: str) -> None:
    family = "fc" if option == "--dropout" else "resnet" if option == "--block" else "vgg"
    assert_one_line_error(run("count", family, option, value, "--batch-size", "2"), 2, value)


def test_option_of_another_family() -> None:
    assert_one_line_error(run("count", "fc", "--filters", "8", "--batch-size", "2"), 2, "filters")


@pytest.mark.parametrize("file", ["malformed.yaml", "malformed.json", "unknown_key.yaml", "bad_version.json",
                                  "bad_value.yaml"])
def test_bad_spec_file(file: str, data_dir: Path) -> None:
    assert_one_line_error(run("count", "--spec", str(data_dir / file), "--batch-size", "2"), 2, file)


def test_missing_spec_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    assert_one_line_error(run("count", "--spec", str(missing), "--batch-size", "2"), 2, "not found",
                          "nowhere.yaml")


def test_model_and_spec_both(data_dir: Path) -> None:
    assert_one_line_error(run("count", "resnet50", "--spec", str(data_dir / "net.yaml"), "--batch-size", "2"),
                          2, "MODEL", "--spec")


def test_spec_with_family_option(data_dir: Path) -> None:
    assert_one_line_error(run("count", "--spec", str(data_dir / "net.yaml"), "--blocks", "3",
                              "--batch-size", "2"), 2, "--blocks")


def test_neither_model_nor_spec() -> None:
    assert_one_line_error(run("count", "--batch-size", "2"), 2, "MODEL")


def test_family_option_on_a_torchvision_model() -> None:
    assert_one_line_error(run("count", "resnet50", "--blocks", "3,4,6,3", "--batch-size", "2"), 2,
                          "--blocks", "resnet50")


def test_factory_that_raises(data_dir: Path) -> None:
    assert_one_line_error(run("count", f"{data_dir / 'user_model.py'}:raises", "--input-shape", "3,16,16",
                              "--batch-size", "2"), 1, "the user's factory is broken")


def test_factory_returning_non_module(data_dir: Path) -> None:
    assert_one_line_error(run("count", f"{data_dir / 'user_model.py'}:not_a_module", "--input-shape",
                              "3,16,16", "--batch-size", "2"), 1, "not a torch.nn.Module")


def test_model_failing_on_the_input_shape(data_dir: Path) -> None:
    assert_one_line_error(run("count", f"{data_dir / 'user_model.py'}:make", "--input-shape", "7,16,16",
                              "--batch-size", "2"), 1, "(2, 7, 16, 16)")


def test_missing_factory_file(tmp_path: Path) -> None:
    assert_one_line_error(run("count", f"{tmp_path / 'gone.py'}:make", "--input-shape", "3,16,16",
                              "--batch-size", "2"), 2, "gone.py")


def test_missing_factory_function(data_dir: Path) -> None:
    assert_one_line_error(run("count", f"{data_dir / 'user_model.py'}:mkae", "--input-shape", "3,16,16",
                              "--batch-size", "2"), 2, "'mkae'", "make")


def test_factory_without_input_shape(data_dir: Path) -> None:
    assert_one_line_error(run("count", f"{data_dir / 'user_model.py'}:make", "--batch-size", "2"), 2,
                          "--input-shape")


@pytest.mark.parametrize("shape", ["3,a,224", "3,-1,224", "3,,224", "abc"])
def test_bad_input_shape(shape: str) -> None:
    assert_one_line_error(run("count", "resnet50", "--input-shape", shape, "--batch-size", "2"), 2,
                          "input_shape")


def test_family_input_shape_conflict() -> None:
    assert_one_line_error(run("count", "vgg", "--input-size", "32", "--input-shape", "3,64,64",
                              "--batch-size", "2"), 2, "input_size=")


@pytest.mark.parametrize("value", ["0", "-1"])
def test_bad_memory_gb(value: str) -> None:
    assert_one_line_error(run("count", "resnet50", "--batch-size", "2", "--memory-gb", value), 2,
                          "--memory-gb")


@pytest.mark.parametrize(("option", "value"), [("--precision", "fp8"), ("--optimizer", "lion"),
                                                ("--top", "0")])
def test_bad_choices(option: str, value: str) -> None:
    assert_one_line_error(run("count", "resnet50", "--batch-size", "2", option, value), 2, option, value)


def test_unknown_option() -> None:
    assert_one_line_error(run("count", "vgg", "--blcks", "3", "--batch-size", "2"), 2, "--blcks")


def test_unknown_command() -> None:
    assert_one_line_error(run("cuont"), 2, "cuont")


def test_internal_errors_are_one_line_too(monkeypatch: pytest.MonkeyPatch) -> None:
    import traincost.flopmodel.count as count_module

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("a bug\nwith two lines")

    monkeypatch.setattr(count_module, "count", broken)
    assert_one_line_error(run("count", "resnet50", "--batch-size", "2"), 1, "internal error", "KeyError")


def test_count_token_model_with_input_dtype(data_dir: Path) -> None:
    out = run_json("count", f"{data_dir / 'user_model.py'}:make_token_model", "--input-shape", "16",
                   "--input-dtype", "int64", "--batch-size", "4")
    assert out["unpriced_ops"] == {}
    assert any(row["module"] == "0" for row in out["layers"])  # the embedding


def test_token_model_without_integer_inputs_fails_cleanly(data_dir: Path) -> None:
    result = run("count", f"{data_dir / 'user_model.py'}:make_token_model", "--input-shape", "16",
                 "--batch-size", "4")
    assert_one_line_error(result, 1, "failed during the training step")
