"""Top-ups (test helper): cash paid into a tenant's account at the tenant's sandbox agent.

Each tenant has one sandbox agent account, opened at its first top-up: its `account.opened` is
published and acknowledged by Kafka (while its row is locked, so a concurrent first top-up waits)
before any `cash.in` names it — the ledger knows every account acknowledged before a request. The
ledger lets agents overdraw (consumers/ledger/domain.py `account_flags`: only citizens must not),
so the agent's float never runs out.

A top-up is stored as `processing` and committed, then its `cash.in` is published (keyed by the
customer's account, as the contract says); the views consumer writes `succeeded` or `failed`.
When Kafka does not acknowledge, the row is deleted and the client gets a 503.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Final

import asyncpg

from producers.api.accounts import PRODUCER, PROVIDER
from producers.api.magic import refuse_magic
from producers.api.payment_rows import PaymentRows
from producers.api.polling import poll_until
from producers.api.problems import ApiError
from producers.api.resources import DB_UNAVAILABLE, KAFKA_UNAVAILABLE, POOL_ACQUIRE_TIMEOUT_S, unavailable
from producers.api.tenants import Tenant
from schemas.accounts import AccountOpened
from schemas.api.accounts import ACCOUNT_ID_PREFIX
from schemas.api.payments import SETTLED_TOP_UP_STATUSES, TOP_UP_ID_PREFIX, TopUp, TopUpCreate, top_up_from_row
from schemas.cash import CashIn
from schemas.envelope import Envelope

ID_RANDOM_BYTES: Final = 16
AGENT_DISTRICT: Final = "Peshawar"
HOLDER_PREFIX: Final = "hld_"

Publish = Callable[[Envelope], Awaitable[None]]
Clock = Callable[[], datetime]


def _wall_clock() -> datetime:
    return datetime.now(UTC)


class TopUps:
    """Tops up a tenant's accounts through its sandbox agent, and reads the top-ups back."""

    def __init__(self, *, pool: asyncpg.Pool, publish: Publish, now: Clock = _wall_clock) -> None:
        self._pool = pool
        self._publish = publish
        self._now = now

    async def create(self, *, tenant: Tenant, request: TopUpCreate) -> TopUp:
        """Stores and publishes a cash-in of `amount` into the tenant's account; `processing`."""
        try:
            rows = PaymentRows(self._pool)
            account = await rows.account(account_id=request.account, tenant_id=tenant.id)
            if account is None:
                raise ApiError(status=404, code="not_found", detail="you have no account with this id", param="account")
            refuse_magic(account["magic"], param="account", use="be topped up")
            agent = await self._agent(tenant)
            event_id = uuid.uuid4()
            event = CashIn(
                event_id=event_id,
                occurred_at=self._now(),
                producer=PRODUCER,
                correlation_id=event_id,
                customer_account_id=request.account,
                agent_account_id=agent,
                amount=request.amount,
            )
            top_up_id = TOP_UP_ID_PREFIX + secrets.token_hex(ID_RANDOM_BYTES)
            row = await rows.insert_top_up(
                top_up_id=top_up_id,
                tenant_id=tenant.id,
                request_event_id=event_id,
                account=request.account,
                agent_account=agent,
                amount=request.amount,
            )
            try:
                await self._publish(event)
            except KAFKA_UNAVAILABLE as error:  # no top-up without its request
                await rows.delete_top_up(top_up_id=top_up_id)
                raise unavailable("Kafka") from error
        except DB_UNAVAILABLE as error:
            raise unavailable("PostgreSQL") from error
        return top_up_from_row(row)

    async def get(self, *, tenant: Tenant, top_up_id: str, wait_s: float | None = None) -> TopUp:
        """The tenant's top-up; with `wait_s`, once it is final or after `wait_s` seconds."""

        async def read() -> TopUp:
            try:
                row = await PaymentRows(self._pool).top_up(top_up_id=top_up_id, tenant_id=tenant.id)
            except DB_UNAVAILABLE as error:
                raise unavailable("PostgreSQL") from error
            if row is None:
                raise ApiError(
                    status=404, code="not_found", detail="you have no top-up with this id", param="top_up_id"
                )
            return top_up_from_row(row)

        if wait_s is None:
            return await read()
        return await poll_until(read, done=lambda top_up: top_up.status in SETTLED_TOP_UP_STATUSES, wait_s=wait_s)

    async def _agent(self, tenant: Tenant) -> str:
        """The tenant's sandbox agent account id, opened (and acknowledged by Kafka) at first use."""
        async with self._pool.acquire(timeout=POOL_ACQUIRE_TIMEOUT_S) as connection, connection.transaction():
            rows = PaymentRows(connection)
            agent = await rows.lock_agent(
                tenant_id=tenant.id, new_account_id=ACCOUNT_ID_PREFIX + secrets.token_hex(ID_RANDOM_BYTES)
            )
            account_id: str = agent["account_id"]
            if not agent["announced"]:
                try:
                    await self._publish(self._agent_opened(account_id))
                except KAFKA_UNAVAILABLE as error:  # rolls the row back: the next top-up tries again
                    raise unavailable("Kafka") from error
                await rows.mark_agent_announced(tenant_id=tenant.id)
        return account_id

    def _agent_opened(self, account_id: str) -> AccountOpened:
        event_id = uuid.uuid4()
        return AccountOpened(
            event_id=event_id,
            occurred_at=self._now(),
            producer=PRODUCER,
            correlation_id=event_id,
            account_id=account_id,
            kind="agent",
            holder_token=HOLDER_PREFIX + secrets.token_hex(ID_RANDOM_BYTES),  # a sandbox agent has no real holder
            provider=PROVIDER,
            district=AGENT_DISTRICT,
        )
