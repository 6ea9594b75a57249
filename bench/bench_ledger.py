"""Benchmark: verify a 1,000,000-record audit ledger (SEAL-RULES R10).

Builds a valid chain in a temporary SQLite file (executemany in large transactions),
then times verify_ledger() against an in-process baseline: merely iterating the same
rows with SELECT. Prints records/s for both and their ratio.

    .venv/bin/python bench/bench_ledger.py [--records N] [--keep PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from seald.domain.audit import GENESIS_HASH, canonical_row_bytes, format_time
from seald.store.ledger import Ledger, verify_ledger

BATCH = 50_000
TARGET_RECORDS_PER_SECOND = 100_000


def synthetic_rows(count: int) -> Iterator[tuple[object, ...]]:
    """A valid chain of realistic-looking records, hashed with the verifier's own encoder."""
    start = datetime(2026, 1, 5, 8, 30, tzinfo=UTC)
    previous = GENESIS_HASH
    events = ("request.submitted", "request.approved", "seal.sign_intent", "seal.signed")
    for sequence in range(1, count + 1):
        request = f"req-{sequence // 4:08d}"
        document = hashlib.sha256(request.encode()).hexdigest()
        row: list[object] = [
            sequence,
            format_time(start + timedelta(milliseconds=150 * sequence)),
            "seal-host-01.example.cn",
            events[sequence % 4],
            f"user{sequence % 37}@example.cn",
            "approver",
            "contract-seal-2026",
            request,
            f"合同-{sequence // 4}.pdf",
            document,
            "采购合同签署",
            "ok",
            json.dumps({"approvals": sequence % 3}, sort_keys=True, separators=(",", ":")),
            previous,
            "",
        ]
        row[14] = hashlib.sha256(canonical_row_bytes(row)).hexdigest()
        previous = str(row[14])
        yield tuple(row)


def build_ledger(path: Path, count: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    Ledger.create_schema(conn)
    insert = (
        "INSERT INTO audit_log (sequence, time, host, event, principal, role, seal_id, "
        "request_id, document_name, document_sha256, reason, outcome, details_json, "
        "previous_hash, record_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    started = time.perf_counter()
    rows = synthetic_rows(count)
    while True:
        batch = [row for _, row in zip(range(BATCH), rows, strict=False)]
        if not batch:
            break
        conn.execute("BEGIN")
        conn.executemany(insert, batch)
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return time.perf_counter() - started


def time_read_only(conn: sqlite3.Connection) -> tuple[int, float]:
    started = time.perf_counter()
    count = 0
    for _ in conn.execute("SELECT * FROM audit_log ORDER BY sequence"):
        count += 1
    return count, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="build the ledger at this path and keep it")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        path = args.keep or Path(scratch) / "ledger.sqlite3"
        build_seconds = build_ledger(path, args.records)
        print(
            f"built {args.records} records in {build_seconds:.1f} s "
            f"({args.records / build_seconds:,.0f} rec/s)"
        )

        conn = sqlite3.connect(path)
        time_read_only(conn)  # warm the page cache so both timings read from memory
        read_count, read_seconds = time_read_only(conn)
        started = time.perf_counter()
        result = verify_ledger(conn)
        verify_seconds = time.perf_counter() - started
        conn.close()

    if not result.ok or result.records_checked != args.records or read_count != args.records:
        raise SystemExit(f"benchmark ledger did not verify: {result}")
    verify_rate = result.records_checked / verify_seconds
    read_rate = read_count / read_seconds
    print(
        f"verify: {verify_rate:,.0f} rec/s; read-only baseline: {read_rate:,.0f} rec/s; "
        f"ratio M/N {read_rate / verify_rate:.2f}"
    )
    verdict = "meets" if verify_rate >= TARGET_RECORDS_PER_SECOND else "MISSES"
    print(
        f"{verdict} the target of {TARGET_RECORDS_PER_SECOND:,} rec/s "
        f"({verify_seconds:.2f} s for {result.records_checked:,} records)"
    )


if __name__ == "__main__":
    main()
