"""Why seald writes no SM2 CMS (issue 19 item 3): what Debian 12's OpenSSL 3.0 CLI does with one.

Checked before building anything: ``openssl cms -sign`` with an SM2 key fails, and
``openssl cms -verify`` accepts an SM2 SignerInfo only when it was signed with an EMPTY SM2
user id - not with GM/T 0009's default ``1234567812345678``, which GM/T 0010 CMS and every
token use (an SKF token signs e = SM3(Z||M) with Z from that id). ``cms`` has no option to
pass the id on verification (``-keyopt`` is for signing). So an SM2 CMS signed on a real
token cannot be checked with ``openssl cms -verify`` here, and seald leaves SM2 in the GB/T
38540 format. These tests pin that: when OpenSSL changes, they fail and the decision can be
revisited. The CMS is assembled with asn1crypto (SignedData, SM3 digest, signed attributes).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from asn1crypto import cms, pem, x509

from seald.gm import sm2

DISTID = "distid:1234567812345678"
SM2_SIGN_OID = "1.2.156.10197.1.301.1"  # GM/T 0010 SignerInfo signatureAlgorithm (sm2sign)


def _openssl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, check=False)


@pytest.fixture
def sm2_pki(tmp_path: Path) -> Path:
    """An SM2 CA and end-entity certificate made by OpenSSL with the standard id."""
    ca = "req -new -x509 -key ca.key -sm3 -sigopt {d} -subj /CN=sm2-ca -days 30 -out ca.pem"
    csr = "req -new -key ee.key -sm3 -sigopt {d} -subj /CN=sm2-seal -out ee.csr"
    issue = "x509 -req -in ee.csr -CA ca.pem -CAkey ca.key -sm3 -sigopt {d} -vfyopt {d} -days 30 -out ee.pem"
    keys = ["genpkey -algorithm SM2 -out ca.key", "genpkey -algorithm SM2 -out ee.key"]
    steps = [tuple(s.format(d=DISTID).split()) for s in (*keys, ca, csr, issue)]
    for step in steps:
        res = _openssl(*step, cwd=tmp_path)
        assert res.returncode == 0, (step, res.stderr)
    (tmp_path / "data.bin").write_bytes(b"%PDF byte ranges stand-in\n")
    return tmp_path


def _cms(tmp: Path, *, standard_id: bool) -> Path:
    """SignedData over data.bin: SM3, signed attributes, SM2 signature with the standard id
    (seald.gm, as a token signs) or with OpenSSL's empty default id."""
    cert = x509.Certificate.load(pem.unarmor((tmp / "ee.pem").read_bytes())[2])
    attrs = cms.CMSAttributes(
        [
            cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
            cms.CMSAttribute(
                {"type": "message_digest", "values": [sm2.sm3((tmp / "data.bin").read_bytes())]}
            ),
        ]
    )
    if standard_id:
        signature = sm2.Sm2PrivateKey.from_pem((tmp / "ee.key").read_bytes()).sign(attrs.dump())
    else:
        (tmp / "attrs.der").write_bytes(attrs.dump())
        args = ("pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-inkey", "ee.key", "-in", "attrs.der")
        assert _openssl(*args, "-out", "attrs.sig", cwd=tmp).returncode == 0
        signature = (tmp / "attrs.sig").read_bytes()
    signed = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [{"algorithm": sm2.SM3_OID}],
            "encap_content_info": {"content_type": "data"},
            "certificates": [cert],
            "signer_infos": [
                {
                    "version": "v1",
                    "sid": {
                        "issuer_and_serial_number": {
                            "issuer": cert.issuer,
                            "serial_number": cert.serial_number,
                        }
                    },
                    "digest_algorithm": {"algorithm": sm2.SM3_OID},
                    "signed_attrs": attrs,
                    "signature_algorithm": {"algorithm": SM2_SIGN_OID},
                    "signature": signature,
                }
            ],
        }
    )
    out = tmp / ("standard.p7s" if standard_id else "empty-id.p7s")
    out.write_bytes(cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump())
    return out


def _verify(tmp: Path, p7s: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return _openssl(
        "cms",
        "-verify",
        "-binary",
        "-inform",
        "DER",
        "-in",
        p7s.name,
        "-content",
        "data.bin",
        *extra,
        "-out",
        "/dev/null",
        cwd=tmp,
    )


def test_sm2_openssl_cms_sign_fails_for_an_sm2_key(sm2_pki: Path) -> None:
    res = _openssl(
        "cms", "-sign", "-binary", "-in", "data.bin", "-signer", "ee.pem", "-inkey", "ee.key", "-md", "sm3",
        "-outform", "DER", "-out", "sig.der", cwd=sm2_pki,
    )  # fmt: skip
    assert "illegal zero content" in res.stderr, res.stderr


def test_sm2_openssl_cms_verify_accepts_only_the_empty_id(sm2_pki: Path) -> None:
    empty = _verify(sm2_pki, _cms(sm2_pki, standard_id=False), "-noverify")
    assert empty.returncode == 0 and "Verification successful" in empty.stderr, empty.stderr
    standard = _verify(sm2_pki, _cms(sm2_pki, standard_id=True), "-noverify")
    assert standard.returncode != 0 and "CMS_SignerInfo_verify:verification failure" in standard.stderr
    # The chain: certificates signed with the standard id do not verify under cms's default
    chained = _verify(sm2_pki, _cms(sm2_pki, standard_id=False), "-CAfile", "ca.pem")
    assert chained.returncode != 0 and "certificate signature failure" in chained.stderr, chained.stderr
    # while `openssl verify` given the id accepts the same chain (the certificates are fine)
    ok = _openssl("verify", "-CAfile", "ca.pem", "-vfyopt", DISTID, "ee.pem", cwd=sm2_pki)
    assert ok.returncode == 0, ok.stderr
