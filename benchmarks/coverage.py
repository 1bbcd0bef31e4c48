"""Model coverage: which timm and torchvision models walk one training step with every op priced. Asserts nothing.

    python benchmarks/coverage.py [--source timm|torchvision|all] [--limit N] [--batch-size 2]
                                  [--csv data/coverage/timm.csv] [--resume]

Each model is built without weights at its default input size and walked (forward, loss, backward, SGD
step, fp32) on the meta device, as ``traincost count <name>`` does. A model counts as covered when the
walk succeeds and no op is unpriced. The rest are listed, grouped by reason: the build fails, the walk
fails (with the first line of the error), or ops are unpriced (with their names). ``--csv`` keeps one row
per model (name, status, reason, seconds), written as it goes; ``--resume`` skips the models a CSV
already holds, so a long sweep can be continued.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path

FIELDS = ("source", "model", "status", "reason", "input_shape", "ops", "seconds")


def _names(source: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if source in ("timm", "all"):
        from traincost.flopmodel import timm_models
        out += [("timm", timm_models.PREFIX + n) for n in timm_models.names()]
    if source in ("torchvision", "all"):
        from traincost.flopmodel import vision
        out += [("torchvision", n) for n in vision.names()]
    return out


def _one(source: str, name: str, batch_size: int) -> dict:
    from traincost.errors import TraincostError
    from traincost.flopmodel.count import count, load_model

    start = time.perf_counter()
    row = {"source": source, "model": name, "input_shape": "", "ops": 0}
    try:
        loaded = load_model(name)
        row["input_shape"] = "x".join(map(str, loaded.sample_shape))
    except TraincostError as exc:
        return {**row, "status": "build", "reason": str(exc).splitlines()[0][:300],
                "seconds": round(time.perf_counter() - start, 2)}
    try:
        result = count(loaded.spec if loaded.spec is not None else name, batch_size=batch_size)
    except (TraincostError, RecursionError) as exc:
        return {**row, "status": "walk", "reason": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
                "seconds": round(time.perf_counter() - start, 2)}
    unpriced = result.unpriced_ops
    row["ops"] = result.ops
    status, reason = ("ok", "") if not unpriced else ("unpriced", " ".join(sorted(unpriced)))
    return {**row, "status": status, "reason": reason, "seconds": round(time.perf_counter() - start, 2)}


def _read(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", choices=("timm", "torchvision", "all"), default="all")
    ap.add_argument("--limit", type=int, default=None, help="only the first N models (a quick look)")
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--csv", type=Path, default=None, help="write one row per model here, as it goes")
    ap.add_argument("--resume", action="store_true", help="skip models the --csv file already holds")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")

    names = _names(args.source)[: args.limit]
    rows = _read(args.csv) if args.csv is not None and args.resume else []
    done = {r["model"] for r in rows}
    writer = None
    handle = None
    if args.csv is not None:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        fresh = not (args.resume and args.csv.is_file())
        handle = args.csv.open("w" if fresh else "a", newline="", encoding="utf-8")
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        if fresh:
            writer.writeheader()
    try:
        for source, name in names:
            if name in done:
                continue
            row = _one(source, name, args.batch_size)
            rows.append(row)
            if writer is not None:
                writer.writerow(row)
                handle.flush()
    finally:
        if handle is not None:
            handle.close()

    wanted = {n for _, n in names}
    rows = [r for r in rows if r["model"] in wanted]
    _report(rows, args)
    return 0


def _report(rows: list[dict], args: argparse.Namespace) -> None:
    import timm
    import torch
    import torchvision

    print(f"# model coverage: torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"timm {timm.__version__}; batch {args.batch_size}, fp32, SGD")
    print()
    print("| source | models | walk, every op priced | % | build fails | walk fails | ops unpriced | s per model |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    by_source: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_source[r["source"]].append(r)
    for source, group in sorted(by_source.items()):
        n = len(group)
        count = {s: sum(r["status"] == s for r in group) for s in ("ok", "build", "walk", "unpriced")}
        secs = sum(float(r["seconds"]) for r in group) / max(n, 1)
        print(f"| {source} | {n} | {count['ok']} | {100 * count['ok'] / max(n, 1):.1f} | {count['build']} | "
              f"{count['walk']} | {count['unpriced']} | {secs:.2f} |")
    failures = [r for r in rows if r["status"] != "ok"]
    if not failures:
        return
    print()
    print("## not covered, by reason")
    groups: dict[str, list[str]] = defaultdict(list)
    for r in failures:
        reason = r["reason"]
        key = f"{r['status']}: {reason[:160]}"
        groups[key].append(r["model"])
    for key, models in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        print(f"- {key} ({len(models)}): {', '.join(sorted(models))}")


if __name__ == "__main__":
    sys.exit(main())
