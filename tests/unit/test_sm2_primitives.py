"""SM2/SM3 primitives against the reference: OpenSSL's command line (Debian 12, OpenSSL 3.0).

OpenSSL 3.0's CLI uses an EMPTY SM2 user id unless told otherwise; GM/T 0009 and every
token use ``1234567812345678``. So every OpenSSL call here passes
``-pkeyopt/-vfyopt distid:1234567812345678``, and one test pins the pitfall down.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import pytest
from asn1crypto import x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from seald.gm import certs, sm2

DISTID = "distid:1234567812345678"


def _openssl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)


@pytest.fixture
def openssl_key(tmp_path: Path) -> Path:
    assert _openssl("genpkey", "-algorithm", "SM2", "-out", "k.pem", cwd=tmp_path).returncode == 0
    assert _openssl("pkey", "-in", "k.pem", "-pubout", "-out", "pub.pem", cwd=tmp_path).returncode == 0
    return tmp_path


def _openssl_public(tmp: Path) -> sm2.Sm2PublicKey:
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-in", "pub.pem", "-outform", "DER"],
        cwd=tmp,
        capture_output=True,
        check=True,
    ).stdout
    return sm2.Sm2PublicKey.from_spki_der(der)


def test_sm2_our_signature_verified_by_openssl(tmp_path: Path) -> None:
    key = sm2.Sm2PrivateKey.generate()
    (tmp_path / "pub.der").write_bytes(key.public_key.spki_der())
    (tmp_path / "m.bin").write_bytes(b"document hash to seal")
    (tmp_path / "sig.der").write_bytes(key.sign(b"document hash to seal"))
    verify = (
        "pkeyutl",
        "-verify",
        "-pubin",
        "-keyform",
        "DER",
        "-inkey",
        "pub.der",
        "-rawin",
        "-digest",
        "sm3",
        "-pkeyopt",
        DISTID,
        "-in",
        "m.bin",
        "-sigfile",
        "sig.der",
    )
    ok = _openssl(*verify, cwd=tmp_path)
    assert ok.returncode == 0 and "Verified Successfully" in ok.stdout, ok.stdout + ok.stderr
    (tmp_path / "m.bin").write_bytes(b"document hash to sea1")
    assert _openssl(*verify, cwd=tmp_path).returncode != 0


def test_sm2_openssl_signature_verified_by_us(openssl_key: Path) -> None:
    (openssl_key / "m.bin").write_bytes(b"hello seal")
    res = _openssl(
        "pkeyutl",
        "-sign",
        "-inkey",
        "k.pem",
        "-rawin",
        "-digest",
        "sm3",
        "-pkeyopt",
        DISTID,
        "-in",
        "m.bin",
        "-out",
        "sig.der",
        cwd=openssl_key,
    )
    assert res.returncode == 0, res.stderr
    pub = _openssl_public(openssl_key)
    sig = (openssl_key / "sig.der").read_bytes()
    pub.verify(sig, b"hello seal")
    with pytest.raises(sm2.Sm2Error, match="does not verify"):
        pub.verify(sig, b"hello seal!")


def test_sm2_openssl_default_empty_id_is_not_the_standard_id(openssl_key: Path) -> None:
    """The FIELD-NOTES pitfall: OpenSSL 3.0's CLI default id is empty, so its signature fails here."""
    (openssl_key / "m.bin").write_bytes(b"hello seal")
    res = _openssl(
        "pkeyutl",
        "-sign",
        "-inkey",
        "k.pem",
        "-rawin",
        "-digest",
        "sm3",
        "-in",
        "m.bin",
        "-out",
        "sig.der",
        cwd=openssl_key,
    )
    assert res.returncode == 0, res.stderr
    with pytest.raises(sm2.Sm2Error, match="does not verify"):
        _openssl_public(openssl_key).verify((openssl_key / "sig.der").read_bytes(), b"hello seal")


def test_sm2_z_value_and_digest_match_openssl(openssl_key: Path) -> None:
    """OpenSSL signs our e = SM3(Z||M) as a raw digest; the result verifies as a signature over M.

    This is the SKF path (the caller prepares e, the token signs it): if our Z were wrong, the
    signature would not verify over M.
    """
    pub = _openssl_public(openssl_key)
    message = b"\x00" * 7 + "电子印章".encode()
    (openssl_key / "e.bin").write_bytes(sm2.message_digest(pub.point, message))
    res = _openssl("pkeyutl", "-sign", "-inkey", "k.pem", "-in", "e.bin", "-out", "sig.der", cwd=openssl_key)
    assert res.returncode == 0, res.stderr
    pub.verify((openssl_key / "sig.der").read_bytes(), message)
    # and a Z computed with another id does not give that e
    assert sm2.message_digest(pub.point, message, b"ALICE123@YAHOO.COM") != sm2.message_digest(
        pub.point, message
    )


def test_sm2_sm3_known_answer() -> None:
    # GB/T 32905-2016 (SM3) example 1
    assert sm2.sm3(b"abc").hex() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"


def test_sm2_signature_encodings_round_trip_and_refuse_garbage() -> None:
    key = sm2.Sm2PrivateKey.generate()
    sig = key.sign(b"x")
    raw = sm2.der_to_raw(sig)
    assert len(raw) == 64 and sm2.raw_to_der(raw) == sig
    with pytest.raises(sm2.Sm2Error, match="DER SEQUENCE"):
        sm2.der_to_raw(sig[:-3])
    with pytest.raises(sm2.Sm2Error, match="out of range"):
        sm2.raw_to_der(b"\x00" * 64)
    with pytest.raises(sm2.Sm2Error, match="64 bytes"):
        sm2.raw_to_der(raw[:63])


def test_sm2_public_key_off_curve_refused() -> None:
    point = bytearray(sm2.Sm2PrivateKey.generate().public_key.point)
    point[-1] ^= 1
    with pytest.raises(sm2.Sm2Error, match="not on the SM2 curve"):
        sm2.Sm2PublicKey(bytes(point))


def test_sm2_certificate_and_csr_verified_by_openssl(tmp_path: Path) -> None:
    ca = sm2.Sm2PrivateKey.generate()
    leaf = sm2.Sm2PrivateKey.generate()
    nb = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    na = dt.datetime(2036, 1, 1, tzinfo=dt.UTC)
    ca_name = certs.name("Test SM2 CA", "Test Org")
    ca_cert = certs.build_certificate(
        subject=ca_name,
        issuer=ca_name,
        public_key=ca.public_key,
        sign=ca.sign,
        not_before=nb,
        not_after=na,
        ca=True,
    )
    leaf_cert = certs.build_certificate(
        subject=certs.name("合同专用章", "Test Org"),
        issuer=ca_name,
        public_key=leaf.public_key,
        sign=ca.sign,
        not_before=nb,
        not_after=na,
    )
    req = certs.build_csr(subject=certs.name("合同专用章"), public_key=leaf.public_key, sign=leaf.sign)
    (tmp_path / "ca.der").write_bytes(ca_cert.dump())
    (tmp_path / "leaf.der").write_bytes(leaf_cert.dump())
    (tmp_path / "req.der").write_bytes(req.dump())
    for der, pem in (("ca.der", "ca.pem"), ("leaf.der", "leaf.pem")):
        assert _openssl("x509", "-inform", "DER", "-in", der, "-out", pem, cwd=tmp_path).returncode == 0
    ok = _openssl("verify", "-CAfile", "ca.pem", "-vfyopt", DISTID, "leaf.pem", cwd=tmp_path)
    assert ok.returncode == 0 and "leaf.pem: OK" in ok.stdout, ok.stdout + ok.stderr
    text = _openssl("x509", "-in", "leaf.pem", "-noout", "-text", cwd=tmp_path).stdout
    assert "SM2-with-SM3" in text and "ASN1 OID: SM2" in text
    ok = _openssl(
        "req", "-inform", "DER", "-in", "req.der", "-verify", "-noout", "-vfyopt", DISTID, cwd=tmp_path
    )
    assert ok.returncode == 0 and "verify OK" in (ok.stdout + ok.stderr)
    # our own verification agrees, and catches a flipped signature bit
    certs.verify_certificate_signature(leaf_cert, ca.public_key)
    assert certs.check_sm2_certificate(leaf_cert).point == leaf.public_key.point
    bad = bytearray(leaf_cert.dump())
    bad[-5] ^= 0x01
    with pytest.raises(sm2.Sm2Error):
        certs.verify_certificate_signature(certs.load_certificate(bytes(bad)), ca.public_key)


def _cryptography_cert(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> x509.Certificate:
    n = cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "not sm2")])
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    c = (
        cx509.CertificateBuilder()
        .subject_name(n)
        .issuer_name(n)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return certs.load_certificate(c.public_bytes(serialization.Encoding.DER))


def test_sm2_rsa_certificate_refused_naming_the_field() -> None:
    cert = _cryptography_cert(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    with pytest.raises(sm2.Sm2Error, match=r"seal certificate: subjectPublicKeyInfo.algorithm is rsa") as exc:
        certs.check_sm2_certificate(cert, what="seal certificate")
    assert exc.value.reason == "sm2_wrong_key_type"


def test_sm2_certificate_on_wrong_curve_refused_naming_the_field() -> None:
    cert = _cryptography_cert(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(sm2.Sm2Error, match=r"parameters names curve secp256r1 .* not SM2"):
        certs.check_sm2_certificate(cert)


def test_sm2_truncated_certificate_refused() -> None:
    der = _cryptography_cert(ec.generate_private_key(ec.SECP256R1())).dump()
    with pytest.raises(sm2.Sm2Error, match="holder certificate does not decode"):
        certs.load_certificate(der[:-10], what="holder certificate")
