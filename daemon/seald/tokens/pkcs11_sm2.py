"""SM2 signatures on PKCS#11 tokens through vendor-defined mechanisms, configured per token model.

PKCS#11 (up to 3.1) defines no SM2 mechanism; Chinese HSMs and USB keys each define their
own in the vendor range. What differs between models, and is therefore configuration:
the mechanism number, whether the token signs a prepared digest ``e = SM3(Z || M)`` (the
caller computes Z, GM/T 0009) or hashes the message itself (Z with the default user id
``1234567812345678``), and how the signature comes back (raw ``r||s``, 64 bytes, or DER
``SEQUENCE { r, s }``). The key type number matters to find the key.

Profiles below are the models whose values are documented in public material (the vendor
table of the xipki PKCS#11 wrapper, ``vendor.conf``); each was read from there, none was
tried on hardware here. A site with another model configures the numbers itself
(``Sm2MechanismProfile(...)``), and seald checks every signature against the seal
certificate before using it, so a wrong profile fails closed.

python-pkcs11 (0.9.5) cannot call a vendor mechanism: ``sign`` reads the key's
``CKA_KEY_TYPE`` into its ``KeyType`` enum (a vendor key type such as ``0x80000004`` raises
``ValueError``) and accepts only members of its ``Mechanism`` enum. So the SM2 signature goes
through the module's own ``CK_FUNCTION_LIST`` (``C_SignInit``/``C_Sign``, ctypes) on the
session and key handles python-pkcs11 opened and found: the same loaded module (``dlopen`` of
one path is one instance), so login and session state are shared. ``VendorMechanismKey`` is
that key. Tested against the PKCS#11 SM2 test token (softhsm-fixtures/p11-sm2-test-token/),
which imitates the ``sansec-hsm`` profile.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any, Literal

from seald.domain.errors import InvalidInput, PreconditionFailed
from seald.gm import sm2

SignInput = Literal["digest_e", "message"]
SignatureEncoding = Literal["raw", "der"]


@dataclass(frozen=True)
class Sm2MechanismProfile:
    model: str
    mechanism: int  # CKM_* in the vendor range (>= 0x80000000)
    sign_input: SignInput
    signature_encoding: SignatureEncoding
    key_type: int  # CKK_* of SM2 keys on this model

    def __post_init__(self) -> None:
        if not 0x80000000 <= self.mechanism <= 0xFFFFFFFF:
            raise InvalidInput(
                f"SM2 profile {self.model}: mechanism 0x{self.mechanism:X} is not in the vendor range "
                "0x80000000-0xFFFFFFFF",
                reason="config_invalid",
            )
        if self.sign_input not in ("digest_e", "message"):
            raise InvalidInput(f"SM2 profile {self.model}: sign_input must be digest_e or message")
        if self.signature_encoding not in ("raw", "der"):
            raise InvalidInput(f"SM2 profile {self.model}: signature_encoding must be raw or der")


# From xipki ipkcs11wrapper vendor.conf (see module docstring): TASS and SANSEC HSMs.
KNOWN_PROFILES: dict[str, Sm2MechanismProfile] = {
    # TASS: CKM_VENDOR_SM2 0x80008000 signs e; VENDOR_BEHAVIORS SM2_SIGNATURE_X962 (DER).
    "tass-hsm": Sm2MechanismProfile("tass-hsm", 0x80008000, "digest_e", "der", 0x80000004),
    # TASS: CKM_SM3_SM2 0x80008100, the token hashes (Z with the default id); DER.
    "tass-hsm-sm3": Sm2MechanismProfile("tass-hsm-sm3", 0x80008100, "message", "der", 0x80000004),
    # SANSEC: CKM_SM2_SIGN 0x80008104 signs e; no X9.62 behaviour listed: raw r||s.
    "sansec-hsm": Sm2MechanismProfile("sansec-hsm", 0x80008104, "digest_e", "raw", 0x80000004),
    # SANSEC: CKM_SM3_SM2_DER 0x80008101, the token hashes and returns DER.
    "sansec-hsm-sm3-der": Sm2MechanismProfile("sansec-hsm-sm3-der", 0x80008101, "message", "der", 0x80000004),
}


def profile(name: str) -> Sm2MechanismProfile:
    try:
        return KNOWN_PROFILES[name]
    except KeyError:
        raise InvalidInput(
            f"unknown SM2 token profile {name!r}; known: {', '.join(sorted(KNOWN_PROFILES))}, "
            "or configure mechanism/sign_input/signature_encoding/key_type explicitly",
            reason="config_invalid",
        ) from None


def sign_sm2(key: Any, public_point: bytes, message: bytes, prof: Sm2MechanismProfile) -> bytes:
    """SM2-sign ``message`` with a PKCS#11 private key object; returns DER, checked.

    ``key`` is a python-pkcs11 private key (anything with ``sign(data, mechanism=)``).
    The result is verified against ``public_point`` before it is returned: a profile that
    does not match the token (wrong input convention or encoding) is refused, not emitted.
    """
    data = sm2.message_digest(public_point, message) if prof.sign_input == "digest_e" else message
    raw = bytes(key.sign(data, mechanism=prof.mechanism))
    try:
        der = sm2.raw_to_der(raw) if prof.signature_encoding == "raw" else sm2.raw_to_der(sm2.der_to_raw(raw))
        sm2.Sm2PublicKey(public_point).verify(der, message)
    except sm2.Sm2Error as exc:
        raise PreconditionFailed(
            f"the token's SM2 signature (profile {prof.model}) does not verify against the seal key: "
            f"{exc.message}; check the token model's SM2 profile",
            reason="sm2_profile_mismatch",
        ) from None
    return der


# CK_FUNCTION_LIST of PKCS#11 v2.40, in its order (after the CK_VERSION).
_FUNCTION_NAMES = [
    "C_Initialize",
    "C_Finalize",
    "C_GetInfo",
    "C_GetFunctionList",
    "C_GetSlotList",
    "C_GetSlotInfo",
    "C_GetTokenInfo",
    "C_GetMechanismList",
    "C_GetMechanismInfo",
    "C_InitToken",
    "C_InitPIN",
    "C_SetPIN",
    "C_OpenSession",
    "C_CloseSession",
    "C_CloseAllSessions",
    "C_GetSessionInfo",
    "C_GetOperationState",
    "C_SetOperationState",
    "C_Login",
    "C_Logout",
    "C_CreateObject",
    "C_CopyObject",
    "C_DestroyObject",
    "C_GetObjectSize",
    "C_GetAttributeValue",
    "C_SetAttributeValue",
    "C_FindObjectsInit",
    "C_FindObjects",
    "C_FindObjectsFinal",
    "C_EncryptInit",
    "C_Encrypt",
    "C_EncryptUpdate",
    "C_EncryptFinal",
    "C_DecryptInit",
    "C_Decrypt",
    "C_DecryptUpdate",
    "C_DecryptFinal",
    "C_DigestInit",
    "C_Digest",
    "C_DigestUpdate",
    "C_DigestKey",
    "C_DigestFinal",
    "C_SignInit",
    "C_Sign",
    "C_SignUpdate",
    "C_SignFinal",
    "C_SignRecoverInit",
    "C_SignRecover",
    "C_VerifyInit",
    "C_Verify",
    "C_VerifyUpdate",
    "C_VerifyFinal",
    "C_VerifyRecoverInit",
    "C_VerifyRecover",
    "C_DigestEncryptUpdate",
    "C_DecryptDigestUpdate",
    "C_SignEncryptUpdate",
    "C_DecryptVerifyUpdate",
    "C_GenerateKey",
    "C_GenerateKeyPair",
    "C_WrapKey",
    "C_UnwrapKey",
    "C_DeriveKey",
    "C_SeedRandom",
    "C_GenerateRandom",
    "C_GetFunctionStatus",
    "C_CancelFunction",
    "C_WaitForSlotEvent",
]


class _CkFunctionList(ctypes.Structure):
    _fields_ = [("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte)] + [
        (name, ctypes.c_void_p) for name in _FUNCTION_NAMES
    ]


class _CkMechanism(ctypes.Structure):
    _fields_ = [
        ("mechanism", ctypes.c_ulong),
        ("pParameter", ctypes.c_void_p),
        ("ulParameterLen", ctypes.c_ulong),
    ]


_SignInit = ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.c_ulong, ctypes.POINTER(_CkMechanism), ctypes.c_ulong)
_Sign = ctypes.CFUNCTYPE(
    ctypes.c_ulong,
    ctypes.c_ulong,
    ctypes.c_char_p,
    ctypes.c_ulong,
    ctypes.POINTER(ctypes.c_ubyte),
    ctypes.POINTER(ctypes.c_ulong),
)

# What a refused vendor signature means to seald (the rest is a token error).
# DEVICE_ERROR, DEVICE_REMOVED, SESSION_CLOSED, SESSION_HANDLE_INVALID, TOKEN_NOT_PRESENT
_CKR_GONE = {0x30, 0x32, 0xB0, 0xB3, 0xE0}
_CKR_NOT_LOGGED_IN = 0x101


class VendorModule:
    """``C_SignInit``/``C_Sign`` of a loaded PKCS#11 module, for mechanisms python-pkcs11 refuses."""

    def __init__(self, module_path: str) -> None:
        lib = ctypes.CDLL(module_path)  # the module python-pkcs11 already loaded: same instance
        get = lib.C_GetFunctionList
        get.argtypes = [ctypes.POINTER(ctypes.POINTER(_CkFunctionList))]
        get.restype = ctypes.c_ulong
        fl = ctypes.POINTER(_CkFunctionList)()
        rv = get(ctypes.byref(fl))
        if rv != 0 or not fl or not fl.contents.C_SignInit or not fl.contents.C_Sign:
            raise PreconditionFailed(
                f"PKCS#11 module {module_path}: no usable function list (CKR 0x{rv:X})", reason="token_error"
            )
        self._lib = lib  # keeps the module mapped while the function pointers are used
        self._sign_init = _SignInit(fl.contents.C_SignInit)
        self._sign = _Sign(fl.contents.C_Sign)

    def sign(self, session_handle: int, key_handle: int, mechanism: int, data: bytes) -> bytes:
        mech = _CkMechanism(mechanism, None, 0)
        rv = self._sign_init(session_handle, ctypes.byref(mech), key_handle)
        if rv == 0:
            out = (ctypes.c_ubyte * 512)()  # SM2: 64 raw or <= 72 DER; no length query round trip
            out_len = ctypes.c_ulong(len(out))
            rv = self._sign(session_handle, data, len(data), out, ctypes.byref(out_len))
            if rv == 0:
                return bytes(out[: out_len.value])
        if rv in _CKR_GONE:
            raise PreconditionFailed(
                f"the SM2 token went away while signing (CKR 0x{rv:X}); insert it and unlock it again",
                reason="token_absent",
            )
        if rv == _CKR_NOT_LOGGED_IN:
            raise PreconditionFailed(
                "the SM2 token is locked (not logged in); unlock it first", reason="token_locked"
            )
        raise PreconditionFailed(
            f"the SM2 token refused vendor mechanism 0x{mechanism:X} (CKR 0x{rv:X}); "
            "check the token model's SM2 profile",
            reason="token_error",
        )


class VendorMechanismKey:
    """A python-pkcs11 private key whose ``sign`` goes through the module's own C_SignInit/C_Sign.

    ``key`` is what python-pkcs11's ``session.get_key`` returned; its session and object
    handles are the module's, valid in ``module`` (the same loaded library).
    """

    def __init__(self, module: VendorModule, key: Any) -> None:
        self._module = module
        self._session_handle = int(key.wrapper.session.handle)
        self._key_handle = int(key.wrapper.handle)

    def sign(self, data: bytes, mechanism: int) -> bytes:
        return self._module.sign(self._session_handle, self._key_handle, mechanism, data)
