"""The tools that measure and learn (upper floor): ``measure.calibrate`` calibrates device profiles.

``from traincost.calibrate import calibrate`` works; the heavy modules load on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["calibrate"]


def __getattr__(name: str) -> Any:
    if name == "calibrate":
        from traincost.calibrate.measure import calibrate

        return calibrate
    raise AttributeError(f"module 'traincost.calibrate' has no attribute {name!r}")
