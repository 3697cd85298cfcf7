"""Secrets the sandbox must keep readable, sealed at rest with the deployment key (AES-256-GCM).

A webhook endpoint's signing secret cannot be stored as a hash, as API keys are: the dispatcher
needs the secret itself to compute each delivery's HMAC. So it is stored encrypted: AES-GCM under
a key derived from the deployment key (infra/secrets.py, `<state_dir>/secrets/token.key`, mode
0600) for this one purpose, with a fresh 96-bit nonce per seal, and the row it belongs to (the
endpoint id) as associated data, so a sealed secret copied onto another endpoint's row does not open.

Who can read a secret, then: a process holding both the database row and the deployment key
file — the API (which only ever seals) and the webhook dispatcher (which opens to sign). A dump
of the database, or its backups, holds no usable secret. Losing the key file makes every sealed
secret unreadable: rotate each endpoint's secret (`POST /v1/webhook_endpoints/{id}/rotate_secret`).

Pure: no I/O; the deployment key and randomness are passed in or drawn from `os.urandom`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PURPOSE: Final = b"kpsandbox/webhook-endpoint-secret/aes-256-gcm/v1"
NONCE_BYTES: Final = 12
DEPLOYMENT_KEY_BYTES_MIN: Final = 32


def _cipher(deployment_key: bytes) -> AESGCM:
    """AES-256-GCM under a key of its own, derived from the deployment key (HMAC-SHA256 as a PRF),
    so sealing never reuses the key the privacy tokens are computed with."""
    if len(deployment_key) < DEPLOYMENT_KEY_BYTES_MIN:
        raise ValueError(
            f"a deployment key has at least {DEPLOYMENT_KEY_BYTES_MIN} bytes, this one {len(deployment_key)}"
        )
    return AESGCM(hmac.new(deployment_key, PURPOSE, hashlib.sha256).digest())


def seal(deployment_key: bytes, secret: str, *, bound_to: str, nonce: bytes | None = None) -> bytes:
    """`secret` encrypted and authenticated for the row `bound_to`: nonce, then ciphertext and tag."""
    nonce = os.urandom(NONCE_BYTES) if nonce is None else nonce
    if len(nonce) != NONCE_BYTES:
        raise ValueError(f"an AES-GCM nonce has {NONCE_BYTES} bytes, not {len(nonce)}")
    return nonce + _cipher(deployment_key).encrypt(nonce, secret.encode("utf-8"), bound_to.encode("utf-8"))


def unseal(deployment_key: bytes, sealed: bytes, *, bound_to: str) -> str:
    """The secret `seal` sealed for `bound_to`. A ValueError when it was sealed under another
    deployment key, for another row, or has been altered."""
    try:
        plain = _cipher(deployment_key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], bound_to.encode("utf-8"))
    except InvalidTag:
        raise ValueError(
            f"the sealed secret of {bound_to} does not open with this deployment key; "
            "if the key file was replaced, rotate the endpoint's secret"
        ) from None
    return plain.decode("utf-8")
