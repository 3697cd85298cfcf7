"""The webhook dispatcher's metrics: attempt results, finished deliveries, backlog, and its busy port."""

from __future__ import annotations

import asyncio
import socket

import pytest

from consumers.webhooks.metrics import ATTEMPT_RESULTS, WebhookMetrics, attempt_result, start_metrics_server
from infra.errors import SandboxError
from infra.metrics_http import bound_port


def _value(m: WebhookMetrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_attempt_results_follow_the_answer() -> None:
    """2xx delivered, 410 gone, other statuses http_error; no answer: timeout or connection_error."""
    assert attempt_result(status=204, timed_out=False) == "delivered"
    assert attempt_result(status=410, timed_out=False) == "gone"
    assert [attempt_result(status=s, timed_out=False) for s in (301, 404, 500)] == ["http_error"] * 3
    assert attempt_result(status=None, timed_out=True) == "timeout"
    assert attempt_result(status=None, timed_out=False) == "connection_error"


def test_attempts_durations_and_finished_deliveries_add_up() -> None:
    """Every result is exported from the start; attempts, their time and final outcomes are counted."""
    m = WebhookMetrics()
    assert {r: _value(m, "kpsandbox_webhook_attempts_total", result=r) for r in ATTEMPT_RESULTS} == dict.fromkeys(
        ATTEMPT_RESULTS, 0.0
    )
    m.attempted(result="http_error", seconds=0.02, delivery_status="pending")
    m.attempted(result="delivered", seconds=0.2, delivery_status="delivered")
    m.attempted(result="gone", seconds=0.004, delivery_status="failed")
    assert _value(m, "kpsandbox_webhook_attempts_total", result="http_error") == 1
    assert _value(m, "kpsandbox_webhook_attempt_duration_seconds_count") == 3
    assert _value(m, "kpsandbox_webhook_attempt_duration_seconds_bucket", le="0.005") == 1
    assert _value(m, "kpsandbox_webhook_attempt_duration_seconds_sum") == pytest.approx(0.224)
    assert _value(m, "kpsandbox_webhook_deliveries_finished_total", outcome="delivered") == 1
    assert _value(m, "kpsandbox_webhook_deliveries_finished_total", outcome="failed") == 1


def test_backlog_gauges_take_the_query_answer() -> None:
    """Pending count and the oldest due age are exported as set; a negative age (clock skew) is 0."""
    m = WebhookMetrics()
    m.set_backlog(pending=7, oldest_due_age_s=12.5)
    assert _value(m, "kpsandbox_webhook_deliveries_pending") == 7
    assert _value(m, "kpsandbox_webhook_oldest_due_age_seconds") == 12.5
    m.set_backlog(pending=0, oldest_due_age_s=-0.1)
    assert _value(m, "kpsandbox_webhook_oldest_due_age_seconds") == 0


async def test_busy_port_names_the_port_and_the_setting() -> None:
    """A taken port is a two-line SandboxError naming the port and KPSANDBOX_WEBHOOKS_METRICS_PORT."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(SandboxError) as caught:
            await start_metrics_server(WebhookMetrics(), host="127.0.0.1", port=port)
    assert str(port) in caught.value.message and "webhook" in caught.value.message
    assert "KPSANDBOX_WEBHOOKS_METRICS_PORT" in caught.value.hint


async def test_server_answers_metrics() -> None:
    """GET /metrics on a free port returns the webhook series."""
    server = await start_metrics_server(WebhookMetrics(), host="127.0.0.1", port=0)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", bound_port(server))
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        body = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
    assert body.startswith(b"HTTP/1.1 200") and b'kpsandbox_webhook_attempts_total{result="timeout"} 0.0' in body
