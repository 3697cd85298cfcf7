"""Pure rules of the gateway: which topics are tenants' requests, and the header each copy carries."""

from __future__ import annotations

import re
from collections.abc import Iterable

from infra.settings import Settings
from schemas.topics import TENANT_HEADER, TENANT_ID_PATTERN, TENANT_REQUESTS_FAMILY

Headers = list[tuple[str, bytes]]


def tenant_requests_pattern(settings: Settings) -> re.Pattern[str]:
    """Every tenant's requests topic in this deployment (and nothing else)."""
    family = re.escape(settings.topic_prefix + TENANT_REQUESTS_FAMILY)
    return re.compile(f"^{family}({TENANT_ID_PATTERN})$")


def tenant_of(pattern: re.Pattern[str], topic: str) -> str:
    """The tenant id a requests topic belongs to; ValueError for any other topic."""
    match = pattern.match(topic)
    if match is None:
        raise ValueError(f"{topic} is not a tenant's requests topic")
    return match.group(1)


def stamped(headers: Iterable[tuple[str, bytes]] | None, tenant: str) -> Headers:
    """The record's headers with exactly one `kp-tenant`: the tenant the topic belongs to.

    A header of that name the tenant wrote itself is dropped: the sender is known from where the
    request came, never from what it says.
    """
    kept = [(name, value) for name, value in headers or () if name != TENANT_HEADER]
    kept.append((TENANT_HEADER, tenant.encode("ascii")))
    return kept
