"""torchvision models, every family: built with no weights, fed what their training recipe feeds them.

Classification, segmentation and video models take one batch tensor; detection models take images
and targets and return their losses; optical-flow models take two frames. Each family has the input
size its weights document (a classifier's crop, a segmentation model's 520 px, a video model's
``clip_len`` frames, a detector's raw COCO image, which the detector resizes itself). Nothing is
downloaded: ``weights=None, weights_backbone=None``. Quantized models train as their float model.
"""

from __future__ import annotations

import difflib
import functools
import re
import warnings
from typing import Any

from traincost.errors import SpecError
from traincost.flopmodel import datadep, families, inputs
from traincost.flopmodel.inputs import TrainingInputs

#: A detector's raw input: COCO's typical 640 x 480 image (the model's transform resizes it, as in training).
DETECTION_IMAGE = (3, 480, 640)
#: RAFT's training crop on FlyingChairs (torchvision's optical-flow reference recipe).
FLOW_FRAME = (3, 368, 496)
#: Segmentation: the 520 px of the weights' transforms.
SEGMENTATION_SIZE = 520
#: Frames per clip when the weights' documentation does not give ``clip_len``.
DEFAULT_CLIP_LEN = 16

FAMILY_MODULES = ("classification", "segmentation", "detection", "video", "optical_flow")


def torchvision() -> Any:
    try:
        import torchvision as tv
    except ImportError as exc:
        raise SpecError("torchvision model names need torchvision: pip install 'traincost[vision]' "
                        f"(or use a family: {', '.join(families.FAMILIES)})") from exc
    return tv


@functools.lru_cache(maxsize=None)
def family_of(name: str) -> str:
    """``classification``, ``segmentation``, ``detection``, ``video``, ``optical_flow`` or ``quantization``."""
    tv = torchvision()
    for module in ("segmentation", "detection", "video", "optical_flow", "quantization"):
        if name in tv.models.list_models(module=getattr(tv.models, module)):
            return module
    return "classification"


def names() -> list[str]:
    """Every torchvision model that trains (quantized ones excluded: they are int8 inference models)."""
    tv = torchvision()
    quantized = set(tv.models.list_models(module=tv.models.quantization))
    return sorted(n for n in tv.models.list_models() if n not in quantized)


def check_name(name: str) -> None:
    tv = torchvision()
    known = tv.models.list_models()
    if name not in known:
        pool = sorted(set(known) | set(families.FAMILIES))
        close = difflib.get_close_matches(name.lower(), pool, n=5, cutoff=0.5)
        hint = f"; did you mean: {', '.join(close)}" if close else \
            f"; families: {', '.join(families.FAMILIES)}; torchvision: resnet50, vgg16, vit_b_16, ...; " \
            "timm: timm:<name>; transformers: hf:<config.json>"
        raise SpecError(f"unknown model {name!r}{hint}")
    if name.startswith("quantized_"):
        raise SpecError(f"{name} is torchvision's int8 inference model and does not train; "
                        f"predict its float model {name.removeprefix('quantized_')!r} instead")


def _weights(name: str) -> Any:
    try:
        return torchvision().models.get_model_weights(name).DEFAULT
    except (ValueError, AttributeError, KeyError):
        return None


def _crop(weights: Any, default: int = 224) -> tuple[int, int]:
    keywords = getattr(getattr(weights, "transforms", None), "keywords", {}) or {}
    size = keywords.get("crop_size", default)
    if isinstance(size, (list, tuple)):
        return (int(size[0]), int(size[-1]))
    return (int(size), int(size))


def input_shape(name: str, model: Any = None) -> tuple[int, ...]:
    """The per-sample input its weights document; a ViT's own ``image_size`` when built without weights."""
    family = family_of(name)
    if family == "detection":
        return DETECTION_IMAGE
    if family == "optical_flow":
        return FLOW_FRAME
    if family == "segmentation":
        return (3, SEGMENTATION_SIZE, SEGMENTATION_SIZE)
    weights = _weights(name)
    h, w = _crop(weights)
    if family == "video":
        docs = (weights.meta.get("_docs", "") if weights is not None else "") or ""
        found = re.search(r"clip_len=(\d+)", docs)
        return (3, int(found[1]) if found else DEFAULT_CLIP_LEN, h, w)
    size = getattr(model, "image_size", None)  # vit_h_14's default weights are 518 px; the model is 224
    if isinstance(size, int):
        return (3, size, size)
    return (3, h, w)


def training_inputs(name: str) -> TrainingInputs:
    family = family_of(name)
    if family == "detection":
        return inputs.detection(masks=name.startswith("maskrcnn"),
                                keypoints=17 if name.startswith("keypointrcnn") else 0)
    if family == "optical_flow":
        return inputs.OPTICAL_FLOW
    return inputs.TENSOR


def build_kwargs(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """No download: no weights, no backbone weights (detection and segmentation would fetch them)."""
    out = {"weights": None}
    if family_of(name) in ("segmentation", "detection"):
        out["weights_backbone"] = None
    return {**out, **params}


def build(name: str, params: dict[str, Any]) -> Any:
    tv = torchvision()
    with warnings.catch_warnings():  # inception_v3/googlenet warn about weight init: moot on meta
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torchvision\.")
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torchvision\.")
        model = tv.models.get_model(name, **build_kwargs(name, params))
    _positives_at_the_sampler_cap(model)
    return model


def _positives_at_the_sampler_cap(model: Any) -> None:
    """An R-CNN's RoI sampler keeps at most ``positive_fraction x batch_size_per_image`` foreground boxes
    (128 of 512); on meta the sampled labels have no values, so they are marked as holding that many
    positives, and the box, mask and keypoint heads see the sampler's cap rather than all 512 boxes."""
    heads = getattr(model, "roi_heads", None)
    sampler = getattr(heads, "fg_bg_sampler", None)
    select = getattr(heads, "select_training_samples", None)
    if sampler is None or select is None:
        return
    cap = int(sampler.batch_size_per_image * sampler.positive_fraction)

    def select_training_samples(proposals: Any, targets: Any) -> Any:
        proposals, matched_idxs, labels, regression_targets = select(proposals, targets)
        for image_labels in labels:
            datadep.set_selected(image_labels, min(cap, image_labels.numel()))
        return proposals, matched_idxs, labels, regression_targets

    heads.select_training_samples = select_training_samples
