"""Validation of sealed PDFs with pyHanko (SEAL-RULES R14): is every signature intact,
valid, trusted against our seal CA, and does it cover the whole file? Plus, per
signature: its RFC 3161 timestamp, the revocation status from the revocation info
the document embeds (DSS; no network), and what changed after it. Document
timestamps (B-LTA) are reported as entries of kind "document_timestamp"."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from asn1crypto import pem, x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import (
    DocumentSecurityStore,
    read_certification_data,
    validate_pdf_signature,
    validate_pdf_timestamp,
)
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from . import gbt38540_pdf
from .errors import InputDocumentError, SigningError


class _SkipGbt38540Notice(logging.Filter):
    """pyHanko logs a warning with a traceback for every signature of a SubFilter it does not
    know; for /GBT38540.SES that is expected (seald verifies those itself, below), so the
    notice is dropped instead of reaching the daemon's log or sealctl's stderr."""

    def filter(self, record: logging.LogRecord) -> bool:
        return gbt38540_pdf.SUBFILTER not in record.getMessage()


logging.getLogger("pyhanko.sign.validation.pdf_embedded").addFilter(_SkipGbt38540Notice())


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
    kind: str = "signature"  # or "document_timestamp"
    timestamp_time: datetime | None = None  # RFC 3161 signature timestamp (B-T and up)
    timestamp_valid: bool = False  # that timestamp token verifies and chains to a root
    # "good" | "revoked" | "unknown" (DSS present but does not prove it) | "not checked"
    revocation: str = "not checked"
    certification: str = ""  # DocMDP of a certification signature: "no_changes", ...

    @property
    def changed_after(self) -> str:
        """What was appended after this signature, in words."""
        if self.covers_whole_document:
            return "nothing"
        return _CHANGE_WORDS.get(self.modification_level, "unknown changes")


_CHANGE_WORDS = {
    "NONE": "nothing that changes the content",
    "LTA_UPDATES": "validation data and timestamps only (long-term validation)",
    "FORM_FILLING": "further signatures or form fields",
    "ANNOTATIONS": "annotations (comments, markup)",
    "OTHER": "CONTENT CHANGES not allowed after signing",
}
_MDP_WORDS = {1: "no_changes", 2: "form_filling", 3: "annotations"}
# The DocMDP P value of each word in SignatureCheck.certification.
CERTIFICATION_P = {word: p for p, word in _MDP_WORDS.items()}


def verify_pdf(
    path: Path, trust_roots_pem: Sequence[bytes], *, seal_makers: Sequence[bytes] = ()
) -> list[SignatureCheck]:
    """Check every embedded signature; [] for an unsigned document.

    PAdES/CMS signatures through pyHanko; GB/T 38540 ones (``/SubFilter /GBT38540.SES``,
    which pyHanko skips) through seald's verifier, trusted when their seal maker's
    certificate (DER) is one of ``seal_makers`` (issue 19)."""
    context = _validation_context(trust_roots_pem)
    try:
        data = path.read_bytes()
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        embedded = list(reader.embedded_signatures)
    except OSError as ex:
        raise InputDocumentError(f"cannot read {path.name}; check the path", reason="unreadable") from ex
    except Exception as ex:
        raise InputDocumentError(
            f"the PDF cannot be parsed for validation ({type(ex).__name__})", reason="malformed"
        ) from ex
    offline = _dss_context(reader, trust_roots_pem)
    certification = _certification(reader)
    checks = []
    for sig in embedded:
        try:
            if sig.sig_object_type == "/DocTimeStamp":
                ts_status = validate_pdf_timestamp(sig, validation_context=offline or context)
                checks.append(_timestamp_check(sig.field_name, ts_status))
                continue
            status = validate_pdf_signature(
                sig, signer_validation_context=context, ts_validation_context=offline or context
            )
            revocation = "not checked"
            if offline is not None:
                revocation = _revocation(validate_pdf_signature(sig, offline, ts_validation_context=offline))
        except Exception as ex:
            raise SigningError(
                f"signature {sig.field_name!r} could not be validated ({type(ex).__name__}); "
                "the document is probably damaged",
                reason="validation_failed",
            ) from ex
        check = _check_from_status(sig.field_name, status)
        checks.append(
            dataclasses.replace(
                check,
                revocation=revocation,
                certification=certification if sig is embedded[0] else "",
            )
        )
    if gbt38540_pdf.SUBFILTER.encode() in data:
        roots_der = [r.dump() for r in _roots(trust_roots_pem)]
        checks += [_gbt38540_check(r, seal_makers, roots_der) for r in gbt38540_pdf.check_fields(data)]
    return checks


def _gbt38540_check(
    result: gbt38540_pdf.Gbt38540FieldResult, seal_makers: Sequence[bytes], roots_der: Sequence[bytes]
) -> SignatureCheck:
    """A GB/T 38540 seal signature in the same report shape as a PAdES one; its timeStamp
    (B-T) is checked against the same roots as PAdES timestamps (TSA signature and chain)."""
    report = result.report
    signer_sha = hashlib.sha256(result.signer_cert_der).hexdigest() if result.signer_cert_der else ""
    if report is None:
        return SignatureCheck(
            field_name=result.field_name,
            signer_subject="",
            signer_certificate_sha256=signer_sha,
            signing_time=None,
            intact=False,
            valid=False,
            trusted=False,
            covers_whole_document=result.covers_whole_document,
            modification_level="UNKNOWN",
            summary=f"GB/T 38540 seal signature NOT valid: {result.problem} ({result.reason})",
            kind="gbt38540",
        )
    ts_problem = ""
    if report.timestamp_time is not None:
        ts_problem = gbt38540_pdf.timestamp_problem_blocking(result.ses_signature, roots_der)
    ts_note = ""
    if report.timestamp_time is not None:
        ts_note = f"; timestamp {report.timestamp_time.isoformat()} " + (
            f"NOT trusted: {ts_problem}" if ts_problem else "trusted"
        )
    return SignatureCheck(
        field_name=result.field_name,
        signer_subject=report.signer_subject,
        signer_certificate_sha256=signer_sha,
        signing_time=report.time_info,
        intact=True,
        valid=True,
        trusted=report.seal.maker_sha256 in {hashlib.sha256(m).hexdigest() for m in seal_makers},
        covers_whole_document=result.covers_whole_document,
        modification_level="NONE" if result.covers_whole_document else "UNKNOWN",
        summary=(
            f"GB/T 38540 seal signature valid ({', '.join(report.checks)}); seal {report.seal.name} "
            f"(esID {report.seal.es_id}), maker {report.seal.maker_subject}{ts_note}"
        ),
        kind="gbt38540",
        timestamp_time=report.timestamp_time,
        timestamp_valid=report.timestamp_time is not None and not ts_problem,
    )


def _dss_context(reader: PdfFileReader, trust_roots_pem: Sequence[bytes]) -> Any:
    """Offline, hard-fail context from the document's DSS; None without a DSS."""
    if "/DSS" not in reader.root:
        return None
    try:
        dss = DocumentSecurityStore.read_dss(reader)
        return dss.as_validation_context(
            {
                "trust_roots": _roots(trust_roots_pem),
                "allow_fetching": False,
                "revocation_mode": "hard-fail",
            }
        )
    except Exception as ex:
        raise InputDocumentError(
            f"the document's validation data (DSS) is unreadable ({type(ex).__name__})", reason="malformed"
        ) from ex


def _revocation(status: Any) -> str:
    if status.revoked:
        return "revoked"
    return "good" if status.trusted else "unknown"


def _certification(reader: PdfFileReader) -> str:
    try:
        info = read_certification_data(reader)
    except Exception:
        return ""
    if info is None:
        return ""
    return _MDP_WORDS.get(int(info.permission.value), str(info.permission.value))


def _timestamp_check(field_name: str, status: Any) -> SignatureCheck:
    cert = status.signing_cert
    level = status.modification_level
    return SignatureCheck(
        field_name=field_name,
        signer_subject=cert.subject.human_friendly if cert is not None else "",
        signer_certificate_sha256=hashlib.sha256(cert.dump()).hexdigest() if cert else "",
        signing_time=status.timestamp,
        intact=bool(status.intact),
        valid=bool(status.valid),
        trusted=bool(status.trusted),
        covers_whole_document=status.coverage == SignatureCoverageLevel.ENTIRE_FILE,
        modification_level=level.name if level is not None else "UNKNOWN",
        summary=str(status.summary()),
        kind="document_timestamp",
        timestamp_time=status.timestamp,
        timestamp_valid=bool(status.valid and status.trusted),
    )


def _validation_context(trust_roots_pem: Sequence[bytes]) -> Any:
    # No network on the seal host: validate against the given roots only.
    return ValidationContext(trust_roots=_roots(trust_roots_pem), allow_fetching=False)


def _roots(trust_roots_pem: Sequence[bytes]) -> list[x509.Certificate]:
    roots = []
    for blob in trust_roots_pem:
        try:
            der = pem.unarmor(blob)[2] if pem.detect(blob) else blob
            roots.append(x509.Certificate.load(der))
        except Exception as ex:
            raise SigningError(
                "a trust root is not a PEM/DER certificate; fix the seal CA file", reason="bad_trust_root"
            ) from ex
    return roots


def _check_from_status(field_name: str, status: Any) -> SignatureCheck:
    cert = status.signing_cert
    level = status.modification_level
    ts = status.timestamp_validity
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
        timestamp_time=ts.timestamp if ts is not None else None,
        timestamp_valid=bool(ts is not None and ts.valid and ts.trusted),
    )
