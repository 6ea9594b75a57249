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
