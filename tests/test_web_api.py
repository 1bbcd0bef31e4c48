"""The web app's JSON API (``traincost serve``) through FastAPI's test client: the CLI's objects and error lines,
no user code, bounds, the time limit, concurrent requests, the catalog and the names, the page's assets."""

from __future__ import annotations

import json
import re
import sys
import threading

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")

from cli_helpers import assert_one_line_error, run, run_json  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from traincost.web import service as web_service  # noqa: E402
from traincost.web.app import STATIC, Background, create_app  # noqa: E402

FC = {"model": "fc", "input_features": "32", "hidden_layers": "2", "hidden_width": "16", "classes": "10"}
FC_ARGS = ["fc", "--input-features", "32", "--hidden-layers", "2", "--hidden-width", "16", "--classes", "10"]
VGG = {"model": "vgg", "blocks": "2", "convs_per_block": "1", "filters": "8", "dense_layers": "1",
       "dense_width": "32", "input_size": "32", "classes": "10"}
VGG_ARGS = ["vgg", "--blocks", "2", "--convs-per-block", "1", "--filters", "8", "--dense-layers", "1",
            "--dense-width", "32", "--input-size", "32", "--classes", "10"]


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app()) as c:
        yield c


def _ok(response) -> object:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def _cli_line(*args: str) -> str:
    """The CLI's error line without ``Error: `` and click's ``(see '... --help')`` hint."""
    line = assert_one_line_error(run(*args), 2)
    return re.sub(r" \(see '[^']+ --help'\)$", "", line.removeprefix("Error: "))



# ------------------------------------------------------------------------------------------ the CLI's objects
def test_predict_answers_the_object_predict_json_prints(client):
    web = _ok(client.get("/api/predict", params={**FC, "device": "L4", "batch_size": "64", "epochs": "3",
                                                 "dataset_size": "50000", "precision": "bf16"}))
    cli = run_json("predict", *FC_ARGS, "--device", "L4", "--batch-size", "64", "--epochs", "3",
                   "--dataset-size", "50000", "--precision", "bf16")
    assert web == cli
    assert web["batch_size"] == 64 and web["precision"] == "bf16" and web["total_s"] is not None


def test_predict_with_a_provider_and_data_parallel_is_the_cli_object(client):
    web = _ok(client.get("/api/predict", params={**VGG, "device": "A100", "batch_size": "32", "gpus": "4",
                                                 "dataset_size": "10000", "provider": "aws",
                                                 "channels_last": "true", "optimizer": "adamw"}))
    cli = run_json("predict", *VGG_ARGS, "--device", "A100", "--batch-size", "32", "--gpus", "4",
                   "--dataset-size", "10000", "--provider", "aws", "--channels-last", "--optimizer", "adamw")
    assert web == cli
    assert web["gpus"] == 4 and web["channels_last"] is True and {p["provider"] for p in web["prices"]} == {"AWS"}


@pytest.mark.parametrize("extra, extra_args", [
    ({}, []),
    ({"sort": "cost", "num_gpus": "2"}, ["--sort", "cost", "-n", "2"]),
    ({"provider": "Lambda"}, ["--provider", "Lambda"]),
])
def test_compare_answers_the_list_compare_json_prints(client, extra, extra_args):
    query = {**VGG, "gpus": "T4,H100 SXM,A100 SXM 80GB", "batch_size": "64", "dataset_size": "100000",
             "epochs": "2", **extra}
    web = _ok(client.get("/api/compare", params=query))
    cli = run_json("compare", *VGG_ARGS, "--gpus", "T4,H100 SXM,A100 SXM 80GB", "--batch-size", "64",
                   "--dataset-size", "100000", "--epochs", "2", *extra_args)
    assert web == cli
    assert len(web) == 3 and any(row["pareto"] for row in web)


def test_a_repeated_question_is_answered_from_the_cache_with_the_same_text(client):
    query = {**FC, "gpus": "L4,A10", "batch_size": "8"}
    first = client.get("/api/compare", params=query)
    service = client.app.state.service
    assert any('"L4' in text or "L4" in key for key, text in service._cache.items())
    second = client.get("/api/compare", params=dict(reversed(list(query.items()))))  # order does not matter
    assert first.status_code == second.status_code == 200 and first.content == second.content


def test_gpus_is_the_catalog_gpus_json_prints(client):
    web = _ok(client.get("/api/gpus"))
    assert web == run_json("gpus")
    assert any(g["name"].startswith("H100") for g in web)


def test_models_lists_families_with_their_parameters_and_the_names_accepted(client):
    from dataclasses import fields

    from traincost.flopmodel import families

    out = _ok(client.get("/api/models"))
    by_name = {f["name"]: f for f in out["families"]}
    assert list(by_name) == list(families.FAMILIES)
    fc = {p["name"]: p for p in by_name["fc"]["params"]}
    assert list(fc) == [f.name for f in fields(families.FCParams)]
    assert fc["hidden_width"]["default"] == families.FCParams().hidden_width
    assert fc["hidden_width"]["kind"] == "int" and fc["batchnorm"]["kind"] == "bool"
    assert fc["hidden_width"]["help"]  # the dataclass's description of the field
    assert "resnet50" in out["torchvision"] and "vit_b_16" in out["torchvision"]
    assert all(n.startswith("timm:") for n in out["timm"])
    if "timm" in sys.modules or _importable("timm"):
        assert "timm:resnet50" in out["timm"]


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


# ------------------------------------------------------------------------------------------ errors: the CLI's line
@pytest.mark.parametrize("command, query, args, field", [
    ("predict", {"model": "resnet18", "device": "A100", "batch_size": "abc"},
     ["predict", "resnet18", "--device", "A100", "--batch-size", "abc"], "batch_size"),
    ("predict", {"model": "resnet18", "device": "A100"}, ["predict", "resnet18", "--device", "A100"], "batch_size"),
    ("predict", {"model": "resnet18", "device": "A100", "batch_size": "8", "precision": "fp8"},
     ["predict", "resnet18", "--device", "A100", "--batch-size", "8", "--precision", "fp8"], "precision"),
    ("predict", {"model": "resnet18", "device": "NOPE", "batch_size": "8"},
     ["predict", "resnet18", "--device", "NOPE", "--batch-size", "8"], "device"),
    ("predict", {"model": "resnet18x", "device": "A100", "batch_size": "8"},
     ["predict", "resnet18x", "--device", "A100", "--batch-size", "8"], "model"),
    ("predict", {"model": "fc", "hidden_width": "abc", "device": "A100", "batch_size": "8"},
     ["predict", "fc", "--hidden-width", "abc", "--device", "A100", "--batch-size", "8"], "hidden_width"),
    ("predict", {"model": "resnet18", "device": "A100", "batch_size": "0"},
     ["predict", "resnet18", "--device", "A100", "--batch-size", "0"], "batch_size"),
    ("predict", {**FC, "device": "A100", "batch_size": "8", "epochs": "-1"},
     ["predict", *FC_ARGS, "--device", "A100", "--batch-size", "8", "--epochs", "-1"], "epochs"),
    ("predict", {**FC, "device": "A100", "batch_size": "8", "provider": "nope"},
     ["predict", *FC_ARGS, "--device", "A100", "--batch-size", "8", "--provider", "nope"], "provider"),
    ("predict", {**FC, "device": "A100", "batch_size": "8", "gpus": "2", "nodes": "3"},
     ["predict", *FC_ARGS, "--device", "A100", "--batch-size", "8", "--gpus", "2", "--nodes", "3"], "nodes"),
    ("predict", {**FC, "device": "V100", "batch_size": "8", "precision": "bf16"},
     ["predict", *FC_ARGS, "--device", "V100", "--batch-size", "8", "--precision", "bf16"], "precision"),
    ("compare", {**FC, "gpus": "A100,8", "batch_size": "8"},
     ["compare", *FC_ARGS, "--gpus", "A100,8", "--batch-size", "8"], "gpus"),
    ("compare", {**FC, "gpus": "A100,L4", "batch_size": "8", "num_gpus": "x"},
     ["compare", *FC_ARGS, "--gpus", "A100,L4", "--batch-size", "8", "-n", "x"], "num_gpus"),
    ("compare", {**FC, "gpus": "A100,NOPE", "batch_size": "8"},
     ["compare", *FC_ARGS, "--gpus", "A100,NOPE", "--batch-size", "8"], "gpus"),
    ("compare", {**FC, "gpus": "A100,L4", "batch_size": "8", "provider": "nope"},
     ["compare", *FC_ARGS, "--gpus", "A100,L4", "--batch-size", "8", "--provider", "nope"], "provider"),
    ("compare", {**FC, "gpus": "A100", "batch_size": "8", "dataset_size": "0"},
     ["compare", *FC_ARGS, "--gpus", "A100", "--batch-size", "8", "--dataset-size", "0"], "dataset_size"),
])
def test_bad_input_is_400_with_the_line_the_cli_prints(client, command, query, args, field):
    response = client.get(f"/api/{command}", params=query)
    assert response.status_code == 400, response.text
    assert response.json() == {"error": _cli_line(*args), "field": field}
    assert "Traceback" not in response.text


def test_unknown_or_repeated_parameters_are_refused(client):
    response = client.get("/api/compare", params={**FC, "gpus": "L4", "batch_size": "8", "batch": "9"})
    assert response.status_code == 400 and response.json()["field"] == "batch"
    assert "unknown parameter 'batch'" in response.json()["error"]
    response = client.get("/api/predict?model=fc&device=L4&batch_size=8&batch_size=9")
    assert response.status_code == 400 and "more than once" in response.json()["error"]


def test_an_unknown_path_is_a_json_404(client):
    response = client.get("/api/nothing")
    assert response.status_code == 404 and response.json() == {"error": "Not Found", "field": None}


def test_a_bug_is_a_500_with_one_line_and_no_traceback(client, monkeypatch):
    def broken(query, walker=None):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(web_service, "compute", broken)
    response = client.get("/api/predict", params={**FC, "device": "L4", "batch_size": "3"})
    assert response.status_code == 500
    assert response.json() == {"error": "internal error: RuntimeError: boom", "field": None}


# ------------------------------------------------------------------------------------------ no user code
@pytest.mark.parametrize("model", ["user_model.py:make", "tests/data/user_model.py:tiny_cnn", "os.path:join",
                                   "torchvision.models:resnet18", "spec.yaml", "../spec.json", "a/b"])
def test_a_factory_module_or_file_is_refused_before_anything_is_read(client, model):
    loaded = set(sys.modules)
    response = client.get("/api/predict", params={"model": model, "device": "L4", "batch_size": "8",
                                                  "input_shape": "3,32,32"})
    assert response.status_code == 400
    body = response.json()
    assert body["field"] == "model" and "no user code runs here" in body["error"]
    assert not [m for m in set(sys.modules) - loaded if m.startswith("_traincost_user_")]


def test_a_device_profile_file_is_refused(client):
    for device in ("profile.json", "../x/gpu.json"):
        response = client.get("/api/predict", params={**FC, "device": device, "batch_size": "8"})
        assert response.status_code == 400 and response.json()["field"] == "device"
    response = client.get("/api/compare", params={**FC, "gpus": "L4,/tmp/gpu.json", "batch_size": "8"})
    assert response.status_code == 400 and response.json()["field"] == "gpus"


def test_an_uploaded_spec_is_read_and_its_link_is_the_cli_spec(client, tmp_path):
    text = ("schema_version: 1\nmodel: vgg\nparams: {blocks: 2, convs_per_block: 1, filters: 8, dense_layers: 1,\n"
            "  dense_width: 32, input_size: 32, classes: 10}\n")
    out = _ok(client.post("/api/spec", content=text))
    assert out["spec"]["model"] == "vgg" and out["spec"]["params"]["filters"] == 8
    assert out["input_shape"] == [3, 32, 32]
    path = tmp_path / "tiny.yaml"
    path.write_text(text)
    web = _ok(client.get("/api/compare", params={"spec": json.dumps(out["spec"]), "gpus": "L4,A100",
                                                 "batch_size": "16"}))
    assert web == run_json("compare", "--spec", str(path), "--gpus", "L4,A100", "--batch-size", "16")


@pytest.mark.parametrize("text, fragment", [
    ("model: user_model.py:make\ninput_shape: [3, 8, 8]\n", "no user code runs here"),
    ("model: other.yaml\n", "no user code runs here"),
    ("model: resnet18\nparams: {weights: IMAGENET1K_V1}\n", "load no weights"),
    ("model: resnet18\nparams: {num_classes: [1, 2]}\n", "must be numbers or booleans"),
    ("model: vgg\nparams: {blocks: -1}\n", "blocks"),
    ("model: [unclosed\n", "malformed spec"),
    ("just text\n", "expected a mapping"),
])
def test_a_bad_uploaded_spec_is_400_naming_the_problem(client, text, fragment):
    response = client.post("/api/spec", content=text)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["error"] and response.json()["field"] == "spec"


def test_a_spec_with_a_name_is_refused_as_the_cli_refuses_both(client):
    response = client.get("/api/predict", params={"model": "fc", "spec": '{"model": "fc"}', "device": "L4",
                                                  "batch_size": "8"})
    assert response.status_code == 400 and response.json()["error"] == "give either MODEL or --spec, not both"


# ------------------------------------------------------------------------------------------ bounds
@pytest.mark.parametrize("command, query, field, fragment", [
    ("predict", {**FC, "device": "L4", "batch_size": str(web_service.MAX_BATCH + 1)}, "batch_size", "bound of 65536"),
    ("predict", {**FC, "device": "L4", "batch_size": "8", "gpus": str(web_service.MAX_GPUS + 8)}, "gpus", "GPUs"),
    ("compare", {**FC, "gpus": ",".join(["L4"] * (web_service.MAX_DEVICES + 1)), "batch_size": "8"}, "gpus",
     "devices to compare"),
    ("compare", {**FC, "gpus": "L4", "batch_size": "8", "num_gpus": str(web_service.MAX_GPUS + 8)}, "num_gpus",
     "GPUs"),
    ("predict", {"model": "fc", "input_features": str(2**25), "device": "L4", "batch_size": "8"}, "input_shape",
     "values per sample"),
    ("predict", {"model": "resnet18", "input_shape": "3,4096,4096", "device": "L4", "batch_size": "8"},
     "input_shape", "values per sample"),
    ("predict", {"model": "fc", "hidden_width": str(2**20), "device": "L4", "batch_size": "8"}, "hidden_width",
     "bound of 65536"),
    ("predict", {"model": "fc", "hidden_layers": "5000", "device": "L4", "batch_size": "8"}, "hidden_layers",
     "layers and blocks"),
    ("predict", {"model": "resnet", "blocks": "300,300", "device": "L4", "batch_size": "8"}, "blocks",
     "layers and blocks"),
])
def test_sizes_are_bounded_with_a_clear_message(client, command, query, field, fragment):
    response = client.get(f"/api/{command}", params=query)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["field"] == field and fragment in body["error"] and "this server's bound" in body["error"]


def test_an_oversized_spec_upload_is_refused(client):
    response = client.post("/api/spec", content="# " + "x" * web_service.MAX_SPEC_BYTES + "\nmodel: fc\n")
    assert response.status_code == 400 and "KiB" in response.json()["error"]


# ------------------------------------------------------------------------------------------ time limit, concurrency
def test_a_request_past_the_time_limit_gets_a_504_naming_the_limit(monkeypatch):
    release = threading.Event()
    real = web_service.compute

    def slow(query, walker=None):
        assert release.wait(30), "the test never released the walk"
        return real(query, walker)

    monkeypatch.setattr(web_service, "compute", slow)
    with TestClient(create_app(time_limit_s=0.2)) as c:
        try:
            response = c.get("/api/predict", params={**FC, "device": "L4", "batch_size": "5"})
        finally:
            release.set()
            c.app.state.service.close(wait=True)  # the walk goes on after the answer: let it end here
        assert response.status_code == 504
        assert "time limit of 0.2 s" in response.json()["error"]


def test_time_limit_must_be_positive():
    from traincost.errors import TraincostUsageError

    with pytest.raises(TraincostUsageError, match="time limit"):
        create_app(time_limit_s=0)


def test_concurrent_requests_each_get_their_own_answer():
    import httpx

    from traincost.api import predict
    from traincost.flopmodel.arch import resolve

    spec = resolve("fc", params={k: v for k, v in FC.items() if k != "model"})
    batches = [2, 3, 4, 6, 8, 12, 16, 24]
    expected = {b: json.loads(json.dumps(predict(spec, device="L4", batch_size=b).to_dict())) for b in batches}
    answers: dict[int, dict] = {}
    errors: list[str] = []
    with Background() as server:
        barrier = threading.Barrier(len(batches))

        def ask(batch: int) -> None:
            try:
                with httpx.Client(base_url=server.url, timeout=60) as http:
                    barrier.wait()
                    response = http.get("/api/predict", params={**FC, "device": "L4", "batch_size": str(batch)})
                    answers[batch] = response.json() if response.status_code == 200 else {"error": response.text}
            except Exception as exc:  # reported below, not lost in the thread
                errors.append(f"{batch}: {exc!r}")

        threads = [threading.Thread(target=ask, args=(b,)) for b in batches]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert not errors, errors
    assert answers == expected
    assert {b: a["batch_size"] for b, a in answers.items()} == {b: b for b in batches}
    assert len({a["samples_per_s"] for a in answers.values()}) == len(batches)  # distinct answers


# ------------------------------------------------------------------------------------------ the page
def test_the_page_and_its_assets_ship_in_the_package_and_load_nothing_from_elsewhere(client):
    page = client.get("/")
    assert page.status_code == 200 and "<form" in page.text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    local = [a for a in assets if a.startswith("/static/")]
    assert {"/static/app.js", "/static/app.css"} <= set(local)
    for asset in local:
        assert client.get(asset).status_code == 200
    for path in STATIC.iterdir():
        text = path.read_text(encoding="utf-8")
        urls = set(re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+\.[a-z]{2,}[^\s\"')]*", text))
        assert urls <= {"http://www.w3.org/2000/svg"}, (path.name, urls)
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_the_static_files_are_package_data():
    from fnmatch import fnmatch
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    block = text[text.index("[tool.setuptools.package-data]\n") + 31:]
    patterns = re.findall(r'"([^"]+)"', block[:block.index("]\n") + 1])
    shipped = {p.name for p in STATIC.iterdir()}
    assert {"index.html", "app.js", "app.css"} <= shipped
    assert all(any(fnmatch(f"web/static/{name}", p) for p in patterns) for name in shipped), patterns


# ------------------------------------------------------------------------------------------ traincost serve
def test_serve_refuses_a_bad_port_and_time_limit_in_one_line():
    assert_one_line_error(run("serve", "--port", "70000"), 2, "--port")
    assert_one_line_error(run("serve", "--time-limit", "0"), 2, "--time-limit")


def test_serve_says_when_the_port_is_taken():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        line = assert_one_line_error(run("serve", "--port", str(port)), 1, f"cannot listen on 127.0.0.1:{port}")
    assert "in use" in line.lower()
