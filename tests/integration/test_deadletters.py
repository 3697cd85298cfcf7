"""`kpsandbox deadletters list|redrive` on real Kafka: letters are listed, and redriven with key and headers."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Final
from uuid import UUID

from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord
from typer import Typer
from typer.testing import CliRunner, Result

from consumers.deadletters import read_dead_letters
from infra import kafka_clients
from infra.settings import Settings
from kpsandbox.commands import deadletters as deadletters_command
from producers.redrive import REDRIVEN_FROM_HEADER
from schemas.deadletter import DeadLetter
from schemas.events import parse_event
from schemas.payments import PaymentRequested
from schemas.topics import DEAD_LETTER, PAYMENT_REQUESTS

REPO: Final = Path(__file__).resolve().parents[2]
READ_WAIT_S_MAX: Final = 20.0
WHEN: Final = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PAYER: Final = "acc_00000000000000d1"
TRACE: Final = ("traceparent", b"00-4bf92f3577b34da6-01")

# What the ledger would have set aside: (reason, source partition, original value).
LETTERS: Final = (
    ("schema_invalid", 2, b'{"event_type": "payment.requested", "amount": 12.5}'),
    ("not_json", 3, b"\xff\xfe not json"),
    ("schema_invalid", 5, b'{"event_type": "payment.requested"}'),
)


def _payment(amount: int) -> PaymentRequested:
    return PaymentRequested(
        event_id=UUID(int=amount, version=4),
        occurred_at=WHEN,
        producer="integrator",
        correlation_id=UUID(int=amount + 1, version=4),
        kind="p2p",
        rail="raast",
        payer_account_id=PAYER,
        payee_account_id="acc_00000000000000d2",
        amount=amount,
    )


def _letter(config: Settings, reason: str, partition: int, value: bytes) -> DeadLetter:
    return DeadLetter(
        reason=reason,  # type: ignore[arg-type]
        detail=f"{reason}: set aside by the test",
        source_topic=config.topic(PAYMENT_REQUESTS),
        source_partition=partition,
        source_offset=40 + partition,
        consumer_group="kp-ledger",
        original_key_b64=base64.b64encode(PAYER.encode()).decode(),
        original_value_b64=base64.b64encode(value).decode(),
        original_headers=[(TRACE[0], base64.b64encode(TRACE[1]).decode())],
        dead_lettered_at=WHEN,
    )


async def _put_letters(config: Settings, *, garbage: bool = True, aborted: bool = True) -> None:
    """The dead-letter topic as the ledger leaves it: letters keyed and headed as their originals,
    plus (optionally) one record that is not a letter and one letter from an aborted transaction."""
    topic = config.topic(DEAD_LETTER)
    producer = kafka_clients.producer(config, "admin", acks="all")
    await producer.start()
    try:
        for reason, partition, value in LETTERS:
            letter = _letter(config, reason, partition, value)
            await producer.send_and_wait(
                topic, letter.model_dump_json().encode(), key=PAYER.encode(), headers=[TRACE], partition=0
            )
        if garbage:
            await producer.send_and_wait(topic, b"this is not a dead letter", partition=0)
    finally:
        await producer.stop()
    if aborted:
        transactional = kafka_clients.producer(config, "admin", transactional_id=f"{config.topic_prefix}dlq-aborted")
        await transactional.start()
        try:
            await transactional.begin_transaction()
            letter = _letter(config, "retries_exhausted", 1, b"{}")
            await transactional.send_and_wait(topic, letter.model_dump_json().encode(), partition=0)
            await transactional.abort_transaction()
        finally:
            await transactional.stop()


async def _read_partition(config: Settings, partition: int) -> list[ConsumerRecord]:
    """Everything on one partition of the requests topic up to its end offset (bounded wait)."""
    consumer = kafka_clients.consumer(config, "admin", group_id=None)
    await consumer.start()
    try:
        tp = TopicPartition(config.topic(PAYMENT_REQUESTS), partition)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        records: list[ConsumerRecord] = []
        deadline = asyncio.get_running_loop().time() + READ_WAIT_S_MAX
        while await consumer.position(tp) < end and asyncio.get_running_loop().time() < deadline:
            for found in (await consumer.getmany(tp, timeout_ms=200)).values():
                records.extend(found)
        return records
    finally:
        await consumer.stop()


def _cli(config: Settings, *args: str) -> Result:
    app = Typer()
    deadletters_command.register(app)
    env = {"KPSANDBOX_KAFKA_BOOTSTRAP_SERVERS": config.bootstrap_servers, "KPSANDBOX_TOPIC_PREFIX": config.topic_prefix}
    return CliRunner().invoke(app, ["deadletters", *args], env=env)


FETCH_HELD_S: Final = 0.45  # a fetch the broker holds at the log's end: aiokafka's fetch_max_wait_ms, 500 ms


def test_an_empty_dead_letter_topic_is_read_without_waiting_behind_a_held_fetch(fresh_settings: Settings) -> None:
    """`deadletters list` took 1.8 s on an empty topic: seeking to the beginning let the fetcher send a
    fetch that the broker holds for 500 ms at the log's end, and the end-offsets request queued behind
    it on the same connection. The partitions are paused until their end offsets are known. Best of
    three, to ride out a busy machine."""
    took = []
    for _ in range(3):
        began = time.perf_counter()
        read = asyncio.run(read_dead_letters(fresh_settings))
        took.append(time.perf_counter() - began)
        assert read.complete and not read.letters and not read.unparseable
    assert min(took) < FETCH_HELD_S, took


def test_list_shows_committed_letters_and_reports_the_unreadable(fresh_settings: Settings) -> None:
    """`list` shows each committed letter and a count by reason, skips an aborted one, reports garbage."""
    asyncio.run(_put_letters(fresh_settings))
    result = _cli(fresh_settings, "list")
    assert result.exit_code == 0, result.output
    assert "retries_exhausted" not in result.stdout  # only in the aborted transaction
    assert "0/0" in result.stdout and "0/1" in result.stdout and "0/2" in result.stdout
    assert "1 record(s)" in result.stderr and "0/3" in result.stderr  # the record that is not a letter
    assert "schema_invalid │       2" in result.stdout.replace("┃", "│")

    read = asyncio.run(read_dead_letters(fresh_settings))
    assert read.complete and [s.offset for s in read.letters] == [0, 1, 2]
    assert read.letters[1].source == f"{fresh_settings.topic(PAYMENT_REQUESTS)}/3/43"
    assert [u.offset for u in read.unparseable] == [3]
    bounded = asyncio.run(read_dead_letters(fresh_settings, records_max=2))
    assert not bounded.complete and [s.offset for s in bounded.letters] == [0, 1]


def test_list_json_filtered_by_reason(fresh_settings: Settings) -> None:
    """`list --json --reason` prints only that reason's letters, one JSON object per line."""
    asyncio.run(_put_letters(fresh_settings, garbage=False, aborted=False))
    result = _cli(fresh_settings, "list", "--json", "--reason", "schema_invalid")
    assert result.exit_code == 0, result.output
    documents = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(d["dlq_offset"], d["reason"], d["source_partition"]) for d in documents] == [
        (0, "schema_invalid", 2),
        (2, "schema_invalid", 5),
    ]
    assert documents[0]["original_headers"] == [[TRACE[0], base64.b64encode(TRACE[1]).decode()]]


def test_redrive_original_bytes_with_key_and_headers(fresh_settings: Settings) -> None:
    """`redrive --reason not_json` puts back exactly the original bytes, key, headers and partition."""
    asyncio.run(_put_letters(fresh_settings))
    result = _cli(fresh_settings, "redrive", "--reason", "not_json", "--yes")
    assert result.exit_code == 0, result.output
    assert "sent 1 message(s)" in result.stdout

    [record] = asyncio.run(_read_partition(fresh_settings, 3))
    assert (record.key, record.value) == (PAYER.encode(), LETTERS[1][2])
    assert list(record.headers) == [TRACE, (REDRIVEN_FROM_HEADER, f"{fresh_settings.topic(DEAD_LETTER)}/0/1".encode())]
    for other in (2, 5):  # the schema_invalid letters' partitions got nothing
        assert asyncio.run(_read_partition(fresh_settings, other)) == []


def test_redrive_a_fixed_value(fresh_settings: Settings, tmp_path: Path) -> None:
    """`redrive --fixed` sends the corrected event (only the letters the file names) with the original key."""
    asyncio.run(_put_letters(fresh_settings))
    fixed = tmp_path / "fixed.jsonl"
    fixed.write_text(json.dumps({"dlq_offset": 2, "value": json.loads(_payment(1_250).model_dump_json())}) + "\n")

    dry = _cli(fresh_settings, "redrive", "--fixed", str(fixed), "--dry-run")
    assert dry.exit_code == 0 and "dry run: nothing sent" in dry.stdout and "fixed" in dry.stdout
    assert asyncio.run(_read_partition(fresh_settings, 5)) == []

    result = _cli(fresh_settings, "redrive", "--fixed", str(fixed), "--yes")
    assert result.exit_code == 0, result.output
    [record] = asyncio.run(_read_partition(fresh_settings, 5))
    assert parse_event(record.value) == _payment(1_250) and record.key == PAYER.encode()
    assert dict(record.headers)[REDRIVEN_FROM_HEADER] == f"{fresh_settings.topic(DEAD_LETTER)}/0/2".encode()
    assert asyncio.run(_read_partition(fresh_settings, 2)) == []  # letter 0 was not named


def test_nothing_to_redrive_is_not_an_error(fresh_settings: Settings) -> None:
    """With no matching letter, `redrive` and `list` say so and exit 0."""
    asyncio.run(_put_letters(fresh_settings, garbage=False, aborted=False))
    redrive = _cli(fresh_settings, "redrive", "--reason", "retries_exhausted", "--yes")
    assert redrive.exit_code == 0 and "nothing to redrive" in redrive.stdout
    listed = _cli(fresh_settings, "list", "--source-topic", "kp.accounts.v1")
    assert listed.exit_code == 0 and "no dead letters match" in listed.stdout


def test_a_still_invalid_fix_is_two_lines_and_exit_2(fresh_settings: Settings, tmp_path: Path) -> None:
    """The real command refuses a still-invalid fix with what-went-wrong / what-to-do and status 2."""
    asyncio.run(_put_letters(fresh_settings, garbage=False, aborted=False))
    still_bad = json.loads(_payment(100).model_dump_json()) | {"amount": "100"}
    fixed = tmp_path / "fixed.jsonl"
    fixed.write_text(json.dumps({"dlq_offset": 0, "value": still_bad}) + "\n")
    env = os.environ | {
        "KPSANDBOX_KAFKA_BOOTSTRAP_SERVERS": fresh_settings.bootstrap_servers,
        "KPSANDBOX_TOPIC_PREFIX": fresh_settings.topic_prefix,
    }
    done = subprocess.run(
        [sys.executable, "-m", "kpsandbox", "deadletters", "redrive", "--fixed", str(fixed), "--yes"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    # Two messages (rich may wrap a long one): what went wrong, then what to do; no traceback.
    text = " ".join(done.stderr.split())
    assert text.startswith("error:") and text.count("what to do:") == 1 and "Traceback" not in text
    problem, hint = text.split("what to do:")
    assert "still invalid" in problem and "nothing was sent" in hint
    assert asyncio.run(_read_partition(fresh_settings, 2)) == []
