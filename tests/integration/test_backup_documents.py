"""Complete backups (issue 16 item 5; SEAL-RULES R12): `sealctl audit backup` through a
real seald copies the state database, every original and sealed document and the audit
certificate, signs a manifest with each file's SHA-256 and size, and prints a size
report per kind. `seald --restore` (daemon stopped) verifies every file against the
manifest and the backup's ledger and refuses a tampered one, naming it, with nothing
replaced; a good backup brings the documents back and the requester downloads the
sealed document again (the download checks the ledger's SHA-256).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pytest
from fixture_layout import SealFixtures

from sealapi.v1 import common_pb2, requests_pb2
from sealclient.cli import main as sealctl_main
from seald.store.backup import BackupManifest
from seald.store.checkpoints import AuditKey
from seald_testing.daemon import SealDaemon, make_pdf, unlock_first_use
from seald_testing.plugin import DaemonFactory
from seald_testing.state_checks import check_state

PLACEMENT = common_pb2.Placement(page=0, x_mm=150, y_mm=240, size_mm=40)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _submit(d: SealDaemon, pdf: Path) -> str:
    with d.client("zhang.wei") as c:
        request = c.submit([pdf], seal_id="contract", reason="备份", category="contract", placement=PLACEMENT)
    return str(request.request_id)


def _restore(d: SealDaemon, backup: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "seald.app", "--config", str(d.config_path), "--restore", str(backup)],
        capture_output=True,
        text=True,
        check=False,
    )


def _copy_backup(backup: Path, name: str) -> Path:
    copy = backup.with_name(name)
    shutil.copy(backup, copy)
    shutil.copy(f"{backup}.manifest.json", f"{copy}.manifest.json")
    shutil.copytree(f"{backup}.files", f"{copy}.files")
    # The files directory is found by the backup's name (copy and rename the three
    # together); the manifest keeps the original name for people.
    manifest = json.loads(Path(f"{copy}.manifest.json").read_text())
    assert manifest["files_directory"] == f"{backup.name}.files"
    return copy


def test_r12_backup_holds_documents_and_audit_certificate_and_restore_refuses_a_tampered_file(
    daemon_factory: DaemonFactory,
    fresh_seal_fixtures: SealFixtures,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fx = fresh_seal_fixtures
    d = daemon_factory()
    signed_id = _submit(d, make_pdf(tmp_path / "signed.pdf", pages=2))
    with d.client("li.na") as li, d.client("wang.fang") as wang:
        li.approve(signed_id)
        wang.approve(signed_id)
    with d.client("liu.yang") as custodian:
        unlock_first_use(custodian, fx, "contract")
    pending_id = _submit(d, make_pdf(tmp_path / "pending.pdf", pages=1))  # an original only
    with d.client("zhang.wei") as requester:
        d.wait_state(requester, signed_id, requests_pb2.REQUEST_STATE_SIGNED, timeout=120)
        requester.download(signed_id, 0, tmp_path / "sealed.pdf")

    backup = tmp_path / "backups" / "seald-1.sqlite3"
    admin = fx.principals["chen.jie"]
    code = sealctl_main(
        ["--config", str(admin.config), "--server", d.target, "audit", "backup", str(backup)]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    d.stop()

    # The size report: one line per kind, and the total.
    sizes = {
        m.group(1): (int(m.group(2)), int(m.group(3).replace(",", "")))
        for m in re.finditer(r"^\s+(\w+)\s+(\d+) files\s+([\d,]+) bytes$", printed, flags=re.M)
    }
    state = fx.state_dir
    originals = [state / "documents" / rid / "0000.pdf" for rid in (signed_id, pending_id)]
    sealed = state / "documents" / signed_id / "0000.sealed.pdf"
    audit_cert = state / "audit" / "audit-cert.pem"
    assert sizes["database"] == (1, backup.stat().st_size)
    assert sizes["originals"] == (2, sum(p.stat().st_size for p in originals))
    assert sizes["sealed"] == (1, sealed.stat().st_size)
    assert sizes["certs"] == (1, audit_cert.stat().st_size)
    assert sizes["total"][0] == 5

    # `seald --backup` (on the host, no RPC) makes the same kind of backup and report.
    offline = subprocess.run(
        [
            sys.executable, "-m", "seald.app", "--config", str(d.config_path),
            "--backup", str(tmp_path / "backups" / "seald-2.sqlite3"),
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert offline.returncode == 0, offline.stderr
    report = {
        m.group(1): int(m.group(2))
        for m in re.finditer(r"^\s+(\w+)\s+(\d+) files\s+([\d,]+) bytes$", offline.stdout, flags=re.M)
    }
    assert report == {kind: count for kind, (count, _) in sizes.items()}, offline.stdout

    # The backup holds the originals, the sealed document and the audit certificate.
    files = Path(f"{backup}.files")
    assert (files / "originals" / signed_id / "0000.pdf").read_bytes() == originals[0].read_bytes()
    assert (files / "originals" / pending_id / "0000.pdf").read_bytes() == originals[1].read_bytes()
    downloaded = (tmp_path / "sealed.pdf").read_bytes()
    assert (files / "sealed" / signed_id / "0000.sealed.pdf").read_bytes() == downloaded
    assert (files / "certs" / "audit-cert.pem").read_bytes() == audit_cert.read_bytes()
    manifest = json.loads(Path(f"{backup}.manifest.json").read_text())
    assert manifest["format"] == "seald.backup/2"
    listed = {entry["path"]: (entry["sha256"], entry["size"]) for entry in manifest["files"]}
    assert listed[f"sealed/{signed_id}/0000.sealed.pdf"] == (_sha(sealed), sealed.stat().st_size)
    assert len(listed) == 4

    # A tampered sealed document: refused, named, nothing replaced.
    before = {p: p.read_bytes() for p in (*originals, sealed, state / "seald.sqlite3")}
    tampered = _copy_backup(backup, "tampered-sealed.sqlite3")
    victim = Path(f"{tampered}.files") / "sealed" / signed_id / "0000.sealed.pdf"
    victim.write_bytes(victim.read_bytes() + b"% tampered\n")
    refused = _restore(d, tampered)
    assert refused.returncode == 1, refused.stdout
    assert f"sealed/{signed_id}/0000.sealed.pdf" in refused.stderr, refused.stderr
    assert "ledger" in refused.stderr
    # A tampered original, and a swapped audit certificate: each refused by name.
    tampered = _copy_backup(backup, "tampered-original.sqlite3")
    victim = Path(f"{tampered}.files") / "originals" / pending_id / "0000.pdf"
    victim.write_bytes(victim.read_bytes() + b"% appended\n")
    refused = _restore(d, tampered)
    assert refused.returncode == 1 and f"originals/{pending_id}/0000.pdf" in refused.stderr, refused.stderr
    tampered = _copy_backup(backup, "tampered-cert.sqlite3")
    (Path(f"{tampered}.files") / "certs" / "audit-cert.pem").write_bytes(fx.tls_ca.read_bytes())
    refused = _restore(d, tampered)
    assert refused.returncode == 1 and "certs/audit-cert.pem" in refused.stderr, refused.stderr
    # A document missing from the backup.
    tampered = _copy_backup(backup, "missing.sqlite3")
    (Path(f"{tampered}.files") / "originals" / signed_id / "0000.pdf").unlink()
    refused = _restore(d, tampered)
    assert refused.returncode == 1 and f"originals/{signed_id}/0000.pdf" in refused.stderr, refused.stderr
    # The ledger is the reference, not only the manifest: a file changed and its manifest
    # entry changed to match, re-signed with the appliance's own audit key (an insider with
    # the key), is still refused by name because the backup's ledger records another hash.
    tampered = _copy_backup(backup, "resigned.sqlite3")
    victim = Path(f"{tampered}.files") / "sealed" / signed_id / "0000.sealed.pdf"
    victim.write_bytes(victim.read_bytes() + b"% tampered\n")
    raw = json.loads(Path(f"{tampered}.manifest.json").read_text())
    for entry in raw["files"]:
        if entry["path"] == f"sealed/{signed_id}/0000.sealed.pdf":
            entry["sha256"], entry["size"] = _sha(victim), victim.stat().st_size
    forged = BackupManifest(**{**raw, "files": tuple(raw["files"]), "signature_hex": ""})
    key = AuditKey.load_or_create(state / "audit", forged.host)
    forged = replace(forged, signature_hex=key.sign(forged.signed_bytes()).hex())
    Path(f"{tampered}.manifest.json").write_text(json.dumps(asdict(forged)))
    refused = _restore(d, tampered)
    assert refused.returncode == 1, refused.stdout
    assert f"sealed/{signed_id}/0000.sealed.pdf does not match the SHA-256 the ledger" in refused.stderr
    assert {p: p.read_bytes() for p in before} == before

    # The documents are lost on the host; the good backup brings them back.
    shutil.rmtree(state / "documents")
    restored = _restore(d, backup)
    assert restored.returncode == 0, restored.stderr
    assert "4 documents and certificates verified against the ledger" in restored.stdout, restored.stdout
    assert sealed.read_bytes() == before[sealed] and originals[1].read_bytes() == before[originals[1]]
    check_state(state, after_restart=False)
    d.start()
    with d.client("zhang.wei") as requester:
        requester.download(signed_id, 0, tmp_path / "sealed-again.pdf")  # checks the ledger's hash
        assert requester.get(pending_id).state == requests_pb2.REQUEST_STATE_FAILED  # voided by restore
    d.stop()
    assert (tmp_path / "sealed-again.pdf").read_bytes() == (tmp_path / "sealed.pdf").read_bytes()
