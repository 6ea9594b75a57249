"""Issue 20: what a volume request costs seald per recorded chunk and per read.

The stored JSON body keeps its format (written without ``asdict``'s deep copy), the
request a transaction saved is what the next read returns without parsing the row again
(a rolled-back save is never returned), and seald's malloc settings take on this glibc.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from seald.domain.chains import Money
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
from seald.runtime.memory import bound_native_heap
from seald.store import requests as table

NOW = datetime(2026, 12, 6, 23, 30, tzinfo=UTC)


def _request(documents: int = 300) -> SealRequest:
    docs = tuple(
        Document(i, f"发票-{i:05d}.pdf", 1000 + i, f"{i:064x}", f"{i + 7:064x}" if i % 2 else "", i)
        for i in range(documents)
    )
    approval = Approval(
        approver="li.na",
        approval_digest="ab" * 32,
        approved_at=NOW,
        comment="ok",
        certificate_sha256="cd" * 32,
        statement='{"documents": ["…"]}',
        statement_signature_b64="QUJD",
    )
    return SealRequest(
        request_id="r-0001",
        seal_id="contract",
        requester="zhang.wei",
        reason="月末发票",
        category="contract",
        placement=Placement(page=1, x_mm=150.0, y_mm=240.0, size_mm=42.0),
        documents=docs,
        state=RequestState.SIGNING,
        required_approvals=2,
        approval_digest="ef" * 32,
        seal_certificate_sha256="12" * 32,
        created_at=NOW,
        updated_at=NOW + timedelta(seconds=1),
        expires_at=NOW + timedelta(hours=8),
        host="seal-host",
        approvals=(approval,),
        amount=Money(Decimal("120000.50"), "CNY"),
        collect_until=NOW + timedelta(hours=24),
    )


def _asdict_json(request: SealRequest) -> str:
    """The encoding as it was before issue 20 (asdict + json.dumps): the reference."""

    def encode(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, Decimal):
            return format(value.normalize(), "f")
        raise TypeError(type(value))

    return json.dumps(asdict(request), default=encode, ensure_ascii=False, sort_keys=True)


def test_volume_stored_json_keeps_its_format() -> None:
    request = _request()
    assert table.request_to_json(request) == _asdict_json(request)
    assert table.request_to_json(replace(request, amount=None, approvals=())) == _asdict_json(
        replace(request, amount=None, approvals=())
    )
    # A sealing job (issue 16): nested marks, page sets (an enum), steps, job seals.
    mark = Mark(seal_id="contract", pages=PageSet(PageSetKind.LIST, (1, 3)), x_mm=20.0, y_mm=30.0)
    every = PageSet(PageSetKind.ALL)
    cross = Mark(seal_id="official", pages=every, cross_page=CrossPage(every, 2))
    docs = tuple(
        replace(d, marks=(mark,) if d.index % 3 == 0 else None, steps=(SignedStep("contract", "ab" * 32, 9),))
        for d in request.documents[:20]
    )
    job = replace(
        request,
        documents=docs,
        marks=(mark, cross),
        job_seals=(JobSeal("contract", "12" * 32), JobSeal("official", "34" * 32, "56" * 32)),
    )
    assert table.request_to_json(job) == _asdict_json(job)
    assert table.get_request(_saved(job), job.request_id) == job


def _saved(request: SealRequest) -> sqlite3.Connection:
    """A store holding ``request`` as another process wrote it (parsed when read)."""
    conn = _conn()
    conn.execute(
        "INSERT INTO requests VALUES (?,?,?,?,?,?,?,?)",
        (request.request_id, request.seal_id, request.requester, request.state.value, "",
         NOW.isoformat(), NOW.isoformat(), table.request_to_json(request) + "\n"),
    )
    return conn


def _conn() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.executescript(table.SCHEMA)
    return conn


def test_volume_saved_request_is_read_without_parsing_again() -> None:
    conn = _conn()
    request = _request()
    conn.execute("BEGIN")
    table.save_request(conn, request)
    conn.execute("COMMIT")
    assert table.get_request(conn, request.request_id) is request  # no second parse
    # A save that rolls back is never what a read returns.
    newer = replace(request, state=RequestState.SIGNED, updated_at=NOW + timedelta(seconds=2))
    conn.execute("BEGIN")
    table.save_request(conn, newer)
    conn.execute("ROLLBACK")
    assert table.get_request(conn, request.request_id) is request
    # A row written by someone else (or another process) is parsed, equal to what was saved.
    text = table.request_to_json(newer)
    other = _conn()
    other.execute(
        "INSERT INTO requests VALUES (?,?,?,?,?,?,?,?)",
        ("r-0001", "contract", "zhang.wei", "signed", "", NOW.isoformat(), NOW.isoformat(), text + " "),
    )
    parsed = table.get_request(other, "r-0001")
    assert parsed is not newer and parsed == newer


def test_volume_seald_malloc_settings_take_on_glibc() -> None:
    # Debian's glibc: two arenas and a fixed mmap threshold (runtime/memory.py).
    assert bound_native_heap()
