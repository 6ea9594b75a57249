"""Backup and restore of the state with integrity checks (SEAL-RULES R12).

Backup: SQLite's online backup API copies a consistent snapshot while seald runs;
the copy's chain is verified. Then (issue 16) every document the snapshot's requests
name - each original and each sealed file - is copied into ``<file>.files/``
(``originals/<request>/NNNN.pdf``, ``sealed/<request>/NNNN.sealed.pdf``) with its
SHA-256 checked against the snapshot's ledger while copying, and the audit certificate
into ``certs/audit-cert.pem``. A manifest (database SHA-256, size, chain head, and each
copied file's kind, SHA-256 and size) is signed with the audit key and written beside it
as ``<file>.manifest.json``; ``BackupManifest.sizes`` is the size report per kind
(database, originals, sealed, certs).

Restore (daemon stopped): the manifest signature, the checksum and the whole chain
up to the signed head are verified first, then every copied file against the manifest
AND the backup's ledger (the request's recorded SHA-256); the audit certificate against
the one that signed the manifest. Any failure refuses the restore, naming the file. The
documents directory is then replaced by the backup's (the old one kept aside). The
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
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from seald.domain.audit import AuditEvent, format_time
from seald.domain.errors import PreconditionFailed
from seald.domain.model import RequestState
from seald.store.checkpoints import LATEST_FILE, AuditKey
from seald.store.ledger import Ledger, verify_ledger_file
from seald.store.requests import request_from_json, request_to_json

MANIFEST_FORMAT: Final = "seald.backup/2"
# Database only (before issue 16): still verified and restored; documents stay as they are.
MANIFEST_FORMAT_V1: Final = "seald.backup/1"
FILES_SUFFIX: Final = ".files"
KINDS: Final = ("database", "originals", "sealed", "certs")
AUDIT_CERT_NAME: Final = "audit-cert.pem"
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
    # Issue 16 (format /2): the copied files, each {"path" (relative to the files directory:
    # ``<backup file>.files`` beside the backup, whatever it is called now; files_directory
    # is its name when made, for people),
    # "kind" (originals|sealed|certs), "request_id", "index", "sha256", "size"}.
    files_directory: str = ""
    files: tuple[dict[str, Any], ...] = ()

    def signed_bytes(self) -> bytes:
        body = asdict(self)
        body.pop("signature_hex")
        body["files"] = list(self.files)
        if self.format == MANIFEST_FORMAT_V1:  # signed before these fields existed
            body.pop("files_directory")
            body.pop("files")
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    @property
    def sizes(self) -> dict[str, tuple[int, int]]:
        """The size report: kind -> (files, bytes)."""
        report = {kind: (0, 0) for kind in KINDS}
        report["database"] = (1, self.size)
        for entry in self.files:
            count, total = report[str(entry["kind"])]
            report[str(entry["kind"])] = (count + 1, total + int(entry["size"]))
        return report


def size_report(manifest: BackupManifest) -> str:
    """One line per kind and the total, for people (seald --backup, sealctl audit backup)."""
    return format_sizes(manifest.sizes)


def format_sizes(sizes: dict[str, tuple[int, int]]) -> str:
    lines = [f"  {kind:<10} {count:>7} files {total:>15,} bytes" for kind, (count, total) in sizes.items()]
    files = sum(c for c, _ in sizes.values())
    total = sum(b for _, b in sizes.values())
    lines.append(f"  {'total':<10} {files:>7} files {total:>15,} bytes")
    return "\n".join(lines)


def manifest_path(backup: Path) -> Path:
    return backup.with_name(backup.name + MANIFEST_SUFFIX)


def files_path(backup: Path) -> Path:
    return backup.with_name(backup.name + FILES_SUFFIX)


def _ledger_documents(database: Path) -> dict[tuple[str, int, str], str]:
    """(request, index, kind) -> SHA-256 the backup's ledger records for that file."""
    conn = sqlite3.connect(database.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT body FROM requests ORDER BY request_id").fetchall()
    finally:
        conn.close()
    recorded: dict[tuple[str, int, str], str] = {}
    for (body,) in rows:
        request = request_from_json(body)
        for doc in request.documents:
            recorded[(request.request_id, doc.index, "originals")] = doc.sha256
            if doc.sealed_sha256:
                recorded[(request.request_id, doc.index, "sealed")] = doc.sealed_sha256
    return recorded


def _relative(kind: str, request_id: str, index: int) -> str:
    name = f"{index:04d}.sealed.pdf" if kind == "sealed" else f"{index:04d}.pdf"
    return f"{kind}/{request_id}/{name}"


def _copy_hashing(source: Path, target: Path) -> tuple[str, int]:
    """Copy ``source`` to ``target`` (fsynced), hashing the bytes copied."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with source.open("rb") as src, target.open("xb") as out:
        for block in iter(lambda: src.read(1 << 20), b""):
            digest.update(block)
            out.write(block)
            size += len(block)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest(), size


def _copy_documents(
    snapshot: Path, documents_dir: Path, staging: Path, certificate_pem: bytes
) -> tuple[dict[str, Any], ...]:
    """Copy every file the snapshot's ledger names into ``staging``; a file whose bytes
    differ from the recorded SHA-256 (or that is missing) fails the backup, named."""
    entries: list[dict[str, Any]] = []
    for (request_id, index, kind), recorded in sorted(_ledger_documents(snapshot).items()):
        rel = _relative(kind, request_id, index)
        name = f"{index:04d}.sealed.pdf" if kind == "sealed" else f"{index:04d}.pdf"
        source = documents_dir / request_id / name
        # An archive renewal commits its new hash, then renames its pending file: a
        # backup between the two takes the pending file the ledger already names.
        pending = source.with_name(f".{name}.archive-renewal")
        if kind == "sealed" and pending.is_file() and _sha256(pending)[0] == recorded:
            source = pending
        if not source.is_file():
            raise BackupError(
                f"{rel}: the ledger names this document but the file is missing from "
                f"{documents_dir}; the backup was not kept. Investigate the state directory",
                reason="backup_file_mismatch",
            )
        sha256, size = _copy_hashing(source, staging / rel)
        if sha256 != recorded:
            raise BackupError(
                f"{rel}: the file's SHA-256 does not match the ledger (changed on disk); the "
                "backup was not kept. Investigate the state directory",
                reason="backup_file_mismatch",
            )
        entries.append(_entry(rel, kind, request_id, index, sha256, size))
    cert_rel = f"certs/{AUDIT_CERT_NAME}"
    (staging / "certs").mkdir(parents=True, exist_ok=True)
    (staging / cert_rel).write_bytes(certificate_pem)
    _fsync(staging / cert_rel)
    cert_sha, cert_size = _sha256(staging / cert_rel)
    entries.append(_entry(cert_rel, "certs", "", 0, cert_sha, cert_size))
    return tuple(entries)


def _entry(  # noqa: PLR0917 - the manifest entry's fields, in order
    path: str, kind: str, request_id: str, index: int, sha256: str, size: int
) -> dict[str, Any]:
    return {
        "path": path,
        "kind": kind,
        "request_id": request_id,
        "index": index,
        "sha256": sha256,
        "size": size,
    }


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
    conn: sqlite3.Connection,
    destination: Path,
    key: AuditKey,
    host: str,
    now: datetime,
    *,
    documents_dir: Path | None = None,
) -> BackupManifest:
    """Online backup of ``conn``'s database to ``destination`` (must not exist yet), with
    the documents under ``documents_dir`` (default: beside the database)."""
    if documents_dir is None:
        documents_dir = Path(conn.execute("PRAGMA database_list").fetchone()[2]).parent / "documents"
    if destination.exists() or files_path(destination).exists():
        raise BackupError(
            f"{destination} exists already; choose a new file name (backups are never overwritten)",
            reason="backup_exists",
        )
    partial = destination.with_name(destination.name + ".partial")
    files_partial = destination.with_name(destination.name + FILES_SUFFIX + ".partial")
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
        shutil.rmtree(files_partial, ignore_errors=True)
        files = _copy_documents(partial, documents_dir, files_partial, key.certificate_pem)
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
            files_directory=files_path(destination).name,
            files=files,
        )
        manifest = replace(manifest, signature_hex=key.sign(manifest.signed_bytes()).hex())
        _fsync(partial)
        os.replace(files_partial, files_path(destination))
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
        shutil.rmtree(files_partial, ignore_errors=True)


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
    if manifest.format not in (MANIFEST_FORMAT, MANIFEST_FORMAT_V1):
        raise BackupError(f"{manifest_path(backup)} is not a seald backup manifest")
    manifest = replace(manifest, files=tuple(manifest.files))
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
    if manifest.format == MANIFEST_FORMAT:
        _verify_files(backup, manifest)
    return manifest


def _verify_files(backup: Path, manifest: BackupManifest) -> None:
    """Every copied file against the manifest and the backup's ledger; the audit
    certificate against the one whose key signed the manifest (issue 16)."""
    directory = files_path(backup)
    recorded = _ledger_documents(backup)
    listed: set[tuple[str, int, str]] = set()
    for entry in manifest.files:
        rel, kind = str(entry["path"]), str(entry["kind"])
        path = directory / rel
        if not path.is_file():
            raise BackupError(
                f"backup file {rel} is missing from {directory}; refusing to restore",
                reason="backup_file_mismatch",
            )
        sha256, size = _sha256(path)
        if kind == "certs":
            signer_pem = _pem(bytes.fromhex(manifest.certificate_der_hex))
            if path.read_bytes() != signer_pem or sha256 != entry["sha256"]:
                raise BackupError(
                    f"backup file {rel} is not the audit certificate that signed the manifest; "
                    "refusing to restore",
                    reason="backup_file_mismatch",
                )
            continue
        key = (str(entry["request_id"]), int(entry["index"]), kind)
        listed.add(key)
        if (sha256, size) != (entry["sha256"], entry["size"]) or recorded.get(key) != sha256:
            raise BackupError(
                f"backup file {rel} does not match the SHA-256 the ledger records for it (changed "
                "after the backup was made); refusing to restore",
                reason="backup_file_mismatch",
            )
    missing = sorted(set(recorded) - listed)
    if missing:
        request_id, index, kind = missing[0]
        raise BackupError(
            f"backup file {_relative(kind, request_id, index)} is named by the ledger but not in "
            "the backup; refusing to restore",
            reason="backup_file_mismatch",
        )


def _pem(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


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
    documents_staging = _stage_documents(backup, manifest, state_dir)
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
        if documents_staging is not None:
            shutil.rmtree(documents_staging, ignore_errors=True)
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
    if documents_staging is not None:
        documents = state_dir / "documents"
        if documents.exists():
            os.replace(documents, state_dir / f"documents.before-restore-{stamp}")
        os.replace(documents_staging, documents)
    os.replace(staging, database)
    return RestoreResult(manifest, voided, {k: v[0] for k, v in kept.items()}, previous)


def _stage_documents(backup: Path, manifest: BackupManifest, state_dir: Path) -> Path | None:
    """The backup's documents laid out as ``documents/`` (verified again while copied);
    None for a database-only (format /1) backup, whose restore leaves documents alone."""
    if manifest.format != MANIFEST_FORMAT:
        return None
    source = files_path(backup)
    staging = state_dir / "documents.restoring"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o700)
    for entry in manifest.files:
        kind = str(entry["kind"])
        if kind == "certs":
            continue
        index = int(entry["index"])
        name = f"{index:04d}.sealed.pdf" if kind == "sealed" else f"{index:04d}.pdf"
        sha256, _ = _copy_hashing(source / str(entry["path"]), staging / str(entry["request_id"]) / name)
        if sha256 != entry["sha256"]:
            shutil.rmtree(staging, ignore_errors=True)
            raise BackupError(
                f"backup file {entry['path']} changed while it was restored; nothing was replaced",
                reason="backup_file_mismatch",
            )
    return staging


def backup_database_file(
    database: Path, destination: Path, key: AuditKey, host: str, now: datetime
) -> BackupManifest:
    """``seald --backup``: an online backup through a second, read-only connection."""
    conn = sqlite3.connect(database.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        return create_backup(conn, destination, key, host, now, documents_dir=database.parent / "documents")
    finally:
        conn.close()
