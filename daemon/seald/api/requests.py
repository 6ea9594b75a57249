"""SealRequestService: submit (streamed upload), read, watch, approve, reject, download.

Messages to domain calls and back (api/convert.py); who may do what is asked of
seald.domain.access and the request rules of seald.service.requests.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO

import grpc

from sealapi.v1 import requests_pb2, requests_pb2_grpc
from seald.api import convert
from seald.api.call import CallInfo, Gate, Servicer, rpc, stream_rpc, unimplemented
from seald.api.signed_approvals import signed_approval
from seald.audit.evidence import export_evidence
from seald.audit.operations import AuditOperations
from seald.config import RequestsConfig
from seald.domain import access, lifecycle
from seald.domain.errors import InvalidInput, LimitExceeded, PreconditionFailed, SealError
from seald.domain.model import Document, Principal, SealRequest
from seald.service.catalog import SealCatalog
from seald.service.previews import Previews
from seald.service.requests import RequestService, UploadedDocument
from seald.store.database import Store

CHUNK_SIZE = 256 * 1024


def _sync_and_close(file: Any) -> None:
    file.flush()
    os.fsync(file.fileno())
    file.close()


class _Upload:
    """The documents of one SubmitRequest stream, written to ``directory`` chunk by chunk
    (hashed and counted as they arrive, fsync'd off the loop), checked against what each
    document_start announced."""

    def __init__(self, directory: Path, limits: RequestsConfig) -> None:
        self.directory = directory
        self.documents: list[UploadedDocument] = []
        self._limits = limits
        self._start: requests_pb2.DocumentStart | None = None
        self._path = directory
        self._file: BinaryIO | None = None
        self._size = 0
        self._hash = hashlib.sha256()

    async def start(self, start: requests_pb2.DocumentStart) -> None:
        await self.finish_current()
        convert.document_name_in(start.name)  # a base name, before the upload
        limits = self._limits
        if len(self.documents) >= limits.max_documents_per_request:
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
        self._path = self.directory / f"{len(self.documents):04d}.part"
        self._start, self._file = start, self._path.open("wb")
        self._size, self._hash = 0, hashlib.sha256()

    def write(self, chunk: bytes) -> None:
        if self._start is None or self._file is None:
            raise InvalidInput(
                "document data arrived before a document_start",
                reason="missing_document_start",
            )
        self._size += len(chunk)
        if self._size > self._start.size:
            raise InvalidInput(
                f"document {self._start.name!r} is longer than its announced size",
                reason="upload_too_long",
            )
        self._file.write(chunk)
        self._hash.update(chunk)

    async def finish_current(self) -> None:
        start, file = self._start, self._file
        if start is None or file is None:
            return
        # fsync off the event loop: other clients' calls go on meanwhile.
        await asyncio.get_running_loop().run_in_executor(None, _sync_and_close, file)
        size, sha = self._size, self._hash.hexdigest()
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
        marks = convert.marks_from_pb(start.marks, where=f"document {len(self.documents)} ({start.name}): ")
        self.documents.append(UploadedDocument(start.name, size, sha, self._path, marks or None))
        self._start, self._file = None, None

    def close(self) -> None:
        """Whatever happened: the open file closed, the upload directory gone (a stored
        request's documents were moved out of it already)."""
        if self._file is not None and not self._file.closed:
            self._file.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def _document_info(doc: Document, sealed: bool) -> requests_pb2.DocumentInfo:
    """A download's first frame: size and sha256 are those of the variant sent."""
    size, sha = (doc.sealed_size, doc.sealed_sha256) if sealed else (doc.size, doc.sha256)
    return requests_pb2.DocumentInfo(
        index=doc.index,
        name=doc.name,
        size=size,
        sha256=sha,
        sealed_sha256=doc.sealed_sha256,
        sealed_size=doc.sealed_size,
    )


class SealRequestServicer(Servicer, requests_pb2_grpc.SealRequestServiceServicer):
    def __init__(
        self,
        gate: Gate,
        *,
        requests: RequestService,
        catalog: SealCatalog,
        store: Store,
        previews: Previews,
        audit_ops: AuditOperations | None = None,
    ) -> None:
        super().__init__(gate)
        self.requests = requests
        self.catalog = catalog
        self.store = store
        self.previews = previews
        self.audit_ops = audit_ops  # the audit key signs on-demand checkpoints for GetEvidence

    def _pb(self, request: SealRequest) -> requests_pb2.SealRequest:
        """With the chain standing (issue 17) under the seal's policy now."""
        return convert.request_to_pb(request, self.gate.live.current.policy_for_request(request))

    @rpc
    async def SubmitRequest(
        self,
        principal: Principal,
        info: CallInfo,
        request_iterator: AsyncIterator[requests_pb2.SubmitRequestMessage],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> requests_pb2.SealRequest:
        upload = _Upload(self.requests.new_upload_dir(), self.gate.live.current.requests)
        try:
            header: requests_pb2.SubmitRequestHeader | None = None
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
                    marks = convert.marks_from_pb(header.marks)
                    # A job names its seals in its marks (issue 16), every one checked
                    # here; a manifest's (no header seal, marks per document) after the
                    # upload, by submit_job.
                    named = [m.seal_id for m in marks] or [header.seal_id] * bool(header.seal_id)
                    info.seal_id = named[0] if named else ""
                    for seal_id in named:
                        self.catalog.seal(seal_id)
                        access.require_requester(principal, seal_id)
                    convert.submit_header_in(header)  # one text policy (issue 14)
                    # Refuse before the upload, not after it (issue 8).
                    await self.gate.admission.check_open_requests(principal, header.client_request_key)
                elif kind == "header":
                    raise InvalidInput("the header was sent twice", reason="duplicate_header")
                elif kind == "document_start":
                    await upload.start(message.document_start)
                elif kind == "chunk":
                    upload.write(message.chunk)
                else:
                    raise InvalidInput("empty SubmitRequest message", reason="empty_message")
            await upload.finish_current()
            if header is None:
                raise InvalidInput("no header was sent", reason="missing_header")
            if marks or any(u.marks is not None for u in upload.documents):
                job = await self.requests.submit_job(
                    principal,
                    reason=header.reason,
                    category=header.category,
                    marks=marks,
                    uploads=upload.documents,
                    upload_dir=upload.directory,
                    client_request_key=header.client_request_key,
                    amount=convert.amount_from_pb(header.amount, header.amount_currency),
                )
                info.request_id = job.request_id
                return self._pb(job)
            seal = self.gate.live.current.seals[header.seal_id]
            result = await self.requests.submit(
                principal,
                seal_id=header.seal_id,
                reason=header.reason,
                category=header.category,
                placement=convert.placement_from_pb(header.placement, seal.size_mm),
                uploads=upload.documents,
                upload_dir=upload.directory,
                client_request_key=header.client_request_key,
                amount=convert.amount_from_pb(header.amount, header.amount_currency),
            )
            info.request_id = result.request_id
            return self._pb(result)
        finally:
            upload.close()

    @rpc
    async def GetRequest(
        self,
        principal: Principal,
        info: CallInfo,
        request: requests_pb2.GetRequestRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> requests_pb2.SealRequest:
        info.request_id = request.request_id
        return self._pb(await self.requests.get(principal, request.request_id))

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
            batch = await self.store.list_requests(
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
                if access.can_view(principal, item):
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
        info.request_id = request.request_id

        def wanted(item: Any) -> bool:
            return access.watch_wants(
                principal, item, request_id=request.request_id, seal_id=request.seal_id
            )

        async with self.gate.recorder.request_events.subscribe() as queue:
            if request.request_id:
                current = await self.requests.get(principal, request.request_id)
                yield requests_pb2.RequestEvent(request=convert.request_to_pb(current), event="snapshot")
            else:
                for item in await self.store.list_requests(seal_id=request.seal_id, limit=1000):
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
                await self.requests.get(principal, request.request_id), principal
            )
            raise
        result = await self.requests.approve(
            principal,
            request.request_id,
            document_sha256=[h.lower() for h in request.document_sha256],
            approval_digest=request.approval_digest.lower(),
            comment=convert.text_in("comment", request.comment),
            certificate_sha256=info.fingerprint,
            signed=signed,
            on_behalf_of=request.on_behalf_of,
        )
        info.seal_id = result.seal_id
        return self._pb(result)

    @rpc
    async def WithdrawApproval(
        self,
        principal: Principal,
        info: CallInfo,
        request: requests_pb2.WithdrawApprovalRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> requests_pb2.SealRequest:
        info.request_id = request.request_id
        convert.text_in("comment", request.comment)  # not kept, but never let through
        return convert.request_to_pb(await self.requests.withdraw(principal, request.request_id))

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
            await self.requests.reject(
                principal, request.request_id, convert.text_in("comment", request.comment)
            )
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
            await self.requests.cancel(
                principal, request.request_id, convert.text_in("comment", request.comment)
            )
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
        req, doc, path = await self.requests.document_path(
            principal, request.request_id, request.document_index, sealed=sealed
        )
        info.seal_id = req.seal_id
        first = _document_info(doc, sealed)
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
    async def DownloadAllDocuments(
        self,
        principal: Principal,
        info: CallInfo,
        request: requests_pb2.DownloadAllDocumentsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[requests_pb2.DocumentChunk]:
        """Every document in one stream (issue 20): the request is read and the caller's
        access decided once, not once per document. One chunk in memory at a time: each
        ``yield`` waits until gRPC has taken the frame (HTTP/2 flow control)."""
        info.request_id = request.request_id
        sealed = request.variant != requests_pb2.DOCUMENT_VARIANT_ORIGINAL
        req, files = await self.requests.document_paths(principal, request.request_id, sealed=sealed)
        info.seal_id = req.seal_id
        loop = asyncio.get_running_loop()
        for doc, path in files:
            first = _document_info(doc, sealed)
            try:
                f = await loop.run_in_executor(None, path.open, "rb")
            except FileNotFoundError:
                raise PreconditionFailed(
                    f"document {doc.index} ({doc.name!r}) of request {req.request_id} is no longer "
                    "stored (the request changed during the download); ask for its state and retry",
                    reason="document_gone",
                ) from None
            with f:
                chunk = await loop.run_in_executor(None, f.read, CHUNK_SIZE)
                yield requests_pb2.DocumentChunk(info=first, data=chunk)
                while len(chunk) == CHUNK_SIZE:  # short read = end of a regular file
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
        req, total, pages = await self.previews.render(
            principal,
            request.request_id,
            request.document_index,
            request.dpi,
            first_page=request.first_page,
            page_count=request.page_count,
        )
        info.seal_id = req.seal_id
        async for page in pages:
            yield requests_pb2.PreviewPage(page=page.page, png=page.png, page_total=total)

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
            raise unimplemented("GetEvidence without the audit key")
        data = await export_evidence(
            self.store, self.gate.live.current, self.audit_ops, principal, request.request_id
        )
        return requests_pb2.EvidencePackage(json=data)
