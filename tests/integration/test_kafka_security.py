"""A secured local broker (SASL_SSL, SCRAM-SHA-512, StandardAuthorizer) of this module's own.

It is started through the real `up` path (infra/local/stack.up with KPSANDBOX_KAFKA_SECURITY=
sasl_ssl) on its own ports and state folder, with PostgreSQL and Prometheus left out, and stopped
at the end. Every refusal is checked for a clear error and a bounded wait, never a hang.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

from infra import kafka_clients
from infra.errors import SandboxError
from infra.kafka_acl import AclBinding, create_acls, delete_acls, delete_scram, describe_acls, upsert_scram
from infra.kafka_admin import ensure_topic
from infra.kafka_clients import principals_dir
from infra.kafka_principals import tenant_acls, tenant_username
from infra.kafka_tls import connection_problem, ensure_tls
from infra.local import kafka as local_kafka
from infra.local import stack
from infra.local.kafka import KafkaService
from infra.settings import Settings, with_overrides
from schemas.topics import ACCOUNTS, PAYMENT_OUTCOMES, PAYMENT_REQUESTS, tenant_requests_name
from tests.conftest import RUN_ID
from tests.integration.secured_support import secured_broker

REFUSAL_S_MAX: Final = 15.0  # a refused client must know within this long
SCRAM_SETTLE_ATTEMPTS: Final = 40  # credentials reach the broker through its metadata log
SCRAM_SETTLE_PAUSE_S: Final = 0.25
COMMAND_LINES: list[list[str]] = []  # every command infra/local/kafka.py ran while `up` prepared the broker


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings of a running secured broker, after `up` made its topics and granted the ACLs."""
    run = _recording(local_kafka.subprocess.run)
    with secured_broker(tmp_path_factory.mktemp("secured"), f"s{RUN_ID}.", run=run) as config:
        yield config


def _recording(run: Callable[..., Any]) -> Callable[..., Any]:
    def recorded(argv: list[str], *args: Any, **kwargs: Any) -> Any:
        COMMAND_LINES.append([str(arg) for arg in argv])
        return run(argv, *args, **kwargs)

    return recorded


def _as(settings: Settings, **overrides: Any) -> Settings:
    return with_overrides(settings, **overrides)


async def _refusal(settings: Settings) -> SandboxError:
    """The diagnosed refusal of a client with these settings, timed."""
    began = time.monotonic()
    problem = await connection_problem(settings, "admin")
    assert time.monotonic() - began < REFUSAL_S_MAX
    assert problem is not None, "the client was let in"
    return problem


async def _producer_refused(settings: Settings) -> None:
    """A real producer of these settings fails to start, quickly (no hang)."""
    producer = kafka_clients.producer(settings, "admin", request_timeout_ms=5_000)
    began = time.monotonic()
    with pytest.raises(KafkaConnectionError):
        await asyncio.wait_for(producer.start(), REFUSAL_S_MAX)
    await producer.stop()
    assert time.monotonic() - began < REFUSAL_S_MAX


def test_status_shows_the_secured_listener(secured: Settings) -> None:
    """`status` reports the broker healthy over SASL_SSL (the admin logs in to answer)."""
    (kafka,) = stack.status(secured)
    assert kafka.healthy
    assert "SASL_SSL (SCRAM-SHA-512)" in kafka.version


async def test_admin_connects(secured: Settings) -> None:
    """The admin principal logs in over TLS and sees the topics `up` created."""
    admin = kafka_clients.admin(secured)
    await admin.start()
    try:
        assert secured.topic(PAYMENT_REQUESTS) in await admin.list_topics()
    finally:
        await admin.close()


async def test_plaintext_client_is_refused(secured: Settings) -> None:
    """A client without TLS and without credentials is refused, and told which setting to change."""
    plaintext = _as(secured, kafka_security_protocol="PLAINTEXT")
    problem = await _refusal(plaintext)
    assert "KPSANDBOX_KAFKA_SECURITY_PROTOCOL" in problem.hint
    await _producer_refused(plaintext)


async def test_tls_client_without_credentials_is_refused(secured: Settings) -> None:
    """TLS alone (protocol SSL, no SASL login) does not get in."""
    tls_only = _as(secured, kafka_security_protocol="SSL")
    problem = await _refusal(tls_only)
    assert "login" in problem.message
    await _producer_refused(tls_only)


async def test_sasl_without_tls_is_refused(secured: Settings) -> None:
    """Right credentials sent without TLS (SASL_PLAINTEXT to the SASL_SSL port) are refused."""
    await _producer_refused(_as(secured, kafka_security_protocol="SASL_PLAINTEXT"))


async def test_wrong_password_is_refused_without_leaking_it(secured: Settings) -> None:
    """A wrong password is a login refusal naming the user and the settings, never the password."""
    wrong = _as(secured, kafka_sasl_username="kp-ledger", kafka_sasl_password="not-the-password")
    problem = await _refusal(wrong)
    assert "kp-ledger" in problem.message and "KPSANDBOX_KAFKA_SASL_PASSWORD" in problem.hint
    assert "not-the-password" not in str(problem)
    await _producer_refused(wrong)


async def test_acl_administration_with_a_wrong_password_says_why(secured: Settings) -> None:
    """An ACL call as an admin with the wrong password fails at once with the login error."""
    wrong = _as(secured, kafka_sasl_username="kp-admin", kafka_sasl_password="nope-nope")
    with pytest.raises(SandboxError, match="refused the login of kp-admin"):
        await asyncio.wait_for(describe_acls(wrong, "User:kp-ledger"), REFUSAL_S_MAX)


async def test_a_wrong_ca_is_a_clear_error(secured: Settings, tmp_path: Path) -> None:
    """A CA file of another CA: the error names KPSANDBOX_KAFKA_SSL_CAFILE, within the bound."""
    other = ensure_tls(_as(secured, state_dir=tmp_path))
    assert other.ca_cert.read_bytes() != ensure_tls(secured).ca_cert.read_bytes()
    wrong_ca = _as(secured, kafka_ssl_cafile=other.ca_cert)
    began = time.monotonic()
    with pytest.raises(SandboxError) as raised:
        await asyncio.wait_for(describe_acls(wrong_ca, "User:kp-ledger"), REFUSAL_S_MAX)
    assert "KPSANDBOX_KAFKA_SSL_CAFILE" in raised.value.hint and "does not trust" in raised.value.message
    assert time.monotonic() - began < REFUSAL_S_MAX


async def test_ledger_reads_requests_but_cannot_write_accounts(secured: Settings) -> None:
    """Least privilege: the ledger reads the requests topic and writes outcomes (idempotently,
    with no cluster ACL), but writing the accounts topic is a TopicAuthorizationFailed."""
    requests = secured.topic(PAYMENT_REQUESTS)
    admin_producer = kafka_clients.producer(secured, "admin")
    await admin_producer.start()
    try:
        sent = await admin_producer.send_and_wait(requests, b"probe", key=b"k", partition=0)
    finally:
        await admin_producer.stop()
    consumer = kafka_clients.consumer(secured, "ledger", group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(requests, 0)
        consumer.assign([partition])
        consumer.seek(partition, sent.offset)
        fetched = await consumer.getmany(partition, timeout_ms=10_000)
        assert [record.value for record in fetched[partition]][:1] == [b"probe"]
    finally:
        await consumer.stop()
    producer = kafka_clients.producer(secured, "ledger", acks="all", enable_idempotence=True, request_timeout_ms=5_000)
    await producer.start()
    try:
        await producer.send_and_wait(secured.topic(PAYMENT_OUTCOMES), b"allowed", key=b"k")
        with pytest.raises(TopicAuthorizationFailedError):
            await asyncio.wait_for(producer.send_and_wait(secured.topic(ACCOUNTS), b"denied", key=b"k"), 10)
    finally:
        await producer.stop()


async def test_acls_round_trip(secured: Settings) -> None:
    """Created bindings are described back exactly, and deleting the principal's removes them all."""
    who = f"User:kp-roundtrip-{RUN_ID}"
    bindings = [
        AclBinding("topic", f"{secured.topic_prefix}rt.", "prefixed", who, "read"),
        AclBinding("group", "rt-group", "literal", who, "describe", allow=False),
        AclBinding("cluster", "kafka-cluster", "literal", who, "idempotent_write"),
    ]
    await create_acls(secured, bindings)
    await create_acls(secured, bindings)  # idempotent
    assert await describe_acls(secured, who) == sorted(bindings)
    assert await delete_acls(secured, who) == len(bindings)
    assert await describe_acls(secured, who) == []


async def _login_problem(settings: Settings, *, refused: bool) -> SandboxError | None:
    """Waits (bounded) until the login is refused or accepted as expected; returns the last answer."""
    problem = None
    for _ in range(SCRAM_SETTLE_ATTEMPTS):
        problem = await connection_problem(settings, "admin")
        if (problem is not None) == refused:
            return problem
        await asyncio.sleep(SCRAM_SETTLE_PAUSE_S)
    return problem


async def test_scram_users_can_be_added_and_removed(secured: Settings) -> None:
    """upsert_scram lets a new user log in; delete_scram locks it out again."""
    user, password = f"kp-scram-{RUN_ID}", "a-long-password-for-the-test"
    as_user = _as(secured, kafka_sasl_username=user, kafka_sasl_password=password)
    await upsert_scram(secured, user, password)
    assert await _login_problem(as_user, refused=False) is None
    await delete_scram(secured, user)
    problem = await _login_problem(as_user, refused=True)
    assert problem is not None and f"refused the login of {user}" in problem.message


async def test_tenant_writes_its_own_requests_topic_only(secured: Settings) -> None:
    """A tenant with tenant_acls writes its requests topic; another tenant's is refused."""
    own, other = f"ten_{RUN_ID}00000000", f"ten_{RUN_ID}11111111"
    for tenant in (own, other):
        await ensure_topic(secured, secured.topic_prefix + tenant_requests_name(tenant), 1)
    password = "tenant-password-for-the-test"
    await upsert_scram(secured, tenant_username(own), password)
    await create_acls(secured, tenant_acls(secured, own))
    as_tenant = _as(secured, kafka_sasl_username=tenant_username(own), kafka_sasl_password=password)
    assert await _login_problem(as_tenant, refused=False) is None
    producer = kafka_clients.producer(as_tenant, "admin", request_timeout_ms=5_000)
    await producer.start()
    try:
        await producer.send_and_wait(secured.topic_prefix + tenant_requests_name(own), b"mine")
        with pytest.raises(TopicAuthorizationFailedError):
            await asyncio.wait_for(producer.send_and_wait(secured.topic_prefix + tenant_requests_name(other), b"x"), 10)
    finally:
        await producer.stop()


def test_switching_security_of_formatted_storage_is_refused(secured: Settings) -> None:
    """Storage formatted for sasl_ssl refuses a plaintext start, saying what to do."""
    with pytest.raises(SandboxError) as raised:
        KafkaService(_as(secured, kafka_security="plaintext")).prepare()
    assert "KPSANDBOX_KAFKA_SECURITY=sasl_ssl" in raised.value.hint
    assert str(secured.state_dir / "kafka" / "data") in raised.value.hint


def test_passwords_stay_private(secured: Settings) -> None:
    """Every principal's password file is 0600, and no password appears in the broker's log or on
    a command line (`ps`): the format step that created the SCRAM users took them from a file."""
    log = (secured.state_dir / "kafka" / "server.out").read_text(errors="replace")
    files = sorted(principals_dir(secured).iterdir())
    assert {path.name for path in files} >= set(kafka_clients.PRINCIPALS)
    assert principals_dir(secured).stat().st_mode & 0o777 == 0o700
    assert any(any(arg.startswith("@") for arg in argv) for argv in COMMAND_LINES), "no format step was seen"
    for path in files:
        password = path.read_text().strip()
        assert path.stat().st_mode & 0o777 == 0o600
        assert password not in log
        assert not any(password in arg for argv in COMMAND_LINES for arg in argv)
