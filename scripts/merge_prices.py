"""How the 2026 price collection was merged into the shipped price table (append, dated history kept).

    python scripts/merge_prices.py

Reads data/reference/prices_2025_2026.csv and appends its on-demand rows to traincost/data/prices.csv (GPU names
through the catalog's resolver, the source's own name kept in notes). It refuses to run twice (the rows name their
source file), so it documents the merge and reproduces it on the table before it.
"""
import csv
import io
import sys
from pathlib import Path

from traincost.errors import TraincostUsageError
from traincost.hardware.catalog import load_gpus, resolve_gpu

ROOT = Path(__file__).resolve().parents[1]
REF = ROOT / "data" / "reference" / "prices_2025_2026.csv"
OUT = ROOT / "traincost" / "data" / "prices.csv"
PROVIDER = {"DataCrunch": "Datacrunch"}  # the shipped table's spelling (DataCrunch, now Verda)
mem = {g.key: g.memory_gb for g in load_gpus()}

with open(OUT, encoding="utf-8", newline="") as f:
    old_text = f.read()
old = list(csv.DictReader(io.StringIO(old_text)))
cols = list(old[0].keys())
if any("prices_2025_2026.csv" in r["notes"] for r in old):
    sys.exit("traincost/data/prices.csv already holds the rows of prices_2025_2026.csv: nothing to merge")

new, skipped = [], []
with open(REF, encoding="utf-8", newline="") as f:
    reader = csv.DictReader(f)
    for r in reader:
        line = reader.line_num
        if r["price_type"].strip() != "on-demand":
            skipped.append((line, r["gpu"], "not on-demand")); continue
        try:
            key = resolve_gpu(r["gpu"]).key
        except TraincostUsageError:
            skipped.append((line, r["provider"] + " " + r["gpu"], "GPU not in the catalog")); continue
        date = r["source_date"].strip()[:10]
        detail = r["source_date"].strip()[10:].strip()
        notes = []
        if r["notes"].strip():
            notes.append(r["notes"].strip())
        m = r["gpu_memory_gb"].strip()
        gpu_txt = f"source GPU {r['gpu']!r}" + (f" {m} GB" if m else "") + f" -> {key} (resolve_gpu)"
        if m and float(m) != mem[key]:
            gpu_txt += f"; catalog memory {mem[key]:g} GB"
        notes.append(gpu_txt)
        if r["per_gpu_price_origin"].strip():
            notes.append("per-GPU price: " + r["per_gpu_price_origin"].strip())
        if r["spot_usd_per_instance_hour"].strip():
            notes.append(f"spot ${r['spot_usd_per_instance_hour'].strip()}/instance-hour (same source and date; not used)")
        if r["uncertain"].strip():
            notes.append("uncertain (reference flag): " + r["uncertain"].strip().removeprefix("yes: "))
        if detail:
            notes.append("date " + detail)
        count = r["gpu_count"].strip()
        if not count:
            count = "1"
            notes.append("gpu_count not stated (the source gives a per-GPU rate): 1")
        if PROVIDER.get(r["provider"]):
            notes.append(f"provider {r['provider']!r} spelled as in the older rows")
        notes.append(f"from data/reference/prices_2025_2026.csv line {line}")
        new.append({
            "provider": PROVIDER.get(r["provider"], r["provider"]).strip(),
            "instance_type": r["instance_type"].strip(),
            "gpu_key": key,
            "gpu_count": count,
            "price_usd_per_gpu_hour": r["price_usd_per_gpu_hour"].strip(),
            "price_usd_per_instance_hour": r["price_usd_per_instance_hour"].strip(),
            "price_type": "on-demand",
            "region": r["region"].strip(),
            "source": f"{r['source'].strip()} ({r['source_ref'].strip()})",
            "source_date": date,
            "notes": "; ".join(notes),
        })

ident = lambda r: (r["provider"], r["instance_type"], r["gpu_key"], r["gpu_count"], r["region"], r["source_date"], r["price_usd_per_gpu_hour"])
dups = [ident(r) for r in new if [ident(x) for x in new].count(ident(r)) > 1]
print("rows in reference:", reader.line_num - 1, "merged:", len(new), "skipped:", skipped, "dups:", dups)
buf = io.StringIO()
w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
w.writerows(new)
sep = "" if old_text.endswith("\n") else "\n"
if "--write" in sys.argv:
    with open(OUT, "a", encoding="utf-8", newline="") as f:
        f.write(sep + buf.getvalue())
    print("written")
