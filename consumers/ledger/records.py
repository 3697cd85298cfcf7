"""What the ledger reads and writes, as values: accounts, transfers, pending transfers, requests,
decisions and a batch's effects, with TigerBeetle's flag bits. `domain.py` decides with them;
the repository stores them; outcomes are built from them. Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, NamedTuple
from uuid import UUID, uuid5

from consumers.ledger.limits import Tier
from consumers.ledger.wire import RequestEvent
from schemas.accounts import CITIZEN_KINDS

# Account flags (TigerBeetle's bit values).
ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS: Final = 2

# Transfer flags.
TRANSFER_PENDING: Final = 1
TRANSFER_POST_PENDING: Final = 2
TRANSFER_VOID_PENDING: Final = 4
TRANSFER_EXPIRE_PENDING: Final = 8

SETTLED_RESULTS: Final = frozenset({"created", "exists"})


# Expiry transfers have no request; their id is derived from the pending id, fixed forever.
EXPIRY_NAMESPACE: Final = UUID("c1d2a8a4-5e77-4b0e-9d0b-7f3b0c2e9a61")


def expiry_transfer_id(pending_id: UUID) -> UUID:
    """The id of the transfer that expires `pending_id` (the same in every run)."""
    return uuid5(EXPIRY_NAMESPACE, str(pending_id))


def account_flags(kind: str) -> int:
    """Citizens may not overdraw; businesses, agents and disbursers may (they bring money in)."""
    return ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS if kind in CITIZEN_KINDS else 0


@dataclass(slots=True)
class Account:
    """An account's balances as loaded (and locked) for one batch; a tiered account's limits and
    running totals too (None for every other account, which no limit applies to)."""

    id: str
    flags: int = 0
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0
    tier: Tier | None = None

    def check_debit_allowed(self, amount: int) -> bool:
        """False when debiting `amount` would overdraw an account that must not overdraw."""
        if not self.flags & ACCOUNT_DEBITS_MUST_NOT_EXCEED_CREDITS:
            return True
        return self.debits_pending + self.debits_posted + amount <= self.credits_posted

    @property
    def balance_with_incoming(self) -> int:
        """Posted balance plus incoming reservations: what the balance cap is judged by (an
        authorisation that may still be captured counts; one that may still be voided does not)."""
        return self.credits_posted + self.credits_pending - self.debits_posted


@dataclass(slots=True)
class Pending:
    """A two-phase transfer and where it stands: pending, posted, voided or expired."""

    id: UUID
    debit_account_id: str
    credit_account_id: str
    amount: int
    code: str
    expires_at: datetime | None
    source_partition: int
    state: str = "pending"
    # Whose clock expires it, and what its expiry outcome repeats of the request (None on rows
    # written before migration 0004).
    source_producer: str = ""
    correlation_id: UUID | None = None
    requested_at: datetime | None = None
    rail: str | None = None


class Transfer(NamedTuple):
    """One immutable transfer row."""

    id: UUID
    debit_account_id: str
    credit_account_id: str
    amount: int
    currency: str
    code: str
    rail: str | None
    pending_id: UUID | None
    timeout_seconds: int
    flags: int
    occurred_at: datetime
    reference: str | None


class RequestRecord(NamedTuple):
    """What was decided for one distinct request (its tracking row)."""

    id: UUID
    request_type: str
    result: str
    transfer_status: str | None
    amount: int
    fingerprint: bytes
    source_partition: int
    source_offset: int


class Request(NamedTuple):
    """One request event as the ledger sees it: the event and where it was read from."""

    event: RequestEvent
    partition: int
    offset: int
    fingerprint: bytes
    tenant: str | None = None  # set by the tenant gateway (TENANT_HEADER) for a tenant's own Kafka requests


class Expired(NamedTuple):
    """A pending transfer that expired while this batch was decided: its outcome to publish."""

    pending: Pending
    transfer_id: UUID


class Decision(NamedTuple):
    """The outcome of one request: a result code and what the outcome event must say."""

    request: Request
    result: str
    status: str | None
    debit_account_id: str
    credit_account_id: str | None
    amount: int
    duplicate: bool = False

    @property
    def settled(self) -> bool:
        """True for `created` and `exists`."""
        return self.result in SETTLED_RESULTS


@dataclass(slots=True)
class Effects:
    """Everything one batch writes, accumulated in decision order."""

    transfers: list[Transfer] = field(default_factory=list)
    requests: list[RequestRecord] = field(default_factory=list)
    new_pending: list[Pending] = field(default_factory=list)
    pending_states: dict[UUID, str] = field(default_factory=dict)
    deltas: dict[str, list[int]] = field(default_factory=dict)  # id -> [dp, dpo, cp, cpo]
    outcomes: list[Decision | Expired] = field(default_factory=list)  # in the order they happened
    windows: dict[str, Account] = field(default_factory=dict)  # tiered accounts whose totals moved

    def add_delta(self, account_id: str, index: int, amount: int) -> None:
        """Accumulates a balance change; `index` 0..3 = debits_pending..credits_posted."""
        self.deltas.setdefault(account_id, [0, 0, 0, 0])[index] += amount


DP, DPO, CP, CPO = 0, 1, 2, 3
