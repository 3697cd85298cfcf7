"""`Idempotency-Key` on every POST of the API (issue 9, item 5).

A client may send `Idempotency-Key: <1–255 printable ASCII characters>` with any POST. The key is
kept for 24 hours per tenant (table `api_idempotency`, migration 0023):

- the same key with the same request (method, path and canonical JSON body) answers the first
  response's status and body again, with `Idempotent-Replayed: true`, and does nothing again;
- the same key with another request is 409 `idempotency_key_reused`;
- while the first request is still running, 409 `idempotency_key_in_progress`;
- a request that ends in a 5xx (Kafka or PostgreSQL away, a bug) releases its key, so a retry can
  proceed; 4xx answers are kept like successes.

It is implemented once, as a route class: `IdempotentRoute` adds the `claim` dependency to every
POST route of a router built with `route_class=IdempotentRoute`, and wraps the route's handler to
keep (or release) the response afterwards. `claim` runs after authentication and before the
route's work: it takes the key with INSERT … ON CONFLICT DO NOTHING in its own short transaction.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final

import asyncpg
from fastapi import Depends, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from producers.api.deps import ResourcesDep, TenantDep
from producers.api.problems import PROBLEM_RESPONSE, ApiError, error_response
from producers.api.resources import DB_UNAVAILABLE, unavailable

HEADER: Final = "Idempotency-Key"
REPLAYED_HEADER: Final = "Idempotent-Replayed"
KEY_CHARS_MAX: Final = 255
KEPT_HOURS: Final = 24
CLAIM_ATTEMPTS: Final = 3
STATE_ATTRIBUTE: Final = "idempotency_claim"

log = logging.getLogger(__name__)

# Expired keys count as absent: deleted (for this tenant) before the claim, in the same transaction.
DELETE_EXPIRED: Final = f"""
DELETE FROM api_idempotency
WHERE tenant_id = $1 AND created_at < now() - interval '{KEPT_HOURS} hours'
"""
INSERT_CLAIM: Final = """
INSERT INTO api_idempotency (tenant_id, key, request_hash) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING
RETURNING created_at
"""
SELECT_CLAIM: Final = """
SELECT request_hash, state, status_code, media_type, body
FROM api_idempotency WHERE tenant_id = $1 AND key = $2
"""
COMPLETE_CLAIM: Final = """
UPDATE api_idempotency SET state = 'done', status_code = $4, media_type = $5, body = $6
WHERE tenant_id = $1 AND key = $2 AND created_at = $3 AND state = 'in_progress'
"""
RELEASE_CLAIM: Final = """
DELETE FROM api_idempotency WHERE tenant_id = $1 AND key = $2 AND created_at = $3 AND state = 'in_progress'
"""

KeyHeader = Annotated[
    str | None,
    Header(
        alias=HEADER,
        description=(
            f"Optional. 1–{KEY_CHARS_MAX} printable ASCII characters, kept {KEPT_HOURS} hours per tenant: the same "
            "key with the same request answers the first response again (with `Idempotent-Replayed: true`); with "
            "another request it is 409 `idempotency_key_reused`; while the first is running, 409 "
            "`idempotency_key_in_progress`. A request that failed with a 5xx releases its key."
        ),
    ),
]


@dataclass(frozen=True, slots=True)
class Claim:
    """A key this request holds ('in_progress' row created at `created_at`)."""

    pool: asyncpg.Pool
    tenant_id: str
    key: str
    created_at: datetime


class Replay(Exception):
    """Raised by `claim` when the key's first response is to be answered again."""

    def __init__(self, status_code: int, media_type: str, body: bytes) -> None:
        super().__init__(status_code)
        self.response = Response(
            content=body, status_code=status_code, media_type=media_type, headers={REPLAYED_HEADER: "true"}
        )


def valid_key(key: str) -> bool:
    """1–255 printable ASCII characters (space to tilde)."""
    return 1 <= len(key) <= KEY_CHARS_MAX and all(" " <= char <= "~" for char in key)


def canonical_body(body: bytes) -> bytes:
    """The body as canonical JSON (sorted keys, no spaces), so formatting does not make two requests differ;
    the raw bytes when it is not JSON."""
    if not body.strip():
        return b""
    try:
        parsed = json.loads(body)
    except ValueError:
        return body
    return json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def request_hash(method: str, path: str, body: bytes) -> bytes:
    """SHA-256 over method, path and canonical body."""
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), canonical_body(body)):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.digest()


async def claim(request: Request, tenant: TenantDep, held: ResourcesDep, idempotency_key: KeyHeader = None) -> None:
    """Takes the request's Idempotency-Key, if it has one, before the route's work: raises Replay
    with the first response, or a 409 while it runs or when the key served another request."""
    if idempotency_key is None:
        return
    if not valid_key(idempotency_key):
        raise ApiError(
            status=400,
            code="idempotency_key_invalid",
            detail=f"an {HEADER} is 1–{KEY_CHARS_MAX} printable ASCII characters",
            param=HEADER,
        )
    wanted = request_hash(request.method, request.url.path, await request.body())
    try:
        for _ in range(CLAIM_ATTEMPTS):
            async with held.pool.acquire() as connection, connection.transaction():
                await connection.execute(DELETE_EXPIRED, tenant.id)
                created_at = await connection.fetchval(INSERT_CLAIM, tenant.id, idempotency_key, wanted)
            if created_at is not None:
                setattr(request.state, STATE_ATTRIBUTE, Claim(held.pool, tenant.id, idempotency_key, created_at))
                return
            row = await held.pool.fetchrow(SELECT_CLAIM, tenant.id, idempotency_key)
            if row is None:  # released (a 5xx) between the insert and the select: try again
                continue
            if bytes(row["request_hash"]) != wanted:
                raise ApiError(
                    status=409,
                    code="idempotency_key_reused",
                    detail=f"this {HEADER} was used with another request in the last {KEPT_HOURS} hours; use a new key",
                    param=HEADER,
                )
            if row["state"] != "done":
                break
            raise Replay(row["status_code"], row["media_type"], bytes(row["body"]))
    except DB_UNAVAILABLE as error:
        raise unavailable("PostgreSQL") from error
    raise ApiError(
        status=409,
        code="idempotency_key_in_progress",
        detail=f"a request with this {HEADER} is still being processed; retry in a moment",
        param=HEADER,
    )


async def _finish(found: Claim, response: Response) -> None:
    """Keeps the response under the key — or releases the key when the response is a 5xx, or not
    something that can be answered again."""
    body = getattr(response, "body", None)
    try:
        if response.status_code >= 500 or not isinstance(body, bytes):
            await found.pool.execute(RELEASE_CLAIM, found.tenant_id, found.key, found.created_at)
        else:
            media_type = response.headers.get("content-type", response.media_type or "application/json")
            await found.pool.execute(
                COMPLETE_CLAIM, found.tenant_id, found.key, found.created_at, response.status_code, media_type, body
            )
    except DB_UNAVAILABLE:  # the key stays in progress until it expires: never done twice
        log.warning("could not record the response for an Idempotency-Key of tenant %s", found.tenant_id)


async def _release(found: Claim) -> None:
    try:
        await found.pool.execute(RELEASE_CLAIM, found.tenant_id, found.key, found.created_at)
    except DB_UNAVAILABLE:
        log.warning("could not release an Idempotency-Key of tenant %s", found.tenant_id)


class IdempotentRoute(APIRoute):
    """An APIRoute whose POSTs take an Idempotency-Key (the `claim` dependency, documented 400/409
    problems) and keep their response under it."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if "POST" in {method.upper() for method in kwargs.get("methods") or ()}:
            kwargs["dependencies"] = [Depends(claim), *(kwargs.get("dependencies") or ())]
            kwargs["responses"] = {400: PROBLEM_RESPONSE, 409: PROBLEM_RESPONSE, **(kwargs.get("responses") or {})}
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def idempotent(request: Request) -> Response:
            try:
                response = await handler(request)
            except Replay as replay:
                return replay.response
            except (ApiError, RequestValidationError, StarletteHTTPException) as error:
                found: Claim | None = getattr(request.state, STATE_ATTRIBUTE, None)
                if found is None:
                    raise
                response = error_response(error)
                await _finish(found, response)
                return response
            except BaseException:
                found = getattr(request.state, STATE_ATTRIBUTE, None)
                if found is not None:
                    await _release(found)
                raise
            found = getattr(request.state, STATE_ATTRIBUTE, None)
            if found is not None:
                await _finish(found, response)
            return response

        return idempotent
