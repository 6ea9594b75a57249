"""SKF (GM/T 0016) tokens through ctypes: devices, applications, containers, PINs, SM2 signing.

Domestic USB keys ship an SKF library (``libskf*.so``) rather than, or beside, PKCS#11. This
module wraps the calls seald needs, with the standard's types (ULONG = 32 bits, packed
structs) and error codes. Every call on a token goes through the library's own handles; the
private key never leaves the token.

SM2 signing follows GM/T 0016 + GM/T 0009: ``SKF_ECCSignData`` signs the 32-byte digest
``e = SM3(Z || M)`` that the CALLER prepares, Z from the key's public point and the user id
(default ``1234567812345678``). ``SkfContainer.sign`` does that with the container's own
public key, so the result is an ordinary SM2 signature over M that OpenSSL verifies.

Presence: ``SKF_WaitForDevEvent`` blocks in C (ctypes releases the GIL) until a device is
inserted or removed; ``SkfPresenceWatcher`` runs it in a thread and reports events to a
callback, as a second presence source beside udev. ``SKF_CancelWaitForDevEvent`` stops it.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from seald.gm import sm2

ULONG = ctypes.c_uint32
BOOL = ctypes.c_int32
HANDLE = ctypes.c_void_p

SGD_SM3 = 0x00000001
SGD_SM2_1 = 0x00020100
ADMIN_TYPE = 0
USER_TYPE = 1
DEV_EVENT_INSERT = 1
DEV_EVENT_REMOVE = 2

SAR_NAMES: dict[int, str] = {
    0x00000000: "SAR_OK",
    0x0A000001: "SAR_FAIL",
    0x0A000002: "SAR_UNKNOWNERR",
    0x0A000003: "SAR_NOTSUPPORTYETERR",
    0x0A000004: "SAR_FILEERR",
    0x0A000005: "SAR_INVALIDHANDLEERR",
    0x0A000006: "SAR_INVALIDPARAMERR",
    0x0A00000E: "SAR_MEMORYERR",
    0x0A00000F: "SAR_TIMEOUTERR",
    0x0A000010: "SAR_INDATALENERR",
    0x0A00001B: "SAR_KEYNOTFOUNTERR",
    0x0A00001C: "SAR_CERTNOTFOUNTERR",
    0x0A000020: "SAR_BUFFER_TOO_SMALL",
    0x0A000022: "SAR_NOT_EVENTERR",
    0x0A000023: "SAR_DEVICE_REMOVED",
    0x0A000024: "SAR_PIN_INCORRECT",
    0x0A000025: "SAR_PIN_LOCKED",
    0x0A000026: "SAR_PIN_INVALID",
    0x0A000027: "SAR_PIN_LEN_RANGE",
    0x0A000028: "SAR_USER_ALREADY_LOGGED_IN",
    0x0A00002A: "SAR_USER_TYPE_INVALID",
    0x0A00002B: "SAR_APPLICATION_NAME_INVALID",
    0x0A00002C: "SAR_APPLICATION_EXISTS",
    0x0A00002D: "SAR_USER_NOT_LOGGED_IN",
    0x0A00002E: "SAR_APPLICATION_NOT_EXISTS",
    0x0A000031: "SAR_FILE_NOT_EXIST",
    0x0A000033: "SAR_CONTAINER_ALREADY_EXIST",
    0x0A000034: "SAR_CONTAINER_NOT_EXIST",
}
SAR_OK = 0
SAR_BUFFER_TOO_SMALL = 0x0A000020
SAR_NOT_EVENTERR = 0x0A000022
SAR_DEVICE_REMOVED = 0x0A000023
SAR_PIN_INCORRECT = 0x0A000024
SAR_PIN_LOCKED = 0x0A000025


class Version(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("major", ctypes.c_uint8), ("minor", ctypes.c_uint8))


class DEVINFO(ctypes.Structure):
    _pack_ = 1
    _fields_ = (
        ("Version", Version),
        ("Manufacturer", ctypes.c_char * 64),
        ("Issuer", ctypes.c_char * 64),
        ("Label", ctypes.c_char * 32),
        ("SerialNumber", ctypes.c_char * 32),
        ("HWVersion", Version),
        ("FirmwareVersion", Version),
        ("AlgSymCap", ULONG),
        ("AlgAsymCap", ULONG),
        ("AlgHashCap", ULONG),
        ("DevAuthAlgId", ULONG),
        ("TotalSpace", ULONG),
        ("FreeSpace", ULONG),
        ("MaxECCBufferSize", ULONG),
        ("MaxBufferSize", ULONG),
        ("Reserved", ctypes.c_uint8 * 64),
    )


class ECCPUBLICKEYBLOB(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("BitLen", ULONG), ("XCoordinate", ctypes.c_uint8 * 64), ("YCoordinate", ctypes.c_uint8 * 64))


class ECCSIGNATUREBLOB(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("r", ctypes.c_uint8 * 64), ("s", ctypes.c_uint8 * 64))


assert ctypes.sizeof(DEVINFO) == 294 and ctypes.sizeof(ECCPUBLICKEYBLOB) == 132
assert ctypes.sizeof(ECCSIGNATUREBLOB) == 128


class SkfError(Exception):
    """An SKF call failed; ``code`` is the SAR_* value, the message names the call and the code."""

    def __init__(self, function: str, code: int, detail: str = "") -> None:
        self.function = function
        self.code = code
        self.code_name = SAR_NAMES.get(code, f"0x{code:08X}")
        super().__init__(f"{function} failed: {self.code_name}{': ' + detail if detail else ''}")


class SkfDeviceRemoved(SkfError):
    """The token was removed (or removed and re-inserted): its handles are gone; reconnect."""


class SkfPinIncorrect(SkfError):
    """Wrong PIN; ``retries_left`` is the token's own count, to show the custodian."""

    def __init__(self, function: str, code: int, retries_left: int) -> None:
        super().__init__(function, code, f"{retries_left} tries left before the token locks")
        self.retries_left = retries_left


class SkfPinLocked(SkfError):
    """The PIN is locked (no tries left): only the token administrator can unblock it."""

    def __init__(self, function: str, code: int) -> None:
        super().__init__(function, code, "the PIN is locked; the token administrator must unblock it")
        self.retries_left = 0


def _check(function: str, rv: int) -> None:
    if rv == SAR_OK:
        return
    if rv == SAR_DEVICE_REMOVED:
        raise SkfDeviceRemoved(function, rv)
    raise SkfError(function, rv)


def _blob_to_point(blob: ECCPUBLICKEYBLOB) -> bytes:
    if blob.BitLen != 256:
        raise SkfError("SKF public key", 0x0A000001, f"BitLen {blob.BitLen}, expected 256 for SM2")
    x, y = bytes(blob.XCoordinate), bytes(blob.YCoordinate)
    if any(x[:32]) or any(y[:32]):
        raise SkfError("SKF public key", 0x0A000001, "coordinates are not right-aligned 256-bit values")
    return b"\x04" + x[32:] + y[32:]


def _point_to_blob(point: bytes) -> ECCPUBLICKEYBLOB:
    blob = ECCPUBLICKEYBLOB()
    blob.BitLen = 256
    ctypes.memmove(ctypes.addressof(blob.XCoordinate) + 32, point[1:33], 32)
    ctypes.memmove(ctypes.addressof(blob.YCoordinate) + 32, point[33:65], 32)
    return blob


def _name_list(raw: bytes) -> list[str]:
    return [n.decode("utf-8", "replace") for n in raw.split(b"\x00") if n]


_SIGNATURES: dict[str, tuple[Any, ...]] = {
    "SKF_WaitForDevEvent": (ctypes.c_char_p, ctypes.POINTER(ULONG), ctypes.POINTER(ULONG)),
    "SKF_CancelWaitForDevEvent": (),
    "SKF_EnumDev": (BOOL, ctypes.c_char_p, ctypes.POINTER(ULONG)),
    "SKF_ConnectDev": (ctypes.c_char_p, ctypes.POINTER(HANDLE)),
    "SKF_DisConnectDev": (HANDLE,),
    "SKF_GetDevInfo": (HANDLE, ctypes.POINTER(DEVINFO)),
    "SKF_CreateApplication": (
        HANDLE,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ULONG,
        ctypes.c_char_p,
        ULONG,
        ULONG,
        ctypes.POINTER(HANDLE),
    ),
    "SKF_EnumApplication": (HANDLE, ctypes.c_char_p, ctypes.POINTER(ULONG)),
    "SKF_OpenApplication": (HANDLE, ctypes.c_char_p, ctypes.POINTER(HANDLE)),
    "SKF_CloseApplication": (HANDLE,),
    "SKF_VerifyPIN": (HANDLE, ULONG, ctypes.c_char_p, ctypes.POINTER(ULONG)),
    "SKF_ChangePIN": (HANDLE, ULONG, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ULONG)),
    "SKF_GetPINInfo": (HANDLE, ULONG, ctypes.POINTER(ULONG), ctypes.POINTER(ULONG), ctypes.POINTER(BOOL)),
    "SKF_UnblockPIN": (HANDLE, ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ULONG)),
    "SKF_ClearSecureState": (HANDLE,),
    "SKF_CreateContainer": (HANDLE, ctypes.c_char_p, ctypes.POINTER(HANDLE)),
    "SKF_DeleteContainer": (HANDLE, ctypes.c_char_p),
    "SKF_EnumContainer": (HANDLE, ctypes.c_char_p, ctypes.POINTER(ULONG)),
    "SKF_OpenContainer": (HANDLE, ctypes.c_char_p, ctypes.POINTER(HANDLE)),
    "SKF_CloseContainer": (HANDLE,),
    "SKF_GenECCKeyPair": (HANDLE, ULONG, ctypes.POINTER(ECCPUBLICKEYBLOB)),
    "SKF_ExportPublicKey": (HANDLE, BOOL, ctypes.c_void_p, ctypes.POINTER(ULONG)),
    "SKF_ImportCertificate": (HANDLE, BOOL, ctypes.c_char_p, ULONG),
    "SKF_ExportCertificate": (HANDLE, BOOL, ctypes.c_void_p, ctypes.POINTER(ULONG)),
    "SKF_ECCSignData": (HANDLE, ctypes.c_char_p, ULONG, ctypes.POINTER(ECCSIGNATUREBLOB)),
}
# Calls a vendor library may lack; seald works without them (it cannot create applications then).
_OPTIONAL = {"SKF_CreateApplication", "SKF_UnblockPIN", "SKF_DeleteContainer", "SKF_GetPINInfo"}


@dataclass(frozen=True)
class DeviceInfo:
    manufacturer: str
    issuer: str
    label: str
    serial: str
    asym_caps: int
    hash_caps: int

    @property
    def supports_sm2(self) -> bool:
        return bool(self.asym_caps & SGD_SM2_1)


@dataclass(frozen=True)
class PinInfo:
    max_retries: int
    retries_left: int
    is_default: bool


class SkfLibrary:
    """One loaded SKF library (``.so``); thread-safe as far as the library is."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lib = ctypes.CDLL(path)
        self.missing: set[str] = set()
        for fname, argtypes in _SIGNATURES.items():
            try:
                fn = getattr(self._lib, fname)
            except AttributeError:
                if fname in _OPTIONAL:
                    self.missing.add(fname)
                    continue
                raise SkfError(
                    fname, 0x0A000003, f"{path} does not export it; is this an SKF library?"
                ) from None
            fn.argtypes = list(argtypes)
            fn.restype = ULONG

    def call(self, fname: str, *args: Any) -> None:
        if fname in self.missing:
            raise SkfError(fname, 0x0A000003, f"{self.path} does not implement it")
        _check(fname, getattr(self._lib, fname)(*args))

    def _list(self, fname: str, *args: Any) -> list[str]:
        size = ULONG(0)
        self.call(fname, *args, None, ctypes.byref(size))
        buf = ctypes.create_string_buffer(max(size.value, 2))
        self.call(fname, *args, buf, ctypes.byref(size))
        return _name_list(buf.raw[: size.value])

    def enum_devices(self) -> list[str]:
        return self._list("SKF_EnumDev", BOOL(1))

    def connect(self, name: str) -> SkfDevice:
        h = HANDLE()
        self.call("SKF_ConnectDev", name.encode(), ctypes.byref(h))
        return SkfDevice(self, name, h)

    def wait_for_event(self) -> tuple[str, int] | None:
        """Block until a device is inserted/removed: (name, DEV_EVENT_*), or None if cancelled."""
        buf = ctypes.create_string_buffer(256)
        size, event = ULONG(256), ULONG(0)
        rv = self._lib.SKF_WaitForDevEvent(buf, ctypes.byref(size), ctypes.byref(event))
        if rv == SAR_NOT_EVENTERR:
            return None
        _check("SKF_WaitForDevEvent", rv)
        return buf.value.decode("utf-8", "replace"), int(event.value)

    def cancel_wait(self) -> None:
        self.call("SKF_CancelWaitForDevEvent")


class SkfDevice:
    def __init__(self, lib: SkfLibrary, name: str, handle: ctypes.c_void_p | None) -> None:
        self.lib, self.name, self._h = lib, name, handle

    def info(self) -> DeviceInfo:
        di = DEVINFO()
        self.lib.call("SKF_GetDevInfo", self._h, ctypes.byref(di))

        def text(b: bytes) -> str:
            return b.split(b"\x00", 1)[0].decode("utf-8", "replace").strip()

        return DeviceInfo(
            text(di.Manufacturer),
            text(di.Issuer),
            text(di.Label),
            text(di.SerialNumber),
            int(di.AlgAsymCap),
            int(di.AlgHashCap),
        )

    def applications(self) -> list[str]:
        return self.lib._list("SKF_EnumApplication", self._h)

    def create_application(
        self, name: str, *, admin_pin: str, user_pin: str, admin_retries: int = 10, user_retries: int = 6
    ) -> SkfApplication:
        h = HANDLE()
        self.lib.call(
            "SKF_CreateApplication",
            self._h,
            name.encode(),
            admin_pin.encode(),
            ULONG(admin_retries),
            user_pin.encode(),
            ULONG(user_retries),
            ULONG(0),
            ctypes.byref(h),
        )
        return SkfApplication(self, name, h)

    def open_application(self, name: str) -> SkfApplication:
        h = HANDLE()
        self.lib.call("SKF_OpenApplication", self._h, name.encode(), ctypes.byref(h))
        return SkfApplication(self, name, h)

    def close(self) -> None:
        if self._h:
            h, self._h = self._h, None
            self.lib.call("SKF_DisConnectDev", h)


class SkfApplication:
    def __init__(self, dev: SkfDevice, name: str, handle: ctypes.c_void_p | None) -> None:
        self.dev, self.lib, self.name, self._h = dev, dev.lib, name, handle

    def verify_pin(self, pin: str, *, pin_type: int = USER_TYPE) -> None:
        """Log in. Raises SkfPinIncorrect (with the tries left) or SkfPinLocked."""
        retries = ULONG(0)
        rv = self.lib._lib.SKF_VerifyPIN(self._h, ULONG(pin_type), pin.encode(), ctypes.byref(retries))
        if rv == SAR_PIN_INCORRECT:
            raise SkfPinIncorrect("SKF_VerifyPIN", rv, int(retries.value))
        if rv == SAR_PIN_LOCKED:
            raise SkfPinLocked("SKF_VerifyPIN", rv)
        _check("SKF_VerifyPIN", rv)

    def change_pin(self, old: str, new: str, *, pin_type: int = USER_TYPE) -> None:
        retries = ULONG(0)
        rv = self.lib._lib.SKF_ChangePIN(
            self._h, ULONG(pin_type), old.encode(), new.encode(), ctypes.byref(retries)
        )
        if rv == SAR_PIN_INCORRECT:
            raise SkfPinIncorrect("SKF_ChangePIN", rv, int(retries.value))
        if rv == SAR_PIN_LOCKED:
            raise SkfPinLocked("SKF_ChangePIN", rv)
        _check("SKF_ChangePIN", rv)

    def unblock_pin(self, admin_pin: str, new_user_pin: str) -> None:
        retries = ULONG(0)
        self.lib.call(
            "SKF_UnblockPIN", self._h, admin_pin.encode(), new_user_pin.encode(), ctypes.byref(retries)
        )

    def pin_info(self, *, pin_type: int = USER_TYPE) -> PinInfo:
        mx, left, default = ULONG(0), ULONG(0), BOOL(0)
        self.lib.call(
            "SKF_GetPINInfo",
            self._h,
            ULONG(pin_type),
            ctypes.byref(mx),
            ctypes.byref(left),
            ctypes.byref(default),
        )
        return PinInfo(int(mx.value), int(left.value), bool(default.value))

    def logout(self) -> None:
        self.lib.call("SKF_ClearSecureState", self._h)

    def containers(self) -> list[str]:
        return self.lib._list("SKF_EnumContainer", self._h)

    def create_container(self, name: str) -> SkfContainer:
        h = HANDLE()
        self.lib.call("SKF_CreateContainer", self._h, name.encode(), ctypes.byref(h))
        return SkfContainer(self, name, h)

    def open_container(self, name: str) -> SkfContainer:
        h = HANDLE()
        self.lib.call("SKF_OpenContainer", self._h, name.encode(), ctypes.byref(h))
        return SkfContainer(self, name, h)

    def delete_container(self, name: str) -> None:
        self.lib.call("SKF_DeleteContainer", self._h, name.encode())

    def close(self) -> None:
        if self._h:
            h, self._h = self._h, None
            self.lib.call("SKF_CloseApplication", h)


class SkfContainer:
    def __init__(self, app: SkfApplication, name: str, handle: ctypes.c_void_p | None) -> None:
        self.app, self.lib, self.name, self._h = app, app.lib, name, handle
        self._point: bytes | None = None

    def generate_sm2(self) -> bytes:
        """Generate the signing key pair inside the token; returns the public point 04||x||y."""
        blob = ECCPUBLICKEYBLOB()
        self.lib.call("SKF_GenECCKeyPair", self._h, ULONG(SGD_SM2_1), ctypes.byref(blob))
        self._point = _blob_to_point(blob)
        return self._point

    def public_point(self) -> bytes:
        blob = ECCPUBLICKEYBLOB()
        size = ULONG(ctypes.sizeof(blob))
        self.lib.call("SKF_ExportPublicKey", self._h, BOOL(1), ctypes.byref(blob), ctypes.byref(size))
        self._point = _blob_to_point(blob)
        return self._point

    def import_certificate(self, der: bytes) -> None:
        self.lib.call("SKF_ImportCertificate", self._h, BOOL(1), der, ULONG(len(der)))

    def export_certificate(self) -> bytes:
        size = ULONG(0)
        self.lib.call("SKF_ExportCertificate", self._h, BOOL(1), None, ctypes.byref(size))
        buf = ctypes.create_string_buffer(size.value)
        self.lib.call("SKF_ExportCertificate", self._h, BOOL(1), buf, ctypes.byref(size))
        return buf.raw[: size.value]

    def sign_digest(self, e: bytes) -> bytes:
        """SKF_ECCSignData over a prepared SM2 digest e (32 bytes); returns DER SEQUENCE{r, s}."""
        if len(e) != 32:
            raise ValueError("SM2 digest e must be 32 bytes (SM3)")
        sig = ECCSIGNATUREBLOB()
        self.lib.call("SKF_ECCSignData", self._h, e, ULONG(32), ctypes.byref(sig))
        r, s = bytes(sig.r), bytes(sig.s)
        if any(r[:32]) or any(s[:32]):
            raise SkfError("SKF_ECCSignData", 0x0A000001, "r/s wider than 256 bits")
        return sm2.raw_to_der(r[32:] + s[32:])

    def sign(self, message: bytes, *, user_id: bytes = sm2.DEFAULT_USER_ID) -> bytes:
        """SM2 signature over ``message``: e = SM3(Z||M) here (GM/T 0009), the token signs e."""
        point = self._point or self.public_point()
        return self.sign_digest(sm2.message_digest(point, message, user_id))

    def close(self) -> None:
        if self._h:
            h, self._h = self._h, None
            self.lib.call("SKF_CloseContainer", h)


PresenceCallback = Callable[[str, bool], None]


class SkfPresenceWatcher:
    """``SKF_WaitForDevEvent`` in a thread: calls ``on_event(device, present)`` per event."""

    def __init__(self, lib: SkfLibrary, on_event: PresenceCallback) -> None:
        self._lib = lib
        self._on_event = on_event
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="skf-presence", daemon=True)
        self.error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                event = self._lib.wait_for_event()
            except SkfError as exc:  # a failing library must not end the daemon; record it
                self.error = exc
                return
            if event is None:
                continue  # cancelled: the loop condition decides
            name, kind = event
            if kind in (DEV_EVENT_INSERT, DEV_EVENT_REMOVE):
                self._on_event(name, kind == DEV_EVENT_INSERT)

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel until the thread is out: a cancel that lands between two waits is lost."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        while self._thread.is_alive() and time.monotonic() < deadline:
            self._lib.cancel_wait()
            self._thread.join(0.05)
