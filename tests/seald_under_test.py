"""seald as the integration tests run it: the shipped daemon with test hooks injected.

The shipped ``seald`` (``seald.app:main``) reads no test variable: its clock is the real
one and every hook point does nothing (seald.runtime.hooks). This entry point, which
tests/integration/daemon_harness.py starts instead of ``python -m seald.app``, reads
the test environment and injects:

SEALD_TEST_PAUSE_AFTER_INTENT=<seconds>: after the intent record is committed, before
the token is touched. SEALD_TEST_PAUSE_BEFORE_RESULT=<seconds>: after the sealed files
are written, before the result record. SEALD_TEST_PAUSE_BETWEEN_SIGNATURES=<seconds>:
after each recorded signature of a sealing job (issue 16), before the next one.

SEALD_TEST_CLOCK_FILE=<path>: the custody clock (hours, same-day return, idle lock,
delegation windows, request times) is the real time plus the number of seconds
written in that file, read at every call, so a test moves a running daemon's day
forward without waiting. The audit ledger keeps the real time.
SEALD_TEST_CUSTODY_INTERVAL_S=<seconds>: how often the custody rules are checked.

SEALD_TEST_SLOW_WORKER_START_S=<seconds>: each seal worker process sleeps this long
when it starts (a pool initializer, passed to the spawned process as an argument), so a
test can stop seald while its workers are still starting.

SEALD_TEST_KILL_AT=<point>[@<n>]: the daemon sends itself SIGKILL the n-th time (default
the first) it reaches <point>: exactly what ``kill -9`` does, at an exact place (the
crash matrix, tests/integration/test_crash_matrix.py). Points: ``tx:<event>`` (inside a
store transaction whose first audit record is <event>, before COMMIT), ``commit:<event>``
(right after it committed), ``sign.before_document`` / ``sign.document_sealed`` (on the
token thread before a document's signature / after one sealed file was renamed), and a
sealing job's (issue 16) ``job.before_signature`` (token thread), ``job.signature_written``
(an intermediate in place, not recorded), ``job.signature_recorded`` (recorded, the next
seal not started), ``job.document_released`` (a sealed file linked, no result record).

Run: ``python tests/seald_under_test.py --config FILE`` (the arguments of ``seald``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from seald.runtime import daemon
from seald.runtime.hooks import Clock, WorkerInitializer, real_clock
from seald.runtime.logs import get_logger

log = get_logger("seald.test_hooks")

PAUSES = {
    "after_intent": "SEALD_TEST_PAUSE_AFTER_INTENT",
    "before_result": "SEALD_TEST_PAUSE_BEFORE_RESULT",
    "between_signatures": "SEALD_TEST_PAUSE_BETWEEN_SIGNATURES",
}


def sleep_at_start(seconds: float) -> None:
    """The seal worker initializer: a worker that is still starting."""
    time.sleep(seconds)


class EnvHooks:
    """The hooks the SEALD_TEST_* variables ask for (read once, at start)."""

    def __init__(self, environ: dict[str, str]) -> None:
        self.pauses = {p: float(environ[v]) for p, v in PAUSES.items() if environ.get(v)}
        wanted = environ.get("SEALD_TEST_KILL_AT", "")
        name, _, nth = wanted.partition("@")
        self.kill_at, self.kill_nth, self.kill_spec = name, int(nth or "1"), wanted
        self.slow_start = float(environ.get("SEALD_TEST_SLOW_WORKER_START_S", "0") or 0)
        self._hits = 0
        self._lock = threading.Lock()

    async def pause(self, point: str, request_id: str) -> None:
        seconds = self.pauses.get(point)
        if seconds is None:
            return
        log.warning("test_hook.pause", hook=PAUSES[point], request_id=request_id, seconds=seconds)
        await asyncio.sleep(seconds)

    def kill_point(self, point: str) -> None:
        if not self.kill_at or point != self.kill_at:
            return
        with self._lock:
            self._hits += 1
            if self._hits != self.kill_nth:
                return
        # Straight to the file descriptor: a logger's buffer would die with the process.
        os.write(2, f'{{"event": "test_hook.kill", "point": "{self.kill_spec}"}}\n'.encode())
        os.kill(os.getpid(), signal.SIGKILL)

    def worker_initializer(self) -> WorkerInitializer | None:
        return (sleep_at_start, (self.slow_start,)) if self.slow_start > 0 else None


def offset_clock(path: Path) -> Clock:
    """The real time plus the seconds written in ``path`` (read at every call)."""
    log.warning("test_hook.clock", file=str(path))

    last = [0.0]  # a file being replaced keeps the last offset, never the real clock

    def clock() -> datetime:
        with contextlib.suppress(OSError, ValueError):
            last[0] = float(path.read_text(encoding="ascii").strip())
        return datetime.now(UTC) + timedelta(seconds=last[0])

    return clock


def main(argv: list[str], environ: dict[str, str]) -> int:
    clock_file = environ.get("SEALD_TEST_CLOCK_FILE", "")
    interval = environ.get("SEALD_TEST_CUSTODY_INTERVAL_S", "")
    return daemon.main(
        argv,
        clock=offset_clock(Path(clock_file)) if clock_file else real_clock,
        hooks=EnvHooks(environ),
        custody_interval_s=float(interval) if interval else None,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], dict(os.environ)))
