"""sd_notify protocol against a real AF_UNIX datagram socket bound by the test (R15:
the service reports readiness and liveness to systemd, so a hung daemon is restarted)."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from seald.runtime.sdnotify import SystemdNotifier, single_line, socket_address, watchdog_interval_from


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket standing in for the service manager, and its path."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2.0)
    try:
        yield sock, str(path)
    finally:
        sock.close()


def received_lines(sock: socket.socket) -> list[str]:
    data = sock.recv(4096)
    return data.decode("utf-8").split("\n")


def test_r15_ready_sends_ready_datagram(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready() is True
    assert received_lines(sock) == ["READY=1"]


def test_r15_ready_with_status_sends_both_in_one_datagram(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    assert SystemdNotifier({"NOTIFY_SOCKET": path}).ready("serving on 127.0.0.1:50443")
    assert received_lines(sock) == ["READY=1", "STATUS=serving on 127.0.0.1:50443"]


def test_r15_stopping_status_and_watchdog(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
    assert notifier.stopping()
    assert received_lines(sock) == ["STOPPING=1"]
    assert notifier.status("token seal-contract present, locked")
    assert received_lines(sock) == ["STATUS=token seal-contract present, locked"]
    assert notifier.watchdog()
    assert received_lines(sock) == ["WATCHDOG=1"]


def test_r15_status_cannot_inject_extra_assignments(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    assert SystemdNotifier({"NOTIFY_SOCKET": path}).status("ok\nMAINPID=1\r\nREADY=1")
    assert received_lines(sock) == ["STATUS=ok MAINPID=1  READY=1"]


def test_r15_status_is_utf8(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    assert SystemdNotifier({"NOTIFY_SOCKET": path}).status("合同专用章 ready")
    assert received_lines(sock) == ["STATUS=合同专用章 ready"]


def test_r15_abstract_namespace_socket() -> None:
    name = f"seald-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2.0)
        assert SystemdNotifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert received_lines(sock) == ["READY=1"]


def test_socket_address_maps_at_sign_to_abstract_namespace() -> None:
    assert socket_address("@foo") == "\0foo"
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"


def test_single_line_replaces_line_breaks() -> None:
    assert single_line("a\nb\rc") == "a b c"


def test_without_notify_socket_everything_is_a_noop() -> None:
    notifier = SystemdNotifier({})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.stopping() is False
    assert notifier.status("x") is False
    assert notifier.watchdog() is False
    assert notifier.watchdog_interval() is None


def test_send_failure_returns_false_and_does_not_raise(tmp_path: Path) -> None:
    missing = tmp_path / "nobody-listens.sock"
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(missing)})
    assert notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog() is False


def test_path_too_long_for_af_unix_returns_false(tmp_path: Path) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / ("x" * 200))})
    assert notifier.watchdog() is False


def test_abstract_name_nobody_bound_returns_false() -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": f"@seald-nobody-{uuid.uuid4().hex}"})
    assert notifier.status("x") is False


def test_full_receiver_queue_returns_false_without_blocking(
    listener: tuple[socket.socket, str],
) -> None:
    _sock, path = listener
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
    # The listener never reads: the queue fills, then sends must fail fast, not block.
    results = [notifier.status("x" * 1024) for _ in range(5000)]
    assert results[0] is True
    assert results[-1] is False


def test_reads_os_environ_by_default(
    listener: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert SystemdNotifier().watchdog()
    assert received_lines(sock) == ["WATCHDOG=1"]


def test_r15_watchdog_interval_is_half_of_watchdog_usec() -> None:
    env = {"WATCHDOG_USEC": "30000000"}
    assert SystemdNotifier(env).watchdog_interval() == 15.0
    assert watchdog_interval_from(env, pid=1234) == 15.0


def test_watchdog_interval_for_our_pid() -> None:
    env = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    assert SystemdNotifier(env).watchdog_interval() == 15.0


def test_watchdog_interval_none_when_meant_for_another_process() -> None:
    env = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert SystemdNotifier(env).watchdog_interval() is None


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"WATCHDOG_USEC": ""},
        {"WATCHDOG_USEC": "0"},
        {"WATCHDOG_USEC": "-5"},
        {"WATCHDOG_USEC": "thirty"},
        {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "not-a-pid"},
    ],
)
def test_watchdog_interval_none_when_off_or_malformed(env: dict[str, str]) -> None:
    assert watchdog_interval_from(env, pid=1234) is None
