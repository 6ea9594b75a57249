"""One daemon per state directory: an exclusive ``flock`` on ``$state_dir/seald.lock``.

It lives with the store because the store owns the state directory; the daemon and the
offline backup/restore commands both take it (and so import neither each other).
"""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import IO

from seald.domain.errors import ConfigError


def acquire_state_lock(state_dir: Path) -> IO[str]:
    """One daemon per state directory: a second instance refuses to start."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    handle = (state_dir / "seald.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as ex:
        handle.close()
        raise ConfigError(
            f"another seald is already running on {state_dir}; stop it first (one daemon per state directory)"
        ) from ex
    return handle
