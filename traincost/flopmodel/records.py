"""Plain data types shared by the walker, the formula registry and the tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod

import torch

#: Operator classes. The predictor prices each class against its own efficiency curve.
OP_CLASSES = (
    "matmul",       # mm, bmm, addmm, baddbmm, linear
    "conv",         # convolution forward and backward
    "attention",    # fused scaled-dot-product attention forward and backward
    "rnn",          # a fused recurrent call (all layers, directions, time steps), priced by its plan
    "elementwise",  # pointwise arithmetic and activations (and their backward)
    "reduction",    # sum, mean, max, ... over dimensions
    "norm",         # batch/layer/group norm forward and backward
    "pool",         # max/avg/adaptive pooling forward and backward
    "softmax",      # softmax / log_softmax and their backward
    "loss",         # nll / cross-entropy kernels
    "optimizer",    # _foreach_* and fused optimizer kernels
    "copy",         # dtype casts, clone, contiguous, cat, index copies: pure data movement
    "embedding",    # embedding lookups and their backward
    "free",         # views, metadata and allocations: no kernel, host dispatch only
)

PHASES = ("forward", "backward", "optimizer")


@dataclass(frozen=True)
class TensorInfo:
    """Shape and dtype of one tensor argument; what a formula may look at."""

    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def numel(self) -> int:
        return prod(self.shape)

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize

    @classmethod
    def of(cls, t: torch.Tensor) -> "TensorInfo":
        return cls(tuple(int(s) for s in t.shape), t.dtype)


@dataclass(frozen=True)
class OpCost:
    """Work of one aten op: FLOPs (2 per multiply-add), bytes moved, and its class."""

    flops: int
    bytes_read: int
    bytes_written: int
    op_class: str


@dataclass(frozen=True)
class OpRecord:
    """One aten op recorded by the walker."""

    index: int
    phase: str                      # "forward" | "backward" | "optimizer"
    module: str                     # owning module path, "" for the top level
    op: str                         # overload packet name, e.g. "aten.convolution"
    input_shapes: tuple[tuple[int, ...], ...]
    input_dtypes: tuple[str, ...]
    output_shapes: tuple[tuple[int, ...], ...]
    output_dtypes: tuple[str, ...]
    flops: int
    bytes_read: int
    bytes_written: int
    op_class: str                   # one of OP_CLASSES, or "unpriced"
    n_tensors: int = 1              # tensors in a foreach list op (1 otherwise)
    host_only: bool = False         # every tensor is a CPU scalar (optimizer step counters): no kernel
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def bytes(self) -> int:
        return self.bytes_read + self.bytes_written

    @property
    def priced(self) -> bool:
        return self.op_class != "unpriced"
