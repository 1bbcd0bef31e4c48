"""``count()``: walk one training step and query it: totals, by operator, by module, by class."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from traincost.errors import ModelBuildError, SpecError
from traincost.flopmodel.arch import ArchSpec, resolve, token_input
from traincost.flopmodel.inputs import TENSOR, TrainingInputs
from traincost.flopmodel.records import PHASES, OpRecord
from traincost.flopmodel.walker import StepConfig, Walk, walk

ModelLike = str | Path | ArchSpec | nn.Module
_TOP_LEVEL = "(model)"


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to walk: the module, its per-sample input shape and dtype, and a label."""

    module: nn.Module
    sample_shape: tuple[int, ...]
    input_dtype: torch.dtype
    label: str
    spec: ArchSpec | None
    inputs: TrainingInputs = TENSOR


def load_model(model: ModelLike, input_shape: tuple[int, ...] | str | None = None,
               input_dtype: str | None = None) -> LoadedModel:
    """Resolve ``model`` (name, spec path, ``ArchSpec`` or ``nn.Module``) to a :class:`LoadedModel`."""
    if isinstance(model, nn.Module):
        if input_shape is None:  # a timm model states its own (pretrained_cfg["input_size"])
            input_shape = (getattr(model, "pretrained_cfg", None) or {}).get("input_size")
        if input_shape is None:
            raise SpecError("input_shape is required when passing an nn.Module, e.g. (3, 224, 224)")
        given = ArchSpec("factory", "module:given", {}, input_shape, input_dtype or "float32")
        return LoadedModel(model, given.input_shape, getattr(torch, given.input_dtype),
                           type(model).__name__, None)
    if isinstance(model, Path):
        spec = ArchSpec.from_file(model)
    elif isinstance(model, ArchSpec):
        spec = model
    elif isinstance(model, str):
        spec = resolve(model, input_shape=input_shape, input_dtype=input_dtype)
    else:
        raise SpecError(f"model must be a name, spec path, ArchSpec or nn.Module, got {type(model).__name__}")
    if (input_shape is not None and spec.input_shape is None) or input_dtype is not None:
        spec = spec.with_input(input_shape, input_dtype)
    module = spec.build()
    return LoadedModel(module, spec.sample_shape(module), getattr(torch, spec.input_dtype), spec.label, spec,
                       spec.training_inputs())


@dataclass(frozen=True)
class CountResult:
    """One walked training step with its tables. FLOPs are 2 per multiply-add; bytes are moved bytes."""

    label: str
    walk: Walk

    @property
    def records(self) -> tuple[OpRecord, ...]:
        return self.walk.records

    @property
    def params(self) -> int:
        return self.walk.params

    @property
    def flops(self) -> dict[str, int]:
        """FLOPs by phase (``forward``, ``backward``, ``optimizer``) and ``total``."""
        out = {phase: 0 for phase in PHASES}
        for r in self.records:
            out[r.phase] += r.flops
        out["total"] = sum(out[p] for p in PHASES)
        return out

    @property
    def bytes(self) -> dict[str, int]:
        """Bytes ``read`` and ``written`` by all kernels of the step."""
        return {"read": sum(r.bytes_read for r in self.records),
                "written": sum(r.bytes_written for r in self.records)}

    @property
    def peak_memory_bytes(self) -> int:
        return self.walk.memory.peak_bytes

    @property
    def unpriced_ops(self) -> dict[str, int]:
        return self.walk.unpriced_ops

    @property
    def ops(self) -> int:
        return len(self.records)

    def records_frame(self) -> pd.DataFrame:
        """One row per recorded aten op."""
        return pd.DataFrame([{
            "index": r.index, "phase": r.phase, "module": r.module or _TOP_LEVEL, "op": r.op,
            "op_class": r.op_class, "flops": r.flops, "bytes_read": r.bytes_read,
            "bytes_written": r.bytes_written, "input_shapes": r.input_shapes,
            "output_shapes": r.output_shapes, "dtypes": r.input_dtypes, "n_tensors": r.n_tensors,
            "host_only": r.host_only,
        } for r in self.records])

    def by_operator(self) -> pd.DataFrame:
        """Totals per aten op, heaviest first."""
        return self._group(lambda r: (r.op, r.op_class), ("op", "op_class"))

    def by_class(self) -> pd.DataFrame:
        """Totals per op class and phase."""
        return self._group(lambda r: (r.op_class, r.phase), ("op_class", "phase"))

    def by_module(self) -> pd.DataFrame:
        """Totals per owning module (leaf path), forward and backward FLOPs apart, heaviest first.

        ``(loss)`` holds the cross-entropy, ``(optimizer)`` the optimizer step and ``(model)`` ops
        the model runs outside any submodule; the rows sum to the totals.
        """
        rows: dict[str, dict[str, Any]] = {}
        for r in self.records:
            name = r.module or _TOP_LEVEL
            row = rows.setdefault(name, {"module": name, "ops": 0, "flops": 0, "forward_flops": 0,
                                         "backward_flops": 0, "optimizer_flops": 0, "bytes_read": 0,
                                         "bytes_written": 0})
            row["ops"] += 1
            row["flops"] += r.flops
            row[f"{r.phase}_flops"] += r.flops
            row["bytes_read"] += r.bytes_read
            row["bytes_written"] += r.bytes_written
        frame = pd.DataFrame(list(rows.values()))
        return frame.sort_values(["flops", "bytes_read"], ascending=False, kind="stable").reset_index(drop=True)

    def _group(self, key: Any, names: tuple[str, ...]) -> pd.DataFrame:
        acc: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for r in self.records:
            a = acc[key(r)]
            a[0] += 1
            a[1] += r.flops
            a[2] += r.bytes_read
            a[3] += r.bytes_written
        frame = pd.DataFrame([(*k, *v) for k, v in acc.items()],
                             columns=[*names, "count", "flops", "bytes_read", "bytes_written"])
        return frame.sort_values(["flops", "bytes_read"], ascending=False, kind="stable").reset_index(drop=True)

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract of ``traincost count --json``."""
        mem = self.walk.memory
        cfg = self.walk.config
        return {
            "model": self.label,
            "batch_size": cfg.batch_size,
            "input_shape": list(self.walk.sample_shape),
            "precision": cfg.precision,
            "channels_last": cfg.channels_last,
            "optimizer": cfg.optimizer,
            "params": self.params,
            "flops": self.flops,
            "bytes": self.bytes,
            "peak_memory_bytes": self.peak_memory_bytes,
            "memory": {
                "parameters_bytes": mem.parameters_bytes,
                "gradients_bytes": mem.gradients_bytes,
                "optimizer_state_bytes": mem.optimizer_state_bytes,
                "inputs_bytes": mem.inputs_bytes,
                "saved_activations_bytes": mem.saved_activations_bytes,
                "transient_bytes": mem.transient_bytes,
                "peak_phase": mem.peak_phase,
            },
            "ops": self.ops,
            "unpriced_ops": self.unpriced_ops,
            "assumptions": list(self.walk.assumptions),
            "layers": self.by_module().to_dict(orient="records"),
        }


def count(model: ModelLike, *, batch_size: int, input_shape: tuple[int, ...] | str | None = None,
          precision: str = "fp32", channels_last: bool = False, optimizer: str = "sgd",
          input_dtype: str | None = None, seq_len: int | None = None) -> CountResult:
    """Walk one training step of ``model`` (name, spec path, ``ArchSpec`` or ``nn.Module``).

    Nothing is allocated or computed: the step runs on the meta device. ``input_dtype`` is for
    token models (``"int64"``); the default is float32 images or vectors. ``seq_len``: token ids of
    that length (``input_shape=(seq_len,)``, int64 unless ``input_dtype`` says int32).
    """
    config = StepConfig(batch_size=batch_size, precision=precision, channels_last=channels_last,
                        optimizer=optimizer)
    input_shape, input_dtype = token_input(seq_len, input_shape, input_dtype)
    loaded = load_model(model, input_shape, input_dtype)
    return CountResult(label=loaded.label,
                       walk=walk(loaded.module, loaded.sample_shape, config, loaded.input_dtype, loaded.inputs))


#: The largest batch :func:`max_batch_size` walks: beyond it tensor sizes overflow (a batch of 2**45 images
#: has more than 2**63 elements) and no training step is that large. A memory that holds more returns it.
MAX_SEARCH_BATCH = 2**31 - 1


def max_batch_size(model: ModelLike, *, memory_bytes: int, input_shape: tuple[int, ...] | str | None = None,
                   precision: str = "fp32", channels_last: bool = False, optimizer: str = "sgd",
                   start: int = 32, max_walks: int = 8, input_dtype: str | None = None) -> int:
    """Largest batch whose predicted peak fits in ``memory_bytes`` (0 if not even batch 1 fits).

    Peak memory is affine in the batch (fixed parameters + optimizer state, per-sample
    activations), so a secant step from one walk lands close; a few more walks confirm it.
    A model that cannot train on batch 1 (BatchNorm needs 2 samples per channel) is searched from
    batch 2: 0 when batch 2 does not fit. The search stops at :data:`MAX_SEARCH_BATCH`.
    """
    if isinstance(memory_bytes, bool) or not isinstance(memory_bytes, int) or memory_bytes <= 0:
        raise SpecError(f"memory_bytes must be a positive integer, got {memory_bytes!r}")
    loaded = load_model(model, input_shape, input_dtype)
    floor = 1  # the smallest batch the model trains on

    def peak(batch: int) -> int:
        cfg = StepConfig(batch, precision, channels_last, optimizer)
        return walk(loaded.module, loaded.sample_shape, cfg, loaded.input_dtype, loaded.inputs).memory.peak_bytes

    lo, hi = 0, None  # lo fits (0 = nothing known), hi does not fit
    peaks: dict[int, int] = {}
    batch = min(max(1, start), MAX_SEARCH_BATCH)
    for _ in range(max_walks):
        try:
            peaks[batch] = peak(batch)
        except ModelBuildError:
            if batch != 1 or floor != 1:
                raise
            floor = batch = 2  # batch 1 cannot train (BatchNorm in training mode): start at 2
            peaks[batch] = peak(batch)
        if peaks[batch] <= memory_bytes:
            lo = max(lo, batch)
        else:
            hi = batch if hi is None else min(hi, batch)
        if hi is not None and (hi - lo <= 1 or hi <= floor):
            break
        if hi is None and lo >= MAX_SEARCH_BATCH:
            break
        known = sorted(peaks)
        if len(known) >= 2:
            b1, b2 = known[0], known[-1]
            slope = max((peaks[b2] - peaks[b1]) / (b2 - b1), 1.0)
            fixed = peaks[b1] - slope * b1
        else:
            fixed = 0.0
            slope = max(peaks[batch] / batch, 1.0)
        guess = int(min((memory_bytes - fixed) // slope, MAX_SEARCH_BATCH))
        upper = hi - 1 if hi is not None else min(max(guess, 1), MAX_SEARCH_BATCH)
        guess = min(max(guess, lo + 1, floor), upper)
        if guess in peaks:  # the model's guess is already known: bisect what is left
            guess = (lo + (hi if hi is not None else min(2 * max(lo, 1), MAX_SEARCH_BATCH))) // 2
            if guess in peaks or guess <= lo or guess < floor:
                break
        batch = guess
    return lo
