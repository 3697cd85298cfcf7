"""The topic catalog: every topic the sandbox uses, how it is keyed and what it carries.

Every topic is keyed by the account whose events must stay in order (the payer, or the
customer for agent cash, or the buyer token for orders), so one account's events always land
on one partition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from schemas.accounts import AccountOpened
from schemas.cash import CashIn, CashOut, CashPurchase
from schemas.commerce import OrderPaid, OrderPaidOnDelivery, OrderPlaced
from schemas.envelope import Envelope
from schemas.events import event_type_name
from schemas.payments import (
    PaymentExpired,
    PaymentPostRequested,
    PaymentRejected,
    PaymentRequested,
    PaymentSettled,
    PaymentVoidRequested,
    RefundRequested,
)

DAY_MS: Final = 86_400_000


@dataclass(frozen=True)
class TopicSpec:
    """One topic: its name, size, key, retention and the event types it may carry."""

    name: str
    partitions: int
    key: str
    retention_ms: int
    event_types: tuple[type[Envelope], ...]
    description: str
    cleanup_policy: str = "delete"

    @property
    def event_type_names(self) -> tuple[str, ...]:
        """The `event_type` tags this topic may carry."""
        return tuple(event_type_name(m) for m in self.event_types)

    def configs(self) -> dict[str, str]:
        """Topic-level configs for the admin client."""
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": self.cleanup_policy}


ACCOUNTS = TopicSpec(
    name="kp.accounts.v1",
    partitions=3,
    key="account_id",
    retention_ms=-1,  # account history is kept forever so the ledger can be rebuilt
    event_types=(AccountOpened,),
    description="Accounts opened by citizens, merchants, agents, billers, employers, disbursers.",
)
PAYMENT_REQUESTS = TopicSpec(
    name="kp.payments.requests.v1",
    partitions=6,
    key="payer_account_id (customer_account_id for agent cash)",
    retention_ms=30 * DAY_MS,
    event_types=(PaymentRequested, PaymentPostRequested, PaymentVoidRequested, CashIn, CashOut, RefundRequested),
    description="Commands to the ledger: payments, two-phase post/void, agent cash-in/out, refunds.",
)
PAYMENT_OUTCOMES = TopicSpec(
    name="kp.payments.outcomes.v1",
    partitions=6,
    key="payer_account_id",
    retention_ms=30 * DAY_MS,
    event_types=(PaymentSettled, PaymentRejected, PaymentExpired),
    description=(
        "One decision per request, and one expiry per timed-out authorisation. Each may be delivered"
        " twice: dedupe on event_id; request_event_id groups the outcomes of one request."
    ),
)
CASH = TopicSpec(
    name="kp.cash.v1",
    partitions=3,
    key="payer_token",
    retention_ms=30 * DAY_MS,
    event_types=(CashPurchase,),
    description="Purchases paid in cash: the cash side of the cash-to-digital shift.",
)
ORDERS = TopicSpec(
    name="kp.commerce.orders.v1",
    partitions=3,
    key="buyer_token",
    retention_ms=30 * DAY_MS,
    event_types=(OrderPlaced, OrderPaid, OrderPaidOnDelivery),
    description="E-commerce orders: placed, paid online, paid in cash on delivery.",
)
DEAD_LETTER = TopicSpec(
    name="kp.deadletter.v1",
    partitions=1,
    key="source topic/partition/offset",
    retention_ms=90 * DAY_MS,
    event_types=(),
    description="Messages no consumer could process, with the reason and the original bytes.",
)

CATALOG: Final[tuple[TopicSpec, ...]] = (
    ACCOUNTS,
    PAYMENT_REQUESTS,
    PAYMENT_OUTCOMES,
    CASH,
    ORDERS,
    DEAD_LETTER,
)


def topic_for(event: Envelope) -> TopicSpec:
    """The one topic an event of this type is published to."""
    for spec in CATALOG:
        if type(event) in spec.event_types:
            return spec
    raise LookupError(f"no topic carries {type(event).__name__}")


# Tenants on Kafka (a secured broker): each tenant writes commands to its own requests topic and
# reads the ledger's decisions on them from its own outcomes topic. The tenant id ends the name, so
# a prefixed ACL on "<family><tenant id>" grants exactly that tenant's topic (ids have one length).
TENANT_REQUESTS_FAMILY: Final = "kp.tenant-requests.v1."
TENANT_OUTCOMES_FAMILY: Final = "kp.tenant-outcomes.v1."
TENANT_TOPIC_PARTITIONS: Final = 3
TENANT_ID_PATTERN: Final = r"ten_[0-9a-f]{16}"
# Set on PAYMENT_REQUESTS only by the tenant gateway, which copies a tenant's requests there: the
# tenant is known from the topic it wrote to (ACLs), never from anything the tenant wrote.
TENANT_HEADER: Final = "kp-tenant"


def tenant_requests_name(tenant_id: str) -> str:
    """A tenant's own requests topic (before the deployment's prefix): same events as PAYMENT_REQUESTS."""
    return TENANT_REQUESTS_FAMILY + tenant_id


def tenant_outcomes_name(tenant_id: str) -> str:
    """A tenant's own outcomes topic (before the deployment's prefix): the ledger's decisions on its requests."""
    return TENANT_OUTCOMES_FAMILY + tenant_id


def tenant_topics(tenant_id: str) -> tuple[TopicSpec, TopicSpec]:
    """(requests, outcomes) topics of one tenant: the shapes of PAYMENT_REQUESTS and PAYMENT_OUTCOMES."""
    requests = TopicSpec(
        name=tenant_requests_name(tenant_id),
        partitions=TENANT_TOPIC_PARTITIONS,
        key=PAYMENT_REQUESTS.key,
        retention_ms=PAYMENT_REQUESTS.retention_ms,
        event_types=PAYMENT_REQUESTS.event_types,
        description=f"Tenant {tenant_id}'s own commands to the ledger (copied onward by the tenant gateway).",
    )
    outcomes = TopicSpec(
        name=tenant_outcomes_name(tenant_id),
        partitions=TENANT_TOPIC_PARTITIONS,
        key=PAYMENT_OUTCOMES.key,
        retention_ms=PAYMENT_OUTCOMES.retention_ms,
        event_types=PAYMENT_OUTCOMES.event_types,
        description=f"The ledger's decisions on tenant {tenant_id}'s own requests, and their expiries.",
    )
    return requests, outcomes
