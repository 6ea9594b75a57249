"""Signed checkpoints of the audit chain head (SEAL-RULES R10).

A hash chain alone cannot show that its tail was cut off, or that someone rebuilt
the whole chain with recomputed hashes. A checkpoint signs (sequence, head hash,
time, host) with the *audit key* - an ECDSA P-256 key file kept in the state
directory (``audit/audit-key.pem``, 0600, created at first start), deliberately not
a seal key: a checkpoint must never look like a sealed document, and checkpoints
must go on while every seal token is out. The latest checkpoint is also written to
``audit/latest-checkpoint.json`` next to the key, so deleting checkpoint rows from
the database does not hide a truncation from the running daemon.

Verification checks the signature with the certificate we hold (never the one
stored beside the checkpoint, which an attacker could swap), then requires the
checkpointed record to exist with exactly that hash.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from seald.domain.audit import GENESIS_HASH, ChainVerification, format_time
from seald.domain.checkpoints import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    SignedCheckpoint,
    checkpoint_payload,
    signature_problem,
)
from seald.store.ledger import LedgerError, verify_ledger

AUDIT_DIR_NAME: Final = "audit"
KEY_FILE: Final = "audit-key.pem"
CERT_FILE: Final = "audit-cert.pem"
LATEST_FILE: Final = "latest-checkpoint.json"

# Extra columns for the audit_checkpoint table created by store/ledger.py.
_COLUMNS: Final = (
    ("host", "TEXT NOT NULL DEFAULT ''"),
    ("signature", "BLOB NOT NULL DEFAULT x''"),
    ("certificate_der", "BLOB NOT NULL DEFAULT x''"),
    ("timestamp_token", "BLOB NOT NULL DEFAULT x''"),
)


class AuditKey:
    """The audit signing key (ECDSA P-256) and its self-signed certificate."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> None:
        self._private_key = private_key
        self.certificate = certificate

    @property
    def certificate_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def sign(self, data: bytes) -> bytes:
        return self._private_key.sign(data, ec.ECDSA(hashes.SHA256()))

    @classmethod
    def load_or_create(cls, directory: Path, host: str, now: datetime | None = None) -> AuditKey:
        """Load ``directory/audit-key.pem`` + certificate, creating both at first start."""
        key_path, cert_path = directory / KEY_FILE, directory / CERT_FILE
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            if key_path.exists():
                key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
                if not isinstance(key, ec.EllipticCurvePrivateKey):
                    raise CheckpointError(
                        f"{key_path} is not an EC private key; move it away so that a new audit "
                        "key is created, and keep the old certificate to verify old checkpoints"
                    )
                certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
                return cls(key, certificate)
            key = ec.generate_private_key(ec.SECP256R1())
            certificate = _self_signed(key, host, now or datetime.now(UTC))
            _write_private(
                key_path,
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
            )
            _write_private(cert_path, certificate.public_bytes(serialization.Encoding.PEM))
            return cls(key, certificate)
        except (OSError, ValueError) as ex:
            raise CheckpointError(
                f"cannot load or create the audit key in {directory} ({type(ex).__name__}); "
                "check that the state directory is writable and the key files are intact",
                reason="audit_key_unusable",
            ) from ex


def _self_signed(key: ec.EllipticCurvePrivateKey, host: str, now: datetime) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"seald audit key ({host})"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "seald audit checkpoints"),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365 * 30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def ensure_schema(conn: sqlite3.Connection) -> None:
    """Add the signature columns to audit_checkpoint (created by the ledger schema)."""
    present = {row[1] for row in conn.execute("PRAGMA table_info(audit_checkpoint)")}
    for column, declaration in _COLUMNS:
        if column not in present:
            conn.execute(f"ALTER TABLE audit_checkpoint ADD COLUMN {column} {declaration}")


_SELECT: Final = (
    "SELECT sequence, record_hash, created_at, host, signature, certificate_der, timestamp_token "
    "FROM audit_checkpoint"
)


def _blob(value: object) -> bytes:
    return bytes(value) if isinstance(value, bytes | bytearray | memoryview) else b""


def _from_row(row: tuple[object, ...]) -> SignedCheckpoint:
    sequence, head_hash, created_at, host, signature, certificate_der, token = row
    return SignedCheckpoint(
        int(str(sequence)),
        str(head_hash),
        str(created_at),
        str(host),
        _blob(signature),
        _blob(certificate_der),
        _blob(token),
    )


def latest_stored_checkpoint(conn: sqlite3.Connection) -> SignedCheckpoint | None:
    try:
        row = conn.execute(f"{_SELECT} ORDER BY sequence DESC LIMIT 1").fetchone()
    except sqlite3.OperationalError as ex:
        if "no such" in str(ex):  # an old or foreign file without checkpoints
            return None
        raise
    return None if row is None else _from_row(row)


def create_checkpoint(conn: sqlite3.Connection, key: AuditKey, host: str, now: datetime) -> SignedCheckpoint:
    """Sign the current head and store it; inside the caller's write transaction.

    Idempotent per head: a second call without new records returns the stored one.
    """
    head = conn.execute(
        "SELECT sequence, record_hash FROM audit_log ORDER BY sequence DESC LIMIT 1"
    ).fetchone()
    sequence, head_hash = (0, GENESIS_HASH) if head is None else (int(head[0]), str(head[1]))
    existing = conn.execute(f"{_SELECT} WHERE sequence = ?", (sequence,)).fetchone()
    if existing is not None:
        return _from_row(existing)
    created_at = format_time(now)
    payload = checkpoint_payload(sequence, head_hash, created_at, host)
    checkpoint = SignedCheckpoint(
        sequence, head_hash, created_at, host, key.sign(payload), key.certificate_der
    )
    conn.execute(
        "INSERT INTO audit_checkpoint (sequence, record_hash, created_at, note, host, signature, "
        "certificate_der, timestamp_token) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            sequence,
            head_hash,
            created_at,
            "",
            host,
            checkpoint.signature,
            checkpoint.certificate_der,
            checkpoint.timestamp_token,
        ),
    )
    return checkpoint


def store_timestamp(conn: sqlite3.Connection, checkpoint: SignedCheckpoint) -> None:
    """Keep the RFC 3161 token of a stored checkpoint (it arrives after the commit)."""
    conn.execute(
        "UPDATE audit_checkpoint SET timestamp_token = ? WHERE sequence = ? AND signature = ?",
        (checkpoint.timestamp_token, checkpoint.sequence, checkpoint.signature),
    )


def export_latest(directory: Path, checkpoint: SignedCheckpoint) -> None:
    """Write the checkpoint beside the key (atomic), unless a later one is there already."""
    path = directory / LATEST_FILE
    current = read_exported(directory)
    if current is not None and current.sequence > checkpoint.sequence:
        return
    tmp = path.with_suffix(".tmp")
    tmp.write_text(checkpoint.to_json(), encoding="utf-8")
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_exported(directory: Path) -> SignedCheckpoint | None:
    path = directory / LATEST_FILE
    with contextlib.suppress(FileNotFoundError):
        return SignedCheckpoint.from_json(path.read_text(encoding="utf-8"))
    return None


def verify_with_checkpoints(
    conn: sqlite3.Connection,
    certificate: x509.Certificate | None,
    extra: SignedCheckpoint | None = None,
) -> tuple[ChainVerification, SignedCheckpoint | None]:
    """Verify the chain against the latest checkpoint (stored or ``extra``, whichever is later).

    ``certificate`` None: trust the certificate stored with the checkpoint (offline use
    without the appliance's certificate; the result says so in the caller's output).
    """
    try:
        stored = latest_stored_checkpoint(conn)
    except sqlite3.Error as ex:
        raise LedgerError(f"cannot read audit checkpoints ({ex}); check the database file") from ex
    candidates = [c for c in (stored, extra) if c is not None]
    latest = max(candidates, key=lambda c: c.sequence) if candidates else None
    if latest is None:
        return verify_ledger(conn), None
    try:
        trusted = certificate or x509.load_der_x509_certificate(latest.certificate_der)
    except ValueError:
        trusted = None
    problem = (
        signature_problem(latest, trusted)
        if trusted is not None
        else f"checkpoint at record {latest.sequence} carries no readable certificate"
    )
    if problem:
        bad = ChainVerification(False, 0, latest.sequence, problem, "", 0)
        return bad, latest
    if latest.sequence == 0:
        return verify_ledger(conn), latest
    return verify_ledger(conn, (latest.sequence, latest.head_hash)), latest


__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "SignedCheckpoint",
    "checkpoint_payload",
    "signature_problem",
]
