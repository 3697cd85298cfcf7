"""Magic values: inputs that force an outcome, so a startup can test every path (issue 9, item 6).

One table, served at `GET /v1/test_helpers/magic_values` and written out in
docs/api/magic-values.md (a unit test keeps the document equal to this table). Each row names the
field it is given in, the value, and what the sandbox does with it. Every outcome below is reached
through the real path — Kafka, the ledger, the views consumer — except where a row says the API
itself answers (a timeout, a declined request-to-pay): there is no ledger decision to force there.

The numbers are in the 0300000000X range, which no Pakistani operator assigns, so no real
subscriber's number is ever one of them.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, Field

MagicField = Literal["payee_alias", "payer_alias"]
MagicBehaviour = Literal[
    "account_not_found",
    "insufficient_funds",
    "payee_limit_exceeded",
    "delayed_success",
    "no_answer",
    "request_declined",
]

PAYEE_NOT_FOUND: Final = "03000000002"
PAYEE_INSUFFICIENT_FUNDS: Final = "03000000003"
PAYEE_LIMIT_EXCEEDED: Final = "03000000004"
PAYEE_DELAYED_SUCCESS: Final = "03000000005"
PAYEE_NO_ANSWER: Final = "03000000006"
PAYER_DECLINES_REQUEST: Final = "03000000009"

DELAYED_SUCCESS_S: Final = 3.0  # how long a delayed-success payment stays `processing` before it is sent
NO_ANSWER_TIMEOUT_S: Final = 10.0  # how long a no-answer payment stays `processing` before it times out


class MagicValue(BaseModel):
    """One magic value and what it forces."""

    object: Literal["magic_value"] = "magic_value"
    field: MagicField = Field(description="The request field that takes the value.")
    value: str
    endpoint: str = Field(description="The request it applies to.")
    behaviour: MagicBehaviour
    outcome: str = Field(description="The status (and failure code) the object ends in.")
    description: str


class MagicValueList(BaseModel):
    """Every magic value of the sandbox."""

    object: Literal["list"] = "list"
    data: list[MagicValue]


MAGIC_VALUES: Final[tuple[MagicValue, ...]] = (
    MagicValue(
        field="payee_alias",
        value=PAYEE_NOT_FOUND,
        endpoint="POST /v1/payments",
        behaviour="account_not_found",
        outcome="failed / account_not_found",
        description="Pays an account the ledger has never heard of; the ledger refuses it.",
    ),
    MagicValue(
        field="payee_alias",
        value=PAYEE_INSUFFICIENT_FUNDS,
        endpoint="POST /v1/payments",
        behaviour="insufficient_funds",
        outcome="failed / exceeds_credits",
        description=(
            "The ledger is asked to take the amount from the sandbox's always-empty account instead of "
            "your payer (your balance is not touched); it refuses for want of funds."
        ),
    ),
    MagicValue(
        field="payee_alias",
        value=PAYEE_LIMIT_EXCEEDED,
        endpoint="POST /v1/payments",
        behaviour="payee_limit_exceeded",
        outcome="failed / payee_limit_exceeded",
        description="Pays the sandbox's capped wallet (tier `test_capped`: every limit is 0); the ledger refuses it.",
    ),
    MagicValue(
        field="payee_alias",
        value=PAYEE_DELAYED_SUCCESS,
        endpoint="POST /v1/payments",
        behaviour="delayed_success",
        outcome="succeeded",
        description=(
            f"Stays `processing` for {DELAYED_SUCCESS_S:g} s, then goes to the ledger and succeeds; the money "
            "goes to the sandbox's test merchant."
        ),
    ),
    MagicValue(
        field="payee_alias",
        value=PAYEE_NO_ANSWER,
        endpoint="POST /v1/payments",
        behaviour="no_answer",
        outcome="failed / timed_out",
        description=(
            f"Nothing answers: the payment stays `processing` for {NO_ANSWER_TIMEOUT_S:g} s, then the API "
            "gives up on it (`timed_out`). No money moves."
        ),
    ),
    MagicValue(
        field="payer_alias",
        value=PAYER_DECLINES_REQUEST,
        endpoint="POST /v1/payment_requests",
        behaviour="request_declined",
        outcome="declined",
        description="The payer declines the request-to-pay at once; no payment is made.",
    ),
)


DOCUMENT_HEADER: Final = """# Magic values

Inputs that force an outcome, so you can test every path of your integration against the
sandbox (as Stripe's test cards do). The same table answers `GET /v1/test_helpers/magic_values`;
it is generated from `schemas/api/magic.py` (`python -m producers.api.openapi` rewrites this file
with docs/api/openapi.json; a unit test keeps both equal to the code).

Each payee value is a mobile number given as `payee_alias` on `POST /v1/payments`; the sandbox
opens the account it names for you (one per tenant) the first time you use it. These numbers
cannot open accounts of your own, and the accounts they name cannot be topped up or pay.
Everything except a time-out and a declined request-to-pay is decided by the real ledger: the
payment goes through Kafka and settles as any other, so the failure code is the ledger's own.

"""


def magic_values_markdown() -> str:
    """docs/api/magic-values.md: the header and one table row per magic value."""
    rows = [
        "| field | value | request | outcome | what happens |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| `{row.field}` | `{row.value}` | `{row.endpoint}` | {row.outcome} | {row.description} |"
            for row in MAGIC_VALUES
        ),
    ]
    return DOCUMENT_HEADER + "\n".join(rows) + "\n"
