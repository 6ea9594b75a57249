"""Seal creation and certificate renewal (R02 刻制/变更, R06, R15) over a real seald,
real mutual TLS and SoftHSM tokens.

A new seal `contract2` is registered in the config without a certificate, on a token
freshly made with softhsm2-util. The admin has its key generated ON the token
(CreateSealKey), a CA made with cryptography from the fixtures' seal-CA key issues a
certificate for the CSR, the admin imports it, and the seal signs documents that
pdfsig validates. A certificate for another key is refused, naming the mismatch.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import subprocess
from pathlib import Path

import grpc
import pkcs11
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fixture_layout import SealFixtures
from pkcs11 import Attribute, ObjectClass

from sealapi.v1 import common_pb2, requests_pb2, requests_pb2_grpc
from sealclient.approval import ApprovalSigner, LocalDocument, build_approval
from sealclient.errors import SealClientError
from seald_testing.daemon import CHANGED_PIN, SealDaemon, make_pdf, unlock_first_use
from seald_testing.plugin import DaemonFactory
from seald_testing.seals import NEW_KEY, NEW_PIN, NEW_SEAL, NEW_TOKEN, IssuingCA, make_token, with_new_seal

PLACEMENT = common_pb2.Placement(page=0, x_mm=150, y_mm=240)
SIGNED = requests_pb2.REQUEST_STATE_SIGNED
PENDING = requests_pb2.REQUEST_STATE_PENDING
APPROVED = requests_pb2.REQUEST_STATE_APPROVED


@pytest.fixture
def new_seal_daemon(daemon_factory: DaemonFactory) -> SealDaemon:
    serial = make_token(daemon_factory.fixtures(), NEW_TOKEN, NEW_PIN)
    return daemon_factory(with_new_seal(serial))


def code_and_reason(ex: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    reason = dict(ex.trailing_metadata() or ()).get("seal-error-reason", "")  # type: ignore[attr-defined]
    return ex.code(), str(reason)  # type: ignore[attr-defined]


def approve_and_sign(d: SealDaemon, tmp_path: Path, seal_id: str, name: str) -> requests_pb2.SealRequest:
    pdf = make_pdf(tmp_path / name)
    with d.client("zhang.wei") as z:
        request = z.submit(
            [pdf], seal_id=seal_id, reason="采购合同", category="contract", placement=PLACEMENT
        )
    with d.client("li.na") as li, d.client("wang.fang") as wang:
        li.approve(request.request_id)
        wang.approve(request.request_id)
    with d.client("zhang.wei") as z:
        return d.wait_state(z, request.request_id, SIGNED)


def pdfsig_valid(path: Path) -> str:
    report = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, check=False).stdout
    assert "Signature is Valid" in report, report
    assert "Total document signed" in report, report
    return report


def ledger(d: SealDaemon, seal_id: str) -> tuple[list[str], list[str]]:
    db = sqlite3.connect(d.fixtures.state_dir / "seald.sqlite3")
    try:
        history = [
            r[0]
            for r in db.execute("SELECT action FROM seal_history WHERE seal_id = ? ORDER BY id", (seal_id,))
        ]
        events = [
            r[0]
            for r in db.execute("SELECT event FROM audit_log WHERE seal_id = ? ORDER BY sequence", (seal_id,))
        ]
    finally:
        db.close()
    return history, events


@pytest.mark.clock  # issue 14: certificates valid from now for a day
def test_r02_r15_create_key_on_token_import_certificate_then_seal_validates(
    new_seal_daemon: SealDaemon, tmp_path: Path
) -> None:
    d = new_seal_daemon
    fx = d.fixtures
    ca = IssuingCA(fx)
    with d.client("chen.jie") as admin:
        assert admin.get_seal(NEW_SEAL).status == common_pb2.SEAL_STATUS_PENDING
        # The key is made on the token, so the custodian must have it unlocked first.
        with pytest.raises(SealClientError) as locked:
            admin.create_seal_key(NEW_SEAL)
        assert locked.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert locked.value.reason == "token_locked"
    # A pending seal takes no request.
    with d.client("zhang.wei") as z, pytest.raises(SealClientError) as refused:
        z.submit(
            [make_pdf(tmp_path / "early.pdf")],
            seal_id=NEW_SEAL,
            reason="r",
            category="contract",
            placement=PLACEMENT,
        )
    assert refused.value.reason == "seal_pending"

    with d.client("liu.yang") as custodian:
        custodian.change_pin(NEW_SEAL, NEW_PIN, CHANGED_PIN)
        custodian.unlock(NEW_SEAL, CHANGED_PIN)
    with d.client("chen.jie") as admin:
        created = admin.create_seal_key(NEW_SEAL)
        csr = x509.load_der_x509_csr(created.csr_der)
        assert csr.is_signature_valid
        assert "华夏示例科技有限公司" in csr.subject.rfc4514_string()
        # Asking again (CSR lost) gives a CSR for the SAME key, never a second key.
        again = x509.load_der_x509_csr(admin.create_seal_key(NEW_SEAL).csr_der)
        assert again.public_key() == csr.public_key()

        # R15: generated by the token (CKA_LOCAL), sensitive, never extractable.
        lib = pkcs11.lib(str(fx.module))
        lib.reinitialize()
        with lib.get_token(token_label=NEW_TOKEN).open(user_pin=CHANGED_PIN) as session:
            keys = list(
                session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: NEW_KEY})
            )
            assert len(keys) == 1
            key = keys[0]
            assert key[Attribute.LOCAL] is True
            assert key[Attribute.SENSITIVE] is True
            assert key[Attribute.EXTRACTABLE] is False
            assert key[Attribute.NEVER_EXTRACTABLE] is True

        # A certificate for another key (the other contract seal's, same CA) is refused.
        other = x509.load_pem_x509_certificate(fx.seals["contract"].certificate.read_bytes())
        with pytest.raises(SealClientError) as mismatch:
            admin.import_seal_certificate(NEW_SEAL, other.public_bytes(serialization.Encoding.DER))
        assert mismatch.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert mismatch.value.reason == "certificate_key_mismatch"
        assert "mismatch" in str(mismatch.value) and NEW_SEAL in str(mismatch.value)
        # The right key, but not from the seal CA: refused too.
        rogue_ca = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        rogue = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(x509.Name.from_rfc4514_string("CN=rogue CA"))
            .public_key(csr.public_key())  # type: ignore[arg-type]
            .serial_number(7)
            .not_valid_before(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
            .not_valid_after(dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
            .sign(rogue_ca, hashes.SHA256())
        )
        with pytest.raises(SealClientError) as untrusted:
            admin.import_seal_certificate(NEW_SEAL, rogue.public_bytes(serialization.Encoding.DER))
        assert untrusted.value.reason == "certificate_untrusted_issuer"
        assert admin.get_seal(NEW_SEAL).status == common_pb2.SEAL_STATUS_PENDING

        issued = ca.issue_for_csr(created.csr_der)
        seal = admin.import_seal_certificate(NEW_SEAL, issued)
        assert seal.status == common_pb2.SEAL_STATUS_ACTIVE
        assert seal.certificate_der == issued
        with pytest.raises(SealClientError) as twice:
            admin.import_seal_certificate(NEW_SEAL, issued)
        assert twice.value.code == grpc.StatusCode.ALREADY_EXISTS

    done = approve_and_sign(d, tmp_path, NEW_SEAL, "first.pdf")
    out = tmp_path / "sealed-first.pdf"
    with d.client("zhang.wei") as z:
        z.download(done.request_id, 0, out)
        report = z.verify(out)
    pdfsig_valid(out)
    assert report.all_valid
    assert (
        report.signatures[0].signer_certificate_sha256
        == x509.load_der_x509_certificate(issued).fingerprint(hashes.SHA256()).hex()
    )
    assert report.signatures[0].seal_id == NEW_SEAL

    # The imported certificate is the registered one after a restart, too.
    d.stop()
    d.start()
    with d.client("zhao.min") as auditor:
        assert auditor.get_seal(NEW_SEAL).certificate_der == issued
        assert auditor.get_seal(NEW_SEAL).status == common_pb2.SEAL_STATUS_ACTIVE
    with d.client("liu.yang") as custodian:
        custodian.unlock(NEW_SEAL, CHANGED_PIN)  # the registered-key check passes
    pdfsig_valid(_download(d, approve_and_sign(d, tmp_path, NEW_SEAL, "second.pdf"), tmp_path / "s2.pdf"))

    history, events = ledger(d, NEW_SEAL)
    assert history == ["create_key", "create_key", "import_certificate"]
    assert events.count("seal.key_created") == 1 and events.count("seal.csr_exported") == 1
    assert "seal.certificate_imported" in events


def _download(d: SealDaemon, request: requests_pb2.SealRequest, out: Path) -> Path:
    with d.client("zhang.wei") as z:
        z.download(request.request_id, 0, out)
    return out


def renewed_certificate(fx: SealFixtures, seal_id: str) -> bytes:
    """A new certificate for the SAME key as the seal's current one (R02 change)."""
    current = x509.load_pem_x509_certificate(fx.seals[seal_id].certificate.read_bytes())
    return IssuingCA(fx).issue(current.subject, current.public_key(), days=730)  # type: ignore[arg-type]


@pytest.mark.clock  # issue 14: certificates valid from now for a day
def test_r02_r06_renewed_certificate_voids_approvals_bound_to_the_old_one(
    daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    d = daemon_factory()
    fx = d.fixtures
    old_der = x509.load_pem_x509_certificate(fx.seals["contract"].certificate.read_bytes()).public_bytes(
        serialization.Encoding.DER
    )
    with d.client("zhang.wei") as z:
        request = z.submit(
            [make_pdf(tmp_path / "c.pdf")],
            seal_id="contract",
            reason="采购合同",
            category="contract",
            placement=PLACEMENT,
        )
    with d.client("li.na") as li:
        assert li.approve(request.request_id).state == PENDING  # one of two approvals
    old_digest = request.approval_digest
    renewed = renewed_certificate(fx, "contract")
    with d.client("chen.jie") as admin, pytest.raises(SealClientError) as locked:
        admin.change_seal("contract", certificate_der=renewed)  # written to the token: unlocked
    assert locked.value.reason == "token_locked"
    with d.client("liu.yang") as custodian:
        unlock_first_use(custodian, fx, "contract")
    with d.client("chen.jie") as admin:
        # The renewal CSR comes from the seal's own key on the token: never a second key.
        csr = x509.load_der_x509_csr(admin.create_seal_key("contract").csr_der)
        assert csr.public_key() == x509.load_der_x509_certificate(old_der).public_key()
        renewed = IssuingCA(fx).issue_for_csr(csr.public_bytes(serialization.Encoding.DER))
        other = x509.load_pem_x509_certificate(fx.seals["official"].certificate.read_bytes())
        with pytest.raises(SealClientError) as mismatch:  # a renewal keeps the key
            admin.change_seal("contract", certificate_der=other.public_bytes(serialization.Encoding.DER))
        assert mismatch.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert mismatch.value.reason == "certificate_key_mismatch"
        seal = admin.change_seal("contract", certificate_der=renewed, comment="证书到期更换")
    assert seal.status == common_pb2.SEAL_STATUS_ACTIVE
    assert seal.certificate_der == renewed

    # R06: li.na's approval covered the old certificate: it is void, the digest changed.
    with d.client("zhang.wei") as z:
        rebound = z.get(request.request_id)
    assert rebound.state == PENDING and len(rebound.approvals) == 0
    assert rebound.approval_digest != old_digest
    assert (
        rebound.seal_certificate_sha256
        == x509.load_der_x509_certificate(renewed).fingerprint(hashes.SHA256()).hex()
    )
    # An approval still bound to the old certificate (old digest), correctly signed by
    # its approver (issue 9), is refused.
    fp = fx.principals["wang.fang"]
    stale_approval = build_approval(
        request,
        [LocalDocument(sha256=doc.sha256, size=doc.size) for doc in request.documents],
        signer=ApprovalSigner(fp.key.read_bytes(), fp.cert.read_bytes()),
    )
    assert stale_approval.approval_digest == old_digest
    creds = grpc.ssl_channel_credentials(
        fx.tls_ca.read_bytes(), fp.key.read_bytes(), fp.cert.read_bytes()
    )
    with grpc.secure_channel(d.target, creds) as channel:
        stub = requests_pb2_grpc.SealRequestServiceStub(channel)
        with pytest.raises(grpc.RpcError) as stale:
            stub.ApproveRequest(stale_approval, timeout=30)
    assert code_and_reason(stale.value) == (grpc.StatusCode.INVALID_ARGUMENT, "digest_mismatch")

    # Approved again under the new certificate, the document is sealed with it.
    with d.client("li.na") as li, d.client("wang.fang") as wang:
        li.approve(request.request_id)
        wang.approve(request.request_id)
    with d.client("zhang.wei") as z:
        d.wait_state(z, request.request_id, SIGNED)
        out = tmp_path / "renewed.pdf"
        z.download(request.request_id, 0, out)
        report = z.verify(out)
    pdfsig_valid(out)
    assert report.signatures[0].signer_certificate_sha256 == rebound.seal_certificate_sha256

    # History kept: both certificates are on record; the new one survives a restart.
    d.stop()
    d.start()
    with d.client("zhao.min") as auditor:
        assert auditor.get_seal("contract").certificate_der == renewed
    history, events = ledger(d, "contract")
    assert history == ["create_key", "change"]
    assert "seal.csr_exported" in events and "seal.key_created" not in events
    assert "seal.certificate_renewed" in events and "request.approvals_voided" in events
    db = sqlite3.connect(fx.state_dir / "seald.sqlite3")
    try:
        details = db.execute(
            "SELECT details_json FROM seal_history WHERE seal_id = 'contract' AND action = 'change'"
        ).fetchone()[0]
    finally:
        db.close()
    old_sha = x509.load_der_x509_certificate(old_der).fingerprint(hashes.SHA256()).hex()
    assert old_sha in details and rebound.seal_certificate_sha256 in details
