"""SQLite part of the tamper-evident usage ledger (SEAL-RULES R10).

The chain logic lives in seald.domain.audit; this module stores records, reads them
back and streams rows into the verifier. ``append`` works inside the caller's
transaction, so a state change and its audit record commit (or roll back) together.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from pathlib import Path
from typing import Final

from seald.domain.audit import (
    CANONICAL_FIELDS,
    FORMAT_VERSION,
    GENESIS_HASH,
    RECORD_COLUMNS,
    AuditEvent,
    AuditRecord,
    ChainVerification,
    DetailValue,
    EncodedRow,
    SegmentVerification,
    canonical_details_json,
    canonical_row_bytes,
    chain_after,
    encode_row,
    format_time,
    join_segments,
    verify_encoded_rows,
    verify_encoded_segment,
)
from seald.domain.errors import ServiceUnavailable

SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS audit_log (sequence INTEGER PRIMARY KEY, time TEXT NOT NULL, "
    "host TEXT NOT NULL, event TEXT NOT NULL, principal TEXT NOT NULL, role TEXT NOT NULL, "
    "seal_id TEXT NOT NULL, request_id TEXT NOT NULL, document_name TEXT NOT NULL, "
    "document_sha256 TEXT NOT NULL, reason TEXT NOT NULL, outcome TEXT NOT NULL, "
    "details_json TEXT NOT NULL, previous_hash TEXT NOT NULL, record_hash TEXT NOT NULL)"
)
_SCHEMA_EXTRAS: Final = (
    "CREATE INDEX IF NOT EXISTS audit_log_request_id ON audit_log (request_id)",
    "CREATE INDEX IF NOT EXISTS audit_log_time ON audit_log (time)",
    # Checkpoints: a head (sequence, hash) recorded, and ideally exported or signed,
    # so that truncation and wholesale rewriting can be detected later.
    "CREATE TABLE IF NOT EXISTS audit_checkpoint (sequence INTEGER PRIMARY KEY, "
    "record_hash TEXT NOT NULL, created_at TEXT NOT NULL, note TEXT NOT NULL DEFAULT '')",
    # Defence in depth against accidents and casual edits through the appliance's own
    # connection. Someone with the file can drop these; the hash chain is what detects.
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
)

# Column lists spelled out (same order as RECORD_COLUMNS; a test checks it).
_COLUMN_LIST: Final = (
    "sequence, time, host, event, principal, role, seal_id, request_id, document_name, "
    "document_sha256, reason, outcome, details_json, previous_hash, record_hash"
)
_INSERT: Final = (
    "INSERT INTO audit_log (sequence, time, host, event, principal, role, seal_id, "
    "request_id, document_name, document_sha256, reason, outcome, details_json, "
    "previous_hash, record_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT_ALL_ORDERED: Final = (
    "SELECT sequence, time, host, event, principal, role, seal_id, request_id, "
    "document_name, document_sha256, reason, outcome, details_json, previous_hash, "
    "record_hash FROM audit_log ORDER BY sequence"
)
_SELECT_RANGE_ORDERED: Final = (
    "SELECT sequence, time, host, event, principal, role, seal_id, request_id, "
    "document_name, document_sha256, reason, outcome, details_json, previous_hash, "
    "record_hash FROM audit_log WHERE sequence BETWEEN ? AND ? ORDER BY sequence"
)
_SELECT_FROM_ORDERED: Final = (
    "SELECT sequence, time, host, event, principal, role, seal_id, request_id, "
    "document_name, document_sha256, reason, outcome, details_json, previous_hash, "
    "record_hash FROM audit_log WHERE sequence >= ? ORDER BY sequence"
)
# Below this many records, starting worker processes costs more than it saves. A spawned
# worker imports the parent's main module: with seald.app (grpc, pyHanko) that measured
# 6-7 s for two workers on the loaded 2-CPU test host (0.9 s from a light main), while
# one process verifies a million records in about 25 s there and in seconds when idle.
PARALLEL_FROM_RECORDS: Final = 2_000_000
_SELECT_HEAD: Final = "SELECT sequence, record_hash FROM audit_log ORDER BY sequence DESC LIMIT 1"
_VERIFY_FETCH_ROWS: Final = 4096


class LedgerError(ServiceUnavailable):
    """The audit trail cannot be written or read; nothing may be sealed until it can."""

    default_reason = "audit_unavailable"


class LedgerConflictError(LedgerError):
    """Another writer appended at the same sequence; the caller's transaction must retry."""

    default_reason = "audit_conflict"


class LedgerFileError(LedgerError):
    """An offline ledger copy cannot be opened or is not a ledger."""

    default_reason = "audit_file_unusable"


_SQLITE_BUSY: Final = 5
_SQLITE_LOCKED: Final = 6


def _is_write_conflict(ex: sqlite3.Error) -> bool:
    """Another writer got there first: same sequence taken, or our snapshot is stale."""
    if isinstance(ex, sqlite3.IntegrityError):
        return True
    primary_code = getattr(ex, "sqlite_errorcode", 0) & 0xFF
    return primary_code in (_SQLITE_BUSY, _SQLITE_LOCKED)


def _row_to_record(row: tuple[object, ...]) -> AuditRecord:
    (
        sequence,
        time,
        host,
        event,
        principal,
        role,
        seal_id,
        request_id,
        document_name,
        document_sha256,
        reason,
        outcome,
        details_json,
        previous_hash,
        record_hash,
    ) = row
    try:
        details = json.loads(str(details_json))
    except json.JSONDecodeError as ex:
        raise LedgerError(
            f"audit record {sequence} has unreadable details; run the ledger "
            "verification (the record was edited outside the appliance)"
        ) from ex
    if not isinstance(details, dict):
        raise LedgerError(
            f"audit record {sequence} has details that are not a map; run the ledger "
            "verification (the record was edited outside the appliance)"
        )
    typed_details: dict[str, DetailValue] = details
    return AuditRecord(
        sequence=int(str(sequence)),
        time=str(time),
        host=str(host),
        event=str(event),
        principal=str(principal),
        role=str(role),
        seal_id=str(seal_id),
        request_id=str(request_id),
        document_name=str(document_name),
        document_sha256=str(document_sha256),
        reason=str(reason),
        outcome=str(outcome),
        details=typed_details,
        previous_hash=str(previous_hash),
        record_hash=str(record_hash),
    )


class Ledger:
    """Appends chained records and reads them back. Holds no state about the chain."""

    def __init__(self, host: str, clock: Callable[[], datetime]) -> None:
        self._host = host
        self._clock = clock

    @staticmethod
    def create_schema(conn: sqlite3.Connection) -> None:
        """Create the ledger tables, indexes and triggers if absent (idempotent)."""
        try:
            conn.execute(SCHEMA)
            for statement in _SCHEMA_EXTRAS:
                conn.execute(statement)
        except sqlite3.Error as ex:
            raise LedgerError(
                f"cannot create the audit ledger tables ({ex}); check that the state database is writable"
            ) from ex

    def append(self, conn: sqlite3.Connection, event: AuditEvent) -> AuditRecord:
        """Chain ``event`` after the current head, inside the caller's transaction.

        The caller commits. The head is read from the database every time, so a
        rolled-back append leaves nothing behind that a later append could link to.
        """
        try:
            head = conn.execute(_SELECT_HEAD).fetchone()
        except sqlite3.Error as ex:
            raise LedgerError(f"cannot read the audit ledger head ({ex}); check the state database") from ex
        head_sequence, head_hash = (0, GENESIS_HASH) if head is None else head
        record = chain_after(head_sequence, head_hash, event, self._clock(), self._host)
        try:
            conn.execute(_INSERT, record.as_row())
        except sqlite3.Error as ex:
            if _is_write_conflict(ex):
                raise LedgerConflictError(
                    f"audit record {record.sequence} could not be written because another "
                    "writer changed the ledger since this transaction read it; roll back "
                    "and retry (the ledger expects one writer)"
                ) from ex
            raise LedgerError(
                f"cannot write the audit record ({ex}); nothing may be sealed until the "
                "audit trail is writable: check disk space and permissions"
            ) from ex
        return record

    def records(
        self,
        conn: sqlite3.Connection,
        *,
        request_id: str | None = None,
        seal_id: str | None = None,
        event: str | None = None,
        from_time: datetime | None = None,
        to_time: datetime | None = None,
        after_sequence: int = 0,
        limit: int | None = None,
    ) -> Iterator[AuditRecord]:
        """Records matching every given filter, ascending by sequence.

        ``from_time`` is inclusive, ``to_time`` exclusive. Rows are streamed.
        """
        clauses = ["sequence > ?"]
        parameters: list[object] = [after_sequence]
        for column, value in (("request_id", request_id), ("seal_id", seal_id), ("event", event)):
            if value is not None:
                clauses.append(f"{column} = ?")
                parameters.append(value)
        if from_time is not None:
            clauses.append("time >= ?")
            parameters.append(format_time(from_time))
        if to_time is not None:
            clauses.append("time < ?")
            parameters.append(format_time(to_time))
        query = (
            f"SELECT {_COLUMN_LIST} FROM audit_log WHERE "  # noqa: S608 - fixed fragments
            f"{' AND '.join(clauses)} ORDER BY sequence"
        )
        if limit is not None:
            query += " LIMIT ?"
            parameters.append(limit)
        try:
            cursor = conn.execute(query, parameters)
            for row in cursor:
                yield _row_to_record(row)
        except sqlite3.Error as ex:
            raise LedgerError(f"cannot read audit records ({ex}); check the state database") from ex


def _stream_rows(
    conn: sqlite3.Connection, first: int = 1, last: int | None = None
) -> Iterator[tuple[object, ...]]:
    if last is not None:
        cursor = conn.execute(_SELECT_RANGE_ORDERED, (first, last))
    elif first > 1:
        cursor = conn.execute(_SELECT_FROM_ORDERED, (first,))
    else:
        cursor = conn.execute(_SELECT_ALL_ORDERED)
    while batch := cursor.fetchmany(_VERIFY_FETCH_ROWS):
        yield from batch


# --- the fast verification path: canonical bytes built by SQLite -------------------------
#
# Profiling showed the Python encoder (15 str objects per row, 13 escapes, a format and
# a UTF-8 encode) costing twice the hashing and fetching together. SQLite's json_object
# writes the same compact JSON in C: keys in the order given (CANONICAL_FIELDS is the
# canonical sorted order), strings escaped exactly like Python's json encoder with
# ensure_ascii=False, integers in decimal. The rows then carry 4 values instead of 15.
# Whether this SQLite library really agrees is checked once per process on a probe row
# holding every ASCII character and non-BMP text; if not, the Python encoder is used.
# A disagreement could only ever cause false alarms, never hide an edit: json_object's
# escaping is injective, so edited content always hashes differently.


def _canonical_json_sql(column: Callable[[str], str]) -> str:
    pairs = ", ".join(f"'{key}', {column(name)}" for key, name in CANONICAL_FIELDS)
    return f"json_object({pairs}, 'version', '{FORMAT_VERSION}')"


# json_object writes a number unquoted (the record then fails as modified) and refuses
# a BLOB: that error sends the rest of the range to the Python encoder, which names
# the record. No per-row type guard: it cost a fifth of the whole loop.
_SELECT_ENCODED: Final = (
    f"SELECT sequence, CAST({_canonical_json_sql(lambda name: name)} AS BLOB), "  # noqa: S608
    "CAST(previous_hash AS BLOB), CAST(record_hash AS BLOB) FROM audit_log"
)
_SELECT_ENCODED_ALL: Final = _SELECT_ENCODED + " ORDER BY sequence"
_SELECT_ENCODED_RANGE: Final = _SELECT_ENCODED + " WHERE sequence BETWEEN ? AND ? ORDER BY sequence"
_SELECT_ENCODED_FROM: Final = _SELECT_ENCODED + " WHERE sequence >= ? ORDER BY sequence"
_PROBE_SQL: Final = f"SELECT CAST({_canonical_json_sql(lambda name: ':' + name)} AS BLOB)"

_PROBE_TEXT: Final = "".join(map(chr, range(128))) + "é印章\u2028\u2029\ufeff\uffff\U0001f600"
_sql_encoder_agrees: bool | None = None


def _probe_row() -> tuple[object, ...]:
    details = canonical_details_json({_PROBE_TEXT: _PROBE_TEXT, "n": -(2**63), "b": True, "z": None})
    row: list[object] = [2**62 + 1]
    row += [f"{index}{_PROBE_TEXT}" for index in range(1, 12)]
    row += [details, _PROBE_TEXT, ""]
    return tuple(row)


def sql_encoder_agrees(conn: sqlite3.Connection) -> bool:
    """True when this SQLite's json_object gives exactly the canonical bytes (probed once)."""
    global _sql_encoder_agrees  # noqa: PLW0603 - one probe per process (one SQLite library)
    if _sql_encoder_agrees is None:
        row = _probe_row()
        parameters = dict(zip(RECORD_COLUMNS, row, strict=True))
        try:
            (encoded,) = conn.execute(_PROBE_SQL, parameters).fetchone()
        except sqlite3.Error:
            encoded = None  # no JSON functions in this build
        _sql_encoder_agrees = encoded == canonical_row_bytes(row)
    return _sql_encoder_agrees


def _stream_encoded(
    conn: sqlite3.Connection, first: int = 1, last: int | None = None, *, use_sql: bool | None = None
) -> Iterator[EncodedRow]:
    """Rows as the verifier consumes them, encoded by SQLite when it agrees, else by Python."""
    if not (sql_encoder_agrees(conn) if use_sql is None else use_sql):
        yield from map(encode_row, _stream_rows(conn, first, last))
        return
    done = first - 1
    try:
        if last is not None:
            cursor = conn.execute(_SELECT_ENCODED_RANGE, (first, last))
        elif first > 1:
            cursor = conn.execute(_SELECT_ENCODED_FROM, (first,))
        else:
            cursor = conn.execute(_SELECT_ENCODED_ALL)
        while batch := cursor.fetchmany(_VERIFY_FETCH_ROWS):
            yield from batch
            # The verifier stops at the first bad row, so reaching here means every
            # sequence in the batch was the expected integer.
            done = int(str(batch[-1][0]))
    except sqlite3.Error:
        # A value json_object cannot encode (a BLOB put in by hand), or a read error
        # that the Python path will meet and report again.
        yield from map(encode_row, _stream_rows(conn, done + 1, last))


def _database_file(conn: sqlite3.Connection) -> str:
    """Path of the main database file; '' for an in-memory or temporary database."""
    for _, name, file in conn.execute("PRAGMA database_list"):
        if name == "main":
            return str(file or "")
    return ""


def _verify_file_range(
    path: str, first: int, last: int, expected_head: tuple[int, str] | None
) -> SegmentVerification:
    """Worker (separate process): verify sequences first..last of a database file."""
    conn = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
    try:
        return verify_encoded_segment(_stream_encoded(conn, first, last), first, expected_head)
    finally:
        conn.close()


def _segment_bounds(last_sequence: int, workers: int) -> list[tuple[int, int]]:
    size = -(-last_sequence // workers)
    return [(lo, min(lo + size - 1, last_sequence)) for lo in range(1, last_sequence + 1, size)]


def _verify_in_parallel(
    path: str, last_sequence: int, workers: int, expected_head: tuple[int, str] | None
) -> ChainVerification:
    # Processes, not threads: the hot loop is Python code holding the GIL. "spawn" so a
    # daemon with gRPC threads never forks.
    bounds = _segment_bounds(last_sequence, workers)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=len(bounds), mp_context=context) as pool:
        futures = [pool.submit(_verify_file_range, path, lo, hi, expected_head) for lo, hi in bounds]
        segments = [future.result() for future in futures]
    # Rows beyond last_sequence were appended after we started; they are not judged here.
    return join_segments(segments, expected_head)


def verify_ledger(
    conn: sqlite3.Connection,
    expected_head: tuple[int, str] | None = None,
    *,
    workers: int | None = None,
    parallel_from_records: int = PARALLEL_FROM_RECORDS,
) -> ChainVerification:
    """Verify the whole chain.

    Small ledgers, in-memory databases and connections inside an open transaction are
    verified in this thread over one SELECT (a consistent snapshot). A large file-backed
    ledger is split into sequence ranges verified by ``workers`` processes (default: one
    per CPU) reading the file read-only; appends during the check only add rows after
    the ranges, which append-only records cannot disturb.
    """
    workers = workers or os.cpu_count() or 1
    try:
        path = "" if conn.in_transaction else _database_file(conn)
        head = conn.execute(_SELECT_HEAD).fetchone()
        last_sequence = 0 if head is None else int(head[0])
        if workers > 1 and path and last_sequence >= max(parallel_from_records, workers):
            return _verify_in_parallel(path, last_sequence, workers, expected_head)
        return verify_encoded_rows(_stream_encoded(conn), expected_head)
    except sqlite3.Error as ex:
        raise LedgerError(
            f"cannot read the audit ledger for verification ({ex}); check the database file"
        ) from ex
    except (OSError, BrokenProcessPool) as ex:
        raise LedgerError(
            f"cannot start the ledger verification workers ({ex}); retry with workers=1"
        ) from ex


def verify_ledger_file(path: Path, expected_head: tuple[int, str] | None = None) -> ChainVerification:
    """Offline check of a copied ledger database, opened read-only (never modified)."""
    if not path.is_file():
        raise LedgerFileError(
            f"ledger copy {path} does not exist or is not a file; give the path of a copied state database"
        )
    uri = path.resolve().as_uri() + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as ex:
        raise LedgerFileError(
            f"cannot open ledger copy {path} read-only ({ex}); check its permissions"
        ) from ex
    try:
        return verify_ledger(conn, expected_head)
    except LedgerError as ex:
        raise LedgerFileError(
            f"{path} is not a readable seal ledger ({ex.__cause__}); copy the state "
            "database with the backup command and try again"
        ) from ex
    finally:
        conn.close()


def request_sequences(conn: sqlite3.Connection, request_id: str, *, except_event: str) -> list[int]:
    """Sequences of a request's own records (all but ``except_event``), in order."""
    return [
        int(row[0])
        for row in conn.execute(
            "SELECT sequence FROM audit_log WHERE request_id = ? AND event != ? ORDER BY sequence",
            (request_id, except_event),
        )
    ]


def record_rows(conn: sqlite3.Connection, first: int, last: int) -> list[dict[str, object]]:
    """Records ``first``..``last`` as column -> stored value (RECORD_COLUMNS), in order."""
    columns = ", ".join(RECORD_COLUMNS)
    rows = conn.execute(
        f"SELECT {columns} FROM audit_log WHERE sequence BETWEEN ? AND ? ORDER BY sequence",  # noqa: S608
        (first, last),
    ).fetchall()
    return [dict(zip(RECORD_COLUMNS, row, strict=True)) for row in rows]


def record_time(conn: sqlite3.Connection, sequence: int) -> str:
    """The stored time of one record ('' if there is none)."""
    row = conn.execute("SELECT time FROM audit_log WHERE sequence = ?", (sequence,)).fetchone()
    return str(row[0]) if row else ""
