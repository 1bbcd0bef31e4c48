"""Data-parallel step (traincost.pricing.parallel): all-reduce formula, DDP buckets, overlap, predict() with gpus/nodes.

Expected numbers are hand arithmetic; timelines are constructed so the answer can be worked out on paper.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import traincost
from traincost.errors import TraincostUsageError
from traincost.pricing.parallel import (
    DDP_BUCKET_CAP_BYTES,
    DDP_FIRST_BUCKET_BYTES,
    Fabric,
    GradEvents,
    allreduce_s,
    check_parallel,
    data_parallel,
    ddp_buckets,
    fabric_for,
    grad_events,
    overlap,
    parse_network,
)
from traincost.pricing.timeline import Pricing, simulate

MiB = 2**20


# ------------------------------------------------------------------------------------------- all-reduce


def test_ring_allreduce_on_one_node_by_hand():
    f = Fabric(gpus=8, nodes=1, intra_busbw_bytes_per_s=100e9, intra_hop_latency_s=2e-6, base_latency_s=10e-6)
    # 10 us + 2 * 7/8 * 1e9 B / 100e9 B/s + 2 * 7 hops * 2 us = 10e-6 + 0.0175 + 28e-6
    assert allreduce_s(1e9, f) == pytest.approx(0.017538)
    assert allreduce_s(0, f) == 0.0
    assert allreduce_s(1e9, Fabric(gpus=1, nodes=1, intra_busbw_bytes_per_s=1.0, intra_hop_latency_s=1.0)) == 0.0


def test_two_gpus_move_the_buffer_once_at_bus_bandwidth():
    f = Fabric(gpus=2, nodes=1, intra_busbw_bytes_per_s=1e9, intra_hop_latency_s=0.0, base_latency_s=0.0)
    assert allreduce_s(5e6, f) == pytest.approx(5e-3)  # 2 * 1/2 * 5e6 / 1e9


def test_hierarchical_allreduce_over_nodes_by_hand():
    f = Fabric(gpus=16, nodes=2, intra_busbw_bytes_per_s=200e9, intra_hop_latency_s=1e-6,
               net_busbw_bytes_per_s=50e9, net_hop_latency_s=5e-6, base_latency_s=0.0)
    # hierarchical: 2*7/8*1e9/200e9 + 14 * 1us + 2*1/2*1e9/50e9 + 2 * 5us = 0.00875 + 14e-6 + 0.02 + 10e-6
    # flat ring:    2*15/16*1e9/min(200e9, 50e9) + 14e-6 + 10e-6 = 0.0375 + 24e-6: the hierarchy wins
    assert allreduce_s(1e9, f) == pytest.approx(0.028774)


def test_a_flat_ring_wins_when_the_network_is_faster_than_the_gpu_link():
    f = Fabric(gpus=16, nodes=2, intra_busbw_bytes_per_s=100e9, intra_hop_latency_s=0.0,
               net_busbw_bytes_per_s=400e9, net_hop_latency_s=0.0, base_latency_s=0.0)
    # hierarchical 2*7/8/100e9 + 1/400e9 = 0.0175 + 0.0025 per GB; ring 2*15/16/100e9 = 0.01875 per GB
    assert allreduce_s(1e9, f) == pytest.approx(0.01875)


def test_nodes_without_a_network_is_a_usage_error():
    f = Fabric(gpus=16, nodes=2, intra_busbw_bytes_per_s=100e9, intra_hop_latency_s=0.0)
    with pytest.raises(TraincostUsageError, match="network"):
        allreduce_s(1e6, f)


def test_fabric_from_the_catalog():
    h100 = fabric_for(_profile("H100 SXM"), gpus=8)
    assert h100.intra_link == "nvlink4"
    assert h100.intra_busbw_bytes_per_s == pytest.approx(450e9 * 0.82)
    t4 = fabric_for(_profile("T4"), gpus=4)
    assert t4.intra_link == "pcie3" and t4.intra_busbw_bytes_per_s == pytest.approx(15.75e9 * 0.75)
    cluster = fabric_for(_profile("A100 SXM 80GB"), gpus=32, nodes=4, network="8x ib-hdr")
    assert cluster.network == "8x ib-hdr"
    assert cluster.net_busbw_bytes_per_s == pytest.approx(8 * 25e9 * 0.9)
    assert cluster.gpus_per_node == 8


def _profile(name: str):
    from traincost.hardware.store import profile_for

    return profile_for(name)


@pytest.mark.parametrize("gpus, nodes, network, fragment", [
    (0, 1, None, "gpus"), (2, 0, None, "nodes"), (6, 4, "ib-hdr", "divisible"), (16, 2, None, "network"),
    (16, 2, "token ring", "unknown network"), (16, 2, "nvlink4", "unknown network"), (True, 1, None, "gpus"),
])
def test_bad_parallel_parameters(gpus, nodes, network, fragment):
    with pytest.raises(TraincostUsageError, match=fragment):
        check_parallel(gpus, nodes, network)


def test_network_with_nics_per_node():
    nics, link = parse_network("4x ib-edr")
    assert nics == 4 and link.key == "ib-edr"
    assert parse_network("HDR")[0] == 1


# ------------------------------------------------------------------------------------------- buckets


def test_ddp_buckets_by_hand():
    sizes = [MiB // 2, 3 * MiB // 4, 10 * MiB, 20 * MiB, 3 * MiB, 1 * MiB]
    # first bucket: 0.5 + 0.75 = 1.25 MiB >= 1 MiB closes it; then 10 + 20 = 30 >= 25 closes; then 3 + 1 left
    assert ddp_buckets(sizes) == [(0, 1), (2, 3), (4, 5)]
    assert DDP_BUCKET_CAP_BYTES == 25 * MiB and DDP_FIRST_BUCKET_BYTES == MiB


def test_a_tensor_above_the_cap_is_a_bucket_of_its_own():
    assert ddp_buckets([100 * MiB, 100 * MiB, 1]) == [(0,), (1,), (2,)]
    assert ddp_buckets([]) == []
    assert ddp_buckets([10, 10, 10], cap_bytes=20, first_cap_bytes=20) == [(0, 1), (2,)]


def test_overlap_launches_when_ready_and_serialises():
    assert overlap([1, 2, 3], [0.5, 0.5, 0.5]) == [(1, 1.5), (2, 2.5), (3, 3.5)]
    assert overlap([1, 2, 3], [2, 2, 2]) == [(1, 3), (3, 5), (5, 7)]


# ------------------------------------------------------------------------------------------- the step


def _step(device_ms, host_ms, phases, sync_index=None):
    """A priced step from per-op times (ms) and phases (0 forward, 1 backward, 2 optimizer)."""
    device = np.asarray(device_ms, dtype=float) / 1e3
    host = np.asarray(host_ms, dtype=float) / 1e3
    tl = simulate(host, device, synchronous=False, sync_before=sync_index)
    zeros = np.zeros(len(device))
    table = SimpleNamespace(n=len(device), phase=np.asarray(phases), param_bytes=0, sync_index=sync_index)
    return table, Pricing(host, device, zeros, zeros, tl)


#: 2 GPUs at 1 GB/s bus bandwidth, no latency: an all-reduce of B bytes takes B / 1e9 s
TWO = Fabric(gpus=2, nodes=1, intra_busbw_bytes_per_s=1e9, intra_hop_latency_s=0.0, base_latency_s=0.0)
#: forward 10 ms, three backward ops of 10 ms (ending at 20, 30, 40 ms), optimizer 5 ms: step 45 ms
STEP = ([10, 10, 10, 10, 5], [0, 0, 0, 0, 0], [0, 1, 1, 1, 2])
ONE_PER_BUCKET = {"cap_bytes": 1, "first_cap_bytes": 1}


def _grads(*pairs):
    return GradEvents(np.asarray([p[0] for p in pairs], dtype=np.int64),
                      np.asarray([p[1] for p in pairs], dtype=np.int64))


def test_communication_fully_hidden_behind_backward():
    table, pricing = _step(*STEP)
    dp = data_parallel(table, pricing, TWO, _grads((1, 5_000_000)), **ONE_PER_BUCKET)
    # ready at 20 ms, 5 ms on the wire: done at 25 ms, backward ends at 40 ms
    assert dp.single_step_ms == pytest.approx(45)
    assert dp.allreduce_ms == pytest.approx(5)
    assert dp.exposed_comm_ms == pytest.approx(0)
    assert dp.step_ms == pytest.approx(45) and dp.scaling_efficiency == pytest.approx(1.0)
    assert (dp.buckets[0].start_s, dp.buckets[0].end_s) == pytest.approx((0.020, 0.025))


def test_communication_fully_exposed():
    table, pricing = _step(*STEP)
    dp = data_parallel(table, pricing, TWO, _grads((3, 10_000_000)), **ONE_PER_BUCKET)
    # ready at the end of backward (40 ms), 10 ms all-reduce, then the 5 ms optimizer: 55 ms
    assert dp.exposed_comm_ms == pytest.approx(10)
    assert dp.step_ms == pytest.approx(55)
    assert dp.scaling_efficiency == pytest.approx(45 / 55)


def test_communication_partly_hidden():
    table, pricing = _step(*STEP)
    dp = data_parallel(table, pricing, TWO, _grads((1, 15_000_000), (2, 8_000_000)), **ONE_PER_BUCKET)
    # bucket 1: 20 -> 35 ms; bucket 2 ready at 30 ms waits for the stream: 35 -> 43 ms; optimizer 43 -> 48 ms
    assert [t for b in dp.buckets for t in (b.start_s, b.end_s)] == pytest.approx([0.020, 0.035, 0.035, 0.043])
    assert dp.allreduce_ms == pytest.approx(23)
    assert dp.exposed_comm_ms == pytest.approx(3)
    assert dp.step_ms == pytest.approx(48)


def test_a_host_bound_optimizer_hides_the_last_all_reduce():
    # the optimizer op's dispatch costs 60 ms of host time: the device waits for it anyway (step 65 ms)
    table, pricing = _step([10, 10, 10, 10, 5], [0, 0, 0, 0, 60], [0, 1, 1, 1, 2])
    assert pricing.timeline.step_s == pytest.approx(0.065)
    dp = data_parallel(table, pricing, TWO, _grads((3, 10_000_000)), **ONE_PER_BUCKET)
    assert dp.exposed_comm_ms == pytest.approx(0)  # all-reduce 40 -> 50 ms, host dispatches at 60 ms


def test_buckets_group_gradients_and_launch_on_their_last_one():
    table, pricing = _step(*STEP)
    # default caps: 0.6 MiB at op 1 (20 ms) + 0.6 MiB at op 2 (30 ms) close the 1 MiB first bucket
    dp = data_parallel(table, pricing, TWO, _grads((1, 629_146), (2, 629_146)))
    assert len(dp.buckets) == 1 and dp.buckets[0].ready_s == pytest.approx(0.030)
    assert dp.grad_bytes == 2 * 629_146


def test_no_grad_events_is_an_all_reduce_after_backward():
    table, pricing = _step(*STEP)
    table.param_bytes = 10_000_000
    dp = data_parallel(table, pricing, TWO, None)
    assert dp.exposed_comm_ms == pytest.approx(10) and dp.unmatched_grad_bytes == 10_000_000


def test_one_gpu_is_exactly_the_single_gpu_step():
    table, pricing = _step(*STEP)
    one = Fabric(gpus=1, nodes=1, intra_busbw_bytes_per_s=1e9, intra_hop_latency_s=0.0)
    dp = data_parallel(table, pricing, one, _grads((3, 10**9)))
    assert (dp.step_ms, dp.allreduce_ms, dp.exposed_comm_ms, dp.scaling_efficiency) == (45.0, 0.0, 0.0, 1.0)


# ------------------------------------------------------------------------------------------- the walk


def test_grad_events_find_every_parameter_of_a_walk(tiny):
    walk = traincost.count(tiny["resnet"], batch_size=4).walk
    ev = grad_events(walk.records)
    assert ev.unmatched_bytes == 0
    assert int(ev.nbytes.sum()) == walk.param_bytes
    assert all(walk.records[i].phase == "backward" for i in ev.op_index)
    assert list(ev.op_index) == sorted(ev.op_index)
    # backward runs from the classifier to the stem: the classifier's gradients are ready first, the stem's last
    assert walk.records[int(ev.op_index[0])].module == "head.fc"
    assert walk.records[int(ev.op_index[-1])].module == "stem.conv"


def test_grad_events_under_autocast_are_fp32_gradients(tiny):
    walk = traincost.count(tiny["vgg"], batch_size=4, precision="bf16").walk
    ev = grad_events(walk.records)
    assert ev.unmatched_bytes == 0 and int(ev.nbytes.sum()) == walk.param_bytes  # fp32 parameters


# ------------------------------------------------------------------------------------------- predict


def test_predict_with_one_gpu_is_unchanged(tiny):
    e = traincost.predict(tiny["vgg"], device="A100 SXM 80GB", batch_size=64)
    assert (e.gpus, e.nodes, e.allreduce_ms, e.exposed_comm_ms, e.scaling_efficiency) == (1, 1, 0.0, 0.0, 1.0)
    assert e.interconnect is None


def test_predict_data_parallel(tiny):
    one = traincost.predict(tiny["vgg"], device="V100", batch_size=64, dataset_size=10_000)
    many = traincost.predict(tiny["vgg"], device="V100", batch_size=64, dataset_size=10_000, gpus=32, nodes=4,
                             network="ib-edr")
    assert many.iteration_ms == pytest.approx(one.iteration_ms + many.exposed_comm_ms)
    assert many.allreduce_ms > 0 and many.exposed_comm_ms >= 0
    assert 0 < many.scaling_efficiency <= 1
    assert many.scaling_efficiency == pytest.approx(one.iteration_ms / many.iteration_ms)
    assert many.samples_per_s == pytest.approx(32 * 64 / (many.iteration_ms / 1e3))
    assert many.steps_per_epoch == -(-10_000 // (32 * 64))
    assert many.interconnect["intra_link"] == "nvlink2" and many.interconnect["network"] == "ib-edr"
    assert any("data parallel" in n for n in many.notes)


def test_a_slower_link_can_only_slow_the_step(tiny):
    kw = {"device": "A100 SXM 80GB", "batch_size": 8, "gpus": 16, "nodes": 2}
    fast = traincost.predict(tiny["vgg"], network="8x ib-hdr", **kw)
    slow = traincost.predict(tiny["vgg"], network="eth-100g", **kw)
    assert slow.allreduce_ms > fast.allreduce_ms
    assert slow.iteration_ms >= fast.iteration_ms


@pytest.mark.parametrize("kw, fragment", [
    ({"device": "cpu", "gpus": 2}, "GPU"), ({"device": "A100", "gpus": 6, "nodes": 4, "network": "ib-hdr"}, "divisible"),
    ({"device": "A100", "gpus": 16, "nodes": 2}, "network"), ({"device": "A100", "gpus": 2, "nodes": 0}, "nodes"),
])
def test_predict_rejects_bad_parallel_input(tiny, kw, fragment):
    with pytest.raises(TraincostUsageError, match=fragment):
        traincost.predict(tiny["fc"], batch_size=2, **kw)


def test_more_gpus_than_a_server_holds_is_noted(tiny):
    e = traincost.predict(tiny["fc"], device="V100", batch_size=2, gpus=16)
    assert any("more than a usual server" in n for n in e.notes)
