"""A volume run end to end through a real seald (issue 20): N one-page PDFs in one request.

    .venv/bin/python bench/bench_volume.py [--docs 10000] [--workers 0] [--sample 20] [--baseline 200]
    .venv/bin/python bench/bench_volume.py --docs 1000,5000     # memory flat in N?

Submit (one SubmitRequest stream); two approvals (each approver's client hashes every
original from one DownloadAllDocuments stream, as `sealctl approve` does; the second
approval is built first, then sent: the sealing clock starts at that RPC); sealing (from
the approval that completes the quorum to SIGNED on a WatchRequests stream, with the CPU
of seald and its workers from /proc over the same span); the download of every sealed
file in one DownloadAllDocuments stream (each checked against its recorded SHA-256).
Prints each step's time and docs/s, CPU per document, throughput against pyHanko's
documented loop (bench/documented_loop.py on ``--baseline`` of the same PDFs, same token,
run first), and the memory of seald and its worker processes together: the peak of
their summed RSS sampled every 100 ms, the same for PSS, each process's own peak (VmHWM)
and seald's RSS after each step. With several counts (``--docs 1000,5000``) each runs
on fresh fixtures and a last line gives the peak's growth per 1,000 documents.
pdfsig checks a sample of the sealed files. The config raises the per-request document
limit to N and the per-client rate limit.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [
    str(ROOT / "bench"),
    str(ROOT / "softhsm-fixtures"),
    str(ROOT / "tests"),
    str(ROOT / "tests" / "assets"),
]

from bench_seal import InProcessSealer, prepared_approval, wait_signed  # noqa: E402
from build_fixtures import build_fixtures  # noqa: E402
from documented_loop import LoopResult, documented_pyhanko_loop  # noqa: E402
from fixture_layout import SealFixtures, load_fixtures  # noqa: E402
from make_pdfs import valid_pdf  # noqa: E402

from sealapi.v1 import common_pb2, requests_pb2  # noqa: E402
from seald_testing.config import DaemonConfig  # noqa: E402
from seald_testing.daemon import SealDaemon  # noqa: E402
from seald_testing.large_flow import pdfsig, process_tree_cpu_s, status_kib  # noqa: E402

PLACEMENT = common_pb2.Placement(page=0, x_mm=150, y_mm=240)
PIN = "bench-20261206"


def tree_pids(pid: int) -> list[int]:
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text(encoding="ascii").split()
    except OSError:
        return pids
    for child in children:
        pids.extend(tree_pids(int(child)))
    return pids


def pss_kib(pid: int) -> int:
    text = Path(f"/proc/{pid}/smaps_rollup").read_text(encoding="ascii")
    match = re.search(r"^Pss:\s+(\d+) kB$", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def tree_rss_kib(pid: int) -> int:
    return sum(status_kib(p, "VmRSS") for p in tree_pids(pid))


def process_name(pid: int) -> str:
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    text = b" ".join(argv).decode(errors="replace")
    if "resource_tracker" in text:
        return "multiprocessing resource tracker"
    if "spawn_main" in text:
        return "seal worker"
    return "seald"


class TreeMemory:
    """Samples the summed RSS of a process and its descendants every ``interval`` s."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_sum_kib = 0
        self.peak_pss_kib = 0  # proportional set size: shared pages counted once overall
        self.hwm_kib: dict[int, int] = {}
        self.names: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            total = pss = 0
            for pid in tree_pids(self.pid):
                try:
                    total += status_kib(pid, "VmRSS")
                    self.hwm_kib[pid] = status_kib(pid, "VmHWM")
                    self.names.setdefault(pid, process_name(pid))
                    pss += pss_kib(pid)
                except (OSError, RuntimeError):
                    continue  # a worker that just ended
            self.peak_sum_kib = max(self.peak_sum_kib, total)
            self.peak_pss_kib = max(self.peak_pss_kib, pss)


@dataclass
class Run:
    n: int
    steps: dict[str, float] = field(default_factory=dict)
    seald_after: list[tuple[str, int]] = field(default_factory=list)  # (step, RSS KiB)
    idle_kib: int = 0
    peak_sum_kib: int = 0
    peak_pss_kib: int = 0
    hwm: list[tuple[str, int]] = field(default_factory=list)
    cpu_total_s: float = 0.0
    cpu_seald_s: float = 0.0
    sampled: int = 0
    bad: int = 0
    documented: LoopResult | None = None


def run(n: int, workers: int, sample: int, baseline: int) -> Run:
    result = Run(n)
    with tempfile.TemporaryDirectory(prefix="bench-volume-") as tmp_name:
        tmp = Path(tmp_name)
        build_fixtures(tmp / "fx")
        fx = load_fixtures(tmp / "fx")
        os.environ["SOFTHSM2_CONF"] = str(fx.softhsm2_conf)
        sources = _sources(tmp / "docs", n)
        if baseline:
            # The fixed outside yardstick, before seald changes the token's initial PIN.
            (tmp / "documented").mkdir()
            contract = fx.seals["contract"]
            result.documented = documented_pyhanko_loop(
                fx.module,
                contract.token_label,
                contract.user_pin,
                contract.key_label,
                InProcessSealer(fx).png,
                sources[:baseline],
                tmp / "documented",
            )
        d = SealDaemon(fx, _config(n, workers))
        d.start()
        try:
            _flow(d, fx, sources, tmp, result)
        finally:
            d.stop()
        picked = random.Random(20).sample(range(n), min(sample, n))
        result.sampled = len(picked)
        result.bad = sum(1 for i in picked if not pdfsig(tmp / "sealed" / f"{i:05d}.sealed.pdf").valid)
    return result


def _sources(docs: Path, n: int) -> list[Path]:
    docs.mkdir()
    one_page = valid_pdf(1)
    sources = []
    for i in range(n):
        path = docs / f"invoice-{i:05d}.pdf"
        path.write_bytes(one_page + f"\n% invoice {i}\n".encode())
        sources.append(path)
    return sources


def _config(n: int, workers: int) -> object:
    def configure(c: DaemonConfig) -> None:
        c.set(
            "requests",
            max_documents_per_request=n,
            rate_limit_per_second=100000.0,
            rate_limit_burst=100000,
        ).set("server", seal_workers=workers)

    return configure


def _flow(d: SealDaemon, fx: SealFixtures, sources: list[Path], tmp: Path, result: Run) -> None:
    assert d.proc is not None
    pid, n = d.proc.pid, len(sources)

    def step(name: str, started: float) -> None:
        result.steps[name] = time.perf_counter() - started
        result.seald_after.append((name, status_kib(pid, "VmRSS")))

    with d.client("liu.yang") as custodian:
        custodian.change_pin("contract", fx.seals["contract"].user_pin, PIN)
        custodian.unlock("contract", PIN)
    result.idle_kib = tree_rss_kib(pid)  # started, workers spawned, nothing submitted
    with TreeMemory(pid) as memory:
        t0 = time.perf_counter()
        with d.client("zhang.wei") as requester:
            rid = requester.submit(
                sources, seal_id="contract", reason="月末发票", category="contract", placement=PLACEMENT
            ).request_id
        step("submit (one stream)", t0)
        t0 = time.perf_counter()
        with d.client("li.na") as li:
            li.approve(rid)
        step("first approval (hash + approve)", t0)
        t0 = time.perf_counter()
        with d.client("wang.fang") as wang:
            approval = prepared_approval(wang, rid, tmp)
        step("second approver hashes all", t0)
        with d.client("wang.fang") as wang, d.client("zhang.wei") as requester:
            events = requester.watch(request_id=rid)
            cpu_before = process_tree_cpu_s(pid)
            t0 = time.perf_counter()
            wang._requests.ApproveRequest(approval, timeout=60)
            wait_signed(events)
            step("sealing, approval -> SIGNED", t0)
            cpu_after = process_tree_cpu_s(pid)
        result.cpu_seald_s = cpu_after[pid] - cpu_before.get(pid, 0.0)
        result.cpu_total_s = sum(v - cpu_before.get(p, 0.0) for p, v in cpu_after.items())
        out = tmp / "sealed"
        out.mkdir()
        t0 = time.perf_counter()
        with d.client("zhang.wei") as requester:
            targets = {i: out / f"{i:05d}.sealed.pdf" for i in range(n)}
            requester.download_all(rid, targets, requests_pb2.DOCUMENT_VARIANT_SEALED, n)
        step("download all (one stream)", t0)
    result.peak_sum_kib, result.peak_pss_kib = memory.peak_sum_kib, memory.peak_pss_kib
    result.hwm = [(memory.names.get(p, "?"), kib) for p, kib in sorted(memory.hwm_kib.items())]


def report(r: Run, workers: int) -> None:
    print(f"volume run: {r.n} one-page PDFs in one request, {workers} seal workers")
    for name, seconds in r.steps.items():
        print(f"  {name:34s}: {seconds:8.1f} s  ({r.n / seconds:7.1f} docs/s)")
    print(f"  end to end                        : {sum(r.steps.values()):8.1f} s")
    seal_s = r.steps["sealing, approval -> SIGNED"]
    print(
        f"  CPU per document while sealing: {r.cpu_total_s / r.n * 1000:.2f} ms"
        f" (seald process {r.cpu_seald_s / r.n * 1000:.2f} ms, workers the rest)"
    )
    if r.documented is not None:
        print(
            f"  documented pyHanko loop ({r.documented.documents} of the same PDFs):"
            f" {r.documented.docs_per_s:.1f} docs/s, {r.documented.cpu_ms_per_doc:.1f} ms CPU/doc"
        )
        print(f"throughput vs documented pyHanko loop: {r.n / seal_s / r.documented.docs_per_s:.2f}x")
    print(
        f"  memory, seald + workers: peak of summed RSS {r.peak_sum_kib / 1024:.1f} MiB"
        f" (idle before the run {r.idle_kib / 1024:.1f} MiB), peak of summed PSS"
        f" {r.peak_pss_kib / 1024:.1f} MiB (bound 512 MiB)"
    )
    for name, kib in r.hwm:
        print(f"    {name}: peak {kib / 1024:.1f} MiB")
    for name, kib in r.seald_after:
        print(f"    seald RSS after {name}: {kib / 1024:.1f} MiB")
    print(f"  pdfsig on {r.sampled} sealed files: {r.sampled - r.bad} valid")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", default="10000", help="documents per request; several: 1000,5000")
    parser.add_argument("--workers", type=int, default=0, help="[server] seal_workers (0: one per core)")
    parser.add_argument("--sample", type=int, default=20, help="sealed files checked with pdfsig")
    parser.add_argument("--baseline", type=int, default=200, help="documents through the documented loop")
    args = parser.parse_args()
    counts = [int(c) for c in args.docs.split(",")]
    workers = args.workers or os.cpu_count() or 1
    runs = []
    for n in counts:
        load = os.getloadavg()[0]
        r = run(n, args.workers, args.sample, min(args.baseline, n))
        print(f"load average (2 cores): {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
        report(r, workers)
        runs.append(r)
    if len(runs) > 1:
        first, last = runs[0], runs[-1]
        per_1000 = (last.peak_sum_kib - first.peak_sum_kib) / 1024 / ((last.n - first.n) / 1000)
        print(
            "memory flat? peak summed RSS "
            + ", ".join(f"{r.n} docs {r.peak_sum_kib / 1024:.1f} MiB" for r in runs)
            + f": {per_1000:+.1f} MiB per 1,000 documents"
        )
    return 1 if any(r.bad for r in runs) or any(r.peak_sum_kib > 512 * 1024 for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
