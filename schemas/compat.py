"""Schema evolution rules: which changes to an event's JSON Schema break existing readers.

A change is breaking when a reader built against the old schema could fail on events written
with the new one, or vice versa: a removed property, a newly required property, a property
whose type, constraints or enum values changed, or changed conditional rules (`allOf`). An enum
that *grows* is breaking too: a reader generated from the old schema has a closed enum and fails
on the new value. Adding an optional property or a new event type, or rewording descriptions,
is compatible. A breaking change must come with a higher `schema_version`.
"""

from __future__ import annotations

from typing import Any

JsonSchema = dict[str, Any]
COSMETIC_KEYS = frozenset({"description", "title", "examples", "default", "$comment"})


def schema_version_of(schema: JsonSchema) -> int:
    """The `schema_version` constant/default an event schema declares (1 if absent)."""
    prop = schema.get("properties", {}).get("schema_version", {})
    return int(prop.get("const", prop.get("default", 1)))


def _resolve(schema: JsonSchema, node: Any) -> Any:
    """Inlines local $ref pointers so two schemas compare by meaning, not by layout."""
    if isinstance(node, dict):
        if "$ref" in node and node["$ref"].startswith("#/$defs/"):
            return _resolve(schema, schema.get("$defs", {})[node["$ref"].removeprefix("#/$defs/")])
        return {k: _resolve(schema, v) for k, v in node.items() if k not in COSMETIC_KEYS}
    if isinstance(node, list):
        return [_resolve(schema, item) for item in node]
    return node


def _enum_values(node: Any) -> set[Any] | None:
    if isinstance(node, dict) and "enum" in node:
        return set(node["enum"])
    return None


def _property_change(name: str, old: Any, new: Any) -> str | None:
    if old == new:
        return None
    old_enum, new_enum = _enum_values(old), _enum_values(new)
    if old_enum is not None and new_enum is not None:
        lost = sorted(map(str, old_enum - new_enum))
        if lost:
            return f"property '{name}' no longer accepts {lost}"
        gained = sorted(map(str, new_enum - old_enum))
        same_rest = {k: v for k, v in old.items() if k != "enum"} == {k: v for k, v in new.items() if k != "enum"}
        if gained and same_rest:
            return f"property '{name}' now also takes {gained} (a reader with the old enum fails on them)"
    return f"property '{name}' changed its type or constraints"


def breaking_changes(old: JsonSchema, new: JsonSchema) -> list[str]:
    """Every change from old to new that existing readers or writers could not survive."""
    problems: list[str] = []
    old_props = old.get("properties", {})
    new_props = new.get("properties", {})
    for name in sorted(old_props):
        if name == "schema_version":
            continue
        if name not in new_props:
            problems.append(f"property '{name}' was removed")
            continue
        change = _property_change(name, _resolve(old, old_props[name]), _resolve(new, new_props[name]))
        if change:
            problems.append(change)
    for name in sorted(set(new.get("required", [])) - set(old.get("required", []))):
        problems.append(f"property '{name}' became required")
    if _resolve(old, old.get("allOf", [])) != _resolve(new, new.get("allOf", [])):
        problems.append("the conditional rules (allOf) changed")
    return problems
