"""The ledger's CPU trims (issue 13) compute exactly what the slower code they replace computed."""

from __future__ import annotations

import gc
from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st

from consumers.ledger import collector
from consumers.ledger.outcomes import outcome_id_text, uuid_text
from schemas.payments import RejectedResult, SettledResult, outcome_event_id

RESULTS = st.sampled_from([*SettledResult.__args__, *RejectedResult.__args__])  # type: ignore[attr-defined]


@given(value=st.uuids(version=None) | st.builds(UUID, int=st.integers(0, 2**128 - 1)))
def test_uuid_text_is_str_of_the_uuid(value: UUID) -> None:
    """The fast text of any UUID (any version, leading zeros included) is `str(uuid)`."""
    assert uuid_text(value) == str(value)


@given(request_id=st.uuids(), result=RESULTS, fingerprint=st.binary(min_size=16, max_size=16))
def test_outcome_id_text_is_the_contracts_outcome_event_id(request_id: UUID, result: str, fingerprint: bytes) -> None:
    """The outcome id written without a UUID object is the contract's `outcome_event_id`, a version-5 UUID."""
    expected = outcome_event_id(request_id, result, fingerprint)
    text = outcome_id_text(str(request_id), result, fingerprint)
    assert text == str(expected)
    assert UUID(text).version == 5 and UUID(text).variant == "specified in RFC 4122"


def test_collecting_rarely_is_undone_after_settling() -> None:
    """The settler's garbage-collector policy holds only while it settles: thresholds and frozen objects come back."""
    before = gc.get_threshold()
    with collector.collecting_rarely():
        assert gc.get_threshold() == collector.GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
