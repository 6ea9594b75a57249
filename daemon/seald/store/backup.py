"""Backup and restore of the state database with integrity checks (SEAL-RULES R12).

Backup: SQLite's online backup API copies a consistent snapshot while seald runs;
the copy's chain is verified, then a manifest (file SHA-256, size, chain head)
is signed with the audit key and written beside it as ``<file>.manifest.json``.

Restore (daemon stopped): the manifest signature, the checksum and the whole chain
up to the signed head are verified first; any failure refuses the restore. The
restored copy then voids every request that was not final (PENDING, APPROVED,
SIGNING): an approval in an old backup may have been used after the backup was
taken, so it is never brought back. Seals that the current database records as
lost or destroyed stay lost or destroyed. Both facts are audit records.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from seald.domain.audit import AuditEvent, format_time
from seald.domain.errors import PreconditionFailed
from seald.domain.model import RequestState
from seald.store.checkpoints import LATEST_FILE, AuditKey
from seald.store.ledger import Ledger, verify_ledger_file
from seald.store.requests import request_from_json, request_to_json

MANIFEST_FORMAT: Final = "seald.backup/1"
MANIFEST_SUFFIX: Final = ".manifest.json"
DATABASE_NAME: Final = "seald.sqlite3"
_VOIDED_STATES: Final = (RequestState.PENDING, RequestState.APPROVED, RequestState.SIGNING)
_KEPT_SEAL_STATUSES: Final = ("lost", "destroyed")


class BackupError(PreconditionFailed):
    """A backup cannot be made, or fails verification and must not be restored."""

    default_reason = "backup_invalid"


@dataclass(frozen=True)
class BackupManifest:
    format: str
    database_file: str
    sha256: str
    size: int
    head_sequence: int
    head_hash: str
    created_at: str
    host: str
    certificate_der_hex: str
    signature_hex: str = ""

    def signed_bytes(self) -> bytes:
        body = asdict(self)
        body.pop("signature_hex")
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def manifest_path(backup: Path) -> Path:
    return backup.with_name(backup.name + MANIFEST_SUFFIX)


def _sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def create_backup(
    conn: sqlite3.Connection, destination: Path, key: AuditKey, host: str, now: datetime
) -> BackupManifest:
    """Online backup of ``conn``'s database to ``destination`` (must not exist yet)."""
    if destination.exists():
        raise BackupError(
            f"{destination} exists already; choose a new file name (backups are never overwritten)",
            reason="backup_exists",
        )
    partial = destination.with_name(destination.name + ".partial")
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        target = sqlite3.connect(partial)
        try:
            conn.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            target.close()
        check = verify_ledger_file(partial)
        if not check.ok:
            raise BackupError(
                f"the ledger does not verify ({check.problem}); the backup was not kept. "
                "Investigate the state database before backing it up",
                reason="ledger_invalid",
            )
        sha256, size = _sha256(partial)
        manifest = BackupManifest(
            format=MANIFEST_FORMAT,
            database_file=destination.name,
            sha256=sha256,
            size=size,
            head_sequence=check.head_sequence,
            head_hash=check.head_hash,
            created_at=format_time(now),
            host=host,
            certificate_der_hex=key.certificate_der.hex(),
        )
        manifest = replace(manifest, signature_hex=key.sign(manifest.signed_bytes()).hex())
        _fsync(partial)
        os.replace(partial, destination)
        manifest_path(destination).write_text(json.dumps(asdict(manifest), indent=1, sort_keys=True))
        _fsync(manifest_path(destination))
        return manifest
    except (OSError, sqlite3.Error) as ex:
        raise BackupError(
            f"cannot write the backup to {destination} ({ex}); check the destination's space and permissions",
            reason="backup_failed",
        ) from ex
    finally:
        with contextlib.suppress(OSError):
            partial.unlink()


def verify_backup(backup: Path, certificate: x509.Certificate | None = None) -> BackupManifest:
    """Raise BackupError unless manifest signature, checksum and chain all verify.

    ``certificate``: the audit certificate to trust; None trusts the one in the
    manifest (first restore onto a new host - the caller says so to the operator).
    """
    try:
        raw = json.loads(manifest_path(backup).read_text())
        manifest = BackupManifest(**raw)
    except (OSError, ValueError, TypeError) as ex:
        raise BackupError(
            f"the backup manifest {manifest_path(backup)} is missing or unreadable ({type(ex).__name__}); "
            "a backup is restored only with its manifest"
        ) from ex
    if manifest.format != MANIFEST_FORMAT:
        raise BackupError(f"{manifest_path(backup)} is not a seald backup manifest")
    try:
        trusted = certificate or x509.load_der_x509_certificate(bytes.fromhex(manifest.certificate_der_hex))
        public_key = trusted.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise BackupError("the audit certificate does not hold an EC key")
        public_key.verify(
            bytes.fromhex(manifest.signature_hex), manifest.signed_bytes(), ec.ECDSA(hashes.SHA256())
        )
    except (InvalidSignature, ValueError) as ex:
        raise BackupError(
            "the backup manifest is not signed by this appliance's audit key (edited or foreign "
            "manifest); refusing to restore it"
        ) from ex
    if not backup.is_file():
        raise BackupError(f"backup file {backup} is missing")
    sha256, size = _sha256(backup)
    if (sha256, size) != (manifest.sha256, manifest.size):
        raise BackupError(
            f"backup file {backup} does not match its manifest checksum (changed after the "
            "backup was made); refusing to restore it"
        )
    check = verify_ledger_file(backup, (manifest.head_sequence, manifest.head_hash))
    if not check.ok:
        raise BackupError(f"the backup's ledger does not verify: {check.problem}; refusing to restore it")
    if check.head_sequence != manifest.head_sequence:
        raise BackupError(
            f"the backup's ledger continues past its signed head (record {manifest.head_sequence}); "
            "records were added after the backup was made; refusing to restore it"
        )
    return manifest


@dataclass(frozen=True)
class RestoreResult:
    manifest: BackupManifest
    voided_requests: list[str]
    kept_seal_statuses: dict[str, str]
    previous_database: Path | None


def _terminal_seal_statuses(database: Path) -> dict[str, tuple[str, str, str | None]]:
    """Seals the current database records as lost/destroyed (empty if unreadable)."""
    if not database.is_file():
        return {}
    try:
        conn = sqlite3.connect(database.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            rows = conn.execute(
                "SELECT seal_id, status, status_reason, since FROM seal_state WHERE status IN (?, ?)",
                _KEPT_SEAL_STATUSES,
            ).fetchall()
        finally:
            conn.close()
    except sqlite3.Error:
        return {}
    return {str(r[0]): (str(r[1]), str(r[2]), r[3]) for r in rows}


def restore_backup(
    backup: Path, state_dir: Path, host: str, now: datetime, audit_dir: Path | None = None
) -> RestoreResult:
    """Verify ``backup`` and make it the state database of ``state_dir`` (seald stopped).

    ``audit_dir``: where the audit certificate lives ([audit] key_dir; default state_dir/audit).
    """
    audit_dir = audit_dir or state_dir / "audit"
    cert_path = audit_dir / "audit-cert.pem"
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes()) if cert_path.is_file() else None
    manifest = verify_backup(backup, certificate)
    database = state_dir / DATABASE_NAME
    kept = _terminal_seal_statuses(database)
    staging = state_dir / (DATABASE_NAME + ".restoring")
    staging.unlink(missing_ok=True)
    shutil.copyfile(backup, staging)
    conn = sqlite3.connect(staging, isolation_level=None)
    voided: list[str] = []
    ledger = Ledger(host, lambda: now)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS seal_state (seal_id TEXT PRIMARY KEY, status TEXT NOT NULL, "
            "status_reason TEXT NOT NULL, since TEXT, display_name TEXT NOT NULL DEFAULT '')"
        )
        ledger.append(
            conn,
            AuditEvent(
                event="backup.restored",
                outcome="restored",
                reason="restore",
                details={
                    "backup_file": backup.name,
                    "backup_sha256": manifest.sha256,
                    "backup_head_sequence": manifest.head_sequence,
                    "backup_created_at": manifest.created_at,
                },
            ),
        )
        states = tuple(s.value for s in _VOIDED_STATES)
        rows = conn.execute(
            "SELECT body FROM requests WHERE state IN (?, ?, ?) ORDER BY request_id", states
        ).fetchall()
        for (body,) in rows:
            request = request_from_json(body)
            voided_request = replace(
                request,
                state=RequestState.FAILED,
                updated_at=now,
                state_reason="voided by a restore from backup: its approvals may have been used "
                "after the backup was made; submit it again",
            )
            conn.execute(
                "UPDATE requests SET state = ?, updated_at = ?, body = ? WHERE request_id = ?",
                (
                    voided_request.state.value,
                    now.isoformat(),
                    request_to_json(voided_request),
                    request.request_id,
                ),
            )
            ledger.append(
                conn,
                AuditEvent(
                    event="request.voided_by_restore",
                    seal_id=request.seal_id,
                    request_id=request.request_id,
                    outcome="failed",
                    reason="restored_from_backup",
                    details={"previous_state": request.state.value},
                ),
            )
            voided.append(request.request_id)
        for seal_id, (status, reason, since) in sorted(kept.items()):
            conn.execute(
                "INSERT INTO seal_state (seal_id, status, status_reason, since) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(seal_id) DO UPDATE SET status = excluded.status, "
                "status_reason = excluded.status_reason, since = excluded.since",
                (seal_id, status, reason, since),
            )
            ledger.append(
                conn,
                AuditEvent(
                    event="seal.status_kept_on_restore",
                    seal_id=seal_id,
                    outcome=status,
                    reason="restored_from_backup",
                ),
            )
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as ex:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise BackupError(f"cannot prepare the restored database ({ex}); nothing was replaced") from ex
    finally:
        conn.close()
    _fsync(staging)
    stamp = format_time(now).replace(":", "")
    previous: Path | None = None
    if database.exists():
        previous = state_dir / f"{DATABASE_NAME}.before-restore-{stamp}"
        os.replace(database, previous)
    for suffix in ("-wal", "-shm"):
        side = state_dir / (DATABASE_NAME + suffix)
        if side.exists():
            os.replace(side, state_dir / f"{DATABASE_NAME}{suffix}.before-restore-{stamp}")
    # The exported checkpoint names the old head; the restored chain is shorter by design.
    latest = audit_dir / LATEST_FILE
    if latest.exists():
        os.replace(latest, audit_dir / f"{LATEST_FILE}.before-restore-{stamp}")
    os.replace(staging, database)
    return RestoreResult(manifest, voided, {k: v[0] for k, v in kept.items()}, previous)


def backup_database_file(
    database: Path, destination: Path, key: AuditKey, host: str, now: datetime
) -> BackupManifest:
    """``seald --backup``: an online backup through a second, read-only connection."""
    conn = sqlite3.connect(database.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        return create_backup(conn, destination, key, host, now)
    finally:
        conn.close()
