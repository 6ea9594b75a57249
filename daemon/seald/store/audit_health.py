"""Is the audit trail writable right now? (fail closed, SEAL-RULES R10/R15).

SQLite keeps writing into a database file that was deleted (the open inode lives
on), so records would vanish with the process: every commit first checks that the
path still names the file we opened. While the trail is not writable, a probe
commits one row to a side table (not the ledger) once a second; when that works
again - space freed, file writable again - signing resumes.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Final

# Below this much free space on the state volume, no signing starts: the intent and
# result records (and the sealed file) must all fit, so stop before the disk is full.
MIN_FREE_BYTES: Final = 4 * 1024 * 1024

PROBE_SCHEMA: Final = "CREATE TABLE IF NOT EXISTS audit_probe (id INTEGER PRIMARY KEY, at TEXT NOT NULL)"


class DatabaseFileReplaced(sqlite3.OperationalError):
    """The state database path no longer names the file this process has open."""


def file_identity(path: Path) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino


def check_same_file(path: Path, opened: tuple[int, int] | None) -> None:
    """Raise DatabaseFileReplaced if ``path`` was deleted or swapped since it was opened."""
    if opened is None:
        return
    now = file_identity(path)
    if now is None:
        raise DatabaseFileReplaced(
            f"the state database {path} was deleted while open; writes would be lost. "
            "Restore it from a verified backup and restart seald"
        )
    if now != opened:
        raise DatabaseFileReplaced(
            f"the state database {path} was replaced while open; restart seald so that it "
            "verifies the new file before using it"
        )


def probe_write(conn: sqlite3.Connection, path: Path, opened: tuple[int, int] | None, at: str) -> None:
    """One real commit (fsync) outside the ledger; raises sqlite3.Error if it cannot be written."""
    check_same_file(path, opened)
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("INSERT OR REPLACE INTO audit_probe (id, at) VALUES (1, ?)", (at,))
        conn.execute("COMMIT")
    except sqlite3.Error:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise


def check_free_space(directory: Path, minimum: int = MIN_FREE_BYTES) -> None:
    """Raise sqlite3.OperationalError when the state volume is (nearly) full."""
    info = os.statvfs(directory)
    free = info.f_bavail * info.f_frsize
    if free < minimum:
        raise sqlite3.OperationalError(
            f"only {free // 1024} KiB free on the state volume of {directory} (need "
            f"{minimum // 1024} KiB); free disk space to resume sealing"
        )
