"""The learned correction: a residual model of ``log(measured / analytic)`` over the analytic step.

The analytic model (:mod:`traincost.pricing`) carries the physics; the residual corrects only what it misses
(kernel choice, cache effects, per-op overheads it prices too simply) and gives the interval. Features live in
:mod:`~traincost.correction.features`, the estimator in :mod:`~traincost.correction.estimator`, model files in
:mod:`~traincost.correction.artifacts` and the choice of a model for a device in
:mod:`~traincost.correction.select`; this package re-exports their public names.
"""

from traincost.correction.artifacts import (
    ResidualModelError,
    model_version,
    profile_hash,
    read_sidecar,
    shipped_dir,
    sidecar_path,
)
from traincost.correction.estimator import (
    LEVELS,
    NotFittedError,
    ResidualModel,
    clone,
    conformal_quantiles,
    data_sha256,
    load,
)
from traincost.correction.features import (
    CLASS_GROUPS,
    FEATURES,
    device_features,
    features_frame,
    step_features,
)
from traincost.correction.select import (
    IntervalFactors,
    analytic_intervals,
    interval_factors,
    out_of_range,
    proxy_features,
    select_residual,
    staleness,
)

__all__ = [
    "CLASS_GROUPS", "FEATURES", "LEVELS", "IntervalFactors", "NotFittedError", "ResidualModel", "ResidualModelError",
    "analytic_intervals", "clone", "model_version", "conformal_quantiles", "data_sha256", "device_features",
    "features_frame", "interval_factors", "load", "out_of_range", "profile_hash", "proxy_features", "read_sidecar",
    "select_residual", "shipped_dir", "sidecar_path", "staleness", "step_features",
]
