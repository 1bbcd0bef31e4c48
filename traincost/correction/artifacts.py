"""Residual model files: the XGBoost JSON beside its ``.meta.json`` sidecar, the shipped folder, and the
version of the analytic model a residual was fitted against.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from traincost.correction.features import FEATURES
from traincost.errors import TraincostUsageError

SCHEMA_VERSION = 1


_KIND = "traincost-residual"
#: File forms of a residual model: XGBoost JSON, and the same gzip-compressed (a fifth of the size: what the
#: package ships; ``zcat`` reads it).
MODEL_SUFFIXES = (".json", ".json.gz")


class ResidualModelError(TraincostUsageError):
    """A residual model file that cannot be used (missing, another schema, other features, damaged)."""


@functools.lru_cache(maxsize=64)
def model_version() -> int:
    """The version of the analytic model a residual corrects (:data:`traincost.pricing.MODEL_VERSION`). A residual
    fitted under another version corrects another analytic model (``predict`` says so); its features are checked
    by name when it loads."""
    from traincost.pricing import MODEL_VERSION

    return MODEL_VERSION


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """``model.json`` or ``model.json.gz`` -> ``model.meta.json``."""
    path = Path(path)
    return path.with_name(model_stem(path) + ".meta.json")


def model_stem(path: str | os.PathLike[str]) -> str:
    """The model's name without its suffix (``h200.json.gz`` -> ``h200``)."""
    name = Path(path).name
    for suffix in sorted(MODEL_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(path).stem


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _package_version() -> str:
    from traincost.version import __version__

    return str(__version__)


def read_sidecar(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked sidecar of the model at ``path`` (without loading the booster or xgboost).

    Raises :class:`ResidualModelError` naming the file: missing model or sidecar, not JSON, another schema
    version, features other than this traincost's :data:`FEATURES`, a model file that is not the one the
    sidecar describes.
    """
    path = Path(path)
    meta_path = sidecar_path(path)
    if not path.is_file():
        raise ResidualModelError(f"residual model not found: {path}")
    if not meta_path.is_file():
        raise ResidualModelError(f"{path}: no sidecar {meta_path.name} next to it (written by 'traincost fit')")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResidualModelError(f"{meta_path}: not a readable JSON sidecar ({exc})") from None
    if not isinstance(meta, dict) or meta.get("kind") != _KIND:
        raise ResidualModelError(f"{meta_path}: not a traincost residual model sidecar")
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise ResidualModelError(f"{path}: residual model schema_version {meta.get('schema_version')!r} is not "
                                 f"supported (this traincost reads {SCHEMA_VERSION}); retrain with 'traincost fit'")
    names = meta.get("feature_names")
    if names != list(FEATURES):
        have = list(names) if isinstance(names, list) else []
        missing = [f for f in FEATURES if f not in have]
        extra = [f for f in have if f not in FEATURES]
        detail = "; ".join(p for p in (
            f"missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}" if missing else "",
            f"unexpected {', '.join(map(str, extra[:4]))}{' ...' if len(extra) > 4 else ''}" if extra else "",
        ) if p) or "another order"
        raise ResidualModelError(f"{path}: the model's features differ from this traincost's ({detail}); "
                                 "retrain with 'traincost fit'")
    if meta.get("model_sha256") and meta["model_sha256"] != _file_sha256(path):
        raise ResidualModelError(f"{path}: the model file does not match its sidecar (sha256 differs); "
                                 "it was changed or replaced after 'traincost fit'")
    return meta


def shipped_dir() -> Path:
    """``traincost/data/residual`` inside the installed package."""
    return Path(str(resources.files("traincost") / "data" / "residual"))


def _model_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.name.endswith(MODEL_SUFFIXES) and not p.name.endswith(".meta.json") and p.is_file())


def profile_hash(profile: Any) -> str:
    """A hash of what a device profile prices with: its JSON without the raw measurements (``raw``), which the
    package does not ship and pricing never reads, and without a user's host (``--host``: the device is the same)."""
    from traincost.hardware.host import without_host_override

    data = {k: v for k, v in without_host_override(profile).to_dict().items() if k != "raw"}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]
