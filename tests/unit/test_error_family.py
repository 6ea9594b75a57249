"""One error family (issue 15): the signing layer's errors are SealErrors, built alike,
and survive the trip back from a seal worker process (pickling) with their reason."""

from __future__ import annotations

import pickle

import pytest

from seald.domain.errors import (
    InputDocumentError,
    InvalidInput,
    PlacementError,
    SealError,
    SealImageError,
    SigningError,
    TokenSigningError,
)
from seald.signing import errors as signing_errors

KINDS = [SigningError, InputDocumentError, TokenSigningError, SealImageError, PlacementError]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_signing_errors_are_seal_errors_with_message_first(kind: type[SigningError]) -> None:
    error = kind("the seal does not fit on page 1; move it", reason="off_page")
    assert isinstance(error, SealError)
    assert (error.message, error.reason, str(error)) == (
        "the seal does not fit on page 1; move it",
        "off_page",
        "the seal does not fit on page 1; move it",
    )
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is kind
    assert (back.message, back.reason, str(back)) == (error.message, error.reason, str(error))


def test_pickling_keeps_the_reason_of_any_seal_error() -> None:
    back = pickle.loads(pickle.dumps(InvalidInput("bad page token", reason="bad_page_token")))
    assert (type(back), back.reason, back.message) == (InvalidInput, "bad_page_token", "bad page token")


def test_the_signing_import_path_names_the_same_classes() -> None:
    assert signing_errors.SigningError is SigningError
    assert signing_errors.PlacementError is PlacementError
