"""Approver delegations (issue 17): one row per delegation, the domain value as JSON."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

from seald.domain.delegation import Delegation, DelegationState
from seald.domain.errors import NotFound

SCHEMA = """
CREATE TABLE IF NOT EXISTS delegations (
    delegation_id TEXT PRIMARY KEY,
    delegator TEXT NOT NULL,
    delegate TEXT NOT NULL,
    seal_id TEXT NOT NULL,
    state TEXT NOT NULL,
    valid_until TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS delegations_delegate ON delegations(delegate, state);
"""


def create_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)


def _to_json(d: Delegation) -> str:
    return json.dumps(
        {
            "delegation_id": d.delegation_id,
            "delegator": d.delegator,
            "delegate": d.delegate,
            "seal_id": d.seal_id,
            "categories": sorted(d.categories),
            "valid_from": d.valid_from.isoformat(),
            "valid_until": d.valid_until.isoformat(),
            "state": d.state.value,
            "proposed_by": d.proposed_by,
            "created_at": d.created_at.isoformat(),
            "approved_by": d.approved_by,
            "ended_at": d.ended_at.isoformat() if d.ended_at else None,
            "ended_by": d.ended_by,
            "reason": d.reason,
        },
        ensure_ascii=False,
        sort_keys=True,
    )


def _from_json(text: str) -> Delegation:
    raw = json.loads(text)
    return Delegation(
        delegation_id=raw["delegation_id"],
        delegator=raw["delegator"],
        delegate=raw["delegate"],
        seal_id=raw["seal_id"],
        categories=frozenset(raw["categories"]),
        valid_from=datetime.fromisoformat(raw["valid_from"]),
        valid_until=datetime.fromisoformat(raw["valid_until"]),
        state=DelegationState(raw["state"]),
        proposed_by=raw["proposed_by"],
        created_at=datetime.fromisoformat(raw["created_at"]),
        approved_by=raw["approved_by"],
        ended_at=datetime.fromisoformat(raw["ended_at"]) if raw["ended_at"] else None,
        ended_by=raw["ended_by"],
        reason=raw["reason"],
    )


def save(conn: sqlite3.Connection, d: Delegation) -> None:
    conn.execute(
        "INSERT INTO delegations(delegation_id, delegator, delegate, seal_id, state, valid_until, body)"
        " VALUES (?,?,?,?,?,?,?) ON CONFLICT(delegation_id) DO UPDATE SET state=excluded.state,"
        " body=excluded.body",
        (
            d.delegation_id,
            d.delegator,
            d.delegate,
            d.seal_id,
            d.state.value,
            d.valid_until.isoformat(),
            _to_json(d),
        ),
    )


def get(conn: sqlite3.Connection, delegation_id: str) -> Delegation:
    row = conn.execute("SELECT body FROM delegations WHERE delegation_id = ?", (delegation_id,)).fetchone()
    if row is None:
        raise NotFound(
            f"no delegation {delegation_id!r}; sealctl delegation list shows them",
            reason="delegation_not_found",
        )
    return _from_json(row[0])


def all_delegations(conn: sqlite3.Connection, *, live_only: bool = False) -> list[Delegation]:
    sql = "SELECT body FROM delegations"
    if live_only:
        sql += " WHERE state IN ('proposed', 'active')"
    return [_from_json(r[0]) for r in conn.execute(sql + " ORDER BY rowid")]
