"""The domain's error tree: one base, one class per kind of answer.

Each error carries a machine-readable ``reason`` (stable, snake_case) and a
message that says what was wrong and what to do. api/ maps the classes to gRPC
status codes in one table; nothing else decides a status code.
"""

from __future__ import annotations


class SealError(Exception):
    """Base of every error the appliance reports to a caller."""

    default_reason = "error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason


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


class ConfigError(Exception):
    """A configuration that must not be used. Raised at load time, never to clients."""
