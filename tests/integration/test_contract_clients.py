"""The contract as a startup's own Kafka client meets it: schema-valid events, idempotency, partitioners.

Events are JSON objects written from docs/schemas/, produced with confluent-kafka (librdkafka);
the ledger runs as its own process; outcomes are read back with read_committed.
"""

from __future__ import annotations

import base64
import json
import random
import shutil
import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from infra.settings import Settings
from schemas.topics import ACCOUNTS, PAYMENT_REQUESTS
from tests.integration.contract_support import (
    T0,
    Record,
    account_opened,
    agent_cash,
    answers,
    crc32_partition,
    dead_letters,
    documented_snippets,
    json_value,
    ledger_check,
    murmur2_partition,
    new_account_id,
    one_answer,
    open_accounts,
    outcomes,
    payment,
    post,
    produce,
    run_shell,
    schema_errors,
    settled_ok,
    void,
)

OUTCOME_SCHEMA_VERSION = 3  # bumped when the limit codes and refunds grew the outcomes (docs/integrating.md)
IBAN = "PK36SCBL0000001123456702"
JAVA_TIMEOUT_S = 60.0


def test_schema_valid_events_are_accepted_and_schema_invalid_ones_refused_on_both_sides(
    fresh_settings: Settings,
) -> None:
    """What docs/schemas/ accepts the ledger settles; a citizen without gender is refused by both."""
    rng = random.Random(1)
    wallet, bank, merchant, agent, employer, biller, government, no_gender = (new_account_id(rng) for _ in range(8))
    accounts = [
        account_opened(wallet, "citizen_wallet", gender="female"),
        account_opened(bank, "citizen_bank", gender="male", iban=IBAN),
        account_opened(merchant, "merchant", merchant_category="pharmacy"),
        account_opened(agent, "agent"),
        account_opened(employer, "employer"),
        account_opened(biller, "biller"),
        account_opened(government, "government"),
    ]
    refused = account_opened(no_gender, "citizen_wallet")
    pending = payment(
        wallet,
        merchant,
        1_000,
        T0 + timedelta(minutes=6),
        kind="ecommerce",
        rail="card",
        pending=True,
        timeout_seconds=3_600,
    )
    requests = [
        agent_cash("cash.in", wallet, agent, 50_000, T0),
        payment(employer, bank, 200_000, T0 + timedelta(minutes=1), kind="wage", rail="bank"),
        payment(wallet, bank, 10_000, T0 + timedelta(minutes=2)),
        payment(bank, merchant, 20_000, T0 + timedelta(minutes=3), kind="p2m_dynamic_qr", rail="bank"),
        payment(
            wallet, biller, 5_000, T0 + timedelta(minutes=4), kind="bill_payment", rail="wallet", reference="INV-42"
        ),
        payment(government, wallet, 30_000, T0 + timedelta(minutes=5), kind="g2p", rail="bank"),
        pending,
        post(pending, T0 + timedelta(minutes=7)),
        agent_cash("cash.out", wallet, agent, 2_000, T0 + timedelta(minutes=8)),
    ]
    for event in [*accounts, *requests]:
        assert schema_errors(event) == [], (event["event_type"], schema_errors(event))

    open_accounts(fresh_settings, [*accounts, refused])
    produce(fresh_settings, PAYMENT_REQUESTS, requests)
    settled_ok(fresh_settings)

    found = outcomes(fresh_settings)
    for request in requests:
        outcome = one_answer(found, request)
        assert (outcome["event_type"], outcome["result"]) == ("payment.settled", "created"), outcome
        assert outcome["schema_version"] == OUTCOME_SCHEMA_VERSION
    for outcome in found:  # a client validating what it reads against docs/schemas/ accepts every outcome
        assert schema_errors(outcome) == [], (outcome, schema_errors(outcome))
    letters = [json_value(m) for m in dead_letters(fresh_settings)]
    assert [(d["reason"], d["source_topic"]) for d in letters] == [
        ("schema_invalid", fresh_settings.topic(ACCOUNTS))
    ], letters
    assert json.loads(base64.b64decode(letters[0]["original_value_b64"]))["account_id"] == no_gender
    assert schema_errors(refused), "the published schema must refuse what the ledger refuses"


def test_outcomes_of_one_request_have_distinct_ids_and_reserialised_retries_are_exists(
    fresh_settings: Settings,
) -> None:
    """created / exists / both conflicts of one event_id are four outcomes with four ids, one request id."""
    rng = random.Random(2)
    payer, payee = new_account_id(rng), new_account_id(rng)
    open_accounts(
        fresh_settings,
        [account_opened(payer, "employer"), account_opened(payee, "merchant", merchant_category="kiryana")],
    )
    original = payment(payer, payee, 12_345, T0, kind="p2m_static_qr", rail="wallet", reference="INV-1")
    # The same event as another client library would write it: other key order, +00:00, defaults spelled out.
    spelled_out = {"schema_version": 1, "currency": "PKR", "pending": False, "timeout_seconds": 0, "order_id": None}
    reserialised = dict(sorted({**original, **spelled_out}.items(), reverse=True))
    reserialised["occurred_at"] = T0.isoformat()
    assert reserialised["occurred_at"].endswith("+00:00") and original["occurred_at"].endswith("Z")
    other_amount = {**original, "amount": 54_321}
    other_reference = {**original, "reference": "INV-2"}
    sent = [original, reserialised, other_amount, other_reference, original]
    for event in sent:
        assert schema_errors(event) == []
    produce(fresh_settings, PAYMENT_REQUESTS, [Record(payer, json.dumps(e).encode()) for e in sent])
    settled_ok(fresh_settings)

    found = [o for o in outcomes(fresh_settings) if o["request_event_id"] == original["event_id"]]
    by_result = {o["result"]: o for o in found}
    assert [(o["event_type"], o["result"]) for o in found] == [
        ("payment.settled", "created"),
        ("payment.settled", "exists"),
        ("payment.rejected", "exists_with_different_amount"),
        ("payment.rejected", "exists_with_different_fields"),
        ("payment.settled", "exists"),
    ], found
    assert len({by_result[r]["event_id"] for r in by_result}) == 4, "every distinct outcome has its own event_id"
    assert found[4]["event_id"] == found[1]["event_id"], "the same outcome again keeps its event_id"
    assert {o["schema_version"] for o in found} == {OUTCOME_SCHEMA_VERSION}
    assert {o["_key"] for o in found} == {payer}


def _mixed_stream(rng: random.Random) -> tuple[list[dict], list[dict]]:
    """Accounts and a small mixed request stream: wages, cash in/out, p2p, p2m, post and void."""
    citizens = [new_account_id(rng) for _ in range(6)]
    merchants = [new_account_id(rng) for _ in range(3)]
    agent, employer = new_account_id(rng), new_account_id(rng)
    accounts = [account_opened(c, "citizen_wallet", gender=rng.choice(["female", "male"])) for c in citizens]
    accounts += [account_opened(m, "merchant", merchant_category="kiryana") for m in merchants]
    accounts += [account_opened(agent, "agent"), account_opened(employer, "employer")]
    at = T0

    def later() -> datetime:
        nonlocal at
        at += timedelta(seconds=rng.randint(1, 90))
        return at

    requests: list[dict] = []
    for citizen in citizens:
        requests.append(payment(employer, citizen, 500_000, later(), kind="wage", rail="bank"))
        requests.append(agent_cash("cash.in", citizen, agent, 100_000, later()))
    for _ in range(10):
        payer, payee = rng.sample(citizens, 2)
        requests.append(payment(payer, payee, rng.randint(100, 50_000), later()))
        merchant = rng.choice(merchants)
        requests.append(
            payment(payer, merchant, rng.randint(100, 20_000), later(), kind="p2m_static_qr", rail="wallet")
        )
    for finish in (post, void, post):
        authorised = payment(
            rng.choice(citizens), rng.choice(merchants), 3_000, later(), kind="ecommerce", rail="card", pending=True
        )
        requests += [authorised, finish(authorised, later())]
    requests.append(agent_cash("cash.out", citizens[0], agent, 5_000, later()))
    return accounts, requests


@pytest.mark.parametrize(
    ("partitioner", "expected_partition"),
    [("consistent_random", crc32_partition), ("murmur2_random", murmur2_partition)],
)
def test_any_partitioner_settles_one_outcome_per_request(
    fresh_settings: Settings, partitioner: str, expected_partition: Callable[[str, int], int]
) -> None:
    """The same mixed stream keyed by payer settles and reconciles under CRC32 and under murmur2."""
    accounts, requests = _mixed_stream(random.Random(6))
    produce(fresh_settings, ACCOUNTS, accounts, partitioner=partitioner)
    delivered = produce(fresh_settings, PAYMENT_REQUESTS, requests, partitioner=partitioner)
    assert [d.partition for d in delivered] == [
        expected_partition(str(d.key), PAYMENT_REQUESTS.partitions) for d in delivered
    ], "the client did not use the partitioner under test"
    assert len({d.partition for d in delivered}) > 1
    settled_ok(fresh_settings)

    found = outcomes(fresh_settings)
    grouped = answers(found)
    assert {r["event_id"]: len(grouped.get(r["event_id"], [])) for r in requests} == {
        r["event_id"]: 1 for r in requests
    }
    assert dead_letters(fresh_settings) == []
    check = ledger_check(fresh_settings)
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]


def test_documented_python_snippets_produce_transact_and_read_their_decision(fresh_settings: Settings) -> None:
    """docs/integrating.md's Python snippets, run as printed, get a wage and a committed payout batch settled."""
    snippets = documented_snippets(fresh_settings)
    namespace: dict = {}
    for name in ("python-produce", "python-transaction", "python-consume"):
        exec(compile(snippets[name], f"docs/integrating.md:{name}", "exec"), namespace)
    settled_ok(fresh_settings)
    try:
        decision = namespace["decision_for"](namespace["wage"]["event_id"])
    finally:
        namespace["consumer"].close()

    assert (decision["event_type"], decision["result"], decision["status"]) == ("payment.settled", "created", "posted")
    paid = [o for o in outcomes(fresh_settings) if o["payer_account_id"] == namespace["employer"]]
    assert sorted((o["result"], o["amount"]) for o in paid) == [
        ("created", 100_000),
        ("created", 250_000),
        ("created", 2_500_000),
    ]


def test_documented_kcat_commands_get_a_payment_settled_and_read_it_back(fresh_settings: Settings) -> None:
    """docs/integrating.md's kcat commands, run as printed, open accounts, pay, and read the outcome back."""
    snippets = documented_snippets(fresh_settings)
    requests = [line.partition("|") for line in snippets["kcat-produce"].splitlines() if "payment.requested" in line]
    assert len(requests) == 1
    payer, _, value = requests[0]
    request = json.loads(value)
    run_shell(snippets["kcat-produce"])
    settled_ok(fresh_settings)

    lines = [line.partition("|") for line in run_shell(snippets["kcat-consume"]).splitlines() if line.strip()]
    mine = [(key, json.loads(value)) for key, _, value in lines if request["event_id"] in value]
    assert len(mine) == 1, lines
    key, outcome = mine[0]
    assert (key, outcome["event_type"], outcome["result"], outcome["amount"]) == (
        payer,
        "payment.settled",
        "created",
        request["amount"],
    )


def test_documented_java_producer_gets_its_transactional_payment_settled(
    fresh_settings: Settings, tmp_path: Path
) -> None:
    """docs/integrating.md's Java producer, compiled and run as printed, gets its payment settled."""
    libs = fresh_settings.cache_dir / f"kafka-{fresh_settings.kafka_version}" / "libs"
    clients = sorted(libs.glob("kafka-clients-*.jar"))
    javac, java = shutil.which("javac"), shutil.which("java")
    if not clients or javac is None or java is None:
        pytest.skip("needs a JDK (javac) and the Kafka jars; `make test` installs both")
    source = tmp_path / "PayWithJava.java"
    source.write_text(documented_snippets(fresh_settings)["java-produce"])
    compiled = subprocess.run(
        [javac, "-cp", str(clients[0]), "-d", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
        timeout=JAVA_TIMEOUT_S,
        check=False,
    )
    assert compiled.returncode == 0, compiled.stderr
    rng = random.Random(7)
    payer, payee = new_account_id(rng), new_account_id(rng)
    open_accounts(
        fresh_settings, [account_opened(payer, "employer"), account_opened(payee, "citizen_wallet", gender="other")]
    )
    ran = subprocess.run(
        [java, "-cp", f"{tmp_path}:{libs}/*", "PayWithJava", payer, payee, "4200"],
        capture_output=True,
        text=True,
        timeout=JAVA_TIMEOUT_S,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    event_id = ran.stdout.split()[-1]
    settled_ok(fresh_settings)

    outcome = one_answer(outcomes(fresh_settings), {"event_type": "payment.requested", "event_id": event_id})
    assert (outcome["event_type"], outcome["result"], outcome["amount"], outcome["_key"]) == (
        "payment.settled",
        "created",
        4200,
        payer,
    )
