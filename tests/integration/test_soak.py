"""Soak (issue 8): concurrent clients, racing approvals, token lock/unlock, for a while.

One real seald; for SEAL_SOAK_SECONDS (default 30; the documented long run is
SEAL_SOAK_SECONDS=600) these run at once over mutual TLS:
- two requesters submitting 1- and 2-document requests (some retried with the same
  client_request_key, some cancelled); when the token falls behind they meet
  max_pending_per_principal (150 here) and back off on RESOURCE_EXHAUSTED;
- three approvers racing on the same pending requests: li.na, wang.fang and li.na's
  second device (li.na-laptop, R05: the same person counts once), with a few rejections;
- the custodian locking and unlocking the token at random moments, so locks land
  while documents are being signed (a removal locks the token the same way; the
  in-flight signature fails closed and the request goes back to APPROVED);
- an auditor verifying the audit chain and reading records.
Every answer must be OK or a refusal of the kind a race produces (FAILED_PRECONDITION,
ALREADY_EXISTS, NOT_FOUND...) — never INTERNAL, UNKNOWN or UNAVAILABLE. Then everything
left is approved and sealed, and: sealed files == audit "seal.signed" records ==
documents of requests in SIGNED (every sealed file's SHA-256 as recorded), pdfsig sees one
signature in each sealed PDF (up to ~200 of them), and the chain verifies.
The figures are printed (run with -s to see them).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from fixture_layout import SealFixtures

from sealapi.v1 import common_pb2, requests_pb2
from sealclient.errors import SealClientError

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "assets"))
from daemon_harness import CHANGED_PIN, SealDaemon, user_pin
from make_pdfs import valid_pdf
from state_checks import check_state

SECONDS = float(os.environ.get("SEAL_SOAK_SECONDS", "30"))
PENDING_CAP = 150
PLACEMENT = common_pb2.Placement(page=0, x_mm=150, y_mm=240)
PB = requests_pb2
RACE_CODES = {
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.PERMISSION_DENIED,  # e.g. approving a request the requester just cancelled
    grpc.StatusCode.INVALID_ARGUMENT,  # e.g. an approval digest computed just before a change
}


class Soak:
    def __init__(self, d: SealDaemon, work: Path) -> None:
        self.d = d
        self.work = work
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.refusals: Counter[str] = Counter()
        self.errors: list[str] = []
        self.pdfs = [valid_pdf(1), valid_pdf(2)]
        self.n = 0

    def count(self, what: str) -> None:
        with self.lock:
            self.calls[what] += 1

    def refused(self, ex: SealClientError, what: str) -> None:
        with self.lock:
            if ex.code in RACE_CODES or (
                ex.code == grpc.StatusCode.RESOURCE_EXHAUSTED and ex.reason == "too_many_pending"
            ):
                self.refusals[f"{what}:{ex.code.name}:{ex.reason}"] += 1
            else:
                self.errors.append(f"{what}: {ex.code.name} {ex.reason} {ex.message}")

    def pdf(self, pages: int) -> Path:
        with self.lock:
            self.n += 1
            path = self.work / f"soak-{self.n:05d}-{pages}.pdf"
        path.write_bytes(self.pdfs[pages - 1])
        return path

    def loop(self, name: str, body: Callable[[random.Random], None], seed: int) -> threading.Thread:
        rng = random.Random(seed)

        def run() -> None:
            while not self.stop.is_set():
                try:
                    body(rng)
                except SealClientError as ex:
                    self.refused(ex, name)
                except Exception as ex:
                    with self.lock:
                        self.errors.append(f"{name}: {type(ex).__name__}: {ex}")

        thread = threading.Thread(target=run, name=name, daemon=True)
        thread.start()
        return thread


def requester(s: Soak) -> Callable[[random.Random], None]:
    def body(rng: random.Random) -> None:
        pages = (1,) if rng.random() < 0.7 else (1, 2)
        key = f"k{rng.randrange(10**9)}"
        with s.d.client("zhang.wei") as c:
            paths = [s.pdf(p) for p in pages]
            fields = {"seal_id": "contract", "reason": "soak", "category": "contract"}
            try:
                made = c.submit(paths, **fields, placement=PLACEMENT, client_request_key=key)
            except SealClientError as ex:
                if ex.reason != "too_many_pending":
                    raise
                s.refused(ex, "requester")  # back-pressure: signing is behind; wait a little
                time.sleep(0.5)
                return
            s.count("submit")
            if rng.random() < 0.1:  # a retry after a lost answer: the same request back
                again = c.submit(paths, **fields, placement=PLACEMENT, client_request_key=key)
                assert again.request_id == made.request_id
                s.count("submit_retry")
            if rng.random() < 0.05:
                c.cancel(made.request_id, "soak cancel")
                s.count("cancel")
        time.sleep(rng.uniform(0.05, 0.3))

    return body


def approver(s: Soak, who: str) -> Callable[[random.Random], None]:
    def body(rng: random.Random) -> None:
        with s.d.client(who) as c:
            pending = c.list(states=[PB.REQUEST_STATE_PENDING])
            rng.shuffle(pending)
            for request in pending[:3]:
                if s.stop.is_set():
                    return
                try:
                    if rng.random() < 0.03:
                        c.reject(request.request_id, "soak reject")
                        s.count("reject")
                    else:
                        c.approve(request.request_id)
                        s.count("approve")
                except SealClientError as ex:
                    s.refused(ex, who)
        time.sleep(rng.uniform(0.05, 0.2))

    return body


def custodian(s: Soak, pin: str) -> Callable[[random.Random], None]:
    def body(rng: random.Random) -> None:
        with s.d.client("liu.yang") as c:
            c.unlock("contract", pin)
            s.count("unlock")
            time.sleep(rng.uniform(0.3, 2.5))
            c.lock("contract")
            s.count("lock")
        time.sleep(rng.uniform(0.05, 0.6))

    return body


def auditor(s: Soak) -> Callable[[random.Random], None]:
    def body(rng: random.Random) -> None:
        with s.d.client("zhao.min") as c:
            verdict = c.verify_audit_chain()
            assert verdict.ok, verdict.problem
            s.count("verify_chain")
        time.sleep(rng.uniform(1.0, 3.0))

    return body


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pending_cap(text: str) -> str:
    """Requesters outrun the token on a busy machine: the cap (issue 8) bounds the backlog."""
    assert "approval_ttl_hours = 72\n" in text
    return text.replace(
        "approval_ttl_hours = 72\n", f"approval_ttl_hours = 72\nmax_pending_per_principal = {PENDING_CAP}\n"
    )


@pytest.fixture
def soak_daemon(fresh_seal_fixtures: SealFixtures) -> Iterator[SealDaemon]:
    d = SealDaemon(fresh_seal_fixtures, pending_cap)
    d.start()
    yield d
    if d.proc is not None:
        d.stop()


@pytest.mark.timeout(int(SECONDS) + 600)
def test_r05_r10_soak_sealed_equals_signed_records_equals_signed_requests(
    soak_daemon: SealDaemon, tmp_path: Path
) -> None:
    d = soak_daemon
    assert d.proc is not None
    with d.client("liu.yang") as c:
        c.change_pin("contract", user_pin(d.fixtures, "contract"), CHANGED_PIN)  # R07 first use
    s = Soak(d, tmp_path)
    rss_start = rss_kib(d.proc.pid)
    started = time.monotonic()
    threads = [
        s.loop("requester-1", requester(s), 1),
        s.loop("requester-2", requester(s), 2),
        s.loop("li.na", approver(s, "li.na"), 3),
        s.loop("wang.fang", approver(s, "wang.fang"), 4),
        s.loop("li.na-laptop", approver(s, "li.na-laptop"), 5),
        s.loop("custodian", custodian(s, CHANGED_PIN), 6),
        s.loop("auditor", auditor(s), 7),
    ]
    time.sleep(SECONDS)
    s.stop.set()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive(), f"{t.name} hangs"
    load_seconds = time.monotonic() - started
    assert not s.errors, s.errors[:20]
    assert d.proc.poll() is None, "seald died"

    # Settle: approve what is left, unlock, wait until nothing is unfinished.
    with d.client("liu.yang") as c:
        c.unlock("contract", CHANGED_PIN)
    with d.client("li.na") as li, d.client("wang.fang") as wang, d.client("zhao.min") as audit:
        for request in audit.list(states=[PB.REQUEST_STATE_PENDING]):
            names = {a.approver for a in request.approvals}
            for who, c in (("li.na", li), ("wang.fang", wang)):
                if who not in names:
                    c.approve(request.request_id)
        deadline = time.monotonic() + 300
        unfinished = [PB.REQUEST_STATE_PENDING, PB.REQUEST_STATE_APPROVED, PB.REQUEST_STATE_SIGNING]
        while left := audit.list(states=unfinished):
            assert time.monotonic() < deadline, f"{len(left)} requests never finished"
            time.sleep(0.5)
        verdict = audit.verify_audit_chain()
        everything = audit.list()
    assert verdict.ok, verdict.problem
    rss_end = rss_kib(d.proc.pid)
    counts = check_state(d.fixtures.state_dir, after_restart=True)
    states = Counter(PB.RequestState.Name(r.state) for r in everything)
    signed_docs = sum(len(r.documents) for r in everything if r.state == PB.REQUEST_STATE_SIGNED)
    assert counts["sealed_files"] == counts["signed_records"] == counts["signed_documents"] == signed_docs
    sealed = sorted((d.fixtures.state_dir / "documents").glob("*/*.sealed.pdf"))
    assert len(sealed) == signed_docs > 0
    for path in sealed[:: max(1, len(sealed) // 200)]:  # pdfsig on up to ~200 of them
        out = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, check=False).stdout
        assert out.count("Signature #") == 1, path
    interrupted = d.log().count('"seal.sign_interrupted"')
    print(
        f"\nsoak: {load_seconds:.0f} s of load; calls {dict(s.calls)}; requests {dict(states)}; "
        f"sealed documents {signed_docs}; signatures interrupted by a lock {interrupted}; "
        f"race refusals {sum(s.refusals.values())} {dict(s.refusals.most_common(8))}; "
        f"audit records {verdict.records_checked}; daemon RSS {rss_start // 1024} -> {rss_end // 1024} MiB"
    )
    assert s.calls["approve"] > 0 and s.calls["lock"] > 0
