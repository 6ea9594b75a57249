"""SKF (GM/T 0016) seal tokens as a ``KeyBackend``: presence, custody and SM2 signing.

The daemon-facing twin of ``TokenManager`` for tokens that speak SKF instead of PKCS#11.
A seal is bound to a device by its serial number (``DEVINFO.SerialNumber``), and to an
application and a container on it. Every call on a token runs on that seal's own thread
(SKF handles, like PKCS#11 sessions, are not for concurrent use). The PIN goes from the
caller into ``SKF_VerifyPIN`` and is dropped: never stored, logged or put in a message.

Presence comes from two sources: ``refresh`` (enumerate + DEVINFO) and, once
``start_presence`` ran, ``SKF_WaitForDevEvent`` in a thread (``SkfPresenceWatcher``), whose
events reach the event loop through ``call_soon_threadsafe`` and lock the seal at once on
removal, beside pyudev's events. A key operation that finds the device gone
(``SAR_DEVICE_REMOVED``) locks the seal too and fails closed.

Custody (R07): unlock refuses a token whose user PIN is still the issuer's initial one
(``SKF_GetPINInfo``'s default flag): the custodian changes it first. A wrong PIN answers
with the token's own count of tries left; a locked PIN says who can unblock it. At unlock
the token must show the registered certificate in the container and prove its key by
signing a challenge that the certificate's SM2 key verifies (no rogue tokens).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TypeVar

from asn1crypto import x509

from seald.domain.errors import InvalidInput, PermissionDenied, PreconditionFailed
from seald.gm import certs, sm2
from seald.tokens import skf
from seald.tokens.manager import TokenState

T = TypeVar("T")


@dataclass(frozen=True)
class SkfSealBinding:
    seal_id: str
    device_serial: str
    device_label: str  # for messages (TokenState.token_label)
    application: str
    container: str


@dataclass
class _Open:
    device_name: str
    dev: skf.SkfDevice
    app: skf.SkfApplication
    con: skf.SkfContainer | None = None  # opened after the login


class SkfTokenManager:
    def __init__(
        self,
        library: skf.SkfLibrary,
        seals: Mapping[str, SkfSealBinding],
        certificates: Mapping[str, bytes],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._lib = library
        self._seals = dict(seals)
        self._certificates: dict[str, bytes] = {}
        for seal_id, der in certificates.items():
            self.set_certificate(seal_id, der)
        self._clock = clock
        self._executors = {
            seal_id: ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"skf-{seal_id}")
            for seal_id in seals
        }
        now = clock()
        self._states = {
            seal_id: TokenState(seal_id, False, False, b.device_label, b.device_serial, now)
            for seal_id, b in seals.items()
        }
        self._open: dict[str, _Open] = {}
        self._device_of: dict[str, str] = {}  # seal_id -> device name where it was last seen
        self._listeners: list[Callable[[TokenState], None]] = []
        self._watcher: skf.SkfPresenceWatcher | None = None
        self._lock = asyncio.Lock()

    # -- observation ---------------------------------------------------------------------------
    @property
    def library(self) -> skf.SkfLibrary:
        return self._lib

    @property
    def seal_ids(self) -> list[str]:
        return list(self._seals)

    def add_listener(self, listener: Callable[[TokenState], None]) -> None:
        self._listeners.append(listener)

    def state(self, seal_id: str) -> TokenState:
        return self._states[seal_id]

    def states(self) -> list[TokenState]:
        return list(self._states.values())

    def certificate_der(self, seal_id: str) -> bytes:
        return self._certificates.get(seal_id, b"")

    def set_certificate(self, seal_id: str, der: bytes) -> None:
        """Register a seal certificate; an SKF seal signs SM2, so the certificate must be SM2."""
        if der:
            certs.check_sm2_certificate(
                certs.load_certificate(der, what=f"seal {seal_id} certificate"),
                what=f"seal {seal_id} certificate",
            )
        self._certificates[seal_id] = der

    def _set(self, state: TokenState) -> None:
        old = self._states[state.seal_id]
        if (old.present, old.unlocked, old.rogue_reason) == (
            state.present,
            state.unlocked,
            state.rogue_reason,
        ):
            return
        self._states[state.seal_id] = state
        for listener in self._listeners:
            listener(state)

    async def _on_token(self, seal_id: str, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executors[seal_id], fn)

    # -- presence ------------------------------------------------------------------------------
    def _serials(self) -> dict[str, str]:
        """serial -> device name of every present device (connect, DEVINFO, disconnect)."""
        found = {}
        for name in self._lib.enum_devices():
            try:
                dev = self._lib.connect(name)
            except skf.SkfError:
                continue  # left between listing and connecting
            try:
                found[dev.info().serial] = name
            except skf.SkfError:
                pass
            finally:
                with contextlib.suppress(skf.SkfError):
                    dev.close()
        return found

    async def refresh(self) -> None:
        async with self._lock:
            serials = await asyncio.get_running_loop().run_in_executor(None, self._serials)
            now = self._clock()
            for seal_id, b in self._seals.items():
                state = self._states[seal_id]
                name = serials.get(b.device_serial)
                if name is None:
                    await self._drop(seal_id)
                    self._set(replace(state, present=False, unlocked=False, unlocked_by="", since=now))
                else:
                    self._device_of[seal_id] = name
                    if not state.present:
                        self._set(replace(state, present=True, since=now))

    def mark_removed(self, device_name: str | None) -> list[str]:
        """A device left: lock the seals on it NOW (None: every seal, fail closed)."""
        now = self._clock()
        affected = []
        for seal_id in self._seals:
            if device_name is not None and self._device_of.get(seal_id) != device_name:
                continue
            opened = self._open.pop(seal_id, None)
            if opened is not None:
                self._executors[seal_id].submit(_close_quietly, opened)
            state = self._states[seal_id]
            if state.present or state.unlocked:
                affected.append(seal_id)
            self._set(replace(state, present=False, unlocked=False, unlocked_by="", since=now))
        return affected

    def start_presence(self, loop: asyncio.AbstractEventLoop) -> None:
        """SKF_WaitForDevEvent in a thread: removals lock at once, insertions trigger a refresh."""

        def on_event(name: str, present: bool) -> None:
            # The loop may be closing (daemon shutdown): the event is moot then.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._on_device_event, name, present)

        self._watcher = skf.SkfPresenceWatcher(self._lib, on_event)
        self._watcher.start()

    def _on_device_event(self, name: str, present: bool) -> None:
        if present:
            asyncio.get_running_loop().create_task(self.refresh())
        else:
            self.mark_removed(name)

    # -- custody -------------------------------------------------------------------------------
    def _connect(self, seal_id: str) -> _Open:
        b = self._seals[seal_id]
        name = self._device_of.get(seal_id)
        if name is None:
            raise PreconditionFailed(self._states[seal_id].not_ready_reason, reason="token_absent")
        dev = self._lib.connect(name)
        try:
            if dev.info().serial != b.device_serial:
                raise PreconditionFailed(self._states[seal_id].not_ready_reason, reason="token_absent")
            app = dev.open_application(b.application)
        except BaseException:
            with contextlib.suppress(skf.SkfError):
                dev.close()
            raise
        return _Open(name, dev, app)

    def _pin_error(self, seal_id: str, exc: skf.SkfError, wrong: str) -> Exception:
        if isinstance(exc, skf.SkfPinIncorrect):
            return PermissionDenied(
                f"{wrong} for the token of seal {seal_id} ({exc.retries_left} tries left before the token "
                "locks); the daemon does not retry - check the PIN and try again",
                reason="pin_incorrect",
            )
        if isinstance(exc, skf.SkfPinLocked):
            return PreconditionFailed(
                f"the token of seal {seal_id} is PIN-locked; the token administrator must unblock it",
                reason="pin_locked",
            )
        if isinstance(exc, skf.SkfDeviceRemoved):
            return PreconditionFailed(
                f"the token of seal {seal_id} was removed; the custodian must insert it",
                reason="token_absent",
            )
        return PreconditionFailed(
            f"the token of seal {seal_id} refused: {exc.code_name}; re-insert it and try again",
            reason="token_error",
        )

    async def unlock(self, seal_id: str, pin: str, principal: str) -> TokenState:
        await self.refresh()
        state = self._states[seal_id]
        if not state.present:
            raise PreconditionFailed(state.not_ready_reason, reason="token_absent")
        if state.unlocked:
            return state
        if not pin:
            raise InvalidInput("the PIN is empty; enter the token's user PIN", reason="pin_missing")
        b = self._seals[seal_id]
        registered = self.certificate_der(seal_id)

        def _login() -> _Open:
            opened = self._connect(seal_id)
            try:
                if opened.app.pin_info().is_default:
                    raise PreconditionFailed(
                        f"the token of seal {seal_id} still has its initial user PIN; the custodian must "
                        "change it before first use (R07)",
                        reason="pin_must_change",
                    )
                opened.app.verify_pin(pin)
                if registered:
                    opened.con = opened.app.open_container(b.container)
                    _check_token_key(seal_id, opened.con, registered)
                elif b.container in opened.app.containers():
                    # A new seal (no certificate yet): CreateSealKey works in its container.
                    opened.con = opened.app.open_container(b.container)
                return opened
            except skf.SkfError as exc:
                _close_quietly(opened)
                raise self._pin_error(seal_id, exc, "wrong PIN") from None
            except BaseException:
                _close_quietly(opened)
                raise

        async with self._lock:
            if self._states[seal_id].unlocked:
                return self._states[seal_id]
            try:
                opened = await self._on_token(seal_id, _login)
            except PreconditionFailed as exc:
                if exc.reason == "token_rogue":
                    self._set(replace(self._states[seal_id], present=False, rogue_reason=exc.message))
                raise
        if not self._states[seal_id].present:
            self._executors[seal_id].submit(_close_quietly, opened)
            raise PreconditionFailed(self._states[seal_id].not_ready_reason, reason="token_absent")
        self._open[seal_id] = opened
        new = replace(self._states[seal_id], unlocked=True, unlocked_by=principal, since=self._clock())
        self._set(new)
        return new

    async def _drop(self, seal_id: str) -> None:
        opened = self._open.pop(seal_id, None)
        if opened is not None:
            await self._on_token(seal_id, lambda: _close_quietly(opened))

    async def lock(self, seal_id: str) -> TokenState:
        await self._drop(seal_id)
        state = replace(self._states[seal_id], unlocked=False, unlocked_by="", since=self._clock())
        self._set(state)
        return state

    async def change_pin(self, seal_id: str, old_pin: str, new_pin: str) -> None:
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

        def _change() -> None:
            opened = self._connect(seal_id)
            try:
                opened.app.change_pin(old_pin, new_pin)
            except skf.SkfError as exc:
                raise self._pin_error(seal_id, exc, "wrong current PIN; nothing was changed") from None
            finally:
                _close_quietly(opened)

        await self._on_token(seal_id, _change)

    # -- key operations ------------------------------------------------------------------------
    async def with_container(self, seal_id: str, fn: Callable[[skf.SkfContainer], T]) -> T:
        """Run ``fn(container)`` on the token's thread; fails closed if the token is not ready
        or was removed while ``fn`` ran (the seal is then locked, like a udev removal)."""
        state = self._states[seal_id]
        opened = self._open.get(seal_id)
        if not state.present or not state.unlocked or opened is None:
            code = "token_absent" if not state.present else "token_locked"
            raise PreconditionFailed(state.not_ready_reason, reason=code)

        def _run() -> T:
            if self._open.get(seal_id) is not opened or opened.con is None:
                raise skf.SkfDeviceRemoved("seald", 0x0A000023)
            return fn(opened.con)

        try:
            return await self._on_token(seal_id, _run)
        except skf.SkfDeviceRemoved:
            self.mark_removed(opened.device_name)
            raise PreconditionFailed(
                f"the token of seal {seal_id} was removed during signing; nothing was signed - the "
                "custodian must re-insert and unlock it",
                reason="token_absent",
            ) from None

    async def _with_login(self, seal_id: str, fn: Callable[[_Open], T]) -> T:
        """Run ``fn(opened)`` on the token's thread with the custodian's login (key creation,
        certificate import); fails closed like ``with_container``."""
        state = self._states[seal_id]
        opened = self._open.get(seal_id)
        if not state.present or not state.unlocked or opened is None:
            code = "token_absent" if not state.present else "token_locked"
            raise PreconditionFailed(state.not_ready_reason, reason=code)

        def _run() -> T:
            if self._open.get(seal_id) is not opened:
                raise skf.SkfDeviceRemoved("seald", 0x0A000023)
            return fn(opened)

        try:
            return await self._on_token(seal_id, _run)
        except skf.SkfDeviceRemoved:
            self.mark_removed(opened.device_name)
            raise PreconditionFailed(
                f"the token of seal {seal_id} was removed; nothing was changed - the custodian must "
                "re-insert and unlock it",
                reason="token_absent",
            ) from None
        except skf.SkfError as exc:
            raise PreconditionFailed(
                f"the token of seal {seal_id} refused: {exc.code_name}; nothing was changed",
                reason="token_error",
            ) from None

    async def create_key(
        self, seal_id: str, subject: x509.Name, *, may_generate: bool
    ) -> tuple[bool, bytes, bytes]:
        """(created, SubjectPublicKeyInfo DER, SM2-with-SM3 CSR DER) for the seal's container key.

        The SM2 key pair is generated inside the token (``SKF_GenECCKeyPair``) when the
        container has none and ``may_generate`` (a new seal); otherwise a new CSR for the
        key there. The CSR is signed by the token and checked against its key here."""
        container = self._seals[seal_id].container

        def _create(opened: _Open) -> tuple[bool, bytes, bytes]:
            created = False
            if opened.con is None:
                if container in opened.app.containers():
                    opened.con = opened.app.open_container(container)
                elif may_generate:
                    opened.con = opened.app.create_container(container)
                else:
                    raise _no_key(seal_id, container)
            try:
                point = opened.con.public_point()
            except skf.SkfDeviceRemoved:
                raise
            except skf.SkfError:
                if not may_generate:
                    raise _no_key(seal_id, container) from None
                point = opened.con.generate_sm2()
                created = True
            key = sm2.Sm2PublicKey(point)
            request = certs.build_csr(subject=subject, public_key=key, sign=opened.con.sign)
            key.verify(
                bytes(request["signature"].native), request["certification_request_info"].dump()
            )  # the token's key signed it, with the standard's user id
            return created, key.spki_der(), bytes(request.dump())

        return await self._with_login(seal_id, _create)

    async def public_key(self, seal_id: str) -> bytes:
        """The SubjectPublicKeyInfo (DER) of the SM2 key in the seal's container."""
        container = self._seals[seal_id].container

        def _read(opened: _Open) -> bytes:
            if opened.con is None:
                if container not in opened.app.containers():
                    raise _no_key(seal_id, container)
                opened.con = opened.app.open_container(container)
            try:
                return sm2.Sm2PublicKey(opened.con.public_point()).spki_der()
            except skf.SkfDeviceRemoved:
                raise
            except skf.SkfError:
                raise _no_key(seal_id, container) from None

        return await self._with_login(seal_id, _read)

    async def replace_certificate(self, seal_id: str, der: bytes) -> bytes:
        """Put ``der`` into the seal's container; returns the certificate it held (b"" if none)."""

        def _replace(opened: _Open) -> bytes:
            if opened.con is None:
                raise _no_key(seal_id, self._seals[seal_id].container)
            try:
                previous = opened.con.export_certificate()
            except skf.SkfDeviceRemoved:
                raise
            except skf.SkfError:
                previous = b""
            opened.con.import_certificate(der)
            return previous

        return await self._with_login(seal_id, _replace)

    async def delete_key(self, seal_id: str) -> int:
        """Destroy (R02 销毁): delete the seal's container (key pair and certificate); returns
        how many containers were deleted (0 if there was none)."""
        container = self._seals[seal_id].container

        def _delete(opened: _Open) -> int:
            if opened.con is not None:
                opened.con.close()
                opened.con = None
            if container not in opened.app.containers():
                return 0
            opened.app.delete_container(container)
            return 1

        return await self._with_login(seal_id, _delete)

    async def sign(self, seal_id: str, message: bytes) -> bytes:
        """SM2 signature (DER, default user id) over ``message``: e = SM3(Z||M) here, the token signs e."""
        return await self.with_container(seal_id, lambda con: con.sign(message))

    async def close(self) -> None:
        if self._watcher is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._watcher.stop)
        for seal_id in list(self._open):
            await self._drop(seal_id)
        for executor in self._executors.values():
            executor.shutdown(wait=True)


def _close_quietly(opened: _Open) -> None:
    for closer in (opened.con, opened.app, opened.dev):
        if closer is not None:
            with contextlib.suppress(skf.SkfError):
                closer.close()


def _no_key(seal_id: str, container: str) -> PreconditionFailed:
    return PreconditionFailed(
        f"the token of seal {seal_id} holds no SM2 key in container {container!r}; an active seal never "
        "gets a new key (destroy it and register a new seal)",
        reason="seal_key_missing",
    )


def _check_token_key(seal_id: str, con: skf.SkfContainer, registered: bytes) -> None:
    """The container shows the registered certificate and its key signs for it."""
    try:
        on_token = con.export_certificate()
    except skf.SkfError:
        on_token = b""
    if on_token != registered:
        raise PreconditionFailed(
            f"the token of seal {seal_id} does not hold the registered certificate in its container; "
            "refusing a rogue token",
            reason="token_rogue",
        )
    key = certs.check_sm2_certificate(certs.load_certificate(registered), what=f"seal {seal_id} certificate")
    if con.public_point() != key.point:
        raise PreconditionFailed(
            f"the key in the token of seal {seal_id} is not the registered certificate's key; "
            "refusing a rogue token",
            reason="token_rogue",
        )
    challenge = os.urandom(32)
    try:
        key.verify(con.sign(challenge), challenge)
    except sm2.Sm2Error:
        raise PreconditionFailed(
            f"the token of seal {seal_id} could not prove its key; refusing a rogue token",
            reason="token_rogue",
        ) from None
