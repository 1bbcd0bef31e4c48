"""Pool the raw measurements of several calibrations of one machine into one profile, fitted again.

    python scripts/pool_profiles.py OUT.json CALIBRATION.json [CALIBRATION.json ...]

On a shared VM one calibration is a snapshot: the same convolution measured minutes apart can differ by
2x, and a curve's fitted depth dimension can flip between runs. Pooling every quiet calibration's raw
points (``traincost calibrate --device cpu -o ...``) and refitting (:func:`traincost.calibrate.assemble.refit`)
gives curves that no single snapshot decides. The last file's device properties and software are kept;
``properties["pooled_calibrations"]`` lists the calibrations' dates. Families a calibration did not
measure (an older grid) simply contribute nothing.
"""

from __future__ import annotations

import dataclasses
import sys

from traincost.calibrate.assemble import refit
from traincost.hardware.profile import load_profile, save_profile


def pool(paths: list[str]):
    profiles = [load_profile(p) for p in paths]
    if len({p.name for p in profiles}) != 1 or any(p.source != "calibrated" for p in profiles):
        raise SystemExit("pool_profiles: all files must be calibrations of the same device")
    raw: dict[str, list] = {}
    for p in profiles:
        for family, rows in p.raw.items():
            if family not in ("fits", "errors", "probes") and isinstance(rows, list):
                raw.setdefault(family, []).extend(rows)
    last = profiles[-1]
    raw["probes"] = list(last.raw.get("probes", []))
    pooled = refit(dataclasses.replace(last, raw={**raw, "fits": [], "errors": []}))
    # an input that is itself a pool contributes the calibrations it pooled, not its own date
    dates = [d for p in profiles for d in (p.properties.get("pooled_calibrations") or [p.created])]
    pooled.properties["pooled_calibrations"] = list(dict.fromkeys(dates))
    return pooled


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__.strip().splitlines()[2].strip())
    save_profile(pool(sys.argv[2:]), sys.argv[1])
