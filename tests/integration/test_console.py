"""The operator console in a real browser (headless Chromium, tests/browser.py): after a short run
every page loads with no query error, no JavaScript error and no graph without data; against a
Prometheus with no data each page says "no data yet" instead. Screenshots of every page are saved
under reports/console-screenshots/<run id>/ (printed; `pytest -s` shows where)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from infra.local import procs
from infra.local.prometheus import console_flags, console_served, prometheus_version
from tests.browser import Chromium, chromium_binary
from tests.conftest import REPO_ROOT, RUN_ID
from tests.console_pages import PAGES, graphs
from tests.integration.operator_support import OperatorStack
from tests.integration.test_ledger_support import free_port

SCREENSHOTS: Final = REPO_ROOT / "reports" / "console-screenshots" / RUN_ID
EMPTY_START_TIMEOUT_S: Final = 30.0
SETTLED_MS_MAX: Final = 10_000.0  # a generous ceiling here; bench/console.py measures the 2 s target


@pytest.fixture(scope="session")
def browser() -> Iterator[Chromium]:
    """One headless Chromium for the session."""
    if chromium_binary() is None:
        pytest.fail("chromium is not installed: run `make deps` as root (infra/install-system-deps.sh)")
    with Chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def empty_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Prometheus of our own with the console flags, scraping nothing: no data at all."""
    home = tmp_path_factory.mktemp("empty-prometheus")
    (home / "prometheus.yml").write_text("global:\n  scrape_interval: 5s\nscrape_configs: []\n")
    port = free_port()
    argv = ["prometheus", f"--config.file={home / 'prometheus.yml'}", f"--storage.tsdb.path={home / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}", *console_flags()]  # fmt: skip
    with (home / "log").open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + EMPTY_START_TIMEOUT_S
        while prometheus_version(url) is None:
            assert process.poll() is None and time.monotonic() < deadline, (home / "log").read_text()[-2000:]
            time.sleep(0.2)
        yield url
    finally:
        procs.terminate(process.pid)


def _screenshot(kind: str, page: str) -> Path:
    return SCREENSHOTS / f"{kind}-{page.removesuffix('.html')}.png"


@pytest.mark.parametrize("page", PAGES)
def test_a_page_without_data_says_no_data_yet(empty_prometheus: str, browser: Chromium, page: str) -> None:
    """Bad input: no sandbox data at all is a 'no data yet' page, not an error or a blank."""
    load = browser.load(f"{empty_prometheus}/consoles/{page}", screenshot=_screenshot("empty", page))
    print(f"screenshot: {load.screenshot}")
    assert load.status == 200 and not load.errors, load.errors
    assert load.graphs == {graph.id: "no-data" for graph in graphs(page)}
    text = browser_text(browser)
    assert "No data yet" in text and "no data yet" in text


def browser_text(browser: Chromium) -> str:
    """The rendered page's visible text."""
    return str(browser._evaluate("document.body.innerText"))


@pytest.mark.parametrize("page", PAGES)
def test_after_a_run_every_graph_of_a_page_is_drawn_without_errors(
    operator_stack: OperatorStack,
    browser: Chromium,
    page: str,
) -> None:
    """Every console page after a short run: HTTP 200, no JavaScript or query error, each graph drawn
    with data, within a bounded time."""
    assert console_served(operator_stack.prometheus), "the test stack's Prometheus does not serve the console"
    load = browser.load(f"{operator_stack.prometheus}/consoles/{page}", screenshot=_screenshot("run", page))
    print(f"screenshot: {load.screenshot}  ({page}: load {load.load_ms} ms, graphs settled {load.settled_ms} ms)")
    expected = {graph.id for graph in graphs(page)}
    assert set(load.graphs) == expected, "a graph of the page did not start (see the screenshot)"
    missing = {q: why for q, why in operator_stack.missing.items() if any(q in g.exprs for g in graphs(page))}
    assert not load.problems, f"{load.problems}\nqueries without data when the wait ended: {missing}"
    assert load.settled_ms is not None and load.settled_ms < SETTLED_MS_MAX
