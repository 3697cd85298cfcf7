"""A headless Chromium driven over the DevTools protocol: load a console page, wait (bounded) until
its graphs have settled, and report what a person would have seen go wrong.

Used by tests/integration/test_console.py and bench/console.py. Debian's `chromium` is installed
by infra/install-system-deps.sh (test setup). The launch flags work offline and as root; the profile
is a new temporary folder, removed on close. No selenium or webdriver: one websocket to the page.

What `Chromium.load` reports (`PageLoad`): the document's HTTP status (a console template whose
query fails is a 500 from Prometheus), every uncaught JavaScript exception, console.error and
browser log error (a 404 script, a failed request), each graph's state from the console library
(`data-kp-state`: drawn / no-data / error, see infra/prometheus/console_libraries/kpsandbox.lib)
and when the last graph settled, in ms after navigation start.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any, Final

from websockets.sync.client import ClientConnection, connect

LAUNCH_FLAGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1400,1000",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",  # the chosen port is read from DevToolsActivePort
)
START_TIMEOUT_S: Final = 30.0
COMMAND_TIMEOUT_S: Final = 30.0
LOAD_TIMEOUT_S: Final = 30.0
SETTLE_TIMEOUT_S: Final = 30.0
POLL_S: Final = 0.02
STOP_TIMEOUT_S: Final = 10.0
HTTP_TIMEOUT_S: Final = 5.0
MESSAGE_SIZE_MAX: Final = 64 * 1024 * 1024  # a full-page screenshot is one message
EVENTS_KEPT_MAX: Final = 10_000  # events collected per page load; the rest are dropped

# Graph states as the console library writes them; `loading` until its queries have answered.
GRAPH_STATES_JS: Final = """(() => {
  const graphs = {};
  document.querySelectorAll('[data-kp-state]').forEach(n => { graphs[n.id] = n.getAttribute('data-kp-state'); });
  const settled = window.KP ? Object.values(window.KP.settledAt) : [];
  const nav = performance.getEntriesByType('navigation')[0];
  return {graphs: graphs, settled_ms: settled.length ? Math.max(...settled) : null,
          load_ms: nav ? nav.loadEventEnd : null};
})()"""


def chromium_binary() -> str | None:
    """The Chromium on PATH (Debian's `chromium`), or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class PageLoad:
    """What happened when one page was loaded."""

    url: str
    status: int | None = None
    load_ms: float | None = None  # navigation start → load event end
    settled_ms: float | None = None  # navigation start → the last graph drawn (or found empty)
    graphs: dict[str, str] = field(default_factory=dict)  # graph id → drawn / no-data / error / loading
    errors: list[str] = field(default_factory=list)
    screenshot: Path | None = None

    @property
    def problems(self) -> list[str]:
        """Everything that makes the page wrong for an operator, one line each (empty: fine)."""
        found = [f"HTTP {self.status}"] if self.status != 200 else []
        found += self.errors
        found += [f"graph {gid}: {state}" for gid, state in sorted(self.graphs.items()) if state != "drawn"]
        return found


class Chromium:
    """One headless browser with one tab; `load` pages in it one after another. Close it (or use
    `with`): the process is stopped and its temporary profile removed."""

    def __init__(self, binary: str | None = None) -> None:
        found = binary or chromium_binary()
        if found is None:
            raise RuntimeError("chromium was not found on PATH — install it: `apt-get install chromium` "
                               "(infra/install-system-deps.sh does, as root)")  # fmt: skip
        self._profile = Path(tempfile.mkdtemp(prefix="kpsandbox-chromium-"))
        self._process = subprocess.Popen(
            [found, *LAUNCH_FLAGS, f"--user-data-dir={self._profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._ids = count(1)
        self._events: list[dict[str, Any]] = []
        try:
            port = self._devtools_port()
            self._ws = self._open_tab(port)
            for domain in ("Page", "Runtime", "Log", "Network"):
                self._send(f"{domain}.enable")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _devtools_port(self) -> int:
        marker = self._profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"chromium exited with status {self._process.returncode} while starting")
            lines = marker.read_text().split() if marker.exists() else []
            if lines:
                return int(lines[0])
            time.sleep(0.05)
        raise RuntimeError(f"chromium did not open its DevTools port within {START_TIMEOUT_S:.0f} s")

    @staticmethod
    def _open_tab(port: int) -> ClientConnection:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=HTTP_TIMEOUT_S) as response:
            targets = json.loads(response.read())
        page = next(t for t in targets if t.get("type") == "page")
        return connect(page["webSocketDebuggerUrl"], max_size=MESSAGE_SIZE_MAX, open_timeout=HTTP_TIMEOUT_S)

    def _send(self, method: str, timeout_s: float = COMMAND_TIMEOUT_S, **params: Any) -> dict[str, Any]:
        """Sends one command and returns its result; events read meanwhile are kept for `load`."""
        ident = next(self._ids)
        self._ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        deadline = time.monotonic() + timeout_s
        while True:
            message = self._receive(deadline, what=method)
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"DevTools {method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    def _receive(self, deadline: float, *, what: str) -> dict[str, Any]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no answer from chromium for {what}")
        try:
            message: dict[str, Any] = json.loads(self._ws.recv(timeout=left))
        except TimeoutError:
            raise TimeoutError(f"no answer from chromium for {what}") from None
        if "method" in message and len(self._events) < EVENTS_KEPT_MAX:
            self._events.append(message)
        return message

    def _evaluate(self, expression: str) -> Any:
        result = self._send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"evaluating in the page failed: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def load(self, url: str, *, screenshot: Path | None = None, settle_timeout_s: float = SETTLE_TIMEOUT_S) -> PageLoad:
        """Navigates to `url`, waits for the load event and then until no graph is `loading` (each
        wait bounded), and returns what happened; saves a full-page PNG to `screenshot` if given."""
        # From a blank page, so a URL that differs from the last one only by its #fragment is a
        # full load too (and the timings below start from a real navigation).
        self._navigate("about:blank")
        page = PageLoad(url)
        self._navigate(url)
        deadline = time.monotonic() + settle_timeout_s
        while True:
            state = self._evaluate(GRAPH_STATES_JS)
            page.graphs, page.settled_ms, page.load_ms = state["graphs"], state["settled_ms"], state["load_ms"]
            if "loading" not in page.graphs.values() or time.monotonic() > deadline:
                break
            time.sleep(POLL_S)
        page.status, page.errors = _document_status(self._events, url), _errors(self._events)
        if screenshot is not None:
            page.screenshot = self.screenshot(screenshot)
        return page

    def _navigate(self, url: str) -> None:
        """Navigates and waits (bounded) for the load event; events are collected from here on."""
        self._events.clear()
        self._send("Page.navigate", url=url)
        deadline = time.monotonic() + LOAD_TIMEOUT_S
        while not any(e["method"] == "Page.loadEventFired" for e in self._events):
            self._receive(deadline, what=f"the load event of {url}")

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page (beyond the window's height)."""
        size = self._send("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = self._send("Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        """Stops the browser (bounded) and removes its profile."""
        ws = getattr(self, "_ws", None)
        if ws is not None:
            ws.close()
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(STOP_TIMEOUT_S)
        shutil.rmtree(self._profile, ignore_errors=True)


def _document_status(events: list[dict[str, Any]], url: str) -> int | None:
    for event in events:
        if event["method"] == "Network.responseReceived" and event["params"].get("type") == "Document":
            return int(event["params"]["response"]["status"])
    return None


def _errors(events: list[dict[str, Any]]) -> list[str]:
    """Uncaught exceptions, console.error calls and the browser's own error log (failed loads)."""
    found = []
    for event in events:
        method, params = event["method"], event["params"]
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            found.append(f"JavaScript exception: {text}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            found.append(f"console.error: {args}")
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            entry = params["entry"]
            found.append(f"browser log: {entry.get('text')} {entry.get('url', '')}".strip())
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            found.append(f"request failed: {params.get('errorText')}")
    return found
