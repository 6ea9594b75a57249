"""Approval policy as small composable rules that fail closed (SEAL-RULES R05).

A policy is satisfied only when it has at least one rule and every rule is
satisfied. An empty policy is a configuration error, never a pass.

Who may approve is decided when the policy is built (:func:`build_policy`): the
principals that are approvers of the seal, members of one of its approver groups
(R05 default authority per seal type) and inside their authorisation window (R03)
*now*. The same function builds the policy again at signing time, so a principal
removed, moved out of the group or expired in between no longer counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from seald.domain.chains import (
    Chain,
    CountedApproval,
    RequestFacts,
    Standing,
    check_turn,
    evaluate,
    group_names,
    resolve,
)
from seald.domain.errors import ConfigError, PermissionDenied, SealError
from seald.domain.model import Approval, Principal, Role, SealType

# R05 default authority: official and contract seal -> general manager (or delegate);
# finance seal -> finance director (or delegate); other seals -> department manager.
GENERAL_MANAGER = "general_manager"
FINANCE_DIRECTOR = "finance_director"
DEPARTMENT_MANAGER = "department_manager"
DEFAULT_AUTHORITY: Mapping[SealType, tuple[str, ...]] = {
    SealType.OFFICIAL: (GENERAL_MANAGER,),
    SealType.CONTRACT: (GENERAL_MANAGER,),
    SealType.FINANCE: (FINANCE_DIRECTOR,),
    SealType.LEGAL_REPRESENTATIVE: (DEPARTMENT_MANAGER,),
    SealType.PERSONAL: (DEPARTMENT_MANAGER,),
}


class ApprovalRule(Protocol):
    def unmet(self, requester: str, approvals: Sequence[Approval]) -> str | None:
        """None if satisfied, else what is still missing, in words."""


def counted_identity(approval: Approval) -> str:
    """Who an approval counts for: the delegator when a delegate approved for them."""
    return approval.acting_for or approval.approver


def distinct_approvers(requester: str, approvals: Sequence[Approval]) -> frozenset[str]:
    """Approvers who count: each principal once (a delegate as the delegator, so the two
    together count once), never the requester, never a delegate acting on their own
    request."""
    return frozenset(
        counted_identity(a)
        for a in approvals
        if a.approver != requester and counted_identity(a) != requester
    )


def counted_approvals(approvals: Sequence[Approval]) -> list[CountedApproval]:
    return [CountedApproval(counted_identity(a), a.approver, a.approved_at) for a in approvals]


@dataclass(frozen=True)
class MinimumDistinctApprovers:
    """At least ``count`` distinct principals other than the requester.

    With ``eligible`` set, only those principals count (the rest are ignored).
    """

    count: int
    eligible: frozenset[str] | None = None

    def unmet(self, requester: str, approvals: Sequence[Approval]) -> str | None:
        counted = distinct_approvers(requester, approvals)
        if self.eligible is not None:
            counted = counted & self.eligible
        have = len(counted)
        if have >= self.count:
            return None
        return f"{self.count - have} more approval(s) needed ({have} of {self.count})"


@dataclass(frozen=True)
class OneFromEachGroup:
    """At least one approval from every listed group ("one from each" factor)."""

    groups: tuple[tuple[str, frozenset[str]], ...]

    def __post_init__(self) -> None:
        if not self.groups:
            raise ConfigError("one-from-each-group needs at least one group")

    def unmet(self, requester: str, approvals: Sequence[Approval]) -> str | None:
        counted = distinct_approvers(requester, approvals)
        missing = [name for name, members in self.groups if not counted & members]
        if not missing:
            return None
        return "an approval is still needed from group(s): " + ", ".join(missing)


@dataclass(frozen=True)
class ApprovalPolicy:
    rules: tuple[ApprovalRule, ...]
    # Who may approve at all; None = anyone the lifecycle lets approve (role + seal).
    eligible: frozenset[str] | None = None
    approver_groups: tuple[str, ...] = ()
    # Issue 17: an ordered / conditional chain on top of the rules (None = unordered).
    chain: Chain | None = None

    def __post_init__(self) -> None:
        if not self.rules:
            raise ConfigError("an approval policy needs at least one rule; an empty one never passes")

    def unmet(
        self, requester: str, approvals: Sequence[Approval], facts: RequestFacts | None = None
    ) -> list[str]:
        missing = [rule.unmet(requester, approvals) for rule in self.rules]
        found = [m for m in missing if m is not None]
        if self.chain is not None:
            if facts is None:  # fail closed: a chain is never met without the request's facts
                return [*found, "the request's category and amount are unknown to the chain"]
            standing = evaluate(self.chain, facts, requester, counted_approvals(approvals))
            if not standing.complete:
                found.append(_chain_missing(standing))
        return found

    def satisfied(
        self, requester: str, approvals: Sequence[Approval], facts: RequestFacts | None = None
    ) -> bool:
        return not self.unmet(requester, approvals, facts)

    def standing(
        self, requester: str, approvals: Sequence[Approval], facts: RequestFacts
    ) -> Standing | None:
        """Where the request stands in its chain; None for an unordered policy."""
        if self.chain is None:
            return None
        return evaluate(self.chain, facts, requester, counted_approvals(approvals))

    def check_turn(
        self, requester: str, approvals: Sequence[Approval], facts: RequestFacts, identity: str
    ) -> None:
        """Refuse an approval for a step that is not open (out of order: refused, not held)."""
        if self.chain is not None:
            check_turn(self.chain, facts, requester, counted_approvals(approvals), identity)

    def check_may_approve(self, approver: str) -> None:  # approver: the counted identity
        """R05: only the approval path of this seal type may approve."""
        if self.eligible is None or approver in self.eligible:
            return
        groups = ", ".join(self.approver_groups) or "(none)"
        raise PermissionDenied(
            f"{approver} is not in this seal's approval path (approver groups: {groups}) or "
            "the authorisation is outside its validity window (R03, R05); ask an admin",
            reason="not_in_approval_path",
        )


@dataclass(frozen=True)
class JobPolicy:
    """A sealing job's approval rule (issue 16): ONE set of approvals must meet EVERY
    seal's own policy. An approval counts for a seal only where that seal's policy lists
    the approver (its eligible set, its groups, its chain), so one person counts for
    several seals only where each of those policies allows them.

    Same interface as ApprovalPolicy where lifecycle uses it (unmet, check_may_approve,
    check_turn); pure."""

    policies: tuple[tuple[str, ApprovalPolicy], ...]

    def __post_init__(self) -> None:
        if not self.policies:
            raise ConfigError("a job policy needs at least one seal's policy; an empty one never passes")

    def unmet(
        self, requester: str, approvals: Sequence[Approval], facts: RequestFacts | None = None
    ) -> list[str]:
        missing: list[str] = []
        for seal_id, policy in self.policies:
            missing += [f"seal {seal_id}: {m}" for m in policy.unmet(requester, approvals, facts)]
        return missing

    def satisfied(
        self, requester: str, approvals: Sequence[Approval], facts: RequestFacts | None = None
    ) -> bool:
        return not self.unmet(requester, approvals, facts)

    @property
    def eligible(self) -> frozenset[str] | None:
        """Who may approve for at least one seal (None = a seal's policy names nobody)."""
        sets = [p.eligible for _, p in self.policies]
        if any(e is None for e in sets):
            return None
        return frozenset().union(*(e for e in sets if e is not None))

    def standing(
        self, requester: str, approvals: Sequence[Approval], facts: RequestFacts
    ) -> Standing | None:
        """The first seal's chain standing (the API shows one; unmet names every seal)."""
        return self.policies[0][1].standing(requester, approvals, facts)

    def check_may_approve(self, approver: str) -> None:
        """An approver of at least one of the job's seals' approval paths."""
        refusals: list[PermissionDenied] = []
        for _, policy in self.policies:
            try:
                policy.check_may_approve(approver)
                return
            except PermissionDenied as ex:
                refusals.append(ex)
        seals = ", ".join(seal_id for seal_id, _ in self.policies)
        raise PermissionDenied(
            f"{approver} is in the approval path of none of this job's seals ({seals}) or "
            "the authorisation is outside its validity window (R03, R05); ask an admin",
            reason="not_in_approval_path",
        )

    def check_turn(
        self, requester: str, approvals: Sequence[Approval], facts: RequestFacts, identity: str
    ) -> None:
        """Refused only when no seal the approver may approve for has a step open for them."""
        first: SealError | None = None
        for _, policy in self.policies:
            if policy.eligible is not None and identity not in policy.eligible:
                continue
            try:
                policy.check_turn(requester, approvals, facts, identity)
                return
            except SealError as ex:
                first = first or ex
        if first is not None:
            raise first


AnyPolicy = ApprovalPolicy | JobPolicy


def _chain_missing(standing: Standing) -> str:
    step = next(s for s in standing.steps if s.state == "current")
    who = ", ".join(step.needed_from) or "nobody eligible"
    return f"step '{step.name}' needs {step.requirement} (from: {who})"


def default_policy(required_approvals: int) -> ApprovalPolicy:
    if required_approvals < 2:
        raise ConfigError(f"required_approvals is {required_approvals}; dual control needs at least 2 (R05)")
    return ApprovalPolicy((MinimumDistinctApprovers(required_approvals),))


def approver_groups_for(seal_type: SealType, configured: Sequence[str]) -> tuple[str, ...]:
    """The seal's approver groups: as configured, else R05's default authority."""
    return tuple(configured) if configured else DEFAULT_AUTHORITY[seal_type]


def build_policy(
    *,
    seal_id: str,
    seal_type: SealType,
    required_approvals: int,
    approver_groups: Sequence[str],
    one_from_each_group: bool,
    principals: Iterable[Principal],
    now: datetime,
    chain: Chain | None = None,
) -> ApprovalPolicy:
    """The policy of one seal at ``now`` (built again at signing time).

    With ``chain`` (group names only), its groups are filled with the principals who are
    approvers of the seal, in the group and inside their window at ``now``."""
    if required_approvals < 2:
        raise ConfigError(f"required_approvals is {required_approvals}; dual control needs at least 2 (R05)")
    groups = group_names(chain) if chain is not None else approver_groups_for(seal_type, approver_groups)
    members: dict[str, set[str]] = {g: set() for g in groups}
    for p in principals:
        if not p.has(Role.APPROVER, seal_id):
            continue
        if p.valid_from is not None and now < p.valid_from:
            continue
        if p.valid_until is not None and now >= p.valid_until:
            continue
        for g in p.groups & set(groups):
            members[g].add(p.name)
    eligible = frozenset().union(*members.values()) if members else frozenset()
    rules: list[ApprovalRule] = [MinimumDistinctApprovers(required_approvals, eligible)]
    if one_from_each_group:
        rules.append(OneFromEachGroup(tuple((g, frozenset(members[g])) for g in groups)))
    resolved = resolve(chain, members_frozen(members)) if chain is not None else None
    return ApprovalPolicy(tuple(rules), eligible=eligible, approver_groups=groups, chain=resolved)


def members_frozen(members: Mapping[str, set[str]]) -> dict[str, frozenset[str]]:
    return {g: frozenset(m) for g, m in members.items()}
