"""SQLite state: requests and the audit ledger, on disk (WAL, synchronous=FULL).

One writer: every database call runs on one dedicated thread, so the asyncio
loop never waits on fsync and writes never interleave. A state change and its
audit record are committed in the same transaction; if either cannot be
written, neither is, and the caller gets ServiceUnavailable (fail closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, TypeVar

from seald.domain.audit import AuditEvent, AuditRecord
from seald.domain.chains import Money
from seald.domain.errors import NotFound, ServiceUnavailable
from seald.domain.model import (
    Approval,
    Document,
    Placement,
    RequestState,
    SealRequest,
)
from seald.domain.outbox import Event
from seald.runtime.hooks import NO_HOOKS, Hooks
from seald.store import delegations as delegation_tables
from seald.store import outbox
from seald.store import seals as seal_tables
from seald.store.audit_health import PROBE_SCHEMA, check_same_file, file_identity
from seald.store.ledger import Ledger

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT PRIMARY KEY,
    seal_id TEXT NOT NULL,
    requester TEXT NOT NULL,
    state TEXT NOT NULL,
    client_request_key TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_state ON requests(state);
CREATE INDEX IF NOT EXISTS requests_seal ON requests(seal_id, created_at);
CREATE UNIQUE INDEX IF NOT EXISTS requests_client_key
    ON requests(requester, client_request_key) WHERE client_request_key != '';
"""


def request_to_json(request: SealRequest) -> str:
    def encode(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, Decimal):  # the declared amount: canonical text, exact
            return format(value.normalize(), "f")
        raise TypeError(type(value))

    return json.dumps(asdict(request), default=encode, ensure_ascii=False, sort_keys=True)


@functools.lru_cache(maxsize=2)
def request_from_json(text: str) -> SealRequest:
    """The request stored as ``text``. Cached by the text itself (frozen dataclasses, so
    sharing is safe): a volume request of 10,000 documents is ~2 MB of JSON and ~60 ms to
    parse, and every per-document call (each approver's download of each original, each
    sealed download) reads the same unchanged row (issue 20: that was O(n^2)). Two
    entries: each recorded chunk stores a new version, and every cached one of a
    10,000-document request holds ~15 MB (eight of them cost the 10,000-document bench
    ~120 MB)."""
    raw = json.loads(text)

    def when(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    def must(value: str) -> datetime:
        return datetime.fromisoformat(value)

    return SealRequest(
        request_id=raw["request_id"],
        seal_id=raw["seal_id"],
        requester=raw["requester"],
        reason=raw["reason"],
        category=raw["category"],
        placement=Placement(**raw["placement"]),
        documents=tuple(Document(**d) for d in raw["documents"]),
        state=RequestState(raw["state"]),
        required_approvals=raw["required_approvals"],
        approval_digest=raw["approval_digest"],
        seal_certificate_sha256=raw["seal_certificate_sha256"],
        created_at=must(raw["created_at"]),
        updated_at=must(raw["updated_at"]),
        expires_at=must(raw["expires_at"]),
        host=raw["host"],
        state_reason=raw["state_reason"],
        approvals=tuple(
            Approval(
                approver=a["approver"],
                approval_digest=a["approval_digest"],
                approved_at=must(a["approved_at"]),
                comment=a["comment"],
                certificate_sha256=a["certificate_sha256"],
                statement=a.get("statement", ""),
                statement_signature_b64=a.get("statement_signature_b64", ""),
                certificate_der_b64=a.get("certificate_der_b64", ""),
                webauthn_assertion=a.get("webauthn_assertion", ""),
                acting_for=a.get("acting_for", ""),
                delegation_id=a.get("delegation_id", ""),
            )
            for a in raw["approvals"]
        ),
        signed_at=when(raw["signed_at"]),
        outcome_unknown=raw["outcome_unknown"],
        client_request_key=raw["client_request_key"],
        sign_attempts=raw["sign_attempts"],
        amount=_money(raw.get("amount")),
    )


def _money(raw: Any) -> Money | None:
    """Issue 17: the declared amount (stored as its canonical text and currency)."""
    if not raw:
        return None
    return Money(Decimal(raw["value"]), raw["currency"])


class Notifier(Protocol):
    """Issue 17: turns a committed request change into outbox events (set by the service,
    which knows the policies); the store writes them in the same transaction."""

    webhooks: tuple[str, ...]

    def events_for(self, before: SealRequest | None, after: SealRequest) -> list[Event]: ...

    def webhooks_for(self, event: Event) -> tuple[str, ...]: ...


# Requests that ended without a seal give their use back (issue 17 quotas).
_NOT_USES = ("rejected", "cancelled", "expired", "failed")


def count_uses(conn: sqlite3.Connection, seal_id: str, start: datetime, end: datetime) -> int:
    """Requests of a seal submitted in [start, end) that are, or may still become, a use."""
    row = conn.execute(
        "SELECT COUNT(*) FROM requests WHERE seal_id = ? AND created_at >= ? AND created_at < ?"
        " AND state NOT IN (?, ?, ?, ?)",
        (seal_id, start.astimezone(UTC).isoformat(), end.astimezone(UTC).isoformat(), *_NOT_USES),
    ).fetchone()
    return int(row[0])


class Transaction:
    """What a write may do: read and save requests, append audit records."""

    def __init__(
        self, conn: sqlite3.Connection, ledger: Ledger, notifier: Notifier | None = None
    ) -> None:
        self.conn = conn
        self.ledger = ledger
        self.records: list[AuditRecord] = []
        self.notifier = notifier

    def get_request(self, request_id: str) -> SealRequest:
        return _get_request(self.conn, request_id)

    def save_request(self, request: SealRequest) -> None:
        if self.notifier is not None and self.notifier.webhooks:
            row = self.conn.execute(
                "SELECT body FROM requests WHERE request_id = ?", (request.request_id,)
            ).fetchone()
            before = request_from_json(row[0]) if row else None
            for event in self.notifier.events_for(before, request):
                self.emit(event)
        self.conn.execute(
            "INSERT INTO requests(request_id, seal_id, requester, state, client_request_key,"
            " created_at, updated_at, body) VALUES (?,?,?,?,?,?,?,?)"
            " ON CONFLICT(request_id) DO UPDATE SET state=excluded.state,"
            " updated_at=excluded.updated_at, body=excluded.body",
            (
                request.request_id,
                request.seal_id,
                request.requester,
                request.state.value,
                request.client_request_key,
                request.created_at.isoformat(),
                request.updated_at.isoformat(),
                request_to_json(request),
            ),
        )

    def emit(self, event: Event) -> None:
        """Issue 17: an outbox event, committed with this transaction or not at all."""
        if self.notifier is not None and self.notifier.webhooks:
            outbox.enqueue(self.conn, event, self.notifier.webhooks_for(event))

    def audit(self, event: AuditEvent) -> AuditRecord:
        record = self.ledger.append(self.conn, event)
        self.records.append(record)
        return record


def _get_request(conn: sqlite3.Connection, request_id: str) -> SealRequest:
    row = conn.execute("SELECT body FROM requests WHERE request_id = ?", (request_id,)).fetchone()
    if row is None:
        raise NotFound(
            f"no request {request_id!r}; check the id (sealctl list shows your requests)",
            reason="request_not_found",
        )
    return request_from_json(row[0])


class Store:
    def __init__(self, state_dir: Path, ledger: Ledger, *, hooks: Hooks = NO_HOOKS) -> None:
        self.state_dir = state_dir
        self._hooks = hooks  # the crash matrix's tx:/commit: kill points (tests)
        self.db_path = state_dir / "seald.sqlite3"
        # Issue 17: set by the service when webhooks are configured (None: no outbox rows).
        self.notifier: Notifier | None = None
        self.documents_dir = state_dir / "documents"
        self.incoming_dir = state_dir / "incoming"
        self.ledger = ledger
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store")
        self._conn: sqlite3.Connection | None = None
        self._thread: threading.Thread | None = None
        self.writable = True
        self.db_identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the file opened

    # -- lifecycle ---------------------------------------------------------------------------
    def open_sync(self) -> None:
        """Create directories and schema. Runs on the store thread."""
        for directory in (self.state_dir, self.documents_dir, self.incoming_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        conn = sqlite3.connect(self.db_path, isolation_level=None, timeout=5.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(SCHEMA)
        Ledger.create_schema(conn)
        conn.execute(PROBE_SCHEMA)
        self.db_identity = file_identity(self.db_path)
        seal_tables.create_schema(conn)
        outbox.create_schema(conn)
        delegation_tables.create_schema(conn)
        self._conn = conn
        self._thread = threading.current_thread()

    async def open(self) -> None:
        await self.call(self.open_sync)

    async def close(self) -> None:
        def _close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await self.call(_close)
        self._executor.shutdown(wait=True)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ServiceUnavailable("the state database is not open", reason="store_closed")
        return self._conn

    async def call(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    # -- writes ------------------------------------------------------------------------------
    def write_sync(
        self, fn: Callable[[Transaction], T], *, durable: bool = True
    ) -> tuple[T, list[AuditRecord]]:
        """Run ``fn`` in one transaction. ``durable=False`` (only for bookkeeping whose loss
        is harmless, e.g. the outbox's delivered marks: a lost mark only causes a redelivery
        that receivers dedupe) commits without the fsync; WAL keeps commit order, so the next
        durable commit makes it durable too."""
        conn = self._connection()
        if not durable:
            conn.execute("PRAGMA synchronous=NORMAL")
        try:
            return self._write_in_tx(conn, fn)
        finally:
            if not durable:
                conn.execute("PRAGMA synchronous=FULL")

    def _write_in_tx(
        self, conn: sqlite3.Connection, fn: Callable[[Transaction], T]
    ) -> tuple[T, list[AuditRecord]]:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as ex:
            self.writable = False
            raise ServiceUnavailable(
                "the audit trail cannot be written (database error); nothing was changed. "
                "An operator must check the seal host's disk",
                reason="audit_unavailable",
            ) from ex
        tx = Transaction(conn, self.ledger, self.notifier)
        try:
            result = fn(tx)
            if tx.records:
                self._hooks.kill_point(f"tx:{tx.records[0].event}")
            # A deleted database file still takes writes (the inode lives on): refuse them.
            check_same_file(self.db_path, self.db_identity)
            conn.execute("COMMIT")
            if tx.records:
                self._hooks.kill_point(f"commit:{tx.records[0].event}")
        except sqlite3.Error as ex:
            _rollback(conn)
            self.writable = False
            raise ServiceUnavailable(
                f"the audit trail cannot be written ({ex}); nothing was changed. "
                "An operator must check the seal host's disk",
                reason="audit_unavailable",
            ) from ex
        except BaseException:
            _rollback(conn)
            raise
        self.writable = True
        return result, tx.records

    async def write(
        self, fn: Callable[[Transaction], T], *, durable: bool = True
    ) -> tuple[T, list[AuditRecord]]:
        return await self.call(lambda: self.write_sync(fn, durable=durable))

    # -- reads -------------------------------------------------------------------------------
    async def get_request(self, request_id: str) -> SealRequest:
        return await self.call(lambda: _get_request(self._connection(), request_id))

    async def find_by_client_key(self, requester: str, key: str) -> SealRequest | None:
        def _find() -> SealRequest | None:
            row = (
                self._connection()
                .execute(
                    "SELECT body FROM requests WHERE requester = ? AND client_request_key = ?",
                    (requester, key),
                )
                .fetchone()
            )
            return request_from_json(row[0]) if row else None

        return await self.call(_find)

    async def list_requests(
        self,
        *,
        states: Sequence[RequestState] = (),
        seal_id: str = "",
        requester: str = "",
        after: tuple[str, str] | None = None,
        limit: int = 100,
    ) -> list[SealRequest]:
        def _list() -> list[SealRequest]:
            clauses: list[str] = []
            params: list[str] = []
            if states:
                clauses.append(f"state IN ({','.join('?' * len(states))})")
                params.extend(s.value for s in states)
            if seal_id:
                clauses.append("seal_id = ?")
                params.append(seal_id)
            if requester:
                clauses.append("requester = ?")
                params.append(requester)
            if after is not None:
                clauses.append("(created_at, request_id) > (?, ?)")
                params.extend(after)
            where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
            rows = self._connection().execute(
                f"SELECT body FROM requests {where} ORDER BY created_at, request_id LIMIT ?",  # noqa: S608
                (*params, limit),
            )
            return [request_from_json(r[0]) for r in rows]

        return await self.call(_list)

    def iter_audit_sync(self, **filters: Any) -> Iterator[AuditRecord]:
        return self.ledger.records(self._connection(), **filters)

    # -- documents on disk ---------------------------------------------------------------------
    def original_path(self, request_id: str, index: int) -> Path:
        return self.documents_dir / request_id / f"{index:04d}.pdf"

    def sealed_path(self, request_id: str, index: int) -> Path:
        return self.documents_dir / request_id / f"{index:04d}.sealed.pdf"


def _rollback(conn: sqlite3.Connection) -> None:
    # The transaction may be gone already (e.g. the disk vanished); nothing to undo then.
    with contextlib.suppress(sqlite3.Error):
        conn.execute("ROLLBACK")
