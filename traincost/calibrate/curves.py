"""Fitting each fitted quantity of a profile from raw measurement rows: the compute, memory, reduction and
kernel curves, the optimizer step costs, and the tables kept in ``properties`` (conv and linear-layer shape
factors, the partial-vector tail of channels_last batch norm, the first-touch cost of a fresh allocation).

Matmul curves try a depth term on the smallest GEMM dimension (skinny GEMMs of linear layers at small batch,
measured in the CPU grid); conv curves one on a GEMM dimension each, and every measured convolution's
measured / curve time is kept (``properties["conv_shape_factors"]``) for
:func:`traincost.hardware.profile.shape_factor`, which corrects a curve near the shapes where it is wrong (a CPU's
4-channel convolutions run 3-8x below it). The curve fits themselves: :mod:`traincost.calibrate.fitting`.
"""

from __future__ import annotations

import dataclasses
import statistics
from typing import Any

from traincost.calibrate.fitting import fit_curve, fit_linear_nonneg
from traincost.calibrate.grid import _CHANNEL_KERNELS, _CONV_CLASS, _one_line
from traincost.hardware.profile import (
    CHANNELS_LAST,
    CONV_DEPTH_KINDS,
    FIRST_TOUCH_MIN_BYTES,
    FLAT,
    TAIL_KERNEL_OPS,
    Curve,
)


def _fit_groups(groups: dict[tuple[str, str], list[dict[str, Any]]], cache_tier: bool, prefix: str,
                errors: list[dict[str, Any]], fits: list[dict[str, Any]]) -> dict[tuple[str, str], Curve]:
    """One curve per (class or op, mode) group of measurements; a failed fit is recorded in ``errors``."""
    curves: dict[tuple[str, str], Curve] = {}
    for (cls, mode), rows in sorted(groups.items()):
        try:
            curve, rep = _fit(rows, cache_tier=cache_tier)
        except Exception as exc:  # noqa: BLE001
            errors.append({"family": "fit", "what": f"{prefix}{cls} {mode}".strip(), "error": _one_line(exc)})
            continue
        curves[(cls, mode)] = curve
        fits.append({"class": prefix.replace(" ", ":") + cls, "mode": mode, **rep.to_dict(), **curve.to_dict()})
    return curves


def _fit_curves(raw: dict[str, Any], errors: list[dict[str, Any]], fits: list[dict[str, Any]]
                ) -> tuple[dict[str, dict[str, Curve]], Curve | None, Curve | None]:
    """Compute curves per (class, mode), memory and reduction curves, from raw measurements."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in raw.get("matmul", []):
        groups.setdefault(("matmul", r["mode"]), []).append(r)
    for r in raw.get("conv", []):
        groups.setdefault((_CONV_CLASS[r["pass"]], r["mode"]), []).append(r)
    compute: dict[str, dict[str, Curve]] = {}
    for (cls, mode), curve in _fit_groups(groups, False, "", errors, fits).items():
        compute.setdefault(cls, {})[mode] = curve
    bandwidth = _fit_groups({(family, "bytes"): raw[family] for family in ("memory", "reduction") if raw.get(family)},
                            True, "", errors, fits)
    return compute, bandwidth.get(("memory", "bytes")), bandwidth.get(("reduction", "bytes"))


def _partial_vector(r: dict[str, Any], lanes: int) -> bool:
    """A channels_last kernel point of :data:`~traincost.hardware.profile.TAIL_KERNEL_OPS` whose channels are not a
    multiple of the SIMD lanes: its pixels end in partial vectors (priced by ``kernel_tail_s_per_row``)."""
    shape = r.get("shape") or []
    return (r.get("op") in TAIL_KERNEL_OPS and str(r.get("mode", "")).endswith(CHANNELS_LAST)
            and len(shape) == 4 and shape[1] % lanes != 0)


def _fit_kernels(raw: dict[str, Any], errors: list[dict[str, Any]], fits: list[dict[str, Any]], lanes: int
                 ) -> dict[str, dict[str, Curve]]:
    """Memory curves of single ops (``DeviceProfile.kernels``) per (op, mode), work = formula bytes; the
    partial-vector points (:func:`_partial_vector`) are left to :func:`_kernel_tail_table`."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in raw.get("kernel", []):
        if not _partial_vector(r, lanes):
            groups.setdefault((r["op"], r["mode"]), []).append(r)
    kernels: dict[str, dict[str, Curve]] = {}
    for (op, mode), curve in _fit_groups(groups, True, "kernel ", errors, fits).items():
        kernels.setdefault(op, {})[mode] = curve
    return kernels


def _fit(rows: list[dict[str, Any]], cache_tier: bool) -> tuple[Curve, Any]:
    """Fit one curve; with a single distinct size (a series cut short) only the peak, latency 0.

    Convolutions also try the depth term on each GEMM dimension of :data:`CONV_DEPTH_KINDS` and keep the one
    with the lowest median error (the default ``c_in_kk`` unless another is better by a clear margin):
    which dimension limits a pass differs by pass and device (a GPU's weight gradient is slow on a small
    output, a CPU's on a small reduction over 2x2 maps). Matrix multiplies try the depth term on the
    smallest of M, N and K (``min_mnk``), kept only if it clearly beats the plain curve (:func:`fit_curve`);
    batch norm and pooling kernels a depth term on the channels (``channels``) against the plain curve with
    its cache tier, kept only if it cuts the median error by the same margin."""
    work = [r["work"] for r in rows]
    times = [r["median_s"] for r in rows]
    if len(set(work)) < 2:
        return fit_curve(work, times, fixed_latency=0.0)
    if rows and _is_gemm(rows[0]):
        dims = [min(r["shape"]) for r in rows]
        curve, rep = fit_curve(work, times, depth=dims if len(set(dims)) > 1 else None)
        return (dataclasses.replace(curve, depth_kind="min_mnk") if curve.k_half > 0 else curve), rep
    if rows and rows[0].get("op") in _CHANNEL_KERNELS and not rows[0]["mode"].endswith(FLAT):
        plain = fit_curve(work, times, cache_tier=cache_tier)
        curve, rep = fit_curve(work, times, depth=[r["shape"][1] for r in rows])
        if curve.k_half > 0 and rep.median_ape < plain[1].median_ape * (1 - _DEPTH_KIND_MARGIN):
            return dataclasses.replace(curve, depth_kind="channels"), rep
        return plain
    if not (rows and isinstance(rows[0].get("shape"), dict)):
        return fit_curve(work, times, cache_tier=cache_tier)
    best = None
    for kind in CONV_DEPTH_KINDS:
        curve, rep = fit_curve(work, times, depth=[_gemm_depths(r)[kind] for r in rows], cache_tier=cache_tier)
        if curve.k_half > 0:
            curve = dataclasses.replace(curve, depth_kind=kind)
        if best is None or rep.median_ape < best[1].median_ape * (1 - _DEPTH_KIND_MARGIN):
            best = (curve, rep)
    assert best is not None
    return best


def _is_gemm(row: dict[str, Any]) -> bool:
    """A matmul measurement: ``shape`` = [M, K, N] (conv rows carry a dict, kernel rows an ``op``)."""
    shape = row.get("shape")
    return "op" not in row and isinstance(shape, list) and len(shape) == 3


#: Another depth dimension replaces the default only when it cuts the fit's median error by this fraction.
_DEPTH_KIND_MARGIN = 0.1


def _gemm_depths(row: dict[str, Any]) -> dict[str, int]:
    """The GEMM dimensions of a measured convolution (:data:`CONV_DEPTH_KINDS`), as the predictor computes
    them from shapes (:func:`traincost.pricing.geometry.conv_depths`)."""
    sh = row["shape"]
    k = sh["kernel"]
    out = (sh["hw"] + 2 * (k // 2) - k) // sh["stride"] + 1
    c_in_kk, positions = sh["c_in"] * k * k, sh["batch"] * out * out
    return {"c_in_kk": c_in_kk, "c_out_kk": sh["c_out"] * k * k, "positions": positions,
            "min_c_in_kk_positions": min(c_in_kk, positions), "min_channels": min(sh["c_in"], sh["c_out"])}


#: Bytes an optimizer step streams per parameter byte (param, grad, state read; param, state written), for
#: telling the measured lists that fit in the cache tier from those that stream from DRAM.
_OPTIMIZER_TRAFFIC = {"sgd": 5, "adamw": 7}


def _optimizer_fit(raw: dict[str, Any], cache_bytes: float = 0.0) -> dict[str, float]:
    """Per optimizer: ``fixed_s + per_tensor_s x tensors + s_per_byte x parameter bytes`` (non-negative least
    squares over the measured lists), and ``s_per_byte_dram`` from the lists whose traffic exceeds the
    memory curve's cache tier (``cache_bytes``): in a training step forward and backward have evicted the
    parameters, gradients and state, so a model larger than the cache steps at the DRAM rate, which a
    linear fit over cached and streaming lists understates (1.5x on the CPU's ResNet-18 list)."""
    out: dict[str, float] = {}
    for opt in ("sgd", "adamw"):
        rows = [r for r in raw.get("optimizer", []) if r["optimizer"] == opt]
        if not rows:
            continue
        if len(rows) >= 3:
            fixed, per_tensor, per_byte = fit_linear_nonneg(
                [[1.0] * len(rows), [r["tensors"] for r in rows], [r["param_bytes"] for r in rows]],
                [r["median_s"] for r in rows])
        else:
            fixed, per_tensor = 0.0, 0.0
            per_byte = statistics.median(r["median_s"] / r["param_bytes"] for r in rows)
        out[f"{opt}_fixed_s"] = fixed
        out[f"{opt}_per_tensor_s"] = per_tensor
        out[f"{opt}_s_per_byte"] = per_byte
        streaming = [(r["median_s"] - fixed - per_tensor * r["tensors"]) / r["param_bytes"] for r in rows
                     if cache_bytes > 0 and r["param_bytes"] * _OPTIMIZER_TRAFFIC[opt] > cache_bytes]
        if streaming and statistics.median(streaming) > per_byte:
            out[f"{opt}_s_per_byte_dram"] = statistics.median(streaming)
    return out


def _shape_factor_table(raw: dict[str, Any], compute: dict[str, dict[str, Curve]], dispatch_s: float
                        ) -> dict[str, list[list[float]]]:
    """``properties["conv_shape_factors"]``: per conv curve (``"class/mode"``), each measured convolution as
    [C_in, C_out, kh x kw, N x H_out x W_out, measured / curve time] (:func:`traincost.hardware.profile.shape_factor`).
    ``dispatch_s``: the host part of a CPU's measured time (its curves exclude it); 0 on a GPU."""
    table: dict[str, list[list[float]]] = {}
    for r in raw.get("conv", []):
        cls = _CONV_CLASS[r["pass"]]
        curve = compute.get(cls, {}).get(r["mode"])
        if curve is None:
            continue
        depth = _gemm_depths(r)[curve.depth_kind] if curve.k_half > 0 else None
        predicted = curve.time_s(r["work"], depth)
        measured = r["median_s"] - dispatch_s
        if not (predicted > 0 and measured > 0):
            continue
        sh = r["shape"]
        k = sh["kernel"]
        out = (sh["hw"] + 2 * (k // 2) - k) // sh["stride"] + 1
        table.setdefault(f"{cls}/{r['mode']}", []).append(
            [sh["c_in"], sh["c_out"], k * k, sh["batch"] * out * out, round(measured / predicted, 4)])
    return table


def _gemm_factor_table(raw: dict[str, Any], compute: dict[str, dict[str, Curve]], dispatch_s: float
                       ) -> dict[str, list[list[float]]]:
    """``properties["gemm_shape_factors"]``: per matmul curve and aten op (``"matmul/<mode>/<op>"``, op
    ``addmm`` or ``mm``), each measured linear-layer GEMM as [M, K, N, 1, measured / curve time] (the
    coordinates :func:`traincost.hardware.profile.shape_factor` reads; the fourth is a constant). ``dispatch_s`` as
    in :func:`_shape_factor_table`."""
    table: dict[str, list[list[float]]] = {}
    for r in raw.get("linear", []):
        curve = compute.get("matmul", {}).get(r["mode"])
        if curve is None:
            continue
        predicted = curve.time_s(r["work"], min(r["shape"]) if curve.k_half > 0 else None)
        measured = r["median_s"] - dispatch_s
        if predicted > 0 and measured > 0:
            table.setdefault(f"matmul/{r['mode']}/{r['op']}", []).append(
                [*r["shape"], 1, round(measured / predicted, 4)])
    return table


def _kernel_tail_table(raw: dict[str, Any], kernels: dict[str, dict[str, Curve]], dispatch_s: float,
                       lanes: int) -> dict[str, dict[str, float]]:
    """``properties["kernel_tail_s_per_row"]``: per channels_last kernel curve of
    :data:`~traincost.hardware.profile.TAIL_KERNEL_OPS` (``"<op>/<mode>"``) and measured channel count C (not a
    multiple of ``lanes``), the median over its measured batches of (measured - dispatch - curve time) / (N x
    H x W), floored at 0: what the partial SIMD vector ending each pixel costs
    (:meth:`traincost.hardware.profile.DeviceProfile.kernel_tail_s`)."""
    per: dict[str, dict[int, list[float]]] = {}
    for r in raw.get("kernel", []):
        curve = kernels.get(r["op"], {}).get(r["mode"])
        if curve is None or not _partial_vector(r, lanes):
            continue
        n, c, h, w = r["shape"]
        predicted = curve.time_s(r["work"], c if curve.k_half > 0 else None)
        per.setdefault(f"{r['op']}/{r['mode']}", {}).setdefault(c, []).append(
            max(0.0, r["median_s"] - dispatch_s - predicted) / (n * h * w))
    return {key: {str(c): float(statistics.median(v)) for c, v in sorted(by_c.items())}
            for key, by_c in sorted(per.items())}


def _first_touch_fit(raw: dict[str, Any]) -> dict[str, float]:
    """``first_touch_s_per_byte``: the median over the measured sizes at or above
    :data:`~traincost.hardware.profile.FIRST_TOUCH_MIN_BYTES` of (fresh - reused write) / bytes, floored at 0; {}
    without such measurements. Below that size glibc serves a freed block again without asking the OS."""
    rows = [r for r in raw.get("first_touch", []) if r["tensor_bytes"] >= FIRST_TOUCH_MIN_BYTES]
    if not rows:
        return {}
    per_byte = [max(0.0, r["median_s"] - r["reuse_median_s"]) / r["tensor_bytes"] for r in rows]
    return {"first_touch_s_per_byte": float(statistics.median(per_byte))}


def _minus_latency(curve: Curve, dispatch_s: float) -> Curve:
    """The curve with ``dispatch_s`` taken out of its latency (every other parameter kept)."""
    return dataclasses.replace(curve, latency_s=max(0.0, curve.latency_s - dispatch_s))
