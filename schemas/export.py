"""JSON Schema export of the event contract: one document per event type, plus the dead letter."""

from __future__ import annotations

from typing import Any

from schemas.deadletter import DeadLetter
from schemas.events import EVENT_MODELS


def json_schemas() -> dict[str, dict[str, Any]]:
    """File stem -> JSON Schema, e.g. 'payment.requested' -> {...}. Deterministic."""
    documents: dict[str, dict[str, Any]] = {}
    for event_type, model in sorted(EVENT_MODELS.items()):
        schema = model.model_json_schema(mode="validation")
        schema["$id"] = f"kpsandbox:{event_type}:v{model.SCHEMA_VERSION}"
        documents[event_type] = schema
    dead_letter = DeadLetter.model_json_schema(mode="validation")
    dead_letter["$id"] = "kpsandbox:deadletter:v1"
    documents["deadletter"] = dead_letter
    return documents
