"""Issue 17: the outbox events about a seal (not a request), for the shells that commit
the change: seal suspended / lost (seal_admin) and token not returned (custody guard)."""

from __future__ import annotations

import uuid
from datetime import datetime

from seald.domain.outbox import Event, EventType, seal_event


def seal_suspended_event(seal_id: str, now: datetime, status: str) -> Event:
    return seal_event(uuid.uuid4().hex, EventType.SEAL_SUSPENDED, seal_id, now, status=status)


def token_not_returned_event(seal_id: str, now: datetime) -> Event:
    return seal_event(uuid.uuid4().hex, EventType.TOKEN_NOT_RETURNED, seal_id, now)
