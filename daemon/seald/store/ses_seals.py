"""SQLite part of the GB/T 38540 ``SES_Seal`` registry (issue 19): every version of a seal's
maker-signed seal structure, newest last.

A ``gbt38540`` seal gets its ``SES_Seal`` when its certificate is registered, and a new
version whenever its face or validity changes (registry/ses_seal.py); the signer embeds the
current one in every signature. Destroying the seal marks its versions destroyed (the rows
stay: verification of old documents and the audit trail still name them). Functions run
inside the caller's transaction, beside the history row and audit record of the change.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS ses_seal (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seal_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    time TEXT NOT NULL,
    reason TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    valid_start TEXT NOT NULL,
    valid_end TEXT NOT NULL,
    der BLOB NOT NULL,
    destroyed_at TEXT NOT NULL DEFAULT '',
    UNIQUE (seal_id, version)
);
"""


@dataclass(frozen=True)
class StoredSesSeal:
    seal_id: str
    version: int
    time: datetime
    reason: str
    sha256: str
    valid_start: datetime
    valid_end: datetime
    der: bytes
    destroyed_at: str  # "" while the seal exists


def create_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)


def _row(r: Any) -> StoredSesSeal:
    return StoredSesSeal(
        seal_id=str(r[0]),
        version=int(r[1]),
        time=datetime.fromisoformat(str(r[2])),
        reason=str(r[3]),
        sha256=str(r[4]),
        valid_start=datetime.fromisoformat(str(r[5])),
        valid_end=datetime.fromisoformat(str(r[6])),
        der=bytes(r[7]),
        destroyed_at=str(r[8]),
    )


def add(
    conn: sqlite3.Connection,
    *,
    seal_id: str,
    time: datetime,
    reason: str,
    sha256: str,
    valid_start: datetime,
    valid_end: datetime,
    der: bytes,
) -> int:
    """Store a new version (the previous one's number + 1) and return its number."""
    row = conn.execute("SELECT MAX(version) FROM ses_seal WHERE seal_id = ?", (seal_id,)).fetchone()
    version = int(row[0] or 0) + 1
    conn.execute(
        "INSERT INTO ses_seal(seal_id, version, time, reason, sha256, valid_start, valid_end, der)"
        " VALUES (?,?,?,?,?,?,?,?)",
        (
            seal_id,
            version,
            time.isoformat(),
            reason,
            sha256,
            valid_start.isoformat(),
            valid_end.isoformat(),
            der,
        ),
    )
    return version


def current(conn: sqlite3.Connection, seal_id: str) -> StoredSesSeal | None:
    """The newest version of the seal's SES_Seal (destroyed or not), or None."""
    r = conn.execute(
        "SELECT seal_id, version, time, reason, sha256, valid_start, valid_end, der, destroyed_at"
        " FROM ses_seal WHERE seal_id = ? ORDER BY version DESC LIMIT 1",
        (seal_id,),
    ).fetchone()
    return _row(r) if r is not None else None


def versions(conn: sqlite3.Connection, seal_id: str) -> list[StoredSesSeal]:
    """Every version, oldest first."""
    rows = conn.execute(
        "SELECT seal_id, version, time, reason, sha256, valid_start, valid_end, der, destroyed_at"
        " FROM ses_seal WHERE seal_id = ? ORDER BY version",
        (seal_id,),
    )
    return [_row(r) for r in rows]


def mark_destroyed(conn: sqlite3.Connection, seal_id: str, time: datetime) -> int:
    """Destroy (R02 销毁): every version of the seal is marked; returns how many."""
    cur = conn.execute(
        "UPDATE ses_seal SET destroyed_at = ? WHERE seal_id = ? AND destroyed_at = ''",
        (time.isoformat(), seal_id),
    )
    return int(cur.rowcount)
