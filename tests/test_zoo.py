"""Model zoo: every torchvision family, timm by name and as a module, and the data-dependent ops they need.

One fast model per family; the full sweep over timm and torchvision is ``benchmarks/coverage.py``.
"""

from __future__ import annotations

import pytest
import torch

import traincost
from traincost.errors import SpecError
from traincost.flopmodel import datadep
from traincost.flopmodel.arch import resolve
from traincost.flopmodel.count import load_model
from traincost.flopmodel.inputs import OBJECTS_PER_IMAGE

timm = pytest.importorskip("timm")


# ---------------------------------------------------------------------------------------------- data-dependent ops

def _meta(*shape, dtype=torch.float32):
    return torch.empty(shape, dtype=dtype, device="meta")


def test_nonzero_of_an_unknown_mask_selects_every_element():
    key, out = datadep.lookup(torch.ops.aten.nonzero.default, (_meta(4, 5, dtype=torch.bool),), {})
    assert key == "aten.nonzero" and out.shape == (20, 2) and out.dtype == torch.long


def test_a_sampler_mask_keeps_its_count_through_or_and_cat():
    """torchvision's BalancedPositiveNegativeSampler: zeros, ``mask[chosen] = 1``, then ``pos | neg``."""
    pos = _meta(2000, dtype=torch.uint8)
    datadep.carry("aten.zeros_like", (pos,), pos)
    datadep.carry("aten.index_put_", (pos, [_meta(128, dtype=torch.long)], _meta()), pos)
    neg = _meta(2000, dtype=torch.uint8)
    datadep.carry("aten.zeros_like", (neg,), neg)
    datadep.carry("aten.index_put_", (neg, [_meta(384, dtype=torch.long)], _meta()), neg)
    both = _meta(2000, dtype=torch.uint8)
    datadep.carry("aten.bitwise_or", (pos, neg), both)
    assert datadep.selected(both) == 512
    two = _meta(4000, dtype=torch.uint8)
    datadep.carry("aten.cat", ([both, both],), two)
    key, out = datadep.lookup(torch.ops.aten.nonzero.default, (two,), {})
    assert key == "aten.nonzero" and out.shape == (1024, 1)


def test_clamped_levels_share_the_elements_evenly():
    """A feature pyramid's LevelMapper: clamp to [2, 5], cast, minus 2; ``levels == k`` takes a quarter."""
    x = _meta(1000)
    clamped = _meta(1000)
    datadep.carry("aten.clamp", (x, 2, 5), clamped)
    as_int = _meta(1000, dtype=torch.long)
    datadep.carry("aten._to_copy", (clamped,), as_int)
    level = _meta(1000, dtype=torch.long)
    datadep.carry("aten.sub", (as_int, 2), level)
    first, outside = _meta(1000, dtype=torch.bool), _meta(1000, dtype=torch.bool)
    datadep.carry("aten.eq", (level, 0), first)
    datadep.carry("aten.eq", (level, 4), outside)
    assert datadep.selected(first) == 250 and datadep.selected(outside) == 0


def test_a_boolean_mask_index_takes_the_selected_rows():
    x, mask = _meta(10, 4), _meta(10, dtype=torch.bool)
    datadep.set_selected(mask, 3)
    key, out = datadep.lookup(torch.ops.aten.index.Tensor, (x, [mask]), {})
    assert key == "aten.index" and out.shape == (3, 4)
    key, _ = datadep.lookup(torch.ops.aten.index.Tensor, (x, [_meta(3, dtype=torch.long)]), {})
    assert key is None  # an integer index has a meta kernel: not an assumption


def test_a_value_read_on_the_host_is_false_or_one():
    read = torch.ops.aten._local_scalar_dense.default
    assert datadep.lookup(read, (_meta(dtype=torch.bool),), {}) == ("aten._local_scalar_dense", False)
    assert datadep.lookup(read, (_meta(dtype=torch.long),), {}) == ("aten._local_scalar_dense", 1)
    assert datadep.lookup(read, (torch.ones(()),), {}) == (None, None)  # real tensors are not assumed


# ---------------------------------------------------------------------------------------------- torchvision families

def test_detector_walks_with_targets_and_states_its_assumptions():
    result = traincost.count("fasterrcnn_mobilenet_v3_large_320_fpn", batch_size=2)
    assert result.unpriced_ops == {}
    assert result.walk.sample_shape == (3, 480, 640)
    said = " ".join(result.walk.assumptions)
    assert f"{OBJECTS_PER_IMAGE} objects per image" in said and "NMS: every box kept" in said
    # the box head sees the RoI sampler's 512 boxes per image, not the 2,000 proposals they are drawn from
    fc6 = [r for r in result.records if r.module == "roi_heads.box_head.fc6" and r.phase == "forward"
           and r.op == "aten.addmm"]
    assert fc6 and fc6[0].output_shapes[0][0] == 2 * 512


def test_mask_rcnn_heads_see_the_sampler_cap_of_positives():
    result = traincost.count("maskrcnn_resnet50_fpn", batch_size=2)
    assert result.unpriced_ops == {}
    head = [r for r in result.records if r.module.startswith("roi_heads.mask_head") and r.phase == "forward"
            and r.op == "aten.convolution"]
    assert head and head[0].input_shapes[0][0] == 2 * 128   # 25 % of 512 per image


def test_segmentation_model_builds_offline_at_520_px():
    result = traincost.count("lraspp_mobilenet_v3_large", batch_size=2)
    assert result.walk.sample_shape == (3, 520, 520) and result.unpriced_ops == {}


@pytest.mark.parametrize("name, shape", [("r3d_18", (3, 16, 112, 112)), ("s3d", (3, 128, 224, 224))])
def test_video_models_take_their_documented_clip(name, shape):
    assert resolve(name).sample_shape() == shape


def test_video_model_walks():
    result = traincost.count("r3d_18", batch_size=1)
    assert result.unpriced_ops == {}
    conv1 = next(r for r in result.records if r.op == "aten.convolution")
    assert conv1.input_shapes[0] == (1, 3, 16, 112, 112)


def test_optical_flow_takes_two_frames_and_an_l1_sequence_loss():
    result = traincost.count("raft_small", batch_size=1)
    assert result.unpriced_ops == {}
    assert "a pair of frames per sample" in result.walk.assumptions
    assert any(r.op == "aten.grid_sampler_2d_backward" for r in result.records)
    assert result.walk.memory.inputs_bytes == 2 * 3 * 368 * 496 * 4  # two fp32 frames


def test_vit_h_14_is_built_for_224_px_without_weights():
    assert load_model("vit_h_14").sample_shape == (3, 224, 224)


def test_quantized_models_point_to_their_float_model():
    with pytest.raises(SpecError, match="int8 inference model.*'resnet50'"):
        resolve("quantized_resnet50")


# ---------------------------------------------------------------------------------------------- timm

def test_timm_name_walks_at_its_pretrained_input_size():
    spec = resolve("timm:efficientnet_b3")
    assert load_model(spec).sample_shape == tuple(timm.get_pretrained_cfg("efficientnet_b3").input_size)
    result = traincost.count("timm:convnext_atto", batch_size=2)
    built = timm.create_model("convnext_atto", pretrained=False)
    assert result.unpriced_ops == {} and result.params == sum(p.numel() for p in built.parameters())


def test_timm_module_takes_its_input_size_from_its_config():
    model = timm.create_model("resnet10t", pretrained=False)
    result = traincost.count(model, batch_size=2)
    assert result.walk.sample_shape == tuple(model.pretrained_cfg["input_size"])


def test_timm_deprecated_alias_and_five_dimensional_attention():
    """``jx_nest_base`` maps to ``nest_base_jx``; NesT's attention is 5-D: the math path, not a recursion."""
    result = traincost.count("timm:jx_nest_base", batch_size=1)
    assert result.unpriced_ops == {}
    assert not any("flash" in r.op or "efficient_attention" in r.op for r in result.records)


def test_unknown_timm_name_lists_close_names():
    with pytest.raises(SpecError, match=r"unknown timm model 'convnxt_tiny'.*timm:convnext_tiny"):
        resolve("timm:convnxt_tiny")


def test_spec_round_trips_a_timm_name():
    spec = resolve("timm:resnet18")
    assert spec.to_dict()["model"] == "timm:resnet18"
    assert resolve(spec.to_dict()["model"]) == spec


def test_multi_scale_detector_walks_the_same_step_and_leaves_the_generator_alone():
    """Keypoint R-CNN trains at a random size of 640-800 px, drawn on the host: the walk draws from its own
    seeded generator, so two walks agree and the caller's generator is untouched."""
    before = torch.random.get_rng_state()
    first = traincost.count("keypointrcnn_resnet50_fpn", batch_size=1)
    assert torch.equal(torch.random.get_rng_state(), before)
    torch.rand(3)  # the caller's generator moves on; the walk does not follow it
    second = traincost.count("keypointrcnn_resnet50_fpn", batch_size=1)
    assert first.flops == second.flops and first.walk.sample_shape == second.walk.sample_shape
