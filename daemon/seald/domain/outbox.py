"""Notifications that are never lost (issue 17): outbox events, their payloads, the
delivery schedule and the webhook signature.

The shell writes an event into the outbox table in the same transaction as the state
change it reports, so an event exists exactly when its change was committed. A
deliverer sends each to every configured webhook, retrying with exponential backoff
until the receiver answers 2xx, or until the event is older than the dead-letter
time; ``sealctl notify replay`` puts dead letters back in the queue.

Payloads carry ids, names and states only, never document content (nor document
names, which can be content too): ``{"event_id", "type", "occurred_at", "request_id",
"seal_id", "state", ...}``.

Signature (see docs/webhooks.md for the receiver's recipe):
``Seald-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>." + body)>`` with
``Seald-Timestamp: <unix seconds>``; ``Idempotency-Key`` and ``Seald-Event-Id`` carry
the event id so a receiver acts on each event once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from seald.domain.model import RequestState, SealRequest

SIGNATURE_HEADER = "Seald-Signature"
TIMESTAMP_HEADER = "Seald-Timestamp"
EVENT_ID_HEADER = "Seald-Event-Id"
IDEMPOTENCY_HEADER = "Idempotency-Key"
SIGNATURE_VERSION = "v1"


class EventType(StrEnum):
    APPROVAL_NEEDED = "approval_needed"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"  # the requester cancelled the request
    APPROVAL_WITHDRAWN = "approval_withdrawn"  # an approver took their approval back
    SEALED = "sealed"
    FAILED = "failed"
    EXPIRED = "expired"
    TOKEN_NOT_RETURNED = "token_not_returned"  # noqa: S105 (an event name, not a secret)
    SEAL_SUSPENDED = "seal_suspended"


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"  # dead letter: given up after the configured time; replay re-queues


@dataclass(frozen=True)
class Event:
    event_id: str
    type: EventType
    occurred_at: datetime
    seal_id: str
    request_id: str = ""
    state: str = ""
    # Ids and names only (approvers asked, the step, a delegation id); never content.
    details: Mapping[str, str | Sequence[str]] = field(default_factory=dict)

    def payload(self) -> bytes:
        body: dict[str, object] = {
            "event_id": self.event_id,
            "type": self.type.value,
            "occurred_at": self.occurred_at.isoformat(),
            "seal_id": self.seal_id,
        }
        if self.request_id:
            body["request_id"] = self.request_id
        if self.state:
            body["state"] = self.state
        for key, value in sorted(self.details.items()):
            body[key] = value if isinstance(value, str) else list(value)
        return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def request_events(
    before: SealRequest | None,
    after: SealRequest,
    *,
    new_event_id: Sequence[str],
    now: datetime,
    needed_from: Sequence[str] = (),
    step: str = "",
) -> list[Event]:
    """The events one request transition causes (``new_event_id``: fresh ids to use).

    ``needed_from``/``step``: who must approve next (from the policy's standing); an
    "approval needed" event is sent when the request is submitted and whenever the
    chain moves to a new step."""
    ids = iter(new_event_id)
    out: list[Event] = []

    def add(kind: EventType, **details: str | Sequence[str]) -> None:
        out.append(
            Event(
                event_id=next(ids),
                type=kind,
                occurred_at=now,
                seal_id=after.seal_id,
                request_id=after.request_id,
                state=after.state.value,
                details=details,
            )
        )

    state_events = {
        RequestState.APPROVED: EventType.APPROVED,
        RequestState.REJECTED: EventType.REJECTED,
        RequestState.CANCELLED: EventType.WITHDRAWN,
        RequestState.SIGNED: EventType.SEALED,
        RequestState.FAILED: EventType.FAILED,
        RequestState.EXPIRED: EventType.EXPIRED,
    }
    changed = before is None or before.state is not after.state
    if changed and after.state in state_events:
        add(state_events[after.state])
    if (
        before is not None
        and len(after.approvals) < len(before.approvals)
        and after.state in (RequestState.PENDING, RequestState.APPROVED)
    ):
        add(EventType.APPROVAL_WITHDRAWN)
    if after.state is RequestState.PENDING and needed_from:
        add(EventType.APPROVAL_NEEDED, approvers=tuple(needed_from), step=step)
    return out


def seal_event(event_id: str, kind: EventType, seal_id: str, now: datetime, **details: str) -> Event:
    """An event about a seal, not a request (suspended, token not returned)."""
    return Event(event_id=event_id, type=kind, occurred_at=now, seal_id=seal_id, details=details)


def backoff(attempt: int, *, initial: timedelta, maximum: timedelta, event_id: str = "") -> timedelta:
    """Delay before retry ``attempt`` (1 = the first retry): doubling, capped, with up to
    10 % jitter derived from the event id (deterministic, so tests can pin it)."""
    base: timedelta = initial * (2 ** min(max(attempt - 1, 0), 32))
    delay: timedelta = min(base, maximum)
    if event_id:
        spread = int.from_bytes(hashlib.sha256(event_id.encode()).digest()[:2], "big") / 65535
        delay = delay + delay * (0.1 * spread)
    return delay if delay < maximum else maximum


def is_dead(created_at: datetime, now: datetime, dead_after: timedelta) -> bool:
    return now - created_at >= dead_after


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``Seald-Signature`` header value: HMAC-SHA256 over ``"<timestamp>." + body``."""
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={mac}"


def delivery_headers(secret: bytes, timestamp: int, event_id: str, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature(secret, timestamp, body),
        TIMESTAMP_HEADER: str(timestamp),
        EVENT_ID_HEADER: event_id,
        IDEMPOTENCY_HEADER: event_id,
    }
