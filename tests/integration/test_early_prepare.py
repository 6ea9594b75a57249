"""Documents are prepared while the approval that completes a request commits (issue 8:
latency). Preparing is not sealing: nothing is signed before the intent record (R10),
and a preparation for an approval that is refused after all leaves nothing behind."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import grpc
import pytest

from sealapi.v1 import common_pb2, requests_pb2
from sealclient.approval import ApprovalSigner, LocalDocument, build_approval
from seald_testing.daemon import SealDaemon, make_pdf, unlock_first_use
from seald_testing.state_checks import check_state

PLACEMENT = common_pb2.Placement(page=0, x_mm=150, y_mm=240)


def _wait(condition: object, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_r10_preparation_for_a_refused_completing_approval_is_discarded_and_nothing_signed(
    daemon: SealDaemon, tmp_path: Path
) -> None:
    with daemon.client("liu.yang") as custodian:
        unlock_first_use(custodian, daemon.fixtures, "contract")
    pdf = make_pdf(tmp_path / "contract.pdf", pages=1)
    with daemon.client("zhang.wei") as requester:
        request = requester.submit(
            [pdf], seal_id="contract", reason="采购合同", category="contract", placement=PLACEMENT
        )
    rid = request.request_id
    with daemon.client("li.na") as li:
        li.approve(rid)
    folder = daemon.fixtures.state_dir / "documents" / rid

    # wang.fang's approval would complete the request, so seald starts preparing at once;
    # but its signed comment is not the one sent, so the transaction refuses it.
    who = daemon.fixtures.principals["wang.fang"]
    with daemon.client("wang.fang") as wang:
        current = wang.get(rid)
        local = [LocalDocument(d.sha256, d.size) for d in current.documents]
        bad = build_approval(
            current, local, comment="同意", signer=ApprovalSigner(who.key.read_bytes(), who.cert.read_bytes())
        )
        bad.comment = "不同意"
        with pytest.raises(grpc.RpcError) as refused:
            wang._requests.ApproveRequest(bad, timeout=10)
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]

    _wait(lambda: '"seal.early_prepare_discarded"' in daemon.log(), "no early preparation was discarded")
    _wait(lambda: not list(folder.glob(".*.part")), "the early preparation's temp file stayed")
    with daemon.client("zhang.wei") as requester:
        still = requester.get(rid)
    assert still.state == requests_pb2.REQUEST_STATE_PENDING and len(still.approvals) == 1
    assert not list(folder.glob("*.sealed.pdf"))
    assert '"seal.sign_intent"' not in daemon.log()

    # The proper approval: prepared early again, used this time, sealed once.
    with daemon.client("wang.fang") as wang:
        wang.approve(rid)
    with daemon.client("zhang.wei") as requester:
        _wait(lambda: requester.get(rid).state == requests_pb2.REQUEST_STATE_SIGNED, "not signed")
        out = tmp_path / "sealed.pdf"
        requester.download(rid, 0, out)
    assert daemon.log().count('"seal.early_prepare_discarded"') == 1
    report = subprocess.run(["pdfsig", str(out)], capture_output=True, text=True, check=False).stdout
    assert report.count("Signature #") == 1 and "Signature is Valid" in report, report
    assert not list(folder.glob(".*.part"))
    counts = check_state(daemon.fixtures.state_dir, after_restart=False)
    assert counts["signed_records"] == counts["sealed_files"] == 1
