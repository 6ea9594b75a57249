"""Who may see or do what on a request or a seal (R04): pure decisions, no I/O.

The API layer (seald.api) and the service parts ask here and nowhere else. The rules of
approving itself (eligible approver, quorum) are request-lifecycle rules and live in
seald.domain.lifecycle / seald.domain.policy. Tested as a table (tests/unit/test_access.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from seald.domain.errors import NotVisible, PermissionDenied
from seald.domain.model import Principal, Role, SealRequest


def _on_seal(principal: Principal, request: SealRequest) -> bool:
    """The principal holds a role on the request's seal (on any seal of a job, issue 16:
    the approvers of its second seal judge it too)."""
    return any(s in principal.seal_ids for s in request.seal_ids)


def can_view(principal: Principal, request: SealRequest) -> bool:
    """The requester, and anyone with a seeing role on the request's seal."""
    if principal.name == request.requester:
        return True
    if Role.ADMIN in principal.roles or Role.AUDITOR in principal.roles:
        return _on_seal(principal, request)
    return _on_seal(principal, request) and bool(principal.roles & {Role.APPROVER, Role.CUSTODIAN})


def can_read_content(principal: Principal, request: SealRequest) -> bool:
    """Who may read a request's documents (the originals and their previews): the requester,
    the seal's approvers (they judge them, R06) and its admins and auditors (they answer
    for the seal and check its uses). A custodian holds the token; judging documents is
    not part of that role (R04), so a custodian-only principal sees the request's state
    and metadata, never its content. The sealed copy is narrower: can_download_sealed."""
    if principal.name == request.requester:
        return True
    return _on_seal(principal, request) and bool(
        principal.roles & {Role.APPROVER, Role.ADMIN, Role.AUDITOR}
    )


def can_preview(principal: Principal, request: SealRequest) -> bool:
    """A preview is the original with the seal drawn in: the same readers as the original."""
    return can_read_content(principal, request)


def can_download_sealed(principal: Principal, request: SealRequest) -> bool:
    return principal.name == request.requester or (
        Role.AUDITOR in principal.roles and _on_seal(principal, request)
    )


def require_visible(principal: Principal, request: SealRequest) -> None:
    if not can_view(principal, request):
        # Same answer as a missing id: do not confirm that someone else's request exists.
        raise NotVisible(request.request_id)


def require_may_read_content(principal: Principal, request: SealRequest) -> None:
    if not can_read_content(principal, request):
        raise PermissionDenied(
            f"{principal.name} may not read the documents of request {request.request_id}: only "
            "its requester and the seal's approvers, administrators and auditors may (R04)",
            reason="not_allowed_to_read",
        )


def require_may_preview(principal: Principal, request: SealRequest) -> None:
    if not can_preview(principal, request):
        raise PermissionDenied(
            f"{principal.name} may not preview request {request.request_id}: only its requester "
            "and the seal's approvers, administrators and auditors may (R04)",
            reason="not_allowed_to_preview",
        )


def require_may_download_sealed(principal: Principal, request: SealRequest) -> None:
    if not can_download_sealed(principal, request):
        raise PermissionDenied(
            "only the requester (or an auditor) may download the sealed document",
            reason="not_the_requester",
        )


def require_requester(principal: Principal, seal_id: str) -> None:
    """Only a designated requester of the seal may submit a request for it (R04)."""
    if not principal.has(Role.REQUESTER, seal_id):
        raise PermissionDenied(
            f"{principal.name} is not a designated requester for seal {seal_id} (R04)",
            reason="not_a_requester",
        )


def require_role_on_seal(principal: Principal, seal_id: str) -> None:
    """Any role on the seal lets one read it (its status, image, custody, tokens)."""
    if seal_id not in principal.seal_ids:
        raise PermissionDenied(f"you have no role on seal {seal_id}", reason="not_visible")


def visible_seals(principal: Principal, seal_ids: Iterable[str], seal_filter: str = "") -> list[str]:
    """The seals whose tokens ``principal`` may watch: the one asked for, or all theirs."""
    if seal_filter:
        require_role_on_seal(principal, seal_filter)
        return [seal_filter]
    return sorted(s for s in seal_ids if s in principal.seal_ids)


def watch_wants(
    principal: Principal, request: SealRequest, *, request_id: str = "", seal_id: str = ""
) -> bool:
    """Whether a WatchRequests stream with these filters shows ``request`` to ``principal``."""
    return (
        can_view(principal, request)
        and (not request_id or request.request_id == request_id)
        and (not seal_id or seal_id in request.seal_ids)
    )


def require_auditor(principal: Principal) -> None:
    if not principal.roles & {Role.AUDITOR, Role.ADMIN}:
        raise PermissionDenied(
            "only auditors and admins may read the audit trail", reason="not_an_auditor"
        )


def require_archive_operator(principal: Principal) -> None:
    """Issue 16: archive timestamp renewal (RenewArchives, also a dry run) is for auditors
    and admins: it keeps existing evidence valid and creates nothing a requester asked for."""
    if not principal.roles & {Role.AUDITOR, Role.ADMIN}:
        raise PermissionDenied(
            "only auditors and admins may renew archive timestamps", reason="not_an_archive_operator"
        )


def require_admin(principal: Principal) -> None:
    """Backups are an administrator's job (the auditor reads, never copies the state)."""
    if Role.ADMIN not in principal.roles:
        raise PermissionDenied("only admins may create backups", reason="not_an_admin")
