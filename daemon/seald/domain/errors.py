"""The appliance's one error tree: one base, one class per kind of answer.

Each error carries a machine-readable ``reason`` (stable, snake_case; every reason is
registered in seald.domain.reasons with its status, exit code and meaning) and a
message that says what was wrong and what to do. api/errors.py maps the classes to
gRPC status codes in one table; nothing else decides a status code.

The signing layer's errors (SigningError and its kinds) are part of the same tree:
they are translated where the caller decides what they mean for the request (a
document problem is INVALID_ARGUMENT at upload, a FAILED request at signing time).
"""

from __future__ import annotations

from typing import Any


class SealError(Exception):
    """Base of every error the appliance reports to a caller."""

    default_reason = "error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason

    def __reduce__(self) -> tuple[Any, ...]:
        # Raised in seal worker processes and pickled back: keep the reason (a keyword).
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


def _rebuild(cls: type[SealError], message: str, state: dict[str, Any]) -> SealError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class InvalidInput(SealError):
    """The caller sent something malformed; fixing the input fixes it."""

    default_reason = "invalid_input"


class NotFound(SealError):
    default_reason = "not_found"


class NotVisible(NotFound):
    """Someone else's request: answered exactly like an unknown id (same status, message and
    reason), so a refusal never confirms that the request exists (R04). The class only lets
    the API still record the refusal as ``access.denied``."""

    def __init__(self, request_id: str) -> None:
        super().__init__(request_not_found_message(request_id), reason="request_not_found")


def request_not_found_message(request_id: str) -> str:
    """The one text for an unknown request id and for one the caller may not see."""
    return f"no request {request_id!r}; check the id (sealctl list shows your requests)"


class Unauthenticated(SealError):
    """The caller's identity is unknown (certificate not on the allow-list)."""

    default_reason = "unauthenticated"


class PermissionDenied(SealError):
    """The caller is known but may not do this (role, seal, own request)."""

    default_reason = "permission_denied"


class PreconditionFailed(SealError):
    """Not now: wrong state, token absent or locked, seal suspended."""

    default_reason = "failed_precondition"


class AlreadyDone(SealError):
    default_reason = "already_done"


class LimitExceeded(SealError):
    default_reason = "limit_exceeded"


class RateLimited(LimitExceeded):
    """A client called faster than its per-principal rate limit allows; retrying later works."""

    default_reason = "rate_limited"


class TooManyStreams(LimitExceeded):
    """A principal (or the whole server) already holds its cap of open server streams."""

    default_reason = "too_many_streams"


class ServiceUnavailable(SealError):
    """The appliance cannot serve safely right now (e.g. the audit trail is not writable)."""

    default_reason = "unavailable"


class SigningError(SealError):
    """Sealing or verification failed in the signing layer (seald.signing)."""

    default_reason = "signing_failed"


class InputDocumentError(SigningError):
    """The input PDF is unacceptable (not_pdf, truncated, encrypted, broken_xref, ...)."""


class TokenSigningError(SigningError):
    """The PKCS#11 token failed while producing the signature."""


class SealImageError(SigningError):
    """The seal image could not be rendered (e.g. no CJK font installed)."""


class PlacementError(InputDocumentError):
    """The requested seal position does not fit on the page."""


class ConfigError(Exception):
    """A configuration that must not be used. Raised at load time, never to clients
    (the daemon's config file, and sealctl's own config: sealclient.errors.ConfigError)."""
