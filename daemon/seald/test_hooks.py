"""Pauses that only tests switch on, to hit exact windows in the signing path.

SEALD_TEST_PAUSE_AFTER_INTENT=<seconds>: after the intent record is committed,
before the token is touched. SEALD_TEST_PAUSE_BEFORE_RESULT=<seconds>: after the
sealed files are written, before the result record. Unset in production: no-op.

SEALD_TEST_CLOCK_FILE=<path>: the custody clock (hours, same-day return, idle lock,
delegation windows, request times) is the real time plus the number of seconds
written in that file, read at every call, so a test moves a running daemon's day
forward without waiting. SEALD_TEST_CUSTODY_INTERVAL_S=<seconds>: how often the
custody rules are checked (default: seald.app.CUSTODY_INTERVAL_S). The audit ledger
keeps the real time.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from seald.logs import get_logger

log = get_logger("seald.test_hooks")


async def pause(name: str, request_id: str) -> None:
    value = os.environ.get(name, "")
    if not value:
        return
    log.warning("test_hook.pause", hook=name, request_id=request_id, seconds=float(value))
    await asyncio.sleep(float(value))


def offset_clock() -> Callable[[], datetime] | None:
    """The test clock of SEALD_TEST_CLOCK_FILE, or None (production: the real clock)."""
    value = os.environ.get("SEALD_TEST_CLOCK_FILE", "")
    if not value:
        return None
    path = Path(value)
    log.warning("test_hook.clock", file=str(path))

    def clock() -> datetime:
        try:
            offset = float(path.read_text(encoding="ascii").strip() or 0)
        except (OSError, ValueError):
            offset = 0.0
        return datetime.now(UTC) + timedelta(seconds=offset)

    return clock


def custody_interval(default: float) -> float:
    value = os.environ.get("SEALD_TEST_CUSTODY_INTERVAL_S", "")
    return float(value) if value else default
