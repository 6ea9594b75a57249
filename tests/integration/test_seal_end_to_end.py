"""The foundation, end to end: real seald process, real mutual TLS, real SoftHSM token.

Each test names the rule it proves (../shared/SEAL-RULES.md).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sealapi.v1 import common_pb2, requests_pb2, requests_pb2_grpc
from sealclient.approval import ApprovalSigner, LocalDocument, build_approval, local_approval_digest
from sealclient.errors import SealClientError
from seald.signing.verify import verify_pdf
from seald_testing.config import DaemonConfig
from seald_testing.daemon import CHANGED_PIN, SealDaemon, make_pdf, unlock_first_use, user_pin
from seald_testing.plugin import DaemonFactory

PLACEMENT = common_pb2.Placement(page=0, x_mm=150, y_mm=240)
SIGNED = requests_pb2.REQUEST_STATE_SIGNED
APPROVED = requests_pb2.REQUEST_STATE_APPROVED
PENDING = requests_pb2.REQUEST_STATE_PENDING


def submit(d: SealDaemon, tmp_path: Path, requester: str = "zhang.wei") -> requests_pb2.SealRequest:
    pdf = make_pdf(tmp_path / "contract.pdf", pages=2)
    with d.client(requester) as c:
        return c.submit(
            [pdf], seal_id="contract", reason="采购合同", category="contract", placement=PLACEMENT
        )


def raw_channel(d: SealDaemon, name: str) -> grpc.Channel:
    who = d.fixtures.principals[name]
    creds = grpc.ssl_channel_credentials(
        d.fixtures.tls_ca.read_bytes(), who.key.read_bytes(), who.cert.read_bytes()
    )
    return grpc.secure_channel(d.target, creds)


def reason_of(error: grpc.RpcError) -> str:
    for key, value in error.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key == "seal-error-reason":
            return str(value)
    return ""


def test_r05_r14_happy_path_sealed_pdf_validates_everywhere(
    daemon: SealDaemon, tmp_path: Path
) -> None:
    request = submit(daemon, tmp_path)
    assert request.state == PENDING
    with daemon.client("li.na") as li, daemon.client("wang.fang") as wang:
        assert li.approve(request.request_id).state == PENDING
        assert wang.approve(request.request_id).state == APPROVED
    with daemon.client("liu.yang") as custodian:
        status = unlock_first_use(custodian, daemon.fixtures, "contract")
        assert status.unlocked and status.ready
    out = tmp_path / "sealed.pdf"
    with daemon.client("zhang.wei") as requester:
        done = daemon.wait_state(requester, request.request_id, SIGNED)
        requester.download(request.request_id, 0, out)
    assert hashlib.sha256(out.read_bytes()).hexdigest() == done.documents[0].sealed_sha256

    checks = verify_pdf(out, [daemon.fixtures.seal_ca.read_bytes()])
    assert len(checks) == 1
    assert checks[0].valid and checks[0].intact and checks[0].trusted
    assert checks[0].covers_whole_document

    pdfsig = subprocess.run(["pdfsig", str(out)], capture_output=True, text=True, check=False)
    assert "Signature is Valid" in pdfsig.stdout, pdfsig.stdout
    assert "Total document signed" in pdfsig.stdout, pdfsig.stdout
    assert "合同专用章" in pdfsig.stdout
    qpdf = subprocess.run(
        ["qpdf", "--check", str(out)], capture_output=True, text=True, check=False
    )
    assert qpdf.returncode == 0, qpdf.stdout + qpdf.stderr


def test_r05_requester_who_is_also_approver_cannot_approve_own_request(
    daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    # wang.fang may both request and approve; on her own request she never counts.
    def make_wang_requester(config: DaemonConfig) -> None:
        assert config.principal("wang.fang")["roles"] == ["approver"]
        config.set_principal("wang.fang", roles=["requester", "approver"])

    d = daemon_factory(make_wang_requester)
    request = submit(d, tmp_path, requester="wang.fang")
    with d.client("wang.fang") as wang, pytest.raises(SealClientError) as refused:
        wang.approve(request.request_id)
    assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert refused.value.reason == "requester_cannot_approve"
    with d.client("li.na") as c:
        assert len(c.get(request.request_id).approvals) == 0


def test_r05_one_approval_is_not_enough(daemon: SealDaemon, tmp_path: Path) -> None:
    request = submit(daemon, tmp_path)
    with daemon.client("liu.yang") as custodian:
        unlock_first_use(custodian, daemon.fixtures, "contract")
    with daemon.client("li.na") as li:
        after = li.approve(request.request_id)
    assert after.state == PENDING
    assert "1 more approval" in after.state_reason
    with daemon.client("zhang.wei") as requester:
        with pytest.raises(SealClientError) as refused:
            requester.download(request.request_id, 0, tmp_path / "never.pdf")
        assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert requester.get(request.request_id).state == PENDING
    assert not (tmp_path / "never.pdf").exists()


def test_r05_same_approver_twice_counts_once_even_with_a_second_certificate(
    daemon: SealDaemon, tmp_path: Path
) -> None:
    request = submit(daemon, tmp_path)
    with daemon.client("li.na") as li:
        li.approve(request.request_id)
        with pytest.raises(SealClientError) as again:
            li.approve(request.request_id)
        assert again.value.code == grpc.StatusCode.ALREADY_EXISTS
    laptop = daemon.fixtures.principals["li.na-laptop"]
    assert laptop.principal == "li.na"
    with daemon.client_for(laptop) as li_laptop, pytest.raises(SealClientError) as second_cert:
        li_laptop.approve(request.request_id)
    assert second_cert.value.code == grpc.StatusCode.ALREADY_EXISTS
    with daemon.client("zhang.wei") as c:
        current = c.get(request.request_id)
    assert current.state == PENDING
    assert [a.approver for a in current.approvals] == ["li.na"]


def test_r06_approval_naming_another_hash_or_digest_is_refused(
    daemon: SealDaemon, tmp_path: Path
) -> None:
    """Signed (issue 9) but about other bytes: the hash and digest checks still name it."""
    request = submit(daemon, tmp_path)
    stub = requests_pb2_grpc.SealRequestServiceStub(raw_channel(daemon, "li.na"))
    li = daemon.fixtures.principals["li.na"]
    signer = ApprovalSigner(li.key.read_bytes(), li.cert.read_bytes())
    wrong_hash = hashlib.sha256(b"another document").hexdigest()
    forged = requests_pb2.SealRequest()
    forged.CopyFrom(request)
    forged.documents[0].sha256 = wrong_hash
    forged.approval_digest = local_approval_digest(
        forged, [LocalDocument(wrong_hash, request.documents[0].size)]
    )
    message = build_approval(
        forged, [LocalDocument(wrong_hash, request.documents[0].size)], signer=signer
    )
    with pytest.raises(grpc.RpcError) as refused:
        stub.ApproveRequest(message)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(refused.value) == "document_hash_mismatch"
    forged.CopyFrom(request)
    forged.placement.y_mm = 20  # another placement -> another digest
    local = [LocalDocument(d.sha256, d.size) for d in request.documents]
    forged.approval_digest = local_approval_digest(forged, local)
    with pytest.raises(grpc.RpcError) as bad_digest:
        stub.ApproveRequest(build_approval(forged, local, signer=signer))
    assert bad_digest.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason_of(bad_digest.value) == "digest_mismatch"
    with daemon.client("zhang.wei") as c:
        assert len(c.get(request.request_id).approvals) == 0


def _health_call(d: SealDaemon, creds: grpc.ChannelCredentials) -> None:
    with grpc.secure_channel(d.target, creds) as channel:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)


def test_r04_r15_no_client_certificate_is_refused(daemon: SealDaemon) -> None:
    creds = grpc.ssl_channel_credentials(daemon.fixtures.tls_ca.read_bytes())
    with pytest.raises(grpc.RpcError) as refused:
        _health_call(daemon, creds)
    # The TLS layer refuses the handshake: no gRPC method ever runs for this peer.
    assert refused.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED)


def test_r04_r15_certificate_from_another_ca_is_refused(daemon: SealDaemon) -> None:
    foreign = daemon.fixtures.foreign
    creds = grpc.ssl_channel_credentials(
        daemon.fixtures.tls_ca.read_bytes(), foreign.key.read_bytes(), foreign.cert.read_bytes()
    )
    with pytest.raises(grpc.RpcError) as refused:
        _health_call(daemon, creds)
    assert refused.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED)


def test_r04_valid_but_unlisted_certificate_is_unauthenticated_and_audited(
    daemon: SealDaemon,
) -> None:
    with (
        daemon.client_for(daemon.fixtures.unlisted) as stranger,
        pytest.raises(SealClientError) as refused,
    ):
        stranger.seals()
    assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert refused.value.reason == "certificate_not_listed"
    assert "allow-list" in refused.value.message
    conn = sqlite3.connect(daemon.fixtures.state_dir / "seald.sqlite3")
    events = [
        r[0] for r in conn.execute("SELECT event FROM audit_log WHERE event = 'auth.refused'")
    ]
    conn.close()
    assert events == ["auth.refused"]


def test_r04_requester_calling_approve_is_permission_denied(
    daemon: SealDaemon, tmp_path: Path
) -> None:
    request = submit(daemon, tmp_path)
    with daemon.client("zhang.wei") as requester, pytest.raises(SealClientError) as refused:
        requester.approve(request.request_id)
    assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED


def test_r05_restart_between_approval_and_sealing_loses_nothing(
    daemon: SealDaemon, tmp_path: Path
) -> None:
    request = submit(daemon, tmp_path)
    with daemon.client("li.na") as li, daemon.client("wang.fang") as wang:
        li.approve(request.request_id)
        wang.approve(request.request_id)
    daemon.kill()  # SIGKILL: no chance to flush anything
    daemon.start()
    with daemon.client("zhang.wei") as requester:
        after = requester.get(request.request_id)
    assert after.state == APPROVED
    assert sorted(a.approver for a in after.approvals) == ["li.na", "wang.fang"]
    assert after.approval_digest == request.approval_digest
    with daemon.client("liu.yang") as custodian:
        unlock_first_use(custodian, daemon.fixtures, "contract")
    with daemon.client("zhang.wei") as requester:
        daemon.wait_state(requester, request.request_id, SIGNED)
        requester.download(request.request_id, 0, tmp_path / "sealed.pdf")
    pdfsig = subprocess.run(
        ["pdfsig", str(tmp_path / "sealed.pdf")], capture_output=True, text=True, check=False
    )
    assert "Signature is Valid" in pdfsig.stdout


def test_health_and_reflection_are_served(daemon: SealDaemon) -> None:
    channel = raw_channel(daemon, "zhao.min")
    health = health_pb2_grpc.HealthStub(channel)
    overall = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert overall.status == health_pb2.HealthCheckResponse.SERVING
    seal = health.Check(health_pb2.HealthCheckRequest(service="seal/contract"), timeout=5)
    assert seal.status == health_pb2.HealthCheckResponse.NOT_SERVING  # token locked
    reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
    answers = list(
        reflect.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
    )
    names = {s.name for s in answers[0].list_services_response.service}
    assert "sealapi.v1.SealRequestService" in names
    assert "grpc.health.v1.Health" in names
    channel.close()


def test_sealctl_cli_end_to_end(daemon: SealDaemon, tmp_path: Path) -> None:
    """The CLI as a script would use it: --json output and trustworthy exit codes."""
    pdf = make_pdf(tmp_path / "doc.pdf")
    sealctl = shutil.which("sealctl", path=str(Path(sys.executable).parent))
    assert sealctl is not None

    def run(who: str, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        cfg = daemon.fixtures.principals[who].config
        return subprocess.run(
            [sealctl, "--config", str(cfg), "--server", daemon.target, *args],
            capture_output=True,
            text=True,
            input=stdin,
            check=False,
            timeout=60,
        )

    sub = run(
        "zhang.wei",
        "--json",
        "submit",
        str(pdf),
        "--seal",
        "contract",
        "--reason",
        "合同",
        "--category",
        "contract",
        "--x-mm",
        "100",
        "--y-mm",
        "200",
    )
    assert sub.returncode == 0, sub.stderr
    rid = json.loads(sub.stdout)["request_id"]
    denied = run("zhang.wei", "approve", rid)
    assert denied.returncode == 3 and "sealctl: error:" in denied.stderr
    assert run("li.na", "approve", rid).returncode == 0
    assert run("wang.fang", "approve", rid).returncode == 0
    initial = user_pin(daemon.fixtures, "contract")
    pin = CHANGED_PIN
    changed = run(
        "liu.yang", "token", "change-pin", "contract", "--pin-stdin", stdin=f"{initial}\n{pin}\n"
    )
    assert changed.returncode == 0, changed.stderr
    assert initial not in changed.stdout + changed.stderr
    unlock = run("liu.yang", "token", "unlock", "contract", "--pin-stdin", stdin=pin + "\n")
    assert unlock.returncode == 0, unlock.stderr
    assert pin not in unlock.stdout + unlock.stderr
    with daemon.client("zhang.wei") as c:
        daemon.wait_state(c, rid, SIGNED)
    got = run("zhang.wei", "download", rid, "-o", str(tmp_path / "out.pdf"))
    assert got.returncode == 0, got.stderr
    missing = run("zhang.wei", "status", "0" * 32)
    assert missing.returncode == 4
    assert pin not in daemon.log()
