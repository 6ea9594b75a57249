"""Run every benchmark of issue 8 one after the other and print one report.

    .venv/bin/python bench/run_all.py            # the sizes the issue asks for
    .venv/bin/python bench/run_all.py --quick    # small sizes, a few minutes

Each bench runs as its own process (a fresh SoftHSM token, a fresh seald), in this
order: sealing throughput/latency/concurrency (bench_seal.py), CPU per document four
ways (bench_cpu.py), a volume request end to end (bench_volume.py), one large file
(bench_large.py), token removal -> refusal (bench_token_removal.py, under
umockdev-wrapper), audit chain verification (bench_ledger.py), a watch-stream flood
against another client's calls (bench_stream_flood.py). The machine's load
average is printed with each: the benches compare against in-process baselines run
side by side, but on a busy machine the parallel speed-up cannot show.
Exit status: non-zero if any bench failed to run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[\w+\s*\]")


def benches(quick: bool) -> list[tuple[str, list[str]]]:
    seal = (
        ["--batch", "60", "--clients", "16", "--rounds", "5"]
        if quick
        else ["--batch", "500", "--clients", "64", "--rounds", "20"]
    )
    large = ["--mib", "30"] if quick else ["--mib", "200"]
    removals = "50" if quick else "200"
    records = "100000" if quick else "1000000"
    wrapper = shutil.which("umockdev-wrapper")
    removal_cmd = (
        [wrapper, PY, str(ROOT / "bench" / "bench_token_removal.py"), removals]
        if wrapper
        else [PY, "-c", "raise SystemExit('umockdev-wrapper not installed (Debian package umockdev)')"]
    )
    cpu_docs = "60" if quick else "300"
    volume_docs = "1000" if quick else "10000"
    return [
        ("sealing: throughput, latency, concurrency", [PY, str(ROOT / "bench" / "bench_seal.py"), *seal]),
        ("CPU per document, four ways", [PY, str(ROOT / "bench" / "bench_cpu.py"), "--docs", cpu_docs]),
        ("volume request end to end", [PY, str(ROOT / "bench" / "bench_volume.py"), "--docs", volume_docs]),
        ("large file", [PY, str(ROOT / "bench" / "bench_large.py"), *large]),
        ("token removal -> refusal", removal_cmd),
        ("audit chain verification", [PY, str(ROOT / "bench" / "bench_ledger.py"), "--records", records]),
        ("watch-stream flood vs another client", [PY, str(ROOT / "bench" / "bench_stream_flood.py")]),
        (
            "sealing job vs three one-mark requests, through seald (issue 16)",
            [PY, str(ROOT / "bench" / "bench_job_daemon.py"), "--rounds", "7" if quick else "21"],
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes (minutes, not tens of minutes)")
    args = parser.parse_args()
    env = dict(os.environ)
    paths = [str(ROOT / "daemon"), str(ROOT / "client"), str(ROOT / "proto")]
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    failures = 0
    kind = "quick" if args.quick else "full"
    report = [f"seal appliance benchmarks ({kind}), {time.strftime('%Y-%m-%d %H:%M %Z')}"]
    for title, cmd in benches(args.quick):
        started = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, cwd=ROOT)
        took = time.perf_counter() - started
        lines = [
            line
            for line in done.stdout.splitlines()
            # Leave out fontTools chatter from fixtures and the daemon's own log lines.
            if line.strip() and "NOT subset" not in line and not _LOG_LINE.match(line)
        ]
        report.append("")
        report.append(
            f"== {title}  ({took:.0f} s, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
        )
        report.append("   $ " + " ".join(Path(c).name if c == PY else c for c in cmd))
        report.extend("   " + line for line in lines)
        if done.returncode != 0:
            failures += 1
            tail = done.stderr.strip().splitlines()[-5:]
            report.append(f"   FAILED (exit {done.returncode}): " + " | ".join(tail))
        print(f"done: {title} ({took:.0f} s)", file=sys.stderr, flush=True)
    print("\n" + "\n".join(report))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
