"""The PKCS#11 SM2 TEST token for tests: build the module, create tokens, plug and unplug them.

``P11Sm2TestToken(root_dir)`` builds ``p11-sm2-test-token/libp11sm2test.so`` (gcc +
libssl-dev + libp11-kit-dev; a no-op when it is up to date), copies it into ``root_dir`` so
each test loads a module instance of its own (its sessions and logins are per loaded copy),
and points ``P11_SM2_TEST_TOKEN_DIR`` at ``root_dir/tokens``. ``insert``/``remove`` move a
token directory in and out of that root, which the module sees as a token plugged or pulled.
TEST ONLY: the PIN below is published here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from cryptography.hazmat.primitives import hashes

HERE = Path(__file__).resolve().parent
TOKEN_SRC = HERE / "p11-sm2-test-token"
BUILD_DIR = TOKEN_SRC / "build"
USER_PIN = "12345678"
SM2_CURVE_OID_DER = bytes.fromhex("06082a811ccf5501822d")  # 1.2.156.10197.1.301


def build_module() -> Path:
    subprocess.run(["bash", str(TOKEN_SRC / "build.sh"), str(BUILD_DIR)], check=True)
    return BUILD_DIR / "libp11sm2test.so"


def pin_line(token: str, pin: str, max_tries: int, tries_left: int) -> str:
    h = hashes.Hash(hashes.SM3())
    h.update(f"{token}:{pin}".encode())
    return f"{h.finalize().hex()} {max_tries} {tries_left}\n"


class P11Sm2TestToken:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tokens = root / "tokens"
        self.unplugged = root / "unplugged"
        self.tokens.mkdir(parents=True, exist_ok=True)
        self.unplugged.mkdir(parents=True, exist_ok=True)
        self.module = root / "libp11sm2test.so"
        shutil.copy2(build_module(), self.module)
        os.environ["P11_SM2_TEST_TOKEN_DIR"] = str(self.tokens)

    def create_token(self, name: str, *, pin: str = USER_PIN, tries: int = 3) -> Path:
        d = self.tokens / name
        d.mkdir(mode=0o700)
        (d / "user.pin").write_text(pin_line(name, pin, tries, tries))
        return d

    def remove(self, name: str) -> None:
        (self.tokens / name).rename(self.unplugged / name)

    def insert(self, name: str) -> None:
        (self.unplugged / name).rename(self.tokens / name)
