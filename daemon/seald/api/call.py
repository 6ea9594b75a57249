"""The one call wrapper every RPC goes through, unary and streaming alike.

It authenticates the peer (api/auth.py), admits the call (per-client rate limit, and a
stream slot for server streams: seald.service.admission), maps a SealError through the
ONE status table (api/errors.py), audits refusals of identity and access, never lets a
stack trace reach a client, and writes one canonical ``rpc`` log line per call.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc

from seald.api.auth import acting_principal, authenticate
from seald.api.errors import REASON_METADATA_KEY, Unimplemented, status_for
from seald.domain.audit import AuditEvent
from seald.domain.errors import (
    NotVisible,
    PermissionDenied,
    SealError,
    ServiceUnavailable,
    Unauthenticated,
)
from seald.domain.limits import StreamSlot
from seald.domain.model import Principal
from seald.runtime.logs import get_logger
from seald.runtime.metrics import SealMetrics
from seald.service.admission import Admission
from seald.service.recorder import Recorder
from seald.service.settings import LiveConfig

log = get_logger("seald.api")

Context = grpc.aio.ServicerContext[Any, Any]


class CallInfo:
    """What the canonical log line says about one call."""

    def __init__(self) -> None:
        self.principal = ""
        self.request_id = ""
        self.seal_id = ""
        self.fingerprint = ""


@dataclass(frozen=True)
class Gate:
    """What the wrapper needs: who is listed (config), the limits, the audit trail, counters."""

    live: LiveConfig
    admission: Admission
    recorder: Recorder
    metrics: SealMetrics
    # Issue 18: the WebAuthn registry, which knows the web sessions a relay may act for.
    web_sessions: Any = None


class Servicer:
    """Base of the five servicers: the wrapper finds the gate here."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate


def unimplemented(what: str) -> SealError:
    return Unimplemented(f"{what} is not available in this version of seald yet")


class _Call:
    """One call's bookkeeping, shared by the unary and the streaming wrapper."""

    def __init__(self, gate: Gate, name: str, context: Context) -> None:
        self.gate = gate
        self.name = name
        self.context = context
        self.info = CallInfo()
        self.started = time.perf_counter()
        self.slot: StreamSlot | None = None

    def admit(self, *, stream: bool) -> Principal:
        principal, self.info.fingerprint = authenticate(self.gate.live.current, self.context)
        # Issue 18: a relay's call acts for the person of its web session (api/auth.py).
        principal = acting_principal(self.gate.web_sessions, principal, self.context, self.name)
        self.info.principal = principal.name
        self.gate.admission.admit_call(principal)  # per-client rate limit (issue 8)
        if stream:
            self.slot = self._hold_stream_slot(principal)
        return principal

    def _hold_stream_slot(self, principal: Principal) -> StreamSlot:
        """Take one of the principal's stream slots (issue 8) for as long as the RPC lives.

        The wrapper's ``finally`` releases it when the generator ends; the done callback also
        covers an RPC that ends while the generator is parked at a ``yield`` (client cancel,
        deadline, shutdown), which is finalized only later. Releasing twice is a no-op.
        """
        slot = self.gate.admission.open_stream(principal)
        # grpc-stubs types the callback as a class, not a Callable; grpc calls it with the context.
        self.context.add_done_callback(lambda _context: slot.release())  # type: ignore[arg-type]
        return slot

    def release(self) -> None:
        if self.slot is not None:
            self.slot.release()

    def log(self, code: grpc.StatusCode, reason: str) -> None:
        info = self.info
        log.info(
            "rpc",
            method=self.name,
            principal=info.principal,
            request_id=info.request_id or None,
            seal_id=info.seal_id or None,
            code=code.name,
            reason=reason or None,
            latency_ms=round((time.perf_counter() - self.started) * 1000, 2),
        )

    async def refuse(self, error: SealError) -> None:
        """Audit (identity/access), count, log and abort with the mapped status."""
        self.gate.metrics.refused(error.reason)
        # NotVisible answers like an unknown id, but the ledger still records the refusal.
        if isinstance(error, Unauthenticated | PermissionDenied | NotVisible):
            event = "auth.refused" if isinstance(error, Unauthenticated) else "access.denied"
            try:
                await self.gate.recorder.audit(
                    AuditEvent(
                        event=event,
                        principal=self.info.principal,
                        seal_id=self.info.seal_id,
                        request_id=self.info.request_id,
                        outcome="refused",
                        reason="not_visible" if isinstance(error, NotVisible) else error.reason,
                        details={"method": self.name},
                    )
                )
            except ServiceUnavailable:
                log.error("audit.write_failed", audit_event=event)
        code = status_for(error)
        self.log(code, error.reason)
        await self._abort(code, error.message, error.reason)

    async def internal(self) -> None:
        """An unexpected exception: the traceback to the log, a plain message to the client."""
        log.exception("rpc.internal_error", method=self.name, principal=self.info.principal)
        self.log(grpc.StatusCode.INTERNAL, "internal")
        await self._abort(
            grpc.StatusCode.INTERNAL,
            f"internal error in {self.name}; nothing was changed. The operator can find it in the seald log",
            "internal",
        )

    async def _abort(self, code: grpc.StatusCode, message: str, reason: str) -> None:
        self.context.set_trailing_metadata(((REASON_METADATA_KEY, reason),))
        await self.context.abort(code, message)


async def _guarded(
    self: Servicer,
    name: str,
    request: Any,
    context: Context,
    body: Callable[[Principal, CallInfo], AsyncIterator[Any]],
    *,
    stream: bool,
) -> AsyncIterator[Any]:
    """The one wrapper: admit, run ``body``, map what it raises; unary RPCs yield once."""
    call = _Call(self.gate, name, context)
    error: SealError | None = None
    try:
        principal = call.admit(stream=stream)
        async for item in body(principal, call.info):
            yield item
    except SealError as ex:
        error = ex
    except asyncio.CancelledError:
        call.log(grpc.StatusCode.CANCELLED, "client_cancelled")
        raise
    except Exception:
        await call.internal()
        return
    finally:
        call.release()
    if error is not None:
        await call.refuse(error)
        return
    call.log(grpc.StatusCode.OK, "")


UnaryMethod = Callable[[Any, Principal, CallInfo, Any, Context], Awaitable[Any]]
StreamMethod = Callable[[Any, Principal, CallInfo, Any, Context], AsyncIterator[Any]]


def rpc(method: UnaryMethod) -> Callable[[Any, Any, Context], Awaitable[Any]]:
    """A unary (or client-streaming) RPC through the one wrapper."""

    @functools.wraps(method)
    async def wrapper(self: Servicer, request: Any, context: Context) -> Any:
        async def body(principal: Principal, info: CallInfo) -> AsyncIterator[Any]:
            yield await method(self, principal, info, request, context)

        # Run the wrapper to its end (the OK log line comes after the one item).
        results = [r async for r in _guarded(self, method.__name__, request, context, body, stream=False)]
        if not results:
            raise AssertionError("unreachable: a refused call is aborted")  # abort() raises
        return results[0]

    return wrapper


def stream_rpc(method: StreamMethod) -> Callable[[Any, Any, Context], AsyncIterator[Any]]:
    """A server-streaming RPC through the one wrapper (it also holds a stream slot)."""

    @functools.wraps(method)
    async def wrapper(self: Servicer, request: Any, context: Context) -> AsyncIterator[Any]:
        def body(principal: Principal, info: CallInfo) -> AsyncIterator[Any]:
            return method(self, principal, info, request, context)

        async for item in _guarded(self, method.__name__, request, context, body, stream=True):
            yield item

    return wrapper
