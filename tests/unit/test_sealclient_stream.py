"""SealClient's pure parts: the upload stream's shape, download checks, identity repr.

No server: the same behaviour over the wire is proven against the real seald in
tests/integration/test_sealclient_real.py.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from sealapi.v1 import requests_pb2
from sealclient.approval import LocalDocument
from sealclient.client import (
    CHUNK_SIZE,
    ClientIdentity,
    _check_download,
    expected_hash,
    file_digest,
    submit_messages,
)
from sealclient.errors import LocalInputError, LocalVerificationError


def test_upload_stream_is_header_then_start_and_256k_chunks_per_document(tmp_path: Path) -> None:
    big = tmp_path / "采购合同.pdf"
    big.write_bytes(bytes(i % 251 for i in range(3 * CHUNK_SIZE + 17)))
    small = tmp_path / "annex.pdf"
    small.write_bytes(b"%PDF-1.7 annex")
    header = requests_pb2.SubmitRequestHeader(seal_id="contract", reason="r", category="c")
    messages = list(submit_messages(header, [(big, file_digest(big)), (small, file_digest(small))]))
    kinds = [m.WhichOneof("payload") for m in messages]
    assert kinds == ["header", "document_start", *["chunk"] * 4, "document_start", "chunk"]
    assert messages[0].header == header
    start = messages[1].document_start
    assert (start.name, start.size) == ("采购合同.pdf", big.stat().st_size)
    assert start.sha256 == hashlib.sha256(big.read_bytes()).hexdigest()
    chunk_sizes = [len(m.chunk) for m in messages if m.WhichOneof("payload") == "chunk"]
    assert chunk_sizes == [CHUNK_SIZE, CHUNK_SIZE, CHUNK_SIZE, 17, len(b"%PDF-1.7 annex")]
    assert b"".join(m.chunk for m in messages[2:6]) == big.read_bytes()


def test_unreadable_file_is_a_local_input_error(tmp_path: Path) -> None:
    with pytest.raises(LocalInputError) as caught:
        file_digest(tmp_path / "missing.pdf")
    assert caught.value.reason == "local_file_unreadable"


def test_download_is_checked_against_the_hash_of_the_variant_asked_for() -> None:
    info = requests_pb2.DocumentInfo(sha256="AA" * 32, size=3, sealed_sha256="bb" * 32, sealed_size=5)
    assert expected_hash(info, requests_pb2.DOCUMENT_VARIANT_ORIGINAL) == ("aa" * 32, 3)
    assert expected_hash(info, requests_pb2.DOCUMENT_VARIANT_SEALED) == ("bb" * 32, 5)
    _check_download("R", 0, requests_pb2.DOCUMENT_VARIANT_SEALED, info, LocalDocument("bb" * 32, 5))
    with pytest.raises(LocalVerificationError) as wrong_size:
        _check_download("R", 0, requests_pb2.DOCUMENT_VARIANT_SEALED, info, LocalDocument("bb" * 32, 6))
    assert wrong_size.value.reason == "download_hash_mismatch"


def test_download_without_an_announced_hash_is_refused() -> None:
    with pytest.raises(LocalVerificationError) as caught:
        _check_download(
            "R",
            0,
            requests_pb2.DOCUMENT_VARIANT_SEALED,
            requests_pb2.DocumentInfo(),
            LocalDocument("cc" * 32, 1),
        )
    assert caught.value.reason == "download_hash_missing"


def test_key_material_is_not_in_the_identity_repr() -> None:
    key = b"-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMG\n-----END PRIVATE KEY-----\n"
    identity = ClientIdentity(target="h:1", ca_pem=b"ca", cert_pem=b"cert", key_pem=key)
    assert "PRIVATE KEY" not in repr(identity) and "MIGHAgEAMBMG" not in repr(identity)
    assert "h:1" in repr(identity)
