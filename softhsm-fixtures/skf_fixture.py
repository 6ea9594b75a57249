"""The SKF TEST token for tests: build the library, lay out devices, plug and unplug them.

``SkfTestToken(root_dir)`` builds ``skf-test-token/libskftest.so`` (gcc + libssl-dev; a
no-op when it is up to date), copies it into ``root_dir`` so each test has a library
instance of its own (its hot-plug state is per process and per loaded copy), and points
``SKF_TEST_TOKEN_DIR`` at ``root_dir/devices``. ``insert``/``remove`` move a device
directory in and out of that root, which the library sees as a token plugged or pulled.
TEST ONLY: the PINs below are published here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOKEN_SRC = HERE / "skf-test-token"
BUILD_DIR = TOKEN_SRC / "build"
ADMIN_PIN = "87654321"
INITIAL_USER_PIN = "12345678"


def build_library() -> Path:
    subprocess.run(["bash", str(TOKEN_SRC / "build.sh"), str(BUILD_DIR)], check=True)
    return BUILD_DIR / "libskftest.so"


class SkfTestToken:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.devices = root / "devices"
        self.unplugged = root / "unplugged"
        self.devices.mkdir(parents=True, exist_ok=True)
        self.unplugged.mkdir(parents=True, exist_ok=True)
        self.library = root / "libskftest.so"
        shutil.copy2(build_library(), self.library)
        os.environ["SKF_TEST_TOKEN_DIR"] = str(self.devices)

    def create_device(self, name: str, *, serial: str | None = None, inserted: bool = True) -> Path:
        d = (self.devices if inserted else self.unplugged) / name
        d.mkdir(mode=0o700)
        if serial:
            (d / "serial").write_text(serial + "\n")
        return d

    def remove(self, name: str) -> None:
        (self.devices / name).rename(self.unplugged / name)

    def insert(self, name: str) -> None:
        (self.unplugged / name).rename(self.devices / name)

    def is_inserted(self, name: str) -> bool:
        return (self.devices / name).is_dir()
