"""The tenant gateway's pure rules: which topics are tenants' and which tenant a copy names."""

from __future__ import annotations

import pytest

from consumers.gateway.stamp import stamped, tenant_of, tenant_requests_pattern
from infra.settings import Settings
from schemas.topics import TENANT_HEADER, tenant_outcomes_name, tenant_requests_name

TENANT = "ten_0123456789abcdef"


def test_only_a_tenants_requests_topic_under_this_prefix_matches() -> None:
    pattern = tenant_requests_pattern(Settings(topic_prefix="t1."))
    assert tenant_of(pattern, "t1." + tenant_requests_name(TENANT)) == TENANT
    for other in (
        tenant_requests_name(TENANT),  # another deployment's (no prefix)
        "t1." + tenant_outcomes_name(TENANT),
        "t1." + tenant_requests_name(TENANT) + "x",
        "t1.kp.payments.requests.v1",
        "t1x" + tenant_requests_name(TENANT),  # the prefix's dot is literal
    ):
        with pytest.raises(ValueError):
            tenant_of(pattern, other)


def test_a_forged_tenant_header_is_replaced_by_the_topics_tenant() -> None:
    headers = [("traceparent", b"00-abc"), (TENANT_HEADER, b"ten_ffffffffffffffff")]
    assert stamped(headers, TENANT) == [("traceparent", b"00-abc"), (TENANT_HEADER, TENANT.encode())]
    assert stamped(None, TENANT) == [(TENANT_HEADER, TENANT.encode())]
