"""Hypothesis state machine over the pure request lifecycle, policy and seal lifecycle.

Invariants (issue 4): never SIGNED without a quorum of distinct eligible approvers on
exactly the request's digest; never signed while the seal is not active (after a
suspension or loss); never signed twice; rejection is final.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from seald.domain import lifecycle
from seald.domain.errors import SealError
from seald.domain.model import (
    Document,
    Placement,
    Principal,
    RequestState,
    Role,
    Seal,
    SealRequest,
    SealStatus,
    SealType,
)
from seald.domain.policy import build_policy
from seald.domain.seals import SealAction, SealState, decide

T0 = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
SEAL_ID = "contract"


def person(name: str, role: Role, *groups: str) -> Principal:
    return Principal(name, name, frozenset({role}), frozenset({SEAL_ID}), groups=frozenset(groups))


REQUESTER = person("zhang.wei", Role.REQUESTER)
GM = person("li.na", Role.APPROVER, "general_manager")
DEPUTY = person("wang.fang", Role.APPROVER, "general_manager")
OUTSIDER = person("sun.li", Role.APPROVER, "finance_director")  # approver, wrong group
ADMIN1, ADMIN2 = person("chen.jie", Role.ADMIN), person("zhou.qiang", Role.ADMIN)
APPROVERS = (GM, DEPUTY, OUTSIDER, REQUESTER)
PEOPLE = (REQUESTER, GM, DEPUTY, OUTSIDER, ADMIN1, ADMIN2)
ELIGIBLE = {GM.name, DEPUTY.name}
DOC = Document(index=0, name="c.pdf", size=10, sha256=hashlib.sha256(b"x").hexdigest())


class RequestMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.seal_state = SealState(SEAL_ID)
        self.requests: list[SealRequest] = []
        self.signed_times: dict[str, int] = {}
        self.rejected: set[str] = set()
        self.proposal_seq = 0

    def seal(self) -> Seal:
        return Seal(
            seal_id=SEAL_ID,
            seal_type=SealType.CONTRACT,
            organisation="o",
            display_name="d",
            categories=frozenset({"contract"}),
            required_approvals=2,
            size_mm=40.0,
            status=self.seal_state.status,
            certificate_sha256="c" * 64,
        )

    def policy(self) -> object:
        return build_policy(
            seal_id=SEAL_ID,
            seal_type=SealType.CONTRACT,
            required_approvals=2,
            approver_groups=(),
            one_from_each_group=False,
            principals=PEOPLE,
            now=self.now,
        )

    def _replace(self, index: int, new: SealRequest) -> None:
        self.requests[index] = new

    @rule()
    def submit(self) -> None:
        try:
            request = lifecycle.submit(
                request_id=f"r{len(self.requests)}",
                requester=REQUESTER,
                seal=self.seal(),
                reason="r",
                category="contract",
                placement=Placement(page=0, x_mm=10, y_mm=10, size_mm=40),
                documents=[DOC],
                now=self.now,
                ttl=timedelta(hours=2),
                host="h",
            )
        except SealError:
            assert self.seal_state.status is not SealStatus.ACTIVE
            return
        self.requests.append(request)

    @rule(data=st.data(), who=st.sampled_from(APPROVERS), honest=st.booleans())
    def approve(self, data: st.DataObject, who: Principal, honest: bool) -> None:
        if not self.requests:
            return
        i = data.draw(st.integers(0, len(self.requests) - 1))
        request = self.requests[i]
        digest = request.approval_digest if honest else "0" * 64
        try:
            if self.seal_state.status is not SealStatus.ACTIVE:
                lifecycle.check_seal_usable(self.seal(), request.category, self.now)
            new = lifecycle.approve(
                request,
                approver=who,
                document_sha256=[DOC.sha256],
                approval_digest=digest,
                policy=self.policy(),  # type: ignore[arg-type]
                now=self.now,
                use_ttl=timedelta(hours=1),
            )
        except SealError:
            return
        assert honest and who.name in ELIGIBLE
        self._replace(i, new)

    @rule(data=st.data(), who=st.sampled_from(APPROVERS))
    def withdraw(self, data: st.DataObject, who: Principal) -> None:
        if not self.requests:
            return
        i = data.draw(st.integers(0, len(self.requests) - 1))
        try:
            new = lifecycle.withdraw_approval(
                self.requests[i],
                approver=who,
                policy=self.policy(),  # type: ignore[arg-type]
                now=self.now,
            )
        except SealError:
            return
        assert self.requests[i].state not in (RequestState.SIGNED, RequestState.SIGNING)
        self._replace(i, new)

    @rule(data=st.data(), who=st.sampled_from(APPROVERS))
    def reject(self, data: st.DataObject, who: Principal) -> None:
        if not self.requests:
            return
        i = data.draw(st.integers(0, len(self.requests) - 1))
        try:
            new = lifecycle.reject(self.requests[i], approver=who, comment="no", now=self.now)
        except SealError:
            return
        self.rejected.add(new.request_id)
        self._replace(i, new)

    @rule(data=st.data(), complete=st.booleans())
    def sign(self, data: st.DataObject, complete: bool) -> None:
        if not self.requests:
            return
        i = data.draw(st.integers(0, len(self.requests) - 1))
        try:
            signing = lifecycle.begin_signing(
                self.requests[i],
                seal=self.seal(),
                policy=self.policy(),  # type: ignore[arg-type]
                now=self.now,
            )
        except SealError:
            return
        # What the invariants promise, checked at the moment of signing.
        assert self.seal_state.status is SealStatus.ACTIVE
        good = {
            a.approver
            for a in signing.approvals
            if a.approval_digest == signing.approval_digest and a.approver != signing.requester
        }
        assert len(good & ELIGIBLE) >= 2
        if complete:
            done = lifecycle.complete_signing(signing, sealed=[("s" * 64, 20)], now=self.now)
            self.signed_times[done.request_id] = self.signed_times.get(done.request_id, 0) + 1
            self._replace(i, done)
        else:
            self._replace(i, lifecycle.interrupt_signing(signing, why="token removed", now=self.now))

    @rule(action=st.sampled_from([SealAction.SUSPEND, SealAction.REPORT_LOST, SealAction.RESUME]))
    def admin(self, action: SealAction) -> None:
        self.proposal_seq += 1
        pid = f"proposal-{self.proposal_seq:04d}"
        try:
            first = decide(
                self.seal_state,
                action=action,
                admin=ADMIN1,
                comment="",
                proposal_id=pid,
                pending=None,
                now=self.now,
            )
            if not first.executed:
                first = decide(
                    self.seal_state,
                    action=action,
                    admin=ADMIN2,
                    comment="",
                    proposal_id=pid,
                    pending=first.proposal,
                    now=self.now,
                )
        except SealError:
            return
        self.seal_state = first.state
        if first.state.status is not SealStatus.ACTIVE:
            # What the shell does in the same transaction: void open approvals.
            for i, r in enumerate(self.requests):
                if r.state in (RequestState.PENDING, RequestState.APPROVED):
                    self._replace(i, lifecycle.void_approvals(r, why="stopped", now=self.now))

    @rule(minutes=st.integers(1, 90))
    def time_passes(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)
        for i, r in enumerate(self.requests):
            if lifecycle.is_expired(r, self.now):
                self._replace(i, lifecycle.expire(r, self.now))

    @rule(data=st.data())
    def tamper_document(self, data: st.DataObject) -> None:
        """Changing what was approved voids the approval: the digest no longer matches."""
        if not self.requests:
            return
        i = data.draw(st.integers(0, len(self.requests) - 1))
        r = self.requests[i]
        if r.state is RequestState.APPROVED:
            self._replace(i, replace(r, approval_digest=hashlib.sha256(b"other").hexdigest()))

    @invariant()
    def never_signed_twice(self) -> None:
        assert all(n == 1 for n in self.signed_times.values())

    @invariant()
    def rejection_is_final(self) -> None:
        for r in self.requests:
            if r.request_id in self.rejected:
                assert r.state is RequestState.REJECTED

    @invariant()
    def no_open_approvals_while_stopped(self) -> None:
        if self.seal_state.status is not SealStatus.ACTIVE:
            for r in self.requests:
                if r.state in (RequestState.PENDING, RequestState.APPROVED):
                    assert r.approvals == ()
                assert r.state is not RequestState.APPROVED


TestRequestMachine = RequestMachine.TestCase
TestRequestMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


# --- issue 17: ordered / conditional chains and approver delegation -------------------

from seald.domain import delegation as deleg  # noqa: E402
from seald.domain.chains import Chain, Condition, Group, Step, parse_money  # noqa: E402
from seald.domain.delegation import Delegation, DelegationState  # noqa: E402
from seald.domain.policy import counted_identity  # noqa: E402

C_REQ = person("zhang.wei", Role.REQUESTER)
C_DEPT = person("dept.head", Role.APPROVER, "department_manager")
C_LEGAL = person("legal.counsel", Role.APPROVER, "legal")
C_GM = person("li.na", Role.APPROVER, "general_manager")
C_GM2 = person("wang.fang", Role.APPROVER, "general_manager")
C_DEPUTY = person("deputy", Role.APPROVER)  # in no group: counts only under a delegation
C_PEOPLE = (C_REQ, C_DEPT, C_LEGAL, C_GM, C_GM2, C_DEPUTY, ADMIN1, ADMIN2)
C_APPROVERS = (C_DEPT, C_LEGAL, C_GM, C_GM2, C_DEPUTY, C_REQ)
CHAIN = Chain(
    (
        Step("department", Group("department_manager", frozenset())),
        Step(
            "legal",
            Group("legal", frozenset()),
            when=Condition(amount_over=parse_money("100000", "CNY")),
        ),
        Step("gm", Group("general_manager", frozenset())),
    )
)
AMOUNTS = st.sampled_from([None, ("5000", "CNY"), ("250000", "CNY"), ("100", "USD")])
STEP_OF = {C_DEPT.name: 0, C_LEGAL.name: 1, C_GM.name: 2, C_GM2.name: 2}


class ChainDelegationMachine(RuleBasedStateMachine):
    """Invariants: a signed request's counted approvers are distinct, never the requester,
    gave their approvals step after step in time, include legal exactly when the amount
    is not declared as <= 100000 CNY, and no approval under a delegation that has ended
    or expired survives on an open request; delegator plus delegate count once."""

    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.requests: list[SealRequest] = []
        self.delegations: list[Delegation] = []
        self.signed: list[SealRequest] = []

    def seal(self) -> Seal:
        return Seal(
            SEAL_ID,
            SealType.CONTRACT,
            "o",
            "d",
            frozenset({"contract"}),
            2,
            40.0,
            certificate_sha256="c" * 64,
        )

    def policy(self):  # type: ignore[no-untyped-def]
        return build_policy(
            seal_id=SEAL_ID,
            seal_type=SealType.CONTRACT,
            required_approvals=2,
            approver_groups=(),
            one_from_each_group=False,
            principals=C_PEOPLE,
            now=self.now,
            chain=CHAIN,
        )

    @rule(amount=AMOUNTS)
    def submit(self, amount: tuple[str, str] | None) -> None:
        self.requests.append(
            lifecycle.submit(
                request_id=f"r{len(self.requests)}",
                requester=C_REQ,
                seal=self.seal(),
                reason="r",
                category="contract",
                placement=Placement(page=0, x_mm=10, y_mm=10, size_mm=40),
                documents=[DOC],
                now=self.now,
                ttl=timedelta(hours=6),
                host="h",
                amount=parse_money(*amount) if amount else None,
            )
        )

    @rule(
        delegator=st.sampled_from([C_GM, C_DEPT, C_LEGAL]), hours=st.integers(-2, 4), length=st.integers(1, 5)
    )
    def delegate(self, delegator: Principal, hours: int, length: int) -> None:
        start = self.now + timedelta(hours=hours)
        try:
            proposed = deleg.propose(
                delegation_id=f"d{len(self.delegations)}",
                proposer=delegator,
                delegator=delegator,
                delegate=C_DEPUTY,
                seal_id=SEAL_ID,
                categories=(),
                valid_from=start,
                valid_until=start + timedelta(hours=length),
                existing=self.delegations,
                open_requests=self.requests,
                max_duration=timedelta(hours=4),
                now=self.now,
            )
        except SealError:
            return
        assert length <= 4 and start + timedelta(hours=length) > self.now
        self.delegations.append(deleg.approve(proposed, admin=ADMIN2, now=self.now))

    def _void(self, delegation_id: str) -> None:
        for i, r in enumerate(self.requests):
            self.requests[i] = lifecycle.void_delegated_approvals(
                r, delegation_id=delegation_id, policy=self.policy(), now=self.now
            )

    @rule(data=st.data())
    def end_delegation(self, data: st.DataObject) -> None:
        live = [i for i, d in enumerate(self.delegations) if d.state is DelegationState.ACTIVE]
        if not live:
            return
        i = data.draw(st.sampled_from(live))
        self.delegations[i] = deleg.end(self.delegations[i], by=ADMIN1, now=self.now)
        self._void(self.delegations[i].delegation_id)

    @rule(data=st.data(), who=st.sampled_from(C_APPROVERS), as_delegate=st.booleans())
    def approve(self, data: st.DataObject, who: Principal, as_delegate: bool) -> None:
        if not self.requests:
            return
        i = data.draw(st.integers(0, len(self.requests) - 1))
        request = self.requests[i]
        delegation = None
        if as_delegate:
            try:
                delegation = deleg.delegation_for(
                    self.delegations, delegate=who.name, seal_id=SEAL_ID, category="contract", at=self.now
                )
            except SealError:
                return
        before = evaluate_standing(self.policy(), request)
        try:
            new = lifecycle.approve(
                request,
                approver=who,
                document_sha256=[DOC.sha256],
                approval_digest=request.approval_digest,
                policy=self.policy(),
                now=self.now,
                use_ttl=timedelta(hours=1),
                delegation=delegation,
            )
        except SealError:
            return
        identity = delegation.delegator if delegation else who.name
        # Only someone of the current step is accepted (out of order is refused).
        assert (
            before is not None
            and identity in before.steps[[s.state for s in before.steps].index("current")].needed_from
        )
        assert identity != C_REQ.name and who.name != C_REQ.name
        self.requests[i] = new

    @rule(data=st.data())
    def deputy_approves(self, data: st.DataObject) -> None:
        """The delegate approves whatever is open under their delegation (frequent on purpose)."""
        self.approve(data, C_DEPUTY, True)

    @rule(data=st.data())
    def sign(self, data: st.DataObject) -> None:
        if not self.requests:
            return
        i = data.draw(st.integers(0, len(self.requests) - 1))
        try:
            signing = lifecycle.begin_signing(
                self.requests[i], seal=self.seal(), policy=self.policy(), now=self.now
            )
        except SealError:
            return
        done = lifecycle.complete_signing(signing, sealed=[("s" * 64, 20)], now=self.now)
        self.signed.append(done)
        self.requests[i] = done

    @rule(minutes=st.integers(1, 120))
    def time_passes(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)
        for d in self.delegations:
            if d.expired(self.now):
                self._void(d.delegation_id)  # what the shell's sweeper does
        for i, r in enumerate(self.requests):
            if lifecycle.is_expired(r, self.now):
                self.requests[i] = lifecycle.expire(r, self.now)

    @invariant()
    def signed_requests_went_through_the_chain_in_order(self) -> None:
        for r in self.signed:
            identities = [counted_identity(a) for a in r.approvals]
            assert len(identities) == len(set(identities))  # delegator + delegate count once
            assert C_REQ.name not in identities
            steps = [STEP_OF[x] for x in identities]
            times = [a.approved_at for a in r.approvals]
            order = sorted(zip(times, steps, strict=True))
            assert [s for _, s in order] == sorted(steps)  # step after step in time
            needs_legal = not (
                r.amount is not None and r.amount.currency == "CNY" and r.amount.value <= 100000
            )
            assert (1 in steps) == needs_legal
            assert 0 in steps and 2 in steps

    @invariant()
    def no_approval_survives_its_delegation(self) -> None:
        gone = {d.delegation_id for d in self.delegations if not d.in_force(self.now)}
        for r in self.requests:
            if r.state in (RequestState.PENDING, RequestState.APPROVED):
                assert not {a.delegation_id for a in r.approvals} & gone


def evaluate_standing(policy, request):  # type: ignore[no-untyped-def]
    return policy.standing(request.requester, request.approvals, lifecycle.facts_of(request))


TestChainDelegationMachine = ChainDelegationMachine.TestCase
TestChainDelegationMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
