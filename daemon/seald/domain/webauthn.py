"""Approvers' WebAuthn credentials and the approval statement they sign (issue 18; R04, R05, R06).

Pure: no I/O, no clock, no randomness of its own (codes, nonces and ``now`` come from the
caller). The cryptographic check of a registration or an assertion is not here but in
``seald.webauthn.verify`` (an adapter around the ``webauthn`` package): this module holds
the rules, the statement's canonical form and the sign-count rule.

Credential life: an admin starts an enrolment for an approver (a one-time code, valid
``ENROLMENT_TTL``); the approver's browser registers a credential with that code (the
credential is PENDING); a second admin, neither the one who started the enrolment nor its
owner, approves it (ACTIVE, like a custody change, R09's two-person rule); any admin or
the owner revokes it (REVOKED, final). Only an ACTIVE credential signs approvals.

Statement (version ``seald.approval-statement/webauthn-1``): the same fields as
``seald.approval-statement/1`` (``domain/approval_statement.py``) minus
``signer_certificate_sha256``, plus ``signed_by`` (``{"principal", "webauthn_credential_id"}``),
``rp_id``, ``origin`` and ``nonce`` (seald's fresh random per challenge: each statement
is signable once). seald builds it; the WebAuthn challenge is SHA-256 of its canonical
bytes, so the authenticator's signature covers the statement itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from seald.domain.approval_statement import (
    DECISION_APPROVE,
    ApprovalStatement,
    StatementError,
    statement_fields,
)
from seald.domain.digest import DigestDocument, DigestPlacement, DigestSeal
from seald.domain.errors import (
    AlreadyDone,
    InvalidInput,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    Unauthenticated,
)
from seald.domain.model import SealRequest

WEBAUTHN_STATEMENT_VERSION: Final = "seald.approval-statement/webauthn-1"
ENROLMENT_TTL: Final = timedelta(minutes=15)
# How long a challenge seald issued for an approval may be answered.
CHALLENGE_TTL: Final = timedelta(minutes=5)
MAX_CREDENTIAL_NAME: Final = 64
_B64URL = re.compile(r"[A-Za-z0-9_-]{16,1400}")
_HEX = re.compile(r"[0-9a-f]{32,128}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


class CredentialStatus(StrEnum):
    PENDING = "pending"  # registered, waiting for a second admin
    ACTIVE = "active"
    REVOKED = "revoked"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as ex:
        raise InvalidInput(f"{text[:16]!r}… is not base64url", reason="bad_base64url") from ex


def code_sha256(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


# -- enrolment ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Enrolment:
    """One admin-started, one-time, short-lived permission to register one credential."""

    enrolment_id: str
    principal: str
    code_sha256: str
    started_by: str
    started_at: datetime
    expires_at: datetime
    used_at: datetime | None = None


def start_enrolment(
    *,
    enrolment_id: str,
    principal: str,
    principal_is_approver: bool,
    code: str,
    started_by: str,
    now: datetime,
) -> Enrolment:
    if not principal_is_approver:
        raise InvalidInput(
            f"{principal} is not an approver of any seal; only approvers enrol WebAuthn credentials "
            "(give them the approver role in seald.toml first)",
            reason="not_an_approver",
        )
    if len(code) < 16:
        raise InvalidInput("an enrolment code must have at least 16 characters", reason="weak_code")
    return Enrolment(
        enrolment_id=enrolment_id,
        principal=principal,
        code_sha256=code_sha256(code),
        started_by=started_by,
        started_at=now,
        expires_at=now + ENROLMENT_TTL,
    )


def redeem_enrolment(enrolment: Enrolment, code: str, now: datetime) -> Enrolment:
    """The code is right, unused and not expired: the enrolment is used up now."""
    if not hmac.compare_digest(enrolment.code_sha256, code_sha256(code)):
        raise PermissionDenied(
            "the enrolment code is wrong; ask the admin for the code they were shown",
            reason="enrolment_code_invalid",
        )
    if enrolment.used_at is not None:
        raise PermissionDenied(
            "this enrolment code was already used; ask an admin to start a new enrolment",
            reason="enrolment_used",
        )
    if now >= enrolment.expires_at:
        raise PermissionDenied(
            f"this enrolment code expired at {enrolment.expires_at.isoformat()}; ask an admin to "
            "start a new enrolment",
            reason="enrolment_expired",
        )
    return replace(enrolment, used_at=now)


# -- credentials -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WebAuthnCredential:
    credential_id: str  # base64url, as WebAuthn's rawId
    principal: str
    public_key_b64: str  # COSE_Key bytes, base64
    sign_count: int
    attestation_format: str
    aaguid: str
    name: str
    status: CredentialStatus
    enrolment_id: str
    enrolled_by: str  # the admin who started the enrolment
    registered_at: datetime
    approved_by: str = ""
    approved_at: datetime | None = None
    revoked_by: str = ""
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def public_key(self) -> bytes:
        return base64.b64decode(self.public_key_b64)

    @property
    def public_key_sha256(self) -> str:
        return hashlib.sha256(self.public_key).hexdigest()


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_CREDENTIAL_NAME or any(ord(c) < 32 for c in name):
        raise InvalidInput(
            f"a credential name must be 1..{MAX_CREDENTIAL_NAME} printable characters",
            reason="bad_credential_name",
        )
    return name


def new_credential(
    enrolment: Enrolment,
    *,
    credential_id: str,
    public_key: bytes,
    sign_count: int,
    attestation_format: str,
    aaguid: str,
    name: str,
    now: datetime,
) -> WebAuthnCredential:
    if enrolment.used_at is None:
        raise PreconditionFailed("redeem the enrolment before registering", reason="enrolment_unused")
    if not _B64URL.fullmatch(credential_id):
        raise InvalidInput("the credential id is not base64url of 16..1024 bytes", reason="bad_credential_id")
    return WebAuthnCredential(
        credential_id=credential_id,
        principal=enrolment.principal,
        public_key_b64=base64.b64encode(public_key).decode("ascii"),
        sign_count=sign_count,
        attestation_format=attestation_format,
        aaguid=aaguid,
        name=check_name(name or "security key"),
        status=CredentialStatus.PENDING,
        enrolment_id=enrolment.enrolment_id,
        enrolled_by=enrolment.started_by,
        registered_at=now,
    )


def approve_credential(credential: WebAuthnCredential, admin: str, now: datetime) -> WebAuthnCredential:
    """The second admin's approval: not the admin who started the enrolment, not the owner."""
    if credential.status is CredentialStatus.ACTIVE:
        raise AlreadyDone(f"credential {credential.name!r} is already approved", reason="already_approved")
    if credential.status is CredentialStatus.REVOKED:
        raise PreconditionFailed(f"credential {credential.name!r} is revoked", reason="credential_revoked")
    if admin in (credential.enrolled_by, credential.principal):
        raise PermissionDenied(
            "a second admin must approve a new credential: neither the admin who started the "
            "enrolment nor the credential's owner (two-person rule, as for custody changes)",
            reason="self_approval",
        )
    return replace(credential, status=CredentialStatus.ACTIVE, approved_by=admin, approved_at=now)


def revoke_credential(credential: WebAuthnCredential, by: str, now: datetime) -> WebAuthnCredential:
    if credential.status is CredentialStatus.REVOKED:
        raise AlreadyDone(f"credential {credential.name!r} is already revoked", reason="already_revoked")
    return replace(credential, status=CredentialStatus.REVOKED, revoked_by=by, revoked_at=now)


def require_usable(credential: WebAuthnCredential | None, principal: str | None = None) -> WebAuthnCredential:
    """Only an ACTIVE credential (of ``principal``, when given) signs anything."""
    if credential is None:
        raise PermissionDenied(
            "this security key is not enrolled with the seal appliance", reason="credential_unknown"
        )
    if credential.status is CredentialStatus.PENDING:
        raise PermissionDenied(
            f"credential {credential.name!r} waits for a second admin's approval before it counts",
            reason="credential_not_approved",
        )
    if credential.status is CredentialStatus.REVOKED:
        raise PermissionDenied(f"credential {credential.name!r} is revoked", reason="credential_revoked")
    if principal is not None and credential.principal != principal:
        raise PermissionDenied("this security key belongs to someone else", reason="credential_not_yours")
    return credential


class CloneSuspected(PermissionDenied):
    """The authenticator's signature counter did not advance: possibly a cloned key."""

    default_reason = "sign_count_regression"


def next_sign_count(credential: WebAuthnCredential, new_count: int) -> int:
    """WebAuthn §6.1.1: a counter that does not grow (when either side is non-zero) means
    two copies of the key exist; refuse. Authenticators without a counter send 0 always."""
    if (new_count != 0 or credential.sign_count != 0) and new_count <= credential.sign_count:
        raise CloneSuspected(
            f"security key {credential.name!r} of {credential.principal} reported signature counter "
            f"{new_count}, not above the {credential.sign_count} already seen: the key may have been "
            "cloned; it is refused and an admin is alerted (revoke it and enrol a new one)",
        )
    return new_count


# -- the statement a WebAuthn credential signs ------------------------------------------------------
@dataclass(frozen=True)
class WebAuthnStatement:
    """An approval statement signed by a WebAuthn credential instead of a certificate's key."""

    base: ApprovalStatement  # signer_certificate_sha256 is "" here
    principal: str
    credential_id: str
    rp_id: str
    origin: str
    nonce: str

    def canonical_bytes(self) -> bytes:
        subject: dict[str, Any] = json.loads(self.base.canonical_bytes())
        subject.pop("signer_certificate_sha256")
        subject.update(
            {
                "version": WEBAUTHN_STATEMENT_VERSION,
                "signed_by": {"principal": self.principal, "webauthn_credential_id": self.credential_id},
                "rp_id": self.rp_id,
                "origin": self.origin,
                "nonce": self.nonce,
            }
        )
        return json.dumps(subject, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def challenge(self) -> bytes:
        return statement_challenge(self.canonical_bytes())


def statement_challenge(statement: bytes) -> bytes:
    """The WebAuthn challenge for a statement: SHA-256 of its canonical bytes."""
    return hashlib.sha256(statement).digest()


def is_webauthn_statement(data: bytes) -> bool:
    return b'"version":"' + WEBAUTHN_STATEMENT_VERSION.encode() + b'"' in data


def parse_webauthn_statement(data: bytes) -> WebAuthnStatement:
    """Parse and require canonical form (re-encoding gives the same bytes)."""
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as ex:
        raise StatementError("the WebAuthn approval statement is not UTF-8 JSON") from ex
    if not isinstance(raw, dict) or raw.get("version") != WEBAUTHN_STATEMENT_VERSION:
        raise StatementError(f"not a {WEBAUTHN_STATEMENT_VERSION} statement")
    signed_by = raw.get("signed_by")
    if not isinstance(signed_by, dict):
        raise StatementError("the WebAuthn approval statement lacks signed_by")
    texts = {}
    for key, source in (
        ("principal", signed_by),
        ("webauthn_credential_id", signed_by),
        ("rp_id", raw),
        ("origin", raw),
        ("nonce", raw),
    ):
        value = source.get(key)
        if not isinstance(value, str) or not value:
            raise StatementError(f"the WebAuthn approval statement's {key!r} is missing or not text")
        texts[key] = value
    statement = WebAuthnStatement(
        base=statement_fields(raw, signer_certificate_sha256=""),
        principal=texts["principal"],
        credential_id=texts["webauthn_credential_id"],
        rp_id=texts["rp_id"],
        origin=texts["origin"],
        nonce=texts["nonce"],
    )
    if statement.canonical_bytes() != data:
        raise StatementError(
            "the WebAuthn approval statement is not in canonical form or carries unknown fields"
        )
    if not _TIME.fullmatch(statement.base.signed_at) or not _HEX.fullmatch(statement.nonce):
        raise StatementError("the WebAuthn approval statement's time or nonce is malformed")
    return statement


def build_statement(
    base: ApprovalStatement,
    *,
    principal: str,
    credential_id: str,
    rp_id: str,
    origin: str,
    nonce: str,
) -> WebAuthnStatement:
    if base.signer_certificate_sha256 or base.decision != DECISION_APPROVE:
        raise InvalidInput("a WebAuthn statement approves and names no certificate", reason="bad_statement")
    return WebAuthnStatement(
        base=base, principal=principal, credential_id=credential_id, rp_id=rp_id, origin=origin, nonce=nonce
    )


@dataclass(frozen=True)
class PendingChallenge:
    """A statement seald issued for one approver's credential; answerable once, briefly."""

    statement: bytes
    request_id: str
    principal: str
    credential_id: str
    issued_at: datetime
    expires_at: datetime


def take_challenge(
    pending: PendingChallenge | None, *, challenge: bytes, request_id: str, now: datetime
) -> PendingChallenge:
    """The challenge the assertion answers must be one seald issued, for this request,
    not yet answered and not expired (a replay finds nothing: challenges are deleted
    when answered)."""
    if pending is None:
        raise PermissionDenied(
            "this assertion answers no open challenge (replayed, already used, or never issued); "
            "start the approval again",
            reason="challenge_unknown",
        )
    if not hmac.compare_digest(statement_challenge(pending.statement), challenge):
        raise PermissionDenied(
            "the assertion's challenge is not the statement's", reason="challenge_mismatch"
        )
    if pending.request_id != request_id:
        raise PermissionDenied(
            f"this assertion approves request {pending.request_id}, not {request_id}",
            reason="challenge_other_request",
        )
    if now >= pending.expires_at:
        raise PermissionDenied(
            "the approval challenge expired; open the request and approve again",
            reason="challenge_expired",
        )
    return pending


def require_found(credential: WebAuthnCredential | None, credential_id: str) -> WebAuthnCredential:
    if credential is None:
        raise NotFound(f"no WebAuthn credential {credential_id[:16]}…", reason="credential_unknown")
    return credential


def base_statement_for(request: SealRequest, *, signed_at: str, comment: str) -> ApprovalStatement:
    """The approval statement's shared fields, built by seald from the stored request (the
    WebAuthn approver's browser has nothing to build it from; the authenticator signs it)."""
    p = request.placement
    return ApprovalStatement(
        request_id=request.request_id,
        approval_digest=request.approval_digest,
        seal_id=request.seal_id,
        seal_certificate_sha256=request.seal_certificate_sha256,
        requester=request.requester,
        reason=request.reason,
        category=request.category,
        placement=DigestPlacement(
            page=p.page,
            x_mm=p.x_mm,
            y_mm=p.y_mm,
            size_mm=p.size_mm,
            anchor_text=p.anchor_text,
            cross_page=p.cross_page,
        ),
        documents=tuple(DigestDocument(d.name, d.sha256, d.size, d.marks) for d in request.documents),
        signer_certificate_sha256="",
        signed_at=signed_at,
        comment=comment,
        seal_impression_sha256=request.seal_impression_sha256,
        # Issue 16: a job's marks and seals, as the digest covers them.
        marks=request.marks if request.is_job else None,
        seals=tuple(
            DigestSeal(s.seal_id, s.certificate_sha256, s.impression_sha256) for s in request.job_seals
        ),
    )


# -- web sessions (sealweb acts for a signed-in principal) ------------------------------------------
WEB_SESSION_IDLE: Final = timedelta(minutes=10)
WEB_SESSION_MAX: Final = timedelta(hours=8)

# What the relay may do for a signed-in person (gRPC method names). Everything else is
# refused: approving with a statement signed by the connection's key (the relay's key is
# not the person's), token unlock/lock/PIN (custodians see token status read-only on the
# web), seal administration, audit exports.
WEB_SESSION_METHODS: Final = frozenset(
    {
        "GetRequest",
        "ListRequests",
        "WatchRequests",
        "DownloadDocument",
        "PreviewRequest",
        "WithdrawApproval",
        "RejectRequest",
        "CancelRequest",
        "GetTokenStatus",
        "ListSeals",
        "GetSeal",
        "ListCredentials",
        "NameCredential",
        "RevokeCredential",
        "BeginApproval",
        "FinishApproval",
        "SignOut",
    }
)


@dataclass(frozen=True)
class WebSession:
    principal: str
    relay: str  # the relay principal the session was opened through
    credential_id: str
    created_at: datetime
    last_seen: datetime


def session_alive(session: WebSession | None, relay: str, now: datetime) -> WebSession:
    """The session of ``relay``'s call, touched now; refused when unknown, idle or too old."""
    if session is None or session.relay != relay:
        raise Unauthenticated(
            "no web session (signed out or expired); sign in again", reason="web_session_unknown"
        )
    if now - session.last_seen >= WEB_SESSION_IDLE or now - session.created_at >= WEB_SESSION_MAX:
        raise Unauthenticated("the web session expired; sign in again", reason="web_session_expired")
    return replace(session, last_seen=now)


def require_session_method(method: str) -> None:
    if method not in WEB_SESSION_METHODS:
        raise PermissionDenied(
            f"{method} is not available through the web console; use sealctl with your own certificate",
            reason="not_on_the_web",
        )
