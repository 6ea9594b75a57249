"""AuditService: read and verify the audit chain, checkpoints, usage reports, backups."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc

from sealapi.v1 import audit_pb2, audit_pb2_grpc
from seald.api import convert
from seald.api.call import CallInfo, Gate, Servicer, rpc, stream_rpc
from seald.api.times import datetime_from_pb
from seald.audit.archive import ArchiveRenewer
from seald.audit.operations import AuditOperations
from seald.domain import access
from seald.domain.audit import canonical_details_json, parse_time
from seald.domain.errors import InvalidInput
from seald.domain.model import Principal
from seald.store.database import Store


class AuditServicer(Servicer, audit_pb2_grpc.AuditServiceServicer):
    def __init__(
        self, gate: Gate, *, store: Store, audit_ops: AuditOperations, archive: ArchiveRenewer
    ) -> None:
        super().__init__(gate)
        self.store = store
        self.audit_ops = audit_ops
        self.archive = archive

    @stream_rpc
    async def QueryAuditRecords(
        self,
        principal: Principal,
        info: CallInfo,
        request: audit_pb2.QueryAuditRecordsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[audit_pb2.AuditRecord]:
        access.require_auditor(principal)
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
        records = await self.store.audit_records(**filters)
        for r in records:
            yield audit_pb2.AuditRecord(
                sequence=r.sequence,
                # The hash covers the time: an auditor must see it and can recompute (R10).
                time=convert.timestamp(parse_time(r.time)),
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

        access.require_auditor(principal)
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
        access.require_auditor(principal)
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
        access.require_auditor(principal)
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
        access.require_admin(principal)
        manifest = await self.audit_ops.backup(Path(request.destination))
        return audit_pb2.CreateBackupResponse(
            path=request.destination,
            sha256=manifest.sha256,
            head_sequence=manifest.head_sequence,
            head_hash=manifest.head_hash,
            sizes=[
                audit_pb2.BackupKindSize(kind=kind, files=count, bytes=total)
                for kind, (count, total) in manifest.sizes.items()
            ],
            files_directory=str(Path(request.destination).with_name(manifest.files_directory)),
        )

    @stream_rpc
    async def RenewArchives(
        self,
        principal: Principal,
        info: CallInfo,
        request: audit_pb2.RenewArchivesRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[audit_pb2.ArchiveRenewal]:
        access.require_archive_operator(principal)
        async for o in self.archive.run(principal, dry_run=request.dry_run):
            yield audit_pb2.ArchiveRenewal(
                request_id=o.request_id,
                seal_id=o.seal_id,
                document_index=o.document_index,
                document_name=o.document_name,
                status=o.status.value,
                reason=o.reason,
                detail=o.detail,
                sha256=o.sha256,
                new_sha256=o.new_sha256,
                timestamp_time=convert.timestamp(o.timestamp_time),
                certificate_expires=convert.timestamp(o.expires_at),
            )
