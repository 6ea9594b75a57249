"""R02/R06: a change to a seal (status, certificate, impression, SES_Seal) voids the
approvals its open requests were given, each with a ``request.approvals_voided`` record,
in the transaction that makes the change. One loop for every kind of change."""

from __future__ import annotations

from collections.abc import Callable

from seald.domain.audit import AuditEvent
from seald.domain.model import SealRequest
from seald.store import requests as request_table
from seald.store.database import Transaction


def void_open_requests(
    tx: Transaction,
    seal_id: str,
    *,
    change: Callable[[SealRequest], SealRequest],
    reason: str,
    principal: str,
    role: str = "admin",
    only_with_approvals: bool = False,
) -> list[str]:
    """Save ``change(request)`` for each open request of the seal (approvals voided, and
    the digest rebound where the change is in it) and audit it; returns their ids.
    ``only_with_approvals``: leave requests that have no approval to void untouched."""
    voided: list[str] = []
    for rid in request_table.open_request_ids(tx.conn, seal_id):
        request = tx.get_request(rid)
        if only_with_approvals and not request.approvals:
            continue
        tx.save_request(change(request))
        tx.audit(
            AuditEvent(
                event="request.approvals_voided",
                principal=principal,
                role=role,
                seal_id=seal_id,
                request_id=rid,
                reason=reason,
                outcome="pending",
            )
        )
        voided.append(rid)
    return voided
