"""Seal lifecycle shell (R02): decide (pure, domain/seals.py), then store + audit in one tx.

Suspend and report-lost commit the new status, void every approval given for the
seal (PENDING/APPROVED requests go back to PENDING with none) and append the audit
records in ONE transaction, before the RPC returns. The signer reads the status from
the database inside its own transactions, so no signature follows — nor is one
released that was in flight (see SealService.sign_request).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pkcs11 import Attribute
from pkcs11 import exceptions as p11x

from seald.domain import lifecycle
from seald.domain.audit import AuditEvent
from seald.domain.errors import AlreadyDone, PreconditionFailed, SealError
from seald.domain.model import Principal, Seal, SealStatus
from seald.domain.seals import (
    STOPPING_ACTIONS,
    Decision,
    SealAction,
    SealState,
    decide,
    effective_state,
    require_admin,
)
from seald.gm.certs import name as gm_name
from seald.registry.certs import check_seal_certificate, spki_sha256
from seald.registry.ses_seal import NewSesSeal, SesSeals
from seald.registry.voiding import void_open_requests
from seald.runtime.logs import get_logger
from seald.service.catalog import SealCatalog
from seald.service.settings import LiveConfig
from seald.store import seals as seal_tables
from seald.store import ses_seals as ses_seal_tables
from seald.store.database import Store, Transaction
from seald.tokens import seal_keys
from seald.tokens.manager import TokenManager
from seald.workflow_events import seal_suspended_event

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


# One admin operation per seal at a time: key creation and certificate import touch the
# token and the database in turn, and must not interleave with another change of that seal.
_seal_locks: dict[str, asyncio.Lock] = {}


@contextlib.asynccontextmanager
async def _one_at_a_time(seal_id: str) -> AsyncIterator[None]:
    lock = _seal_locks.setdefault(seal_id, asyncio.Lock())
    async with lock:
        yield


@dataclass(frozen=True)
class CreatedKey:
    outcome: LifecycleOutcome
    csr_der: bytes
    key_created: bool


class SealAdmin:
    """Seal lifecycle by admins (R01-R03): create key, import certificate, suspend ... destroy."""

    def __init__(
        self,
        live: LiveConfig,
        store: Store,
        tokens: TokenManager,
        catalog: SealCatalog,
        *,
        clock: Callable[[], datetime],
        wake_signer: Callable[[], None],
        ses_seals: SesSeals | None = None,
    ) -> None:
        self._live = live
        self._store = store
        self._tokens = tokens
        self._catalog = catalog
        self._clock = clock
        self._wake_signer = wake_signer
        self._ses = ses_seals  # GB/T 38540 seals: their SES_Seal is made with each change (issue 19)

    def _ses_for(self, seal_id: str) -> SesSeals | None:
        return self._ses if self._ses is not None and self._ses.applies_to(seal_id) else None

    def _read_state(self, tx: Transaction, seal_id: str) -> SealState:
        """The stored state, PENDING while the seal has no certificate (config or imported)."""
        has_certificate = self._live.current.seals[seal_id].certificate is not None or (
            seal_tables.has_certificate(tx.conn, seal_id)
        )
        return effective_state(seal_tables.get_state(tx.conn, seal_id), has_certificate)

    def _decide_simple(
        self,
        tx: Transaction,
        principal: Principal,
        seal_id: str,
        action: SealAction,
        *,
        comment: str,
        now: datetime,
        display_name: str = "",
    ) -> Decision:
        """A one-admin decision (create key, import, change): no proposal involved."""
        return decide(
            self._read_state(tx, seal_id),
            action=action,
            admin=principal,
            comment=comment,
            proposal_id="",
            pending=None,
            now=now,
            display_name=display_name,
        )

    async def create_key(self, principal: Principal, seal_id: str, *, comment: str = "") -> CreatedKey:
        """R02 刻制: the key pair is generated ON the token; a CSR for it is returned.

        If the key already exists (a CSR was lost, or an active seal's certificate is to be
        renewed), a new CSR for the same key is made; an active seal never gets a new key.
        """
        self._catalog.seal(seal_id)
        require_admin(principal, seal_id)
        sc = self._live.current.seals[seal_id]
        subject = {
            "organization_name": sc.organisation,
            "common_name": f"{sc.organisation} {sc.display_name}",
        }
        async with _one_at_a_time(seal_id):
            now = self._clock()
            preview, _ = await self._store.write(
                lambda tx: self._decide_simple(
                    tx, principal, seal_id, SealAction.CREATE_KEY, comment=comment, now=now
                )
            )
            # A new key only for a pending seal; an active one gets a CSR for its key (renewal).
            new_seal = preview.previous_status is SealStatus.PENDING
            skf_tokens = self._tokens.skf if self._tokens.is_skf(seal_id) else None
            if skf_tokens is not None:  # SM2 in the SKF token's container (issue 19)
                created, spki, csr_der = await skf_tokens.create_key(
                    seal_id,
                    gm_name(subject["common_name"], subject["organization_name"]),
                    may_generate=new_seal,
                )
                key = seal_keys.SealKey(created=created, public_key_der=spki, csr_der=csr_der)
            else:
                key = await self._tokens.with_session(
                    seal_id,
                    lambda session: seal_keys.build_csr(
                        session, seal_id, sc.key_label, subject, may_generate=new_seal, algorithm=sc.algorithm
                    ),
                )
            details: dict[str, str | int] = {
                "key_created": int(key.created),
                "public_key_sha256": spki_sha256(key.public_key_der),
                "csr_sha256": _sha256(key.csr_der),
                "key_bits": seal_keys.SEAL_KEY_BITS if sc.algorithm == "rsa" else 256,  # P-256, SM2: 256
                "key_algorithm": sc.algorithm,
            }

            def _tx(tx: Transaction) -> Decision:
                decision = self._decide_simple(
                    tx, principal, seal_id, SealAction.CREATE_KEY, comment=comment, now=now
                )
                if decision.previous_status is SealStatus.PENDING:
                    seal_tables.save_state(tx.conn, decision.state)
                seal_tables.add_history(
                    tx.conn,
                    seal_id=seal_id,
                    time=now,
                    action=SealAction.CREATE_KEY.value,
                    principal=principal.name,
                    from_status=decision.previous_status,
                    to_status=decision.state.status,
                    comment=comment,
                    details=details,
                )
                tx.audit(
                    AuditEvent(
                        event="seal.key_created" if key.created else "seal.csr_exported",
                        principal=principal.name,
                        role="admin",
                        seal_id=seal_id,
                        reason=comment,
                        outcome=decision.state.status.value,
                        details=dict(details),
                    )
                )
                return decision

            decision, _ = await self._store.write(_tx)
            self._catalog.states[seal_id] = decision.state
        log.info(
            "seal.key_created" if key.created else "seal.csr_exported",
            seal_id=seal_id,
            principal=principal.name,
            public_key_sha256=details["public_key_sha256"],
        )
        outcome = LifecycleOutcome(seal=self._catalog.seal(seal_id), state=decision.state, executed=True)
        return CreatedKey(outcome=outcome, csr_der=key.csr_der, key_created=key.created)

    async def import_certificate(
        self,
        principal: Principal,
        seal_id: str,
        der: bytes,
        *,
        renew: bool,
        comment: str = "",
        display_name: str = "",
    ) -> LifecycleOutcome:
        """Register a certificate for the key on the token: first one (PENDING -> ACTIVE) or
        a renewal (ACTIVE, same key; open approvals are void: they bound the old one).

        Order: checks, then the token (the certificate object pyHanko signs with), then one
        transaction (certificate row, state, history, re-bound requests, audit). If that
        transaction fails, the token gets its previous certificate back.
        """
        self._catalog.seal(seal_id)
        require_admin(principal, seal_id)
        action = SealAction.CHANGE if renew else SealAction.IMPORT_CERTIFICATE
        sc = self._live.current.seals[seal_id]
        async with _one_at_a_time(seal_id):
            now = self._clock()
            await self._store.write(
                lambda tx: self._decide_simple(
                    tx, principal, seal_id, action, comment=comment, now=now, display_name=display_name
                )
            )
            skf_tokens = self._tokens.skf if self._tokens.is_skf(seal_id) else None
            if skf_tokens is not None:
                token_spki = await skf_tokens.public_key(seal_id)
            else:
                token_spki = await self._tokens.with_session(
                    seal_id, lambda session: seal_keys.token_public_key(session, seal_id, sc.key_label)
                )
            trust = self._live.current.trust
            loop = asyncio.get_running_loop()
            ca_pem = await loop.run_in_executor(None, trust.seal_ca.read_bytes)
            sm2_ca_pem = (
                await loop.run_in_executor(None, trust.sm2_seal_ca.read_bytes) if trust.sm2_seal_ca else None
            )
            facts = check_seal_certificate(
                der,
                seal_id=seal_id,
                token_spki=token_spki,
                seal_ca_pem=ca_pem,
                now=now,
                algorithm=sc.algorithm,
                sm2_seal_ca_pem=sm2_ca_pem,
            )
            previous = self._tokens.certificate_sha256(seal_id)
            if facts.sha256 == previous:
                raise AlreadyDone(
                    f"that certificate is already seal {seal_id}'s registered certificate",
                    reason="certificate_unchanged",
                )
            # GB/T 38540: the maker signs the seal's new SES_Seal before anything changes, so a
            # maker that cannot sign leaves the seal as it was (issue 19).
            ses_seals = self._ses_for(seal_id)
            new_ses = (
                await ses_seals.build(seal_id, holder_der=facts.der, display_name=display_name)
                if ses_seals is not None
                else None
            )
            replaced: Any
            if skf_tokens is not None:
                replaced = await skf_tokens.replace_certificate(seal_id, facts.der)
            else:
                replaced = await self._tokens.with_session(
                    seal_id,
                    lambda session: seal_keys.replace_certificate(session, seal_id, sc.key_label, facts.der),
                )
            voided: list[str] = []
            event = "seal.certificate_renewed" if renew else "seal.certificate_imported"
            details: dict[str, str | int] = {
                "certificate_sha256": facts.sha256,
                "previous_certificate_sha256": previous,
                "subject": facts.subject,
                "serial": facts.serial_hex,
                "not_after": facts.not_after.isoformat(),
                "public_key_sha256": facts.public_key_sha256,
            }

            def _tx(tx: Transaction) -> Decision:
                decision = self._decide_simple(
                    tx, principal, seal_id, action, comment=comment, now=now, display_name=display_name
                )
                seal_tables.add_certificate(
                    tx.conn,
                    seal_id=seal_id,
                    time=now,
                    principal=principal.name,
                    action=action.value,
                    sha256=facts.sha256,
                    der=facts.der,
                )
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
                    details=details,
                )
                if ses_seals is not None and new_ses is not None:
                    ses_seals.record(
                        tx,
                        new_ses,
                        reason="certificate renewed" if renew else "certificate imported",
                        principal=principal.name,
                        now=now,
                        status=decision.state.status,
                    )
                    details["ses_seal_sha256"] = new_ses.sha256
                # R06: the approval digest covers the signing certificate.
                voided.extend(void_open_requests(
                    tx,
                    seal_id,
                    change=lambda r: lifecycle.rebind_certificate(
                        r, certificate_sha256=facts.sha256, now=now, seal_id=seal_id
                    ),
                    reason="seal_certificate_renewed",
                    principal=principal.name,
                ))
                tx.audit(
                    AuditEvent(
                        event=event,
                        principal=principal.name,
                        role="admin",
                        seal_id=seal_id,
                        reason=comment,
                        outcome=decision.state.status.value,
                        details={**details, "voided_requests": len(voided)},
                    )
                )
                return decision

            try:
                decision, _ = await self._store.write(_tx)
            except BaseException:
                # Nothing registered: the token gets its previous certificate back.
                with contextlib.suppress(SealError):
                    if skf_tokens is not None:
                        if replaced:
                            await skf_tokens.replace_certificate(seal_id, replaced)
                    else:
                        await self._tokens.with_session(
                            seal_id,
                            lambda session: seal_keys.restore_certificates(
                                session, seal_id, sc.key_label, replaced
                            ),
                        )
                raise
            self._tokens.set_certificate(seal_id, facts.der)
            self._catalog.states[seal_id] = decision.state
        log.info(
            event,
            seal_id=seal_id,
            principal=principal.name,
            certificate_sha256=facts.sha256,
            voided_requests=len(voided),
        )
        self._wake_signer()
        return LifecycleOutcome(
            seal=self._catalog.seal(seal_id), state=decision.state, executed=True, voided_requests=len(voided)
        )

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
        async with _one_at_a_time(seal_id):
            return await self._act(
                principal,
                seal_id,
                action,
                comment=comment,
                proposal_id=proposal_id,
                display_name=display_name,
            )

    async def _before_change(
        self,
        seal_id: str,
        action: SealAction,
        display_name: str,
        decide_now: Callable[[Transaction], Decision],
    ) -> tuple[int, NewSesSeal | None]:
        """What goes before the change's transaction: (objects deleted on the token, the new
        SES_Seal). A dry run of the decision keeps a refused call away from token and maker.

        Destroy: the key goes first (needs the unlocked token); if that fails nothing
        changes. A new display name of a GB/T 38540 seal is a new seal face: the maker signs
        its new SES_Seal first (issue 19), so a maker that cannot sign changes nothing."""
        ses_seals = self._ses_for(seal_id)
        if action is SealAction.CHANGE and display_name and ses_seals is not None:
            preview, _ = await self._store.write(decide_now)
            holder = self._tokens.certificate_der(seal_id)
            if preview.executed and holder:
                return -1, await ses_seals.build(seal_id, holder_der=holder, display_name=display_name)
            return -1, None
        if action is not SealAction.DESTROY:
            return -1, None
        preview, _ = await self._store.write(decide_now)
        if not preview.executed:
            return -1, None
        skf_tokens = self._tokens.skf if self._tokens.is_skf(seal_id) else None
        if skf_tokens is not None:
            return await skf_tokens.delete_key(seal_id), None
        key_label = self._live.current.seals[seal_id].key_label

        def _delete(session: Any) -> int:
            try:
                return delete_seal_objects(session, key_label)
            except p11x.PKCS11Error as ex:
                raise PreconditionFailed(
                    f"the token of seal {seal_id} refused to delete the key "
                    f"({type(ex).__name__}); nothing was changed",
                    reason="token_error",
                ) from ex

        return await self._tokens.with_session(seal_id, _delete), None

    async def _act(
        self,
        principal: Principal,
        seal_id: str,
        action: SealAction,
        *,
        comment: str,
        proposal_id: str,
        display_name: str,
    ) -> LifecycleOutcome:
        self._catalog.seal(seal_id)  # unknown seal -> InvalidInput
        require_admin(principal, seal_id)
        now = self._clock()

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

        deleted, new_ses = await self._before_change(seal_id, action, display_name, _decide)
        ses_seals = self._ses_for(seal_id)
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
            if ses_seals is not None and new_ses is not None:
                ses_seals.record(
                    tx, new_ses, reason="display name changed", principal=principal.name, now=now,
                    status=decision.state.status,
                )
                voided.extend(ses_seals.void_open_approvals(tx, seal_id, principal=principal.name, now=now))
            if action is SealAction.DESTROY:
                ses_seal_tables.mark_destroyed(tx.conn, seal_id, now)
            if action in STOPPING_ACTIONS:
                # Issue 17: outside systems learn it with the change, in its transaction.
                tx.emit(seal_suspended_event(seal_id, now, decision.state.status.value))
                status = decision.state.status.value
                voided.extend(void_open_requests(
                    tx,
                    seal_id,
                    change=lambda r: lifecycle.void_approvals(r, why=f"seal {seal_id} is {status}", now=now),
                    reason=f"seal_{status}",
                    principal=principal.name,
                ))
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

        decision, _ = await self._store.write(_tx)
        if decision.executed:
            self._catalog.states[seal_id] = decision.state
            if decision.state.status is SealStatus.DESTROYED:
                await self._tokens.lock(seal_id)
        log.info(
            f"seal.{action.value}" if decision.executed else "seal.lifecycle_proposed",
            seal_id=seal_id,
            principal=principal.name,
            status=decision.state.status.value,
            proposal_id=proposal_id or None,
            voided_requests=len(voided),
        )
        return LifecycleOutcome(
            seal=self._catalog.seal(seal_id),
            state=decision.state,
            executed=decision.executed,
            voided_requests=len(voided),
        )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


