"""Physical bounds on a calibrated profile: :func:`check` lists what a calibration measured or fitted that no
device can do, the signature of a run disturbed by other processes (a busy CPU stalls the intra-op thread
pool: a few repeats take 10x longer, a curve fitted through them gets an absurd peak and latency).

Every check reads the fitted profile and its ``raw`` rows only (no timing), so it is exact and cheap; each
:class:`Problem` names the measurement families (``raw`` keys) whose re-measurement could cure it.

Bounds (the shipped calibrated profiles, measured on quiet machines, pass every one with a margin):

* compute peaks, catalog GPU: a measured rate (work / median time of a raw row) above
  :data:`DATASHEET_MEASURED` x the datasheet peak of its mode, or a fitted peak above :data:`DATASHEET_FITTED` x
  it (a depth-term curve's peak is the asymptote at infinite depth: the H200's channels_last bf16 input
  gradient fits 1.28 x datasheet while no measured point passes 1.0 x).
* compute peaks, any device: a fitted matmul or conv peak above :data:`FITTED_OVER_GEMM` x the best rate any
  measured matmul reached, or a measured convolution faster than :data:`CONV_OVER_GEMM` x that rate (a
  convolution runs as GEMMs; Winograd and direct kernels win a little; the quiet 2-core Xeon's fitted peaks
  reach 1.49 x, its measured conv rates less).
* latencies: every curve's ``latency_s`` finite and at most :data:`MAX_LATENCY_S` (the largest in the shipped
  profiles is 0.3 ms, a CPU's conv backward); ``dispatch_s`` and ``dispatch_autocast_s`` positive and at most
  :data:`MAX_DISPATCH_S`, ``launch_s`` at most :data:`MAX_DISPATCH_S` (they are 1 to 11 us).
* memory and reduction bandwidth: at least :data:`BANDWIDTH_FLOOR` of the kind (a CPU's single channel of
  DDR4 streams ~20 GB/s; the shipped CPUs fit 36-53 GB/s), and on a catalog GPU between
  :data:`DATASHEET_BANDWIDTH` x its datasheet bandwidth (the H200 fits 0.91 x).
* monotone series: along a series that only grows (memory and reduction by size, square matmuls by size, one
  kernel shape by batch) no point may take under :data:`MONOTONE_SLACK` x the time of a smaller one. Not
  convolutions: a quiet 2-core EPYC ran some at batch 4 in 0.19-0.5 x their batch-1 time (another algorithm).
* spread of repeats: a family's median (max - min) / median over its points at most :data:`MAX_MEDIAN_SPREAD`
  (quiet machines: 0.4 % to 27 %).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from traincost.hardware.profile import Curve, DeviceProfile

if TYPE_CHECKING:
    from traincost.hardware.catalog import GPUSpec

__all__ = ["Problem", "check", "describe", "families_to_remeasure"]

#: Fixed seconds per kernel above which a fitted curve is a disturbed fit (the shipped profiles: at most 0.3 ms).
MAX_LATENCY_S = 10e-3
#: Seconds per eager op (dispatch) or tiny kernel launch above which the measurement was disturbed.
MAX_DISPATCH_S = 1e-3
#: A fitted matmul or conv peak may exceed the best measured matmul rate by at most this factor.
FITTED_OVER_GEMM = 2.0
#: A measured convolution may run at most this factor faster than the best measured matmul.
CONV_OVER_GEMM = 1.5
#: A measured rate may exceed the datasheet peak of its mode by at most this factor (clock boost, rounding).
DATASHEET_MEASURED = 1.1
#: A fitted peak (an asymptote) may exceed the datasheet peak of its mode by at most this factor.
DATASHEET_FITTED = 1.5
#: Lowest plausible memory / reduction bandwidth (bytes/s) per device kind.
BANDWIDTH_FLOOR = {"cpu": 5e9, "cuda": 20e9}
#: A catalog GPU's fitted memory / reduction bandwidth must lie within these fractions of its datasheet.
DATASHEET_BANDWIDTH = (0.25, 1.25)
#: Along a growing series, a larger point taking under this fraction of a smaller point's time is a disturbance.
MONOTONE_SLACK = 0.5
#: Largest plausible median spread of repeats, (max - min) / median, over a family's points.
MAX_MEDIAN_SPREAD = 0.5
#: Families whose spread is checked (at least :data:`_MIN_SPREAD_POINTS` points); first_touch is noisy by nature.
_SPREAD_FAMILIES = ("memory", "reduction", "dispatch", "matmul", "linear", "conv", "kernel", "optimizer")
_MIN_SPREAD_POINTS = 4


@dataclass(frozen=True)
class Problem:
    """One implausible quantity: ``check`` (which bound), ``what`` (the quantity), ``message`` (one line with
    the numbers) and ``families``, the ``raw`` measurement families whose re-measurement could cure it."""

    check: str
    what: str
    message: str
    families: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["families"] = list(self.families)
        return out


def _gf(rate: float) -> str:
    return f"{rate / 1e9:,.1f} GFLOP/s"


def _gb(rate: float) -> str:
    return f"{rate / 1e9:,.1f} GB/s"


def _us(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:,.2f} us"


def _family_of(op_class: str) -> str:
    return "matmul" if op_class == "matmul" else "conv"


def _rate(row: dict[str, Any]) -> float:
    t = row.get("median_s")
    w = row.get("work")
    return float(w) / float(t) if isinstance(t, (int, float)) and t > 0 and isinstance(w, (int, float)) else 0.0


def _catalog_gpu(profile: DeviceProfile) -> "GPUSpec | None":
    if profile.kind != "cuda" or not profile.catalog_key:
        return None
    from traincost.hardware.catalog import load_gpus

    return next((g for g in load_gpus() if g.key == profile.catalog_key), None)


def _curves(profile: DeviceProfile) -> list[tuple[str, str, str, Curve]]:
    """(family, name, unit, curve) of every fitted curve."""
    out = [(_family_of(cls), f"{cls}/{mode}", "flop", c) for cls, modes in profile.compute.items()
           for mode, c in modes.items()]
    out += [("memory", "memory", "byte", profile.memory), ("reduction", "reduction", "byte", profile.reduction)]
    out += [("kernel", f"kernel {op}/{mode}", "byte", c) for op, modes in profile.kernels.items()
            for mode, c in modes.items()]
    return out


def _latencies(profile: DeviceProfile) -> list[Problem]:
    out = []
    for family, name, _, c in _curves(profile):
        if not (math.isfinite(c.latency_s) and 0 <= c.latency_s <= MAX_LATENCY_S):
            out.append(Problem("latency", name, f"{name} latency {_us(c.latency_s)} per kernel "
                               f"(bound {_us(MAX_LATENCY_S)})", (family,)))
    fixed = [("dispatch_s", profile.dispatch_s, "dispatch", True),
             ("dispatch_autocast_s", profile.dispatch_autocast_s, "dispatch", True),
             ("launch_s", profile.launch_s, "launch", profile.kind != "cpu")]
    for name, value, family, positive in fixed:
        ok = math.isfinite(value) and (value > 0 if positive else value >= 0) and value <= MAX_DISPATCH_S
        if not ok:
            out.append(Problem("latency", name, f"{name} {_us(value)} (bound: positive, at most "
                               f"{_us(MAX_DISPATCH_S)})", (family,)))
    return out


def _gemm_bounds(profile: DeviceProfile) -> list[Problem]:
    """Fitted matmul and conv peaks, and measured conv rates, against the best measured matmul rate."""
    best = max((_rate(r) for r in profile.raw.get("matmul", [])), default=0.0)
    if best <= 0:  # no matmul measured (a datasheet fallback): nothing to compare with
        return []
    out = []
    for cls, modes in profile.compute.items():
        for mode, c in modes.items():
            if c.peak > FITTED_OVER_GEMM * best:
                fams = ("conv", "matmul") if cls != "matmul" else ("matmul",)
                out.append(Problem("peak_over_gemm", f"{cls}/{mode}",
                                   f"{cls}/{mode} peak {_gf(c.peak)} > {FITTED_OVER_GEMM:g} x the best measured "
                                   f"matmul {_gf(best)}", fams))
    fastest: dict[str, float] = {}
    for r in profile.raw.get("conv", []):
        key = f"{r.get('pass')}/{r.get('mode')}"
        fastest[key] = max(fastest.get(key, 0.0), _rate(r))
    for key, rate in sorted(fastest.items()):
        if rate > CONV_OVER_GEMM * best:
            out.append(Problem("conv_over_gemm", f"conv {key}",
                               f"conv {key} measured at {_gf(rate)} > {CONV_OVER_GEMM:g} x the best measured "
                               f"matmul {_gf(best)}", ("conv", "matmul")))
    return out


def _flops_bound(gpu: "GPUSpec", cls: str, mode: str, tf32_conv: bool) -> float | None:
    """The datasheet FLOP/s that bounds a (class, mode): a convolution in an fp32 mode may run on TF32 tensor
    cores or a Winograd / FFT algorithm (the H200's fp32_strict weight gradient measures 90 TFLOP/s against a
    67 TFLOP/s fp32 datasheet), so its bound is the larger of the fp32 and tf32 peaks."""
    from traincost.hardware.datasheet import _datasheet_peak_flops

    ds = _datasheet_peak_flops(gpu, cls, mode, tf32_conv)
    if cls != "matmul" and mode.startswith("fp32"):
        tf32 = _datasheet_peak_flops(gpu, cls, mode.replace("fp32_strict", "tf32").replace("fp32", "tf32"), True)
        ds = max(ds or 0.0, tf32 or 0.0) or None
    return ds


def _datasheet_bounds(profile: DeviceProfile, gpu: "GPUSpec") -> list[Problem]:
    tf32_conv = bool(profile.properties.get("conv_fp32_uses_tf32", True))
    out = []
    for cls, modes in profile.compute.items():
        for mode, c in modes.items():
            ds = _flops_bound(gpu, cls, mode, tf32_conv)
            if ds and c.peak > DATASHEET_FITTED * ds:
                out.append(Problem("peak_over_datasheet", f"{cls}/{mode}",
                                   f"{cls}/{mode} peak {_gf(c.peak)} > {DATASHEET_FITTED:g} x the {gpu.name} "
                                   f"datasheet {_gf(ds)}", (_family_of(cls),)))
    fastest: dict[tuple[str, str], float] = {}
    for family in ("matmul", "conv"):
        for r in profile.raw.get(family, []):
            cls = "matmul" if family == "matmul" else "conv"
            key = (cls, str(r.get("mode")))
            fastest[key] = max(fastest.get(key, 0.0), _rate(r))
    for (cls, mode), rate in sorted(fastest.items()):
        ds = _flops_bound(gpu, cls, mode, tf32_conv)
        if ds and rate > DATASHEET_MEASURED * ds:
            out.append(Problem("measured_over_datasheet", f"{cls} {mode}",
                               f"{cls} {mode} measured at {_gf(rate)} > {DATASHEET_MEASURED:g} x the {gpu.name} "
                               f"datasheet {_gf(ds)}", (cls,)))
    lo, hi = DATASHEET_BANDWIDTH
    bw = gpu.mem_bandwidth_gb_s * 1e9
    for name, c in (("memory", profile.memory), ("reduction", profile.reduction)):
        if not lo * bw <= c.peak <= hi * bw:
            out.append(Problem("bandwidth_vs_datasheet", name,
                               f"{name} bandwidth {_gb(c.peak)} outside {lo:g}-{hi:g} x the {gpu.name} datasheet "
                               f"{_gb(bw)}", (name,)))
    return out


def _bandwidth_floor(profile: DeviceProfile) -> list[Problem]:
    floor = BANDWIDTH_FLOOR.get(profile.kind, min(BANDWIDTH_FLOOR.values()))
    return [Problem("bandwidth_floor", name, f"{name} bandwidth {_gb(c.peak)} < the floor of {_gb(floor)}", (name,))
            for name, c in (("memory", profile.memory), ("reduction", profile.reduction)) if c.peak < floor]


def _series(raw: dict[str, Any]) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """(family, series) -> [(size, median_s)] for the series whose every step does more work."""
    out: dict[tuple[str, str], list[tuple[float, float]]] = {}

    def add(family: str, key: str, size: Any, t: Any) -> None:
        if isinstance(size, (int, float)) and isinstance(t, (int, float)):
            out.setdefault((family, key), []).append((float(size), float(t)))

    for family in ("memory", "reduction"):
        for r in raw.get(family, []):
            add(family, f"{family} {r.get('op', '')}".strip(), r.get("tensor_bytes"), r.get("median_s"))
    for r in raw.get("matmul", []):
        shape = r.get("shape")
        if isinstance(shape, list) and len(shape) == 3 and len(set(shape)) == 1:
            add("matmul", f"matmul {r.get('mode')} n^3", shape[0], r.get("median_s"))
    for r in raw.get("kernel", []):
        sh = r.get("shape")
        if isinstance(sh, list) and len(sh) == 4:
            add("kernel", f"kernel {r.get('op')} {r.get('mode')} {sh[1:]} {r.get('window')}", sh[0], r.get("median_s"))
    return out


def _monotone(raw: dict[str, Any]) -> list[Problem]:
    out = []
    for (family, key), pts in sorted(_series(raw).items()):
        slowest: tuple[float, float] | None = None  # (size, time) of the slowest smaller point so far
        worst: tuple[float, float, float, float] | None = None
        for size, t in sorted(pts):
            if slowest is not None and size > slowest[0] and t < MONOTONE_SLACK * slowest[1]:
                if worst is None or t / slowest[1] < worst[3] / worst[1]:
                    worst = (slowest[0], slowest[1], size, t)
            if slowest is None or t > slowest[1]:
                slowest = (size, t)
        if worst is not None:
            out.append(Problem("monotone", key, f"{key}: size {worst[2]:g} took {_us(worst[3])}, under "
                               f"{MONOTONE_SLACK:g} x the {_us(worst[1])} of the smaller size {worst[0]:g}",
                               (family,)))
    return out


def _spread(raw: dict[str, Any]) -> list[Problem]:
    import statistics

    out = []
    for family in _SPREAD_FAMILIES:
        spreads = [r["rel_range"] for r in raw.get(family, []) if isinstance(r, dict)
                   and isinstance(r.get("rel_range"), (int, float)) and math.isfinite(r["rel_range"])]
        if len(spreads) >= _MIN_SPREAD_POINTS and statistics.median(spreads) > MAX_MEDIAN_SPREAD:
            out.append(Problem("spread", family, f"{family} repeats spread by a median "
                               f"{statistics.median(spreads):.0%} of their median (bound "
                               f"{MAX_MEDIAN_SPREAD:.0%})", (family,)))
    return out


def check(profile: DeviceProfile, gpu: "GPUSpec | None" = None) -> list[Problem]:
    """Every implausible fitted constant or raw series of a calibrated ``profile`` ([] when all is plausible).

    ``gpu``: the catalog entry whose datasheet bounds the rates (default: the profile's ``catalog_key``)."""
    if gpu is None:
        gpu = _catalog_gpu(profile)
    problems = _latencies(profile) + _gemm_bounds(profile)
    if gpu is not None:
        problems += _datasheet_bounds(profile, gpu)
    problems += _bandwidth_floor(profile) + _monotone(profile.raw) + _spread(profile.raw)
    return problems


def families_to_remeasure(problems: list[Problem]) -> list[str]:
    """The measurement families named by ``problems``, in first-named order."""
    return list(dict.fromkeys(f for p in problems for f in p.families))


def describe(problems: list[Any], first: int = 3) -> str:
    """One line naming the first ``first`` problems (:class:`Problem` or its dict) and how many more."""
    msgs = [p.message if isinstance(p, Problem) else str(p.get("message", p)) for p in problems]
    more = f" (and {len(msgs) - first} more)" if len(msgs) > first else ""
    return "; ".join(msgs[:first]) + more

