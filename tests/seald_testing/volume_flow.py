"""Helpers for volume requests through a real seald (issue 20): many one-page PDFs in
one request, progress read from the request, the ledger read from the daemon's file,
memory of seald and its workers read from /proc."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from make_pdfs import valid_pdf

from sealapi.v1 import common_pb2, requests_pb2
from seald_testing.config import DaemonConfig
from seald_testing.daemon import SealDaemon
from seald_testing.large_flow import status_kib

PLACEMENT = common_pb2.Placement(page=0, x_mm=150, y_mm=240)


def volume_config(documents: int, workers: int = 0) -> Callable[[DaemonConfig], object]:
    """A config edit: this many documents per request, rate limits out of the way (each
    approver's client downloads every original), ``workers`` seal worker processes."""

    def edit(c: DaemonConfig) -> object:
        return c.set(
            "requests",
            max_documents_per_request=documents,
            rate_limit_per_second=100000.0,
            rate_limit_burst=100000,
        ).set("server", seal_workers=workers)

    return edit


def tiny_pdfs(directory: Path, count: int) -> list[Path]:
    """``count`` one-page PDFs, distinct bytes, names invoice-00000.pdf …"""
    directory.mkdir(parents=True, exist_ok=True)
    one_page = valid_pdf(1, chinese=False)
    paths = []
    for i in range(count):
        path = directory / f"invoice-{i:05d}.pdf"
        path.write_bytes(one_page + f"\n% invoice {i}\n".encode())
        paths.append(path)
    return paths


def submit_and_approve(d: SealDaemon, paths: list[Path]) -> str:
    """One request of every path (one SubmitRequest stream), approved by two approvers
    (each client downloads and hashes every original, as `sealctl approve` does)."""
    with d.client("zhang.wei") as requester:
        request = requester.submit(
            paths, seal_id="contract", reason="月末发票", category="contract", placement=PLACEMENT
        )
    with d.client("li.na") as li, d.client("wang.fang") as wang:
        li.approve(request.request_id)
        wang.approve(request.request_id)
    return request.request_id


def sealed_hashes(request: requests_pb2.SealRequest) -> dict[int, str]:
    return {doc.index: doc.sealed_sha256 for doc in request.documents if doc.sealed_sha256}


def wait_sealed_at_least(
    d: SealDaemon, request_id: str, count: int, timeout: float = 240.0
) -> dict[int, str]:
    """Poll the request until at least ``count`` documents are recorded sealed while it is
    still being sealed; returns their recorded hashes."""
    deadline = time.monotonic() + timeout
    with d.client("zhang.wei") as requester:
        while True:
            request = requester.get(request_id)
            done = sealed_hashes(request)
            if len(done) >= count and request.state != requests_pb2.REQUEST_STATE_SIGNED:
                return done
            if request.state in (requests_pb2.REQUEST_STATE_SIGNED, requests_pb2.REQUEST_STATE_FAILED):
                raise AssertionError(f"request ended ({request.state}) before {count} were recorded")
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(done)} of {count} documents sealed in {timeout}s")
            time.sleep(0.05)


def ledger_counts(d: SealDaemon, event: str, request_id: str) -> Counter[str]:
    """How many records of ``event`` each document (by name) has in the ledger."""
    db = d.fixtures.state_dir / "seald.sqlite3"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        rows = conn.execute(
            "SELECT document_name FROM audit_log WHERE event = ? AND request_id = ?", (event, request_id)
        ).fetchall()
    finally:
        conn.close()
    return Counter(name for (name,) in rows)


def tree_pids(pid: int) -> list[int]:
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text(encoding="ascii").split()
    except OSError:
        return pids
    for child in children:
        pids.extend(tree_pids(int(child)))
    return pids


class TreeMemory:
    """The peak of the summed RSS of seald and its worker processes, sampled from /proc
    every ``interval`` seconds (summing RSS counts shared pages once per process: an
    upper bound of what they use together)."""

    def __init__(self, d: SealDaemon, interval: float = 0.1) -> None:
        self.d = d
        self.interval = interval
        self.peak_kib = 0
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
            proc = self.d.proc
            if proc is None:
                continue  # between a kill and the restart
            total = 0
            for pid in tree_pids(proc.pid):
                try:
                    total += status_kib(pid, "VmRSS")
                except (OSError, RuntimeError):
                    continue  # a process that just ended
            self.peak_kib = max(self.peak_kib, total)
