"""Issue 17: outbox events, delivery schedule and the webhook signature (pure), and the
receiver's documented verification recipe (sealclient.webhook_verify)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from sealclient.webhook_verify import WebhookRejected, verify_delivery
from seald.domain import lifecycle
from seald.domain.model import Document, Placement, Principal, RequestState, Role, Seal, SealType
from seald.domain.outbox import (
    EventType,
    backoff,
    delivery_headers,
    is_dead,
    request_events,
    seal_event,
)

T0 = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
SECRET = b"s3cret-shared-with-the-oa-system"
DOC = Document(0, "合同-机密.pdf", 10, hashlib.sha256(b"x").hexdigest())
REQ = Principal("zhang.wei", "z", frozenset({Role.REQUESTER}), frozenset({"contract"}))


def submitted():  # type: ignore[no-untyped-def]
    seal = Seal(
        "contract", SealType.CONTRACT, "o", "d", frozenset({"contract"}), 2, 40.0, certificate_sha256="c" * 64
    )
    return lifecycle.submit(
        request_id="r1", requester=REQ, seal=seal, reason="秘密的理由", category="contract",
        placement=Placement(1, 10, 10, 40), documents=[DOC], now=T0, ttl=timedelta(hours=2), host="h",
    )  # fmt: skip


def test_webhook_events_for_transitions_carry_ids_and_states_never_content() -> None:
    r = submitted()
    [needed] = request_events(None, r, new_event_id=["e1"], now=T0, needed_from=["li.na"], step="gm")
    assert needed.type is EventType.APPROVAL_NEEDED
    body = needed.payload()
    event = json.loads(body)
    assert event == {
        "event_id": "e1",
        "type": "approval_needed",
        "occurred_at": T0.isoformat(),
        "seal_id": "contract",
        "request_id": "r1",
        "state": "pending",
        "approvers": ["li.na"],
        "step": "gm",
    }
    for secret_text in ("合同-机密", "秘密的理由", DOC.sha256):
        assert secret_text.encode() not in body
    cancelled = lifecycle.cancel(r, principal=REQ, now=T0)
    assert [e.type for e in request_events(r, cancelled, new_event_id=["e2"], now=T0)] == [
        EventType.WITHDRAWN
    ]
    expired = lifecycle.expire(r, T0 + timedelta(hours=3))
    assert [e.type for e in request_events(r, expired, new_event_id=["e3"], now=T0)] == [EventType.EXPIRED]
    assert request_events(r, r, new_event_id=[], now=T0) == []  # nothing changed, nothing sent
    suspended = seal_event("e4", EventType.SEAL_SUSPENDED, "contract", T0, by="chen.jie")
    assert json.loads(suspended.payload())["by"] == "chen.jie"
    assert r.state is RequestState.PENDING


def test_webhook_backoff_doubles_is_capped_and_dead_letter_after_the_configured_time() -> None:
    one, cap = timedelta(seconds=1), timedelta(minutes=5)
    assert [backoff(n, initial=one, maximum=cap) for n in (1, 2, 3, 4)] == [one, 2 * one, 4 * one, 8 * one]
    assert backoff(40, initial=one, maximum=cap) == cap
    jittered = backoff(3, initial=one, maximum=cap, event_id="e1")
    assert 4 * one <= jittered <= 4.4 * one and jittered == backoff(
        3, initial=one, maximum=cap, event_id="e1"
    )
    assert not is_dead(T0, T0 + timedelta(hours=1), timedelta(hours=24))
    assert is_dead(T0, T0 + timedelta(hours=24), timedelta(hours=24))


def signed_delivery(body: bytes, ts: int = 1_800_000_000) -> dict[str, str]:
    return delivery_headers(SECRET, ts, json.loads(body)["event_id"], body)


def test_webhook_receiver_recipe_accepts_an_authentic_delivery() -> None:
    body = seal_event("e9", EventType.SEALED, "contract", T0).payload()
    headers = signed_delivery(body)
    assert headers["Idempotency-Key"] == "e9" == headers["Seald-Event-Id"]
    assert verify_delivery(SECRET, headers, body, now=1_800_000_010)["event_id"] == "e9"


def test_webhook_tampered_body_fails_the_hmac_check() -> None:
    body = seal_event("e9", EventType.SEALED, "contract", T0).payload()
    headers = signed_delivery(body)
    tampered = body.replace(b'"sealed"', b'"failed"')
    with pytest.raises(WebhookRejected, match="does not match"):
        verify_delivery(SECRET, headers, tampered, now=1_800_000_010)
    with pytest.raises(WebhookRejected, match="does not match"):
        verify_delivery(b"another secret", headers, body, now=1_800_000_010)
    with pytest.raises(WebhookRejected, match="too far"):
        verify_delivery(SECRET, headers, body, now=1_800_000_000 + 301)  # a replay, later
    moved = dict(headers, **{"Seald-Timestamp": "1800000005"})
    with pytest.raises(WebhookRejected, match="does not match"):
        verify_delivery(SECRET, moved, body, now=1_800_000_010)  # timestamp is signed too
    with pytest.raises(WebhookRejected, match="missing header"):
        verify_delivery(SECRET, {}, body, now=1_800_000_010)
