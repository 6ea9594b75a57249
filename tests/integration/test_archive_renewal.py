"""Archive timestamp renewal through a real seald (issue 16 item 5; SEAL-RULES R14).

certomancer's live PKI on loopback (seald_testing/ltv_pki.py) runs two TSAs under one
root: one whose certificate ends SHORT_TSA_DAYS from now, one until 2100. A B-LTA document
sealed while [trust] tsa_url names the short one is due for renewal within
``[archive] renew_within_days = 365``; one sealed with the long one is not. Then
`RenewArchives` (the RPC `sealctl archive renew` calls) over mTLS: the dry run lists and
changes nothing; the real run adds a later archive timestamp to the due document only,
with fresh revocation data, as an incremental update (the sealed revision is a byte
prefix and still verifies), records old -> new SHA-256 in the ledger, and the requester's
download (which checks the ledger's hash) gets the renewed file. Checked independently:
seald's offline verifier from the DSS, pdfsig, qpdf --check.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fixture_layout import SealFixtures
from pyhanko.pdf_utils.reader import PdfFileReader

from sealapi.v1 import common_pb2, requests_pb2
from sealclient.cli import main as sealctl_main
from sealclient.errors import SealClientError
from sealclient.evidence import load_trust, verify_package
from seald.signing.archive import archive_facts
from seald.signing.verify import verify_pdf
from seald.store.requests import request_from_json
from seald_testing.config import ConfigEdit, DaemonConfig
from seald_testing.daemon import CHANGED_PIN, SealDaemon, make_pdf, unlock_first_use
from seald_testing.ltv_pki import LivePki, install_seal_certificate, live_pki
from seald_testing.state_checks import check_state

WINDOW_DAYS = 365


@dataclass(frozen=True)
class Archive:
    fixtures: SealFixtures
    pki: LivePki
    root_file: Path


@pytest.fixture
def archive(fresh_seal_fixtures: SealFixtures, tmp_path: Path) -> Iterator[Archive]:
    seal = fresh_seal_fixtures.seals["contract"]
    with live_pki(seal.certificate.read_bytes(), tmp_path / "certomancer") as pki:
        install_seal_certificate(fresh_seal_fixtures, pki.seal_cert_der)
        root_file = tmp_path / "ltv-root.pem"
        root_file.write_bytes(pki.root_pem)
        yield Archive(fresh_seal_fixtures, pki, root_file)


def _config(setup: Archive, tsa_url: str) -> ConfigEdit:
    def edit(config: DaemonConfig) -> None:
        config.set("trust", tsa_url=tsa_url, signing_roots=[str(setup.root_file)])
        config.set_seal("contract", level="B-LTA")
        config.set("archive", renew_within_days=WINDOW_DAYS)

    return edit


def _seal(d: SealDaemon, tmp_path: Path, name: str) -> str:
    pdf = make_pdf(tmp_path / f"{name}.pdf", pages=1)
    with d.client("zhang.wei") as c:
        request = c.submit(
            [pdf],
            seal_id="contract",
            reason="长期档案",
            category="contract",
            placement=common_pb2.Placement(page=0, x_mm=150, y_mm=240, size_mm=40),
        )
    with d.client("li.na") as li, d.client("wang.fang") as wang:
        li.approve(request.request_id)
        wang.approve(request.request_id)
    with d.client("zhang.wei") as requester:
        d.wait_state(requester, request.request_id, requests_pb2.REQUEST_STATE_SIGNED, timeout=120)
    return str(request.request_id)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _revocation_objects(pdf: Path) -> int:
    dss = PdfFileReader(io.BytesIO(pdf.read_bytes())).root["/DSS"]
    return len(dss.get("/OCSPs", [])) + len(dss.get("/CRLs", []))


def _renewal_records(state_dir: Path) -> list[tuple[str, str, dict[str, object]]]:
    conn = sqlite3.connect((state_dir / "seald.sqlite3").resolve().as_uri() + "?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT event, request_id, details_json FROM audit_log WHERE event LIKE 'archive.%' "
            "ORDER BY sequence"
        ).fetchall()
    finally:
        conn.close()
    return [(str(e), str(r), json.loads(d) if d else {}) for e, r, d in rows]


@pytest.mark.clock  # the short TSA certificate ends SHORT_TSA_DAYS after the wall clock
def test_archive_renewal_adds_a_later_archive_timestamp_and_leaves_documents_not_due_alone(
    archive: Archive, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fx, pki = archive.fixtures, archive.pki
    # 1. A B-LTA document whose archive timestamp comes from the short-lived TSA.
    d = SealDaemon(fx, _config(archive, pki.short_tsa_url))
    d.start()
    try:
        with d.client("liu.yang") as custodian:
            unlock_first_use(custodian, fx, "contract")
        due_id = _seal(d, tmp_path, "due")
    finally:
        d.stop()
    # 2. The TSA is switched to the long-lived one (what an operator does when the old
    #    TSA certificate nears its end); a second document is sealed with it.
    d = SealDaemon(fx, _config(archive, pki.tsa_url))
    d.start()
    try:
        with d.client("liu.yang") as custodian:
            custodian.unlock("contract", CHANGED_PIN)
        fresh_id = _seal(d, tmp_path, "fresh")
        before = {rid: tmp_path / f"{rid}-before.pdf" for rid in (due_id, fresh_id)}
        with d.client("zhang.wei") as requester:
            for rid, out in before.items():
                requester.download(rid, 0, out)
            # A requester may not renew archives.
            with pytest.raises(SealClientError) as refused:
                list(requester.renew_archives(dry_run=True))
            assert refused.value.reason == "not_an_archive_operator"

        with d.client("zhao.min") as auditor:
            dry = {doc.request_id: doc for doc in auditor.renew_archives(dry_run=True)}
            assert (dry[due_id].status, dry[due_id].reason) == ("due", "archive_renewal_due")
            assert (dry[fresh_id].status, dry[fresh_id].reason) == ("not_due", "archive_not_due")
            assert dry[due_id].certificate_expires.ToDatetime().date() == pki.short_tsa_not_after.date()
            sealed_dir = fx.state_dir / "documents"
            # The dry run changed nothing.
            assert _sha(sealed_dir / due_id / "0000.sealed.pdf") == _sha(before[due_id])

            renewed = {doc.request_id: doc for doc in auditor.renew_archives()}
            assert renewed[due_id].status == "renewed", renewed[due_id]
            assert renewed[due_id].sha256 == _sha(before[due_id])
            assert renewed[due_id].new_sha256 not in ("", renewed[due_id].sha256)
            assert renewed[fresh_id].status == "not_due"
            assert renewed[fresh_id].new_sha256 == ""
            assert auditor.verify_audit_chain().ok

            # The renewed document is now far from due; a second run changes nothing.
            again = {doc.request_id: doc for doc in auditor.renew_archives()}
            assert again[due_id].status == "not_due"
            assert again[due_id].sha256 == renewed[due_id].new_sha256

        after = tmp_path / "due-after.pdf"
        fresh_after = tmp_path / "fresh-after.pdf"
        with d.client("zhang.wei") as requester:
            requester.download(due_id, 0, after)  # checks the ledger's (new) SHA-256
            requester.download(fresh_id, 0, fresh_after)
            package = requester.evidence(due_id)

        # sealctl prints one line per document and the summary.
        code = sealctl_main(
            [
                "--server", d.target,
                "--ca", str(fx.tls_ca),
                "--cert", str(fx.principals["zhao.min"].cert),
                "--key", str(fx.principals["zhao.min"].key),
                "archive", "renew", "--dry-run",
            ]
        )  # fmt: skip
        printed = capsys.readouterr().out
        assert code == 0, printed
        assert f"not_due      {due_id} #0 " in printed and f"not_due      {fresh_id} #0 " in printed
        assert "dry run: 2 not_due" in printed
        code = sealctl_main(
            [
                "--server", d.target,
                "--ca", str(fx.tls_ca),
                "--cert", str(fx.principals["zhao.min"].cert),
                "--key", str(fx.principals["zhao.min"].key),
                "--json", "archive", "renew", "--dry-run",
            ]
        )  # fmt: skip
        as_json = json.loads(capsys.readouterr().out)
        assert code == 0 and as_json["dry_run"] is True
        assert {doc["request_id"]: doc["status"] for doc in as_json["documents"]} == {
            due_id: "not_due",
            fresh_id: "not_due",
        }
    finally:
        d.stop()

    # The document not due was left alone.
    assert fresh_after.read_bytes() == before[fresh_id].read_bytes()
    # The renewal is an incremental update: the sealed revision is a byte prefix.
    old, new = before[due_id].read_bytes(), after.read_bytes()
    assert new.startswith(old) and len(new) > len(old)
    assert _sha(after) == renewed[due_id].new_sha256
    # Fresh revocation data went into the DSS with the new timestamp.
    assert _revocation_objects(after) > _revocation_objects(before[due_id])

    old_facts, new_facts = archive_facts(before[due_id]), archive_facts(after)
    assert old_facts.timestamp_time is not None and new_facts.timestamp_time is not None
    assert new_facts.timestamp_time > old_facts.timestamp_time
    assert old_facts.expires_at is not None and new_facts.expires_at is not None
    assert new_facts.expires_at.year == 2100 and old_facts.expires_at < new_facts.expires_at

    checks = verify_pdf(after, [pki.root_pem])
    assert [c.kind for c in checks] == ["signature", "document_timestamp", "document_timestamp"]
    assert all(c.intact and c.valid and c.trusted for c in checks), checks
    assert checks[0].changed_after == "validation data and timestamps only (long-term validation)"
    first_ts, later_ts = checks[1].timestamp_time, checks[2].timestamp_time
    assert first_ts is not None and later_ts is not None and later_ts > first_ts
    assert checks[2].field_name.startswith("ArchiveTimestamp-")
    # The original sealed revision still verifies on its own.
    assert all(c.valid and c.trusted for c in verify_pdf(before[due_id], [pki.root_pem]))

    pdfsig = subprocess.run(["pdfsig", "-nocert", str(after)], capture_output=True, text=True, check=False)
    assert pdfsig.stdout.count("Signature is Valid") == 1, pdfsig.stdout
    assert checks[2].field_name in pdfsig.stdout, pdfsig.stdout
    qpdf = subprocess.run(["qpdf", "--check", str(after)], capture_output=True, text=True, check=False)
    assert qpdf.returncode == 0, qpdf.stdout + qpdf.stderr

    # The evidence package (offline) follows seal.signed -> archive.renewed: the renewed
    # PDF and the sealed one before renewal both pass; a PDF of another request does not.
    anchors = load_trust([fx.tls_ca, archive.root_file, fx.state_dir / "audit" / "audit-cert.pem"])
    for pdf in (after, before[due_id]):
        verdict = verify_package(package, [pdf], anchors)
        assert verdict.ok, verdict.as_dict()
    assert verify_package(package, [before[fresh_id]], anchors).failed() == [
        "pdf_hash",
        "pdf_signature",
        "pdf_coverage",
    ]

    # Audited: old -> new SHA-256, timestamp time, TSA certificate end; files match the ledger.
    records = _renewal_records(fx.state_dir)
    renewals = [r for r in records if r[0] == "archive.renewed"]
    assert len(renewals) == 1 and renewals[0][1] == due_id
    details = renewals[0][2]
    assert details["old_sha256"] == _sha(before[due_id]) and details["new_sha256"] == _sha(after)
    assert str(details["tsa_certificate_expires"]).startswith("2100-")
    assert str(details["timestamp_time"]) == new_facts.timestamp_time.isoformat(timespec="seconds")
    assert [r[0] for r in records].count("archive.renewal_run") == 5  # the refused call made none
    check_state(fx.state_dir, after_restart=False)


@pytest.mark.clock
def test_archive_renewal_fails_closed_without_tsa_and_completes_after_a_kill_between_commit_and_rename(
    archive: Archive, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The TSA down: not renewed, nothing changed, audited, exit 5. SIGKILL right after
    the ledger names the renewed file, before the rename: the pending file waits beside
    the old one; the next run puts it in place (never a sealed file the ledger does not
    name once a run has looked)."""
    fx, pki = archive.fixtures, archive.pki
    d = SealDaemon(fx, _config(archive, pki.short_tsa_url))
    d.start()
    try:
        with d.client("liu.yang") as custodian:
            unlock_first_use(custodian, fx, "contract")
        request_id = _seal(d, tmp_path, "due")
    finally:
        d.stop()
    sealed = fx.state_dir / "documents" / request_id / "0000.sealed.pdf"
    pending = sealed.with_name(".0000.sealed.pdf.archive-renewal")
    old_sha = _sha(sealed)

    d = SealDaemon(fx, _config(archive, pki.tsa_url), env={"SEALD_TEST_KILL_AT": "commit:archive.renewed"})
    d.start()
    # First the TSA is down: nothing changes, the failure is audited, sealctl exits 5.
    pki.outage.add("tsa")
    auditor_id = fx.principals["zhao.min"]
    code = sealctl_main(
        [
            "--server", d.target,
            "--ca", str(fx.tls_ca),
            "--cert", str(auditor_id.cert),
            "--key", str(auditor_id.key),
            "archive", "renew",
        ]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 5, printed
    assert f"failed       {request_id} #0 " in printed and "archive_tsa_unavailable" in printed, printed
    pki.outage.clear()
    assert _sha(sealed) == old_sha and not pending.exists()
    assert _ledger_sealed_sha(fx.state_dir, request_id) == old_sha
    failures = [r for r in _renewal_records(fx.state_dir) if r[0] == "archive.renewal_failed"]
    assert len(failures) == 1 and failures[0][1] == request_id
    # Then SIGKILL right after the renewal's commit.
    with d.client("zhao.min") as auditor, pytest.raises(SealClientError):
        list(auditor.renew_archives())
    assert d.proc is not None and d.proc.wait(timeout=30) == -9
    d.proc = None
    ledger_sha = _ledger_sealed_sha(fx.state_dir, request_id)
    assert ledger_sha != old_sha and _sha(sealed) == old_sha and _sha(pending) == ledger_sha

    d = SealDaemon(fx, _config(archive, pki.tsa_url))
    d.start()
    try:
        with d.client("zhao.min") as auditor:
            (outcome,) = auditor.renew_archives()
        with d.client("zhang.wei") as requester:
            requester.download(request_id, 0, tmp_path / "renewed.pdf")
    finally:
        d.stop()
    assert (outcome.status, outcome.sha256) == ("not_due", ledger_sha)  # the renewed file
    assert not pending.exists() and _sha(sealed) == ledger_sha
    checks = verify_pdf(tmp_path / "renewed.pdf", [pki.root_pem])
    assert [c.kind for c in checks] == ["signature", "document_timestamp", "document_timestamp"]
    assert all(c.valid and c.trusted for c in checks)
    check_state(fx.state_dir, after_restart=True)


def _ledger_sealed_sha(state_dir: Path, request_id: str) -> str:
    conn = sqlite3.connect((state_dir / "seald.sqlite3").resolve().as_uri() + "?mode=ro", uri=True)
    try:
        (body,) = conn.execute("SELECT body FROM requests WHERE request_id = ?", (request_id,)).fetchone()
    finally:
        conn.close()
    return str(request_from_json(body).documents[0].sealed_sha256)
