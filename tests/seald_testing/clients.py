"""Helpers for the client tests against the REAL seald (no fake server anywhere).

One daemon per test module (the `module_daemon_factory` fixture) keeps the suite
fast: tests in a module share it and must not depend on what other tests in it did
(each test submits its own requests and filters by their ids). Attacks are real: the
daemon's files on disk are changed while it runs (`tamper_*`).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import grpc
from fixture_layout import SealFixtures

from sealapi.v1 import common_pb2, requests_pb2
from sealclient.client import SealClient
from sealclient.errors import SealClientError
from seald_testing.daemon import SealDaemon, log_events, make_pdf
from seald_testing.tokens import token_dir

PLACEMENT = common_pb2.Placement(page=1, x_mm=150.0, y_mm=230.0, size_mm=42.0)
SEALCTL = shutil.which("sealctl", path=str(Path(sys.executable).parent))


def unplug_token(fixtures: SealFixtures, seal_id: str) -> Path:
    """Take a seal's token out before the daemon starts: SoftHSM will not list it."""
    source = token_dir(fixtures, seal_id)
    unplugged = fixtures.root / f"unplugged-{seal_id}"
    source.rename(unplugged)
    return unplugged


def submit(
    daemon: SealDaemon,
    tmp_path: Path,
    *,
    name: str = "采购合同.pdf",
    seal_id: str = "contract",
    requester: str = "zhang.wei",
) -> requests_pb2.SealRequest:
    pdf = make_pdf(tmp_path / name)
    with daemon.client(requester) as client:
        return client.submit(
            [pdf], seal_id=seal_id, reason="签署采购合同", category="contract", placement=PLACEMENT
        )


def original_on_disk(daemon: SealDaemon, request_id: str, index: int = 0) -> Path:
    return daemon.fixtures.state_dir / "documents" / request_id / f"{index:04d}.pdf"


def sealed_on_disk(daemon: SealDaemon, request_id: str, index: int = 0) -> Path:
    return daemon.fixtures.state_dir / "documents" / request_id / f"{index:04d}.sealed.pdf"


def tamper_stored_original(daemon: SealDaemon, request_id: str) -> bytes:
    """Swap the stored original for other bytes, as an intruder on the host would."""
    swapped = make_pdf(daemon.fixtures.root / "swapped.pdf", pages=3).read_bytes()
    original_on_disk(daemon, request_id).write_bytes(swapped)
    return swapped


def tamper_stored_description(daemon: SealDaemon, request_id: str, **changes: str) -> None:
    """Edit the request row in the daemon's SQLite file; the stored digest is left stale."""
    conn = sqlite3.connect(daemon.fixtures.state_dir / "seald.sqlite3", timeout=10)
    try:
        (body,) = conn.execute("SELECT body FROM requests WHERE request_id = ?", (request_id,)).fetchone()
        data = json.loads(body)
        for key, value in changes.items():
            assert key in data, f"no field {key!r} in the stored request"
            data[key] = value
        with conn:
            conn.execute(
                "UPDATE requests SET body = ? WHERE request_id = ?",
                (json.dumps(data, ensure_ascii=False, sort_keys=True), request_id),
            )
    finally:
        conn.close()


def approval_count(daemon: SealDaemon, request_id: str) -> int:
    with daemon.client("zhang.wei") as client:
        return len(client.get(request_id).approvals)


def approve_twice_and_unlock(daemon: SealDaemon, request_id: str, seal_id: str = "contract") -> None:
    with daemon.client("li.na") as li, daemon.client("wang.fang") as wang:
        li.approve(request_id)
        wang.approve(request_id)
    unlock(daemon, seal_id)


# R07: the custodian replaces a token's initial PIN at first use. Tests sharing one daemon
# change it once (initial_pin_changed tells) and unlock with the new PIN afterwards.
NEW_PIN = "20261129"


def current_pin(daemon: SealDaemon, seal_id: str) -> str:
    """The PIN that unlocks the token now, changing the initial PIN first if needed."""
    initial = daemon.fixtures.seals[seal_id].user_pin
    with daemon.client("liu.yang") as custodian:
        (status,) = custodian.token_status(seal_id).tokens
        if status.initial_pin_changed:
            return NEW_PIN
        try:
            custodian.change_pin(seal_id, initial, NEW_PIN)
        except SealClientError as error:
            if error.code is not grpc.StatusCode.UNIMPLEMENTED:
                raise
            return initial  # a daemon without ChangePin (before issue 3) signs with it
        return NEW_PIN


def unlock(daemon: SealDaemon, seal_id: str = "contract") -> None:
    pin = current_pin(daemon, seal_id)
    with daemon.client("liu.yang") as custodian:
        status = custodian.unlock(seal_id, pin)
    assert status.unlocked, status


def rpc_lines(daemon: SealDaemon, method: str) -> list[dict[str, object]]:
    """The daemon's canonical `rpc` log lines for one method."""
    return [e for e in log_events(daemon, "rpc") if str(e.get("method", "")).endswith(method)]


def sealctl(
    daemon: SealDaemon,
    who: str,
    *args: str,
    stdin: str | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """Run the installed `sealctl` as that principal, with its generated config file."""
    assert SEALCTL is not None, "sealctl is not installed in the venv; run scripts/setup.sh"
    config = daemon.fixtures.principals[who].config
    return subprocess.run(
        [SEALCTL, "--config", str(config), "--server", daemon.target, *args],
        capture_output=True,
        text=True,
        input=stdin,
        check=False,
        timeout=timeout,
    )


def wait_signed(daemon: SealDaemon, request_id: str) -> requests_pb2.SealRequest:
    with daemon.client("zhang.wei") as client:
        return daemon.wait_state(client, request_id, requests_pb2.REQUEST_STATE_SIGNED)


def client_of(daemon: SealDaemon, who: str) -> SealClient:
    return daemon.client(who)
