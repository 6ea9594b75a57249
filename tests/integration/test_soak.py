"""Soak (issue 8): concurrent clients, racing approvals, token removals, lock/unlock.

One real seald under umockdev-wrapper (its pyudev monitor receives this process's
uevents, as in test_token_hotplug_daemon.py); for SEAL_SOAK_SECONDS (default 60; the
documented long run is SEAL_SOAK_SECONDS=600) these run at once over mutual TLS:
- two requesters submitting 1- and 2-document requests (some retried with the same
  client_request_key, some cancelled); when the token falls behind they meet
  max_pending_per_principal (150 here) and back off on RESOURCE_EXHAUSTED;
- three approvers racing on the same pending requests: li.na, wang.fang and li.na's
  second device (li.na-laptop, R05: the same person counts once), with a few rejections;
- the custodian locking and unlocking the token at random moments, so locks land
  while documents are being signed (the in-flight signature fails closed and the
  request goes back to APPROVED); after a re-insertion it must unlock again;
- the contract token pulled out of the host (udev `remove`, its SoftHSM directory moved
  away) at random moments — half of them just after a signature's intent record, so
  documents are being signed — and put back (`add`) after a short random time; each
  removal and insertion must be seen by the daemon;
- an auditor verifying the audit chain and reading records.
First (requesters, approvers and auditor already running; custodian and remover not
yet), one removal is forced while a known 12-document request is being signed: it must
go back to APPROVED with nothing released, and end SIGNED with exactly one
"seal.signed" record per document.
Every answer must be OK or a refusal of the kind a race produces (FAILED_PRECONDITION
token_absent, ALREADY_EXISTS, NOT_FOUND...) — never INTERNAL, UNKNOWN or UNAVAILABLE —
and the daemon logs no error. Then everything left is approved and sealed, and: sealed
files == audit "seal.signed" records == documents of requests in SIGNED (every sealed
file's SHA-256 as recorded), pdfsig sees one signature in each sealed PDF (up to ~200
of them), the chain verifies, and signatures were interrupted only as `token_absent`
(at most one per removal) or `token_locked` (at most one per lock).
The figures are printed (run with -s to see them).
Run: umockdev-wrapper .venv/bin/pytest -q -s -m umockdev -p no:cacheprovider <this file>.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from make_pdfs import valid_pdf

from sealapi.v1 import common_pb2, requests_pb2, tokens_pb2
from sealclient.errors import SealClientError
from seald_testing.config import DaemonConfig, chain
from seald_testing.custody import audit_rows, wait_token
from seald_testing.daemon import CHANGED_PIN, SealDaemon, log_events, user_pin
from seald_testing.hotplug import MODEL, Usb
from seald_testing.plugin import DaemonFactory
from seald_testing.state_checks import check_state

pytestmark = pytest.mark.umockdev

SECONDS = float(os.environ.get("SEAL_SOAK_SECONDS", "60"))
BIG_BATCH = 12  # documents in the request a removal is forced into
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
        self.reinserted = False

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
            try:
                c.unlock("contract", pin)
            except SealClientError as ex:
                s.refused(ex, "custodian")  # token_absent while it is out of the host
                time.sleep(0.2)
                return
            s.count("unlock")
            with s.lock:
                if s.reinserted:  # the token came back locked; this unlock let it sign again
                    s.reinserted = False
                    s.calls["unlock_after_reinsertion"] += 1
            time.sleep(rng.uniform(0.3, 2.5))
            c.lock("contract")
            s.count("lock")
        time.sleep(rng.uniform(0.05, 0.6))

    return body


def present(status: tokens_pb2.TokenStatus) -> bool:
    return status.presence == tokens_pb2.TOKEN_PRESENCE_PRESENT


def intents(d: SealDaemon, request_id: str | None = None) -> int:
    return len([r for r in audit_rows(d, "seal.sign_intent") if request_id in (None, r["request_id"])])


def pull_out(s: Soak, usb: Usb) -> None:
    """A removal the daemon must see: udev `remove`, then the token reported absent."""
    usb.remove()
    s.count("removal")
    status = wait_token(s.d, lambda st: not present(st))
    assert not status.unlocked and not status.ready, status
    assert "not inserted" in status.not_ready_reason, status.not_ready_reason


def put_back(s: Soak, usb: Usb) -> None:
    usb.insert()
    s.count("reinsertion")
    wait_token(s.d, present)
    with s.lock:
        s.reinserted = True


def remover(s: Soak, usb: Usb) -> Callable[[random.Random], None]:
    """Pull the token at random moments, half of them just after an intent record (a
    signature under way), and put it back after a short while: always back in on return."""

    def body(rng: random.Random) -> None:
        if rng.random() < 0.5:
            seen = intents(s.d)
            deadline = time.monotonic() + 8
            while intents(s.d) == seen and time.monotonic() < deadline and not s.stop.is_set():
                time.sleep(0.02)
        else:
            time.sleep(rng.uniform(0.5, 5.0))
        try:
            pull_out(s, usb)
            time.sleep(rng.uniform(0.2, 3.0))
        finally:
            put_back(s, usb)
        time.sleep(rng.uniform(0.5, 3.0))

    return body


def auditor(s: Soak) -> Callable[[random.Random], None]:
    def body(rng: random.Random) -> None:
        with s.d.client("zhao.min") as c:
            verdict = c.verify_audit_chain()
            assert verdict.ok, verdict.problem
            s.count("verify_chain")
        time.sleep(rng.uniform(1.0, 3.0))

    return body


def daemon_error_events(d: SealDaemon) -> dict[str, int]:
    """The daemon's own error and critical log lines, by event (and traceback lines)."""
    found: Counter[str] = Counter()
    for line in d.log().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            if "Traceback" in line:
                found["traceback"] += 1
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "critical"):
            found[str(entry.get("event"))] += 1
    return dict(found)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pending_cap(config: DaemonConfig) -> None:
    """Requesters outrun the token on a busy machine: the cap (issue 8) bounds the backlog."""
    config.set("requests", max_pending_per_principal=PENDING_CAP)


def usb_tokens(config: DaemonConfig) -> None:
    """The daemon watches udev for the contract token's USB model (issue 3)."""
    assert "tokens" not in config.data
    config.set("tokens", models=[f"{MODEL[0]}:{MODEL[1]}"])


@pytest.fixture
def soak_daemon(daemon_factory: DaemonFactory, bed: Any) -> tuple[SealDaemon, Usb]:
    usb = Usb(bed, daemon_factory.fixtures(), "contract")
    usb.dir.rename(usb.parked)  # in the safe when seald starts; inserted by the test
    # UMOCKDEV_DIR is set by the testbed at C level, so the child needs it passed explicitly.
    d = daemon_factory(chain(pending_cap, usb_tokens), env={"UMOCKDEV_DIR": bed.get_root_dir()})
    return d, usb


def approved_big_batch(s: Soak) -> str:
    """A 12-document request, approved (R05) before the racing approvers start."""
    d = s.d
    with d.client("zhang.wei") as c:
        paths = [s.pdf(2) for _ in range(BIG_BATCH)]
        big = c.submit(
            paths, seal_id="contract", reason="soak batch", category="contract", placement=PLACEMENT
        )
    with d.client("li.na") as li, d.client("wang.fang") as wang:
        li.approve(big.request_id)
        wang.approve(big.request_id)
    return big.request_id


def force_removal_mid_batch(s: Soak, usb: Usb, big_id: str) -> None:
    """Pull the token while the known 12-document request is being signed: it goes back
    to APPROVED with nothing released (R07); the soak's end checks it is signed once."""
    d = s.d
    with d.client("liu.yang") as c:
        c.unlock("contract", CHANGED_PIN)
    deadline = time.monotonic() + 60
    while intents(d, big_id) < BIG_BATCH:  # one intent record per document
        assert time.monotonic() < deadline, "the batch never started signing"
        time.sleep(0.02)
    pull_out(s, usb)
    s.count("forced_removal")
    deadline = time.monotonic() + 30
    while not (rows := [r for r in audit_rows(d, "seal.sign_interrupted") if r["request_id"] == big_id]):
        assert time.monotonic() < deadline, "the removal did not interrupt the batch"
        time.sleep(0.02)
    assert [(r["reason"], r["outcome"]) for r in rows] == [("token_absent", "approved")]
    with d.client("zhang.wei") as c:
        back = c.get(big_id)
    assert back.state == PB.REQUEST_STATE_APPROVED, back
    assert "not inserted" in back.state_reason, back.state_reason
    assert not list((d.fixtures.state_dir / "documents" / big_id).glob("*.sealed.pdf"))
    assert not [r for r in audit_rows(d, "seal.signed") if r["request_id"] == big_id]
    put_back(s, usb)


@pytest.mark.timeout(int(SECONDS) + 600)
def test_r05_r07_r10_soak_with_removals_sealed_equals_signed_records_equals_signed_requests(
    soak_daemon: tuple[SealDaemon, Usb], tmp_path: Path
) -> None:
    d, usb = soak_daemon
    assert d.proc is not None
    usb.insert()
    wait_token(d, present)
    with d.client("liu.yang") as c:
        c.change_pin("contract", user_pin(d.fixtures, "contract"), CHANGED_PIN)  # R07 first use
    s = Soak(d, tmp_path)
    big = approved_big_batch(s)
    rss_start = rss_kib(d.proc.pid)
    started = time.monotonic()
    threads = [
        s.loop("requester-1", requester(s), 1),
        s.loop("requester-2", requester(s), 2),
        s.loop("li.na", approver(s, "li.na"), 3),
        s.loop("wang.fang", approver(s, "wang.fang"), 4),
        s.loop("li.na-laptop", approver(s, "li.na-laptop"), 5),
        s.loop("auditor", auditor(s), 7),
    ]
    force_removal_mid_batch(s, usb, big)
    threads += [
        s.loop("custodian", custodian(s, CHANGED_PIN), 6),
        s.loop("usb", remover(s, usb), 8),
    ]
    time.sleep(max(0.0, SECONDS - (time.monotonic() - started)))
    s.stop.set()
    load_average = os.getloadavg()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive(), f"{t.name} hangs"
    load_seconds = time.monotonic() - started
    assert not s.errors, s.errors[:20]
    assert d.proc.poll() is None, "seald died"

    # Settle: the token is back in (the remover always re-inserts); approve what is left,
    # unlock, wait until nothing is unfinished.
    wait_token(d, present)
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
    big_sealed = sorted((d.fixtures.state_dir / "documents" / big).glob("*.sealed.pdf"))
    for path in sealed[:: max(1, len(sealed) // 200)] + big_sealed:  # pdfsig on up to ~200 + the batch
        out = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, check=False).stdout
        assert out.count("Signature #") == 1, path

    # The forced batch: APPROVED after the removal, then SIGNED once, every document once.
    (batch,) = [r for r in everything if r.request_id == big]
    assert batch.state == PB.REQUEST_STATE_SIGNED, batch
    assert len(big_sealed) == BIG_BATCH
    assert len([r for r in audit_rows(d, "seal.signed") if r["request_id"] == big]) == BIG_BATCH
    assert intents(d, big) >= 2 * BIG_BATCH  # the interrupted attempt and the one that signed

    interrupted = Counter(r["reason"] for r in audit_rows(d, "seal.sign_interrupted"))
    daemon_errors = daemon_error_events(d)
    removed_seen = [e for e in log_events(d, "token.usb_removed") if e["seal_id"] == "contract"]
    added_seen = [e for e in log_events(d, "token.usb_added") if e["seal_id"] == "contract"]
    print(
        f"\nsoak: {load_seconds:.0f} s of load; calls {dict(s.calls)}; requests {dict(states)}; "
        f"sealed documents {signed_docs}; token removals {s.calls['removal']} and re-insertions "
        f"{s.calls['reinsertion']} (daemon saw {len(removed_seen)}/{len(added_seen)}); signatures "
        f"interrupted by reason {dict(interrupted)}; "
        f"race refusals {sum(s.refusals.values())} {dict(s.refusals.most_common(8))}; "
        f"audit records {verdict.records_checked}; daemon RSS {rss_start // 1024} -> {rss_end // 1024} MiB; "
        f"load average {load_average[0]:.2f} {load_average[1]:.2f} {load_average[2]:.2f}; "
        f"daemon error log lines {daemon_errors}"
    )
    assert not daemon_errors, daemon_errors  # e.g. a failed rescan after an insertion
    assert s.calls["approve"] > 0 and s.calls["lock"] > 0
    assert s.calls["removal"] >= 2 and s.calls["removal"] == s.calls["reinsertion"]
    assert len(removed_seen) == s.calls["removal"]
    assert len(added_seen) == s.calls["reinsertion"] + 1  # + the first insertion
    assert s.calls["unlock_after_reinsertion"] > 0
    assert interrupted["token_absent"] >= 1
    # One removal or lock interrupts at most the one request being signed, never the queue;
    # and nothing else interrupts a signature here.
    assert interrupted["token_absent"] <= s.calls["removal"]  # the forced one included
    assert interrupted["token_locked"] <= s.calls["lock"]
    assert set(interrupted) <= {"token_absent", "token_locked"}, interrupted
