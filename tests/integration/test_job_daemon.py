"""Sealing jobs through the real daemon (issue 16, the request side): one request of
documents x marks, one approval round, one signature per seal in the documented order,
released only when every signature is recorded (R05, R06, R13, R14).

Real seald, real SoftHSM tokens for three seals (the fixtures' contract and official
seals, and a legal representative's seal made on a new token in the test), real
gRPC/mTLS, pdfsig and qpdf --check on every sealed output, signatures per seal counted
in the ledger and in pdfsig.
"""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from contract_pdf import ANCHOR, contract_pdf
from PIL import Image, ImageChops

from sealapi.v1 import common_pb2, requests_pb2
from sealclient.approval import LocalDocument, local_approval_digest
from sealclient.errors import SealClientError
from seald.domain.marks import CrossPage, Mark, PageSet
from seald.signing.job import layout_document
from seald_testing.clients import sealctl
from seald_testing.custody import wait_audit_rows
from seald_testing.daemon import SealDaemon
from seald_testing.jobs import (
    CONTRACT_MARKS,
    LEGAL,
    activate_legal_seal,
    approve_round,
    contract_file,
    job_signatures_in_ledger,
    legal_seal_edit,
    pdfsig_signatures,
    prepare_legal_token,
    submit_job,
    unlock_all,
)
from seald_testing.plugin import DaemonFactory

PB = requests_pb2
FIELDS = [f"Seal-{s}-" for s in ("contract", "official", LEGAL)]


@pytest.fixture(scope="module")
def jobs_daemon(module_daemon_factory: DaemonFactory) -> Iterator[SealDaemon]:
    fx = module_daemon_factory.fixtures()
    d = module_daemon_factory(legal_seal_edit(prepare_legal_token(fx)), fixtures=fx)
    activate_legal_seal(d)
    unlock_all(d)
    yield d


def _sealed(d: SealDaemon, request_id: str, out: Path, index: int = 0) -> Path:
    with d.client("zhang.wei") as z:
        z.download(request_id, index, out)
    return out


def _wait(d: SealDaemon, request_id: str, state: int, timeout: float = 120) -> PB.SealRequest:
    with d.client("zhang.wei") as z:
        return d.wait_state(z, request_id, state, timeout=timeout)


def _red_near(image: Image.Image, rect_px: tuple[int, int, int, int]) -> bool:
    """Seal-red ink inside ``rect_px`` (left, top, right, bottom)."""
    r, g, b = image.crop(rect_px).convert("RGB").split()
    masks = [r.point(lambda v: 255 if v > 180 else 0)]
    masks += [c.point(lambda v: 255 if v < 90 else 0) for c in (g, b)]
    red = ImageChops.multiply(ImageChops.multiply(masks[0], masks[1]), masks[2])
    return red.getbbox() is not None


def test_job_three_seal_contract_one_approval_round_three_valid_signatures(
    jobs_daemon: SealDaemon, tmp_path: Path
) -> None:
    d = jobs_daemon
    src = contract_file(tmp_path / "采购合同.pdf", pages=4)
    submitted = submit_job(d, [src], CONTRACT_MARKS)
    assert submitted.state == PB.REQUEST_STATE_PENDING
    assert [s.seal_id for s in submitted.job_seals] == ["contract", "official", LEGAL]
    assert [m.seal_id for m in submitted.marks] == ["contract", "official", LEGAL]
    approve_round(d, submitted.request_id)  # ONE round for three seals
    done = _wait(d, submitted.request_id, PB.REQUEST_STATE_SIGNED)
    assert list(done.documents[0].signed_seals) == ["contract", "official", LEGAL]

    sealed = _sealed(d, done.request_id, tmp_path / "sealed.pdf")
    fields = pdfsig_signatures(sealed)
    assert len(fields) == 3
    assert all(f.startswith(p) for f, p in zip(fields, FIELDS, strict=True)), fields
    with d.client("zhang.wei") as z:
        report = z.verify(sealed)
    assert report.all_valid and len(report.signatures) == 3
    assert [s.seal_id for s in report.signatures] == ["contract", "official", LEGAL]
    assert report.signatures[-1].covers_whole_document
    assert not any(s.covers_whole_document for s in report.signatures[:-1])
    # Exactly one signature per seal in the ledger; no intermediate left on disk.
    assert set(job_signatures_in_ledger(d, done.request_id).values()) == {1}
    assert len(job_signatures_in_ledger(d, done.request_id)) == 3
    assert not list((d.fixtures.state_dir / "documents" / done.request_id).glob("*.step*"))

    # Every mark where it was asked (R13): seal-red ink in each mark's box on its page.
    marks = [
        Mark("contract", PageSet.parse("last"), anchor_text=ANCHOR),
        Mark("official", PageSet.parse("all"), y_mm=120, cross_page=CrossPage(PageSet.parse("all"))),
        Mark(LEGAL, PageSet.parse("last"), anchor_text=ANCHOR, x_mm=35),
    ]
    layout = layout_document(src, marks, seal_sizes_mm={"contract": 40.0, "official": 42.0, LEGAL: 20.0})
    assert {dr.page_ix for dr in layout.drawings} == {0, 1, 2, 3}
    dpi = 72
    for page in range(4):
        prefix = tmp_path / f"p{page}"
        subprocess.run(
            [
                "pdftoppm",
                "-r",
                str(dpi),
                "-f",
                str(page + 1),
                "-l",
                str(page + 1),
                "-png",
                "-singlefile",
                str(sealed),
                str(prefix),
            ],
            check=True,
            timeout=60,
        )
        with Image.open(f"{prefix}.png") as image:
            for dr in (x for x in layout.drawings if x.page_ix == page):
                left, top, right, bottom = (round(v) for v in dr.rect_pt)
                assert _red_near(image, (left, top, right, bottom)), (page + 1, dr)


def test_job_any_mark_changed_after_approval_voids_the_approval(
    jobs_daemon: SealDaemon, tmp_path: Path
) -> None:
    """R06: the approval digest covers every mark; a request whose stored mark was moved
    after approval no longer matches (the approver's client computes the digest from the
    marks it is shown)."""
    d = jobs_daemon
    submitted = submit_job(d, [contract_file(tmp_path / "c.pdf")], CONTRACT_MARKS)
    with d.client("li.na") as li:
        li.approve(submitted.request_id)
    # A changed mark is another digest: the approver's local check refuses a request
    # whose marks differ from what its digest binds ...
    shown = PB.SealRequest()
    shown.CopyFrom(submitted)
    for i in range(3):
        moved = PB.SealRequest()
        moved.CopyFrom(shown)
        moved.marks[i].x_mm += 1
        local = [LocalDocument(doc.sha256, doc.size) for doc in shown.documents]
        assert local_approval_digest(moved, local) != submitted.approval_digest
        assert local_approval_digest(shown, local) == submitted.approval_digest
    # ... and the daemon refuses an approval carrying the digest of other marks.
    db = sqlite3.connect(d.fixtures.state_dir / "seald.sqlite3", timeout=10)
    try:
        (body,) = db.execute(
            "SELECT body FROM requests WHERE request_id = ?", (submitted.request_id,)
        ).fetchone()
        data = json.loads(body)
        data["marks"][2]["x_mm"] = 80.0  # someone moves the legal representative's seal
        with db:
            db.execute(
                "UPDATE requests SET body = ? WHERE request_id = ?",
                (json.dumps(data, ensure_ascii=False, sort_keys=True), submitted.request_id),
            )
    finally:
        db.close()
    with d.client("wang.fang") as wang, pytest.raises(SealClientError) as refused:
        wang.approve(submitted.request_id)
    assert refused.value.reason == "local_digest_mismatch"
    with d.client("zhang.wei") as z:
        assert z.get(submitted.request_id).state == PB.REQUEST_STATE_PENDING


def test_job_batch_manifest_gives_each_document_its_own_marks(
    jobs_daemon: SealDaemon, tmp_path: Path
) -> None:
    d = jobs_daemon
    a = contract_file(tmp_path / "a.pdf", pages=2)
    b = contract_file(tmp_path / "b.pdf", pages=3)
    per_document = [
        [common_pb2.Mark(seal_id="contract", pages="1", x_mm=100, y_mm=100)],
        [
            common_pb2.Mark(seal_id=LEGAL, pages="last", anchor_text=ANCHOR),
            common_pb2.Mark(seal_id="official", y_mm=100, cross_page=common_pb2.CrossPage(pages="all")),
        ],
    ]
    submitted = submit_job(d, [a, b], [], document_marks=per_document)
    assert [[(m.seal_id, m.pages) for m in doc.marks] for doc in submitted.documents] == [
        [("contract", "1")],
        [(LEGAL, "last"), ("official", "all")],
    ]
    assert not submitted.marks
    assert [s.seal_id for s in submitted.job_seals] == ["contract", LEGAL, "official"]
    approve_round(d, submitted.request_id)
    done = _wait(d, submitted.request_id, PB.REQUEST_STATE_SIGNED)
    assert [list(doc.signed_seals) for doc in done.documents] == [["contract"], [LEGAL, "official"]]
    fields_a = pdfsig_signatures(_sealed(d, done.request_id, tmp_path / "sa.pdf", 0))
    fields_b = pdfsig_signatures(_sealed(d, done.request_id, tmp_path / "sb.pdf", 1))
    assert [f.split("-")[1] for f in fields_a] == ["contract"]
    assert [f.rsplit("-", 1)[0].removeprefix("Seal-") for f in fields_b] == [LEGAL, "official"]


@pytest.mark.parametrize(
    ("marks", "reason", "named"),
    [
        ([common_pb2.Mark(seal_id="contract", pages="9", x_mm=100, y_mm=100)], "page_out_of_range", "mark 1"),
        (
            [common_pb2.Mark(seal_id="contract", pages="last", anchor_text="不存在的字")],
            "anchor_not_found",
            "mark 1",
        ),
        (
            [
                common_pb2.Mark(seal_id="contract", pages="last", x_mm=100, y_mm=100),
                common_pb2.Mark(seal_id="official", pages="last", x_mm=110, y_mm=105),
            ],
            "marks_overlap",
            "mark 2",
        ),
        (
            [common_pb2.Mark(seal_id="official", cross_page=common_pb2.CrossPage(pages="2"))],
            "cross_page_needs_pages",
            "mark 1",
        ),
        (
            [common_pb2.Mark(seal_id="contract", pages="1", x_mm=10 + i, y_mm=20) for i in range(17)],
            "too_many_marks",
            "17 marks",
        ),
        ([common_pb2.Mark(seal_id="contract", pages="2-2", x_mm=100, y_mm=100)], "bad_page_set", "mark 1"),
    ],
    ids=["page-missing", "anchor-not-found", "overlap", "cross-page-one-page", "too-many", "bad-pages"],
)
def test_job_bad_input_is_invalid_argument_naming_the_mark(
    jobs_daemon: SealDaemon, tmp_path: Path, marks: list[common_pb2.Mark], reason: str, named: str
) -> None:
    d = jobs_daemon
    with pytest.raises(SealClientError) as refused:
        submit_job(d, [contract_file(tmp_path / "c.pdf", pages=3)], marks)
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT, refused.value
    assert refused.value.reason == reason, refused.value
    assert named in refused.value.message, refused.value.message


def test_job_anchor_found_more_often_than_allowed_is_refused(jobs_daemon: SealDaemon, tmp_path: Path) -> None:
    src = tmp_path / "twice.pdf"
    src.write_bytes(contract_pdf(2, anchors={2: [(100.0, 200.0), (100.0, 500.0)]}))
    mark = common_pb2.Mark(seal_id="contract", pages="last", anchor_text=ANCHOR)
    with pytest.raises(SealClientError) as refused:
        submit_job(jobs_daemon, [src], [mark])
    assert (refused.value.code, refused.value.reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "anchor_ambiguous",
    )
    assert "mark 1 (seal contract)" in refused.value.message


def test_job_seal_the_requester_may_not_use_is_refused(
    module_daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    """zhang.wei requests for the official and contract seals only: a job naming a seal
    they do not hold is PERMISSION_DENIED naming it, before the upload."""
    d = module_daemon_factory(lambda c: c.set_principal("zhang.wei", seals=["contract"]))
    with pytest.raises(SealClientError) as refused:
        submit_job(d, [contract_file(tmp_path / "c.pdf")], CONTRACT_MARKS)
    assert refused.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert refused.value.reason == "not_a_requester" and "official" in refused.value.message


def test_job_single_placement_request_works_as_before(jobs_daemon: SealDaemon, tmp_path: Path) -> None:
    d = jobs_daemon
    with d.client("zhang.wei") as z:
        request = z.submit(
            [contract_file(tmp_path / "one.pdf", pages=1)],
            seal_id="contract",
            reason="r",
            category="contract",
            placement=common_pb2.Placement(page=1, x_mm=100, y_mm=100),
        )
    assert not request.job_seals and not request.marks
    approve_round(d, request.request_id)
    done = _wait(d, request.request_id, PB.REQUEST_STATE_SIGNED)
    assert len(pdfsig_signatures(_sealed(d, done.request_id, tmp_path / "one-sealed.pdf"))) == 1
    assert not done.documents[0].signed_seals


# --- resume: a token locked between the 2nd and the 3rd signature, SIGKILL at every point --


def _job_daemon(factory: DaemonFactory, env: dict[str, str] | None = None) -> SealDaemon:
    fx = factory.fixtures()
    d = factory(legal_seal_edit(prepare_legal_token(fx)), fixtures=fx, env=env or {})
    activate_legal_seal(d)
    unlock_all(d)
    return d


def _sealed_files(d: SealDaemon, request_id: str) -> list[Path]:
    return sorted((d.fixtures.state_dir / "documents" / request_id).glob("*.sealed.pdf"))


def test_job_token_locked_between_second_and_third_signature_resumes_with_exactly_three(
    daemon_factory: DaemonFactory, tmp_path: Path
) -> None:
    """The third seal's token is taken away (locked by its custodian) while the job waits
    between its 2nd and 3rd signature: nothing is released, the request waits naming the
    tokens; unlocked again, the job completes from the recorded 2nd intermediate with
    exactly three signatures, none made twice."""
    d = _job_daemon(daemon_factory, {"SEALD_TEST_PAUSE_BETWEEN_SIGNATURES": "3"})
    request = submit_job(d, [contract_file(tmp_path / "c.pdf")], CONTRACT_MARKS)
    approve_round(d, request.request_id)
    wait_audit_rows(d, "seal.job_signature", 2, timeout=120)
    with d.client("liu.yang") as custodian:
        custodian.lock(LEGAL)
    waiting = _wait(d, request.request_id, PB.REQUEST_STATE_APPROVED, timeout=60)
    assert LEGAL in waiting.state_reason, waiting.state_reason
    assert list(waiting.documents[0].signed_seals) == ["contract", "official"]
    assert not waiting.documents[0].sealed_sha256 and not _sealed_files(d, request.request_id)
    with d.client("zhang.wei") as z, pytest.raises(SealClientError) as early:
        z.download(request.request_id, 0, tmp_path / "early.pdf")
    assert early.value.reason == "not_signed"
    time.sleep(2)  # the signer does not go on without the token
    assert job_signatures_in_ledger(d, request.request_id)[(0, LEGAL)] == 0
    unlock_all(d, (LEGAL,))
    done = _wait(d, request.request_id, PB.REQUEST_STATE_SIGNED)
    assert list(done.documents[0].signed_seals) == ["contract", "official", LEGAL]
    assert len(pdfsig_signatures(_sealed(d, done.request_id, tmp_path / "s.pdf"))) == 3
    assert sorted(job_signatures_in_ledger(d, done.request_id).values()) == [1, 1, 1]


CRASH_POINTS = [
    "job.before_signature@2",
    "job.signature_written@2",
    "tx:seal.job_signature@2",
    "commit:seal.job_signature@2",
    "job.signature_recorded@3",
    "job.document_released@1",
]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_job_sigkill_at_every_new_crash_point_no_partial_release_no_seal_twice(
    daemon_factory: DaemonFactory, tmp_path: Path, point: str
) -> None:
    d = _job_daemon(daemon_factory, {"SEALD_TEST_KILL_AT": point})
    request = submit_job(d, [contract_file(tmp_path / "c.pdf", pages=3)], CONTRACT_MARKS)
    approve_round(d, request.request_id)
    assert d.proc is not None
    d.proc.wait(timeout=120)  # killed itself at the point
    assert d.proc.returncode == -9
    d.proc = None
    # Nothing released: no SIGNED state, no sealed-file download, at most what was recorded.
    recorded = job_signatures_in_ledger(d, request.request_id)
    assert all(n == 1 for n in recorded.values()), recorded
    db = sqlite3.connect(d.fixtures.state_dir / "seald.sqlite3", timeout=10)
    try:
        (state,) = db.execute(
            "SELECT state FROM requests WHERE request_id = ?", (request.request_id,)
        ).fetchone()
    finally:
        db.close()
    assert state == "signing"
    d.extra_env.pop("SEALD_TEST_KILL_AT")
    d.start()
    with d.client("zhang.wei") as z:
        again = z.get(request.request_id)
    assert again.state == PB.REQUEST_STATE_APPROVED or point.startswith("job.document_released")
    unlock_all(d)
    done = _wait(d, request.request_id, PB.REQUEST_STATE_SIGNED)
    assert list(done.documents[0].signed_seals) == ["contract", "official", LEGAL]
    fields = pdfsig_signatures(_sealed(d, done.request_id, tmp_path / "s.pdf"))
    assert len(fields) == 3, fields  # every seal once in the PDF
    assert sorted(job_signatures_in_ledger(d, done.request_id).values()) == [1, 1, 1]
    assert not list((d.fixtures.state_dir / "documents" / done.request_id).glob("*.step*"))


def test_job_sealctl_marks_and_job_file_and_approve_shows_every_mark(
    jobs_daemon: SealDaemon, tmp_path: Path
) -> None:
    """Issue 16 item 6: `sealctl submit --mark ...` and `--job FILE` make the same job;
    `sealctl approve` shows every mark before it signs the approval."""
    d = jobs_daemon
    src = contract_file(tmp_path / "合同.pdf", pages=3)
    options = [
        "--mark", f"seal=contract pages=last anchor={ANCHOR}",
        "--mark", "seal=official cross=all y=120",
        "--mark", f"seal={LEGAL} pages=last anchor={ANCHOR} x=35",
    ]  # fmt: skip
    submit = ["--json", "submit", str(src), "--reason", "合同", "--category", "contract"]
    by_options = sealctl(d, "zhang.wei", *submit, *options)
    assert by_options.returncode == 0, by_options.stderr
    job = tmp_path / "job.toml"
    job.write_text(
        f'[[marks]]\nseal = "contract"\npages = "last"\nanchor_text = "{ANCHOR}"\n\n'
        '[[marks]]\nseal = "official"\ncross_page = "all"\ny_mm = 120\n\n'
        f'[[marks]]\nseal = "{LEGAL}"\npages = "last"\nanchor_text = "{ANCHOR}"\nx_mm = 35\n',
        encoding="utf-8",
    )
    by_file = sealctl(d, "zhang.wei", *submit, "--job", str(job))
    assert by_file.returncode == 0, by_file.stderr
    a, b = json.loads(by_options.stdout), json.loads(by_file.stdout)
    assert a["marks"] == b["marks"] and len(a["marks"]) == 3
    assert [s["seal_id"] for s in a["job_seals"]] == ["contract", "official", LEGAL]

    approved = sealctl(d, "li.na", "approve", a["request_id"])
    assert approved.returncode == 0, approved.stderr
    shown = approved.stdout
    assert shown.index("approving every mark") < shown.index("approved after local check")
    expected = ["Mark 1", "Mark 2", "Mark 3", "cross-page seal (骑缝章) over pages all", ANCHOR]
    for line in [*expected, "contract → official → legal_rep"]:
        assert line in shown, shown

    bad = sealctl(d, "zhang.wei", *submit[1:], "--mark", "seal=contract pages=2-2 x=1 y=1")
    assert bad.returncode == 6 and "--mark 1" in bad.stderr and "bad_page_set" in bad.stderr, bad.stderr


def test_job_preview_shows_every_mark_on_every_page_it_touches(
    jobs_daemon: SealDaemon, tmp_path: Path
) -> None:
    """PreviewRequest of a job (issue 16 item 3, wired here): every page a mark touches,
    each mark drawn with its own seal where sealing will put it."""
    d = jobs_daemon
    src = contract_file(tmp_path / "c.pdf", pages=3)
    request = submit_job(d, [src], CONTRACT_MARKS)
    with d.client("li.na") as li:
        pages = li.preview(request.request_id, dpi=72)
    assert [p.page for p in pages] == [1, 2, 3]
    marks = [
        Mark("contract", PageSet.parse("last"), anchor_text=ANCHOR),
        Mark("official", PageSet.parse("all"), y_mm=120, cross_page=CrossPage(PageSet.parse("all"))),
        Mark(LEGAL, PageSet.parse("last"), anchor_text=ANCHOR, x_mm=35),
    ]
    layout = layout_document(src, marks, seal_sizes_mm={"contract": 40.0, "official": 42.0, LEGAL: 20.0})
    for page in pages:
        with Image.open(io.BytesIO(page.png)) as image:
            drawn = [x for x in layout.drawings if x.page_ix == page.page - 1]
            assert drawn
            for dr in drawn:
                left, top, right, bottom = (round(v) for v in dr.rect_pt)
                assert _red_near(image, (left, top, right, bottom)), (page.page, dr)
    assert {x.seal_id for x in layout.drawings if x.page_ix == 2} == {"contract", "official", LEGAL}


def test_job_changed_intermediate_is_never_signed_over(daemon_factory: DaemonFactory, tmp_path: Path) -> None:
    """An intruder swaps the recorded intermediate between two signatures: the next seal
    does not sign over it; the job fails, nothing is released, no intermediate is left."""
    d = _job_daemon(daemon_factory, {"SEALD_TEST_PAUSE_BETWEEN_SIGNATURES": "4"})
    request = submit_job(d, [contract_file(tmp_path / "c.pdf")], CONTRACT_MARKS)
    approve_round(d, request.request_id)
    wait_audit_rows(d, "seal.job_signature", 1, timeout=120)
    folder = d.fixtures.state_dir / "documents" / request.request_id
    (step1,) = folder.glob("0000.step1-contract.pdf")
    step1.write_bytes(contract_pdf(4))  # another document in its place
    failed = _wait(d, request.request_id, PB.REQUEST_STATE_FAILED, timeout=60)
    assert "intermediate after seal contract is missing or changed" in failed.state_reason
    assert job_signatures_in_ledger(d, request.request_id) == {(0, "contract"): 1}
    assert not list(folder.glob("*.sealed.pdf")) and not list(folder.glob("*.step*"))
