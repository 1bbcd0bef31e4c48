"""How fast the web app (``traincost serve``) answers a comparison of 1, 5 and 20 GPUs. Asserts nothing.

    python benchmarks/serve_speed.py [--model resnet50] [--batch-size 64] [--repeats 5]

Serves the app in a background thread (uvicorn, loopback) and asks ``/api/compare`` over HTTP, as the page does.
For each GPU count: the first request (a new question: one walk of the model, priced on each GPU), the median of
``--repeats`` repeats (the same question: answered from the cache), and a changed run (other epochs: a new
question again). Target: a 20-GPU comparison answers in under 1 s after the first request.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet50")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    import httpx

    from traincost.queries import gpu_catalog
    from traincost.web.app import Background

    names = [g["name"] for g in gpu_catalog()]
    with Background(time_limit_s=600) as server, httpx.Client(base_url=server.url, timeout=600) as http:
        def ask(gpus: list[str], epochs: int) -> float:
            query = {"model": args.model, "gpus": ",".join(gpus), "batch_size": str(args.batch_size),
                     "epochs": str(epochs), "dataset_size": "1281167"}
            start = time.perf_counter()
            response = http.get("/api/compare", params=query)
            elapsed = time.perf_counter() - start
            response.raise_for_status()
            assert len(response.json()) == len(gpus)
            return elapsed

        start = time.perf_counter()
        http.get("/api/gpus").raise_for_status()
        print(f"{platform.processor() or platform.machine()}, python {platform.python_version()}; "
              f"{args.model} batch {args.batch_size}, 90 epochs of 1,281,167 samples")
        print(f"server up and catalog answered: {time.perf_counter() - start:.2f} s")
        print(f"{'GPUs':>5} {'first request s':>16} {'repeat s (median)':>18} {'other epochs s':>15}  target")
        for n in (1, 5, 20):
            gpus = names[:n] if n > 1 else ["A100"]
            first = ask(gpus, 90)
            repeat = statistics.median(ask(gpus, 90) for _ in range(args.repeats))
            changed = ask(gpus, 30)
            target = f"repeat < 1 s: {'met' if repeat < 1 else 'MISSED'}" if n == 20 else ""
            print(f"{n:5d} {first:16.3f} {repeat:18.4f} {changed:15.3f}  {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
