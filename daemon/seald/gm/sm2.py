"""SM2 signatures with SM3 (GM/T 0003, GM/T 0009) on tongsuopy, with OpenSSL as the reference.

Why tongsuopy: it binds Tongsuo (the OpenSSL fork maintained for the Chinese algorithms) in
C, signs in ~0.3 ms, and computes the GM/T 0009 preprocessing with the standard's default
user id ``1234567812345678``. The pure-Python ``gmssl`` is slow and has a key-parsing bug
(``public_key.lstrip("04")`` strips every leading 0 and 4 hex digit, not the prefix) and signs
raw ``r||s`` unless asked for DER. Neither library was wrong about the Z value in the quick
try noted in FIELD-NOTES: Debian 12's OpenSSL 3.0 CLI uses an EMPTY user id unless given
``-pkeyopt distid:1234567812345678``, so its signatures and the libraries' did not match.
See docs/architecture.md, "National cryptography".

Only the standard's default user id is supported for verification in software: tongsuopy has
no way to pass another, and no token we drive is configured with another one. The Z value
itself is computed here (``z_value``) because SKF tokens sign a digest the caller prepares.
"""

from __future__ import annotations

from dataclasses import dataclass

from asn1crypto import algos, keys, x509
from cryptography.hazmat.primitives import hashes
from tongsuopy.crypto import exceptions as ts_exceptions
from tongsuopy.crypto import hashes as ts_hashes
from tongsuopy.crypto import serialization as ts_serialization
from tongsuopy.crypto.asymciphers import ec as ts_ec

from seald.domain.errors import InvalidInput

SM2_CURVE_OID = "1.2.156.10197.1.301"
SM2_WITH_SM3_OID = "1.2.156.10197.1.501"
SM3_OID = "1.2.156.10197.1.401"
EC_PUBLIC_KEY_OID = "1.2.840.10045.2.1"
DEFAULT_USER_ID = b"1234567812345678"

# GM/T 0003.5 curve parameters, needed for the Z value (they enter the hash).
_P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
_A = _P - 3
_B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
_GX = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
_GY = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0
ORDER = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123


class Sm2Error(InvalidInput):
    """An SM2 key, certificate or signature is wrong; the message names the field."""

    default_reason = "sm2_invalid"


def sm3(data: bytes) -> bytes:
    h = hashes.Hash(hashes.SM3())
    h.update(data)
    return h.finalize()


def _check_point(point: bytes) -> None:
    if len(point) != 65 or point[0] != 4:
        raise Sm2Error(
            f"SM2 public key must be an uncompressed point (65 bytes starting 04), got {len(point)} bytes"
        )


def z_value(public_point: bytes, user_id: bytes = DEFAULT_USER_ID) -> bytes:
    """Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA), GM/T 0003.2 section 5.5."""
    _check_point(public_point)
    if len(user_id) * 8 > 0xFFFF:
        raise Sm2Error("SM2 user id longer than 8191 bytes")
    fields = b"".join(v.to_bytes(32, "big") for v in (_A, _B, _GX, _GY))
    return sm3((len(user_id) * 8).to_bytes(2, "big") + user_id + fields + public_point[1:])


def message_digest(public_point: bytes, message: bytes, user_id: bytes = DEFAULT_USER_ID) -> bytes:
    """e = SM3(Z || M): what an SKF token's ECCSignData signs (GM/T 0009 section 8)."""
    return sm3(z_value(public_point, user_id) + message)


def der_to_raw(signature: bytes) -> bytes:
    """DER ``SEQUENCE { r, s }`` (GM/T 0009 SM2Signature) to 64 bytes r||s."""
    try:
        sig = algos.DSASignature.load(signature, strict=True)
        r, s = int(sig["r"].native), int(sig["s"].native)
    except (ValueError, TypeError) as exc:
        raise Sm2Error(f"SM2 signature is not a DER SEQUENCE of two INTEGERs: {exc}") from None
    if not (0 < r < ORDER and 0 < s < ORDER):
        raise Sm2Error("SM2 signature r or s is out of range [1, n-1]")
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def raw_to_der(raw: bytes) -> bytes:
    if len(raw) != 64:
        raise Sm2Error(f"raw SM2 signature must be 64 bytes r||s, got {len(raw)}")
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    if not (0 < r < ORDER and 0 < s < ORDER):
        raise Sm2Error("SM2 signature r or s is out of range [1, n-1]")
    return bytes(algos.DSASignature({"r": r, "s": s}).dump())


def _spki_algorithm_problem(spki: keys.PublicKeyInfo) -> str | None:
    """Why this SubjectPublicKeyInfo is not an SM2 key, or None if it is."""
    alg = spki["algorithm"]["algorithm"]
    if alg.dotted != EC_PUBLIC_KEY_OID:
        return (
            f"subjectPublicKeyInfo.algorithm is {alg.native} ({alg.dotted}), not an SM2 key "
            f"(id-ecPublicKey with curve {SM2_CURVE_OID}): use an SM2 certificate for an SM2 seal"
        )
    params = spki["algorithm"]["parameters"]
    if params.name != "named":
        return "subjectPublicKeyInfo.algorithm.parameters is not a named curve; SM2 keys name curve sm2"
    curve = params.chosen
    if curve.dotted != SM2_CURVE_OID:
        return (
            f"subjectPublicKeyInfo.algorithm.parameters names curve {curve.native} ({curve.dotted}), "
            f"not SM2 ({SM2_CURVE_OID})"
        )
    return None


@dataclass(frozen=True)
class Sm2PublicKey:
    point: bytes  # uncompressed 04||x||y

    def __post_init__(self) -> None:
        _check_point(self.point)
        try:
            ts_ec.EllipticCurvePublicKey.from_encoded_point(ts_ec.SM2(), self.point)
        except ValueError:
            raise Sm2Error("SM2 public key point is not on the SM2 curve") from None

    @classmethod
    def from_spki(cls, spki: keys.PublicKeyInfo) -> Sm2PublicKey:
        problem = _spki_algorithm_problem(spki)
        if problem:
            raise Sm2Error(problem, reason="sm2_wrong_key_type")
        return cls(bytes(spki["public_key"].native))

    @classmethod
    def from_spki_der(cls, der: bytes) -> Sm2PublicKey:
        try:
            spki = keys.PublicKeyInfo.load(der, strict=True)
            spki.native  # noqa: B018 - parse everything now, so errors surface here
        except (ValueError, TypeError) as exc:
            raise Sm2Error(f"subjectPublicKeyInfo does not decode: {exc}") from None
        return cls.from_spki(spki)

    @classmethod
    def from_certificate(cls, cert: x509.Certificate) -> Sm2PublicKey:
        return cls.from_spki(cert["tbs_certificate"]["subject_public_key_info"])

    def spki(self) -> keys.PublicKeyInfo:
        return keys.PublicKeyInfo(
            {
                "algorithm": {
                    "algorithm": EC_PUBLIC_KEY_OID,
                    "parameters": keys.ECDomainParameters(name="named", value=SM2_CURVE_OID),
                },
                "public_key": self.point,
            }
        )

    def spki_der(self) -> bytes:
        return bytes(self.spki().dump())

    def verify(self, signature: bytes, message: bytes) -> None:
        """Verify a DER SM2 signature over ``message`` (Z with the default id). Raises Sm2Error."""
        der_to_raw(signature)  # shape and range first: a clear reason instead of a bare failure
        key = ts_ec.EllipticCurvePublicKey.from_encoded_point(ts_ec.SM2(), self.point)
        try:
            key.verify(signature, message, ts_ec.ECDSA(ts_hashes.SM3()))
        except ts_exceptions.InvalidSignature:
            raise Sm2Error("SM2 signature does not verify", reason="sm2_bad_signature") from None


class Sm2PrivateKey:
    """A software SM2 key: the seal maker's key in tests and tools, never a seal's own key."""

    def __init__(self, key: ts_ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(key.curve, ts_ec.SM2):
            raise Sm2Error(f"private key is on curve {key.curve.name}, not SM2")
        self._key = key

    @classmethod
    def generate(cls) -> Sm2PrivateKey:
        return cls(ts_ec.generate_private_key(ts_ec.SM2()))

    @classmethod
    def from_pem(cls, pem: bytes) -> Sm2PrivateKey:
        key = ts_serialization.load_pem_private_key(pem, None)
        if not isinstance(key, ts_ec.EllipticCurvePrivateKey):
            raise Sm2Error("PEM private key is not an EC key")
        return cls(key)

    def to_pem(self) -> bytes:
        data: bytes = self._key.private_bytes(
            ts_serialization.Encoding.PEM,
            ts_serialization.PrivateFormat.PKCS8,
            ts_serialization.NoEncryption(),
        )
        return data

    @property
    def public_key(self) -> Sm2PublicKey:
        point: bytes = self._key.public_key().public_bytes(
            ts_serialization.Encoding.X962, ts_serialization.PublicFormat.UncompressedPoint
        )
        return Sm2PublicKey(point)

    def sign(self, message: bytes) -> bytes:
        """DER SM2 signature over ``message`` with the default user id."""
        sig: bytes = self._key.sign(message, ts_ec.ECDSA(ts_hashes.SM3()))
        return sig
