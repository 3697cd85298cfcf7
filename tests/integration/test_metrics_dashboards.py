"""Every dashboard query, run against the real Prometheus after a simulate → settle → metrics run."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.parse
import urllib.request

from consumers.metrics.consumer import MetricsConsumer
from infra.grafana.build import all_queries
from infra.local.prometheus import PrometheusService
from infra.settings import Settings
from tests.integration.metrics_support import build_pipeline, run_until_drained

SCRAPED_WAIT_S_MAX = 90.0  # Prometheus scrapes and evaluates rules every 5 s; rates need two scrapes
POLL_S = 2.0
HTTP_TIMEOUT_S = 5.0


def _query(base: str, expr: str) -> tuple[str, list]:  # type: ignore[type-arg]
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as error:
        return f"HTTP {error.code}: {error.read().decode()[:300]}", []
    if body.get("status") != "success":
        return f"{body.get('errorType')}: {body.get('error')}", []
    return "", body["data"]["result"]


def _failing(base: str) -> dict[str, str]:
    """Panel -> what is wrong (error text, or 'empty'), for every query that fails now."""
    problems = {}
    error, up = _query(base, 'up{job="kpsandbox"} == 1')
    if error or not up:
        problems["exporter"] = error or "not scraped yet (up != 1)"
    for uid, title, expr in all_queries():
        error, result = _query(base, expr)
        if error or not result:
            problems[f"{uid} / {title} / {expr}"] = error or "empty"
    return problems


async def test_every_panel_query_returns_data(settings: Settings) -> None:
    """Each panel's PromQL succeeds and returns at least one series once Prometheus has scraped us."""
    pipeline = await build_pipeline(settings)
    if settings.prometheus_embedded:  # make sure the running Prometheus has loaded the current rules
        service = PrometheusService(settings)
        service.prepare()
        service.reload()
    consumer = MetricsConsumer(pipeline.settings, group="m-dashboards")
    task, stop = await run_until_drained(consumer, serve_http=True)
    try:
        deadline = time.monotonic() + SCRAPED_WAIT_S_MAX
        problems = await asyncio.to_thread(_failing, settings.prometheus)
        while problems and time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)
            problems = await asyncio.to_thread(_failing, settings.prometheus)
    finally:
        stop.set()
        await task
    assert not problems, "\n".join(f"{k}: {v}" for k, v in problems.items())
