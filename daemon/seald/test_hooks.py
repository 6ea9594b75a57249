"""Pauses that only tests switch on, to hit exact windows in the signing path.

SEALD_TEST_PAUSE_AFTER_INTENT=<seconds>: after the intent record is committed,
before the token is touched. SEALD_TEST_PAUSE_BEFORE_RESULT=<seconds>: after the
sealed files are written, before the result record. Unset in production: no-op.
"""

from __future__ import annotations

import asyncio
import os

from seald.logs import get_logger

log = get_logger("seald.test_hooks")


async def pause(name: str, request_id: str) -> None:
    value = os.environ.get(name, "")
    if not value:
        return
    log.warning("test_hook.pause", hook=name, request_id=request_id, seconds=float(value))
    await asyncio.sleep(float(value))
