"""Issue 17: approver delegation as pure rules (seald.domain.delegation + lifecycle)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from seald.domain import delegation as deleg
from seald.domain import lifecycle
from seald.domain.delegation import ALL_SEALS, Delegation, DelegationState
from seald.domain.errors import (
    AlreadyDone,
    InvalidInput,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    SealError,
)
from seald.domain.model import Document, Placement, Principal, RequestState, Role, Seal, SealRequest, SealType
from seald.domain.policy import build_policy, distinct_approvers

T0 = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
MAX = timedelta(days=30)


def person(name: str, *roles: Role, groups: tuple[str, ...] = ()) -> Principal:
    return Principal(name, name, frozenset(roles), frozenset({"contract"}), groups=frozenset(groups))


REQ = person("zhang.wei", Role.REQUESTER)
GM = person("li.na", Role.APPROVER, groups=("general_manager",))
GM2 = person("wang.fang", Role.APPROVER, groups=("general_manager",))
DEPUTY = person("deputy", Role.APPROVER)
ADMIN1, ADMIN2 = person("chen.jie", Role.ADMIN), person("zhou.qiang", Role.ADMIN)
PEOPLE = (REQ, GM, GM2, DEPUTY, ADMIN1, ADMIN2)
DOC = Document(0, "c.pdf", 10, hashlib.sha256(b"x").hexdigest())
SEAL = Seal(
    "contract",
    SealType.CONTRACT,
    "o",
    "d",
    frozenset({"contract", "nda"}),
    2,
    40.0,
    certificate_sha256="c" * 64,
)
POLICY = build_policy(
    seal_id="contract",
    seal_type=SealType.CONTRACT,
    required_approvals=2,
    approver_groups=(),
    one_from_each_group=False,
    principals=PEOPLE,
    now=T0,
)


def propose(**kw: object) -> Delegation:
    args: dict[str, object] = dict(
        delegation_id="D1",
        proposer=GM,
        delegator=GM,
        delegate=DEPUTY,
        seal_id="contract",
        categories=(),
        valid_from=T0,
        valid_until=T0 + 7 * DAY,
        existing=(),
        open_requests=(),
        max_duration=MAX,
        now=T0,
    )
    args.update(kw)
    return deleg.propose(**args)  # type: ignore[arg-type]


def active(**kw: object) -> Delegation:
    return deleg.approve(propose(**kw), admin=ADMIN2, now=T0)


def submit(requester: Principal = REQ, category: str = "contract", rid: str = "r1") -> SealRequest:
    return lifecycle.submit(
        request_id=rid,
        requester=requester,
        seal=SEAL,
        reason="r",
        category=category,
        placement=Placement(1, 10, 10, 40),
        documents=[DOC],
        now=T0,
        ttl=timedelta(days=3),
        host="h",
    )


def approve(r: SealRequest, who: Principal, d: Delegation | None = None, at: datetime = T0) -> SealRequest:
    return lifecycle.approve(
        r,
        approver=who,
        document_sha256=[DOC.sha256],
        approval_digest=r.approval_digest,
        policy=POLICY,
        now=at,
        delegation=d,
    )


def test_delegation_delegate_approves_in_the_delegators_place() -> None:
    d = active()
    r = approve(approve(submit(), DEPUTY, d), GM2)
    assert r.state is RequestState.APPROVED
    first = r.approvals[0]
    assert (first.approver, first.acting_for, first.delegation_id) == ("deputy", "li.na", "D1")
    assert distinct_approvers(r.requester, r.approvals) == {"li.na", "wang.fang"}


def test_delegation_delegator_plus_delegate_count_once() -> None:
    d = active()
    r = approve(submit(), DEPUTY, d)
    with pytest.raises(AlreadyDone, match=r"li\.na already approved"):
        approve(r, GM)
    r2 = approve(submit(rid="r2"), GM)
    with pytest.raises(AlreadyDone):
        approve(r2, DEPUTY, d)
    assert r2.state is RequestState.PENDING


def test_delegation_never_for_a_request_the_delegate_submitted() -> None:
    # The delegate is also a requester of the seal; the delegation was made before they submitted.
    both = person("deputy", Role.APPROVER, Role.REQUESTER)
    d = active(delegate=both)
    with pytest.raises(PermissionDenied) as refused:
        approve(submit(requester=both), both, d)
    assert refused.value.reason == "requester_cannot_approve"


def test_delegation_scope_dates_and_categories() -> None:
    d = active(categories=("nda",), valid_from=T0 + DAY, valid_until=T0 + 3 * DAY)
    with pytest.raises(PermissionDenied, match="not in force"):
        approve(submit(category="nda"), DEPUTY, d, at=T0)  # not started yet
    with pytest.raises(PermissionDenied, match="not in force"):
        approve(submit(category="contract"), DEPUTY, d, at=T0 + 2 * DAY)  # other category
    assert approve(submit(category="nda"), DEPUTY, d, at=T0 + 2 * DAY).approvals[0].acting_for == "li.na"
    with pytest.raises(PermissionDenied, match="not in force"):
        approve(submit(category="nda"), DEPUTY, d, at=T0 + 3 * DAY)  # expired
    everywhere = active(seal_id=ALL_SEALS)
    assert everywhere.covers("contract", "x", T0) and everywhere.covers("official", "y", T0)
    assert not d.covers("official", "nda", T0 + 2 * DAY)


def test_delegation_proposed_counts_for_nothing_until_a_second_admin_approves() -> None:
    d = propose()
    assert d.state is DelegationState.PROPOSED and not d.in_force(T0)
    with pytest.raises(NotFound):
        deleg.delegation_for([d], delegate="deputy", seal_id="contract", category="contract", at=T0)
    for admin in (GM, DEPUTY):  # not an admin / a party
        with pytest.raises(PermissionDenied):
            deleg.approve(d, admin=admin, now=T0)
    by_admin = propose(proposer=ADMIN1)
    with pytest.raises(PermissionDenied, match="four eyes"):
        deleg.approve(by_admin, admin=ADMIN1, now=T0)
    assert deleg.approve(by_admin, admin=ADMIN2, now=T0).approved_by == "zhou.qiang"


@pytest.mark.parametrize(
    ("kw", "error", "reason"),
    [
        (dict(delegate=GM), InvalidInput, "delegation_to_self"),
        (dict(valid_from=T0 - 3 * DAY, valid_until=T0 - DAY), InvalidInput, "delegation_in_past"),
        (dict(valid_until=T0 + 31 * DAY), InvalidInput, "delegation_too_long"),
        (dict(valid_until=T0 - DAY), InvalidInput, "bad_delegation_range"),
        (dict(proposer=GM2), PermissionDenied, "not_delegator_or_admin"),
        (dict(delegator=REQ, proposer=REQ), PermissionDenied, "not_an_approver"),
    ],
)
def test_delegation_refusals(kw: dict[str, object], error: type[SealError], reason: str) -> None:
    with pytest.raises(error) as refused:
        propose(**kw)
    assert refused.value.reason == reason, refused.value.message


def test_delegation_refused_to_the_requester_of_an_open_request() -> None:
    both = person("deputy", Role.APPROVER, Role.REQUESTER)
    open_request = submit(requester=both)
    with pytest.raises(PreconditionFailed, match="requester of open request r1") as refused:
        propose(delegate=both, open_requests=[open_request])
    assert refused.value.reason == "delegate_is_requester"
    finished = lifecycle.cancel(open_request, principal=both, now=T0)
    assert propose(delegate=both, open_requests=[finished]).state is DelegationState.PROPOSED


def test_delegation_overlapping_for_one_seal_refused_adjacent_allowed() -> None:
    first = active()
    with pytest.raises(PreconditionFailed) as refused:
        propose(delegation_id="D2", existing=[first], valid_from=T0 + DAY, valid_until=T0 + 9 * DAY)
    assert refused.value.reason == "delegation_overlaps"
    with pytest.raises(PreconditionFailed):
        propose(delegation_id="D2", existing=[first], seal_id=ALL_SEALS)
    after = propose(delegation_id="D2", existing=[first], valid_from=T0 + 7 * DAY, valid_until=T0 + 8 * DAY)
    assert after.state is DelegationState.PROPOSED
    ended = deleg.end(first, by=GM, now=T0)
    assert propose(delegation_id="D3", existing=[ended]).state is DelegationState.PROPOSED


def test_delegation_ending_or_expiry_voids_the_delegates_approvals_on_unsealed_requests() -> None:
    d = active()
    r = approve(approve(submit(), DEPUTY, d), GM2)
    assert r.state is RequestState.APPROVED
    ended = deleg.end(d, by=ADMIN1, now=T0 + DAY)
    voided = lifecycle.void_delegated_approvals(
        r, delegation_id=ended.delegation_id, policy=POLICY, now=T0 + DAY
    )
    assert voided.state is RequestState.PENDING
    assert [a.approver for a in voided.approvals] == ["wang.fang"]
    assert "delegation D1" in voided.state_reason
    # A sealed request keeps its approvals (it was sealed while the delegation was in force).
    signed = lifecycle.complete_signing(
        lifecycle.begin_signing(r, seal=SEAL, policy=POLICY, now=T0), sealed=[("s" * 64, 20)], now=T0
    )
    assert (
        lifecycle.void_delegated_approvals(signed, delegation_id="D1", policy=POLICY, now=T0 + DAY) == signed
    )
    # Expiry: the same void, by the sweeper, once valid_until has passed.
    assert d.expired(T0 + 7 * DAY) and not d.expired(T0 + 7 * DAY - timedelta(seconds=1))
    with pytest.raises(PreconditionFailed):
        deleg.end(ended, by=GM, now=T0 + DAY)


def test_delegation_for_picks_the_one_in_force_or_asks_on_whose_behalf() -> None:
    a = active()
    b = active(delegation_id="D2", delegator=GM2, proposer=GM2)
    with pytest.raises(InvalidInput, match="several approvers"):
        deleg.delegation_for([a, b], delegate="deputy", seal_id="contract", category="contract", at=T0)
    picked = deleg.delegation_for(
        [a, b], delegate="deputy", seal_id="contract", category="contract", at=T0, on_behalf_of="wang.fang"
    )
    assert picked.delegation_id == "D2"
    assert "deputy for li.na under delegation D1" in a.describe()
