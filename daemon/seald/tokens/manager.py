"""PKCS#11 tokens: presence, custodian unlock/lock, and serial key operations.

The PKCS#11 module is loaded in one place (:func:`load_module`); which token
belongs to which seal is decided by a pure function (:func:`match_token`).
Every call on a token runs on that token's own thread: PKCS#11 forbids
concurrent calls on a session, and tokens are serial devices anyway.

The PIN goes from the RPC straight into C_Login and is dropped; it is never
stored, logged, or put in an error message.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pkcs11
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pkcs11 import Attribute, Mechanism, ObjectClass
from pkcs11 import exceptions as p11x

from seald.config import SealConfig
from seald.domain.errors import (
    InvalidInput,
    PermissionDenied,
    PreconditionFailed,
    ServiceUnavailable,
)

T = TypeVar("T")


@dataclass(frozen=True)
class SlotToken:
    """What the slot list says about one inserted token (no session needed)."""

    label: str
    serial: str
    token: Any  # pkcs11.Token


@dataclass(frozen=True)
class TokenState:
    seal_id: str
    present: bool
    unlocked: bool
    token_label: str
    token_serial: str
    since: datetime
    unlocked_by: str = ""
    rogue_reason: str = ""

    @property
    def not_ready_reason(self) -> str:
        if self.rogue_reason:
            return self.rogue_reason
        if not self.present:
            return (
                f"the token of seal {self.seal_id} (label {self.token_label}, serial "
                f"{self.token_serial}) is not inserted; the custodian must insert it"
            )
        if not self.unlocked:
            return f"the token of seal {self.seal_id} is locked; the custodian must unlock it"
        return ""


def load_module(module: Path) -> Any:
    """The single place that loads the PKCS#11 library."""
    try:
        return pkcs11.lib(str(module))
    except (RuntimeError, OSError, p11x.PKCS11Error) as ex:
        raise ServiceUnavailable(
            f"cannot load the PKCS#11 module {module}: {type(ex).__name__}; check [pkcs11].module",
            reason="pkcs11_module",
        ) from ex


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").strip()
    return str(value).strip()


def match_token(seal: SealConfig, slot_tokens: list[SlotToken]) -> SlotToken | None:
    """Pure: the inserted token that is this seal's (label AND serial), if any."""
    for candidate in slot_tokens:
        if candidate.label == seal.token_label and candidate.serial == seal.token_serial:
            return candidate
    return None


class TokenManager:
    def __init__(
        self,
        module: Path,
        seals: Mapping[str, SealConfig],
        certificates: Mapping[str, bytes],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._module_path = module
        self._seals = dict(seals)
        self._certificates = dict(certificates)  # registered certificate DER per seal
        self._clock = clock
        self._lib: Any = None
        self._executors = {
            seal_id: ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"token-{seal_id}")
            for seal_id in seals
        }
        self._sessions: dict[str, Any] = {}
        now = clock()
        self._states = {
            seal_id: TokenState(
                seal_id=seal_id,
                present=False,
                unlocked=False,
                token_label=s.token_label,
                token_serial=s.token_serial,
                since=now,
            )
            for seal_id, s in seals.items()
        }
        self._listeners: list[Callable[[TokenState], None]] = []

    # -- observation ---------------------------------------------------------------------------
    def add_listener(self, listener: Callable[[TokenState], None]) -> None:
        self._listeners.append(listener)

    def state(self, seal_id: str) -> TokenState:
        return self._states[seal_id]

    def states(self) -> list[TokenState]:
        return list(self._states.values())

    def certificate_der(self, seal_id: str) -> bytes:
        return self._certificates[seal_id]

    def certificate_sha256(self, seal_id: str) -> str:
        return hashlib.sha256(self._certificates[seal_id]).hexdigest()

    def _set(self, state: TokenState) -> None:
        old = self._states[state.seal_id]
        if (old.present, old.unlocked, old.rogue_reason) == (
            state.present,
            state.unlocked,
            state.rogue_reason,
        ):
            self._states[state.seal_id] = replace(state, since=old.since)
            return
        self._states[state.seal_id] = state
        for listener in self._listeners:
            listener(state)

    async def _on_token(self, seal_id: str, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executors[seal_id], fn)

    # -- presence ------------------------------------------------------------------------------
    def _slot_tokens(self) -> list[SlotToken]:
        if self._lib is None:
            self._lib = load_module(self._module_path)
        found = []
        for slot in self._lib.get_slots(token_present=True):
            try:
                token = slot.get_token()
            except p11x.PKCS11Error:
                continue  # a slot that emptied between listing and reading
            found.append(
                SlotToken(label=_text(token.label), serial=_text(token.serial), token=token)
            )
        return found

    async def refresh(self) -> None:
        """Re-read the slot list and update presence of every seal's token."""
        slot_tokens = await asyncio.get_running_loop().run_in_executor(None, self._slot_tokens)
        now = self._clock()
        for seal_id, seal in self._seals.items():
            match = match_token(seal, slot_tokens)
            state = self._states[seal_id]
            if match is None and state.present:
                await self._drop_session(seal_id)
                self._set(replace(state, present=False, unlocked=False, unlocked_by="", since=now))
            elif match is not None and not state.present:
                self._set(replace(state, present=True, since=now))

    # -- custody: unlock / lock ----------------------------------------------------------------
    async def unlock(self, seal_id: str, pin: str, principal: str) -> TokenState:
        await self.refresh()
        state = self._states[seal_id]
        if not state.present:
            raise PreconditionFailed(state.not_ready_reason, reason="token_absent")
        if state.unlocked:
            return state
        if not pin:
            raise InvalidInput("the PIN is empty; enter the token's user PIN", reason="pin_missing")
        seal = self._seals[seal_id]
        registered = self._certificates[seal_id]

        def _login() -> Any:
            match = match_token(seal, self._slot_tokens())
            if match is None:
                raise PreconditionFailed(state.not_ready_reason, reason="token_absent")
            try:
                session = match.token.open(user_pin=pin, rw=False)
            except p11x.PinIncorrect as ex:
                raise PermissionDenied(
                    f"wrong PIN for the token of seal {seal_id}{_tries_left(match.token)}; "
                    "the daemon does not retry — check the PIN and try again",
                    reason="pin_incorrect",
                ) from ex
            except p11x.PinLocked as ex:
                raise PreconditionFailed(
                    f"the token of seal {seal_id} is PIN-locked; the security officer must reset it",
                    reason="pin_locked",
                ) from ex
            except p11x.PKCS11Error as ex:
                raise PreconditionFailed(
                    f"the token of seal {seal_id} refused the login ({type(ex).__name__}); "
                    "re-insert it and try again",
                    reason="token_error",
                ) from ex
            try:
                _check_key_matches(session, seal, registered)
            except BaseException:
                session.close()
                raise
            return session

        session = await self._on_token(seal_id, _login)
        self._sessions[seal_id] = session
        new = replace(state, unlocked=True, unlocked_by=principal, since=self._clock())
        self._set(new)
        return new

    async def lock(self, seal_id: str) -> TokenState:
        await self._drop_session(seal_id)
        state = replace(self._states[seal_id], unlocked=False, unlocked_by="", since=self._clock())
        self._set(state)
        return state

    async def _drop_session(self, seal_id: str) -> None:
        session = self._sessions.pop(seal_id, None)
        if session is None:
            return

        def _close() -> None:
            # The token may be gone already; the session died with it.
            with contextlib.suppress(p11x.PKCS11Error):
                session.close()

        await self._on_token(seal_id, _close)

    async def close(self) -> None:
        for seal_id in list(self._sessions):
            await self._drop_session(seal_id)
        for executor in self._executors.values():
            executor.shutdown(wait=True)

    # -- key operations ------------------------------------------------------------------------
    async def with_session(self, seal_id: str, fn: Callable[[Any], T]) -> T:
        """Run ``fn(session)`` on the token's thread; fails closed if not ready."""
        state = self._states[seal_id]
        session = self._sessions.get(seal_id)
        if not state.present or not state.unlocked or session is None:
            raise PreconditionFailed(state.not_ready_reason, reason=_not_ready_code(state))

        def _run() -> T:
            # Re-check on the token thread: a removal may have happened while queued.
            if self._sessions.get(seal_id) is not session:
                raise PreconditionFailed(
                    self._states[seal_id].not_ready_reason or "the token was locked",
                    reason="token_locked",
                )
            return fn(session)

        return await self._on_token(seal_id, _run)


def _not_ready_code(state: TokenState) -> str:
    if state.rogue_reason:
        return "token_rogue"
    return "token_absent" if not state.present else "token_locked"


def _tries_left(token: Any) -> str:
    flags = int(getattr(token, "flags", 0))
    if flags & 0x00040000:  # CKF_USER_PIN_FINAL_TRY
        return " (one try left before the token locks)"
    if flags & 0x00010000:  # CKF_USER_PIN_COUNT_LOW
        return " (few tries left)"
    return ""


def _check_key_matches(session: Any, seal: SealConfig, registered_der: bytes) -> None:
    """The token must hold the registered certificate and its private key (no rogue token)."""
    try:
        certs = list(
            session.get_objects(
                {Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.LABEL: seal.key_label}
            )
        )
        keys = list(
            session.get_objects(
                {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: seal.key_label}
            )
        )
    except p11x.PKCS11Error as ex:
        raise PreconditionFailed(
            f"cannot read the objects on the token of seal {seal.seal_id}", reason="token_error"
        ) from ex
    if len(keys) != 1 or len(certs) != 1:
        raise PreconditionFailed(
            f"the token of seal {seal.seal_id} does not hold exactly one key and certificate "
            f"labelled {seal.key_label}; it is not the registered seal token",
            reason="token_rogue",
        )
    if bytes(certs[0][Attribute.VALUE]) != registered_der:
        raise PreconditionFailed(
            f"the certificate on the token of seal {seal.seal_id} is not the registered one; "
            "refusing a rogue token",
            reason="token_rogue",
        )
    # A copied certificate proves nothing: the key must sign for the registered public key.
    challenge = os.urandom(32)
    try:
        signature = keys[0].sign(challenge, mechanism=Mechanism.SHA256_RSA_PKCS)
        public_key = x509.load_der_x509_certificate(registered_der).public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise PreconditionFailed(
                f"seal {seal.seal_id}'s certificate does not hold an RSA key", reason="token_rogue"
            )
        public_key.verify(bytes(signature), challenge, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature as ex:
        raise PreconditionFailed(
            f"the key on the token of seal {seal.seal_id} does not match the registered "
            "certificate; refusing a rogue token",
            reason="token_rogue",
        ) from ex
    except p11x.PKCS11Error as ex:
        raise PreconditionFailed(
            f"the token of seal {seal.seal_id} could not prove its key ({type(ex).__name__})",
            reason="token_error",
        ) from ex
