"""Canonical approval digest (SEAL-RULES R06).

An approval is bound to everything that will be signed. Both the daemon and the
client compute the digest from the same canonical encoding: JSON with sorted
keys, no insignificant white space, UTF-8, millimetres as integer hundredths so
that no float formatting differs between languages. Field values are JSON
strings, so no delimiter or newline in a value can forge another field.

Issue 17: a request may declare an amount with a currency. It is in the subject as
``"amount": {"currency": "CNY", "value": "120000.5"}`` (value: decimal digits, no
exponent, no trailing zeros) only when declared, so the digest of a request without
an amount is byte-for-byte what it was before; the version string is unchanged.

Issue 16 extends the subject the same way, each key present only when used, so every
digest of an older request is unchanged:

- ``"seal_impression_sha256"``: the SHA-256 of the seal's registered impression (印模),
  when the seal has one. A new impression is a new face of the seal (R02): it changes
  the digest, so open approvals no longer match.
- ``"marks"``: a sealing job's ordered marks (seald.domain.marks.canonical_mark) and
  ``"seals"``: every seal of the job in signing order with its certificate and
  impression hashes. A job's subject keeps ``"placement"`` for its first mark's seal
  only as the legacy field's value (see lifecycle) and is otherwise described by these.
- a document entry's ``"marks"``: that document's own marks (a batch manifest), present
  only where the document does not use the request's marks.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from .marks import Mark, canonical_mark

DIGEST_VERSION = "sealapi.v1/approval-digest/1"


@dataclass(frozen=True)
class DigestPlacement:
    page: int
    x_mm: float
    y_mm: float
    size_mm: float
    anchor_text: str
    cross_page: bool


@dataclass(frozen=True)
class DigestDocument:
    name: str
    sha256: str
    size: int
    # A batch manifest's own marks for this document; None = the request's marks.
    marks: tuple[Mark, ...] | None = None


@dataclass(frozen=True)
class DigestSeal:
    """One seal of a sealing job as its approvers approve it (issue 16)."""

    seal_id: str
    certificate_sha256: str
    impression_sha256: str = ""


def _hundredths(value_mm: float) -> int:
    return round(value_mm * 100)


def canonical_approval_subject(
    *,
    request_id: str,
    seal_id: str,
    seal_certificate_sha256: str,
    requester: str,
    reason: str,
    category: str,
    placement: DigestPlacement,
    documents: Sequence[DigestDocument],
    amount: tuple[str, str] | None = None,
    seal_impression_sha256: str = "",
    marks: Sequence[Mark] | None = None,
    seals: Sequence[DigestSeal] = (),
) -> bytes:
    """The exact bytes an approval digest is computed over.

    ``amount`` = (canonical decimal value, currency) or None (no amount declared).
    ``marks``/``seals``: a sealing job's marks and seals (issue 16), None/() otherwise."""
    subject: dict[str, object] = {
        "version": DIGEST_VERSION,
        "request_id": request_id,
        "seal_id": seal_id,
        "seal_certificate_sha256": seal_certificate_sha256,
        "requester": requester,
        "reason": reason,
        "category": category,
        "placement": {
            "page": placement.page,
            "x_hundredth_mm": _hundredths(placement.x_mm),
            "y_hundredth_mm": _hundredths(placement.y_mm),
            "size_hundredth_mm": _hundredths(placement.size_mm),
            "anchor_text": placement.anchor_text,
            "cross_page": placement.cross_page,
        },
        "documents": [_canonical_document(i, d) for i, d in enumerate(documents)],
    }
    if amount is not None:
        subject["amount"] = {"value": amount[0], "currency": amount[1]}
    if seal_impression_sha256:
        subject["seal_impression_sha256"] = seal_impression_sha256
    if marks is not None:
        subject["marks"] = [canonical_mark(m) for m in marks]
        subject["seals"] = [
            {
                "seal_id": s.seal_id,
                "certificate_sha256": s.certificate_sha256,
                "impression_sha256": s.impression_sha256,
            }
            for s in seals
        ]
    return json.dumps(subject, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def _canonical_document(index: int, doc: DigestDocument) -> dict[str, object]:
    out: dict[str, object] = {"index": index, "name": doc.name, "sha256": doc.sha256, "size": doc.size}
    if doc.marks is not None:
        out["marks"] = [canonical_mark(m) for m in doc.marks]
    return out


def digest_of(subject: bytes) -> str:
    """Hex SHA-256 of a canonical approval subject."""
    return hashlib.sha256(subject).hexdigest()
