"""Identifiers: valid mod-97 IBANs, contract-shaped tokens and aliases, no collisions."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from producers.sim.identifiers import (
    format_uuid,
    is_valid_iban,
    mobile_number,
    pakistani_iban,
    raast_alias_token,
    token,
)
from schemas.accounts import AccountOpened
from schemas.envelope import TOKEN_PATTERN

IBAN_PATTERN = re.compile(r"^PK[0-9]{2}[A-Z]{4}[0-9]{16}$")


def test_published_example_iban_passes_and_a_typo_fails() -> None:
    """The mod-97 check accepts PK36SCBL0000001123456702 and rejects one changed digit."""
    assert is_valid_iban("PK36SCBL0000001123456702")
    assert not is_valid_iban("PK36SCBL0000001123456703")


@given(st.integers(min_value=0, max_value=10**9 - 1), st.integers(min_value=0, max_value=2**64 - 1))
def test_generated_ibans_are_24_chars_and_pass_mod97(index: int, key: int) -> None:
    """Every generated IBAN has the Pakistani shape and passes mod-97."""
    iban = pakistani_iban(key, index)
    assert len(iban) == 24 and IBAN_PATTERN.match(iban)
    assert is_valid_iban(iban)


def test_ibans_tokens_and_aliases_are_unique() -> None:
    """Distinct indices never share an IBAN, a token or a Raast alias."""
    n = 20_000
    assert len({pakistani_iban(99, i)[8:] for i in range(n)}) == n
    assert len({token("wal", 99, i) for i in range(n)}) == n
    assert len({raast_alias_token(99, i) for i in range(n)}) == n


def test_tokens_and_aliases_match_the_contract_patterns() -> None:
    """Tokens match TOKEN_PATTERN, aliases the RaastAliasToken pattern, mobiles 03XX-XXXXXXX."""
    alias_pattern = AccountOpened.model_json_schema()["properties"]["raast_alias"]["anyOf"][0]["pattern"]
    for i in range(0, 5_000, 7):
        assert re.match(TOKEN_PATTERN, token("bnk", 5, i))
        assert re.match(alias_pattern, raast_alias_token(5, i))
        assert re.match(r"^03[0-9]{2}-[0-9]{7}$", mobile_number(5, i))


@given(st.integers(min_value=0, max_value=2**128 - 1))
def test_uuids_are_version_4(bits: int) -> None:
    """format_uuid always yields a canonical version-4 UUID string."""
    import uuid

    text = format_uuid(bits)
    parsed = uuid.UUID(text)
    assert str(parsed) == text and parsed.version == 4
