"""An SM2 seal on a PKCS#11 token with a VENDOR mechanism, sealed through seald (issue 19).

The token is the C PKCS#11 SM2 test token (softhsm-fixtures/p11-sm2-test-token), imitating
the ``sansec-hsm`` profile; the seal is configured with ``algorithm = "sm2"``, ``format =
"gbt38540"`` and ``pkcs11_sm2_profile = "sansec-hsm"``, the daemon's ``[pkcs11] module`` is
the test module. The custodian unlocks through the RPC (the key proves itself against the
registered SM2 certificate through the vendor mechanism), a requester submits, two
approvers approve, seald seals; the result is checked by VerifyDocument, seald's GB/T 38540
verifier and OpenSSL's command line (SM3, id 1234567812345678).
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path
from typing import Any

import pkcs11
import pytest
from p11_sm2_fixture import SM2_CURVE_OID_DER, USER_PIN, P11Sm2TestToken
from pkcs11 import Attribute, ObjectClass

from sealapi.v1 import common_pb2, requests_pb2
from sealclient.errors import SealClientError
from seald.gm import ses, sm2
from seald.signing import gbt38540_pdf
from seald_testing.config import ConfigEdit, DaemonConfig
from seald_testing.daemon import SealDaemon, make_pdf
from seald_testing.plugin import DaemonFactory
from seald_testing.seals import add_contract_seal
from seald_testing.sm2_pki import seal_pki

# Certificates are issued from the wall clock: run again under faketime (issue 14).
pytestmark = pytest.mark.clock

SEAL = "sm2p11"
TOKEN = "SM2P11SEAL01"  # label and serial of the test token
KEY_LABEL = "sm2-seal"
PLACEMENT = common_pb2.Placement(page=0, x_mm=150, y_mm=240)
SIGNED = requests_pb2.REQUEST_STATE_SIGNED
PIN = "24681357"  # the custodian's own PIN after the issuer's initial one (R07)


def _edit(cert_pem: Path, module: Path, maker_cert: Path, maker_key: Path) -> ConfigEdit:
    def edit(config: DaemonConfig) -> None:
        add_contract_seal(
            config,
            SEAL,
            display_name="合同专用章(SM2)",
            token_label=TOKEN,
            token_serial=TOKEN,
            key_label=KEY_LABEL,
            certificate=str(cert_pem),
            algorithm="sm2",
            format="gbt38540",
            pkcs11_sm2_profile="sansec-hsm",
        )
        config.set("pkcs11", module=str(module))
        config.set("seal_maker", certificate=str(maker_cert), key=str(maker_key))

    return edit


@pytest.fixture
def p11_daemon(
    daemon_factory: DaemonFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[SealDaemon, P11Sm2TestToken, bytes, bytes]:
    return _start(daemon_factory, tmp_path, monkeypatch)


def _start(
    daemon_factory: DaemonFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, rogue: bool = False
) -> tuple[SealDaemon, P11Sm2TestToken, bytes, bytes]:
    """``rogue``: the certificate (on the token and registered) is for another SM2 key."""
    monkeypatch.setenv("P11_SM2_TEST_TOKEN_DIR", "")  # restored after the test; the fixture sets it
    token = P11Sm2TestToken(tmp_path / "p11")
    token.create_token(TOKEN, tries=3)
    # provisioning (as the seal's issuer would): key generated inside, certificate imported
    lib: Any = pkcs11.lib(str(token.module))
    with lib.get_token(token_label=TOKEN).open(user_pin=USER_PIN, rw=True) as session:
        session.generate_keypair(
            pkcs11.KeyType.EC,
            256,
            store=True,
            label=KEY_LABEL,
            id=b"\x01",
            mechanism=pkcs11.Mechanism.EC_KEY_PAIR_GEN,
            public_template={Attribute.EC_PARAMS: SM2_CURVE_OID_DER},
        )
        pub = session.get_key(object_class=ObjectClass.PUBLIC_KEY, label=KEY_LABEL)
        point = bytes(pub[Attribute.EC_POINT])[2:]
        pki = seal_pki(tmp_path, point, now=dt.datetime.now(dt.UTC).replace(microsecond=0), rogue=rogue)
        session.create_object(
            {
                Attribute.CLASS: ObjectClass.CERTIFICATE,
                Attribute.CERTIFICATE_TYPE: pkcs11.CertificateType.X_509,
                Attribute.ID: b"\x01",
                Attribute.LABEL: KEY_LABEL,
                Attribute.VALUE: pki.seal_cert,
            }
        )
    d = daemon_factory(_edit(pki.seal_pem, token.module, pki.maker_pem, pki.maker_key))
    return d, token, point, pki.maker_cert


def _openssl_verify(
    tmp: Path, point: bytes, message: bytes, signature: bytes
) -> subprocess.CompletedProcess[str]:
    (tmp / "pub.der").write_bytes(sm2.Sm2PublicKey(point).spki_der())
    (tmp / "tbs.der").write_bytes(message)
    (tmp / "sig.der").write_bytes(signature)
    args = ["openssl", "pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-inkey", "pub.der"]
    args += ["-rawin", "-digest", "sm3", "-pkeyopt", "distid:1234567812345678", "-in", "tbs.der"]
    return subprocess.run(
        [*args, "-sigfile", "sig.der"], cwd=tmp, capture_output=True, text=True, check=False
    )


def test_sm2_pkcs11_seal_sealed_through_the_daemon_with_two_approvals(
    p11_daemon: tuple[SealDaemon, P11Sm2TestToken, bytes, bytes], tmp_path: Path
) -> None:
    d, _token, point, maker_cert = p11_daemon
    with d.client("liu.yang") as custodian:
        custodian.change_pin(SEAL, USER_PIN, PIN)  # C_SetPIN on the test token
        custodian.unlock(SEAL, PIN)
    pdf = make_pdf(tmp_path / "contract.pdf")
    with d.client("zhang.wei") as z:
        request = z.submit([pdf], seal_id=SEAL, reason="采购合同", category="contract", placement=PLACEMENT)
    with d.client("li.na") as li, d.client("wang.fang") as wang:
        li.approve(request.request_id)
        wang.approve(request.request_id)
    out = tmp_path / "sealed.pdf"
    with d.client("zhang.wei") as z:
        d.wait_state(z, request.request_id, SIGNED)
        z.download(request.request_id, 0, out)
        report = z.verify(out)  # VerifyDocument: seald's own verifier, through the daemon
    assert report.all_valid and len(report.signatures) == 1, report
    (sig,) = report.signatures
    assert sig.seal_id == SEAL and sig.intact and sig.valid and sig.trusted and sig.covers_whole_document
    assert "GB/T 38540 seal signature valid" in sig.summary
    data = out.read_bytes()
    (check,) = gbt38540_pdf.verify_gbt38540_pdf(data, trusted_makers=[maker_cert])
    assert check.covers_whole_document and "data_hash" in check.report.checks
    # the SM2 signature in the SES_Signature, made by the token's vendor mechanism: OpenSSL
    start = data.index(b"/Contents <") + len(b"/Contents <")
    der = bytes.fromhex(data[start : data.index(b">", start)].decode())
    parsed = ses.parse_signature(der[: gbt38540_pdf._der_length(der)])
    tbs, signature = parsed["to_sign"].dump(), bytes(parsed["signature"].native)
    res = _openssl_verify(tmp_path, point, tbs, signature)
    assert res.returncode == 0 and "Verified Successfully" in res.stdout, res.stdout + res.stderr
    assert _openssl_verify(tmp_path, point, tbs + b"x", signature).returncode != 0


def test_sm2_pkcs11_daemon_wrong_pin_counts_down_and_locks(
    p11_daemon: tuple[SealDaemon, P11Sm2TestToken, bytes, bytes],
) -> None:
    d, token, _point, _maker = p11_daemon
    pin_file = token.tokens / TOKEN / "user.pin"
    with d.client("liu.yang") as custodian:
        custodian.change_pin(SEAL, USER_PIN, PIN)
        with pytest.raises(SealClientError) as ei:
            custodian.unlock(SEAL, "00000000")
        assert "00000000" not in str(ei.value) and PIN not in str(ei.value)
        assert pin_file.read_text().split()[1:] == ["3", "2"]
        with pytest.raises(SealClientError) as ei:
            custodian.unlock(SEAL, "00000001")
        assert "one try left" in str(ei.value), str(ei.value)
        with pytest.raises(SealClientError) as ei:
            custodian.unlock(SEAL, "00000002")
        assert "locked" in str(ei.value), str(ei.value)
        assert pin_file.read_text().split()[1:] == ["3", "0"]
        with pytest.raises(SealClientError):  # locked: the right PIN no longer unlocks
            custodian.unlock(SEAL, PIN)
    with d.client("zhang.wei") as z:
        pdf = make_pdf(d.fixtures.state_dir.parent / "locked.pdf")
        request = z.submit([pdf], seal_id=SEAL, reason="采购合同", category="contract", placement=PLACEMENT)
    with d.client("li.na") as li, d.client("wang.fang") as wang:
        li.approve(request.request_id)
        wang.approve(request.request_id)
    with d.client("zhang.wei") as z:  # approved, never sealed: the token stays locked
        assert z.get(request.request_id).state == requests_pb2.REQUEST_STATE_APPROVED


def test_sm2_pkcs11_daemon_refuses_a_token_whose_key_does_not_sign_for_the_certificate(
    daemon_factory: DaemonFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the certificate matches byte for byte, the key does not: a copied certificate proves nothing
    d, _token, _point, _maker = _start(daemon_factory, tmp_path, monkeypatch, rogue=True)
    with d.client("liu.yang") as custodian:
        custodian.change_pin(SEAL, USER_PIN, PIN)
        with pytest.raises(SealClientError) as ei:
            custodian.unlock(SEAL, PIN)
    assert "rogue" in str(ei.value) and "sansec-hsm" in str(ei.value), str(ei.value)
