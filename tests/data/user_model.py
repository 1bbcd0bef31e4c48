"""A user's model file for the factory tests: ``tests/data/user_model.py:make`` and friends."""

from __future__ import annotations

import torch
from torch import nn


class TinyNet(nn.Module):
    """conv -> BN -> ReLU -> global pool -> linear, with readable module names."""

    def __init__(self, width: int = 8, classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu(self.bn(self.conv(x))))
        return self.fc(torch.flatten(x, 1))


def make(width: int = 8, classes: int = 10) -> nn.Module:
    """The factory: ``user_model.py:make`` with ``--input-shape 3,H,W``."""
    return TinyNet(width, classes)


def raises() -> nn.Module:
    """A factory that fails while building."""
    raise RuntimeError("the user's factory is broken")


def not_a_module() -> int:
    """A factory that returns something other than a module."""
    return 42


NOT_CALLABLE = 3


def make_token_model(vocab: int = 100, dim: int = 32) -> nn.Module:
    """A tiny language model: embedding, one transformer encoder layer, vocabulary head."""
    return nn.Sequential(
        nn.Embedding(vocab, dim),
        nn.TransformerEncoderLayer(dim, nhead=4, dim_feedforward=64, batch_first=True),
        nn.Linear(dim, vocab),
    )
