"""The predictor (traincost.api, traincost.pricing): timelines, per-op pricing, Estimate, predict() and compare().

Expected numbers are written as arithmetic. A fully mocked profile (``mock_profile``) keeps them exact.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from types import SimpleNamespace

import numpy as np
import pytest

import traincost
from traincost import api
from traincost.errors import TraincostUsageError
from traincost.hardware.profile import DeviceProfile
from traincost.pricing import geometry, optable, timeline

REQUIRED_FIELDS = ("iteration_ms", "samples_per_s", "epoch_s", "total_s", "peak_memory_bytes", "fits",
                   "max_batch_size", "cost_usd", "bound", "breakdown", "device", "interval")


def mock_profile(kind: str = "cuda", memory_bytes: int = 16 * 2**30, **changes) -> DeviceProfile:
    """A hand-made profile: round numbers, no cache tiers, no depth terms."""
    data = {
        "schema_version": 1, "source": "calibrated", "name": f"Mock {kind}", "kind": kind, "catalog_key": None,
        "memory_bytes": memory_bytes,
        "compute": {"matmul": {"fp32": {"peak": 1e12, "latency_s": 1e-5}, "bf16": {"peak": 4e12, "latency_s": 1e-5}},
                    "conv": {"fp32": {"peak": 2e12, "latency_s": 2e-5}, "bf16": {"peak": 8e12, "latency_s": 2e-5}},
                    "conv_backward": {"fp32": {"peak": 1e12, "latency_s": 3e-5}},
                    "conv_bwd_weight": {"fp32": {"peak": 5e11, "latency_s": 4e-5}}},
        "memory": {"peak": 1e11, "latency_s": 1e-6}, "reduction": {"peak": 5e10, "latency_s": 2e-6},
        "dispatch_s": 1e-5, "dispatch_autocast_s": 2e-5, "launch_s": 3e-6 if kind == "cuda" else 0.0,
        "optimizer": {"sgd_fixed_s": 1e-4, "sgd_per_tensor_s": 1e-6, "sgd_s_per_byte": 1e-12,
                      "adamw_fixed_s": 2e-4, "adamw_per_tensor_s": 2e-6, "adamw_s_per_byte": 4e-12},
        "software": {}, "created": "2026-01-01", "properties": {"allocator_overhead_bytes": 1024},
    }
    data.update(changes)
    return DeviceProfile.from_dict(data)


def rec(phase, op, op_class, flops=0, read=0, written=0, module="m", ins=(), dtypes=("float32",), outs=(),
        n_tensors=1, host_only=False):
    return SimpleNamespace(phase=phase, module=module, op=op, op_class=op_class, flops=flops, bytes_read=read,
                           bytes_written=written, input_shapes=tuple(ins), input_dtypes=tuple(dtypes),
                           output_shapes=tuple(outs), n_tensors=n_tensors, host_only=host_only)


def reference_timeline(host, device, sync_before=None):
    """The two timelines, op by op, as timeline.simulate states them."""
    host_t = device_t = 0.0
    for i, (h, d) in enumerate(zip(host, device)):
        if i == sync_before:
            host_t = max(host_t, device_t)
        host_t += h
        start = max(device_t, host_t)
        device_t = start + d
    return max(host_t, device_t)


# ------------------------------------------------------------------------------------------- timeline


def test_host_bound_step_is_the_host_time_plus_the_last_kernel():
    tl = timeline.simulate([1.0, 1.0, 1.0], [0.1, 0.1, 0.1], synchronous=False)
    # host dispatches at 1, 2, 3; each kernel runs right after: the last ends at 3 + 0.1
    assert tl.step_s == pytest.approx(3.0 + 0.1)
    assert tl.exposed_host_s == pytest.approx([1.0, 2.0 - 1.1, 3.0 - 2.1])
    assert tl.host_s == pytest.approx(3.0) and tl.device_s == pytest.approx(0.3)


def test_device_bound_step_is_the_first_dispatch_plus_all_kernels():
    tl = timeline.simulate([0.1, 0.1, 0.1], [1.0, 1.0, 1.0], synchronous=False)
    assert tl.step_s == pytest.approx(0.1 + 3 * 1.0)
    assert tl.exposed_host_s == pytest.approx([0.1, 0.0, 0.0])


def test_mixed_step():
    # h = 1, 1.1, 1.2, 2.2; d = 1 + 0.5 = 1.5; max(1.5, 1.1) + 2 = 3.5; 3.5 + 0.1 = 3.6; max(3.6, 2.2) + 0.1 = 3.7
    tl = timeline.simulate([1.0, 0.1, 0.1, 1.0], [0.5, 2.0, 0.1, 0.1], synchronous=False)
    assert tl.step_s == pytest.approx(3.7)
    assert tl.exposed_host_s == pytest.approx([1.0, 0.0, 0.0, 0.0])


def test_a_slow_host_op_late_in_the_step_leaves_the_device_idle():
    # h = 0.1, 3.1; d = 0.1 + 1 = 1.1; max(1.1, 3.1) + 0.5 = 3.6: 2.0 s idle waiting for the host
    tl = timeline.simulate([0.1, 3.0], [1.0, 0.5], synchronous=False)
    assert tl.step_s == pytest.approx(3.6)
    assert tl.exposed_host_s == pytest.approx([0.1, 3.1 - 1.1])
    assert tl.exposed_host_s.sum() + tl.device_s == pytest.approx(tl.step_s)


def test_sync_makes_the_host_wait_for_the_device():
    # before op 2 the host waits until the device is done at 0.1 + 2 = 2.1; then 2.1 + 0.1 + 1 = 3.2
    tl = timeline.simulate([0.1, 0.1, 0.1], [2.0, 0.0, 1.0], synchronous=False, sync_before=2)
    assert tl.step_s == pytest.approx(3.2)
    assert timeline.simulate([0.1, 0.1, 0.1], [2.0, 0.0, 1.0], synchronous=False).step_s == pytest.approx(2.1 + 1.0)


def test_cpu_runs_ops_one_after_another():
    tl = timeline.simulate([1.0, 0.1, 0.2], [0.5, 2.0, 0.0], synchronous=True)
    assert tl.step_s == pytest.approx(1.0 + 0.1 + 0.2 + 0.5 + 2.0 + 0.0)
    assert tl.exposed_host_s == pytest.approx([1.0, 0.1, 0.2])


def test_vectorised_timeline_matches_the_op_by_op_loop():
    rng = np.random.default_rng(0)
    for trial in range(50):
        n = int(rng.integers(1, 60))
        host = rng.exponential(1.0, n) * rng.choice([0.1, 1.0, 10.0])
        device = rng.exponential(1.0, n) * (rng.random(n) > 0.3)
        sync = int(rng.integers(0, n)) if trial % 2 else None
        tl = timeline.simulate(host, device, synchronous=False, sync_before=sync)
        assert tl.step_s == pytest.approx(reference_timeline(host, device, sync), rel=1e-12)
        assert tl.exposed_host_s.sum() + device.sum() == pytest.approx(tl.step_s, rel=1e-9)


# ------------------------------------------------------------------------------------------- op table


def test_math_mode_from_the_input_dtype():
    assert geometry.math_mode(("bfloat16", "bfloat16"), "bf16") == "bf16"
    assert geometry.math_mode(("int64", "float16"), "fp16") == "fp16"
    assert geometry.math_mode(("float32",), "fp32") == "fp32"
    assert geometry.math_mode(("float32",), "tf32") == "tf32"
    assert geometry.math_mode(("float32",), "bf16") == "fp32"  # an op autocast keeps in fp32


def test_conv_backward_picks_its_curve_from_what_it_computes():
    x, w = (8, 16, 32, 32), (32, 16, 3, 3)
    go = (8, 32, 32, 32)
    both = rec("backward", "aten.convolution_backward", "conv", 2, ins=(go, x, w), outs=(x, w, (32,)))
    weight_only = rec("backward", "aten.convolution_backward", "conv", 2, ins=(go, x, w), outs=(w, (32,)))
    input_only = rec("backward", "aten.convolution_backward", "conv", 2, ins=(go, x, w), outs=(x,))
    fwd = rec("forward", "aten.convolution", "conv", 2, ins=(x, w), outs=(go,))
    table = optable.OpTable.from_records([both, weight_only, input_only, fwd])
    groups = {k: list(v) for k, v in table.compute_groups.items()}
    assert groups == {("conv_backward", "fp32"): [0], ("conv_bwd_weight", "fp32"): [1],
                      ("conv_bwd_input", "fp32"): [2], ("conv", "fp32"): [3]}
    assert list(table.depth) == [16 * 3 * 3] * 4  # C_in / groups x kh x kw = prod(weight.shape[1:])


def test_device_times_of_a_hand_made_table_by_hand():
    """One op of each kind on the mocked GPU: device = max(compute curve, memory curve, launch_s 3 us)."""
    x, w, go = (8, 16, 32, 32), (32, 16, 3, 3), (8, 32, 32, 32)
    conv = 2 * 8 * 32 * 32 * 32 * 16 * 9  # 2 x N x H x W x C_out x C_in x kh x kw = 75_497_472 FLOP
    sq = ((1000, 1000), (1000, 1000))
    records = [
        rec("forward", "aten.mm", "matmul", 2e9, 1e6, 1e6, ins=sq),                                   # 0
        rec("forward", "aten.mm", "matmul", 2e9, 1e6, 1e6, ins=sq, dtypes=("bfloat16",)),             # 1
        rec("forward", "aten.mm", "matmul", 2e9, 1e6, 1e6, ins=sq, dtypes=("float16",)),              # 2
        rec("forward", "aten.convolution", "conv", conv, 4e6, 4e6, ins=(x, w), outs=(go,)),           # 3
        rec("backward", "aten.convolution_backward", "conv", 2 * conv, 5e5, 5e5, ins=(go, x, w),
            outs=(x, w, (32,))),                                                                      # 4
        rec("backward", "aten.convolution_backward", "conv", conv, ins=(go, x, w), outs=(w, (32,))),  # 5
        rec("backward", "aten.convolution_backward", "conv", conv, ins=(go, x, w), outs=(x,)),        # 6
        rec("forward", "aten.sum", "reduction", 0, 1e6, 4),                                           # 7
        rec("forward", "aten.relu", "elementwise", 0, 100, 100),                                      # 8
        rec("forward", "aten.view", "free"),                                                          # 9
        rec("forward", "aten._scaled_dot_product_efficient_attention", "attention", 1e9),            # 10
        rec("optimizer", "aten._local_scalar_dense", "copy", 0, 4, 4, host_only=True),                # 11
    ]
    device, compute, memory = optable.OpTable.from_records(records).device_times(mock_profile("cuda"))
    want_compute = [
        1e-5 + 2e9 / 1e12,          # 0: fp32 matmul curve = 2.01 ms
        1e-5 + 2e9 / 4e12,          # 1: bf16 matmul curve = 0.51 ms
        1e-5 + 2e9 / 1e12,          # 2: no fp16 curve: priced at fp32
        2e-5 + conv / 2e12,         # 3: conv curve = 57.7 us
        3e-5 + 2 * conv / 1e12,     # 4: both gradients, no conv_bwd_input curve: the fused conv_backward curve
        4e-5 + conv / 5e11,         # 5: weight gradient only: conv_bwd_weight = 191 us
        3e-5 + conv / 1e12,         # 6: input gradient only: no conv_bwd_input curve, falls back to conv_backward
        0.0, 0.0, 0.0,              # 7-9: no compute curve
        1e-5 + 1e9 / 1e12,          # 10: attention on the matmul curve
        0.0,                        # 11
    ]
    want_memory = [
        1e-6 + 2e6 / 1e11, 1e-6 + 2e6 / 1e11, 1e-6 + 2e6 / 1e11,  # 0-2: 21 us on the memory curve
        1e-6 + 8e6 / 1e11,          # 3: 81 us: this conv is memory-bound
        1e-6 + 1e6 / 1e11,          # 4
        0.0, 0.0,                   # 5-6: no bytes
        2e-6 + (1e6 + 4) / 5e10,    # 7: the reduction curve
        1e-6 + 200 / 1e11,          # 8: 1.000002 us, below launch_s
        0.0, 0.0, 0.0,              # 9-11: free, no bytes, host-only
    ]
    assert compute.tolist() == pytest.approx(want_compute, rel=1e-12)
    assert memory.tolist() == pytest.approx(want_memory, rel=1e-12)
    want_device = [max(c, m) for c, m in zip(want_compute, want_memory)]
    want_device[8] = 3e-6           # the launch floor
    want_device[9] = want_device[11] = 0.0  # free and host-only ops run no kernel
    assert device.tolist() == pytest.approx(want_device, rel=1e-12)
    assert device[3] == memory[3] and device[4] == compute[4]
    # a channels_last step takes the channels_last conv curve: 2e-5 + conv / 4e12 = 38.9 us
    profile = mock_profile(compute={"matmul": {"fp32": {"peak": 1e12, "latency_s": 1e-5}},
                                    "conv": {"fp32": {"peak": 2e12, "latency_s": 2e-5},
                                             "fp32_channels_last": {"peak": 4e12, "latency_s": 2e-5}}})
    _, compute, _ = optable.OpTable.from_records(records[3:4], channels_last=True).device_times(profile)
    assert compute[0] == pytest.approx(2e-5 + conv / 4e12, rel=1e-12)
    # one op alone is the same table of one row
    assert optable.price_op(mock_profile("cuda"), "matmul", "bf16", 2e9, 2e6, op="aten.mm",
                            input_shapes=sq) == pytest.approx(1e-5 + 2e9 / 4e12, rel=1e-12)
    assert optable.price_op(mock_profile("cuda"), "elementwise", "fp32", 0, 200, op="aten.relu") == 3e-6
    assert optable.price_op(mock_profile("cuda"), "free") == 0.0
    with pytest.raises(ValueError, match="mode"):
        optable.price_op(mock_profile("cuda"), "matmul", "fp8", 1e9)


def test_cache_tier_only_when_the_whole_step_fits_in_the_cache():
    curve = dataclasses.replace(mock_profile().memory, cache_bytes=1e9, cache_peak=1e12)
    profile = dataclasses.replace(mock_profile(), memory=curve)
    records = [rec("forward", "aten.relu", "elementwise", 0, 5e7, 5e7)]
    small = optable.OpTable.from_records(records, working_set_bytes=10**8)
    large = optable.OpTable.from_records(records, working_set_bytes=10**10)
    assert small.device_times(profile)[0][0] == pytest.approx(1e-6 + 1e8 / 1e12)  # cache_peak
    assert large.device_times(profile)[0][0] == pytest.approx(1e-6 + 1e8 / 1e11)  # DRAM peak


# ------------------------------------------------------------------------------------------- pricing


STEP = [
    rec("forward", "aten.addmm", "matmul", 2e9, 1e6, 1e6, module="fc"),               # 0
    rec("forward", "aten.relu", "elementwise", 0, 2e6, 2e6, module="act"),             # 1
    rec("forward", "aten.view", "free", module="act"),                                  # 2
    rec("backward", "aten.mm", "matmul", 4e9, 1e6, 1e6, module="fc"),                  # 3
    rec("backward", "aten.sum", "reduction", 0, 1e6, 4, module="fc"),                  # 4
    rec("optimizer", "profiler._record_function_enter_new", "free", module="(optimizer)"),            # 5
    rec("optimizer", "aten._foreach_add_", "optimizer", 0, 2e6, 1e6, module="(optimizer)", n_tensors=2),  # 6
    rec("optimizer", "aten._local_scalar_dense", "copy", 0, 4, 4, module="(optimizer)", host_only=True),  # 7
    rec("optimizer", "profiler._record_function_exit", "free", module="(optimizer)"),                # 8
]


def test_price_on_a_mocked_gpu_by_hand():
    table = optable.OpTable.from_records(STEP, param_bytes=10**6)
    pr = timeline.price(table, mock_profile("cuda"))
    device = [1e-5 + 2e9 / 1e12,        # matmul curve: latency + flops / peak
              1e-6 + 4e6 / 1e11,        # memory curve on bytes read + written
              0.0,                      # free: no kernel
              1e-5 + 4e9 / 1e12,
              2e-6 + (1e6 + 4) / 5e10,  # reduction curve
              0.0,
              1e-6 + 3e6 / 1e11,        # foreach: memory curve on a GPU
              0.0,                      # host-only (CPU step counter)
              0.0]
    assert pr.device_s == pytest.approx(device, rel=1e-12)
    fwd, bwd = 1e-5 * timeline.HOST_OP_RATIO["forward"], 1e-5 * timeline.HOST_OP_RATIO["backward"]
    opt_total = 1e-4 + 1e-6 * 2         # sgd_fixed_s + sgd_per_tensor_s x 2 tensors, over weights 1, 2, 1, 1
    zero_grad = timeline.ZERO_GRAD_PER_TENSOR_RATIO * 1e-5 * 2
    host = [fwd, fwd, fwd, bwd, bwd, opt_total / 5, opt_total * 2 / 5, opt_total / 5, opt_total / 5 + zero_grad]
    assert pr.host_s == pytest.approx(host, rel=1e-12)
    assert pr.timeline.step_s == pytest.approx(reference_timeline(host, device), rel=1e-12)
    assert pr.compute_s == pytest.approx([device[0], 0, 0, device[3], 0, 0, 0, 0, 0])
    assert pr.memory_s.sum() == pytest.approx(device[1] + device[4] + device[6])


def test_price_on_a_mocked_cpu_adds_everything_and_uses_the_optimizer_bytes_constant():
    table = optable.OpTable.from_records(STEP, param_bytes=10**6)
    pr = timeline.price(table, mock_profile("cpu"))
    # the step's kernels: the only region kernel with bytes is the foreach op: sgd_s_per_byte x param bytes
    assert pr.device_s[6] == pytest.approx(1e-12 * 10**6)
    assert pr.device_s[0] == pytest.approx(1e-5 + 2e9 / 1e12)
    assert pr.timeline.step_s == pytest.approx(pr.host_s.sum() + pr.device_s.sum())


def test_autocast_forward_ops_use_the_autocast_dispatch_cost():
    table = optable.OpTable.from_records(STEP, precision="bf16", param_bytes=10**6)
    pr = timeline.price(table, mock_profile("cuda"))
    assert pr.host_s[0] == pytest.approx(2e-5 * timeline.HOST_OP_RATIO["forward"])
    assert pr.host_s[3] == pytest.approx(1e-5 * timeline.HOST_OP_RATIO["backward"])


def test_a_profile_measured_host_op_ratio_replaces_the_default():
    """A host measured by benchmarks/host_overhead.py --write prices its ops with its own ratios (the Intel
    Xeon's 6.26 / 3.33 / 1.33 are not the AMD EPYC's 4.3 / 2.1 / 0.8); one ratio given, the others default."""
    table = optable.OpTable.from_records(STEP, param_bytes=10**6)
    own = {"forward": 6.0, "backward": 3.0, "zero_grad_per_tensor": 1.5, "measured": "2026-12-04"}
    pr = timeline.price(table, mock_profile("cpu", properties={"host_op_ratio": own}))
    assert pr.host_s[0] == pytest.approx(1e-5 * 6.0) and pr.host_s[3] == pytest.approx(1e-5 * 3.0)
    opt_total = 1e-4 + 1e-6 * 2
    assert pr.host_s[-1] == pytest.approx(opt_total / 5 + 1.5 * 1e-5 * 2)   # zero_grad: ratio x dispatch x tensors
    half = timeline.host_op_ratios(mock_profile("cpu", properties={"host_op_ratio": {"backward": 3.0}}))
    assert half == {"forward": timeline.HOST_OP_RATIO["forward"], "backward": 3.0,
                    "zero_grad_per_tensor": timeline.ZERO_GRAD_PER_TENSOR_RATIO}
    assert timeline.host_op_ratios(mock_profile("cpu")) == {**timeline.HOST_OP_RATIO,
                                                    "zero_grad_per_tensor": timeline.ZERO_GRAD_PER_TENSOR_RATIO}
    for bad in (0, -1.0, "5", float("nan"), True):
        with pytest.raises(TraincostUsageError, match="host_op_ratio.forward"):
            timeline.host_op_ratios(mock_profile("cpu", properties={"host_op_ratio": {"forward": bad}}))
    with pytest.raises(TraincostUsageError, match="host_op_ratio must be an object"):
        timeline.host_op_ratios(mock_profile("cpu", properties={"host_op_ratio": "forward"}))


def test_fp16_waits_for_the_device_before_the_optimizer_step():
    table = optable.OpTable.from_records(STEP, precision="fp16", param_bytes=10**6)
    assert table.sync_index == 5
    pr = timeline.price(table, mock_profile("cuda"))
    assert pr.timeline.step_s == pytest.approx(reference_timeline(pr.host_s, pr.device_s, sync_before=5))


def test_adam_uses_the_adamw_constants():
    table = optable.OpTable.from_records(STEP, optimizer="adam", param_bytes=10**6)
    pr = timeline.price(table, mock_profile("cuda"))
    zero_grad = timeline.ZERO_GRAD_PER_TENSOR_RATIO * 1e-5 * 2
    assert pr.host_s[5:].sum() == pytest.approx(2e-4 + 2e-6 * 2 + zero_grad)


def test_breakdown_rows_add_up_to_the_step():
    table = optable.OpTable.from_records(STEP, param_bytes=10**6)
    pr = timeline.price(table, mock_profile("cuda"))
    rows = timeline.breakdown(table, pr)
    assert {r["module"] for r in rows} == {"fc", "act", "(optimizer)"}
    assert sum(r["ms"] for r in rows) == pytest.approx(pr.timeline.step_s * 1e3)
    assert [r["ms"] for r in rows] == sorted((r["ms"] for r in rows), reverse=True)
    fc = next(r for r in rows if r["module"] == "fc")
    assert fc["flops"] == 6e9 and fc["bound"] == "compute" and fc["ops"] == 3


# ------------------------------------------------------------------------------------------- API


def test_predict_signature_is_the_contract():
    sig = inspect.signature(traincost.predict)
    assert list(sig.parameters) == ["model", "device", "batch_size", "input_shape", "precision", "channels_last",
                                    "optimizer", "epochs", "dataset_size", "gpus", "nodes", "network", "correction",
                                    "host", "price_per_hour", "prices", "input_dtype", "seq_len", "walker"]
    defaults = {k: p.default for k, p in sig.parameters.items() if p.default is not inspect.Parameter.empty}
    assert defaults == {"input_shape": None, "precision": "fp32", "channels_last": False, "optimizer": "sgd",
                        "epochs": None, "dataset_size": None, "gpus": 1, "nodes": 1, "network": None,
                        "correction": "auto", "host": None, "price_per_hour": None, "prices": None,
                        "input_dtype": None, "seq_len": None, "walker": None}
    assert all(sig.parameters[k].kind is inspect.Parameter.KEYWORD_ONLY for k in list(sig.parameters)[1:])
    assert "devices" in inspect.signature(traincost.compare).parameters
    for name in ("predict", "compare", "Estimate", "DeviceProfile"):
        assert name in traincost.__all__ and hasattr(traincost, name)


def test_mocked_profile_gives_a_deterministic_estimate(tiny):
    profile = mock_profile("cuda")
    a = traincost.predict(tiny["vgg"], device=profile, batch_size=4, epochs=2, dataset_size=1000, correction=False)
    b = traincost.predict(tiny["vgg"], device=profile, batch_size=4, epochs=2, dataset_size=1000, correction=False)
    assert a == b
    assert isinstance(a, traincost.Estimate)
    for f in REQUIRED_FIELDS:
        assert hasattr(a, f)
    assert a.correction["model"] is None and a.analytic_ms == a.iteration_ms  # analytic only
    assert a.device == {"name": "Mock cuda", "profile_source": "calibrated"}
    assert a.samples_per_s == pytest.approx(4 / (a.iteration_ms / 1e3))
    assert a.steps_per_epoch == 250                            # ceil(1000 / 4)
    assert a.epoch_s == pytest.approx(250 * a.iteration_ms / 1e3)
    assert a.total_s == pytest.approx(2 * a.epoch_s)
    assert a.cost_usd == {} and a.prices == []                 # not a catalog GPU: no price
    assert a.peak_memory_bytes == a.walk_peak_bytes + 1024     # + allocator_overhead_bytes
    assert a.fits and a.max_batch_size >= 4
    assert a.bound in ("compute", "memory", "host")
    assert sum(r["ms"] for r in a.breakdown) == pytest.approx(a.iteration_ms)
    walk = traincost.count(tiny["vgg"], batch_size=4).walk
    pr = timeline.price(optable.OpTable.from_walk(walk), profile)
    assert a.iteration_ms == pytest.approx(pr.timeline.step_s * 1e3)


def test_small_batch_is_host_bound_and_large_batch_device_bound(tiny):
    profile = mock_profile("cuda")
    small = traincost.predict(tiny["vgg"], device=profile, batch_size=1)
    large = traincost.predict(tiny["vgg"], device=profile, batch_size=4096)
    assert small.bound == "host"
    assert large.bound in ("compute", "memory")
    assert large.iteration_ms > small.iteration_ms


def test_a_batch_that_does_not_fit_is_predicted_with_the_largest_that_fits(tiny):
    walk = traincost.count(tiny["vgg"], batch_size=64).walk
    memory = walk.memory.peak_bytes // 2 + api.CUDA_CONTEXT_BYTES + 1024
    e = traincost.predict(tiny["vgg"], device=mock_profile("cuda", memory_bytes=memory), batch_size=64)
    assert not e.fits and e.iteration_ms > 0
    assert e.max_batch_size_exact and 0 < e.max_batch_size < 64
    usable = memory - api.CUDA_CONTEXT_BYTES - 1024
    assert traincost.count(tiny["vgg"], batch_size=e.max_batch_size).peak_memory_bytes <= usable
    assert traincost.count(tiny["vgg"], batch_size=e.max_batch_size + 1).peak_memory_bytes > usable
    assert any("does not fit" in n for n in e.notes)


def test_compare_walks_once_and_prices_each_device(tiny, monkeypatch):
    import traincost.flopmodel.count as count_module

    calls = []
    real = count_module.count

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(count_module, "count", counting)
    estimates = traincost.compare(tiny["resnet"], devices=["H100 SXM", "T4", mock_profile("cuda")], batch_size=8,
                                  dataset_size=100)
    assert len(calls) == 1
    assert [e.device["name"] for e in estimates] == ["H100 SXM5 80GB (datasheet)", "T4 (datasheet)", "Mock cuda"]
    one = traincost.predict(tiny["resnet"], device="T4", batch_size=8, dataset_size=100)
    assert estimates[1].iteration_ms == pytest.approx(one.iteration_ms)
    assert estimates[1].cost_usd == pytest.approx(one.cost_usd)
    assert traincost.compare(tiny["fc"], devices="A100, L4", batch_size=2)[1].device["name"] == "L4 (datasheet)"


def test_prices_and_cost_for_a_catalog_gpu(tiny):
    e = traincost.predict(tiny["fc"], device="A100 SXM 80GB", batch_size=8, epochs=3, dataset_size=10_000, gpus=2)
    assert e.cost_usd and set(e.cost_usd) == {p["provider"] for p in e.prices}
    hours = e.total_s / 3600
    for p in e.prices:
        assert e.cost_usd[p["provider"]] == pytest.approx(hours * p["usd_per_gpu_hour"] * 2)
        assert p["source_date"] and p["source"]
    assert e.steps_per_epoch == math.ceil(10_000 / (8 * 2))
    assert e.samples_per_s == pytest.approx(16 / (e.iteration_ms / 1e3))
    only = api.with_provider(e, e.prices[0]["provider"].upper())
    assert list(only.cost_usd) == [e.prices[0]["provider"]]
    with pytest.raises(TraincostUsageError, match="no price from provider"):
        api.with_provider(e, "no such cloud")


@pytest.mark.parametrize("kwargs, pattern", [
    ({"device": "V100", "precision": "bf16"}, "bf16"),
    ({"device": "T4", "precision": "bf16"}, "bf16"),
    ({"device": "cpu", "precision": "tf32"}, "tf32"),
    ({"device": "Z9000 Ultra"}, "unknown GPU"),
    ({"device": "A100", "epochs": -1, "dataset_size": 10}, "epochs"),
    ({"device": "A100", "dataset_size": -10}, "dataset_size"),
    ({"device": "A100", "gpus": 0}, "gpus"),
    ({"device": "cpu", "gpus": 2}, "GPU"),
    ({"device": "A100", "precision": "fp8"}, "precision"),
    ({"device": 3}, "device"),
])
def test_bad_input_is_a_usage_error(tiny, kwargs, pattern):
    with pytest.raises(TraincostUsageError, match=pattern):
        traincost.predict(tiny["fc"], batch_size=2, **kwargs)


def test_compare_names_every_device_it_cannot_use(tiny):
    with pytest.raises(TraincostUsageError) as info:
        traincost.compare(tiny["fc"], devices=["V100", "A100", "T4"], batch_size=2, precision="bf16")
    assert "V100" in str(info.value) and "T4" in str(info.value)
    with pytest.raises(TraincostUsageError, match="empty"):
        traincost.compare(tiny["fc"], devices=[], batch_size=2)


def test_the_estimate_serialises_to_plain_json(tiny):
    import json

    e = traincost.predict(tiny["inception"], device="H200", batch_size=2, precision="bf16", channels_last=True,
                          optimizer="adamw", dataset_size=50)
    d = json.loads(json.dumps(e.to_dict(), allow_nan=False))
    for f in REQUIRED_FIELDS:
        assert f in d
    assert d["device"]["profile_source"] == "calibrated"
    assert {"module", "ms", "bound", "flops", "bytes"} <= set(d["breakdown"][0])


# ------------------------------------------------------------------ per-pass conv curves, depth kinds, kernel curves


def test_conv_depths_by_hand():
    # forward: x (8, 64, 16, 16), w (128, 64, 3, 3), out (8, 128, 8, 8)
    d = geometry.conv_depths("aten.convolution", [(8, 64, 16, 16), (128, 64, 3, 3)], [(8, 128, 8, 8)])
    assert d == {"c_in_kk": 64 * 3 * 3, "c_out_kk": 128 * 3 * 3, "positions": 8 * 8 * 8,
                 "min_c_in_kk_positions": min(64 * 3 * 3, 8 * 8 * 8), "min_channels": 64}
    # backward of a depthwise conv: grad_out (2, 32, 4, 4), x (2, 32, 8, 8), w (32, 1, 3, 3): 32 groups
    d = geometry.conv_depths("aten.convolution_backward", [(2, 32, 4, 4), (2, 32, 8, 8), (32, 1, 3, 3)], [])
    assert d == {"c_in_kk": 1 * 3 * 3, "c_out_kk": 32 / 32 * 3 * 3, "positions": 2 * 4 * 4,
                 "min_c_in_kk_positions": 9, "min_channels": 1}
    assert set(geometry.conv_depths("aten.convolution", [(8, 4)], [(8, 4)]).values()) == {0.0}


def _conv_backward_records():
    go, x, w = (8, 512, 2, 2), (8, 512, 2, 2), (512, 512, 3, 3)
    flops = 2 * (2 * 8 * 512 * 512 * 9 * 2 * 2)  # grad input + grad weight, each the forward's FLOPs
    return [rec("backward", "aten.convolution_backward", "conv", flops, 10, 10, ins=(go, x, w), outs=(x, w))], flops


def test_conv_backward_is_the_sum_of_its_passes_with_their_own_depths():
    records, flops = _conv_backward_records()
    profile = mock_profile(compute={
        "matmul": {"fp32": {"peak": 1e12, "latency_s": 1e-5}},
        "conv_backward": {"fp32": {"peak": 1e12, "latency_s": 3e-5}},
        "conv_bwd_input": {"fp32": {"peak": 2e12, "latency_s": 1e-5, "k_half": 100, "depth_kind": "c_out_kk"}},
        "conv_bwd_weight": {"fp32": {"peak": 4e12, "latency_s": 2e-5, "k_half": 96,
                                     "depth_kind": "min_c_in_kk_positions"}}})
    device, compute, _ = optable.OpTable.from_records(records).device_times(profile)
    t_in = 1e-5 + (flops / 2) / (2e12 * 4608 / (4608 + 100))   # depth C_out x 3 x 3 = 4608
    t_w = 2e-5 + (flops / 2) / (4e12 * 32 / (32 + 96))         # depth min(4608, 8 x 2 x 2 = 32) = 32
    assert compute[0] == pytest.approx(t_in + t_w, rel=1e-12)
    assert device[0] == pytest.approx(t_in + t_w, rel=1e-12)


def test_conv_backward_without_both_pass_curves_uses_the_fused_curve():
    records, flops = _conv_backward_records()
    profile = mock_profile()  # conv_backward and conv_bwd_weight only: no split
    _, compute, _ = optable.OpTable.from_records(records).device_times(profile)
    assert compute[0] == pytest.approx(3e-5 + flops / 1e12, rel=1e-12)


def test_ops_with_a_kernel_curve_are_priced_on_it():
    records = [rec("forward", "aten.native_batch_norm", "norm", 8e6, 4e6, 4e6, ins=((8, 64, 32, 32),)),
               rec("forward", "aten.relu_", "elementwise", 0, 4e6, 4e6, ins=((8, 64, 32, 32),)),
               rec("forward", "aten.native_batch_norm", "norm", 8e6, 2e6, 2e6, ins=((8, 64, 32, 32),),
                   dtypes=("bfloat16", "float32"))]
    profile = mock_profile(kernels={"native_batch_norm": {"fp32": {"peak": 1e9, "latency_s": 1e-5}}})
    device, _, memory = optable.OpTable.from_records(records, precision="bf16").device_times(profile)
    assert memory[0] == pytest.approx(1e-5 + 8e6 / 1e9, rel=1e-12)
    assert memory[1] == pytest.approx(1e-6 + 8e6 / 1e11, rel=1e-12)  # no curve of its own: the memory curve
    assert memory[2] == pytest.approx(1e-5 + 4e6 / 1e9, rel=1e-12)   # bf16 falls back to the fp32 curve
    assert device[0] == memory[0]


# ------------------------------------------------------------------ skinny GEMMs, fresh memory, shape factors


def test_gemm_min_dim_by_hand():
    assert geometry.gemm_min_dim("aten.mm", [(8, 1024), (1024, 512)]) == 8                       # batch 8 forward
    assert geometry.gemm_min_dim("aten.addmm", [(512,), (1024, 8), (8, 512)]) == 8                # K = batch: grad weight
    assert geometry.gemm_min_dim("aten.bmm", [(4, 64, 32), (4, 32, 128)]) == 32
    assert geometry.gemm_min_dim("aten.mm", [(8, 1024), (512, 16)]) == 0                          # not a product
    assert geometry.gemm_min_dim("aten.convolution", [(8, 3, 32, 32), (16, 3, 3, 3)]) == 0


def test_matmul_depth_term_reads_the_smallest_gemm_dimension():
    records = [rec("forward", "aten.mm", "matmul", 2 * 8 * 1024 * 512, ins=((8, 1024), (1024, 512))),
               rec("forward", "aten.mm", "matmul", 2 * 1024 ** 3, ins=((1024, 1024), (1024, 1024)))]
    profile = mock_profile(compute={"matmul": {"fp32": {"peak": 1e12, "latency_s": 1e-5, "k_half": 24,
                                                        "depth_kind": "min_mnk"}}})
    _, compute, _ = optable.OpTable.from_records(records).device_times(profile)
    assert compute[0] == pytest.approx(1e-5 + 2 * 8 * 1024 * 512 / (1e12 * 8 / (8 + 24)), rel=1e-12)
    assert compute[1] == pytest.approx(1e-5 + 2 * 1024 ** 3 / (1e12 * 1024 / (1024 + 24)), rel=1e-12)


def test_fresh_output_bytes_counts_new_outputs_above_the_threshold():
    big, small = (4096, 4096), (1024, 1024)  # 64 MiB and 4 MiB in fp32
    assert geometry.fresh_output_bytes(rec("backward", "aten.mm", "matmul", outs=(big,))) == 4096 * 4096 * 4
    assert geometry.fresh_output_bytes(rec("backward", "aten.mm", "matmul", outs=(small,))) == 0
    assert geometry.fresh_output_bytes(rec("backward", "aten.mm", "matmul", outs=(small,)), 1) == 1024 * 1024 * 4
    assert geometry.fresh_output_bytes(rec("forward", "aten.relu_", "elementwise", outs=(big,))) == 0  # in place
    bf16 = SimpleNamespace(**{**vars(rec("forward", "aten._to_copy", "copy", outs=(big,))),
                              "output_dtypes": ("bfloat16",)})
    assert geometry.fresh_output_bytes(bf16) == 4096 * 4096 * 2


def test_first_touch_is_priced_on_cpu_profiles_only():
    records = [rec("forward", "aten.clone", "copy", 0, 64 << 20, 64 << 20, outs=((16 << 20,),))]
    props = {"first_touch_s_per_byte": 2.5e-10}
    cpu = mock_profile(kind="cpu", properties=props)
    _, _, memory = optable.OpTable.from_records(records).device_times(cpu)
    assert memory[0] == pytest.approx(1e-6 + 2 * (64 << 20) / 1e11 + 2.5e-10 * (64 << 20), rel=1e-12)
    _, _, memory = optable.OpTable.from_records(records).device_times(mock_profile(properties=props))  # a GPU
    assert memory[0] == pytest.approx(1e-6 + 2 * (64 << 20) / 1e11, rel=1e-12)


def test_a_kernel_curve_is_never_faster_than_the_memory_curve():
    records = [rec("forward", "aten._to_copy", "copy", 0, 4e6, 2e6, ins=((8, 64, 32, 32),))]
    profile = mock_profile(kernels={"_to_copy": {"fp32": {"peak": 1e13, "latency_s": 0.0}}})
    device, _, memory = optable.OpTable.from_records(records).device_times(profile)
    assert memory[0] == pytest.approx(1e-6 + 6e6 / 1e11, rel=1e-12)  # the plain stream, not 6e6 / 1e13
    assert optable.price_op(profile, "copy", "fp32", 0, 6e6, op="aten._to_copy") == pytest.approx(
        1e-6 + 6e6 / 1e11, rel=1e-12)  # one op alone: the same


def test_kernel_curve_channels_depth():
    records = [rec("forward", "aten.native_batch_norm", "norm", 0, 4e6, 4e6, ins=((8, 4, 32, 32),))]
    profile = mock_profile(kernels={"native_batch_norm": {"fp32": {"peak": 1e9, "latency_s": 0.0, "k_half": 12,
                                                                   "depth_kind": "channels"}}})
    _, _, memory = optable.OpTable.from_records(records).device_times(profile)
    assert memory[0] == pytest.approx(8e6 / (1e9 * 4 / (4 + 12)), rel=1e-12)  # 4 channels: a quarter of 1e9
    # one op alone: 8 MB at 1e9 x 4 / (4 + 12) = 0.25e9 B/s = 32 ms
    assert optable.price_op(profile, "norm", "fp32", 0, 8e6, op="aten.native_batch_norm",
                            input_shapes=[(8, 4, 32, 32)]) == pytest.approx(8e6 / 0.25e9, rel=1e-12)


def test_channels_last_batch_norm_pays_a_partial_vector_per_pixel():
    ins8, ins16 = ((16, 8, 32, 32),), ((16, 16, 32, 32),)
    records = [rec("backward", "aten.native_batch_norm_backward", "norm", 0, 2e6, 1e6, ins=ins8),
               rec("backward", "aten.native_batch_norm_backward", "norm", 0, 2e6, 1e6, ins=ins16),
               rec("forward", "aten.relu_", "elementwise", 0, 1e6, 1e6, ins=ins8)]
    curve = {"peak": 1e9, "latency_s": 1e-5}
    profile = mock_profile(kind="cpu", kernels={"native_batch_norm_backward": {"fp32_channels_last": curve}},
                           properties={"cpu_flags": ["avx2", "avx512f"], "kernel_tail_s_per_row": {
                               "native_batch_norm_backward/fp32_channels_last": {"8": 5e-8}}})
    _, _, memory = optable.OpTable.from_records(records, channels_last=True).device_times(profile)
    assert memory[0] == pytest.approx(1e-5 + 3e6 / 1e9 + 16 * 32 * 32 * 5e-8, rel=1e-12)  # 8 of 16 lanes
    assert memory[1] == pytest.approx(1e-5 + 3e6 / 1e9, rel=1e-12)                        # whole vectors
    assert memory[2] == pytest.approx(1e-6 + 2e6 / 1e11, rel=1e-12)                       # not a tail op
    _, _, contiguous = optable.OpTable.from_records(records).device_times(profile)
    assert contiguous[0] == pytest.approx(1e-6 + 3e6 / 1e11, rel=1e-12)  # no channels_last curve, no tail
    # one op alone: 10 us + 3 ms + 16384 pixels x 50 ns = 3.8292 ms
    assert optable.price_op(profile, "norm", "fp32", 0, 3e6, op="aten.native_batch_norm_backward",
                            input_shapes=ins8, channels_last=True) == pytest.approx(3.8292e-3, rel=1e-12)


def test_conv_shape_by_hand():
    assert geometry.conv_shape("aten.convolution", [(8, 64, 16, 16), (128, 64, 3, 3)], [(8, 128, 8, 8)]) == \
        (64, 128, 9, 8 * 8 * 8)
    assert geometry.conv_shape("aten.convolution_backward", [(2, 32, 4, 4), (2, 32, 8, 8), (32, 1, 3, 3)], []) == \
        (1, 1, 9, 2 * 4 * 4)
    assert geometry.conv_shape("aten.mm", [(8, 4)], [(8, 4)]) == (0.0, 0.0, 0.0, 0.0)


def test_shape_factor_takes_the_measured_factor_near_a_point_and_one_far_away():
    from traincost.hardware.profile import SHAPE_FACTOR_PRIOR, shape_factor

    points = np.array([[4, 4, 9, 100_000, 6.0], [256, 256, 9, 10_000, 1.0]])
    got = shape_factor(points, np.array([[4, 4, 9, 100_000], [2048, 2048, 1, 10], [0, 0, 0, 0]]))
    near_weight = 1.0 + math.exp(-0.5 * ((math.log(64) ** 2) * 2 + math.log(10) ** 2) / 0.7 ** 2)
    assert got[0] == pytest.approx(math.exp(math.log(6.0) / (near_weight + SHAPE_FACTOR_PRIOR)), rel=1e-9)
    assert got[1] == pytest.approx(1.0, abs=1e-6)   # far from every measured shape: the curve as it is
    assert got[2] == 1.0                            # not a conv


def test_conv_time_is_scaled_by_the_shape_factor():
    x, w, out = (8, 4, 32, 32), (4, 4, 3, 3), (8, 4, 32, 32)
    flops = 2 * 8 * 4 * 4 * 9 * 32 * 32
    records = [rec("forward", "aten.convolution", "conv", flops, ins=(x, w), outs=(out,))]
    factors = {"conv/fp32": [[4, 4, 9, 8 * 32 * 32, 5.0]]}
    profile = mock_profile(properties={"conv_shape_factors": factors})
    _, compute, _ = optable.OpTable.from_records(records).device_times(profile)
    from traincost.hardware.profile import SHAPE_FACTOR_PRIOR
    assert compute[0] == pytest.approx((2e-5 + flops / 2e12) * 5.0 ** (1 / (1 + SHAPE_FACTOR_PRIOR)), rel=1e-9)


def test_gemm_mkn_by_hand():
    assert geometry.gemm_mkn("aten.addmm", [(1000,), (8, 384), (384, 1000)]) == (8, 384, 1000)   # linear forward
    assert geometry.gemm_mkn("aten.mm", [(1000, 8), (8, 384)]) == (1000, 8, 384)               # its weight gradient
    assert geometry.gemm_mkn("aten.bmm", [(4, 64, 32), (4, 32, 128)]) == (0, 0, 0)              # no linear-layer factor
    assert geometry.gemm_mkn("aten.mm", [(8, 1024), (512, 16)]) == (0, 0, 0)                    # not a product


def test_linear_layer_gemms_are_scaled_by_their_op_s_shape_factor():
    from traincost.hardware.profile import SHAPE_FACTOR_PRIOR

    fwd = rec("forward", "aten.addmm", "matmul", 2 * 8 * 384 * 1000, ins=((1000,), (8, 384), (384, 1000)))
    gw = rec("backward", "aten.mm", "matmul", 2 * 8 * 384 * 1000, ins=((1000, 8), (8, 384)))
    gi = rec("backward", "aten.mm", "matmul", 2 * 8 * 384 * 1000, ins=((8, 1000), (1000, 384)))
    table = optable.OpTable.from_records([fwd, gw, gi])
    assert table.gemm_op.tolist() == [2, 1, 1]
    assert table.gemm_shapes[1].tolist() == [1000, 8, 384, 1]
    factors = {"matmul/fp32/addmm": [[8, 384, 1000, 1, 3.0]], "matmul/fp32/mm": [[1000, 8, 384, 1, 2.0]]}
    _, plain, _ = table.device_times(mock_profile())
    _, compute, _ = table.device_times(mock_profile(properties={"gemm_shape_factors": factors}))
    curve = 1e-5 + 2 * 8 * 384 * 1000 / 1e12                     # mock matmul curve: 1e12 FLOP/s, 10 us
    assert plain.tolist() == pytest.approx([curve] * 3, rel=1e-12)
    assert compute[0] == pytest.approx(curve * 3.0 ** (1 / (1 + SHAPE_FACTOR_PRIOR)), rel=1e-9)  # its own op's
    assert compute[1] == pytest.approx(curve * 2.0 ** (1 / (1 + SHAPE_FACTOR_PRIOR)), rel=1e-9)
    # the grad input (8, 1000, 384) lies log(125) from the mm point in M and K: almost the curve
    w = math.exp(-0.5 * 2 * math.log(125) ** 2 / 0.7 ** 2)
    assert compute[2] == pytest.approx(curve * math.exp(w * math.log(2.0) / (w + SHAPE_FACTOR_PRIOR)), rel=1e-9)


def test_batch_norm_of_a_2d_activation_is_priced_on_its_flat_curve():
    records = [rec("forward", "aten.native_batch_norm", "norm", 0, 4e6, 4e6, ins=((128, 1000),)),
               rec("forward", "aten.native_batch_norm", "norm", 0, 4e6, 4e6, ins=((8, 125, 4, 4),))]
    kernels = {"native_batch_norm": {"fp32": {"peak": 1e10, "latency_s": 0.0},
                                     "fp32_2d": {"peak": 1e9, "latency_s": 2e-5}}}
    table = optable.OpTable.from_records(records)
    assert set(table.op_groups["native_batch_norm"]) == {"fp32", "fp32_2d"}
    _, _, memory = table.device_times(mock_profile(kernels=kernels))
    assert memory[0] == pytest.approx(2e-5 + 8e6 / 1e9, rel=1e-12)
    assert memory[1] == pytest.approx(max(8e6 / 1e10, 1e-6 + 8e6 / 1e11), rel=1e-12)  # 4-d: the plain curve


def test_a_cpu_profile_of_another_cpu_model_is_named_in_the_notes(monkeypatch):
    from traincost.hardware.store import load_shipped_profiles


    cpu = next(p for p in load_shipped_profiles() if p.kind == "cpu")
    measured_on = cpu.properties["cpu_model"]
    monkeypatch.setattr(api, "cpu_model", lambda: measured_on)
    assert api.foreign_cpu(cpu) is None
    assert not any("calibrated on" in n for n in traincost.predict("fc", device=cpu, batch_size=2).notes)
    monkeypatch.setattr(api, "cpu_model", lambda: "Some Other CPU 9000")
    note = api.foreign_cpu(cpu)
    assert measured_on in note and "Some Other CPU 9000" in note and "traincost calibrate --device cpu" in note
    assert note in traincost.predict("fc", device=cpu, batch_size=2, correction=False).notes
    assert api.foreign_cpu(dataclasses.replace(cpu, kind="cuda")) is None     # only CPUs: a GPU is named by its profile


def test_a_walker_prices_a_kept_walk_as_a_new_walk_would(tiny):
    spec = tiny["vgg"]
    kept = api.walk_step(spec, batch_size=16, precision="bf16")
    calls = []

    def walker(model, **step):
        calls.append(step)
        return kept

    fresh = traincost.compare(spec, devices=["L4", "A100"], batch_size=16, precision="bf16", dataset_size=1000)
    again = traincost.compare(spec, devices=["L4", "A100"], batch_size=16, precision="bf16", dataset_size=1000,
                              walker=walker)
    assert [e.to_dict() for e in again] == [e.to_dict() for e in fresh]
    one = traincost.predict(spec, device="L4", batch_size=16, precision="bf16", walker=walker)
    assert one.to_dict() == traincost.predict(spec, device="L4", batch_size=16, precision="bf16").to_dict()
    assert len(calls) == 2 and calls[0]["batch_size"] == 16 and calls[0]["precision"] == "bf16"
    with pytest.raises(TraincostUsageError, match=r"another step: batch_size=16 \(asked 32\)"):
        traincost.predict(spec, device="L4", batch_size=32, precision="bf16", walker=walker)
    with pytest.raises(TraincostUsageError, match="walker must return"):
        traincost.predict(spec, device="L4", batch_size=16, walker=lambda model, **step: "a walk")
