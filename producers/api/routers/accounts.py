"""`/v1/accounts`: open an account, read one with its balance."""

from __future__ import annotations

from fastapi import APIRouter

from producers.api.deps import AccountsDep, TenantDep
from producers.api.idempotency import IdempotentRoute
from producers.api.problems import problem_responses
from schemas.api.accounts import Account, AccountCreate

router = APIRouter(prefix="/v1/accounts", tags=["accounts"], route_class=IdempotentRoute)


@router.post(
    "",
    status_code=201,
    responses=problem_responses(400, 401, 409, 413, 422, 503),
    summary="Open an account",
)
async def open_account(body: AccountCreate, tenant: TenantDep, accounts: AccountsDep) -> Account:
    """Opens a citizen wallet, citizen bank account (with an IBAN) or merchant account. It is
    `opening` until the ledger has settled it. The mobile number is never stored or returned."""
    return await accounts.open(tenant=tenant, request=body)


@router.get("/{account_id}", responses=problem_responses(401, 404, 503), summary="Read an account")
async def get_account(account_id: str, tenant: TenantDep, accounts: AccountsDep) -> Account:
    """One of your accounts with its balance in paisa (zero and `opening` until the ledger knows it)."""
    return await accounts.get(tenant=tenant, account_id=account_id)
