"""Renewal of B-LTA archive timestamps in the running daemon (issue 16 item 5; R14).

`sealctl archive renew` (RenewArchives, auditor or admin; daily through
systemd/seald-archive-renew.timer) walks every SIGNED request's sealed documents:

1. the file on disk must have the SHA-256 the ledger records (else: not touched,
   ``archive_file_mismatch``, audited - someone changed a sealed file);
2. its newest document timestamp's facts (signing/archive.py) and the pure rule
   (domain/archive.py) say due / not due / expired / not an archive;
3. due (and not a dry run): pyHanko's archival timestamp chain update writes the
   document plus fresh revocation data and a new document timestamp to a pending file
   beside the sealed one (``.NNNN.sealed.pdf.archive-renewal``, fsynced); ONE transaction
   records the new SHA-256/size on the request and the audit record ``archive.renewed``
   (old -> new SHA-256, timestamp time, TSA certificate end); then the pending file
   replaces the sealed file (rename, atomic). A crash between commit and rename leaves a
   pending file whose hash the ledger already names: the next run finishes the rename;
   a pending file the ledger does not name (cut off before the commit) is deleted.

Blocking work (hashing, PDF parsing, HTTP to the TSA and responders) runs in a thread.
One run at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from seald.config import Config
from seald.domain.archive import ArchiveFacts, ArchiveStatus, RenewalDecision, renewal_decision
from seald.domain.audit import AuditEvent
from seald.domain.errors import PreconditionFailed, SealError, SigningError
from seald.domain.model import Document, Principal, RequestState, Role, SealRequest
from seald.runtime.logs import get_logger
from seald.signing.archive import FIELD_PREFIX, archive_facts, renew_archive
from seald.store.database import Store, Transaction

log = get_logger("seald.archive")

PENDING_SUFFIX = ".archive-renewal"
_PAGE = 200


@dataclass(frozen=True)
class ArchiveOutcome:
    """One sealed document in one run."""

    request_id: str
    seal_id: str
    document_index: int
    document_name: str
    status: ArchiveStatus
    reason: str
    detail: str
    sha256: str  # the sealed file's SHA-256 before the run
    new_sha256: str = ""
    timestamp_time: datetime | None = None  # of the newest document timestamp after the run
    expires_at: datetime | None = None  # its TSA certificate's (chain's) end


def pending_path(sealed: Path) -> Path:
    return sealed.with_name(f".{sealed.name}{PENDING_SUFFIX}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _settle_pending(sealed: Path, ledger_sha256: str) -> None:
    """Finish or discard a renewal a crash cut off (see the module docstring)."""
    pending = pending_path(sealed)
    if not pending.exists():
        return
    if _sha256(pending) == ledger_sha256:
        os.replace(pending, sealed)
        _fsync_dir(sealed.parent)
        log.info("archive.pending_completed", file=sealed.name)
    else:
        pending.unlink()
        log.info("archive.pending_discarded", file=sealed.name)


@dataclass(frozen=True)
class _Run:
    principal: Principal
    dry_run: bool
    roots: tuple[bytes, ...]
    within_days: int
    tsa_url: str


class ArchiveRenewer:
    def __init__(self, store: Store, clock: Callable[[], datetime], config: Callable[[], Config]) -> None:
        self.store = store
        self.clock = clock
        self.config = config
        self._lock = asyncio.Lock()

    async def run(self, principal: Principal, *, dry_run: bool) -> AsyncIterator[ArchiveOutcome]:
        """Each sealed document's outcome as the run reaches it (streamed to the caller).
        A caller that stops early (cancelled RPC) ends the run after the current document;
        the run record counts what was done."""
        config = self.config()
        trust = config.trust
        if not dry_run and not trust.tsa_url:
            raise PreconditionFailed(
                "archive renewal needs a timestamp authority: set [trust] tsa_url (and "
                "signing_roots), or use --dry-run to list what is due",
                reason="archive_not_configured",
            )
        root_files = trust.signing_roots or (trust.seal_ca,)
        try:
            roots = tuple(p.read_bytes() for p in root_files)
        except OSError as ex:
            raise PreconditionFailed(
                f"cannot read a trust root file ({ex.strerror}); check [trust] signing_roots",
                reason="archive_not_configured",
            ) from ex
        run = _Run(principal, dry_run, roots, config.archive.renew_within_days, trust.tsa_url)
        async with self._lock:
            counts: dict[str, int] = {}
            try:
                after: tuple[str, str] | None = None
                while True:
                    page = await self.store.list_requests(
                        states=(RequestState.SIGNED,), after=after, limit=_PAGE
                    )
                    for request in page:
                        for doc in request.documents:
                            outcome = await self._one(run, request, doc)
                            counts[outcome.status.value] = counts.get(outcome.status.value, 0) + 1
                            yield outcome
                    if len(page) < _PAGE:
                        break
                    after = (page[-1].created_at.isoformat(), page[-1].request_id)
            finally:
                await asyncio.shield(self._record_run(principal, dry_run, counts))

    async def _one(self, run: _Run, request: SealRequest, doc: Document) -> ArchiveOutcome:
        sealed = self.store.sealed_path(request.request_id, doc.index)
        base = ArchiveOutcome(
            request.request_id,
            request.seal_id,
            doc.index,
            doc.name,
            ArchiveStatus.FAILED,
            "",
            "",
            doc.sealed_sha256,
        )

        def _inspect() -> ArchiveFacts | str:
            if not run.dry_run:
                _settle_pending(sealed, doc.sealed_sha256)
            if not sealed.is_file():
                return f"the sealed file {sealed.name} is missing"
            if _sha256(sealed) != doc.sealed_sha256:
                return f"the sealed file {sealed.name} does not match the SHA-256 the ledger records"
            return archive_facts(sealed, run.roots)

        try:
            inspected = await asyncio.to_thread(_inspect)
        except (SealError, OSError) as ex:
            reason = ex.reason if isinstance(ex, SealError) else "archive_file_mismatch"
            return replace(base, reason=reason, detail=str(ex))
        if isinstance(inspected, str):
            outcome = replace(
                base, reason="archive_file_mismatch", detail=inspected + "; not touched, investigate"
            )
            if not run.dry_run:
                await self._record_failure(run.principal, request, doc, outcome)
            return outcome
        facts = inspected
        decision: RenewalDecision = renewal_decision(facts, self.clock(), run.within_days)
        outcome = replace(
            base,
            status=decision.status,
            reason=decision.reason,
            detail=decision.detail,
            timestamp_time=facts.timestamp_time,
            expires_at=facts.expires_at,
        )
        if decision.status is not ArchiveStatus.DUE or run.dry_run:
            return outcome
        return await self._renew(run, request, doc, outcome)

    async def _renew(
        self, run: _Run, request: SealRequest, doc: Document, outcome: ArchiveOutcome
    ) -> ArchiveOutcome:
        principal = run.principal
        sealed = self.store.sealed_path(request.request_id, doc.index)
        pending = pending_path(sealed)
        field = f"{FIELD_PREFIX}-{self.clock().strftime('%Y%m%dT%H%M%S')}-{doc.index}"
        try:
            renewed = await asyncio.to_thread(
                renew_archive,
                sealed,
                pending,
                tsa_url=run.tsa_url,
                trust_roots_pem=run.roots,
                field_name=field,
            )
        except SealError as ex:
            with contextlib.suppress(OSError):
                pending.unlink()
            failed = replace(outcome, status=ArchiveStatus.FAILED, reason=ex.reason, detail=str(ex))
            await self._record_failure(principal, request, doc, failed)
            return failed

        def _commit(tx: Transaction) -> None:
            current = tx.get_request(request.request_id)
            now_doc = next(d for d in current.documents if d.index == doc.index)
            if current.state is not RequestState.SIGNED or now_doc.sealed_sha256 != doc.sealed_sha256:
                raise SigningError(
                    "the request changed during the renewal; not renewed, run again",
                    reason="archive_renewal_failed",
                )
            tx.save_request(
                replace(
                    current,
                    documents=tuple(
                        replace(d, sealed_sha256=renewed.sha256, sealed_size=renewed.size)
                        if d.index == doc.index
                        else d
                        for d in current.documents
                    ),
                )
            )
            tx.audit(
                AuditEvent(
                    event="archive.renewed",
                    principal=principal.name,
                    role=_role(principal),
                    seal_id=request.seal_id,
                    request_id=request.request_id,
                    document_name=doc.name,
                    document_sha256=renewed.sha256,
                    reason="archive_renewed",
                    outcome="renewed",
                    details={
                        "document_index": doc.index,
                        "old_sha256": doc.sealed_sha256,
                        "new_sha256": renewed.sha256,
                        "new_size": renewed.size,
                        "timestamp_time": _iso(renewed.facts.timestamp_time),
                        "tsa_certificate_expires": _iso(renewed.facts.expires_at),
                        "previous_tsa_certificate_expires": _iso(outcome.expires_at),
                    },
                )
            )

        try:
            await self.store.write(_commit)
        except SealError as ex:
            with contextlib.suppress(OSError):
                pending.unlink()
            return replace(outcome, status=ArchiveStatus.FAILED, reason=ex.reason, detail=str(ex))

        def _publish() -> None:
            os.replace(pending, sealed)
            _fsync_dir(sealed.parent)

        await asyncio.to_thread(_publish)
        log.info(
            "archive.renewed",
            request_id=request.request_id,
            document_index=doc.index,
            new_sha256=renewed.sha256,
        )
        return replace(
            outcome,
            status=ArchiveStatus.RENEWED,
            reason="archive_renewed",
            detail="a fresh archive timestamp was added; its certificate ends at "
            + _iso(renewed.facts.expires_at),
            new_sha256=renewed.sha256,
            timestamp_time=renewed.facts.timestamp_time,
            expires_at=renewed.facts.expires_at,
        )

    async def _record_failure(
        self, principal: Principal, request: SealRequest, doc: Document, outcome: ArchiveOutcome
    ) -> None:
        event = AuditEvent(
            event="archive.renewal_failed",
            principal=principal.name,
            role=_role(principal),
            seal_id=request.seal_id,
            request_id=request.request_id,
            document_name=doc.name,
            document_sha256=doc.sealed_sha256,
            reason=outcome.reason,
            outcome="failed",
            details={"document_index": doc.index, "problem": outcome.detail[:500]},
        )
        await self.store.write(lambda tx: tx.audit(event))

    async def _record_run(self, principal: Principal, dry_run: bool, counts: dict[str, int]) -> None:
        event = AuditEvent(
            event="archive.renewal_run",
            principal=principal.name,
            role=_role(principal),
            outcome="dry_run" if dry_run else "done",
            details={"documents": sum(counts.values()), **dict(sorted(counts.items()))},
        )
        await self.store.write(lambda tx: tx.audit(event))


def _role(principal: Principal) -> str:
    return Role.ADMIN.value if Role.ADMIN in principal.roles else Role.AUDITOR.value


def _iso(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment is not None else ""
