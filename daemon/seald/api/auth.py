"""Peer identity -> Principal. Mutual TLS is mandatory: the TLS layer already
refused anyone without a certificate from the client CA; here the certificate's
SHA-256 must be on the allow-list."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from seald.config import Config
from seald.domain.errors import PermissionDenied, Unauthenticated
from seald.domain.model import Principal, Role
from seald.domain.seals import check_window


def peer_certificate_der(context: grpc.aio.ServicerContext[Any, Any]) -> bytes | None:
    auth = context.auth_context()
    pems = list(auth.get("x509_pem_cert") or ())
    if not pems:
        return None
    return x509.load_pem_x509_certificate(pems[0]).public_bytes(Encoding.DER)


def authenticate(config: Config, context: grpc.aio.ServicerContext[Any, Any]) -> tuple[Principal, str]:
    der = peer_certificate_der(context)
    if der is None:
        raise Unauthenticated(
            "no client certificate; connect with the certificate the admin issued to you",
            reason="no_certificate",
        )
    fingerprint = hashlib.sha256(der).hexdigest()
    principal = config.principal_for_fingerprint(fingerprint)
    if principal is None:
        raise Unauthenticated(
            f"your certificate (SHA-256 {fingerprint}) is not on this seal host's allow-list; "
            "give this fingerprint to the admin to be added",
            reason="certificate_not_listed",
        )
    # R03: a person's authorisation has a validity window; outside it nothing is allowed.
    check_window(
        f"the authorisation of {principal.name}",
        principal.valid_from,
        principal.valid_until,
        datetime.now(UTC),
        PermissionDenied,
    )
    return principal, fingerprint


# Issue 18: the relay (sealweb) names the signed-in person's web session in this metadata.
WEB_SESSION_METADATA = "seal-web-session"


def web_session_token(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == WEB_SESSION_METADATA:
            return value if isinstance(value, str) else value.decode("ascii", "replace")
    return ""


def acting_principal(
    sessions: Any, principal: Principal, context: grpc.aio.ServicerContext[Any, Any], method: str
) -> Principal:
    """Who a call acts for: the certificate's principal, or, for a relay presenting a web
    session, the person signed in with a security key (whose permissions then apply; the
    relay's own never widen them). A session token from anyone but a relay is refused."""
    token = web_session_token(context)
    if not token:
        return principal
    if Role.RELAY not in principal.roles or sessions is None:
        raise PermissionDenied("only the web console may present a web session", reason="not_a_relay")
    person: Principal = sessions.acting_principal(principal, token, method)
    return person
