"""Issue 17 in the daemon: approver delegations, use quotas and the notification outbox.

The operations load what they need, apply the pure rules (seald.domain.delegation,
seald.domain.quotas, seald.domain.outbox) and commit the result with its audit records
in ONE store transaction; ending a delegation voids its approvals in that same
transaction, and every request change writes its outbox events in it too (through the
store's notifier, :class:`RequestNotifier`).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from seald.config import Config
from seald.domain import delegation as rules
from seald.domain import lifecycle
from seald.domain.audit import AuditEvent
from seald.domain.delegation import ALL_SEALS, Delegation, DelegationState
from seald.domain.errors import InvalidInput, NotFound, PermissionDenied, PreconditionFailed
from seald.domain.model import Principal, RequestState, Role, SealRequest
from seald.domain.outbox import Event, request_events
from seald.domain.quotas import Usage, check_submit, periods
from seald.notify.deliverer import OutboxNotifier
from seald.store import delegations as delegation_rows
from seald.store import outbox
from seald.store import requests as request_table
from seald.store.database import Reader, Store, Transaction
from seald.store.requests import count_uses

ConfigSource = Callable[[], Config]
Row = tuple[str, str, str, int, str]


def _delegation_event(event: str, d: Delegation, principal: str, role: str) -> AuditEvent:
    return AuditEvent(
        event=event,
        principal=principal,
        role=role,
        seal_id=d.seal_id,
        outcome=d.state.value,
        reason=d.reason,
        details={
            "delegation_id": d.delegation_id,
            "delegator": d.delegator,
            "delegate": d.delegate,
            "scope": d.seal_id or "all seals",
            "categories": ",".join(sorted(d.categories)),
            "valid_from": d.valid_from.isoformat(),
            "valid_until": d.valid_until.isoformat(),
        },
    )


def open_requests(tx: Transaction) -> list[SealRequest]:
    return request_table.unfinished_requests(tx.conn)


class Workflow:
    def __init__(self, store: Store, config: ConfigSource, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.config = config
        self.clock = clock

    # -- quotas ---------------------------------------------------------------------------

    def check_quota_tx(self, tx: Transaction, seal_id: str, documents: int, now: datetime) -> None:
        """In the submit transaction (one writer): concurrent submits cannot overshoot."""
        sc = self.config().seals[seal_id]
        if not sc.quotas.any:
            return
        check_submit(seal_id, sc.quotas, self.usage_tx(tx, seal_id, now), documents)

    def usage_tx(self, tx: Transaction, seal_id: str, now: datetime) -> Usage:
        zone = self.config().seals[seal_id].hours.tz
        p = periods(now, zone)
        return Usage(
            uses_today=count_uses(tx.conn, seal_id, p.day_start, p.day_end),
            uses_this_month=count_uses(tx.conn, seal_id, p.month_start, p.month_end),
            periods=p,
        )

    # -- delegations ------------------------------------------------------------------------

    def _principal(self, name: str) -> Principal:
        entry = self.config().principals.get(name)
        if entry is None:
            raise NotFound(f"no principal {name!r} in the allow-list", reason="principal_not_found")
        return entry.principal

    async def propose(
        self,
        proposer: Principal,
        *,
        delegate: str,
        delegator: str,
        seal_id: str,
        categories: Sequence[str],
        valid_from: datetime | None,
        valid_until: datetime | None,
        comment: str,
    ) -> Delegation:
        now = self.clock()
        # R04 first: only an approver (their own authority) or an admin of the seal proposes.
        scope = seal_id or None
        if not (proposer.has(Role.APPROVER, scope) or proposer.has(Role.ADMIN, scope)):
            raise PermissionDenied(
                f"{proposer.name} is neither an approver nor an admin of "
                f"{seal_id or 'any seal'}; only they propose a delegation",
                reason="not_delegator_or_admin",
            )
        if valid_from is None or valid_until is None:
            raise InvalidInput(
                "a delegation needs a window: give its start and end (not_before, not_after)",
                reason="bad_delegation_range",
            )
        start, end = valid_from, valid_until
        giver = self._principal(delegator or proposer.name)
        receiver = self._principal(delegate)
        if seal_id and seal_id not in self.config().seals:
            raise NotFound(f"no seal {seal_id!r}", reason="seal_not_found")
        max_days = self.config().requests.max_delegation_days

        def _tx(tx: Transaction) -> Delegation:
            d = rules.propose(
                delegation_id="D-" + uuid.uuid4().hex[:16],
                proposer=proposer,
                delegator=giver,
                delegate=receiver,
                seal_id=seal_id or ALL_SEALS,
                categories=categories,
                valid_from=start,
                valid_until=end,
                existing=delegation_rows.all_delegations(tx.conn, live_only=True),
                open_requests=open_requests(tx),
                max_duration=timedelta(days=max_days),
                now=now,
                reason=comment,
            )
            delegation_rows.save(tx.conn, d)
            tx.audit(_delegation_event("delegation.proposed", d, proposer.name, _role(proposer)))
            return d

        result, _ = await self.store.write(_tx)
        return result

    async def approve(self, admin: Principal, delegation_id: str) -> Delegation:
        now = self.clock()
        if Role.ADMIN not in admin.roles:
            raise PermissionDenied(
                f"{admin.name} is not an admin; a second admin approves a delegation",
                reason="not_an_admin",
            )

        def _tx(tx: Transaction) -> Delegation:
            d = rules.approve(delegation_rows.get(tx.conn, delegation_id), admin=admin, now=now)
            delegation_rows.save(tx.conn, d)
            tx.audit(_delegation_event("delegation.approved", d, admin.name, Role.ADMIN.value))
            return d

        result, _ = await self.store.write(_tx)
        return result

    async def end(self, principal: Principal, delegation_id: str, comment: str = "") -> Delegation:
        now = self.clock()
        if not principal.roles & {Role.APPROVER, Role.ADMIN}:
            raise PermissionDenied(
                f"{principal.name} may not end delegations; the delegator, the delegate or an "
                "admin ends one",
                reason="not_delegation_party",
            )

        def _tx(tx: Transaction) -> Delegation:
            d = rules.end(delegation_rows.get(tx.conn, delegation_id), by=principal, now=now)
            delegation_rows.save(tx.conn, d)
            tx.audit(_delegation_event("delegation.ended", d, principal.name, _role(principal)))
            self._void(tx, d, now)
            return d

        result, _ = await self.store.write(_tx)
        return result

    async def sweep(self) -> int:
        """End every delegation past its range, voiding its approvals (the expiry loop)."""
        now = self.clock()

        def _tx(tx: Transaction) -> int:
            done = 0
            for d in delegation_rows.all_delegations(tx.conn, live_only=True):
                if d.expired(now):
                    ended = rules.expire(d, now=now)
                    delegation_rows.save(tx.conn, ended)
                    tx.audit(_delegation_event("delegation.expired", ended, "", ""))
                    self._void(tx, ended, now)
                    done += 1
            return done

        result, _ = await self.store.write(_tx)
        return result

    def _void(self, tx: Transaction, d: Delegation, now: datetime) -> None:
        for request in open_requests(tx):
            if request.state is RequestState.SIGNING:
                continue  # its approvals were used when signing began
            policy = self.config().policy_for_request(request, now)
            voided = lifecycle.void_delegated_approvals(
                request, delegation_id=d.delegation_id, policy=policy, now=now
            )
            if voided is request:
                continue
            tx.save_request(voided)
            tx.audit(
                AuditEvent(
                    event="request.approval_voided",
                    principal=d.delegate,
                    role=Role.APPROVER.value,
                    seal_id=request.seal_id,
                    request_id=request.request_id,
                    reason=request.reason,
                    outcome=voided.state.value,
                    details={
                        "delegation_id": d.delegation_id,
                        "acting_for": d.delegator,
                        "why": f"delegation {d.state.value}",
                    },
                )
            )

    def require_delegations_in_force(self, tx: Transaction, request: SealRequest, now: datetime) -> None:
        """At the signing intent: every delegated approval's delegation is still in force.

        Between a delegation's end and the sweep that voids its approvals nothing is
        signed on them (fail closed); the signer then runs the sweep at once."""
        ids = {a.delegation_id for a in request.approvals if a.delegation_id}
        if not ids:
            return
        known = {d.delegation_id: d for d in delegation_rows.all_delegations(tx.conn)}
        for delegation_id in sorted(ids):
            d = known.get(delegation_id)
            if d is None or not d.in_force(now):
                raise PreconditionFailed(
                    f"request {request.request_id} has an approval under delegation "
                    f"{delegation_id}, which is no longer in force; that approval is void",
                    reason="delegation_not_in_force",
                )

    async def delegations(self, principal: Principal, *, live_only: bool) -> list[Delegation]:
        found = await self.store.read(
            lambda db: delegation_rows.all_delegations(db.conn, live_only=live_only)
        )
        if Role.ADMIN in principal.roles or Role.AUDITOR in principal.roles:
            return found
        return [d for d in found if principal.name in (d.delegator, d.delegate)]

    def delegation_for_approval(
        self, tx: Transaction, delegate: Principal, request: SealRequest, on_behalf_of: str, now: datetime
    ) -> Delegation | None:
        """The delegation an approval is given under: None when the approver approves as
        themself (no on_behalf_of)."""
        if not on_behalf_of:
            return None
        if on_behalf_of == delegate.name:
            raise InvalidInput("on_behalf_of names yourself; leave it empty", reason="bad_on_behalf_of")
        return rules.delegation_for(
            delegation_rows.all_delegations(tx.conn, live_only=True),
            delegate=delegate.name,
            seal_id=request.seal_id,
            category=request.category,
            at=now,
            on_behalf_of=on_behalf_of,
        )

    # -- notifications -----------------------------------------------------------------------

    async def queue(self, principal: Principal, state: str) -> tuple[outbox.QueueStats, list[Row]]:
        _require_admin(principal)

        def read(db: Reader) -> tuple[outbox.QueueStats, list[Row]]:
            return outbox.stats(db.conn), outbox.deliveries(db.conn, state)[-1000:]

        return await self.store.read(read)

    async def replay(self, principal: Principal, event_ids: Sequence[str], webhook: str) -> int:
        _require_admin(principal)
        now = self.clock()

        def _tx(tx: Transaction) -> int:
            count = outbox.replay(tx.conn, now, event_ids=event_ids, webhook=webhook)
            tx.audit(
                AuditEvent(
                    event="notify.replayed",
                    principal=principal.name,
                    role=Role.ADMIN.value,
                    outcome=str(count),
                    details={"event_ids": ",".join(event_ids)[:1000], "webhook": webhook},
                )
            )
            return count

        result, _ = await self.store.write(_tx)
        return result


def _role(principal: Principal) -> str:
    return Role.ADMIN.value if Role.ADMIN in principal.roles else Role.APPROVER.value


def _require_admin(principal: Principal) -> None:
    if Role.ADMIN not in principal.roles:
        raise PermissionDenied(
            "only an admin reads or replays the notification outbox", reason="not_an_admin"
        )


def request_notifier(config: ConfigSource, clock: Callable[[], datetime]) -> OutboxNotifier:
    """The store's notifier for the configured webhooks (issue 17)."""
    return OutboxNotifier(config().notify, RequestEvents(config, clock))


class RequestEvents:
    """Which events a request change causes, with who must approve next."""

    def __init__(self, config: ConfigSource, clock: Callable[[], datetime]) -> None:
        self._config = config
        self._clock = clock

    def __call__(self, before: SealRequest | None, after: SealRequest) -> list[Event]:
        now = self._clock()
        needed: tuple[str, ...] = ()
        step = ""
        if after.state is RequestState.PENDING:
            policy = self._config().policy_for_request(after, now)
            standing = policy.standing(after.requester, after.approvals, lifecycle.facts_of(after))
            was_pending = before is not None and before.state is RequestState.PENDING
            if standing is not None and standing.current is not None:
                # Tell who must approve when the request arrives at a step: on submit,
                # when the chain moves on, or when it comes back to pending (voided).
                moved = not was_pending or (
                    before is not None and _current(policy, before) != standing.current
                )
                if moved:
                    step = standing.current
                    needed = next(s.needed_from for s in standing.steps if s.state == "current")
            elif standing is None and not was_pending:
                counted = {a.acting_for or a.approver for a in after.approvals}
                needed = tuple(sorted((policy.eligible or frozenset()) - counted - {after.requester}))
        ids = [uuid.uuid4().hex for _ in range(3)]
        return request_events(before, after, new_event_id=ids, now=now, needed_from=needed, step=step)


def _current(policy: object, request: SealRequest) -> str | None:
    standing = policy.standing(  # type: ignore[attr-defined]
        request.requester, request.approvals, lifecycle.facts_of(request)
    )
    return standing.current if standing is not None else None


__all__ = [
    "DelegationState",
    "RequestEvents",
    "Workflow",
]
