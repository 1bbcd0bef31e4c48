"""The public API: ``predict`` and ``compare`` a model's training step on devices -> :class:`Estimate`.

Walk once (:mod:`traincost.flopmodel`), price on each device profile (:mod:`traincost.pricing`), apply the
learned correction where one applies (:mod:`traincost.correction`), add data parallelism and the run's cost.
Peak memory is the walk's peak plus the profile's allocator overhead; ``fits`` also counts
:data:`CUDA_CONTEXT_BYTES` on GPUs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Sequence

from traincost.errors import TraincostUsageError
from traincost.hardware.host import host_summary, with_host
from traincost.hardware.profile import DeviceProfile
from traincost.hardware.store import cpu_model, profile_for
from traincost.pricing.cost import (
    PRICE_NOTE_PREFIXES,
    PriceQuote,
    PriceTable,
    check_run,
    plan_run,
    price_notes,
    price_table,
    prices_for_profile,
    quote,
    select_provider,
)
from traincost.pricing.optable import OpTable
from traincost.pricing.parallel import check_parallel
from traincost.pricing.timeline import Pricing, _bound, breakdown, price

#: Device memory a CUDA process holds outside the caching allocator (context, kernels, cuDNN/cuBLAS
#: handles): about 500 MiB on recent GPUs and drivers. Counted against the device memory for ``fits``.
CUDA_CONTEXT_BYTES = 500 * 2**20

#: The most epochs a run may have: beyond it the run's seconds and dollars are meaningless.
MAX_EPOCHS = 1e6


@dataclass(frozen=True)
class Estimate:
    """A prediction for one model, step configuration and device. Units in names.

    ``cost_usd``: provider -> dollars for the run (``total_s``), on-demand, the newest price of each
    provider (or the user's ``"your price"``); ``prices`` the same quotes with $/GPU-hour, source and date
    (also when the run length is unknown); ``price_table``: ``{source, newest_date}`` of the table they come
    from. ``notes`` say when no price is known and when the newest price is over a year older than the table. ``breakdown``: per-layer rows, heaviest first. ``device``: ``{name, profile_source}``.
    ``iteration_ms``: the step, corrected by the learned residual when one applies (``analytic_ms`` x
    exp(residual); ``analytic_ms`` the physics model alone; host/device/compute/memory ms and the
    ``breakdown`` rows stay analytic: they add up to ``analytic_ms``).
    ``interval``: ``{low_ms, high_ms}``, an 80 % interval (split-conformal quantiles of cross-validated
    residuals; widened for datasheet profiles and inputs outside the training data), ``None`` without
    interval data. ``correction``: ``{model, reason, ...}``: the residual model used (``None``: analytic only)
    and why (:mod:`traincost.correction`).
    """

    iteration_ms: float
    samples_per_s: float
    epoch_s: float | None
    total_s: float | None
    peak_memory_bytes: int
    fits: bool
    max_batch_size: int | None
    cost_usd: dict[str, float]
    bound: str
    breakdown: list[dict[str, Any]]
    device: dict[str, Any]
    interval: dict[str, float] | None = None
    analytic_ms: float = 0.0
    correction: dict[str, Any] = field(default_factory=dict)
    prices: list[dict[str, Any]] = field(default_factory=list)
    model: str = ""
    batch_size: int = 0
    global_batch_size: int = 0
    gpus: int = 1
    nodes: int = 1
    allreduce_ms: float = 0.0          # all gradient buckets' all-reduce time per step (data parallel)
    exposed_comm_ms: float = 0.0       # the part of it not hidden behind backward: added to the step
    scaling_efficiency: float = 1.0    # throughput on G GPUs / (G x one GPU at the same per-GPU batch)
    interconnect: dict[str, Any] | None = None  # {intra_link, network, buckets, grad_bytes} when gpus > 1
    precision: str = "fp32"
    channels_last: bool = False
    optimizer: str = "sgd"
    dataset_size: int | None = None
    epochs: float | None = None
    steps_per_epoch: int | None = None
    host_ms: float = 0.0
    device_ms: float = 0.0
    compute_ms: float = 0.0
    memory_ms: float = 0.0
    exposed_host_ms: float = 0.0
    flops: int = 0
    bytes: int = 0
    ops: int = 0
    walk_peak_bytes: int = 0
    allocator_overhead_bytes: int = 0
    context_bytes: int = 0
    device_memory_bytes: int = 0
    max_batch_size_exact: bool = False
    notes: list[str] = field(default_factory=list)
    host: dict[str, Any] = field(default_factory=dict)  # the host the step's host timeline assumes
    price_table: dict[str, Any] = field(default_factory=dict)  # {source, newest_date} of the prices used

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract of ``traincost predict --json`` (plain Python types)."""
        return asdict(self)


def resolve_device(device: str | DeviceProfile) -> DeviceProfile:
    """``device`` as a profile: a :class:`DeviceProfile` as is, else :func:`traincost.hardware.store.profile_for`."""
    if isinstance(device, DeviceProfile):
        return device
    if not isinstance(device, str):
        raise TraincostUsageError(f"device must be 'cpu', a GPU name, a profile .json or a DeviceProfile, "
                                  f"got {type(device).__name__}")
    text = device.strip().lower()
    if text in ("cuda", "gpu", "mps") or (text.startswith("cuda:") and text[5:].isdigit()):
        raise TraincostUsageError(
            f"device {device.strip()!r} is not a GPU model: name the GPU (e.g. --device A100, 'H100 SXM'; "
            f"'traincost gpus' lists them) or run 'traincost calibrate --device {device.strip()} -o gpu.json' "
            "first and pass --device gpu.json")
    return profile_for(device)


def foreign_cpu(profile: DeviceProfile) -> str | None:
    """A note when a calibrated CPU profile was measured on another CPU model than this machine's (the
    shipped profile closest to this machine is used, but another CPU's rates can be 2x off), else None."""
    if profile.kind != "cpu" or profile.source != "calibrated":
        return None
    measured_on = profile.properties.get("cpu_model")
    here = cpu_model()
    if not measured_on or measured_on == here:
        return None
    return (f"profile {profile.name!r} was calibrated on another CPU ({measured_on}; this machine: {here}): "
            f"to predict this CPU, run 'traincost calibrate --device cpu -o cpu.json' and pass --device cpu.json")


def check_precision(profile: DeviceProfile, precision: str) -> None:
    """A usage error when ``profile`` cannot run ``precision`` (no matmul curve in that math mode)."""
    mode = {"fp32": "fp32", "tf32": "tf32", "bf16": "bf16", "fp16": "fp16"}.get(precision)
    if mode is None:
        raise TraincostUsageError(f"precision must be one of fp32, tf32, bf16, fp16, got {precision!r}")
    if profile.compute_curve("matmul", mode) is None:
        have = ", ".join(profile.modes("matmul")) or "none"
        why = ("the GPU has no " + precision + " support" if profile.kind == "cuda" and profile.source == "datasheet"
               else "the profile has no " + precision + " measurements")
        raise TraincostUsageError(f"{profile.name} cannot run {precision}: {why} (supported: {have})")


def _allocator_overhead(profile: DeviceProfile) -> int:
    value = profile.properties.get("allocator_overhead_bytes", 0)
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else 0


def _estimate_max_batch(memory: Any, batch: int, usable_walk_bytes: int) -> int:
    """Largest batch whose walk peak fits ``usable_walk_bytes``, from one walk's memory report: peak memory
    is about affine in the batch; two affine lower bounds (the parts live at the peak, and the steady
    parameters + gradients + optimizer state + saved activations) are both kept under the budget."""
    if usable_walk_bytes <= 0:
        return 0
    at = memory.at_peak
    per_batch = at.get("inputs", 0) + at.get("activations", 0) + at.get("backward", 0)
    fixed_peak = memory.peak_bytes - per_batch
    lines = [(fixed_peak, per_batch / batch),
             (memory.fixed_bytes, (memory.saved_activations_bytes + memory.inputs_bytes) / batch)]
    best = None
    for fixed, slope in lines:
        if fixed > usable_walk_bytes:
            return 0
        if slope <= 0:
            continue
        cap = int((usable_walk_bytes - fixed) // slope)
        best = cap if best is None else min(best, cap)
    return max(best if best is not None else batch, 0)


@dataclass(frozen=True)
class _Step:
    """What predict and compare share: the walk, its table and how to re-walk for the largest batch."""

    label: str
    table: OpTable
    memory: Any
    flops: int
    bytes: int
    ops: int
    exact_max_batch: Callable[[int], int]
    walk: Any = None  # the Walk (records, params, memory): the learned correction's features


def _walk(model: Any, *, batch_size: int, input_shape: Any, precision: str, channels_last: bool,
          optimizer: str, input_dtype: str | None = None, seq_len: int | None = None) -> _Step:
    from traincost.flopmodel.arch import token_input
    from traincost.flopmodel.count import count, max_batch_size

    input_shape, input_dtype = token_input(seq_len, input_shape, input_dtype)
    result = count(model, batch_size=batch_size, input_shape=input_shape, precision=precision,
                   channels_last=channels_last, optimizer=optimizer, input_dtype=input_dtype)
    table = OpTable.from_walk(result.walk)
    cache: dict[int, int] = {}

    def exact(usable: int) -> int:
        if usable <= 0:
            return 0
        if usable not in cache:
            cache[usable] = max_batch_size(model, memory_bytes=usable, input_shape=input_shape,
                                           precision=precision, channels_last=channels_last,
                                           optimizer=optimizer, input_dtype=input_dtype, start=max(1, _estimate_max_batch(
                                               result.walk.memory, batch_size, usable)))
        return cache[usable]

    return _Step(result.label, table, result.walk.memory, int(result.flops["total"]),
                 int(sum(result.bytes.values())), result.ops, exact, result.walk)


def walk_step(model: Any, *, batch_size: int, input_shape: tuple[int, ...] | str | None = None,
              precision: str = "fp32", channels_last: bool = False, optimizer: str = "sgd",
              input_dtype: str | None = None, seq_len: int | None = None) -> _Step:
    """The walk :func:`predict` and :func:`compare` price (model, batch, precision, layout, optimizer). A
    ``walker`` that keeps its results prices the same step again, on other devices or runs, without walking."""
    _check_common(precision, 1, None, None, batch_size)
    return _walk(model, batch_size=batch_size, input_shape=input_shape, precision=precision,
                 channels_last=channels_last, optimizer=optimizer, input_dtype=input_dtype, seq_len=seq_len)


def _walked(walker: Any, model: Any, **step: Any) -> _Step:
    """The step walked by ``walker`` (checked: a walk of this step), else a new walk."""
    if walker is None:
        return _walk(model, **step)
    walked = walker(model, **step)
    if not isinstance(walked, _Step):
        raise TraincostUsageError(f"walker must return what traincost.api.walk_step returns, got "
                                  f"{type(walked).__name__}")
    table = walked.table
    have = {"batch_size": table.batch_size, "precision": table.precision, "channels_last": table.channels_last,
            "optimizer": table.optimizer}
    differ = [f"{k}={have[k]!r} (asked {step[k]!r})" for k in have if have[k] != step[k]]
    if differ:
        raise TraincostUsageError(f"walker returned the walk of another step: {', '.join(differ)}")
    return walked


def _correction_source(correction: Any) -> Any:
    """``predict``'s ``correction`` argument as ``"auto"``, ``None`` (analytic only) or a fitted model
    (a path is loaded and checked now: a usage error before any walking)."""
    import os

    if correction is None or correction is False:
        return None
    if correction is True or (isinstance(correction, str) and correction.strip().lower() == "auto"):
        return "auto"
    if isinstance(correction, (str, os.PathLike)):
        from traincost.correction.estimator import load

        return load(correction)
    if hasattr(correction, "predict") and hasattr(correction, "feature_names_"):
        return correction
    raise TraincostUsageError(f"correction must be 'auto', a residual model .json path, a fitted ResidualModel, "
                              f"or False/None for the analytic model alone, got {correction!r}")


def _apply_correction(step: _Step, pricing: Pricing, profile: DeviceProfile,
                      correction: Any) -> tuple[float, dict[str, float] | None, dict[str, Any]]:
    """(step seconds, interval, correction info) of one single-GPU step: the analytic step times
    exp(learned residual) when a residual model applies (``correction``: see :func:`_correction_source`)."""
    from pathlib import Path

    from traincost.correction.features import features_frame, step_features
    from traincost.correction.select import (
        analytic_intervals,
        interval_factors,
        other_calibration,
        out_of_range,
        proxy_features,
        select_residual,
        staleness,
        unseen_cpu_applies,
    )

    analytic_s = pricing.timeline.step_s
    source = _correction_source(correction)
    model, reason = None, "analytic only: correction disabled"
    if source == "auto":
        model, reason = select_residual(profile)
    elif source is not None:
        model, reason = source, "given model"
    table = step.table
    features = None
    if step.walk is not None:
        features = step_features(step.walk, pricing, profile, precision=table.precision,
                                      channels_last=table.channels_last, optimizer=table.optimizer,
                                      batch_size=table.batch_size)
    elif model is not None:
        model, reason = None, "analytic only: the step has no walk records for the correction's features"
    model_features = features
    if model is not None:
        proxy, why = proxy_features(model, profile, table.precision)
        if proxy is None:
            model, reason = None, f"analytic only: {reason}; {why}"
        elif proxy:
            model_features, reason = {**features, **proxy}, f"{reason}; {why}"
    info: dict[str, Any] = {"model": None, "reason": reason}
    step_s = analytic_s
    if model is not None:
        residual = float(model.predict(features_frame([model_features]))[0])
        step_s = analytic_s * math.exp(residual)
        path = model.metadata_.get("path") if isinstance(getattr(model, "metadata_", None), dict) else None
        info.update(model=Path(path).name if path else "ResidualModel", log_residual=residual,
                    factor=math.exp(residual))
        stale = staleness(model, profile)
        other = other_calibration(model, profile)
        if stale:
            info.update(stale=True, reason=f"{reason}; STALE: {stale}: refit with 'traincost fit'")
        elif other:
            info.update(reason=f"{reason}; {other}")
        quantiles, ranges = model.intervals_, model.feature_ranges_
    else:
        quantiles, ranges = analytic_intervals(profile), {}
    outside = out_of_range(features, ranges) if features is not None else []
    # a device outside the model's training data (proxy device features): wider, except a calibrated CPU,
    # whose unwidened interval already covered 84 % / 80 % of the other CPU's runs at 80 % (docs/limits.md)
    if model is not None and model_features is not features and not unseen_cpu_applies(profile):
        outside.append("the device")
    factors = interval_factors(quantiles, datasheet=profile.source == "datasheet", out_of_range_features=outside)
    interval = None
    if factors is not None:
        interval = {"low_ms": step_s * factors.low * 1e3, "high_ms": step_s * factors.high * 1e3}
        info.update(interval_level=factors.level, interval_widened_by=factors.widened_by,
                    interval_basis=("cross-validated residuals of " + str(info["model"]) if model is not None
                                    else f"the analytic model's errors on measured {profile.kind} steps"),
                    interval_reasons=list(factors.reasons))
    return step_s, interval, info


def _estimate(step: _Step, profile: DeviceProfile, *, epochs: float | None, dataset_size: int | None,
              gpus: int, exact_max_batch: bool = True, correction: Any = "auto",
              prices: PriceTable | None = None) -> Estimate:
    table = step.table
    pricing = price(table, profile)
    tl = pricing.timeline
    analytic_s = tl.step_s
    iteration_s, interval, correction_info = _apply_correction(step, pricing, profile, correction)
    plan = plan_run(iteration_s, batch_size=table.batch_size, gpus=gpus, dataset_size=dataset_size, epochs=epochs)
    notes: list[str] = [f"the walk assumed: {a}" for a in getattr(step.walk, "assumptions", ())]
    # memory
    overhead = _allocator_overhead(profile)
    context = CUDA_CONTEXT_BYTES if profile.kind == "cuda" else 0
    walk_peak = int(step.memory.peak_bytes)
    peak = walk_peak + overhead
    fits = peak + context <= profile.memory_bytes
    usable_walk = profile.memory_bytes - context - overhead
    if fits:
        max_batch = max(_estimate_max_batch(step.memory, table.batch_size, usable_walk), table.batch_size)
        exact = False
    else:
        if exact_max_batch:
            max_batch = step.exact_max_batch(usable_walk)
        else:
            max_batch = min(_estimate_max_batch(step.memory, table.batch_size, usable_walk), table.batch_size - 1)
        exact = exact_max_batch
        notes.append(_does_not_fit(step, profile, table.batch_size, peak + context, max_batch, exact,
                                   usable_walk))
    if dataset_size is not None and plan.global_batch_size > dataset_size:
        notes.append(f"the batch ({plan.global_batch_size:,} samples per step) exceeds the dataset ({dataset_size:,} "
                     f"samples): an epoch is one partial step; the step time is that of the full batch")
    # cost
    prices = prices or PriceTable()
    quotes: list[PriceQuote] = quote(plan.total_s, prices_for_profile(profile, prices), gpus)
    cost = {q.provider: q.usd for q in quotes if q.usd is not None}
    notes += price_notes(quotes, profile.name, prices.newest_date)
    if profile.source == "datasheet":
        notes.append("datasheet profile: rates are datasheet peaks x the fractions measured GPUs reach (the "
                     "profile's derived_from); less certain than a calibrated profile")
    if dataset_size is None:
        notes.append("no dataset size: epoch, total time and run cost need --dataset-size")
    other_cpu = foreign_cpu(profile)
    if other_cpu:
        notes.append(other_cpu)
    exposed = float(tl.exposed_host_s.sum())
    comp = float(pricing.compute_s.sum())
    mem = float(pricing.memory_s.sum())
    return Estimate(
        iteration_ms=iteration_s * 1e3,
        samples_per_s=plan.global_batch_size / iteration_s if iteration_s > 0 else math.inf,
        epoch_s=plan.epoch_s,
        total_s=plan.total_s,
        peak_memory_bytes=int(peak),
        fits=bool(fits),
        max_batch_size=int(max_batch),
        cost_usd=cost,
        bound=_bound(exposed, comp, mem),
        breakdown=breakdown(table, pricing),
        device={"name": profile.name, "profile_source": profile.source},
        host=host_summary(profile),
        interval=interval,
        analytic_ms=analytic_s * 1e3,
        correction=correction_info,
        prices=[q.to_dict() for q in quotes],
        model=step.label,
        batch_size=table.batch_size,
        global_batch_size=plan.global_batch_size,
        gpus=gpus,
        precision=table.precision,
        channels_last=table.channels_last,
        optimizer=table.optimizer,
        dataset_size=dataset_size,
        epochs=plan.epochs,
        steps_per_epoch=plan.steps_per_epoch,
        host_ms=tl.host_s * 1e3,
        device_ms=tl.device_s * 1e3,
        compute_ms=comp * 1e3,
        memory_ms=mem * 1e3,
        exposed_host_ms=exposed * 1e3,
        flops=step.flops,
        bytes=step.bytes,
        ops=step.ops,
        walk_peak_bytes=walk_peak,
        allocator_overhead_bytes=overhead,
        context_bytes=context,
        device_memory_bytes=int(profile.memory_bytes),
        max_batch_size_exact=exact,
        notes=notes,
        price_table=prices.to_dict(),
    )


def _does_not_fit(step: _Step, profile: DeviceProfile, batch: int, needs: int, max_batch: int, exact: bool,
                  usable_walk: int) -> str:
    """The note of a batch that does not fit: by how much, and what would fit instead."""
    have = profile.memory_bytes
    text = (f"batch {batch} does not fit in {have / 2**30:.1f} GiB (needs {needs / 2**30:.1f} GiB, "
            f"{(needs - have) / 2**30:.1f} GiB too much)")
    fixed = int(getattr(step.memory, "fixed_bytes", 0))
    if max_batch > 0:
        text += f"; the largest batch that fits is {'' if exact else 'about '}{max_batch}"
    else:
        text += "; not even the smallest batch fits"
        if fixed > usable_walk:
            text += f": the parameters, gradients and optimizer state alone need {fixed / 2**30:.1f} GiB"
    ideas = []
    if step.table.precision in ("fp32", "tf32") and fixed <= usable_walk:  # bf16 halves activations, not weights
        ideas.append("--precision bf16")
    if max_batch <= 0 and step.table.optimizer != "sgd":
        ideas.append("--optimizer sgd (no optimizer state per parameter)")
    ideas.append("a GPU with more memory" if profile.kind == "cuda" else "a device with more memory")
    if max_batch <= 0:
        ideas.append("a smaller model")
    return text + "; or try " + ", ".join(ideas)


def data_parallel(step: _Step, profile: DeviceProfile, estimate: Estimate, *, gpus: int, nodes: int = 1,
                  network: str | None = None, prices: PriceTable | None = None) -> Estimate:
    """``estimate`` (one GPU's step, as :func:`_estimate` made it, learned correction included) on ``gpus``
    GPUs of ``nodes`` servers with DDP (:mod:`traincost.pricing.parallel`): the step grows by the gradient all-reduce
    not hidden behind backward; epoch, total and cost follow. Applied after ``_estimate``, whatever it does
    to the single-GPU step. One GPU: ``estimate`` unchanged. ``prices``: the table ``_estimate`` used."""
    if gpus <= 1:
        return estimate
    from traincost.hardware.catalog import GPUS_PER_NODE
    from traincost.pricing.parallel import data_parallel as dp_step
    from traincost.pricing.parallel import fabric_for, grad_events

    table = step.table
    records = getattr(step.walk, "records", None)
    dp = dp_step(table, price(table, profile), fabric_for(profile, gpus=gpus, nodes=nodes, network=network),
                 grad_events(records) if records is not None else None)
    single_s = estimate.iteration_ms / 1e3
    iteration_s = single_s + dp.exposed_comm_s
    plan = plan_run(iteration_s, batch_size=table.batch_size, gpus=gpus, dataset_size=estimate.dataset_size,
                    epochs=estimate.epochs)
    quotes = quote(plan.total_s, prices_for_profile(profile, prices), gpus)
    interval = estimate.interval
    if interval is not None:
        interval = {k: (v + dp.exposed_comm_ms if k.endswith("_ms") else v) for k, v in interval.items()}
    where = f"{dp.intra_link}" + (f", {dp.network} between {nodes} nodes" if nodes > 1 else "")
    notes = [*estimate.notes,
             (f"data parallel (DDP): {gpus} GPUs x batch {table.batch_size}, gradients "
              f"{dp.grad_bytes / 2**20:.0f} MiB in {len(dp.buckets)} buckets all-reduced over {where}: "
              f"{dp.allreduce_ms:.2f} ms, {dp.exposed_comm_ms:.2f} ms not hidden behind backward (scaling "
              f"efficiency {dp.scaling_efficiency:.0%} of linear; NCCL/compute contention, stragglers and input "
              "pipelines not modelled)")]
    if gpus // nodes > GPUS_PER_NODE:
        notes.append(f"{gpus // nodes} GPUs per node is more than a usual server holds ({GPUS_PER_NODE}); predicted "
                     f"as one {dp.intra_link} domain (a DGX-2 has 16 V100); use nodes= for a cluster")
    if dp.unmatched_grad_bytes:
        notes.append(f"{dp.unmatched_grad_bytes / 2**20:.1f} MiB of gradients without a ready time in the walk: "
                     "all-reduced at the end of backward")
    return replace(
        estimate, iteration_ms=iteration_s * 1e3,
        samples_per_s=plan.global_batch_size / iteration_s if iteration_s > 0 else math.inf,
        epoch_s=plan.epoch_s, total_s=plan.total_s, prices=[q.to_dict() for q in quotes],
        cost_usd={q.provider: q.usd for q in quotes if q.usd is not None}, interval=interval, nodes=nodes,
        allreduce_ms=dp.allreduce_ms, exposed_comm_ms=dp.exposed_comm_ms,
        scaling_efficiency=single_s / iteration_s if iteration_s > 0 else 1.0,
        interconnect={"intra_link": dp.intra_link, "network": dp.network or None, "grad_bytes": dp.grad_bytes,
                      "buckets": len(dp.buckets)},
        notes=notes)


def with_provider(estimate: Estimate, provider: str | None) -> Estimate:
    """``estimate`` with only ``provider``'s price (case-insensitive); a usage error naming the providers
    that have a price when it has none. The price notes are redone for the price kept."""
    if provider is None:
        return estimate
    quotes = [PriceQuote(**q) for q in estimate.prices]
    kept = select_provider(quotes, provider, estimate.device["name"])
    return with_quotes(estimate, kept)


def with_quotes(estimate: Estimate, quotes: Sequence[PriceQuote], provider: str | None = None) -> Estimate:
    """``estimate`` with these quotes (a subset of its own, e.g. one provider's): ``prices``, ``cost_usd``
    and the price notes (:func:`traincost.pricing.cost.price_notes`; ``provider``: what the quotes were
    narrowed to, named when none is left) follow."""
    fresh = price_notes(quotes, estimate.device["name"], (estimate.price_table or {}).get("newest_date"),
                        filtered=provider)
    notes = [n for n in estimate.notes if not n.startswith(PRICE_NOTE_PREFIXES)] + fresh
    return replace(estimate, prices=[q.to_dict() for q in quotes],
                   cost_usd={q.provider: q.usd for q in quotes if q.usd is not None}, notes=notes)


def _check_common(precision: str, gpus: int, epochs: float | None, dataset_size: int | None,
                  batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise TraincostUsageError(f"batch_size must be a positive integer, got {batch_size!r}")
    if precision not in ("fp32", "tf32", "bf16", "fp16"):
        raise TraincostUsageError(f"precision must be one of fp32, tf32, bf16, fp16, got {precision!r}")
    check_run(epochs=epochs, dataset_size=dataset_size, gpus=gpus)
    if epochs is not None and epochs > MAX_EPOCHS:
        raise TraincostUsageError(f"epochs must be at most {MAX_EPOCHS:g}, got {epochs:g}")


def _host_source(host: Any) -> Any:
    """``host`` as :func:`traincost.hardware.host.with_host` takes it: None, a factor, or a calibrated GPU profile
    (a ``.json`` path is loaded; a number given as text is a factor)."""
    if host is None or isinstance(host, (DeviceProfile, int, float)):
        found = host
    elif isinstance(host, str):
        try:
            found = float(host)
        except ValueError:
            from traincost.hardware.profile import load_profile

            if not host.endswith(".json"):
                raise TraincostUsageError(f"host must be a factor (e.g. 0.7) or a calibrated GPU profile .json, "
                                          f"got {host!r}") from None
            found = load_profile(host)
    else:
        raise TraincostUsageError(f"host must be a factor or a calibrated GPU profile, got {type(host).__name__}")
    if isinstance(found, DeviceProfile) and (found.kind != "cuda" or found.source != "calibrated"):
        raise TraincostUsageError(f"host profile {found.name!r} must be a calibrated GPU profile (its dispatch cost "
                                  f"includes the CUDA launch); got a {found.source} {found.kind} profile")
    return found


def _check_device(profile: DeviceProfile, precision: str, gpus: int) -> None:
    check_precision(profile, precision)
    if profile.kind == "cpu" and gpus != 1:
        raise TraincostUsageError(f"gpus={gpus} needs a GPU device; {profile.name} is a CPU")


def predict(model: Any, *, device: str | DeviceProfile, batch_size: int,
            input_shape: tuple[int, ...] | str | None = None, precision: str = "fp32",
            channels_last: bool = False, optimizer: str = "sgd", epochs: float | None = None,
            dataset_size: int | None = None, gpus: int = 1, nodes: int = 1,
            network: str | None = None, correction: Any = "auto", host: Any = None,
            price_per_hour: float | None = None, prices: Any = None, input_dtype: str | None = None,
            seq_len: int | None = None, walker: Any = None) -> Estimate:
    """Predict one training step of ``model`` on ``device``, and the run when ``dataset_size`` is given.

    ``model``: a family/torchvision/timm name, ``hf:`` config, spec path, ``ArchSpec`` or ``nn.Module`` (as
    ``traincost.count``). ``input_dtype``: ``"int64"`` for token models; ``seq_len``: token ids of that length
    (``input_shape=(seq_len,)``, int64 unless ``input_dtype`` says int32).
    ``device``: ``"cpu"``, a GPU name (``"A100"``, ``"H100 SXM"``), a profile ``.json`` path or a
    :class:`~traincost.hardware.profile.DeviceProfile`. ``batch_size`` is per GPU; ``gpus`` > 1 is DDP data parallel on
    ``nodes`` servers (:func:`data_parallel`; ``network`` between nodes, e.g. ``"ib-hdr"`` or ``"8x ib-hdr"``).
    ``epochs`` defaults to 1 when only ``dataset_size`` is given. ``correction``: ``"auto"`` (the shipped
    residual model for the device, else a cross-device one, else none), a residual model ``.json`` path, or
    ``False``/``None`` for the analytic model alone (``Estimate.correction`` says which was used).
    ``host`` (GPUs): the CPU that launches the kernels, when it is not the profile's: a factor on every host cost
    (0.7 = a host 30 % faster per op) or a calibrated GPU profile (path or object) whose host to take
    (:func:`traincost.hardware.host.with_host`); ``Estimate.host`` says which host was assumed.
    Prices: each provider's newest on-demand price for the GPU from the shipped table; ``prices``, a CSV path
    with the columns of ``traincost/data/prices.csv`` (or ``Price`` rows), replaces the table;
    ``price_per_hour`` (USD per GPU-hour, also for a CPU) overrides any table as provider ``"your price"``:
    the run costs ``total_s / 3600 x price x gpus`` (:func:`traincost.pricing.cost.price_table`).
    ``walker``: how the step is walked, a function with the arguments of :func:`walk_step` returning its
    result (a cache of walks, as the web app keeps); default :func:`walk_step`.
    Raises ``TraincostUsageError`` for an unknown device, a precision the device lacks (bf16 on a V100),
    or bad run parameters or prices; a batch that does not fit is still predicted (``fits=False``).
    """
    _check_common(precision, gpus, epochs, dataset_size, batch_size)
    table = price_table(price_per_hour, prices)
    profile = with_host(resolve_device(device), _host_source(host))
    _check_device(profile, precision, gpus)
    check_parallel(gpus, nodes, network)
    source = _correction_source(correction)
    step = _walked(walker, model, batch_size=batch_size, input_shape=input_shape, precision=precision,
                   channels_last=channels_last, optimizer=optimizer, input_dtype=input_dtype,
                   seq_len=seq_len)
    return data_parallel(step, profile, _estimate(step, profile, epochs=epochs, dataset_size=dataset_size, gpus=gpus,
                                                  correction=source, prices=table),
                         gpus=gpus, nodes=nodes, network=network, prices=table)


def compare(model: Any, *, devices: Sequence[str | DeviceProfile] | str, batch_size: int,
            input_shape: tuple[int, ...] | str | None = None, precision: str = "fp32",
            channels_last: bool = False, optimizer: str = "sgd", epochs: float | None = None,
            dataset_size: int | None = None, gpus: int = 1, nodes: int = 1,
            network: str | None = None, correction: Any = "auto", host: Any = None,
            price_per_hour: float | None = None, prices: Any = None, input_dtype: str | None = None,
            seq_len: int | None = None, walker: Any = None) -> list[Estimate]:
    """One :class:`Estimate` per device, in the order given, from ONE walk of the model.

    The walk depends on the model, batch and precision, not on the device: it is priced again for each
    device. ``devices``: a list (or a comma-separated string) of what :func:`predict` accepts. Every device
    is resolved and checked first: an unknown name or a precision a device lacks is one usage error naming
    them all. ``correction`` as in :func:`predict`, chosen per device; ``host`` as in :func:`predict`, for the
    GPUs of the list. ``price_per_hour``, ``prices``, ``input_dtype``, ``seq_len`` and ``walker`` as in
    :func:`predict`, for every device.
    """
    _check_common(precision, gpus, epochs, dataset_size, batch_size)
    table = price_table(price_per_hour, prices)
    source = _correction_source(correction)
    host = _host_source(host)
    if isinstance(devices, str):
        devices = [d.strip() for d in devices.split(",") if d.strip()]
    devices = list(devices)
    if not devices:
        raise TraincostUsageError("devices is empty; give at least one device")
    profiles: list[DeviceProfile] = []
    given: list[Any] = []
    problems = []
    same: dict[int, list[str]] = {}  # index in profiles -> the other names given for that device
    for d in devices:
        try:
            p = resolve_device(d)
            p = with_host(p, host) if p.kind == "cuda" else p
            _check_device(p, precision, gpus)
        except TraincostUsageError as exc:
            problems.append(str(exc))
            continue
        twin = next((i for i, q in enumerate(profiles) if q.name == p.name), None)
        if twin is None:
            profiles.append(p)
            given.append(d)
        elif profiles[twin] == p:  # the same device named twice ("A100,A100", "A100,A100 SXM4 40GB"): once
            same.setdefault(twin, []).append(str(d))
        else:
            problems.append(f"{_given_name(given[twin])} and {_given_name(d)} are two different profiles named "
                            f"{p.name!r}: compare them in two runs, or rename one")
    if problems:
        raise TraincostUsageError("; ".join(problems))
    check_parallel(gpus, nodes, network)
    step = _walked(walker, model, batch_size=batch_size, input_shape=input_shape, precision=precision,
                   channels_last=channels_last, optimizer=optimizer, input_dtype=input_dtype,
                   seq_len=seq_len)
    out = [data_parallel(step, p, _estimate(step, p, epochs=epochs, dataset_size=dataset_size, gpus=gpus,
                                            exact_max_batch=False, correction=source, prices=table),
                         gpus=gpus, nodes=nodes, network=network, prices=table)
           for p in profiles]
    for i, names in same.items():
        also = ", ".join(repr(n) for n in names)
        out[i] = replace(out[i], notes=[*out[i].notes, f"{_given_name(given[i])} was also given as {also}: the same "
                                        f"device ({profiles[i].name}), compared once"])
    return out


def _given_name(device: Any) -> str:
    return repr(device) if isinstance(device, str) else f"profile {getattr(device, 'name', device)!r}"
