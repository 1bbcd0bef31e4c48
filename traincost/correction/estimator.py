"""The residual estimator: XGBoost on ``log(measured / analytic)`` with the scikit-learn contract
(``fit``, ``predict``, ``get_params``/``set_params``), split-conformal interval quantiles, save and load.

xgboost is imported only by the functions that need it: ``import traincost`` works without it.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import inspect
import json
import math
import os
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from traincost.correction.artifacts import (
    _KIND,
    MODEL_SUFFIXES,
    SCHEMA_VERSION,
    ResidualModelError,
    _file_sha256,
    _package_version,
    read_sidecar,
    sidecar_path,
)
from traincost.errors import TraincostError, TraincostUsageError

#: Interval levels stored with a model (two-sided); ``predict`` reports :data:`DEFAULT_LEVEL`.
LEVELS = (0.8, 0.9)


DEFAULT_LEVEL = 0.8


class NotFittedError(TraincostError, AttributeError):
    """A :class:`ResidualModel` used before ``fit`` (or ``load``)."""


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
    (devices, datasets, cross-validation summary) as set by :func:`traincost.sweeps.fit.fit_model`.

    The default ``objective`` is the absolute error of the log residual: the trees fit its conditional
    median, the statistic the accuracy targets are judged by (median APE), and one bad run of a noisy
    sweep pulls a leaf less than under squared error. Measured against ``reg:squarederror`` (leave one
    family out; the CPUs over six seeds of the subsampling, the H200 at seed 0): AMD EPYC 10.93 -> 10.41 %,
    Intel Xeon 10.24 -> 8.67 %, H200 14.9 -> 14.7 % (``python benchmarks/residual.py``).

    ``num_parallel_tree`` = 4: each boosting round grows four trees on different row / column subsamples and
    averages them (bagged boosting; still one XGBoost booster), so one subsample seed moves a prediction
    less. Chosen on the Intel Xeon and the H200 (leave one family out, three seeds: 8.84 -> 8.47 %,
    14.64 -> 14.39 %), then read off the AMD EPYC (six seeds: 10.41 -> 10.27 %, sd 0.39 -> 0.13;
    ``python benchmarks/residual.py``).
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
        """Write the booster to ``path`` as XGBoost JSON (``.json``, or gzip-compressed ``.json.gz``: the shipped
        models) and the sidecar ``<stem>.meta.json`` next to it."""
        self._check_fitted()
        path = Path(path)
        if not path.name.endswith(MODEL_SUFFIXES) or path.name.endswith(".meta.json"):
            raise TraincostUsageError(f"a residual model is saved as .json or .json.gz, got {str(path)!r}")
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.json")
        self.booster_.save_model(str(tmp))
        if path.name.endswith(".gz"):
            raw = tmp.read_bytes()
            tmp.write_bytes(gzip.compress(raw, compresslevel=9, mtime=0))  # mtime 0: same model, same bytes
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
        if path.endswith(".gz"):
            booster.load_model(bytearray(gzip.decompress(Path(path).read_bytes())))
        else:
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
