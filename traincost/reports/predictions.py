"""The predictions an insights report compares with the measured times.

- :func:`add_predictions`: the analytic step time of every row (stored in the dataset, or recomputed with
  today's model through :func:`traincost.predict`) and its error ``log_error`` = ln(measured / analytic).
- :func:`walk_with_fit`: every row walked again by :func:`traincost.sweeps.fit.build_frame` (today's analytic
  time and the residual model's features), :func:`residual_for` the residual model chosen for a device and
  :func:`cross_validated_ms` its leave-one-family-out predictions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from traincost.errors import TraincostError, TraincostUsageError

__all__ = ["Residual", "Walked", "add_predictions", "cross_validated_ms", "profiles_by_device", "residual_for",
           "walk_with_fit"]


def _row_profile(device: Any, profile_name: Any) -> Any:
    """The profile a dataset row names (:func:`traincost.sweeps.fit.resolve_row_profile`: its
    ``profile_name``, else its ``device``), or None when there is none."""
    from traincost.sweeps.fit import resolve_row_profile

    row = {"device": str(device), "profile_name": profile_name if isinstance(profile_name, str) else ""}
    try:
        return resolve_row_profile(row)
    except (TraincostError, ValueError):
        return None


def profiles_by_device(frame: pd.DataFrame) -> dict[str, Any]:
    """Device name -> a profile of that device (its first row's own), to choose the section's residual model
    (absent when there is none)."""
    out: dict[str, Any] = {}
    for device, rows in frame.groupby("device"):
        match = _row_profile(device, rows["profile_name"].iloc[0] if "profile_name" in rows else "")
        if match is not None:
            out[str(device)] = match
    return out


def _recomputed_analytic_ms(frame: pd.DataFrame, progress: Callable[[int, int], None] | None,
                            trust_code: bool = False) -> pd.Series:
    """``traincost.predict``'s iteration time of every row on its device's profile (NaN where it fails, and
    where the row's model is user code and ``trust_code`` is False: it is never imported)."""
    from traincost.api import predict
    from traincost.flopmodel.arch import ArchSpec

    profiles: dict[tuple[str, str], Any] = {}  # (device, profile_name) -> the row's own profile (hosts differ)
    values = np.full(len(frame), np.nan)
    for i, row in enumerate(frame.itertuples(index=False)):
        name = getattr(row, "profile_name", "")
        key = (str(row.device), name if isinstance(name, str) else "")
        if key not in profiles:
            profiles[key] = _row_profile(*key)
        profile = profiles[key]
        if profile is not None:
            try:
                spec = ArchSpec.from_dict(json.loads(row.spec))
                if spec.kind == "factory" and not trust_code:  # a dataset never runs the code it names
                    raise ValueError(f"model {spec.name} is user code")
                est = predict(spec, device=profile, batch_size=int(row.batch_size), precision=row.precision,
                              channels_last=bool(row.channels_last), optimizer=row.optimizer)
                values[i] = est.iteration_ms
            except (TraincostError, ValueError, RuntimeError):
                pass
        if progress is not None:
            progress(i + 1, len(frame))
    return pd.Series(values, index=frame.index)


def add_predictions(frame: pd.DataFrame, *, analytic: str = "recompute", values: pd.Series | None = None,
                    progress: Callable[[int, int], None] | None = None, trust_code: bool = False) -> pd.DataFrame:
    """A copy of ``frame`` with ``analytic_ms`` and ``log_error`` = ln(measured / analytic).

    ``analytic``: ``recompute`` (``traincost.predict`` of every row with today's model: slow, ~0.1 s a row;
    ``values`` when given, computed elsewhere) or ``stored`` (the dataset's ``analytic_ms`` column, the
    prediction at measurement time; NaN where absent). ``trust_code``: recompute rows whose model is user
    code (imports and runs the file or module they name); without it their ``analytic_ms`` is NaN.
    """
    if analytic not in ("recompute", "stored"):
        raise TraincostUsageError(f"analytic must be 'recompute' or 'stored', got {analytic!r}")
    out = frame.copy()
    if values is not None:
        out["analytic_ms"] = np.asarray(values, dtype=float)
    elif analytic == "stored":
        out["analytic_ms"] = out["stored_analytic_ms"]
    else:
        out["analytic_ms"] = _recomputed_analytic_ms(out, progress, trust_code)
    ok = (out["analytic_ms"] > 0) & np.isfinite(out["analytic_ms"])
    out["log_error"] = np.where(ok, np.log(out["measured_ms"] / out["analytic_ms"].where(ok)), np.nan)
    return out


# ----------------------------------------------------------------------------------- residual model


@dataclass
class Residual:
    """The residual model used for one device and why (or why not); ``in_sample`` when it was trained on
    these datasets (None: unknown)."""

    model: Any | None
    reason: str
    in_sample: bool | None = None


@dataclass
class Walked:
    """Every row walked and priced again by :func:`traincost.sweeps.fit.build_frame`, aligned with the
    insights frame: today's ``analytic_ms``, the residual features ``X`` (NaN rows where the walk failed)
    and the fit module's own frame (for cross-validation)."""

    analytic_ms: pd.Series
    X: pd.DataFrame
    fit_frame: Any


def walk_with_fit(frame: pd.DataFrame, paths: Sequence[Path], processes: int,
                   progress: Callable[[int, int], None] | None, trust_code: bool = False) -> Walked | None:
    """Today's analytic time and residual features of every row, from the fit module (one walk a row in
    ``processes`` worker processes); ``None`` when this traincost has no fit module. Rows whose model is
    user code are walked only with ``trust_code`` (:func:`traincost.sweeps.fit.build_frame`)."""
    try:
        from traincost.sweeps.fit import build_frame
    except ImportError:
        return None
    fitted = build_frame(list(paths), processes=processes, progress=progress, trust_code=trust_code)
    slots: dict[tuple[str, str], list[int]] = {}
    for i, (dataset, key) in enumerate(zip(frame["dataset"], frame["config_key"])):
        slots.setdefault((str(dataset), str(key)), []).append(i)
    position = np.full(len(fitted.meta), -1)
    for j, (dataset, key) in enumerate(zip(fitted.meta["dataset"], fitted.meta["config_key"])):
        free = slots.get((str(dataset), str(key)))
        if free:
            position[j] = free.pop(0)
    hit = position >= 0
    analytic = np.full(len(frame), np.nan)
    analytic[position[hit]] = fitted.meta["analytic_ms"].to_numpy(dtype=float)[hit]
    X = pd.DataFrame(np.nan, index=frame.index, columns=fitted.X.columns)
    X.iloc[position[hit]] = fitted.X.to_numpy(dtype=float)[hit]
    fitted.meta = fitted.meta.assign(_row=position)
    return Walked(pd.Series(analytic, index=frame.index), X, fitted)


def _select_residual(profile: Any, residual: str | Path) -> tuple[Any | None, str]:
    """(model or None, reason): ``residual`` = ``"auto"`` (the shipped selection) or a model path."""
    try:
        from traincost import correction
    except ImportError:
        return None, "this traincost has no residual model module (traincost.correction)"
    if str(residual) == "auto":
        return correction.select_residual(profile)
    return correction.load(residual), f"{Path(residual).name}: given with --residual"


def residual_for(profile: Any | None, residual: str | Path | None, walked: Walked | None,
                  paths: Sequence[Path]) -> Residual:
    if residual is None or str(residual) == "none":
        return Residual(None, "not asked for (--residual none)")
    if walked is None:
        return Residual(None, "its features need every row walked again: run without --fast")
    if profile is None:
        return Residual(None, "no device profile for this device, so no residual model can be selected")
    model, reason = _select_residual(profile, residual)
    if model is None:
        return Residual(None, reason)
    trained = {str(d.get("sha256", "")) for d in (getattr(model, "metadata_", {}) or {}).get("datasets") or []
               if isinstance(d, dict)}
    mine = {hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
    return Residual(model, reason, bool(trained & mine) if trained else None)


def cross_validated_ms(walked: Walked, n_rows: int, params: dict[str, Any] | None) -> np.ndarray | None:
    """Leave-one-family-out corrected predictions (``fit.evaluate``: each family predicted by a model with the
    hyperparameters ``params`` trained on the other families) aligned with the insights frame; ``None`` when
    the fit module refuses (one family)."""
    from traincost.sweeps.fit import FitError, evaluate

    try:
        _, corrected = evaluate(walked.fit_frame, "family", params=params)
    except FitError:
        return None
    out = np.full(n_rows, np.nan)
    rows = walked.fit_frame.meta["_row"].to_numpy()
    out[rows[rows >= 0]] = np.asarray(corrected, dtype=float)[rows >= 0]
    return out
