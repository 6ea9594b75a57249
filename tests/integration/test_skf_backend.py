"""The SKF key backend (``SkfTokenManager``) on the SKF test token: custody, presence, SM2 signing.

The same custody and presence rules as the PKCS#11 backend: initial PIN must be changed,
wrong PIN reports the token's tries left and locks as the token says, removal (seen by
SKF_WaitForDevEvent) locks at once, a signature interrupted by a removal returns nothing
and signing resumes after re-insertion and unlock. Signatures are checked by OpenSSL.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from skf_fixture import ADMIN_PIN, INITIAL_USER_PIN, SkfTestToken

from seald.domain.errors import PermissionDenied, PreconditionFailed
from seald.gm import certs, sm2
from seald.tokens import skf
from seald.tokens.backend import KeyBackend
from seald.tokens.manager import TokenManager, TokenState
from seald.tokens.skf_backend import SkfSealBinding, SkfTokenManager

DEV = "SKF-TEST-01"
SERIAL = "TT0001"
PIN = "24681357"
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _binding() -> SkfSealBinding:
    return SkfSealBinding("contract", SERIAL, "合同章 key", "SEAL_APP", "contract")


@pytest.fixture
def token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SkfTestToken, bytes]]:
    """A provisioned token: application, container, SM2 key, certificate; PIN still initial."""
    monkeypatch.setenv("SKF_TEST_TOKEN_DIR", "")
    monkeypatch.delenv("SKF_TEST_TOKEN_SIGN_DELAY_MS", raising=False)
    t = SkfTestToken(tmp_path / "skf")
    t.create_device(DEV, serial=SERIAL)
    lib = skf.SkfLibrary(str(t.library))
    dev = lib.connect(DEV)
    app = dev.create_application("SEAL_APP", admin_pin=ADMIN_PIN, user_pin=INITIAL_USER_PIN, user_retries=3)
    app.verify_pin(INITIAL_USER_PIN)
    con = app.create_container("contract")
    point = con.generate_sm2()
    ca = sm2.Sm2PrivateKey.generate()
    cert = bytes(
        certs.build_certificate(
            subject=certs.name("合同专用章"),
            issuer=certs.name("Test SM2 CA"),
            public_key=sm2.Sm2PublicKey(point),
            sign=ca.sign,
            not_before=T0,
            not_after=T0 + dt.timedelta(days=3650),
        ).dump()
    )
    con.import_certificate(cert)
    dev.close()
    yield t, cert


def run(coro_fn: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(coro_fn())  # type: ignore[arg-type]


def _backend(t: SkfTestToken, cert: bytes) -> SkfTokenManager:
    return SkfTokenManager(skf.SkfLibrary(str(t.library)), {"contract": _binding()}, {"contract": cert})


def _openssl_verifies(tmp: Path, cert: bytes, message: bytes, signature: bytes) -> bool:
    (tmp / "c.der").write_bytes(cert)
    pub = subprocess.run(
        ["openssl", "x509", "-inform", "DER", "-in", "c.der", "-noout", "-pubkey"],
        cwd=tmp,
        capture_output=True,
        check=True,
    ).stdout
    (tmp / "pub.pem").write_bytes(pub)
    (tmp / "m.bin").write_bytes(message)
    (tmp / "s.der").write_bytes(signature)
    res = subprocess.run(
        [
            "openssl",
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "pub.pem",
            "-rawin",
            "-digest",
            "sm3",
            "-pkeyopt",
            "distid:1234567812345678",
            "-in",
            "m.bin",
            "-sigfile",
            "s.der",
        ],
        cwd=tmp,
        capture_output=True,
        text=True,
        check=False,
    )
    return res.returncode == 0 and "Verified Successfully" in res.stdout


def test_skf_backend_and_pkcs11_backend_share_one_protocol() -> None:
    """mypy checks these assignments (KeyBackend is a Protocol); at runtime the methods exist."""
    backends: list[type[KeyBackend]] = [TokenManager, SkfTokenManager]
    for cls in backends:
        for name in (
            "add_listener",
            "state",
            "states",
            "certificate_der",
            "refresh",
            "unlock",
            "lock",
            "change_pin",
            "sign",
            "close",
        ):
            assert callable(getattr(cls, name)), (cls, name)


def test_skf_initial_pin_must_be_changed_then_unlock_and_sign(
    token: tuple[SkfTestToken, bytes], tmp_path: Path
) -> None:
    t, cert = token
    events: list[TokenState] = []

    async def main() -> None:
        b = _backend(t, cert)
        b.add_listener(events.append)
        await b.refresh()
        assert b.state("contract").present and not b.state("contract").unlocked
        with pytest.raises(PreconditionFailed, match="initial user PIN") as exc:
            await b.unlock("contract", INITIAL_USER_PIN, "liu.yang")
        assert exc.value.reason == "pin_must_change"
        await b.change_pin("contract", INITIAL_USER_PIN, PIN)
        state = await b.unlock("contract", PIN, "liu.yang")
        assert state.unlocked and state.unlocked_by == "liu.yang"
        signature = await b.sign("contract", b"ByteRange digest")
        assert _openssl_verifies(tmp_path, cert, b"ByteRange digest", signature)
        await b.lock("contract")
        with pytest.raises(PreconditionFailed) as locked:
            await b.sign("contract", b"x")
        assert locked.value.reason == "token_locked"
        await b.close()

    run(main)
    assert [(e.present, e.unlocked) for e in events] == [(True, False), (True, True), (True, False)]


def test_skf_wrong_pin_reports_tries_left_and_locks(token: tuple[SkfTestToken, bytes]) -> None:
    t, cert = token

    async def main() -> None:
        b = _backend(t, cert)
        await b.refresh()
        await b.change_pin("contract", INITIAL_USER_PIN, PIN)
        for left in (2, 1):
            with pytest.raises(PermissionDenied, match=f"{left} tries left before the token locks") as exc:
                await b.unlock("contract", "00000000", "liu.yang")
            assert exc.value.reason == "pin_incorrect" and "00000000" not in exc.value.message
        with pytest.raises(PreconditionFailed, match="PIN-locked") as exc2:
            await b.unlock("contract", "00000000", "liu.yang")
        assert exc2.value.reason == "pin_locked"
        with pytest.raises(PreconditionFailed, match="PIN-locked"):
            await b.unlock("contract", PIN, "liu.yang")  # the right PIN too: the token is locked
        assert not b.state("contract").unlocked
        await b.close()

    run(main)


def test_skf_removal_seen_by_wait_for_dev_event_locks_and_reinsertion_resumes(
    token: tuple[SkfTestToken, bytes], tmp_path: Path
) -> None:
    t, cert = token

    async def wait_for(pred: Callable[[], bool]) -> None:
        for _ in range(500):
            if pred():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("condition not reached")

    async def main() -> None:
        b = _backend(t, cert)
        await b.refresh()
        await b.change_pin("contract", INITIAL_USER_PIN, PIN)
        await b.unlock("contract", PIN, "liu.yang")
        b.start_presence(asyncio.get_running_loop())
        await asyncio.sleep(0.1)
        t.remove(DEV)
        await wait_for(lambda: not b.state("contract").present)
        assert not b.state("contract").unlocked
        with pytest.raises(PreconditionFailed) as exc:
            await b.sign("contract", b"x")
        assert exc.value.reason == "token_absent"
        t.insert(DEV)
        await wait_for(lambda: b.state("contract").present)
        assert not b.state("contract").unlocked  # re-insertion never unlocks by itself
        await b.unlock("contract", PIN, "liu.yang")
        assert _openssl_verifies(tmp_path, cert, b"after", await b.sign("contract", b"after"))
        await b.close()

    run(main)


def test_skf_token_removed_during_signing_refused_then_resumed(
    token: tuple[SkfTestToken, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t, cert = token

    async def main() -> None:
        b = _backend(t, cert)
        await b.refresh()
        await b.change_pin("contract", INITIAL_USER_PIN, PIN)
        await b.unlock("contract", PIN, "liu.yang")
        monkeypatch.setenv("SKF_TEST_TOKEN_SIGN_DELAY_MS", "400")
        signing = asyncio.create_task(b.sign("contract", b"doc"))
        await asyncio.sleep(0.1)
        t.remove(DEV)
        with pytest.raises(PreconditionFailed, match="removed during signing") as exc:
            await signing
        assert exc.value.reason == "token_absent"
        assert not b.state("contract").present and not b.state("contract").unlocked
        monkeypatch.delenv("SKF_TEST_TOKEN_SIGN_DELAY_MS")
        t.insert(DEV)
        await b.refresh()
        await b.unlock("contract", PIN, "liu.yang")
        assert _openssl_verifies(tmp_path, cert, b"doc", await b.sign("contract", b"doc"))
        await b.close()

    run(main)


def test_skf_rogue_token_with_another_certificate_refused(token: tuple[SkfTestToken, bytes]) -> None:
    t, _cert = token
    other = sm2.Sm2PrivateKey.generate()
    other_cert = bytes(
        certs.build_certificate(
            subject=certs.name("x"),
            issuer=certs.name("x"),
            public_key=other.public_key,
            sign=other.sign,
            not_before=T0,
            not_after=T0 + dt.timedelta(days=30),
        ).dump()
    )

    async def main() -> None:
        b = _backend(t, other_cert)
        await b.refresh()
        await b.change_pin("contract", INITIAL_USER_PIN, PIN)
        with pytest.raises(PreconditionFailed, match="rogue token") as exc:
            await b.unlock("contract", PIN, "liu.yang")
        assert exc.value.reason == "token_rogue"
        assert not b.state("contract").unlocked and b.state("contract").rogue_reason
        await b.close()

    run(main)


def test_skf_sm2_token_with_rsa_certificate_refused_naming_the_field(
    token: tuple[SkfTestToken, bytes],
) -> None:
    t, _cert = token
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    n = cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "rsa seal")])
    rsa_cert = (
        cx509.CertificateBuilder()
        .subject_name(n)
        .issuer_name(n)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(T0)
        .not_valid_after(T0 + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.DER)
    )
    with pytest.raises(
        sm2.Sm2Error, match=r"seal contract certificate: subjectPublicKeyInfo.algorithm is rsa"
    ):
        _backend(t, rsa_cert)
