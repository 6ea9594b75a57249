"""Benchmark: verify a 1,000,000-record audit ledger (SEAL-RULES R10).

Builds a valid chain in a temporary SQLite file (executemany in large transactions),
then times verify_ledger() against an in-process baseline: merely iterating the same
rows with SELECT. Prints records/s for both and their ratio, the single-process rate
with the SQLite json_object encoder (the fast path) and with the Python encoder (the
fallback), the load average (the machine is shared: read the figures with it), and
the time of the usage report (R11) for that ledger as the daemon makes it: JSON and
CSV over every record, the sealed PDF over the first --pdf-hours of it.

    .venv/bin/python bench/bench_ledger.py [--records N] [--keep PATH | --reuse PATH]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from seald.audit.operations import seal_report_pdf
from seald.audit.reports import build_report, render
from seald.domain.audit import GENESIS_HASH, canonical_row_bytes, format_time
from seald.store import ledger as ledger_module
from seald.store.checkpoints import AuditKey
from seald.store.ledger import Ledger, verify_ledger

BATCH = 50_000
LEDGER_START = datetime(2026, 1, 5, 8, 30, tzinfo=UTC)
REPORT_FROM = datetime(2026, 1, 1, tzinfo=UTC)
REPORT_TO = datetime(2027, 1, 1, tzinfo=UTC)
TARGET_RECORDS_PER_SECOND = 100_000


def synthetic_rows(count: int) -> Iterator[tuple[object, ...]]:
    """A valid chain of realistic-looking records, hashed with the verifier's own encoder."""
    start = LEDGER_START
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


def time_verify(
    path: Path, workers: int | None, *, python_encoder: bool = False, parallel_from: int | None = None
) -> tuple[float, float]:
    """(records/s wall, CPU seconds of this process) of one verification of the file."""
    conn = sqlite3.connect(path)
    saved = ledger_module._sql_encoder_agrees
    if python_encoder:
        ledger_module._sql_encoder_agrees = False  # the Python encoder (the fallback path)
    try:
        cpu, started = time.process_time(), time.perf_counter()
        threshold = ledger_module.PARALLEL_FROM_RECORDS if parallel_from is None else parallel_from
        result = verify_ledger(conn, workers=workers, parallel_from_records=threshold)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        ledger_module._sql_encoder_agrees = saved
        conn.close()
    if not result.ok:
        raise SystemExit(f"benchmark ledger did not verify: {result}")
    return result.records_checked / seconds, cpu


def time_reports(path: Path, pdf_hours: float) -> None:
    """The daemon's report path (AuditOperations.report) over the whole ledger."""
    ledger = Ledger("bench", lambda: REPORT_FROM)
    with tempfile.TemporaryDirectory() as audit_dir:
        AuditKey.load_or_create(Path(audit_dir), "bench")
        for fmt, to_time in (
            ("json", REPORT_TO),
            ("csv", REPORT_TO),
            ("pdf", LEDGER_START + timedelta(hours=pdf_hours)),
        ):
            started = time.perf_counter()
            conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
            report = build_report(ledger.records(conn, to_time=to_time), REPORT_FROM, to_time)
            (last_time,) = conn.execute(
                "SELECT time FROM audit_log WHERE sequence = ?", (report.ledger_head_sequence,)
            ).fetchone()
            conn.close()
            data = render(report, fmt)
            if fmt == "pdf":
                data = seal_report_pdf(data, Path(audit_dir), last_time, REPORT_FROM)
            seconds = time.perf_counter() - started
            print(
                f"report {fmt}: {seconds:.1f} s for {report.ledger_head_sequence:,} records read, "
                f"{len(report.uses):,} uses, {len(data) / 1e6:.1f} MB"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, help="build the ledger at this path and keep it")
    parser.add_argument("--reuse", type=Path, help="use a ledger kept by an earlier --keep run")
    parser.add_argument(
        "--pdf-hours", type=float, default=1.0, help="the sealed PDF report covers this many hours"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        path = args.reuse or args.keep or Path(scratch) / "ledger.sqlite3"
        if not args.reuse:
            build_seconds = build_ledger(path, args.records)
            print(
                f"built {args.records} records in {build_seconds:.1f} s "
                f"({args.records / build_seconds:,.0f} rec/s)"
            )
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"load average before: {load} on {os.cpu_count()} CPUs")
        conn = sqlite3.connect(path)
        time_read_only(conn)  # warm the page cache so every timing reads from memory
        read_count, read_seconds = time_read_only(conn)
        conn.close()
        read_rate = read_count / read_seconds
        verify_rate, _ = time_verify(path, None)
        single_rate, single_cpu = time_verify(path, 1)
        python_rate, python_cpu = time_verify(path, 1, python_encoder=True)
        print(f"read-only baseline (SELECT every row): {read_rate:,.0f} rec/s")
        mode = (
            f"{os.cpu_count()} worker processes"
            if read_count >= ledger_module.PARALLEL_FROM_RECORDS
            else f"one process below {ledger_module.PARALLEL_FROM_RECORDS:,} records"
        )
        print(f"verify, default ({mode}): {verify_rate:,.0f} rec/s")
        parallel_rate, _ = time_verify(path, os.cpu_count() or 1, parallel_from=0)
        print(f"verify, forced {os.cpu_count()} worker processes: {parallel_rate:,.0f} rec/s")
        print(
            f"verify, 1 process, SQLite json_object encoder: {single_rate:,.0f} rec/s, "
            f"{single_cpu / read_count * 1e6:.2f} us CPU/record"
        )
        print(
            f"verify, 1 process, Python encoder (fallback): {python_rate:,.0f} rec/s, "
            f"{python_cpu / read_count * 1e6:.2f} us CPU/record"
        )
        print(
            f"ratio read/verify M/N {read_rate / verify_rate:.2f}; "
            f"fast/fallback {single_rate / python_rate:.2f}"
        )
        verdict = "meets" if verify_rate >= TARGET_RECORDS_PER_SECOND else "MISSES"
        print(
            f"{verdict} the target of {TARGET_RECORDS_PER_SECOND:,} rec/s "
            f"({read_count / verify_rate:.2f} s for {read_count:,} records)"
        )
        time_reports(path, args.pdf_hours)
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
