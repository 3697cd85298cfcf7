"""Cash events: money crossing between cash and e-money, and payments made in cash.

Cash purchases never touch the ledger; they exist so the cash side of the cash-to-digital
shift is observable next to the digital side.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.accounts import MerchantCategory
from schemas.envelope import AccountId, Envelope, HolderToken
from schemas.money import Currency, Paisa


class _AgentCash(Envelope):
    customer_account_id: AccountId
    agent_account_id: AccountId
    amount: Paisa
    currency: Currency = "PKR"

    @property
    def partition_key(self) -> str:
        return self.customer_account_id


class CashIn(_AgentCash):
    """A customer hands cash to an agent; the agent's float pays e-money into the customer's account."""

    event_type: Literal["cash.in"] = "cash.in"
    schema_version: Literal[1] = 1


class CashOut(_AgentCash):
    """A customer takes cash from an agent; e-money moves from the customer to the agent's float."""

    event_type: Literal["cash.out"] = "cash.out"
    schema_version: Literal[1] = 1


class CashPurchase(Envelope):
    """A purchase paid in cash (off-ledger), so the cash share of payments can be measured."""

    event_type: Literal["cash.purchase"] = "cash.purchase"
    schema_version: Literal[1] = 1
    payer_token: HolderToken
    merchant_account_id: AccountId | None = Field(default=None, description="The merchant, if it holds an account.")
    merchant_category: MerchantCategory
    district: str = Field(min_length=2, max_length=48)
    amount: Paisa
    currency: Currency = "PKR"

    @property
    def partition_key(self) -> str:
        return self.payer_token
