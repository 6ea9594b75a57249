"""SM2 through a VENDOR PKCS#11 mechanism: the PKCS#11 SM2 test token (C) through python-pkcs11
and seald's vendor-mechanism path (``seald.tokens.pkcs11_sm2``).

Real parts: the C module built with gcc against OpenSSL 3, loaded by python-pkcs11 like any
PKCS#11 module; keys generated inside it; every SM2 signature checked by the OpenSSL command
line with the standard user id (Debian 12's OpenSSL defaults to an EMPTY id: distid is passed).
The token imitates the ``sansec-hsm`` profile (CKM_SM2_SIGN 0x80008104 over e, raw r||s).
"""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pkcs11
import pytest
from p11_sm2_fixture import SM2_CURVE_OID_DER, USER_PIN, P11Sm2TestToken
from pkcs11 import Attribute, ObjectClass, TokenFlag
from pkcs11 import exceptions as p11e

from seald.domain.errors import PreconditionFailed
from seald.gm import certs, sm2
from seald.tokens import pkcs11_sm2

TOKEN = "SM2-P11-01"
KEY_ID = b"\x5e\xa1\x00\x01"
LABEL = "seal-contract"
SANSEC = pkcs11_sm2.profile("sansec-hsm")
CKK_VENDOR_SM2 = 0x80000004


@pytest.fixture
def token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[P11Sm2TestToken]:
    monkeypatch.setenv("P11_SM2_TEST_TOKEN_DIR", "")  # restored after the test; the fixture sets it
    t = P11Sm2TestToken(tmp_path / "p11")
    t.create_token(TOKEN)
    yield t


@pytest.fixture
def lib(token: P11Sm2TestToken) -> Any:
    return pkcs11.lib(str(token.module))


def _generate(session: Any) -> bytes:
    """An SM2 key pair generated inside the token; returns the public point (65 bytes)."""
    session.generate_keypair(
        pkcs11.KeyType.EC,
        256,
        store=True,
        label=LABEL,
        id=KEY_ID,
        mechanism=pkcs11.Mechanism.EC_KEY_PAIR_GEN,
        public_template={Attribute.EC_PARAMS: SM2_CURVE_OID_DER},
    )
    pub = session.get_key(object_class=ObjectClass.PUBLIC_KEY, id=KEY_ID)
    ec_point = bytes(pub[Attribute.EC_POINT])
    assert ec_point[:2] == b"\x04\x41"  # DER OCTET STRING around the uncompressed point
    return ec_point[2:]


def _vendor_key(token: P11Sm2TestToken, session: Any) -> pkcs11_sm2.VendorMechanismKey:
    # the private key found by its vendor key type and label, as the daemon would find it
    priv = session.get_key(object_class=ObjectClass.PRIVATE_KEY, key_type=CKK_VENDOR_SM2, label=LABEL)
    return pkcs11_sm2.VendorMechanismKey(pkcs11_sm2.VendorModule(str(token.module)), priv)


def _openssl_verify(
    tmp: Path, point: bytes, message: bytes, signature: bytes, *, distid: bool = True
) -> subprocess.CompletedProcess[str]:
    (tmp / "pub.der").write_bytes(sm2.Sm2PublicKey(point).spki_der())
    (tmp / "m.bin").write_bytes(message)
    (tmp / "sig.der").write_bytes(signature)
    args = ["openssl", "pkeyutl", "-verify", "-pubin", "-keyform", "DER", "-inkey", "pub.der"]
    args += ["-rawin", "-digest", "sm3"]
    if distid:
        args += ["-pkeyopt", "distid:1234567812345678"]
    args += ["-in", "m.bin", "-sigfile", "sig.der"]
    return subprocess.run(args, cwd=tmp, capture_output=True, text=True, check=False)


def test_sm2_pkcs11_module_slots_token_and_mechanisms(token: P11Sm2TestToken, lib: Any) -> None:
    assert "SM2 test token" in lib.library_description
    token.create_token("SM2-P11-02")
    tokens = sorted(t.label for t in lib.get_tokens())
    assert tokens == [TOKEN, "SM2-P11-02"]
    tok = lib.get_token(token_label=TOKEN)
    assert tok.flags & TokenFlag.LOGIN_REQUIRED and tok.flags & TokenFlag.USER_PIN_INITIALIZED
    assert not tok.flags & (TokenFlag.USER_PIN_COUNT_LOW | TokenFlag.USER_PIN_LOCKED)
    mechs = {int(m) for m in tok.slot.get_mechanisms()}
    assert SANSEC.mechanism in mechs
    # a slot id is a hash of the token's name: it does not move when another token leaves
    slot_id = tok.slot.slot_id
    token.remove("SM2-P11-02")
    assert [t.slot.slot_id for t in lib.get_tokens()] == [slot_id]


def test_sm2_pkcs11_key_generated_inside_signs_vendor_mechanism_verified_by_openssl(
    token: P11Sm2TestToken, lib: Any, tmp_path: Path
) -> None:
    with lib.get_token(token_label=TOKEN).open(user_pin=USER_PIN, rw=True) as session:
        point = _generate(session)
        key = _vendor_key(token, session)
        message = "合同 No. 2026-12 ByteRange digest".encode()
        signature = pkcs11_sm2.sign_sm2(key, point, message, SANSEC)
        # the token answered raw r||s over e = SM3(Z || M); seald returns DER
        raw = key.sign(sm2.message_digest(point, message), SANSEC.mechanism)
        assert len(raw) == 64
    res = _openssl_verify(tmp_path, point, message, signature)
    assert res.returncode == 0 and "Verified Successfully" in res.stdout, res.stdout + res.stderr
    assert _openssl_verify(tmp_path, point, message, sm2.raw_to_der(raw)).returncode == 0
    assert _openssl_verify(tmp_path, point, message + b"!", signature).returncode != 0
    # Z was computed with the standard id: OpenSSL's default (empty) id does not verify it
    assert _openssl_verify(tmp_path, point, message, signature, distid=False).returncode != 0


def test_sm2_pkcs11_private_key_never_exported_nor_visible_logged_out(
    token: P11Sm2TestToken, lib: Any
) -> None:
    tok = lib.get_token(token_label=TOKEN)
    with tok.open(user_pin=USER_PIN, rw=True) as session:
        _generate(session)
        priv = session.get_key(object_class=ObjectClass.PRIVATE_KEY, id=KEY_ID)
        with pytest.raises(p11e.AttributeSensitive):
            priv[Attribute.VALUE]
        assert priv[Attribute.EXTRACTABLE] is False and priv[Attribute.SENSITIVE] is True
        assert priv[Attribute.LABEL] == LABEL and priv[Attribute.EC_PARAMS] == SM2_CURVE_OID_DER
        with pytest.raises(p11e.TemplateInconsistent):  # a second key under one id: never overwritten
            _generate(session)
    key_file = token.tokens / TOKEN / "keys" / (KEY_ID.hex() + ".key")
    assert key_file.stat().st_mode & 0o077 == 0
    with tok.open() as public_session:  # not logged in: the private key is not there
        assert list(public_session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})) == []
        assert len(list(public_session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY}))) == 1


def test_sm2_pkcs11_certificate_import_and_read_back(token: P11Sm2TestToken, lib: Any) -> None:
    with lib.get_token(token_label=TOKEN).open(user_pin=USER_PIN, rw=True) as session:
        point = _generate(session)
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
        session.create_object(
            {
                Attribute.CLASS: ObjectClass.CERTIFICATE,
                Attribute.CERTIFICATE_TYPE: pkcs11.CertificateType.X_509,
                Attribute.ID: KEY_ID,
                Attribute.LABEL: LABEL,
                Attribute.VALUE: cert.dump(),
            }
        )
    with lib.get_token(token_label=TOKEN).open() as session:  # certificates are public objects
        objs = list(session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.LABEL: LABEL}))
        assert len(objs) == 1
        der = bytes(objs[0][Attribute.VALUE])
    assert der == cert.dump()
    assert certs.check_sm2_certificate(certs.load_certificate(der)).point == point


def test_sm2_pkcs11_wrong_pin_counts_down_and_locks(token: P11Sm2TestToken, lib: Any) -> None:
    tok = lib.get_token(token_label=TOKEN)
    with pytest.raises(p11e.PinIncorrect):
        tok.open(user_pin="00000000")
    flags = lib.get_token(token_label=TOKEN).flags
    assert flags & TokenFlag.USER_PIN_COUNT_LOW and not flags & TokenFlag.USER_PIN_FINAL_TRY
    # a right PIN resets the count
    tok.open(user_pin=USER_PIN).close()
    assert not lib.get_token(token_label=TOKEN).flags & TokenFlag.USER_PIN_COUNT_LOW
    with pytest.raises(p11e.PinLenRange):  # a PIN that cannot be right costs no try
        tok.open(user_pin="1")
    assert not lib.get_token(token_label=TOKEN).flags & TokenFlag.USER_PIN_COUNT_LOW
    with pytest.raises(p11e.PinIncorrect):
        tok.open(user_pin="00000000")
    with pytest.raises(p11e.PinIncorrect):
        tok.open(user_pin="00000001")
    assert lib.get_token(token_label=TOKEN).flags & TokenFlag.USER_PIN_FINAL_TRY
    with pytest.raises(p11e.PinLocked):
        tok.open(user_pin="00000002")
    assert lib.get_token(token_label=TOKEN).flags & TokenFlag.USER_PIN_LOCKED
    with pytest.raises(p11e.PinLocked):  # locked: the right PIN no longer opens it
        tok.open(user_pin=USER_PIN)
    assert (token.tokens / TOKEN / "user.pin").read_text().split()[1:] == ["3", "0"]


def test_sm2_pkcs11_removed_token_fails_closed(token: P11Sm2TestToken, lib: Any) -> None:
    tok = lib.get_token(token_label=TOKEN)
    session = tok.open(user_pin=USER_PIN, rw=True)
    point = _generate(session)
    key = _vendor_key(token, session)
    token.remove(TOKEN)
    with pytest.raises(PreconditionFailed) as ei:
        pkcs11_sm2.sign_sm2(key, point, b"document", SANSEC)
    assert ei.value.reason == "token_absent"
    token.insert(TOKEN)
    # the old session stays dead after re-insertion, like a pulled token's
    with pytest.raises(PreconditionFailed) as ei:
        pkcs11_sm2.sign_sm2(key, point, b"document", SANSEC)
    assert ei.value.reason == "token_absent"
    with lib.get_token(token_label=TOKEN).open(user_pin=USER_PIN) as fresh:
        again = _vendor_key(token, fresh)
        sm2.Sm2PublicKey(point).verify(pkcs11_sm2.sign_sm2(again, point, b"document", SANSEC), b"document")


def test_sm2_pkcs11_wrong_profile_is_refused_not_emitted(token: P11Sm2TestToken, lib: Any) -> None:
    with lib.get_token(token_label=TOKEN).open(user_pin=USER_PIN, rw=True) as session:
        point = _generate(session)
        key = _vendor_key(token, session)
        # another vendor's mechanism number: the token refuses it
        with pytest.raises(PreconditionFailed) as ei:
            pkcs11_sm2.sign_sm2(key, point, b"document", pkcs11_sm2.profile("tass-hsm"))
        assert ei.value.reason == "token_error" and "0x80008000" in ei.value.message
        # the right number but the wrong encoding configured: the answer is checked, not passed on
        der_profile = pkcs11_sm2.Sm2MechanismProfile(
            "misconfigured", SANSEC.mechanism, "digest_e", "der", CKK_VENDOR_SM2
        )
        with pytest.raises(PreconditionFailed) as ei:
            pkcs11_sm2.sign_sm2(key, point, b"document", der_profile)
        assert ei.value.reason == "sm2_profile_mismatch"
        # the message instead of e (a "token hashes" profile on this token): 32 bytes only
        msg_profile = pkcs11_sm2.Sm2MechanismProfile(
            "hashing", SANSEC.mechanism, "message", "raw", CKK_VENDOR_SM2
        )
        with pytest.raises(PreconditionFailed) as ei:
            pkcs11_sm2.sign_sm2(key, point, b"a document longer than 32 bytes....", msg_profile)
        assert ei.value.reason == "token_error"


def test_sm2_pkcs11_closed_session_cannot_sign(token: P11Sm2TestToken, lib: Any) -> None:
    tok = lib.get_token(token_label=TOKEN)
    with tok.open(user_pin=USER_PIN, rw=True) as session:
        point = _generate(session)
        key = _vendor_key(token, session)
    # closing the last session logged out and invalidated the handles: refused, fail closed
    with pytest.raises(PreconditionFailed) as ei:
        pkcs11_sm2.sign_sm2(key, point, b"x", SANSEC)
    assert ei.value.reason == "token_absent"
    with tok.open() as public_session:  # a new session, not logged in: the key is not there
        assert list(public_session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})) == []


def test_sm2_pkcs11_unimplemented_entries_answer_not_supported(token: P11Sm2TestToken, lib: Any) -> None:
    # the function list is full: entries the test token does not implement answer
    # CKR_FUNCTION_NOT_SUPPORTED instead of crashing through a NULL pointer
    with lib.get_token(token_label=TOKEN).open(user_pin=USER_PIN, rw=True) as session:
        with pytest.raises(p11e.FunctionNotSupported):
            session.generate_random(16)
        with pytest.raises(p11e.FunctionNotSupported):
            session.digest(b"data", mechanism=pkcs11.Mechanism.SHA256)
        with pytest.raises(p11e.FunctionNotSupported):
            session.seed_random(b"entropy!")


def test_sm2_pkcs11_set_pin_checks_the_old_pin_and_counts_down(token: P11Sm2TestToken, lib: Any) -> None:
    tok = lib.get_token(token_label=TOKEN)
    with tok.open(rw=True) as session:
        with pytest.raises(p11e.PinIncorrect):  # a wrong old PIN costs a try, as a login does
            session.set_pin("00000000", "24681357")
        assert (token.tokens / TOKEN / "user.pin").read_text().split()[1:] == ["3", "2"]
        session.set_pin(USER_PIN, "24681357")
    assert (token.tokens / TOKEN / "user.pin").read_text().split()[1:] == ["3", "3"]
    with pytest.raises(p11e.PinIncorrect):
        tok.open(user_pin=USER_PIN)
    tok.open(user_pin="24681357").close()
