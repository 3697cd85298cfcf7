"""A tenant on a secured broker: its two topics, its SCRAM credentials and its ACLs, made and removed
together (`kpsandbox tenants create` / `revoke`). The tenant id is its Kafka user name too, so the
API and Kafka share one identity."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Final

from infra.kafka_acl import create_acls, delete_acls, delete_scram, upsert_scram, user_principal
from infra.kafka_admin import ensure_topics
from infra.kafka_principals import tenant_acls, tenant_username
from infra.settings import Settings
from schemas.topics import tenant_topics

PASSWORD_BYTES: Final = 24


@dataclass(frozen=True, slots=True)
class TenantKafka:
    """What a tenant needs to reach its topics (the password is shown once, like the API key)."""

    username: str
    password: str
    requests_topic: str
    outcomes_topic: str


def kafka_tenants_enabled(settings: Settings) -> bool:
    """True when Kafka authenticates its clients, so tenants get their own credentials and ACLs."""
    return settings.kafka_protocol in ("SASL_PLAINTEXT", "SASL_SSL")


async def grant_tenant(settings: Settings, tenant_id: str) -> TenantKafka:
    """Creates the tenant's topics, SCRAM credentials and ACLs (idempotent; a new password each call)."""
    requests, outcomes = tenant_topics(tenant_id)
    await ensure_topics(settings, [requests, outcomes])
    password = secrets.token_urlsafe(PASSWORD_BYTES)
    await upsert_scram(settings, tenant_username(tenant_id), password)
    await create_acls(settings, tenant_acls(settings, tenant_id))
    return TenantKafka(tenant_username(tenant_id), password, settings.topic(requests), settings.topic(outcomes))


async def revoke_tenant(settings: Settings, tenant_id: str) -> int:
    """Removes the tenant's ACLs and credentials at once; its topics stay (the history is evidence).
    Returns how many ACL bindings were removed."""
    removed = await delete_acls(settings, user_principal(tenant_username(tenant_id)))
    await delete_scram(settings, tenant_username(tenant_id))
    return removed
