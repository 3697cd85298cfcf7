"""Kafka ACLs and SCRAM users, administered over aiokafka's protocol layer.

aiokafka's admin client has no ACL or SCRAM API, and Kafka 4 removed the CreateAcls, DeleteAcls
and DescribeAcls versions aiokafka knows (v0–v1); infra/kafka_acl_messages.py defines the versions
Kafka 4 speaks. They are sent through the one admin client of infra/kafka_clients, as the `admin`
principal (a super user on the secured local broker).

Every broker-side failure becomes a SandboxError that names what failed; a connection that is
refused says why (infra/kafka_tls.connection_problem): a CA that does not match, a wrong password.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError, for_code
from aiokafka.protocol.api import Request

from infra import kafka_clients
from infra.errors import SandboxError
from infra.kafka_acl_messages import (
    ALLOW,
    DENY,
    SCRAM_ITERATIONS,
    AlterUserScramCredentials,
    CreateAcls,
    DeleteAcls,
    DescribeAcls,
    principal_filter,
)
from infra.kafka_tls import connection_problem
from infra.settings import Settings

ResourceType = Literal["topic", "group", "cluster", "transactional_id"]
PatternType = Literal["literal", "prefixed"]
Operation = Literal[
    "all", "read", "write", "create", "delete", "alter", "describe", "cluster_action",
    "describe_configs", "alter_configs", "idempotent_write",
]  # fmt: skip

# Kafka's wire codes (org.apache.kafka.common.resource.ResourceType, PatternType, acl.AclOperation,
# acl.AclPermissionType, clients.admin.ScramMechanism).
RESOURCE_CODES: Final[dict[ResourceType, int]] = {"topic": 2, "group": 3, "cluster": 4, "transactional_id": 5}
PATTERN_CODES: Final[dict[PatternType, int]] = {"literal": 3, "prefixed": 4}
OPERATION_CODES: Final[dict[Operation, int]] = {
    "all": 2, "read": 3, "write": 4, "create": 5, "delete": 6, "alter": 7, "describe": 8,
    "cluster_action": 9, "describe_configs": 10, "alter_configs": 11, "idempotent_write": 12,
}  # fmt: skip
ANY_HOST: Final = "*"
CLUSTER_NAME: Final = "kafka-cluster"  # the one name the cluster resource has
SALT_BYTES: Final = 32
ADMIN_TIMEOUT_S: Final = 10.0
ADMIN_REQUEST_TIMEOUT_MS: Final = 10_000


@dataclass(frozen=True, order=True)
class AclBinding:
    """One ACL: `principal` ('User:kp-ledger') may (allow) or may not (deny) do `operation` on the
    resource of `resource_type` named `name` — exactly (literal) or every name starting with it
    (prefixed). From any host: the sandbox does not pin clients to addresses."""

    resource_type: ResourceType
    name: str
    pattern: PatternType
    principal: str
    operation: Operation
    allow: bool = True

    def creation(self) -> tuple[Any, ...]:
        """The binding as one entry of CreateAcls v2+."""
        return (
            RESOURCE_CODES[self.resource_type], self.name, PATTERN_CODES[self.pattern], self.principal,
            ANY_HOST, OPERATION_CODES[self.operation], ALLOW if self.allow else DENY, {},
        )  # fmt: skip


def user_principal(user: str) -> str:
    """The ACL principal of a SASL user name."""
    return f"User:{user}"


def salted_password(password: str, salt: bytes, iterations: int, hash_name: str = "sha512") -> bytes:
    """SaltedPassword := Hi(Normalize(password), salt, i) of RFC 5802, which is PBKDF2 with HMAC
    and a key as long as the hash. (SASLprep is skipped: sandbox passwords are ASCII.)"""
    return hashlib.pbkdf2_hmac(hash_name, password.encode(), salt, iterations)


# --- Operations -------------------------------------------------------------------------------


async def create_acls(settings: Settings, bindings: Iterable[AclBinding]) -> None:
    """Creates the bindings (existing ones stay as they are: idempotent)."""
    wanted = sorted(set(bindings))
    if not wanted:
        return
    response = await _send(settings, CreateAcls([binding.creation() for binding in wanted]), "creating ACLs")
    for binding, (code, message, _tags) in zip(wanted, response.results, strict=True):
        _check(code, message, f"creating the ACL {_describe(binding)}")


async def describe_acls(settings: Settings, principal: str) -> list[AclBinding]:
    """Every binding of `principal` ('User:kp-ledger'), sorted; resource types the sandbox does
    not use (delegation tokens, users) are left out."""
    response = await _send(settings, DescribeAcls(principal_filter(principal)), f"listing the ACLs of {principal}")
    _check(response.error_code, response.error_message, f"listing the ACLs of {principal}")
    return sorted(_bindings(response.resources))


async def delete_acls(settings: Settings, principal: str) -> int:
    """Deletes every binding of `principal`; returns how many there were."""
    what = f"deleting the ACLs of {principal}"
    response = await _send(settings, DeleteAcls([principal_filter(principal)]), what)
    deleted = 0
    for code, message, matching, _tags in response.filter_results:
        _check(code, message, what)
        for acl in matching:
            _check(acl[0], acl[1], what)
            deleted += 1
    return deleted


async def upsert_scram(settings: Settings, user: str, password: str) -> None:
    """Creates `user` with SCRAM-SHA-512 credentials for `password`, or replaces its password."""
    salt = secrets.token_bytes(SALT_BYTES)
    request = AlterUserScramCredentials(
        deletions=[], upsertions=[(user, salt, salted_password(password, salt, SCRAM_ITERATIONS))]
    )
    await _alter_scram(settings, request, f"setting the SCRAM credentials of {user}")


async def delete_scram(settings: Settings, user: str) -> None:
    """Removes `user`'s SCRAM-SHA-512 credentials: it can no longer log in (open connections stay
    until they close; revoke its ACLs too so they can do nothing meanwhile)."""
    request = AlterUserScramCredentials(deletions=[user], upsertions=[])
    await _alter_scram(settings, request, f"deleting the SCRAM credentials of {user}")


async def _alter_scram(settings: Settings, request: AlterUserScramCredentials, what: str) -> None:
    response = await _send(settings, request, what)
    for _user, code, message, _tags in response.results:
        _check(code, message, what)


# --- Plumbing ---------------------------------------------------------------------------------


async def _send(settings: Settings, request: Request[Any], what: str) -> Any:
    """Sends one request through the admin principal's client and returns the decoded response."""
    admin = kafka_clients.admin(settings, request_timeout_ms=ADMIN_REQUEST_TIMEOUT_MS, client_id="kpsandbox-acl")
    try:
        await _start(settings, admin)
        # aiokafka's admin client exposes no public way to send a request it does not know; its
        # `_send_request` picks a broker and negotiates the version (Request.prepare) like its own.
        return await asyncio.wait_for(admin._send_request(request), ADMIN_TIMEOUT_S)
    except (TimeoutError, KafkaError) as error:
        raise SandboxError(
            f"{what} failed: Kafka at {settings.bootstrap_servers} did not answer ({type(error).__name__})",
            "check that the broker runs (`kpsandbox status`) and try again",
        ) from None
    finally:
        await admin.close()


async def _start(settings: Settings, admin: AIOKafkaAdminClient) -> None:
    """Connects; a refused connection becomes a SandboxError saying why (CA, password, protocol)."""
    try:
        await asyncio.wait_for(admin.start(), ADMIN_TIMEOUT_S)
    except (TimeoutError, KafkaConnectionError, OSError):
        problem = await connection_problem(settings, "admin")
        if problem is not None:
            raise problem from None
        from infra.kafka_admin import kafka_unreachable  # lazy: kafka_admin is the heavier module

        raise kafka_unreachable(settings) from None


def _check(code: int, message: str | None, what: str) -> None:
    """A SandboxError naming the operation and Kafka's error when `code` is not 0."""
    if code == 0:
        return
    name = for_code(code).__name__
    if name == "SecurityDisabledError":
        hint = "ACLs need a broker with an authorizer: run the local one with KPSANDBOX_KAFKA_SECURITY=sasl_ssl"
    elif name in ("ClusterAuthorizationFailedError", "SaslAuthenticationFailed"):
        hint = "ACLs and SCRAM users are administered as the admin principal (a super user)"
    else:
        hint = "read the broker's log (state folder kafka/server.out) for the cause"
    raise SandboxError(f"{what} failed: {name}" + (f" ({message})" if message else ""), hint)


def _describe(binding: AclBinding) -> str:
    verb = "allow" if binding.allow else "deny"
    return (
        f"{verb} {binding.principal} {binding.operation} on {binding.pattern} {binding.resource_type} {binding.name!r}"
    )


def _bindings(resources: list[tuple[Any, ...]]) -> list[AclBinding]:
    """Decoded DescribeAcls resources as bindings (codes mapped back to names)."""
    resource_names = {code: name for name, code in RESOURCE_CODES.items()}
    pattern_names = {code: name for name, code in PATTERN_CODES.items()}
    operation_names = {code: name for name, code in OPERATION_CODES.items()}
    found: list[AclBinding] = []
    for resource_type, name, pattern, acls, _tags in resources:
        if resource_type not in resource_names or pattern not in pattern_names:
            continue
        for principal, _host, operation, permission, _acl_tags in acls:
            if operation not in operation_names:
                continue
            found.append(
                AclBinding(
                    resource_names[resource_type],
                    name,
                    pattern_names[pattern],
                    principal,
                    operation_names[operation],
                    permission == ALLOW,
                )
            )
    return found
