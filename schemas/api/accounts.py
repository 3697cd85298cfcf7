"""`/v1/accounts`: what a startup sends to open an account, and what it reads back.

The mobile number (`msisdn`) is only ever in the request: the API turns it into keyed tokens (the
Raast alias and the holder token, producers/api/privacy.py) before anything is stored or
published, and no answer carries it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from schemas.accounts import Gender, Iban, MerchantCategory, RaastAliasToken, WalletTier
from schemas.envelope import TOKEN_PATTERN

ACCOUNT_ID_PREFIX: Final = "acc_"
MSISDN_CHARS_MAX: Final = 20  # "+92 345-123 4567" and friends; the shape itself is checked by the service

ApiAccountKind = Literal["citizen_wallet", "citizen_bank", "merchant"]
# The SBP branchless-banking tiers a startup may open a wallet in (test_capped is the magic payee's only).
ApiWalletTier = Literal["level_0", "level_1", "level_2"]
WALLET_TIER_DEFAULT: Final = "level_1"  # a biometrically verified wallet, as most are today
AccountStatus = Literal["opening", "open"]


def _strip(value: str) -> str:
    return value.strip()


District = Annotated[str, AfterValidator(_strip), Field(min_length=2, max_length=48, examples=["Peshawar"])]
ApiAccountId = Annotated[
    str, Field(pattern=TOKEN_PATTERN, max_length=40, description="An account id, e.g. 'acc_3f9c…'.")
]


class AccountCreate(BaseModel):
    """Opens a citizen wallet, a citizen bank account (an IBAN is made for it) or a merchant account.

    Citizens (`citizen_wallet`, `citizen_bank`) need `gender`; merchants need `category`.
    """

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {"kind": "citizen_wallet", "msisdn": "03451234567", "district": "Peshawar", "gender": "female"},
                {"kind": "merchant", "msisdn": "03001234567", "district": "Mardan", "category": "kiryana"},
            ]
        },
    )

    kind: ApiAccountKind
    msisdn: str = Field(
        min_length=1,
        max_length=MSISDN_CHARS_MAX,
        description="The holder's Pakistani mobile number (03XXXXXXXXX or +923XXXXXXXXX). Never stored or returned.",
    )
    district: District
    gender: Gender | None = Field(default=None, description="Citizens only (and required for them).")
    category: MerchantCategory | None = Field(default=None, description="Merchants only (and required for them).")
    tier: ApiWalletTier | None = Field(
        default=None,
        description=(
            "Citizen wallets only: the SBP branchless-banking tier whose daily, monthly and yearly limits and"
            f" balance cap the ledger enforces (default {WALLET_TIER_DEFAULT}; level_2 has none)."
        ),
    )
    test_clock: str | None = Field(
        default=None,
        pattern=TOKEN_PATTERN,
        max_length=40,
        description="A test clock's id (POST /v1/test_helpers/test_clocks): the account's payments are dated by "
        "that clock, and its authorisations expire when the clock is advanced past their `expires_at`.",
    )


class Balance(BaseModel):
    """An account's balance in paisa, as the ledger has settled it."""

    available: int = Field(description="Posted credits less posted and pending debits: what can be spent now.")
    pending: int = Field(description="Credits authorised but not yet posted.")
    currency: Literal["PKR"] = "PKR"


class Account(BaseModel):
    """One account of the tenant. `status` is `opening` until the ledger has settled its opening."""

    object: Literal["account"] = "account"
    id: ApiAccountId
    kind: ApiAccountKind
    status: AccountStatus = Field(description="`opening` until the ledger knows the account, then `open`.")
    raast_alias: RaastAliasToken = Field(description="The Raast alias: a keyed token of the mobile number.")
    iban: Iban | None = Field(default=None, description="Bank accounts only.")
    district: str
    gender: Gender | None = None
    category: MerchantCategory | None = None
    tier: WalletTier | None = Field(default=None, description="Citizen wallets: the SBP tier whose limits apply.")
    test_clock: str | None = Field(default=None, description="The test clock the account lives on, if any.")
    balance: Balance
    created_at: datetime
