"""One large document through a real seald: upload in chunks, approve, seal, download.

Shared by bench/bench_large.py (200 MiB) and tests/integration/test_large_document.py
(~30 MiB in CI). Memory is read from the seald process's /proc/<pid>/status: writing
"5" to /proc/<pid>/clear_refs resets its peak (VmHWM) to the current RSS, so the peak
after the flow minus the RSS at the reset is the growth caused by the flow.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from sealapi.v1 import common_pb2, requests_pb2
from seald_testing.daemon import SealDaemon

PLACEMENT = common_pb2.Placement(page=0, x_mm=150, y_mm=240)


def status_kib(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    match = re.search(rf"^{field}:\s+(\d+) kB$", text, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"/proc/{pid}/status has no {field}")
    return int(match.group(1))


def reset_peak_rss(pid: int) -> int:
    """Reset the process's peak RSS to its current RSS; returns that RSS in KiB."""
    Path(f"/proc/{pid}/clear_refs").write_text("5", encoding="ascii")
    return status_kib(pid, "VmRSS")


@dataclass(frozen=True)
class SignedRanges:
    ranges: tuple[tuple[int, int], ...]
    valid: bool
    total_document_signed: bool
    text: str


def pdfsig(path: Path) -> SignedRanges:
    """pdfsig's verdict on the first signature and its signed byte ranges."""
    done = subprocess.run(
        ["pdfsig", str(path)], capture_output=True, text=True, timeout=600, check=False
    )
    text = done.stdout + done.stderr
    ranges = tuple(
        (int(a), int(b)) for a, b in re.findall(r"\[(\d+) - (\d+)\]", text)
    )
    return SignedRanges(
        ranges=ranges,
        valid="Signature Validation: Signature is Valid." in text,
        total_document_signed="Total document signed" in text,
        text=text,
    )


def byte_range_covers_file(signed: SignedRanges, size: int, contents_max: int = 1 << 17) -> bool:
    """Two ranges from byte 0 to the last byte, the gap between them only the /Contents."""
    if len(signed.ranges) != 2:
        return False
    (a0, a1), (b0, b1) = signed.ranges
    return a0 == 0 and b1 == size and 0 < b0 - a1 <= contents_max


@dataclass(frozen=True)
class LargeFlowFigures:
    size: int
    submit_s: float
    approve_s: float  # both approvals (each client downloads and hashes the original)
    seal_s: float  # last approval -> SIGNED
    download_s: float
    rss_before_kib: int
    rss_peak_kib: int
    sealed_size: int
    signed: SignedRanges

    @property
    def growth_mib(self) -> float:
        return (self.rss_peak_kib - self.rss_before_kib) / 1024


def run_large_flow(d: SealDaemon, source: Path, out: Path, timeout: float = 1800) -> LargeFlowFigures:
    """Submit, approve (two approvers), wait for SIGNED, download; the token must be unlocked."""
    assert d.proc is not None
    pid = d.proc.pid
    rss_before = reset_peak_rss(pid)
    with d.client("zhang.wei") as requester:
        t0 = time.perf_counter()
        request = requester.submit(
            [source], seal_id="contract", reason="large", category="contract", placement=PLACEMENT
        )
        submit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with d.client("li.na") as li:
        li.approve(request.request_id)
    with d.client("wang.fang") as wang:
        wang.approve(request.request_id)
    t1 = time.perf_counter()
    with d.client("zhang.wei") as requester:
        d.wait_state(requester, request.request_id, requests_pb2.REQUEST_STATE_SIGNED, timeout)
        t2 = time.perf_counter()
        requester.download(request.request_id, 0, out)
        t3 = time.perf_counter()
    rss_peak = status_kib(pid, "VmHWM")
    return LargeFlowFigures(
        size=source.stat().st_size,
        submit_s=submit_s,
        approve_s=t1 - t0,
        seal_s=t2 - t1,
        download_s=t3 - t2,
        rss_before_kib=rss_before,
        rss_peak_kib=rss_peak,
        sealed_size=out.stat().st_size,
        signed=pdfsig(out),
    )


def process_tree_cpu_s(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of ``pid`` and each of its live children, by pid."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text(encoding="ascii").split()
        pids.extend(int(c) for c in children)
    cpu: dict[int, float] = {}
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        cpu[p] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return cpu
