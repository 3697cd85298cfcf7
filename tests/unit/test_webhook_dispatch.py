"""The dispatcher's pure parts: the retry schedule setting, the decision after each attempt, the body
it signs, and how one POST's answer (or its absence) is recorded (consumers/webhooks/)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pydantic
import pytest
from standardwebhooks import Webhook

from consumers.webhooks import dispatcher
from consumers.webhooks.dispatcher import event_body, lane_bounds, post
from consumers.webhooks.retries import Decision, decide
from consumers.webhooks.signing import sign_headers
from consumers.webhooks.store import sealed_secrets
from infra.setting_formats import WEBHOOK_RETRY_SCHEDULE_DEFAULT, parse_retry_schedule
from infra.settings import Settings
from schemas.webhooks import WebhookEvent, format_secret
from tests.unit.http_support import Seen, server

NOW = datetime(2025, 1, 1, 9, 30, tzinfo=UTC)
DELAYS = (5, 30, 120)
EVENT_ID = "evt_" + "5" * 32


def test_the_default_schedule_completes_within_an_hour() -> None:
    """The sandbox default retries a few times and gives up within the hour the issue asks for."""
    delays = parse_retry_schedule(WEBHOOK_RETRY_SCHEDULE_DEFAULT)
    assert len(delays) >= 3 and sum(delays) < 3600


def test_a_schedule_is_whole_seconds_comma_separated() -> None:
    """Spaces are tolerated; the delays keep their order."""
    assert parse_retry_schedule("1, 1,30") == (1, 1, 30)


@pytest.mark.parametrize("bad", ["", "5,,30", "1.5", "-1", "0", "5;30", "abc", ",".join(["1"] * 17), "86401"])
def test_a_bad_schedule_is_refused_naming_the_form(bad: str) -> None:
    """Empty parts, fractions, zero, negatives, too many retries or too long a delay: a ValueError."""
    with pytest.raises(ValueError, match="seconds"):
        parse_retry_schedule(bad)


def test_the_setting_refuses_a_bad_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    """KPSANDBOX_WEBHOOK_RETRY_SCHEDULE is validated when settings load, and parsed once valid."""
    monkeypatch.setenv("KPSANDBOX_WEBHOOK_RETRY_SCHEDULE", "5,x")
    with pytest.raises(pydantic.ValidationError, match="webhook_retry_schedule"):
        Settings()
    monkeypatch.setenv("KPSANDBOX_WEBHOOK_RETRY_SCHEDULE", "1,1")
    assert Settings().webhook_retry_delays_s == (1, 1)


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_a_2xx_delivers(status: int) -> None:
    """Any 2xx ends the delivery as delivered, on any attempt."""
    assert decide(response_status=status, attempt=4, delays_s=DELAYS, now=NOW) == Decision("delivered")


def test_410_fails_the_delivery_and_disables_the_endpoint() -> None:
    """Gone means gone: no retry, and nothing more is sent to that endpoint."""
    assert decide(response_status=410, attempt=1, delays_s=DELAYS, now=NOW) == Decision("failed", disable_endpoint=True)


@pytest.mark.parametrize("status", [None, 301, 302, 400, 404, 429, 500, 503])
def test_other_answers_retry_on_the_schedule(status: int | None) -> None:
    """Attempt n failing is retried delays[n-1] seconds later; no answer at all counts the same."""
    for attempt, delay in enumerate(DELAYS, start=1):
        decision = decide(response_status=status, attempt=attempt, delays_s=DELAYS, now=NOW)
        assert decision == Decision("pending", next_attempt_at=NOW + timedelta(seconds=delay))


def test_the_delivery_fails_once_the_schedule_is_used_up() -> None:
    """len(delays) retries after the first attempt, then failed (the endpoint stays enabled)."""
    assert decide(response_status=500, attempt=len(DELAYS) + 1, delays_s=DELAYS, now=NOW) == Decision("failed")


def test_attempts_count_from_one() -> None:
    """Attempt 0 is a caller's bug, refused rather than read as 'the first retry'."""
    with pytest.raises(ValueError, match="from 1"):
        decide(response_status=500, attempt=0, delays_s=DELAYS, now=NOW)


def _claimed(
    data: str | dict[str, object] = '{"object":"payment","id":"pay_1","status":"succeeded"}',
) -> dict[str, object]:
    return {"event_id": EVENT_ID, "type": "payment.succeeded", "created_at": NOW, "data": data}


def test_the_body_is_the_event_envelope_and_the_same_every_time() -> None:
    """A retry carries byte-identical JSON: the envelope of schemas/webhooks.py around the stored data."""
    body = event_body(_claimed())
    assert body == event_body(_claimed())
    assert body.startswith(b'{"object":"event","id":"' + EVENT_ID.encode())
    assert b'"data":{"object":"payment"' in body


def test_the_body_built_around_postgresql_s_text_of_the_data_validates_as_the_envelope() -> None:
    """jsonb prints `{"a": 1, "b": …}` with spaces; the body is still the envelope, field for field."""
    stored = '{"id": "pay_1", "amount": 25000, "object": "payment", "status": "succeeded", "failure_code": null}'
    event = WebhookEvent.model_validate_json(event_body(_claimed(stored)), strict=True)
    assert event == WebhookEvent(id=EVENT_ID, type="payment.succeeded", created_at=NOW, data=json.loads(stored))
    assert event_body(_claimed({"object": "payment", "id": "pay_1"})).endswith(
        b'"data":{"object":"payment","id":"pay_1"}}'
    )


def test_the_previous_secret_signs_only_until_it_expires() -> None:
    """Current first; the previous one while its expiry is ahead."""
    row = {"secret_sealed": b"new", "previous_secret_sealed": b"old", "previous_secret_expires_at": NOW}
    assert sealed_secrets(row, NOW - timedelta(seconds=1)) == [b"new", b"old"]
    assert sealed_secrets(row, NOW) == [b"new"]
    assert sealed_secrets(row | {"previous_secret_sealed": None, "previous_secret_expires_at": None}, NOW) == [b"new"]


@contextlib.asynccontextmanager
async def receiver(answer: bytes, *, hang_s: float = 0.0) -> AsyncIterator[tuple[str, Seen]]:
    """A real local server that answers `answer` (a whole raw response) to every request, after `hang_s`,
    then closes the connection; yields its base URL and what it received."""

    async def respond(_: int, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(hang_s)
        writer.write(answer)
        return False

    async with server(respond) as found:
        yield found


def _response(status: int, body: bytes = b"", extra: str = "") -> bytes:
    return f"HTTP/1.1 {status} X\r\ncontent-length: {len(body)}\r\n{extra}connection: close\r\n\r\n".encode() + body


async def test_post_records_the_status_and_the_first_512_bytes_and_verifies() -> None:
    """What the receiver got verifies with the reference library; the log keeps 512 bytes of a long answer."""
    secret = format_secret(bytes(range(24)))
    body = event_body(_claimed())
    timestamp = int(datetime.now(UTC).timestamp())
    headers = sign_headers(secrets=[secret], webhook_id=EVENT_ID, timestamp_s=timestamp, body=body)
    async with receiver(_response(503, b"x" * 2000)) as (url, served), dispatcher.http_session() as session:
        answer = await post(session, f"{url}/hook", body, headers)
    assert answer.status == 503 and answer.error is None and len(answer.head) == 512
    [(first_line, got_headers, got_body)] = served.requests
    path = first_line.split(" ")[1]
    assert path == "/hook" and got_headers["user-agent"] == dispatcher.USER_AGENT
    assert Webhook(secret).verify(got_body, got_headers)["id"] == EVENT_ID


async def test_a_redirect_is_not_followed_and_is_recorded_as_its_status() -> None:
    """A 3xx is the attempt's answer: the signed event is never sent on to the Location."""
    redirect = _response(302, extra="location: /elsewhere\r\n")
    async with receiver(redirect) as (url, served), dispatcher.http_session() as session:
        answer = await post(session, f"{url}/hook", b"{}", {})
    assert answer.status == 302 and [line.split(" ")[1] for line, _, _ in served.requests] == ["/hook"]


async def test_an_unreachable_receiver_is_an_error_not_an_exception() -> None:
    """A refused connection is recorded as the attempt's error (no status), so the delivery retries."""
    async with receiver(_response(200)) as (url, _):
        pass  # the port is closed again: nothing listens there now
    async with dispatcher.http_session() as session:
        answer = await post(session, f"{url}/hook", b"{}", {})
    assert answer.status is None and answer.error is not None and "Connect" in answer.error


async def test_a_receiver_that_hangs_is_cut_off_at_the_request_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole attempt is bounded: a hanging receiver becomes a timeout error, not a stuck task."""
    monkeypatch.setattr(dispatcher, "REQUEST_TIMEOUT_S", 0.2)
    async with receiver(_response(200), hang_s=3.0) as (url, _), dispatcher.http_session() as session:
        answer = await asyncio.wait_for(post(session, f"{url}/hook", b"{}", {}), 5)
    assert answer.status is None and answer.error is not None and "no answer within" in answer.error
    assert answer.timed_out


async def test_a_url_that_is_not_http_is_a_recorded_error() -> None:
    """A URL the client cannot send to (here a bad port) is the attempt's error, not a crashed dispatcher."""
    async with dispatcher.http_session() as session:
        answer = await post(session, "http://127.0.0.1:99999/hook", b"{}", {})
    assert answer.status is None and answer.error is not None


async def test_a_receiver_that_is_not_http_is_a_recorded_error() -> None:
    """Bytes that are not an HTTP answer are the attempt's error."""
    async with receiver(b"SSH-2.0-OpenSSH_9.2\r\n\r\n") as (url, _), dispatcher.http_session() as session:
        answer = await post(session, f"{url}/hook", b"{}", {})
    assert answer.status is None and answer.error is not None


@pytest.mark.parametrize(
    ("lanes", "per_endpoint", "in_all"), [(2, 16, 256), (2, 3, 5), (4, 2, 256), (1, 16, 256), (3, 16, 7)]
)
def test_the_lanes_shares_add_up_to_the_bounds_and_none_is_empty(lanes: int, per_endpoint: int, in_all: int) -> None:
    """Together the lanes never exceed a bound, use all of it, and each lane can claim for every endpoint."""
    shares = lane_bounds(lanes, per_endpoint, in_all)
    assert sum(each for each, _ in shares) == per_endpoint and sum(total for _, total in shares) == in_all
    assert all(each >= 1 and total >= 1 for each, total in shares)
    assert len(shares) == min(lanes, per_endpoint, in_all)


def test_the_lanes_split_the_default_bounds_evenly() -> None:
    assert lane_bounds(2, 16, 256) == [(8, 128), (8, 128)]
    assert lane_bounds(2, 3, 5) == [(2, 3), (1, 2)]


async def test_an_answer_with_nul_bytes_is_kept_as_text_postgresql_can_store() -> None:
    """PostgreSQL's text refuses U+0000: an answer holding one would make the attempt unrecordable (and
    the delivery sent again at every lease); the log keeps U+FFFD in its place."""
    async with receiver(_response(200, b"ok\x00\x00fine")) as (url, _), dispatcher.http_session() as session:
        answer = await post(session, f"{url}/hook", b"{}", {})
    assert answer.status == 200 and answer.head == "ok\ufffd\ufffdfine"
