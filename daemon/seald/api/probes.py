"""Health and reflection for the right callers (issue 14 item 7).

The TLS layer already admits only certificates from the client CA. The overall health
service ``""`` stays open to any of them: load balancers and systemd probes carry a
client-CA certificate that need not be on the allow-list, and "seald is up and its audit
trail writable" tells them nothing about any seal. Per-seal health ``seal/<id>`` tells
whether that seal could sign right now, and reflection lists every service: those answer
only allow-listed principals (unlisted: UNAUTHENTICATED ``certificate_not_listed``), and
per-seal health only to principals with a role on that seal (PERMISSION_DENIED
``not_visible``), like GetTokenStatus. Refusals are audited as for every other RPC.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from typing import Any

import grpc
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import _async as reflection_aio
from grpc_reflection.v1alpha import reflection_pb2

from seald.api.auth import authenticate
from seald.api.call import Gate
from seald.api.errors import REASON_METADATA_KEY, status_for
from seald.domain.access import require_role_on_seal
from seald.domain.audit import AuditEvent
from seald.domain.errors import SealError, ServiceUnavailable, Unauthenticated
from seald.runtime.logs import get_logger

log = get_logger("seald.api.probes")
SEAL_PREFIX = "seal/"


async def _admit(
    gate: Gate, context: grpc.aio.ServicerContext[Any, Any], method: str, seal_id: str | None
) -> None:
    """Abort the call unless the caller is listed (and, for a seal, has a role on it)."""
    principal_name = ""
    try:
        principal, _ = authenticate(gate.live.current, context)
        principal_name = principal.name
        if seal_id is not None:
            require_role_on_seal(principal, seal_id)
    except SealError as error:
        gate.metrics.refused(error.reason)
        event = "auth.refused" if isinstance(error, Unauthenticated) else "access.denied"
        try:
            await gate.recorder.audit(
                AuditEvent(
                    event=event,
                    principal=principal_name,
                    seal_id=seal_id or "",
                    outcome="refused",
                    reason=error.reason,
                    details={"method": method},
                )
            )
        except ServiceUnavailable:
            log.error("audit.write_failed", audit_event=event)
        code = status_for(error)
        log.info("rpc", method=method, principal=principal_name, code=code.name, reason=error.reason)
        context.set_trailing_metadata(((REASON_METADATA_KEY, error.reason),))
        await context.abort(status_for(error), error.message)


def _seal_of(service_name: str) -> str | None:
    """None for the overall service (open to any client-CA certificate)."""
    if not service_name:
        return None
    return service_name.removeprefix(SEAL_PREFIX)


class GuardedHealth(health_aio.HealthServicer):  # type: ignore[misc]
    """grpc's asyncio health servicer; per-seal entries only for the seal's principals."""

    def __init__(self, gate: Gate) -> None:
        super().__init__()
        self._gate = gate

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> health_pb2.HealthCheckResponse:
        seal_id = _seal_of(request.service)
        if seal_id is not None:
            await _admit(self._gate, context, "Health.Check", seal_id)
        return await super().Check(request, context)

    async def Watch(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        seal_id = _seal_of(request.service)
        if seal_id is not None:
            await _admit(self._gate, context, "Health.Watch", seal_id)
        await super().Watch(request, context)


class GuardedReflection(reflection_aio.ReflectionServicer):  # type: ignore[misc]
    """Server reflection for allow-listed principals only."""

    def __init__(self, gate: Gate, service_names: Sequence[str]) -> None:
        super().__init__(service_names)
        self._gate = gate

    async def ServerReflectionInfo(
        self,
        request_iterator: AsyncIterable[reflection_pb2.ServerReflectionRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[reflection_pb2.ServerReflectionResponse]:
        await _admit(self._gate, context, "ServerReflectionInfo", None)
        async for answer in super().ServerReflectionInfo(request_iterator, context):
            yield answer
