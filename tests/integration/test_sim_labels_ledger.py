"""The export's ground truth against the real ledger: an order the seller abandons (label
`intended_timeout`) is an authorisation the ledger expires, once the simulation's clock passes its
timeout, with a `payment.expired` outcome; nothing the simulation means to post or void expires."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

from producers.datasets.labelled import LabelledRun
from producers.sim.calibration import load_calibration
from producers.sim.economy import INTENDED_TIMEOUT, PENDING_AT_END
from producers.sim.engine import Simulation, SimulationConfig
from producers.sim.scenario import load_scenario
from producers.sinks import KafkaSink, produce_kafka
from schemas.topics import PAYMENT_OUTCOMES
from tests.integration.test_ledger_support import read_all, run_settle

SETTLE_WAIT_S = 240


def _config() -> SimulationConfig:
    """Many prepaid orders, half of them abandoned, over 30 days (abandoned ones expire after 7)."""
    cal = load_calibration()
    behaviour = {
        **cal.behaviour,
        "prepaid_share_of_orders": {"holder": 0.9, "active": 0.9},
        "order_abandon_share": 0.5,
    }
    return SimulationConfig(
        seed=11,
        days=30,
        citizens=3_000,
        merchants=300,
        scenario=load_scenario("digital-kp"),
        calibration=replace(cal, behaviour=behaviour),
    )


async def test_abandoned_orders_expire_in_the_ledger_and_nothing_else_does(fresh_settings) -> None:  # type: ignore[no-untyped-def]
    run = LabelledRun(Simulation(_config()))
    labels = {row.event_id: row.label for _, rows in run.batches() for row in rows}
    timeouts = {event_id for event_id, label in labels.items() if label == INTENDED_TIMEOUT}
    undecided = {event_id for event_id, label in labels.items() if label == PENDING_AT_END}
    assert len(timeouts) >= 10, Counter(labels.values())

    sink = KafkaSink(fresh_settings)  # the same seed and calibration, without labels: the same events
    await sink.start()
    try:
        await produce_kafka(Simulation(_config()), sink)
    finally:
        await sink.close()
    process = await run_settle(fresh_settings, timeout_s=SETTLE_WAIT_S)
    assert process.returncode == 0

    outcomes = [json.loads(m.value) for m in await read_all(fresh_settings, PAYMENT_OUTCOMES, expected=len(labels))]
    expired = {o["request_event_id"] for o in outcomes if o["event_type"] == "payment.expired"}
    held = {o["request_event_id"] for o in outcomes if o.get("status") == "pending"}
    print(f"{len(timeouts)} abandoned, {len(expired)} expired, {len(undecided)} undecided at the end")
    assert timeouts <= held, "every abandoned order's authorisation was accepted and held"
    assert timeouts <= expired, f"{len(timeouts - expired)} of {len(timeouts)} abandoned authorisations never expired"
    # An authorisation whose abandonment is labelled pending_at_end may expire on the run's last day.
    assert expired <= timeouts | undecided, "only abandoned authorisations expire"
