"""Every simulated event validates against the committed JSON Schema of its type (docs/schemas)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from functools import cache

from jsonschema import Draft202012Validator

from producers.sim.calibration import load_calibration
from producers.sim.engine import Simulation, SimulationConfig
from producers.sim.scenario import load_scenario
from tests.conftest import REPO_ROOT

SCHEMAS = REPO_ROOT / "docs" / "schemas"


@cache
def _validator(event_type: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{event_type}.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def test_simulated_events_validate_against_committed_schemas() -> None:
    """A digital-kp run's every line is valid under docs/schemas/<event_type>.json; all types occur."""
    # A cancelled prepaid order (its payment.void_requested) is under one order in a hundred: a short
    # run may have none, depending on the random stream. Cancelling half the orders makes every
    # type occur in any stream; the schemas do not care how often.
    calibration = load_calibration()
    calibration = replace(calibration, behaviour={**calibration.behaviour, "order_cancel_share": 0.5})
    config = SimulationConfig(
        seed=3, days=40, citizens=800, merchants=80, scenario=load_scenario("digital-kp"), calibration=calibration
    )
    seen: Counter[str] = Counter()
    for line in Simulation(config).lines():
        event = json.loads(line)
        errors = list(_validator(event["event_type"]).iter_errors(event))
        assert not errors, (event["event_type"], [e.message for e in errors[:3]])
        seen[event["event_type"]] += 1
    assert len(seen) >= 10, seen


def test_committed_schema_rejects_a_float_amount() -> None:
    """The committed schema itself refuses money as a float, not only the pydantic model."""
    config = SimulationConfig(seed=3, days=3, citizens=300, merchants=30)
    line = next(ln for ln in Simulation(config).lines() if '"event_type":"payment.requested"' in ln)
    event = json.loads(line)
    event["amount"] = float(event["amount"]) + 0.5
    assert list(_validator("payment.requested").iter_errors(event))
