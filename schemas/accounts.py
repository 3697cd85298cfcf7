"""Account lifecycle events: who holds which account, and enough about them to measure inclusion."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from schemas.envelope import AccountId, Envelope, HolderToken
from schemas.rules import Needs, Rule, check_rules

AccountKind = Literal[
    "citizen_wallet",  # branchless-banking / mobile wallet (Easypaisa, JazzCash, ...)
    "citizen_bank",  # bank account with an IBAN
    "merchant",
    "agent",  # cash-in / cash-out agent
    "biller",  # utilities, telecom, government fees
    "employer",
    "government",  # G2P disburser
]
CITIZEN_KINDS: frozenset[str] = frozenset({"citizen_wallet", "citizen_bank"})

Gender = Literal["female", "male", "other"]
AreaType = Literal["urban", "rural"]
AgeBand = Literal["18-24", "25-34", "35-44", "45-54", "55-64", "65+"]
MerchantCategory = Literal["kiryana", "pharmacy", "transport", "restaurant", "utility", "ecommerce", "other"]
Instrument = Literal["cash", "static_qr", "dynamic_qr", "card", "online"]

Iban = Annotated[
    str,
    Field(
        pattern=r"^PK[0-9]{2}[A-Z]{4}[0-9]{16}$",
        description="Pakistani IBAN: PK, 2 check digits, 4-letter bank code, 16 digits (mod-97).",
    ),
]
RaastAliasToken = Annotated[
    str,
    Field(
        pattern=r"^rst_[0-9a-f]{8,32}$",
        description="Tokenised Raast alias (a token of the registered mobile number, never the number).",
    ),
]


class AccountOpened(Envelope):
    """A citizen, merchant, agent, biller, employer or disburser opened an account.

    Citizens carry gender (inclusion is measured by gender); merchants carry a category; bank
    accounts carry an IBAN. The JSON Schema says the same as `if`/`then` rules (RULES).
    """

    RULES: ClassVar[tuple[Rule, ...]] = (
        Needs(
            "kind",
            tuple(sorted(CITIZEN_KINDS)),
            "gender",
            "a citizen account needs 'gender' (inclusion is measured by gender)",
        ),
        Needs("kind", ("merchant",), "merchant_category", "a merchant account needs 'merchant_category'"),
        Needs("kind", ("citizen_bank",), "iban", "a bank account needs an 'iban'"),
    )

    event_type: Literal["account.opened"] = "account.opened"
    schema_version: Literal[1] = 1
    account_id: AccountId
    kind: AccountKind
    holder_token: HolderToken
    provider: str = Field(min_length=2, max_length=16, description="Bank or wallet code, e.g. 'EPMB'.")
    district: str = Field(min_length=2, max_length=48)
    iban: Iban | None = None
    raast_alias: RaastAliasToken | None = None
    gender: Gender | None = Field(default=None, description="Citizens only.")
    age_band: AgeBand | None = Field(default=None, description="Citizens only.")
    area: AreaType | None = None
    merchant_category: MerchantCategory | None = Field(default=None, description="Merchants only.")
    accepted_instruments: tuple[Instrument, ...] = Field(
        default=(), description="Merchants only: how they take payment."
    )

    @model_validator(mode="after")
    def check_kind_fields(self) -> AccountOpened:
        """Citizens carry gender; merchants carry a category; bank accounts carry an IBAN (RULES)."""
        check_rules(self, self.RULES)
        return self

    @property
    def partition_key(self) -> str:
        return self.account_id
