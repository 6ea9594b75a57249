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
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

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
) -> bytes:
    """The exact bytes an approval digest is computed over.

    ``amount`` = (canonical decimal value, currency) or None (no amount declared)."""
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
        "documents": [
            {"index": i, "name": d.name, "sha256": d.sha256, "size": d.size}
            for i, d in enumerate(documents)
        ],
    }
    if amount is not None:
        subject["amount"] = {"value": amount[0], "currency": amount[1]}
    return json.dumps(subject, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


def digest_of(subject: bytes) -> str:
    """Hex SHA-256 of a canonical approval subject."""
    return hashlib.sha256(subject).hexdigest()
