"""Recurrent models for the CLI: ``tests/data/rnn_model.py:make_lstm`` with ``--input-shape 50,256``."""

from __future__ import annotations

import torch
from torch import nn


class SequenceClassifier(nn.Module):
    """A recurrent layer over (batch, seq, features) and a linear head on every step's output: the walker's
    cross-entropy trains the (batch, seq, classes) logits."""

    def __init__(self, mode: str = "LSTM", input_size: int = 256, hidden: int = 256, layers: int = 2,
                 classes: int = 10, **rnn: object) -> None:
        super().__init__()
        self.rnn = getattr(nn, mode)(input_size, hidden, layers, batch_first=True, **rnn)
        self.head = nn.Linear(hidden * (2 if rnn.get("bidirectional") else 1), classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x)[0]).transpose(1, 2)  # (batch, classes, seq)


def make_lstm(input_size: int = 256, hidden: int = 256, layers: int = 2) -> nn.Module:
    """The 2-layer LSTM(256) of the RNN pricing tests."""
    return SequenceClassifier("LSTM", input_size, hidden, layers)


def make_gru(input_size: int = 256, hidden: int = 256, layers: int = 2) -> nn.Module:
    return SequenceClassifier("GRU", input_size, hidden, layers)
