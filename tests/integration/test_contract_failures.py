"""Bad input and broken surroundings, as a client and an operator see them: one place for each, never a stall.

Poison is produced with confluent-kafka; the ledger runs as its own process, so its exit status and
its last two lines of stderr are what an operator would see.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import subprocess
import time
from datetime import UTC, datetime, timedelta

import asyncpg
from confluent_kafka.admin import AdminClient

from infra import kafka_clients
from infra.db import admin_dsn
from infra.kafka_admin import ensure_topics
from infra.settings import Settings
from schemas.topics import CATALOG, PAYMENT_REQUESTS
from tests.integration.contract_support import (
    T0,
    Record,
    account_opened,
    answers,
    as_record,
    assert_two_line_error,
    dead_letters,
    envelope,
    json_value,
    new_account_id,
    one_answer,
    open_accounts,
    outcomes,
    payment,
    produce,
    settle,
    settled_ok,
    start_settle,
    wait_for_rows,
)

POISON_PARTITION = 0
TOPIC_GONE_WAIT_S = 30.0
ADMIN_TIMEOUT_S = 30.0
READ_ONLY_SETTLE_TIMEOUT_S = 120.0
OFFSETS_BEYOND_END_EXIT = 2  # a SandboxError: the operator has something to fix
TERMINATE_SESSIONS = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()"
)


def test_bad_input_ends_in_exactly_one_place_and_never_stalls_a_partition(fresh_settings: Settings) -> None:
    """Poison is dead-lettered once with its key and headers, odd requests get one outcome, good ones settle."""
    rng = random.Random(8)
    payer, other_payer, merchant = (new_account_id(rng) for _ in range(3))
    open_accounts(
        fresh_settings,
        [
            account_opened(payer, "employer"),
            account_opened(other_payer, "employer"),
            account_opened(merchant, "merchant", merchant_category="restaurant"),
        ],
    )
    good = [payment(payer, merchant, 1_000 + i, T0 + timedelta(seconds=i)) for i in range(5)]
    future = payment(payer, merchant, 777, datetime(2099, 1, 1, tzinfo=UTC))
    mis_keyed = payment(other_payer, merchant, 888, T0 + timedelta(seconds=3))  # sent under `payer`'s key
    unknown = {"event_type": "payment.refunded", **envelope(T0), "payer_account_id": payer, "amount": 5}
    poison: dict[str, tuple[bytes | None, str]] = {  # x-client-trace header -> (value, expected reason)
        "trace-not-json": (b'{"event_type": "payment.requested", ', "not_json"),
        "trace-schema": (json.dumps({**payment(payer, merchant, 1, T0), "amount": -5}).encode(), "schema_invalid"),
        "trace-unknown": (json.dumps(unknown).encode(), "unknown_event_type"),
        "trace-tombstone": (None, "not_json"),
        "trace-late": (b"\xff\xfe not even UTF-8", "not_json"),  # sent before the second run
    }

    def traced(trace: str) -> Record:
        return Record(payer, poison[trace][0], POISON_PARTITION, [("x-client-trace", trace.encode())])

    def keyed(event: dict) -> Record:
        return as_record(event, partition=POISON_PARTITION)

    first = [
        keyed(good[0]),
        traced("trace-not-json"),
        keyed(good[1]),
        traced("trace-schema"),
        traced("trace-unknown"),
        traced("trace-tombstone"),
        keyed(good[2]),
        keyed(future),
        Record(payer, json.dumps(mis_keyed).encode(), POISON_PARTITION),
        keyed(good[3]),
    ]
    second = [traced("trace-late"), keyed(good[4])]
    delivered = produce(fresh_settings, PAYMENT_REQUESTS, first)
    settled_ok(fresh_settings)
    delivered += produce(fresh_settings, PAYMENT_REQUESTS, second)  # a second run must not repeat the first's letters
    settled_ok(fresh_settings)

    found = outcomes(fresh_settings)
    for request in good:
        assert one_answer(found, request)["result"] == "created"
    rejected = one_answer(found, future)
    assert (rejected["event_type"], rejected["result"]) == ("payment.rejected", "invalid_timestamp")
    assert one_answer(found, mis_keyed)["result"] == "created"
    assert len(answers(found)) == len(good) + 2

    # One partition, one idempotent producer: delivery reports come back in the order sent.
    offsets = {
        r.headers[0][1].decode(): d.offset for r, d in zip([*first, *second], delivered, strict=True) if r.headers
    }
    letters = dead_letters(fresh_settings)
    by_offset = {json_value(m)["source_offset"]: m for m in letters}
    assert len(letters) == len(poison) == len(by_offset), [m.value() for m in letters]
    for trace, (_, reason) in poison.items():
        letter = by_offset[offsets[trace]]
        assert json_value(letter)["reason"] == reason, trace
        assert letter.key() == payer.encode(), (trace, letter.key())
        assert ("x-client-trace", trace.encode()) in (letter.headers() or []), (trace, letter.headers())


def _delete_catalog_topics(config: Settings) -> None:
    """Deletes every catalog topic under the test's prefix and waits (bounded) until Kafka forgot them."""
    admin = AdminClient(kafka_clients.librdkafka_config(config, "admin"))
    names = [config.topic(spec) for spec in CATALOG]
    for future in admin.delete_topics(names, operation_timeout=ADMIN_TIMEOUT_S).values():
        future.result(timeout=ADMIN_TIMEOUT_S)
    deadline = time.monotonic() + TOPIC_GONE_WAIT_S
    while set(names) & set(admin.list_topics(timeout=ADMIN_TIMEOUT_S).topics):
        assert time.monotonic() < deadline, "Kafka did not delete the topics in time"
        time.sleep(0.2)


def test_offsets_beyond_the_log_end_stop_the_ledger_with_a_two_line_error(fresh_settings: Settings) -> None:
    """Kafka wiped but the database kept: `settle --until-idle` exits 2 naming the offsets, never 0."""
    rng = random.Random(9)
    payer, merchant = new_account_id(rng), new_account_id(rng)
    accounts = [account_opened(payer, "employer"), account_opened(merchant, "merchant", merchant_category="other")]
    open_accounts(fresh_settings, accounts)
    produce(fresh_settings, PAYMENT_REQUESTS, [payment(payer, merchant, 100 + i, T0) for i in range(6)])
    settled_ok(fresh_settings)

    _delete_catalog_topics(fresh_settings)
    asyncio.run(ensure_topics(fresh_settings))
    open_accounts(fresh_settings, accounts)
    after = [payment(payer, merchant, 500 + i, T0 + timedelta(minutes=1)) for i in range(2)]
    produce(fresh_settings, PAYMENT_REQUESTS, after)
    run = settle(fresh_settings)

    assert run.returncode == OFFSETS_BEYOND_END_EXIT, (run.returncode, run.stdout, run.stderr[-3000:])
    error, _ = assert_two_line_error(run)
    assert "partition" in error.lower() and "offset" in error.lower(), error
    assert outcomes(fresh_settings) == [], "nothing may be settled against a log that is not the one recorded"


async def _set_read_only(config: Settings, on: bool) -> None:
    database = config.dsn.rpartition("/")[2]
    connection = await asyncpg.connect(admin_dsn(config))
    try:
        await connection.execute(
            f'ALTER DATABASE "{database}" SET default_transaction_read_only = {"on" if on else "off"}'
        )
    finally:
        await connection.close()


def test_a_read_only_database_fails_the_ledger_loudly(fresh_settings: Settings) -> None:
    """A database that refuses writes makes `settle --until-idle` exit non-zero with a two-line error, in time."""
    rng = random.Random(10)
    payer, merchant = new_account_id(rng), new_account_id(rng)
    open_accounts(
        fresh_settings,
        [account_opened(payer, "employer"), account_opened(merchant, "merchant", merchant_category="other")],
    )
    produce(fresh_settings, PAYMENT_REQUESTS, [payment(payer, merchant, 100 + i, T0) for i in range(3)])
    asyncio.run(_set_read_only(fresh_settings, True))
    try:
        run = settle(fresh_settings, timeout_s=READ_ONLY_SETTLE_TIMEOUT_S)
    finally:
        asyncio.run(_set_read_only(fresh_settings, False))

    assert run.returncode != 0, run.stdout
    error, hint = assert_two_line_error(run)
    assert re.search(r"read.?only", f"{error} {hint}", re.IGNORECASE), (error, hint)


async def _fail_over_to_read_only(config: Settings) -> None:
    """The database turns read-only under a running ledger, as after a fail-over to a replica."""
    await _set_read_only(config, True)
    database = config.dsn.rpartition("/")[2]
    connection = await asyncpg.connect(admin_dsn(config))
    try:  # ALTER DATABASE … SET reaches new sessions only: end the ledger's, it reconnects read-only
        await connection.execute(TERMINATE_SESSIONS, database)
    finally:
        await connection.close()


def test_a_database_turning_read_only_under_a_running_ledger_stops_it_loudly(fresh_settings: Settings) -> None:
    """A running `settle` whose database turns read-only exits non-zero with a two-line error, never hangs."""
    rng = random.Random(11)
    payer, merchant = new_account_id(rng), new_account_id(rng)
    open_accounts(
        fresh_settings,
        [account_opened(payer, "employer"), account_opened(merchant, "merchant", merchant_category="other")],
    )
    produce(fresh_settings, PAYMENT_REQUESTS, [payment(payer, merchant, 100 + i, T0) for i in range(3)])
    ledger = start_settle(fresh_settings)  # no --until-idle: only a failure may end it
    try:
        wait_for_rows(fresh_settings, "SELECT count(*) AS n FROM ledger_requests", 3)
        asyncio.run(_fail_over_to_read_only(fresh_settings))
        produce(fresh_settings, PAYMENT_REQUESTS, [payment(payer, merchant, 200 + i, T0) for i in range(3)])
        stdout, stderr = ledger.communicate(timeout=READ_ONLY_SETTLE_TIMEOUT_S)
    finally:
        if ledger.poll() is None:
            ledger.kill()
            ledger.communicate()
        asyncio.run(_set_read_only(fresh_settings, False))

    run = subprocess.CompletedProcess(ledger.args, ledger.returncode, stdout, stderr)
    assert run.returncode != 0, run.stdout
    error, hint = assert_two_line_error(run)
    assert re.search(r"read.?only", f"{error} {hint}", re.IGNORECASE), (error, hint)
