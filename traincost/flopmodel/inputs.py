"""What a training step feeds a model and how its output becomes the loss.

Most models take one batch tensor and return logits: the default, :data:`TENSOR`. Detection models
take a list of images and their targets and return a dict of losses; optical-flow models take two
frames and return a list of refinements. Each is a :class:`TrainingInputs`: the walker calls ``make``
for the meta-device arguments and ``loss`` on whatever the model returns, so the walked step is the
step the model's own training recipe runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from traincost.errors import ModelBuildError

#: ``make(batch_size, sample_shape, dtype, channels_last) -> (args, kwargs)``
MakeInputs = Callable[[int, tuple[int, ...], torch.dtype, bool], tuple[tuple, dict]]
#: ``loss(output, batch_size, input_dtype) -> scalar tensor``
MakeLoss = Callable[[Any, int, torch.dtype], torch.Tensor]


@dataclass(frozen=True)
class TrainingInputs:
    """The arguments of one training step's forward call and the loss on its output."""

    name: str
    make: MakeInputs
    loss: MakeLoss
    assumes: tuple[str, ...] = ()     # what the synthetic inputs assume, said in the estimate


def _memory_format(sample_shape: tuple[int, ...], dtype: torch.dtype, channels_last: bool) -> torch.memory_format:
    if channels_last and len(sample_shape) == 3 and dtype.is_floating_point:
        return torch.channels_last
    return torch.contiguous_format


def _batch_tensor(batch: int, sample_shape: tuple[int, ...], dtype: torch.dtype,
                  channels_last: bool) -> tuple[tuple, dict]:
    fmt = _memory_format(sample_shape, dtype, channels_last)
    return (torch.empty((batch, *sample_shape), dtype=dtype, device="meta", memory_format=fmt),), {}


def cross_entropy_loss(output: Any, batch_size: int, input_dtype: torch.dtype) -> torch.Tensor:
    """Cross-entropy summed over every (batch, classes, ...) tensor the model returns.

    For a token model (integer input), a (batch, sequence, vocabulary) output is a language model's:
    the loss is over the last dimension, as ``cross_entropy(logits.view(-1, V), targets.view(-1))``.
    """
    tokens = not input_dtype.is_floating_point
    leaves = [t for t in tree_flatten(output)[0]
              if isinstance(t, torch.Tensor) and t.dim() >= 2 and t.shape[0] == batch_size
              and t.is_floating_point()]
    if not leaves:
        raise ModelBuildError(
            "the model returned no floating-point tensor of shape (batch, classes, ...) to train on")
    total = None
    for logits in leaves:
        if tokens and logits.dim() == 3:
            logits = logits.reshape(-1, logits.shape[-1])
        target = torch.zeros((logits.shape[0], *logits.shape[2:]), dtype=torch.long, device="meta")
        term = nn.functional.cross_entropy(logits, target)
        total = term if total is None else total + term
    return total


TENSOR = TrainingInputs("tensor", _batch_tensor, cross_entropy_loss)


def sum_of_losses(output: Any, batch_size: int, input_dtype: torch.dtype) -> torch.Tensor:
    """A model that computes its own losses in training mode (detectors: a dict of them): their sum."""
    terms = [t for t in tree_flatten(output)[0] if isinstance(t, torch.Tensor) and t.is_floating_point()]
    if not terms:
        raise ModelBuildError("the model returned no loss tensor in training mode")
    total = terms[0].sum()
    for t in terms[1:]:
        total = total + t.sum()
    return total


#: Objects per training image: COCO's train2017 mean is 7.3 annotations per image.
OBJECTS_PER_IMAGE = 7


def detection(masks: bool = False, keypoints: int = 0, objects: int = OBJECTS_PER_IMAGE) -> TrainingInputs:
    """torchvision detectors: ``model(images, targets)`` returns a dict of losses.

    Each image gets ``objects`` boxes with labels (and instance masks or keypoints for Mask/Keypoint
    R-CNN), as a COCO image has on average.
    """
    def make(batch: int, sample_shape: tuple[int, ...], dtype: torch.dtype, channels_last: bool):
        images = [torch.empty(sample_shape, dtype=dtype, device="meta") for _ in range(batch)]
        targets = []
        for _ in range(batch):
            t = {"boxes": torch.empty((objects, 4), dtype=dtype, device="meta"),
                 "labels": torch.zeros((objects,), dtype=torch.long, device="meta")}
            if masks:
                t["masks"] = torch.zeros((objects, *sample_shape[-2:]), dtype=torch.uint8, device="meta")
            if keypoints:
                t["keypoints"] = torch.empty((objects, keypoints, 3), dtype=dtype, device="meta")
            targets.append(t)
        return (images, targets), {}

    extra = " with instance masks" if masks else f" with {keypoints} keypoints each" if keypoints else ""
    return TrainingInputs("detection", make, sum_of_losses,
                          (f"{objects} objects per image{extra} (COCO's mean)",
                           "R-CNN heads: foreground boxes at the RoI sampler's cap (128 of 512 per image)"))


def _flow_make(batch: int, sample_shape: tuple[int, ...], dtype: torch.dtype, channels_last: bool):
    fmt = _memory_format(sample_shape, dtype, channels_last)
    frames = tuple(torch.empty((batch, *sample_shape), dtype=dtype, device="meta", memory_format=fmt)
                   for _ in range(2))
    return frames, {}


def _flow_loss(output: Any, batch_size: int, input_dtype: torch.dtype) -> torch.Tensor:
    """RAFT's sequence loss: the L1 distance of every refinement to the ground-truth flow, weighted."""
    flows = [t for t in tree_flatten(output)[0] if isinstance(t, torch.Tensor) and t.is_floating_point()]
    if not flows:
        raise ModelBuildError("the optical-flow model returned no flow prediction")
    target = torch.empty_like(flows[-1])
    total = None
    for i, flow in enumerate(flows):
        term = (flow - target).abs().mean() * (0.8 ** (len(flows) - i - 1))
        total = term if total is None else total + term
    return total


OPTICAL_FLOW = TrainingInputs("optical_flow", _flow_make, _flow_loss, ("a pair of frames per sample",))
