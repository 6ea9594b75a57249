"""RFC 3161 timestamps on audit checkpoints (R10) against certomancer's live TSA on loopback.

The store and audit operations run in process over a real SQLite file; the TSA is
certomancer's responder served over HTTP (tests/integration/ltv_pki.py). The last
test runs the real daemon with an [audit] table: interval, key directory, timestamps.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fixture_layout import SealFixtures

from seald.audit.operations import AuditOperations
from seald.audit.timestamps import timestamp_time
from seald.domain.audit import AuditEvent, ChainVerification
from seald.store.checkpoints import LATEST_FILE, SignedCheckpoint
from seald.store.database import Store
from seald.store.ledger import Ledger
from seald_testing.daemon import SealDaemon
from seald_testing.ltv_pki import LivePki

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def tsa_root(pki: LivePki, tmp_path: Path) -> Path:
    path = tmp_path / "tsa-root.pem"
    path.write_bytes(pki.root_pem)
    return path


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/tsa"  # nothing listens there any more


async def _run(
    state_dir: Path, tsa_url: str, roots: tuple[Path, ...], records: int = 0
) -> tuple[SignedCheckpoint | None, ChainVerification]:
    """Open the store, append ``records`` records, checkpoint if asked, then verify."""
    clock = Clock()
    store = Store(state_dir, Ledger("seal-host-01", clock))
    await store.open()
    ops = AuditOperations(store, "seal-host-01", clock, tsa_url=tsa_url, tsa_roots=roots)
    try:
        started = await ops.start()  # verifies the chain and the latest checkpoint's token
        checkpoint = None
        if records:
            assert started.ok, started.problem
            for i in range(records):
                event = AuditEvent(event="request.submitted", principal="zhang.wei", request_id=f"r{i}")
                await store.write(lambda tx, e=event: tx.audit(e))
            checkpoint = await ops.checkpoint()
        result, _ = await ops.verify()
    finally:
        await store.close()
    return checkpoint, result


def _stored_tokens(state_dir: Path) -> dict[int, bytes]:
    conn = sqlite3.connect(state_dir / "seald.sqlite3")
    try:
        rows = conn.execute("SELECT sequence, timestamp_token FROM audit_checkpoint").fetchall()
        return {int(sequence): bytes(token) for sequence, token in rows}
    finally:
        conn.close()


def _put_token(state_dir: Path, sequence: int, token: bytes) -> None:
    """Replace a checkpoint's token in the database and in the exported file."""
    conn = sqlite3.connect(state_dir / "seald.sqlite3")
    with conn:
        conn.execute("UPDATE audit_checkpoint SET timestamp_token = ? WHERE sequence = ?", (token, sequence))
    conn.close()
    exported = state_dir / "audit" / LATEST_FILE
    raw = json.loads(exported.read_text(encoding="utf-8"))
    assert raw["sequence"] == sequence
    raw["timestamp_token"] = token.hex()
    exported.write_text(json.dumps(raw), encoding="utf-8")


@pytest.mark.clock  # issue 14: the TSA time against now, the year
def test_r10_checkpoint_is_timestamped_by_the_tsa_and_verifies(
    pki: LivePki, tsa_root: Path, tmp_path: Path
) -> None:
    checkpoint, result = asyncio.run(_run(tmp_path, pki.tsa_url, (tsa_root,), records=4))
    assert checkpoint is not None and checkpoint.sequence == 4
    assert checkpoint.timestamp_token, "no token came back from the TSA"
    assert result.ok, result.problem
    # Stored with the checkpoint, in the database and in the exported latest checkpoint.
    assert _stored_tokens(tmp_path)[4] == checkpoint.timestamp_token
    exported = SignedCheckpoint.from_json((tmp_path / "audit" / LATEST_FILE).read_text(encoding="utf-8"))
    assert exported.timestamp_token == checkpoint.timestamp_token
    # The TSA's time is a real time near now (certomancer stamps the wall clock).
    stamped = datetime.fromisoformat(timestamp_time(checkpoint))
    assert abs(stamped - datetime.now(UTC)) < timedelta(minutes=10)


def test_r10_token_of_another_checkpoint_is_detected(pki: LivePki, tsa_root: Path, tmp_path: Path) -> None:
    first, _ = asyncio.run(_run(tmp_path, pki.tsa_url, (tsa_root,), records=2))
    second, _ = asyncio.run(_run(tmp_path, pki.tsa_url, (tsa_root,), records=3))
    assert first is not None and second is not None and second.sequence == 5
    _put_token(tmp_path, 5, first.timestamp_token)  # a genuine token, for another head
    _, result = asyncio.run(_run(tmp_path, pki.tsa_url, (tsa_root,)))
    assert (result.ok, result.first_bad_sequence) == (False, 5)
    assert "message imprint differs" in result.problem


def test_r10_damaged_token_is_detected(pki: LivePki, tsa_root: Path, tmp_path: Path) -> None:
    checkpoint, _ = asyncio.run(_run(tmp_path, pki.tsa_url, (tsa_root,), records=2))
    assert checkpoint is not None
    token = bytearray(checkpoint.timestamp_token)
    token[len(token) // 2] ^= 0x01
    _put_token(tmp_path, checkpoint.sequence, bytes(token))
    _, result = asyncio.run(_run(tmp_path, pki.tsa_url, (tsa_root,)))
    assert (result.ok, result.first_bad_sequence) == (False, checkpoint.sequence), result.problem
    assert "timestamp of the checkpoint at record 2" in result.problem


def test_r10_token_from_a_tsa_outside_the_configured_roots_is_refused(
    pki: LivePki, tsa_root: Path, seal_fixtures: SealFixtures, tmp_path: Path
) -> None:
    checkpoint, _ = asyncio.run(_run(tmp_path, pki.tsa_url, (tsa_root,), records=2))
    assert checkpoint is not None and checkpoint.timestamp_token
    other_root = (seal_fixtures.tls_ca,)  # a real CA, but not the TSA's
    _, result = asyncio.run(_run(tmp_path, pki.tsa_url, other_root))
    assert (result.ok, result.first_bad_sequence) == (False, 2)
    assert "not signed by a TSA chaining to [audit] tsa_roots" in result.problem


def test_r10_unreachable_tsa_keeps_the_signed_checkpoint_and_the_next_run_stamps_it(
    pki: LivePki, tsa_root: Path, tmp_path: Path
) -> None:
    checkpoint, result = asyncio.run(_run(tmp_path, closed_port_url(), (tsa_root,), records=3))
    assert checkpoint is not None and checkpoint.sequence == 3
    assert checkpoint.timestamp_token == b"" and _stored_tokens(tmp_path) == {3: b""}
    assert result.ok, result.problem  # truncation detection does not wait for the TSA

    async def again() -> SignedCheckpoint:
        clock = Clock()
        store = Store(tmp_path, Ledger("seal-host-01", clock))
        await store.open()
        ops = AuditOperations(store, "seal-host-01", clock, tsa_url=pki.tsa_url, tsa_roots=(tsa_root,))
        try:
            await ops.start()
            return await ops.checkpoint()  # same head: the stored checkpoint gets its token
        finally:
            await store.close()

    stamped = asyncio.run(again())
    assert stamped.sequence == 3 and stamped.timestamp_token
    assert _stored_tokens(tmp_path)[3] == stamped.timestamp_token


@pytest.mark.clock  # issue 14: the TSA time against now, the year
def test_r10_sealctl_offline_verify_checks_the_checkpoint_timestamp(
    pki: LivePki, tsa_root: Path, tmp_path: Path
) -> None:
    first, _ = asyncio.run(_run(tmp_path, pki.tsa_url, (tsa_root,), records=2))
    second, _ = asyncio.run(_run(tmp_path, pki.tsa_url, (tsa_root,), records=2))
    assert first is not None and second is not None
    db, cert = tmp_path / "seald.sqlite3", tmp_path / "audit" / "audit-cert.pem"
    sealctl = [sys.executable, "-m", "sealclient.cli", "--json", "audit", "verify", "--offline", str(db)]
    sealctl += ["--audit-cert", str(cert), "--tsa-root", str(tsa_root)]
    good = subprocess.run(sealctl, capture_output=True, text=True, check=False)
    assert good.returncode == 0, good.stdout + good.stderr
    assert json.loads(good.stdout)["timestamp_time"].startswith(str(datetime.now(UTC).year))
    _put_token(tmp_path, second.sequence, first.timestamp_token)
    bad = subprocess.run(sealctl, capture_output=True, text=True, check=False)
    assert bad.returncode == 10, bad.stdout + bad.stderr
    verdict = json.loads(bad.stdout)
    assert (verdict["ok"], verdict["first_bad_sequence"]) == (False, second.sequence)
    assert "message imprint differs" in verdict["problem"]


def test_r10_daemon_uses_audit_interval_key_dir_and_tsa_from_config(
    fresh_seal_fixtures: SealFixtures, pki: LivePki, tmp_path: Path
) -> None:
    root = tmp_path / "tsa-root.pem"
    root.write_bytes(pki.root_pem)
    key_dir = tmp_path / "audit-keys"
    daemon = SealDaemon(
        fresh_seal_fixtures,
        lambda c: c.set(
            "audit",
            checkpoint_interval_seconds=1,
            key_dir=str(key_dir),
            timestamp_checkpoints=True,
            tsa_url=pki.tsa_url,
            tsa_roots=[str(root)],
        ),
    )
    daemon.start()
    try:
        deadline = time.monotonic() + 30
        tokens: dict[int, bytes] = {}
        while time.monotonic() < deadline:
            tokens = _stored_tokens(fresh_seal_fixtures.state_dir)
            if any(sequence > 0 and token for sequence, token in tokens.items()):
                break
            time.sleep(0.2)
        assert any(sequence > 0 and token for sequence, token in tokens.items()), daemon.log()[-3000:]
    finally:
        assert daemon.stop() == 0
    # The audit key and the exported checkpoint live in key_dir, not in the state directory.
    assert (key_dir / "audit-key.pem").stat().st_mode & 0o777 == 0o600
    assert (key_dir / LATEST_FILE).is_file()
    assert not (fresh_seal_fixtures.state_dir / "audit").exists()
    assert "audit.checkpoint_timestamped" in daemon.log()
