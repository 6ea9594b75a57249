"""The SoftHSM fixture tree (softhsm-fixtures/build_fixtures.py) for the test process.

Building runs in its own process (its PKCS#11 state stays out of ours). Pointing the
test process at a tree sets SOFTHSM2_CONF and re-initialises python-pkcs11's cached
SoftHSM library, so `pkcs11.lib(fx.module)` sees that tree's tokens.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pkcs11

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "softhsm-fixtures" / "build_fixtures.py"


def run_build_script(outdir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run build_fixtures.py in its own process (its PKCS#11 state stays out of ours)."""
    return subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), str(outdir), *extra],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def point_softhsm_at(conf: Path | None, module: Path) -> None:
    """Set SOFTHSM2_CONF and make python-pkcs11's cached library re-read it."""
    if conf is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = str(conf)
    if conf is not None:
        pkcs11.lib(str(module)).reinitialize()


def previous_conf() -> Path | None:
    value = os.environ.get("SOFTHSM2_CONF")
    return Path(value) if value else None
