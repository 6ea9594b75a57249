"""R06 single use: fifty parallel attempts to sign one approved request make exactly one
signature. Real seald process, real mutual TLS, SoftHSM token, SQLite ledger.

What triggers signing over the API is the last approval (with the token unlocked) and
the custodian's unlock (with the request approved). Both are fired fifty times at once
from fifty threads, each with its own channel, and the evidence is counted on disk: one
sign-intent and one signed record in the ledger, one sealed file with one signature.
"""

from __future__ import annotations

import sqlite3
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
from pyhanko.pdf_utils.reader import PdfFileReader

from sealapi.v1 import common_pb2, requests_pb2, requests_pb2_grpc, tokens_pb2, tokens_pb2_grpc
from sealclient.approval import ApprovalSigner, LocalDocument, build_approval
from seald_testing.daemon import CHANGED_PIN, SealDaemon, make_pdf, user_pin
from seald_testing.plugin import DaemonFactory

PLACEMENT = common_pb2.Placement(page=0, x_mm=150, y_mm=240)
ATTEMPTS = 50


def channel_of(d: SealDaemon, who: str) -> grpc.Channel:
    fx = d.fixtures
    p = fx.principals[who]
    creds = grpc.ssl_channel_credentials(fx.tls_ca.read_bytes(), p.key.read_bytes(), p.cert.read_bytes())
    return grpc.secure_channel(d.target, creds)


failures: list[str] = []  # what the refused attempts were told, for the assertion messages


def storm(d: SealDaemon, who: str, call: str, message: object) -> list[grpc.StatusCode]:
    """``ATTEMPTS`` calls at once, each on its own channel (its own TLS connection)."""
    channels = [channel_of(d, who) for _ in range(ATTEMPTS)]
    for channel in channels:
        grpc.channel_ready_future(channel).result(timeout=30)
    service = (
        requests_pb2_grpc.SealRequestServiceStub
        if call == "ApproveRequest"
        else tokens_pb2_grpc.TokenServiceStub
    )

    def attempt(channel: grpc.Channel) -> grpc.StatusCode:
        try:
            getattr(service(channel), call)(message, timeout=60)
            return grpc.StatusCode.OK
        except grpc.RpcError as ex:
            failures.append(f"{ex.code()}: {ex.details()}")  # type: ignore[attr-defined]
            return ex.code()  # type: ignore[attr-defined,no-any-return]

    try:
        with ThreadPoolExecutor(max_workers=ATTEMPTS) as pool:
            return list(pool.map(attempt, channels))
    finally:
        for channel in channels:
            channel.close()


def evidence(d: SealDaemon, request_id: str) -> dict[str, int]:
    db = sqlite3.connect(d.fixtures.state_dir / "seald.sqlite3")
    try:
        rows = db.execute(
            "SELECT event, COUNT(*) FROM audit_log WHERE request_id = ? GROUP BY event", (request_id,)
        ).fetchall()
    finally:
        db.close()
    return {event: count for event, count in rows}


def one_signature(d: SealDaemon, request_id: str, tmp_path: Path) -> None:
    files = sorted((d.fixtures.state_dir / "documents" / request_id).glob("*.sealed.pdf"))
    assert len(files) == 1
    with files[0].open("rb") as handle:
        assert len(PdfFileReader(handle).embedded_signatures) == 1
    report = subprocess.run(["pdfsig", str(files[0])], capture_output=True, text=True, check=False).stdout
    assert report.count("Signature #") == 1 and "Signature is Valid" in report, report


def submit_with_one_approval(d: SealDaemon, tmp_path: Path, name: str) -> requests_pb2.SealRequest:
    with d.client("zhang.wei") as z:
        request = z.submit(
            [make_pdf(tmp_path / name)],
            seal_id="contract",
            reason="采购合同",
            category="contract",
            placement=PLACEMENT,
        )
    with d.client("li.na") as li:
        li.approve(request.request_id)
    return request


def test_r06_fifty_parallel_signing_triggers_make_exactly_one_signature(
    daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    d = daemon_factory()
    fx = d.fixtures
    with d.client("liu.yang") as custodian:
        custodian.change_pin("contract", user_pin(fx, "contract"), CHANGED_PIN)

    # 1. Approved while the token is locked; then fifty unlocks at once, each of which
    #    wakes the signer.
    first = submit_with_one_approval(d, tmp_path, "a.pdf")
    with d.client("wang.fang") as wang:
        assert wang.approve(first.request_id).state == requests_pb2.REQUEST_STATE_APPROVED
    codes = storm(
        d, "liu.yang", "UnlockToken", tokens_pb2.UnlockTokenRequest(seal_id="contract", pin=CHANGED_PIN)
    )
    # Every one of the custodian's unlocks succeeds: the first logs in, the others find
    # the token unlocked (none may fail with a second C_Login).
    assert set(codes) == {grpc.StatusCode.OK}, failures
    with d.client("zhang.wei") as z:
        d.wait_state(z, first.request_id, requests_pb2.REQUEST_STATE_SIGNED)
    counts = evidence(d, first.request_id)
    assert counts.get("seal.sign_intent") == 1 and counts.get("seal.signed") == 1, counts
    one_signature(d, first.request_id, tmp_path)

    # 2. Token unlocked; the last approval sent fifty times at once by the second approver.
    second = submit_with_one_approval(d, tmp_path, "b.pdf")
    with d.client("zhang.wei") as z:
        current = z.get(second.request_id)
    # One approval, signed by wang.fang's own key (issue 9), replayed fifty times at once.
    wang_identity = d.fixtures.principals["wang.fang"]
    approve = build_approval(
        current,
        [LocalDocument(sha256=doc.sha256, size=doc.size) for doc in current.documents],
        signer=ApprovalSigner(wang_identity.key.read_bytes(), wang_identity.cert.read_bytes()),
    )
    codes = storm(d, "wang.fang", "ApproveRequest", approve)
    assert codes.count(grpc.StatusCode.OK) == 1, codes
    assert set(codes) <= {
        grpc.StatusCode.OK,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.FAILED_PRECONDITION,
    }
    with d.client("zhang.wei") as z:
        signed = d.wait_state(z, second.request_id, requests_pb2.REQUEST_STATE_SIGNED)
    assert [a.approver for a in signed.approvals] == ["li.na", "wang.fang"]
    counts = evidence(d, second.request_id)
    assert counts.get("request.approved") == 2, counts
    assert counts.get("seal.sign_intent") == 1 and counts.get("seal.signed") == 1, counts
    one_signature(d, second.request_id, tmp_path)
