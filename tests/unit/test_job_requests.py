"""Issue 16, the request side of sealing jobs, pure: submit_job, the job policy (every
seal's own policy met by one set of approvals), record_step (each seal once, in order),
the signed statement and the client's digest covering a job's marks, and job files."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sealapi.v1 import common_pb2, requests_pb2
from sealclient.approval import LocalDocument, approval_statement, local_approval_digest
from sealclient.errors import LocalInputError
from sealclient.job_file import load_job, manifest_marks, parse_mark_option
from seald.api.convert import request_to_pb
from seald.domain import lifecycle
from seald.domain.approval_statement import parse_statement
from seald.domain.errors import InvalidInput, PermissionDenied, PreconditionFailed
from seald.domain.marks import CrossPage, Mark, PageSet, PageSetKind
from seald.domain.model import (
    Document,
    Placement,
    Principal,
    RequestState,
    Role,
    Seal,
    SealRequest,
    SealType,
)
from seald.domain.policy import JobPolicy, build_policy
from seald.store import requests as table

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SHA = "ab" * 32
SEALS = {
    "contract": Seal(
        "contract",
        SealType.CONTRACT,
        "华夏",
        "合同专用章",
        frozenset({"contract"}),
        2,
        40.0,
        certificate_sha256="c1" * 32,
    ),
    "legal": Seal(
        "legal",
        SealType.LEGAL_REPRESENTATIVE,
        "华夏",
        "法人章",
        frozenset({"contract"}),
        2,
        20.0,
        certificate_sha256="c2" * 32,
    ),
    "official": Seal(
        "official",
        SealType.OFFICIAL,
        "华夏",
        "公章",
        frozenset({"general"}),
        2,
        42.0,
        certificate_sha256="c3" * 32,
    ),
}
REQUESTER = Principal(
    "zhang", "张", frozenset({Role.REQUESTER}), frozenset({"contract", "legal", "official"})
)
CONTRACT_ANCHOR = Mark("contract", PageSet.parse("last"), anchor_text="（盖章）")
RIDING = Mark("contract", PageSet(PageSetKind.ALL), cross_page=CrossPage(PageSet(PageSetKind.ALL)))
LEGAL = Mark("legal", PageSet.parse("last"), x_mm=40, anchor_text="（盖章）", size_mm=20)
MARKS = (CONTRACT_ANCHOR, RIDING, LEGAL)


def _submit(
    marks: tuple[Mark, ...] = MARKS,
    *,
    requester: Principal = REQUESTER,
    docs: tuple[Document, ...] | None = None,
    max_marks: int = 16,
) -> SealRequest:
    return lifecycle.submit_job(
        request_id="r1",
        requester=requester,
        seals=SEALS,
        reason="采购合同",
        category="contract",
        marks=marks,
        documents=docs or (Document(0, "合同.pdf", 100, SHA),),
        now=NOW,
        ttl=timedelta(hours=72),
        host="seal-host",
        max_marks=max_marks,
    )


def test_job_submit_orders_seals_by_first_mark_and_binds_every_mark() -> None:
    request = _submit()
    assert request.is_job and request.seal_ids == ("contract", "legal")
    assert request.seal_id == "contract"
    assert [s.certificate_sha256 for s in request.job_seals] == ["c1" * 32, "c2" * 32]
    # Any change of any mark is another digest (approvals of the old one are void, R06).
    for i in range(len(MARKS)):
        moved = list(MARKS)
        moved[i] = Mark(**{**MARKS[i].__dict__, "x_mm": MARKS[i].x_mm + 0.01})
        assert _submit(tuple(moved)).approval_digest != request.approval_digest
    assert _submit(MARKS).approval_digest == request.approval_digest


def test_job_a_seal_the_requester_may_not_use_is_refused_naming_it() -> None:
    only_contract = Principal("zhang", "张", frozenset({Role.REQUESTER}), frozenset({"contract"}))
    with pytest.raises(PermissionDenied) as refused:
        _submit(requester=only_contract)
    assert refused.value.reason == "not_a_requester" and "seal legal" in str(refused.value)


def test_job_seal_out_of_scope_and_bad_marks_are_refused_naming_the_mark() -> None:
    with pytest.raises(PermissionDenied) as scope:
        _submit((Mark("official", PageSet.parse("1"), x_mm=100, y_mm=100),))
    assert scope.value.reason == "category_out_of_scope"
    with pytest.raises(InvalidInput) as size:
        _submit((CONTRACT_ANCHOR, Mark("legal", PageSet.parse("1"), x_mm=1, y_mm=1, size_mm=300)))
    assert size.value.reason == "bad_placement" and "mark 2 (seal legal)" in str(size.value)
    with pytest.raises(InvalidInput) as many:
        _submit(MARKS, max_marks=2)
    assert many.value.reason == "too_many_marks"
    with pytest.raises(InvalidInput) as one_page:
        _submit((Mark("contract", PageSet(PageSetKind.ALL), cross_page=CrossPage(PageSet.parse("3"))),))
    assert one_page.value.reason == "cross_page_needs_pages"


def test_job_manifest_document_marks_are_in_the_digest() -> None:
    docs = (
        Document(0, "a.pdf", 10, SHA, marks=(CONTRACT_ANCHOR,)),
        Document(1, "b.pdf", 10, SHA, marks=(LEGAL, RIDING)),
    )
    request = lifecycle.submit_job(
        request_id="r1",
        requester=REQUESTER,
        seals=SEALS,
        reason="r",
        category="contract",
        marks=(),
        documents=docs,
        now=NOW,
        ttl=timedelta(hours=1),
        host="h",
    )
    assert request.seal_ids == ("contract", "legal")
    assert request.marks_of(request.documents[1]) == (LEGAL, RIDING)
    other = (docs[0], Document(1, "b.pdf", 10, SHA, marks=(LEGAL,)))
    changed = lifecycle.submit_job(
        request_id="r1",
        requester=REQUESTER,
        seals=SEALS,
        reason="r",
        category="contract",
        marks=(),
        documents=other,
        now=NOW,
        ttl=timedelta(hours=1),
        host="h",
    )
    assert changed.approval_digest != request.approval_digest


def _principal(name: str, seals: set[str], groups: set[str]) -> Principal:
    return Principal(name, name, frozenset({Role.APPROVER}), frozenset(seals), frozenset(groups))


def _job_policy(principals: list[Principal]) -> JobPolicy:
    return JobPolicy(
        tuple(
            (
                seal_id,
                build_policy(
                    seal_id=seal_id,
                    seal_type=SEALS[seal_id].seal_type,
                    required_approvals=2,
                    approver_groups=(),
                    one_from_each_group=False,
                    principals=principals,
                    now=NOW,
                ),
            )
            for seal_id in ("contract", "legal")
        )
    )


def _approve(request: SealRequest, who: Principal, policy: JobPolicy) -> SealRequest:
    return lifecycle.approve(
        request,
        approver=who,
        document_sha256=[SHA],
        approval_digest=request.approval_digest,
        policy=policy,
        now=NOW,
    )


def test_job_every_seals_policy_must_be_met_by_its_own_approvers() -> None:
    # contract: general managers; legal representative seal: department managers.
    gm1 = _principal("gm1", {"contract"}, {"general_manager"})
    gm2 = _principal("gm2", {"contract"}, {"general_manager"})
    both = _principal("both", {"contract", "legal"}, {"general_manager", "department_manager"})
    dm = _principal("dm", {"legal"}, {"department_manager"})
    policy = _job_policy([gm1, gm2, both, dm])
    request = _submit()
    request = _approve(_approve(request, gm1, policy), gm2, policy)
    # The contract seal's policy is met; the legal seal's is not: still pending.
    assert request.state is RequestState.PENDING
    assert any(m.startswith("seal legal:") for m in policy.unmet("zhang", request.approvals))
    assert not any(m.startswith("seal contract:") for m in policy.unmet("zhang", request.approvals))
    request = _approve(request, both, policy)  # counts for legal (both policies list them)
    assert request.state is RequestState.PENDING  # legal needs a second department manager
    request = _approve(request, dm, policy)
    assert request.state is RequestState.APPROVED
    assert "contract, legal" in request.state_reason


def test_job_an_approver_counts_only_for_seals_whose_policy_lists_them() -> None:
    gm1 = _principal("gm1", {"contract", "legal"}, {"general_manager"})
    gm2 = _principal("gm2", {"contract", "legal"}, {"general_manager"})
    policy = _job_policy([gm1, gm2])
    request = _approve(_approve(_submit(), gm1, policy), gm2, policy)
    # Approvers of the legal seal by role, but not in its approval path (department
    # managers): they do not count for it, so the job stays pending.
    assert request.state is RequestState.PENDING
    outsider = _principal("x", {"official"}, {"general_manager"})
    with pytest.raises(PermissionDenied):
        _approve(request, outsider, policy)


def _signing(request: SealRequest) -> SealRequest:
    return replace(request, state=RequestState.SIGNING)


def test_job_record_step_takes_each_seal_once_in_order() -> None:
    request = _signing(_submit())
    with pytest.raises(PreconditionFailed) as wrong:
        lifecycle.record_step(request, index=0, seal_id="legal", sha256=SHA, size=1, now=NOW)
    assert wrong.value.reason == "job_step_out_of_order"
    request = lifecycle.record_step(request, index=0, seal_id="contract", sha256=SHA, size=1, now=NOW)
    assert lifecycle.next_job_seal(request, request.documents[0]) == "legal"
    with pytest.raises(PreconditionFailed) as twice:
        lifecycle.record_step(request, index=0, seal_id="contract", sha256=SHA, size=1, now=NOW)
    assert twice.value.reason == "job_step_out_of_order"
    request = lifecycle.record_step(request, index=0, seal_id="legal", sha256=SHA, size=1, now=NOW)
    assert lifecycle.next_job_seal(request, request.documents[0]) is None
    with pytest.raises(PreconditionFailed):
        lifecycle.record_step(request, index=0, seal_id="legal", sha256=SHA, size=1, now=NOW)
    assert "2 of 2 signatures" in request.state_reason


def test_job_begin_signing_refuses_a_changed_seal_certificate_or_impression() -> None:
    request = replace(_submit(), state=RequestState.APPROVED, approvals=())
    policy = JobPolicy(
        (
            (
                "contract",
                build_policy(
                    seal_id="contract",
                    seal_type=SealType.CONTRACT,
                    required_approvals=2,
                    approver_groups=(),
                    one_from_each_group=False,
                    principals=[],
                    now=NOW,
                ),
            ),
        )
    )
    changed = {**SEALS, "legal": replace(SEALS["legal"], impression_sha256="ee" * 32)}
    with pytest.raises(PreconditionFailed) as refused:
        lifecycle.begin_signing(request, seal=SEALS["contract"], policy=policy, now=NOW, job_seals=changed)
    assert refused.value.reason == "seal_certificate_changed" and "legal" in str(refused.value)


def _pb(request: SealRequest) -> requests_pb2.SealRequest:
    return request_to_pb(request)


def test_job_client_digest_and_signed_statement_cover_the_marks() -> None:
    request = _submit()
    pb = _pb(request)
    local = [LocalDocument(SHA, 100)]
    assert local_approval_digest(pb, local) == request.approval_digest
    statement = approval_statement(
        pb, local, digest=request.approval_digest, comment="", signer_certificate_sha256="00" * 32, now=NOW
    )
    parsed = parse_statement(statement.canonical_bytes())
    assert parsed.recomputed_digest() == request.approval_digest
    assert parsed.marks == MARKS
    # A server that shows one mark elsewhere than it approves is caught by the client.
    pb.marks[2].x_mm += 5
    assert local_approval_digest(pb, local) != request.approval_digest


def test_job_mark_options_parse_and_refuse_with_the_mark_named() -> None:
    mark = parse_mark_option("seal=contract pages=last anchor=（盖章）", position=1)
    assert (mark.seal_id, mark.pages, mark.anchor_text) == ("contract", "last", "（盖章）")
    riding = parse_mark_option("seal=contract cross=all group=4", position=2)
    assert riding.HasField("cross_page") and riding.cross_page.group_size == 4
    placed = parse_mark_option("seal=legal pages=2-3 x=150 y=230.5 size=20", position=3)
    assert (placed.pages, placed.x_mm, placed.y_mm, placed.size_mm) == ("2-3", 150, 230.5, 20)
    for bad, words in [
        ("pages=1 x=1 y=1", "name its seal"),
        ("seal=a pages=1", "x and y"),
        ("seal=a pages=2-2 x=1 y=1", "range"),
        ("seal=a colour=red", "colour=red"),
        ("seal=a cross=all anchor=x", "cross-page"),
    ]:
        with pytest.raises(LocalInputError) as refused:
            parse_mark_option(bad, position=4)
        assert "--mark 4" in refused.value.message and words in refused.value.message, refused.value.message


def test_job_file_toml_and_json_give_the_same_marks(tmp_path: Path) -> None:
    toml = tmp_path / "job.toml"
    toml.write_text(
        '[[marks]]\nseal = "contract"\npages = "last"\nanchor_text = "（盖章）"\n\n'
        '[[marks]]\nseal = "contract"\ncross_page = "all"\n\n'
        '[[documents]]\nfile = "b.pdf"\n'
        '[[documents.marks]]\nseal = "legal"\npages = 1\nx_mm = 100\ny_mm = 200\n',
        encoding="utf-8",
    )
    as_json = tmp_path / "job.json"
    as_json.write_text(
        json.dumps(
            {
                "marks": [
                    {"seal": "contract", "pages": "last", "anchor_text": "（盖章）"},
                    {"seal": "contract", "cross_page": "all"},
                ],
                "documents": [
                    {"file": "b.pdf", "marks": [{"seal": "legal", "pages": "1", "x_mm": 100, "y_mm": 200}]}
                ],
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    a, b = load_job(toml), load_job(as_json)
    assert a == b
    files, marks, per_doc = manifest_marks(a, [tmp_path / "a.pdf"])
    assert files == [tmp_path / "a.pdf", tmp_path / "b.pdf"]
    assert marks == [] and [len(m) for m in per_doc] == [2, 1]
    assert per_doc[1][0].seal_id == "legal"
    bad = tmp_path / "bad.toml"
    bad.write_text('[[marks]]\nseal = "contract"\npage = "1"\n', encoding="utf-8")
    with pytest.raises(LocalInputError) as refused:
        load_job(bad)
    assert "bad.toml mark 1" in refused.value.message and "'page'" in refused.value.message


def test_job_single_placement_digest_is_unchanged() -> None:
    """A request without marks keeps today's digest (no marks/seals keys)."""
    placement = Placement(1, 150, 230, 40)
    docs = (Document(0, "a.pdf", 1, SHA),)
    plain = lifecycle.submit(
        request_id="r",
        requester=REQUESTER,
        seal=SEALS["contract"],
        reason="r",
        category="contract",
        placement=placement,
        documents=docs,
        now=NOW,
        ttl=timedelta(hours=1),
        host="h",
    )
    assert plain.approval_digest == lifecycle.compute_approval_digest(
        request_id="r",
        seal_id="contract",
        seal_certificate_sha256="c1" * 32,
        requester="zhang",
        reason="r",
        category="contract",
        placement=placement,
        documents=docs,
    )
    assert not plain.is_job and plain.seal_ids == ("contract",)
    assert common_pb2.Mark().seal_id == ""  # the proto stays importable beside the domain


def test_job_store_round_trip_and_every_seal_finds_its_jobs() -> None:
    """The stored job comes back equal (marks, seals, steps); a suspension or renewal of
    its SECOND seal finds it (open_request_ids), and quotas count it for every seal."""
    conn = sqlite3.connect(":memory:")
    conn.executescript(table.SCHEMA)
    docs = (Document(0, "a.pdf", 10, SHA, marks=(LEGAL, RIDING)),)
    job = replace(_submit((), docs=docs), state=RequestState.SIGNING)
    job = lifecycle.record_step(job, index=0, seal_id="legal", sha256=SHA, size=3, now=NOW)
    table.save_request(conn, replace(job, state=RequestState.APPROVED))
    back = table.get_request(conn, "r1")
    assert back == replace(job, state=RequestState.APPROVED)
    assert back.seal_ids == ("legal", "contract")  # "contract" is its SECOND seal
    assert table.open_request_ids(conn, "legal") == ["r1"]
    assert table.open_request_ids(conn, "contract") == ["r1"]
    assert table.open_request_ids(conn, "official") == []
    day = (NOW - timedelta(hours=1), NOW + timedelta(hours=1))
    assert table.count_uses(conn, "legal", *day) == 1
    assert table.count_uses(conn, "contract", *day) == 1
    assert table.count_uses(conn, "official", *day) == 0


def test_job_impression_or_certificate_change_of_any_seal_voids_and_rebinds_that_seal() -> None:
    """R02/R06: a new impression (or certificate) of the job's SECOND seal voids the job's
    approvals and binds that seal's new face, not the first seal's."""
    job = _submit()
    assert job.seal_impression_sha256 == ""  # a job's impressions are in its seals
    rebound = lifecycle.rebind_impression(job, impression_sha256="ee" * 32, now=NOW, seal_id="legal")
    assert [s.impression_sha256 for s in rebound.job_seals] == ["", "ee" * 32]
    assert rebound.approval_digest != job.approval_digest
    assert rebound.approval_digest == lifecycle.digest_of_request(rebound)
    renewed = lifecycle.rebind_certificate(job, certificate_sha256="ff" * 32, now=NOW, seal_id="legal")
    assert [s.certificate_sha256 for s in renewed.job_seals] == ["c1" * 32, "ff" * 32]
    assert renewed.seal_certificate_sha256 == "c1" * 32
    assert renewed.approval_digest not in (job.approval_digest, rebound.approval_digest)
