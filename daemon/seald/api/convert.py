"""Protobuf <-> domain conversions. No rules here, only shapes."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from sealapi.v1 import common_pb2, requests_pb2, seals_pb2, tokens_pb2
from seald.config import SealConfig
from seald.domain.chains import Money, Standing, parse_money
from seald.domain.delegation import Delegation
from seald.domain.errors import InvalidInput
from seald.domain.impressions import Impression
from seald.domain.lifecycle import facts_of
from seald.domain.marks import CrossPage, Mark, PageSet, PageSetKind
from seald.domain.model import Placement, RequestState, Role, SealRequest, SealStatus, SealType
from seald.domain.policy import AnyPolicy, approver_groups_for
from seald.domain.seals import SealState
from seald.domain.text_policy import (
    MAX_CATEGORY,
    MAX_LABEL,
    MAX_TEXT,
    check_document_name,
    check_text,
)
from seald.tokens.manager import TokenState

STATE_TO_PB = {
    RequestState.PENDING: requests_pb2.REQUEST_STATE_PENDING,
    RequestState.APPROVED: requests_pb2.REQUEST_STATE_APPROVED,
    RequestState.SIGNING: requests_pb2.REQUEST_STATE_SIGNING,
    RequestState.SIGNED: requests_pb2.REQUEST_STATE_SIGNED,
    RequestState.REJECTED: requests_pb2.REQUEST_STATE_REJECTED,
    RequestState.CANCELLED: requests_pb2.REQUEST_STATE_CANCELLED,
    RequestState.EXPIRED: requests_pb2.REQUEST_STATE_EXPIRED,
    RequestState.FAILED: requests_pb2.REQUEST_STATE_FAILED,
}
PB_TO_STATE = {v: k for k, v in STATE_TO_PB.items()}

SEAL_TYPE_TO_PB = {
    SealType.OFFICIAL: common_pb2.SEAL_TYPE_OFFICIAL,
    SealType.LEGAL_REPRESENTATIVE: common_pb2.SEAL_TYPE_LEGAL_REPRESENTATIVE,
    SealType.CONTRACT: common_pb2.SEAL_TYPE_CONTRACT,
    SealType.FINANCE: common_pb2.SEAL_TYPE_FINANCE,
    SealType.PERSONAL: common_pb2.SEAL_TYPE_PERSONAL,
}
SEAL_STATUS_TO_PB = {
    SealStatus.ACTIVE: common_pb2.SEAL_STATUS_ACTIVE,
    SealStatus.SUSPENDED: common_pb2.SEAL_STATUS_SUSPENDED,
    SealStatus.LOST: common_pb2.SEAL_STATUS_LOST,
    SealStatus.DESTROYED: common_pb2.SEAL_STATUS_DESTROYED,
    SealStatus.PENDING: common_pb2.SEAL_STATUS_PENDING,
}
ROLE_TO_PB = {
    Role.REQUESTER: common_pb2.ROLE_REQUESTER,
    Role.APPROVER: common_pb2.ROLE_APPROVER,
    Role.CUSTODIAN: common_pb2.ROLE_CUSTODIAN,
    Role.ADMIN: common_pb2.ROLE_ADMIN,
    Role.AUDITOR: common_pb2.ROLE_AUDITOR,
    Role.RELAY: common_pb2.ROLE_RELAY,
}


def timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value.astimezone(UTC))
    return ts


# -- incoming text: every human-readable field passes the one text policy here ------


def text_in(
    field: str, value: str, *, limit: int = MAX_TEXT, required: bool = False, where: str = ""
) -> str:
    """A client's human-readable field, refused (INVALID_ARGUMENT naming it, and ``where``
    it is, e.g. which mark) unless it meets `seald.domain.text_policy`."""
    return check_text(field, value, limit=limit, required=required, where=where)


def document_name_in(value: str) -> str:
    """A document's name: a base name only (no path), under the text policy."""
    return check_document_name(value)


def submit_header_in(header: requests_pb2.SubmitRequestHeader) -> None:
    """The text of a SubmitRequest header, checked before any document is uploaded."""
    text_in("reason", header.reason, required=True)
    text_in("category", header.category, limit=MAX_CATEGORY, required=True)
    text_in("client_request_key", header.client_request_key, limit=MAX_LABEL)
    text_in("anchor_text", header.placement.anchor_text, limit=MAX_LABEL)
    for i, mark in enumerate(header.marks):
        text_in("anchor_text", mark.anchor_text, limit=MAX_LABEL, where=f"marks[{i}]")


def marks_from_pb(marks: Sequence[common_pb2.Mark], *, where: str = "") -> tuple[Mark, ...]:
    """Issue 16: a job's marks; a bad page set is refused naming the mark (and where)."""
    out: list[Mark] = []
    for i, pb in enumerate(marks):
        text_in("seal_id", pb.seal_id, limit=MAX_LABEL, required=True, where=f"{where}mark {i + 1}")
        label = f"{where}mark {i + 1} (seal {pb.seal_id})"
        text_in("anchor_text", pb.anchor_text, limit=MAX_LABEL, where=label)
        cross = None
        if pb.HasField("cross_page"):
            cross = CrossPage(
                PageSet.parse(pb.cross_page.pages or "all", what=f"{label} cross_page.pages"),
                pb.cross_page.group_size,
            )
        out.append(
            Mark(
                seal_id=pb.seal_id,
                pages=PageSet(PageSetKind.ALL)
                if cross is not None and not pb.pages
                else PageSet.parse(pb.pages, what=f"{label} pages"),
                x_mm=pb.x_mm,
                y_mm=pb.y_mm,
                size_mm=pb.size_mm,
                anchor_text=pb.anchor_text,
                anchor_max_matches=pb.anchor_max_matches or 1,
                cross_page=cross,
            )
        )
    return tuple(out)


def mark_to_pb(mark: Mark) -> common_pb2.Mark:
    pb = common_pb2.Mark(
        seal_id=mark.seal_id,
        pages=mark.pages.text(),
        x_mm=mark.x_mm,
        y_mm=mark.y_mm,
        size_mm=mark.size_mm,
        anchor_text=mark.anchor_text,
        anchor_max_matches=mark.anchor_max_matches,
    )
    if mark.cross_page is not None:
        pb.cross_page.CopyFrom(
            common_pb2.CrossPage(pages=mark.cross_page.pages.text(), group_size=mark.cross_page.group_size)
        )
    return pb


def placement_from_pb(pb: common_pb2.Placement, default_size_mm: float) -> Placement:
    return Placement(
        page=pb.page,
        x_mm=pb.x_mm,
        y_mm=pb.y_mm,
        size_mm=pb.size_mm or default_size_mm,
        anchor_text=pb.anchor_text,
        cross_page=pb.cross_page,
    )


def placement_to_pb(placement: Placement) -> common_pb2.Placement:
    return common_pb2.Placement(
        page=placement.page,
        x_mm=placement.x_mm,
        y_mm=placement.y_mm,
        size_mm=placement.size_mm,
        anchor_text=placement.anchor_text,
        cross_page=placement.cross_page,
    )


def request_to_pb(request: SealRequest, policy: AnyPolicy | None = None) -> requests_pb2.SealRequest:
    """``policy``: the seal's policy now, to show where the request stands in its chain."""
    pb = requests_pb2.SealRequest(
        request_id=request.request_id,
        seal_id=request.seal_id,
        requester=request.requester,
        reason=request.reason,
        category=request.category,
        placement=placement_to_pb(request.placement),
        documents=[
            requests_pb2.DocumentInfo(
                index=d.index,
                name=d.name,
                size=d.size,
                sha256=d.sha256,
                sealed_sha256=d.sealed_sha256,
                sealed_size=d.sealed_size,
                marks=[mark_to_pb(m) for m in d.marks or ()],
                signed_seals=[step.seal_id for step in d.steps],
            )
            for d in request.documents
        ],
        marks=[mark_to_pb(m) for m in request.marks],
        job_seals=[
            requests_pb2.JobSeal(
                seal_id=s.seal_id,
                certificate_sha256=s.certificate_sha256,
                impression_sha256=s.impression_sha256,
            )
            for s in request.job_seals
        ],
        state=STATE_TO_PB[request.state],
        state_reason=request.state_reason,
        approvals=[
            requests_pb2.Approval(
                approver=a.approver,
                approval_digest=a.approval_digest,
                approved_at=timestamp(a.approved_at),
                comment=a.comment,
                certificate_sha256=a.certificate_sha256,
                statement=a.statement.encode("utf-8"),
                statement_signature=base64.b64decode(a.statement_signature_b64),
                webauthn_assertion=a.webauthn_assertion,
                acting_for=a.acting_for,
                delegation_id=a.delegation_id,
            )
            for a in request.approvals
        ],
        required_approvals=request.required_approvals,
        approval_digest=request.approval_digest,
        seal_certificate_sha256=request.seal_certificate_sha256,
        created_at=timestamp(request.created_at),
        updated_at=timestamp(request.updated_at),
        expires_at=timestamp(request.expires_at),
        host=request.host,
        outcome_unknown=request.outcome_unknown,
        seal_impression_sha256=request.seal_impression_sha256,
    )
    signed_at = timestamp(request.signed_at)
    if signed_at is not None:
        pb.signed_at.CopyFrom(signed_at)
    if request.amount is not None:
        pb.amount, pb.amount_currency = request.amount.canonical(), request.amount.currency
    standing = (
        policy.standing(request.requester, request.approvals, facts_of(request))
        if policy is not None
        else None
    )
    if standing is not None:
        pb.chain.CopyFrom(chain_to_pb(standing))
    return pb


def chain_to_pb(standing: Standing) -> requests_pb2.ChainStanding:
    return requests_pb2.ChainStanding(
        steps=[
            requests_pb2.ChainStep(
                name=s.name,
                state=s.state,
                requirement=s.requirement,
                condition=s.condition,
                counted=list(s.counted),
                needed_from=list(s.needed_from),
            )
            for s in standing.steps
        ],
        complete=standing.complete,
        current=standing.current or "",
    )


def amount_from_pb(value: str, currency: str) -> Money | None:
    """Issue 17: the optional declared amount of a submission (both or neither)."""
    if not value and not currency:
        return None
    if not value or not currency:
        raise InvalidInput(
            "give both amount and amount_currency (e.g. 250000.00 and CNY), or neither",
            reason="bad_amount",
        )
    return parse_money(value, currency)


def delegation_to_pb(d: Delegation) -> seals_pb2.Delegation:
    pb = seals_pb2.Delegation(
        delegation_id=d.delegation_id,
        delegator=d.delegator,
        delegate=d.delegate,
        seal_id=d.seal_id,
        categories=sorted(d.categories),
        state=d.state.value,
        proposed_by=d.proposed_by,
        approved_by=d.approved_by,
        ended_by=d.ended_by,
    )
    pb.window.not_before.FromDatetime(d.valid_from.astimezone(UTC).replace(tzinfo=None))
    pb.window.not_after.FromDatetime(d.valid_until.astimezone(UTC).replace(tzinfo=None))
    return pb


def token_to_pb(state: TokenState, ready: bool, not_ready_reason: str) -> tokens_pb2.TokenStatus:
    if state.rogue_reason:
        presence = tokens_pb2.TOKEN_PRESENCE_ROGUE
    elif state.present:
        presence = tokens_pb2.TOKEN_PRESENCE_PRESENT
    else:
        presence = tokens_pb2.TOKEN_PRESENCE_ABSENT
    return tokens_pb2.TokenStatus(
        seal_id=state.seal_id,
        presence=presence,
        unlocked=state.unlocked,
        token_label=state.token_label,
        token_serial=state.token_serial,
        ready=ready,
        not_ready_reason=not_ready_reason,
        since=timestamp(state.since),
        unlocked_by=state.unlocked_by,
    )


# DocMDP permission level (ISO 32000 P value) of each [[seal]] certify mode.
CERTIFY_P = {"none": 0, "no_changes": 1, "form_filling": 2}


def seal_to_pb(
    seal: SealConfig,
    certificate_der: bytes,
    certificate_sha256: str,
    state: SealState | None = None,
) -> seals_pb2.Seal:
    pb = _seal_to_pb(seal, certificate_der, certificate_sha256)
    pb.approver_groups.extend(approver_groups_for(seal.seal_type, seal.approver_groups))
    window = common_pb2.TimeWindow(
        not_before=timestamp(seal.valid_from), not_after=timestamp(seal.valid_until)
    )
    pb.validity.CopyFrom(window)
    pb.signature_level = seal.level
    pb.certify = seal.certify
    pb.certification_level = CERTIFY_P[seal.certify]
    pb.image_shape = seal.shape
    if state is not None:
        pb.status = SEAL_STATUS_TO_PB[state.status]
        pb.status_reason = state.status_reason
        if state.display_name:
            pb.display_name = state.display_name
        since = timestamp(state.since)
        if since is not None:
            pb.status_since.CopyFrom(since)
    return pb


def impression_to_pb(impression: Impression) -> seals_pb2.SealImpression:
    """Issue 16: a registered or proposed seal impression (印模), without its bytes."""
    pb = seals_pb2.SealImpression(
        impression_id=impression.impression_id,
        seal_id=impression.seal_id,
        sha256=impression.sha256,
        media_type=impression.media_type,
        seal_code=impression.seal_code,
        width_mm=impression.width_mm,
        height_mm=impression.height_mm,
        dpi=impression.dpi,
        proposed_by=impression.proposed_by,
        proposed_at=timestamp(impression.proposed_at),
        approved_by=impression.approved_by,
        comment=impression.comment,
    )
    approved_at = timestamp(impression.approved_at)
    if approved_at is not None:
        pb.approved_at.CopyFrom(approved_at)
    return pb


def _seal_to_pb(seal: SealConfig, certificate_der: bytes, certificate_sha256: str) -> seals_pb2.Seal:
    return seals_pb2.Seal(
        seal_id=seal.seal_id,
        type=SEAL_TYPE_TO_PB[seal.seal_type],
        organisation=seal.organisation,
        display_name=seal.display_name,
        token_label=seal.token_label,
        token_serial=seal.token_serial,
        key_label=seal.key_label,
        certificate_sha256=certificate_sha256,
        certificate_der=certificate_der,
        status=common_pb2.SEAL_STATUS_ACTIVE,
        categories=sorted(seal.categories),
        required_approvals=seal.required_approvals,
    )
