"""Conditional field rules, declared once: the model enforces them and the JSON Schema publishes them.

A model lists its rules in `RULES`; `check_rules` raises on the first broken one (call it from a
`model_validator`), and `Envelope`'s JSON Schema hook exports each rule as an `if`/`then` entry of
`allOf`. So a client validating against docs/schemas/ and the ledger can never disagree about one.

A field left out of the JSON counts as its default, exactly as pydantic fills it in: an `if` on a
field whose default does not trigger the rule also requires the field to be present.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

JsonSchema = dict[str, Any]


def _condition(model: type[BaseModel], field: str, values: tuple[object, ...]) -> JsonSchema:
    """The `if` part: `field` is one of `values`, counting an absent field as its default."""
    condition: JsonSchema = {"properties": {field: {"enum": list(values)}}}
    default = model.model_fields[field].default
    if default is not PydanticUndefined and default not in values:
        condition["required"] = [field]
    return condition


@dataclass(frozen=True)
class Needs:
    """When `when` is one of `is_in`, the event needs `field` (present and not null)."""

    when: str
    is_in: tuple[str, ...]
    field: str
    why: str

    def check(self, event: BaseModel) -> None:
        """Raises ValueError(why) when the event breaks the rule."""
        if getattr(event, self.when) in self.is_in and getattr(event, self.field) is None:
            raise ValueError(self.why)

    def json_schema(self, model: type[BaseModel]) -> JsonSchema:
        """The rule as a JSON Schema `if`/`then`."""
        return {
            "if": _condition(model, self.when, self.is_in),
            "then": {"required": [self.field], "properties": {self.field: {"not": {"type": "null"}}}},
            "description": self.why,
        }


@dataclass(frozen=True)
class Pins:
    """When `when` is one of `is_in`, `field` must equal `value` (its default, so it may be left out)."""

    when: str
    is_in: tuple[object, ...]
    field: str
    value: object
    why: str

    def check(self, event: BaseModel) -> None:
        """Raises ValueError(why) when the event breaks the rule."""
        if getattr(event, self.when) in self.is_in and getattr(event, self.field) != self.value:
            raise ValueError(self.why)

    def json_schema(self, model: type[BaseModel]) -> JsonSchema:
        """The rule as a JSON Schema `if`/`then`; an absent `field` passes, as pydantic fills in `value`."""
        assert model.model_fields[self.field].default == self.value, (model, self.field)
        return {
            "if": _condition(model, self.when, self.is_in),
            "then": {"properties": {self.field: {"const": self.value}}},
            "description": self.why,
        }


Rule = Needs | Pins


def check_rules(event: BaseModel, rules: tuple[Rule, ...]) -> None:
    """Raises ValueError naming the first rule the event breaks."""
    for rule in rules:
        rule.check(event)


def rules_schema(model: type[BaseModel], rules: tuple[Rule, ...]) -> list[JsonSchema]:
    """The `allOf` entries that publish `rules` in the model's JSON Schema."""
    return [rule.json_schema(model) for rule in rules]
