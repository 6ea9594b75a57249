"""sealctl at a real pseudo-terminal (typed PINs, echo off)."""

from __future__ import annotations

import os
import select
import subprocess
import time

from seald_testing.clients import SEALCTL
from seald_testing.daemon import SealDaemon


def run_on_terminal(daemon: SealDaemon, who: str, argv: list[str], answers: list[str]) -> tuple[int, str]:
    """Run sealctl with a pseudo-terminal as its controlling terminal; answer each prompt.

    Returns the exit code and everything that appeared on the terminal, so a test
    can prove a typed PIN was not echoed.
    """
    assert SEALCTL is not None
    master, slave = os.openpty()
    config = daemon.fixtures.principals[who].config
    # setsid --ctty: a new session whose controlling terminal is the pty, as in a login shell.
    proc = subprocess.Popen(
        ["setsid", "--ctty", SEALCTL, "--config", str(config), "--server", daemon.target, *argv],
        stdin=slave,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    transcript = b""
    pending = list(answers)
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(master, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                transcript += data
                # Answer only at a prompt: getpass turns echo off before it prints one.
                if pending and transcript.endswith(b": "):
                    os.write(master, pending.pop(0).encode() + b"\n")
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, transcript.decode("utf-8", errors="replace")
