"""Account lifecycle events: who holds which account, and enough about them to measure inclusion."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Final, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer, model_validator

from schemas.envelope import AccountId, Envelope, HolderToken
from schemas.money import PAISA_PER_RUPEE
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
WalletTier = Literal["level_0", "level_1", "level_2", "test_capped"]


@dataclass(frozen=True, slots=True)
class TierLimits:
    """What one wallet tier may move, in paisa; the same figures bound debits and credits separately.

    `transfer_max` is the per-transfer bound: the regulations give no separate per-transaction
    figure, so it is the daily limit (no single transfer can be larger than a day's total
    anyway). `balance_max` caps the balance a credit may leave behind.
    """

    transfer_max: int
    daily_max: int
    monthly_max: int
    yearly_max: int
    balance_max: int


def _rupees(amount: int) -> int:
    return amount * PAISA_PER_RUPEE


# Wallet-tier limits, the one table the ledger enforces and the API documents. Source: State Bank
# of Pakistan, Branchless Banking Regulations 2016 (BPRD Circular No. 09 of 2016), as reported by
# ProPakistani on 2016-07-14 (calibration source `sbp_bb_regs_2016`; docs/ledger.md, "Limits").
# Level 2 accounts have no branchless-banking limit (the bank's own policy applies): None, unlimited.
# `test_capped` is no SBP tier but the sandbox's capped wallet: every limit 0. Every WalletTier
# has a row (a unit test says so).
TIER_LIMITS_SOURCE: Final = "sbp_bb_regs_2016"
TIER_LIMITS: Final[Mapping[str, TierLimits | None]] = MappingProxyType(
    {
        "level_0": TierLimits(
            transfer_max=_rupees(25_000),
            daily_max=_rupees(25_000),
            monthly_max=_rupees(40_000),
            yearly_max=_rupees(200_000),
            balance_max=_rupees(200_000),
        ),
        "level_1": TierLimits(
            transfer_max=_rupees(50_000),
            daily_max=_rupees(50_000),
            monthly_max=_rupees(80_000),
            yearly_max=_rupees(800_000),
            balance_max=_rupees(400_000),
        ),
        "level_2": None,
        "test_capped": TierLimits(transfer_max=0, daily_max=0, monthly_max=0, yearly_max=0, balance_max=0),
    }
)

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
    tier: WalletTier | None = Field(
        default=None,
        description=(
            "Branchless-banking wallet tier whose limits the ledger enforces (SBP Branchless Banking"
            " Regulations 2016: level_0, level_1; level_2 is unlimited). test_capped is no SBP tier but"
            " the sandbox's capped wallet: every limit is 0. Absent: no branchless-banking limit"
            " (bank accounts, merchants, agents, billers and the simulation's wallets)."
        ),
    )

    @model_validator(mode="after")
    def check_kind_fields(self) -> AccountOpened:
        """Citizens carry gender; merchants carry a category; bank accounts carry an IBAN (RULES)."""
        check_rules(self, self.RULES)
        return self

    @model_serializer(mode="wrap")
    def omit_absent_tier(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Leaves `tier` out when there is none, so an account without one is written byte for byte
        as before the field existed (the simulation's fast encoder writes no `tier`)."""
        data: dict[str, Any] = handler(self)
        if data.get("tier", "") is None:
            del data["tier"]
        return data

    @property
    def partition_key(self) -> str:
        return self.account_id
