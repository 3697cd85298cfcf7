"""The contract's harder promises, as a client sees them: Kafka transactions, the ledger's clock, expiry.

Events are JSON objects produced with confluent-kafka; the ledger runs as its own process.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from confluent_kafka import Producer

from infra import kafka_clients
from infra.settings import Settings
from schemas.topics import PAYMENT_REQUESTS
from tests.integration.contract_support import (
    RELIABLE_PRODUCER,
    T0,
    account_ids_on,
    account_opened,
    agent_cash,
    answers,
    as_record,
    end_offsets,
    fetch,
    new_account_id,
    one_answer,
    open_accounts,
    outcomes,
    payment,
    post,
    produce,
    schema_errors,
    send,
    settled_ok,
)

TRANSACTION_TIMEOUT_S = 30.0
SHARED_PARTITION = 4  # the requests partition every clock test writes to (any one would do)
OTHER_PRODUCER = "other-psp"
FAR_FUTURE = datetime(2099, 1, 1, tzinfo=UTC)


def _result(outcome: Mapping[str, Any]) -> tuple[str, str, str | None]:
    return outcome["event_type"], outcome["result"], outcome.get("status")


def test_committed_transaction_settles_once_aborted_never_and_offsets_reach_the_log_end(
    fresh_settings: Settings,
) -> None:
    """Committed transactional and plain requests get one outcome each, aborted ones none; nothing stalls."""
    rng = random.Random(3)
    payers = [new_account_id(rng) for _ in range(3)]
    merchant = new_account_id(rng)
    open_accounts(
        fresh_settings,
        [
            *(account_opened(p, "employer") for p in payers),
            account_opened(merchant, "merchant", merchant_category="other"),
        ],
    )
    committed = [payment(payers[i % 2], merchant, 1_000 + i, T0 + timedelta(seconds=i)) for i in range(4)]
    aborted = [payment(payers[0], merchant, 9_000 + i, T0 + timedelta(seconds=10 + i)) for i in range(2)]
    plain = [payment(payers[2], merchant, 100 + i, T0 + timedelta(seconds=20 + i)) for i in range(7)]
    topic = fresh_settings.topic(PAYMENT_REQUESTS)

    client = kafka_clients.librdkafka_config(fresh_settings, "admin")
    transactional = Producer({**client, **RELIABLE_PRODUCER, "transactional.id": uuid4().hex})
    transactional.init_transactions(TRANSACTION_TIMEOUT_S)
    transactional.begin_transaction()
    send(transactional, topic, [as_record(e, partition=0) for e in committed])
    transactional.commit_transaction(TRANSACTION_TIMEOUT_S)
    transactional.begin_transaction()
    send(transactional, topic, [as_record(e, partition=0) for e in aborted])
    transactional.abort_transaction(TRANSACTION_TIMEOUT_S)
    produce(fresh_settings, PAYMENT_REQUESTS, [as_record(e, partition=1) for e in plain])

    settled_ok(fresh_settings)
    found = outcomes(fresh_settings)
    grouped = answers(found)
    assert {r["event_id"]: len(grouped.get(r["event_id"], [])) for r in [*committed, *plain, *aborted]} == {
        **{r["event_id"]: 1 for r in [*committed, *plain]},
        **{r["event_id"]: 0 for r in aborted},
    }
    ends = end_offsets(fresh_settings, PAYMENT_REQUESTS)
    stored = fetch(fresh_settings, "SELECT partition, next_offset FROM ledger_offsets WHERE topic = $1", topic)
    assert {row["partition"]: row["next_offset"] for row in stored} == ends, "the ledger's offsets are not at the end"

    settled_ok(fresh_settings)  # a second run finds nothing left to do
    assert len(outcomes(fresh_settings)) == len(found)
    assert fetch(fresh_settings, "SELECT count(*) AS n FROM ledger_requests")[0]["n"] == len(committed) + len(plain)


def _funded_payers(config: Settings, seed: int) -> tuple[list[str], str, str]:
    """Three payers on SHARED_PARTITION (a citizen, another citizen, an employer), a merchant, an agent."""
    rng = random.Random(seed)
    payers = account_ids_on(rng, SHARED_PARTITION, 3)
    merchant, agent = new_account_id(rng), new_account_id(rng)
    open_accounts(
        config,
        [
            account_opened(payers[0], "citizen_wallet", gender="female"),
            account_opened(payers[1], "citizen_wallet", gender="male"),
            account_opened(payers[2], "employer"),
            account_opened(merchant, "merchant", merchant_category="ecommerce"),
            account_opened(agent, "agent"),
        ],
    )
    return payers, merchant, agent


def _produce_on_shared_partition(config: Settings, requests: list[dict]) -> None:
    delivered = produce(config, PAYMENT_REQUESTS, requests)  # keyed by payer, librdkafka's default partitioner
    assert {d.partition for d in delivered} == {SHARED_PARTITION}


def _authorisation(payer: str, merchant: str, timeout_seconds: int) -> dict:
    return payment(
        payer, merchant, 40_000, T0, kind="ecommerce", rail="card", pending=True, timeout_seconds=timeout_seconds
    )


def test_a_far_future_request_is_invalid_timestamp_and_moves_no_clock(fresh_settings: Settings) -> None:
    """One payer's request dated 2099 is refused and cannot expire another payer's one-hour authorisation."""
    (payer_a, payer_b, _), merchant, agent = _funded_payers(fresh_settings, seed=4)
    authorised = _authorisation(payer_a, merchant, 3_600)
    future = payment(payer_b, merchant, 1_000, FAR_FUTURE)
    capture = post(authorised, T0 + timedelta(seconds=60))
    requests = [agent_cash("cash.in", payer_a, agent, 100_000, T0 - timedelta(minutes=10)), authorised, future, capture]
    _produce_on_shared_partition(fresh_settings, requests)
    settled_ok(fresh_settings)

    found = outcomes(fresh_settings)
    assert _result(one_answer(found, future)) == ("payment.rejected", "invalid_timestamp", None)
    assert _result(one_answer(found, capture)) == ("payment.settled", "created", "posted")
    assert [o for o in found if o["event_type"] == "payment.expired"] == []


def test_another_producers_clock_never_expires_this_producers_authorisation(fresh_settings: Settings) -> None:
    """Another producer's request two hours later on the same partition is accepted and expires nothing of ours."""
    (payer_a, _, employer), merchant, agent = _funded_payers(fresh_settings, seed=5)
    authorised = _authorisation(payer_a, merchant, 3_600)
    elsewhere = payment(
        employer, payer_a, 5_000, T0 + timedelta(hours=2), producer=OTHER_PRODUCER, kind="wage", rail="bank"
    )
    capture = post(authorised, T0 + timedelta(seconds=60))
    funding = agent_cash("cash.in", payer_a, agent, 100_000, T0 - timedelta(minutes=10))
    _produce_on_shared_partition(fresh_settings, [funding, authorised, elsewhere, capture])
    settled_ok(fresh_settings)

    found = outcomes(fresh_settings)
    assert _result(one_answer(found, elsewhere)) == ("payment.settled", "created", "posted")
    assert _result(one_answer(found, capture)) == ("payment.settled", "created", "posted")
    assert [o for o in found if o["event_type"] == "payment.expired"] == []


def test_an_authorisation_past_its_timeout_is_announced_as_expired_and_cannot_be_posted(
    fresh_settings: Settings,
) -> None:
    """An expiry is a `payment.expired` outcome with its own id, before the late post is refused."""
    from schemas.payments import expiry_outcome_event_id  # the contract's id rule (being added)

    (payer_a, _, employer), merchant, agent = _funded_payers(fresh_settings, seed=6)
    authorised = _authorisation(payer_a, merchant, 60)
    later = payment(employer, merchant, 500, T0 + timedelta(minutes=2), kind="p2m_static_qr", rail="bank")
    capture = post(authorised, T0 + timedelta(minutes=3))
    funding = agent_cash("cash.in", payer_a, agent, 100_000, T0 - timedelta(minutes=10))
    _produce_on_shared_partition(fresh_settings, [funding, authorised, later, capture])
    settled_ok(fresh_settings)

    found = outcomes(fresh_settings)
    expired = [o for o in found if o["event_type"] == "payment.expired"]
    assert len(expired) == 1, expired
    assert expired[0]["event_id"] == str(expiry_outcome_event_id(UUID(authorised["event_id"])))
    assert (expired[0]["request_event_id"], expired[0]["status"]) == (authorised["event_id"], "expired")
    assert expired[0]["_key"] == payer_a
    assert schema_errors(expired[0]) == [], schema_errors(expired[0])
    assert _result(one_answer(found, capture)) == ("payment.rejected", "pending_transfer_expired", None)
    # One payer's outcomes share a partition, so a client sees them in this order.
    payer_story = [
        (o["event_type"], o.get("status") or o["result"])
        for o in found
        if o["request_event_id"] in {authorised["event_id"], capture["event_id"]}
    ]
    assert payer_story == [
        ("payment.settled", "pending"),
        ("payment.expired", "expired"),
        ("payment.rejected", "pending_transfer_expired"),
    ], payer_story
