"""Invariants over a seald state directory (crash matrix and soak, issue 8).

Read-only: opens the SQLite file with mode=ro (works while the daemon runs, WAL) and
checks requests, files on disk and the audit chain against each other.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections import Counter
from pathlib import Path

from cryptography import x509

from seald.domain.model import RequestState
from seald.store.checkpoints import verify_with_checkpoints
from seald.store.requests import request_from_json


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_state(state_dir: Path, *, after_restart: bool) -> dict[str, int]:
    """Every invariant that must hold on any state the daemon leaves; returns counts."""
    db = state_dir / "seald.sqlite3"
    conn = sqlite3.connect(db.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        requests = [request_from_json(row[0]) for row in conn.execute("SELECT body FROM requests")]
        signed_records = Counter(
            (rid, name)
            for rid, name in conn.execute(
                "SELECT request_id, document_name FROM audit_log WHERE event = 'seal.signed'"
            )
        )
        intents = {
            rid
            for (rid,) in conn.execute(
                "SELECT request_id FROM audit_log WHERE event = 'seal.sign_intent'"
            )
        }
        cert = x509.load_pem_x509_certificate((state_dir / "audit" / "audit-cert.pem").read_bytes())
        chain, _ = verify_with_checkpoints(conn, cert)
    finally:
        conn.close()
    assert chain.ok, f"audit chain: {chain.problem} at {chain.first_bad_sequence}"
    assert all(n == 1 for n in signed_records.values()), f"signed twice: {signed_records}"
    by_id = {r.request_id: r for r in requests}
    sealed_files = 0
    for request in requests:
        folder = state_dir / "documents" / request.request_id
        for doc in request.documents:
            original = folder / f"{doc.index:04d}.pdf"
            assert _sha256(original) == doc.sha256, f"{request.request_id}: original changed"
        sealed = sorted(folder.glob("*.sealed.pdf"))
        records = sum(signed_records[(request.request_id, d.name)] for d in request.documents)
        if request.state is RequestState.SIGNED:
            assert request.request_id in intents
            assert records == len(request.documents), f"{request.request_id}: SIGNED without its records"
            assert len(sealed) == len(request.documents)
            for doc in request.documents:
                path = folder / f"{doc.index:04d}.sealed.pdf"
                assert _sha256(path) == doc.sealed_sha256, f"{request.request_id}: sealed file differs"
            sealed_files += len(sealed)
        else:
            assert records == 0, f"{request.request_id} is {request.state.value} with seal.signed records"
            if request.state is not RequestState.SIGNING:
                assert sealed == [], f"{request.request_id} is {request.state.value} with sealed files"
        if after_restart:
            assert request.state is not RequestState.SIGNING, "recovery left a request SIGNING"
    for rid, _ in signed_records:
        assert rid in by_id, f"seal.signed record for unknown request {rid}"
    if after_restart:
        assert list((state_dir / "incoming").iterdir()) == [], "cut-off upload left behind"
        orphans = [p.name for p in (state_dir / "documents").iterdir() if p.name not in by_id]
        assert orphans == [], f"document directories without a request: {orphans}"
        partial = sorted(str(p.relative_to(state_dir)) for p in state_dir.glob("documents/*/.*.part"))
        assert partial == [], f"sealing temp files left behind: {partial}"
    return {
        "requests": len(requests),
        "signed_documents": sum(len(r.documents) for r in requests if r.state is RequestState.SIGNED),
        "signed_records": sum(signed_records.values()),
        "sealed_files": sealed_files,
    }
