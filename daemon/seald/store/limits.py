"""Store reads behind the per-client limits (issue 8)."""

from __future__ import annotations

import sqlite3

from seald.domain.model import RequestState

OPEN_STATES = (RequestState.PENDING, RequestState.APPROVED, RequestState.SIGNING)


def count_open_requests(conn: sqlite3.Connection, requester: str) -> int:
    """Requests of ``requester`` not yet final (pending, approved or signing)."""
    marks = ",".join("?" * len(OPEN_STATES))
    row = conn.execute(
        f"SELECT COUNT(*) FROM requests WHERE requester = ? AND state IN ({marks})",  # noqa: S608
        (requester, *(s.value for s in OPEN_STATES)),
    ).fetchone()
    return int(row[0])
