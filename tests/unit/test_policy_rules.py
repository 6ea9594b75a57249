"""Pure policy and seal-lifecycle rules, table-driven, named after R02, R03, R05, R06."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from seald.domain.errors import (
    AlreadyDone,
    ConfigError,
    InvalidInput,
    PermissionDenied,
    PreconditionFailed,
)
from seald.domain.model import Approval, Principal, Role, SealStatus, SealType
from seald.domain.policy import (
    DEFAULT_AUTHORITY,
    ApprovalPolicy,
    MinimumDistinctApprovers,
    OneFromEachGroup,
    build_policy,
)
from seald.domain.seals import (
    PROPOSAL_TTL,
    Proposal,
    SealAction,
    SealState,
    check_window,
    decide,
    next_status,
)

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


def person(name: str, *groups: str, role: Role = Role.APPROVER, **window: datetime) -> Principal:
    return Principal(
        name=name,
        display_name=name,
        roles=frozenset({role}),
        seal_ids=frozenset({"s"}),
        groups=frozenset(groups),
        valid_from=window.get("valid_from"),
        valid_until=window.get("valid_until"),
    )


def approvals(*names: str) -> list[Approval]:
    return [Approval(approver=n, approval_digest="d", approved_at=NOW) for n in names]


PEOPLE = [
    person("gm", "general_manager"),
    person("deputy", "general_manager"),
    person("fd", "finance_director"),
    person("fd2", "finance_director"),
    person("dm", "department_manager"),
    person("dm2", "department_manager"),
    person("req", "general_manager", role=Role.REQUESTER),
    person("old", "general_manager", valid_until=NOW - timedelta(days=1)),
    person("future", "general_manager", valid_from=NOW + timedelta(days=1)),
]


@pytest.mark.parametrize(
    ("seal_type", "eligible"),
    [
        (SealType.OFFICIAL, {"gm", "deputy"}),
        (SealType.CONTRACT, {"gm", "deputy"}),
        (SealType.FINANCE, {"fd", "fd2"}),
        (SealType.PERSONAL, {"dm", "dm2"}),
        (SealType.LEGAL_REPRESENTATIVE, {"dm", "dm2"}),
    ],
)
def test_r05_default_authority_per_seal_type(seal_type: SealType, eligible: set[str]) -> None:
    policy = build_policy(
        seal_id="s",
        seal_type=seal_type,
        required_approvals=2,
        approver_groups=(),
        one_from_each_group=False,
        principals=PEOPLE,
        now=NOW,
    )
    assert policy.approver_groups == DEFAULT_AUTHORITY[seal_type]
    assert policy.eligible == eligible  # never the requester, never outside the window
    first, second = sorted(eligible)
    assert policy.satisfied("req", approvals(first, second))
    outsider = "gm" if "gm" not in eligible else "fd"
    assert not policy.satisfied("req", approvals(first, outsider))
    with pytest.raises(PermissionDenied) as refused:
        policy.check_may_approve(outsider)
    assert refused.value.reason == "not_in_approval_path"


@pytest.mark.parametrize(
    ("approvers", "requester", "ok"),
    [
        (("a", "b"), "r", True),
        (("a", "a"), "r", False),  # one person twice counts once
        (("a", "r"), "r", False),  # the requester never counts
        (("a",), "r", False),
        (("a", "b", "c"), "r", True),
    ],
)
def test_r05_m_of_n_distinct_principals(approvers: tuple[str, ...], requester: str, ok: bool) -> None:
    policy = ApprovalPolicy((MinimumDistinctApprovers(2),))
    assert policy.satisfied(requester, approvals(*approvers)) is ok


def test_r05_one_from_each_group_factor() -> None:
    policy = build_policy(
        seal_id="s",
        seal_type=SealType.FINANCE,
        required_approvals=2,
        approver_groups=("finance_director", "general_manager"),
        one_from_each_group=True,
        principals=PEOPLE,
        now=NOW,
    )
    assert not policy.satisfied("req", approvals("fd", "fd2"))
    assert "general_manager" in policy.unmet("req", approvals("fd", "fd2"))[0]
    assert policy.satisfied("req", approvals("fd", "gm"))


def test_r05_empty_policy_and_single_approver_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        ApprovalPolicy(())
    with pytest.raises(ConfigError):
        OneFromEachGroup(())
    with pytest.raises(ConfigError):
        build_policy(
            seal_id="s",
            seal_type=SealType.OFFICIAL,
            required_approvals=1,
            approver_groups=(),
            one_from_each_group=False,
            principals=PEOPLE,
            now=NOW,
        )


def test_r05_r03_principal_outside_window_stops_counting_at_signing_time() -> None:
    """The policy is rebuilt at signing time: an approver whose authorisation ended no longer counts."""
    leaving = person("leaving", "general_manager", valid_until=NOW + timedelta(hours=1))
    people = [*PEOPLE, leaving]

    def at(when: datetime) -> ApprovalPolicy:
        return build_policy(
            seal_id="s",
            seal_type=SealType.OFFICIAL,
            required_approvals=2,
            approver_groups=(),
            one_from_each_group=False,
            principals=people,
            now=when,
        )

    assert at(NOW).satisfied("req", approvals("gm", "leaving"))
    assert not at(NOW + timedelta(hours=2)).satisfied("req", approvals("gm", "leaving"))


@pytest.mark.parametrize(
    ("valid_from", "valid_until", "ok"),
    [
        (None, None, True),
        (NOW - timedelta(days=1), NOW + timedelta(days=1), True),
        (NOW + timedelta(seconds=1), None, False),
        (None, NOW, False),  # the end is exclusive
    ],
)
def test_r03_validity_window(valid_from: datetime | None, valid_until: datetime | None, ok: bool) -> None:
    if ok:
        check_window("seal s", valid_from, valid_until, NOW)
        return
    with pytest.raises(PreconditionFailed) as refused:
        check_window("seal s", valid_from, valid_until, NOW)
    assert refused.value.reason == "outside_validity_window"
    assert "seal s" in refused.value.message


A, S, L, D = SealStatus.ACTIVE, SealStatus.SUSPENDED, SealStatus.LOST, SealStatus.DESTROYED
SUSPEND, RESUME, LOST, DESTROY = (
    SealAction.SUSPEND,
    SealAction.RESUME,
    SealAction.REPORT_LOST,
    SealAction.DESTROY,
)
P, CREATE, IMPORT, CHANGE = (
    SealStatus.PENDING,
    SealAction.CREATE_KEY,
    SealAction.IMPORT_CERTIFICATE,
    SealAction.CHANGE,
)


@pytest.mark.parametrize(
    ("current", "action", "expected"),
    [
        (A, SUSPEND, S),
        (S, SUSPEND, AlreadyDone),
        (L, SUSPEND, PreconditionFailed),
        (D, SUSPEND, PreconditionFailed),
        (A, LOST, L),
        (S, LOST, L),
        (L, LOST, AlreadyDone),
        (S, RESUME, A),
        (A, RESUME, AlreadyDone),
        (L, RESUME, PreconditionFailed),  # a lost seal is never resumed
        (A, DESTROY, D),
        (L, DESTROY, D),
        (D, DESTROY, AlreadyDone),
        (D, RESUME, PreconditionFailed),
        # creation (刻制): a pending seal gets its key, then its certificate
        (P, CREATE, P),
        (P, IMPORT, A),
        (P, SUSPEND, PreconditionFailed),
        (P, RESUME, PreconditionFailed),
        (P, CHANGE, PreconditionFailed),
        (P, LOST, L),
        (P, DESTROY, D),
        (A, CREATE, A),  # only a CSR for the existing key (renewal), never a second key
        (A, IMPORT, AlreadyDone),  # renewal goes through CHANGE
        (S, IMPORT, PreconditionFailed),
        (L, CREATE, PreconditionFailed),
        (D, CREATE, PreconditionFailed),
        (A, CHANGE, A),
        (S, CHANGE, PreconditionFailed),
    ],
)
def test_r02_lifecycle_transition_table(current: SealStatus, action: SealAction, expected: object) -> None:
    if isinstance(expected, SealStatus):
        assert next_status(current, action) is expected
    else:
        assert isinstance(expected, type)
        with pytest.raises(expected):
            next_status(current, action)


ADMIN1 = person("admin1", role=Role.ADMIN)
ADMIN2 = person("admin2", role=Role.ADMIN)


def test_r02_two_admin_rule_for_resume_and_destroy() -> None:
    state = SealState("s", SealStatus.SUSPENDED)
    first = decide(
        state, action=RESUME, admin=ADMIN1, comment="", proposal_id="p-000001", pending=None, now=NOW
    )
    assert not first.executed and first.proposal is not None
    assert first.state.status is SealStatus.SUSPENDED
    with pytest.raises(PermissionDenied, match="second"):
        decide(
            state,
            action=RESUME,
            admin=ADMIN1,
            comment="",
            proposal_id="p-000001",
            pending=first.proposal,
            now=NOW,
        )
    with pytest.raises(InvalidInput) as mismatch:
        decide(
            SealState("s", SealStatus.SUSPENDED),
            action=DESTROY,
            admin=ADMIN2,
            comment="",
            proposal_id="p-000001",
            pending=first.proposal,
            now=NOW,
        )
    assert mismatch.value.reason == "proposal_mismatch"
    late = NOW + PROPOSAL_TTL + timedelta(seconds=1)
    with pytest.raises(PreconditionFailed, match="expired"):
        decide(
            state,
            action=RESUME,
            admin=ADMIN2,
            comment="",
            proposal_id="p-000001",
            pending=first.proposal,
            now=late,
        )
    done = decide(
        state,
        action=RESUME,
        admin=ADMIN2,
        comment="ok",
        proposal_id="p-000001",
        pending=first.proposal,
        now=NOW,
    )
    assert done.executed and done.state.status is SealStatus.ACTIVE
    assert "admin1" in done.state.status_reason and "admin2" in done.state.status_reason


def test_r02_suspend_and_lost_need_one_admin_and_no_proposal() -> None:
    state = SealState("s")
    done = decide(state, action=SUSPEND, admin=ADMIN1, comment="", proposal_id="", pending=None, now=NOW)
    assert done.executed and done.state.status is SealStatus.SUSPENDED and done.state.since == NOW
    with pytest.raises(PermissionDenied) as refused:
        decide(
            state,
            action=SUSPEND,
            admin=person("x"),
            comment="",
            proposal_id="",
            pending=None,
            now=NOW,
        )
    assert refused.value.reason == "not_an_admin"


def test_r02_stored_proposal_is_a_plain_value() -> None:
    p = Proposal("p-000001", "s", RESUME, "admin1", "", NOW)
    assert p.action is SealAction.RESUME
