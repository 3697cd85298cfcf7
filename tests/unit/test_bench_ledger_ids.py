"""bench/ledger.py's accounts: the economy's ids skip the API's listing indexes, the API's fill them,
and both are valid account ids, distinct across funder, citizens and merchants."""

from __future__ import annotations

import re

import pytest

from bench.ledger import ACCOUNT_IDS, population
from schemas.envelope import TOKEN_PATTERN
from tests.conftest import REPO_ROOT

# The predicate of ledger_transfers_api_debits / _credits (migration 0025), as a regular expression.
API_LISTED = re.compile(r"^acc_")
LISTING_MIGRATION = REPO_ROOT / "infra" / "migrations" / "0025_api_qr_listings.sql"


@pytest.mark.parametrize("ids", sorted(ACCOUNT_IDS))
def test_every_benchmark_account_id_is_a_valid_distinct_token(ids: str) -> None:
    funder, citizens, merchants = population(ids)
    everyone = [funder, *citizens, *merchants]
    assert all(re.match(TOKEN_PATTERN, account) for account in everyone)
    assert len(set(everyone)) == len(everyone)


def test_only_the_api_shaped_accounts_are_in_the_api_listing_indexes() -> None:
    migration = LISTING_MIGRATION.read_text()
    assert migration.count("LIKE 'acc\\_%'") == 2  # the predicate this test mirrors
    economy, api = (
        [funder, *citizens, *merchants] for funder, citizens, merchants in map(population, ("economy", "api"))
    )
    assert not any(API_LISTED.match(account) for account in economy)
    assert all(API_LISTED.match(account) for account in api)
