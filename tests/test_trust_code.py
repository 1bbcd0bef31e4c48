"""Data never runs code: a dataset row whose model is a user factory (``file.py:function`` or
``package.module:function``) is not imported by fit / evaluate / insights unless ``--trust-code`` is given."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("xgboost")

from cli_helpers import assert_one_line_error, run
from insights_data import CPU, synthetic_rows

from traincost.sweeps import fit as F
from traincost.sweeps.bench import FIELDS, write_dataset

EVIL = '''
from pathlib import Path
Path({marker!r}).write_text("imported")

from torch import nn


def make():
    return nn.Sequential(nn.Linear(16, 10))
'''


def evil_file(folder: Path) -> tuple[Path, Path]:
    """(evil.py, the marker file it writes when imported)."""
    marker = folder / "IMPORTED"
    path = folder / "evil.py"
    path.write_text(EVIL.format(marker=str(marker)))
    return path, marker


def factory_row(model: str, key: str) -> dict[str, str]:
    spec = {"schema_version": 1, "model": model, "params": {}, "input_shape": [16]}
    return {**{f: "" for f in FIELDS}, "schema_version": "1", "config_key": key, "family": "user", "model": model,
            "spec": json.dumps(spec), "batch_size": "4", "precision": "fp32", "channels_last": "False",
            "optimizer": "sgd", "status": "ok", "median_ms": "1.5", "analytic_ms": "999", "device": CPU,
            "profile_name": CPU}


def dataset(folder: Path, *, others: bool = True, factories: int = 2) -> tuple[Path, Path, str]:
    """(dataset CSV, marker, factory name): 16 small fc/vgg rows (``others``) and ``factories`` rows naming evil.py."""
    evil, marker = evil_file(folder)
    name = f"{evil}:make"
    rows = (synthetic_rows() if others else []) + [factory_row(name, f"user-{i}") for i in range(factories)]
    path = folder / "d.csv"
    write_dataset(rows, path)
    return path, marker, name


def warning_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if "user code" in line]


# ------------------------------------------------------------------------------------------ library


def test_user_code_name_reads_without_importing(tmp_path, monkeypatch):
    evil, marker = evil_file(tmp_path)
    spec = lambda model, **kw: json.dumps({"schema_version": 1, "model": model, **kw})  # noqa: E731
    assert F.user_code_name(spec("fc")) is None
    assert F.user_code_name(spec("resnet18")) is None                         # torchvision stays allowed
    assert F.user_code_name(spec(f"{evil}:make", input_shape=[16])) == f"{evil}:make"
    assert F.user_code_name(spec("evilpkg.mod:make", input_shape=[16])) == "evilpkg.mod:make"
    assert F.user_code_name(spec(f"{evil}:make")) == f"{evil}:make"            # unreadable (no shape): still held
    assert F.user_code_name("not json") is None and F.user_code_name("") is None
    assert not marker.exists() and "evilpkg" not in sys.modules


def test_build_frame_skips_user_code_unless_trusted(tmp_path):
    path, marker, name = dataset(tmp_path)
    frame = F.build_frame([path], processes=1)
    assert not marker.exists()
    assert len(frame) == 16 and frame.user_code == {name: 2} and frame.user_code_rows == 2
    assert frame.datasets[0]["rows"] == 16 and not frame.skipped
    assert F.combine_repeats(frame).user_code == {name: 2}
    trusted = F.build_frame([path], processes=1, trust_code=True)
    assert marker.exists() and len(trusted) == 18 and trusted.user_code == {}


def test_a_module_factory_is_not_imported(tmp_path, monkeypatch):
    pkg = tmp_path / "evilpkg"
    pkg.mkdir()
    marker = tmp_path / "IMPORTED"
    (pkg / "__init__.py").write_text("")
    (pkg / "mod.py").write_text(EVIL.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path))
    write_dataset(synthetic_rows() + [factory_row("evilpkg.mod:make", "user-0")], tmp_path / "d.csv")
    frame = F.build_frame([tmp_path / "d.csv"], processes=1)
    assert frame.user_code == {"evilpkg.mod:make": 1}
    assert not marker.exists() and "evilpkg.mod" not in sys.modules


def test_the_worker_refuses_user_code_too(tmp_path):
    """A second guard, where specs become walks: a factory row reaching a worker is not imported."""
    from traincost.hardware.store import load_shipped_profiles

    evil, marker = evil_file(tmp_path)
    profile = next(p for p in load_shipped_profiles() if p.name == CPU).to_dict()
    (i, value, err), = F._features_chunk((profile, [(0, factory_row(f"{evil}:make", "k"))], False))
    assert value is None and "user code" in err and not marker.exists()
    (i, value, err), = F._features_chunk((profile, [(0, factory_row(f"{evil}:make", "k"))]))  # old task form
    assert value is None and not marker.exists()
    ref = tmp_path / "ref.json"                                   # a row naming a spec file that names the factory
    ref.write_text(json.dumps({"schema_version": 1, "model": f"{evil}:make", "input_shape": [16]}))
    row = {**factory_row(f"{evil}:make", "k"), "spec": json.dumps({"schema_version": 1, "model": str(ref)})}
    (i, value, err), = F._features_chunk((profile, [(0, row)], False))
    assert value is None and not marker.exists()


def test_every_row_user_code_is_a_failure(tmp_path):
    path, marker, name = dataset(tmp_path, others=False)
    with pytest.raises(F.UserCodeError, match="every measured row was skipped: 2 rows whose model is user code"):
        F.build_frame([path], processes=1)
    assert not marker.exists() and F.UserCodeError("x").exit_code == 1


def test_insights_library_leaves_user_code_rows_out(tmp_path):
    from traincost.reports import insights

    path, marker, name = dataset(tmp_path)
    result = insights.build_report([path], tmp_path / "out", analytic="recompute", residual="none", processes=1)
    assert not marker.exists() and result.rows == 16 and result.user_code == {name: 2}
    stored = insights.build_report([path], tmp_path / "out2", analytic="stored", residual="none")
    assert not marker.exists() and stored.rows == 18 and stored.user_code == {}   # runs no model code


# ------------------------------------------------------------------------------------------ CLI


@pytest.mark.parametrize("command", ["fit", "evaluate", "insights"])
def test_cli_skips_user_code_with_one_warning(tmp_path, command):
    path, marker, name = dataset(tmp_path)
    args = {"fit": ["fit", "--dataset", str(path), "-o", str(tmp_path / "m.json"), "--processes", "1",
                    "--trees", "5"],
            "evaluate": ["evaluate", "--dataset", str(path), "--processes", "1", "--trees", "5"],
            "insights": ["insights", "--dataset", str(path), "--out", str(tmp_path / "o"), "--residual", "none",
                         "--dpi", "40"]}[command]
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert not marker.exists()
    assert warning_lines(result) == [f"warning: skipped 2 rows whose model is user code ({name}); "
                                     "pass --trust-code to run them"]
    assert "Traceback" not in result.output
    as_json = run(*args, "--json")
    assert as_json.exit_code == 0 and not marker.exists() and len(warning_lines(as_json)) == 1
    assert json.loads(as_json.stdout)["user_code_rows"] == 2        # stdout stays one JSON object

    trusted = run(*args, "--trust-code")
    assert trusted.exit_code == 0, trusted.output
    assert marker.exists() and warning_lines(trusted) == []


@pytest.mark.parametrize("command", ["fit", "evaluate", "insights"])
def test_cli_fails_when_every_row_is_user_code(tmp_path, command):
    path, marker, name = dataset(tmp_path, others=False)
    args = {"fit": ["fit", "--dataset", str(path), "-o", str(tmp_path / "m.json"), "--processes", "1"],
            "evaluate": ["evaluate", "--dataset", str(path), "--processes", "1"],
            "insights": ["insights", "--dataset", str(path), "--out", str(tmp_path / "o"), "--residual", "none"]}
    assert_one_line_error(run(*args[command]), 1, "every measured row was skipped", "2 rows whose model is user code",
                          name, "--trust-code")
    assert not marker.exists()


@pytest.mark.parametrize("command", ["fit", "evaluate", "insights"])
def test_help_says_what_trust_code_means(command):
    text = " ".join(run(command, "--help").stdout.split())
    assert "--trust-code" in text
    assert "Let the dataset's rows import and run the Python files or modules they name" in text
