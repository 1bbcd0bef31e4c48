"""Where data lives: measurements in the repository's ``data/``, the package ships fitted values only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_shipped_profiles_are_the_full_ones_without_raw_points():
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "ship_profiles.py"), "--check"], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr


def test_the_package_ships_no_measured_datasets_or_raw_points():
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["traincost"]
    assert not any("datasets" in p for p in patterns)
    assert not (ROOT / "traincost" / "data" / "datasets").exists()
    import json

    for path in sorted((ROOT / "traincost" / "data" / "profiles").glob("*.json")):
        assert "raw" not in json.loads(path.read_text()), path.name


def test_data_readme_names_every_file_it_holds():
    readme = (ROOT / "data" / "README.md").read_text()
    for folder in ("datasets", "profiles", "reference"):
        for path in sorted((ROOT / "data" / folder).iterdir()):
            stem = path.name.split(".")[0]
            assert stem.split("-sweep")[0].rsplit("-", 1)[0] in readme or path.name in readme, path.name
