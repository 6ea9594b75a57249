"""One place where a change is recorded: store write + audit record + watch event + log.

Every request transition goes through :meth:`Recorder.commit`: the new request and its
audit records in ONE transaction; the watch event and the log line only after the commit,
so nobody is told about a change that did not happen.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from seald.domain.audit import AuditEvent
from seald.domain.errors import ServiceUnavailable
from seald.domain.model import Document, Principal, Role, SealRequest
from seald.runtime.logs import get_logger
from seald.store.database import Store, Transaction

log = get_logger("seald")


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


class Recorder:
    """Commits request transitions with their audit records; records other audit events."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.request_events = Broadcaster()
        # Issue 17: the webhook deliverer's wake-up (its events are committed with the change).
        self.after_commit: Callable[[], None] = lambda: None

    async def commit(self, fn: Callable[[Transaction], SealRequest], event: str) -> SealRequest:
        """Run ``fn`` in one write transaction, then publish the new request and log it."""
        request, records = await self._store.write(fn)
        self.request_events.publish((event, request))
        self.after_commit()
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
            await self._store.write(lambda tx: tx.audit(event))
        except ServiceUnavailable:
            log.error("audit.write_failed", audit_event=event.event)
            raise


def request_event(
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
    """The audit record of a request transition (one per document where ``doc`` is given)."""
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
