"""Dependency-free sd_notify(3): readiness, status, watchdog and stop notifications.

The protocol: newline-separated ``KEY=VALUE`` assignments sent as one datagram to the
AF_UNIX socket named by ``$NOTIFY_SOCKET`` (an abstract-namespace socket if the name
starts with ``@``). Without ``$NOTIFY_SOCKET`` (not started by systemd, or
``Type=simple``) every call is a no-op.

Sending never raises and never logs: the service must keep working when the manager
is gone or its queue is full. Each method returns True when the datagram was handed to
the socket, False otherwise (no socket configured, or the send failed).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

# systemd splits the datagram into lines; a newline inside a value would start a new,
# possibly privileged assignment (e.g. MAINPID=), so values are kept on one line.
_LINE_BREAKS = str.maketrans({"\n": " ", "\r": " "})


def socket_address(notify_socket: str) -> str:
    """The address to send to: ``@name`` means the abstract namespace (leading NUL)."""
    if notify_socket.startswith("@"):
        return "\0" + notify_socket[1:]
    return notify_socket


def single_line(text: str) -> str:
    """``text`` with line breaks replaced by spaces, safe as one assignment's value."""
    return text.translate(_LINE_BREAKS)


def watchdog_interval_from(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between watchdog pings: half of ``$WATCHDOG_USEC``, as sd_watchdog_enabled(3)
    recommends, or None if the watchdog is off, malformed, or meant for another process."""
    usec_text = environ.get("WATCHDOG_USEC")
    if not usec_text:
        return None
    watchdog_pid = environ.get("WATCHDOG_PID")
    if watchdog_pid:
        try:
            if int(watchdog_pid) != pid:
                return None
        except ValueError:
            return None
    try:
        usec = int(usec_text)
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 2 / 1_000_000


class SystemdNotifier:
    """Notifications to the service manager for a ``Type=notify`` service.

    ``environ`` defaults to ``os.environ`` read at construction; tests pass their own.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._environ: dict[str, str] = dict(env)
        notify_socket = self._environ.get("NOTIFY_SOCKET", "")
        self._address: str | None = socket_address(notify_socket) if notify_socket else None

    @property
    def enabled(self) -> bool:
        """True when a notification socket is configured."""
        return self._address is not None

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=VALUE`` assignments in one datagram; True if it was sent."""
        if self._address is None or not assignments:
            return False
        payload = "\n".join(single_line(a) for a in assignments).encode("utf-8")
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # Non-blocking: watchdog() runs on the asyncio loop, and a full manager
                # queue must cost a missed ping, not a stalled event loop.
                sock.setblocking(False)
                sock.sendto(payload, self._address)
        except (OSError, ValueError):
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Startup finished (store open, audit head verified, port bound)."""
        if status is None:
            return self.notify("READY=1")
        return self.notify("READY=1", f"STATUS={status}")

    def stopping(self) -> bool:
        """Shutdown began (SIGTERM received); systemd stops expecting watchdog pings."""
        return self.notify("STOPPING=1")

    def status(self, text: str) -> bool:
        """Free-form one-line status shown by ``systemctl status seald``."""
        return self.notify(f"STATUS={text}")

    def watchdog(self) -> bool:
        """Keep-alive ping; send at least every watchdog_interval() seconds."""
        return self.notify("WATCHDOG=1")

    def watchdog_interval(self) -> float | None:
        """Seconds between pings, or None when systemd does not watch this process."""
        return watchdog_interval_from(self._environ, os.getpid())
