"""Standard Webhooks signatures (https://www.standardwebhooks.com, symmetric scheme `v1`).

Every delivery carries three headers:

    webhook-id:        the event's id (`evt_…`), the same on every retry: receivers deduplicate on it
    webhook-timestamp: the attempt's time, integer Unix seconds: receivers refuse old ones (replays)
    webhook-signature: `v1,<base64 HMAC-SHA256>` — several, space-separated, while a secret rotates

The HMAC key is the secret's bytes (`whsec_` + base64, schemas/webhooks.py) and the signed content
is `{webhook-id}.{webhook-timestamp}.{body}`, the body exactly as sent. Because the id and the
timestamp are joined with '.', neither may contain one; `sign_headers` refuses such an id.

Rotation: an endpoint's new secret signs first and its previous secret signs too until the
previous one expires (24 h, producers/api/webhook_endpoints.py), so a receiver still configured
with the old secret keeps verifying, and one configured with the new verifies at once — any
Standard Webhooks library accepts a header when one of its signatures matches.

Pure: no I/O and no clock — the timestamp and `now` are passed in. tests/unit/test_webhook_signing.py
checks these signatures with the reference `standardwebhooks` package, not with this module.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import re
from collections.abc import Mapping, Sequence
from typing import Final, Literal

from schemas.webhooks import SECRET_BYTES_MAX, SECRET_BYTES_MIN, SECRET_PREFIX

HEADER_ID: Final = "webhook-id"
HEADER_TIMESTAMP: Final = "webhook-timestamp"
HEADER_SIGNATURE: Final = "webhook-signature"
VERSION: Final = "v1"
TOLERANCE_S: Final = 300  # the Standard Webhooks libraries' window, either side of the receiver's clock
SECRETS_MAX: Final = 2  # the current secret and, while it rotates, the previous one
SECRET_KEYS_CACHED_MAX: Final = 1_024  # decoded secrets remembered (the dispatcher's opened ones)
SIGNATURES_MAX: Final = 8  # entries read from one header; more is not a header we (or a peer) would send
WEBHOOK_ID_PATTERN: Final = re.compile(r"[!-~]{1,255}")  # printable ASCII, no spaces
TIMESTAMP_PATTERN: Final = re.compile(r"[0-9]{1,12}")

Failure = Literal[
    "missing_header", "invalid_timestamp", "timestamp_too_old", "timestamp_too_new", "no_matching_signature"
]


class SignatureError(ValueError):
    """A delivery whose signature does not verify; `reason` says which check failed."""

    def __init__(self, reason: Failure, detail: str) -> None:
        super().__init__(detail)
        self.reason: Failure = reason


@functools.lru_cache(maxsize=SECRET_KEYS_CACHED_MAX)
def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_…` secret; a ValueError naming the expected form otherwise.
    Remembered: the dispatcher signs every delivery with its endpoint's few secrets."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX!r}; copy it whole from the API's answer")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error:
        raise ValueError(f"a webhook secret is {SECRET_PREFIX!r} and standard base64; this one is not") from None
    if not SECRET_BYTES_MIN <= len(key) <= SECRET_BYTES_MAX:
        raise ValueError(f"a webhook secret holds {SECRET_BYTES_MIN} to {SECRET_BYTES_MAX} bytes, this one {len(key)}")
    return key


def signed_content(webhook_id: str, timestamp_s: int, body: bytes) -> bytes:
    """What is signed: `{webhook-id}.{webhook-timestamp}.{body}`."""
    return f"{webhook_id}.{timestamp_s}.".encode("ascii") + body


def signature(secret: str, webhook_id: str, timestamp_s: int, body: bytes) -> str:
    """One `v1,<base64>` signature of the delivery under one secret."""
    digest = hmac.digest(secret_key(secret), signed_content(webhook_id, timestamp_s, body), "sha256")  # one C call
    return f"{VERSION},{base64.b64encode(digest).decode('ascii')}"


def sign_headers(*, secrets: Sequence[str], webhook_id: str, timestamp_s: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of a delivery of `body`, signed by each of `secrets`
    (the current secret first, then the previous one while it is still valid)."""
    if not 1 <= len(secrets) <= SECRETS_MAX:
        raise ValueError(f"sign with 1 to {SECRETS_MAX} secrets (current, then previous), not {len(secrets)}")
    if not WEBHOOK_ID_PATTERN.fullmatch(webhook_id) or "." in webhook_id:
        raise ValueError("a webhook-id is 1–255 printable ASCII characters without spaces or '.'")
    if timestamp_s < 0:
        raise ValueError(f"a webhook-timestamp is Unix seconds, not {timestamp_s}")
    return {
        HEADER_ID: webhook_id,
        HEADER_TIMESTAMP: str(timestamp_s),
        HEADER_SIGNATURE: " ".join(signature(secret, webhook_id, timestamp_s, body) for secret in secrets),
    }


def _header(headers: Mapping[str, str], name: str) -> str:
    found = {key.lower(): value for key, value in headers.items()}.get(name, "")
    if not found:
        raise SignatureError("missing_header", f"the {name} header is missing or empty")
    return found


def verify(
    *, secrets: Sequence[str], headers: Mapping[str, str], body: bytes, now_s: int, tolerance_s: int = TOLERANCE_S
) -> None:
    """Returns when one `v1` signature in the headers matches `body` under one of `secrets` and the
    timestamp is within `tolerance_s` of `now_s`; raises SignatureError saying what failed otherwise."""
    webhook_id = _header(headers, HEADER_ID)
    stamp = _header(headers, HEADER_TIMESTAMP)
    offered = _header(headers, HEADER_SIGNATURE)
    if not TIMESTAMP_PATTERN.fullmatch(stamp):
        raise SignatureError("invalid_timestamp", f"{HEADER_TIMESTAMP} is not integer Unix seconds")
    timestamp_s = int(stamp)
    if timestamp_s < now_s - tolerance_s:
        raise SignatureError("timestamp_too_old", f"{HEADER_TIMESTAMP} is over {tolerance_s} s old: a replay?")
    if timestamp_s > now_s + tolerance_s:
        raise SignatureError("timestamp_too_new", f"{HEADER_TIMESTAMP} is over {tolerance_s} s ahead: check the clock")
    expected = [signature(secret, webhook_id, timestamp_s, body).encode("ascii") for secret in secrets]
    for entry in offered.split(" ")[:SIGNATURES_MAX]:
        candidate = entry.encode("ascii", errors="replace")
        # compare_digest on every pair: the time taken does not tell which secret, if any, matched.
        if sum(hmac.compare_digest(candidate, wanted) for wanted in expected):
            return
    raise SignatureError("no_matching_signature", f"no {VERSION} signature matches this body under these secrets")
