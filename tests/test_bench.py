"""Tests for ``traincost bench`` / ``traincost merge`` and their modules (calibrate.bench, calibrate.plans).

Real timings run only in the end-to-end sweep and the kill test (tiny models, one or a few steps);
elsewhere the timing function is replaced by a fake so that the tests check the bookkeeping.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from traincost.cli import main
from traincost.sweeps import bench, plans
from traincost.sweeps.steps import StepTiming

REPO = Path(__file__).resolve().parents[1]
H200 = REPO / "data" / "datasets" / "h200-families-2026-11-28.csv"

TINY_PLAN = """\
name: tiny
defaults: {batch_size: 4}
configs:
  - {model: fc, params: {input_features: 32, hidden_layers: 2, hidden_width: 16, classes: 10}}
  - model: vgg
    params: {blocks: 2, convs_per_block: 1, filters: 8, dense_layers: 1, dense_width: 32, input_size: 32, classes: 10}
    precision: bf16
    channels_last: true
    optimizer: adamw
  - {model: resnet, params: {blocks: [1, 1], block: basic, width: 8, classes: 10}, input_shape: [3, 32, 32],
     batch_size: 2}
"""

QUICK = ["--device", "cpu", "--repeats", "1", "--warmup", "0", "--quiet-wait", "0", "--min-time", "0"]


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def fc_plan(n: int) -> str:
    """A YAML plan of ``n`` distinct tiny fc configurations."""
    lines = ["configs:"]
    for i in range(n):
        lines.append(f"  - {{model: fc, params: {{input_features: {8 + i}, hidden_layers: 1, hidden_width: 8, "
                     f"classes: 4}}, batch_size: 2}}")
    return "\n".join(lines) + "\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def one_line_error(result, code: int, *fragments: str) -> str:
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


class FakeMeasure:
    """Stands in for ``measure_step``: 1 ms steps; ``fail`` maps call number (1-based) to an exception."""

    def __init__(self, fail: dict[int, BaseException] | None = None) -> None:
        self.calls = 0
        self.fail = fail or {}

    def __call__(self, model, sample_shape, config, device, **kwargs) -> StepTiming:
        self.calls += 1
        self.kwargs = kwargs
        if self.calls in self.fail:
            raise self.fail[self.calls]
        return StepTiming(1.0 + self.calls, 1.0, 2.0 + self.calls, kwargs.get("repeats", 1), None)


@pytest.fixture
def fake(monkeypatch):
    """Replace the real timing by :class:`FakeMeasure` (``run_sweep`` looks it up at call time)."""
    measure = FakeMeasure()
    monkeypatch.setattr("traincost.sweeps.steps.measure_step", measure)
    return measure


# ------------------------------------------------------------------------------------------ end to end


def test_tiny_cpu_sweep_end_to_end(tmp_path):
    plan = write(tmp_path, "tiny.yaml", TINY_PLAN)
    out = tmp_path / "out.csv"
    result = run("bench", "--plan", str(plan), "--out", str(out), *QUICK, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["written"] == 3 and summary["statuses"] == {"ok": 3} and summary["remaining"] == 0
    with out.open(newline="") as fh:
        assert next(csv.reader(fh)) == bench.FIELDS
    got = rows(out)
    assert [r["family"] for r in got] == ["fc", "vgg", "resnet"]
    assert [r["batch_size"] for r in got] == ["4", "4", "2"]
    assert [(r["precision"], r["channels_last"], r["optimizer"]) for r in got][1] == ("bf16", "True", "adamw")
    for r in got:
        assert r["status"] == "ok" and r["schema_version"] == "1" and r["sweep"] == "plan:tiny"
        assert 0 < float(r["min_ms"]) <= float(r["median_ms"]) <= float(r["max_ms"])
        assert int(r["flops_forward"]) > 0 and int(r["flops_backward"]) > 0 and int(r["predicted_peak_bytes"]) > 0
        assert r["device"] == summary["device"] and r["torch"] == torch.__version__
        spec = json.loads(r["spec"])  # enough to rebuild the model
        assert plans.resolve(spec["model"], spec["params"]).name == r["family"]
        assert r["config_key"] == bench.row_key(r)
    try:
        import traincost.api  # noqa: F401
    except Exception:
        return
    assert all(float(r["analytic_ms"]) > 0 and r["profile_source"] for r in got)


def test_min_time_times_short_steps_until_it_has_passed():
    from torch import nn

    from traincost.flopmodel.walker import StepConfig
    from traincost.sweeps.steps import MAX_REPEATS, measure_step

    model = nn.Linear(8, 4)
    timing = measure_step(model, (8,), StepConfig(batch_size=2), torch.device("cpu"), warmup=0, repeats=1,
                          min_seconds=0.05)
    # a step of a tiny linear layer takes well under 5 ms, so 50 ms of timing needs more than one step
    assert timing.repeats > 1
    # the timed steps took >= 50 ms in all, so n x the slowest step does (n x median would not: one step
    # stalled by a busy neighbour can carry most of the 50 ms)
    assert timing.max_ms * timing.repeats >= 50
    # ... and it stopped once they had: the first n - 1 steps took under 50 ms, each at least the fastest one
    assert timing.repeats == MAX_REPEATS or timing.min_ms * (timing.repeats - 1) < 50
    once = measure_step(model, (8,), StepConfig(batch_size=2), torch.device("cpu"), warmup=0, repeats=1)
    assert once.repeats == 1


def test_min_time_reaches_the_measurement_and_is_validated(tmp_path, fake):
    plan = write(tmp_path, "p.yaml", fc_plan(1))
    out = tmp_path / "out.csv"
    result = run("bench", "--plan", str(plan), "--out", str(out), *QUICK[:-2], "--min-time", "0.25")
    assert result.exit_code == 0, result.output
    assert fake.kwargs["min_seconds"] == 0.25
    for bad in ("-1", "61"):
        result = run("bench", "--plan", str(plan), "--out", str(tmp_path / "x.csv"), "--min-time", bad)
        assert result.exit_code == 2 and "--min-time must be 0-60 seconds" in result.output


# ------------------------------------------------------------------------------------------ nothing lost


def test_interrupted_sweep_resumes_without_loss_or_repeat(tmp_path, monkeypatch):
    plan = write(tmp_path, "p.yaml", fc_plan(6))
    out = tmp_path / "out.csv"
    measure = FakeMeasure({3: KeyboardInterrupt()})
    monkeypatch.setattr("traincost.sweeps.steps.measure_step", measure)
    first = run("bench", "--plan", str(plan), "--out", str(out), *QUICK)
    assert first.exit_code == 130, first.output
    assert "--resume" in first.stderr
    before = out.read_text()
    assert len(rows(out)) == 2
    monkeypatch.setattr("traincost.sweeps.steps.measure_step", FakeMeasure())
    again = run("bench", "--plan", str(plan), "--out", str(out), *QUICK, "--resume", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["already_done"] == 2
    after = out.read_text()
    assert after.startswith(before)  # every finished row kept as it was
    keys = [r["config_key"] for r in rows(out)]
    expected = [c.key(r["device"]) for c, r in zip(plans.load_plan_file(plan), rows(out))]
    assert len(keys) == 6 and len(set(keys)) == 6 and sorted(keys) == sorted(expected)


def test_killed_sweep_resumes_without_loss_or_repeat(tmp_path):
    """A real kill -9 of a running ``traincost bench`` process, then ``--resume``."""
    plan = write(tmp_path, "p.yaml", fc_plan(40))
    out = tmp_path / "out.csv"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "traincost.cli", "bench", "--plan", str(plan), "--out", str(out),
                             "--device", "cpu", "--repeats", "30", "--warmup", "1", "--quiet-wait", "0"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and proc.poll() is None:
            if out.exists() and out.read_text().count("\n") >= 4:  # header + 3 rows
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    before = out.read_text()
    finished = before[: before.rfind("\n") + 1]
    killed_rows = finished.count("\n") - 1
    assert killed_rows >= 1
    result = run("bench", "--plan", str(plan), "--out", str(out), *QUICK, "--resume", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["already_done"] == killed_rows and summary["written"] == 40 - killed_rows
    assert out.read_text().startswith(finished)
    keys = [r["config_key"] for r in rows(out)]
    assert len(keys) == 40 and len(set(keys)) == 40


def test_resume_cuts_a_half_written_last_line(tmp_path, fake):
    plan = write(tmp_path, "p.yaml", fc_plan(3))
    out = tmp_path / "out.csv"
    assert run("bench", "--plan", str(plan), "--out", str(out), *QUICK, "--limit", "2").exit_code == 0
    complete = out.read_text()
    last = complete.splitlines()[-1]
    out.write_text(complete + last[: len(last) // 2])  # a kill in the middle of writing row 3
    result = run("bench", "--plan", str(plan), "--out", str(out), *QUICK, "--resume")
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith(complete)
    keys = [r["config_key"] for r in rows(out)]
    assert len(keys) == 3 and len(set(keys)) == 3


def test_existing_output_needs_resume_and_the_same_schema(tmp_path, fake):
    plan = write(tmp_path, "p.yaml", fc_plan(2))
    out = tmp_path / "out.csv"
    assert run("bench", "--plan", str(plan), "--out", str(out), *QUICK).exit_code == 0
    one_line_error(run("bench", "--plan", str(plan), "--out", str(out), *QUICK), 2, "already exists", "--resume")
    other = write(tmp_path, "other.csv", "a,b\n1,2\n")
    one_line_error(run("bench", "--plan", str(plan), "--out", str(other), *QUICK, "--resume"), 2,
                   "cannot resume", "columns differ")


def test_oom_and_errors_are_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch):
    plan = write(tmp_path, "p.yaml", fc_plan(4))
    out = tmp_path / "out.csv"
    measure = FakeMeasure({1: torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"),
                           2: RuntimeError("cuDNN error: CUDNN_STATUS_INTERNAL_ERROR\nmore lines"),
                           3: RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried 9 GB")})
    monkeypatch.setattr("traincost.sweeps.steps.measure_step", measure)
    result = run("bench", "--plan", str(plan), "--out", str(out), *QUICK, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["statuses"] == {"oom": 2, "error": 1, "ok": 1}
    got = rows(out)
    assert [r["status"] for r in got] == ["oom", "error: RuntimeError: cuDNN error: CUDNN_STATUS_INTERNAL_ERROR",
                                          "oom", "ok"]
    assert got[0]["median_ms"] == "" and got[0]["params"] != ""  # features recorded, no timing
    assert got[3]["median_ms"] != ""


def test_configuration_over_the_memory_limit_is_skipped_not_run(tmp_path, fake):
    configs = plans.load_plan_file(write(tmp_path, "p.yaml", fc_plan(2)))
    out = tmp_path / "out.csv"
    summary = bench.run_sweep(configs, out, "cpu", memory_bytes=1, settings=bench.Settings(0, 1, 1.0))
    assert summary.statuses == {"skipped": 2} and fake.calls == 0
    assert all(r["status"].startswith("skipped: predicted peak") for r in rows(out))


def test_budget_stops_between_configurations(tmp_path, monkeypatch):
    plan = write(tmp_path, "p.yaml", fc_plan(5))
    out = tmp_path / "out.csv"

    def slow(*args, **kwargs):
        time.sleep(0.6)
        return StepTiming(1.0, 1.0, 1.0, 1, None)

    monkeypatch.setattr("traincost.sweeps.steps.measure_step", slow)
    result = run("bench", "--plan", str(plan), "--out", str(out), *QUICK, "--budget-minutes", "0.025", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["stopped_by_budget"] and 1 <= summary["written"] < 5
    assert len(rows(out)) == summary["written"]  # every started configuration finished its row


# ------------------------------------------------------------------------------------------ shards


def test_shards_partition_the_plan_exactly():
    for configs in (plans.seed_plan("cpu"), plans.random_plan(37, seed=3, kind="cpu")):
        keys = [c.key("dev") for c in configs]
        assert len(set(keys)) == len(keys)
        for n in (1, 2, 3, 7):
            parts = [plans.shard(configs, i, n) for i in range(n)]
            got = [c.key("dev") for part in parts for c in part]
            assert sorted(got) == sorted(keys) and len(got) == len(set(got))  # union = plan, disjoint
            assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_shard_cli_runs_cover_the_plan_and_merge_back(tmp_path, fake):
    plan = write(tmp_path, "p.yaml", fc_plan(7))
    outs = []
    for i in range(3):
        out = tmp_path / f"shard{i}.csv"
        result = run("bench", "--plan", str(plan), "--out", str(out), *QUICK, "--shard", f"{i}/3")
        assert result.exit_code == 0, result.output
        outs.append(out)
    sizes = [len(rows(o)) for o in outs]
    assert sizes == [3, 2, 2]
    merged = tmp_path / "all.csv"
    result = run("merge", *map(str, outs), "-o", str(merged), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["duplicates_dropped"] == 0
    device = rows(outs[0])[0]["device"]
    assert sorted(r["config_key"] for r in rows(merged)) == sorted(c.key(device) for c in plans.load_plan_file(plan))


@pytest.mark.parametrize("bad", ["3", "3/3", "-1/2", "a/b", "1/0", "1/2/3"])
def test_bad_shard_is_a_usage_error(tmp_path, bad):
    plan = write(tmp_path, "p.yaml", fc_plan(2))
    one_line_error(run("bench", "--plan", str(plan), "--out", str(tmp_path / "o.csv"), *QUICK, "--shard", bad),
                   2, "--shard")


# ------------------------------------------------------------------------------------------ plans


@pytest.mark.parametrize(("text", "fragment"), [
    ("configs: [\n  {model: fc", "malformed plan file"),
    ("configs: []\n", "non-empty list"),
    ("configs:\n  - {model: fc, batch_size: 4, colour: red}\n", "configs[0]: unknown keys ['colour']"),
    ("configs:\n  - {model: fc}\n", "configs[0]: batch_size is required"),
    ("configs:\n  - {model: fc, batch_size: 4}\n  - {model: vgg, params: {filters: -3}, batch_size: 4}\n",
     "configs[1]: vgg: filters must be a positive integer, got -3"),
    ("configs:\n  - {model: fc, batch_size: 4, precision: fp8}\n", "configs[0]: precision must be one of"),
    ("configs:\n  - {model: nosuchnet, batch_size: 4}\n", "configs[0]"),
    ("schema_version: 7\nconfigs:\n  - {model: fc, batch_size: 4}\n", "schema_version 7"),
    ("plan: 3\n", "unknown keys ['plan']"),
])
def test_bad_plan_file_is_one_clear_error(tmp_path, text, fragment):
    plan = write(tmp_path, "bad.yaml", text)
    out = tmp_path / "o.csv"
    line = one_line_error(run("bench", "--plan", str(plan), "--out", str(out), *QUICK), 2, fragment)
    assert str(plan) in line
    assert not out.exists()


def test_missing_plan_file_and_unknown_plan_name(tmp_path):
    one_line_error(run("bench", "--plan", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "o.csv"), *QUICK),
                   2, "plan file not found")
    one_line_error(run("bench", "--plan", "sobol", "--out", str(tmp_path / "o.csv"), *QUICK), 2,
                   "unknown plan 'sobol'")


def test_json_plan_and_defaults(tmp_path):
    plan = write(tmp_path, "p.json", json.dumps({"name": "j", "defaults": {"batch_size": 8, "optimizer": "adam"},
                                                 "configs": [{"model": "fc"}, {"model": "fc", "batch_size": 2}]}))
    configs = plans.load_plan_file(plan)
    assert [(c.step.batch_size, c.step.optimizer, c.sweep) for c in configs] == [(8, "adam", "plan:j"),
                                                                                  (2, "adam", "plan:j")]


def test_seed_plan_is_the_seed_projects_ofat_grid():
    for kind in ("cpu", "cuda"):
        configs = plans.seed_plan(kind)
        assert {c.spec.name for c in configs} == set(plans.FAMILY_ORDER)
        assert all((c.step.precision, c.step.channels_last, c.step.optimizer) == ("fp32", False, "sgd")
                   for c in configs)
        bases = [c for c in configs if c.sweep.endswith(":base")]
        assert [c.spec.name for c in bases] == list(plans.FAMILY_ORDER)
        assert len({c.key("") for c in configs}) == len(configs)
    cuda = plans.seed_plan("cuda")
    vgg = [c for c in cuda if c.spec.name == "vgg"]
    # base + 15 sides + 9 convs + 7 blocks + 7 filters + 10 dense + 4 widths + 10 classes + 8 batches,
    # minus the base repeated once in each of the 8 factors
    assert len(vgg) == 1 + 15 + 9 + 7 + 7 + 10 + 4 + 10 + 8 - 8
    assert sorted({c.spec.params["filters"] for c in vgg}) == [16, 32, 64, 128, 256, 512, 1024]
    assert sorted({c.step.batch_size for c in vgg}) == [8, 16, 32, 64, 128, 256, 512, 1024]
    cpu_vgg = [c for c in plans.seed_plan("cpu") if c.spec.name == "vgg"]
    assert sorted({c.spec.params["filters"] for c in cpu_vgg}) == [4, 8, 16, 32, 64, 128, 256]  # widths / 4
    assert min(c.spec.params["input_size"] for c in cpu_vgg) == 32  # sides / 4


def test_random_plan_is_deterministic_interleaved_and_covers_interactions():
    a = plans.random_plan(64, seed=5, kind="cuda")
    b = plans.random_plan(64, seed=5, kind="cuda")
    assert [c.key("") for c in a] == [c.key("") for c in b]
    assert [c.key("") for c in plans.random_plan(64, seed=6, kind="cuda")] != [c.key("") for c in a]
    assert [c.spec.name for c in a[:8]] == list(plans.FAMILY_ORDER) * 2
    assert {c.step.precision for c in a} == {"fp32", "tf32", "bf16", "fp16"}
    assert {c.step.optimizer for c in a} == {"sgd", "adam", "adamw"}
    assert {c.step.channels_last for c in a if c.spec.name != "fc"} == {True, False}
    assert not any(c.step.channels_last for c in a if c.spec.name == "fc")
    # interactions: large batch together with large inputs occurs (the seed's OFAT never had it)
    conv = [c for c in a if c.spec.name != "fc"]
    assert any(c.step.batch_size >= 64 and c.spec.params["input_size"] >= 128 for c in conv)
    assert {c.step.precision for c in plans.random_plan(16, seed=0, kind="cpu")} <= {"fp32", "bf16"}


def test_random_plan_replaces_rejected_configurations():
    seen = []

    def accept(cfg):
        seen.append(cfg)
        return cfg.step.batch_size <= 16

    configs = plans.random_plan(20, seed=1, kind="cuda", accept=accept)
    assert len(configs) == 20 and all(c.step.batch_size <= 16 for c in configs)
    assert len(seen) > 20


def test_plan_for_device_filters_by_memory_and_keeps_features(monkeypatch):
    cpu = torch.device("cpu")
    configs = bench.plan_for_device("random", cpu, limit=8, seed=2)
    assert len(configs) == 8 and all(c.features for c in configs)
    assert all(bench.step_flops(c.features) <= plans.MAX_STEP_FLOPS["cpu"] for c in configs)
    assert all(c.features["predicted_peak_bytes"] <= bench.usable_memory_bytes(cpu, available=False)
               for c in configs)
    huge = dict(configs[0].features, predicted_peak_bytes=2**60)
    monkeypatch.setattr(bench, "walk_features", lambda cfg: huge)
    with pytest.raises(plans.TraincostUsageError, match="rejected too many"):
        bench.plan_for_device("random", cpu, limit=2, seed=2)


def test_config_key_from_a_row_equals_the_key_of_its_configuration(tiny):
    cfg = plans.BenchConfig(tiny["resnet"], plans.StepConfig(8, "bf16", True, "adamw"))
    row = {"spec": cfg.spec_json, "batch_size": "8", "precision": "bf16", "channels_last": "True",
           "optimizer": "adamw", "device": "NVIDIA H200"}
    assert bench.row_key(row) == cfg.key("NVIDIA H200") != cfg.key("NVIDIA A100-SXM4-40GB")
    assert cfg.key("x") != plans.BenchConfig(tiny["resnet"], plans.StepConfig(8, "bf16", False, "adamw")).key("x")


# ------------------------------------------------------------------------------------------ merge


def _dataset(tmp_path: Path, name: str, entries: list[tuple[str, str, str]]) -> Path:
    """A dataset whose rows are (fc input_features, status, timestamp) on device 'dev'."""
    out = []
    for features, status, ts in entries:
        spec = json.dumps({"schema_version": 1, "model": "fc", "params": {"input_features": int(features)}})
        row = {"spec": spec, "batch_size": "8", "precision": "fp32", "channels_last": "False", "optimizer": "sgd",
               "device": "dev", "status": status, "timestamp": ts, "median_ms": "1.0" if status == "ok" else ""}
        out.append(bench.upgrade_row(row))
    return bench.write_dataset(out, tmp_path / name)


def test_merge_deduplicates_keeping_the_newest_ok_row(tmp_path):
    a = _dataset(tmp_path, "a.csv", [("10", "ok", "2026-11-01T00:00:00+00:00"),
                                     ("11", "ok", "2026-11-01T00:00:00+00:00"),
                                     ("12", "ok", "2026-11-03T00:00:00+00:00")])
    b = _dataset(tmp_path, "b.csv", [("10", "ok", "2026-11-02T00:00:00+00:00"),   # newer ok: wins
                                     ("11", "oom", "2026-11-05T00:00:00+00:00"),  # newer but not ok: loses
                                     ("12", "ok", "2026-11-02T00:00:00+00:00"),   # older: loses
                                     ("13", "error: X", "2026-11-02T00:00:00+00:00")])
    out = tmp_path / "all.csv"
    result = run("merge", str(a), str(b), "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"output": str(out), "files": 2, "rows_read": 7, "rows": 4,
                                         "duplicates_dropped": 3}
    got = {json.loads(r["spec"])["params"]["input_features"]: (r["status"], r["timestamp"][:10]) for r in rows(out)}
    assert got == {10: ("ok", "2026-11-02"), 11: ("ok", "2026-11-01"), 12: ("ok", "2026-11-03"),
                   13: ("error: X", "2026-11-02")}
    again = tmp_path / "again.csv"
    assert run("merge", str(out), str(a), str(b), "-o", str(again)).exit_code == 0
    assert again.read_text() == out.read_text()  # idempotent


def test_merge_refuses_other_columns_and_schemas(tmp_path):
    good = _dataset(tmp_path, "a.csv", [("10", "ok", "2026-11-01T00:00:00+00:00")])
    other = write(tmp_path, "other.csv", "model,time\nx,1\n")
    out = tmp_path / "all.csv"
    one_line_error(run("merge", str(good), str(other), "-o", str(out)), 2, "other.csv", "columns differ",
                   "unexpected time")
    assert not out.exists()
    v2 = tmp_path / "v2.csv"
    v2.write_text(good.read_text().replace("\n1,", "\n2,", 1))
    one_line_error(run("merge", str(v2), "-o", str(out)), 2, "schema_version '2'")
    one_line_error(run("merge", str(tmp_path / "none.csv"), "-o", str(out)), 2, "dataset not found")


def test_the_precursor_h200_dataset_stays_readable_and_mergeable(tmp_path):
    legacy = bench.read_dataset(H200)
    assert len(legacy) == 1616
    assert all(r["schema_version"] == "1" and len(r["config_key"]) == 16 for r in legacy)
    assert {r["family"] for r in legacy} == set(plans.FAMILY_ORDER)
    ok = [r for r in legacy if r["status"] == "ok"]
    assert ok and all(float(r["median_ms"]) > 0 for r in ok)
    new = _dataset(tmp_path, "new.csv", [("10", "ok", "2026-11-01T00:00:00+00:00")])
    out = tmp_path / "all.csv"
    result = run("merge", str(H200), str(new), "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == len({r["config_key"] for r in legacy}) + 1
    with out.open(newline="") as fh:
        assert next(csv.reader(fh)) == bench.FIELDS


def test_committed_h200_hosts_resolve_to_their_own_profiles():
    """Each H200 dataset is priced with the profile calibrated on the host that measured it: the 2026-12-04
    rows name theirs (``profile_name``), the precursor rows (no such column) get the one named as their device."""
    from traincost.sweeps.fit import resolve_row_profile

    folder = REPO / "data" / "datasets"
    profiles = REPO / "data" / "profiles"
    new_name = json.loads((profiles / "h200-2026-12-04.json").read_text())["name"]
    old_name = json.loads((profiles / "h200.json").read_text())["name"]
    assert new_name != old_name
    rows = [r for p in sorted(folder.glob("h200-families-2026-12-04-*.csv")) for r in bench.read_dataset(p)]
    assert len(rows) >= 400 and {r["status"] for r in rows} == {"ok"}
    assert {r["profile_name"] for r in rows} == {new_name} and {r["device"] for r in rows} == {"NVIDIA H200"}
    assert {r["precision"] for r in rows} == {"fp32", "tf32", "bf16", "fp16"}
    assert resolve_row_profile(rows[0]).name == new_name
    assert resolve_row_profile(bench.read_dataset(H200)[0]).name == old_name


def test_committed_cpu_dataset():
    path = REPO / "data" / "datasets" / "cpu-2core-x86_64.csv"
    if not path.exists():
        pytest.skip("the CPU dataset is not committed yet")
    got = bench.read_dataset(path)
    ok = [r for r in got if r["status"] == "ok"]
    assert len({r["config_key"] for r in ok}) >= 400
    assert {r["family"] for r in ok} == set(plans.FAMILY_ORDER)  # generated families only, no torchvision
    assert len({r["config_key"] for r in got}) == len(got)


@pytest.mark.parametrize("cpu", ["cpu-2core-x86_64", "cpu-intel-xeon-2core"])
def test_committed_cpu_sweeps_measure_the_same_configurations(cpu):
    """``traincost fit`` labels a configuration with the median of its sweeps: every committed sweep of one
    CPU measures the same configurations, all ``ok``, on the device its shipped profile names."""
    paths = sorted((REPO / "data" / "datasets").glob(f"{cpu}*.csv"))
    if len(paths) < 2:
        pytest.skip(f"fewer than two {cpu} sweeps committed")
    rows = [bench.read_dataset(p) for p in paths]
    keys = [{r["config_key"] for r in got if r["status"] == "ok"} for got in rows]
    assert all(k == keys[0] for k in keys) and len(keys[0]) >= 400
    profile = json.loads((REPO / "data" / "profiles" / f"{cpu}.json").read_text())
    assert {r["device"] for got in rows for r in got} == {profile["name"]}
