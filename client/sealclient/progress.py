"""Progress of a request being sealed or downloaded (issue 20): done/total, rate, ETA.

On a terminal one line redrawn in place (a bar); otherwise plain lines, one per change
of the count, so a log or a pipe gets readable records rather than carriage returns.
Pure formatting plus a clock: the rate is the count sealed since the first observation
over the time since then, so a resumed request does not claim a speed it never had.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from sealapi.v1 import requests_pb2

BAR_WIDTH = 24


def duration_text(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def progress_text(done: int, total: int, rate: float | None, *, bar: bool, what: str = "sealed") -> str:
    """``sealed 1200/10000  12%  [###.....]  95.1 docs/s  ETA 1:32`` (bar optional)."""
    share = done / total if total else 1.0
    parts = [f"{what} {done}/{total}", f"{share:4.0%}"]
    if bar:
        filled = round(share * BAR_WIDTH)
        parts.append("[" + "#" * filled + "." * (BAR_WIDTH - filled) + "]")
    if rate is not None and rate > 0:
        parts.append(f"{rate:.1f} docs/s")
        if done < total:
            parts.append(f"ETA {duration_text((total - done) / rate)}")
    return "  ".join(parts)


class Progress:
    """Shows done/total as it changes: a bar redrawn in place on a TTY, else lines."""

    def __init__(
        self,
        stream: TextIO,
        *,
        tty: bool | None = None,
        what: str = "sealed",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.what = what
        self._clock = clock
        self._first: tuple[float, int] | None = None
        self._last_done: int | None = None
        self._drawn = False

    def show(self, done: int, total: int, *, label: str = "") -> None:
        now = self._clock()
        if self._first is None:
            self._first = (now, done)
        if done == self._last_done:
            return
        self._last_done = done
        started, done_then = self._first
        rate = (done - done_then) / (now - started) if now > started and done > done_then else None
        text = progress_text(done, total, rate, bar=self.tty, what=self.what)
        text = f"{label}  {text}" if label else text
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
            self._drawn = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def request(self, request: requests_pb2.SealRequest) -> None:
        """Progress of a request from its documents' recorded sealed hashes."""
        done = sum(1 for doc in request.documents if doc.sealed_sha256)
        self.show(done, len(request.documents), label=request.request_id)

    def line(self, text: str) -> None:
        """A line of its own (a state change), below the bar if one is drawn."""
        self.end()
        self.stream.write(text + "\n")
        self.stream.flush()

    def end(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
