"""Validation of sealed PDFs with pyHanko (SEAL-RULES R14): is every signature intact,
valid, trusted against our seal CA, and does it cover the whole file?"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from asn1crypto import pem, x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from .errors import InputDocumentError, SigningError


@dataclass(frozen=True)
class SignatureCheck:
    field_name: str
    signer_subject: str
    signer_certificate_sha256: str
    signing_time: datetime | None
    intact: bool  # the signed byte ranges hash to the signed digest
    valid: bool  # ... and the cryptographic signature over them verifies
    trusted: bool  # ... and the signer chains to one of the given roots
    covers_whole_document: bool  # nothing was appended after this signature
    modification_level: str  # pyHanko ModificationLevel name, e.g. "NONE", "FORM_FILLING"
    summary: str


def verify_pdf(path: Path, trust_roots_pem: Sequence[bytes]) -> list[SignatureCheck]:
    """Check every embedded signature; [] for an unsigned document."""
    context = _validation_context(trust_roots_pem)
    try:
        data = path.read_bytes()
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        embedded = list(reader.embedded_signatures)
    except OSError as ex:
        raise InputDocumentError("unreadable", f"cannot read {path.name}; check the path") from ex
    except Exception as ex:
        raise InputDocumentError(
            "malformed", f"the PDF cannot be parsed for validation ({type(ex).__name__})"
        ) from ex
    checks = []
    for sig in embedded:
        try:
            status = validate_pdf_signature(sig, signer_validation_context=context)
        except Exception as ex:
            raise SigningError(
                "validation_failed",
                f"signature {sig.field_name!r} could not be validated ({type(ex).__name__}); "
                "the document is probably damaged",
            ) from ex
        checks.append(_check_from_status(sig.field_name, status))
    return checks


def _validation_context(trust_roots_pem: Sequence[bytes]) -> Any:
    roots = []
    for blob in trust_roots_pem:
        try:
            der = pem.unarmor(blob)[2] if pem.detect(blob) else blob
            roots.append(x509.Certificate.load(der))
        except Exception as ex:
            raise SigningError(
                "bad_trust_root", "a trust root is not a PEM/DER certificate; fix the seal CA file"
            ) from ex
    # No network on the seal host: validate against the given roots only.
    return ValidationContext(trust_roots=roots, allow_fetching=False)


def _check_from_status(field_name: str, status: Any) -> SignatureCheck:
    cert = status.signing_cert
    level = status.modification_level
    return SignatureCheck(
        field_name=field_name,
        signer_subject=cert.subject.human_friendly if cert is not None else "",
        signer_certificate_sha256=hashlib.sha256(cert.dump()).hexdigest() if cert else "",
        signing_time=status.signer_reported_dt,
        intact=bool(status.intact),
        valid=bool(status.valid),
        trusted=bool(status.trusted),
        covers_whole_document=status.coverage == SignatureCoverageLevel.ENTIRE_FILE,
        modification_level=level.name if level is not None else "UNKNOWN",
        summary=str(status.summary()),
    )
