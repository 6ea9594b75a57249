"""The signing side: the signer loop, the sealing pipeline per request, recovery, seal images.

``sign_request`` is where a request is signed: intent record (committed, fsync'd) ->
documents sealed (PDF work in the seal worker processes, seald.service.seal_workers; only
the raw signature on the token's thread) -> result record, or nothing released (R10, R15).
``recover`` resolves requests a crash left SIGNING. The daemon stops through
``stop_starting`` + ``drain``; ``in_flight`` tells who is still signing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from pyhanko.sign.timestamps import HTTPTimeStamper

from seald.config import Config
from seald.domain import access, lifecycle
from seald.domain.audit import AuditEvent
from seald.domain.errors import PreconditionFailed, SealError, ServiceUnavailable
from seald.domain.model import Document, Principal, RequestState, SealRequest
from seald.gm import ses
from seald.gm.sm2 import SM3_OID
from seald.runtime.hooks import NO_HOOKS, Hooks
from seald.runtime.logs import get_logger
from seald.service.catalog import SealCatalog
from seald.service.expiry import Expiry
from seald.service.job_signer import JobSealing, remove_step_files
from seald.service.recorder import Recorder, request_event
from seald.service.seal_workers import (
    EarlyPrepare,
    SealWorkers,
    SignerCache,
    discard_early,
    seal_documents,
    settled,
    start_prepare,
)
from seald.service.ses_seal_check import check_usable
from seald.service.settings import LiveConfig
from seald.signing import gbt38540_pdf
from seald.signing.errors import SigningError, TokenSigningError
from seald.signing.impression import render_impression_png
from seald.signing.levels import Certification, LevelSettings, level_settings
from seald.signing.pipeline import SealJob
from seald.signing.placement import PlacementSpec
from seald.signing.seal_image import SealImageSpec, render_seal_png
from seald.store import seals as seal_tables
from seald.store import ses_seals as ses_seal_tables
from seald.store.database import Store, Transaction
from seald.tokens.manager import TokenManager
from seald.workflow import Workflow

log = get_logger("seald")

MAX_SIGN_ATTEMPTS = 3
# Documents sealed and recorded together in a volume request (issue 20): an interruption
# costs at most one chunk of work again; a request of up to this many documents is
# sealed exactly as before (one intent, one result transaction).
SEAL_CHUNK = 256


class Signer:
    """Seals every APPROVED request whose token is ready; one queue per seal at a time."""

    def __init__(
        self,
        live: LiveConfig,
        store: Store,
        tokens: TokenManager,
        catalog: SealCatalog,
        recorder: Recorder,
        *,
        expiry: Expiry,
        workers: SealWorkers,
        workflow: Workflow,
        readiness: Callable[[str], tuple[bool, str]],
        clock: Callable[[], datetime],
        hooks: Hooks = NO_HOOKS,
    ) -> None:
        self._live = live
        self._store = store
        self._tokens = tokens
        self._catalog = catalog
        self._recorder = recorder
        self._expiry = expiry
        self._workflow = workflow
        self._workers = workers
        self._readiness = readiness
        self._clock = clock
        self._hooks = hooks  # pause points between the records (tests)
        self._wake = asyncio.Event()
        # seal id -> (impression SHA-256 or "" for the generated image, its 300 dpi PNG)
        self._seal_images: dict[str, tuple[str, bytes]] = {}
        self._signers = SignerCache()  # the token's certificate, read once per session
        self._jobs = JobSealing(  # issue 16: a job's signatures, each recorded
            config=lambda: self.config,
            store=store,
            tokens=tokens,
            catalog=catalog,
            recorder=recorder,
            signers=self._signers,
            workers=workers,
            seal_image=self._face_of,
            level=self._level_settings,
            clock=clock,
            hooks=hooks,
        )
        # request id -> (seal id, preparations started before its intent record)
        self._early: dict[str, tuple[str, list[EarlyPrepare]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._busy_seals: set[str] = set()
        self.signed_count = 0
        # Set on SIGTERM: signatures in flight finish, no new one starts.
        self.draining = False

    @property
    def config(self) -> Config:
        return self._live.current

    # -- stopping ------------------------------------------------------------------------------
    @property
    def in_flight(self) -> list[asyncio.Task[None]]:
        """The signing queues still running (each signs one request at a time)."""
        return [t for t in self._tasks if not t.done()]

    def stop_starting(self) -> None:
        """SIGTERM: signatures in flight finish, no new one starts."""
        self.draining = True

    async def drain(self, deadline: float) -> int:
        """Wait for the signatures in flight until the loop time ``deadline``; cancel the rest.

        Returns how many were abandoned: such a request stays SIGNING with its intent
        record, nothing is released, and ``recover`` at the next start resolves it.
        """
        loop = asyncio.get_running_loop()
        while pending := self.in_flight:
            if loop.time() >= deadline:
                break
            await asyncio.wait(pending, timeout=deadline - loop.time())
        abandoned = self.in_flight
        for task in abandoned:
            task.cancel()
        return len(abandoned)

    def clear_images(self) -> None:
        """Forget the rendered seal images (a reload may change name or organisation)."""
        self._seal_images.clear()

    def impression_changed(self, seal_id: str) -> None:
        """Issue 16: the seal's registered impression changed: its face is rendered again
        (a GB/T 38540 seal's stored SES_Seal is remade by the impression registry)."""
        self._seal_images.pop(seal_id, None)

    # -- a completing approval hands its request over ---------------------------------------------
    def hand_over(self, request: SealRequest, early: list[EarlyPrepare]) -> None:
        """An approval committed: start its request at once if the signer is idle and ready
        (latency of one request, issue 8); otherwise the loop picks it up. Preparations
        made for it are used by its queue, or discarded."""
        started = False
        if request.state is RequestState.APPROVED:
            if early:
                self._early[request.request_id] = (request.seal_id, early)
            started = self._start_queue(request.seal_id, [request])
            self.wake()
        if not started:
            self._early.pop(request.request_id, None)
            for prepared in early:
                discard_early(prepared)

    def wake(self) -> None:
        self._wake.set()

    async def read_seal_certificate(self, seal_id: str) -> None:
        """Read the certificate the signed attributes will name now, once per session, so
        the first request need not (and can be prepared before its intent record)."""
        if self.config.seals[seal_id].algorithm == "sm2":
            return  # GB/T 38540 seals use the registered certificate, not the CMS signer's
        key_label = self.config.seals[seal_id].key_label
        registered = self._tokens.certificate_sha256(seal_id)
        try:
            await self._tokens.with_session(
                seal_id,
                lambda session: self._signers.for_session(seal_id, session, key_label, registered),
            )
        except Exception as ex:  # best effort: the first request reads it again, or fails
            log.warning("seal.certificate_read_failed", seal_id=seal_id, problem=type(ex).__name__)

    async def prepare_if_completing(
        self, request_id: str, principal: Principal, approved: Callable[[SealRequest], SealRequest]
    ) -> list[EarlyPrepare]:
        """Preparations for a request this approval will make APPROVED (decided by the
        approval's own pure rule on the request as it is now; the transaction decides
        again); [] when it will not, or when no signer would start at once anyway."""
        if not any(
            seal_id not in self._busy_seals and self._readiness(seal_id)[0]
            for seal_id in self.config.seals
        ):
            return []  # no read for nothing (a batch while the token is busy or locked)
        try:
            current = await self._store.get_request(request_id)
            if not access.can_view(principal, current):
                return []
            if current.is_job and current.state is RequestState.PENDING:
                self._jobs.lay_out_ahead(current)  # issue 16: the layout off the last approval's path
            would_be = approved(current)
        except Exception:  # any refusal: the real transaction answers it
            return []
        if would_be.state is not RequestState.APPROVED:
            return []
        return self._prepare_early(would_be)

    def seal_image(self, seal_id: str, dpi: int = 300) -> bytes:
        """THE seal's face as a PNG (sealing, previews, RenderSealImage, the SES_Seal): the
        registered impression (issue 16) scaled to ``dpi`` at the seal's size when it has
        one, the generated image otherwise. Cached at the 300 dpi used for sealing and
        previews, per impression: a new impression is rendered on first use."""
        registered = self._catalog.impressions.get(seal_id)
        sha256 = registered[0].sha256 if registered is not None else ""
        cached = self._seal_images.get(seal_id)
        if dpi == 300 and cached is not None and cached[0] == sha256:
            return cached[1]
        if registered is not None:
            size_mm = self.config.seals[seal_id].size_mm
            png = render_impression_png(registered[1], registered[0].media_type, size_mm, dpi)
        else:
            png = self._generated_image(seal_id, dpi)
        if dpi == 300:
            self._seal_images[seal_id] = (sha256, png)
        return png

    def _generated_image(self, seal_id: str, dpi: int) -> bytes:
        sc = self.config.seals[seal_id]
        spec = SealImageSpec(
            seal_type=sc.seal_type.value,
            organisation=sc.organisation,
            purpose_text="" if sc.seal_type.value == "official" else sc.display_name,
            holder_name=sc.holder_name,
            code_number=sc.code_number,
            shape=sc.shape,
        )
        return render_seal_png(spec, sc.size_mm, dpi)

    def _cached_face(self, request: SealRequest) -> bytes | None:
        """The 300 dpi face the request was approved with, if that is the one cached."""
        cached = self._seal_images.get(request.seal_id)
        if cached is None or cached[0] != request.seal_impression_sha256:
            return None
        return cached[1]

    async def _face_for(self, request: SealRequest) -> bytes:
        """The face the request's approvals name (its digest covers the impression's
        SHA-256): the current one, or - when the impression changed while it was being
        signed - the earlier one, read back from the registry (impressions are kept)."""
        return await self._face_of(request.seal_id, request.seal_impression_sha256)

    async def _face_of(self, seal_id: str, wanted: str) -> bytes:
        """The 300 dpi face of ``seal_id`` whose impression SHA-256 is ``wanted`` ("" = the
        generated image): a job's seal signs with the face its approvers approved."""
        loop = asyncio.get_running_loop()
        png = await loop.run_in_executor(None, self.seal_image, seal_id)
        if self._seal_images[seal_id][0] == wanted:
            return png
        if not wanted:
            return await loop.run_in_executor(None, self._generated_image, seal_id, 300)
        found = await self._store.read(
            lambda db: seal_tables.impression_by_sha256(db.conn, seal_id, wanted)
        )
        if found is None:
            raise PreconditionFailed(
                f"seal {seal_id}'s impression {wanted[:16]}… is not registered; approve again",
                reason="seal_impression_changed",
            )
        size_mm = self.config.seals[seal_id].size_mm
        return await loop.run_in_executor(
            None, render_impression_png, found[1], found[0].media_type, size_mm, 300
        )

    async def _warm_workers(self) -> None:
        try:
            await self._workers.warm()
        except Exception as ex:  # sealing still works: the pool is started again on use
            log.error("seal_workers.warm_failed", problem=type(ex).__name__)

    async def _render_seal_images(self) -> None:
        loop = asyncio.get_running_loop()
        for seal_id in self.config.seals:
            try:
                await loop.run_in_executor(None, self.seal_image, seal_id)
            except SigningError as ex:  # the request that needs it fails with this reason
                log.error("seal_image.render_failed", seal_id=seal_id, reason=ex.reason)

    async def run(self) -> None:
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
        approved = await self._store.list_requests(states=(RequestState.APPROVED,), limit=10_000)
        started = 0
        for request in approved:
            if self._start_queue(request.seal_id, [r for r in approved if r.seal_id == request.seal_id]):
                started += 1
        return started

    def _start_queue(self, seal_id: str, first: Sequence[SealRequest]) -> bool:
        """Start signing ``seal_id``'s APPROVED requests, ``first`` (already read) first,
        unless its token is not ready or a queue of that seal is already running."""
        if self.draining or seal_id in self._busy_seals or not self._readiness(seal_id)[0]:
            return False
        self._busy_seals.add(seal_id)
        task = asyncio.create_task(self._sign_seal_queue(seal_id, list(first)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _sign_seal_queue(self, seal_id: str, first: list[SealRequest]) -> None:
        try:
            while True:
                ready, _ = self._readiness(seal_id)
                if not ready:
                    return
                queue, first = first or await self._store.list_requests(
                    states=(RequestState.APPROVED,), seal_id=seal_id, limit=50
                ), []
                if not queue:
                    return
                progressed = False
                for request in queue:
                    # Checked per request: a lock (or removal) mid-queue must not start an
                    # intent + interrupt pair for every request still queued.
                    if self.draining or not self._readiness(seal_id)[0]:
                        return
                    try:
                        if request.is_job:
                            # Issue 16: every seal's token must be ready; a job waiting for
                            # another token does not hold up this seal's other requests.
                            if not all(self._readiness(s)[0] for s in request.seal_ids):
                                continue
                            await self._sign_job(request.request_id)
                        else:
                            await self.sign_request(request.request_id, request)
                    except PreconditionFailed as ex:
                        # Its intent was refused (rejected, withdrawn or expired since this
                        # queue read it; already settled by the refusal): nothing was signed,
                        # and the seal's other requests still go.
                        log.info(
                            "signer.request_skipped",
                            request_id=request.request_id,
                            seal_id=seal_id,
                            reason=ex.reason,
                        )
                        continue
                    progressed = True
                if not progressed:
                    return
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

    async def sign_request(  # noqa: C901 - intent, signatures, result and each way out (R10) together
        self, request_id: str, queued: SealRequest | None = None
    ) -> SealRequest:
        """Intent record, token signatures, result record — or nothing released.

        ``queued`` is the request as the signer's queue read it (APPROVED): its documents
        are prepared while the intent record commits, so the commit costs no latency.
        The token signs only once the intent is committed.

        A request of more than SEAL_CHUNK documents is sealed in chunks (issue 20): each
        chunk but the last is recorded (``lifecycle.record_sealed``, one audit record per
        chunk) once its files are in place, so a token removal, a lock or a crash
        resumes after the last recorded chunk and never signs a recorded document again.
        Only the cut-off chunk is prepared and signed again (its files were never renamed
        into place nor recorded). Nothing is downloadable before the request is SIGNED;
        the result record names each document once.
        """
        now = self._clock()

        def _intent(tx: Transaction) -> SealRequest:
            request = tx.get_request(request_id)
            # Issue 17: nothing is signed on an approval whose delegation has ended.
            self._workflow.require_delegations_in_force(tx, request, now)
            new = lifecycle.begin_signing(
                request,
                seal=self._catalog.seal(request.seal_id, tx),
                policy=self.config.policy_for(request.seal_id, now),
                now=now,
            )
            tx.save_request(new)
            for doc in new.documents:
                if not doc.sealed_sha256:  # resumed: only what is still to be sealed
                    tx.audit(request_event("seal.sign_intent", new, None, None, doc, outcome="intent"))
            return new

        intent = asyncio.ensure_future(self._recorder.commit(_intent, "seal.sign_intent"))

        async def intent_committed() -> None:
            await intent
            await self._hooks.pause("after_intent", request_id)

        if queued is None or queued.request_id != request_id:
            try:
                queued = await intent
            except PreconditionFailed as ex:
                await self._intent_refused(request_id, ex)
                raise
        gate = asyncio.ensure_future(intent_committed())
        started = asyncio.get_running_loop().time()
        # Recorded before this attempt (a resumed request) or by it: kept whatever happens
        # next, unless the seal stops or a document fails (then nothing is released).
        recorded = {doc.index for doc in queued.documents if doc.sealed_sha256}
        remaining = [doc.index for doc in queued.documents if doc.index not in recorded]
        chunks = [remaining[i : i + SEAL_CHUNK] for i in range(0, len(remaining), SEAL_CHUNK)] or [[]]
        last: dict[int, tuple[str, int]] = {}
        try:
            for number, chunk in enumerate(chunks):
                sealed = await self._seal_documents(queued, chunk, gate, early=number == 0)
                if number == len(chunks) - 1:
                    last = sealed  # recorded by the result transaction below
                    break
                try:
                    await self._recorder.commit(self._record_chunk(request_id, sealed), "seal.chunk_sealed")
                except PreconditionFailed as ex:
                    self._remove_sealed(intent.result())
                    return await self._void_in_flight(intent.result(), ex)
                except ServiceUnavailable:
                    # Fail closed: this chunk is not recorded, so its files go.
                    self._remove_sealed(intent.result(), keep=recorded)
                    raise
                recorded.update(sealed)
                self.signed_count += len(sealed)
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
                return await self._interrupt(
                    request, f"not signed: {ex}; waiting for the token", ex, keep=recorded
                )
            if isinstance(ex, SigningError):
                return await self._fail(request, f"cannot seal: {ex}", ex)
            raise
        request = intent.result()

        latency_ms = round((asyncio.get_running_loop().time() - started) * 1000, 1)
        await self._hooks.pause("before_result", request_id)

        def _result(tx: Transaction) -> SealRequest:
            current = tx.get_request(request_id)
            # R02: a suspension/loss committed while the token was signing wins: the
            # sealed output is not released (the caller deletes it and voids approvals).
            lifecycle.check_seal_usable(self._catalog.seal(current.seal_id, tx), current.category)
            with_last = lifecycle.record_sealed(current, sealed=last, now=self._clock())
            complete = lifecycle.sealed_so_far(with_last)
            if complete is None:
                raise PreconditionFailed("not every document was sealed", reason="incomplete_batch")
            new = lifecycle.complete_signing(current, sealed=complete, now=self._clock())
            tx.save_request(new)
            for doc in new.documents:
                tx.audit(
                    request_event(
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
            done = await self._recorder.commit(_result, "seal.signed")
        except PreconditionFailed as ex:
            self._remove_sealed(request)
            return await self._void_in_flight(request, ex)
        except ServiceUnavailable:
            # Fail closed: without its result record no sealed document is released; the
            # recorded chunks stay (recovery completes or resumes the request).
            self._remove_sealed(request, keep=recorded)
            raise
        self.signed_count += len(last)
        log.info(
            "seal.request_completed",
            request_id=request_id,
            seal_id=done.seal_id,
            documents=len(done.documents),
            latency_ms=latency_ms,
            outcome="signed",
        )
        return done

    async def _sign_job(self, request_id: str) -> SealRequest:
        """Issue 16: intent record, every signature of every document (each recorded before
        the next, service/job_signer.py), then the sealed files and the result record in
        the usual way; or nothing released.

        A token removal or lock between two signatures: back to APPROVED with the recorded
        signatures kept (the request resumes from them once every token is ready again).
        A document that cannot be sealed: FAILED, its intermediates deleted."""
        now = self._clock()

        def _intent(tx: Transaction) -> SealRequest:
            request = tx.get_request(request_id)
            self._workflow.require_delegations_in_force(tx, request, now)
            new = lifecycle.begin_signing(
                request,
                seal=self._catalog.seal(request.seal_id, tx),
                policy=self.config.policy_for_request(request, now),
                now=now,
                job_seals={s: self._catalog.seal(s, tx) for s in request.seal_ids},
            )
            tx.save_request(new)
            for doc in new.documents:
                tx.audit(request_event("seal.sign_intent", new, None, None, doc, outcome="intent"))
            return new

        try:
            request = await self._recorder.commit(_intent, "seal.sign_intent")
        except PreconditionFailed as ex:
            await self._intent_refused(request_id, ex)
            raise
        await self._hooks.pause("after_intent", request_id)
        started = asyncio.get_running_loop().time()
        try:
            request = await self._jobs.sign_all(request)
        except (PreconditionFailed, TokenSigningError) as ex:
            current = await self._store.get_request(request_id)
            if ex.reason in ("seal_suspended", "seal_lost", "seal_destroyed") and isinstance(
                ex, PreconditionFailed
            ):
                remove_step_files(self._store, current)
                return await self._void_in_flight(current, ex)
            if ex.reason in ("incomplete_batch", "job_step_out_of_order"):
                # A recorded intermediate is gone or changed: never signed over, never
                # retried in a loop; the request fails and nothing is released.
                remove_step_files(self._store, current)
                return await self._fail(current, f"cannot seal: {ex}", ex)
            return await self._interrupt(
                current, f"not signed: {ex}; waiting for the tokens of {', '.join(current.seal_ids)}", ex
            )
        except SigningError as ex:
            current = await self._store.get_request(request_id)
            remove_step_files(self._store, current)
            return await self._fail(current, f"cannot seal: {ex}", ex)
        released = self._jobs.release_files(request)
        latency_ms = round((asyncio.get_running_loop().time() - started) * 1000, 1)
        await self._hooks.pause("before_result", request_id)

        def _result(tx: Transaction) -> SealRequest:
            current = tx.get_request(request_id)
            for seal_id in current.seal_ids:  # R02: a seal stopped meanwhile wins
                lifecycle.check_seal_usable(self._catalog.seal(seal_id, tx), current.category)
            new = lifecycle.complete_signing(
                current, sealed=[released[d.index] for d in current.documents], now=self._clock()
            )
            tx.save_request(new)
            self._jobs.result_event(new, tx, int(latency_ms))
            return new

        try:
            done = await self._recorder.commit(_result, "seal.signed")
        except PreconditionFailed as ex:
            self._remove_sealed(request)
            remove_step_files(self._store, request)
            return await self._void_in_flight(request, ex)
        except ServiceUnavailable:
            self._remove_sealed(request)  # the recorded steps stay: recovery resumes
            raise
        remove_step_files(self._store, done)
        self.signed_count += len(done.documents)
        log.info(
            "seal.request_completed",
            request_id=request_id,
            seal_id=done.seal_id,
            seals=list(done.seal_ids),
            documents=len(done.documents),
            latency_ms=latency_ms,
            outcome="signed",
        )
        return done

    def _record_chunk(
        self, request_id: str, sealed: dict[int, tuple[str, int]]
    ) -> Callable[[Transaction], SealRequest]:
        """The transaction that records one sealed chunk (files already in place)."""

        def _tx(tx: Transaction) -> SealRequest:
            current = tx.get_request(request_id)
            lifecycle.check_seal_usable(self._catalog.seal(current.seal_id, tx), current.category)
            new = lifecycle.record_sealed(current, sealed=sealed, now=self._clock())
            done = sum(1 for doc in new.documents if doc.sealed_sha256)
            tx.save_request(new)
            tx.audit(
                AuditEvent(
                    event="seal.chunk_sealed",
                    seal_id=new.seal_id,
                    request_id=new.request_id,
                    outcome="signing",
                    details={
                        "first_document": min(sealed),
                        "last_document": max(sealed),
                        "sealed": done,
                        "documents": len(new.documents),
                    },
                )
            )
            return new

        return _tx

    async def _intent_refused(self, request_id: str, ex: PreconditionFailed) -> None:
        """The intent record was refused: the request expired, or the policy no longer holds."""
        if ex.reason in ("request_expired",):
            await self._expiry.expire_due()
        elif ex.reason == "delegation_not_in_force":
            await self._workflow.sweep()  # voids those approvals; the request waits for new ones
        elif ex.reason not in ("not_approved",):
            await self._fail_before_signing(request_id, ex)

    async def _seal_documents(
        self,
        request: SealRequest,
        indexes: Sequence[int],
        intent_committed: asyncio.Future[None],
        *,
        early: bool,
    ) -> dict[int, tuple[str, int]]:
        """index -> (sha256, size) of each of these documents; all sealed and renamed into
        place, or none.

        Every level goes through the worker pipeline (issue 8): PDF work, and for B-LT/B-LTA
        the TSA/OCSP/CRL fetches, DSS and document timestamp, in worker processes; only the
        raw signature on the token thread. No token signature before ``intent_committed``
        is done; it is always settled when this returns or raises.
        """
        sc = self.config.seals[request.seal_id]
        # Rendering a seal takes ~1 s of CPU: never on the event loop (cached after once).
        try:
            seal_png = self._cached_face(request) or await self._face_for(request)
        except BaseException:
            await settled(intent_committed)
            raise
        wanted = set(indexes)
        documents = [doc for doc in request.documents if doc.index in wanted]
        jobs = self._jobs_for(request, seal_png, documents)
        if sc.format == "gbt38540":
            sealed = await self._seal_gbt38540(request.seal_id, jobs, seal_png, intent_committed)
            return {doc.index: result for doc, result in zip(documents, sealed, strict=True)}
        started = self._early.pop(request.request_id, ("", []))[1]
        if not early:
            for unused in started:
                discard_early(unused)
            started = []
        results = await seal_documents(
            self._workers,
            self._tokens,
            request.seal_id,
            jobs,
            key_label=sc.key_label,
            signers=self._signers,
            before_sign=intent_committed,
            hooks=self._hooks,
            early=started,
        )
        return {
            doc.index: (result.sha256, result.size)
            for doc, result in zip(documents, results, strict=True)
        }

    async def _ses_seal(self, seal_id: str, seal_png: bytes) -> bytes:
        """The seal's GB/T 38540 SES_Seal as the registry stores it (issue 19), if the signer
        may embed it now; the maker is never asked here. A missing, stale, destroyed,
        expired or not yet valid one fails the request (SigningError) with the reason and
        the field named: sealing cannot succeed until an admin acts."""
        stored = await self._store.read(lambda db: ses_seal_tables.current(db.conn, seal_id))
        try:
            return check_usable(
                stored,
                seal_id=seal_id,
                holder_der=self._tokens.certificate_der(seal_id),
                now=self._clock(),
                picture_sha256=hashlib.sha256(seal_png).hexdigest(),
            )
        except PreconditionFailed as ex:
            raise SigningError(ex.message, reason=ex.reason) from None

    async def _seal_gbt38540(
        self,
        seal_id: str,
        jobs: Sequence[SealJob],
        seal_png: bytes,
        intent_committed: asyncio.Future[None],
    ) -> list[tuple[str, int]]:
        """GB/T 38540 sealing: all documents or none released.

        As in the PAdES pipeline only the signature runs on the SKF token's thread: the
        layout (placement, anchor text, cross-page slices) and the ByteRange hash run in
        the default executor before it, the RFC 3161 request (level B-T: the TSA stamps
        SM3 of the signature value, GB/T 38540's timeStamp) on the event loop after it,
        then the embedding. The token signs only after the intent record is committed; a
        removal while it signs fails closed (PreconditionFailed) and nothing is kept.
        """
        written: list[Path] = []
        loop = asyncio.get_running_loop()
        try:
            seal = await self._ses_seal(seal_id, seal_png)
            holder = self._tokens.certificate_der(seal_id)
            timestamper = self._level_settings(seal_id).timestamper()
            await settled(intent_committed)
            results = []
            for job in jobs:
                data = job.input_path.read_bytes()
                prepared = await loop.run_in_executor(
                    None,
                    functools.partial(
                        gbt38540_pdf.prepare_gbt38540,
                        data,
                        seal=seal,
                        signer_cert=holder,
                        time_info=self._clock(),
                        field_name=job.field_name,
                        placement=job.placement,
                        source_path=job.input_path,
                        with_timestamp=timestamper is not None,
                    ),
                )

                def sign_one(
                    sign: Callable[[bytes], bytes], prepared: gbt38540_pdf.PreparedGbt38540 = prepared
                ) -> bytes:
                    return gbt38540_pdf.sign_prepared(prepared, seal=seal, signer_cert=holder, sign=sign)

                # the SKF container's or the PKCS#11 token's (vendor profile) SM2 signature
                der = await self._tokens.with_sm2_signer(seal_id, sign_one)
                if timestamper is not None:
                    der = await _gbt38540_timestamp(der, timestamper)
                out = await loop.run_in_executor(None, prepared.finish, der)
                tmp = job.output_path.with_suffix(".tmp")
                tmp.write_bytes(out)
                with open(tmp, "rb+") as fh:
                    os.fsync(fh.fileno())
                tmp.replace(job.output_path)
                written.append(job.output_path)
                results.append((hashlib.sha256(out).hexdigest(), len(out)))
            return results
        except BaseException as ex:
            _remove_partial_outputs(written)
            if isinstance(ex, asyncio.CancelledError):
                intent_committed.cancel()
            elif not intent_committed.done():
                # Like the PAdES pipeline: the gate is settled before raising, so the caller
                # sees the intent's outcome and fails the request by this error (a refusal
                # before the token signed, e.g. a stale SES_Seal, must not leave it SIGNING).
                await asyncio.wait([intent_committed])
            raise

    def _jobs_for(
        self, request: SealRequest, seal_png: bytes, documents: Sequence[Document] | None = None
    ) -> list[SealJob]:
        sc = self.config.seals[request.seal_id]
        level = self._level_settings(request.seal_id)
        return [
            SealJob(
                input_path=self._store.original_path(request.request_id, doc.index),
                output_path=self._store.sealed_path(request.request_id, doc.index),
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
            for doc in (request.documents if documents is None else documents)
        ]

    def _prepare_early(self, request: SealRequest) -> list[EarlyPrepare]:
        """Start preparing the documents of a request the approval under way will make
        APPROVED, while that approval commits (issue 8: latency of one request). Only when
        its seal's signer would start at once; the token signs only after the intent."""
        seal_png = self._cached_face(request)
        if (
            seal_png is None
            # GB/T 38540 seals prepare in _seal_gbt38540; the PAdES pipeline's work would be discarded
            or self.config.seals[request.seal_id].format == "gbt38540"
            or request.is_job  # issue 16: a job's signatures are made one by one
            or self.draining
            or request.seal_id in self._busy_seals
            or not self._readiness(request.seal_id)[0]
            # start_prepare takes at most one per worker: no jobs built for a volume request
            or len(request.documents) > self._workers.size
        ):
            return []
        return start_prepare(
            self._workers,
            self._tokens,
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

    def _remove_sealed(self, request: SealRequest, keep: set[int] | frozenset[int] = frozenset()) -> None:
        """Delete the sealed files of the request's documents, but those in ``keep``
        (recorded chunks, issue 20)."""
        for doc in request.documents:
            if doc.index in keep:
                continue
            with contextlib.suppress(FileNotFoundError):
                self._store.sealed_path(request.request_id, doc.index).unlink()

    async def _interrupt(
        self,
        request: SealRequest,
        why: str,
        ex: SealError | SigningError,
        *,
        keep: set[int] | frozenset[int] = frozenset(),
    ) -> SealRequest:
        """Back to APPROVED; the recorded chunks (``keep``) stay and are not signed again."""
        self._remove_sealed(request, keep=keep)
        progressed = len(keep) > sum(1 for doc in request.documents if doc.sealed_sha256)
        if (
            not progressed
            and request.sign_attempts >= MAX_SIGN_ATTEMPTS
            and isinstance(ex, TokenSigningError)
        ):
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
            back = lifecycle.forget_sealed(lifecycle.interrupt_signing(current, why=ex.message, now=now))
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
            lambda current, now: lifecycle.forget_sealed(lifecycle.fail_signing(current, why=why, now=now)),
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
            new = step(tx.get_request(request_id), self._clock())
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

        return await self._recorder.commit(_tx, event)

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
                updated_at=self._clock(),
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

        await self._recorder.commit(_tx, "seal.sign_refused")

    async def recover(self) -> None:
        """After a crash: requests left SIGNING are resolved by the output on disk.

        A document whose chunk was recorded (issue 20) keeps its sealed file when the file
        still has the recorded hash. If every document then has its sealed file, the
        request is SIGNED (the crash came after the last rename); otherwise the files of
        unrecorded documents go and the request returns to APPROVED flagged
        ``outcome_unknown``, to be resumed after the recorded ones.
        """
        await self._catalog.load()
        for request in await self._store.list_requests(
            states=(RequestState.SIGNING,), limit=100_000
        ):
            paths = {d.index: self._store.sealed_path(request.request_id, d.index) for d in request.documents}
            _remove_partial_outputs(list(paths.values()))
            kept = {
                d.index
                for d in request.documents
                if d.sealed_sha256
                and paths[d.index].exists()
                and _sha256_file(paths[d.index]) == d.sealed_sha256
            }
            if all(p.exists() for p in paths.values()):
                sealed = [
                    (d.sealed_sha256, d.sealed_size)
                    if d.index in kept
                    else (_sha256_file(paths[d.index]), paths[d.index].stat().st_size)
                    for d in request.documents
                ]

                def _done(
                    tx: Transaction,
                    rid: str = request.request_id,
                    sealed: list[tuple[str, int]] = sealed,
                ) -> SealRequest:
                    new = lifecycle.complete_signing(
                        tx.get_request(rid), sealed=sealed, now=self._clock()
                    )
                    tx.save_request(new)
                    for doc in new.documents:
                        tx.audit(
                            request_event(
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

                done = await self._recorder.commit(_done, "seal.recovered_signed")
                if done.is_job:
                    remove_step_files(self._store, done)  # issue 16: released, not needed
            else:
                self._remove_sealed(request, keep=kept)

                def _back(
                    tx: Transaction, rid: str = request.request_id, kept: set[int] = kept
                ) -> SealRequest:
                    current = tx.get_request(rid)
                    # A recorded document whose file is gone or changed is sealed again.
                    current = replace(
                        current,
                        documents=tuple(
                            d if d.index in kept else replace(d, sealed_sha256="", sealed_size=0)
                            for d in current.documents
                        ),
                    )
                    new = lifecycle.recover_unknown_outcome(current, now=self._clock())
                    tx.save_request(new)
                    tx.audit(
                        AuditEvent(
                            event="seal.outcome_unknown",
                            seal_id=new.seal_id,
                            request_id=new.request_id,
                            outcome="approved",
                            reason="crash_between_intent_and_result",
                            details={"sealed_kept": len(kept), "documents": len(new.documents)},
                        )
                    )
                    return new

                await self._recorder.commit(_back, "seal.outcome_unknown")


def _remove_partial_outputs(sealed_paths: Sequence[Path]) -> None:
    """Temp files of a pipeline cut off by the crash (``.<sealed name>.<random>.part``,
    signing/pipeline.py): never released, only garbage once their daemon is gone."""
    for path in sealed_paths:
        for partial in path.parent.glob(f".{path.name}.*.part"):
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()


async def _gbt38540_timestamp(der: bytes, timestamper: HTTPTimeStamper) -> bytes:
    """The SES_Signature with the TSA's RFC 3161 token over SM3(signature value) added.

    A TSA that cannot be reached or answers nonsense fails the sealing closed (SigningError
    tsa_unavailable, as for PAdES B-T): a B-T seal never ships without its timestamp."""
    try:
        token = await timestamper.async_timestamp(gbt38540_pdf.timestamp_imprint(der), SM3_OID)
    except Exception as ex:
        raise SigningError(
            f"the timestamp authority did not timestamp the GB/T 38540 signature ({type(ex).__name__}); "
            "check [trust] tsa_url and that the TSA is reachable",
            reason="tsa_unavailable",
        ) from None
    return ses.add_timestamp(der, bytes(token.dump()))


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
