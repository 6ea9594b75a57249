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
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from fixture_layout import SealFixtures, relocate_fixtures
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sealapi.v1 import common_pb2, requests_pb2, requests_pb2_grpc
from seald_testing.certs import issue_client_cert
from seald_testing.daemon import SealDaemon, make_pdf

OUTSIDER = "qian.li"  # every role, but only on the official seal
PLACEMENT = common_pb2.Placement(page=1, x_mm=100, y_mm=100)


@pytest.fixture(scope="module")
def daemon(
    tmp_path_factory: pytest.TempPathFactory, seal_fixtures: SealFixtures
) -> Iterator[tuple[SealDaemon, tuple[Path, Path]]]:
    root = tmp_path_factory.mktemp("visibility")
    fx = relocate_fixtures(seal_fixtures.root, root / "fixtures")
    cert, key, fp = issue_client_cert(fx, OUTSIDER, root)
    d = SealDaemon(
        fx,
        lambda c: c.add_principal(
            OUTSIDER,
            roles=["requester", "approver", "custodian", "admin", "auditor"],
            seals=["official"],
            certificates=[fp],
            groups=["general_manager"],
        ),
    )
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


def _probe_answers(d: SealDaemon, cert: Path, key: Path) -> dict[str, Any]:
    """What one certificate learns from health and reflection: status name or SERVING/..."""
    creds = grpc.ssl_channel_credentials(d.fixtures.tls_ca.read_bytes(), key.read_bytes(), cert.read_bytes())
    answers: dict[str, Any] = {}
    with grpc.secure_channel(d.target, creds) as ch:
        health = health_pb2_grpc.HealthStub(ch)
        for service in ("", "seal/contract"):
            try:
                answers[f"Check({service!r})"] = health_pb2.HealthCheckResponse.ServingStatus.Name(
                    health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status
                )
            except grpc.RpcError as ex:
                answers[f"Check({service!r})"] = ex.code().name  # type: ignore[attr-defined]
        try:
            first = next(health.Watch(health_pb2.HealthCheckRequest(service="seal/contract"), timeout=10))
            answers["Watch('seal/contract')"] = health_pb2.HealthCheckResponse.ServingStatus.Name(
                first.status
            )
        except grpc.RpcError as ex:
            answers["Watch('seal/contract')"] = ex.code().name  # type: ignore[attr-defined]
        try:
            listing = list(
                reflection_pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
                    iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
                )
            )
            answers["reflection"] = sorted(s.name for s in listing[0].list_services_response.service)
        except grpc.RpcError as ex:
            answers["reflection"] = ex.code().name  # type: ignore[attr-defined]
    return answers


def test_r04_unlisted_certificate_learns_only_overall_health(
    daemon: tuple[SealDaemon, tuple[Path, Path]],
) -> None:
    d, outsider = daemon
    stranger = d.fixtures.unlisted  # from the client CA, not on the allow-list
    assert _probe_answers(d, stranger.cert, stranger.key) == {
        "Check('')": "SERVING",  # load balancers, systemd
        "Check('seal/contract')": "UNAUTHENTICATED",
        "Watch('seal/contract')": "UNAUTHENTICATED",
        "reflection": "UNAUTHENTICATED",
    }
    # Listed, but no role on the contract seal: the overall answer and reflection only.
    seen = _probe_answers(d, *outsider)
    assert seen["Check('seal/contract')"] == seen["Watch('seal/contract')"] == "PERMISSION_DENIED"
    assert seen["Check('')"] == "SERVING" and "sealapi.v1.SealRequestService" in seen["reflection"]
    # A principal of the seal sees it (NOT_SERVING: the token is locked).
    li = d.fixtures.principals["li.na"]
    assert _probe_answers(d, li.cert, li.key)["Check('seal/contract')"] == "NOT_SERVING"
    conn = sqlite3.connect(d.fixtures.state_dir / "seald.sqlite3")
    try:
        refused = conn.execute(
            "SELECT COUNT(*) FROM audit_log WHERE event = 'auth.refused'"
            " AND reason = 'certificate_not_listed' AND details_json LIKE '%Health.Check%'"
        ).fetchone()[0]
    finally:
        conn.close()
    assert refused >= 1
