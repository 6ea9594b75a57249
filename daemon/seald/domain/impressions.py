"""The registered seal impression (印模) as a two-admin registry change (issue 16, R02).

An admin proposes an impression (checked image + the seal code it was registered with);
a second, different admin approves it by naming its SHA-256, within ``PROPOSAL_TTL``.
Approved, it becomes the seal's face: its SHA-256 is in the seal's history, in the audit
record and in every approval digest of the seal, so the change voids open approvals
(``lifecycle.rebind_impression``). Pure: the shell (registry/admin.py) stores and audits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime

from seald.domain.errors import AlreadyDone, InvalidInput, NotFound, PermissionDenied, PreconditionFailed
from seald.domain.model import Principal, SealStatus
from seald.domain.seals import MAX_COMMENT, PROPOSAL_TTL, require_admin
from seald.domain.text_policy import check_text

# A seal code (印章编码): the public-security registration number is 13 digits; other
# registries use letters too. Letters, digits and - only, up to 32.
SEAL_CODE = re.compile(r"^[0-9A-Za-z-]{1,32}$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Impression:
    """One imported impression (proposed, or approved when ``approved_by`` is set)."""

    impression_id: str
    seal_id: str
    sha256: str
    media_type: str
    seal_code: str
    width_mm: float
    height_mm: float
    dpi: float  # 0 for a vector (SVG)
    proposed_by: str
    proposed_at: datetime
    comment: str = ""
    approved_by: str = ""
    approved_at: datetime | None = None


def check_seal_code(code: str, configured: str) -> str:
    """The seal code given with the impression; it must be the seal's configured code."""
    code = code.strip()
    if not SEAL_CODE.match(code):
        raise InvalidInput(
            "give the seal code (印章编码) the impression was registered with: letters, digits "
            "or -, 1 to 32 characters (--code)",
            reason="bad_seal_code",
        )
    if configured and code != configured:
        raise InvalidInput(
            f"seal code {code} is not this seal's registered code {configured}; check that the "
            "impression belongs to this seal",
            reason="impression_code_mismatch",
        )
    return code


def check_may_change(seal_id: str, status: SealStatus) -> None:
    """A lost or destroyed seal never gets a new face (R02)."""
    if status in (SealStatus.LOST, SealStatus.DESTROYED):
        raise PreconditionFailed(
            f"seal {seal_id} is {status.value}; its impression cannot change any more",
            reason=f"seal_{status.value}",
        )


def propose(
    *,
    impression_id: str,
    seal_id: str,
    status: SealStatus,
    admin: Principal,
    sha256: str,
    media_type: str,
    seal_code: str,
    configured_code: str,
    width_mm: float,
    height_mm: float,
    dpi: float,
    current_sha256: str,
    comment: str,
    now: datetime,
) -> Impression:
    """The first admin's import: an open proposal (the image already passed its checks)."""
    require_admin(admin, seal_id)
    check_text("comment", comment, limit=MAX_COMMENT)
    check_may_change(seal_id, status)
    code = check_seal_code(seal_code, configured_code)
    if sha256 == current_sha256:
        raise AlreadyDone(
            f"that impression ({sha256[:16]}…) is already seal {seal_id}'s registered impression",
            reason="impression_unchanged",
        )
    return Impression(
        impression_id=impression_id,
        seal_id=seal_id,
        sha256=sha256,
        media_type=media_type,
        seal_code=code,
        width_mm=width_mm,
        height_mm=height_mm,
        dpi=dpi,
        proposed_by=admin.name,
        proposed_at=now,
        comment=comment,
    )


def approve(
    proposal: Impression | None,
    *,
    impression_id: str,
    seal_id: str,
    status: SealStatus,
    admin: Principal,
    sha256: str,
    current_sha256: str,
    now: datetime,
) -> Impression:
    """The second admin's approval: a different admin, the same SHA-256, in time."""
    require_admin(admin, seal_id)
    if proposal is None or proposal.seal_id != seal_id:
        raise NotFound(
            f"no impression proposal {impression_id} for seal {seal_id}; list the open one with "
            f"sealctl seal impression show {seal_id}",
            reason="impression_proposal_unknown",
        )
    if proposal.approved_by:
        raise AlreadyDone(
            f"impression proposal {impression_id} was already approved by {proposal.approved_by}",
            reason="proposal_done",
        )
    check_may_change(seal_id, status)
    if not SHA256_HEX.match(sha256) or sha256 != proposal.sha256:
        raise InvalidInput(
            f"impression proposal {impression_id} is for SHA-256 {proposal.sha256}, not "
            f"{sha256 or '(none given)'}; look at the proposed impression (sealctl seal "
            "impression show --proposed) and approve the SHA-256 you checked",
            reason="impression_sha256_mismatch",
        )
    if now - proposal.proposed_at > PROPOSAL_TTL:
        raise PreconditionFailed(
            f"impression proposal {impression_id} expired (older than {PROPOSAL_TTL}); import it again",
            reason="proposal_expired",
        )
    if proposal.proposed_by == admin.name:
        raise PermissionDenied(
            f"you proposed {impression_id}; a second, different administrator must approve it "
            "(two-person rule, R02)",
            reason="same_admin",
        )
    if proposal.sha256 == current_sha256:
        raise AlreadyDone(
            f"that impression is already seal {seal_id}'s registered impression",
            reason="impression_unchanged",
        )
    return replace(proposal, approved_by=admin.name, approved_at=now)
