"""What the daemon lets a test steer, by injection only: the clock and the hook points.

The shipped daemon runs with :func:`real_clock` and :data:`NO_HOOKS` (every hook does
nothing) and reads no environment variable for them. A test entry point
(tests/seald_under_test.py) builds the daemon with its own clock and hooks; production
has no way to switch them on (issue 15: a systemd drop-in could, when the test
environment variables were read by the daemon itself).

Hook points, named where they are called:

- pauses: ``after_intent`` (the intent record committed, the token not yet touched),
  ``before_result`` (the sealed files written, the result record not yet),
  ``between_signatures`` (a sealing job's signature recorded, the next not started);
- kill points: ``tx:<event>`` (inside a store transaction whose first audit record is
  <event>, before COMMIT), ``commit:<event>`` (right after that COMMIT), and on the
  token thread ``sign.before_document`` / ``sign.document_sealed``; a sealing job's
  ``job.before_signature`` (token thread), ``job.signature_written``,
  ``job.signature_recorded``, ``job.document_released`` (issue 16);
- worker start: a callable (and its arguments) each seal worker process runs first.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

Clock = Callable[[], datetime]
WorkerInitializer = tuple[Callable[..., object], tuple[Any, ...]]


def real_clock() -> datetime:
    return datetime.now(UTC)


class Hooks(Protocol):
    async def pause(self, point: str, request_id: str) -> None:
        """Called at a pause point; returns when the daemon may go on."""

    def kill_point(self, point: str) -> None:
        """Called at a kill point (any thread)."""

    def worker_initializer(self) -> WorkerInitializer | None:
        """What each seal worker process runs first (picklable), or None."""


class NoHooks:
    """The shipped daemon's hooks: nothing happens at any point."""

    async def pause(self, point: str, request_id: str) -> None:
        return None

    def kill_point(self, point: str) -> None:
        return None

    def worker_initializer(self) -> WorkerInitializer | None:
        return None


NO_HOOKS: Hooks = NoHooks()
