"""Fitting the efficiency curves of a device profile from timed microbenchmarks.

A :class:`~traincost.hardware.profile.Curve` says how long one kernel of a class takes for a given work size
(FLOPs for compute, bytes read + written for memory)::

    time_s(work) = latency_s + work / rate          rate = peak
                                                   x depth / (depth + k_half)     (optional depth term)
                                                   or cache_peak for work <= cache_bytes (optional tier)

The plain form has 2 parameters. Two optional terms are added only when the data demand them (they must
cut the median absolute percentage error of the fit by ``_MIN_IMPROVEMENT``):

* a **depth term** for convolutions: the reduction depth of the implicit GEMM (``C_in / groups * kh * kw``)
  decides how well the tensor cores / vector units are fed. On the public H200 run
  (``data/reference/h200_microbench.json``) the 7x7 stem (depth 147) reaches 29 TFLOP/s and a 3x3
  with 512 channels (depth 4608) 127; the depth term cuts the conv fit's median APE from 22 % to 6 % (fp32)
  and from 20 % to 11 % (bf16). CPUs show the same (a 1x1 conv with 64 input channels runs 10x below a
  3x3 with 128).
* a **cache tier** for memory-bound kernels: on a CPU, work that fits in L2/L3 streams 3-5x faster than
  DRAM, which no single bandwidth fits.

Fits minimise a robust (soft-L1) loss on log time, so a 10 us kernel counts as much as a 10 ms one and an
outlier (a scheduler hiccup) does not drag the curve. All functions are pure: numbers in, numbers out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy.optimize import least_squares, lsq_linear

from traincost.hardware.profile import Curve

__all__ = ["FitReport", "ape", "fit_curve", "fit_linear_nonneg"]

_MIN_LATENCY_S = 1e-9
_MAX_LATENCY_S = 1.0
#: An optional term (depth, cache tier) is kept only when it cuts the mean absolute log error of the fit
#: (a systematic misfit of a few points counts, unlike in a median) by this fraction.
_MIN_IMPROVEMENT = 0.15
#: The depth term (3 parameters) is tried only with at least this many points (and 3 distinct depths);
#: two fewer with a fixed latency.
_MIN_POINTS_DEPTH = 6
#: ... and a cache tier only when its rate is at least this many times the DRAM rate.
_CACHE_MIN_GAIN = 1.25


@dataclass(frozen=True)
class FitReport:
    """How well a fitted curve reproduces its measurements (absolute percentage errors of time)."""

    n: int
    median_ape: float
    max_ape: float
    cache_tier: bool = False
    depth_term: bool = False
    plain_median_ape: float | None = None   # the 2-parameter fit's, when an optional term was tried

    def to_dict(self) -> dict[str, object]:
        return {"n": self.n, "median_ape": self.median_ape, "max_ape": self.max_ape,
                "cache_tier": self.cache_tier, "depth_term": self.depth_term,
                "plain_median_ape": self.plain_median_ape}


def ape(predicted: Sequence[float], measured: Sequence[float]) -> np.ndarray:
    """Absolute percentage errors ``|predicted - measured| / measured`` (as fractions)."""
    p = np.asarray(predicted, dtype=float)
    m = np.asarray(measured, dtype=float)
    return np.abs(p - m) / m


def _solve(model: Callable[[np.ndarray], np.ndarray], t: np.ndarray, starts: list[list[float]],
           lo: list[float], hi: list[float]) -> np.ndarray:
    """Best (lowest robust cost) of several least-squares starts on log time; theta is log-parameters."""
    logt = np.log(t)
    best = None
    for x0 in starts:
        x0 = [min(max(v, a + 1e-9), b - 1e-9) for v, a, b in zip(x0, lo, hi)]
        sol = least_squares(lambda th: np.log(model(th)) - logt, x0=x0, bounds=(lo, hi),
                            loss="soft_l1", f_scale=0.05)
        if best is None or sol.cost < best.cost:
            best = sol
    assert best is not None
    return best.x


def _report(curve: Curve, w: np.ndarray, t: np.ndarray, d: np.ndarray | None) -> np.ndarray:
    pred = [curve.time_s(x, None if d is None else y) for x, y in zip(w, d if d is not None else w)]
    return ape(pred, t)


def _male(curve: Curve, w: np.ndarray, t: np.ndarray, d: np.ndarray | None) -> float:
    """Mean absolute log error of a curve's times (the criterion for optional terms)."""
    pred = np.array([curve.time_s(x, None if d is None else y) for x, y in zip(w, d if d is not None else w)])
    return float(np.mean(np.abs(np.log(pred / t))))


def fit_curve(
    work: Sequence[float],
    times: Sequence[float],
    *,
    depth: Sequence[float] | None = None,
    fixed_latency: float | None = None,
    cache_tier: bool = False,
) -> tuple[Curve, FitReport]:
    """Fit ``time = latency_s + work / peak`` to measured (work, seconds) pairs.

    ``depth`` (one per point, e.g. ``C_in * kh * kw`` of a convolution) also tries the depth term
    ``peak * depth / (depth + k_half)``. ``fixed_latency`` fixes the latency (when the sizes measured are
    too alike to identify it). ``cache_tier=True`` tries, for every split between measured sizes with at
    least two distinct sizes on each side, a faster rate below the split. An optional term is kept only if
    it clearly beats the plain curve. Raises ``ValueError`` with too few usable points.
    """
    w = np.asarray(work, dtype=float)
    t = np.asarray(times, dtype=float)
    d = None if depth is None else np.asarray(depth, dtype=float)
    if w.shape != t.shape or w.ndim != 1 or (d is not None and d.shape != w.shape):
        raise ValueError("work, times (and depth) must be 1-D sequences of the same length")
    keep = np.isfinite(w) & np.isfinite(t) & (w > 0) & (t > 0)
    if d is not None:
        keep &= np.isfinite(d) & (d > 0)
    w, t = w[keep], t[keep]
    d = d[keep] if d is not None else None
    need = 1 if fixed_latency is not None else 2
    if w.size < need:
        raise ValueError(f"need at least {need} positive (work, time) points to fit a curve, got {w.size}")

    rate_max = float(np.max(w / t))
    lr = math.log(rate_max)
    t_min = float(np.min(t))
    lat_starts = [math.log(min(max(x, 2 * _MIN_LATENCY_S), 0.5)) for x in (t_min * 0.9, t_min * 0.3,
                                                                              t_min * 0.03, 1e-7)]
    lat_lo, lat_hi = math.log(_MIN_LATENCY_S), math.log(_MAX_LATENCY_S)

    # plain 2-parameter curve (or peak only with a fixed latency)
    if fixed_latency is not None:
        lat = max(float(fixed_latency), 0.0)
        th = _solve(lambda th: lat + w / np.exp(th[0]), t, [[lr]], [lr - 10], [lr + 10])
        curve = Curve(peak=float(np.exp(th[0])), latency_s=lat)
    else:
        th = _solve(lambda th: np.exp(th[1]) + w / np.exp(th[0]), t, [[lr + 0.05, s] for s in lat_starts],
                    [lr - 10, lat_lo], [lr + 10, lat_hi])
        curve = Curve(peak=float(np.exp(th[0])), latency_s=float(np.exp(th[1])))
    errs = _report(curve, w, t, None)
    plain = float(np.median(errs))
    plain_male = _male(curve, w, t, None)
    report = FitReport(n=int(w.size), median_ape=plain, max_ape=float(np.max(errs)))

    min_points = _MIN_POINTS_DEPTH if fixed_latency is None else _MIN_POINTS_DEPTH - 2  # one parameter fewer
    if d is not None and np.unique(d).size >= 3 and w.size >= min_points:
        dd = d
        kh_lo, kh_hi = math.log(float(np.min(dd)) / 1000), math.log(10 * float(np.max(dd)))
        kh_starts = [math.log(float(np.median(dd))), math.log(float(np.min(dd)))]
        if fixed_latency is not None:
            lat = max(float(fixed_latency), 0.0)
            th = _solve(lambda th: lat + w * (dd + np.exp(th[1])) / (np.exp(th[0]) * dd), t,
                        [[lr + 1, k] for k in kh_starts], [lr - 10, kh_lo], [lr + math.log(50), kh_hi])
            cand = Curve(peak=float(np.exp(th[0])), latency_s=lat, k_half=float(np.exp(th[1])))
        else:
            th = _solve(lambda th: np.exp(th[1]) + w * (dd + np.exp(th[2])) / (np.exp(th[0]) * dd), t,
                        [[lr + 1, s, k] for s in lat_starts[:3] for k in kh_starts],
                        [lr - 10, lat_lo, kh_lo], [lr + math.log(50), lat_hi, kh_hi])
            cand = Curve(peak=float(np.exp(th[0])), latency_s=float(np.exp(th[1])), k_half=float(np.exp(th[2])))
        cerrs = _report(cand, w, t, dd)
        if _male(cand, w, t, dd) <= (1.0 - _MIN_IMPROVEMENT) * plain_male:
            curve = cand
            report = FitReport(n=int(w.size), median_ape=float(np.median(cerrs)), max_ape=float(np.max(cerrs)),
                               depth_term=True, plain_median_ape=plain)
        else:
            report = FitReport(n=report.n, median_ape=report.median_ape, max_ape=report.max_ape,
                               plain_median_ape=plain)

    if cache_tier and fixed_latency is None and d is None:
        sizes = np.unique(w)
        best: tuple[Curve, float] | None = None
        for i in range(1, sizes.size - 2):  # >= 2 distinct sizes on each side
            split = float(sizes[i])
            inside = w <= split
            r_in = math.log(float(np.max(w[inside] / t[inside])))
            r_out = math.log(float(np.max(w[~inside] / t[~inside])))
            th = _solve(lambda th: np.exp(th[1]) + w / np.where(inside, np.exp(th[2]), np.exp(th[0])), t,
                        [[r_out, s, r_in + 0.05] for s in lat_starts[:3]],
                        [r_out - 10, lat_lo, r_in - 10], [r_out + 10, lat_hi, r_in + 10])
            peak, lat, cpeak = (float(v) for v in np.exp(th))
            if cpeak < _CACHE_MIN_GAIN * peak:
                continue
            cand = Curve(peak=peak, latency_s=lat, cache_bytes=float(math.sqrt(split * sizes[i + 1])),
                         cache_peak=cpeak)
            male = _male(cand, w, t, None)
            if best is None or male < best[1]:
                best = (cand, male)
        if best is not None and best[1] <= (1.0 - _MIN_IMPROVEMENT) * plain_male:
            curve = best[0]
            cerrs = _report(curve, w, t, None)
            report = FitReport(n=int(w.size), median_ape=float(np.median(cerrs)), max_ape=float(np.max(cerrs)),
                               cache_tier=True, plain_median_ape=plain)
    return curve, report


def fit_linear_nonneg(columns: Sequence[Sequence[float]], y: Sequence[float], *,
                      relative: bool = True) -> list[float]:
    """Non-negative least squares ``y ~ sum_j c_j * columns[j]``; with ``relative`` each row is weighted
    by ``1 / y`` (so the fit minimises relative error). Returns the coefficients ``c_j >= 0``."""
    a = np.asarray(columns, dtype=float).T
    b = np.asarray(y, dtype=float)
    if a.shape[0] != b.size or b.size == 0:
        raise ValueError("columns and y must have the same, non-zero number of rows")
    if relative:
        a = a / b[:, None]
        b = np.ones_like(b)
    scale = np.max(np.abs(a), axis=0)
    scale[scale == 0] = 1.0
    sol = lsq_linear(a / scale, b, bounds=(0.0, np.inf))
    return [float(c) for c in sol.x / scale]
