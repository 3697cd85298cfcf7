"""The pure parts of Kafka security: SCRAM salting, ACL message encoding, the principals' ACL
table, the secured broker's config, and the local CA and broker certificate."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
from pathlib import Path

from cryptography import x509

from infra.kafka_acl import AclBinding, _bindings, salted_password
from infra.kafka_acl_messages import (
    AlterUserScramCredentials,
    AlterUserScramCredentialsRequest_v0,
    CreateAcls,
    CreateAclsRequest_v3,
    DeleteAcls,
    DeleteAclsRequest_v3,
    DescribeAclsResponse_v3,
    principal_filter,
)
from infra.kafka_clients import PRINCIPALS
from infra.kafka_principals import service_acls, tenant_acls
from infra.kafka_tls import ensure_tls
from infra.local import kafka_config, kafka_secrets
from infra.settings import Settings
from schemas.topics import ACCOUNTS, PAYMENT_OUTCOMES, PAYMENT_REQUESTS

PREFIX = "t1."
TENANT = "ten_0123456789abcdef"


def _settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path, topic_prefix=PREFIX, kafka_security="sasl_ssl")


def test_salted_password_matches_the_rfc_7677_exchange() -> None:
    """Hi() as implemented reproduces RFC 7677's SCRAM-SHA-256 client proof and server signature."""
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    salted = salted_password("pencil", salt, 4096, "sha256")
    auth_message = (
        b"n=user,r=rOprNGfwEbeRWgbNEkqO,"
        b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
        b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    )
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    signature = hmac.digest(hashlib.sha256(client_key).digest(), auth_message, "sha256")
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    assert base64.b64encode(proof).decode() == "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    assert base64.b64encode(hmac.digest(server_key, auth_message, "sha256")).decode() == (
        "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    )


def test_salted_password_for_kafka_is_sha512_sized() -> None:
    """SCRAM-SHA-512 salting gives a 64-byte key, which depends on salt and iterations."""
    one = salted_password("pw", b"salt", 8192)
    assert len(one) == 64
    assert one != salted_password("pw", b"salt2", 8192) != salted_password("pw", b"salt", 4096)


def test_create_acls_v3_encodes_as_the_flexible_spec_says() -> None:
    """One binding: compact array length, compact strings (length + 1), int8 codes, empty tags."""
    binding = AclBinding("topic", "t", "prefixed", "User:a", "write", allow=False)
    struct = CreateAcls([binding.creation()]).build(CreateAclsRequest_v3)
    expected = b"\x02" + b"\x02\x02t\x04" + b"\x07User:a" + b"\x02*" + b"\x04\x02" + b"\x00" + b"\x00"
    assert struct.encode() == expected


def test_delete_acls_filters_every_binding_of_one_principal() -> None:
    """The principal filter matches any resource, pattern, host, operation and permission."""
    struct = DeleteAcls([principal_filter("User:a")]).build(DeleteAclsRequest_v3)
    assert struct.encode() == b"\x02" + b"\x01\x00\x01" + b"\x07User:a" + b"\x00\x01\x01" + b"\x00" + b"\x00"


def test_scram_upsertion_carries_the_salted_password_not_the_password() -> None:
    """AlterUserScramCredentials sends name, SCRAM-SHA-512 (2), 8192 iterations, salt and key."""
    salted = salted_password("secret", b"s", 8192)
    request = AlterUserScramCredentials(deletions=[], upsertions=[("kp-x", b"s", salted)])
    encoded = request.build(AlterUserScramCredentialsRequest_v0).encode()
    assert b"secret" not in encoded
    assert encoded == b"\x01" + b"\x02" + b"\x05kp-x\x02" + (8192).to_bytes(4, "big") + b"\x02s" + b"\x41" + salted + (
        b"\x00\x00"
    )


def test_describe_response_decodes_to_bindings() -> None:
    """A DescribeAcls v3 response round-trips into AclBindings; unknown resource types are skipped."""
    resources = [
        (2, "t", 4, [("User:a", "*", 3, 3, {}), ("User:a", "*", 4, 2, {})], {}),
        (7, "user-resource", 3, [("User:a", "*", 2, 3, {})], {}),  # USER: not a sandbox resource
    ]
    encoded = DescribeAclsResponse_v3(0, 0, None, resources, {}).encode()
    decoded = DescribeAclsResponse_v3.decode(encoded)
    assert _bindings(decoded.resources) == [
        AclBinding("topic", "t", "prefixed", "User:a", "read"),
        AclBinding("topic", "t", "prefixed", "User:a", "write", allow=False),
    ]


def _grants(bindings: list[AclBinding]) -> set[tuple[str, str, str, str, bool]]:
    return {(b.resource_type, b.name, b.pattern, b.operation, b.allow) for b in bindings}


def test_ledger_reads_requests_writes_outcomes_and_not_accounts(tmp_path: Path) -> None:
    """The ledger's table: read requests and accounts, write outcomes, its groups, tenant families."""
    settings = _settings(tmp_path)
    ledger = _grants(service_acls(settings)["ledger"])
    assert ("topic", PREFIX + PAYMENT_REQUESTS.name, "literal", "read", True) in ledger
    assert ("topic", PREFIX + PAYMENT_OUTCOMES.name, "literal", "write", True) in ledger
    assert ("topic", PREFIX + ACCOUNTS.name, "literal", "write", True) not in ledger
    assert ("topic", PREFIX + "kp.tenant-requests.v1.", "prefixed", "read", True) not in ledger  # the gateway's
    assert ("topic", PREFIX + "kp.tenant-outcomes.v1.", "prefixed", "write", True) in ledger
    assert ("group", "kp-ledger", "prefixed", "read", True) in ledger


def test_the_gateway_reads_tenants_requests_and_writes_only_the_shared_requests(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    gateway = _grants(service_acls(settings)["gateway"])
    assert ("topic", PREFIX + "kp.tenant-requests.v1.", "prefixed", "read", True) in gateway
    assert ("topic", PREFIX + PAYMENT_REQUESTS.name, "literal", "write", True) in gateway
    assert ("transactional_id", PREFIX + "kp-gateway", "literal", "write", True) in gateway
    assert ("group", PREFIX + "kp-gateway", "literal", "read", True) in gateway
    writes = {name for kind, name, _, operation, _ in gateway if kind == "topic" and operation == "write"}
    assert writes == {PREFIX + PAYMENT_REQUESTS.name}


def test_every_principal_has_an_entry_and_admin_needs_none(tmp_path: Path) -> None:
    """Each principal is in the table under its own user; admin (a super user) and webhooks (no
    Kafka client) have no grants; nobody gets a cluster-wide or 'all' operation."""
    table = service_acls(_settings(tmp_path))
    assert set(table) == set(PRINCIPALS)
    assert table["admin"] == [] and table["webhooks"] == []
    for principal, bindings in table.items():
        assert {b.principal for b in bindings} <= {f"User:kp-{principal}"}
        assert not any(b.resource_type == "cluster" or b.operation == "all" for b in bindings)


def test_api_and_economy_write_only_what_they_publish(tmp_path: Path) -> None:
    """The API and the economy only write (no reads) and never the outcomes topic."""
    table = service_acls(_settings(tmp_path))
    for principal in ("api", "economy"):
        grants = _grants(table[principal])
        assert {g[3] for g in grants} == {"write"}
        assert not any(g[1] == PREFIX + PAYMENT_OUTCOMES.name for g in grants)


def test_researcher_is_denied_live_and_tenant_topics(tmp_path: Path) -> None:
    """The researcher may read and write any prefix but never write the live topics or touch tenants'."""
    grants = _grants(service_acls(_settings(tmp_path))["researcher"])
    assert ("topic", "*", "literal", "read", True) in grants
    assert ("topic", PREFIX + PAYMENT_REQUESTS.name, "literal", "write", False) in grants
    assert ("topic", PREFIX + "kp.tenant-outcomes.v1.", "prefixed", "read", False) in grants


def test_tenant_acls_cover_only_the_tenants_own_topics(tmp_path: Path) -> None:
    """A tenant writes its requests topic, reads its outcomes topic, uses groups named by its id."""
    grants = _grants(tenant_acls(_settings(tmp_path), TENANT))
    requests, outcomes = f"{PREFIX}kp.tenant-requests.v1.{TENANT}", f"{PREFIX}kp.tenant-outcomes.v1.{TENANT}"
    assert grants == {
        ("topic", requests, "prefixed", "write", True),
        ("topic", requests, "prefixed", "describe", True),
        ("topic", outcomes, "prefixed", "read", True),
        ("topic", outcomes, "prefixed", "describe", True),
        ("group", TENANT, "prefixed", "read", True),
    }
    assert {b.principal for b in tenant_acls(_settings(tmp_path), TENANT)} == {f"User:{TENANT}"}


def test_secured_broker_config(tmp_path: Path) -> None:
    """SASL_SSL listeners, the StandardAuthorizer denying by default, and only admin and the broker
    as super users (never ANONYMOUS)."""
    settings = Settings(state_dir=tmp_path, kafka_port=29092, kafka_controller_port=29093, kafka_security="sasl_ssl")
    lines = kafka_config.server_properties(settings, tmp_path / "data", "pw").splitlines()
    assert "listener.security.protocol.map=CLIENT:SASL_SSL,CONTROLLER:SASL_SSL" in lines
    assert "listeners=CLIENT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093" in lines
    assert "listener.name.client.sasl.enabled.mechanisms=SCRAM-SHA-512" in lines
    assert "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer" in lines
    assert "allow.everyone.if.no.acl.found=false" in lines
    assert "super.users=User:kp-admin;User:kp-broker" in lines
    assert not any("ANONYMOUS" in line for line in lines)


def test_format_errors_are_redacted() -> None:
    """A tool's output quoting a password is redacted before it becomes an error message."""
    text = "bad --add-scram SCRAM-SHA-512=[name=kp-admin,password=hunter2-xyz]"
    assert "hunter2-xyz" not in kafka_secrets.redact(text, ["hunter2-xyz", ""])


def test_java_argfile_quoting() -> None:
    """Argument-file lines are quoted so spaces, quotes and backslashes survive the launcher."""
    assert kafka_secrets.java_arg_quoted('a b"c\\d') == '"a b\\"c\\\\d"'


def test_ensure_tls_makes_a_ca_and_broker_cert_once(tmp_path: Path) -> None:
    """The broker certificate names 127.0.0.1 and localhost, is signed by the CA, keys are 0600,
    and a second call keeps every file as it is."""
    files = ensure_tls(_settings(tmp_path))
    before = {path: path.read_bytes() for path in (files.ca_cert, files.ca_key, files.broker_keystore)}
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    broker = x509.load_pem_x509_certificates(files.broker_keystore.read_bytes())[0]
    broker.verify_directly_issued_by(ca)
    names = broker.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert files.ca_key.stat().st_mode & 0o777 == 0o600 and files.broker_keystore.stat().st_mode & 0o777 == 0o600
    ensure_tls(_settings(tmp_path))
    assert {path: path.read_bytes() for path in before} == before


def test_ensure_tls_renews_what_expires(tmp_path: Path) -> None:
    """Near the broker certificate's end it alone is re-made; past the CA's end both are."""
    now = dt.datetime.now(dt.UTC)
    files = ensure_tls(_settings(tmp_path), now)
    ca, keystore = files.ca_cert.read_bytes(), files.broker_keystore.read_bytes()
    ensure_tls(_settings(tmp_path), now + dt.timedelta(days=729))
    assert files.ca_cert.read_bytes() == ca and files.broker_keystore.read_bytes() != keystore
    ensure_tls(_settings(tmp_path), now + dt.timedelta(days=3650))
    assert files.ca_cert.read_bytes() != ca
    new_ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    x509.load_pem_x509_certificates(files.broker_keystore.read_bytes())[0].verify_directly_issued_by(new_ca)


def test_the_researcher_cannot_touch_kafkas_internal_topics(tmp_path: Path) -> None:
    """Its broad grant (any topic of any prefix) is cut back by DENY on Kafka's `__` topics."""
    researcher = _grants(service_acls(_settings(tmp_path))["researcher"])
    for operation in ("read", "write", "create"):
        assert ("topic", "__", "prefixed", operation, False) in researcher
