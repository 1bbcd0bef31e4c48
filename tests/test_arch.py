"""Tests for traincost.flopmodel.arch: names, spec files, factories and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from traincost import ArchSpec, ModelBuildError, SpecError, resolve
from traincost.errors import TraincostUsageError
from traincost.flopmodel.arch import SPEC_SCHEMA_VERSION


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------------------------
# names


@pytest.mark.parametrize("name", ["fc", "vgg", "resnet", "inception"])
def test_family_names_resolve_to_family_specs(name: str) -> None:
    spec = resolve(name)
    assert spec.kind == "family" and spec.name == name
    assert "family" not in spec.params  # the ClassVar is not a parameter
    model = spec.build()
    assert isinstance(model, nn.Module)
    assert all(p.device.type == "meta" for p in model.parameters())


def test_family_params_are_validated_and_complete() -> None:
    spec = resolve("vgg", params={"blocks": "3", "filters": "16", "input-size": "64"})
    assert spec.params["blocks"] == 3 and spec.params["filters"] == 16 and spec.params["input_size"] == 64
    assert spec.params["convs_per_block"] == 2  # the default, filled in
    assert spec.sample_shape() == (3, 64, 64)
    assert spec.label.startswith("vgg(") and "filters=16" in spec.label


def test_family_bad_value_names_parameter_and_value() -> None:
    with pytest.raises(SpecError, match=r"filters.*-4"):
        resolve("vgg", params={"filters": -4})
    with pytest.raises(SpecError, match=r"unknown parameter 'depth'"):
        resolve("vgg", params={"depth": 3})


def test_resnet50_family_has_torchvision_parameter_count() -> None:
    spec = resolve("resnet", params={"blocks": [3, 4, 6, 3], "block": "bottleneck", "width": 64})
    assert n_params(spec.build()) == 25_557_032


@pytest.mark.parametrize("name", ["resnet50", "vgg16", "vit_b_16", "mobilenet_v3_small"])
def test_torchvision_names_build_on_meta(name: str) -> None:
    spec = resolve(name)
    assert spec.kind == "torchvision"
    model = spec.build()
    assert all(p.device.type == "meta" for p in model.parameters())


def test_torchvision_resnet50_parameter_count() -> None:
    assert n_params(resolve("resnet50").build()) == 25_557_032


@pytest.mark.parametrize(("name", "size"), [("inception_v3", 299), ("resnet50", 224), ("vit_b_16", 224),
                                            ("efficientnet_b3", 300)])
def test_torchvision_default_input_shapes(name: str, size: int) -> None:
    assert resolve(name).sample_shape() == (3, size, size)


def test_explicit_input_shape_overrides_default() -> None:
    assert resolve("resnet50", input_shape=(3, 128, 128)).sample_shape() == (3, 128, 128)
    assert resolve("resnet50", input_shape="3,96,96").sample_shape() == (3, 96, 96)
    assert resolve("resnet50", input_shape="3x80x80").sample_shape() == (3, 80, 80)


def test_typo_lists_close_names() -> None:
    with pytest.raises(SpecError) as info:
        resolve("resnet5O")
    message = str(info.value)
    assert "'resnet5O'" in message and "resnet50" in message
    assert "\n" not in message


def test_unknown_name_without_close_match_names_the_value_and_hints() -> None:
    with pytest.raises(SpecError, match=r"'qqqqqqqqq'.*families"):
        resolve("qqqqqqqqq")


def test_regnet_constructor_computing_on_tensors_is_built_on_cpu() -> None:
    model = resolve("regnet_y_1_6gf").build()
    assert isinstance(model, nn.Module)
    assert n_params(model) == 11_202_430


@pytest.mark.parametrize("bad", ["", "   ", None, 3])
def test_empty_or_non_string_name(bad: object) -> None:
    with pytest.raises(SpecError):
        resolve(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("shape", ["3,x,224", "3,,224", "3,a,224", "3,0,224", "-3,224,224", (3, 224.0, 224), (), (True, 2)])
def test_bad_input_shape(shape: object) -> None:
    with pytest.raises(SpecError, match="input_shape"):
        resolve("resnet50", input_shape=shape)  # type: ignore[arg-type]


def test_bad_kind() -> None:
    with pytest.raises(SpecError, match="kind"):
        ArchSpec("zoo", "resnet50")


# --------------------------------------------------------------------------------------------
# spec files


def test_yaml_spec_file(data_dir: Path) -> None:
    spec = ArchSpec.from_file(data_dir / "net.yaml")
    assert spec.kind == "family" and spec.name == "vgg"
    assert spec.params["blocks"] == 2 and spec.params["filters"] == 8 and spec.params["classes"] == 10
    assert spec.sample_shape() == (3, 32, 32)


def test_json_spec_file(data_dir: Path) -> None:
    spec = ArchSpec.from_file(data_dir / "net.json")
    assert spec.name == "resnet" and spec.params["blocks"] == (1, 1) and spec.params["block"] == "basic"


def test_spec_path_string_resolves(data_dir: Path) -> None:
    assert resolve(str(data_dir / "net.yaml")) == ArchSpec.from_file(data_dir / "net.yaml")


def test_spec_path_string_with_params_is_refused(data_dir: Path) -> None:
    with pytest.raises(SpecError, match="spec file"):
        resolve(str(data_dir / "net.yaml"), params={"blocks": 3})


@pytest.mark.parametrize(("file", "pattern"), [
    ("malformed.yaml", "malformed"),
    ("malformed.json", "malformed"),
    ("unknown_key.yaml", r"unknown keys \['parameters'\]"),
    ("bad_version.json", "schema_version 99"),
    ("bad_value.yaml", r"filters.*-8"),
    ("missing.yaml", "not found"),
])
def test_bad_spec_files(data_dir: Path, file: str, pattern: str) -> None:
    with pytest.raises(SpecError, match=pattern) as info:
        ArchSpec.from_file(data_dir / file)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("text", "pattern"), [
    ("[1, 2]", "mapping"),
    ('{"params": {}}', "'model'"),
    ('{"model": "vgg", "params": [1]}', "'params' must be a mapping"),
    ('{"model": 3}', "'model'"),
])
def test_bad_spec_contents(tmp_path: Path, text: str, pattern: str) -> None:
    path = tmp_path / "spec.json"
    path.write_text(text)
    with pytest.raises(SpecError, match=pattern):
        ArchSpec.from_file(path)


def test_spec_file_wrong_suffix(tmp_path: Path) -> None:
    path = tmp_path / "spec.txt"
    path.write_text("model: vgg\n")
    with pytest.raises(SpecError, match=r"\.json, \.yaml or \.yml"):
        ArchSpec.from_file(path)


@pytest.mark.parametrize("spec", [
    resolve("vgg", params={"blocks": 3, "filters": 16, "input_size": 64}),
    resolve("resnet", params={"blocks": "2,2", "block": "basic"}),
    resolve("inception", params={"stages": 2}),
    resolve("fc", params={"hidden_layers": 0}),
    resolve("resnet50", input_shape=(3, 160, 160)),
    resolve("torchvision.models:resnet18", input_shape=(3, 64, 64)),
])
def test_round_trip_to_dict_from_dict_and_files(spec: ArchSpec, tmp_path: Path) -> None:
    data = spec.to_dict()
    assert data["schema_version"] == SPEC_SCHEMA_VERSION
    assert ArchSpec.from_dict(data) == spec
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(data))
    assert ArchSpec.from_file(path) == spec
    yaml = pytest.importorskip("yaml")
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    assert ArchSpec.from_file(path) == spec


# --------------------------------------------------------------------------------------------
# factories


def test_file_factory_with_input_shape(data_dir: Path) -> None:
    spec = resolve(f"{data_dir / 'user_model.py'}:make", input_shape=(3, 16, 16))
    assert spec.kind == "factory" and spec.sample_shape() == (3, 16, 16)
    model = spec.build()
    assert type(model).__name__ == "TinyNet"
    assert all(p.device.type == "meta" for p in model.parameters())
    # 8 * 3 * 3 * 3 conv + 2 * 8 bn + 8 * 10 + 10 linear
    assert n_params(model) == 8 * 3 * 3 * 3 + 2 * 8 + 8 * 10 + 10


def test_file_factory_keyword_arguments(data_dir: Path) -> None:
    spec = resolve(f"{data_dir / 'user_model.py'}:make", params={"width": 4, "classes": 3},
                   input_shape=(3, 16, 16))
    assert n_params(spec.build()) == 4 * 3 * 3 * 3 + 2 * 4 + 4 * 3 + 3


def test_package_module_factory() -> None:
    spec = resolve("torchvision.models:resnet18", input_shape=(3, 64, 64))
    assert spec.kind == "factory"
    assert n_params(spec.build()) == 11_689_512


def test_factory_without_input_shape_is_a_spec_error(data_dir: Path) -> None:
    with pytest.raises(SpecError, match="input_shape is required"):
        resolve(f"{data_dir / 'user_model.py'}:make")


def test_factory_that_raises_is_a_build_error(data_dir: Path) -> None:
    spec = resolve(f"{data_dir / 'user_model.py'}:raises", input_shape=(3, 16, 16))
    with pytest.raises(ModelBuildError, match="the user's factory is broken") as info:
        spec.build()
    assert not isinstance(info.value, TraincostUsageError)  # exit code 1, not 2


def test_factory_returning_non_module_is_a_build_error(data_dir: Path) -> None:
    spec = resolve(f"{data_dir / 'user_model.py'}:not_a_module", input_shape=(3, 16, 16))
    with pytest.raises(ModelBuildError, match=r"int, not a torch\.nn\.Module"):
        spec.build()


def test_missing_factory_file(tmp_path: Path) -> None:
    spec = resolve(f"{tmp_path / 'nope.py'}:make", input_shape=(3, 16, 16))
    with pytest.raises(SpecError, match="model file not found"):
        spec.build()


def test_missing_factory_function_suggests_names(data_dir: Path) -> None:
    spec = resolve(f"{data_dir / 'user_model.py'}:mak", input_shape=(3, 16, 16))
    with pytest.raises(SpecError, match=r"no callable 'mak'.*make"):
        spec.build()
    spec = resolve(f"{data_dir / 'user_model.py'}:NOT_CALLABLE", input_shape=(3, 16, 16))
    with pytest.raises(SpecError, match="no callable"):
        spec.build()


def test_missing_package_module() -> None:
    spec = resolve("no_such_package_xyz.models:make", input_shape=(3, 16, 16))
    with pytest.raises(SpecError, match="module not found: no_such_package_xyz.models"):
        spec.build()


def test_factory_file_that_fails_to_import(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text("raise ImportError('missing dependency of the user model')\n")
    spec = resolve(f"{path}:make", input_shape=(3, 16, 16))
    with pytest.raises(ModelBuildError, match="missing dependency"):
        spec.build()


def test_factory_name_must_be_an_identifier() -> None:
    with pytest.raises(SpecError, match="factory must look like"):
        ArchSpec("factory", "model.py:1bad", {}, (3, 8, 8))


def test_factory_built_on_cpu_when_constructor_computes(tmp_path: Path) -> None:
    path = tmp_path / "computes.py"
    path.write_text(
        "import torch\nfrom torch import nn\n"
        "def make():\n"
        "    m = nn.Linear(4, 2)\n"
        "    if float(torch.ones(1).sum().item()) != 1.0:\n"  # .item() fails on meta
        "        raise AssertionError\n"
        "    return m\n")
    model = resolve(f"{path}:make", input_shape=(4,)).build()
    assert n_params(model) == 4 * 2 + 2
    assert torch.device("cpu") == next(model.parameters()).device


def test_family_input_shape_sets_the_size_parameter() -> None:
    assert resolve("vgg", input_shape=(3, 64, 64)).params["input_size"] == 64
    assert resolve("resnet", params={"input-size": "96"}, input_shape="3,96,96").params["input_size"] == 96
    assert resolve("fc", input_shape=(20,)).params["input_features"] == 20
    assert resolve("inception", input_shape=(3, 128, 128)).sample_shape() == (3, 128, 128)


@pytest.mark.parametrize(("family", "params", "shape", "pattern"), [
    ("vgg", {"input_size": 32}, (3, 64, 64), "disagrees with input_size=32"),
    ("vgg", {}, (1, 64, 64), r"\(3, S, S\)"),
    ("resnet", {}, (3, 64, 32), r"\(3, S, S\)"),
    ("fc", {}, (3, 8, 8), r"\(F,\)"),
    ("fc", {"input_features": 10}, (20,), "disagrees with input_features=10"),
])
def test_family_input_shape_conflicts(family: str, params: dict, shape: tuple, pattern: str) -> None:
    with pytest.raises(SpecError, match=pattern):
        resolve(family, params=params, input_shape=shape)


def test_torchvision_build_is_quiet() -> None:
    """inception_v3 warns about its weight initialisation, which means nothing on meta: not shown."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resolve("inception_v3").build()
    assert not [w for w in caught if issubclass(w.category, FutureWarning)]
