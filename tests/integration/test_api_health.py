"""`GET /healthz` covers the API, the ledger and the metrics consumer; `GET /readyz` the API process alone
(issue 9, item 2): a component that is down, or that hangs, is a 503 naming it and the fix, within a bound;
with the ledger and metrics running as their own processes it is 200. Also /docs through the real server."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import httpx
import pytest

from infra.settings import Settings
from tests.integration.test_api import HTTP_TIMEOUT_S, RunningApi, running_api
from tests.integration.test_ledger_support import REPO, free_ports, settle_env

APPS_START_TIMEOUT_S: Final = 60.0
APP_STOP_TIMEOUT_S: Final = 30.0
HEALTH_ANSWER_S_MAX: Final = 4.0  # every check is bounded (1 s per app, 2 s per service) and runs in parallel
POLL_S: Final = 0.25


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    """The ledger's and metrics consumer's ports for this module (nothing listens there yet)."""
    ledger, metrics = free_ports(2)
    return {"ledger": ledger, "metrics": metrics}


@pytest.fixture(scope="module")
def api(settings: Settings, tmp_path_factory: pytest.TempPathFactory, ports: dict[str, int]) -> Iterator[RunningApi]:
    """The API, told where the ledger's and metrics consumer's /metrics are (by the usual settings)."""
    env = {"KPSANDBOX_LEDGER_METRICS_PORT": str(ports["ledger"]), "KPSANDBOX_METRICS_PORT": str(ports["metrics"])}
    with running_api(settings, tmp_path_factory.mktemp("api-health-state"), "api_health", **env) as running:
        yield running


def _get(api: RunningApi, path: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = httpx.get(f"{api.url}{path}", timeout=HTTP_TIMEOUT_S)
    return response, time.monotonic() - started


def _assert_down(check: dict[str, Any], setting: str) -> None:
    assert check["ok"] is False, check
    assert "kpsandbox up --apps" in check["detail"] and setting in check["detail"], check


def test_healthz_is_503_naming_a_ledger_that_hangs_and_metrics_that_are_down(
    api: RunningApi, ports: dict[str, int]
) -> None:
    """Ledger port accepts but never answers, metrics port closed: 503 within the bound, both named with
    the command that starts them; PostgreSQL and Kafka ok; /readyz (the API alone) stays 200."""
    with socket.socket() as silent:  # the kernel completes the connection; nobody ever answers it
        silent.bind(("127.0.0.1", ports["ledger"]))
        silent.listen()
        response, took_s = _get(api, "/healthz")
    assert response.status_code == 503, response.text
    assert took_s < HEALTH_ANSWER_S_MAX, took_s
    body = response.json()
    assert body["status"] == "unavailable" and set(body["checks"]) == {"postgres", "kafka", "ledger", "metrics"}
    assert body["checks"]["postgres"]["ok"] and body["checks"]["kafka"]["ok"], body
    _assert_down(body["checks"]["ledger"], "KPSANDBOX_LEDGER_METRICS_PORT")
    assert f":{ports['ledger']}/metrics" in body["checks"]["ledger"]["detail"]
    _assert_down(body["checks"]["metrics"], "KPSANDBOX_METRICS_PORT")
    ready, _ = _get(api, "/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok", ready.text


def _start(module: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", module], env=env, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(APP_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(APP_STOP_TIMEOUT_S)


def _wait_for_status(api: RunningApi, status: int, processes: list[subprocess.Popen[bytes]]) -> dict[str, Any]:
    deadline = time.monotonic() + APPS_START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert all(p.poll() is None for p in processes), "an app exited; see its log in the test's tmp folder"
        response, _ = _get(api, "/healthz")
        if response.status_code == status:
            body: dict[str, Any] = response.json()
            return body
        time.sleep(POLL_S)
    raise AssertionError(f"/healthz did not answer {status} within {APPS_START_TIMEOUT_S:.0f} s: {response.text}")


def test_healthz_is_200_with_ledger_and_metrics_running_then_503_naming_the_one_stopped(
    api: RunningApi, ports: dict[str, int], tmp_path: Path
) -> None:
    """`python -m consumers.ledger` and `consumers.metrics` on the API's settings: 200 with every check ok;
    the metrics consumer stopped: 503 naming metrics alone."""
    env = settle_env(
        api.config,
        KPSANDBOX_LEDGER_METRICS_PORT=str(ports["ledger"]),
        KPSANDBOX_METRICS_PORT=str(ports["metrics"]),
        KPSANDBOX_STATE_DIR=str(tmp_path),
        KPSANDBOX_METRICS_GROUP=f"health-{uuid.uuid4().hex[:8]}",
    )
    env.pop("KPSANDBOX_API_PORT", None)
    ledger = _start("consumers.ledger", env, tmp_path / "ledger.log")
    metrics = _start("consumers.metrics", env, tmp_path / "metrics.log")
    try:
        body = _wait_for_status(api, 200, [ledger, metrics])
        assert body["status"] == "ok" and all(check["ok"] for check in body["checks"].values()), body
        assert f":{ports['ledger']}/metrics" in body["checks"]["ledger"]["detail"], body
        _stop(metrics)
        body = _wait_for_status(api, 503, [ledger])
        assert [name for name, check in body["checks"].items() if not check["ok"]] == ["metrics"], body
        _assert_down(body["checks"]["metrics"], "KPSANDBOX_METRICS_PORT")
    finally:
        _stop(metrics)
        _stop(ledger)


def test_docs_through_the_server_load_local_assets(api: RunningApi) -> None:
    """The real server's /docs names its own assets, and they answer as JavaScript and CSS."""
    page, _ = _get(api, "/docs")
    assert page.status_code == 200 and "cdn." not in page.text and "/docs-assets/" in page.text, page.text
    for asset, media_type in (("swagger-ui-bundle.js", "text/javascript"), ("swagger-ui.css", "text/css")):
        response, _ = _get(api, f"/docs-assets/{asset}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(media_type), asset
