"""Calibration safety: physical bounds on a fitted profile (:mod:`traincost.calibrate.plausibility`), the
re-measurement of an implausible family, and the `calibrate` command's refusal (exit 1, ``--force``) and
interruption (exit 130). The bounds are fed synthetic profiles and rows: nothing here depends on the load."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from traincost.calibrate import grid, measure
from traincost.calibrate.plausibility import (
    Problem,
    check,
    describe,
    families_to_remeasure,
)
from traincost.cli import main
from traincost.hardware.profile import Curve, load_profile
from traincost.hardware.store import load_shipped_profiles

#: The calibrated profiles with their raw measurements (the package ships them without).
_MEASURED = sorted((Path(__file__).resolve().parents[1] / "data" / "profiles").glob("*.json"))

# ------------------------------------------------------------------ bounds on synthetic profiles


def _shipped(kind):
    """A calibrated profile of a quiet machine, raw measurements included."""
    profiles = [load_profile(f) for f in _MEASURED]
    return next(p for p in profiles if p.source == "calibrated" and p.kind == kind and p.raw.get("matmul"))


def _checks(problems):
    return {(p.check, p.what) for p in problems}


@pytest.mark.parametrize("path", _MEASURED, ids=lambda f: f.stem)
def test_the_measured_quiet_machine_profiles_are_plausible(path):
    assert check(load_profile(path)) == []


def test_the_shipped_profiles_are_plausible():
    assert all(check(p) == [] for p in load_shipped_profiles())


def test_the_busy_machine_report_is_refused():
    """The user's report: conv peak 433,000 GFLOP/s with 31 ms latency, memory at 3.4 GB/s."""
    p = _shipped("cpu")
    compute = {cls: dict(modes) for cls, modes in p.compute.items()}
    compute["conv"]["fp32"] = Curve(peak=433e12, latency_s=31e-3)
    bad = dataclasses.replace(p, compute=compute, memory=Curve(peak=3.4e9, latency_s=1e-6))
    problems = check(bad)
    assert {("peak_over_gemm", "conv/fp32"), ("latency", "conv/fp32"),
            ("bandwidth_floor", "memory")} <= _checks(problems)
    msg = describe(problems, first=10)
    assert "433,000.0 GFLOP/s" in msg and "31.0 ms" in msg and "3.4 GB/s" in msg and "\n" not in msg
    assert families_to_remeasure(problems)[:2] == ["conv", "matmul"] and "memory" in families_to_remeasure(problems)


def test_conv_rates_are_bounded_by_the_measured_gemm():
    p = _shipped("cpu")
    best = max(r["work"] / r["median_s"] for r in p.raw["matmul"])
    compute = {cls: dict(modes) for cls, modes in p.compute.items()}
    compute["conv_backward"]["fp32"] = Curve(peak=2.1 * best, latency_s=1e-4)  # above 2 x
    row = {**p.raw["conv"][0], "median_s": p.raw["conv"][0]["work"] / (1.6 * best)}  # measured above 1.5 x
    bad = dataclasses.replace(p, compute=compute, raw={**p.raw, "conv": [row, *p.raw["conv"][1:]]})
    got = _checks(check(bad))
    assert ("peak_over_gemm", "conv_backward/fp32") in got
    assert any(c == "conv_over_gemm" for c, _ in got)
    ok = dict(compute)
    ok["conv_backward"] = {**compute["conv_backward"], "fp32": Curve(peak=1.9 * best, latency_s=1e-4)}
    assert not any(c.startswith("peak") for c, _ in _checks(check(dataclasses.replace(p, compute=ok))))


def test_without_a_measured_matmul_the_gemm_bound_is_skipped():
    p = _shipped("cpu")
    compute = {cls: dict(modes) for cls, modes in p.compute.items()}
    compute["conv"]["fp32"] = Curve(peak=1e15, latency_s=1e-4)
    bad = dataclasses.replace(p, compute=compute, raw={k: v for k, v in p.raw.items() if k != "matmul"})
    assert not any(c.check == "peak_over_gemm" for c in check(bad))


def test_a_catalog_gpu_is_bounded_by_its_datasheet():
    p = _shipped("cuda")
    compute = {cls: dict(modes) for cls, modes in p.compute.items()}
    mm = compute["matmul"]["bf16"]
    compute["matmul"]["bf16"] = dataclasses.replace(mm, peak=2000e12)  # H200 bf16 datasheet: 989 TFLOP/s
    row = next(r for r in p.raw["matmul"] if r["mode"] == "bf16")
    fast = {**row, "median_s": row["work"] / 1200e12}
    bad = dataclasses.replace(p, compute=compute, memory=dataclasses.replace(p.memory, peak=9e12),
                              reduction=dataclasses.replace(p.reduction, peak=0.5e12),
                              raw={**p.raw, "matmul": [*p.raw["matmul"], fast]})
    got = _checks(check(bad))
    assert {("peak_over_datasheet", "matmul/bf16"), ("measured_over_datasheet", "matmul bf16"),
            ("bandwidth_vs_datasheet", "memory"), ("bandwidth_vs_datasheet", "reduction")} <= got
    assert check(p) == []  # the unchanged profile


@pytest.mark.parametrize("field,value", [("dispatch_s", 0.0), ("dispatch_s", 5e-3), ("dispatch_autocast_s", 2e-3)])
def test_dispatch_is_positive_and_below_a_millisecond(field, value):
    p = dataclasses.replace(_shipped("cpu"), **{field: value})
    assert ("latency", field) in _checks(check(p))


def test_a_stalled_small_size_breaks_a_monotone_series():
    p = _shipped("cpu")
    rows = [dict(r) for r in p.raw["memory"]]
    smallest = min(rows, key=lambda r: r["tensor_bytes"])
    smallest["median_s"] = 10 * max(r["median_s"] for r in rows)  # a smaller copy slower than every larger one
    problems = check(dataclasses.replace(p, raw={**p.raw, "memory": rows}))
    mono = [q for q in problems if q.check == "monotone"]
    assert mono and mono[0].families == ("memory",) and "under 0.5 x" in mono[0].message


def test_a_wide_spread_of_repeats_is_implausible():
    p = _shipped("cpu")
    rows = [{**r, "rel_range": 0.9} for r in p.raw["matmul"]]
    problems = check(dataclasses.replace(p, raw={**p.raw, "matmul": rows}))
    assert ("spread", "matmul") in _checks(problems)
    assert "90%" in next(q.message for q in problems if q.check == "spread")


def test_describe_is_one_line_with_a_count():
    probs = [Problem("x", str(i), f"problem {i}", ("memory",)) for i in range(5)]
    assert describe(probs) == "problem 0; problem 1; problem 2 (and 2 more)"
    assert describe([p.to_dict() for p in probs[:1]]) == "problem 0"
    assert probs[0].to_dict()["families"] == ["memory"]


# ------------------------------------------------------------------ re-measuring (a tiny real calibration)


def _tiny(kind, quick, total_memory):
    return dataclasses.replace(
        grid._settings(kind, True, total_memory), deadline_s=1e6, max_call_s=1e6, repeats=2,
        gemm_squares=(32, 64, 128), gemm_rects=(), conv_shapes=((16, 16, 14, 3, 1),), conv_batches=(1,),
        mem_sizes=(4096, 65536, 1 << 20, 4 << 20), dispatch_n=200, optimizer_lists=("mlp", "many_small"),
        kernel_batches=(), kernel_modes=(), flat_kernel_shapes=(), first_touch_sizes=(), conv_cl_modes=())


def test_an_implausible_family_is_measured_once_more(monkeypatch):
    monkeypatch.setattr(measure, "_settings", _tiny)
    verdicts = [[Problem("bandwidth_floor", "memory", "memory bandwidth 3.4 GB/s < the floor", ("memory",))], []]
    seen = []

    def fake_check(profile):
        seen.append(len(profile.raw["memory"]))
        return verdicts.pop(0)

    monkeypatch.setattr(measure, "check", fake_check)
    p = measure.calibrate("cpu", quick=True)
    assert p.properties["remeasured"] == ["memory"] and p.properties["implausible"] == []
    assert len(p.raw["memory"]) == 4 and len(p.raw["discarded"]["memory"]) == 4  # nothing measured is lost
    assert p.raw["discarded"]["memory"] != p.raw["memory"] and seen == [4, 4]


def test_what_stays_implausible_is_listed(monkeypatch):
    monkeypatch.setattr(measure, "_settings", _tiny)
    prob = Problem("latency", "dispatch_s", "dispatch_s 5.0 ms", ("dispatch",))
    monkeypatch.setattr(measure, "check", lambda profile: [prob])
    p = measure.calibrate("cpu", quick=True)
    assert p.properties["remeasured"] == ["dispatch"]
    assert p.properties["implausible"] == [prob.to_dict()]
    assert len(p.raw["discarded"]["dispatch"]) == len(p.raw["dispatch"]) == 8  # two rounds of 4 loops


def test_an_interrupt_while_re_measuring_keeps_the_first_rows(monkeypatch):
    monkeypatch.setattr(measure, "_settings", _tiny)
    calls = {"n": 0}
    real = measure._memory_point

    def memory_then_interrupt(run, nbytes):
        calls["n"] += 1
        if calls["n"] == 6:  # the second point of the re-measurement
            raise KeyboardInterrupt
        return real(run, nbytes)

    monkeypatch.setattr(measure, "_memory_point", memory_then_interrupt)
    prob = Problem("bandwidth_floor", "memory", "memory bandwidth 3.4 GB/s", ("memory",))
    monkeypatch.setattr(measure, "check", lambda profile: [prob])
    p = measure.calibrate("cpu", quick=True)
    assert p.properties["interrupted"] is True
    assert len(p.raw["memory"]) == 4 and len(p.raw["discarded"]["memory"]) == 1


# ------------------------------------------------------------------ the command


def _run(args):
    """Exit code, stdout, and the last line of stderr (a busy machine adds a load warning above it)."""
    result = CliRunner().invoke(main, args)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return result.exit_code, result.stdout, lines[-1] if lines else ""


def _fake(monkeypatch, profile):
    def fake(device, quick, progress):
        progress(1, 1, "fitting")
        return profile

    monkeypatch.setattr(measure, "calibrate", fake)


_PROBLEM = Problem("peak_over_gemm", "conv/fp32",
                   "conv/fp32 peak 433,000.0 GFLOP/s > 2 x the best measured matmul 190.0 GFLOP/s", ("conv", "matmul"))


def _with(profile, **props):
    return dataclasses.replace(profile, properties={**profile.properties, **props})


def test_cli_refuses_an_implausible_profile(tmp_path, monkeypatch):
    bad = _with(_shipped("cpu"), implausible=[_PROBLEM.to_dict()], remeasured=["conv", "matmul"])
    _fake(monkeypatch, bad)
    out = tmp_path / "cpu.json"
    code, stdout, err = _run(["calibrate", "--device", "cpu", "-o", str(out)])
    assert code == 1 and err.startswith("Error: implausible calibration")
    assert "433,000.0 GFLOP/s" in err and "quiet machine" in err and "--force" in err and "conv, matmul" in err
    assert not out.exists()
    kept = tmp_path / "cpu.implausible.json"
    assert str(kept) in err and load_profile(kept).raw["conv"] == bad.raw["conv"]  # nothing measured is lost


def test_cli_force_writes_with_the_problems_listed(tmp_path, monkeypatch):
    _fake(monkeypatch, _with(_shipped("cpu"), implausible=[_PROBLEM.to_dict()]))
    out = tmp_path / "cpu.json"
    code, stdout, err = _run(["calibrate", "--device", "cpu", "-o", str(out), "--force", "--json"])
    assert code == 0
    assert load_profile(out).properties["implausible"][0]["check"] == "peak_over_gemm"
    assert json.loads(stdout)["implausible"][0]["what"] == "conv/fp32"
    assert "warning: written with --force although implausible" in err


def test_cli_interrupt_writes_what_was_kept_and_exits_130(tmp_path, monkeypatch):
    p = _shipped("cpu")
    raw = {k: v for k, v in p.raw.items() if k not in ("conv", "kernel")}
    raw["skipped"] = ([{"family": "conv", "label": f"conv {i}", "reason": "interrupted"} for i in range(3)]
                      + [{"family": "kernel", "label": "kernel 0", "reason": "interrupted"},
                         {"family": "dispatch", "label": "dispatch add (round 2)", "reason": "interrupted"}])
    _fake(monkeypatch, dataclasses.replace(p, raw=raw, properties={**p.properties, "interrupted": True,
                                                                   "implausible": []}))
    out = tmp_path / "cpu.json"
    code, stdout, err = _run(["calibrate", "--device", "cpu", "-o", str(out)])
    assert code == 130 and out.exists()
    points = sum(len(v) for k, v in raw.items() if k not in ("probes", "skipped", "fits", "errors")
                 and isinstance(v, list))
    line = err
    assert line.startswith(f"Interrupted: wrote {out}: kept {points} measured points")
    assert "missing: conv, kernel" in line and "cut short: dispatch (1 left)" in line


def test_cli_interrupt_of_an_implausible_profile_keeps_it_aside(tmp_path, monkeypatch):
    _fake(monkeypatch, _with(_shipped("cpu"), interrupted=True, implausible=[_PROBLEM.to_dict()]))
    out = tmp_path / "cpu.json"
    code, _, err = _run(["calibrate", "--device", "cpu", "-o", str(out)])
    assert code == 130 and not out.exists() and (tmp_path / "cpu.implausible.json").exists()
    assert err.startswith("Interrupted: kept") and "implausible calibration" in err


def test_cli_interrupt_before_a_profile_exits_130(tmp_path, monkeypatch):
    def interrupted(device, quick, progress):
        raise KeyboardInterrupt

    monkeypatch.setattr(measure, "calibrate", interrupted)
    code, _, err = _run(["calibrate", "--device", "cpu", "-o", str(tmp_path / "cpu.json")])
    assert code == 130 and err.startswith("Interrupted: ") and "nothing written" in err
