"""gRPC servicers: peer identity -> Principal, message -> domain call, error -> status.

No business rules here. Every RPC goes through :func:`rpc` (or :func:`stream_rpc`),
which authenticates, maps SealError through the one status table, never lets a
stack trace reach a client, and writes one canonical log line per call.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import grpc

from sealapi.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    requests_pb2,
    requests_pb2_grpc,
    seals_pb2,
    seals_pb2_grpc,
    tokens_pb2,
    tokens_pb2_grpc,
    verify_pb2,
    verify_pb2_grpc,
)
from seald.api import convert, custody_convert
from seald.api.auth import authenticate
from seald.api.errors import REASON_METADATA_KEY, Unimplemented, status_for
from seald.api.signed_approvals import signed_approval
from seald.api.times import datetime_from_pb
from seald.audit_ops import AuditOperations
from seald.domain import lifecycle
from seald.domain.audit import AuditEvent, canonical_details_json
from seald.domain.errors import (
    InvalidInput,
    LimitExceeded,
    PermissionDenied,
    SealError,
    ServiceUnavailable,
    Unauthenticated,
)
from seald.domain.limits import StreamSlot
from seald.domain.model import Principal, Role
from seald.domain.seals import SealAction, SealState, effective_state, require_admin
from seald.evidence import export_evidence
from seald.logs import get_logger
from seald.previews import Previews
from seald.seal_admin import SealAdmin
from seald.service import SealService, UploadedDocument
from seald.signing.errors import SigningError
from seald.signing.verify import CERTIFICATION_P, verify_pdf
from seald.tokens.manager import TokenState

log = get_logger("seald.api")

CHUNK_SIZE = 256 * 1024
SEAL_IMAGE_DPI, SEAL_IMAGE_MIN_DPI, SEAL_IMAGE_MAX_DPI = 300, 72, 1200
Req = TypeVar("Req")
Resp = TypeVar("Resp")


class CallInfo:
    """What the canonical log line says about one call."""

    def __init__(self) -> None:
        self.principal = ""
        self.request_id = ""
        self.seal_id = ""
        self.fingerprint = ""


async def _refuse(service: SealService, error: SealError, method: str, info: CallInfo) -> None:
    service.metrics.refused(error.reason)
    if isinstance(error, Unauthenticated | PermissionDenied):
        event = "auth.refused" if isinstance(error, Unauthenticated) else "access.denied"
        try:
            await service.audit(
                AuditEvent(
                    event=event,
                    principal=info.principal,
                    seal_id=info.seal_id,
                    request_id=info.request_id,
                    outcome="refused",
                    reason=error.reason,
                    details={"method": method},
                )
            )
        except ServiceUnavailable:
            log.error("audit.write_failed", audit_event=event)


def _log_call(method: str, info: CallInfo, code: grpc.StatusCode, reason: str, started: float) -> None:
    log.info(
        "rpc",
        method=method,
        principal=info.principal,
        request_id=info.request_id or None,
        seal_id=info.seal_id or None,
        code=code.name,
        reason=reason or None,
        latency_ms=round((time.perf_counter() - started) * 1000, 2),
    )


async def _abort(
    context: grpc.aio.ServicerContext[Any, Any], code: grpc.StatusCode, message: str, reason: str
) -> None:
    context.set_trailing_metadata(((REASON_METADATA_KEY, reason),))
    await context.abort(code, message)


def rpc(
    method: Callable[[Any, Principal, CallInfo, Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]],
) -> Callable[[Any, Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]:
    name = method.__name__

    @functools.wraps(method)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        started = time.perf_counter()
        info = CallInfo()
        error: SealError | None = None
        try:
            principal, info.fingerprint = authenticate(self.service.config, context)
            info.principal = principal.name
            self.service.admit_call(principal)  # per-client rate limit (issue 8)
            result = await method(self, principal, info, request, context)
        except SealError as ex:
            error = ex
        except Exception:
            log.exception("rpc.internal_error", method=name, principal=info.principal)
            _log_call(name, info, grpc.StatusCode.INTERNAL, "internal", started)
            await _abort(
                context,
                grpc.StatusCode.INTERNAL,
                f"internal error in {name}; nothing was changed. The operator can find it in the seald log",
                "internal",
            )
            raise AssertionError("unreachable") from None
        if error is not None:
            await _refuse(self.service, error, name, info)
            code = status_for(error)
            _log_call(name, info, code, error.reason, started)
            await _abort(context, code, error.message, error.reason)
        _log_call(name, info, grpc.StatusCode.OK, "", started)
        return result

    return wrapper


def stream_rpc(
    method: Callable[[Any, Principal, CallInfo, Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]],
) -> Callable[[Any, Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]:
    name = method.__name__

    @functools.wraps(method)
    async def wrapper(
        self: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        started = time.perf_counter()
        info = CallInfo()
        error: SealError | None = None
        slot: StreamSlot | None = None
        try:
            principal, _ = authenticate(self.service.config, context)
            info.principal = principal.name
            self.service.admit_call(principal)  # per-client rate limit (issue 8)
            slot = _hold_stream_slot(self.service, principal, context)
            async for item in method(self, principal, info, request, context):
                yield item
        except SealError as ex:
            error = ex
        except asyncio.CancelledError:
            _log_call(name, info, grpc.StatusCode.CANCELLED, "client_cancelled", started)
            raise
        except Exception:
            log.exception("rpc.internal_error", method=name, principal=info.principal)
            _log_call(name, info, grpc.StatusCode.INTERNAL, "internal", started)
            await _abort(context, grpc.StatusCode.INTERNAL, f"internal error in {name}", "internal")
            return
        finally:
            if slot is not None:
                slot.release()
        if error is not None:
            await _refuse(self.service, error, name, info)
            code = status_for(error)
            _log_call(name, info, code, error.reason, started)
            await _abort(context, code, error.message, error.reason)
            return
        _log_call(name, info, grpc.StatusCode.OK, "", started)

    return wrapper


def _hold_stream_slot(
    service: SealService, principal: Principal, context: grpc.aio.ServicerContext[Any, Any]
) -> StreamSlot:
    """Take one of the principal's stream slots (issue 8) for as long as the RPC lives.

    The wrapper's ``finally`` releases it when the generator ends; the done callback also
    covers an RPC that ends while the generator is parked at a ``yield`` (client cancel,
    deadline, shutdown), which is finalized only later. Releasing twice is a no-op.
    """
    slot = service.open_stream(principal)
    # grpc-stubs types the callback as a class, not a Callable; grpc calls it with the context.
    context.add_done_callback(lambda _context: slot.release())  # type: ignore[arg-type]
    return slot


def _sync_and_close(file: Any) -> None:
    file.flush()
    os.fsync(file.fileno())
    file.close()


def _require_role_on_seal(service: SealService, principal: Principal, seal_id: str) -> None:
    """NOT_FOUND for an unknown seal, PERMISSION_DENIED without a role on it."""
    service.seal(seal_id)
    if seal_id not in principal.seal_ids:
        raise PermissionDenied(f"you have no role on seal {seal_id}", reason="not_visible")


def _unimplemented(what: str) -> SealError:
    return Unimplemented(f"{what} is not available in this version of seald yet")


class SealRequestServicer(requests_pb2_grpc.SealRequestServiceServicer):
    def __init__(self, service: SealService, audit_ops: AuditOperations | None = None) -> None:
        self.service = service
        self.previews = Previews(service)

        self.audit_ops = audit_ops  # the audit key signs on-demand checkpoints for GetEvidence

    @rpc
    async def SubmitRequest(
        self,
        principal: Principal,
        info: CallInfo,
        request_iterator: AsyncIterator[requests_pb2.SubmitRequestMessage],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> requests_pb2.SealRequest:
        limits = self.service.config.requests
        upload_dir = self.service.new_upload_dir()
        try:
            header: requests_pb2.SubmitRequestHeader | None = None
            uploads: list[UploadedDocument] = []
            current: dict[str, Any] | None = None

            async def finish_current() -> None:
                nonlocal current
                if current is None:
                    return
                # fsync off the event loop: other clients' calls go on meanwhile.
                await asyncio.get_running_loop().run_in_executor(None, _sync_and_close, current["file"])
                start: requests_pb2.DocumentStart = current["start"]
                size, sha = current["size"], current["hash"].hexdigest()
                if size != start.size:
                    raise InvalidInput(
                        f"document {start.name!r} announced {start.size} bytes but {size} arrived; "
                        "the upload was cut short, send it again",
                        reason="truncated_upload",
                    )
                if start.sha256 and start.sha256.lower() != sha:
                    raise InvalidInput(
                        f"document {start.name!r} arrived with SHA-256 {sha}, not the {start.sha256} "
                        "you announced; send it again",
                        reason="upload_hash_mismatch",
                    )
                uploads.append(UploadedDocument(start.name, size, sha, current["path"]))
                current = None

            async for message in request_iterator:
                kind = message.WhichOneof("payload")
                if header is None:
                    if kind != "header":
                        raise InvalidInput(
                            "the first SubmitRequest message must carry the header (seal, reason, "
                            "category, placement)",
                            reason="missing_header",
                        )
                    header = message.header
                    info.seal_id = header.seal_id
                    self.service.seal(header.seal_id)
                    if not principal.has(Role.REQUESTER, header.seal_id):
                        raise PermissionDenied(
                            f"{principal.name} is not a designated requester for seal {header.seal_id} (R04)",
                            reason="not_a_requester",
                        )
                    # Refuse before the upload, not after it (issue 8).
                    await self.service.check_open_requests(principal, header.client_request_key)
                    continue
                if kind == "header":
                    raise InvalidInput("the header was sent twice", reason="duplicate_header")
                if kind == "document_start":
                    await finish_current()
                    start = message.document_start
                    if len(uploads) >= limits.max_documents_per_request:
                        raise LimitExceeded(
                            f"more than {limits.max_documents_per_request} documents in one request "
                            "(max_documents_per_request); split the batch",
                            reason="too_many_documents",
                        )
                    if start.size > limits.max_document_bytes:
                        raise LimitExceeded(
                            f"document {start.name!r} is {start.size} bytes; the limit is "
                            f"{limits.max_document_bytes} (max_document_bytes)",
                            reason="document_too_large",
                        )
                    path = upload_dir / f"{len(uploads):04d}.part"
                    current = {
                        "start": start,
                        "path": path,
                        "file": path.open("wb"),
                        "size": 0,
                        "hash": hashlib.sha256(),
                    }
                    continue
                if kind == "chunk":
                    if current is None:
                        raise InvalidInput(
                            "document data arrived before a document_start",
                            reason="missing_document_start",
                        )
                    current["size"] += len(message.chunk)
                    if current["size"] > current["start"].size:
                        raise InvalidInput(
                            f"document {current['start'].name!r} is longer than its announced size",
                            reason="upload_too_long",
                        )
                    current["file"].write(message.chunk)
                    current["hash"].update(message.chunk)
                    continue
                raise InvalidInput("empty SubmitRequest message", reason="empty_message")
            await finish_current()
            if header is None:
                raise InvalidInput("no header was sent", reason="missing_header")
            seal = self.service.config.seals[header.seal_id]
            result = await self.service.submit(
                principal,
                seal_id=header.seal_id,
                reason=header.reason,
                category=header.category,
                placement=convert.placement_from_pb(header.placement, seal.size_mm),
                uploads=uploads,
                upload_dir=upload_dir,
                client_request_key=header.client_request_key,
            )
            info.request_id = result.request_id
            return convert.request_to_pb(result)
        finally:
            if current is not None and not current["file"].closed:
                current["file"].close()
            shutil.rmtree(upload_dir, ignore_errors=True)

    @rpc
    async def GetRequest(
        self,
        principal: Principal,
        info: CallInfo,
        request: requests_pb2.GetRequestRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> requests_pb2.SealRequest:
        info.request_id = request.request_id
        return convert.request_to_pb(await self.service.get(principal, request.request_id))

    @rpc
    async def ListRequests(
        self,
        principal: Principal,
        info: CallInfo,
        request: requests_pb2.ListRequestsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> requests_pb2.ListRequestsResponse:

        page_size = min(request.page_size or 100, 1000)
        after = None
        if request.page_token:
            created, _, rid = request.page_token.partition("|")
            if not rid:
                raise InvalidInput(
                    "bad page_token; pass the next_page_token you got", reason="bad_page_token"
                )
            after = (created, rid)
        states = [convert.PB_TO_STATE[s] for s in request.states if s in convert.PB_TO_STATE]
        found: list[Any] = []
        last = after
        while len(found) < page_size:
            batch = await self.service.store.list_requests(
                states=states,
                seal_id=request.seal_id,
                requester=request.requester,
                after=last,
                limit=page_size,
            )
            if not batch:
                last = None
                break
            for item in batch:
                last = (item.created_at.isoformat(), item.request_id)
                if lifecycle.can_view(principal, item):
                    found.append(item)
                    if len(found) == page_size:
                        break
            if len(batch) < page_size and len(found) < page_size:
                last = None
                break
        token = f"{last[0]}|{last[1]}" if last and len(found) == page_size else ""
        return requests_pb2.ListRequestsResponse(
            requests=[convert.request_to_pb(r) for r in found], next_page_token=token
        )

    @stream_rpc
    async def WatchRequests(
        self,
        principal: Principal,
        info: CallInfo,
        request: requests_pb2.WatchRequestsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[requests_pb2.RequestEvent]:

        def wanted(item: Any) -> bool:
            return (
                lifecycle.can_view(principal, item)
                and (not request.request_id or item.request_id == request.request_id)
                and (not request.seal_id or item.seal_id == request.seal_id)
            )

        async with self.service.request_events.subscribe() as queue:
            if request.request_id:
                current = await self.service.get(principal, request.request_id)
                yield requests_pb2.RequestEvent(request=convert.request_to_pb(current), event="snapshot")
            else:
                for item in await self.service.store.list_requests(seal_id=request.seal_id, limit=1000):
                    if wanted(item):
                        yield requests_pb2.RequestEvent(request=convert.request_to_pb(item), event="snapshot")
            while True:
                event, item = await queue.get()
                if wanted(item):
                    yield requests_pb2.RequestEvent(request=convert.request_to_pb(item), event=event)

    @rpc
    async def ApproveRequest(
        self,
        principal: Principal,
        info: CallInfo,
        request: requests_pb2.ApproveRequestRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> requests_pb2.SealRequest:
        info.request_id = request.request_id
        try:
            signed = signed_approval(request, context)
        except SealError:
            # Who may approve is answered before the statement is examined: a requester or
            # an auditor hears PERMISSION_DENIED (or NOT_FOUND), not a remark about a
            # signature (R04, R05). approve() checks the same first inside its transaction,
            # so a good statement costs no extra read.
            lifecycle.require_eligible_approver(
                await self.service.get(principal, request.request_id), principal
            )
            raise
        result = await self.service.approve(
            principal,
            request.request_id,
            document_sha256=[h.lower() for h in request.document_sha256],
            approval_digest=request.approval_digest.lower(),
            comment=request.comment,
            certificate_sha256=info.fingerprint,
            signed=signed,
        )
        info.seal_id = result.seal_id
        return convert.request_to_pb(result)

    @rpc
    async def WithdrawApproval(
        self,
        principal: Principal,
        info: CallInfo,
        request: requests_pb2.WithdrawApprovalRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> requests_pb2.SealRequest:
        info.request_id = request.request_id
        return convert.request_to_pb(await self.service.withdraw(principal, request.request_id))

    @rpc
    async def RejectRequest(
        self,
        principal: Principal,
        info: CallInfo,
        request: requests_pb2.RejectRequestRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> requests_pb2.SealRequest:
        info.request_id = request.request_id
        return convert.request_to_pb(
            await self.service.reject(principal, request.request_id, request.comment)
        )

    @rpc
    async def CancelRequest(
        self,
        principal: Principal,
        info: CallInfo,
        request: requests_pb2.CancelRequestRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> requests_pb2.SealRequest:
        info.request_id = request.request_id
        return convert.request_to_pb(
            await self.service.cancel(principal, request.request_id, request.comment)
        )

    @stream_rpc
    async def DownloadDocument(
        self,
        principal: Principal,
        info: CallInfo,
        request: requests_pb2.DownloadDocumentRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[requests_pb2.DocumentChunk]:
        info.request_id = request.request_id
        sealed = request.variant != requests_pb2.DOCUMENT_VARIANT_ORIGINAL
        req, doc, path = await self.service.document_path(
            principal, request.request_id, request.document_index, sealed=sealed
        )
        info.seal_id = req.seal_id
        size, sha = (doc.sealed_size, doc.sealed_sha256) if sealed else (doc.size, doc.sha256)
        first = requests_pb2.DocumentInfo(
            index=doc.index,
            name=doc.name,
            size=size,
            sha256=sha,
            sealed_sha256=doc.sealed_sha256,
            sealed_size=doc.sealed_size,
        )
        loop = asyncio.get_running_loop()
        with path.open("rb") as f:
            chunk = await loop.run_in_executor(None, f.read, CHUNK_SIZE)
            yield requests_pb2.DocumentChunk(info=first, data=chunk)
            # A buffered read of a regular file is short only at its end: no extra read
            # (and thread hop) to learn that a small document is done.
            while len(chunk) == CHUNK_SIZE:
                chunk = await loop.run_in_executor(None, f.read, CHUNK_SIZE)
                if not chunk:
                    break
                yield requests_pb2.DocumentChunk(data=chunk)

    @stream_rpc
    async def PreviewRequest(
        self,
        principal: Principal,
        info: CallInfo,
        request: requests_pb2.PreviewRequestRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[requests_pb2.PreviewPage]:
        info.request_id = request.request_id
        req, pages = await self.previews.render(
            principal, request.request_id, request.document_index, request.dpi
        )
        info.seal_id = req.seal_id
        for page in pages:
            yield requests_pb2.PreviewPage(page=page.page, png=page.png)

    @rpc
    async def GetEvidence(
        self,
        principal: Principal,
        info: CallInfo,
        request: requests_pb2.GetEvidenceRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> requests_pb2.EvidencePackage:
        info.request_id = request.request_id
        if self.audit_ops is None:
            raise _unimplemented("GetEvidence without the audit key")
        data = await export_evidence(
            self.service.store, self.service.config, self.audit_ops, principal, request.request_id
        )
        return requests_pb2.EvidencePackage(json=data)


class TokenServicer(tokens_pb2_grpc.TokenServiceServicer):
    def __init__(self, service: SealService) -> None:
        self.service = service

    def _status(self, state: TokenState) -> tokens_pb2.TokenStatus:
        ready, why = self.service.readiness(state.seal_id)
        status = convert.token_to_pb(state, ready, why)
        status.initial_pin_changed = self.service.custody.initial_pin_changed(state.seal_id)
        return status

    def _visible(self, principal: Principal, seal_filter: str) -> list[str]:
        if seal_filter:
            self.service.seal(seal_filter)
            if seal_filter not in principal.seal_ids:
                raise PermissionDenied(f"you have no role on seal {seal_filter}", reason="not_visible")
            return [seal_filter]
        return sorted(s for s in self.service.config.seals if s in principal.seal_ids)

    @rpc
    async def GetTokenStatus(
        self,
        principal: Principal,
        info: CallInfo,
        request: tokens_pb2.GetTokenStatusRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> tokens_pb2.GetTokenStatusResponse:
        seal_ids = self._visible(principal, request.seal_id)
        await self.service.tokens.refresh()
        return tokens_pb2.GetTokenStatusResponse(
            tokens=[self._status(self.service.tokens.state(s)) for s in seal_ids]
        )

    @stream_rpc
    async def WatchTokens(
        self,
        principal: Principal,
        info: CallInfo,
        request: tokens_pb2.WatchTokensRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[tokens_pb2.TokenStatus]:
        seal_ids = set(self._visible(principal, request.seal_id))
        async with self.service.token_events.subscribe() as queue:
            for seal_id in sorted(seal_ids):
                yield self._status(self.service.tokens.state(seal_id))
            while True:
                state = await queue.get()
                if state.seal_id in seal_ids:
                    yield self._status(state)

    @rpc
    async def UnlockToken(
        self,
        principal: Principal,
        info: CallInfo,
        request: tokens_pb2.UnlockTokenRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> tokens_pb2.TokenStatus:
        info.seal_id = request.seal_id
        state = await self.service.unlock(principal, request.seal_id, request.pin)
        return self._status(state)

    @rpc
    async def LockToken(
        self,
        principal: Principal,
        info: CallInfo,
        request: tokens_pb2.LockTokenRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> tokens_pb2.TokenStatus:
        info.seal_id = request.seal_id
        return self._status(await self.service.lock(principal, request.seal_id))

    @rpc
    async def ChangePin(
        self,
        principal: Principal,
        info: CallInfo,
        request: tokens_pb2.ChangePinRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> tokens_pb2.TokenStatus:
        info.seal_id = request.seal_id
        self.service.seal(request.seal_id)
        await self.service.custody.change_pin(principal, request.seal_id, request.old_pin, request.new_pin)
        return self._status(self.service.tokens.state(request.seal_id))


class SealRegistryServicer(seals_pb2_grpc.SealRegistryServiceServicer):
    def __init__(self, service: SealService) -> None:
        self.service = service

    def _seal_pb(self, seal_id: str) -> seals_pb2.Seal:
        tokens = self.service.tokens
        der = tokens.certificate_der(seal_id)
        state = self.service.seal_states.get(seal_id) or SealState(seal_id)
        pb = convert.seal_to_pb(
            self.service.config.seals[seal_id],
            der,
            tokens.certificate_sha256(seal_id),
            effective_state(state, bool(der)),  # PENDING until a certificate is imported
        )
        pb.custodian = self.service.custody.custody(seal_id).custodian  # R07: who holds it
        return pb

    async def _lifecycle(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.SealLifecycleRequest,
        action: SealAction,
    ) -> seals_pb2.Seal:
        info.seal_id = request.seal_id
        outcome = await SealAdmin(self.service).act(
            principal,
            request.seal_id,
            action,
            comment=request.comment,
            proposal_id=request.proposal_id,
        )
        pb = self._seal_pb(request.seal_id)
        if not outcome.executed:
            pb.status_reason = (
                f"{action.value} proposed as {request.proposal_id} by {principal.name}; a "
                "second administrator must confirm it with the same proposal id"
            )
        return pb

    @rpc
    async def ListSeals(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.ListSealsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.ListSealsResponse:
        return seals_pb2.ListSealsResponse(
            seals=[self._seal_pb(s) for s in sorted(self.service.config.seals) if s in principal.seal_ids]
        )

    @rpc
    async def GetSeal(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.GetSealRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.Seal:
        info.seal_id = request.seal_id
        _require_role_on_seal(self.service, principal, request.seal_id)
        return self._seal_pb(request.seal_id)

    @rpc
    async def RenderSealImage(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.RenderSealImageRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.RenderSealImageResponse:
        info.seal_id = request.seal_id
        _require_role_on_seal(self.service, principal, request.seal_id)
        dpi = request.dpi or SEAL_IMAGE_DPI
        if not SEAL_IMAGE_MIN_DPI <= dpi <= SEAL_IMAGE_MAX_DPI:
            raise InvalidInput(
                f"seal image resolution {dpi} dpi is outside {SEAL_IMAGE_MIN_DPI}.."
                f"{SEAL_IMAGE_MAX_DPI}; ask for one in that range or 0 for {SEAL_IMAGE_DPI}",
                reason="bad_dpi",
            )
        loop = asyncio.get_running_loop()
        try:
            png = await loop.run_in_executor(None, self.service.seal_image, request.seal_id, dpi)
        except SigningError as ex:
            raise InvalidInput(str(ex), reason=ex.reason) from ex
        return seals_pb2.RenderSealImageResponse(png=png)

    @rpc
    async def CreateSealKey(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.CreateSealKeyRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.CreateSealKeyResponse:
        info.seal_id = request.seal_id
        created = await SealAdmin(self.service).create_key(principal, request.seal_id)
        return seals_pb2.CreateSealKeyResponse(seal_id=request.seal_id, csr_der=created.csr_der)

    @rpc
    async def ImportSealCertificate(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.ImportSealCertificateRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.Seal:
        info.seal_id = request.seal_id
        await SealAdmin(self.service).import_certificate(
            principal, request.seal_id, request.certificate_der, renew=False
        )
        return self._seal_pb(request.seal_id)

    @rpc
    async def ChangeSeal(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.ChangeSealRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.Seal:
        info.seal_id = request.seal_id
        self.service.seal(request.seal_id)
        require_admin(principal, request.seal_id)  # R04 before any check of the input
        admin = SealAdmin(self.service)
        if request.certificate_der:
            # Renewed certificate for the same key (and optionally a new name), history kept.
            await admin.import_certificate(
                principal,
                request.seal_id,
                request.certificate_der,
                renew=True,
                comment=request.comment,
                display_name=request.display_name.strip(),
            )
            return self._seal_pb(request.seal_id)
        if not request.display_name.strip():
            raise InvalidInput(
                "ChangeSeal needs a new display_name or a renewed certificate_der",
                reason="missing_display_name",
            )
        await admin.act(
            principal,
            request.seal_id,
            SealAction.CHANGE,
            comment=request.comment,
            display_name=request.display_name.strip(),
        )
        return self._seal_pb(request.seal_id)

    @rpc
    async def SuspendSeal(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.SealLifecycleRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.Seal:
        return await self._lifecycle(principal, info, request, SealAction.SUSPEND)

    @rpc
    async def ResumeSeal(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.SealLifecycleRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.Seal:
        return await self._lifecycle(principal, info, request, SealAction.RESUME)

    @rpc
    async def ReportSealLost(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.SealLifecycleRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.Seal:
        return await self._lifecycle(principal, info, request, SealAction.REPORT_LOST)

    @rpc
    async def DestroySeal(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.SealLifecycleRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.Seal:
        return await self._lifecycle(principal, info, request, SealAction.DESTROY)

    @rpc
    async def GetCustody(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.GetCustodyRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.Custody:
        info.seal_id = request.seal_id
        _require_role_on_seal(self.service, principal, request.seal_id)
        guard = self.service.custody
        return custody_convert.custody_to_pb(guard.custody(request.seal_id), guard.clock())

    @rpc
    async def ProposeCustodyChange(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.ProposeCustodyChangeRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.CustodyChange:
        info.seal_id = request.seal_id
        self.service.seal(request.seal_id)
        start, end = custody_convert.window_from_pb(request.window)
        change = await self.service.custody.propose(
            principal,
            request.seal_id,
            custody_convert.kind_from_pb(request.kind),
            request.to_principal,
            comment=request.comment,
            window_start=start,
            window_end=end,
        )
        return custody_convert.change_to_pb(change)

    @rpc
    async def ApproveCustodyChange(
        self,
        principal: Principal,
        info: CallInfo,
        request: seals_pb2.ApproveCustodyChangeRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> seals_pb2.CustodyChange:
        change = await self.service.custody.approve(principal, request.change_id)
        info.seal_id = change.seal_id
        return custody_convert.change_to_pb(change)


class VerifyServicer(verify_pb2_grpc.VerifyServiceServicer):
    def __init__(self, service: SealService) -> None:
        self.service = service

    @rpc
    async def VerifyDocument(
        self,
        principal: Principal,
        info: CallInfo,
        request_iterator: AsyncIterator[verify_pb2.VerifyDocumentChunk],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> verify_pb2.VerifyReport:

        limit = self.service.config.requests.max_document_bytes
        with tempfile.TemporaryDirectory(dir=self.service.store.incoming_dir) as tmp:
            path = Path(tmp) / "verify.pdf"
            digest = hashlib.sha256()
            size = 0
            with path.open("wb") as f:
                async for chunk in request_iterator:
                    size += len(chunk.data)
                    if size > limit:
                        raise LimitExceeded(
                            f"the document is over {limit} bytes (max_document_bytes)",
                            reason="document_too_large",
                        )
                    f.write(chunk.data)
                    digest.update(chunk.data)
            trust = self.service.config.trust
            # seal CA + the TSA/LTV roots (issue 6) so timestamps and DSS validate too
            roots = [p.read_bytes() for p in (trust.seal_ca, *trust.signing_roots)]
            loop = asyncio.get_running_loop()
            try:
                checks = await loop.run_in_executor(None, verify_pdf, path, roots)
            except SigningError as ex:
                raise InvalidInput(str(ex), reason=ex.reason) from ex
        certs = {self.service.tokens.certificate_sha256(s): s for s in self.service.config.seals}
        reports = [
            verify_pb2.SignatureReport(
                field_name=c.field_name,
                signer_subject=c.signer_subject,
                signer_certificate_sha256=c.signer_certificate_sha256,
                seal_id=certs.get(c.signer_certificate_sha256, ""),
                signing_time=convert.timestamp(c.signing_time),
                timestamp_time=convert.timestamp(c.timestamp_time),
                intact=c.intact,
                valid=c.valid,
                trusted=c.trusted,
                revocation=c.revocation,
                covers_whole_document=c.covers_whole_document,
                modification_level=c.modification_level,
                summary=c.summary,
                certification=c.certification,
                certification_level=CERTIFICATION_P.get(c.certification, 0),
            )
            for c in checks
        ]
        return verify_pb2.VerifyReport(
            signatures=reports,
            all_valid=bool(reports) and all(r.valid and r.trusted for r in reports),
            document_sha256=digest.hexdigest(),
        )


class AuditServicer(audit_pb2_grpc.AuditServiceServicer):
    def __init__(self, service: SealService, audit_ops: AuditOperations) -> None:
        self.service = service
        self.audit_ops = audit_ops

    @staticmethod
    def _require_auditor(principal: Principal) -> None:
        if not principal.roles & {Role.AUDITOR, Role.ADMIN}:
            raise PermissionDenied(
                "only auditors and admins may read the audit trail", reason="not_an_auditor"
            )

    @stream_rpc
    async def QueryAuditRecords(
        self,
        principal: Principal,
        info: CallInfo,
        request: audit_pb2.QueryAuditRecordsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[audit_pb2.AuditRecord]:
        self._require_auditor(principal)
        filters: dict[str, Any] = {
            "request_id": request.request_id or None,
            "seal_id": request.seal_id or None,
            "event": request.event or None,
            # uint64 on the wire, INTEGER (int64) in SQLite: anything past it matches nothing.
            "after_sequence": min(request.after_sequence, 2**63 - 1),
            "limit": request.limit or None,
        }
        if request.HasField("from_time"):
            filters["from_time"] = datetime_from_pb(request.from_time, "from_time")
        if request.HasField("to_time"):
            filters["to_time"] = datetime_from_pb(request.to_time, "to_time")
        records = await self.service.store.call(lambda: list(self.service.store.iter_audit_sync(**filters)))
        for r in records:
            yield audit_pb2.AuditRecord(
                sequence=r.sequence,
                host=r.host,
                principal=r.principal,
                role=r.role,
                event=r.event,
                seal_id=r.seal_id,
                request_id=r.request_id,
                document_name=r.document_name,
                document_sha256=r.document_sha256,
                reason=r.reason,
                outcome=r.outcome,
                details_json=canonical_details_json(r.details),
                previous_hash=r.previous_hash,
                record_hash=r.record_hash,
            )

    @rpc
    async def VerifyAuditChain(
        self,
        principal: Principal,
        info: CallInfo,
        request: audit_pb2.VerifyAuditChainRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> audit_pb2.VerifyAuditChainResponse:

        self._require_auditor(principal)
        result, _ = await self.audit_ops.verify()  # against the latest signed checkpoint
        return audit_pb2.VerifyAuditChainResponse(
            ok=result.ok,
            records_checked=result.records_checked,
            first_bad_sequence=result.first_bad_sequence or 0,
            problem=result.problem,
            head_hash=result.head_hash,
        )

    @rpc
    async def CreateCheckpoint(
        self,
        principal: Principal,
        info: CallInfo,
        request: audit_pb2.CreateCheckpointRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> audit_pb2.Checkpoint:
        self._require_auditor(principal)
        checkpoint = await self.audit_ops.checkpoint()
        return audit_pb2.Checkpoint(
            sequence=checkpoint.sequence,
            head_hash=checkpoint.head_hash,
            time=convert.timestamp(datetime.fromisoformat(checkpoint.created_at)),
            signature=checkpoint.signature,
            certificate_der=checkpoint.certificate_der,
            timestamp_token=checkpoint.timestamp_token,
        )

    @stream_rpc
    async def GetUsageReport(
        self,
        principal: Principal,
        info: CallInfo,
        request: audit_pb2.GetUsageReportRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[audit_pb2.ReportChunk]:
        self._require_auditor(principal)
        if not (request.HasField("from_time") and request.HasField("to_time")):
            raise InvalidInput(
                "a usage report needs from_time and to_time (--from/--to)", reason="report_period_missing"
            )
        formats = {
            audit_pb2.REPORT_FORMAT_UNSPECIFIED: "json",
            audit_pb2.REPORT_FORMAT_JSON: "json",
            audit_pb2.REPORT_FORMAT_CSV: "csv",
            audit_pb2.REPORT_FORMAT_PDF: "pdf",
        }
        data = await self.audit_ops.report(
            datetime_from_pb(request.from_time, "from_time"),
            datetime_from_pb(request.to_time, "to_time"),
            request.seal_id,
            formats.get(request.format, "unknown"),
        )
        for start in range(0, len(data), 256 * 1024):
            yield audit_pb2.ReportChunk(data=data[start : start + 256 * 1024])

    @rpc
    async def CreateBackup(
        self,
        principal: Principal,
        info: CallInfo,
        request: audit_pb2.CreateBackupRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> audit_pb2.CreateBackupResponse:
        if Role.ADMIN not in principal.roles:
            raise PermissionDenied("only admins may create backups", reason="not_an_admin")
        manifest = await self.audit_ops.backup(Path(request.destination))
        return audit_pb2.CreateBackupResponse(
            path=request.destination,
            sha256=manifest.sha256,
            head_sequence=manifest.head_sequence,
            head_hash=manifest.head_hash,
        )
