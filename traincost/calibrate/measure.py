"""Microbenchmarks that calibrate a device profile: ``calibrate(device, quick, progress) -> DeviceProfile``.

This module runs a calibration: it plans the measurement points of the grid (:mod:`traincost.calibrate.grid`)
in run order, measures each (:mod:`traincost.calibrate.points`) within the time budget, and hands what was
measured to :mod:`traincost.calibrate.assemble`. Each point runs in its own ``try``: a failure is recorded
in ``raw["errors"]`` and the run goes on, so nothing measured is lost.

Order and budget: the cheap families a profile cannot do without run first (memory, reduction, dispatch,
launch, optimizer), then matmul, then the convolutions; a size series stops growing once one call takes
longer than ``max_call_s``, and points still queued after ``deadline_s`` (full GPU 120 s, quick CPU 50 s)
are skipped and listed in ``raw["skipped"]``; Ctrl-C or SIGTERM (``timeout``) stops measuring and the
profile is fitted from what was measured (``properties["interrupted"]``). Full GPU: 643 points (560
conv), about a minute on an H200 by count (sizes x repeats x inner loops of ~2 ms); quick CPU: 218 points,
~15 s on 2 cores; full CPU: 2545 points, ~2 minutes on the 2-core AMD EPYC. ``properties["host_load"]``
says how busy the host was (other processes' CPU seconds per second): on a CPU device a busy host stalls
the intra-op thread pool and inflates every timing.

Plausibility: the fitted profile is checked against physical bounds (:mod:`traincost.calibrate.plausibility`);
each family named by a problem is measured once more (``properties["remeasured"]``, the first rows kept in
``raw["discarded"]``), and what is still implausible is listed in ``properties["implausible"]`` (the CLI
refuses to write such a profile without ``--force``). An interrupted run is not re-measured.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch

from traincost.calibrate.assemble import _assemble
from traincost.calibrate.grid import (
    _CONV_PASSES,
    _FLAT_KERNEL_OPS,
    _KERNEL_MAPS,
    _KERNEL_MAX_BYTES,
    _KERNEL_OPS,
    _LINEAR_ROLES,
    _POOL_WINDOWS,
    _TAIL_KERNEL_MAPS,
    _one_line,
    _settings,
)
from traincost.calibrate.host import (
    _cpu_modes,
    _cuda_modes,
    _host_busy_s,
    _total_memory,
    parse_device,
)
from traincost.calibrate.plausibility import check, families_to_remeasure
from traincost.calibrate.points import (
    _conv_point,
    _dispatch_point,
    _first_touch_point,
    _gemm_point,
    _kernel_point,
    _launch_point,
    _linear_point,
    _memory_point,
    _optimizer_point,
    _Point,
    _reduction_point,
    _Run,
)
from traincost.calibrate.timing import _CpuTimer, _CudaTimer
from traincost.hardware.profile import (
    CHANNELS_LAST,
    FLAT,
    TAIL_KERNEL_OPS,
    DeviceProfile,
)

__all__ = ["ProgressFn", "calibrate", "plan_size"]

ProgressFn = Callable[[int, int, str], None]


def _plan(run: _Run, modes: list[str]) -> list[_Point]:
    """Measurement points in run order: the cheap families the profile cannot do without first (memory,
    reduction, dispatch, launch, optimizer), then matmul, then convolutions (the bulk of the time), so
    that a run past ``deadline_s`` loses only conv modes measured last."""
    s = run.s
    pts: list[_Point] = []
    for nbytes in s.mem_sizes:
        pts.append(_Point("memory", f"memory add {nbytes >> 10} KiB",
                          lambda nbytes=nbytes: _memory_point(run, nbytes), "memory"))
    for nbytes in s.mem_sizes:
        pts.append(_Point("reduction", f"reduction sum {nbytes >> 10} KiB",
                          lambda nbytes=nbytes: _reduction_point(run, nbytes), "reduction"))
    for nbytes in s.first_touch_sizes:
        pts.append(_Point("first_touch", f"first touch {nbytes >> 20} MiB",
                          lambda nbytes=nbytes: _first_touch_point(run, nbytes)))
    dispatch = [_Point("dispatch", f"dispatch {what}", lambda what=what: _dispatch_point(run, what))
                for what in ("add", "mm", "autocast_add", "autocast_mm")]
    pts += dispatch
    if run.dev.type == "cuda":
        pts.append(_Point("launch", "launch latency", lambda: _launch_point(run)))
    for opt in ("sgd", "adamw"):
        for name in s.optimizer_lists:
            pts.append(_Point("optimizer", f"optimizer {opt} {name}",
                              lambda opt=opt, name=name: _optimizer_point(run, opt, name), f"optim-{opt}"))
    for mode in modes:
        for n in s.gemm_squares:
            pts.append(_Point("matmul", f"matmul {mode} {n}^3",
                              lambda mode=mode, n=n: _gemm_point(run, mode, n, n, n), f"matmul-{mode}-sq"))
        for (m, k, n) in s.gemm_rects:
            pts.append(_Point("matmul", f"matmul {mode} {m}x{k}x{n}",
                              lambda mode=mode, m=m, k=k, n=n: _gemm_point(run, mode, m, k, n)))
        for (b, i, o) in s.linear_shapes:
            for role in _LINEAR_ROLES:
                pts.append(_Point("linear", f"linear {role} {mode} b{b} {i}->{o}",
                                  lambda mode=mode, b=b, i=i, o=o, role=role:
                                  _linear_point(run, mode, b, i, o, role)))
    conv_modes = [m for m in modes if m != "tf32"]  # tf32 conv = PyTorch's default fp32 conv on CUDA
    conv_modes += [m + CHANNELS_LAST for m in s.conv_cl_modes if m in modes]
    if run.dev.type == "cuda" and s.conv_strict:
        conv_modes.append("fp32_strict")
    for mode in conv_modes:
        for cpass in _CONV_PASSES:
            for shape in s.conv_shapes:
                for batch in s.conv_batches:
                    label = f"conv {cpass} {mode} b{batch} {shape[0]}->{shape[1]} {shape[2]}px k{shape[3]}"
                    pts.append(_Point("conv", label, lambda mode=mode, shape=shape, batch=batch, cpass=cpass:
                                      _conv_point(run, mode, shape, batch, cpass),
                                      f"conv-{mode}-{cpass}-{shape}"))
    # memory curves of single ops (optional: a profile without them prices these ops on the memory curve),
    # after the convolutions so that a run past its deadline loses these first
    for op in _KERNEL_OPS:
        windows = _POOL_WINDOWS if "pool" in op else _POOL_WINDOWS[:1]
        for mode in s.kernel_modes:
            tail = op in TAIL_KERNEL_OPS and mode.endswith(CHANNELS_LAST)
            for c, hw in _KERNEL_MAPS + (_TAIL_KERNEL_MAPS if tail else ()):
                for batch in s.kernel_batches:
                    if batch * c * hw * hw * 4 > _KERNEL_MAX_BYTES:
                        continue
                    for w in windows:
                        pts.append(_Point("kernel", f"kernel {op} {mode} {batch}x{c}x{hw}x{hw} k{w[0]}s{w[1]}",
                                          lambda op=op, mode=mode, shape=(batch, c, hw, hw), w=w:
                                          _kernel_point(run, op, mode, shape, w), f"kernel-{op}-{mode}-{c}-{w}"))
    for op in _FLAT_KERNEL_OPS:
        for mode in dict.fromkeys(m.removesuffix(CHANNELS_LAST) for m in s.kernel_modes):
            for shape in s.flat_kernel_shapes:
                pts.append(_Point("kernel", f"kernel {op} {mode + FLAT} {shape[0]}x{shape[1]}",
                                  lambda op=op, mode=mode, shape=shape:
                                  _kernel_point(run, op, mode, shape, _POOL_WINDOWS[0])))
    # a second round of the (cheap) dispatch loops, far apart in time from the first: the fit keeps the
    # lower of the two, so a passing disturbance of the host does not become the profile's dispatch cost
    pts += [_Point(p.family, p.label + " (round 2)", p.run) for p in dispatch]
    return pts


def plan_size(device: str = "cpu", quick: bool = False) -> int:
    """Number of measurement points a calibration of ``device`` would run (for budgeting)."""
    dev = parse_device(device)
    total = _total_memory(dev)
    s = _settings(dev.type, quick, total)
    modes = _cuda_modes(dev)[0] if dev.type == "cuda" else ["fp32", "bf16"]
    run = _Run(dev, s, timer=None)
    return len(_plan(run, modes))


def _run_point(run: _Run, pt: _Point, i: int, total: int, progress: ProgressFn | None, started: float) -> None:
    """Measure one point into ``run.raw``; a failure is recorded in ``run.errors`` (never raised)."""
    s = run.s
    if progress is not None:
        progress(i, total, pt.label)
    if pt.series and pt.series in run.skipped_series:
        run.add("skipped", {"family": pt.family, "label": pt.label,
                            "reason": "an earlier, smaller size of the series exceeded max_call_s"})
        return
    if time.perf_counter() - started > s.deadline_s:
        run.add("skipped", {"family": pt.family, "label": pt.label,
                            "reason": f"calibration passed its deadline of {s.deadline_s:g} s"})
        return
    try:
        record = pt.run()
        record["label"] = pt.label
        run.add(pt.family, record)
        if pt.series and record.get("median_s", 0.0) > s.max_call_s:
            run.skipped_series.add(pt.series)
    except Exception as exc:  # noqa: BLE001 - keep what was measured, record the failure
        run.errors.append({"family": pt.family, "what": pt.label, "error": _one_line(exc),
                           "traceback": traceback.format_exc(limit=3)[-1500:]})
        if run.dev.type == "cuda":
            with contextlib.suppress(Exception):
                torch.cuda.synchronize(run.dev)
                torch.cuda.empty_cache()


def _remeasure(run: _Run, points: list[_Point], families: list[str], progress: ProgressFn | None
               ) -> tuple[bool, int]:
    """Measure every point of ``families`` again (those with measured rows; a deadline of its own): the fit
    uses the new rows, the replaced ones are kept in ``raw["discarded"][family]``. Ctrl-C keeps the first
    rows of the family being measured (its partial new rows go to ``discarded``). Returns (interrupted,
    points of both rounds); progress counts on past the first round, with that larger total."""
    families = [f for f in families if run.raw.get(f)]  # a family that failed entirely would fail again
    todo = [pt for pt in points if pt.family in families]
    total = len(points) + len(todo)
    again = progress if progress is None else (
        lambda done, _total, label: progress(len(points) + done, total, f"again: {label}"))
    discarded: dict[str, list[dict[str, Any]]] = {}
    started = time.perf_counter()
    interrupted = False
    for family in families:
        first = run.raw.pop(family, [])
        run.skipped_series -= {pt.series for pt in todo if pt.family == family and pt.series}
        try:
            for j, pt in enumerate(todo):
                if pt.family == family:
                    _run_point(run, pt, j, len(todo), again, started)
        except KeyboardInterrupt:
            discarded[family] = run.raw.pop(family, [])
            run.raw[family] = first
            interrupted = True
            break
        discarded[family] = first
    if discarded:
        run.raw["discarded"] = discarded  # type: ignore[assignment]  # rows, not a measurement family
    return interrupted, total


def calibrate(device: str = "cuda", quick: bool = False, progress: ProgressFn | None = None) -> DeviceProfile:
    """Measure ``device`` ('cpu', 'cuda', 'cuda:N') and return its calibrated :class:`DeviceProfile`.

    ``quick`` measures a smaller grid with fewer repeats (CPU: well under a minute). ``progress`` is
    called as ``progress(done, total, label)`` before each measurement point and once at the end
    (``"fitting"``); a re-measurement goes on counting with a larger ``total``.
    Raises ``TraincostUsageError`` for a bad device and ``TraincostError`` only when a part the profile
    cannot do without (matmul, memory) failed entirely and no datasheet fallback exists; any other
    failure is recorded in ``raw["errors"]`` and, where a value is needed, replaced by a documented
    fallback listed in ``properties["fallbacks"]``. What stays physically implausible after one
    re-measurement is listed in ``properties["implausible"]`` (never raised: the caller decides).
    """
    dev = parse_device(device)
    started = time.perf_counter()
    cpu_started = time.process_time()
    busy_started = _host_busy_s()
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    total_memory = _total_memory(dev)
    s = _settings(dev.type, quick, total_memory)
    cuda_ctx = torch.cuda.device(dev) if dev.type == "cuda" else contextlib.nullcontext()
    with cuda_ctx:
        timer: Any = _CudaTimer(s, dev) if dev.type == "cuda" else _CpuTimer(s)
        run = _Run(dev, s, timer)
        probes: list[dict[str, Any]] = []
        if dev.type == "cuda":
            modes, skipped = _cuda_modes(dev)
        else:
            modes, skipped, probes = _cpu_modes(s)
        run.raw["probes"] = probes
        points = _plan(run, modes)
        total = len(points)
        torch.manual_seed(0)
        interrupted = False
        for i, pt in enumerate(points):
            if interrupted:
                run.add("skipped", {"family": pt.family, "label": pt.label, "reason": "interrupted"})
                continue
            try:
                _run_point(run, pt, i, total, progress, started)
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM (the CLI maps it): keep and fit what was measured
                interrupted = True
                run.add("skipped", {"family": pt.family, "label": pt.label, "reason": "interrupted"})
        if progress is not None:
            progress(total, total, "fitting")
        profile = _assemble(run, modes, skipped, quick, total_memory)
        problems = check(profile)
        remeasured: list[str] = []
        if problems and not interrupted:  # re-measure each family named once, then judge again
            remeasured = families_to_remeasure(problems)
            interrupted, done = _remeasure(run, points, remeasured, progress)
            if progress is not None:
                progress(done, done, "fitting")
            profile = _assemble(run, modes, skipped, quick, total_memory)
            problems = check(profile)
    profile.properties["interrupted"] = interrupted
    profile.properties["remeasured"] = remeasured
    profile.properties["implausible"] = [p.to_dict() for p in problems]
    elapsed = time.perf_counter() - started
    cpu_time = time.process_time() - cpu_started
    busy = _host_busy_s()
    others = (busy - busy_started - cpu_time) if busy is not None and busy_started is not None else None
    profile.properties["calibration_s"] = round(elapsed, 2)
    profile.properties["quick"] = quick
    profile.properties["host_load"] = {
        "loadavg_start": list(load_start) if load_start else None,
        "loadavg_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "process_cpu_s_per_wall_s": round(cpu_time / elapsed, 3) if elapsed > 0 else None,
        # CPU seconds that other processes used per wall second while this ran: ~0 on a quiet host;
        # on a CPU device anything near a core means the timings are inflated.
        "other_processes_cpu_s_per_wall_s": round(max(others, 0.0) / elapsed, 3)
        if others is not None and elapsed > 0 else None,
    }
    return profile


if __name__ == "__main__":  # pragma: no cover - a debugging entry point; the CLI is `traincost calibrate`
    prof = calibrate(sys.argv[1] if len(sys.argv) > 1 else "cpu", quick=True,
                     progress=lambda d, t, label: print(f"{d}/{t} {label}", file=sys.stderr))
    print(prof.to_dict()["compute"])
