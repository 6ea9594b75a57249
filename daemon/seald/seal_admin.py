"""Seal lifecycle shell (R02): decide (pure, domain/seals.py), then store + audit in one tx.

Suspend and report-lost commit the new status, void every approval given for the
seal (PENDING/APPROVED requests go back to PENDING with none) and append the audit
records in ONE transaction, before the RPC returns. The signer reads the status from
the database inside its own transactions, so no signature follows — nor is one
released that was in flight (see SealService.sign_request).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pkcs11 import Attribute
from pkcs11 import exceptions as p11x

from seald.domain import lifecycle
from seald.domain.audit import AuditEvent
from seald.domain.errors import AlreadyDone, PreconditionFailed
from seald.domain.model import Principal, RequestState, Seal, SealStatus
from seald.domain.seals import (
    STOPPING_ACTIONS,
    Decision,
    SealAction,
    SealState,
    decide,
    require_admin,
)
from seald.logs import get_logger
from seald.store import seals as seal_tables
from seald.store.requests import Transaction

if TYPE_CHECKING:
    from seald.service import SealService

log = get_logger("seald.seals")


@dataclass(frozen=True)
class LifecycleOutcome:
    seal: Seal
    state: SealState
    executed: bool
    voided_requests: int = 0


def delete_seal_objects(session: Any, key_label: str) -> int:
    """Destroy every object labelled ``key_label`` (private key, public key, certificate).

    Runs on the token's thread with the custodian's login: a second, read-write session
    on the same token shares that login (PKCS#11 logins are per application).
    """
    rw = session.token.open(rw=True)
    try:
        objects = list(rw.get_objects({Attribute.LABEL: key_label}))
        for obj in objects:
            obj.destroy()
        return len(objects)
    finally:
        rw.close()


class SealAdmin:
    def __init__(self, service: SealService) -> None:
        self.service = service

    def _read_state(self, tx: Transaction, seal_id: str) -> SealState:
        return seal_tables.get_state(tx.conn, seal_id)

    async def act(
        self,
        principal: Principal,
        seal_id: str,
        action: SealAction,
        *,
        comment: str = "",
        proposal_id: str = "",
        display_name: str = "",
    ) -> LifecycleOutcome:
        service = self.service
        service.seal(seal_id)  # unknown seal -> InvalidInput
        require_admin(principal, seal_id)
        now = service.clock()

        def _decide(tx: Transaction) -> Decision:
            if proposal_id and seal_tables.proposal_confirmed(tx.conn, proposal_id):
                raise AlreadyDone(
                    f"proposal {proposal_id} was already confirmed and carried out",
                    reason="proposal_done",
                )
            pending = seal_tables.get_proposal(tx.conn, proposal_id) if proposal_id else None
            return decide(
                self._read_state(tx, seal_id),
                action=action,
                admin=principal,
                comment=comment,
                proposal_id=proposal_id,
                pending=pending,
                now=now,
                display_name=display_name,
            )

        # Destroy: the key goes first (needs the unlocked token); if that fails nothing
        # changes. A dry run of the decision keeps a refused call away from the token.
        deleted = -1
        if action is SealAction.DESTROY:
            preview, _ = await service.store.write(_decide)
            if preview.executed:
                key_label = service.config.seals[seal_id].key_label

                def _delete(session: Any) -> int:
                    try:
                        return delete_seal_objects(session, key_label)
                    except p11x.PKCS11Error as ex:
                        raise PreconditionFailed(
                            f"the token of seal {seal_id} refused to delete the key "
                            f"({type(ex).__name__}); nothing was changed",
                            reason="token_error",
                        ) from ex

                deleted = await service.tokens.with_session(seal_id, _delete)

        voided: list[str] = []

        def _tx(tx: Transaction) -> Decision:
            decision = _decide(tx)
            if not decision.executed:
                assert decision.proposal is not None
                seal_tables.save_proposal(tx.conn, decision.proposal)
                tx.audit(
                    AuditEvent(
                        event="seal.lifecycle_proposed",
                        principal=principal.name,
                        role="admin",
                        seal_id=seal_id,
                        reason=comment,
                        outcome="proposed",
                        details={"action": action.value, "proposal_id": proposal_id},
                    )
                )
                return decision
            if decision.proposal is not None:
                seal_tables.confirm_proposal(tx.conn, decision.proposal.proposal_id, principal.name)
            seal_tables.save_state(tx.conn, decision.state)
            seal_tables.add_history(
                tx.conn,
                seal_id=seal_id,
                time=now,
                action=action.value,
                principal=principal.name,
                from_status=decision.previous_status,
                to_status=decision.state.status,
                comment=comment,
                details={"proposal_id": proposal_id, "objects_deleted": deleted},
            )
            if action in STOPPING_ACTIONS:
                for request in _open_requests(tx, seal_id):
                    new = lifecycle.void_approvals(
                        request, why=f"seal {seal_id} is {decision.state.status.value}", now=now
                    )
                    tx.save_request(new)
                    tx.audit(
                        AuditEvent(
                            event="request.approvals_voided",
                            principal=principal.name,
                            role="admin",
                            seal_id=seal_id,
                            request_id=request.request_id,
                            reason=f"seal_{decision.state.status.value}",
                            outcome="pending",
                        )
                    )
                    voided.append(request.request_id)
            tx.audit(
                AuditEvent(
                    event=f"seal.{action.value}",
                    principal=principal.name,
                    role="admin",
                    seal_id=seal_id,
                    reason=comment,
                    outcome=decision.state.status.value,
                    details={
                        "from": decision.previous_status.value,
                        "proposal_id": proposal_id,
                        "proposer": decision.proposal.proposer if decision.proposal else "",
                        "voided_requests": len(voided),
                        "objects_deleted": deleted,
                    },
                )
            )
            return decision

        decision, _ = await service.store.write(_tx)
        if decision.executed:
            service.seal_states[seal_id] = decision.state
            if decision.state.status is SealStatus.DESTROYED:
                await service.tokens.lock(seal_id)
        log.info(
            f"seal.{action.value}" if decision.executed else "seal.lifecycle_proposed",
            seal_id=seal_id,
            principal=principal.name,
            status=decision.state.status.value,
            proposal_id=proposal_id or None,
            voided_requests=len(voided),
        )
        return LifecycleOutcome(
            seal=service.seal(seal_id),
            state=decision.state,
            executed=decision.executed,
            voided_requests=len(voided),
        )


def _open_requests(tx: Transaction, seal_id: str) -> list[Any]:
    rows = tx.conn.execute(
        "SELECT request_id FROM requests WHERE seal_id = ? AND state IN (?, ?)",
        (seal_id, RequestState.PENDING.value, RequestState.APPROVED.value),
    ).fetchall()
    return [tx.get_request(r[0]) for r in rows]
