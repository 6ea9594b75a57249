"""Requests as their people see them: submit, approve, withdraw, reject, cancel, read.

Each operation loads the request, applies a pure transition of seald.domain.lifecycle
(the approval rules themselves are in seald.domain.policy), and commits the new request
with its audit record through the Recorder in ONE transaction.
"""

from __future__ import annotations

import functools
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from seald.config import Config
from seald.domain import access, lifecycle
from seald.domain.approval_statement import SignedApproval
from seald.domain.chains import Money
from seald.domain.delegation import Delegation
from seald.domain.errors import (
    InvalidInput,
    LimitExceeded,
    PreconditionFailed,
    ServiceUnavailable,
)
from seald.domain.limits import check_open_requests
from seald.domain.marks import Mark
from seald.domain.model import (
    Document,
    Placement,
    Principal,
    RequestState,
    Role,
    SealRequest,
)
from seald.service.catalog import SealCatalog
from seald.service.recorder import Recorder, request_event
from seald.service.seal_workers import SealWorkers, discard_early
from seald.service.settings import LiveConfig
from seald.service.signer import Signer
from seald.signing.errors import InputDocumentError, PlacementError, SigningError
from seald.signing.input_checks import check_input_pdf
from seald.signing.job import check_job_marks
from seald.signing.placement import PlacementSpec
from seald.signing.preview import check_placement
from seald.store.database import Store, Transaction
from seald.store.limits import count_open_requests
from seald.webauthn.approvals import WebAuthnApproval
from seald.workflow import Workflow

# Which field of the request a placement refusal is about (issue 14: name the field).
PLACEMENT_FIELD = {
    "page_out_of_range": "placement.page",
    "zero_pages": "placement.page",
    "anchor_not_found": "placement.anchor_text",
    "off_page": "placement.x_mm/y_mm",
    "cross_page_needs_pages": "placement.cross_page",
    "cross_page_too_many_pages": "placement.cross_page",
}


@dataclass(frozen=True)
class OverlapPolicy:
    """Whether marks of two different seals may overlap ([limits] allow_mark_overlap);
    a picklable callable, since the check runs in a seal worker process."""

    allowed: bool

    def __call__(self, seal_a: str, seal_b: str) -> bool:
        return self.allowed


class _Retry(Exception):
    """Raised inside submit's transaction (rolled back) when another submit with the same
    client_request_key was stored first."""

    def __init__(self, request: SealRequest) -> None:
        super().__init__(request.request_id)
        self.request = request


@dataclass(frozen=True)
class UploadedDocument:
    name: str
    size: int
    sha256: str
    path: Path
    # Issue 16: a batch manifest's own marks for this document (None = the request's).
    marks: tuple[Mark, ...] | None = None


class RequestService:
    """The request operations of requesters and approvers (R04-R06)."""

    def __init__(
        self,
        live: LiveConfig,
        store: Store,
        catalog: SealCatalog,
        recorder: Recorder,
        *,
        signer: Signer,
        workers: SealWorkers,
        workflow: Workflow,
        clock: Callable[[], datetime],
    ) -> None:
        self._live = live
        self._store = store
        self._catalog = catalog
        self._recorder = recorder
        self._signer = signer
        self._workers = workers
        self._workflow = workflow
        self._clock = clock

    @property
    def config(self) -> Config:
        return self._live.current

    def new_upload_dir(self) -> Path:
        path = self._store.incoming_dir / uuid.uuid4().hex
        path.mkdir(mode=0o700)
        return path

    async def submit(
        self,
        principal: Principal,
        *,
        seal_id: str,
        reason: str,
        category: str,
        placement: Placement,
        uploads: Sequence[UploadedDocument],
        upload_dir: Path,
        client_request_key: str = "",
        amount: Money | None = None,
    ) -> SealRequest:
        def retry_of(existing: SealRequest) -> SealRequest:  # pure: same submit, or refused
            return lifecycle.answer_retry(
                existing,
                seal_id=seal_id,
                reason=reason,
                category=category,
                placement=placement,
                documents=[Document(i, u.name, u.size, u.sha256) for i, u in enumerate(uploads)],
            )

        if client_request_key:
            existing = await self._store.find_by_client_key(principal.name, client_request_key)
            if existing is not None:
                shutil.rmtree(upload_dir, ignore_errors=True)
                return retry_of(existing)
        seal = self._catalog.seal(seal_id)
        await self._check_uploads(uploads)
        request_id = uuid.uuid4().hex
        documents = [
            Document(index=i, name=u.name, size=u.size, sha256=u.sha256)
            for i, u in enumerate(uploads)
        ]
        request = lifecycle.submit(
            request_id=request_id,
            requester=principal,
            seal=seal,
            reason=reason,
            category=category,
            placement=placement,
            documents=documents,
            now=self._clock(),
            ttl=timedelta(hours=self.config.requests.approval_ttl_hours),
            host=self.config.server.host_name,
            client_request_key=client_request_key,
            amount=amount,
        )
        await self._check_placements(request, uploads)
        return await self._store_new(principal, request, uploads, upload_dir, retry_of)

    async def _check_uploads(self, uploads: Sequence[UploadedDocument]) -> None:
        """The count limit and the input checks of every uploaded PDF (issue 14)."""
        if len(uploads) > self.config.requests.max_documents_per_request:
            raise LimitExceeded(
                f"{len(uploads)} documents in one request; the limit is "
                f"{self.config.requests.max_documents_per_request} (max_documents_per_request)",
                reason="too_many_documents",
            )
        for upload in uploads:
            # In a seal worker process: parsing is CPU-bound, and many concurrent submits
            # would otherwise queue on the daemon's own interpreter (issue 8).
            try:
                await self._workers.run(
                    check_input_pdf, upload.path, self.config.requests.max_document_bytes
                )
            except InputDocumentError as ex:
                raise InvalidInput(f"{upload.name}: {ex}", reason=ex.reason) from ex
            except SigningError as ex:  # the worker died: nothing was stored
                raise ServiceUnavailable(f"{upload.name}: {ex}", reason=ex.reason) from ex

    async def submit_job(
        self,
        principal: Principal,
        *,
        reason: str,
        category: str,
        marks: Sequence[Mark],
        uploads: Sequence[UploadedDocument],
        upload_dir: Path,
        client_request_key: str = "",
        amount: Money | None = None,
    ) -> SealRequest:
        """Issue 16: a sealing job (documents x marks, one approval digest). The pure rules
        (marks' shape, every seal usable, requester of every seal) in lifecycle.submit_job,
        then the document-dependent checks of every mark (pages exist, anchor found as
        often as allowed, no forbidden overlap) in a seal worker, before anything is stored."""
        documents = [
            Document(index=i, name=u.name, size=u.size, sha256=u.sha256, marks=u.marks)
            for i, u in enumerate(uploads)
        ]

        def retry_of(existing: SealRequest) -> SealRequest:
            return lifecycle.answer_retry(
                existing,
                seal_id=existing.seal_id,
                reason=reason,
                category=category,
                placement=existing.placement,
                documents=documents,
                marks=marks,
            )

        if client_request_key:
            existing = await self._store.find_by_client_key(principal.name, client_request_key)
            if existing is not None:
                shutil.rmtree(upload_dir, ignore_errors=True)
                return retry_of(existing)
        named = lifecycle.job_seal_order(marks, documents)
        seals = {seal_id: self._catalog.seal(seal_id) for seal_id in named}
        for seal_id in named:
            if self.config.seals[seal_id].format != "pades":
                raise PreconditionFailed(
                    f"seal {seal_id} is a GB/T 38540 seal; sealing jobs (marks) are PAdES only "
                    "for now: submit it as a request of its own with one placement",
                    reason="placement_unsupported",
                )
        limits = self.config.limits
        request = lifecycle.submit_job(
            request_id=uuid.uuid4().hex,
            requester=principal,
            seals=seals,
            reason=reason,
            category=category,
            marks=marks,
            documents=documents,
            now=self._clock(),
            ttl=timedelta(hours=self.config.requests.approval_ttl_hours),
            host=self.config.server.host_name,
            client_request_key=client_request_key,
            amount=amount,
            max_marks=limits.max_marks,
        )
        await self._check_uploads(uploads)
        sizes = {seal_id: self.config.seals[seal_id].size_mm for seal_id in named}
        for upload, doc in zip(uploads, request.documents, strict=True):
            try:
                await self._workers.run(
                    partial(
                        check_job_marks,
                        upload.path,
                        request.marks_of(doc),
                        seal_sizes_mm=sizes,
                        allow_overlap=OverlapPolicy(limits.allow_mark_overlap),
                    )
                )
            except (PlacementError, InputDocumentError) as ex:
                raise InvalidInput(f"{upload.name}: {ex}", reason=ex.reason) from ex
            except SigningError as ex:  # the worker died: nothing was stored
                raise ServiceUnavailable(f"{upload.name}: {ex}", reason=ex.reason) from ex
        return await self._store_new(principal, request, uploads, upload_dir, retry_of)

    async def _store_new(
        self,
        principal: Principal,
        request: SealRequest,
        uploads: Sequence[UploadedDocument],
        upload_dir: Path,
        retry_of: Callable[[SealRequest], SealRequest],
    ) -> SealRequest:
        """Documents into place, then the request row and its records in one transaction
        (a concurrent retry with the same client_request_key gets the stored request)."""
        client_request_key = request.client_request_key
        # Documents go in place before the row: a crash leaves an orphan directory, never a
        # request without its documents.
        final_dir = self._store.documents_dir / request.request_id
        for i, upload in enumerate(uploads):
            os.replace(upload.path, upload_dir / f"{i:04d}.pdf")
        os.replace(upload_dir, final_dir)
        _fsync_dir(self._store.documents_dir)

        def _tx(tx: Transaction) -> SealRequest:
            # Concurrent retries with one key: the first one stored wins, the others get it
            # (checked here, in the one writer's transaction, not by the unique index).
            if client_request_key:
                stored = tx.find_by_client_key(principal.name, client_request_key)
                if stored is not None:
                    raise _Retry(retry_of(stored))
            # In the one writer's transaction: concurrent uploads cannot overshoot the limit.
            check_open_requests(
                principal.name,
                count_open_requests(tx.conn, principal.name),
                self.config.requests.max_pending_per_principal,
            )
            # Issue 17: use quotas, counted from the stored requests in this transaction.
            for seal_id in request.seal_ids:  # a job's every seal (issue 16)
                self._workflow.check_quota_tx(tx, seal_id, len(request.documents), request.created_at)
            stored = self._with_current_impression(tx, request)
            tx.save_request(stored)
            for doc in stored.documents:
                tx.audit(
                    request_event(
                        "request.submitted",
                        stored,
                        principal,
                        Role.REQUESTER,
                        doc,
                        outcome="pending",
                        # For the R11 summary; a job's every seal (issue 16) for its quota use.
                        details={
                            "category": request.category,
                            **({"seals": ",".join(request.seal_ids)} if request.is_job else {}),
                        },
                    )
                )
            return stored

        try:
            return await self._recorder.commit(_tx, "request.submitted")
        except _Retry as retry:
            shutil.rmtree(final_dir, ignore_errors=True)
            return retry.request
        except BaseException:
            shutil.rmtree(final_dir, ignore_errors=True)
            raise

    def _with_current_impression(self, tx: Transaction, request: SealRequest) -> SealRequest:
        """Issue 16: an impression registered while the documents were uploaded binds the new
        request too (its digest names the seal's face as the storing transaction sees it);
        a job's every seal."""
        if request.is_job:
            for approved in request.job_seals:
                impression = self._catalog.seal(approved.seal_id, tx).impression_sha256
                if impression != approved.impression_sha256:
                    request = lifecycle.rebind_impression(
                        request,
                        impression_sha256=impression,
                        now=request.created_at,
                        seal_id=approved.seal_id,
                    )
            return request
        impression = self._catalog.seal(request.seal_id, tx).impression_sha256
        if impression == request.seal_impression_sha256:
            return request
        return lifecycle.rebind_impression(request, impression_sha256=impression, now=request.created_at)

    async def _check_placements(self, request: SealRequest, uploads: Sequence[UploadedDocument]) -> None:
        """Issue 14: a placement sealing would refuse (page beyond the last, anchor text not in
        the document, seal off the page, cross-page slices that do not fit) is refused now,
        not after the approvals; the same checks as sealing, in a worker process."""
        p = request.placement
        spec = PlacementSpec(
            page=p.page,
            x_mm=p.x_mm,
            y_mm=p.y_mm,
            size_mm=p.size_mm,
            anchor_text=p.anchor_text,
            cross_page=p.cross_page,
        )
        for upload in uploads:
            try:
                await self._workers.run(check_placement, upload.path, spec)
            except PlacementError as ex:
                field = PLACEMENT_FIELD.get(ex.reason, "placement")
                raise InvalidInput(f"{field}: {upload.name}: {ex}", reason=ex.reason) from ex
            except InputDocumentError as ex:
                raise InvalidInput(f"{upload.name}: {ex}", reason=ex.reason) from ex
            except SigningError as ex:  # the worker died: nothing was stored
                raise ServiceUnavailable(f"{upload.name}: {ex}", reason=ex.reason) from ex

    async def approve(
        self,
        principal: Principal,
        request_id: str,
        *,
        document_sha256: Sequence[str],
        approval_digest: str,
        comment: str,
        certificate_sha256: str,
        signed: SignedApproval | WebAuthnApproval,
        on_behalf_of: str = "",
    ) -> SealRequest:
        """Record one approval; ``signed`` is its statement, already verified against the
        connection's certificate (api/signed_approvals.py) or, issue 18, a WebAuthn
        assertion over seald's own statement verified by seald.webauthn.registry (then
        ``principal`` is the credential's owner). There is no unsigned path.

        ``on_behalf_of`` (issue 17): the caller approves as the delegate of that approver,
        under the delegation in force now (certificate-signed approvals only)."""
        now = self._clock()
        policy_cache: dict[str, Any] = {}
        under: list[Delegation | None] = [None]

        def approved(request: SealRequest) -> SealRequest:
            """The request with this approval added (pure; raises if it is refused)."""
            policy = policy_cache.setdefault(
                request.request_id, self.config.policy_for_request(request, now)
            )
            return lifecycle.approve(
                request,
                approver=principal,
                document_sha256=document_sha256,
                approval_digest=approval_digest,
                policy=policy,
                now=now,
                comment=comment,
                certificate_sha256=certificate_sha256,
                use_ttl=timedelta(hours=self.config.requests.approval_use_hours),
                signed=signed.as_approval(),
                delegation=under[0],
            )

        def _tx(tx: Transaction) -> SealRequest:
            request = tx.get_request(request_id)
            under[0] = self._workflow.delegation_for_approval(tx, principal, request, on_behalf_of, now)
            if under[0] is None:
                access.require_visible(principal, request)
                # R04/R05: who may approve is answered before anything about the seal or
                # the statement (the API relies on this order).
                lifecycle.require_eligible_approver(request, principal)
            else:
                lifecycle.require_delegate(request, principal, under[0], now)
            # R02/R03: no approval for a stopped seal or outside its window (any of a job's).
            for seal_id in request.seal_ids:
                lifecycle.check_seal_usable(self._catalog.seal(seal_id, tx), request.category, now)
            new = approved(request)
            policy = policy_cache[request.request_id]
            details: dict[str, str | int | bool | None] = {
                "approval_digest": approval_digest,
                "comment": comment,
            }
            # Issue 9: the signed statement must say what is approved; its hash, the
            # certificate and the policy it met are bound into the ledger.
            if isinstance(signed, WebAuthnApproval):
                if under[0] is not None:
                    raise InvalidInput(
                        "a delegate approves with a statement signed by their client key "
                        "(sealctl approve --for); WebAuthn approvals are for one's own name",
                        reason="delegation_needs_signed_statement",
                    )
                signed.check(request)  # seald's own statement still describes the request
            else:
                signed.check(
                    request,
                    document_sha256=document_sha256,
                    approval_digest=approval_digest,
                    comment=comment,
                    connection_certificate_sha256=certificate_sha256,
                    # The statement is dated by the approver's wall clock: compare with ours,
                    # not with the injected clock (tests move that one to other hours of the day).
                    now=datetime.now(UTC),
                    on_behalf_of=under[0].delegator if under[0] else "",
                )
            details.update(signed.audit_details(policy))
            if under[0] is not None:  # issue 17: "X for Y under delegation D" in the ledger
                details.update(acting_for=under[0].delegator, delegation_id=under[0].delegation_id)
            # R06: a statement counts once; none older than this approver's withdrawal.
            facts = tx.statement_facts(
                request_id=request_id,
                approver=principal.name,
                statement_sha256=str(details["statement_sha256"]),
            )
            lifecycle.check_statement_unused(
                request,
                approver=principal.name,
                signed_at=(
                    signed.statement.base.signed_at
                    if isinstance(signed, WebAuthnApproval)
                    else signed.statement.signed_at
                ),
                recorded_on=facts.recorded_on,
                last_withdrawal=facts.last_withdrawal,
            )
            tx.save_request(new)
            tx.audit(
                request_event(
                    "request.approved",
                    new,
                    principal,
                    Role.APPROVER,
                    None,
                    outcome=new.state.value,
                    details=details,
                )
            )
            return new

        early = await self._signer.prepare_if_completing(request_id, principal, approved)
        try:
            request = await self._recorder.commit(_tx, "request.approved")
        except BaseException:
            for prepared in early:
                discard_early(prepared)
            raise
        # Straight to the signer when its token is ready and idle: no queue to read
        # (latency of one request, issue 8); otherwise the signer's loop picks it up.
        self._signer.hand_over(request, early)
        return request

    async def withdraw(self, principal: Principal, request_id: str) -> SealRequest:
        def step(request: SealRequest, now: datetime) -> SealRequest:
            policy = self.config.policy_for_request(request, now)
            return lifecycle.withdraw_approval(request, approver=principal, policy=policy, now=now)

        return await self._principal_transition(
            principal, request_id, step, event="request.approval_withdrawn", role=Role.APPROVER
        )

    async def reject(self, principal: Principal, request_id: str, comment: str) -> SealRequest:
        return await self._principal_transition(
            principal,
            request_id,
            lambda r, now: lifecycle.reject(r, approver=principal, comment=comment, now=now),
            event="request.rejected",
            role=Role.APPROVER,
            reason=comment,
        )

    async def cancel(self, principal: Principal, request_id: str, comment: str) -> SealRequest:
        return await self._principal_transition(
            principal,
            request_id,
            lambda r, now: lifecycle.cancel(r, principal=principal, now=now, comment=comment),
            event="request.cancelled",
            role=Role.REQUESTER,
            reason=comment,
        )

    async def _principal_transition(
        self,
        principal: Principal,
        request_id: str,
        step: Callable[[SealRequest, datetime], SealRequest],
        *,
        event: str,
        role: Role,
        reason: str = "",
    ) -> SealRequest:
        """A caller's transition on a request they may see, stored with its audit record."""
        now = self._clock()

        def _tx(tx: Transaction) -> SealRequest:
            request = tx.get_request(request_id)
            access.require_visible(principal, request)
            new = step(request, now)
            tx.save_request(new)
            tx.audit(request_event(event, new, principal, role, None, outcome=new.state.value, reason=reason))
            return new

        return await self._recorder.commit(_tx, event)

    async def get(self, principal: Principal, request_id: str) -> SealRequest:
        request = await self._store.get_request(request_id)
        access.require_visible(principal, request)
        return request

    async def document_path(
        self, principal: Principal, request_id: str, index: int, *, sealed: bool
    ) -> tuple[SealRequest, Document, Path]:
        request = await self.get(principal, request_id)
        if not 0 <= index < len(request.documents):
            raise InvalidInput(
                f"request {request_id} has {len(request.documents)} document(s); index {index} "
                "does not exist",
                reason="bad_document_index",
            )
        return request, request.documents[index], self._downloadable(principal, request, sealed)(index)

    async def document_paths(
        self, principal: Principal, request_id: str, *, sealed: bool
    ) -> tuple[SealRequest, list[tuple[Document, Path]]]:
        """Every document of the request with its file (issue 20: one stream for all),
        under the same rules as ``document_path``."""
        request = await self.get(principal, request_id)
        path = self._downloadable(principal, request, sealed)
        return request, [(doc, path(doc.index)) for doc in request.documents]

    def _downloadable(
        self, principal: Principal, request: SealRequest, sealed: bool
    ) -> Callable[[int], Path]:
        """Where a document's file is, once the caller may download that variant."""
        if sealed:
            access.require_may_download_sealed(principal, request)
            if request.state is not RequestState.SIGNED:
                raise PreconditionFailed(
                    f"request {request.request_id} is {request.state.value}: {request.state_reason}",
                    reason="not_signed",
                )
            return functools.partial(self._store.sealed_path, request.request_id)
        access.require_may_read_content(principal, request)
        return functools.partial(self._store.original_path, request.request_id)

def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
