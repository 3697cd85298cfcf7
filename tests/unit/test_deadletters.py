"""Dead letters without Kafka: parsing records, filters, the fixed file and the redrive plan."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest
from typer import Typer
from typer.testing import CliRunner

from consumers.deadletters import (
    StoredLetter,
    UnparseableRecord,
    count_by_reason,
    letter_filter,
    parse_record,
    select,
)
from infra.errors import SandboxError
from infra.settings import Settings
from kpsandbox.commands import deadletters as deadletters_command
from producers.redrive import REDRIVEN_FROM_HEADER, load_fixed, parse_fixed_lines, plan_redrive
from schemas.accounts import AccountOpened
from schemas.deadletter import DeadLetter
from schemas.events import parse_event
from schemas.payments import PaymentRequested

PREFIX = "u1."
REQUESTS = f"{PREFIX}kp.payments.requests.v1"
ACCOUNTS = f"{PREFIX}kp.accounts.v1"
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _payment(amount: int = 12_345) -> PaymentRequested:
    return PaymentRequested(
        event_id=UUID(int=1, version=4),
        occurred_at=WHEN,
        producer="unit",
        correlation_id=UUID(int=2, version=4),
        kind="p2p",
        rail="wallet",
        payer_account_id="acc_00000000000000a1",
        payee_account_id="acc_00000000000000b2",
        amount=amount,
    )


def _letter(
    *, reason: str = "schema_invalid", topic: str = REQUESTS, headers: list[tuple[str, str]] | None = None
) -> DeadLetter:
    return DeadLetter(
        reason=reason,  # type: ignore[arg-type]
        detail="amount: Input should be a valid integer",
        source_topic=topic,
        source_partition=4,
        source_offset=17,
        consumer_group="kp-ledger",
        original_key_b64=_b64(b"acc_00000000000000a1"),
        original_value_b64=_b64(b'{"broken": true}'),
        original_headers=headers if headers is not None else [("traceparent", _b64(b"00-abc-01"))],
        dead_lettered_at=WHEN,
    )


def _stored(offset: int, **kwargs: object) -> StoredLetter:
    return StoredLetter(0, offset, _letter(**kwargs))  # type: ignore[arg-type]


def _fixed_line(offset: int, value: object) -> str:
    return json.dumps({"dlq_offset": offset, "value": value})


def _settings() -> Settings:
    return Settings(topic_prefix=PREFIX)


def test_a_dead_letter_record_parses_with_its_place() -> None:
    """A DeadLetter record becomes a StoredLetter carrying its DLQ partition and offset."""
    parsed = parse_record(0, 9, _letter().model_dump_json().encode())
    assert isinstance(parsed, StoredLetter)
    assert (parsed.partition, parsed.offset, parsed.letter.reason) == (0, 9, "schema_invalid")
    assert parsed.source == f"{REQUESTS}/4/17"


def test_a_letter_written_before_headers_were_kept_still_parses() -> None:
    """A letter without `original_headers` (written by an older ledger) reads with no headers."""
    document = json.loads(_letter().model_dump_json())
    del document["original_headers"]
    parsed = parse_record(0, 1, json.dumps(document).encode())
    assert isinstance(parsed, StoredLetter) and parsed.letter.original_headers == []


@pytest.mark.parametrize(
    ("value", "problem"),
    [(b"not json", "Invalid JSON"), (b'{"reason": "schema_invalid"}', "Field required"), (None, "tombstone")],
)
def test_an_unparseable_record_is_reported_not_raised(value: bytes | None, problem: str) -> None:
    """Garbage, an incomplete letter and a tombstone come back as UnparseableRecord with the cause."""
    parsed = parse_record(0, 3, value)
    assert isinstance(parsed, UnparseableRecord)
    assert parsed.offset == 3 and problem in parsed.problem


def test_filters_by_reason_source_topic_and_offset() -> None:
    """Each criterion narrows the selection; the source topic works with or without the prefix."""
    letters = [
        _stored(0),
        _stored(1, reason="not_json"),
        _stored(2, topic=ACCOUNTS),
        _stored(3, reason="not_json", topic=ACCOUNTS),
    ]
    config = _settings()
    assert [s.offset for s in select(letters, letter_filter(config))] == [0, 1, 2, 3]
    assert [s.offset for s in select(letters, letter_filter(config, reason="not_json"))] == [1, 3]
    by_bare_name = letter_filter(config, source_topic="kp.accounts.v1")
    assert [s.offset for s in select(letters, by_bare_name)] == [2, 3]
    assert [s.offset for s in select(letters, letter_filter(config, source_topic=ACCOUNTS))] == [2, 3]
    both = letter_filter(config, reason="not_json", source_topic=ACCOUNTS)
    assert [s.offset for s in select(letters, both)] == [3]
    assert [s.offset for s in select(letters, letter_filter(config, offsets=[0, 2]))] == [0, 2]


def test_an_unknown_reason_is_refused_with_the_known_ones() -> None:
    """A misspelt --reason is a SandboxError that lists the real reasons."""
    with pytest.raises(SandboxError) as caught:
        letter_filter(_settings(), reason="schema-invalid")
    assert "schema_invalid" in caught.value.hint and "retries_exhausted" in caught.value.hint


def test_counts_by_reason_most_frequent_first() -> None:
    """The count by reason adds up and puts the most frequent reason first."""
    letters = [_stored(0), _stored(1, reason="not_json"), _stored(2, reason="not_json")]
    assert list(count_by_reason(letters).items()) == [("not_json", 2), ("schema_invalid", 1)]


def test_a_valid_fixed_file_yields_the_event_as_the_contract_writes_it() -> None:
    """A fixed line is parsed into the event and re-serialised; blank lines are skipped."""
    event = json.loads(_payment().model_dump_json())
    fixed = parse_fixed_lines([_fixed_line(7, event), ""], source="fix.jsonl")
    assert list(fixed) == [7]
    assert fixed[7].event_type == "payment.requested"
    assert parse_event(fixed[7].value) == _payment()


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        (["{not json"], "line 1: not JSON"),
        ([json.dumps({"dlq_offset": 1})], "exactly the fields"),
        ([json.dumps({"dlq_offset": True, "value": {}})], "whole number"),
        ([json.dumps({"dlq_offset": -1, "value": {}})], "whole number"),
        (
            ["", _fixed_line(1, {"event_type": "payment.requested"})],
            "line 2: the fixed value for dlq_offset 1 is still",
        ),
        ([], "holds no corrected values"),
    ],
)
def test_a_bad_fixed_file_is_refused_naming_the_line(lines: list[str], problem: str) -> None:
    """Each kind of bad line is a SandboxError that says which line and what is wrong."""
    with pytest.raises(SandboxError) as caught:
        parse_fixed_lines(lines, source="fix.jsonl")
    assert problem in caught.value.message
    assert "nothing was sent" in caught.value.hint


def test_a_still_invalid_fix_is_refused_even_after_good_lines() -> None:
    """One fixed value that still breaks the contract (a float amount) refuses the whole file."""
    good = json.loads(_payment().model_dump_json())
    bad = good | {"amount": 12.5}
    with pytest.raises(SandboxError) as caught:
        parse_fixed_lines([_fixed_line(1, good), _fixed_line(2, bad)], source="fix.jsonl")
    assert "line 2" in caught.value.message and "amount" in caught.value.message


def test_a_repeated_offset_in_the_fixed_file_is_refused() -> None:
    """Two fixes for one letter are ambiguous and refused."""
    event = json.loads(_payment().model_dump_json())
    with pytest.raises(SandboxError, match="fixed twice"):
        parse_fixed_lines([_fixed_line(1, event), _fixed_line(1, event)], source="fix.jsonl")


def test_a_missing_fixed_file_is_a_sandbox_error(tmp_path: Path) -> None:
    """An unreadable --fixed path is reported as a SandboxError, not a traceback."""
    with pytest.raises(SandboxError, match="cannot read"):
        load_fixed(tmp_path / "absent.jsonl")


def test_the_plan_keeps_key_headers_and_partition_and_adds_where_from() -> None:
    """Redriving the original keeps its bytes, key, headers and partition, plus the redriven-from header."""
    [item] = plan_redrive(_settings(), [_stored(5)])
    assert (item.topic, item.partition, item.key, item.value) == (
        REQUESTS,
        4,
        b"acc_00000000000000a1",
        b'{"broken": true}',
    )
    assert item.headers == (
        ("traceparent", b"00-abc-01"),
        (REDRIVEN_FROM_HEADER, f"{PREFIX}kp.deadletter.v1/0/5".encode()),
    )
    assert not item.fixed


def test_a_redriven_letter_redriven_again_carries_one_where_from_header() -> None:
    """An earlier kpsandbox-redriven-from header is replaced, not repeated."""
    earlier = [(REDRIVEN_FROM_HEADER, _b64(b"old/0/1")), ("a", _b64(b"b"))]
    [item] = plan_redrive(_settings(), [_stored(8, headers=earlier)])
    assert item.headers == (("a", b"b"), (REDRIVEN_FROM_HEADER, f"{PREFIX}kp.deadletter.v1/0/8".encode()))


def test_the_plan_uses_the_fixed_value_where_one_is_given() -> None:
    """A letter with a fix gets the corrected event; the others keep their original bytes."""
    fixed = parse_fixed_lines([_fixed_line(1, json.loads(_payment().model_dump_json()))], source="f")
    plan = plan_redrive(_settings(), [_stored(0), _stored(1)], fixed)
    assert [(item.dlq_offset, item.fixed) for item in plan] == [(0, False), (1, True)]
    assert parse_event(plan[1].value) == _payment() and plan[1].key == b"acc_00000000000000a1"


def test_a_fix_for_a_letter_not_selected_is_refused() -> None:
    """A fixed line naming an offset outside the selection plans nothing."""
    fixed = parse_fixed_lines([_fixed_line(9, json.loads(_payment().model_dump_json()))], source="f")
    with pytest.raises(SandboxError, match="dlq_offset 9"):
        plan_redrive(_settings(), [_stored(0)], fixed)


def test_a_fix_of_the_wrong_event_type_for_its_topic_is_refused() -> None:
    """A fixed account.opened cannot go back to the payment-requests topic."""
    account = AccountOpened(
        event_id=UUID(int=3, version=4),
        occurred_at=WHEN,
        producer="unit",
        correlation_id=UUID(int=4, version=4),
        account_id="acc_00000000000000c3",
        kind="merchant",
        holder_token="hld_000000000001",
        provider="EPMB",
        district="Peshawar",
        merchant_category="kiryana",
    )
    fixed = parse_fixed_lines([_fixed_line(0, json.loads(account.model_dump_json()))], source="f")
    with pytest.raises(SandboxError, match="does not belong on"):
        plan_redrive(_settings(), [_stored(0)], fixed)


def test_a_source_topic_outside_this_prefix_is_refused() -> None:
    """A letter from another prefix's topic (or the DLQ itself) is never produced anywhere."""
    for topic in ("other.kp.payments.requests.v1", f"{PREFIX}kp.deadletter.v1"):
        with pytest.raises(SandboxError, match="not a topic of this sandbox"):
            plan_redrive(_settings(), [_stored(0, topic=topic)])


def test_a_corrupt_original_is_refused_before_anything_is_sent() -> None:
    """A letter whose original bytes are not base64 cannot be redriven as it was."""
    broken = StoredLetter(0, 0, _letter().model_copy(update={"original_value_b64": "%%%"}))
    with pytest.raises(SandboxError, match="not valid base64"):
        plan_redrive(_settings(), [broken])


def test_redrive_refuses_a_bad_fixed_file_before_asking_kafka(tmp_path: Path) -> None:
    """`deadletters redrive --fixed` with a still-invalid value fails on the file, not on Kafka."""
    bad = tmp_path / "fix.jsonl"
    bad.write_text(_fixed_line(0, {"event_type": "payment.requested"}) + "\n")
    app = Typer()
    deadletters_command.register(app)
    env = {"KPSANDBOX_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}  # nothing listens: Kafka must not be asked
    result = CliRunner().invoke(app, ["deadletters", "redrive", "--fixed", str(bad), "--yes"], env=env)
    assert isinstance(result.exception, SandboxError)
    assert "still invalid" in result.exception.message
