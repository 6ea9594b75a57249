"""Approval policy as small composable rules that fail closed (SEAL-RULES R05).

A policy is satisfied only when it has at least one rule and every rule is
satisfied. An empty policy is a configuration error, never a pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from seald.domain.errors import ConfigError
from seald.domain.model import Approval


class ApprovalRule(Protocol):
    def unmet(self, requester: str, approvals: Sequence[Approval]) -> str | None:
        """None if satisfied, else what is still missing, in words."""


def distinct_approvers(requester: str, approvals: Sequence[Approval]) -> frozenset[str]:
    """Approvers who count: each principal once, never the requester."""
    return frozenset(a.approver for a in approvals if a.approver != requester)


@dataclass(frozen=True)
class MinimumDistinctApprovers:
    """At least ``count`` distinct principals other than the requester."""

    count: int

    def unmet(self, requester: str, approvals: Sequence[Approval]) -> str | None:
        have = len(distinct_approvers(requester, approvals))
        if have >= self.count:
            return None
        return f"{self.count - have} more approval(s) needed ({have} of {self.count})"


@dataclass(frozen=True)
class ApprovalPolicy:
    rules: tuple[ApprovalRule, ...]

    def __post_init__(self) -> None:
        if not self.rules:
            raise ConfigError(
                "an approval policy needs at least one rule; an empty one never passes"
            )

    def unmet(self, requester: str, approvals: Sequence[Approval]) -> list[str]:
        missing = [rule.unmet(requester, approvals) for rule in self.rules]
        return [m for m in missing if m is not None]

    def satisfied(self, requester: str, approvals: Sequence[Approval]) -> bool:
        return not self.unmet(requester, approvals)


def default_policy(required_approvals: int) -> ApprovalPolicy:
    if required_approvals < 2:
        raise ConfigError(
            f"required_approvals is {required_approvals}; dual control needs at least 2 (R05)"
        )
    return ApprovalPolicy((MinimumDistinctApprovers(required_approvals),))
