"""Cursor-paginated listings: `GET /v1/accounts`, `GET /v1/payments`, `GET /v1/accounts/{id}/transfers`.

Every listing answers newest first, `limit` items at a time (LIMIT_DEFAULT, at most LIMIT_MAX):

    {"object": "list", "data": [...], "has_more": true, "next_cursor": "…"}

Pass `next_cursor` back as `starting_after` for the next page; `has_more` is false (and
`next_cursor` null) on the last one. A cursor is opaque and names a position, not a page
number, so items created while a client pages through never make it see an item twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

from pydantic import BaseModel, Field

from schemas.api.accounts import Account, ApiAccountId
from schemas.api.payments import Payment

LIMIT_DEFAULT: Final = 20
LIMIT_MAX: Final = 100
CURSOR_CHARS_MAX: Final = 200  # a cursor the API writes is about 80 characters
TRANSFER_ID_PREFIX: Final = "xfr_"

TransferDirection = Literal["debit", "credit"]
TransferPhase = Literal["single", "pending", "post", "void", "expire"]
TransferStatus = Literal["posted", "pending", "voided", "expired"]


class Transfer(BaseModel):
    """One money movement on an account, as the ledger settled it (immutable once written)."""

    object: Literal["transfer"] = "transfer"
    id: str = Field(description="'xfr_' and the ledger transfer's id (the request's event id) in hex.")
    direction: TransferDirection = Field(description="`debit`: money left this account; `credit`: it came in.")
    amount: int = Field(description="Paisa, as the ledger wrote it (a void or expiry names the released amount).")
    currency: Literal["PKR"] = "PKR"
    counterparty: str = Field(description="The account on the other side (yours, or a sandbox account).")
    phase: TransferPhase = Field(
        description="`single`: moved at once; `pending`: an authorisation; `post`, `void`, `expire`: its end."
    )
    status: TransferStatus = Field(
        description="`posted` for a single transfer or a post; an authorisation's current state "
        "(`pending`, `posted`, `voided`, `expired`); `voided` or `expired` for those ends."
    )
    payment: str | None = Field(default=None, description="The payment the API made this transfer for.")
    top_up: str | None = Field(default=None, description="The top-up the API made this transfer for.")
    refund: str | None = Field(default=None, description="The refund the API made this transfer for.")
    created_at: datetime = Field(description="When the request was made (the ledger's `occurred_at`).")


class AccountList(BaseModel):
    """A page of your accounts, newest first."""

    object: Literal["list"] = "list"
    data: list[Account]
    has_more: bool
    next_cursor: str | None = Field(description="Pass as `starting_after` for the next page; null on the last.")


class PaymentList(BaseModel):
    """A page of your payments, newest first."""

    object: Literal["list"] = "list"
    data: list[Payment]
    has_more: bool
    next_cursor: str | None = Field(description="Pass as `starting_after` for the next page; null on the last.")


class TransferList(BaseModel):
    """A page of one account's transfers, newest first."""

    object: Literal["list"] = "list"
    account: ApiAccountId
    data: list[Transfer]
    has_more: bool
    next_cursor: str | None = Field(description="Pass as `starting_after` for the next page; null on the last.")
