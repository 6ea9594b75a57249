"""SQLite part of the seal registry: lifecycle state, history and two-admin proposals.

The seals themselves are defined in the config; these tables hold what changes at
run time (R02). Every function works inside the caller's transaction (the store's
one writer thread), so a status change, its history row, the voided requests and
the audit record commit together — and a suspension survives a restart.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Final

from seald.domain.impressions import Impression
from seald.domain.model import SealStatus
from seald.domain.seals import Proposal, SealAction, SealState

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS seal_state (
    seal_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    status_reason TEXT NOT NULL,
    since TEXT,
    display_name TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS seal_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seal_id TEXT NOT NULL,
    time TEXT NOT NULL,
    action TEXT NOT NULL,
    principal TEXT NOT NULL,
    from_status TEXT NOT NULL,
    to_status TEXT NOT NULL,
    comment TEXT NOT NULL,
    details_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS seal_history_seal ON seal_history(seal_id, id);
CREATE TABLE IF NOT EXISTS seal_proposal (
    proposal_id TEXT PRIMARY KEY,
    seal_id TEXT NOT NULL,
    action TEXT NOT NULL,
    proposer TEXT NOT NULL,
    comment TEXT NOT NULL,
    created_at TEXT NOT NULL,
    confirmed_by TEXT NOT NULL DEFAULT ''
);
-- Every certificate a seal was given through the API (R02 create/change), oldest
-- first; the newest is the registered one and overrides the config's file.
CREATE TABLE IF NOT EXISTS seal_certificate (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seal_id TEXT NOT NULL,
    time TEXT NOT NULL,
    principal TEXT NOT NULL,
    action TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    der BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS seal_certificate_seal ON seal_certificate(seal_id, id);
"""


def create_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)
    create_impression_schema(conn)


def get_state(conn: sqlite3.Connection, seal_id: str) -> SealState:
    row = conn.execute(
        "SELECT status, status_reason, since, display_name FROM seal_state WHERE seal_id = ?",
        (seal_id,),
    ).fetchone()
    if row is None:
        return SealState(seal_id=seal_id)
    return SealState(
        seal_id=seal_id,
        status=SealStatus(row[0]),
        status_reason=row[1],
        since=datetime.fromisoformat(row[2]) if row[2] else None,
        display_name=row[3],
    )


def all_states(conn: sqlite3.Connection) -> dict[str, SealState]:
    ids = [r[0] for r in conn.execute("SELECT seal_id FROM seal_state")]
    return {seal_id: get_state(conn, seal_id) for seal_id in ids}


def save_state(conn: sqlite3.Connection, state: SealState) -> None:
    conn.execute(
        "INSERT INTO seal_state(seal_id, status, status_reason, since, display_name)"
        " VALUES (?,?,?,?,?) ON CONFLICT(seal_id) DO UPDATE SET status=excluded.status,"
        " status_reason=excluded.status_reason, since=excluded.since,"
        " display_name=excluded.display_name",
        (
            state.seal_id,
            state.status.value,
            state.status_reason,
            state.since.isoformat() if state.since else None,
            state.display_name,
        ),
    )


def add_history(
    conn: sqlite3.Connection,
    *,
    seal_id: str,
    time: datetime,
    action: str,
    principal: str,
    from_status: SealStatus,
    to_status: SealStatus,
    comment: str,
    details: dict[str, str | int] | None = None,
) -> None:
    conn.execute(
        "INSERT INTO seal_history(seal_id, time, action, principal, from_status, to_status,"
        " comment, details_json) VALUES (?,?,?,?,?,?,?,?)",
        (
            seal_id,
            time.isoformat(),
            action,
            principal,
            from_status.value,
            to_status.value,
            comment,
            json.dumps(details or {}, sort_keys=True, ensure_ascii=False),
        ),
    )


def history(conn: sqlite3.Connection, seal_id: str) -> list[tuple[str, str, str, str, str]]:
    """(time, action, principal, from_status, to_status), oldest first."""
    rows = conn.execute(
        "SELECT time, action, principal, from_status, to_status FROM seal_history"
        " WHERE seal_id = ? ORDER BY id",
        (seal_id,),
    )
    return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def get_proposal(conn: sqlite3.Connection, proposal_id: str) -> Proposal | None:
    """An open (unconfirmed) proposal; a confirmed id is never reused."""
    row = conn.execute(
        "SELECT seal_id, action, proposer, comment, created_at, confirmed_by FROM seal_proposal"
        " WHERE proposal_id = ?",
        (proposal_id,),
    ).fetchone()
    if row is None:
        return None
    return Proposal(
        proposal_id=proposal_id,
        seal_id=row[0],
        action=SealAction(row[1]),
        proposer=row[2],
        comment=row[3],
        created_at=datetime.fromisoformat(row[4]),
    )


def proposal_confirmed(conn: sqlite3.Connection, proposal_id: str) -> bool:
    row = conn.execute(
        "SELECT confirmed_by FROM seal_proposal WHERE proposal_id = ?", (proposal_id,)
    ).fetchone()
    return bool(row and row[0])


def save_proposal(conn: sqlite3.Connection, proposal: Proposal) -> None:
    conn.execute(
        "INSERT INTO seal_proposal(proposal_id, seal_id, action, proposer, comment, created_at)"
        " VALUES (?,?,?,?,?,?)",
        (
            proposal.proposal_id,
            proposal.seal_id,
            proposal.action.value,
            proposal.proposer,
            proposal.comment,
            proposal.created_at.isoformat(),
        ),
    )


def confirm_proposal(conn: sqlite3.Connection, proposal_id: str, admin: str) -> None:
    conn.execute("UPDATE seal_proposal SET confirmed_by = ? WHERE proposal_id = ?", (admin, proposal_id))


def add_certificate(
    conn: sqlite3.Connection,
    *,
    seal_id: str,
    time: datetime,
    principal: str,
    action: str,
    sha256: str,
    der: bytes,
) -> None:
    conn.execute(
        "INSERT INTO seal_certificate(seal_id, time, principal, action, sha256, der)"
        " VALUES (?,?,?,?,?,?)",
        (seal_id, time.isoformat(), principal, action, sha256, der),
    )


def current_certificates(conn: sqlite3.Connection) -> dict[str, bytes]:
    """The newest imported certificate of every seal that has one."""
    rows = conn.execute(
        "SELECT seal_id, der FROM seal_certificate WHERE id IN"
        " (SELECT MAX(id) FROM seal_certificate GROUP BY seal_id)"
    )
    return {r[0]: bytes(r[1]) for r in rows}


def certificate_history(conn: sqlite3.Connection, seal_id: str) -> list[tuple[str, str, str, str]]:
    """(time, action, principal, sha256) of every imported certificate, oldest first."""
    rows = conn.execute(
        "SELECT time, action, principal, sha256 FROM seal_certificate WHERE seal_id = ? ORDER BY id",
        (seal_id,),
    )
    return [(r[0], r[1], r[2], r[3]) for r in rows]


def has_certificate(conn: sqlite3.Connection, seal_id: str) -> bool:
    """Whether any certificate was imported for the seal through the API."""
    row = conn.execute("SELECT 1 FROM seal_certificate WHERE seal_id = ? LIMIT 1", (seal_id,)).fetchone()
    return row is not None


def certificates_der(conn: sqlite3.Connection, seal_id: str) -> list[bytes]:
    """Every certificate imported for the seal, newest first."""
    rows = conn.execute(
        "SELECT der FROM seal_certificate WHERE seal_id = ? ORDER BY id DESC", (seal_id,)
    ).fetchall()
    return [bytes(row[0]) for row in rows]


# -- issue 16: the registered impression (印模) -------------------------------------------------

IMPRESSION_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS seal_impression (
    impression_id TEXT PRIMARY KEY,
    seal_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    media_type TEXT NOT NULL,
    seal_code TEXT NOT NULL,
    width_mm REAL NOT NULL,
    height_mm REAL NOT NULL,
    dpi REAL NOT NULL,
    proposed_by TEXT NOT NULL,
    proposed_at TEXT NOT NULL,
    comment TEXT NOT NULL,
    approved_by TEXT NOT NULL DEFAULT '',
    approved_at TEXT,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS seal_impression_seal ON seal_impression(seal_id, approved_at);
"""



def create_impression_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(IMPRESSION_SCHEMA)


def _impression(row: tuple[object, ...]) -> Impression:
    return Impression(
        impression_id=str(row[0]),
        seal_id=str(row[1]),
        sha256=str(row[2]),
        media_type=str(row[3]),
        seal_code=str(row[4]),
        width_mm=float(str(row[5])),
        height_mm=float(str(row[6])),
        dpi=float(str(row[7])),
        proposed_by=str(row[8]),
        proposed_at=datetime.fromisoformat(str(row[9])),
        comment=str(row[10]),
        approved_by=str(row[11]),
        approved_at=datetime.fromisoformat(str(row[12])) if row[12] else None,
    )


def add_impression(conn: sqlite3.Connection, impression: Impression, data: bytes) -> None:
    """A proposed impression with its bytes (approved later by ``approve_impression``)."""
    conn.execute(
        "INSERT INTO seal_impression(impression_id, seal_id, sha256, media_type, seal_code,"
        " width_mm, height_mm, dpi, proposed_by, proposed_at, comment, approved_by, approved_at,"
        " data) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            impression.impression_id,
            impression.seal_id,
            impression.sha256,
            impression.media_type,
            impression.seal_code,
            impression.width_mm,
            impression.height_mm,
            impression.dpi,
            impression.proposed_by,
            impression.proposed_at.isoformat(),
            impression.comment,
            impression.approved_by,
            impression.approved_at.isoformat() if impression.approved_at else None,
            data,
        ),
    )


def approve_impression(conn: sqlite3.Connection, impression: Impression) -> None:
    assert impression.approved_at is not None
    conn.execute(
        "UPDATE seal_impression SET approved_by = ?, approved_at = ? WHERE impression_id = ?",
        (impression.approved_by, impression.approved_at.isoformat(), impression.impression_id),
    )


def get_impression(conn: sqlite3.Connection, impression_id: str) -> Impression | None:
    row = conn.execute(
"SELECT impression_id, seal_id, sha256, media_type, seal_code, width_mm, height_mm, dpi,"
        " proposed_by, proposed_at, comment, approved_by, approved_at FROM seal_impression"
        " WHERE impression_id = ?",
        (impression_id,),
    ).fetchone()
    return _impression(row) if row else None


def impression_data(conn: sqlite3.Connection, impression_id: str) -> bytes:
    row = conn.execute(
        "SELECT data FROM seal_impression WHERE impression_id = ?", (impression_id,)
    ).fetchone()
    return bytes(row[0]) if row else b""


def current_impression(conn: sqlite3.Connection, seal_id: str) -> Impression | None:
    """The seal's registered impression: the one approved last."""
    row = conn.execute(
"SELECT impression_id, seal_id, sha256, media_type, seal_code, width_mm, height_mm, dpi,"
        " proposed_by, proposed_at, comment, approved_by, approved_at FROM seal_impression"
        " WHERE seal_id = ? AND approved_by != ''"
        " ORDER BY approved_at DESC, rowid DESC LIMIT 1",
        (seal_id,),
    ).fetchone()
    return _impression(row) if row else None


def impression_by_sha256(
    conn: sqlite3.Connection, seal_id: str, sha256: str
) -> tuple[Impression, bytes] | None:
    """An approved impression of the seal with that SHA-256 (a request approved with an
    earlier face is sealed with it), with its bytes."""
    row = conn.execute(
"SELECT impression_id, seal_id, sha256, media_type, seal_code, width_mm, height_mm, dpi,"
        " proposed_by, proposed_at, comment, approved_by, approved_at FROM seal_impression"
        " WHERE seal_id = ? AND sha256 = ?"
        " AND approved_by != '' ORDER BY approved_at DESC LIMIT 1",
        (seal_id, sha256),
    ).fetchone()
    if row is None:
        return None
    found = _impression(row)
    return found, impression_data(conn, found.impression_id)


def approved_impressions(conn: sqlite3.Connection, seal_id: str) -> list[Impression]:
    """Every impression the seal had, oldest first (the registry history of its face)."""
    rows = conn.execute(
"SELECT impression_id, seal_id, sha256, media_type, seal_code, width_mm, height_mm, dpi,"
        " proposed_by, proposed_at, comment, approved_by, approved_at FROM seal_impression"
        " WHERE seal_id = ? AND approved_by != ''"
        " ORDER BY approved_at, rowid",
        (seal_id,),
    ).fetchall()
    return [_impression(r) for r in rows]


def open_impression_proposals(conn: sqlite3.Connection, seal_id: str) -> list[Impression]:
    """Impressions proposed for the seal and not approved, newest first."""
    rows = conn.execute(
"SELECT impression_id, seal_id, sha256, media_type, seal_code, width_mm, height_mm, dpi,"
        " proposed_by, proposed_at, comment, approved_by, approved_at FROM seal_impression"
        " WHERE seal_id = ? AND approved_by = ''"
        " ORDER BY proposed_at DESC, rowid DESC",
        (seal_id,),
    ).fetchall()
    return [_impression(r) for r in rows]


def current_impressions(conn: sqlite3.Connection) -> dict[str, tuple[Impression, bytes]]:
    """Every seal's registered impression with its bytes (loaded at start)."""
    rows = conn.execute("SELECT DISTINCT seal_id FROM seal_impression WHERE approved_by != ''")
    seal_ids = [r[0] for r in rows]
    out: dict[str, tuple[Impression, bytes]] = {}
    for seal_id in seal_ids:
        found = current_impression(conn, seal_id)
        if found is not None:
            out[seal_id] = (found, impression_data(conn, found.impression_id))
    return out
