"""Tests for traincost.flopmodel.families: architectures, parameter counts, validation, parsing."""

from __future__ import annotations

import dataclasses
import time

import pytest
import torch
from torch import nn

from traincost.errors import SpecError
from traincost.flopmodel.families import (
    FAMILIES,
    FCParams,
    InceptionParams,
    Params,
    ResNetParams,
    VGGParams,
    build,
    input_shape,
    min_input_size,
    parse_params,
)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def meta_build(params: Params) -> nn.Module:
    with torch.device("meta"):
        return build(params)


def meta_forward(params: Params, batch: int = 2) -> torch.Size:
    model = meta_build(params)
    with torch.device("meta"):
        return model(torch.empty(batch, *input_shape(params))).shape


# --------------------------------------------------------------------------------------------
# parameter counts


@pytest.mark.parametrize(
    ("name", "blocks", "block"),
    [
        ("resnet18", (2, 2, 2, 2), "basic"),
        ("resnet34", (3, 4, 6, 3), "basic"),
        ("resnet50", (3, 4, 6, 3), "bottleneck"),
        ("resnet101", (3, 4, 23, 3), "bottleneck"),
    ],
)
def test_resnet_matches_torchvision(name: str, blocks: tuple[int, ...], block: str) -> None:
    models = pytest.importorskip("torchvision.models")
    with torch.device("meta"):
        reference = getattr(models, name)()
    ours = meta_build(ResNetParams(blocks=blocks, block=block))
    assert n_params(ours) == n_params(reference)
    ours_shapes = [tuple(p.shape) for p in ours.parameters()]
    assert ours_shapes == [tuple(p.shape) for p in reference.parameters()]


def test_resnet50_count_is_exact() -> None:
    assert n_params(meta_build(ResNetParams())) == 25_557_032


def test_fc_count_by_hand() -> None:
    params = FCParams(input_features=100, hidden_layers=2, hidden_width=50, classes=10)
    # Linear(100->50) + BN(50) + Linear(50->50) + BN(50) + Linear(50->10)
    expected = (100 * 50 + 50) + 2 * 50 + (50 * 50 + 50) + 2 * 50 + (50 * 10 + 10)
    assert n_params(meta_build(params)) == expected


def test_fc_without_batchnorm_or_dropout() -> None:
    params = FCParams(input_features=8, hidden_layers=1, hidden_width=4, batchnorm=False,
                      dropout=0.0, classes=2)
    model = meta_build(params)
    assert n_params(model) == (8 * 4 + 4) + (4 * 2 + 2)
    assert not any(isinstance(m, (nn.Dropout, nn.BatchNorm1d)) for m in model.modules())


def test_vgg_count_by_hand() -> None:
    params = VGGParams(blocks=2, convs_per_block=1, filters=4, dense_layers=1, dense_width=10,
                       input_size=8, classes=3)
    # conv3x3 3->4 (no bias) + BN(4); conv3x3 4->8 + BN(8); spatial 8 -> 4 -> 2
    convs = 3 * 4 * 3 * 3 + 2 * 4 + 4 * 8 * 3 * 3 + 2 * 8
    dense = (8 * 2 * 2 * 10 + 10) + (10 * 3 + 3)
    assert n_params(meta_build(params)) == convs + dense


def test_vgg_without_batchnorm_has_conv_bias() -> None:
    params = VGGParams(blocks=1, convs_per_block=2, filters=4, batchnorm=False, dense_layers=0,
                       input_size=4, classes=3)
    expected = (3 * 4 * 9 + 4) + (4 * 4 * 9 + 4) + (4 * 2 * 2 * 3 + 3)
    assert n_params(meta_build(params)) == expected


def test_inception_count_by_hand() -> None:
    params = InceptionParams(stages=1, modules_per_stage=1, f1=2, f2_in=3, f2_out=4, f3_in=1,
                             f3_out=2, f4_out=5, classes=7)
    stem = (3 * 64 * 7 * 7 + 2 * 64) + (64 * 64 + 2 * 64) + (64 * 192 * 3 * 3 + 2 * 192)
    branch1 = 192 * 2 + 2 * 2
    branch2 = (192 * 3 + 2 * 3) + (3 * 4 * 3 * 3 + 2 * 4)
    branch3 = (192 * 1 + 2 * 1) + (1 * 2 * 5 * 5 + 2 * 2)
    branch4 = 192 * 5 + 2 * 5
    head = (2 + 4 + 2 + 5) * 7 + 7
    expected = stem + branch1 + branch2 + branch3 + branch4 + head
    assert n_params(meta_build(params)) == expected


def test_dense_head_adds_linear_relu() -> None:
    base = ResNetParams(blocks=(1,), block="basic", width=8, classes=5)
    wide = dataclasses.replace(base, dense_layers=2, dense_width=16)
    extra = (8 * 16 + 16) + (16 * 16 + 16) + (16 * 5 + 5) - (8 * 5 + 5)
    assert n_params(meta_build(wide)) - n_params(meta_build(base)) == extra


# --------------------------------------------------------------------------------------------
# structure and forward shapes on meta


def test_module_paths_are_readable() -> None:
    names = dict(meta_build(ResNetParams()).named_modules())
    assert isinstance(names["stages.2.1.conv2"], nn.Conv2d)
    assert isinstance(names["head.fc"], nn.Linear)
    assert isinstance(names["stem.conv"], nn.Conv2d)
    vgg = dict(meta_build(VGGParams()).named_modules())
    assert isinstance(vgg["stages.4.conv1.bn"], nn.BatchNorm2d)
    assert isinstance(vgg["head.dense1.dropout"], nn.Dropout)
    inception = dict(meta_build(InceptionParams()).named_modules())
    assert inception["stages.0.module1.branch3.conv.conv"].kernel_size == (5, 5)


def test_layer_order_fc() -> None:
    hidden = meta_build(FCParams()).hidden0
    kinds = [type(m) for m in hidden]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Dropout]


def test_layer_order_vgg() -> None:
    conv = meta_build(VGGParams()).stages[0].conv0
    assert [type(m) for m in conv] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    assert conv.conv.bias is None


def test_inception_has_no_pool_after_last_stage() -> None:
    stages = meta_build(InceptionParams(stages=3)).stages
    assert [hasattr(stage, "pool") for stage in stages] == [True, True, False]


@pytest.mark.parametrize("size", [32, 97, 224])
@pytest.mark.parametrize(
    "params",
    [
        VGGParams(blocks=3, filters=8, dense_width=32, classes=7),
        ResNetParams(blocks=(1, 1, 1), block="basic", width=8, dense_layers=1, classes=7),
        ResNetParams(blocks=(2, 1), width=8, classes=7),
        InceptionParams(stages=2, modules_per_stage=1, dense_layers=1, dense_width=16, classes=7),
    ],
    ids=["vgg", "resnet-basic", "resnet-bottleneck", "inception"],
)
def test_forward_shape_conv_families(params: Params, size: int) -> None:
    params = dataclasses.replace(params, input_size=size)
    assert input_shape(params) == (3, size, size)
    assert meta_forward(params, batch=3) == (3, 7)


@pytest.mark.parametrize("features", [1, 97, 784])
def test_forward_shape_fc(features: int) -> None:
    params = FCParams(input_features=features, hidden_layers=2, hidden_width=33, classes=5)
    assert input_shape(params) == (features,)
    assert meta_forward(params, batch=4) == (4, 5)


def test_defaults_forward_for_every_family() -> None:
    for name, family in FAMILIES.items():
        params = family.params_cls()
        assert family.name == name and family.description
        expected_classes = params.classes
        assert meta_forward(params) == (2, expected_classes)


def test_huge_vgg_builds_on_meta_without_allocating() -> None:
    params = VGGParams(blocks=5, filters=1024, input_size=1024)
    model = meta_build(params)
    assert all(p.is_meta for p in model.parameters())
    # first dense layer: 1024 * 2**4 channels x 32 x 32 pixels -> 4096
    assert model.head.dense0.linear.in_features == 1024 * 2**4 * 32 * 32
    assert meta_forward(params) == (2, 1000)


def test_resnet50_builds_fast_on_meta() -> None:
    meta_build(ResNetParams())  # warm up
    start = time.perf_counter()
    meta_build(ResNetParams())
    assert time.perf_counter() - start < 0.5  # a loose bound; typically ~15 ms


# --------------------------------------------------------------------------------------------
# feasibility: minimum input size agrees with PyTorch


@pytest.mark.parametrize(
    ("params", "minimum"),
    [
        (VGGParams(blocks=6, filters=4, dense_layers=0, input_size=64), 2**6),
        (VGGParams(blocks=1, filters=4, dense_layers=0, input_size=2), 2),
        (InceptionParams(stages=3, modules_per_stage=1, input_size=31), 31),
        (InceptionParams(stages=1, modules_per_stage=1, input_size=7), 7),
        (ResNetParams(blocks=(1, 1, 1, 1), block="basic", width=4, input_size=1), 1),
    ],
)
def test_min_input_size_matches_torch(params: Params, minimum: int) -> None:
    assert min_input_size(params) == minimum
    assert meta_forward(params) == (2, params.classes)
    features = nn.Sequential(*list(meta_build(params).children())[:-1])  # drop the head
    if minimum > 1:
        with torch.device("meta"), pytest.raises(RuntimeError):
            features(torch.empty(2, 3, minimum - 1, minimum - 1))


def test_input_too_small_is_a_spec_error_with_minimum() -> None:
    with pytest.raises(SpecError, match=r"vgg: input_size must be at least 64 .*got 32"):
        VGGParams(blocks=6, input_size=32)
    with pytest.raises(SpecError, match=r"inception: input_size must be at least 31 .*got 30"):
        InceptionParams(stages=3, input_size=30)


# --------------------------------------------------------------------------------------------
# validation


BAD_VALUES = [
    (FCParams, "input_features", 0),
    (FCParams, "input_features", 784.0),
    (FCParams, "hidden_layers", -1),
    (FCParams, "hidden_width", True),
    (FCParams, "dropout", 1.0),
    (FCParams, "dropout", -0.1),
    (FCParams, "dropout", True),
    (FCParams, "dropout", "0.5"),
    (FCParams, "batchnorm", 1),
    (FCParams, "classes", 0),
    (VGGParams, "blocks", 0),
    (VGGParams, "convs_per_block", 2.5),
    (VGGParams, "filters", -3),
    (VGGParams, "batchnorm", "yes"),
    (VGGParams, "dense_layers", -1),
    (VGGParams, "dense_width", 0),
    (VGGParams, "input_size", 0),
    (VGGParams, "classes", None),
    (ResNetParams, "blocks", ()),
    (ResNetParams, "blocks", (3, 0, 6)),
    (ResNetParams, "blocks", (3, 4.0)),
    (ResNetParams, "blocks", 3),
    (ResNetParams, "block", "wide"),
    (ResNetParams, "width", 0),
    (ResNetParams, "dense_layers", -2),
    (ResNetParams, "dense_width", 0),
    (ResNetParams, "input_size", -224),
    (ResNetParams, "classes", False),
    (InceptionParams, "stages", 0),
    (InceptionParams, "modules_per_stage", 0),
    (InceptionParams, "f1", 0),
    (InceptionParams, "f2_in", -1),
    (InceptionParams, "f2_out", 1.5),
    (InceptionParams, "f3_in", 0),
    (InceptionParams, "f3_out", 0),
    (InceptionParams, "f4_out", "32"),
    (InceptionParams, "dense_layers", -1),
    (InceptionParams, "dense_width", 0),
    (InceptionParams, "input_size", 0),
    (InceptionParams, "classes", 0),
]


@pytest.mark.parametrize(
    ("cls", "name", "value"), BAD_VALUES, ids=[f"{c.family}-{n}-{v!r}" for c, n, v in BAD_VALUES]
)
def test_bad_values_raise_spec_error(cls: type, name: str, value: object) -> None:
    with pytest.raises(SpecError) as info:
        cls(**{name: value})
    message = str(info.value)
    assert message.startswith(f"{cls.family}: {name} must be")
    assert message.endswith(f"got {value!r}")


def test_example_message() -> None:
    with pytest.raises(SpecError, match="^vgg: filters must be a positive integer, got -3$"):
        VGGParams(filters=-3)


def test_spec_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        FCParams(classes=0)


def test_params_are_frozen_and_normalised() -> None:
    params = ResNetParams(blocks=[2, 2])  # type: ignore[arg-type]
    assert params.blocks == (2, 2)
    assert hash(params) == hash(ResNetParams(blocks=(2, 2)))
    assert FCParams(dropout=0).dropout == 0.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.width = 3  # type: ignore[misc]


def test_any_value_allowed_not_a_grid() -> None:
    params = VGGParams(blocks=3, convs_per_block=1, filters=7, dense_width=13, input_size=50,
                       classes=11)
    assert meta_forward(params) == (2, 11)


# --------------------------------------------------------------------------------------------
# parse_params


@pytest.mark.parametrize("text", ["3,4,6,3", "[3,4,6,3]", "(3, 4, 6, 3)", " 3, 4,6 ,3 "])
def test_parse_blocks_strings(text: str) -> None:
    assert parse_params("resnet", {"blocks": text}).blocks == (3, 4, 6, 3)


def test_parse_blocks_lists_and_single() -> None:
    assert parse_params("resnet", {"blocks": [2, "2"]}).blocks == (2, 2)
    assert parse_params("resnet", {"blocks": "5"}).blocks == (5,)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("true", True), ("False", False), ("yes", True), ("NO", False), ("1", True), ("0", False)],
)
def test_parse_bools(text: str, expected: bool) -> None:
    assert parse_params("vgg", {"batchnorm": text}).batchnorm is expected


def test_parse_numbers_and_words() -> None:
    params = parse_params("fc", {"hidden_width": "64", "dropout": "0.25", "classes": 3})
    assert (params.hidden_width, params.dropout, params.classes) == (64, 0.25, 3)
    assert parse_params("fc", {"dropout": "0"}).dropout == 0.0
    assert parse_params("resnet", {"block": " Basic "}).block == "basic"


def test_parse_accepts_dashes_and_skips_none() -> None:
    params = parse_params("inception", {"modules-per-stage": "4", "f1": None})
    assert params == InceptionParams(modules_per_stage=4)


def test_parse_missing_takes_defaults() -> None:
    for name, family in FAMILIES.items():
        assert parse_params(name, {}) == family.params_cls()


@pytest.mark.parametrize(
    ("family", "name", "text"),
    [
        ("vgg", "filters", "6x4"),
        ("vgg", "filters", "64.0"),
        ("vgg", "filters", "-3"),
        ("fc", "dropout", "half"),
        ("fc", "batchnorm", "maybe"),
        ("resnet", "blocks", "3,x,6"),
        ("resnet", "blocks", "[]"),
        ("resnet", "block", "wide"),
    ],
)
def test_parse_bad_strings_name_parameter_and_value(family: str, name: str, text: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_params(family, {name: text})
    message = str(info.value)
    assert message.startswith(f"{family}: {name} must be")
    assert text.strip() in message


def test_parse_unknown_parameter_lists_valid_names() -> None:
    with pytest.raises(SpecError) as info:
        parse_params("resnet", {"depth": 50})
    message = str(info.value)
    assert "'depth'" in message
    for field in dataclasses.fields(ResNetParams):
        assert field.name in message


def test_parse_unknown_family_lists_families() -> None:
    with pytest.raises(SpecError) as info:
        parse_params("lenet", {})
    message = str(info.value)
    assert "'lenet'" in message
    assert all(name in message for name in ("fc", "vgg", "resnet", "inception"))


def test_build_rejects_other_objects() -> None:
    with pytest.raises(TypeError):
        build(object())  # type: ignore[arg-type]
