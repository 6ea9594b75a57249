"""Approval by WebAuthn assertion through the REAL seald (issue 18; R04, R05, R06, R10, R14).

A real daemon over mutual TLS on loopback, SQLite on disk, the SoftHSM token. The relay
(sealweb's identity) carries registrations and assertions; the security key is the
software ES256 authenticator of tests/seald_testing/soft_authenticator.py, standing in for the
approver's device (the browser tests use Chromium's virtual authenticator instead).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from build_fixtures import client_toml_text

from sealapi.v1 import common_pb2, requests_pb2, requests_pb2_grpc, webauthn_pb2, webauthn_pb2_grpc
from sealclient.client import SealClient
from sealclient.errors import SealClientError
from sealclient.evidence import load_trust, verify_package
from seald.domain.webauthn import b64url_decode, statement_challenge
from seald_testing.daemon import SealDaemon, make_pdf, unlock_first_use
from seald_testing.plugin import DaemonFactory
from seald_testing.soft_authenticator import SoftAuthenticator
from seald_testing.webauthn import RP_ID, ExtraClient, client_for, config_edit, issue_clients

ORIGIN = "https://localhost:8443"
PLACEMENT = common_pb2.Placement(page=0, x_mm=150, y_mm=240)


@dataclass
class Setup:
    daemon: SealDaemon
    extra: dict[str, ExtraClient]

    def relay(self) -> SealClient:
        return client_for(self.daemon.target, self.daemon.fixtures, self.extra["sealweb"])

    def second_admin(self) -> SealClient:
        return client_for(self.daemon.target, self.daemon.fixtures, self.extra["sun.li"])


@pytest.fixture(scope="module")
def setup(module_daemon_factory: DaemonFactory) -> Setup:
    fixtures = module_daemon_factory.fixtures()
    extra = issue_clients(fixtures)
    return Setup(module_daemon_factory(config_edit(extra, ORIGIN), fixtures=fixtures), extra)


def refused(call) -> SealClientError:  # type: ignore[no-untyped-def]
    with pytest.raises(SealClientError) as caught:
        call()
    return caught.value


def enrol(s: Setup, owner: str, *, approve: bool = True) -> tuple[SoftAuthenticator, str]:
    """Admin chen.jie starts, the relay carries the browser's registration, sun.li approves."""
    key = SoftAuthenticator(RP_ID, ORIGIN)
    with s.daemon.client("chen.jie") as admin:
        started = admin.start_enrolment(owner)
    with s.relay() as relay:
        options = json.loads(relay.begin_registration(started.enrolment_id, started.code).options_json)
        assert options["authenticatorSelection"]["userVerification"] == "required"
        credential = relay.finish_registration(
            started.enrolment_id, started.code, key.register(b64url_decode(options["challenge"])), "YubiKey"
        )
        assert credential.status == webauthn_pb2.CREDENTIAL_STATUS_PENDING and credential.principal == owner
        # one-time code
        again = refused(lambda: relay.begin_registration(started.enrolment_id, started.code))
        assert again.reason == "enrolment_used"
    if approve:
        with s.daemon.client("chen.jie") as admin:
            same_admin = refused(lambda: admin.approve_credential(credential.credential_id))
            assert same_admin.reason == "self_approval"
        with s.second_admin() as admin2:
            assert admin2.approve_credential(credential.credential_id).status == (
                webauthn_pb2.CREDENTIAL_STATUS_ACTIVE
            )
    return key, credential.credential_id


def submit(s: Setup, tmp_path: Path, reason: str = "采购合同") -> requests_pb2.SealRequest:
    pdf = make_pdf(tmp_path / "contract.pdf", pages=1)
    with s.daemon.client("zhang.wei") as c:
        return c.submit([pdf], seal_id="contract", reason=reason, category="contract", placement=PLACEMENT)


def web_assertion(
    s: Setup, key: SoftAuthenticator, request_id: str, credential_id: str, **misbehave: object
) -> webauthn_pb2.FinishApprovalRequest:
    with s.relay() as relay:
        begun = relay.begin_webauthn_approval(request_id, credential_id, "同意")
    options = json.loads(begun.options_json)
    assert b64url_decode(options["challenge"]) == statement_challenge(begun.statement)
    assert options["userVerification"] == "required"
    a = key.assert_(statement_challenge(begun.statement), **misbehave)  # type: ignore[arg-type]
    return webauthn_pb2.FinishApprovalRequest(
        request_id=request_id,
        credential_id=a.credential_id,
        authenticator_data=a.authenticator_data,
        client_data_json=a.client_data_json,
        signature=a.signature,
    )


def audit_rows(d: SealDaemon, event: str) -> list[sqlite3.Row]:
    conn = sqlite3.connect(f"file:{d.fixtures.state_dir / 'seald.sqlite3'}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute("SELECT * FROM audit_log WHERE event = ? ORDER BY sequence", (event,)).fetchall()
    finally:
        conn.close()


def test_webauthn_enrol_approve_credential_then_web_approval_seals_and_verifies_offline(
    setup: Setup, tmp_path: Path
) -> None:
    key, credential_id = enrol(setup, "li.na")
    request = submit(setup, tmp_path)
    finish = web_assertion(setup, key, request.request_id, credential_id)
    with setup.relay() as relay:
        after = relay.finish_webauthn_approval(finish)
        # the approver is the key's owner, never the relay
        assert [a.approver for a in after.approvals] == ["li.na"]
        assert after.approvals[0].webauthn_assertion
        replay = refused(lambda: relay.finish_webauthn_approval(finish))
        assert replay.code == grpc.StatusCode.PERMISSION_DENIED and replay.reason == "challenge_unknown"
    with setup.daemon.client("wang.fang") as wang:
        assert wang.approve(request.request_id).state == requests_pb2.REQUEST_STATE_APPROVED
    with setup.daemon.client("liu.yang") as custodian:
        unlock_first_use(custodian, setup.daemon.fixtures, "contract")
    sealed = tmp_path / "contract.sealed.pdf"
    with setup.daemon.client("zhang.wei") as requester:
        setup.daemon.wait_state(requester, request.request_id, requests_pb2.REQUEST_STATE_SIGNED)
        requester.download(request.request_id, 0, sealed)
    with setup.daemon.client("zhao.min") as auditor:
        data = auditor.evidence(request.request_id)
    trust = load_trust(
        [
            setup.daemon.fixtures.tls_ca,
            setup.daemon.fixtures.seal_ca,
            setup.daemon.fixtures.state_dir / "audit" / "audit-cert.pem",
        ]
    )
    verdict = verify_package(data, [sealed], trust)
    assert verdict.ok, verdict.as_dict()
    approvals = json.loads(data)["approvals"]
    assert [bool(a.get("webauthn_assertion")) for a in approvals] == [True, False]
    # tamper: the WebAuthn approval's statement edited -> the offline check fails
    edited = json.loads(data)
    edited["approvals"][0]["statement"] = edited["approvals"][0]["statement"].replace("同意", "不同意")
    bad = verify_package(json.dumps(edited, ensure_ascii=False).encode(), [sealed], trust)
    assert "approval_signatures" in bad.failed()
    (record,) = [r for r in audit_rows(setup.daemon, "request.approved") if r["principal"] == "li.na"]
    details = json.loads(record["details_json"])
    assert details["webauthn_credential_id"] == credential_id and details["webauthn_sign_count"] == 1


def test_webauthn_relay_certificate_alone_cannot_approve_anything(setup: Setup, tmp_path: Path) -> None:
    request = submit(setup, tmp_path)
    with setup.relay() as relay:
        own = refused(lambda: relay.approve(request.request_id))
        # No role on the request's seal: answered like an unknown id (issue 14 item 8).
        assert (own.code, own.reason) == (grpc.StatusCode.NOT_FOUND, "request_not_found")
        unknown = refused(lambda: relay.begin_webauthn_approval(request.request_id, "A" * 43))
        assert unknown.reason == "credential_unknown"
        start = refused(lambda: relay.start_enrolment("li.na"))
        assert start.code == grpc.StatusCode.PERMISSION_DENIED
        forged = webauthn_pb2.FinishApprovalRequest(
            request_id=request.request_id,
            credential_id="A" * 43,
            authenticator_data=b"\0" * 37,
            client_data_json=b'{"type":"webauthn.get","challenge":"AAAA","origin":"https://localhost:8443"}',
            signature=b"\0" * 70,
        )
        forged_refusal = refused(lambda: relay.finish_webauthn_approval(forged))
        assert forged_refusal.code == grpc.StatusCode.PERMISSION_DENIED
    with setup.daemon.client("zhang.wei") as requester:
        assert list(requester.get(request.request_id).approvals) == []


def test_webauthn_pending_or_revoked_credential_is_refused(setup: Setup, tmp_path: Path) -> None:
    key, credential_id = enrol(setup, "wang.fang", approve=False)
    request = submit(setup, tmp_path)
    with setup.relay() as relay:
        pending = refused(lambda: relay.begin_webauthn_approval(request.request_id, credential_id))
        assert pending.reason == "credential_not_approved"
    with setup.second_admin() as admin2:
        admin2.approve_credential(credential_id)
    finish = web_assertion(setup, key, request.request_id, credential_id)
    with setup.daemon.client("wang.fang") as owner:
        listed = owner.list_credentials()
        assert [c.credential_id for c in listed] == [credential_id]
        assert owner.name_credential(credential_id, "办公室钥匙").name == "办公室钥匙"
        assert owner.revoke_credential(credential_id).status == webauthn_pb2.CREDENTIAL_STATUS_REVOKED
    with setup.relay() as relay:
        revoked = refused(lambda: relay.finish_webauthn_approval(finish))
        assert revoked.reason == "credential_revoked"
    with setup.daemon.client("li.na") as other:
        assert refused(lambda: other.list_credentials("wang.fang")).reason == "not_owner"


def test_webauthn_sign_count_going_backwards_refused_and_alerted(setup: Setup, tmp_path: Path) -> None:
    key, credential_id = enrol(setup, "li.na")
    first = submit(setup, tmp_path)
    with setup.relay() as relay:
        relay.finish_webauthn_approval(web_assertion(setup, key, first.request_id, credential_id, counter=10))
    second = submit(setup, tmp_path, reason="第二份合同")
    cloned = web_assertion(setup, key, second.request_id, credential_id, counter=4)
    with setup.relay() as relay:
        clone = refused(lambda: relay.finish_webauthn_approval(cloned))
        assert clone.code == grpc.StatusCode.PERMISSION_DENIED and clone.reason == "sign_count_regression"
        # the challenge is spent: the same assertion cannot be tried again
        assert refused(lambda: relay.finish_webauthn_approval(cloned)).reason == "challenge_unknown"
    rows = audit_rows(setup.daemon, "webauthn.clone_suspected")
    alerts = [r for r in rows if r["request_id"] == second.request_id]
    assert len(alerts) == 1 and alerts[0]["outcome"] == "alert"
    assert json.loads(alerts[0]["details_json"])["credential_id"] == credential_id


def test_webauthn_uv_not_set_or_wrong_origin_is_refused(setup: Setup, tmp_path: Path) -> None:
    key, credential_id = enrol(setup, "li.na")
    request = submit(setup, tmp_path)
    for misbehave in ({"uv": False}, {"origin": "https://evil.example"}):
        bad = web_assertion(setup, key, request.request_id, credential_id, **misbehave)
        with setup.relay() as relay:
            refusal = refused(lambda bad=bad: relay.finish_webauthn_approval(bad))  # type: ignore[misc]
            assert refusal.reason == "webauthn_assertion_invalid"
    with setup.daemon.client("zhang.wei") as requester:
        assert list(requester.get(request.request_id).approvals) == []


SEALCTL = shutil.which("sealctl", path=str(Path(sys.executable).parent))


def sealctl(s: Setup, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert SEALCTL is not None, "sealctl is not installed next to this python"
    command = [SEALCTL, "--config", str(config), "--server", s.daemon.target, *args]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)


def test_webauthn_sealctl_principal_enrol_and_credentials_commands(setup: Setup, tmp_path: Path) -> None:
    fixtures = setup.daemon.fixtures
    admin = fixtures.principals["chen.jie"].config
    owner = fixtures.principals["wang.fang"].config
    second = tmp_path / "sun.li.toml"
    sun = setup.extra["sun.li"]
    second.write_text(
        client_toml_text(setup.daemon.target, fixtures.tls_ca, sun.cert, sun.key), encoding="utf-8"
    )
    started = sealctl(setup, admin, "--json", "principal", "enrol", "wang.fang")
    assert started.returncode == 0, started.stderr
    enrolment = json.loads(started.stdout)
    key = SoftAuthenticator(RP_ID, ORIGIN)
    with setup.relay() as relay:
        options = json.loads(
            relay.begin_registration(enrolment["enrolment_id"], enrolment["code"]).options_json
        )
        credential = relay.finish_registration(
            enrolment["enrolment_id"], enrolment["code"], key.register(b64url_decode(options["challenge"]))
        )
    listed = sealctl(setup, admin, "principal", "credentials", "list", "wang.fang")
    assert listed.returncode == 0 and credential.credential_id in listed.stdout and "pending" in listed.stdout
    same = sealctl(setup, admin, "principal", "credentials", "approve", "--", credential.credential_id)
    assert same.returncode != 0 and "second admin" in same.stderr
    approved = sealctl(setup, second, "principal", "credentials", "approve", "--", credential.credential_id)
    assert approved.returncode == 0 and "status:     active" in approved.stdout, approved.stderr
    named = sealctl(setup, owner, "principal", "credentials", "name", "--", credential.credential_id, "U盾")
    assert named.returncode == 0 and "name:       U盾" in named.stdout
    revoked = sealctl(setup, owner, "principal", "credentials", "revoke", "--", credential.credential_id)
    assert revoked.returncode == 0 and "status:     revoked" in revoked.stdout
    code_shown = sealctl(setup, admin, "principal", "credentials", "list")
    assert enrolment["code"] not in code_shown.stdout  # the code is shown once, never listed


def _stubs(s: Setup, who: ExtraClient | None = None, name: str = "") -> tuple[Any, Any]:
    fixtures = s.daemon.fixtures
    cert, key = (
        (who.cert, who.key) if who else (fixtures.principals[name].cert, fixtures.principals[name].key)
    )
    creds = grpc.ssl_channel_credentials(fixtures.tls_ca.read_bytes(), key.read_bytes(), cert.read_bytes())
    channel = grpc.secure_channel(s.daemon.target, creds)
    return requests_pb2_grpc.SealRequestServiceStub(channel), webauthn_pb2_grpc.WebAuthnServiceStub(channel)


def _code(call) -> tuple[grpc.StatusCode, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as caught:
        call()
    reason = dict(caught.value.trailing_metadata() or ()).get("seal-error-reason", "")  # type: ignore[attr-defined]
    return caught.value.code(), str(reason)


def test_webauthn_web_session_acts_for_the_signed_in_person_with_their_permissions(
    setup: Setup, tmp_path: Path
) -> None:
    key, _ = enrol(setup, "li.na")
    request = submit(setup, tmp_path)
    requests, web = _stubs(setup, setup.extra["sealweb"])
    # without a session the relay sees nothing of the request
    assert _code(lambda: requests.GetRequest(requests_pb2.GetRequestRequest(request_id=request.request_id)))[
        0
    ] in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.NOT_FOUND)
    options = json.loads(web.BeginSignIn(webauthn_pb2.BeginSignInRequest()).options_json)
    assert options["userVerification"] == "required"
    a = key.assert_(b64url_decode(options["challenge"]))
    session = web.FinishSignIn(
        webauthn_pb2.FinishSignInRequest(
            credential_id=a.credential_id,
            authenticator_data=a.authenticator_data,
            client_data_json=a.client_data_json,
            signature=a.signature,
        )
    )
    assert session.principal == "li.na" and "approver" in session.roles and session.idle_seconds == 600
    as_li = (("seal-web-session", session.token),)
    seen = requests.GetRequest(requests_pb2.GetRequestRequest(request_id=request.request_id), metadata=as_li)
    assert seen.request_id == request.request_id
    # the relay's connection key cannot sign statements for her: ApproveRequest is not on the web
    code, reason = _code(
        lambda: requests.ApproveRequest(
            requests_pb2.ApproveRequestRequest(request_id=request.request_id), metadata=as_li
        )
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED and reason == "not_on_the_web"
    # her permissions, not more: she cannot cancel the requester's request
    code, _ = _code(
        lambda: requests.CancelRequest(
            requests_pb2.CancelRequestRequest(request_id=request.request_id, comment="x"), metadata=as_li
        )
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED
    # a session token presented by anyone but a relay is refused
    other, _ = _stubs(setup, name="wang.fang")
    code, reason = _code(
        lambda: other.GetRequest(
            requests_pb2.GetRequestRequest(request_id=request.request_id), metadata=as_li
        )
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED and reason == "not_a_relay"
    web.SignOut(webauthn_pb2.SignOutRequest(), metadata=as_li)
    code, reason = _code(
        lambda: requests.GetRequest(
            requests_pb2.GetRequestRequest(request_id=request.request_id), metadata=as_li
        )
    )
    assert code == grpc.StatusCode.UNAUTHENTICATED and reason == "web_session_unknown"
