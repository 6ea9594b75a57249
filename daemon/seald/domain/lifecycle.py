"""The request state machine (DESIGN.md "Request lifecycle"), as pure functions.

Each transition takes a request and the facts it needs (who, what, when) and
returns the new request or raises a SealError. Nothing here does I/O; the shell
(api/, store/) loads, calls, and stores atomically with the audit record.

    PENDING --approve x M--> APPROVED --begin_signing--> SIGNING --complete--> SIGNED
    side exits: REJECTED, CANCELLED, EXPIRED, FAILED; SIGNING --interrupted--> APPROVED
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from seald.domain.chains import Money, RequestFacts
from seald.domain.delegation import Delegation
from seald.domain.digest import (
    DigestDocument,
    DigestPlacement,
    DigestSeal,
    canonical_approval_subject,
    digest_of,
)
from seald.domain.errors import (
    AlreadyDone,
    InvalidInput,
    PermissionDenied,
    PreconditionFailed,
)
from seald.domain.marks import (
    DEFAULT_MAX_MARKS,
    Mark,
    PageSetKind,
    check_marks_shape,
    mark_label,
    signing_order,
)
from seald.domain.model import (
    FINAL_STATES,
    Approval,
    Document,
    JobSeal,
    Placement,
    Principal,
    RequestState,
    Role,
    Seal,
    SealRequest,
    SealStatus,
    SignedStep,
)
from seald.domain.policy import AnyPolicy, counted_identity, distinct_approvers
from seald.domain.seals import check_window
from seald.domain.text_policy import MAX_CATEGORY, MAX_TEXT, check_document_name, check_text

SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def compute_approval_digest(
    *,
    request_id: str,
    seal_id: str,
    seal_certificate_sha256: str,
    requester: str,
    reason: str,
    category: str,
    placement: Placement,
    documents: Sequence[Document],
    amount: Money | None = None,
    seal_impression_sha256: str = "",
    marks: Sequence[Mark] | None = None,
    job_seals: Sequence[JobSeal] = (),
) -> str:
    """``marks``/``job_seals``: a sealing job's (issue 16); None/() for a single placement,
    whose digest is then byte for byte what it always was."""
    subject = canonical_approval_subject(
        request_id=request_id,
        seal_id=seal_id,
        seal_certificate_sha256=seal_certificate_sha256,
        requester=requester,
        reason=reason,
        category=category,
        placement=DigestPlacement(
            page=placement.page,
            x_mm=placement.x_mm,
            y_mm=placement.y_mm,
            size_mm=placement.size_mm,
            anchor_text=placement.anchor_text,
            cross_page=placement.cross_page,
        ),
        documents=[DigestDocument(d.name, d.sha256, d.size, d.marks) for d in documents],
        amount=(amount.canonical(), amount.currency) if amount is not None else None,
        seal_impression_sha256=seal_impression_sha256,
        marks=marks,
        seals=[DigestSeal(s.seal_id, s.certificate_sha256, s.impression_sha256) for s in job_seals],
    )
    return digest_of(subject)


def digest_of_request(request: SealRequest) -> str:
    """The approval digest of a request as it stands (after a rebind, say)."""
    return compute_approval_digest(
        request_id=request.request_id,
        seal_id=request.seal_id,
        seal_certificate_sha256=request.seal_certificate_sha256,
        requester=request.requester,
        reason=request.reason,
        category=request.category,
        placement=request.placement,
        documents=request.documents,
        amount=request.amount,
        seal_impression_sha256=request.seal_impression_sha256,
        marks=request.marks if request.is_job else None,
        job_seals=request.job_seals,
    )


def facts_of(request: SealRequest) -> RequestFacts:
    """What a chain's conditions look at."""
    return RequestFacts(category=request.category, amount=request.amount)


def _require_text(field: str, value: str, *, limit: int = MAX_TEXT) -> None:
    check_text(field, value, limit=limit, required=True)


def validate_placement(placement: Placement) -> None:
    if placement.page < 0:
        raise InvalidInput(
            "placement page must be >= 1, or 0 for the last page", reason="bad_placement"
        )
    for name, value in (("x_mm", placement.x_mm), ("y_mm", placement.y_mm)):
        if not 0.0 <= value <= 2000.0:
            raise InvalidInput(
                f"placement {name}={value} is outside the page; give mm from the top-left corner",
                reason="bad_placement",
            )
    if not 10.0 <= placement.size_mm <= 100.0:
        raise InvalidInput(
            f"placement size_mm={placement.size_mm} is not a seal size; use 10 to 100 mm",
            reason="bad_placement",
        )


def check_seal_usable(seal: Seal, category: str, now: datetime | None = None) -> None:
    """R02/R03: only an active seal, only within its scope and validity window."""
    if seal.status is SealStatus.PENDING:
        raise PreconditionFailed(
            f"seal {seal.seal_id} is pending: it has no certificate yet; an admin must import "
            "it (ImportSealCertificate) before the seal can be used",
            reason="seal_pending",
        )
    if seal.status is not SealStatus.ACTIVE:
        raise PreconditionFailed(
            f"seal {seal.seal_id} is {seal.status.value}; it cannot be used until an admin "
            "resumes it",
            reason=f"seal_{seal.status.value}",
        )
    if category not in seal.categories:
        allowed = ", ".join(sorted(seal.categories))
        raise PermissionDenied(
            f"seal {seal.seal_id} may not be used for category '{category}'; "
            f"its scope is: {allowed} (R03)",
            reason="category_out_of_scope",
        )
    if now is not None:
        check_window(f"seal {seal.seal_id}", seal.valid_from, seal.valid_until, now)


def submit(
    *,
    request_id: str,
    requester: Principal,
    seal: Seal,
    reason: str,
    category: str,
    placement: Placement,
    documents: Sequence[Document],
    now: datetime,
    ttl: timedelta,
    host: str,
    client_request_key: str = "",
    amount: Money | None = None,
) -> SealRequest:
    if not requester.has(Role.REQUESTER, seal.seal_id):
        raise PermissionDenied(
            f"{requester.name} is not a designated requester for seal {seal.seal_id} (R04); "
            "ask an admin to add the seal to your principal",
            reason="not_a_requester",
        )
    _require_text("reason", reason)
    _require_text("category", category, limit=MAX_CATEGORY)
    check_seal_usable(seal, category, now)
    validate_placement(placement)
    if not documents:
        raise InvalidInput(
            "the request has no document; attach at least one PDF", reason="no_documents"
        )
    for doc in documents:
        check_document_name(doc.name)
        if not SHA256_HEX.match(doc.sha256):
            raise InvalidInput(
                f"document {doc.index} has no valid SHA-256", reason="bad_document_hash"
            )
    docs = tuple(documents)
    digest = compute_approval_digest(
        request_id=request_id,
        seal_id=seal.seal_id,
        seal_certificate_sha256=seal.certificate_sha256,
        requester=requester.name,
        reason=reason,
        category=category,
        placement=placement,
        documents=docs,
        amount=amount,
        seal_impression_sha256=seal.impression_sha256,
    )
    return SealRequest(
        request_id=request_id,
        seal_id=seal.seal_id,
        requester=requester.name,
        reason=reason,
        category=category,
        placement=placement,
        documents=docs,
        state=RequestState.PENDING,
        required_approvals=seal.required_approvals,
        approval_digest=digest,
        seal_certificate_sha256=seal.certificate_sha256,
        created_at=now,
        updated_at=now,
        expires_at=now + ttl,
        collect_until=now + ttl,
        host=host,
        state_reason=f"waiting for {seal.required_approvals} approvals",
        client_request_key=client_request_key,
        amount=amount,
        seal_impression_sha256=seal.impression_sha256,
    )


# A mark's explicit size, like a placement's (0 = the seal's registered size).
MIN_MARK_MM, MAX_MARK_MM = 10.0, 100.0


def job_seal_order(marks: Sequence[Mark], documents: Sequence[Document]) -> tuple[str, ...]:
    """Every seal of a job, in the order of its first mark: the request's marks first,
    then each manifest document's in document order."""
    every: list[Mark] = list(marks)
    for doc in documents:
        every += list(doc.marks or ())
    return signing_order(every)


def check_job_marks(
    marks: Sequence[Mark], documents: Sequence[Document], *, max_marks: int
) -> None:
    """The document-independent checks of a job's marks, each naming the mark (and the
    document, for a manifest). Which pages exist, where the anchor is: seald.signing."""
    lists: list[tuple[str, Sequence[Mark]]] = []
    if any(doc.marks is None for doc in documents):
        lists.append(("", marks))
    elif marks:
        raise InvalidInput(
            "every document has its own marks, so the request's marks would never be used; "
            "drop them or a document's marks",
            reason="bad_mark",
        )
    lists += [
        (f"document {doc.index} ({doc.name}): ", doc.marks) for doc in documents if doc.marks is not None
    ]
    for where, ms in lists:
        try:
            check_marks_shape(ms, max_marks=max_marks)
        except InvalidInput as ex:
            raise InvalidInput(f"{where}{ex.message}", reason=ex.reason) from None
        for i, mark in enumerate(ms):
            if mark.size_mm and not MIN_MARK_MM <= mark.size_mm <= MAX_MARK_MM:
                raise InvalidInput(
                    f"{where}{mark_label(i, mark)}: size_mm={mark.size_mm} is not a seal size; "
                    f"use {MIN_MARK_MM:g} to {MAX_MARK_MM:g} mm, or 0 for the seal's size",
                    reason="bad_placement",
                )


def legacy_placement(mark: Mark) -> Placement:
    """The request's single ``placement`` field for a job: its first mark, as far as one
    placement can say it (the digest covers the marks themselves)."""
    pages = mark.cross_page.pages if mark.cross_page is not None else mark.pages
    page = pages.pages[0] if pages.kind not in (PageSetKind.LAST, PageSetKind.ALL) else (
        1 if pages.kind is PageSetKind.ALL else 0
    )
    return Placement(
        page=page,
        x_mm=mark.x_mm,
        y_mm=mark.y_mm,
        size_mm=mark.size_mm,
        anchor_text=mark.anchor_text,
        cross_page=mark.is_cross_page,
    )


def submit_job(
    *,
    request_id: str,
    requester: Principal,
    seals: Mapping[str, Seal],
    reason: str,
    category: str,
    marks: Sequence[Mark],
    documents: Sequence[Document],
    now: datetime,
    ttl: timedelta,
    host: str,
    client_request_key: str = "",
    amount: Money | None = None,
    max_marks: int = DEFAULT_MAX_MARKS,
) -> SealRequest:
    """A sealing job (issue 16): documents x marks under one approval digest.

    ``seals``: every seal the marks name (the shell looks them up; an unknown one is
    refused there). The requester must be a designated requester of EVERY seal, each
    seal usable for the category now; the approvals of every seal's policy are then
    needed (JobPolicy)."""
    if not documents:
        raise InvalidInput("the request has no document; attach at least one PDF", reason="no_documents")
    check_job_marks(marks, documents, max_marks=max_marks)
    order = job_seal_order(marks, documents)
    for seal_id in order:
        if not requester.has(Role.REQUESTER, seal_id):
            raise PermissionDenied(
                f"{requester.name} is not a designated requester for seal {seal_id}, which a "
                "mark of this job uses (R04); ask an admin to add the seal to your principal "
                "or drop its marks",
                reason="not_a_requester",
            )
    _require_text("reason", reason)
    _require_text("category", category, limit=MAX_CATEGORY)
    for seal_id in order:
        check_seal_usable(seals[seal_id], category, now)
    for doc in documents:
        check_document_name(doc.name)
        if not SHA256_HEX.match(doc.sha256):
            raise InvalidInput(f"document {doc.index} has no valid SHA-256", reason="bad_document_hash")
    first = seals[order[0]]
    first_mark = next(iter(marks), None) or next(m for d in documents for m in (d.marks or ()))
    placement = legacy_placement(first_mark)
    job_seals = tuple(
        JobSeal(s, seals[s].certificate_sha256, seals[s].impression_sha256) for s in order
    )
    docs = tuple(documents)
    request = SealRequest(
        request_id=request_id,
        seal_id=first.seal_id,
        requester=requester.name,
        reason=reason,
        category=category,
        placement=placement,
        documents=docs,
        state=RequestState.PENDING,
        required_approvals=max(seals[s].required_approvals for s in order),
        approval_digest="",
        seal_certificate_sha256=first.certificate_sha256,
        created_at=now,
        updated_at=now,
        expires_at=now + ttl,
        collect_until=now + ttl,
        host=host,
        state_reason=f"waiting for the approvals of every seal ({', '.join(order)})",
        client_request_key=client_request_key,
        amount=amount,
        marks=tuple(marks),
        job_seals=job_seals,
    )
    return replace(request, approval_digest=digest_of_request(request))


def answer_retry(
    existing: SealRequest,
    *,
    seal_id: str,
    reason: str,
    category: str,
    placement: Placement,
    documents: Sequence[Document],
    marks: Sequence[Mark] = (),
) -> SealRequest:
    """A submit whose client_request_key names an existing request: a retry of the same
    submit gets that request back (idempotent); anything else is refused, as idempotency
    keys usually are, naming the key and the request it already belongs to. Documents are
    compared by content (size, SHA-256), not by name."""
    same = (
        existing.seal_id == seal_id
        and existing.reason == reason
        and existing.category == category
        and (existing.placement == placement or existing.is_job)
        and existing.marks == tuple(marks)
        and [d.marks for d in existing.documents] == [d.marks for d in documents]
        # The documents by content: a retry may come from another copy of the same file.
        and [(d.size, d.sha256) for d in existing.documents] == [(d.size, d.sha256) for d in documents]
    )
    if not same:
        raise AlreadyDone(
            f"client_request_key {existing.client_request_key!r} already belongs to request "
            f"{existing.request_id}, submitted with other documents or details; a retry must "
            "send the same submission, a new submission needs a new key",
            reason="client_request_key_reused",
        )
    return existing


def collect_deadline(request: SealRequest) -> datetime:
    """The first deadline: submission + approval_ttl_hours (R06 collect-then-use)."""
    return request.collect_until or request.expires_at


def use_deadline(request: SealRequest, *, approved_at: datetime, use_ttl: timedelta) -> datetime:
    """Expiry of a request whose quorum was completed at ``approved_at``: the approvals are
    used (sealed) within ``use_ttl``, and never after the first deadline: whichever comes
    first. A late quorum does not extend a request past approval_ttl_hours."""
    return min(collect_deadline(request), approved_at + use_ttl)


def _require_open(request: SealRequest, action: str) -> None:
    if request.state in FINAL_STATES:
        raise PreconditionFailed(
            f"request {request.request_id} is already {request.state.value}; it cannot be {action}",
            reason="request_final",
        )
    if request.state is RequestState.SIGNING:
        raise PreconditionFailed(
            f"request {request.request_id} is being signed right now; it cannot be {action}",
            reason="request_signing",
        )


def is_expired(request: SealRequest, now: datetime) -> bool:
    return (
        request.state in (RequestState.PENDING, RequestState.APPROVED) and now >= request.expires_at
    )


def expire(request: SealRequest, now: datetime) -> SealRequest:
    if not is_expired(request, now):
        raise PreconditionFailed(
            f"request {request.request_id} has not expired", reason="not_expired"
        )
    return replace(
        request,
        state=RequestState.EXPIRED,
        updated_at=now,
        state_reason=f"expired at {request.expires_at.isoformat()} before it was sealed; submit again",
    )


def _require_not_expired(request: SealRequest, now: datetime) -> None:
    if is_expired(request, now):
        raise PreconditionFailed(
            f"request {request.request_id} expired at {request.expires_at.isoformat()}; "
            "the requester must submit it again",
            reason="request_expired",
        )


def require_eligible_approver(request: SealRequest, approver: Principal) -> None:
    """R05: a designated approver of the request's seal (of one of a job's seals), and
    never its requester."""
    if not any(approver.has(Role.APPROVER, s) for s in request.seal_ids):
        raise PermissionDenied(
            f"{approver.name} is not a designated approver for seal {' or '.join(request.seal_ids)} (R05)",
            reason="not_an_approver",
        )
    if approver.name == request.requester:
        raise PermissionDenied(
            "the requester can never approve their own request (R05); ask two other approvers",
            reason="requester_cannot_approve",
        )


def require_delegate(
    request: SealRequest, delegate: Principal, delegation: Delegation, now: datetime
) -> None:
    """Issue 17: a delegate approves in force, in scope, and never their own request."""
    if delegation.delegate != delegate.name:
        raise PermissionDenied(
            f"delegation {delegation.delegation_id} is held by {delegation.delegate}, not "
            f"{delegate.name}",
            reason="not_the_delegate",
        )
    if request.requester in (delegate.name, delegation.delegator):
        raise PermissionDenied(
            "a delegate never approves a request they (or the delegator) submitted (R05)",
            reason="requester_cannot_approve",
        )
    if not delegation.covers(request.seal_id, request.category, now):
        raise PermissionDenied(
            f"delegation {delegation.delegation_id} is not in force for seal "
            f"{request.seal_id}, category '{request.category}' now "
            f"({delegation.state.value}, {delegation.valid_from.isoformat()} to "
            f"{delegation.valid_until.isoformat()})",
            reason="delegation_not_in_force",
        )


def void_delegated_approvals(
    request: SealRequest, *, delegation_id: str, policy: AnyPolicy, now: datetime
) -> SealRequest:
    """Issue 17: a delegation ended or expired: its approvals on unsealed requests are void.

    Returns the request unchanged when it has none (or is final / being signed: a
    request being signed re-checks its approvals at ``begin_signing`` only, so the
    shell voids before the signer takes the next request)."""
    if request.state not in (RequestState.PENDING, RequestState.APPROVED):
        return request
    kept = tuple(a for a in request.approvals if a.delegation_id != delegation_id)
    if len(kept) == len(request.approvals):
        return request
    missing = policy.unmet(request.requester, kept, facts_of(request))
    return replace(
        request,
        approvals=kept,
        state=RequestState.PENDING if missing else request.state,
        updated_at=now,
        state_reason=f"approvals under delegation {delegation_id} are void (it ended); "
        + ("; ".join(missing) if missing else request.state_reason),
    )


def approve(
    request: SealRequest,
    *,
    approver: Principal,
    document_sha256: Sequence[str],
    approval_digest: str,
    policy: AnyPolicy,
    now: datetime,
    comment: str = "",
    certificate_sha256: str = "",
    use_ttl: timedelta | None = None,
    signed: Approval | None = None,
    delegation: Delegation | None = None,
) -> SealRequest:
    """Add one approval. With ``use_ttl``, a request that reaches its quorum must be
    signed within that time (approvals are collected, then used, R06).

    With ``delegation``, ``approver`` is the delegate and the approval counts for the
    delegator (issue 17): in their place, never in addition."""
    identity = approver.name
    if delegation is None:
        require_eligible_approver(request, approver)
    else:
        require_delegate(request, approver, delegation, now)
        identity = delegation.delegator
    policy.check_may_approve(identity)
    if request.state is RequestState.APPROVED and identity in {
        counted_identity(a) for a in request.approvals
    }:
        raise AlreadyDone(
            f"{approver.name} already approved request {request.request_id}; one person counts once",
            reason="already_approved",
        )
    if request.state is not RequestState.PENDING:
        if request.state is RequestState.APPROVED:
            raise AlreadyDone(
                f"request {request.request_id} already has its approvals", reason="already_approved"
            )
        _require_open(request, "approved")
    _require_not_expired(request, now)
    expected_hashes = [d.sha256 for d in request.documents]
    if list(document_sha256) != expected_hashes:
        raise InvalidInput(
            "the document SHA-256 you approved is not the submitted document's "
            f"({', '.join(h[:12] for h in expected_hashes)}…); download the document again and "
            "check what you are approving (R06)",
            reason="document_hash_mismatch",
        )
    if approval_digest != request.approval_digest:
        raise InvalidInput(
            "the approval digest does not match this request (document, seal, placement, reason, "
            "category or requester differ from what you saw); refresh the request and review it "
            "again (R06)",
            reason="digest_mismatch",
        )
    check_text("comment", comment)
    if approver.name in {a.approver for a in request.approvals} or identity in {
        counted_identity(a) for a in request.approvals
    }:
        raise AlreadyDone(
            f"{identity} already approved request {request.request_id} (in person or by a "
            "delegate); one person counts once",
            reason="already_approved",
        )
    policy.check_turn(request.requester, request.approvals, facts_of(request), identity)
    approvals = (
        *request.approvals,
        Approval(
            approver=approver.name,
            approval_digest=approval_digest,
            approved_at=now,
            comment=comment,
            certificate_sha256=certificate_sha256,
            # Issue 9: the verified statement, signature and certificate travel along.
            statement=signed.statement if signed else "",
            statement_signature_b64=signed.statement_signature_b64 if signed else "",
            certificate_der_b64=signed.certificate_der_b64 if signed else "",
            webauthn_assertion=signed.webauthn_assertion if signed else "",
            acting_for=delegation.delegator if delegation else "",
            delegation_id=delegation.delegation_id if delegation else "",
        ),
    )
    missing = policy.unmet(request.requester, approvals, facts_of(request))
    if missing:
        return replace(
            request, approvals=approvals, updated_at=now, state_reason="; ".join(missing)
        )
    return replace(
        request,
        approvals=approvals,
        state=RequestState.APPROVED,
        updated_at=now,
        expires_at=(
            use_deadline(request, approved_at=now, use_ttl=use_ttl)
            if use_ttl is not None
            else request.expires_at
        ),
        state_reason=(
            f"approved; waiting for the tokens of seals {', '.join(request.seal_ids)} to be "
            "present and unlocked"
            if request.is_job
            else "approved; waiting for the seal's token to be present and unlocked"
        ),
    )


def check_statement_unused(
    request: SealRequest,
    *,
    approver: str,
    signed_at: str,
    recorded_on: str,
    last_withdrawal: datetime | None,
) -> None:
    """R06, an approval is used once: a signed statement counts once, ever. Refused: a
    statement whose hash is already in the ledger (on this request or any other one:
    ``recorded_on``), and one signed before this approver's last withdrawal on this
    request (a withdrawn approval must not come back by re-sending an older statement).

    Statements are dated in whole seconds (``signed_at``, the approver's clock): one dated
    in the second of the withdrawal is accepted, since the hash rule already refuses the
    statement that was withdrawn."""
    if recorded_on:
        where = "this request" if recorded_on == request.request_id else f"request {recorded_on}"
        raise InvalidInput(
            f"this signed approval statement was already recorded on {where}; a statement "
            "counts once (R06). Approve again with sealctl to sign a new statement",
            reason="statement_replayed",
        )
    if last_withdrawal is not None:
        signed = datetime.strptime(signed_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        if signed < last_withdrawal.replace(microsecond=0):
            raise InvalidInput(
                f"this approval statement is dated {signed_at}, before {approver} withdrew an "
                f"approval of request {request.request_id} at "
                f"{last_withdrawal.isoformat(timespec='seconds')}; a withdrawn approval does "
                "not come back (R06). Approve again with sealctl to sign a new statement",
                reason="statement_predates_withdrawal",
            )


def withdraw_approval(
    request: SealRequest, *, approver: Principal, policy: AnyPolicy, now: datetime
) -> SealRequest:
    if not any(approver.has(Role.APPROVER, s) for s in request.seal_ids):  # R04: first
        raise PermissionDenied(
            f"{approver.name} is not a designated approver for seal {request.seal_ids[0]}; only an "
            "approver withdraws their own approval (R04)",
            reason="not_an_approver",
        )
    _require_open(request, "changed")
    if approver.name not in {a.approver for a in request.approvals}:
        raise PreconditionFailed(
            f"{approver.name} has no approval on request {request.request_id} to withdraw",
            reason="no_approval",
        )
    approvals = tuple(a for a in request.approvals if a.approver != approver.name)
    missing = policy.unmet(request.requester, approvals, facts_of(request))
    return replace(
        request,
        approvals=approvals,
        state=RequestState.PENDING if missing else request.state,
        updated_at=now,
        state_reason="; ".join(missing) if missing else request.state_reason,
        # Back to collecting: the use window ends with the quorum, the first deadline holds.
        expires_at=collect_deadline(request) if missing else request.expires_at,
    )


def reject(
    request: SealRequest, *, approver: Principal, comment: str, now: datetime
) -> SealRequest:
    require_eligible_approver(request, approver)
    _require_open(request, "rejected")
    _require_text("comment", comment)
    return replace(
        request,
        state=RequestState.REJECTED,
        updated_at=now,
        state_reason=f"rejected by {approver.name}: {comment}",
    )


def cancel(
    request: SealRequest, *, principal: Principal, now: datetime, comment: str = ""
) -> SealRequest:
    if principal.name != request.requester:
        raise PermissionDenied(
            f"only the requester ({request.requester}) can cancel request {request.request_id}",
            reason="not_the_requester",
        )
    _require_open(request, "cancelled")
    check_text("comment", comment)
    why = f": {comment}" if comment else ""
    return replace(
        request,
        state=RequestState.CANCELLED,
        updated_at=now,
        state_reason=f"cancelled by {principal.name}{why}",
    )


def begin_signing(
    request: SealRequest,
    *,
    seal: Seal,
    policy: AnyPolicy,
    now: datetime,
    job_seals: Mapping[str, Seal] | None = None,
) -> SealRequest:
    """APPROVED -> SIGNING. The policy is checked again: approvals are used once, here.

    A job (issue 16) passes every seal of it as ``job_seals``: each must be usable, with
    the certificate and impression its approvers approved."""
    if request.state is not RequestState.APPROVED:
        raise PreconditionFailed(
            f"request {request.request_id} is {request.state.value}, not approved",
            reason="not_approved",
        )
    _require_not_expired(request, now)
    check_seal_usable(seal, request.category, now)
    if seal.certificate_sha256 != request.seal_certificate_sha256:
        raise PreconditionFailed(
            f"seal {seal.seal_id}'s certificate changed after the request was approved; "
            "the approval is void, submit again (R06)",
            reason="seal_certificate_changed",
        )
    if not request.is_job and seal.impression_sha256 != request.seal_impression_sha256:
        raise PreconditionFailed(
            f"seal {seal.seal_id}'s registered impression changed after the request was "
            "approved; the approval is void, approve again (R02, R06)",
            reason="seal_impression_changed",
        )
    for approved in request.job_seals:
        current = (job_seals or {}).get(approved.seal_id)
        if current is None:
            raise PreconditionFailed(
                f"seal {approved.seal_id} of this job is not known now; it cannot be signed",
                reason="job_seal_missing",
            )
        check_seal_usable(current, request.category, now)
        if (current.certificate_sha256, current.impression_sha256) != (
            approved.certificate_sha256,
            approved.impression_sha256,
        ):
            raise PreconditionFailed(
                f"seal {approved.seal_id}'s certificate or impression changed after the job "
                "was approved; the approval is void, submit again (R02, R06)",
                reason="seal_certificate_changed",
            )
    missing = policy.unmet(request.requester, request.approvals, facts_of(request))
    if missing:
        raise PreconditionFailed("; ".join(missing), reason="quorum_not_met")
    if any(a.approval_digest != request.approval_digest for a in request.approvals):
        raise PreconditionFailed(
            "an approval does not match this request", reason="digest_mismatch"
        )
    return replace(
        request,
        state=RequestState.SIGNING,
        updated_at=now,
        sign_attempts=request.sign_attempts + 1,
        state_reason="the token is signing",
    )


def void_approvals(request: SealRequest, *, why: str, now: datetime) -> SealRequest:
    """R02: the seal was suspended/lost/destroyed: every approval given so far is void.

    The request goes back to PENDING with no approvals (SIGNING requests are voided by
    the signer when it finds the seal stopped; final requests are left alone).
    """
    if request.state not in (RequestState.PENDING, RequestState.APPROVED):
        raise PreconditionFailed(
            f"request {request.request_id} is {request.state.value}; nothing to void",
            reason="request_final",
        )
    return replace(
        request,
        state=RequestState.PENDING,
        approvals=(),
        updated_at=now,
        expires_at=collect_deadline(request),
        state_reason=f"approvals void: {why}",
    )


def rebind_certificate(
    request: SealRequest, *, certificate_sha256: str, now: datetime, seal_id: str = ""
) -> SealRequest:
    """R02/R06: the seal got a renewed certificate: open approvals are void.

    The approval digest covers the signing certificate, so the request is bound to the
    new one (new digest) and goes back to PENDING with no approvals; an approval sent
    for the old digest is refused as a mismatch. In a job (issue 16) ``seal_id`` names
    which of its seals was renewed (default: the request's first seal).
    """
    voided = void_approvals(
        request, why="the seal's certificate was renewed; approve again", now=now
    )
    renewed = seal_id or request.seal_id
    if renewed == request.seal_id:
        voided = replace(voided, seal_certificate_sha256=certificate_sha256)
    voided = replace(
        voided,
        job_seals=tuple(
            replace(s, certificate_sha256=certificate_sha256) if s.seal_id == renewed else s
            for s in voided.job_seals
        ),
    )
    return replace(voided, approval_digest=digest_of_request(voided))


def rebind_impression(
    request: SealRequest, *, impression_sha256: str, now: datetime, seal_id: str = ""
) -> SealRequest:
    """R02/R06: the seal's registered impression (印模) changed: open approvals are void.

    A new impression is a new face of the seal. The approval digest covers its SHA-256,
    so the request is bound to the new one (new digest) and goes back to PENDING with no
    approvals, exactly as for a renewed certificate; an approval sent for the old digest
    is refused as a mismatch. In a job (issue 16) ``seal_id`` names which of its seals
    changed (default: the request's first seal); a job's impressions are in its seals.
    """
    voided = void_approvals(
        request, why="the seal's registered impression changed; approve again", now=now
    )
    changed = seal_id or request.seal_id
    if request.is_job:
        voided = replace(
            voided,
            job_seals=tuple(
                replace(s, impression_sha256=impression_sha256) if s.seal_id == changed else s
                for s in voided.job_seals
            ),
        )
    else:
        voided = replace(voided, seal_impression_sha256=impression_sha256)
    return replace(voided, approval_digest=digest_of_request(voided))


def complete_signing(
    request: SealRequest, *, sealed: Sequence[tuple[str, int]], now: datetime
) -> SealRequest:
    """SIGNING -> SIGNED with (sha256, size) of each sealed document, in order."""
    if request.state is not RequestState.SIGNING:
        raise PreconditionFailed(
            f"request {request.request_id} is {request.state.value}, not signing",
            reason="not_signing",
        )
    if len(sealed) != len(request.documents):
        raise PreconditionFailed("not every document was sealed", reason="incomplete_batch")
    documents = tuple(
        replace(doc, sealed_sha256=sha, sealed_size=size)
        for doc, (sha, size) in zip(request.documents, sealed, strict=True)
    )
    return replace(
        request,
        documents=documents,
        state=RequestState.SIGNED,
        updated_at=now,
        signed_at=now,
        outcome_unknown=False,
        state_reason="sealed",
    )


def record_sealed(
    request: SealRequest, *, sealed: Mapping[int, tuple[str, int]], now: datetime
) -> SealRequest:
    """SIGNING stays SIGNING with (sha256, size) of the documents sealed so far (issue 20:
    a volume request is sealed in chunks, each recorded, so an interruption or a crash
    resumes after the last recorded chunk instead of signing everything again). Nothing
    is released before the whole request is SIGNED."""
    if request.state is not RequestState.SIGNING:
        raise PreconditionFailed(
            f"request {request.request_id} is {request.state.value}, not signing",
            reason="not_signing",
        )
    indexes = {doc.index for doc in request.documents}
    unknown = sorted(set(sealed) - indexes)
    if unknown:
        raise PreconditionFailed(
            f"request {request.request_id} has no document {unknown[0]}", reason="incomplete_batch"
        )
    documents = tuple(
        replace(doc, sealed_sha256=sealed[doc.index][0], sealed_size=sealed[doc.index][1])
        if doc.index in sealed
        else doc
        for doc in request.documents
    )
    done = sum(1 for doc in documents if doc.sealed_sha256)
    return replace(
        request,
        documents=documents,
        updated_at=now,
        state_reason=f"sealing: {done} of {len(documents)} documents sealed",
    )


def record_step(
    request: SealRequest, *, index: int, seal_id: str, sha256: str, size: int, now: datetime
) -> SealRequest:
    """Issue 16: seal ``seal_id`` signed document ``index`` of a job (the intermediate is
    in place). Only the NEXT seal of that document's signing order may be recorded: a
    seal is never signed twice, never out of order. Nothing is released here."""
    if request.state is not RequestState.SIGNING:
        raise PreconditionFailed(
            f"request {request.request_id} is {request.state.value}, not signing",
            reason="not_signing",
        )
    doc = next((d for d in request.documents if d.index == index), None)
    if doc is None:
        raise PreconditionFailed(
            f"request {request.request_id} has no document {index}", reason="incomplete_batch"
        )
    order = signing_order(request.marks_of(doc))
    done = len(doc.steps)
    if done >= len(order) or order[done] != seal_id:
        raise PreconditionFailed(
            f"document {index} of request {request.request_id}: seal {seal_id} is not the next "
            f"signature (done: {', '.join(s.seal_id for s in doc.steps) or 'none'}; order: "
            f"{', '.join(order)})",
            reason="job_step_out_of_order",
        )
    steps = (*doc.steps, SignedStep(seal_id, sha256, size))
    documents = tuple(replace(d, steps=steps) if d.index == index else d for d in request.documents)
    total = sum(len(signing_order(request.marks_of(d))) for d in documents)
    made = sum(len(d.steps) for d in documents)
    return replace(
        request,
        documents=documents,
        updated_at=now,
        state_reason=f"sealing: {made} of {total} signatures made",
    )


def next_job_seal(request: SealRequest, document: Document) -> str | None:
    """The seal that signs ``document`` next, None when every one has."""
    order = signing_order(request.marks_of(document))
    done = len(document.steps)
    return order[done] if done < len(order) else None


def sealed_so_far(request: SealRequest) -> list[tuple[str, int]] | None:
    """(sha256, size) of every document when all are recorded sealed, else None."""
    if not request.documents or not all(doc.sealed_sha256 for doc in request.documents):
        return None
    return [(doc.sealed_sha256, doc.sealed_size) for doc in request.documents]


def forget_sealed(request: SealRequest) -> SealRequest:
    """The documents' sealed results cleared (their files were deleted unreleased)."""
    return replace(
        request,
        documents=tuple(
            replace(doc, sealed_sha256="", sealed_size=0, steps=()) for doc in request.documents
        ),
    )


def interrupt_signing(request: SealRequest, *, why: str, now: datetime) -> SealRequest:
    """SIGNING -> APPROVED: the signature did not happen (token removed, locked, ...).

    Nothing was released, so the request waits for the token again.
    """
    if request.state is not RequestState.SIGNING:
        raise PreconditionFailed(
            f"request {request.request_id} is {request.state.value}, not signing",
            reason="not_signing",
        )
    return replace(request, state=RequestState.APPROVED, updated_at=now, state_reason=why)


def fail_signing(request: SealRequest, *, why: str, now: datetime) -> SealRequest:
    """SIGNING -> FAILED: the documents cannot be sealed (e.g. placement off the page)."""
    if request.state is not RequestState.SIGNING:
        raise PreconditionFailed(
            f"request {request.request_id} is {request.state.value}, not signing",
            reason="not_signing",
        )
    return replace(request, state=RequestState.FAILED, updated_at=now, state_reason=why)


def recover_unknown_outcome(request: SealRequest, *, now: datetime) -> SealRequest:
    """A crash left the request SIGNING and no sealed output exists: back to APPROVED, flagged."""
    return replace(
        interrupt_signing(
            request,
            why="the daemon stopped while signing; no sealed document was released, "
            "the request will be signed again when the token is ready",
            now=now,
        ),
        outcome_unknown=True,
    )


def approver_count(request: SealRequest) -> int:
    return len(distinct_approvers(request.requester, request.approvals))
