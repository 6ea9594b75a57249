"""The pure request state machine (seald.domain.lifecycle), rule by rule."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from seald.domain import lifecycle
from seald.domain.errors import (
    AlreadyDone,
    ConfigError,
    InvalidInput,
    PermissionDenied,
    PreconditionFailed,
)
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
from seald.domain.policy import ApprovalPolicy, default_policy

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
SEAL = Seal(
    seal_id="contract",
    seal_type=SealType.CONTRACT,
    organisation="华夏示例科技有限公司",
    display_name="合同专用章",
    categories=frozenset({"contract"}),
    required_approvals=2,
    size_mm=40.0,
    certificate_sha256="c" * 64,
)
POLICY = default_policy(2)


def person(name: str, *roles: Role) -> Principal:
    return Principal(name, name, frozenset(roles), frozenset({"contract"}))


REQUESTER = person("zhang.wei", Role.REQUESTER)
LI = person("li.na", Role.APPROVER)
WANG = person("wang.fang", Role.APPROVER)
BOTH = person("zhao.lei", Role.REQUESTER, Role.APPROVER)
DOC = Document(index=0, name="合同.pdf", size=1234, sha256=hashlib.sha256(b"pdf").hexdigest())
PLACE = Placement(page=0, x_mm=150.0, y_mm=240.0, size_mm=40.0)


def new_request(requester: Principal = REQUESTER, **overrides: object) -> SealRequest:
    args: dict[str, object] = {
        "request_id": "r1",
        "requester": requester,
        "seal": SEAL,
        "reason": "采购合同",
        "category": "contract",
        "placement": PLACE,
        "documents": [DOC],
        "now": NOW,
        "ttl": timedelta(hours=72),
        "host": "seal-host-01",
    }
    args.update(overrides)
    return lifecycle.submit(**args)  # type: ignore[arg-type]


def approve(request: SealRequest, who: Principal, **overrides: object) -> SealRequest:
    args: dict[str, object] = {
        "approver": who,
        "document_sha256": [d.sha256 for d in request.documents],
        "approval_digest": request.approval_digest,
        "policy": POLICY,
        "now": NOW + timedelta(minutes=5),
    }
    args.update(overrides)
    return lifecycle.approve(request, **args)  # type: ignore[arg-type]


def test_r05_two_distinct_approvals_make_it_approved() -> None:
    r = new_request()
    assert r.state is RequestState.PENDING
    r = approve(r, LI)
    assert r.state is RequestState.PENDING and "1 more" in r.state_reason
    r = approve(r, WANG)
    assert r.state is RequestState.APPROVED
    assert lifecycle.approver_count(r) == 2


def test_r05_requester_never_approves_even_with_the_approver_role() -> None:
    r = new_request(requester=BOTH)
    with pytest.raises(PermissionDenied) as refused:
        approve(r, BOTH)
    assert refused.value.reason == "requester_cannot_approve"


def test_r05_same_person_counts_once() -> None:
    r = approve(new_request(), LI)
    with pytest.raises(AlreadyDone):
        approve(r, LI)


def test_r04_only_designated_approvers_and_requesters() -> None:
    with pytest.raises(PermissionDenied):
        new_request(requester=LI)
    outsider = Principal("x", "x", frozenset({Role.APPROVER}), frozenset({"official"}))
    with pytest.raises(PermissionDenied) as refused:
        approve(new_request(), outsider)
    assert refused.value.reason == "not_an_approver"


def test_r06_approval_must_name_the_documents_hash_and_the_digest() -> None:
    r = new_request()
    with pytest.raises(InvalidInput) as wrong_hash:
        approve(r, LI, document_sha256=["0" * 64])
    assert wrong_hash.value.reason == "document_hash_mismatch"
    with pytest.raises(InvalidInput) as wrong_digest:
        approve(r, LI, approval_digest="1" * 64)
    assert wrong_digest.value.reason == "digest_mismatch"


@pytest.mark.parametrize(
    "change",
    [
        {"reason": "另一个事由"},
        {"category": "general"},
        {"placement": replace(PLACE, x_mm=151.0)},
        {"documents": [replace(DOC, sha256="d" * 64)]},
        {"requester": person("other", Role.REQUESTER)},
        {"request_id": "r2"},
    ],
)
def test_r06_digest_binds_every_field_that_will_be_signed(change: dict[str, object]) -> None:
    seal = replace(SEAL, categories=frozenset({"contract", "general"}))
    base = new_request(seal=seal)
    assert new_request(seal=seal, **change).approval_digest != base.approval_digest


def test_r06_digest_binds_the_seal_certificate() -> None:
    other = replace(SEAL, certificate_sha256="e" * 64)
    assert new_request(seal=other).approval_digest != new_request().approval_digest


def test_r06_a_changed_seal_certificate_voids_the_approval_at_signing() -> None:
    r = approve(approve(new_request(), LI), WANG)
    with pytest.raises(PreconditionFailed) as refused:
        lifecycle.begin_signing(r, seal=replace(SEAL, certificate_sha256="e" * 64), policy=POLICY, now=NOW)
    assert refused.value.reason == "seal_certificate_changed"


def test_r02_r06_a_renewed_certificate_rebinds_the_request_and_voids_its_approvals() -> None:
    approved = approve(approve(new_request(), LI), WANG)
    renewed = lifecycle.rebind_certificate(approved, certificate_sha256="e" * 64, now=NOW)
    assert renewed.state is RequestState.PENDING and renewed.approvals == ()
    # The same digest a request for the renewed seal would have: approvers approve it again.
    assert (
        renewed.approval_digest
        == new_request(seal=replace(SEAL, certificate_sha256="e" * 64)).approval_digest
    )
    with pytest.raises(InvalidInput) as stale:
        approve(renewed, LI, approval_digest=approved.approval_digest)
    assert stale.value.reason == "digest_mismatch"
    again = approve(approve(renewed, LI), WANG)
    seal = replace(SEAL, certificate_sha256="e" * 64)
    assert lifecycle.begin_signing(again, seal=seal, policy=POLICY, now=NOW).state is RequestState.SIGNING


def test_r04_only_an_approver_withdraws_and_is_told_so() -> None:
    r = approve(new_request(), LI)
    custodian = person("liu.yang", Role.CUSTODIAN)
    with pytest.raises(PermissionDenied) as refused:
        lifecycle.withdraw_approval(r, approver=custodian, policy=POLICY, now=NOW)
    assert refused.value.reason == "not_an_approver"


def test_r02_a_pending_seal_without_certificate_takes_no_request() -> None:
    with pytest.raises(PreconditionFailed) as refused:
        new_request(seal=replace(SEAL, status=SealStatus.PENDING))
    assert refused.value.reason == "seal_pending"


def test_r02_suspended_or_lost_seal_signs_nothing() -> None:
    r = approve(approve(new_request(), LI), WANG)
    for status in (SealStatus.SUSPENDED, SealStatus.LOST, SealStatus.DESTROYED):
        with pytest.raises(PreconditionFailed):
            lifecycle.begin_signing(r, seal=replace(SEAL, status=status), policy=POLICY, now=NOW)


def test_r03_category_out_of_scope_is_refused() -> None:
    with pytest.raises(PermissionDenied) as refused:
        new_request(category="tax")
    assert refused.value.reason == "category_out_of_scope"


def test_approvals_expire_with_the_request() -> None:
    r = approve(approve(new_request(), LI), WANG)
    later = r.expires_at + timedelta(seconds=1)
    with pytest.raises(PreconditionFailed) as refused:
        lifecycle.begin_signing(r, seal=SEAL, policy=POLICY, now=later)
    assert refused.value.reason == "request_expired"
    assert lifecycle.expire(r, later).state is RequestState.EXPIRED


def test_signing_is_single_use_and_final() -> None:
    r = approve(approve(new_request(), LI), WANG)
    signing = lifecycle.begin_signing(r, seal=SEAL, policy=POLICY, now=NOW)
    assert signing.state is RequestState.SIGNING
    with pytest.raises(PreconditionFailed):
        lifecycle.begin_signing(signing, seal=SEAL, policy=POLICY, now=NOW)
    signed = lifecycle.complete_signing(signing, sealed=[("f" * 64, 2000)], now=NOW)
    assert signed.state is RequestState.SIGNED
    assert signed.documents[0].sealed_sha256 == "f" * 64
    for action in (
        lambda: lifecycle.begin_signing(signed, seal=SEAL, policy=POLICY, now=NOW),
        lambda: lifecycle.reject(signed, approver=LI, comment="no", now=NOW),
        lambda: lifecycle.cancel(signed, principal=REQUESTER, now=NOW),
    ):
        with pytest.raises(PreconditionFailed):
            action()


def test_interrupted_signature_goes_back_to_approved_and_crash_is_flagged() -> None:
    r = lifecycle.begin_signing(approve(approve(new_request(), LI), WANG), seal=SEAL, policy=POLICY, now=NOW)
    back = lifecycle.interrupt_signing(r, why="token removed", now=NOW)
    assert back.state is RequestState.APPROVED and not back.outcome_unknown
    crashed = lifecycle.recover_unknown_outcome(r, now=NOW)
    assert crashed.state is RequestState.APPROVED and crashed.outcome_unknown


def test_rejection_is_final_and_needs_a_reason() -> None:
    r = new_request()
    with pytest.raises(InvalidInput):
        lifecycle.reject(r, approver=LI, comment=" ", now=NOW)
    rejected = lifecycle.reject(r, approver=LI, comment="金额不对", now=NOW)
    assert rejected.state is RequestState.REJECTED and "li.na" in rejected.state_reason
    with pytest.raises(PreconditionFailed):
        approve(rejected, WANG)


def test_only_the_requester_cancels() -> None:
    r = new_request()
    with pytest.raises(PermissionDenied):
        lifecycle.cancel(r, principal=LI, now=NOW)
    assert lifecycle.cancel(r, principal=REQUESTER, now=NOW).state is RequestState.CANCELLED


def test_withdrawing_an_approval_reopens_the_request() -> None:
    r = approve(approve(new_request(), LI), WANG)
    again = lifecycle.withdraw_approval(r, approver=WANG, policy=POLICY, now=NOW)
    assert again.state is RequestState.PENDING
    assert [a.approver for a in again.approvals] == ["li.na"]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("reason", "", "missing_reason"),
        ("reason", "第一行\n第二行", "bad_reason"),
        ("placement", replace(PLACE, size_mm=5.0), "bad_placement"),
        ("placement", replace(PLACE, page=-1), "bad_placement"),
        ("documents", [], "no_documents"),
        ("documents", [replace(DOC, sha256="xyz")], "bad_document_hash"),
    ],
)
def test_bad_input_names_what_is_wrong(field: str, value: object, reason: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        new_request(**{field: value})
    assert refused.value.reason == reason
    assert refused.value.message


def test_r05_an_empty_policy_is_a_configuration_error_never_a_pass() -> None:
    with pytest.raises(ConfigError):
        ApprovalPolicy(())
    with pytest.raises(ConfigError):
        default_policy(1)


# --- issue 20: volume requests sealed in recorded chunks --------------------------------


def _signing_batch(count: int) -> SealRequest:
    docs = [replace(DOC, index=i, name=f"invoice-{i}.pdf") for i in range(count)]
    approved = approve(approve(new_request(documents=docs), LI), WANG)
    return lifecycle.begin_signing(approved, seal=SEAL, policy=POLICY, now=NOW)


def test_volume_recorded_chunks_survive_an_interruption_and_complete_the_request() -> None:
    signing = _signing_batch(3)
    partial = lifecycle.record_sealed(signing, sealed={0: ("a" * 64, 10), 1: ("b" * 64, 11)}, now=NOW)
    assert partial.state is RequestState.SIGNING
    assert partial.state_reason == "sealing: 2 of 3 documents sealed"
    assert lifecycle.sealed_so_far(partial) is None  # not releasable before every document
    # A token removal: back to APPROVED with the recorded chunk kept, then resumed.
    back = lifecycle.interrupt_signing(partial, why="token removed", now=NOW)
    assert [d.sealed_sha256 for d in back.documents] == ["a" * 64, "b" * 64, ""]
    resumed = lifecycle.begin_signing(back, seal=SEAL, policy=POLICY, now=NOW)
    assert [d.sealed_sha256 for d in resumed.documents] == ["a" * 64, "b" * 64, ""]
    complete = lifecycle.sealed_so_far(lifecycle.record_sealed(resumed, sealed={2: ("c" * 64, 12)}, now=NOW))
    assert complete == [("a" * 64, 10), ("b" * 64, 11), ("c" * 64, 12)]
    signed = lifecycle.complete_signing(resumed, sealed=complete, now=NOW)
    assert signed.state is RequestState.SIGNED


def test_volume_record_sealed_only_while_signing_and_only_own_documents() -> None:
    signing = _signing_batch(2)
    with pytest.raises(PreconditionFailed, match="no document 5"):
        lifecycle.record_sealed(signing, sealed={5: ("a" * 64, 1)}, now=NOW)
    back = lifecycle.interrupt_signing(signing, why="locked", now=NOW)
    with pytest.raises(PreconditionFailed, match="not signing"):
        lifecycle.record_sealed(back, sealed={0: ("a" * 64, 1)}, now=NOW)
    recorded = lifecycle.record_sealed(signing, sealed={0: ("a" * 64, 1)}, now=NOW)
    assert [d.sealed_sha256 for d in lifecycle.forget_sealed(recorded).documents] == ["", ""]
# -- issue 14 ------------------------------------------------------------------------------------
def test_idempotent_retry_returns_the_request_and_refuses_other_content() -> None:
    r = replace(new_request(), client_request_key="k1")
    same = {"seal_id": "contract", "reason": "采购合同", "category": "contract", "placement": PLACE}
    copy = replace(DOC, name="副本.pdf")  # another copy of the same file
    assert lifecycle.answer_retry(r, **same, documents=[copy]) is r  # type: ignore[arg-type]
    other = replace(DOC, sha256=hashlib.sha256(b"other").hexdigest())
    with pytest.raises(AlreadyDone) as refused:
        lifecycle.answer_retry(r, **same, documents=[other])  # type: ignore[arg-type]
    assert refused.value.reason == "client_request_key_reused"
    assert "'k1'" in refused.value.message and r.request_id in refused.value.message
    with pytest.raises(AlreadyDone):
        lifecycle.answer_retry(r, **{**same, "reason": "借款"}, documents=[DOC])  # type: ignore[arg-type]


def test_r06_statement_counts_once_and_never_predates_a_withdrawal() -> None:
    r = new_request()
    ok = {
        "approver": "li.na",
        "signed_at": "2026-11-29T09:00:05Z",
        "recorded_on": "",
        "last_withdrawal": None,
    }
    lifecycle.check_statement_unused(r, **ok)  # type: ignore[arg-type]
    for recorded_on in (r.request_id, "another-request"):
        with pytest.raises(InvalidInput) as replayed:
            lifecycle.check_statement_unused(r, **{**ok, "recorded_on": recorded_on})  # type: ignore[arg-type]
        assert replayed.value.reason == "statement_replayed"
    withdrawn = NOW + timedelta(seconds=5, microseconds=400_000)
    with pytest.raises(InvalidInput) as older:
        lifecycle.check_statement_unused(
            r,
            **{**ok, "signed_at": "2026-11-29T09:00:04Z", "last_withdrawal": withdrawn},  # type: ignore[arg-type]
        )
    assert older.value.reason == "statement_predates_withdrawal"
    # Dated in the withdrawal's own second (statements have whole seconds): accepted.
    lifecycle.check_statement_unused(r, **{**ok, "last_withdrawal": withdrawn})  # type: ignore[arg-type]


def test_r06_expiry_is_the_earlier_deadline_and_a_broken_quorum_restores_the_first() -> None:
    r = new_request()
    first = NOW + timedelta(hours=72)
    assert r.expires_at == r.collect_until == first
    use = timedelta(hours=24)
    early = approve(
        approve(r, LI, now=NOW + timedelta(hours=1)), WANG, now=NOW + timedelta(hours=2), use_ttl=use
    )
    assert early.state is RequestState.APPROVED and early.expires_at == NOW + timedelta(hours=26)
    late = approve(
        approve(r, LI, now=NOW + timedelta(hours=60)), WANG, now=NOW + timedelta(hours=61), use_ttl=use
    )
    assert late.expires_at == first  # not 61 h + 24 h
    back = lifecycle.withdraw_approval(early, approver=WANG, policy=POLICY, now=NOW + timedelta(hours=3))
    assert back.state is RequestState.PENDING and back.expires_at == first
    voided = lifecycle.void_approvals(early, why="suspended", now=NOW + timedelta(hours=3))
    assert voided.expires_at == first
