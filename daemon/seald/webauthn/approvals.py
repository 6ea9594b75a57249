"""Approval by WebAuthn assertion (issue 18): everything seald checks about an assertion
before ``lifecycle.approve`` runs its usual checks with the credential's OWNER as approver.

The relay (sealweb) only carries bytes: the statement is the one seald issued and kept
(never taken from the relay), the approver is the owner of the credential whose key made
the signature (never the relay's principal, never a name in the message). No I/O: the
service passes the stored challenge and credential and stores the result.

Checks, in order: the challenge is one seald issued, for this request, unused and fresh
(``domain.webauthn.take_challenge``); the credential is the one the challenge was issued
for, ACTIVE, and its owner's; the signature verifies with the stored public key over
authenticator data naming our RP id (with UV set) and client data naming our origin and
the challenge (``webauthn/verify.py``); the counter advanced (else the clone alarm); the
statement names our RP id and origin.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from seald.domain.approval_statement import canonical_json, policy_summary, statement_problems
from seald.domain.errors import InvalidInput, PermissionDenied
from seald.domain.model import Approval, SealRequest
from seald.domain.policy import AnyPolicy
from seald.domain.webauthn import (
    PendingChallenge,
    WebAuthnCredential,
    WebAuthnStatement,
    b64url,
    b64url_decode,
    next_sign_count,
    parse_webauthn_statement,
    require_usable,
    take_challenge,
)
from seald.webauthn.verify import Assertion, verify_assertion


def assertion_challenge(assertion: Assertion) -> bytes:
    """The challenge the browser put in client data (what it claims to answer)."""
    try:
        client_data = json.loads(assertion.client_data_json.decode("utf-8"))
        challenge = client_data["challenge"]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as ex:
        raise InvalidInput(
            "the assertion's client data is not WebAuthn client data JSON",
            reason="webauthn_client_data_invalid",
        ) from ex
    if not isinstance(challenge, str):
        raise InvalidInput(
            "the assertion's client data has no challenge", reason="webauthn_client_data_invalid"
        )
    return b64url_decode(challenge)


def assertion_json(assertion: Assertion, public_key: bytes) -> str:
    """What the ledger and the evidence package keep of an assertion (canonical JSON)."""
    return canonical_json(
        {
            "credential_id": assertion.credential_id,
            "authenticator_data": b64url(assertion.authenticator_data),
            "client_data_json": b64url(assertion.client_data_json),
            "signature": b64url(assertion.signature),
            "credential_public_key": b64url(public_key),
        }
    )


def assertion_from_json(text: str) -> tuple[Assertion, bytes]:
    raw = json.loads(text)
    return (
        Assertion(
            credential_id=raw["credential_id"],
            authenticator_data=b64url_decode(raw["authenticator_data"]),
            client_data_json=b64url_decode(raw["client_data_json"]),
            signature=b64url_decode(raw["signature"]),
        ),
        b64url_decode(raw["credential_public_key"]),
    )


@dataclass(frozen=True)
class WebAuthnApproval:
    """An assertion that verified against a challenge seald issued."""

    statement: WebAuthnStatement
    statement_bytes: bytes
    assertion: Assertion
    credential: WebAuthnCredential
    new_sign_count: int

    @property
    def approver(self) -> str:
        return self.credential.principal

    def check(self, request: SealRequest) -> None:
        """The statement seald issued still describes the request (it may have changed
        since: a renewal of the seal certificate re-binds the digest)."""
        problems = statement_problems(
            self.statement.base,
            request_id=request.request_id,
            approval_digest=request.approval_digest,
            document_sha256=[d.sha256 for d in request.documents],
        )
        if problems:
            raise InvalidInput(
                "the approval statement no longer matches the request: "
                + "; ".join(problems)
                + "; open the request again and approve what it is now",
                reason="statement_mismatch",
            )

    def as_approval(self) -> Approval:
        return Approval(
            approver="",
            approval_digest=self.statement.base.approval_digest,
            approved_at=datetime.fromtimestamp(0, UTC),
            statement=self.statement_bytes.decode("utf-8"),
            statement_signature_b64=base64.b64encode(self.assertion.signature).decode("ascii"),
            webauthn_assertion=assertion_json(self.assertion, self.credential.public_key),
        )

    def audit_details(self, policy: AnyPolicy) -> dict[str, str | int | bool | None]:
        return {
            "approval_digest": self.statement.base.approval_digest,
            "comment": self.statement.base.comment,
            "statement_sha256": hashlib.sha256(self.statement_bytes).hexdigest(),
            "signature_sha256": hashlib.sha256(self.assertion.signature).hexdigest(),
            "webauthn_credential_id": self.credential.credential_id,
            "webauthn_public_key_sha256": self.credential.public_key_sha256,
            "webauthn_sign_count": self.new_sign_count,
            "policy": canonical_json(policy_summary(policy)),
        }


def verify_webauthn_approval(
    *,
    pending: PendingChallenge | None,
    request_id: str,
    assertion: Assertion,
    credential: WebAuthnCredential | None,
    rp_id: str,
    origin: str,
    now: datetime,
) -> WebAuthnApproval:
    challenge = assertion_challenge(assertion)
    pending = take_challenge(pending, challenge=challenge, request_id=request_id, now=now)
    if assertion.credential_id != pending.credential_id:
        raise PermissionDenied(
            "the assertion was made by another security key than the one the challenge was issued for",
            reason="credential_mismatch",
        )
    credential = require_usable(credential, pending.principal)
    count = verify_assertion(
        assertion, challenge=challenge, rp_id=rp_id, origin=origin, public_key=credential.public_key
    )
    count = next_sign_count(credential, count)
    statement = parse_webauthn_statement(pending.statement)
    if (
        statement.rp_id != rp_id
        or statement.origin != origin
        or statement.credential_id != credential.credential_id
        or statement.principal != credential.principal
    ):
        raise PermissionDenied(
            "the approval statement names another origin, RP id or credential than this one",
            reason="statement_mismatch",
        )
    return WebAuthnApproval(statement, pending.statement, assertion, credential, count)


def offline_problems(statement_bytes: bytes, assertion_text: str) -> tuple[list[str], dict[str, Any]]:
    """Offline check of a stored WebAuthn approval (evidence verify): the assertion's
    signature by the public key it carries, over client data naming SHA-256 of the
    statement and the statement's origin, authenticator data naming its RP id, UV set.
    Which principal owns that key is the ledger's record (checked separately)."""
    try:
        statement = parse_webauthn_statement(statement_bytes)
        assertion, public_key = assertion_from_json(assertion_text)
    except (InvalidInput, ValueError, KeyError, TypeError) as ex:
        return [f"unreadable WebAuthn statement or assertion ({ex})"], {}
    problems = []
    challenge = hashlib.sha256(statement_bytes).digest()
    try:
        verify_assertion(
            assertion,
            challenge=challenge,
            rp_id=statement.rp_id,
            origin=statement.origin,
            public_key=public_key,
        )
    except PermissionDenied as ex:
        problems.append(ex.message)
    if assertion.credential_id != statement.credential_id:
        problems.append("the assertion's credential is not the one the statement names")
    facts = {
        "principal": statement.principal,
        "credential_id": statement.credential_id,
        "public_key_sha256": hashlib.sha256(public_key).hexdigest(),
        "statement": statement,
    }
    return problems, facts
