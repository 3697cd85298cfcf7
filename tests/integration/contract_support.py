"""A third-party client of the sandbox's Kafka contract, for the contract tests (holds no tests).

Everything here is written the way a startup would write it from `docs/schemas/` and
`docs/integrating.md` alone: events are plain JSON objects, produced with confluent-kafka
(librdkafka) or kcat, and outcomes are read back with `isolation.level=read_committed`. Nothing
imports the project's producers or event models; the ledger runs as a separate process, so exit
codes and stderr are what an operator would see.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import subprocess
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import uuid4

import asyncpg
import jsonschema
from aiokafka.partitioner import murmur2
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, Producer, TopicPartition

from infra import kafka_clients
from infra.settings import Settings
from schemas.topics import ACCOUNTS, DEAD_LETTER, PAYMENT_OUTCOMES, PAYMENT_REQUESTS, TopicSpec
from tests.integration.test_ledger_support import PYTHON, REPO, settle_env

SCHEMAS_DIR: Final = REPO / "docs" / "schemas"
KPSANDBOX: Final = str(REPO / ".venv" / "bin" / "kpsandbox")
T0: Final = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)  # simulated time of the first request
CLIENT_PRODUCER: Final = "startup-app"  # the envelope's `producer` of the startup's events

FLUSH_TIMEOUT_S: Final = 30.0
READ_TIMEOUT_S: Final = 30.0
SETTLE_TIMEOUT_S: Final = 60.0
CHECK_TIMEOUT_S: Final = 60.0
POLL_S: Final = 0.2
ID_ATTEMPTS_MAX: Final = 10_000  # account ids tried to find one that hashes to a given partition

# What the docs tell every producer to set: nothing is lost, nothing is written twice.
RELIABLE_PRODUCER: Final[dict[str, Any]] = {"acks": "all", "enable.idempotence": True, "linger.ms": 5}
OUTCOME_TYPES: Final = frozenset({"payment.settled", "payment.rejected"})


# -- events, as JSON objects --------------------------------------------------------------------
def iso(at: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, as most clients write it."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def new_account_id(rng: random.Random) -> str:
    """An opaque account token in the published pattern (`acc_` + hex)."""
    return f"acc_{rng.getrandbits(64):016x}"


def crc32_partition(key: str, partitions: int) -> int:
    """librdkafka's default (`consistent_random`) partition of a non-empty key."""
    return zlib.crc32(key.encode()) % partitions


def murmur2_partition(key: str, partitions: int) -> int:
    """The Java client's (and `murmur2_random`'s) partition of a non-empty key."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def account_ids_on(
    rng: random.Random, partition: int, count: int, partitions: int = PAYMENT_REQUESTS.partitions
) -> list[str]:
    """`count` account ids that librdkafka's default partitioner puts on `partition`."""
    found: list[str] = []
    for _ in range(ID_ATTEMPTS_MAX):
        candidate = new_account_id(rng)
        if crc32_partition(candidate, partitions) == partition:
            found.append(candidate)
            if len(found) == count:
                return found
    raise AssertionError(f"no {count} account ids for partition {partition} in {ID_ATTEMPTS_MAX} tries")


def envelope(at: datetime, *, producer: str = CLIENT_PRODUCER) -> dict[str, Any]:
    """The fields every event carries."""
    return {"event_id": str(uuid4()), "occurred_at": iso(at), "producer": producer, "correlation_id": str(uuid4())}


def account_opened(account_id: str, kind: str, *, at: datetime = T0 - timedelta(days=1), **extra: Any) -> dict:
    """An `account.opened` with only the required fields plus `extra`."""
    rng = random.Random(account_id)
    return {
        "event_type": "account.opened",
        **envelope(at),
        "account_id": account_id,
        "kind": kind,
        "holder_token": f"hld_{rng.getrandbits(48):012x}",
        "provider": "EPMB",
        "district": "Peshawar",
        **extra,
    }


def payment(
    payer: str, payee: str, amount: int, at: datetime, *, producer: str = CLIENT_PRODUCER, **extra: Any
) -> dict:
    """A `payment.requested` (p2p over Raast unless `extra` says otherwise)."""
    fields = {"kind": "p2p", "rail": "raast", **extra}
    return {
        "event_type": "payment.requested",
        **envelope(at, producer=producer),
        "payer_account_id": payer,
        "payee_account_id": payee,
        "amount": amount,
        **fields,
    }


def post(
    pending: Mapping[str, Any], at: datetime, *, amount: int | None = None, producer: str = CLIENT_PRODUCER
) -> dict:
    """A `payment.post_requested` for a pending payment (in full unless `amount`)."""
    event = {
        "event_type": "payment.post_requested",
        **envelope(at, producer=producer),
        "pending_id": pending["event_id"],
        "payer_account_id": pending["payer_account_id"],
    }
    if amount is not None:
        event["amount"] = amount
    return event


def void(pending: Mapping[str, Any], at: datetime, *, producer: str = CLIENT_PRODUCER) -> dict:
    """A `payment.void_requested` for a pending payment."""
    return {
        "event_type": "payment.void_requested",
        **envelope(at, producer=producer),
        "pending_id": pending["event_id"],
        "payer_account_id": pending["payer_account_id"],
    }


def agent_cash(event_type: str, customer: str, agent: str, amount: int, at: datetime) -> dict:
    """A `cash.in` or `cash.out` at an agent."""
    return {
        "event_type": event_type,
        **envelope(at),
        "customer_account_id": customer,
        "agent_account_id": agent,
        "amount": amount,
    }


def key_of(event: Mapping[str, Any]) -> str:
    """The Kafka key the contract asks for: the payer (customer for agent cash; the account itself)."""
    for name in ("payer_account_id", "customer_account_id", "account_id"):
        if name in event:
            return str(event[name])
    raise KeyError(f"no key field in {event.get('event_type')}")


def schema_errors(event: Mapping[str, Any]) -> list[str]:
    """Why the published JSON Schema of this event's type refuses it (empty: it is valid).

    Fields starting with `_` are the test's own annotations (e.g. `_key`), not part of the event.
    """
    schema = json.loads((SCHEMAS_DIR / f"{event['event_type']}.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    document = {name: value for name, value in event.items() if not name.startswith("_")}
    return [error.message for error in validator.iter_errors(document)]


# -- producing -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Record:
    """One Kafka message as a client sends it: key, value (None = tombstone), optional partition/headers."""

    key: str | None
    value: bytes | None
    partition: int | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass(frozen=True)
class Delivered:
    """Where Kafka stored a message (from the delivery report)."""

    key: str | None
    partition: int
    offset: int


def as_record(event: Mapping[str, Any], *, partition: int | None = None) -> Record:
    """An event keyed by the contract's key, serialised as compact JSON."""
    return Record(key_of(event), json.dumps(event).encode(), partition)


def send(producer: Producer, topic: str, records: Iterable[Record | Mapping[str, Any]]) -> list[Delivered]:
    """Produces records in order and waits (bounded) until Kafka acknowledged every one."""
    reports: list[Delivered] = []
    errors: list[str] = []

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            errors.append(str(error))
        else:
            key, partition, offset = message.key(), message.partition(), message.offset()
            assert partition is not None and offset is not None, "a delivered message has a place"
            reports.append(Delivered(key.decode() if key else None, partition, offset))

    count = 0
    for item in records:
        record = item if isinstance(item, Record) else as_record(item)
        options: dict[str, Any] = {"key": record.key, "value": record.value, "on_delivery": on_delivery}
        if record.partition is not None:
            options["partition"] = record.partition
        if record.headers:
            options["headers"] = record.headers
        producer.produce(topic, **options)
        producer.poll(0)
        count += 1
    left = producer.flush(FLUSH_TIMEOUT_S)
    assert left == 0 and not errors and len(reports) == count, f"undelivered: {left}, errors: {errors}"
    return reports


def produce(
    config: Settings, spec: TopicSpec, records: Iterable[Record | Mapping[str, Any]], **client: Any
) -> list[Delivered]:
    """Produces with a fresh reliable confluent-kafka producer (extra librdkafka settings in `client`)."""
    producer = Producer({**kafka_clients.librdkafka_config(config, "admin"), **RELIABLE_PRODUCER, **client})
    return send(producer, config.topic(spec), records)


def open_accounts(config: Settings, events: Iterable[Mapping[str, Any]]) -> None:
    """Publishes `account.opened` events (acknowledged before any request that names them)."""
    produce(config, ACCOUNTS, events)


# -- reading -------------------------------------------------------------------------------------
def read_to_end(config: Settings, spec: TopicSpec, *, timeout_s: float = READ_TIMEOUT_S) -> list[Message]:
    """Every committed message of a topic, from the beginning to each partition's end (bounded)."""
    consumer = Consumer(
        {
            **kafka_clients.librdkafka_config(config, "admin"),
            "group.id": f"contract-reader-{uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    topic = config.topic(spec)
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(spec.partitions)])
        messages: list[Message] = []
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(at_end) < spec.partitions:
            assert time.monotonic() < deadline, f"{topic}: only partitions {sorted(at_end)} reached their end"
            message = consumer.poll(POLL_S)
            if message is None:
                continue
            error, partition = message.error(), message.partition()
            if error is not None and error.code() == KafkaError._PARTITION_EOF and partition is not None:
                at_end.add(partition)
            elif error is not None:
                raise AssertionError(f"reading {topic}: {error}")
            else:
                at_end.discard(partition)  # type: ignore[arg-type]  # a record always has a partition
                messages.append(message)
        return messages
    finally:
        consumer.close()


def outcomes(config: Settings) -> list[dict[str, Any]]:
    """Every outcome on the outcomes topic, parsed, with its Kafka key as `_key`."""
    found = []
    for message in read_to_end(config, PAYMENT_OUTCOMES):
        value = json_value(message)
        key = message.key()
        value["_key"] = key.decode() if key is not None else None
        found.append(value)
    return found


def json_value(message: Message) -> dict[str, Any]:
    """A message's value parsed as a JSON object (fails the test on a tombstone)."""
    value = message.value()
    assert value is not None, f"a tombstone at {message.topic()}/{message.partition()}/{message.offset()}"
    document = json.loads(value)
    assert isinstance(document, dict), document
    return document


def answers(found: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Request outcomes (settled/rejected; not expiries) grouped by `request_event_id`."""
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for outcome in found:
        if outcome["event_type"] in OUTCOME_TYPES:
            grouped.setdefault(outcome["request_event_id"], []).append(outcome)
    return grouped


def one_answer(found: Iterable[Mapping[str, Any]], request: Mapping[str, Any]) -> Mapping[str, Any]:
    """The one outcome of a request (fails if it has none or several distinct ones)."""
    mine = {o["event_id"]: o for o in answers(found).get(request["event_id"], [])}
    assert len(mine) == 1, f"{request['event_type']} {request['event_id']}: {len(mine)} outcomes {list(mine.values())}"
    return next(iter(mine.values()))


def dead_letters(config: Settings) -> list[Message]:
    """Every message on the dead-letter topic."""
    return read_to_end(config, DEAD_LETTER)


# -- running the ledger and the CLI --------------------------------------------------------------
def settle(config: Settings, *, timeout_s: float = SETTLE_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    """`python -m consumers.ledger --until-idle` as its own process; fails the test if it overruns."""
    return subprocess.run(
        [PYTHON, "-m", "consumers.ledger", "--until-idle"],
        env=settle_env(config),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def settled_ok(config: Settings) -> None:
    """Runs the ledger until idle and asserts it exited 0."""
    run = settle(config)
    assert run.returncode == 0, f"settle exited {run.returncode}:\n{run.stderr[-3000:]}"


def ledger_check(config: Settings) -> subprocess.CompletedProcess[str]:
    """`kpsandbox ledger check` against the test's database."""
    return subprocess.run(
        [KPSANDBOX, "ledger", "check"],
        env=settle_env(config),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT_S,
        check=False,
    )


def error_lines(stderr: str) -> list[str]:
    """The last two non-blank lines of a process's stderr: the error and what to do."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-2:]


def assert_two_line_error(run: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    """A failure the house way: no traceback, ends with `error: …` and `what to do: …`."""
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    lines = error_lines(run.stderr)
    assert len(lines) == 2, run.stderr[-3000:]
    error, hint = lines
    assert error.lower().startswith("error"), run.stderr[-3000:]
    assert hint.lower().startswith("what to do"), run.stderr[-3000:]
    return error, hint


async def _fetch(config: Settings, query: str, *args: object) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(config.dsn)
    try:
        return await connection.fetch(query, *args)
    finally:
        await connection.close()


def fetch(config: Settings, query: str, *args: object) -> list[asyncpg.Record]:
    """Rows from the test's database (synchronous, for synchronous tests)."""
    return asyncio.run(_fetch(config, query, *args))


def end_offsets(config: Settings, spec: TopicSpec) -> dict[int, int]:
    """Each partition's log-end offset (high watermark), as a client sees it."""
    consumer = Consumer(
        {**kafka_clients.librdkafka_config(config, "admin"), "group.id": f"contract-ends-{uuid4().hex[:8]}"}
    )
    try:
        topic = config.topic(spec)
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=READ_TIMEOUT_S)[1]
            for p in range(spec.partitions)
        }
    finally:
        consumer.close()


# -- the documented snippets ---------------------------------------------------------------------
INTEGRATING_DOC: Final = REPO / "docs" / "integrating.md"
SNIPPET: Final = re.compile(r"<!-- tested: ([a-z-]+) -->\n```[a-z]+\n(.*?)```", re.DOTALL)
DOC_BOOTSTRAP: Final = "127.0.0.1:19092"
DOC_TOPIC: Final = re.compile(r"\bkp\.(?:accounts|payments\.requests|payments\.outcomes|deadletter)\.v1\b")
# Names that must be unique on a shared cluster (consumer groups, transactional ids).
DOC_CLIENT_NAME: Final = re.compile(r"\bmy-startup-(?:outcomes|payouts-1|java-1)\b")
SHELL_TIMEOUT_S: Final = 60.0


def documented_snippets(config: Settings) -> dict[str, str]:
    """The snippets docs/integrating.md marks as tested, pointed at this test's broker and topics."""
    run_id = uuid4().hex[:8]
    snippets = {}
    for name, code in SNIPPET.findall(INTEGRATING_DOC.read_text()):
        code = code.replace(DOC_BOOTSTRAP, config.bootstrap_servers)
        code = DOC_TOPIC.sub(lambda m: config.topic_prefix + m.group(0), code)
        snippets[name] = DOC_CLIENT_NAME.sub(lambda m: f"{m.group(0)}-{run_id}", code)
    return snippets


def run_shell(script: str) -> str:
    """Runs a documented shell snippet with bash (errexit, pipefail); returns its stdout."""
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=SHELL_TIMEOUT_S,
        check=False,
    )
    assert run.returncode == 0, f"exit {run.returncode}: {run.stderr[-3000:]}"
    return run.stdout


def start_settle(config: Settings) -> subprocess.Popen[str]:
    """`python -m consumers.ledger` (no --until-idle) in the background; the caller must end it."""
    return subprocess.Popen(
        [PYTHON, "-m", "consumers.ledger"],
        env=settle_env(config),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_rows(config: Settings, count_query: str, at_least: int, *, timeout_s: float = SETTLE_TIMEOUT_S) -> None:
    """Waits (bounded) until `count_query` (one row, column `n`) reaches `at_least`."""
    deadline = time.monotonic() + timeout_s
    while fetch(config, count_query)[0]["n"] < at_least:
        assert time.monotonic() < deadline, f"{count_query} stayed below {at_least} for {timeout_s} s"
        time.sleep(POLL_S)
