"""Peak training memory from the lifetimes of the storages created during the walk.

Every storage is followed from the op that creates it to the moment Python frees it (a weak reference
to the storage), on the op timeline of the walk. Sizes are rounded up to the CUDA caching allocator's
512-byte blocks, so the peak is comparable to ``torch.cuda.max_memory_allocated()``. Not counted: the
CUDA context, cuBLAS/cuDNN workspaces and allocator fragmentation (see ``MemoryReport``).
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Iterable

import torch

BLOCK_BYTES = 512

#: Categories a storage can hold; ``activations`` are forward storages (saved for backward or not).
CATEGORIES = ("parameters", "gradients", "optimizer_state", "inputs", "activations", "backward",
              "optimizer")


def round_block(nbytes: int) -> int:
    """Bytes the CUDA caching allocator hands out for a request of ``nbytes`` (512-byte blocks)."""
    return -(-nbytes // BLOCK_BYTES) * BLOCK_BYTES if nbytes else 0


@dataclass(frozen=True)
class MemoryReport:
    """Predicted memory of one training step, in bytes.

    ``peak_bytes`` is the most bytes live at once; ``at_peak`` splits it by category.
    ``saved_activations_bytes`` is what the forward pass leaves alive for backward.
    ``transient_bytes`` = ``peak_bytes`` minus parameters, gradients, optimizer state, inputs and
    saved activations live at the peak: temporaries of the op that reaches the peak.
    """

    peak_bytes: int
    peak_op_index: int
    peak_phase: str
    parameters_bytes: int
    gradients_bytes: int
    optimizer_state_bytes: int
    inputs_bytes: int
    saved_activations_bytes: int
    transient_bytes: int
    at_peak: dict[str, int]

    @property
    def fixed_bytes(self) -> int:
        """Bytes that do not grow with the batch: parameters, gradients, optimizer state."""
        return self.parameters_bytes + self.gradients_bytes + self.optimizer_state_bytes


@dataclass
class _Entry:
    nbytes: int
    category: str
    born: int
    died: int | None = None


class MemoryLedger:
    """Collects storage births and deaths during one walk (one ledger per walk; not thread-safe)."""

    def __init__(self) -> None:
        self._entries: dict[int, _Entry] = {}
        self._dead: list[_Entry] = []
        self._refs: dict[int, weakref.ref] = {}
        self._now = -1
        self._end_of_forward = 0

    def _key(self, t: torch.Tensor) -> tuple[int, torch.UntypedStorage] | None:
        try:
            storage = t.untyped_storage()
        except (RuntimeError, NotImplementedError):
            return None
        return id(storage), storage

    def _track(self, t: torch.Tensor, category: str, born: int) -> None:
        if t.device.type != "meta":  # the walk's device tensors are meta; a CPU tensor (Adam's
            return                   # step counters) lives in host memory, not on the GPU
        found = self._key(t)
        if found is None:
            return
        key, storage = found
        entry = self._entries.get(key)
        if entry is not None:
            if category in ("parameters", "gradients", "optimizer_state", "inputs"):
                entry.category = category
            return
        entry = _Entry(round_block(storage.nbytes()), category, born)
        self._entries[key] = entry
        self._refs[key] = weakref.ref(storage, lambda _ref, k=key: self._free(k))

    def _free(self, key: int) -> None:
        entry = self._entries.pop(key, None)
        self._refs.pop(key, None)
        if entry is not None:
            entry.died = self._now
            self._dead.append(entry)

    def register(self, tensors: Iterable[torch.Tensor], category: str) -> None:
        """Mark storages that exist before (or are re-labelled during) the step."""
        for t in tensors:
            self._track(t, category, -1)

    def observe(self, t: torch.Tensor, index: int, phase: str) -> None:
        """Record the storage of an op output (a new storage is born at ``index``)."""
        self._track(t, {"forward": "activations"}.get(phase, phase), index)

    def tick(self, index: int) -> None:
        """Advance the clock: later frees happen after op ``index``."""
        self._now = index

    def mark_end_of_forward(self, n_ops: int) -> None:
        self._end_of_forward = n_ops

    def report(self, phases: list[str]) -> MemoryReport:
        """Replay births and deaths to find the peak; storages still alive die after the last op.

        ``phases[i]`` is the phase of op ``i``; a storage freed between ops ``i`` and ``i + 1`` was
        alive while op ``i`` ran.
        """
        n_ops = len(phases)
        entries = self._dead + list(self._entries.values())
        events: list[tuple[int, int, int]] = []  # (time, order, delta): births before deaths at a tick
        for e in entries:
            events.append((e.born, 0, e.nbytes))
            events.append((e.died if e.died is not None else n_ops, 1, -e.nbytes))
        events.sort()
        live = peak = 0
        peak_time = -1
        for time, _, delta in events:
            live += delta
            if live > peak:
                peak, peak_time = live, time

        def live_at(time: int, e: _Entry) -> bool:  # alive while op ``time`` runs
            return e.born <= time <= (e.died if e.died is not None else n_ops)

        at_peak = {c: 0 for c in CATEGORIES}
        for e in entries:
            if live_at(peak_time, e):
                at_peak[e.category] += e.nbytes

        def total(category: str) -> int:
            return sum(e.nbytes for e in entries if e.category == category)

        eof = self._end_of_forward
        saved = sum(e.nbytes for e in entries if e.category == "activations"
                    and e.born < eof and (e.died is None or e.died >= eof))
        saved_at_peak = sum(e.nbytes for e in entries if e.category == "activations"
                            and e.born < eof and live_at(peak_time, e)
                            and (e.died is None or e.died >= eof))
        steady = (at_peak["parameters"] + at_peak["gradients"] + at_peak["optimizer_state"]
                  + at_peak["inputs"] + saved_at_peak)
        phase = phases[peak_time] if 0 <= peak_time < n_ops else "between steps"
        return MemoryReport(
            peak_bytes=peak,
            peak_op_index=peak_time,
            peak_phase=phase,
            parameters_bytes=total("parameters"),
            gradients_bytes=total("gradients"),
            optimizer_state_bytes=total("optimizer_state"),
            inputs_bytes=total("inputs"),
            saved_activations_bytes=saved,
            transient_bytes=peak - steady,
            at_peak=at_peak,
        )
