"""The appliance's application shell: the pure lifecycle inside, I/O around it.

Like python-tuf's Updater around TrustedMetadataSet: every operation loads the
request, calls a pure transition in seald.domain.lifecycle, and stores the new
request together with its audit record in ONE transaction. Logs and watch
events are emitted only after the commit, so nobody is told about a change that
did not happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from seald import test_hooks
from seald.config import Config
from seald.domain import lifecycle
from seald.domain.approval_statement import SignedApproval
from seald.domain.audit import AuditEvent
from seald.domain.errors import (
    InvalidInput,
    LimitExceeded,
    PermissionDenied,
    PreconditionFailed,
    SealError,
    ServiceUnavailable,
)
from seald.domain.limits import OpenStreams, PrincipalRateLimits, StreamSlot, check_open_requests
from seald.domain.model import (
    Document,
    Placement,
    Principal,
    RequestState,
    Role,
    Seal,
    SealRequest,
)
from seald.domain.seals import SealState, apply_state
from seald.logs import get_logger
from seald.metrics import SealMetrics
from seald.seal_workers import (
    EarlyPrepare,
    SealWorkers,
    SignerCache,
    discard_early,
    seal_documents,
    settled,
    start_prepare,
)
from seald.signing.errors import InputDocumentError, SigningError, TokenSigningError
from seald.signing.input_checks import check_input_pdf
from seald.signing.levels import Certification, LevelSettings, level_settings
from seald.signing.pipeline import SealJob
from seald.signing.placement import PlacementSpec
from seald.signing.seal_image import SealImageSpec, render_seal_png
from seald.store import seals as seal_tables
from seald.store.limits import count_open_requests
from seald.store.requests import Store, Transaction
from seald.tokens.custody_guard import CustodyGuard
from seald.tokens.manager import TokenManager, TokenState

log = get_logger("seald")

MAX_SIGN_ATTEMPTS = 3


@dataclass(frozen=True)
class UploadedDocument:
    name: str
    size: int
    sha256: str
    path: Path


class Broadcaster:
    """Fan-out of events to watchers; a slow watcher loses old events, never blocks us."""

    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[Any]] = set()

    def publish(self, item: Any) -> None:
        for queue in list(self._queues):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(item)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Any]]:
        queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=1000)
        self._queues.add(queue)
        try:
            yield queue
        finally:
            self._queues.discard(queue)


def _now() -> datetime:
    return datetime.now(UTC)


class SealService:
    def __init__(
        self,
        config: Config,
        store: Store,
        tokens: TokenManager,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.config = config
        self.store = store
        self.tokens = tokens
        self.clock = clock
        self.request_events = Broadcaster()
        self.token_events = Broadcaster()
        self._wake = asyncio.Event()
        self._seal_images: dict[str, bytes] = {}
        # Worker processes for the CPU-bound halves of sealing (started by run_signer).
        self.seal_workers = SealWorkers()
        self._signers = SignerCache()  # the token's certificate, read once per session
        # request id -> (seal id, preparations started before its intent record)
        self._early: dict[str, tuple[str, list[EarlyPrepare]]] = {}
        self._signing_tasks: set[asyncio.Task[None]] = set()
        self._busy_seals: set[str] = set()
        self.signed_count = 0
        # Seal lifecycle status (R02) as committed; transactions read the database itself.
        self.seal_states: dict[str, SealState] = {}
        # Ops counters (seald.metrics); served only if [metrics] listen is set.
        self.metrics = SealMetrics(config.seals)
        # Set on SIGTERM: signatures in flight finish, no new one starts.
        self.draining = False
        # R07/R08/R09: initial PIN, hours, custody holder (issue 3).
        self.custody = CustodyGuard(config, store, tokens, clock)
        self.custody.on_not_returned = self.metrics.not_returned_alert
        self.custody.on_ready_change = self.wake_signer
        tokens.add_listener(self._on_token_change)
        # Issue 8: a token bucket per principal over every RPC (api/servicers.py admits calls).
        self.rate_limits = PrincipalRateLimits()
        # Issue 8: server streams open now, per principal and in total (stream_rpc takes a slot).
        self.open_streams = OpenStreams()

    # -- helpers -----------------------------------------------------------------------------
    def seal(self, seal_id: str, tx: Transaction | None = None) -> Seal:
        """The seal with its lifecycle status; inside a transaction, read from the database."""
        if seal_id not in self.config.seals:
            known = ", ".join(sorted(self.config.seals))
            raise InvalidInput(
                f"unknown seal {seal_id!r}; known seals: {known}", reason="unknown_seal"
            )
        state = (
            seal_tables.get_state(tx.conn, seal_id)
            if tx is not None
            else self.seal_states.get(seal_id)
        )
        return apply_state(
            self.config.seal(seal_id, self.tokens.certificate_sha256(seal_id)), state
        )

    async def load_seal_states(self) -> None:
        self.seal_states = await self.store.call(
            lambda: seal_tables.all_states(self.store._connection())
        )
        # Certificates imported through the API (R02) are the registered ones.
        imported = await self.store.call(
            lambda: seal_tables.current_certificates(self.store._connection())
        )
        for seal_id, der in imported.items():
            if seal_id in self.config.seals:
                self.tokens.set_certificate(seal_id, der)

    def _on_token_change(self, state: TokenState) -> None:
        self.token_events.publish(state)
        log.info(
            "token.state_changed",
            seal_id=state.seal_id,
            present=state.present,
            unlocked=state.unlocked,
            unlocked_by=state.unlocked_by,
        )
        if state.present and state.unlocked:
            self.wake_signer()

    def wake_signer(self) -> None:
        self._wake.set()

    def readiness(self, seal_id: str) -> tuple[bool, str]:
        state = self.tokens.state(seal_id)
        if not self.store.writable:
            return False, "the audit trail is not writable; no signature is released"
        # An absent or rogue token first; then what must happen before an unlock helps
        # (initial PIN, hours), so the custodian is not told to unlock when it would be refused.
        token_gone = state.not_ready_reason if not state.present or state.rogue_reason else ""
        reason = token_gone or self.custody.not_ready_reason(seal_id) or state.not_ready_reason
        return (not reason), reason

    async def _commit(self, fn: Callable[[Transaction], SealRequest], event: str) -> SealRequest:
        request, records = await self.store.write(fn)
        self.request_events.publish((event, request))
        log.info(
            event,
            request_id=request.request_id,
            seal_id=request.seal_id,
            state=request.state.value,
            audit_sequence=records[-1].sequence if records else None,
        )
        return request

    async def audit(self, event: AuditEvent) -> None:
        """Record an event that changes no request (refusals, token changes)."""
        try:
            await self.store.write(lambda tx: tx.audit(event))
        except ServiceUnavailable:
            log.error("audit.write_failed", audit_event=event.event)
            raise

    # -- per-client limits (issue 8) -----------------------------------------------------------
    def admit_call(self, principal: Principal) -> None:
        """The per-principal rate limit; raises RateLimited (RESOURCE_EXHAUSTED) when over it."""
        limits = self.config.requests
        self.rate_limits.admit(
            principal.name,
            rate=limits.rate_limit_per_second,
            burst=limits.rate_limit_burst,
            now=time.monotonic(),
        )

    def open_stream(self, principal: Principal) -> StreamSlot:
        """A slot for one more server stream; raises TooManyStreams (RESOURCE_EXHAUSTED)."""
        limits = self.config.requests
        return self.open_streams.open(
            principal.name,
            per_principal=limits.max_streams_per_principal,
            total=limits.max_open_streams,
        )

    async def check_open_requests(self, principal: Principal, client_request_key: str = "") -> None:
        """Early refusal before an upload; submit() checks again inside its transaction."""
        if client_request_key and await self.store.find_by_client_key(
            principal.name, client_request_key
        ):
            return  # a retry of a request already made: submit() answers with it
        count = await self.store.call(
            lambda: count_open_requests(self.store._connection(), principal.name)
        )
        check_open_requests(principal.name, count, self.config.requests.max_pending_per_principal)

    # -- submit --------------------------------------------------------------------------------
    def new_upload_dir(self) -> Path:
        path = self.store.incoming_dir / uuid.uuid4().hex
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
    ) -> SealRequest:
        if client_request_key:
            existing = await self.store.find_by_client_key(principal.name, client_request_key)
            if existing is not None:
                shutil.rmtree(upload_dir, ignore_errors=True)
                return existing
        seal = self.seal(seal_id)
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
                await self.seal_workers.run(
                    check_input_pdf, upload.path, self.config.requests.max_document_bytes
                )
            except InputDocumentError as ex:
                raise InvalidInput(f"{upload.name}: {ex}", reason=ex.reason) from ex
            except SigningError as ex:  # the worker died: nothing was stored
                raise ServiceUnavailable(f"{upload.name}: {ex}", reason=ex.reason) from ex
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
            now=self.clock(),
            ttl=timedelta(hours=self.config.requests.approval_ttl_hours),
            host=self.config.server.host_name,
            client_request_key=client_request_key,
        )
        # Documents go in place before the row: a crash leaves an orphan directory, never a
        # request without its documents.
        final_dir = self.store.documents_dir / request_id
        for i, upload in enumerate(uploads):
            os.replace(upload.path, upload_dir / f"{i:04d}.pdf")
        os.replace(upload_dir, final_dir)
        _fsync_dir(self.store.documents_dir)

        def _tx(tx: Transaction) -> SealRequest:
            # In the one writer's transaction: concurrent uploads cannot overshoot the limit.
            check_open_requests(
                principal.name,
                count_open_requests(tx.conn, principal.name),
                self.config.requests.max_pending_per_principal,
            )
            tx.save_request(request)
            for doc in request.documents:
                tx.audit(
                    _event(
                        "request.submitted",
                        request,
                        principal,
                        Role.REQUESTER,
                        doc,
                        outcome="pending",
                        details={"category": request.category},  # for the R11 summary
                    )
                )
            return request

        try:
            return await self._commit(_tx, "request.submitted")
        except BaseException:
            shutil.rmtree(final_dir, ignore_errors=True)
            raise

    # -- approvals -----------------------------------------------------------------------------
    async def approve(
        self,
        principal: Principal,
        request_id: str,
        *,
        document_sha256: Sequence[str],
        approval_digest: str,
        comment: str,
        certificate_sha256: str,
        signed: SignedApproval,
    ) -> SealRequest:
        """Record one approval; ``signed`` is its statement, already verified against the
        connection's certificate (api/signed_approvals.py). There is no unsigned path."""
        now = self.clock()
        policy_cache: dict[str, Any] = {}

        def approved(request: SealRequest) -> SealRequest:
            """The request with this approval added (pure; raises if it is refused)."""
            policy = policy_cache.setdefault(
                request.seal_id, self.config.policy_for(request.seal_id, now)
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
            )

        def _tx(tx: Transaction) -> SealRequest:
            request = tx.get_request(request_id)
            _require_visible(principal, request)
            # R04/R05: who may approve is answered before anything about the seal or the
            # statement (the API relies on this order).
            lifecycle.require_eligible_approver(request, principal)
            # R02/R03: no approval for a stopped seal or outside its window.
            lifecycle.check_seal_usable(self.seal(request.seal_id, tx), request.category, now)
            new = approved(request)
            policy = policy_cache[request.seal_id]
            details: dict[str, str | int | bool | None] = {
                "approval_digest": approval_digest,
                "comment": comment,
            }
            # Issue 9: the signed statement must say what is approved; its hash, the
            # certificate and the policy it met are bound into the ledger.
            signed.check(
                request,
                document_sha256=document_sha256,
                approval_digest=approval_digest,
                comment=comment,
                connection_certificate_sha256=certificate_sha256,
                # The statement is dated by the approver's wall clock: compare with ours, not
                # with self.clock (tests move that one to reach other hours of the day).
                now=datetime.now(UTC),
            )
            details.update(signed.audit_details(policy))
            tx.save_request(new)
            tx.audit(
                _event(
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

        early = await self._early_if_completing(request_id, principal, approved)
        try:
            request = await self._commit(_tx, "request.approved")
        except BaseException:
            for prepared in early:
                discard_early(prepared)
            raise
        started = False
        if request.state is RequestState.APPROVED:
            if early:
                self._early[request_id] = (request.seal_id, early)
            # Straight to the signer when its token is ready and idle: no queue to read
            # (latency of one request, issue 8); otherwise the signer's loop picks it up.
            started = self._start_seal_queue(request.seal_id, [request])
            self.wake_signer()
        if not started:
            self._early.pop(request_id, None)
            for prepared in early:
                discard_early(prepared)
        return request

    async def _early_if_completing(
        self, request_id: str, principal: Principal, approved: Callable[[SealRequest], SealRequest]
    ) -> list[EarlyPrepare]:
        """Preparations for a request this approval will make APPROVED (decided by the
        approval's own pure rule on the request as it is now; the transaction decides
        again); [] when it will not, or when no signer would start at once anyway."""
        if not any(
            seal_id not in self._busy_seals and self.readiness(seal_id)[0]
            for seal_id in self.config.seals
        ):
            return []  # no read for nothing (a batch while the token is busy or locked)
        try:
            current = await self.store.get_request(request_id)
            if not lifecycle.can_view(principal, current):
                return []
            would_be = approved(current)
        except Exception:  # any refusal: the real transaction answers it
            return []
        if would_be.state is not RequestState.APPROVED:
            return []
        return self._prepare_early(would_be)

    async def withdraw(self, principal: Principal, request_id: str) -> SealRequest:
        def step(request: SealRequest, now: datetime) -> SealRequest:
            policy = self.config.policy_for(request.seal_id, now)
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
        now = self.clock()

        def _tx(tx: Transaction) -> SealRequest:
            request = tx.get_request(request_id)
            _require_visible(principal, request)
            new = step(request, now)
            tx.save_request(new)
            tx.audit(_event(event, new, principal, role, None, outcome=new.state.value, reason=reason))
            return new

        return await self._commit(_tx, event)

    async def get(self, principal: Principal, request_id: str) -> SealRequest:
        request = await self.store.get_request(request_id)
        _require_visible(principal, request)
        return request

    async def expire_due(self) -> int:
        """Expire PENDING/APPROVED requests past their time (called periodically)."""
        now = self.clock()
        due = [
            r
            for r in await self.store.list_requests(
                states=(RequestState.PENDING, RequestState.APPROVED), limit=10_000
            )
            if lifecycle.is_expired(r, now)
        ]
        for request in due:

            def _tx(tx: Transaction, request_id: str = request.request_id) -> SealRequest:
                current = tx.get_request(request_id)
                new = lifecycle.expire(current, now)
                tx.save_request(new)
                tx.audit(
                    AuditEvent(
                        event="request.expired",
                        seal_id=new.seal_id,
                        request_id=new.request_id,
                        outcome="expired",
                    )
                )
                return new

            with contextlib.suppress(PreconditionFailed):
                await self._commit(_tx, "request.expired")
        return len(due)

    # -- documents -----------------------------------------------------------------------------
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
        document = request.documents[index]
        if sealed:
            if not lifecycle.can_download_sealed(principal, request):
                raise PermissionDenied(
                    "only the requester (or an auditor) may download the sealed document",
                    reason="not_the_requester",
                )
            if request.state is not RequestState.SIGNED:
                raise PreconditionFailed(
                    f"request {request_id} is {request.state.value}: {request.state_reason}",
                    reason="not_signed",
                )
            return request, document, self.store.sealed_path(request_id, index)
        return request, document, self.store.original_path(request_id, index)

    # -- tokens --------------------------------------------------------------------------------
    def require_custodian(self, principal: Principal, seal_id: str) -> None:
        self.seal(seal_id)
        self.custody.require_holder(principal, seal_id)

    async def unlock(self, principal: Principal, seal_id: str, pin: str) -> TokenState:
        self.require_custodian(principal, seal_id)
        try:
            self.custody.require_within_hours(seal_id)  # R08: refused before any PIN is sent
            state = await self.tokens.unlock(seal_id, pin, principal.name)
        except SealError as ex:
            await self.audit(
                AuditEvent(
                    event="token.unlock_refused",
                    principal=principal.name,
                    role="custodian",
                    seal_id=seal_id,
                    outcome="refused",
                    reason=ex.reason,
                )
            )
            raise
        try:
            await self.audit(
                AuditEvent(
                    event="token.unlocked",
                    principal=principal.name,
                    role="custodian",
                    seal_id=seal_id,
                    outcome="unlocked",
                )
            )
        except ServiceUnavailable:
            # Fail closed: no unrecorded unlock stays in effect.
            await self.tokens.lock(seal_id)
            raise
        await self._read_seal_certificate(seal_id)
        return state

    async def _read_seal_certificate(self, seal_id: str) -> None:
        """Read the certificate the signed attributes will name now, once per session, so
        the first request need not (and can be prepared before its intent record)."""
        key_label = self.config.seals[seal_id].key_label
        registered = self.tokens.certificate_sha256(seal_id)
        try:
            await self.tokens.with_session(
                seal_id,
                lambda session: self._signers.for_session(seal_id, session, key_label, registered),
            )
        except Exception as ex:  # best effort: the first request reads it again, or fails
            log.warning("seal.certificate_read_failed", seal_id=seal_id, problem=type(ex).__name__)

    async def lock(self, principal: Principal, seal_id: str) -> TokenState:
        self.require_custodian(principal, seal_id)
        state = await self.tokens.lock(seal_id)
        await self.audit(
            AuditEvent(
                event="token.locked",
                principal=principal.name,
                role="custodian",
                seal_id=seal_id,
                outcome="locked",
            )
        )
        return state

    # -- signing -------------------------------------------------------------------------------
    def seal_image(self, seal_id: str, dpi: int = 300) -> bytes:
        """The seal's PNG (cached at the 300 dpi used for sealing and previews)."""
        if seal_id not in self._seal_images or dpi != 300:
            sc = self.config.seals[seal_id]
            spec = SealImageSpec(
                seal_type=sc.seal_type.value,
                organisation=sc.organisation,
                purpose_text="" if sc.seal_type.value == "official" else sc.display_name,
                holder_name=sc.holder_name,
                code_number=sc.code_number,
                shape=sc.shape,
            )
            png = render_seal_png(spec, sc.size_mm, dpi)
            if dpi != 300:
                return png
            self._seal_images[seal_id] = png
        return self._seal_images[seal_id]

    async def _warm_workers(self) -> None:
        try:
            await self.seal_workers.warm()
        except Exception as ex:  # sealing still works: the pool is started again on use
            log.error("seal_workers.warm_failed", problem=type(ex).__name__)

    async def _render_seal_images(self) -> None:
        loop = asyncio.get_running_loop()
        for seal_id in self.config.seals:
            try:
                await loop.run_in_executor(None, self.seal_image, seal_id)
            except SigningError as ex:  # the request that needs it fails with this reason
                log.error("seal_image.render_failed", seal_id=seal_id, reason=ex.reason)

    async def run_signer(self) -> None:
        """Background loop: seal every APPROVED request whose token is ready."""
        # Start the seal workers and render each seal image (~1 s of CPU) once now, off
        # the loop, rather than in the first request.
        await asyncio.gather(self._warm_workers(), self._render_seal_images())
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.sign_ready_requests()
            except ServiceUnavailable:
                log.error("signer.audit_unavailable")
                await asyncio.sleep(1.0)
                self._wake.set()

    async def sign_ready_requests(self) -> int:
        if self.draining:
            return 0
        approved = await self.store.list_requests(states=(RequestState.APPROVED,), limit=10_000)
        started = 0
        for request in approved:
            if self._start_seal_queue(request.seal_id, [r for r in approved if r.seal_id == request.seal_id]):
                started += 1
        return started

    def _start_seal_queue(self, seal_id: str, first: Sequence[SealRequest]) -> bool:
        """Start signing ``seal_id``'s APPROVED requests, ``first`` (already read) first,
        unless its token is not ready or a queue of that seal is already running."""
        if self.draining or seal_id in self._busy_seals or not self.readiness(seal_id)[0]:
            return False
        self._busy_seals.add(seal_id)
        task = asyncio.create_task(self._sign_seal_queue(seal_id, list(first)))
        self._signing_tasks.add(task)
        task.add_done_callback(self._signing_tasks.discard)
        return True

    async def _sign_seal_queue(self, seal_id: str, first: list[SealRequest]) -> None:
        try:
            while True:
                ready, _ = self.readiness(seal_id)
                if not ready:
                    return
                queue, first = first or await self.store.list_requests(
                    states=(RequestState.APPROVED,), seal_id=seal_id, limit=50
                ), []
                if not queue:
                    return
                for request in queue:
                    # Checked per request: a lock (or removal) mid-queue must not start an
                    # intent + interrupt pair for every request still queued.
                    if self.draining or not self.readiness(seal_id)[0]:
                        return
                    await self.sign_request(request.request_id, request)
        except ServiceUnavailable as ex:
            # Fail closed: nothing was released; health says NOT_SERVING until audit works.
            log.error("signer.audit_unavailable", seal_id=seal_id, reason=ex.reason, problem=str(ex))
        finally:
            self._busy_seals.discard(seal_id)
            # Preparations made for a request this queue did not reach: their temp files go.
            for request_id, (early_seal, early) in list(self._early.items()):
                if early_seal == seal_id:
                    del self._early[request_id]
                    for prepared in early:
                        discard_early(prepared)

    async def sign_request(self, request_id: str, queued: SealRequest | None = None) -> SealRequest:
        """Intent record, token signature, result record — or nothing released.

        ``queued`` is the request as the signer's queue read it (APPROVED): its documents
        are prepared while the intent record commits, so the commit costs no latency.
        The token signs only once the intent is committed.
        """
        now = self.clock()

        def _intent(tx: Transaction) -> SealRequest:
            request = tx.get_request(request_id)
            new = lifecycle.begin_signing(
                request,
                seal=self.seal(request.seal_id, tx),
                policy=self.config.policy_for(request.seal_id, now),
                now=now,
            )
            tx.save_request(new)
            for doc in new.documents:
                tx.audit(_event("seal.sign_intent", new, None, None, doc, outcome="intent"))
            return new

        intent = asyncio.ensure_future(self._commit(_intent, "seal.sign_intent"))

        async def intent_committed() -> None:
            await intent
            await test_hooks.pause("SEALD_TEST_PAUSE_AFTER_INTENT", request_id)

        if queued is None or queued.request_id != request_id:
            try:
                queued = await intent
            except PreconditionFailed as ex:
                await self._intent_refused(request_id, ex)
                raise
        gate = asyncio.ensure_future(intent_committed())
        started = asyncio.get_running_loop().time()
        try:
            sealed = await self._seal_documents(queued, gate)
        except BaseException as ex:
            # _seal_documents settles the gate before it raises (unless cancelled): the
            # intent's own failure comes first and means nothing was signed.
            if not intent.done() or intent.cancelled():
                raise
            failure = intent.exception()
            if failure is not None:
                if isinstance(failure, PreconditionFailed):
                    await self._intent_refused(request_id, failure)
                raise failure from None
            request = intent.result()
            if isinstance(ex, (PreconditionFailed, TokenSigningError)):
                return await self._interrupt(request, f"not signed: {ex}; waiting for the token", ex)
            if isinstance(ex, SigningError):
                return await self._fail(request, f"cannot seal: {ex}", ex)
            raise
        request = intent.result()

        latency_ms = round((asyncio.get_running_loop().time() - started) * 1000, 1)
        await test_hooks.pause("SEALD_TEST_PAUSE_BEFORE_RESULT", request_id)

        def _result(tx: Transaction) -> SealRequest:
            current = tx.get_request(request_id)
            # R02: a suspension/loss committed while the token was signing wins: the
            # sealed output is not released (the caller deletes it and voids approvals).
            lifecycle.check_seal_usable(self.seal(current.seal_id, tx), current.category)
            new = lifecycle.complete_signing(current, sealed=sealed, now=self.clock())
            tx.save_request(new)
            for doc in new.documents:
                tx.audit(
                    _event(
                        "seal.signed",
                        new,
                        None,
                        None,
                        doc,
                        outcome="signed",
                        details={"sealed_sha256": doc.sealed_sha256, "latency_ms": int(latency_ms)},
                    )
                )
            return new

        try:
            done = await self._commit(_result, "seal.signed")
        except PreconditionFailed as ex:
            self._remove_sealed(request)
            return await self._void_in_flight(request, ex)
        except ServiceUnavailable:
            # Fail closed: without its result record no sealed document is released.
            self._remove_sealed(request)
            raise
        self.signed_count += len(done.documents)
        log.info(
            "seal.request_completed",
            request_id=request_id,
            seal_id=done.seal_id,
            documents=len(done.documents),
            latency_ms=latency_ms,
            outcome="signed",
        )
        return done

    async def _intent_refused(self, request_id: str, ex: PreconditionFailed) -> None:
        """The intent record was refused: the request expired, or the policy no longer holds."""
        if ex.reason in ("request_expired",):
            await self.expire_due()
        elif ex.reason not in ("not_approved",):
            await self._fail_before_signing(request_id, ex)

    async def _seal_documents(
        self, request: SealRequest, intent_committed: asyncio.Future[None]
    ) -> list[tuple[str, int]]:
        """(sha256, size) of each sealed document, in order; all sealed or none released.

        Every level goes through the worker pipeline (issue 8): PDF work, and for B-LT/B-LTA
        the TSA/OCSP/CRL fetches, DSS and document timestamp, in worker processes; only the
        raw signature on the token thread. No token signature before ``intent_committed``
        is done; it is always settled when this returns or raises.
        """
        sc = self.config.seals[request.seal_id]
        # Rendering a seal takes ~1 s of CPU: never on the event loop (cached after once).
        try:
            if request.seal_id in self._seal_images:
                seal_png = self._seal_images[request.seal_id]
            else:
                loop = asyncio.get_running_loop()
                seal_png = await loop.run_in_executor(None, self.seal_image, request.seal_id)
        except BaseException:
            await settled(intent_committed)
            raise
        jobs = self._jobs_for(request, seal_png)
        results = await seal_documents(
            self.seal_workers,
            self.tokens,
            request.seal_id,
            jobs,
            key_label=sc.key_label,
            signers=self._signers,
            before_sign=intent_committed,
            early=self._early.pop(request.request_id, ("", []))[1],
        )
        return [(result.sha256, result.size) for result in results]

    def _jobs_for(self, request: SealRequest, seal_png: bytes) -> list[SealJob]:
        sc = self.config.seals[request.seal_id]
        level = self._level_settings(request.seal_id)
        return [
            SealJob(
                input_path=self.store.original_path(request.request_id, doc.index),
                output_path=self.store.sealed_path(request.request_id, doc.index),
                signing_cert_der=b"",  # read from the token by seal_documents
                chain_der=(),
                seal_png=seal_png,
                placement=_placement_spec(request),
                reason=request.reason,
                location=self.config.server.host_name,
                field_name=f"Seal-{request.seal_id}-{request.request_id[:12]}",
                signer_name=f"{sc.organisation} {sc.display_name}",
                level=level,
                certification=Certification(sc.certify),
                certify_only_if_first=True,
            )
            for doc in request.documents
        ]

    def _prepare_early(self, request: SealRequest) -> list[EarlyPrepare]:
        """Start preparing the documents of a request the approval under way will make
        APPROVED, while that approval commits (issue 8: latency of one request). Only when
        its seal's signer would start at once; the token signs only after the intent."""
        seal_png = self._seal_images.get(request.seal_id)
        if (
            seal_png is None
            or self.draining
            or request.seal_id in self._busy_seals
            or not self.readiness(request.seal_id)[0]
        ):
            return []
        return start_prepare(
            self.seal_workers,
            self.tokens,
            self._signers,
            request.seal_id,
            self._jobs_for(request, seal_png),
        )

    def _level_settings(self, seal_id: str) -> LevelSettings:
        trust = self.config.trust
        return level_settings(
            self.config.seals[seal_id].level,
            tsa_url=trust.tsa_url,
            trust_root_files=trust.signing_roots or (trust.seal_ca,),
            fetch_revocation=trust.fetch_revocation,
        )

    def _remove_sealed(self, request: SealRequest) -> None:
        for doc in request.documents:
            with contextlib.suppress(FileNotFoundError):
                self.store.sealed_path(request.request_id, doc.index).unlink()

    async def _interrupt(
        self, request: SealRequest, why: str, ex: SealError | SigningError
    ) -> SealRequest:
        self._remove_sealed(request)
        if request.sign_attempts >= MAX_SIGN_ATTEMPTS and isinstance(ex, TokenSigningError):
            return await self._fail(
                request, f"{why} (gave up after {request.sign_attempts} attempts)", ex
            )

        return await self._record_transition(
            request.request_id,
            lambda current, now: lifecycle.interrupt_signing(current, why=why, now=now),
            event="seal.sign_interrupted",
            outcome="approved",
            reason=getattr(ex, "reason", "token_error"),
        )

    async def _void_in_flight(self, request: SealRequest, ex: PreconditionFailed) -> SealRequest:
        """The seal stopped while signing: nothing released, approvals void (R02)."""

        def void(current: SealRequest, now: datetime) -> SealRequest:
            back = lifecycle.interrupt_signing(current, why=ex.message, now=now)
            return lifecycle.void_approvals(back, why=ex.message, now=now)

        return await self._record_transition(
            request.request_id, void, event="seal.sign_voided", outcome="pending", reason=ex.reason
        )

    async def _fail(
        self, request: SealRequest, why: str, ex: SealError | SigningError
    ) -> SealRequest:
        self._remove_sealed(request)

        return await self._record_transition(
            request.request_id,
            lambda current, now: lifecycle.fail_signing(current, why=why, now=now),
            event="seal.sign_failed",
            outcome="failed",
            reason=getattr(ex, "reason", "error"),
        )

    async def _record_transition(
        self,
        request_id: str,
        step: Callable[[SealRequest, datetime], SealRequest],
        *,
        event: str,
        outcome: str,
        reason: str,
    ) -> SealRequest:
        """Apply a signing-side transition and its audit record in one transaction."""

        def _tx(tx: Transaction) -> SealRequest:
            new = step(tx.get_request(request_id), self.clock())
            tx.save_request(new)
            tx.audit(
                AuditEvent(
                    event=event,
                    seal_id=new.seal_id,
                    request_id=new.request_id,
                    outcome=outcome,
                    reason=reason,
                )
            )
            return new

        return await self._commit(_tx, event)

    async def _fail_before_signing(self, request_id: str, ex: PreconditionFailed) -> None:
        """The policy no longer holds at signing time (R05: checked again): the request fails."""
        if ex.reason in ("token_absent", "token_locked", "request_signing", "request_final"):
            return

        def _tx(tx: Transaction) -> SealRequest:
            current = tx.get_request(request_id)
            if current.state is not RequestState.APPROVED:
                return current
            new = replace(
                current,
                state=RequestState.FAILED,
                updated_at=self.clock(),
                state_reason=f"refused at signing time: {ex.message}",
            )
            tx.save_request(new)
            tx.audit(
                AuditEvent(
                    event="seal.sign_refused",
                    seal_id=new.seal_id,
                    request_id=new.request_id,
                    outcome="failed",
                    reason=ex.reason,
                )
            )
            return new

        await self._commit(_tx, "seal.sign_refused")

    async def recover(self) -> None:
        """After a crash: requests left SIGNING are resolved by the output on disk."""
        await self.load_seal_states()
        for request in await self.store.list_requests(
            states=(RequestState.SIGNING,), limit=100_000
        ):
            paths = [self.store.sealed_path(request.request_id, d.index) for d in request.documents]
            _remove_partial_outputs(paths)
            if all(p.exists() for p in paths):
                sealed = [(_sha256_file(p), p.stat().st_size) for p in paths]

                def _done(
                    tx: Transaction,
                    rid: str = request.request_id,
                    sealed: list[tuple[str, int]] = sealed,
                ) -> SealRequest:
                    new = lifecycle.complete_signing(
                        tx.get_request(rid), sealed=sealed, now=self.clock()
                    )
                    tx.save_request(new)
                    for doc in new.documents:
                        tx.audit(
                            _event(
                                "seal.signed",
                                new,
                                None,
                                None,
                                doc,
                                outcome="recovered",
                                details={"sealed_sha256": doc.sealed_sha256},
                            )
                        )
                    return new

                await self._commit(_done, "seal.recovered_signed")
            else:
                self._remove_sealed(request)

                def _back(tx: Transaction, rid: str = request.request_id) -> SealRequest:
                    new = lifecycle.recover_unknown_outcome(tx.get_request(rid), now=self.clock())
                    tx.save_request(new)
                    tx.audit(
                        AuditEvent(
                            event="seal.outcome_unknown",
                            seal_id=new.seal_id,
                            request_id=new.request_id,
                            outcome="approved",
                            reason="crash_between_intent_and_result",
                        )
                    )
                    return new

                await self._commit(_back, "seal.outcome_unknown")


def _remove_partial_outputs(sealed_paths: Sequence[Path]) -> None:
    """Temp files of a pipeline cut off by the crash (``.<sealed name>.<random>.part``,
    signing/pipeline.py): never released, only garbage once their daemon is gone."""
    for path in sealed_paths:
        for partial in path.parent.glob(f".{path.name}.*.part"):
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()


def _require_visible(principal: Principal, request: SealRequest) -> None:
    if not lifecycle.can_view(principal, request):
        # Same answer as a missing id: do not confirm that someone else's request exists.
        raise PermissionDenied(
            f"you ({principal.name}) have no role on request {request.request_id}'s seal",
            reason="not_visible",
        )


def _event(
    event: str,
    request: SealRequest,
    principal: Principal | None,
    role: Role | None,
    doc: Document | None,
    *,
    outcome: str,
    reason: str = "",
    details: dict[str, str | int | bool | None] | None = None,
) -> AuditEvent:
    return AuditEvent(
        event=event,
        principal=principal.name if principal else "",
        role=role.value if role else "",
        seal_id=request.seal_id,
        request_id=request.request_id,
        document_name=doc.name if doc else "",
        document_sha256=doc.sha256 if doc else "",
        reason=reason or request.reason,
        outcome=outcome,
        details=details or {},
    )


def _placement_spec(request: SealRequest) -> PlacementSpec:
    return PlacementSpec(
        page=request.placement.page,
        x_mm=request.placement.x_mm,
        y_mm=request.placement.y_mm,
        size_mm=request.placement.size_mm,
        anchor_text=request.placement.anchor_text,
        cross_page=request.placement.cross_page,
    )


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
