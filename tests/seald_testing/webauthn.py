"""Helpers for the WebAuthn tests (issue 18) against the REAL seald.

The fixtures have one admin and no relay; WebAuthn needs a second admin (credential
approval is a two-person rule) and sealweb's relay identity. Their client certificates
are issued here by the fixtures' own TLS CA and listed in the test's seald.toml.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fixture_layout import SealFixtures

from sealclient.client import ClientIdentity, SealClient
from seald_testing.config import ConfigEdit, DaemonConfig

RP_ID = "localhost"


@dataclass(frozen=True)
class ExtraClient:
    name: str
    roles: tuple[str, ...]
    cert: Path
    key: Path
    fingerprint: str


EXTRA = (("sun.li", "孙丽", ("admin",)), ("sealweb", "Web console", ("relay",)))


def issue_clients(fixtures: SealFixtures) -> dict[str, ExtraClient]:
    ca_cert = x509.load_pem_x509_certificate(fixtures.tls_ca.read_bytes())
    ca_key = serialization.load_pem_private_key(fixtures.tls_ca_key.read_bytes(), None)
    now = dt.datetime.now(dt.UTC)
    made = {}
    for name, _display, roles in EXTRA:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.SubjectAlternativeName([x509.RFC822Name(f"{name}@example.test")]), critical=False
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
        )
        cert_path = fixtures.root / f"{name}.pem"
        key_path = fixtures.root / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        key_path.chmod(0o600)
        fingerprint = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
        made[name] = ExtraClient(name, roles, cert_path, key_path, fingerprint)
    return made


def config_edit(extra: dict[str, ExtraClient], origin: str, rp_id: str = RP_ID) -> ConfigEdit:
    """The second admin and the relay as principals, and the [webauthn] table."""

    def edit(config: DaemonConfig) -> None:
        for name, display, roles in EXTRA:
            config.add_principal(
                name,
                display_name=display,
                roles=list(roles),
                seals=None if "relay" in roles else ["official", "contract"],
                certificates=[extra[name].fingerprint],
            )
        config.set("webauthn", origin=origin, rp_id=rp_id, rp_name="盖章机")

    return edit


def client_for(target: str, fixtures: SealFixtures, who: ExtraClient) -> SealClient:
    return SealClient(
        ClientIdentity(
            target=target,
            ca_pem=fixtures.tls_ca.read_bytes(),
            cert_pem=who.cert.read_bytes(),
            key_pem=who.key.read_bytes(),
        ),
        timeout_s=30,
    )
