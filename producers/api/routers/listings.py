"""Listings, newest first, a page at a time: `GET /v1/accounts`, `GET /v1/payments` and
`GET /v1/accounts/{id}/transfers` (cursor pagination, producers/api/listings.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from producers.api.deps import ListingsDep, TenantDep
from producers.api.problems import problem_responses
from schemas.api.listings import CURSOR_CHARS_MAX, LIMIT_DEFAULT, LIMIT_MAX, AccountList, PaymentList, TransferList

router = APIRouter()

LimitQuery = Annotated[
    int, Query(ge=1, le=LIMIT_MAX, description=f"Items per page, 1 to {LIMIT_MAX} (default {LIMIT_DEFAULT}).")
]
CursorQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=CURSOR_CHARS_MAX,
        description="The `next_cursor` of the previous page; leave it out for the first page.",
    ),
]


@router.get("/v1/accounts", tags=["accounts"], responses=problem_responses(401, 422, 503), summary="List your accounts")
async def list_accounts(
    tenant: TenantDep, listings: ListingsDep, limit: LimitQuery = LIMIT_DEFAULT, starting_after: CursorQuery = None
) -> AccountList:
    """Your accounts with their balances, newest first, `limit` at a time."""
    return await listings.accounts(tenant=tenant, limit=limit, starting_after=starting_after)


@router.get(
    "/v1/accounts/{account_id}/transfers",
    tags=["accounts"],
    responses=problem_responses(401, 404, 422, 503),
    summary="List an account's transfers",
)
async def list_transfers(
    account_id: str,
    tenant: TenantDep,
    listings: ListingsDep,
    limit: LimitQuery = LIMIT_DEFAULT,
    starting_after: CursorQuery = None,
) -> TransferList:
    """The money movements on one of your accounts as the ledger settled them (payments in and out,
    top-ups, captures, releases, refunds), newest first. Rejected requests moved nothing: not listed."""
    return await listings.transfers(tenant=tenant, account_id=account_id, limit=limit, starting_after=starting_after)


@router.get("/v1/payments", tags=["payments"], responses=problem_responses(401, 422, 503), summary="List your payments")
async def list_payments(
    tenant: TenantDep, listings: ListingsDep, limit: LimitQuery = LIMIT_DEFAULT, starting_after: CursorQuery = None
) -> PaymentList:
    """Your payments, newest first, `limit` at a time."""
    return await listings.payments(tenant=tenant, limit=limit, starting_after=starting_after)
