"""Listing cursors are opaque, round-trip exactly, and refuse anything the API did not write for that
listing (producers/api/listings.py); pages split on the extra row; ledger transfers read as documented."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producers.api.listings import decode_cursor, encode_cursor, split_page, transfer_from_row
from producers.api.problems import ApiError
from schemas.api.listings import CURSOR_CHARS_MAX

TOKEN_IDS = st.from_regex(r"[a-z]{2,4}_[0-9a-f]{8,32}", fullmatch=True)
TIMES = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9000, 1, 1), timezones=st.just(UTC))


@settings(deadline=None)  # a shared, busy machine: the first example can be slow to generate
@given(TIMES, TOKEN_IDS)
def test_a_cursor_names_exactly_its_position(at: datetime, item_id: str) -> None:
    """Any (time, id) comes back unchanged, to the microsecond, and the cursor fits the query bound."""
    cursor = encode_cursor("payments", at, item_id)
    assert len(cursor) <= CURSOR_CHARS_MAX and "=" not in cursor
    assert decode_cursor("payments", cursor) == (at, item_id)


def test_a_transfer_cursor_carries_the_uuid_and_another_zone_means_the_same_instant() -> None:
    """Transfers are keyed by uuid; a time in another zone is the same instant."""
    transfer_id = uuid.uuid4()
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=5)))
    assert decode_cursor("transfers", encode_cursor("transfers", at, transfer_id)) == (at, transfer_id.hex)


def _encoded(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("listing", "cursor"),
    [
        ("payments", ""),
        ("payments", "x" * (CURSOR_CHARS_MAX + 1)),
        ("payments", "!!!"),
        ("payments", "A"),  # one base64 character cannot be a byte
        ("payments", _encoded("payments|1")),
        ("payments", _encoded("payments|1|pay_0123456789abcdef|x")),
        ("payments", _encoded("payments|soon|pay_0123456789abcdef")),
        ("payments", _encoded("payments|1|DROP TABLE")),
        ("payments", _encoded("payments|999999999999999999|pay_0123456789abcdef")),  # past year 9999
        ("payments", base64.urlsafe_b64encode(b"\xff\xfe|1|pay_0123456789abcdef").decode()),
        ("payments", _encoded("accounts|1|acc_0123456789abcdef")),
        ("transfers", _encoded("transfers|1|acc_0123456789abcdef")),
    ],
)
def test_a_cursor_the_api_did_not_write_for_this_listing_is_a_422(listing: str, cursor: str) -> None:
    """Empty, too long, not base64, wrong parts, an id of the wrong shape, a time out of range, another
    listing's: 422 invalid_parameter naming `starting_after`."""
    with pytest.raises(ApiError) as caught:
        decode_cursor(listing, cursor)  # type: ignore[arg-type]
    problem = caught.value.problem
    assert (problem.status, problem.code, problem.param) == (422, "invalid_parameter", "starting_after")


def test_a_page_is_the_first_limit_rows_and_more_follow_only_with_the_extra_row() -> None:
    """The query asks for limit + 1 rows: the extra one says there is a next page and is not shown."""
    assert split_page([1, 2, 3], 2) == ([1, 2], True)
    assert split_page([1, 2], 2) == ([1, 2], False)
    assert split_page([], 2) == ([], False)


def _row(flags: int, pending_state: str | None = None) -> dict[str, object]:
    return {
        "id": uuid.UUID(int=7),
        "direction": "debit",
        "amount": 500,
        "counterparty": "acc_" + "2" * 32,
        "flags": flags,
        "pending_state": pending_state,
        "payment": "pay_" + "1" * 32,
        "top_up": None,
        "refund": None,
        "occurred_at": datetime(2026, 1, 1, tzinfo=UTC),
    }


@pytest.mark.parametrize(
    ("flags", "pending_state", "phase", "status"),
    [
        (0, None, "single", "posted"),
        (1, "pending", "pending", "pending"),
        (1, "voided", "pending", "voided"),
        (2, None, "post", "posted"),
        (4, None, "void", "voided"),
        (8, None, "expire", "expired"),
    ],
)
def test_ledger_flags_read_as_phase_and_status(flags: int, pending_state: str | None, phase: str, status: str) -> None:
    """The ledger's transfer flags become the documented phase; an authorisation shows where it stands now."""
    transfer = transfer_from_row(_row(flags, pending_state))  # type: ignore[arg-type]
    assert (transfer.phase, transfer.status) == (phase, status)
    assert transfer.id == "xfr_" + "0" * 31 + "7"
