"""Shared pytest fixtures: real SoftHSM tokens, PKI and configs built by softhsm-fixtures/.

`seal_fixtures` (session): built once per test session; read-only by convention.
`fresh_seal_fixtures` (function): a private copy a test may mutate (tokens, state).

Both set SOFTHSM2_CONF and re-initialise python-pkcs11's SoftHSM library, so a
test can simply call `pkcs11.lib(fx.module)` and see the right tokens. Sessions
opened on that library before a `fresh_seal_fixtures` test are invalid after it.

Types: `from fixture_layout import SealFixtures, SealFixture, ClientIdentity`
(softhsm-fixtures/ is put on sys.path here).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pkcs11
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES_DIR = REPO_ROOT / "softhsm-fixtures"
BUILD_SCRIPT = FIXTURES_DIR / "build_fixtures.py"
sys.path.insert(0, str(FIXTURES_DIR))

from fixture_layout import (  # noqa: E402  (needs the sys.path entry above)
    ClientIdentity,
    SealFixture,
    SealFixtures,
    load_fixtures,
    relocate_fixtures,
)

__all__ = ["ClientIdentity", "SealFixture", "SealFixtures"]


def run_build_script(outdir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """Run build_fixtures.py in its own process (its PKCS#11 state stays out of ours)."""
    return subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), str(outdir), *extra],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _point_softhsm_at(conf: Path | None, module: Path) -> None:
    """Set SOFTHSM2_CONF and make python-pkcs11's cached library re-read it."""
    if conf is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = str(conf)
    if conf is not None:
        pkcs11.lib(str(module)).reinitialize()


def _previous_conf() -> Path | None:
    value = os.environ.get("SOFTHSM2_CONF")
    return Path(value) if value else None


@pytest.fixture(scope="session")
def seal_fixtures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SealFixtures]:
    outdir = tmp_path_factory.mktemp("seal-fixtures")
    done = run_build_script(outdir)
    if done.returncode != 0:
        pytest.fail(
            f"build_fixtures.py failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    fixtures = load_fixtures(outdir)
    previous = _previous_conf()
    _point_softhsm_at(fixtures.softhsm2_conf, fixtures.module)
    yield fixtures
    _point_softhsm_at(previous, fixtures.module)


@pytest.fixture
def fresh_seal_fixtures(seal_fixtures: SealFixtures, tmp_path: Path) -> Iterator[SealFixtures]:
    copy = relocate_fixtures(seal_fixtures.root, tmp_path / "seal-fixtures")
    previous = _previous_conf()
    _point_softhsm_at(copy.softhsm2_conf, copy.module)
    yield copy
    _point_softhsm_at(previous, copy.module)
