"""GB/T 38540-2020 SES_Seal / SES_Signature: build, decode field by field with OpenSSL, verify, refuse.

Independent checks: ``openssl asn1parse`` decodes what we build (compared field by field),
``openssl pkeyutl`` verifies the maker's and the signer's SM2 signatures over the byte ranges
asn1parse locates. Published vectors of open implementations are not committed here (files
from public repositories may only enter through the steering repo's shared/).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from asn1crypto import algos, cms, core, tsp
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from seald.gm import certs, ses, sm2
from seald_testing.sm2_seal import asn1parse, bitstring_bytes, openssl_sm2_verifies

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64  # the picture's bytes matter, not that it renders


@dataclass
class Pki:
    maker: sm2.Sm2PrivateKey
    maker_cert: bytes
    holder: sm2.Sm2PrivateKey
    holder_cert: bytes
    other: sm2.Sm2PrivateKey
    other_cert: bytes


def _cert(ca: sm2.Sm2PrivateKey, key: sm2.Sm2PrivateKey, cn: str) -> bytes:
    return bytes(
        certs.build_certificate(
            subject=certs.name(cn),
            issuer=certs.name("Test SM2 CA"),
            public_key=key.public_key,
            sign=ca.sign,
            not_before=T0,
            not_after=T0 + dt.timedelta(days=3650),
        ).dump()
    )


@pytest.fixture(scope="module")
def pki() -> Pki:
    ca = sm2.Sm2PrivateKey.generate()
    maker, holder, other = (sm2.Sm2PrivateKey.generate() for _ in range(3))
    return Pki(
        maker,
        _cert(ca, maker, "电子印章制作系统"),
        holder,
        _cert(ca, holder, "合同专用章"),
        other,
        _cert(ca, other, "someone else"),
    )


def _spec(pki: Pki, **kw: object) -> ses.SealSpec:
    base = ses.SealSpec(
        es_id="91110000MA00TEST01-0003",
        name="华夏示例有限公司合同专用章",
        holder_certs=[pki.holder_cert],
        created=T0,
        valid_start=T0,
        valid_end=T0 + dt.timedelta(days=365),
        picture=PNG,
        width_mm=42,
        height_mm=42,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def _seal(pki: Pki, **kw: object) -> bytes:
    return ses.build_seal(_spec(pki, **kw), maker_cert=pki.maker_cert, maker_sign=pki.maker.sign)


def _signature(
    pki: Pki, seal: bytes, *, when: dt.datetime | None = None, time_stamp: bytes | None = None
) -> bytes:
    return ses.build_signature(
        seal=seal,
        signer_cert=pki.holder_cert,
        data_hash=sm2.sm3(b"%PDF byte range"),
        property_info="ByteRange",
        sign=pki.holder.sign,
        time_info=when or T0 + dt.timedelta(days=10),
        time_stamp=time_stamp,
    )


# ---------------------------------------------------------------------------- OpenSSL helpers


# asn1parse and the OpenSSL SM2 verification are shared with the daemon tests.
openssl_verify = openssl_sm2_verifies


# ---------------------------------------------------------------------------- building + decoding


def test_gbt38540_seal_decodes_field_by_field_with_openssl(pki: Pki, tmp_path: Path) -> None:
    seal = _seal(pki)
    nodes = asn1parse(seal, tmp_path)
    # top: SESeal SEQUENCE, with eSealInfo SEQUENCE, cert OCTET STRING, OID, BIT STRING at depth 1
    top = [n for n in nodes if n.depth == 1]
    assert [n.tag for n in top] == ["SEQUENCE", "OCTET STRING", "OBJECT", "BIT STRING"]
    assert top[1].content(seal) == pki.maker_cert
    assert top[2].value == "SM2-with-SM3"
    info = [n for n in nodes if n.depth == 2]
    assert [n.tag for n in info] == [
        "SEQUENCE",
        "IA5STRING",
        "SEQUENCE",
        "SEQUENCE",
    ]  # header, esID, property, picture
    assert info[1].value == "91110000MA00TEST01-0003"
    d3 = [n for n in nodes if n.depth == 3]
    header, prop_and_pic = d3[:3], d3[3:]
    assert [(n.tag, n.value) for n in header] == [
        ("IA5STRING", "ES"),
        ("INTEGER", "04"),
        ("IA5STRING", "seald"),
    ]
    prop, pic = prop_and_pic[:7], prop_and_pic[7:]
    assert [n.tag for n in prop] == [
        "INTEGER",
        "UTF8STRING",
        "INTEGER",
        "SEQUENCE",
        "GENERALIZEDTIME",
        "GENERALIZEDTIME",
        "GENERALIZEDTIME",
    ]
    assert prop[0].value == "01"  # organisation seal
    assert prop[1].content(seal).decode() == "华夏示例有限公司合同专用章"
    assert prop[2].value == "01"  # certListType: certificates
    assert [n.value for n in prop[4:]] == ["20260101000000Z", "20260101000000Z", "20270101000000Z"]
    holders = [n for n in nodes if n.depth == 4]
    assert (
        len(holders) == 1 and holders[0].tag == "OCTET STRING" and holders[0].content(seal) == pki.holder_cert
    )
    assert [n.tag for n in pic] == ["IA5STRING", "OCTET STRING", "INTEGER", "INTEGER"]
    assert pic[0].value == "PNG" and pic[1].content(seal) == PNG
    assert (int(pic[2].value, 16), int(pic[3].value, 16)) == (42, 42)
    # the maker's signature, located by asn1parse, verifies with OpenSSL over the SES_SealInfo bytes
    assert openssl_verify(tmp_path, pki.maker_cert, top[0].tlv(seal), bitstring_bytes(top[3], seal))


def test_gbt38540_signature_decodes_and_openssl_verifies_it(pki: Pki, tmp_path: Path) -> None:
    seal = _seal(pki)
    sig = _signature(pki, seal)
    nodes = asn1parse(sig, tmp_path)
    top = [n for n in nodes if n.depth == 1]
    assert [n.tag for n in top] == ["SEQUENCE", "OCTET STRING", "OBJECT", "BIT STRING"]
    assert top[1].content(sig) == pki.holder_cert and top[2].value == "SM2-with-SM3"
    tbs = [n for n in nodes if n.depth == 2]
    assert [n.tag for n in tbs] == ["INTEGER", "SEQUENCE", "GENERALIZEDTIME", "BIT STRING", "IA5STRING"]
    assert tbs[0].value == "04" and tbs[2].value == "20260111000000Z" and tbs[4].value == "ByteRange"
    assert tbs[1].tlv(sig) == seal  # the seal is embedded byte for byte
    assert bitstring_bytes(tbs[3], sig) == sm2.sm3(b"%PDF byte range")
    assert openssl_verify(tmp_path, pki.holder_cert, top[0].tlv(sig), bitstring_bytes(top[3], sig))
    report = ses.verify_signature(sig, data_hash=sm2.sm3(b"%PDF byte range"), trusted_makers=[pki.maker_cert])
    assert report.checks == (
        "seal_signature",
        "seal_valid_at_signing_time",
        "signer_among_holders",
        "signature",
        "data_hash",
    )
    assert report.seal.name == "华夏示例有限公司合同专用章" and report.property_info == "ByteRange"


# ---------------------------------------------------------------------------- refusals


def test_gbt38540_tampered_seal_picture_is_caught(pki: Pki) -> None:
    seal = bytearray(_seal(pki))
    i = seal.find(PNG)
    seal[i + 20] ^= 0xFF
    with pytest.raises(ses.GbtError, match=r"SES_Seal.signedValue: the seal maker's signature") as exc:
        ses.verify_seal(bytes(seal))
    assert exc.value.reason == "gbt38540_seal_signature_invalid"


def test_gbt38540_seal_signed_by_another_key_refused(pki: Pki) -> None:
    with pytest.raises(ses.GbtError, match="wrong key or certificate"):
        ses.build_seal(_spec(pki), maker_cert=pki.maker_cert, maker_sign=pki.other.sign)
    # a seal whose maker certificate was swapped afterwards
    good = ses.parse_seal(_seal(pki))
    forged = ses.SESeal(
        {
            "e_seal_info": good["e_seal_info"],
            "cert": pki.other_cert,
            "sign_alg_id": sm2.SM2_WITH_SM3_OID,
            "signed_value": good["signed_value"].native,
        }
    ).dump()
    with pytest.raises(ses.GbtError, match="does not verify") as exc:
        ses.verify_seal(forged)
    assert exc.value.reason == "gbt38540_seal_signature_invalid"
    with pytest.raises(ses.GbtError, match="not a configured seal maker"):
        ses.verify_seal(_seal(pki), trusted_makers=[pki.other_cert])


def test_gbt38540_seal_expired_or_not_yet_valid_refused_and_nothing_signed(pki: Pki) -> None:
    seal = _seal(pki)
    calls: list[bytes] = []

    def sign(m: bytes) -> bytes:
        calls.append(m)
        return pki.holder.sign(m)

    for when, reason in (
        (T0 - dt.timedelta(seconds=1), "gbt38540_seal_not_yet_valid"),
        (T0 + dt.timedelta(days=366), "gbt38540_seal_expired"),
    ):
        with pytest.raises(ses.GbtError, match=r"SES_Seal\.eSealInfo\.property\.valid") as exc:
            ses.build_signature(
                seal=seal,
                signer_cert=pki.holder_cert,
                data_hash=b"\x00" * 32,
                property_info="x",
                sign=sign,
                time_info=when,
            )
        assert exc.value.reason == reason
    assert calls == []


def test_gbt38540_signer_not_in_holder_list_refused(pki: Pki) -> None:
    seal = _seal(pki)
    with pytest.raises(ses.GbtError, match="not among the seal's holders") as exc:
        ses.build_signature(
            seal=seal,
            signer_cert=pki.other_cert,
            data_hash=b"\x00" * 32,
            property_info="x",
            sign=pki.other.sign,
            time_info=T0 + dt.timedelta(days=1),
        )
    assert exc.value.reason == "gbt38540_signer_not_holder"
    # an SES_Signature whose cert was swapped after signing is refused on verification
    sig = ses.parse_signature(_signature(pki, seal))
    forged = ses.SesSignature(
        {
            "to_sign": sig["to_sign"],
            "cert": pki.other_cert,
            "signature_algorithm": sm2.SM2_WITH_SM3_OID,
            "signature": sig["signature"].native,
        }
    ).dump()
    with pytest.raises(ses.GbtError, match="not among the seal's holders"):
        ses.verify_signature(forged)


def test_gbt38540_holder_by_sm3_digest_list(pki: Pki) -> None:
    """certListType 2: holders named by certificate digest (CertDigestObj)."""
    good = ses.parse_seal(_seal(pki))
    info = good["e_seal_info"]
    prop = info["property"]
    digest_list = ses.CertDigestList([{"type": "sm3", "value": sm2.sm3(pki.holder_cert)}])
    new_prop = ses.SesESPropertyInfo(
        {
            "type": 1,
            "name": prop["name"].native,
            "cert_list_type": 2,
            "cert_list": digest_list,
            "create_date": prop["create_date"],
            "valid_start": prop["valid_start"],
            "valid_end": prop["valid_end"],
        }
    )
    new_info = ses.SesSealInfo(
        {"header": info["header"], "es_id": info["es_id"], "property": new_prop, "picture": info["picture"]}
    )
    seal = ses.SESeal(
        {
            "e_seal_info": new_info,
            "cert": pki.maker_cert,
            "sign_alg_id": sm2.SM2_WITH_SM3_OID,
            "signed_value": pki.maker.sign(new_info.dump()),
        }
    ).dump()
    sig = _signature(pki, seal)
    assert "signer_among_holders" in ses.verify_signature(sig).checks
    with pytest.raises(ses.GbtError, match="not among the seal's holders"):
        ses.build_signature(
            seal=seal,
            signer_cert=pki.other_cert,
            data_hash=b"\x00" * 32,
            property_info="x",
            sign=pki.other.sign,
            time_info=T0 + dt.timedelta(days=1),
        )


def test_gbt38540_truncated_oversized_and_trailing_input_refused(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    seal = _seal(pki)
    sig = _signature(pki, seal)
    for data in (seal[:-1], seal[: len(seal) // 2], seal[:3]):
        with pytest.raises(ses.GbtError, match="SES_Seal does not decode") as exc:
            ses.parse_seal(data)
        assert exc.value.reason == "gbt38540_malformed"
    with pytest.raises(ses.GbtError, match="SES_Signature does not decode"):
        ses.parse_signature(sig + b"\x00")
    with pytest.raises(ses.GbtError, match="SES_Signature does not decode"):
        ses.parse_signature(sig[:-40])
    monkeypatch.setattr(ses, "MAX_SES_BYTES", len(sig) - 1)
    with pytest.raises(ses.GbtError, match=r"over the .*-byte limit") as exc:
        ses.parse_signature(sig)
    assert exc.value.reason == "gbt38540_oversized"
    with pytest.raises(ses.GbtError, match="empty input"):
        ses.parse_seal(b"")


def test_gbt38540_wrong_header_version_refused(pki: Pki) -> None:
    good = ses.parse_seal(_seal(pki))
    info = good["e_seal_info"]
    new_info = ses.SesSealInfo(
        {
            "header": {"id": "ES", "version": 2, "vid": "x"},
            "es_id": info["es_id"],
            "property": info["property"],
            "picture": info["picture"],
        }
    )
    seal = ses.SESeal(
        {
            "e_seal_info": new_info,
            "cert": pki.maker_cert,
            "sign_alg_id": sm2.SM2_WITH_SM3_OID,
            "signed_value": pki.maker.sign(new_info.dump()),
        }
    ).dump()
    with pytest.raises(ses.GbtError, match=r"SES_Seal.eSealInfo.header.version is 2"):
        ses.parse_seal(seal)


def test_gbt38540_maker_or_signer_cert_on_wrong_curve_refused(pki: Pki) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    n = cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "p256")])
    p256 = (
        cx509.CertificateBuilder()
        .subject_name(n)
        .issuer_name(n)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(T0)
        .not_valid_after(T0 + dt.timedelta(days=900))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    with pytest.raises(sm2.Sm2Error, match=r"seal maker certificate: .*secp256r1"):
        ses.build_seal(_spec(pki), maker_cert=p256, maker_sign=pki.maker.sign)
    seal = _seal(pki, holder_certs=[p256])
    with pytest.raises(sm2.Sm2Error, match=r"signer certificate: .*not SM2"):
        ses.build_signature(
            seal=seal,
            signer_cert=p256,
            data_hash=b"\x00" * 32,
            property_info="x",
            sign=pki.holder.sign,
            time_info=T0 + dt.timedelta(days=1),
        )


def _timestamp_token(imprint: bytes) -> bytes:
    """A structurally real RFC 3161 token (unsigned: only the imprint is checked here)."""
    info = tsp.TSTInfo(
        {
            "version": "v1",
            "policy": "1.2.3.4",
            "serial_number": 1,
            "gen_time": T0 + dt.timedelta(days=10),
            "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": imprint},
        }
    )
    signed = cms.SignedData(
        {
            "version": "v3",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
            "encap_content_info": {
                "content_type": "tst_info",
                "content": core.ParsableOctetString(info.dump()),
            },
            "signer_infos": [],
        }
    )
    return bytes(cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump())


def test_gbt38540_timestamp_must_cover_the_signature(pki: Pki) -> None:
    seal = _seal(pki)
    unstamped = ses.parse_signature(_signature(pki, seal))
    signature = bytes(unstamped["signature"].native)
    good = ses.SesSignature(
        {
            "to_sign": unstamped["to_sign"],
            "cert": pki.holder_cert,
            "signature_algorithm": sm2.SM2_WITH_SM3_OID,
            "signature": signature,
            "time_stamp": _timestamp_token(hashlib.sha256(signature).digest()),
        }
    ).dump()
    report = ses.verify_signature(good)
    assert report.timestamp_time == T0 + dt.timedelta(days=10) and "timestamp_imprint" in report.checks
    bad = ses.SesSignature(
        {
            "to_sign": unstamped["to_sign"],
            "cert": pki.holder_cert,
            "signature_algorithm": sm2.SM2_WITH_SM3_OID,
            "signature": signature,
            "time_stamp": _timestamp_token(hashlib.sha256(b"other").digest()),
        }
    ).dump()
    with pytest.raises(ses.GbtError, match="message imprint") as exc:
        ses.verify_signature(bad)
    assert exc.value.reason == "gbt38540_timestamp_mismatch"
