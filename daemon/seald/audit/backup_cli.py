"""`seald --backup FILE` and `seald --restore FILE` (SEAL-RULES R12).

Backup works while seald runs (SQLite online backup from a second connection).
Restore needs seald stopped: it takes the state directory's lock.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from seald.config import Config
from seald.domain.errors import SealError
from seald.store.backup import backup_database_file, restore_backup, size_report
from seald.store.checkpoints import AuditKey
from seald.store.state_lock import acquire_state_lock


def run_backup(config: Config, destination: Path) -> int:
    state_dir = config.store.state_dir
    database = state_dir / "seald.sqlite3"
    try:
        if not database.is_file():
            print(f"seald: no state database at {database}; nothing to back up", file=sys.stderr)
            return 1
        key = AuditKey.load_or_create(config.audit_dir, config.server.host_name)
        manifest = backup_database_file(
            database, destination, key, config.server.host_name, datetime.now(UTC)
        )
    except SealError as ex:
        print(f"seald: backup refused: {ex}", file=sys.stderr)
        return 1
    print(
        f"backup {destination}: sha256 {manifest.sha256}, {manifest.head_sequence} audit records, "
        f"head {manifest.head_hash}\n"
        f"documents and audit certificate in {destination.with_name(manifest.files_directory)}\n"
        f"size report:\n{size_report(manifest)}"
    )
    return 0


def run_restore(config: Config, backup: Path) -> int:
    state_dir = config.store.state_dir
    try:
        lock = acquire_state_lock(state_dir)
    except SealError as ex:
        print(f"seald: restore refused: {ex}", file=sys.stderr)
        return 1
    try:
        result = restore_backup(
            backup, state_dir, config.server.host_name, datetime.now(UTC), config.audit_dir
        )
    except SealError as ex:
        print(f"seald: restore refused: {ex}", file=sys.stderr)
        return 1
    finally:
        lock.close()
    print(
        f"restored {backup} (head {result.manifest.head_sequence}; "
        f"{len(result.manifest.files)} documents and certificates verified against the ledger); voided "
        f"{len(result.voided_requests)} unfinished requests; kept seal statuses "
        f"{result.kept_seal_statuses or 'none'}; previous database kept as {result.previous_database}"
    )
    return 0
