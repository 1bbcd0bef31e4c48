"""Assembling a calibrated :class:`DeviceProfile` from a run's raw measurements, and :func:`refit`, which
fits a calibrated profile again from its ``raw`` without the device. Both go through :func:`_fit_raw`, which
also puts datasheet values in for a family that failed entirely.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

from traincost.calibrate.curves import (
    _first_touch_fit,
    _fit_curves,
    _fit_kernels,
    _gemm_factor_table,
    _kernel_tail_table,
    _minus_latency,
    _optimizer_fit,
    _shape_factor_table,
)
from traincost.calibrate.host import _catalog_key, _properties, _software, device_name
from traincost.calibrate.points import _Run
from traincost.errors import TraincostError, TraincostUsageError
from traincost.hardware.datasheet import DEFAULT_DISPATCH_S, datasheet_profile
from traincost.hardware.profile import (
    CHANNELS_LAST,
    SCHEMA_VERSION,
    DeviceProfile,
    summarize_spread,
    vector_lanes,
)

__all__ = ["refit"]


@dataclass
class _Fitted:
    """What a fit of raw measurements gives: ``profile_fields`` are the fitted :class:`DeviceProfile` fields
    (compute, kernels, memory, reduction, dispatch_s, dispatch_autocast_s, launch_s, optimizer), passed to
    the profile as they are; ``fits`` the fit reports; ``fallbacks`` what stood in for failed parts;
    ``properties`` fitted constants kept in ``DeviceProfile.properties`` (``first_touch_s_per_byte``,
    ``conv_shape_factors``)."""

    profile_fields: dict[str, Any]
    fits: list[dict[str, Any]]
    fallbacks: list[str]
    properties: dict[str, Any] = field(default_factory=dict)


def _fit_raw(raw: dict[str, Any], kind: str, has_tf32: bool, errors: list[dict[str, Any]],
             fb: DeviceProfile | None, what: str, lanes: int) -> _Fitted:
    """Every fitted constant of a profile from its raw measurements (shared by calibrate and refit).

    ``fb``: a datasheet profile whose values stand in for a family that failed entirely (None: raise
    ``TraincostError`` when matmul or memory is missing). ``errors`` receives fit failures. ``lanes``: the
    CPU's fp32 SIMD lanes (:func:`~traincost.hardware.profile.vector_lanes`).
    """
    fits: list[dict[str, Any]] = []
    fallbacks: list[str] = []
    compute, memory, reduction = _fit_curves(raw, errors, fits)
    kernels = _fit_kernels(raw, errors, fits, lanes)

    disp: dict[tuple[str, Any], dict[str, Any]] = {}
    for r in raw.get("dispatch", []):  # the faster of the rounds of each loop
        key = (r["op"], r.get("autocast"))
        if key not in disp or r["median_s"] < disp[key]["median_s"]:
            disp[key] = r
    dispatch_s = disp[("add", None)]["median_s"] if ("add", None) in disp else None
    auto = [r["median_s"] / r["aten_ops_per_call"] for (op, ac), r in disp.items() if ac and op == "mm"]
    dispatch_autocast_s = auto[0] if auto else None
    launch_rows = raw.get("launch", [])
    launch_s = launch_rows[0]["median_s"] if launch_rows else (0.0 if kind == "cpu" else None)

    def need(name: str, value: Any, fallback: Any) -> Any:
        if value is not None:
            return value
        if fallback is None:
            errs = "; ".join(e["error"] for e in errors if e["family"] in (name, "fit"))[:300]
            raise TraincostError(f"calibration of {what} failed: no usable {name} measurement "
                                 f"({errs or 'none ran'})")
        fallbacks.append(f"{name}: datasheet-derived value used (measurement failed)")
        return fallback

    if not compute.get("matmul"):
        compute["matmul"] = need("matmul", None, dict(fb.compute["matmul"]) if fb else None)
    memory = need("memory", memory, fb.memory if fb else None)
    if reduction is None:
        reduction = memory
        fallbacks.append("reduction: memory curve used (measurement failed)")
    if dispatch_s is None:
        dispatch_s = need("dispatch", None, fb.dispatch_s if fb else DEFAULT_DISPATCH_S)
    if dispatch_autocast_s is None:
        dispatch_autocast_s = dispatch_s * 1.25
        fallbacks.append("dispatch_autocast_s: 1.25 x dispatch_s (measurement failed)")
    if launch_s is None:
        launch_s = need("launch", None, fb.launch_s if fb else 2.5e-6)

    # On a CPU, timed ops include their own dispatch: curve latencies exclude it (see traincost.hardware.profile).
    if kind == "cpu":
        compute = {cls: {m: _minus_latency(c, dispatch_s) for m, c in modes_.items()}
                   for cls, modes_ in compute.items()}
        memory = _minus_latency(memory, dispatch_s)
        reduction = _minus_latency(reduction, dispatch_s)
        kernels = {op: {m: _minus_latency(c, dispatch_s) for m, c in modes_.items()} for op, modes_ in kernels.items()}
    host_s = dispatch_s if kind == "cpu" else 0.0
    properties = {**_first_touch_fit(raw), "conv_shape_factors": _shape_factor_table(raw, compute, host_s)}
    if raw.get("linear"):
        properties["gemm_shape_factors"] = _gemm_factor_table(raw, compute, host_s)
    if kind == "cpu":
        properties["kernel_tail_s_per_row"] = _kernel_tail_table(raw, kernels, host_s, lanes)
    # On CUDA, PyTorch's default fp32 convolution is TF32: the tf32 mode of conv is the same measurement,
    # its curve and its measured shapes.
    if kind == "cuda" and has_tf32:
        table = properties["conv_shape_factors"]
        for cls, curves in compute.items():
            if cls.startswith("conv"):
                for key in ("fp32", "fp32" + CHANNELS_LAST):
                    tf32 = key.replace("fp32", "tf32")
                    if key in curves:
                        curves.setdefault(tf32, curves[key])
                    if f"{cls}/{key}" in table:
                        table.setdefault(f"{cls}/{tf32}", table[f"{cls}/{key}"])
    optimizer = _optimizer_fit(raw, memory.cache_bytes if kind == "cpu" else 0.0)
    if not optimizer and fb is not None:
        optimizer = dict(fb.optimizer)
        fallbacks.append("optimizer: datasheet-derived values used (measurement failed)")
    return _Fitted({"compute": compute, "kernels": kernels, "memory": memory, "reduction": reduction,
                    "dispatch_s": float(dispatch_s), "dispatch_autocast_s": float(dispatch_autocast_s),
                    "launch_s": float(launch_s), "optimizer": optimizer}, fits, fallbacks, properties)


def _spread(raw: dict[str, Any]) -> dict[str, Any]:
    measured = {fam: rows for fam, rows in raw.items()
                if fam not in ("probes", "skipped", "fits", "errors") and isinstance(rows, list)}
    spread: dict[str, Any] = summarize_spread([r["rel_range"] for rows in measured.values() for r in rows
                                               if isinstance(r, dict) and "rel_range" in r])
    spread["by_family"] = {fam: summarize_spread([r["rel_range"] for r in rows
                                                  if isinstance(r, dict) and "rel_range" in r])
                           for fam, rows in measured.items()}
    return spread


def _datasheet_fallback(catalog_key: str | None) -> DeviceProfile | None:
    if catalog_key is None:
        return None
    from traincost.hardware.catalog import load_gpus

    spec = next((g for g in load_gpus() if g.key == catalog_key), None)
    return datasheet_profile(spec) if spec is not None else None


def _assemble(run: _Run, modes: list[str], skipped: dict[str, str], quick: bool,
              total_memory: int) -> DeviceProfile:
    dev = run.dev
    catalog_key = _catalog_key(dev) if dev.type == "cuda" else None
    props = _properties(dev)
    fitted = _fit_raw(run.raw, dev.type, "tf32" in modes, run.errors, _datasheet_fallback(catalog_key), str(dev),
                      vector_lanes(props))
    props["modes"] = modes
    props["modes_skipped"] = skipped
    props["fallbacks"] = fitted.fallbacks
    props.update(fitted.properties)
    props["curve_latency_excludes_dispatch"] = True
    props["timing"] = ("CUDA events, device time; tiny kernels preloaded behind torch.cuda._sleep"
                       if dev.type == "cuda" else "time.perf_counter, synchronous wall time")
    props["settings"] = {"repeats": run.s.repeats, "target_sample_s": run.s.target_sample_s,
                         "max_call_s": run.s.max_call_s, "deadline_s": run.s.deadline_s,
                         "points_skipped": len(run.raw.get("skipped", []))}
    raw: dict[str, Any] = dict(run.raw)
    raw["fits"] = fitted.fits
    raw["errors"] = run.errors
    return DeviceProfile(
        schema_version=SCHEMA_VERSION,
        source="calibrated",
        name=device_name(dev),
        kind=dev.type,
        catalog_key=catalog_key,
        memory_bytes=total_memory if total_memory > 0 else 1,
        **fitted.profile_fields,
        software=_software(dev),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        properties=props,
        raw=raw,
        spread=_spread(run.raw),
    )


def refit(profile: DeviceProfile) -> DeviceProfile:
    """Fit every curve of a calibrated profile again from its ``raw`` measurements (no device needed):
    for a profile measured by an older traincost, or on another machine. Measurements, software and
    device properties are kept; ``properties["refit"]`` records the date."""
    from dataclasses import replace as _replace

    if profile.source != "calibrated":
        raise TraincostUsageError(f"only calibrated profiles can be refitted, {profile.name!r} is "
                                  f"{profile.source!r}")
    raw = {k: v for k, v in profile.raw.items() if k not in ("fits", "errors")}
    errors = [e for e in profile.raw.get("errors", []) if e.get("family") != "fit"]
    has_tf32 = "tf32" in profile.properties.get("modes", [])
    fitted = _fit_raw(raw, profile.kind, has_tf32, errors, _datasheet_fallback(profile.catalog_key), profile.name,
                      vector_lanes(profile.properties))
    props = dict(profile.properties)
    props["fallbacks"] = fitted.fallbacks
    props.update(fitted.properties)
    props["refit"] = _dt.date.today().isoformat()
    out = _replace(profile, **fitted.profile_fields, properties=props,
                   raw={**raw, "fits": fitted.fits, "errors": errors}, spread=_spread(raw))
    if "implausible" in props:  # judged again on the new fits
        from traincost.calibrate.plausibility import check

        props["implausible"] = [p.to_dict() for p in check(out)]
    return out
