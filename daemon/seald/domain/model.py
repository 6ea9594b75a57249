"""Domain values: seals, principals, requests. Immutable; no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from seald.domain.chains import Money
from seald.domain.marks import Mark


class Role(StrEnum):
    REQUESTER = "requester"
    APPROVER = "approver"
    CUSTODIAN = "custodian"
    ADMIN = "admin"
    AUDITOR = "auditor"
    # Issue 18: the web console's process (sealweb). It forwards WebAuthn registrations
    # and assertions; who approved is always the credential's owner, never the relay.
    RELAY = "relay"


class SealType(StrEnum):
    """SEAL-RULES R01."""

    OFFICIAL = "official"  # 公章
    LEGAL_REPRESENTATIVE = "legal_representative"  # 法人章
    CONTRACT = "contract"  # 合同专用章
    FINANCE = "finance"  # 财务章
    PERSONAL = "personal"  # 个人章


class SealStatus(StrEnum):
    """SEAL-RULES R02."""

    # 刻制中: registered in the config, key being made on the token, no certificate
    # imported yet; becomes ACTIVE when ImportSealCertificate accepts its certificate.
    PENDING = "pending"
    ACTIVE = "active"
    SUSPENDED = "suspended"
    LOST = "lost"
    DESTROYED = "destroyed"


class RequestState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    SIGNING = "signing"
    SIGNED = "signed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    FAILED = "failed"


FINAL_STATES = frozenset(
    {
        RequestState.SIGNED,
        RequestState.REJECTED,
        RequestState.CANCELLED,
        RequestState.EXPIRED,
        RequestState.FAILED,
    }
)


@dataclass(frozen=True)
class Principal:
    """An authenticated person or system, as the allow-list maps a certificate."""

    name: str
    display_name: str
    roles: frozenset[Role]
    seal_ids: frozenset[str]
    # Approver groups (R05 default authority, e.g. general_manager) and the window of
    # this person's authorisation (R03); None = open-ended.
    groups: frozenset[str] = frozenset()
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    def has(self, role: Role, seal_id: str | None = None) -> bool:
        if role not in self.roles:
            return False
        return seal_id is None or seal_id in self.seal_ids


@dataclass(frozen=True)
class Seal:
    """A seal as the registry defines it (R01, R03)."""

    seal_id: str
    seal_type: SealType
    organisation: str
    display_name: str
    categories: frozenset[str]
    required_approvals: int
    size_mm: float
    status: SealStatus = SealStatus.ACTIVE
    certificate_sha256: str = ""
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    # Issue 16: SHA-256 of the registered impression (印模) when one was imported, "" for
    # the generated image; in every approval digest of the seal (R02).
    impression_sha256: str = ""


@dataclass(frozen=True)
class Placement:
    """Where the seal goes: page (1-based, 0 = last) and centre in mm from top-left."""

    page: int
    x_mm: float
    y_mm: float
    size_mm: float
    anchor_text: str = ""
    cross_page: bool = False


@dataclass(frozen=True)
class JobSeal:
    """One seal of a sealing job (issue 16) as its approvers approved it: the certificate
    and impression hashes are in the approval digest and checked again at signing."""

    seal_id: str
    certificate_sha256: str
    impression_sha256: str = ""


@dataclass(frozen=True)
class SignedStep:
    """One completed signature of a job on one document (issue 16): the intermediate
    file after that seal's signature, recorded before the next seal signs, so a restart
    resumes from it and never signs a seal twice."""

    seal_id: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Document:
    index: int
    name: str
    size: int
    sha256: str
    sealed_sha256: str = ""
    sealed_size: int = 0
    # Issue 16: a batch manifest's own marks for this document (None = the request's).
    marks: tuple[Mark, ...] | None = None
    # Issue 16: the job's signatures already made on this document, in signing order.
    steps: tuple[SignedStep, ...] = ()


@dataclass(frozen=True)
class Approval:
    approver: str
    approval_digest: str
    approved_at: datetime
    comment: str = ""
    certificate_sha256: str = ""
    # Issue 9: the signed approval statement (canonical JSON text), its signature and
    # the approver's certificate (both base64), as verified when the approval arrived.
    statement: str = ""
    statement_signature_b64: str = ""
    certificate_der_b64: str = ""
    # Issue 18: an approval signed by a WebAuthn credential instead: canonical JSON of the
    # assertion (credential id, authenticator data, client data JSON, signature) and the
    # credential's COSE public key; ``statement`` is then the WebAuthn statement and
    # ``certificate_der_b64`` is empty.
    webauthn_assertion: str = ""
    # Issue 17: a delegate's approval counts for the delegator (``acting_for``) under
    # delegation ``delegation_id``; both empty for an approver's own approval.
    acting_for: str = ""
    delegation_id: str = ""


@dataclass(frozen=True)
class SealRequest:
    request_id: str
    seal_id: str
    requester: str
    reason: str
    category: str
    placement: Placement
    documents: tuple[Document, ...]
    state: RequestState
    required_approvals: int
    approval_digest: str
    seal_certificate_sha256: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    host: str
    state_reason: str = ""
    approvals: tuple[Approval, ...] = field(default_factory=tuple)
    signed_at: datetime | None = None
    outcome_unknown: bool = False
    client_request_key: str = ""
    sign_attempts: int = 0
    # Issue 17: an optional declared amount (chains' ``when amount > X``); in the digest.
    amount: Money | None = None
    # The first deadline (submission + approval_ttl_hours): approvals are collected until
    # then; None for requests stored before it was kept (their expires_at stands in).
    collect_until: datetime | None = None
    # Issue 16: the seal's registered impression (印模) this request was submitted (or
    # re-bound) with; "" = the generated image. In the approval digest when set (R02).
    seal_impression_sha256: str = ""
    # Issue 16, a sealing job: the request's marks (empty for a single-placement request
    # or when every document has its own) and every seal of the job in signing order
    # (empty = not a job; ``seal_id`` is then the one seal, else the first of these).
    marks: tuple[Mark, ...] = ()
    job_seals: tuple[JobSeal, ...] = ()

    @property
    def is_job(self) -> bool:
        return bool(self.job_seals)

    @property
    def seal_ids(self) -> tuple[str, ...]:
        """Every seal the request uses (a job's in signing order)."""
        return tuple(s.seal_id for s in self.job_seals) or (self.seal_id,)

    def marks_of(self, document: Document) -> tuple[Mark, ...]:
        """The marks a document of this job gets: its manifest's, else the request's."""
        return document.marks if document.marks is not None else self.marks
