"""Tests for traincost.count(): what it accepts, what it returns, and the tables' invariants."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import traincost
from traincost import ArchSpec, CountResult, SpecError, resolve
from traincost.errors import TraincostUsageError
from traincost.flopmodel.records import OP_CLASSES, PHASES

DATA = Path(__file__).parent / "data"

CONTRACT_KEYS = {"params", "flops", "bytes", "peak_memory_bytes", "ops", "unpriced_ops", "layers"}
DESCRIPTIVE_KEYS = {"model", "batch_size", "input_shape", "precision", "channels_last", "optimizer",
                    "memory", "assumptions"}
LAYER_KEYS = {"module", "ops", "flops", "forward_flops", "backward_flops", "optimizer_flops", "bytes_read",
              "bytes_written"}


def test_public_api() -> None:
    assert {"count", "max_batch_size", "ArchSpec", "CountResult", "resolve"} <= set(traincost.__all__)
    assert all(hasattr(traincost, name) for name in traincost.__all__)


# --------------------------------------------------------------------------------------------
# what count() accepts


def test_accepts_a_name(counted) -> None:
    result = counted("resnet50", 2)
    assert isinstance(result, CountResult)
    assert result.params == 25_557_032
    assert result.label == "resnet50"


def test_accepts_family_name_with_input_shape() -> None:
    result = traincost.count("vgg", batch_size=2, input_shape=(3, 64, 64))
    assert result.walk.sample_shape == (3, 64, 64)


@pytest.mark.parametrize("file", ["net.yaml", "net.json"])
def test_accepts_a_spec_path(file: str, data_dir: Path) -> None:
    spec = ArchSpec.from_file(data_dir / file)
    from_path = traincost.count(data_dir / file, batch_size=2)
    from_str = traincost.count(str(data_dir / file), batch_size=2)
    from_spec = traincost.count(spec, batch_size=2)
    assert from_path.flops == from_str.flops == from_spec.flops
    assert from_path.params == from_spec.params == sum(p.numel() for p in spec.build().parameters())


def test_accepts_an_archspec(tiny) -> None:
    result = traincost.count(tiny["inception"], batch_size=2)
    assert result.label.startswith("inception(")
    assert result.walk.sample_shape == (3, 64, 64)


def test_accepts_a_module_on_any_device(tiny) -> None:
    spec = tiny["resnet"]
    with torch.device("meta"):
        on_meta = traincost.flopmodel.families.build(spec.family_params())
    on_cpu = traincost.flopmodel.families.build(spec.family_params())
    results = [traincost.count(m, batch_size=2, input_shape=(3, 32, 32)) for m in (on_meta, on_cpu)]
    results.append(traincost.count(spec, batch_size=2))
    assert results[0].flops == results[1].flops == results[2].flops
    assert results[0].params == results[2].params
    assert results[0].label == "Sequential"


def test_torchvision_module_on_meta() -> None:
    torchvision = pytest.importorskip("torchvision")
    with torch.device("meta"):
        model = torchvision.models.resnet18()
    result = traincost.count(model, batch_size=2, input_shape=(3, 64, 64))
    assert result.params == 11_689_512 and result.unpriced_ops == {}


def test_module_without_input_shape_is_an_error(tiny) -> None:
    with pytest.raises(SpecError, match="input_shape is required"):
        traincost.count(tiny["fc"].build(), batch_size=2)


@pytest.mark.parametrize("bad", [3, 2.5, None, ["resnet50"]])
def test_rejects_other_types(bad: object) -> None:
    with pytest.raises(SpecError, match="model must be"):
        traincost.count(bad, batch_size=2)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kwargs", "pattern"), [
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": -2}, "batch_size"),
    ({"batch_size": 2, "precision": "int8"}, "precision"),
    ({"batch_size": 2, "optimizer": "rmsprop"}, "optimizer"),
])
def test_bad_step_arguments(kwargs: dict, pattern: str, tiny) -> None:
    with pytest.raises(TraincostUsageError, match=pattern):
        traincost.count(tiny["fc"], **kwargs)


def test_batch_size_is_keyword_only(tiny) -> None:
    with pytest.raises(TypeError):
        traincost.count(tiny["fc"], 2)  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# what it returns


@pytest.fixture(scope="module")
def result(tiny) -> CountResult:
    return traincost.count(tiny["resnet"], batch_size=4, precision="bf16", optimizer="adam")


def test_flops_by_phase_sum_to_total(result: CountResult) -> None:
    flops = result.flops
    assert set(flops) == {"forward", "backward", "optimizer", "total"}
    assert flops["total"] == flops["forward"] + flops["backward"] + flops["optimizer"]
    assert all(flops[p] > 0 for p in PHASES)
    assert flops["total"] == sum(r.flops for r in result.records)
    assert all(isinstance(v, int) for v in flops.values())


def test_bytes_read_and_written(result: CountResult) -> None:
    assert set(result.bytes) == {"read", "written"}
    assert result.bytes["read"] == sum(r.bytes_read for r in result.records) > 0
    assert result.bytes["written"] == sum(r.bytes_written for r in result.records) > 0


def test_scalars(result: CountResult, tiny) -> None:
    assert result.params == sum(p.numel() for p in tiny["resnet"].build().parameters())
    assert result.peak_memory_bytes == result.walk.memory.peak_bytes > 0
    assert result.ops == len(result.records)
    assert result.unpriced_ops == {}
    assert {r.op_class for r in result.records} <= set(OP_CLASSES)


def test_by_module_sums_to_totals(result: CountResult) -> None:
    table = result.by_module()
    assert set(table.columns) == LAYER_KEYS
    assert table["module"].is_unique
    assert int(table["flops"].sum()) == result.flops["total"]
    for phase in PHASES:
        assert int(table[f"{phase}_flops"].sum()) == result.flops[phase]
    assert int(table["bytes_read"].sum()) == result.bytes["read"]
    assert int(table["bytes_written"].sum()) == result.bytes["written"]
    assert int(table["ops"].sum()) == result.ops
    assert (table["flops"] == table["forward_flops"] + table["backward_flops"] + table["optimizer_flops"]).all()
    assert list(table["flops"]) == sorted(table["flops"], reverse=True)  # heaviest first
    modules = set(table["module"])
    assert {"(loss)", "(optimizer)", "stem.conv", "stages.0.0.conv1", "head.fc"} <= modules
    conv1 = table.set_index("module").loc["stages.0.0.conv1"]
    assert conv1["forward_flops"] > 0 and conv1["backward_flops"] > 0 and conv1["optimizer_flops"] == 0


def test_by_operator_sums_to_totals(result: CountResult) -> None:
    table = result.by_operator()
    assert {"op", "op_class", "count", "flops", "bytes_read", "bytes_written"} <= set(table.columns)
    assert int(table["flops"].sum()) == result.flops["total"]
    assert int(table["bytes_read"].sum()) == result.bytes["read"]
    assert int(table["bytes_written"].sum()) == result.bytes["written"]
    assert int(table["count"].sum()) == result.ops
    assert table.iloc[0]["op"] in ("aten.convolution_backward", "aten.convolution")


def test_by_class_sums_to_totals(result: CountResult) -> None:
    table = result.by_class()
    assert int(table["flops"].sum()) == result.flops["total"]
    for phase in PHASES:
        assert int(table[table["phase"] == phase]["flops"].sum()) == result.flops[phase]
    assert set(table["op_class"]) <= set(OP_CLASSES)


def test_records_frame(result: CountResult) -> None:
    frame = result.records_frame()
    assert len(frame) == result.ops
    assert int(frame["flops"].sum()) == result.flops["total"]
    assert list(frame["index"]) == list(range(result.ops))


def test_to_dict_contract(result: CountResult) -> None:
    d = result.to_dict()
    assert CONTRACT_KEYS <= set(d)
    assert set(d) == CONTRACT_KEYS | DESCRIPTIVE_KEYS
    assert set(d["flops"]) == {"forward", "backward", "optimizer", "total"}
    assert set(d["bytes"]) == {"read", "written"}
    assert d["params"] == result.params and d["ops"] == result.ops
    assert d["peak_memory_bytes"] == result.peak_memory_bytes
    assert d["unpriced_ops"] == {}
    assert d["batch_size"] == 4 and d["precision"] == "bf16" and d["optimizer"] == "adam"
    assert d["input_shape"] == [3, 32, 32] and d["channels_last"] is False
    assert isinstance(d["layers"], list) and d["layers"]
    assert all(set(row) == LAYER_KEYS for row in d["layers"])
    assert sum(row["flops"] for row in d["layers"]) == d["flops"]["total"]
    assert sum(row["ops"] for row in d["layers"]) == d["ops"]
    # JSON-serialisable, with plain ints (no numpy scalars)
    again = json.loads(json.dumps(d))
    assert again == d
    assert all(type(row["flops"]) is int for row in d["layers"])


def test_unpriced_ops_reach_the_tables() -> None:
    from torch import nn

    from traincost.flopmodel import formulas

    if "aten.lgamma" in formulas.registered_ops():
        pytest.skip("lgamma has a formula now")

    class Gamma(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.lgamma(x))

    d = traincost.count(Gamma(), batch_size=2, input_shape=(4,)).to_dict()
    assert d["unpriced_ops"]["aten.lgamma"] == 1
    assert json.loads(json.dumps(d))["unpriced_ops"]["aten.lgamma"] == 1


def test_family_label_and_spec_resolve_identically() -> None:
    a = traincost.count("resnet", batch_size=2, input_shape=(3, 64, 64))
    b = traincost.count(resolve("resnet", input_shape=(3, 64, 64)), batch_size=2)
    assert a.flops == b.flops and a.label == b.label


def test_token_model_walks_with_integer_inputs_and_a_vocabulary_loss():
    # batch 4, sequence 16, vocabulary 100, width 32: the loss is over the vocabulary of 4 * 16 tokens
    result = traincost.count(str(DATA / "user_model.py") + ":make_token_model", batch_size=4,
                             input_shape=(16,), input_dtype="int64")
    assert result.unpriced_ops == {}
    frame = result.records_frame()
    assert "aten.embedding" in set(frame.op)
    log_softmax = frame[(frame.op == "aten._log_softmax") & (frame.phase == "forward")]
    assert [tuple(s) for s in log_softmax.output_shapes.iloc[0]] == [(4 * 16, 100)]
    # the head: (4 * 16 tokens) x 32 -> 100, 2 FLOPs per multiply-add, plus the bias add
    head = frame[(frame.module == "2") & (frame.phase == "forward") & (frame.op_class == "matmul")]
    assert head.flops.sum() == 2 * 4 * 16 * 32 * 100 + 4 * 16 * 100


def test_bad_input_dtype_is_a_usage_error():
    with pytest.raises(traincost.SpecError, match="input_dtype"):
        traincost.count("resnet18", batch_size=2, input_dtype="complex64")
