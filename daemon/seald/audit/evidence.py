"""Offline evidence package of a sealed request (issue 9; SEAL-RULES R05, R06, R10, R14).

One JSON document (format ``seald.evidence/1``, described field by field in
docs/evidence.md) that lets anyone check, without this appliance or its database,
who approved what and that the sealed PDF is what they approved:

- the request as recorded (seal, requester, reason, category, placement, documents
  with original and sealed SHA-256, approval digest);
- every approval's signed statement, signature and the approver's certificate;
- the ledger records from the request's first record up to a signed checkpoint
  (the records of other requests in between are included because a linear hash
  chain has no shorter path), and that checkpoint with the audit certificate;
- the seal's certificate chain (seal certificate, seal CA).

A sealing job (issue 16) adds its marks, every seal of the job in signing order, each
document's recorded signatures (the intermediate file after each seal's signature) and
every seal's certificate chain (``seals``); ``seal`` stays the first seal's, so a
single-seal package is what it always was.

Who may fetch it: the requester of the request, and auditors and admins of its seal
(the package shows the interleaved records' metadata, which approvers and custodians
have no need to see). Every export is recorded (``evidence.exported``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
from datetime import datetime
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from seald.audit.operations import AuditOperations
from seald.config import Config
from seald.domain import access
from seald.domain.audit import RECORD_COLUMNS, AuditEvent
from seald.domain.errors import NotVisible, PermissionDenied, PreconditionFailed
from seald.domain.marks import canonical_mark
from seald.domain.model import Principal, RequestState, Role, SealRequest
from seald.store import ledger as ledger_tables
from seald.store import seals as seal_tables
from seald.store.checkpoints import (
    CHECKPOINT_FORMAT,
    AuditKey,
    SignedCheckpoint,
    create_checkpoint,
    export_latest,
    latest_stored_checkpoint,
)
from seald.store.database import Store, Transaction

EVIDENCE_FORMAT: Final = "seald.evidence/1"
EXPORT_EVENT: Final = "evidence.exported"


def require_may_fetch(principal: Principal, request: SealRequest) -> None:
    if principal.name == request.requester:
        return
    # A job's evidence shows every seal's use: an auditor or admin of any of its seals.
    if principal.roles & {Role.AUDITOR, Role.ADMIN} and set(request.seal_ids) & set(principal.seal_ids):
        return
    raise PermissionDenied(
        f"only the requester and the auditors and admins of seal {', '.join(request.seal_ids)} may fetch "
        f"the evidence of request {request.request_id}",
        reason="not_allowed_evidence",
    )


def _pem(der: bytes) -> str:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM).decode("ascii")


def _request_json(request: SealRequest) -> dict[str, Any]:
    p = request.placement
    return {
        "request_id": request.request_id,
        "seal_id": request.seal_id,
        "seal_certificate_sha256": request.seal_certificate_sha256,
        "requester": request.requester,
        "reason": request.reason,
        "category": request.category,
        "placement": {
            "page": p.page,
            "x_mm": p.x_mm,
            "y_mm": p.y_mm,
            "size_mm": p.size_mm,
            "anchor_text": p.anchor_text,
            "cross_page": p.cross_page,
        },
        "documents": [
            {
                "index": d.index,
                "name": d.name,
                "size": d.size,
                "sha256": d.sha256,
                "sealed_sha256": d.sealed_sha256,
                "sealed_size": d.sealed_size,
            }
            for d in request.documents
        ],
        "approval_digest": request.approval_digest,
        # Issue 17: the declared amount (in the digest), only when declared.
        **(
            {"amount": {"value": request.amount.canonical(), "currency": request.amount.currency}}
            if request.amount is not None
            else {}
        ),
        # Issue 16: the seal's registered impression (in the digest), only when it has one.
        **(
            {"seal_impression_sha256": request.seal_impression_sha256}
            if request.seal_impression_sha256
            else {}
        ),
        **(_job_json(request) if request.is_job else {}),
        "required_approvals": request.required_approvals,
        "state": request.state.value,
        "created_at": request.created_at.isoformat(),
        "signed_at": request.signed_at.isoformat() if request.signed_at else "",
        "host": request.host,
    }


def _job_json(request: SealRequest) -> dict[str, Any]:
    """Issue 16: a job's marks and seals as the approval digest binds them, and per
    document its own marks (a manifest) and its recorded signatures in signing order."""
    return {
        "marks": [canonical_mark(m) for m in request.marks],
        "job_seals": [
            {
                "seal_id": s.seal_id,
                "certificate_sha256": s.certificate_sha256,
                "impression_sha256": s.impression_sha256,
            }
            for s in request.job_seals
        ],
        "job_documents": [
            {
                "index": d.index,
                **({"marks": [canonical_mark(m) for m in d.marks]} if d.marks is not None else {}),
                "steps": [{"seal_id": s.seal_id, "sha256": s.sha256, "size": s.size} for s in d.steps],
            }
            for d in request.documents
        ],
    }


def _approvals_json(request: SealRequest) -> list[dict[str, Any]]:
    return [
        {
            "approver": a.approver,
            "approved_at": a.approved_at.isoformat(),
            "certificate_sha256": a.certificate_sha256,
            "certificate_pem": _pem(base64.b64decode(a.certificate_der_b64)) if a.certificate_der_b64 else "",
            "statement": a.statement,
            "signature": a.statement_signature_b64,
            # Issue 18: an approval signed with a WebAuthn credential carries the assertion.
            **({"webauthn_assertion": a.webauthn_assertion} if a.webauthn_assertion else {}),
            # Issue 17: "approver for acting_for under delegation delegation_id".
            **({"acting_for": a.acting_for, "delegation_id": a.delegation_id} if a.acting_for else {}),
        }
        for a in request.approvals
    ]


def _checkpoint_json(checkpoint: SignedCheckpoint) -> dict[str, Any]:
    return {
        "format": CHECKPOINT_FORMAT,
        "sequence": checkpoint.sequence,
        "head_hash": checkpoint.head_hash,
        "created_at": checkpoint.created_at,
        "host": checkpoint.host,
        "signature": base64.b64encode(checkpoint.signature).decode("ascii"),
        "certificate_pem": _pem(checkpoint.certificate_der),
    }


def _recorded_policy(records: list[dict[str, Any]]) -> Any:
    """The policy the last approval was recorded under (None for unsigned, old approvals)."""
    for record in reversed(records):
        if record["event"] == "request.approved":
            details = json.loads(record["details_json"])
            return json.loads(details["policy"]) if "policy" in details else None
    return None


def collect_evidence(
    tx: Transaction,
    *,
    config: Config,
    key: AuditKey,
    host: str,
    principal: Principal,
    request_id: str,
    now: datetime,
) -> tuple[bytes, SignedCheckpoint, bool]:
    """Build the package inside one write transaction (checkpoint on demand + export record).

    Returns (JSON bytes, the checkpoint used, whether it was created now)."""
    request = tx.get_request(request_id)
    if not access.can_view(principal, request):
        raise NotVisible(request_id)  # answered like an unknown id (R04)
    require_may_fetch(principal, request)
    if request.state is not RequestState.SIGNED:
        raise PreconditionFailed(
            f"request {request_id} is {request.state.value}; evidence exists only for sealed requests",
            reason="evidence_not_sealed",
        )
    conn = tx.conn
    own = ledger_tables.request_sequences(conn, request_id, except_event=EXPORT_EVENT)
    if not own:
        raise PreconditionFailed(
            f"request {request_id} has no ledger records; the ledger is damaged, ask an auditor",
            reason="evidence_ledger_missing",
        )
    checkpoint = latest_stored_checkpoint(conn)
    created = checkpoint is None or checkpoint.sequence < own[-1]
    if checkpoint is None or created:
        checkpoint = create_checkpoint(conn, key, host, now)
    records = ledger_tables.record_rows(conn, own[0], checkpoint.sequence)
    seal_ca = config.trust.seal_ca.read_text(encoding="ascii")
    chain = [
        _seal_certificate_pem(
            seal_tables.certificates_der(conn, request.seal_id),
            config,
            request,
            request.seal_id,
            request.seal_certificate_sha256,
        ),
        seal_ca,
    ]
    package = {
        "format": EVIDENCE_FORMAT,
        "created_at": now.isoformat(),
        "host": host,
        "request": _request_json(request),
        "approvals": _approvals_json(request),
        "policy": _recorded_policy([r for r in records if r["request_id"] == request_id]),
        "seal": {"seal_id": request.seal_id, "certificate_chain_pem": chain},
        # Issue 16: every seal of a job, in signing order (the first is ``seal`` again).
        **(
            {
                "seals": [
                    {
                        "seal_id": s.seal_id,
                        "certificate_chain_pem": [
                            _seal_certificate_pem(
                                seal_tables.certificates_der(conn, s.seal_id),
                                config,
                                request,
                                s.seal_id,
                                s.certificate_sha256,
                            ),
                            seal_ca,
                        ],
                    }
                    for s in request.job_seals
                ]
            }
            if request.is_job
            else {}
        ),
        "ledger": {
            "columns": list(RECORD_COLUMNS),
            "request_sequences": [s for s in own if s <= checkpoint.sequence],
            "records": records,
            "checkpoint": _checkpoint_json(checkpoint),
        },
    }
    tx.audit(
        AuditEvent(
            event=EXPORT_EVENT,
            principal=principal.name,
            role=_role_of(principal, request).value,
            seal_id=request.seal_id,
            request_id=request_id,
            outcome="exported",
            details={"checkpoint_sequence": checkpoint.sequence},
        )
    )
    data = json.dumps(package, ensure_ascii=False, sort_keys=True, indent=1).encode("utf-8")
    return data, checkpoint, created


def _role_of(principal: Principal, request: SealRequest) -> Role:
    if principal.name == request.requester:
        return Role.REQUESTER
    return Role.AUDITOR if Role.AUDITOR in principal.roles else Role.ADMIN


async def export_evidence(
    store: Store, config: Config, audit: AuditOperations, principal: Principal, request_id: str
) -> bytes:
    key, now = audit.key, audit.clock()
    (data, checkpoint, created), _ = await store.write(
        lambda tx: collect_evidence(
            tx, config=config, key=key, host=audit.host, principal=principal, request_id=request_id, now=now
        )
    )
    if created:
        await store.call(lambda: export_latest(audit.directory, checkpoint))
    return data


def _seal_certificate_pem(
    imported: list[bytes], config: Config, request: SealRequest, seal_id: str, wanted: str
) -> str:
    """The certificate the request was bound to for ``seal_id``: imported ones (刻制,
    renewals) win over the file."""
    for der in imported:
        if hashlib.sha256(der).hexdigest() == wanted:
            return ssl.DER_cert_to_PEM_cert(der)
    path = config.seals[seal_id].certificate
    if path is not None:
        return path.read_text(encoding="ascii")
    raise PreconditionFailed(
        f"the certificate of seal {seal_id!r} that request {request.request_id} was bound to "
        "is not registered; import it (sealctl seal import-cert) before exporting evidence",
        reason="seal_certificate_unknown",
    )
