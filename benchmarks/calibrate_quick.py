"""Does ``traincost calibrate --quick`` fit its time budget on this machine, and are its numbers plausible?

    python benchmarks/calibrate_quick.py [--device cpu] [--runs 1] [--json]

The tests run the quick calibration without a deadline (tests/test_microbench.py: which points run must
not depend on how loaded the machine is) and assert structure only. The parts that depend on the machine
and its load live here: with the real settings (quick CPU deadline 50 s), each run must

* finish within :data:`BUDGET_S` (the quick grid's promise: under a minute on 2 cores),
* measure the whole grid: nothing skipped past the deadline, so the channels_last convolutions and the
  kernel curves (measured last) are there,
* give plausible numbers for any CPU of the last decade (:data:`PLAUSIBLE`: FLOP/s, bytes/s, seconds).

A host with another busy process fails the first two (``properties["host_load"]`` says how busy it was:
other processes' CPU seconds per wall second); run it on a quiet machine. Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from traincost.calibrate.assemble import refit
from traincost.calibrate.grid import _KERNEL_OPS
from traincost.calibrate.measure import calibrate
from traincost.hardware.profile import DeviceProfile

#: Wall seconds a quick CPU calibration may take.
BUDGET_S = 60.0

#: (low, high) bounds of a quick CPU profile's numbers, exclusive.
PLAUSIBLE = {
    "matmul fp32 peak (FLOP/s)": (1e9, 1e14),
    "matmul fp32 latency (s)": (-1e-12, 0.1),
    "memory peak (bytes/s)": (1e8, 1e12),
    "reduction peak (bytes/s)": (1e8, 1e12),
    "dispatch (s)": (1e-8, 1e-3),
}


def _values(p: DeviceProfile) -> dict[str, float]:
    mm = p.compute["matmul"]["fp32"]
    return {"matmul fp32 peak (FLOP/s)": mm.peak, "matmul fp32 latency (s)": mm.latency_s,
            "memory peak (bytes/s)": p.memory.peak, "reduction peak (bytes/s)": p.reduction.peak,
            "dispatch (s)": p.dispatch_s}


def check(p: DeviceProfile) -> dict[str, Any]:
    """The checks of one quick calibration: name -> (ok, detail)."""
    skipped = p.raw.get("skipped", [])
    deadline = [s for s in skipped if "deadline" in s["reason"]]
    again = refit(p)
    out: dict[str, Any] = {
        "within budget": (p.properties["calibration_s"] < BUDGET_S,
                          f"{p.properties['calibration_s']:.1f} s (budget {BUDGET_S:g} s)"),
        "nothing past the deadline": (not deadline, f"{len(deadline)} points skipped past the deadline, "
                                                    f"{len(skipped)} skipped in all"),
        "kernel curves": (set(p.kernels) == set(_KERNEL_OPS), ", ".join(sorted(p.kernels)) or "none"),
        "channels_last conv": ("fp32_channels_last" in p.compute.get("conv", {}),
                               ", ".join(sorted(p.compute.get("conv", {}))) or "none"),
        "no errors": (not p.raw["errors"], "; ".join(e["error"] for e in p.raw["errors"])[:200]),
        "refit reproduces": (again.compute == p.compute and again.kernels == p.kernels
                             and again.memory == p.memory and again.optimizer == p.optimizer, ""),
    }
    for name, value in _values(p).items():
        lo, hi = PLAUSIBLE[name]
        out[name] = (lo < value < hi, f"{value:.3g} (plausible {lo:g} .. {hi:g})")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="device to calibrate [cpu]")
    parser.add_argument("--runs", type=int, default=1, help="quick calibrations to run [1]")
    parser.add_argument("--json", dest="as_json", action="store_true", help="print one JSON object per run")
    args = parser.parse_args()
    failed = False
    for i in range(args.runs):
        p = calibrate(args.device, quick=True)
        checks = check(p)
        failed |= not all(ok for ok, _ in checks.values())
        load = p.properties.get("host_load", {})
        if args.as_json:
            print(json.dumps({"run": i, "host_load": load,
                              "checks": {k: {"ok": ok, "detail": d} for k, (ok, d) in checks.items()}}))
            continue
        print(f"run {i + 1}/{args.runs}: {p.name}, other processes "
              f"{load.get('other_processes_cpu_s_per_wall_s')} CPU-s/s")
        for name, (ok, detail) in checks.items():
            print(f"  {'ok  ' if ok else 'FAIL'} {name:28s} {detail}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
