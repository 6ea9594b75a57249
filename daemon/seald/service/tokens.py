"""Token custody as the RPCs see it: readiness, unlock, lock, and the token event feed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from seald.domain.audit import AuditEvent
from seald.domain.errors import SealError, ServiceUnavailable
from seald.domain.model import Principal
from seald.runtime.logs import get_logger
from seald.service.catalog import SealCatalog
from seald.service.recorder import Broadcaster, Recorder
from seald.store.database import Store
from seald.tokens.custody_guard import CustodyGuard
from seald.tokens.manager import TokenManager, TokenState

log = get_logger("seald")


class Readiness:
    """Whether a seal can sign now, and if not, the one reason to tell its custodian."""

    def __init__(self, store: Store, tokens: TokenManager, custody: CustodyGuard) -> None:
        self._store = store
        self._tokens = tokens
        self._custody = custody

    def __call__(self, seal_id: str) -> tuple[bool, str]:
        state = self._tokens.state(seal_id)
        if not self._store.writable:
            return False, "the audit trail is not writable; no signature is released"
        # An absent or rogue token first; then what must happen before an unlock helps
        # (initial PIN, hours), so the custodian is not told to unlock when it would be refused.
        token_gone = state.not_ready_reason if not state.present or state.rogue_reason else ""
        reason = token_gone or self._custody.not_ready_reason(seal_id) or state.not_ready_reason
        return (not reason), reason


class TokenService:
    """Unlock and lock by the custodian (R07/R08), each recorded; token changes fanned out."""

    def __init__(
        self,
        catalog: SealCatalog,
        tokens: TokenManager,
        custody: CustodyGuard,
        recorder: Recorder,
        *,
        wake_signer: Callable[[], None],
        read_seal_certificate: Callable[[str], Awaitable[None]],
    ) -> None:
        self._catalog = catalog
        self._tokens = tokens
        self._custody = custody
        self._recorder = recorder
        self._wake_signer = wake_signer
        self._read_seal_certificate = read_seal_certificate
        self.token_events = Broadcaster()
        tokens.add_listener(self._on_token_change)

    def _on_token_change(self, state: TokenState) -> None:
        self.token_events.publish(state)
        log.info(
            "token.state_changed",
            seal_id=state.seal_id,
            present=state.present,
            unlocked=state.unlocked,
            unlocked_by=state.unlocked_by,
        )
        if state.present and state.unlocked:
            self._wake_signer()

    def require_custodian(self, principal: Principal, seal_id: str) -> None:
        self._catalog.seal(seal_id)
        self._custody.require_holder(principal, seal_id)

    async def unlock(self, principal: Principal, seal_id: str, pin: str) -> TokenState:
        self.require_custodian(principal, seal_id)
        try:
            self._custody.require_within_hours(seal_id)  # R08: refused before any PIN is sent
            state = await self._tokens.unlock(seal_id, pin, principal.name)
        except SealError as ex:
            await self._recorder.audit(
                AuditEvent(
                    event="token.unlock_refused",
                    principal=principal.name,
                    role="custodian",
                    seal_id=seal_id,
                    outcome="refused",
                    reason=ex.reason,
                )
            )
            raise
        try:
            unlocked = AuditEvent(
                event="token.unlocked",
                principal=principal.name,
                role="custodian",
                seal_id=seal_id,
                outcome="unlocked",
            )
            if state.unlocked_by == principal.name:  # this PIN worked: they know it (R07, R09)
                await self._custody.record_unlock(seal_id, principal.name, unlocked)
            else:  # already unlocked by someone else: no PIN was checked
                await self._recorder.audit(unlocked)
        except ServiceUnavailable:
            # Fail closed: no unrecorded unlock stays in effect.
            await self._tokens.lock(seal_id)
            raise
        await self._read_seal_certificate(seal_id)
        return state

    async def lock(self, principal: Principal, seal_id: str) -> TokenState:
        self.require_custodian(principal, seal_id)
        state = await self._tokens.lock(seal_id)
        await self._recorder.audit(
            AuditEvent(
                event="token.locked",
                principal=principal.name,
                role="custodian",
                seal_id=seal_id,
                outcome="locked",
            )
        )
        return state
