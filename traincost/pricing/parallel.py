"""Data-parallel training step time: per-GPU compute plus the gradient all-reduce, overlapped with backward.

The model (PyTorch ``DistributedDataParallel`` over NCCL), units in names::

    ring all-reduce of B bytes on G GPUs, one server (NCCL ring, Simple protocol):
        t = base_latency + 2(G-1)/G x B / busbw + 2(G-1) x hop_latency
    G GPUs on N nodes of g = G/N GPUs (hierarchical, as NCCL's tree/ring choice approximates it):
        t_hier = base_latency + 2(g-1)/g x B / busbw_intra + 2(g-1) x hop_intra      (intra-node
                                                                                      reduce-scatter + all-gather)
                              + 2(N-1)/N x B / busbw_net  + 2(N-1) x hop_net           (inter-node all-reduce of
                                                                                      each GPU's 1/g shard, all
                                                                                      NICs of a node in parallel)
        t_ring = base_latency + 2(G-1)/G x B / min(busbw_intra, busbw_net) + hops       (one flat ring)
        t = min(t_hier, t_ring)                       (NCCL picks the faster algorithm by its own cost model)

``busbw`` is nccl-tests' bus bandwidth (``algbw x 2(n-1)/n``, ``nccl-tests/doc/PERFORMANCE.md``), so the
first formula is its definition solved for the time. ``busbw`` = datasheet bandwidth x an achieved factor
from public nccl-tests runs (``traincost/data/links.csv``, each with its source); ``busbw_net`` = NICs per
node x per-NIC rate. Latencies are NCCL's own tuning model (``src/graph/tuning.cc``: ``baseLat`` Ring/Simple
8.4 us, ``hwLat`` Ring/Simple per step: NVLink 3.4 us, PCIe 5.7 us, network 9.6 us).

**Buckets (DDP).** Gradients are all-reduced in buckets: the first holds up to 1 MiB
(``dist._DEFAULT_FIRST_BUCKET_BYTES``, ``kDefaultFirstBucketBytes = 1024 * 1024`` in ``reducer.hpp``), the
others ``bucket_cap_mb = 25`` MiB; a bucket closes once it reaches its cap (the tensor that crosses it stays in).
DDP builds buckets in reverse parameter registration order, then rebuilds them after the first iteration in
the order the gradients actually became ready (``Reducer::rebuild_buckets``); the steady state is that
order, which is what is modelled: the order of the walk's ``AccumulateGrad`` events.

**When a gradient is ready.** The walk records the ``aten.detach`` that autograd's ``AccumulateGrad`` runs when
it stores a parameter's gradient (the point where DDP's hook fires); it is matched to the parameters by shape
(the optimizer's foreach ops list every parameter tensor). Its time is the end of that op on the priced
device timeline (device end of the kernel that produced the gradient, or the host dispatch when the host is
behind). Gradients not matched are taken as ready at the end of backward (pessimistic) and counted in
``unmatched_grad_bytes``.

**Overlap.** A bucket's all-reduce is launched when its last gradient is ready; communication runs on its
own stream, one bucket after another: ``start_b = max(ready_b, end_{b-1})``. The optimizer's first kernel
waits for the last bucket: the ops after backward are re-simulated with the device free at
``max(backward end, last all-reduce end)``; ``exposed_comm`` = that step - the single-GPU step. Not modelled:
NCCL kernels slowing the overlapped backward kernels (SMs, memory bandwidth), DDP's per-parameter hook host
cost, NVLink SHARP (NVLS) all-reduce, stragglers and input pipelines.

Gradient bytes: parameters in their own dtype (fp32 gradients under autocast: master weights are fp32).

Validation (``python benchmarks/multigpu.py``, 92 public rows of 4-32 V100/A100 GPUs, 2026-11-28): the model
predicts scaling efficiencies of 0.995-1.000 (communication hidden behind backward) where the sources
measured median 0.935 (0.44-0.99): the measured loss grows with the per-node throughput (fp16+channels_last
rows 0.84, tf32 0.96), which points at the input pipeline and host rather than the all-reduce.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from traincost.errors import TraincostUsageError

if TYPE_CHECKING:
    from traincost.hardware.catalog import GPUSpec, Link
    from traincost.hardware.profile import DeviceProfile
    from traincost.pricing.optable import OpTable
    from traincost.pricing.timeline import Pricing

__all__ = [
    "DDP_BUCKET_CAP_BYTES",
    "DDP_FIRST_BUCKET_BYTES",
    "NCCL_BASE_LATENCY_S",
    "Bucket",
    "DataParallel",
    "Fabric",
    "GradEvents",
    "allreduce_s",
    "check_parallel",
    "data_parallel",
    "ddp_buckets",
    "fabric_for",
    "grad_events",
    "overlap",
    "parse_network",
]

#: ``DistributedDataParallel(bucket_cap_mb=25)``: 25 MiB buckets.
DDP_BUCKET_CAP_BYTES = 25 * 2**20
#: The first bucket's cap (``torch.distributed._DEFAULT_FIRST_BUCKET_BYTES``, 1 MiB).
DDP_FIRST_BUCKET_BYTES = 1 * 2**20
#: NCCL ``baseLat`` for Ring / Simple (``src/graph/tuning.cc``): the fixed cost of one collective, seconds.
NCCL_BASE_LATENCY_S = 8.4e-6

_ITEMSIZE = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4, "int8": 1,
             "uint8": 1, "bool": 1, "complex64": 8}


# ------------------------------------------------------------------------------------------- all-reduce


@dataclass(frozen=True)
class Fabric:
    """What an all-reduce runs over: ``gpus`` on ``nodes`` servers. Bus bandwidths in bytes/s (achieved,
    nccl-tests ``busbw``); ``net_busbw_bytes_per_s`` is a whole node's network (all NICs), ``None`` on one
    node."""

    gpus: int
    nodes: int
    intra_busbw_bytes_per_s: float
    intra_hop_latency_s: float
    net_busbw_bytes_per_s: float | None = None
    net_hop_latency_s: float = 0.0
    base_latency_s: float = NCCL_BASE_LATENCY_S
    intra_link: str = ""
    network: str = ""

    @property
    def gpus_per_node(self) -> int:
        return self.gpus // self.nodes


def allreduce_s(nbytes: float, fabric: Fabric) -> float:
    """Seconds of one NCCL all-reduce of ``nbytes`` on ``fabric`` (module doc); 0 on one GPU or 0 bytes."""
    G, N = fabric.gpus, fabric.nodes
    if G <= 1 or nbytes <= 0:
        return 0.0
    g = G // N
    B = float(nbytes)
    if N <= 1:
        return (fabric.base_latency_s + 2 * (G - 1) / G * B / fabric.intra_busbw_bytes_per_s
                + 2 * (G - 1) * fabric.intra_hop_latency_s)
    net = fabric.net_busbw_bytes_per_s
    if not net or net <= 0:
        raise TraincostUsageError(f"nodes={N} needs a network (e.g. network='ib-hdr')")
    intra_bw_s = 2 * (g - 1) / g * B / fabric.intra_busbw_bytes_per_s if g > 1 else 0.0
    intra_lat_s = 2 * (g - 1) * fabric.intra_hop_latency_s
    net_lat_s = 2 * (N - 1) * fabric.net_hop_latency_s
    hier = fabric.base_latency_s + intra_bw_s + intra_lat_s + 2 * (N - 1) / N * B / net + net_lat_s
    ring = (fabric.base_latency_s + 2 * (G - 1) / G * B / min(fabric.intra_busbw_bytes_per_s, net)
            + intra_lat_s + net_lat_s)
    return min(hier, ring)


# ------------------------------------------------------------------------------------------- buckets


@dataclass(frozen=True)
class Bucket:
    """One DDP bucket: gradient indices (in ready order), bytes, when its last gradient is ready and its
    all-reduce's start and end (seconds from the start of the step)."""

    indices: tuple[int, ...]
    nbytes: int
    ready_s: float = 0.0
    allreduce_s: float = 0.0
    start_s: float = 0.0
    end_s: float = 0.0


def ddp_buckets(grad_bytes: Sequence[int], *, cap_bytes: int = DDP_BUCKET_CAP_BYTES,
                first_cap_bytes: int = DDP_FIRST_BUCKET_BYTES) -> list[tuple[int, ...]]:
    """Indices of ``grad_bytes`` (gradients in the order they become ready) grouped into DDP buckets: the
    first bucket closes at ``first_cap_bytes``, the others at ``cap_bytes``; a bucket closes as soon as its
    size reaches the cap, with the tensor that crossed it (``compute_bucket_assignment_by_size``)."""
    buckets: list[tuple[int, ...]] = []
    current: list[int] = []
    size = 0
    for i, nbytes in enumerate(grad_bytes):
        current.append(i)
        size += int(nbytes)
        if size >= (first_cap_bytes if not buckets else cap_bytes):
            buckets.append(tuple(current))
            current, size = [], 0
    if current:
        buckets.append(tuple(current))
    return buckets


def overlap(ready_s: Sequence[float], comm_s: Sequence[float]) -> list[tuple[float, float]]:
    """(start, end) of each bucket's all-reduce, launched when ready, serially on one stream:
    ``start_b = max(ready_b, end_{b-1})``, ``end_b = start_b + comm_b``."""
    out = []
    t = 0.0
    for ready, comm in zip(ready_s, comm_s):
        start = max(t, float(ready))
        t = start + float(comm)
        out.append((start, t))
    return out


# ------------------------------------------------------------------------------------------- gradients


@dataclass(frozen=True)
class GradEvents:
    """Parameter gradients in the order they become ready: the op index after which each is ready and its
    bytes; ``unmatched_bytes``: parameter bytes whose gradient event was not found (taken as ready at the
    end of backward)."""

    op_index: np.ndarray
    nbytes: np.ndarray
    unmatched_bytes: int = 0


def grad_events(records: Sequence[Any]) -> GradEvents:
    """Gradient-ready events of a walk (``Walk.records``): the backward ``aten.detach`` of each parameter's
    ``AccumulateGrad``, matched by shape and dtype to the tensors of the optimizer's first foreach op."""
    params: Counter = Counter()
    param_bytes = 0
    for r in records:
        if r.phase == "optimizer" and r.op_class == "optimizer" and r.n_tensors > 0:
            n = int(r.n_tensors)
            for shape, dtype in zip(r.input_shapes[:n], r.input_dtypes[:n]):
                params[(tuple(shape), dtype)] += 1
                param_bytes += math.prod(shape) * _ITEMSIZE.get(dtype, 4)
            break
    idx, nbytes = [], []
    for i, r in enumerate(records):
        if r.phase != "backward" or r.op != "aten.detach" or not r.output_shapes:
            continue
        key = (tuple(r.output_shapes[0]), r.output_dtypes[0] if r.output_dtypes else "float32")
        if params.get(key, 0) > 0:
            params[key] -= 1
            idx.append(i)
            nbytes.append(math.prod(key[0]) * _ITEMSIZE.get(key[1], 4))
    unmatched = max(0, param_bytes - int(sum(nbytes)))
    return GradEvents(np.asarray(idx, dtype=np.int64), np.asarray(nbytes, dtype=np.int64), unmatched)


# ------------------------------------------------------------------------------------------- inputs


_NETWORK = re.compile(r"^\s*(?:(\d+)\s*[x×*]\s*)?(.+?)\s*$", re.IGNORECASE)


def parse_network(network: str) -> tuple[int, Link]:
    """``"ib-hdr"`` -> (1, HDR); ``"8x ib-hdr"`` -> (8 NICs per node, HDR). A usage error for anything else."""
    from traincost.hardware.catalog import resolve_link

    m = _NETWORK.match(network) if isinstance(network, str) else None
    if not m or not m.group(2):
        raise TraincostUsageError(f"network must be a network link such as 'ib-hdr' or '8x ib-hdr', got {network!r}")
    nics = int(m.group(1) or 1)
    if nics < 1:
        raise TraincostUsageError(f"network needs at least 1 NIC per node, got {network!r}")
    return nics, resolve_link(m.group(2), kind="network")


def check_parallel(gpus: int, nodes: int, network: str | None) -> None:
    """Validate the data-parallel parameters (usage errors naming the bad value)."""
    for name, value in (("gpus", gpus), ("nodes", nodes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise TraincostUsageError(f"{name} must be a positive integer, got {value!r}")
    if gpus % nodes:
        raise TraincostUsageError(f"gpus={gpus} is not divisible by nodes={nodes} (same GPUs on every node)")
    if nodes > 1 and network is None:
        raise TraincostUsageError(f"nodes={nodes} needs a network between the nodes, e.g. network='ib-hdr' or "
                                  "'8x ib-hdr' (8 NICs per node)")
    if network is not None:
        parse_network(network)


def fabric_for(profile: DeviceProfile, *, gpus: int, nodes: int = 1, network: str | None = None) -> Fabric:
    """The fabric of ``gpus`` GPUs of ``profile``'s catalog GPU on ``nodes`` servers: the GPU's intra-node
    link (:func:`traincost.hardware.catalog.intra_node_link`; PCIe 4 for a profile outside the catalog) and
    ``network`` between nodes."""
    from traincost.hardware.catalog import intra_node_link, load_gpus, resolve_link

    check_parallel(gpus, nodes, network)
    spec: GPUSpec | None = next((g for g in load_gpus() if g.key == profile.catalog_key), None)
    intra = intra_node_link(spec) if spec is not None else resolve_link("pcie4")
    net_bw, net_lat, net_name = None, 0.0, ""
    if network is not None and nodes > 1:
        nics, link = parse_network(network)
        net_bw = nics * link.busbw_bytes_per_s
        net_lat = link.hop_latency_us * 1e-6
        net_name = f"{nics}x {link.key}" if nics > 1 else link.key
    return Fabric(gpus=gpus, nodes=nodes, intra_busbw_bytes_per_s=intra.busbw_bytes_per_s,
                  intra_hop_latency_s=intra.hop_latency_us * 1e-6, net_busbw_bytes_per_s=net_bw,
                  net_hop_latency_s=net_lat, intra_link=intra.key, network=net_name)


# ------------------------------------------------------------------------------------------- the step


@dataclass(frozen=True)
class DataParallel:
    """A data-parallel step on ``gpus`` GPUs (seconds unless ``_ms``).

    ``allreduce_ms``: all buckets' all-reduce time, summed (what the comm stream is busy);
    ``exposed_comm_ms``: what the step grows by (communication not hidden behind backward);
    ``step_ms``: the single-GPU step + exposed communication; ``scaling_efficiency``:
    throughput on G GPUs / (G x one GPU) = single step / data-parallel step.
    """

    gpus: int
    nodes: int
    single_step_ms: float
    step_ms: float
    allreduce_ms: float
    exposed_comm_ms: float
    scaling_efficiency: float
    grad_bytes: int
    buckets: list[Bucket] = field(default_factory=list)
    intra_link: str = ""
    network: str = ""
    unmatched_grad_bytes: int = 0

    @property
    def exposed_comm_s(self) -> float:
        return self.exposed_comm_ms / 1e3


def _single(table: OpTable | None, pricing: Pricing | None, gpus: int, nodes: int) -> DataParallel:
    step_ms = pricing.timeline.step_s * 1e3 if pricing is not None else 0.0
    return DataParallel(gpus, nodes, step_ms, step_ms, 0.0, 0.0, 1.0, 0)


def _resume(pricing: Pricing, sync_index: int | None, start: int, h: float, d: float) -> tuple[float, float]:
    """(host, device) time after ops ``start:`` of ``pricing``, from host time ``h`` and the device free at ``d``.

    :func:`traincost.pricing.timeline.simulate`'s recurrence, op by op: its vectorised scan from a non-zero
    start rounds differently (last bit), which would move the stored data-parallel numbers.
    """
    for i in range(start, len(pricing.host_s)):
        if sync_index is not None and i == sync_index:
            h = max(h, d)
        h += float(pricing.host_s[i])
        d = max(d, h) + float(pricing.device_s[i])
    return h, d


def data_parallel(table: OpTable, pricing: Pricing, fabric: Fabric, grads: GradEvents | None = None, *,
                  cap_bytes: int = DDP_BUCKET_CAP_BYTES,
                  first_cap_bytes: int = DDP_FIRST_BUCKET_BYTES) -> DataParallel:
    """The data-parallel step of a priced single-GPU step (``pricing`` of ``table``) on ``fabric``.

    ``grads``: gradient-ready events (:func:`grad_events`); ``None`` puts all ``table.param_bytes`` at the end
    of backward (no overlap: an upper bound). One GPU: exactly the single-GPU step, efficiency 1.
    """
    tl = pricing.timeline
    if fabric.gpus <= 1:
        return _single(table, pricing, fabric.gpus, fabric.nodes)
    n = table.n
    end_s = np.cumsum(tl.exposed_host_s + pricing.device_s) if n else np.zeros(0)
    bwd = np.flatnonzero(table.phase == 1)
    last_bwd = int(bwd[-1]) if len(bwd) else (n - 1)
    bwd_end = float(end_s[last_bwd]) if n else 0.0
    if grads is None:
        grads = GradEvents(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), int(table.param_bytes))
    ready = [float(end_s[i]) for i in grads.op_index]
    sizes = [int(b) for b in grads.nbytes]
    if grads.unmatched_bytes > 0:
        ready.append(bwd_end)
        sizes.append(int(grads.unmatched_bytes))
    groups = ddp_buckets(sizes, cap_bytes=cap_bytes, first_cap_bytes=first_cap_bytes)
    b_bytes = [sum(sizes[i] for i in g) for g in groups]
    b_ready = [max(ready[i] for i in g) for g in groups]
    b_comm = [allreduce_s(b, fabric) for b in b_bytes]
    spans = overlap(b_ready, b_comm)
    comm_end = spans[-1][1] if spans else 0.0
    # the ops after backward, with the device free at max(backward end, last all-reduce end)
    host_cum = np.cumsum(pricing.host_s)
    h = float(host_cum[last_bwd]) if n else 0.0
    h, d = _resume(pricing, table.sync_index, last_bwd + 1, h, max(bwd_end, comm_end))
    step_s = max(h, d, tl.step_s)
    exposed_s = step_s - tl.step_s
    buckets = [Bucket(tuple(g), int(nb), r, c, s, e)
               for g, nb, r, c, (s, e) in zip(groups, b_bytes, b_ready, b_comm, spans)]
    return DataParallel(
        gpus=fabric.gpus, nodes=fabric.nodes, single_step_ms=tl.step_s * 1e3, step_ms=step_s * 1e3,
        allreduce_ms=float(sum(b_comm)) * 1e3, exposed_comm_ms=exposed_s * 1e3,
        scaling_efficiency=tl.step_s / step_s if step_s > 0 else 1.0, grad_bytes=int(sum(sizes)),
        buckets=buckets, intra_link=fabric.intra_link, network=fabric.network,
        unmatched_grad_bytes=int(grads.unmatched_bytes))
