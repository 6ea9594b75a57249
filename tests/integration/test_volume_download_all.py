"""Issue 20: every sealed document of a request in one stream (DownloadAllDocuments).

Real seald, real mutual TLS, real SoftHSM token. `sealctl download REQ --all --out DIR`
uses the one stream and checks each file against the hash seald recorded: a sealed
file changed on the host is refused and named, nothing is written for it, and the
files before it (verified) stay. The stream answers exactly as DownloadDocument does
for callers who may not have the files (same status, same reason). The 2,000-document
case is test_volume_daemon.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from sealapi.v1 import requests_pb2
from sealclient.errors import SealClientError
from seald_testing.clients import current_pin, rpc_lines, sealctl, sealed_on_disk
from seald_testing.daemon import SealDaemon
from seald_testing.volume_flow import submit_and_approve, tiny_pdfs

DOCUMENTS = 4


def _sealed_request(daemon: SealDaemon, tmp_path: Path) -> tuple[str, list[Path]]:
    paths = tiny_pdfs(tmp_path / "in", DOCUMENTS)
    request_id = submit_and_approve(daemon, paths)  # the approvers hash the originals in one stream
    pin = current_pin(daemon, "contract")
    with daemon.client("liu.yang") as custodian:
        custodian.unlock("contract", pin)
    with daemon.client("zhang.wei") as requester:
        daemon.wait_state(requester, request_id, requests_pb2.REQUEST_STATE_SIGNED)
    return request_id, paths


def test_volume_download_all_one_stream_refuses_a_tampered_file_and_names_it(
    daemon: SealDaemon, tmp_path: Path
) -> None:
    request_id, _ = _sealed_request(daemon, tmp_path)
    good = tmp_path / "good"
    good.mkdir()
    done = sealctl(daemon, "zhang.wei", "--json", "download", request_id, "--all", "--out", str(good))
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)["documents"]
    names = [f"invoice-{i:05d}.sealed.pdf" for i in range(DOCUMENTS)]
    assert [Path(d["path"]).name for d in listed] == names
    for entry in listed:
        assert Path(entry["path"]).read_bytes() == sealed_on_disk(
            daemon, request_id, int(entry["document"].get("index", 0))
        ).read_bytes()
    assert len(rpc_lines(daemon, "DownloadAllDocuments")) == 3  # two approvers' hashing, this
    assert rpc_lines(daemon, "DownloadDocument") == []  # never one call per document

    # An intruder changes one byte of sealed document 2 on the host.
    target = sealed_on_disk(daemon, request_id, 2)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    out = tmp_path / "out"
    out.mkdir()
    refused = sealctl(daemon, "zhang.wei", "download", request_id, "--all", "--out", str(out))
    assert refused.returncode == 10, refused.stdout + refused.stderr
    assert "download_hash_mismatch" in refused.stderr
    assert "document 2 ('invoice-00002.pdf')" in refused.stderr
    written = sorted(p.name for p in out.iterdir())
    assert written == names[:2]  # verified before it; nothing (not even a .part) for it


@pytest.mark.parametrize(
    ("who", "variant", "unknown"),
    [
        ("li.na", requests_pb2.DOCUMENT_VARIANT_SEALED, False),  # an approver: not the sealed copy
        ("liu.yang", requests_pb2.DOCUMENT_VARIANT_ORIGINAL, False),  # custodian: no content
        ("zhang.wei", requests_pb2.DOCUMENT_VARIANT_SEALED, True),  # an unknown id
    ],
)
def test_volume_download_all_is_guarded_like_download_document(
    daemon: SealDaemon, tmp_path: Path, who: str, variant: requests_pb2.DocumentVariant, unknown: bool
) -> None:
    request_id, _ = _sealed_request(daemon, tmp_path)
    asked = "0" * len(request_id) if unknown else request_id
    with daemon.client(who) as client:
        with pytest.raises(SealClientError) as one:
            client.download(asked, 0, tmp_path / "one.pdf", variant)
        with pytest.raises(SealClientError) as every:
            client.download_all(asked, {0: tmp_path / "all.pdf"}, variant, DOCUMENTS)
    assert (every.value.code, every.value.reason) == (one.value.code, one.value.reason)
    if unknown:
        assert every.value.code is grpc.StatusCode.NOT_FOUND
    else:
        assert every.value.code is grpc.StatusCode.PERMISSION_DENIED
    assert not list(tmp_path.glob("*.pdf")) and not list(tmp_path.glob(".*.part"))
