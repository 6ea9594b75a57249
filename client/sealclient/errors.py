"""The one error family of sealclient.

Every failure a caller can see is a `SealClientError`: the gRPC status code the
daemon answered with (or the closest one for a local failure), the daemon's
machine-readable reason (trailing metadata "seal-error-reason"), and a message
that says what was wrong and what to do.
"""

from __future__ import annotations

import grpc

from seald.domain.errors import ConfigError as _ConfigError

REASON_METADATA_KEY = "seal-error-reason"


class SealClientError(Exception):
    """A call failed; `reason` is machine-readable, `message` is for humans."""

    def __init__(self, code: grpc.StatusCode, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message

    def __str__(self) -> str:
        return self.message


class LocalVerificationError(SealClientError):
    """What the daemon described is not what this client computed itself (R06).

    Raised before anything is sent: an approval is never given for bytes the
    approver's own machine did not hash.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(grpc.StatusCode.DATA_LOSS, reason, message)


class LocalInputError(SealClientError):
    """A local file or argument cannot be used (unreadable file, bad value)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(grpc.StatusCode.INVALID_ARGUMENT, reason, message)


class ConfigError(SealClientError, _ConfigError):
    """The client configuration (file or flags) is incomplete or invalid: the one
    ConfigError of seald.domain.errors, as a sealctl error (exit 2, USAGE)."""

    def __init__(self, message: str) -> None:
        super().__init__(grpc.StatusCode.INVALID_ARGUMENT, "client_config_invalid", message)


def reason_from_metadata(metadata: object) -> str:
    """The daemon's "seal-error-reason", or "" when the status carries none."""
    if not metadata:
        return ""
    try:
        for key, value in metadata:  # type: ignore[attr-defined]
            if key == REASON_METADATA_KEY:
                return value.decode() if isinstance(value, bytes) else str(value)
    except (TypeError, ValueError):
        return ""
    return ""


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """Remove secrets (PINs) from a message, in case a server ever echoes one."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def from_rpc_error(
    ex: grpc.RpcError, *, target: str, secrets: tuple[str, ...] = ()
) -> SealClientError:
    """Translate a gRPC failure into our error, with a message that says what to do."""
    code_fn = getattr(ex, "code", None)
    code = code_fn() if callable(code_fn) else grpc.StatusCode.UNKNOWN
    if not isinstance(code, grpc.StatusCode):
        code = grpc.StatusCode.UNKNOWN
    details_fn = getattr(ex, "details", None)
    details = details_fn() if callable(details_fn) else None
    trailing_fn = getattr(ex, "trailing_metadata", None)
    reason = reason_from_metadata(trailing_fn() if callable(trailing_fn) else None)
    message = redact(str(details or code.name.lower()), secrets)
    if code is grpc.StatusCode.UNAVAILABLE:
        message = f"cannot reach seald at {target}: {message}. Is seald running at {target}?"
        reason = reason or "unavailable"
    elif code is grpc.StatusCode.DEADLINE_EXCEEDED:
        message = f"seald at {target} did not answer in time: {message}. Retry later."
        reason = reason or "deadline_exceeded"
    return SealClientError(code, reason or code.name.lower(), message)
