"""Tests for traincost.flopmodel.walker: one training step recorded at the aten level on meta."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest
import torch
from torch import nn

import traincost
from traincost import ModelBuildError, resolve
from traincost.errors import TraincostError, TraincostUsageError
from traincost.flopmodel import formulas
from traincost.flopmodel.records import PHASES
from traincost.flopmodel.walker import StepConfig, walk

torchvision = pytest.importorskip("torchvision")

CORE = ("conv", "matmul", "attention")


def tiny_vit() -> nn.Module:
    """torchvision's VisionTransformer at toy size: patch conv, 2 encoder layers, layer norms, MHA."""
    return torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                                                hidden_dim=32, mlp_dim=64, num_classes=10)


def core_flops(result: traincost.CountResult, phases: tuple[str, ...] = PHASES) -> int:
    return sum(r.flops for r in result.records if r.op_class in CORE and r.phase in phases)


def device_optimizer_ops(result: traincost.CountResult) -> list[str]:
    """Optimizer-phase kernels on the device (no views, no host-side step counters)."""
    return [r.op for r in result.records
            if r.phase == "optimizer" and r.op_class != "free" and not r.host_only]


# --------------------------------------------------------------------------------------------
# phases and attribution


def test_phases_in_order_and_indices(tiny) -> None:
    result = traincost.count(tiny["resnet"], batch_size=2)
    phases = [r.phase for r in result.records]
    assert set(phases) == set(PHASES)
    assert phases == sorted(phases, key=PHASES.index)  # forward ... backward ... optimizer
    assert [r.index for r in result.records] == list(range(len(result.records)))


def test_family_conv_attributed_to_module_path_forward_and_backward(tiny) -> None:
    result = traincost.count(tiny["resnet"], batch_size=2)
    convs = [r for r in result.records if r.module == "stages.0.0.conv1"]
    ops = Counter((r.phase, r.op) for r in convs)
    assert ops[("forward", "aten.convolution")] == 1
    assert ops[("backward", "aten.convolution_backward")] == 1
    # stem conv: 3 -> 8 channels, 7x7, stride 2 on 32x32 -> 16x16: 2 * batch * 8 * 3 * 7 * 7 * 16 * 16
    stem = [r for r in result.records if r.module == "stem.conv" and r.op == "aten.convolution"]
    assert len(stem) == 1 and stem[0].flops == 2 * 2 * 8 * 3 * 7 * 7 * 16 * 16


def test_torchvision_conv1_attribution() -> None:
    result = traincost.count(torchvision.models.resnet18(), batch_size=2, input_shape=(3, 32, 32))
    first_forward = next(r for r in result.records if r.op == "aten.convolution")
    last_backward = [r for r in result.records if r.op == "aten.convolution_backward"][-1]
    assert first_forward.module == "conv1" and first_forward.phase == "forward"
    assert last_backward.module == "conv1" and last_backward.phase == "backward"
    assert {r.module for r in result.records if r.op == "aten.convolution"} >= {
        "conv1", "layer1.0.conv1", "layer4.1.conv2", "layer2.0.downsample.0"}


def test_loss_and_optimizer_pseudo_modules(tiny) -> None:
    result = traincost.count(tiny["vgg"], batch_size=2)
    by_op = {(r.phase, r.op): r.module for r in result.records}
    assert by_op[("forward", "aten._log_softmax")] == "(loss)"
    assert by_op[("forward", "aten.nll_loss_forward")] == "(loss)"
    assert by_op[("backward", "aten.nll_loss_backward")] == "(loss)"
    assert by_op[("backward", "aten._log_softmax_backward_data")] == "(loss)"
    assert {r.module for r in result.records if r.phase == "optimizer"} == {"(optimizer)"}
    assert "(optimizer)" not in {r.module for r in result.records if r.phase != "optimizer"}
    assert by_op[("forward", "aten.addmm")] in ("head.dense0.linear", "head.fc")


# --------------------------------------------------------------------------------------------
# precision


@pytest.mark.parametrize(("precision", "dtype"), [("bf16", "bfloat16"), ("fp16", "float16")])
def test_autocast_casts_and_dtypes(precision: str, dtype: str) -> None:
    result = traincost.count(tiny_vit(), batch_size=2, input_shape=(3, 32, 32), precision=precision)
    forward = [r for r in result.records if r.phase == "forward"]
    casts = [r for r in forward if r.op == "aten._to_copy"]
    assert casts and all(r.op_class == "copy" and r.bytes > 0 for r in casts)
    assert any(r.input_dtypes == ("float32",) and r.output_dtypes == (dtype,) for r in casts)
    core = [r for r in result.records if r.op_class in CORE and r.phase != "optimizer"]
    assert {r.op_class for r in core} == set(CORE)  # patch conv, linears, fused attention
    for r in core:
        if r.op_class == "attention":  # q, k, v (backward: grad, q, k); then fp32 logsumexp, rng state
            assert set(r.input_dtypes[:3]) == {dtype}, (r.op, r.input_dtypes)
        else:
            assert set(r.input_dtypes) == {dtype}, (r.op, r.input_dtypes)
    # the attention runs the flash kernel CUDA picks for half precision
    assert any(r.op == "aten._scaled_dot_product_flash_attention" for r in forward)
    norms = [r for r in forward if r.op == "aten.native_layer_norm"]
    assert len(norms) == 2 * 2 + 1 and all(r.input_dtypes[0] == "float32" for r in norms)
    softmax = [r for r in forward if r.op_class == "softmax"]
    assert softmax and all(r.input_dtypes[0] == "float32" for r in softmax)
    # the fp32 master weights get fp32 gradients: the optimizer updates float32 tensors
    updates = [r for r in result.records if r.phase == "optimizer" and r.op.startswith("aten._foreach_")]
    assert updates and all(set(r.input_dtypes) == {"float32"} for r in updates)


def test_autocast_casts_conv_and_linear_once_per_parameter(tiny) -> None:
    """Autocast caches the cast of a leaf weight: one forward cast per conv/linear weight."""
    result = traincost.count(tiny["vgg"], batch_size=2, precision="bf16")
    weight_casts = [r for r in result.records if r.phase == "forward" and r.op == "aten._to_copy"
                    and r.output_dtypes == ("bfloat16",) and len(r.input_shapes[0]) in (2, 4)
                    and r.input_shapes[0][0] != 2]
    convs_and_linears = [r for r in result.records if r.phase == "forward" and r.op_class in CORE]
    assert len({r.input_shapes[0] for r in weight_casts}) >= 3
    assert all(set(r.input_dtypes) == {"bfloat16"} for r in convs_and_linears)


@pytest.mark.parametrize("precision", ["fp32", "tf32"])
def test_full_precision_has_no_casts(precision: str, tiny) -> None:
    result = traincost.count(tiny["resnet"], batch_size=2, precision=precision)
    assert not [r for r in result.records if r.op == "aten._to_copy"]
    assert {d for r in result.records for d in r.input_dtypes} <= {"float32", "int64", "bool"}


def test_tf32_walks_the_same_ops_as_fp32(tiny) -> None:
    fp32 = traincost.count(tiny["vgg"], batch_size=2, precision="fp32")
    tf32 = traincost.count(tiny["vgg"], batch_size=2, precision="tf32")
    assert [r.op for r in fp32.records] == [r.op for r in tf32.records]
    assert fp32.flops == tf32.flops and fp32.bytes == tf32.bytes
    assert tf32.walk.config.precision == "tf32"


def test_fp16_records_grad_scaler_ops(tiny) -> None:
    fp16 = traincost.count(tiny["vgg"], batch_size=2, precision="fp16")
    bf16 = traincost.count(tiny["vgg"], batch_size=2, precision="bf16")
    optim16 = [r.op for r in fp16.records if r.phase == "optimizer"]
    assert "aten._amp_foreach_non_finite_check_and_unscale_" in optim16
    assert "aten._amp_update_scale_" in optim16
    assert optim16.index("aten._amp_foreach_non_finite_check_and_unscale_") < optim16.index("aten._foreach_add_")
    unscale = next(r for r in fp16.records if r.op == "aten._amp_foreach_non_finite_check_and_unscale_")
    assert unscale.n_tensors == len(list(tiny["vgg"].build().parameters()))
    # the loss scaling multiply starts the backward pass
    first_backward = [r.op for r in fp16.records if r.phase == "backward"][:2]
    assert first_backward == ["aten.full", "aten.mul"]  # loss * scale
    assert not {"aten._amp_foreach_non_finite_check_and_unscale_", "aten._amp_update_scale_"} & {
        r.op for r in bf16.records}
    assert fp16.ops > bf16.ops


# --------------------------------------------------------------------------------------------
# layout


class _StrideProbe(nn.Module):
    """Identity that remembers whether what it saw was channels_last."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous())
        return x


def test_channels_last_changes_strides_not_flops() -> None:
    probe_in, probe_mid = _StrideProbe(), _StrideProbe()
    model = nn.Sequential(probe_in, nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          probe_mid, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    nchw = traincost.count(model, batch_size=2, input_shape=(3, 16, 16))
    nhwc = traincost.count(model, batch_size=2, input_shape=(3, 16, 16), channels_last=True)
    assert probe_in.seen == [False, True] and probe_mid.seen == [False, True]
    assert nchw.flops == nhwc.flops
    assert core_flops(nchw) == core_flops(nhwc)
    assert nhwc.walk.config.channels_last


@pytest.mark.parametrize("family", ["vgg", "resnet"])
def test_channels_last_same_total_flops_on_families(family: str, tiny) -> None:
    nchw = traincost.count(tiny[family], batch_size=2)
    nhwc = traincost.count(tiny[family], batch_size=2, channels_last=True)
    assert nchw.flops == nhwc.flops


# --------------------------------------------------------------------------------------------
# optimizers


def test_optimizer_ops_sgd_adam_adamw(tiny) -> None:
    spec = tiny["resnet"]
    n_params = len(list(spec.build().parameters()))
    ops = {name: device_optimizer_ops(traincost.count(spec, batch_size=2, optimizer=name))
           for name in ("sgd", "adam", "adamw")}
    # SGD with momentum: buf = momentum * buf + grad; p -= lr * buf
    assert ops["sgd"] == ["aten._foreach_mul_", "aten._foreach_add_", "aten._foreach_add_"]
    adam_kernels = {"aten._foreach_lerp_", "aten._foreach_mul_", "aten._foreach_addcmul_",
                    "aten._foreach_sqrt", "aten._foreach_div_", "aten._foreach_addcdiv_"}
    assert set(ops["adam"]) >= adam_kernels
    assert "aten._foreach_lerp_" not in ops["sgd"]
    # AdamW = Adam + the decoupled weight decay, p *= 1 - lr * wd, before the moments
    assert ops["adamw"][0] == "aten._foreach_mul_"
    assert ops["adamw"][1:] == ops["adam"]
    for name in ("sgd", "adam", "adamw"):
        result = traincost.count(spec, batch_size=2, optimizer=name)
        device = [r for r in result.records if r.phase == "optimizer" and r.op_class == "optimizer"
                  and not r.host_only]
        assert device and all(r.n_tensors == n_params and r.flops > 0 for r in device)
    adam = traincost.count(spec, batch_size=2, optimizer="adam")
    assert adam.flops["optimizer"] > traincost.count(spec, batch_size=2, optimizer="sgd").flops["optimizer"]
    # Adam's step counters live on the host: their ops launch no kernel
    assert any(r.host_only for r in adam.records if r.phase == "optimizer")


@pytest.mark.parametrize(("optimizer", "states"), [("sgd", 1), ("adam", 2), ("adamw", 2)])
def test_optimizer_state_memory(optimizer: str, states: int, tiny) -> None:
    result = traincost.count(tiny["fc"], batch_size=2, optimizer=optimizer)
    mem = result.walk.memory
    # one momentum buffer (sgd) or two moments (adam) per trainable parameter; the gradients have
    # exactly the trainable parameters' sizes
    assert mem.gradients_bytes > 0
    assert mem.optimizer_state_bytes == states * mem.gradients_bytes


# --------------------------------------------------------------------------------------------
# the user's model


def test_walk_does_not_modify_the_users_model() -> None:
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = traincost.count(model, batch_size=2, input_shape=(3, 32, 32), optimizer="adam")
    assert result.unpriced_ops == {}
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and BN running stats
    assert all(p.device.type == "cpu" and p.grad is None for p in model.parameters())
    assert not model.training and not any(m.training for m in model.modules())


def test_eval_mode_model_is_walked_as_a_training_step() -> None:
    model = resolve("fc", params={"input_features": 8, "hidden_layers": 1, "hidden_width": 4,
                                  "dropout": 0.5}).build()
    train = traincost.count(model, batch_size=4, input_shape=(8,))
    model.eval()
    evaluated = traincost.count(model, batch_size=4, input_shape=(8,))
    assert [r.op for r in train.records] == [r.op for r in evaluated.records]
    assert any(r.op in ("aten.bernoulli_", "aten.native_dropout") for r in evaluated.records)
    assert not model.training


def test_user_module_on_cpu_with_real_weights(data_dir) -> None:
    spec = resolve(f"{data_dir / 'user_model.py'}:make", input_shape=(3, 16, 16))
    model = spec.build()
    with torch.device("cpu"):
        cpu_model = type(model)(8, 10)
    meta_result = traincost.count(model, batch_size=4, input_shape=(3, 16, 16))
    cpu_result = traincost.count(cpu_model, batch_size=4, input_shape=(3, 16, 16))
    assert [(r.op, r.module, r.flops) for r in meta_result.records] == [
        (r.op, r.module, r.flops) for r in cpu_result.records]
    conv = next(r for r in cpu_result.records if r.op == "aten.convolution")
    assert conv.module == "conv"
    assert conv.flops == 2 * 4 * 8 * 3 * 3 * 3 * 16 * 16  # 2 * batch * Cout * Cin * k * k * H * W
    assert next(cpu_model.parameters()).device.type == "cpu"


def test_regnet_constructor_computing_on_tensors_walks() -> None:
    result = traincost.count("regnet_y_1_6gf", batch_size=1)
    assert result.params == 11_202_430
    assert result.unpriced_ops == {}
    assert result.flops["forward"] > 0 and result.flops["backward"] > result.flops["forward"]


def test_model_that_fails_on_the_input_is_a_build_error(data_dir) -> None:
    with pytest.raises(ModelBuildError, match=r"input \(2, 5, 16, 16\)") as info:
        traincost.count(f"{data_dir / 'user_model.py'}:make", batch_size=2, input_shape=(5, 16, 16))
    assert "\n" not in str(info.value)


def test_model_without_trainable_parameters() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ModelBuildError, match="no trainable parameters"):
        traincost.count(model, batch_size=2, input_shape=(4,))


def test_model_without_logits() -> None:
    class Scalar(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.ones(3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x * self.w).sum()

    with pytest.raises(ModelBuildError, match=r"\(batch, classes"):
        traincost.count(Scalar(), batch_size=2, input_shape=(3,))


def test_formula_error_is_not_blamed_on_the_model(monkeypatch, tiny) -> None:
    def broken(op, args, kwargs, out):  # noqa: ANN001
        raise formulas.FormulaError(f"{op}: cannot price arguments")

    monkeypatch.setattr(formulas, "price", broken)
    with pytest.raises(formulas.FormulaError):
        traincost.count(tiny["fc"], batch_size=2)


@pytest.mark.parametrize(("field", "value"), [
    ("batch_size", 0), ("batch_size", -3), ("batch_size", True), ("batch_size", 2.0),
    ("precision", "fp8"), ("optimizer", "lion"), ("channels_last", "yes"),
])
def test_step_config_validation(field: str, value: object) -> None:
    kwargs = {"batch_size": 2, field: value}
    with pytest.raises(TraincostUsageError, match=field.split("_")[0]) as info:
        StepConfig(**kwargs)
    assert repr(value) in str(info.value)


def test_unpriced_ops_are_listed_never_silently_zero() -> None:
    if "aten.lgamma" in formulas.registered_ops():
        pytest.skip("lgamma has a formula now; pick another op without one")

    class Gamma(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.lgamma(x.abs() + 1))

    result = traincost.count(Gamma(), batch_size=2, input_shape=(4,))
    assert result.unpriced_ops["aten.lgamma"] == 1
    unpriced = [r for r in result.records if not r.priced]
    assert all(r.op_class == "unpriced" and r.flops == 0 and r.bytes == 0 for r in unpriced)
    assert result.unpriced_ops == dict(Counter(r.op for r in unpriced))


# --------------------------------------------------------------------------------------------
# size


def test_huge_configuration_is_counted_without_allocating(tmp_path) -> None:
    """VGG, 1024 filters, 1024 px, batch 1024: about 38 TiB of training memory, walked on meta."""
    script = """
import json, resource
import traincost
spec = traincost.resolve("vgg", params={"blocks": 5, "filters": 1024, "input_size": 1024})
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = traincost.count(spec, batch_size=1024)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
first = next(r for r in result.records if r.op == "aten.convolution")
print(json.dumps({"grew_kib": after - before, "peak": result.peak_memory_bytes,
                  "first_conv": first.flops, "ops": result.ops}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["grew_kib"] < 2**20  # ru_maxrss is in KiB on Linux: < 1 GiB
    assert out["peak"] > 2**40  # more than a TiB would have been allocated
    assert out["first_conv"] == 2 * 1024 * 1024 * 3 * 3 * 3 * 1024 * 1024  # 2 * N * Cout * Cin * 3 * 3 * H * W


@pytest.mark.parametrize("model", ["vgg", "resnet", "inception", "fc", "vit"])
def test_conv_matmul_flops_linear_in_batch(model: str, tiny) -> None:
    def count(batch: int) -> traincost.CountResult:
        if model == "vit":
            return traincost.count(tiny_vit(), batch_size=batch, input_shape=(3, 32, 32))
        return traincost.count(tiny[model], batch_size=batch)

    two, six = count(2), count(6)
    for phase in ("forward", "backward"):
        assert core_flops(six, (phase,)) == 3 * core_flops(two, (phase,)) > 0
    assert six.flops["optimizer"] == two.flops["optimizer"]  # the update does not see the batch
    assert six.flops["total"] > two.flops["total"]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("name", ["resnet50", "vgg16", "vit_b_16", "inception_v3", "mobilenet_v3_small",
                                  "efficientnet_b0"])
def test_no_unpriced_ops_on_torchvision_models(name: str, precision: str, counted) -> None:
    result = counted(name, 2, precision=precision)
    assert result.unpriced_ops == {}
    assert all(r.priced for r in result.records)
    assert result.flops["forward"] > 0 and result.flops["backward"] > 0 and result.flops["optimizer"] > 0


def test_walk_function_directly(tiny) -> None:
    spec = tiny["fc"]
    w = walk(spec.build(), spec.sample_shape(), StepConfig(batch_size=3))
    assert w.sample_shape == (32,) and w.config.batch_size == 3
    # 32*16 + 16 + 2*16 (bn) + 16*16 + 16 + 2*16 + 16*10 + 10
    assert w.params == 32 * 16 + 16 + 2 * 16 + 16 * 16 + 16 + 2 * 16 + 16 * 10 + 10
    assert w.param_bytes == 4 * w.params
    assert isinstance(w.records, tuple) and w.unpriced_ops == {}


def test_library_errors_are_traincost_errors() -> None:
    assert issubclass(ModelBuildError, TraincostError)
    assert issubclass(formulas.FormulaError, TraincostError)


class _Dedup(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.unique(x)


class _WithUnique(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.dedup = _Dedup()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x) + self.dedup(x).sum()


def test_op_without_meta_kernel_names_the_op_and_its_module() -> None:
    with pytest.raises(ModelBuildError, match=r"aten\._unique2 has no meta-device implementation "
                                              r"\(called in module dedup during forward\)"):
        walk(_WithUnique(), (4,), StepConfig(batch_size=2))


def test_grouped_query_sdpa_repeats_kv_heads() -> None:
    """enable_gqa with 4 query heads over 2 K/V heads: the attention kernel sees 4 heads of each."""

    class GQA(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.q = nn.Linear(16, 16)
            self.kv = nn.Linear(16, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            b, s, _ = x.shape
            q = self.q(x).view(b, s, 4, 4).transpose(1, 2)
            k = self.kv(x).view(b, s, 2, 4).transpose(1, 2)
            out = nn.functional.scaled_dot_product_attention(q, k, k, enable_gqa=True)
            return out.transpose(1, 2).reshape(b, s, 16)

    result = walk(GQA(), (6, 16), StepConfig(batch_size=2))
    attn = [r for r in result.records if r.op == "aten._scaled_dot_product_efficient_attention"]
    assert attn and attn[0].input_shapes[:3] == ((2, 4, 6, 4),) * 3


def test_weights_tied_across_modules_stay_tied_after_a_walk() -> None:
    """One embedding shared by two stacks and the head (T5's layout): torch.func.functional_call alone leaves
    the stacks bound to the walk's meta tensor; the walk puts every module's own tensor back."""

    class Stack(nn.Module):
        def __init__(self, embed: nn.Embedding) -> None:
            super().__init__()
            self.embed_tokens = embed

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.embed_tokens(x)

    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.shared = nn.Embedding(10, 4)
            self.encoder, self.decoder = Stack(self.shared), Stack(self.shared)
            self.lm_head = nn.Linear(4, 10, bias=False)
            self.lm_head.weight = self.shared.weight

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lm_head(self.encoder(x) + self.decoder(x))

    model = Tied()
    weight = model.shared.weight
    first = walk(model, (3,), StepConfig(batch_size=2), torch.int64)
    assert model.encoder.embed_tokens.weight is weight and model.lm_head.weight is weight
    second = walk(model, (3,), StepConfig(batch_size=2), torch.int64)
    assert first.params == second.params == 10 * 4
    assert [r.op for r in first.records] == [r.op for r in second.records]
