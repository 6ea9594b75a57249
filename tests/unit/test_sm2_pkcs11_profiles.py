"""SM2 through vendor PKCS#11 mechanisms: input convention and signature encoding per profile.

No SM2 PKCS#11 token runs here (SoftHSM has no SM2), so the "token" is a small stand-in
whose sign() is the OpenSSL command line: for digest_e profiles OpenSSL signs the 32-byte
digest as given (pkeyutl without -rawin); for message profiles it hashes with Z itself
(-rawin -digest sm3, default id). What is under test is seald's side: what it hands the
token and how it reads the answer, checked by verifying the result.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from seald.domain.errors import InvalidInput, PreconditionFailed
from seald.gm import sm2
from seald.tokens import pkcs11_sm2


@dataclass
class OpenSslToken:
    tmp: Path
    expects: pkcs11_sm2.Sm2MechanismProfile
    calls: list[tuple[bytes, int]]

    def sign(self, data: bytes, mechanism: int) -> bytes:
        self.calls.append((data, mechanism))
        (self.tmp / "in.bin").write_bytes(data)
        args = ["openssl", "pkeyutl", "-sign", "-inkey", "k.pem", "-in", "in.bin", "-out", "sig.der"]
        if self.expects.sign_input == "message":
            args[3:3] = ["-rawin", "-digest", "sm3", "-pkeyopt", "distid:1234567812345678"]
        subprocess.run(args, cwd=self.tmp, check=True, capture_output=True)
        der = (self.tmp / "sig.der").read_bytes()
        return sm2.der_to_raw(der) if self.expects.signature_encoding == "raw" else der


@pytest.fixture
def point(tmp_path: Path) -> bytes:
    subprocess.run(["openssl", "genpkey", "-algorithm", "SM2", "-out", "k.pem"], cwd=tmp_path, check=True)
    der = subprocess.run(
        ["openssl", "pkey", "-in", "k.pem", "-pubout", "-outform", "DER"],
        cwd=tmp_path,
        check=True,
        capture_output=True,
    ).stdout
    return sm2.Sm2PublicKey.from_spki_der(der).point


@pytest.mark.parametrize("name", sorted(pkcs11_sm2.KNOWN_PROFILES))
def test_sm2_vendor_profile_signs_what_the_model_expects(name: str, point: bytes, tmp_path: Path) -> None:
    prof = pkcs11_sm2.profile(name)
    token = OpenSslToken(tmp_path, prof, [])
    der = pkcs11_sm2.sign_sm2(token, point, b"document hash", prof)
    sm2.Sm2PublicKey(point).verify(der, b"document hash")
    ((data, mech),) = token.calls
    assert mech == prof.mechanism
    assert data == (
        sm2.message_digest(point, b"document hash") if prof.sign_input == "digest_e" else b"document hash"
    )


def test_sm2_vendor_profile_mismatch_fails_closed(point: bytes, tmp_path: Path) -> None:
    """A token that hashes itself, configured as if it signed e: the signature is refused."""
    wrong = pkcs11_sm2.profile("tass-hsm")  # digest_e
    token = OpenSslToken(tmp_path, pkcs11_sm2.profile("tass-hsm-sm3"), [])  # actually hashes the input
    with pytest.raises(PreconditionFailed, match="does not verify against the seal key") as exc:
        pkcs11_sm2.sign_sm2(token, point, b"document hash", wrong)
    assert exc.value.reason == "sm2_profile_mismatch"


def test_sm2_vendor_profile_config_refusals() -> None:
    with pytest.raises(InvalidInput, match="unknown SM2 token profile"):
        pkcs11_sm2.profile("no-such-hsm")
    with pytest.raises(InvalidInput, match="not in the vendor range"):
        pkcs11_sm2.Sm2MechanismProfile("x", 0x1041, "digest_e", "der", 0x80000004)
