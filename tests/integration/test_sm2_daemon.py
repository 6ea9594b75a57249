"""An SM2 seal on the SKF test token, sealed through seald (issue 19) with two approvals.

The token is the C SKF test token (softhsm-fixtures/skf-test-token); the seal is configured
with ``algorithm = "sm2"``, ``format = "gbt38540"``, ``[skf] library`` and ``[seal_maker]``.
The custodian changes the initial PIN and unlocks through the RPCs, a requester submits,
two approvers approve, seald seals (SES_Signature in the PDF, SM2 on the token), and the
result is verified by seald's GB/T 38540 verifier (as `sealctl verify --offline`) and by
OpenSSL. A token pulled while it signs: refused, nothing released, and the request is
sealed after re-insertion and unlock.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import time
from pathlib import Path

import pytest
from skf_fixture import ADMIN_PIN, INITIAL_USER_PIN, SkfTestToken

from sealapi.v1 import common_pb2, requests_pb2
from sealclient.errors import SealClientError
from seald.gm import ses, sm2
from seald.signing import gbt38540_pdf
from seald.tokens import skf
from seald_testing.config import ConfigEdit, DaemonConfig
from seald_testing.daemon import SealDaemon, make_pdf
from seald_testing.plugin import DaemonFactory
from seald_testing.seals import add_contract_seal, ledger
from seald_testing.sm2_pki import seal_pki

# Certificates are issued from the wall clock: run again under faketime (issue 14).
pytestmark = pytest.mark.clock

SEAL = "sm2seal"
DEV = "SKF-SEAL-01"
SERIAL = "SKF0001"
CONTAINER = "sm2-seal"
PIN = "24681357"
PLACEMENT = common_pb2.Placement(page=0, x_mm=150, y_mm=240)
SIGNED = requests_pb2.REQUEST_STATE_SIGNED
APPROVED = requests_pb2.REQUEST_STATE_APPROVED


def _edit(cert_pem: Path, lib: Path, maker_cert: Path, maker_key: Path) -> ConfigEdit:
    def edit(config: DaemonConfig) -> None:
        add_contract_seal(
            config,
            SEAL,
            display_name="合同专用章(SM2)",
            token_label=DEV,
            token_serial=SERIAL,
            key_label=CONTAINER,
            certificate=str(cert_pem),
            algorithm="sm2",
            format="gbt38540",
            skf_application="SEAL",
        )
        config.set("skf", library=str(lib))
        config.set("seal_maker", certificate=str(maker_cert), key=str(maker_key))

    return edit


@pytest.fixture
def sm2_daemon(
    daemon_factory: DaemonFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[SealDaemon, SkfTestToken, bytes, bytes]:
    monkeypatch.setenv("SKF_TEST_TOKEN_DIR", "")
    monkeypatch.delenv("SKF_TEST_TOKEN_SIGN_DELAY_MS", raising=False)
    token = SkfTestToken(tmp_path / "skf")
    token.create_device(DEV, serial=SERIAL)
    lib = skf.SkfLibrary(str(token.library))
    dev = lib.connect(DEV)
    app = dev.create_application("SEAL", admin_pin=ADMIN_PIN, user_pin=INITIAL_USER_PIN, user_retries=5)
    app.verify_pin(INITIAL_USER_PIN)
    con = app.create_container(CONTAINER)
    point = con.generate_sm2()
    pki = seal_pki(tmp_path, point, now=dt.datetime.now(dt.UTC).replace(microsecond=0))
    con.import_certificate(pki.seal_cert)
    app.logout()
    dev.close()
    d = daemon_factory(_edit(pki.seal_pem, token.library, pki.maker_pem, pki.maker_key))
    return d, token, point, pki.maker_cert


def _submit_and_approve(d: SealDaemon, tmp_path: Path, name: str) -> str:
    pdf = make_pdf(tmp_path / name)
    with d.client("zhang.wei") as z:
        request = z.submit([pdf], seal_id=SEAL, reason="采购合同", category="contract", placement=PLACEMENT)
    with d.client("li.na") as li, d.client("wang.fang") as wang:
        li.approve(request.request_id)
        wang.approve(request.request_id)
    return request.request_id


def _check_sealed(d: SealDaemon, request_id: str, out: Path, point: bytes, maker_cert: bytes) -> None:
    with d.client("zhang.wei") as z:
        z.download(request_id, 0, out)
        report = z.verify(out)  # VerifyDocument: seald's own verifier, through the daemon
    assert report.all_valid and len(report.signatures) == 1, report
    (sig,) = report.signatures
    assert sig.seal_id == SEAL and sig.intact and sig.valid and sig.trusted and sig.covers_whole_document
    assert "GB/T 38540 seal signature valid" in sig.summary
    data = out.read_bytes()
    (check,) = gbt38540_pdf.verify_gbt38540_pdf(data, trusted_makers=[maker_cert])
    assert check.covers_whole_document and "data_hash" in check.report.checks
    assert check.report.seal.name == "合同专用章(SM2)"
    start = data.index(b"/Contents <") + len(b"/Contents <")
    der = bytes.fromhex(data[start : data.index(b">", start)].decode())
    parsed = ses.parse_signature(der[: gbt38540_pdf._der_length(der)])
    tmp = out.parent
    (tmp / "pub.der").write_bytes(sm2.Sm2PublicKey(point).spki_der())
    (tmp / "tbs.der").write_bytes(parsed["to_sign"].dump())
    (tmp / "sig.der").write_bytes(bytes(parsed["signature"].native))
    res = subprocess.run(
        [
            "openssl",
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
            "distid:1234567812345678",
            "-in",
            "tbs.der",
            "-sigfile",
            "sig.der",
        ],
        cwd=tmp,
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 0 and "Verified Successfully" in res.stdout, res.stdout + res.stderr


def test_sm2_seal_on_skf_token_sealed_through_the_daemon_with_two_approvals(
    sm2_daemon: tuple[SealDaemon, SkfTestToken, bytes, bytes], tmp_path: Path
) -> None:
    d, _token, point, maker_cert = sm2_daemon
    with d.client("liu.yang") as custodian:
        custodian.change_pin(SEAL, INITIAL_USER_PIN, PIN)
        custodian.unlock(SEAL, PIN)
    request_id = _submit_and_approve(d, tmp_path, "contract.pdf")
    with d.client("zhang.wei") as z:
        d.wait_state(z, request_id, SIGNED)
    _check_sealed(d, request_id, tmp_path / "sealed.pdf", point, maker_cert)


def test_sm2_token_removed_during_signing_refused_then_resumed(
    sm2_daemon: tuple[SealDaemon, SkfTestToken, bytes, bytes], tmp_path: Path
) -> None:
    d, token, point, maker_cert = sm2_daemon
    d.stop()
    d.extra_env["SKF_TEST_TOKEN_SIGN_DELAY_MS"] = "1500"
    d.start()
    with d.client("liu.yang") as custodian:
        custodian.change_pin(SEAL, INITIAL_USER_PIN, PIN)
        custodian.unlock(SEAL, PIN)
    request_id = _submit_and_approve(d, tmp_path, "contract.pdf")
    time.sleep(0.5)  # the token is inside SKF_ECCSignData now (it holds the result 1.5 s)
    token.remove(DEV)
    with d.client("zhang.wei") as z:
        deadline = time.monotonic() + 60
        state = None
        while time.monotonic() < deadline:
            state = z.get(request_id).state
            if state == APPROVED:
                break
            time.sleep(0.1)
        assert state == APPROVED, state  # refused: back to APPROVED, nothing released
        with pytest.raises(SealClientError):  # nothing was released
            z.download(request_id, 0, tmp_path / "not-sealed.pdf")
    _, events = ledger(d, SEAL)
    assert "seal.sign_interrupted" in events  # it was inside the signature when the token left
    token.insert(DEV)
    time.sleep(0.5)
    with d.client("liu.yang") as custodian:
        custodian.unlock(SEAL, PIN)
    with d.client("zhang.wei") as z:
        d.wait_state(z, request_id, SIGNED)
    _check_sealed(d, request_id, tmp_path / "sealed.pdf", point, maker_cert)


def test_skf_wrong_pin_through_the_daemon_counts_down_and_locks(
    sm2_daemon: tuple[SealDaemon, SkfTestToken, bytes, bytes],
) -> None:
    d, _token, _point, _maker = sm2_daemon
    with d.client("liu.yang") as custodian:
        with pytest.raises(SealClientError) as first_use:
            custodian.unlock(SEAL, INITIAL_USER_PIN)
        assert first_use.value.reason == "pin_must_change"  # R07: the issuer's PIN is refused
        custodian.change_pin(SEAL, INITIAL_USER_PIN, PIN)
        for left in (4, 3, 2, 1):
            with pytest.raises(SealClientError) as wrong:
                custodian.unlock(SEAL, "99999999")
            assert wrong.value.reason == "pin_incorrect"
            assert f"{left} tries left" in str(wrong.value) and "99999999" not in str(wrong.value)
        with pytest.raises(SealClientError) as locked:
            custodian.unlock(SEAL, "99999999")
        assert locked.value.reason == "pin_locked"
        with pytest.raises(SealClientError) as still:
            custodian.unlock(SEAL, PIN)  # the right PIN no longer opens a locked token
        assert still.value.reason == "pin_locked"
    assert "99999999" not in d.log() and PIN not in d.log()  # PINs never logged


def test_gbt38540_verify_document_reports_a_tampered_sm2_seal(
    sm2_daemon: tuple[SealDaemon, SkfTestToken, bytes, bytes], tmp_path: Path
) -> None:
    d, _token, _point, _maker = sm2_daemon
    with d.client("liu.yang") as custodian:
        custodian.change_pin(SEAL, INITIAL_USER_PIN, PIN)
        custodian.unlock(SEAL, PIN)
    request_id = _submit_and_approve(d, tmp_path, "contract.pdf")
    with d.client("zhang.wei") as z:
        d.wait_state(z, request_id, SIGNED)
        z.download(request_id, 0, tmp_path / "sealed.pdf")
        data = (tmp_path / "sealed.pdf").read_bytes()
        i = data.index(b"/MediaBox")
        (tmp_path / "tampered.pdf").write_bytes(data[:i] + b"/MediaBoy" + data[i + 9 :])
        report = z.verify(tmp_path / "tampered.pdf")
    assert not report.all_valid
    (sig,) = report.signatures
    assert not sig.valid and "gbt38540_data_hash_mismatch" in sig.summary
