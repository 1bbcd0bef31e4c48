"""Choose the residual's hyperparameters on some devices, judge them on another. Asserts nothing.

    python benchmarks/hyperparams.py [--cache FILE] [--seeds N] [--judge cpu-2core-x86_64]

A small grid of :class:`traincost.correction.estimator.ResidualModel` hyperparameters is scored by leave-one-family-out
cross-validation (the mean corrected median APE over ``--seeds`` seeds of the subsampling) on every committed
training frame. The grid point is **chosen on the frames other than ``--judge``** (the sum of their scores),
so the judged frame's number is not tuned on itself; the judged frame's score is printed for every point
only to show how far the choice is from the best that a peek would have picked.

Frames: the AMD EPYC CPU (``cpu-2core-x86_64``, three sweeps), the Intel Xeon CPU (three sweeps), both H200
hosts (``h200-families``). Uses the feature cache of ``benchmarks/residual.py``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from residual import (  # this folder: the committed training datasets
    CPU,
    H200,
    INTEL,
    lofo_seed_medians,
)

#: The grid: around the shipped defaults (depth 3, eta 0.05, 300 trees, min_child_weight 5).
GRID = {
    "max_depth": (2, 3, 4, 6),
    "learning_rate": (0.05, 0.1),
    "n_estimators": (300, 600),
    "min_child_weight": (5.0, 20.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "traincost-residual-features.csv"))
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3, help="seeds of the subsampling per grid point")
    parser.add_argument("--judge", default="cpu-2core-x86_64",
                        help="the frame left out of the choice (cpu-2core-x86_64, cpu-intel-xeon-2core, h200-families)")
    parser.add_argument("--objective", default=None, help="XGBoost objective (default: the estimator's default)")
    args = parser.parse_args()
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")

    from traincost.correction.estimator import ResidualModel
    from traincost.sweeps.fit import build_frame, combine_repeats

    frames = {"cpu-2core-x86_64": CPU, "cpu-intel-xeon-2core": INTEL, "h200-families": H200}
    if args.judge not in frames:
        parser.error(f"--judge must be one of {', '.join(frames)}, got {args.judge!r}")
    frames = {k: combine_repeats(build_frame(list(v), processes=args.processes, cache=args.cache))
              for k, v in frames.items() if v}
    base = {"objective": args.objective} if args.objective else {}
    defaults = ResidualModel(**base).get_params()
    points = [dict(zip(GRID, values)) for values in itertools.product(*GRID.values())]
    names = list(frames)
    print(f"objective {defaults['objective']}; leave-one-family-out corrected median APE, mean over "
          f"{args.seeds} seeds; chosen on {', '.join(n for n in names if n != args.judge)}; judged: {args.judge}")
    print(" ".join(f"{k:>16}" for k in GRID) + "".join(f"{n[:20]:>22}" for n in names) + f"{'choice score':>14}")
    scores = []
    t0 = time.perf_counter()
    for point in points:
        params = {**base, **point}
        row = {}
        for name, fr in frames.items():
            row[name] = float(np.mean(lofo_seed_medians(fr, params, args.seeds)))
        choice = sum(v for n, v in row.items() if n != args.judge)
        scores.append((choice, point, row))
        mark = " (defaults)" if all(defaults[k] == v for k, v in point.items()) else ""
        print(" ".join(f"{v:>16g}" for v in point.values()) + "".join(f"{row[n]:>22.2f}" for n in names)
              + f"{choice:>14.2f}{mark}")
        sys.stdout.flush()
    best = min(scores, key=lambda s: s[0])
    peek = min(scores, key=lambda s: s[2][args.judge])
    print(f"\nchosen without {args.judge}: {best[1]} -> {args.judge} {best[2][args.judge]:.2f}")
    print(f"best a peek at {args.judge} would pick: {peek[1]} -> {peek[2][args.judge]:.2f}")
    print(f"({len(points)} points in {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
