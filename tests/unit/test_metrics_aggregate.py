"""The pure metrics state: definitions of shares, inclusion, activity, acceptance, leakage, latency."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumers.metrics import labels as L
from consumers.metrics.aggregate import Aggregator
from consumers.metrics.exporter import serve
from consumers.metrics.figures import figures
from consumers.metrics.reading import apply_record
from consumers.metrics.snapshot import dump_state, load_state
from infra.errors import SandboxError
from producers.sim.calibration import load_calibration
from schemas.accounts import AccountOpened
from schemas.cash import CashPurchase
from schemas.events import dump_event
from schemas.payments import PaymentExpired, PaymentRejected, PaymentSettled, expiry_outcome_event_id, outcome_event_id
from schemas.topics import CASH, PAYMENT_OUTCOMES, PAYMENT_REQUESTS

T0 = datetime(2026, 1, 1, 9, tzinfo=UTC)
ENVELOPE = {"producer": "test", "correlation_id": UUID(int=1)}
FINGERPRINT = bytes(32)  # the ledger's fingerprint of a request; any fixed bytes will do here


def _at(days: float) -> datetime:
    return T0 + timedelta(days=days)


def citizen(n: int, district: str = "Swat", gender: str = "female", days: float = 0) -> AccountOpened:
    return AccountOpened(event_id=uuid4(), occurred_at=_at(days), **ENVELOPE, account_id=f"wal_{n:08x}",
                         kind="citizen_wallet", holder_token=f"cit_{n:08x}", provider="EPMB", district=district,
                         gender=gender)  # fmt: skip


def merchant(n: int, category: str = "kiryana", digital: bool = True) -> AccountOpened:
    instruments = ("cash", "static_qr") if digital else ("cash",)
    return AccountOpened(event_id=uuid4(), occurred_at=T0, **ENVELOPE, account_id=f"mch_{n:08x}", kind="merchant",
                         holder_token=f"biz_{n:08x}", provider="HBL", district="Swat", merchant_category=category,
                         accepted_instruments=instruments, iban="PK36SCBL0000001123456702")  # fmt: skip


def settled(payer: int, payee: str, amount: int, days: float = 0, kind: str = "p2m_static_qr",
            request: UUID | None = None, request_type: str = "payment.requested",
            result: str = "created") -> PaymentSettled:  # fmt: skip
    request = request or uuid4()
    return PaymentSettled(event_id=outcome_event_id(request, result, FINGERPRINT), occurred_at=_at(days), **ENVELOPE,
                          request_event_id=request, request_type=request_type, request_occurred_at=_at(days),
                          payer_account_id=f"wal_{payer:08x}", payee_account_id=payee, amount=amount, kind=kind,
                          rail="raast", result=result, status="posted", transfer_id=request)  # fmt: skip


def rejected(payer: int, amount: int, days: float = 0, request: UUID | None = None,
             result: str = "exceeds_credits") -> PaymentRejected:  # fmt: skip
    request = request or uuid4()
    return PaymentRejected(event_id=outcome_event_id(request, result, FINGERPRINT), occurred_at=_at(days), **ENVELOPE,
                           request_event_id=request, request_type="payment.requested", request_occurred_at=_at(days),
                           payer_account_id=f"wal_{payer:08x}", amount=amount, kind="p2p", rail="wallet",
                           result=result)  # fmt: skip


def expired(payer: int, payee: str, amount: int, pending: UUID, days: float = 0) -> PaymentExpired:
    return PaymentExpired(event_id=expiry_outcome_event_id(pending), occurred_at=_at(days), **ENVELOPE,
                          request_event_id=pending, request_type="payment.requested", request_occurred_at=_at(days),
                          payer_account_id=f"wal_{payer:08x}", payee_account_id=payee, amount=amount,
                          kind="ecommerce", rail="card", result="expired", status="expired",
                          transfer_id=uuid4())  # fmt: skip


def cash(token: int, amount: int, days: float = 0, district: str = "Swat", merchant_id: str | None = None,
         category: str = "kiryana") -> CashPurchase:  # fmt: skip
    return CashPurchase(event_id=uuid4(), occurred_at=_at(days), **ENVELOPE, payer_token=f"cit_{token:08x}",
                        merchant_account_id=merchant_id, merchant_category=category, district=district,
                        amount=amount)  # fmt: skip


def feed(agg: Aggregator, events: list, ts_ms: int = 0) -> Aggregator:
    for e in events:
        if isinstance(e, AccountOpened):
            agg.on_account(e)
        elif isinstance(e, CashPurchase):
            agg.on_cash_purchase(e)
        else:
            agg.on_outcome(e, ts_ms)
    return agg


def test_districts_are_the_calibrations() -> None:
    """The district label values are the calibration's districts plus `other`, and its female share."""
    cal = load_calibration()
    assert L.DISTRICTS[:-1] == tuple(d.name for d in cal.districts)
    assert cal.female_share == L.FEMALE_SHARE
    assert L.district_index("Atlantis") == L.OTHER_INDEX


def test_unknown_district_is_reported_as_other() -> None:
    """A cash purchase in a district outside the list counts under `other`, never a new label value."""
    f = figures(feed(Aggregator(), [cash(1, 500, district="Atlantis")]))
    assert f.payments[("cash", "cash", "other", "cash")] == (1, 500)
    assert {k[2] for k in f.payments} == set(L.DISTRICTS)


def test_duplicate_outcome_counts_once() -> None:
    """An outcome delivered twice (same event id) changes the figures once."""
    agg = feed(Aggregator(), [citizen(1), merchant(9)])
    outcome = settled(1, "mch_00000009", 700)
    assert agg.on_outcome(outcome, 0) is True
    assert agg.on_outcome(outcome, 0) is False
    assert figures(agg).payments[("digital", "raast", "Swat", "settled")] == (1, 700)


@pytest.mark.parametrize(
    "answer",
    [
        lambda request: settled(1, "mch_00000009", 700, request=request, result="exists"),
        lambda request: rejected(1, 900, request=request, result="exists_with_different_amount"),
        lambda request: rejected(1, 700, request=request, result="exists_with_different_fields"),
    ],
    ids=["exists", "exists_with_different_amount", "exists_with_different_fields"],
)
def test_answers_to_a_duplicate_request_are_duplicates_not_payments(answer) -> None:  # type: ignore[no-untyped-def]
    """An exists/exists_with_* outcome has its own id, yet reads as `duplicate` and moves no figure."""
    agg = feed(Aggregator(), [citizen(1), merchant(9)])
    request = uuid4()
    first = dump_event(settled(1, "mch_00000009", 700, request=request))
    again = dump_event(answer(request))
    assert json.loads(again)["event_id"] != json.loads(first)["event_id"]
    assert apply_record(agg, PAYMENT_OUTCOMES, first, 0) == "counted"
    before = figures(agg)
    assert apply_record(agg, PAYMENT_OUTCOMES, again, 0) == "duplicate"
    assert apply_record(agg, PAYMENT_OUTCOMES, again, 0) == "duplicate"
    assert figures(agg) == before
    assert before.payments[("digital", "raast", "Swat", "settled")] == (1, 700)
    assert sum(n for (_, _, _, outcome), (n, _) in before.payments.items() if outcome == "rejected") == 0


def test_an_expiry_is_read_but_moves_no_payment_figure() -> None:
    """A payment.expired outcome counts as read (`counted`, then `duplicate`) and leaves the figures alone."""
    agg = feed(Aggregator(), [citizen(1), merchant(9)])
    pending = uuid4()
    assert apply_record(agg, PAYMENT_OUTCOMES, dump_event(settled(1, "mch_00000009", 500, request=pending)), 0) == (
        "counted"
    )
    before = figures(agg)
    outcome = dump_event(expired(1, "mch_00000009", 500, pending, days=2))
    assert apply_record(agg, PAYMENT_OUTCOMES, outcome, 0) == "counted"
    assert apply_record(agg, PAYMENT_OUTCOMES, outcome, 0) == "duplicate"
    assert figures(agg) == before


def test_a_refund_is_read_but_is_no_new_digital_payment() -> None:
    """A settled refund (merchant back to a citizen) counts as read and moves no payment, share or inflow figure."""
    agg = feed(Aggregator(), [citizen(1), merchant(9), settled(1, "mch_00000009", 500)])
    before = figures(agg)
    request = uuid4()
    refund = PaymentSettled(event_id=outcome_event_id(request, "created", FINGERPRINT), occurred_at=T0, **ENVELOPE,
                            request_event_id=request, request_type="payment.refund_requested",
                            request_occurred_at=T0, payer_account_id="mch_00000009",
                            payee_account_id="wal_00000001", amount=200, result="created", status="posted",
                            transfer_id=request)  # fmt: skip
    assert apply_record(agg, PAYMENT_OUTCOMES, dump_event(refund), 0) == "counted"
    assert figures(agg) == before
    assert before.payments[("digital", "raast", "Swat", "settled")] == (1, 500)


def test_digital_share_over_the_last_30_simulated_days() -> None:
    """Shares count settled digital vs cash payments in the window ending at the latest simulated day."""
    agg = feed(Aggregator(), [citizen(1), merchant(9), settled(1, "mch_00000009", 300, days=0),
                              cash(2, 100, days=0), settled(1, "mch_00000009", 100, days=40),
                              cash(2, 300, days=40), cash(3, 100, days=41), rejected(1, 999, days=41)])  # fmt: skip
    f = figures(agg)
    assert f.digital_share[("count", "Swat")] == pytest.approx(1 / 3)  # day 0 fell out of the window
    assert f.digital_share[("value", "Swat")] == pytest.approx(100 / 500)
    assert f.digital_share[("count", "all")] == f.digital_share[("count", "Swat")]
    assert f.payments[("digital", "wallet", "Swat", "rejected")] == (1, 999)


def test_active_users_are_counted_once_and_expire() -> None:
    """A citizen paying twice is one active user; one who last paid 31 days ago is no longer active."""
    events = [citizen(1, gender="female"), citizen(2, gender="male"), merchant(9),
              settled(1, "mch_00000009", 100, days=0), settled(2, "mch_00000009", 100, days=5),
              settled(2, "mch_00000009", 100, days=20), cash(3, 100, days=31)]  # fmt: skip
    f = figures(feed(Aggregator(), events))
    assert f.active_users[("Swat", "male")] == 1
    assert f.active_users[("Swat", "female")] == 0


def test_inclusion_counts_holders_over_holders_plus_cash_only_adults() -> None:
    """Inclusion = account holders ÷ (holders + cash-only adults, split by the female share)."""
    events = [citizen(1, gender="female"), citizen(2, gender="male"), cash(1, 100), cash(3, 100), cash(4, 100)]
    f = figures(feed(Aggregator(), events))
    assert f.inclusion[("Swat", "all")] == pytest.approx(2 / 4)
    assert f.inclusion[("Swat", "female")] == pytest.approx(1 / (1 + 2 * L.FEMALE_SHARE))
    assert f.inclusion[("all", "male")] == pytest.approx(1 / (1 + 2 * (1 - L.FEMALE_SHARE)))


def test_a_cash_only_adult_who_opens_an_account_moves_to_included() -> None:
    """Seen first paying cash, then opening an account: counted once, as included."""
    f = figures(feed(Aggregator(), [cash(1, 100), citizen(1)]))
    assert f.adults[("Swat", "all")] == 1 and f.inclusion[("Swat", "all")] == 1.0


def test_merchant_acceptance_is_the_share_of_purchases_where_digital_is_accepted() -> None:
    """Cash at a QR merchant and a QR payment count as accepted; cash at a cash-only shop does not."""
    events = [
        citizen(1),
        merchant(8, digital=False),
        merchant(9),
        settled(1, "mch_00000009", 100),
        cash(2, 100, merchant_id="mch_00000009"),
        cash(2, 100, merchant_id="mch_00000008"),
        cash(3, 100),
    ]
    f = figures(feed(Aggregator(), events))  # fmt: skip
    assert f.acceptance["kiryana"] == pytest.approx(2 / 4)
    assert f.acceptance["pharmacy"] == 0.0


def test_cash_out_leakage_ratio() -> None:
    """Leakage = cash-out value ÷ (cash-in value + digital value received by citizens)."""
    agent = "agt_00000001"
    events = [citizen(1), citizen(2),
              settled(1, "wal_00000002", 600, kind="p2p"),  # inflow to citizen 2
              settled(0, "wal_00000001", 400, request_type="cash.in", kind=None),  # agent pays citizen 1
              settled(2, agent, 500, request_type="cash.out", kind=None)]  # fmt: skip
    events[3] = events[3].model_copy(update={"payer_account_id": agent})
    f = figures(feed(Aggregator(), events))
    assert f.cash_out["Swat"] == 500 and f.cash_in["Swat"] == 400 and f.inflow["Swat"] == 600
    assert f.leakage["Swat"] == pytest.approx(500 / 1000)


def test_latency_is_observed_in_either_read_order() -> None:
    """Request then outcome, or outcome then request: both give one observation of the timestamp gap."""
    for request_first in (True, False):
        agg = feed(Aggregator(), [citizen(1), merchant(9)])
        request = uuid4()
        outcome = settled(1, "mch_00000009", 100, request=request)
        if request_first:
            agg.on_request(request.int, 1_000)
            agg.on_outcome(outcome, 1_004)
        else:
            agg.on_outcome(outcome, 1_004)
            agg.on_request(request.int, 1_000)
        f = figures(agg)
        assert sum(f.latency_buckets) == 1 and f.latency_sum_s == pytest.approx(0.004)
        assert f.latency_buckets[2] == 1  # 2.5 ms < 4 ms <= 5 ms


def test_unreadable_records_are_counted_not_fatal() -> None:
    """Bytes that are not an event of the topic are reported as unreadable and change nothing else."""
    agg = Aggregator()
    assert apply_record(agg, CASH, b"not json", 0) == "unreadable"
    assert apply_record(agg, PAYMENT_OUTCOMES, dump_event(cash(1, 100)), 0) == "unreadable"
    assert apply_record(agg, PAYMENT_REQUESTS, b'{"x": 1}', 0) == "unreadable"
    assert apply_record(agg, CASH, dump_event(cash(1, 100)), 0) == "counted"
    assert figures(agg).payments[("cash", "cash", "Swat", "cash")] == (1, 100)


ACCOUNTS = [citizen(1), citizen(2, gender="male", district="Mardan"), merchant(9)]
STREAM = [settled(1, "mch_00000009", 100 + k, days=k % 45) for k in range(20)] + [
    cash(k % 5, 50 + k, days=(3 * k) % 45, district=L.DISTRICTS[k % 12]) for k in range(30)
] + [rejected(2, 70, days=7), settled(2, "wal_00000001", 80, days=44, kind="p2p")]  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(order=st.permutations(range(len(STREAM))), cut=st.integers(0, len(STREAM)))
def test_figures_do_not_depend_on_order_or_snapshots(order: list[int], cut: int) -> None:
    """Accounts first, then the events in any order, with a snapshot/restore anywhere: same figures."""
    reference = figures(feed(Aggregator(), ACCOUNTS + STREAM))
    events = [STREAM[k] for k in order]
    agg = feed(Aggregator(), ACCOUNTS + events[:cut])
    agg = feed(load_state(dump_state(agg)), events[cut:])
    assert figures(agg) == reference


async def test_busy_metrics_port_names_the_port_and_the_setting() -> None:
    """Serving on a port someone holds raises SandboxError naming the port and KPSANDBOX_METRICS_PORT."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        with pytest.raises(SandboxError) as caught:
            await serve(new_registry_for_test(), port)
    finally:
        holder.close()
    assert str(port) in caught.value.message and "KPSANDBOX_METRICS_PORT" in caught.value.hint


def new_registry_for_test():  # type: ignore[no-untyped-def]
    from consumers.metrics.exporter import new_registry

    return new_registry(Aggregator, dict)


async def test_exporter_answers_metrics_and_404() -> None:
    """GET /metrics returns the exposition text; another path returns 404."""
    server = await serve(new_registry_for_test(), 0)
    port = server.sockets[0].getsockname()[1]
    try:
        for path, expected, body in (("/metrics", b"200 OK", True), ("/nope", b"404", False)):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            response = await reader.read()
            writer.close()
            assert expected in response.split(b"\r\n")[0]
            assert (b"kpsandbox_payments_total" in response) is body, path
    finally:
        server.close()
        await server.wait_closed()


def test_cli_refuses_a_busy_metrics_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """`kpsandbox metrics serve` on a taken port fails with the port-in-use SandboxError, before any service."""
    import typer
    from typer.testing import CliRunner

    from kpsandbox.commands import metrics

    monkeypatch.setattr(metrics, "lower_priority", lambda: None)  # keep the test process's priority
    app = typer.Typer()
    metrics.register(app)
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    monkeypatch.setenv("KPSANDBOX_METRICS_PORT", str(port))
    monkeypatch.setenv("KPSANDBOX_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")  # never reached
    try:
        result = CliRunner().invoke(app, ["metrics", "serve", "--until-idle"])
    finally:
        holder.close()
    assert isinstance(result.exception, SandboxError), result.output
    assert str(port) in result.exception.message and "KPSANDBOX_METRICS_PORT" in result.exception.hint
