"""Crash safety matrix (issue 8; R05, R06, R10): kill -9 at 20 points, restart, check.

One real seald on one state directory is killed with SIGKILL at 20 distinct points of
the request life: inside and right after the transactions of submit, approve, unlock,
sign intent, result and recovery (SEALD_TEST_KILL_AT makes the daemon SIGKILL itself
exactly there, see seald/test_hooks.py), on the token thread before and between
documents, and from outside during an upload, a download, a SIGTERM drain, idle with
the token unlocked and at a random moment under concurrent load. State accumulates
across the crashes. After every kill, on the files left behind, and after every
restart, the test checks:

- every request is in a consistent state: SIGNED has every sealed file with the
  recorded SHA-256 and one ``seal.signed`` record per document; nothing else has a
  ``seal.signed`` record; sealed files exist only for SIGNING/SIGNED requests; every
  original is on disk with its hash; after a restart (token locked) nothing is SIGNING
  and no orphan upload or document directory is left;
- no approved request is signed twice (at most one ``seal.signed`` per document, one
  signature in each sealed PDF);
- the audit chain verifies against the latest signed checkpoint.

At the end every approved request is sealed: sealed files == ``seal.signed`` records
== documents of SIGNED requests. Bounded: about a minute on the CI machine.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from fixture_layout import SealFixtures
from make_pdfs import valid_pdf

from sealapi.v1 import common_pb2, requests_pb2, requests_pb2_grpc
from sealclient.errors import SealClientError
from seald_testing.daemon import CHANGED_PIN, SealDaemon, user_pin
from seald_testing.state_checks import check_state

PLACEMENT = common_pb2.Placement(page=0, x_mm=150, y_mm=240)
KILL_AT = "SEALD_TEST_KILL_AT"
PB = requests_pb2


class Crashy:
    """The daemon under test plus the few client actions the load is made of."""

    def __init__(self, fixtures: SealFixtures, work: Path) -> None:
        self.d = SealDaemon(fixtures)
        self.work = work
        self.state_dir = fixtures.state_dir
        self.pin_changed = False
        self.kills: list[str] = []
        self._pdfs = 0
        self._pdfs_lock = threading.Lock()
        self._keyed: dict[str, list[Path]] = {}  # client_request_key -> the files it sent

    # -- process control --------------------------------------------------------------------
    def start(self, kill_at: str = "", **env: str) -> bool:
        """Start; False if the daemon killed itself at ``kill_at`` while starting (recovery)."""
        self.d.extra_env = dict(env)
        if kill_at:
            self.d.extra_env[KILL_AT] = kill_at
        try:
            self.d.start()
        except RuntimeError:
            assert self.d.proc is not None
            assert self.d.proc.returncode == -signal.SIGKILL, self.d.log()[-3000:]
            assert f'"point": "{kill_at}"' in self.d.log()
            self.d.proc = None
            self.kills.append(f"start:{kill_at}")
            return False
        return True

    def wait_killed(self, point: str, timeout: float = 40.0) -> None:
        """The daemon must die by SIGKILL at ``point`` (proof the point was reached)."""
        assert self.d.proc is not None
        try:
            code = self.d.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"seald never reached kill point {point}:\n{self.d.log()[-3000:]}") from None
        assert code == -signal.SIGKILL, f"seald exited {code} at {point}"
        if not point.startswith("external:"):
            assert f'"point": "{point}"' in self.d.log()
        self.d.proc = None
        self.kills.append(point)

    def kill_now(self, point: str) -> None:
        assert self.d.proc is not None
        self.d.proc.send_signal(signal.SIGKILL)
        self.wait_killed(point)

    # -- load ----------------------------------------------------------------------------------
    def pdf(self, pages: int = 1) -> Path:
        with self._pdfs_lock:
            self._pdfs += 1
            path = self.work / f"doc-{self._pdfs:03d}.pdf"
        path.write_bytes(valid_pdf(pages))
        return path

    def submit(self, pages: tuple[int, ...] = (1,), key: str = "") -> str:
        # A retry with a client_request_key sends the same files again (issue 14: the same
        # key with other documents is refused as client_request_key_reused).
        if key and key in self._keyed:
            paths = self._keyed[key]
        else:
            paths = [self.pdf(p) for p in pages]
            if key:
                self._keyed[key] = paths
        with self.d.client("zhang.wei") as c:
            return c.submit(
                paths,
                seal_id="contract",
                reason="采购合同",
                category="contract",
                placement=PLACEMENT,
                client_request_key=key,
            ).request_id

    def approve(self, request_id: str, who: str) -> int:
        with self.d.client(who) as c:
            return c.approve(request_id).state

    def approved(self, pages: tuple[int, ...] = (1,)) -> str:
        request_id = self.submit(pages)
        self.approve(request_id, "li.na")
        assert self.approve(request_id, "wang.fang") == PB.REQUEST_STATE_APPROVED
        return request_id

    def unlock(self) -> None:
        with self.d.client("liu.yang") as c:
            if not self.pin_changed:
                c.change_pin("contract", user_pin(self.d.fixtures, "contract"), CHANGED_PIN)
                self.pin_changed = True
            c.unlock("contract", CHANGED_PIN)

    def get(self, request_id: str) -> requests_pb2.SealRequest:
        with self.d.client("zhao.min") as c:
            return c.get(request_id)

    def wait_state(self, request_id: str, state: int, timeout: float = 40.0) -> None:
        with self.d.client("zhao.min") as c:
            self.d.wait_state(c, request_id, state, timeout=timeout)

    def all_requests(self) -> list[requests_pb2.SealRequest]:
        with self.d.client("zhao.min") as c:
            return list(c.list())

    def unlock_and_die(self, point: str) -> None:
        """Unlock; the signer then starts and the daemon dies at ``point`` (maybe mid-answer)."""
        try:
            self.unlock()
        except SealClientError as ex:
            assert ex.code == grpc.StatusCode.UNAVAILABLE, ex
        self.wait_killed(point)

    def expect_dead_call(self, fn: Callable[[], object], point: str) -> None:
        """A call during which the daemon kills itself: the client sees the connection go."""
        with pytest.raises(SealClientError) as lost:
            fn()
        # The connection went away; never an answer from our code (that would be a refusal).
        assert lost.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNKNOWN), lost.value
        self.wait_killed(point)

    # -- checks --------------------------------------------------------------------------------
    def check_files_left_behind(self) -> None:
        """On the crash state, daemon down: consistency, at most one signature, chain verifies."""
        check_state(self.state_dir, after_restart=False)

    def check_after_restart(self) -> None:
        """Recovered and serving, token locked: nothing SIGNING, no orphans, chain verifies."""
        check_state(self.state_dir, after_restart=True)
        with self.d.client("zhao.min") as auditor:
            verdict = auditor.verify_audit_chain()
        assert verdict.ok, verdict.problem


def signature_count(pdf: Path) -> int:
    out = subprocess.run(["pdfsig", str(pdf)], capture_output=True, text=True, check=False).stdout
    return out.count("Signature #")


@pytest.fixture
def crashy(fresh_seal_fixtures: SealFixtures, tmp_path: Path) -> Iterator[Crashy]:
    work = tmp_path / "work"
    work.mkdir()
    c = Crashy(fresh_seal_fixtures, work)
    yield c
    if c.d.proc is not None:
        c.d.kill()


def _cut_off_upload(c: Crashy) -> None:
    """External kill while a document is half uploaded (the client is mid-stream)."""
    pid = c.d.proc.pid if c.d.proc else 0
    data = valid_pdf(4)

    def messages() -> Iterator[requests_pb2.SubmitRequestMessage]:
        yield PB.SubmitRequestMessage(
            header=PB.SubmitRequestHeader(
                seal_id="contract", reason="r", category="contract", placement=PLACEMENT
            )
        )
        yield PB.SubmitRequestMessage(document_start=PB.DocumentStart(name="cut.pdf", size=len(data)))
        yield PB.SubmitRequestMessage(chunk=data[: len(data) // 2])
        time.sleep(0.5)  # the daemon has written the first half to incoming/
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        yield PB.SubmitRequestMessage(chunk=data[len(data) // 2 :])

    with c.d.client("zhang.wei") as client, pytest.raises(grpc.RpcError):
        requests_pb2_grpc.SealRequestServiceStub(client._channel).SubmitRequest(messages(), timeout=20)
    c.wait_killed("external:upload")


def _cut_off_download(c: Crashy, request_id: str) -> None:
    """External kill after the first chunk of a multi-chunk sealed download."""
    with c.d.client("zhang.wei") as client:
        stream = requests_pb2_grpc.SealRequestServiceStub(client._channel).DownloadDocument(
            PB.DownloadDocumentRequest(request_id=request_id, document_index=0), timeout=20
        )
        first = next(stream)
        assert first.info.sealed_size > len(first.data) > 0  # really in the middle
        c.kill_now("external:download")
        # gRPC may have buffered the rest already; either way nothing on the host changed.
        with contextlib.suppress(grpc.RpcError):
            for _ in stream:
                pass


def _drain_then_kill(c: Crashy) -> str:
    """SIGTERM while a signature is in flight (paused after intent), SIGKILL during the drain."""
    request_id = c.approved()
    c.unlock()
    c.wait_state(request_id, PB.REQUEST_STATE_SIGNING)
    assert c.d.proc is not None
    c.d.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    while '"seald.stopping"' not in c.d.log():
        assert time.monotonic() < deadline, "no drain after SIGTERM"
        time.sleep(0.02)
    c.kill_now("external:sigterm-drain")
    return request_id


def _random_kill_under_load(c: Crashy, seed: int) -> None:
    """Three clients submitting, approving and the signer sealing; SIGKILL at a random moment."""
    c.unlock()
    stop = threading.Event()
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        while not stop.is_set():
            try:
                c.approved(pages=(1 + n % 2,) if n else (1, 2))
            except SealClientError:
                return  # the daemon died under us: expected
            except BaseException as ex:
                errors.append(ex)
                return

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    time.sleep(random.Random(seed).uniform(1.5, 3.0))
    c.kill_now("external:random-under-load")
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors


def test_r10_kill_9_at_20_points_keeps_every_request_consistent_and_signs_at_most_once(
    crashy: Crashy,
) -> None:
    c = crashy
    c.start()
    c.check_after_restart()

    def step(kill_at: str, drive: Callable[[], None], **env: str) -> None:
        """One matrix row: start with the kill point armed, drive the load into it, check."""
        if c.d.proc is not None:
            c.d.stop()
        started = c.start(kill_at, **env)
        if started:
            c.check_after_restart()
            drive()
        c.check_files_left_behind()

    # 1-2: submit, inside and right after its transaction (documents already in place).
    step("tx:request.submitted", lambda: c.expect_dead_call(c.submit, "tx:request.submitted"))
    step(
        "commit:request.submitted",
        lambda: c.expect_dead_call(lambda: c.submit((1, 2), key="A"), "commit:request.submitted"),
    )
    batch: list[str] = []

    # 3-4: approval, inside the first one's transaction; after the quorum one committed.
    def retry_then_approve() -> None:
        batch.append(c.submit((1, 2), key="A"))  # the lost answer: the retry finds the request
        assert c.get(batch[0]).state == PB.REQUEST_STATE_PENDING
        c.expect_dead_call(lambda: c.approve(batch[0], "li.na"), "tx:request.approved")

    step("tx:request.approved", retry_then_approve)

    def two_approvals() -> None:
        assert not c.get(batch[0]).approvals  # the uncommitted approval is gone
        c.approve(batch[0], "li.na")
        c.expect_dead_call(lambda: c.approve(batch[0], "wang.fang"), "commit:request.approved@2")

    step("commit:request.approved@2", two_approvals)
    # 5: unlock, before its audit record commits: after restart the token is locked.
    step("tx:token.unlocked", lambda: c.expect_dead_call(c.unlock, "tx:token.unlocked"))
    # 6-7: sign intent, inside and after its transaction (2 intent records, one per document).
    step("tx:seal.sign_intent", lambda: c.unlock_and_die("tx:seal.sign_intent"))
    step("commit:seal.sign_intent", lambda: c.unlock_and_die("commit:seal.sign_intent"))
    # 8: the next start dies while recovery records the unknown outcome.
    step("tx:seal.outcome_unknown", lambda: None)
    # 9-11: on the token thread: before the first document, between the two, after both.
    for point in ("sign.before_document", "sign.document_sealed@1", "sign.document_sealed@2"):
        step(point, lambda p=point: c.unlock_and_die(p))
    # 12: the next start dies while recovery records the batch as signed from its files.
    step("tx:seal.signed", lambda: None)
    rejected: list[str] = []

    # 13: a rejection, inside its transaction.
    def reject() -> None:
        assert c.get(batch[0]).state == PB.REQUEST_STATE_SIGNED  # recovered from its files
        rejected.append(c.submit())
        c.expect_dead_call(lambda: _reject(c, rejected[0]), "tx:request.rejected")

    step("tx:request.rejected", reject)
    # 14-15: the result transaction of a normal signature, inside and right after it (the
    # first commit of a seal.signed after that start is recovery's, so the second one).
    single: list[str] = []

    def sign_one(point: str, pages: int) -> Callable[[], None]:
        def drive() -> None:
            if single:
                assert c.get(single[-1]).state == PB.REQUEST_STATE_SIGNED
            single.append(c.approved((pages,)))
            c.unlock_and_die(point)

        return drive

    step("tx:seal.signed", sign_one("tx:seal.signed", 1))
    step("commit:seal.signed@2", sign_one("commit:seal.signed@2", 60))  # 2 download chunks
    # 16-20: from outside.
    step("", lambda: _cut_off_upload(c))

    def download() -> None:
        assert c.get(single[-1]).state == PB.REQUEST_STATE_SIGNED  # committed before the kill
        _cut_off_download(c, single[-1])

    step("", download)
    drained: list[str] = []
    step("", lambda: drained.append(_drain_then_kill(c)), SEALD_TEST_PAUSE_AFTER_INTENT="60")

    def idle_unlocked() -> None:
        c.unlock()
        c.wait_state(drained[0], PB.REQUEST_STATE_SIGNED)  # recovered, then signed once
        c.kill_now("external:idle-unlocked")

    step("", idle_unlocked)
    step("", lambda: _random_kill_under_load(c, seed=8))

    # Settle: a clean start, every unfinished request approved and sealed.
    c.start()
    with c.d.client("zhao.min") as auditor:
        assert not any(t.unlocked for t in auditor.token_status("contract").tokens)
    c.unlock()
    for request in c.all_requests():
        approvers = {a.approver for a in request.approvals}
        for who in ("li.na", "wang.fang"):
            if request.state == PB.REQUEST_STATE_PENDING and who not in approvers:
                c.approve(request.request_id, who)
    for request in c.all_requests():
        if request.state != PB.REQUEST_STATE_REJECTED:
            c.wait_state(request.request_id, PB.REQUEST_STATE_SIGNED, timeout=60)
    c.check_after_restart()
    c.d.stop()
    counts = check_state(c.state_dir, after_restart=True)
    assert len(c.kills) == len(set(c.kills)) == 20, c.kills
    assert counts["sealed_files"] == counts["signed_records"] == counts["signed_documents"] >= 6, counts
    for sealed in sorted((c.state_dir / "documents").glob("*/*.sealed.pdf")):
        assert signature_count(sealed) == 1, sealed


def _reject(c: Crashy, request_id: str) -> None:
    with c.d.client("li.na") as li:
        li.reject(request_id, "not this one")
