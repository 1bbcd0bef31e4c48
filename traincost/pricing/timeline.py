"""Host and device timelines of one step: host cost per op, the asynchronous GPU timeline or the
synchronous CPU one, the optimizer step's measured constants, and the bound of each layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from traincost.hardware.profile import DeviceProfile, ProfileError
from traincost.pricing.geometry import _AUTOCAST
from traincost.pricing.optable import OpTable

#: Host seconds of one recorded op of a training step, as a multiple of the profile's ``dispatch_s`` (one
#: bare ``torch.add`` in a loop), by phase: a forward op also pays ``nn.Module.__call__``, the functional
#: API and autograd's graph recording; a backward op the autograd engine. Measured by
#: ``benchmarks/host_overhead.py`` on tiny fc models (kernels of a few hundred bytes: the step is host time)
#: on the 2-core AMD EPYC of the shipped CPU profile: forward 4.27 (3.75-5.17), backward 2.08 (1.98-2.17).
#: The default for a profile whose host was not measured (:func:`host_op_ratios`; the Intel Xeon's: 6.26,
#: 3.33); on a GPU host an assumption (its dispatch_s includes the CUDA launch).
HOST_OP_RATIO = {"forward": 4.3, "backward": 2.1}


#: Host seconds of one aten op that a C++ composite dispatches (the per-step ops inside ``torch._VF.gru`` on a
#: CPU, ``_cudnn_rnn`` inside ``_VF.lstm``), as a multiple of ``dispatch_s``: the dispatcher and autograd's
#: graph recording without Python. Measured by ``benchmarks/rnn.py`` on tiny GRUs and RNNs (kernels of a few
#: bytes) on the 2-core AMD EPYC: 1.31 (GRU) and 1.22 (RNN). Their backward ops are autograd nodes like any
#: other and cost the phase's ratio.
COMPOSITE_OP_RATIO = 1.3


#: ``optimizer.zero_grad(set_to_none=True)`` after the step: host seconds per parameter tensor, as a multiple
#: of ``dispatch_s`` (same script: 0.79, range 0.57-2.30).
ZERO_GRAD_PER_TENSOR_RATIO = 0.8


BOUNDS = ("compute", "memory", "host")


@dataclass(frozen=True)
class Timeline:
    """Result of simulating one step. Seconds; per-op arrays of the op's share of the step.

    ``exposed_host_s[i]``: time the device sat idle waiting for the host to dispatch op ``i`` (on a
    CPU: all of op ``i``'s host time); ``step_s = sum(exposed_host_s) + sum(device_s)``.
    """

    step_s: float
    host_s: float           # host busy time (sum of host costs)
    device_s: float         # device busy time (sum of device costs)
    exposed_host_s: np.ndarray


def simulate(host_s: np.ndarray, device_s: np.ndarray, *, synchronous: bool,
             sync_before: int | None = None) -> Timeline:
    """Walk the host and device timelines op by op (see module doc).

    ``synchronous`` (a CPU): the step is the sum of host and device times. Otherwise (a GPU)::

        host_t += host_s[i]; start = max(device_t, host_t); device_t = start + device_s[i]

    and ``step = max(host_t, device_t)``. ``sync_before``: before op ``i`` the host waits for the device
    to drain (``host_t = max(host_t, device_t)``), as ``.item()`` does. Vectorised: with ``S`` the running
    sum of device times and ``h`` the host time at each dispatch, ``device_t[i] = S[i] + max over k <= i of
    (h[k] - S[k-1])`` (a max-plus scan).
    """
    host_s = np.asarray(host_s, dtype=float)
    device_s = np.asarray(device_s, dtype=float)
    n = len(host_s)
    if synchronous:
        return Timeline(float(host_s.sum() + device_s.sum()), float(host_s.sum()), float(device_s.sum()),
                        host_s.copy())
    exposed = np.zeros(n)
    h0 = d0 = 0.0
    cuts = [0, n] if sync_before is None or not 0 < sync_before < n else [0, sync_before, n]
    for a, b in zip(cuts[:-1], cuts[1:]):
        if a > 0:  # sync: the host waits for the device
            h0 = max(h0, d0)
        h = h0 + np.cumsum(host_s[a:b])
        s = np.cumsum(device_s[a:b])
        s_prev = np.concatenate(([0.0], s[:-1]))
        d = s + np.maximum(d0, np.maximum.accumulate(h - s_prev))
        d_prev = np.concatenate(([d0], d[:-1]))
        exposed[a:b] = np.maximum(0.0, h - d_prev)
        if b > a:
            h0, d0 = float(h[-1]), float(d[-1])
    step = max(h0, d0)
    return Timeline(float(step), float(host_s.sum()), float(device_s.sum()), exposed)


@dataclass(frozen=True)
class Pricing:
    """Per-op host, device, compute and memory seconds of one step on one profile, and its timeline."""

    host_s: np.ndarray
    device_s: np.ndarray
    compute_s: np.ndarray     # device time of compute-bound ops (0 for the others)
    memory_s: np.ndarray      # device time of the other kernel ops
    timeline: Timeline


def _optimizer_key(optimizer: str) -> str:
    return "adamw" if optimizer in ("adam", "adamw") else optimizer


def host_op_ratios(profile: DeviceProfile) -> dict[str, float]:
    """Host cost of a training step's op per ``dispatch_s``: ``forward``, ``backward`` and
    ``zero_grad_per_tensor``, from the profile's ``properties["host_op_ratio"]`` where its host was measured
    (``benchmarks/host_overhead.py --write``), else :data:`HOST_OP_RATIO` and
    :data:`ZERO_GRAD_PER_TENSOR_RATIO` (measured on the AMD EPYC). A value that is not a positive number is
    a :class:`~traincost.hardware.profile.ProfileError`."""
    measured = profile.properties.get("host_op_ratio") or {}
    if not isinstance(measured, Mapping):
        raise ProfileError(f"profile {profile.name!r}: properties.host_op_ratio must be an object, got {measured!r}")
    out = {**HOST_OP_RATIO, "zero_grad_per_tensor": ZERO_GRAD_PER_TENSOR_RATIO}
    for key in out:
        if key in measured:
            value = measured[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ProfileError(f"profile {profile.name!r}: properties.host_op_ratio.{key} must be a positive "
                                   f"number, got {value!r}")
            out[key] = float(value)
    return out


def price(table: OpTable, profile: DeviceProfile) -> Pricing:
    """Host and device time of every op of ``table`` on ``profile``, and the simulated step."""
    device, compute, memory = table.device_times(profile)
    cpu = profile.kind == "cpu"
    autocast = table.precision in _AUTOCAST
    ratio = host_op_ratios(profile)
    host = np.full(table.n, float(profile.dispatch_s))  # optimizer-phase ops outside step(): bare calls
    fwd_dispatch = profile.dispatch_autocast_s if autocast else profile.dispatch_s
    host[table.phase == 0] = fwd_dispatch * ratio["forward"]
    host[table.phase == 1] = profile.dispatch_s * ratio["backward"]
    for i, plans in table.rnn_plans.items():  # a fused recurrent op: the aten ops its plan dispatches
        n_host = sum(op.count for op in plans.get(profile.kind, ()) if op.host)
        if table.phase[i] == 0:
            host[i] += profile.dispatch_s * COMPOSITE_OP_RATIO * n_host
        elif table.phase[i] == 1:
            host[i] = profile.dispatch_s * ratio["backward"] * max(n_host, 1)
    key = _optimizer_key(table.optimizer)
    consts = profile.optimizer
    region = table.opt_region
    if region.any() and all(f"{key}_{part}" in consts for part in ("fixed_s", "per_tensor_s", "s_per_byte")):
        weights = table.opt_weight[region]
        total_host = consts[f"{key}_fixed_s"] + consts[f"{key}_per_tensor_s"] * table.param_tensors
        host[region] = total_host * weights / weights.sum()
        if cpu:  # wall time on a CPU = host + device: the per-byte term is the device part
            kernels = region & table.kernel
            per_byte = consts[f"{key}_s_per_byte"]
            cache = profile.memory.cache_bytes
            if f"{key}_s_per_byte_dram" in consts and cache > 0 and table.working_set_bytes > cache:
                per_byte = consts[f"{key}_s_per_byte_dram"]  # the step evicted parameters, grads and state
            total_dev = per_byte * table.param_bytes
            share = np.where(kernels, table.bytes, 0.0)
            if share.sum() <= 0:
                share = kernels.astype(float)
            device = device.copy()
            if share.sum() > 0:
                device[region] = total_dev * share[region] / share.sum()
            else:
                device[region] = 0.0
            # the measured lists had no tensor large enough to be mapped afresh: their first touch is extra
            device[region] += profile.first_touch_s_per_byte * table.fresh_bytes[region]
            compute = np.where(region, 0.0, compute)
            memory = np.where(region, device, memory)
    if table.n:  # optimizer.zero_grad(set_to_none=True) after the step: a Python loop over the parameters
        host[-1] += ratio["zero_grad_per_tensor"] * profile.dispatch_s * table.param_tensors
    is_compute = (compute >= memory) & (compute > 0)
    compute_s = np.where(is_compute, device, 0.0)
    memory_s = device - compute_s
    timeline = simulate(host, device, synchronous=cpu, sync_before=None if cpu else table.sync_index)
    return Pricing(host, device, compute_s, memory_s, timeline)


def _bound(host: float, compute: float, memory: float) -> str:
    values = {"compute": compute, "memory": memory, "host": host}
    return max(BOUNDS, key=lambda k: values[k])


def breakdown(table: OpTable, pricing: Pricing, flops: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Per-layer rows (module, ms, bound, flops, bytes, ops, host_ms, compute_ms, memory_ms, share),
    heaviest first; the ``ms`` of all rows add up to the step."""
    m = len(table.modules)
    idx = table.module_index
    exposed = np.bincount(idx, weights=pricing.timeline.exposed_host_s, minlength=m)
    comp = np.bincount(idx, weights=pricing.compute_s, minlength=m)
    mem = np.bincount(idx, weights=pricing.memory_s, minlength=m)
    fl = np.bincount(idx, weights=table.flops if flops is None else flops, minlength=m)
    by = np.bincount(idx, weights=table.bytes, minlength=m)
    ops = np.bincount(idx, minlength=m)
    step = max(pricing.timeline.step_s, 1e-30)
    rows = []
    for j, name in enumerate(table.modules):
        total = exposed[j] + comp[j] + mem[j]
        rows.append({"module": name, "ms": float(total * 1e3),
                     "bound": _bound(exposed[j], comp[j], mem[j]),
                     "flops": int(round(fl[j])), "bytes": int(round(by[j])), "ops": int(ops[j]),
                     "host_ms": float(exposed[j] * 1e3), "compute_ms": float(comp[j] * 1e3),
                     "memory_ms": float(mem[j] * 1e3), "share": float(total / step)})
    rows.sort(key=lambda r: (-r["ms"], r["module"]))
    return rows
