"""Tests for traincost.flopmodel.formulas: each formula against hand arithmetic, cross-checks
against torch.utils.flop_counter, and op coverage of real training steps."""

from __future__ import annotations

import contextlib
from itertools import product

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map
from torch.utils.flop_counter import FlopCounterMode

from traincost.flopmodel.formulas import FREE_OPS, FormulaError, price, registered_ops
from traincost.flopmodel.records import OP_CLASSES, OpCost, TensorInfo

f32, bf16, f16, i64 = torch.float32, torch.bfloat16, torch.float16, torch.int64
aten = torch.ops.aten


def T(*shape, dtype=f32):
    return TensorInfo(tuple(shape), dtype)


def info(x):
    """A pytree with every tensor replaced by its TensorInfo (what the walker passes)."""
    return tree_map(lambda t: TensorInfo.of(t) if isinstance(t, torch.Tensor) else t, x)


def priced(op, *args, out=None, **kwargs) -> OpCost:
    cost = price(op, args, kwargs, out)
    assert cost is not None, op
    assert cost.op_class in OP_CLASSES
    return cost


def counted_flops(fn) -> int:
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


# ----------------------------------------------------------------------------- registry


def test_registered_and_free_ops_exist_in_torch():
    import torchvision  # noqa: F401  (registers the torchvision.* ops: nms, roi_align)

    missing = []
    for name in sorted(registered_ops() | FREE_OPS):
        ns, op = name.split(".", 1)
        try:
            getattr(getattr(torch.ops, ns), op)
        except (AttributeError, RuntimeError):
            missing.append(name)
    assert missing == []


def test_registered_and_free_are_disjoint():
    assert not (registered_ops() & FREE_OPS)


def test_unknown_op_returns_none():
    assert price("aten.definitely_not_an_op", (T(3),), {}, T(3)) is None
    # a real op without a formula is unpriced too, not zero
    assert price("aten.searchsorted", (T(10), T(3)), {}, T(3, dtype=i64)) is None


def test_histogram_is_an_index_and_an_add_per_element():
    assert price("aten.histc", (T(1000), 8), {}, T(8)) == OpCost(2000, 4000, 32, "reduction")


def test_sort_and_topk_cost_log2_n_compare_exchanges_per_element():
    # 4 rows of 1000: ceil(log2 1000) = 10 passes over 4000 elements; reads 16 kB, writes values + int64 indices
    got = price("aten.sort", (T(4, 1000), -1), {}, (T(4, 1000), T(4, 1000, dtype=i64)))
    assert got == OpCost(4000 * 10, 16000, 16000 + 32000, "reduction")
    # topk(x, k=5, dim=0) sorts along dim 0 (length 4: 2 passes)
    got = price("aten.topk", (T(4, 1000), 5, 0), {}, (T(5, 1000), T(5, 1000, dtype=i64)))
    assert got.flops == 4000 * 2 and got.bytes_written == 5000 * 4 + 5000 * 8


def test_nms_prices_every_pair_of_boxes():
    # 100 boxes: 4950 pairs x 12 FLOPs; the 100 x ceil(100/64)=2 words of the suppression mask written
    got = price("torchvision.nms", (T(100, 4), T(100), 0.7), {}, T(100, dtype=i64))
    assert got == OpCost(12 * 100 * 100 // 2, 1600 + 400, 100 * 2 * 8 + 800, "reduction")


def test_roi_align_reads_one_value_per_bilinear_sample():
    # 10 boxes x 256 channels x 7 x 7 bins, sampling_ratio 2: 4 samples per bin, 8 FLOPs each
    out = T(10, 256, 7, 7)
    got = price("torchvision.roi_align", (T(2, 256, 50, 50), T(10, 5), 0.25, 7, 7, 2, False), {}, out)
    samples = 4 * 10 * 256 * 49
    assert got == OpCost(8 * samples, samples * 4 + 200, out.nbytes, "pool")


def test_grid_sampler_gathers_four_neighbours():
    out = T(2, 3, 8, 8)
    got = price("aten.grid_sampler_2d", (T(2, 3, 16, 16), T(2, 8, 8, 2), 0, 0, False), {}, out)
    n = 2 * 3 * 8 * 8
    assert got == OpCost(2 * 4 * n, 4 * n * 4 + 2 * 8 * 8 * 2 * 4, out.nbytes, "pool")


@pytest.mark.parametrize("op", sorted(FREE_OPS))
def test_free_ops_cost_nothing(op):
    assert price(op, (T(2, 3, 4), [3, 8]), {}, T(3, 8)) == OpCost(0, 0, 0, "free")


def test_malformed_arguments_raise_formula_error():
    with pytest.raises(FormulaError):
        price("aten.mm", (T(2, 3), T(4, 5)), {}, T(2, 5))
    with pytest.raises(FormulaError):
        price("aten.convolution", (None, None), {}, None)


# ----------------------------------------------------------------------------- matmul


def test_mm():
    c = priced("aten.mm", T(64, 128), T(128, 256), out=T(64, 256))
    assert c == OpCost(2 * 64 * 256 * 128, (64 * 128 + 128 * 256) * 4, 64 * 256 * 4, "matmul")


def test_addmm_counts_bias_add():
    # product 2*m*n*k + bias add m*n (one add per output element)
    c = priced("aten.addmm", T(256), T(64, 128), T(128, 256), out=T(64, 256))
    assert c.flops == 2 * 64 * 256 * 128 + 64 * 256
    assert c.bytes_read == (256 + 64 * 128 + 128 * 256) * 4
    assert c.bytes_written == 64 * 256 * 4
    # beta = 0: no bias add
    c0 = priced("aten.addmm", T(256), T(64, 128), T(128, 256), out=T(64, 256), beta=0)
    assert c0.flops == 2 * 64 * 256 * 128


def test_bmm_and_baddbmm():
    c = priced("aten.bmm", T(8, 32, 64), T(8, 64, 16), out=T(8, 32, 16))
    assert c.flops == 2 * 8 * 32 * 16 * 64 and c.op_class == "matmul"
    c = priced("aten.baddbmm", T(8, 32, 16), T(8, 32, 64), T(8, 64, 16), out=T(8, 32, 16))
    assert c.flops == 2 * 8 * 32 * 16 * 64 + 8 * 32 * 16


def test_matmul_against_flop_counter():
    a, b, bias = torch.randn(64, 128), torch.randn(128, 256), torch.randn(256)
    assert price("aten.mm", info((a, b)), {}, info(a @ b)).flops == counted_flops(lambda: a @ b)
    x, y = torch.randn(4, 32, 64), torch.randn(4, 64, 16)
    assert price("aten.bmm", info((x, y)), {}, info(x @ y)).flops == counted_flops(
        lambda: torch.bmm(x, y))
    # addmm: flop_counter counts the product only; we add the 64 * 256 bias adds
    ours = price("aten.addmm", info((bias, a, b)), {}, info(a @ b)).flops
    assert ours == counted_flops(lambda: torch.addmm(bias, a, b)) + 64 * 256


# ----------------------------------------------------------------------------- convolution


def conv_args(x, w, bias=None, stride=1, padding=0, dilation=1, transposed=False,
              output_padding=0, groups=1):
    n = len(x.shape) - 2
    return (x, w, bias, [stride] * n, [padding] * n, [dilation] * n, transposed,
            [output_padding] * n, groups)


def test_conv_forward():
    # conv 3->64, k7, s2, p3 on 1x3x224x224 -> 1x64x112x112
    args = conv_args(T(1, 3, 224, 224), T(64, 3, 7, 7), stride=2, padding=3)
    c = priced("aten.convolution", *args, out=T(1, 64, 112, 112))
    assert c.flops == 2 * 64 * 112 * 112 * 3 * 7 * 7
    assert c.bytes_read == (3 * 224 * 224 + 64 * 3 * 7 * 7) * 4
    assert c.bytes_written == 64 * 112 * 112 * 4
    assert c.op_class == "conv"
    # with a bias: + one add per output element
    args = conv_args(T(1, 3, 224, 224), T(64, 3, 7, 7), T(64), stride=2, padding=3)
    c = priced("aten.convolution", *args, out=T(1, 64, 112, 112))
    assert c.flops == 2 * 64 * 112 * 112 * 3 * 7 * 7 + 64 * 112 * 112


def test_grouped_and_depthwise_conv():
    # grouped: 64 -> 128, groups 4, k3 on 2x64x32x32: weight 128 x (64/4) x 3 x 3
    args = conv_args(T(2, 64, 32, 32), T(128, 16, 3, 3), padding=1, groups=4)
    assert priced("aten.convolution", *args, out=T(2, 128, 32, 32)).flops == (
        2 * 2 * 128 * 32 * 32 * 16 * 3 * 3)
    # depthwise: 32 channels, k3, groups 32: weight 32 x 1 x 3 x 3
    args = conv_args(T(2, 32, 56, 56), T(32, 1, 3, 3), padding=1, groups=32)
    assert priced("aten.convolution", *args, out=T(2, 32, 56, 56)).flops == (
        2 * 2 * 32 * 56 * 56 * 1 * 3 * 3)


def test_transposed_conv():
    # conv_transpose 16 -> 8, k4, s2, p1 on 2x16x8x8 -> 2x8x16x16; weight 16 x 8 x 4 x 4:
    # every input point meets the whole kernel: 2 * N * 8*8 * C_in * C_out * 4*4
    args = conv_args(T(2, 16, 8, 8), T(16, 8, 4, 4), stride=2, padding=1, transposed=True)
    assert priced("aten.convolution", *args, out=T(2, 8, 16, 16)).flops == (
        2 * 2 * 8 * 8 * 16 * 8 * 4 * 4)


def conv_bwd_args(go, x, w, mask, stride=1, padding=0, groups=1, transposed=False):
    n = len(x.shape) - 2
    return (go, x, w, [w.shape[0]], [stride] * n, [padding] * n, [1] * n, transposed,
            [0] * n, groups, list(mask))


@pytest.mark.parametrize("mask", list(product([False, True], repeat=3)))
def test_conv_backward_each_output_mask(mask):
    # forward: 2x64x28x28 -> 2x128x28x28, k3 p1: F = 2 * 2 * 128 * 28 * 28 * 64 * 3 * 3
    x, w, go = T(2, 64, 28, 28), T(128, 64, 3, 3), T(2, 128, 28, 28)
    fwd = 2 * 2 * 128 * 28 * 28 * 64 * 3 * 3
    out = tuple(t if m else None for t, m in zip((x, w, T(128)), mask))
    c = priced("aten.convolution_backward", *conv_bwd_args(go, x, w, mask, padding=1), out=out)
    # grad_input = F, grad_weight = F, grad_bias = one add per grad_output element
    assert c.flops == fwd * mask[0] + fwd * mask[1] + 2 * 128 * 28 * 28 * mask[2]
    # grad_output always read; weight only for grad_input; input only for grad_weight
    assert c.bytes_read == (2 * 128 * 28 * 28 + 128 * 64 * 9 * mask[0]
                            + 2 * 64 * 28 * 28 * mask[1]) * 4
    assert c.bytes_written == sum(t.nbytes for t in out if t is not None)
    assert c.op_class == "conv"


def test_conv_backward_grouped_costs_forward_flops():
    # depthwise 32 channels, k3: grad_input and grad_weight each cost the forward FLOPs
    x, w, go = T(2, 32, 56, 56), T(32, 1, 3, 3), T(2, 32, 56, 56)
    fwd = 2 * 2 * 32 * 56 * 56 * 1 * 3 * 3
    args = conv_bwd_args(go, x, w, (True, True, False), padding=1, groups=32)
    assert priced("aten.convolution_backward", *args, out=(x, w, None)).flops == 2 * fwd


def test_conv_backward_transposed():
    # transposed conv 16 -> 8 (weight 16 x 8 x 4 x 4), s2 p1, 2x16x8x8 -> 2x8x16x16
    x, w, go = T(2, 16, 8, 8), T(16, 8, 4, 4), T(2, 8, 16, 16)
    fwd = 2 * 2 * 8 * 8 * 16 * 8 * 4 * 4
    args = conv_bwd_args(go, x, w, (True, True, True), stride=2, padding=1, transposed=True)
    assert priced("aten.convolution_backward", *args, out=(x, w, T(8))).flops == (
        2 * fwd + 2 * 8 * 16 * 16)


def _real_conv_backward(x, w, stride, padding, groups, mask):
    y = torch.nn.functional.conv2d(x, w, None, stride, padding, 1, groups)
    go = torch.randn_like(y)
    args = (go, x, w, None, [stride] * 2, [padding] * 2, [1, 1], False, [0, 0], groups, mask)
    with FlopCounterMode(display=False) as fc:
        out = aten.convolution_backward(*args)
    return price("aten.convolution_backward", info(args), {}, info(out)).flops, fc.get_total_flops()


def test_conv_against_flop_counter():
    x, w = torch.randn(2, 8, 20, 20), torch.randn(16, 8, 3, 3)
    args = (x, w, None, [2, 2], [1, 1], [1, 1], False, [0, 0], 1)
    y = aten.convolution(*args)
    assert price("aten.convolution", info(args), {}, info(y)).flops == counted_flops(
        lambda: aten.convolution(*args))
    # transposed
    wt = torch.randn(8, 4, 3, 3)
    args_t = (x, wt, None, [2, 2], [1, 1], [1, 1], True, [1, 1], 1)
    yt = aten.convolution(*args_t)
    assert price("aten.convolution", info(args_t), {}, info(yt)).flops == counted_flops(
        lambda: aten.convolution(*args_t))
    # backward, groups = 1, every mask without the bias: exactly flop_counter's number
    for mask in ([True, True, False], [True, False, False], [False, True, False]):
        ours, theirs = _real_conv_backward(x, w, 2, 1, 1, mask)
        assert ours == theirs, mask
    # grouped: flop_counter multiplies grad_weight by groups (4); we charge the forward FLOPs
    xg, wg = torch.randn(2, 8, 20, 20), torch.randn(16, 2, 3, 3)
    fwd = counted_flops(lambda: torch.nn.functional.conv2d(xg, wg, None, 1, 1, 1, 4))
    ours, theirs = _real_conv_backward(xg, wg, 1, 1, 4, [False, True, False])
    assert ours == fwd and theirs == 4 * fwd


# ----------------------------------------------------------------------------- attention


def _sdpa_cuda_fake(fn):
    with FakeTensorMode():
        return fn()


def test_sdpa_forward_and_backward_match_flop_counter():
    def run():
        # q 2x4x128x64, k 2x4x96x64, v 2x4x96x32 (bf16, fake CUDA: no GPU needed)
        q = torch.empty(2, 4, 128, 64, device="cuda", dtype=bf16)
        k = torch.empty(2, 4, 96, 64, device="cuda", dtype=bf16)
        v = torch.empty(2, 4, 96, 32, device="cuda", dtype=bf16)
        fwd_args = (q, k, v, None, True)
        with FlopCounterMode(display=False) as fc:
            out = aten._scaled_dot_product_efficient_attention(*fwd_args)
        fwd = (price("aten._scaled_dot_product_efficient_attention", info(fwd_args), {},
                     info(out)), fc.get_total_flops())
        go = torch.empty(2, 4, 128, 32, device="cuda", dtype=bf16)
        bwd_args = (go, q, k, v, None, out[0], out[1], out[2], out[3], 0.0,
                    [True, True, True, False])
        with FlopCounterMode(display=False) as fc:
            grads = aten._scaled_dot_product_efficient_attention_backward(*bwd_args)
        bwd = (price("aten._scaled_dot_product_efficient_attention_backward", info(bwd_args),
                     {}, info(grads)), fc.get_total_flops())
        return fwd, bwd

    (fwd, fc_fwd), (bwd, fc_bwd) = _sdpa_cuda_fake(run)
    # QK^T: 2 * b*h * 128 * 96 * 64; PV: 2 * b*h * 128 * 96 * 32
    assert fwd.flops == fc_fwd == 2 * 8 * 128 * 96 * 64 + 2 * 8 * 128 * 96 * 32
    assert fwd.op_class == "attention"
    # bytes: q, k, v read; out + logsumexp written; no 128 x 96 score matrix
    assert fwd.bytes_read == (8 * 128 * 64 + 8 * 96 * 64 + 8 * 96 * 32) * 2
    assert fwd.bytes_written == 8 * 128 * 32 * 2 + 8 * 128 * 4
    # backward: scores, dP, dV, dQ, dK
    assert bwd.flops == fc_bwd == 2 * 8 * (128 * 64 * 96 + 128 * 32 * 96 + 96 * 128 * 32
                                           + 128 * 96 * 64 + 64 * 128 * 96)


@pytest.mark.parametrize("op", ["aten._scaled_dot_product_flash_attention",
                                "aten._scaled_dot_product_cudnn_attention",
                                "aten._scaled_dot_product_flash_attention_for_cpu"])
def test_sdpa_variants_same_formula(op):
    q = T(2, 12, 197, 64, dtype=bf16)
    out = (T(2, 12, 197, 64, dtype=bf16), T(2, 12, 197))
    assert priced(op, q, q, q, out=out).flops == 2 * (2 * 2 * 12 * 197 * 197 * 64)
    g = priced(op + "_backward", q, q, q, q, q, T(2, 12, 197), out=(q, q, q))
    assert g.flops == 5 * (2 * 2 * 12 * 197 * 197 * 64)


def test_sdpa_matches_flop_counter_functions_gqa():
    from torch.utils.flop_counter import sdpa_backward_flop_count, sdpa_flop_count

    q, k, v = (2, 8, 64, 32), (2, 2, 80, 32), (2, 2, 80, 16)
    go = (2, 8, 64, 16)
    fwd = priced("aten._scaled_dot_product_flash_attention_for_cpu",
                 T(*q), T(*k), T(*v), out=(T(*go), T(2, 8, 64)))
    assert fwd.flops == sdpa_flop_count(q, k, v)
    bwd = priced("aten._scaled_dot_product_flash_attention_for_cpu_backward",
                 T(*go), T(*q), T(*k), T(*v), T(*go), T(2, 8, 64), 0.0, False,
                 out=(T(*q), T(*k), T(*v)))
    assert bwd.flops == sdpa_backward_flop_count(go, q, k, v)


# ----------------------------------------------------------------------------- norms


def test_batch_norm_training_forward():
    x, c = T(2, 64, 56, 56), T(64)
    cost = priced("aten.native_batch_norm", x, c, c, c, c, True, 0.1, 1e-5,
                  out=(x, c, c))
    n = 2 * 64 * 56 * 56
    # per element: mean 1 + var 3 + normalise 2 + affine 2; per channel: invstd 2 + running 7
    assert cost.flops == (1 + 3 + 2 + 2) * n + (2 + 7) * 64
    # two passes: the input is read twice, plus weight, bias, running mean and var
    assert cost.bytes_read == 2 * n * 4 + 4 * 64 * 4
    assert cost.bytes_written == n * 4 + 2 * 64 * 4
    assert cost.op_class == "norm"


def test_batch_norm_eval_forward():
    x, c = T(2, 64, 56, 56), T(64)
    cost = priced("aten.native_batch_norm", x, c, c, c, c, False, 0.1, 1e-5, out=(x, T(0), T(0)))
    # x * scale + shift per element, scale/shift per channel (4)
    assert cost.flops == 2 * (2 * 64 * 56 * 56) + 4 * 64
    assert cost.bytes_read == (2 * 64 * 56 * 56 + 4 * 64) * 4


def test_batch_norm_backward():
    x, c = T(2, 64, 56, 56), T(64)
    n = 2 * 64 * 56 * 56
    cost = priced("aten.native_batch_norm_backward", x, x, c, c, c, c, c, True, 1e-5,
                  [True, True, True], out=(x, c, c))
    # pass 1 (sums for grad_bias, grad_weight): 5, pass 2 (grad_input): 6 per element
    assert cost.flops == (5 + 6) * n
    # grad_out and input read in both passes, five per-channel tensors once
    assert cost.bytes_read == 2 * (n + n) * 4 + 5 * 64 * 4
    assert cost.bytes_written == (n + 2 * 64) * 4
    # weights only: one pass
    cost = priced("aten.native_batch_norm_backward", x, x, c, c, c, c, c, True, 1e-5,
                  [False, True, True], out=(None, c, c))
    assert cost.flops == 5 * n and cost.bytes_read == (n + n) * 4 + 5 * 64 * 4


def test_batch_norm_variants_argument_layouts():
    x, c = T(2, 64, 112, 112), T(64)
    n = 2 * 64 * 112 * 112
    # cudnn_batch_norm(input, weight, bias, running_mean, running_var, training, factor, eps)
    cost = priced("aten.cudnn_batch_norm", x, c, c, c, c, True, 0.1, 1e-5,
                  out=(x, c, c, T(0, dtype=torch.uint8)))
    assert cost.flops == 8 * n + (2 + 7) * 64 and cost.op_class == "norm"
    # _native_batch_norm_legit.no_stats(input, weight, bias, training, momentum, eps)
    cost = priced("aten._native_batch_norm_legit", x, c, c, True, 0.1, 1e-5, out=(x, c, c))
    assert cost.flops == 8 * n + 2 * 64
    cost = priced("aten._native_batch_norm_legit_no_training", x, c, c, c, c, 0.1, 1e-5,
                  out=(x, T(0), T(0)))
    assert cost.flops == 2 * n


def test_cudnn_batch_norm_backward_argument_order():
    x, c = T(8, 32, 16, 16), T(32)
    cost = priced("aten.cudnn_batch_norm_backward", x, x, c, c, c, c, c, 1e-5, T(0, dtype=torch.uint8),
                  out=(x, c, c))
    assert cost.flops == 11 * 8 * 32 * 16 * 16


def test_layer_norm():
    x = T(4, 197, 768)
    n = 4 * 197 * 768
    cost = priced("aten.native_layer_norm", x, [768], T(768), T(768), 1e-6,
                  out=(x, T(4, 197, 1), T(4, 197, 1)))
    assert cost.flops == 8 * n
    assert cost.bytes_read == (n + 2 * 768) * 4  # one pass: a row stays on chip
    cost = priced("aten.native_layer_norm_backward", x, x, [768], T(4, 197, 1), T(4, 197, 1),
                  T(768), T(768), [True, True, True], out=(x, T(768), T(768)))
    # grad_input 11, grad_weight 4, grad_bias 1 per element
    assert cost.flops == (11 + 4 + 1) * n
    # grad_input pass + parameter-gradient pass over grad_out and input
    assert cost.bytes_read == 2 * (n + n) * 4 + (2 * 4 * 197 + 2 * 768) * 4


# ----------------------------------------------------------------------------- pooling


def test_max_pool():
    # 3x3 s2 p1 on 1x64x112x112 -> 1x64x56x56: 9 compares per output
    x, y = T(1, 64, 112, 112), T(1, 64, 56, 56)
    cost = priced("aten.max_pool2d_with_indices", x, [3, 3], [2, 2], [1, 1],
                  out=(y, T(1, 64, 56, 56, dtype=i64)))
    assert cost.flops == 64 * 56 * 56 * 3 * 3
    assert cost.bytes_read == 64 * 112 * 112 * 4
    assert cost.bytes_written == 64 * 56 * 56 * (4 + 8)  # values and int64 indices
    assert cost.op_class == "pool"
    # backward: reads grad_output and indices (not the input), writes grad_input
    cost = priced("aten.max_pool2d_with_indices_backward", y, x, [3, 3], [2, 2], [1, 1], [1, 1],
                  False, T(1, 64, 56, 56, dtype=i64), out=x)
    assert cost.flops == 64 * 56 * 56
    assert cost.bytes_read == 64 * 56 * 56 * (4 + 8)
    assert cost.bytes_written == 64 * 112 * 112 * 4


def test_avg_pool():
    # 3x3 s1 p1 on 2x192x35x35: 9 adds + 1 divide per output
    x = T(2, 192, 35, 35)
    cost = priced("aten.avg_pool2d", x, [3, 3], [1, 1], [1, 1], out=x)
    assert cost.flops == 2 * 192 * 35 * 35 * (9 + 1)
    cost = priced("aten.avg_pool2d_backward", x, x, [3, 3], [1, 1], [1, 1], False, True, None,
                  out=x)
    assert cost.flops == 2 * 192 * 35 * 35 * (9 + 1)
    assert cost.bytes_read == 2 * 192 * 35 * 35 * 4


def test_adaptive_avg_pool():
    # 7x7 -> 1x1: 49 adds + 1 divide per output
    cost = priced("aten._adaptive_avg_pool2d", T(2, 512, 7, 7), [1, 1], out=T(2, 512, 1, 1))
    assert cost.flops == 2 * 512 * (49 + 1)
    # 5 -> 3 windows [0,2), [1,4), [3,5): lengths 2 + 3 + 2 = 7 per dim
    cost = priced("aten._adaptive_avg_pool2d", T(1, 1, 5, 5), [3, 3], out=T(1, 1, 3, 3))
    assert cost.flops == 7 * 7 + 9
    cost = priced("aten._adaptive_avg_pool2d_backward", T(2, 512, 1, 1), T(2, 512, 7, 7),
                  out=T(2, 512, 7, 7))
    assert cost.flops == 2 * 512 * (49 + 1)
    assert cost.bytes_read == 2 * 512 * 4


# ----------------------------------------------------------------------------- softmax, loss


def test_softmax():
    x = T(4, 1000)
    # max, sub, exp, sum, div
    assert priced("aten._softmax", x, 1, False, out=x).flops == 5 * 4 * 1000
    assert priced("aten._log_softmax", x, 1, False, out=x).flops == 5 * 4 * 1000
    c = priced("aten._log_softmax_backward_data", x, x, 1, f32, out=x)
    assert c.flops == 4 * 4 * 1000 and c.op_class == "softmax"
    assert c.bytes_read == 2 * 4 * 1000 * 4


def test_nll_loss():
    x, t = T(8, 1000), T(8, dtype=i64)
    cost = priced("aten.nll_loss_forward", x, t, None, 1, -100, out=(T(), T()))
    # one gather-and-add per batch element
    assert cost.flops == 8
    # target + one gathered logit per row, not the 8 x 1000 input
    assert cost.bytes_read == 8 * 8 + 8 * 4
    assert cost.bytes_written == 4 + 4
    assert cost.op_class == "loss"
    cost = priced("aten.nll_loss_backward", T(), x, t, None, 1, -100, T(), out=x)
    assert cost.flops == 8
    assert cost.bytes_read == 4 + 8 * 8 + 4
    assert cost.bytes_written == 8 * 1000 * 4  # zero fill + scatter
    # class weights: one multiply more per element
    assert priced("aten.nll_loss_forward", x, t, T(1000), 1, -100, out=(T(), T())).flops == 16


# ----------------------------------------------------------------------------- elementwise


def test_elementwise_constants():
    x = T(10, 100)
    n = 1000
    assert priced("aten.add", x, x, out=x).flops == n
    assert priced("aten.add", x, x, out=x, alpha=2).flops == 2 * n
    assert priced("aten.relu", x, out=x).flops == n
    assert priced("aten.sigmoid", x, out=x).flops == 4 * n
    assert priced("aten.silu_", x, out=x).flops == 5 * n
    assert priced("aten.gelu", x, out=x).flops == 5 * n
    assert priced("aten.gelu", x, out=x, approximate="tanh").flops == 9 * n
    assert priced("aten.gelu_backward", x, x, out=x).flops == 11 * n
    assert priced("aten.hardswish_", x, out=x).flops == 5 * n
    assert priced("aten.lerp_", x, x, 0.1, out=x).flops == 3 * n
    # addcmul: mul, add (+1 value scale); addcdiv: div, add (+1 value scale)
    assert priced("aten.addcmul_", x, x, x, out=x).flops == 2 * n
    assert priced("aten.addcmul_", x, x, x, out=x, value=0.001).flops == 3 * n
    assert priced("aten.addcdiv_", x, x, x, out=x, value=-0.01).flops == 3 * n
    # broadcast: FLOPs per output element, bytes per operand
    c = priced("aten.sub", T(64, 1, 49), T(64, 49, 1), out=T(64, 49, 49))
    assert c.flops == 64 * 49 * 49
    assert c.bytes_read == 2 * 64 * 49 * 4 and c.bytes_written == 64 * 49 * 49 * 4


def test_in_place_bytes():
    x = T(1000)
    # relu_ returns its mutated input: read once, written once
    assert priced("aten.relu_", x, out=x) == OpCost(1000, 4000, 4000, "elementwise")
    # add_: self and other read, self written once
    assert priced("aten.add_", x, x, out=x) == OpCost(1000, 8000, 4000, "elementwise")
    # bernoulli_: self only written
    c = priced("aten.bernoulli_", x, 0.5, out=x)
    assert c.bytes_read == 0 and c.bytes_written == 4000


def test_dropout():
    x = T(2, 4096)
    c = priced("aten.native_dropout", x, 0.5, True, out=(x, T(2, 4096, dtype=torch.bool)))
    assert c.flops == 4 * 2 * 4096 and c.bytes_written == 2 * 4096 * (4 + 1)


# ----------------------------------------------------------------------------- copies


def test_casts_and_copies():
    # bf16 <- fp32: read 4 bytes, write 2 per element, no FLOPs
    assert priced("aten._to_copy", T(1000), out=T(1000, dtype=bf16), dtype=bf16) == OpCost(
        0, 4000, 2000, "copy")
    # copy_(dst bf16, src fp32): src read, dst written, dst's old contents not read
    assert priced("aten.copy_", T(1000, dtype=bf16), T(1000), out=T(1000, dtype=bf16)) == OpCost(
        0, 4000, 2000, "copy")
    assert priced("aten.clone", T(10, 10), out=T(10, 10)) == OpCost(0, 400, 400, "copy")
    c = priced("aten.cat", [T(2, 64, 8, 8), T(2, 32, 8, 8)], 1, out=T(2, 96, 8, 8))
    assert c == OpCost(0, 2 * 96 * 64 * 4, 2 * 96 * 64 * 4, "copy")


def test_fills_write_only():
    assert priced("aten.zeros_like", T(100), out=T(100)) == OpCost(0, 0, 400, "copy")
    assert priced("aten.ones_like", T(100), out=T(100)) == OpCost(0, 0, 400, "copy")
    assert priced("aten.fill_", T(100), 0.0, out=T(100)) == OpCost(0, 0, 400, "copy")
    assert priced("aten.zeros", [5, 20], out=T(5, 20), dtype=f32) == OpCost(0, 0, 400, "copy")


def test_gathers_read_only_gathered_rows():
    # embedding: a 50000 x 512 table, 8 x 16 indices -> 128 rows read
    c = priced("aten.embedding", T(50000, 512), T(8, 16, dtype=i64), out=T(8, 16, 512))
    assert c == OpCost(0, 8 * 16 * 8 + 8 * 16 * 512 * 4, 8 * 16 * 512 * 4, "embedding")
    c = priced("aten.embedding_dense_backward", T(8, 16, 512), T(8, 16, dtype=i64), 50000, -1,
               False, out=T(50000, 512))
    assert c.flops == 8 * 16 * 512 and c.bytes_written == 50000 * 512 * 4
    # index: 2401 rows of a 169 x 3 table
    c = priced("aten.index", T(169, 3), [T(2401, dtype=i64)], out=T(2401, 3))
    assert c == OpCost(0, 2401 * 8 + 2401 * 3 * 4, 2401 * 3 * 4, "copy")


def test_index_put_accumulate():
    # out of place: self copied (read + written), values + indices read, target rows read
    c = priced("aten.index_put", T(169, 3), [T(2401, dtype=i64)], T(2401, 3), True,
               out=T(169, 3))
    assert c.flops == 2401 * 3
    assert c.bytes_read == 169 * 3 * 4 + 2401 * 8 + 2 * 2401 * 3 * 4
    assert c.bytes_written == 169 * 3 * 4


# ----------------------------------------------------------------------------- optimizer


def test_foreach_ops_sum_over_lists():
    a, b = [T(10, 10), T(5)], [T(10, 10), T(5)]
    n = 100 + 5
    # add_ with alpha: add + multiply
    c = priced("aten._foreach_add_", a, b, alpha=-0.1)
    assert c == OpCost(2 * n, 2 * n * 4, n * 4, "optimizer")
    assert priced("aten._foreach_add_", a, 1e-8).flops == n
    assert priced("aten._foreach_mul_", a, 0.9) == OpCost(n, n * 4, n * 4, "optimizer")
    assert priced("aten._foreach_lerp_", a, b, 0.1).flops == 3 * n
    assert priced("aten._foreach_addcmul_", a, b, b, 0.001).flops == 3 * n
    assert priced("aten._foreach_addcdiv_", a, b, b, [-0.01, -0.01]).flops == 3 * n
    assert priced("aten._foreach_div_", a, [2.0, 2.0]).flops == n
    # out of place: writes the returned list
    c = priced("aten._foreach_sqrt", a, out=[T(10, 10), T(5)])
    assert c == OpCost(n, n * 4, n * 4, "optimizer")
    assert priced("aten._foreach_neg", a, out=a).flops == n
    assert priced("aten._foreach_pow", 0.9, [T(), T()], out=[T(), T()]).flops == 2
    assert priced("aten._foreach_zero_", a) == OpCost(0, 0, n * 4, "optimizer")


def test_fused_adamw():
    p = [T(64, 3, 3, 3), T(64)]
    n = 64 * 27 + 64
    steps = [T(), T()]
    c = priced("aten._fused_adamw_", p, p, p, p, [], steps, lr=1e-3, beta1=0.9, beta2=0.999,
               weight_decay=0.01, eps=1e-8, amsgrad=False, maximize=False)
    # lerp 3 + second moment 4 + denominator 3 + update 3 + decoupled decay 1
    assert c.flops == (3 + 4 + 3 + 3 + 1) * n
    assert c.bytes_read == 4 * n * 4 + 2 * 4  # params, grads, exp_avg, exp_avg_sq, steps
    assert c.bytes_written == 3 * n * 4  # params, exp_avg, exp_avg_sq
    assert c.op_class == "optimizer"


def test_fused_sgd():
    p = [T(1000)]
    c = priced("aten._fused_sgd_", p, p, p, weight_decay=0.0, momentum=0.9, lr=0.1,
               dampening=0.0, nesterov=False, maximize=False, is_first_step=False)
    assert c == OpCost((2 + 2) * 1000, 3 * 4000, 2 * 4000, "optimizer")


# ----------------------------------------------------------------------------- coverage


class _Recorder(TorchDispatchMode):
    """Records (op, args, kwargs, out) of every aten op as the walker would see them."""

    def __init__(self):
        super().__init__()
        self.calls: dict[str, tuple] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = str(func.overloadpacket)
        self.calls.setdefault(name, [])
        if len(self.calls[name]) < 3:
            self.calls[name].append((info(args), info(kwargs), info(out)))
        return out


class _TinyTransformer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(100, 32)
        self.enc = torch.nn.TransformerEncoderLayer(32, 2, 64, batch_first=True)
        self.head = torch.nn.Linear(32, 10)

    def forward(self, x):
        return self.head(self.enc(self.emb(x)).mean(1))


def _model(name):
    import torchvision

    if name == "resnet18":
        return torchvision.models.resnet18(num_classes=10), (2, 3, 64, 64)
    if name == "mobilenet_v3_small":
        return torchvision.models.mobilenet_v3_small(num_classes=10), (2, 3, 64, 64)
    if name == "tiny_vit":
        return torchvision.models.VisionTransformer(
            image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64,
            num_classes=10), (2, 3, 32, 32)
    if name == "transformer":
        return _TinyTransformer(), (2, 12)
    # any other torchvision classification model at its usual input size
    kw = {"aux_logits": True, "init_weights": False} if name in ("inception_v3", "googlenet") else {}
    return torchvision.models.get_model(name, **kw), (2, 3, 299 if name == "inception_v3" else 224,
                                                      299 if name == "inception_v3" else 224)


def record_training_step(name, amp=None, optimizer="sgd", foreach=True, channels_last=False,
                         device="cpu", fake=True):
    """One forward, cross-entropy (summed over aux outputs), backward and two optimizer steps,
    on fake tensors (or, ``fake=False``, on real uninitialised ones)."""
    try:
        with torch.device("meta"):
            model, shape = _model(name)
    except Exception:  # constructors that compute on tensors (regnet) build on the CPU
        model, shape = _model(name)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    with FakeTensorMode(allow_non_fake_inputs=True) if fake else contextlib.nullcontext():
        model = model.to_empty(device=device).train()
        if len(shape) == 2:
            x = torch.empty(*shape, dtype=torch.long, device=device)
        else:
            x = torch.empty(*shape, device=device)
            if channels_last:
                x = x.to(memory_format=torch.channels_last)
        y = torch.empty(shape[0], dtype=torch.long, device=device)
        kw = {"fused": True} if foreach == "fused" else {"foreach": foreach}
        if optimizer == "sgd":
            opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, **kw)
        else:
            opt_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[optimizer]
            opt = opt_cls(model.parameters(), lr=1e-3, **kw)
        rec = _Recorder()
        autocast = (torch.autocast(device, dtype=amp) if amp is not None
                    else contextlib.nullcontext())
        with rec:
            with autocast:
                logits = model(x)
                if not isinstance(logits, torch.Tensor):  # inception/googlenet aux outputs
                    logits = [t for t in logits if t is not None]
                else:
                    logits = [logits]
                loss = sum(torch.nn.functional.cross_entropy(t, y) for t in logits)
            loss.backward()
            opt.step()
            opt.zero_grad()
            opt.step()
    return rec.calls


COVERAGE_CASES = [
    ("resnet18", None, "sgd", True, False),
    ("resnet18", bf16, "adamw", True, False),
    ("resnet18", f16, "sgd", False, True),
    ("mobilenet_v3_small", None, "adamw", False, False),
    ("mobilenet_v3_small", bf16, "sgd", True, True),
    ("tiny_vit", None, "adamw", True, False),
    ("tiny_vit", bf16, "adam", False, False),
    ("transformer", None, "adam", "fused", False),
    ("transformer", bf16, "sgd", "fused", False),
]


@pytest.mark.parametrize("name,amp,optimizer,foreach,channels_last", COVERAGE_CASES)
def test_every_op_of_a_training_step_is_priced(name, amp, optimizer, foreach, channels_last):
    calls = record_training_step(name, amp, optimizer, foreach, channels_last)
    unpriced = []
    for op, examples in calls.items():
        for args, kwargs, out in examples:
            cost = price(op, args, kwargs, out)
            if cost is None:
                unpriced.append(op)
                break
            assert cost.op_class in OP_CLASSES
            assert min(cost.flops, cost.bytes_read, cost.bytes_written) >= 0, op
    assert unpriced == []
    # the step ran what we meant it to
    assert "aten.convolution_backward" in calls or name == "transformer"
    if foreach is True:
        assert any(op.startswith("aten._foreach_") for op in calls)
    if foreach == "fused":
        assert any(op.startswith("aten._fused_") for op in calls)
    if amp is not None:
        assert "aten._to_copy" in calls


#: every op of a training step on a real CUDA device (NVIDIA H200, torch 2.11), over the 14
#: torchvision models of the brief + resnet18, mobilenet_v3_small, a tiny ViT and an
#: Embedding + TransformerEncoderLayer model, in fp32 / bf16 / fp16 autocast, channels_last,
#: with SGD / Adam / AdamW (foreach, single-tensor and fused): CI has no GPU, so the CUDA-only
#: kernels (cudnn batch norm, cudnn/efficient attention, dropout) are pinned here.
CUDA_STEP_OPS = [
    "aten._adaptive_avg_pool2d", "aten._adaptive_avg_pool2d_backward", "aten._foreach_add_",
    "aten._foreach_addcdiv_", "aten._foreach_addcmul_", "aten._foreach_div_",
    "aten._foreach_lerp_", "aten._foreach_mul_", "aten._foreach_sqrt", "aten._fused_adamw_",
    "aten._fused_sgd_", "aten._local_scalar_dense", "aten._log_softmax",
    "aten._log_softmax_backward_data", "aten._scaled_dot_product_cudnn_attention",
    "aten._scaled_dot_product_cudnn_attention_backward",
    "aten._scaled_dot_product_efficient_attention",
    "aten._scaled_dot_product_efficient_attention_backward", "aten._softmax",
    "aten._softmax_backward_data", "aten._to_copy", "aten._unsafe_view", "aten.add", "aten.add_",
    "aten.addcdiv_", "aten.addcmul_", "aten.addmm", "aten.alias", "aten.as_strided",
    "aten.as_strided_", "aten.avg_pool2d", "aten.avg_pool2d_backward", "aten.bernoulli_",
    "aten.bmm", "aten.cat", "aten.clone", "aten.constant_pad_nd", "aten.convolution",
    "aten.convolution_backward", "aten.copy_", "aten.cudnn_batch_norm",
    "aten.cudnn_batch_norm_backward", "aten.detach", "aten.div", "aten.div_", "aten.embedding",
    "aten.embedding_dense_backward", "aten.empty", "aten.empty_like", "aten.eq", "aten.expand",
    "aten.fill_", "aten.gelu", "aten.gelu_backward", "aten.hardsigmoid",
    "aten.hardsigmoid_backward", "aten.hardswish_", "aten.hardswish_backward", "aten.index",
    "aten.index_put", "aten.lerp_", "aten.lift_fresh", "aten.masked_fill",
    "aten.max_pool2d_with_indices", "aten.max_pool2d_with_indices_backward", "aten.mean",
    "aten.mm", "aten.mul", "aten.mul_", "aten.native_batch_norm",
    "aten.native_batch_norm_backward", "aten.native_dropout", "aten.native_dropout_backward",
    "aten.native_layer_norm", "aten.native_layer_norm_backward", "aten.ne",
    "aten.new_empty_strided", "aten.new_zeros", "aten.nll_loss_backward", "aten.nll_loss_forward",
    "aten.ones_like", "aten.permute", "aten.relu", "aten.relu_", "aten.roll", "aten.select",
    "aten.select_backward", "aten.sigmoid", "aten.sigmoid_backward", "aten.silu_",
    "aten.silu_backward", "aten.slice", "aten.slice_backward", "aten.split", "aten.sqrt",
    "aten.squeeze", "aten.sub", "aten.sum", "aten.t", "aten.threshold_backward", "aten.transpose",
    "aten.unsqueeze", "aten.view", "aten.zeros", "aten.zeros_like", "prim.device",
    "profiler._record_function_enter_new", "profiler._record_function_exit",
]


def test_ops_seen_on_cuda_are_known():
    known = registered_ops() | FREE_OPS
    assert [op for op in CUDA_STEP_OPS if op not in known] == []


class _SumCosts(TorchDispatchMode):
    """Sums our FLOPs over the given ops of a real (CPU) run."""

    def __init__(self, ops):
        super().__init__()
        self.ops, self.flops = ops, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        op = str(func.overloadpacket)
        if op in self.ops:
            self.flops += price(op, info(args), info(kwargs), info(out)).flops
            if op == "aten.addmm":  # flop_counter leaves out the bias add (one per output)
                self.flops -= out.numel()
        return out


def test_resnet18_step_matches_flop_counter():
    # every conv of resnet18 is ungrouped and bias-free: forward + backward conv and matmul
    # FLOPs of a real step must equal FlopCounterMode's total exactly
    torch.manual_seed(0)
    model = _model("resnet18")[0]
    x = torch.randn(2, 3, 64, 64)
    with FlopCounterMode(display=False) as fc:
        model(x).sum().backward()
    summed = _SumCosts({"aten.convolution", "aten.convolution_backward", "aten.mm", "aten.addmm"})
    with summed:
        model(x).sum().backward()
    assert summed.flops == fc.get_total_flops() > 0
