"""No raw mobile number anywhere (issue 9, items 8 and 10): after accounts, top-ups, payments by
alias, a magic payee and a request-to-pay by the payer's number, every table of the database,
every record of every topic of the run's prefix, and the API's log are searched for each number in
every form it could leak in."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from typing import Final

import asyncpg
import httpx
import pytest
from aiokafka import TopicPartition

from infra import kafka_clients
from infra.kafka_admin import topic_partitions
from infra.settings import Settings
from schemas.api.magic import PAYEE_NOT_FOUND
from tests.integration.test_api import (
    HTTP_TIMEOUT_S,
    RunningApi,
    _auth,
    _leak_forms,
    _tenant_key,
    _wallet,
    running_api,
)
from tests.integration.test_api_payments import _pay, _settle, _top_up

NUMBERS: Final = ("03451230001", "03451230002")
TOPIC_READ_TIMEOUT_S: Final = 30.0


@pytest.fixture(scope="module")
def api(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    with running_api(settings, tmp_path_factory.mktemp("api-privacy-state"), "api_priv") as running:
        yield running


@pytest.fixture
async def client(api: RunningApi) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api.url, timeout=HTTP_TIMEOUT_S) as http:
        yield http


async def _every_table(dsn: str) -> bytes:
    """Every row of every table in the database's public schema, as text."""
    connection = await asyncpg.connect(dsn)
    try:
        tables = await connection.fetch(
            "SELECT quote_ident(table_name) AS name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        )
        assert len(tables) > 10, tables  # the ledger's, the metrics' and the API's tables are all there
        rows = [await connection.fetch(f"SELECT t::text AS row FROM {table['name']} AS t") for table in tables]
    finally:
        await connection.close()
    return "\n".join(row["row"] for table in rows for row in table).encode()


async def _every_record(config: Settings) -> bytes:
    """Keys, values and headers of every record on every topic of the run's prefix."""
    consumer = kafka_clients.consumer(config, "admin")
    await consumer.start()
    try:
        topics = sorted(topic for topic in await consumer.topics() if topic.startswith(config.topic_prefix))
        assert topics, f"no topic with the prefix {config.topic_prefix}"
        layout = await topic_partitions(config, topics)
        partitions = [TopicPartition(topic, p) for topic in topics for p in layout[topic]]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        chunks: list[bytes] = []
        deadline = time.monotonic() + TOPIC_READ_TIMEOUT_S
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, "the topics were not read to their end in time"
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                for record in batch:
                    chunks += [record.key or b"", record.value or b""]
                    chunks += [name.encode() + b"=" + value for name, value in record.headers]
    finally:
        await consumer.stop()
    return b"\n".join(chunks)


async def test_no_table_topic_or_log_holds_a_raw_mobile_number(api: RunningApi, client: httpx.AsyncClient) -> None:
    key = await _tenant_key(api.config, "privacy")
    opened = [await client.post("/v1/accounts", json=_wallet(number), headers=_auth(key)) for number in NUMBERS]
    assert all(response.status_code == 201 for response in opened), [r.text for r in opened]
    payer, payee = (response.json()["id"] for response in opened)
    await _top_up(client, key, payer)
    await _pay(client, key, payer=payer, payee_alias="+92" + NUMBERS[1][1:], amount=1_000)
    await _pay(client, key, payer=payer, payee_alias=PAYEE_NOT_FOUND, amount=1_000)
    asked = await client.post(
        "/v1/payment_requests",
        json={"payee": payee, "payer_alias": NUMBERS[0], "amount": 2_000},
        headers=_auth(key),
    )
    assert asked.status_code in (200, 201, 202), asked.text
    await _settle(api.config)

    stored, published, logged = (
        await _every_table(api.config.dsn),
        await _every_record(api.config),
        api.log.read_bytes(),
    )
    assert payer.encode() in stored and payer.encode() in published  # the searches do look at the data
    for number in NUMBERS:
        for form in _leak_forms(number):
            assert form not in stored, f"{form!r} in a table"
            assert form not in published, f"{form!r} on a topic"
            assert form not in logged, f"{form!r} in the API's log"
