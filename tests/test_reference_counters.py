"""The walk against independent FLOP counters: fvcore (forward) and torch's FlopCounterMode (step).

fvcore counts one FLOP per multiply-add and no bias; traincost counts 2 per multiply-add and one
per bias addition, so on the conv + matmul part ``ours == 2 * fvcore + bias outputs`` exactly.
FlopCounterMode counts 2 per multiply-add of mm/bmm/conv/attention (forward and backward), no
bias, no elementwise work.
"""

from __future__ import annotations

import warnings
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import traincost
from traincost import resolve

fvcore_nn = pytest.importorskip("fvcore.nn")
torchvision = pytest.importorskip("torchvision")

#: Ops fvcore counts besides conv and matmul; switched off so that only conv + matmul remain.
_FVCORE_NON_MATMUL = ("aten::batch_norm", "aten::group_norm", "aten::layer_norm", "aten::instance_norm",
                      "aten::upsample_nearest2d", "aten::upsample_bilinear2d", "aten::adaptive_avg_pool2d",
                      "aten::grid_sampler")
CORE = ("conv", "matmul", "attention")


def _zero(_inputs: object, _outputs: object) -> int:
    return 0


def fvcore_conv_matmul_macs(model: nn.Module, x: torch.Tensor) -> int:
    analysis = fvcore_nn.FlopCountAnalysis(model, x)
    # a handle of None does not remove fvcore's built-in handle (it still counts): count zero instead
    analysis.set_op_handle(**{name: _zero for name in _FVCORE_NON_MATMUL})
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        counted = {op for op, n in analysis.by_operator().items() if n}
        assert counted <= {"conv", "linear", "addmm", "matmul", "mm", "bmm", "einsum"}, counted
        return int(analysis.total())


def bias_outputs(model: nn.Module, x: torch.Tensor) -> int:
    """Output elements of every conv/linear that adds a bias (one FLOP each in traincost)."""
    total = 0

    def hook(module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        nonlocal total
        if getattr(module, "bias", None) is not None:
            total += output.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return total


@pytest.mark.parametrize(("family", "params"), [
    ("vgg", {"blocks": 3, "convs_per_block": 2, "filters": 16, "batchnorm": False, "dense_layers": 1,
             "dense_width": 64, "input_size": 32, "classes": 10}),
    ("vgg", {"blocks": 2, "convs_per_block": 1, "filters": 8, "batchnorm": True, "dense_layers": 2,
             "dense_width": 32, "input_size": 16, "classes": 7}),
    ("resnet", {"blocks": [2, 1, 1], "block": "bottleneck", "width": 16, "dense_layers": 1,
                "dense_width": 64, "input_size": 64, "classes": 10}),
    ("resnet", {"blocks": [1, 1], "block": "basic", "width": 8, "input_size": 32, "classes": 10}),
    ("fc", {"input_features": 48, "hidden_layers": 3, "hidden_width": 40, "classes": 10}),
    ("fc", {"input_features": 20, "hidden_layers": 1, "hidden_width": 30, "batchnorm": False,
            "dropout": 0, "classes": 5}),
])
def test_forward_conv_matmul_flops_equal_twice_fvcore(family: str, params: dict) -> None:
    batch = 3
    spec = resolve(family, params=params)
    torch.manual_seed(0)
    model = traincost.flopmodel.families.build(spec.family_params()).eval()
    x = torch.randn(batch, *spec.sample_shape())
    macs = fvcore_conv_matmul_macs(model, x)
    bias = bias_outputs(model, x)

    result = traincost.count(spec, batch_size=batch)
    ours = sum(r.flops for r in result.records if r.phase == "forward" and r.op_class in ("conv", "matmul"))
    assert macs > 0
    assert ours == 2 * macs + bias


def _flop_counter_step(name: str, batch: int) -> tuple[int, dict]:
    """FlopCounterMode around forward + cross-entropy + backward, all on the meta device."""
    with torch.device("meta"):
        model = torchvision.models.get_model(name)
        x = torch.empty(batch, *resolve(name).sample_shape())
        target = torch.zeros(batch, dtype=torch.long)
    counter = FlopCounterMode(display=False)
    with counter:
        F.cross_entropy(model(x), target).backward()
    return counter.get_total_flops(), counter.get_flop_counts()["Global"]


#: Measured ratios (walk / FlopCounterMode, fwd + bwd): conv + matmul + attention 1.00000004 for
#: resnet50, 1.0003 for vgg16 (conv bias adds), 1.0069 for vit_b_16; every op class 1.010, 1.0007
#: and 1.0093 (batch norm, layer norm, softmax and elementwise work FlopCounterMode does not count).
@pytest.mark.parametrize("name", ["resnet50", "vgg16", "vit_b_16"])
def test_training_step_matches_flop_counter_mode(name: str, counted) -> None:
    batch = 2
    reference, per_op = _flop_counter_step(name, batch)
    result = counted(name, batch)
    by = Counter()
    for r in result.records:
        by[(r.phase, r.op_class)] += r.flops
    core = sum(v for (phase, cls), v in by.items() if cls in CORE and phase != "optimizer")
    everything = sum(v for (phase, _), v in by.items() if phase != "optimizer")

    assert core == pytest.approx(reference, rel=0.01)
    assert everything == pytest.approx(reference, rel=0.03)
    assert everything >= core
    # Tighter: on meta, FlopCounterMode sees ViT's attention as the math path (2 bmm forward, 4
    # backward, all of one size); the walk records the fused kernel CUDA runs, whose backward
    # recomputes the scores: one bmm more, so the walk is above by exactly a sixth of the bmm FLOPs.
    recompute = per_op.get(torch.ops.aten.bmm, 0) // 6
    assert core == pytest.approx(reference + recompute, rel=1e-3)
    if name == "vit_b_16":
        assert recompute > 0 and by[("forward", "attention")] > 0
    if name in ("resnet50", "vgg16"):  # forward runs only convolution and the head's addmm
        ref_forward = per_op[torch.ops.aten.convolution] + per_op[torch.ops.aten.addmm]
        ours_forward = sum(v for (phase, cls), v in by.items() if cls in CORE and phase == "forward")
        assert ours_forward == pytest.approx(ref_forward, rel=1e-3)


def test_flop_counter_reference_scales_with_batch(counted) -> None:
    """The comparison is not a coincidence of one batch size: both sides double with the batch."""
    ref2, _ = _flop_counter_step("resnet50", 2)
    ref4, _ = _flop_counter_step("resnet50", 4)
    ours4 = sum(r.flops for r in counted("resnet50", 4).records
                if r.op_class in CORE and r.phase != "optimizer")
    assert ref4 == 2 * ref2
    assert ours4 == pytest.approx(ref4, rel=0.01)
