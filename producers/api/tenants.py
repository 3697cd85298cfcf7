"""Tenants of the HTTP API: the startups that hold a sandbox secret key (issue 9, item 3).

A tenant is created with a name and gets one secret key, `sk_test_` followed by 43 base62
characters (32 random bytes). The key is shown once and stored only as its SHA-256, so a
request is authenticated by hashing the bearer key and looking the hash up: the database never
compares secrets, and a copy of the table gives nobody a key. Revoking is for ever; to rotate a
key, create a tenant under a new name.

Names double as handles on the command line (`kpsandbox tenants revoke NAME|ID`), so a name is
1–64 letters, digits, spaces, dots, dashes or underscores, starts and ends with a letter or
digit, and never has the shape of a tenant id. The migration 0020_api_tenants.sql enforces the
same rules.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import asyncpg

from infra.errors import SandboxError

KEY_PREFIX: Final = "sk_test_"
KEY_RANDOM_BYTES: Final = 32
BASE62_ALPHABET: Final = string.digits + string.ascii_uppercase + string.ascii_lowercase
KEY_BODY_CHARS: Final = 43  # 62**43 > 2**256: every 32-byte value fits in 43 base62 characters
KEY_PATTERN: Final = re.compile(rf"{KEY_PREFIX}[0-9A-Za-z]{{{KEY_BODY_CHARS}}}")
KEY_PREFIX_SHOWN_CHARS: Final = 12

TENANT_ID_PATTERN: Final = re.compile(r"ten_[0-9a-f]{16}")
TENANT_ID_RANDOM_BYTES: Final = 8
NAME_CHARS_MAX: Final = 64
NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._ -]*[A-Za-z0-9])?")
NAME_RULE: Final = (
    f"1–{NAME_CHARS_MAX} letters, digits, spaces, '.', '-' or '_', starting and ending with a letter or digit"
)
NAME_CONSTRAINT: Final = "api_tenants_name_key"

TENANT_COLUMNS: Final = "id, name, key_prefix, created_at, revoked_at"
INSERT_TENANT: Final = f"""
INSERT INTO api_tenants (id, name, key_prefix, key_hash)
VALUES ($1, $2, $3, $4)
RETURNING {TENANT_COLUMNS}
"""
SELECT_TENANTS: Final = f"SELECT {TENANT_COLUMNS} FROM api_tenants ORDER BY created_at, id"
# A name never looks like an id, so `id = $1 OR name = $1` names at most one tenant. Revoking a
# revoked tenant keeps its first revocation time and says so.
REVOKE_TENANT: Final = """
WITH target AS (
    SELECT id, revoked_at IS NOT NULL AS already_revoked
    FROM api_tenants
    WHERE id = $1 OR name = $1
    FOR UPDATE
)
UPDATE api_tenants AS tenant
SET revoked_at = coalesce(tenant.revoked_at, now())
FROM target
WHERE tenant.id = target.id
RETURNING tenant.id, tenant.name, tenant.key_prefix, tenant.created_at, tenant.revoked_at, target.already_revoked
"""
SELECT_ACTIVE_TENANT_BY_KEY_HASH: Final = f"""
SELECT {TENANT_COLUMNS} FROM api_tenants WHERE key_hash = $1 AND revoked_at IS NULL
"""


@dataclass(frozen=True, slots=True)
class Tenant:
    """One API tenant as stored, without its key (which is never stored)."""

    id: str
    name: str
    key_prefix: str  # the key's first 12 characters, for telling keys apart
    created_at: datetime
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        """True once the tenant's key no longer authenticates."""
        return self.revoked_at is not None

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Tenant:
        """The tenant in a row selected with TENANT_COLUMNS."""
        return cls(
            id=row["id"],
            name=row["name"],
            key_prefix=row["key_prefix"],
            created_at=row["created_at"],
            revoked_at=row["revoked_at"],
        )


@dataclass(frozen=True, slots=True)
class Revocation:
    """What `Tenants.revoke` did: the tenant as it is now, and whether it was revoked before."""

    tenant: Tenant
    already_revoked: bool


def base62(value: bytes, *, width: int) -> str:
    """`value` as a big-endian number in base62 (0-9, A-Z, a-z), left-padded with '0' to `width`."""
    number = int.from_bytes(value, "big")
    digits: list[str] = []
    while number:
        number, digit = divmod(number, len(BASE62_ALPHABET))
        digits.append(BASE62_ALPHABET[digit])
    encoded = "".join(reversed(digits)).rjust(width, "0")
    assert len(encoded) == width, f"{len(value)} bytes do not fit in {width} base62 characters"
    return encoded


def new_secret_key() -> str:
    """A fresh secret key: `sk_test_` and 32 random bytes in base62."""
    key = KEY_PREFIX + base62(secrets.token_bytes(KEY_RANDOM_BYTES), width=KEY_BODY_CHARS)
    assert KEY_PATTERN.fullmatch(key)
    return key


def key_hash(key: str) -> bytes:
    """The SHA-256 of a key, as stored in api_tenants.key_hash."""
    return hashlib.sha256(key.encode("ascii")).digest()


def well_formed_key_hash(key: str) -> bytes | None:
    """The key's hash as stored, or None when the key is malformed (so no tenant can have it)."""
    return key_hash(key) if KEY_PATTERN.fullmatch(key) else None


def check_name(name: str) -> None:
    """Raises a SandboxError when `name` breaks the naming rule (NAME_RULE) or looks like an id."""
    if len(name) > NAME_CHARS_MAX or not NAME_PATTERN.fullmatch(name):
        raise SandboxError(f"{name!r} is not a valid tenant name", f"choose a name of {NAME_RULE}")
    if TENANT_ID_PATTERN.fullmatch(name):
        raise SandboxError(
            f"{name!r} has the shape of a tenant id, so it cannot be a name", "choose a name that does not start 'ten_'"
        )


class Tenants:
    """The api_tenants table: create, list, revoke and authenticate. Holds a connection or pool it
    does not own (the caller closes it)."""

    def __init__(self, db: asyncpg.Connection | asyncpg.Pool) -> None:
        self._db = db

    async def create(self, *, name: str) -> tuple[Tenant, str]:
        """A new tenant and its secret key. The key is returned here once and never again."""
        check_name(name)
        key = new_secret_key()
        tenant_id = "ten_" + secrets.token_hex(TENANT_ID_RANDOM_BYTES)
        try:
            row = await self._db.fetchrow(INSERT_TENANT, tenant_id, name, key[:KEY_PREFIX_SHOWN_CHARS], key_hash(key))
        except asyncpg.UniqueViolationError as error:
            if error.constraint_name != NAME_CONSTRAINT:
                raise  # a repeated random id (64 bits) or key (256 bits): a broken random source, not bad luck
            raise SandboxError(
                f"a tenant named {name!r} exists",
                "choose another name, or see the tenants with `kpsandbox tenants list`",
            ) from error
        assert row is not None
        return Tenant.from_row(row), key

    async def list(self) -> Sequence[Tenant]:
        """Every tenant, revoked ones included, oldest first."""
        return [Tenant.from_row(row) for row in await self._db.fetch(SELECT_TENANTS)]

    async def revoke(self, *, name_or_id: str) -> Revocation:
        """Revokes the tenant with this name or id: its key stops authenticating at once.
        Revoking a revoked tenant changes nothing. An unknown tenant is a SandboxError."""
        row = await self._db.fetchrow(REVOKE_TENANT, name_or_id)
        if row is None:
            raise SandboxError(
                f"there is no tenant named {name_or_id!r} or with that id",
                "see the tenants' names and ids with `kpsandbox tenants list`",
            )
        return Revocation(tenant=Tenant.from_row(row), already_revoked=row["already_revoked"])

    async def authenticate(self, *, key: str) -> Tenant | None:
        """The active tenant whose secret key this is; None for an unknown, malformed or revoked key."""
        found = well_formed_key_hash(key)
        if found is None:
            return None
        row = await self._db.fetchrow(SELECT_ACTIVE_TENANT_BY_KEY_HASH, found)
        return None if row is None else Tenant.from_row(row)
