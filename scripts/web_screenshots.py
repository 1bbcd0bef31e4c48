"""Screenshots of the web page (``traincost serve``) at desktop and phone width, for docs/web.md.

Serves the app in a background thread, opens the shared-link comparison in headless Chromium (Playwright with
the system browser) and writes ``docs/web-desktop.png`` (1280 x 900) and ``docs/web-phone.png`` (390 x 844,
the whole page). Usage: ``python scripts/web_screenshots.py [--chromium PATH] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

QUERY = "/?model=resnet50&gpus=A100,H100%20SXM,L4&batch_size=64&epochs=90&dataset_size=1281167"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from traincost.web.app import Background

    with Background(time_limit_s=120) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=ARGS)
        try:
            for name, size, full in (("desktop", (1280, 900), False), ("phone", (390, 844), True)):
                page = browser.new_page(viewport={"width": size[0], "height": size[1]},
                                        device_scale_factor=1)
                page.goto(server.url + QUERY)
                page.wait_for_selector("#compare-table tbody tr", timeout=120_000)
                page.wait_for_function("() => !document.querySelector('#results').hasAttribute('aria-busy')")
                path = args.out / f"web-{name}.png"
                page.screenshot(path=str(path), full_page=full)
                print(f"wrote {path}")
                page.close()
        finally:
            browser.close()


if __name__ == "__main__":
    main()
