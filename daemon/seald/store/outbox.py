"""The durable outbox (issue 17): events written in the transaction of their state change,
one delivery row per (event, webhook), delivered in order per request.

``outbox`` holds the event (its payload bytes, exactly what is sent and signed);
``outbox_delivery`` its state per webhook: pending (with the attempt count and the
time of the next attempt), delivered, or dead (given up; ``replay`` re-queues it).
A request's next event is not due until every earlier one of the same request (for
that webhook) is delivered or dead, so a receiver sees each request's events in order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from seald.domain.outbox import DeliveryState, Event

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    seal_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    -- Events of one ordering key are delivered in order: the request, or the seal.
    order_key TEXT NOT NULL,
    created_at TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox_delivery (
    seq INTEGER NOT NULL REFERENCES outbox(seq),
    webhook TEXT NOT NULL,
    order_key TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    queued_at TEXT NOT NULL,
    next_attempt_at TEXT NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    delivered_at TEXT,
    PRIMARY KEY (seq, webhook)
);
CREATE INDEX IF NOT EXISTS outbox_delivery_pending
    ON outbox_delivery(webhook, state, order_key, seq);
"""


def create_schema(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)


def order_key(event: Event) -> str:
    return f"request:{event.request_id}" if event.request_id else f"seal:{event.seal_id}"


def enqueue(conn: sqlite3.Connection, event: Event, webhooks: Sequence[str]) -> None:
    """Inside the caller's transaction: the event and one pending delivery per webhook."""
    key = order_key(event)
    cur = conn.execute(
        "INSERT INTO outbox(event_id, type, seal_id, request_id, order_key, created_at, body)"
        " VALUES (?,?,?,?,?,?,?)",
        (
            event.event_id,
            event.type.value,
            event.seal_id,
            event.request_id,
            key,
            event.occurred_at.isoformat(),
            event.payload(),
        ),
    )
    seq = cur.lastrowid
    at = event.occurred_at.isoformat()
    conn.executemany(
        "INSERT INTO outbox_delivery(seq, webhook, order_key, state, queued_at, next_attempt_at)"
        " VALUES (?,?,?,?,?,?)",
        [(seq, w, key, DeliveryState.PENDING.value, at, at) for w in webhooks],
    )


@dataclass(frozen=True)
class Due:
    seq: int
    webhook: str
    event_id: str
    order_key: str
    attempts: int
    queued_at: datetime
    body: bytes


def due(conn: sqlite3.Connection, webhook: str, now: datetime, limit: int) -> list[Due]:
    """The head event of each ordering key, if its next attempt is due (oldest first)."""
    rows = conn.execute(
        "SELECT d.seq, d.webhook, o.event_id, d.order_key, d.attempts, d.queued_at, o.body"
        " FROM outbox_delivery d JOIN outbox o ON o.seq = d.seq"
        " WHERE d.webhook = ? AND d.state = 'pending' AND d.next_attempt_at <= ?"
        " AND NOT EXISTS (SELECT 1 FROM outbox_delivery e WHERE e.webhook = d.webhook"
        "   AND e.order_key = d.order_key AND e.state = 'pending' AND e.seq < d.seq)"
        " ORDER BY d.seq LIMIT ?",
        (webhook, now.isoformat(), limit),
    ).fetchall()
    return [
        Due(r[0], r[1], r[2], r[3], r[4], datetime.fromisoformat(r[5]), bytes(r[6])) for r in rows
    ]


def due_chains(
    conn: sqlite3.Connection, webhook: str, now: datetime, keys: int, per_key: int
) -> list[list[Due]]:
    """Up to ``keys`` ordering keys whose head event is due, each with up to ``per_key`` of
    its pending events in order (stopping at the first not yet due). The deliverer posts a
    chain one event after another and stops at the first failure, so order per key holds
    while different keys go concurrently and one round carries many events per key."""
    heads = due(conn, webhook, now, keys)
    if not heads:
        return []
    marks = ",".join("?" * len(heads))  # placeholders only; values are bound
    sql = (
        "SELECT d.seq, d.webhook, o.event_id, d.order_key, d.attempts, d.queued_at, o.body,"  # noqa: S608
        " d.next_attempt_at FROM outbox_delivery d JOIN outbox o ON o.seq = d.seq"
        f" WHERE d.webhook = ? AND d.state = 'pending' AND d.order_key IN ({marks})"
        " ORDER BY d.order_key, d.seq"
    )
    rows = conn.execute(
        sql,
        (webhook, *(h.order_key for h in heads)),
    ).fetchall()
    chains: dict[str, list[Due]] = {h.order_key: [] for h in heads}
    stopped: set[str] = set()
    at = now.isoformat()
    for r in rows:
        chain = chains[r[3]]
        if r[3] in stopped or len(chain) >= per_key or r[7] > at:
            stopped.add(r[3])
            continue
        chain.append(
            Due(r[0], r[1], r[2], r[3], r[4], datetime.fromisoformat(r[5]), bytes(r[6]))
        )
    return [chains[h.order_key] for h in heads if chains[h.order_key]]


def next_attempt(conn: sqlite3.Connection, webhook: str) -> datetime | None:
    row = conn.execute(
        "SELECT MIN(next_attempt_at) FROM outbox_delivery WHERE webhook = ? AND state = 'pending'",
        (webhook,),
    ).fetchone()
    return datetime.fromisoformat(row[0]) if row and row[0] else None


def mark_delivered(conn: sqlite3.Connection, items: Sequence[tuple[int, str]], now: datetime) -> None:
    conn.executemany(
        "UPDATE outbox_delivery SET state = 'delivered', delivered_at = ?, attempts = attempts + 1,"
        " last_error = '' WHERE seq = ? AND webhook = ? AND state = 'pending'",
        [(now.isoformat(), seq, webhook) for seq, webhook in items],
    )


def mark_retry(
    conn: sqlite3.Connection, seq: int, webhook: str, next_at: datetime, error: str
) -> None:
    conn.execute(
        "UPDATE outbox_delivery SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?"
        " WHERE seq = ? AND webhook = ? AND state = 'pending'",
        (next_at.isoformat(), error[:500], seq, webhook),
    )


def mark_dead(conn: sqlite3.Connection, seq: int, webhook: str, error: str) -> None:
    conn.execute(
        "UPDATE outbox_delivery SET state = 'dead', attempts = attempts + 1, last_error = ?"
        " WHERE seq = ? AND webhook = ? AND state = 'pending'",
        (error[:500], seq, webhook),
    )


def replay(
    conn: sqlite3.Connection, now: datetime, *, event_ids: Sequence[str] = (), webhook: str = ""
) -> int:
    """Put dead letters back in the queue (all, or the named events); the dead-letter
    clock starts again. Returns how many deliveries were re-queued."""
    sql = (
        "UPDATE outbox_delivery SET state = 'pending', attempts = 0, queued_at = ?,"
        " next_attempt_at = ?, last_error = '' WHERE state = 'dead'"
    )
    args: list[object] = [now.isoformat(), now.isoformat()]
    if webhook:
        sql += " AND webhook = ?"
        args.append(webhook)
    if event_ids:
        marks = ",".join("?" * len(event_ids))  # placeholders only; values are bound
        sql += f" AND seq IN (SELECT seq FROM outbox WHERE event_id IN ({marks}))"  # noqa: S608
        args.extend(event_ids)
    return conn.execute(sql, args).rowcount


@dataclass(frozen=True)
class QueueStats:
    pending: int
    dead: int
    delivered: int
    oldest_pending: datetime | None


def stats(conn: sqlite3.Connection) -> QueueStats:
    counts = dict(
        conn.execute("SELECT state, COUNT(*) FROM outbox_delivery GROUP BY state").fetchall()
    )
    oldest = conn.execute(
        "SELECT MIN(queued_at) FROM outbox_delivery WHERE state = 'pending'"
    ).fetchone()[0]
    return QueueStats(
        pending=int(counts.get("pending", 0)),
        dead=int(counts.get("dead", 0)),
        delivered=int(counts.get("delivered", 0)),
        oldest_pending=datetime.fromisoformat(oldest) if oldest else None,
    )


def deliveries(conn: sqlite3.Connection, state: str = "") -> list[tuple[str, str, str, int, str]]:
    """(event_id, webhook, state, attempts, last_error), oldest first: for ``sealctl notify``."""
    sql = (
        "SELECT o.event_id, d.webhook, d.state, d.attempts, d.last_error FROM outbox_delivery d"
        " JOIN outbox o ON o.seq = d.seq"
    )
    args: tuple[str, ...] = ()
    if state:
        sql += " WHERE d.state = ?"
        args = (state,)
    return [(r[0], r[1], r[2], int(r[3]), r[4]) for r in conn.execute(sql + " ORDER BY d.seq", args)]
