"""``traincost compare`` for decisions and the data-parallel options of ``predict``, through click's CliRunner."""

from __future__ import annotations

import os

import pytest
from cli_helpers import assert_one_line_error, run, run_json

TINY_VGG = ["vgg", "--blocks", "2", "--convs-per-block", "1", "--filters", "8", "--dense-layers", "1",
            "--dense-width", "32", "--input-size", "32", "--classes", "10"]
TINY_FC = ["fc", "--input-features", "32", "--hidden-layers", "2", "--hidden-width", "16", "--classes", "10"]
DEVICES = "T4,H100 SXM,A100 SXM 80GB"
RUN = ["--batch-size", "2048", "--dataset-size", "100000"]


def test_compare_json_keeps_the_estimate_and_adds_ranking_and_pareto():
    out = run_json("compare", *TINY_VGG, "--gpus", DEVICES, *RUN)
    assert [e["device"]["name"] for e in out] == ["H100 SXM5 80GB (datasheet)", "A100 SXM4 80GB (datasheet)",
                                                  "T4 (datasheet)"]
    for e in out:
        assert {"iteration_ms", "total_s", "cost_usd", "fits", "prices", "allreduce_ms", "scaling_efficiency",
                "pareto", "rank", "ranking"} <= set(e)
        assert len(e["ranking"]) == len(e["prices"])
        assert e["pareto"] == any(c["pareto"] for c in e["ranking"])
        for c in e["ranking"]:
            assert c["usd"] == pytest.approx(e["cost_usd"][c["provider"]])
    ranks = sorted(c["rank"] for e in out for c in e["ranking"])
    assert ranks == list(range(1, len(ranks) + 1))
    assert any(e["pareto"] for e in out)
    # no row on the front is beaten on both time and dollars by another row
    rows = [c for e in out for c in e["ranking"]]
    for c in rows:
        if c["pareto"]:
            assert not any(o["total_s"] <= c["total_s"] and o["usd"] < c["usd"] for o in rows if o is not c)


def test_sort_by_cost_puts_the_cheapest_row_first():
    out = run_json("compare", *TINY_VGG, "--gpus", DEVICES, *RUN, "--sort", "cost")
    rows = sorted((c for e in out for c in e["ranking"]), key=lambda c: c["rank"])
    usd = [c["usd"] for c in rows]
    assert usd == sorted(usd)


def test_table_marks_the_front_and_orders_rows_by_time():
    result = run("compare", *TINY_VGG, "--gpus", DEVICES, *RUN)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "Pareto" in text and "run $" in text and " * " in text
    order = [text.index(n) for n in ("H100 SXM5 80GB", "A100 SXM4 80GB", "T4")]
    assert order == sorted(order)


def test_without_a_dataset_size_dollars_per_sample_and_a_note():
    result = run("compare", *TINY_FC, "--gpus", "L4,A100", "--batch-size", "8")
    assert result.exit_code == 0, result.output
    assert "$/1M samples" in result.stdout and "--dataset-size" in result.stdout


def test_a_device_that_does_not_fit_is_marked_and_off_the_front():
    out = run_json("compare", *TINY_VGG, "--gpus", "T4,H100 SXM", "--batch-size", "2048", "--dataset-size", "1000",
                   "--input-size", "512")
    t4 = next(e for e in out if e["device"]["name"].startswith("T4"))
    assert t4["fits"] is False and t4["pareto"] is False and out[-1] is t4


def test_num_gpus_data_parallel_in_compare():
    out = run_json("compare", *TINY_VGG, "--gpus", "A100 SXM 80GB,V100", *RUN, "-n", "16", "--nodes", "2",
                   "--network", "ib-hdr")
    for e in out:
        assert e["gpus"] == 16 and e["nodes"] == 2 and e["global_batch_size"] == 16 * 2048
        assert e["allreduce_ms"] > 0 and 0 < e["scaling_efficiency"] <= 1
        assert e["interconnect"]["network"] == "ib-hdr"
        assert all(p["gpus"] == 16 for p in e["prices"])


def test_plot_is_written(tmp_path):
    path = tmp_path / "front.png"
    result = run("compare", *TINY_FC, "--gpus", "L4,A100", "--batch-size", "8", "--dataset-size", "1000",
                 "--plot", str(path))
    assert result.exit_code == 0, result.output
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("extra, fragment", [
    (["--plot", "/no/such/dir/front.png"], "does not exist"),
    (["--plot", "front.txt"], ".png"),
    (["--nodes", "2", "-n", "16"], "network"),
    (["-n", "6", "--nodes", "4", "--network", "ib-hdr"], "divisible"),
    (["-n", "0"], "num-gpus"),
    (["-n", "2", "--nodes", "2", "--network", "carrier pigeon"], "unknown network"),
    (["--sort", "speed"], "speed"),
])
def test_compare_usage_errors(extra, fragment):
    assert_one_line_error(run("compare", *TINY_FC, "--gpus", "L4,A100", "--batch-size", "2", *extra), 2, fragment)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write anywhere")
def test_plot_into_an_unwritable_directory(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert_one_line_error(run("compare", *TINY_FC, "--gpus", "L4", "--batch-size", "2", "--plot",
                              str(locked / "p.png")), 2, "cannot write")


def test_predict_json_has_the_data_parallel_keys():
    one = run_json("predict", *TINY_VGG, "--device", "H100 SXM", "--batch-size", "256")
    assert (one["allreduce_ms"], one["scaling_efficiency"], one["nodes"]) == (0.0, 1.0, 1)
    many = run_json("predict", *TINY_VGG, "--device", "H100 SXM", "--batch-size", "256", "--gpus", "32",
                    "--nodes", "4", "--network", "8x ib-ndr")
    assert many["allreduce_ms"] > 0 and 0 < many["scaling_efficiency"] <= 1
    assert many["iteration_ms"] == pytest.approx(one["iteration_ms"] + many["exposed_comm_ms"])


@pytest.mark.parametrize("extra, fragment", [
    (["--device", "cpu", "--gpus", "2"], "GPU"),
    (["--device", "A100", "--gpus", "3", "--nodes", "2", "--network", "ib-hdr"], "divisible"),
    (["--device", "A100", "--gpus", "16", "--nodes", "2"], "network"),
])
def test_predict_parallel_usage_errors(extra, fragment):
    assert_one_line_error(run("predict", *TINY_FC, "--batch-size", "2", *extra), 2, fragment)
