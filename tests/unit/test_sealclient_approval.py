"""R06: the approver's machine recomputes what is approved; pb messages built by hand."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from sealapi.v1 import common_pb2, requests_pb2
from sealclient.approval import (
    LocalDocument,
    build_approval,
    digest_placement,
    local_approval_digest,
)
from sealclient.errors import LocalVerificationError
from seald.domain.digest import (
    DigestDocument,
    DigestPlacement,
    canonical_approval_subject,
    digest_of,
)

DOC_A = b"%PDF-1.7 contract A"
DOC_B = b"%PDF-1.7 annex B"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def honest_request() -> requests_pb2.SealRequest:
    """A request whose approval_digest is computed independently of sealclient."""
    placement = common_pb2.Placement(page=2, x_mm=150.25, y_mm=230.0, size_mm=42.0)
    request = requests_pb2.SealRequest(
        request_id="R-0007",
        seal_id="contract-01",
        requester="zhang.wei",
        reason="签署采购合同",
        category="contract",
        placement=placement,
        seal_certificate_sha256="cd" * 32,
        documents=[
            requests_pb2.DocumentInfo(index=0, name="合同.pdf", size=len(DOC_A), sha256=sha(DOC_A)),
            requests_pb2.DocumentInfo(
                index=1, name="annex.pdf", size=len(DOC_B), sha256=sha(DOC_B)
            ),
        ],
    )
    request.approval_digest = digest_of(
        canonical_approval_subject(
            request_id="R-0007",
            seal_id="contract-01",
            seal_certificate_sha256="cd" * 32,
            requester="zhang.wei",
            reason="签署采购合同",
            category="contract",
            placement=DigestPlacement(2, 150.25, 230.0, 42.0, "", False),
            documents=[
                DigestDocument("合同.pdf", sha(DOC_A), len(DOC_A)),
                DigestDocument("annex.pdf", sha(DOC_B), len(DOC_B)),
            ],
        )
    )
    return request


LOCAL = [LocalDocument(sha(DOC_A), len(DOC_A)), LocalDocument(sha(DOC_B), len(DOC_B))]


def test_r06_honest_request_gives_approval_with_local_hashes() -> None:
    request = honest_request()
    approval = build_approval(request, LOCAL, comment="看过了")
    assert approval.request_id == "R-0007"
    assert list(approval.document_sha256) == [sha(DOC_A), sha(DOC_B)]
    assert approval.approval_digest == request.approval_digest
    assert approval.comment == "看过了"


def test_r06_placement_maps_every_field() -> None:
    p = common_pb2.Placement(
        page=3, x_mm=1.5, y_mm=2.5, size_mm=40, anchor_text="盖章处", cross_page=True
    )
    assert digest_placement(p) == DigestPlacement(3, 1.5, 2.5, 40.0, "盖章处", True)


def tamper_placement(r: requests_pb2.SealRequest) -> None:
    r.placement.x_mm += 10


def tamper_seal(r: requests_pb2.SealRequest) -> None:
    r.seal_id = "official-01"


def tamper_reason(r: requests_pb2.SealRequest) -> None:
    r.reason = "任意用途"


def tamper_certificate(r: requests_pb2.SealRequest) -> None:
    r.seal_certificate_sha256 = "ee" * 32


def tamper_document_name(r: requests_pb2.SealRequest) -> None:
    r.documents[1].name = "other.pdf"


def tamper_request_id(r: requests_pb2.SealRequest) -> None:
    r.request_id = "R-0008"


@pytest.mark.parametrize(
    "tamper",
    [
        tamper_placement,
        tamper_seal,
        tamper_reason,
        tamper_certificate,
        tamper_document_name,
        tamper_request_id,
    ],
)
def test_r06_tampered_description_is_refused_locally(
    tamper: Callable[[requests_pb2.SealRequest], None],
) -> None:
    request = honest_request()
    tamper(request)  # description changed, server's digest left as it was
    with pytest.raises(LocalVerificationError) as caught:
        build_approval(request, LOCAL)
    assert caught.value.reason == "local_digest_mismatch"
    assert "do not approve" in caught.value.message


def test_r06_server_digest_matching_a_tampered_description_is_still_refused() -> None:
    """A server that recomputes its digest over other documents cannot fool the approver."""
    request = honest_request()
    other = b"%PDF-1.7 a different contract"
    request.documents[0].sha256 = sha(other)
    request.documents[0].size = len(other)
    with pytest.raises(LocalVerificationError) as caught:
        build_approval(request, LOCAL)
    assert caught.value.reason == "local_hash_mismatch"
    assert "合同.pdf" in caught.value.message


def test_r06_local_digest_uses_local_hashes_not_server_hashes() -> None:
    request = honest_request()
    request.documents[0].sha256 = "00" * 32  # what the server claims is ignored
    assert local_approval_digest(request, LOCAL) == honest_request().approval_digest


def test_r06_hash_shown_to_approver_must_match() -> None:
    with pytest.raises(LocalVerificationError) as caught:
        build_approval(honest_request(), LOCAL, expected_sha256=[sha(DOC_A), sha(b"seen")])
    assert caught.value.reason == "local_hash_mismatch"
    assert "shown to the approver" in caught.value.message
    approval = build_approval(
        honest_request(), LOCAL, expected_sha256=[sha(DOC_A).upper(), sha(DOC_B)]
    )
    assert approval.approval_digest == honest_request().approval_digest


def test_r06_document_count_must_match() -> None:
    with pytest.raises(LocalVerificationError) as caught:
        build_approval(honest_request(), LOCAL[:1])
    assert caught.value.reason == "local_document_count_mismatch"
    with pytest.raises(LocalVerificationError):
        build_approval(honest_request(), LOCAL, expected_sha256=[sha(DOC_A)])


def test_r06_size_difference_is_refused() -> None:
    local = [LocalDocument(sha(DOC_A), len(DOC_A) + 1), LOCAL[1]]
    with pytest.raises(LocalVerificationError) as caught:
        build_approval(honest_request(), local)
    assert caught.value.reason == "local_hash_mismatch"
