"""Approvers' WebAuthn credentials and approval by assertion: the I/O shell (issue 18).

Load -> pure rule (``domain/webauthn.py``) -> store + audit in one transaction, like
``seald.service``. The caller is the authenticated principal of the gRPC call: an admin,
the credential's owner, or the ``relay`` (sealweb). The relay may carry registrations
and assertions; the approver is always the owner of the credential whose key signed,
and ``RequestService.approve`` runs every check it runs for ``sealctl approve`` with that
owner as the approver.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from seald.config import Config, WebAuthnConfig
from seald.domain import lifecycle
from seald.domain import webauthn as rules
from seald.domain.audit import AuditEvent
from seald.domain.errors import NotFound, PermissionDenied, PreconditionFailed
from seald.domain.model import Principal, Role, SealRequest
from seald.domain.text_policy import MAX_TEXT
from seald.service.requests import RequestService
from seald.service.settings import LiveConfig
from seald.store import webauthn as tables
from seald.store.database import Store, Transaction
from seald.webauthn.approvals import assertion_challenge, verify_webauthn_approval
from seald.webauthn.verify import (
    Assertion,
    authentication_options,
    registration_options,
    verify_assertion,
    verify_registration,
)

log = structlog.get_logger("seald.webauthn")

# Enrolment codes: 20 characters from an alphabet without look-alikes (~100 bits).
_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
_REGISTRATION_TTL = timedelta(minutes=5)


def _code() -> str:
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(20))
    return "-".join(raw[i : i + 5] for i in range(0, 20, 5))


def _event(
    event: str, caller: Principal, *, outcome: str, reason: str = "", request_id: str = "", **details: Any
) -> AuditEvent:
    return AuditEvent(
        event=event,
        principal=caller.name,
        role=_acting_role(caller).value,
        request_id=request_id,
        outcome=outcome,
        reason=reason,
        details=details,
    )


def _acting_role(caller: Principal) -> Role:
    for role in (Role.ADMIN, Role.RELAY, Role.APPROVER, Role.AUDITOR):
        if role in caller.roles:
            return role
    return next(iter(sorted(caller.roles)), Role.REQUESTER)


class WebAuthnRegistry:
    def __init__(
        self,
        live: LiveConfig,
        store: Store,
        requests: RequestService,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._live = live
        self._store = store
        self._requests = requests
        self.clock = clock or (lambda: datetime.now(UTC))
        # Registration and sign-in challenges and web sessions live in memory: a restart
        # means "begin again" / "sign in again".
        self._registration: dict[str, tuple[bytes, float]] = {}
        self._sign_in: dict[str, float] = {}
        self._sessions: dict[str, rules.WebSession] = {}  # SHA-256 of the token -> session

    async def open(self) -> None:
        """Nothing to load: the tables are created with the store (seald.store.database)."""

    @property
    def config(self) -> Config:
        return self._live.current

    def settings(self) -> WebAuthnConfig:
        if self.config.webauthn is None:
            raise PreconditionFailed(
                "WebAuthn approvals are not configured on this seal host; add a [webauthn] section "
                "(origin, rp_id) to seald.toml",
                reason="webauthn_not_configured",
            )
        return self.config.webauthn

    def principal(self, name: str) -> Principal:
        entry = self.config.principals.get(name)
        if entry is None:
            raise NotFound(f"no principal {name!r} in seald.toml", reason="principal_unknown")
        return entry.principal

    # -- enrolment -----------------------------------------------------------------------------
    async def start_enrolment(self, caller: Principal, principal: str) -> tuple[rules.Enrolment, str]:
        self.settings()
        _require(caller, Role.ADMIN, "start a security-key enrolment")
        who = self.principal(principal)
        code = _code()
        enrolment = rules.start_enrolment(
            enrolment_id=uuid.uuid4().hex,
            principal=who.name,
            principal_is_approver=Role.APPROVER in who.roles,
            code=code,
            started_by=caller.name,
            now=self.clock(),
        )

        def _tx(tx: Transaction) -> None:
            tables.save_enrolment(tx.conn, enrolment)
            tx.audit(
                _event(
                    "webauthn.enrolment_started",
                    caller,
                    outcome="started",
                    enrolment_id=enrolment.enrolment_id,
                    for_principal=who.name,
                    expires_at=enrolment.expires_at.isoformat(),
                )
            )

        await self._store.write(_tx)
        return enrolment, code

    async def _checked_enrolment(self, caller: Principal, enrolment_id: str, code: str) -> rules.Enrolment:
        enrolment = await self._store.read(lambda db: tables.get_enrolment(db.conn, enrolment_id))
        if Role.RELAY not in caller.roles and caller.name != enrolment.principal:
            raise PermissionDenied(
                "only the enrolled person (or the web console carrying their browser) registers a key",
                reason="not_your_enrolment",
            )
        rules.redeem_enrolment(enrolment, code, self.clock())  # checked, not stored yet
        return enrolment

    async def begin_registration(self, caller: Principal, enrolment_id: str, code: str) -> tuple[str, str]:
        settings = self.settings()
        enrolment = await self._checked_enrolment(caller, enrolment_id, code)
        who = self.principal(enrolment.principal)
        challenge = os.urandom(32)
        self._registration[enrolment_id] = (challenge, time.monotonic() + _REGISTRATION_TTL.total_seconds())
        existing = await self.list_credentials(who, who.name)
        options = registration_options(
            rp_id=settings.rp_id,
            rp_name=settings.rp_name,
            principal=who.name,
            display_name=who.display_name,
            challenge=challenge,
            exclude=[c.credential_id for c in existing if c.status is not rules.CredentialStatus.REVOKED],
        )
        return options, who.name

    async def finish_registration(
        self, caller: Principal, enrolment_id: str, code: str, credential_json: str, name: str
    ) -> rules.WebAuthnCredential:
        settings = self.settings()
        await self._checked_enrolment(caller, enrolment_id, code)
        challenge, deadline = self._registration.pop(enrolment_id, (b"", 0.0))
        if not challenge or time.monotonic() > deadline:
            raise PreconditionFailed(
                "no registration in progress for this enrolment (or it took too long); begin again",
                reason="registration_not_started",
            )
        key = verify_registration(
            credential_json, challenge=challenge, rp_id=settings.rp_id, origin=settings.origin
        )
        now = self.clock()

        def _tx(tx: Transaction) -> rules.WebAuthnCredential:
            enrolment = rules.redeem_enrolment(tables.get_enrolment(tx.conn, enrolment_id), code, now)
            if tables.find_credential(tx.conn, key.credential_id) is not None:
                raise PreconditionFailed("this security key is already enrolled", reason="credential_exists")
            credential = rules.new_credential(
                enrolment,
                credential_id=key.credential_id,
                public_key=key.public_key,
                sign_count=key.sign_count,
                attestation_format=key.attestation_format,
                aaguid=key.aaguid,
                name=name,
                now=now,
            )
            tables.save_enrolment(tx.conn, enrolment)
            tables.save_credential(tx.conn, credential)
            tx.audit(
                _event(
                    "webauthn.credential_registered",
                    caller,
                    outcome=credential.status.value,
                    enrolment_id=enrolment_id,
                    for_principal=credential.principal,
                    credential_id=credential.credential_id,
                    public_key_sha256=credential.public_key_sha256,
                    attestation_format=credential.attestation_format,
                    aaguid=credential.aaguid,
                )
            )
            return credential

        credential, _ = await self._store.write(_tx)
        return credential

    # -- credentials ---------------------------------------------------------------------------
    async def _change(
        self,
        caller: Principal,
        credential_id: str,
        step: Callable[[rules.WebAuthnCredential, datetime], rules.WebAuthnCredential],
        event: str,
        allowed: Callable[[rules.WebAuthnCredential], None],
    ) -> rules.WebAuthnCredential:
        now = self.clock()

        def _tx(tx: Transaction) -> rules.WebAuthnCredential:
            current = rules.require_found(tables.find_credential(tx.conn, credential_id), credential_id)
            allowed(current)
            new = step(current, now)
            tables.save_credential(tx.conn, new)
            tx.audit(
                _event(
                    event,
                    caller,
                    outcome=new.status.value,
                    for_principal=new.principal,
                    credential_id=new.credential_id,
                    name=new.name,
                    public_key_sha256=new.public_key_sha256,
                )
            )
            return new

        new, _ = await self._store.write(_tx)
        return new

    async def approve_credential(self, caller: Principal, credential_id: str) -> rules.WebAuthnCredential:
        _require(caller, Role.ADMIN, "approve a security key")
        return await self._change(
            caller,
            credential_id,
            lambda c, now: rules.approve_credential(c, caller.name, now),
            "webauthn.credential_approved",
            lambda c: None,
        )

    def _admin_or_owner(self, caller: Principal, what: str) -> Callable[[rules.WebAuthnCredential], None]:
        def check(credential: rules.WebAuthnCredential) -> None:
            if Role.ADMIN not in caller.roles and caller.name != credential.principal:
                raise PermissionDenied(f"only an admin or the key's owner may {what} it", reason="not_owner")

        return check

    async def name_credential(
        self, caller: Principal, credential_id: str, name: str
    ) -> rules.WebAuthnCredential:
        clean = rules.check_name(name)
        return await self._change(
            caller,
            credential_id,
            lambda c, now: replace(c, name=clean),
            "webauthn.credential_named",
            self._admin_or_owner(caller, "rename"),
        )

    async def revoke_credential(self, caller: Principal, credential_id: str) -> rules.WebAuthnCredential:
        return await self._change(
            caller,
            credential_id,
            lambda c, now: rules.revoke_credential(c, caller.name, now),
            "webauthn.credential_revoked",
            self._admin_or_owner(caller, "revoke"),
        )

    async def list_credentials(
        self, caller: Principal, principal: str = ""
    ) -> list[rules.WebAuthnCredential]:
        if not caller.roles & {Role.ADMIN, Role.AUDITOR}:
            if principal and principal != caller.name:
                raise PermissionDenied("you may list only your own security keys", reason="not_owner")
            principal = caller.name
        return await self._store.read(lambda db: tables.list_credentials(db.conn, principal))

    # -- approval by assertion -----------------------------------------------------------------
    async def _credential(self, credential_id: str) -> rules.WebAuthnCredential | None:
        return await self._store.read(lambda db: tables.find_credential(db.conn, credential_id))

    def _may_carry(self, caller: Principal, credential: rules.WebAuthnCredential) -> None:
        if Role.RELAY not in caller.roles and caller.name != credential.principal:
            raise PermissionDenied(
                "only the key's owner, or the web console carrying their browser, approves with it",
                reason="not_owner",
            )

    async def begin_approval(
        self, caller: Principal, request_id: str, credential_id: str, comment: str
    ) -> tuple[bytes, str, datetime]:
        """seald's statement for approving ``request_id`` with this credential, kept as a
        pending challenge (SHA-256 of the statement) until answered or expired."""
        settings = self.settings()
        credential = rules.require_usable(await self._credential(credential_id))
        self._may_carry(caller, credential)
        owner = self.principal(credential.principal)
        request: SealRequest = await self._requests.get(owner, request_id)
        lifecycle.require_eligible_approver(request, owner)  # R05: fail before the key is asked
        if len(comment) > MAX_TEXT:
            raise PreconditionFailed(
                f"comment is longer than {MAX_TEXT} characters", reason="comment_too_long"
            )
        now = self.clock()
        wall = datetime.now(UTC)
        statement = rules.build_statement(
            rules.base_statement_for(request, signed_at=wall.strftime("%Y-%m-%dT%H:%M:%SZ"), comment=comment),
            principal=owner.name,
            credential_id=credential.credential_id,
            rp_id=settings.rp_id,
            origin=settings.origin,
            nonce=secrets.token_hex(16),
        )
        data = statement.canonical_bytes()
        challenge = rules.statement_challenge(data)
        pending = rules.PendingChallenge(
            statement=data,
            request_id=request_id,
            principal=owner.name,
            credential_id=credential.credential_id,
            issued_at=now,
            expires_at=now + rules.CHALLENGE_TTL,
        )

        def _tx(tx: Transaction) -> None:
            tables.drop_expired_challenges(tx.conn, now)
            tables.save_challenge(tx.conn, challenge.hex(), pending)

        await self._store.write(_tx)
        options = authentication_options(
            rp_id=settings.rp_id, challenge=challenge, allow=[credential.credential_id]
        )
        return data, options, pending.expires_at

    async def finish_approval(self, caller: Principal, request_id: str, assertion: Assertion) -> SealRequest:
        settings = self.settings()
        credential_before = await self._credential(assertion.credential_id)
        if credential_before is not None:
            self._may_carry(caller, credential_before)
        challenge_key = assertion_challenge(assertion).hex()
        now = self.clock()

        def _verify(tx: Transaction) -> Any:
            pending = tables.take_challenge(tx.conn, challenge_key)  # deleted: answerable once
            credential = tables.find_credential(tx.conn, assertion.credential_id)
            approval = verify_webauthn_approval(
                pending=pending,
                request_id=request_id,
                assertion=assertion,
                credential=credential,
                rp_id=settings.rp_id,
                origin=settings.origin,
                now=now,
            )
            tables.save_credential(
                tx.conn, replace(approval.credential, sign_count=approval.new_sign_count, last_used_at=now)
            )
            return approval

        try:
            approval, _ = await self._store.write(_verify)
        except rules.CloneSuspected as ex:
            await self._clone_alarm(caller, request_id, challenge_key, credential_before, ex)
            raise
        owner = self.principal(approval.approver)
        return await self._requests.approve(
            owner,
            request_id,
            document_sha256=approval.statement.base.document_sha256,
            approval_digest=approval.statement.base.approval_digest,
            comment=approval.statement.base.comment,
            certificate_sha256="",
            signed=approval,
        )

    # -- web sign-in: seald learns whom the relay acts for -----------------------------------
    def _relay_only(self, caller: Principal) -> None:
        if Role.RELAY not in caller.roles:
            raise PermissionDenied("only the web console (relay) signs people in", reason="not_a_relay")

    async def begin_sign_in(self, caller: Principal) -> str:
        settings = self.settings()
        self._relay_only(caller)
        now = time.monotonic()
        for key, deadline in list(self._sign_in.items()):
            if deadline < now:
                del self._sign_in[key]
        if len(self._sign_in) > 10_000:
            raise PreconditionFailed("too many sign-ins in progress; try again in a minute", reason="busy")
        challenge = os.urandom(32)
        self._sign_in[challenge.hex()] = now + rules.CHALLENGE_TTL.total_seconds()
        return authentication_options(rp_id=settings.rp_id, challenge=challenge, allow=[])

    async def finish_sign_in(self, caller: Principal, assertion: Assertion) -> tuple[str, Principal]:
        """A fresh token for the credential's owner; only the token's SHA-256 is kept."""
        settings = self.settings()
        self._relay_only(caller)
        challenge = assertion_challenge(assertion)
        deadline = self._sign_in.pop(challenge.hex(), 0.0)
        if deadline < time.monotonic():
            raise PermissionDenied(
                "this sign-in answers no open challenge; sign in again", reason="challenge_unknown"
            )
        now = self.clock()

        def _tx(tx: Transaction) -> rules.WebAuthnCredential:
            credential = rules.require_usable(tables.find_credential(tx.conn, assertion.credential_id))
            count = verify_assertion(
                assertion,
                challenge=challenge,
                rp_id=settings.rp_id,
                origin=settings.origin,
                public_key=credential.public_key,
            )
            count = rules.next_sign_count(credential, count)
            updated = replace(credential, sign_count=count, last_used_at=now)
            tables.save_credential(tx.conn, updated)
            tx.audit(
                _event(
                    "web.signed_in",
                    caller,
                    outcome="signed_in",
                    for_principal=credential.principal,
                    credential_id=credential.credential_id,
                    webauthn_sign_count=count,
                )
            )
            return updated

        try:
            credential, _ = await self._store.write(_tx)
        except rules.CloneSuspected as ex:
            found = await self._credential(assertion.credential_id)
            await self._clone_alarm(caller, "", "", found, ex)
            raise
        who = self.principal(credential.principal)
        token = secrets.token_urlsafe(32)
        self._sessions[hashlib.sha256(token.encode()).hexdigest()] = rules.WebSession(
            principal=who.name,
            relay=caller.name,
            credential_id=credential.credential_id,
            created_at=now,
            last_seen=now,
        )
        return token, who

    def acting_principal(self, relay: Principal, token: str, method: str) -> Principal:
        """The signed-in person a relay's call acts for (metadata ``seal-web-session``)."""
        key = hashlib.sha256(token.encode()).hexdigest()
        session = rules.session_alive(self._sessions.get(key), relay.name, self.clock())
        rules.require_session_method(method)
        self._sessions[key] = session
        return self.principal(session.principal)

    def sign_out(self, token: str) -> None:
        self._sessions.pop(hashlib.sha256(token.encode()).hexdigest(), None)

    async def _clone_alarm(
        self,
        caller: Principal,
        request_id: str,
        challenge_key: str,
        credential: rules.WebAuthnCredential | None,
        ex: rules.CloneSuspected,
    ) -> None:
        """R15: a possibly cloned key is an incident: an alert record, and the challenge is
        spent so the same assertion cannot be tried again."""
        log.error(
            "webauthn.clone_suspected",
            credential_id=credential.credential_id if credential else "",
            principal=credential.principal if credential else "",
        )

        def _tx(tx: Transaction) -> None:
            if challenge_key:
                tables.take_challenge(tx.conn, challenge_key)
            tx.audit(
                _event(
                    "webauthn.clone_suspected",
                    caller,
                    outcome="alert",
                    reason=ex.message,
                    request_id=request_id,
                    for_principal=credential.principal if credential else "",
                    credential_id=credential.credential_id if credential else "",
                    stored_sign_count=credential.sign_count if credential else 0,
                )
            )

        await self._store.write(_tx)


def _require(caller: Principal, role: Role, what: str) -> None:
    if role not in caller.roles:
        raise PermissionDenied(
            f"you ({caller.name}) need the {role.value} role to {what}", reason=f"not_{role.value}"
        )
