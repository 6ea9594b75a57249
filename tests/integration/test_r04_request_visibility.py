"""R04 over a real seald: a refusal must not tell whether a request exists, and only the
people who judge or answer for a seal read a request's documents (issue 14, item 8).

- Someone else's request id and an id that does not exist get the same status, reason and
  message (the id itself aside) from every RPC that takes a request id.
- Reading content: the originals (DownloadDocument ORIGINAL) and the previews follow one
  rule, `lifecycle.can_read_content`: the requester, the seal's approvers, admins and
  auditors; a custodian-only principal is refused (PERMISSION_DENIED) - custodians hold
  the token, they do not judge documents.
"""

from __future__ import annotations

import sqlite3
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from fixture_layout import SealFixtures, relocate_fixtures

from sealapi.v1 import common_pb2, requests_pb2, requests_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from daemon_harness import SealDaemon, make_pdf
from test_seal_lifecycle import issue_client_cert

OUTSIDER = "qian.li"  # every role, but only on the official seal
PLACEMENT = common_pb2.Placement(page=1, x_mm=100, y_mm=100)


@pytest.fixture(scope="module")
def daemon(
    tmp_path_factory: pytest.TempPathFactory, seal_fixtures: SealFixtures
) -> Iterator[tuple[SealDaemon, tuple[Path, Path]]]:
    root = tmp_path_factory.mktemp("visibility")
    fx = relocate_fixtures(seal_fixtures.root, root / "fixtures")
    cert, key, fp = issue_client_cert(fx, OUTSIDER, root)
    entry = (
        f'\n[[principal]]\nname = "{OUTSIDER}"\n'
        'roles = ["requester", "approver", "custodian", "admin", "auditor"]\n'
        f'seals = ["official"]\ncertificates = ["{fp}"]\ngroups = ["general_manager"]\n'
    )
    d = SealDaemon(fx, config_edit=lambda text: text + entry)
    d.start()
    yield d, (cert, key)
    if d.proc is not None:
        d.stop()


def _stub(d: SealDaemon, cert: Path, key: Path) -> requests_pb2_grpc.SealRequestServiceStub:
    creds = grpc.ssl_channel_credentials(d.fixtures.tls_ca.read_bytes(), key.read_bytes(), cert.read_bytes())
    return requests_pb2_grpc.SealRequestServiceStub(grpc.secure_channel(d.target, creds))


def _answer(call: Callable[[], Any]) -> tuple[grpc.StatusCode, str, str]:
    """(status, reason, message) of a call; OK with empty texts when it succeeded."""
    try:
        result = call()
        if isinstance(result, Iterator):
            for _ in result:
                pass
    except grpc.RpcError as ex:
        reason = dict(ex.trailing_metadata() or ()).get("seal-error-reason", "")  # type: ignore[attr-defined]
        return ex.code(), str(reason), str(ex.details())  # type: ignore[attr-defined]
    return grpc.StatusCode.OK, "", ""


def _calls(stub: requests_pb2_grpc.SealRequestServiceStub, request_id: str) -> dict[str, Callable[[], Any]]:
    r = request_id
    return {
        "GetRequest": lambda: stub.GetRequest(requests_pb2.GetRequestRequest(request_id=r), timeout=10),
        "WatchRequests": lambda: stub.WatchRequests(
            requests_pb2.WatchRequestsRequest(request_id=r), timeout=3
        ),
        "ApproveRequest": lambda: stub.ApproveRequest(
            requests_pb2.ApproveRequestRequest(request_id=r, approval_digest="0" * 64), timeout=10
        ),
        "WithdrawApproval": lambda: stub.WithdrawApproval(
            requests_pb2.WithdrawApprovalRequest(request_id=r), timeout=10
        ),
        "RejectRequest": lambda: stub.RejectRequest(
            requests_pb2.RejectRequestRequest(request_id=r, comment="不行"), timeout=10
        ),
        "CancelRequest": lambda: stub.CancelRequest(
            requests_pb2.CancelRequestRequest(request_id=r), timeout=10
        ),
        "DownloadDocument(original)": lambda: stub.DownloadDocument(
            requests_pb2.DownloadDocumentRequest(
                request_id=r, variant=requests_pb2.DOCUMENT_VARIANT_ORIGINAL
            ),
            timeout=10,
        ),
        "DownloadDocument(sealed)": lambda: stub.DownloadDocument(
            requests_pb2.DownloadDocumentRequest(request_id=r, variant=requests_pb2.DOCUMENT_VARIANT_SEALED),
            timeout=10,
        ),
        "PreviewRequest": lambda: stub.PreviewRequest(
            requests_pb2.PreviewRequestRequest(request_id=r), timeout=30
        ),
        "GetEvidence": lambda: stub.GetEvidence(requests_pb2.GetEvidenceRequest(request_id=r), timeout=10),
    }


def _submit(d: SealDaemon, tmp_path: Path) -> requests_pb2.SealRequest:
    pdf = make_pdf(tmp_path / "visible.pdf")
    with d.client("zhang.wei") as z:
        return z.submit([pdf], seal_id="contract", reason="可见性", category="contract", placement=PLACEMENT)


def test_r04_someone_elses_request_answers_like_an_unknown_id(
    daemon: tuple[SealDaemon, tuple[Path, Path]], tmp_path: Path
) -> None:
    d, outsider = daemon
    real = _submit(d, tmp_path).request_id
    unknown = uuid.uuid4().hex
    stub = _stub(d, *outsider)
    problems = []
    for method, call in _calls(stub, real).items():
        seen = _answer(call)
        never = _answer(_calls(stub, unknown)[method])
        if seen[0] != grpc.StatusCode.NOT_FOUND or seen[1] != "request_not_found":
            problems.append(f"{method}: someone else's request gave {seen[0].name} {seen[1]}")
        if (seen[0], seen[1], seen[2].replace(real, "<id>")) != (
            never[0],
            never[1],
            never[2].replace(unknown, "<id>"),
        ):
            problems.append(f"{method}: {seen} differs from the unknown id's {never}")
    assert problems == [], "\n".join(problems)
    # The refusal is still in the ledger as what it was: a denied access.
    conn = sqlite3.connect(d.fixtures.state_dir / "seald.sqlite3")
    try:
        denied = conn.execute(
            "SELECT COUNT(*) FROM audit_log WHERE event = 'access.denied' AND request_id = ? "
            "AND principal = ? AND reason = 'not_visible'",
            (real, OUTSIDER),
        ).fetchone()[0]
    finally:
        conn.close()
    assert denied == len(_calls(stub, real))


# Who reads a request's content (the original, its preview): one rule for both.
CONTENT_READERS = {
    "zhang.wei": True,  # requester
    "li.na": True,  # approver: judges the document (R06)
    "liu.yang": False,  # custodian only: holds the token, does not judge documents
    "chen.jie": True,  # admin of the seal
    "zhao.min": True,  # auditor of the seal
}


@pytest.mark.parametrize(("name", "allowed"), sorted(CONTENT_READERS.items()))
def test_r04_originals_and_previews_read_by_the_same_people(
    daemon: tuple[SealDaemon, tuple[Path, Path]], tmp_path: Path, name: str, allowed: bool
) -> None:
    d, _ = daemon
    request_id = _submit(d, tmp_path).request_id
    who = d.fixtures.principals[name]
    stub = _stub(d, who.cert, who.key)
    calls = _calls(stub, request_id)
    for method in ("DownloadDocument(original)", "PreviewRequest"):
        code, reason, _ = _answer(calls[method])
        if allowed:
            assert code == grpc.StatusCode.OK, (name, method, code, reason)
        else:
            assert code == grpc.StatusCode.PERMISSION_DENIED, (name, method, code, reason)
            assert reason in {"not_allowed_to_read", "not_allowed_to_preview"}
    # Everyone with a role on the seal still sees the request itself (state, metadata).
    assert _answer(calls["GetRequest"])[0] == grpc.StatusCode.OK
