"""Approval by WebAuthn assertion, checked without a daemon (issue 18; R04, R05, R06).

Pure unit tests: a software ES256 authenticator (soft_authenticator.py) makes real
signatures; ``seald.webauthn.verify`` (py_webauthn) and ``seald.webauthn.approvals`` check them.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from seald.domain import lifecycle
from seald.domain.errors import AlreadyDone, InvalidInput, PermissionDenied
from seald.domain.model import Document, Placement, Principal, RequestState, Role, Seal, SealType
from seald.domain.policy import default_policy
from seald.domain.webauthn import (
    CHALLENGE_TTL,
    CloneSuspected,
    CredentialStatus,
    Enrolment,
    PendingChallenge,
    WebAuthnCredential,
    approve_credential,
    base_statement_for,
    build_statement,
    new_credential,
    parse_webauthn_statement,
    redeem_enrolment,
    revoke_credential,
    start_enrolment,
    statement_challenge,
)
from seald.webauthn.approvals import offline_problems, verify_webauthn_approval
from seald.webauthn.verify import verify_registration
from seald_testing.soft_authenticator import SoftAuthenticator

RP_ID = "seal.example.test"
ORIGIN = "https://seal.example.test:8443"
NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
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
REQUESTER = Principal(
    "zhang.wei", "张伟", frozenset({Role.REQUESTER, Role.APPROVER}), frozenset({"contract"})
)
LI = Principal("li.na", "李娜", frozenset({Role.APPROVER}), frozenset({"contract"}))
CODE = "K7Q2-M9XW-4TPL-8RZD"


def submit(request_id: str = "r1", reason: str = "采购合同") -> lifecycle.SealRequest:
    return lifecycle.submit(
        request_id=request_id,
        requester=REQUESTER,
        seal=SEAL,
        reason=reason,
        category="contract",
        placement=Placement(page=0, x_mm=150.0, y_mm=240.0, size_mm=40.0),
        documents=[Document(index=0, name="合同.pdf", size=1234, sha256=hashlib.sha256(b"pdf").hexdigest())],
        now=NOW,
        ttl=timedelta(hours=72),
        host="seal-host-01",
    )


def enrol(key: SoftAuthenticator, owner: str = "li.na") -> WebAuthnCredential:
    """Admin root starts, the browser registers, admin second approves."""
    enrolment = start_enrolment(
        enrolment_id="e1", principal=owner, principal_is_approver=True, code=CODE, started_by="root", now=NOW
    )
    enrolment = redeem_enrolment(enrolment, CODE, NOW + timedelta(minutes=1))
    challenge = os.urandom(32)
    registered = verify_registration(key.register(challenge), challenge=challenge, rp_id=RP_ID, origin=ORIGIN)
    credential = new_credential(
        enrolment,
        credential_id=registered.credential_id,
        public_key=registered.public_key,
        sign_count=registered.sign_count,
        attestation_format=registered.attestation_format,
        aaguid=registered.aaguid,
        name="YubiKey 5",
        now=NOW,
    )
    assert credential.status is CredentialStatus.PENDING
    return approve_credential(credential, "second.admin", NOW)


def challenge_for(request: lifecycle.SealRequest, credential: WebAuthnCredential) -> PendingChallenge:
    statement = build_statement(
        base_statement_for(request, signed_at="2026-12-06T09:05:00Z", comment="同意"),
        principal=credential.principal,
        credential_id=credential.credential_id,
        rp_id=RP_ID,
        origin=ORIGIN,
        nonce=os.urandom(16).hex(),
    )
    return PendingChallenge(
        statement=statement.canonical_bytes(),
        request_id=request.request_id,
        principal=credential.principal,
        credential_id=credential.credential_id,
        issued_at=NOW,
        expires_at=NOW + CHALLENGE_TTL,
    )


def check(
    pending: PendingChallenge | None,
    assertion: object,
    credential: WebAuthnCredential | None,
    request_id: str = "r1",
    origin: str = ORIGIN,
    when: datetime = NOW,
):  # type: ignore[no-untyped-def]
    return verify_webauthn_approval(
        pending=pending,
        request_id=request_id,
        assertion=assertion,  # type: ignore[arg-type]
        credential=credential,
        rp_id=RP_ID,
        origin=origin,
        now=when + timedelta(minutes=1),
    )


def test_webauthn_good_assertion_approves_as_the_credential_owner_and_verifies_offline() -> None:
    key = SoftAuthenticator(RP_ID, ORIGIN)
    credential = enrol(key)
    request = submit()
    pending = challenge_for(request, credential)
    approval = check(pending, key.assert_(statement_challenge(pending.statement)), credential)
    assert approval.approver == "li.na" and approval.new_sign_count == 1
    approval.check(request)
    new = lifecycle.approve(
        request,
        approver=LI,
        document_sha256=[d.sha256 for d in request.documents],
        approval_digest=request.approval_digest,
        policy=default_policy(2),
        now=NOW,
        signed=approval.as_approval(),
    )
    stored = new.approvals[0]
    assert stored.webauthn_assertion and stored.certificate_der_b64 == ""
    problems, facts = offline_problems(stored.statement.encode(), stored.webauthn_assertion)
    assert problems == [] and facts["principal"] == "li.na"
    # offline: an edited statement no longer matches the signed challenge
    edited = stored.statement.replace("采购合同", "借款合同").encode()
    assert offline_problems(edited, stored.webauthn_assertion)[0]


def test_webauthn_assertion_for_another_requests_challenge_is_refused() -> None:
    key = SoftAuthenticator(RP_ID, ORIGIN)
    credential = enrol(key)
    other = challenge_for(submit("r2"), credential)
    assertion = key.assert_(statement_challenge(other.statement))
    with pytest.raises(PermissionDenied) as refused:
        check(other, assertion, credential, request_id="r1")
    assert refused.value.reason == "challenge_other_request"


def test_webauthn_replayed_assertion_is_refused() -> None:
    key = SoftAuthenticator(RP_ID, ORIGIN)
    credential = enrol(key)
    pending = challenge_for(submit(), credential)
    assertion = key.assert_(statement_challenge(pending.statement))
    check(pending, assertion, credential)
    # the service deletes an answered challenge: a replay finds none
    with pytest.raises(PermissionDenied) as refused:
        check(None, assertion, credential)
    assert refused.value.reason == "challenge_unknown"


@pytest.mark.parametrize("status", [CredentialStatus.PENDING, CredentialStatus.REVOKED])
def test_webauthn_credential_not_approved_or_revoked_is_refused(status: CredentialStatus) -> None:
    key = SoftAuthenticator(RP_ID, ORIGIN)
    credential = replace(enrol(key), status=status)
    pending = challenge_for(submit(), credential)
    with pytest.raises(PermissionDenied) as refused:
        check(pending, key.assert_(statement_challenge(pending.statement)), credential)
    assert (
        refused.value.reason
        == {
            CredentialStatus.PENDING: "credential_not_approved",
            CredentialStatus.REVOKED: "credential_revoked",
        }[status]
    )


def test_webauthn_sign_count_going_backwards_is_refused_as_a_clone() -> None:
    key = SoftAuthenticator(RP_ID, ORIGIN)
    credential = replace(enrol(key), sign_count=7)
    pending = challenge_for(submit(), credential)
    with pytest.raises(CloneSuspected) as refused:
        check(pending, key.assert_(statement_challenge(pending.statement), counter=5), credential)
    assert refused.value.reason == "sign_count_regression"
    # the same count again is as bad as a lower one
    with pytest.raises(CloneSuspected):
        check(pending, key.assert_(statement_challenge(pending.statement), counter=7), credential)
    assert check(pending, key.assert_(statement_challenge(pending.statement), counter=8), credential)


def test_webauthn_user_verification_not_set_is_refused() -> None:
    key = SoftAuthenticator(RP_ID, ORIGIN)
    credential = enrol(key)
    pending = challenge_for(submit(), credential)
    with pytest.raises(PermissionDenied) as refused:
        check(pending, key.assert_(statement_challenge(pending.statement), uv=False), credential)
    assert refused.value.reason == "webauthn_assertion_invalid"
    assert "verif" in refused.value.message.lower()


def test_webauthn_wrong_origin_or_rp_id_is_refused() -> None:
    key = SoftAuthenticator(RP_ID, ORIGIN)
    credential = enrol(key)
    pending = challenge_for(submit(), credential)
    challenge = statement_challenge(pending.statement)
    for assertion in (
        key.assert_(challenge, origin="https://phish.example.test"),
        key.assert_(challenge, rp_id="phish.example.test"),
    ):
        with pytest.raises(PermissionDenied) as refused:
            check(pending, assertion, credential)
        assert refused.value.reason == "webauthn_assertion_invalid"


def test_webauthn_relay_altering_the_statement_is_refused() -> None:
    """A relay that shows the browser another statement (another reason) gets an assertion
    over that statement's hash: seald issued no such challenge."""
    key = SoftAuthenticator(RP_ID, ORIGIN)
    credential = enrol(key)
    pending = challenge_for(submit(), credential)
    altered = pending.statement.replace("采购合同".encode(), "无关文件".encode())
    assert altered != pending.statement
    with pytest.raises(PermissionDenied) as refused:
        check(pending, key.assert_(statement_challenge(altered)), credential)
    assert refused.value.reason == "challenge_mismatch"
    # and a relay that swaps in another key's signature for the right challenge
    thief = SoftAuthenticator(RP_ID, ORIGIN, credential_raw_id=key.credential_raw_id)
    with pytest.raises(PermissionDenied) as refused:
        check(pending, thief.assert_(statement_challenge(pending.statement)), credential)
    assert refused.value.reason == "webauthn_assertion_invalid"


def test_webauthn_requester_approving_own_request_through_the_web_is_refused() -> None:
    key = SoftAuthenticator(RP_ID, ORIGIN)
    credential = enrol(key, owner="zhang.wei")
    request = submit()
    pending = challenge_for(request, credential)
    approval = check(pending, key.assert_(statement_challenge(pending.statement)), credential)
    with pytest.raises(PermissionDenied) as refused:
        lifecycle.approve(
            request,
            approver=REQUESTER,
            document_sha256=[d.sha256 for d in request.documents],
            approval_digest=request.approval_digest,
            policy=default_policy(2),
            now=NOW,
            signed=approval.as_approval(),
        )
    assert refused.value.reason == "requester_cannot_approve"


def test_webauthn_statement_stale_after_the_request_changed_is_refused() -> None:
    key = SoftAuthenticator(RP_ID, ORIGIN)
    credential = enrol(key)
    request = submit()
    pending = challenge_for(request, credential)
    approval = check(pending, key.assert_(statement_challenge(pending.statement)), credential)
    with pytest.raises(InvalidInput) as refused:
        approval.check(replace(request, approval_digest="0" * 64))
    assert refused.value.reason == "statement_mismatch"


def test_webauthn_expired_challenge_is_refused() -> None:
    key = SoftAuthenticator(RP_ID, ORIGIN)
    credential = enrol(key)
    pending = challenge_for(submit(), credential)
    with pytest.raises(PermissionDenied) as refused:
        check(
            pending, key.assert_(statement_challenge(pending.statement)), credential, when=NOW + CHALLENGE_TTL
        )
    assert refused.value.reason == "challenge_expired"


def test_webauthn_registration_without_user_verification_or_from_another_origin_is_refused() -> None:
    key = SoftAuthenticator(RP_ID, ORIGIN)
    challenge = os.urandom(32)
    for credential_json in (
        key.register(challenge, uv=False),
        key.register(challenge, origin="https://x.test"),
    ):
        with pytest.raises(InvalidInput) as refused:
            verify_registration(credential_json, challenge=challenge, rp_id=RP_ID, origin=ORIGIN)
        assert refused.value.reason == "webauthn_registration_invalid"
    with pytest.raises(InvalidInput):
        verify_registration(key.register(os.urandom(32)), challenge=challenge, rp_id=RP_ID, origin=ORIGIN)


def test_webauthn_enrolment_code_is_one_time_short_lived_and_needs_a_second_admin() -> None:
    enrolment: Enrolment = start_enrolment(
        enrolment_id="e1",
        principal="li.na",
        principal_is_approver=True,
        code=CODE,
        started_by="root",
        now=NOW,
    )
    assert CODE not in repr(enrolment)  # only its hash is kept
    with pytest.raises(PermissionDenied, match="wrong"):
        redeem_enrolment(enrolment, "X" * 19, NOW)
    with pytest.raises(PermissionDenied) as late:
        redeem_enrolment(enrolment, CODE, enrolment.expires_at)
    assert late.value.reason == "enrolment_expired"
    used = redeem_enrolment(enrolment, CODE, NOW)
    with pytest.raises(PermissionDenied) as again:
        redeem_enrolment(used, CODE, NOW)
    assert again.value.reason == "enrolment_used"
    with pytest.raises(InvalidInput):
        start_enrolment(
            enrolment_id="e2",
            principal="x",
            principal_is_approver=False,
            code=CODE,
            started_by="root",
            now=NOW,
        )
    key = SoftAuthenticator(RP_ID, ORIGIN)
    credential = new_credential(
        used,
        credential_id=key.credential_id,
        public_key=key.cose_key(),
        sign_count=0,
        attestation_format="none",
        aaguid="",
        name="key",
        now=NOW,
    )
    for who in ("root", "li.na"):
        with pytest.raises(PermissionDenied) as refused:
            approve_credential(credential, who, NOW)
        assert refused.value.reason == "self_approval"
    active = approve_credential(credential, "second.admin", NOW)
    with pytest.raises(AlreadyDone):
        approve_credential(active, "third.admin", NOW)
    revoked = revoke_credential(active, "root", NOW)
    assert revoked.status is CredentialStatus.REVOKED


def test_webauthn_statement_is_canonical_and_names_its_credential() -> None:
    key = SoftAuthenticator(RP_ID, ORIGIN)
    credential = enrol(key)
    pending = challenge_for(submit(reason='<script>alert("x")</script> 采购'), credential)
    parsed = parse_webauthn_statement(pending.statement)
    assert parsed.canonical_bytes() == pending.statement
    assert parsed.credential_id == credential.credential_id and parsed.origin == ORIGIN
    assert b"signer_certificate_sha256" not in pending.statement
    with pytest.raises(InvalidInput):
        parse_webauthn_statement(pending.statement.replace(b'{"', b'{ "', 1))
    assert RequestState.PENDING  # keep import used
