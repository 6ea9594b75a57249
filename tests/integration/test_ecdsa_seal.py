"""ECDSA P-256 seal keys on SoftHSM: key generated on the token, CSR, certificate, PAdES seal.

SoftHSM has no hash-then-sign ECDSA mechanism (FIELD-NOTES): the CSR, the rogue-token
check and pyHanko's PAdES signature all hash first and sign with raw CKM_ECDSA. The sealed
PDF must be valid in pdfsig (an independent validator) and in seald's own verifier.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
from collections.abc import Iterator
from pathlib import Path

import make_pdfs
import pkcs11
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from fixture_layout import SealFixtures

from seald.config import SealConfig, load_config
from seald.domain.custody import ALWAYS
from seald.domain.errors import InvalidInput, PreconditionFailed
from seald.domain.model import SealType
from seald.runtime.daemon import load_seal_certificates
from seald.signing.pades import SealSpec, seal_pdf, token_signer
from seald.signing.placement import PlacementSpec
from seald.signing.seal_image import SealImageSpec, render_seal_png
from seald.signing.verify import verify_pdf
from seald.tokens import manager, seal_keys
from seald.tokens.manager import TokenManager

# The seal certificate is issued from the wall clock: run again under faketime (issue 14).
pytestmark = pytest.mark.clock

EC_LABEL = "seal-ecdsa"


@pytest.fixture
def rw_session(fresh_seal_fixtures: SealFixtures) -> Iterator[pkcs11.Session]:
    seal = fresh_seal_fixtures.seals["contract"]
    token = pkcs11.lib(str(fresh_seal_fixtures.module)).get_token(token_label=seal.token_label)
    with token.open(user_pin=seal.user_pin, rw=True) as session:
        yield session


def _issue(fx: SealFixtures, csr_der: bytes) -> bytes:
    csr = x509.load_der_x509_csr(csr_der)
    ca_cert = x509.load_pem_x509_certificate(fx.seal_ca.read_bytes())
    ca_key = serialization.load_pem_private_key(fx.seal_ca_key.read_bytes(), None)
    assert isinstance(ca_key, rsa.RSAPrivateKey)
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca_cert.subject)
        .public_key(csr.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.DER)


def test_ecdsa_p256_seal_on_softhsm_is_valid_in_pdfsig(
    rw_session: pkcs11.Session, fresh_seal_fixtures: SealFixtures, tmp_path: Path
) -> None:
    key = seal_keys.build_csr(
        rw_session,
        "contract",
        EC_LABEL,
        {"common_name": "合同专用章 (ECDSA)", "country_name": "CN"},
        may_generate=True,
        algorithm="ecdsa-p256",
    )
    assert key.created
    csr = x509.load_der_x509_csr(key.csr_der)
    assert isinstance(csr.public_key(), ec.EllipticCurvePublicKey)
    assert isinstance(csr.public_key().curve, ec.SECP256R1) and csr.is_signature_valid  # type: ignore[union-attr]
    (tmp_path / "req.der").write_bytes(key.csr_der)
    req = subprocess.run(
        ["openssl", "req", "-inform", "DER", "-in", "req.der", "-verify", "-noout"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert req.returncode == 0 and "verify OK" in req.stdout + req.stderr
    # the private key is on the token, sensitive and not extractable (R15)
    (priv,) = rw_session.get_objects(
        {pkcs11.Attribute.CLASS: pkcs11.ObjectClass.PRIVATE_KEY, pkcs11.Attribute.LABEL: EC_LABEL}
    )
    assert priv[pkcs11.Attribute.SENSITIVE] and not priv[pkcs11.Attribute.EXTRACTABLE]

    cert_der = _issue(fresh_seal_fixtures, key.csr_der)
    seal_keys.replace_certificate(rw_session, "contract", EC_LABEL, cert_der)
    src = tmp_path / "in.pdf"
    src.write_bytes(make_pdfs.valid_pdf())
    out = tmp_path / "sealed.pdf"
    seal_pdf(
        src,
        out,
        signer=token_signer(rw_session, EC_LABEL, EC_LABEL),
        spec=SealSpec(
            seal_png=render_seal_png(SealImageSpec("contract", "华夏示例科技有限公司", "合同专用章"), 40),
            placement=PlacementSpec(0, 150, 200, 40),
            reason="合同盖章",
            location="北京",
            field_name="Seal1",
        ),
    )
    report = subprocess.run(["pdfsig", str(out)], capture_output=True, text=True, check=False).stdout
    assert "Signature is Valid" in report and "Total document signed" in report, report
    assert "ETSI.CAdES.detached" in report and "SHA-256" in report, report
    (check,) = verify_pdf(out, [fresh_seal_fixtures.seal_ca.read_bytes()])
    assert check.intact and check.valid and check.trusted and check.covers_whole_document
    assert subprocess.run(["qpdf", "--check", str(out)], capture_output=True, check=False).returncode == 0


def _seal_config(label: str) -> SealConfig:
    return SealConfig(
        seal_id="contract",
        seal_type=SealType("contract"),
        organisation="o",
        display_name="d",
        token_label="t",
        token_serial="s",
        key_label=label,
        certificate=None,
        categories=frozenset(),
        size_mm=40,
        required_approvals=2,
        hours=ALWAYS,
    )


def test_ecdsa_key_and_certificate_type_mismatch_is_a_rogue_token(
    rw_session: pkcs11.Session, fresh_seal_fixtures: SealFixtures
) -> None:
    """An EC key with an RSA certificate (and the reverse) is refused before any signature."""
    key = seal_keys.build_csr(
        rw_session, "contract", EC_LABEL, {"common_name": "ec"}, may_generate=True, algorithm="ecdsa-p256"
    )
    ec_cert = _issue(fresh_seal_fixtures, key.csr_der)
    seal_keys.replace_certificate(rw_session, "contract", EC_LABEL, ec_cert)
    manager._check_key_matches(rw_session, _seal_config(EC_LABEL), ec_cert)  # the right pair passes
    rsa_label = fresh_seal_fixtures.seals["contract"].key_label
    rsa_cert = fresh_seal_fixtures.seals["contract"].certificate.read_bytes()
    rsa_der = (
        x509.load_pem_x509_certificate(rsa_cert).public_bytes(serialization.Encoding.DER)
        if rsa_cert.startswith(b"-----")
        else rsa_cert
    )
    # EC key on the token, RSA certificate registered
    seal_keys.replace_certificate(rw_session, "contract", EC_LABEL, rsa_der)
    with pytest.raises(PreconditionFailed, match="not the same key type") as exc:
        manager._check_key_matches(rw_session, _seal_config(EC_LABEL), rsa_der)
    assert exc.value.reason == "token_rogue"
    # RSA key on the token, EC certificate registered
    seal_keys.replace_certificate(rw_session, "contract", rsa_label, ec_cert)
    with pytest.raises(PreconditionFailed, match=r"ECDSA P-256 key but the token.s key .* is RSA"):
        manager._check_key_matches(rw_session, _seal_config(rsa_label), ec_cert)
    # asking for an ECDSA CSR from an RSA key is refused, not silently RSA
    with pytest.raises(PreconditionFailed, match="holds a RSA key") as exc2:
        seal_keys.build_csr(
            rw_session,
            "contract",
            rsa_label,
            {"common_name": "x"},
            may_generate=False,
            algorithm="ecdsa-p256",
        )
    assert exc2.value.reason == "seal_key_type_mismatch"
    with pytest.raises(InvalidInput, match="not one of rsa, ecdsa-p256"):
        seal_keys.build_csr(
            rw_session, "contract", rsa_label, {"common_name": "x"}, may_generate=False, algorithm="sm2"
        )


def test_ecdsa_pkcs11_backend_sign_matches_the_registered_certificate(
    fresh_seal_fixtures: SealFixtures,
) -> None:
    """``TokenManager.sign`` (the KeyBackend signing call) on the RSA contract seal: the signature
    verifies with the registered certificate; refused while the token is locked."""

    config = load_config(fresh_seal_fixtures.config)
    certs = load_seal_certificates(config)

    async def main() -> bytes:
        tokens = TokenManager(fresh_seal_fixtures.module, config.seals, certs)
        await tokens.refresh()
        with pytest.raises(PreconditionFailed):
            await tokens.sign("contract", b"message")
        await tokens.unlock("contract", fresh_seal_fixtures.seals["contract"].user_pin, "liu.yang")
        try:
            return await tokens.sign("contract", b"message")
        finally:
            await tokens.close()

    signature = asyncio.run(main())
    public = x509.load_der_x509_certificate(certs["contract"]).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(signature, b"message", padding.PKCS1v15(), hashes.SHA256())
