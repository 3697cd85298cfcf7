"""Cursor-paginated listings: the tenant's accounts, payments, and one account's transfers.

A cursor is the position of the last item of a page: its listing's name, its time in
microseconds since the epoch and its id, base64url-encoded so clients treat it as opaque. The
next page holds the items strictly before that position in (time DESC, id DESC) order; ids are
unique, so the order is total and no item is seen twice, however many are created meanwhile
(new ones are newer: they go before the first page, not into later ones). A cursor from another
listing, or one that is not the API's, is a 422 naming `starting_after`.

Where transfers come from: the ledger's own `ledger_transfers` table, read-only (one query,
listing_rows.SELECT_TRANSFERS_PAGE), not the API's read models. The ledger's rows are the money
movements themselves — the balance GET /v1/accounts/{id} shows is their sum — so the listing
always reconciles with the balance; a rejected request moved nothing and has no row; captures,
cancels, expiries and refunds are there without the API having to mirror each. The API's tables
only name the payment, top-up or refund a transfer was for. Two partial indexes (migration 0025)
cover the API's accounts only, so the simulated economy's transfers do not pay for them.

`created_at` of a transfer is the ledger's `occurred_at`: when the request was made (the API's
clock for the API's requests, the ledger's clock for an expiry).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Final, Literal, TypeVar
from uuid import UUID

import asyncpg

from producers.api.accounts import account_from_row
from producers.api.listing_rows import ListingRows
from producers.api.payments import payment_from_row
from producers.api.problems import ApiError
from producers.api.resources import DB_UNAVAILABLE, unavailable
from producers.api.tenants import Tenant
from schemas.api.listings import (
    CURSOR_CHARS_MAX,
    TRANSFER_ID_PREFIX,
    AccountList,
    PaymentList,
    Transfer,
    TransferList,
    TransferPhase,
    TransferStatus,
)
from schemas.envelope import TOKEN_PATTERN

Listing = Literal["accounts", "payments", "transfers", "webhook_endpoints", "events"]
CURSOR_SEPARATOR: Final = "|"
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND: Final = timedelta(microseconds=1)
_TOKEN: Final = re.compile(TOKEN_PATTERN)
_UUID_HEX: Final = re.compile(r"^[0-9a-f]{32}$")
_MICROS: Final = re.compile(r"^-?[0-9]{1,19}$")

# The ledger's transfer flags (consumers/ledger/records.py) as the listing names them.
PHASES: Final[dict[int, TransferPhase]] = {0: "single", 1: "pending", 2: "post", 4: "void", 8: "expire"}
PHASE_STATUSES: Final[dict[TransferPhase, TransferStatus]] = {
    "single": "posted",
    "post": "posted",
    "void": "voided",
    "expire": "expired",
}


def encode_cursor(listing: Listing, at: datetime, item_id: str | UUID) -> str:
    """The opaque cursor of an item's position in a listing."""
    micros = (at - EPOCH) // MICROSECOND
    key = item_id.hex if isinstance(item_id, UUID) else item_id
    text = CURSOR_SEPARATOR.join((listing, str(micros), key))
    return base64.urlsafe_b64encode(text.encode("ascii")).decode("ascii").rstrip("=")


def bad_cursor(why: str) -> ApiError:
    """The 422 for a `starting_after` the API did not write for this listing."""
    return ApiError(
        status=422,
        code="invalid_parameter",
        detail=f"'starting_after' {why}; pass the `next_cursor` of this listing's previous page, or leave it out",
        param="starting_after",
    )


def decode_cursor(listing: Listing, cursor: str) -> tuple[datetime, str]:
    """The (time, id) position a cursor names; 422 `starting_after` when it is not one of this listing's."""
    if not 0 < len(cursor) <= CURSOR_CHARS_MAX:
        raise bad_cursor(f"is 1 to {CURSOR_CHARS_MAX} characters")
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad_cursor("is not a cursor") from None
    parts = text.split(CURSOR_SEPARATOR)
    if len(parts) != 3 or not _MICROS.fullmatch(parts[1]):
        raise bad_cursor("is not a cursor")
    if parts[0] != listing:
        raise bad_cursor(f"is a cursor of the {parts[0]!r} listing, not of {listing!r}")
    item_pattern = _UUID_HEX if listing == "transfers" else _TOKEN
    if not item_pattern.fullmatch(parts[2]):
        raise bad_cursor("is not a cursor")
    try:
        at = EPOCH + int(parts[1]) * MICROSECOND
    except OverflowError:
        raise bad_cursor("names a time out of range") from None
    return at, parts[2]


T = TypeVar("T")


def split_page(rows: Sequence[T], limit: int) -> tuple[Sequence[T], bool]:
    """The page (the first `limit` rows) and whether more follow (the query asked for one extra)."""
    return rows[:limit], len(rows) > limit


def transfer_from_row(row: asyncpg.Record) -> Transfer:
    """The API's view of one side of a ledger transfer."""
    phase = PHASES[row["flags"]]
    status: TransferStatus = row["pending_state"] if phase == "pending" else PHASE_STATUSES[phase]
    return Transfer(
        id=TRANSFER_ID_PREFIX + row["id"].hex,
        direction=row["direction"],
        amount=row["amount"],
        counterparty=row["counterparty"],
        phase=phase,
        status=status,
        payment=row["payment"],
        top_up=row["top_up"],
        refund=row["refund"],
        created_at=row["occurred_at"],
    )


class Listings:
    """Pages through a tenant's accounts, payments and transfers."""

    def __init__(self, *, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def accounts(self, *, tenant: Tenant, limit: int, starting_after: str | None) -> AccountList:
        """A page of the tenant's accounts with their balances, newest first."""
        after = decode_cursor("accounts", starting_after) if starting_after is not None else None
        try:
            rows = await ListingRows(self._pool).accounts(tenant_id=tenant.id, after=after, rows_max=limit + 1)
        except DB_UNAVAILABLE as error:
            raise unavailable("PostgreSQL") from error
        page, has_more = split_page(rows, limit)
        return AccountList(
            data=[
                account_from_row(row, settled=row["settled"], available=row["available"], pending=row["pending"])
                for row in page
            ],
            has_more=has_more,
            next_cursor=encode_cursor("accounts", page[-1]["created_at"], page[-1]["id"]) if has_more else None,
        )

    async def payments(self, *, tenant: Tenant, limit: int, starting_after: str | None) -> PaymentList:
        """A page of the tenant's payments, newest first."""
        after = decode_cursor("payments", starting_after) if starting_after is not None else None
        try:
            rows = await ListingRows(self._pool).payments(tenant_id=tenant.id, after=after, rows_max=limit + 1)
        except DB_UNAVAILABLE as error:
            raise unavailable("PostgreSQL") from error
        page, has_more = split_page(rows, limit)
        return PaymentList(
            data=[payment_from_row(row) for row in page],
            has_more=has_more,
            next_cursor=encode_cursor("payments", page[-1]["created_at"], page[-1]["id"]) if has_more else None,
        )

    async def transfers(
        self, *, tenant: Tenant, account_id: str, limit: int, starting_after: str | None
    ) -> TransferList:
        """A page of one of the tenant's accounts' ledger transfers, newest first; 404 for another's account."""
        after = None
        if starting_after is not None:
            at, hex_id = decode_cursor("transfers", starting_after)
            after = (at, UUID(hex=hex_id))
        try:
            rows = ListingRows(self._pool)
            if not await rows.owns_account(account_id=account_id, tenant_id=tenant.id):
                raise ApiError(
                    status=404, code="not_found", detail="you have no account with this id", param="account_id"
                )
            found = await rows.transfers(account_id=account_id, tenant_id=tenant.id, after=after, rows_max=limit + 1)
        except DB_UNAVAILABLE as error:
            raise unavailable("PostgreSQL") from error
        page, has_more = split_page(found, limit)
        return TransferList(
            account=account_id,
            data=[transfer_from_row(row) for row in page],
            has_more=has_more,
            next_cursor=encode_cursor("transfers", page[-1]["occurred_at"], page[-1]["id"]) if has_more else None,
        )
