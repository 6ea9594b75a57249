"""Signed checkpoints (R10): truncation and re-chaining are detected; real SQLite files.

The store and audit operations run in process over a real database file; tampering
is done with plain sqlite3, as someone holding the file would.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509

from seald.audit.operations import AuditOperations
from seald.domain.audit import GENESIS_HASH, AuditEvent, chain_after
from seald.store.checkpoints import LATEST_FILE, SignedCheckpoint, signature_problem
from seald.store.database import Store
from seald.store.ledger import Ledger

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


async def _ledger_with_checkpoint(state_dir: Path, records: int) -> tuple[SignedCheckpoint, Path]:
    clock = Clock()
    store = Store(state_dir, Ledger("seal-host-01", clock))
    await store.open()
    ops = AuditOperations(store, "seal-host-01", clock)
    assert (await ops.start()).ok
    for i in range(records):
        event = AuditEvent(
            event="request.submitted", principal="zhang.wei", request_id=f"r{i}", outcome="pending"
        )
        await store.write(lambda tx, e=event: tx.audit(e))
    checkpoint = await ops.checkpoint()
    again = await ops.checkpoint()  # idempotent for the same head
    assert again == checkpoint
    await store.close()
    return checkpoint, state_dir / "seald.sqlite3"


def _verify(state_dir: Path) -> tuple[bool, str, int | None]:
    async def run() -> tuple[bool, str, int | None]:
        store = Store(state_dir, Ledger("seal-host-01", Clock()))
        await store.open()
        try:
            result = await AuditOperations(store, "seal-host-01", Clock()).start()
        finally:
            await store.close()
        return result.ok, result.problem, result.first_bad_sequence

    return asyncio.run(run())


def _tamper(db: Path, *statements: str) -> None:
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
    conn.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


def test_r10_checkpoint_is_signed_by_the_audit_key_not_a_seal_key(tmp_path: Path) -> None:
    checkpoint, _ = asyncio.run(_ledger_with_checkpoint(tmp_path, 5))
    assert checkpoint.sequence == 5
    certificate = x509.load_pem_x509_certificate((tmp_path / "audit" / "audit-cert.pem").read_bytes())
    assert "seald audit key" in certificate.subject.rfc4514_string()
    assert signature_problem(checkpoint, certificate) == ""
    assert (tmp_path / "audit" / "audit-key.pem").stat().st_mode & 0o077 == 0
    forged = SignedCheckpoint(**{**checkpoint.__dict__, "head_hash": "f" * 64})
    assert "not signed by the audit key" in signature_problem(forged, certificate)
    exported = json.loads((tmp_path / "audit" / LATEST_FILE).read_text())
    assert exported["sequence"] == 5


def test_r10_truncation_after_checkpoint_detected(tmp_path: Path) -> None:
    _, db = asyncio.run(_ledger_with_checkpoint(tmp_path, 6))
    _tamper(db, "DELETE FROM audit_log WHERE sequence >= 5")
    ok, problem, bad = _verify(tmp_path)
    assert not ok
    assert bad == 5 and "truncated" in problem


def test_r10_truncation_with_checkpoint_rows_deleted_still_detected_by_exported_checkpoint(
    tmp_path: Path,
) -> None:
    _, db = asyncio.run(_ledger_with_checkpoint(tmp_path, 6))
    _tamper(db, "DELETE FROM audit_log WHERE sequence >= 4", "DELETE FROM audit_checkpoint")
    ok, problem, _ = _verify(tmp_path)
    assert not ok and "truncated" in problem


def test_r10_rechained_ledger_with_recomputed_hashes_detected(tmp_path: Path) -> None:
    _, db = asyncio.run(_ledger_with_checkpoint(tmp_path, 4))
    # Rebuild the whole chain with a changed record 2 and every hash recomputed: the
    # chain alone verifies, the signed checkpoint does not match it.
    conn = sqlite3.connect(db)
    rows = conn.execute("SELECT sequence, time FROM audit_log ORDER BY sequence").fetchall()
    conn.close()
    statements = ["DELETE FROM audit_log"]
    head_sequence, head_hash = 0, GENESIS_HASH
    for sequence, time in rows:
        who = "mallory" if sequence == 2 else "zhang.wei"
        event = AuditEvent(
            event="request.submitted", principal=who, request_id=f"r{sequence - 1}", outcome="pending"
        )
        record = chain_after(head_sequence, head_hash, event, datetime.fromisoformat(time), "seal-host-01")
        values = ", ".join(
            "'" + str(v).replace("'", "''") + "'" if isinstance(v, str) else str(v) for v in record.as_row()
        )
        statements.append(f"INSERT INTO audit_log VALUES ({values})")
        head_sequence, head_hash = record.sequence, record.record_hash
    _tamper(db, *statements)
    ok, problem, bad = _verify(tmp_path)
    assert not ok
    assert bad == 4 and "differs from the checkpoint" in problem


def test_r10_forged_checkpoint_row_detected(tmp_path: Path) -> None:
    _, db = asyncio.run(_ledger_with_checkpoint(tmp_path, 3))
    (tmp_path / "audit" / LATEST_FILE).unlink()
    _tamper(db, "UPDATE audit_checkpoint SET record_hash = '" + "e" * 64 + "'")
    ok, problem, _ = _verify(tmp_path)
    assert not ok and "not signed by the audit key" in problem


def test_r10_sealctl_audit_verify_offline_detects_and_names_the_record(tmp_path: Path) -> None:
    _, db = asyncio.run(_ledger_with_checkpoint(tmp_path, 5))
    copy = tmp_path / "copy.sqlite3"
    src = sqlite3.connect(db)
    dst = sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    dst.close()
    cert = tmp_path / "audit" / "audit-cert.pem"
    sealctl = [sys.executable, "-m", "sealclient.cli", "--json", "audit", "verify", "--offline", str(copy)]
    good = subprocess.run([*sealctl, "--audit-cert", str(cert)], capture_output=True, text=True, check=False)
    assert good.returncode == 0, good.stderr
    verdict = json.loads(good.stdout)
    assert verdict["ok"] and verdict["records_checked"] == 5 and verdict["certificate_pinned"]
    _tamper(copy, "UPDATE audit_log SET principal = 'mallory' WHERE sequence = 3")
    bad = subprocess.run([*sealctl, "--audit-cert", str(cert)], capture_output=True, text=True, check=False)
    assert bad.returncode == 10, bad.stdout + bad.stderr
    verdict = json.loads(bad.stdout)
    assert not verdict["ok"] and verdict["first_bad_sequence"] == 3
