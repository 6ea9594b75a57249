"""Exit codes of `sealctl` that scripts can rely on (also in docs/sealctl.md)."""

from __future__ import annotations

import grpc

from sealclient.errors import ConfigError, LocalVerificationError, SealClientError
from seald.domain.reasons import EXIT_FOR_STATUS, ExitCode

# Built from the reason registry's table (seald.domain.reasons, shared pure code), so
# docs/reasons.md, the daemon's statuses and sealctl's exit codes cannot disagree.
_BY_STATUS: dict[grpc.StatusCode, ExitCode] = {
    grpc.StatusCode.OK: ExitCode.OK,
    grpc.StatusCode.OUT_OF_RANGE: ExitCode.INVALID_ARGUMENT,
    **{grpc.StatusCode[status.name]: code for status, code in EXIT_FOR_STATUS.items()},
}

__all__ = ["EPILOG", "ExitCode", "exit_code_for", "exit_code_for_status"]


def exit_code_for_status(code: grpc.StatusCode) -> ExitCode:
    return _BY_STATUS.get(code, ExitCode.OTHER)


def exit_code_for(error: SealClientError) -> ExitCode:
    """Local verification and config problems first; otherwise by gRPC status."""
    if isinstance(error, LocalVerificationError):
        return ExitCode.VERIFICATION_FAILED
    if isinstance(error, ConfigError):
        return ExitCode.USAGE
    return exit_code_for_status(error.code)


EPILOG = """\
exit codes:
  0   ok
  1   any other error
  2   usage error (bad flags, incomplete or invalid client config)
  3   not authenticated / permission denied
  4   not found (request, seal, document)
  5   failed precondition (token absent or locked, outside hours, wrong request state)
  6   invalid argument (rejected input, unreadable local file)
  7   already exists / already done
  8   unavailable (seald not reachable)
  9   resource exhausted (daemon overloaded; retry later)
  10  verification failed (hash or approval digest differs from what this machine
      computed; downloaded document hash mismatch; `verify` found an invalid signature)
  130 interrupted (Ctrl-C)
"""
