"""Tests for the calibration (:mod:`traincost.calibrate`) and the `calibrate` / `gpus` commands.

One real ``calibrate("cpu", quick=True)`` runs per session (it exercises every code path the CUDA run
shares: plan, timers, fits, assembly); failure handling runs on a tiny grid. Both run without a time
budget (no deadline, no series cut short), so a loaded host makes them slower but measures the same
points: the tests assert structure and invariants, never how fast this machine is. The quick grid's time
budget and the plausibility of its numbers are ``benchmarks/calibrate_quick.py``'s.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from click.testing import CliRunner

from traincost.calibrate import assemble, curves, grid, measure, points, timing
from traincost.calibrate.host import parse_device
from traincost.calibrate.measure import calibrate
from traincost.cli import main
from traincost.errors import TraincostError, TraincostUsageError
from traincost.hardware.profile import (
    SCHEMA_VERSION,
    DeviceProfile,
    load_profile,
    save_profile,
)

#: Deadline and per-call limit that no test grid reaches: which points run must not depend on the load.
_UNHURRIED_S = 1e6


def _unhurried(kind, quick, total_memory):
    return dataclasses.replace(grid._settings(kind, quick, total_memory), deadline_s=_UNHURRIED_S,
                               max_call_s=_UNHURRIED_S)


@pytest.fixture(scope="module")
def quick_cpu():
    calls: list[tuple[int, int, str]] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(measure, "_settings", _unhurried)
        profile = calibrate("cpu", quick=True, progress=lambda d, t, label: calls.append((d, t, label)))
    return profile, calls


def test_quick_cpu_profile_is_complete(quick_cpu):
    p, _ = quick_cpu
    assert isinstance(p, DeviceProfile)
    assert p.source == "calibrated" and p.kind == "cpu" and p.schema_version == SCHEMA_VERSION
    assert p.catalog_key is None and p.memory_bytes > 0
    assert p.raw["errors"] == []
    assert p.properties["fallbacks"] == []
    for cls in ("matmul", "conv", "conv_backward", "conv_bwd_input", "conv_bwd_weight"):
        assert "fp32" in p.compute[cls], cls
    assert "fp32_channels_last" in p.compute["conv"]
    # batch norm and max pooling, forward and backward, on curves of their own
    assert set(p.kernels) == set(grid._KERNEL_OPS) and all("fp32" in modes for modes in p.kernels.values())
    for row in p.raw["kernel"]:  # work = bytes as the formulas count them: at least input + output
        numel = math.prod(row["shape"])
        if row["op"] == "bernoulli_":  # written only
            assert row["work"] == numel * 4
        else:
            assert row["work"] >= 2 * numel * 4 if row["op"] == "native_batch_norm" else row["work"] > numel * 4
    # a fresh 64 MiB tensor against the same write into an existing one; the measured convolutions' factors
    assert p.properties["first_touch_s_per_byte"] >= 0 and len(p.raw["first_touch"]) == 1
    assert all(len(row) == 5 and row[4] > 0 for row in p.properties["conv_shape_factors"]["conv/fp32"])
    # positive rates and times (how fast: benchmarks/calibrate_quick.py; a busy host stalls threads)
    mm = p.compute["matmul"]["fp32"]
    assert mm.peak > 0 and mm.latency_s >= 0
    assert p.memory.peak > 0 and p.reduction.peak > 0
    assert p.dispatch_s > 0 and p.dispatch_autocast_s > 0
    assert p.launch_s == 0.0
    assert p.properties["interrupted"] is False and "skipped" not in p.raw  # every point of the grid ran
    for opt in ("sgd", "adamw"):
        assert p.optimizer[f"{opt}_s_per_byte"] >= 0 and p.optimizer[f"{opt}_fixed_s"] >= 0
    assert p.software["torch"] == torch.__version__ and p.software["python"]
    assert p.properties["cpu_count"] and p.properties["torch_threads"] >= 1
    assert p.properties["quick"] is True and p.properties["calibration_s"] > 0
    assert set(p.properties["host_load"]) == {"loadavg_start", "loadavg_end", "process_cpu_s_per_wall_s",
                                              "other_processes_cpu_s_per_wall_s"}
    assert p.spread["points"] > 20 and "median_rel_range" in p.spread
    for row in p.raw["matmul"] + p.raw["memory"] + p.raw["conv"]:
        assert row["min_s"] <= row["median_s"] <= row["max_s"] and row["repeats"] >= 3


def test_quick_cpu_progress(quick_cpu):
    p, calls = quick_cpu
    total = calls[0][1]
    first = calls[:total + 1]  # a family found implausible (a busy host) is measured again after these
    assert [c[0] for c in first] == list(range(total + 1))
    assert all(t == total for _, t, _ in first) and first[-1][2] == "fitting" and calls[-1][2] == "fitting"
    assert (len(calls) > total + 1) == bool(p.properties["remeasured"])


def test_quick_cpu_profile_round_trips(quick_cpu, tmp_path):
    p, _ = quick_cpu
    back = load_profile(save_profile(p, tmp_path / "cpu.json"))
    assert back.compute == p.compute and back.memory == p.memory and back.optimizer == p.optimizer
    assert back.to_dict() == json.loads(json.dumps(p.to_dict()))


def test_parse_device(monkeypatch):
    assert parse_device("cpu") == torch.device("cpu")
    with pytest.raises(TraincostUsageError, match="unknown device 'tpu'"):
        parse_device("tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(TraincostUsageError, match="CUDA is not available"):
        parse_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    with pytest.raises(TraincostUsageError, match=r"'cuda:7' does not exist: this machine has 1 CUDA device"):
        parse_device("cuda:7")
    assert parse_device("cuda:0") == torch.device("cuda", 0)


def _tiny(kind, quick, total_memory):
    return dataclasses.replace(
        _unhurried(kind, True, total_memory), repeats=2, gemm_squares=(32, 64, 128),
        gemm_rects=(), conv_shapes=((16, 16, 14, 3, 1), (32, 32, 7, 3, 1)), conv_batches=(1,),
        mem_sizes=(4096, 65536, 1 << 20, 4 << 20), dispatch_n=200, optimizer_lists=("mlp", "many_small"))


def test_failures_are_recorded_and_measurements_kept(monkeypatch):
    monkeypatch.setattr(measure, "_settings", _tiny)

    def broken(run, nbytes):
        raise RuntimeError("simulated kernel failure\nsecond line")

    monkeypatch.setattr(measure, "_reduction_point", broken)
    p = calibrate("cpu", quick=True)
    errors = p.raw["errors"]
    assert len(errors) == 4 and all(e["family"] == "reduction" for e in errors)
    assert errors[0]["error"] == "RuntimeError: simulated kernel failure"
    assert p.reduction == p.memory  # documented fallback
    assert any("reduction" in f for f in p.properties["fallbacks"])
    assert len(p.raw["memory"]) == 4 and p.compute["matmul"]["fp32"].peak > 0
    # two optimizer lists: per-byte cost only
    assert p.optimizer["sgd_fixed_s"] == 0.0 and p.optimizer["sgd_s_per_byte"] > 0


def test_a_slow_series_stops_growing(monkeypatch):
    def slow(kind, quick, total_memory):
        return dataclasses.replace(_tiny(kind, quick, total_memory), max_call_s=1e-9)

    monkeypatch.setattr(measure, "_settings", slow)
    p = calibrate("cpu", quick=True)
    assert len(p.raw["memory"]) == 1  # the first size already exceeded max_call_s
    assert any(s["family"] == "memory" for s in p.raw["skipped"])


# ------------------------------------------------------------------ CLI


def _run(args):
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("device,pattern", [
    ("tpu", "unknown device 'tpu'"),
    ("cuda:7", "cuda:7"),
])
def test_cli_calibrate_bad_device(device, pattern):
    code, out, err = _run(["calibrate", "--device", device, "-o", "x.json"])
    assert code == 2
    assert pattern in err and len(err.strip().splitlines()) == 1 and err.startswith("Error: ")


def test_cli_calibrate_cuda_index_missing(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    code, _, err = _run(["calibrate", "--device", "cuda:7", "-o", "x.json"])
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("where", ["missing_dir", "is_dir", "under_file"])
def test_cli_calibrate_unwritable_output_fails_before_measuring(tmp_path, monkeypatch, where):
    def must_not_run(*a, **k):
        raise AssertionError("measured before checking the output path")

    monkeypatch.setattr(measure, "calibrate", must_not_run)
    target = {"missing_dir": tmp_path / "no" / "such" / "p.json", "is_dir": tmp_path,
              "under_file": tmp_path / "file.txt" / "p.json"}[where]
    (tmp_path / "file.txt").write_text("x")
    code, _, err = _run(["calibrate", "--device", "cpu", "-o", str(target)])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Error: " in err


def test_cli_calibrate_writes_profile_and_summary(tmp_path, monkeypatch, quick_cpu):
    profile, _ = quick_cpu
    # as measured on a quiet machine (an implausible profile is refused: tests/test_calibrate_safety.py)
    profile = dataclasses.replace(profile, properties={**profile.properties, "implausible": []})

    def fake(device, quick, progress):
        progress(0, 1, "fake")
        progress(1, 1, "fitting")
        return profile

    monkeypatch.setattr(measure, "calibrate", fake)
    out = tmp_path / "cpu.json"
    code, stdout, _ = _run(["calibrate", "--device", "cpu", "--quick", "-o", str(out)])
    assert code == 0, stdout
    assert load_profile(out).compute == profile.compute
    assert "matmul" in stdout and "dispatch" in stdout and f"wrote {out}" in stdout
    code, stdout, _ = _run(["calibrate", "--device", "cpu", "--quick", "-o", str(out), "--json"])
    summary = json.loads(stdout)
    assert summary["output"] == str(out) and summary["kind"] == "cpu"
    assert summary["compute"]["matmul"]["fp32"]["peak_tflops"] > 0


def test_cli_gpus():
    code, stdout, _ = _run(["gpus", "--json"])
    assert code == 0
    rows = json.loads(stdout)
    assert len(rows) >= 20
    h100 = next(r for r in rows if r["key"].startswith("h100-sxm"))
    assert h100["bf16_tflops"] > h100["fp32_tflops"] > 0 and h100["mem_bandwidth_gb_s"] > 0
    priced = [r for r in rows if r["cheapest"]]
    assert priced and all(r["cheapest"]["usd_per_gpu_hour"] > 0 and r["cheapest"]["date"] for r in priced)
    code, stdout, _ = _run(["gpus"])
    assert code == 0 and "H100" in stdout and "A100" in stdout


def test_refit_reproduces_the_fits(quick_cpu):
    """A refit from the raw measurements gives exactly the calibration's fits (whatever the timings)."""
    p, _ = quick_cpu
    again = assemble.refit(p)
    assert again.compute == p.compute and again.memory == p.memory and again.optimizer == p.optimizer
    assert again.kernels == p.kernels and again.kernels
    assert again.reduction == p.reduction and again.launch_s == p.launch_s
    assert again.dispatch_s == p.dispatch_s and again.dispatch_autocast_s == p.dispatch_autocast_s
    assert again.raw["matmul"] == p.raw["matmul"] and again.raw["fits"] == p.raw["fits"]
    assert again.raw["errors"] == p.raw["errors"] and again.spread == p.spread
    for key in ("fallbacks", "first_touch_s_per_byte", "conv_shape_factors", "kernel_tail_s_per_row"):
        assert again.properties[key] == p.properties[key], key
    assert "refit" in again.properties


def test_past_the_deadline_nothing_essential_is_left(monkeypatch):
    def no_time(kind, quick, total_memory):
        return dataclasses.replace(_tiny(kind, quick, total_memory), deadline_s=0.0)

    monkeypatch.setattr(measure, "_settings", no_time)
    with pytest.raises(TraincostError, match="no usable matmul measurement") as exc:
        calibrate("cpu", quick=True)
    assert "\n" not in str(exc.value)


class _FakeEvent:
    """A CUDA event stand-in: host time (the fake device runs synchronously on the CPU)."""

    def __init__(self, enable_timing: bool = False) -> None:
        self.t = 0.0

    def record(self, stream=None) -> None:
        import time

        self.t = time.perf_counter()

    def synchronize(self) -> None:
        pass

    def elapsed_time(self, other: "_FakeEvent") -> float:
        return (other.t - self.t) * 1e3


def test_cuda_code_paths_on_a_fake_cuda(monkeypatch):
    """Every CUDA-only branch (device checks, CUDA-event timer with preloading, math-mode switches, tf32
    conv aliasing, launch latency, properties, catalog key) runs here with torch.cuda faked and tensors
    on the CPU: a typo there must fail in CI, not on a rented GPU."""
    import contextlib
    import types

    props = types.SimpleNamespace(name="NVIDIA H200", total_memory=150_109_880_320, multi_processor_count=132,
                                  major=9, minor=0, L2_cache_size=60 * 2**20)
    fake = {
        "is_available": lambda: True, "device_count": lambda: 1, "current_device": lambda: 0,
        "get_device_name": lambda dev=None: props.name, "get_device_properties": lambda dev=None: props,
        "get_device_capability": lambda dev=None: (9, 0), "synchronize": lambda dev=None: None,
        "is_bf16_supported": lambda including_emulation=True: True, "Event": _FakeEvent,
        "_sleep": lambda cycles: None, "empty_cache": lambda: None,
        "device": lambda dev: contextlib.nullcontext(),
    }
    for name, value in fake.items():
        monkeypatch.setattr(torch.cuda, name, value, raising=False)
    real_randn = points._randn
    monkeypatch.setattr(points, "_randn", lambda shape, dtype, dev, fmt=None: real_randn(
        shape, dtype, torch.device("cpu"), fmt))
    monkeypatch.setattr(measure, "_settings", lambda kind, quick, mem: dataclasses.replace(
        _tiny(kind, quick, mem), conv_strict=True, conv_cl_modes=("bf16",)))
    calls = []
    p = calibrate("cuda", quick=True, progress=lambda d, t, label: calls.append(label))
    assert p.kind == "cuda" and p.catalog_key == "h200-sxm-141gb" and p.name == "NVIDIA H200"
    # AdamW.step itself asks the (absent) driver about the faked CUDA: an artifact of the fake, recorded
    # as a failed point like any other; its SGD sibling and everything else must run
    errors = [e for e in p.raw["errors"] if not e["what"].startswith("optimizer adamw")]
    assert errors == [], errors
    assert p.optimizer["sgd_s_per_byte"] > 0 and "adamw_s_per_byte" not in p.optimizer
    assert set(p.compute["matmul"]) == {"fp32", "tf32", "bf16", "fp16"}
    conv = p.compute["conv"]
    assert {"fp32", "tf32", "bf16", "fp16", "fp32_strict", "bf16_channels_last"} <= set(conv)
    assert conv["tf32"] == conv["fp32"] and p.properties["conv_fp32_uses_tf32"] is True
    assert p.properties["sm_count"] == 132 and p.memory_bytes == props.total_memory
    assert p.launch_s > 0 and p.raw["launch"][0]["roundtrip_s"] > 0
    assert any(r.get("preloaded") for r in p.raw["memory"])
    assert p.properties["timing"].startswith("CUDA events")
    assert "launch latency" in calls
    assert torch.backends.cuda.matmul.allow_tf32 is False  # switches restored
    assert torch.backends.cudnn.allow_tf32 is True


def test_an_interrupt_keeps_what_was_measured(monkeypatch):
    """Ctrl-C, or SIGTERM from `timeout` (the CLI maps it), stops measuring; the profile is still fitted."""
    monkeypatch.setattr(measure, "_settings", _tiny)
    real = measure._conv_point

    def interrupt_on_conv(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(measure, "_conv_point", interrupt_on_conv)
    p = calibrate("cpu", quick=True)
    assert p.properties["interrupted"] is True
    assert "conv" not in p.compute and p.compute["matmul"]["fp32"].peak > 0
    interrupted = [s for s in p.raw["skipped"] if s["reason"] == "interrupted"]
    assert interrupted and all(s["family"] in ("conv", "kernel", "dispatch") for s in interrupted)
    assert real is not interrupt_on_conv


def test_dispatch_is_taken_out_of_cpu_latencies_and_nothing_else():
    from traincost.hardware.profile import Curve

    c = Curve(peak=2e11, latency_s=150e-6, k_half=60.0, cache_bytes=0.0)
    out = curves._minus_latency(c, 1.2e-6)
    assert out == Curve(peak=2e11, latency_s=150e-6 - 1.2e-6, k_half=60.0)
    assert curves._minus_latency(Curve(1e9, 1e-7), 1e-6).latency_s == 0.0


def _gemm_rows(shapes, peak=2e11, k_half=16.0, latency=3e-6):
    return [{"mode": "fp32", "shape": [m, k, n], "work": 2 * m * k * n,
             "median_s": latency + 2 * m * k * n / (peak * min(m, k, n) / (min(m, k, n) + k_half))}
            for (m, k, n) in shapes]


def test_matmul_fit_finds_the_skinny_gemm_depth_term():
    shapes = [(n, n, n) for n in (64, 128, 256, 512, 1024)] + [(8, 1024, 1024), (1024, 8, 1024), (32, 2048, 2048),
                                                               (2048, 32, 2048), (16, 4096, 512)]
    curve, report = curves._fit(_gemm_rows(shapes), cache_tier=False)
    assert curve.depth_kind == "min_mnk" and curve.k_half == pytest.approx(16.0, rel=1e-3)
    assert curve.peak == pytest.approx(2e11, rel=1e-3) and report.median_ape < 1e-3
    plain, _ = curves._fit(_gemm_rows(shapes, k_half=0.0), cache_tier=False)  # no skinny slowdown
    assert plain.k_half == 0.0


def test_first_touch_fit_uses_only_sizes_the_os_maps_afresh():
    raw = {"first_touch": [
        {"tensor_bytes": 16 << 20, "median_s": 1e-3, "reuse_median_s": 0.5e-3},   # below 32 MiB: ignored
        {"tensor_bytes": 64 << 20, "median_s": 20e-3, "reuse_median_s": 4e-3},
        {"tensor_bytes": 128 << 20, "median_s": 44e-3, "reuse_median_s": 8e-3}]}
    got = curves._first_touch_fit(raw)["first_touch_s_per_byte"]
    assert got == pytest.approx((16e-3 / (64 << 20) + 36e-3 / (128 << 20)) / 2, rel=1e-12)
    assert curves._first_touch_fit({}) == {}


def test_shape_factor_table_is_measured_over_curve_time():
    from traincost.hardware.profile import Curve

    row = {"pass": "fwd", "mode": "fp32", "shape": {"c_in": 4, "c_out": 8, "hw": 32, "kernel": 3, "stride": 1,
                                                    "batch": 2}, "work": 1e8, "median_s": 3e-3}
    table = curves._shape_factor_table({"conv": [row]}, {"conv": {"fp32": Curve(1e11, 0.0)}}, 1e-3)
    assert table == {"conv/fp32": [[4, 8, 9, 2 * 32 * 32, round((3e-3 - 1e-3) / (1e8 / 1e11), 4)]]}


def test_gemm_factor_table_is_measured_over_curve_time_per_op():
    from traincost.hardware.profile import Curve

    rows = [{"mode": "fp32", "role": "fwd", "op": "addmm", "shape": [8, 128, 1000], "work": 2 * 8 * 128 * 1000,
             "median_s": 30e-6},
            {"mode": "fp32", "role": "bwd_weight", "op": "mm", "shape": [1000, 8, 128], "work": 2 * 8 * 128 * 1000,
             "median_s": 20e-6},
            {"mode": "bf16", "role": "fwd", "op": "addmm", "shape": [8, 128, 1000], "work": 1, "median_s": 1e-6}]
    curve = Curve(1e11, 1e-6, k_half=8.0, depth_kind="min_mnk")
    table = curves._gemm_factor_table({"linear": rows}, {"matmul": {"fp32": curve}}, 1e-6)
    priced = 1e-6 + 2 * 8 * 128 * 1000 / (1e11 * 8 / (8 + 8))          # depth min(M, K, N) = 8
    assert table == {"matmul/fp32/addmm": [[8, 128, 1000, 1, round((30e-6 - 1e-6) / priced, 4)]],
                     "matmul/fp32/mm": [[1000, 8, 128, 1, round((20e-6 - 1e-6) / priced, 4)]]}  # no bf16 curve


def test_kernel_tail_table_is_the_excess_per_pixel_over_the_whole_vector_curve():
    from traincost.hardware.profile import Curve

    def row(c, n, seconds, mode="fp32_channels_last", op="native_batch_norm_backward"):
        return {"op": op, "mode": mode, "shape": [n, c, 64, 64], "work": 3 * 4 * n * c * 64 * 64, "median_s": seconds}
    curve = Curve(1e10, 1e-5)
    rows = [row(16, 8, 1e-3), row(32, 8, 2e-3),                             # whole AVX-512 vectors: the curve's
            row(8, 1, 1e-3), row(8, 8, 4e-3), row(8, 32, 9e-3), row(4, 8, 1e-4),
            row(8, 8, 1e-3, mode="fp32"),                                     # contiguous: no tail
            row(8, 8, 1e-3, op="max_pool2d_with_indices")]                   # not a batch-norm op
    assert [curves._partial_vector(r, 16) for r in rows] == [False, False, True, True, True, True, False, False]
    assert not curves._partial_vector(row(8, 8, 1e-3), 8)               # AVX2: 8 channels fill a vector
    table = curves._kernel_tail_table({"kernel": rows}, {"native_batch_norm_backward": {
        "fp32_channels_last": curve}}, 2e-6, 16)

    def excess(c, n, seconds):
        return max(0.0, seconds - 2e-6 - curve.time_s(3 * 4 * n * c * 64 * 64)) / (n * 64 * 64)
    eight = sorted([excess(8, 1, 1e-3), excess(8, 8, 4e-3), excess(8, 32, 9e-3)])[1]  # median of three batches
    assert table == {"native_batch_norm_backward/fp32_channels_last": {"4": 0.0,
                                                                       "8": pytest.approx(eight, rel=1e-12)}}
    assert excess(4, 8, 1e-4) == 0.0  # faster than the curve: floored at 0
    # the curve is fitted on the whole-vector points only
    kernels = curves._fit_kernels({"kernel": rows[:2] + rows[2:4]}, [], [], 16)
    assert set(kernels["native_batch_norm_backward"]) == {"fp32_channels_last"}
    fits = []
    curves._fit_kernels({"kernel": rows}, [], fits, 16)
    assert {f["mode"]: f["n"] for f in fits if f["class"] == "kernel:native_batch_norm_backward"} == \
        {"fp32_channels_last": 2, "fp32": 1}


def test_full_cpu_grid_measures_channels_last_batch_norm_off_the_vector_width():
    s = grid._settings("cpu", False, 1 << 34)
    run = points._Run(torch.device("cpu"), s, timer=None)
    labels = {p.label for p in measure._plan(run, ["fp32", "bf16"])}
    for c, hw in ((4, 112), (8, 64), (12, 64), (24, 32), (40, 32)):
        assert f"kernel native_batch_norm_backward bf16_channels_last 8x{c}x{hw}x{hw} k2s2" in labels
    assert "kernel native_batch_norm_backward fp32 8x24x32x32 k2s2" not in labels        # contiguous: no tail
    assert not any("x24x32x32" in lb for lb in labels if "pool" in lb)


def test_linear_points_flat_kernels_and_small_optimizer_lists_are_in_the_full_cpu_grid():
    s = grid._settings("cpu", False, 1 << 34)
    assert (8, 128, 1024) in s.linear_shapes and all(2 * b * i * o <= 1.1e9 for b, i, o in s.linear_shapes)
    assert (512, 2048, 1024) not in s.linear_shapes                       # 2.1 GFLOP: left to the curve
    assert s.flat_kernel_shapes and {"tiny", "small"} <= set(s.optimizer_lists)
    run = points._Run(torch.device("cpu"), s, timer=None)
    labels = [p.label for p in measure._plan(run, ["fp32"])]
    assert sum(lb.startswith("linear ") for lb in labels) == 3 * len(s.linear_shapes)
    assert "kernel native_batch_norm_backward fp32_2d 64x256" in labels
    assert points._param_list("tiny") == [(64,), (64,)] and len(points._param_list("small")) == 6
    assert grid._settings("cpu", True, 1 << 34).linear_shapes == ()  # quick grid: unchanged


def test_linear_and_flat_kernel_points_measure_what_a_step_runs():
    s = dataclasses.replace(grid._settings("cpu", True, 1 << 34), repeats=1, target_sample_s=1e-5)
    run = points._Run(torch.device("cpu"), s, timer=timing._CpuTimer(s))
    fwd = points._linear_point(run, "fp32", 4, 16, 8, "fwd")
    gw = points._linear_point(run, "fp32", 4, 16, 8, "bwd_weight")
    gi = points._linear_point(run, "fp32", 4, 16, 8, "bwd_input")
    assert (fwd["op"], fwd["shape"]) == ("addmm", [4, 16, 8]) and fwd["median_s"] > 0
    assert (gw["op"], gw["shape"], gi["shape"]) == ("mm", [8, 4, 16], [4, 8, 16])
    assert fwd["work"] == gw["work"] == gi["work"] == 2 * 4 * 16 * 8
    bn = points._kernel_point(run, "native_batch_norm_backward", "fp32", (8, 32), grid._POOL_WINDOWS[0])
    assert bn["mode"] == "fp32_2d" and bn["shape"] == [8, 32] and bn["work"] > 3 * 8 * 32 * 4


def test_a_flat_kernel_curve_has_no_channels_depth():
    rows = [{"op": "native_batch_norm_backward", "mode": "fp32_2d", "shape": [n, c], "work": 12 * n * c,
             "median_s": 1e-5 + 12 * n * c / (1e9 * c / (c + 64))} for n in (8, 64, 512) for c in (32, 256, 2048)]
    curve, _ = curves._fit(rows, cache_tier=True)
    assert curve.k_half == 0.0
