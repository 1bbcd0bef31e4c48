"""A measured dataset as one numeric frame for ``traincost insights``.

:func:`load_frame` reads the ``ok`` rows of :mod:`traincost.sweeps.bench` CSVs (either schema): the measured
step time (``measured_ms``), the family parameters from the spec JSON (lists such as ResNet's ``blocks``
become their total and a ``stages`` count, booleans 0/1, ``block`` a ``bottleneck`` indicator), the step
configuration (``batch_size``, ``low_precision`` = bf16/fp16 autocast, ``channels_last``, ``adam`` =
adam/adamw) and the walk's counted features (FLOPs, bytes, ops, parameters, peak memory).
:func:`feature_kinds` sorts its columns into counted, step and architecture features.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from traincost.errors import TraincostUsageError

__all__ = ["COUNTED_FEATURES", "STEP_FEATURES", "feature_kinds", "load_frame"]

#: The walk's counted features (dataset columns, plus derived totals), in display order.
COUNTED_FEATURES = ["flops_total", "flops_forward", "flops_backward", "flops_optimizer", "bytes_total",
                    "bytes_read", "bytes_written", "flops_per_byte", "ops", "params", "predicted_peak_bytes"]
#: The step configuration as numbers.
STEP_FEATURES = ["batch_size", "low_precision", "channels_last", "adam"]
_NUMERIC_COLUMNS = ["median_ms", "analytic_ms", "batch_size", "params", "flops_forward", "flops_backward",
                    "flops_optimizer", "bytes_read", "bytes_written", "ops", "predicted_peak_bytes",
                    "measured_peak_bytes"]
#: Columns of the frame that are not features.
_META = {"dataset", "config_key", "corrected_cv_ms", "device", "family", "sweep", "spec", "precision", "optimizer",
         "profile_name", "measured_ms", "stored_analytic_ms", "analytic_ms", "corrected_ms", "log_error"}


def _spec_features(spec_json: str) -> tuple[str, dict[str, float]]:
    """(family, numeric family parameters) of one ``spec`` cell; ``("", {})`` when unreadable."""
    try:
        spec = json.loads(spec_json)
        family = str(spec.get("model", ""))
        params = spec.get("params") or {}
    except (json.JSONDecodeError, AttributeError, TypeError):
        return "", {}
    out: dict[str, float] = {}
    for name, value in params.items():
        if isinstance(value, (int, float)):  # bools too: 0/1
            out[name] = float(value)
        elif isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value):
            out[name] = float(sum(value))  # resnet blocks per stage -> residual blocks in all
            out["stages"] = float(len(value))
        elif name == "block" and isinstance(value, str):
            out["bottleneck"] = float(value == "bottleneck")
    return family, out


def load_frame(paths: Sequence[str | Path]) -> pd.DataFrame:
    """The ``ok`` rows of dataset CSVs (bench schema or the precursor's columns) as one numeric frame.

    Columns: ``dataset`` (file name), ``config_key``, ``device``, ``family``, ``sweep``, ``spec``, ``measured_ms`` (median step),
    ``stored_analytic_ms`` (the analytic prediction at measurement time; NaN when the file has none),
    :data:`STEP_FEATURES`, :data:`COUNTED_FEATURES` and the family parameters. Raises
    :class:`~traincost.errors.TraincostUsageError` (via ``read_dataset``) for a missing or foreign file and
    when no row is ``ok`` with a positive time.
    """
    from traincost.sweeps.bench import STATUS_OK, read_dataset

    if not paths:
        raise TraincostUsageError("insights needs at least one dataset (--dataset FILE.csv)")
    records: list[dict[str, Any]] = []
    for path in paths:
        rows = read_dataset(path)
        kept = 0
        for row in rows:
            if row["status"] != STATUS_OK:
                continue
            family, params = _spec_features(row["spec"])
            rec: dict[str, Any] = {"dataset": Path(path).name, "config_key": row["config_key"],
                                   "device": row["device"] or "unknown",
                                   "family": row["family"] or family, "sweep": row["sweep"], "spec": row["spec"],
                                   "precision": row["precision"], "optimizer": row["optimizer"],
                                   "channels_last": float(row["channels_last"].strip().lower() == "true"),
                                   "profile_name": row["profile_name"]}
            for col in _NUMERIC_COLUMNS:
                rec[col] = pd.to_numeric(row[col], errors="coerce")
            rec.update(params)
            records.append(rec)
            kept += 1
        if kept == 0:
            raise TraincostUsageError(f"{path}: no 'ok' rows to analyse ({len(rows)} rows in all)")
    frame = pd.DataFrame.from_records(records)
    frame = frame.rename(columns={"median_ms": "measured_ms", "analytic_ms": "stored_analytic_ms"})
    frame = frame[np.isfinite(frame["measured_ms"]) & (frame["measured_ms"] > 0)].reset_index(drop=True)
    if frame.empty:
        raise TraincostUsageError("no 'ok' row with a positive measured time in " + ", ".join(map(str, paths)))
    frame["low_precision"] = frame["precision"].isin(["bf16", "fp16"]).astype(float)
    frame["adam"] = frame["optimizer"].isin(["adam", "adamw"]).astype(float)
    frame["flops_total"] = frame["flops_forward"] + frame["flops_backward"] + frame["flops_optimizer"]
    frame["bytes_total"] = frame["bytes_read"] + frame["bytes_written"]
    frame["flops_per_byte"] = frame["flops_total"] / frame["bytes_total"].where(frame["bytes_total"] > 0)
    frame = frame.drop(columns=["measured_peak_bytes"])
    return frame


def feature_kinds(frame: pd.DataFrame) -> dict[str, str]:
    """Feature column -> ``counted``, ``step`` or ``architecture`` (family parameters), in display order."""
    kinds = {c: "counted" for c in COUNTED_FEATURES if c in frame}
    kinds.update({c: "step" for c in STEP_FEATURES if c in frame})
    for col in frame.columns:
        if col not in kinds and col not in _META and pd.api.types.is_numeric_dtype(frame[col]):
            kinds[col] = "architecture"
    return kinds
