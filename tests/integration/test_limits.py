"""Limits over the real daemon (issue 8): refused with RESOURCE_EXHAUSTED, the limit named.

Each test starts a real seald with small limits in its [requests] table and talks to it
with the real client over mutual TLS: document size, documents per batch, unfinished
requests per requester, the per-principal rate limit, and gRPC's message size limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sealapi.v1 import common_pb2, requests_pb2, requests_pb2_grpc, seals_pb2, seals_pb2_grpc
from sealclient.errors import SealClientError
from seald.runtime.daemon import MAX_MESSAGE_BYTES
from seald_testing.daemon import SealDaemon, make_pdf
from seald_testing.plugin import DaemonFactory

PLACEMENT = common_pb2.Placement(page=0, x_mm=150, y_mm=240)
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


@pytest.fixture
def start(daemon_factory: DaemonFactory) -> Callable[..., SealDaemon]:
    """A daemon with these [requests] limits, e.g. ``start(max_pending_per_principal=2)``."""

    def _start(**limits: object) -> SealDaemon:
        return daemon_factory(lambda c: c.set("requests", **limits))

    return _start


def submit(d: SealDaemon, paths: list[Path], key: str = "") -> requests_pb2.SealRequest:
    with d.client("zhang.wei") as c:
        return c.submit(
            paths,
            seal_id="contract",
            reason="采购合同",
            category="contract",
            placement=PLACEMENT,
            client_request_key=key,
        )


def raw_channel(d: SealDaemon, name: str) -> grpc.Channel:
    who = d.fixtures.principals[name]
    creds = grpc.ssl_channel_credentials(
        d.fixtures.tls_ca.read_bytes(), who.key.read_bytes(), who.cert.read_bytes()
    )
    return grpc.secure_channel(d.target, creds)


def serving(d: SealDaemon) -> int:
    with raw_channel(d, "li.na") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return int(stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status)


def uploads_left(d: SealDaemon) -> list[Path]:
    return list((d.fixtures.state_dir / "incoming").iterdir())


def test_document_over_max_document_bytes_is_refused_before_upload(
    start: Callable[..., SealDaemon], tmp_path: Path
) -> None:
    pdf = make_pdf(tmp_path / "big.pdf", pages=3)
    d = start(max_document_bytes=pdf.stat().st_size - 1)
    with pytest.raises(SealClientError) as refused:
        submit(d, [pdf])
    assert refused.value.code == EXHAUSTED
    assert refused.value.reason == "document_too_large"
    assert "max_document_bytes" in refused.value.message
    assert str(pdf.stat().st_size - 1) in refused.value.message
    assert uploads_left(d) == []
    small = make_pdf(tmp_path / "small.pdf", pages=1)
    assert small.stat().st_size < pdf.stat().st_size
    assert submit(d, [small]).state == requests_pb2.REQUEST_STATE_PENDING


def test_batch_over_max_documents_per_request_is_refused(
    start: Callable[..., SealDaemon], tmp_path: Path
) -> None:
    d = start(max_documents_per_request=2)
    pdfs = [make_pdf(tmp_path / f"d{i}.pdf") for i in range(3)]
    with pytest.raises(SealClientError) as refused:
        submit(d, pdfs)
    assert refused.value.code == EXHAUSTED
    assert refused.value.reason == "too_many_documents"
    assert "max_documents_per_request" in refused.value.message
    assert len(submit(d, pdfs[:2]).documents) == 2
    assert uploads_left(d) == []


def test_unfinished_requests_per_requester_are_capped_and_free_up_when_final(
    start: Callable[..., SealDaemon], tmp_path: Path
) -> None:
    d = start(max_pending_per_principal=2)
    pdf = make_pdf(tmp_path / "c.pdf")
    first = submit(d, [pdf], key="k1")
    submit(d, [pdf], key="k2")
    with pytest.raises(SealClientError) as refused:
        submit(d, [pdf])
    assert refused.value.code == EXHAUSTED
    assert refused.value.reason == "too_many_pending"
    assert "requests.max_pending_per_principal" in refused.value.message
    assert "2 unfinished requests" in refused.value.message
    # A retry of a request already made is answered with it, not refused.
    assert submit(d, [pdf], key="k1").request_id == first.request_id
    with d.client("zhang.wei") as c:
        assert len(c.list()) == 2
        c.cancel(first.request_id, "not needed")
    assert submit(d, [pdf]).state == requests_pb2.REQUEST_STATE_PENDING
    assert uploads_left(d) == []


def test_rate_limit_is_per_principal_and_names_the_limit(start: Callable[..., SealDaemon]) -> None:
    rate, burst = 2.0, 5
    d = start(rate_limit_per_second=rate, rate_limit_burst=burst)
    with raw_channel(d, "li.na") as li, raw_channel(d, "wang.fang") as wang:
        li_seals = seals_pb2_grpc.SealRegistryServiceStub(li)
        started = time.monotonic()
        admitted = 0
        refusal: grpc.RpcError | None = None
        for _ in range(burst + 20):
            try:
                li_seals.ListSeals(seals_pb2.ListSealsRequest(), timeout=10)
                admitted += 1
            except grpc.RpcError as ex:
                refusal = ex
                break
        elapsed = time.monotonic() - started
        assert refusal is not None, f"{admitted} calls admitted, none refused"
        assert burst <= admitted <= burst + rate * elapsed + 1
        assert refusal.code() == EXHAUSTED  # type: ignore[attr-defined]
        assert "requests.rate_limit_per_second" in refusal.details()  # type: ignore[attr-defined]
        assert ("seal-error-reason", "rate_limited") in refusal.trailing_metadata()  # type: ignore[attr-defined]
        # Another client is not held back by li.na's calls.
        wang_seals = seals_pb2_grpc.SealRegistryServiceStub(wang)
        assert len(wang_seals.ListSeals(seals_pb2.ListSealsRequest(), timeout=10).seals) == 2
        time.sleep(1.0 / rate + 0.1)  # one token refilled
        assert len(li_seals.ListSeals(seals_pb2.ListSealsRequest(), timeout=10).seals) == 2
    assert serving(d) == health_pb2.HealthCheckResponse.SERVING


def test_message_over_the_server_limit_is_refused_by_grpc_and_the_daemon_stays_up(
    start: Callable[..., SealDaemon], tmp_path: Path
) -> None:
    d = start()
    pdf = make_pdf(tmp_path / "c.pdf")
    size = MAX_MESSAGE_BYTES + 1024

    def messages() -> Iterator[requests_pb2.SubmitRequestMessage]:
        yield requests_pb2.SubmitRequestMessage(
            header=requests_pb2.SubmitRequestHeader(
                seal_id="contract", reason="r", category="contract", placement=PLACEMENT
            )
        )
        yield requests_pb2.SubmitRequestMessage(
            document_start=requests_pb2.DocumentStart(name="huge.pdf", size=size)
        )
        yield requests_pb2.SubmitRequestMessage(chunk=b"\0" * size)

    with raw_channel(d, "zhang.wei") as channel:
        stub = requests_pb2_grpc.SealRequestServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.SubmitRequest(messages(), timeout=20)
    assert refused.value.code() == EXHAUSTED  # type: ignore[attr-defined]
    assert str(MAX_MESSAGE_BYTES) in refused.value.details()  # type: ignore[attr-defined]
    assert serving(d) == health_pb2.HealthCheckResponse.SERVING
    deadline = time.monotonic() + 5
    while uploads_left(d):
        assert time.monotonic() < deadline, "the cut upload was not cleaned up"
        time.sleep(0.05)
    assert submit(d, [pdf]).state == requests_pb2.REQUEST_STATE_PENDING
