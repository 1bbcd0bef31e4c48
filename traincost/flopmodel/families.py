"""The four generated model families (fc, vgg, resnet, inception) as PyTorch modules.

Each family has a frozen parameter dataclass that validates itself on construction (every bad
value raises :class:`~traincost.errors.SpecError` naming the family, the parameter and the
value), a builder returning an ordinary ``torch.nn.Module`` and the per-sample input shape.
Builders only create layers (no tensor computation), so they run under
``with torch.device("meta"):`` for any size. Module paths are readable: ``stem.conv``,
``stages.2.1.conv2``, ``head.dense0.linear``, ``head.fc``. Models output logits; the loss
(cross-entropy) belongs to the walker.

Changes from the seed project's Keras generators (nilax97/DL-Sys-Perf-Project, ``src/models``):

- all families: no softmax inside the model (logits out); every parameter is free (any value
  that builds, not a grid); an input too small for the downsampling is an error that says the
  minimum instead of a crash or a 0-sized map.
- fc: no Dropout(0.2) on the input; BatchNorm before ReLU and Dropout instead of after Dropout;
  the hidden width is a parameter (the seed fixed it at 1000); Dropout is omitted at rate 0.
- vgg: conv -> BN -> ReLU instead of conv -> ReLU -> BN, and conv bias dropped when BN follows;
  dense layers are followed by Dropout(0.5) as in VGG.
- resnet: exactly torchvision's ResNet (v1.5: stride on the 3x3 conv; BN before ReLU, where the
  seed applied ReLU before BN); stage widths scale from a ``width`` parameter (the seed fixed
  64/128/256/512); the basic block is selectable (the seed defined it but never used it); each
  stage has its own depth (the seed used the same depth for all four); any number of stages.
- inception: 'same' padding in the stem conv7x7/2 (the seed used 'valid'); stem 1x1 conv has 64
  channels as GoogLeNet (the seed had 128); pools use ceil mode as GoogLeNet and there is no
  pool after the last stage; global average pooling before the head instead of flattening the
  full feature map (which made a huge dense layer); number of stages is a parameter (seed: 3).
"""

from __future__ import annotations

import re
import types
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Generic, TypeVar, Union, get_type_hints

import torch
from torch import nn

from traincost.errors import SpecError

__all__ = [
    "FAMILIES",
    "FCParams",
    "Family",
    "InceptionParams",
    "Params",
    "ResNetParams",
    "VGGParams",
    "build",
    "input_shape",
    "min_input_size",
    "parse_params",
]

BLOCK_KINDS = ("basic", "bottleneck")
_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})
_INT_RE = re.compile(r"[+-]?\d+")


# --------------------------------------------------------------------------------------------
# validation helpers


def _spec_error(family: str, name: str, expected: str, value: object) -> SpecError:
    return SpecError(f"{family}: {name} must be {expected}, got {value!r}")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(family: str, name: str, value: object, minimum: int = 1) -> None:
    """Require an int (not a bool, not a float) of at least ``minimum`` (0 or 1)."""
    if not _is_int(value) or value < minimum:  # type: ignore[operator]
        expected = "a positive integer" if minimum == 1 else "a non-negative integer"
        raise _spec_error(family, name, expected, value)


def _check_bool(family: str, name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise _spec_error(family, name, "true or false", value)


def _check_dropout(family: str, value: object) -> float:
    """Return ``value`` as a float in [0, 1); ints are accepted, bools are not."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise _spec_error(family, "dropout", "a number with 0 <= dropout < 1", value)
    return float(value)


def _check_blocks(family: str, value: object) -> tuple[int, ...]:
    """Return ``value`` as a non-empty tuple of positive ints."""
    ok = (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and all(_is_int(n) and n >= 1 for n in value)
    )
    if not ok:
        raise _spec_error(family, "blocks", "a non-empty list of positive integers", value)
    return tuple(value)  # type: ignore[arg-type]


def _check_input_size(params: _ConvParams) -> None:
    minimum = min_input_size(params)
    if params.input_size < minimum:
        raise SpecError(
            f"{params.family}: input_size must be at least {minimum} for this network "
            f"({params.downsampling_description()}), got {params.input_size!r}"
        )


# --------------------------------------------------------------------------------------------
# spatial size arithmetic (exactly PyTorch's output-size formulas)


@dataclass(frozen=True)
class _Window:
    """A sliding window (conv or pool) that changes the spatial size; sizes in pixels."""

    kernel: int
    stride: int
    padding: int = 0
    ceil_mode: bool = False

    def out(self, size: int) -> int:
        """Output size for an input of ``size`` (PyTorch's formula; < 1 means it fails)."""
        extra = self.stride - 1 if self.ceil_mode else 0
        span = size + 2 * self.padding - self.kernel + extra
        out = span // self.stride + 1
        if self.ceil_mode and (out - 1) * self.stride >= size + self.padding:
            out -= 1  # the last window may not start in the right padding
        return out

    def min_in(self, size_out: int) -> int:
        """Smallest input size whose output is at least ``size_out``."""
        extra = self.stride - 1 if self.ceil_mode else 0
        size = max(1, (size_out - 1) * self.stride + self.kernel - 2 * self.padding - extra)
        while self.out(size) < size_out:
            size += 1
        return size


def _final_size(windows: Sequence[_Window], size: int) -> int:
    for window in windows:
        size = window.out(size)
    return size


# --------------------------------------------------------------------------------------------
# parameter classes


@dataclass(frozen=True)
class FCParams:
    """A fully connected network: hidden layers of equal width, then a linear classifier."""

    family: ClassVar[str] = "fc"

    input_features: int = 784
    """Length of one input vector (features per sample)."""
    hidden_layers: int = 3
    """Number of hidden Linear layers (0 gives a linear classifier)."""
    hidden_width: int = 1000
    """Output features of each hidden layer."""
    dropout: float = 0.5
    """Dropout rate after each hidden layer, in [0, 1); 0 omits the Dropout layer."""
    batchnorm: bool = True
    """Whether each hidden Linear is followed by BatchNorm1d."""
    classes: int = 10
    """Number of output logits."""

    def __post_init__(self) -> None:
        _check_int(self.family, "input_features", self.input_features)
        _check_int(self.family, "hidden_layers", self.hidden_layers, minimum=0)
        _check_int(self.family, "hidden_width", self.hidden_width)
        object.__setattr__(self, "dropout", _check_dropout(self.family, self.dropout))
        _check_bool(self.family, "batchnorm", self.batchnorm)
        _check_int(self.family, "classes", self.classes)


@dataclass(frozen=True)
class VGGParams:
    """A VGG-style network: blocks of 3x3 convs, each block ending in a 2x2 max pool."""

    family: ClassVar[str] = "vgg"

    blocks: int = 5
    """Number of conv blocks; each halves the spatial size."""
    convs_per_block: int = 2
    """Number of 3x3 convs in each block."""
    filters: int = 64
    """Channels of the first block's convs; doubles in each following block (no cap)."""
    batchnorm: bool = True
    """Whether each conv is followed by BatchNorm2d (the conv then has no bias)."""
    dense_layers: int = 2
    """Number of hidden dense layers (Linear -> ReLU -> Dropout 0.5) before the classifier."""
    dense_width: int = 4096
    """Output features of each hidden dense layer."""
    input_size: int = 224
    """Height and width of the square RGB input image, in pixels."""
    classes: int = 1000
    """Number of output logits."""

    def __post_init__(self) -> None:
        for name in ("blocks", "convs_per_block", "filters", "dense_width", "input_size"):
            _check_int(self.family, name, getattr(self, name))
        _check_bool(self.family, "batchnorm", self.batchnorm)
        _check_int(self.family, "dense_layers", self.dense_layers, minimum=0)
        _check_int(self.family, "classes", self.classes)
        _check_input_size(self)

    def windows(self) -> tuple[_Window, ...]:
        return (_Window(2, 2),) * self.blocks

    def downsampling_description(self) -> str:
        return f"{self.blocks} blocks, each halving the size with a 2x2 max pool"


@dataclass(frozen=True)
class ResNetParams:
    """A ResNet exactly as torchvision's, with free stage depths, base width and dense head."""

    family: ClassVar[str] = "resnet"

    blocks: tuple[int, ...] = (3, 4, 6, 3)
    """Residual blocks in each stage; stage i has width ``width * 2**i`` (stride 2 for i >= 1)."""
    block: str = "bottleneck"
    """Residual block kind: "basic" (two 3x3 convs) or "bottleneck" (1x1, 3x3, 1x1, x4 out)."""
    width: int = 64
    """Channels of the stem and base width of the first stage (64 in torchvision)."""
    dense_layers: int = 0
    """Number of hidden dense layers (Linear -> ReLU) between the pooling and the classifier."""
    dense_width: int = 1024
    """Output features of each hidden dense layer."""
    input_size: int = 224
    """Height and width of the square RGB input image, in pixels."""
    classes: int = 1000
    """Number of output logits."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "blocks", _check_blocks(self.family, self.blocks))
        if self.block not in BLOCK_KINDS:
            raise _spec_error(self.family, "block", "'basic' or 'bottleneck'", self.block)
        _check_int(self.family, "width", self.width)
        _check_int(self.family, "dense_layers", self.dense_layers, minimum=0)
        for name in ("dense_width", "input_size", "classes"):
            _check_int(self.family, name, getattr(self, name))
        _check_input_size(self)

    def windows(self) -> tuple[_Window, ...]:
        stem = (_Window(7, 2, 3), _Window(3, 2, 1))
        return stem + (_Window(3, 2, 1),) * (len(self.blocks) - 1)

    def downsampling_description(self) -> str:
        return f"stem and {len(self.blocks) - 1} strided stages"


@dataclass(frozen=True)
class InceptionParams:
    """A GoogLeNet-like network: a stem, then stages of identical Inception modules."""

    family: ClassVar[str] = "inception"

    stages: int = 3
    """Number of stages of Inception modules; a 3x3/2 max pool separates consecutive stages."""
    modules_per_stage: int = 2
    """Number of Inception modules in each stage."""
    f1: int = 64
    """Output channels of the 1x1 branch."""
    f2_in: int = 96
    """Channels of the 1x1 reduction before the 3x3 branch."""
    f2_out: int = 128
    """Output channels of the 3x3 branch."""
    f3_in: int = 16
    """Channels of the 1x1 reduction before the 5x5 branch."""
    f3_out: int = 32
    """Output channels of the 5x5 branch."""
    f4_out: int = 32
    """Output channels of the 1x1 conv after the 3x3 max-pool branch."""
    dense_layers: int = 0
    """Number of hidden dense layers (Linear -> ReLU) between the pooling and the classifier."""
    dense_width: int = 1024
    """Output features of each hidden dense layer."""
    input_size: int = 224
    """Height and width of the square RGB input image, in pixels."""
    classes: int = 1000
    """Number of output logits."""

    def __post_init__(self) -> None:
        names = ("stages", "modules_per_stage", "f1", "f2_in", "f2_out", "f3_in", "f3_out")
        for name in names + ("f4_out",):
            _check_int(self.family, name, getattr(self, name))
        _check_int(self.family, "dense_layers", self.dense_layers, minimum=0)
        for name in ("dense_width", "input_size", "classes"):
            _check_int(self.family, name, getattr(self, name))
        _check_input_size(self)

    @property
    def module_channels(self) -> int:
        """Output channels of one Inception module (the four branches concatenated)."""
        return self.f1 + self.f2_out + self.f3_out + self.f4_out

    def windows(self) -> tuple[_Window, ...]:
        pool = _Window(3, 2, 0, ceil_mode=True)
        return (_Window(7, 2, 3),) + (pool,) * (self.stages + 1)

    def downsampling_description(self) -> str:
        return f"stem and {self.stages - 1} pools between {self.stages} stages"


Params = Union[FCParams, VGGParams, ResNetParams, InceptionParams]
_ConvParams = Union[VGGParams, ResNetParams, InceptionParams]
P = TypeVar("P", FCParams, VGGParams, ResNetParams, InceptionParams)


def min_input_size(params: _ConvParams) -> int:
    """Smallest input height/width (pixels) whose last feature map is at least 1x1."""
    size = 1
    for window in reversed(params.windows()):
        size = window.min_in(size)
    return size


# --------------------------------------------------------------------------------------------
# layers


def _conv_bn_relu(
    in_channels: int, out_channels: int, kernel: int, stride: int = 1, padding: int = 0
) -> nn.Sequential:
    """Conv (no bias) -> BatchNorm2d -> ReLU, with children ``conv``, ``bn``, ``relu``."""
    conv = nn.Conv2d(in_channels, out_channels, kernel, stride, padding, bias=False)
    return nn.Sequential(
        OrderedDict(conv=conv, bn=nn.BatchNorm2d(out_channels), relu=nn.ReLU(inplace=True))
    )


def _head(
    in_features: int,
    dense_layers: int,
    dense_width: int,
    classes: int,
    *,
    global_pool: bool,
    dropout: float = 0.0,
) -> nn.Sequential:
    """[global avg pool] -> Flatten -> ``dense_layers`` x (Linear -> ReLU [-> Dropout]) -> fc."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    if global_pool:
        layers["pool"] = nn.AdaptiveAvgPool2d(1)
    layers["flatten"] = nn.Flatten()
    for i in range(dense_layers):
        dense: OrderedDict[str, nn.Module] = OrderedDict(
            linear=nn.Linear(in_features, dense_width), relu=nn.ReLU(inplace=True)
        )
        if dropout > 0:
            dense["dropout"] = nn.Dropout(dropout)
        layers[f"dense{i}"] = nn.Sequential(dense)
        in_features = dense_width
    layers["fc"] = nn.Linear(in_features, classes)
    return nn.Sequential(layers)


class BasicBlock(nn.Module):
    """torchvision's BasicBlock: 3x3 -> BN -> ReLU -> 3x3 -> BN, + identity or projection."""

    expansion: ClassVar[int] = 1

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _projection(in_channels, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """torchvision's Bottleneck (v1.5, stride on the 3x3): 1x1 -> 3x3 -> 1x1 (x4), + shortcut."""

    expansion: ClassVar[int] = 4

    def __init__(self, in_channels: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _projection(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _projection(in_channels: int, out_channels: int, stride: int) -> nn.Sequential | None:
    """1x1 conv + BN shortcut when the block changes the shape, else None (identity)."""
    if stride == 1 and in_channels == out_channels:
        return None
    conv = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(out_channels))


class InceptionModule(nn.Module):
    """Four branches concatenated on channels: 1x1; 1x1 -> 3x3; 1x1 -> 5x5; pool -> 1x1."""

    def __init__(self, in_channels: int, p: InceptionParams) -> None:
        super().__init__()
        self.branch1 = _conv_bn_relu(in_channels, p.f1, 1)
        self.branch2 = nn.Sequential(
            OrderedDict(
                reduce=_conv_bn_relu(in_channels, p.f2_in, 1),
                conv=_conv_bn_relu(p.f2_in, p.f2_out, 3, padding=1),
            )
        )
        self.branch3 = nn.Sequential(
            OrderedDict(
                reduce=_conv_bn_relu(in_channels, p.f3_in, 1),
                conv=_conv_bn_relu(p.f3_in, p.f3_out, 5, padding=2),
            )
        )
        self.branch4 = nn.Sequential(
            OrderedDict(
                pool=nn.MaxPool2d(3, stride=1, padding=1),
                conv=_conv_bn_relu(in_channels, p.f4_out, 1),
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        branches = (self.branch1, self.branch2, self.branch3, self.branch4)
        return torch.cat([branch(x) for branch in branches], dim=1)


# --------------------------------------------------------------------------------------------
# builders


def _build_fc(p: FCParams) -> nn.Module:
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    in_features = p.input_features
    for i in range(p.hidden_layers):
        hidden: OrderedDict[str, nn.Module] = OrderedDict(
            linear=nn.Linear(in_features, p.hidden_width)
        )
        if p.batchnorm:
            hidden["bn"] = nn.BatchNorm1d(p.hidden_width)
        hidden["relu"] = nn.ReLU(inplace=True)
        if p.dropout > 0:
            hidden["dropout"] = nn.Dropout(p.dropout)
        layers[f"hidden{i}"] = nn.Sequential(hidden)
        in_features = p.hidden_width
    layers["fc"] = nn.Linear(in_features, p.classes)
    return nn.Sequential(layers)


def _vgg_conv(in_channels: int, out_channels: int, batchnorm: bool) -> nn.Sequential:
    if batchnorm:
        return _conv_bn_relu(in_channels, out_channels, 3, padding=1)
    conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
    return nn.Sequential(OrderedDict(conv=conv, relu=nn.ReLU(inplace=True)))


def _vgg_block(in_channels: int, out_channels: int, p: VGGParams) -> nn.Sequential:
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for i in range(p.convs_per_block):
        layers[f"conv{i}"] = _vgg_conv(in_channels, out_channels, p.batchnorm)
        in_channels = out_channels
    layers["pool"] = nn.MaxPool2d(2, 2)
    return nn.Sequential(layers)


def _build_vgg(p: VGGParams) -> nn.Module:
    stages, channels = [], 3
    for i in range(p.blocks):
        stages.append(_vgg_block(channels, p.filters * 2**i, p))
        channels = p.filters * 2**i
    final = _final_size(p.windows(), p.input_size)
    head = _head(
        channels * final * final, p.dense_layers, p.dense_width, p.classes,
        global_pool=False, dropout=0.5,
    )
    return nn.Sequential(OrderedDict(stages=nn.Sequential(*stages), head=head))


def _build_resnet(p: ResNetParams) -> nn.Module:
    block_cls: type[BasicBlock] | type[Bottleneck] = (
        BasicBlock if p.block == "basic" else Bottleneck
    )
    stem = _conv_bn_relu(3, p.width, 7, stride=2, padding=3)
    stem.add_module("pool", nn.MaxPool2d(3, stride=2, padding=1))
    stages, channels = [], p.width
    for i, depth in enumerate(p.blocks):
        planes, stride = p.width * 2**i, 1 if i == 0 else 2
        stage = [block_cls(channels, planes, stride)]
        channels = planes * block_cls.expansion
        stage += [block_cls(channels, planes) for _ in range(depth - 1)]
        stages.append(nn.Sequential(*stage))
    head = _head(channels, p.dense_layers, p.dense_width, p.classes, global_pool=True)
    return nn.Sequential(OrderedDict(stem=stem, stages=nn.Sequential(*stages), head=head))


def _inception_stem() -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            conv1=_conv_bn_relu(3, 64, 7, stride=2, padding=3),
            pool1=nn.MaxPool2d(3, stride=2, ceil_mode=True),
            conv2=_conv_bn_relu(64, 64, 1),
            conv3=_conv_bn_relu(64, 192, 3, padding=1),
            pool2=nn.MaxPool2d(3, stride=2, ceil_mode=True),
        )
    )


def _build_inception(p: InceptionParams) -> nn.Module:
    stages, channels = [], 192
    for i in range(p.stages):
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        for j in range(p.modules_per_stage):
            layers[f"module{j}"] = InceptionModule(channels, p)
            channels = p.module_channels
        if i < p.stages - 1:
            layers["pool"] = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        stages.append(nn.Sequential(layers))
    head = _head(channels, p.dense_layers, p.dense_width, p.classes, global_pool=True)
    return nn.Sequential(
        OrderedDict(stem=_inception_stem(), stages=nn.Sequential(*stages), head=head)
    )


def _vector_shape(p: FCParams) -> tuple[int, ...]:
    return (p.input_features,)


def _image_shape(p: _ConvParams) -> tuple[int, ...]:
    return (3, p.input_size, p.input_size)


# --------------------------------------------------------------------------------------------
# registry and entry points


@dataclass(frozen=True)
class Family(Generic[P]):
    """One generated model family: its parameters, builder and per-sample input shape."""

    name: str
    """Family name as used on the command line and in spec files."""
    params_cls: type[P]
    """Frozen dataclass of the family's parameters (validated on construction)."""
    build: Callable[[P], nn.Module]
    """Builds the model (no tensor computation: safe under ``torch.device("meta")``)."""
    input_shape: Callable[[P], tuple[int, ...]]
    """Shape of one input sample, without the batch dimension."""
    description: str
    """One line for help texts."""


FAMILIES: Mapping[str, Family[Any]] = types.MappingProxyType(
    {
        "fc": Family(
            "fc", FCParams, _build_fc, _vector_shape,
            "fully connected: hidden Linear [-> BatchNorm] -> ReLU [-> Dropout] layers",
        ),
        "vgg": Family(
            "vgg", VGGParams, _build_vgg, _image_shape,
            "VGG: blocks of 3x3 conv -> BN -> ReLU and 2x2 max pool, filters doubling per block",
        ),
        "resnet": Family(
            "resnet", ResNetParams, _build_resnet, _image_shape,
            "ResNet as torchvision (basic or bottleneck blocks), free depths and width",
        ),
        "inception": Family(
            "inception", InceptionParams, _build_inception, _image_shape,
            "GoogLeNet-like: stem, stages of Inception modules, global average pool",
        ),
    }
)


def _family_of(params: Params) -> Family[Any]:
    family = FAMILIES.get(getattr(params, "family", ""))
    if family is None or not isinstance(params, family.params_cls):
        raise TypeError(f"expected a family parameter object, got {type(params).__name__}")
    return family


def build(params: Params) -> nn.Module:
    """Build the model for ``params`` on the current default device (use meta for walks)."""
    return _family_of(params).build(params)


def input_shape(params: Params) -> tuple[int, ...]:
    """Per-sample input shape: ``(input_features,)`` for fc, ``(3, s, s)`` for conv families."""
    return _family_of(params).input_shape(params)


# --------------------------------------------------------------------------------------------
# parsing CLI strings and Python values


def _parse_int(text: str) -> object:
    text = text.strip()
    return int(text) if _INT_RE.fullmatch(text) else text


def _parse_float(text: str) -> object:
    try:
        return float(text)
    except ValueError:
        return text


def _parse_bool(text: str) -> object:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    return False if word in _FALSE else text


def _parse_word(text: str) -> object:
    return text.strip().lower()


def _parse_int_tuple(value: object) -> object:
    if isinstance(value, str):
        text = value.strip()
        if text[:1] + text[-1:] in ("[]", "()"):
            text = text[1:-1]
        parts: list[object] = [_parse_int(part) for part in text.split(",")]
        return tuple(parts) if all(_is_int(n) for n in parts) else value
    if isinstance(value, (list, tuple)):
        return tuple(_parse_int(n) if isinstance(n, str) else n for n in value)
    return value


def _convert(kind: object, value: object) -> object:
    """Convert a CLI string (or list) to the field's type; leave anything else to validation."""
    if kind == tuple[int, ...]:
        return _parse_int_tuple(value)
    if not isinstance(value, str):
        return value
    parsers: dict[object, Callable[[str], object]] = {
        int: _parse_int, float: _parse_float, bool: _parse_bool, str: _parse_word
    }
    parser = parsers.get(kind)
    return parser(value) if parser else value


def parse_params(family: str, raw: Mapping[str, object]) -> Params:
    """Validated parameters of ``family`` from Python values or command-line strings.

    Names may use ``-`` or ``_``; missing names (or ``None`` values) take the defaults.
    Raises SpecError for an unknown family, an unknown parameter name or a bad value.
    """
    fam = FAMILIES.get(family)
    if fam is None:
        raise SpecError(
            f"unknown model family {family!r}; valid families: {', '.join(FAMILIES)}"
        )
    hints = get_type_hints(fam.params_cls)
    valid = [f.name for f in fields(fam.params_cls)]
    values: dict[str, object] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name not in valid:
            raise SpecError(
                f"{family}: unknown parameter {key!r}; valid parameters: {', '.join(valid)}"
            )
        if value is not None:
            values[name] = _convert(hints[name], value)
    return fam.params_cls(**values)  # type: ignore[no-any-return]
