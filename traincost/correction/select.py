"""Which residual model applies to a device, and how wide its interval is.

The shipped model of the device, else the cross-device one (with the nearest trained CPU's device features
for a calibrated CPU in no training data), else none; each choice carries its reason. Intervals widen for
datasheet profiles and inputs outside the training data.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from traincost.correction.artifacts import (
    _model_files,
    model_version,
    profile_hash,
    read_sidecar,
    shipped_dir,
)
from traincost.correction.estimator import (
    DEFAULT_LEVEL,
    ResidualModel,
    ResidualModelError,
    load,
)
from traincost.correction.features import PRECISIONS, _matmul_mode, device_features
from traincost.errors import TraincostError

#: Widening of the interval's half-width (log space) for a datasheet profile (a GPU never measured: its
#: rates are datasheet peaks x fractions, so both the analytic model and the residual are less certain).
DATASHEET_WIDEN = 2.0


#: Widening when inputs lie outside the training data (see :func:`out_of_range`).
OUT_OF_RANGE_WIDEN = 1.5


#: A feature is out of range beyond its training [min, max] widened by this fraction of the span.
RANGE_MARGIN = 0.1


def unseen_cpu_applies(profile: Any) -> bool:
    """Whether ``profile``, outside every model's training data, is still corrected by the cross-device model
    (with the device features of the nearest trained CPU) and without a wider interval: a *calibrated CPU*
    (see :func:`select_residual`; a GPU is not, nor a datasheet profile)."""
    return profile.kind == "cpu" and profile.source == "calibrated"


def device_key(profile: Any) -> dict[str, Any]:
    """How a sidecar names a device: profile name, kind, source, catalog key, the profile's hash, and its
    device features per precision it supports (:func:`device_features`), for :func:`proxy_features`."""
    feats = {p: device_features(profile, p) for p in PRECISIONS
             if profile.compute_curve("matmul", _matmul_mode(p)) is not None}
    return {"name": profile.name, "kind": profile.kind, "source": profile.source, "catalog_key": profile.catalog_key,
            "profile_sha256": profile_hash(profile), "features": feats}


def staleness(model: ResidualModel, profile: Any) -> str | None:
    """Why ``model`` corrects another analytic model than today's on ``profile`` (fitted with other
    walk/pricing code, or on another version of this device's profile), or None."""
    meta = getattr(model, "metadata_", None) or {}
    trained = meta.get("model_version")
    if trained is None and "code_version" in meta:
        return "fitted before the analytic model was versioned"
    if trained is not None and trained != model_version():
        return f"fitted with analytic model version {trained}; this traincost prices with version {model_version()}"
    for d in meta.get("devices") or []:
        if _same_device(d, profile) and d.get("profile_sha256"):
            # stale only when the model's own input changed: the shipped profile it was fitted on; a user's own
            # calibration of the same device is another profile (see :func:`other_calibration`), not staleness
            reference = _shipped_namesake(profile) or profile
            if d["profile_sha256"] != profile_hash(reference):
                return f"fitted on another version of the {profile.name} profile"
    return None


def _shipped_namesake(profile: Any) -> Any:
    """The shipped profile with ``profile``'s name, or None."""
    from traincost.hardware.store import load_shipped_profiles

    return next((p for p in load_shipped_profiles() if p.name == profile.name), None)


def other_calibration(model: ResidualModel, profile: Any) -> str | None:
    """A note when ``profile`` is another calibration of a device the model was fitted on (the user calibrated
    it again): the model applies, its residual was learned on the shipped calibration's analytic times."""
    meta = getattr(model, "metadata_", None) or {}
    for d in meta.get("devices") or []:
        if _same_device(d, profile) and d.get("profile_sha256") and d["profile_sha256"] != profile_hash(profile):
            shipped = _shipped_namesake(profile)
            if shipped is not None and d["profile_sha256"] == profile_hash(shipped):
                return (f"applied to another calibration of {profile.name} than the one it was fitted on "
                        f"(the shipped profile): expect its correction to be less exact")
    return None


def _entry_features(entry: Mapping[str, Any], precision: str) -> dict[str, float] | None:
    feats = entry.get("features") or {}
    return feats.get(precision) or feats.get("fp32")


def proxy_features(model: ResidualModel, device: Any, precision: str) -> tuple[dict[str, float] | None, str]:
    """For a device outside ``model``'s training data: the device features of the training device of the
    same kind with the nearest matmul peak (the residual of an unseen GPU is taken as that of a trained
    GPU: interpolating device features between a CPU and a GPU would mean nothing). (None, why) when the
    model knows no device of that kind; ({}, "") when ``device`` (a profile, or a :func:`device_key` entry)
    is in its training data, or when the model records no devices (then it is applied as it is)."""
    devices = (getattr(model, "metadata_", None) or {}).get("devices") or []
    if not devices or any(_same_device(d, device) for d in devices):
        return {}, ""
    if isinstance(device, Mapping):
        kind = device.get("kind")
        own = float((_entry_features(device, precision) or {}).get("log_matmul_peak_tflops", 0.0))
    else:
        kind = device.kind
        own = device_features(device, precision)["log_matmul_peak_tflops"]
    best, dist = None, math.inf
    for d in devices:
        f = _entry_features(d, precision)
        if d.get("kind") != kind or not f:
            continue
        gap = abs(float(f["log_matmul_peak_tflops"]) - own)
        if gap < dist:
            best, dist = (d, f), gap
    if best is None:
        return None, f"the model was trained on no {kind} device"
    return dict(best[1]), f"residual as on {best[0].get('name')} (nearest trained {kind})"


def _same_device(entry: Mapping[str, Any], device: Any) -> bool:
    if isinstance(device, Mapping):
        return entry.get("name") == device.get("name") and entry.get("kind") == device.get("kind")
    return entry.get("name") == device.name and entry.get("kind") == device.kind


def select_residual(profile: Any, folder: str | os.PathLike[str] | None = None, *,
                    unseen: bool = False) -> tuple[ResidualModel | None, str]:
    """The shipped residual model for ``profile``: one trained on this device only (sidecar ``scope``
    ``device``), else a cross-device one (``scope`` ``cross-device``) with this device in its training data,
    else none. Returns (model or None, the reason in words). A shipped file that cannot be used is skipped
    and named in the reason.

    A GPU in no training data gets no correction unless ``unseen=True`` (then a cross-device model with
    :func:`proxy_features`): a residual corrects the errors of one profile's fitted curves, and another
    device's profile (a datasheet one above all) errs differently. Checked on public ResNet-50 rows: the
    H200's residual applied to datasheet A100/V100 profiles made the error worse, not better. A *calibrated
    CPU* in no training data does get the cross-device model (:func:`unseen_cpu_applies`): measured on two
    CPUs, the residual of one applied to the other's calibrated profile halves the error (Intel Xeon rows
    28.6 -> 13.9 % median with a model of the AMD EPYC and the H200, AMD rows 23.6 -> 13.1 % the other way).
    """
    where = Path(folder) if folder is not None else shipped_dir()
    device_models: list[tuple[Path, str]] = []
    cross_models: list[tuple[Path, str]] = []
    unseen_models: list[tuple[Path, str]] = []
    problems: list[str] = []
    for path in _model_files(where):
        try:
            meta = read_sidecar(path)
        except ResidualModelError as exc:
            problems.append(str(exc))
            continue
        devices = meta.get("devices") or []
        seen = any(_same_device(d, profile) for d in devices)
        names = ", ".join(str(d.get("name")) for d in devices)
        if meta.get("scope") == "cross-device":
            if seen:
                cross_models.append((path, f"cross-device model (trained on {names})"))
            else:
                why = f"cross-device model (trained on {names}); {profile.name} is not in its training data"
                unseen_models.append((path, why))
        elif seen:
            device_models.append((path, "trained on this device"))
    skipped = f" (skipped: {'; '.join(problems)})" if problems else ""
    unseen = unseen or unseen_cpu_applies(profile)
    for chosen in (device_models, cross_models, unseen_models if unseen else []):
        if not chosen:
            continue
        path, why = chosen[0]
        try:
            model = load(path)
        except TraincostError as exc:
            return None, f"analytic only: shipped model {path.name} unusable: {exc}"
        return model, f"{why}{skipped}"
    extra = ("; the cross-device model is not applied to devices outside its training data" if unseen_models
             else "")
    return None, f"analytic only: no residual model trained on {profile.name}{extra}{skipped}"


def analytic_intervals(profile: Any, folder: str | os.PathLike[str] | None = None) -> dict[float, tuple[float, float]]:
    """Interval quantiles of the analytic model alone for ``profile``'s device kind, from the sidecar of a
    shipped cross-device model (``analytic_intervals[kind]``: quantiles of ``log(measured / analytic)`` on
    its training data); {} when none is shipped."""
    where = Path(folder) if folder is not None else shipped_dir()
    for path in _model_files(where):
        try:
            meta = read_sidecar(path)
        except ResidualModelError:
            continue
        table = (meta.get("analytic_intervals") or {}).get(profile.kind)
        if meta.get("scope") == "cross-device" and table:
            return {float(k): (float(v[0]), float(v[1])) for k, v in table.items()}
    return {}


def out_of_range(features: Mapping[str, float], ranges: Mapping[str, tuple[float, float]],
                 margin: float = RANGE_MARGIN) -> list[str]:
    """Features of one row outside their training range widened by ``margin`` of its span (features
    constant in training are skipped: a single-device model's device features)."""
    out = []
    for name, (lo, hi) in ranges.items():
        if name not in features or hi <= lo:
            continue
        pad = margin * (hi - lo)
        v = float(features[name])
        if v < lo - pad or v > hi + pad:
            out.append(name)
    return out


@dataclass(frozen=True)
class IntervalFactors:
    """Multiplicative factors around a point prediction, and why the interval is that wide."""

    low: float
    high: float
    level: float
    widened_by: float
    reasons: tuple[str, ...]


def interval_factors(quantiles: Mapping[float, tuple[float, float]], *, datasheet: bool, out_of_range_features:
                     Sequence[str] = (), level: float = DEFAULT_LEVEL) -> IntervalFactors | None:
    """(low, high) factors ``exp(q)`` for ``level`` from log-residual ``quantiles``, the half-width
    widened by :data:`DATASHEET_WIDEN` for a datasheet profile and :data:`OUT_OF_RANGE_WIDEN` when
    inputs lie outside the training data; ``None`` without quantiles for ``level``."""
    q = quantiles.get(level)
    if q is None:
        return None
    lo, hi = q
    widen = 1.0
    reasons = []
    if datasheet:
        widen *= DATASHEET_WIDEN
        reasons.append("datasheet profile")
    if out_of_range_features:
        widen *= OUT_OF_RANGE_WIDEN
        reasons.append("outside the training data: " + ", ".join(list(out_of_range_features)[:3])
                       + (" ..." if len(out_of_range_features) > 3 else ""))
    mid, half = (lo + hi) / 2, (hi - lo) / 2 * widen
    return IntervalFactors(math.exp(mid - half), math.exp(mid + half), level, widen, tuple(reasons))
