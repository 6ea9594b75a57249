"""GB/T 38540 timeStamp: a real RFC 3161 token (pyHanko's in-process TSA) over the signature
value, its TSA signature and chain checked against configured roots."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib

import pytest
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper

from seald.gm import ses
from seald.signing import gbt38540_pdf
from seald_testing.sm2_pki import maker_and_holder

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _ca(cn: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(T0 - dt.timedelta(days=1))
        .not_valid_after(T0 + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _tsa(root_key: rsa.RSAPrivateKey, root: x509.Certificate) -> DummyTimeStamper:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test TSA")]))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(T0 - dt.timedelta(days=1))
        .not_valid_after(T0 + dt.timedelta(days=3650))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    key_info = asn1_keys.PrivateKeyInfo.load(
        key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return DummyTimeStamper(
        tsa_cert=asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)),
        tsa_key=key_info,
        fixed_dt=T0 + dt.timedelta(days=10),
    )


@pytest.fixture(scope="module")
def unstamped() -> bytes:
    span = dt.timedelta(days=365)
    pki = maker_and_holder(T0, T0 + span, maker_cn="m", holder_cn="h")
    maker, maker_cert, holder, holder_cert = pki.maker, pki.maker_cert, pki.holder, pki.holder_cert
    seal = ses.build_seal(
        ses.SealSpec(
            es_id="S",
            name="n",
            holder_certs=[holder_cert],
            created=T0,
            valid_start=T0,
            valid_end=T0 + span,
            picture=b"\x89PNG\r\n\x1a\n",
        ),
        maker_cert=maker_cert,
        maker_sign=maker.sign,
    )
    return ses.build_signature(
        seal=seal,
        signer_cert=holder_cert,
        data_hash=b"\x11" * 32,
        property_info="p",
        sign=holder.sign,
        time_info=T0 + dt.timedelta(days=10),
    )


def test_gbt38540_timestamp_signed_by_a_trusted_tsa(unstamped: bytes) -> None:
    root_key, root = _ca("Test TSA Root")
    stamper = _tsa(root_key, root)
    value = bytes(ses.parse_signature(unstamped)["signature"].native)
    token = asyncio.run(stamper.async_timestamp(hashlib.sha256(value).digest(), "sha256")).dump()
    stamped = ses.add_timestamp(unstamped, token)
    report = ses.verify_signature(stamped)
    assert "timestamp_imprint" in report.checks and report.timestamp_time == T0 + dt.timedelta(days=10)
    # the signed part is unchanged byte for byte
    assert ses.parse_signature(stamped)["to_sign"].dump() == ses.parse_signature(unstamped)["to_sign"].dump()
    root_der = root.public_bytes(serialization.Encoding.DER)
    assert asyncio.run(gbt38540_pdf.timestamp_problem(stamped, [root_der])) == ""
    _other_key, other_root = _ca("Another Root")
    problem = asyncio.run(
        gbt38540_pdf.timestamp_problem(stamped, [other_root.public_bytes(serialization.Encoding.DER)])
    )
    assert "not signed by a TSA chaining to the configured TSA roots" in problem
    assert "absent" in asyncio.run(gbt38540_pdf.timestamp_problem(unstamped, [root_der]))


def test_gbt38540_timestamp_over_something_else_refused(unstamped: bytes) -> None:
    root_key, root = _ca("Test TSA Root")
    token = asyncio.run(
        _tsa(root_key, root).async_timestamp(hashlib.sha256(b"other").digest(), "sha256")
    ).dump()
    with pytest.raises(ses.GbtError, match="message imprint") as exc:
        ses.add_timestamp(unstamped, token)
    assert exc.value.reason == "gbt38540_timestamp_mismatch"
