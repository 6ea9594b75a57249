"""Pauses and kill points that only tests switch on, to hit exact windows in the daemon.

Unset in production: every hook is a dictionary look-up in os.environ and returns.

SEALD_TEST_PAUSE_AFTER_INTENT=<seconds>: after the intent record is committed,
before the token is touched. SEALD_TEST_PAUSE_BEFORE_RESULT=<seconds>: after the
sealed files are written, before the result record.

SEALD_TEST_CLOCK_FILE=<path>: the custody clock (hours, same-day return, idle lock,
delegation windows, request times) is the real time plus the number of seconds
written in that file, read at every call, so a test moves a running daemon's day
forward without waiting. SEALD_TEST_CUSTODY_INTERVAL_S=<seconds>: how often the
custody rules are checked (default: seald.app.CUSTODY_INTERVAL_S). The audit ledger
keeps the real time.

SEALD_TEST_SLOW_WORKER_START_S=<seconds>: each seal worker process sleeps this long in
its warm-up (signing/pipeline.py ``warm_up``), so a test can stop seald while its
workers are still starting.

SEALD_TEST_KILL_AT=<point>[@<n>]: the daemon sends itself SIGKILL the n-th time (default
the first) it reaches <point> — exactly what `kill -9` does, at an exact place (the crash
matrix of issue 8, tests/integration/test_crash_matrix.py). Points:
- ``tx:<event>``: inside a store transaction whose first audit record is <event> (e.g.
  ``tx:seal.sign_intent``), after its rows are written, before COMMIT;
- ``commit:<event>``: right after that transaction committed, before anyone is told;
- ``sign.before_document`` / ``sign.document_sealed``: on the token thread before a
  document's signature, and after one sealed file of the request was renamed into place
  (the pipeline of seal_workers.py, every level).
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from seald.runtime.logs import get_logger

log = get_logger("seald.test_hooks")

KILL_AT = "SEALD_TEST_KILL_AT"
_hits: dict[str, int] = {}
_hits_lock = threading.Lock()


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

def kill_point(point: str) -> None:
    """SIGKILL this process if SEALD_TEST_KILL_AT names ``point`` (and this is its n-th hit)."""
    wanted = os.environ.get(KILL_AT, "")
    if not wanted:
        return
    name, _, nth = wanted.partition("@")
    if name != point:
        return
    with _hits_lock:
        _hits[point] = _hits.get(point, 0) + 1
        if _hits[point] != int(nth or "1"):
            return
    # Straight to the file descriptor: a logger's buffer would die with the process.
    os.write(2, f'{{"event": "test_hook.kill", "point": "{wanted}"}}\n'.encode())
    os.kill(os.getpid(), signal.SIGKILL)


def kill_point_for_records(stage: str, events: Sequence[str]) -> None:
    """The ``tx:``/``commit:`` points of a store transaction, named by its first record."""
    if events and os.environ.get(KILL_AT):
        kill_point(f"{stage}:{events[0]}")
