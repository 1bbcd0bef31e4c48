"""The host: the CPU that launches a GPU's kernels, and what it costs per op.

On a GPU the step's host timeline (one eager dispatch per op, the optimizer's Python loops) runs beside the device
timeline, and small steps are bound by it. Its cost is a property of the host, not the GPU: two H200 machines with
the same GPU, driver and torch dispatch an eager op in 7.1 and 10.7 us, so a host-bound step runs up to 1.5x slower
on the second. A profile carries its host's constants (``dispatch_s``, ``dispatch_autocast_s``, the optimizer's
``*_fixed_s`` and ``*_per_tensor_s``, ``properties["host_op_ratio"]``); a datasheet profile carries the median of
the calibrated GPU hosts. :func:`with_host` lets a user say theirs: a factor on every host cost, or the host of
another calibrated profile; :func:`host_summary` states which host a prediction assumed.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from traincost.errors import TraincostUsageError
from traincost.hardware.profile import DeviceProfile

#: optimizer constants paid on the host (the per-byte ones are device time on a GPU).
HOST_OPTIMIZER_KEYS = ("_fixed_s", "_per_tensor_s")
#: a host factor outside this range is a typo, not a CPU.
HOST_FACTOR_RANGE = (0.05, 20.0)


def _host_optimizer(profile: DeviceProfile) -> dict[str, float]:
    return {k: v for k, v in profile.optimizer.items() if k.endswith(HOST_OPTIMIZER_KEYS)}


def host_summary(profile: DeviceProfile) -> dict[str, Any]:
    """Which host ``profile`` prices the host timeline with: ``name``, ``dispatch_us`` (one bare eager op),
    ``source`` (``calibrated`` with the device, ``assumed`` for a datasheet GPU, ``user``), ``factor``, ``note``."""
    props = profile.properties
    user = props.get("host_override") or {}
    if user:
        source = "user"
    elif profile.source == "datasheet":
        source = "assumed"
    else:
        source = "calibrated"
    if profile.kind == "cpu":
        name = str(props.get("cpu_model") or profile.name)
    elif source == "assumed":
        refs = props.get("host_from") or []
        name = ("median of the calibrated GPU hosts (" + ", ".join(refs) + ")") if refs else "an H200 host"
    else:
        name = f"{props.get('cpu_model') or 'the host'} of {profile.name}"
    out = {"name": user.get("name", name), "dispatch_us": profile.dispatch_s * 1e6, "source": source,
           "factor": float(user.get("factor", 1.0))}
    if source == "assumed":
        out["note"] = ("host costs of another machine: a faster desktop CPU shortens host-bound steps; say yours with "
                       "--host FACTOR or --host PROFILE.json")
    return out


def _original(profile: DeviceProfile) -> dict[str, Any]:
    """The host constants ``with_host`` replaces, kept so :func:`without_host_override` can restore them."""
    return {"dispatch_s": profile.dispatch_s, "dispatch_autocast_s": profile.dispatch_autocast_s,
            "optimizer": _host_optimizer(profile), "host_op_ratio": profile.properties.get("host_op_ratio")}


def without_host_override(profile: DeviceProfile) -> DeviceProfile:
    """``profile`` as calibrated or derived, before :func:`with_host` (what a residual model was fitted on)."""
    override = profile.properties.get("host_override")
    if not override or "original" not in override:
        return profile
    original = override["original"]
    props = {k: v for k, v in profile.properties.items() if k not in ("host_override", "host_op_ratio")}
    if original.get("host_op_ratio") is not None:
        props["host_op_ratio"] = original["host_op_ratio"]
    return dataclasses.replace(profile, dispatch_s=original["dispatch_s"],
                               dispatch_autocast_s=original["dispatch_autocast_s"],
                               optimizer={**profile.optimizer, **original["optimizer"]}, properties=props)


def with_host(profile: DeviceProfile, host: Any) -> DeviceProfile:
    """``profile`` with another host: ``host`` is ``None`` (as is), a number (every host cost times it: dispatch,
    autocast dispatch, the optimizer's fixed and per-tensor costs) or a :class:`DeviceProfile` whose host constants
    replace the device's (its dispatch costs, optimizer host costs and measured host-op ratios). Only a GPU has a
    separate host; device curves and launch latency are never touched."""
    if host is None:
        return profile
    if profile.kind != "cuda":
        raise TraincostUsageError(f"--host applies to a GPU; {profile.name} is a CPU, which is its own host")
    profile = without_host_override(profile)
    if isinstance(host, DeviceProfile):
        props = {k: v for k, v in profile.properties.items() if k != "host_op_ratio"}
        if "host_op_ratio" in host.properties:
            props["host_op_ratio"] = host.properties["host_op_ratio"]
        props["host_override"] = {"name": f"{host.properties.get('cpu_model') or 'the host'} of {host.name}",
                                  "factor": 1.0, "original": _original(profile)}
        optimizer = {**profile.optimizer, **_host_optimizer(host)}
        return dataclasses.replace(profile, dispatch_s=host.dispatch_s, dispatch_autocast_s=host.dispatch_autocast_s,
                                   optimizer=optimizer, properties=props)
    if isinstance(host, bool) or not isinstance(host, (int, float)) or not math.isfinite(host):
        raise TraincostUsageError(f"host must be a factor or a calibrated profile, got {host!r}")
    low, high = HOST_FACTOR_RANGE
    if not low <= host <= high:
        raise TraincostUsageError(f"host factor must be between {low} and {high} (1 = the profile's host), got {host}")
    factor = float(host)
    base = host_summary(profile)
    props = {**profile.properties, "host_override": {"name": f"{base['name']} x{factor:g}", "factor": factor,
                                                     "original": _original(profile)}}
    optimizer = {**profile.optimizer, **{k: v * factor for k, v in _host_optimizer(profile).items()}}
    return dataclasses.replace(profile, dispatch_s=profile.dispatch_s * factor,
                               dispatch_autocast_s=profile.dispatch_autocast_s * factor, optimizer=optimizer,
                               properties=props)
