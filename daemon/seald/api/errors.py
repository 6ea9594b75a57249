"""The one table that maps domain errors to gRPC status codes."""

from __future__ import annotations

import grpc

from seald.domain.errors import (
    AlreadyDone,
    InvalidInput,
    LimitExceeded,
    NotFound,
    PermissionDenied,
    PreconditionFailed,
    RateLimited,
    SealError,
    ServiceUnavailable,
    TooManyStreams,
    Unauthenticated,
)

STATUS_FOR_ERROR: dict[type[SealError], grpc.StatusCode] = {
    InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    PreconditionFailed: grpc.StatusCode.FAILED_PRECONDITION,
    AlreadyDone: grpc.StatusCode.ALREADY_EXISTS,
    LimitExceeded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    RateLimited: grpc.StatusCode.RESOURCE_EXHAUSTED,
    TooManyStreams: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ServiceUnavailable: grpc.StatusCode.UNAVAILABLE,
}


class Unimplemented(SealError):
    default_reason = "unimplemented"


STATUS_FOR_ERROR[Unimplemented] = grpc.StatusCode.UNIMPLEMENTED

REASON_METADATA_KEY = "seal-error-reason"


def status_for(error: SealError) -> grpc.StatusCode:
    for cls in type(error).__mro__:
        if cls in STATUS_FOR_ERROR:
            return STATUS_FOR_ERROR[cls]
    return grpc.StatusCode.INTERNAL
