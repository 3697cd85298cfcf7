"""The fixture file `kpsandbox fixtures FILE.toml` runs: a scenario as a short, diffable list of steps.

A team reviews these files in pull requests, so the format is small and reads top to bottom:

    [[step]]
    open_account = {name = "alice"}                     # a citizen wallet, opened by the ledger
    [[step]]
    top_up = {account = "alice", amount = 100_000}
    [[step]]
    pay = {name = "pay1", payer = "alice", payee = "${bob.id}", amount = 25_000}
    [[step]]
    expect = {object = "pay1", status = "succeeded", within_s = 10}

Each `[[step]]` has exactly one action (STEP_ACTIONS). Its table holds the action's fields — for an
action the API takes, the fields of the API's own request model, which override the runner's
defaults — and an optional `name` later steps refer to. A reference is:

- in a reference field (REFERENCE_FIELDS: `payer`, `payment`, `test_clock`, …), an earlier step's
  name (`payer = "alice"`) for that object's id, or a literal id (`acc_…`), used as it is;
- anywhere in a text value, `${name}` (the object's id) or `${name.field}` (one of its fields, as
  it reads when the step runs); a value that is only the reference keeps the field's type.

Parsing checks the structure and every reference's name before anything is sent: each problem is
a FixtureError naming the step's number and the field. This module is pure (no I/O); the runner is
producers/fixtures.py.
"""

from __future__ import annotations

import re
import tomllib
from datetime import timedelta
from typing import Any, Final, Literal, get_args

from pydantic import BaseModel, Field

StepAction = Literal[
    "test_clock",
    "advance_clock",
    "open_account",
    "top_up",
    "pay",
    "capture",
    "cancel",
    "refund",
    "request_payment",
    "approve",
    "decline",
    "expect",
]
STEP_ACTIONS: Final[tuple[str, ...]] = get_args(StepAction)
# Fields whose bare value is an earlier step's name (or a literal id); everything else is data.
REFERENCE_FIELDS: Final = frozenset(
    {"payer", "payee", "account", "payment", "payment_request", "test_clock", "clock", "object"}
)
# The fields each action takes besides `name`, for actions whose fields are not an API request
# model's (those are checked against the model by the runner, which knows the API's models).
OWN_FIELDS: Final[dict[str, frozenset[str]]] = {
    "advance_clock": frozenset({"clock", "by", "to"}),
    "capture": frozenset({"payment", "amount"}),
    "cancel": frozenset({"payment"}),
    "approve": frozenset({"payment_request"}),
    "decline": frozenset({"payment_request"}),
}
REQUIRED_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "advance_clock": ("clock",),
    "top_up": ("account",),
    "pay": ("payer",),
    "capture": ("payment",),
    "cancel": ("payment",),
    "refund": ("payment",),
    "request_payment": ("payee",),
    "approve": ("payment_request",),
    "decline": ("payment_request",),
    "expect": ("object",),
}
STEPS_MAX: Final = 200  # a fixture is a reviewed scenario, not a load test
EXPECT_WITHIN_S_DEFAULT: Final = 10.0
EXPECT_WITHIN_S_MAX: Final = 120.0
NAME_PATTERN: Final = r"^[A-Za-z][A-Za-z0-9_-]{0,39}$"
ID_PATTERN: Final = re.compile(r"^[a-z]{2,4}_[0-9a-f]{8,32}$")  # every API id (schemas/envelope TOKEN_PATTERN)
REFERENCE: Final = re.compile(r"\$\{([A-Za-z][A-Za-z0-9_-]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?\}")
DURATION: Final = re.compile(r"^(\d{1,6})\s*([smhd])$")
DURATION_UNITS: Final = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class FixtureError(ValueError):
    """A fixture file that cannot run as written; the message names the step and field to fix."""


class Step(BaseModel):
    """One step: its 1-based number, its action, the name it gives its object, and its fields
    (references not yet resolved)."""

    number: int
    action: StepAction
    name: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        """`step 3 (pay)`: how messages name this step."""
        return f"step {self.number} ({self.action})"


class Expectation(BaseModel):
    """An `expect` step's fields: the object to read, how long to wait, and the fields it should show."""

    object: str
    within_s: float = Field(default=EXPECT_WITHIN_S_DEFAULT, gt=0, le=EXPECT_WITHIN_S_MAX)
    checks: dict[str, Any]


class Fixture(BaseModel):
    """A parsed fixture file."""

    title: str | None = None
    steps: list[Step]


def parse_fixture(text: str) -> Fixture:
    """The fixture in `text` (TOML), with its structure and reference names checked; FixtureError otherwise."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise FixtureError(f"not valid TOML: {error}") from None
    unknown = sorted(set(document) - {"title", "step"})
    if unknown:
        raise FixtureError(f"unknown top-level key {unknown[0]!r}: a fixture has `title` and `[[step]]` tables")
    raw_steps = document.get("step")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise FixtureError("no steps: add at least one `[[step]]` table")
    if len(raw_steps) > STEPS_MAX:
        raise FixtureError(f"{len(raw_steps)} steps: a fixture has at most {STEPS_MAX}; split it into several files")
    title = document.get("title")
    if title is not None and not isinstance(title, str):
        raise FixtureError("`title` is text")
    steps: list[Step] = []
    names: dict[str, int] = {}
    for number, raw in enumerate(raw_steps, start=1):
        step = _step(number, raw)
        check_references(step, names)
        if step.name is not None:
            if step.name in names:
                raise FixtureError(f"{step.label}: name {step.name!r} is already used by step {names[step.name]}")
            names[step.name] = number
        steps.append(step)
    return Fixture(title=title, steps=steps)


def _step(number: int, raw: Any) -> Step:
    """One `[[step]]` table as a Step: exactly one known action whose value is a table."""
    if not isinstance(raw, dict) or len(raw) != 1:
        keys = ", ".join(raw) if isinstance(raw, dict) else type(raw).__name__
        raise FixtureError(
            f"step {number}: a step has exactly one action (one of {', '.join(STEP_ACTIONS)}); got {keys}"
        )
    [(action, fields)] = raw.items()
    if action not in STEP_ACTIONS:
        raise FixtureError(f"step {number}: unknown action {action!r}; the actions are {', '.join(STEP_ACTIONS)}")
    if not isinstance(fields, dict):
        raise FixtureError(f"step {number} ({action}): write its fields as a table, e.g. {action} = {{…}}")
    fields = dict(fields)
    name = fields.pop("name", None) if action != "expect" else None
    label = f"step {number} ({action})"
    if name is not None and (not isinstance(name, str) or not re.match(NAME_PATTERN, name) or ID_PATTERN.match(name)):
        raise FixtureError(f"{label}, field name: {name!r} is not a name; use letters, digits, _ or - (e.g. alice)")
    allowed = OWN_FIELDS.get(action)
    extra = sorted(set(fields) - allowed) if allowed is not None else []
    if extra:
        raise FixtureError(f"{label}: unknown field {extra[0]!r}; it takes {', '.join(sorted(allowed or ()))}")
    for required in REQUIRED_FIELDS.get(action, ()):
        if required not in fields:
            raise FixtureError(f"{label}: field {required!r} is missing")
    if action == "advance_clock" and len({"by", "to"} & set(fields)) != 1:
        raise FixtureError(f'{label}: give either `by` (e.g. "8d") or `to` (a date and time), not both or neither')
    if action == "advance_clock" and "by" in fields:
        parse_duration(fields["by"], f"{label}, field by")
    if action == "expect":
        expectation(Step(number=number, action="expect", fields=fields))
    return Step(number=number, action=action, name=name, fields=fields)


def check_references(step: Step, names: dict[str, int]) -> None:
    """Every name `step` refers to is given by an earlier step; FixtureError naming the field otherwise."""
    for field, value in step.fields.items():
        for name in referenced_names(field, value):
            if name not in names:
                known = ", ".join(names) or "none yet"
                raise FixtureError(
                    f"{step.label}, field {field}: {name!r} names no earlier step (names so far: {known})"
                )


def referenced_names(field: str, value: Any) -> list[str]:
    """The step names `value` (of `field`) refers to: a bare name in a reference field, or `${name…}`."""
    if isinstance(value, dict):
        return [name for key, inner in value.items() for name in referenced_names(key, inner)]
    if isinstance(value, list):
        return [name for inner in value for name in referenced_names(field, inner)]
    if not isinstance(value, str):
        return []
    found = [match.group(1) for match in REFERENCE.finditer(value)]
    if not found and field in REFERENCE_FIELDS and not ID_PATTERN.match(value):
        found = [value]
    return found


def resolve(field: str, value: Any, lookup: dict[str, dict[str, Any]], label: str) -> Any:
    """`value` with its references replaced from `lookup` (a name → its object as it reads now)."""
    if isinstance(value, dict):
        return {key: resolve(key, inner, lookup, label) for key, inner in value.items()}
    if isinstance(value, list):
        return [resolve(field, inner, lookup, label) for inner in value]
    if not isinstance(value, str):
        return value
    if field in REFERENCE_FIELDS and value in lookup:
        return lookup[value]["id"]
    whole = REFERENCE.fullmatch(value)
    if whole:
        return _field_of(whole, lookup, field, label)
    return REFERENCE.sub(lambda match: str(_field_of(match, lookup, field, label)), value)


def _field_of(match: re.Match[str], lookup: dict[str, dict[str, Any]], field: str, label: str) -> Any:
    name, attribute = match.group(1), match.group(2) or "id"
    if name not in lookup:
        raise FixtureError(f"{label}, field {field}: {name!r} names no earlier step")
    thing = lookup[name]
    if attribute not in thing or thing[attribute] is None:
        have = ", ".join(key for key, item in thing.items() if item is not None)
        raise FixtureError(f"{label}, field {field}: {name} has no {attribute!r} (it has {have})")
    return thing[attribute]


def expectation(step: Step) -> Expectation:
    """An `expect` step's fields as an Expectation: `object`, `within_s`, and every other field a check."""
    fields = dict(step.fields)
    target, within_s = fields.pop("object", None), fields.pop("within_s", EXPECT_WITHIN_S_DEFAULT)
    if not isinstance(target, str):
        raise FixtureError(f"{step.label}, field object: name the object to read (a step's name or an id)")
    if not isinstance(within_s, int | float) or isinstance(within_s, bool) or not 0 < within_s <= EXPECT_WITHIN_S_MAX:
        raise FixtureError(f"{step.label}, field within_s: seconds, more than 0 and at most {EXPECT_WITHIN_S_MAX:.0f}")
    if not fields:
        raise FixtureError(f'{step.label}: say what to expect, e.g. status = "succeeded"')
    return Expectation(object=target, within_s=float(within_s), checks=fields)


def parse_duration(value: Any, where: str) -> timedelta:
    """`"8d"`, `"36h"`, `"90m"`, `"30s"` as a timedelta; FixtureError naming `where` otherwise."""
    match = DURATION.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise FixtureError(f'{where}: {value!r} is not a duration; write a whole number and s, m, h or d (e.g. "8d")')
    return timedelta(**{DURATION_UNITS[match.group(2)]: int(match.group(1))})
