"""Fail closed under real faults (R10, R15): the real seald, a real file system.

The state directory lives on a small ext4 volume (a loop mount, made here as root):
- disk full: a filler file takes the last free block (ENOSPC from the kernel);
- read-only: `chattr +i` on the database and its WAL (the kernel refuses every write
  with EPERM, even through file descriptors already open);
- deleted: the database file is unlinked under the running daemon.
Each fault hits the signing path exactly between its records (SEALD_TEST_PAUSE_*
hooks): zero released signatures, no hang, a clear error, health NOT_SERVING, and
serving again once audit works. kill -9 in both windows: signed at most once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from fixture_layout import SealFixtures
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sealapi.v1 import common_pb2, requests_pb2
from sealclient.errors import SealClientError
from seald_testing.daemon import SealDaemon, make_pdf
from seald_testing.faults import (
    approved_request,
    current_pins,
    first_use,
    sealed_files,
    unlock,
    wait_sealed_file,
)

PLACEMENT = common_pb2.Placement(page=0, x_mm=150, y_mm=240)
SIGNED = requests_pb2.REQUEST_STATE_SIGNED
SIGNING = requests_pb2.REQUEST_STATE_SIGNING
APPROVED = requests_pb2.REQUEST_STATE_APPROVED
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
def ext4_state(tmp_path: Path) -> Iterator[Path]:
    image, mount = tmp_path / "state.img", tmp_path / "state-volume"
    mount.mkdir()
    subprocess.run(["truncate", "-s", "24M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], check=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    try:
        yield mount / "state"
    finally:
        subprocess.run(["chattr", "-R", "-i", str(mount)], check=False, capture_output=True)
        if subprocess.run(["umount", str(mount)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=False)  # busy: detach lazily


def start_daemon(fixtures: SealFixtures, state_dir: Path, **env: str) -> SealDaemon:
    d = SealDaemon(dataclasses.replace(fixtures, state_dir=state_dir), lambda c: c.state_dir(state_dir))
    assert str(state_dir) in d.config_path.read_text()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        d.start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return d


def health(d: SealDaemon, service: str = "") -> int:
    who = d.fixtures.principals["li.na"]
    creds = grpc.ssl_channel_credentials(
        d.fixtures.tls_ca.read_bytes(), who.key.read_bytes(), who.cert.read_bytes()
    )
    with grpc.secure_channel(d.target, creds) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return int(stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status)


def wait_health(d: SealDaemon, wanted: int, service: str = "", timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while health(d, service) != wanted:
        assert time.monotonic() < deadline, f"health({service!r}) never became {wanted}"
        time.sleep(0.1)


def signature_count(pdf: Path) -> int:
    out = subprocess.run(["pdfsig", str(pdf)], capture_output=True, text=True, check=False).stdout
    return out.count("Signature #")


def fill_disk(volume: Path) -> Path:
    filler = volume / "filler"
    with filler.open("wb") as handle:
        block = b"\0" * (1 << 20)
        with contextlib.suppress(OSError):
            while True:
                handle.write(block)
                handle.flush()
        handle.truncate(handle.tell())
    with contextlib.suppress(OSError), filler.open("ab") as handle:  # the last partial blocks
        while True:
            handle.write(b"\0" * 4096)
            handle.flush()
    return filler


def ledger_events(db: Path, request_id: str) -> list[tuple[str, str]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(
            "SELECT event, outcome FROM audit_log WHERE request_id = ? ORDER BY sequence", (request_id,)
        ).fetchall()
    finally:
        conn.close()


def test_r10_disk_full_between_intent_and_result_releases_nothing_then_recovers(
    fresh_seal_fixtures: SealFixtures, ext4_state: Path, tmp_path: Path
) -> None:
    d = start_daemon(fresh_seal_fixtures, ext4_state, SEALD_TEST_PAUSE_BEFORE_RESULT="2")
    try:
        request_id = approved_request(d, tmp_path)
        unlock(d)
        with d.client("zhang.wei") as requester:
            d.wait_state(requester, request_id, SIGNING)
            wait_sealed_file(ext4_state, request_id)  # in the pause before the result record
            filler = fill_disk(ext4_state.parent)
            wait_health(d, NOT_SERVING)  # the free-space probe, within a second
            deadline = time.monotonic() + 10  # the pause ends; the result record fails: ENOSPC
            while sealed_files(ext4_state, request_id):
                assert time.monotonic() < deadline, "the unrecorded sealed file was not withdrawn"
                time.sleep(0.05)
            current = requester.get(request_id)
            assert current.state == SIGNING  # not lost, not released
            assert "database or disk is full" in d.log()
            with pytest.raises(SealClientError) as refused:
                requester.download(request_id, 0, tmp_path / "out.pdf")
            assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION
            filler.unlink()
            wait_health(d, SERVING)
            done = d.wait_state(requester, request_id, SIGNED, timeout=40)
            requester.download(request_id, 0, tmp_path / "sealed.pdf")
        assert signature_count(tmp_path / "sealed.pdf") == 1
        assert len(sealed_files(ext4_state, request_id)) == 1
        assert done.documents[0].sealed_sha256
    finally:
        if d.proc is not None:
            d.stop()


def test_r10_read_only_database_refuses_unlock_and_signing_then_recovers(
    fresh_seal_fixtures: SealFixtures, ext4_state: Path, tmp_path: Path
) -> None:
    d = start_daemon(fresh_seal_fixtures, ext4_state)
    db = ext4_state / "seald.sqlite3"
    try:
        request_id = approved_request(d, tmp_path)
        first_use(d)
        subprocess.run(["chattr", "+i", str(db), f"{db}-wal"], check=True)
        started = time.monotonic()
        with d.client("liu.yang") as custodian, pytest.raises(SealClientError) as refused:
            custodian.unlock("contract", current_pins[d.fixtures.root])
        assert time.monotonic() - started < 10  # no hang
        assert refused.value.code == grpc.StatusCode.UNAVAILABLE
        assert refused.value.reason == "audit_unavailable"
        assert "audit trail cannot be written" in str(refused.value)
        wait_health(d, NOT_SERVING)
        wait_health(d, NOT_SERVING, "seal/contract")
        with d.client("liu.yang") as custodian:
            assert not custodian.token_status("contract").tokens[0].unlocked  # unrecorded unlock undone
        with d.client("zhang.wei") as requester:
            assert requester.get(request_id).state == APPROVED
        assert sealed_files(ext4_state, request_id) == []
        subprocess.run(["chattr", "-i", str(db), f"{db}-wal"], check=True)
        wait_health(d, SERVING)
        unlock(d)
        with d.client("zhang.wei") as requester:
            d.wait_state(requester, request_id, SIGNED)
        assert len(sealed_files(ext4_state, request_id)) == 1
    finally:
        subprocess.run(["chattr", "-i", str(db), f"{db}-wal"], check=False, capture_output=True)
        if d.proc is not None:
            d.stop()


def test_r10_deleted_database_releases_nothing_and_says_so(
    fresh_seal_fixtures: SealFixtures, tmp_path: Path
) -> None:
    state = fresh_seal_fixtures.state_dir
    d = start_daemon(fresh_seal_fixtures, state, SEALD_TEST_PAUSE_BEFORE_RESULT="2")
    try:
        request_id = approved_request(d, tmp_path)
        unlock(d)
        with d.client("zhang.wei") as requester:
            d.wait_state(requester, request_id, SIGNING)
            (state / "seald.sqlite3").unlink()
            wait_health(d, NOT_SERVING)
            time.sleep(2.5)  # past the pause: the result write was refused
            assert sealed_files(state, request_id) == []
            with pytest.raises(SealClientError) as refused:
                requester.submit(
                    [make_pdf(tmp_path / "b.pdf")],
                    seal_id="contract",
                    reason="x",
                    category="contract",
                    placement=PLACEMENT,
                )
            assert refused.value.code == grpc.StatusCode.UNAVAILABLE
            assert "was deleted while open" in str(refused.value)
        started = time.monotonic()
        d.stop()  # no hang
        assert time.monotonic() - started < 25
    finally:
        if d.proc is not None:
            d.kill()


@pytest.mark.parametrize("window", ["SEALD_TEST_PAUSE_AFTER_INTENT", "SEALD_TEST_PAUSE_BEFORE_RESULT"])
def test_r10_kill_9_between_intent_and_result_signs_at_most_once(
    fresh_seal_fixtures: SealFixtures, tmp_path: Path, window: str
) -> None:
    state = fresh_seal_fixtures.state_dir
    d = start_daemon(fresh_seal_fixtures, state, **{window: "60"})
    request_id = approved_request(d, tmp_path)
    unlock(d)
    with d.client("zhang.wei") as requester:
        d.wait_state(requester, request_id, SIGNING)
    if window == "SEALD_TEST_PAUSE_BEFORE_RESULT":
        wait_sealed_file(state, request_id)
    d.kill()
    d.start()  # without the pause
    try:
        with d.client("zhang.wei") as requester:
            if window == "SEALD_TEST_PAUSE_AFTER_INTENT":
                back = d.wait_state(requester, request_id, APPROVED)
                assert back.outcome_unknown
                unlock(d)
            done = d.wait_state(requester, request_id, SIGNED)
            requester.download(request_id, 0, tmp_path / "sealed.pdf")
        assert done.documents[0].sealed_sha256
        assert signature_count(tmp_path / "sealed.pdf") == 1
        events = ledger_events(state / "seald.sqlite3", request_id)
        signed = [e for e in events if e[0] == "seal.signed"]
        assert len(signed) == 1
        expected = "signed" if window == "SEALD_TEST_PAUSE_AFTER_INTENT" else "recovered"
        assert signed[0][1] == expected
        if window == "SEALD_TEST_PAUSE_AFTER_INTENT":
            assert ("seal.outcome_unknown", "approved") in events
    finally:
        d.stop()
