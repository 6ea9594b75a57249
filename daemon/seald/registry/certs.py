"""Checks of a seal certificate before it is registered (R02 create/change, R15).

A certificate is accepted only if it is for the key ON the seal's token (same
SubjectPublicKeyInfo), issued by the configured seal CA, valid now, and allowed to
sign. Each refusal says which check failed and what to do.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from seald.domain.errors import InvalidInput
from seald.gm.certs import load_certificate, pem_or_der, verify_certificate_signature
from seald.gm.sm2 import SM2_CURVE_OID, Sm2Error, Sm2PublicKey

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


_CURVES = {"secp256r1": "ecdsa-p256", SM2_CURVE_OID: "sm2"}


def certificate_key_algorithm(cert: asn1_x509.Certificate) -> str:
    """The seal algorithm a certificate's key is for ("rsa", "ecdsa-p256", "sm2"), or a
    description of what it is ("ec curve X", "dsa", ...) when it is none of them."""
    alg = cert["tbs_certificate"]["subject_public_key_info"]["algorithm"]
    name = alg["algorithm"].native
    if name == "rsa":
        return "rsa"
    if name == "ec":
        params = alg["parameters"]
        if params.name != "named":
            return "ec with explicit curve parameters"
        curve = params.chosen
        described = f"ec curve {curve.native} ({curve.dotted})"
        return _CURVES.get(curve.native, _CURVES.get(curve.dotted, described))
    return str(name)


def _parse(der: bytes) -> asn1_x509.Certificate:
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
        return load_certificate(der)
    except InvalidInput as ex:
        raise InvalidInput(
            "the certificate is not a DER X.509 certificate; send the certificate the CA "
            "issued for the CSR (sealctl converts PEM)",
            reason="bad_certificate",
        ) from ex


def check_seal_certificate(
    der: bytes,
    *,
    seal_id: str,
    token_spki: bytes,
    seal_ca_pem: bytes,
    now: datetime,
    algorithm: str = "rsa",
    sm2_seal_ca_pem: bytes | None = None,
) -> CertificateFacts:
    """Checks before a certificate is registered for the key on the seal's token.

    ``algorithm`` is the seal's (config ``[[seal]] algorithm``): a certificate whose key is of
    another kind (an SM2 certificate for an RSA seal, an RSA or P-256 one for an SM2 seal) is
    refused first, naming ``subjectPublicKeyInfo.algorithm``. SM2 certificates are checked
    with seald.gm (``cryptography`` cannot verify SM2) against ``[trust].sm2_seal_ca``.
    """
    parsed = _parse(der)
    found = certificate_key_algorithm(parsed)
    if found != algorithm:
        raise InvalidInput(
            f"subjectPublicKeyInfo.algorithm: the certificate's key is {found}, but seal {seal_id} is an "
            f"{algorithm} seal (its token holds an {algorithm} key); have the CA issue a certificate for "
            "the CSR from CreateSealKey",
            reason="certificate_algorithm_mismatch",
        )
    if algorithm == "sm2":
        return _check_sm2(
            der, parsed, seal_id=seal_id, token_spki=token_spki, ca_pem=sm2_seal_ca_pem, now=now
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


def _check_sm2(
    der: bytes,
    cert: asn1_x509.Certificate,
    *,
    seal_id: str,
    token_spki: bytes,
    ca_pem: bytes | None,
    now: datetime,
) -> CertificateFacts:
    """The SM2 seal certificate checks: an SM2 point on the SM2 curve, the token's key, issued
    (SM2-with-SM3) by the SM2 seal CA, valid now, allowed to sign."""
    try:
        key = Sm2PublicKey.from_certificate(cert)
    except Sm2Error as ex:
        raise InvalidInput(f"subjectPublicKeyInfo: {ex.message}", reason="sm2_wrong_key_type") from None
    token_key = Sm2PublicKey.from_spki_der(token_spki)
    if key.point != token_key.point:
        raise InvalidInput(
            f"certificate/key mismatch: the certificate's public key (SHA-256 "
            f"{spki_sha256(key.spki_der())[:16]}…) is not the SM2 key in the token of seal {seal_id} "
            f"(SHA-256 {spki_sha256(token_key.spki_der())[:16]}…); it was issued for another key. "
            "Have the CSR from CreateSealKey signed and import that certificate",
            reason="certificate_key_mismatch",
        )
    if ca_pem is None:
        raise InvalidInput(
            f"seal {seal_id} is an SM2 seal but [trust].sm2_seal_ca is not configured; add the SM2 CA "
            "certificate that issues seal certificates",
            reason="certificate_untrusted_issuer",
        )
    ca = load_certificate(pem_or_der(ca_pem), what="[trust].sm2_seal_ca")
    try:
        if cert["tbs_certificate"]["issuer"] != ca["tbs_certificate"]["subject"]:
            raise Sm2Error("issuer differs")
        verify_certificate_signature(cert, Sm2PublicKey.from_certificate(ca))
    except Sm2Error as ex:
        raise InvalidInput(
            f"the certificate was not issued by the SM2 seal CA ({ca.subject.human_friendly}): "
            f"{ex.message}; only certificates from [trust].sm2_seal_ca are registered",
            reason="certificate_untrusted_issuer",
        ) from None
    validity = cert["tbs_certificate"]["validity"]
    not_before, not_after = validity["not_before"].native, validity["not_after"].native
    if not not_before <= now < not_after:
        raise InvalidInput(
            f"the certificate is valid from {not_before.isoformat()} to {not_after.isoformat()}, not now "
            f"({now.isoformat()}); have a current certificate issued",
            reason="certificate_not_valid_now",
        )
    usage = cert.key_usage_value
    if usage is not None and not ({"digital_signature", "non_repudiation"} & set(usage.native)):
        raise InvalidInput(
            "the certificate's key usage allows neither digitalSignature nor nonRepudiation; "
            "a seal certificate must allow signing",
            reason="certificate_key_usage",
        )
    return CertificateFacts(
        der=der,
        sha256=hashlib.sha256(der).hexdigest(),
        subject=cert.subject.human_friendly,
        serial_hex=format(cert.serial_number, "x"),
        not_after=not_after,
        public_key_sha256=spki_sha256(key.spki_der()),
    )
