"""SQLite tables for custody (R07-R09): PIN-changed marks, the custody record, custody changes,
and the last night a same-day-return alert was raised per seal (one alert per night, R08).

All functions take the connection of a store transaction (``Transaction.conn``) so a
custody change and its audit record commit together.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from seald.domain.custody import Custody, CustodyChange, CustodyChangeKind
from seald.domain.errors import NotFound

SCHEMA = """
CREATE TABLE IF NOT EXISTS token_pin_changes (
    seal_id TEXT NOT NULL,
    token_serial TEXT NOT NULL,
    changed_at TEXT NOT NULL,
    changed_by TEXT NOT NULL,
    PRIMARY KEY (seal_id, token_serial)
);
CREATE TABLE IF NOT EXISTS token_pin_unlocks (
    seal_id TEXT NOT NULL,
    token_serial TEXT NOT NULL,
    principal TEXT NOT NULL,
    unlocked_at TEXT NOT NULL,
    PRIMARY KEY (seal_id, token_serial, principal)
);
CREATE TABLE IF NOT EXISTS custody (
    seal_id TEXT PRIMARY KEY,
    custodian TEXT NOT NULL,
    delegate TEXT NOT NULL,
    delegation_start TEXT,
    delegation_end TEXT
);
CREATE TABLE IF NOT EXISTS custody_changes (
    change_id TEXT PRIMARY KEY,
    seal_id TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS token_return_alerts (
    seal_id TEXT PRIMARY KEY,
    local_day TEXT NOT NULL,
    alerted_at TEXT NOT NULL
);
"""


def create_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)


# -- R07: initial PIN changed -----------------------------------------------------------------------
def mark_pin_changed(
    conn: sqlite3.Connection, seal_id: str, token_serial: str, when: datetime, by: str
) -> None:
    conn.execute(
        "INSERT INTO token_pin_changes(seal_id, token_serial, changed_at, changed_by) VALUES (?,?,?,?)"
        " ON CONFLICT(seal_id, token_serial) DO UPDATE SET changed_at=excluded.changed_at,"
        " changed_by=excluded.changed_by",
        (seal_id, token_serial, when.isoformat(), by),
    )


    # Issue 14 (R07 for each holder): a new PIN is known to its setter only, so far.
    conn.execute(
        "DELETE FROM token_pin_unlocks WHERE seal_id = ? AND token_serial = ?", (seal_id, token_serial)
    )


def pin_setters(conn: sqlite3.Connection) -> dict[tuple[str, str], str]:
    """(seal, token serial) -> who set the token's current PIN."""
    rows = conn.execute("SELECT seal_id, token_serial, changed_by FROM token_pin_changes")
    return {(r[0], r[1]): r[2] for r in rows}


def mark_unlocked(
    conn: sqlite3.Connection, seal_id: str, token_serial: str, principal: str, when: datetime
) -> None:
    """``principal`` unlocked the token with its current PIN (so knows that PIN)."""
    conn.execute(
        "INSERT INTO token_pin_unlocks(seal_id, token_serial, principal, unlocked_at) VALUES (?,?,?,?)"
        " ON CONFLICT(seal_id, token_serial, principal) DO UPDATE SET unlocked_at=excluded.unlocked_at",
        (seal_id, token_serial, principal, when.isoformat()),
    )


def pin_unlockers(conn: sqlite3.Connection) -> dict[tuple[str, str], set[str]]:
    """(seal, token serial) -> who unlocked it since its PIN was last set."""
    found: dict[tuple[str, str], set[str]] = {}
    for seal_id, serial, principal in conn.execute(
        "SELECT seal_id, token_serial, principal FROM token_pin_unlocks"
    ):
        found.setdefault((seal_id, serial), set()).add(principal)
    return found


# -- R08: same-day return alerts -----------------------------------------------------------------
def mark_return_alerted(conn: sqlite3.Connection, seal_id: str, local_day: str, when: datetime) -> None:
    """The seal's business day (its own zone) whose not-returned alert has been raised."""
    conn.execute(
        "INSERT INTO token_return_alerts(seal_id, local_day, alerted_at) VALUES (?,?,?)"
        " ON CONFLICT(seal_id) DO UPDATE SET local_day=excluded.local_day, alerted_at=excluded.alerted_at",
        (seal_id, local_day, when.isoformat()),
    )


def return_alerted_days(conn: sqlite3.Connection) -> dict[str, str]:
    return {r[0]: r[1] for r in conn.execute("SELECT seal_id, local_day FROM token_return_alerts")}


# -- R09: custody ---------------------------------------------------------------------------------
def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def get_custody(conn: sqlite3.Connection, seal_id: str) -> Custody | None:
    row = conn.execute(
        "SELECT custodian, delegate, delegation_start, delegation_end FROM custody WHERE seal_id = ?",
        (seal_id,),
    ).fetchone()
    if row is None:
        return None
    return Custody(seal_id, row[0], row[1], _when(row[2]), _when(row[3]))


def save_custody(conn: sqlite3.Connection, custody: Custody) -> None:
    conn.execute(
        "INSERT INTO custody(seal_id, custodian, delegate, delegation_start, delegation_end)"
        " VALUES (?,?,?,?,?) ON CONFLICT(seal_id) DO UPDATE SET custodian=excluded.custodian,"
        " delegate=excluded.delegate, delegation_start=excluded.delegation_start,"
        " delegation_end=excluded.delegation_end",
        (
            custody.seal_id,
            custody.custodian,
            custody.delegate,
            _iso(custody.delegation_start),
            _iso(custody.delegation_end),
        ),
    )


def save_change(conn: sqlite3.Connection, change: CustodyChange) -> None:
    body = json.dumps(
        {
            "change_id": change.change_id,
            "seal_id": change.seal_id,
            "kind": change.kind.value,
            "to_principal": change.to_principal,
            "proposed_by": change.proposed_by,
            "proposed_at": change.proposed_at.isoformat(),
            "comment": change.comment,
            "window_start": _iso(change.window_start),
            "window_end": _iso(change.window_end),
            "approvals": list(change.approvals),
            "in_effect": change.in_effect,
        },
        ensure_ascii=False,
        sort_keys=True,
    )
    conn.execute(
        "INSERT INTO custody_changes(change_id, seal_id, body) VALUES (?,?,?)"
        " ON CONFLICT(change_id) DO UPDATE SET body=excluded.body",
        (change.change_id, change.seal_id, body),
    )


def get_change(conn: sqlite3.Connection, change_id: str) -> CustodyChange:
    row = conn.execute("SELECT body FROM custody_changes WHERE change_id = ?", (change_id,)).fetchone()
    if row is None:
        raise NotFound(
            f"no custody change {change_id!r}; check the id returned by ProposeCustodyChange",
            reason="custody_change_not_found",
        )
    raw = json.loads(row[0])
    return CustodyChange(
        change_id=raw["change_id"],
        seal_id=raw["seal_id"],
        kind=CustodyChangeKind(raw["kind"]),
        to_principal=raw["to_principal"],
        proposed_by=raw["proposed_by"],
        proposed_at=datetime.fromisoformat(raw["proposed_at"]),
        comment=raw["comment"],
        window_start=_when(raw["window_start"]),
        window_end=_when(raw["window_end"]),
        approvals=tuple(raw["approvals"]),
        in_effect=raw["in_effect"],
    )


@dataclass(frozen=True)
class CustodyState:
    """What the custody guard loads at start (seald.tokens.custody_guard)."""

    pin_set_by: dict[tuple[str, str], str]  # who set each token's current PIN (R07)
    pin_unlockers: dict[tuple[str, str], set[str]]  # who unlocked with it since (R07, R09)
    alerted_days: dict[str, str]
    custody: dict[str, Custody]


def load_state(conn: sqlite3.Connection, seal_ids: Iterable[str]) -> CustodyState:
    create_schema(conn)
    custody = {}
    for seal_id in seal_ids:
        record = get_custody(conn, seal_id)
        if record is not None:
            custody[seal_id] = record
    return CustodyState(pin_setters(conn), pin_unlockers(conn), return_alerted_days(conn), custody)
