"""How fast traincost predicts (after imports). Prints a table; asserts nothing.

    python benchmarks/predict_speed.py [--repeat 5]

Targets: ``traincost.predict`` of ResNet-50 at batch 256 in under 0.3 s; ``traincost.compare`` on
20 GPUs in under 0.5 s (one walk, priced 20 times). The first call of a process also loads the shipped
profiles and the catalog (reported apart as "first call").
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import traincost
from traincost.api import resolve_device
from traincost.flopmodel.count import count
from traincost.pricing.optable import OpTable
from traincost.pricing.timeline import price

GPUS_20 = ["H200", "H100 SXM", "H100 PCIe", "A100 SXM 80GB", "A100 SXM 40GB", "A100 PCIe 80GB", "A100 PCIe 40GB",
           "L40S", "L4", "A10", "T4", "V100 SXM2 16GB", "V100 SXM2 32GB", "V100 PCIe 32GB", "P100", "RTX 4090",
           "RTX 3090", "RTX A6000", "B200", "GH200"]


def _time(fn, repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    traincost.predict("resnet18", device="A100", batch_size=8)  # first call: profiles, catalog, torch init
    first = time.perf_counter() - t0
    print(f"first call of the process (resnet18, loads profiles and catalog): {first:.3f} s")
    print(f"{'case':<52}{'median s':>10}{'min s':>8}")
    cases = [
        ("predict resnet50 b256 fp32 on A100", lambda: traincost.predict("resnet50", device="A100", batch_size=256)),
        ("predict resnet50 b256 bf16 cl adamw on H200",
         lambda: traincost.predict("resnet50", device="H200", batch_size=256, precision="bf16",
                                   channels_last=True, optimizer="adamw")),
        ("predict resnet50 b256 fp32 on cpu", lambda: traincost.predict("resnet50", device="cpu", batch_size=256)),
        ("compare resnet50 b256 fp32 on 20 GPUs",
         lambda: traincost.compare("resnet50", devices=GPUS_20, batch_size=256)),
        ("compare vit_b_16 b64 bf16 on 20 GPUs (fp16/bf16 GPUs)",
         lambda: traincost.compare("vit_b_16", devices=[g for g in GPUS_20 if g not in ("T4", "V100 SXM2 16GB",
                                                                                        "V100 SXM2 32GB",
                                                                                        "V100 PCIe 32GB", "P100")],
                                   batch_size=64, precision="bf16")),
    ]
    for label, fn in cases:
        med, best = _time(fn, args.repeat)
        print(f"{label:<52}{med:>10.3f}{best:>8.3f}")
    # the parts: the walk, and pricing one walk on 20 devices
    walk = count("resnet50", batch_size=256).walk
    profiles = [resolve_device(g) for g in GPUS_20]
    med, best = _time(lambda: count("resnet50", batch_size=256), args.repeat)
    print(f"{'  of which: walk resnet50 b256 (traincost.count)':<52}{med:>10.3f}{best:>8.3f}")
    med, best = _time(lambda: OpTable.from_walk(walk), args.repeat)
    print(f"{'  of which: per-op arrays from the walk':<52}{med:>10.4f}{best:>8.4f}")
    table = OpTable.from_walk(walk)
    med, best = _time(lambda: [price(table, p) for p in profiles], args.repeat)
    print(f"{'  of which: pricing on 20 profiles':<52}{med:>10.4f}{best:>8.4f}")


if __name__ == "__main__":
    main()
