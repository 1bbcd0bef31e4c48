"""Safety of ``traincost bench`` / ``traincost merge`` datasets: one writer at a time (the ``<out>.lock``),
no resume onto another plan's or device's file, and damaged lines reported instead of skipped silently."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_bench import (
    QUICK,
    REPO,
    FakeMeasure,
    fc_plan,
    one_line_error,
    rows,
    run,
    write,
)

from traincost.cli.measure import describe_skipped
from traincost.sweeps import bench

ENV = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.fixture
def fake(monkeypatch):
    measure = FakeMeasure()
    monkeypatch.setattr("traincost.sweeps.steps.measure_step", measure)
    return measure


def lock_of(out: Path) -> Path:
    return out.with_name(out.name + ".lock")


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def wait_for(predicate, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def warnings(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("warning: skipped")]


# ------------------------------------------------------------------------------------------ one writer


def test_a_second_bench_on_the_same_out_is_refused_while_the_first_runs(tmp_path, fake):
    plan = write(tmp_path, "p.yaml", fc_plan(40))
    out = tmp_path / "out.csv"
    first = subprocess.Popen([sys.executable, "-m", "traincost.cli", "bench", "--plan", str(plan), "--out", str(out),
                              "--device", "cpu", "--repeats", "30", "--warmup", "1", "--quiet-wait", "0"],
                             env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: first.poll() is not None or (out.exists() and out.read_text().count("\n") >= 2))
        assert first.poll() is None, first.stderr.read()
        holder = json.loads(lock_of(out).read_text())
        assert holder["pid"] == first.pid and holder["host"] == socket.gethostname()
        second = run("bench", "--plan", str(plan), "--out", str(out), *QUICK, "--resume")
        line = one_line_error(second, 1, f"{out} is being written by pid {first.pid} on {socket.gethostname()} "
                                         f"since {holder['since']}")
        assert "Traceback" not in line
        assert fake.calls == 0  # measured nothing
        assert lock_of(out).exists()  # the refused process left the holder's lock alone
        first.send_signal(signal.SIGTERM)  # mapped to KeyboardInterrupt: the lock goes, the rows stay
        assert first.wait(timeout=60) == 130
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert not lock_of(out).exists()
    kept = rows(out)
    assert kept and len({r["config_key"] for r in kept}) == len(kept)
    again = run("bench", "--plan", str(plan), "--out", str(out), *QUICK, "--resume", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["already_done"] == len(kept)
    assert not lock_of(out).exists()


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_note(tmp_path, fake):
    plan = write(tmp_path, "p.yaml", fc_plan(2))
    out = tmp_path / "out.csv"
    pid = dead_pid()
    lock_of(out).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "since": "2026-01-01T00:00:00+00:00"}))
    result = run("bench", "--plan", str(plan), "--out", str(out), *QUICK)
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "took over the stale lock" in notes[0] and f"pid {pid}" in notes[0], result.stderr
    assert len(rows(out)) == 2 and not lock_of(out).exists()


def test_merge_waits_for_no_one_and_never_replaces_a_dataset_being_written(tmp_path, fake):
    plan = write(tmp_path, "p.yaml", fc_plan(2))
    a = tmp_path / "a.csv"
    assert run("bench", "--plan", str(plan), "--out", str(a), *QUICK).exit_code == 0
    out = tmp_path / "out.csv"
    out.write_text("in progress\n")
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom traincost.sweeps.bench import DatasetLock\n"
                               "DatasetLock(sys.argv[1]).acquire()\nprint('locked', flush=True)\ntime.sleep(60)\n",
                               str(out)], env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        one_line_error(run("merge", str(a), "-o", str(out)), 1, f"is being written by pid {holder.pid}")
        assert out.read_text() == "in progress\n"
        holder.kill()  # kill -9: the lock file stays behind, the kernel drops the lock
        holder.wait()
        assert lock_of(out).exists()
        result = run("merge", str(a), "-o", str(out))
        assert result.exit_code == 0, result.output
        assert "took over the stale lock" in result.stderr and len(rows(out)) == 2
        assert not lock_of(out).exists()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


def test_the_lock_is_released_after_an_interrupt_or_an_error(tmp_path, monkeypatch):
    plan = write(tmp_path, "p.yaml", fc_plan(3))
    out = tmp_path / "out.csv"
    monkeypatch.setattr("traincost.sweeps.steps.measure_step", FakeMeasure({2: KeyboardInterrupt()}))
    assert run("bench", "--plan", str(plan), "--out", str(out), *QUICK).exit_code == 130
    assert not lock_of(out).exists() and len(rows(out)) == 1
    monkeypatch.setattr("traincost.sweeps.steps.measure_step", FakeMeasure())
    configs = bench.plan_for_device(str(plan), bench.torch.device("cpu"))
    with pytest.raises(bench.TraincostUsageError):  # an error inside the sweep (exists, no resume)
        bench.run_sweep(configs, out, "cpu", settings=bench.Settings(0, 1, 1.0))
    assert not lock_of(out).exists()
    with bench.DatasetLock(out) as lock:  # reentrant: the CLI holds it around run_sweep
        summary = bench.run_sweep(configs, out, "cpu", resume=True, settings=bench.Settings(0, 1, 1.0))
        assert summary.written == 2 and lock_of(out).exists() and lock.note is None
    assert not lock_of(out).exists()


# ------------------------------------------------------------------------------------------ resume: same plan, same device


def test_resume_refuses_a_file_of_another_plan(tmp_path, fake):
    p = write(tmp_path, "p.yaml", "name: first\n" + fc_plan(2))
    q = write(tmp_path, "q.yaml", "name: second\n" + fc_plan(3))
    out = tmp_path / "out.csv"
    assert run("bench", "--plan", str(p), "--out", str(out), *QUICK).exit_code == 0
    before = out.read_text()
    one_line_error(run("bench", "--plan", str(q), "--out", str(out), *QUICK, "--resume"), 2,
                   "cannot resume", "'plan:first'", "'plan:second'")
    assert out.read_text() == before and not lock_of(out).exists()
    # the same plan continues (a larger --limit of it too)
    result = run("bench", "--plan", str(write(tmp_path, "p3.yaml", "name: first\n" + fc_plan(3))), "--out", str(out),
                 *QUICK, "--resume", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["already_done"] == 2 and len(rows(out)) == 3


def test_resume_refuses_a_file_of_another_device(tmp_path, fake):
    plan = write(tmp_path, "p.yaml", fc_plan(2))
    out = tmp_path / "out.csv"
    assert run("bench", "--plan", str(plan), "--out", str(out), *QUICK).exit_code == 0
    measured = fake.calls
    moved = [{**r, "device": "NVIDIA H200"} for r in bench.read_dataset(out)]
    bench.write_dataset(moved, out)
    before = out.read_text()
    line = one_line_error(run("bench", "--plan", str(plan), "--out", str(out), *QUICK, "--resume"), 2,
                          "cannot resume", "'NVIDIA H200'")
    assert "plan" not in line.split("cannot resume", 1)[1].split(";")[0]  # only the device differs
    assert out.read_text() == before and fake.calls == measured


# ------------------------------------------------------------------------------------------ damaged lines


def _damaged(tmp_path: Path, fake) -> tuple[Path, Path, list[str]]:
    plan = write(tmp_path, "p.yaml", fc_plan(5))
    out = tmp_path / "out.csv"
    assert run("bench", "--plan", str(plan), "--out", str(out), *QUICK, "--limit", "4").exit_code == 0
    lines = out.read_text().splitlines(keepends=True)
    good = [r["config_key"] for r in rows(out)]
    # header, row, GARBAGE (3), row, STRAY QUOTE (5), row, blank, row, half a row cut by a kill (9)
    text = (lines[0] + lines[1] + "garbage\n" + lines[2] + '1,"broken\n' + lines[3] + "\n" + lines[4]
            + lines[4][:30])
    out.write_text(text)
    return plan, out, good


def test_read_dataset_reports_damaged_lines_and_keeps_every_good_row(tmp_path, fake):
    _, out, good = _damaged(tmp_path, fake)
    got = bench.read_dataset(out)
    assert [r["config_key"] for r in got] == good  # a stray quote swallows no good row
    assert got.skipped == [3, 5, 9]
    text = describe_skipped({str(out): got.skipped})
    assert text == f"skipped 3 lines that are not a complete row: {out}:3, {out}:5, {out}:9"
    many = describe_skipped({"a.csv": list(range(1, 8))})
    assert many.endswith("a.csv:5 and 2 more")
    assert describe_skipped({"a.csv": []}) is None


def test_merge_reports_damaged_lines_in_one_warning(tmp_path, fake):
    _, damaged, good = _damaged(tmp_path, fake)
    merged = tmp_path / "merged.csv"
    result = run("merge", str(damaged), "-o", str(merged), "--json")
    assert result.exit_code == 0, result.output
    assert warnings(result) == [f"warning: skipped 3 lines that are not a complete row: {damaged}:3, {damaged}:5, "
                                f"{damaged}:9 (left out of {merged})"]
    summary = json.loads(result.stdout)
    assert summary["rows"] == 4 and summary["skipped_lines"] == [f"{damaged}:{n}" for n in (3, 5, 9)]
    assert [r["config_key"] for r in rows(merged)] == good
    assert bench.merge_datasets([damaged]).skipped == {str(damaged): [3, 5, 9]}
    clean = run("merge", str(merged), "-o", str(tmp_path / "again.csv"), "--json")
    assert warnings(clean) == [] and "skipped_lines" not in json.loads(clean.stdout)


def test_resume_reports_damaged_lines_and_keeps_every_good_row(tmp_path, fake):
    plan, out, good = _damaged(tmp_path, fake)
    before = out.read_text()
    result = run("bench", "--plan", str(plan), "--out", str(out), *QUICK, "--resume", "--json")
    assert result.exit_code == 0, result.output
    assert warnings(result) == [f"warning: skipped 3 lines that are not a complete row: {out}:3, {out}:5, {out}:9 "
                                "(left in the file, not counted as measured)"]
    summary = json.loads(result.stdout)
    assert summary["already_done"] == 4 and summary["written"] == 1 and summary["skipped_lines"] == [3, 5, 9]
    assert out.read_text().startswith(before[: before.rfind("\n") + 1])  # only the half row is cut
    keys = [r["config_key"] for r in bench.read_dataset(out)]
    assert keys[:4] == good and len(set(keys)) == 5


def test_a_garbage_row_with_the_right_number_of_fields_is_skipped_not_fatal(tmp_path, fake):
    plan = write(tmp_path, "p.yaml", fc_plan(1))
    out = tmp_path / "out.csv"
    assert run("bench", "--plan", str(plan), "--out", str(out), *QUICK).exit_code == 0
    with out.open("a", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerow(["x?"] * len(bench.FIELDS))
    got = bench.read_dataset(out)
    assert len(got) == 1 and got.skipped == [3]
