"""ApproveRequest's signature check (issue 9): the statement must be signed by the key
of the certificate this very connection authenticated with (from the gRPC auth
context, never from the message)."""

from __future__ import annotations

from typing import Any

import grpc

from sealapi.v1 import requests_pb2
from seald.api.auth import peer_certificate_der
from seald.domain.approval_statement import SignedApproval, verify_statement_signature
from seald.domain.errors import Unauthenticated


def signed_approval(
    request: requests_pb2.ApproveRequestRequest, context: grpc.aio.ServicerContext[Any, Any]
) -> SignedApproval:
    """Unsigned approvals are refused (fail closed): INVALID_ARGUMENT approval_unsigned;
    a signature by any other key: PERMISSION_DENIED approval_signature_invalid."""
    certificate_der = peer_certificate_der(context)
    if certificate_der is None:  # authenticate() already refused this; never sign without it
        raise Unauthenticated("no client certificate on this connection", reason="no_certificate")
    statement = verify_statement_signature(
        request.statement, request.statement_signature, certificate_der
    )
    return SignedApproval(statement, request.statement, request.statement_signature, certificate_der)
