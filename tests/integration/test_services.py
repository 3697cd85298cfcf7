"""The local services are real, healthy, idempotent to start, and report clear errors."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.request
import uuid

import pytest

from infra.db import migrate
from infra.errors import SandboxError
from infra.kafka_admin import ensure_topics
from infra.local import stack
from infra.local.kafka import KafkaService
from infra.roundtrip import round_trip
from infra.settings import Settings, with_overrides


def test_status_reports_kafka_4_postgres_and_prometheus_healthy(settings: Settings) -> None:
    """status shows Apache Kafka 4.x (as the broker reports it), PostgreSQL and Prometheus, all healthy."""
    statuses = {s.name: s for s in stack.status(settings)}
    assert set(statuses) == {"kafka", "postgres", "prometheus"}
    assert all(s.healthy for s in statuses.values()), statuses
    if settings.kafka_embedded:
        assert statuses["kafka"].version.startswith("Apache Kafka 4."), statuses["kafka"].version
    assert statuses["postgres"].version.startswith("PostgreSQL "), statuses["postgres"].version
    assert statuses["prometheus"].version.startswith("Prometheus "), statuses["prometheus"].version


def test_message_round_trips_with_a_committed_consumer_group(settings: Settings) -> None:
    """A produced batch comes back in order through a consumer group whose offsets are committed."""
    topic = f"{settings.topic_prefix}roundtrip"
    payloads = [json.dumps({"n": i, "amount": 100 * i}).encode() for i in range(25)]
    result = asyncio.run(round_trip(settings, topic, payloads, f"g-{uuid.uuid4().hex[:6]}"))
    assert result.matched and result.received == 25
    assert result.committed_offset_total == 25


def test_up_again_is_idempotent(settings: Settings) -> None:
    """A second `up` starts nothing new and keeps the same processes."""
    before = {s.name: s.pid for s in stack.status(settings)}
    report = stack.up(settings)
    assert report.started == []
    after = {s.name: s.pid for s in report.statuses}
    assert after == before


def test_topics_and_migrations_are_idempotent(settings: Settings) -> None:
    """Creating the catalog topics or migrating twice changes nothing the second time."""
    assert asyncio.run(ensure_topics(settings)) == []
    assert asyncio.run(migrate(settings.dsn)) == []


def test_kafka_port_in_use_names_port_and_setting(settings: Settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Starting a second broker on a busy port fails with the port and the setting that moves it."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        busy = squatter.getsockname()[1]
        other = with_overrides(settings, state_dir=tmp_path, kafka_port=busy, kafka_controller_port=busy + 1)
        with pytest.raises(SandboxError) as caught:
            KafkaService(other).start()
    assert str(busy) in caught.value.message
    assert "KPSANDBOX_KAFKA_PORT" in caught.value.hint


def test_storage_formats_when_the_random_cluster_id_begins_with_a_dash(
    settings: Settings, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """1 in 64 random cluster ids begins with '-'; formatting must not read it as a flag (CI failure)."""
    if not settings.kafka_embedded:
        pytest.skip("formats a local broker's storage")
    dashed = uuid.UUID(bytes=b"\xf8" + bytes(range(1, 16)))
    monkeypatch.setattr("infra.local.kafka.uuid.uuid4", lambda: dashed)
    service = KafkaService(with_overrides(settings, state_dir=tmp_path))
    service.prepare()
    meta = (service.data_dir / "meta.properties").read_text()
    assert "cluster.id=-" in meta, meta


def test_down_with_nothing_up_stops_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`down` on a state folder where nothing runs reports nothing stopped and kills nothing."""
    assert stack.down(Settings(state_dir=tmp_path)) == []


def test_prometheus_scrapes_the_sandbox_exporter(settings: Settings) -> None:
    """The generated Prometheus config has a target for the sandbox's metrics port."""
    if not settings.prometheus_embedded:
        pytest.skip("external Prometheus: its config is the operator's")
    with urllib.request.urlopen(f"{settings.prometheus}/api/v1/targets", timeout=5) as response:
        targets = json.loads(response.read())["data"]["activeTargets"]
    urls = {t["scrapeUrl"] for t in targets}
    assert f"http://127.0.0.1:{settings.metrics_port}/metrics" in urls


def test_postgres_restart_returns_and_is_healthy_again(settings: Settings) -> None:
    """Restarting the local PostgreSQL returns promptly and the sandbox database answers afterwards."""
    import time

    from infra.db import database_answers
    from infra.local.postgres import PostgresService

    if not settings.postgres_embedded:
        pytest.skip("external PostgreSQL is not ours to restart")
    service = PostgresService(settings)
    began = time.monotonic()
    service.restart()
    service.wait_healthy()
    assert time.monotonic() - began < 60
    assert database_answers(settings.dsn) is not None
