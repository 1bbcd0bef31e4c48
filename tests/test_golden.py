"""Stored expected analytic predictions: a dozen reference steps on every shipped profile and a few datasheet GPUs.

A change to the walk or to pricing that moves any number must bump :data:`traincost.pricing.MODEL_VERSION` (a change
to how unmeasured GPUs are derived :data:`traincost.hardware.datasheet.DATASHEET_VERSION`) and store the new values (``python scripts/golden.py --write``); a refactor changes neither. The values were produced
by ``scripts/golden.py``; the test recomputes them with today's code.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STORED = json.loads((ROOT / "tests" / "golden" / "analytic.json").read_text())
sys.path.insert(0, str(ROOT / "scripts"))
import golden  # noqa: E402

from traincost.hardware.datasheet import DATASHEET_VERSION  # noqa: E402
from traincost.pricing import MODEL_VERSION  # noqa: E402


@pytest.fixture(scope="module")
def today() -> dict:
    return golden.compute()


def test_golden_file_is_for_these_versions():
    stored = (STORED["model_version"], STORED["datasheet_version"])
    assert stored == (MODEL_VERSION, DATASHEET_VERSION), (
        f"tests/golden/analytic.json holds model / datasheet versions {stored}, the code "
        f"{(MODEL_VERSION, DATASHEET_VERSION)}: run python scripts/golden.py --write")


def test_every_stored_step_prices_the_same(today):
    stored = {(r["step"], r["device"]): r for r in STORED["rows"]}
    now = {(r["step"], r["device"]): r for r in today["rows"]}
    assert sorted(now) == sorted(stored)
    moved = []
    for key, want in stored.items():
        got = now[key]
        for field, value in want.items():
            if isinstance(value, float):
                same = math.isclose(got[field], value, rel_tol=1e-9, abs_tol=0.0)
            else:
                same = got[field] == value
            if not same:
                moved.append(f"{key} {field}: stored {value}, now {got[field]}")
    assert not moved, ("priced numbers changed under the same versions (bump MODEL_VERSION for pricing, "
                       "DATASHEET_VERSION for datasheet profiles, then run scripts/golden.py --write):\n"
                       + "\n".join(moved[:20]))


def test_golden_steps_cover_every_shipped_profile():
    from traincost.hardware.store import shipped_profiles_dir

    shipped = sorted(p.name for p in shipped_profiles_dir().glob("*.json"))
    assert sorted(d for d in golden.DEVICES if d.endswith(".json")) == shipped
