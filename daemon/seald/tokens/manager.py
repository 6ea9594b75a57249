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
import functools
import hashlib
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pkcs11
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11x
from pkcs11.util.ec import encode_ecdsa_signature

from seald.config import SealConfig
from seald.domain.errors import (
    InvalidInput,
    PermissionDenied,
    PreconditionFailed,
    ServiceUnavailable,
)
from seald.gm import certs as gm_certs
from seald.tokens import pkcs11_sm2

if TYPE_CHECKING:  # skf_backend imports TokenState from here
    from seald.tokens.skf_backend import SkfTokenManager

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
    # Plugged in (udev said so) but not in the slot list until the library is
    # re-initialised, which would log out these unlocked seals: see TokenManager.rescan.
    unlisted_until_locked: tuple[str, ...] = ()

    @property
    def not_ready_reason(self) -> str:
        if self.rogue_reason:
            return self.rogue_reason
        if not self.present and self.unlisted_until_locked:
            held = ", ".join(self.unlisted_until_locked)
            return (
                f"the token of seal {self.seal_id} (label {self.token_label}, serial "
                f"{self.token_serial}) is plugged in, but the PKCS#11 module lists it only after "
                f"re-initialising, which would log out the unlocked seal(s) {held}; lock them "
                "(sealctl token lock SEAL) and it is read at once, or wait until they lock"
            )
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
        skf: SkfTokenManager | None = None,
    ) -> None:
        self._module_path = module
        # Seals on SKF tokens (issue 19) are served by ``skf``; this manager delegates every
        # call about them, so the rest of the daemon sees one token manager.
        self._skf = skf
        self._skf_ids = frozenset(skf.seal_ids) if skf is not None else frozenset()
        self._seals = {k: v for k, v in seals.items() if k not in self._skf_ids}
        certificates = {k: v for k, v in certificates.items() if k not in self._skf_ids}
        self._certificates = dict(certificates)  # registered certificate DER per seal
        self._clock = clock
        self._lib: Any = None
        self._vendor: pkcs11_sm2.VendorModule | None = None  # sm2 seals: vendor mechanisms
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
        # Serials udev reported removed: the slot list may still show them (SoftHSM until
        # re-initialisation, some readers for a moment), so they stay absent until an add.
        self._removed_serials: set[str] = set()
        # Seals whose token udev reported plugged in while the slot list did not show it and
        # other seals were unlocked: the library is re-initialised when the last one locks.
        self._unlisted: set[str] = set()
        self._slots_lock = asyncio.Lock()
        self.last_use: dict[str, datetime] = {}

    # -- observation ---------------------------------------------------------------------------
    def add_listener(self, listener: Callable[[TokenState], None]) -> None:
        self._listeners.append(listener)
        if self._skf is not None:
            self._skf.add_listener(listener)

    def is_skf(self, seal_id: str) -> bool:
        return seal_id in self._skf_ids

    def _skf_for(self, seal_id: str) -> SkfTokenManager | None:
        return self._skf if seal_id in self._skf_ids else None

    @property
    def skf(self) -> SkfTokenManager | None:
        """The SKF backend (None without SKF seals): key creation and certificate import of
        SM2 seals go to it (``is_skf``), and the seal maker's token uses its library."""
        return self._skf

    def state(self, seal_id: str) -> TokenState:
        if (skf := self._skf_for(seal_id)) is not None:
            return skf.state(seal_id)
        return self._states[seal_id]

    def states(self) -> list[TokenState]:
        return list(self._states.values()) + (self._skf.states() if self._skf is not None else [])

    def certificate_der(self, seal_id: str) -> bytes:
        """The registered certificate; b"" for a new seal whose certificate is not imported."""
        if (skf := self._skf_for(seal_id)) is not None:
            return skf.certificate_der(seal_id)
        return self._certificates.get(seal_id, b"")

    def certificate_sha256(self, seal_id: str) -> str:
        der = self.certificate_der(seal_id)
        return hashlib.sha256(der).hexdigest() if der else ""

    def set_certificate(self, seal_id: str, der: bytes) -> None:
        """Register an imported or renewed certificate (committed in the database first)."""
        if (skf := self._skf_for(seal_id)) is not None:
            skf.set_certificate(seal_id, der)
            return
        self._certificates[seal_id] = der

    def _set(self, state: TokenState) -> None:
        old = self._states[state.seal_id]
        if (old.present, old.unlocked, old.rogue_reason, old.unlisted_until_locked) == (
            state.present,
            state.unlocked,
            state.rogue_reason,
            state.unlisted_until_locked,
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

    def mark_removed(self, serial: str | None) -> list[str]:
        """A token left the host: lock its seal NOW, on the loop, before any other await.

        ``serial`` None means the removed device could not be tied to one seal: every
        seal is locked (fail closed). The session is forgotten at once, so every later
        ``with_session`` refuses; it is closed on the token's thread afterwards, and a
        signature already running there is discarded by the check after it.
        """
        now = self._clock()
        affected = []
        for seal_id, seal in self._seals.items():
            if serial is not None and seal.token_serial != serial:
                continue
            if serial is not None:
                self._removed_serials.add(serial)
            else:
                self._removed_serials.add(seal.token_serial)
            session = self._sessions.pop(seal_id, None)
            state = self._states[seal_id]
            if session is not None:
                self._executors[seal_id].submit(_close_quietly, session)
            if state.present or state.unlocked:
                affected.append(seal_id)
            self._unlisted.discard(seal_id)  # unplugged again: no longer waiting to be read
            self._set(
                replace(
                    state,
                    present=False,
                    unlocked=False,
                    unlocked_by="",
                    since=now,
                    unlisted_until_locked=(),
                )
            )
        return affected

    async def rescan(self, serial: str | None) -> None:
        """A token arrived: forget its removal and re-read the slot list.

        SoftHSM (and some modules) only show a new token after C_Finalize/C_Initialize,
        which ends EVERY session of the library. So the library is re-initialised only
        when no seal is unlocked: inserting token A never silently logs out token B.
        With B unlocked, the plain slot list is read (real readers report insertions
        there); if A is not in it, A's status says so and names B, and the library is
        re-initialised as soon as the last unlocked seal locks (``lock``, ``refresh``).
        """
        if serial is None:
            self._removed_serials.clear()
        else:
            self._removed_serials.discard(serial)
        async with self._slots_lock:
            if not self._sessions and self._lib is not None:
                await self._reinitialize_locked()
            await self._refresh_locked()
            if self._sessions and serial is not None:
                self._note_unlisted(serial)

    def _note_unlisted(self, serial: str) -> None:
        """The seal whose token was plugged in is not listed while others are unlocked:
        its status says so and names them."""
        held = tuple(sorted(self._sessions))
        for seal_id, seal in self._seals.items():
            if seal.token_serial != serial:
                continue
            state = self._states[seal_id]
            if state.present or state.rogue_reason or seal.token_serial in self._removed_serials:
                continue
            self._unlisted.add(seal_id)
            self._set(replace(state, unlisted_until_locked=held))

    async def _reinitialize_locked(self) -> None:
        """C_Finalize + C_Initialize (with ``_slots_lock`` held and no session open)."""
        # Drain every token thread first: nothing may be inside the library.
        await asyncio.gather(*(self._on_token(s, lambda: None) for s in self._seals))
        await asyncio.get_running_loop().run_in_executor(None, self._lib.reinitialize)
        # What waited for this has had it: the slot list read next is the whole truth.
        for seal_id in self._unlisted:
            self._set(replace(self._states[seal_id], unlisted_until_locked=()))
        self._unlisted.clear()

    async def refresh(self) -> None:
        """Re-read the slot list and update presence of every seal's token.

        A token left unlisted for another seal's session (``rescan``) is read now if no
        seal is unlocked any more: the re-initialisation it waited for logs nobody out.
        """
        if self._skf is not None:
            await self._skf.refresh()
        # Never while a login is under way: SoftHSM can miss a token in C_GetTokenInfo
        # during another thread's C_Login, and a token read as gone loses its session.
        async with self._slots_lock:
            if self._unlisted and not self._sessions and self._lib is not None:
                await self._reinitialize_locked()
            await self._refresh_locked()
            if self._unlisted and self._sessions:
                held = tuple(sorted(self._sessions))
                for seal_id in self._unlisted:
                    state = self._states[seal_id]
                    if not state.present:
                        self._set(replace(state, unlisted_until_locked=held))

    async def _refresh_locked(self) -> None:
        slot_tokens = await asyncio.get_running_loop().run_in_executor(None, self._slot_tokens)
        slot_tokens = [t for t in slot_tokens if t.serial not in self._removed_serials]
        now = self._clock()
        for seal_id, seal in self._seals.items():
            match = match_token(seal, slot_tokens)
            state = self._states[seal_id]
            if match is None:
                impostor = rogue_by_label(seal, slot_tokens)
                if state.present:
                    await self._drop_session(seal_id)
                self._set(
                    replace(
                        state,
                        present=False,
                        unlocked=False,
                        unlocked_by="",
                        since=now,
                        rogue_reason=impostor,
                    )
                )
            elif not state.present or state.rogue_reason:
                # Certificates are public objects: check them before anyone types a PIN.
                rogue = await self._on_token(seal_id, functools.partial(self._probe, seal, match))
                self._unlisted.discard(seal_id)
                self._set(
                    replace(
                        state,
                        present=not rogue,
                        rogue_reason=rogue,
                        since=now,
                        unlisted_until_locked=(),
                    )
                )

    def _probe(self, seal: SealConfig, match: SlotToken) -> str:
        """'' if the token shows the registered certificate; else why it is a rogue token."""
        if not self._certificates.get(seal.seal_id):
            return ""  # a new seal: nothing registered to compare yet (it cannot sign either)
        try:
            with match.token.open(rw=False) as session:
                certs = list(
                    session.get_objects(
                        {Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.LABEL: seal.key_label}
                    )
                )
                values = [bytes(c[Attribute.VALUE]) for c in certs]
        except p11x.PKCS11Error:
            return ""  # cannot read it now; the full key check at unlock still applies
        if values != [self._certificates[seal.seal_id]]:
            return (
                f"a token labelled {seal.token_label} (serial {seal.token_serial}) holds another "
                f"certificate than seal {seal.seal_id}'s: rogue token refused; remove it and insert "
                "the registered token"
            )
        return ""

    # -- custody: unlock / lock ----------------------------------------------------------------
    async def unlock(self, seal_id: str, pin: str, principal: str) -> TokenState:
        if (skf := self._skf_for(seal_id)) is not None:
            return await skf.unlock(seal_id, pin, principal)
        await self.refresh()
        state = self._states[seal_id]
        if not state.present:
            raise PreconditionFailed(state.not_ready_reason, reason="token_absent")
        if state.unlocked:
            return state
        if not pin:
            raise InvalidInput("the PIN is empty; enter the token's user PIN", reason="pin_missing")
        seal = self._seals[seal_id]
        registered = self.certificate_der(seal_id)
        rogue: list[str] = []

        def _login() -> Any:
            match = match_token(seal, self._slot_tokens())
            if match is None:
                raise PreconditionFailed(state.not_ready_reason, reason="token_absent")
            session = _open_with_pin(match, seal_id, pin, rw=False, wrong="wrong PIN")
            if not registered:
                # A new seal (no certificate yet): unlocked so an admin can create its key;
                # it cannot sign until a certificate for that key is imported.
                return session
            try:
                vendor = self._vendor_module() if seal.pkcs11_sm2_profile else None
                _check_key_matches(session, seal, registered, vendor)
            except PreconditionFailed as ex:
                session.close()
                if ex.reason == "token_rogue":
                    rogue.append(ex.message)
                raise
            except BaseException:
                session.close()
                raise
            return session

        async with self._slots_lock:
            # Concurrent unlocks (a custodian pressing twice, a script racing): whoever got
            # here first logged in; a second C_Login on the same token would be refused.
            if self._states[seal_id].unlocked:
                return self._states[seal_id]
            try:
                session = await self._on_token(seal_id, _login)
            except PreconditionFailed:
                if rogue:
                    self._set(replace(self._states[seal_id], present=False, rogue_reason=rogue[0]))
                raise
        if seal.token_serial in self._removed_serials or not self._states[seal_id].present:
            # Removed while logging in: the new session must not outlive the token.
            self._executors[seal_id].submit(_close_quietly, session)
            raise PreconditionFailed(self._states[seal_id].not_ready_reason, reason="token_absent")
        self._sessions[seal_id] = session
        self.last_use[seal_id] = self._clock()
        new = replace(state, unlocked=True, unlocked_by=principal, since=self._clock())
        self._set(new)
        return new

    async def lock(self, seal_id: str) -> TokenState:
        if (skf := self._skf_for(seal_id)) is not None:
            return await skf.lock(seal_id)
        await self._drop_session(seal_id)
        state = replace(self._states[seal_id], unlocked=False, unlocked_by="", since=self._clock())
        self._set(state)
        if self._unlisted and not self._sessions:
            await self.refresh()  # the last unlocked seal: read the token that waited for it
        return self._states[seal_id]

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
        if self._skf is not None:
            await self._skf.close()
        for seal_id in list(self._sessions):
            await self._drop_session(seal_id)
        for executor in self._executors.values():
            executor.shutdown(wait=True)

    # -- key operations ------------------------------------------------------------------------
    def current_session(self, seal_id: str) -> Any | None:
        """The open session of an unlocked, present token (for identity checks only:
        key operations go through ``with_session``, on the token's thread)."""
        state = self._states.get(seal_id)  # None for SKF seals: they have no PKCS#11 session
        if state is None or not state.present or not state.unlocked:
            return None
        return self._sessions.get(seal_id)

    async def with_session(self, seal_id: str, fn: Callable[[Any], T]) -> T:
        """Run ``fn(session)`` on the token's thread; fails closed if not ready."""
        if seal_id in self._skf_ids:
            raise PreconditionFailed(
                f"seal {seal_id} is on an SKF token; this operation needs a PKCS#11 token "
                "(SKF seals sign in the GB/T 38540 format)",
                reason="token_backend_unsupported",
            )
        state = self._states[seal_id]
        session = self._sessions.get(seal_id)
        if not state.present or not state.unlocked or session is None:
            raise PreconditionFailed(state.not_ready_reason, reason=_not_ready_code(state))

        def _run() -> T:
            # Re-check on the token thread: a removal may have happened while queued.
            if self._sessions.get(seal_id) is not session:
                raise _SessionGone
            return fn(session)

        gone, cause = False, None
        try:
            result = await self._on_token(seal_id, _run)
        except _SessionGone:
            gone = True  # refused below with the reason read here: a removal is not a lock
        except Exception as ex:
            if self._sessions.get(seal_id) is session:
                raise  # a fault of the token itself: the caller counts it
            # The token left (or was locked) while the key operation ran, which is why it
            # failed (ObjectHandleInvalid...): a removal, not a token fault to give up on.
            gone, cause = True, ex
        if gone or self._sessions.get(seal_id) is not session:
            # Removed or locked while the key operation waited or ran: fail closed, the
            # caller deletes the output and the request goes back to APPROVED.
            current = self._states[seal_id]
            raise PreconditionFailed(
                current.not_ready_reason or f"the token of seal {seal_id} was locked during signing",
                reason=_not_ready_code(current),
            ) from cause
        self.last_use[seal_id] = self._clock()
        return result

    async def sign(self, seal_id: str, message: bytes) -> bytes:
        """A DER signature over ``message`` with the seal's key (``KeyBackend.sign``).

        RSA: CKM_SHA256_RSA_PKCS. ECDSA P-256: SHA-256 here and raw CKM_ECDSA on the token
        (SoftHSM has no hash-then-sign ECDSA), r||s encoded as DER.
        """
        if (skf := self._skf_for(seal_id)) is not None:
            return await skf.sign(seal_id, message)
        seal = self._seals[seal_id]
        if seal.pkcs11_sm2_profile:
            return await self.with_sm2_signer(seal_id, lambda sign: sign(message))

        def _sign(session: Any) -> bytes:
            query = {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: seal.key_label}
            keys = list(session.get_objects(query))
            if len(keys) != 1:
                raise PreconditionFailed(
                    f"the token of seal {seal_id} does not hold exactly one key labelled {seal.key_label}",
                    reason="token_rogue",
                )
            if keys[0][Attribute.KEY_TYPE] == KeyType.EC:
                raw = keys[0].sign(hashlib.sha256(message).digest(), mechanism=Mechanism.ECDSA)
                return bytes(encode_ecdsa_signature(bytes(raw)))
            return bytes(keys[0].sign(message, mechanism=Mechanism.SHA256_RSA_PKCS))

        return await self.with_session(seal_id, _sign)

    def _vendor_module(self) -> pkcs11_sm2.VendorModule:
        """The loaded module's own C_SignInit/C_Sign (python-pkcs11 cannot call vendor mechanisms)."""
        if self._vendor is None:
            self._vendor = pkcs11_sm2.VendorModule(str(self._module_path))
        return self._vendor

    async def with_sm2_signer(self, seal_id: str, fn: Callable[[Callable[[bytes], bytes]], T]) -> T:
        """Run ``fn(sign)`` on an SM2 seal's token thread, ``sign(M)`` giving a DER SM2/SM3
        signature over M (default id): the SKF container's, or the PKCS#11 token's through
        the seal's vendor profile (GB/T 38540 sealing)."""
        if (skf := self._skf_for(seal_id)) is not None:
            return await skf.with_container(seal_id, lambda con: fn(con.sign))
        seal = self._seals[seal_id]
        if not seal.pkcs11_sm2_profile:
            raise PreconditionFailed(f"seal {seal_id} is not an SM2 seal", reason="token_backend_unsupported")
        point = self._sm2_point(seal_id)
        prof = pkcs11_sm2.profile(seal.pkcs11_sm2_profile)

        def _with(session: Any) -> T:
            key = pkcs11_sm2.VendorMechanismKey(self._vendor_module(), _one_private_key(session, seal))
            return fn(lambda message: pkcs11_sm2.sign_sm2(key, point, message, prof))

        return await self.with_session(seal_id, _with)

    def _sm2_point(self, seal_id: str) -> bytes:
        registered = self.certificate_der(seal_id)
        if not registered:
            raise PreconditionFailed(
                f"seal {seal_id} has no certificate yet; import it first", reason="seal_pending"
            )
        return gm_certs.check_sm2_certificate(gm_certs.load_certificate(registered)).point

    async def change_pin(self, seal_id: str, old_pin: str, new_pin: str) -> None:
        """C_SetPIN in a session of its own; the PINs go nowhere else and are never retried."""
        if (skf := self._skf_for(seal_id)) is not None:
            await skf.change_pin(seal_id, old_pin, new_pin)
            return
        state = self._states[seal_id]
        if not state.present:
            raise PreconditionFailed(state.not_ready_reason, reason="token_absent")
        if not old_pin or not new_pin:
            raise InvalidInput("both the current and the new PIN are needed", reason="pin_missing")
        if len(new_pin) < 6 or new_pin == old_pin:
            raise InvalidInput(
                "the new PIN must have at least 6 characters and differ from the current one",
                reason="pin_weak",
            )
        seal = self._seals[seal_id]

        def _set_pin() -> None:
            match = match_token(seal, self._slot_tokens())
            if match is None:
                raise PreconditionFailed(state.not_ready_reason, reason="token_absent")
            wrong = "wrong current PIN; nothing was changed"
            if seal_id in self._sessions:
                # Unlocked: the login is per application, so a second C_Login would fail
                # (UserAlreadyLoggedIn). A new R/W session shares it; C_SetPIN checks old_pin.
                try:
                    session = match.token.open(rw=True)
                except p11x.PKCS11Error as ex:
                    raise PreconditionFailed(
                        f"the token of seal {seal_id} refused a session ({type(ex).__name__})",
                        reason="token_error",
                    ) from ex
            else:
                session = _open_with_pin(match, seal_id, old_pin, rw=True, wrong=wrong)
            try:
                session.set_pin(old_pin, new_pin)
            except p11x.PinIncorrect as ex:
                raise _pin_incorrect(match, seal_id, wrong) from ex
            except (p11x.PinInvalid, p11x.PinLenRange) as ex:
                raise InvalidInput(
                    f"the token of seal {seal_id} does not accept that new PIN ({type(ex).__name__})",
                    reason="pin_weak",
                ) from ex
            except p11x.PKCS11Error as ex:
                raise PreconditionFailed(
                    f"the token of seal {seal_id} refused the PIN change ({type(ex).__name__})",
                    reason="token_error",
                ) from ex
            finally:
                _close_quietly(session)

        async with self._slots_lock:
            await self._on_token(seal_id, _set_pin)


def _open_with_pin(match: SlotToken, seal_id: str, pin: str, *, rw: bool, wrong: str) -> Any:
    """One C_Login, never retried; PKCS#11 errors become ours without the PIN in them."""
    try:
        return match.token.open(user_pin=pin, rw=rw)
    except p11x.PinIncorrect as ex:
        raise _pin_incorrect(match, seal_id, wrong) from ex
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


def _pin_incorrect(match: SlotToken, seal_id: str, wrong: str) -> PermissionDenied:
    return PermissionDenied(
        f"{wrong} for the token of seal {seal_id}{_tries_left(match.token)}; "
        "the daemon does not retry — check the PIN and try again",
        reason="pin_incorrect",
    )


def rogue_by_label(seal: SealConfig, slot_tokens: list[SlotToken]) -> str:
    """Pure: a token claiming the seal's label under another serial is a rogue token."""
    for candidate in slot_tokens:
        if candidate.label == seal.token_label and candidate.serial != seal.token_serial:
            return (
                f"a token labelled {seal.token_label} with serial {candidate.serial} is inserted; "
                f"seal {seal.seal_id}'s token has serial {seal.token_serial}: rogue token refused"
            )
    return ""


class _SessionGone(Exception):
    """The session was dropped (lock or removal) while a key operation waited its turn."""


def _close_quietly(session: Any) -> None:
    # The token may be gone already; the session died with it.
    with contextlib.suppress(p11x.PKCS11Error):
        session.close()


def _not_ready_code(state: TokenState) -> str:
    if state.rogue_reason:
        return "token_rogue"
    return "token_absent" if not state.present else "token_locked"


CKF_USER_PIN_COUNT_LOW = 0x00010000
CKF_USER_PIN_FINAL_TRY = 0x00020000
CKF_USER_PIN_LOCKED = 0x00040000


def _tries_left(token: Any) -> str:
    """What the token says about the remaining tries, read AFTER the failed C_Login.

    python-pkcs11 keeps the flags of the moment the Token object was made, so they are
    read again from the slot. PKCS#11 gives no count, only these flags; SoftHSM sets
    COUNT_LOW after any wrong PIN and never FINAL_TRY or LOCKED (it does not lock).
    """
    try:
        flags = int(token.slot.get_token().flags)
    except (p11x.PKCS11Error, AttributeError):
        flags = int(getattr(token, "flags", 0))
    if flags & CKF_USER_PIN_LOCKED:
        return " (the token is now PIN-locked)"
    if flags & CKF_USER_PIN_FINAL_TRY:
        return " (one try left before the token locks)"
    if flags & CKF_USER_PIN_COUNT_LOW:
        return " (the token reports few tries left)"
    return ""


def _one_private_key(session: Any, seal: SealConfig) -> Any:
    query = {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: seal.key_label}
    keys = list(session.get_objects(query))
    if len(keys) != 1:
        raise PreconditionFailed(
            f"the token of seal {seal.seal_id} does not hold exactly one key labelled {seal.key_label}",
            reason="token_rogue",
        )
    return keys[0]


def _check_sm2_key_matches(
    key: Any, seal: SealConfig, registered_der: bytes, vendor: pkcs11_sm2.VendorModule
) -> None:
    """An SM2 seal on a PKCS#11 token: the key signs, through the vendor profile, for the
    registered certificate's SM2 key (a copied certificate proves nothing)."""
    try:
        point = gm_certs.check_sm2_certificate(gm_certs.load_certificate(registered_der)).point
    except InvalidInput as ex:
        raise PreconditionFailed(
            f"seal {seal.seal_id}'s registered certificate is not an SM2 certificate: {ex.message}",
            reason="token_rogue",
        ) from None
    key = pkcs11_sm2.VendorMechanismKey(vendor, key)
    try:
        pkcs11_sm2.sign_sm2(key, point, os.urandom(32), pkcs11_sm2.profile(seal.pkcs11_sm2_profile))
    except PreconditionFailed as ex:
        if ex.reason != "sm2_profile_mismatch":
            raise
        raise PreconditionFailed(
            f"the key on the token of seal {seal.seal_id} does not sign for the registered SM2 "
            f"certificate with profile {seal.pkcs11_sm2_profile}; refusing a rogue token "
            "(or a wrong token model profile)",
            reason="token_rogue",
        ) from None


def _check_key_matches(
    session: Any, seal: SealConfig, registered_der: bytes, vendor: pkcs11_sm2.VendorModule | None = None
) -> None:
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
    if seal.pkcs11_sm2_profile and vendor is not None:
        _check_sm2_key_matches(keys[0], seal, registered_der, vendor)
        return
    # A copied certificate proves nothing: the key must sign for the registered public key.
    challenge = os.urandom(32)
    try:
        public_key = x509.load_der_x509_certificate(registered_der).public_key()
        key_is_ec = keys[0][Attribute.KEY_TYPE] == KeyType.EC
        if isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(public_key.curve, ec.SECP256R1):
            if not key_is_ec:
                raise PreconditionFailed(
                    f"seal {seal.seal_id}'s certificate holds an ECDSA P-256 key but the token's key "
                    f"{seal.key_label} is RSA; refusing a rogue token",
                    reason="token_rogue",
                )
            # SoftHSM has no hash-then-sign ECDSA: hash here, raw CKM_ECDSA on the token.
            raw = keys[0].sign(hashlib.sha256(challenge).digest(), mechanism=Mechanism.ECDSA)
            public_key.verify(encode_ecdsa_signature(bytes(raw)), challenge, ec.ECDSA(hashes.SHA256()))
            return
        if not isinstance(public_key, rsa.RSAPublicKey) or key_is_ec:
            raise PreconditionFailed(
                f"seal {seal.seal_id}'s certificate and the token's key {seal.key_label} are not the "
                "same key type (RSA-2048 or ECDSA P-256 on a PKCS#11 token); refusing a rogue token",
                reason="token_rogue",
            )
        signature = keys[0].sign(challenge, mechanism=Mechanism.SHA256_RSA_PKCS)
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
