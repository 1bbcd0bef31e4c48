"""The page of ``traincost serve`` in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright.

Skipped only where no chromium (or Playwright) is found and ``CI`` is not set; under CI it fails instead.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
QUERY = {"model": "resnet18", "gpus": "A100,H100 SXM,L4", "batch_size": "64", "epochs": "90",
         "dataset_size": "1281167"}
WAIT_MS = 30_000


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is needed for the browser tests under CI")
    pytest.skip(f"{what} not found")


@pytest.fixture(scope="module")
def chromium_path() -> str:
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if not found:
        _missing("chromium (apt-get install chromium)")
    return found


@pytest.fixture(scope="module")
def server():
    from traincost.web.app import Background

    with Background(time_limit_s=60) as running:
        yield running


@pytest.fixture(scope="module")
def browser(chromium_path):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright (pip install playwright)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium_path, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(WAIT_MS)
    yield opened
    context.close()


def _api(server, path: str, query: dict) -> object:
    import httpx

    response = httpx.get(server.url + path, params=query, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def _idle(page) -> None:
    """The page has its answer: no request in flight."""
    page.wait_for_function("() => !document.querySelector('#results').hasAttribute('aria-busy')")


def _rows(page) -> list[str]:
    return page.locator("#compare-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.device)")


def test_a_shared_link_renders_the_comparison_without_a_click(server, page):
    page.goto(server.url + "/?" + urlencode(QUERY))
    page.wait_for_selector("#compare-table tbody tr")
    _idle(page)
    expected = _api(server, "/api/compare", QUERY)
    assert _rows(page) == [row["device"]["name"] for row in expected]
    first = page.locator("#compare-table tbody tr").first
    cells = first.locator("td")
    assert cells.nth(2).locator("strong").inner_text() == f"{expected[0]['iteration_ms']:.1f}"
    assert cells.nth(3).inner_text() == f"{expected[0]['samples_per_s']:,.0f}"
    assert ("pareto" in (first.get_attribute("class") or "")) == expected[0]["pareto"]
    # the form shows the link's values, the chart one point per priced (GPU, provider), the layers of the first
    assert page.input_value("#model") == "resnet18" and page.input_value("#dataset_size") == "1281167"
    priced = sum(1 for row in expected for c in row["ranking"] if c["usd"] is not None)
    assert page.locator("#chart circle").count() == priced
    assert page.locator("#chart circle.pareto").count() == sum(c["pareto"] for row in expected for c in row["ranking"])
    top = expected[0]["breakdown"][0]["module"]
    assert page.locator("#layers-table tbody tr").first.locator("td").first.inner_text() == top
    assert "90 epochs of 1,281,167 samples" in page.inner_text("#subhead")


def test_changing_the_batch_updates_the_table_and_the_address(server, page):
    page.goto(server.url + "/?" + urlencode(QUERY))
    page.wait_for_selector("#compare-table tbody tr")
    _idle(page)
    page.fill("#batch_size", "128")
    page.dispatch_event("#batch_size", "change")
    page.wait_for_function("() => document.querySelector('#subhead').textContent.startsWith('batch 128')")
    _idle(page)
    expected = _api(server, "/api/compare", {**QUERY, "batch_size": "128"})
    first = page.locator("#compare-table tbody tr").first.locator("td")
    assert _rows(page) == [row["device"]["name"] for row in expected]
    assert first.nth(2).locator("strong").inner_text() == f"{expected[0]['iteration_ms']:.1f}"
    assert parse_qs(urlparse(page.url).query)["batch_size"] == ["128"]
    # the layers of another GPU on request
    other = expected[-1]["device"]["name"]
    page.select_option("#layers-gpu", other)
    assert page.locator("#layers-table tbody tr").first.locator("td").first.inner_text() == \
        expected[-1]["breakdown"][0]["module"]


def test_a_bad_value_shows_the_error_next_to_its_field(server, page):
    page.goto(server.url + "/?" + urlencode(QUERY))
    page.wait_for_selector("#compare-table tbody tr")
    _idle(page)
    page.fill("#batch_size", "0")
    page.dispatch_event("#batch_size", "change")
    page.wait_for_selector("#batch_size-error:not(:empty)")
    assert page.inner_text("#batch_size-error") == "batch_size must be a positive integer, got 0"
    assert "invalid" in page.get_attribute('.field[data-field="batch_size"]', "class")
    assert page.get_attribute("#batch_size", "aria-invalid") == "true"
    assert page.inner_text("#epochs-error") == ""
    # a GPU name the catalog does not know: under the GPU picker
    page.fill("#batch_size", "64")
    page.fill("#gpu-filter", "NOPE9000")
    page.press("#gpu-filter", "Enter")
    page.wait_for_selector("#gpus-error:not(:empty)")
    assert "unknown GPU 'NOPE9000'" in page.inner_text("#gpus-error")
    assert page.inner_text("#batch_size-error") == ""


def test_a_family_shows_its_parameters_as_fields_and_they_reach_the_link(server, page):
    page.goto(server.url + "/?" + urlencode({"model": "fc", "gpus": "L4", "batch_size": "32", "hidden_width": "64"}))
    page.wait_for_selector("#compare-table tbody tr")
    _idle(page)
    assert page.input_value("#param-hidden_width") == "64"
    assert page.get_attribute("#param-classes", "placeholder") == "10"
    page.fill("#param-classes", "7")
    page.wait_for_function("() => document.querySelector('#head').textContent.includes('classes=7')")
    query = parse_qs(urlparse(page.url).query)
    assert query["classes"] == ["7"] and query["hidden_width"] == ["64"]
    assert json.loads(json.dumps(query))  # a plain, shareable query string
