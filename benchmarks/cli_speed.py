"""How fast the CLI starts, as ratios to importing torch measured in the same run. Asserts nothing.

    python benchmarks/cli_speed.py [--repeats 3]

Each command runs in a fresh process ``--repeats`` times (median wall seconds). Targets: ``traincost --help`` and
every subcommand's ``--help`` under 0.3x ``python -c "import torch"`` (they need no torch); ``traincost predict
resnet50 --device "A100 SXM 80GB" --batch-size 256`` under 1.2x ``python -c "import torch, torchvision"`` (it
needs both: the model is torchvision's).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

SUBCOMMANDS = ("count", "predict", "compare", "gpus", "calibrate", "bench", "merge", "fit", "evaluate", "insights")


def wall_s(args: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    cli = [shutil.which("traincost") or "traincost"]
    torch_s = wall_s([sys.executable, "-c", "import torch"], args.repeats)
    vision_s = wall_s([sys.executable, "-c", "import torch, torchvision"], args.repeats)
    print(f"python -c 'import torch'                 {torch_s:6.2f} s")
    print(f"python -c 'import torch, torchvision'    {vision_s:6.2f} s")
    rows = [("traincost --help", cli + ["--help"], torch_s, 0.3)]
    rows += [(f"traincost {c} --help", cli + [c, "--help"], torch_s, 0.3) for c in SUBCOMMANDS]
    rows.append(("traincost predict resnet50 (A100, b256)",
                 cli + ["predict", "resnet50", "--device", "A100 SXM 80GB", "--batch-size", "256"], vision_s, 1.2))
    for label, command, base, target in rows:
        s = wall_s(command, args.repeats)
        ratio = s / base
        print(f"{label:44s} {s:6.2f} s  {ratio:5.2f}x  (target < {target}x: {'met' if ratio < target else 'MISSED'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
