"""GB/T 38540-2020 electronic seal (``SES_Seal``, v4) and seal signature (``SES_Signature``).

Our own asn1crypto definitions of the standard's ASN.1 (structure cross-checked against two
open implementations and their published sample files, tests/assets/gbt38540/):

    SESeal        ::= SEQUENCE { eSealInfo SES_SealInfo, cert OCTET STRING,      -- maker's
                                 signAlgID OBJECT IDENTIFIER, signedValue BIT STRING }
    SES_SealInfo  ::= SEQUENCE { header SES_Header, esID IA5String, property SES_ESPropertyInfo,
                                 picture SES_ESPictureInfo, extDatas ExtensionDatas OPTIONAL }
    SES_Header    ::= SEQUENCE { id IA5String ("ES"), version INTEGER (4), vid IA5String }
    SES_ESPropertyInfo ::= SEQUENCE { type INTEGER, name UTF8String, certListType INTEGER,
                                 certList SES_CertList, createDate, validStart, validEnd GeneralizedTime }
    SES_CertList  ::= CHOICE { certs SEQUENCE OF OCTET STRING,             -- certListType 1
                               certDigestList SEQUENCE OF CertDigestObj }  -- certListType 2
    CertDigestObj ::= SEQUENCE { type PrintableString, value OCTET STRING }
    SES_ESPictureInfo ::= SEQUENCE { type IA5String, data OCTET STRING, width INTEGER, height INTEGER }
    SES_Signature ::= SEQUENCE { toSign TBS_Sign, cert OCTET STRING,           -- signer's
                                 signatureAlgorithm OBJECT IDENTIFIER, signature BIT STRING,
                                 timeStamp [0] EXPLICIT BIT STRING OPTIONAL }
    TBS_Sign      ::= SEQUENCE { version INTEGER, eseal SESeal, timeInfo GeneralizedTime,
                                 dataHash BIT STRING, propertyInfo IA5String, extDatas OPTIONAL }

What is signed (as both open implementations do, and their samples verify): the maker signs
the DER of ``SES_SealInfo``; the signer signs the DER of ``TBS_Sign``; the timestamp, when
present, is an RFC 3161 token over the signature value. Both CHOICE alternatives of
``SES_CertList`` are untagged SEQUENCE OFs, so ``certListType`` says which one it is.

Every refusal is a ``GbtError`` naming the field (``SES_Seal.eSealInfo.property.validEnd``)
and a stable ``reason``; nothing here signs anything unless every input checked out.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from asn1crypto import cms, core, tsp, x509

from seald.domain.errors import InvalidInput
from seald.gm import certs, sm2

SES_VERSION = 4
MAX_SES_BYTES = 4 * 1024 * 1024  # a seal with its picture is ~20 KiB; refuse anything absurd
PICTURE_TYPES = ("GIF", "BMP", "JPG", "PNG", "SVG", "OFD")
SEAL_TYPE_ORGANISATION = 1
SEAL_TYPE_PERSONAL = 2
CERT_LIST_CERTS = 1
CERT_LIST_DIGESTS = 2


class GbtError(InvalidInput):
    """A GB/T 38540 structure is malformed or does not verify; the message names the field."""

    default_reason = "gbt38540_invalid"


# ---------------------------------------------------------------------------- ASN.1


class SesHeader(core.Sequence):  # type: ignore[misc]  # asn1crypto has no type hints
    _fields: ClassVar[list[Any]] = [
        ("id", core.IA5String),
        ("version", core.Integer),
        ("vid", core.IA5String),
    ]


class CertDigestObj(core.Sequence):  # type: ignore[misc]  # asn1crypto has no type hints
    _fields: ClassVar[list[Any]] = [("type", core.PrintableString), ("value", core.OctetString)]


class CertInfoList(core.SequenceOf):  # type: ignore[misc]  # asn1crypto has no type hints
    _child_spec: ClassVar[Any] = core.OctetString


class CertDigestList(core.SequenceOf):  # type: ignore[misc]  # asn1crypto has no type hints
    _child_spec: ClassVar[Any] = CertDigestObj


class SesESPropertyInfo(core.Sequence):  # type: ignore[misc]  # asn1crypto has no type hints
    _fields: ClassVar[list[Any]] = [
        ("type", core.Integer),
        ("name", core.UTF8String),
        ("cert_list_type", core.Integer),
        ("cert_list", core.Any),  # CertInfoList or CertDigestList, by cert_list_type
        ("create_date", core.GeneralizedTime),
        ("valid_start", core.GeneralizedTime),
        ("valid_end", core.GeneralizedTime),
    ]


class SesESPictureInfo(core.Sequence):  # type: ignore[misc]  # asn1crypto has no type hints
    _fields: ClassVar[list[Any]] = [
        ("type", core.IA5String),
        ("data", core.OctetString),
        ("width", core.Integer),
        ("height", core.Integer),
    ]


class ExtData(core.Sequence):  # type: ignore[misc]  # asn1crypto has no type hints
    _fields: ClassVar[list[Any]] = [
        ("extn_id", core.ObjectIdentifier),
        ("critical", core.Boolean, {"default": False}),
        ("extn_value", core.OctetString),
    ]


class ExtensionDatas(core.SequenceOf):  # type: ignore[misc]  # asn1crypto has no type hints
    _child_spec: ClassVar[Any] = ExtData


class SesSealInfo(core.Sequence):  # type: ignore[misc]  # asn1crypto has no type hints
    _fields: ClassVar[list[Any]] = [
        ("header", SesHeader),
        ("es_id", core.IA5String),
        ("property", SesESPropertyInfo),
        ("picture", SesESPictureInfo),
        ("ext_datas", ExtensionDatas, {"optional": True}),
    ]


class SESeal(core.Sequence):  # type: ignore[misc]  # asn1crypto has no type hints
    _fields: ClassVar[list[Any]] = [
        ("e_seal_info", SesSealInfo),
        ("cert", core.OctetString),
        ("sign_alg_id", core.ObjectIdentifier),
        ("signed_value", core.OctetBitString),
    ]


class TbsSign(core.Sequence):  # type: ignore[misc]  # asn1crypto has no type hints
    _fields: ClassVar[list[Any]] = [
        ("version", core.Integer),
        ("eseal", SESeal),
        ("time_info", core.GeneralizedTime),
        ("data_hash", core.OctetBitString),
        ("property_info", core.IA5String),
        ("ext_datas", ExtensionDatas, {"optional": True}),
    ]


class SesSignature(core.Sequence):  # type: ignore[misc]  # asn1crypto has no type hints
    _fields: ClassVar[list[Any]] = [
        ("to_sign", TbsSign),
        ("cert", core.OctetString),
        ("signature_algorithm", core.ObjectIdentifier),
        ("signature", core.OctetBitString),
        ("time_stamp", core.OctetBitString, {"explicit": 0, "optional": True}),
    ]


# ---------------------------------------------------------------------------- decoding


def _load(cls: type[core.Sequence], data: bytes, what: str) -> core.Sequence:
    if not isinstance(data, bytes | bytearray) or not data:
        raise GbtError(f"{what}: empty input", reason="gbt38540_malformed")
    if len(data) > MAX_SES_BYTES:
        raise GbtError(
            f"{what}: {len(data)} bytes is over the {MAX_SES_BYTES}-byte limit", reason="gbt38540_oversized"
        )
    try:
        obj = cls.load(bytes(data), strict=True)
        obj.native  # noqa: B018 - decode every field now: truncation and bad tags surface here
    except (ValueError, TypeError, OverflowError) as exc:
        raise GbtError(f"{what} does not decode (DER): {exc}", reason="gbt38540_malformed") from None
    return obj


def _cert_list(prop: SesESPropertyInfo) -> tuple[int, list[bytes] | list[tuple[str, bytes]]]:
    kind = int(prop["cert_list_type"].native)
    raw = prop["cert_list"].dump()
    try:
        if kind == CERT_LIST_CERTS:
            lst = CertInfoList.load(raw, strict=True)
            return kind, [bytes(o.native) for o in lst]
        if kind == CERT_LIST_DIGESTS:
            dl = CertDigestList.load(raw, strict=True)
            return kind, [(str(o["type"].native), bytes(o["value"].native)) for o in dl]
    except (ValueError, TypeError) as exc:
        raise GbtError(
            f"SES_Seal.eSealInfo.property.certList does not decode as certListType {kind}: {exc}",
            reason="gbt38540_malformed",
        ) from None
    raise GbtError(
        f"SES_Seal.eSealInfo.property.certListType is {kind}; 1 (certificates) or 2 (digests) expected",
        reason="gbt38540_malformed",
    )


def _check_seal_shape(seal: SESeal, prefix: str) -> None:
    info = seal["e_seal_info"]
    header = info["header"]
    if header["id"].native != "ES":
        raise GbtError(
            f"{prefix}.eSealInfo.header.id is {header['id'].native!r}, not 'ES'", reason="gbt38540_malformed"
        )
    if header["version"].native != SES_VERSION:
        raise GbtError(
            f"{prefix}.eSealInfo.header.version is {header['version'].native}; seald reads version 4 "
            "(GB/T 38540-2020)",
            reason="gbt38540_unsupported_version",
        )
    pic = info["picture"]
    if str(pic["type"].native).upper() not in PICTURE_TYPES:
        raise GbtError(
            f"{prefix}.eSealInfo.picture.type is {pic['type'].native!r}; one of {', '.join(PICTURE_TYPES)}",
            reason="gbt38540_malformed",
        )
    if not pic["data"].native:
        raise GbtError(f"{prefix}.eSealInfo.picture.data is empty", reason="gbt38540_malformed")
    prop = info["property"]
    if prop["valid_start"].native > prop["valid_end"].native:
        raise GbtError(
            f"{prefix}.eSealInfo.property.validStart is after validEnd", reason="gbt38540_malformed"
        )
    _cert_list(prop)


def parse_seal(data: bytes) -> SESeal:
    seal = _load(SESeal, data, "SES_Seal")
    assert isinstance(seal, SESeal)
    _check_seal_shape(seal, "SES_Seal")
    return seal


def holder_certificates(seal: SESeal) -> list[bytes]:
    """The holder certificates a parsed seal lists (certListType 1); [] for a digest list."""
    kind, items = _cert_list(seal["e_seal_info"]["property"])
    return [c for c in items if isinstance(c, bytes)] if kind == CERT_LIST_CERTS else []


def parse_signature(data: bytes) -> SesSignature:
    sig = _load(SesSignature, data, "SES_Signature")
    assert isinstance(sig, SesSignature)
    if sig["to_sign"]["version"].native != SES_VERSION:
        raise GbtError(
            f"SES_Signature.toSign.version is {sig['to_sign']['version'].native}; seald reads version 4",
            reason="gbt38540_unsupported_version",
        )
    _check_seal_shape(sig["to_sign"]["eseal"], "SES_Signature.toSign.eseal")
    return sig


# ---------------------------------------------------------------------------- building


@dataclass(frozen=True)
class SealSpec:
    """What the seal maker puts into a seal (GB/T 38540 7.1)."""

    es_id: str
    name: str
    holder_certs: Sequence[bytes]
    created: dt.datetime
    valid_start: dt.datetime
    valid_end: dt.datetime
    picture: bytes
    picture_type: str = "PNG"
    width_mm: int = 40
    height_mm: int = 40
    seal_type: int = SEAL_TYPE_ORGANISATION
    vid: str = "seald"

    def __post_init__(self) -> None:
        if not self.holder_certs:
            raise GbtError(
                "SES_Seal.eSealInfo.property.certList: a seal needs at least one holder certificate"
            )
        if self.valid_start >= self.valid_end:
            raise GbtError("SES_Seal.eSealInfo.property.validStart must be before validEnd")
        if self.picture_type.upper() not in PICTURE_TYPES:
            raise GbtError(f"SES_Seal.eSealInfo.picture.type must be one of {', '.join(PICTURE_TYPES)}")
        if not self.es_id.isascii() or not self.es_id:
            raise GbtError("SES_Seal.eSealInfo.esID must be non-empty ASCII (IA5String)")


def _gtime(t: dt.datetime) -> core.GeneralizedTime:
    if t.tzinfo is None:
        raise GbtError("GB/T 38540 times must be timezone-aware")
    return core.GeneralizedTime(t.astimezone(dt.UTC).replace(microsecond=0))


def build_seal(spec: SealSpec, *, maker_cert: bytes, maker_sign: certs.Signer) -> bytes:
    """The DER ``SES_Seal``: SES_SealInfo signed SM2-with-SM3 by the seal maker's key.

    Refuses a maker certificate that is not SM2 and holder certificates that do not decode;
    the maker's signature is checked against its certificate before the seal is returned.
    """
    maker = certs.check_sm2_certificate(
        certs.load_certificate(maker_cert, what="seal maker certificate"), what="seal maker certificate"
    )
    for i, c in enumerate(spec.holder_certs):
        certs.load_certificate(c, what=f"holder certificate {i}")
    info = SesSealInfo(
        {
            "header": {"id": "ES", "version": SES_VERSION, "vid": spec.vid},
            "es_id": spec.es_id,
            "property": {
                "type": spec.seal_type,
                "name": spec.name,
                "cert_list_type": CERT_LIST_CERTS,
                "cert_list": CertInfoList([core.OctetString(bytes(c)) for c in spec.holder_certs]),
                "create_date": _gtime(spec.created),
                "valid_start": _gtime(spec.valid_start),
                "valid_end": _gtime(spec.valid_end),
            },
            "picture": {
                "type": spec.picture_type.upper(),
                "data": spec.picture,
                "width": spec.width_mm,
                "height": spec.height_mm,
            },
        }
    )
    tbs = info.dump()
    signature = maker_sign(tbs)
    try:
        maker.verify(signature, tbs)
    except sm2.Sm2Error:
        raise GbtError(
            "the seal maker's key did not produce a signature its certificate verifies: "
            "wrong key or certificate",
            reason="gbt38540_maker_key_mismatch",
        ) from None
    seal = SESeal(
        {
            "e_seal_info": info,
            "cert": maker_cert,
            "sign_alg_id": sm2.SM2_WITH_SM3_OID,
            "signed_value": signature,
        }
    )
    return bytes(seal.dump())


def build_signature(
    *,
    seal: bytes,
    signer_cert: bytes,
    data_hash: bytes,
    property_info: str,
    sign: certs.Signer,
    time_info: dt.datetime,
    time_stamp: bytes | None = None,
) -> bytes:
    """The DER ``SES_Signature`` over ``data_hash`` (e.g. the PDF ByteRange SM3 hash).

    Checks first, signs last: the seal must verify and be valid at ``time_info``, and the
    signer certificate must be SM2 and among the seal's holders; otherwise nothing is signed.
    """
    parsed = parse_seal(seal)
    verify_seal(parsed, at=time_info)
    cert = certs.load_certificate(signer_cert, what="signer certificate")
    key = certs.check_sm2_certificate(cert, what="signer certificate")
    _check_holder(parsed, signer_cert, "SES_Signature.cert")
    if not property_info.isascii():
        raise GbtError("SES_Signature.toSign.propertyInfo must be ASCII (IA5String)")
    tbs = TbsSign(
        {
            "version": SES_VERSION,
            "eseal": parsed,
            "time_info": _gtime(time_info),
            "data_hash": data_hash,
            "property_info": property_info,
        }
    )
    tbs_der = tbs.dump()
    signature = sign(tbs_der)
    try:
        key.verify(signature, tbs_der)
    except sm2.Sm2Error:
        raise GbtError(
            "the signing key did not produce a signature the signer certificate verifies: "
            "the token holds another key than the registered certificate",
            reason="gbt38540_signer_key_mismatch",
        ) from None
    value: dict[str, object] = {
        "to_sign": tbs,
        "cert": signer_cert,
        "signature_algorithm": sm2.SM2_WITH_SM3_OID,
        "signature": signature,
    }
    if time_stamp is not None:
        value["time_stamp"] = time_stamp
    return bytes(SesSignature(value).dump())


def add_timestamp(signature: bytes, token: bytes) -> bytes:
    """The SES_Signature with an RFC 3161 ``timeStamp`` over its signature value added.

    The token is requested after signing (it covers the signature), so it is added to the
    finished structure; ``toSign`` and the signature are kept byte for byte. The token's
    imprint is checked here; its TSA signature by ``gbt38540_pdf.timestamp_problem``.
    """
    sig = parse_signature(signature)
    value = bytes(sig["signature"].native)
    _check_timestamp(token, value)
    return bytes(
        SesSignature(
            {
                "to_sign": sig["to_sign"],
                "cert": sig["cert"],
                "signature_algorithm": sig["signature_algorithm"],
                "signature": value,
                "time_stamp": token,
            }
        ).dump()
    )


# ---------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class SealReport:
    es_id: str
    name: str
    seal_type: int
    vid: str
    valid_start: dt.datetime
    valid_end: dt.datetime
    maker_subject: str
    picture_type: str
    picture_sha256: str
    holders: int
    maker_sha256: str = ""  # SHA-256 of the seal maker's certificate (DER), to match a trust list


@dataclass(frozen=True)
class SignatureReport:
    seal: SealReport
    signer_subject: str
    time_info: dt.datetime
    data_hash: bytes
    property_info: str
    timestamp_time: dt.datetime | None = None
    checks: tuple[str, ...] = field(default=())


def _subject(cert: x509.Certificate) -> str:
    return str(cert.subject.human_friendly)


def verify_seal(
    seal: SESeal | bytes,
    *,
    at: dt.datetime | None = None,
    trusted_makers: Sequence[bytes] | None = None,
) -> SealReport:
    """The maker's SM2 signature over SES_SealInfo, and validity at ``at`` (if given)."""
    parsed = parse_seal(seal) if isinstance(seal, bytes | bytearray) else seal
    prefix = "SES_Seal"
    alg = parsed["sign_alg_id"].dotted
    if alg != sm2.SM2_WITH_SM3_OID:
        raise GbtError(
            f"{prefix}.signAlgID is {alg}; seald verifies SM2-with-SM3 ({sm2.SM2_WITH_SM3_OID})",
            reason="gbt38540_unsupported_algorithm",
        )
    maker_der = bytes(parsed["cert"].native)
    maker_cert = certs.load_certificate(maker_der, what=f"{prefix}.cert (seal maker certificate)")
    maker_key = certs.check_sm2_certificate(maker_cert, what=f"{prefix}.cert (seal maker certificate)")
    if trusted_makers is not None and maker_der not in {bytes(m) for m in trusted_makers}:
        raise GbtError(
            f"{prefix}.cert: the seal maker {_subject(maker_cert)} is not a configured seal maker",
            reason="gbt38540_maker_untrusted",
        )
    try:
        maker_key.verify(bytes(parsed["signed_value"].native), parsed["e_seal_info"].dump())
    except sm2.Sm2Error:
        raise GbtError(
            f"{prefix}.signedValue: the seal maker's signature over SES_SealInfo does not verify "
            "(the seal was altered after it was made, or signed by another key)",
            reason="gbt38540_seal_signature_invalid",
        ) from None
    info = parsed["e_seal_info"]
    prop = info["property"]
    start, end = prop["valid_start"].native, prop["valid_end"].native
    if at is not None:
        if at < start:
            raise GbtError(
                f"{prefix}.eSealInfo.property.validStart: the seal is not valid before {start.isoformat()} "
                f"(checked at {at.isoformat()})",
                reason="gbt38540_seal_not_yet_valid",
            )
        if at > end:
            raise GbtError(
                f"{prefix}.eSealInfo.property.validEnd: the seal expired at {end.isoformat()} "
                f"(checked at {at.isoformat()})",
                reason="gbt38540_seal_expired",
            )
    _kind, holders = _cert_list(prop)
    return SealReport(
        es_id=str(info["es_id"].native),
        name=str(prop["name"].native),
        seal_type=int(prop["type"].native),
        vid=str(info["header"]["vid"].native),
        valid_start=start,
        valid_end=end,
        maker_subject=_subject(maker_cert),
        picture_type=str(info["picture"]["type"].native),
        picture_sha256=hashlib.sha256(bytes(info["picture"]["data"].native)).hexdigest(),
        holders=len(holders),
        maker_sha256=hashlib.sha256(maker_der).hexdigest(),
    )


def _check_holder(seal: SESeal, signer_der: bytes, where: str) -> None:
    kind, holders = _cert_list(seal["e_seal_info"]["property"])
    if kind == CERT_LIST_CERTS:
        found = bytes(signer_der) in holders
    else:
        found = False
        for dtype, value in holders:
            assert isinstance(dtype, str) and isinstance(value, bytes)
            name = dtype.lower().replace("-", "")
            if name == "sm3":
                found |= sm2.sm3(signer_der) == value
            elif name in ("sha256", "sha1"):
                found |= hashlib.new(name, signer_der).digest() == value
    if not found:
        raise GbtError(
            f"{where}: the signer certificate is not among the seal's holders "
            "(SES_Seal.eSealInfo.property.certList)",
            reason="gbt38540_signer_not_holder",
        )


def _check_timestamp(token_der: bytes, signature: bytes) -> dt.datetime:
    """RFC 3161 token over the signature value: the imprint must match. Returns genTime."""
    try:
        ci = cms.ContentInfo.load(token_der, strict=True)
        signed = ci["content"]
        info = tsp.TSTInfo.load(signed["encap_content_info"]["content"].parsed.dump())
        imprint = info["message_imprint"]
        algo = imprint["hash_algorithm"]["algorithm"]
        expected = bytes(imprint["hashed_message"].native)
        gen_time: dt.datetime = info["gen_time"].native
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise GbtError(
            f"SES_Signature.timeStamp is not an RFC 3161 token: {exc}", reason="gbt38540_timestamp_invalid"
        ) from None
    if algo.dotted == sm2.SM3_OID:
        actual = sm2.sm3(signature)
    elif algo.native in ("sha256", "sha384", "sha512"):
        actual = hashlib.new(str(algo.native), signature).digest()
    else:
        raise GbtError(
            f"SES_Signature.timeStamp uses hash {algo.native}; sm3 or sha2 expected",
            reason="gbt38540_timestamp_invalid",
        )
    if actual != expected:
        raise GbtError(
            "SES_Signature.timeStamp: the token's message imprint is not the hash of SES_Signature.signature",
            reason="gbt38540_timestamp_mismatch",
        )
    return gen_time


def verify_signature(
    data: bytes,
    *,
    data_hash: bytes | None = None,
    trusted_makers: Sequence[bytes] | None = None,
) -> SignatureReport:
    """Verify both layers of an SES_Signature.

    1. the seal: maker signature over SES_SealInfo (and maker trusted, if a list is given);
    2. the seal was valid at the signing time (toSign.timeInfo);
    3. the signer certificate is SM2, valid at timeInfo, and among the seal's holders;
    4. the signer's SM2 signature over TBS_Sign;
    5. toSign.dataHash equals ``data_hash`` (the document's hash), when given;
    6. the timestamp, when present, is over the signature value.
    """
    sig = parse_signature(data)
    tbs = sig["to_sign"]
    when: dt.datetime = tbs["time_info"].native
    seal_report = verify_seal(tbs["eseal"], at=when, trusted_makers=trusted_makers)
    alg = sig["signature_algorithm"].dotted
    if alg != sm2.SM2_WITH_SM3_OID:
        raise GbtError(
            f"SES_Signature.signatureAlgorithm is {alg}; seald verifies SM2-with-SM3",
            reason="gbt38540_unsupported_algorithm",
        )
    signer_der = bytes(sig["cert"].native)
    signer = certs.load_certificate(signer_der, what="SES_Signature.cert (signer certificate)")
    key = certs.check_sm2_certificate(signer, what="SES_Signature.cert (signer certificate)")
    validity = signer["tbs_certificate"]["validity"]
    nb, na = validity["not_before"].native, validity["not_after"].native
    if not nb <= when <= na:
        raise GbtError(
            f"SES_Signature.cert: the signer certificate is valid {nb.isoformat()} to {na.isoformat()}, "
            f"not at the signing time {when.isoformat()}",
            reason="gbt38540_signer_cert_expired",
        )
    _check_holder(tbs["eseal"], signer_der, "SES_Signature.cert")
    signature = bytes(sig["signature"].native)
    try:
        key.verify(signature, tbs.dump())
    except sm2.Sm2Error:
        raise GbtError(
            "SES_Signature.signature: the signer's signature over TBS_Sign does not verify",
            reason="gbt38540_signature_invalid",
        ) from None
    checks = ["seal_signature", "seal_valid_at_signing_time", "signer_among_holders", "signature"]
    got_hash = bytes(tbs["data_hash"].native)
    if data_hash is not None:
        if got_hash != data_hash:
            raise GbtError(
                "SES_Signature.toSign.dataHash is not the hash of this document: the document was changed "
                "after sealing, or the signature belongs to another document",
                reason="gbt38540_data_hash_mismatch",
            )
        checks.append("data_hash")
    ts_time = None
    if sig["time_stamp"].native is not None:
        ts_time = _check_timestamp(bytes(sig["time_stamp"].native), signature)
        checks.append("timestamp_imprint")
    return SignatureReport(
        seal=seal_report,
        signer_subject=_subject(signer),
        time_info=when,
        data_hash=got_hash,
        property_info=str(tbs["property_info"].native),
        timestamp_time=ts_time,
        checks=tuple(checks),
    )


# Names of the checks ``layer_checks`` reports, in order (sealctl evidence verify prefixes
# them with "gbt38540_"; docs/evidence.md explains each).
LAYER_CHECKS = ("seal_maker", "seal_validity", "signer_holder", "document_signature", "timestamp")


@dataclass(frozen=True)
class LayerCheck:
    """One named check of an SES_Signature: ``problem`` empty when it passed."""

    name: str
    problem: str
    detail: str
    reason: str = ""


def layer_checks(data: bytes, *, data_hash: bytes) -> list[LayerCheck]:  # noqa: C901 - five checks, each its own
    """Every check of ``verify_signature`` run on its own, one result per ``LAYER_CHECKS`` name,
    so a report can say which layer a tampered document fails (all of them, when several do).

    Raises ``GbtError`` only when the SES_Signature does not decode at all. Trust (the maker
    and signer certificates chaining to a root, the TSA's signature and chain) needs
    certificates from outside the document and is the caller's part.
    """
    sig = parse_signature(data)
    tbs = sig["to_sign"]
    when: dt.datetime = tbs["time_info"].native
    out: list[LayerCheck] = []

    def run(name: str, check: Any) -> None:
        try:
            out.append(LayerCheck(name, "", str(check())))
        except InvalidInput as exc:  # GbtError, Sm2Error: the field is in the message
            out.append(LayerCheck(name, exc.message, "", exc.reason))

    def maker() -> str:
        report = verify_seal(tbs["eseal"])
        return (
            f"SES_Seal {report.name!r} (esID {report.es_id}) signed by the seal maker "
            f"{report.maker_subject} (certificate SHA-256 {report.maker_sha256})"
        )

    def validity() -> str:
        prop = tbs["eseal"]["e_seal_info"]["property"]
        start, end = prop["valid_start"].native, prop["valid_end"].native
        if when < start:
            raise GbtError(
                f"SES_Seal.eSealInfo.property.validStart: the seal is valid from {start.isoformat()}, "
                f"after the signing time {when.isoformat()}",
                reason="gbt38540_seal_not_yet_valid",
            )
        if when > end:
            raise GbtError(
                f"SES_Seal.eSealInfo.property.validEnd: the seal expired at {end.isoformat()}, before the "
                f"signing time {when.isoformat()}",
                reason="gbt38540_seal_expired",
            )
        return f"seal valid {start.isoformat()} to {end.isoformat()}, signed at {when.isoformat()}"

    def holder() -> str:
        signer_der = bytes(sig["cert"].native)
        signer = certs.load_certificate(signer_der, what="SES_Signature.cert (signer certificate)")
        certs.check_sm2_certificate(signer, what="SES_Signature.cert (signer certificate)")
        validity = signer["tbs_certificate"]["validity"]
        nb, na = validity["not_before"].native, validity["not_after"].native
        if not nb <= when <= na:
            raise GbtError(
                f"SES_Signature.cert: the signer certificate is valid {nb.isoformat()} to {na.isoformat()}, "
                f"not at the signing time {when.isoformat()}",
                reason="gbt38540_signer_cert_expired",
            )
        _check_holder(tbs["eseal"], signer_der, "SES_Signature.cert")
        return f"signer {_subject(signer)} is among the seal's holders"

    def document() -> str:
        alg = sig["signature_algorithm"].dotted
        if alg != sm2.SM2_WITH_SM3_OID:
            raise GbtError(
                f"SES_Signature.signatureAlgorithm is {alg}; seald verifies SM2-with-SM3",
                reason="gbt38540_unsupported_algorithm",
            )
        signer = certs.load_certificate(
            bytes(sig["cert"].native), what="SES_Signature.cert (signer certificate)"
        )
        key = certs.check_sm2_certificate(signer, what="SES_Signature.cert (signer certificate)")
        try:
            key.verify(bytes(sig["signature"].native), tbs.dump())
        except sm2.Sm2Error:
            raise GbtError(
                "SES_Signature.signature: the signer's signature over TBS_Sign does not verify",
                reason="gbt38540_signature_invalid",
            ) from None
        if bytes(tbs["data_hash"].native) != data_hash:
            raise GbtError(
                "SES_Signature.toSign.dataHash is not the SM3 hash of the signed byte ranges: the document "
                "was changed after sealing, or the signature belongs to another document",
                reason="gbt38540_data_hash_mismatch",
            )
        return "SM2 signature over TBS_Sign verifies; dataHash = SM3 of the signed byte ranges"

    def timestamp() -> str:
        token = sig["time_stamp"].native
        if token is None:
            return "no timestamp (a level B-B seal)"
        at = _check_timestamp(bytes(token), bytes(sig["signature"].native))
        return f"RFC 3161 timestamp {at.isoformat()} over SES_Signature.signature"

    for name, check in zip(LAYER_CHECKS, (maker, validity, holder, document, timestamp), strict=True):
        run(name, check)
    return out
