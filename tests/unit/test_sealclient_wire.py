"""SealClient over real mutual TLS against the in-process fake seald (sealclient.testing)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from sealapi.v1 import common_pb2, requests_pb2
from sealclient.client import CHUNK_SIZE, ClientIdentity, SealClient
from sealclient.errors import LocalVerificationError, SealClientError
from sealclient.testing import FAKE_PIN, SEALED_SUFFIX, FakePki, FakeSeald, make_test_pki

PLACEMENT = common_pb2.Placement(page=1, x_mm=150.0, y_mm=230.0, size_mm=42.0)


@pytest.fixture(scope="module")
def pki() -> FakePki:
    return make_test_pki()


@pytest.fixture
def fake(pki: FakePki) -> Iterator[FakeSeald]:
    with FakeSeald(pki) as server:
        yield server


@pytest.fixture
def client(fake: FakeSeald) -> Iterator[SealClient]:
    with SealClient(fake.identity(), timeout_s=10) as sealclient:
        yield sealclient


def pdf(tmp_path: Path, name: str, size: int) -> Path:
    path = tmp_path / name
    path.write_bytes(b"%PDF-1.7\n" + bytes(i % 251 for i in range(size)))
    return path


def submit(client: SealClient, *paths: Path) -> requests_pb2.SealRequest:
    return client.submit(list(paths), seal_id="contract-01", reason="签署采购合同",
                         category="contract", placement=PLACEMENT)


def test_submit_streams_documents_in_256k_chunks_with_local_hashes(
    client: SealClient, fake: FakeSeald, tmp_path: Path
) -> None:
    big = pdf(tmp_path, "采购合同.pdf", 3 * CHUNK_SIZE + 17)
    small = pdf(tmp_path, "annex.pdf", 10)
    request = submit(client, big, small)
    assert [d.name for d in request.documents] == ["采购合同.pdf", "annex.pdf"]
    assert request.documents[0].sha256 == hashlib.sha256(big.read_bytes()).hexdigest()
    assert max(fake.state.submit_chunk_sizes) == CHUNK_SIZE
    assert len(fake.state.submit_chunk_sizes) == 5  # 4 for the big one, 1 for the annex
    assert fake.state.originals[(request.request_id, 1)] == small.read_bytes()


def test_submit_unreadable_file_fails_before_sending(
    client: SealClient, fake: FakeSeald, tmp_path: Path
) -> None:
    with pytest.raises(SealClientError) as caught:
        submit(client, tmp_path / "missing.pdf")
    assert caught.value.reason == "local_file_unreadable"
    assert fake.state.requests == {}


def test_r05_r06_two_local_approvals_then_verified_download(
    client: SealClient, fake: FakeSeald, tmp_path: Path
) -> None:
    request = submit(client, pdf(tmp_path, "a.pdf", 1000))
    client.approve(request.request_id, "ok")
    signed = client.approve(request.request_id)
    assert signed.state == requests_pb2.REQUEST_STATE_SIGNED
    sent = fake.state.approvals_received[-1]
    assert sent.approval_digest == request.approval_digest
    assert list(sent.document_sha256) == [request.documents[0].sha256]
    out = tmp_path / "out" / "a.sealed.pdf"
    out.parent.mkdir()
    info = client.download(request.request_id, 0, out)
    assert out.read_bytes().endswith(SEALED_SUFFIX)
    assert info.sealed_sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    assert list(out.parent.iterdir()) == [out]  # no .part file left behind


def test_r06_approve_refuses_when_server_serves_other_bytes(
    client: SealClient, fake: FakeSeald, tmp_path: Path
) -> None:
    request = submit(client, pdf(tmp_path, "a.pdf", 1000))
    fake.state.serve_instead[(request.request_id, 0)] = b"%PDF-1.7 swapped contract"
    with pytest.raises(LocalVerificationError) as caught:
        client.approve(request.request_id)
    assert caught.value.reason == "local_hash_mismatch"
    assert fake.state.approvals_received == []  # nothing was approved


def test_r06_approve_refuses_when_request_description_was_changed(
    client: SealClient, fake: FakeSeald, tmp_path: Path
) -> None:
    request = submit(client, pdf(tmp_path, "a.pdf", 1000))
    fake.state.requests[request.request_id].placement.page = 5  # digest left stale
    with pytest.raises(LocalVerificationError) as caught:
        client.approve(request.request_id)
    assert caught.value.reason == "local_digest_mismatch"
    assert fake.state.approvals_received == []


def test_r06_approve_refuses_hash_other_than_the_one_shown(
    client: SealClient, fake: FakeSeald, tmp_path: Path
) -> None:
    request = submit(client, pdf(tmp_path, "a.pdf", 1000))
    with pytest.raises(LocalVerificationError):
        client.approve(request.request_id, expected_sha256=["0" * 64])
    assert fake.state.approvals_received == []


def test_download_hash_mismatch_writes_nothing(
    client: SealClient, fake: FakeSeald, tmp_path: Path
) -> None:
    request = submit(client, pdf(tmp_path, "a.pdf", 1000))
    fake.state.serve_instead[(request.request_id, 0)] = b"corrupted in transit"
    fake.state.honest_download_info = False  # info still announces the real hash
    out_dir = tmp_path / "dl"
    out_dir.mkdir()
    with pytest.raises(LocalVerificationError) as caught:
        client.download(request.request_id, 0, out_dir / "a.pdf",
                        requests_pb2.DOCUMENT_VARIANT_ORIGINAL)
    assert caught.value.reason == "download_hash_mismatch"
    assert list(out_dir.iterdir()) == []


def test_server_error_carries_reason_and_code(client: SealClient) -> None:
    with pytest.raises(SealClientError) as caught:
        client.get("R-9999")
    assert caught.value.code is grpc.StatusCode.NOT_FOUND
    assert caught.value.reason == "request_not_found"
    assert "R-9999" in caught.value.message
    with pytest.raises(SealClientError) as absent:
        client.lock("finance-01")
    assert absent.value.reason == "token_absent"


def test_r07_pin_reaches_the_token_but_never_an_error(
    client: SealClient, fake: FakeSeald
) -> None:
    fake.state.echo_pin_in_errors = True  # a careless server
    with pytest.raises(SealClientError) as caught:
        client.unlock("contract-01", "975310")
    assert "975310" not in str(caught.value) and "975310" not in repr(caught.value.args)
    assert caught.value.reason == "pin_incorrect"
    status = client.unlock("contract-01", FAKE_PIN)
    assert status.unlocked
    assert fake.state.pins_received == ["975310", FAKE_PIN]


def test_list_follows_page_tokens(client: SealClient, fake: FakeSeald, tmp_path: Path) -> None:
    doc = pdf(tmp_path, "a.pdf", 10)
    ids = [submit(client, doc).request_id for _ in range(5)]
    fake.state.list_page_size = 2
    assert [r.request_id for r in client.list()] == ids
    client.cancel(ids[0])
    pending = client.list(states=[requests_pb2.REQUEST_STATE_PENDING])
    assert [r.request_id for r in pending] == ids[1:]


def test_watch_yields_snapshot_then_changes(
    client: SealClient, fake: FakeSeald, tmp_path: Path
) -> None:
    request = submit(client, pdf(tmp_path, "a.pdf", 10))
    fake.state.after_watch_snapshot = lambda state: state.sign(state.requests[request.request_id])
    events = client.watch(request_id=request.request_id)
    first, second = next(events), next(events)
    events.close()  # type: ignore[attr-defined]  # a generator: closing cancels the stream
    assert (first.event, first.request.state) == ("snapshot", requests_pb2.REQUEST_STATE_PENDING)
    assert (second.event, second.request.state) == ("signed", requests_pb2.REQUEST_STATE_SIGNED)


def test_r15_client_without_a_certificate_from_the_ca_is_refused(
    fake: FakeSeald,
) -> None:
    stranger = make_test_pki("stranger")
    identity = ClientIdentity(target=fake.target, ca_pem=fake.pki.ca_pem,
                              cert_pem=stranger.client_cert_pem, key_pem=stranger.client_key_pem)
    with SealClient(identity, timeout_s=5) as intruder, pytest.raises(SealClientError) as caught:
        intruder.seals()
    assert caught.value.code is grpc.StatusCode.UNAVAILABLE


def test_unreachable_daemon_says_where_it_looked(pki: FakePki) -> None:
    identity = ClientIdentity(target="localhost:1", ca_pem=pki.ca_pem,
                              cert_pem=pki.client_cert_pem, key_pem=pki.client_key_pem)
    with SealClient(identity, timeout_s=5) as client, pytest.raises(SealClientError) as caught:
        client.seals()
    assert caught.value.code is grpc.StatusCode.UNAVAILABLE
    assert "Is seald running at localhost:1?" in caught.value.message


def test_key_material_is_not_in_the_identity_repr(pki: FakePki) -> None:
    identity = ClientIdentity(target="h:1", ca_pem=pki.ca_pem,
                              cert_pem=pki.client_cert_pem, key_pem=pki.client_key_pem)
    assert "PRIVATE KEY" not in repr(identity)
