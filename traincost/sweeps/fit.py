"""Train and cross-validate the learned correction (:mod:`traincost.correction`) on measured datasets.

Features are computed by the current code at fit time, never read from a CSV: each ``ok`` row's spec is
walked again (``traincost.api._walk``) and priced (``traincost.pricing.timeline.price``) on the row's device
profile; the CSV's ``analytic_ms`` (the prediction when it was measured) is ignored. The target is
``log(median_ms / analytic_ms_now)``.

Data never runs code: a row whose spec names a user factory (``file.py:function`` or
``package.module:function``, :class:`~traincost.flopmodel.arch.ArchSpec` kind ``factory``) would import and
run that file or module when walked, so such rows are held back (counted in ``Frame.user_code``) unless the
caller passes ``trust_code=True``. Generated families and torchvision names are walked as always.

Cross-validation never splits one model's rows: ``family`` holds out whole families (one fold per
family), ``architecture`` holds out whole architectures (rows with the same spec JSON, on any device,
batch or precision) in :data:`ARCH_FOLDS` grouped folds. Metrics are the median and 90th percentile
(``numpy.percentile``, linear) of the absolute percentage error ``100 |predicted - measured| /
measured``, for the analytic prediction and the corrected one, overall and per family. Interval coverage
is measured the same way: a held-out fold's interval comes from the out-of-fold residuals of the *other*
folds only (split conformal) and is widened by the rules of :func:`traincost.correction.select.interval_factors`.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from traincost.correction.artifacts import model_version, profile_hash
from traincost.correction.estimator import LEVELS, ResidualModel, conformal_quantiles
from traincost.correction.features import FEATURES, PRECISIONS
from traincost.correction.select import (
    DATASHEET_WIDEN,
    OUT_OF_RANGE_WIDEN,
    RANGE_MARGIN,
    device_key,
    out_of_range,
    proxy_features,
)
from traincost.errors import TraincostError, TraincostUsageError

SPLITS = ("family", "architecture")
#: Grouped folds of the architecture split.
ARCH_FOLDS = 5
#: Rows per task sent to a worker process.
CHUNK_ROWS = 16


class FitError(TraincostUsageError):
    """A dataset or split that cannot be used for fitting or evaluation (names the file or the problem)."""


class UserCodeError(TraincostError):
    """Every usable row names user code (a factory) and ``trust_code`` was not given (exit code 1)."""


# ------------------------------------------------------------------------------------------ rows -> features


@dataclass
class Frame:
    """A dataset as features and targets. ``meta`` columns: family, arch, device, kind, source,
    measured_ms, analytic_ms, dataset, config_key; ``y = log(measured_ms / analytic_ms)``."""

    X: pd.DataFrame
    y: np.ndarray
    meta: pd.DataFrame
    skipped: list[str] = field(default_factory=list)
    datasets: list[dict[str, Any]] = field(default_factory=list)
    devices: list[dict[str, Any]] = field(default_factory=list)
    #: user factory (``file.py:function``) -> rows naming it that were not walked (``trust_code`` False)
    user_code: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def user_code_rows(self) -> int:
        """Rows held back because their model is user code."""
        return sum(self.user_code.values())

    def subset(self, idx: np.ndarray) -> Frame:
        return Frame(self.X.iloc[idx].reset_index(drop=True), self.y[idx], self.meta.iloc[idx].reset_index(drop=True),
                     list(self.skipped), list(self.datasets), list(self.devices), dict(self.user_code))


def _arch_key(spec_json: str) -> str:
    try:
        text = json.dumps(json.loads(spec_json), sort_keys=True)
    except (json.JSONDecodeError, TypeError):
        text = spec_json
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def resolve_row_profile(row: dict[str, str], profiles: Sequence[Any] = ()) -> Any:
    """The device profile of a dataset row: a given profile or a shipped one whose name is the row's
    ``profile_name``, else one named as its ``device`` (given profiles before shipped ones); else
    ``profile_for(device)`` (a calibrated or datasheet GPU profile)."""
    from traincost.hardware.store import load_shipped_profiles, profile_for

    candidates = [*profiles, *load_shipped_profiles()]
    for name in (row.get("profile_name", ""), row.get("device", "")):  # the row's own profile first
        match = next((p for p in candidates if name and p.name == name), None)
        if match is not None:
            return match
    try:
        return profile_for(row.get("device", ""))
    except TraincostError:
        raise FitError(f"no device profile for device {row.get('device')!r}: pass its profile (--profile FILE.json)")


def user_code_name(spec_json: Any) -> str | None:
    """The user factory (``file.py:function`` or ``package.module:function``) a dataset row's ``spec`` names,
    or ``None`` for a generated family or a torchvision model. Reads the spec, never imports what it names
    (a factory is only imported by ``ArchSpec.build``). A spec that cannot be read but whose model looks
    like ``target:function`` counts as user code."""
    from traincost.flopmodel.arch import ArchSpec

    try:
        data = json.loads(spec_json)
    except (json.JSONDecodeError, TypeError, ValueError):
        return None
    model = data.get("model") if isinstance(data, dict) else None
    try:
        spec = ArchSpec.from_dict(data)
    except Exception:  # the walk fails the same way, before any import; still hold a name that looks like code
        return model.strip() if isinstance(model, str) and ":" in model else None
    return spec.name if spec.kind == "factory" else None


def hold_user_code(rows: Sequence[dict[str, str]], trust_code: bool = False
                   ) -> tuple[list[dict[str, str]], dict[str, int]]:
    """(rows to walk, {factory: rows held back}): without ``trust_code`` the rows whose spec names user
    code (:func:`user_code_name`) are held back, so a dataset never imports or runs the Python it names."""
    if trust_code:
        return list(rows), {}
    kept: list[dict[str, str]] = []
    held: dict[str, int] = {}
    for row in rows:
        name = user_code_name(row.get("spec", ""))
        if name is None:
            kept.append(row)
        else:
            held[name] = held.get(name, 0) + 1
    return kept, held


def user_code_message(held: dict[str, int]) -> str:
    """``N rows whose model is user code (a.py:f, ...)`` for the rows :func:`hold_user_code` held back."""
    n = sum(held.values())
    names = sorted(held)
    shown = ", ".join(names[:3]) + (f", +{len(names) - 3} more" if len(names) > 3 else "")
    return f"{n} row{'s' if n != 1 else ''} whose model is user code ({shown})"


def all_user_code_error(held: dict[str, int], other_way: str = "") -> UserCodeError:
    """The failure when every row was held back as user code (``other_way``: another option that avoids it)."""
    return UserCodeError(f"every measured row was skipped: {user_code_message(held)}, which would import and run "
                         f"Python files or modules the dataset names; pass --trust-code to run them{other_way}")


def _features_chunk(task: tuple[Any, ...]) -> list[tuple[int, Any, str]]:
    """Worker: (profile dict, [(index, row)], trust_code) -> [(index, (features, analytic_ms) or None, error)].
    A row naming user code fails here, before anything is imported, unless ``trust_code``."""
    from traincost.api import _walk
    from traincost.correction.features import step_features
    from traincost.flopmodel.arch import ArchSpec
    from traincost.hardware.profile import DeviceProfile
    from traincost.pricing.timeline import price

    profile_dict, rows, *rest = task
    trust_code = bool(rest[0]) if rest else False
    profile = DeviceProfile.from_dict(profile_dict)
    out: list[tuple[int, Any, str]] = []
    for i, row in rows:
        try:
            spec = ArchSpec.from_dict(json.loads(row["spec"]))
            if spec.kind == "factory" and not trust_code:  # never import what a dataset names
                raise UserCodeError(f"model {spec.name} is user code; not run without trust_code")
            precision = row["precision"]
            channels_last = row["channels_last"].strip().lower() == "true"
            batch = int(row["batch_size"])
            step = _walk(spec, batch_size=batch, input_shape=None, precision=precision,
                         channels_last=channels_last, optimizer=row["optimizer"])
            pricing = price(step.table, profile)
            feats = step_features(step.walk, pricing, profile, precision=precision, channels_last=channels_last,
                                  optimizer=row["optimizer"], batch_size=batch)
            out.append((i, (feats, float(pricing.timeline.step_s) * 1e3), ""))
        except Exception as exc:  # one bad row never stops the dataset
            out.append((i, None, f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:160]}"))
    return out


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_rows(paths: Sequence[str | Path]) -> tuple[list[dict[str, str]], list[dict[str, Any]], list[str]]:
    """The measured (``ok``, positive time) rows of every dataset, each tagged with its file; the files
    (name, sha256, rows used) and the rows skipped. A :class:`FitError` for no file or no usable row.
    Only reads: rows naming user code are returned too (:func:`hold_user_code` holds them back before a walk)."""
    from traincost.sweeps.bench import read_dataset

    if not paths:
        raise FitError("no dataset given (--dataset FILE.csv)")
    rows: list[dict[str, str]] = []
    files: list[dict[str, Any]] = []
    skipped: list[str] = []
    for p in paths:
        path = Path(p)
        table = read_dataset(path)  # DatasetError (a usage error) for a missing or foreign file
        used = 0
        for r in table:
            try:
                ms = float(r["median_ms"])
            except ValueError:
                ms = float("nan")
            if r["status"] != "ok" or not ms > 0 or not r["spec"]:
                skipped.append(f"{path.name}:{r['config_key']}: status {r['status']!r}, median_ms {r['median_ms']!r}")
                continue
            rows.append({**r, "_dataset": path.name})
            used += 1
        if used == 0:
            raise FitError(f"{path}: no measured rows (status ok with a median_ms) to fit or evaluate on")
        files.append({"file": path.name, "sha256": _file_sha256(path), "rows": used})
    return rows, files, skipped


def _profile_hash(profile: Any) -> str:
    return profile_hash(profile)


def _cache_key(row: dict[str, str], profile_hash: str) -> str:
    return f"{row['config_key'] or _arch_key(row['spec'])}:{row['batch_size']}:{row['precision']}:" \
           f"{row['channels_last']}:{row['optimizer']}:{profile_hash}"


def _read_cache(path: Path, version: str) -> dict[str, tuple[dict[str, float], float]]:
    """Cached (features, analytic_ms) by key; entries of another code version are ignored."""
    if not path.is_file():
        return {}
    try:
        table = pd.read_csv(path, dtype={"key": str, "model_version": str})
    except (OSError, ValueError, pd.errors.ParserError):
        return {}
    if not {"key", "model_version", "analytic_ms", *FEATURES} <= set(table.columns):
        return {}
    table = table[table["model_version"] == version]
    return {k: ({f: float(v) for f, v in zip(FEATURES, vals)}, float(a))
            for k, a, vals in zip(table["key"], table["analytic_ms"], table[list(FEATURES)].to_numpy())}


def _write_cache(path: Path, version: str, entries: dict[str, tuple[dict[str, float], float]]) -> None:
    rows = [{"key": k, "model_version": version, "analytic_ms": a, **f} for k, (f, a) in entries.items()]
    tmp = path.with_name(f".{path.name}.tmp")
    pd.DataFrame(rows, columns=["key", "model_version", "analytic_ms", *FEATURES]).to_csv(tmp, index=False,
                                                                                         float_format="%.17g")
    tmp.replace(path)


def build_frame(paths: Sequence[str | Path], *, processes: int = 2, profiles: Sequence[Any] = (),
                progress: Callable[[int, int], None] | None = None, cache: str | Path | None = None,
                trust_code: bool = False) -> Frame:
    """Walk and price every measured row of ``paths`` with the current code (see the module docstring).

    ``processes``: worker processes (``spawn``); 1 works in this process. Rows whose walk fails are
    skipped and listed in ``Frame.skipped``; a dataset with no usable row is a :class:`FitError`.
    ``cache``: a CSV of computed features, keyed by row configuration + profile hash and valid only for
    the same :func:`model_version`: rows found there are not walked again; new rows are added to it.
    ``trust_code``: walk rows whose model is user code (``file.py:function``, ``package.module:function``),
    which imports and runs the file or module they name. Without it they are held back and counted in
    ``Frame.user_code``; a :class:`UserCodeError` when no other row is left.
    """
    rows, files, skipped = read_rows(paths)
    rows, held = hold_user_code(rows, trust_code)
    if held:
        if not rows:
            raise all_user_code_error(held)
        used: dict[str, int] = {}
        for r in rows:
            used[r["_dataset"]] = used.get(r["_dataset"], 0) + 1
        files = [{**f, "rows": used[f["file"]]} for f in files if used.get(f["file"])]
    row_profiles = [resolve_row_profile(r, profiles) for r in rows]
    version = str(model_version()) if cache is not None else ""
    cached = _read_cache(Path(cache), version) if cache is not None else {}
    # one hash per distinct profile object, not per row: hashing a profile's JSON takes ~0.1 s
    hashes = ({id(p): _profile_hash(p) for p in {id(p): p for p in row_profiles}.values()}
              if cache is not None else {})
    keys = [_cache_key(r, hashes[id(p)]) for r, p in zip(rows, row_profiles)] if cache is not None else []
    results: dict[int, tuple[Any, str]] = {}
    by_profile: dict[int, list[int]] = {}
    keyed: dict[int, Any] = {}
    for i, p in enumerate(row_profiles):
        if cache is not None and keys[i] in cached:
            results[i] = (cached[keys[i]], "")
            continue
        by_profile.setdefault(id(p), []).append(i)
        keyed[id(p)] = p
    tasks = []
    for pid, idx in by_profile.items():
        pdict = keyed[pid].to_dict()
        for a in range(0, len(idx), CHUNK_ROWS):
            tasks.append((pdict, [(i, rows[i]) for i in idx[a:a + CHUNK_ROWS]], trust_code))
    done = len(results)

    def collect(chunk: list[tuple[int, Any, str]]) -> None:
        nonlocal done
        for i, value, err in chunk:
            results[i] = (value, err)
        done += len(chunk)
        if progress:
            progress(done, len(rows))

    pending = list(range(len(tasks)))
    if processes > 1 and len(tasks) > 1:
        # spawn: no fork of a process that may hold torch/OpenMP threads. A worker that dies (or a caller
        # script without a __main__ guard) breaks the pool: the chunks not done are walked here instead.
        ctx = multiprocessing.get_context("spawn")
        try:
            with ProcessPoolExecutor(max_workers=min(processes, len(tasks)), mp_context=ctx) as pool:
                futures = {pool.submit(_features_chunk, tasks[k]): k for k in pending}
                for fut in as_completed(futures):
                    collect(fut.result())
                    pending.remove(futures[fut])
        except (BrokenProcessPool, Exception):  # a broken pool, a worker that cannot start: walk here
            pass
    for k in pending:
        collect(_features_chunk(tasks[k]))
    if cache is not None:
        for i, (value, _err) in results.items():
            if value is not None:
                cached[keys[i]] = value
        _write_cache(Path(cache), version, cached)
    feats, ys, meta = [], [], []
    for i, row in enumerate(rows):
        value, err = results.get(i, (None, "not computed"))
        if value is None:
            skipped.append(f"{row['_dataset']}:{row['config_key']}: {err}")
            continue
        f, analytic = value
        measured = float(row["median_ms"])
        if not analytic > 0:
            skipped.append(f"{row['_dataset']}:{row['config_key']}: analytic time {analytic}")
            continue
        p = row_profiles[i]
        feats.append(f)
        ys.append(math.log(measured / analytic))
        meta.append({"family": row["family"] or "?", "arch": _arch_key(row["spec"]), "device": p.name,
                     "kind": p.kind, "source": p.source, "measured_ms": measured, "analytic_ms": analytic,
                     "dataset": row["_dataset"], "config_key": row["config_key"]})
    if not feats:
        raise FitError("no row could be walked and priced: " + "; ".join(skipped[:3]))
    X = pd.DataFrame([[fr[n] for n in FEATURES] for fr in feats], columns=list(FEATURES), dtype=float)
    devices = []
    for p in {id(p): p for p in row_profiles}.values():
        if any(m["device"] == p.name for m in meta):
            devices.append(device_key(p))
    return Frame(X, np.asarray(ys, dtype=float), pd.DataFrame(meta), skipped, files, devices, held)


def combine_repeats(frame: Frame) -> Frame:
    """One sample per configuration measured more than once on one device (the same ``config_key``, e.g.
    sweeps of one plan hours apart): its label is the median of the measurements' ``log(measured_ms)``,
    ``meta["measured_ms"]`` that median's time and ``meta["measurements"]`` every measured time
    (``;``-separated), so intervals and :func:`report` can still be judged against single measurements.
    Rows without a ``config_key`` stay as they are (in their order, before the keyed ones); the rest are
    ordered by device and key, so the order of the files does not change the model (its subsampling is
    seeded). On this 2-core VM two sweeps of the same configuration differ by a median 10 % (p90 31 %):
    one sweep's label is a noisy sample of the step time.
    """
    meta = frame.meta
    keys = meta["config_key"].fillna("").astype(str).tolist() if "config_key" in meta else [""] * len(frame)
    grouped: dict[str, list[int]] = {}
    for i, (dev, key) in enumerate(zip(meta["device"].tolist(), keys)):
        grouped.setdefault(f"{dev}\0{key}" if key else f"\0row{i:09d}", []).append(i)
    # sorted by device and key: the same measurements give the same frame (and model) in any file order
    groups = {k: grouped[k] for k in sorted(grouped)}
    first = np.array([idx[0] for idx in groups.values()], dtype=int)
    measured = meta["measured_ms"].to_numpy(dtype=float)
    each = [measured[idx] for idx in groups.values()]
    median_log = np.array([float(np.median(np.log(m))) for m in each])
    out = frame.subset(first)
    out.meta["measured_ms"] = np.exp(median_log)
    out.meta["measurements"] = [";".join(f"{v:.6g}" for v in m) for m in each]
    datasets = meta["dataset"].to_numpy() if "dataset" in meta else None
    if datasets is not None:
        out.meta["dataset"] = ["+".join(dict.fromkeys(datasets[idx].tolist())) for idx in groups.values()]
    out.y = median_log - np.log(out.meta["analytic_ms"].to_numpy(dtype=float))
    return out


def measurement_offsets(frame: Frame) -> tuple[np.ndarray, np.ndarray]:
    """(row index, ``log(measurement / meta measured_ms)``) for every single measurement behind ``frame``'s
    rows: one per row (offset 0) unless :func:`combine_repeats` merged several into one."""
    if "measurements" not in frame.meta:
        return np.arange(len(frame)), np.zeros(len(frame))
    rows, offsets = [], []
    for i, (text, label) in enumerate(zip(frame.meta["measurements"], frame.meta["measured_ms"])):
        for v in str(text).split(";"):
            rows.append(i)
            offsets.append(math.log(float(v) / float(label)))
    return np.asarray(rows, dtype=int), np.asarray(offsets, dtype=float)


def per_run_residuals(frame: Frame, log_residuals: Any) -> tuple[np.ndarray, np.ndarray]:
    """(row index, log residual) of every single measurement behind ``frame``'s rows: a row's
    ``log(label / predicted)`` plus each of its runs' offset from the label (:func:`measurement_offsets`)."""
    rows, offsets = measurement_offsets(frame)
    return rows, np.asarray(log_residuals, dtype=float)[rows] + offsets


# ------------------------------------------------------------------------------------------ splits


def group_folds(groups: Sequence[str], n_splits: int | None = None, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train indices, test indices) per fold; every group lies wholly in one test fold.

    ``n_splits=None``: one fold per group (leave one group out). Otherwise the groups, shuffled with
    ``seed``, are dealt round-robin into ``n_splits`` folds (fewer when there are fewer groups).
    """
    g = np.asarray(list(groups), dtype=object)
    uniq = sorted(set(g.tolist()))
    if len(uniq) < 2:
        raise FitError(f"cross-validation needs at least 2 groups, got {len(uniq)}")
    if n_splits is None:
        assignment = {u: k for k, u in enumerate(uniq)}
        k_folds = len(uniq)
    else:
        rng = np.random.default_rng(seed)
        order = [uniq[i] for i in rng.permutation(len(uniq))]
        k_folds = min(int(n_splits), len(uniq))
        assignment = {u: j % k_folds for j, u in enumerate(order)}
    fold_of = np.array([assignment[x] for x in g])
    out = []
    for k in range(k_folds):
        test = np.flatnonzero(fold_of == k)
        train = np.flatnonzero(fold_of != k)
        out.append((train, test))
    return out


def split_folds(frame: Frame, split: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """The folds of ``split`` (``family``: leave one family out; ``architecture``: grouped K-fold)."""
    if split == "family":
        families = sorted(set(frame.meta["family"]))
        if len(families) < 2:
            raise FitError(f"leave-one-family-out needs at least 2 families; the data has "
                           f"{len(families)} ({', '.join(families)}); use --split architecture")
        return group_folds(frame.meta["family"].tolist())
    if split == "architecture":
        if frame.meta["arch"].nunique() < 2:
            raise FitError("leave-architecture-out needs at least 2 architectures in the data")
        return group_folds(frame.meta["arch"].tolist(), ARCH_FOLDS)
    raise FitError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")


def cross_validate(frame: Frame, split: str, params: dict[str, Any] | None = None) -> np.ndarray:
    """Out-of-fold predicted log residual of every row (each predicted by a model that never saw its group)."""
    oof = np.full(len(frame), np.nan)
    for train, test in split_folds(frame, split):
        model = ResidualModel(**(params or {})).fit(frame.X.iloc[train], frame.y[train])
        oof[test] = model.predict(frame.X.iloc[test])
    return oof


# ------------------------------------------------------------------------------------------ metrics


def ape(predicted_ms: Any, measured_ms: Any) -> np.ndarray:
    """Absolute percentage error, ``100 |predicted - measured| / measured``."""
    p = np.asarray(predicted_ms, dtype=float)
    m = np.asarray(measured_ms, dtype=float)
    return 100.0 * np.abs(p - m) / m


def ape_summary(predicted_ms: Any, measured_ms: Any) -> dict[str, float]:
    """``{median_ape, p90_ape}`` in percent (``numpy.percentile``, linear interpolation)."""
    e = ape(predicted_ms, measured_ms)
    return {"median_ape": float(np.median(e)), "p90_ape": float(np.percentile(e, 90))}


def _ood_mask(X_test: pd.DataFrame, X_train: pd.DataFrame, margin: float = RANGE_MARGIN) -> np.ndarray:
    lo, hi = X_train.min().to_numpy(), X_train.max().to_numpy()
    span = hi - lo
    vals = X_test.to_numpy(dtype=float)
    varying = span > 0
    pad = margin * span
    outside = ((vals < lo - pad) | (vals > hi + pad)) & varying
    return outside.any(axis=1)


def _widen(q: tuple[float, float], factor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mid, half = (q[0] + q[1]) / 2, (q[1] - q[0]) / 2
    return mid - half * factor, mid + half * factor


def widen_factors(datasheet: np.ndarray, ood: np.ndarray) -> np.ndarray:
    """Per-row widening of the interval half-width (the rules of ``correction.interval_factors``)."""
    return np.where(datasheet, DATASHEET_WIDEN, 1.0) * np.where(ood, OUT_OF_RANGE_WIDEN, 1.0)


def cv_coverage(frame: Frame, folds: list[tuple[np.ndarray, np.ndarray]], residuals: np.ndarray,
                levels: Sequence[float] = LEVELS) -> dict[str, float]:
    """Coverage of split-conformal intervals on held-out folds: fold k's quantiles come from the residuals
    (out-of-fold ``log(measured / predicted)``) of the other folds' rows, widened for datasheet rows and
    rows outside fold k's training ranges. Returns level -> fraction of rows inside their interval; after
    :func:`combine_repeats`, of single measurements (each measurement of a combined row judged alone)."""
    rows, each = per_run_residuals(frame, residuals)  # a combined row has several
    out = {}
    for lv in levels:
        inside = np.zeros(len(each), dtype=bool)
        for train, test in folds:
            in_train, in_test = np.isin(rows, train), np.isin(rows, test)
            q = conformal_quantiles(each[in_train], lv)
            factor = widen_factors(frame.X["device_datasheet"].to_numpy()[test] > 0,
                                   _ood_mask(frame.X.iloc[test], frame.X.iloc[train]))
            lo, hi = _widen(q, factor)
            pos = np.searchsorted(test, rows[in_test])  # test is sorted (np.flatnonzero)
            r = each[in_test]
            inside[in_test] = (r >= lo[pos]) & (r <= hi[pos])
        out[f"{lv:g}"] = float(inside.mean())
    return out


def report(frame: Frame, split: str, corrected_ms: np.ndarray, coverage: dict[str, float] | None,
           folds: int | None, model: str | None = None) -> dict[str, Any]:
    """The evaluation report of one split (the ``traincost evaluate --json`` object). ``analytic`` and
    ``corrected`` are judged against each row's label (after :func:`combine_repeats`, the median of a
    configuration's measurements); ``single_measurements`` against every single measurement."""
    meta = frame.meta
    measured = meta["measured_ms"].to_numpy()
    analytic = meta["analytic_ms"].to_numpy()
    per_family = {}
    for fam in sorted(set(meta["family"])):
        m = (meta["family"] == fam).to_numpy()
        per_family[fam] = {"n": int(m.sum()), "analytic": ape_summary(analytic[m], measured[m]),
                           "corrected": ape_summary(corrected_ms[m], measured[m])}
    per_device = {}
    for dev in sorted(set(meta["device"])):
        m = (meta["device"] == dev).to_numpy()
        per_device[dev] = {"n": int(m.sum()), "analytic": ape_summary(analytic[m], measured[m]),
                           "corrected": ape_summary(corrected_ms[m], measured[m])}
    rows, offsets = measurement_offsets(frame)
    each = measured[rows] * np.exp(offsets)
    single = {"n": len(rows), "analytic": ape_summary(analytic[rows], each),
              "corrected": ape_summary(np.asarray(corrected_ms)[rows], each)}
    return {"split": split, "n": len(frame), "folds": folds, "model": model,
            "analytic": ape_summary(analytic, measured), "corrected": ape_summary(corrected_ms, measured),
            "single_measurements": single,
            "per_family": per_family, "per_device": per_device, "interval_coverage": coverage,
            "datasets": [d["file"] for d in frame.datasets], "skipped_rows": len(frame.skipped),
            "user_code_rows": frame.user_code_rows}


def model_residuals(model: ResidualModel, frame: Frame) -> np.ndarray:
    """``model``'s predicted log residual per row, as ``predict`` applies it: rows of a device outside the
    model's training data use the device features of the nearest trained device of the same kind
    (:func:`traincost.correction.select.proxy_features`); 0 (analytic only) where the model knows no such device."""
    X = frame.X.copy()
    keep = np.ones(len(frame), dtype=bool)
    entries = {d["name"]: d for d in frame.devices}
    precisions = np.array(PRECISIONS)[np.argmax(X[[f"precision_{p}" for p in PRECISIONS]].to_numpy(), axis=1)]
    devices = frame.meta["device"].to_numpy()
    for dev in sorted(set(devices)):
        entry = entries.get(dev)
        if entry is None:
            continue
        for prec in sorted(set(precisions[devices == dev])):
            rows = np.flatnonzero((devices == dev) & (precisions == prec))
            proxy, _why = proxy_features(model, entry, prec)
            if proxy is None:
                keep[rows] = False
            elif proxy:
                for name, value in proxy.items():
                    X.loc[rows, name] = value
    return np.where(keep, model.predict(X), 0.0)


def evaluate(frame: Frame, split: str = "family", *, model: ResidualModel | None = None,
             params: dict[str, Any] | None = None) -> tuple[dict[str, Any], np.ndarray]:
    """Cross-validate (``split``) or, with ``model``, score a trained model on ``frame`` (``split`` =
    ``holdout``). Returns the report and the corrected predictions (ms)."""
    analytic = frame.meta["analytic_ms"].to_numpy()
    if model is not None:
        pred = model_residuals(model, frame)
        corrected = analytic * np.exp(pred)
        resid = frame.y - pred
        coverage = {}
        records = frame.X.to_dict(orient="records")
        ood = np.array([bool(out_of_range(r, model.feature_ranges_)) for r in records], dtype=bool)
        rows, each = per_run_residuals(frame, resid)
        for lv, q in sorted(model.intervals_.items()):
            lo, hi = _widen(q, widen_factors(frame.X["device_datasheet"].to_numpy() > 0, ood))
            coverage[f"{lv:g}"] = float(((each >= lo[rows]) & (each <= hi[rows])).mean())
        return report(frame, "holdout", corrected, coverage or None, None,
                      str(model.metadata_.get("path", "")) or None), corrected
    folds = split_folds(frame, split)
    oof = cross_validate(frame, split, params)
    corrected = analytic * np.exp(oof)
    coverage = cv_coverage(frame, folds, frame.y - oof)
    return report(frame, split, corrected, coverage, len(folds)), corrected


# ------------------------------------------------------------------------------------------ fit


def fit_model(frame: Frame, params: dict[str, Any] | None = None) -> tuple[ResidualModel, dict[str, Any]]:
    """The residual model on all of ``frame``, with interval quantiles from leave-one-family-out residuals
    (architecture folds when there is one family) and the cross-validation summary in ``metadata_``.
    Returns (model, {split: report})."""
    reports: dict[str, Any] = {}
    interval_split = "family" if frame.meta["family"].nunique() >= 2 else "architecture"
    residuals = None
    for split in SPLITS:
        try:
            rep, corrected = evaluate(frame, split, params=params)
        except FitError:
            continue
        reports[split] = rep
        if split == interval_split:  # of single measurements: an interval says where one run lands
            residuals = per_run_residuals(frame, np.log(frame.meta["measured_ms"].to_numpy() / corrected))[1]
    model = ResidualModel(**(params or {})).fit(frame.X, frame.y)
    if residuals is not None:
        model.set_intervals(residuals)
    kinds = sorted(set(frame.meta["kind"]))
    analytic_iv = {}
    for kind in kinds:
        m = (frame.meta["kind"] == kind).to_numpy()
        analytic_iv[kind] = {f"{lv:g}": list(conformal_quantiles(frame.y[m], lv)) for lv in LEVELS}
    model.metadata_ = {
        "scope": _scope(frame.devices),
        "devices": frame.devices, "datasets": frame.datasets,
        "interval_split": interval_split if residuals is not None else None,
        "cv": {s: {"n": r["n"], "analytic": r["analytic"], "corrected": r["corrected"],
                   "interval_coverage": r["interval_coverage"]} for s, r in reports.items()},
        "analytic_intervals": analytic_iv,
        "model_version": model_version(),
        "target": "log(measured_ms / analytic_ms)",
    }
    return model, reports


def _scope(devices: Sequence[dict[str, Any]]) -> str:
    """``device`` for one device, or for several calibrations of one catalog GPU (hosts of an H200: one GPU,
    other host speeds, told apart by their profiles); ``cross-device`` otherwise (CPUs have no catalog key)."""
    keys = {(d.get("kind"), d.get("catalog_key")) for d in devices}
    one_gpu = len(keys) == 1 and all(d.get("kind") == "cuda" and d.get("catalog_key") for d in devices)
    return "device" if len(devices) <= 1 or one_gpu else "cross-device"


# ------------------------------------------------------------------------------------------ plot


def plot(frame: Frame, corrected_ms: np.ndarray, path: str | Path, title: str = "") -> Path:
    """Predicted-vs-measured scatter (log-log), analytic and corrected, with the diagonal and +-25 %."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = frame.meta["measured_ms"].to_numpy()
    analytic = frame.meta["analytic_ms"].to_numpy()
    fig, ax = plt.subplots(figsize=(6.4, 6.0), dpi=110)
    try:
        ax.scatter(measured, analytic, s=7, alpha=0.45, label="analytic", color="tab:gray")
        ax.scatter(measured, corrected_ms, s=7, alpha=0.6, label="corrected", color="tab:blue")
        lo = float(min(measured.min(), analytic.min(), np.min(corrected_ms))) * 0.8
        hi = float(max(measured.max(), analytic.max(), np.max(corrected_ms))) * 1.25
        xs = np.array([lo, hi])
        ax.plot(xs, xs, color="black", lw=1)
        for f in (0.75, 1.25):
            ax.plot(xs, xs * f, color="black", lw=0.6, ls="--")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel("measured step (ms)")
        ax.set_ylabel("predicted step (ms)")
        ax.set_title(title or "predicted vs measured", fontsize=9)
        ax.legend(loc="upper left")
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path


__all__ = ["ARCH_FOLDS", "SPLITS", "FitError", "Frame", "UserCodeError", "ape", "ape_summary", "build_frame",
           "combine_repeats", "cross_validate", "cv_coverage", "evaluate", "fit_model", "group_folds",
           "hold_user_code", "measurement_offsets", "per_run_residuals", "plot", "read_rows", "report",
           "resolve_row_profile", "split_folds", "user_code_message", "user_code_name", "widen_factors"]
