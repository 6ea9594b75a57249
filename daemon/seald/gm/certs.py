"""SM2-with-SM3 certificates and CSRs, built with asn1crypto (``cryptography`` cannot sign SM2).

The signer is a callable ``message -> DER SM2 signature`` so the same code signs with a
software key (a test CA, the seal maker's key in tools) or a key on a token (a seal's CSR).
OpenSSL's ``x509 -verify``/``req -verify`` check what these functions make (tests).
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable

from asn1crypto import csr, x509

from seald.gm.sm2 import SM2_WITH_SM3_OID, Sm2Error, Sm2PublicKey

Signer = Callable[[bytes], bytes]


def _sm2_sm3_algorithm() -> dict[str, object]:
    return {"algorithm": SM2_WITH_SM3_OID}


def build_certificate(
    *,
    subject: x509.Name,
    issuer: x509.Name,
    public_key: Sm2PublicKey,
    sign: Signer,
    not_before: dt.datetime,
    not_after: dt.datetime,
    ca: bool = False,
    serial: int | None = None,
) -> x509.Certificate:
    """An X.509 v3 certificate for an SM2 key, signed SM2-with-SM3 by ``sign``."""
    if ca:
        usage = {"key_cert_sign", "crl_sign", "digital_signature"}
    else:
        usage = {"digital_signature", "non_repudiation"}
    extensions = [
        {"extn_id": "basic_constraints", "critical": True, "extn_value": {"ca": ca}},
        {"extn_id": "key_usage", "critical": True, "extn_value": usage},
    ]
    tbs = x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": serial if serial is not None else secrets.randbits(63),
            "signature": _sm2_sm3_algorithm(),
            "issuer": issuer,
            "validity": {
                "not_before": x509.Time(name="utc_time", value=not_before),
                "not_after": x509.Time(name="utc_time", value=not_after),
            },
            "subject": subject,
            "subject_public_key_info": public_key.spki(),
            "extensions": extensions,
        }
    )
    signature = sign(tbs.dump())
    return x509.Certificate(
        {
            "tbs_certificate": tbs,
            "signature_algorithm": _sm2_sm3_algorithm(),
            "signature_value": signature,
        }
    )


def build_csr(*, subject: x509.Name, public_key: Sm2PublicKey, sign: Signer) -> csr.CertificationRequest:
    """A PKCS#10 request for an SM2 key (the key proves possession by signing it)."""
    info = csr.CertificationRequestInfo(
        {
            "version": "v1",
            "subject": subject,
            "subject_pk_info": public_key.spki(),
            "attributes": [],
        }
    )
    return csr.CertificationRequest(
        {
            "certification_request_info": info,
            "signature_algorithm": _sm2_sm3_algorithm(),
            "signature": sign(info.dump()),
        }
    )


def pem_or_der(data: bytes) -> bytes:
    """DER of a certificate given as PEM or DER."""
    from asn1crypto import pem  # noqa: PLC0415

    if pem.detect(data):
        _, _, der = pem.unarmor(data)
        return bytes(der)
    return data


def load_certificate(der: bytes, *, what: str = "certificate") -> x509.Certificate:
    """Parse a DER certificate completely, or refuse naming ``what``."""
    try:
        cert = x509.Certificate.load(der, strict=True)
        cert.native  # noqa: B018 - force a full parse so truncation fails here
    except (ValueError, TypeError) as exc:
        raise Sm2Error(f"{what} does not decode as an X.509 certificate: {exc}") from None
    return cert


def check_sm2_certificate(cert: x509.Certificate, *, what: str = "certificate") -> Sm2PublicKey:
    """The certificate's SM2 key; refuses an RSA/P-256 key or an SM2 key under another signature OID."""
    try:
        key = Sm2PublicKey.from_certificate(cert)
    except Sm2Error as exc:
        raise Sm2Error(f"{what}: {exc.message}", reason=exc.reason) from None
    return key


def verify_certificate_signature(cert: x509.Certificate, issuer_key: Sm2PublicKey) -> None:
    """The issuer's SM2-with-SM3 signature over the TBS part. Raises Sm2Error."""
    alg = cert["signature_algorithm"]["algorithm"].dotted
    if alg != SM2_WITH_SM3_OID:
        raise Sm2Error(f"certificate signatureAlgorithm is {alg}, not SM2-with-SM3 ({SM2_WITH_SM3_OID})")
    issuer_key.verify(bytes(cert["signature_value"].native), cert["tbs_certificate"].dump())


def name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs: dict[str, str] = {"country_name": "CN", "common_name": common_name}
    if organization:
        attrs["organization_name"] = organization
    return x509.Name.build(attrs, use_printable=False)


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


__all__ = [
    "Signer",
    "build_certificate",
    "build_csr",
    "check_sm2_certificate",
    "load_certificate",
    "name",
    "now_utc",
    "verify_certificate_signature",
]
