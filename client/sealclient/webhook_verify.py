"""The receiver's side of seald webhooks: verify, then act once per event id.

This is the documented recipe (docs/webhooks.md) as code an OA integration can copy:
standard library only. Steps, in this order:

1. Read the raw body bytes (before any JSON parsing or re-encoding).
2. Check ``Seald-Timestamp`` is within ``tolerance`` seconds of your clock (replays of
   an old, captured delivery are refused).
3. Compute ``HMAC-SHA256(secret, timestamp + "." + body)`` and compare it with the
   hex after ``v1=`` in ``Seald-Signature`` using a constant-time comparison.
4. Only then parse the JSON; its ``event_id`` equals the ``Idempotency-Key`` header.
   Remember processed ids and answer 2xx for a repeat without acting again: seald
   delivers at least once, so a retry after a lost 2xx arrives again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

DEFAULT_TOLERANCE_S = 300


class WebhookRejected(Exception):
    """The delivery is not from seald (bad or missing signature) or too old; answer 401."""


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    raise WebhookRejected(f"missing header {name}")


def verify_delivery(
    secret: bytes,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> dict[str, Any]:
    """Return the event (parsed JSON) if the delivery is authentic and fresh."""
    raw_ts = _header(headers, "Seald-Timestamp")
    if not raw_ts.isdigit():
        raise WebhookRejected("Seald-Timestamp is not a number of seconds")
    if abs(now - int(raw_ts)) > tolerance_s:
        raise WebhookRejected("Seald-Timestamp is too far from this receiver's clock")
    given = _header(headers, "Seald-Signature")
    if not given.startswith("v1="):
        raise WebhookRejected("Seald-Signature has no v1= signature")
    expected = hmac.new(secret, raw_ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given[3:], expected):
        raise WebhookRejected("Seald-Signature does not match the body")
    event = json.loads(body)
    if not isinstance(event, dict) or event.get("event_id") != _header(headers, "Idempotency-Key"):
        raise WebhookRejected("the body's event_id is not the Idempotency-Key")
    return event
