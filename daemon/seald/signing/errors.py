"""Errors raised by the signing layer.

Every error carries a machine-readable ``reason`` (stable, for api/ to map onto
gRPC status details) and a message that says what was wrong and what to do.
Messages never contain a PIN, key material or document content.
"""

from __future__ import annotations


class SigningError(Exception):
    """Sealing or verification failed; ``reason`` is a stable machine-readable code."""

    reason: str

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    def __reduce__(self) -> tuple[type[SigningError], tuple[str, str]]:
        # Raised in seal worker processes (signing/pipeline.py) and pickled back.
        return (type(self), (self.reason, self.message))

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


class InputDocumentError(SigningError):
    """The input PDF is unacceptable (not_pdf, truncated, encrypted, broken_xref, ...)."""


class TokenSigningError(SigningError):
    """The PKCS#11 token failed while producing the signature."""


class SealImageError(SigningError):
    """The seal image could not be rendered (e.g. no CJK font installed)."""


class PlacementError(InputDocumentError):
    """The requested seal position does not fit on the page."""
