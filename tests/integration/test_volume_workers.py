"""Seal worker processes end when seald is SIGKILLed (issue 20: the volume tests kill
seald mid-run; before, every killed daemon left its spawned workers behind, idle for
ever). Real spawned workers of a real process, killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = """
import asyncio, os, sys
from seald.service.seal_workers import SealWorkers
from seald.signing.pipeline import warm_up

async def main():
    workers = SealWorkers(2)
    pids = set(await asyncio.gather(*(workers.run(warm_up) for _ in range(8))))
    print(" ".join(str(p) for p in sorted(pids)), flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def test_volume_workers_end_when_seald_is_killed() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        assert proc.stdout is not None
        pids = [int(p) for p in proc.stdout.readline().split()]
        assert pids and all(alive(p) for p in pids)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 15
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [p for p in pids if alive(p)], "seal workers outlived their daemon"
    finally:
        if proc.poll() is None:
            proc.kill()
