"""Seal a usage report PDF with the audit key, reproducibly (SEAL-RULES R11).

The same ledger must give the same bytes, sealed PDF included. pyHanko's defaults
put four varying things into a signature's incremental update; each is fixed here:
- the signing time (CMS signing-time attribute and the signature's /M): the time of
  the last ledger record in the report, never the wall clock (and never before the
  audit certificate's start, which a verifier would refuse);
- the second element of the trailer /ID: derived from the first, not os.urandom;
- the Info /ModDate: left as the report wrote it (the period end);
- the ECDSA nonce: RFC 6979 deterministic ECDSA with the existing P-256 audit key
  (``deterministic_signing=True`` in cryptography). It keeps one audit key and gives
  an ordinary ECDSA signature that every verifier accepts; an Ed25519 or RSA key would
  have been deterministic too but meant a second key to manage.
"""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.fields import SigSeedSubFilter
from pyhanko_certvalidator.registry import SimpleCertificateStore

from seald.domain.errors import InvalidInput
from seald.store.checkpoints import CERT_FILE, KEY_FILE

FIELD_NAME = "AuditSeal"
_HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(),
    "sha384": hashes.SHA384(),
    "sha512": hashes.SHA512(),
}


class DeterministicEcdsaSigner(signers.SimpleSigner):
    """pyHanko's SimpleSigner, signing with RFC 6979 deterministic ECDSA."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> None:
        cert = asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))
        key_info = asn1_keys.PrivateKeyInfo.load(
            private_key.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        registry: Any = SimpleCertificateStore.from_certs([cert])  # type: ignore[no-untyped-call]
        super().__init__(signing_cert=cert, signing_key=key_info, cert_registry=registry)
        self._private_key = private_key

    def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
        algorithm = _HASHES.get(digest_algorithm.lower())
        if algorithm is None:
            raise InvalidInput(f"report sealing does not support digest {digest_algorithm!r}")
        return self._private_key.sign(data, ec.ECDSA(algorithm, deterministic_signing=True))

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        return self.sign_raw(data, digest_algorithm)


class _FixedTimePdfSigner(signers.PdfSigner):
    """PdfSigner whose signing session uses a given time instead of the wall clock."""

    def __init__(self, meta: signers.PdfSignatureMetadata, signer: signers.Signer, when: datetime) -> None:
        super().__init__(meta, signer=signer)
        self._when = when

    def init_signing_session(self, pdf_out: Any, existing_fields_only: bool = False) -> Any:
        session = super().init_signing_session(pdf_out, existing_fields_only)
        session.system_time = self._when  # pyHanko has no parameter for it (0.38)
        return session


class _ReproducibleIncrementalWriter(IncrementalPdfFileWriter):
    @classmethod
    def _handle_id(cls, prev: Any) -> Any:
        id1 = bytes(prev.trailer["/ID"][0].original_bytes) if "/ID" in prev.trailer else b""
        derived = hashlib.sha256(b"seald audit seal\0" + id1).digest()
        return generic.ArrayObject(
            [generic.ByteStringObject(id1 or derived[16:]), generic.ByteStringObject(derived[:16])]
        )

    def _update_meta(self) -> None:
        pass  # keep the report's own Info (its /ModDate is the period end)


def report_signing_time(last_record_time: str, fallback: datetime, certificate: x509.Certificate) -> datetime:
    """The seal's time: the last record's time (RFC 3339), else ``fallback``, within the cert."""
    when = datetime.fromisoformat(last_record_time.replace("Z", "+00:00")) if last_record_time else fallback
    earliest = certificate.not_valid_before_utc + timedelta(seconds=1)
    return max(when.astimezone(UTC), earliest).replace(microsecond=0)


def load_audit_signer(audit_dir: Path) -> tuple[DeterministicEcdsaSigner, x509.Certificate]:
    try:
        key = serialization.load_pem_private_key((audit_dir / KEY_FILE).read_bytes(), password=None)
        certificate = x509.load_pem_x509_certificate((audit_dir / CERT_FILE).read_bytes())
    except (OSError, ValueError) as ex:
        raise InvalidInput(
            f"the audit key in {audit_dir} cannot be loaded for sealing the report "
            f"({type(ex).__name__}); check [audit] key_dir",
            reason="audit_key_unusable",
        ) from ex
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidInput(
            f"the audit key in {audit_dir} is not an EC key; reports are sealed with ECDSA",
            reason="audit_key_unusable",
        )
    return DeterministicEcdsaSigner(key, certificate), certificate


def seal_report(data: bytes, signer: DeterministicEcdsaSigner, when: datetime) -> bytes:
    """Append a PAdES signature by the audit key as an incremental update (the report
    bytes stay a prefix); the same inputs give the same bytes."""
    meta = signers.PdfSignatureMetadata(
        field_name=FIELD_NAME,
        reason="签盖记录汇总表 (seald audit key)",
        subfilter=SigSeedSubFilter.PADES,
        md_algorithm="sha256",
    )
    writer = _ReproducibleIncrementalWriter(io.BytesIO(data))
    out = _FixedTimePdfSigner(meta, signer, when).sign_pdf(writer)
    return bytes(out.getvalue())
