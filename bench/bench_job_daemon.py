"""Benchmark: a sealing job (issue 16) against three one-mark requests, through a real seald.

Issue 16's measure, as worded: "time from last approval to sealed PDF". One real seald on
loopback (mutual TLS, SQLite on disk, audit records) with three seals on three SoftHSM
tokens: the fixtures' contract and official seals, and the legal representative's seal
on a new token made as ``tests/integration/test_job_daemon.py`` makes it (key generated
on the token, certificate from the fixtures' seal CA). Every token is unlocked before
the clock starts, so the token is never the wait.

- **job**: one request with the three marks of the contract (the contract seal at
  "（盖章）" on the last page, the official seal as 骑缝章 over all pages, the legal
  representative's seal 35 mm right of the anchor), one approval round (li.na, then
  wang.fang: the approvers every one of the three seals needs). Timed: from the
  completing approval RPC (wang.fang's, built in advance: the approver's download and
  hashing are not sealing) to SIGNED on a ``WatchRequests`` stream opened before it.
- **three requests** (today): the same three seals as three one-mark requests in
  sequence, each submitted with the previous one's sealed output (downloaded), approved
  the same way, each timed from its completing approval RPC to SIGNED on a watch stream;
  the three times summed. Submit, first approvals and downloads are not timed on
  either side.

Rounds alternate which side goes first; medians. Target: job <= 0.6x.

    .venv/bin/python bench/bench_job_daemon.py [--rounds 7] [--pages 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [
    str(ROOT / "softhsm-fixtures"),
    str(ROOT / "tests"),
    str(ROOT / "tests" / "assets"),
    str(ROOT / "bench"),
]

from bench_seal import prepared_approval, wait_signed  # noqa: E402
from build_fixtures import build_fixtures  # noqa: E402
from contract_pdf import ANCHOR  # noqa: E402
from fixture_layout import load_fixtures  # noqa: E402

from sealapi.v1 import common_pb2  # noqa: E402
from seald_testing.daemon import SealDaemon  # noqa: E402
from seald_testing.jobs import (  # noqa: E402
    CONTRACT_MARKS,
    LEGAL,
    activate_legal_seal,
    contract_file,
    legal_seal_edit,
    pdfsig_signatures,
    prepare_legal_token,
    unlock_all,
)

# Today's one-mark requests for the same three marks (page 0 = the last page).
REQUESTS = [
    ("contract", common_pb2.Placement(page=0, anchor_text=ANCHOR)),
    ("official", common_pb2.Placement(page=0, y_mm=120, cross_page=True)),
    (LEGAL, common_pb2.Placement(page=0, x_mm=35, anchor_text=ANCHOR)),
]


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of seald and its live children (the seal workers), each with the CPU
    of the children it has reaped (pdftotext for anchors)."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        pids.extend(int(c) for c in (task / "children").read_text(encoding="ascii").split())
    total = 0.0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += sum(int(f) for f in fields[11:15]) / tick  # utime, stime, cutime, cstime
    return total


def completing_approval(d: SealDaemon, request_id: str, work: Path) -> tuple[float, float]:
    """li.na approves; wang.fang's approval (built beforehand) completes the request.
    Returns (seconds from that RPC's call to SIGNED on a watch stream opened before it,
    seald's CPU seconds in that window)."""
    assert d.proc is not None
    with d.client("li.na") as li:
        li.approve(request_id)
    with d.client("wang.fang") as wang, d.client("zhang.wei") as requester:
        approval = prepared_approval(wang, request_id, work)
        events = requester.watch(request_id=request_id)
        cpu, started = tree_cpu_s(d.proc.pid), time.perf_counter()
        wang._requests.ApproveRequest(approval, timeout=60)
        wait_signed(events)
        return time.perf_counter() - started, tree_cpu_s(d.proc.pid) - cpu


def job_round(d: SealDaemon, src: Path, work: Path, round_no: int) -> tuple[float, float]:
    with d.client("zhang.wei") as z:
        request = z.submit(
            [src],
            seal_id="",
            reason="bench",
            category="contract",
            placement=common_pb2.Placement(),
            marks=CONTRACT_MARKS,
        )
    elapsed = completing_approval(d, request.request_id, work)
    with d.client("zhang.wei") as z:  # not timed: kept to check with pdfsig
        z.download(request.request_id, 0, work / f"job-{round_no}.pdf")
    return elapsed


def requests_round(d: SealDaemon, src: Path, work: Path, round_no: int) -> list[tuple[float, float]]:
    current, times = src, []
    for step, (seal_id, placement) in enumerate(REQUESTS, start=1):
        with d.client("zhang.wei") as z:
            request = z.submit(
                [current], seal_id=seal_id, reason="bench", category="contract", placement=placement
            )
        times.append(completing_approval(d, request.request_id, work))
        current = work / f"requests-{round_no}-{step}.pdf"
        with d.client("zhang.wei") as z:
            z.download(request.request_id, 0, current)  # the next request's input: not timed
    return times


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--pages", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-job-daemon-") as tmp_name:
        tmp = Path(tmp_name)
        build_fixtures(tmp / "fx")
        fx = load_fixtures(tmp / "fx")
        os.environ["SOFTHSM2_CONF"] = str(fx.softhsm2_conf)
        d = SealDaemon(fx, legal_seal_edit(prepare_legal_token(fx)))
        d.start()
        try:
            activate_legal_seal(d)
            unlock_all(d)  # the token is never the wait
            src = contract_file(tmp / "contract.pdf", pages=args.pages)
            job_round(d, src, tmp, -1)  # warm-up: workers, seal images, certificate reads
            requests_round(d, src, tmp, -1)
            load_at_start = os.getloadavg()
            jobs: list[tuple[float, float]] = []
            three: list[list[tuple[float, float]]] = []
            for round_no in range(args.rounds):
                if round_no % 2 == 0:
                    jobs.append(job_round(d, src, tmp, round_no))
                    three.append(requests_round(d, src, tmp, round_no))
                else:
                    three.append(requests_round(d, src, tmp, round_no))
                    jobs.append(job_round(d, src, tmp, round_no))
            load_at_end = os.getloadavg()
            # Both sides made the same thing: three valid signatures, the last covering
            # the whole file, qpdf --check clean (asserted by pdfsig_signatures).
            last = args.rounds - 1
            checked = [
                pdfsig_signatures(tmp / f"{side}-{last}{tail}.pdf")
                for side, tail in (("job", ""), ("requests", "-3"))
            ]
            assert all(len(fields) == 3 for fields in checked), checked
        finally:
            d.stop()

    job_wall = [w for w, _ in jobs]
    sums = [sum(w for w, _ in t) for t in three]
    job_ms, sum_ms = statistics.median(job_wall) * 1000, statistics.median(sums) * 1000
    per_round = [j / s for j, s in zip(job_wall, sums, strict=True)]
    # CPU in 10 ms clock ticks per process: the mean over all rounds, not a median.
    job_cpu = sum(c for _, c in jobs) / len(jobs) * 1000
    sum_cpu = sum(c for t in three for _, c in t) / len(three) * 1000
    print(f"pdfsig + qpdf --check on the last round's outputs: 3 valid signatures each ({checked})")
    print(f"{args.pages}-page contract, three seals (anchor, 骑缝章 over all pages, anchor + 35 mm)")
    print(
        f"rounds {args.rounds}; load average at start {'/'.join(f'{x:.2f}' for x in load_at_start)}, "
        f"at end {'/'.join(f'{x:.2f}' for x in load_at_end)} (1/5/15 min)"
    )
    print("timed: completing approval RPC -> SIGNED on a WatchRequests stream (no polling)")
    print(f"one job (three signatures):           median {job_ms:8.1f} ms  samples {_ms(job_wall)}")
    print(f"three sequential one-mark requests:   median {sum_ms:8.1f} ms  samples {_ms(sums)}")
    for i, (seal_id, _) in enumerate(REQUESTS):
        print(
            f"  request {i + 1} ({seal_id}): median "
            f"{statistics.median(t[i][0] for t in three) * 1000:8.1f} ms"
        )
    print(f"job vs three sequential requests: {job_ms / sum_ms:.2f}x (medians; target <= 0.60x)")
    print(
        f"seald CPU (process + workers + their children) in the timed window, mean per round: "
        f"job {job_cpu:.1f} ms, three requests {sum_cpu:.1f} ms: {job_cpu / sum_cpu:.2f}x"
    )
    print(f"per-round ratios: {[round(r, 2) for r in per_round]}, median {statistics.median(per_round):.2f}x")
    return 0


def _ms(values: list[float]) -> list[float]:
    return [round(v * 1000, 1) for v in values]


if __name__ == "__main__":
    sys.exit(main())
