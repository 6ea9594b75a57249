"""Seal lifecycle (SEAL-RULES R02) and validity windows (R03), as pure functions.

The registry itself (type, organisation, token, certificate, scope) is config; what
changes at run time — status, a changed display name — is a ``SealState`` kept in
the database (store/seals.py). Each admin action is decided here:

    PENDING --create_key--> PENDING --import_certificate--> ACTIVE   (creation, 刻制)
    ACTIVE --change (new name or renewed certificate, same key)--> ACTIVE
    ACTIVE --suspend--> SUSPENDED --resume (2 admins)--> ACTIVE
    ACTIVE | SUSPENDED --report_lost--> LOST          (a lost seal is never resumed)
    any but DESTROYED --destroy (2 admins)--> DESTROYED  (final; key deleted on the token)

A seal is PENDING while it has no certificate (neither imported nor configured).

Two-admin actions go through a proposal: the first admin's call records it under a
proposal id, a *different* admin's call with the same id, seal and action executes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from seald.domain.errors import (
    AlreadyDone,
    InvalidInput,
    PermissionDenied,
    PreconditionFailed,
    SealError,
)
from seald.domain.model import Principal, Role, Seal, SealStatus
from seald.domain.text_policy import MAX_LABEL, check_text

PROPOSAL_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
PROPOSAL_TTL = timedelta(hours=24)
MAX_COMMENT = 500


class SealAction(StrEnum):
    SUSPEND = "suspend"
    RESUME = "resume"
    REPORT_LOST = "report_lost"
    DESTROY = "destroy"
    CHANGE = "change"
    CREATE_KEY = "create_key"
    IMPORT_CERTIFICATE = "import_certificate"


# R02: resume and destroy need two admins; suspend and report-lost act at once.
TWO_ADMIN_ACTIONS = frozenset({SealAction.RESUME, SealAction.DESTROY})

# Actions that stop a seal: they void pending approvals for it at once.
STOPPING_ACTIONS = frozenset({SealAction.SUSPEND, SealAction.REPORT_LOST, SealAction.DESTROY})


@dataclass(frozen=True)
class SealState:
    """The run-time part of a seal's registry entry."""

    seal_id: str
    status: SealStatus = SealStatus.ACTIVE
    status_reason: str = ""
    since: datetime | None = None
    display_name: str = ""  # "" = the configured display name


@dataclass(frozen=True)
class Proposal:
    proposal_id: str
    seal_id: str
    action: SealAction
    proposer: str
    comment: str
    created_at: datetime


@dataclass(frozen=True)
class Decision:
    """What an admin call does: a new state (executed) or a recorded proposal."""

    state: SealState
    executed: bool
    proposal: Proposal | None = None
    previous_status: SealStatus = SealStatus.ACTIVE


def effective_state(state: SealState, has_certificate: bool) -> SealState:
    """A seal without a certificate is PENDING (刻制中), whatever the stored row says."""
    if has_certificate or state.status is not SealStatus.ACTIVE:
        return state
    return replace(
        state,
        status=SealStatus.PENDING,
        status_reason=(
            f"seal {state.seal_id} has no certificate yet: an admin creates its key on the "
            "token (CreateSealKey), has the CSR signed and imports the certificate"
        ),
    )


def apply_state(seal: Seal, state: SealState | None) -> Seal:
    """The configured seal with its run-time status applied."""
    state = effective_state(state or SealState(seal.seal_id), bool(seal.certificate_sha256))
    return replace(
        seal,
        status=state.status,
        display_name=state.display_name or seal.display_name,
    )


def require_admin(principal: Principal, seal_id: str) -> None:
    if not principal.has(Role.ADMIN, seal_id):
        raise PermissionDenied(
            f"only an administrator of seal {seal_id} may change its lifecycle (R02, R04)",
            reason="not_an_admin",
        )


def next_status(current: SealStatus, action: SealAction) -> SealStatus:  # noqa: C901 - the R02 table, a branch per (status, action)
    """The status ``action`` leads to from ``current``, or the reason it may not."""
    if current is SealStatus.DESTROYED:
        if action is SealAction.DESTROY:
            raise AlreadyDone("the seal is already destroyed", reason="seal_destroyed")
        raise PreconditionFailed(
            "the seal is destroyed; nothing can change it any more (create a new seal)",
            reason="seal_destroyed",
        )
    if current is SealStatus.PENDING:
        return _from_pending(action)
    if action is SealAction.CREATE_KEY:
        if current is SealStatus.ACTIVE:
            return current  # a CSR for the existing key (renewal); never a second key
        raise PreconditionFailed(
            f"the seal is {current.value}; a key is created only for a new (pending) seal",
            reason=f"seal_{current.value}",
        )
    if action is SealAction.IMPORT_CERTIFICATE:
        if current is SealStatus.ACTIVE:
            raise AlreadyDone(
                "the seal already has a certificate; to renew it use ChangeSeal "
                "(sealctl seal change --certificate FILE)",
                reason="seal_has_certificate",
            )
        raise PreconditionFailed(
            f"the seal is {current.value}; a first certificate is imported only for a "
            "pending seal",
            reason=f"seal_{current.value}",
        )
    if action is SealAction.SUSPEND:
        if current is SealStatus.SUSPENDED:
            raise AlreadyDone("the seal is already suspended", reason="seal_suspended")
        if current is SealStatus.LOST:
            raise PreconditionFailed(
                "the seal is reported lost; it stays unusable until destroyed", reason="seal_lost"
            )
        return SealStatus.SUSPENDED
    if action is SealAction.REPORT_LOST:
        if current is SealStatus.LOST:
            raise AlreadyDone("the seal is already reported lost", reason="seal_lost")
        return SealStatus.LOST
    if action is SealAction.RESUME:
        if current is SealStatus.ACTIVE:
            raise AlreadyDone("the seal is already active", reason="seal_active")
        if current is SealStatus.LOST:
            raise PreconditionFailed(
                "a seal reported lost is never resumed (its key may be in other hands); "
                "destroy it and create a new seal (R02)",
                reason="seal_lost",
            )
        return SealStatus.ACTIVE
    if action is SealAction.DESTROY:
        return SealStatus.DESTROYED
    if current is not SealStatus.ACTIVE:
        raise PreconditionFailed(
            f"the seal is {current.value}; change it only while it is active",
            reason=f"seal_{current.value}",
        )
    return current


def _from_pending(action: SealAction) -> SealStatus:
    """A pending seal (no certificate yet) is made, lost or destroyed; nothing else."""
    if action is SealAction.CREATE_KEY:
        return SealStatus.PENDING
    if action is SealAction.IMPORT_CERTIFICATE:
        return SealStatus.ACTIVE
    if action is SealAction.REPORT_LOST:
        return SealStatus.LOST
    if action is SealAction.DESTROY:
        return SealStatus.DESTROYED
    raise PreconditionFailed(
        f"{action.value} is not possible for a pending seal (no certificate yet); import its "
        "certificate first (ImportSealCertificate)",
        reason="seal_pending",
    )


def decide(
    state: SealState,
    *,
    action: SealAction,
    admin: Principal,
    comment: str,
    proposal_id: str,
    pending: Proposal | None,
    now: datetime,
    display_name: str = "",
) -> Decision:
    """One admin call on a seal. ``pending`` is the stored proposal with ``proposal_id``."""
    require_admin(admin, state.seal_id)
    check_text("comment", comment, limit=MAX_COMMENT)
    check_text("display_name", display_name, limit=MAX_LABEL)
    target = next_status(state.status, action)
    if action in TWO_ADMIN_ACTIONS:
        if not PROPOSAL_ID.match(proposal_id):
            raise InvalidInput(
                f"{action.value} needs two administrators: give a proposal id (8-64 letters, "
                "digits, - or _), then a second admin confirms with the same id",
                reason="proposal_id_required",
            )
        if pending is None:
            proposal = Proposal(
                proposal_id=proposal_id,
                seal_id=state.seal_id,
                action=action,
                proposer=admin.name,
                comment=comment,
                created_at=now,
            )
            return Decision(state=state, executed=False, proposal=proposal, previous_status=state.status)
        if pending.seal_id != state.seal_id or pending.action is not action:
            raise InvalidInput(
                f"proposal {proposal_id} is to {pending.action.value} seal {pending.seal_id}, "
                f"not to {action.value} seal {state.seal_id}; use a new proposal id",
                reason="proposal_mismatch",
            )
        if now - pending.created_at > PROPOSAL_TTL:
            raise PreconditionFailed(
                f"proposal {proposal_id} expired (older than {PROPOSAL_TTL}); propose again with a new id",
                reason="proposal_expired",
            )
        if pending.proposer == admin.name:
            raise PermissionDenied(
                f"you proposed {proposal_id}; a second, different administrator must confirm "
                "it (two-person rule, R02)",
                reason="same_admin",
            )
    why = f"{action.value} by {admin.name}" + (f": {comment}" if comment else "")
    if pending is not None:
        why = f"{action.value} proposed by {pending.proposer}, confirmed by {admin.name}" + (
            f": {comment or pending.comment}" if (comment or pending.comment) else ""
        )
    new = replace(
        state,
        status=target,
        status_reason=why,
        since=now if target is not state.status else state.since,
        display_name=display_name or state.display_name,
    )
    return Decision(state=new, executed=True, proposal=pending, previous_status=state.status)


def within_window(valid_from: datetime | None, valid_until: datetime | None, now: datetime) -> bool:
    if valid_from is not None and now < valid_from:
        return False
    return not (valid_until is not None and now >= valid_until)


def check_window(
    what: str,
    valid_from: datetime | None,
    valid_until: datetime | None,
    now: datetime,
    error: type[SealError] = PreconditionFailed,
) -> None:
    """R03: use outside the authorisation window is refused, saying which window."""
    if within_window(valid_from, valid_until, now):
        return
    span = (
        f"{valid_from.isoformat() if valid_from else 'the beginning'} to "
        f"{valid_until.isoformat() if valid_until else 'no end'}"
    )
    raise error(
        f"{what} is valid from {span}; it cannot be used at {now.isoformat()} (R03). "
        "An admin must extend the window",
        reason="outside_validity_window",
    )
