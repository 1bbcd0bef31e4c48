"""Two H200 hosts: each H200 dataset priced with each shipped H200 profile. Asserts nothing.

    python benchmarks/h200_hosts.py [--cache FILE] [--processes N]

The H200 datasets (``data/datasets/h200-families-*.csv``) were measured on two lent machines with
the same GPU, driver and torch but other hosts (2026-11-28: ``h200.json``; 2026-12-04:
``h200-2026-12-04.json``, whose eager dispatch is 1.5x slower). For every (dataset, profile) pair: the
analytic model's median / p90 absolute percentage error and the median ``log(measured / analytic)``, overall
and per family. A row priced with its own host's profile is the calibrated case; with the other host's, what
a user whose host was not calibrated gets.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ROOT / "data" / "datasets"
PROFILES = ROOT / "data" / "profiles"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "traincost-residual-features.csv"),
                        help="feature cache CSV (rows walked by the same code are not walked again)")
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()

    from traincost.hardware.profile import load_profile
    from traincost.sweeps.bench import read_dataset
    from traincost.sweeps.fit import ape_summary, build_frame, resolve_row_profile

    profiles = [load_profile(p) for p in sorted(PROFILES.glob("h200*.json"))]
    print(f"{'dataset':<38} {'priced with':<30} {'n':>5}  {'median':>6} {'p90':>6}  {'log(m/a)':>8}  per family")
    for path in sorted(DATASETS.glob("h200-families-*.csv")):
        own = resolve_row_profile(read_dataset(path)[0]).name  # the profile the rows name (their host's)
        for prof in profiles:
            # given under the name the rows resolve to, so that it prices them whichever host it measured
            as_own = dataclasses.replace(prof, name=own)
            fr = build_frame([path], processes=args.processes, profiles=[as_own], cache=args.cache)
            m = fr.meta
            overall = ape_summary(m["analytic_ms"], m["measured_ms"])
            fam = {f: ape_summary(g["analytic_ms"], g["measured_ms"])["median_ape"] for f, g in m.groupby("family")}
            print(f"{path.name:<38} {prof.name[:30]:<30} {len(fr):>5}  {overall['median_ape']:6.1f} "
                  f"{overall['p90_ape']:6.1f}  {np.median(np.log(m['measured_ms'] / m['analytic_ms'])):+8.3f}  "
                  + " ".join(f"{k} {v:.1f}" for k, v in fam.items()))


if __name__ == "__main__":
    main()
