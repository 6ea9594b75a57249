"""Approvals are signatures (issue 9; SEAL-RULES R05, R06, R14), over the real daemon.

The approver's client signs a canonical approval statement with its own mutual-TLS
key; seald verifies it against the certificate of the connection and refuses
anything else: unsigned, signed by another key, altered, naming another
certificate, or about something else than the request.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sealapi.v1 import common_pb2, requests_pb2, requests_pb2_grpc
from sealclient.approval import ApprovalSigner, LocalDocument, build_approval
from seald.domain.approval_statement import parse_statement, signature_verifies
from seald_testing.daemon import SealDaemon, make_pdf
from seald_testing.plugin import DaemonFactory

PLACEMENT = common_pb2.Placement(page=0, x_mm=150, y_mm=240)


@pytest.fixture(scope="module")
def daemon(module_daemon_factory: DaemonFactory) -> SealDaemon:
    """One daemon for the module: each test submits its own request."""
    return module_daemon_factory()


def _submit(d: SealDaemon, tmp_path: Path) -> requests_pb2.SealRequest:
    pdf = make_pdf(tmp_path / "contract.pdf", pages=1)
    with d.client("zhang.wei") as c:
        return c.submit(
            [pdf], seal_id="contract", reason="采购合同", category="contract", placement=PLACEMENT
        )


def _stub(d: SealDaemon, name: str) -> requests_pb2_grpc.SealRequestServiceStub:
    who = d.fixtures.principals[name]
    creds = grpc.ssl_channel_credentials(
        d.fixtures.tls_ca.read_bytes(), who.key.read_bytes(), who.cert.read_bytes()
    )
    return requests_pb2_grpc.SealRequestServiceStub(grpc.secure_channel(d.target, creds))


def _signer(d: SealDaemon, name: str) -> ApprovalSigner:
    who = d.fixtures.principals[name]
    return ApprovalSigner(who.key.read_bytes(), who.cert.read_bytes())


def _local(request: requests_pb2.SealRequest) -> list[LocalDocument]:
    return [LocalDocument(doc.sha256, doc.size) for doc in request.documents]


def _refusal(
    stub: requests_pb2_grpc.SealRequestServiceStub, message: requests_pb2.ApproveRequestRequest
) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as refused:
        stub.ApproveRequest(message, timeout=10)
    reason = dict(refused.value.trailing_metadata() or ()).get("seal-error-reason", "")  # type: ignore[attr-defined]
    return refused.value.code(), str(reason)


def test_r06_approval_signed_by_another_key_than_the_connections_is_refused(
    daemon: SealDaemon, tmp_path: Path
) -> None:
    request = _submit(daemon, tmp_path)
    li = _stub(daemon, "li.na")
    local = _local(request)

    unsigned = build_approval(request, local)
    assert _refusal(li, unsigned) == (grpc.StatusCode.INVALID_ARGUMENT, "approval_unsigned")

    # wang.fang's key signs a statement naming wang.fang's certificate, sent over li.na's connection.
    by_wang = build_approval(request, local, signer=_signer(daemon, "wang.fang"))
    assert _refusal(li, by_wang) == (grpc.StatusCode.PERMISSION_DENIED, "approval_signature_invalid")

    # li.na's other certificate (laptop) signs: a valid person, but not this connection's key.
    by_laptop = build_approval(request, local, signer=_signer(daemon, "li.na-laptop"))
    assert _refusal(li, by_laptop) == (grpc.StatusCode.PERMISSION_DENIED, "approval_signature_invalid")

    # The right key, but the statement was altered after signing.
    altered = build_approval(request, local, signer=_signer(daemon, "li.na"))
    altered.statement = altered.statement.replace("采购合同".encode(), "借款合同".encode())
    assert _refusal(li, altered) == (grpc.StatusCode.PERMISSION_DENIED, "approval_signature_invalid")

    # Signed with li.na's key, but naming her laptop certificate as the signer.
    misnamed_signer = _signer(daemon, "li.na")
    misnamed_signer.certificate_sha256 = daemon.fixtures.principals["li.na-laptop"].fingerprint_sha256
    misnamed = build_approval(request, local, signer=misnamed_signer)
    assert _refusal(li, misnamed) == (grpc.StatusCode.PERMISSION_DENIED, "statement_certificate_mismatch")

    # Properly signed, but the signed comment is not the one sent.
    other_comment = build_approval(request, local, comment="同意", signer=_signer(daemon, "li.na"))
    other_comment.comment = "不同意"
    assert _refusal(li, other_comment) == (grpc.StatusCode.INVALID_ARGUMENT, "statement_mismatch")

    with daemon.client("zhang.wei") as c:
        assert list(c.get(request.request_id).approvals) == []
    conn = sqlite3.connect(daemon.fixtures.state_dir / "seald.sqlite3")
    try:
        approved = conn.execute(
            "SELECT COUNT(*) FROM audit_log WHERE event = 'request.approved' AND request_id = ?",
            (request.request_id,),
        ).fetchone()
        denied = conn.execute(
            "SELECT principal, reason FROM audit_log WHERE event = 'access.denied' AND request_id = ?",
            (request.request_id,),
        ).fetchall()
    finally:
        conn.close()
    assert approved == (0,)
    # Forged approvals leave a trace: each refusal by key is an access.denied record.
    assert denied.count(("li.na", "approval_signature_invalid")) == 3
    assert ("li.na", "statement_certificate_mismatch") in denied


def test_r05_r14_sealctl_and_sealclient_approvals_are_stored_signed_and_bound_in_the_ledger(
    daemon: SealDaemon, tmp_path: Path
) -> None:
    request = _submit(daemon, tmp_path)
    with daemon.client("li.na") as li, daemon.client("wang.fang") as wang:
        li.approve(request.request_id, "同意")
        after = wang.approve(request.request_id)
    assert after.state == requests_pb2.REQUEST_STATE_APPROVED
    conn = sqlite3.connect(daemon.fixtures.state_dir / "seald.sqlite3")
    try:
        rows = conn.execute(
            "SELECT principal, details_json FROM audit_log WHERE event = 'request.approved' "
            "AND request_id = ? ORDER BY sequence",
            (request.request_id,),
        ).fetchall()
    finally:
        conn.close()
    assert [r[0] for r in rows] == ["li.na", "wang.fang"]
    for approval, (principal, details_json) in zip(after.approvals, rows, strict=True):
        who = daemon.fixtures.principals[principal]
        certificate = x509.load_pem_x509_certificate(who.cert.read_bytes())
        assert signature_verifies(certificate, approval.statement, approval.statement_signature)
        statement = parse_statement(approval.statement)
        assert statement.request_id == request.request_id
        assert statement.approval_digest == request.approval_digest
        assert statement.signer_certificate_sha256 == who.fingerprint_sha256
        assert statement.document_sha256 == [d.sha256 for d in request.documents]
        details = json.loads(details_json)
        assert details["statement_sha256"] == hashlib.sha256(approval.statement).hexdigest()
        assert (
            details["certificate_sha256"]
            == hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()
        )
        policy = json.loads(details["policy"])
        assert policy["required"] == 2
        assert "zhang.wei" not in (policy["eligible"] or [])
    assert parse_statement(after.approvals[0].statement).comment == "同意"
    stored = base64.b64encode(after.approvals[1].statement_signature)
    assert stored  # the signature travels back to every reader of the request
