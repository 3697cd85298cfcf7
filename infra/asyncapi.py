"""The AsyncAPI document, generated from a FastStream Kafka app that declares every catalog topic."""

from __future__ import annotations

import json
from typing import Any, Union

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from infra.settings import Settings
from schemas.topics import CATALOG

API_VERSION = "0.1.0"


def docs_broker(settings: Settings) -> KafkaBroker:
    """A broker with one publisher per topic, typed by the union of the events it carries."""
    broker = KafkaBroker(settings.bootstrap_servers)
    for spec in CATALOG:
        if not spec.event_types:
            continue
        payload = spec.event_types[0] if len(spec.event_types) == 1 else Union[spec.event_types]  # noqa: UP007
        broker.publisher(
            settings.topic(spec),
            schema=payload,
            title=f"{settings.topic(spec)}:publish",
            description=f"{spec.description} Key: {spec.key}.",
        )
    return broker


def asyncapi_document(settings: Settings) -> dict[str, Any]:
    """The AsyncAPI 3.0 document as a JSON-ready dict."""
    spec = AsyncAPI(
        docs_broker(settings),
        title="Digital KP Payments Sandbox",
        version=API_VERSION,
        description="Events exchanged by the sandbox's producers and consumers over Apache Kafka.",
        schema_version="3.0.0",
    )
    return json.loads(spec.to_specification().to_json())  # type: ignore[no-any-return]
