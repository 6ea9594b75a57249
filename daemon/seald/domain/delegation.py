"""Approver delegation (issue 17, SEAL-RULES R05 "general manager (or delegate)").

An approver (the delegator) hands their approval authority for one seal, or for all
their seals, to another principal (the delegate) for a date range, optionally only
for some document categories. A delegation is proposed by the delegator or an admin
and takes effect only when a second admin approves it (as custody changes are).

Rules (pure; the shell stores and audits):

* a delegate's approval counts in the delegator's place, never in addition: the
  approval carries ``acting_for`` = the delegator, and policies count identities, so
  the delegator and the delegate together count once;
* never for a request the delegate submitted (nor one the delegator submitted);
* ending or expiring a delegation voids the delegate's approvals made under it on
  requests not yet sealed (:func:`seald.domain.lifecycle.void_delegated_approvals`);
* refused: to oneself, to the requester of an open request of the covered seals,
  overlapping another live delegation of the same delegator for an overlapping seal,
  a range that ends in the past, ends before it starts, or is longer than the
  configured maximum.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from seald.domain.errors import (
    InvalidInput,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
)
from seald.domain.model import FINAL_STATES, Principal, Role, SealRequest

ALL_SEALS = ""  # seal_id of a delegation that covers all the delegator's seals


class DelegationState(StrEnum):
    PROPOSED = "proposed"  # waiting for a second admin
    ACTIVE = "active"  # approved; in force inside [valid_from, valid_until)
    ENDED = "ended"  # ended early by the delegator, the delegate or an admin
    REFUSED = "refused"  # the second admin refused it


LIVE_STATES = frozenset({DelegationState.PROPOSED, DelegationState.ACTIVE})


@dataclass(frozen=True)
class Delegation:
    delegation_id: str
    delegator: str
    delegate: str
    seal_id: str  # ALL_SEALS = every seal the delegator approves for
    categories: frozenset[str]  # empty = every category
    valid_from: datetime
    valid_until: datetime
    state: DelegationState
    proposed_by: str
    created_at: datetime
    approved_by: str = ""
    ended_at: datetime | None = None
    ended_by: str = ""
    reason: str = ""

    def covers_seal(self, seal_id: str) -> bool:
        return self.seal_id in (ALL_SEALS, seal_id)

    def in_force(self, at: datetime) -> bool:
        return self.state is DelegationState.ACTIVE and self.valid_from <= at < self.valid_until

    def covers(self, seal_id: str, category: str, at: datetime) -> bool:
        return (
            self.in_force(at)
            and self.covers_seal(seal_id)
            and (not self.categories or category in self.categories)
        )

    def expired(self, at: datetime) -> bool:
        return self.state is DelegationState.ACTIVE and at >= self.valid_until

    def describe(self) -> str:
        scope = "all seals" if self.seal_id == ALL_SEALS else f"seal {self.seal_id}"
        cats = ", ".join(sorted(self.categories)) if self.categories else "all categories"
        return (
            f"{self.delegate} for {self.delegator} under delegation {self.delegation_id} "
            f"({scope}, {cats}, {self.valid_from.isoformat()} to {self.valid_until.isoformat()})"
        )


def _seals_overlap(a: str, b: str) -> bool:
    return ALL_SEALS in (a, b) or a == b


def propose(
    *,
    delegation_id: str,
    proposer: Principal,
    delegator: Principal,
    delegate: Principal,
    seal_id: str,
    categories: Iterable[str],
    valid_from: datetime,
    valid_until: datetime,
    existing: Sequence[Delegation],
    open_requests: Sequence[SealRequest],
    max_duration: timedelta,
    now: datetime,
    reason: str = "",
) -> Delegation:
    """A new delegation, PROPOSED; a second admin must approve it."""
    if proposer.name != delegator.name and not _is_admin(proposer, seal_id):
        raise PermissionDenied(
            f"{proposer.name} may not delegate {delegator.name}'s approvals; only the "
            "approver or an admin of the seal proposes a delegation",
            reason="not_delegator_or_admin",
        )
    if delegate.name == delegator.name:
        raise InvalidInput(
            f"{delegator.name} cannot delegate to themselves; name another principal",
            reason="delegation_to_self",
        )
    if seal_id != ALL_SEALS and not delegator.has(Role.APPROVER, seal_id):
        raise PermissionDenied(
            f"{delegator.name} is not an approver of seal {seal_id}; only an approver's "
            "authority can be delegated",
            reason="not_an_approver",
        )
    if seal_id == ALL_SEALS and Role.APPROVER not in delegator.roles:
        raise PermissionDenied(
            f"{delegator.name} is not an approver; only an approver's authority can be delegated",
            reason="not_an_approver",
        )
    if valid_until <= valid_from:
        raise InvalidInput(
            f"the delegation ends ({valid_until.isoformat()}) before it starts "
            f"({valid_from.isoformat()}); give an end after the start",
            reason="bad_delegation_range",
        )
    if valid_until <= now:
        raise InvalidInput(
            f"the delegation's range ends in the past ({valid_until.isoformat()}); give a "
            "range that ends in the future",
            reason="delegation_in_past",
        )
    if valid_until - valid_from > max_duration:
        raise InvalidInput(
            f"the delegation lasts {valid_until - valid_from}, longer than the maximum "
            f"{max_duration} (requests.max_delegation_days); shorten it",
            reason="delegation_too_long",
        )
    cats = frozenset(categories)
    if any(not c.strip() for c in cats):
        raise InvalidInput("a delegation category is empty", reason="bad_delegation_category")
    for request in open_requests:
        if (
            request.state not in FINAL_STATES
            and request.requester == delegate.name
            and request.seal_id in _seal_scope(delegator, seal_id)
        ):
            raise PreconditionFailed(
                f"{delegate.name} is the requester of open request {request.request_id} on "
                f"seal {request.seal_id}; a requester never approves their own request (R05). "
                "Delegate to someone else, or wait until the request is finished",
                reason="delegate_is_requester",
            )
    for other in existing:
        if (
            other.state in LIVE_STATES
            and other.delegator == delegator.name
            and _seals_overlap(other.seal_id, seal_id)
            and other.valid_from < valid_until
            and valid_from < other.valid_until
        ):
            raise PreconditionFailed(
                f"{delegator.name} already has delegation {other.delegation_id} "
                f"({other.state.value}) for {other.seal_id or 'all seals'} from "
                f"{other.valid_from.isoformat()} to {other.valid_until.isoformat()}; "
                "delegations for one seal must not overlap. End that one first",
                reason="delegation_overlaps",
            )
    return Delegation(
        delegation_id=delegation_id,
        delegator=delegator.name,
        delegate=delegate.name,
        seal_id=seal_id,
        categories=cats,
        valid_from=valid_from,
        valid_until=valid_until,
        state=DelegationState.PROPOSED,
        proposed_by=proposer.name,
        created_at=now,
        reason=reason,
    )


def _seal_scope(delegator: Principal, seal_id: str) -> frozenset[str]:
    return delegator.seal_ids if seal_id == ALL_SEALS else frozenset({seal_id})


def _is_admin(principal: Principal, seal_id: str) -> bool:
    return principal.has(Role.ADMIN, seal_id or None)


def approve(delegation: Delegation, *, admin: Principal, now: datetime) -> Delegation:
    """The second admin's approval: PROPOSED -> ACTIVE (four eyes, like custody changes)."""
    if delegation.state is not DelegationState.PROPOSED:
        raise PreconditionFailed(
            f"delegation {delegation.delegation_id} is {delegation.state.value}; only a "
            "proposed delegation is approved",
            reason="delegation_not_proposed",
        )
    if not _is_admin(admin, delegation.seal_id):
        raise PermissionDenied(
            f"{admin.name} is not an admin of {delegation.seal_id or 'the seals'}; a second "
            "admin approves a delegation",
            reason="not_an_admin",
        )
    if admin.name in {delegation.proposed_by, delegation.delegator, delegation.delegate}:
        raise PermissionDenied(
            f"{admin.name} proposed, gives or receives delegation {delegation.delegation_id}; "
            "a second, different admin must approve it (four eyes)",
            reason="same_admin",
        )
    if now >= delegation.valid_until:
        raise PreconditionFailed(
            f"delegation {delegation.delegation_id} ended at "
            f"{delegation.valid_until.isoformat()} before it was approved; propose a new one",
            reason="delegation_in_past",
        )
    return replace(delegation, state=DelegationState.ACTIVE, approved_by=admin.name)


def refuse(delegation: Delegation, *, admin: Principal, now: datetime, why: str) -> Delegation:
    if delegation.state is not DelegationState.PROPOSED:
        raise PreconditionFailed(
            f"delegation {delegation.delegation_id} is {delegation.state.value}; only a "
            "proposed delegation is refused",
            reason="delegation_not_proposed",
        )
    if not _is_admin(admin, delegation.seal_id):
        raise PermissionDenied(f"{admin.name} is not an admin", reason="not_an_admin")
    return replace(
        delegation, state=DelegationState.REFUSED, ended_at=now, ended_by=admin.name, reason=why
    )


def end(delegation: Delegation, *, by: Principal, now: datetime) -> Delegation:
    """End early: the delegator, the delegate or an admin. Voids approvals made under it."""
    if delegation.state not in LIVE_STATES:
        raise PreconditionFailed(
            f"delegation {delegation.delegation_id} is already {delegation.state.value}",
            reason="delegation_final",
        )
    if by.name not in {delegation.delegator, delegation.delegate} and not _is_admin(
        by, delegation.seal_id
    ):
        raise PermissionDenied(
            f"{by.name} may not end delegation {delegation.delegation_id}; the delegator, the "
            "delegate or an admin ends it",
            reason="not_delegation_party",
        )
    return replace(delegation, state=DelegationState.ENDED, ended_at=now, ended_by=by.name)


def delegation_for(
    delegations: Sequence[Delegation],
    *,
    delegate: str,
    seal_id: str,
    category: str,
    at: datetime,
    on_behalf_of: str = "",
) -> Delegation:
    """The one delegation under which ``delegate`` approves now; refuse if none or unclear."""
    found = [
        d
        for d in delegations
        if d.delegate == delegate
        and d.covers(seal_id, category, at)
        and (not on_behalf_of or d.delegator == on_behalf_of)
    ]
    if not found:
        who = f" from {on_behalf_of}" if on_behalf_of else ""
        raise NotFound(
            f"{delegate} holds no delegation{who} in force for seal {seal_id}, category "
            f"'{category}' now; approve as yourself or ask for a delegation",
            reason="no_delegation",
        )
    if len(found) > 1:
        names = ", ".join(sorted(d.delegator for d in found))
        raise InvalidInput(
            f"{delegate} holds delegations from several approvers ({names}); say on whose "
            "behalf you approve (--for NAME)",
            reason="delegation_ambiguous",
        )
    return found[0]


def expire(delegation: Delegation, *, now: datetime) -> Delegation:
    """The sweeper: an ACTIVE delegation past its range ends (its approvals are voided)."""
    if not delegation.expired(now):
        raise PreconditionFailed(
            f"delegation {delegation.delegation_id} has not expired", reason="not_expired"
        )
    return replace(delegation, state=DelegationState.ENDED, ended_at=now, ended_by="(expired)")
