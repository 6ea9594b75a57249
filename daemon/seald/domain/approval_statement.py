"""Signed approval statements (SEAL-RULES R05, R06, R14; issue 9).

An approval is a signature, not a database row. The approver's client builds the
statement below and signs it with the private key of its own mutual-TLS identity;
the daemon verifies the signature against the certificate of the connection and
keeps statement, signature and certificate, so anyone can later check who approved
what without trusting the appliance's database.

Statement (version ``seald.approval-statement/1``): canonical JSON exactly as the
approval digest (``domain/digest.py``): keys sorted, no insignificant white space,
``ensure_ascii=False``, UTF-8, lengths in integer hundredths of a millimetre. Fields:

- ``version``, ``decision`` (``"approve"``), ``request_id``, ``approval_digest``
- everything the digest covers, in the digest's own shape: ``seal_id``,
  ``seal_certificate_sha256``, ``requester``, ``reason``, ``category``,
  ``placement``, ``documents`` (index, name, sha256, size)
- ``signer_certificate_sha256``: SHA-256 of the DER certificate whose key signs
- ``signed_at``: the approver's clock, RFC 3339 UTC to the second
- ``comment``
- issue 17, present only when set (so older statements keep their exact bytes):
  ``amount`` (the declared amount, in the digest's shape) and ``on_behalf_of`` (a
  delegate approving in the place of this approver, R05 "or delegate")
- issue 16, present only when set: ``seal_impression_sha256`` (the seal's registered
  impression, in the digest's shape)

Because the digest is recomputed from the statement's own fields, a statement is
self-consistent or rejected; comparing its digest with the request's then proves
it speaks about exactly that request.

Signature by key type of the certificate (never chosen by the signer): EC key ->
ECDSA with SHA-256 (DER-encoded r, s); RSA -> RSASSA-PSS, SHA-256, MGF1-SHA-256, salt
length 32; Ed25519 -> Ed25519. Pure: no I/O (cryptography only computes).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from seald.domain.chains import chain_to_data
from seald.domain.digest import (
    DigestDocument,
    DigestPlacement,
    DigestSeal,
    canonical_approval_subject,
    digest_of,
)
from seald.domain.errors import InvalidInput, PermissionDenied
from seald.domain.marks import Mark, mark_from_canonical
from seald.domain.model import Approval, SealRequest
from seald.domain.policy import (
    AnyPolicy,
    JobPolicy,
    MinimumDistinctApprovers,
    OneFromEachGroup,
)

STATEMENT_VERSION: Final = "seald.approval-statement/1"
DECISION_APPROVE: Final = "approve"
# How far the approver's clock may be from the daemon's.
MAX_CLOCK_SKEW: Final = timedelta(minutes=10)
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


class StatementError(InvalidInput):
    default_reason = "statement_invalid"


@dataclass(frozen=True)
class ApprovalStatement:
    request_id: str
    approval_digest: str
    seal_id: str
    seal_certificate_sha256: str
    requester: str
    reason: str
    category: str
    placement: DigestPlacement
    documents: tuple[DigestDocument, ...]
    signer_certificate_sha256: str
    signed_at: str
    comment: str = ""
    decision: str = DECISION_APPROVE
    amount: tuple[str, str] | None = None  # (canonical value, currency)
    on_behalf_of: str = ""
    seal_impression_sha256: str = ""
    # Issue 16, a sealing job: its marks and seals, in the digest's shape (None/() else).
    marks: tuple[Mark, ...] | None = None
    seals: tuple[DigestSeal, ...] = ()

    def canonical_bytes(self) -> bytes:
        subject = json.loads(self.digest_subject())
        subject.pop("version")
        subject.update(
            {
                "version": STATEMENT_VERSION,
                "decision": self.decision,
                "approval_digest": self.approval_digest,
                "signer_certificate_sha256": self.signer_certificate_sha256,
                "signed_at": self.signed_at,
                "comment": self.comment,
            }
        )
        if self.on_behalf_of:
            subject["on_behalf_of"] = self.on_behalf_of
        return json.dumps(subject, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
            "utf-8"
        )

    def digest_subject(self) -> bytes:
        return canonical_approval_subject(
            request_id=self.request_id,
            seal_id=self.seal_id,
            seal_certificate_sha256=self.seal_certificate_sha256,
            requester=self.requester,
            reason=self.reason,
            category=self.category,
            placement=self.placement,
            documents=self.documents,
            amount=self.amount,
            seal_impression_sha256=self.seal_impression_sha256,
            marks=self.marks,
            seals=self.seals,
        )

    def recomputed_digest(self) -> str:
        return digest_of(self.digest_subject())

    @property
    def document_sha256(self) -> list[str]:
        return [d.sha256 for d in self.documents]


def statement_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(raw: dict[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str):
        raise StatementError(f"the approval statement's {key!r} is missing or not text")
    return value


def _int(raw: dict[str, Any], key: str) -> int:
    value = raw.get(key)
    if type(value) is not int:
        raise StatementError(f"the approval statement's {key!r} is missing or not an integer")
    return value


def parse_statement(data: bytes) -> ApprovalStatement:
    """Parse and require canonical form: re-encoding must give the same bytes."""
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as ex:
        raise StatementError(
            "the approval statement is not UTF-8 JSON; approve with sealctl or SealClient, "
            "which build it"
        ) from ex
    if not isinstance(raw, dict):
        raise StatementError("the approval statement is not a JSON object")
    if raw.get("version") != STATEMENT_VERSION:
        raise StatementError(
            f"approval statement version {raw.get('version')!r} is not {STATEMENT_VERSION!r}; "
            "update the client"
        )
    statement = statement_fields(raw, signer_certificate_sha256=_text(raw, "signer_certificate_sha256"))
    if statement.canonical_bytes() != data:
        raise StatementError(
            "the approval statement is not in canonical form (sorted keys, no spaces, UTF-8) or "
            "carries unknown fields; the signature must be over the canonical bytes"
        )
    if not _SHA256_HEX.fullmatch(statement.signer_certificate_sha256) or not _TIME.fullmatch(
        statement.signed_at
    ):
        raise StatementError("the approval statement's certificate hash or time is malformed")
    return statement


def statement_fields(raw: dict[str, Any], *, signer_certificate_sha256: str) -> ApprovalStatement:
    """The fields every statement version shares (the WebAuthn statement reuses them)."""
    placement_raw = raw.get("placement")
    documents_raw = raw.get("documents")
    if not isinstance(placement_raw, dict) or not isinstance(documents_raw, list):
        raise StatementError("the approval statement lacks placement or documents")
    if not isinstance(placement_raw.get("cross_page"), bool):
        raise StatementError("the approval statement's placement.cross_page is not a boolean")
    documents = []
    for position, d in enumerate(documents_raw):
        if not isinstance(d, dict) or d.get("index") != position:
            raise StatementError(f"the approval statement's document {position} is malformed")
        documents.append(
            DigestDocument(
                name=_text(d, "name"),
                sha256=_text(d, "sha256"),
                size=_int(d, "size"),
                marks=_marks(d["marks"], f"document {position}'s marks") if "marks" in d else None,
            )
        )
    amount: tuple[str, str] | None = None
    if "amount" in raw:
        amount_raw = raw["amount"]
        if not isinstance(amount_raw, dict):
            raise StatementError("the approval statement's amount is not an object")
        amount = (_text(amount_raw, "value"), _text(amount_raw, "currency"))
    marks = _marks(raw["marks"], "marks") if "marks" in raw else None
    seals_raw = raw.get("seals", [])
    if not isinstance(seals_raw, list) or not all(isinstance(x, dict) for x in seals_raw):
        raise StatementError("the approval statement's seals are malformed")
    return ApprovalStatement(
        amount=amount,
        seal_impression_sha256=(
            _text(raw, "seal_impression_sha256") if "seal_impression_sha256" in raw else ""
        ),
        marks=marks,
        seals=tuple(
            DigestSeal(_text(x, "seal_id"), _text(x, "certificate_sha256"), _text(x, "impression_sha256"))
            for x in seals_raw
        ),
        on_behalf_of=_text(raw, "on_behalf_of") if "on_behalf_of" in raw else "",
        request_id=_text(raw, "request_id"),
        approval_digest=_text(raw, "approval_digest"),
        seal_id=_text(raw, "seal_id"),
        seal_certificate_sha256=_text(raw, "seal_certificate_sha256"),
        requester=_text(raw, "requester"),
        reason=_text(raw, "reason"),
        category=_text(raw, "category"),
        placement=DigestPlacement(
            page=_int(placement_raw, "page"),
            x_mm=_int(placement_raw, "x_hundredth_mm") / 100,
            y_mm=_int(placement_raw, "y_hundredth_mm") / 100,
            size_mm=_int(placement_raw, "size_hundredth_mm") / 100,
            anchor_text=_text(placement_raw, "anchor_text"),
            cross_page=placement_raw["cross_page"],
        ),
        documents=tuple(documents),
        signer_certificate_sha256=signer_certificate_sha256,
        signed_at=_text(raw, "signed_at"),
        comment=_text(raw, "comment"),
        decision=_text(raw, "decision"),
    )


def _marks(raw: object, what: str) -> tuple[Mark, ...]:
    """A job's marks in a statement (issue 16), in the digest's canonical shape."""
    if not isinstance(raw, list):
        raise StatementError(f"the approval statement's {what} are not a list")
    try:
        return tuple(mark_from_canonical(m, what=f"{what}[{i}]") for i, m in enumerate(raw))
    except InvalidInput as ex:
        raise StatementError(f"the approval statement's {ex.message}") from None


def statement_problems(
    statement: ApprovalStatement,
    *,
    request_id: str,
    approval_digest: str,
    document_sha256: Sequence[str],
    on_behalf_of: str = "",
) -> list[str]:
    """What in the statement disagrees with the request it claims to approve ([] = none)."""
    problems = []
    if statement.on_behalf_of != on_behalf_of:
        problems.append(
            f"it approves on behalf of {statement.on_behalf_of or 'nobody'}, not "
            f"{on_behalf_of or 'the signer themself'}"
        )
    if statement.decision != DECISION_APPROVE:
        problems.append(f"decision is {statement.decision!r}, not 'approve'")
    if statement.recomputed_digest() != statement.approval_digest:
        problems.append("its fields do not hash to the approval digest it names (edited statement)")
    if statement.request_id != request_id:
        problems.append(f"it names request {statement.request_id}, not {request_id}")
    if statement.approval_digest != approval_digest:
        problems.append("its approval digest is not the request's")
    if statement.document_sha256 != list(document_sha256):
        problems.append("its document SHA-256s are not the request's")
    return problems


def check_statement(
    statement: ApprovalStatement,
    *,
    request_id: str,
    approval_digest: str,
    document_sha256: Sequence[str],
    comment: str,
    connection_certificate_sha256: str,
    now: datetime,
    on_behalf_of: str = "",
) -> None:
    """The daemon's content checks, after the signature verified."""
    if statement.signer_certificate_sha256 != connection_certificate_sha256:
        raise PermissionDenied(
            "the approval statement names another certificate than the one you are connected "
            "with; sign with the key of this connection's certificate",
            reason="statement_certificate_mismatch",
        )
    problems = statement_problems(
        statement,
        request_id=request_id,
        approval_digest=approval_digest,
        document_sha256=document_sha256,
        on_behalf_of=on_behalf_of,
    )
    if statement.comment != comment:
        problems.append("its comment is not the one sent")
    if problems:
        raise InvalidInput(
            "the signed approval statement does not match what is approved: "
            + "; ".join(problems)
            + "; refresh the request and approve again with sealctl",
            reason="statement_mismatch",
        )
    signed_at = datetime.strptime(statement.signed_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    if abs(signed_at - now) > MAX_CLOCK_SKEW:
        raise InvalidInput(
            f"the approval statement is dated {statement.signed_at}, more than "
            f"{int(MAX_CLOCK_SKEW.total_seconds() // 60)} minutes from the seal host's clock; "
            "correct this computer's clock and approve again",
            reason="statement_time_skew",
        )


def signature_algorithm(certificate: x509.Certificate) -> str:
    key = certificate.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "ecdsa-sha256"
    if isinstance(key, rsa.RSAPublicKey):
        return "rsa-pss-sha256"
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "ed25519"
    return f"unsupported ({type(key).__name__})"


_PSS: Final = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


def sign_statement(private_key: PrivateKeyTypes, data: bytes) -> bytes:
    """Sign canonical statement bytes with an approver's key (client side)."""
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return private_key.sign(data, ec.ECDSA(hashes.SHA256()))
    if isinstance(private_key, rsa.RSAPrivateKey):
        return private_key.sign(data, _PSS, hashes.SHA256())
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return private_key.sign(data)
    raise StatementError(
        f"a {type(private_key).__name__} key cannot sign approvals; use an EC, RSA or Ed25519 key",
        reason="unsupported_key_type",
    )


def signature_verifies(certificate: x509.Certificate, data: bytes, signature: bytes) -> bool:
    """True only if the key in ``certificate`` made ``signature`` over ``data``."""
    key = certificate.public_key()
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, _PSS, hashes.SHA256())
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_statement_signature(
    statement: bytes, signature: bytes, certificate_der: bytes
) -> ApprovalStatement:
    """The daemon's first check: signed by the connection's key, then parsed."""
    if not statement or not signature:
        raise InvalidInput(
            "unsigned approval: approvals must carry a statement signed with your key; "
            "approve with sealctl approve or SealClient.approve, which sign it",
            reason="approval_unsigned",
        )
    certificate = x509.load_der_x509_certificate(certificate_der)
    if not signature_verifies(certificate, statement, signature):
        raise PermissionDenied(
            "the approval statement's signature does not verify with the certificate of this "
            "connection (signed by another key, or altered); approve with your own key",
            reason="approval_signature_invalid",
        )
    return parse_statement(statement)


def certificate_sha256(certificate_der: bytes) -> str:
    return hashlib.sha256(certificate_der).hexdigest()


def policy_summary(policy: AnyPolicy) -> dict[str, Any]:
    """The approval policy as data, recorded in the ledger with each signed approval.

    ``required``: distinct principals needed (the requester never counts);
    ``eligible``: who may count (sorted; None = any approver of the seal);
    ``groups``: one approval needed from each [name, members] (empty = no such rule).
    """
    if isinstance(policy, JobPolicy):  # issue 16: every seal's own policy, by seal
        return {"seals": {seal_id: policy_summary(p) for seal_id, p in policy.policies}}
    required = 0
    eligible: list[str] | None = None
    groups: list[list[Any]] = []
    for rule in policy.rules:
        if isinstance(rule, MinimumDistinctApprovers):
            required = max(required, rule.count)
            if rule.eligible is not None:
                eligible = sorted(rule.eligible)
        elif isinstance(rule, OneFromEachGroup):
            groups = [[name, sorted(members)] for name, members in rule.groups]
    summary: dict[str, Any] = {"required": required, "eligible": eligible, "groups": groups}
    if policy.chain is not None:  # issue 17: recorded only for chains (older records unchanged)
        summary["chain"] = chain_to_data(policy.chain)
    return summary


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class SignedApproval:
    """A statement whose signature verified against the connection's certificate."""

    statement: ApprovalStatement
    statement_bytes: bytes
    signature: bytes
    certificate_der: bytes

    def check(
        self,
        request: SealRequest,
        *,
        document_sha256: Sequence[str],
        approval_digest: str,
        comment: str,
        connection_certificate_sha256: str,
        now: datetime,
        on_behalf_of: str = "",
    ) -> None:
        # lifecycle.approve already compared the message's hashes and digest with the
        # request; here the signed statement must say the same.
        check_statement(
            self.statement,
            request_id=request.request_id,
            approval_digest=request.approval_digest,
            document_sha256=document_sha256,
            comment=comment,
            connection_certificate_sha256=connection_certificate_sha256,
            now=now,
            on_behalf_of=on_behalf_of,
        )
        if approval_digest != self.statement.approval_digest:
            raise InvalidInput(
                "the approval digest sent differs from the signed statement's",
                reason="statement_mismatch",
            )

    def as_approval(self) -> Approval:
        """Carrier of the three stored fields (the rest is filled by lifecycle.approve)."""
        return Approval(
            approver="",
            approval_digest=self.statement.approval_digest,
            approved_at=datetime.fromtimestamp(0, UTC),
            statement=self.statement_bytes.decode("utf-8"),
            statement_signature_b64=base64.b64encode(self.signature).decode("ascii"),
            certificate_der_b64=base64.b64encode(self.certificate_der).decode("ascii"),
        )

    def audit_details(self, policy: AnyPolicy) -> dict[str, str | int | bool | None]:
        return {
            "statement_sha256": hashlib.sha256(self.statement_bytes).hexdigest(),
            "signature_sha256": hashlib.sha256(self.signature).hexdigest(),
            "certificate_sha256": certificate_sha256(self.certificate_der),
            "policy": canonical_json(policy_summary(policy)),
        }
