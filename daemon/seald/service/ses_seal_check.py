"""Reading a seal's stored GB/T 38540 ``SES_Seal`` (issue 19): its face fields, and whether
the signer may embed it now. The registry (registry/ses_seal.py) makes and stores it; the
signer only reads it, and refuses with a reason naming the field when it is missing,
stale (for another certificate), destroyed, expired or not yet valid.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from seald.domain.errors import PreconditionFailed
from seald.gm import ses
from seald.store.ses_seals import StoredSesSeal


@dataclass(frozen=True)
class Face:
    """What the maker puts into a seal and what, changed, needs a new SES_Seal."""

    name: str
    holder_der: bytes
    valid_start: datetime
    valid_end: datetime
    picture_sha256: str


def stored_face(der: bytes) -> Face:
    """The face fields of a stored SES_Seal."""
    seal = ses.parse_seal(der)
    info = seal["e_seal_info"]
    prop = info["property"]
    holders = ses.holder_certificates(seal)
    return Face(
        name=str(prop["name"].native),
        holder_der=holders[0] if holders else b"",
        valid_start=prop["valid_start"].native,
        valid_end=prop["valid_end"].native,
        picture_sha256=hashlib.sha256(bytes(info["picture"]["data"].native)).hexdigest(),
    )


def check_usable(
    stored: StoredSesSeal | None,
    *,
    seal_id: str,
    holder_der: bytes,
    now: datetime,
    picture_sha256: str = "",
) -> bytes:
    """The stored SES_Seal the signer may embed now, or a refusal naming the field.

    ``picture_sha256``: the SHA-256 of the face the signer will draw; an SES_Seal whose
    picture differs (a new impression the maker has not signed yet) is stale: the
    visible seal and the signed seal structure must show the same face."""
    if stored is None:
        raise PreconditionFailed(
            f"seal {seal_id} has no SES_Seal in the registry; it is made when the certificate is imported "
            "(or at start) by the seal maker - check [seal_maker] and the maker's token, then restart or "
            "re-import",
            reason="ses_seal_missing",
        )
    if stored.destroyed_at:
        raise PreconditionFailed(f"seal {seal_id}'s SES_Seal was destroyed", reason="seal_destroyed")
    face = stored_face(stored.der)
    if face.holder_der != holder_der:
        raise PreconditionFailed(
            f"seal {seal_id}'s stored SES_Seal (property.certList) is for another certificate than the "
            "registered one; the seal must be remade",
            reason="ses_seal_stale",
        )
    if picture_sha256 and face.picture_sha256 != picture_sha256:
        raise PreconditionFailed(
            f"seal {seal_id}'s stored SES_Seal (eSealInfo.picture) shows another face than the seal's "
            "registered impression; the seal maker must remake it (restart or reload seald with the "
            "maker's token present)",
            reason="ses_seal_stale",
        )
    if now < face.valid_start:
        raise PreconditionFailed(
            f"seal {seal_id}'s SES_Seal is not valid yet: SES_Seal.eSealInfo.property.validStart is "
            f"{face.valid_start.isoformat()}, now is {now.isoformat()}",
            reason="ses_seal_not_yet_valid",
        )
    if now > face.valid_end:
        raise PreconditionFailed(
            f"seal {seal_id}'s SES_Seal has expired: SES_Seal.eSealInfo.property.validEnd was "
            f"{face.valid_end.isoformat()}, now is {now.isoformat()}; have the seal remade",
            reason="ses_seal_expired",
        )
    return stored.der
