"""Helpers for the custody tests (issue 3) against the REAL seald.

Times: seald's custody clock can be moved forward with the test hook
SEALD_TEST_CLOCK_FILE (seald/test_hooks.py); the file holds an offset in seconds,
read at every call, so a running daemon lives "tomorrow at 17:45" without waiting.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fixture_layout import SealFixtures

from sealapi.v1 import common_pb2, requests_pb2, tokens_pb2
from seald_testing.config import ConfigEdit, DaemonConfig
from seald_testing.daemon import SealDaemon, make_pdf

PLACEMENT = common_pb2.Placement(page=1, x_mm=150.0, y_mm=230.0, size_mm=40.0)
APPROVED = requests_pb2.REQUEST_STATE_APPROVED
SIGNED = requests_pb2.REQUEST_STATE_SIGNED


def contract_hours(hours: str, zone: str = "UTC", grace_minutes: float = 30) -> ConfigEdit:
    """A config edit giving the contract seal allowed hours (R08)."""

    def edit(config: DaemonConfig) -> None:
        config.set_seal("contract", hours=hours, time_zone=zone, return_grace_minutes=grace_minutes)

    return edit


class DaemonClock:
    """The daemon's custody clock: real time plus the offset written in a file."""

    def __init__(self, fixtures: SealFixtures) -> None:
        self.path = fixtures.root / "test-clock-offset"
        self.path.write_text("0", encoding="ascii")

    @property
    def env(self) -> dict[str, str]:
        return {"SEALD_TEST_CLOCK_FILE": str(self.path), "SEALD_TEST_CUSTODY_INTERVAL_S": "0.2"}

    def set(self, instant: datetime) -> None:
        # Atomic (rename): the daemon reads the file at every call, and a read between a
        # plain write's truncate and its write saw an empty file, i.e. the real clock: after
        # 17:30 UTC that was an after-hours day of its own (a second "not returned" alert).
        offset = (instant - datetime.now(UTC)).total_seconds()
        part = self.path.with_name(self.path.name + ".part")
        part.write_text(f"{offset:.3f}", encoding="ascii")
        os.replace(part, self.path)


# Read once (issue 14): a test that runs across midnight (the 23:50 faketime pass of
# scripts/test.sh) must not see "tomorrow" move between two calls.
_TOMORROW = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


def tomorrow_utc(hour: int, minute: int = 0) -> datetime:
    """An instant of the day after the test session started (UTC)."""
    return _TOMORROW + timedelta(hours=hour, minutes=minute)


def submit_approved(d: SealDaemon, tmp_path: Path, name: str = "合同.pdf") -> str:
    """A contract request with its two approvals (R05): APPROVED, waiting for the token."""
    pdf = make_pdf(tmp_path / name)
    with d.client("zhang.wei") as requester:
        request = requester.submit(
            [pdf], seal_id="contract", reason="采购合同", category="contract", placement=PLACEMENT
        )
    with d.client("li.na") as li, d.client("wang.fang") as wang:
        li.approve(request.request_id)
        wang.approve(request.request_id)
    return request.request_id


def token_status(d: SealDaemon, seal_id: str = "contract") -> tokens_pb2.TokenStatus:
    with d.client("liu.yang") as custodian:
        (status,) = custodian.token_status(seal_id).tokens
    return status


def wait_token(
    d: SealDaemon, predicate: Callable[[tokens_pb2.TokenStatus], bool], timeout: float = 15.0
) -> tokens_pb2.TokenStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = token_status(d)
        if predicate(status):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"token status never reached the condition: {status}")
        time.sleep(0.05)


def audit_rows(d: SealDaemon, event: str) -> list[dict[str, str]]:
    """The ledger's records of one event, read from the daemon's SQLite file (read-only)."""
    db = d.fixtures.state_dir / "seald.sqlite3"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute(
            "SELECT event, principal, seal_id, request_id, reason, outcome, details_json "
            "FROM audit_log WHERE event = ? ORDER BY sequence",
            (event,),
        ).fetchall()
    finally:
        conn.close()
    return [dict(row) for row in rows]


def wait_audit_rows(d: SealDaemon, event: str, count: int = 1, timeout: float = 10.0) -> list[dict[str, str]]:
    """The ledger's records of ``event`` once there are ``count``: a token is locked at
    once and its audit record written just after, so a test that saw the lock waits."""
    deadline = time.monotonic() + timeout
    while True:
        rows = audit_rows(d, event)
        if len(rows) >= count:
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} {event!r} record(s) expected, found {len(rows)}")
        time.sleep(0.05)
