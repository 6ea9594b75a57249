"""The ``requests`` table: one row per request, the whole domain request as JSON in ``body``.

Functions take the connection of the store thread (a Transaction's, or Store's own).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import is_dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from seald.domain.chains import Money
from seald.domain.errors import NotFound, request_not_found_message
from seald.domain.marks import CrossPage, Mark, PageSet, PageSetKind
from seald.domain.model import (
    Approval,
    Document,
    JobSeal,
    Placement,
    RequestState,
    SealRequest,
    SignedStep,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT PRIMARY KEY,
    seal_id TEXT NOT NULL,
    requester TEXT NOT NULL,
    state TEXT NOT NULL,
    client_request_key TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_state ON requests(state);
CREATE INDEX IF NOT EXISTS requests_seal ON requests(seal_id, created_at);
CREATE UNIQUE INDEX IF NOT EXISTS requests_client_key
    ON requests(requester, client_request_key) WHERE client_request_key != '';
-- Issue 16: every seal of a sealing job (requests.seal_id is its first), so a seal's
-- suspension or renewal finds the open jobs that use it in any position.
CREATE TABLE IF NOT EXISTS request_seals (
    request_id TEXT NOT NULL,
    seal_id TEXT NOT NULL,
    PRIMARY KEY (request_id, seal_id)
);
CREATE INDEX IF NOT EXISTS request_seals_seal ON request_seals(seal_id);
"""


def request_to_json(request: SealRequest) -> str:
    """The stored JSON body. Each dataclass is written from its own ``__dict__`` (no
    ``asdict`` deep copy: for a 10,000-document request that copy took three quarters
    of the ~300 ms each recorded chunk spent here, issue 20); the text is the same."""

    def encode(value: Any) -> Any:
        if is_dataclass(value) and not isinstance(value, type):
            return vars(value)
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, Decimal):  # the declared amount: canonical text, exact
            return format(value.normalize(), "f")
        raise TypeError(type(value))

    return json.dumps(vars(request), default=encode, ensure_ascii=False, sort_keys=True)


class _ParsedRequests:
    """The last few stored texts' parsed requests (frozen dataclasses, so sharing is
    safe), keyed by a digest of the text itself: a text that was never committed (a
    rolled-back write) is simply never asked for.

    A volume request of 10,000 documents is ~5 MB of JSON and ~90 ms to parse, and
    every per-document call reads the same unchanged row (issue 20: that was O(n^2)).
    ``save_request`` puts what it wrote, so the chunk after a recorded chunk does not
    parse it again (and the two entries share every unchanged Document). The key is a
    BLAKE2b digest, not the text: two texts of 10,000 documents held as keys were
    ~20 MB (a reason in Chinese makes Python store the whole text at 2 bytes a char)."""

    SIZE = 2

    def __init__(self) -> None:
        self._entries: OrderedDict[bytes, SealRequest] = OrderedDict()
        self._lock = threading.Lock()  # the store thread and Store.read callers

    @staticmethod
    def key(text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8"), digest_size=32).digest()

    def get(self, text: str) -> SealRequest:
        key = self.key(text)
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
                return hit
        request = _parse(text)
        self.put(key, request)
        return request

    def put(self, key: bytes, request: SealRequest) -> None:
        with self._lock:
            self._entries[key] = request
            self._entries.move_to_end(key)
            while len(self._entries) > self.SIZE:
                self._entries.popitem(last=False)


_PARSED = _ParsedRequests()


def request_from_json(text: str) -> SealRequest:
    """The request stored as ``text`` (cached, see _ParsedRequests)."""
    return _PARSED.get(text)


def _parse(text: str) -> SealRequest:
    raw = json.loads(text)

    def when(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    def must(value: str) -> datetime:
        return datetime.fromisoformat(value)

    return SealRequest(
        request_id=raw["request_id"],
        seal_id=raw["seal_id"],
        requester=raw["requester"],
        reason=raw["reason"],
        category=raw["category"],
        placement=Placement(**raw["placement"]),
        documents=tuple(_document(d) for d in raw["documents"]),
        state=RequestState(raw["state"]),
        required_approvals=raw["required_approvals"],
        approval_digest=raw["approval_digest"],
        seal_certificate_sha256=raw["seal_certificate_sha256"],
        created_at=must(raw["created_at"]),
        updated_at=must(raw["updated_at"]),
        expires_at=must(raw["expires_at"]),
        collect_until=when(raw.get("collect_until")),
        host=raw["host"],
        state_reason=raw["state_reason"],
        approvals=tuple(
            Approval(
                approver=a["approver"],
                approval_digest=a["approval_digest"],
                approved_at=must(a["approved_at"]),
                comment=a["comment"],
                certificate_sha256=a["certificate_sha256"],
                statement=a.get("statement", ""),
                statement_signature_b64=a.get("statement_signature_b64", ""),
                certificate_der_b64=a.get("certificate_der_b64", ""),
                webauthn_assertion=a.get("webauthn_assertion", ""),
                acting_for=a.get("acting_for", ""),
                delegation_id=a.get("delegation_id", ""),
            )
            for a in raw["approvals"]
        ),
        signed_at=when(raw["signed_at"]),
        outcome_unknown=raw["outcome_unknown"],
        client_request_key=raw["client_request_key"],
        sign_attempts=raw["sign_attempts"],
        amount=_money(raw.get("amount")),
        seal_impression_sha256=raw.get("seal_impression_sha256", ""),
        marks=tuple(_mark(m) for m in raw.get("marks", ())),
        job_seals=tuple(JobSeal(**s) for s in raw.get("job_seals", ())),
    )


def _document(raw: dict[str, Any]) -> Document:
    """A stored document; issue 16's manifest marks and signing steps when present."""
    fields = dict(raw)
    marks = fields.pop("marks", None)
    steps = fields.pop("steps", ())
    return Document(
        **fields,
        marks=None if marks is None else tuple(_mark(m) for m in marks),
        steps=tuple(SignedStep(**s) for s in steps),
    )


def _page_set(raw: dict[str, Any]) -> PageSet:
    return PageSet(PageSetKind(raw["kind"]), tuple(raw["pages"]))


def _mark(raw: dict[str, Any]) -> Mark:
    cross = raw.get("cross_page")
    return Mark(
        seal_id=raw["seal_id"],
        pages=_page_set(raw["pages"]),
        x_mm=raw["x_mm"],
        y_mm=raw["y_mm"],
        size_mm=raw["size_mm"],
        anchor_text=raw["anchor_text"],
        anchor_max_matches=raw["anchor_max_matches"],
        cross_page=None
        if cross is None
        else CrossPage(_page_set(cross["pages"]), cross["group_size"]),
    )


def _money(raw: Any) -> Money | None:
    """Issue 17: the declared amount (stored as its canonical text and currency)."""
    if not raw:
        return None
    return Money(Decimal(raw["value"]), raw["currency"])


# Requests that ended without a seal give their use back (issue 17 quotas).
_NOT_USES = ("rejected", "cancelled", "expired", "failed")


def count_uses(conn: sqlite3.Connection, seal_id: str, start: datetime, end: datetime) -> int:
    """Requests of a seal submitted in [start, end) that are, or may still become, a use
    (a sealing job counts for each of its seals, issue 16)."""
    row = conn.execute(
        "SELECT COUNT(*) FROM requests WHERE (seal_id = ? OR request_id IN"
        " (SELECT request_id FROM request_seals WHERE seal_id = ?))"
        " AND created_at >= ? AND created_at < ? AND state NOT IN (?, ?, ?, ?)",
        (
            seal_id,
            seal_id,
            start.astimezone(UTC).isoformat(),
            end.astimezone(UTC).isoformat(),
            *_NOT_USES,
        ),
    ).fetchone()
    return int(row[0])


def find_request(conn: sqlite3.Connection, request_id: str) -> SealRequest | None:
    row = conn.execute("SELECT body FROM requests WHERE request_id = ?", (request_id,)).fetchone()
    return request_from_json(row[0]) if row else None


def get_request(conn: sqlite3.Connection, request_id: str) -> SealRequest:
    row = conn.execute("SELECT body FROM requests WHERE request_id = ?", (request_id,)).fetchone()
    if row is None:
        raise NotFound(request_not_found_message(request_id), reason="request_not_found")
    return request_from_json(row[0])




def save_request(conn: sqlite3.Connection, request: SealRequest) -> None:
    text = request_to_json(request)
    conn.execute(
        "INSERT INTO requests(request_id, seal_id, requester, state, client_request_key,"
        " created_at, updated_at, body) VALUES (?,?,?,?,?,?,?,?)"
        " ON CONFLICT(request_id) DO UPDATE SET state=excluded.state,"
        " updated_at=excluded.updated_at, body=excluded.body",
        (
            request.request_id,
            request.seal_id,
            request.requester,
            request.state.value,
            request.client_request_key,
            request.created_at.isoformat(),
            request.updated_at.isoformat(),
            text,
        ),
    )
    if request.job_seals:
        conn.executemany(
            "INSERT OR IGNORE INTO request_seals(request_id, seal_id) VALUES (?, ?)",
            [(request.request_id, s.seal_id) for s in request.job_seals],
        )
    _PARSED.put(_PARSED.key(text), request)


def find_by_client_key(conn: sqlite3.Connection, requester: str, key: str) -> SealRequest | None:
    row = conn.execute(
        "SELECT body FROM requests WHERE requester = ? AND client_request_key = ?",
        (requester, key),
    ).fetchone()
    return request_from_json(row[0]) if row else None


def list_requests(
    conn: sqlite3.Connection,
    *,
    states: Sequence[RequestState] = (),
    seal_id: str = "",
    requester: str = "",
    after: tuple[str, str] | None = None,
    limit: int = 100,
) -> list[SealRequest]:
    clauses: list[str] = []
    params: list[str] = []
    if states:
        clauses.append(f"state IN ({','.join('?' * len(states))})")
        params.extend(s.value for s in states)
    if seal_id:
        clauses.append("seal_id = ?")
        params.append(seal_id)
    if requester:
        clauses.append("requester = ?")
        params.append(requester)
    if after is not None:
        clauses.append("(created_at, request_id) > (?, ?)")
        params.extend(after)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = conn.execute(
        f"SELECT body FROM requests {where} ORDER BY created_at, request_id LIMIT ?",  # noqa: S608
        (*params, limit),
    )
    return [request_from_json(r[0]) for r in rows]


def open_request_ids(conn: sqlite3.Connection, seal_id: str) -> list[str]:
    """PENDING and APPROVED requests of a seal (their approvals are voided with the seal)."""
    rows = conn.execute(
        "SELECT request_id FROM requests WHERE state IN (?, ?) AND (seal_id = ? OR request_id IN"
        " (SELECT request_id FROM request_seals WHERE seal_id = ?))",
        (RequestState.PENDING.value, RequestState.APPROVED.value, seal_id, seal_id),
    ).fetchall()
    return [str(r[0]) for r in rows]


def unfinished_requests(conn: sqlite3.Connection) -> list[SealRequest]:
    """Pending, approved and signing requests (issue 17: a delegation's end re-checks them)."""
    rows = conn.execute(
        "SELECT body FROM requests WHERE state IN ('pending', 'approved', 'signing')"
    ).fetchall()
    return [request_from_json(r[0]) for r in rows]
