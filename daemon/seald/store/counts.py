"""What the metrics read from the database at scrape time (seald.runtime.metrics)."""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime

from seald.domain.model import RequestState
from seald.store import outbox


@dataclass
class StoreCounts:
    """Requests by state and seal, audit chain length, age of the last checkpoint."""

    requests_by_state: dict[str, int] = field(default_factory=dict)
    pending_by_seal: dict[str, int] = field(default_factory=dict)
    audit_records: int = 0
    last_checkpoint_age_s: float = math.nan
    notify_queue_depth: int = 0  # issue 17: webhook outbox
    notify_dead_letters: int = 0
    notify_oldest_undelivered_s: float = 0.0


def read_counts(conn: sqlite3.Connection, now: datetime) -> StoreCounts:
    """Requests by state and seal, audit chain length, last checkpoint age (store thread)."""
    snap = StoreCounts()
    queue = outbox.stats(conn)
    snap.notify_queue_depth, snap.notify_dead_letters = queue.pending, queue.dead
    if queue.oldest_pending is not None:
        snap.notify_oldest_undelivered_s = max(0.0, (now - queue.oldest_pending).total_seconds())
    for state, count in conn.execute("SELECT state, COUNT(*) FROM requests GROUP BY state"):
        snap.requests_by_state[str(state)] = int(count)
    for seal_id, count in conn.execute(
        "SELECT seal_id, COUNT(*) FROM requests WHERE state = ? GROUP BY seal_id",
        (RequestState.PENDING.value,),
    ):
        snap.pending_by_seal[str(seal_id)] = int(count)
    # Sequences start at 1 and have no gaps (the chain verifies that): max = length.
    head = conn.execute("SELECT MAX(sequence) FROM audit_log").fetchone()
    snap.audit_records = int(head[0]) if head and head[0] is not None else 0
    # Checkpoints are written by issue 5's work; until one exists the age is NaN.
    has_table = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'audit_checkpoint'"
    ).fetchone()
    if has_table:
        row = conn.execute("SELECT MAX(created_at) FROM audit_checkpoint").fetchone()
        if row and row[0]:
            try:
                created = datetime.fromisoformat(str(row[0]))
            except ValueError:
                created = None
            if created is not None:
                if created.tzinfo is None:
                    created = created.replace(tzinfo=UTC)
                snap.last_checkpoint_age_s = max(0.0, (now - created).total_seconds())
    return snap
