"""The gateway's loop: read tenants' requests, copy them stamped, commit copies and offsets together."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Final

from aiokafka import AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaConnectionError

from consumers.gateway.stamp import stamped, tenant_of, tenant_requests_pattern
from infra import kafka_clients
from infra.kafka_admin import kafka_unreachable
from infra.kafka_lookups import REQUEST_TIMEOUT_MS
from infra.kafka_principals import GATEWAY_GROUP
from infra.settings import Settings
from schemas.topics import PAYMENT_REQUESTS

log = logging.getLogger(__name__)

GROUP: Final = GATEWAY_GROUP  # the consumer group and transactional id (prefixed by the deployment)
BATCH_MAX: Final = 1_000  # records copied per transaction
POLL_MS: Final = 200
METADATA_REFRESH_MS: Final = 3_000  # how soon a new tenant's topic is subscribed
IDLE_POLLS: Final = 5  # empty polls in a row before --until-idle stops
# A broker cut off the network: with aiokafka's 40 s request timeout the gateway's fetches, metadata
# refreshes and transaction requests waited out 40 s each on it, and a tenant's requests were copied
# 48–56 s after the cut (tests/integration/test_cluster_partition.py). Its clients now give up on a
# request after REQUEST_TIMEOUT_MS (10 s), as the ledger's do. The group's rebalance timeout (aiokafka:
# the session timeout) stays below it, so a JoinGroup the coordinator holds is not cut short.
SESSION_TIMEOUT_MS: Final = 6_000


@dataclass(slots=True)
class GatewaySummary:
    """What one run copied."""

    copied: int = 0
    transactions: int = 0


async def run_gateway(
    settings: Settings, *, stop: asyncio.Event, until_idle: bool = False, summary: GatewaySummary | None = None
) -> GatewaySummary:
    """Copies until `stop` is set (or, with `until_idle`, until nothing arrives for a while). `summary`,
    if given, is the one counted into as transactions commit (a caller may watch it)."""
    pattern = tenant_requests_pattern(settings)
    consumer = kafka_clients.consumer(
        settings,
        "gateway",
        group_id=settings.topic_prefix + GROUP,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        metadata_max_age_ms=METADATA_REFRESH_MS,
        session_timeout_ms=SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=SESSION_TIMEOUT_MS // 4,
        request_timeout_ms=REQUEST_TIMEOUT_MS,
    )
    producer = kafka_clients.producer(
        settings,
        "gateway",
        transactional_id=settings.topic_prefix + GROUP,
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=REQUEST_TIMEOUT_MS,
    )
    try:
        await producer.start()
        consumer.subscribe(pattern=pattern.pattern)
        await consumer.start()
    except (KafkaConnectionError, OSError) as error:
        await producer.stop()
        await consumer.stop()
        raise kafka_unreachable(settings) from error
    summary = GatewaySummary() if summary is None else summary
    try:
        idle = 0
        while not stop.is_set() and not (until_idle and idle >= IDLE_POLLS):
            fetched = await consumer.getmany(timeout_ms=POLL_MS, max_records=BATCH_MAX)
            idle = 0 if fetched else idle + 1
            if fetched:
                await _copy(settings, producer, fetched, pattern, summary)
    finally:
        await consumer.stop()
        await producer.stop()
    return summary


async def _copy(
    settings: Settings,
    producer: AIOKafkaProducer,
    fetched: dict[TopicPartition, list[ConsumerRecord]],
    pattern: re.Pattern[str],
    summary: GatewaySummary,
) -> None:
    """One transaction: every fetched record, stamped, onto the requests topic, and the offsets after them."""
    target = settings.topic(PAYMENT_REQUESTS)
    offsets: dict[TopicPartition, int] = {}
    async with producer.transaction():
        for tp, records in fetched.items():
            tenant = tenant_of(pattern, tp.topic)
            for record in records:
                await producer.send(target, key=record.key, value=record.value, headers=stamped(record.headers, tenant))
            offsets[tp] = records[-1].offset + 1
        await producer.send_offsets_to_transaction(offsets, settings.topic_prefix + GROUP)
    summary.copied += sum(len(r) for r in fetched.values())
    summary.transactions += 1
