"""Same input, same answer: a prediction does not depend on the hash seed (set or dict order) or the date.

``max(set(kinds), key=kinds.count)`` once broke a tie between the two H200 profiles' depth terms by set order, so
``--device V100`` answered 229.0 or 252.5 ms for one ResNet-50 step depending on ``PYTHONHASHSEED``.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

COMMAND = ["predict", "vgg", "--blocks", "2", "--convs-per-block", "2", "--filters", "16", "--input-size", "32",
           "--batch-size", "8", "--precision", "fp16", "--channels-last", "--json"]


def _run(seed: str, *args: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    out = subprocess.run([sys.executable, "-m", "traincost.cli", *args], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("device", ["V100", "RTX 3090"])
def test_datasheet_prediction_is_identical_under_several_hash_seeds(device):
    outputs = {seed: _run(seed, *COMMAND, "--device", device) for seed in ("0", "1", "2", "12345")}
    assert len(set(outputs.values())) == 1, f"{device}: answers differ between hash seeds"


def test_datasheet_profile_is_a_pure_function_of_the_catalog_and_shipped_profiles():
    from traincost.hardware.catalog import resolve_gpu
    from traincost.hardware.datasheet import datasheet_profile
    from traincost.hardware.store import load_shipped_profiles

    refs = load_shipped_profiles()
    a = datasheet_profile(resolve_gpu("V100"), refs).to_dict()
    b = datasheet_profile(resolve_gpu("V100"), tuple(reversed(refs))).to_dict()
    assert a == b                                            # the order of the references does not matter
    assert a["created"] == max(p.created for p in refs if p.kind == "cuda" and p.source == "calibrated")
