"""Issue 20: `sealctl watch` / `submit --wait` / `download --all` progress (done/total,
rate, ETA): a bar redrawn in place on a terminal, plain lines otherwise."""

from __future__ import annotations

import io

from sealapi.v1 import requests_pb2
from sealclient.progress import Progress, duration_text, progress_text


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def request(done: int, total: int) -> requests_pb2.SealRequest:
    docs = [
        requests_pb2.DocumentInfo(index=i, sealed_sha256="ab" * 32 if i < done else "")
        for i in range(total)
    ]
    return requests_pb2.SealRequest(request_id="REQ1", documents=docs)


def test_volume_progress_text_gives_count_share_rate_and_eta() -> None:
    assert progress_text(1200, 10000, 100.0, bar=False) == "sealed 1200/10000   12%  100.0 docs/s  ETA 1:28"
    assert progress_text(0, 4, None, bar=True) == "sealed 0/4    0%  [........................]"
    assert progress_text(4, 4, 2.0, bar=True).endswith("[########################]  2.0 docs/s")
    assert duration_text(3725) == "1:02:05"


def test_volume_progress_plain_lines_when_not_a_terminal() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Progress(out, tty=False, clock=clock)
    progress.request(request(0, 1000))
    clock.now += 10
    progress.request(request(500, 1000))
    progress.request(request(500, 1000))  # no change: no new line
    lines = out.getvalue().splitlines()
    assert lines == ["REQ1  sealed 0/1000    0%", "REQ1  sealed 500/1000   50%  50.0 docs/s  ETA 0:10"]
    assert "\r" not in out.getvalue()


def test_volume_progress_bar_is_redrawn_in_place_on_a_terminal() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Progress(out, tty=True, clock=clock)
    progress.request(request(256, 2000))
    clock.now += 4
    progress.request(request(512, 2000))
    progress.line("SIGNED")
    text = out.getvalue()
    assert text.count("\r\x1b[K") == 2 and "[###" in text
    assert "64.0 docs/s  ETA 0:23" in text  # 256 more in 4 s; 1,488 to go at 64/s
    assert text.endswith("\nSIGNED\n")


def test_volume_status_text_carries_the_sealed_count() -> None:
    from sealclient.output import request_text  # noqa: PLC0415

    assert "Sealed     3/5 documents" in request_text(request(3, 5))
