"""Kafka's ACL and SCRAM admin messages in their flexible versions, for aiokafka's protocol layer.

aiokafka knows CreateAcls, DeleteAcls and DescribeAcls only in v0–v1, which Kafka 4 removed, and
AlterUserScramCredentials not at all. These are v2–v3 (v3 adds the USER resource type; the wire
format is the same) and v0 of AlterUserScramCredentials, transcribed from Kafka's message specs
(clients/src/main/resources/common/message/*.json): flexible versions use compact strings and
arrays (length + 1 as an unsigned varint) and end every struct with tagged fields (sent empty).
infra/kafka_acl.py is the API on top.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, TypeAlias

from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import CompactArray, CompactBytes, CompactString, Int8, Int16, Int32, Schema, TaggedFields

ANY: Final = 1  # the filter code matching any resource type, pattern, operation or permission
DENY: Final = 2
ALLOW: Final = 3
SCRAM_SHA_512: Final = 2  # org.apache.kafka.clients.admin.ScramMechanism
SCRAM_ITERATIONS: Final = 8192  # Kafka accepts 4096–16384 for SCRAM-SHA-512

_Str = CompactString("utf-8")


class CreateAclsResponse_v2(Response):
    API_KEY = 30
    API_VERSION = 2
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("results", CompactArray(("error_code", Int16), ("error_message", _Str), ("tags", TaggedFields))),
        ("tags", TaggedFields),
    )


class CreateAclsResponse_v3(Response):
    API_KEY = 30
    API_VERSION = 3
    SCHEMA = CreateAclsResponse_v2.SCHEMA


class CreateAclsRequest_v2(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 30
    API_VERSION = 2
    RESPONSE_TYPE = CreateAclsResponse_v2
    SCHEMA = Schema(
        (
            "creations",
            CompactArray(
                ("resource_type", Int8),
                ("resource_name", _Str),
                ("resource_pattern_type", Int8),
                ("principal", _Str),
                ("host", _Str),
                ("operation", Int8),
                ("permission_type", Int8),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class CreateAclsRequest_v3(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 30
    API_VERSION = 3
    RESPONSE_TYPE = CreateAclsResponse_v3
    SCHEMA = CreateAclsRequest_v2.SCHEMA


class CreateAcls(Request[CreateAclsRequest_v2 | CreateAclsRequest_v3]):
    """CreateAcls (API key 30): one entry per binding; creating an existing binding is a no-op."""

    API_KEY = 30

    def __init__(self, creations: list[tuple[Any, ...]]) -> None:
        self.creations = creations

    def build(self, request_struct_class: type[CreateAclsRequest_v2 | CreateAclsRequest_v3]) -> Any:
        return request_struct_class(self.creations, {})


# A filter: resource type, name (None: any), pattern, principal (None: any), host (None: any),
# operation, permission — the same fields in DescribeAcls and in each DeleteAcls filter.
FILTER_FIELDS: Final = (
    ("resource_type_filter", Int8), ("resource_name_filter", _Str), ("pattern_type_filter", Int8),
    ("principal_filter", _Str), ("host_filter", _Str), ("operation", Int8), ("permission_type", Int8),
)  # fmt: skip
Filter: TypeAlias = tuple[int, str | None, int, str | None, str | None, int, int]


def principal_filter(principal: str) -> Filter:
    """Every ACL of one principal, on any resource."""
    return (ANY, None, ANY, principal, None, ANY, ANY)


class DescribeAclsResponse_v2(Response):
    API_KEY = 29
    API_VERSION = 2
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("error_code", Int16),
        ("error_message", _Str),
        (
            "resources",
            CompactArray(
                ("resource_type", Int8),
                ("resource_name", _Str),
                ("pattern_type", Int8),
                (
                    "acls",
                    CompactArray(
                        ("principal", _Str),
                        ("host", _Str),
                        ("operation", Int8),
                        ("permission_type", Int8),
                        ("tags", TaggedFields),
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class DescribeAclsResponse_v3(Response):
    API_KEY = 29
    API_VERSION = 3
    SCHEMA = DescribeAclsResponse_v2.SCHEMA


class DescribeAclsRequest_v2(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 29
    API_VERSION = 2
    RESPONSE_TYPE = DescribeAclsResponse_v2
    SCHEMA = Schema(*FILTER_FIELDS, ("tags", TaggedFields))


class DescribeAclsRequest_v3(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 29
    API_VERSION = 3
    RESPONSE_TYPE = DescribeAclsResponse_v3
    SCHEMA = DescribeAclsRequest_v2.SCHEMA


class DescribeAcls(Request[DescribeAclsRequest_v2 | DescribeAclsRequest_v3]):
    """DescribeAcls (API key 29): the bindings matching one filter."""

    API_KEY = 29

    def __init__(self, acl_filter: Filter) -> None:
        self.acl_filter = acl_filter

    def build(self, request_struct_class: type[DescribeAclsRequest_v2 | DescribeAclsRequest_v3]) -> Any:
        return request_struct_class(*self.acl_filter, {})


class DeleteAclsResponse_v2(Response):
    API_KEY = 31
    API_VERSION = 2
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "filter_results",
            CompactArray(
                ("error_code", Int16),
                ("error_message", _Str),
                (
                    "matching_acls",
                    CompactArray(
                        ("error_code", Int16),
                        ("error_message", _Str),
                        ("resource_type", Int8),
                        ("resource_name", _Str),
                        ("pattern_type", Int8),
                        ("principal", _Str),
                        ("host", _Str),
                        ("operation", Int8),
                        ("permission_type", Int8),
                        ("tags", TaggedFields),
                    ),
                ),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class DeleteAclsResponse_v3(Response):
    API_KEY = 31
    API_VERSION = 3
    SCHEMA = DeleteAclsResponse_v2.SCHEMA


class DeleteAclsRequest_v2(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 31
    API_VERSION = 2
    RESPONSE_TYPE = DeleteAclsResponse_v2
    SCHEMA = Schema(("filters", CompactArray(*FILTER_FIELDS, ("tags", TaggedFields))), ("tags", TaggedFields))


class DeleteAclsRequest_v3(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 31
    API_VERSION = 3
    RESPONSE_TYPE = DeleteAclsResponse_v3
    SCHEMA = DeleteAclsRequest_v2.SCHEMA


class DeleteAcls(Request[DeleteAclsRequest_v2 | DeleteAclsRequest_v3]):
    """DeleteAcls (API key 31): removes every binding matching each filter."""

    API_KEY = 31

    def __init__(self, filters: Iterable[Filter]) -> None:
        self.filters: list[tuple[Any, ...]] = [(*acl_filter, {}) for acl_filter in filters]

    def build(self, request_struct_class: type[DeleteAclsRequest_v2 | DeleteAclsRequest_v3]) -> Any:
        return request_struct_class(self.filters, {})


class AlterUserScramCredentialsResponse_v0(Response):
    API_KEY = 51
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "results",
            CompactArray(("user_name", _Str), ("error_code", Int16), ("error_message", _Str), ("tags", TaggedFields)),
        ),
        ("tags", TaggedFields),
    )


class AlterUserScramCredentialsRequest_v0(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 51
    API_VERSION = 0
    RESPONSE_TYPE = AlterUserScramCredentialsResponse_v0
    SCHEMA = Schema(
        ("deletions", CompactArray(("name", _Str), ("mechanism", Int8), ("tags", TaggedFields))),
        (
            "upsertions",
            CompactArray(
                ("name", _Str),
                ("mechanism", Int8),
                ("iterations", Int32),
                ("salt", CompactBytes),
                ("salted_password", CompactBytes),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class AlterUserScramCredentials(Request[AlterUserScramCredentialsRequest_v0]):
    """AlterUserScramCredentials (API key 51): the client salts the password; it never travels."""

    API_KEY = 51

    def __init__(self, *, deletions: list[str], upsertions: list[tuple[str, bytes, bytes]]) -> None:
        self.deletions: list[tuple[Any, ...]] = [(name, SCRAM_SHA_512, {}) for name in deletions]
        self.upsertions: list[tuple[Any, ...]] = [
            (name, SCRAM_SHA_512, SCRAM_ITERATIONS, salt, salted, {}) for name, salt, salted in upsertions
        ]

    def build(self, request_struct_class: type[AlterUserScramCredentialsRequest_v0]) -> Any:
        return request_struct_class(self.deletions, self.upsertions, {})
