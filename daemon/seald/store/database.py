"""The state database: one SQLite file (WAL, synchronous=FULL) on one writer thread.

One writer: every database call runs on one dedicated thread, so the asyncio
loop never waits on fsync and writes never interleave. A state change and its
audit record are committed in the same transaction; if either cannot be
written, neither is, and the caller gets ServiceUnavailable (fail closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from cryptography import x509

from seald.domain.audit import AuditEvent, AuditRecord, ChainVerification
from seald.domain.checkpoints import SignedCheckpoint
from seald.domain.custody import CustodyChange
from seald.domain.errors import AlreadyDone, ServiceUnavailable
from seald.domain.model import (
    RequestState,
    SealRequest,
)
from seald.domain.outbox import Event
from seald.domain.seals import SealState
from seald.runtime.hooks import NO_HOOKS, Hooks
from seald.store import approvals as approval_facts
from seald.store import checkpoints as checkpoint_tables
from seald.store import custody as custody_tables
from seald.store import delegations as delegation_tables
from seald.store import ledger as ledger_tables
from seald.store import outbox
from seald.store import requests as request_table
from seald.store import seals as seal_tables
from seald.store import ses_seals as ses_seal_tables
from seald.store import webauthn as webauthn_tables
from seald.store.audit_health import (
    PROBE_SCHEMA,
    check_free_space,
    check_same_file,
    file_identity,
    probe_write,
)
from seald.store.backup import BackupManifest, create_backup
from seald.store.checkpoints import AuditKey
from seald.store.counts import StoreCounts, read_counts
from seald.store.ledger import Ledger
from seald.store.limits import count_open_requests

T = TypeVar("T")

class Reader:
    """What a read may do: the store's table functions over ``conn`` (store thread only)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def get_request(self, request_id: str) -> SealRequest:
        return request_table.get_request(self.conn, request_id)

    def find_by_client_key(self, requester: str, key: str) -> SealRequest | None:
        """Inside the one writer's transaction: no other submit can slip in between."""
        return request_table.find_by_client_key(self.conn, requester, key)

    def statement_facts(
        self, *, request_id: str, approver: str, statement_sha256: str
    ) -> approval_facts.StatementFacts:
        """What R06's replay rule needs to know about a signed approval statement."""
        return approval_facts.statement_facts(
            self.conn, request_id=request_id, approver=approver, statement_sha256=statement_sha256
        )


class Notifier(Protocol):
    """Issue 17: turns a committed request change into outbox events (set by the service,
    which knows the policies); the store writes them in the same transaction."""

    webhooks: tuple[str, ...]

    def events_for(self, before: SealRequest | None, after: SealRequest) -> list[Event]: ...

    def webhooks_for(self, event: Event) -> tuple[str, ...]: ...


class Transaction(Reader):
    """What a write may do: read and save requests, append audit records and outbox events."""

    def __init__(
        self, conn: sqlite3.Connection, ledger: Ledger, notifier: Notifier | None = None
    ) -> None:
        super().__init__(conn)
        self.ledger = ledger
        self.records: list[AuditRecord] = []
        self.notifier = notifier

    def save_request(self, request: SealRequest) -> None:
        if self.notifier is not None and self.notifier.webhooks:
            before = request_table.find_request(self.conn, request.request_id)
            for event in self.notifier.events_for(before, request):
                self.emit(event)
        request_table.save_request(self.conn, request)

    def emit(self, event: Event) -> None:
        """Issue 17: an outbox event, committed with this transaction or not at all."""
        if self.notifier is not None and self.notifier.webhooks:
            outbox.enqueue(self.conn, event, self.notifier.webhooks_for(event))

    def audit(self, event: AuditEvent) -> AuditRecord:
        record = self.ledger.append(self.conn, event)
        self.records.append(record)
        return record


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
    def _open_sync(self) -> None:
        """Create directories and schema. Runs on the store thread."""
        for directory in (self.state_dir, self.documents_dir, self.incoming_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        conn = sqlite3.connect(self.db_path, isolation_level=None, timeout=5.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(request_table.SCHEMA)
        Ledger.create_schema(conn)
        conn.execute(PROBE_SCHEMA)
        self.db_identity = file_identity(self.db_path)
        seal_tables.create_schema(conn)
        ses_seal_tables.create_schema(conn)
        outbox.create_schema(conn)
        delegation_tables.create_schema(conn)
        custody_tables.create_schema(conn)
        webauthn_tables.create_schema(conn)
        approval_facts.create_schema(conn)
        checkpoint_tables.ensure_schema(conn)
        self._conn = conn
        self._thread = threading.current_thread()

    async def open(self) -> None:
        await self.call(self._open_sync)

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
    def _write_sync(
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
        except sqlite3.IntegrityError as ex:
            # A constraint said no: the data, not the disk. The store stays open (issue 14:
            # closing it here let any caller pause all signing until the next health tick).
            _rollback(conn)
            raise AlreadyDone(
                "this conflicts with a record seald already holds; nothing was changed. "
                "Read the current state and retry",
                reason="conflict",
            ) from ex
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
        return await self.call(lambda: self._write_sync(fn, durable=durable))

    # -- reads -------------------------------------------------------------------------------
    async def get_request(self, request_id: str) -> SealRequest:
        return await self.call(lambda: request_table.get_request(self._connection(), request_id))

    async def find_by_client_key(self, requester: str, key: str) -> SealRequest | None:
        return await self.call(
            lambda: request_table.find_by_client_key(self._connection(), requester, key)
        )

    async def list_requests(
        self,
        *,
        states: Sequence[RequestState] = (),
        seal_id: str = "",
        requester: str = "",
        after: tuple[str, str] | None = None,
        limit: int = 100,
    ) -> list[SealRequest]:
        return await self.call(
            lambda: request_table.list_requests(
                self._connection(),
                states=states,
                seal_id=seal_id,
                requester=requester,
                after=after,
                limit=limit,
            )
        )

    async def audit_records(self, **filters: Any) -> list[AuditRecord]:
        """Audit records matching ``filters`` (seald.store.ledger.Ledger.records), read whole."""
        return await self.call(lambda: list(self.ledger.records(self._connection(), **filters)))

    # -- what the other rooms read (typed; the SQL is in the table modules) ----------------------
    async def read(self, query: Callable[[Reader], T]) -> T:
        """Run ``query`` on the store thread outside any write transaction. It calls the
        store's table functions with ``reader.conn`` (as a write does with ``tx.conn``):
        the extension point for a room's reads, so Store need not grow a method each."""
        return await self.call(lambda: query(Reader(self._connection())))

    async def count_open_requests(self, requester: str) -> int:
        """Pending + approved + signing requests of one requester (the issue 8 limit)."""
        return await self.call(lambda: count_open_requests(self._connection(), requester))

    async def registered_seals(self) -> tuple[dict[str, SealState], dict[str, bytes]]:
        """Each seal's committed lifecycle status, and its newest certificate imported
        through the API (R02)."""

        def _read() -> tuple[dict[str, SealState], dict[str, bytes]]:
            conn = self._connection()
            return seal_tables.all_states(conn), seal_tables.current_certificates(conn)

        return await self.call(_read)

    async def custody_state(self, seal_ids: Sequence[str]) -> custody_tables.CustodyState:
        return await self.call(lambda: custody_tables.load_state(self._connection(), seal_ids))

    async def custody_change(self, change_id: str) -> CustodyChange:
        return await self.call(lambda: custody_tables.get_change(self._connection(), change_id))

    async def counts(self, now: datetime) -> StoreCounts:
        """The gauges of a metrics scrape."""
        return await self.call(lambda: read_counts(self._connection(), now))

    async def verify_chain(
        self, certificate: x509.Certificate | None, extra: SignedCheckpoint | None
    ) -> tuple[ChainVerification, SignedCheckpoint | None]:
        """The audit chain against the latest signed checkpoint (stored, or ``extra``)."""
        return await self.call(
            lambda: checkpoint_tables.verify_with_checkpoints(self._connection(), certificate, extra)
        )

    async def probe_writable(self, *, commit: bool, at: str) -> str:
        """'' if the audit trail can be written, else what is wrong: free space and the
        database file always; with ``commit`` a real probe commit (while failed)."""

        def _probe() -> str:
            try:
                check_free_space(self.state_dir)
                if commit:
                    probe_write(self._connection(), self.db_path, self.db_identity, at)
                else:
                    check_same_file(self.db_path, self.db_identity)
            except sqlite3.Error as ex:  # DatabaseFileReplaced included
                return str(ex)
            return ""

        return await self.call(_probe)

    async def backup_to(
        self, destination: Path, key: AuditKey, host: str, now: datetime
    ) -> BackupManifest:
        return await self.call(
            lambda: create_backup(
                self._connection(), destination, key, host, now, documents_dir=self.documents_dir
            )
        )

    @contextlib.contextmanager
    def ledger_snapshot(self) -> Iterator[LedgerSnapshot]:
        """A read-only connection of its own (WAL: a consistent snapshot), for long reads
        (reports) off the writer thread; any thread may use it."""
        conn = sqlite3.connect(self.db_path.resolve().as_uri() + "?mode=ro", uri=True)
        try:
            yield LedgerSnapshot(conn, self.ledger)
        finally:
            conn.close()

    # -- documents on disk ---------------------------------------------------------------------
    def original_path(self, request_id: str, index: int) -> Path:
        return self.documents_dir / request_id / f"{index:04d}.pdf"

    def sealed_path(self, request_id: str, index: int) -> Path:
        return self.documents_dir / request_id / f"{index:04d}.sealed.pdf"


class LedgerSnapshot:
    """The audit records as one read-only snapshot sees them."""

    def __init__(self, conn: sqlite3.Connection, ledger: Ledger) -> None:
        self._conn = conn
        self._ledger = ledger

    def records(self, **filters: Any) -> Iterator[AuditRecord]:
        return self._ledger.records(self._conn, **filters)

    def record_time(self, sequence: int) -> str:
        return ledger_tables.record_time(self._conn, sequence)


def _rollback(conn: sqlite3.Connection) -> None:
    # The transaction may be gone already (e.g. the disk vanished); nothing to undo then.
    with contextlib.suppress(sqlite3.Error):
        conn.execute("ROLLBACK")
