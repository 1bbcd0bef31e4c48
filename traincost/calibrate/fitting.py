"""Fitting the efficiency curves of a device profile from timed microbenchmarks.

A :class:`~traincost.devices.Curve` says how long one kernel of a class takes for a given work size
(FLOPs for compute, bytes read + written for memory)::

    time_s(work) = latency_s + work / rate(work)

with ``rate = peak``, or ``cache_peak`` for work up to ``cache_bytes`` when the fit finds a cache tier
(memory-bound kernels on a CPU, whose L2/L3 streams several times faster than DRAM).

Fits minimise a robust (soft-L1) loss on log time, so a 10 us kernel counts as much as a 10 ms one and an
outlier repeat (a scheduler hiccup) does not drag the curve. All functions are pure: numbers in, numbers out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.optimize import least_squares, lsq_linear

from traincost.devices import Curve

__all__ = ["FitReport", "fit_curve", "fit_linear_nonneg", "ape"]

_MIN_LATENCY_S = 1e-9
_MAX_LATENCY_S = 1.0
#: A cache tier is kept only when it cuts the median absolute log error by this fraction and its rate
#: is at least ``_CACHE_MIN_GAIN`` times the DRAM rate (else the simpler 2-parameter curve is kept).
_CACHE_MIN_IMPROVEMENT = 0.3
_CACHE_MIN_GAIN = 1.25


@dataclass(frozen=True)
class FitReport:
    """How well a fitted curve reproduces its measurements (absolute percentage errors of time)."""

    n: int
    median_ape: float
    max_ape: float
    cache_tier: bool

    def to_dict(self) -> dict[str, object]:
        return {"n": self.n, "median_ape": self.median_ape, "max_ape": self.max_ape,
                "cache_tier": self.cache_tier}


def ape(predicted: Sequence[float], measured: Sequence[float]) -> np.ndarray:
    """Absolute percentage errors ``|predicted - measured| / measured`` (as fractions)."""
    p = np.asarray(predicted, dtype=float)
    m = np.asarray(measured, dtype=float)
    return np.abs(p - m) / m


def _clean(work: Sequence[float], times: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    w = np.asarray(work, dtype=float)
    t = np.asarray(times, dtype=float)
    if w.shape != t.shape or w.ndim != 1:
        raise ValueError("work and times must be 1-D sequences of the same length")
    keep = np.isfinite(w) & np.isfinite(t) & (w > 0) & (t > 0)
    return w[keep], t[keep]


def _fit_two(w: np.ndarray, t: np.ndarray, fixed_latency: float | None) -> tuple[float, float, float]:
    """(peak, latency_s, cost) of ``latency + w / peak`` on log time; several starts, best kept."""
    rate_max = float(np.max(w / t))
    if fixed_latency is not None:
        lat = max(float(fixed_latency), 0.0)

        def res1(theta: np.ndarray) -> np.ndarray:
            return np.log(lat + w / np.exp(theta[0])) - np.log(t)

        sol = least_squares(res1, x0=[math.log(rate_max)], loss="soft_l1", f_scale=0.05)
        return float(math.exp(sol.x[0])), lat, float(sol.cost)

    def res(theta: np.ndarray) -> np.ndarray:
        return np.log(np.exp(theta[1]) + w / np.exp(theta[0])) - np.log(t)

    lo = [math.log(rate_max) - 10.0, math.log(_MIN_LATENCY_S)]
    hi = [math.log(rate_max) + 10.0, math.log(_MAX_LATENCY_S)]
    best: tuple[float, float, float] | None = None
    t_min = float(np.min(t))
    for lat0 in (t_min * 0.9, t_min * 0.3, t_min * 0.03, 1e-7):
        x0 = [math.log(rate_max * 1.05), math.log(min(max(lat0, 2 * _MIN_LATENCY_S), 0.5))]
        sol = least_squares(res, x0=x0, bounds=(lo, hi), loss="soft_l1", f_scale=0.05)
        cand = (float(math.exp(sol.x[0])), float(math.exp(sol.x[1])), float(sol.cost))
        if best is None or cand[2] < best[2]:
            best = cand
    assert best is not None
    return best


def _fit_cache(w: np.ndarray, t: np.ndarray, split: float) -> tuple[float, float, float, float]:
    """(peak, latency_s, cache_peak, cost) of the cache-tier model for one split point."""
    inside = w <= split

    def res(theta: np.ndarray) -> np.ndarray:
        peak, lat, cpeak = np.exp(theta)
        rate = np.where(inside, cpeak, peak)
        return np.log(lat + w / rate) - np.log(t)

    r_out = float(np.max(w[~inside] / t[~inside]))
    r_in = float(np.max(w[inside] / t[inside]))
    lo = [math.log(r_out) - 10.0, math.log(_MIN_LATENCY_S), math.log(r_in) - 10.0]
    hi = [math.log(r_out) + 10.0, math.log(_MAX_LATENCY_S), math.log(r_in) + 10.0]
    best = None
    t_min = float(np.min(t))
    for lat0 in (t_min * 0.9, t_min * 0.3, 1e-7):
        x0 = [math.log(r_out), math.log(min(max(lat0, 2 * _MIN_LATENCY_S), 0.5)), math.log(r_in * 1.05)]
        sol = least_squares(res, x0=x0, bounds=(lo, hi), loss="soft_l1", f_scale=0.05)
        peak, lat, cpeak = (float(v) for v in np.exp(sol.x))
        if best is None or sol.cost < best[3]:
            best = (peak, lat, cpeak, float(sol.cost))
    assert best is not None
    return best


def fit_curve(
    work: Sequence[float],
    times: Sequence[float],
    *,
    fixed_latency: float | None = None,
    cache_tier: bool = False,
) -> tuple[Curve, FitReport]:
    """Fit ``time = latency_s + work / peak`` to measured (work, seconds) pairs.

    ``fixed_latency`` fixes the latency (when the sizes measured are too alike to identify it) and fits
    the peak alone. ``cache_tier=True`` also tries, for every split between measured sizes with at least
    two points on each side, a faster rate below the split, and keeps the best one only if it clearly
    beats the plain curve (see ``_CACHE_MIN_IMPROVEMENT``). Raises ``ValueError`` with fewer than one
    usable point (two when the latency is free).
    """
    w, t = _clean(work, times)
    need = 1 if fixed_latency is not None else 2
    if w.size < need:
        raise ValueError(f"need at least {need} positive (work, time) points to fit a curve, got {w.size}")
    peak, lat, _ = _fit_two(w, t, fixed_latency)
    curve = Curve(peak=peak, latency_s=lat)
    errs = ape([curve.time_s(x) for x in w], t)
    report = FitReport(n=int(w.size), median_ape=float(np.median(errs)), max_ape=float(np.max(errs)),
                       cache_tier=False)
    if cache_tier and fixed_latency is None:
        sizes = np.unique(w)
        best: tuple[Curve, np.ndarray] | None = None
        for i in range(1, sizes.size - 2):  # >= 2 distinct sizes on each side
            split = float(sizes[i])
            cpk, clat, ccache, _cost = _fit_cache(w, t, split)
            if ccache < _CACHE_MIN_GAIN * cpk:
                continue
            cand = Curve(peak=cpk, latency_s=clat, cache_bytes=float(math.sqrt(split * sizes[i + 1])),
                         cache_peak=ccache)
            cerrs = ape([cand.time_s(x) for x in w], t)
            if best is None or np.median(np.abs(np.log1p(cerrs))) < np.median(np.abs(np.log1p(best[1]))):
                best = (cand, cerrs)
        if best is not None:
            cand, cerrs = best
            old = float(np.median(errs))
            if float(np.median(cerrs)) <= (1.0 - _CACHE_MIN_IMPROVEMENT) * old:
                curve = cand
                report = FitReport(n=int(w.size), median_ape=float(np.median(cerrs)),
                                   max_ape=float(np.max(cerrs)), cache_tier=True)
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
