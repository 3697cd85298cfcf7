"""Webhook signatures (consumers/webhooks/signing.py) as a receiver checks them: every signature we make
is verified with the reference Standard Webhooks library (`standardwebhooks` on PyPI), not with our code;
a tampered body, a wrong secret and an old timestamp fail there; during a rotation either secret verifies."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from consumers.webhooks.signing import (
    HEADER_ID,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    TOLERANCE_S,
    SignatureError,
    secret_key,
    sign_headers,
    signature,
    verify,
)
from schemas.webhooks import SECRET_BYTES, SECRET_BYTES_MAX, SECRET_BYTES_MIN, SECRET_PREFIX, format_secret

SECRET: Final = format_secret(bytes(range(SECRET_BYTES)))
NEW_SECRET: Final = format_secret(bytes(range(100, 100 + SECRET_BYTES)))
OTHER_SECRET: Final = format_secret(b"\x07" * SECRET_BYTES)
EVENT_ID: Final = "evt_" + "ab" * 16
BODY: Final = json.dumps(
    {"object": "event", "id": EVENT_ID, "type": "payment.succeeded", "data": {"amount": 25000, "note": "₨ چائے"}},
    ensure_ascii=False,
    separators=(",", ":"),
).encode()


Tamper = Callable[[dict[str, str], bytes], tuple[dict[str, str], bytes]]


def _now_s() -> int:
    return int(time.time())


def test_the_reference_library_verifies_our_signature() -> None:
    """Headers signed now with one secret verify in `standardwebhooks` and give back the body's JSON."""
    headers = sign_headers(secrets=[SECRET], webhook_id=EVENT_ID, timestamp_s=_now_s(), body=BODY)
    assert set(headers) == {HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE}
    assert headers[HEADER_ID] == EVENT_ID and headers[HEADER_SIGNATURE].startswith("v1,")
    assert Webhook(SECRET).verify(BODY, headers) == json.loads(BODY)


def test_our_signature_equals_the_reference_librarys_byte_for_byte() -> None:
    """For a fixed id, time and body our `v1,…` string is the one the reference library computes."""
    at = datetime(2025, 1, 1, 9, 30, tzinfo=UTC)
    expected = Webhook(SECRET).sign(msg_id=EVENT_ID, timestamp=at, data=BODY.decode())
    assert signature(SECRET, EVENT_ID, int(at.timestamp()), BODY) == expected


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda h, b: (h, b.replace(b"25000", b"25001")), id="tampered body"),
        pytest.param(lambda h, b: ({**h, HEADER_ID: "evt_" + "cd" * 16}, b), id="other webhook-id"),
        pytest.param(lambda h, b: ({**h, HEADER_TIMESTAMP: str(int(h[HEADER_TIMESTAMP]) + 1)}, b), id="other time"),
    ],
)
def test_the_reference_library_refuses_a_tampered_delivery(tamper: Tamper) -> None:
    """Changing one byte of the body, the id or the timestamp breaks the signature in `standardwebhooks`."""
    headers, body = tamper(sign_headers(secrets=[SECRET], webhook_id=EVENT_ID, timestamp_s=_now_s(), body=BODY), BODY)
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(SECRET).verify(body, headers)


def test_the_reference_library_refuses_a_wrong_secret() -> None:
    """A receiver holding another secret cannot verify the delivery."""
    headers = sign_headers(secrets=[SECRET], webhook_id=EVENT_ID, timestamp_s=_now_s(), body=BODY)
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(OTHER_SECRET).verify(BODY, headers)


def test_the_reference_library_refuses_an_old_timestamp() -> None:
    """A correctly signed delivery made 10 minutes ago is a replay to `standardwebhooks` (5-minute window)."""
    headers = sign_headers(secrets=[SECRET], webhook_id=EVENT_ID, timestamp_s=_now_s() - 600, body=BODY)
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(SECRET).verify(BODY, headers)


def test_during_rotation_either_secret_verifies_in_the_reference_library() -> None:
    """Signed by the new and the previous secret: two space-separated `v1,` entries; a receiver with
    either secret verifies, one with a third does not."""
    headers = sign_headers(secrets=[NEW_SECRET, SECRET], webhook_id=EVENT_ID, timestamp_s=_now_s(), body=BODY)
    entries = headers[HEADER_SIGNATURE].split(" ")
    assert len(entries) == 2 and all(entry.startswith("v1,") for entry in entries)
    assert Webhook(NEW_SECRET).verify(BODY, headers) == json.loads(BODY)
    assert Webhook(SECRET).verify(BODY, headers) == json.loads(BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(OTHER_SECRET).verify(BODY, headers)


def test_our_verify_accepts_the_reference_librarys_signature_and_says_why_it_refuses() -> None:
    """`verify` (for the sandbox's own tools) accepts what the reference signs, and names each failure."""
    now_s = 1_735_723_800
    at = datetime.fromtimestamp(now_s, UTC)
    reference = {
        HEADER_ID: EVENT_ID,
        HEADER_TIMESTAMP: str(now_s),
        HEADER_SIGNATURE: Webhook(SECRET).sign(msg_id=EVENT_ID, timestamp=at, data=BODY.decode()),
    }
    verify(secrets=[SECRET], headers=reference, body=BODY, now_s=now_s)
    verify(secrets=[OTHER_SECRET, SECRET], headers={k.title(): v for k, v in reference.items()}, body=BODY, now_s=now_s)
    cases = [
        ({**reference, HEADER_SIGNATURE: ""}, BODY, now_s, "missing_header"),
        ({**reference, HEADER_TIMESTAMP: "1.5e9"}, BODY, now_s, "invalid_timestamp"),
        (reference, BODY, now_s + TOLERANCE_S + 1, "timestamp_too_old"),
        (reference, BODY, now_s - TOLERANCE_S - 1, "timestamp_too_new"),
        (reference, BODY + b" ", now_s, "no_matching_signature"),
        (
            {**reference, HEADER_SIGNATURE: "v1a," + reference[HEADER_SIGNATURE][3:]},
            BODY,
            now_s,
            "no_matching_signature",
        ),
    ]
    for headers, body, at_s, reason in cases:
        with pytest.raises(SignatureError) as refused:
            verify(secrets=[SECRET], headers=headers, body=body, now_s=at_s)
        assert refused.value.reason == reason, (headers, reason)
    with pytest.raises(SignatureError):
        verify(secrets=[OTHER_SECRET], headers=reference, body=BODY, now_s=now_s)


def test_a_secret_is_whsec_and_base64_of_24_to_64_bytes() -> None:
    """format_secret and secret_key agree; other lengths, prefixes and non-base64 are refused with the fix."""
    assert SECRET.startswith(SECRET_PREFIX) and secret_key(SECRET) == bytes(range(SECRET_BYTES))
    assert len(SECRET) == len(SECRET_PREFIX) + 32 and not SECRET.endswith("=")
    for size in (SECRET_BYTES_MIN, SECRET_BYTES_MAX):
        assert len(secret_key(format_secret(b"k" * size))) == size
    for size in (SECRET_BYTES_MIN - 1, SECRET_BYTES_MAX + 1):
        with pytest.raises(ValueError, match="24 to 64 bytes"):
            format_secret(b"k" * size)
        with pytest.raises(ValueError, match="24 to 64 bytes"):
            secret_key(SECRET_PREFIX + base64.b64encode(b"k" * size).decode())
    with pytest.raises(ValueError, match="starts with 'whsec_'"):
        secret_key(SECRET[len(SECRET_PREFIX) :])
    with pytest.raises(ValueError, match="base64"):
        secret_key(SECRET_PREFIX + "not base64!")


def test_signing_refuses_ids_a_dot_could_make_ambiguous_and_too_many_secrets() -> None:
    """`{id}.{timestamp}.{body}` is only unambiguous when the id has no '.'; at most two secrets sign."""
    for webhook_id in ("evt.1", "", "evt 1", "x" * 256):
        with pytest.raises(ValueError, match="webhook-id"):
            sign_headers(secrets=[SECRET], webhook_id=webhook_id, timestamp_s=1, body=BODY)
    for secrets in ([], [SECRET, NEW_SECRET, OTHER_SECRET]):
        with pytest.raises(ValueError, match="1 to 2 secrets"):
            sign_headers(secrets=secrets, webhook_id=EVENT_ID, timestamp_s=1, body=BODY)
