"""Benchmark: one large PDF (default 200 MiB, many pages with images) through seald.

Generated (never checked in) by tests/assets/large_pdf.py, uploaded in 256 KiB chunks,
checked, approved by two approvers (each downloads and hashes the original), sealed,
downloaded. Reports the time of each step, the seald process's peak RSS growth
(target <= 64 MiB: uploads spool to disk, checks and sealing read the file, downloads
stream from disk) and checks the result with pdfsig: signature valid, "Total document
signed", and the /ByteRange covers the whole file (pyHanko issue #336).

    .venv/bin/python bench/bench_large.py [--mib 200]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [
    str(ROOT / "softhsm-fixtures"),
    str(ROOT / "tests"),
    str(ROOT / "tests" / "assets"),
]

from build_fixtures import build_fixtures  # noqa: E402
from fixture_layout import load_fixtures  # noqa: E402
from large_pdf import write_large_pdf  # noqa: E402

from seald_testing.daemon import SealDaemon, make_pdf, unlock_first_use  # noqa: E402
from seald_testing.large_flow import LargeFlowFigures, byte_range_covers_file, run_large_flow  # noqa: E402

GROWTH_TARGET_MIB = 64


def measure(mib: float) -> LargeFlowFigures:
    with tempfile.TemporaryDirectory(prefix="bench-large-") as tmp_name:
        tmp = Path(tmp_name)
        build_fixtures(tmp / "fx")
        fx = load_fixtures(tmp / "fx")
        os.environ["SOFTHSM2_CONF"] = str(fx.softhsm2_conf)
        source = tmp / "large.pdf"
        write_large_pdf(source, int(mib * (1 << 20)))
        d = SealDaemon(fx)
        d.start()
        try:
            with d.client("liu.yang") as custodian:
                unlock_first_use(custodian, fx, "contract")
            # Warm up on a one-page document so lazily loaded code is not counted as growth.
            run_large_flow(d, make_pdf(tmp / "small.pdf"), tmp / "small.sealed.pdf")
            return run_large_flow(d, source, tmp / "large.sealed.pdf")
        finally:
            d.stop()


def report(f: LargeFlowFigures) -> list[str]:
    covers = byte_range_covers_file(f.signed, f.sealed_size)
    return [
        f"large file ({f.size / (1 << 20):.1f} MiB PDF, {f.size} bytes)",
        f"  submit (chunked upload + checks): {f.submit_s:8.2f} s",
        f"  two approvals (each downloads)  : {f.approve_s:8.2f} s",
        f"  approval -> SIGNED (seal)       : {f.seal_s:8.2f} s",
        f"  download sealed                 : {f.download_s:8.2f} s",
        f"  seald peak RSS growth           : {f.growth_mib:8.1f} MiB"
        f"  (target <= {GROWTH_TARGET_MIB} MiB; RSS before {f.rss_before_kib / 1024:.1f} MiB)",
        f"  pdfsig: valid={f.signed.valid} total_document_signed={f.signed.total_document_signed}"
        f" ranges={list(f.signed.ranges)} file={f.sealed_size} byte_range_covers_file={covers}",
    ]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=float, default=200)
    args = parser.parse_args()
    started = time.perf_counter()
    figures = measure(args.mib)
    print("\n".join(report(figures)))
    print(f"  (whole bench {time.perf_counter() - started:.0f} s)")
    ok = (
        figures.signed.valid
        and figures.signed.total_document_signed
        and byte_range_covers_file(figures.signed, figures.sealed_size)
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
