"""Benchmark: usage report (签盖记录汇总表, R11) over a large ledger.

Builds the same synthetic chain as bench_ledger.py (1,000,000 records: every fourth is
a seal.signed use), then times, in one run: reading every record through Ledger.records
(the in-process baseline), building the summary, and rendering JSON, CSV and PDF.
Prints seconds and the ratio to the read baseline. The PDF lists every use, so
--pdf-records caps the ledger size used for the PDF timing (default: all).

    .venv/bin/python bench/bench_report.py [--records N] [--pdf-records N]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ledger import build_ledger

from seald.audit.reports import build_report, render
from seald.store.ledger import Ledger

FROM = datetime(2026, 1, 1, tzinfo=UTC)
TO = datetime(2027, 1, 1, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--pdf-records", type=int, default=0, help="0: the whole ledger")
    args = parser.parse_args()
    ledger = Ledger("bench", lambda: FROM)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "ledger.sqlite3"
        build_ledger(path, args.records)
        conn = sqlite3.connect(path)
        started = time.perf_counter()
        records = list(ledger.records(conn))
        read_s = time.perf_counter() - started
        started = time.perf_counter()
        report = build_report(records, FROM, TO)
        build_s = time.perf_counter() - started
        print(f"{len(records):,} records, {len(report.uses):,} uses")
        print(f"read records (baseline): {read_s:.2f} s")
        print(f"build summary: {build_s:.2f} s (ratio {build_s / read_s:.2f})")
        for fmt in ("json", "csv"):
            started = time.perf_counter()
            data = render(report, fmt)
            seconds = time.perf_counter() - started
            print(f"render {fmt}: {seconds:.2f} s, {len(data) / 1e6:.1f} MB (ratio {seconds / read_s:.2f})")
        pdf_records = args.pdf_records or args.records
        pdf_report = build_report(records[:pdf_records], FROM, TO)
        started = time.perf_counter()
        data = render(pdf_report, "pdf")
        seconds = time.perf_counter() - started
        print(
            f"render pdf for {pdf_records:,} records ({len(pdf_report.uses):,} uses): {seconds:.2f} s, "
            f"{len(data) / 1e6:.1f} MB (ratio to reading them "
            f"{seconds / (read_s * pdf_records / len(records)):.1f})"
        )
        conn.close()


if __name__ == "__main__":
    main()
