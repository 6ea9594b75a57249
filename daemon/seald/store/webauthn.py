"""SQLite tables for approvers' WebAuthn credentials (issue 18): enrolments (only the
code's SHA-256 is kept), credentials (public key, id, sign count, attestation format,
status) and the approval challenges seald issued and has not seen answered.

Functions take the connection of a store transaction (``Transaction.conn``) so that a
credential change, a used challenge and their audit records commit together.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from seald.domain.errors import NotFound
from seald.domain.webauthn import CredentialStatus, Enrolment, PendingChallenge, WebAuthnCredential

SCHEMA = """
CREATE TABLE IF NOT EXISTS webauthn_enrolments (
    enrolment_id TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    code_sha256 TEXT NOT NULL,
    started_by TEXT NOT NULL,
    started_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT
);
CREATE TABLE IF NOT EXISTS webauthn_credentials (
    credential_id TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    status TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS webauthn_credentials_principal ON webauthn_credentials(principal);
CREATE TABLE IF NOT EXISTS webauthn_challenges (
    challenge_sha256 TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    principal TEXT NOT NULL,
    credential_id TEXT NOT NULL,
    statement BLOB NOT NULL,
    issued_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
"""


def create_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


# -- enrolments ----------------------------------------------------------------------------------
def save_enrolment(conn: sqlite3.Connection, e: Enrolment) -> None:
    conn.execute(
        "INSERT INTO webauthn_enrolments(enrolment_id, principal, code_sha256, started_by, started_at,"
        " expires_at, used_at) VALUES (?,?,?,?,?,?,?) ON CONFLICT(enrolment_id) DO UPDATE SET"
        " used_at=excluded.used_at",
        (
            e.enrolment_id,
            e.principal,
            e.code_sha256,
            e.started_by,
            e.started_at.isoformat(),
            e.expires_at.isoformat(),
            _iso(e.used_at),
        ),
    )


def get_enrolment(conn: sqlite3.Connection, enrolment_id: str) -> Enrolment:
    row = conn.execute(
        "SELECT enrolment_id, principal, code_sha256, started_by, started_at, expires_at, used_at"
        " FROM webauthn_enrolments WHERE enrolment_id = ?",
        (enrolment_id,),
    ).fetchone()
    if row is None:
        raise NotFound(
            f"no enrolment {enrolment_id!r}; use the enrolment id and code the admin was shown",
            reason="enrolment_not_found",
        )
    return Enrolment(
        enrolment_id=row[0],
        principal=row[1],
        code_sha256=row[2],
        started_by=row[3],
        started_at=datetime.fromisoformat(row[4]),
        expires_at=datetime.fromisoformat(row[5]),
        used_at=_when(row[6]),
    )


# -- credentials ---------------------------------------------------------------------------------
def _credential_body(c: WebAuthnCredential) -> str:
    return json.dumps(
        {
            "credential_id": c.credential_id,
            "principal": c.principal,
            "public_key_b64": c.public_key_b64,
            "sign_count": c.sign_count,
            "attestation_format": c.attestation_format,
            "aaguid": c.aaguid,
            "name": c.name,
            "status": c.status.value,
            "enrolment_id": c.enrolment_id,
            "enrolled_by": c.enrolled_by,
            "registered_at": c.registered_at.isoformat(),
            "approved_by": c.approved_by,
            "approved_at": _iso(c.approved_at),
            "revoked_by": c.revoked_by,
            "revoked_at": _iso(c.revoked_at),
            "last_used_at": _iso(c.last_used_at),
        },
        ensure_ascii=False,
        sort_keys=True,
    )


def _credential(body: str) -> WebAuthnCredential:
    raw: dict[str, Any] = json.loads(body)
    return WebAuthnCredential(
        credential_id=raw["credential_id"],
        principal=raw["principal"],
        public_key_b64=raw["public_key_b64"],
        sign_count=raw["sign_count"],
        attestation_format=raw["attestation_format"],
        aaguid=raw["aaguid"],
        name=raw["name"],
        status=CredentialStatus(raw["status"]),
        enrolment_id=raw["enrolment_id"],
        enrolled_by=raw["enrolled_by"],
        registered_at=datetime.fromisoformat(raw["registered_at"]),
        approved_by=raw["approved_by"],
        approved_at=_when(raw["approved_at"]),
        revoked_by=raw["revoked_by"],
        revoked_at=_when(raw["revoked_at"]),
        last_used_at=_when(raw["last_used_at"]),
    )


def save_credential(conn: sqlite3.Connection, c: WebAuthnCredential) -> None:
    conn.execute(
        "INSERT INTO webauthn_credentials(credential_id, principal, status, body) VALUES (?,?,?,?)"
        " ON CONFLICT(credential_id) DO UPDATE SET status=excluded.status, body=excluded.body",
        (c.credential_id, c.principal, c.status.value, _credential_body(c)),
    )


def find_credential(conn: sqlite3.Connection, credential_id: str) -> WebAuthnCredential | None:
    row = conn.execute(
        "SELECT body FROM webauthn_credentials WHERE credential_id = ?", (credential_id,)
    ).fetchone()
    return _credential(row[0]) if row else None


def list_credentials(conn: sqlite3.Connection, principal: str = "") -> list[WebAuthnCredential]:
    if principal:
        rows = conn.execute(
            "SELECT body FROM webauthn_credentials WHERE principal = ? ORDER BY rowid", (principal,)
        )
    else:
        rows = conn.execute("SELECT body FROM webauthn_credentials ORDER BY principal, rowid")
    return [_credential(r[0]) for r in rows]


# -- approval challenges -------------------------------------------------------------------------
def save_challenge(conn: sqlite3.Connection, challenge_sha256: str, p: PendingChallenge) -> None:
    conn.execute(
        "INSERT INTO webauthn_challenges(challenge_sha256, request_id, principal, credential_id,"
        " statement, issued_at, expires_at) VALUES (?,?,?,?,?,?,?)",
        (
            challenge_sha256,
            p.request_id,
            p.principal,
            p.credential_id,
            p.statement,
            p.issued_at.isoformat(),
            p.expires_at.isoformat(),
        ),
    )


def take_challenge(conn: sqlite3.Connection, challenge_sha256: str) -> PendingChallenge | None:
    """The pending challenge, deleted in the same transaction: answerable once."""
    row = conn.execute(
        "SELECT request_id, principal, credential_id, statement, issued_at, expires_at"
        " FROM webauthn_challenges WHERE challenge_sha256 = ?",
        (challenge_sha256,),
    ).fetchone()
    if row is None:
        return None
    conn.execute("DELETE FROM webauthn_challenges WHERE challenge_sha256 = ?", (challenge_sha256,))
    return PendingChallenge(
        statement=bytes(row[3]),
        request_id=row[0],
        principal=row[1],
        credential_id=row[2],
        issued_at=datetime.fromisoformat(row[4]),
        expires_at=datetime.fromisoformat(row[5]),
    )


def drop_expired_challenges(conn: sqlite3.Connection, now: datetime) -> int:
    return conn.execute("DELETE FROM webauthn_challenges WHERE expires_at <= ?", (now.isoformat(),)).rowcount
