"""Local recomputation of what an approver approves (SEAL-RULES R06).

The approver approves what THEIR machine hashed, not what the server claims.
These pure functions compare the request the daemon describes with the hashes
computed locally from the downloaded originals, and build the approval message
only if everything agrees.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sealapi.v1 import common_pb2, requests_pb2
from sealclient.errors import LocalVerificationError
from seald.domain.approval_statement import (
    ApprovalStatement,
    certificate_sha256,
    sign_statement,
    statement_time,
)
from seald.domain.chains import parse_money
from seald.domain.digest import (
    DigestDocument,
    DigestPlacement,
    DigestSeal,
    canonical_approval_subject,
    digest_of,
)
from seald.domain.marks import CrossPage, Mark, PageSet, PageSetKind


@dataclass(frozen=True)
class LocalDocument:
    """A document as this machine measured it after downloading the original."""

    sha256: str
    size: int


def digest_placement(placement: common_pb2.Placement) -> DigestPlacement:
    return DigestPlacement(
        page=placement.page,
        x_mm=placement.x_mm,
        y_mm=placement.y_mm,
        size_mm=placement.size_mm,
        anchor_text=placement.anchor_text,
        cross_page=placement.cross_page,
    )


def mark_from_pb(pb: common_pb2.Mark) -> Mark:
    """A job's mark as the daemon described it (issue 16), for the digest and the display."""
    cross = None
    if pb.HasField("cross_page"):
        cross = CrossPage(PageSet.parse(pb.cross_page.pages or "all"), pb.cross_page.group_size)
    return Mark(
        seal_id=pb.seal_id,
        pages=PageSet(PageSetKind.ALL) if cross is not None and not pb.pages else PageSet.parse(pb.pages),
        x_mm=pb.x_mm,
        y_mm=pb.y_mm,
        size_mm=pb.size_mm,
        anchor_text=pb.anchor_text,
        anchor_max_matches=pb.anchor_max_matches or 1,
        cross_page=cross,
    )


def request_marks(request: requests_pb2.SealRequest) -> tuple[Mark, ...] | None:
    """A job's marks (None for a single-placement request, whose digest has none)."""
    if not request.job_seals:
        return None
    return tuple(mark_from_pb(m) for m in request.marks)


def request_seals(request: requests_pb2.SealRequest) -> tuple[DigestSeal, ...]:
    return tuple(
        DigestSeal(s.seal_id, s.certificate_sha256, s.impression_sha256) for s in request.job_seals
    )


def digest_documents(
    request: requests_pb2.SealRequest, local: Sequence[LocalDocument]
) -> tuple[DigestDocument, ...]:
    """The documents with LOCAL hashes (and a manifest document's own marks)."""
    return tuple(
        DigestDocument(
            name=info.name,
            sha256=mine.sha256,
            size=mine.size,
            marks=tuple(mark_from_pb(m) for m in info.marks) if info.marks else None,
        )
        for info, mine in zip(request.documents, local, strict=True)
    )


def check_documents(
    request: requests_pb2.SealRequest,
    local: Sequence[LocalDocument],
    expected_sha256: Sequence[str] | None = None,
) -> None:
    """Refuse if the local hashes differ from the request's or from what was shown."""
    if len(local) != len(request.documents):
        raise LocalVerificationError(
            "local_document_count_mismatch",
            f"request {request.request_id} lists {len(request.documents)} documents but "
            f"{len(local)} were downloaded; do not approve, report it to the administrator",
        )
    if expected_sha256 is not None and len(expected_sha256) != len(local):
        raise LocalVerificationError(
            "local_document_count_mismatch",
            f"{len(expected_sha256)} expected hashes were given for request "
            f"{request.request_id} which has {len(local)} documents; pass one per document",
        )
    for position, (info, mine) in enumerate(zip(request.documents, local, strict=True)):
        if info.sha256.lower() != mine.sha256 or info.size != mine.size:
            raise LocalVerificationError(
                "local_hash_mismatch",
                f"document {position} ({info.name!r}) of request {request.request_id}: the "
                f"server describes sha256 {info.sha256} ({info.size} bytes) but the downloaded "
                f"original hashes to {mine.sha256} ({mine.size} bytes); do not approve, "
                "report it to the administrator",
            )
        if expected_sha256 is not None and expected_sha256[position].lower() != mine.sha256:
            raise LocalVerificationError(
                "local_hash_mismatch",
                f"document {position} ({info.name!r}) of request {request.request_id} hashes "
                f"to {mine.sha256}, not to the {expected_sha256[position]} that was shown to "
                "the approver; review the document again before approving",
            )


def local_approval_digest(request: requests_pb2.SealRequest, local: Sequence[LocalDocument]) -> str:
    """The approval digest recomputed from the request fields and LOCAL hashes."""
    subject = canonical_approval_subject(
        request_id=request.request_id,
        seal_id=request.seal_id,
        seal_certificate_sha256=request.seal_certificate_sha256,
        requester=request.requester,
        reason=request.reason,
        category=request.category,
        placement=digest_placement(request.placement),
        documents=digest_documents(request, local),
        amount=request_amount(request),
        seal_impression_sha256=request.seal_impression_sha256,
        marks=request_marks(request),
        seals=request_seals(request),
    )
    return digest_of(subject)


def build_approval(
    request: requests_pb2.SealRequest,
    local: Sequence[LocalDocument],
    *,
    comment: str = "",
    expected_sha256: Sequence[str] | None = None,
    signer: ApprovalSigner | None = None,
    now: datetime | None = None,
    on_behalf_of: str = "",
) -> requests_pb2.ApproveRequestRequest:
    """The approval to send, or LocalVerificationError if anything disagrees.

    With ``signer`` (what SealClient always passes) the approval carries the signed
    statement the daemon requires (issue 9); without it the daemon refuses it."""
    check_documents(request, local, expected_sha256)
    digest = local_approval_digest(request, local)
    if digest != request.approval_digest.lower():
        raise LocalVerificationError(
            "local_digest_mismatch",
            f"the approval digest of request {request.request_id} computed on this machine "
            f"({digest}) differs from the server's ({request.approval_digest}): the request's "
            "description (seal, placement, reason, documents) is not what it claims; do not "
            "approve, report it to the administrator",
        )
    message = requests_pb2.ApproveRequestRequest(
        request_id=request.request_id,
        document_sha256=[mine.sha256 for mine in local],
        approval_digest=digest,
        comment=comment,
        on_behalf_of=on_behalf_of,
    )
    if signer is not None:
        statement = approval_statement(
            request,
            local,
            digest=digest,
            comment=comment,
            signer_certificate_sha256=signer.certificate_sha256,
            now=now or datetime.now(UTC),
            on_behalf_of=on_behalf_of,
        )
        message.statement = statement.canonical_bytes()
        message.statement_signature = signer.sign(message.statement)
    return message


def approval_statement(
    request: requests_pb2.SealRequest,
    local: Sequence[LocalDocument],
    *,
    digest: str,
    comment: str,
    signer_certificate_sha256: str,
    now: datetime,
    on_behalf_of: str = "",
) -> ApprovalStatement:
    """The statement an approver signs: the request as THIS machine checked it."""
    return ApprovalStatement(
        request_id=request.request_id,
        approval_digest=digest,
        seal_id=request.seal_id,
        seal_certificate_sha256=request.seal_certificate_sha256,
        requester=request.requester,
        reason=request.reason,
        category=request.category,
        placement=digest_placement(request.placement),
        documents=digest_documents(request, local),
        marks=request_marks(request),
        seals=request_seals(request),
        signer_certificate_sha256=signer_certificate_sha256,
        signed_at=statement_time(now),
        comment=comment,
        amount=request_amount(request),
        on_behalf_of=on_behalf_of,
        seal_impression_sha256=request.seal_impression_sha256,
    )


def request_amount(request: requests_pb2.SealRequest) -> tuple[str, str] | None:
    """Issue 17: the declared amount as the digest binds it (None if none declared)."""
    if not request.amount:
        return None
    return (parse_money(request.amount, request.amount_currency).canonical(), request.amount_currency)


class ApprovalSigner:
    """The approver's own mutual-TLS key and certificate (the ones the client connects with)."""

    def __init__(self, key_pem: bytes, cert_pem: bytes) -> None:
        try:
            self._key = serialization.load_pem_private_key(key_pem, password=None)
            certificate = x509.load_pem_x509_certificate(cert_pem)
        except (ValueError, TypeError) as ex:
            raise LocalVerificationError(
                "signing_key_unusable",
                f"the client key or certificate cannot sign approvals ({type(ex).__name__}); "
                "check the key and cert settings (unencrypted PEM)",
            ) from ex
        self.certificate_der = certificate.public_bytes(serialization.Encoding.DER)
        self.certificate_sha256 = certificate_sha256(self.certificate_der)

    def sign(self, data: bytes) -> bytes:
        return sign_statement(self._key, data)
