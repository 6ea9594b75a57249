"""The pytest plugin with seald's shared fixtures (registered in tests/conftest.py).

SoftHSM fixture tree (softhsm-fixtures/build_fixtures.py):
  `seal_fixtures` (session): built once per session; read-only by convention.
  `fresh_seal_fixtures` (function): a private copy a test may change (tokens, state).
  Both point SOFTHSM2_CONF and python-pkcs11's SoftHSM library at their tree, so a test
  can call `pkcs11.lib(fx.module)`; sessions opened before a `fresh_seal_fixtures` test
  are invalid after it.

Daemons (real seald processes on loopback, seald_testing.daemon.SealDaemon):
  `daemon` (function): one started on `fresh_seal_fixtures` with the fixtures' config.
  `daemon_factory` (function): `daemon_factory(config_edit, env=..., fixtures=...)` starts
  one more on `fresh_seal_fixtures` (or the fixtures given); all are stopped after the test.
  `module_daemon_factory` (module): the same, but each daemon on its own copy of the
  fixtures (`.fixtures()` makes one to prepare first) and shared by the module's tests,
  which must not depend on each other (each submits its own requests).
  A test file may define its own fixture of the same name: it takes precedence.

Signing without a daemon:
  `token_session` (function): a logged-in PKCS#11 session on the contract seal's token.
  `seal_png` (module): the contract seal's image (40 mm), rendered once per process
  (seald_testing.images; modules that need it at import call `contract_seal_png()`).
  `pki` (module): certomancer's live CA/TSA/OCSP/CRL on loopback for the contract seal.

USB hot-plug (tests marked `umockdev`, run under umockdev-wrapper):
  `bed` (module): the umockdev testbed; one per module, as a second Testbed in the
  process would swap the mock /sys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pkcs11
import pytest
from fixture_layout import SealFixtures, load_fixtures, relocate_fixtures

from seald_testing.config import ConfigEdit
from seald_testing.daemon import SealDaemon
from seald_testing.hotplug import make_testbed
from seald_testing.images import contract_seal_png
from seald_testing.ltv_pki import LivePki, live_pki
from seald_testing.softhsm import point_softhsm_at, previous_conf, run_build_script

# --- the SoftHSM fixture tree ---------------------------------------------------------


@pytest.fixture(scope="session")
def seal_fixtures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SealFixtures]:
    outdir = tmp_path_factory.mktemp("seal-fixtures")
    done = run_build_script(outdir)
    if done.returncode != 0:
        pytest.fail(
            f"build_fixtures.py failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
    fixtures = load_fixtures(outdir)
    previous = previous_conf()
    point_softhsm_at(fixtures.softhsm2_conf, fixtures.module)
    yield fixtures
    point_softhsm_at(previous, fixtures.module)


@pytest.fixture
def fresh_seal_fixtures(seal_fixtures: SealFixtures, tmp_path: Path) -> Iterator[SealFixtures]:
    copy = relocate_fixtures(seal_fixtures.root, tmp_path / "seal-fixtures")
    previous = previous_conf()
    point_softhsm_at(copy.softhsm2_conf, copy.module)
    yield copy
    point_softhsm_at(previous, copy.module)


# --- daemons --------------------------------------------------------------------------


class DaemonFactory:
    """Builds and starts seald processes; `close()` stops every one still running."""

    def __init__(self, fixtures: Callable[[], SealFixtures]) -> None:
        self._fixtures = fixtures
        self.started: list[SealDaemon] = []

    def fixtures(self) -> SealFixtures:
        """The fixture tree a daemon gets by default (to prepare before starting it)."""
        return self._fixtures()

    def __call__(
        self,
        config: ConfigEdit | None = None,
        *,
        env: Mapping[str, str] | None = None,
        fixtures: SealFixtures | None = None,
        start: bool = True,
    ) -> SealDaemon:
        """A daemon with the fixtures' config changed by ``config``; started unless told."""
        d = SealDaemon(fixtures if fixtures is not None else self._fixtures(), config, env=env)
        self.started.append(d)
        if start:
            d.start()
        return d

    def close(self) -> None:
        for d in self.started:
            if d.proc is not None:
                d.stop()


@pytest.fixture
def daemon_factory(fresh_seal_fixtures: SealFixtures) -> Iterator[DaemonFactory]:
    factory = DaemonFactory(lambda: fresh_seal_fixtures)
    yield factory
    factory.close()


@pytest.fixture
def daemon(daemon_factory: DaemonFactory) -> SealDaemon:
    return daemon_factory()


@pytest.fixture(scope="module")
def module_daemon_factory(
    seal_fixtures: SealFixtures, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[DaemonFactory]:
    name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")

    def private_copy() -> SealFixtures:
        return relocate_fixtures(seal_fixtures.root, tmp_path_factory.mktemp(name) / "seal-fixtures")

    factory = DaemonFactory(private_copy)
    yield factory
    factory.close()


# --- signing in process ---------------------------------------------------------------


@pytest.fixture
def token_session(seal_fixtures: SealFixtures) -> Iterator[pkcs11.Session]:
    seal = seal_fixtures.seals["contract"]
    token = pkcs11.lib(str(seal_fixtures.module)).get_token(token_label=seal.token_label)
    with token.open(user_pin=seal.user_pin) as session:
        yield session


@pytest.fixture(scope="module")
def seal_png() -> bytes:
    return contract_seal_png()


@pytest.fixture(scope="module")
def pki(seal_fixtures: SealFixtures, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LivePki]:
    cert_pem = seal_fixtures.seals["contract"].certificate.read_bytes()
    with live_pki(cert_pem, tmp_path_factory.mktemp("certomancer")) as live:
        yield live


# --- USB hot-plug ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def bed() -> Any:
    """One testbed per module: a second Testbed in the process would swap the mock /sys."""
    return make_testbed()
