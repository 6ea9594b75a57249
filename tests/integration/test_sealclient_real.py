"""SealClient (the library) against the REAL seald: process, mutual TLS, SoftHSM, SQLite.

One daemon serves the whole module; every test submits its own requests. What a
fake server could only pretend (a server serving other bytes, a changed request
description) is done here for real: the daemon's files are altered while it runs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import grpc
import pytest
from make_pdfs import valid_pdf
from pyhanko.pdf_utils import generic

from sealapi.v1 import requests_pb2, requests_pb2_grpc
from sealclient.client import CHUNK_SIZE, ClientIdentity, SealClient
from sealclient.errors import LocalVerificationError, SealClientError
from seald_testing.clients import (
    PLACEMENT,
    approval_count,
    approve_twice_and_unlock,
    current_pin,
    original_on_disk,
    rpc_lines,
    submit,
    tamper_stored_description,
    tamper_stored_original,
    unlock,
    wait_signed,
)
from seald_testing.daemon import SealDaemon, free_port, make_pdf
from seald_testing.plugin import DaemonFactory

PENDING = requests_pb2.REQUEST_STATE_PENDING
SIGNED = requests_pb2.REQUEST_STATE_SIGNED
CANCELLED = requests_pb2.REQUEST_STATE_CANCELLED


@pytest.fixture(scope="module")
def daemon(module_daemon_factory: DaemonFactory) -> SealDaemon:
    return module_daemon_factory()


def big_pdf(path: Path, size_at_least: int) -> Path:
    """A valid one-revision PDF spanning several upload chunks: it carries a big stream.
    (One revision: seald refuses unsigned incremental updates, issue 14.)"""
    filler = generic.StreamObject(stream_data=bytes(i % 251 for i in range(size_at_least)))
    path.write_bytes(valid_pdf(edit=lambda writer: writer.add_object(filler)))
    return path


def test_submit_streams_several_chunks_and_the_daemon_stores_exact_bytes(
    daemon: SealDaemon, tmp_path: Path
) -> None:
    big = big_pdf(tmp_path / "采购合同.pdf", 3 * CHUNK_SIZE + 17)
    small = make_pdf(tmp_path / "annex.pdf")
    with daemon.client("zhang.wei") as client:
        request = client.submit(
            [big, small],
            seal_id="contract",
            reason="签署采购合同",
            category="contract",
            placement=PLACEMENT,
        )
    assert [d.name for d in request.documents] == ["采购合同.pdf", "annex.pdf"]
    assert request.documents[0].sha256 == hashlib.sha256(big.read_bytes()).hexdigest()
    assert request.documents[0].size == big.stat().st_size
    # What the daemon keeps on disk is byte for byte what was sent in 4 + 1 chunks.
    assert original_on_disk(daemon, request.request_id, 0).read_bytes() == big.read_bytes()
    assert original_on_disk(daemon, request.request_id, 1).read_bytes() == small.read_bytes()


def test_submit_unreadable_file_fails_before_anything_is_sent(daemon: SealDaemon, tmp_path: Path) -> None:
    calls_before = len(rpc_lines(daemon, "SubmitRequest"))
    with daemon.client("zhang.wei") as client, pytest.raises(SealClientError) as caught:
        client.submit(
            [tmp_path / "missing.pdf"],
            seal_id="contract",
            reason="r",
            category="contract",
            placement=PLACEMENT,
        )
    assert caught.value.reason == "local_file_unreadable"
    assert str(tmp_path / "missing.pdf") in caught.value.message
    assert len(rpc_lines(daemon, "SubmitRequest")) == calls_before


def test_r05_r06_two_local_approvals_then_verified_download(daemon: SealDaemon, tmp_path: Path) -> None:
    request = submit(daemon, tmp_path)
    with daemon.client("li.na") as li:
        after_one = li.approve(request.request_id, "同意")
    assert after_one.state == PENDING
    with daemon.client("wang.fang") as wang:
        wang.approve(request.request_id)
    unlock(daemon)
    done = wait_signed(daemon, request.request_id)
    approvals = {a.approver: a for a in done.approvals}
    assert sorted(approvals) == ["li.na", "wang.fang"]
    assert {a.approval_digest for a in done.approvals} == {request.approval_digest}
    out = tmp_path / "out" / "a.sealed.pdf"
    out.parent.mkdir()
    with daemon.client("zhang.wei") as client:
        info = client.download(request.request_id, 0, out)
    assert info.sealed_sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    assert out.read_bytes().startswith(b"%PDF") and b"/ByteRange" in out.read_bytes()
    assert list(out.parent.iterdir()) == [out]  # no .part file left behind


def test_r06_approve_refuses_when_the_stored_original_was_swapped(daemon: SealDaemon, tmp_path: Path) -> None:
    request = submit(daemon, tmp_path)
    tamper_stored_original(daemon, request.request_id)  # the daemon still announces the old hash
    with daemon.client("li.na") as li, pytest.raises(LocalVerificationError) as caught:
        li.approve(request.request_id)
    assert caught.value.reason == "download_hash_mismatch"
    assert request.documents[0].sha256 in caught.value.message
    assert approval_count(daemon, request.request_id) == 0  # nothing was approved
    approve_calls = rpc_lines(daemon, "ApproveRequest")
    assert all(line.get("request_id") != request.request_id for line in approve_calls)


def test_r06_approve_refuses_when_the_stored_description_was_changed(
    daemon: SealDaemon, tmp_path: Path
) -> None:
    request = submit(daemon, tmp_path)
    tamper_stored_description(daemon, request.request_id, reason="另作他用")
    with daemon.client("li.na") as li:
        assert li.get(request.request_id).reason == "另作他用"  # the daemon serves the edit
        with pytest.raises(LocalVerificationError) as caught:
            li.approve(request.request_id)
    assert caught.value.reason == "local_digest_mismatch"
    assert "do not approve" in caught.value.message
    assert approval_count(daemon, request.request_id) == 0


def test_r06_approve_refuses_a_hash_other_than_the_one_shown(daemon: SealDaemon, tmp_path: Path) -> None:
    request = submit(daemon, tmp_path)
    with daemon.client("li.na") as li, pytest.raises(LocalVerificationError) as caught:
        li.approve(request.request_id, expected_sha256=["0" * 64])
    assert caught.value.reason == "local_hash_mismatch"
    assert approval_count(daemon, request.request_id) == 0
    with daemon.client("li.na") as li:
        shown = [request.documents[0].sha256.upper()]
        assert len(li.approve(request.request_id, expected_sha256=shown).approvals) == 1


def test_download_that_does_not_match_the_announced_hash_writes_nothing(
    daemon: SealDaemon, tmp_path: Path
) -> None:
    request = submit(daemon, tmp_path)
    tamper_stored_original(daemon, request.request_id)
    out_dir = tmp_path / "dl"
    out_dir.mkdir()
    with daemon.client("zhang.wei") as client, pytest.raises(LocalVerificationError) as caught:
        client.download(request.request_id, 0, out_dir / "a.pdf", requests_pb2.DOCUMENT_VARIANT_ORIGINAL)
    assert caught.value.reason == "download_hash_mismatch"
    assert list(out_dir.iterdir()) == []


def test_download_of_a_sealed_file_changed_on_disk_is_refused(daemon: SealDaemon, tmp_path: Path) -> None:
    request = submit(daemon, tmp_path)
    approve_twice_and_unlock(daemon, request.request_id)
    wait_signed(daemon, request.request_id)
    sealed = original_on_disk(daemon, request.request_id).with_suffix(".sealed.pdf")
    sealed.write_bytes(sealed.read_bytes() + b"%appended after sealing\n")
    out = tmp_path / "sealed.pdf"
    with daemon.client("zhang.wei") as client, pytest.raises(LocalVerificationError) as caught:
        client.download(request.request_id, 0, out)
    assert caught.value.reason == "download_hash_mismatch"
    assert not out.exists()


def test_daemon_error_carries_code_reason_and_message(daemon: SealDaemon, tmp_path: Path) -> None:
    with daemon.client("zhang.wei") as client:
        with pytest.raises(SealClientError) as missing:
            client.get("R-9999")
        assert missing.value.code is grpc.StatusCode.NOT_FOUND
        assert missing.value.reason == "request_not_found"
        assert "R-9999" in missing.value.message
        pending = submit(daemon, tmp_path)
        with pytest.raises(SealClientError) as not_signed:
            client.download(pending.request_id, 0, tmp_path / "never.pdf")
        assert not_signed.value.code is grpc.StatusCode.FAILED_PRECONDITION
        assert not_signed.value.reason == "not_signed"
    assert not (tmp_path / "never.pdf").exists()


def test_r07_pin_reaches_the_token_but_never_an_error_or_the_log(daemon: SealDaemon) -> None:
    wrong = "97531086"
    right = current_pin(daemon, "official")
    with daemon.client("liu.yang") as custodian:
        with pytest.raises(SealClientError) as caught:
            custodian.unlock("official", wrong)
        assert caught.value.reason == "pin_incorrect"
        assert caught.value.code is grpc.StatusCode.PERMISSION_DENIED
        assert wrong not in str(caught.value) and wrong not in repr(caught.value.args)
        status = custodian.unlock("official", right)
        assert status.unlocked and status.seal_id == "official"
        assert custodian.lock("official").unlocked is False
    log = daemon.log()
    assert wrong not in log and right not in log


def test_r04_unlock_by_a_non_custodian_is_permission_denied(daemon: SealDaemon) -> None:
    with daemon.client("li.na") as approver, pytest.raises(SealClientError) as caught:
        approver.unlock("official", daemon.fixtures.seals["official"].user_pin)
    assert caught.value.code is grpc.StatusCode.PERMISSION_DENIED
    assert caught.value.reason == "not_a_custodian"


def test_list_follows_page_tokens_across_pages(daemon: SealDaemon, tmp_path: Path) -> None:
    ids = [submit(daemon, tmp_path, name=f"d{i}.pdf").request_id for i in range(5)]
    with daemon.client("zhang.wei") as client:
        whole = [r.request_id for r in client.list(page_size=1000)]
        paged = [r.request_id for r in client.list(page_size=2)]
        assert paged == whole  # same requests, same order, none lost at page edges
        assert [i for i in paged if i in ids] == ids
        client.cancel(ids[0])
        pending = [r.request_id for r in client.list(states=[PENDING], page_size=2)]
    assert ids[0] not in pending and set(ids[1:]) <= set(pending)
    # The daemon really paginated: one page of 2 carries a next_page_token.
    who = daemon.fixtures.principals["zhang.wei"]
    credentials = grpc.ssl_channel_credentials(
        daemon.fixtures.tls_ca.read_bytes(), who.key.read_bytes(), who.cert.read_bytes()
    )
    with grpc.secure_channel(daemon.target, credentials) as channel:
        stub = requests_pb2_grpc.SealRequestServiceStub(channel)
        first = stub.ListRequests(requests_pb2.ListRequestsRequest(page_size=2), timeout=10)
    assert len(first.requests) == 2 and first.next_page_token


def test_watch_yields_a_snapshot_then_the_change(daemon: SealDaemon, tmp_path: Path) -> None:
    request = submit(daemon, tmp_path)
    with daemon.client("zhang.wei") as watcher, daemon.client("zhang.wei") as actor:
        events = watcher.watch(request_id=request.request_id)
        first = next(events)
        actor.cancel(request.request_id, "不再需要")
        second = next(events)
        events.close()  # type: ignore[attr-defined]  # a generator: closing cancels the stream
    assert (first.event, first.request.state) == ("snapshot", PENDING)
    assert second.request.request_id == request.request_id
    assert second.request.state == CANCELLED


def test_r04_r15_certificate_from_another_ca_is_refused_in_the_handshake(
    daemon: SealDaemon,
) -> None:
    with daemon.client_for(daemon.fixtures.foreign) as intruder, pytest.raises(SealClientError) as caught:
        intruder.seals()
    assert caught.value.code is grpc.StatusCode.UNAVAILABLE


def test_r04_unlisted_certificate_is_unauthenticated_with_its_fingerprint(
    daemon: SealDaemon,
) -> None:
    stranger = daemon.fixtures.unlisted
    with daemon.client_for(stranger) as client, pytest.raises(SealClientError) as caught:
        client.seals()
    assert caught.value.code is grpc.StatusCode.UNAUTHENTICATED
    assert caught.value.reason == "certificate_not_listed"
    assert stranger.fingerprint_sha256 in caught.value.message.lower()


def test_unreachable_daemon_says_where_it_looked(daemon: SealDaemon) -> None:
    target = f"127.0.0.1:{free_port()}"  # nothing listens there
    who = daemon.fixtures.principals["zhang.wei"]
    identity = ClientIdentity(
        target=target,
        ca_pem=daemon.fixtures.tls_ca.read_bytes(),
        cert_pem=who.cert.read_bytes(),
        key_pem=who.key.read_bytes(),
    )
    with SealClient(identity, timeout_s=5) as client, pytest.raises(SealClientError) as caught:
        client.seals()
    assert caught.value.code is grpc.StatusCode.UNAVAILABLE
    assert f"Is seald running at {target}?" in caught.value.message
