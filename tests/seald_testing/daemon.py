"""Start the real seald as a process on a loopback port, with the fixtures' config.

Tests talk to it with the real client library over real mutual TLS. The daemon
process can be stopped (SIGTERM), killed (SIGKILL) and restarted on the same
state directory. Its config is the fixtures' one with a free port, changed by an
optional edit of the typed builder (seald_testing.config). In a test, use the
`daemon` / `daemon_factory` fixtures (seald_testing.plugin) rather than this class.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fixture_layout import ClientIdentity as FixtureClient
from fixture_layout import SealFixtures
from make_pdfs import valid_pdf
from prometheus_client.parser import text_string_to_metric_families

from sealapi.v1 import requests_pb2
from sealclient.client import ClientIdentity, SealClient
from seald_testing.config import ConfigEdit, DaemonConfig

# The shipped daemon with the SEALD_TEST_* hooks injected (the product reads none of them).
SEALD = [sys.executable, str(Path(__file__).resolve().parents[1] / "seald_under_test.py")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SealDaemon:
    def __init__(
        self,
        fixtures: SealFixtures,
        config: ConfigEdit | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.fixtures = fixtures
        self.extra_env = dict(env or {})  # e.g. NOTIFY_SOCKET, WATCHDOG_USEC
        self.port = free_port()
        self.config_path = fixtures.root / "seald-test.toml"
        built = DaemonConfig.from_file(fixtures.config).listen(self.target)
        if config is not None:
            config(built)
        self.config = built
        self.config_path.write_text(built.render(), encoding="utf-8")
        self.log_path = fixtures.root / "seald.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        port_file = self.fixtures.state_dir / "seald.port"
        port_file.unlink(missing_ok=True)
        env = dict(os.environ, SOFTHSM2_CONF=str(self.fixtures.softhsm2_conf), **self.extra_env)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [*SEALD, "--config", str(self.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if port_file.exists() and port_file.read_text().strip():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"seald exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.05)
        raise RuntimeError(f"seald did not become ready in {timeout}s:\n{self.log()}")

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self.proc = None
        return code

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)
        self.proc = None

    def log(self) -> str:
        return (
            self.log_path.read_text(encoding="utf-8", errors="replace")
            if self.log_path.exists()
            else ""
        )

    def log_entries(self) -> list[dict[str, Any]]:
        """The daemon's JSON log lines, parsed (other lines, e.g. a traceback, skipped)."""
        entries = []
        for line in self.log().splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                entries.append(entry)
        return entries

    def identity(self, who: FixtureClient) -> ClientIdentity:
        return ClientIdentity(
            target=self.target,
            ca_pem=self.fixtures.tls_ca.read_bytes(),
            cert_pem=who.cert.read_bytes(),
            key_pem=who.key.read_bytes(),
        )

    def client(self, name: str) -> SealClient:
        return SealClient(self.identity(self.fixtures.principals[name]), timeout_s=30)

    def client_for(self, who: FixtureClient) -> SealClient:
        return SealClient(self.identity(who), timeout_s=30)

    def wait_state(
        self, client: SealClient, request_id: str, state: int, timeout: float = 30.0
    ) -> requests_pb2.SealRequest:
        deadline = time.monotonic() + timeout
        while True:
            current = client.get(request_id)
            if current.state == state:
                return current
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"request {request_id} stayed {requests_pb2.RequestState.Name(current.state)}"
                    f" ({current.state_reason}); wanted {requests_pb2.RequestState.Name(state)}"
                )
            time.sleep(0.05)


def log_events(d: SealDaemon, event: str) -> list[dict[str, Any]]:
    """The daemon's log lines of one event."""
    return [entry for entry in d.log_entries() if entry.get("event") == event]


def user_pin(fixtures: SealFixtures, seal_id: str) -> str:
    return fixtures.seals[seal_id].user_pin


def make_pdf(path: Path, pages: int = 1) -> Path:
    path.write_bytes(valid_pdf(pages))
    return path


# R07: a newly issued token still has its initial PIN (the fixture's user_pin) and the daemon
# refuses to sign with it. Tests do what a custodian does at first use: change it, then unlock.
CHANGED_PIN = "20261129"


def unlock_first_use(client: SealClient, fixtures: SealFixtures, seal_id: str) -> Any:
    """Change the initial PIN to CHANGED_PIN, then unlock with it; returns the TokenStatus."""
    client.change_pin(seal_id, user_pin(fixtures, seal_id), CHANGED_PIN)
    return client.unlock(seal_id, CHANGED_PIN)


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of seald's /metrics: (name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
