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
"""

from __future__ import annotations

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
