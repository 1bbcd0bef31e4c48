"""Hugging Face transformers from a config: every head family builds and walks on its own loss, MoE routing
reproduces the expert token counts by hand arithmetic, token inputs reach predict/compare, bad input is named.

The example configs (examples/hf/) are full-size; their walks here keep two layers (``num_hidden_layers`` or
the config's own layer fields overridden through params) and short sequences, so the file runs in seconds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("transformers")

import traincost  # noqa: E402
from traincost.errors import ModelBuildError, SpecError  # noqa: E402
from traincost.flopmodel import datadep, hf_models  # noqa: E402
from traincost.flopmodel.arch import ArchSpec, resolve  # noqa: E402
from traincost.flopmodel.count import count  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "hf"
TWO_LAYERS = {
    "bert-large": {"num_hidden_layers": 2},
    "gpt2-large": {"n_layer": 2},
    "gpt3-xl": {"n_layer": 2},
    "gpt3-2.7b": {"n_layer": 2},
    "opt-1.3b": {"num_hidden_layers": 2},
    "t5-base": {"num_layers": 2, "num_decoder_layers": 2},
    "switch-base-8": {"num_layers": 2, "num_decoder_layers": 2, "num_sparse_encoder_layers": 1,
                      "num_sparse_decoder_layers": 1},
    "mixtral-small": {"num_hidden_layers": 2},
}
HEADS = {"bert-large": "BertForPreTraining", "gpt2-large": "GPT2LMHeadModel", "gpt3-xl": "GPT2LMHeadModel",
         "gpt3-2.7b": "GPT2LMHeadModel", "opt-1.3b": "OPTForCausalLM", "t5-base": "T5ForConditionalGeneration",
         "switch-base-8": "SwitchTransformersForConditionalGeneration", "mixtral-small": "MixtralForCausalLM"}
BATCH, SEQ = 2, 16


def _spec(name: str, seq: int = SEQ, **extra) -> ArchSpec:
    return resolve(f"hf:{EXAMPLES / (name + '.json')}", params={**TWO_LAYERS[name], **extra}, input_shape=(seq,))


def _expert_rows(result, leaf: str = "") -> list[int]:
    """Rows of the forward matmuls run by expert modules (``.experts`` in the path) ending with ``leaf``."""
    return [r.input_shapes[0][0] for r in result.records if r.phase == "forward" and r.op == "aten.mm"
            and ".experts" in r.module and r.module.endswith(leaf)]


def test_every_example_config_is_a_full_size_published_shape():
    """The shipped configs build (on meta) to their published parameter counts (millions, rounded)."""
    published_m = {"bert-large": 336, "gpt2-large": 774, "opt-1.3b": 1316, "t5-base": 223, "switch-base-8": 619}
    for name, want in published_m.items():
        model = resolve(f"hf:{EXAMPLES / (name + '.json')}").build()
        assert type(model).__name__ == HEADS[name]
        assert round(sum(p.numel() for p in model.parameters()) / 1e6) == want, name


@pytest.mark.parametrize("name", sorted(TWO_LAYERS))
def test_each_family_walks_on_its_own_loss(name):
    spec = _spec(name)
    result = count(spec, batch_size=BATCH)
    built = spec.build()
    assert type(built).__name__ == HEADS[name]
    assert result.walk.sample_shape == (SEQ,) and result.params == sum(p.numel() for p in built.parameters())
    assert not result.unpriced_ops or set(result.unpriced_ops) <= {"aten.topk", "aten.histc"}  # MoE routing
    forward = [r for r in result.records if r.phase == "forward"]
    assert any(r.op == "aten.embedding" and r.input_dtypes[-1] == "int64" for r in forward)
    # the loss is the model's: computed inside its forward, nothing added by traincost in "(loss)"
    assert not [r for r in forward if r.module == "(loss)"]
    vocab = json.loads((EXAMPLES / f"{name}.json").read_text())["vocab_size"]
    nll = [r for r in forward if r.op == "aten.nll_loss_forward" and r.input_shapes[0][-1] == vocab]
    # every position of every sequence is a label (transformers < 5 drops each sequence's last for causal LMs)
    assert nll and nll[0].input_shapes[0][0] in (BATCH * SEQ, BATCH * (SEQ - 1))
    assert any(r.phase == "backward" for r in result.records) and result.flops["optimizer"] > 0
    assert any("the model's own loss" in a for a in result.walk.assumptions)
    estimate = traincost.predict(spec, device="A100", batch_size=BATCH, precision="bf16", correction=False)
    assert estimate.device["profile_source"] == "datasheet" and estimate.model == spec.label
    assert estimate.iteration_ms > 0 and estimate.fits


def test_pretraining_head_gets_its_sentence_label():
    result = count(_spec("bert-large"), batch_size=BATCH)
    nsp = [r for r in result.records if r.op == "aten.nll_loss_forward" and r.input_shapes[0] == (BATCH, 2)]
    assert nsp, "BertForPreTraining's next-sentence loss (2 classes per sequence) is part of the step"


def test_seq2seq_walks_an_encoder_and_a_decoder():
    result = count(_spec("t5-base"), batch_size=BATCH)
    for phase in ("forward", "backward"):
        modules = {r.module.split(".")[0] for r in result.records if r.phase == phase}
        assert {"encoder", "decoder"} <= modules, phase
    cross = [r for r in result.records if r.phase == "forward" and "EncDecAttention" in r.module
             and r.op == "aten.mm"]
    assert cross, "the decoder's cross-attention attends to the encoder output"
    assert any("decoder sequence" in a for a in result.walk.assumptions)


def test_switch_experts_see_their_capacity_of_tokens():
    """Top-1 of 8 experts, batch 2 x 16 tokens: ceil(16 / 8) = 2 tokens per sequence reach each expert, 4 in
    all; an expert capacity of 1 token per sequence caps it at 2. Every expert runs, with its own weights."""
    free = count(_spec("switch-base-8"), batch_size=BATCH)
    assert set(_expert_rows(free, ".wi")) == {BATCH * math.ceil(SEQ / 8)}
    experts = {r.module.split(".experts.")[1].split(".")[0] for r in free.records
               if ".experts.expert_" in r.module and r.phase == "forward"}
    assert experts == {f"expert_{i}" for i in range(8)}
    assert len(_expert_rows(free, ".wi")) == 2 * 8  # one sparse layer each in the encoder and the decoder
    grads = [r for r in free.records if r.phase == "optimizer" and r.n_tensors > 1]
    assert max(r.n_tensors for r in grads) == sum(1 for _ in _spec("switch-base-8").build().parameters())
    assert any(a.startswith(datadep.ROUTING_PREFIX) and "top-1 of 8 experts" in a and "4 tokens per expert of 32"
               in a for a in free.walk.assumptions)
    capped = count(_spec("switch-base-8", expert_capacity=1), batch_size=BATCH)
    assert set(_expert_rows(capped, ".wi")) == {BATCH * 1}
    assert any("capacity 1 tokens per sequence, 2 tokens per expert" in a for a in capped.walk.assumptions)
    assert capped.flops["forward"] < free.flops["forward"]


def test_mixtral_top2_experts_get_tokens_times_k_over_experts():
    """Top-2 of 8 experts, 2 x 16 tokens: 32 x 2 / 8 = 8 rows per expert matmul (gate-up and down in
    transformers 5, w1/w3/w2 before), every one of 8 experts in each of 2 layers."""
    result = count(_spec("mixtral-small"), batch_size=BATCH)
    rows = _expert_rows(result)
    assert set(rows) == {BATCH * SEQ * 2 // 8} and len(rows) in (8 * 2 * 2, 8 * 2 * 3)
    assert any("top-2 of 8 experts, 8 tokens per expert of 32" in a for a in result.walk.assumptions)
    # outside an MoE block the data-dependent answers are unchanged: every element selected
    import torch

    x = torch.empty((4, 3), dtype=torch.bool, device="meta")
    assert datadep.lookup(torch.ops.aten.nonzero.default, (x,), {})[1].shape == (12, 2)
    scope = datadep.Routing(experts=4, top_k=1, tokens_per_expert=2, text=datadep.ROUTING_PREFIX + "t")
    with datadep.routing(scope):
        assert datadep.lookup(torch.ops.aten.nonzero.default, (x,), {})[1].shape == (2, 2)
        hit = datadep.lookup(torch.ops.aten.nonzero.default, (torch.empty(5, device="meta"),), {})[1]
        assert hit.shape == (4, 1)  # experts + a sentinel slot: the 4 real experts are hit
        reads = [datadep.lookup(torch.ops.aten._local_scalar_dense.default,
                                (torch.empty((), dtype=torch.long, device="meta"),), {})[1] for _ in range(5)]
        assert reads == [0, 1, 2, 3, 0]
    fresh = torch.empty((4, 3), dtype=torch.bool, device="meta")
    assert datadep.lookup(torch.ops.aten.nonzero.default, (fresh,), {})[1].shape == (12, 2)
    # a mask routed in the block selects as much again after it (the backward of x[mask] runs there)
    key, again = datadep.lookup(torch.ops.aten.nonzero.default, (x,), {})
    assert key == scope.text and again.shape == (2, 2)


def test_boolean_mask_indexing_selects_like_nonzero():
    """``x[mask]`` has no meta kernel (it calls nonzero): every element outside an MoE block, an expert's
    tokens inside (transformers < 5 routes Switch tokens this way)."""
    import torch

    x, mask = torch.empty((4, 3, 8), device="meta"), torch.empty((4, 3), dtype=torch.bool, device="meta")
    key, out = datadep.lookup(torch.ops.aten.index.Tensor, (x, [mask]), {})
    assert key == "aten.index" and out.shape == (12, 8)
    scope = datadep.Routing(experts=4, top_k=1, tokens_per_expert=5, text=datadep.ROUTING_PREFIX + "t")
    with datadep.routing(scope):
        key, out = datadep.lookup(torch.ops.aten.index.Tensor, (x, [mask]), {})
        assert key == scope.text and out.shape == (5, 8)
        key, out = datadep.lookup(torch.ops.aten.index_put_.default, (x, [mask], torch.empty((5, 8),
                                                                                     device="meta")), {})
        assert out.shape == x.shape
    assert datadep.describe(__import__("collections").Counter({"aten.index": 2})) == (
        "boolean-mask indexing x[mask]: every element selected unless the mask's count is known (x2)",)


def test_tokens_per_expert_by_hand():
    config = hf_models.load_config(f"hf:{EXAMPLES / 'switch-base-8.json'}")
    assert hf_models.tokens_per_expert(config, 4, 1024) == 4 * 64       # 1024 / 8 = 128 > capacity 64
    assert hf_models.tokens_per_expert(config, 4, 256) == 4 * 32
    mixtral = hf_models.load_config(f"hf:{EXAMPLES / 'mixtral-small.json'}")
    assert hf_models.tokens_per_expert(mixtral, 3, 100) == 3 * math.ceil(100 * 2 / 8)


def test_sdpa_and_eager_attention_record_different_kernels():
    small = {"num_hidden_layers": 1, "hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": 4,
             "intermediate_size": 128, "vocab_size": 100, "max_position_embeddings": 64}
    ops = {}
    for attention in ("sdpa", "eager"):
        result = count(resolve("hf:MistralConfig", params={**small, "attn_implementation": attention}),
                       batch_size=BATCH, seq_len=SEQ)
        ops[attention] = {r.op for r in result.records if ".self_attn" in r.module and r.phase == "forward"}
        assert f"attention: {attention}" in result.walk.assumptions
    assert "aten._scaled_dot_product_efficient_attention" in ops["sdpa"]
    assert not ({"aten.bmm", "aten._softmax"} & ops["sdpa"])
    assert {"aten.bmm", "aten._softmax"} <= ops["eager"]
    assert not any("scaled_dot_product" in op for op in ops["eager"])
    with pytest.raises(SpecError, match="does not support attn_implementation='sdpa'"):
        _spec("switch-base-8", attn_implementation="sdpa").build()


def test_default_sequence_length_is_the_position_limit_capped():
    assert resolve("hf:GPT2Config").sample_shape() == (1024,)
    assert resolve("hf:t5").sample_shape() == (512,)
    mixtral = resolve(f"hf:{EXAMPLES / 'mixtral-small.json'}")        # 4096 positions
    assert mixtral.sample_shape() == (hf_models.MAX_DEFAULT_SEQ_LEN,)
    assert any("max_position_embeddings 4096, capped at 2048" in a for a in mixtral.training_inputs().assumes)
    assert resolve("hf:GPT2Config", input_shape=(7,)).sample_shape() == (7,)


def test_spec_round_trip_and_dtype():
    spec = _spec("gpt2-large")
    assert spec.kind == "hf" and spec.input_dtype == "int64"
    assert ArchSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert resolve("hf:gpt2", input_dtype="int32").input_dtype == "int32"
    with pytest.raises(SpecError, match="token ids"):
        resolve("hf:gpt2", input_dtype="float32")
    with pytest.raises(SpecError, match=r"\(seq_len,\)"):
        resolve("hf:gpt2", input_shape=(3, 4))


def test_api_takes_token_inputs_like_the_spec_path():
    small = {"n_layer": 1, "n_embd": 64, "n_head": 4, "vocab_size": 100, "n_positions": 64}
    spec = ArchSpec("hf", "hf:GPT2Config", small, (SEQ,), "int64")
    by_spec = traincost.predict(spec, device="A100", batch_size=BATCH, correction=False)
    by_len = traincost.predict(resolve("hf:GPT2Config", params=small), device="A100", batch_size=BATCH,
                               seq_len=SEQ, correction=False)
    assert by_len.iteration_ms == by_spec.iteration_ms and by_len.flops == by_spec.flops
    assert any(n.startswith("the walk assumed: causal-lm head") for n in by_len.notes)
    rows = traincost.compare(resolve("hf:GPT2Config", params=small), devices=["A100", "H100"],
                             batch_size=BATCH, seq_len=SEQ, correction=False)
    assert rows[0].iteration_ms == by_spec.iteration_ms and rows[0].flops == by_spec.flops


def test_api_input_dtype_reaches_a_user_token_model(tmp_path):
    (tmp_path / "tok.py").write_text(
        "from torch import nn\n"
        "def make():\n"
        "    return nn.Sequential(nn.Embedding(50, 8), nn.Flatten(), nn.Linear(8 * 6, 5))\n")
    factory = f"{tmp_path / 'tok.py'}:make"
    with pytest.raises(ModelBuildError):  # float inputs cannot index an embedding
        traincost.predict(factory, device="A100", batch_size=2, input_shape=(6,), correction=False)
    given = traincost.predict(factory, device="A100", batch_size=2, input_shape=(6,), input_dtype="int64",
                              correction=False)
    by_len = traincost.predict(factory, device="A100", batch_size=2, seq_len=6, correction=False)
    by_spec = traincost.predict(resolve(factory, input_shape=(6,), input_dtype="int64"), device="A100",
                                batch_size=2, correction=False)
    assert given.iteration_ms == by_len.iteration_ms == by_spec.iteration_ms
    with pytest.raises(SpecError, match="disagrees with input_shape"):
        traincost.predict(factory, device="A100", batch_size=2, seq_len=6, input_shape=(7,))
    with pytest.raises(SpecError, match="token ids"):
        traincost.count(factory, batch_size=2, seq_len=6, input_dtype="float32")


@pytest.mark.parametrize("given, message", [
    ("hf:missing/config.json", "config file not found: missing/config.json"),
    ("hf:GPT2Confg", "unknown transformers config 'GPT2Confg'.*did you mean: hf:GPT2Config"),
    ("hf:gpt_2", "did you mean: hf:gpt2"),
])
def test_bad_names(given, message):
    with pytest.raises(SpecError, match=message):
        resolve(given)


def test_bad_config_files(tmp_path):
    cases = {"no_type.json": ({"hidden_size": 8}, "the key 'model_type' is missing"),
             "bad_type.json": ({"model_type": "gpt3"}, "model_type 'gpt3' is not known.*did you mean:.*gpt2"),
             "list.json": ([1], "a transformers config is a JSON object")}
    for file, (data, message) in cases.items():
        (tmp_path / file).write_text(json.dumps(data))
        with pytest.raises(SpecError, match=message):
            resolve(f"hf:{tmp_path / file}")
    with pytest.raises(SpecError, match="has no field 'n_layers'; did you mean: n_layer"):
        resolve("hf:GPT2Config", params={"n_layers": 2})
    with pytest.raises(SpecError, match="task must be one of"):
        resolve("hf:GPT2Config", params={"task": "vision"})
    with pytest.raises(SpecError, match="no masked-lm head for 'gpt2'"):
        resolve("hf:GPT2Config", params={"task": "masked-lm"})


def test_cli_seq_len_and_errors():
    from click.testing import CliRunner

    from traincost.cli import main

    runner = CliRunner()
    ok = runner.invoke(main, ["count", "hf:GPT2Config", "--seq-len", "8", "--batch-size", "1", "--json"])
    assert ok.exit_code == 0, ok.output
    out = json.loads(ok.output)
    assert out["input_shape"] == [8] and any("causal-lm head" in a for a in out["assumptions"])
    clash = runner.invoke(main, ["count", "hf:GPT2Config", "--seq-len", "8", "--input-shape", "9",
                                 "--batch-size", "1"])
    assert clash.exit_code == 2 and "seq_len 8 disagrees with input_shape" in clash.output
    bad = runner.invoke(main, ["predict", "hf:nowhere.json", "--device", "A100", "--batch-size", "1"])
    assert bad.exit_code == 2 and "config file not found: nowhere.json" in bad.output
    assert "Traceback" not in bad.output
