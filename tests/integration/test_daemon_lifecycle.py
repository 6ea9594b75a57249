"""The daemon's life cycle on a host (issue 7; R15 least privilege, R10 records).

Real seald processes over real mutual TLS, a real notify socket (no systemd runs here,
so the test is the service manager: it binds the socket NOTIFY_SOCKET names), real
signals, and the real SQLite audit log read after the daemon stopped.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import sqlite3
import ssl
import subprocess
import threading
import time
import uuid
from pathlib import Path
from types import TracebackType

import grpc
import pytest
from fixture_layout import SealFixtures
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sealapi.v1 import common_pb2, requests_pb2
from sealclient.errors import SealClientError
from seald.signing.verify import verify_pdf
from seald_testing.daemon import SEALD, SealDaemon, make_pdf, unlock_first_use

PLACEMENT = common_pb2.Placement(page=0, x_mm=150, y_mm=240)
SIGNING = requests_pb2.REQUEST_STATE_SIGNING
SIGNED = requests_pb2.REQUEST_STATE_SIGNED
APPROVED = requests_pb2.REQUEST_STATE_APPROVED
WATCHDOG_USEC = 400_000  # the daemon pings every 0.2 s


class NotifyListener:
    """The service manager's end of sd_notify: an abstract AF_UNIX datagram socket.

    On READY=1 it immediately opens a mutual-TLS connection to the daemon's port, from
    the receiving thread, before reading the next datagram: READY must mean "serving".
    """

    def __init__(self, fixtures: SealFixtures, port: int) -> None:
        name = f"seald-test-{uuid.uuid4().hex}"
        self.address = "@" + name
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + name)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, list[str]]] = []
        self.tls_at_ready: list[str] = []  # the negotiated ALPN protocol, or the error
        self.fixtures, self.port = fixtures, port
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tls_handshake(self) -> str:
        who = self.fixtures.principals["li.na"]
        context = ssl.create_default_context(cafile=str(self.fixtures.tls_ca))
        context.check_hostname = False  # the CA is ours; the name is not what is tested
        context.load_cert_chain(str(who.cert), str(who.key))
        context.set_alpn_protocols(["h2"])
        try:
            with (
                socket.create_connection(("127.0.0.1", self.port), timeout=2) as raw,
                context.wrap_socket(raw) as tls,
            ):
                return tls.selected_alpn_protocol() or "no-alpn"
        except OSError as ex:
            return f"failed: {ex}"

    def _run(self) -> None:
        while not self._closed.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            received = time.monotonic()
            lines = data.decode().split("\n")
            if "READY=1" in lines and not self.tls_at_ready:
                self.tls_at_ready.append(self._tls_handshake())
            self.messages.append((received, lines))

    def times_of(self, assignment: str) -> list[float]:
        return [t for t, lines in list(self.messages) if assignment in lines]

    def wait_for(self, assignment: str, timeout: float = 20.0, count: int = 1) -> list[float]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.times_of(assignment)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"no {assignment} (x{count}) within {timeout}s: {self.messages}")

    def __enter__(self) -> NotifyListener:
        return self

    def __exit__(
        self, t: type[BaseException] | None, v: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closed.set()
        self._thread.join(timeout=2)
        self.sock.close()


def health(d: SealDaemon, service: str = "") -> int:
    who = d.fixtures.principals["li.na"]
    creds = grpc.ssl_channel_credentials(
        d.fixtures.tls_ca.read_bytes(), who.key.read_bytes(), who.cert.read_bytes()
    )
    with grpc.secure_channel(d.target, creds) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        return int(reply.status)


def audit_rows(fixtures: SealFixtures, *events: str) -> list[sqlite3.Row]:
    """Audit records from the real store file, in chain order."""
    conn = sqlite3.connect(f"file:{fixtures.state_dir / 'seald.sqlite3'}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        marks = ",".join("?" * len(events))
        return list(
            conn.execute(f"SELECT * FROM audit_log WHERE event IN ({marks}) ORDER BY sequence", events)
        )
    finally:
        conn.close()


def wait_log(d: SealDaemon, event: str, count: int = 1, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if d.log().count(f'"event": "{event}"') >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"no {event} (x{count}) in the seald log:\n{d.log()[-3000:]}")


# --- sd_notify --------------------------------------------------------------------------


def test_r15_notify_ready_only_when_tls_serves_watchdog_keeps_coming_stopping_on_sigterm(
    fresh_seal_fixtures: SealFixtures,
) -> None:
    d = SealDaemon(fresh_seal_fixtures)
    with NotifyListener(fresh_seal_fixtures, d.port) as notify:
        d.extra_env = {"NOTIFY_SOCKET": notify.address, "WATCHDOG_USEC": str(WATCHDOG_USEC)}
        d.start()
        ready_at = notify.wait_for("READY=1")[0]
        # At the instant READY=1 arrived, a mutual-TLS handshake with h2 succeeded.
        assert notify.tls_at_ready == ["h2"], notify.tls_at_ready
        assert health(d) == health_pb2.HealthCheckResponse.SERVING
        status = [line for _, lines in notify.messages for line in lines if line.startswith("STATUS=")]
        assert f"STATUS=serving on port {d.port}" in status

        time.sleep(2.0)
        pings = [t for t in notify.times_of("WATCHDOG=1") if t >= ready_at]
        assert len(pings) >= 6, f"only {len(pings)} watchdog pings in 2 s"
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        assert max(gaps) < WATCHDOG_USEC / 1e6, f"a watchdog gap of {max(gaps):.3f}s"

        assert d.proc is not None
        d.proc.send_signal(signal.SIGTERM)
        code = d.proc.wait(timeout=30)
        d.proc = None
        assert code == 0
        stopping = notify.times_of("STOPPING=1")
        assert len(stopping) == 1 and stopping[0] > ready_at
        assert notify.times_of("READY=1") == [ready_at]  # no second READY without a reload
    assert [r["event"] for r in audit_rows(d.fixtures, "daemon.stopping", "daemon.stopped")] == [
        "daemon.stopping",
        "daemon.stopped",
    ]


def test_r15_second_instance_on_same_state_directory_refuses_to_start(daemon: SealDaemon) -> None:
    second = subprocess.run(
        [*SEALD, "--config", str(daemon.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=dict(os.environ, SOFTHSM2_CONF=str(daemon.fixtures.softhsm2_conf)),
    )
    assert second.returncode == 78, second.stderr
    assert "another seald is already running" in second.stderr
    assert str(daemon.fixtures.state_dir) in second.stderr
    # The first one is untouched and still serving.
    assert health(daemon) == health_pb2.HealthCheckResponse.SERVING
    assert daemon.proc is not None and daemon.proc.poll() is None


# --- SIGHUP -------------------------------------------------------------------------------


def _without_principal(text: str, name: str) -> str:
    start = text.index(f'name = "{name}"')
    block_start = text.rindex("[[principal]]", 0, start)
    block_end = text.find("[[principal]]", start)
    return text[:block_start] + (text[block_end:] if block_end != -1 else "")


def test_r04_sighup_refuses_broken_config_keeps_old_then_swaps_in_good_one(
    daemon: SealDaemon, tmp_path: Path
) -> None:
    assert daemon.proc is not None
    original = daemon.config_path.read_text(encoding="utf-8")
    without_li = _without_principal(original, "li.na")

    # 1. Broken (a typo'd key) AND li.na removed: nothing of it applies.
    daemon.config_path.write_text(without_li + "\n[requests2]\nx = 1\n", encoding="utf-8")
    daemon.proc.send_signal(signal.SIGHUP)
    wait_log(daemon, "config.reload_refused")
    with daemon.client("li.na") as li:
        assert li.seals() is not None  # still allow-listed: the old config holds

    # 2. A restart-only change (listen address): refused as a whole, old port keeps serving.
    daemon.config_path.write_text(
        without_li.replace(f"127.0.0.1:{daemon.port}", "127.0.0.1:1"), encoding="utf-8"
    )
    daemon.proc.send_signal(signal.SIGHUP)
    wait_log(daemon, "config.reload_refused", count=2)
    with daemon.client("li.na") as li:
        assert li.seals() is not None

    # 3. Valid: li.na's certificate leaves the allow-list at once, without a restart.
    daemon.config_path.write_text(without_li, encoding="utf-8")
    daemon.proc.send_signal(signal.SIGHUP)
    wait_log(daemon, "config.reloaded")
    with daemon.client("li.na") as li, pytest.raises(SealClientError) as refused:
        li.seals()
    assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert refused.value.reason == "certificate_not_listed"
    with daemon.client("wang.fang") as wang:
        assert wang.seals() is not None
    assert health(daemon) == health_pb2.HealthCheckResponse.SERVING

    assert daemon.stop() == 0
    rows = audit_rows(daemon.fixtures, "config.reloaded", "config.reload_refused")
    assert [(r["event"], r["reason"]) for r in rows] == [
        ("config.reload_refused", "invalid_config"),
        ("config.reload_refused", "restart_required"),
        ("config.reloaded", ""),
    ]
    assert "requests2" in json.loads(rows[0]["details_json"])["problem"]
    assert "server.listen" in json.loads(rows[1]["details_json"])["problem"]
    assert json.loads(rows[2]["details_json"])["principals"] == original.count("[[principal]]") - 1


# --- graceful shutdown during a signature --------------------------------------------------

BATCH = 16  # documents in one request: the request stays SIGNING for the whole batch


def _children(pid: int) -> list[int]:
    return [
        int(c)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for c in (task / "children").read_text().split()
    ]


def test_r15_sigterm_while_seal_workers_still_start_exits_at_once(
    fresh_seal_fixtures: SealFixtures,
) -> None:
    """Found under load: seald logged seald.stopped, then sat 30 s in the interpreter's
    exit joining seal workers that were still importing. They are terminated now."""
    d = SealDaemon(fresh_seal_fixtures, env={"SEALD_TEST_SLOW_WORKER_START_S": "120"})
    d.start()
    assert d.proc is not None
    deadline = time.monotonic() + 30
    while len(workers := _children(d.proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)  # the spawned seal workers (and the pool's resource tracker)
    assert len(workers) >= 2, workers
    d.proc.send_signal(signal.SIGTERM)
    started = time.monotonic()
    code = d.proc.wait(timeout=60)
    took = time.monotonic() - started
    d.proc = None
    assert code == 0
    assert took < 15, f"seald took {took:.1f} s to exit after SIGTERM"
    time.sleep(0.5)
    alive = [w for w in workers if Path(f"/proc/{w}").exists() and "zombie" not in _state(w)]
    assert alive == [], f"seal workers outlived seald: {alive}"
    assert [r["event"] for r in audit_rows(d.fixtures, "daemon.stopped")] == ["daemon.stopped"]


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0].lower()
    except (FileNotFoundError, IndexError):
        return "zombie"


def test_r10_sigterm_during_a_batch_signature_completes_it_nothing_lost(
    daemon: SealDaemon, tmp_path: Path
) -> None:
    pdfs = []
    template = make_pdf(tmp_path / "template.pdf").read_bytes()
    for i in range(BATCH):
        path = tmp_path / f"contract-{i:02d}.pdf"
        path.write_bytes(template)
        pdfs.append(path)
    with daemon.client("zhang.wei") as requester:
        request = requester.submit(
            pdfs, seal_id="contract", reason="批量合同", category="contract", placement=PLACEMENT
        )
    rid = request.request_id
    with daemon.client("li.na") as li, daemon.client("wang.fang") as wang:
        li.approve(rid)
        assert wang.approve(rid).state == APPROVED
    with daemon.client("liu.yang") as custodian, daemon.client("zhang.wei") as requester:
        unlock_first_use(custodian, daemon.fixtures, "contract")  # R07 first use
        daemon.wait_state(requester, rid, SIGNING, timeout=30)
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(timeout=40) == 0
    daemon.proc = None

    rows = audit_rows(daemon.fixtures, "seal.sign_intent", "seal.signed", "daemon.stopping", "daemon.stopped")
    events = [r["event"] for r in rows]
    stopping = rows[events.index("daemon.stopping")]
    # SIGTERM arrived while the signature was running ...
    assert json.loads(stopping["details_json"]) == {"signatures_in_flight": 1}
    assert events.index("seal.sign_intent") < events.index("daemon.stopping")
    # ... and it completed: every document's result record precedes the stop record.
    assert events.count("seal.signed") == BATCH
    assert max(i for i, e in enumerate(events) if e == "seal.signed") < events.index("daemon.stopped")
    assert json.loads(rows[-1]["details_json"]) == {"signatures_abandoned": 0}

    daemon.start()
    out = tmp_path / "sealed-last.pdf"
    with daemon.client("zhang.wei") as requester:
        done = requester.get(rid)
        assert done.state == SIGNED
        requester.download(rid, BATCH - 1, out)
    checks = verify_pdf(out, [daemon.fixtures.seal_ca.read_bytes()])
    assert len(checks) == 1 and checks[0].valid and checks[0].intact
    for i in range(BATCH):
        assert daemon.fixtures.state_dir.joinpath("documents", rid, f"{i:04d}.sealed.pdf").exists()
