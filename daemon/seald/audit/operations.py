"""Audit operations of the running daemon: checkpoints, verification, write probe.

Holds the audit key; everything touching the database runs on the store's one
writer thread (store.call / store.write).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, tzinfo
from pathlib import Path

import aiohttp
from pyhanko.sign.timestamps.common_utils import TimestampRequestError

from seald.audit import report_seal, reports
from seald.audit import timestamps as audit_timestamps
from seald.domain.audit import ChainVerification, format_time
from seald.domain.errors import InvalidInput
from seald.domain.quotas import Quotas
from seald.runtime.logs import get_logger
from seald.store.backup import BackupManifest
from seald.store.checkpoints import (
    AUDIT_DIR_NAME,
    AuditKey,
    SignedCheckpoint,
    create_checkpoint,
    export_latest,
    read_exported,
    store_timestamp,
)
from seald.store.database import Store

log = get_logger("seald.audit")

class AuditOperations:
    def __init__(
        self,
        store: Store,
        host: str,
        clock: Callable[[], datetime],
        on_writable_again: Callable[[], Awaitable[None]] | None = None,
        *,
        directory: Path | None = None,
        tsa_url: str = "",
        tsa_roots: tuple[Path, ...] = (),
    ) -> None:
        self.store = store
        self.host = host
        self.clock = clock
        # Issue 17: seal -> (use quotas, time zone) for the usage report (set by the daemon).
        self.quotas: Callable[[], Mapping[str, tuple[Quotas, tzinfo]]] = dict
        # [audit] key_dir; default <state_dir>/audit.
        self.directory: Path = directory or store.state_dir / AUDIT_DIR_NAME
        self._key: AuditKey | None = None
        self._on_writable_again = on_writable_again
        # [audit] timestamp_checkpoints: each checkpoint also gets an RFC 3161 token.
        self.tsa_url = tsa_url
        self.tsa_roots = tsa_roots

    @property
    def key(self) -> AuditKey:
        if self._key is None:
            raise RuntimeError("AuditOperations.start() was not called")
        return self._key

    async def start(self) -> ChainVerification:
        """Load (or create) the audit key and verify the chain against the latest checkpoint."""
        self._key = await self.store.call(lambda: AuditKey.load_or_create(self.directory, self.host))
        result, _ = await self.verify()
        return result

    async def verify(self) -> tuple[ChainVerification, SignedCheckpoint | None]:
        certificate = self.key.certificate
        exported = await self.store.call(lambda: read_exported(self.directory))
        result, latest = await self.store.verify_chain(certificate, exported)
        if result.ok and latest is not None and self.tsa_roots:
            result = await self._check_timestamp(result, latest)
        return result, latest

    async def _check_timestamp(
        self, result: ChainVerification, latest: SignedCheckpoint
    ) -> ChainVerification:
        if not latest.timestamp_token:
            # The TSA was unreachable when it was made; the audit key's signature still holds.
            log.warning("audit.checkpoint_not_timestamped", sequence=latest.sequence)
            return result
        roots = await asyncio.get_running_loop().run_in_executor(
            None, audit_timestamps.load_roots, self.tsa_roots
        )
        problem = await audit_timestamps.timestamp_problem(latest, roots)
        if not problem:
            return result
        return dataclasses.replace(result, ok=False, first_bad_sequence=latest.sequence, problem=problem)

    async def checkpoint(self) -> SignedCheckpoint:
        key, now = self.key, self.clock()
        checkpoint, _ = await self.store.write(lambda tx: create_checkpoint(tx.conn, key, self.host, now))
        if self.tsa_url and not checkpoint.timestamp_token:
            checkpoint = await self._timestamp(checkpoint)
        await self.store.call(lambda: export_latest(self.directory, checkpoint))
        log.info("audit.checkpoint", sequence=checkpoint.sequence, head_hash=checkpoint.head_hash)
        return checkpoint

    async def _timestamp(self, checkpoint: SignedCheckpoint) -> SignedCheckpoint:
        """Ask the TSA outside any transaction; store the token with the checkpoint.

        A TSA failure keeps the signed checkpoint (truncation detection must not depend
        on a remote service) and is logged; the next checkpoint run asks again.
        """
        try:
            token = await audit_timestamps.request_timestamp(checkpoint, self.tsa_url)
        except (TimeoutError, OSError, TimestampRequestError, aiohttp.ClientError) as ex:
            log.error(
                "audit.checkpoint_timestamp_failed",
                sequence=checkpoint.sequence,
                problem=f"{type(ex).__name__}: {ex}",
            )
            return checkpoint
        stamped = dataclasses.replace(checkpoint, timestamp_token=token)
        await self.store.write(lambda tx: store_timestamp(tx.conn, stamped))
        log.info(
            "audit.checkpoint_timestamped",
            sequence=stamped.sequence,
            tsa_time=audit_timestamps.timestamp_time(stamped),
        )
        return stamped

    async def probe(self) -> bool:
        """Re-check writability: cheap file check always, a real commit while failed."""
        store = self.store
        was_writable = store.writable

        problem = await store.probe_writable(
            commit=not was_writable, at=format_time(self.clock())
        )
        if problem:
            log.error("audit.unwritable", problem=problem)
        writable = not problem
        store.writable = writable
        if writable and not was_writable:
            log.warning("audit.writable_again")
            if self._on_writable_again is not None:
                await self._on_writable_again()
        return writable

    async def report(self, from_time: datetime, to_time: datetime, seal_id: str, fmt: str) -> bytes:
        """The usage summary; a PDF comes back sealed with the audit key."""
        if fmt not in reports.FORMATS:
            raise InvalidInput(
                f"unknown report format {fmt!r}; use one of {', '.join(reports.FORMATS)}",
                reason="report_format_unknown",
            )
        def _render() -> bytes:
            # Its own read-only connection (WAL: a consistent snapshot) so that a report
            # over a large ledger never holds up the store's writer thread.
            with self.store.ledger_snapshot() as ledger:
                records = ledger.records(to_time=to_time)
                report = reports.build_report(records, from_time, to_time, seal_id, self.quotas())
                # The seal's time comes from the ledger, so the same ledger gives the same bytes.
                last_time = ledger.record_time(report.ledger_head_sequence)
            data = reports.render(report, fmt)
            if fmt != "pdf":
                return data
            return seal_report_pdf(data, self.directory, last_time, from_time)

        # Off the loop and off the store thread.
        return await asyncio.get_running_loop().run_in_executor(None, _render)

    async def backup(self, destination: Path) -> BackupManifest:
        key, now = self.key, self.clock()
        # A NUL makes every file call raise ValueError (was INTERNAL; found by test_fuzz_grpc).
        if "\x00" in str(destination) or not destination.is_absolute():
            raise InvalidInput(
                f"backup destination {str(destination)!r} must be an absolute path on the seal host "
                "(no NUL character)",
                reason="backup_destination_relative",
            )
        return await self.store.backup_to(destination, key, self.host, now)


def seal_report_pdf(data: bytes, audit_dir: Path, last_record_time: str, fallback: datetime) -> bytes:
    """Seal a rendered report with the audit key, reproducibly (see seald.audit.report_seal)."""
    signer, certificate = report_seal.load_audit_signer(audit_dir)
    when = report_seal.report_signing_time(last_record_time, fallback, certificate)
    return report_seal.seal_report(data, signer, when)
