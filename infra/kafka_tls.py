"""The secured local broker's TLS material (a local CA and a broker certificate, made once), and
the diagnosis of a secured connection that is refused.

`ensure_tls` keeps whatever is still good and re-makes only what is missing, expired or about to
expire (or, for the broker certificate, no longer signed by the CA on disk), so `kpsandbox up` can
call it every time. Everything lives in `tls_dir(settings)` (state/kafka/tls):

- `ca.pem` — the CA certificate every client trusts (infra/kafka_clients.local_cafile);
- `ca-key.pem` — the CA's private key (0600), kept so the broker certificate can be renewed
  without changing what clients trust;
- `broker.pem` — the broker's PKCS#8 private key followed by its certificate chain (0600): Kafka 4
  reads it directly with `ssl.keystore.type=PEM` and `ssl.keystore.location`, no JKS, no password.

Keys are ECDSA P-256: quick to make, and both the JVM and Python's ssl module speak it. The broker
certificate names 127.0.0.1 and localhost, the only addresses the local broker binds and advertises.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed, UnsupportedSaslMechanismError
from aiokafka.protocol.metadata import MetadataRequest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from infra.errors import SandboxError
from infra.kafka_clients import (
    LOCAL_MECHANISM,
    Principal,
    local_cafile,
    principals_dir,
    security_options,
    tls_dir,
    username,
)
from infra.settings import Settings

CA_VALID_DAYS: Final = 3650
BROKER_VALID_DAYS: Final = 730
RENEW_BEFORE_DAYS: Final = 30  # re-made this long before expiry, so a running sandbox never sees one lapse
CLOCK_SKEW: Final = dt.timedelta(minutes=5)  # not-before is set this far back
BROKER_HOSTS: Final = ("localhost",)
BROKER_IPS: Final = ("127.0.0.1",)
KEY_MODE: Final = 0o600
FOLDER_MODE: Final = 0o700
CA_KEY_FILE: Final = "ca-key.pem"
BROKER_FILE: Final = "broker.pem"
PROBE_TIMEOUT_S: Final = 5.0


@dataclass(frozen=True)
class TlsFiles:
    """Where the broker's TLS material is (PEM files)."""

    ca_cert: Path
    ca_key: Path
    broker_keystore: Path


def tls_files(settings: Settings) -> TlsFiles:
    """The paths `ensure_tls` writes."""
    folder = tls_dir(settings)
    return TlsFiles(local_cafile(settings), folder / CA_KEY_FILE, folder / BROKER_FILE)


def ensure_tls(settings: Settings, now: dt.datetime | None = None) -> TlsFiles:
    """Makes the CA and the broker certificate unless good ones exist; returns their paths."""
    now = now or dt.datetime.now(dt.UTC)
    files = tls_files(settings)
    try:
        files.ca_cert.parent.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)
        ca_cert, ca_key = _load_ca(files, now)
        renewed_ca = ca_cert is None or ca_key is None
        if ca_cert is None or ca_key is None:
            ca_cert, ca_key = _make_ca(now)
            _write(files.ca_key, _key_pem(ca_key), KEY_MODE)
            _write(files.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
        if renewed_ca or not _broker_good(files.broker_keystore, ca_cert, now):
            key, cert = _make_broker(ca_cert, ca_key, now)
            chain = cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM)
            _write(files.broker_keystore, _key_pem(key) + chain, KEY_MODE)
    except OSError as error:
        raise SandboxError(
            f"the local Kafka TLS files in {files.ca_cert.parent} could not be written: {error.strerror or error}",
            "make the state folder writable by this user, or point KPSANDBOX_STATE_DIR elsewhere",
        ) from error
    return files


def _fresh(cert: x509.Certificate, now: dt.datetime) -> bool:
    """Valid now and for at least RENEW_BEFORE_DAYS more."""
    return cert.not_valid_before_utc <= now and now + dt.timedelta(days=RENEW_BEFORE_DAYS) < cert.not_valid_after_utc


def _load_ca(files: TlsFiles, now: dt.datetime) -> tuple[x509.Certificate | None, ec.EllipticCurvePrivateKey | None]:
    """The CA on disk if it is whole, fresh and its key matches; (None, None) otherwise."""
    try:
        cert = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
        key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None, None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not _fresh(cert, now):
        return None, None
    if _spki(key.public_key()) != _spki(cert.public_key()):
        return None, None
    return cert, key


def _spki(public_key: object) -> bytes:
    """A public key's DER SubjectPublicKeyInfo, to tell whether a key and a certificate belong together."""
    return public_key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _broker_good(path: Path, ca_cert: x509.Certificate, now: dt.datetime) -> bool:
    """True when the broker keystore holds a fresh certificate signed by this CA."""
    try:
        text = path.read_bytes()
        cert = x509.load_pem_x509_certificates(text)[0]
        serialization.load_pem_private_key(text, password=None)
    except (OSError, ValueError, TypeError, IndexError):
        return False
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return _fresh(cert, now)


def _make_ca(now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kpsandbox local Kafka CA")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + dt.timedelta(days=CA_VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _make_broker(
    ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, now: dt.datetime
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(host) for host in BROKER_HOSTS]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in BROKER_IPS]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kpsandbox local Kafka broker")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + dt.timedelta(days=BROKER_VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )  # client auth too: the broker is its own controller's client
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """PKCS#8, unencrypted: the one private-key form Kafka's PEM keystore reads without a password."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, mode: int) -> None:
    """Writes a private temporary file with `mode` from the start, then renames it into place."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


async def connection_problem(settings: Settings, principal: Principal) -> SandboxError | None:
    """Why a client of these settings cannot connect, as a SandboxError naming the setting to fix —
    a CA that does not sign the broker, a TLS client on a plaintext listener or the reverse, a wrong
    user or password, a mechanism the broker does not offer — or None when the cause is not one of
    those (the broker is away: the caller says so). One connection, bounded by PROBE_TIMEOUT_S.

    aiokafka's bootstrap only logs these causes and raises "unable to bootstrap"; a direct
    connection to the first bootstrap server raises them.
    """
    host, _, port = settings.bootstrap_servers.split(",")[0].strip().rpartition(":")
    options = security_options(settings, principal)
    address = f"{host}:{port}"
    try:
        await asyncio.wait_for(_connect_and_ask(host, int(port), options), PROBE_TIMEOUT_S * 2)
    except ssl.SSLCertVerificationError as error:
        cafile = settings.kafka_ssl_cafile or local_cafile(settings)
        return SandboxError(
            f"the Kafka broker at {address} has a certificate that {cafile} does not trust ({error.verify_message})",
            "point KPSANDBOX_KAFKA_SSL_CAFILE at the PEM certificate of the CA that signed the brokers "
            f"(a secured local broker's is {local_cafile(settings)})",
        )
    except ssl.SSLError as error:
        return SandboxError(
            f"no TLS handshake with Kafka at {address} ({error.reason or error})",
            "the listener may not use TLS: set KPSANDBOX_KAFKA_SECURITY_PROTOCOL to its protocol "
            "(PLAINTEXT or SASL_PLAINTEXT)",
        )
    except (SaslAuthenticationFailed, UnsupportedSaslMechanismError) as error:
        return _login_refused(settings, principal, address, error)
    except KafkaConnectionError:
        protocol = options.get("security_protocol", "PLAINTEXT")
        if protocol == "SASL_PLAINTEXT" and await _accepts_tcp(host, int(port)):
            return SandboxError(
                f"Kafka at {address} closed the connection of a SASL login sent without TLS",
                "the listener may need TLS: set KPSANDBOX_KAFKA_SECURITY_PROTOCOL=SASL_SSL "
                "(and KPSANDBOX_KAFKA_SSL_CAFILE to the CA that signed the brokers)",
            )
        if protocol.startswith("SASL_"):
            return None
        return SandboxError(
            f"Kafka at {address} closed the connection of a client without a SASL login ({protocol})",
            "the listener may need TLS and a login: set KPSANDBOX_KAFKA_SECURITY_PROTOCOL (SASL_SSL for a "
            "secured broker) and the KPSANDBOX_KAFKA_SASL_* settings",
        )
    except (TimeoutError, OSError):
        return None
    return None


async def _accepts_tcp(host: str, port: int) -> bool:
    """True when something listens there: a closed connection then means a protocol mismatch."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), PROBE_TIMEOUT_S)
    except (TimeoutError, OSError):
        return False
    writer.close()
    return True


async def _connect_and_ask(host: str, port: int, options: dict[str, Any]) -> None:
    """Connects (TLS handshake and SASL login as `options` say) and asks for metadata: a listener
    that wants a login lets a client without one say hello (ApiVersions) and closes on its first
    real request."""
    connection = await asyncio.wait_for(
        create_conn(host, port, request_timeout_ms=int(PROBE_TIMEOUT_S * 1000), **options), PROBE_TIMEOUT_S
    )
    try:
        await asyncio.wait_for(connection.send(MetadataRequest([])), PROBE_TIMEOUT_S)
    finally:
        connection.close()


def _login_refused(settings: Settings, principal: Principal, address: str, error: Exception) -> SandboxError:
    """The error for a refused SASL login; it names the user, never the password."""
    mechanism = settings.kafka_sasl_mechanism or LOCAL_MECHANISM
    if isinstance(error, UnsupportedSaslMechanismError):
        return SandboxError(
            f"Kafka at {address} does not offer the SASL mechanism {mechanism}",
            "set KPSANDBOX_KAFKA_SASL_MECHANISM to one the listener enables (the local broker: SCRAM-SHA-512)",
        )
    if settings.kafka_sasl_username is not None:
        user = settings.kafka_sasl_username
        hint = (
            "check KPSANDBOX_KAFKA_SASL_USERNAME and KPSANDBOX_KAFKA_SASL_PASSWORD (a revoked tenant's "
            "credentials no longer work: ask the operator for new ones)"
        )
    else:
        user = username(principal)
        hint = (
            f"the password in {principals_dir(settings) / principal} does not match the broker's: "
            "`kpsandbox down`, remove the state folder's kafka/data and `kpsandbox up` to make new ones"
        )
    return SandboxError(f"Kafka at {address} refused the login of {user} ({mechanism}): wrong user or password", hint)
