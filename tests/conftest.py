"""Shared fixtures: the test data folder and small architectures that walk in milliseconds."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture
def data_dir() -> Path:
    """``tests/data``: spec files and the user model file ``user_model.py``."""
    return DATA


@pytest.fixture(scope="session")
def counted():
    """``counted(model, batch_size, **step)``: ``traincost.count`` cached for the session.

    For the large torchvision models several test files look at the same walk.
    """
    import traincost

    @lru_cache(maxsize=None)
    def run(model: str, batch_size: int, **step: object):
        return traincost.count(model, batch_size=batch_size, **step)

    return run


#: Small family parameters: every family, a few milliseconds per walk.
TINY_FC = {"input_features": 32, "hidden_layers": 2, "hidden_width": 16, "classes": 10}
TINY_VGG = {"blocks": 2, "convs_per_block": 2, "filters": 8, "dense_layers": 1, "dense_width": 32,
            "input_size": 32, "classes": 10}
TINY_RESNET = {"blocks": [1, 1], "block": "bottleneck", "width": 8, "input_size": 32, "classes": 10}
TINY_INCEPTION = {"stages": 2, "modules_per_stage": 1, "f1": 8, "f2_in": 8, "f2_out": 8, "f3_in": 4,
                  "f3_out": 4, "f4_out": 4, "input_size": 64, "classes": 10}

TINY = {"fc": TINY_FC, "vgg": TINY_VGG, "resnet": TINY_RESNET, "inception": TINY_INCEPTION}


@pytest.fixture(scope="session")
def tiny():
    """Family name -> a small validated ``ArchSpec`` of that family."""
    from traincost import resolve

    return {name: resolve(name, params=params) for name, params in TINY.items()}
