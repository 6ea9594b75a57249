"""Audit over the real daemon (R10-R12): sealctl audit verify/checkpoint/report/backup,
seald --backup/--restore, and a log canary (no PIN, key or document content in any line).
"""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from fixture_layout import SealFixtures
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter

from sealapi.v1 import common_pb2, requests_pb2
from sealclient.errors import SealClientError
from seald.signing.verify import verify_pdf
from seald_testing.daemon import SealDaemon, user_pin
from seald_testing.plugin import DaemonFactory

PLACEMENT = common_pb2.Placement(page=0, x_mm=150, y_mm=240)
DOCUMENT_CANARY = "CANARY-DOC-5b1e0c9a77"
CHANGED_PIN = "20261129"


def canary_pdf(path: Path) -> Path:
    """A valid A4 PDF whose page text is a canary string (document content)."""
    writer = PdfFileWriter(stream_xrefs=False)
    helv = writer.add_object(
        generic.DictionaryObject(
            {
                generic.pdf_name("/Type"): generic.pdf_name("/Font"),
                generic.pdf_name("/Subtype"): generic.pdf_name("/Type1"),
                generic.pdf_name("/BaseFont"): generic.pdf_name("/Helvetica"),
            }
        )
    )
    content = b"BT /Helv 14 Tf 72 760 Td (%s) Tj ET\n" % DOCUMENT_CANARY.encode()
    page = PageObject(
        contents=writer.add_object(generic.StreamObject(stream_data=content)),
        media_box=generic.ArrayObject(map(generic.FloatObject, (0, 0, 595.28, 841.89))),
        resources=generic.DictionaryObject(
            {generic.pdf_name("/Font"): generic.DictionaryObject({generic.pdf_name("/Helv"): helv})}
        ),
    )
    writer.insert_page(page)
    out = io.BytesIO()
    writer.write(out)
    path.write_bytes(out.getvalue())
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True).stdout
    assert DOCUMENT_CANARY in text
    return path


def sign_one(d: SealDaemon, tmp_path: Path) -> tuple[str, str]:
    with d.client("zhang.wei") as requester:
        request = requester.submit(
            [canary_pdf(tmp_path / "采购合同.pdf")],
            seal_id="contract",
            reason="采购合同",
            category="contract",
            placement=PLACEMENT,
        )
    with d.client("li.na") as li, d.client("wang.fang") as wang:
        li.approve(request.request_id)
        wang.approve(request.request_id)
    with d.client("liu.yang") as custodian:
        pin = user_pin(d.fixtures, "contract")
        try:
            custodian.change_pin("contract", pin, CHANGED_PIN)
            pin = CHANGED_PIN
        except SealClientError as ex:
            if ex.code != grpc.StatusCode.UNIMPLEMENTED:
                raise
        custodian.unlock("contract", pin)
    with d.client("zhang.wei") as requester:
        d.wait_state(requester, request.request_id, requests_pb2.REQUEST_STATE_SIGNED)
    return request.request_id, pin


def sealctl(d: SealDaemon, who: str, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("sealctl", path=str(Path(sys.executable).parent))
    assert exe is not None
    cfg = d.fixtures.principals[who].config
    return subprocess.run(
        [exe, "--config", str(cfg), "--server", d.target, *args], capture_output=True, text=True, check=False
    )


def seald(d: SealDaemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "seald.app", "--config", str(d.config_path), *args],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.clock  # issue 14: a report period of yesterday..tomorrow
def test_r10_r11_r12_audit_end_to_end_with_backup_restore_and_log_canary(
    daemon_factory: DaemonFactory, fresh_seal_fixtures: SealFixtures, tmp_path: Path
) -> None:
    d = daemon_factory()
    state = fresh_seal_fixtures.state_dir
    request_id, pin = sign_one(d, tmp_path)

    # Checkpoint on demand, then the online verification uses it.
    made = sealctl(d, "zhao.min", "--json", "audit", "checkpoint")
    assert made.returncode == 0, made.stderr
    checkpoint = json.loads(made.stdout)
    assert int(checkpoint["sequence"]) > 5
    verified = sealctl(d, "zhao.min", "--json", "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["ok"] is True
    denied = sealctl(d, "zhang.wei", "audit", "verify")
    assert denied.returncode == 3, denied.stderr  # requesters do not read the audit trail

    # Usage report: the PDF comes back sealed by the audit key, over the unsealed bytes.
    today = datetime.now(UTC).date()
    report_pdf = tmp_path / "report.pdf"
    period = ["--from", str(today - timedelta(days=1)), "--to", str(today + timedelta(days=1))]
    got = sealctl(d, "zhao.min", "audit", "report", *period, "--format", "pdf", "-o", str(report_pdf))
    assert got.returncode == 0, got.stderr
    audit_cert = (state / "audit" / "audit-cert.pem").read_bytes()
    checks = verify_pdf(report_pdf, [audit_cert])
    assert len(checks) == 1 and checks[0].valid and checks[0].intact
    # Reproducible (R11): the same ledger gives the same sealed bytes, a second later too.
    again = tmp_path / "report-again.pdf"
    got = sealctl(d, "zhao.min", "audit", "report", *period, "--format", "pdf", "-o", str(again))
    assert got.returncode == 0, got.stderr
    assert again.read_bytes() == report_pdf.read_bytes()
    as_json = sealctl(d, "zhao.min", "audit", "report", *period, "--format", "json", "--seal", "contract")
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["seals"][0]["seals_applied"] == 1
    assert report["uses"][0]["request_id"] == request_id
    assert report["uses"][0]["approvers"] == "li.na;wang.fang"
    assert report["seals"][0]["by_category"] == {"contract": 1}

    # A request approved before the backup and signed after it: restore must not revive it.
    with d.client("liu.yang") as custodian:
        custodian.lock("contract")
    with d.client("zhang.wei") as requester:
        later = requester.submit(
            [canary_pdf(tmp_path / "second.pdf")],
            seal_id="contract",
            reason="第二份",
            category="contract",
            placement=PLACEMENT,
        )
    with d.client("li.na") as li, d.client("wang.fang") as wang:
        li.approve(later.request_id)
        assert wang.approve(later.request_id).state == requests_pb2.REQUEST_STATE_APPROVED

    # Online backup (admin), written on the seal host with a signed manifest.
    backup = tmp_path / "backups" / "seald-1.sqlite3"
    made_backup = sealctl(d, "chen.jie", "--json", "audit", "backup", str(backup))
    assert made_backup.returncode == 0, made_backup.stderr
    assert backup.is_file() and Path(str(backup) + ".manifest.json").is_file()

    with d.client("liu.yang") as custodian:
        custodian.unlock("contract", pin)
    with d.client("zhang.wei") as requester:
        d.wait_state(requester, later.request_id, requests_pb2.REQUEST_STATE_SIGNED)
    d.stop()

    # Restore refuses a tampered backup, and a running daemon.
    tampered = tmp_path / "backups" / "tampered.sqlite3"
    shutil.copy(backup, tampered)
    shutil.copy(str(backup) + ".manifest.json", str(tampered) + ".manifest.json")
    conn = sqlite3.connect(tampered)
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("UPDATE audit_log SET principal = 'mallory' WHERE sequence = 2")
    conn.commit()
    conn.close()
    refused = seald(d, "--restore", str(tampered))
    assert refused.returncode == 1 and "does not match its manifest checksum" in refused.stderr

    restored = seald(d, "--restore", str(backup))
    assert restored.returncode == 0, restored.stderr
    d.start()
    with d.client("zhang.wei") as requester:
        assert requester.get(request_id).state == requests_pb2.REQUEST_STATE_SIGNED
        voided = requester.get(later.request_id)  # APPROVED in the backup, used since
        assert voided.state == requests_pb2.REQUEST_STATE_FAILED
        assert "voided by a restore" in voided.state_reason
    with d.client("liu.yang") as custodian:
        custodian.unlock("contract", pin)
    with d.client("zhang.wei") as requester:
        assert requester.get(later.request_id).state == requests_pb2.REQUEST_STATE_FAILED
    after = sealctl(d, "zhao.min", "--json", "audit", "verify")
    assert after.returncode == 0 and json.loads(after.stdout)["ok"], after.stdout + after.stderr
    conn = sqlite3.connect(state / "seald.sqlite3")
    events = [r[0] for r in conn.execute("SELECT event FROM audit_log ORDER BY sequence")]
    conn.close()
    assert "backup.restored" in events
    if d.proc is not None:
        d.stop()  # the canary reads the whole log, shutdown included

    # Log canary: no PIN, key material or document content in any line the daemon wrote.
    log = d.log()
    assert "seal.signed" in log and "audit.checkpoint" in log
    secrets = [user_pin(fresh_seal_fixtures, "contract"), CHANGED_PIN, DOCUMENT_CANARY]
    key_pem = (state / "audit" / "audit-key.pem").read_text()
    secrets.append(key_pem.splitlines()[1][:32])
    for line in log.splitlines():
        for secret in secrets:
            assert secret not in line, f"a secret appears in the log: {line[:200]}"
