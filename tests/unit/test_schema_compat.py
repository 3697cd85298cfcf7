"""Committed JSON Schemas only change compatibly unless schema_version is bumped; the rules can fail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas.compat import breaking_changes, schema_version_of
from schemas.export import json_schemas
from tests.conftest import REPO_ROOT

COMMITTED = REPO_ROOT / "docs" / "schemas"

OLD = {
    "properties": {
        "schema_version": {"const": 1, "default": 1},
        "amount": {"type": "integer", "exclusiveMinimum": 0, "description": "paisa"},
        "kind": {"enum": ["p2p", "g2p"], "type": "string"},
        "memo": {"type": "string"},
    },
    "required": ["amount", "kind"],
}


def _changed(**props: object) -> dict[str, object]:
    new = json.loads(json.dumps(OLD))
    for name, value in props.items():
        if value is None:
            del new["properties"][name]
        else:
            new["properties"][name] = value
    return new


@pytest.mark.parametrize("stem", sorted(json_schemas()))
def test_committed_schema_changes_need_a_version_bump(stem: str) -> None:
    """Each event's current schema is compatible with the committed one, or carries a higher version."""
    path = COMMITTED / f"{stem}.json"
    if not path.exists():
        return  # a new event type breaks no reader (test_committed_files_are_current asks for its file)
    old = json.loads(path.read_text())
    new = json_schemas()[stem]
    if schema_version_of(new) > schema_version_of(old):
        return
    problems = breaking_changes(old, new)
    assert not problems, f"{stem}: {problems} — bump schema_version, then `make schemas`"


def test_committed_files_are_current() -> None:
    """docs/schemas holds exactly what `kpsandbox schemas export` writes today (no stale docs)."""
    for stem, schema in json_schemas().items():
        path = COMMITTED / f"{stem}.json"
        assert path.exists(), f"{path} missing: run `make schemas` and commit docs/schemas"
        committed = json.loads(path.read_text())
        assert committed == json.loads(json.dumps(schema)), f"{stem}.json is stale: run `make schemas`"


def test_removed_property_is_breaking() -> None:
    """Dropping a property breaks readers that use it."""
    assert breaking_changes(OLD, _changed(memo=None)) == ["property 'memo' was removed"]


def test_type_change_is_breaking_but_description_change_is_not() -> None:
    """A changed type is breaking; a reworded description is cosmetic."""
    assert breaking_changes(OLD, _changed(amount={"type": "number"}))
    reworded = {"type": "integer", "exclusiveMinimum": 0, "description": "in paisa, never a float"}
    assert breaking_changes(OLD, _changed(amount=reworded)) == []


def test_new_required_property_is_breaking_new_optional_is_not() -> None:
    """Requiring a new field breaks old events; adding an optional one does not."""
    optional = _changed(note={"type": "string"})
    assert breaking_changes(OLD, optional) == []
    required = dict(optional, required=[*OLD["required"], "note"])  # type: ignore[list-item]
    assert breaking_changes(OLD, required) == ["property 'note' became required"]


def test_enum_growth_is_breaking() -> None:
    """A reader generated from the old schema has a closed enum: a new value breaks it (issue 8)."""
    assert breaking_changes(OLD, _changed(kind={"enum": ["p2p", "g2p", "wage"], "type": "string"})) == [
        "property 'kind' now also takes ['wage'] (a reader with the old enum fails on them)"
    ]


def test_enum_shrink_is_breaking() -> None:
    """Removing an enum value breaks writers that send it."""
    assert breaking_changes(OLD, _changed(kind={"enum": ["p2p"], "type": "string"})) == [
        "property 'kind' no longer accepts ['g2p']"
    ]


def test_enum_growth_inside_a_nullable_property_is_breaking() -> None:
    """An enum grown inside anyOf (an optional, nullable field) is breaking as well."""
    old = _changed(rail={"anyOf": [{"enum": ["raast"], "type": "string"}, {"type": "null"}]})
    new = json.loads(json.dumps(old))
    new["properties"]["rail"]["anyOf"][0]["enum"].append("card")
    assert breaking_changes(old, new) == ["property 'rail' changed its type or constraints"]


def test_changed_conditional_rules_are_breaking() -> None:
    """A new or changed if/then rule in allOf refuses events the old schema accepted."""
    rule = {"if": {"properties": {"kind": {"enum": ["p2p"]}}}, "then": {"required": ["memo"]}}
    assert breaking_changes(OLD, dict(OLD, allOf=[rule])) == ["the conditional rules (allOf) changed"]
    reworded = dict(rule, description="p2p payments carry a memo")
    assert breaking_changes(dict(OLD, allOf=[rule]), dict(OLD, allOf=[reworded])) == []


def test_the_outcome_version_bumps_are_recorded() -> None:
    """payment.settled/rejected changed ids and enum (invalid_timestamp: version 2), then grew the
    limit codes and the refund request type (version 3); rejections then grew payer_not_owned (4)."""
    schemas = json_schemas()
    assert schema_version_of(schemas["payment.settled"]) == 3
    assert schema_version_of(schemas["payment.rejected"]) == 4
    assert {"invalid_timestamp", "payer_limit_exceeded", "payee_limit_exceeded", "payer_not_owned"} <= set(
        schemas["payment.rejected"]["properties"]["result"]["enum"]
    )
    assert "payment.refund_requested" in schemas["payment.settled"]["properties"]["request_type"]["enum"]
    assert schemas["payment.rejected"]["$id"] == "kpsandbox:payment.rejected:v4"


def test_schema_version_is_read_from_const() -> None:
    """The version the compatibility rule compares comes from the schema itself."""
    assert schema_version_of(OLD) == 1
    assert schema_version_of(_changed(schema_version={"const": 2})) == 2


def test_asyncapi_document_covers_every_topic_with_events() -> None:
    """The committed AsyncAPI document has a channel for every catalog topic that carries events."""
    from schemas.topics import CATALOG

    document = json.loads(Path(COMMITTED / "asyncapi.json").read_text())
    assert document["asyncapi"].startswith("3.")
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert {spec.name for spec in CATALOG if spec.event_types} <= addresses
    assert "PaymentRequested" in document["components"]["schemas"]
