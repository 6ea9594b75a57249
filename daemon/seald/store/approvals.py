"""Facts about approval statements for R06's replay rule (issue 14), read from the ledger.

`request.approved` records carry the statement's SHA-256 (details ``statement_sha256``) and
`request.approval_withdrawn` records the time of a withdrawal, so the ledger already holds
both facts; a partial expression index keeps the hash look-up off a full scan. The rule
itself is pure: `lifecycle.check_statement_unused`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime

from seald.domain.audit import parse_time

SCHEMA = (
    "CREATE INDEX IF NOT EXISTS audit_log_statement_sha256 ON audit_log "
    "(json_extract(details_json, '$.statement_sha256')) WHERE event = 'request.approved'"
)


@dataclass(frozen=True)
class StatementFacts:
    """recorded_on: the request a statement with this hash was already counted on (or "");
    last_withdrawal: when this approver last withdrew an approval of this request."""

    recorded_on: str
    last_withdrawal: datetime | None


def create_schema(conn: sqlite3.Connection) -> None:
    conn.execute(SCHEMA)


def statement_facts(
    conn: sqlite3.Connection, *, request_id: str, approver: str, statement_sha256: str
) -> StatementFacts:
    seen = conn.execute(
        "SELECT request_id FROM audit_log WHERE event = 'request.approved' "
        "AND json_extract(details_json, '$.statement_sha256') = ? LIMIT 1",
        (statement_sha256,),
    ).fetchone()
    withdrawn = conn.execute(
        "SELECT MAX(time) FROM audit_log WHERE request_id = ? "
        "AND event = 'request.approval_withdrawn' AND principal = ?",
        (request_id, approver),
    ).fetchone()
    return StatementFacts(
        recorded_on=str(seen[0]) if seen else "",
        last_withdrawal=parse_time(withdrawn[0]) if withdrawn and withdrawn[0] else None,
    )
