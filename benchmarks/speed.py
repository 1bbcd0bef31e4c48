"""How fast traincost counts a training step (after imports). Prints a table; asserts nothing.

    python benchmarks/speed.py [--repeat 5]

Target: counting ResNet-50 at batch 256 in under 0.3 s after imports.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import traincost

CASES = [
    ("resnet50", 256, "fp32", False, "sgd"),
    ("resnet50", 256, "bf16", True, "adamw"),
    ("vgg16", 64, "fp32", False, "sgd"),
    ("vit_b_16", 64, "bf16", False, "adamw"),
    ("inception_v3", 32, "fp32", False, "sgd"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    traincost.count("resnet18", batch_size=8)  # warm caches (torch's first-call initialisation)
    print(f"{'model':<14}{'batch':>6}{'prec':>6}{'cl':>4}{'opt':>7}{'ops':>7}{'median s':>10}{'min s':>8}")
    for name, batch, precision, cl, opt in CASES:
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            result = traincost.count(name, batch_size=batch, precision=precision, channels_last=cl,
                                     optimizer=opt)
            times.append(time.perf_counter() - t0)
        print(f"{name:<14}{batch:>6}{precision:>6}{'y' if cl else 'n':>4}{opt:>7}{result.ops:>7}"
              f"{statistics.median(times):>10.3f}{min(times):>8.3f}")


if __name__ == "__main__":
    main()
