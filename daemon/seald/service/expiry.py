"""Requests past their time become EXPIRED (run periodically, and by the signer on refusal)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import datetime

from seald.domain import lifecycle
from seald.domain.audit import AuditEvent
from seald.domain.errors import PreconditionFailed
from seald.domain.model import RequestState, SealRequest
from seald.service.recorder import Recorder
from seald.store.database import Store, Transaction


class Expiry:
    def __init__(self, store: Store, recorder: Recorder, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._recorder = recorder
        self._clock = clock

    async def expire_due(self) -> int:
        """Expire PENDING/APPROVED requests past their time (called periodically)."""
        now = self._clock()
        due = [
            r
            for r in await self._store.list_requests(
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
                await self._recorder.commit(_tx, "request.expired")
        return len(due)
