"""Checks of a seal certificate before it is registered (R02 create/change, R15).

A certificate is accepted only if it is for the key ON the seal's token (same
SubjectPublicKeyInfo), issued by the configured seal CA, valid now, and allowed to
sign. Each refusal says which check failed and what to do.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from seald.domain.errors import InvalidInput

MAX_CERTIFICATE_BYTES = 64 * 1024


@dataclass(frozen=True)
class CertificateFacts:
    der: bytes
    sha256: str
    subject: str
    serial_hex: str
    not_after: datetime
    public_key_sha256: str


def spki_sha256(spki_der: bytes) -> str:
    return hashlib.sha256(spki_der).hexdigest()


def check_seal_certificate(
    der: bytes, *, seal_id: str, token_spki: bytes, seal_ca_pem: bytes, now: datetime
) -> CertificateFacts:
    if not der:
        raise InvalidInput(
            "no certificate was sent; give the issued certificate", reason="missing_certificate"
        )
    if len(der) > MAX_CERTIFICATE_BYTES:
        raise InvalidInput(
            f"the certificate is {len(der)} bytes; a seal certificate is far smaller",
            reason="bad_certificate",
        )
    try:
        cert = x509.load_der_x509_certificate(der)
        cert_spki = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except (ValueError, TypeError) as ex:
        raise InvalidInput(
            "the certificate is not a DER X.509 certificate; send the certificate the CA "
            "issued for the CSR (sealctl converts PEM)",
            reason="bad_certificate",
        ) from ex
    if cert_spki != token_spki:
        raise InvalidInput(
            f"certificate/key mismatch: the certificate's public key (SHA-256 "
            f"{spki_sha256(cert_spki)[:16]}…) is not the key on the token of seal {seal_id} "
            f"(SHA-256 {spki_sha256(token_spki)[:16]}…); it was issued for another key. "
            "Have the CSR from CreateSealKey signed and import that certificate",
            reason="certificate_key_mismatch",
        )
    ca = x509.load_pem_x509_certificate(seal_ca_pem)
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as ex:
        raise InvalidInput(
            f"the certificate was not issued by the seal CA ({ca.subject.rfc4514_string()}); "
            "only certificates from [trust].seal_ca are registered",
            reason="certificate_untrusted_issuer",
        ) from ex
    if not cert.not_valid_before_utc <= now < cert.not_valid_after_utc:
        raise InvalidInput(
            f"the certificate is valid from {cert.not_valid_before_utc.isoformat()} to "
            f"{cert.not_valid_after_utc.isoformat()}, not now ({now.isoformat()}); have a "
            "current certificate issued",
            reason="certificate_not_valid_now",
        )
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not (usage.digital_signature or usage.content_commitment):
        raise InvalidInput(
            "the certificate's key usage allows neither digitalSignature nor nonRepudiation; "
            "a seal certificate must allow signing",
            reason="certificate_key_usage",
        )
    return CertificateFacts(
        der=der,
        sha256=hashlib.sha256(der).hexdigest(),
        subject=cert.subject.rfc4514_string(),
        serial_hex=format(cert.serial_number, "x"),
        not_after=cert.not_valid_after_utc,
        public_key_sha256=spki_sha256(cert_spki),
    )
