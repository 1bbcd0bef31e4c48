"""Timers: one measurement of a callable as a raw record (median, min, max, spread, inner loop).

Two warm-up calls, then ``repeats`` samples of ``inner`` back-to-back calls (inner sized so that one sample
lasts ``target_sample_s``), median kept, min / max / spread recorded. CUDA: CUDA events on the stream
(device time), short calls preloaded behind a ``torch.cuda._sleep`` kernel; CPU: ``time.perf_counter``
(synchronous).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from traincost.calibrate.grid import _Settings


def _stats(samples: list[float], inner: int, **extra: Any) -> dict[str, Any]:
    med = statistics.median(samples)
    return {"median_s": med, "min_s": min(samples), "max_s": max(samples), "repeats": len(samples),
            "inner": inner, "rel_range": (max(samples) - min(samples)) / med if med > 0 else 0.0, **extra}


class _CpuTimer:
    """Wall-clock timing of synchronous CPU ops."""

    kind = "cpu"

    def __init__(self, settings: _Settings) -> None:
        self.s = settings

    def sync(self) -> None:
        pass

    def measure(self, fn: Callable[[], Any]) -> dict[str, Any]:
        t0 = time.perf_counter()
        fn()  # cold call: oneDNN primitive creation, allocator warm-up
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        fn()
        est = max(time.perf_counter() - t0, 1e-7)
        inner = int(min(self.s.max_inner, max(1, math.ceil(self.s.target_sample_s / est))))
        samples = []
        for _ in range(self.s.repeats):
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            samples.append((time.perf_counter() - t0) / inner)
        return _stats(samples, inner, first_call_s=first)


class _CudaTimer:
    """Device-time measurement with CUDA events. When one call is short, a ``torch.cuda._sleep`` kernel is
    queued first so that the host runs ahead and the timed calls run back to back on the device."""

    kind = "cuda"

    def __init__(self, settings: _Settings, dev: torch.device) -> None:
        self.s = settings
        self.dev = dev
        self.cycles_per_s: float | None = None
        try:
            torch.cuda.synchronize(dev)
            a, b = self._events()
            torch.cuda._sleep(1_000_000)  # warm the sleep kernel up
            a.record()
            torch.cuda._sleep(2_000_000)
            b.record()
            b.synchronize()
            ms = a.elapsed_time(b)
            if ms > 0:
                self.cycles_per_s = 2_000_000 / (ms / 1e3)
        except Exception:  # noqa: BLE001 - no _sleep on this build: time without preloading
            self.cycles_per_s = None

    @staticmethod
    def _events() -> tuple[Any, Any]:
        return torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def sync(self) -> None:
        torch.cuda.synchronize(self.dev)

    def _preload(self, seconds: float) -> None:
        if self.cycles_per_s is not None and seconds > 0:
            torch.cuda._sleep(int(min(seconds, 0.05) * self.cycles_per_s))

    def measure(self, fn: Callable[[], Any]) -> dict[str, Any]:
        self.sync()
        t0 = time.perf_counter()
        fn()
        self.sync()
        first = time.perf_counter() - t0
        a, b = self._events()
        h0 = time.perf_counter()
        a.record()
        fn()
        b.record()
        host_call = time.perf_counter() - h0
        b.synchronize()
        est = max(a.elapsed_time(b) / 1e3, 1e-7)
        inner = int(min(self.s.max_inner, max(1, math.ceil(self.s.target_sample_s / est))))
        preload = est < 20 * host_call or est < 200e-6
        samples = []
        for _ in range(self.s.repeats):
            a, b = self._events()
            if preload:
                self._preload(inner * host_call * 2.0 + 200e-6)
            a.record()
            for _ in range(inner):
                fn()
            b.record()
            b.synchronize()
            samples.append(a.elapsed_time(b) / 1e3 / inner)
        return _stats(samples, inner, first_call_s=first, preloaded=bool(preload and self.cycles_per_s),
                      host_call_s=host_call)
