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
from seald.domain.model import Principal
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
