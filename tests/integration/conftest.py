"""Fixtures shared by the integration tests (tests/conftest.py builds the tokens and PKI).

`daemon` (function): a real seald on a private copy of the fixtures, started and stopped
around the test. A test file that needs another kind (module-scoped, special config)
defines its own `daemon`, which takes precedence.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fixture_layout import SealFixtures

sys.path.insert(0, str(Path(__file__).resolve().parent))
from daemon_harness import SealDaemon


@pytest.fixture
def daemon(fresh_seal_fixtures: SealFixtures) -> Iterator[SealDaemon]:
    d = SealDaemon(fresh_seal_fixtures)
    d.start()
    yield d
    if d.proc is not None:
        d.stop()
