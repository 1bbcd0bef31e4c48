"""`traincost insights`: the report through the CLI, --json, and one-line errors with exit codes."""

from __future__ import annotations

import sys
from pathlib import Path

from cli_helpers import assert_one_line_error, run, run_json
from insights_data import row, write_synthetic

from traincost.sweeps.bench import write_dataset


def test_json_lists_the_files_and_top_correlations(tmp_path):
    data = write_synthetic(tmp_path)
    out = tmp_path / "report"
    got = run_json("insights", "--dataset", str(data), "--out", str(out), "--fast", "--residual", "none",
                   "--dpi", "40")
    assert Path(got["html"]) == out / "report.html" and Path(got["html"]).is_file()
    assert all(Path(p).is_file() and Path(p).parent == out for p in got["pngs"])
    assert sorted(Path(p).name for p in got["pngs"]) == sorted(  # one device: no prefix
        ["correlation_time.png", "time_vs_counted.png", "one_factor_vgg.png", "predicted_vs_measured.png",
         "correlation_error.png"])
    assert got["rows"] == 16 and got["analytic"] == "stored"
    top = got["top_correlations"]
    assert top and {"device", "feature", "kind", "n", "pearson", "pearson_log", "spearman"} <= set(top[0])
    assert abs(top[0]["spearman"]) >= abs(top[-1]["spearman"])
    assert "not asked for" in next(iter(got["residual"].values()))


def test_text_output_names_the_report_and_reads_it(tmp_path, monkeypatch):
    from traincost.reports import insights

    calls = []

    def fake(paths, out_dir, **kw):
        calls.append((paths, out_dir, kw))
        return insights.ReportResult(out_dir=out_dir, html=f"{out_dir}/report.html", pngs=["a.png", "b.png"], rows=7,
                                     devices=["cpu"], analytic=kw["analytic"], residual={"cpu": "none"},
                                     top_correlations=[], reading=["first sentence", "second"], notes=["a note"])

    monkeypatch.setattr(insights, "build_report", fake)
    result = run("insights", "--dataset", str(write_synthetic(tmp_path)), "--out", str(tmp_path / "o"))
    assert result.exit_code == 0, result.output
    first = f"wrote {tmp_path / 'o'}/report.html and 2 PNGs (7 steps, analytic recomputed)"
    assert result.stdout.splitlines() == [first, "- first sentence", "- second", "note: a note"]
    (paths, out_dir, kw), = calls
    assert [str(p) for p in paths] == [str(tmp_path / "tiny.csv")] and out_dir == str(tmp_path / "o")
    assert kw["analytic"] == "recompute" and kw["residual"] == "auto" and kw["dpi"] == 80


def test_missing_dataset(tmp_path):
    assert_one_line_error(run("insights", "--dataset", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o")),
                          2, "dataset not found", "nope.csv")


def test_dataset_is_required():
    assert_one_line_error(run("insights"), 2, "--dataset")


def test_wrong_schema(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("name,time\nx,1\n")
    assert_one_line_error(run("insights", "--dataset", str(bad), "--out", str(tmp_path / "o"), "--fast"),
                          2, "not a traincost dataset")


def test_no_ok_rows(tmp_path):
    data = write_dataset([row("fc", {"input_features": 8}, status="oom")], tmp_path / "oom.csv")
    assert_one_line_error(run("insights", "--dataset", str(data), "--out", str(tmp_path / "o"), "--fast"),
                          2, "no 'ok' rows")


def test_out_dir_not_writable(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    data = str(write_synthetic(tmp_path))
    assert_one_line_error(run("insights", "--dataset", data, "--out", str(blocker / "sub"), "--fast"),
                          2, "cannot write the report")


def test_residual_file_missing(tmp_path):
    assert_one_line_error(run("insights", "--dataset", str(write_synthetic(tmp_path)), "--residual",
                              str(tmp_path / "m.json"), "--out", str(tmp_path / "o")), 2, "--residual")


def test_missing_matplotlib_is_exit_1(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    assert_one_line_error(run("insights", "--dataset", str(write_synthetic(tmp_path)), "--out",
                              str(tmp_path / "o"), "--fast"), 1, "needs matplotlib")
