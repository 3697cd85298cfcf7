"""Magic values: the committed table is the code's, the numbers are reserved, and each behaviour
is recognised in every accepted way of writing its number (issue 9, item 6)."""

from __future__ import annotations

import pytest

from producers.api.magic_numbers import MAGIC_PAYEES, is_magic_number, payee_behaviour
from producers.api.openapi import MAGIC_VALUES_PATH, REFRESH_COMMAND
from schemas.api.magic import MAGIC_VALUES, PAYEE_NOT_FOUND, PAYER_DECLINES_REQUEST, magic_values_markdown


def test_committed_magic_values_document_matches_the_table() -> None:
    """docs/api/magic-values.md is generated from schemas/api/magic.py and has one row per value."""
    assert MAGIC_VALUES_PATH.read_text(encoding="utf-8") == magic_values_markdown(), (
        f"docs/api/magic-values.md is out of date: run `{REFRESH_COMMAND}` and commit the result"
    )
    for row in MAGIC_VALUES:
        assert f"`{row.value}`" in magic_values_markdown()


def test_every_payee_row_has_a_behaviour_and_the_issue_s_example_is_there() -> None:
    """Each payee_alias row is recognised as its own behaviour; 03000000002 is account_not_found."""
    payee_rows = [row for row in MAGIC_VALUES if row.field == "payee_alias"]
    assert {payee_behaviour(row.value) for row in payee_rows} == set(MAGIC_PAYEES.values())
    for row in payee_rows:
        assert payee_behaviour(row.value) == row.behaviour
    assert payee_behaviour(PAYEE_NOT_FOUND) == "account_not_found"
    assert PAYEE_NOT_FOUND == "03000000002"


@pytest.mark.parametrize("written", ["03000000002", "+923000000002", "923000000002", "0300-0000002", " 0300 0000002 "])
def test_magic_numbers_are_recognised_however_written(written: str) -> None:
    assert payee_behaviour(written) == "account_not_found"
    assert is_magic_number(written)


@pytest.mark.parametrize("number", ["03451234567", "03000000001", "not a number", None])
def test_other_numbers_are_not_magic(number: str | None) -> None:
    assert payee_behaviour(number) is None
    if number is not None:
        assert not is_magic_number(number)


def test_the_request_to_pay_number_is_reserved_but_no_payee() -> None:
    """The declining payer's number cannot open an account, and as a payee it is an ordinary alias."""
    assert is_magic_number(PAYER_DECLINES_REQUEST)
    assert payee_behaviour(PAYER_DECLINES_REQUEST) is None
