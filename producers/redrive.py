"""Redrive: put dead letters back on the topic they came from, as they were or corrected.

A redriven message keeps the original key and headers and goes back to the partition it was
read from, so it lands next to the messages it was ordered with whatever partitioner the
original client used. It carries one more header, `kpsandbox-redriven-from` =
`<dead-letter topic>/<partition>/<offset>`, so a consumer (or a person) can tell it from the
original; redriving a message that was itself redriven replaces that header rather than
repeating it.

Everything is checked before the first message is sent — every corrected value against the
event contract and its topic, every target topic against this deployment's catalog, every
target partition against the cluster — so a bad request sends nothing.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from infra import kafka_clients
from infra.errors import SandboxError
from infra.kafka_admin import kafka_unreachable
from infra.settings import Settings
from schemas.deadletter import DeadLetter
from schemas.events import dump_event, parse_event
from schemas.topics import CATALOG, DEAD_LETTER, TopicSpec

REDRIVEN_FROM_HEADER: Final = "kpsandbox-redriven-from"
FIXED_LINES_MAX: Final = 10_000
CONNECT_TIMEOUT_S: Final = 10.0
SEND_TIMEOUT_S: Final = 60.0
PROBLEM_CHARS_MAX: Final = 300
FIXED_FILE_HINT: Final = 'correct the file: one {"dlq_offset": N, "value": <event>} per line; nothing was sent'


class LocatedLetter(Protocol):
    """A dead letter and its place on the dead-letter topic (consumers.deadletters.StoredLetter)."""

    @property
    def partition(self) -> int:
        """Partition of the dead-letter topic."""
        ...

    @property
    def offset(self) -> int:
        """Offset on the dead-letter topic."""
        ...

    @property
    def letter(self) -> DeadLetter:
        """The dead letter itself."""
        ...


@dataclass(frozen=True, slots=True)
class FixedValue:
    """A corrected event for one dead letter, already checked against the contract."""

    dlq_offset: int
    line: int
    event_type: str
    value: bytes  # the event as the contract serialises it


@dataclass(frozen=True, slots=True)
class Redrive:
    """One message to put back: where it goes and exactly what it carries."""

    dlq_partition: int
    dlq_offset: int
    reason: str
    topic: str
    partition: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    fixed: bool


@dataclass(frozen=True, slots=True)
class Sent:
    """A redriven message the cluster acknowledged (acks=all), and where it landed."""

    redrive: Redrive
    offset: int


def _bad_line(source: str, line: int, problem: str) -> SandboxError:
    return SandboxError(f"{source}, line {line}: {problem}"[:PROBLEM_CHARS_MAX], FIXED_FILE_HINT)


def parse_fixed_lines(lines: Iterable[str], *, source: str) -> dict[int, FixedValue]:
    """Corrected values by dead-letter offset, from JSON Lines. Blank lines are skipped; any bad
    line (not JSON, wrong fields, a repeated offset, a value the contract still refuses) raises a
    SandboxError naming the line, so nothing is sent on a half-valid file."""
    fixed: dict[int, FixedValue] = {}
    for number, text in enumerate(lines, start=1):
        if number > FIXED_LINES_MAX:
            raise SandboxError(
                f"{source} has more than {FIXED_LINES_MAX} lines", "split it and redrive in parts; nothing was sent"
            )
        if not text.strip():
            continue
        entry = _parse_line(text, source, number)
        if entry.dlq_offset in fixed:
            raise _bad_line(source, number, f"dlq_offset {entry.dlq_offset} is fixed twice")
        fixed[entry.dlq_offset] = entry
    if not fixed:
        raise SandboxError(f"{source} holds no corrected values", FIXED_FILE_HINT)
    return fixed


def _parse_line(text: str, source: str, number: int) -> FixedValue:
    try:
        document = json.loads(text)
    except ValueError as error:
        raise _bad_line(source, number, f"not JSON ({error})") from error
    if not isinstance(document, dict) or set(document) != {"dlq_offset", "value"}:
        raise _bad_line(source, number, "expected exactly the fields 'dlq_offset' and 'value'")
    offset = document["dlq_offset"]
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise _bad_line(source, number, f"dlq_offset must be a whole number ≥ 0, not {offset!r}")
    try:
        event = parse_event(json.dumps(document["value"]))
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "value"
        problem = f"the fixed value for dlq_offset {offset} is still invalid: {where}: {first['msg']}"
        raise _bad_line(source, number, problem) from error
    return FixedValue(offset, number, event.event_type, dump_event(event))


def load_fixed(path: Path) -> dict[int, FixedValue]:
    """Reads and checks a `--fixed` file (see parse_fixed_lines)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        problem = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise SandboxError(
            f"cannot read {path}: {problem}", "give a readable UTF-8 JSON Lines file to --fixed"
        ) from error
    return parse_fixed_lines(text.splitlines(), source=str(path))


def _source_specs(settings: Settings) -> dict[str, TopicSpec]:
    """The topics a letter may go back to: this prefix's catalog, without the dead-letter topic."""
    return {settings.topic(spec): spec for spec in CATALOG if spec is not DEAD_LETTER}


def _decode(stored: LocatedLetter, what: str, text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error as error:
        raise SandboxError(
            f"dead letter {stored.partition}/{stored.offset} has a {what} that is not valid base64",
            "leave it out with --reason/--source-topic/--offset (it cannot be put back as it was); nothing was sent",
        ) from error


def _headers(stored: LocatedLetter, dlq_topic: str) -> tuple[tuple[str, bytes], ...]:
    kept = [
        (name, _decode(stored, f"header '{name}'", value))
        for name, value in stored.letter.original_headers
        if name != REDRIVEN_FROM_HEADER
    ]
    kept.append((REDRIVEN_FROM_HEADER, f"{dlq_topic}/{stored.partition}/{stored.offset}".encode()))
    return tuple(kept)


def plan_redrive(
    settings: Settings, letters: Sequence[LocatedLetter], fixed: Mapping[int, FixedValue] | None = None
) -> list[Redrive]:
    """What would be sent for these letters: the fixed value where one is given, else the
    original bytes. Raises SandboxError (and plans nothing) when a fix names no selected letter
    or names several, a fixed event does not belong on its topic, or a source topic is not in
    this deployment's catalog."""
    fixed = fixed or {}
    dlq_topic = settings.topic(DEAD_LETTER)
    specs = _source_specs(settings)
    for entry in fixed.values():
        named = [stored for stored in letters if stored.offset == entry.dlq_offset]
        if len(named) != 1:
            problem = "no selected dead letter" if not named else "several dead letters (one per partition)"
            raise SandboxError(
                f"line {entry.line} of the fixed file names dlq_offset {entry.dlq_offset}, which matches {problem}",
                "check the offset with `kpsandbox deadletters list` and the filters you gave; nothing was sent",
            )
    plan: list[Redrive] = []
    for stored in letters:
        letter = stored.letter
        spec = specs.get(letter.source_topic)
        if spec is None:
            raise SandboxError(
                f"dead letter {stored.partition}/{stored.offset} comes from {letter.source_topic}, "
                f"which is not a topic of this sandbox (prefix '{settings.topic_prefix}')",
                "set KPSANDBOX_TOPIC_PREFIX to the prefix it was written under, or leave it out with "
                "--reason/--source-topic/--offset; nothing was sent",
            )
        fix = fixed.get(stored.offset)
        if fix is not None and fix.event_type not in spec.event_type_names:
            raise SandboxError(
                f"the fixed value for dlq_offset {stored.offset} is a '{fix.event_type}', which does not belong on "
                f"{letter.source_topic} (it carries {', '.join(spec.event_type_names)})",
                "correct the event_type in the fixed file; nothing was sent",
            )
        key = _decode(stored, "key", letter.original_key_b64) if letter.original_key_b64 is not None else None
        value = fix.value if fix is not None else _decode(stored, "value", letter.original_value_b64)
        plan.append(
            Redrive(
                dlq_partition=stored.partition,
                dlq_offset=stored.offset,
                reason=letter.reason,
                topic=letter.source_topic,
                partition=letter.source_partition,
                key=key,
                value=value,
                headers=_headers(stored, dlq_topic),
                fixed=fix is not None,
            )
        )
    return plan


async def send_redrives(settings: Settings, plan: Sequence[Redrive]) -> list[Sent]:
    """Sends the plan in order with acks=all and idempotence; returns what was acknowledged.
    Raises SandboxError before sending anything when a target partition does not exist, and
    after a failed send saying how many messages had already been acknowledged."""
    if not plan:
        return []
    producer = kafka_clients.producer(
        settings,
        "admin",
        client_id="kpsandbox-redrive",
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=int(CONNECT_TIMEOUT_S * 1000),
    )
    try:
        await asyncio.wait_for(producer.start(), CONNECT_TIMEOUT_S)
    except (TimeoutError, KafkaError, OSError) as error:
        await producer.stop()
        raise kafka_unreachable(settings) from error
    try:
        await _check_partitions(producer, settings, plan)
        return await _send(producer, plan)
    finally:
        await producer.stop()


async def _check_partitions(producer: AIOKafkaProducer, settings: Settings, plan: Sequence[Redrive]) -> None:
    for topic in sorted({item.topic for item in plan}):
        try:
            partitions = await asyncio.wait_for(producer.partitions_for(topic), CONNECT_TIMEOUT_S)
        except (TimeoutError, KafkaError) as error:
            raise SandboxError(
                f"topic {topic} does not exist on {settings.bootstrap_servers}",
                "create the catalog topics with `kpsandbox topics create`; nothing was sent",
            ) from error
        missing = sorted({item.partition for item in plan if item.topic == topic} - set(partitions))
        if missing:
            raise SandboxError(
                f"{topic} has no partition {', '.join(map(str, missing))} (it has {len(partitions)})",
                "the topic now has fewer partitions than when these messages were read: select the other "
                "letters with --offset, or recreate the topic with its catalog size; nothing was sent",
            )


async def _send(producer: AIOKafkaProducer, plan: Sequence[Redrive]) -> list[Sent]:
    sent: list[Sent] = []
    try:
        # Queue everything first (batched, in order per partition), then wait for each ack.
        futures = [
            await producer.send(
                item.topic, item.value, key=item.key, partition=item.partition, headers=list(item.headers)
            )
            for item in plan
        ]
        for item, future in zip(plan, futures, strict=True):
            metadata = await asyncio.wait_for(future, SEND_TIMEOUT_S)
            sent.append(Sent(item, metadata.offset))
    except (TimeoutError, KafkaError) as error:
        raise SandboxError(
            f"Kafka did not take a redriven message ({len(sent)} of {len(plan)} were acknowledged): {error!r}",
            "check the cluster with `kpsandbox status`, then redrive the rest with --offset",
        ) from error
    return sent
