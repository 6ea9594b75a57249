"""Open server streams per principal and in total (issue 8), over the real daemon.

A real seald with `max_streams_per_principal = 3` and `max_open_streams = 7`, real mutual
TLS, the real client stubs and the real `sealctl`: the streams up to the cap open, the next
one is refused with RESOURCE_EXHAUSTED naming the setting, other principals are not held
back, and a slot comes back whenever a stream ends (client cancel, deadline, error,
normal end) — checked by opening again and by the `seald_open_streams` gauge falling to
0. A lower cap at SIGHUP ends no open stream; the daemon stays SERVING, and SIGTERM is
not held up by open watches.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sealapi.v1 import (
    common_pb2,
    requests_pb2,
    requests_pb2_grpc,
    seals_pb2,
    seals_pb2_grpc,
    tokens_pb2,
    tokens_pb2_grpc,
)
from seald_testing.clients import sealctl
from seald_testing.config import DaemonConfig
from seald_testing.daemon import SealDaemon, free_port, make_pdf, scrape
from seald_testing.plugin import DaemonFactory

PER_PRINCIPAL, TOTAL = 3, 7
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
PLACEMENT = common_pb2.Placement(page=0, x_mm=150, y_mm=240)


@pytest.fixture
def daemon(daemon_factory: DaemonFactory) -> tuple[SealDaemon, int]:
    metrics_port = free_port()

    def edit(config: DaemonConfig) -> None:
        config.set("requests", max_streams_per_principal=PER_PRINCIPAL, max_open_streams=TOTAL)
        config.metrics(metrics_port)

    return daemon_factory(edit), metrics_port


class Peer:
    """One client certificate's channel and stubs (li.na and li.na-laptop are one principal)."""

    def __init__(self, d: SealDaemon, cert_name: str) -> None:
        who = d.fixtures.principals[cert_name]
        creds = grpc.ssl_channel_credentials(
            d.fixtures.tls_ca.read_bytes(), who.key.read_bytes(), who.cert.read_bytes()
        )
        self.channel = grpc.secure_channel(d.target, creds)
        self.tokens = tokens_pb2_grpc.TokenServiceStub(self.channel)
        self.requests = requests_pb2_grpc.SealRequestServiceStub(self.channel)
        self.seals = seals_pb2_grpc.SealRegistryServiceStub(self.channel)

    def watch_tokens(self, timeout: float = 120) -> Any:
        """An open WatchTokens stream: the first status arrived, so the server holds a slot."""
        call = self.tokens.WatchTokens(tokens_pb2.WatchTokensRequest(), timeout=timeout)
        first = next(call)
        assert first.seal_id in ("contract", "official")
        return call

    def close(self) -> None:
        self.channel.close()


def refusal(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as refused:
        next(call)
    return refused.value


def reason_of(error: grpc.RpcError) -> str:
    trailers = dict(error.trailing_metadata() or ())  # type: ignore[attr-defined]
    return str(trailers.get("seal-error-reason", ""))


def reopen_within(peer: Peer, seconds: float = 10.0) -> Any:
    """Open a watch again once the server has seen the previous stream end."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return peer.watch_tokens()
        except grpc.RpcError as ex:
            assert ex.code() == EXHAUSTED, ex  # type: ignore[attr-defined]
            assert time.monotonic() < deadline, "the slot of the ended stream was never freed"
            time.sleep(0.05)


def wait_open_streams(port: int, expected: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while (now := scrape(port)[("seald_open_streams", ())]) != expected:
        assert time.monotonic() < deadline, f"{now:g} streams open, expected {expected}"
        time.sleep(0.05)


def serving(peer: Peer) -> int:
    stub = health_pb2_grpc.HealthStub(peer.channel)
    return int(stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status)


def test_streams_per_principal_are_capped_named_and_freed_whenever_a_stream_ends(
    daemon: tuple[SealDaemon, int], tmp_path: Path
) -> None:
    d, metrics_port = daemon
    names = ("li.na", "li.na-laptop", "wang.fang", "zhao.min", "chen.jie", "zhang.wei")
    peers = {n: Peer(d, n) for n in names}
    li, laptop, wang = peers["li.na"], peers["li.na-laptop"], peers["wang.fang"]
    try:
        # li.na's two certificates share one principal, so one cap.
        li_calls = [li.watch_tokens(), li.watch_tokens(), laptop.watch_tokens()]
        # Any server stream counts, not only WatchTokens: a WatchRequests is refused too.
        over = refusal(li.requests.WatchRequests(requests_pb2.WatchRequestsRequest(), timeout=30))
        assert over.code() == EXHAUSTED  # type: ignore[attr-defined]
        assert reason_of(over) == "too_many_streams"
        details = over.details()  # type: ignore[attr-defined]
        assert "requests.max_streams_per_principal" in details
        assert f"the limit is {PER_PRINCIPAL}" in details
        assert "Close other watches" in details
        # Unary calls are not streams: li.na can still work.
        assert len(li.seals.ListSeals(seals_pb2.ListSealsRequest(), timeout=10).seals) == 2

        # sealctl shows the refusal: its message, the reason, exit code 9 (RESOURCE_EXHAUSTED).
        shown = sealctl(d, "li.na", "token", "watch", timeout=60)
        assert shown.returncode == 9, shown
        assert "requests.max_streams_per_principal" in shown.stderr
        assert "(too_many_streams)" in shown.stderr

        # Other principals are not held back by li.na's streams ...
        wang_calls = [wang.watch_tokens() for _ in range(PER_PRINCIPAL)]
        zhao_call = peers["zhao.min"].watch_tokens()
        # ... until the whole server holds max_open_streams.
        full = refusal(peers["chen.jie"].tokens.WatchTokens(tokens_pb2.WatchTokensRequest(), timeout=30))
        assert full.code() == EXHAUSTED  # type: ignore[attr-defined]
        assert reason_of(full) == "server_streams_full"
        assert "requests.max_open_streams" in full.details()  # type: ignore[attr-defined]
        m = scrape(metrics_port)
        assert m[("seald_open_streams", ())] == TOTAL
        assert m[("seald_refusals_total", (("reason", "too_many_streams"),))] == 2  # raw call + sealctl
        assert m[("seald_refusals_total", (("reason", "server_streams_full"),))] == 1
        zhao_call.cancel()

        # Client cancel frees the slot: li.na can open again.
        li_calls.pop(0).cancel()
        li_calls.append(reopen_within(li))

        # A deadline frees the slot.
        li_calls.pop(0).cancel()
        wait_open_streams(metrics_port, PER_PRINCIPAL - 1 + len(wang_calls))
        short = li.tokens.WatchTokens(tokens_pb2.WatchTokensRequest(), timeout=1.0)
        assert next(short).seal_id
        with pytest.raises(grpc.RpcError) as expired:
            for _ in short:
                pass
        assert expired.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED  # type: ignore[attr-defined]
        li_calls.append(reopen_within(li))

        # A stream ending in an error frees the slot: more errors than the cap, then a watch.
        li_calls.pop(0).cancel()
        wait_open_streams(metrics_port, PER_PRINCIPAL - 1 + len(wang_calls))
        for _ in range(PER_PRINCIPAL + 2):
            missing = li.requests.WatchRequests(
                requests_pb2.WatchRequestsRequest(request_id="0" * 32), timeout=30
            )
            error = refusal(missing)
            assert error.code() == grpc.StatusCode.NOT_FOUND, error  # type: ignore[attr-defined]
        li_calls.append(li.watch_tokens())

        # A stream that ends normally frees the slot: more downloads than the cap, one by one.
        pdf = make_pdf(tmp_path / "c.pdf")
        with d.client("zhang.wei") as requester:
            request = requester.submit(
                [pdf], seal_id="contract", reason="采购合同", category="contract", placement=PLACEMENT
            )
        zhang = peers["zhang.wei"]
        for _ in range(PER_PRINCIPAL + 2):
            chunks = list(
                zhang.requests.DownloadDocument(
                    requests_pb2.DownloadDocumentRequest(
                        request_id=request.request_id, variant=requests_pb2.DOCUMENT_VARIANT_ORIGINAL
                    ),
                    timeout=30,
                )
            )
            assert b"".join(c.data for c in chunks) == pdf.read_bytes()

        # Everything closed: the gauge falls back to 0 and nothing leaked.
        for call in li_calls + wang_calls:
            call.cancel()
        wait_open_streams(metrics_port, 0)
        wang_calls = [wang.watch_tokens() for _ in range(PER_PRINCIPAL)]
        assert serving(li) == health_pb2.HealthCheckResponse.SERVING
        assert d.proc is not None and d.proc.poll() is None

        # SIGHUP with a lower cap ends no open stream; it refuses new ones until enough close.
        lower = PER_PRINCIPAL - 1
        text = d.config_path.read_text(encoding="utf-8")
        key = "max_streams_per_principal = "
        assert f"{key}{PER_PRINCIPAL}\n" in text
        d.config_path.write_text(text.replace(f"{key}{PER_PRINCIPAL}\n", f"{key}{lower}\n"), encoding="utf-8")
        d.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while scrape(metrics_port)[("seald_config_reloads_total", (("outcome", "reloaded"),))] < 1:
            assert time.monotonic() < deadline, f"the reload did not happen:\n{d.log()[-2000:]}"
            time.sleep(0.05)
        assert scrape(metrics_port)[("seald_open_streams", ())] == PER_PRINCIPAL  # none ended
        lowered = refusal(wang.tokens.WatchTokens(tokens_pb2.WatchTokensRequest(), timeout=30))
        assert f"the limit is {lower}" in lowered.details()  # type: ignore[attr-defined]
        wang_calls.pop().cancel()
        wait_open_streams(metrics_port, lower)
        with pytest.raises(grpc.RpcError) as still:  # `lower` open, the cap is `lower`
            wang.watch_tokens()
        assert reason_of(still.value) == "too_many_streams"
        wang_calls.pop().cancel()
        wang_calls.append(reopen_within(wang))

        # SIGTERM is not held up by open watches: they end after the RPC grace (5 s).
        started = time.monotonic()
        assert d.stop() == 0
        assert time.monotonic() - started < 20
        for call in wang_calls:
            with pytest.raises(grpc.RpcError) as ended:
                for _ in call:
                    pass
            assert ended.value.code() in (  # type: ignore[attr-defined]
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.CANCELLED,
            )
    finally:
        for peer in peers.values():
            peer.close()
