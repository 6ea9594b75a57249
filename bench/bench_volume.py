"""A volume run end to end through a real seald (issue 20): N one-page PDFs in one request.

    .venv/bin/python bench/bench_volume.py [--docs 10000] [--workers 0] [--sample 20]

Submit (one SubmitRequest stream), two approvals (each approver's client downloads and
hashes every original, as `sealctl approve` does), sealing (from the approval that
completes the quorum to SIGNED on a WatchRequests stream), download of every sealed file
(each checked against its recorded SHA-256). Prints each step's time and docs/s, and the
memory of seald and its worker processes together: their summed RSS sampled every
100 ms (the peak of the sum), and the sum of each process's own peak (VmHWM, an upper
bound). pdfsig checks a sample of the sealed files. The config raises the per-request
document limit to N and the per-client rate limit (10,000 downloads per approver would
otherwise wait ~100 s on the default 100 calls/s).
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [
    str(ROOT / "bench"),
    str(ROOT / "softhsm-fixtures"),
    str(ROOT / "tests"),
    str(ROOT / "tests" / "assets"),
]

from build_fixtures import build_fixtures  # noqa: E402
from fixture_layout import load_fixtures  # noqa: E402
from make_pdfs import valid_pdf  # noqa: E402

from sealapi.v1 import common_pb2, requests_pb2  # noqa: E402
from seald_testing.config import DaemonConfig  # noqa: E402
from seald_testing.daemon import SealDaemon  # noqa: E402
from seald_testing.large_flow import pdfsig, status_kib  # noqa: E402

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


class TreeMemory:
    """Samples the summed RSS of a process and its descendants every ``interval`` s."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_sum_kib = 0
        self.peak_pss_kib = 0  # proportional set size: shared pages counted once overall
        self.hwm_kib: dict[int, int] = {}
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
                    pss += pss_kib(pid)
                except (OSError, RuntimeError):
                    continue  # a worker that just ended
            self.peak_sum_kib = max(self.peak_sum_kib, total)
            self.peak_pss_kib = max(self.peak_pss_kib, pss)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=0, help="[server] seal_workers (0: one per core)")
    parser.add_argument("--sample", type=int, default=20, help="sealed files checked with pdfsig")
    args = parser.parse_args()
    load_at_start = os.getloadavg()[0]
    n = args.docs
    with tempfile.TemporaryDirectory(prefix="bench-volume-") as tmp_name:
        tmp = Path(tmp_name)
        build_fixtures(tmp / "fx")
        fx = load_fixtures(tmp / "fx")
        os.environ["SOFTHSM2_CONF"] = str(fx.softhsm2_conf)
        docs = tmp / "docs"
        docs.mkdir()
        one_page = valid_pdf(1)
        sources = []
        for i in range(n):
            path = docs / f"invoice-{i:05d}.pdf"
            path.write_bytes(one_page + f"\n% invoice {i}\n".encode())
            sources.append(path)

        def configure(c: DaemonConfig) -> None:
            c.set(
                "requests",
                max_documents_per_request=n,
                rate_limit_per_second=100000.0,
                rate_limit_burst=100000,
            ).set("server", seal_workers=args.workers)

        d = SealDaemon(fx, configure)
        d.start()
        try:
            assert d.proc is not None
            with d.client("liu.yang") as custodian:
                custodian.change_pin("contract", fx.seals["contract"].user_pin, PIN)
                custodian.unlock("contract", PIN)
            idle_kib = tree_rss_kib(d.proc.pid)  # started, workers spawned, nothing submitted
            with TreeMemory(d.proc.pid) as memory:
                t0 = time.perf_counter()
                with d.client("zhang.wei") as requester:
                    request = requester.submit(
                        sources,
                        seal_id="contract",
                        reason="月末发票",
                        category="contract",
                        placement=PLACEMENT,
                    )
                rid = request.request_id
                t_submit = time.perf_counter() - t0
                t0 = time.perf_counter()
                with d.client("li.na") as li:
                    li.approve(rid)
                t_first_approval = time.perf_counter() - t0
                with d.client("wang.fang") as wang, d.client("zhang.wei") as requester:
                    events = requester.watch(request_id=rid)
                    t0 = time.perf_counter()
                    wang.approve(rid)  # downloads and hashes every original, then approves
                    t_second_approval = time.perf_counter() - t0
                    try:
                        for event in events:
                            if event.request.state == requests_pb2.REQUEST_STATE_SIGNED:
                                break
                            if event.request.state == requests_pb2.REQUEST_STATE_FAILED:
                                raise RuntimeError(event.request.state_reason)
                    finally:
                        events.close()  # type: ignore[attr-defined]
                    t_sealed = time.perf_counter() - t0
                out = tmp / "sealed"
                out.mkdir()
                t0 = time.perf_counter()
                with d.client("zhang.wei") as requester:
                    final = requester.get(rid)
                    for info in final.documents:
                        requester.download(rid, info.index, out / f"{info.index:05d}.sealed.pdf")
                t_download = time.perf_counter() - t0
            hwm_sum = sum(memory.hwm_kib.values())
        finally:
            d.stop()
        sample = random.Random(20).sample(range(n), min(args.sample, n))
        bad = [i for i in sample if not pdfsig(out / f"{i:05d}.sealed.pdf").valid]
        total_cpu_note = ""

    print(f"load average (2 cores): {load_at_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    workers = args.workers or os.cpu_count() or 1
    print(f"volume run: {n} one-page PDFs in one request, {workers} seal workers{total_cpu_note}")
    print(f"  submit (one stream)          : {t_submit:8.1f} s  ({n / t_submit:7.1f} docs/s)")
    print(f"  first approval (download+hash): {t_first_approval:7.1f} s")
    print(f"  second approval              : {t_second_approval:8.1f} s")
    seal_s = t_sealed - t_second_approval
    print(f"  sealing, approval -> SIGNED  : {seal_s:8.1f} s  ({n / seal_s:7.1f} docs/s)")
    print(f"  download all (hash-checked)  : {t_download:8.1f} s  ({n / t_download:7.1f} docs/s)")
    end_to_end = t_submit + t_first_approval + t_sealed + t_download
    print(f"  end to end                   : {end_to_end:8.1f} s")
    print(
        f"  memory, seald + workers: peak of summed RSS {memory.peak_sum_kib / 1024:.1f} MiB"
        f" (idle before the run {idle_kib / 1024:.1f} MiB), peak of summed PSS"
        f" {memory.peak_pss_kib / 1024:.1f} MiB; sum of per-process peaks {hwm_sum / 1024:.1f} MiB"
        " (bound 512 MiB)"
    )
    print(f"  pdfsig on {len(sample)} sealed files: {len(sample) - len(bad)} valid")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
