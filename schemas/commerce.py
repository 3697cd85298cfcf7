"""E-commerce order lifecycle: placed, paid online, or paid in cash on delivery."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.envelope import AccountId, Envelope, HolderToken, Uuid
from schemas.money import Currency, Paisa

PaymentMethod = Literal["prepaid", "cash_on_delivery"]


class _Order(Envelope):
    order_id: str = Field(pattern=r"^ord_[0-9a-f]{8,32}$")
    buyer_token: HolderToken
    seller_account_id: AccountId
    amount: Paisa
    currency: Currency = "PKR"

    @property
    def partition_key(self) -> str:
        return self.buyer_token


class OrderPlaced(_Order):
    """A buyer placed an order and chose how to pay."""

    event_type: Literal["order.placed"] = "order.placed"
    schema_version: Literal[1] = 1
    payment_method: PaymentMethod
    district: str = Field(min_length=2, max_length=48)


class OrderPaid(_Order):
    """A prepaid order's payment was requested from the buyer's account."""

    event_type: Literal["order.paid"] = "order.paid"
    schema_version: Literal[1] = 1
    buyer_account_id: AccountId
    payment_event_id: Uuid = Field(description="event_id of the payment.requested that pays it.")


class OrderPaidOnDelivery(_Order):
    """A cash-on-delivery order was paid in cash to the courier."""

    event_type: Literal["order.paid_on_delivery"] = "order.paid_on_delivery"
    schema_version: Literal[1] = 1
