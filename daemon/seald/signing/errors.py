"""The signing layer's errors: members of the one error tree in seald.domain.errors.

Kept as an import path for the signing modules; construct them like every SealError:
``PlacementError("the seal does not fit ...", reason="off_page")``.
Messages never contain a PIN, key material or document content.
"""

from __future__ import annotations

from seald.domain.errors import (
    InputDocumentError,
    PlacementError,
    SealImageError,
    SigningError,
    TokenSigningError,
)

__all__ = [
    "InputDocumentError",
    "PlacementError",
    "SealImageError",
    "SigningError",
    "TokenSigningError",
]
