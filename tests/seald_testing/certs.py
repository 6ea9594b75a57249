"""Client certificates issued by the fixtures' TLS CA, for principals a test adds."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fixture_layout import SealFixtures

SECOND_ADMIN = "zhou.qiang"  # resume and destroy need two admins (R02)


def issue_client_cert(fx: SealFixtures, name: str, out: Path) -> tuple[Path, Path, str]:
    ca_key = serialization.load_pem_private_key(fx.tls_ca_key.read_bytes(), password=None)
    ca = x509.load_pem_x509_certificate(fx.tls_ca.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(f"{name}@huaxia.example")]), False)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    cert_path, key_path = out / f"{name}.pem", out / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    fp = cert.fingerprint(hashes.SHA256()).hex()
    return cert_path, key_path, fp
