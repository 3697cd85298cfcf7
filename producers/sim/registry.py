"""Who is who: the account ids, holder tokens, IBANs and Raast aliases of every agent, and
their `account.opened` records. Everything is derived from the seed and the agent's index."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Final

from producers.sim.calibration import AGE_BANDS, AREAS, GENDERS, MERCHANT_CATEGORIES, Calibration
from producers.sim.identifiers import derive_key, mix64, pakistani_iban, raast_alias_token, token
from producers.sim.population import (
    BANK,
    BILLERS,
    CARD,
    DYNAMIC_QR,
    GOVERNMENT,
    ONLINE,
    STATIC_QR,
    Citizens,
    Merchants,
)
from producers.sim.records import AccountOpenedRec

_INSTRUMENT_BITS: Final = ((STATIC_QR, "static_qr"), (DYNAMIC_QR, "dynamic_qr"), (CARD, "card"), (ONLINE, "online"))
TOKEN_CACHE_MAX: Final = 2_000_000
WALLET_PROVIDERS: Final = ("EPMB", "JAZZCASH", "UPAISA", "SADAPAY", "NAYAPAY")
# Holder-token index ranges per kind of business, so tokens never collide across kinds.
_AGENT_BASE: Final = 1 << 40
_EMPLOYER_BASE: Final = 2 << 40
_BILLER_BASE: Final = 3 << 40
_GOVERNMENT_BASE: Final = 4 << 40
_UNKNOWN_BASE: Final = 1 << 48  # beyond any citizen index: an account nobody opened
# IBAN index ranges (IBAN account numbers are unique below 10**12): citizens below 10**9.
_IBAN_BASE: Final = {"merchant": 10**9, "employer": 2 * 10**9, "biller": 3 * 10**9, "government": 4 * 10**9}


class TokenCache:
    """One family's tokens by agent index, each made on first use. A list, not a dictionary:
    indexing it is several times cheaper on a large population. Emptied after TOKEN_CACHE_MAX
    tokens, so the strings it holds stay bounded."""

    __slots__ = ("_count", "_make", "tokens")

    def __init__(self, size: int, make: Callable[[int], str]) -> None:
        self.tokens: list[str | None] = [None] * size
        self._count = 0
        self._make = make

    def add(self, index: int) -> str:
        """Makes, caches and returns the token of `index` (after `tokens[index]` was None)."""
        if self._count >= TOKEN_CACHE_MAX:
            self.tokens = [None] * len(self.tokens)
            self._count = 0
        self._count += 1
        made = self.tokens[index] = self._make(index)
        return made


class Registry:
    """Derives identifiers on demand from the seed and each agent's index."""

    def __init__(self, seed: int, cal: Calibration, citizens: Citizens, merchants: Merchants) -> None:
        self.citizens, self.merchants = citizens, merchants
        self.district_names = tuple(d.name for d in cal.districts)
        self._account = derive_key(seed, "account")
        self._holder = derive_key(seed, "holder")
        self._business = derive_key(seed, "business")
        self._iban = derive_key(seed, "iban")
        self._alias = derive_key(seed, "alias")
        self._order = derive_key(seed, "order")
        # The ids named on most events, cached (tokens are pure functions of the index).
        self._holders = TokenCache(len(citizens), partial(token, "cit", self._holder))
        self._merchant_accounts = TokenCache(len(merchants), partial(token, "mch", self._account))
        self._biller_accounts = tuple(token("blr", self._account, b) for b in range(len(BILLERS)))  # every bill

    # -- identifiers ---------------------------------------------------------------------------

    def citizen_account(self, i: int) -> str:
        prefix = "bnk" if self.citizens.account[i] == BANK else "wal"
        return token(prefix, self._account, i)

    def citizen_holder(self, i: int) -> str:
        return self._holders.tokens[i] or self._holders.add(i)

    def merchant_account(self, m: int) -> str:
        return self._merchant_accounts.tokens[m] or self._merchant_accounts.add(m)

    def agent_account(self, a: int) -> str:
        return token("agt", self._account, a)

    def employer_account(self, e: int) -> str:
        return token("emp", self._account, e)

    def biller_account(self, b: int) -> str:
        return self._biller_accounts[b]

    def government_account(self, g: int) -> str:
        return token("gov", self._account, g)

    def unknown_account(self, n: int) -> str:
        """A well-formed wallet id that no account.opened ever named (an unknown payee)."""
        return token("wal", self._account, _UNKNOWN_BASE + n)

    def order_id(self, n: int) -> str:
        return token("ord", self._order, n)

    def citizen_iban(self, i: int) -> str:
        return pakistani_iban(self._iban, i)

    # -- account.opened records ------------------------------------------------------------------

    def citizen_opened(self, i: int, ts: int, event_id: str) -> AccountOpenedRec:
        c = self.citizens
        bank = c.account[i] == BANK
        iban = pakistani_iban(self._iban, i) if bank else None
        provider = iban[4:8] if iban else WALLET_PROVIDERS[mix64(i ^ self._holder) % len(WALLET_PROVIDERS)]
        return AccountOpenedRec(
            event_id,
            ts,
            event_id,
            self.citizen_account(i),
            "citizen_bank" if bank else "citizen_wallet",
            self.citizen_holder(i),
            provider,
            self.district_names[c.district[i]],
            iban,
            raast_alias_token(self._alias, i),
            GENDERS[c.gender[i]],
            AGE_BANDS[c.age_band[i]],
            AREAS[c.area[i]],
            None,
            (),
        )

    def merchant_opened(self, m: int, ts: int, event_id: str) -> AccountOpenedRec:
        mm = self.merchants
        bits = mm.instruments[m]
        instruments = ("cash", *(name for bit, name in _INSTRUMENT_BITS if bits & bit))
        iban = pakistani_iban(self._iban, _IBAN_BASE["merchant"] + m)
        return AccountOpenedRec(
            event_id,
            ts,
            event_id,
            self.merchant_account(m),
            "merchant",
            token("biz", self._business, m),
            iban[4:8],
            self.district_names[mm.district[m]],
            iban,
            None,
            None,
            None,
            AREAS[mm.area[m]],
            MERCHANT_CATEGORIES[mm.category[m]],
            instruments,
        )

    def institution_opened(self, kind: str, n: int, district: int, ts: int, event_id: str) -> AccountOpenedRec:
        """account.opened for an agent, employer, biller or government disburser."""
        account, base = {
            "agent": (self.agent_account, _AGENT_BASE),
            "employer": (self.employer_account, _EMPLOYER_BASE),
            "biller": (self.biller_account, _BILLER_BASE),
            "government": (self.government_account, _GOVERNMENT_BASE),
        }[kind]
        iban = None if kind == "agent" else pakistani_iban(self._iban, _IBAN_BASE[kind] + n)
        provider = WALLET_PROVIDERS[n % len(WALLET_PROVIDERS)] if iban is None else iban[4:8]
        category = "utility" if kind == "biller" else None
        return AccountOpenedRec(
            event_id,
            ts,
            event_id,
            account(n),
            kind,
            token("biz", self._business, base + n),
            provider,
            self.district_names[district],
            iban,
            None,
            None,
            None,
            None,
            category,
            (),
        )


def biller_district(cal: Calibration, b: int) -> int:
    """Index of the district a biller is registered in."""
    return _district_index(cal, BILLERS[b][1])


def government_district(cal: Calibration, g: int) -> int:
    """Index of the district a government disburser is registered in."""
    return _district_index(cal, GOVERNMENT[g][1])


def _district_index(cal: Calibration, name: str) -> int:
    for k, d in enumerate(cal.districts):
        if d.name == name:
            return k
    return 0
