"""Custody at run time (R07, R08, R09): who may hold a seal, and whether it may sign now.

The rules are pure (seald.domain.custody); this shell keeps what they need in
memory (read from SQLite at start, written through in the same transaction as the
audit record), so ``not_ready_reason`` is a cheap synchronous check on the loop.
``tick`` is run periodically: out-of-hours lock, same-day-return alert, idle lock.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from seald.config import Config
from seald.domain import custody as rules
from seald.domain.audit import AuditEvent
from seald.domain.custody import Custody, CustodyChange, CustodyChangeKind
from seald.domain.errors import PermissionDenied, PreconditionFailed
from seald.domain.model import Principal, Role
from seald.runtime.logs import get_logger
from seald.store import custody as custody_store
from seald.store.database import Store, Transaction
from seald.tokens.manager import TokenManager
from seald.workflow_events import token_not_returned_event

log = get_logger("seald.custody")


class CustodyGuard:
    def __init__(
        self, config: Config, store: Store, tokens: TokenManager, clock: Callable[[], datetime]
    ) -> None:
        self.config = config
        self.store = store
        self.tokens = tokens
        self.clock = clock
        # (seal, serial) -> who set the current PIN; -> who unlocked with it since (R07, R09)
        self._pin_set_by: dict[tuple[str, str], str] = {}
        self._pin_unlockers: dict[tuple[str, str], set[str]] = {}
        self._custody: dict[str, Custody] = {}
        self._alerted_day: dict[str, str] = {}
        self.not_returned_alerts: dict[str, int] = dict.fromkeys(config.seals, 0)
        # Wired by SealService: the Prometheus counter, and a wake-up of the signer loop.
        self.on_not_returned: Callable[[str], None] = lambda seal_id: None
        self.on_ready_change: Callable[[], None] = lambda: None
        idle = config.tokens.idle_lock_minutes
        self.idle_lock = timedelta(minutes=idle) if idle > 0 else None

    async def open(self) -> None:
        state = await self.store.custody_state(list(self.config.seals))
        self._pin_set_by = state.pin_set_by
        self._pin_unlockers = state.pin_unlockers
        # R08: a restart the same night must not raise the alert again.
        self._alerted_day = state.alerted_days
        self._custody.update(state.custody)

    # -- readiness --------------------------------------------------------------------------------
    def _token(self, seal_id: str) -> tuple[str, str]:
        return seal_id, self.config.seals[seal_id].token_serial

    def initial_pin_changed(self, seal_id: str) -> bool:
        return self._token(seal_id) in self._pin_set_by

    def holders(self, seal_id: str) -> frozenset[str]:
        """Who holds the seal now: the recorded custody, else every configured custodian."""
        if seal_id in self._custody:
            return self._custody[seal_id].holders(self.clock())
        return self._eligible(seal_id)

    def not_ready_reason(self, seal_id: str) -> str:
        if not self.initial_pin_changed(seal_id):
            return (
                f"the token of seal {seal_id} still has its initial PIN; the custodian must change "
                "it first (sealctl token change-pin) (R07)"
            )
        token = self._token(seal_id)
        pin = rules.pin_holder_problem(
            seal_id,
            set_by=self._pin_set_by[token],
            unlocked_since=frozenset(self._pin_unlockers.get(token, ())),
            holders=self.holders(seal_id),
            unlocked_by=self.tokens.state(seal_id).unlocked_by if self.tokens.state(seal_id).unlocked else "",
        )
        return pin or rules.out_of_hours_reason(seal_id, self.config.seals[seal_id].hours, self.clock())

    async def record_unlock(self, seal_id: str, principal: str, event: AuditEvent) -> None:
        """The unlock's audit record, and that ``principal`` knows the current PIN, together."""
        token = self._token(seal_id)
        now = self.clock()

        def _tx(tx: Transaction) -> None:
            custody_store.mark_unlocked(tx.conn, seal_id, token[1], principal, now)
            tx.audit(event)

        await self.store.write(_tx)
        self._pin_unlockers.setdefault(token, set()).add(principal)

    def require_within_hours(self, seal_id: str) -> None:
        """R08: outside its hours a seal stays locked; the unlock is refused, requests wait."""
        why = rules.out_of_hours_reason(seal_id, self.config.seals[seal_id].hours, self.clock())
        if why:
            raise PreconditionFailed(why, reason="out_of_hours")

    def return_overdue(self, seal_id: str) -> bool:
        """R08: the token is still inserted after its hours end plus the grace."""
        present = self.tokens.state(seal_id).present
        return present and rules.return_overdue(self.config.seals[seal_id].hours, self.clock())

    # -- R07: first use ---------------------------------------------------------------------------
    async def change_pin(self, principal: Principal, seal_id: str, old_pin: str, new_pin: str) -> None:
        self.require_holder(principal, seal_id)
        serial = self.config.seals[seal_id].token_serial
        await self.tokens.change_pin(seal_id, old_pin, new_pin)
        now = self.clock()

        def _tx(tx: Transaction) -> None:
            custody_store.mark_pin_changed(tx.conn, seal_id, serial, now, principal.name)
            tx.audit(
                AuditEvent(
                    event="token.pin_changed",
                    principal=principal.name,
                    role="custodian",
                    seal_id=seal_id,
                    outcome="changed",
                )
            )

        await self.store.write(_tx)
        self._pin_set_by[(seal_id, serial)] = principal.name
        self._pin_unlockers.pop((seal_id, serial), None)
        log.info("token.pin_changed", seal_id=seal_id, principal=principal.name)
        self.on_ready_change()  # an unlocked token may sign from now on

    # -- R09: who holds the seal ------------------------------------------------------------------
    def custody(self, seal_id: str) -> Custody:
        if seal_id in self._custody:
            return self._custody[seal_id]
        # No recorded custody yet: the configured custodian-role principals (first by name).
        names = sorted(self._eligible(seal_id))
        return Custody(seal_id=seal_id, custodian=names[0] if names else "")

    def _eligible(self, seal_id: str) -> frozenset[str]:
        return frozenset(
            p.principal.name
            for p in self.config.principals.values()
            if p.principal.has(Role.CUSTODIAN, seal_id)
        )

    def require_holder(self, principal: Principal, seal_id: str) -> None:
        """Custodian role on the seal AND, once custody is recorded, the holder or active delegate."""
        if not principal.has(Role.CUSTODIAN, seal_id):
            raise PermissionDenied(
                f"only a custodian of seal {seal_id} may unlock, lock or change its PIN (R07)",
                reason="not_a_custodian",
            )
        if seal_id in self._custody and principal.name not in self._custody[seal_id].holders(self.clock()):
            raise PermissionDenied(
                f"{principal.name} does not hold seal {seal_id} now: custody is with "
                f"{self._custody[seal_id].custodian} (R09); ask for a handover or delegation",
                reason="not_the_holder",
            )

    async def propose(
        self,
        principal: Principal,
        seal_id: str,
        kind: CustodyChangeKind,
        to_principal: str,
        *,
        comment: str = "",
        window_start: datetime | None = None,
        window_end: datetime | None = None,
    ) -> CustodyChange:
        if not principal.has(Role.ADMIN, seal_id):
            raise PermissionDenied(
                f"only an administrator of seal {seal_id} may propose a custody change (R09)",
                reason="not_an_admin",
            )
        change = rules.propose_change(
            change_id=uuid.uuid4().hex,
            custody=self.custody(seal_id),
            kind=kind,
            to_principal=to_principal,
            proposed_by=principal.name,
            eligible_holders=self._eligible(seal_id),
            now=self.clock(),
            comment=comment,
            window_start=window_start,
            window_end=window_end,
        )

        def _tx(tx: Transaction) -> None:
            custody_store.save_change(tx.conn, change)
            tx.audit(_custody_event("custody.change_proposed", principal, change, "proposed"))

        await self.store.write(_tx)
        return change

    async def approve(self, principal: Principal, change_id: str) -> CustodyChange:
        now = self.clock()

        def _tx(tx: Transaction) -> tuple[CustodyChange, Custody | None]:
            change = custody_store.get_change(tx.conn, change_id)
            may = principal.has(Role.APPROVER, change.seal_id) or principal.has(Role.ADMIN, change.seal_id)
            if not may:
                raise PermissionDenied(
                    f"only approvers or administrators of seal {change.seal_id} may approve custody "
                    "changes (R09)",
                    reason="not_an_approver",
                )
            new = rules.approve_change(change, principal.name)
            custody_store.save_change(tx.conn, new)
            tx.audit(_custody_event("custody.change_approved", principal, new, "approved"))
            applied = None
            if new.in_effect:
                current = custody_store.get_custody(tx.conn, new.seal_id) or self.custody(new.seal_id)
                applied = rules.apply_change(current, new)
                custody_store.save_custody(tx.conn, applied)
                tx.audit(_custody_event("custody.changed", principal, new, "in_effect", now=now))
            return new, applied

        (change, applied), _ = await self.store.write(_tx)
        if applied is not None:
            self._custody[change.seal_id] = applied
            log.info("custody.changed", seal_id=change.seal_id, kind=change.kind.value)
            # The old holder's unlock does not carry over to the new holder.
            if change.kind is CustodyChangeKind.HANDOVER and self.tokens.state(change.seal_id).unlocked:
                await self.tokens.lock(change.seal_id)
        return change

    async def get_change(self, change_id: str) -> CustodyChange:
        return await self.store.custody_change(change_id)

    # -- R08 and idle lock: run periodically ------------------------------------------------------
    async def tick(self) -> list[tuple[str, str]]:
        """Lock what must be locked now; returns (seal_id, why) for each action taken."""
        now = self.clock()
        actions: list[tuple[str, str]] = []
        for seal_id, seal in self.config.seals.items():
            state = self.tokens.state(seal_id)
            if state.present and rules.return_overdue(seal.hours, now):
                day = rules.local_day(seal.hours, now)
                if self._alerted_day.get(seal_id) != day:
                    self._alerted_day[seal_id] = day
                    self.not_returned_alerts[seal_id] += 1
                    self.on_not_returned(seal_id)
                    log.warning("token.not_returned", seal_id=seal_id, day=day)
                    await self._record_not_returned(seal_id, day, now)
                    actions.append((seal_id, "not_returned"))
            if not state.unlocked:
                continue
            if not rules.within_hours(seal.hours, now):
                why = "out_of_hours"
            elif rules.idle_expired(self.tokens.last_use.get(seal_id, now), now, self.idle_lock):
                why = "idle"
            elif seal_id in self._custody and state.unlocked_by not in self._custody[seal_id].holders(now):
                why = "delegation_ended"  # R09: the delegate's unlock ends with the delegation
            else:
                continue
            await self.tokens.lock(seal_id)
            await self._audit_system("token.auto_locked", seal_id, "locked", why)
            log.info("token.auto_locked", seal_id=seal_id, why=why)
            actions.append((seal_id, why))
        return actions

    async def _record_not_returned(self, seal_id: str, day: str, now: datetime) -> None:
        """The alert's audit record and the mark that this night has alerted, in one transaction."""

        def _tx(tx: Transaction) -> None:
            custody_store.mark_return_alerted(tx.conn, seal_id, day, now)
            tx.emit(token_not_returned_event(seal_id, now))  # issue 17: the outbox
            tx.audit(
                AuditEvent(
                    event="token.not_returned",
                    seal_id=seal_id,
                    outcome="alert",
                    reason="same_day_return",
                    details={"local_day": day},
                )
            )

        await self.store.write(_tx)

    async def _audit_system(self, event: str, seal_id: str, outcome: str, reason: str) -> None:
        await self.store.write(
            lambda tx: tx.audit(AuditEvent(event=event, seal_id=seal_id, outcome=outcome, reason=reason))
        )


def _custody_event(
    event: str, principal: Principal, change: CustodyChange, outcome: str, now: datetime | None = None
) -> AuditEvent:
    details: dict[str, str | int | bool | None] = {
        "change_id": change.change_id,
        "kind": change.kind.value,
        "to_principal": change.to_principal,
        "window_start": change.window_start.isoformat() if change.window_start else None,
        "window_end": change.window_end.isoformat() if change.window_end else None,
        "approvals": len(change.approvals),
    }
    if now is not None:
        details["effective_at"] = now.isoformat()
    return AuditEvent(
        event=event,
        principal=principal.name,
        role="admin" if event.endswith("proposed") else "approver",
        seal_id=change.seal_id,
        outcome=outcome,
        reason=change.comment,
        details=details,
    )
