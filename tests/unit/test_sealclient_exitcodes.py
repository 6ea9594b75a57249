"""Exit codes scripts rely on, and translation of gRPC failures into SealClientError."""

from __future__ import annotations

import grpc
import pytest

from sealclient.errors import (
    ConfigError,
    LocalInputError,
    LocalVerificationError,
    SealClientError,
    from_rpc_error,
)
from sealclient.exitcodes import EPILOG, ExitCode, exit_code_for

TABLE = [
    (grpc.StatusCode.UNAUTHENTICATED, 3),
    (grpc.StatusCode.PERMISSION_DENIED, 3),
    (grpc.StatusCode.NOT_FOUND, 4),
    (grpc.StatusCode.FAILED_PRECONDITION, 5),
    (grpc.StatusCode.INVALID_ARGUMENT, 6),
    (grpc.StatusCode.ALREADY_EXISTS, 7),
    (grpc.StatusCode.UNAVAILABLE, 8),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, 9),
    (grpc.StatusCode.INTERNAL, 1),
    (grpc.StatusCode.UNKNOWN, 1),
    (grpc.StatusCode.DEADLINE_EXCEEDED, 1),
]


@pytest.mark.parametrize(("code", "expected"), TABLE)
def test_status_code_maps_to_documented_exit_code(code: grpc.StatusCode, expected: int) -> None:
    assert exit_code_for(SealClientError(code, "r", "m")) == expected
    assert f"\n  {expected} " in "\n" + EPILOG or expected == 1


def test_local_errors_have_their_own_codes() -> None:
    assert exit_code_for(LocalVerificationError("local_digest_mismatch", "m")) == 10
    assert exit_code_for(ConfigError("m")) == ExitCode.USAGE
    assert int(ExitCode.USAGE) == 2
    assert exit_code_for(LocalInputError("local_file_unreadable", "m")) == 6


def test_every_exit_code_is_documented_in_the_epilog() -> None:
    for code in ExitCode:
        assert f"  {int(code):<3} " in EPILOG


class _Status(grpc.RpcError):
    """The shape of a failed call as grpc raises it (code, details, trailers)."""

    def __init__(self, code: grpc.StatusCode, details: str, reason: str) -> None:
        self._code, self._details, self._reason = code, details, reason

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:  # type: ignore[override]
        return (("other", "x"), ("seal-error-reason", self._reason))


def test_reason_comes_from_trailing_metadata() -> None:
    error = from_rpc_error(
        _Status(grpc.StatusCode.FAILED_PRECONDITION, "insert the token", "token_absent"),
        target="h:1",
    )
    assert (error.code, error.reason, error.message) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "token_absent",
        "insert the token",
    )


def test_unavailable_asks_whether_seald_runs_at_target() -> None:
    error = from_rpc_error(_Status(grpc.StatusCode.UNAVAILABLE, "refused", ""), target="h:7443")
    assert "is seald running at h:7443?" in error.message.lower()
    assert error.reason == "unavailable"


def test_secrets_are_redacted_from_messages() -> None:
    error = from_rpc_error(
        _Status(grpc.StatusCode.PERMISSION_DENIED, "wrong PIN 975310", "pin_incorrect"),
        target="h:1",
        secrets=("975310",),
    )
    assert "975310" not in error.message and "***" in error.message
