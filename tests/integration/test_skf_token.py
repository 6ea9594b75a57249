"""The SKF test token (C, GM/T 0016) through seald's ctypes binding (``seald.tokens.skf``).

Real parts: the C library built with gcc against OpenSSL 3, keys generated inside it, and
every SM2 signature checked by the OpenSSL command line with the standard user id.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from skf_fixture import ADMIN_PIN, INITIAL_USER_PIN, SkfTestToken

from seald.gm import certs, ses, sm2
from seald.tokens import skf

DEV = "SKF-TEST-01"
APP = "SEAL_APP"
CON = "seal-contract"
NEW_PIN = "24681357"


@pytest.fixture
def token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SkfTestToken]:
    monkeypatch.delenv("SKF_TEST_TOKEN_SIGN_DELAY_MS", raising=False)
    monkeypatch.setenv("SKF_TEST_TOKEN_DIR", "")  # restored after the test; SkfTestToken sets it
    t = SkfTestToken(tmp_path)
    t.create_device(DEV, serial="TT0001")
    yield t


@pytest.fixture
def lib(token: SkfTestToken) -> skf.SkfLibrary:
    return skf.SkfLibrary(str(token.library))


def _provision(lib: skf.SkfLibrary) -> tuple[skf.SkfDevice, skf.SkfApplication, skf.SkfContainer, bytes]:
    dev = lib.connect(DEV)
    app = dev.create_application(APP, admin_pin=ADMIN_PIN, user_pin=INITIAL_USER_PIN, user_retries=3)
    app.verify_pin(INITIAL_USER_PIN)
    con = app.create_container(CON)
    point = con.generate_sm2()
    return dev, app, con, point


def _openssl_verify(
    tmp: Path, point: bytes, message: bytes, signature: bytes
) -> subprocess.CompletedProcess[str]:
    (tmp / "pub.der").write_bytes(sm2.Sm2PublicKey(point).spki_der())
    (tmp / "m.bin").write_bytes(message)
    (tmp / "sig.der").write_bytes(signature)
    return subprocess.run(
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
            "m.bin",
            "-sigfile",
            "sig.der",
        ],
        cwd=tmp,
        capture_output=True,
        text=True,
        check=False,
    )


def test_skf_enumerate_connect_and_device_info(token: SkfTestToken, lib: skf.SkfLibrary) -> None:
    token.create_device("SKF-TEST-02")
    assert lib.enum_devices() == [DEV, "SKF-TEST-02"]
    dev = lib.connect(DEV)
    info = dev.info()  # DEVINFO read through the packed 294-byte layout
    assert info.label == DEV and info.serial == "TT0001" and info.supports_sm2
    assert "test token" in info.manufacturer
    assert dev.applications() == []
    with pytest.raises(skf.SkfDeviceRemoved):
        lib.connect("SKF-TEST-99")


def test_skf_key_generated_inside_signs_sm2_verified_by_openssl(
    token: SkfTestToken, lib: skf.SkfLibrary, tmp_path: Path
) -> None:
    _dev, _app, con, point = _provision(lib)
    assert con.public_point() == point
    message = "合同 No. 2026-12 ByteRange digest".encode()
    signature = con.sign(message)
    res = _openssl_verify(tmp_path, point, message, signature)
    assert res.returncode == 0 and "Verified Successfully" in res.stdout, res.stdout + res.stderr
    sm2.Sm2PublicKey(point).verify(signature, message)
    assert _openssl_verify(tmp_path, point, message + b"!", signature).returncode != 0
    # the token signs exactly the digest it is given: e for another user id gives another signature
    other = con.sign_digest(sm2.message_digest(point, message, b"ALICE123@YAHOO.COM"))
    with pytest.raises(sm2.Sm2Error, match="does not verify"):
        sm2.Sm2PublicKey(point).verify(other, message)
    with pytest.raises(ValueError, match="32 bytes"):
        con.sign_digest(b"\x00" * 31)


def test_skf_certificate_import_export_round_trip(token: SkfTestToken, lib: skf.SkfLibrary) -> None:
    _dev, _app, con, point = _provision(lib)
    with pytest.raises(skf.SkfError, match="SAR_CERTNOTFOUNTERR"):
        con.export_certificate()
    ca = sm2.Sm2PrivateKey.generate()
    now = certs.now_utc()
    cert = certs.build_certificate(
        subject=certs.name("合同专用章"),
        issuer=certs.name("Test SM2 CA"),
        public_key=sm2.Sm2PublicKey(point),
        sign=ca.sign,
        not_before=now,
        not_after=now + dt.timedelta(days=365),
    )
    con.import_certificate(cert.dump())
    exported = certs.load_certificate(con.export_certificate())
    assert exported.dump() == cert.dump()
    assert certs.check_sm2_certificate(exported).point == point


def test_skf_signing_needs_the_user_pin(token: SkfTestToken, lib: skf.SkfLibrary) -> None:
    dev, app, con, _point = _provision(lib)
    app.logout()
    with pytest.raises(skf.SkfError, match="SAR_USER_NOT_LOGGED_IN"):
        con.sign(b"x")
    # a second application handle on the same device is not logged in either
    app2 = dev.open_application(APP)
    con2 = app2.open_container(CON)
    with pytest.raises(skf.SkfError, match="SAR_USER_NOT_LOGGED_IN"):
        con2.sign(b"x")
    app2.verify_pin(INITIAL_USER_PIN)
    assert len(sm2.der_to_raw(con2.sign(b"x"))) == 64


def test_skf_wrong_pin_counts_down_and_locks(token: SkfTestToken, lib: skf.SkfLibrary) -> None:
    dev, app, _con, _point = _provision(lib)
    info = app.pin_info()
    assert (info.max_retries, info.retries_left, info.is_default) == (3, 3, True)
    app.change_pin(INITIAL_USER_PIN, NEW_PIN)
    assert app.pin_info().is_default is False
    with pytest.raises(skf.SkfPinIncorrect) as e1:
        app.verify_pin("00000000")
    assert e1.value.retries_left == 2 and "2 tries left" in str(e1.value)
    with pytest.raises(skf.SkfPinIncorrect) as e2:
        app.verify_pin("00000001")
    assert e2.value.retries_left == 1
    # a correct PIN resets the counter
    app.verify_pin(NEW_PIN)
    assert app.pin_info().retries_left == 3
    for left in (2, 1):
        with pytest.raises(skf.SkfPinIncorrect) as e:
            app.verify_pin("11111111")
        assert e.value.retries_left == left
    with pytest.raises(skf.SkfPinLocked):
        app.verify_pin("11111111")
    # locked: the right PIN no longer works, and the lock survives a reconnect (it is on the token)
    with pytest.raises(skf.SkfPinLocked):
        app.verify_pin(NEW_PIN)
    dev.close()
    dev2 = lib.connect(DEV)
    app2 = dev2.open_application(APP)
    assert app2.pin_info().retries_left == 0
    with pytest.raises(skf.SkfPinLocked):
        app2.verify_pin(NEW_PIN)
    # the administrator unblocks with a new initial PIN, which must be changed again
    app2.unblock_pin(ADMIN_PIN, INITIAL_USER_PIN)
    assert app2.pin_info() == skf.PinInfo(3, 3, True)
    app2.verify_pin(INITIAL_USER_PIN)


def test_skf_names_cannot_escape_the_token_directory(token: SkfTestToken, lib: skf.SkfLibrary) -> None:
    dev = lib.connect(DEV)
    with pytest.raises(skf.SkfError, match="SAR_APPLICATION_NAME_INVALID"):
        dev.create_application("../evil", admin_pin=ADMIN_PIN, user_pin=INITIAL_USER_PIN)
    with pytest.raises(skf.SkfError, match="SAR_INVALIDPARAMERR"):
        lib.connect("../" + DEV)
    assert not (token.root / "evil").exists()


def test_skf_removal_kills_handles_and_events_report_it(token: SkfTestToken, lib: skf.SkfLibrary) -> None:
    _dev, _app, con, point = _provision(lib)
    events: list[tuple[str, bool]] = []
    seen = threading.Condition()

    def on_event(name: str, present: bool) -> None:
        with seen:
            events.append((name, present))
            seen.notify_all()

    lib.enum_devices()  # the library snapshots what is present now
    watcher = skf.SkfPresenceWatcher(lib, on_event)
    watcher.start()
    try:
        token.remove(DEV)
        with seen:
            assert seen.wait_for(lambda: (DEV, False) in events, timeout=5)
        with pytest.raises(skf.SkfDeviceRemoved):
            con.sign(b"after removal")
        token.insert(DEV)
        with seen:
            assert seen.wait_for(lambda: (DEV, True) in events, timeout=5)
        # a handle from before the removal stays dead, as on a real token
        with pytest.raises(skf.SkfDeviceRemoved):
            con.sign(b"old handle")
        app = lib.connect(DEV).open_application(APP)
        app.verify_pin(INITIAL_USER_PIN)
        con2 = app.open_container(CON)
        assert con2.public_point() == point  # same key: it lives on the token
        sm2.Sm2PublicKey(point).verify(con2.sign(b"again"), b"again")
    finally:
        watcher.stop()
    assert events == [(DEV, False), (DEV, True)]
    assert watcher.error is None


def test_skf_token_pulled_during_signing_returns_no_signature(
    token: SkfTestToken, lib: skf.SkfLibrary, monkeypatch: pytest.MonkeyPatch
) -> None:
    _dev, _app, con, _point = _provision(lib)
    monkeypatch.setenv("SKF_TEST_TOKEN_SIGN_DELAY_MS", "400")
    result: list[object] = []

    def sign() -> None:
        try:
            result.append(con.sign(b"document"))
        except skf.SkfError as exc:
            result.append(exc)

    t = threading.Thread(target=sign)
    t.start()
    time.sleep(0.1)
    token.remove(DEV)
    t.join(5)
    assert len(result) == 1 and isinstance(result[0], skf.SkfDeviceRemoved), result


def test_skf_cancel_wait_returns_promptly(token: SkfTestToken, lib: skf.SkfLibrary) -> None:
    watcher = skf.SkfPresenceWatcher(lib, lambda _n, _p: None)
    watcher.start()
    time.sleep(0.1)
    t0 = time.monotonic()
    watcher.stop()
    assert time.monotonic() - t0 < 1.0
    assert watcher.error is None


def test_skf_gbt38540_signature_made_on_the_token_verifies(
    token: SkfTestToken, lib: skf.SkfLibrary, tmp_path: Path
) -> None:
    """An SES_Signature whose SM2 signature is made by the SKF token, over TBS_Sign (GB/T 38540)."""
    _dev, _app, con, point = _provision(lib)
    maker = sm2.Sm2PrivateKey.generate()
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    span = dt.timedelta(days=365)
    maker_cert = certs.build_certificate(
        subject=certs.name("seal maker"),
        issuer=certs.name("seal maker"),
        public_key=maker.public_key,
        sign=maker.sign,
        not_before=t0,
        not_after=t0 + span,
        ca=True,
    ).dump()
    holder_cert = certs.build_certificate(
        subject=certs.name("合同专用章"),
        issuer=certs.name("seal maker"),
        public_key=sm2.Sm2PublicKey(point),
        sign=maker.sign,
        not_before=t0,
        not_after=t0 + span,
    ).dump()
    con.import_certificate(holder_cert)
    seal = ses.build_seal(
        ses.SealSpec(
            es_id="SEAL-1",
            name="合同专用章",
            holder_certs=[con.export_certificate()],
            created=t0,
            valid_start=t0,
            valid_end=t0 + span,
            picture=b"\x89PNG\r\n\x1a\n" + b"\x00" * 16,
        ),
        maker_cert=maker_cert,
        maker_sign=maker.sign,
    )
    data_hash = sm2.sm3(b"the PDF's ByteRange bytes")
    der = ses.build_signature(
        seal=seal,
        signer_cert=holder_cert,
        data_hash=data_hash,
        property_info="ByteRange",
        sign=con.sign,
        time_info=t0 + dt.timedelta(days=30),
    )
    report = ses.verify_signature(der, data_hash=data_hash, trusted_makers=[maker_cert])
    assert "signature" in report.checks and "data_hash" in report.checks
    parsed = ses.parse_signature(der)
    res = _openssl_verify(tmp_path, point, parsed["to_sign"].dump(), bytes(parsed["signature"].native))
    assert res.returncode == 0 and "Verified Successfully" in res.stdout, res.stdout + res.stderr


def test_skf_enumeration_does_not_wait_for_a_pending_device_event(
    token: SkfTestToken, lib: skf.SkfLibrary
) -> None:
    """A presence thread blocked in SKF_WaitForDevEvent must not block SKF_EnumDev elsewhere."""
    lib.enum_devices()
    watcher = skf.SkfPresenceWatcher(lib, lambda _n, _p: None)
    watcher.start()
    try:
        time.sleep(0.1)
        t0 = time.monotonic()
        assert lib.enum_devices() == [DEV]
        assert time.monotonic() - t0 < 1.0
    finally:
        watcher.stop()
