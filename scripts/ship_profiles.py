"""Write the package's device profiles from the full ones kept in ``data/profiles/``.

``data/profiles/<name>.json`` holds a calibration with every raw measurement (what ``refit`` and
``scripts/pool_profiles.py`` reproduce the fits from); the package ships ``traincost/data/profiles/<name>.json``:
the same profile without ``raw`` (pricing never reads it), a few percent of the size.
``python scripts/ship_profiles.py`` rewrites them; ``--check`` exits 1 when a shipped file differs from what it
would write (``tests/test_data_layout.py`` runs the same check).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FULL = ROOT / "data" / "profiles"
SHIPPED = ROOT / "traincost" / "data" / "profiles"
#: keys that hold measurements, not fitted values: pricing never reads them.
MEASUREMENT_KEYS = ("raw",)


def shipped_text(full_path: Path) -> str:
    """The shipped form of one full profile: the JSON without its measurement keys."""
    data = json.loads(full_path.read_text(encoding="utf-8"))
    for key in MEASUREMENT_KEYS:
        data.pop(key, None)
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 when a shipped profile is stale")
    args = ap.parse_args(argv)
    stale = []
    SHIPPED.mkdir(parents=True, exist_ok=True)
    for full in sorted(FULL.glob("*.json")):
        text = shipped_text(full)
        out = SHIPPED / full.name
        if args.check:
            if not out.is_file() or out.read_text(encoding="utf-8") != text:
                stale.append(out.name)
        else:
            out.write_text(text, encoding="utf-8")
    extra = sorted({p.name for p in SHIPPED.glob("*.json")} - {p.name for p in FULL.glob("*.json")})
    if stale or extra:
        print(f"stale: {', '.join(stale) or '-'}; shipped without a full profile: {', '.join(extra) or '-'}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
