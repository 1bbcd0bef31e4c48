"""The learned correction: an XGBoost model of ``log(measured / analytic)`` step time (DESIGN.md).

The analytic model (:mod:`traincost.predict`) carries the physics; this residual only corrects what it
misses (kernel choice, cache effects, per-op overheads it prices too simply). Pieces:

* :func:`step_features` -- the features of one priced training step (:data:`FEATURES`, in order): the
  walk's work by op class and phase (log1p of FLOPs and bytes), op counts, parameters and activation
  bytes, the analytic components (compute-, memory- and exposed-host time, and each op group's share of
  device time), the step configuration (batch, precision, memory format, optimizer) and the device
  (kind, matmul peak, memory bandwidth, dispatch and launch overheads, calibrated or datasheet), so one
  model can serve several devices.
* :class:`ResidualModel` -- a scikit-learn style estimator (``__init__`` stores hyperparameters, ``fit``
  returns self, learned state ends in ``_``); :meth:`ResidualModel.save` writes XGBoost JSON plus a
  sidecar ``<stem>.meta.json`` (schema version, feature names, package version, training-data hash,
  devices, interval quantiles, training feature ranges); :func:`load` checks them.
* :func:`select_residual` -- the shipped model for a device profile (``traincost/data/residual/``):
  device-specific, else cross-device, else none, with the reason.
* :func:`interval_factors` -- the prediction interval as multiplicative factors (split-conformal
  quantiles of cross-validated log residuals, widened for datasheet profiles and out-of-range inputs).

xgboost is imported only by the functions that need it: ``import traincost`` works without it.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from traincost.errors import TraincostError, TraincostUsageError

SCHEMA_VERSION = 1
_KIND = "traincost-residual"

#: Op classes of the walk (``OpRecord.op_class``) -> the feature group they are counted in (None: free).
CLASS_GROUPS: dict[str, str | None] = {
    "matmul": "matmul", "attention": "matmul", "conv": "conv", "norm": "norm", "pool": "pool",
    "elementwise": "elementwise", "softmax": "elementwise", "loss": "elementwise", "copy": "elementwise",
    "embedding": "elementwise", "unpriced": "elementwise", "reduction": "reduction", "optimizer": "optimizer",
    "free": None,
}
GROUPS = ("matmul", "conv", "norm", "pool", "elementwise", "reduction", "optimizer")
PRECISIONS = ("fp32", "tf32", "bf16", "fp16")

#: Per-op regimes (:func:`regime_features`): newly allocated output bytes (all, and those of at least 32 MiB
#: that a CPU maps afresh), elements drawn by random ops (dropout masks), the analytic step's share spent in
#: thin convolutions (min(C_in, C_out) / groups < :data:`THIN_CHANNELS`), in convolutions on small maps
#: (H_out x W_out <= :data:`SMALL_MAP_POSITIONS`) and in skinny GEMMs (min(M, N, K) < :data:`SKINNY_GEMM`),
#: and the number of parameter tensors (per-tensor loops of the optimizer and of autograd).
REGIME_FEATURES = ("log_alloc_bytes", "log_alloc_large_bytes", "log_rng_elements", "share_conv_thin",
                   "share_conv_smallmap", "share_mm_skinny", "log_param_tensors")
THIN_CHANNELS = 16
SMALL_MAP_POSITIONS = 16
SKINNY_GEMM = 64
_RNG_OPS = ("bernoulli_", "bernoulli", "native_dropout", "rand", "rand_like", "randn", "uniform_", "normal_")

#: The feature names, in the order of the model's columns. Sizes are ``log1p`` of FLOPs, bytes or counts;
#: times ``log`` of milliseconds; shares are fractions of the analytic step or of its device time.
FEATURES: tuple[str, ...] = (
    # the analytic prediction and its components
    "log_analytic_ms", "log_compute_ms", "log_memory_ms", "log_exposed_host_ms",
    "share_compute", "share_memory", "share_host",
    # device time share of each op group (analytic)
    *(f"share_dev_{g}" for g in GROUPS),
    # work by op group and phase
    "log_flops_matmul", "log_flops_conv",
    *(f"log_bytes_{g}" for g in GROUPS),
    "log_flops_forward", "log_flops_backward", "log_bytes_forward", "log_bytes_backward",
    "log_ops", "log_kernels", "log_bytes_per_kernel", "log_params", "log_activation_bytes", "log_peak_bytes",
    # regimes the curves price least well, op by op (see :func:`regime_features`)
    *REGIME_FEATURES,
    # the step configuration
    "log_batch", *(f"precision_{p}" for p in PRECISIONS), "channels_last", "optimizer_adam",
    # the device
    "device_cuda", "device_datasheet", "log_matmul_peak_tflops", "log_memory_gb_per_s",
    "log_dispatch_us", "log_launch_us",
)

#: Interval levels stored with a model (two-sided); ``predict`` reports :data:`DEFAULT_LEVEL`.
LEVELS = (0.8, 0.9)
DEFAULT_LEVEL = 0.8
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


class ResidualModelError(TraincostUsageError):
    """A residual model file that cannot be used (missing, another schema, other features, damaged)."""


class NotFittedError(TraincostError, AttributeError):
    """A :class:`ResidualModel` used before ``fit`` (or ``load``)."""


# ------------------------------------------------------------------------------------------ features


def _log1p(x: float) -> float:
    return math.log1p(max(float(x), 0.0))


def _log_ms(x_ms: float) -> float:
    return math.log(max(float(x_ms), 1e-6))


def _matmul_mode(precision: str) -> str:
    return precision if precision in PRECISIONS else "fp32"


def device_features(profile: Any, precision: str) -> dict[str, float]:
    """The device part of the features (a :class:`~traincost.devices.DeviceProfile`)."""
    curve = profile.compute_curve("matmul", _matmul_mode(precision))
    if curve is None:
        curve = profile.compute_curve("matmul", "fp32")
    peak = float(curve.peak) if curve is not None else 0.0
    return {
        "device_cuda": float(profile.kind == "cuda"),
        "device_datasheet": float(profile.source == "datasheet"),
        "log_matmul_peak_tflops": math.log(max(peak / 1e12, 1e-6)),
        "log_memory_gb_per_s": math.log(max(float(profile.memory.peak) / 1e9, 1e-6)),
        "log_dispatch_us": _log1p(float(profile.dispatch_s) * 1e6),
        "log_launch_us": _log1p(float(profile.launch_s) * 1e6),
    }


def step_features(walk: Any, pricing: Any, profile: Any, *, precision: str, channels_last: bool,
                  optimizer: str, batch_size: int) -> dict[str, float]:
    """The :data:`FEATURES` of one walked step (``traincost.count(...).walk``) priced on ``profile``.

    ``pricing``: :func:`traincost.predict.price` of the walk's op table (one entry per record, same order).
    """
    records = walk.records
    n = len(records)
    device_s = np.asarray(pricing.device_s, dtype=float)
    if len(device_s) != n:
        raise TraincostError(f"pricing has {len(device_s)} ops, the walk {n}: not the same step")
    step_ms = float(pricing.timeline.step_s) * 1e3
    compute_ms = float(np.sum(pricing.compute_s)) * 1e3
    memory_ms = float(np.sum(pricing.memory_s)) * 1e3
    host_ms = float(np.sum(pricing.timeline.exposed_host_s)) * 1e3
    total = max(compute_ms + memory_ms + host_ms, 1e-12)
    group_flops = dict.fromkeys(GROUPS, 0.0)
    group_bytes = dict.fromkeys(GROUPS, 0.0)
    group_dev = dict.fromkeys(GROUPS, 0.0)
    phase_flops = {"forward": 0.0, "backward": 0.0}
    phase_bytes = {"forward": 0.0, "backward": 0.0}
    kernels = 0
    kernel_bytes = 0.0
    for i, r in enumerate(records):
        g = CLASS_GROUPS.get(r.op_class, "elementwise")
        nbytes = float(r.bytes_read + r.bytes_written)
        if r.phase in phase_flops:
            phase_flops[r.phase] += r.flops
            phase_bytes[r.phase] += nbytes
        if g is None:
            continue
        group_flops[g] += r.flops
        group_bytes[g] += nbytes
        group_dev[g] += device_s[i]
        if device_s[i] > 0:
            kernels += 1
            kernel_bytes += nbytes
    dev_total = max(sum(group_dev.values()), 1e-30)
    out: dict[str, float] = {
        "log_analytic_ms": _log_ms(step_ms), "log_compute_ms": _log_ms(compute_ms),
        "log_memory_ms": _log_ms(memory_ms), "log_exposed_host_ms": _log_ms(host_ms),
        "share_compute": compute_ms / total, "share_memory": memory_ms / total, "share_host": host_ms / total,
    }
    out.update({f"share_dev_{g}": group_dev[g] / dev_total for g in GROUPS})
    out["log_flops_matmul"] = _log1p(group_flops["matmul"])
    out["log_flops_conv"] = _log1p(group_flops["conv"])
    out.update({f"log_bytes_{g}": _log1p(group_bytes[g]) for g in GROUPS})
    out.update({"log_flops_forward": _log1p(phase_flops["forward"]),
                "log_flops_backward": _log1p(phase_flops["backward"]),
                "log_bytes_forward": _log1p(phase_bytes["forward"]),
                "log_bytes_backward": _log1p(phase_bytes["backward"])})
    out.update(regime_features(records, device_s, step_ms / 1e3))
    memory = walk.memory
    out.update({
        "log_ops": _log1p(n), "log_kernels": _log1p(kernels),
        "log_bytes_per_kernel": _log1p(kernel_bytes / max(kernels, 1)),
        "log_params": _log1p(walk.params), "log_activation_bytes": _log1p(memory.saved_activations_bytes),
        "log_peak_bytes": _log1p(memory.peak_bytes),
        "log_batch": math.log(max(int(batch_size), 1)),
    })
    out.update({f"precision_{p}": float(precision == p) for p in PRECISIONS})
    out["channels_last"] = float(bool(channels_last))
    out["optimizer_adam"] = float(optimizer in ("adam", "adamw"))
    out.update(device_features(profile, precision))
    return {name: float(out[name]) for name in FEATURES}


def regime_features(records: Sequence[Any], device_s: Sequence[float], step_s: float) -> dict[str, float]:
    """The :data:`REGIME_FEATURES` of a walk's records priced at ``device_s`` (seconds per record) in an
    analytic step of ``step_s`` seconds."""
    from traincost.predict import conv_depths, fresh_output_bytes, gemm_min_dim

    alloc = alloc_large = rng = thin = smallmap = skinny = 0.0
    tensors = 0
    for r, dev in zip(records, device_s):
        if r.op_class == "free" or r.host_only:
            continue
        name = r.op.removeprefix("aten.").split(".")[0]
        alloc += fresh_output_bytes(r, 1)
        alloc_large += fresh_output_bytes(r)
        if name in _RNG_OPS:
            rng += float(math.prod(r.output_shapes[0]) if r.output_shapes else
                         math.prod(r.input_shapes[0]) if r.input_shapes else 0)
        if r.op_class == "optimizer":
            tensors = max(tensors, int(r.n_tensors))
        elif r.op_class == "conv":
            d = conv_depths(r.op, r.input_shapes, r.output_shapes)
            batch = (r.input_shapes[0][0] if r.input_shapes and r.input_shapes[0] else 0) or 1
            if 0 < d["min_channels"] < THIN_CHANNELS:
                thin += dev
            if 0 < d["positions"] / batch <= SMALL_MAP_POSITIONS:
                smallmap += dev
        elif r.op_class == "matmul" and 0 < gemm_min_dim(r.op, r.input_shapes) < SKINNY_GEMM:
            skinny += dev
    step = max(float(step_s), 1e-30)
    return {"log_alloc_bytes": _log1p(alloc), "log_alloc_large_bytes": _log1p(alloc_large),
            "log_rng_elements": _log1p(rng), "share_conv_thin": thin / step, "share_conv_smallmap": smallmap / step,
            "share_mm_skinny": skinny / step, "log_param_tensors": _log1p(tensors)}


def features_frame(rows: Sequence[Mapping[str, float]]) -> pd.DataFrame:
    """Rows of :func:`step_features` as a frame with the :data:`FEATURES` columns, in order."""
    return pd.DataFrame([[float(r[name]) for name in FEATURES] for r in rows], columns=list(FEATURES),
                        dtype=float)


@functools.lru_cache(maxsize=64)
def _code_fingerprint(path: str, _mtime_ns: int) -> str:
    """sha256 of a module's syntax tree without docstrings (comments and layout never reach the tree)."""
    import ast

    text = Path(path).read_text(encoding="utf-8")
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return hashlib.sha256(text.encode()).hexdigest()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            body[0] = ast.Pass()
    return hashlib.sha256(ast.dump(tree).encode()).hexdigest()


def code_version() -> str:
    """A hash of the code that computes the features and the analytic time: the walk (``flopmodel/``), the
    predictor's pricing (``predict.py``, ``devices.py``), this module, and the feature names; comments,
    docstrings and layout do not count. A residual fitted under another version corrects another analytic
    model (``predict`` says so)."""
    import traincost

    root = Path(traincost.__file__).parent
    h = hashlib.sha256(json.dumps(list(FEATURES)).encode())
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] != "flopmodel" and str(rel) not in ("predict.py", "devices.py", "correction.py"):
            continue
        h.update(str(rel).encode())
        h.update(_code_fingerprint(str(path), path.stat().st_mtime_ns).encode())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------------ estimator


def _xgboost() -> Any:
    try:
        import xgboost
    except ImportError:  # pragma: no cover - depends on the environment
        raise TraincostError("the learned correction needs xgboost: pip install 'traincost[learn]'") from None
    return xgboost


def _as_frame(X: Any, names: Sequence[str] | None = None) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    arr = np.asarray(X, dtype=float)
    if arr.ndim != 2:
        raise TraincostUsageError(f"X must be 2-dimensional (rows x features), got shape {arr.shape}")
    cols = list(names) if names is not None and len(names) == arr.shape[1] else [f"f{i}" for i in range(arr.shape[1])]
    return pd.DataFrame(arr, columns=cols)


def data_sha256(X: pd.DataFrame, y: np.ndarray | None = None) -> str:
    """A hash of a training set: the column names, the values as float64 bytes, and the target."""
    h = hashlib.sha256()
    h.update(json.dumps(list(map(str, X.columns))).encode())
    h.update(np.ascontiguousarray(X.to_numpy(dtype=np.float64)).tobytes())
    if y is not None:
        h.update(np.ascontiguousarray(np.asarray(y, dtype=np.float64)).tobytes())
    return h.hexdigest()


class ResidualModel:
    """Gradient-boosted trees (XGBoost) on ``log(measured / analytic)``; scikit-learn contract.

    Hyperparameters (stored as given by ``__init__``): the XGBoost ones below; ``n_jobs`` threads.
    Learned state: ``booster_``, ``feature_names_``, ``n_features_in_``, ``feature_ranges_`` (training
    min/max per feature, for the out-of-range check), ``training_sha256_``, ``n_train_``; after
    :meth:`set_intervals`, ``intervals_`` (level -> (low, high) log-residual quantiles); ``metadata_``
    (devices, datasets, cross-validation summary) as set by :func:`traincost.calibrate.fit.fit_model`.

    The default ``objective`` is the absolute error of the log residual: the trees fit its conditional
    median, the statistic the accuracy targets are judged by (median APE), and one bad run of a noisy
    sweep pulls a leaf less than under squared error. Measured against ``reg:squarederror`` (leave one
    family out; the CPUs over six seeds of the subsampling, the H200 at seed 0): AMD EPYC 10.93 -> 10.41 %,
    Intel Xeon 10.24 -> 8.67 %, H200 14.9 -> 14.7 % (NOTES.md, "Sessions 10-11").

    ``num_parallel_tree`` = 4: each boosting round grows four trees on different row / column subsamples and
    averages them (bagged boosting; still one XGBoost booster), so one subsample seed moves a prediction
    less. Chosen on the Intel Xeon and the H200 (leave one family out, three seeds: 8.84 -> 8.47 %,
    14.64 -> 14.39 %), then read off the AMD EPYC (six seeds: 10.41 -> 10.27 %, sd 0.39 -> 0.13;
    NOTES.md, "Session 14").
    """

    def __init__(self, n_estimators: int = 300, max_depth: int = 3, learning_rate: float = 0.05,
                 subsample: float = 0.8, colsample_bytree: float = 0.8, min_child_weight: float = 5.0,
                 reg_lambda: float = 1.0, objective: str = "reg:absoluteerror", random_state: int = 0,
                 n_jobs: int = 1, num_parallel_tree: int = 4) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.min_child_weight = min_child_weight
        self.reg_lambda = reg_lambda
        self.objective = objective
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.num_parallel_tree = num_parallel_tree

    # ---- scikit-learn's parameter protocol

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The hyperparameters as given to ``__init__`` (``deep`` is accepted for scikit-learn)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> ResidualModel:
        """Set hyperparameters; a usage error naming an unknown one. Returns self."""
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise TraincostUsageError(f"unknown ResidualModel parameter {name!r}; valid: {', '.join(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = ResidualModel().get_params()
        changed = {k: v for k, v in self.get_params().items() if v != defaults.get(k)}
        return f"ResidualModel({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    def _xgb_params(self) -> dict[str, Any]:
        return {"objective": self.objective, "max_depth": int(self.max_depth), "eta": float(self.learning_rate),
                "subsample": float(self.subsample), "colsample_bytree": float(self.colsample_bytree),
                "min_child_weight": float(self.min_child_weight), "lambda": float(self.reg_lambda),
                "seed": int(self.random_state), "nthread": int(self.n_jobs), "tree_method": "hist",
                "num_parallel_tree": int(self.num_parallel_tree),
                "verbosity": 0}

    # ---- fit / predict

    def fit(self, X: Any, y: Any) -> ResidualModel:
        """Fit on features ``X`` (a frame; its columns become ``feature_names_``) and targets ``y``
        (``log(measured / analytic)``). Returns self."""
        xgb = _xgboost()
        frame = _as_frame(X)
        target = np.asarray(y, dtype=float).ravel()
        if len(frame) != len(target):
            raise TraincostUsageError(f"X has {len(frame)} rows but y has {len(target)}")
        if len(frame) < 2:
            raise TraincostUsageError(f"fitting needs at least 2 rows, got {len(frame)}")
        if not np.all(np.isfinite(target)):
            raise TraincostUsageError("y has non-finite values (log of a non-positive time?)")
        values = frame.to_numpy(dtype=float)
        if not np.all(np.isfinite(values)):
            bad = [c for c, ok in zip(frame.columns, np.isfinite(values).all(axis=0)) if not ok]
            raise TraincostUsageError(f"X has non-finite values in {', '.join(map(str, bad[:5]))}")
        names = [str(c) for c in frame.columns]
        dtrain = xgb.DMatrix(values, label=target, feature_names=names)
        self.booster_ = xgb.train(self._xgb_params(), dtrain, num_boost_round=int(self.n_estimators))
        self.feature_names_ = names
        self.n_features_in_ = len(names)
        self.feature_ranges_ = {c: (float(values[:, j].min()), float(values[:, j].max())) for j, c in enumerate(names)}
        self.training_sha256_ = data_sha256(frame, target)
        self.n_train_ = len(frame)
        self.intervals_: dict[float, tuple[float, float]] = {}
        self.metadata_: dict[str, Any] = {}
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "booster_"):
            raise NotFittedError("this ResidualModel is not fitted yet: call fit(X, y) or load a saved model")

    def _matrix(self, X: Any) -> Any:
        self._check_fitted()
        frame = _as_frame(X, self.feature_names_)
        missing = [c for c in self.feature_names_ if c not in frame.columns]
        if missing:
            raise TraincostUsageError(f"X lacks the model's features {', '.join(missing[:5])}"
                                      f"{' ...' if len(missing) > 5 else ''}")
        values = frame[self.feature_names_].to_numpy(dtype=float)
        return _xgboost().DMatrix(values, feature_names=list(self.feature_names_))

    def predict(self, X: Any) -> np.ndarray:
        """Predicted ``log(measured / analytic)`` per row of ``X`` (columns matched by name)."""
        self._check_fitted()
        return np.asarray(self.booster_.predict(self._matrix(X)), dtype=float)

    def contributions(self, X: Any) -> pd.DataFrame:
        """Per-row SHAP contributions (XGBoost ``pred_contribs``): one column per feature plus ``bias``;
        each row sums to :meth:`predict`."""
        self._check_fitted()
        contribs = self.booster_.predict(self._matrix(X), pred_contribs=True)
        return pd.DataFrame(np.asarray(contribs, dtype=float), columns=[*self.feature_names_, "bias"],
                            index=X.index if isinstance(X, pd.DataFrame) else None)

    @property
    def feature_importances_(self) -> np.ndarray:
        """Total gain per feature, normalised to sum to 1 (0 for features never split on)."""
        self._check_fitted()
        gain = self.booster_.get_score(importance_type="total_gain")
        values = np.array([float(gain.get(c, 0.0)) for c in self.feature_names_])
        total = values.sum()
        return values / total if total > 0 else values

    # ---- intervals

    def set_intervals(self, log_residuals: Any, levels: Sequence[float] = LEVELS) -> ResidualModel:
        """Store split-conformal quantiles (:func:`conformal_quantiles`) of cross-validated residuals
        ``log(measured) - log(corrected prediction)`` for each two-sided ``level``. Returns self."""
        self._check_fitted()
        self.intervals_ = {float(lv): conformal_quantiles(log_residuals, lv) for lv in levels}
        return self

    # ---- persistence

    def save(self, path: str | os.PathLike[str], *, metadata: Mapping[str, Any] | None = None) -> Path:
        """Write the booster as XGBoost JSON to ``path`` and the sidecar ``<stem>.meta.json`` next to it."""
        self._check_fitted()
        path = Path(path)
        if path.suffix != ".json":
            raise TraincostUsageError(f"a residual model is saved as .json, got {str(path)!r}")
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.json")
        self.booster_.save_model(str(tmp))
        os.replace(tmp, path)
        meta = dict(self.metadata_)
        meta.update(metadata or {})
        sidecar = {
            "schema_version": SCHEMA_VERSION, "kind": _KIND, "package_version": _package_version(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "model_file": path.name, "model_sha256": _file_sha256(path),
            "feature_names": list(self.feature_names_), "hyperparameters": self.get_params(),
            "training_data_sha256": self.training_sha256_, "training_rows": self.n_train_,
            "feature_ranges": {k: list(v) for k, v in self.feature_ranges_.items()},
            "intervals": {f"{lv:g}": list(q) for lv, q in sorted(self.intervals_.items())},
            **meta,
        }
        meta_path = sidecar_path(path)
        meta_tmp = meta_path.with_name(f".{meta_path.name}.tmp-{os.getpid()}")
        meta_tmp.write_text(json.dumps(sidecar, indent=1, sort_keys=False) + "\n", encoding="utf-8")
        os.replace(meta_tmp, meta_path)
        return path


def clone(estimator: ResidualModel) -> ResidualModel:
    """A new unfitted estimator with the same hyperparameters (``sklearn.base.clone`` without sklearn)."""
    return type(estimator)(**estimator.get_params(deep=False))


def conformal_quantiles(log_residuals: Any, level: float) -> tuple[float, float]:
    """Split-conformal two-sided quantiles (low, high) of ``log_residuals`` for coverage ``level``.

    With ``n`` sorted residuals and ``a = (1 - level) / 2``: high = the ``ceil((n + 1)(1 - a))``-th
    smallest, low = the ``floor((n + 1) a)``-th smallest (1-based, clipped to 1..n): the finite-sample
    split-conformal rule, each tail holding at most ``a`` of future residuals when exchangeable.
    """
    r = np.sort(np.asarray(log_residuals, dtype=float).ravel())
    r = r[np.isfinite(r)]
    n = len(r)
    if n == 0:
        raise TraincostUsageError("conformal quantiles need at least one residual")
    if not 0 < level < 1:
        raise TraincostUsageError(f"level must be in (0, 1), got {level}")
    a = (1 - level) / 2
    k_hi = min(max(math.ceil((n + 1) * (1 - a) - 1e-9), 1), n)  # 1e-9: (1 - 0.8) / 2 is 0.0999...
    k_lo = min(max(math.floor((n + 1) * a + 1e-9), 1), n)
    return float(r[k_lo - 1]), float(r[k_hi - 1])


# ------------------------------------------------------------------------------------------ files


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """``model.json`` -> ``model.meta.json``."""
    path = Path(path)
    return path.with_name(path.stem + ".meta.json")


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _package_version() -> str:
    try:
        from traincost import __version__

        return str(__version__)
    except Exception:  # pragma: no cover
        return ""


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


def load(path: str | os.PathLike[str]) -> ResidualModel:
    """A fitted :class:`ResidualModel` from ``path`` and its sidecar (checked by :func:`read_sidecar`)."""
    path = Path(path)
    meta = read_sidecar(path)
    st = path.stat()
    return _load_cached(str(path.resolve()), st.st_mtime_ns, st.st_size, json.dumps(meta, sort_keys=True))


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, _mtime_ns: int, _size: int, meta_text: str) -> ResidualModel:
    xgb = _xgboost()
    meta = json.loads(meta_text)
    params = {k: v for k, v in (meta.get("hyperparameters") or {}).items() if k in ResidualModel._param_names()}
    model = ResidualModel(**params)
    booster = xgb.Booster()
    try:
        booster.load_model(path)
    except Exception as exc:  # xgboost raises its own XGBoostError
        raise ResidualModelError(f"{path}: not a readable XGBoost model "
                                 f"({(str(exc).splitlines() or [''])[0][:120]})") from None
    names = list(meta["feature_names"])
    if booster.feature_names is not None and list(booster.feature_names) != names:
        raise ResidualModelError(f"{path}: the booster's features differ from its sidecar's")
    model.booster_ = booster
    model.feature_names_ = names
    model.n_features_in_ = len(names)
    model.feature_ranges_ = {k: (float(v[0]), float(v[1])) for k, v in (meta.get("feature_ranges") or {}).items()}
    model.training_sha256_ = str(meta.get("training_data_sha256", ""))
    model.n_train_ = int(meta.get("training_rows", 0))
    model.intervals_ = {float(k): (float(v[0]), float(v[1])) for k, v in (meta.get("intervals") or {}).items()}
    skip = {"schema_version", "kind", "model_file", "model_sha256", "feature_names", "hyperparameters",
            "training_data_sha256", "training_rows", "feature_ranges", "intervals"}
    model.metadata_ = {k: v for k, v in meta.items() if k not in skip}
    model.metadata_["path"] = path
    return model


# ------------------------------------------------------------------------------------------ shipped models


def shipped_dir() -> Path:
    """``traincost/data/residual`` inside the installed package."""
    return Path(str(resources.files("traincost") / "data" / "residual"))


def _model_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.json") if not p.name.endswith(".meta.json"))


def profile_hash(profile: Any) -> str:
    """A hash of everything in a device profile (its JSON)."""
    return hashlib.sha256(json.dumps(profile.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:16]


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
    trained = meta.get("code_version")
    if trained and trained != code_version():
        return "fitted with another version of the analytic model's code"
    for d in meta.get("devices") or []:
        if _same_device(d, profile) and d.get("profile_sha256") and d["profile_sha256"] != profile_hash(profile):
            return f"fitted on another version of the {profile.name} profile"
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


# ------------------------------------------------------------------------------------------ intervals


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


__all__ = [
    "CLASS_GROUPS",
    "FEATURES",
    "LEVELS",
    "IntervalFactors",
    "NotFittedError",
    "ResidualModel",
    "ResidualModelError",
    "analytic_intervals",
    "clone",
    "code_version",
    "conformal_quantiles",
    "data_sha256",
    "device_features",
    "features_frame",
    "interval_factors",
    "load",
    "out_of_range",
    "profile_hash",
    "proxy_features",
    "read_sidecar",
    "select_residual",
    "shipped_dir",
    "sidecar_path",
    "staleness",
    "step_features",
]
