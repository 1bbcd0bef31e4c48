"""Measure real training steps on a device: the ground truth every prediction is judged against.

One measurement builds the model on the device, runs warm-up steps on synthetic data (random inputs
and labels, never zeros), then times steps with device synchronisation and reports the median, min
and max step time and, on CUDA, the peak memory the caching allocator handed out
(``torch.cuda.max_memory_allocated``), comparable to the walk's predicted peak.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from traincost.flopmodel.arch import ArchSpec
from traincost.flopmodel.walker import StepConfig, make_optimizer

#: The most steps one measurement times (``min_seconds`` on a sub-millisecond step).
MAX_REPEATS = 1000


@dataclass(frozen=True)
class StepTiming:
    """Measured step times in milliseconds and the measured CUDA peak (None on CPU)."""

    median_ms: float
    min_ms: float
    max_ms: float
    repeats: int
    peak_memory_bytes: int | None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _loss(output: Any, target: torch.Tensor) -> torch.Tensor:
    leaves = [t for t in torch.utils._pytree.tree_flatten(output)[0]
              if isinstance(t, torch.Tensor) and t.dim() >= 2 and t.is_floating_point()]
    return sum(nn.functional.cross_entropy(t, target[: t.shape[0]] % t.shape[1]) for t in leaves)


def build_on(spec: ArchSpec, device: torch.device) -> nn.Module:
    """Build ``spec`` with real (randomly initialised) weights on ``device``."""
    model = spec.build()
    if any(p.is_meta for p in model.parameters()):
        model = model.to_empty(device=device)
        for m in model.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
        for b in model.buffers():  # BN statistics: running_var must be positive
            if b.is_floating_point():
                b.fill_(1.0)
    return model.to(device)


def measure_step(model: nn.Module, sample_shape: tuple[int, ...], config: StepConfig,
                 device: torch.device, *, warmup: int = 3, repeats: int = 10,
                 max_seconds: float = 20.0, min_seconds: float = 0.0) -> StepTiming:
    """Time training steps of ``model`` as the walker describes them, after ``warmup`` steps.

    At least ``repeats`` steps and, when ``min_seconds`` > 0, more until the timed steps took
    ``min_seconds`` in all (like ``timeit``'s autorange: a 1 ms step is timed hundreds of times, not 5),
    at most :data:`MAX_REPEATS`; timing stops once ``max_seconds`` have passed and 3 steps are timed.
    """
    model.train()
    if config.channels_last and len(sample_shape) == 3:
        model = model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(config.optimizer, params)
    fmt = torch.channels_last if config.channels_last and len(sample_shape) == 3 else torch.contiguous_format
    x = torch.randn((config.batch_size, *sample_shape), device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 1000, (config.batch_size,), device=device)
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.precision)
    scaler = torch.amp.GradScaler(device.type) if config.precision == "fp16" else None
    old_tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = config.precision == "tf32"

    def step() -> None:
        with torch.autocast(device.type, dtype=autocast_dtype or torch.float32,
                            enabled=autocast_dtype is not None):
            loss = _loss(model(x), y)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        opt.zero_grad(set_to_none=True)

    try:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        for _ in range(warmup):
            step()
        _sync(device)
        times: list[float] = []
        budget_end = time.perf_counter() + max_seconds
        while len(times) < MAX_REPEATS and (len(times) < repeats or sum(times) < 1e3 * min_seconds):
            t0 = time.perf_counter()
            step()
            _sync(device)
            times.append((time.perf_counter() - t0) * 1e3)
            if time.perf_counter() > budget_end and len(times) >= 3:
                break
        peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old_tf32
    return StepTiming(statistics.median(times), min(times), max(times), len(times), peak)
