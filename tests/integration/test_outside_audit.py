"""Defects an outside audit found, proved over one real seald (issue 14).

Each test submits its own request on one daemon shared by the module:
- R10: QueryAuditRecords returns every field a record's hash covers; a client recomputes
  the whole chain from the RPC's answers alone (item 3).
- R06: a withdrawn approval does not come back by replaying its signed statement (item 1).
- Retries with one client_request_key are not a disk fault (item 9).
- R10: previews are uses of the seal's appearance and are in the ledger (item 17).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from threading import Barrier

import grpc
import pytest
from fixture_layout import SealFixtures, relocate_fixtures
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sealapi.v1 import audit_pb2, audit_pb2_grpc, common_pb2, requests_pb2, requests_pb2_grpc
from sealclient.approval import ApprovalSigner, LocalDocument, build_approval
from sealclient.errors import SealClientError
from seald.domain.audit import GENESIS_HASH, AuditEvent, format_time, record_hash
from seald_testing.daemon import SealDaemon, make_pdf, unlock_first_use

PLACEMENT = common_pb2.Placement(page=1, x_mm=100, y_mm=100)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, seal_fixtures: SealFixtures) -> Iterator[SealDaemon]:
    d = SealDaemon(relocate_fixtures(seal_fixtures.root, tmp_path_factory.mktemp("audit14") / "fixtures"))
    d.start()
    yield d
    if d.proc is not None:
        d.stop()


def _submit(d: SealDaemon, tmp_path: Path, name: str = "doc.pdf", pages: int = 1) -> requests_pb2.SealRequest:
    pdf = make_pdf(tmp_path / name, pages=pages)
    with d.client("zhang.wei") as z:
        return z.submit(
            [pdf], seal_id="contract", reason="外部审计", category="contract", placement=PLACEMENT
        )


def _audit_records(d: SealDaemon, **query: object) -> list[audit_pb2.AuditRecord]:
    who = d.fixtures.principals["zhao.min"]
    creds = grpc.ssl_channel_credentials(
        d.fixtures.tls_ca.read_bytes(), who.key.read_bytes(), who.cert.read_bytes()
    )
    with grpc.secure_channel(d.target, creds) as ch:
        stub = audit_pb2_grpc.AuditServiceStub(ch)
        return list(stub.QueryAuditRecords(audit_pb2.QueryAuditRecordsRequest(**query), timeout=30))  # type: ignore[arg-type]


def test_r10_audit_chain_recomputed_from_query_answers_alone(daemon: SealDaemon, tmp_path: Path) -> None:
    request = _submit(daemon, tmp_path)
    with daemon.client("li.na") as li:
        li.approve(request.request_id)
    records = _audit_records(daemon)
    assert len(records) >= 3 and records[0].sequence == 1
    previous = GENESIS_HASH
    for r in records:
        # Nothing but the RPC's fields, through the pure canonical encoder.
        assert r.HasField("time") and r.time.seconds > 0, f"record {r.sequence} has no time"
        when = r.time.ToDatetime(tzinfo=UTC)
        event = AuditEvent(
            event=r.event,
            principal=r.principal,
            role=r.role,
            seal_id=r.seal_id,
            request_id=r.request_id,
            document_name=r.document_name,
            document_sha256=r.document_sha256,
            reason=r.reason,
            outcome=r.outcome,
            details=json.loads(r.details_json),
        )
        assert r.previous_hash == previous, f"record {r.sequence} does not link to the one before"
        assert record_hash(r.sequence, format_time(when), r.host, event, previous) == r.record_hash, (
            f"record {r.sequence}: the hash cannot be recomputed from what the API returned"
        )
        previous = r.record_hash
    # The time is the real one (R10: when the seal was used), not the epoch.
    mine = [r for r in records if r.request_id == request.request_id]
    assert {r.event for r in mine} >= {"request.submitted", "request.approved"}
    assert all(r.time.ToDatetime().year >= 2025 for r in mine)


def test_retries_with_one_client_request_key_are_not_a_disk_fault(daemon: SealDaemon, tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "retry.pdf")
    key = "retry-" + tmp_path.name
    with daemon.client("liu.yang") as custodian:
        unlock_first_use(custodian, daemon.fixtures, "official")
    start = Barrier(8)

    def submit(_: int) -> str:
        with daemon.client("zhang.wei") as z:
            start.wait(timeout=30)
            return z.submit(
                [pdf],
                seal_id="contract",
                reason="重试",
                category="contract",
                placement=PLACEMENT,
                client_request_key=key,
            ).request_id

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(submit, range(8)))
    assert len(set(ids)) == 1, f"8 retries with one key made {len(set(ids))} requests: {ids}"

    # Nothing closed: the audit trail is writable, health SERVING, a token can still sign.
    who = daemon.fixtures.principals["zhang.wei"]
    creds = grpc.ssl_channel_credentials(
        daemon.fixtures.tls_ca.read_bytes(), who.key.read_bytes(), who.cert.read_bytes()
    )
    with grpc.secure_channel(daemon.target, creds) as ch:
        health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    with daemon.client("liu.yang") as custodian:
        (official,) = custodian.token_status("official").tokens
    assert official.ready, official.not_ready_reason
    assert "audit_unavailable" not in daemon.log() and "audit trail cannot be written" not in daemon.log()

    # The same key with another document is refused, naming the key and the request.
    other = make_pdf(tmp_path / "other.pdf", pages=2)
    with daemon.client("zhang.wei") as z, pytest.raises(SealClientError) as reused:
        z.submit(
            [other],
            seal_id="contract",
            reason="重试",
            category="contract",
            placement=PLACEMENT,
            client_request_key=key,
        )
    assert reused.value.code is grpc.StatusCode.ALREADY_EXISTS
    assert reused.value.reason == "client_request_key_reused"
    assert key in reused.value.message and ids[0] in reused.value.message
    # And a plain retry still answers with the one request.
    with daemon.client("zhang.wei") as z:
        again = z.submit(
            [pdf],
            seal_id="contract",
            reason="重试",
            category="contract",
            placement=PLACEMENT,
            client_request_key=key,
        )
    assert again.request_id == ids[0]


def _stub(d: SealDaemon, name: str) -> requests_pb2_grpc.SealRequestServiceStub:
    who = d.fixtures.principals[name]
    creds = grpc.ssl_channel_credentials(
        d.fixtures.tls_ca.read_bytes(), who.key.read_bytes(), who.cert.read_bytes()
    )
    return requests_pb2_grpc.SealRequestServiceStub(grpc.secure_channel(d.target, creds))


def _statement(
    d: SealDaemon, name: str, request: requests_pb2.SealRequest, now: datetime | None = None
) -> requests_pb2.ApproveRequestRequest:
    who = d.fixtures.principals[name]
    local = [LocalDocument(doc.sha256, doc.size) for doc in request.documents]
    signer = ApprovalSigner(who.key.read_bytes(), who.cert.read_bytes())
    return build_approval(request, local, signer=signer, now=now)


def _refusal(call: object) -> tuple[grpc.StatusCode, str]:
    assert callable(call)
    with pytest.raises(grpc.RpcError) as refused:
        call()
    reason = dict(refused.value.trailing_metadata() or ()).get("seal-error-reason", "")  # type: ignore[attr-defined]
    return refused.value.code(), str(reason)  # type: ignore[attr-defined]


@pytest.mark.clock  # statement dates around now, against the daemon's clock
def test_r06_withdrawn_approval_does_not_come_back_by_replay(daemon: SealDaemon, tmp_path: Path) -> None:
    request = _submit(daemon, tmp_path)
    rid = request.request_id
    li, wang = _stub(daemon, "li.na"), _stub(daemon, "wang.fang")
    # Statements are dated in whole seconds by the approver's clock: each one here gets its
    # own second (within the daemon's 10-minute skew), so no two are byte-identical.
    now = datetime.now(UTC)
    first = _statement(daemon, "li.na", request, now=now - timedelta(seconds=120))
    assert len(li.ApproveRequest(first, timeout=30).approvals) == 1
    li.WithdrawApproval(requests_pb2.WithdrawApprovalRequest(request_id=rid), timeout=30)

    # The very statement she signed before withdrawing: refused, by its hash.
    assert _refusal(lambda: li.ApproveRequest(first, timeout=30)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "statement_replayed",
    )
    # A statement dated before the withdrawal that was never sent: refused too.
    older = _statement(daemon, "li.na", request, now=now - timedelta(seconds=90))
    assert _refusal(lambda: li.ApproveRequest(older, timeout=30)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "statement_predates_withdrawal",
    )
    # wang.fang's approval does not make the replayed one count either.
    assert len(wang.ApproveRequest(_statement(daemon, "wang.fang", request), timeout=30).approvals) == 1
    assert _refusal(lambda: li.ApproveRequest(first, timeout=30))[1] == "statement_replayed"
    with daemon.client("zhang.wei") as z:
        assert z.get(rid).state == requests_pb2.REQUEST_STATE_PENDING

    # A statement used on one request counts nowhere else, ever (here: a second request).
    other = _submit(daemon, tmp_path, "other.pdf")
    assert _refusal(lambda: wang.ApproveRequest(_statement(daemon, "wang.fang", request), timeout=30))[1] in {
        "already_approved",
        "statement_replayed",
    }
    # A new statement, signed after the withdrawal, is accepted and completes the quorum.
    fresh = _statement(daemon, "li.na", request, now=datetime.now(UTC) + timedelta(seconds=2))
    again = li.ApproveRequest(fresh, timeout=30)
    assert again.state == requests_pb2.REQUEST_STATE_APPROVED
    assert {a.approver for a in again.approvals} == {"li.na", "wang.fang"}
    assert other.request_id != rid


def test_r10_previews_are_recorded_in_the_ledger(daemon: SealDaemon, tmp_path: Path) -> None:
    request = _submit(daemon, tmp_path, "previewed.pdf")
    with daemon.client("li.na") as li:
        assert li.preview(request.request_id, 0, 50)
    with daemon.client("zhao.min") as auditor:
        assert auditor.preview(request.request_id, 0, 50)
    with daemon.client("liu.yang") as custodian, pytest.raises(SealClientError):
        custodian.preview(request.request_id)  # refused: not a use, not a preview record
    records = _audit_records(daemon, request_id=request.request_id, event="request.previewed")
    seen = [(r.principal, r.role, r.document_sha256, r.seal_id) for r in records]
    sha = request.documents[0].sha256
    assert seen == [("li.na", "approver", sha, "contract"), ("zhao.min", "auditor", sha, "contract")]
    assert all(json.loads(r.details_json)["dpi"] == 50 for r in records)


@pytest.mark.parametrize(
    ("placement", "reason", "field"),
    [
        (common_pb2.Placement(page=3, x_mm=100, y_mm=100), "page_out_of_range", "placement.page"),
        (
            common_pb2.Placement(page=0, x_mm=0, y_mm=0, anchor_text="（此处盖章）"),
            "anchor_not_found",
            "placement.anchor_text",
        ),
        (common_pb2.Placement(y_mm=120, cross_page=True), "cross_page_needs_pages", "placement.cross_page"),
    ],
    ids=["page", "anchor", "cross_page"],
)
def test_r13_placement_that_cannot_be_sealed_is_refused_at_submit(
    daemon: SealDaemon, tmp_path: Path, placement: common_pb2.Placement, reason: str, field: str
) -> None:
    pdf = make_pdf(tmp_path / "two.pdf", pages=1)
    before = set((daemon.fixtures.state_dir / "documents").iterdir())
    with daemon.client("zhang.wei") as z:
        mine = {r.request_id for r in z.list()}
        with pytest.raises(SealClientError) as refused:
            z.submit([pdf], seal_id="contract", reason="页码", category="contract", placement=placement)
        assert refused.value.code is grpc.StatusCode.INVALID_ARGUMENT
        assert refused.value.reason == reason
        assert field in refused.value.message and "two.pdf" in refused.value.message
        # Nothing stored: no request, no documents left behind.
        assert {r.request_id for r in z.list()} == mine
    assert set((daemon.fixtures.state_dir / "documents").iterdir()) == before
